/* head_tests.h - helpers shared by test_heads.c and test_heads2.c (the head and pair-loss
 * tests against PyTorch fixtures): the fixture handle and RNG of the test program, fixture
 * lookups that count a missing tensor as a failed check, a scalar comparison, a model whose
 * backbone is just `flatten` (the head sees the input as its embedding), and access to a
 * named tensor's data and gradient. Include after harness.h. */
#ifndef SM_HEAD_TESTS_H
#define SM_HEAD_TESTS_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
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

#endif
