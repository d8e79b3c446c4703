/* test_kernels.c - the backbone kernels (src/kernels.h) against
 *   (a) PyTorch fixtures (tests/fixtures/kernels_ref.bin, tools/gen_ref.py):
 *       every forward output and every gradient;
 *   (b) central finite differences of L = sum(out * R) for every backward, on
 *       a capped random subset of elements, skipping kinks (an element whose
 *       +-h perturbation changes a ReLU sign or a max-pool argmax);
 *       plus the accumulate rule (a second backward doubles the gradients);
 *   (c) fast im2col+GEMM conv vs its naive twin on odd shapes, 1 and 2 threads;
 *   (d) determinism: the same call twice gives bit-identical results;
 *   and dropout's statistical and structural properties (no fixture: torch's
 *   RNG is not ours).
 * Run from the repository root. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "gemm.h"
#include "harness.h"
#include "kernels.h"
#include "rng.h"

#define FIXTURE "tests/fixtures/kernels_ref.bin"

static fx_file *fx;
static sm_rng rng;

/* ------------------------------------------------------------- helpers */

static float *fbuf(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

static float *frand(int64_t n, double scale)
{
    float *p = fbuf(n);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(sm_rng_normal(&rng) * scale);
    return p;
}

static float *fdup(const float *src, int64_t n)
{
    float *p = fbuf(n);
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

/* Fixture tensor "<cs>/<t>"; a missing one is a failed check and a zero buffer. */
static const float *get(const char *cs, const char *t, int64_t *n)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s", cs, t);
    const float *p = fx_get(fx, name, n);
    CHECKF(p != NULL, "fixture tensor '%s' missing", name);
    return p;
}

#define TOL 1e-5

/* ------------------------------------------------------------- (a) fixtures */

static void fixture_conv(void)
{
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "conv%d", i);
        if (!fx_has_case(fx, cs))
            break;
        int64_t n;
        const float *cfg = get(cs, "cfg", &n);
        sm_conv_shape s = {.n = (int64_t)cfg[0], .cin = (int64_t)cfg[1], .h = (int64_t)cfg[2],
                           .w = (int64_t)cfg[3], .cout = (int64_t)cfg[4], .kh = (int64_t)cfg[5],
                           .kw = (int64_t)cfg[6], .stride = (int64_t)cfg[7], .pad = (int64_t)cfg[8],
                           .groups = n > 10 ? (int64_t)cfg[10] : 1};
        int hb = cfg[9] != 0.0f;
        CHECK(sm_conv_shape_init(&s) == 0);
        int64_t nx, nw, no;
        const float *x = get(cs, "x", &nx), *w = get(cs, "w", &nw), *ref = get(cs, "out", &no);
        const float *b = hb ? get(cs, "b", NULL) : NULL, *dout = get(cs, "dout", NULL);
        CHECK(no == s.cout * s.n * s.oh * s.ow);
        float *scratch = fbuf((int64_t)sm_conv2d_scratch_floats(&s, sm_threads_get()));
        float *out = fbuf(no), *dx = fbuf(nx), *dw = fbuf(nw), *db = fbuf(s.cout);
        sm_conv2d_forward(out, x, w, b, &s, scratch);
        th_close_case(cs, "out", out, ref, no, TOL);
        sm_conv2d_backward(dx, dw, hb ? db : NULL, dout, x, w, &s, scratch);
        th_close_case(cs, "dx", dx, get(cs, "dx", NULL), nx, TOL);
        th_close_case(cs, "dw", dw, get(cs, "dw", NULL), nw, TOL);
        if (hb)
            th_close_case(cs, "db", db, get(cs, "db", NULL), s.cout, TOL);
        /* the naive twin against the same reference */
        memset(dx, 0, (size_t)nx * 4); memset(dw, 0, (size_t)nw * 4); memset(db, 0, (size_t)s.cout * 4);
        sm_conv2d_forward_naive(out, x, w, b, &s);
        th_close_case(cs, "naive out", out, ref, no, TOL);
        sm_conv2d_backward_naive(dx, dw, hb ? db : NULL, dout, x, w, &s);
        th_close_case(cs, "naive dx", dx, get(cs, "dx", NULL), nx, TOL);
        th_close_case(cs, "naive dw", dw, get(cs, "dw", NULL), nw, TOL);
        if (hb)
            th_close_case(cs, "naive db", db, get(cs, "db", NULL), s.cout, TOL);
        free(scratch); free(out); free(dx); free(dw); free(db);
    }
}

static void fixture_bn(void)
{
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "bn%d", i);
        if (!fx_has_case(fx, cs))
            break;
        const float *cfg = get(cs, "cfg", NULL);
        int64_t outer = (int64_t)cfg[0], c = (int64_t)cfg[1], inner = (int64_t)cfg[2], n;
        float mom = cfg[3], eps = cfg[4];
        const float *x = get(cs, "x", &n), *gamma = get(cs, "gamma", NULL),
                    *beta = get(cs, "beta", NULL), *dout = get(cs, "dout", NULL);
        CHECK(n == outer * c * inner);
        float *out = fbuf(n), *mean = fbuf(c), *invstd = fbuf(c), *dx = fbuf(n);
        float *rm = fdup(get(cs, "rm0", NULL), c), *rv = fdup(get(cs, "rv0", NULL), c);
        float *dg = fbuf(c), *dbeta = fbuf(c);
        sm_bn_forward_train(out, mean, invstd, rm, rv, x, gamma, beta, outer, c, inner, mom, eps);
        th_close_case(cs, "train out", out, get(cs, "out", NULL), n, TOL);
        th_close_case(cs, "mean", mean, get(cs, "mean", NULL), c, TOL);
        th_close_case(cs, "invstd", invstd, get(cs, "invstd", NULL), c, TOL);
        th_close_case(cs, "running_mean", rm, get(cs, "rm", NULL), c, TOL);
        th_close_case(cs, "running_var", rv, get(cs, "rv", NULL), c, TOL);
        sm_bn_backward(dx, dg, dbeta, dout, x, mean, invstd, gamma, outer, c, inner);
        th_close_case(cs, "dx", dx, get(cs, "dx", NULL), n, TOL);
        th_close_case(cs, "dgamma", dg, get(cs, "dgamma", NULL), c, TOL);
        th_close_case(cs, "dbeta", dbeta, get(cs, "dbeta", NULL), c, TOL);
        sm_bn_forward_eval(out, x, gamma, beta, get(cs, "rm0", NULL), get(cs, "rv0", NULL), outer,
                           c, inner, eps);
        th_close_case(cs, "eval out", out, get(cs, "eval_out", NULL), n, TOL);
        free(out); free(mean); free(invstd); free(dx); free(rm); free(rv); free(dg); free(dbeta);
    }
}

static void fixture_act(void)
{
    int64_t n;
    const float *x = get("relu0", "x", &n);
    float *out = fbuf(n), *dx = fbuf(n);
    sm_relu_forward(out, x, n);
    th_close_case("relu0", "out", out, get("relu0", "out", NULL), n, 0.0);
    sm_relu_backward(dx, get("relu0", "dout", NULL), out, n);
    th_close_case("relu0", "dx", dx, get("relu0", "dx", NULL), n, 0.0);
    free(out); free(dx);
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "prelu%d", i);
        if (!fx_has_case(fx, cs))
            break;
        const float *cfg = get(cs, "cfg", NULL);
        int64_t outer = (int64_t)cfg[0], c = (int64_t)cfg[1], inner = (int64_t)cfg[2];
        const float *px = get(cs, "x", &n), *a = get(cs, "a", NULL);
        float *pout = fbuf(n), *pdx = fbuf(n), *da = fbuf(c);
        sm_prelu_forward(pout, px, a, outer, c, inner);
        th_close_case(cs, "out", pout, get(cs, "out", NULL), n, TOL);
        sm_prelu_backward(pdx, da, get(cs, "dout", NULL), px, a, outer, c, inner);
        th_close_case(cs, "dx", pdx, get(cs, "dx", NULL), n, TOL);
        th_close_case(cs, "da", da, get(cs, "da", NULL), c, TOL);
        free(pout); free(pdx); free(da);
    }
}

static void fixture_pool(void)
{
    for (int kind = 0; kind < 2; kind++)
        for (int i = 0; ; i++) {
            char cs[32];
            snprintf(cs, sizeof cs, "%s%d", kind ? "avgpool" : "maxpool", i);
            if (!fx_has_case(fx, cs))
                break;
            const float *cfg = get(cs, "cfg", NULL);
            int64_t nn = (int64_t)cfg[0], c = (int64_t)cfg[1], h = (int64_t)cfg[2],
                    w = (int64_t)cfg[3], k = (int64_t)cfg[4], st = (int64_t)cfg[5],
                    pad = (int64_t)cfg[6], oh = (int64_t)cfg[7], ow = (int64_t)cfg[8];
            CHECK(oh == (h + 2 * pad - k) / st + 1 && ow == (w + 2 * pad - k) / st + 1);
            int64_t nx, no, planes = c * nn;
            const float *x = get(cs, "x", &nx), *dout = get(cs, "dout", &no);
            float *out = fbuf(no), *dx = fbuf(nx);
            if (kind == 0) {
                int32_t *am = calloc((size_t)no, sizeof(int32_t));
                sm_maxpool2d_forward(out, am, x, planes, h, w, k, st, pad, oh, ow);
                const float *ram = get(cs, "argmax", NULL);
                int64_t bad = 0;
                for (int64_t j = 0; j < no; j++) bad += am[j] != (int32_t)ram[j];
                CHECKF(bad == 0, "%s: %lld argmax indices differ", cs, (long long)bad);
                sm_maxpool2d_backward(dx, dout, am, planes, h, w, oh, ow);
                free(am);
                float *o2 = fbuf(no);   /* inference: no argmax kept, same output */
                sm_maxpool2d_forward(o2, NULL, x, planes, h, w, k, st, pad, oh, ow);
                CHECKF(memcmp(o2, out, (size_t)no * sizeof(float)) == 0, "%s: output without argmax differs", cs);
                free(o2);
            } else {
                sm_avgpool2d_forward(out, x, planes, h, w, k, st, pad, oh, ow);
                sm_avgpool2d_backward(dx, dout, planes, h, w, k, st, pad, oh, ow);
            }
            th_close_case(cs, "out", out, get(cs, "out", NULL), no, TOL);
            th_close_case(cs, "dx", dx, get(cs, "dx", NULL), nx, TOL);
            free(out); free(dx);
        }
    /* the fast paths (a plane's stride phases, the 2x2 loop, rows of inner
     * windows tap by tap for planes too large for phases) against a plain
     * scan in the test, values bit for bit and argmax equal, with and
     * without argmax, on data with ties, signed zeros, NaNs and -inf (plane 2
     * mostly -inf: whole windows of them) */
    static const int64_t pc[][5] = {   /* h, w, k, stride, pad */
        {56, 56, 3, 2, 1}, {7, 9, 3, 2, 1}, {9, 7, 3, 1, 1}, {8, 8, 2, 2, 0}, {11, 13, 5, 3, 2},
        {5, 5, 3, 1, 0}, {4, 6, 4, 2, 1}, {3, 3, 3, 2, 1}, {130, 128, 3, 2, 1}, {40, 40, 3, 5, 1},
        {9, 9, 2, 2, 1}};
    for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
        int64_t h = pc[i][0], w = pc[i][1], k = pc[i][2], st = pc[i][3], pad = pc[i][4], planes = 3;
        int64_t oh = (h + 2 * pad - k) / st + 1, ow = (w + 2 * pad - k) / st + 1, nx = planes * h * w;
        int64_t no = planes * oh * ow;
        float *x = fbuf(nx), *a = fbuf(no), *b = fbuf(no), *r = fbuf(no);
        int32_t *am = calloc((size_t)no, sizeof(int32_t)), *ram = calloc((size_t)no, sizeof(int32_t));
        for (int64_t j = 0; j < nx; j++) {
            int v = (int)sm_rng_below(&rng, 16);
            if (j >= 2 * h * w && v > 1) v = 3;
            x[j] = v == 0 ? NAN : v == 1 ? -0.0f : v == 2 ? 0.0f : v == 3 ? -INFINITY
                                                 : (float)(v % 5) - 2.0f;
        }
        for (int64_t p = 0; p < planes; p++)   /* the reference: first maximum in scan order, NaN wins */
            for (int64_t oi = 0; oi < oh; oi++)
                for (int64_t oj = 0; oj < ow; oj++) {
                    int64_t best = -1;
                    float bv = 0.0f;
                    for (int64_t ki = 0; ki < k; ki++)
                        for (int64_t kj = 0; kj < k; kj++) {
                            int64_t ih = oi * st - pad + ki, iw = oj * st - pad + kj;
                            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                            float v = x[p * h * w + ih * w + iw];
                            if (best < 0 || v > bv || (isnan(v) && !isnan(bv))) {
                                bv = v;
                                best = ih * w + iw;
                            }
                        }
                    r[(p * oh + oi) * ow + oj] = bv;
                    ram[(p * oh + oi) * ow + oj] = (int32_t)best;
                }
        sm_maxpool2d_forward(a, am, x, planes, h, w, k, st, pad, oh, ow);
        sm_maxpool2d_forward(b, NULL, x, planes, h, w, k, st, pad, oh, ow);
        int64_t bad = 0;
        for (int64_t j = 0; j < no; j++) bad += am[j] != ram[j];
        CHECKF(memcmp(a, r, (size_t)no * sizeof(float)) == 0 && bad == 0,
               "maxpool %lldx%lld k%lld s%lld p%lld: output or %lld argmax differ from the scan",
               (long long)h, (long long)w, (long long)k, (long long)st, (long long)pad, (long long)bad);
        CHECKF(memcmp(b, r, (size_t)no * sizeof(float)) == 0,
               "maxpool %lldx%lld k%lld s%lld p%lld: output without argmax differs from the scan",
               (long long)h, (long long)w, (long long)k, (long long)st, (long long)pad);
        free(x); free(a); free(b); free(r); free(am); free(ram);
    }
    for (int kind = 0; kind < 2; kind++) {
        const char *cs = kind ? "flatten0" : "gap0";
        const float *cfg = get(cs, "cfg", NULL);
        int64_t c = (int64_t)cfg[0], n = (int64_t)cfg[1], hw = (int64_t)cfg[2], nx, no;
        const float *x = get(cs, "x", &nx), *dout = get(cs, "dout", &no);
        float *out = fbuf(no), *dx = fbuf(nx);
        if (kind) {
            sm_flatten_forward(out, x, c, n, hw);
            sm_flatten_backward(dx, dout, c, n, hw);
        } else {
            sm_gap_forward(out, x, c, n, hw);
            sm_gap_backward(dx, dout, c, n, hw);
        }
        th_close_case(cs, "out", out, get(cs, "out", NULL), no, kind ? 0.0 : TOL);
        th_close_case(cs, "dx", dx, get(cs, "dx", NULL), nx, kind ? 0.0 : TOL);
        free(out); free(dx);
    }
}

static void fixture_linear(void)
{
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "linear%d", i);
        if (!fx_has_case(fx, cs))
            break;
        const float *cfg = get(cs, "cfg", NULL);
        int64_t n = (int64_t)cfg[0], in = (int64_t)cfg[1], outf = (int64_t)cfg[2];
        int hb = cfg[3] != 0.0f;
        const float *x = get(cs, "x", NULL), *w = get(cs, "w", NULL);
        const float *b = hb ? get(cs, "b", NULL) : NULL;
        float *out = fbuf(n * outf), *dx = fbuf(n * in), *dw = fbuf(outf * in), *db = fbuf(outf);
        sm_linear_forward(out, x, w, b, n, in, outf);
        th_close_case(cs, "out", out, get(cs, "out", NULL), n * outf, TOL);
        sm_linear_backward(dx, dw, hb ? db : NULL, get(cs, "dout", NULL), x, w, n, in, outf);
        th_close_case(cs, "dx", dx, get(cs, "dx", NULL), n * in, TOL);
        th_close_case(cs, "dw", dw, get(cs, "dw", NULL), outf * in, TOL);
        if (hb)
            th_close_case(cs, "db", db, get(cs, "db", NULL), outf, TOL);
        free(out); free(dx); free(dw); free(db);
    }
}

static void fixture_norm(void)
{
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "l2norm%d", i);
        if (!fx_has_case(fx, cs))
            break;
        const float *cfg = get(cs, "cfg", NULL);
        int64_t n = (int64_t)cfg[0], d = (int64_t)cfg[1];
        float eps = cfg[2];
        const float *x = get(cs, "x", NULL);
        float *out = fbuf(n * d), *norm = fbuf(n), *dx = fbuf(n * d);
        sm_l2norm_forward(out, norm, x, n, d, eps);
        th_close_case(cs, "out", out, get(cs, "out", NULL), n * d, TOL);
        th_close_case(cs, "norm", norm, get(cs, "norm", NULL), n, TOL);
        sm_l2norm_backward(dx, get(cs, "dout", NULL), out, norm, n, d, eps);
        th_close_case(cs, "dx", dx, get(cs, "dx", NULL), n * d, TOL);
        free(out); free(norm); free(dx);
    }
}

typedef void (*act_fwd_fn)(float *, const float *, int64_t);
typedef void (*act_bwd_fn)(float *, const float *, const float *, int64_t);

/* ReLU6, Hardswish, Hardsigmoid, Sigmoid: values on every kink and far out;
 * the backward of Sigmoid reads the output, the others the input. */
static void fixture_act2(void)
{
    static const struct { const char *cs; act_fwd_fn fwd; act_bwd_fn bwd; bool from_out; } a[] = {
        {"relu60", sm_relu6_forward, sm_relu6_backward, false},
        {"hardswish0", sm_hardswish_forward, sm_hardswish_backward, false},
        {"hardsigmoid0", sm_hardsigmoid_forward, sm_hardsigmoid_backward, false},
        {"sigmoid0", sm_sigmoid_forward, sm_sigmoid_backward, true},
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        int64_t n;
        const float *x = get(a[i].cs, "x", &n);
        float *out = fbuf(n), *dx = fbuf(n);
        a[i].fwd(out, x, n);
        th_close_case(a[i].cs, "out", out, get(a[i].cs, "out", NULL), n, TOL);
        a[i].bwd(dx, get(a[i].cs, "dout", NULL), a[i].from_out ? out : x, n);
        th_close_case(a[i].cs, "dx", dx, get(a[i].cs, "dx", NULL), n, TOL);
        a[i].bwd(NULL, get(a[i].cs, "dout", NULL), a[i].from_out ? out : x, n);   /* no-op */
        free(out); free(dx);
    }
}

static void fixture_adaptive(void)
{
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "adaptive%d", i);
        if (!fx_has_case(fx, cs))
            break;
        const float *cfg = get(cs, "cfg", NULL);
        int64_t nn = (int64_t)cfg[0], c = (int64_t)cfg[1], h = (int64_t)cfg[2],
                w = (int64_t)cfg[3], oh = (int64_t)cfg[4], ow = (int64_t)cfg[5], nx, no;
        const float *x = get(cs, "x", &nx), *dout = get(cs, "dout", &no);
        CHECK(nx == nn * c * h * w && no == nn * c * oh * ow);
        float *out = fbuf(no), *dx = fbuf(nx);
        sm_adaptive_avgpool2d_forward(out, x, nn * c, h, w, oh, ow);
        sm_adaptive_avgpool2d_backward(dx, dout, nn * c, h, w, oh, ow);
        th_close_case(cs, "out", out, get(cs, "out", NULL), no, TOL);
        th_close_case(cs, "dx", dx, get(cs, "dx", NULL), nx, TOL);
        free(out); free(dx);
    }
}

/* ------------------------------------------------------------- (b) finite differences
 * An fd_case names up to 4 differentiable inputs p[] with analytic gradients
 * g[]; fwd() recomputes out from the current p[]; bwd() accumulates into g[]
 * with dout = R; state() (optional) hashes the forward's discrete choices, so
 * that an element whose perturbation flips one (a kink) is skipped. */
#define FD_MAXP 4
#define FD_CAP 24   /* elements checked per input (all of them when fewer) */

typedef struct fd_case fd_case;
struct fd_case {
    const char *name;
    int np;
    const char *pname[FD_MAXP];
    float *p[FD_MAXP], *g[FD_MAXP];
    int64_t pn[FD_MAXP];
    float *out, *R;
    int64_t nout;
    void (*fwd)(fd_case *);
    void (*bwd)(fd_case *);
    uint64_t (*state)(fd_case *);
    double h;
    /* op-specific */
    sm_conv_shape cs;
    int64_t a, b, c, d, e, f;
    float *aux[4];
    int32_t *iaux;
    float *scratch;
};

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t hsh = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) hsh = (hsh ^ b[i]) * 1099511628211ull;
    return hsh;
}

static double fd_loss(fd_case *fc)
{
    fc->fwd(fc);
    double l = 0.0;
    for (int64_t i = 0; i < fc->nout; i++) l += (double)fc->out[i] * fc->R[i];
    return l;
}

static double g_fd_worst_all = 0.0;

static void fd_run(fd_case *fc, double tol)
{
    fc->R = frand(fc->nout, 1.0);
    fc->fwd(fc);
    uint64_t st0 = fc->state ? fc->state(fc) : 0;
    for (int k = 0; k < fc->np; k++) memset(fc->g[k], 0, (size_t)fc->pn[k] * sizeof(float));
    fc->bwd(fc);
    /* accumulate rule: a second backward adds the same gradient again */
    float *g1[FD_MAXP];
    for (int k = 0; k < fc->np; k++) g1[k] = fdup(fc->g[k], fc->pn[k]);
    fc->bwd(fc);
    for (int k = 0; k < fc->np; k++) {
        float *twice = fbuf(fc->pn[k]);
        char label[96];
        for (int64_t i = 0; i < fc->pn[k]; i++) twice[i] = 2.0f * g1[k][i];
        snprintf(label, sizeof label, "accumulate %s d%s", fc->name, fc->pname[k]);
        double mx = 0.0;
        for (int64_t i = 0; i < fc->pn[k]; i++) mx = fmax(mx, fabs((double)twice[i]));
        th_close(label, fc->g[k], twice, (long)fc->pn[k], 1e-6, fmax(0.05 * mx, 1e-30));
        free(twice);
    }
    for (int k = 0; k < fc->np; k++) {
        float *x = fc->p[k];
        const float *ga = g1[k];
        double gmax = 0.0, worst = 0.0;
        int checked = 0, skipped = 0;
        for (int64_t i = 0; i < fc->pn[k]; i++) gmax = fmax(gmax, fabs((double)ga[i]));
        double floor_ = fmax(0.05 * gmax, 1e-6);
        int64_t ncheck = fc->pn[k] < FD_CAP ? fc->pn[k] : FD_CAP;
        for (int64_t t = 0; t < ncheck; t++) {
            /* the first 4 elements always (cases plant their kinks there), then random ones */
            int64_t i = fc->pn[k] <= FD_CAP || t < 4 ? t
                                                     : (int64_t)sm_rng_below(&rng, (uint64_t)fc->pn[k]);
            float v = x[i], xp = (float)(v + fc->h), xm = (float)(v - fc->h);
            x[i] = xp;
            double lp = fd_loss(fc);
            uint64_t sp = fc->state ? fc->state(fc) : 0;
            x[i] = xm;
            double lm = fd_loss(fc);
            uint64_t sm = fc->state ? fc->state(fc) : 0;
            x[i] = v;
            if (sp != st0 || sm != st0) { skipped++; continue; }
            double fd = (lp - lm) / ((double)xp - (double)xm);
            double rel = fabs(fd - ga[i]) / fmax(fmax(fabs(fd), fabs((double)ga[i])), floor_);
            if (rel > worst) worst = rel;
            checked++;
        }
        fc->fwd(fc);
        int ok = worst <= tol && checked > 0;
        if (ok) th_passed++; else th_failed++;
        char label[96];
        snprintf(label, sizeof label, "%s d%s", fc->name, fc->pname[k]);
        printf("%s fd %-34s max rel err %.3g (%d checked, %d kinks skipped, tol %.0e)\n",
               ok ? "ok  " : "FAIL", label, worst, checked, skipped, tol);
        if (worst > g_fd_worst_all) g_fd_worst_all = worst;
        free(g1[k]);
    }
    free(fc->R);
}

/* -- per-op closures */
static void conv_fwd(fd_case *f) { sm_conv2d_forward(f->out, f->p[0], f->p[1], f->np > 2 ? f->p[2] : NULL, &f->cs, f->scratch); }
static void conv_bwd(fd_case *f) { sm_conv2d_backward(f->g[0], f->g[1], f->np > 2 ? f->g[2] : NULL, f->R, f->p[0], f->p[1], &f->cs, f->scratch); }
/* a = outer, b = c, c = inner; aux0 mean, aux1 invstd */
static void bn_fwd(fd_case *f) { sm_bn_forward_train(f->out, f->aux[0], f->aux[1], NULL, NULL, f->p[0], f->p[1], f->p[2], f->a, f->b, f->c, 0.1f, 1e-5f); }
static void bn_bwd(fd_case *f) { sm_bn_backward(f->g[0], f->g[1], f->g[2], f->R, f->p[0], f->aux[0], f->aux[1], f->p[1], f->a, f->b, f->c); }
static void relu_fwd(fd_case *f) { sm_relu_forward(f->out, f->p[0], f->nout); }
static void relu_bwd(fd_case *f) { sm_relu_backward(f->g[0], f->R, f->out, f->nout); }
static uint64_t relu_state(fd_case *f)
{
    uint64_t hsh = 0;
    for (int64_t i = 0; i < f->nout; i++) hsh = hsh * 31 + (f->out[i] > 0.0f);
    return hsh;
}
static void prelu_fwd(fd_case *f) { sm_prelu_forward(f->out, f->p[0], f->p[1], f->a, f->b, f->c); }
static void prelu_bwd(fd_case *f) { sm_prelu_backward(f->g[0], f->g[1], f->R, f->p[0], f->p[1], f->a, f->b, f->c); }
static uint64_t prelu_state(fd_case *f)
{
    uint64_t hsh = 0;
    for (int64_t i = 0; i < f->nout; i++) hsh = hsh * 31 + (f->p[0][i] > 0.0f);
    return hsh;
}
/* a = groups, b = group_size; aux0 = mask */
static void drop_fwd(fd_case *f) { sm_dropout_forward(f->out, f->aux[0], f->p[0], f->a, f->b, 0.4f, 77); }
static void drop_bwd(fd_case *f) { sm_dropout_backward(f->g[0], f->R, f->aux[0], f->a, f->b); }
/* a planes, b h, c w, d k, e stride, f pad; oh/ow from cs.oh/cs.ow */
static void maxp_fwd(fd_case *f) { sm_maxpool2d_forward(f->out, f->iaux, f->p[0], f->a, f->b, f->c, f->d, f->e, f->f, f->cs.oh, f->cs.ow); }
static void maxp_bwd(fd_case *f) { sm_maxpool2d_backward(f->g[0], f->R, f->iaux, f->a, f->b, f->c, f->cs.oh, f->cs.ow); }
static uint64_t maxp_state(fd_case *f) { return hash_bytes(f->iaux, (size_t)f->nout * sizeof(int32_t)); }
static void avgp_fwd(fd_case *f) { sm_avgpool2d_forward(f->out, f->p[0], f->a, f->b, f->c, f->d, f->e, f->f, f->cs.oh, f->cs.ow); }
static void avgp_bwd(fd_case *f) { sm_avgpool2d_backward(f->g[0], f->R, f->a, f->b, f->c, f->d, f->e, f->f, f->cs.oh, f->cs.ow); }
/* a c, b n, c hw */
static void gap_fwd(fd_case *f) { sm_gap_forward(f->out, f->p[0], f->a, f->b, f->c); }
static void gap_bwd(fd_case *f) { sm_gap_backward(f->g[0], f->R, f->a, f->b, f->c); }
static void flat_fwd(fd_case *f) { sm_flatten_forward(f->out, f->p[0], f->a, f->b, f->c); }
static void flat_bwd(fd_case *f) { sm_flatten_backward(f->g[0], f->R, f->a, f->b, f->c); }
/* a n, b in, c out */
static void lin_fwd(fd_case *f) { sm_linear_forward(f->out, f->p[0], f->p[1], f->p[2], f->a, f->b, f->c); }
static void lin_bwd(fd_case *f) { sm_linear_backward(f->g[0], f->g[1], f->g[2], f->R, f->p[0], f->p[1], f->a, f->b, f->c); }
/* a n, b d; aux0 norm; eps 1e-12 */
/* the four newer activations, by f->a: 0 ReLU6, 1 Hardswish, 2 Hardsigmoid, 3 Sigmoid */
static void act2_fwd(fd_case *f)
{
    static const act_fwd_fn fn[] = {sm_relu6_forward, sm_hardswish_forward, sm_hardsigmoid_forward,
                                    sm_sigmoid_forward};
    fn[f->a](f->out, f->p[0], f->nout);
}
static void act2_bwd(fd_case *f)
{
    static const act_bwd_fn fn[] = {sm_relu6_backward, sm_hardswish_backward,
                                    sm_hardsigmoid_backward, sm_sigmoid_backward};
    fn[f->a](f->g[0], f->R, f->a == 3 ? f->out : f->p[0], f->nout);
}
/* which piece of the piecewise function each input is on */
static uint64_t act2_state(fd_case *f)
{
    uint64_t hsh = 1469598103934665603ull;
    const float lo = f->a == 0 ? 0.0f : -3.0f, hi = f->a == 0 ? 6.0f : 3.0f;
    for (int64_t i = 0; i < f->nout; i++) {
        const float x = f->p[0][i];
        hsh = (hsh ^ (uint64_t)(x <= lo ? 0 : x >= hi ? 2 : 1)) * 1099511628211ull;
    }
    return hsh;
}
static void adapt_fwd(fd_case *f) { sm_adaptive_avgpool2d_forward(f->out, f->p[0], f->a, f->b, f->c, f->d, f->e); }
static void adapt_bwd(fd_case *f) { sm_adaptive_avgpool2d_backward(f->g[0], f->R, f->a, f->b, f->c, f->d, f->e); }

static void l2_fwd(fd_case *f) { sm_l2norm_forward(f->out, f->aux[0], f->p[0], f->a, f->b, 1e-12f); }
static void l2_bwd(fd_case *f) { sm_l2norm_backward(f->g[0], f->R, f->out, f->aux[0], f->a, f->b, 1e-12f); }

static void fd_param(fd_case *f, const char *name, int64_t n, double scale)
{
    int k = f->np++;
    f->pname[k] = name;
    f->pn[k] = n;
    f->p[k] = frand(n, scale);
    f->g[k] = fbuf(n);
}

static void fd_free(fd_case *f)
{
    for (int k = 0; k < f->np; k++) { free(f->p[k]); free(f->g[k]); }
    for (int k = 0; k < 4; k++) free(f->aux[k]);
    free(f->out); free(f->iaux); free(f->scratch);
}

static void fd_conv(const char *name, sm_conv_shape s, int bias)
{
    fd_case f = {.name = name, .fwd = conv_fwd, .bwd = conv_bwd, .h = 1e-2, .cs = s};
    CHECK(sm_conv_shape_init(&f.cs) == 0);
    fd_param(&f, "x", f.cs.cin * f.cs.n * f.cs.h * f.cs.w, 1.0);
    fd_param(&f, "w", f.cs.cout * (f.cs.cin / (f.cs.groups > 1 ? f.cs.groups : 1)) * f.cs.kh * f.cs.kw, 0.5);
    if (bias) fd_param(&f, "b", f.cs.cout, 1.0);
    f.nout = f.cs.cout * f.cs.n * f.cs.oh * f.cs.ow;
    f.out = fbuf(f.nout);
    f.scratch = fbuf((int64_t)sm_conv2d_scratch_floats(&f.cs, sm_threads_get()));
    fd_run(&f, 2e-3);
    fd_free(&f);
}

static void fd_bn(const char *name, int64_t outer, int64_t c, int64_t inner)
{
    fd_case f = {.name = name, .fwd = bn_fwd, .bwd = bn_bwd, .h = 1e-2, .a = outer, .b = c, .c = inner};
    fd_param(&f, "x", outer * c * inner, 1.0);
    fd_param(&f, "gamma", c, 1.0);
    fd_param(&f, "beta", c, 1.0);
    f.nout = outer * c * inner;
    f.out = fbuf(f.nout);
    f.aux[0] = fbuf(c); f.aux[1] = fbuf(c);
    fd_run(&f, 5e-3);
    fd_free(&f);
}

static void fd_pool(const char *name, int max, int64_t planes, int64_t h, int64_t w, int64_t k,
                    int64_t st, int64_t pad)
{
    fd_case f = {.name = name, .fwd = max ? maxp_fwd : avgp_fwd, .bwd = max ? maxp_bwd : avgp_bwd,
                 .state = max ? maxp_state : NULL, .h = 1e-2,
                 .a = planes, .b = h, .c = w, .d = k, .e = st, .f = pad};
    f.cs.oh = (h + 2 * pad - k) / st + 1;
    f.cs.ow = (w + 2 * pad - k) / st + 1;
    fd_param(&f, "x", planes * h * w, 1.0);
    f.p[0][0] = 5.0f;   /* a near-tie for the first window's maximum: a kink to skip */
    f.p[0][1] = 5.004f;
    f.nout = planes * f.cs.oh * f.cs.ow;
    f.out = fbuf(f.nout);
    f.iaux = calloc((size_t)f.nout, sizeof(int32_t));
    fd_run(&f, 2e-3);
    fd_free(&f);
}

static void finite_differences(void)
{
    sm_conv_shape c1 = {.n = 2, .cin = 3, .h = 6, .w = 5, .cout = 4, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    sm_conv_shape c2 = {.n = 3, .cin = 2, .h = 7, .w = 7, .cout = 3, .kh = 5, .kw = 5, .stride = 2, .pad = 2};
    sm_conv_shape c3 = {.n = 2, .cin = 4, .h = 3, .w = 4, .cout = 3, .kh = 1, .kw = 1, .stride = 1, .pad = 0};
    fd_conv("conv 3x3 s1 p1 (x,w,b)", c1, 1);
    fd_conv("conv 5x5 s2 p2 (x,w)", c2, 0);
    fd_conv("conv 1x1 (x,w,b)", c3, 1);
    sm_conv_shape c4 = {.n = 2, .cin = 4, .h = 5, .w = 6, .cout = 6, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .groups = 2};
    sm_conv_shape c5 = {.n = 2, .cin = 5, .h = 7, .w = 6, .cout = 5, .kh = 3, .kw = 3, .stride = 2, .pad = 1, .groups = 5};
    sm_conv_shape c6 = {.n = 1, .cin = 3, .h = 6, .w = 6, .cout = 6, .kh = 5, .kw = 3, .stride = 1, .pad = 1, .groups = 3};
    fd_conv("conv 3x3 groups 2 (x,w,b)", c4, 1);
    fd_conv("conv depthwise s2 (x,w)", c5, 0);
    fd_conv("conv 5x3 groups 3, x2 (x,w,b)", c6, 1);
    {
        static const char *names[] = {"relu6 (x)", "hardswish (x)", "hardsigmoid (x)", "sigmoid (x)"};
        for (int k = 0; k < 4; k++) {
            fd_case f = {.name = names[k], .fwd = act2_fwd, .bwd = act2_bwd, .state = act2_state,
                         .h = 1e-2, .a = k};
            fd_param(&f, "x", 60, 4.0);
            /* kinks to skip; the smooth ones are checked right next to them */
            const float planted[] = {-3.004f, 3.003f, 0.004f, 5.996f};
            for (int i = 0; i < 4; i++) f.p[0][i] = planted[i];
            f.nout = 60; f.out = fbuf(60);
            fd_run(&f, 1e-3);
            fd_free(&f);
        }
    }
    {
        fd_case f = {.name = "adaptive avgpool 7x5->3x2 (x)", .fwd = adapt_fwd, .bwd = adapt_bwd,
                     .h = 1e-2, .a = 3, .b = 7, .c = 5, .d = 3, .e = 2};
        fd_param(&f, "x", 105, 1.0);
        f.nout = 18; f.out = fbuf(18);
        fd_run(&f, 1e-3);
        fd_free(&f);
    }
    fd_bn("bn2d (x,gamma,beta)", 1, 3, 40);
    fd_bn("bn1d (x,gamma,beta)", 10, 4, 1);
    fd_bn("bn (N,C,L) (x,gamma,beta)", 3, 2, 5);
    {
        fd_case f = {.name = "relu (x)", .fwd = relu_fwd, .bwd = relu_bwd, .state = relu_state, .h = 1e-2};
        fd_param(&f, "x", 60, 1.0);
        for (int i = 0; i < 6; i++) f.p[0][i] = i % 2 ? 0.004f : -0.003f;   /* kinks to skip */
        f.nout = 60; f.out = fbuf(60);
        fd_run(&f, 1e-3);
        fd_free(&f);
    }
    {
        fd_case f = {.name = "prelu (x,a)", .fwd = prelu_fwd, .bwd = prelu_bwd, .state = prelu_state,
                     .h = 1e-2, .a = 2, .b = 3, .c = 7};
        fd_param(&f, "x", 42, 1.0);
        fd_param(&f, "a", 3, 0.5);
        f.nout = 42; f.out = fbuf(42);
        fd_run(&f, 1e-3);
        fd_free(&f);
    }
    {
        fd_case f = {.name = "dropout (x)", .fwd = drop_fwd, .bwd = drop_bwd, .h = 1e-2, .a = 12, .b = 5};
        fd_param(&f, "x", 60, 1.0);
        f.nout = 60; f.out = fbuf(60); f.aux[0] = fbuf(12);
        fd_run(&f, 1e-3);
        fd_free(&f);
    }
    fd_pool("maxpool k2 s2 (x)", 1, 3, 6, 6, 2, 2, 0);
    fd_pool("maxpool k3 s2 p1 7x7 (x)", 1, 2, 7, 7, 3, 2, 1);
    fd_pool("avgpool k3 s2 p1 (x)", 0, 2, 7, 6, 3, 2, 1);
    {
        fd_case f = {.name = "gap (x)", .fwd = gap_fwd, .bwd = gap_bwd, .h = 1e-2, .a = 3, .b = 2, .c = 9};
        fd_param(&f, "x", 54, 1.0);
        f.nout = 6; f.out = fbuf(6);
        fd_run(&f, 1e-3);
        fd_free(&f);
    }
    {
        fd_case f = {.name = "flatten (x)", .fwd = flat_fwd, .bwd = flat_bwd, .h = 1e-2, .a = 3, .b = 2, .c = 4};
        fd_param(&f, "x", 24, 1.0);
        f.nout = 24; f.out = fbuf(24);
        fd_run(&f, 1e-3);
        fd_free(&f);
    }
    {
        fd_case f = {.name = "linear (x,w,b)", .fwd = lin_fwd, .bwd = lin_bwd, .h = 1e-2, .a = 5, .b = 7, .c = 4};
        fd_param(&f, "x", 35, 1.0);
        fd_param(&f, "w", 28, 0.5);
        fd_param(&f, "b", 4, 1.0);
        f.nout = 20; f.out = fbuf(20);
        fd_run(&f, 2e-3);
        fd_free(&f);
    }
    {
        fd_case f = {.name = "l2norm (x)", .fwd = l2_fwd, .bwd = l2_bwd, .h = 1e-3, .a = 4, .b = 8};
        fd_param(&f, "x", 32, 1.0);
        f.nout = 32; f.out = fbuf(32); f.aux[0] = fbuf(4);
        fd_run(&f, 5e-3);
        fd_free(&f);
    }
    printf("fd: worst relative error over all kernels %.3g\n", g_fd_worst_all);
}

/* ------------------------------------------------------------- (c) fast vs naive conv */

/* The inference form conv -> eval batch norm [-> ReLU] in one pass
 * (sm_conv2d_forward_bn with sm_bn_fold) against the three layers run one by
 * one (naive conv with bias, sm_bn_forward_eval, sm_relu_forward), with and
 * without ReLU and beta; then with a bias and running mean near 1000 and a
 * spread of 1 (|mean| >> std) against the same map in double: a fold that
 * subtracted the mean after scaling would lose ~1e-4 there. ref is the naive
 * conv's output with bias b. */
static void conv_bn_vs_naive(const sm_conv_shape *s, const char *label, const float *x,
                             const float *w, const float *b, const float *ref, float *scratch, double tol)
{
    int64_t C = s->cout, P = s->n * s->oh * s->ow, no = C * P;
    float *gam = frand(C, 1.0), *bet = frand(C, 1.0), *rm = frand(C, 1.0), *rv = fbuf(C);
    float *center = fbuf(C), *scale = fbuf(C), *want = fbuf(no), *got = fbuf(no);
    for (int64_t c = 0; c < C; c++) rv[c] = 0.2f + (float)fabs(sm_rng_normal(&rng));
    char what[200];
    for (int v = 0; v < 4; v++) {   /* 0: ReLU, 1: none, 2: ReLU without beta, 3: ReLU6 */
        sm_act act = v == 1 ? SM_ACT_NONE : v == 3 ? SM_ACT_RELU6 : SM_ACT_RELU;
        const float *beta = v == 2 ? NULL : bet;
        if (v == 3)   /* a spread of ~3x the unit one, so that 6 clips */
            for (int64_t c = 0; c < C; c++) { gam[c] *= 3.0f; bet[c] *= 3.0f; }
        sm_bn_forward_eval(want, ref, gam, beta, rm, rv, 1, C, P, 1e-5f);
        if (act == SM_ACT_RELU) sm_relu_forward(want, want, no);
        double pre = 0.0;   /* ReLU6 clips the large values: the floor is of the pre-activation */
        for (int64_t j = 0; j < no; j++) pre = fmax(pre, fabs((double)want[j]));
        if (act == SM_ACT_RELU6) sm_relu6_forward(want, want, no);
        sm_bn_fold(center, scale, b, gam, rm, rv, C, 1e-5f);
        sm_conv2d_forward_bn(got, x, w, center, scale, beta, act, s, scratch);
        if (v == 3)
            for (int64_t c = 0; c < C; c++) { gam[c] /= 3.0f; bet[c] /= 3.0f; }
        snprintf(what, sizeof what, "%s bn-fold%s%s", label,
                 act == SM_ACT_RELU ? "+relu" : act == SM_ACT_RELU6 ? "+relu6" : "", beta ? "" : " no-beta");
        char full[256];
        snprintf(full, sizeof full, "fast/naive %s", what);
        th_close(full, got, want, no, tol, fmax(0.05 * pre, 1e-30));
    }
    /* far from zero: conv output = conv(x) + ~1000, running mean ~1000 */
    float *big = fbuf(C), *plain = fbuf(no);
    sm_conv2d_forward_naive(plain, x, w, NULL, s);
    for (int64_t c = 0; c < C; c++) {
        big[c] = 1000.0f + (float)sm_rng_normal(&rng);
        rm[c] = big[c] + (float)sm_rng_normal(&rng);
        rv[c] = 1.0f;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < P; j++) {
            double y = ((double)plain[c * P + j] - ((double)rm[c] - (double)big[c])) *
                       ((double)gam[c] / sqrt(1.0 + 1e-5)) + (double)bet[c];
            want[c * P + j] = (float)(y > 0 ? y : 0);
        }
    sm_bn_fold(center, scale, big, gam, rm, rv, C, 1e-5f);
    sm_conv2d_forward_bn(got, x, w, center, scale, bet, SM_ACT_RELU, s, scratch);
    snprintf(what, sizeof what, "%s bn-fold mean 1000", label);
    th_close_case("fast/naive", what, got, want, no, tol);
    free(gam); free(bet); free(rm); free(rv); free(center); free(scale); free(want); free(got);
    free(big); free(plain);
}

static void conv_vs_naive(sm_conv_shape s, int threads, bool want_shared)
{
    char label[96];
    CHECK(sm_conv_shape_init(&s) == 0);
    sm_threads_set(threads);
    /* Winograd F(4x4, 3x3) rounds ~10x more than a direct sum (constants up to
     * 8 and 1/24): ~1e-5 of the largest output; a wrong transform is O(1) off */
    bool wino = sm_conv2d_winograd_applies(&s), wino_dx = sm_conv2d_winograd_applies_dinp(&s);
    bool shared = sm_conv2d_shared_applies(&s);
    CHECK(shared == want_shared);   /* each path is tested where it is meant to be */
    /* dx sums Cout*KH*KW terms per element (512 for a wide 1x1) */
    double tol_o = wino ? 3e-4 : TOL;
    double tol_dx = wino_dx ? 3e-4 : fmax(TOL, 1e-6 * sqrt((double)(s.cout * s.kh * s.kw)));
    snprintf(label, sizeof label, "conv N%lld %lldx%lld c%lld->%lld k%lldx%lld s%lld p%lld g%lld t%d%s",
             (long long)s.n, (long long)s.h, (long long)s.w, (long long)s.cin, (long long)s.cout,
             (long long)s.kh, (long long)s.kw, (long long)s.stride, (long long)s.pad,
             (long long)(s.groups > 1 ? s.groups : 1), threads,
             wino ? " winograd" : shared ? " shared" : "");
    int64_t nx = s.cin * s.n * s.h * s.w, nw = s.cout * (s.cin / (s.groups > 1 ? s.groups : 1)) * s.kh * s.kw;
    int64_t no = s.cout * s.n * s.oh * s.ow;
    /* float sums of K terms differ by ~sqrt(K) roundings between the
     * blocked gemm and the naive loop: the weight gradient sums N*OH*OW */
    double tol_dw = fmax(TOL, 1e-6 * sqrt((double)(s.n * s.oh * s.ow)));
    float *x = frand(nx, 1.0), *w = frand(nw, 0.3), *b = frand(s.cout, 1.0), *dout = frand(no, 1.0);
    float *o1 = fbuf(no), *o2 = fbuf(no);
    float *scratch = fbuf((int64_t)sm_conv2d_scratch_floats(&s, sm_threads_get()));
    sm_conv2d_forward(o1, x, w, b, &s, scratch);
    sm_conv2d_forward_naive(o2, x, w, b, &s);
    char what[160];
    snprintf(what, sizeof what, "%s out", label);
    th_close_case("fast/naive", what, o1, o2, no, tol_o);
    conv_bn_vs_naive(&s, label, x, w, b, o2, scratch, tol_o);
    if (wino) {   /* exact (training) forwards and Winograd off: im2col, the same bits */
        float *o3 = fbuf(no), *o4 = fbuf(no);
        sm_conv_shape e = s;
        e.exact = true;
        sm_conv2d_forward(o3, x, w, b, &e, scratch);
        sm_conv_set_winograd(false);
        CHECK(!sm_conv2d_winograd_applies(&s));
        sm_conv2d_forward(o4, x, w, b, &s, scratch);
        sm_conv_set_winograd(true);
        CHECK(memcmp(o3, o4, (size_t)no * sizeof(float)) == 0);   /* exact forward = Winograd off */
        snprintf(what, sizeof what, "%s exact out", label);
        th_close_case("fast/naive", what, o3, o2, no, TOL);
        free(o3); free(o4);
    }
    /* gradients start non-zero (accumulate rule) */
    float *dx1 = frand(nx, 1.0), *dw1 = frand(nw, 1.0), *db1 = frand(s.cout, 1.0);
    float *dx2 = fdup(dx1, nx), *dw2 = fdup(dw1, nw), *db2 = fdup(db1, s.cout);
    sm_conv2d_backward(dx1, dw1, db1, dout, x, w, &s, scratch);
    sm_conv2d_backward_naive(dx2, dw2, db2, dout, x, w, &s);
    snprintf(what, sizeof what, "%s dx", label);
    th_close_case("fast/naive", what, dx1, dx2, nx, tol_dx);
    snprintf(what, sizeof what, "%s dw", label);
    th_close_case("fast/naive", what, dw1, dw2, nw, tol_dw);
    snprintf(what, sizeof what, "%s db", label);
    th_close_case("fast/naive", what, db1, db2, s.cout, TOL);
    /* NULL gradients are skipped: only dweight, then only dinp */
    float *dwo = fbuf(nw), *dxo = fbuf(nx), *dwn = fbuf(nw), *dxn = fbuf(nx);
    sm_conv2d_backward(NULL, dwo, NULL, dout, x, w, &s, scratch);
    sm_conv2d_backward(dxo, NULL, NULL, dout, x, w, &s, scratch);
    sm_conv2d_backward_naive(dxn, dwn, NULL, dout, x, w, &s);
    snprintf(what, sizeof what, "%s dw only", label);
    th_close_case("fast/naive", what, dwo, dwn, nw, tol_dw);
    snprintf(what, sizeof what, "%s dx only", label);
    th_close_case("fast/naive", what, dxo, dxn, nx, tol_dx);
    free(x); free(w); free(b); free(dout); free(o1); free(o2); free(scratch);
    free(dx1); free(dw1); free(db1); free(dx2); free(dw2); free(db2);
    free(dwo); free(dxo); free(dwn); free(dxn);
}

static void fast_vs_naive(void)
{
    static const int64_t shapes[][10] = {
        /* n, cin, h, w, cout, kh, kw, stride, pad[, groups] */
        {3, 1, 5, 5, 4, 3, 3, 2, 1},
        {3, 2, 5, 5, 3, 5, 5, 1, 2},
        {3, 3, 5, 5, 2, 1, 1, 1, 0},   /* pointwise path */
        {3, 2, 5, 5, 2, 1, 1, 2, 0},   /* 1x1 strided: im2col path */
        {3, 2, 5, 5, 2, 3, 3, 2, 2},
        {3, 2, 5, 5, 3, 5, 5, 2, 0},
        {5, 3, 9, 7, 4, 3, 3, 2, 0},
        {3, 2, 6, 5, 3, 3, 1, 1, 1},   /* non-square kernel */
        {2, 2, 4, 4, 3, 3, 3, 1, 2},   /* padding larger than needed */
        {20, 1, 28, 28, 4, 3, 3, 1, 1}, /* chunks of 18 images: 18 + 2 */
        {37, 16, 14, 14, 8, 3, 3, 1, 1}, /* chunks of 4: 9*4 + 1 */
        {1, 16, 28, 28, 16, 3, 3, 1, 1}, /* one chunk: columns split across threads */
        {2, 8, 10, 10, 6, 1, 1, 1, 0},  /* one chunk, pointwise */
        {1, 3, 33, 29, 5, 3, 3, 2, 1},  /* one chunk, strided, odd sizes */
        {3, 2, 2, 3, 3, 5, 5, 1, 2},    /* "same" with shifts past a whole plane */
        {3, 4, 6, 6, 6, 3, 3, 1, 1, 2},  /* grouped */
        {4, 8, 9, 9, 8, 3, 3, 2, 1, 8},  /* depthwise strided */
        {37, 16, 14, 14, 16, 3, 3, 1, 1, 16}, /* depthwise, many planes (threads split them) */
        {2, 6, 11, 10, 6, 5, 5, 2, 2, 6}, /* depthwise 5x5, odd sizes */
        {3, 3, 5, 5, 6, 3, 3, 1, 1, 3},  /* depth multiplier 2 */
        {3, 8, 5, 5, 4, 1, 1, 1, 0, 4},  /* grouped pointwise */
        {1, 32, 24, 24, 32, 3, 3, 1, 1, 32}, /* depthwise, one image */
        /* Winograd F(4x4, 3x3): */
        {5, 32, 13, 11, 33, 3, 3, 1, 1},  /* partial tiles at both edges, odd Cout */
        {8, 40, 9, 10, 32, 3, 3, 1, 0},   /* no padding (the input gradient pads 2) */
        {8, 32, 8, 8, 32, 3, 3, 1, 2},    /* padding 2 (the input gradient pads 0) */
        {1, 48, 24, 24, 40, 3, 3, 1, 1},  /* one image, 36 tiles */
        {12, 32, 40, 40, 32, 3, 3, 1, 1}, /* two chunks (9 + 3 images), 100 tiles each */
        {2, 64, 16, 16, 64, 3, 3, 1, 1, 2}, /* grouped: two dense 32 -> 32 */
        {1, 32, 20, 20, 32, 3, 3, 1, 1},  /* 25 tiles: too few, im2col */
        /* shared mode (more output channels than a per-thread chunk's columns),
         * from here on: */
        {4, 64, 4, 4, 256, 3, 3, 1, 1},   /* one chunk; dx as a conv, shared too */
        {4, 64, 8, 8, 256, 3, 3, 2, 1},   /* strided: dx by col2im */
        {8, 64, 4, 4, 512, 1, 1, 1, 0},   /* pointwise, in place */
        {44, 512, 2, 2, 8, 7, 7, 2, 3},   /* two chunks of 22, strided, 1x1 out */
        {44, 512, 1, 1, 8, 7, 7, 1, 3},   /* two chunks of 22, "same" */
        {3, 64, 4, 4, 512, 3, 3, 1, 1, 2}, /* grouped: two shared 32 -> 256 */
    };
    const size_t first_shared = sizeof shapes / sizeof shapes[0] - 6;
    for (int t = 1; t <= 2; t++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int64_t *v = shapes[i];
            sm_conv_shape s = {.n = v[0], .cin = v[1], .h = v[2], .w = v[3], .cout = v[4],
                               .kh = v[5], .kw = v[6], .stride = v[7], .pad = v[8], .groups = v[9]};
            conv_vs_naive(s, t, i >= first_shared);
        }
    sm_conv_shape bad = {.n = 1, .cin = 1, .h = 3, .w = 3, .cout = 1, .kh = 5, .kw = 5, .stride = 1, .pad = 0};
    CHECK(sm_conv_shape_init(&bad) == -1);
    bad.pad = 1;
    CHECK(sm_conv_shape_init(&bad) == 0 && bad.oh == 1 && bad.ow == 1);
    bad.stride = 0;
    CHECK(sm_conv_shape_init(&bad) == -1);
}

/* ------------------------------------------------------------- (d) determinism */

static void determinism(void)
{
    sm_threads_set(2);
    sm_conv_shape s = {.n = 13, .cin = 8, .h = 14, .w = 14, .cout = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    CHECK(sm_conv_shape_init(&s) == 0);
    int64_t nx = s.cin * s.n * s.h * s.w, nw = s.cout * s.cin * 9, no = s.cout * s.n * s.oh * s.ow;
    float *x = frand(nx, 1.0), *w = frand(nw, 0.3), *b = frand(s.cout, 1.0), *dout = frand(no, 1.0);
    float *scratch = fbuf((int64_t)sm_conv2d_scratch_floats(&s, sm_threads_get()));
    float *out[2], *dx[2], *dw[2], *db[2], *bo[2], *bdx[2], *bdg[2], *bdb[2];
    float *g = frand(s.cin, 1.0), *be = frand(s.cin, 1.0), mean[8], invstd[8];
    for (int r = 0; r < 2; r++) {
        out[r] = fbuf(no); dx[r] = fbuf(nx); dw[r] = fbuf(nw); db[r] = fbuf(s.cout);
        sm_conv2d_forward(out[r], x, w, b, &s, scratch);
        sm_conv2d_backward(dx[r], dw[r], db[r], dout, x, w, &s, scratch);
        bo[r] = fbuf(nx); bdx[r] = fbuf(nx); bdg[r] = fbuf(s.cin); bdb[r] = fbuf(s.cin);
        sm_bn_forward_train(bo[r], mean, invstd, NULL, NULL, x, g, be, 1, s.cin, nx / s.cin, 0.1f, 1e-5f);
        sm_bn_backward(bdx[r], bdg[r], bdb[r], x, x, mean, invstd, g, 1, s.cin, nx / s.cin);
    }
    CHECK(memcmp(out[0], out[1], (size_t)no * 4) == 0);
    CHECK(memcmp(dx[0], dx[1], (size_t)nx * 4) == 0);
    CHECK(memcmp(dw[0], dw[1], (size_t)nw * 4) == 0);
    CHECK(memcmp(db[0], db[1], (size_t)s.cout * 4) == 0);
    CHECK(memcmp(bo[0], bo[1], (size_t)nx * 4) == 0);
    CHECK(memcmp(bdx[0], bdx[1], (size_t)nx * 4) == 0);
    CHECK(memcmp(bdg[0], bdg[1], (size_t)s.cin * 4) == 0);
    printf("ok   determinism: conv and bn forward/backward bit-identical over two runs\n");
    for (int r = 0; r < 2; r++) {
        free(out[r]); free(dx[r]); free(dw[r]); free(db[r]);
        free(bo[r]); free(bdx[r]); free(bdg[r]); free(bdb[r]);
    }
    free(x); free(w); free(b); free(dout); free(scratch); free(g); free(be);

    /* depthwise: per-plane partials summed in image order, so the result
     * does not depend on the thread count at all */
    sm_conv_shape d = {.n = 9, .cin = 24, .h = 14, .w = 14, .cout = 24, .kh = 3, .kw = 3,
                       .stride = 2, .pad = 1, .groups = 24};
    CHECK(sm_conv_shape_init(&d) == 0);
    int64_t dnx = d.cin * d.n * d.h * d.w, dnw = d.cout * 9, dno = d.cout * d.n * d.oh * d.ow;
    float *dxin = frand(dnx, 1.0), *dwt = frand(dnw, 0.3), *ddo = frand(dno, 1.0);
    float *dsc = fbuf((int64_t)sm_conv2d_scratch_floats(&d, 4));
    float *o[2], *gx[2], *gw[2];
    for (int r = 0; r < 2; r++) {
        sm_threads_set(r ? 4 : 1);
        o[r] = fbuf(dno); gx[r] = fbuf(dnx); gw[r] = fbuf(dnw);
        sm_conv2d_forward(o[r], dxin, dwt, NULL, &d, dsc);
        sm_conv2d_backward(gx[r], gw[r], NULL, ddo, dxin, dwt, &d, dsc);
    }
    sm_threads_set(2);
    CHECK(memcmp(o[0], o[1], (size_t)dno * 4) == 0);
    CHECK(memcmp(gx[0], gx[1], (size_t)dnx * 4) == 0);
    CHECK(memcmp(gw[0], gw[1], (size_t)dnw * 4) == 0);
    printf("ok   determinism: depthwise conv bit-identical on 1 and 4 threads\n");
    for (int r = 0; r < 2; r++) { free(o[r]); free(gx[r]); free(gw[r]); }
    free(dxin); free(dwt); free(ddo); free(dsc);
}

/* ------------------------------------------------------------- dropout */

static void dropout(void)
{
    const int64_t groups = 20000, gs = 3, n = groups * gs;
    const float p = 0.3f;
    float *x = frand(n, 1.0), *out = fbuf(n), *mask = fbuf(groups), *out2 = fbuf(n),
          *mask2 = fbuf(groups);
    sm_threads_set(1);
    sm_dropout_forward(out, mask, x, groups, gs, p, 1234);
    sm_threads_set(2);
    sm_dropout_forward(out2, mask2, x, groups, gs, p, 1234);
    CHECK(memcmp(mask, mask2, (size_t)groups * 4) == 0 && memcmp(out, out2, (size_t)n * 4) == 0);
    int64_t kept = 0, badmask = 0, badout = 0;
    for (int64_t g = 0; g < groups; g++) {
        kept += mask[g] != 0.0f;
        badmask += !(mask[g] == 0.0f || mask[g] == 1.0f / (1.0f - p));
        for (int64_t i = 0; i < gs; i++) badout += out[g * gs + i] != x[g * gs + i] * mask[g];
    }
    double frac = (double)kept / (double)groups;   /* sd of the fraction ~ 0.0032 */
    CHECKF(fabs(frac - (1.0 - p)) < 0.02, "kept fraction %.4f, want %.2f", frac, 1.0 - p);
    CHECK(badmask == 0);
    CHECK(badout == 0);
    sm_dropout_forward(out2, mask2, x, groups, gs, p, 1235);
    CHECK(memcmp(mask, mask2, (size_t)groups * 4) != 0);   /* another seed, another mask */
    sm_dropout_forward(out2, mask2, x, groups, gs, 0.0f, 1234);
    CHECK(memcmp(out2, x, (size_t)n * 4) == 0);
    int64_t ones = 0;
    for (int64_t g = 0; g < groups; g++) ones += mask2[g] == 1.0f;
    CHECK(ones == groups);
    float *dx = fbuf(n);
    for (int64_t i = 0; i < n; i++) dx[i] = 1.0f;
    sm_dropout_backward(dx, x, mask, groups, gs);
    int64_t baddx = 0;
    for (int64_t i = 0; i < n; i++) baddx += dx[i] != 1.0f + x[i] * mask[i / gs];
    CHECK(baddx == 0);
    printf("ok   dropout: kept fraction %.4f for p=%.1f\n", frac, (double)p);
    free(x); free(out); free(mask); free(out2); free(mask2); free(dx);
}

int main(void)
{
    sm_rng_seed(&rng, 42);
    sm_threads_set(2);
    fx = fx_open(FIXTURE);
    CHECKF(fx != NULL, "cannot load %s", FIXTURE);
    if (fx) {
        fixture_conv();
        fixture_bn();
        fixture_act();
        fixture_pool();
        fixture_linear();
        fixture_norm();
        fixture_act2();
        fixture_adaptive();
    }
    finite_differences();
    fast_vs_naive();
    determinism();
    dropout();
    fx_close(fx);
    return th_done();
}
