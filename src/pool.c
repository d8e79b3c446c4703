/* pool.c - max/average pooling on independent planes, global average
 * pooling and flatten. See kernels.h for the contract.
 *
 * One OpenMP loop over planes (or channels); every output element is written
 * by exactly one thread and the backward of each plane touches only that
 * plane, so there are no races and no thread-count dependence. Max pooling
 * keeps the first maximum on ties (scan order h, then w), as PyTorch's CPU
 * kernel; a NaN in a window wins, so NaNs propagate. */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* An OpenMP loop (static schedule) that disappears, without an unknown-pragma
 * warning, in a build without OpenMP. */
#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#define PAR_FOR(cond) SM_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define PAR_FOR(cond)
#endif

#define PAR_MIN 32768

/* Elements of the buffers of maxpool_phased, on each thread's stack: 16 KiB
 * of values and 16 KiB of indices (small enough for musl's 128 KiB thread
 * stacks). */
enum { PHASE_FLOATS = 4096 };

/* Whether v replaces the window's maximum so far bv: larger, or a NaN where
 * bv is not one (the first maximum stays on ties; NaNs propagate). */
static inline bool max_wins(float v, float bv) { return v > bv || (v != v && bv == bv); }

/* One tap of a window with its index: the running maximum bv at *bi. */
static inline void max_step(float v, int32_t idx, float *bv, int32_t *bi)
{
    if (max_wins(v, *bv)) {
        *bv = v;
        *bi = idx;
    }
}

/* The common 2x2/2 case without the generic window bookkeeping; same result
 * (first maximum on ties, NaN wins) as the general loop. */
static void maxpool2x2(float *out, int32_t *argmax, const float *inp, int64_t planes, int64_t h,
                       int64_t w, int64_t oh, int64_t ow)
{
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * h * w;
        float *y = out + p * oh * ow;
        int32_t *am = argmax ? argmax + p * oh * ow : NULL;
        for (int64_t i = 0; i < oh; i++) {
            const float *r0 = x + 2 * i * w, *r1 = r0 + w;
            for (int64_t j = 0; j < ow; j++) {
                int32_t b0 = (int32_t)(2 * i * w + 2 * j);
                float bv = r0[2 * j];
                int32_t bi = b0;
                max_step(r0[2 * j + 1], b0 + 1, &bv, &bi);
                max_step(r1[2 * j], b0 + (int32_t)w, &bv, &bi);
                max_step(r1[2 * j + 1], b0 + (int32_t)w + 1, &bv, &bi);
                y[i * ow + j] = bv;
                if (am) am[i * ow + j] = bi;
            }
        }
    }
}

/* The scan of one window: output (i, j) of plane x; its value, and the index
 * of its first maximum in *best. */
static float max_window(const float *x, int64_t h, int64_t w, int64_t k, int64_t st, int64_t pad,
                        int64_t i, int64_t j, int64_t *best)
{
    int64_t h0 = i * st - pad, w0 = j * st - pad;
    int64_t h1 = h0 + k < h ? h0 + k : h, w1 = w0 + k < w ? w0 + k : w;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    int64_t bi = h0 * w + w0;
    float bv = x[bi];
    for (int64_t a = h0; a < h1; a++)
        for (int64_t b = w0; b < w1; b++) {
            float v = x[a * w + b];
            if (max_wins(v, bv)) {
                bv = v;
                bi = a * w + b;
            }
        }
    *best = bi;
    return bv;
}

/* Strided windows: a band of R output rows of a plane is copied, padded
 * with -inf, into its stride x stride phases, phase (qa, qb) holding the
 * padded pixels (i*stride + qa, j*stride + qb) in rows of QW = ow +
 * (k-1)/stride; tap (a, b) of every output of the band is then one element
 * of one phase at a fixed offset, and each tap is a single loop over the
 * band (outputs in rows of QW, the last (k-1)/stride of each row unused).
 * The taps go in scan order and -inf never replaces anything, so the values
 * are the scan's bit for bit; with argmax, each phase element carries its
 * input index (-1 for padding), and an output whose maximum is still a
 * padding cell (a window of -infs) is scanned again, so the indices are the
 * scan's too. Bands keep the buffers at PHASE_FLOATS on the stack whatever
 * the plane's height. On ResNet's 3x3/2 stem pool at 32x32 it is about 2.5x
 * faster than loops over rows of 15 outputs. */
static bool maxpool_phased(float *out, int32_t *argmax, const float *inp, int64_t planes, int64_t h,
                           int64_t w, int64_t k, int64_t st, int64_t pad, int64_t oh, int64_t ow)
{
    const int64_t ext = (k - 1) / st, QW = ow + ext;
    if (st < 2 || st > 4 || h * w > INT32_MAX)
        return false;
    /* R output rows need R + ext phase rows, and one more: the last taps read
     * up to ext elements past them */
    const int64_t R = (PHASE_FLOATS / QW - st * st * (ext + 1)) / (st * st + 1);
    if (R < 1)
        return false;
    const int64_t qsz = (R + ext + 1) * QW;
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float buf[PHASE_FLOATS];
        int32_t ibuf[PHASE_FLOATS];   /* the indices, same layout (argmax only) */
        float *acc = buf + st * st * qsz;
        int32_t *iacc = ibuf + st * st * qsz;
        const float *x = inp + p * h * w;
        float *y = out + p * oh * ow;
        int32_t *am = argmax ? argmax + p * oh * ow : NULL;
        for (int64_t b0 = 0; b0 < oh; b0 += R) {
            const int64_t rows = b0 + R <= oh ? R : oh - b0;
            for (int64_t qb = 0; qb < st; qb++) {
                /* phase column j reads input column j*st + qb - pad: inside for [jl, jh) */
                int64_t jl = (pad - qb + st - 1) / st, jh = (w + pad - qb + st - 1) / st;
                if (jl < 0) jl = 0;
                if (jh > QW) jh = QW;
                if (jl > jh) jl = jh;
                for (int64_t qa = 0; qa < st; qa++) {
                    float *q = buf + (qa * st + qb) * qsz;
                    int32_t *qi = ibuf + (qa * st + qb) * qsz;
                    for (int64_t i = 0; i < rows + ext + 1; i++) {
                        float *qr = q + i * QW;
                        int64_t ih = (b0 + i) * st + qa - pad;
                        bool inside = i < rows + ext && ih >= 0 && ih < h;
                        if (!inside) {
                            for (int64_t j = 0; j < QW; j++) qr[j] = -INFINITY;
                        } else {
                            const float *xr = x + ih * w + qb - pad;
                            for (int64_t j = 0; j < jl; j++) qr[j] = -INFINITY;
                            for (int64_t j = jl; j < jh; j++) qr[j] = xr[j * st];
                            for (int64_t j = jh; j < QW; j++) qr[j] = -INFINITY;
                        }
                        if (!am) continue;
                        int32_t *ir = qi + i * QW;
                        for (int64_t j = 0; j < QW; j++)
                            ir[j] = inside && j >= jl && j < jh ? (int32_t)(ih * w + j * st + qb - pad) : -1;
                    }
                }
            }
            const int64_t len = rows * QW;
            for (int64_t a = 0; a < k; a++)
                for (int64_t b = 0; b < k; b++) {
                    const int64_t off = ((a % st) * st + b % st) * qsz + (a / st) * QW + b / st;
                    const float *src = buf + off;
                    if (a == 0 && b == 0) {
                        memcpy(acc, src, (size_t)len * sizeof(float));
                        if (am) memcpy(iacc, ibuf + off, (size_t)len * sizeof(int32_t));
                        continue;
                    }
                    if (!am) {
                        for (int64_t i = 0; i < len; i++) {
                            float v = src[i], bv = acc[i];
                            acc[i] = max_wins(v, bv) ? v : bv;
                        }
                        continue;
                    }
                    const int32_t *isrc = ibuf + off;
                    for (int64_t i = 0; i < len; i++) {
                        float v = src[i], bv = acc[i];
                        bool wins = max_wins(v, bv);
                        acc[i] = wins ? v : bv;
                        iacc[i] = wins ? isrc[i] : iacc[i];
                    }
                }
            for (int64_t i = 0; i < rows; i++)
                memcpy(y + (b0 + i) * ow, acc + i * QW, (size_t)ow * sizeof(float));
            if (!am) continue;
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < ow; j++) {
                    int32_t bi = iacc[i * QW + j];
                    if (bi < 0) {   /* only -infs so far: the scan decides which one */
                        int64_t best;
                        y[(b0 + i) * ow + j] = max_window(x, h, w, k, st, pad, b0 + i, j, &best);
                        bi = (int32_t)best;
                    }
                    am[(b0 + i) * ow + j] = bi;
                }
        }
    }
    return true;
}

void sm_maxpool2d_forward(float *out, int32_t *argmax, const float *inp, int64_t planes,
                          int64_t h, int64_t w, int64_t k, int64_t stride, int64_t pad,
                          int64_t oh, int64_t ow)
{
    if (k == 2 && stride == 2 && pad == 0) {
        maxpool2x2(out, argmax, inp, planes, h, w, oh, ow);
        return;
    }
    if (maxpool_phased(out, argmax, inp, planes, h, w, k, stride, pad, oh, ow))
        return;
    /* Without argmax (inference), the outputs whose window lies inside the
     * plane, j in [jlo, jhi) of rows i in [ilo, ihi), go tap by tap across a
     * row (a loop that vectorises); the same scan order per output, so the
     * same result. */
    int64_t jlo = (pad + stride - 1) / stride, ilo = jlo;
    int64_t jhi = w + pad >= k ? (w + pad - k) / stride + 1 : 0;
    int64_t ihi = h + pad >= k ? (h + pad - k) / stride + 1 : 0;
    if (jhi > ow) jhi = ow;
    if (ihi > oh) ihi = oh;
    if (argmax || jlo >= jhi) jhi = jlo;   /* no fast columns */
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * h * w;
        float *y = out + p * oh * ow;
        int32_t *am = argmax ? argmax + p * oh * ow : NULL;
        for (int64_t i = 0; i < oh; i++) {
            bool fast_row = i >= ilo && i < ihi && jlo < jhi;
            if (fast_row) {
                float *yr = y + i * ow;
                const int64_t x0 = (i * stride - pad) * w - pad;   /* >= 0 from jlo on */
                for (int64_t j = jlo; j < jhi; j++) yr[j] = x[x0 + j * stride];
                for (int64_t a = 0; a < k; a++)
                    for (int64_t b = a == 0 ? 1 : 0; b < k; b++) {
                        const float *xr = x + x0 + a * w + b + jlo * stride;
                        for (int64_t j = jlo; j < jhi; j++) {
                            float v = xr[(j - jlo) * stride], bv = yr[j];
                            yr[j] = max_wins(v, bv) ? v : bv;
                        }
                    }
            }
            for (int64_t j = 0; j < ow; j++) {
                if (fast_row && j == jlo) j = jhi;
                if (j >= ow) break;
                int64_t best;
                y[i * ow + j] = max_window(x, h, w, k, stride, pad, i, j, &best);
                if (am) am[i * ow + j] = (int32_t)best;
            }
        }
    }
}

void sm_maxpool2d_backward(float *dinp, const float *dout, const int32_t *argmax,
                           int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow)
{
    if (!dinp)
        return;
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float *dx = dinp + p * h * w;
        const float *dy = dout + p * oh * ow;
        const int32_t *am = argmax + p * oh * ow;
        for (int64_t i = 0; i < oh * ow; i++) dx[am[i]] += dy[i];
    }
}

/* With floor-mode output sizes no window reaches past the padded border, so
 * count_include_pad=True always divides by k*k. */
void sm_avgpool2d_forward(float *out, const float *inp, int64_t planes, int64_t h, int64_t w,
                          int64_t k, int64_t stride, int64_t pad, int64_t oh, int64_t ow)
{
    const float inv = 1.0f / (float)(k * k);
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * h * w;
        float *y = out + p * oh * ow;
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                int64_t h0 = i * stride - pad, w0 = j * stride - pad;
                int64_t h1 = h0 + k < h ? h0 + k : h, w1 = w0 + k < w ? w0 + k : w;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                float s = 0.0f;
                for (int64_t a = h0; a < h1; a++)
                    for (int64_t b = w0; b < w1; b++) s += x[a * w + b];
                y[i * ow + j] = s * inv;
            }
    }
}

void sm_avgpool2d_backward(float *dinp, const float *dout, int64_t planes, int64_t h,
                           int64_t w, int64_t k, int64_t stride, int64_t pad, int64_t oh,
                           int64_t ow)
{
    if (!dinp)
        return;
    const float inv = 1.0f / (float)(k * k);
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float *dx = dinp + p * h * w;
        const float *dy = dout + p * oh * ow;
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                int64_t h0 = i * stride - pad, w0 = j * stride - pad;
                int64_t h1 = h0 + k < h ? h0 + k : h, w1 = w0 + k < w ? w0 + k : w;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                float g = dy[i * ow + j] * inv;
                for (int64_t a = h0; a < h1; a++)
                    for (int64_t b = w0; b < w1; b++) dx[a * w + b] += g;
            }
    }
}

/* PyTorch's cell bounds: [floor(i*H/OH), ceil((i+1)*H/OH)). */
static void adaptive_range(int64_t *lo, int64_t *hi, int64_t i, int64_t in, int64_t out)
{
    *lo = i * in / out;
    *hi = ((i + 1) * in + out - 1) / out;
}

void sm_adaptive_avgpool2d_forward(float *out, const float *inp, int64_t planes, int64_t h,
                                   int64_t w, int64_t oh, int64_t ow)
{
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *x = inp + p * h * w;
        float *y = out + p * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            int64_t h0, h1;
            adaptive_range(&h0, &h1, i, h, oh);
            for (int64_t j = 0; j < ow; j++) {
                int64_t w0, w1;
                adaptive_range(&w0, &w1, j, w, ow);
                double s = 0.0;
                for (int64_t a = h0; a < h1; a++)
                    for (int64_t b = w0; b < w1; b++) s += x[a * w + b];
                y[i * ow + j] = (float)(s / (double)((h1 - h0) * (w1 - w0)));
            }
        }
    }
}

void sm_adaptive_avgpool2d_backward(float *dinp, const float *dout, int64_t planes, int64_t h,
                                    int64_t w, int64_t oh, int64_t ow)
{
    if (!dinp)
        return;
    PAR_FOR(planes * h * w >= PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float *dx = dinp + p * h * w;
        const float *dy = dout + p * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            int64_t h0, h1;
            adaptive_range(&h0, &h1, i, h, oh);
            for (int64_t j = 0; j < ow; j++) {
                int64_t w0, w1;
                adaptive_range(&w0, &w1, j, w, ow);
                const float g = dy[i * ow + j] / (float)((h1 - h0) * (w1 - w0));
                for (int64_t a = h0; a < h1; a++)
                    for (int64_t b = w0; b < w1; b++) dx[a * w + b] += g;
            }
        }
    }
}

void sm_gap_forward(float *out, const float *inp, int64_t c, int64_t n, int64_t hw)
{
    PAR_FOR(c * n * hw >= PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < n; i++) {
            const float *x = inp + (ch * n + i) * hw;
            double s = 0.0;
            for (int64_t j = 0; j < hw; j++) s += x[j];
            out[i * c + ch] = (float)(s / (double)hw);
        }
}

void sm_gap_backward(float *dinp, const float *dout, int64_t c, int64_t n, int64_t hw)
{
    if (!dinp)
        return;
    const float inv = 1.0f / (float)hw;
    PAR_FOR(c * n * hw >= PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < n; i++) {
            float *dx = dinp + (ch * n + i) * hw;
            const float g = dout[i * c + ch] * inv;
            for (int64_t j = 0; j < hw; j++) dx[j] += g;
        }
}

void sm_flatten_forward(float *out, const float *inp, int64_t c, int64_t n, int64_t hw)
{
    PAR_FOR(c * n * hw >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            const float *x = inp + (ch * n + i) * hw;
            float *y = out + i * c * hw + ch * hw;
            for (int64_t j = 0; j < hw; j++) y[j] = x[j];
        }
}

void sm_flatten_backward(float *dinp, const float *dout, int64_t c, int64_t n, int64_t hw)
{
    if (!dinp)
        return;
    PAR_FOR(c * n * hw >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            float *dx = dinp + (ch * n + i) * hw;
            const float *dy = dout + i * c * hw + ch * hw;
            for (int64_t j = 0; j < hw; j++) dx[j] += dy[j];
        }
}
