/* conv.c - 2-D convolution on (C,N,H,W) activations: im2col + GEMM, and its
 * naive twin. See kernels.h for the contract.
 *
 * The fast path splits the batch into chunks of whole images and runs one
 * OpenMP loop over the chunks; each thread owns a column buffer in the scratch
 * and calls sm_gemm (single-threaded inside a parallel region) on it:
 *   forward   out[:, chunk] (Cout, nc*OH*OW) = W (Cout, K) @ col (K, nc*OH*OW)
 *   backward  dW_t (Cout, K) += dout[:, chunk] @ col^T   (per-thread partial)
 *             dcol = W^T @ dout[:, chunk], then col2im += into dinp
 * with K = Cin*KH*KW. Because the layout is (C,N,H,W), a chunk's output for one
 * channel is contiguous, so out[:, chunk] is a sub-matrix with row stride
 * N*OH*OW. The per-thread dW partials are summed in thread order, so a given
 * thread count gives bit-identical results. A 1x1, stride 1, unpadded conv
 * needs no im2col: the input chunk is already the column matrix. Shapes whose
 * weights outweigh a chunk's columns run in shared mode instead (see
 * conv_shared): all threads on one larger chunk at a time.
 *
 * Grouped convolutions (PyTorch's `groups`) are g dense ones: in (C,N,H,W) a
 * group's input channels, output channels and weights are each one contiguous
 * block, so group i is the dense conv of a sub-shape (Cin/g -> Cout/g) at
 * offsets into the same buffers, run one group after another with the dense
 * code. A depthwise conv (g == Cin == Cout) has K = KH*KW and one output row
 * per GEMM, too small for BLAS, so it has its own direct kernel: one OpenMP
 * loop over the C*N planes, each output row accumulated tap by tap (the
 * inner loops over a row vectorise); the weight gradient of a plane is a
 * per-plane partial in the scratch, summed over the batch in image order, so
 * its result does not depend on the thread count at all.
 *
 * Dense 3x3 stride-1 convolutions with 32 or more channels in and out run by
 * Winograd F(4x4, 3x3) instead (below), the forward and the input gradient,
 * unless the shape says exact (training, by default); the weight gradient
 * stays im2col + GEMM. sm_conv_set_winograd(false) turns it off everywhere
 * (tests and benchmarks compare both). */
#include "kernels.h"

#include <stdatomic.h>
#include <string.h>

#include "gemm.h"

/* An OpenMP loop (static schedule) that disappears, without an unknown-pragma
 * warning, in a build without OpenMP. */
#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#define PAR_FOR(cond) SM_PRAGMA(omp parallel for schedule(static) if (cond))
#define PAR_REGION SM_PRAGMA(omp parallel)
#define OMP_FOR SM_PRAGMA(omp for schedule(static))
#define OMP_BARRIER SM_PRAGMA(omp barrier)
#else
#define OMP_BARRIER /* nothing */
#define PAR_FOR(cond)
#define PAR_REGION
#define OMP_FOR
#endif

/* A column buffer of about 512 KiB stays in L2 next to the weights and gives
 * the GEMM enough columns to run at full speed. */
#define COL_TARGET_FLOATS ((int64_t)128 * 1024)

int sm_conv_shape_init(sm_conv_shape *s)
{
    if (s->n <= 0 || s->cin <= 0 || s->h <= 0 || s->w <= 0 || s->cout <= 0 || s->kh <= 0 ||
        s->kw <= 0 || s->stride <= 0 || s->pad < 0 || s->groups < 0)
        return -1;
    if (s->groups > 1 && (s->cin % s->groups != 0 || s->cout % s->groups != 0))
        return -1;
    if (s->kh > s->h + 2 * s->pad || s->kw > s->w + 2 * s->pad)
        return -1;
    s->oh = (s->h + 2 * s->pad - s->kh) / s->stride + 1;
    s->ow = (s->w + 2 * s->pad - s->kw) / s->stride + 1;
    return 0;
}

static int64_t conv_k(const sm_conv_shape *s) { return s->cin * s->kh * s->kw; }

static int64_t conv_groups(const sm_conv_shape *s) { return s->groups > 1 ? s->groups : 1; }

static bool conv_is_depthwise(const sm_conv_shape *s)
{
    return s->groups > 1 && s->groups == s->cin && s->groups == s->cout;
}

/* The dense conv of one group: Cin/g -> Cout/g channels, same spatial shape. */
static sm_conv_shape conv_group_shape(const sm_conv_shape *s)
{
    sm_conv_shape g = *s;
    g.cin = s->cin / conv_groups(s);
    g.cout = s->cout / conv_groups(s);
    g.groups = 1;
    return g;
}

static bool conv_is_pointwise(const sm_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

/* Images per chunk: a function of the shape only (not of the thread count). */
static int64_t conv_chunk(const sm_conv_shape *s)
{
    int64_t per_image = conv_k(s) * s->oh * s->ow;
    int64_t c = COL_TARGET_FLOATS / per_image;
    if (c < 1) c = 1;
    if (c > s->n) c = s->n;
    return c;
}

/* Per-thread scratch: a column buffer (K, chunk*OH*OW), then a (Cout, K) dW partial. */
static int64_t conv_col_floats(const sm_conv_shape *s)
{
    return conv_is_pointwise(s) ? 0 : conv_k(s) * conv_chunk(s) * s->oh * s->ow;
}

/* The input gradient of a stride-1 convolution is itself a convolution: of
 * dout with the weights transposed (Cin <-> Cout) and flipped, padded by
 * k-1-pad. Computing it that way (im2col of dout + one GEMM accumulating
 * straight into dinp) replaces the K = Cout GEMM into a 9x-sized column buffer
 * and its scatter-add (col2im), which are memory-bound. */
static bool conv_grad_as_conv(const sm_conv_shape *s)
{
    return s->stride == 1 && s->kh == s->kw && s->pad <= s->kh - 1 && !conv_is_pointwise(s);
}

static sm_conv_shape conv_grad_shape(const sm_conv_shape *s)
{
    sm_conv_shape g = {.n = s->n, .cin = s->cout, .h = s->oh, .w = s->ow, .cout = s->cin,
                       .kh = s->kh, .kw = s->kw, .stride = 1, .pad = s->kh - 1 - s->pad,
                       .exact = s->exact};
    sm_conv_shape_init(&g);
    return g;
}

/* Winograd F(4x4, 3x3): see the section below. */
enum { WSEG = 64 };
#define WINO_TARGET ((int64_t)2 * 1024 * 1024)

static atomic_bool g_winograd = true;

void sm_conv_set_winograd(bool on) { atomic_store_explicit(&g_winograd, on, memory_order_relaxed); }
bool sm_conv_winograd(void) { return atomic_load_explicit(&g_winograd, memory_order_relaxed); }

static int64_t wino_tiles(const sm_conv_shape *s) { return ((s->oh + 3) / 4) * ((s->ow + 3) / 4); }

/* Where it pays: enough channels that the GEMMs dominate the transforms,
 * enough tiles that reading U (4x the weights) is shared by many, and outputs
 * that fill their tiles enough for at most half of im2col's multiplications
 * (36 per tile against 9 per output: a 2x2 output pays 9 per output either
 * way). The scratch is sized by the shape alone, so that switching Winograd
 * on after planning stays within it. */
static bool wino_shape(const sm_conv_shape *s)
{
    return conv_groups(s) == 1 && s->kh == 3 && s->kw == 3 && s->stride == 1 && s->cin >= 32 &&
           s->cout >= 32 && s->n * wino_tiles(s) >= 32 && 8 * wino_tiles(s) <= s->oh * s->ow;
}

/* Whether this (dense, or one group's) shape runs by Winograd now. */
static bool wino_eligible(const sm_conv_shape *s)
{
    return sm_conv_winograd() && !s->exact && wino_shape(s);
}

bool sm_conv2d_winograd_applies(const sm_conv_shape *s)
{
    sm_conv_shape d = conv_groups(s) > 1 ? conv_group_shape(s) : *s;   /* one group's */
    return wino_eligible(&d);
}

bool sm_conv2d_winograd_applies_dinp(const sm_conv_shape *s)
{
    sm_conv_shape d = conv_groups(s) > 1 ? conv_group_shape(s) : *s;
    if (!conv_grad_as_conv(&d)) return false;
    sm_conv_shape g = conv_grad_shape(&d);
    return wino_eligible(&g);
}

static int64_t wino_chunk(const sm_conv_shape *s)
{
    int64_t c = WINO_TARGET / (36 * (s->cin + s->cout) * wino_tiles(s));
    if (c < 1) c = 1;
    if (c > s->n) c = s->n;
    return c;
}

/* U, then V and M of one chunk. */
static int64_t wino_floats(const sm_conv_shape *s)
{
    return 36 * (s->cin * s->cout + (s->cin + s->cout) * wino_chunk(s) * wino_tiles(s));
}

/* Shared mode: when a chunk's columns are fewer than the output channels,
 * the weights are the larger operand of each per-thread GEMM and every chunk
 * reads all of them again (ResNet's last stages: 9.4 MB of weights against a
 * few dozen columns). Then the threads work on one chunk at a time instead,
 * of SHARED_TARGET floats of columns: each builds the rows of its share of the
 * input channels, and each takes a share of the GEMM's rows (forward) or of
 * the weight gradient's columns (backward), so the weights are read once per
 * chunk by all threads together and the weight gradient needs no per-thread
 * partials. A function of the shape only. */
#define SHARED_TARGET ((int64_t)1024 * 1024)

static bool conv_shared(const sm_conv_shape *s)
{
    return conv_chunk(s) * s->oh * s->ow < s->cout;
}

bool sm_conv2d_shared_applies(const sm_conv_shape *s)
{
    sm_conv_shape d = conv_groups(s) > 1 ? conv_group_shape(s) : *s;
    return !conv_is_depthwise(s) && conv_shared(&d);
}

/* Images per shared chunk: as many as SHARED_TARGET holds, the chunks of the
 * batch made even; a 1x1 conv reads its input in place, all of it at once. */
static int64_t shared_chunk(const sm_conv_shape *s)
{
    if (conv_is_pointwise(s)) return s->n;
    int64_t c = SHARED_TARGET / (conv_k(s) * s->oh * s->ow);
    if (c < 1) c = 1;
    if (c > s->n) c = s->n;
    int64_t nch = (s->n + c - 1) / c;
    return (s->n + nch - 1) / nch;
}

static int64_t shared_col_floats(const sm_conv_shape *s)
{
    return conv_is_pointwise(s) ? 0 : conv_k(s) * shared_chunk(s) * s->oh * s->ow;
}

/* Scratch of a forward: the shared column buffer, or one per thread. */
static int64_t conv_fwd_floats(const sm_conv_shape *s, int nthreads)
{
    return conv_shared(s) ? shared_col_floats(s) : nthreads * conv_col_floats(s);
}

/* Scratch of a backward. Per-thread chunks: a column buffer and a (Cout, K) dW
 * partial per thread; shared: one column buffer. An input gradient computed as
 * a convolution runs after the weight gradient is summed, with the flipped
 * weights (Cin, Cout*KH*KW) first and that forward's scratch after them. */
static int64_t conv_bwd_floats(const sm_conv_shape *s, int nthreads)
{
    int64_t need = conv_shared(s) ? shared_col_floats(s)
                                  : nthreads * (conv_col_floats(s) + s->cout * conv_k(s));
    if (conv_grad_as_conv(s)) {
        sm_conv_shape g = conv_grad_shape(s);
        int64_t dx = s->cin * s->cout * s->kh * s->kw + conv_fwd_floats(&g, nthreads);
        if (dx > need) need = dx;
    }
    return need;
}

/* Depthwise: a (KH, KW) weight-gradient partial per (c, n) plane. Grouped:
 * the dense scratch of one group (the groups run one after another). */
size_t sm_conv2d_scratch_floats(const sm_conv_shape *s, int nthreads)
{
    if (nthreads < 1) nthreads = 1;
    if (conv_is_depthwise(s))
        return (size_t)(s->cin * s->n * s->kh * s->kw);
    if (conv_groups(s) > 1) {
        sm_conv_shape g = conv_group_shape(s);
        return sm_conv2d_scratch_floats(&g, nthreads);
    }
    int64_t need = conv_fwd_floats(s, nthreads), bwd = conv_bwd_floats(s, nthreads);
    if (bwd > need) need = bwd;
    if (wino_shape(s) && wino_floats(s) > need) need = wino_floats(s);
    if (conv_grad_as_conv(s)) {
        sm_conv_shape g = conv_grad_shape(s);
        if (wino_shape(&g) && wino_floats(&g) > need) need = wino_floats(&g);
    }
    return (size_t)need;
}

/* First and one-past-last output column whose input column ow*stride - pad + kj
 * lies inside [0, W). */
static void valid_range(int64_t *lo, int64_t *hi, int64_t kj, const sm_conv_shape *s)
{
    int64_t st = s->stride;
    int64_t a = s->pad - kj, b = s->w + s->pad - kj;
    int64_t l = a <= 0 ? 0 : (a + st - 1) / st;
    int64_t h = b <= 0 ? 0 : (b + st - 1) / st;
    if (h > s->ow) h = s->ow;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* im2col for "same" stride-1 convolutions (OH == H, OW == W): row (ci,ki,kj)
 * of one image is the whole input plane shifted by (ki-pad)*W + (kj-pad) in
 * flat index, so it is one bulk copy of the overlapping range, zeros outside
 * it, and zeros in the columns that wrapped around a row edge. The planes of
 * the chunk's images lie one after another in both the input (C,N,H,W) and
 * the column row, so one copy serves all nc images; what it carried across an
 * image boundary is the range each image zeroes anyway. On 28x28 maps that
 * is ~10x fewer, ~30x longer copies than row-by-row, and nc times fewer calls
 * than a copy per image. */
static void im2col_same(float *col, const float *inp, const sm_conv_shape *s, int64_t n0,
                        int64_t nc, int64_t c0, int64_t c1)
{
    const int64_t H = s->h, W = s->w, HW = H * W, cols = nc * HW, p = s->pad;
    for (int64_t ci = c0; ci < c1; ci++)
        for (int64_t ki = 0; ki < s->kh; ki++)
            for (int64_t kj = 0; kj < s->kw; kj++) {
                float *dst = col + ((ci * s->kh + ki) * s->kw + kj) * cols;
                const float *src = inp + (ci * s->n + n0) * HW;
                const int64_t off = (ki - p) * W + (kj - p), dc = kj - p;
                const int64_t lo = off < 0 ? (-off < HW ? -off : HW) : 0;   /* zeros at each image's start */
                const int64_t hi = off > 0 ? (off < HW ? HW - off : 0) : HW; /* zeros from here to its end */
                if (off < 0 && -off < cols)
                    memcpy(dst - off, src, (size_t)(cols + off) * sizeof(float));
                else if (off >= 0 && off < cols)
                    memcpy(dst, src + off, (size_t)(cols - off) * sizeof(float));
                for (int64_t n = 0; n < nc; n++) {
                    float *d = dst + n * HW;
                    for (int64_t i = 0; i < lo; i++) d[i] = 0.0f;
                    for (int64_t i = hi; i < HW; i++) d[i] = 0.0f;
                    if (dc < 0)        /* the first -dc columns read the previous row's end */
                        for (int64_t r = 0; r < H; r++)
                            for (int64_t c = 0; c < -dc && c < W; c++) d[r * W + c] = 0.0f;
                    else if (dc > 0)   /* the last dc columns read the next row's start */
                        for (int64_t r = 0; r < H; r++)
                            for (int64_t c = W - dc < 0 ? 0 : W - dc; c < W; c++) d[r * W + c] = 0.0f;
                }
            }
}

/* Rows of input channels [c0, c1) of col (K, nc*OH*OW) <- patches of images
 * [n0, n0+nc). Row (ci,ki,kj), column (n,oh,ow). */
static void im2col_rows(float *col, const float *inp, const sm_conv_shape *s, int64_t n0,
                        int64_t nc, int64_t c0, int64_t c1)
{
    if (s->stride == 1 && s->oh == s->h && s->ow == s->w) {
        im2col_same(col, inp, s, n0, nc, c0, c1);
        return;
    }
    const int64_t H = s->h, W = s->w, OH = s->oh, OW = s->ow, P = OH * OW, st = s->stride;
    const int64_t cols = nc * P;
    for (int64_t ci = c0; ci < c1; ci++)
        for (int64_t ki = 0; ki < s->kh; ki++)
            for (int64_t kj = 0; kj < s->kw; kj++) {
                float *dst = col + ((ci * s->kh + ki) * s->kw + kj) * cols;
                int64_t lo, hi;
                valid_range(&lo, &hi, kj, s);
                for (int64_t n = 0; n < nc; n++) {
                    const float *src = inp + (ci * s->n + n0 + n) * H * W;
                    for (int64_t oh = 0; oh < OH; oh++) {
                        float *d = dst + n * P + oh * OW;
                        int64_t ih = oh * st - s->pad + ki;
                        if (ih < 0 || ih >= H) {
                            memset(d, 0, (size_t)OW * sizeof(float));
                            continue;
                        }
                        const float *srow = src + ih * W - s->pad + kj;
                        for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                        if (st == 1)
                            memcpy(d + lo, srow + lo, (size_t)(hi - lo) * sizeof(float));
                        else
                            for (int64_t ow = lo; ow < hi; ow++) d[ow] = srow[ow * st];
                        for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0.0f;
                    }
                }
            }
}

static void im2col(float *col, const float *inp, const sm_conv_shape *s, int64_t n0, int64_t nc)
{
    im2col_rows(col, inp, s, n0, nc, 0, s->cin);
}

/* dinp[channels c0..c1, images n0..n0+nc) += col2im(dcol): the adjoint of
 * im2col_rows. */
static void col2im_add(float *dinp, const float *dcol, const sm_conv_shape *s, int64_t n0,
                       int64_t nc, int64_t c0, int64_t c1)
{
    const int64_t H = s->h, W = s->w, OH = s->oh, OW = s->ow, P = OH * OW, st = s->stride;
    const int64_t cols = nc * P;
    for (int64_t ci = c0; ci < c1; ci++)
        for (int64_t ki = 0; ki < s->kh; ki++)
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float *src = dcol + ((ci * s->kh + ki) * s->kw + kj) * cols;
                int64_t lo, hi;
                valid_range(&lo, &hi, kj, s);
                for (int64_t n = 0; n < nc; n++) {
                    float *dimg = dinp + (ci * s->n + n0 + n) * H * W;
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = oh * st - s->pad + ki;
                        if (ih < 0 || ih >= H)
                            continue;
                        const float *d = src + n * P + oh * OW;
                        float *drow = dimg + ih * W - s->pad + kj;
                        if (st == 1)
                            for (int64_t ow = lo; ow < hi; ow++) drow[ow] += d[ow];
                        else
                            for (int64_t ow = lo; ow < hi; ow++) drow[ow * st] += d[ow];
                    }
                }
            }
}

/* What happens to a chunk of output rows right after its GEMM, while they are
 * still in cache: nothing, a bias, or a folded eval-mode batch norm with an
 * optional ReLU or ReLU6 (see sm_conv2d_forward_bn). */
typedef struct conv_epilogue {
    const float *bias;                    /* out += bias[co] */
    const float *center, *scale, *shift;  /* out = (out - center[co]) * scale[co] + shift[co] */
    sm_act act;                           /* then out = max(out, 0) or min(max(out, 0), 6) */
} conv_epilogue;

/* The epilogue of output channels [c0, c0 + n) of e, as channels [0, n). */
static conv_epilogue epilogue_slice(const conv_epilogue *e, int64_t c0)
{
    conv_epilogue r = *e;
    if (r.bias) r.bias += c0;
    if (r.center) r.center += c0;
    if (r.scale) r.scale += c0;
    if (r.shift) r.shift += c0;
    return r;
}

static void epilogue_rows(float *o, int64_t ld, int64_t cols, int64_t cout, const conv_epilogue *e)
{
    for (int64_t co = 0; co < cout; co++) {
        float *row = o + co * ld;
        if (e->center) {
            float c0 = e->center[co], sc = e->scale[co], sh = e->shift ? e->shift[co] : 0.0f;
            if (e->act == SM_ACT_RELU)
                for (int64_t j = 0; j < cols; j++) {
                    float v = (row[j] - c0) * sc + sh;
                    row[j] = v > 0.0f ? v : 0.0f;
                }
            else if (e->act == SM_ACT_RELU6)
                for (int64_t j = 0; j < cols; j++) {
                    float v = (row[j] - c0) * sc + sh;
                    v = v > 0.0f ? v : 0.0f;
                    row[j] = v < 6.0f ? v : 6.0f;
                }
            else
                for (int64_t j = 0; j < cols; j++) row[j] = (row[j] - c0) * sc + sh;
        } else if (e->bias) {
            float b = e->bias[co];
            for (int64_t j = 0; j < cols; j++) row[j] += b;
        }
    }
}

/* ------------------------------------------------------------- Winograd
 * F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016) for dense 3x3 stride-1 convolutions. The 4x4 output tile at
 * (4ty, 4tx) is A^T [(G g G^T) .* (B^T d B)] A, d the 6x6 input tile at
 * (4ty - pad, 4tx - pad) (zeros outside the image). The 36 element-wise
 * products, summed over input channels, are 36 GEMMs over the T tiles of a
 * chunk of images,
 *   M[xi] (Cout, T) = U[:, xi] (Cout, Cin) @ V[xi] (Cin, T),   xi = 0..35,
 * 4 multiplications per output instead of 9. The transforms run across up
 * to WSEG consecutive tiles of one plane at once: their inner loops are over
 * the tiles and vectorise. V and M of a chunk stay about WINO_TARGET floats.
 * Float32 round-off grows with the transform's constants (up to 8 and 1/24):
 * about 10x that of the direct sum; test_kernels and test_zoo bound it
 * against the naive twin and PyTorch.
 *
 * The input gradient of a stride-1 conv is the conv of dout with the weights
 * transposed and flipped (conv_grad_as_conv), so it runs here too: the weight
 * transform reads w[ci][co][2-i][2-j] in place of w[co][ci][i][j]. */
/* G: three filter taps a, b, c (a column, or a row) to six. */
#define WINO_G(o0, o1, o2, o3, o4, o5, a, b, c) do {                    \
        o0 = (a) * 0.25f;                                               \
        o1 = -((a) + (b) + (c)) * (1.0f / 6);                           \
        o2 = -((a) - (b) + (c)) * (1.0f / 6);                           \
        o3 = (a) * (1.0f / 24) + (b) * (1.0f / 12) + (c) * (1.0f / 6);  \
        o4 = (a) * (1.0f / 24) - (b) * (1.0f / 12) + (c) * (1.0f / 6);  \
        o5 = (c);                                                       \
    } while (0)

/* u[xi][l] = (G g G^T)[xi] for lanes l < L, g[k][l] the 9 taps of lane l. */
static void wino_filter(float u[36][16], float g[9][16], int L)
{
    float t[6][3][16];
    for (int j = 0; j < 3; j++)   /* t = G g: down each column j */
        for (int l = 0; l < L; l++)
            WINO_G(t[0][j][l], t[1][j][l], t[2][j][l], t[3][j][l], t[4][j][l], t[5][j][l], g[j][l],
                   g[3 + j][l], g[6 + j][l]);
    for (int r = 0; r < 6; r++)   /* u = t G^T: along each row r */
        for (int l = 0; l < L; l++)
            WINO_G(u[r * 6][l], u[r * 6 + 1][l], u[r * 6 + 2][l], u[r * 6 + 3][l], u[r * 6 + 4][l],
                   u[r * 6 + 5][l], t[r][0][l], t[r][1][l], t[r][2][l]);
}

/* U[co][xi][ci] for a conv with cout x cin filters (the A of GEMM xi is at
 * U + xi*cin, leading dimension 36*cin: each output channel's 36 x cin block
 * is written in one place); flip: filter (co, ci) is w[ci][co] rotated by 180
 * degrees, w then (cin, cout, 3, 3). */
static void wino_weights(float *U, const float *w, int64_t cout, int64_t cin, bool flip)
{
    OMP_FOR   /* called inside wino_forward's parallel region */
    for (int64_t co = 0; co < cout; co++)
        for (int64_t c0 = 0; c0 < cin; c0 += 16) {
            int L = cin - c0 < 16 ? (int)(cin - c0) : 16;
            float g[9][16], u[36][16];
            for (int l = 0; l < L; l++)
                for (int k = 0; k < 9; k++)
                    g[k][l] = flip ? w[((c0 + l) * cout + co) * 9 + 8 - k] : w[(co * cin + c0 + l) * 9 + k];
            wino_filter(u, g, L);
            for (int xi = 0; xi < 36; xi++)
                memcpy(U + (co * 36 + xi) * cin + c0, u[xi], (size_t)L * sizeof(float));
        }
}

/* B^T down the rows (or along the columns) of L lanes of 6x6 tiles, t[r][c][l]:
 * d0..d5 the six entries of one column (row), o0..o5 their transform. */
#define WINO_BT(o0, o1, o2, o3, o4, o5, d0, d1, d2, d3, d4, d5) do { \
        o0 = 4.0f * (d0) - 5.0f * (d2) + (d4);                         \
        o1 = -4.0f * ((d1) + (d2)) + (d3) + (d4);                      \
        o2 = 4.0f * ((d1) - (d2)) - (d3) + (d4);                       \
        o3 = 2.0f * ((d3) - (d1)) - (d2) + (d4);                       \
        o4 = 2.0f * ((d1) - (d3)) - (d2) + (d4);                       \
        o5 = 4.0f * (d1) - 5.0f * (d3) + (d5);                         \
    } while (0)
/* A^T: six entries m0..m5 to four outputs. */
#define WINO_AT(o0, o1, o2, o3, m0, m1, m2, m3, m4, m5) do {            \
        float a_ = (m1) + (m2), b_ = (m1) - (m2), c_ = (m3) + (m4), e_ = (m3) - (m4); \
        o0 = (m0) + a_ + c_;                                            \
        o1 = b_ + 2.0f * e_;                                            \
        o2 = a_ + 4.0f * c_;                                            \
        o3 = b_ + 8.0f * e_ + (m5);                                     \
    } while (0)

/* V[xi][t] (row stride ldv) for tiles t0 .. t0 + L of one input plane x
 * (H, W); tile t is (t / tw, t % tw). */
static void wino_input_seg(float *restrict V, int64_t ldv, const float *restrict x,
                           const sm_conv_shape *s, int64_t tw, int64_t t0, int L)
{
    float d[6][6][WSEG], u[6][6][WSEG];
    for (int l = 0; l < L; l++) {
        int64_t iy = 4 * ((t0 + l) / tw) - s->pad, ix = 4 * ((t0 + l) % tw) - s->pad;
        if (iy >= 0 && ix >= 0 && iy + 6 <= s->h && ix + 6 <= s->w) {
            for (int r = 0; r < 6; r++)
                for (int c = 0; c < 6; c++) d[r][c][l] = x[(iy + r) * s->w + ix + c];
            continue;
        }
        for (int r = 0; r < 6; r++)
            for (int c = 0; c < 6; c++) {
                bool in = iy + r >= 0 && iy + r < s->h && ix + c >= 0 && ix + c < s->w;
                d[r][c][l] = in ? x[(iy + r) * s->w + ix + c] : 0.0f;
            }
    }
    for (int c = 0; c < 6; c++)   /* down the columns */
        for (int l = 0; l < L; l++)
            WINO_BT(u[0][c][l], u[1][c][l], u[2][c][l], u[3][c][l], u[4][c][l], u[5][c][l],
                    d[0][c][l], d[1][c][l], d[2][c][l], d[3][c][l], d[4][c][l], d[5][c][l]);
    for (int r = 0; r < 6; r++) {   /* along the rows, into V */
        float *v = V + r * 6 * ldv;
        for (int l = 0; l < L; l++) {
            float o0, o1, o2, o3, o4, o5;
            WINO_BT(o0, o1, o2, o3, o4, o5, u[r][0][l], u[r][1][l], u[r][2][l], u[r][3][l], u[r][4][l],
                    u[r][5][l]);
            v[l] = o0, v[ldv + l] = o1, v[2 * ldv + l] = o2, v[3 * ldv + l] = o3, v[4 * ldv + l] = o4,
            v[5 * ldv + l] = o5;
        }
    }
}

/* The 4x4 outputs of tiles t0 .. t0 + L of one output plane o (OH, OW) from
 * M[xi][t] (row stride ldm); o = y (beta 0) or o += y (beta 1). */
static void wino_output_seg(float *restrict o, const float *restrict M, int64_t ldm,
                            const sm_conv_shape *s, int64_t tw, int64_t t0, int L, float beta)
{
    float t[4][6][WSEG], y[4][4][WSEG];
    for (int c = 0; c < 6; c++) {   /* down the columns */
        const float *m = M + c * ldm;
        for (int l = 0; l < L; l++)
            WINO_AT(t[0][c][l], t[1][c][l], t[2][c][l], t[3][c][l], m[l], m[6 * ldm + l], m[12 * ldm + l],
                    m[18 * ldm + l], m[24 * ldm + l], m[30 * ldm + l]);
    }
    for (int i = 0; i < 4; i++)   /* along the rows */
        for (int l = 0; l < L; l++)
            WINO_AT(y[i][0][l], y[i][1][l], y[i][2][l], y[i][3][l], t[i][0][l], t[i][1][l], t[i][2][l],
                    t[i][3][l], t[i][4][l], t[i][5][l]);
    for (int l = 0; l < L; l++) {
        int64_t oy = 4 * ((t0 + l) / tw), ox = 4 * ((t0 + l) % tw);
        int ni = s->oh - oy < 4 ? (int)(s->oh - oy) : 4, nj = s->ow - ox < 4 ? (int)(s->ow - ox) : 4;
        for (int i = 0; i < ni; i++) {
            float *row = o + (oy + i) * s->ow + ox;
            if (beta != 0.0f)
                for (int j = 0; j < nj; j++) row[j] += y[i][j][l];
            else
                for (int j = 0; j < nj; j++) row[j] = y[i][j][l];
        }
    }
}

/* out = epilogue(conv(inp)) (beta 0) or out += conv(inp) (beta 1, e NULL), by
 * Winograd; flip: the weights are (Cin, Cout, 3, 3), used transposed and
 * rotated (the input gradient). scratch: wino_floats(s). */
static void wino_forward(float *out, const float *inp, const float *weight, bool flip,
                         const conv_epilogue *e, const sm_conv_shape *s, float *scratch, float beta)
{
    const int64_t cin = s->cin, cout = s->cout, P = s->oh * s->ow, HW = s->h * s->w;
    const int64_t NP = s->n * P, NHW = s->n * HW;
    const int64_t th = (s->oh + 3) / 4, tw = (s->ow + 3) / 4, tpi = th * tw;
    const int64_t chunk = wino_chunk(s);
    float *U = scratch, *V = U + 36 * cin * cout, *M = V + 36 * cin * chunk * tpi;
    const int nt = sm_threads_get();
    const int64_t nsplit = 1 + (nt - 1) / 12;   /* 36 GEMMs, split by columns for many threads */

    /* one parallel region; the loops share it (implicit barriers between them) */
    PAR_REGION
    {
    wino_weights(U, weight, cout, cin, flip);
    for (int64_t n0 = 0; n0 < s->n; n0 += chunk) {
        const int64_t nc = n0 + chunk <= s->n ? chunk : s->n - n0, T = nc * tpi;
        OMP_FOR
        for (int64_t p = 0; p < cin * nc; p++) {
            int64_t ci = p / nc, n = p % nc;
            const float *x = inp + ci * NHW + (n0 + n) * HW;
            for (int64_t t0 = 0; t0 < tpi; t0 += WSEG)
                wino_input_seg(V + ci * T + n * tpi + t0, cin * T, x, s, tw, t0,
                               tpi - t0 < WSEG ? (int)(tpi - t0) : WSEG);
        }
        OMP_FOR
        for (int64_t q = 0; q < 36 * nsplit; q++) {
            int64_t xi = q / nsplit, sp = q % nsplit, j0 = T * sp / nsplit, j1 = T * (sp + 1) / nsplit;
            sm_gemm(false, false, cout, j1 - j0, cin, 1.0f, U + xi * cin, 36 * cin,
                    V + xi * cin * T + j0, T, 0.0f, M + xi * cout * T + j0, T);
        }
        OMP_FOR
        for (int64_t p = 0; p < cout * nc; p++) {
            int64_t co = p / nc, n = p % nc;
            float *o = out + co * NP + (n0 + n) * P;
            for (int64_t t0 = 0; t0 < tpi; t0 += WSEG)
                wino_output_seg(o, M + co * T + n * tpi + t0, cout * T, s, tw, t0,
                                tpi - t0 < WSEG ? (int)(tpi - t0) : WSEG, beta);
            if (e) {
                conv_epilogue ec = epilogue_slice(e, co);
                epilogue_rows(o, P, P, 1, &ec);
            }
        }
    }
    }
}

/* Shared mode (see conv_shared): chunks of `chunk` images one after another,
 * the threads together on each. col: K * chunk * OH*OW floats (none for 1x1). */
static void conv_forward_shared(float *out, const float *inp, const float *weight,
                                const conv_epilogue *e, const sm_conv_shape *s, float *col,
                                int64_t chunk, float beta)
{
    const int64_t K = conv_k(s), P = s->oh * s->ow, NP = s->n * P;
    const bool pointwise = conv_is_pointwise(s);
    PAR_REGION
    {
    const int64_t t = sm_thread_id(), T = sm_team_size();
    const int64_t c0 = s->cin * t / T, c1 = s->cin * (t + 1) / T;
    for (int64_t n0 = 0; n0 < s->n; n0 += chunk) {
        const int64_t nc = n0 + chunk <= s->n ? chunk : s->n - n0, cols = nc * P;
        const float *b = pointwise ? inp + n0 * P : col;
        const int64_t ldb = pointwise ? NP : cols;
        float *o = out + n0 * P;
        if (!pointwise) {
            im2col_rows(col, inp, s, n0, nc, c0, c1);
            OMP_BARRIER
        }
        if (s->cout >= cols) {   /* a share of the output channels, all columns */
            int64_t m0 = s->cout * t / T, m1 = s->cout * (t + 1) / T;
            sm_gemm(false, false, m1 - m0, cols, K, 1.0f, weight + m0 * K, K, b, ldb, beta,
                    o + m0 * NP, NP);
            if (e) {
                conv_epilogue em = epilogue_slice(e, m0);
                epilogue_rows(o + m0 * NP, NP, cols, m1 - m0, &em);
            }
        } else {                 /* a share of the columns, in blocks of 16 */
            int64_t blocks = (cols + 15) / 16;
            int64_t j0 = 16 * (blocks * t / T), j1 = 16 * (blocks * (t + 1) / T);
            if (j1 > cols) j1 = cols;
            if (j1 > j0) {
                sm_gemm(false, false, s->cout, j1 - j0, K, 1.0f, weight, K, b + j0, ldb, beta,
                        o + j0, NP);
                if (e) epilogue_rows(o + j0, NP, j1 - j0, s->cout, e);
            }
        }
        if (!pointwise) {   /* before the next chunk's rows replace these */
            OMP_BARRIER
        }
    }
    }
}

/* out = epilogue(conv(inp)) when beta is 0; out += conv(inp) when beta is 1
 * (e NULL). Per-thread chunks: thread t's column buffer is at scratch + t *
 * per_thread; shared mode: scratch is the one column buffer. */
static void conv_forward(float *out, const float *inp, const float *weight, const conv_epilogue *e,
                         const sm_conv_shape *s, float *scratch, int64_t per_thread, float beta)
{
    const int64_t K = conv_k(s), P = s->oh * s->ow, NP = s->n * P;
    const int64_t chunk = conv_chunk(s), nchunks = (s->n + chunk - 1) / chunk;
    const bool pointwise = conv_is_pointwise(s);
    const int nt = sm_threads_get();
    if (conv_shared(s)) {
        conv_forward_shared(out, inp, weight, e, s, scratch, shared_chunk(s), beta);
        return;
    }
    if (nchunks == 1 && nt > 1 && NP >= 64 * nt) {
        /* One chunk (a small batch, e.g. one image at inference): the threads
         * share it instead of one thread doing the whole GEMM; its column
         * buffer is thread 0's. */
        conv_forward_shared(out, inp, weight, e, s, scratch, s->n, beta);
        return;
    }
    PAR_FOR(1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t n0 = c * chunk, nc = n0 + chunk <= s->n ? chunk : s->n - n0;
        int64_t cols = nc * P;
        float *o = out + n0 * P;
        if (pointwise) {
            sm_gemm(false, false, s->cout, cols, K, 1.0f, weight, K, inp + n0 * P, NP, beta,
                    o, NP);
        } else {
            float *col = scratch + (int64_t)sm_thread_id() * per_thread;
            im2col(col, inp, s, n0, nc);
            sm_gemm(false, false, s->cout, cols, K, 1.0f, weight, K, col, cols, beta, o, NP);
        }
        if (e) epilogue_rows(o, NP, cols, s->cout, e);
    }
}

/* Shared-mode backward: each thread owns the input channels [c0, c1), that is
 * the rows [c0, c1) * KH*KW of the column buffer and the same columns of the
 * weight gradient, and the planes of those channels in dinp; so it builds its
 * rows, accumulates its dW columns over the chunk, overwrites its rows with
 * dcol and scatters them, without waiting for the other threads. dinp NULL:
 * no input gradient here. */
static void conv_backward_shared(float *dinp, float *dweight, const float *dout, const float *inp,
                                 const float *weight, const sm_conv_shape *s, float *col)
{
    const int64_t K = conv_k(s), kk = s->kh * s->kw, P = s->oh * s->ow, NP = s->n * P;
    const int64_t chunk = shared_chunk(s);
    const bool pointwise = conv_is_pointwise(s);
    PAR_REGION
    {
    const int64_t t = sm_thread_id(), T = sm_team_size();
    const int64_t c0 = s->cin * t / T, c1 = s->cin * (t + 1) / T, k0 = c0 * kk, kn = (c1 - c0) * kk;
    for (int64_t n0 = 0; kn > 0 && n0 < s->n; n0 += chunk) {
        const int64_t nc = n0 + chunk <= s->n ? chunk : s->n - n0, cols = nc * P;
        const float *dchunk = dout + n0 * P;
        if (pointwise) {
            if (dweight)
                sm_gemm(false, true, s->cout, kn, cols, 1.0f, dchunk, NP, inp + k0 * NP + n0 * P,
                        NP, 1.0f, dweight + k0, K);
            if (dinp)
                sm_gemm(true, false, kn, cols, s->cout, 1.0f, weight + k0, K, dchunk, NP, 1.0f,
                        dinp + k0 * NP + n0 * P, NP);
            continue;
        }
        if (dweight) {
            im2col_rows(col, inp, s, n0, nc, c0, c1);
            sm_gemm(false, true, s->cout, kn, cols, 1.0f, dchunk, NP, col + k0 * cols, cols, 1.0f,
                    dweight + k0, K);
        }
        if (dinp) {
            sm_gemm(true, false, kn, cols, s->cout, 1.0f, weight + k0, K, dchunk, NP, 0.0f,
                    col + k0 * cols, cols);
            col2im_add(dinp, col, s, n0, nc, c0, c1);
        }
    }
    }
}

/* The dense backward (groups 1) without dbias. */
static void conv_backward_dense(float *dinp, float *dweight, const float *dout, const float *inp,
                                const float *weight, const sm_conv_shape *s, float *scratch)
{
    const int64_t K = conv_k(s), P = s->oh * s->ow, NP = s->n * P;
    const bool pointwise = conv_is_pointwise(s), as_conv = conv_grad_as_conv(s);
    const int nt = sm_threads_get();

    if (dinp && as_conv) {
        sm_conv_shape g = conv_grad_shape(s);
        if (wino_eligible(&g)) {
            wino_forward(dinp, dout, weight, true, NULL, &g, scratch, 1.0f);
            dinp = NULL;
        }
    }
    if (!dinp && !dweight)
        return;

    if (conv_shared(s)) {
        conv_backward_shared(as_conv ? NULL : dinp, dweight, dout, inp, weight, s, scratch);
    } else if (dweight || !as_conv) {
        const int64_t chunk = conv_chunk(s), nchunks = (s->n + chunk - 1) / chunk;
        const int64_t colf = conv_col_floats(s), per_thread = colf + s->cout * K;
        if (dweight)
            for (int t = 0; t < nt; t++)
                memset(scratch + t * per_thread + colf, 0, (size_t)(s->cout * K) * sizeof(float));
        PAR_FOR(1)
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t n0 = c * chunk, nc = n0 + chunk <= s->n ? chunk : s->n - n0;
            int64_t cols = nc * P;
            float *mine = scratch + (int64_t)sm_thread_id() * per_thread;
            const float *dchunk = dout + n0 * P;
            if (pointwise) {
                if (dweight)
                    sm_gemm(false, true, s->cout, K, cols, 1.0f, dchunk, NP, inp + n0 * P, NP, 1.0f,
                            mine + colf, K);
                if (dinp)
                    sm_gemm(true, false, K, cols, s->cout, 1.0f, weight, K, dchunk, NP, 1.0f,
                            dinp + n0 * P, NP);
                continue;
            }
            if (dweight) {
                im2col(mine, inp, s, n0, nc);
                sm_gemm(false, true, s->cout, K, cols, 1.0f, dchunk, NP, mine, cols, 1.0f,
                        mine + colf, K);
            }
            if (dinp && !as_conv) {   /* the column buffer is free again: reuse it for dcol */
                sm_gemm(true, false, K, cols, s->cout, 1.0f, weight, K, dchunk, NP, 0.0f, mine, cols);
                col2im_add(dinp, mine, s, n0, nc, 0, s->cin);
            }
        }
        if (dweight) {   /* the partials in thread order: reproducible for a thread count */
            const int64_t nw = s->cout * K;
            PAR_FOR(1)
            for (int64_t i = 0; i < nw; i++) {
                float acc = 0.0f;
                for (int t = 0; t < nt; t++) acc += scratch[t * per_thread + colf + i];
                dweight[i] += acc;
            }
        }
    }

    if (dinp && as_conv) {
        /* wflip (Cin, Cout, KH, KW): wflip[ci][co][i][j] = w[co][ci][KH-1-i][KW-1-j] */
        const int64_t kk = s->kh * s->kw;
        float *wflip = scratch;
        /* in 16 x 16 (ci, co) blocks, so that reads and writes both stay in
         * cache lines already fetched (one side is strided by Cin or Cout) */
        const int64_t cib = (s->cin + 15) / 16, cob = (s->cout + 15) / 16;
        PAR_FOR(s->cin * s->cout * kk >= 65536)
        for (int64_t bl = 0; bl < cib * cob; bl++) {
            const int64_t ci0 = bl / cob * 16, co0 = bl % cob * 16;
            const int64_t ci1 = ci0 + 16 < s->cin ? ci0 + 16 : s->cin;
            const int64_t co1 = co0 + 16 < s->cout ? co0 + 16 : s->cout;
            for (int64_t co = co0; co < co1; co++)
                for (int64_t ci = ci0; ci < ci1; ci++) {
                    const float *src = weight + (co * s->cin + ci) * kk;
                    float *dst = wflip + (ci * s->cout + co) * kk;
                    for (int64_t t = 0; t < kk; t++) dst[t] = src[kk - 1 - t];
                }
        }
        sm_conv_shape g = conv_grad_shape(s);
        conv_forward(dinp, dout, wflip, NULL, &g, scratch + s->cin * s->cout * kk,
                     conv_col_floats(&g), 1.0f);
    }
}

/* ------------------------------------------------------------- depthwise
 * groups == Cin == Cout: plane (c, n) of the output depends on plane (c, n)
 * of the input and the KH x KW filter c alone. Row by row, tap by tap: for
 * output row oh and tap (ki, kj), the valid columns [lo, hi) of valid_range
 * read input row ih = oh*stride - pad + ki at ow*stride - pad + kj. */

/* o (OH, OW) = sum over taps of w[ki][kj] * x (H, W) shifted; one plane. */
static void dw_plane_forward(float *restrict o, const float *restrict x, const float *restrict w,
                             const sm_conv_shape *s)
{
    const int64_t H = s->h, W = s->w, OW = s->ow, st = s->stride, p = s->pad;
    for (int64_t oh = 0; oh < s->oh; oh++) {
        float *restrict orow = o + oh * OW;
        for (int64_t ow = 0; ow < OW; ow++) orow[ow] = 0.0f;
        for (int64_t ki = 0; ki < s->kh; ki++) {
            const int64_t ih = oh * st - p + ki;
            if (ih < 0 || ih >= H)
                continue;
            const float *restrict xr = x + ih * W;
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float wv = w[ki * s->kw + kj];
                const int64_t off = kj - p;
                int64_t lo, hi;
                valid_range(&lo, &hi, kj, s);
                if (st == 1)
                    for (int64_t ow = lo; ow < hi; ow++) orow[ow] += wv * xr[ow + off];
                else
                    for (int64_t ow = lo; ow < hi; ow++) orow[ow] += wv * xr[ow * st + off];
            }
        }
    }
}

/* dx (H, W) += the adjoint of dw_plane_forward applied to d (OH, OW). */
static void dw_plane_dinp(float *restrict dx, const float *restrict d, const float *restrict w,
                          const sm_conv_shape *s)
{
    const int64_t H = s->h, W = s->w, OW = s->ow, st = s->stride, p = s->pad;
    for (int64_t oh = 0; oh < s->oh; oh++) {
        const float *restrict drow = d + oh * OW;
        for (int64_t ki = 0; ki < s->kh; ki++) {
            const int64_t ih = oh * st - p + ki;
            if (ih < 0 || ih >= H)
                continue;
            float *restrict xr = dx + ih * W;
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float wv = w[ki * s->kw + kj];
                const int64_t off = kj - p;
                int64_t lo, hi;
                valid_range(&lo, &hi, kj, s);
                if (st == 1)
                    for (int64_t ow = lo; ow < hi; ow++) xr[ow + off] += wv * drow[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) xr[ow * st + off] += wv * drow[ow];
            }
        }
    }
}

/* g (KH, KW) = the weight gradient of one plane: sum over the plane of
 * d * x shifted, per tap. Eight running sums side by side (then added in a
 * fixed order), so the reduction vectorises without reassociating floats. */
static void dw_plane_dweight(float *restrict g, const float *restrict d, const float *restrict x,
                             const sm_conv_shape *s)
{
    const int64_t H = s->h, W = s->w, OW = s->ow, st = s->stride, p = s->pad;
    for (int64_t ki = 0; ki < s->kh; ki++)
        for (int64_t kj = 0; kj < s->kw; kj++) {
            const int64_t off = kj - p;
            float lane[8] = {0}, tail = 0.0f;
            int64_t lo, hi;
            valid_range(&lo, &hi, kj, s);
            for (int64_t oh = 0; oh < s->oh; oh++) {
                const int64_t ih = oh * st - p + ki;
                if (ih < 0 || ih >= H)
                    continue;
                const float *restrict drow = d + oh * OW, *restrict xr = x + ih * W;
                int64_t ow = lo;
                if (st == 1)
                    for (; ow + 8 <= hi; ow += 8)
                        for (int l = 0; l < 8; l++) lane[l] += drow[ow + l] * xr[ow + l + off];
                else
                    for (; ow + 8 <= hi; ow += 8)
                        for (int l = 0; l < 8; l++) lane[l] += drow[ow + l] * xr[(ow + l) * st + off];
                for (; ow < hi; ow++) tail += drow[ow] * xr[ow * st + off];
            }
            g[ki * s->kw + kj] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                                 ((lane[4] + lane[5]) + (lane[6] + lane[7])) + tail;
        }
}

/* Planes (c, n) in one static loop; the epilogue of channel c on each plane. */
static void dw_forward(float *out, const float *inp, const float *weight, const conv_epilogue *e,
                       const sm_conv_shape *s)
{
    const int64_t N = s->n, HW = s->h * s->w, P = s->oh * s->ow, kk = s->kh * s->kw;
    const int64_t planes = s->cin * N;
    PAR_FOR(planes * P * kk >= 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const int64_t c = pl / N;
        float *o = out + pl * P;
        dw_plane_forward(o, inp + pl * HW, weight + c * kk, s);
        conv_epilogue ec = epilogue_slice(e, c);
        epilogue_rows(o, P, P, 1, &ec);
    }
}

/* dinp planes directly; dweight through the per-plane partials in scratch
 * (C, N, KH, KW), then summed over n in order for each channel. */
static void dw_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                        const float *weight, const sm_conv_shape *s, float *scratch)
{
    const int64_t N = s->n, HW = s->h * s->w, P = s->oh * s->ow, kk = s->kh * s->kw;
    const int64_t planes = s->cin * N;
    if (!dinp && !dweight)
        return;
    PAR_FOR(planes * P * kk >= 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const int64_t c = pl / N;
        if (dinp) dw_plane_dinp(dinp + pl * HW, dout + pl * P, weight + c * kk, s);
        if (dweight) dw_plane_dweight(scratch + pl * kk, dout + pl * P, inp + pl * HW, s);
    }
    if (dweight) {
        PAR_FOR(planes * kk >= 32768)
        for (int64_t c = 0; c < s->cin; c++)
            for (int64_t t = 0; t < kk; t++) {
                double acc = 0.0;
                for (int64_t n = 0; n < N; n++) acc += scratch[(c * N + n) * kk + t];
                dweight[c * kk + t] += (float)acc;
            }
    }
}

/* ------------------------------------------------------------- entry points */

/* Dense, depthwise, or g dense convs on the groups' slices. */
static void conv_forward_any(float *out, const float *inp, const float *weight,
                             const conv_epilogue *e, const sm_conv_shape *s, float *scratch)
{
    if (conv_is_depthwise(s)) {
        dw_forward(out, inp, weight, e, s);
        return;
    }
    if (conv_groups(s) == 1) {
        if (wino_eligible(s))
            wino_forward(out, inp, weight, false, e, s, scratch, 0.0f);
        else
            conv_forward(out, inp, weight, e, s, scratch, conv_col_floats(s), 0.0f);
        return;
    }
    const sm_conv_shape g = conv_group_shape(s);
    const int64_t per_thread = conv_col_floats(&g);
    const bool wino = wino_eligible(&g);
    for (int64_t gi = 0; gi < conv_groups(s); gi++) {
        conv_epilogue eg = epilogue_slice(e, gi * g.cout);
        float *og = out + gi * g.cout * g.n * g.oh * g.ow;
        const float *ig = inp + gi * g.cin * g.n * g.h * g.w, *wg = weight + gi * g.cout * conv_k(&g);
        if (wino)
            wino_forward(og, ig, wg, false, &eg, &g, scratch, 0.0f);
        else
            conv_forward(og, ig, wg, &eg, &g, scratch, per_thread, 0.0f);
    }
}

void sm_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                       const sm_conv_shape *s, float *scratch)
{
    conv_epilogue e = {.bias = bias};
    conv_forward_any(out, inp, weight, &e, s, scratch);
}

void sm_conv2d_forward_bn(float *out, const float *inp, const float *weight, const float *center,
                          const float *scale, const float *shift, sm_act act,
                          const sm_conv_shape *s, float *scratch)
{
    conv_epilogue e = {.center = center, .scale = scale, .shift = shift, .act = act};
    conv_forward_any(out, inp, weight, &e, s, scratch);
}

void sm_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const sm_conv_shape *s,
                        float *scratch)
{
    const int64_t NP = s->n * s->oh * s->ow;
    if (dbias) {
        PAR_FOR(1)
        for (int64_t co = 0; co < s->cout; co++) {
            const float *row = dout + co * NP;
            double acc = 0.0;
            for (int64_t j = 0; j < NP; j++) acc += row[j];
            dbias[co] += (float)acc;
        }
    }
    if (conv_is_depthwise(s)) {
        dw_backward(dinp, dweight, dout, inp, weight, s, scratch);
        return;
    }
    if (conv_groups(s) == 1) {
        conv_backward_dense(dinp, dweight, dout, inp, weight, s, scratch);
        return;
    }
    const sm_conv_shape g = conv_group_shape(s);
    const int64_t xg = g.cin * g.n * g.h * g.w, wg = g.cout * conv_k(&g), og = g.cout * NP;
    for (int64_t gi = 0; gi < conv_groups(s); gi++)
        conv_backward_dense(dinp ? dinp + gi * xg : NULL, dweight ? dweight + gi * wg : NULL,
                            dout + gi * og, inp + gi * xg, weight + gi * wg, &g, scratch);
}

/* ------------------------------------------------------------- naive twin
 * Output channel co of group co / (Cout/g) reads that group's Cin/g input
 * channels; weight (Cout, Cin/g, KH, KW). */

void sm_conv2d_forward_naive(float *out, const float *inp, const float *weight,
                             const float *bias, const sm_conv_shape *s)
{
    const int64_t N = s->n, H = s->h, W = s->w, OH = s->oh, OW = s->ow;
    const int64_t cig = s->cin / conv_groups(s), cog = s->cout / conv_groups(s);
    for (int64_t co = 0; co < s->cout; co++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int64_t cl = 0; cl < cig; cl++)
                        for (int64_t ki = 0; ki < s->kh; ki++)
                            for (int64_t kj = 0; kj < s->kw; kj++) {
                                int64_t ih = oh * s->stride - s->pad + ki;
                                int64_t iw = ow * s->stride - s->pad + kj;
                                int64_t ci = co / cog * cig + cl;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    continue;
                                acc += (double)weight[((co * cig + cl) * s->kh + ki) * s->kw + kj] *
                                       inp[((ci * N + n) * H + ih) * W + iw];
                            }
                    out[((co * N + n) * OH + oh) * OW + ow] = (float)acc;
                }
}

void sm_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const sm_conv_shape *s)
{
    const int64_t N = s->n, H = s->h, W = s->w, OH = s->oh, OW = s->ow, st = s->stride;
    const int64_t cig = s->cin / conv_groups(s), cog = s->cout / conv_groups(s);
    if (dbias)
        for (int64_t co = 0; co < s->cout; co++) {
            double acc = 0.0;
            for (int64_t j = 0; j < N * OH * OW; j++) acc += dout[co * N * OH * OW + j];
            dbias[co] += (float)acc;
        }
    if (dweight)
        for (int64_t co = 0; co < s->cout; co++)
            for (int64_t cl = 0; cl < cig; cl++)
                for (int64_t ki = 0; ki < s->kh; ki++)
                    for (int64_t kj = 0; kj < s->kw; kj++) {
                        const int64_t ci = co / cog * cig + cl;
                        double acc = 0.0;
                        for (int64_t n = 0; n < N; n++)
                            for (int64_t oh = 0; oh < OH; oh++)
                                for (int64_t ow = 0; ow < OW; ow++) {
                                    int64_t ih = oh * st - s->pad + ki, iw = ow * st - s->pad + kj;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                        continue;
                                    acc += (double)dout[((co * N + n) * OH + oh) * OW + ow] *
                                           inp[((ci * N + n) * H + ih) * W + iw];
                                }
                        dweight[((co * cig + cl) * s->kh + ki) * s->kw + kj] += (float)acc;
                    }
    if (dinp)
        for (int64_t ci = 0; ci < s->cin; ci++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t ih = 0; ih < H; ih++)
                    for (int64_t iw = 0; iw < W; iw++) {
                        const int64_t gi = ci / cig, cl = ci % cig;
                        double acc = 0.0;
                        for (int64_t co = gi * cog; co < (gi + 1) * cog; co++)
                            for (int64_t ki = 0; ki < s->kh; ki++)
                                for (int64_t kj = 0; kj < s->kw; kj++) {
                                    int64_t th = ih + s->pad - ki, tw = iw + s->pad - kj;
                                    if (th < 0 || tw < 0 || th % st || tw % st)
                                        continue;
                                    int64_t oh = th / st, ow = tw / st;
                                    if (oh >= OH || ow >= OW)
                                        continue;
                                    acc += (double)dout[((co * N + n) * OH + oh) * OW + ow] *
                                           weight[((co * cig + cl) * s->kh + ki) * s->kw + kj];
                                }
                        dinp[((ci * N + n) * H + ih) * W + iw] += (float)acc;
                    }
}
