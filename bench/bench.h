/* bench.h - what every benchmark program needs: a monotonic clock, a
 * comparison for qsort of doubles (medians), and a check that ends the
 * program with the library's message. */
#ifndef SM_BENCH_H
#define SM_BENCH_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "simile.h"
#include "kernels.h"
#include "rng.h"

/* SIMILE_WINOGRAD=0 in the environment: 3x3 convolutions by im2col only, for
 * an A/B of the same build in the same run (sm_conv_set_winograd). */
static inline void bench_conv_algo(void)
{
    const char *v = getenv("SIMILE_WINOGRAD");
    if (v && v[0] == '0') sm_conv_set_winograd(false);
}

/* n floats from N(0, 0.1^2); exits when out of memory. */
static inline float *bench_randn(int64_t n, sm_rng *r)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int64_t i = 0; i < n; i++) p[i] = (float)(sm_rng_normal(r) * 0.1);
    return p;
}

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Exits with "PROG: message" when st is an error. */
static inline void bench_check(const char *prog, sm_status st, const sm_err *err)
{
    if (st) {
        fprintf(stderr, "%s: %s\n", prog, err->msg);
        exit(1);
    }
}
#endif
