/* optim.c - SGD (momentum, Nesterov, weight decay) and AdamW over one flat
 * parameter buffer; learning-rate schedules.
 *
 * SGD follows torch.optim.SGD exactly (dampening 0): g = grad + wd·p;
 * buf = μ·buf + g (buf = g at the first step); g = nesterov ? g + μ·buf : buf;
 * p -= lr·g. AdamW follows torch.optim.AdamW: p -= lr·wd·p (decoupled), then
 * Adam with bias correction. Weight decay applies to every parameter, as with
 * optimizer(model.parameters()) in PyTorch. Learning-rate multipliers are
 * PyTorch's parameter groups with lr = base·scale: the whole update of a
 * range (decay included) uses lr·scale; scale 0 leaves the range and its state
 * untouched (a parameter outside the optimizer). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

struct sm_optim {
    sm_optim_config cfg;
    int64_t n;
    int64_t t;          /* steps taken */
    float *s0, *s1;     /* momentum / Adam m, Adam v */
    /* learning-rate multipliers: [cut[i], cut[i+1]) has scale[i], nseg intervals
     * covering 0..n, adjacent ones different */
    int nseg;
    int64_t *cut;
    float *scale;
};

void sm_optim_config_default(sm_optim_config *c, sm_optim_kind kind)
{
    if (kind == SM_OPTIM_ADAMW)
        *c = (sm_optim_config){.kind = kind, .lr = 1e-3f, .weight_decay = 1e-2f, .beta1 = 0.9f,
                               .beta2 = 0.999f, .eps = 1e-8f};
    else
        *c = (sm_optim_config){.kind = SM_OPTIM_SGD, .lr = 0.03f, .momentum = 0.9f, .nesterov = true,
                               .weight_decay = 2e-3f};
}

sm_status sm_optim_new(sm_optim **out, const sm_optim_config *cfg, int64_t n, sm_err *err)
{
    *out = NULL;
    if (cfg->kind != SM_OPTIM_SGD && cfg->kind != SM_OPTIM_ADAMW)
        return sm_fail(err, SM_ERR_ARG, "unknown optimizer kind %d", (int)cfg->kind);
    if (!(cfg->lr >= 0) || !isfinite(cfg->lr) || !(cfg->weight_decay >= 0) ||
        !(cfg->momentum >= 0 && cfg->momentum < 1) ||
        (cfg->kind == SM_OPTIM_ADAMW && !(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 &&
                                          cfg->beta2 < 1 && cfg->eps > 0)))
        return sm_fail(err, SM_ERR_ARG,
                       "optimizer settings out of range (need lr >= 0, weight decay >= 0, "
                       "0 <= momentum/betas < 1, eps > 0)");
    if (cfg->nesterov && cfg->momentum <= 0)
        return sm_fail(err, SM_ERR_ARG, "Nesterov momentum needs momentum > 0");
    sm_optim *o = calloc(1, sizeof *o);
    if (!o) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    o->cfg = *cfg;
    o->n = n;
    o->s0 = calloc((size_t)(n ? n : 1), sizeof(float));
    o->s1 = cfg->kind == SM_OPTIM_ADAMW ? calloc((size_t)(n ? n : 1), sizeof(float)) : NULL;
    o->nseg = 1;
    o->cut = malloc(2 * sizeof *o->cut);
    o->scale = malloc(sizeof *o->scale);
    if (o->cut) { o->cut[0] = 0; o->cut[1] = n; }
    if (o->scale) o->scale[0] = 1.0f;
    if (!o->s0 || (cfg->kind == SM_OPTIM_ADAMW && !o->s1) || !o->cut || !o->scale) {
        sm_optim_free(o);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    *out = o;
    return SM_OK;
}

void sm_optim_free(sm_optim *o)
{
    if (!o) return;
    free(o->s0);
    free(o->s1);
    free(o->cut);
    free(o->scale);
    free(o);
}

sm_status sm_optim_set_lr_scale(sm_optim *o, int64_t off, int64_t count, float scale, sm_err *err)
{
    if (off < 0 || count < 0 || off > o->n || count > o->n - off)
        return sm_fail(err, SM_ERR_ARG, "%lld parameters from %lld are outside the optimizer's %lld",
                       (long long)count, (long long)off, (long long)o->n);
    if (!(scale >= 0.0f) || !isfinite(scale))
        return sm_fail(err, SM_ERR_ARG, "a learning-rate multiplier must be >= 0 (got %g)", (double)scale);
    if (count == 0) return SM_OK;
    /* the new intervals: those before off, [off, off + count), those after (split at the ends) */
    int64_t *cut = malloc(sizeof *cut * (size_t)(o->nseg + 3));
    float *sc = malloc(sizeof *sc * (size_t)(o->nseg + 2));
    if (!cut || !sc) { free(cut); free(sc); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
    int k = 0;
    int64_t end = off + count;
    for (int i = 0; i < o->nseg; i++) {
        int64_t a = o->cut[i], b = o->cut[i + 1];
        int64_t pieces[3][2] = {{a, b < off ? b : off}, {a > off ? a : off, b < end ? b : end},
                                {a > end ? a : end, b}};
        float ps[3] = {o->scale[i], scale, o->scale[i]};
        for (int p = 0; p < 3; p++) {
            if (pieces[p][0] >= pieces[p][1]) continue;
            if (k > 0 && sc[k - 1] == ps[p]) { cut[k] = pieces[p][1]; continue; }   /* merge */
            if (k == 0) cut[0] = pieces[p][0];
            sc[k] = ps[p];
            cut[++k] = pieces[p][1];
        }
    }
    free(o->cut);
    free(o->scale);
    o->cut = cut;
    o->scale = sc;
    o->nseg = k;
    return SM_OK;
}

float sm_optim_lr_scale(const sm_optim *o, int64_t i)
{
    for (int s = 0; s < o->nseg; s++)
        if (i >= o->cut[s] && i < o->cut[s + 1]) return o->scale[s];
    return 0.0f;
}

/* One update of p[a..b) with learning rate lr (an interval of sm_optim_step). */
static void step_range(sm_optim *o, float *p, const float *g, float lr, int64_t a, int64_t b)
{
    const sm_optim_config *c = &o->cfg;
    float wd = c->weight_decay;
    if (c->kind == SM_OPTIM_SGD) {
        float mu = c->momentum;
        bool first = o->t == 0;
        float *buf = o->s0;
#pragma omp parallel for schedule(static)
        for (int64_t i = a; i < b; i++) {
            float d = g[i] + wd * p[i];
            if (mu > 0) {
                buf[i] = first ? d : mu * buf[i] + d;
                d = c->nesterov ? d + mu * buf[i] : buf[i];
            }
            p[i] -= lr * d;
        }
    } else {
        int64_t t = o->t + 1;
        float b1 = c->beta1, b2 = c->beta2;
        double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
        float step = (float)(lr / bc1);
        float sbc2 = (float)sqrt(bc2);
        float *m = o->s0, *v = o->s1;
#pragma omp parallel for schedule(static)
        for (int64_t i = a; i < b; i++) {
            p[i] *= 1.0f - lr * wd;
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            p[i] -= step * m[i] / (sqrtf(v[i]) / sbc2 + c->eps);
        }
    }
}

void sm_optim_step(sm_optim *o, float *p, const float *g, float lr)
{
    for (int s = 0; s < o->nseg; s++)   /* multiplier 0: frozen, as if not in the optimizer */
        if (o->scale[s] > 0.0f)
            step_range(o, p, g, o->scale[s] == 1.0f ? lr : lr * o->scale[s], o->cut[s], o->cut[s + 1]);
    o->t++;
}

int64_t sm_optim_steps(const sm_optim *o) { return o->t; }
int64_t sm_optim_size(const sm_optim *o) { return o->n; }

float *sm_optim_state(sm_optim *o, int which)
{
    return which == 0 ? o->s0 : which == 1 ? o->s1 : NULL;
}

void sm_optim_set_steps(sm_optim *o, int64_t t) { o->t = t; }

const sm_optim_config *sm_optim_config_of(const sm_optim *o) { return &o->cfg; }

/* ------------------------------------------------------------------ schedules */
float sm_sched_lr(const sm_sched_config *s, float base, int64_t step, int64_t total)
{
    if (s->warmup > 0 && step < s->warmup)
        return base * (float)(step + 1) / (float)s->warmup;   /* linear warm-up from base/warmup */
    int64_t t = step - s->warmup, T = total - s->warmup;
    switch (s->kind) {
    case SM_SCHED_STEP: {
        int64_t k = s->step_size > 0 ? t / s->step_size : 0;
        return base * powf(s->gamma, (float)k);
    }
    case SM_SCHED_COSINE:
        if (T <= 0) return base;
        if (t > T) t = T;
        /* torch's CosineAnnealingLR closed form: eta_min + (base - eta_min)(1 + cos(pi t / T))/2,
         * in double: in float, 1 + cos cancels near t = T (2.5e-3 relative error at step 999
         * of 1000, and exactly 0 where torch has ~5e-9 base at step 9999 of 10000) */
        return (float)(s->min_lr +
                       ((double)base - s->min_lr) * 0.5 * (1.0 + cos(M_PI * (double)t / (double)T)));
    default:
        return base;
    }
}
