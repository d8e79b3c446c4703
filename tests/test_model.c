/* test_model.c - spec parsing, whole-model gradients, heads, optimizers, a tiny training run. */
#include <string.h>

#include "harness.h"
#include "head.h"
#include "model.h"
#include "rng.h"
#include "simile.h"

/* Smooth on purpose (no ReLU/max-pool kinks, which the kernel tests cover
 * element by element): finite differences of the whole model are then exact
 * up to float rounding. */
static const char *small_spec =
    "input 2 8 8\n"
    "conv 4 k=3 p=1\n"
    "bn\n"
    "avgpool k=2\n"
    "conv 6 k=3 s=2 p=1 bias=0   # 4x4 -> 2x2\n"
    "bn\n"
    "dropout2d p=0.5\n"
    "flatten\n"
    "linear 5\n"
    "bn\n";

static void test_spec_errors(void)
{
    sm_model *m = NULL;
    sm_err err = {0};
    CHECK(sm_model_new(&m, "input 1 8 8\nconv 4 k=3\nfoo\n", NULL, 0, 1, &err) == SM_ERR_ARG);
    CHECKF(strstr(err.msg, "line 3") && strstr(err.msg, "unknown layer 'foo'"), "%s", err.msg);
    CHECK(sm_model_new(&m, "input 1 8 8\nconv 4 k=3 q=2\n", NULL, 0, 1, &err) == SM_ERR_ARG);
    CHECKF(strstr(err.msg, "line 2") && strstr(err.msg, "unknown key 'q'"), "%s", err.msg);
    CHECK(sm_model_new(&m, "conv 4 k=3\n", NULL, 0, 1, &err) == SM_ERR_ARG);
    CHECKF(strstr(err.msg, "input"), "%s", err.msg);
    CHECK(sm_model_new(&m, "input 1 8 8\nlinear 4\n", NULL, 0, 1, &err) == SM_ERR_SHAPE);
    CHECKF(strstr(err.msg, "flatten"), "%s", err.msg);
    CHECK(sm_model_new(&m, "input 1 4 4\nconv 2 k=7\nflatten\n", NULL, 0, 1, &err) == SM_ERR_SHAPE);
    CHECK(sm_model_new(&m, "input 1 4 4\nconv 2 k=3\n", NULL, 0, 1, &err) == SM_ERR_SHAPE);
    CHECK(sm_model_new(&m, "input 1 4 4\ndropout p=1.5\nflatten\n", NULL, 0, 1, &err) == SM_ERR_ARG);
    CHECK(sm_model_new(&m, "input 1 4 4\nconv x k=3\n", NULL, 0, 1, &err) == SM_ERR_ARG);
    CHECK(m == NULL);
    sm_head_config hc;
    CHECK(sm_head_config_default(&hc, "arcfaec", &err) == SM_ERR_ARG);
    CHECKF(strstr(err.msg, "arcface"), "%s", err.msg);

    /* the zoo network has the reference shapes: 576 -> D */
    char buf[2048];
    CHECK(sm_zoo_spec("mnist-net", 512, buf, sizeof buf, &err) != NULL);
    CHECK(sm_head_config_default(&hc, "arcface", &err) == SM_OK);
    CHECK(sm_model_new(&m, buf, &hc, 10, 1, &err) == SM_OK);
    if (m) {
        CHECK(sm_model_dim(m) == 512);
        /* convs 16*9+16 + 16*144+16 + 32*144+32 + 32*288+32 + 64*288+64 + 64*576+64,
         * BN 2*(16+16+32+32+64+64+64) , linear 576*512+512, BN1d 2*512, head 10*512 */
        int64_t conv = 160 + 2320 + 4640 + 9248 + 18496 + 36928;
        int64_t bn = 2 * (16 + 16 + 32 + 32 + 64 + 64 + 64);
        int64_t want = conv + bn + 576 * 512 + 512 + 1024 + 5120;
        CHECKF(sm_model_nparams(m) == want, "%lld vs %lld", (long long)sm_model_nparams(m),
               (long long)want);
        sm_tensor_info ti;
        CHECK(sm_model_tensor(m, 0, &ti) == SM_OK && strcmp(ti.name, "layers.0.weight") == 0);
        int found = 0;
        for (int i = 0; i < sm_model_ntensors(m); i++) {
            sm_model_tensor(m, i, &ti);
            if (!strcmp(ti.name, "layers.24.weight") && ti.shape[0] == 512 && ti.shape[1] == 576) found++;
            if (!strcmp(ti.name, "layers.25.running_var") && ti.shape[0] == 512) found++;
            if (!strcmp(ti.name, "head.weight") && ti.shape[0] == 10 && ti.shape[1] == 512) found++;
        }
        CHECK(found == 3);
    }
    sm_model_free(m);
    CHECK(sm_zoo_spec("nope", 8, buf, sizeof buf, &err) == NULL);
    sm_model_free(NULL);
}

/* Directional finite differences of the whole model + head:
 * (L(p + h v) - L(p - h v)) / 2h  vs  g . v, for random directions v. */
static void test_model_gradients_cfg(const char *head_name, const sm_head_config *override)
{
    sm_err err = {0};
    sm_head_config hc;
    sm_head_config_default(&hc, head_name, &err);
    if (override) hc = *override;
    sm_model *m = NULL;
    if (sm_model_new(&m, small_spec, &hc, 4, 7, &err) != SM_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    int64_t n = 16, in = 2 * 8 * 8, np = sm_model_nparams(m);
    float *x = malloc(sizeof(float) * (size_t)(n * in));
    int32_t y[16] = {0, 1, 2, 3, 1, 2, 0, 3, 3, 2, 1, 0, 0, 1, 2, 3};
    sm_rng r;
    sm_rng_seed(&r, 3);
    for (int64_t i = 0; i < n * in; i++) x[i] = (float)sm_rng_normal(&r);
    double loss;
    CHECK(sm_model_train_step(m, x, y, n, 42, &loss, NULL, &err) == SM_OK);
    float *p = sm_model_params(m);
    float *g = malloc(sizeof(float) * (size_t)np), *p0 = malloc(sizeof(float) * (size_t)np);
    float *v = malloc(sizeof(float) * (size_t)np);
    memcpy(g, sm_model_grads(m), sizeof(float) * (size_t)np);
    memcpy(p0, p, sizeof(float) * (size_t)np);
    /* A direction nearly orthogonal to g has g.v near 0, where the float
     * noise of L (~1e-7 of it) dominates the difference quotient: errors are
     * measured against 2 % of |g| (the typical |g.v| for a normal v) too. */
    double gnorm = 0, worst = 0;
    for (int64_t i = 0; i < np; i++) gnorm += (double)g[i] * g[i];
    gnorm = sqrt(gnorm);
    for (int dir = 0; dir < 6; dir++) {
        double gv = 0, vv = 0;
        for (int64_t i = 0; i < np; i++) {
            v[i] = (float)sm_rng_normal(&r);
            gv += (double)g[i] * v[i];
            vv += (double)v[i] * v[i];
        }
        double h = 3e-4 / sqrt(vv / (double)np);
        double lp, lm;
        for (int64_t i = 0; i < np; i++) p[i] = p0[i] + (float)(h * v[i]);
        sm_model_train_step(m, x, y, n, 42, &lp, NULL, &err);
        for (int64_t i = 0; i < np; i++) p[i] = p0[i] - (float)(h * v[i]);
        sm_model_train_step(m, x, y, n, 42, &lm, NULL, &err);
        memcpy(p, p0, sizeof(float) * (size_t)np);
        double fd = (lp - lm) / (2 * h);
        double rel = fabs(fd - gv) / fmax(fabs(gv), fmax(0.02 * gnorm, 1e-3));
        if (rel > worst) worst = rel;
    }
    char what[64];
    snprintf(what, sizeof what, "model+%s directional FD", head_name);
    printf("%s %-40s max rel err %.3g\n", worst < 2e-2 ? "ok  " : "FAIL", what, worst);
    CHECK(worst < 2e-2);
    free(x); free(g); free(p0); free(v);
    sm_model_free(m);
}

static void test_model_gradients(const char *head_name)
{
    test_model_gradients_cfg(head_name, NULL);
}

/* Pair losses: element-wise central differences of the loss w.r.t. the
 * embeddings (a model that passes them through), in float with h = 1e-3.
 * Hinges and mining choices are kinks: an element whose FD disagrees because
 * a hinge or a choice flips inside [x-h, x+h] is detected by a second,
 * smaller step and skipped (counted). */
const float *sm_model_forward(sm_model *m, const float *x, int64_t n);

static double pair_loss_at(sm_model *m, const float *x, const int32_t *y, int64_t n)
{
    const float *e = sm_model_forward(m, x, n);
    m->head->ops->forward(m->head, m, e, y, n, NULL);
    return m->head->loss;
}

static void test_pair_gradients(const char *name, sm_miner miner)
{
    sm_err err = {0};
    sm_head_config hc;
    sm_head_config_default(&hc, name, &err);
    hc.miner = miner;
    sm_model *m = NULL;
    if (sm_model_new(&m, "input 6 1 1\nflatten\n", &hc, 3, 1, &err) != SM_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    enum { N = 12, D = 6 };
    float x[N * D], demb[N * D] = {0};
    int32_t y[N] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
    sm_rng r;
    sm_rng_seed(&r, 9);
    for (int i = 0; i < N * D; i++) x[i] = (float)sm_rng_normal(&r);
    sm_model_plan(m, N, &err);
    m->training = true;
    double l0 = pair_loss_at(m, x, y, N);
    m->head->ops->backward(m->head, m, sm_model_forward(m, x, N), y, N, demb);
    double worst = 0;
    int skipped = 0;
    for (int i = 0; i < N * D; i++) {
        float s0 = x[i];
        double fd[2];
        const double hs[2] = {1e-3, 2.5e-4};
        for (int k = 0; k < 2; k++) {
            x[i] = s0 + (float)hs[k];
            double lp = pair_loss_at(m, x, y, N);
            x[i] = s0 - (float)hs[k];
            double lm = pair_loss_at(m, x, y, N);
            x[i] = s0;
            fd[k] = (lp - lm) / (2 * hs[k]);
        }
        if (fabs(fd[0] - fd[1]) > 1e-2 * fmax(fabs(fd[0]), 1e-2)) { skipped++; continue; }
        double rel = fabs(fd[0] - demb[i]) / fmax(fabs(fd[0]), 1e-2);
        if (rel > worst) worst = rel;
    }
    char what[80];
    snprintf(what, sizeof what, "%s%s FD w.r.t. embeddings", name,
             strcmp(name, "triplet") ? "" : miner == SM_MINER_ALL ? " (all)" : miner == SM_MINER_HARD ? " (hard)" : " (semihard)");
    printf("%s %-40s max rel err %.3g (%d kinks skipped)\n", worst < 1e-2 ? "ok  " : "FAIL", what, worst, skipped);
    CHECK(worst < 1e-2);
    CHECK(skipped < N * D / 4);
    CHECKF(l0 > 0, "%s loss %g", name, l0);
    sm_model_free(m);
}

/* phi and its derivative against central differences in double. */
static void test_phi(void)
{
    const char *names[] = {"arcface", "cosface", "normface"};
    double worst = 0;
    for (int k = 0; k < 3; k++)
        for (int easy = 0; easy < 2; easy++) {
            sm_head_config c;
            sm_head_config_default(&c, names[k], NULL);
            c.easy_margin = easy;
            double th = easy ? 0.0 : cos(M_PI - c.margin);
            for (double x = -0.999; x < 0.999; x += 0.0123) {
                if (fabs(x - th) < 1e-3) continue;   /* the switch point is a kink */
                double d, dp, dm;
                sm_head_phi(&c, x, &d);
                double fp = sm_head_phi(&c, x + 1e-6, &dp), fm = sm_head_phi(&c, x - 1e-6, &dm);
                double rel = fabs((fp - fm) / 2e-6 - d) / fmax(fabs(d), 1.0);
                if (rel > worst) worst = rel;
            }
        }
    printf("%s %-40s max rel err %.3g\n", worst < 1e-6 ? "ok  " : "FAIL", "phi'(cos) vs FD (double)", worst);
    CHECK(worst < 1e-6);
    /* ArcFace values at known points: cos(θ+m); and the fallback below cos(π-m) */
    sm_head_config a;
    sm_head_config_default(&a, "arcface", NULL);
    double d;
    CHECK(fabs(sm_head_phi(&a, cos(1.0), &d) - cos(1.5)) < 1e-12);
    CHECK(fabs(sm_head_phi(&a, -0.95, &d) - (-0.95 - 0.5 * sin(0.5))) < 1e-12);
    a.easy_margin = true;
    CHECK(fabs(sm_head_phi(&a, -0.2, &d) + 0.2) < 1e-12);
}

/* A 2-D feature 1e-5 rad from its class centre: float cos θ rounds to 1, and
 * the gradient must stay bounded, not blow up through 1/sin θ; and at 1e-5 and
 * 0.3 rad the class weight's tangent gradient equals the closed form
 * dL/dθ = (p0 - 1)·s·(-sin(θ + m)) (θ moves by -dα when W0 turns by dα). */
static void test_arcface_near_centre(void)
{
    sm_err err = {0};
    sm_head_config hc;
    sm_head_config_default(&hc, "arcface", &err);
    sm_model *m = NULL;
    if (sm_model_new(&m, "input 2 1 1\nflatten\n", &hc, 2, 1, &err) != SM_OK) { CHECKF(0, "%s", err.msg); return; }
    float *w = NULL;
    sm_tensor_info ti;
    for (int i = 0; i < sm_model_ntensors(m); i++)
        if (sm_model_tensor(m, i, &ti) == SM_OK && !strcmp(ti.name, "head.weight")) w = ti.data;
    w[0] = 1; w[1] = 0;     /* class 0 along x */
    w[2] = 0; w[3] = 1;     /* class 1 along y */
    const double angles[2] = {1e-5, 0.3};
    for (int k = 0; k < 2; k++) {
        float x[2] = {(float)cos(angles[k]), (float)sin(angles[k])};
        int32_t y[1] = {0};
        double loss;
        CHECK(sm_model_train_step(m, x, y, 1, 0, &loss, NULL, &err) == SM_OK);
        float *g = sm_model_grads(m);   /* head.weight is the only tensor */
        double gmax = 0;
        for (int i = 0; i < 4; i++) gmax = fmax(gmax, fabs(g[i]));
        CHECKF(isfinite(gmax) && gmax <= hc.scale, "angle %g: |dL/dW| = %g", angles[k], gmax);
        /* closed form: L = -log softmax(s cos(θ+m), s cos(π/2 - θ))_0, θ the angle to class 0 */
        double th = angles[k], s = hc.scale, mm = hc.margin;
        double z0 = s * cos(th + mm), z1 = s * sin(th);
        double p0 = 1.0 / (1.0 + exp(z1 - z0));
        double dL_dth = (p0 - 1.0) * (-s * sin(th + mm));   /* through z0 only: W1 does not move */
        /* rotating W0 = (1, 0) towards (0, 1) by dα changes θ by -dα */
        double dW0_tangent = g[1];
        CHECKF(fabs(dW0_tangent + dL_dth) <= 1e-4 * fmax(1.0, fabs(dL_dth)),
               "angle %g: tangent grad %g, closed form %g", angles[k], dW0_tangent, -dL_dth);
    }
    sm_model_free(m);
}

/* A tiny separable problem: 4 classes of noisy prototypes must be learnt. */
static void test_tiny_training(void)
{
    sm_err err = {0};
    const char *spec = "input 1 8 8\nconv 8 k=3 p=1\nbn\nrelu\nmaxpool k=2\nflatten\nlinear 16\nbn\n";
    sm_head_config hc;
    sm_head_config_default(&hc, "arcface", &err);
    hc.scale = 16;
    sm_model *m = NULL, *m2 = NULL;
    CHECK(sm_model_new(&m, spec, &hc, 4, 11, &err) == SM_OK);
    CHECK(sm_model_new(&m2, spec, &hc, 4, 11, &err) == SM_OK);
    if (!m || !m2) return;
    sm_optim_config oc;
    sm_optim_config_default(&oc, SM_OPTIM_SGD);
    oc.lr = 0.05f;
    sm_optim *o = NULL, *o2 = NULL;
    CHECK(sm_optim_new(&o, &oc, sm_model_nparams(m), &err) == SM_OK);
    CHECK(sm_optim_new(&o2, &oc, sm_model_nparams(m2), &err) == SM_OK);
    enum { N = 32 };
    float proto[4][64], x[N * 64];
    int32_t y[N], pred[N];
    sm_rng r;
    sm_rng_seed(&r, 5);
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 64; i++) proto[c][i] = (float)sm_rng_normal(&r);
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        for (int i = 0; i < N; i++) {
            y[i] = (int32_t)sm_rng_below(&r, 4);
            for (int k = 0; k < 64; k++) x[i * 64 + k] = proto[y[i]][k] + 0.8f * (float)sm_rng_normal(&r);
        }
        double loss, loss2;
        CHECK(sm_model_train_step(m, x, y, N, (uint64_t)step, &loss, NULL, &err) == SM_OK);
        sm_optim_step(o, sm_model_params(m), sm_model_grads(m), oc.lr);
        sm_model_train_step(m2, x, y, N, (uint64_t)step, &loss2, NULL, &err);
        sm_optim_step(o2, sm_model_params(m2), sm_model_grads(m2), oc.lr);
        if (step == 0) first = loss;
        last = loss;
    }
    CHECKF(last < 0.5 * first, "loss %g -> %g", first, last);
    CHECK(memcmp(sm_model_params(m), sm_model_params(m2), sizeof(float) * (size_t)sm_model_nparams(m)) == 0);
    CHECK(sm_model_predict(m, x, N, pred, &err) == SM_OK);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += pred[i] == y[i];
    CHECKF(ok >= N - 2, "%d/%d right", ok, N);
    float emb[N * 16];
    CHECK(sm_model_embed(m, x, N, emb, &err) == SM_OK);
    double nrm = 0;
    for (int k = 0; k < 16; k++) nrm += (double)emb[k] * emb[k];
    CHECK(fabs(nrm - 1.0) < 1e-5);
    /* labels out of range are refused */
    y[3] = 9;
    double loss;
    CHECK(sm_model_train_step(m, x, y, N, 0, &loss, NULL, &err) == SM_ERR_ARG);
    sm_optim_free(o); sm_optim_free(o2);
    sm_model_free(m); sm_model_free(m2);
}

/* Inference fuses conv -> bn [-> relu] into one pass (layers.c). The fused
 * embeddings must match the layers run one by one, on a model whose batch
 * norms have non-trivial running statistics and affine parameters, with
 * every form of the pattern: conv-bn-relu, conv without bias, conv-bn with no
 * relu, a bn after a pool (not fused). Changing a running statistic through
 * the public tensor API must show in the next embedding (nothing cached). */
static void test_fused_eval(void)
{
    sm_err err = {0};
    const char *spec = "input 3 12 12\n"
                       "conv 8 k=3 p=1\nbn\nrelu\n"
                       "conv 8 k=3 p=1 bias=0\nbn\nrelu\nmaxpool k=2\n"
                       "conv 12 k=3 s=2 p=1\nbn\n"
                       "avgpool k=3\nbn\nrelu\nflatten\nlinear 10\nbn\n";
    sm_model *m = NULL;
    CHECK(sm_model_new(&m, spec, NULL, 0, 7, &err) == SM_OK);
    if (!m) return;
    sm_rng r;
    sm_rng_seed(&r, 99);
    for (int t = 0; t < sm_model_ntensors(m); t++) {
        sm_tensor_info ti;
        CHECK(sm_model_tensor(m, t, &ti) == SM_OK);
        if (!strstr(ti.name, "running") && !(ti.ndim == 1 && strstr(ti.name, "weight"))) continue;
        bool var = strstr(ti.name, "running_var") != NULL, gamma = !strstr(ti.name, "running");
        for (int64_t i = 0; i < ti.numel; i++)
            ti.data[i] = var ? 0.05f + (float)fabs(sm_rng_normal(&r)) : gamma ? 0.5f + (float)sm_rng_normal(&r)
                                                                         : (float)sm_rng_normal(&r);
    }
    for (int t = 0; t < sm_model_ntensors(m); t++) {   /* betas and biases too */
        sm_tensor_info ti;
        sm_model_tensor(m, t, &ti);
        if (ti.trainable && strstr(ti.name, "bias"))
            for (int64_t i = 0; i < ti.numel; i++) ti.data[i] = (float)sm_rng_normal(&r);
    }
    enum { N = 9, D = 10 };
    float x[N * 3 * 144], fused[N * D], plain[N * D];
    for (int i = 0; i < N * 3 * 144; i++) x[i] = (float)sm_rng_normal(&r);
    for (int round = 0; round < 2; round++) {
        m->fuse = true;
        CHECK(sm_model_embed(m, x, N, fused, &err) == SM_OK);
        m->fuse = false;
        CHECK(sm_model_embed(m, x, N, plain, &err) == SM_OK);
        th_close(round ? "fused eval after a running_var changed" : "fused eval = layer by layer",
                 fused, plain, N * D, 1e-5, 0.02);
        if (round) break;
        float before = fused[0];
        sm_tensor_info ti;   /* the first batch norm's running variance, x4 */
        for (int t = 0; t < sm_model_ntensors(m); t++)
            if (sm_model_tensor(m, t, &ti) == SM_OK && !strcmp(ti.name, "layers.1.running_var")) break;
        CHECK(!strcmp(ti.name, "layers.1.running_var"));
        for (int64_t i = 0; i < ti.numel; i++) ti.data[i] *= 4.0f;
        m->fuse = true;
        CHECK(sm_model_embed(m, x, N, fused, &err) == SM_OK);
        CHECKF(fabsf(fused[0] - before) > 1e-4f, "embedding unchanged (%g) after running_var x4", (double)before);
    }
    m->fuse = true;
    sm_model_free(m);
}

/* A model that only embeds gets the inference arena: two activation buffers
 * in turn instead of every layer's activation. Its embeddings and
 * predictions are bit-identical to those computed in a training arena of the
 * same batch (same chunks, same kernels), also for a 3-channel input (the
 * transpose buffer) and an l2norm layer (its eval save); a training step
 * then replaces it with a training arena, and inference uses that. */
static void test_inference_arena(void)
{
    sm_err err = {0};
    const char *spec = "input 3 16 16\n"
                       "conv 8 k=3 p=1\nbn\nrelu\nconv 8 k=3 p=1\nbn\nrelu\nmaxpool k=2\n"
                       "conv 16 k=3 p=1\nbn\nprelu\nmaxpool k=2 s=2\nbn\ndropout2d p=0.5\n"
                       "flatten\nlinear 12\nbn\nl2norm\n";
    sm_head_config hc;
    sm_head_config_default(&hc, "arcface", &err);
    sm_model *a = NULL, *b = NULL;
    CHECK(sm_model_new(&a, spec, &hc, 5, 3, &err) == SM_OK);
    CHECK(sm_model_new(&b, spec, &hc, 5, 3, &err) == SM_OK);
    if (!a || !b) { sm_model_free(a); sm_model_free(b); return; }
    enum { N = 21, IN = 3 * 256, D = 12 };
    static float x[N * IN];
    float ea[N * D], eb[N * D];
    int32_t pa[N], pb[N], y[N];
    sm_rng r;
    sm_rng_seed(&r, 4);
    for (int i = 0; i < N * IN; i++) x[i] = (float)sm_rng_normal(&r);
    for (int i = 0; i < N; i++) y[i] = i % 5;
    CHECK(sm_model_plan(b, N, &err) == SM_OK);   /* b: a training arena */
    size_t train_floats = b->arena_floats - b->scratch_floats;   /* the conv scratch is the same */
    CHECK(sm_model_embed(a, x, N, ea, &err) == SM_OK && a->plan_infer && a->plan_n == N);
    CHECK(sm_model_embed(b, x, N, eb, &err) == SM_OK && !b->plan_infer);
    CHECK(memcmp(ea, eb, sizeof ea) == 0);
    CHECK(sm_model_predict(a, x, N, pa, &err) == SM_OK);
    CHECK(sm_model_predict(b, x, N, pb, &err) == SM_OK);
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    CHECKF((a->arena_floats - a->scratch_floats) * 4 < train_floats,
           "activations: inference arena %zu floats, training %zu", a->arena_floats - a->scratch_floats,
           train_floats);
    /* a smaller batch reuses the arena; a training step replaces it */
    CHECK(sm_model_embed(a, x, 4, ea, &err) == SM_OK && a->plan_n == N);
    CHECK(sm_model_plan_inference(a, 0, &err) == SM_ERR_ARG);
    double la, lb;
    CHECK(sm_model_train_step(a, x, y, N, 9, &la, NULL, &err) == SM_OK && !a->plan_infer);
    CHECK(sm_model_train_step(b, x, y, N, 9, &lb, NULL, &err) == SM_OK);
    CHECK(la == lb);
    CHECK(sm_model_plan_inference(a, 2 * N, &err) == SM_OK && !a->plan_infer && a->plan_n == N);
    CHECK(sm_model_embed(a, x, N, ea, &err) == SM_OK);
    CHECK(sm_model_embed(b, x, N, eb, &err) == SM_OK);
    CHECK(memcmp(ea, eb, sizeof ea) == 0);
    sm_model_free(a);
    sm_model_free(b);
}

static void test_sched(void)
{
    sm_sched_config s = {.kind = SM_SCHED_COSINE};
    CHECK(fabsf(sm_sched_lr(&s, 0.1f, 0, 100) - 0.1f) < 1e-7f);
    CHECK(fabsf(sm_sched_lr(&s, 0.1f, 50, 100) - 0.05f) < 1e-6f);
    CHECK(sm_sched_lr(&s, 0.1f, 99, 100) < 1e-3f);
    s.warmup = 10;
    CHECK(fabsf(sm_sched_lr(&s, 0.1f, 0, 100) - 0.01f) < 1e-7f);
    CHECK(fabsf(sm_sched_lr(&s, 0.1f, 10, 100) - 0.1f) < 1e-7f);
    sm_sched_config st = {.kind = SM_SCHED_STEP, .step_size = 10, .gamma = 0.1f};
    CHECK(fabsf(sm_sched_lr(&st, 1.0f, 25, 100) - 0.01f) < 1e-7f);
}

int main(void)
{
    sm_threads_set(2);
    test_spec_errors();
    test_phi();
    test_model_gradients("arcface");
    test_model_gradients("cosface");
    test_model_gradients("softmax");
    test_model_gradients("normface");
    test_model_gradients("combined");
    test_model_gradients("sphereface");
    test_model_gradients("adacos-fixed");
    test_model_gradients("subcenter-arcface");
    test_model_gradients("l2-softmax");
    test_pair_gradients("contrastive", SM_MINER_ALL);
    test_pair_gradients("triplet", SM_MINER_ALL);
    test_pair_gradients("triplet", SM_MINER_HARD);
    test_pair_gradients("triplet", SM_MINER_SEMIHARD);
    test_pair_gradients("multi-similarity", SM_MINER_ALL);
    {   /* A-Softmax with λ held constant (γ = 0) so that repeated steps see one loss */
        sm_head_config a;
        sm_head_config_default(&a, "sphereface-asoftmax", NULL);
        a.gamma = 0.0f;
        a.lambda_base = a.lambda_min = 0.5f;
        test_model_gradients_cfg("sphereface-asoftmax", &a);
    }
    test_arcface_near_centre();
    test_tiny_training();
    test_fused_eval();
    test_inference_arena();
    test_sched();
    return th_done();
}
