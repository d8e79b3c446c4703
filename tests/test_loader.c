/* test_loader.c - batching: coverage and determinism of the per-epoch order,
 * drop_last, normalization, restarts mid-epoch, errors, and clean shutdown of
 * the worker thread (leaks and races show under `make test`'s ASan run). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simile.h"
#include "harness.h"
#include "loader.h"

/* n images of 1 x 2 x 3; image i has pixels (i % 256, i / 256, 0, 1, 254, 255)
 * and label i % 5, so every float batch row can be traced back to i. */
static void make_ds(sm_dataset *d, int64_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n; d->c = 1; d->h = 2; d->w = 3; d->n_classes = 5;
    d->images = malloc((size_t)n * 6);
    d->labels = malloc((size_t)n * sizeof *d->labels);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = d->images + i * 6;
        p[0] = (uint8_t)(i % 256); p[1] = (uint8_t)(i / 256); p[2] = 0; p[3] = 1; p[4] = 254; p[5] = 255;
        d->labels[i] = (int32_t)(i % 5);
    }
}

static const float MEAN = 0.5f, STD = 0.25f;

static int64_t decode(const float *row)
{
    int u0 = (int)lrint((row[0] * STD + MEAN) * 255.0);
    int u1 = (int)lrint((row[1] * STD + MEAN) * 255.0);
    return u0 + 256 * u1;
}

/* Runs one epoch; fills order[] with the image index of each row seen (up to
 * cap), returns the count, checks labels and normalization on the way.
 * *nb gets the number of batches, *last the size of the last one. */
static int64_t run_epoch(sm_loader *ld, int64_t *order, int64_t cap, int64_t *nb, int64_t *last, int *bad)
{
    const float *x;
    const int32_t *y;
    int64_t n, k = 0;
    *nb = 0;
    while (sm_loader_next(ld, &x, &y, &n)) {
        (*nb)++;
        *last = n;
        for (int64_t r = 0; r < n; r++) {
            int64_t i = decode(x + r * 6);
            if (y[r] != (int32_t)(i % 5)) (*bad)++;
            float want3 = (float)((1.0 / 255.0 - 0.5) / 0.25), want5 = (float)((1.0 - 0.5) / 0.25);
            if (fabsf(x[r * 6 + 3] - want3) > 1e-6f || fabsf(x[r * 6 + 5] - want5) > 1e-6f || x[r * 6 + 2] != -2.0f) (*bad)++;
            if (k < cap) order[k] = i;
            k++;
        }
    }
    return k;
}

static int is_perm(const int64_t *v, int64_t k, int64_t n)
{
    if (k != n) return 0;
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < k && ok; i++) {
        if (v[i] < 0 || v[i] >= n || seen[v[i]]) ok = 0;
        else seen[v[i]] = 1;
    }
    free(seen);
    return ok;
}

int main(void)
{
    const int64_t N = 1003;
    sm_dataset ds;
    make_ds(&ds, N);
    sm_err e = {0};
    int64_t *o0 = malloc(N * sizeof *o0), *o1 = malloc(N * sizeof *o1), *o2 = malloc(N * sizeof *o2);
    int64_t nb = 0, last = 0;
    int bad = 0;

    /* shuffled, keep last: every index once, 11 batches of 100 (3 in the last) */
    sm_loader *ld = NULL;
    CHECK(sm_loader_new(&ld, &ds, 100, true, false, 42, MEAN, STD, &e) == SM_OK && ld);
    CHECK(sm_loader_batches(ld) == 11);
    CHECK(run_epoch(ld, o0, N, &nb, &last, &bad) == N);
    CHECK(is_perm(o0, N, N) && nb == 11 && last == 3 && bad == 0);
    int same_as_order = 1;
    for (int64_t i = 0; i < N; i++) same_as_order &= sm_loader_order(ld, i) == o0[i];
    CHECK(same_as_order);
    CHECK(sm_loader_order(ld, N) == -1 && sm_loader_order(ld, -1) == -1);
    int identity = 1;
    for (int64_t i = 0; i < N; i++) identity &= o0[i] == i;
    CHECK(!identity);
    const float *x; const int32_t *y; int64_t n;
    CHECK(!sm_loader_next(ld, &x, &y, &n) && !sm_loader_next(ld, &x, &y, &n));   /* stays at the end */

    /* epoch 1: another order; back to epoch 0: the same one again */
    sm_loader_start_epoch(ld, 1);
    CHECK(run_epoch(ld, o1, N, &nb, &last, &bad) == N && is_perm(o1, N, N) && bad == 0);
    CHECK(memcmp(o0, o1, N * sizeof *o0) != 0);
    sm_loader_start_epoch(ld, 0);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && memcmp(o0, o2, N * sizeof *o0) == 0);

    /* restart in the middle of an epoch */
    sm_loader_start_epoch(ld, 1);
    for (int i = 0; i < 3; i++) CHECK(sm_loader_next(ld, &x, &y, &n) && n == 100);
    sm_loader_start_epoch(ld, 1);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && memcmp(o1, o2, N * sizeof *o0) == 0 && nb == 11);
    sm_loader_free(ld);

    /* a second loader, same seed: the same orders; another seed: others */
    CHECK(sm_loader_new(&ld, &ds, 64, true, false, 42, MEAN, STD, &e) == SM_OK);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && memcmp(o0, o2, N * sizeof *o0) == 0);
    CHECK(nb == 16 && last == 1003 - 15 * 64);
    sm_loader_start_epoch(ld, 1);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && memcmp(o1, o2, N * sizeof *o0) == 0);
    sm_loader_free(ld);
    CHECK(sm_loader_new(&ld, &ds, 100, true, false, 43, MEAN, STD, &e) == SM_OK);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && is_perm(o2, N, N) && memcmp(o0, o2, N * sizeof *o0) != 0);
    sm_loader_free(ld);

    /* drop_last: 10 full batches, 1000 distinct images */
    CHECK(sm_loader_new(&ld, &ds, 100, true, true, 7, MEAN, STD, &e) == SM_OK);
    CHECK(sm_loader_batches(ld) == 10);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == 1000 && nb == 10 && last == 100 && bad == 0);
    {
        char *seen = calloc((size_t)N, 1);
        int distinct = 1;
        for (int64_t i = 0; i < 1000; i++) { distinct &= !seen[o2[i]]; seen[o2[i]] = 1; }
        CHECK(distinct);
        free(seen);
    }
    sm_loader_free(ld);

    /* sequential (evaluation): dataset order, seed ignored */
    CHECK(sm_loader_new(&ld, &ds, 128, false, false, 99, MEAN, STD, &e) == SM_OK);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && nb == 8 && last == 1003 - 7 * 128 && bad == 0);
    identity = 1;
    for (int64_t i = 0; i < N; i++) identity &= o2[i] == i;
    CHECK(identity);
    sm_loader_start_epoch(ld, 5);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && o2[0] == 0 && o2[N - 1] == N - 1);
    sm_loader_free(ld);

    /* a batch larger than the data, without drop_last: one batch of all */
    CHECK(sm_loader_new(&ld, &ds, 5000, true, false, 1, MEAN, STD, &e) == SM_OK);
    CHECK(run_epoch(ld, o2, N, &nb, &last, &bad) == N && nb == 1 && last == N && is_perm(o2, N, N));
    sm_loader_free(ld);

    /* errors */
    CHECK(sm_loader_new(&ld, &ds, 0, true, false, 1, MEAN, STD, &e) == SM_ERR_ARG && ld == NULL);
    CHECK(sm_loader_new(&ld, &ds, 10, true, false, 1, MEAN, 0.0f, &e) == SM_ERR_ARG && strstr(e.msg, "std"));
    CHECK(sm_loader_new(&ld, &ds, 10, true, false, 1, NAN, STD, &e) == SM_ERR_ARG);
    CHECK(sm_loader_new(&ld, &ds, 2000, true, true, 1, MEAN, STD, &e) == SM_ERR_ARG && strstr(e.msg, "fewer than one batch"));
    sm_dataset empty = {0};
    CHECK(sm_loader_new(&ld, &empty, 10, true, false, 1, MEAN, STD, &e) == SM_ERR_ARG && strstr(e.msg, "empty"));
    CHECK(sm_loader_new(&ld, NULL, 10, true, false, 1, MEAN, STD, &e) == SM_ERR_ARG);
    sm_loader_free(NULL);
    sm_loader_start_epoch(NULL, 0);
    CHECK(!sm_loader_next(NULL, &x, &y, &n));

    /* shutdown while the worker is busy or idle, many times over */
    int ok = 1;
    for (int t = 0; t < 200; t++) {
        if (sm_loader_new(&ld, &ds, 1 + t % 7, true, t % 2, (uint64_t)t, MEAN, STD, &e) != SM_OK) { ok = 0; break; }
        for (int k = 0; k < t % 4; k++) ok &= sm_loader_next(ld, &x, &y, &n);
        if (t % 3 == 0) sm_loader_start_epoch(ld, t);
        sm_loader_free(ld);
    }
    CHECK(ok);
    sm_dataset_free(&ds);

    /* real data: the default constants standardize Fashion-MNIST */
    sm_dataset tr;
    if (access(SM_DATASET_ROOT "/fashion-mnist", F_OK) == 0 && sm_dataset_open("fashion-mnist", &tr, NULL, &e) == SM_OK) {
        CHECK(sm_loader_new(&ld, &tr, 128, true, true, 1, SM_FASHION_MNIST_MEAN, SM_FASHION_MNIST_STD, &e) == SM_OK);
        double s = 0, s2 = 0;
        int64_t cnt = 0, batches = 0;
        while (sm_loader_next(ld, &x, &y, &n)) {
            batches++;
            for (int64_t i = 0; i < n * 784; i++) { s += x[i]; s2 += (double)x[i] * x[i]; }
            cnt += n * 784;
        }
        double m = s / (double)cnt, sd = sqrt(s2 / (double)cnt - m * m);
        CHECK(batches == 60000 / 128);
        CHECKF(fabs(m) < 0.01 && fabs(sd - 1.0) < 0.01, "mean %f std %f", m, sd);
        sm_loader_free(ld);
        sm_dataset_free(&tr);
    } else {
        printf("skipped: Fashion-MNIST normalization check (dataset not installed)\n");
    }
    free(o0); free(o1); free(o2);
    return th_done();
}
