/* model.c - model spec parser, parameter buffer, activation arena, forward/backward.
 *
 * The spec is text, one node per line (docs/model-spec.md):
 *     input 3 64 64
 *     conv1: conv 64 k=3 p=1 bias=0
 *     bn1: bn
 *     relu
 *     conv2: conv 64 k=3 p=1 bias=0
 *     bn2: bn
 *     add in=relu1          # bn2 + relu1: a residual connection
 *     gap
 *     linear 512
 * A node reads the node before it unless in= names its inputs; a name
 * before ':' names a node (and its tensors), an unnamed node i is
 * "layers.<i>". '#' starts a comment; "repeat N" ... "end" repeats lines
 * with $i the iteration and $in the node before it. Unknown kinds, keys and
 * inputs are errors naming the line.
 *
 * Memory: a training plan keeps every node's activation (backward reads
 * them) and gives gradients slots that are reused once a gradient's producer
 * has run backward; an inference plan reuses an activation's slot once its
 * last reader has run. Slots are laid out at plan time (first fit in one
 * arena), nothing is allocated while running. */
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
    if (m->ntensors == m->cap_tensors) {
        int cap = m->cap_tensors ? 2 * m->cap_tensors : 64;
        sm_tensor_ref *t = realloc(m->tensors, (size_t)cap * sizeof *t);
        if (!t) return -2;
        m->tensors = t;
        m->cap_tensors = cap;
    }
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

static int find_node(const sm_model *m, const char *name)
{
    for (int i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    return -2;
}

#define MAX_INPUTS 64

/* The inputs of a node from its in= list ("a,b"; "input" is the model's
 * input); NULL list: the node before. A two-input kind given one name reads
 * the node before and that one. */
static sm_status parse_inputs(sm_model *m, sm_layer *l, const char *list, int line, sm_err *err)
{
    int ids[MAX_INPUTS], n = 0;
    int prev = m->nlayers - 1;   /* -1: the model input */
    if (list) {
        char buf[1024];
        if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf)
            return sm_fail(err, SM_ERR_ARG, "line %d: in= list too long", line);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n == MAX_INPUTS)
                return sm_fail(err, SM_ERR_ARG, "line %d: more than %d inputs", line, MAX_INPUTS);
            int id = strcmp(t, "input") == 0 ? -1 : find_node(m, t);
            if (id == -2)
                return sm_fail(err, SM_ERR_ARG,
                               "line %d: unknown input '%s' (no node of that name before this line)",
                               line, t);
            ids[n++] = id;
        }
        if (n == 0) return sm_fail(err, SM_ERR_ARG, "line %d: in= needs node names", line);
        if (n == 1 && l->ops->min_in == 2) {
            ids[1] = ids[0];
            ids[0] = prev;
            n = 2;
        }
    } else {
        if (l->ops->min_in > 1)
            return sm_fail(err, SM_ERR_ARG, "line %d: %s needs its inputs, e.g. in=a,b", line,
                           l->ops->name);
        ids[n++] = prev;
    }
    if (n < l->ops->min_in || n > l->ops->max_in)
        return sm_fail(err, SM_ERR_ARG, "line %d: %s takes %d input%s, got %d", line, l->ops->name,
                       l->ops->min_in, l->ops->min_in == 1 ? "" : "s or more", n);
    l->inp = malloc((size_t)n * sizeof *l->inp);
    if (!l->inp) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    memcpy(l->inp, ids, (size_t)n * sizeof *ids);
    l->nin = n;
    return SM_OK;
}

static bool name_ok(const char *s)
{
    if (!*s || strlen(s) > 100) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-') return false;
    return true;
}

/* Parses one node line (already split into tokens) into l. */
static sm_status parse_layer(sm_model *m, sm_layer *l, char **tok, int ntok, int line, sm_err *err)
{
    char autoname[32];
    const char *name = NULL;
    size_t len = strlen(tok[0]);
    if (len > 1 && tok[0][len - 1] == ':') {
        tok[0][len - 1] = '\0';
        name = tok[0];
        if (!name_ok(name) || !strcmp(name, "input"))
            return sm_fail(err, SM_ERR_ARG,
                           "line %d: bad node name '%s' (letters, digits, '_', '.', '-'; "
                           "at most 100; not 'input')", line, name);
        tok++;
        ntok--;
        if (ntok == 0) return sm_fail(err, SM_ERR_ARG, "line %d: '%s:' names no layer", line, name);
    }
    if (!name) {
        snprintf(autoname, sizeof autoname, "layers.%d", m->nlayers);
        name = autoname;
    }
    if (find_node(m, name) != -2)
        return sm_fail(err, SM_ERR_ARG, "line %d: a node named '%s' exists already", line, name);
    const struct sm_layer_ops *ops = sm_layer_ops_find(tok[0]);
    if (!ops)
        return sm_fail(err, SM_ERR_ARG, "line %d: unknown layer '%s' (known: input repeat %s)",
                       line, tok[0], sm_layer_kinds());
    l->name = strdup(name);
    if (!l->name) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    l->ops = ops;
    l->line = line;
    l->w = l->b = l->rmean = l->rvar = -1;
    l->last_reader = -1;
    l->stride = strcmp(ops->name, "conv") == 0 ? 1 : 0;
    l->groups = 1;
    l->bias = true;
    l->eps = 1e-5f;          /* PyTorch BatchNorm defaults */
    l->momentum = 0.1f;
    l->p = 0.5f;             /* PyTorch Dropout default */
    bool units = !strcmp(ops->name, "conv") || !strcmp(ops->name, "linear");
    bool adaptive = !strcmp(ops->name, "adaptive_avgpool");
    const char *inputs = NULL;
    int npos = 0;
    for (int i = 1; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        sm_status st = SM_OK;
        if (!eq) {
            if (npos >= (units ? 1 : adaptive ? 2 : 0))
                return sm_fail(err, SM_ERR_ARG, "line %d: unexpected '%s' for %s", line, tok[i],
                               ops->name);
            st = parse_int(tok[i], units ? &l->units : npos ? &l->ow : &l->oh, line,
                           units ? "units" : "size", err);
            npos++;
            if (st) return st;
            continue;
        }
        *eq = '\0';
        const char *k = tok[i], *v = eq + 1;
        if (!strcmp(k, "in")) { inputs = v; continue; }
        if (!key_allowed(ops->keys, k))
            return sm_fail(err, SM_ERR_ARG, "line %d: unknown key '%s' for %s (known: %s%sin)",
                           line, k, ops->name, ops->keys, *ops->keys ? " " : "");
        if (!strcmp(k, "k")) st = parse_int(v, &l->k, line, k, err);
        else if (!strcmp(k, "s")) st = parse_int(v, &l->stride, line, k, err);
        else if (!strcmp(k, "g")) st = parse_int(v, &l->groups, line, k, err);
        else if (!strcmp(k, "p") && strncmp(ops->name, "dropout", 7) == 0) st = parse_float(v, &l->p, line, k, err);
        else if (!strcmp(k, "p")) st = parse_int(v, &l->pad, line, k, err);
        else if (!strcmp(k, "eps")) st = parse_float(v, &l->eps, line, k, err);
        else if (!strcmp(k, "momentum")) st = parse_float(v, &l->momentum, line, k, err);
        else if (!strcmp(k, "bias")) {
            if (strcmp(v, "0") && strcmp(v, "1"))
                return sm_fail(err, SM_ERR_ARG, "line %d: bias must be 0 or 1", line);
            l->bias = v[0] == '1';
        } else if (!strcmp(k, "init")) {
            if (!strcmp(v, "default")) l->init = SM_INIT_DEFAULT;
            else if (!strcmp(v, "fan_out")) l->init = SM_INIT_FAN_OUT;
            else if (!strcmp(v, "normal")) l->init = SM_INIT_NORMAL;
            else
                return sm_fail(err, SM_ERR_ARG,
                               "line %d: init must be default, fan_out or normal, got '%s'", line, v);
        }
        if (st) return st;
    }
    if (units && npos == 0)
        return sm_fail(err, SM_ERR_ARG, "line %d: %s needs its number of %s, e.g. '%s 16'", line,
                       ops->name, !strcmp(ops->name, "conv") ? "channels" : "units", ops->name);
    if (adaptive && npos == 0)
        return sm_fail(err, SM_ERR_ARG, "line %d: adaptive_avgpool needs its output size, e.g. "
                       "'adaptive_avgpool 7 7'", line);
    return parse_inputs(m, l, inputs, line, err);
}

/* The shape of node id's output (-1: the model input). */
static sm_ashape node_shape(const sm_model *m, int id)
{
    return id < 0 ? m->input : m->layers[id].out;
}

static sm_status add_node(sm_model *m, char **tok, int ntok, int line, sm_err *err)
{
    if (m->nlayers == INT32_MAX / 2) return sm_fail(err, SM_ERR_ARG, "line %d: too many nodes", line);
    if (m->nlayers % 64 == 0) {
        sm_layer *v = realloc(m->layers, (size_t)(m->nlayers + 64) * sizeof *v);
        if (!v) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
        m->layers = v;
    }
    sm_layer *l = &m->layers[m->nlayers];
    memset(l, 0, sizeof *l);
    l->index = m->nlayers;
    sm_status st = parse_layer(m, l, tok, ntok, line, err);
    sm_ashape ins[MAX_INPUTS];
    if (!st) {
        for (int k = 0; k < l->nin; k++) ins[k] = node_shape(m, l->inp[k]);
        l->in = ins[0];
        st = l->ops->build(l, m, ins, err);
    }
    if (!st && sm_ashape_numel(l->out) > (1LL << 28))
        st = sm_fail(err, SM_ERR_SHAPE, "line %d: activation too large", line);
    if (st) {
        free(l->name);
        free(l->inp);
        free(l->parts);
        return st;
    }
    for (int k = 0; k < l->nin; k++)
        if (l->inp[k] >= 0) {
            m->layers[l->inp[k]].nreaders++;
            m->layers[l->inp[k]].last_reader = l->index;
        }
    m->nlayers++;
    return SM_OK;
}

/* Splits ln into at most 32 whitespace-separated tokens after removing a
 * comment; returns the count or -1 (too many). */
static int tokenize(char *ln, char **tok)
{
    char *hash = strchr(ln, '#');
    if (hash) *hash = '\0';
    int ntok = 0;
    for (char *p = ln; *p;) {
        while (*p && isspace((unsigned char)*p)) *p++ = '\0';
        if (!*p) break;
        if (ntok == 32) return -1;
        tok[ntok++] = p;
        while (*p && !isspace((unsigned char)*p)) p++;
    }
    return ntok;
}

/* Whether the first word of a spec line (before any comment) is w. */
static bool first_word_is(const char *ln, const char *w)
{
    while (isspace((unsigned char)*ln)) ln++;
    size_t n = strlen(w);
    return strncmp(ln, w, n) == 0 && (ln[n] == '\0' || ln[n] == '#' || isspace((unsigned char)ln[n]));
}

/* A copy of line with $i replaced by it and $in by the name of the node
 * before the iteration; NULL when out of memory or too long. */
static char *substitute(const char *line, long it, const char *in)
{
    char num[24];
    snprintf(num, sizeof num, "%ld", it);
    size_t cap = strlen(line) * (strlen(in) + 24) + 1;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *p = line; *p;) {
        if (p[0] == '$' && p[1] == 'i' && p[2] == 'n') {
            o += sprintf(o, "%s", in);
            p += 3;
        } else if (p[0] == '$' && p[1] == 'i') {
            o += sprintf(o, "%s", num);
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static sm_status parse_line(sm_model *m, char *ln, int line, bool *have_input, sm_err *err)
{
    char *tok[32];
    int ntok = tokenize(ln, tok);
    if (ntok < 0) return sm_fail(err, SM_ERR_ARG, "line %d: too many fields", line);
    if (ntok == 0) return SM_OK;
    if (!strcmp(tok[0], "input")) {
        int64_t v[3] = {0, 0, 0};
        if (*have_input || m->nlayers || ntok != 4)
            return sm_fail(err, SM_ERR_ARG, "line %d: 'input C H W' must be the first line, once",
                           line);
        sm_status st = SM_OK;
        for (int i = 0; i < 3 && !st; i++) st = parse_int(tok[i + 1], &v[i], line, "input", err);
        if (!st && (v[0] < 1 || v[1] < 1 || v[2] < 1))
            st = sm_fail(err, SM_ERR_ARG, "line %d: input sizes must be positive", line);
        m->input = (sm_ashape){v[0], v[1], v[2], false};
        *have_input = !st;
        return st;
    }
    if (!*have_input)
        return sm_fail(err, SM_ERR_ARG, "line %d: the spec must start with 'input C H W'", line);
    if (!strcmp(tok[0], "end"))
        return sm_fail(err, SM_ERR_ARG, "line %d: 'end' without 'repeat'", line);
    return add_node(m, tok, ntok, line, err);
}

static sm_status parse_spec(sm_model *m, const char *text, sm_err *err)
{
    char *copy = strdup(text);
    if (!copy) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    /* lines[i]: line i+1, NUL-terminated in copy */
    size_t nl = 1;
    for (const char *p = text; *p; p++) nl += *p == '\n';
    char **lines = malloc(nl * sizeof *lines);
    if (!lines) { free(copy); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
    size_t n = 0;
    for (char *p = copy; p;) {
        lines[n++] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
    sm_status st = SM_OK;
    bool have_input = false;
    for (size_t i = 0; i < n && !st; i++) {
        if (!first_word_is(lines[i], "repeat")) {
            st = parse_line(m, lines[i], (int)i + 1, &have_input, err);
            continue;
        }
        /* repeat N [from=K] ... end: the body's lines, N times (parse_line
         * tokenizes in place, so the repeat line is read from a copy) */
        int64_t times = 0, from = 0;
        int rline = (int)i + 1;
        char *rl = strdup(lines[i]), *tok[32];
        if (!rl) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); break; }
        int ntok = tokenize(rl, tok);
        bool ok = ntok >= 2 && ntok <= 3 && !parse_int(tok[1], &times, rline, "repeat", err) &&
                  (ntok == 2 || (!strncmp(tok[2], "from=", 5) &&
                                 !parse_int(tok[2] + 5, &from, rline, "from", err)));
        free(rl);
        if (!ok) {
            st = sm_fail(err, SM_ERR_ARG, "line %d: write 'repeat N' or 'repeat N from=K'", rline);
            break;
        }
        size_t e = i + 1;
        for (; e < n && !first_word_is(lines[e], "end"); e++)
            if (first_word_is(lines[e], "repeat")) {
                st = sm_fail(err, SM_ERR_ARG, "line %d: repeat inside repeat", (int)e + 1);
                break;
            }
        if (!st && e == n) st = sm_fail(err, SM_ERR_ARG, "line %d: repeat without 'end'", rline);
        for (int64_t it = from; it < from + times && !st; it++) {
            char *prev = strdup(m->nlayers ? m->layers[m->nlayers - 1].name : "input");
            if (!prev) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); break; }
            for (size_t k = i + 1; k < e && !st; k++) {
                char *ln = substitute(lines[k], (long)it, prev);
                st = ln ? parse_line(m, ln, (int)k + 1, &have_input, err)
                        : sm_fail(err, SM_ERR_NOMEM, "out of memory");
                free(ln);
            }
            free(prev);
        }
        i = e;
    }
    free(lines);
    free(copy);
    if (!st && !have_input) st = sm_fail(err, SM_ERR_ARG, "empty model spec (need 'input C H W')");
    if (!st && m->nlayers == 0) st = sm_fail(err, SM_ERR_ARG, "the model spec has no layers");
    for (int i = 0; !st && i + 1 < m->nlayers; i++)
        if (m->layers[i].nreaders == 0)
            st = sm_fail(err, SM_ERR_ARG,
                         "line %d: the output of '%s' is never used (only the last node may go "
                         "unread)", m->layers[i].line, m->layers[i].name);
    if (!st && !m->layers[m->nlayers - 1].out.dense)
        st = sm_fail(err, SM_ERR_SHAPE,
                     "the model must end in a flat embedding (add 'flatten' or 'gap', then 'linear D')");
    return st;
}

/* ------------------------------------------------------------------ stages, freezing */
/* Which nodes need dL/d(output): those with a parameter that trains, and every
 * node after one (in spec order, inputs come first). */
static void update_need_grad(sm_model *m)
{
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        l->need_grad = !l->frozen && (l->w >= 0 || l->b >= 0);
        for (int k = 0; k < l->nin && !l->need_grad; k++)
            l->need_grad = l->inp[k] >= 0 && m->layers[l->inp[k]].need_grad;
    }
}

/* The length of a node's block name: its first two dotted components
 * ("layer2.0" of "layer2.0.downsample.0", "features.3" of "features.3.conv.0.0"). */
static size_t block_len(const char *name)
{
    const char *d = strchr(name, '.');
    if (d) d = strchr(d + 1, '.');
    return d ? (size_t)(d - name) : strlen(name);
}

/* A spatial node's stage: 0 up to a downsampling by 2, then k for 2^(k+1)
 * (rounded in log2, so 100 px inputs count as 224 px ones); each node takes
 * the largest stage of its block, so a block that downsamples inside (a
 * Bottleneck's stride-2 3x3) lies in one stage. Dense nodes: -1. */
static void assign_stages(sm_model *m)
{
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        if (l->out.dense || l->out.h <= 0 || l->out.w <= 0) { l->stage = -1; continue; }
        double r = fmax((double)m->input.h / (double)l->out.h, (double)m->input.w / (double)l->out.w);
        int s = (int)lround(log2(fmax(r, 1.0))) - 1;
        l->stage = s < 0 ? 0 : s;
    }
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        if (l->stage < 0) continue;
        size_t len = block_len(l->name);
        for (int j = 0; j < m->nlayers; j++) {
            sm_layer *o = &m->layers[j];
            if (o->stage > l->stage && block_len(o->name) == len && !strncmp(o->name, l->name, len))
                l->stage = o->stage;
        }
    }
}

int sm_model_stages(const sm_model *m)
{
    int n = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].stage + 1 > n) n = m->layers[i].stage + 1;
    return n;
}

sm_status sm_model_freeze_stages(sm_model *m, int n, sm_err *err)
{
    int s = sm_model_stages(m);
    if (n < 0 || n > s)
        return sm_fail(err, SM_ERR_ARG, "cannot freeze %d stages: the model has %d (0 to %d can be frozen)",
                       n, s, s);
    for (int i = 0; i < m->nlayers; i++)
        m->layers[i].frozen = m->layers[i].stage >= 0 && m->layers[i].stage < n;
    m->frozen_stages = n;
    update_need_grad(m);
    return SM_OK;
}

int sm_model_frozen_stages(const sm_model *m) { return m->frozen_stages; }

void sm_model_set_bn_eval(sm_model *m, bool on) { m->bn_eval = on; }
void sm_model_set_train_winograd(sm_model *m, bool on) { m->train_winograd = on; }
bool sm_model_train_winograd(const sm_model *m) { return m->train_winograd; }
bool sm_model_bn_eval(const sm_model *m) { return m->bn_eval; }

sm_status sm_model_set_lr_scales(const sm_model *m, sm_optim *o, float backbone, sm_err *err)
{
    if (!(backbone >= 0.0f) || !isfinite(backbone))
        return sm_fail(err, SM_ERR_ARG, "the backbone's learning-rate multiplier must be >= 0 (got %g)",
                       (double)backbone);
    if (sm_optim_size(o) != m->nparams)
        return sm_fail(err, SM_ERR_ARG, "the optimizer updates %lld parameters, the model has %lld",
                       (long long)sm_optim_size(o), (long long)m->nparams);
    /* one pass: adjacent tensors with the same multiplier form one run, one optimizer interval */
    sm_status st = sm_optim_set_lr_scale(o, 0, m->nparams, 1.0f, err);
    int64_t run_off = 0, run_len = 0;
    float run_scale = 1.0f;
    for (int i = 0; i < m->nlayers && !st; i++) {
        const sm_layer *l = &m->layers[i];
        float scale = l->frozen ? 0.0f : l->stage >= 0 ? backbone : 1.0f;
        int ids[2] = {l->w, l->b};
        for (int k = 0; k < 2 && !st; k++) {
            if (ids[k] < 0 || !m->tensors[ids[k]].trainable) continue;
            const sm_tensor_ref *t = &m->tensors[ids[k]];
            if (run_len > 0 && scale == run_scale && run_off + run_len == t->off) { run_len += t->numel; continue; }
            if (run_len > 0 && run_scale != 1.0f) st = sm_optim_set_lr_scale(o, run_off, run_len, run_scale, err);
            run_off = t->off, run_len = t->numel, run_scale = scale;
        }
    }
    if (!st && run_len > 0 && run_scale != 1.0f) st = sm_optim_set_lr_scale(o, run_off, run_len, run_scale, err);
    return st;
}

/* ------------------------------------------------------------------ lifecycle */
/* The context node l runs with: its tensors, gradients when grads is set. */
static void lctx_fill(sm_model *m, const sm_layer *l, sm_lctx *c, bool grads)
{
    bool bn = l->rmean >= 0;
    *c = (sm_lctx){.scratch = m->scratch, .training = m->training,
                   .frozen = m->training && (l->frozen || (bn && m->bn_eval)),
                   .exact = m->training && !m->train_winograd,
                   .seed = sm_hash64(m->step_seed, (uint64_t)l->index)};
    if (l->w >= 0) { c->w = sm_model_param(m, l->w); if (grads) c->dw = sm_model_grad(m, l->w); }
    if (l->b >= 0) { c->b = sm_model_param(m, l->b); if (grads) c->db = sm_model_grad(m, l->b); }
    if (l->rmean >= 0) c->rmean = sm_model_param(m, l->rmean);
    if (l->rvar >= 0) c->rvar = sm_model_param(m, l->rvar);
}

sm_status sm_model_new(sm_model **out, const char *spec, const sm_head_config *head,
                       int64_t nclasses, uint64_t seed, sm_err *err)
{
    return sm_model_build(out, spec, head, nclasses, seed, true, err);
}

sm_status sm_model_build(sm_model **out, const char *spec, const sm_head_config *head,
                         int64_t nclasses, uint64_t seed, bool init, sm_err *err)
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
    for (int i = 0; init && i < m->nlayers; i++) {
        sm_lctx c;
        lctx_fill(m, &m->layers[i], &c, false);
        m->layers[i].ops->init(&m->layers[i], &c, sm_hash64(seed, (uint64_t)i));
    }
    if (init && m->head) m->head->ops->init(m->head, m, sm_hash64(seed, 1000003));
    assign_stages(m);
    update_need_grad(m);
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
    for (int i = 0; i < m->nlayers; i++) {
        free(m->layers[i].name);
        free(m->layers[i].inp);
        free(m->layers[i].parts);
    }
    free(m->layers);
    free(m->tensors);
    free(m->spec);
    free(m->params);
    free(m->grads);
    free(m->state);
    free(m->arena);
    free(m->acts);
    free(m->grad);
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

/* ------------------------------------------------------------------ planning */
static size_t align16(size_t x) { return (x + 15) & ~(size_t)15; }

/* Slots in one arena by first fit: a list of free extents within [0, top). */
typedef struct slots {
    size_t *off, *len;
    int n;
    size_t top;
} slots;

static size_t slot_take(slots *s, size_t want)
{
    for (int i = 0; i < s->n; i++)
        if (s->len[i] >= want) {
            size_t at = s->off[i];
            s->off[i] += want;
            s->len[i] -= want;
            return at;
        }
    /* a free extent at the top grows instead of leaving a hole */
    for (int i = 0; i < s->n; i++)
        if (s->off[i] + s->len[i] == s->top) {
            size_t at = s->off[i];
            s->top = at + want;
            s->len[i] = 0;
            return at;
        }
    size_t at = s->top;
    s->top += want;
    return at;
}

/* Returns [at, at+len) to the free list, merging with neighbours. The list
 * has room for one extent per slot ever taken (allocated by the caller). */
static void slot_give(slots *s, size_t at, size_t len)
{
    for (int i = 0; i < s->n; i++) {
        if (s->len[i] && s->off[i] + s->len[i] == at) {
            s->len[i] += len;
            for (int k = 0; k < s->n; k++)   /* and the one after */
                if (k != i && s->len[k] && s->off[k] == at + len) {
                    s->len[i] += s->len[k];
                    s->len[k] = 0;
                }
            return;
        }
        if (s->len[i] && s->off[i] == at + len) {
            s->off[i] = at;
            s->len[i] += len;
            return;
        }
    }
    for (int i = 0; i < s->n; i++)
        if (s->len[i] == 0) { s->off[i] = at; s->len[i] = len; return; }
    s->off[s->n] = at;
    s->len[s->n++] = len;
}

/* An arena of `total` floats, zeroed and 64-byte aligned, for batch n; NULL
 * with the error set when it cannot be had. */
static float *arena_alloc(size_t total, int64_t n, sm_err *err)
{
    float *arena = NULL;
    if (total > SIZE_MAX / sizeof(float) / 2 ||
        posix_memalign((void **)&arena, 64, total * sizeof(float)) != 0) {
        sm_fail(err, SM_ERR_NOMEM, "out of memory: the activations of batch %lld need %zu MiB",
                (long long)n, total * sizeof(float) >> 20);
        return NULL;
    }
    memset(arena, 0, total * sizeof(float));
    return arena;
}

/* Per-node sizes for batch n: activation floats act[i], saves sv[i] (eval
 * saves when infer), and the largest scratch. */
static size_t node_sizes(const sm_model *m, int64_t n, int nthreads, bool infer, size_t *act,
                         size_t *sv)
{
    size_t scratch = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const sm_layer *l = &m->layers[i];
        size_t s = 0, sc = 0;
        l->ops->plan(l, n, nthreads, &s, &sc);
        sv[i] = align16(infer ? sm_layer_eval_save(l, n) : s);
        act[i] = align16((size_t)(n * sm_ashape_numel(l->out)));
        if (sc > scratch) scratch = sc;
    }
    return scratch;
}

/* Installs a laid-out arena as the model's plan for batches of up to n in
 * place of the previous one, and plans the head for n. */
static sm_status plan_install(sm_model *m, float *arena, float **acts, float **grad, size_t total,
                              size_t scratch, int64_t n, int nthreads, bool infer, sm_err *err)
{
    free(m->arena);
    free(m->acts);
    free(m->grad);
    m->arena = arena;
    m->acts = acts;
    m->grad = grad;
    m->arena_floats = total;
    m->scratch_floats = scratch;
    m->plan_n = n;
    m->plan_threads = nthreads;
    m->plan_infer = infer;
    m->plan_fuse = m->fuse;
    m->backward_ready = false;
    if (m->head) return sm_head_plan(m->head, n, err);
    return SM_OK;
}

/* Whether the plan's scratch is too small for the current thread count. */
static bool plan_stale(const sm_model *m) { return m->plan_threads < sm_threads_get(); }

/* The arrays a plan needs: acts, grad (training), sizes and slot lists. */
typedef struct plan_tmp {
    size_t *act, *sv, *off, *goff, *soff, *slen;
    float **acts, **grad;
} plan_tmp;

static void plan_tmp_free(plan_tmp *t)
{
    free(t->act); free(t->sv); free(t->off); free(t->goff); free(t->soff); free(t->slen);
    free(t->acts); free(t->grad);
}

static sm_status plan_tmp_new(plan_tmp *t, int nodes, bool grads, sm_err *err)
{
    size_t k = (size_t)nodes + 1;
    memset(t, 0, sizeof *t);
    t->act = calloc(k, sizeof *t->act);
    t->sv = calloc(k, sizeof *t->sv);
    t->off = calloc(k, sizeof *t->off);
    t->goff = calloc(k, sizeof *t->goff);
    t->soff = calloc(2 * k, sizeof *t->soff);
    t->slen = calloc(2 * k, sizeof *t->slen);
    t->acts = calloc(k, sizeof *t->acts);
    t->grad = grads ? calloc(k, sizeof *t->grad) : NULL;
    if (!t->act || !t->sv || !t->off || !t->goff || !t->soff || !t->slen || !t->acts ||
        (grads && !t->grad)) {
        plan_tmp_free(t);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    return SM_OK;
}

/* The node whose activation node i's output shares in a training plan, or -1
 * (see sm_layer_ops.inplace): only one level deep, since an in-place node's
 * own backward reads its output. */
static int train_alias(const sm_model *m, int i)
{
    const sm_layer *l = &m->layers[i];
    if (!l->ops->inplace || l->nin != 1 || l->inp[0] < 0) return -1;
    const sm_layer *p = &m->layers[l->inp[0]];
    if (!p->ops->out_unread || p->nreaders != 1 || sm_ashape_numel(p->out) != sm_ashape_numel(l->out))
        return -1;
    return l->inp[0];
}

sm_status sm_model_plan(sm_model *m, int64_t n, sm_err *err)
{
    if (n <= 0) return sm_fail(err, SM_ERR_ARG, "batch size must be positive (got %lld)", (long long)n);
    if (n <= m->plan_n && !m->plan_infer && !plan_stale(m)) return SM_OK;
    if (n > (1LL << 24)) return sm_fail(err, SM_ERR_ARG, "batch size %lld is too large", (long long)n);
    int nth = sm_threads_get(), N = m->nlayers;
    plan_tmp t;
    sm_status st = plan_tmp_new(&t, N, true, err);
    if (st) return st;
    size_t scratch = node_sizes(m, n, nth, false, t.act, t.sv);
    /* every activation and save, then gradient slots by reverse lifetime:
     * a gradient is taken at its last reader's backward (the first to add
     * into it) and given back after its producer's own backward */
    size_t fixed = 0;
    for (int i = 0; i < N; i++) {
        int j = train_alias(m, i);
        if (j >= 0 && t.sv[i] == 0) {   /* in place: the output is the input's memory */
            t.off[i] = t.off[j];
            continue;
        }
        t.off[i] = fixed;
        fixed += t.act[i] + t.sv[i];
    }
    slots g = {t.soff, t.slen, 0, 0};
    t.goff[N - 1] = slot_take(&g, t.act[N - 1]);
    for (int i = N - 1; i >= 0; i--) {
        const sm_layer *l = &m->layers[i];
        for (int k = 0; k < l->nin; k++)
            if (l->inp[k] >= 0 && m->layers[l->inp[k]].last_reader == i) {
                bool first = true;
                for (int q = 0; q < k; q++) first &= l->inp[q] != l->inp[k];
                if (first) t.goff[l->inp[k]] = slot_take(&g, t.act[l->inp[k]]);
            }
        slot_give(&g, t.goff[i], t.act[i]);
    }
    size_t xsz = m->input.c > 1 ? align16((size_t)(n * sm_ashape_numel(m->input))) : 0;
    size_t total = fixed + g.top + xsz + scratch;
    float *arena = arena_alloc(total, n, err);
    if (!arena) { plan_tmp_free(&t); return SM_ERR_NOMEM; }
    float **acts = t.acts, **grad = t.grad;
    for (int i = 0; i < N; i++) {
        acts[i] = arena + t.off[i];
        m->layers[i].save = t.sv[i] ? arena + t.off[i] + t.act[i] : NULL;
        grad[i] = arena + fixed + t.goff[i];
    }
    m->xin = xsz ? arena + fixed + g.top : NULL;
    m->scratch = arena + fixed + g.top + xsz;
    t.acts = t.grad = NULL;
    plan_tmp_free(&t);
    return plan_install(m, arena, acts, grad, total, scratch, n, nth, false, err);
}

/* The inference arena: a node's activation takes a slot when it runs and
 * gives it back once its last reader has run; a conv-bn[-relu] run as one
 * pass (m->fuse) has a slot only for its last node's output. Plus the small
 * eval-mode saves (sm_layer_eval_save), the input transpose and the conv
 * scratch. For a chain this is two activations, not all of them. */
sm_status sm_model_plan_inference(sm_model *m, int64_t n, sm_err *err)
{
    if (n <= 0) return sm_fail(err, SM_ERR_ARG, "batch size must be positive (got %lld)", (long long)n);
    if (m->plan_n > 0 && !m->plan_infer) return plan_stale(m) ? sm_model_plan(m, m->plan_n, err) : SM_OK;
    if (m->plan_n > 0 && n <= m->plan_n && !plan_stale(m) && m->plan_fuse == m->fuse) return SM_OK;
    if (n > (1LL << 24)) return sm_fail(err, SM_ERR_ARG, "batch size %lld is too large", (long long)n);
    if (n < m->plan_n) n = m->plan_n;
    int nth = sm_threads_get(), N = m->nlayers;
    plan_tmp t;
    sm_status st = plan_tmp_new(&t, N, false, err);
    if (st) return st;
    size_t scratch = node_sizes(m, n, nth, true, t.act, t.sv);
    bool was = m->training;
    m->training = false;
    slots s = {t.soff, t.slen, 0, 0};
    bool *has = calloc((size_t)N, sizeof *has);
    if (!has) { plan_tmp_free(&t); m->training = was; return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < N; i++) {
        int cnt = m->fuse ? sm_layers_fusable(m, i) : 0;
        int last = cnt ? i + cnt - 1 : i;
        t.off[last] = slot_take(&s, t.act[last]);
        has[last] = true;
        const sm_layer *l = &m->layers[i];
        for (int k = 0; k < l->nin; k++) {
            int j = l->inp[k];
            bool first = true;
            for (int q = 0; q < k; q++) first &= l->inp[q] != j;
            if (j >= 0 && first && m->layers[j].last_reader == i && has[j]) slot_give(&s, t.off[j], t.act[j]);
        }
        i = last;
    }
    m->training = was;
    size_t saves = 0;
    for (int i = 0; i < N; i++) saves += t.sv[i];
    size_t xsz = m->input.c > 1 ? align16((size_t)(n * sm_ashape_numel(m->input))) : 0;
    size_t total = s.top + saves + xsz + scratch;
    float *arena = arena_alloc(total, n, err);
    if (!arena) { free(has); plan_tmp_free(&t); return SM_ERR_NOMEM; }
    float *p = arena + s.top;
    for (int i = 0; i < N; i++) {
        t.acts[i] = has[i] ? arena + t.off[i] : NULL;
        m->layers[i].save = t.sv[i] ? p : NULL;
        p += t.sv[i];
    }
    m->xin = xsz ? p : NULL;
    m->scratch = p + xsz;
    free(has);
    float **acts = t.acts;
    t.acts = NULL;
    plan_tmp_free(&t);
    return plan_install(m, arena, acts, NULL, total, scratch, n, nth, true, err);
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
    x = input_layout(m, x, n);
    bool fuse = !m->training && (m->plan_infer ? m->plan_fuse : m->fuse);
    const float *ins[MAX_INPUTS];
    for (int i = 0; i < m->nlayers; i++) {
        sm_layer *l = &m->layers[i];
        for (int k = 0; k < l->nin; k++) ins[k] = l->inp[k] < 0 ? x : m->acts[l->inp[k]];
        int cnt = fuse ? sm_layers_fusable(m, i) : 0;
        if (cnt) {
            sm_layers_forward_fused(m, i, cnt, ins[0], m->acts[i + cnt - 1], n);
            i += cnt - 1;
            continue;
        }
        sm_lctx c;
        lctx_fill(m, l, &c, false);
        l->ops->forward(l, &c, ins, m->acts[i], n);
    }
    return m->acts[m->nlayers - 1];
}

/* In parallel: 45 MB for ResNet-18, a memory-bound pass that one core does
 * at well under the machine's bandwidth. */
void sm_model_zero_grad(sm_model *m)
{
    const int64_t blk = 1 << 16, nb = (m->nparams + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (nb > 4)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * blk, hi = lo + blk < m->nparams ? lo + blk : m->nparams;
        memset(m->grads + lo, 0, (size_t)(hi - lo) * sizeof(float));
    }
}

/* Backward through the nodes in reverse, given dL/d(output) in the output
 * node's gradient; x is the (C,N,H,W) input of the forward. A gradient is
 * zeroed by its last reader (the first to reach it) and accumulates the
 * others. */
static void backward_nodes(sm_model *m, const float *x, int64_t n)
{
    const float *ins[MAX_INPUTS];
    float *din[MAX_INPUTS];
    for (int i = m->nlayers - 1; i >= 0; i--) {
        sm_layer *l = &m->layers[i];
        if (!l->need_grad) continue;   /* frozen, and so is everything before it */
        for (int k = 0; k < l->nin; k++) {
            int j = l->inp[k];
            ins[k] = j < 0 ? x : m->acts[j];
            din[k] = j < 0 || !m->layers[j].need_grad ? NULL : m->grad[j];
            if (!din[k]) continue;
            bool first = true;
            for (int q = 0; q < k; q++) first &= l->inp[q] != j;
            if (j >= 0 && first && m->layers[j].last_reader == i)
                memset(din[k], 0, (size_t)(n * sm_ashape_numel(m->layers[j].out)) * sizeof(float));
        }
        sm_lctx c;
        lctx_fill(m, l, &c, true);
        l->ops->backward(l, &c, ins, m->acts[i], m->grad[i], din, n);
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
    m->backward_ready = false;
    const float *emb = sm_model_forward(m, x, n);
    x = m->input.c == 1 ? x : m->xin;
    m->head->ops->forward(m->head, m, emb, labels, n, NULL);
    *loss = m->head->loss;
    if (correct) *correct = m->head->correct;
    if (!isfinite(*loss)) return sm_fail(err, SM_ERR_NAN, "the loss is %g", *loss);
    sm_model_zero_grad(m);
    int64_t d = sm_model_dim(m);
    float *g = m->grad[m->nlayers - 1];
    memset(g, 0, (size_t)(n * d) * sizeof(float));
    m->head->ops->backward(m->head, m, emb, labels, n, g);
    backward_nodes(m, x, n);
    return SM_OK;
}

sm_status sm_model_run(sm_model *m, const float *x, int64_t n, const float **out, sm_err *err)
{
    *out = NULL;
    if (n <= 0) return sm_fail(err, SM_ERR_ARG, "batch size must be positive (got %lld)", (long long)n);
    sm_status st;
    if (m->training || (m->plan_n > 0 && !m->plan_infer && n > m->plan_n))
        st = sm_model_plan(m, n, err);
    else
        st = sm_model_plan_inference(m, n, err);
    if (st) return st;
    m->backward_ready = false;
    *out = sm_model_forward(m, x, n);
    if (m->training) {
        m->run_x = m->input.c == 1 ? x : m->xin;
        m->run_n = n;
        m->backward_ready = true;
    }
    return SM_OK;
}

sm_status sm_model_backward(sm_model *m, const float *dout, sm_err *err)
{
    if (!m->backward_ready)
        return sm_fail(err, SM_ERR_ARG, "sm_model_backward needs a training-mode sm_model_run "
                       "before it (each serves one backward)");
    if (plan_stale(m))
        return sm_fail(err, SM_ERR_ARG, "the thread count grew from %d to %d between the forward "
                       "and the backward; run the forward again", m->plan_threads, sm_threads_get());
    m->backward_ready = false;
    int64_t n = m->run_n, d = sm_model_dim(m);
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(dout[i]))
            return sm_fail(err, SM_ERR_NAN, "dout[%lld] is not finite", (long long)i);
    sm_model_zero_grad(m);
    memcpy(m->grad[m->nlayers - 1], dout, (size_t)(n * d) * sizeof(float));
    backward_nodes(m, m->run_x, n);
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
    m->backward_ready = false;
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
