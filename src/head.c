/* head.c - softmax and the normalised margin heads (NormFace, CosFace, ArcFace).
 *
 * Margin heads: x̂ = x/‖x‖, ŵ_j = w_j/‖w_j‖, c_ij = x̂_i·ŵ_j,
 *   logit_ij = s·c_ij for j ≠ y_i,  logit_iy = s·phi(c_iy),
 *   L = mean_i [ logsumexp_j(logit_ij) - logit_iy ].
 * phi: NormFace c; CosFace c - m; ArcFace cos(θ + m) with θ = acos(c).
 * ArcFace where θ + m > π (cos(θ+m) would start increasing again, rewarding a
 * worse angle) uses the th/mm fallback of insightface: phi = c - m·sin(m) when
 * c <= cos(π - m) (default), or "easy margin": phi = c when c <= 0.
 * The gradient is the true derivative of this forward. For targets whose
 * logit is a function of the angle (ArcFace, combined, SphereFace) it is taken
 * as dL/dθ along the unit tangent (ŵ - cos θ x̂)/sin θ, formed from the vectors,
 * rather than through d/dcos θ = cos m + cos θ·sin m/sin θ: the two are equal,
 * but the second is unbounded as θ -> 0 and float cos θ rounds to 1 near the
 * class centre (2-D features crowd there). Exactly at θ = 0 the direction is
 * undefined and that target contributes no gradient (a kink).
 * Softmax: logits = x Wᵀ + b (a Linear layer), the baseline. */
#include "head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"

/* The target logit phi(cos θ) of the margin heads and its slope, split in
 * two regimes (see margin_backward for why):
 *   linear   phi = cos θ + const: *dlin = d phi / d cos θ (1), *dang = 0;
 *   angular  phi = f(θ): *dang = d phi / d θ, *dlin = 0.
 * ArcFace: cos(θ + m) while cos θ > cos(π - m) (angular); below, insightface's
 * fallback cos θ - m·sin m (linear), or with easy_margin cos θ when cos θ <= 0.
 * Combined (m1, m2, m3) and real-valued SphereFace (m, 0, 0):
 * cos(m1·θ + m2) - m3 while m1·θ + m2 <= π (angular); past that point the
 * curve would turn back up (rewarding a worse angle), so it continues as the
 * line cos θ - (cos θs - phi(θs)) through θs = (π - m2)/m1: continuous and
 * monotonic (linear). NormFace: cos θ; CosFace: cos θ - m (linear). */
static double target_logit(const sm_head_config *cfg, double c, double *dlin, double *dang)
{
    double m = cfg->margin, cc = c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
    *dlin = 1.0;
    *dang = 0.0;
    switch (cfg->kind) {
    case SM_HEAD_COSFACE:
        return c - m;
    case SM_HEAD_ARCFACE:
    case SM_HEAD_SUBCENTER: {   /* sub-center ArcFace: the same margin on the best sub-centre */
        double th = cfg->easy_margin ? 0.0 : cos(M_PI - m);
        if (cc > th) {
            double sn = sqrt(1.0 - cc * cc);
            *dlin = 0.0;
            *dang = -(sn * cos(m) + cc * sin(m));   /* -sin(θ + m) */
            return cc * cos(m) - sn * sin(m);       /* cos(θ + m) */
        }
        return cfg->easy_margin ? c : c - m * sin(m);
    }
    case SM_HEAD_COMBINED:
    case SM_HEAD_SPHEREFACE: {
        bool comb = cfg->kind == SM_HEAD_COMBINED;
        double m1 = comb ? cfg->m1 : m, m2 = comb ? cfg->m2 : 0.0, m3 = comb ? cfg->m3 : 0.0;
        double t = m1 * acos(cc) + m2;
        if (t <= M_PI) {
            *dlin = 0.0;
            *dang = -m1 * sin(t);
            return cos(t) - m3;
        }
        double ths = (M_PI - m2) / m1;
        return c - (cos(ths) - (-1.0 - m3));
    }
    default:
        return c;
    }
}

double sm_head_phi(const sm_head_config *cfg, double c, double *dphi)
{
    double dlin, dang;
    double phi = target_logit(cfg, c, &dlin, &dang);
    double sn = sqrt(fmax(1.0 - c * c, 0.0));
    *dphi = dlin + (dang != 0.0 ? -dang / fmax(sn, 1e-300) : 0.0);   /* dθ/dcos θ = -1/sin θ */
    return phi;
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
    int64_t shape[2] = {h->c * h->k, h->d};
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
    sm_head_config *c = &h->cfg;
    const char *name = h->ops->name;
    switch (c->kind) {
    case SM_HEAD_ADACOS:
    case SM_HEAD_ADACOS_FIXED:
        if (h->c < 3) return sm_fail(err, SM_ERR_ARG, "%s needs at least 3 classes (s = sqrt(2) ln(C-1))", name);
        if (h->d < 2) return sm_fail(err, SM_ERR_ARG, "%s needs an embedding of at least 2 dimensions", name);
        if (!(c->scale > 0)) c->scale = (float)(sqrt(2.0) * log((double)h->c - 1.0));
        break;
    case SM_HEAD_SUBCENTER:
        if (c->subcenters < 1 || c->subcenters > 64)
            return sm_fail(err, SM_ERR_ARG, "%s: 1 to 64 sub-centers per class (got %lld)", name,
                           (long long)c->subcenters);
        h->k = c->subcenters;
        break;
    case SM_HEAD_COMBINED:
        if (!(c->m1 > 0 && c->m1 <= 10 && c->m2 >= 0 && c->m2 < M_PI && c->m3 >= 0 && c->m3 < 2))
            return sm_fail(err, SM_ERR_ARG, "%s: need 0 < m1 <= 10, 0 <= m2 < pi, 0 <= m3 < 2 (got %g %g %g)",
                           name, (double)c->m1, (double)c->m2, (double)c->m3);
        break;
    case SM_HEAD_SPHEREFACE:
        if (!(c->margin >= 1 && c->margin <= 10))
            return sm_fail(err, SM_ERR_ARG, "%s: margin m must be in 1..10 (got %g)", name, (double)c->margin);
        break;
    case SM_HEAD_ASOFTMAX:
        if (!(c->margin >= 1 && c->margin <= 6 && c->margin == floorf(c->margin)))
            return sm_fail(err, SM_ERR_ARG, "%s: margin m must be an integer 1..6 (got %g)", name, (double)c->margin);
        if (!(c->lambda_min >= 0 && c->lambda_base >= 0 && c->gamma >= 0 && c->power >= 0))
            return sm_fail(err, SM_ERR_ARG, "%s: lambda schedule values must be >= 0", name);
        c->scale = 1.0f;   /* logits are scaled by ||x|| instead */
        break;
    default:
        if (!(c->margin >= 0) || (c->kind == SM_HEAD_ARCFACE && !(c->margin < M_PI / 2)) ||
            (c->kind == SM_HEAD_COSFACE && !(c->margin < 1)))
            return sm_fail(err, SM_ERR_ARG, "head %s: margin %g out of range (%s)", name,
                           (double)c->margin,
                           c->kind == SM_HEAD_ARCFACE ? "0 <= m < pi/2 radians" : "0 <= m < 1");
    }
    if (c->kind == SM_HEAD_SUBCENTER && !(c->margin >= 0 && c->margin < M_PI / 2))
        return sm_fail(err, SM_ERR_ARG, "%s: margin must be 0 <= m < pi/2", name);
    if (!(c->scale > 0) || !isfinite(c->scale))
        return sm_fail(err, SM_ERR_ARG, "head %s: scale must be > 0 (got %g)", name, (double)c->scale);
    return weight_build(h, m, false, err);
}

static void margin_init(sm_head *h, sm_model *m, uint64_t seed)
{
    /* Xavier-uniform, as the common ArcFace implementations initialise W. */
    sm_rng r;
    sm_rng_seed(&r, seed);
    float bound = sqrtf(6.0f / (float)(h->c * h->k + h->d));
    float *w = sm_model_param(m, h->w);
    for (int64_t i = 0; i < h->c * h->k * h->d; i++) w[i] = (2.0f * sm_rng_float(&r) - 1.0f) * bound;
}

/* AdaCos's dynamic scale (Zhang et al. 2019), from the current batch, before
 * the logits: B_avg = mean_i sum_{j != y_i} exp(s·cos θ_ij) with the old s,
 * θ_med = the lower median of the target angles (torch.median's choice),
 * s = ln(B_avg) / cos(min(π/4, θ_med)). ln(B_avg) is a log-sum-exp, so it
 * cannot overflow. A non-finite or non-positive result keeps the old s.
 * Only training steps update s; it is a constant of the gradient. */
static void adacos_update(sm_head *h, const int32_t *labels, int64_t n)
{
    int64_t c = h->c;
    double s = h->cfg.scale, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++)
            if (j != labels[i]) mx = fmax(mx, s * h->cos[i * c + j]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++)
            if (j != labels[i]) sum += exp(s * h->cos[i * c + j] - mx);
    double logb = mx + log(sum) - log((double)n);
    double *th = (double *)(void *)h->xs;   /* n doubles fit in the (N,D) scratch when D >= 2 */
    for (int64_t i = 0; i < n; i++) {
        double cc = h->cos[i * c + labels[i]];
        th[i] = acos(cc > 1.0 ? 1.0 : cc < -1.0 ? -1.0 : cc);
    }
    /* lower median by selection sort up to the middle (n is a batch) */
    int64_t mid = (n - 1) / 2;
    for (int64_t a = 0; a <= mid; a++) {
        int64_t b = a;
        for (int64_t q = a + 1; q < n; q++) if (th[q] < th[b]) b = q;
        double t = th[a]; th[a] = th[b]; th[b] = t;
    }
    double snew = logb / cos(fmin(M_PI / 4, th[mid]));
    if (isfinite(snew) && snew > 0) h->cfg.scale = (float)snew;
}

/* cos (N,C) from normalised features and weights; with K sub-centers per
 * class, the largest of the class's K cosines (argk remembers which). */
static void margin_cos(sm_head *h, sm_model *m, const float *emb, int64_t n)
{
    int64_t d = h->d, c = h->c, K = h->k, R = c * K;
    const float eps = 1e-12f;   /* F.normalize's default */
    sm_l2norm_forward(h->xn, h->xnorm, emb, n, d, eps);
    sm_l2norm_forward(h->wn, h->wnorm, sm_model_param(m, h->w), R, d, eps);
    if (K == 1) {
        sm_gemm(false, true, n, c, d, 1.0f, h->xn, d, h->wn, d, 0.0f, h->cos, c);
        return;
    }
    sm_gemm(false, true, n, R, d, 1.0f, h->xn, d, h->wn, d, 0.0f, h->cosk, R);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++) {
            const float *v = h->cosk + i * R + j * K;
            int32_t b = 0;
            for (int32_t q = 1; q < K; q++) if (v[q] > v[b]) b = q;
            h->cos[i * c + j] = v[b];
            h->argk[i * c + j] = b;
        }
}

static void margin_forward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                           int64_t n, int32_t *pred)
{
    int64_t c = h->c;
    margin_cos(h, m, emb, n);
    if (pred) argmax_rows(pred, h->cos, n, c);
    if (!labels) return;
    h->correct = count_correct(h->cos, labels, n, c);
    if (h->cfg.kind == SM_HEAD_ADACOS && m->training) adacos_update(h, labels, n);
    /* logits into dz (scratch), then cross-entropy in place */
    float s = h->cfg.scale;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < c; j++) h->dz[i * c + j] = s * h->cos[i * c + j];
        double dlin, dang;
        double phi = target_logit(&h->cfg, h->cos[i * c + labels[i]], &dlin, &dang);
        h->dz[i * c + labels[i]] = (float)(s * phi);
        h->dphi[i] = (float)dlin;
        h->gy[i] = (float)dang;
    }
    h->loss = cross_entropy(h->dz, h->dz, labels, n, c);
}

/* dcos (N,C) in dz -> gradients of features (into demb) and class weights;
 * ang (N) may hold dL/dθ of each target (see margin_backward) or be NULL. */
static void margin_cos_backward(sm_head *h, sm_model *m, int64_t n, float *demb, const float *ang,
                                const int32_t *labels)
{
    int64_t d = h->d, c = h->c, K = h->k, R = c * K;
    const float *dc = h->dz;
    if (K > 1) {   /* route each class's gradient to its chosen sub-center */
        memset(h->cosk, 0, sizeof(float) * (size_t)(n * R));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < c; j++) h->cosk[i * R + j * K + h->argk[i * c + j]] = h->dz[i * c + j];
        dc = h->cosk;
    }
    sm_gemm(false, false, n, d, R, 1.0f, dc, R, h->wn, d, 0.0f, h->dx, d);   /* dx̂ */
    sm_gemm(true, false, R, d, n, 1.0f, dc, R, h->xn, d, 0.0f, h->dw, d);    /* dŵ */
    for (int64_t i = 0; ang && i < n; i++) {
        if (ang[i] == 0.0f) continue;
        /* dθ/dx̂ = -(ŵ - c x̂)/|ŵ - c x̂| and dθ/dŵ = -(x̂ - c ŵ)/|x̂ - c ŵ|: unit tangents,
         * formed in double from the vectors themselves (|ŵ - c x̂| = sin θ) */
        int64_t r = labels[i] * K + (K > 1 ? h->argk[i * c + labels[i]] : 0);
        const float *x = h->xn + i * d, *w = h->wn + r * d;
        double cc = 0.0, nu = 0.0, nv = 0.0;
        for (int64_t k = 0; k < d; k++) cc += (double)x[k] * w[k];
        for (int64_t k = 0; k < d; k++) {
            double u = w[k] - cc * x[k], v = x[k] - cc * w[k];
            nu += u * u;
            nv += v * v;
        }
        nu = sqrt(nu);
        nv = sqrt(nv);
        if (nu <= 0.0 || nv <= 0.0) continue;   /* θ = 0 exactly: no direction (a kink) */
        for (int64_t k = 0; k < d; k++) {
            h->dx[i * d + k] -= (float)(ang[i] * (w[k] - cc * x[k]) / nu);
            h->dw[r * d + k] -= (float)(ang[i] * (x[k] - cc * w[k]) / nv);
        }
    }
    sm_l2norm_backward(demb, h->dx, h->xn, h->xnorm, n, d, 1e-12f);
    sm_l2norm_backward(sm_model_grad(m, h->w), h->dw, h->wn, h->wnorm, R, d, 1e-12f);
}

static void margin_backward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                            int64_t n, float *demb)
{
    (void)emb;
    int64_t c = h->c;
    float s = h->cfg.scale;
    /* dL/dcos, in place in dz. A target in the angular regime (phi = f(θ))
     * does not go through d phi/d cos θ = -f'(θ)/sin θ, which is unbounded as
     * θ -> 0 (float cos θ rounds to 1 within ~3e-4 rad of the class centre):
     * its gradient dL/dθ (in gy) is applied along the unit tangent instead,
     * where sin θ cancels and the true derivative stays bounded. */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < c; j++) h->dz[i * c + j] *= s;
        h->gy[i] *= h->dz[i * c + labels[i]];   /* dL/dθ = dL/dphi · dphi/dθ */
        h->dz[i * c + labels[i]] *= h->dphi[i];
    }
    margin_cos_backward(h, m, n, demb, h->gy, labels);
}

/* ------------------------------------------------------------------ A-Softmax
 * The original SphereFace (Liu et al. 2017): class weights normalised, no
 * bias, features NOT normalised: logit_ij = ||x_i|| cos θ_ij, and for the
 * target ||x_i|| (λ cos θ + ψ(θ)) / (1 + λ) with
 *   ψ(θ) = (-1)^k cos(mθ) - 2k,  θ in [kπ/m, (k+1)π/m],
 * cos(mθ) = T_m(cos θ) (Chebyshev), dψ/dcos θ = (-1)^k m U_{m-1}(cos θ).
 * λ = max(λ_min, λ_base (1 + γ·iter)^-power) anneals from softmax to ψ. */
static double asoftmax_psi(int m, double c, double *dpsi)
{
    double cc = c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
    int k = (int)floor(m * acos(cc) / M_PI);
    if (k >= m) k = m - 1;
    double tp = 1.0, t = cc;          /* T_0, T_1 -> T_m */
    for (int q = 2; q <= m; q++) {
        double tn = 2.0 * cc * t - tp;
        tp = t;
        t = tn;
    }
    double up = 1.0, u = 2.0 * cc;    /* U_0, U_1 -> U_{m-1} */
    if (m == 1) u = 1.0;
    for (int q = 2; q <= m - 1; q++) {
        double un = 2.0 * cc * u - up;
        up = u;
        u = un;
    }
    double sign = (k % 2) ? -1.0 : 1.0;
    *dpsi = sign * m * u;
    return sign * t - 2.0 * k;
}

double sm_head_asoftmax_lambda(const sm_head_config *c, int64_t iter)
{
    double l = c->lambda_base * pow(1.0 + c->gamma * (double)iter, -c->power);
    return l > c->lambda_min ? l : c->lambda_min;
}

static void asoftmax_forward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                             int64_t n, int32_t *pred)
{
    int64_t c = h->c;
    margin_cos(h, m, emb, n);
    if (pred) argmax_rows(pred, h->cos, n, c);
    if (!labels) return;
    h->correct = count_correct(h->cos, labels, n, c);
    double lam = sm_head_asoftmax_lambda(&h->cfg, h->iter);
    if (m->training) h->iter++;
    int mm = (int)lrintf(h->cfg.margin);
    for (int64_t i = 0; i < n; i++) {
        double r = h->xnorm[i];
        for (int64_t j = 0; j < c; j++) h->dz[i * c + j] = (float)(r * h->cos[i * c + j]);
        double dpsi, cy = h->cos[i * c + labels[i]];
        double psi = asoftmax_psi(mm, cy, &dpsi);
        double g = (lam * cy + psi) / (1.0 + lam);
        h->gy[i] = (float)g;
        h->dphi[i] = (float)((lam + dpsi) / (1.0 + lam));
        h->dz[i * c + labels[i]] = (float)(r * g);
    }
    h->loss = cross_entropy(h->dz, h->dz, labels, n, c);
}

static void asoftmax_backward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                              int64_t n, float *demb)
{
    (void)emb;
    int64_t c = h->c, d = h->d;
    /* logit = ||x|| g(cos): dL/d||x|| = sum_j dz g, dL/dcos = dz ||x|| g' */
    float *dr = h->xs;   /* (N) radial gradient */
    for (int64_t i = 0; i < n; i++) {
        double acc = 0.0, r = h->xnorm[i];
        for (int64_t j = 0; j < c; j++) {
            double g = j == labels[i] ? h->gy[i] : h->cos[i * c + j];
            acc += (double)h->dz[i * c + j] * g;
            h->dz[i * c + j] = (float)(h->dz[i * c + j] * r * (j == labels[i] ? h->dphi[i] : 1.0));
        }
        dr[i] = (float)acc;
    }
    /* through cos: dx̂ then the projection (l2norm backward divides by ||x||) */
    margin_cos_backward(h, m, n, demb, NULL, labels);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < d; k++) demb[i * d + k] += dr[i] * h->xn[i * d + k];
}

/* ------------------------------------------------------------------ L2-constrained softmax
 * Ranjan et al. 2017: x -> α x/||x|| -> Linear(D, C) with bias -> cross-entropy. */
static void l2softmax_forward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                              int64_t n, int32_t *pred)
{
    int64_t d = h->d, c = h->c;
    float a = h->cfg.scale;
    sm_l2norm_forward(h->xn, h->xnorm, emb, n, d, 1e-12f);
    for (int64_t i = 0; i < n * d; i++) h->xs[i] = a * h->xn[i];
    sm_linear_forward(h->cos, h->xs, sm_model_param(m, h->w), sm_model_param(m, h->b), n, d, c);
    if (pred) argmax_rows(pred, h->cos, n, c);
    if (labels) {
        h->loss = cross_entropy(h->dz, h->cos, labels, n, c);
        h->correct = count_correct(h->cos, labels, n, c);
    }
}

static void l2softmax_backward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels,
                               int64_t n, float *demb)
{
    (void)emb; (void)labels;
    int64_t d = h->d, c = h->c;
    memset(h->dx, 0, sizeof(float) * (size_t)(n * d));
    sm_linear_backward(h->dx, sm_model_grad(m, h->w), sm_model_grad(m, h->b), h->dz, h->xs,
                       sm_model_param(m, h->w), n, d, c);
    for (int64_t i = 0; i < n * d; i++) h->dx[i] *= h->cfg.scale;
    sm_l2norm_backward(demb, h->dx, h->xn, h->xnorm, n, d, 1e-12f);
}

static const struct sm_head_ops normface_ops = {
    "normface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops cosface_ops = {
    "cosface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops arcface_ops = {
    "arcface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops combined_ops = {
    "combined", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops sphereface_ops = {
    "sphereface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops asoftmax_ops = {
    "sphereface-asoftmax", true, false, margin_build, margin_init, asoftmax_forward, asoftmax_backward};
static const struct sm_head_ops adacos_ops = {
    "adacos", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops adacos_fixed_ops = {
    "adacos-fixed", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops subcenter_ops = {
    "subcenter-arcface", true, false, margin_build, margin_init, margin_forward, margin_backward};
static const struct sm_head_ops l2softmax_ops = {
    "l2-softmax", false, false, softmax_build, softmax_init, l2softmax_forward, l2softmax_backward};

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
    {SM_HEAD_COMBINED, &combined_ops, 30.0f, 0.0f},
    {SM_HEAD_SPHEREFACE, &sphereface_ops, 30.0f, 1.35f},
    {SM_HEAD_ASOFTMAX, &asoftmax_ops, 1.0f, 4.0f},
    {SM_HEAD_ADACOS, &adacos_ops, 0.0f, 0.0f},        /* s starts at the fixed value */
    {SM_HEAD_ADACOS_FIXED, &adacos_fixed_ops, 0.0f, 0.0f},
    {SM_HEAD_SUBCENTER, &subcenter_ops, 30.0f, 0.5f},
    {SM_HEAD_L2SOFTMAX, &l2softmax_ops, 16.0f, 0.0f},
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
                                    .alpha = 2.0f, .beta = 50.0f, .base = 0.5f, .epsilon = 0.1f,
                                    .m1 = 1.0f, .m2 = 0.3f, .m3 = 0.2f, .subcenters = 3,
                                    .lambda_base = 1000.0f, .lambda_min = 5.0f, .gamma = 0.12f,
                                    .power = 1.0f};
            return SM_OK;
        }
    return sm_fail(err, SM_ERR_ARG, "unknown head '%s' (known: %s)", name, sm_head_names());
}

const char *sm_head_names(void)
{
    return "softmax normface cosface arcface combined sphereface sphereface-asoftmax adacos "
           "adacos-fixed subcenter-arcface l2-softmax contrastive triplet multi-similarity";
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
    *h = (sm_head){.ops = ops, .cfg = *cfg, .d = d, .c = nclasses, .w = -1, .b = -1, .k = 1};
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
    free(h->argk);
    free(h);
}

sm_status sm_head_plan(sm_head *h, int64_t n, sm_err *err)
{
    if (n <= h->cap) return SM_OK;
    int64_t d = h->d, c = h->c, R = c * h->k;
    size_t cosk = h->k > 1 ? (size_t)(n * R) : 0;
    size_t total = (size_t)(3 * n * d + 3 * n + 2 * R * d + R + 2 * n * c) + cosk;
    float *buf = malloc(total * sizeof *buf);
    int32_t *argk = h->k > 1 ? malloc(sizeof(int32_t) * (size_t)(n * c)) : NULL;
    double *pair = h->ops->pairwise ? malloc(sizeof(double) * (size_t)(2 * n * n + 2 * n)) : NULL;
    if (!buf || (h->ops->pairwise && !pair) || (h->k > 1 && !argk)) {
        free(buf);
        free(pair);
        free(argk);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory planning the head for batch %lld",
                       (long long)n);
    }
    free(h->buf);
    free(h->pair);
    free(h->argk);
    h->buf = buf;
    h->pair = pair;
    h->argk = argk;
    h->xn = buf; buf += n * d;
    h->dx = buf; buf += n * d;
    h->xs = buf; buf += n * d;
    h->xnorm = buf; buf += n;
    h->dphi = buf; buf += n;
    h->gy = buf; buf += n;
    h->wn = buf; buf += R * d;
    h->dw = buf; buf += R * d;
    h->wnorm = buf; buf += R;
    h->cos = buf; buf += n * c;
    h->dz = buf; buf += n * c;
    h->cosk = cosk ? buf : NULL;
    h->cap = n;
    return SM_OK;
}
