/* head_tests.h - helpers shared by test_heads.c and test_heads2.c (the head and pair-loss
 * tests against PyTorch fixtures): the fixture handle and RNG of the test program, fixture
 * lookups that count a missing tensor as a failed check, a scalar comparison, a model whose
 * backbone is just `flatten` (the head sees the input as its embedding), access to a named
 * tensor's data and gradient, and finite differences of a head's loss (fd_param).
 * Include after harness.h. */
#ifndef SM_HEAD_TESTS_H
#define SM_HEAD_TESTS_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "head.h"
#include "model.h"
#include "rng.h"
#include "simile.h"

static fx_file *fx;
static sm_rng rng;

static inline void *xcalloc(int64_t n, size_t size)
{
    void *p = calloc((size_t)(n > 0 ? n : 1), size);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* Fixture tensor "<cs>/<t>" with `want` elements (-1: any); a missing or misshapen one is a
 * failed check and NULL. */
static inline const float *get(const char *cs, const char *t, int64_t want)
{
    char name[128];
    int64_t n;
    snprintf(name, sizeof name, "%s/%s", cs, t);
    const float *p = fx_get(fx, name, &n);
    CHECKF(p != NULL && (want < 0 || n == want), "fixture tensor '%s' missing or not %lld floats",
           name, (long long)want);
    return p && (want < 0 || n == want) ? p : NULL;
}

static inline double cmp_scalar(const char *cs, const char *what, double got, double want, double tol)
{
    double rel = fabs(got - want) / fmax(fabs(want), 1e-30);
    int ok = rel <= tol;   /* false for NaN */
    if (ok) th_passed++; else th_failed++;
    printf("%s %s %-*s max rel err %.3g", ok ? "ok  " : "FAIL", cs, 39 - (int)strlen(cs), what, rel);
    if (ok) printf("\n");
    else printf(": got %.10g want %.10g (tol %.3g)\n", got, want, tol);
    return rel;
}

/* The model "input 1 1 D / flatten": the embedding is the input, so the head sees exactly
 * the fixture's emb. */
static inline sm_model *head_model(const sm_head_config *hc, int64_t d, int64_t c)
{
    char spec[64];
    sm_err err = {0};
    sm_model *m = NULL;
    snprintf(spec, sizeof spec, "input 1 1 %lld\nflatten\n", (long long)d);
    sm_status st = sm_model_new(&m, spec, hc, c, 1, &err);
    CHECKF(st == SM_OK && sm_model_dim(m) == d, "%s", err.msg);
    if (st) return NULL;
    return m;
}

/* Index of the model tensor `name`, or -1 (a failed check). */
static inline int tensor_id(sm_model *m, const char *name, int64_t numel)
{
    sm_tensor_info ti;
    for (int i = 0; i < sm_model_ntensors(m); i++)
        if (sm_model_tensor(m, i, &ti) == SM_OK && strcmp(ti.name, name) == 0) {
            CHECKF(ti.trainable && ti.numel == numel, "tensor %s: %lld floats, want %lld", name,
                   (long long)ti.numel, (long long)numel);
            return ti.trainable && ti.numel == numel ? i : -1;
        }
    CHECKF(0, "the model has no tensor '%s'", name);
    return -1;
}

static inline float *tensor_data(sm_model *m, int id)
{
    sm_tensor_info ti;
    sm_model_tensor(m, id, &ti);
    return ti.data;
}

/* Its gradient: the same offset in the gradient buffer. */
static inline float *tensor_grad(sm_model *m, int id)
{
    return sm_model_grads(m) + (tensor_data(m, id) - sm_model_params(m));
}

static inline void zero_grads(sm_model *m)
{
    memset(sm_model_grads(m), 0, sizeof(float) * (size_t)sm_model_nparams(m));
}

/* A head's discrete state for a batch (which side of a switch or kink each
 * sample's target is on): a finite difference whose perturbation changes it
 * is skipped. */
typedef uint64_t (*fd_state_fn)(const sm_head *h, const int32_t *labels, int64_t n);

static inline double fd_loss(sm_model *m, const float *emb, const int32_t *labels, int64_t n,
                             fd_state_fn state_of, uint64_t *state)
{
    sm_head *h = m->head;
    h->ops->forward(h, m, emb, labels, n, NULL);
    *state = state_of(h, labels, n);
    return h->loss;
}

typedef struct fd_stat { double worst; int checked, skipped; } fd_stat;

/* Finite differences of the head's loss for every element of x (nx floats) against the
 * analytic gradient g: central differences with steps h and 2h, h = rel_h times the norm of
 * x's row (row_len floats), combined by Richardson extrapolation. An element whose
 * perturbation changes the state (state_of) is skipped and counted. The error is relative
 * to max(|fd|, |g|, 5 % of max |g|). */
static inline fd_stat fd_param(sm_model *m, float *x, const float *g, int64_t nx, int64_t row_len,
                               double rel_h, const float *emb, const int32_t *labels, int64_t n,
                               fd_state_fn state_of)
{
    fd_stat r = {0.0, 0, 0};
    uint64_t s0, sp, sm;
    fd_loss(m, emb, labels, n, state_of, &s0);
    double gmax = 0.0;
    for (int64_t i = 0; i < nx; i++) gmax = fmax(gmax, fabs((double)g[i]));
    double floor_ = fmax(0.05 * gmax, 1e-6);
    for (int64_t i = 0; i < nx; i++) {
        const float *row = x + i / row_len * row_len;
        double nrm = 0.0;
        for (int64_t k = 0; k < row_len; k++) nrm += (double)row[k] * row[k];
        double hstep = rel_h * fmax(sqrt(nrm), 1e-3), dh[2];
        float v = x[i];
        bool kink = false;
        for (int k = 0; k < 2; k++) {   /* central differences with steps h and 2h */
            float xp = (float)(v + (k + 1) * hstep), xm = (float)(v - (k + 1) * hstep);
            x[i] = xp;
            double lp = fd_loss(m, emb, labels, n, state_of, &sp);
            x[i] = xm;
            double lm = fd_loss(m, emb, labels, n, state_of, &sm);
            kink |= sp != s0 || sm != s0;
            dh[k] = (lp - lm) / ((double)xp - (double)xm);
        }
        x[i] = v;
        if (kink) { r.skipped++; continue; }
        /* Richardson extrapolation cancels the h² error term, so h can be large enough that
         * float rounding of the logits (about 1e-7 s per perturbed logit) hardly matters */
        double fd = (4.0 * dh[0] - dh[1]) / 3.0;
        double rel = fabs(fd - g[i]) / fmax(fmax(fabs(fd), fabs((double)g[i])), floor_);
        if (!(rel <= r.worst)) r.worst = rel;
        r.checked++;
    }
    return r;
}

#endif
