/* layers.c - the layer kinds of a model: one const vtable each over the kernels.
 *
 * Each kind checks its input shapes and declares its tensors in build(), says
 * how much arena it needs in plan(), and maps forward/backward onto kernels.h.
 * A layer runs with a narrow context (sm_lctx: its tensors, the scratch, the
 * mode), never the model. Tensors are named after the node: "<name>.weight";
 * an unnamed node i is "layers.<i>", PyTorch's nn.Sequential names, so a
 * checkpoint maps 1:1 onto the same network written in PyTorch. */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"

static int add(sm_model *m, sm_layer *l, const char *what, bool trainable, int ndim,
               int64_t a, int64_t b, int64_t c, int64_t d)
{
    char name[sizeof m->tensors->name];
    int len = snprintf(name, sizeof name, "%s.%s", l->name, what);
    if (len < 0 || (size_t)len >= sizeof name) return -3;
    int64_t shape[4] = {a, b, c, d};
    return sm_model_add_tensor(m, name, trainable, ndim, shape);
}

static sm_status need_spatial(sm_layer *l, sm_err *err)
{
    if (l->in.dense)
        return sm_fail(err, SM_ERR_SHAPE,
                       "line %d: %s needs a (C,H,W) input but gets %lld features "
                       "(put it before 'flatten'/'gap')",
                       l->line, l->ops->name, (long long)l->in.c);
    return SM_OK;
}

static sm_status need_dense(sm_layer *l, sm_err *err)
{
    if (!l->in.dense)
        return sm_fail(err, SM_ERR_SHAPE,
                       "line %d: %s needs a flat input but gets (%lld,%lld,%lld) "
                       "(add 'flatten' or 'gap' before it)",
                       l->line, l->ops->name, (long long)l->in.c, (long long)l->in.h,
                       (long long)l->in.w);
    return SM_OK;
}

static sm_status check_ids(sm_layer *l, sm_err *err)
{
    int worst = l->w < l->b ? l->w : l->b;
    if (l->rmean < worst) worst = l->rmean;
    if (l->rvar < worst) worst = l->rvar;
    if (worst == -3)
        return sm_fail(err, SM_ERR_ARG, "line %d: the tensor names of '%s' are too long", l->line,
                       l->name);
    if (worst < -1) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    return SM_OK;
}

/* Uniform(-bound, bound) init, PyTorch's default for conv/linear
 * (kaiming_uniform with a = sqrt(5) gives bound 1/sqrt(fan_in) for weights,
 * and the bias uses the same bound). */
static void init_uniform(float *p, int64_t n, float bound, sm_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (2.0f * sm_rng_float(r) - 1.0f) * bound;
}

/* Weight w (numel) and bias b (nb, may be NULL) of a conv or linear layer by
 * its init key; fan_in and fan_out per PyTorch's _calculate_fan_in_and_fan_out. */
static void init_weights(int kind, float *w, int64_t numel, float *b, int64_t nb, int64_t fan_in,
                         int64_t fan_out, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    if (kind == SM_INIT_DEFAULT) {
        float bound = 1.0f / sqrtf((float)fan_in);
        init_uniform(w, numel, bound, &r);
        if (b) init_uniform(b, nb, bound, &r);
        return;
    }
    double std = kind == SM_INIT_FAN_OUT ? sqrt(2.0 / (double)fan_out) : 0.01;
    for (int64_t i = 0; i < numel; i++) w[i] = (float)(std * sm_rng_normal(&r));
    if (b) memset(b, 0, (size_t)nb * sizeof *b);
}

/* (outer, C, inner) of a per-channel op on either layout: (C,N,H,W) -> outer
 * 1, inner N*H*W; (N,F) -> outer N, C = F, inner 1. */
static void chan_dims(sm_ashape a, int64_t n, int64_t *outer, int64_t *c, int64_t *inner)
{
    *c = a.c;
    if (a.dense) { *outer = n; *inner = 1; }
    else { *outer = 1; *inner = n * a.h * a.w; }
}

/* ------------------------------------------------------------------ conv */
static void conv_shape(const sm_layer *l, int64_t n, sm_conv_shape *s)
{
    *s = (sm_conv_shape){.n = n, .cin = l->in.c, .h = l->in.h, .w = l->in.w, .cout = l->units,
                         .kh = l->k, .kw = l->k, .stride = l->stride, .pad = l->pad,
                         .groups = l->groups};
    sm_conv_shape_init(s);
}

static sm_status conv_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)ins;
    sm_status st = need_spatial(l, err);
    if (st) return st;
    if (l->units <= 0 || l->k <= 0 || l->stride <= 0 || l->pad < 0 || l->groups < 1)
        return sm_fail(err, SM_ERR_ARG,
                       "line %d: conv needs channels > 0, k > 0, s > 0, p >= 0, g >= 1", l->line);
    if (l->in.c % l->groups || l->units % l->groups)
        return sm_fail(err, SM_ERR_SHAPE,
                       "line %d: conv g=%lld must divide its %lld input and %lld output channels",
                       l->line, (long long)l->groups, (long long)l->in.c, (long long)l->units);
    sm_conv_shape s;
    conv_shape(l, 1, &s);
    if (sm_conv_shape_init(&s) != 0)
        return sm_fail(err, SM_ERR_SHAPE, "line %d: conv k=%lld does not fit a %lldx%lld input",
                       l->line, (long long)l->k, (long long)l->in.h, (long long)l->in.w);
    l->out = (sm_ashape){l->units, s.oh, s.ow, false};
    l->w = add(m, l, "weight", true, 4, l->units, l->in.c / l->groups, l->k, l->k);
    if (l->bias) l->b = add(m, l, "bias", true, 1, l->units, 0, 0, 0);
    return check_ids(l, err);
}

static void conv_plan(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch)
{
    sm_conv_shape s;
    conv_shape(l, n, &s);
    *save = 0;
    *scratch = sm_conv2d_scratch_floats(&s, nthreads);
}

static void conv_init(sm_layer *l, const sm_lctx *c, uint64_t seed)
{
    int64_t per = l->in.c / l->groups * l->k * l->k;   /* fan_in; fan_out = units/g*k*k */
    init_weights(l->init, c->w, l->units * per, c->b, l->units, per,
                 l->units / l->groups * l->k * l->k, seed);
}

static void conv_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                         int64_t n)
{
    sm_conv_shape s;
    conv_shape(l, n, &s);
    s.exact = c->exact;
    sm_conv2d_forward(out, in[0], c->w, c->b, &s, c->scratch);
}

static void conv_backward(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                          const float *dout, float *const *din, int64_t n)
{
    (void)out;
    sm_conv_shape s;
    conv_shape(l, n, &s);
    s.exact = c->exact;
    sm_conv2d_backward(din[0], c->dw, c->db, dout, in[0], c->w, &s, c->scratch);
}

static const struct sm_layer_ops conv_ops = {
    "conv", "k s p g bias init", 1, 1, conv_build, conv_plan, conv_init, conv_forward,
    conv_backward, false, true};

/* ------------------------------------------------------------------ batch norm
 * "bn" works on either layout: BatchNorm2d on (C,N,H,W), BatchNorm1d on (N,F).
 * A frozen batch norm (c->frozen: a frozen stage, or sm_model_set_bn_eval)
 * normalises with its running statistics in training too and leaves them
 * alone, as a PyTorch BatchNorm module in eval() inside a training model. */
static sm_status bn_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)ins;
    if (!(l->eps > 0) || !(l->momentum >= 0 && l->momentum <= 1))
        return sm_fail(err, SM_ERR_ARG, "line %d: bn needs eps > 0 and 0 <= momentum <= 1", l->line);
    l->out = l->in;
    l->w = add(m, l, "weight", true, 1, l->in.c, 0, 0, 0);
    l->b = add(m, l, "bias", true, 1, l->in.c, 0, 0, 0);
    l->rmean = add(m, l, "running_mean", false, 1, l->in.c, 0, 0, 0);
    l->rvar = add(m, l, "running_var", false, 1, l->in.c, 0, 0, 0);
    return check_ids(l, err);
}

static void bn_plan(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch)
{
    (void)n; (void)nthreads;
    *save = 2 * (size_t)l->in.c;   /* batch mean, invstd (eval: the fold's center, scale) */
    *scratch = 0;
}

static void bn_init(sm_layer *l, const sm_lctx *c, uint64_t seed)
{
    (void)seed;
    for (int64_t i = 0; i < l->in.c; i++) {
        c->w[i] = 1.0f;
        c->b[i] = 0.0f;
        c->rmean[i] = 0.0f;
        c->rvar[i] = 1.0f;
    }
    l->nbt = 0;
}

static void bn_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out, int64_t n)
{
    int64_t outer, ch, inner;
    chan_dims(l->in, n, &outer, &ch, &inner);
    if (c->training && !c->frozen) {
        sm_bn_forward_train(out, l->save, l->save + ch, c->rmean, c->rvar, in[0], c->w, c->b,
                            outer, ch, inner, l->momentum, l->eps);
        l->nbt++;
    } else {
        sm_bn_forward_eval(out, in[0], c->w, c->b, c->rmean, c->rvar, outer, ch, inner, l->eps);
        if (c->training)   /* frozen: backward is a per-channel scale with these statistics */
            for (int64_t i = 0; i < ch; i++) {
                l->save[i] = c->rmean[i];
                l->save[ch + i] = 1.0f / sqrtf(c->rvar[i] + l->eps);
            }
    }
}

static void bn_backward(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                        const float *dout, float *const *din, int64_t n)
{
    (void)out;
    int64_t outer, ch, inner;
    chan_dims(l->in, n, &outer, &ch, &inner);
    if (c->frozen)
        sm_bn_backward_frozen(din[0], c->dw, c->db, dout, in[0], l->save, l->save + ch, c->w,
                              outer, ch, inner);
    else
        sm_bn_backward(din[0], c->dw, c->db, dout, in[0], l->save, l->save + ch, c->w, outer, ch,
                       inner);
}

static const struct sm_layer_ops bn_ops = {
    "bn", "eps momentum", 1, 1, bn_build, bn_plan, bn_init, bn_forward, bn_backward, false, true};

/* ------------------------------------------------------------------ activations */
static sm_status same_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)err; (void)ins;
    l->out = l->in;
    return SM_OK;
}

static void none_plan(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch)
{
    (void)l; (void)n; (void)nthreads;
    *save = 0;
    *scratch = 0;
}

static void none_init(sm_layer *l, const sm_lctx *c, uint64_t seed) { (void)l; (void)c; (void)seed; }

/* An elementwise activation: forward f(x); backward from x or from the
 * output y, as its kernel wants; those that need only y may run in place. */
#define ELEMENTWISE(kind, keyname, fwd, bwd, from, inplace)                                       \
    static void kind##_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out, \
                               int64_t n)                                                         \
    {                                                                                             \
        (void)c;                                                                                  \
        fwd(out, in[0], n * sm_ashape_numel(l->in));                                              \
    }                                                                                             \
    static void kind##_backward(sm_layer *l, const sm_lctx *c, const float *const *in,            \
                                const float *out, const float *dout, float *const *din,           \
                                int64_t n)                                                        \
    {                                                                                             \
        (void)c; (void)in; (void)out;                                                             \
        if (din[0]) bwd(din[0], dout, from, n * sm_ashape_numel(l->in));                          \
    }                                                                                             \
    static const struct sm_layer_ops kind##_ops = {keyname, "", 1, 1, same_build, none_plan,      \
                                                   none_init, kind##_forward, kind##_backward,    \
                                                   inplace, false};

ELEMENTWISE(relu, "relu", sm_relu_forward, sm_relu_backward, out, true)
/* 0 < y < 6 exactly where 0 < x < 6, so ReLU6's backward can read y */
ELEMENTWISE(relu6, "relu6", sm_relu6_forward, sm_relu6_backward, out, true)
ELEMENTWISE(hardswish, "hardswish", sm_hardswish_forward, sm_hardswish_backward, in[0], false)
ELEMENTWISE(hardsigmoid, "hardsigmoid", sm_hardsigmoid_forward, sm_hardsigmoid_backward, in[0], false)
ELEMENTWISE(sigmoid, "sigmoid", sm_sigmoid_forward, sm_sigmoid_backward, out, true)

static sm_status prelu_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)ins;
    l->out = l->in;
    l->w = add(m, l, "weight", true, 1, l->in.c, 0, 0, 0);
    return check_ids(l, err);
}

static void prelu_init(sm_layer *l, const sm_lctx *c, uint64_t seed)
{
    (void)seed;
    for (int64_t i = 0; i < l->in.c; i++) c->w[i] = 0.25f;   /* PyTorch's init */
}

static void prelu_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                          int64_t n)
{
    int64_t outer, ch, inner;
    chan_dims(l->in, n, &outer, &ch, &inner);
    sm_prelu_forward(out, in[0], c->w, outer, ch, inner);
}

static void prelu_backward(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                           const float *dout, float *const *din, int64_t n)
{
    (void)out;
    int64_t outer, ch, inner;
    chan_dims(l->in, n, &outer, &ch, &inner);
    sm_prelu_backward(din[0], c->dw, dout, in[0], c->w, outer, ch, inner);
}

static const struct sm_layer_ops prelu_ops = {
    "prelu", "", 1, 1, prelu_build, none_plan, prelu_init, prelu_forward, prelu_backward, false, false};

/* ------------------------------------------------------------------ dropout
 * "dropout" drops single elements, "dropout2d" whole channels of one sample.
 * Masks come from a counter-based hash of (step seed, node), so they do not
 * depend on the thread count. In eval mode both copy. */
static const struct sm_layer_ops dropout2d_ops;

static bool is_2d(const sm_layer *l) { return l->ops == &dropout2d_ops; }

static sm_status dropout_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)ins;
    if (!(l->p >= 0.0f && l->p < 1.0f))
        return sm_fail(err, SM_ERR_ARG, "line %d: %s needs 0 <= p < 1", l->line, l->ops->name);
    if (is_2d(l)) {
        sm_status st = need_spatial(l, err);
        if (st) return st;
    }
    l->out = l->in;
    return SM_OK;
}

static void dropout_groups(const sm_layer *l, int64_t n, int64_t *groups, int64_t *gsize)
{
    if (is_2d(l)) { *groups = l->in.c * n; *gsize = l->in.h * l->in.w; }
    else { *groups = n * sm_ashape_numel(l->in); *gsize = 1; }
}

static void dropout_plan(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch)
{
    (void)nthreads;
    int64_t g, gs;
    dropout_groups(l, n, &g, &gs);
    *save = (size_t)g;
    *scratch = 0;
}

static void dropout_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                            int64_t n)
{
    int64_t g, gs;
    dropout_groups(l, n, &g, &gs);
    if (c->training && !c->frozen && l->p > 0.0f) {
        sm_dropout_forward(out, l->save, in[0], g, gs, l->p, c->seed);
    } else {
        memcpy(out, in[0], (size_t)(g * gs) * sizeof *out);
        if (c->training)
            for (int64_t i = 0; i < g; i++) l->save[i] = 1.0f;
    }
}

static void dropout_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                             const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    int64_t g, gs;
    dropout_groups(l, n, &g, &gs);
    if (din[0]) sm_dropout_backward(din[0], dout, l->save, g, gs);
}

static const struct sm_layer_ops dropout_ops = {
    "dropout", "p", 1, 1, dropout_build, dropout_plan, none_init, dropout_forward, dropout_backward, false, false};
static const struct sm_layer_ops dropout2d_ops = {
    "dropout2d", "p", 1, 1, dropout_build, dropout_plan, none_init, dropout_forward,
    dropout_backward, false, false};

/* ------------------------------------------------------------------ pooling */
static sm_status pool_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)ins;
    sm_status st = need_spatial(l, err);
    if (st) return st;
    if (l->stride == 0) l->stride = l->k;     /* PyTorch: stride defaults to kernel size */
    if (l->k <= 0 || l->stride <= 0 || l->pad < 0 || 2 * l->pad > l->k)
        return sm_fail(err, SM_ERR_ARG, "line %d: %s needs k > 0, s > 0, 0 <= p <= k/2",
                       l->line, l->ops->name);
    int64_t oh = (l->in.h + 2 * l->pad - l->k) / l->stride + 1;
    int64_t ow = (l->in.w + 2 * l->pad - l->k) / l->stride + 1;
    if (l->in.h + 2 * l->pad < l->k || l->in.w + 2 * l->pad < l->k || oh <= 0 || ow <= 0)
        return sm_fail(err, SM_ERR_SHAPE, "line %d: %s k=%lld does not fit a %lldx%lld input",
                       l->line, l->ops->name, (long long)l->k, (long long)l->in.h,
                       (long long)l->in.w);
    l->out = (sm_ashape){l->in.c, oh, ow, false};
    return SM_OK;
}

static void maxpool_plan(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch)
{
    (void)nthreads;
    /* argmax indices, int32 stored in the float arena (same size) */
    *save = (size_t)(n * sm_ashape_numel(l->out));
    *scratch = 0;
}

static void maxpool_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                            int64_t n)
{
    int32_t *argmax = c->training ? (int32_t *)(void *)l->save : NULL;   /* only a backward needs it */
    sm_maxpool2d_forward(out, argmax, in[0], l->in.c * n, l->in.h, l->in.w, l->k, l->stride,
                         l->pad, l->out.h, l->out.w);
}

static void maxpool_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                             const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    if (din[0])
        sm_maxpool2d_backward(din[0], dout, (const int32_t *)(const void *)l->save, l->in.c * n,
                              l->in.h, l->in.w, l->out.h, l->out.w);
}

static const struct sm_layer_ops maxpool_ops = {
    "maxpool", "k s p", 1, 1, pool_build, maxpool_plan, none_init, maxpool_forward,
    maxpool_backward, false, false};

static void avgpool_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                            int64_t n)
{
    (void)c;
    sm_avgpool2d_forward(out, in[0], l->in.c * n, l->in.h, l->in.w, l->k, l->stride, l->pad,
                         l->out.h, l->out.w);
}

static void avgpool_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                             const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    if (din[0])
        sm_avgpool2d_backward(din[0], dout, l->in.c * n, l->in.h, l->in.w, l->k, l->stride,
                              l->pad, l->out.h, l->out.w);
}

static const struct sm_layer_ops avgpool_ops = {
    "avgpool", "k s p", 1, 1, pool_build, none_plan, none_init, avgpool_forward, avgpool_backward, false, false};

/* adaptive_avgpool OH [OW]: torch.nn.AdaptiveAvgPool2d((OH, OW)); OW
 * defaults to OH */
static sm_status adaptive_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)ins;
    sm_status st = need_spatial(l, err);
    if (st) return st;
    if (l->ow == 0) l->ow = l->oh;
    if (l->oh < 1 || l->ow < 1)
        return sm_fail(err, SM_ERR_ARG, "line %d: adaptive_avgpool needs sizes >= 1", l->line);
    l->out = (sm_ashape){l->in.c, l->oh, l->ow, false};
    return SM_OK;
}

static void adaptive_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                             int64_t n)
{
    (void)c;
    sm_adaptive_avgpool2d_forward(out, in[0], l->in.c * n, l->in.h, l->in.w, l->oh, l->ow);
}

static void adaptive_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                              const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    if (din[0])
        sm_adaptive_avgpool2d_backward(din[0], dout, l->in.c * n, l->in.h, l->in.w, l->oh, l->ow);
}

static const struct sm_layer_ops adaptive_ops = {
    "adaptive_avgpool", "", 1, 1, adaptive_build, none_plan, none_init, adaptive_forward,
    adaptive_backward, false, false};

/* ------------------------------------------------------------------ gap, flatten */
static sm_status gap_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)ins;
    sm_status st = need_spatial(l, err);
    if (st) return st;
    l->out = (sm_ashape){l->in.c, 1, 1, true};
    return SM_OK;
}

static void gap_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out, int64_t n)
{
    (void)c;
    sm_gap_forward(out, in[0], l->in.c, n, l->in.h * l->in.w);
}

static void gap_backward(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                         const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    if (din[0]) sm_gap_backward(din[0], dout, l->in.c, n, l->in.h * l->in.w);
}

static const struct sm_layer_ops gap_ops = {
    "gap", "", 1, 1, gap_build, none_plan, none_init, gap_forward, gap_backward, false, false};

static sm_status flatten_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)err; (void)ins;
    l->out = (sm_ashape){sm_ashape_numel(l->in), 1, 1, true};
    return SM_OK;
}

static void flatten_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                            int64_t n)
{
    (void)c;
    if (l->in.dense) memcpy(out, in[0], (size_t)(n * l->in.c) * sizeof *out);
    else sm_flatten_forward(out, in[0], l->in.c, n, l->in.h * l->in.w);
}

static void flatten_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                             const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    if (!din[0]) return;
    if (l->in.dense)
        for (int64_t i = 0; i < n * l->in.c; i++) din[0][i] += dout[i];
    else
        sm_flatten_backward(din[0], dout, l->in.c, n, l->in.h * l->in.w);
}

static const struct sm_layer_ops flatten_ops = {
    "flatten", "", 1, 1, flatten_build, none_plan, none_init, flatten_forward, flatten_backward, false, false};

/* ------------------------------------------------------------------ linear */
static sm_status linear_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)ins;
    sm_status st = need_dense(l, err);
    if (st) return st;
    if (l->units <= 0)
        return sm_fail(err, SM_ERR_ARG, "line %d: linear needs a positive number of units", l->line);
    l->out = (sm_ashape){l->units, 1, 1, true};
    l->w = add(m, l, "weight", true, 2, l->units, l->in.c, 0, 0);
    if (l->bias) l->b = add(m, l, "bias", true, 1, l->units, 0, 0, 0);
    return check_ids(l, err);
}

static void linear_init(sm_layer *l, const sm_lctx *c, uint64_t seed)
{
    init_weights(l->init, c->w, l->units * l->in.c, c->b, l->units, l->in.c, l->units, seed);
}

static void linear_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                           int64_t n)
{
    sm_linear_forward(out, in[0], c->w, c->b, n, l->in.c, l->units);
}

static void linear_backward(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                            const float *dout, float *const *din, int64_t n)
{
    (void)out;
    sm_linear_backward(din[0], c->dw, c->db, dout, in[0], c->w, n, l->in.c, l->units);
}

static const struct sm_layer_ops linear_ops = {
    "linear", "bias init", 1, 1, linear_build, none_plan, linear_init, linear_forward,
    linear_backward, false, false};

/* ------------------------------------------------------------------ l2norm */
static sm_status l2norm_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m; (void)ins;
    sm_status st = need_dense(l, err);
    if (st) return st;
    l->out = l->in;
    return SM_OK;
}

static void l2norm_plan(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch)
{
    (void)l; (void)nthreads;
    *save = (size_t)n;
    *scratch = 0;
}

static void l2norm_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                           int64_t n)
{
    (void)c;
    sm_l2norm_forward(out, l->save, in[0], n, l->in.c, 1e-12f);
}

static void l2norm_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                            const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in;
    if (din[0]) sm_l2norm_backward(din[0], dout, out, l->save, n, l->in.c, 1e-12f);
}

static const struct sm_layer_ops l2norm_ops = {
    "l2norm", "", 1, 1, l2norm_build, l2norm_plan, none_init, l2norm_forward, l2norm_backward, false, false};

/* ------------------------------------------------------------------ add, concat
 * add: the elementwise sum of inputs of one shape (a residual connection).
 * concat: inputs joined along channels (spatial inputs of one H x W) or
 * features (dense inputs), torch.cat(dim=1). In (C,N,H,W) a channel block
 * of all images is contiguous, so a spatial concat is one copy per input. */
static sm_status add_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m;
    for (int k = 1; k < l->nin; k++)
        if (ins[k].c != ins[0].c || ins[k].dense != ins[0].dense ||
            (!ins[0].dense && (ins[k].h != ins[0].h || ins[k].w != ins[0].w)))
            return sm_fail(err, SM_ERR_SHAPE,
                           "line %d: add needs inputs of one shape; input %d is %lldx%lldx%lld, "
                           "input 1 %lldx%lldx%lld", l->line, k + 1, (long long)ins[k].c,
                           (long long)ins[k].h, (long long)ins[k].w, (long long)ins[0].c,
                           (long long)ins[0].h, (long long)ins[0].w);
    l->out = ins[0];
    return SM_OK;
}

static void add_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out, int64_t n)
{
    (void)c;
    int64_t len = n * sm_ashape_numel(l->out);
    sm_add_forward(out, in[0], in[1], len);
    for (int k = 2; k < l->nin; k++) sm_add_into(out, in[k], len);
}

static void add_backward(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                         const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    int64_t len = n * sm_ashape_numel(l->out);
    for (int k = 0; k < l->nin; k++)
        if (din[k]) sm_add_into(din[k], dout, len);
}

static const struct sm_layer_ops add_ops = {
    "add", "", 2, 64, add_build, none_plan, none_init, add_forward, add_backward, false, true};

static sm_status concat_build(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err)
{
    (void)m;
    int64_t c = 0;
    for (int k = 0; k < l->nin; k++) {
        if (ins[k].dense != ins[0].dense ||
            (!ins[0].dense && (ins[k].h != ins[0].h || ins[k].w != ins[0].w)))
            return sm_fail(err, SM_ERR_SHAPE,
                           "line %d: concat needs inputs of one height and width (or all flat); "
                           "input %d is %lldx%lldx%lld, input 1 %lldx%lldx%lld", l->line, k + 1,
                           (long long)ins[k].c, (long long)ins[k].h, (long long)ins[k].w,
                           (long long)ins[0].c, (long long)ins[0].h, (long long)ins[0].w);
        c += ins[k].c;
    }
    l->parts = malloc((size_t)l->nin * sizeof *l->parts);
    if (!l->parts) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int k = 0; k < l->nin; k++) l->parts[k] = ins[k].c;
    l->out = (sm_ashape){c, ins[0].h, ins[0].w, ins[0].dense};
    return SM_OK;
}

static void concat_forward(sm_layer *l, const sm_lctx *c, const float *const *in, float *out,
                           int64_t n)
{
    (void)c;
    int64_t hw = l->out.dense ? 1 : l->out.h * l->out.w, off = 0;
    for (int k = 0; k < l->nin; k++) {
        int64_t ck = l->parts[k];
        if (!l->out.dense) {
            memcpy(out + off * n * hw, in[k], (size_t)(ck * n * hw) * sizeof *out);
        } else {
            for (int64_t i = 0; i < n; i++)
                memcpy(out + i * l->out.c + off, in[k] + i * ck, (size_t)ck * sizeof *out);
        }
        off += ck;
    }
}

static void concat_backward(sm_layer *l, const sm_lctx *c, const float *const *in,
                            const float *out, const float *dout, float *const *din, int64_t n)
{
    (void)c; (void)in; (void)out;
    int64_t hw = l->out.dense ? 1 : l->out.h * l->out.w, off = 0;
    for (int k = 0; k < l->nin; k++) {
        int64_t ck = l->parts[k];
        if (din[k]) {
            if (!l->out.dense) {
                const float *g = dout + off * n * hw;
                for (int64_t i = 0; i < ck * n * hw; i++) din[k][i] += g[i];
            } else {
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < ck; j++) din[k][i * ck + j] += dout[i * l->out.c + off + j];
            }
        }
        off += ck;
    }
}

static const struct sm_layer_ops concat_ops = {
    "concat", "", 2, 64, concat_build, none_plan, none_init, concat_forward, concat_backward, false, false};

/* ------------------------------------------------------------------ inference
 * In eval mode a batch norm is a fixed per-channel affine map, so after a conv
 * it folds into the conv's output pass (sm_conv2d_forward_bn), and a ReLU or
 * ReLU6 after it joins the same pass: one sweep over the output instead of
 * three. The fold is recomputed on every call from the current parameters
 * and running statistics (2*C floats, nothing cached), so a caller may change
 * them through sm_model_params / sm_model_tensor at any time. center and
 * scale live in the batch norm's save area. */
int sm_layers_fusable(const sm_model *m, int i)
{
    if (i + 1 >= m->nlayers) return 0;
    const sm_layer *cv = &m->layers[i], *bn = &m->layers[i + 1];
    if (cv->ops != &conv_ops || bn->ops != &bn_ops || bn->inp[0] != i || cv->nreaders != 1)
        return 0;
    if (i + 2 >= m->nlayers || bn->nreaders != 1) return 2;
    const sm_layer *a = &m->layers[i + 2];
    return a->inp[0] == i + 1 && (a->ops == &relu_ops || a->ops == &relu6_ops) ? 3 : 2;
}

void sm_layers_forward_fused(sm_model *m, int i, int count, const float *in, float *out, int64_t n)
{
    sm_layer *cv = &m->layers[i], *bn = &m->layers[i + 1];
    int64_t c = bn->in.c;
    float *center = bn->save, *scale = bn->save + c;
    sm_bn_fold(center, scale, cv->b >= 0 ? sm_model_param(m, cv->b) : NULL, sm_model_param(m, bn->w),
               sm_model_param(m, bn->rmean), sm_model_param(m, bn->rvar), c, bn->eps);
    sm_conv_shape s;
    conv_shape(cv, n, &s);
    sm_act act = count < 3 ? SM_ACT_NONE : m->layers[i + 2].ops == &relu_ops ? SM_ACT_RELU : SM_ACT_RELU6;
    sm_conv2d_forward_bn(out, in, sm_model_param(m, cv->w), center, scale, sm_model_param(m, bn->b),
                         act, &s, m->scratch);
}

/* What an eval-mode forward of l keeps in l->save: a batch norm its fold
 * (center, scale), l2norm its row norms; nothing else (max pooling keeps its
 * argmax only in training). */
size_t sm_layer_eval_save(const sm_layer *l, int64_t n)
{
    if (l->ops == &bn_ops) return 2 * (size_t)l->in.c;
    if (l->ops == &l2norm_ops) return (size_t)n;
    return 0;
}

bool sm_layer_is_bn(const sm_layer *l) { return l->ops == &bn_ops; }

/* ------------------------------------------------------------------ table */
static const struct sm_layer_ops *const all_ops[] = {
    &conv_ops, &bn_ops, &relu_ops, &relu6_ops, &hardswish_ops, &hardsigmoid_ops, &sigmoid_ops,
    &prelu_ops, &dropout_ops, &dropout2d_ops, &maxpool_ops, &avgpool_ops, &adaptive_ops, &gap_ops,
    &flatten_ops, &linear_ops, &l2norm_ops, &add_ops, &concat_ops, NULL};

const struct sm_layer_ops *sm_layer_ops_find(const char *name)
{
    for (int i = 0; all_ops[i]; i++)
        if (strcmp(all_ops[i]->name, name) == 0) return all_ops[i];
    return NULL;
}

const char *sm_layer_kinds(void)
{
    return "conv bn relu relu6 hardswish hardsigmoid sigmoid prelu dropout dropout2d maxpool "
           "avgpool adaptive_avgpool gap flatten linear l2norm add concat";
}
