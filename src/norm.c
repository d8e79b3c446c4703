/* norm.c - row-wise L2 normalisation, out = x / max(||x||, eps), as
 * torch.nn.functional.normalize. See kernels.h for the contract.
 *
 * Norms and dot products are accumulated in double. The backward follows
 * PyTorch's clamp_min: where ||x|| >= eps the denominator is ||x|| and
 *   dx = (dy - out * <out, dy>) / ||x||,
 * otherwise the denominator is the constant eps and dx = dy / eps. */
#include "kernels.h"

#include <math.h>

/* An OpenMP loop (static schedule) that disappears, without an unknown-pragma
 * warning, in a build without OpenMP. */
#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#define PAR_FOR(cond) SM_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define PAR_FOR(cond)
#endif

void sm_l2norm_forward(float *out, float *norm, const float *inp, int64_t n, int64_t d,
                       float eps)
{
    PAR_FOR(n * d >= 32768)
    for (int64_t i = 0; i < n; i++) {
        const float *x = inp + i * d;
        double s = 0.0;
        for (int64_t j = 0; j < d; j++) s += (double)x[j] * x[j];
        double nr = sqrt(s), den = nr >= (double)eps ? nr : (double)eps;
        norm[i] = (float)nr;
        for (int64_t j = 0; j < d; j++) out[i * d + j] = (float)(x[j] / den);
    }
}

void sm_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                        int64_t n, int64_t d, float eps)
{
    if (!dinp)
        return;
    PAR_FOR(n * d >= 32768)
    for (int64_t i = 0; i < n; i++) {
        const float *y = out + i * d, *dy = dout + i * d;
        float *dx = dinp + i * d;
        if (norm[i] >= eps) {
            double dot = 0.0;
            for (int64_t j = 0; j < d; j++) dot += (double)y[j] * dy[j];
            double inv = 1.0 / norm[i];
            for (int64_t j = 0; j < d; j++) dx[j] += (float)((dy[j] - y[j] * dot) * inv);
        } else {
            for (int64_t j = 0; j < d; j++) dx[j] += (float)(dy[j] / (double)eps);
        }
    }
}
