/* test_eval.c - tests of the evaluation metrics (src/eval.c).
 *
 * Oracles: hand-computed tiny cases (worked in the comments), a naive full-sort
 * implementation written here from the definitions (qsort of every row, P(i)
 * recounted from scratch), and a fixture computed independently in numpy
 * (tools/gen_eval_ref.py). Data for the randomized comparisons take values in
 * multiples of 1/4, so every dot product is exact in float whatever the
 * summation order: the library's BLAS and the oracle's double loop agree to
 * the bit, and there are many exact ties to exercise the tie rule. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simile.h"
#include "gemm.h"
#include "harness.h"
#include "rng.h"

#define PI 3.14159265358979323846

static bool near(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* ------------------------------------------------------- naive oracle */

typedef struct { double s; int64_t j; } scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;   /* similarity descending */
    return (x->j > y->j) - (x->j < y->j);            /* then index ascending */
}

/* Full sort of every query's row, metrics straight from the definitions.
 * sims (nq, nr) given; NULL means compute the dot products in double. */
static void naive_retrieval(sm_retrieval_metrics *m, const float *q, const int32_t *ql, int64_t nq,
                            const float *r, const int32_t *rl, int64_t nr, int64_t d, bool same,
                            const float *sims)
{
    memset(m, 0, sizeof *m);
    scored *row = malloc((size_t)nr * sizeof *row);
    double p1 = 0, rp = 0, map = 0, rec[4] = {0}, knn = 0;
    int64_t nv = 0;
    for (int64_t i = 0; i < nq; i++) {
        int64_t n = 0, R = 0;
        for (int64_t j = 0; j < nr; j++) {
            if (same && j == i) continue;
            double s = 0;
            if (sims) s = sims[i * nr + j];
            else for (int64_t t = 0; t < d; t++) s += (double)q[i * d + t] * r[j * d + t];
            row[n].s = s; row[n].j = j; n++;
            R += rl[j] == ql[i];
        }
        qsort(row, (size_t)n, sizeof *row, cmp_scored);
        knn += rl[row[0].j] == ql[i];
        if (R == 0) continue;
        nv++;
        p1 += rl[row[0].j] == ql[i];
        int64_t inr = 0;
        for (int64_t t = 0; t < R; t++) inr += rl[row[t].j] == ql[i];
        rp += (double)inr / (double)R;
        double ap = 0;
        for (int64_t t = 0; t < R; t++) {
            if (rl[row[t].j] != ql[i]) continue;
            int64_t c = 0;   /* precision at rank t+1, recounted */
            for (int64_t u = 0; u <= t; u++) c += rl[row[u].j] == ql[i];
            ap += (double)c / (double)(t + 1);
        }
        map += ap / (double)R;
        for (int k = 0; k < 4; k++) {
            int any = 0;
            for (int64_t u = 0; u < SM_EVAL_RECALL_K[k] && u < n; u++) any |= rl[row[u].j] == ql[i];
            rec[k] += any;
        }
    }
    free(row);
    m->n_queries = nq;
    m->n_valid = nv;
    double inv = nv ? 1.0 / (double)nv : 0.0;
    m->precision_at_1 = p1 * inv;
    m->r_precision = rp * inv;
    m->map_at_r = map * inv;
    for (int k = 0; k < 4; k++) m->recall_at_k[k] = rec[k] * inv;
    m->knn_accuracy = knn / (double)nq;
}

static void check_same(const char *what, const sm_retrieval_metrics *a,
                       const sm_retrieval_metrics *b, double tol)
{
    bool ok = a->n_queries == b->n_queries && a->n_valid == b->n_valid &&
              near(a->precision_at_1, b->precision_at_1, tol) &&
              near(a->r_precision, b->r_precision, tol) && near(a->map_at_r, b->map_at_r, tol) &&
              near(a->knn_accuracy, b->knn_accuracy, tol);
    for (int k = 0; k < 4; k++) ok = ok && near(a->recall_at_k[k], b->recall_at_k[k], tol);
    CHECKF(ok, "%s: got p1 %.9f rp %.9f map %.9f r@1,2,4,8 %.6f %.6f %.6f %.6f knn %.6f nv %lld; "
           "want p1 %.9f rp %.9f map %.9f r@k %.6f %.6f %.6f %.6f knn %.6f nv %lld", what,
           a->precision_at_1, a->r_precision, a->map_at_r, a->recall_at_k[0], a->recall_at_k[1],
           a->recall_at_k[2], a->recall_at_k[3], a->knn_accuracy, (long long)a->n_valid,
           b->precision_at_1, b->r_precision, b->map_at_r, b->recall_at_k[0], b->recall_at_k[1],
           b->recall_at_k[2], b->recall_at_k[3], b->knn_accuracy, (long long)b->n_valid);
}

/* Rows with entries in {-2,...,2}/4: exact dot products. Labels in [0, ncls). */
static void quarter_data(float *x, int32_t *lab, int64_t n, int64_t d, int ncls, sm_rng *rng)
{
    for (int64_t i = 0; i < n * d; i++) x[i] = (float)((int)sm_rng_below(rng, 5) - 2) * 0.25f;
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)sm_rng_below(rng, (uint64_t)ncls);
}

/* ------------------------------------------------------- hand cases */

/* Six points on the unit circle (angles in degrees), labels A=0, B=1:
 *   p0 0 A, p1 20 A, p2 50 B, p3 90 A, p4 180 B, p5 240 B.
 * cos is decreasing in the angular distance, so rank by distance:
 *   q0: p1(20) p2(50) p3(90) p5(120) p4(180)  rel 1 0 1 0 0
 *   q1: p0(20) p2(30) p3(70) p5(140) p4(160)  rel 1 0 1 0 0
 *   q2: p1(30) p3(40) p0(50) p4(130) p5(170)  rel 0 0 0 1 1
 *   q3: p2(40) p1(70) p0(90) p4(90) p5(150)   rel 0 1 1 0 0  (p0/p4 tie: index order)
 *   q4: p5(60) p3(90) p2(130) p1(160) p0(180) rel 1 0 1 0 0
 *   q5: p4(60) p0(120) p1(140) p3(150) p2(170) rel 1 0 0 0 1
 * Leave-one-out, R = 2 for every query.
 *   P@1: 1 1 0 0 1 1 -> 4/6.  R-precision (hits in top 2 / 2): .5 .5 0 .5 .5 .5 -> 2.5/6.
 *   MAP@R = (1/2)(P(1)rel(1) + P(2)rel(2)): .5 .5 0 (1/2)(1/2)=.25 .5 .5 -> 2.25/6 = 0.375.
 *   Recall@1 = 4/6; @2: all but q2 -> 5/6; @4, @8: 1. kNN accuracy = P@1 = 4/6. */
static void test_circle(void)
{
    const double deg[6] = {0, 20, 50, 90, 180, 240};
    const int32_t lab[6] = {0, 0, 1, 0, 1, 1};
    float x[12];
    for (int i = 0; i < 6; i++) {
        x[2 * i] = (float)cos(deg[i] * PI / 180);
        x[2 * i + 1] = (float)sin(deg[i] * PI / 180);
    }
    x[6] = 0.0f; x[7] = 1.0f; x[8] = -1.0f; x[9] = 0.0f;   /* exact 90 and 180: the q3 tie is exact */
    sm_retrieval_metrics m, want = {0};
    sm_err err = {0};
    CHECK(sm_eval_retrieval(&m, x, lab, 6, x, lab, 6, 2, true, &err) == SM_OK);
    want.precision_at_1 = 4.0 / 6; want.r_precision = 2.5 / 6; want.map_at_r = 0.375;
    want.recall_at_k[0] = 4.0 / 6; want.recall_at_k[1] = 5.0 / 6;
    want.recall_at_k[2] = 1; want.recall_at_k[3] = 1;
    want.knn_accuracy = 4.0 / 6; want.n_queries = 6; want.n_valid = 6;
    check_same("circle leave-one-out", &m, &want, 1e-12);

    /* Not leave-one-out: each query finds itself at rank 1 (sim 1) and R = 3.
     * q0: p0 p1 p2 p3 ...  rel 1 1 0 1: RP 2/3, MAP (1 + 1 + 0)/3 = 2/3.
     * q2: p2 p1 p3 p0 p4 p5 rel 1 0 0 0 1 1: RP 1/3, MAP 1/3.
     * q3: p3 p2 p1 p0 ...  rel 1 0 1 1: RP 2/3, MAP (1 + 0 + 2/3)/3 = 5/9. */
    CHECK(sm_eval_retrieval(&m, x, lab, 6, x, lab, 6, 2, false, &err) == SM_OK);
    CHECKF(near(m.precision_at_1, 1.0, 1e-12) && near(m.knn_accuracy, 1.0, 1e-12),
           "self match: p1 %g knn %g", m.precision_at_1, m.knn_accuracy);
    sm_retrieval_metrics n3;
    naive_retrieval(&n3, x, lab, 6, x, lab, 6, 2, false, NULL);
    check_same("circle with self vs naive", &m, &n3, 1e-12);
    CHECK(sm_eval_retrieval(&m, x + 4, lab + 2, 2, x, lab, 6, 2, false, &err) == SM_OK);
    CHECKF(near(m.r_precision, (1.0 / 3 + 2.0 / 3) / 2, 1e-12) &&
           near(m.map_at_r, (1.0 / 3 + 5.0 / 9) / 2, 1e-12),
           "q2,q3 with self: rp %.9f map %.9f", m.r_precision, m.map_at_r);
}

/* Ties at rank 1 decide P@1 and MAP@R. Query (0,1) label A against
 *   r0 (1,0) B, r1 (-1,0) A, r2 (0,-1) A: sims 0, 0, -1, R = 2.
 * Index order puts r0 first: rel 0 1 1 -> P@1 0, RP 1/2, MAP (1/2)(1/2) = 0.25,
 * Recall@1 0, Recall@2 1. Swapping r0 and r1 gives rel 1 0 1 -> P@1 1, MAP 0.5. */
static void test_ties(void)
{
    float q[2] = {0, 1};
    int32_t ql[1] = {7};
    float r[6] = {1, 0, -1, 0, 0, -1};
    int32_t rl[3] = {3, 7, 7};
    sm_retrieval_metrics m;
    CHECK(sm_eval_retrieval(&m, q, ql, 1, r, rl, 3, 2, false, NULL) == SM_OK);
    CHECKF(m.precision_at_1 == 0.0 && m.r_precision == 0.5 && m.map_at_r == 0.25 &&
           m.recall_at_k[0] == 0.0 && m.recall_at_k[1] == 1.0,
           "tie, other label first: p1 %g rp %g map %g r1 %g r2 %g", m.precision_at_1,
           m.r_precision, m.map_at_r, m.recall_at_k[0], m.recall_at_k[1]);
    float r2[6] = {-1, 0, 1, 0, 0, -1};
    int32_t rl2[3] = {7, 3, 7};
    CHECK(sm_eval_retrieval(&m, q, ql, 1, r2, rl2, 3, 2, false, NULL) == SM_OK);
    CHECKF(m.precision_at_1 == 1.0 && m.map_at_r == 0.5 && m.r_precision == 0.5,
           "tie, same label first: p1 %g rp %g map %g", m.precision_at_1, m.r_precision, m.map_at_r);
}

/* Queries with R = 0 leave the [valid] means and count as kNN misses.
 * Same-set, labels 0 0 9: row 2 is alone. Rows 0 and 1 are each other's nearest
 * (sims .8, .6 and 0), so the valid queries score 1 everywhere; kNN = 2/3.
 * Cross-set: a query of label 5 absent from the references likewise. */
static void test_lone_queries(void)
{
    float x[6] = {1, 0, 0.8f, 0.6f, 0.6f, -0.8f};
    int32_t lab[3] = {0, 0, 9};
    sm_retrieval_metrics m;
    CHECK(sm_eval_retrieval(&m, x, lab, 3, x, lab, 3, 2, true, NULL) == SM_OK);
    CHECKF(m.n_valid == 2 && m.precision_at_1 == 1.0 && m.map_at_r == 1.0 && m.r_precision == 1.0 &&
           m.recall_at_k[3] == 1.0 && near(m.knn_accuracy, 2.0 / 3, 1e-15),
           "lone same-set: nv %lld p1 %g map %g knn %g", (long long)m.n_valid, m.precision_at_1,
           m.map_at_r, m.knn_accuracy);
    int32_t ql[2] = {0, 5};
    CHECK(sm_eval_retrieval(&m, x, ql, 2, x, lab, 3, 2, false, NULL) == SM_OK);
    CHECKF(m.n_valid == 1 && m.n_queries == 2 && m.precision_at_1 == 1.0 && m.knn_accuracy == 0.5,
           "lone cross-set: nv %lld p1 %g knn %g", (long long)m.n_valid, m.precision_at_1,
           m.knn_accuracy);
    int32_t none[1] = {5};
    CHECK(sm_eval_retrieval(&m, x, none, 1, x, lab, 3, 2, false, NULL) == SM_OK);
    CHECKF(m.n_valid == 0 && m.precision_at_1 == 0.0 && m.map_at_r == 0.0 && m.knn_accuracy == 0.0,
           "no valid query: nv %lld", (long long)m.n_valid);
}

static void test_errors(void)
{
    float x[4] = {1, 0, 0, 1};
    int32_t lab[2] = {0, 0};
    sm_retrieval_metrics m;
    sm_err err = {0};
    CHECK(sm_eval_retrieval(&m, x, lab, 2, x, lab, 1, 2, true, &err) == SM_ERR_ARG);
    CHECK(strstr(err.msg, "same_set") != NULL);
    CHECK(sm_eval_retrieval(&m, x, lab, 1, x, lab, 1, 2, true, &err) == SM_ERR_ARG);
    CHECK(sm_eval_retrieval(&m, x, lab, 0, x, lab, 2, 2, false, &err) == SM_ERR_ARG);
    x[3] = NAN;
    CHECK(sm_eval_retrieval(&m, x, lab, 2, x, lab, 2, 2, false, &err) == SM_ERR_NAN);
    CHECK(m.n_queries == 0);
}

/* Larger random cases against the naive oracle: leave-one-out with R well
 * above 8 and many exact ties; cross-set with lone queries; few references
 * (fewer than 8, so Recall@8 sees them all). */
static void test_random_vs_naive(void)
{
    sm_rng rng;
    sm_rng_seed(&rng, 42);
    const int64_t n = 700, d = 8;   /* 700 = 2 full blocks of 256 + 188 */
    float *x = malloc((size_t)(n * d) * sizeof *x);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    quarter_data(x, lab, n, d, 12, &rng);
    sm_retrieval_metrics m, want;
    CHECK(sm_eval_retrieval(&m, x, lab, n, x, lab, n, d, true, NULL) == SM_OK);
    naive_retrieval(&want, x, lab, n, x, lab, n, d, true, NULL);
    check_same("random leave-one-out vs naive", &m, &want, 1e-12);
    printf("ok   random loo: p1 %.4f rp %.4f map@r %.4f r@8 %.4f\n", m.precision_at_1,
           m.r_precision, m.map_at_r, m.recall_at_k[3]);

    /* Queries = first 300 rows with relabelled lone ones; references = rest. */
    int32_t *ql = malloc(300 * sizeof *ql);
    for (int i = 0; i < 300; i++) ql[i] = i % 37 == 0 ? 99 : lab[i];
    CHECK(sm_eval_retrieval(&m, x, ql, 300, x + 300 * d, lab + 300, n - 300, d, false, NULL) == SM_OK);
    naive_retrieval(&want, x, ql, 300, x + 300 * d, lab + 300, n - 300, d, false, NULL);
    check_same("random cross-set vs naive", &m, &want, 1e-12);
    CHECK(m.n_valid == 300 - 9);

    CHECK(sm_eval_retrieval(&m, x, ql, 300, x + 300 * d, lab + 300, 5, d, false, NULL) == SM_OK);
    naive_retrieval(&want, x, ql, 300, x + 300 * d, lab + 300, 5, d, false, NULL);
    check_same("5 references vs naive", &m, &want, 1e-12);

    /* Gaussian, normalised rows: sims through sm_gemm for the oracle too. */
    const int64_t nq = 300, nr = 900, dg = 24;
    float *g = malloc((size_t)((nq + nr) * dg) * sizeof *g);
    int32_t *gl = malloc((size_t)(nq + nr) * sizeof *gl);
    for (int64_t i = 0; i < nq + nr; i++) {
        double s = 0;
        gl[i] = (int32_t)sm_rng_below(&rng, 20);
        for (int64_t t = 0; t < dg; t++) {
            g[i * dg + t] = (float)sm_rng_normal(&rng) + (t == gl[i] ? 2.0f : 0.0f);
            s += (double)g[i * dg + t] * g[i * dg + t];
        }
        for (int64_t t = 0; t < dg; t++) g[i * dg + t] = (float)(g[i * dg + t] / sqrt(s));
    }
    float *sims = malloc((size_t)(nq * nr) * sizeof *sims);
    sm_gemm(false, true, nq, nr, dg, 1.0f, g, dg, g + nq * dg, dg, 0.0f, sims, nr);
    CHECK(sm_eval_retrieval(&m, g, gl, nq, g + nq * dg, gl + nq, nr, dg, false, NULL) == SM_OK);
    naive_retrieval(&want, g, gl, nq, g + nq * dg, gl + nq, nr, dg, false, sims);
    check_same("gaussian cross-set vs naive", &m, &want, 1e-12);
    free(sims); free(g); free(gl);
    free(x); free(lab); free(ql);
}

/* Block boundaries and thread counts must not change anything: one call on
 * 700 queries equals seven calls on 100 (recombined through n_valid), and one
 * thread gives the bit-identical struct that two give. */
static void test_blocks_threads(void)
{
    sm_rng rng;
    sm_rng_seed(&rng, 7);
    const int64_t nq = 700, nr = 2500, d = 64;
    float *x = malloc((size_t)((nq + nr) * d) * sizeof *x);
    int32_t *lab = malloc((size_t)(nq + nr) * sizeof *lab);
    for (int64_t i = 0; i < (nq + nr) * d; i++) x[i] = (float)sm_rng_normal(&rng) * 0.125f;
    for (int64_t i = 0; i < nq + nr; i++) lab[i] = (int32_t)sm_rng_below(&rng, 30);
    const float *r = x + nq * d;
    const int32_t *rl = lab + nq;
    sm_retrieval_metrics whole, part;
    CHECK(sm_eval_retrieval(&whole, x, lab, nq, r, rl, nr, d, false, NULL) == SM_OK);
    double p1 = 0, map = 0, knn = 0;
    int64_t nv = 0;
    for (int64_t q0 = 0; q0 < nq; q0 += 100) {
        CHECK(sm_eval_retrieval(&part, x + q0 * d, lab + q0, 100, r, rl, nr, d, false, NULL) == SM_OK);
        p1 += part.precision_at_1 * (double)part.n_valid;
        map += part.map_at_r * (double)part.n_valid;
        knn += part.knn_accuracy * 100;
        nv += part.n_valid;
    }
    CHECKF(nv == whole.n_valid && near(p1 / (double)nv, whole.precision_at_1, 1e-12) &&
           near(map / (double)nv, whole.map_at_r, 1e-12) && near(knn / nq, whole.knn_accuracy, 1e-12),
           "blocks of 100: p1 %.12f vs %.12f, map %.12f vs %.12f", p1 / (double)nv,
           whole.precision_at_1, map / (double)nv, whole.map_at_r);

    int before = sm_threads_get();
    sm_retrieval_metrics t1, t2, l1, l2;
    sm_threads_set(1);
    CHECK(sm_eval_retrieval(&t1, x, lab, nq, r, rl, nr, d, false, NULL) == SM_OK);
    CHECK(sm_eval_retrieval(&l1, r, rl, nr, r, rl, nr, d, true, NULL) == SM_OK);
    sm_threads_set(2);
    CHECK(sm_eval_retrieval(&t2, x, lab, nq, r, rl, nr, d, false, NULL) == SM_OK);
    CHECK(sm_eval_retrieval(&l2, r, rl, nr, r, rl, nr, d, true, NULL) == SM_OK);
    sm_threads_set(before);
    CHECK(memcmp(&t1, &t2, sizeof t1) == 0);
    CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    CHECK(memcmp(&t1, &whole, sizeof t1) == 0);
    free(x); free(lab);
}

/* tests/fixtures/eval_ref.txt from tools/gen_eval_ref.py (numpy, lexsort):
 * "n d same_set" then n lines "label x_1 ... x_d", then one line of
 * n_valid p1 rp map r1 r2 r4 r8 knn. Cases are separated by their headers. */
static void test_numpy_fixture(void)
{
    FILE *f = fopen("tests/fixtures/eval_ref.txt", "r");
    CHECKF(f != NULL, "cannot open tests/fixtures/eval_ref.txt (run from the repo root; "
           "regenerate with /usr/bin/python3 tools/gen_eval_ref.py)");
    if (!f) return;
    long n, d, same;
    int cases = 0;
    while (fscanf(f, "%ld %ld %ld", &n, &d, &same) == 3) {
        float *x = malloc((size_t)(n * d) * sizeof *x);
        int32_t *lab = malloc((size_t)n * sizeof *lab);
        int ok = 1;
        for (long i = 0; i < n && ok; i++) {
            ok = fscanf(f, "%d", &lab[i]) == 1;
            for (long t = 0; t < d && ok; t++) ok = fscanf(f, "%f", &x[i * d + t]) == 1;
        }
        long long nv;
        double v[8];
        ok = ok && fscanf(f, "%lld %lf %lf %lf %lf %lf %lf %lf %lf", &nv, &v[0], &v[1], &v[2], &v[3],
                          &v[4], &v[5], &v[6], &v[7]) == 9;
        CHECKF(ok, "fixture case %d is truncated", cases);
        if (!ok) { free(x); free(lab); break; }
        /* same = 1: leave-one-out on all rows; 0: first half queries, second half refs */
        sm_retrieval_metrics m, want = {0};
        long nq = same ? n : n / 2;
        if (same) CHECK(sm_eval_retrieval(&m, x, lab, n, x, lab, n, d, true, NULL) == SM_OK);
        else CHECK(sm_eval_retrieval(&m, x, lab, nq, x + nq * d, lab + nq, n - nq, d, false, NULL) == SM_OK);
        want.n_queries = nq; want.n_valid = nv;
        want.precision_at_1 = v[0]; want.r_precision = v[1]; want.map_at_r = v[2];
        for (int k = 0; k < 4; k++) want.recall_at_k[k] = v[3 + k];
        want.knn_accuracy = v[7];
        char what[64];
        snprintf(what, sizeof what, "numpy fixture case %d", cases);
        check_same(what, &m, &want, 1e-9);
        cases++;
        free(x); free(lab);
    }
    fclose(f);
    CHECKF(cases >= 2, "fixture held %d cases", cases);
}

/* ------------------------------------------------- classification */

static void test_accuracy_argmax(void)
{
    const float logits[4 * 3] = {0.1f, 0.7f, 0.2f,    /* 1 */
                                 2, 2, 1,             /* tie: lowest column, 0 */
                                 NAN, 5, 6,           /* NaN first: nothing is > NaN, 0 */
                                 -1, -3, -0.5f};      /* 2 */
    int32_t pred[4];
    sm_argmax_rows(pred, logits, 4, 3);
    CHECKF(pred[0] == 1 && pred[1] == 0 && pred[2] == 0 && pred[3] == 2, "argmax %d %d %d %d",
           pred[0], pred[1], pred[2], pred[3]);
    const int32_t lab[4] = {1, 1, 0, 2};
    CHECK(sm_eval_accuracy(pred, lab, 4) == 0.75);
    CHECK(sm_eval_accuracy(pred, lab, 0) == 0.0);
}

/* ---------------------------------------------------------- ROC */

/* Positives .9 .8 .7 .4; negatives (descending) .85 .6 .5 .3 .2 .1 0 -.1 -.2 -.3.
 *   FAR 0:    a = 0,  t = .85 -> TAR 1/4 (.9), FAR 0
 *   FAR .1:   a = 1,  t = .6  -> TAR 3/4, FAR .1 (.85)
 *   FAR .25:  a = 2,  t = .5  -> TAR 3/4, FAR .2
 *   FAR .3:   a = 3,  t = .3  -> TAR 1,   FAR .3
 *   FAR 1:    a = 10, t = -inf -> TAR 1, FAR 1 */
static void test_roc(void)
{
    const float sim[14] = {0.9f, 0.8f, 0.7f, 0.4f, 0.85f, 0.6f, 0.5f, 0.3f, 0.2f, 0.1f, 0.0f,
                           -0.1f, -0.2f, -0.3f};
    uint8_t same[14] = {1, 1, 1, 1};
    const double far[5] = {0, 0.1, 0.25, 0.3, 1};
    const double tar[5] = {0.25, 0.75, 0.75, 1, 1}, got_far[5] = {0, 0.1, 0.2, 0.3, 1};
    const float thr[5] = {0.85f, 0.6f, 0.5f, 0.3f, -INFINITY};
    sm_roc_point pt[5];
    sm_err err = {0};
    CHECK(sm_eval_roc(pt, sim, same, 14, far, 5, &err) == SM_OK);
    for (int i = 0; i < 5; i++)
        CHECKF(pt[i].threshold == thr[i] && pt[i].tar == tar[i] && near(pt[i].far, got_far[i], 1e-15) &&
               pt[i].far_target == far[i], "FAR %g: thr %g tar %g far %g", far[i],
               (double)pt[i].threshold, pt[i].tar, pt[i].far);

    /* Tied negatives .5 .5 .5 .1, FAR .5: a = 2, t = .5, nothing above it: FAR 0;
     * positives .5 .6 -> TAR 1/2 (the .5 is not > .5). */
    const float s2[6] = {0.5f, 0.6f, 0.5f, 0.5f, 0.5f, 0.1f};
    const uint8_t y2[6] = {1, 1, 0, 0, 0, 0};
    const double f2 = 0.5;
    CHECK(sm_eval_roc(pt, s2, y2, 6, &f2, 1, &err) == SM_OK);
    CHECKF(pt[0].threshold == 0.5f && pt[0].far == 0.0 && pt[0].tar == 0.5,
           "tied negatives: thr %g far %g tar %g", (double)pt[0].threshold, pt[0].far, pt[0].tar);

    /* Rounding: 0.57 * 100 = 56.99999999999999 in double, yet 57 false accepts
     * are allowed. Negatives k/100 (k = 0..99): t = .42, the positive .425 passes. */
    float s3[101];
    uint8_t y3[101] = {0};
    for (int k = 0; k < 100; k++) s3[k] = (float)k / 100.0f;
    s3[100] = 0.425f; y3[100] = 1;
    const double f3 = 0.57;
    CHECK(sm_eval_roc(pt, s3, y3, 101, &f3, 1, &err) == SM_OK);
    CHECKF(pt[0].threshold == 42.0f / 100.0f && pt[0].tar == 1.0 && near(pt[0].far, 0.57, 1e-15),
           "FAR .57 of 100: thr %g tar %g far %g", (double)pt[0].threshold, pt[0].tar, pt[0].far);

    /* -0.0 and +0.0 are one similarity: negatives -0 +0 -0, FAR 1/3 -> a = 1,
     * t = neg[1] = 0, returned as +0.0 whatever the order of the signed zeros. */
    const float s4[4] = {-0.0f, 0.0f, -0.0f, 1.0f};
    const uint8_t y4[4] = {0, 0, 0, 1};
    const double f4 = 1.0 / 3;
    CHECK(sm_eval_roc(pt, s4, y4, 4, &f4, 1, &err) == SM_OK);
    CHECKF(pt[0].threshold == 0.0f && !signbit(pt[0].threshold) && pt[0].far == 0.0 && pt[0].tar == 1.0,
           "signed zeros: thr %g (sign %d) far %g", (double)pt[0].threshold,
           (int)!!signbit(pt[0].threshold), pt[0].far);

    const double bad = 1.5;
    CHECK(sm_eval_roc(pt, sim, same, 14, &bad, 1, &err) == SM_ERR_ARG);
    CHECK(sm_eval_roc(pt, sim, same, 4, far, 1, &err) == SM_ERR_ARG);   /* no negatives */
}

/* Positives .9 .7 .3, negatives .8 .4 .2 .1 (n = 7). Raising t over the sorted
 * values .1n .2n .3p .4n .7p .8n .9p, correct = 3 (t=-inf), 4, 5, 4, 5, 4, 5, 4:
 * the best is 5/7, reached at t = .2, .4 and .8; the largest, .8, is returned.
 * A positive and a negative tied at .5 move together. */
static void test_best_threshold(void)
{
    const float sim[7] = {0.9f, 0.7f, 0.3f, 0.8f, 0.4f, 0.2f, 0.1f};
    const uint8_t same[7] = {1, 1, 1, 0, 0, 0, 0};
    double acc;
    float t;
    CHECK(sm_eval_best_threshold_accuracy(&acc, &t, sim, same, 7, NULL) == SM_OK);
    CHECKF(near(acc, 5.0 / 7, 1e-15) && t == 0.8f, "best: acc %g t %g", acc, (double)t);

    /* .5p .5n .9p .1n: t = .1 -> 3/4 (.5n wrongly accepted); t = .5 -> 3/4 too
     * (.5p rejected); the largest tie is .5. t = -inf: 2/4; t = .9: 2/4. */
    const float s2[4] = {0.5f, 0.5f, 0.9f, 0.1f};
    const uint8_t y2[4] = {1, 0, 1, 0};
    CHECK(sm_eval_best_threshold_accuracy(&acc, &t, s2, y2, 4, NULL) == SM_OK);
    CHECKF(acc == 0.75 && t == 0.5f, "tied pair: acc %g t %g", acc, (double)t);

    /* All positives: accepting everything (t = -inf) is perfect. */
    const uint8_t y3[4] = {1, 1, 1, 1};
    CHECK(sm_eval_best_threshold_accuracy(&acc, &t, s2, y3, 4, NULL) == SM_OK);
    CHECKF(acc == 1.0 && isinf(t) && t < 0, "all positive: acc %g t %g", acc, (double)t);
}

/* ---------------------------------------------------------- pairs */

static bool pairs_valid(const sm_pairs *p, const float *x, const int32_t *lab, int64_t n, int64_t d)
{
    bool ok = p->n == p->npos + p->nneg;
    for (int64_t k = 0; k < p->n && ok; k++) {
        int64_t i = p->i[k], j = p->j[k];
        ok = i >= 0 && i < j && j < n && p->same[k] == (k < p->npos) &&
             (lab[i] == lab[j]) == (p->same[k] == 1);
        if (k > 0 && k != p->npos)   /* each group strictly increasing in (i, j): distinct */
            ok = ok && (p->i[k - 1] < i || (p->i[k - 1] == i && p->j[k - 1] < j));
        double s = 0;
        for (int64_t t = 0; t < d; t++) s += (double)x[i * d + t] * x[j * d + t];
        ok = ok && p->sim[k] == (float)s;
    }
    return ok;
}

static void test_pairs(void)
{
    /* Labels 0 0 1 1 1 2: positives 1 + 3 = 4, negatives 15 - 4 = 11. */
    const int32_t lab[6] = {1, 1, 4, 4, 4, -2};
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)(i % 5) - 1.5f;
    sm_pairs p;
    sm_err err = {0};
    CHECK(sm_eval_pairs(&p, x, lab, 6, 2, 100, 100, 1, &err) == SM_OK);
    CHECKF(p.npos == 4 && p.nneg == 11 && pairs_valid(&p, x, lab, 6, 2), "all pairs: %lld + %lld",
           (long long)p.npos, (long long)p.nneg);
    CHECK(p.i[0] == 0 && p.j[0] == 1 && p.i[1] == 2 && p.j[1] == 3);
    sm_pairs_free(&p);
    sm_pairs_free(&p);
    sm_pairs_free(NULL);

    /* Sampling: drawn (max below half) and complement (max above half) paths. */
    CHECK(sm_eval_pairs(&p, x, lab, 6, 2, 1, 3, 5, &err) == SM_OK);
    CHECKF(p.npos == 1 && p.nneg == 3 && pairs_valid(&p, x, lab, 6, 2), "drawn: %lld + %lld",
           (long long)p.npos, (long long)p.nneg);
    sm_pairs q;
    CHECK(sm_eval_pairs(&q, x, lab, 6, 2, 1, 3, 5, &err) == SM_OK);
    CHECK(q.n == p.n && memcmp(q.i, p.i, (size_t)p.n * 4) == 0 && memcmp(q.j, p.j, (size_t)p.n * 4) == 0);
    sm_pairs_free(&p); sm_pairs_free(&q);
    CHECK(sm_eval_pairs(&p, x, lab, 6, 2, 3, 8, 5, &err) == SM_OK);
    CHECKF(p.npos == 3 && p.nneg == 8 && pairs_valid(&p, x, lab, 6, 2), "complement: %lld + %lld",
           (long long)p.npos, (long long)p.nneg);
    sm_pairs_free(&p);

    /* Uniformity: 3 of the 11 negatives per seed, 4000 seeds: each negative is
     * expected 4000*3/11 = 1091 times (sd ~ 28); and 3 of 4 positives via the
     * complement path, expected 3000 (sd ~ 27). Allow 6 sd. */
    int64_t cnt[36] = {0}, pcnt[36] = {0};
    int drawn_ok = 1;
    for (uint64_t seed = 0; seed < 4000; seed++) {
        drawn_ok &= sm_eval_pairs(&p, x, lab, 6, 2, 3, 3, seed, &err) == SM_OK && p.npos == 3 &&
                    p.nneg == 3 && pairs_valid(&p, x, lab, 6, 2);
        for (int64_t k = 0; k < p.n; k++) (k < p.npos ? pcnt : cnt)[p.i[k] * 6 + p.j[k]]++;
        sm_pairs_free(&p);
    }
    CHECK(drawn_ok);
    int64_t lo = 1 << 30, hi = 0, plo = 1 << 30, phi = 0;
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++) {
            int64_t *c = lab[i] == lab[j] ? pcnt : cnt;
            int64_t v = c[i * 6 + j];
            if (c == cnt) { lo = v < lo ? v : lo; hi = v > hi ? v : hi; }
            else { plo = v < plo ? v : plo; phi = v > phi ? v : phi; }
        }
    CHECKF(lo > 1091 - 170 && hi < 1091 + 170, "negatives drawn %lld..%lld times, want ~1091",
           (long long)lo, (long long)hi);
    CHECKF(plo > 3000 - 165 && phi < 3000 + 165, "positives drawn %lld..%lld times, want ~3000",
           (long long)plo, (long long)phi);

    CHECK(sm_eval_pairs(&p, x, lab, 1, 2, 1, 1, 0, &err) == SM_ERR_ARG);
    CHECK(p.n == 0 && p.sim == NULL);
}

int main(void)
{
    test_circle();
    test_ties();
    test_lone_queries();
    test_errors();
    test_random_vs_naive();
    test_blocks_threads();
    test_numpy_fixture();
    test_accuracy_argmax();
    test_roc();
    test_best_threshold();
    test_pairs();
    return th_done();
}
