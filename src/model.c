/* model.c - model spec parser, parameter buffer, activation arena, forward/backward.
 *
 * The spec is text, one layer per line (docs/model-spec.md):
 *     input 1 28 28
 *     conv 16 k=3 p=1
 *     bn
 *     relu
 *     maxpool k=2
 *     flatten
 *     linear 512
 * '#' starts a comment. Unknown kinds and keys are errors naming the line.
 * The model refuses to be a general graph: it is a chain, which is all that
 * metric-learning backbones of this size need. */
#include "model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "head.h"
#include "layers.h"
#include "rng.h"

int sm_model_add_tensor(sm_model *m, const char *name, bool trainable, int ndim,
                        const int64_t *shape)
{
    if (m->ntensors >= SM_MAX_TENSORS) return -2;
    sm_tensor_ref *t = &m->tensors[m->ntensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->trainable = trainable;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    if (trainable) { t->off = m->nparams; m->nparams += t->numel; }
    else { t->off = m->nstate; m->nstate += t->numel; }
    return m->ntensors++;
}

/* ------------------------------------------------------------------ parsing */
static sm_status parse_int(const char *v, int64_t *out, int line, const char *key, sm_err *err)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > (1LL << 30))
        return sm_fail(err, SM_ERR_ARG, "line %d: '%s' needs an integer in 0..2^30, got '%s'",
                       line, key, v);
    *out = x;
    return SM_OK;
}

static sm_status parse_float(const char *v, float *out, int line, const char *key, sm_err *err)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x))
        return sm_fail(err, SM_ERR_ARG, "line %d: '%s' needs a number, got '%s'", line, key, v);
    *out = (float)x;
    return SM_OK;
}

static bool key_allowed(const char *keys, const char *k)
{
    size_t n = strlen(k);
    for (const char *p = keys; (p = strstr(p, k)) != NULL; p += n)
        if ((p == keys || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

/* Parses one layer line (already split into tokens) into l. */
static sm_status parse_layer(sm_layer *l, char **tok, int ntok, int line, sm_err *err)
{
    const struct sm_layer_ops *ops = sm_layer_ops_find(tok[0]);
    if (!ops)
        return sm_fail(err, SM_ERR_ARG, "line %d: unknown layer '%s' (known: input %s)", line,
                       tok[0], sm_layer_kinds());
    l->ops = ops;
    l->line = line;
    l->w = l->b = l->rmean = l->rvar = -1;
    l->stride = strcmp(ops->name, "conv") == 0 ? 1 : 0;
    l->k = 0;
    l->pad = 0;
    l->bias = true;
    l->eps = 1e-5f;          /* PyTorch BatchNorm defaults */
    l->momentum = 0.1f;
    l->p = 0.5f;             /* PyTorch Dropout default */
    int npos = 0;
    for (int i = 1; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        sm_status st = SM_OK;
        if (!eq) {
            if (npos++ > 0 || (strcmp(ops->name, "conv") && strcmp(ops->name, "linear")))
                return sm_fail(err, SM_ERR_ARG, "line %d: unexpected '%s' for %s", line, tok[i],
                               ops->name);
            st = parse_int(tok[i], &l->units, line, "units", err);
            if (st) return st;
            continue;
        }
        *eq = '\0';
        const char *k = tok[i], *v = eq + 1;
        if (!key_allowed(ops->keys, k))
            return sm_fail(err, SM_ERR_ARG, "line %d: unknown key '%s' for %s (known: %s)", line,
                           k, ops->name, *ops->keys ? ops->keys : "none");
        if (!strcmp(k, "k")) st = parse_int(v, &l->k, line, k, err);
        else if (!strcmp(k, "s")) st = parse_int(v, &l->stride, line, k, err);
        else if (!strcmp(k, "p") && strncmp(ops->name, "dropout", 7) == 0) st = parse_float(v, &l->p, line, k, err);
        else if (!strcmp(k, "p")) st = parse_int(v, &l->pad, line, k, err);
        else if (!strcmp(k, "eps")) st = parse_float(v, &l->eps, line, k, err);
        else if (!strcmp(k, "momentum")) st = parse_float(v, &l->momentum, line, k, err);
        else if (!strcmp(k, "bias")) {
            if (strcmp(v, "0") && strcmp(v, "1"))
                return sm_fail(err, SM_ERR_ARG, "line %d: bias must be 0 or 1", line);
            l->bias = v[0] == '1';
        }
        if (st) return st;
    }
    if ((!strcmp(ops->name, "conv") || !strcmp(ops->name, "linear")) && npos == 0)
        return sm_fail(err, SM_ERR_ARG, "line %d: %s needs its number of %s, e.g. '%s 16'", line,
                       ops->name, !strcmp(ops->name, "conv") ? "channels" : "units", ops->name);
    return SM_OK;
}

static sm_status parse_spec(sm_model *m, const char *text, sm_err *err)
{
    char *copy = strdup(text);
    if (!copy) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = SM_OK;
    bool have_input = false;
    int line = 0;
    char *save = NULL;
    for (char *ln = copy; ln && !st; ln = save) {
        char *nl = strchr(ln, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        line++;
        char *hash = strchr(ln, '#');
        if (hash) *hash = '\0';
        char *tok[16];
        int ntok = 0;
        for (char *p = ln; *p;) {
            while (*p && isspace((unsigned char)*p)) *p++ = '\0';
            if (!*p) break;
            if (ntok == 16) { st = sm_fail(err, SM_ERR_ARG, "line %d: too many fields", line); break; }
            tok[ntok++] = p;
            while (*p && !isspace((unsigned char)*p)) p++;
        }
        if (st || ntok == 0) continue;
        if (!strcmp(tok[0], "input")) {
            int64_t v[3] = {0, 0, 0};
            if (have_input || m->nlayers || ntok != 4) {
                st = sm_fail(err, SM_ERR_ARG, "line %d: 'input C H W' must be the first line, once",
                             line);
                break;
            }
            for (int i = 0; i < 3 && !st; i++) st = parse_int(tok[i + 1], &v[i], line, "input", err);
            if (!st && (v[0] < 1 || v[1] < 1 || v[2] < 1))
                st = sm_fail(err, SM_ERR_ARG, "line %d: input sizes must be positive", line);
            m->input = (sm_ashape){v[0], v[1], v[2], false};
            have_input = true;
            continue;
        }
        if (!have_input) {
            st = sm_fail(err, SM_ERR_ARG, "line %d: the spec must start with 'input C H W'", line);
            break;
        }
        if (m->nlayers == SM_MAX_LAYERS) {
            st = sm_fail(err, SM_ERR_ARG, "line %d: more than %d layers", line, SM_MAX_LAYERS);
            break;
        }
        sm_layer *l = &m->layers[m->nlayers];
        memset(l, 0, sizeof *l);
        l->index = m->nlayers;
        st = parse_layer(l, tok, ntok, line, err);
        if (st) break;
        l->in = m->nlayers ? m->layers[m->nlayers - 1].out : m->input;
        st = l->ops->build(l, m, err);
        if (!st && sm_ashape_numel(l->out) > (1LL << 28))
            st = sm_fail(err, SM_ERR_SHAPE, "line %d: activation too large", line);
        if (!st) m->nlayers++;
    }
    free(copy);
    if (!st && !have_input) st = sm_fail(err, SM_ERR_ARG, "empty model spec (need 'input C H W')");
    if (!st && m->nlayers == 0) st = sm_fail(err, SM_ERR_ARG, "the model spec has no layers");
    if (!st && !m->layers[m->nlayers - 1].out.dense)
        st = sm_fail(err, SM_ERR_SHAPE,
                     "the model must end in a flat embedding (add 'flatten' or 'gap', then 'linear D')");
    return st;
}

/* ------------------------------------------------------------------ lifecycle */
sm_status sm_model_new(sm_model **out, const char *spec, const sm_head_config *head,
                       int64_t nclasses, uint64_t seed, sm_err *err)
{
    *out = NULL;
    sm_model *m = calloc(1, sizeof *m);
    if (!m) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    m->spec = strdup(spec);
    sm_status st = m->spec ? parse_spec(m, spec, err) : sm_fail(err, SM_ERR_NOMEM, "out of memory");
    if (!st && head && head->kind != SM_HEAD_NONE)
        st = sm_head_new(&m->head, m, head, sm_model_dim(m), nclasses, err);
    if (!st) {
        size_t np = (size_t)(m->nparams ? m->nparams : 1), ns = (size_t)(m->nstate ? m->nstate : 1);
        m->params = calloc(np, sizeof(float));
        m->grads = calloc(np, sizeof(float));
        m->state = calloc(ns, sizeof(float));
        if (!m->params || !m->grads || !m->state) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    if (st) { sm_model_free(m); return st; }
    for (int i = 0; i < m->nlayers; i++)
        m->layers[i].ops->init(&m->layers[i], m, sm_hash64(seed, (uint64_t)i));
    if (m->head) m->head->ops->init(m->head, m, sm_hash64(seed, 1000003));
    m->training = false;
    m->fuse = true;
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
    *out = m;
    return SM_OK;
}

void sm_model_free(sm_model *m)
{
    if (!m) return;
    sm_head_free(m->head);
    for (int32_t i = 0; i < m->nnames; i++) free(m->names[i]);
    free(m->names);
    free(m->spec);
    free(m->params);
    free(m->grads);
    free(m->state);
    free(m->arena);
    free(m->acts);
    free(m);
}

int64_t sm_model_dim(const sm_model *m) { return m->nlayers ? m->layers[m->nlayers - 1].out.c : 0; }
int64_t sm_model_nparams(const sm_model *m) { return m->nparams; }
const char *sm_model_spec(const sm_model *m) { return m->spec; }

void sm_model_input_shape(const sm_model *m, int64_t *c, int64_t *h, int64_t *w)
{
    *c = m->input.c;
    *h = m->input.h;
    *w = m->input.w;
}

int64_t sm_model_classes(const sm_model *m) { return m->head ? m->head->c : 0; }
const sm_head_config *sm_model_head(const sm_model *m) { return m->head ? &m->head->cfg : NULL; }
void sm_model_set_training(sm_model *m, bool training) { m->training = training; }

/* An arena of `total` floats, zeroed and 64-byte aligned, for batch n; NULL
 * with the error set when it cannot be had. */
static float *arena_alloc(size_t total, int64_t n, sm_err *err)
{
    float *arena = NULL;
    if (posix_memalign((void **)&arena, 64, total * sizeof(float)) != 0) {
        sm_fail(err, SM_ERR_NOMEM, "out of memory: the activations of batch %lld need %zu MiB",
                (long long)n, total * sizeof(float) >> 20);
        return NULL;
    }
    memset(arena, 0, total * sizeof(float));
    return arena;
}

/* Makes a laid-out arena the model's plan for batches of up to n, in place of
 * the previous one, and plans the head for n. */
static sm_status plan_install(sm_model *m, float *arena, float **acts, size_t total, size_t scratch,
                              int64_t maxact, int64_t n, bool infer, sm_err *err)
{
    free(m->arena);
    free(m->acts);
    m->arena = arena;
    m->acts = acts;
    m->arena_floats = total;
    m->scratch_floats = scratch;
    m->max_act = maxact;
    m->plan_n = n;
    m->plan_infer = infer;
    if (m->head) return sm_head_plan(m->head, n, err);
    return SM_OK;
}

sm_status sm_model_plan(sm_model *m, int64_t n, sm_err *err)
{
    if (n <= 0) return sm_fail(err, SM_ERR_ARG, "batch size must be positive (got %lld)", (long long)n);
    if (n <= m->plan_n && !m->plan_infer) return SM_OK;
    int64_t maxact = sm_ashape_numel(m->input);
    size_t total = 0, scratch = 0;
    size_t *save = calloc((size_t)m->nlayers, sizeof *save);
    float **acts = calloc((size_t)m->nlayers, sizeof *acts);
    if (!save || !acts) { free(save); free(acts); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        size_t sc = 0;
        l->ops->plan(l, n, &save[i], &sc);
        save[i] = (save[i] + 15) & ~(size_t)15;   /* keep 64-byte alignment of later views */
        int64_t a = sm_ashape_numel(l->out);
        if (a > maxact) maxact = a;
        total += (size_t)(n * a + 15) / 16 * 16 + save[i];
        if (sc > scratch) scratch = sc;
    }
    size_t gsz = (size_t)(n * maxact + 15) / 16 * 16;
    size_t xsz = m->input.c > 1 ? (size_t)(n * sm_ashape_numel(m->input) + 15) / 16 * 16 : 0;
    total += 2 * gsz + xsz + scratch;
    float *arena = arena_alloc(total, n, err);
    if (!arena) { free(save); free(acts); return SM_ERR_NOMEM; }
    float *p = arena;
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        acts[i] = p;
        p += (size_t)(n * sm_ashape_numel(l->out) + 15) / 16 * 16;
        l->save = save[i] ? p : NULL;
        p += save[i];
    }
    m->gbuf[0] = p; p += gsz;
    m->gbuf[1] = p; p += gsz;
    m->xin = xsz ? p : NULL; p += xsz;
    m->scratch = p;
    free(save);
    m->ibuf[0] = m->ibuf[1] = NULL;
    return plan_install(m, arena, acts, total, scratch, maxact, n, false, err);
}

/* The inference arena: layer i reads one of two activation buffers and writes
 * the other, so it holds two of the largest activation instead of all of
 * them (for mnist-net ~1/5 of a training arena of the same batch), plus the
 * small eval-mode saves (sm_layer_eval_save), the input transpose and the
 * conv scratch. */
sm_status sm_model_plan_inference(sm_model *m, int64_t n, sm_err *err)
{
    if (n <= 0) return sm_fail(err, SM_ERR_ARG, "batch size must be positive (got %lld)", (long long)n);
    if (m->plan_n > 0 && (!m->plan_infer || n <= m->plan_n)) return SM_OK;
    int64_t maxact = sm_ashape_numel(m->input);
    size_t saves = 0, scratch = 0;
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        size_t sv = 0, sc = 0;
        l->ops->plan(l, n, &sv, &sc);
        saves += (sm_layer_eval_save(l, n) + 15) & ~(size_t)15;
        if (sm_ashape_numel(l->out) > maxact) maxact = sm_ashape_numel(l->out);
        if (sc > scratch) scratch = sc;
    }
    size_t bsz = (size_t)(n * maxact + 15) / 16 * 16;
    size_t xsz = m->input.c > 1 ? (size_t)(n * sm_ashape_numel(m->input) + 15) / 16 * 16 : 0;
    size_t total = 2 * bsz + saves + xsz + scratch;
    float *arena = arena_alloc(total, n, err);
    if (!arena) return SM_ERR_NOMEM;
    float *p = arena;
    m->ibuf[0] = p; p += bsz;
    m->ibuf[1] = p; p += bsz;
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        size_t sv = (sm_layer_eval_save(l, n) + 15) & ~(size_t)15;
        l->save = sv ? p : NULL;
        p += sv;
    }
    m->xin = xsz ? p : NULL; p += xsz;
    m->scratch = p;
    m->gbuf[0] = m->gbuf[1] = NULL;
    return plan_install(m, arena, NULL, total, scratch, maxact, n, true, err);
}

/* ------------------------------------------------------------------ running */
/* Inputs arrive as (N,C,H,W); layers want (C,N,H,W). For C == 1 the two are
 * the same memory; otherwise the batch is transposed into m->xin. */
static const float *input_layout(sm_model *m, const float *x, int64_t n)
{
    int64_t c = m->input.c, hw = m->input.h * m->input.w;
    if (c == 1) return x;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            memcpy(m->xin + (k * n + i) * hw, x + (i * c + k) * hw, (size_t)hw * sizeof(float));
    return m->xin;
}

const float *sm_model_forward(sm_model *m, const float *x, int64_t n)
{
    const float *in = x = input_layout(m, x, n);
    for (int i = 0; i < m->nlayers; i++) {
        int used = m->fuse ? sm_layers_fusable(m, i) : 0;
        int last = used ? i + used - 1 : i;
        float *out = !m->plan_infer ? m->acts[last] : in == m->ibuf[0] ? m->ibuf[1] : m->ibuf[0];
        if (used)
            sm_layers_forward_fused(m, i, used == 3, in, out, n);
        else
            m->layers[i].ops->forward(&m->layers[i], m, in, out, n);
        i = last;
        in = out;
    }
    return in;
}

void sm_model_zero_grad(sm_model *m) { memset(m->grads, 0, (size_t)m->nparams * sizeof(float)); }

/* Backward through the layers, given dL/d(embedding) in gbuf[0]; x is the
 * batch input given to the forward. */
static void backward_layers(sm_model *m, const float *x, int64_t n)
{
    int cur = 0;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        sm_layer *l = &m->layers[i];
        const float *in = i ? m->acts[i - 1] : x;
        float *din = NULL;
        if (i > 0) {
            din = m->gbuf[1 - cur];
            memset(din, 0, (size_t)(n * sm_ashape_numel(l->in)) * sizeof(float));
        }
        l->ops->backward(l, m, in, m->acts[i], m->gbuf[cur], din, n);
        cur = 1 - cur;
    }
}

sm_status sm_model_train_step(sm_model *m, const float *x, const int32_t *labels, int64_t n,
                              uint64_t step_seed, double *loss, int64_t *correct, sm_err *err)
{
    if (!m->head) return sm_fail(err, SM_ERR_ARG, "the model has no head to train with");
    sm_status st = sm_model_plan(m, n, err);
    if (st) return st;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || (m->head->c > 0 && labels[i] >= m->head->c))
            return sm_fail(err, SM_ERR_ARG, "label %d of sample %lld is outside 0..%lld",
                           (int)labels[i], (long long)i, (long long)m->head->c - 1);
    m->training = true;
    m->step_seed = step_seed;
    const float *emb = sm_model_forward(m, x, n);
    x = m->input.c == 1 ? x : m->xin;
    m->head->ops->forward(m->head, m, emb, labels, n, NULL);
    *loss = m->head->loss;
    if (correct) *correct = m->head->correct;
    if (!isfinite(*loss)) return sm_fail(err, SM_ERR_NAN, "the loss is %g", *loss);
    sm_model_zero_grad(m);
    int64_t d = sm_model_dim(m);
    memset(m->gbuf[0], 0, (size_t)(n * d) * sizeof(float));
    m->head->ops->backward(m->head, m, emb, labels, n, m->gbuf[0]);
    backward_layers(m, x, n);
    return SM_OK;
}

/* Eval-mode forward in chunks of the planned batch. */
static sm_status eval_chunks(sm_model *m, const float *x, int64_t n, float *emb, int32_t *pred,
                             sm_err *err)
{
    int64_t chunk = n < 256 ? n : 256;   /* a training arena is used at its size */
    if (chunk < m->plan_n || (m->plan_n > 0 && !m->plan_infer)) chunk = m->plan_n;
    sm_status st = sm_model_plan_inference(m, chunk, err);
    if (st) return st;
    bool was = m->training;
    m->training = false;
    int64_t d = sm_model_dim(m), in = sm_ashape_numel(m->input);
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t b = n - i < chunk ? n - i : chunk;
        const float *e = sm_model_forward(m, x + i * in, b);
        if (emb) sm_l2norm_rows(emb + i * d, e, b, d);
        if (pred) m->head->ops->forward(m->head, m, e, NULL, b, pred + i);
    }
    m->training = was;
    return SM_OK;
}

sm_status sm_model_embed(sm_model *m, const float *x, int64_t n, float *emb, sm_err *err)
{
    return eval_chunks(m, x, n, emb, NULL, err);
}

sm_status sm_model_predict(sm_model *m, const float *x, int64_t n, int32_t *pred, sm_err *err)
{
    if (!m->head) return sm_fail(err, SM_ERR_ARG, "the model has no head to predict with");
    return eval_chunks(m, x, n, NULL, pred, err);
}

void sm_l2norm_rows(float *out, const float *in, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < d; j++) s += (double)in[i * d + j] * in[i * d + j];
        double inv = 1.0 / fmax(sqrt(s), 1e-12);
        for (int64_t j = 0; j < d; j++) out[i * d + j] = (float)(in[i * d + j] * inv);
    }
}

/* ------------------------------------------------------------------ tensors */
int sm_model_ntensors(const sm_model *m) { return m->ntensors; }

sm_status sm_model_tensor(sm_model *m, int i, sm_tensor_info *info)
{
    if (i < 0 || i >= m->ntensors) return SM_ERR_ARG;
    sm_tensor_ref *t = &m->tensors[i];
    info->name = t->name;
    info->ndim = t->ndim;
    for (int k = 0; k < 4; k++) info->shape[k] = k < t->ndim ? t->shape[k] : 0;
    info->numel = t->numel;
    info->data = t->trainable ? m->params + t->off : m->state + t->off;
    info->trainable = t->trainable;
    return SM_OK;
}

float *sm_model_params(sm_model *m) { return m->params; }
float *sm_model_grads(sm_model *m) { return m->grads; }

sm_status sm_model_set_classes(sm_model *m, const char *const *names, int32_t n, sm_err *err)
{
    char **v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    if (!v) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++)
        if (!(v[i] = strdup(names[i]))) {
            for (int32_t k = 0; k < i; k++) free(v[k]);
            free(v);
            return sm_fail(err, SM_ERR_NOMEM, "out of memory");
        }
    for (int32_t i = 0; i < m->nnames; i++) free(m->names[i]);
    free(m->names);
    m->names = v;
    m->nnames = n;
    return SM_OK;
}

const char *sm_model_class_name(const sm_model *m, int32_t i)
{
    return i >= 0 && i < m->nnames ? m->names[i] : NULL;
}

void sm_model_set_input_norm(sm_model *m, float mean, float std)
{
    m->in_mean = mean;
    m->in_std = std;
}

void sm_model_input_norm(const sm_model *m, float *mean, float *std)
{
    *mean = m->in_mean;
    *std = m->in_std;
}

void sm_images_to_float(float *out, const uint8_t *in, int64_t count, float mean, float std)
{
    float a = 1.0f / (255.0f * std), b = -mean / std;
    for (int64_t i = 0; i < count; i++) out[i] = (float)in[i] * a + b;
}
