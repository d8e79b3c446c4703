/* modelio.c - models to and from safetensors checkpoints.
 *
 * Tensors: every parameter and BN running statistic under its PyTorch
 * state_dict name, F32; "<node>.num_batches_tracked" of every batch norm as an I64 scalar;
 * with a training state also "optimizer.state0" / "optimizer.state1", flat
 * F32 buffers in the parameter buffer's layout.
 * __metadata__ (all strings, see docs/formats.md):
 *   simile.format "1", spec, head (JSON), classes (JSON array), input_norm
 *   (JSON), and with a training state: train.epoch, train.step, optimizer
 *   (JSON), train.config (JSON). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "head.h"
#include "model.h"

#define FORMAT_VERSION "1"

static sm_status meta_json(sm_ckpt_writer *w, const char *key, json_t *v, sm_err *err)
{
    if (!v) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    char *txt = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    if (!txt) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = sm_ckpt_add_meta(w, key, txt, err);
    free(txt);
    return st;
}

sm_status sm_model_save(sm_model *m, const char *path, const sm_train_state *ts, sm_err *err)
{
    sm_ckpt_writer *w = NULL;
    sm_status st = sm_ckpt_writer_new(&w, err);
    if (st) return st;
    int64_t *nbt = calloc((size_t)m->nlayers + 1, sizeof *nbt);
    if (!nbt) { sm_ckpt_writer_free(w); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < m->ntensors && !st; i++) {
        sm_tensor_ref *t = &m->tensors[i];
        st = sm_ckpt_add(w, t->name, SM_DT_F32, t->ndim, t->shape,
                         t->trainable ? m->params + t->off : m->state + t->off, err);
    }
    for (int i = 0; i < m->nlayers && !st; i++)
        if (m->layers[i].rmean >= 0) {
            char name[160];
            snprintf(name, sizeof name, "%s.num_batches_tracked", m->layers[i].name);
            nbt[i] = m->layers[i].nbt;
            st = sm_ckpt_add(w, name, SM_DT_I64, 0, NULL, &nbt[i], err);
        }
    if (!st) st = sm_ckpt_add_meta(w, "simile.format", FORMAT_VERSION, err);
    if (!st) st = sm_ckpt_add_meta(w, "spec", m->spec, err);
    if (!st) {
        const sm_head_config *c = m->head ? &m->head->cfg : NULL;
        static const char *miners[] = {"all", "hard", "semihard"};
        json_t *h = c
            ? json_pack("{s:s, s:I, s:f, s:f, s:b, s:f, s:s, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                        "s:I, s:f, s:f, s:f, s:f, s:I}", "kind",
                        sm_head_name(c->kind), "classes", (json_int_t)m->head->c, "scale",
                        (double)c->scale, "margin", (double)c->margin, "easy_margin",
                        (int)c->easy_margin, "margin_neg", (double)c->margin_neg, "miner",
                        miners[c->miner], "raw", (int)c->raw, "alpha", (double)c->alpha, "beta",
                        (double)c->beta, "base", (double)c->base, "epsilon", (double)c->epsilon,
                        "m1", (double)c->m1, "m2", (double)c->m2, "m3", (double)c->m3,
                        "subcenters", (json_int_t)c->subcenters, "lambda_base", (double)c->lambda_base,
                        "lambda_min", (double)c->lambda_min, "gamma", (double)c->gamma, "power",
                        (double)c->power, "iter", (json_int_t)m->head->iter)
            : json_pack("{s:s}", "kind", "none");
        st = meta_json(w, "head", h, err);
    }
    if (!st) {
        json_t *a = json_array();
        for (int32_t i = 0; a && i < m->nnames; i++) json_array_append_new(a, json_string(m->names[i]));
        st = meta_json(w, "classes", a, err);
    }
    if (!st)
        st = meta_json(w, "input_norm",
                       json_pack("{s:f, s:f}", "mean", (double)m->in_mean, "std", (double)m->in_std),
                       err);
    int64_t shape1[1];
    if (!st && ts) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)ts->epoch);
        st = sm_ckpt_add_meta(w, "train.epoch", buf, err);
        snprintf(buf, sizeof buf, "%lld", (long long)ts->step);
        if (!st) st = sm_ckpt_add_meta(w, "train.step", buf, err);
        if (!st && ts->config) st = sm_ckpt_add_meta(w, "train.config", ts->config, err);
        if (!st && ts->optim) {
            const sm_optim_config *oc = sm_optim_config_of(ts->optim);
            st = meta_json(w, "optimizer",
                           json_pack("{s:s, s:f, s:f, s:b, s:f, s:f, s:f, s:f, s:i}", "kind",
                                     oc->kind == SM_OPTIM_SGD ? "sgd" : "adamw", "lr", (double)oc->lr,
                                     "momentum", (double)oc->momentum, "nesterov", (int)oc->nesterov,
                                     "weight_decay", (double)oc->weight_decay, "beta1",
                                     (double)oc->beta1, "beta2", (double)oc->beta2, "eps",
                                     (double)oc->eps, "steps", (json_int_t)sm_optim_steps(ts->optim)),
                           err);
            shape1[0] = m->nparams;
            for (int k = 0; k < 2 && !st; k++) {
                float *buf0 = sm_optim_state(ts->optim, k);
                if (buf0)
                    st = sm_ckpt_add(w, k ? "optimizer.state1" : "optimizer.state0", SM_DT_F32, 1,
                                     shape1, buf0, err);
            }
        }
    }
    if (!st) st = sm_ckpt_write(w, path, err);
    sm_ckpt_writer_free(w);
    free(nbt);
    return st;
}

static sm_status parse_head(const char *txt, const char *path, sm_head_config *hc, int64_t *classes,
                            int64_t *iter, sm_err *err)
{
    json_error_t je;
    json_t *h = txt ? json_loads(txt, 0, &je) : NULL;
    const char *kind = NULL;
    double scale = 0, margin = 0;
    int easy = 0;
    json_int_t c = 0;
    memset(hc, 0, sizeof *hc);
    *classes = 0;
    if (!h || json_unpack(h, "{s:s}", "kind", &kind) != 0) {
        json_decref(h);
        return sm_fail(err, SM_ERR_FORMAT, "'%s': the checkpoint's head metadata is missing or malformed", path);
    }
    sm_status st = SM_OK;
    if (strcmp(kind, "none") != 0) {
        st = sm_head_config_default(hc, kind, err);
        double mneg = hc->margin_neg, al = hc->alpha, be = hc->beta, ba = hc->base, ep = hc->epsilon;
        int raw = hc->raw;
        const char *miner = "all";
        if (!st && json_unpack(h, "{s:I, s:F, s:F, s?b, s?F, s?s, s?b, s?F, s?F, s?F, s?F}", "classes", &c,
                               "scale", &scale, "margin", &margin, "easy_margin", &easy, "margin_neg",
                               &mneg, "miner", &miner, "raw", &raw, "alpha", &al, "beta", &be, "base",
                               &ba, "epsilon", &ep) != 0)
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': the head metadata lacks classes/scale/margin", path);
        hc->scale = (float)scale;
        hc->margin = (float)margin;
        hc->easy_margin = easy;
        hc->margin_neg = (float)mneg;
        hc->miner = !strcmp(miner, "hard") ? SM_MINER_HARD : !strcmp(miner, "semihard") ? SM_MINER_SEMIHARD
                                                                                       : SM_MINER_ALL;
        hc->raw = raw;
        hc->alpha = (float)al;
        hc->beta = (float)be;
        hc->base = (float)ba;
        hc->epsilon = (float)ep;
        double m1 = hc->m1, m2 = hc->m2, m3 = hc->m3, lb = hc->lambda_base, lm = hc->lambda_min,
               ga = hc->gamma, pw = hc->power;
        json_int_t sc = hc->subcenters, it = 0;
        if (!st && json_unpack(h, "{s?F, s?F, s?F, s?I, s?F, s?F, s?F, s?F, s?I}", "m1", &m1, "m2", &m2, "m3",
                               &m3, "subcenters", &sc, "lambda_base", &lb, "lambda_min", &lm, "gamma",
                               &ga, "power", &pw, "iter", &it) != 0)
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': malformed head metadata", path);
        hc->m1 = (float)m1;
        hc->m2 = (float)m2;
        hc->m3 = (float)m3;
        hc->subcenters = sc;
        hc->lambda_base = (float)lb;
        hc->lambda_min = (float)lm;
        hc->gamma = (float)ga;
        hc->power = (float)pw;
        *iter = it;
        *classes = c;
    }
    json_decref(h);
    return st;
}

static sm_status load_into(sm_model *m, const sm_ckpt *ck, const char *path, sm_err *err)
{
    for (int i = 0; i < m->ntensors; i++) {
        sm_tensor_ref *t = &m->tensors[i];
        const sm_ckpt_tensor *ct;
        sm_status st = sm_ckpt_get(ck, t->name, SM_DT_F32, t->ndim, t->shape, &ct, err);
        if (st) return sm_fail_prefix(err, st, "'%s' does not fit its own model spec: ", path);
        memcpy(t->trainable ? m->params + t->off : m->state + t->off, ct->data, ct->nbytes);
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].rmean >= 0) {
            char name[160];
            snprintf(name, sizeof name, "%s.num_batches_tracked", m->layers[i].name);
            const sm_ckpt_tensor *ct = sm_ckpt_find(ck, name);
            if (ct && ct->dtype == SM_DT_I64 && ct->numel == 1) memcpy(&m->layers[i].nbt, ct->data, 8);
        }
    /* refuse NaN/Inf weights: a diverged run should not be served */
    for (int64_t i = 0; i < m->nparams; i++)
        if (!isfinite(m->params[i]))
            return sm_fail(err, SM_ERR_NAN, "'%s': parameter %lld is not finite", path, (long long)i);
    return SM_OK;
}

sm_status sm_model_load(sm_model **out, const char *path, sm_err *err)
{
    *out = NULL;
    sm_ckpt *ck = NULL;
    sm_status st = sm_ckpt_read(path, &ck, err);
    if (st) return st;
    const char *fmt = sm_ckpt_meta(ck, "simile.format"), *spec = sm_ckpt_meta(ck, "spec");
    if (!fmt || !spec) {
        sm_ckpt_free(ck);
        return sm_fail(err, SM_ERR_FORMAT,
                       "'%s' is a safetensors file but not a simile model (no simile.format/spec metadata)",
                       path);
    }
    if (strcmp(fmt, FORMAT_VERSION) != 0) {
        sm_ckpt_free(ck);
        return sm_fail(err, SM_ERR_UNSUPPORTED, "'%s': model format version %s, this simile reads %s",
                       path, fmt, FORMAT_VERSION);
    }
    sm_head_config hc;
    int64_t classes, iter = 0;
    sm_model *m = NULL;
    st = parse_head(sm_ckpt_meta(ck, "head"), path, &hc, &classes, &iter, err);
    if (!st) {
        st = sm_model_build(&m, spec, &hc, classes, 0, false, err);   /* load_into fills every tensor */
        if (st) sm_fail_prefix(err, st, "'%s': ", path);
        else if (m->head) m->head->iter = iter;
    }
    if (!st) st = load_into(m, ck, path, err);
    if (!st) {
        json_error_t je;
        json_t *a = json_loads(sm_ckpt_meta(ck, "classes") ? sm_ckpt_meta(ck, "classes") : "[]", 0, &je);
        size_t n = json_is_array(a) ? json_array_size(a) : 0;
        const char **names = calloc(n + 1, sizeof *names);
        for (size_t i = 0; names && i < n; i++) {
            const char *s = json_string_value(json_array_get(a, i));
            names[i] = s ? s : "?";
        }
        st = names ? sm_model_set_classes(m, names, (int32_t)n, err)
                   : sm_fail(err, SM_ERR_NOMEM, "out of memory");
        free(names);
        json_decref(a);
        double mean = 0, sd = 1;
        json_t *nj = json_loads(sm_ckpt_meta(ck, "input_norm") ? sm_ckpt_meta(ck, "input_norm") : "{}", 0, &je);
        if (nj) json_unpack(nj, "{s?F, s?F}", "mean", &mean, "std", &sd);
        json_decref(nj);
        if (!st && (!isfinite(mean) || !(sd > 0)))
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': bad input normalisation", path);
        m->in_mean = (float)mean;
        m->in_std = (float)sd;
    }
    sm_ckpt_free(ck);
    if (st) { sm_model_free(m); return st; }
    *out = m;
    return SM_OK;
}

static sm_status meta_int(const sm_ckpt *ck, const char *key, const char *path, int64_t *v, sm_err *err)
{
    const char *s = sm_ckpt_meta(ck, key);
    char *end;
    errno = 0;
    long long x = s ? strtoll(s, &end, 10) : 0;
    if (!s || errno || *end || x < 0)
        return sm_fail(err, SM_ERR_FORMAT, "'%s' has no training state to resume from (%s missing)",
                       path, key);
    *v = x;
    return SM_OK;
}

sm_status sm_model_load_train_state(const char *path, sm_train_state *ts, sm_err *err)
{
    sm_ckpt *ck = NULL;
    sm_status st = sm_ckpt_read(path, &ck, err);
    if (st) return st;
    st = meta_int(ck, "train.epoch", path, &ts->epoch, err);
    if (!st) st = meta_int(ck, "train.step", path, &ts->step, err);
    ts->config = NULL;
    if (!st && ts->optim) {
        const sm_optim_config *oc = sm_optim_config_of(ts->optim);
        json_error_t je;
        const char *kind = NULL;
        json_int_t steps = 0;
        json_t *o = sm_ckpt_meta(ck, "optimizer") ? json_loads(sm_ckpt_meta(ck, "optimizer"), 0, &je) : NULL;
        if (!o || json_unpack(o, "{s:s, s:I}", "kind", &kind, "steps", &steps) != 0)
            st = sm_fail(err, SM_ERR_FORMAT, "'%s' holds no optimizer state", path);
        else if (strcmp(kind, oc->kind == SM_OPTIM_SGD ? "sgd" : "adamw") != 0)
            st = sm_fail(err, SM_ERR_ARG, "'%s' was trained with %s; resume with the same optimizer",
                         path, kind);
        json_decref(o);
        for (int k = 0; k < 2 && !st; k++) {
            float *buf = sm_optim_state(ts->optim, k);
            if (!buf) continue;
            const sm_ckpt_tensor *ct = sm_ckpt_find(ck, k ? "optimizer.state1" : "optimizer.state0");
            if (!ct || ct->dtype != SM_DT_F32 || ct->ndim != 1)
                st = sm_fail(err, SM_ERR_FORMAT, "'%s': optimizer state %d missing", path, k);
            else if (ct->shape[0] != sm_optim_size(ts->optim))
                st = sm_fail(err, SM_ERR_SHAPE, "'%s': optimizer state has %lld values, the model %lld",
                             path, (long long)ct->shape[0], (long long)sm_optim_size(ts->optim));
            else
                memcpy(buf, ct->data, ct->nbytes);
        }
        if (!st) sm_optim_set_steps(ts->optim, steps);
    }
    sm_ckpt_free(ck);
    return st;
}
