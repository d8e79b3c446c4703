/* layers.c - the layer kinds of a model: one const vtable each over the kernels.
 *
 * Each kind checks its input shape and declares its tensors in build(), says
 * how much arena it needs in plan(), and maps forward/backward onto kernels.h.
 * Names of tensors follow PyTorch's nn.Sequential state_dict ("layers.3.weight"),
 * so a checkpoint maps 1:1 onto the same network written in PyTorch. */
#include "layers.h"

#include <math.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"

static int add(sm_model *m, sm_layer *l, const char *what, bool trainable, int ndim,
               int64_t a, int64_t b, int64_t c, int64_t d)
{
    char name[64];
    snprintf(name, sizeof name, "layers.%d.%s", l->index, what);
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
    if (l->w < -1 || l->b < -1 || l->rmean < -1 || l->rvar < -1)
        return sm_fail(err, SM_ERR_ARG, "line %d: too many tensors in the model", l->line);
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

/* ------------------------------------------------------------------ conv */
static void conv_shape(const sm_layer *l, int64_t n, sm_conv_shape *s)
{
    *s = (sm_conv_shape){.n = n, .cin = l->in.c, .h = l->in.h, .w = l->in.w, .cout = l->units,
                         .kh = l->k, .kw = l->k, .stride = l->stride, .pad = l->pad};
    sm_conv_shape_init(s);
}

static sm_status conv_build(sm_layer *l, sm_model *m, sm_err *err)
{
    sm_status st = need_spatial(l, err);
    if (st) return st;
    if (l->units <= 0 || l->k <= 0 || l->stride <= 0 || l->pad < 0)
        return sm_fail(err, SM_ERR_ARG, "line %d: conv needs channels > 0, k > 0, s > 0, p >= 0",
                       l->line);
    sm_conv_shape s;
    conv_shape(l, 1, &s);
    if (sm_conv_shape_init(&s) != 0)
        return sm_fail(err, SM_ERR_SHAPE, "line %d: conv k=%lld does not fit a %lldx%lld input",
                       l->line, (long long)l->k, (long long)l->in.h, (long long)l->in.w);
    l->out = (sm_ashape){l->units, s.oh, s.ow, false};
    l->w = add(m, l, "weight", true, 4, l->units, l->in.c, l->k, l->k);
    if (l->bias) l->b = add(m, l, "bias", true, 1, l->units, 0, 0, 0);
    return check_ids(l, err);
}

static void conv_plan(sm_layer *l, int64_t n, size_t *save, size_t *scratch)
{
    sm_conv_shape s;
    conv_shape(l, n, &s);
    *save = 0;
    *scratch = sm_conv2d_scratch_floats(&s, sm_threads_get());
}

static void conv_init(sm_layer *l, sm_model *m, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    float bound = 1.0f / sqrtf((float)(l->in.c * l->k * l->k));
    init_uniform(sm_model_param(m, l->w), m->tensors[l->w].numel, bound, &r);
    if (l->b >= 0) init_uniform(sm_model_param(m, l->b), l->units, bound, &r);
}

static void conv_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    sm_conv_shape s;
    conv_shape(l, n, &s);
    sm_conv2d_forward(out, in, sm_model_param(m, l->w), l->b >= 0 ? sm_model_param(m, l->b) : NULL,
                      &s, m->scratch);
}

static void conv_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                          const float *dout, float *din, int64_t n)
{
    (void)out;
    sm_conv_shape s;
    conv_shape(l, n, &s);
    sm_conv2d_backward(din, sm_model_grad(m, l->w), l->b >= 0 ? sm_model_grad(m, l->b) : NULL,
                       dout, in, sm_model_param(m, l->w), &s, m->scratch);
}

static const struct sm_layer_ops conv_ops = {
    "conv", "k s p bias", conv_build, conv_plan, conv_init, conv_forward, conv_backward};

/* ------------------------------------------------------------------ batch norm
 * "bn" works on either layout: (C,N,H,W) -> outer 1, inner N*H*W (BatchNorm2d);
 * (N,F) -> outer N, C = F, inner 1 (BatchNorm1d). */
static void bn_dims(const sm_layer *l, int64_t n, int64_t *outer, int64_t *c, int64_t *inner)
{
    *c = l->in.c;
    if (l->in.dense) { *outer = n; *inner = 1; }
    else { *outer = 1; *inner = n * l->in.h * l->in.w; }
}

static sm_status bn_build(sm_layer *l, sm_model *m, sm_err *err)
{
    if (!(l->eps > 0) || !(l->momentum >= 0 && l->momentum <= 1))
        return sm_fail(err, SM_ERR_ARG, "line %d: bn needs eps > 0 and 0 <= momentum <= 1", l->line);
    l->out = l->in;
    l->w = add(m, l, "weight", true, 1, l->in.c, 0, 0, 0);
    l->b = add(m, l, "bias", true, 1, l->in.c, 0, 0, 0);
    l->rmean = add(m, l, "running_mean", false, 1, l->in.c, 0, 0, 0);
    l->rvar = add(m, l, "running_var", false, 1, l->in.c, 0, 0, 0);
    return check_ids(l, err);
}

static void bn_plan(sm_layer *l, int64_t n, size_t *save, size_t *scratch)
{
    (void)n;
    *save = 2 * (size_t)l->in.c;   /* batch mean, invstd */
    *scratch = 0;
}

static void bn_init(sm_layer *l, sm_model *m, uint64_t seed)
{
    (void)seed;
    for (int64_t i = 0; i < l->in.c; i++) {
        sm_model_param(m, l->w)[i] = 1.0f;
        sm_model_param(m, l->b)[i] = 0.0f;
        sm_model_param(m, l->rmean)[i] = 0.0f;
        sm_model_param(m, l->rvar)[i] = 1.0f;
    }
    l->nbt = 0;
}

static void bn_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    int64_t outer, c, inner;
    bn_dims(l, n, &outer, &c, &inner);
    if (m->training) {
        sm_bn_forward_train(out, l->save, l->save + c, sm_model_param(m, l->rmean),
                            sm_model_param(m, l->rvar), in, sm_model_param(m, l->w),
                            sm_model_param(m, l->b), outer, c, inner, l->momentum, l->eps);
        l->nbt++;
    } else {
        sm_bn_forward_eval(out, in, sm_model_param(m, l->w), sm_model_param(m, l->b),
                           sm_model_param(m, l->rmean), sm_model_param(m, l->rvar), outer, c,
                           inner, l->eps);
    }
}

static void bn_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                        const float *dout, float *din, int64_t n)
{
    (void)out;
    int64_t outer, c, inner;
    bn_dims(l, n, &outer, &c, &inner);
    sm_bn_backward(din, sm_model_grad(m, l->w), sm_model_grad(m, l->b), dout, in, l->save,
                   l->save + c, sm_model_param(m, l->w), outer, c, inner);
}

static const struct sm_layer_ops bn_ops = {
    "bn", "eps momentum", bn_build, bn_plan, bn_init, bn_forward, bn_backward};

/* ------------------------------------------------------------------ relu, prelu */
static sm_status same_build(sm_layer *l, sm_model *m, sm_err *err)
{
    (void)m; (void)err;
    l->out = l->in;
    return SM_OK;
}

static void none_plan(sm_layer *l, int64_t n, size_t *save, size_t *scratch)
{
    (void)l; (void)n;
    *save = 0;
    *scratch = 0;
}

static void none_init(sm_layer *l, sm_model *m, uint64_t seed) { (void)l; (void)m; (void)seed; }

static void relu_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    (void)m;
    sm_relu_forward(out, in, n * sm_ashape_numel(l->in));
}

static void relu_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                          const float *dout, float *din, int64_t n)
{
    (void)m; (void)in;
    if (din) sm_relu_backward(din, dout, out, n * sm_ashape_numel(l->in));
}

static const struct sm_layer_ops relu_ops = {
    "relu", "", same_build, none_plan, none_init, relu_forward, relu_backward};

static sm_status prelu_build(sm_layer *l, sm_model *m, sm_err *err)
{
    l->out = l->in;
    l->w = add(m, l, "weight", true, 1, l->in.c, 0, 0, 0);
    return check_ids(l, err);
}

static void prelu_init(sm_layer *l, sm_model *m, uint64_t seed)
{
    (void)seed;
    for (int64_t i = 0; i < l->in.c; i++) sm_model_param(m, l->w)[i] = 0.25f;   /* PyTorch's init */
}

static void prelu_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    int64_t outer, c, inner;
    bn_dims(l, n, &outer, &c, &inner);
    sm_prelu_forward(out, in, sm_model_param(m, l->w), outer, c, inner);
}

static void prelu_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                           const float *dout, float *din, int64_t n)
{
    (void)out;
    int64_t outer, c, inner;
    bn_dims(l, n, &outer, &c, &inner);
    sm_prelu_backward(din, sm_model_grad(m, l->w), dout, in, sm_model_param(m, l->w), outer, c,
                      inner);
}

static const struct sm_layer_ops prelu_ops = {
    "prelu", "", prelu_build, none_plan, prelu_init, prelu_forward, prelu_backward};

/* ------------------------------------------------------------------ dropout
 * "dropout" drops single elements, "dropout2d" whole channels of one sample.
 * Masks come from a counter-based hash of (model step seed, layer, group), so
 * they do not depend on the thread count. In eval mode both copy. */
static const struct sm_layer_ops dropout2d_ops;

static bool is_2d(const sm_layer *l) { return l->ops == &dropout2d_ops; }

static sm_status dropout_build(sm_layer *l, sm_model *m, sm_err *err)
{
    (void)m;
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

static void dropout_plan(sm_layer *l, int64_t n, size_t *save, size_t *scratch)
{
    int64_t g, gs;
    dropout_groups(l, n, &g, &gs);
    *save = (size_t)g;
    *scratch = 0;
}

static void dropout_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    int64_t g, gs;
    dropout_groups(l, n, &g, &gs);
    if (m->training && l->p > 0.0f) {
        sm_dropout_forward(out, l->save, in, g, gs, l->p, sm_hash64(m->step_seed, (uint64_t)l->index));
    } else {
        memcpy(out, in, (size_t)(g * gs) * sizeof *out);
        if (m->training)
            for (int64_t i = 0; i < g; i++) l->save[i] = 1.0f;
    }
}

static void dropout_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                             const float *dout, float *din, int64_t n)
{
    (void)m; (void)in; (void)out;
    int64_t g, gs;
    dropout_groups(l, n, &g, &gs);
    if (din) sm_dropout_backward(din, dout, l->save, g, gs);
}

static const struct sm_layer_ops dropout_ops = {
    "dropout", "p", dropout_build, dropout_plan, none_init, dropout_forward, dropout_backward};
static const struct sm_layer_ops dropout2d_ops = {
    "dropout2d", "p", dropout_build, dropout_plan, none_init, dropout_forward, dropout_backward};

/* ------------------------------------------------------------------ pooling */
static sm_status pool_build(sm_layer *l, sm_model *m, sm_err *err)
{
    (void)m;
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

static void maxpool_plan(sm_layer *l, int64_t n, size_t *save, size_t *scratch)
{
    /* argmax indices, int32 stored in the float arena (same size) */
    *save = (size_t)(n * sm_ashape_numel(l->out));
    *scratch = 0;
}

static void maxpool_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    int32_t *argmax = m->training ? (int32_t *)(void *)l->save : NULL;   /* only a backward needs it */
    sm_maxpool2d_forward(out, argmax, in, l->in.c * n, l->in.h, l->in.w, l->k, l->stride, l->pad,
                         l->out.h, l->out.w);
}

static void maxpool_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                             const float *dout, float *din, int64_t n)
{
    (void)m; (void)in; (void)out;
    if (din)
        sm_maxpool2d_backward(din, dout, (const int32_t *)(const void *)l->save, l->in.c * n,
                              l->in.h, l->in.w, l->out.h, l->out.w);
}

static const struct sm_layer_ops maxpool_ops = {
    "maxpool", "k s p", pool_build, maxpool_plan, none_init, maxpool_forward, maxpool_backward};

static void avgpool_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    (void)m;
    sm_avgpool2d_forward(out, in, l->in.c * n, l->in.h, l->in.w, l->k, l->stride, l->pad,
                         l->out.h, l->out.w);
}

static void avgpool_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                             const float *dout, float *din, int64_t n)
{
    (void)m; (void)in; (void)out;
    if (din)
        sm_avgpool2d_backward(din, dout, l->in.c * n, l->in.h, l->in.w, l->k, l->stride, l->pad,
                              l->out.h, l->out.w);
}

static const struct sm_layer_ops avgpool_ops = {
    "avgpool", "k s p", pool_build, none_plan, none_init, avgpool_forward, avgpool_backward};

/* ------------------------------------------------------------------ gap, flatten */
static sm_status gap_build(sm_layer *l, sm_model *m, sm_err *err)
{
    (void)m;
    sm_status st = need_spatial(l, err);
    if (st) return st;
    l->out = (sm_ashape){l->in.c, 1, 1, true};
    return SM_OK;
}

static void gap_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    (void)m;
    sm_gap_forward(out, in, l->in.c, n, l->in.h * l->in.w);
}

static void gap_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                         const float *dout, float *din, int64_t n)
{
    (void)m; (void)in; (void)out;
    if (din) sm_gap_backward(din, dout, l->in.c, n, l->in.h * l->in.w);
}

static const struct sm_layer_ops gap_ops = {
    "gap", "", gap_build, none_plan, none_init, gap_forward, gap_backward};

static sm_status flatten_build(sm_layer *l, sm_model *m, sm_err *err)
{
    (void)m; (void)err;
    l->out = (sm_ashape){sm_ashape_numel(l->in), 1, 1, true};
    return SM_OK;
}

static void flatten_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    (void)m;
    if (l->in.dense) memcpy(out, in, (size_t)(n * l->in.c) * sizeof *out);
    else sm_flatten_forward(out, in, l->in.c, n, l->in.h * l->in.w);
}

static void flatten_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                             const float *dout, float *din, int64_t n)
{
    (void)m; (void)in; (void)out;
    if (!din) return;
    if (l->in.dense)
        for (int64_t i = 0; i < n * l->in.c; i++) din[i] += dout[i];
    else
        sm_flatten_backward(din, dout, l->in.c, n, l->in.h * l->in.w);
}

static const struct sm_layer_ops flatten_ops = {
    "flatten", "", flatten_build, none_plan, none_init, flatten_forward, flatten_backward};

/* ------------------------------------------------------------------ linear */
static sm_status linear_build(sm_layer *l, sm_model *m, sm_err *err)
{
    sm_status st = need_dense(l, err);
    if (st) return st;
    if (l->units <= 0)
        return sm_fail(err, SM_ERR_ARG, "line %d: linear needs a positive number of units", l->line);
    l->out = (sm_ashape){l->units, 1, 1, true};
    l->w = add(m, l, "weight", true, 2, l->units, l->in.c, 0, 0);
    if (l->bias) l->b = add(m, l, "bias", true, 1, l->units, 0, 0, 0);
    return check_ids(l, err);
}

static void linear_init(sm_layer *l, sm_model *m, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    float bound = 1.0f / sqrtf((float)l->in.c);
    init_uniform(sm_model_param(m, l->w), m->tensors[l->w].numel, bound, &r);
    if (l->b >= 0) init_uniform(sm_model_param(m, l->b), l->units, bound, &r);
}

static void linear_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    sm_linear_forward(out, in, sm_model_param(m, l->w), l->b >= 0 ? sm_model_param(m, l->b) : NULL,
                      n, l->in.c, l->units);
}

static void linear_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                            const float *dout, float *din, int64_t n)
{
    (void)out;
    sm_linear_backward(din, sm_model_grad(m, l->w), l->b >= 0 ? sm_model_grad(m, l->b) : NULL,
                       dout, in, sm_model_param(m, l->w), n, l->in.c, l->units);
}

static const struct sm_layer_ops linear_ops = {
    "linear", "bias", linear_build, none_plan, linear_init, linear_forward, linear_backward};

/* ------------------------------------------------------------------ l2norm */
static sm_status l2norm_build(sm_layer *l, sm_model *m, sm_err *err)
{
    (void)m;
    sm_status st = need_dense(l, err);
    if (st) return st;
    l->out = l->in;
    return SM_OK;
}

static void l2norm_plan(sm_layer *l, int64_t n, size_t *save, size_t *scratch)
{
    (void)l;
    *save = (size_t)n;
    *scratch = 0;
}

static void l2norm_forward(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n)
{
    (void)m;
    sm_l2norm_forward(out, l->save, in, n, l->in.c, 1e-12f);
}

static void l2norm_backward(sm_layer *l, sm_model *m, const float *in, const float *out,
                            const float *dout, float *din, int64_t n)
{
    (void)m; (void)in;
    if (din) sm_l2norm_backward(din, dout, out, l->save, n, l->in.c, 1e-12f);
}

static const struct sm_layer_ops l2norm_ops = {
    "l2norm", "", l2norm_build, l2norm_plan, none_init, l2norm_forward, l2norm_backward};

/* ------------------------------------------------------------------ inference
 * In eval mode a batch norm is a fixed per-channel affine map, so after a conv
 * it folds into the conv's output pass (sm_conv2d_forward_bn), and a ReLU
 * after it joins the same pass: one sweep over the output instead of three.
 * The fold is recomputed on every call from the current parameters and
 * running statistics (2*C floats, nothing cached), so a caller may change
 * them through sm_model_params / sm_model_tensor at any time. center and
 * scale live in the batch norm's save area. */
int sm_layers_fusable(const sm_model *m, int i)
{
    if (m->training || i + 1 >= m->nlayers) return 0;
    const sm_layer *cv = &m->layers[i], *bn = &m->layers[i + 1];
    if (cv->ops != &conv_ops || bn->ops != &bn_ops || !bn->save) return 0;
    return i + 2 < m->nlayers && m->layers[i + 2].ops == &relu_ops ? 3 : 2;
}

void sm_layers_forward_fused(sm_model *m, int i, bool relu, const float *in, float *out, int64_t n)
{
    sm_layer *cv = &m->layers[i], *bn = &m->layers[i + 1];
    int64_t c = bn->in.c;
    float *center = bn->save, *scale = bn->save + c;
    sm_bn_fold(center, scale, cv->b >= 0 ? sm_model_param(m, cv->b) : NULL, sm_model_param(m, bn->w),
               sm_model_param(m, bn->rmean), sm_model_param(m, bn->rvar), c, bn->eps);
    sm_conv_shape s;
    conv_shape(cv, n, &s);
    sm_conv2d_forward_bn(out, in, sm_model_param(m, cv->w), center, scale, sm_model_param(m, bn->b),
                         relu, &s, m->scratch);
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

/* ------------------------------------------------------------------ table */
static const struct sm_layer_ops *const all_ops[] = {
    &conv_ops, &bn_ops, &relu_ops, &prelu_ops, &dropout_ops, &dropout2d_ops, &maxpool_ops,
    &avgpool_ops, &gap_ops, &flatten_ops, &linear_ops, &l2norm_ops, NULL};

const struct sm_layer_ops *sm_layer_ops_find(const char *name)
{
    for (int i = 0; all_ops[i]; i++)
        if (strcmp(all_ops[i]->name, name) == 0) return all_ops[i];
    return NULL;
}

const char *sm_layer_kinds(void)
{
    return "conv bn relu prelu dropout dropout2d maxpool avgpool gap flatten linear l2norm";
}
