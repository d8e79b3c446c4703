/* pairloss.c - pair and triplet losses as heads without class weights.
 *
 * Siamese (contrastive), triplet (all / batch-hard / semi-hard mining) and
 * multi-similarity losses over the pairs of one batch. They plug into the
 * head interface (head.h) so training, checkpoints and evaluation treat every
 * loss family alike; they have no parameters and make no class predictions.
 *
 * Embeddings are L2-normalised first unless cfg.raw (then raw). Distances are
 * Euclidean, d_ij = ||x_i - x_j||, computed in double from the differences
 * (no |a|^2 + |b|^2 - 2ab cancellation). The gradient of d at d = 0 (two
 * identical embeddings) is taken as 0. Mining decisions (argmax/argmin, the
 * semi-hard choice, multi-similarity's pair selection) are constants of the
 * gradient, as in every implementation: they are kinks.
 *
 * Reductions (also in simile.h):
 *   contrastive  mean over positive pairs i<j of max(0, d - m_pos)^2
 *                + mean over negative pairs i<j of max(0, m_neg - d)^2
 *                (Hadsell et al. 2006, without the 1/2; each mean is 0 without pairs)
 *   triplet      l = max(0, d(a,p) - d(a,n) + m)
 *                all:      mean over every valid (a, p != a, n) triplet
 *                hard:     per anchor with a positive and a negative, the farthest
 *                          positive and the closest negative (Hermans et al. 2017);
 *                          mean over those anchors
 *                semihard: per ordered positive pair (a,p), the closest negative
 *                          with d(a,n) > d(a,p); if none, the farthest negative
 *                          (FaceNet, TensorFlow Addons' rule); mean over pairs
 *   multi-sim    S = cosine similarity. For anchor i keep positives with
 *                S_ip - ε < max_n S_in and negatives with S_in + ε > min_p S_ip;
 *                l_i = 1/α log(1 + Σ_p e^{-α(S_ip - λ)}) + 1/β log(1 + Σ_n e^{β(S_in - λ)});
 *                mean over all anchors. */
#include "head.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

static sm_status pair_build(sm_head *h, sm_model *m, sm_err *err)
{
    (void)m;
    const sm_head_config *c = &h->cfg;
    if (h->cfg.kind == SM_HEAD_CONTRASTIVE && !(c->margin >= 0 && c->margin_neg > c->margin))
        return sm_fail(err, SM_ERR_ARG, "contrastive: need 0 <= positive margin < negative margin (got %g, %g)",
                       (double)c->margin, (double)c->margin_neg);
    if (h->cfg.kind == SM_HEAD_TRIPLET && !(c->margin >= 0 && c->miner >= SM_MINER_ALL && c->miner <= SM_MINER_SEMIHARD))
        return sm_fail(err, SM_ERR_ARG, "triplet: need margin >= 0 and a known miner");
    if (h->cfg.kind == SM_HEAD_MULTISIM && !(c->alpha > 0 && c->beta > 0 && c->beta <= 100 && c->alpha <= 100 &&
                                             c->epsilon >= 0 && isfinite(c->base)))
        return sm_fail(err, SM_ERR_ARG, "multi-similarity: need 0 < alpha, beta <= 100 and epsilon >= 0");
    return SM_OK;
}

static void pair_init(sm_head *h, sm_model *m, uint64_t seed) { (void)h; (void)m; (void)seed; }

/* x (N,D) used for distances: normalised copy or the raw input. */
static const float *features(sm_head *h, const float *emb, int64_t n)
{
    if (h->cfg.raw) return emb;
    sm_l2norm_forward(h->xn, h->xnorm, emb, n, h->d, 1e-12f);
    return h->xn;
}

static void distances(double *dist, const float *x, int64_t n, int64_t d)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < d; k++) {
                double t = (double)x[i * d + k] - x[j * d + k];
                s += t * t;
            }
            dist[i * n + j] = sqrt(s);
        }
}

static void contrastive(sm_head *h, const double *D, const int32_t *y, int64_t n, double *G)
{
    double mp = h->cfg.margin, mn = h->cfg.margin_neg, lp = 0, ln = 0;
    int64_t np = 0, nn = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            if (y[i] == y[j]) np++;
            else nn++;
        }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double d = D[i * n + j];
            if (y[i] == y[j]) {
                double t = d - mp;
                if (t > 0) { lp += t * t; G[i * n + j] += 2 * t / (double)np; }
            } else {
                double t = mn - d;
                if (t > 0) { ln += t * t; G[i * n + j] -= 2 * t / (double)nn; }
            }
        }
    h->loss = (np ? lp / (double)np : 0) + (nn ? ln / (double)nn : 0);
}

static void triplet(sm_head *h, const double *D, const int32_t *y, int64_t n, double *G)
{
    double m = h->cfg.margin, total = 0;
    int64_t count = 0;
    switch (h->cfg.miner) {
    case SM_MINER_ALL:
        for (int64_t a = 0; a < n; a++)
            for (int64_t p = 0; p < n; p++) {
                if (p == a || y[p] != y[a]) continue;
                for (int64_t q = 0; q < n; q++)
                    if (y[q] != y[a]) count++;
            }
        for (int64_t a = 0; a < n; a++)
            for (int64_t p = 0; p < n; p++) {
                if (p == a || y[p] != y[a]) continue;
                for (int64_t q = 0; q < n; q++) {
                    if (y[q] == y[a]) continue;
                    double l = D[a * n + p] - D[a * n + q] + m;
                    if (l > 0) {
                        total += l;
                        G[a * n + p] += 1.0 / (double)count;
                        G[a * n + q] -= 1.0 / (double)count;
                    }
                }
            }
        h->loss = count ? total / (double)count : 0;
        return;
    case SM_MINER_HARD: {
        int64_t *pick = (int64_t *)(void *)(G + n * n);   /* scratch: (hardest p, hardest n) per anchor */
        for (int64_t a = 0; a < n; a++) {
            int64_t bp = -1, bn = -1;
            for (int64_t j = 0; j < n; j++) {
                if (j == a) continue;
                if (y[j] == y[a]) { if (bp < 0 || D[a * n + j] > D[a * n + bp]) bp = j; }
                else if (bn < 0 || D[a * n + j] < D[a * n + bn]) bn = j;
            }
            pick[2 * a] = bp;
            pick[2 * a + 1] = bn;
            if (bp >= 0 && bn >= 0) count++;
        }
        for (int64_t a = 0; a < n; a++) {
            int64_t p = pick[2 * a], q = pick[2 * a + 1];
            if (p < 0 || q < 0) continue;
            double l = D[a * n + p] - D[a * n + q] + m;
            if (l > 0) {
                total += l;
                G[a * n + p] += 1.0 / (double)count;
                G[a * n + q] -= 1.0 / (double)count;
            }
        }
        memset(pick, 0, sizeof(int64_t) * (size_t)(2 * n));
        h->loss = count ? total / (double)count : 0;
        return;
    }
    case SM_MINER_SEMIHARD:
        for (int64_t a = 0; a < n; a++)
            for (int64_t p = 0; p < n; p++) {
                if (p == a || y[p] != y[a]) continue;
                for (int64_t q = 0; q < n; q++)
                    if (y[q] != y[a]) { count++; break; }
            }
        for (int64_t a = 0; a < n; a++)
            for (int64_t p = 0; p < n; p++) {
                if (p == a || y[p] != y[a]) continue;
                double dap = D[a * n + p];
                int64_t out = -1, far = -1;
                for (int64_t q = 0; q < n; q++) {
                    if (y[q] == y[a]) continue;
                    double daq = D[a * n + q];
                    if (daq > dap && (out < 0 || daq < D[a * n + out])) out = q;
                    if (far < 0 || daq > D[a * n + far]) far = q;
                }
                int64_t q = out >= 0 ? out : far;
                if (q < 0) continue;
                double l = dap - D[a * n + q] + m;
                if (l > 0) {
                    total += l;
                    G[a * n + p] += 1.0 / (double)count;
                    G[a * n + q] -= 1.0 / (double)count;
                }
            }
        h->loss = count ? total / (double)count : 0;
        return;
    }
}

/* S (N,N) cosine similarities in D's buffer; H = dL/dS in G. */
static void multisim(sm_head *h, const double *S, const int32_t *y, int64_t n, double *G)
{
    const double al = h->cfg.alpha, be = h->cfg.beta, la = h->cfg.base, eps = h->cfg.epsilon;
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double maxn = -INFINITY, minp = INFINITY;
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            if (y[j] == y[i]) minp = fmin(minp, S[i * n + j]);
            else maxn = fmax(maxn, S[i * n + j]);
        }
        double sp = 0, sn = 0;
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            double s = S[i * n + j];
            if (y[j] == y[i] && s - eps < maxn) sp += exp(-al * (s - la));
            else if (y[j] != y[i] && s + eps > minp) sn += exp(be * (s - la));
        }
        total += log1p(sp) / al + log1p(sn) / be;
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            double s = S[i * n + j];
            if (y[j] == y[i] && s - eps < maxn) G[i * n + j] += -exp(-al * (s - la)) / (1 + sp) / (double)n;
            else if (y[j] != y[i] && s + eps > minp) G[i * n + j] += exp(be * (s - la)) / (1 + sn) / (double)n;
        }
    }
    h->loss = total / (double)n;
}

static void pair_forward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels, int64_t n,
                         int32_t *pred)
{
    (void)m;
    if (pred)
        for (int64_t i = 0; i < n; i++) pred[i] = -1;   /* no classes to predict */
    if (!labels) return;
    const float *x = features(h, emb, n);
    double *D = h->pair, *G = h->pair + n * n;
    memset(G, 0, sizeof(double) * (size_t)(n * n));
    if (h->cfg.kind == SM_HEAD_MULTISIM) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t k = 0; k < h->d; k++) s += (double)x[i * h->d + k] * x[j * h->d + k];
                D[i * n + j] = s;
            }
        multisim(h, D, labels, n, G);
    } else {
        distances(D, x, n, h->d);
        if (h->cfg.kind == SM_HEAD_CONTRASTIVE) contrastive(h, D, labels, n, G);
        else triplet(h, D, labels, n, G);
    }
    h->correct = 0;
}

static void pair_backward(sm_head *h, sm_model *m, const float *emb, const int32_t *labels, int64_t n,
                          float *demb)
{
    (void)m; (void)labels;
    const int64_t d = h->d;
    const float *x = h->cfg.raw ? emb : h->xn;
    const double *D = h->pair, *G = h->pair + n * n;
    float *dx = h->cfg.raw ? demb : h->dx;
    if (!h->cfg.raw) memset(dx, 0, sizeof(float) * (size_t)(n * d));
    const bool sim = h->cfg.kind == SM_HEAD_MULTISIM;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            /* L depends on the entry (i,j) and (j,i) of the symmetric matrix */
            double g = G[i * n + j] + G[j * n + i];
            if (g == 0) continue;
            if (sim) {
                for (int64_t k = 0; k < d; k++) dx[i * d + k] += (float)(g * x[j * d + k]);
            } else {
                double dist = D[i * n + j];
                if (dist <= 0) continue;
                double c = g / dist;
                for (int64_t k = 0; k < d; k++)
                    dx[i * d + k] += (float)(c * ((double)x[i * d + k] - x[j * d + k]));
            }
        }
    if (!h->cfg.raw) sm_l2norm_backward(demb, dx, h->xn, h->xnorm, n, d, 1e-12f);
}

const struct sm_head_ops sm_contrastive_ops = {
    "contrastive", false, true, pair_build, pair_init, pair_forward, pair_backward};
const struct sm_head_ops sm_triplet_ops = {
    "triplet", false, true, pair_build, pair_init, pair_forward, pair_backward};
const struct sm_head_ops sm_multisim_ops = {
    "multi-similarity", false, true, pair_build, pair_init, pair_forward, pair_backward};
