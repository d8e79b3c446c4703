/* test_heads.c - the loss heads (src/head.c), optimizers and schedules (src/optim.c) against
 *   (a) PyTorch fixtures (tests/fixtures/heads_ref.bin, tools/gen_ref.py): for every head
 *       (softmax, NormFace, CosFace, ArcFace th/mm and easy margin, default and other s, m)
 *       on a batch whose target cosines lie on both sides of every switch point: cos (or
 *       logits), loss, dL/dW (dL/db) through a model whose backbone is just `flatten`,
 *       dL/demb through the head interface, predictions, the accumulate rule;
 *   (b) finite differences in double (central, steps h and 2h, Richardson-extrapolated) of
 *       the float implementation's loss with respect to every element of emb and W (and b),
 *       on fresh random batches; a perturbation that moves a target cosine across ArcFace's
 *       switch point (where phi jumps) is skipped and counted, and each ArcFace batch plants
 *       such elements;
 *   (c) torch.optim.SGD (momentum, Nesterov, none) and AdamW, step by step, and the
 *       CosineAnnealingLR / StepLR learning rates against sm_sched_lr.
 * Run from the repository root. */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "head_tests.h"
#include "head.h"
#include "model.h"
#include "rng.h"
#include "simile.h"

#define FIXTURE "tests/fixtures/heads_ref.bin"
#define TOL 1e-5        /* float32 against float64 PyTorch: heads */
#define TOL_OPT 1e-6    /* optimizers and schedules */
/* Finite differences: step relative to the row norm of the perturbed tensor, chosen for
 * float32 (smaller steps drown in the rounding of the float logits, larger ones in the
 * curvature at s = 30..64). Over 60 random batches the worst error was 1.8e-3 (a small
 * softmax dL/db element, at the rounding-noise bound), typically 2e-4..8e-4; a wrong
 * gradient (the ArcFace margin passed straight through, a dropped s) gives 0.5 and more. */
#define FD_H 5e-3
#define FD_TOL 5e-3

/* ------------------------------------------------------------- (a) head fixtures */

static void fixture_heads(void)
{
    int ncases = 0;
    for (int i = 0; ; i++) {
        char cs[64];
        snprintf(cs, sizeof cs, "head%d", i);
        if (!fx_has_case(fx, cs)) break;
        const float *cfg = get(cs, "cfg", 7);
        if (!cfg) continue;
        sm_head_config hc = {.kind = (sm_head_kind)cfg[0], .scale = cfg[4], .margin = cfg[5],
                             .easy_margin = cfg[6] != 0.0f};
        int64_t n = (int64_t)cfg[1], d = (int64_t)cfg[2], c = (int64_t)cfg[3];
        bool softmax = hc.kind == SM_HEAD_SOFTMAX;
        const char *hn = sm_head_name(hc.kind);
        snprintf(cs, sizeof cs, "head%d %s%s s=%g m=%g", i, hn ? hn : "?",
                 hc.easy_margin ? " easy" : "", (double)hc.scale, (double)hc.margin);
        char fxn[16];
        snprintf(fxn, sizeof fxn, "head%d", i);
        const float *emb = get(fxn, "emb", n * d), *w = get(fxn, "w", c * d),
                    *fl = get(fxn, "labels", n), *cosr = get(fxn, "cos", n * c),
                    *loss_ref = get(fxn, "loss", 1), *demb_ref = get(fxn, "demb", n * d),
                    *dw_ref = get(fxn, "dw", c * d);
        const float *b = softmax ? get(fxn, "b", c) : NULL, *db_ref = softmax ? get(fxn, "db", c) : NULL;
        sm_model *m = head_model(&hc, d, c);
        if (!m || !emb || !w || !fl || !cosr || !loss_ref || !demb_ref || !dw_ref ||
            (softmax && (!b || !db_ref))) {
            sm_model_free(m);
            continue;
        }
        ncases++;
        int wid = tensor_id(m, "head.weight", c * d), bid = softmax ? tensor_id(m, "head.bias", c) : -1;
        CHECK(softmax || sm_model_ntensors(m) == 1);   /* no bias on a margin head */
        if (wid < 0 || (softmax && bid < 0)) { sm_model_free(m); continue; }
        memcpy(tensor_data(m, wid), w, sizeof(float) * (size_t)(c * d));
        if (softmax) memcpy(tensor_data(m, bid), b, sizeof(float) * (size_t)c);
        int32_t *labels = xcalloc(n, sizeof *labels), *pred = xcalloc(n, sizeof *pred);
        int64_t want_correct = 0, badpred = 0;
        for (int64_t k = 0; k < n; k++) {
            labels[k] = (int32_t)fl[k];
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (cosr[k * c + j] > cosr[k * c + best]) best = j;
            want_correct += best == labels[k];
        }

        /* the training step of the whole model: loss, cos, dW, db, correct */
        sm_err err = {0};
        double loss = NAN;
        int64_t correct = -1;
        CHECKF(sm_model_train_step(m, emb, labels, n, 0, &loss, &correct, &err) == SM_OK, "%s", err.msg);
        cmp_scalar(cs, "loss", loss, loss_ref[0], TOL);
        sm_head *h = m->head;
        th_close_case(cs, softmax ? "logits" : "cos", h->cos, cosr, n * c, TOL);
        th_close_case(cs, "dL/dW (model step)", tensor_grad(m, wid), dw_ref, c * d, TOL);
        if (softmax) th_close_case(cs, "dL/db (model step)", tensor_grad(m, bid), db_ref, c, TOL);
        CHECKF(correct == want_correct, "%s: %lld correct, want %lld", cs, (long long)correct,
               (long long)want_correct);

        /* dL/demb through the head interface; a second forward + backward accumulates */
        float *demb = xcalloc(n * d, sizeof *demb), *demb2 = xcalloc(n * d, sizeof *demb2);
        float *dw1 = xcalloc(c * d, sizeof *dw1), *twice = xcalloc(n * d > c * d ? n * d : c * d, sizeof *twice);
        zero_grads(m);
        h->ops->forward(h, m, emb, labels, n, NULL);
        h->ops->backward(h, m, emb, labels, n, demb);
        th_close_case(cs, "dL/demb (head)", demb, demb_ref, n * d, TOL);
        th_close_case(cs, "dL/dW (head)", tensor_grad(m, wid), dw_ref, c * d, TOL);
        memcpy(dw1, tensor_grad(m, wid), sizeof(float) * (size_t)(c * d));
        memcpy(demb2, demb, sizeof(float) * (size_t)(n * d));
        h->ops->forward(h, m, emb, labels, n, NULL);
        h->ops->backward(h, m, emb, labels, n, demb2);
        for (int64_t k = 0; k < n * d; k++) twice[k] = 2.0f * demb[k];
        th_close_case(cs, "accumulate dL/demb", demb2, twice, n * d, 1e-6);
        for (int64_t k = 0; k < c * d; k++) twice[k] = 2.0f * dw1[k];
        th_close_case(cs, "accumulate dL/dW", tensor_grad(m, wid), twice, c * d, 1e-6);

        /* predictions: the argmax of cos (margin heads) or of the logits */
        CHECKF(sm_model_predict(m, emb, n, pred, &err) == SM_OK, "%s", err.msg);
        for (int64_t k = 0; k < n; k++) {
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (cosr[k * c + j] > cosr[k * c + best]) best = j;
            badpred += pred[k] != best;
        }
        CHECKF(badpred == 0, "%s: %lld predictions differ from the argmax of the reference", cs,
               (long long)badpred);
        free(labels); free(pred); free(demb); free(demb2); free(dw1); free(twice);
        sm_model_free(m);
    }
    CHECKF(ncases >= 5, "only %d head cases in %s", ncases, FIXTURE);
}

/* ------------------------------------------------------------- (b) finite differences */

/* cos θ at or below which ArcFace leaves cos(θ + m), as src/head.c decides it. */
static double switch_point(const sm_head_config *hc)
{
    return hc->easy_margin ? 0.0 : cos(M_PI - (double)hc->margin);
}

/* Which side of the switch each sample's target cosine is on (0 for heads without one). */
static uint64_t branch_state(const sm_head *h, const int32_t *labels, int64_t n)
{
    if (h->cfg.kind != SM_HEAD_ARCFACE) return 0;
    double th = switch_point(&h->cfg);
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++) s |= (uint64_t)((double)h->cos[i * h->c + labels[i]] > th) << i;
    return s;
}

/* A fresh random batch: class weights with row norms 0.5..3, embeddings with norms 0.5..3
 * at a chosen target cosine to their class weight (uniform in [-0.98, 0.98], away from ±1
 * where ArcFace's derivative 1/sin θ blows up). For ArcFace, samples 0 and 1 are planted
 * 2e-5 on either side of the switch point (their perturbations cross it and must be
 * skipped), samples 2 and 3 clear of it on either side (checked). */
static void fd_batch(float *emb, float *w, int32_t *labels, int64_t n, int64_t d, int64_t c,
                     const sm_head_config *hc)
{
    double th = switch_point(hc);
    for (int64_t j = 0; j < c; j++) {
        double scale = 0.5 + 2.5 * sm_rng_double(&rng);
        for (int64_t k = 0; k < d; k++) w[j * d + k] = (float)(scale * sm_rng_normal(&rng));
    }
    for (int64_t i = 0; i < n; i++) {
        /* pairs of the first classes, so the planted pair only costs W one row of checks */
        labels[i] = (int32_t)(i < 2 * c ? i / 2 : (int64_t)sm_rng_below(&rng, (uint64_t)c));
        if (hc->kind == SM_HEAD_SOFTMAX) {
            for (int64_t k = 0; k < d; k++) emb[i * d + k] = (float)sm_rng_normal(&rng);
            continue;
        }
        double t = -0.98 + 1.96 * sm_rng_double(&rng);
        if (hc->kind == SM_HEAD_ARCFACE && i < 4)
            t = th + (i == 0 ? 2e-5 : i == 1 ? -2e-5 : i == 2 ? 0.05 : -fmin(0.05, (1.0 + th) / 2));
        const float *wy = w + labels[i] * d;
        double wn = 0.0, u[64], uw = 0.0, un = 0.0;
        assert(d <= 64);
        for (int64_t k = 0; k < d; k++) wn += (double)wy[k] * wy[k];
        wn = sqrt(wn);
        for (int64_t k = 0; k < d; k++) { u[k] = sm_rng_normal(&rng); uw += u[k] * wy[k] / wn; }
        for (int64_t k = 0; k < d; k++) { u[k] -= uw * wy[k] / wn; un += u[k] * u[k]; }
        un = sqrt(un);
        double r = 0.5 + 2.5 * sm_rng_double(&rng);
        for (int64_t k = 0; k < d; k++)
            emb[i * d + k] = (float)(r * (t * wy[k] / wn + sqrt(1.0 - t * t) * u[k] / un));
    }
}

static void finite_differences(void)
{
    enum { N = 16, D = 8, C = 6 };
    struct { const char *name; bool easy; float scale, margin; } heads[] = {
        {"softmax", false, 0, 0}, {"normface", false, 0, 0}, {"cosface", false, 0, 0},
        {"arcface", false, 0, 0}, {"arcface", true, 0, 0}, {"arcface", false, 64.0f, 0.2f},
        {"cosface", false, 16.0f, 0.2f},
    };
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        sm_head_config hc;
        sm_head_config_default(&hc, heads[k].name, NULL);
        hc.easy_margin = heads[k].easy;
        if (heads[k].scale > 0) { hc.scale = heads[k].scale; hc.margin = heads[k].margin; }
        char label[96];
        snprintf(label, sizeof label, "%s%s s=%g m=%g", heads[k].name, hc.easy_margin ? " easy" : "",
                 (double)hc.scale, (double)hc.margin);
        sm_model *m = head_model(&hc, D, C);
        if (!m) continue;
        sm_err err = {0};
        CHECK(sm_model_plan(m, N, &err) == SM_OK);
        float emb[N * D], demb[N * D] = {0};
        int32_t labels[N];
        sm_head *h = m->head;
        float *w = sm_model_param(m, h->w);
        fd_batch(emb, w, labels, N, D, C, &hc);
        if (h->b >= 0)
            for (int64_t j = 0; j < C; j++) sm_model_param(m, h->b)[j] = (float)sm_rng_normal(&rng);
        zero_grads(m);
        h->ops->forward(h, m, emb, labels, N, NULL);
        h->ops->backward(h, m, emb, labels, N, demb);
        float *gw = xcalloc(C * D, sizeof *gw), gb[C];
        memcpy(gw, sm_model_grad(m, h->w), sizeof(float) * C * D);
        if (h->b >= 0) memcpy(gb, sm_model_grad(m, h->b), sizeof gb);
        struct { const char *what; float *x; const float *g; int64_t nx, row; } ps[3] = {
            {"emb", emb, demb, N * D, D}, {"W", w, gw, C * D, D},
            {"b", h->b >= 0 ? sm_model_param(m, h->b) : NULL, gb, C, C}};
        for (int p = 0; p < (h->b >= 0 ? 3 : 2); p++) {
            fd_stat r = fd_param(m, ps[p].x, ps[p].g, ps[p].nx, ps[p].row, FD_H, emb, labels, N, branch_state);
            double tol = FD_TOL;
            int ok = r.worst <= tol && r.checked >= ps[p].nx / 2 &&
                     (hc.kind != SM_HEAD_ARCFACE || p == 2 || r.skipped > 0);
            if (ok) th_passed++; else th_failed++;
            char what[128];
            snprintf(what, sizeof what, "%s dL/d%s", label, ps[p].what);
            printf("%s fd %-40s max rel err %.3g (%d checked, %d across the switch skipped, tol %.0e)\n",
                   ok ? "ok  " : "FAIL", what, r.worst, r.checked, r.skipped, tol);
        }
        free(gw);
        sm_model_free(m);
    }
}

/* ------------------------------------------------------------- (c) optimizers, schedules */

static void fixture_optim(void)
{
    int ncases = 0;
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "optim%d", i);
        if (!fx_has_case(fx, cs)) break;
        const float *cfg = get(cs, "cfg", 10);
        if (!cfg) continue;
        int64_t n = (int64_t)cfg[1], steps = (int64_t)cfg[2];
        sm_optim_config oc = {.kind = (sm_optim_kind)cfg[0], .lr = cfg[3], .momentum = cfg[4],
                              .nesterov = cfg[5] != 0.0f, .weight_decay = cfg[6], .beta1 = cfg[7],
                              .beta2 = cfg[8], .eps = cfg[9]};
        const float *p0 = get(cs, "p0", n), *g = get(cs, "grads", steps * n),
                    *ref = get(cs, "params", steps * n);
        sm_optim *o = NULL;
        sm_err err = {0};
        CHECKF(sm_optim_new(&o, &oc, n, &err) == SM_OK, "%s", err.msg);
        if (!p0 || !g || !ref || !o) { sm_optim_free(o); continue; }
        ncases++;
        float *p = xcalloc(n, sizeof *p);
        memcpy(p, p0, sizeof(float) * (size_t)n);
        for (int64_t k = 0; k < steps; k++) {
            char label[96], what[48];
            snprintf(label, sizeof label, "%s %s%s", cs, oc.kind == SM_OPTIM_ADAMW ? "adamw" : "sgd",
                     oc.kind == SM_OPTIM_ADAMW ? "" : oc.nesterov ? " nesterov" : oc.momentum > 0 ? " momentum" : " plain");
            snprintf(what, sizeof what, "params after step %lld", (long long)k + 1);
            sm_optim_step(o, p, g + k * n, oc.lr);
            th_close_case(label, what, p, ref + k * n, n, TOL_OPT);
        }
        CHECK(sm_optim_steps(o) == steps);
        free(p);
        sm_optim_free(o);
    }
    CHECKF(ncases >= 4, "only %d optimizer cases in %s", ncases, FIXTURE);
}

static void fixture_sched(void)
{
    int ncases = 0;
    for (int i = 0; ; i++) {
        char cs[32];
        snprintf(cs, sizeof cs, "sched%d", i);
        if (!fx_has_case(fx, cs)) break;
        const float *cfg = get(cs, "cfg", 5);
        if (!cfg) continue;
        int64_t total = (int64_t)cfg[2];
        const float *ref = get(cs, "lr", total);
        if (!ref) continue;
        ncases++;
        sm_sched_config sc = {.kind = (sm_sched_kind)cfg[0]};
        if (sc.kind == SM_SCHED_COSINE) sc.min_lr = cfg[3];
        else { sc.step_size = (int64_t)cfg[3]; sc.gamma = cfg[4]; }
        float *lr = xcalloc(total, sizeof *lr);
        for (int64_t k = 0; k < total; k++) lr[k] = sm_sched_lr(&sc, cfg[1], k, total);
        char label[64];
        snprintf(label, sizeof label, "%s %s T=%lld", cs, sc.kind == SM_SCHED_COSINE ? "cosine" : "step",
                 (long long)total);
        th_close(label, lr, ref, (long)total, TOL_OPT, 1e-30);
        free(lr);
    }
    CHECKF(ncases >= 2, "only %d schedule cases in %s", ncases, FIXTURE);
}

int main(void)
{
    sm_rng_seed(&rng, 4242);
    sm_threads_set(2);
    fx = fx_open(FIXTURE);
    CHECKF(fx != NULL, "cannot load %s", FIXTURE);
    if (fx) {
        fixture_heads();
        fixture_optim();
        fixture_sched();
    }
    finite_differences();
    fx_close(fx);
    return th_done();
}
