/* test_index.c - exact, int8 and HNSW search against naive oracles. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm.h"
#include "harness.h"
#include "hnsw.h"
#include "index.h"
#include "rng.h"

/* n unit vectors of dim d around nc random centres (noise sigma per coordinate). */
static float *clustered(int64_t n, int64_t d, int64_t nc, double sigma, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    float *c = malloc(sizeof(float) * (size_t)(nc * d));
    float *x = malloc(sizeof(float) * (size_t)(n * d));
    for (int64_t i = 0; i < nc * d; i++) c[i] = (float)sm_rng_normal(&r);
    sm_l2norm_rows(c, c, nc, d);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)sm_rng_below(&r, (uint64_t)nc);
        for (int64_t j = 0; j < d; j++) x[i * d + j] = c[k * d + j] + (float)(sigma * sm_rng_normal(&r));
    }
    sm_l2norm_rows(x, x, n, d);
    free(c);
    return x;
}

/* Results agree with the oracle: same similarities (tol) at every rank, and
 * the same row wherever the oracle's neighbours at that rank are not tied
 * within tol. Returns the number of mismatching entries. */
static int64_t compare(const int64_t *idx, const float *sim, const int64_t *ridx, const float *rsim,
                       int64_t nq, int64_t k, double tol)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < nq * k; i++) {
        if (ridx[i] < 0) {
            bad += idx[i] != -1 || !(isinf(sim[i]) && sim[i] < 0);
            continue;
        }
        if (fabs((double)sim[i] - (double)rsim[i]) > tol) { bad++; continue; }
        if (idx[i] != ridx[i]) {
            int64_t j = i % k;
            bool tied = (j > 0 && fabs((double)rsim[i - 1] - rsim[i]) <= 2 * tol) ||
                        (j + 1 < k && fabs((double)rsim[i + 1] - rsim[i]) <= 2 * tol);
            bad += !tied;
        }
    }
    return bad;
}

static double recall(const int64_t *got, const int64_t *ref, int64_t nq, int64_t k)
{
    int64_t hit = 0;
    for (int64_t i = 0; i < nq; i++)
        for (int64_t a = 0; a < k; a++)
            for (int64_t b = 0; b < k; b++)
                if (got[i * k + a] == ref[i * k + b] && ref[i * k + b] >= 0) { hit++; break; }
    return (double)hit / (double)(nq * k);
}

static void test_topk(void)
{
    sm_rng r;
    sm_rng_seed(&r, 1);
    for (int trial = 0; trial < 50; trial++) {
        int64_t n = 1 + (int64_t)sm_rng_below(&r, 300), k = 1 + (int64_t)sm_rng_below(&r, 40);
        float *v = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) v[i] = (float)sm_rng_below(&r, 10);   /* many ties */
        float hs[64];
        int64_t hi[64], oi[64];
        float os[64];
        sm_topk t;
        sm_topk_init(&t, k, hs, hi);
        for (int64_t i = 0; i < n; i++) sm_topk_push(&t, v[i], i);
        sm_topk_finish(&t, oi, os);
        /* oracle: selection by (value desc, index asc) */
        bool ok = true;
        int64_t pos = 0;
        for (int val = 9; val >= 0 && pos < k; val--)
            for (int64_t i = 0; i < n && pos < k; i++)
                if (v[i] == (float)val) {
                    ok &= oi[pos] == i && os[pos] == (float)val;
                    pos++;
                }
        for (; pos < k; pos++) ok &= oi[pos] == -1 && isinf(os[pos]);
        CHECKF(ok, "trial %d n %lld k %lld", trial, (long long)n, (long long)k);
        free(v);
    }
}

static void test_flat(void)
{
    sm_err err = {0};
    /* odd dimension (tails of the vector loops), all three paths vs naive */
    int64_t n = 1500, d = 37, nq = 9, k = 10;
    float *base = clustered(n, d, 20, 0.3, 2), *q = clustered(nq, d, 20, 0.3, 3);
    int64_t *ri = malloc(sizeof(int64_t) * (size_t)(nq * k)), *gi = malloc(sizeof(int64_t) * (size_t)(nq * k));
    float *rs = malloc(sizeof(float) * (size_t)(nq * k)), *gs = malloc(sizeof(float) * (size_t)(nq * k));
    CHECK(sm_index_flat_naive(base, n, d, q, nq, k, ri, rs, &err) == SM_OK);
    CHECK(sm_index_flat_scan(base, n, d, q, nq, k, gi, gs, &err) == SM_OK);
    CHECKF(compare(gi, gs, ri, rs, nq, k, 1e-5) == 0, "scan differs from naive");
    CHECK(sm_index_flat_gemm(base, n, d, q, nq, k, gi, gs, &err) == SM_OK);
    CHECKF(compare(gi, gs, ri, rs, nq, k, 1e-5) == 0, "gemm differs from naive");
    CHECK(sm_index_flat_search(base, n, d, q, 1, k, gi, gs, &err) == SM_OK);
    CHECKF(compare(gi, gs, ri, rs, 1, k, 1e-5) == 0, "single-query search differs from naive");

    /* n < k: padded with (-1, -inf); n == 0 */
    CHECK(sm_index_flat_search(base, 3, d, q, nq, k, gi, gs, &err) == SM_OK);
    CHECK(gi[2] >= 0 && gi[3] == -1 && isinf(gs[3]) && gi[nq * k - 1] == -1);
    CHECK(sm_index_flat_gemm(base, 3, d, q, nq, k, gi, gs, &err) == SM_OK);
    CHECK(gi[2] >= 0 && gi[3] == -1 && isinf(gs[3]));
    CHECK(sm_index_flat_search(NULL, 0, d, q, 1, k, gi, gs, &err) == SM_OK && gi[0] == -1);

    /* k <= 0 and absurd k: clear errors */
    CHECK(sm_index_flat_search(base, n, d, q, 1, 0, gi, gs, &err) == SM_ERR_ARG && strstr(err.msg, "k must be"));
    CHECK(sm_index_flat_search(base, n, d, q, 1, -3, gi, gs, &err) == SM_ERR_ARG);
    CHECK(sm_index_flat_gemm(base, n, d, q, 8, 0, gi, gs, &err) == SM_ERR_ARG);
    CHECK(sm_index_q8_search(NULL, NULL, 0, d, q, 1, 0, NULL, 0, gi, gs, &err) == SM_ERR_ARG);

    /* exact ties: small integer vectors make every dot exact in float, so
     * all paths must agree bit for bit, ties ordered by row index */
    int64_t tn = 300, td = 16;
    float *tb = malloc(sizeof(float) * (size_t)(tn * td)), *tq = malloc(sizeof(float) * (size_t)(5 * td));
    sm_rng r;
    sm_rng_seed(&r, 4);
    for (int64_t i = 0; i < tn * td; i++) tb[i] = (float)((int)sm_rng_below(&r, 3) - 1);
    for (int64_t i = 0; i < 5 * td; i++) tq[i] = (float)((int)sm_rng_below(&r, 3) - 1);
    int64_t ti[5 * 20], ti2[5 * 20];
    float ts[5 * 20], ts2[5 * 20];
    CHECK(sm_index_flat_naive(tb, tn, td, tq, 5, 20, ti, ts, &err) == SM_OK);
    CHECK(sm_index_flat_scan(tb, tn, td, tq, 5, 20, ti2, ts2, &err) == SM_OK);
    CHECK(!memcmp(ti, ti2, sizeof ti) && !memcmp(ts, ts2, sizeof ts));
    CHECK(sm_index_flat_gemm(tb, tn, td, tq, 5, 20, ti2, ts2, &err) == SM_OK);
    CHECK(!memcmp(ti, ti2, sizeof ti) && !memcmp(ts, ts2, sizeof ts));
    bool order = true;
    for (int64_t i = 0; i < 5; i++)
        for (int64_t j = 1; j < 20; j++)
            order &= ts[i * 20 + j - 1] > ts[i * 20 + j] ||
                     (ts[i * 20 + j - 1] == ts[i * 20 + j] && ti[i * 20 + j - 1] < ti[i * 20 + j]);
    CHECKF(order, "ties not ordered by row index");
    free(tb);
    free(tq);

    /* a scan large enough to split over threads (n*d >= 2^20), with the same
     * result whatever the thread count */
    int64_t bn = 20000, bd = 64;
    float *bb = clustered(bn, bd, 50, 0.2, 5), *bq = clustered(2, bd, 50, 0.2, 6);
    int64_t bi[2 * 16], bi2[2 * 16];
    float bs[2 * 16], bs2[2 * 16];
    CHECK(sm_index_flat_naive(bb, bn, bd, bq, 2, 16, bi, bs, &err) == SM_OK);
    int old = sm_threads_get();
    int64_t old_split = sm_index_scan_split_min((int64_t)1 << 20);
    sm_threads_set(2);
    CHECK(sm_index_flat_scan(bb, bn, bd, bq, 2, 16, bi2, bs2, &err) == SM_OK);
    CHECKF(compare(bi2, bs2, bi, bs, 2, 16, 1e-5) == 0, "threaded scan differs from naive");
    int64_t bi3[2 * 16];
    float bs3[2 * 16];
    sm_threads_set(1);
    CHECK(sm_index_flat_scan(bb, bn, bd, bq, 2, 16, bi3, bs3, &err) == SM_OK);
    CHECKF(!memcmp(bi2, bi3, sizeof bi2) && !memcmp(bs2, bs3, sizeof bs2), "scan depends on the thread count");
    sm_threads_set(old);
    sm_index_scan_split_min(old_split);
    free(bb);
    free(bq);
    free(base);
    free(q);
    free(ri);
    free(gi);
    free(rs);
    free(gs);
}

static void test_int8(void)
{
    sm_err err = {0};
    int64_t n = 4000, d = 64, nq = 50, k = 10;
    float *base = clustered(n, d, 40, 0.25, 7), *q = clustered(nq, d, 40, 0.25, 8);
    int8_t *codes = malloc((size_t)(n * d));
    float *scales = malloc(sizeof(float) * (size_t)n), *back = malloc(sizeof(float) * (size_t)(n * d));
    sm_q8_encode(codes, scales, base, n, d);
    sm_q8_decode(back, codes, scales, n, d);
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            double e = fabs((double)back[i * d + j] - base[i * d + j]) / scales[i];
            worst = e > worst ? e : worst;
        }
    CHECKF(worst <= 0.5 + 1e-4, "quantisation error %.4f scales (max 0.5)", worst);
    /* zero row */
    float z[8] = {0};
    int8_t zc[8];
    float zs;
    sm_q8_encode(zc, &zs, z, 1, 8);
    CHECK(zs == 0.0f && zc[0] == 0 && zc[7] == 0);
    /* exact int32 code dot products, including the extremes */
    int8_t a[77], b[77];
    int32_t ref = 0;
    for (int i = 0; i < 77; i++) {
        a[i] = (int8_t)(i % 3 == 0 ? 127 : i % 3 == 1 ? -127 : i - 38);
        b[i] = (int8_t)(i % 2 ? -127 : 127);
        ref += (int32_t)a[i] * b[i];
    }
    CHECK(sm_dot_i8(a, b, 77) == ref);
    CHECK(sm_dot_i8(a, b, 64) == sm_dot_i8(a, b, 64));

    int64_t *ri = malloc(sizeof(int64_t) * (size_t)(nq * k)), *gi = malloc(sizeof(int64_t) * (size_t)(nq * k));
    float *rs = malloc(sizeof(float) * (size_t)(nq * k)), *gs = malloc(sizeof(float) * (size_t)(nq * k));
    CHECK(sm_index_flat_naive(base, n, d, q, nq, k, ri, rs, &err) == SM_OK);
    CHECK(sm_index_q8_search(codes, scales, n, d, q, nq, k, NULL, 0, gi, gs, &err) == SM_OK);
    double r0 = recall(gi, ri, nq, k);
    double se = 0;
    for (int64_t i = 0; i < nq * k; i++) se = fmax(se, fabs((double)gs[i] - rs[i]));
    CHECKF(r0 >= 0.85, "int8 recall@10 %.3f < 0.85", r0);
    CHECKF(se < 0.05, "int8 similarity estimates off by %.4f", se);
    CHECK(sm_index_q8_search(codes, scales, n, d, q, nq, k, base, 40, gi, gs, &err) == SM_OK);
    double r1 = recall(gi, ri, nq, k);
    CHECKF(r1 >= 0.99, "int8 + rerank recall@10 %.3f < 0.99", r1);
    CHECKF(compare(gi, gs, ri, rs, nq, k, 1e-5) <= nq * k / 100, "reranked similarities not exact");
    /* one query: the threaded path */
    CHECK(sm_index_q8_search(codes, scales, n, d, q, 1, k, base, 40, gi, gs, &err) == SM_OK);
    CHECK(gi[0] == ri[0]);
    printf("int8: recall@10 %.3f, with rerank 40 %.3f, max sim error %.4f\n", r0, r1, se);
    free(base);
    free(q);
    free(codes);
    free(scales);
    free(back);
    free(ri);
    free(gi);
    free(rs);
    free(gs);
}

static void test_hnsw(void)
{
    sm_err err = {0};
    int64_t n = 6000, d = 32, nq = 200, k = 10;
    float *base = clustered(n, d, 60, 0.25, 9), *q = clustered(nq, d, 60, 0.25, 10);
    sm_hnsw_config cfg;
    sm_hnsw_config_default(&cfg);
    cfg.ef_construction = 100;
    sm_hnsw *h = NULL;
    CHECK(sm_hnsw_build(&h, base, n, d, &cfg, &err) == SM_OK);
    if (!h) return;
    int64_t *ri = malloc(sizeof(int64_t) * (size_t)(nq * k)), *gi = malloc(sizeof(int64_t) * (size_t)(nq * k));
    float *rs = malloc(sizeof(float) * (size_t)(nq * k)), *gs = malloc(sizeof(float) * (size_t)(nq * k));
    CHECK(sm_index_flat_naive(base, n, d, q, nq, k, ri, rs, &err) == SM_OK);
    CHECK(sm_hnsw_search(h, q, nq, k, 64, gi, gs, &err) == SM_OK);
    double rc = recall(gi, ri, nq, k);
    CHECKF(rc >= 0.95, "HNSW recall@10 %.3f < 0.95 (ef 64)", rc);
    bool sorted = true, exact = true;
    for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < k; j++) {
            int64_t r = gi[i * k + j];
            if (j > 0) sorted &= gs[i * k + j - 1] >= gs[i * k + j];
            exact &= r >= 0 && fabsf(gs[i * k + j] - sm_dot_f32(base + r * d, q + i * d, d)) < 1e-6f;
        }
    CHECK(sorted && exact);
    printf("hnsw: n %lld d %lld, max level %d, recall@10 %.3f (ef 64)\n", (long long)n, (long long)d,
           sm_hnsw_max_level(h), rc);
    CHECK(sm_hnsw_search(h, q, 1, 0, 64, gi, gs, &err) == SM_ERR_ARG);
    CHECK(sm_hnsw_search(h, q, 1, k, 0, gi, gs, &err) == SM_ERR_ARG);
    /* k > n in a tiny graph: padded */
    sm_hnsw *t = NULL;
    CHECK(sm_hnsw_build(&t, base, 3, d, &cfg, &err) == SM_OK);
    CHECK(sm_hnsw_search(t, q, 1, 5, 10, gi, gs, &err) == SM_OK && gi[2] >= 0 && gi[3] == -1 && isinf(gs[4]));
    sm_hnsw_free(t);
    t = NULL;
    CHECK(sm_hnsw_build(&t, NULL, 0, d, &cfg, &err) == SM_OK);
    CHECK(sm_hnsw_search(t, q, 1, 5, 10, gi, gs, &err) == SM_OK && gi[0] == -1);
    sm_hnsw_free(t);

    /* save / load round trip: same answers, stamp and ids back */
    char path[64], path2[64];
    snprintf(path, sizeof path, "/tmp/simile-test-index-%d.hnsw", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/simile-test-index-%d-b.hnsw", (int)getpid());
    sm_hnsw_stamp st = {.generation = 42}, st2;
    for (int i = 0; i < 16; i++) st.uuid[i] = (uint8_t)i;
    for (int i = 0; i < 32; i++) st.model[i] = (uint8_t)(255 - i);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n), *ids2 = NULL;
    for (int64_t i = 0; i < n; i++) ids[i] = 1000 + 3 * i;
    CHECK(sm_hnsw_save(h, path, &st, ids, &err) == SM_OK);
    sm_hnsw *h2 = NULL;
    CHECKF(sm_hnsw_load(&h2, path, base, n, d, &st2, &ids2, &err) == SM_OK, "%s", err.msg);
    if (h2) {
        CHECK(!memcmp(&st, &st2, sizeof st) && ids2 && !memcmp(ids, ids2, sizeof(int64_t) * (size_t)n));
        int64_t *gi2 = malloc(sizeof(int64_t) * (size_t)(nq * k));
        float *gs2 = malloc(sizeof(float) * (size_t)(nq * k));
        CHECK(sm_hnsw_search(h2, q, nq, k, 64, gi2, gs2, &err) == SM_OK);
        CHECK(sm_hnsw_search(h, q, nq, k, 64, gi, gs, &err) == SM_OK);
        CHECK(!memcmp(gi, gi2, sizeof(int64_t) * (size_t)(nq * k)));
        /* saving the loaded graph gives the same bytes; so does a rebuild (determinism) */
        CHECK(sm_hnsw_save(h2, path2, &st, ids, &err) == SM_OK);
        FILE *f1 = fopen(path, "rb"), *f2 = fopen(path2, "rb");
        bool same = f1 && f2;
        while (same) {
            int c1 = fgetc(f1), c2 = fgetc(f2);
            if (c1 != c2) same = false;
            if (c1 == EOF) break;
        }
        if (f1) fclose(f1);
        if (f2) fclose(f2);
        CHECK(same);
        free(gi2);
        free(gs2);
        sm_hnsw_free(h2);
    }
    free(ids2);
    sm_hnsw *h3 = NULL;
    CHECK(sm_hnsw_build(&h3, base, n, d, &cfg, &err) == SM_OK);
    CHECK(sm_hnsw_save(h3, path2, &st, ids, &err) == SM_OK);
    sm_hnsw_free(h3);
    {
        FILE *f1 = fopen(path, "rb"), *f2 = fopen(path2, "rb");
        bool same = f1 && f2;
        while (same) {
            int c1 = fgetc(f1), c2 = fgetc(f2);
            if (c1 != c2) same = false;
            if (c1 == EOF) break;
        }
        if (f1) fclose(f1);
        if (f2) fclose(f2);
        CHECKF(same, "two builds with one seed differ");
    }
    /* wrong shape, damaged body, damaged header, truncated, not an index */
    h2 = NULL;
    CHECK(sm_hnsw_load(&h2, path, base, n - 1, d, NULL, NULL, &err) == SM_ERR_SHAPE && !h2);
    FILE *f = fopen(path, "r+b");
    fseek(f, 5000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 5000, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    CHECK(sm_hnsw_load(&h2, path, base, n, d, NULL, NULL, &err) == SM_ERR_FORMAT && strstr(err.msg, "CRC"));
    f = fopen(path, "r+b");
    fseek(f, 20, SEEK_SET);
    fputc(7, f);
    fclose(f);
    CHECK(sm_hnsw_load(&h2, path, base, n, d, NULL, NULL, &err) == SM_ERR_FORMAT);
    CHECK(truncate(path2, 1000) == 0);
    CHECK(sm_hnsw_load(&h2, path2, base, n, d, NULL, NULL, &err) == SM_ERR_FORMAT);
    f = fopen(path2, "wb");
    fputs("hello, I am not an index at all, but I am long enough to have a header......................"
          "..........................................................",
          f);
    fclose(f);
    CHECK(sm_hnsw_load(&h2, path2, base, n, d, NULL, NULL, &err) == SM_ERR_FORMAT && strstr(err.msg, "magic"));
    CHECK(sm_hnsw_load(&h2, "/nonexistent/x.hnsw", base, n, d, NULL, NULL, &err) == SM_ERR_IO);
    remove(path);
    remove(path2);
    free(ids);
    sm_hnsw_free(h);
    free(base);
    free(q);
    free(ri);
    free(gi);
    free(rs);
    free(gs);
}

int main(void)
{
    test_topk();
    test_flat();
    test_int8();
    test_hnsw();
    return th_done();
}
