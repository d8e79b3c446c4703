/* bn.c - batch normalisation over (outer, C, inner) tensors, PyTorch
 * semantics (torch.nn.functional.batch_norm). See kernels.h for the contract.
 *
 * Statistics and the backward's two reductions are accumulated in double: a
 * float sum over a batch of 128 28x28 maps (100 352 values) loses ~3 digits.
 * Variance is two-pass (mean first), which avoids the cancellation of
 * E[x^2] - E[x]^2. One OpenMP loop over channels; each channel's reduction is
 * sequential, so results do not depend on the thread count.
 *
 * Beyond the contract, for layers without affine parameters or running stats:
 * gamma NULL means 1, beta NULL means 0, running_mean/var NULL are not updated,
 * and in backward a NULL dgamma/dbeta/dinp is skipped. */
#include "kernels.h"

#include <math.h>
#include <stdbool.h>

/* An OpenMP loop (static schedule) that disappears, without an unknown-pragma
 * warning, in a build without OpenMP. */
#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#define PAR_FOR(cond) SM_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define PAR_FOR(cond)
#endif

/* Sums of a[i] (and of (a[i]-c)^2 when sq) over n floats, exact to about
 * 1e-7 relative: float partial sums in 8 independent lanes over blocks of 256
 * (vectorisable, no -ffast-math needed), blocks added in double. */
static double block_sum(const float *a, int64_t n, bool sq, float c)
{
    double total = 0.0;
    for (int64_t b = 0; b < n; b += 256) {
        int64_t e = b + 256 < n ? b + 256 : n;
        float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = b;
        if (sq)
            for (; i + 8 <= e; i += 8)
                for (int k = 0; k < 8; k++) lane[k] += (a[i + k] - c) * (a[i + k] - c);
        else
            for (; i + 8 <= e; i += 8)
                for (int k = 0; k < 8; k++) lane[k] += a[i + k];
        double s = 0.0;
        for (int k = 0; k < 8; k++) s += lane[k];
        for (; i < e; i++) s += sq ? (double)(a[i] - c) * (a[i] - c) : (double)a[i];
        total += s;
    }
    return total;
}

/* Mean and biased variance of channel ch (two-pass: no E[x^2]-E[x]^2 cancellation). */
static void channel_stats(double *mean, double *var, const float *x, int64_t outer, int64_t c,
                          int64_t inner, int64_t ch)
{
    const int64_t m = outer * inner;
    double s = 0.0;
    if (inner == 1)
        for (int64_t o = 0; o < outer; o++) s += x[o * c + ch];
    else
        for (int64_t o = 0; o < outer; o++) s += block_sum(x + (o * c + ch) * inner, inner, false, 0.0f);
    double mu = s / (double)m, q = 0.0;
    if (inner == 1)
        for (int64_t o = 0; o < outer; o++) q += ((double)x[o * c + ch] - mu) * ((double)x[o * c + ch] - mu);
    else
        for (int64_t o = 0; o < outer; o++) q += block_sum(x + (o * c + ch) * inner, inner, true, (float)mu);
    *mean = mu;
    *var = q / (double)m;
}

/* out = (x - mean) * scale + shift over channel ch (centred first: no
 * cancellation when |mean| >> std). */
static void channel_affine(float *out, const float *x, int64_t outer, int64_t c, int64_t inner,
                           int64_t ch, float mean, float scale, float shift)
{
    for (int64_t o = 0; o < outer; o++) {
        const float *p = x + (o * c + ch) * inner;
        float *q = out + (o * c + ch) * inner;
        for (int64_t i = 0; i < inner; i++) q[i] = (p[i] - mean) * scale + shift;
    }
}

void sm_bn_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                         float *running_var, const float *inp, const float *gamma,
                         const float *beta, int64_t outer, int64_t c, int64_t inner,
                         float momentum, float eps)
{
    const int64_t m = outer * inner;
    /* PyTorch refuses M == 1 in training; keep the biased value rather than divide by 0. */
    const double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0;
    PAR_FOR(1)
    for (int64_t ch = 0; ch < c; ch++) {
        double mu, var;
        channel_stats(&mu, &var, inp, outer, c, inner, ch);
        double is = 1.0 / sqrt(var + (double)eps);
        double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        mean[ch] = (float)mu;
        invstd[ch] = (float)is;
        if (running_mean)
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mu);
        if (running_var)
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * var * unbias);
        channel_affine(out, inp, outer, c, inner, ch, (float)mu, (float)(g * is), (float)b);
    }
}

void sm_bn_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, int64_t outer,
                        int64_t c, int64_t inner, float eps)
{
    PAR_FOR(1)
    for (int64_t ch = 0; ch < c; ch++) {
        double is = 1.0 / sqrt((double)running_var[ch] + (double)eps);
        double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        channel_affine(out, inp, outer, c, inner, ch, running_mean[ch], (float)(g * is), (float)b);
    }
}

void sm_bn_fold(float *center, float *scale, const float *bias, const float *gamma,
                const float *running_mean, const float *running_var, int64_t c, float eps)
{
    for (int64_t ch = 0; ch < c; ch++) {
        double is = 1.0 / sqrt((double)running_var[ch] + (double)eps);
        center[ch] = (float)((double)running_mean[ch] - (bias ? (double)bias[ch] : 0.0));
        scale[ch] = (float)((gamma ? (double)gamma[ch] : 1.0) * is);
    }
}

void sm_bn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                    const float *inp, const float *mean, const float *invstd,
                    const float *gamma, int64_t outer, int64_t c, int64_t inner)
{
    const int64_t m = outer * inner;
    PAR_FOR(1)
    for (int64_t ch = 0; ch < c; ch++) {
        const double mu = mean[ch], is = invstd[ch];
        double sdy = 0.0, sdyx = 0.0;   /* sum(dy), sum(dy * xhat) */
        for (int64_t o = 0; o < outer; o++) {
            const float *x = inp + (o * c + ch) * inner, *dy = dout + (o * c + ch) * inner;
            for (int64_t i = 0; i < inner; i++) {
                sdy += dy[i];
                sdyx += dy[i] * ((x[i] - mu) * is);
            }
        }
        if (dbeta) dbeta[ch] += (float)sdy;
        if (dgamma) dgamma[ch] += (float)sdyx;
        if (!dinp)
            continue;
        /* dx = gamma*invstd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat))
         *    = a*dy - b - e*xhat with the per-channel constants folded. */
        const double g = gamma ? gamma[ch] : 1.0, k = g * is / (double)m;
        const float a = (float)(g * is), b = (float)(k * sdy), e = (float)(k * sdyx);
        const float muf = (float)mu, isf = (float)is;
        for (int64_t o = 0; o < outer; o++) {
            const float *x = inp + (o * c + ch) * inner, *dy = dout + (o * c + ch) * inner;
            float *dx = dinp + (o * c + ch) * inner;
            for (int64_t i = 0; i < inner; i++) dx[i] += a * dy[i] - b - e * ((x[i] - muf) * isf);
        }
    }
}

void sm_bn_backward_frozen(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int64_t outer, int64_t c, int64_t inner)
{
    PAR_FOR(1)
    for (int64_t ch = 0; ch < c; ch++) {
        const double mu = mean[ch], is = invstd[ch];
        double sdy = 0.0, sdyx = 0.0;
        const float a = (float)((gamma ? gamma[ch] : 1.0) * is);
        for (int64_t o = 0; o < outer; o++) {
            const float *x = inp + (o * c + ch) * inner, *dy = dout + (o * c + ch) * inner;
            for (int64_t i = 0; i < inner; i++) {
                sdy += dy[i];
                sdyx += dy[i] * ((x[i] - mu) * is);
            }
            if (dinp) {
                float *dx = dinp + (o * c + ch) * inner;
                for (int64_t i = 0; i < inner; i++) dx[i] += a * dy[i];
            }
        }
        if (dbeta) dbeta[ch] += (float)sdy;
        if (dgamma) dgamma[ch] += (float)sdyx;
    }
}
