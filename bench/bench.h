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

/* SIMILE_WINOGRAD=0 in the environment: 3x3 convolutions by im2col only, for
 * an A/B of the same build in the same run (sm_conv_set_winograd). */
static inline void bench_conv_algo(void)
{
    const char *v = getenv("SIMILE_WINOGRAD");
    if (v && v[0] == '0') sm_conv_set_winograd(false);
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
