/* scenario.c - the use case of issue 5, measured: recognise products never
 * seen in training from ONE enrolled image each, and say "unknown" for
 * products never enrolled.
 *
 *   build/bench/scenario --model M [--data fashion-mnist] [--unseen 6-9]
 *       [--known 0-5] [--draws 20] [--far 0.01] [--seed 1] [--threads T]
 *
 * M was trained on the known classes only (simile train --classes 0-5). On
 * the test split:
 *   threshold   calibrated as `simile calibrate` does, on genuine/impostor
 *               pairs of the known classes' test images (never on the unseen
 *               ones): the smallest threshold whose impostor-pair FAR is at
 *               most --far (at most 200 000 pairs of each kind).
 *   closed set  per draw, one random image of each unseen class is enrolled
 *               in a fresh gallery (src/gallery.c, a temp file); every other
 *               unseen-class image is a query; top-1 identification accuracy
 *               (the best item's label is the query's class).
 *   open set    per draw, only half of the unseen classes are enrolled (a
 *               random half, the same one image each); the queries are all
 *               other unseen-class images, so about half come from classes
 *               never enrolled. A query is answered correctly when it is of
 *               an enrolled class and its best item has its label with
 *               similarity > threshold, or of a never-enrolled class and its
 *               best similarity is <= threshold ("unknown"). Reported: that
 *               accuracy, the identification rate on enrolled-class queries
 *               and the rejection rate on never-enrolled ones.
 * Means and standard deviations over the draws. One JSON line on stdout; on
 * stderr the closed-set top-1 per unseen class and how its queries were
 * answered (a confusion row). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simile.h"
#include "gemm.h"
#include "rng.h"

static void die(const char *what, const sm_err *e)
{
    fprintf(stderr, "scenario: %s: %s\n", what, e->msg);
    exit(1);
}

typedef struct stat_acc { double s, ss; int n; } stat_acc;
static void acc_add(stat_acc *a, double v) { a->s += v; a->ss += v * v; a->n++; }
static double acc_mean(const stat_acc *a) { return a->n ? a->s / a->n : 0; }
static double acc_std(const stat_acc *a)
{
    if (a->n < 2) return 0;
    double m = acc_mean(a), v = (a->ss - a->n * m * m) / (a->n - 1);
    return v > 0 ? sqrt(v) : 0;
}

/* Enrolls rows pick[0..np) of emb (labels from lab) into a fresh gallery at
 * path, stores threshold t, returns it open. */
static sm_gallery *make_gallery(const char *path, const sm_gallery_model *gm, const float *emb, int64_t d,
                                const int32_t *lab, char **names, const int64_t *pick, int np, float t,
                                int64_t *ids)
{
    sm_err err = {0};
    unlink(path);
    char side[1100];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    sm_gallery *g = NULL;
    sm_gallery_options co = {.create = true};
    if (sm_gallery_open(&g, path, gm, &co, &err)) die("gallery", &err);
    sm_gallery_item it[64];
    for (int i = 0; i < np; i++)
        it[i] = (sm_gallery_item){.label = names[lab[pick[i]]], .embedding = emb + pick[i] * d};
    if (sm_gallery_enroll(g, it, np, ids, NULL, &err)) die("enroll", &err);
    if (sm_gallery_set_threshold(g, t, 0, 0, "scenario", &err)) die("threshold", &err);
    return g;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *data = "fashion-mnist", *unseen = "6-9", *known = "0-5";
    int draws = 20, threads = 0;
    double far = 0.01;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--unseen")) unseen = v;
        else if (!strcmp(a, "--known")) known = v;
        else if (!strcmp(a, "--draws")) draws = atoi(v);
        else if (!strcmp(a, "--far")) far = atof(v);
        else if (!strcmp(a, "--seed")) seed = (uint64_t)atoll(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else { fprintf(stderr, "scenario: unknown option %s\n", a); return 2; }
    }
    if (!model || draws < 1) {
        fprintf(stderr, "usage: scenario --model M [--data fashion-mnist] [--unseen 6-9] [--known 0-5] [--draws 20] [--far 0.01]\n");
        return 2;
    }
    sm_threads_set(threads);
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, model, &err)) die("model", &err);
    sm_gallery_model gm = {.dim = sm_model_dim(m), .name = model};
    sm_model_identity(m, gm.id);
    int64_t d = gm.dim;
    sm_dataset test = {0}, u = {0}, k = {0};
    if (sm_dataset_open(data, NULL, &test, &err)) die("data", &err);
    int32_t uc[64], kc[64];
    int64_t nu = 0, nk = 0;
    if (sm_dataset_parse_classes(unseen, uc, 64, &nu, &err) || sm_dataset_parse_classes(known, kc, 64, &nk, &err) ||
        sm_dataset_subset(&test, uc, nu, false, &u, &err) || sm_dataset_subset(&test, kc, nk, false, &k, &err))
        die("classes", &err);
    float *eu = malloc(sizeof(float) * (size_t)(u.n * d)), *ek = malloc(sizeof(float) * (size_t)(k.n * d));
    if (!eu || !ek || sm_embed_dataset(m, &u, eu, &err) || sm_embed_dataset(m, &k, ek, &err)) die("embed", &err);

    /* threshold from the known classes (what `simile calibrate --classes 0-5` does) */
    sm_pairs pairs;
    sm_roc_point pt;
    if (sm_eval_pairs(&pairs, ek, k.labels, k.n, d, 200000, 200000, 1, &err) ||
        sm_eval_roc(&pt, pairs.sim, pairs.same, pairs.n, &far, 1, &err))
        die("calibration", &err);
    sm_pairs_free(&pairs);
    float t = pt.threshold;

    /* rows of each unseen class */
    int64_t *byc = malloc(sizeof(int64_t) * (size_t)u.n), start[65] = {0};
    for (int c = 0; c < nu; c++) {
        start[c + 1] = start[c];
        for (int64_t i = 0; i < u.n; i++)
            if (u.labels[i] == uc[c]) byc[start[c + 1]++] = i;
    }
    char dir[] = "/tmp/simile-scenario.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char gpath[256];
    snprintf(gpath, sizeof gpath, "%s/g.db", dir);
    int64_t *hid = malloc(sizeof(int64_t) * (size_t)u.n);
    float *hs = malloc(sizeof(float) * (size_t)u.n), *q = malloc(sizeof(float) * (size_t)(u.n * d));
    int32_t *ql = malloc(sizeof(int32_t) * (size_t)u.n);
    stat_acc top1 = {0}, open = {0}, ident = {0}, reject = {0};
    int64_t cls_ok[64] = {0}, cls_n[64] = {0}, conf[64][64] = {{0}};   /* closed set, per unseen class */
    sm_rng r;
    sm_rng_seed(&r, seed);
    for (int dr = 0; dr < draws; dr++) {
        int64_t pick[64], ids[64];
        int32_t id2class[64];
        for (int c = 0; c < nu; c++) pick[c] = byc[start[c] + (int64_t)sm_rng_below(&r, (uint64_t)(start[c + 1] - start[c]))];
        /* closed set: every unseen class enrolled */
        sm_gallery *g = make_gallery(gpath, &gm, eu, d, u.labels, test.class_names, pick, (int)nu, t, ids);
        int64_t nq = 0;
        for (int64_t i = 0; i < u.n; i++) {
            bool enrolled = false;
            for (int c = 0; c < nu; c++) enrolled |= pick[c] == i;
            if (enrolled) continue;
            memcpy(q + nq * d, eu + i * d, sizeof(float) * (size_t)d);
            ql[nq++] = u.labels[i];
        }
        if (sm_gallery_search(g, q, nq, d, 1, NULL, hid, hs, &err)) die("search", &err);
        int64_t ok = 0;
        for (int64_t i = 0; i < nq; i++) {
            int qc = 0;
            while (qc < nu && uc[qc] != ql[i]) qc++;
            cls_n[qc]++;
            for (int c = 0; c < nu; c++)
                if (hid[i] == ids[c]) {
                    ok += u.labels[pick[c]] == ql[i];
                    cls_ok[qc] += u.labels[pick[c]] == ql[i];
                    conf[qc][c]++;
                }
        }
        acc_add(&top1, (double)ok / (double)nq);
        sm_gallery_close(g);

        /* open set: a random half of the unseen classes enrolled */
        int order[64];
        for (int c = 0; c < nu; c++) order[c] = c;
        for (int c = (int)nu - 1; c > 0; c--) {
            int j = (int)sm_rng_below(&r, (uint64_t)c + 1), tmp = order[c];
            order[c] = order[j];
            order[j] = tmp;
        }
        int ne = (int)(nu / 2 > 0 ? nu / 2 : 1);
        int64_t p2[64];
        bool in_g[65536] = {false};
        for (int c = 0; c < ne; c++) {
            p2[c] = pick[order[c]];
            in_g[u.labels[p2[c]]] = true;
        }
        g = make_gallery(gpath, &gm, eu, d, u.labels, test.class_names, p2, ne, t, ids);
        for (int c = 0; c < ne; c++) id2class[c] = u.labels[p2[c]];
        nq = 0;
        for (int64_t i = 0; i < u.n; i++) {
            bool enrolled = false;
            for (int c = 0; c < ne; c++) enrolled |= p2[c] == i;
            if (enrolled) continue;
            memcpy(q + nq * d, eu + i * d, sizeof(float) * (size_t)d);
            ql[nq++] = u.labels[i];
        }
        sm_gallery_info info;
        if (sm_gallery_info_get(g, &info, &err) || sm_gallery_search(g, q, nq, d, 1, NULL, hid, hs, &err))
            die("search", &err);
        int64_t good = 0, nin = 0, gin = 0, nout = 0, gout = 0;
        for (int64_t i = 0; i < nq; i++) {
            bool accept = hs[i] > info.threshold;
            int32_t cls = -1;
            for (int c = 0; c < ne; c++)
                if (hid[i] == ids[c]) cls = id2class[c];
            if (in_g[ql[i]]) {
                nin++;
                bool right = accept && cls == ql[i];
                gin += right;
                good += right;
            } else {
                nout++;
                gout += !accept;
                good += !accept;
            }
        }
        acc_add(&open, (double)good / (double)nq);
        acc_add(&ident, nin ? (double)gin / (double)nin : 0);
        acc_add(&reject, nout ? (double)gout / (double)nout : 0);
        sm_gallery_close(g);
    }
    unlink(gpath);
    char side[300];
    snprintf(side, sizeof side, "%s-wal", gpath);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", gpath);
    unlink(side);
    rmdir(dir);
    printf("{\"model\": \"%s\", \"draws\": %d, \"unseen\": \"%s\", \"known\": \"%s\", \"threshold\": %.4f, "
           "\"calib_far\": %.4f, \"calib_tar\": %.4f, \"top1\": %.4f, \"top1_std\": %.4f, \"open_acc\": %.4f, "
           "\"open_acc_std\": %.4f, \"open_ident\": %.4f, \"open_reject\": %.4f}\n",
           model, draws, unseen, known, (double)t, pt.far, pt.tar, acc_mean(&top1), acc_std(&top1), acc_mean(&open),
           acc_std(&open), acc_mean(&ident), acc_mean(&reject));
    /* per unseen class: closed-set top-1 and where its queries went */
    for (int c = 0; c < nu; c++) {
        fprintf(stderr, "scenario: %-12s top-1 %.3f; answered as", test.class_names[uc[c]],
                cls_n[c] ? (double)cls_ok[c] / (double)cls_n[c] : 0.0);
        for (int j = 0; j < nu; j++)
            fprintf(stderr, " %s %.2f%s", test.class_names[uc[j]], cls_n[c] ? (double)conf[c][j] / (double)cls_n[c] : 0.0,
                    j + 1 < nu ? "," : "\n");
    }
    free(eu);
    free(ek);
    free(byc);
    free(hid);
    free(hs);
    free(q);
    free(ql);
    sm_dataset_free(&test);
    sm_dataset_free(&u);
    sm_dataset_free(&k);
    sm_model_free(m);
    return 0;
}
