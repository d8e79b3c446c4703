/* head.c - softmax and the normalised margin heads (NormFace, CosFace, ArcFace).
 *
 * Margin heads: x̂ = x/‖x‖, ŵ_j = w_j/‖w_j‖, c_ij = x̂_i·ŵ_j,
 *   logit_ij = s·c_ij for j ≠ y_i,  logit_iy = s·phi(c_iy),
 *   L = mean_i [ logsumexp_j(logit_ij) - logit_iy ].
 * phi: NormFace c; CosFace c - m; ArcFace cos(θ + m) with θ = acos(c).
 * ArcFace where θ + m > π (cos(θ+m) would start increasing again, rewarding a
 * worse angle) uses the th/mm fallback of insightface: phi = c - m·sin(m) when
 * c <= cos(π - m) (default), or "easy margin": phi = c when c <= 0.
 * The gradient is the true derivative of this forward:
 *   d cos(θ+m)/dc = cos m + c·sin m / sin θ,
 * with sin θ floored at 1e-12 only to avoid 0/0 at c = ±1 exactly.
 * Softmax: logits = x Wᵀ + b (a Linear layer), the baseline. */
#include "head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"

double sm_head_phi(const sm_head_config *cfg, double c, double *dphi)
{
    double m = cfg->margin;
    switch (cfg->kind) {
    case SM_HEAD_COSFACE:
        *dphi = 1.0;
        return c - m;
    case SM_HEAD_ARCFACE: {
        double cc = c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
        double th = cfg->easy_margin ? 0.0 : cos(M_PI - m);
        if (cc > th) {
            double sn = sqrt(1.0 - cc * cc);
            if (sn < 1e-12) sn = 1e-12;
            *dphi = cos(m) + cc * sin(m) / sn;
            return cc * cos(m) - sn * sin(m);
        }
        *dphi = 1.0;
        return cfg->easy_margin ? c : c - m * sin(m);
    }
    default:
        *dphi = 1.0;
        return c;
    }
}

/* Exact softmax cross-entropy over rows of z (N,C); writes dz = (p - onehot)/N
 * and returns the mean loss. Computed in double. */
static double cross_entropy(float *dz, const float *z, const int32_t *labels, int64_t n,
                            int64_t c)
{
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t i = 0; i < n; i++) {
        const float *zi = z + i * c;
        double mx = zi[0];
        for (int64_t j = 1; j < c; j++) mx = zi[j] > mx ? zi[j] : mx;
        double s = 0.0;
        for (int64_t j = 0; j < c; j++) s += exp((double)zi[j] - mx);
        double lse = mx + log(s);
        total += lse - zi[labels[i]];
        for (int64_t j = 0; j < c; j++)
            dz[i * c + j] = (float)((exp((double)zi[j] - lse) - (j == labels[i])) / (double)n);
    }
    return total / (double)n;
}

static void argmax_rows(int32_t *pred, const float *z, int64_t n, int64_t c)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < c; j++)
            if (z[i * c + j] > z[i * c + best]) best = j;
        pred[i] = (int32_t)best;
    }
}

static int64_t count_correct(const float *z, const int32_t *labels, int64_t n, int64_t c)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < c; j++)
            if (z[i * c + j] > z[i * c + best]) best = j;
        k += best == labels[i];
    }
    return k;
}

static sm_status weight_build(sm_head *h, sm_model *m, bool bias, sm_err *err)
{
    int64_t shape[2] = {h->c, h->d};
    h->w = sm_model_add_tensor(m, "head.weight", true, 2, shape);
    if (bias) h->b = sm_model_add_tensor(m, "head.bias", true, 1, shape);
    if (h->w < 0 || (bias && h->b < 0))
        return sm_fail(err, SM_ERR_ARG, "too many tensors in the model");
    return SM_OK;
}

/* ------------------------------------------------------------------ softmax */
static sm_status softmax_build(sm_head *h, sm_model *m, sm_err *err)
{
    return weight_build(h, m, true, err);
}

static void softmax_init(sm_head *h, sm_model *m, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    float bound = 1.0f / sqrtf((float)h->d);   /* nn.Linear's default */
    float *w = sm_model_param(m, h->w), *b = sm_model_param(m, h->b);
    for (int64_t i = 0; i < h->c * h->d; i++) w[i] = (2.0f * sm_rng_float(&r) - 1.0f) * bound;
    for (int64_t i = 0; i < h->c; i++) b[i] = (2.0f * sm_rng_float(&r) - 1.0f) * bound;
}

static void softmax_forward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                            int64_t n, int32_t *pred)
{
    sm_linear_forward(h->cos, emb, sm_model_param(m, h->w), sm_model_param(m, h->b), n, h->d, h->c);
    if (pred) argmax_rows(pred, h->cos, n, h->c);
    if (labels) {
        h->loss = cross_entropy(h->dz, h->cos, labels, n, h->c);
        h->correct = count_correct(h->cos, labels, n, h->c);
    }
}

static void softmax_backward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                             int64_t n, float *demb)
{
    (void)labels;
    sm_linear_backward(demb, sm_model_grad(m, h->w), sm_model_grad(m, h->b), h->dz, emb,
                       sm_model_param(m, h->w), n, h->d, h->c);
}

static const struct sm_head_ops softmax_ops = {
    "softmax", false, false, softmax_build, softmax_init, softmax_forward, softmax_backward};

/* ------------------------------------------------------------------ margin heads */
static sm_status margin_build(sm_head *h, sm_model *m, sm_err *err)
{
    const sm_head_config *c = &h->cfg;
    if (!(c->scale > 0) || !isfinite(c->scale))
        return sm_fail(err, SM_ERR_ARG, "head %s: scale must be > 0 (got %g)", h->ops->name,
                       (double)c->scale);
    if (!(c->margin >= 0) || (c->kind == SM_HEAD_ARCFACE && !(c->margin < M_PI / 2)) ||
        (c->kind == SM_HEAD_COSFACE && !(c->margin < 1)))
        return sm_fail(err, SM_ERR_ARG, "head %s: margin %g out of range (%s)", h->ops->name,
                       (double)c->margin,
                       c->kind == SM_HEAD_ARCFACE ? "0 <= m < pi/2 radians" : "0 <= m < 1");
    return weight_build(h, m, false, err);
}

static void margin_init(sm_head *h, sm_model *m, uint64_t seed)
{
    /* Xavier-uniform, as the common ArcFace implementations initialise W. */
    sm_rng r;
    sm_rng_seed(&r, seed);
    float bound = sqrtf(6.0f / (float)(h->c + h->d));
    float *w = sm_model_param(m, h->w);
    for (int64_t i = 0; i < h->c * h->d; i++) w[i] = (2.0f * sm_rng_float(&r) - 1.0f) * bound;
}

static void margin_forward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                           int64_t n, int32_t *pred)
{
    int64_t d = h->d, c = h->c;
    const float eps = 1e-12f;   /* F.normalize's default */
    sm_l2norm_forward(h->xn, h->xnorm, emb, n, d, eps);
    sm_l2norm_forward(h->wn, h->wnorm, sm_model_param(m, h->w), c, d, eps);
    sm_gemm(false, true, n, c, d, 1.0f, h->xn, d, h->wn, d, 0.0f, h->cos, c);
    if (pred) argmax_rows(pred, h->cos, n, c);
    if (!labels) return;
    h->correct = count_correct(h->cos, labels, n, c);
    /* logits into dz (scratch), then cross-entropy in place */
    float s = h->cfg.scale;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < c; j++) h->dz[i * c + j] = s * h->cos[i * c + j];
        double dphi;
        double phi = sm_head_phi(&h->cfg, h->cos[i * c + labels[i]], &dphi);
        h->dz[i * c + labels[i]] = (float)(s * phi);
        h->dphi[i] = (float)dphi;
    }
    h->loss = cross_entropy(h->dz, h->dz, labels, n, c);
}

static void margin_backward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                            int64_t n, float *demb)
{
    (void)emb;
    int64_t d = h->d, c = h->c;
    float s = h->cfg.scale;
    /* dL/dcos, in place in dz */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < c; j++) h->dz[i * c + j] *= s;
        h->dz[i * c + labels[i]] *= h->dphi[i];
    }
    sm_gemm(false, false, n, d, c, 1.0f, h->dz, c, h->wn, d, 0.0f, h->dx, d);   /* dx̂ */
    sm_gemm(true, false, c, d, n, 1.0f, h->dz, c, h->xn, d, 0.0f, h->dw, d);    /* dŵ */
    sm_l2norm_backward(demb, h->dx, h->xn, h->xnorm, n, d, 1e-12f);
    sm_l2norm_backward(sm_model_grad(m, h->w), h->dw, h->wn, h->wnorm, c, d, 1e-12f);
}

static const struct sm_head_ops normface_ops = {
    "normface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops cosface_ops = {
    "cosface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops arcface_ops = {
    "arcface", true, false, margin_build, margin_init, margin_forward, margin_backward};

/* ------------------------------------------------------------------ public */
static const struct {
    sm_head_kind kind;
    const struct sm_head_ops *ops;
    float scale, margin;
} table[] = {
    {SM_HEAD_SOFTMAX, &softmax_ops, 0.0f, 0.0f},
    {SM_HEAD_NORMFACE, &normface_ops, 30.0f, 0.0f},
    {SM_HEAD_COSFACE, &cosface_ops, 30.0f, 0.35f},
    {SM_HEAD_ARCFACE, &arcface_ops, 30.0f, 0.5f},
    {SM_HEAD_CONTRASTIVE, &sm_contrastive_ops, 0.0f, 0.0f},
    {SM_HEAD_TRIPLET, &sm_triplet_ops, 0.0f, 0.2f},
    {SM_HEAD_MULTISIM, &sm_multisim_ops, 0.0f, 0.0f},
};
#define NKINDS ((int)(sizeof table / sizeof table[0]))

sm_status sm_head_config_default(sm_head_config *cfg, const char *name, sm_err *err)
{
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(table[i].ops->name, name) == 0) {
            /* pair-loss defaults: contrastive m_neg 1 (PyTorch-metric-learning's);
             * multi-similarity α 2, β 50, λ 0.5, ε 0.1 (the paper's mining ε, PML's base) */
            *cfg = (sm_head_config){.kind = table[i].kind, .scale = table[i].scale,
                                    .margin = table[i].margin, .easy_margin = false,
                                    .margin_neg = 1.0f, .miner = SM_MINER_ALL, .raw = false,
                                    .alpha = 2.0f, .beta = 50.0f, .base = 0.5f, .epsilon = 0.1f};
            return SM_OK;
        }
    return sm_fail(err, SM_ERR_ARG, "unknown head '%s' (known: %s)", name, sm_head_names());
}

const char *sm_head_names(void)
{
    return "softmax normface cosface arcface contrastive triplet multi-similarity";
}

const char *sm_head_name(sm_head_kind kind)
{
    for (int i = 0; i < NKINDS; i++)
        if (table[i].kind == kind) return table[i].ops->name;
    return NULL;
}

sm_status sm_head_new(sm_head **out, sm_model *m, const sm_head_config *cfg, int64_t d,
                      int64_t nclasses, sm_err *err)
{
    *out = NULL;
    const struct sm_head_ops *ops = NULL;
    for (int i = 0; i < NKINDS; i++)
        if (table[i].kind == cfg->kind) ops = table[i].ops;
    if (!ops) return sm_fail(err, SM_ERR_ARG, "unknown head kind %d", (int)cfg->kind);
    if (ops->pairwise) nclasses = 0;   /* no class weights */
    else if (nclasses < 2 || nclasses > (1 << 24))
        return sm_fail(err, SM_ERR_ARG, "a head needs 2 to 16777216 classes (got %lld)",
                       (long long)nclasses);
    sm_head *h = calloc(1, sizeof *h);
    if (!h) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    *h = (sm_head){.ops = ops, .cfg = *cfg, .d = d, .c = nclasses, .w = -1, .b = -1};
    sm_status st = ops->build(h, m, err);
    if (st) { free(h); return st; }
    *out = h;
    return SM_OK;
}

void sm_head_free(sm_head *h)
{
    if (!h) return;
    free(h->buf);
    free(h->pair);
    free(h);
}

sm_status sm_head_plan(sm_head *h, int64_t n, sm_err *err)
{
    if (n <= h->cap) return SM_OK;
    int64_t d = h->d, c = h->c;
    size_t total = (size_t)(n * d * 2 + n * 2 + c * d * 2 + c + n * c * 2 + n);
    float *buf = malloc(total * sizeof *buf);
    double *pair = h->ops->pairwise ? malloc(sizeof(double) * (size_t)(2 * n * n + 2 * n)) : NULL;
    if (!buf || (h->ops->pairwise && !pair)) {
        free(buf);
        free(pair);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory planning the head for batch %lld",
                       (long long)n);
    }
    free(h->buf);
    free(h->pair);
    h->buf = buf;
    h->pair = pair;
    h->xn = buf; buf += n * d;
    h->dx = buf; buf += n * d;
    h->xnorm = buf; buf += n;
    h->dphi = buf; buf += n;
    h->wn = buf; buf += c * d;
    h->dw = buf; buf += c * d;
    h->wnorm = buf; buf += c;
    h->cos = buf; buf += n * c;
    h->dz = buf; buf += n * c;
    h->cap = n;
    return SM_OK;
}
