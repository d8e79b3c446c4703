/* test_heads2.c - the heads beyond test_heads.c (combined margin, real-valued SphereFace,
 * A-Softmax, AdaCos fixed and dynamic, sub-center ArcFace, L2-constrained softmax; src/head.c)
 * and the pair losses (contrastive, triplet all / hard / semi-hard, multi-similarity;
 * src/pairloss.c) against
 *   (a) PyTorch fixtures (tests/fixtures/heads2_ref.bin, tools/gen_ref.py gen_heads2), written
 *       there from the documented formulas: loss, cos (logits for L2-softmax; the distance or
 *       similarity matrix of a pair loss), dL/dW (dL/db) from sm_model_train_step on a model
 *       whose backbone is just `flatten`, dL/demb through the head interface, the accumulate
 *       rule; the target logit (sm_head_phi, A-Softmax's (λ cos θ + ψ)/(1 + λ)), the λ
 *       schedule, AdaCos's scale after the training step (and that nothing else moves it).
 *       Target cosines lie on both sides of every switch point (m1·θ + m2 = π, θ = π/1.35,
 *       A-Softmax's kπ/4, ArcFace's cos(π - m), AdaCos medians below and above π/4); pair
 *       batches have hinges on both sides and no decision within 1e-3 of its switch;
 *   (b) finite differences in double (central, steps h and 2h, Richardson-extrapolated, as in
 *       test_heads.c) of the float implementation's loss w.r.t. every element of emb and W (and
 *       b), on fresh random batches with kinks planted 2e-5 from their switch: an element whose
 *       perturbation changes a discrete state (a target's branch, an A-Softmax interval k, a
 *       sub-centre choice, a hinge or a mining choice of a pair loss) is skipped and counted,
 *       and each batch with plants must skip some. AdaCos dynamic is checked with its scale
 *       frozen after a training step (eval-mode forwards do not update it): the gradient of the
 *       step treats s as a constant.
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

#define FIXTURE "tests/fixtures/heads2_ref.bin"
#define TOL 1e-5        /* float32 against float64 PyTorch */
/* Finite differences: the step is FD_H times the row norm of the perturbed tensor (as in
 * test_heads.c). Over 40 seeds of the batches the worst error was 1.8e-3 (sub-center ArcFace
 * dL/demb at s=30), typically 1e-4..5e-4; the planted bugs tried on this test (a dropped
 * factor, a wrong branch or interval) give 1e-2 and more. */
#define FD_H 5e-3
#define FD_H_SUB 2e-3    /* sub-center: fewer W steps flip a sub-centre choice */
#define FD_H_PAIR 1e-3   /* pair losses: fewer steps cross a hinge (no s: less rounding noise) */
#define FD_TOL 5e-3
#define PLANT 2e-5      /* distance of a planted kink from its switch: every FD step crosses it */

static bool is_pair(sm_head_kind k)
{
    return k == SM_HEAD_CONTRASTIVE || k == SM_HEAD_TRIPLET || k == SM_HEAD_MULTISIM;
}

/* ------------------------------------------------------------- defaults */

/* The defaults documented in simile.h, which the first fixture case of each head uses. */
static void defaults(void)
{
    sm_head_config c;
    CHECK(sm_head_config_default(&c, "combined", NULL) == SM_OK && c.kind == SM_HEAD_COMBINED &&
          c.scale == 30.0f && c.m1 == 1.0f && c.m2 == 0.3f && c.m3 == 0.2f);
    CHECK(sm_head_config_default(&c, "sphereface", NULL) == SM_OK && c.kind == SM_HEAD_SPHEREFACE &&
          c.scale == 30.0f && c.margin == 1.35f);
    CHECK(sm_head_config_default(&c, "sphereface-asoftmax", NULL) == SM_OK &&
          c.kind == SM_HEAD_ASOFTMAX && c.margin == 4.0f && c.lambda_base == 1000.0f &&
          c.lambda_min == 5.0f && c.gamma == 0.12f && c.power == 1.0f);
    CHECK(sm_head_config_default(&c, "adacos", NULL) == SM_OK && c.kind == SM_HEAD_ADACOS);
    CHECK(sm_head_config_default(&c, "adacos-fixed", NULL) == SM_OK && c.kind == SM_HEAD_ADACOS_FIXED);
    CHECK(sm_head_config_default(&c, "subcenter-arcface", NULL) == SM_OK &&
          c.kind == SM_HEAD_SUBCENTER && c.scale == 30.0f && c.margin == 0.5f && c.subcenters == 3 &&
          !c.easy_margin);
    CHECK(sm_head_config_default(&c, "l2-softmax", NULL) == SM_OK && c.kind == SM_HEAD_L2SOFTMAX &&
          c.scale == 16.0f);
    CHECK(sm_head_config_default(&c, "contrastive", NULL) == SM_OK && c.margin == 0.0f &&
          c.margin_neg == 1.0f && !c.raw);
    CHECK(sm_head_config_default(&c, "triplet", NULL) == SM_OK && c.margin == 0.2f &&
          c.miner == SM_MINER_ALL && !c.raw);
    CHECK(sm_head_config_default(&c, "multi-similarity", NULL) == SM_OK && c.alpha == 2.0f &&
          c.beta == 50.0f && c.base == 0.5f && c.epsilon == 0.1f && !c.raw);
}

/* ------------------------------------------------------------- (a) fixtures: heads */

/* cfg: kind, n, d, c, K, s (0: the head's own), m, m1, m2, m3, λ_base, λ_min */
static bool head_config(const float *cfg, sm_head_config *hc)
{
    const char *name = sm_head_name((sm_head_kind)cfg[0]);
    if (!name || sm_head_config_default(hc, name, NULL) != SM_OK) return false;
    if (cfg[5] > 0) hc->scale = cfg[5];
    if (hc->kind == SM_HEAD_SPHEREFACE || hc->kind == SM_HEAD_ASOFTMAX || hc->kind == SM_HEAD_SUBCENTER)
        hc->margin = cfg[6];
    hc->m1 = cfg[7]; hc->m2 = cfg[8]; hc->m3 = cfg[9];
    hc->subcenters = (int64_t)cfg[4];
    hc->lambda_base = cfg[10]; hc->lambda_min = cfg[11];
    return true;
}

static void fixture_heads(void)
{
    int ncases = 0;
    for (int i = 0; ; i++) {
        char fxn[16], cs[96];
        snprintf(fxn, sizeof fxn, "hd%d", i);
        if (!fx_has_case(fx, fxn)) break;
        const float *cfg = get(fxn, "cfg", 12);
        sm_head_config hc;
        if (!cfg || !head_config(cfg, &hc)) { CHECKF(0, "%s: bad cfg", fxn); continue; }
        int64_t n = (int64_t)cfg[1], d = (int64_t)cfg[2], c = (int64_t)cfg[3], K = (int64_t)cfg[4];
        int64_t R = c * K;
        bool bias = hc.kind == SM_HEAD_L2SOFTMAX;
        const char *hn = sm_head_name(hc.kind);
        switch (hc.kind) {
        case SM_HEAD_COMBINED:
            snprintf(cs, sizeof cs, "%s %s s=%g m=(%g,%g,%g)", fxn, hn, (double)hc.scale,
                     (double)hc.m1, (double)hc.m2, (double)hc.m3);
            break;
        case SM_HEAD_ASOFTMAX:
            snprintf(cs, sizeof cs, "%s %s lambda=%g/%g", fxn, hn, (double)hc.lambda_base,
                     (double)hc.lambda_min);
            break;
        case SM_HEAD_SUBCENTER:
            snprintf(cs, sizeof cs, "%s %s K=%lld s=%g m=%g", fxn, hn, (long long)K,
                     (double)hc.scale, (double)hc.margin);
            break;
        case SM_HEAD_ADACOS:
        case SM_HEAD_ADACOS_FIXED: {
            char key[32];
            snprintf(key, sizeof key, "%s/th_med", fxn);
            const float *med = fx_get(fx, key, NULL);   /* dynamic scale only */
            snprintf(cs, sizeof cs, "%s %s C=%lld", fxn, hn, (long long)c);
            if (med)
                snprintf(cs + strlen(cs), sizeof cs - strlen(cs), " theta_med=%.3f %s pi/4",
                         (double)med[0], med[0] < M_PI / 4 ? "<" : ">");
            break;
        }
        case SM_HEAD_L2SOFTMAX:
            snprintf(cs, sizeof cs, "%s %s alpha=%g", fxn, hn, (double)hc.scale);
            break;
        default:
            snprintf(cs, sizeof cs, "%s %s s=%g m=%g", fxn, hn, (double)hc.scale, (double)hc.margin);
        }
        const float *emb = get(fxn, "emb", n * d), *w = get(fxn, "w", R * d),
                    *fl = get(fxn, "labels", n), *cosr = get(fxn, "cos", n * c),
                    *loss_ref = get(fxn, "loss", 1), *demb_ref = get(fxn, "demb", n * d),
                    *dw_ref = get(fxn, "dw", R * d);
        const float *b = bias ? get(fxn, "b", c) : NULL, *db_ref = bias ? get(fxn, "db", c) : NULL;
        sm_model *m = head_model(&hc, d, c);
        if (!m || !emb || !w || !fl || !cosr || !loss_ref || !demb_ref || !dw_ref ||
            (bias && (!b || !db_ref))) {
            sm_model_free(m);
            continue;
        }
        ncases++;
        int wid = tensor_id(m, "head.weight", R * d), bid = bias ? tensor_id(m, "head.bias", c) : -1;
        CHECK(sm_model_ntensors(m) == (bias ? 2 : 1));
        if (wid < 0 || (bias && bid < 0)) { sm_model_free(m); continue; }
        memcpy(tensor_data(m, wid), w, sizeof(float) * (size_t)(R * d));
        if (bias) memcpy(tensor_data(m, bid), b, sizeof(float) * (size_t)c);
        int32_t *labels = xcalloc(n, sizeof *labels);
        for (int64_t k = 0; k < n; k++) labels[k] = (int32_t)fl[k];
        sm_head *h = m->head;
        bool adacos = hc.kind == SM_HEAD_ADACOS || hc.kind == SM_HEAD_ADACOS_FIXED;
        if (adacos) {   /* the starting scale: √2·ln(C-1) */
            const float *s0 = get(fxn, "s0", 1);
            if (s0) cmp_scalar(cs, "scale before the step", h->cfg.scale, s0[0], 1e-7);
        }

        /* the training step of the whole model: loss, cos, dW, db (and AdaCos's update) */
        sm_err err = {0};
        double loss = NAN;
        CHECKF(sm_model_train_step(m, emb, labels, n, 0, &loss, NULL, &err) == SM_OK, "%s", err.msg);
        cmp_scalar(cs, "loss", loss, loss_ref[0], TOL);
        th_close_case(cs, bias ? "logits" : "cos", h->cos, cosr, n * c, TOL);
        th_close_case(cs, "dL/dW (model step)", tensor_grad(m, wid), dw_ref, R * d, TOL);
        if (bias) th_close_case(cs, "dL/db (model step)", tensor_grad(m, bid), db_ref, c, TOL);
        float snew = h->cfg.scale;
        if (hc.kind == SM_HEAD_ADACOS) {
            const float *sref = get(fxn, "snew", 1);
            if (sref) cmp_scalar(cs, "scale after the step", snew, sref[0], TOL);
        }
        if (hc.kind == SM_HEAD_ADACOS_FIXED) {
            const float *s0 = get(fxn, "s0", 1);
            if (s0) CHECKF(snew == s0[0], "%s: the fixed scale moved to %g", cs, (double)snew);
        }
        if (hc.kind == SM_HEAD_ASOFTMAX) {
            const float *lam = get(fxn, "lambda", 1), *its = get(fxn, "lambda_iters", 6),
                        *vals = get(fxn, "lambda_vals", 6);
            CHECKF(h->iter == 1, "%s: A-Softmax counted %lld training steps, want 1", cs, (long long)h->iter);
            if (lam) cmp_scalar(cs, "lambda at iter 0", sm_head_asoftmax_lambda(&h->cfg, 0), lam[0], 1e-7);
            for (int k = 0; its && vals && k < 6; k++) {
                char what[48];
                snprintf(what, sizeof what, "lambda at iter %lld", (long long)its[k]);
                cmp_scalar(cs, what, sm_head_asoftmax_lambda(&h->cfg, (int64_t)its[k]), vals[k], 1e-6);
            }
            h->iter = 0;   /* the interface checks below are at the fixture's λ (iter 0) */
        }

        /* dL/demb through the head interface in eval mode (AdaCos keeps s_new, A-Softmax its
         * step count); a second forward + backward accumulates */
        m->training = false;
        float *demb = xcalloc(n * d, sizeof *demb), *demb2 = xcalloc(n * d, sizeof *demb2);
        float *dw1 = xcalloc(R * d, sizeof *dw1), *twice = xcalloc(n * d > R * d ? n * d : R * d, sizeof *twice);
        zero_grads(m);
        h->ops->forward(h, m, emb, labels, n, NULL);
        h->ops->backward(h, m, emb, labels, n, demb);
        cmp_scalar(cs, "loss (head, eval mode)", h->loss, loss_ref[0], TOL);
        th_close_case(cs, "dL/demb (head)", demb, demb_ref, n * d, TOL);
        th_close_case(cs, "dL/dW (head)", tensor_grad(m, wid), dw_ref, R * d, TOL);
        if (hc.kind == SM_HEAD_ASOFTMAX) {
            const float *gy = get(fxn, "gy", n);
            if (gy) th_close_case(cs, "target logit / |x|", h->gy, gy, n, TOL);
            CHECKF(h->iter == 0, "%s: an eval-mode forward advanced lambda's iteration", cs);
        }
        if (hc.kind == SM_HEAD_COMBINED || hc.kind == SM_HEAD_SPHEREFACE || hc.kind == SM_HEAD_SUBCENTER) {
            const float *phi = get(fxn, "phi", n);
            float *got = xcalloc(n, sizeof *got);
            for (int64_t k = 0; k < n && phi; k++) {
                double dphi;
                got[k] = (float)sm_head_phi(&h->cfg, cosr[k * c + labels[k]], &dphi);
            }
            if (phi) th_close_case(cs, "phi(cos target) (sm_head_phi)", got, phi, n, TOL);
            free(got);
        }
        memcpy(dw1, tensor_grad(m, wid), sizeof(float) * (size_t)(R * d));
        memcpy(demb2, demb, sizeof(float) * (size_t)(n * d));
        h->ops->forward(h, m, emb, labels, n, NULL);
        h->ops->backward(h, m, emb, labels, n, demb2);
        for (int64_t k = 0; k < n * d; k++) twice[k] = 2.0f * demb[k];
        th_close_case(cs, "accumulate dL/demb", demb2, twice, n * d, 1e-6);
        for (int64_t k = 0; k < R * d; k++) twice[k] = 2.0f * dw1[k];
        th_close_case(cs, "accumulate dL/dW", tensor_grad(m, wid), twice, R * d, 1e-6);
        if (adacos) {   /* only training steps move the scale */
            int32_t *pred = xcalloc(n, sizeof *pred);
            CHECK(sm_model_predict(m, emb, n, pred, &err) == SM_OK);
            CHECKF(h->cfg.scale == snew, "%s: scale %g after eval forwards, want %g", cs,
                   (double)h->cfg.scale, (double)snew);
            free(pred);
        }
        free(labels); free(demb); free(demb2); free(dw1); free(twice);
        sm_model_free(m);
    }
    CHECKF(ncases >= 13, "only %d head cases in %s", ncases, FIXTURE);
}

/* ------------------------------------------------------------- (a) fixtures: pair losses */

/* cfg: kind, n, d, margin, margin_neg, miner, raw, α, β, λ, ε */
static void fixture_pairs(void)
{
    int ncases = 0;
    for (int i = 0; ; i++) {
        char fxn[16], cs[96];
        snprintf(fxn, sizeof fxn, "pl%d", i);
        if (!fx_has_case(fx, fxn)) break;
        const float *cfg = get(fxn, "cfg", 11);
        sm_head_config hc;
        const char *name = cfg ? sm_head_name((sm_head_kind)cfg[0]) : NULL;
        if (!name || sm_head_config_default(&hc, name, NULL) || !is_pair(hc.kind)) {
            CHECKF(0, "%s: bad cfg", fxn);
            continue;
        }
        int64_t n = (int64_t)cfg[1], d = (int64_t)cfg[2];
        hc.margin = cfg[3]; hc.margin_neg = cfg[4]; hc.miner = (sm_miner)cfg[5];
        hc.raw = cfg[6] != 0.0f;
        hc.alpha = cfg[7]; hc.beta = cfg[8]; hc.base = cfg[9]; hc.epsilon = cfg[10];
        static const char *miners[] = {"all", "hard", "semihard"};
        if (hc.kind == SM_HEAD_CONTRASTIVE)
            snprintf(cs, sizeof cs, "%s %s m=%g/%g%s", fxn, name, (double)hc.margin,
                     (double)hc.margin_neg, hc.raw ? " raw" : "");
        else if (hc.kind == SM_HEAD_TRIPLET)
            snprintf(cs, sizeof cs, "%s %s %s m=%g%s", fxn, name, miners[hc.miner % 3],
                     (double)hc.margin, hc.raw ? " raw" : "");
        else
            snprintf(cs, sizeof cs, "%s %s%s", fxn, name, hc.raw ? " raw" : "");
        const float *emb = get(fxn, "emb", n * d), *fl = get(fxn, "labels", n),
                    *mat = get(fxn, "mat", n * n), *loss_ref = get(fxn, "loss", 1),
                    *demb_ref = get(fxn, "demb", n * d);
        sm_model *m = head_model(&hc, d, 2);
        if (!m || !emb || !fl || !mat || !loss_ref || !demb_ref) { sm_model_free(m); continue; }
        ncases++;
        CHECK(sm_model_nparams(m) == 0);
        int32_t *labels = xcalloc(n, sizeof *labels);
        for (int64_t k = 0; k < n; k++) labels[k] = (int32_t)fl[k];
        sm_err err = {0};
        double loss = NAN;
        CHECKF(sm_model_train_step(m, emb, labels, n, 0, &loss, NULL, &err) == SM_OK, "%s", err.msg);
        cmp_scalar(cs, "loss", loss, loss_ref[0], TOL);
        sm_head *h = m->head;
        float *got = xcalloc(n * n, sizeof *got);
        for (int64_t k = 0; k < n * n; k++) got[k] = (float)h->pair[k];
        th_close_case(cs, hc.kind == SM_HEAD_MULTISIM ? "similarities" : "distances", got, mat, n * n, TOL);
        float *demb = xcalloc(n * d, sizeof *demb), *demb2 = xcalloc(n * d, sizeof *demb2);
        float *twice = xcalloc(n * d, sizeof *twice);
        h->ops->forward(h, m, emb, labels, n, NULL);
        h->ops->backward(h, m, emb, labels, n, demb);
        th_close_case(cs, "dL/demb (head)", demb, demb_ref, n * d, TOL);
        memcpy(demb2, demb, sizeof(float) * (size_t)(n * d));
        h->ops->forward(h, m, emb, labels, n, NULL);
        h->ops->backward(h, m, emb, labels, n, demb2);
        for (int64_t k = 0; k < n * d; k++) twice[k] = 2.0f * demb[k];
        th_close_case(cs, "accumulate dL/demb", demb2, twice, n * d, 1e-6);
        free(labels); free(got); free(demb); free(demb2); free(twice);
        sm_model_free(m);
    }
    CHECKF(ncases >= 10, "only %d pair-loss cases in %s", ncases, FIXTURE);
}

/* ------------------------------------------------------------- (b) finite differences */

static uint64_t mix(uint64_t s, uint64_t v)   /* FNV-1a over the 8 bytes of v */
{
    for (int k = 0; k < 8; k++) s = (s ^ ((v >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    return s;
}

static double acos_c(double c) { return acos(c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c); }

/* The discrete state of the last forward, as a hash: for each sample the branch of its target
 * logit (combined / SphereFace: m1·θ + m2 <= π; A-Softmax: the interval k; sub-center: the
 * ArcFace side and every sub-centre choice); for a pair loss, which entries of dL/d(distance)
 * are non-zero (hinges and mining choices) and, for the triplet loss, their values (counts of
 * active triplets over the mean's count). A change between the FD points is a kink. */
static uint64_t kink_state(const sm_head *h, const int32_t *labels, int64_t n)
{
    const sm_head_config *c = &h->cfg;
    uint64_t s = 0xcbf29ce484222325ull;
    int64_t C = h->c;
    switch (c->kind) {
    case SM_HEAD_COMBINED:
    case SM_HEAD_SPHEREFACE: {
        double m1 = c->kind == SM_HEAD_COMBINED ? c->m1 : c->margin, m2 = c->kind == SM_HEAD_COMBINED ? c->m2 : 0.0;
        for (int64_t i = 0; i < n; i++)
            s = mix(s, m1 * acos_c(h->cos[i * C + labels[i]]) + m2 <= M_PI);
        break;
    }
    case SM_HEAD_ASOFTMAX:
        for (int64_t i = 0; i < n; i++) {
            int k = (int)floor(c->margin * acos_c(h->cos[i * C + labels[i]]) / M_PI);
            s = mix(s, (uint64_t)(k < (int)c->margin ? k : (int)c->margin - 1));
        }
        break;
    case SM_HEAD_SUBCENTER:
        for (int64_t i = 0; i < n; i++) {
            s = mix(s, h->cos[i * C + labels[i]] > cos(M_PI - c->margin));
            for (int64_t j = 0; j < C; j++) s = mix(s, (uint64_t)h->argk[i * C + j]);
        }
        break;
    case SM_HEAD_CONTRASTIVE:
    case SM_HEAD_TRIPLET:
    case SM_HEAD_MULTISIM: {
        const double *G = h->pair + n * n;
        for (int64_t k = 0; k < n * n; k++) {
            uint64_t bits = 0;
            if (c->kind == SM_HEAD_TRIPLET) memcpy(&bits, &G[k], sizeof bits);
            else bits = G[k] != 0.0;
            s = mix(s, bits);
        }
        break;
    }
    default:
        break;
    }
    return s;
}

enum { MAXD = 16 };

static void unit_vec(double *v, int64_t d)
{
    double s = 0.0;
    for (int64_t k = 0; k < d; k++) s += v[k] * v[k];
    s = sqrt(s);
    for (int64_t k = 0; k < d; k++) v[k] /= s;
}

/* A random unit vector orthogonal to the unit vector a (d doubles). */
static void random_orth(double *u, const double *a, int64_t d)
{
    double ua = 0.0;
    for (int64_t k = 0; k < d; k++) { u[k] = sm_rng_normal(&rng); ua += u[k] * a[k]; }
    for (int64_t k = 0; k < d; k++) u[k] -= ua * a[k];
    unit_vec(u, d);
}

/* x (d floats) of norm r with max over the k rows of w (k·d floats) of cos(x, w_q) = t: along
 * x(τ) = τ ŵ_0 + √(1-τ²) u, u random ⟂ ŵ_0, by bisection on τ (exact for k = 1). */
static void place_row(float *x, const float *w, int64_t k, int64_t d, double t, double r)
{
    double wn[8][MAXD], u[MAXD], y[MAXD];
    assert(k <= 8 && d <= MAXD);
    for (int64_t q = 0; q < k; q++) {
        for (int64_t j = 0; j < d; j++) wn[q][j] = w[q * d + j];
        unit_vec(wn[q], d);
    }
    random_orth(u, wn[0], d);
    double lo = -1.0, hi = 1.0;
    for (int it = 0; it < 100; it++) {
        double tau = (lo + hi) / 2, f = -INFINITY;
        for (int64_t q = 0; q < k; q++) {
            double dot = 0.0;
            for (int64_t j = 0; j < d; j++) dot += (tau * wn[0][j] + sqrt(1.0 - tau * tau) * u[j]) * wn[q][j];
            f = fmax(f, dot);
        }
        if (f < t) lo = tau; else hi = tau;
    }
    double tau = (lo + hi) / 2;
    for (int64_t j = 0; j < d; j++) y[j] = tau * wn[0][j] + sqrt(1.0 - tau * tau) * u[j];
    for (int64_t j = 0; j < d; j++) x[j] = (float)(r * y[j]);
}

/* x (d floats, norm r) whose cosines to rows a0 and a0 + 1 of w differ by `delta` and exceed
 * those to the class's other sub-centres (rows up to a0 + k) by 0.02: a planted sub-centre tie.
 * False if no such x was found. */
static bool place_tie(float *x, const float *w, int64_t a0, int64_t k, int64_t d, double delta, double r)
{
    bool ok = false;
    double a[MAXD], b[MAXD], v[MAXD], y[MAXD], vv = 0.0;
    for (int64_t j = 0; j < d; j++) { a[j] = w[a0 * d + j]; b[j] = w[(a0 + 1) * d + j]; }
    unit_vec(a, d);
    unit_vec(b, d);
    for (int64_t j = 0; j < d; j++) { v[j] = a[j] - b[j]; vv += v[j] * v[j]; }
    for (int tries = 0; tries < 1000; tries++) {
        /* (â + b̂) plus noise, made orthogonal to â - b̂ (cos_a = cos_b), then δ along â - b̂ */
        double yv = 0.0, yn = 0.0;
        for (int64_t j = 0; j < d; j++) y[j] = a[j] + b[j] + 0.4 * sm_rng_normal(&rng);
        for (int64_t j = 0; j < d; j++) yv += y[j] * v[j];
        for (int64_t j = 0; j < d; j++) y[j] -= yv / vv * v[j];
        for (int64_t j = 0; j < d; j++) yn += y[j] * y[j];
        yn = sqrt(yn);
        for (int64_t j = 0; j < d; j++) y[j] = y[j] / yn + delta / vv * v[j];
        unit_vec(y, d);
        double ca = 0.0, best_other = -INFINITY;
        for (int64_t j = 0; j < d; j++) ca += y[j] * a[j];
        for (int64_t q = 2; q < k; q++) {
            double o[MAXD], co = 0.0;
            for (int64_t j = 0; j < d; j++) o[j] = w[(a0 + q) * d + j];
            unit_vec(o, d);
            for (int64_t j = 0; j < d; j++) co += y[j] * o[j];
            best_other = fmax(best_other, co);
        }
        if ((ok = best_other < ca - 0.02)) break;
    }
    for (int64_t j = 0; j < d; j++) x[j] = (float)(r * y[j]);
    return ok;
}

/* A fresh batch for a class head: weights with row norms 0.5..3 (sub-centres: those of class 0,
 * where the ArcFace switch is planted, within 12° of each other as in the fixture, so that a
 * sample can be at cos θ = -0.93 from all of them; the other classes' independent, so that
 * fewer W perturbations flip a sub-centre choice), labels pairing the first classes, embeddings
 * with norms 0.5..3 at chosen target cosines: random in [-0.95, 0.95], or planted PLANT from a
 * switch (samples 0..), or clear of it on either side. */
static void fd_head_batch(float *emb, float *w, float *b, int32_t *labels, int64_t n, int64_t d,
                          int64_t c, int64_t K, const sm_head_config *hc, int *planted)
{
    *planted = 0;
    for (int64_t j = 0; j < c; j++) {
        double base[MAXD];
        for (int64_t k = 0; k < d; k++) base[k] = sm_rng_normal(&rng);
        unit_vec(base, d);
        for (int64_t q = 0; q < K; q++) {
            double noise[MAXD], sc = 0.5 + 2.5 * sm_rng_double(&rng);
            for (int64_t k = 0; k < d; k++) noise[k] = sm_rng_normal(&rng);
            unit_vec(noise, d);
            double a = K == 1 ? 0.0 : j == 0 ? 0.1 : 1e6;   /* clustered / independent */
            for (int64_t k = 0; k < d; k++) w[(j * K + q) * d + k] = (float)(sc * (base[k] + a * noise[k]) / (1.0 + a));
        }
    }
    if (b)
        for (int64_t j = 0; j < c; j++) b[j] = (float)sm_rng_normal(&rng);
    double t[64], sw = 0.0;
    assert(n <= 64);
    bool sub = hc->kind == SM_HEAD_SUBCENTER && K > 1;
    for (int64_t i = 0; i < n; i++) {
        labels[i] = (int32_t)(i < 2 * c ? i / 2 : (int64_t)sm_rng_below(&rng, (uint64_t)c));
        if (sub)   /* samples 0..3 in class 0 (clustered), 4 in class 1, 5 in class 2 */
            labels[i] = (int32_t)(i < 4 ? 0 : i < 6 ? i - 3 : 1 + (int64_t)sm_rng_below(&rng, (uint64_t)c - 1));
        t[i] = -0.95 + 1.9 * sm_rng_double(&rng);
    }
    switch (hc->kind) {
    case SM_HEAD_COMBINED:
    case SM_HEAD_SPHEREFACE:
    case SM_HEAD_SUBCENTER:
        sw = hc->kind == SM_HEAD_COMBINED ? cos((M_PI - hc->m2) / hc->m1)
           : hc->kind == SM_HEAD_SPHEREFACE ? cos(M_PI / hc->margin) : cos(M_PI - hc->margin);
        t[0] = sw + PLANT;
        t[1] = sw - PLANT;
        t[2] = sw + 0.05;
        t[3] = fmax(sw - 0.05, (sw - 0.97) / 2);
        *planted = 2;
        break;
    case SM_HEAD_ASOFTMAX: {   /* the boundaries kπ/4, and every interval's middle */
        double q = cos(M_PI / 4);
        t[0] = q + PLANT; t[1] = -PLANT; t[2] = -q + PLANT;
        labels[2] = 0;   /* all three in class 0: the other classes' W rows stay checkable */
        for (int k = 0; k < 4; k++) t[3 + k] = cos((2 * k + 1) * M_PI / 8);
        *planted = 3;
        break;
    }
    default:
        break;
    }
    for (int64_t i = 0; i < n; i++) {
        double r = 0.5 + 2.5 * sm_rng_double(&rng);
        if (hc->kind == SM_HEAD_L2SOFTMAX) {
            for (int64_t k = 0; k < d; k++) emb[i * d + k] = (float)(r * sm_rng_normal(&rng) / sqrt((double)d));
            continue;
        }
        place_row(emb + i * d, w + labels[i] * K * d, K, d, t[i], r);
    }
    if (sub) {   /* sub-centre ties on class 1: sample 4 (its target), sample 5 (not) */
        CHECK(place_tie(emb + 4 * d, w, K, K, d, PLANT, 1.5));
        CHECK(place_tie(emb + 5 * d, w, K, K, d, -PLANT, 2.0));
        *planted += 2;
    }
}

/* Passes when the worst error is within FD_TOL, at least min_checked elements were checked and,
 * where kinks were planted, some were skipped. */
static void fd_report(const char *label, const char *what, fd_stat r, int64_t min_checked, int need_skip)
{
    int ok = r.worst <= FD_TOL && r.checked >= min_checked && (!need_skip || r.skipped > 0);
    if (ok) th_passed++; else th_failed++;
    char w[128];
    snprintf(w, sizeof w, "%s dL/d%s", label, what);
    printf("%s fd %-46s max rel err %.3g (%d checked, %d kinks skipped%s, tol %.0e)\n", ok ? "ok  " : "FAIL",
           w, r.worst, r.checked, r.skipped, need_skip ? ", planted" : "", FD_TOL);
}

static void fd_heads(void)
{
    enum { N = 16, D = 8, C = 6 };
    struct { const char *name, *label; float scale, m1, m2, m3, margin, lb, lmin; int64_t K; } heads[] = {
        {"combined", "combined s=30 m=(1,0.3,0.2)", 0, 0, 0, 0, 0, 0, 0, 0},
        {"combined", "combined s=16 m=(1.2,0.2,0.1)", 16, 1.2f, 0.2f, 0.1f, 0, 0, 0, 0},
        {"sphereface", "sphereface s=30 m=1.35", 0, 0, 0, 0, 0, 0, 0, 0},
        {"sphereface-asoftmax", "sphereface-asoftmax lambda=1000/5", 0, 0, 0, 0, 0, 0, 0, 0},
        {"sphereface-asoftmax", "sphereface-asoftmax lambda=0 (psi)", 0, 0, 0, 0, 0, -1, -1, 0},
        {"sphereface-asoftmax", "sphereface-asoftmax lambda=2/0.5", 0, 0, 0, 0, 0, 2, 0.5f, 0},
        {"adacos-fixed", "adacos-fixed", 0, 0, 0, 0, 0, 0, 0, 0},
        {"adacos", "adacos (s frozen after a step)", 0, 0, 0, 0, 0, 0, 0, 0},
        {"subcenter-arcface", "subcenter-arcface K=3 s=30 m=0.5", 0, 0, 0, 0, 0, 0, 0, 0},
        {"subcenter-arcface", "subcenter-arcface K=2 s=16 m=0.4", 16, 0, 0, 0, 0.4f, 0, 0, 2},
        {"l2-softmax", "l2-softmax alpha=16", 0, 0, 0, 0, 0, 0, 0, 0},
    };
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        sm_head_config hc;
        sm_head_config_default(&hc, heads[k].name, NULL);
        if (heads[k].scale > 0) hc.scale = heads[k].scale;
        if (heads[k].m1 > 0) { hc.m1 = heads[k].m1; hc.m2 = heads[k].m2; hc.m3 = heads[k].m3; }
        if (heads[k].margin > 0) hc.margin = heads[k].margin;
        if (heads[k].lb < 0) hc.lambda_base = hc.lambda_min = 0.0f;
        else if (heads[k].lb > 0) { hc.lambda_base = heads[k].lb; hc.lambda_min = heads[k].lmin; }
        if (heads[k].K > 0) hc.subcenters = heads[k].K;
        sm_model *m = head_model(&hc, D, C);
        if (!m) continue;
        sm_err err = {0};
        sm_head *h = m->head;
        int64_t K = h->k, R = C * K;
        CHECK(sm_model_plan(m, N, &err) == SM_OK);
        float emb[N * D], demb[N * D] = {0};
        int32_t labels[N];
        float *w = sm_model_param(m, h->w), *b = h->b >= 0 ? sm_model_param(m, h->b) : NULL;
        int planted;
        fd_head_batch(emb, w, b, labels, N, D, C, K, &hc, &planted);
        if (hc.kind == SM_HEAD_ADACOS) {   /* one training step moves s; then frozen */
            double loss;
            float s0 = h->cfg.scale;
            CHECKF(sm_model_train_step(m, emb, labels, N, 0, &loss, NULL, &err) == SM_OK, "%s", err.msg);
            CHECKF(h->cfg.scale != s0, "adacos: the training step left s at %g", (double)s0);
        }
        m->training = false;
        float *gw = xcalloc(R * D, sizeof *gw), gb[C];
        if (hc.kind == SM_HEAD_ADACOS) memcpy(gw, sm_model_grad(m, h->w), sizeof(float) * (size_t)(R * D));
        zero_grads(m);
        h->ops->forward(h, m, emb, labels, N, NULL);
        h->ops->backward(h, m, emb, labels, N, demb);
        if (hc.kind == SM_HEAD_ADACOS) {   /* the step's dW is the frozen-s gradient */
            char label[96];
            snprintf(label, sizeof label, "adacos step dL/dW vs eval at s_new=%.4g", (double)h->cfg.scale);
            th_close_case("fd", label, sm_model_grad(m, h->w), gw, R * D, 1e-6);
        }
        memcpy(gw, sm_model_grad(m, h->w), sizeof(float) * (size_t)(R * D));
        if (b) memcpy(gb, sm_model_grad(m, h->b), sizeof gb);
        struct { const char *what; float *x; const float *g; int64_t nx, row; } ps[3] = {
            {"emb", emb, demb, N * D, D}, {"W", w, gw, R * D, D}, {"b", b, gb, C, C}};
        for (int p = 0; p < (b ? 3 : 2); p++) {
            fd_stat r = fd_param(m, ps[p].x, ps[p].g, ps[p].nx, ps[p].row,
                                 hc.kind == SM_HEAD_SUBCENTER ? FD_H_SUB : FD_H, emb, labels, N, kink_state);
            fd_report(heads[k].label, ps[p].what, r, ps[p].nx / 2, planted > 0 && p < 2);
        }
        free(gw);
        sm_model_free(m);
    }
}

/* x_j at distance dist from x_i as the loss sees them: on the unit sphere (then any norm
 * 0.5..3) unless raw. */
static void place_pair(float *xj, const float *xi, int64_t d, double dist, bool raw)
{
    double a[MAXD], u[MAXD], r = raw ? 1.0 : 0.5 + 2.5 * sm_rng_double(&rng);
    for (int64_t k = 0; k < d; k++) a[k] = xi[k];
    if (!raw) unit_vec(a, d);
    double an[MAXD];
    memcpy(an, a, sizeof an);
    unit_vec(an, d);
    random_orth(u, an, d);
    if (raw) {
        for (int64_t k = 0; k < d; k++) xj[k] = (float)(a[k] + dist * u[k]);
        return;
    }
    double phi = 2.0 * asin(dist / 2.0);
    for (int64_t k = 0; k < d; k++) xj[k] = (float)(r * (cos(phi) * a[k] + sin(phi) * u[k]));
}

static double unit_dot(const float *x, const float *y, int64_t d)
{
    double xy = 0, xx = 0, yy = 0;
    for (int64_t k = 0; k < d; k++) { xy += (double)x[k] * y[k]; xx += (double)x[k] * x[k]; yy += (double)y[k] * y[k]; }
    return xy / sqrt(xx * yy);
}

static void fd_pairs(void)
{
    enum { N = 12, D = 8 };
    struct { const char *name, *label; float margin; sm_miner miner; bool raw; } losses[] = {
        {"contrastive", "contrastive m=0/1", 0.0f, SM_MINER_ALL, false},
        {"contrastive", "contrastive m=0.1/1", 0.1f, SM_MINER_ALL, false},
        {"contrastive", "contrastive m=0.1/1 raw", 0.1f, SM_MINER_ALL, true},
        {"triplet", "triplet all m=0.2", 0.2f, SM_MINER_ALL, false},
        {"triplet", "triplet hard m=0.2", 0.2f, SM_MINER_HARD, false},
        {"triplet", "triplet semihard m=0.2", 0.2f, SM_MINER_SEMIHARD, false},
        {"triplet", "triplet all m=0.2 raw", 0.2f, SM_MINER_ALL, true},
        {"multi-similarity", "multi-similarity", 0.0f, SM_MINER_ALL, false},
    };
    for (size_t k = 0; k < sizeof losses / sizeof losses[0]; k++) {
        sm_head_config hc;
        sm_head_config_default(&hc, losses[k].name, NULL);
        if (hc.kind != SM_HEAD_MULTISIM) hc.margin = losses[k].margin;
        hc.miner = losses[k].miner;
        hc.raw = losses[k].raw;
        sm_model *m = head_model(&hc, D, 2);
        if (!m) continue;
        sm_err err = {0};
        CHECK(sm_model_plan(m, N, &err) == SM_OK);
        sm_head *h = m->head;
        float emb[N * D], demb[N * D] = {0}, centre[4][D];
        int32_t labels[N];
        /* 4 classes x 3: class centres on the sphere plus noise, then the plants around x_0 */
        for (int q = 0; q < 4; q++) {
            double c[MAXD];
            for (int j = 0; j < D; j++) c[j] = sm_rng_normal(&rng);
            unit_vec(c, D);
            for (int j = 0; j < D; j++) centre[q][j] = (float)c[j];
        }
        for (int i = 0; i < N; i++) {
            labels[i] = i / 3;
            double r = hc.raw ? 1.0 : 0.5 + 2.5 * sm_rng_double(&rng);
            for (int j = 0; j < D; j++)
                emb[i * D + j] = (float)(r * (centre[i / 3][j] + 0.8 * sm_rng_normal(&rng) / sqrt((double)D)));
        }
        double m0 = hc.margin;
        switch (hc.kind) {
        case SM_HEAD_CONTRASTIVE:   /* a negative pair at m_neg, a positive one at m_pos */
            place_pair(emb + 3 * D, emb, D, hc.margin_neg - PLANT, hc.raw);
            if (m0 > 0) place_pair(emb + 1 * D, emb, D, m0 + PLANT, hc.raw);
            break;
        case SM_HEAD_TRIPLET:
            if (hc.miner == SM_MINER_ALL) {   /* d(0,1) - d(0,3) + m = -PLANT */
                place_pair(emb + 1 * D, emb, D, 0.5, hc.raw);
                place_pair(emb + 3 * D, emb, D, 0.5 + m0 + PLANT, hc.raw);
            } else if (hc.miner == SM_MINER_HARD) {   /* anchor 0: its two positives tie */
                place_pair(emb + 1 * D, emb, D, 0.8, hc.raw);
                place_pair(emb + 2 * D, emb, D, 0.8 + PLANT, hc.raw);
                place_pair(emb + 3 * D, emb, D, 0.7, hc.raw);
            } else {   /* pair (0,1): negative 3 just beyond the positive */
                place_pair(emb + 1 * D, emb, D, 0.6, hc.raw);
                place_pair(emb + 3 * D, emb, D, 0.6 + PLANT, hc.raw);
            }
            break;
        case SM_HEAD_MULTISIM: {   /* S_01 - ε = max_n S_0n + PLANT: the positive is just dropped */
            double maxn = -1.0;
            for (int j = 3; j < N; j++) maxn = fmax(maxn, unit_dot(emb, emb + j * D, D));
            double s01 = fmin(maxn + hc.epsilon + PLANT, 0.99);
            CHECK(s01 < 0.99);
            place_pair(emb + 1 * D, emb, D, sqrt(2.0 - 2.0 * s01), false);
            break;
        }
        default:
            break;
        }
        m->training = true;
        h->ops->forward(h, m, emb, labels, N, NULL);
        h->ops->backward(h, m, emb, labels, N, demb);
        fd_stat r = fd_param(m, emb, demb, N * D, D, FD_H_PAIR, emb, labels, N, kink_state);
        /* every triplet's hinge is a kink: a third of the elements must stay checkable */
        fd_report(losses[k].label, "emb", r, N * D / 3, 1);
        sm_model_free(m);
    }
}

int main(void)
{
    sm_rng_seed(&rng, 4343);
    sm_threads_set(2);
    defaults();
    fx = fx_open(FIXTURE);
    CHECKF(fx != NULL, "cannot load %s", FIXTURE);
    if (fx) {
        fixture_heads();
        fixture_pairs();
    }
    fd_heads();
    fd_pairs();
    fx_close(fx);
    return th_done();
}
