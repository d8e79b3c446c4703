/* act.c - element-wise activations (ReLU, PReLU) and dropout. See kernels.h.
 *
 * Plain loops: they are memory-bound, so the only tuning is an OpenMP split
 * of large tensors. Dropout's decisions come from a counter-based hash of
 * (seed, group), so a mask never depends on the thread count or call order. */
#include "kernels.h"

#include <math.h>

#include <string.h>

#include "rng.h"

/* An OpenMP loop (static schedule) that disappears, without an unknown-pragma
 * warning, in a build without OpenMP. */
#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#define PAR_FOR(cond) SM_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define PAR_FOR(cond)
#endif

/* Below this many elements a parallel region costs more than the loop. */
#define PAR_MIN 32768

void sm_add_forward(float *out, const float *a, const float *b, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void sm_add_into(float *dst, const float *src, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void sm_relu_forward(float *out, const float *inp, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void sm_relu_backward(float *dinp, const float *dout, const float *out, int64_t n)
{
    if (!dinp)
        return;
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void sm_prelu_forward(float *out, const float *inp, const float *a, int64_t outer, int64_t c,
                      int64_t inner)
{
    PAR_FOR(outer * c * inner >= PAR_MIN)
    for (int64_t oc = 0; oc < outer * c; oc++) {
        const float s = a[oc % c], *x = inp + oc * inner;
        float *y = out + oc * inner;
        for (int64_t i = 0; i < inner; i++) y[i] = x[i] > 0.0f ? x[i] : s * x[i];
    }
}

void sm_prelu_backward(float *dinp, float *da, const float *dout, const float *inp,
                       const float *a, int64_t outer, int64_t c, int64_t inner)
{
    if (dinp) {
        PAR_FOR(outer * c * inner >= PAR_MIN)
        for (int64_t oc = 0; oc < outer * c; oc++) {
            const float s = a[oc % c], *x = inp + oc * inner, *dy = dout + oc * inner;
            float *dx = dinp + oc * inner;
            for (int64_t i = 0; i < inner; i++) dx[i] += x[i] > 0.0f ? dy[i] : s * dy[i];
        }
    }
    if (da) {   /* da[c] += sum over x <= 0 of x * dy, per channel in double */
        PAR_FOR(outer * c * inner >= PAR_MIN)
        for (int64_t ch = 0; ch < c; ch++) {
            double acc = 0.0;
            for (int64_t o = 0; o < outer; o++) {
                const float *x = inp + (o * c + ch) * inner, *dy = dout + (o * c + ch) * inner;
                for (int64_t i = 0; i < inner; i++)
                    if (!(x[i] > 0.0f)) acc += (double)x[i] * dy[i];
            }
            da[ch] += (float)acc;
        }
    }
}

/* Group g is kept iff u(g) >= p, where u(g) = (sm_hash64(seed, g) >> 40) * 2^-24
 * is uniform on the 2^24 floats k/2^24 in [0, 1): P(keep) = 1 - p up to 2^-24. */
void sm_dropout_forward(float *out, float *mask, const float *inp, int64_t groups,
                        int64_t group_size, float p, uint64_t seed)
{
    const float scale = 1.0f / (1.0f - p);
    PAR_FOR(groups * group_size >= PAR_MIN)
    for (int64_t g = 0; g < groups; g++) {
        float u = (float)(sm_hash64(seed, (uint64_t)g) >> 40) * 0x1p-24f;
        float m = p == 0.0f ? 1.0f : (u >= p ? scale : 0.0f);
        const float *x = inp + g * group_size;
        float *y = out + g * group_size;
        mask[g] = m;
        if (p == 0.0f)
            memcpy(y, x, (size_t)group_size * sizeof(float));
        else
            for (int64_t i = 0; i < group_size; i++) y[i] = x[i] * m;
    }
}

void sm_dropout_backward(float *dinp, const float *dout, const float *mask, int64_t groups,
                         int64_t group_size)
{
    if (!dinp)
        return;
    PAR_FOR(groups * group_size >= PAR_MIN)
    for (int64_t g = 0; g < groups; g++) {
        const float m = mask[g], *dy = dout + g * group_size;
        float *dx = dinp + g * group_size;
        for (int64_t i = 0; i < group_size; i++) dx[i] += dy[i] * m;
    }
}

/* ------------------------------------------------------------- bounded and smooth */

void sm_relu6_forward(float *out, const float *inp, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = inp[i] > 0.0f ? inp[i] : 0.0f;
        out[i] = v < 6.0f ? v : 6.0f;
    }
}

void sm_relu6_backward(float *dinp, const float *dout, const float *inp, int64_t n)
{
    if (!dinp)
        return;
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f && inp[i] < 6.0f ? dout[i] : 0.0f;
}

void sm_hardswish_forward(float *out, const float *inp, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        float r = x + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        out[i] = x * r / 6.0f;
    }
}

void sm_hardswish_backward(float *dinp, const float *dout, const float *inp, int64_t n)
{
    if (!dinp)
        return;
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        dinp[i] += x < -3.0f ? 0.0f : x < 3.0f ? dout[i] * (x / 3.0f + 0.5f) : dout[i];
    }
}

void sm_hardsigmoid_forward(float *out, const float *inp, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float r = inp[i] + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        out[i] = r / 6.0f;
    }
}

void sm_hardsigmoid_backward(float *dinp, const float *dout, const float *inp, int64_t n)
{
    if (!dinp)
        return;
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        dinp[i] += inp[i] > -3.0f && inp[i] < 3.0f ? dout[i] / 6.0f : 0.0f;
}

/* exp of a non-positive argument only: no overflow for any x. */
void sm_sigmoid_forward(float *out, const float *inp, int64_t n)
{
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        if (x >= 0.0f) {
            out[i] = 1.0f / (1.0f + expf(-x));
        } else {
            const float e = expf(x);
            out[i] = e / (1.0f + e);
        }
    }
}

void sm_sigmoid_backward(float *dinp, const float *dout, const float *out, int64_t n)
{
    if (!dinp)
        return;
    PAR_FOR(n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}
