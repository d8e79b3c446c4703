/* test_graph.c - the model as a graph: spec syntax and its errors, gradients
 * through residual and concatenated branches (finite differences), memory
 * planned by lifetime, plans that follow the thread count, and run/backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "harness.h"
#include "model.h"
#include "rng.h"
#include "simile.h"

static void expect_error(const char *what, const char *spec, const char *needle)
{
    sm_err err = {0};
    sm_model *m = NULL;
    sm_status st = sm_model_new(&m, spec, NULL, 0, 1, &err);
    CHECKF(st != SM_OK && strstr(err.msg, needle), "%s: status %d, message '%s' (want '%s')", what,
           (int)st, err.msg, needle);
    if (st == SM_OK) sm_model_free(m);
    else printf("ok   %-32s %s\n", what, err.msg);
}

static void test_errors(void)
{
    expect_error("unknown key", "input 1 8 8\nconv 4 k=3 q=1\ngap\n", "line 2: unknown key 'q'");
    expect_error("dangling input", "input 1 8 8\nconv 4 k=3\nadd in=nope\ngap\n",
                 "line 3: unknown input 'nope'");
    expect_error("input named later", "input 1 8 8\na: conv 4 k=3 p=1 in=b\nb: conv 4 k=3 p=1\ngap\n",
                 "line 2: unknown input 'b'");
    expect_error("duplicate name", "input 1 8 8\na: conv 4 k=3\na: relu\ngap\n",
                 "line 3: a node named 'a' exists");
    expect_error("unused node", "input 1 8 8\na: conv 4 k=3\nb: conv 4 k=3 in=input\ngap\n",
                 "line 2: the output of 'a' is never used");
    expect_error("add of two shapes", "input 1 8 8\na: conv 4 k=3\nb: conv 8 k=3 in=input\nadd in=a,b\ngap\n",
                 "line 4: add needs inputs of one shape");
    expect_error("add without inputs", "input 1 8 8\nconv 4 k=3\nadd\ngap\n", "line 3: add needs its inputs");
    expect_error("concat of two sizes", "input 1 8 8\na: conv 4 k=3\nb: conv 4 k=1 in=input\nconcat in=a,b\ngap\n",
                 "line 4: concat needs inputs of one height");
    expect_error("groups not dividing", "input 6 8 8\nconv 4 k=3 g=4\ngap\n", "line 2: conv g=4 must divide");
    expect_error("repeat without end", "input 1 8 8\nrepeat 2\nrelu\n", "line 2: repeat without 'end'");
    expect_error("end without repeat", "input 1 8 8\nrelu\nend\ngap\n", "line 3: 'end' without 'repeat'");
    expect_error("bad name", "input 1 8 8\na/b: relu\ngap\n", "line 2: bad node name 'a/b'");
    expect_error("bad init", "input 1 8 8\nconv 4 k=3 init=zeros\ngap\n", "line 2: init must be");
    expect_error("unflat output", "input 1 8 8\nconv 4 k=3\n", "must end in a flat embedding");
}

/* A graph with every new construct: a node read three times, a residual
 * add, a channel concat, a grouped and a depthwise conv, ReLU6, Hardswish,
 * Sigmoid, Hardsigmoid, adaptive pooling, a dense concat. */
static const char graph_spec[] =
    "input 3 9 9\n"
    "stem: conv 8 k=3 p=1\n"
    "stem_bn: bn\n"
    "a: relu6\n"
    "b1: conv 8 k=3 p=1 g=2 in=a\n"
    "b1_bn: bn\n"
    "b2: conv 8 k=3 p=1 g=8 in=b1_bn\n"
    "res: add in=a\n"                        /* b2 + a */
    "c1: conv 4 k=1 in=a\n"
    "hs: hardswish\n"
    "cat: concat in=res,hs\n"                /* 12 channels */
    "sg: sigmoid\n"
    "pool: adaptive_avgpool 2 3\n"
    "f1: flatten\n"
    "g1: gap in=cat\n"
    "hsg: hardsigmoid\n"
    "dense: concat in=f1,hsg\n"              /* 72 + 12 features */
    "lin: linear 6\n";

static double loss_of(sm_model *m, const float *x, const float *r, int64_t n, sm_err *err)
{
    const float *out;
    if (sm_model_run(m, x, n, &out, err) != SM_OK) return NAN;
    double s = 0;
    for (int64_t i = 0; i < n * sm_model_dim(m); i++) s += (double)out[i] * r[i];
    return s;
}

/* bn_eval: every batch norm in eval mode in training (the frozen backward). */
static void test_gradients(bool bn_eval)
{
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_new(&m, graph_spec, NULL, 0, 3, &err) != SM_OK) { CHECKF(0, "%s", err.msg); return; }
    sm_model_set_bn_eval(m, bn_eval);
    if (bn_eval)   /* running statistics away from 0 and 1 */
        for (int t = 0; t < sm_model_ntensors(m); t++) {
            sm_tensor_info ti;
            sm_model_tensor(m, t, &ti);
            for (int64_t i = 0; !ti.trainable && i < ti.numel; i++)
                ti.data[i] = strstr(ti.name, "running_var") ? 0.5f + 0.1f * (float)(i % 7)
                                                            : 0.05f * (float)(i % 5) - 0.1f;
        }
    enum { N = 3 };
    int64_t in = 3 * 9 * 9, d = sm_model_dim(m), np = sm_model_nparams(m);
    CHECK(d == 6);
    float *x = malloc(sizeof(float) * N * in), *r = malloc(sizeof(float) * N * d);
    float *g = malloc(sizeof(float) * np), *v = malloc(sizeof(float) * np);
    sm_rng rng;
    sm_rng_seed(&rng, 5);
    for (int64_t i = 0; i < N * in; i++) x[i] = (float)sm_rng_normal(&rng);
    for (int64_t i = 0; i < N * d; i++) r[i] = (float)sm_rng_normal(&rng);
    sm_model_set_training(m, true);
    const float *out;
    CHECK(sm_model_run(m, x, N, &out, &err) == SM_OK);
    CHECK(sm_model_backward(m, r, &err) == SM_OK);
    CHECK(sm_model_backward(m, r, &err) == SM_ERR_ARG && strstr(err.msg, "each serves one backward"));
    memcpy(g, sm_model_grads(m), sizeof(float) * np);
    /* per tensor: a random direction, central differences in double loss */
    float *p = sm_model_params(m);
    double worst = 0;
    int tensors = 0;
    for (int t = 0; t < sm_model_ntensors(m); t++) {
        sm_tensor_info ti;
        sm_model_tensor(m, t, &ti);
        if (!ti.trainable) continue;
        int64_t off = ti.data - p;
        double gv = 0, gn = 0;
        for (int64_t i = 0; i < ti.numel; i++) {
            v[i] = (float)sm_rng_normal(&rng);
            gv += (double)g[off + i] * v[i];
            gn += (double)g[off + i] * g[off + i];
        }
        const double h = 1e-3;
        for (int64_t i = 0; i < ti.numel; i++) p[off + i] += (float)h * v[i];
        double lp = loss_of(m, x, r, N, &err);
        for (int64_t i = 0; i < ti.numel; i++) p[off + i] -= 2 * (float)h * v[i];
        double lm = loss_of(m, x, r, N, &err);
        for (int64_t i = 0; i < ti.numel; i++) p[off + i] += (float)h * v[i];
        double fd = (lp - lm) / (2 * h);
        /* floor: float32 noise of the loss over 2h (a conv bias before a
         * batch norm has an exact gradient of 0) */
        double scale = fmax(fmax(fabs(gv), 0.02 * sqrt(gn * (double)ti.numel)), 5e-3);
        double e = fabs(fd - gv) / scale;
        if (e > worst) worst = e;
        CHECKF(e < 2e-2, "%s: directional FD %g vs backward %g", ti.name, fd, gv);
        tensors++;
    }
    printf("%s graph directional FD over %d tensors%s max rel err %.3g\n", worst < 2e-2 ? "ok  " : "FAIL",
           tensors, bn_eval ? " (bn eval)" : "          ", worst);
    /* the input gradient path: FD w.r.t. x against a model that starts with an identity */
    free(x); free(r); free(g); free(v);
    sm_model_free(m);
}

/* Gradients w.r.t. a node read by several later nodes accumulate: the
 * same net written with the input duplicated by concat equals the sum. */
static void test_accumulation(void)
{
    sm_err err = {0};
    sm_model *a = NULL, *b = NULL;
    /* y = W(x) + W'(x): two linear readers of one node vs one reader of a concat */
    CHECK(sm_model_new(&a, "input 4 1 1\nf: flatten\nl1: linear 3 bias=0 in=f\nl2: linear 3 bias=0 in=f\n"
                           "add in=l1,l2\n", NULL, 0, 1, &err) == SM_OK);
    CHECK(sm_model_new(&b, "input 4 1 1\nf: flatten\ncat: concat in=f,f\nl: linear 3 bias=0\n", NULL, 0, 1,
                       &err) == SM_OK);
    if (!a || !b) { sm_model_free(a); sm_model_free(b); return; }
    float *pa = sm_model_params(a), *pb = sm_model_params(b);
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 4; i++) {
            pb[o * 8 + i] = pa[o * 4 + i];
            pb[o * 8 + 4 + i] = pa[12 + o * 4 + i];
        }
    float x[8] = {1, -2, 3, 0.5f, -1, 0.25f, 2, -3}, r[6] = {1, 2, -1, 0.5f, -2, 3};
    const float *ya, *yb;
    sm_model_set_training(a, true);
    sm_model_set_training(b, true);
    CHECK(sm_model_run(a, x, 2, &ya, &err) == SM_OK && sm_model_run(b, x, 2, &yb, &err) == SM_OK);
    th_close("two readers = concat: output", ya, yb, 6, 1e-6, 1e-3);
    CHECK(sm_model_backward(a, r, &err) == SM_OK && sm_model_backward(b, r, &err) == SM_OK);
    float ga[24], gb[24];
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 4; i++) {
            ga[o * 8 + i] = sm_model_grads(a)[o * 4 + i];
            ga[o * 8 + 4 + i] = sm_model_grads(a)[12 + o * 4 + i];
        }
    memcpy(gb, sm_model_grads(b), sizeof gb);
    th_close("two readers = concat: gradients", ga, gb, 24, 1e-6, 1e-3);
    sm_model_free(a);
    sm_model_free(b);
}

/* repeat N ... end with $i and $in writes the same graph as its expansion. */
static void test_repeat(void)
{
    const char *rep = "input 2 6 6\nstem: conv 4 k=3 p=1\n"
                      "repeat 2 from=1\nb$i.conv: conv 4 k=3 p=1\nb$i.bn: bn\nb$i.add: add in=$in\nrelu\nend\n"
                      "gap\n";
    const char *flat = "input 2 6 6\nstem: conv 4 k=3 p=1\n"
                       "b1.conv: conv 4 k=3 p=1\nb1.bn: bn\nb1.add: add in=stem\nrelu\n"
                       "b2.conv: conv 4 k=3 p=1\nb2.bn: bn\nb2.add: add in=layers.4\nrelu\n"
                       "gap\n";
    sm_err err = {0};
    sm_model *a = NULL, *b = NULL;
    CHECKF(sm_model_new(&a, rep, NULL, 0, 7, &err) == SM_OK, "%s", err.msg);
    CHECKF(sm_model_new(&b, flat, NULL, 0, 7, &err) == SM_OK, "%s", err.msg);
    if (!a || !b) { sm_model_free(a); sm_model_free(b); return; }
    CHECK(sm_model_ntensors(a) == sm_model_ntensors(b) && sm_model_nparams(a) == sm_model_nparams(b));
    bool same = true;
    for (int t = 0; t < sm_model_ntensors(a) && t < sm_model_ntensors(b); t++) {
        sm_tensor_info ta, tb;
        sm_model_tensor(a, t, &ta);
        sm_model_tensor(b, t, &tb);
        same &= !strcmp(ta.name, tb.name) && !memcmp(ta.data, tb.data, sizeof(float) * (size_t)ta.numel);
    }
    CHECKF(same, "repeat: tensors differ from the written-out spec");
    float x[2 * 72], ea[8], eb[8];
    for (int i = 0; i < 144; i++) x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    CHECK(sm_model_embed(a, x, 2, ea, &err) == SM_OK && sm_model_embed(b, x, 2, eb, &err) == SM_OK);
    CHECK(memcmp(ea, eb, sizeof ea) == 0);
    printf("%s repeat 2 from=1 = its expansion (names, values, embeddings)\n", same ? "ok  " : "FAIL");
    sm_model_free(a);
    sm_model_free(b);
}

/* The inference plan reuses slots: for a ResNet-18 at 64 px the arena holds
 * a fraction of the activations a training plan keeps, and the embeddings of
 * both plans are identical (same kernels, same fusion). */
static void test_memory(void)
{
    sm_err err = {0};
    char *spec = sm_zoo_build("resnet18", &(sm_zoo_config){.dim = 16, .height = 64}, &err);
    sm_model *a = NULL, *b = NULL;
    CHECK(spec && sm_model_new(&a, spec, NULL, 0, 1, &err) == SM_OK && sm_model_new(&b, spec, NULL, 0, 1, &err) == SM_OK);
    free(spec);
    if (!a || !b) { sm_model_free(a); sm_model_free(b); return; }
    enum { N = 2 };
    float *x = malloc(sizeof(float) * N * 3 * 64 * 64), ea[N * 16], eb[N * 16];
    for (int i = 0; i < N * 3 * 64 * 64; i++) x[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
    CHECK(sm_model_embed(a, x, N, ea, &err) == SM_OK && a->plan_infer);
    CHECK(sm_model_plan(b, N, &err) == SM_OK && sm_model_embed(b, x, N, eb, &err) == SM_OK && !b->plan_infer);
    CHECK(memcmp(ea, eb, sizeof ea) == 0);
    size_t acts = 0;
    for (int i = 0; i < b->nlayers; i++) acts += (size_t)(N * sm_ashape_numel(b->layers[i].out));
    double ratio = (double)(a->arena_floats - a->scratch_floats) / (double)acts;
    printf("%s resnet18 inference arena %.1f%% of all activations (training %zu floats, inference %zu)\n",
           ratio < 0.25 ? "ok  " : "FAIL", 100 * ratio, b->arena_floats, a->arena_floats);
    CHECK(ratio < 0.25);
    free(x);
    sm_model_free(a);
    sm_model_free(b);
}

/* Issue 13, point 7: a plan sized for one thread must not be used by eight
 * (the conv scratch is per thread): the model re-plans, and a backward after
 * the thread count grew is refused. Under ASan the old code overflowed. */
static void test_threads(void)
{
    sm_err err = {0};
    sm_head_config hc;
    sm_head_config_default(&hc, "arcface", &err);
    char spec[8192];
    sm_model *m = NULL;
    CHECK(sm_zoo_spec("mnist-net", 8, spec, sizeof spec, &err) && sm_model_new(&m, spec, &hc, 4, 1, &err) == SM_OK);
    if (!m) return;
    enum { N = 16 };
    float *x = malloc(sizeof(float) * N * 784), e[N * 8];
    int32_t y[N];
    for (int i = 0; i < N * 784; i++) x[i] = (float)((i * 31) % 17) / 8.0f - 1.0f;
    for (int i = 0; i < N; i++) y[i] = i % 4;
    int t0 = sm_threads_get();
    sm_threads_set(1);
    CHECK(sm_model_plan(m, N, &err) == SM_OK && m->plan_threads == 1);
    int got = sm_threads_set(8);
    double loss;
    CHECK(sm_model_train_step(m, x, y, N, 1, &loss, NULL, &err) == SM_OK);
    CHECKF(m->plan_threads == sm_threads_get(), "planned for %d threads, running %d (set returned %d)",
           m->plan_threads, sm_threads_get(), got);
    sm_threads_set(1);
    CHECK(sm_model_plan_inference(m, N, &err) == SM_OK);   /* a training arena: kept */
    sm_threads_set(8);
    CHECK(sm_model_embed(m, x, N, e, &err) == SM_OK && m->plan_threads == sm_threads_get());
    /* a fresh plan for 1 thread, forward with 1, backward with 8: refused */
    sm_model_free(m);
    m = NULL;
    CHECK(sm_model_new(&m, spec, &hc, 4, 1, &err) == SM_OK);
    if (!m) { free(x); return; }
    sm_threads_set(1);
    sm_model_set_training(m, true);
    const float *out;
    CHECK(sm_model_run(m, x, N, &out, &err) == SM_OK && m->plan_threads == 1);
    sm_threads_set(8);
    if (sm_threads_get() > 1) {
        sm_status st = sm_model_backward(m, e, &err);
        CHECKF(st == SM_ERR_ARG && strstr(err.msg, "thread count grew"), "%d %s", (int)st, err.msg);
        CHECK(sm_model_run(m, x, N, &out, &err) == SM_OK && sm_model_backward(m, e, &err) == SM_OK);
    }
    printf("ok   plans follow the thread count (1 -> %d)\n", sm_threads_get());
    sm_threads_set(t0);
    free(x);
    sm_model_free(m);
}

/* docs/model-spec.md's ResNet-18 (examples/resnet18.spec) is the zoo's. */
static void test_resnet18_spec(void)
{
    FILE *f = fopen("examples/resnet18.spec", "rb");
    CHECKF(f != NULL, "examples/resnet18.spec not found (run from the repository root)");
    if (!f) return;
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    sm_err err = {0};
    char *zs = sm_zoo_build("resnet18", &(sm_zoo_config){.dim = 512, .height = 64}, &err);
    sm_model *a = NULL, *b = NULL;
    CHECKF(sm_model_new(&a, text, NULL, 0, 3, &err) == SM_OK, "%s", err.msg);
    CHECK(zs && sm_model_new(&b, zs, NULL, 0, 3, &err) == SM_OK);
    free(zs);
    if (!a || !b) { sm_model_free(a); sm_model_free(b); return; }
    bool same = sm_model_ntensors(a) == sm_model_ntensors(b) && sm_model_nparams(a) == sm_model_nparams(b);
    for (int t = 0; same && t < sm_model_ntensors(a); t++) {
        sm_tensor_info ta, tb;
        sm_model_tensor(a, t, &ta);
        sm_model_tensor(b, t, &tb);
        same = !strcmp(ta.name, tb.name) && ta.numel == tb.numel &&
               !memcmp(ta.data, tb.data, sizeof(float) * (size_t)ta.numel);
    }
    CHECKF(same, "examples/resnet18.spec differs from the zoo's resnet18");
    printf("%s examples/resnet18.spec = zoo resnet18 (%d tensors, %lld parameters)\n", same ? "ok  " : "FAIL",
           sm_model_ntensors(a), (long long)sm_model_nparams(a));
    sm_model_free(a);
    sm_model_free(b);
}

/* Stages, freezing and learning-rate multipliers on the zoo's networks. */
static void test_finetune(void)
{
    sm_err err = {0};
    struct { const char *arch, *names[6]; int stages; } cases[] = {
        {"resnet18", {"conv1", "layer1.1.conv2", "layer2.0.downsample.0", "layer3.0.bn1", "layer4.1.conv2"}, 5},
        {"resnet50", {"bn1", "layer1.0.conv1", "layer2.0.conv1", "layer3.5.conv3", "layer4.0.conv1"}, 5},
        {"mobilenet-v2", {"features.1.conv.0.0", "features.3.conv.0.0", "features.6.conv.0.0",
                          "features.13.conv.0.0", "features.18.0"}, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        /* 100 px: the sizes are not powers of 2 (50, 25, 13, 7, 4) */
        char *spec = sm_zoo_build(cases[c].arch, &(sm_zoo_config){.dim = 8, .height = 100, .width = 100}, &err);
        sm_model *m = NULL;
        sm_head_config hc;
        sm_head_config_default(&hc, "arcface", &err);
        CHECKF(spec && sm_model_new(&m, spec, &hc, 3, 1, &err) == SM_OK, "%s: %s", cases[c].arch, err.msg);
        free(spec);
        if (!m) continue;
        CHECKF(sm_model_stages(m) == cases[c].stages, "%s: %d stages", cases[c].arch, sm_model_stages(m));
        CHECK(sm_model_freeze_stages(m, 6, &err) == SM_ERR_ARG && strstr(err.msg, "has 5"));
        CHECK(sm_model_freeze_stages(m, -1, &err) == SM_ERR_ARG);
        sm_optim_config oc;
        sm_optim_config_default(&oc, SM_OPTIM_SGD);
        sm_optim *o = NULL;
        CHECK(sm_optim_new(&o, &oc, sm_model_nparams(m), &err) == SM_OK);
        /* tensor "<node>.weight" of names[s] is in stage s: frozen (0) for s < k, 0.5 after */
        for (int k = 0; o && k <= 5; k++) {
            CHECK(sm_model_freeze_stages(m, k, &err) == SM_OK && sm_model_frozen_stages(m) == k);
            CHECK(sm_model_set_lr_scales(m, o, 0.5f, &err) == SM_OK);
            bool ok = true;
            for (int t = 0; t < sm_model_ntensors(m); t++) {
                sm_tensor_info ti;
                sm_model_tensor(m, t, &ti);
                if (!ti.trainable) continue;
                float want = -1;
                for (int s = 0; s < 5; s++) {
                    char w[96];
                    snprintf(w, sizeof w, "%s.weight", cases[c].names[s]);
                    if (!strcmp(ti.name, w)) want = s < k ? 0.0f : 0.5f;
                }
                if (!strncmp(ti.name, "embedding.", 10) || !strncmp(ti.name, "head.", 5)) want = 1.0f;
                float got = sm_optim_lr_scale(o, ti.data - sm_model_params(m));
                float last = sm_optim_lr_scale(o, ti.data - sm_model_params(m) + ti.numel - 1);
                if ((want >= 0 && got != want) || got != last) {
                    ok = false;
                    fprintf(stderr, "%s freeze %d: %s has lr scale %g (want %g)\n", cases[c].arch, k,
                            ti.name, (double)got, (double)want);
                }
            }
            CHECKF(ok, "%s: lr scales of --freeze %d", cases[c].arch, k);
        }
        sm_optim_free(o);
        sm_model_free(m);
    }
    printf("ok   stages and lr scales of resnet18, resnet50, mobilenet-v2 (100 px)\n");

    /* multipliers: each range updates as an optimizer of its own with lr * scale; 0: untouched */
    for (int kind = SM_OPTIM_SGD; kind <= SM_OPTIM_ADAMW; kind++) {
        enum { P = 40 };
        sm_optim_config oc;
        sm_optim_config_default(&oc, (sm_optim_kind)kind);
        sm_optim *all = NULL, *part = NULL;
        CHECK(sm_optim_new(&all, &oc, P, &err) == SM_OK);
        CHECK(sm_optim_new(&part, &oc, 10, &err) == SM_OK);
        if (!all || !part) { sm_optim_free(all); sm_optim_free(part); continue; }
        CHECK(sm_optim_set_lr_scale(all, 5, 10, 0.25f, &err) == SM_OK);
        CHECK(sm_optim_set_lr_scale(all, 20, 10, 0.0f, &err) == SM_OK);
        CHECK(sm_optim_set_lr_scale(all, 12, 3, 0.25f, &err) == SM_OK);   /* merges */
        CHECK(sm_optim_set_lr_scale(all, 30, 11, 1.0f, &err) == SM_ERR_ARG);
        CHECK(sm_optim_set_lr_scale(all, 0, 1, -1.0f, &err) == SM_ERR_ARG);
        CHECK(sm_optim_set_lr_scale(all, 0, 1, NAN, &err) == SM_ERR_ARG);
        CHECK(sm_optim_set_lr_scale(all, INT64_MAX, 2, 1.0f, &err) == SM_ERR_ARG);
        float p[P], g[P], q[10], p0[P];
        for (int i = 0; i < P; i++) p0[i] = p[i] = 0.1f * (float)(i % 9) - 0.3f;
        memcpy(q, p + 5, sizeof q);
        bool same = true;
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < P; i++) g[i] = 0.05f * (float)((i * 7 + step) % 11) - 0.2f;
            sm_optim_step(all, p, g, 0.1f);
            sm_optim_step(part, q, g + 5, 0.1f * 0.25f);
        }
        for (int i = 0; i < 10; i++) same &= p[5 + i] == q[i];
        for (int i = 20; i < 30; i++) same &= p[i] == p0[i];
        for (int i = 0; i < 5; i++) same &= p[i] != p0[i];
        CHECKF(same, "%s: a range with multiplier 0.25 steps as lr x 0.25, one with 0 not at all",
               kind == SM_OPTIM_SGD ? "sgd" : "adamw");
        sm_optim_free(all);
        sm_optim_free(part);
    }
}

int main(void)
{
    test_resnet18_spec();
    test_errors();
    test_gradients(false);
    test_gradients(true);
    test_finetune();
    test_accumulation();
    test_repeat();
    test_memory();
    test_threads();
    return th_done();
}
