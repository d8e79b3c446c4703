/* bench_eval.c - times sm_eval_retrieval at the sizes evaluation meets.
 *
 *   1. leave-one-out on 10 000 rows (Fashion-MNIST test split size)
 *   2. 10 000 queries against 60 000 references (test -> train)
 * at d = 512, random unit vectors with clustered labels (10 classes: each row
 * is its class centre plus noise, so the rankings are neither trivial nor
 * uniform and R ~ 1 000 / 6 000 as on Fashion-MNIST).
 *
 * Standalone (not in the Makefile); from the repository root:
 *   cc -std=c11 -O3 -march=native -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *      bench/bench_eval.c src/eval.c src/gemm.c src/status.c -o build/bench_eval -lopenblas -lm
 *   build/bench_eval [threads]      (default: all OpenMP threads) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "simile.h"
#include "bench.h"
#include "gemm.h"
#include "rng.h"

/* Rows: centre of the row's class (scale 0.35 per coordinate before
 * normalisation) plus unit Gaussian noise, normalised to length 1. */
static void make_set(float *x, int32_t *lab, int64_t n, int64_t d, const float *centres,
                     sm_rng *rng)
{
    for (int64_t i = 0; i < n; i++) {
        lab[i] = (int32_t)sm_rng_below(rng, 10);
        double s = 0;
        for (int64_t t = 0; t < d; t++) {
            float v = centres[lab[i] * d + t] + (float)sm_rng_normal(rng);
            x[i * d + t] = v;
            s += (double)v * v;
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int64_t t = 0; t < d; t++) x[i * d + t] *= inv;
    }
}

static void report(const char *what, const sm_retrieval_metrics *m, double sec)
{
    printf("%-28s %7.2f s   p@1 %.4f  R-prec %.4f  MAP@R %.4f  R@1/2/4/8 %.4f %.4f %.4f %.4f  "
           "1-NN %.4f\n", what, sec, m->precision_at_1, m->r_precision, m->map_at_r,
           m->recall_at_k[0], m->recall_at_k[1], m->recall_at_k[2], m->recall_at_k[3],
           m->knn_accuracy);
}

int main(int argc, char **argv)
{
    int threads = sm_threads_set(argc > 1 ? atoi(argv[1]) : 0);
    const int64_t d = 512, nt = 10000, nr = 60000;
    sm_rng rng;
    sm_rng_seed(&rng, 1);
    float *centres = malloc((size_t)(10 * d) * sizeof *centres);
    for (int64_t i = 0; i < 10 * d; i++) centres[i] = 0.35f * (float)sm_rng_normal(&rng);
    float *test = malloc((size_t)(nt * d) * sizeof *test);
    float *train = malloc((size_t)(nr * d) * sizeof *train);
    int32_t *tl = malloc((size_t)nt * sizeof *tl), *rl = malloc((size_t)nr * sizeof *rl);
    if (!centres || !test || !train || !tl || !rl) { fprintf(stderr, "out of memory\n"); return 1; }
    make_set(test, tl, nt, d, centres, &rng);
    make_set(train, rl, nr, d, centres, &rng);
    printf("threads %d, d = %lld\n", threads, (long long)d);

    sm_retrieval_metrics m;
    sm_err err = {0};
    double t0 = now();
    if (sm_eval_retrieval(&m, test, tl, nt, test, tl, nt, d, true, &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    report("10k leave-one-out", &m, now() - t0);
    t0 = now();
    if (sm_eval_retrieval(&m, test, tl, nt, train, rl, nr, d, false, &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    report("10k -> 60k", &m, now() - t0);
    free(centres); free(test); free(train); free(tl); free(rl);
    return 0;
}
