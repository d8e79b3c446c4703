/* kernels.h - the numeric kernels of the backbone (private).
 *
 * Pure functions over raw pointers: outputs first, shapes as int64_t, no
 * allocation inside (scratch, when needed, is passed in and its size is given
 * by a *_scratch_floats() function). Each backward mirrors its forward with
 * d-prefixed gradients and ACCUMULATES (+=) into every gradient it writes, so
 * callers zero gradients once with memset and shared weights add up. A NULL
 * gradient pointer means "not needed" and is skipped (e.g. dinp of the first
 * layer).
 *
 * Layouts
 *   Spatial activations are stored channel-major, (C, N, H, W): element
 *   (c, n, h, w) is at ((c*N + n)*H + h)*W + w. A whole batch of one channel is
 *   contiguous, which makes a convolution one GEMM over N*H*W columns and
 *   per-channel statistics a contiguous reduction.
 *   Dense activations are row-major (N, F).
 *   Weights use PyTorch's layouts so checkpoints map 1:1 to state_dict:
 *   conv (Cout, Cin, KH, KW), linear (Out, In).
 *   Per-channel ops (batch norm, PReLU) describe their tensor as
 *   (outer, C, inner): element (o, c, i) at (o*C + c)*inner + i. Spatial
 *   (C,N,H,W) is outer=1, inner=N*H*W; dense (N,F) is outer=N, C=F, inner=1.
 *
 * Threads: kernels parallelise internally with OpenMP (static schedules, so a
 * given thread count gives bit-identical results); they must be called from
 * outside a parallel region. Scratch sized for sm_threads_get() threads.
 *
 * Every fast kernel that is not a plain loop keeps a *_naive twin with the same
 * contract, used as the test oracle and kept simple on purpose. */
#ifndef SM_KERNELS_H
#define SM_KERNELS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- conv2d */
typedef struct sm_conv_shape {
    int64_t n, cin, h, w;        /* input (Cin, N, H, W) */
    int64_t cout, kh, kw;        /* weight (Cout, Cin, KH, KW) */
    int64_t stride, pad;         /* same in both directions; zero padding */
    int64_t oh, ow;              /* output (Cout, N, OH, OW); filled by sm_conv_shape_init */
    int64_t groups;              /* 0 or 1: a dense conv; g > 1: Cin and Cout split into g
                                  * groups (PyTorch's `groups`), weight (Cout, Cin/g, KH, KW);
                                  * g == Cin == Cout is a depthwise conv */
    bool exact;                  /* direct sums only, never Winograd (training: batch
                                  * statistics amplify its round-off) */
} sm_conv_shape;

/* The activation a fused epilogue applies (sm_conv2d_forward_bn). Values
 * 0 and 1 are false and true, the bool of earlier versions. */
typedef enum sm_act { SM_ACT_NONE = 0, SM_ACT_RELU = 1, SM_ACT_RELU6 = 2 } sm_act;

/* Computes oh/ow = (h + 2*pad - k)/stride + 1; returns 0, or -1 if the shape is
 * impossible (kernel larger than padded input, non-positive sizes, Cin or Cout
 * not divisible by groups). */
int sm_conv_shape_init(sm_conv_shape *s);

/* Dense 3x3 stride-1 convolutions with >= 32 channels in and out use
 * Winograd F(4x4, 3x3) for the forward (unless the shape says exact) and the
 * input gradient, unless this is switched off (process-wide; default on).
 * The scratch size does not depend on it. */
void sm_conv_set_winograd(bool on);
bool sm_conv_winograd(void);
/* Whether sm_conv2d_forward (sm_conv2d_backward's input gradient) of s runs by
 * Winograd now. */
bool sm_conv2d_winograd_applies(const sm_conv_shape *s);
bool sm_conv2d_winograd_applies_dinp(const sm_conv_shape *s);
/* Whether the im2col path of s (one group's) runs in shared mode: the threads
 * together on one chunk of images at a time, because the weights outweigh a
 * per-thread chunk's columns (see conv.c). */
bool sm_conv2d_shared_applies(const sm_conv_shape *s);

/* Floats of scratch that forward/backward need with `nthreads` threads. */
size_t sm_conv2d_scratch_floats(const sm_conv_shape *s, int nthreads);

/* out (Cout,N,OH,OW) = conv(inp (Cin,N,H,W), weight) + bias (Cout) (bias may be NULL). */
void sm_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                       const sm_conv_shape *s, float *scratch);
/* Inference form of conv -> eval-mode batch norm [-> ReLU] in one pass, the
 * batch norm applied to each block of output rows while it is in cache:
 *   out[co] = (conv(inp)[co] - center[co]) * scale[co] + shift[co],
 * then the activation act (none, max(out, 0), or min(max(out, 0), 6)).
 * sm_bn_fold gives center and scale for a batch norm after a conv with bias;
 * shift (the batch norm's beta) may be NULL (0). */
void sm_conv2d_forward_bn(float *out, const float *inp, const float *weight, const float *center,
                          const float *scale, const float *shift, sm_act act,
                          const sm_conv_shape *s, float *scratch);
/* dinp (Cin,N,H,W) += ..., dweight (Cout,Cin,KH,KW) += ..., dbias (Cout) += ...;
 * any of the three may be NULL. */
void sm_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const sm_conv_shape *s,
                        float *scratch);
void sm_conv2d_forward_naive(float *out, const float *inp, const float *weight,
                             const float *bias, const sm_conv_shape *s);
void sm_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const sm_conv_shape *s);

/* ------------------------------------------------------------- batch norm
 * Over a tensor described as (outer, C, inner); statistics per channel over
 * the M = outer*inner elements. Training: normalise with the batch mean and
 * biased variance; update running_mean/var as PyTorch does:
 *   running = (1 - momentum) * running + momentum * batch_stat,
 * with the UNBIASED variance (M/(M-1)) for running_var. mean and invstd
 * (1/sqrt(var+eps)) of the batch are saved for backward. */
void sm_bn_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                         float *running_var, const float *inp, const float *gamma,
                         const float *beta, int64_t outer, int64_t c, int64_t inner,
                         float momentum, float eps);
void sm_bn_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, int64_t outer,
                        int64_t c, int64_t inner, float eps);
/* Folds an eval-mode batch norm that follows a layer with bias (bias, gamma
 * may be NULL: 0 and 1) into the centred affine map sm_conv2d_forward_bn
 * applies: center = running_mean - bias, scale = gamma / sqrt(running_var + eps).
 * The output is then (y - center) * scale + beta for the layer's output y
 * without its bias: centred first, as sm_bn_forward_eval, so a large mean
 * cancels exactly instead of in the scaled value. */
void sm_bn_fold(float *center, float *scale, const float *bias, const float *gamma,
                const float *running_mean, const float *running_var, int64_t c, float eps);
/* Backward of the training forward (batch statistics). */
void sm_bn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                    const float *inp, const float *mean, const float *invstd,
                    const float *gamma, int64_t outer, int64_t c, int64_t inner);
/* The backward of a frozen batch norm, y = (x - mean)·invstd·γ + β with mean and
 * invstd constants (the running statistics): dx += γ·invstd·dy, dγ += Σ dy·x̂,
 * dβ += Σ dy; any output may be NULL. */
void sm_bn_backward_frozen(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int64_t outer, int64_t c, int64_t inner);

/* ------------------------------------------------------------- activations */
/* out = a + b; dst += src (n floats; out may be a or b). */
void sm_add_forward(float *out, const float *a, const float *b, int64_t n);
void sm_add_into(float *dst, const float *src, int64_t n);
void sm_relu_forward(float *out, const float *inp, int64_t n);
/* dinp += dout where out > 0 (the subgradient at 0 is 0, as PyTorch). */
void sm_relu_backward(float *dinp, const float *dout, const float *out, int64_t n);
/* ReLU6 = min(max(x, 0), 6) (torch.nn.ReLU6, i.e. hardtanh(x, 0, 6)): dinp +=
 * dout where 0 < x < 6 (PyTorch's hardtanh backward: 0 at both kinks). The
 * output y may stand for x: 0 < y < 6 exactly where 0 < x < 6. */
void sm_relu6_forward(float *out, const float *inp, int64_t n);
void sm_relu6_backward(float *dinp, const float *dout, const float *inp, int64_t n);
/* Hardswish = x * min(max(x + 3, 0), 6) / 6 (torch.nn.Hardswish); its
 * derivative as PyTorch's vectorised CPU kernel: 0 for x < -3, (2x + 3)/6
 * on [-3, 3), 1 from 3 on. (At the kink x = 3 torch's scalar tail says 1.5
 * instead: a tensor of 5 elements gets 1.5, one of 100 gets 1.) */
void sm_hardswish_forward(float *out, const float *inp, int64_t n);
void sm_hardswish_backward(float *dinp, const float *dout, const float *inp, int64_t n);
/* Hardsigmoid = min(max(x + 3, 0), 6) / 6 (torch.nn.Hardsigmoid); dinp +=
 * dout/6 where -3 < x < 3. */
void sm_hardsigmoid_forward(float *out, const float *inp, int64_t n);
void sm_hardsigmoid_backward(float *dinp, const float *dout, const float *inp, int64_t n);
/* Sigmoid = 1 / (1 + exp(-x)), stable for large |x|; backward from the output:
 * dinp += dout * out * (1 - out). */
void sm_sigmoid_forward(float *out, const float *inp, int64_t n);
void sm_sigmoid_backward(float *dinp, const float *dout, const float *out, int64_t n);

/* PReLU, one slope per channel: out = x > 0 ? x : a[c]*x, over (outer, C, inner). */
void sm_prelu_forward(float *out, const float *inp, const float *a, int64_t outer, int64_t c,
                      int64_t inner);
void sm_prelu_backward(float *dinp, float *da, const float *dout, const float *inp,
                       const float *a, int64_t outer, int64_t c, int64_t inner);

/* ------------------------------------------------------------- dropout
 * The tensor is `groups` contiguous groups of `group_size` elements; a whole
 * group is kept or zeroed together (group_size 1: Dropout; for Dropout2d on
 * (C,N,H,W), groups = C*N and group_size = H*W). Kept elements are scaled by
 * 1/(1-p). mask (groups) receives 0 or 1/(1-p). The decision for group g is a
 * pure function of (seed, g), so it does not depend on the thread count.
 * p in [0,1); p == 0 copies. */
void sm_dropout_forward(float *out, float *mask, const float *inp, int64_t groups,
                        int64_t group_size, float p, uint64_t seed);
void sm_dropout_backward(float *dinp, const float *dout, const float *mask, int64_t groups,
                         int64_t group_size);

/* ------------------------------------------------------------- pooling
 * On `planes` independent H x W planes (for (C,N,H,W), planes = C*N).
 * Output OH = (H + 2*pad - k)/stride + 1 (floor, as PyTorch's default).
 * Max pooling pads with -inf; argmax (planes*OH*OW) holds the index within
 * the input plane (h*W + w) of the chosen element (first maximum on ties);
 * argmax may be NULL (inference: nothing kept for a backward).
 * Average pooling counts padded zeros (count_include_pad=True, PyTorch's default). */
void sm_maxpool2d_forward(float *out, int32_t *argmax, const float *inp, int64_t planes,
                          int64_t h, int64_t w, int64_t k, int64_t stride, int64_t pad,
                          int64_t oh, int64_t ow);
void sm_maxpool2d_backward(float *dinp, const float *dout, const int32_t *argmax,
                           int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow);
void sm_avgpool2d_forward(float *out, const float *inp, int64_t planes, int64_t h, int64_t w,
                          int64_t k, int64_t stride, int64_t pad, int64_t oh, int64_t ow);
void sm_avgpool2d_backward(float *dinp, const float *dout, int64_t planes, int64_t h,
                           int64_t w, int64_t k, int64_t stride, int64_t pad, int64_t oh,
                           int64_t ow);

/* Adaptive average pooling (torch.nn.AdaptiveAvgPool2d((oh, ow))) on
 * `planes` H x W planes: output cell (i, j) averages input rows
 * [floor(i*H/OH), ceil((i+1)*H/OH)) and columns [floor(j*W/OW),
 * ceil((j+1)*W/OW)), PyTorch's start/end rule (cells may overlap when H is
 * not a multiple of OH); the rule holds for any OH, OW >= 1. */
void sm_adaptive_avgpool2d_forward(float *out, const float *inp, int64_t planes, int64_t h,
                                   int64_t w, int64_t oh, int64_t ow);
void sm_adaptive_avgpool2d_backward(float *dinp, const float *dout, int64_t planes, int64_t h,
                                    int64_t w, int64_t oh, int64_t ow);

/* Global average pooling: inp (C,N,H,W) -> out dense (N,C). */
void sm_gap_forward(float *out, const float *inp, int64_t c, int64_t n, int64_t hw);
void sm_gap_backward(float *dinp, const float *dout, int64_t c, int64_t n, int64_t hw);

/* Flatten: inp (C,N,H,W) -> out dense (N, C*H*W) in PyTorch's order
 * (feature index c*H*W + h*W + w), so Linear weights match state_dicts. */
void sm_flatten_forward(float *out, const float *inp, int64_t c, int64_t n, int64_t hw);
void sm_flatten_backward(float *dinp, const float *dout, int64_t c, int64_t n, int64_t hw);

/* ------------------------------------------------------------- linear
 * out (N,Out) = inp (N,In) @ weight^T (weight is (Out,In)) + bias (Out, may be NULL). */
void sm_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int64_t n, int64_t in, int64_t outf);
void sm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int64_t n, int64_t in,
                        int64_t outf);

/* ------------------------------------------------------------- L2 normalisation
 * Rows of (N,D): out = x / max(||x||, eps), as torch.nn.functional.normalize
 * (eps = 1e-12 there). norm (N) receives ||x|| for backward. */
void sm_l2norm_forward(float *out, float *norm, const float *inp, int64_t n, int64_t d,
                       float eps);
void sm_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                        int64_t n, int64_t d, float eps);
#endif
