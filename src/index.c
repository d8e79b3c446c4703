/* index.c - exact float32 and int8 search (see index.h). */
#include "index.h"

#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "status.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SM_INDEX_AVX2 1
#endif

/* A single-query scan is split over threads only above this many floats
 * (64 MiB, ~3 ms of streaming on one core): below it waking the threads costs
 * more than it saves, and on a shared machine a split waits for the slowest
 * core (measured: 4x slower under load). */
static int64_t scan_par_min = (int64_t)1 << 24;

int64_t sm_index_scan_split_min(int64_t floats)
{
    int64_t old = scan_par_min;
    if (floats > 0) scan_par_min = floats;
    return old;
}

/* ------------------------------------------------------------- dot products */

#ifdef SM_INDEX_AVX2
static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float sm_dot_f32(const float *a, const float *b, int64_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {   /* four independent chains hide the FMA latency */
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}

int32_t sm_dot_i8(const int8_t *a, const int8_t *b, int64_t d)
{
    /* maddubs multiplies unsigned by signed bytes: |a| times b*sign(a). Codes
     * are in [-127, 127], so a pair sum is at most 2*127*127 = 32258 and the
     * int16 saturation of maddubs never triggers. */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(const void *)(a + i));
        __m256i vb = _mm256_loadu_si256((const __m256i *)(const void *)(b + i));
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(va, va), _mm256_sign_epi8(vb, va));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    int32_t r = _mm_cvtsi128_si32(s);
    for (; i < d; i++) r += (int32_t)a[i] * (int32_t)b[i];
    return r;
}
#else
float sm_dot_f32(const float *a, const float *b, int64_t d)
{
    float acc[8] = {0};   /* eight independent lanes: vectorisable without -ffast-math */
    int64_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}

int32_t sm_dot_i8(const int8_t *a, const int8_t *b, int64_t d)
{
    int32_t s = 0;
    for (int64_t i = 0; i < d; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}
#endif

/* ------------------------------------------------------------------ top-k */

/* true when (sa, ia) ranks below (sb, ib): lower similarity, or equal and a
 * larger index. */
static inline bool worse(float sa, int64_t ia, float sb, int64_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

void sm_topk_init(sm_topk *t, int64_t k, float *sim, int64_t *idx)
{
    t->k = k;
    t->n = 0;
    t->sim = sim;
    t->idx = idx;
}

static void sift_down(float *s, int64_t *x, int64_t n, int64_t p)
{
    float ps = s[p];
    int64_t pi = x[p];
    for (;;) {
        int64_t c = 2 * p + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(s[c + 1], x[c + 1], s[c], x[c])) c++;
        if (!worse(s[c], x[c], ps, pi)) break;
        s[p] = s[c];
        x[p] = x[c];
        p = c;
    }
    s[p] = ps;
    x[p] = pi;
}

void sm_topk_push(sm_topk *t, float s, int64_t i)
{
    if (t->n < t->k) {
        int64_t p = t->n++;
        while (p > 0) {
            int64_t up = (p - 1) / 2;
            if (!worse(s, i, t->sim[up], t->idx[up])) break;
            t->sim[p] = t->sim[up];
            t->idx[p] = t->idx[up];
            p = up;
        }
        t->sim[p] = s;
        t->idx[p] = i;
        return;
    }
    if (t->k == 0 || !worse(t->sim[0], t->idx[0], s, i)) return;
    t->sim[0] = s;
    t->idx[0] = i;
    sift_down(t->sim, t->idx, t->n, 0);
}

void sm_topk_finish(sm_topk *t, int64_t *out_idx, float *out_sim)
{
    int64_t n = t->n;
    /* in-place heap sort: the worst goes to the end each time */
    for (int64_t m = n; m > 1; m--) {
        float s = t->sim[0];
        int64_t x = t->idx[0];
        t->sim[0] = t->sim[m - 1];
        t->idx[0] = t->idx[m - 1];
        sift_down(t->sim, t->idx, m - 1, 0);
        t->sim[m - 1] = s;
        t->idx[m - 1] = x;
    }
    if (out_sim != t->sim) memmove(out_sim, t->sim, (size_t)n * sizeof *out_sim);
    if (out_idx != t->idx) memmove(out_idx, t->idx, (size_t)n * sizeof *out_idx);
    for (int64_t j = n; j < t->k; j++) {
        out_idx[j] = -1;
        out_sim[j] = -INFINITY;
    }
    t->n = 0;
}

/* ----------------------------------------------------------------- checks */

static sm_status check_args(const void *base, int64_t n, int64_t d, const float *q, int64_t nq, int64_t k,
                            const int64_t *idx, const float *sim, sm_err *err)
{
    if (k < 1 || k > SM_INDEX_MAX_K)
        return sm_fail(err, SM_ERR_ARG, "k must be in 1..%d (got %lld)", SM_INDEX_MAX_K, (long long)k);
    if (n < 0 || nq < 0 || d < 1 || d > ((int64_t)1 << 17))
        return sm_fail(err, SM_ERR_ARG, "bad search sizes: n %lld, nq %lld, d %lld", (long long)n,
                       (long long)nq, (long long)d);
    if ((n > 0 && !base) || (nq > 0 && (!q || !idx || !sim)))
        return sm_fail(err, SM_ERR_ARG, "NULL array passed to a search");
    return SM_OK;
}

static void fill_empty(int64_t *idx, float *sim, int64_t nq, int64_t k)
{
    for (int64_t i = 0; i < nq * k; i++) {
        idx[i] = -1;
        sim[i] = -INFINITY;
    }
}

static inline int max_threads(void)
{
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* ------------------------------------------------------------------- scan */

/* One query's rows [lo, hi) into t. kind 0: float rows; 1: int8 rows. */
typedef struct scan_job {
    int kind;
    const float *base;       /* kind 0 */
    const int8_t *codes;     /* kind 1 */
    const float *scales;     /* kind 1 */
    int64_t d;
    const float *qf;         /* kind 0 */
    const int8_t *qc;        /* kind 1 */
    float qs;                /* kind 1 */
} scan_job;

/* The scan's dot product, inlined: two chains of 8 lanes over 16-float
 * steps (enough to hide the FMA latency at d = 128, and fewer registers than
 * sm_dot_f32's four). Rows are scored one after another: a single
 * sequential stream runs at 1.1x the streaming-read time at 1M x 128, while
 * scoring 4 or 8 rows side by side (query chunks loaded once per group) was
 * 1.25x and 1.7x (bench/bench_index.c, docs/results.md). */
#ifdef SM_INDEX_AVX2
static inline float scan_dot(const float *r0, int64_t d, const float *q)
{
    __m256 a0 = _mm256_setzero_ps(), b0 = a0;
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i), _mm256_loadu_ps(q + i), a0);
        b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i + 8), _mm256_loadu_ps(q + i + 8), b0);
    }
    if (i + 8 <= d) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i), _mm256_loadu_ps(q + i), a0);
        i += 8;
    }
    float out = hsum256(_mm256_add_ps(a0, b0));
    for (; i < d; i++) out += r0[i] * q[i];
    return out;
}
#else
static inline float scan_dot(const float *r0, int64_t d, const float *q) { return sm_dot_f32(r0, q, d); }
#endif

static void scan_range(const scan_job *j, int64_t lo, int64_t hi, sm_topk *t)
{
    int64_t d = j->d;
    float floor_ = sm_topk_floor(t);
    if (j->kind == 0) {
        for (int64_t r = lo; r < hi; r++) {
            float s = scan_dot(j->base + r * d, d, j->qf);
            if (s >= floor_) {
                sm_topk_push(t, s, r);
                floor_ = sm_topk_floor(t);
            }
        }
    } else {
        for (int64_t r = lo; r < hi; r++) {
            float s = (float)sm_dot_i8(j->codes + r * d, j->qc, d) * (j->scales[r] * j->qs);
            if (s >= floor_) {
                sm_topk_push(t, s, r);
                floor_ = sm_topk_floor(t);
            }
        }
    }
}

/* Top-kk of one query over n rows into (idx, sim) (kk each), split over the
 * threads when large. heap_s/heap_i hold kk * max_threads() entries. */
static void scan_one(const scan_job *j, int64_t n, int64_t kk, float *heap_s, int64_t *heap_i,
                     int64_t *idx, float *sim)
{
    int nt = max_threads();
    if (nt <= 1 || n * j->d < scan_par_min || n < 2 * nt) {
        sm_topk t;
        sm_topk_init(&t, kk, heap_s, heap_i);
        scan_range(j, 0, n, &t);
        sm_topk_finish(&t, idx, sim);
        return;
    }
    int64_t held[256] = {0};
    if (nt > 256) nt = 256;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef _OPENMP
        int tid = omp_get_thread_num(), tn = omp_get_num_threads();
#else
        int tid = 0, tn = 1;
#endif
        int64_t lo = n * tid / tn, hi = n * (tid + 1) / tn;
        sm_topk t;
        sm_topk_init(&t, kk, heap_s + (int64_t)tid * kk, heap_i + (int64_t)tid * kk);
        scan_range(j, lo, hi, &t);
        held[tid] = t.n;
    }
    /* merge: the union of per-thread top-kk sets holds the global top-kk */
    sm_topk all;
    sm_topk_init(&all, kk, sim, idx);
    for (int t = 0; t < nt; t++)
        for (int64_t e = 0; e < held[t]; e++) sm_topk_push(&all, heap_s[(int64_t)t * kk + e], heap_i[(int64_t)t * kk + e]);
    sm_topk_finish(&all, idx, sim);
}

sm_status sm_index_flat_scan(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                             int64_t k, int64_t *idx, float *sim, sm_err *err)
{
    sm_status st = check_args(base, n, d, q, nq, k, idx, sim, err);
    if (st) return st;
    if (n == 0 || nq == 0) {
        fill_empty(idx, sim, nq, k);
        return SM_OK;
    }
    int nt = max_threads();
    float *hs = malloc(sizeof(float) * (size_t)(k * nt));
    int64_t *hi = malloc(sizeof(int64_t) * (size_t)(k * nt));
    if (!hs || !hi) {
        free(hs);
        free(hi);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for %lld-best heaps", (long long)k);
    }
    for (int64_t i = 0; i < nq; i++) {
        scan_job j = {.kind = 0, .base = base, .d = d, .qf = q + i * d};
        scan_one(&j, n, k, hs, hi, idx + i * k, sim + i * k);
    }
    free(hs);
    free(hi);
    return SM_OK;
}

/* ------------------------------------------------------------------- gemm */

/* Rows per similarity tile; queries per block are bounded so the heaps of a
 * block stay below ~32 MiB whatever k is. */
#define GEMM_ROWS 4096
#define GEMM_QUERIES 256

sm_status sm_index_flat_gemm(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                             int64_t k, int64_t *idx, float *sim, sm_err *err)
{
    sm_status st = check_args(base, n, d, q, nq, k, idx, sim, err);
    if (st) return st;
    if (n == 0 || nq == 0) {
        fill_empty(idx, sim, nq, k);
        return SM_OK;
    }
    int64_t qb = ((int64_t)1 << 21) / k;
    if (qb > GEMM_QUERIES) qb = GEMM_QUERIES;
    if (qb < 1) qb = 1;
    if (qb > nq) qb = nq;
    int64_t rb = n < GEMM_ROWS ? n : GEMM_ROWS;
    float *tile = malloc(sizeof(float) * (size_t)(qb * rb));
    sm_topk *heaps = malloc(sizeof(sm_topk) * (size_t)qb);
    if (!tile || !heaps) {
        free(tile);
        free(heaps);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for a %lld x %lld similarity tile",
                       (long long)qb, (long long)rb);
    }
    for (int64_t q0 = 0; q0 < nq; q0 += qb) {
        int64_t nb = nq - q0 < qb ? nq - q0 : qb;
        /* each query's heap lives in its own output row */
        for (int64_t i = 0; i < nb; i++) sm_topk_init(&heaps[i], k, sim + (q0 + i) * k, idx + (q0 + i) * k);
        for (int64_t r0 = 0; r0 < n; r0 += rb) {
            int64_t nr = n - r0 < rb ? n - r0 : rb;
            sm_gemm(false, true, nb, nr, d, 1.0f, q + q0 * d, d, base + r0 * d, d, 0.0f, tile, nr);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb > 1 && max_threads() > 1)
#endif
            for (int64_t i = 0; i < nb; i++) {
                sm_topk *t = &heaps[i];
                const float *row = tile + i * nr;
                float floor_ = sm_topk_floor(t);
                for (int64_t r = 0; r < nr; r++)
                    if (row[r] >= floor_) {
                        sm_topk_push(t, row[r], r0 + r);
                        floor_ = sm_topk_floor(t);
                    }
            }
        }
        for (int64_t i = 0; i < nb; i++) sm_topk_finish(&heaps[i], heaps[i].idx, heaps[i].sim);
    }
    free(tile);
    free(heaps);
    return SM_OK;
}

sm_status sm_index_flat_search(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                               int64_t k, int64_t *idx, float *sim, sm_err *err)
{
    if (nq >= SM_INDEX_GEMM_MIN) return sm_index_flat_gemm(base, n, d, q, nq, k, idx, sim, err);
    return sm_index_flat_scan(base, n, d, q, nq, k, idx, sim, err);
}

/* ------------------------------------------------------------------ naive */

typedef struct pair_d { double s; int64_t i; } pair_d;

static int cmp_pair_d(const void *a, const void *b)
{
    const pair_d *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

sm_status sm_index_flat_naive(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                              int64_t k, int64_t *idx, float *sim, sm_err *err)
{
    sm_status st = check_args(base, n, d, q, nq, k, idx, sim, err);
    if (st) return st;
    pair_d *p = malloc(sizeof(pair_d) * (size_t)(n > 0 ? n : 1));
    if (!p) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < nq; i++) {
        for (int64_t r = 0; r < n; r++) {
            double s = 0;
            for (int64_t c = 0; c < d; c++) s += (double)q[i * d + c] * (double)base[r * d + c];
            p[r].s = s;
            p[r].i = r;
        }
        qsort(p, (size_t)n, sizeof *p, cmp_pair_d);
        for (int64_t j = 0; j < k; j++) {
            idx[i * k + j] = j < n ? p[j].i : -1;
            sim[i * k + j] = j < n ? (float)p[j].s : -INFINITY;
        }
    }
    free(p);
    return SM_OK;
}

/* ------------------------------------------------------------------- int8 */

/* Queries per chunk and rows per block of a batched int8 search (16 queries
 * over 2048 rows of 128 codes: 256 KiB of codes reused 16 times from L2). */
#define Q8_CHUNK 16
#define Q8_ROWS 2048

void sm_q8_encode(int8_t *codes, float *scales, const float *x, int64_t n, int64_t d)
{
    for (int64_t r = 0; r < n; r++) {
        const float *v = x + r * d;
        float m = 0.0f;
        for (int64_t c = 0; c < d; c++) m = fabsf(v[c]) > m ? fabsf(v[c]) : m;
        float scale = m / 127.0f, inv = m > 0 ? 127.0f / m : 0.0f;
        for (int64_t c = 0; c < d; c++) {
            float y = nearbyintf(v[c] * inv);   /* round half to even */
            codes[r * d + c] = (int8_t)(y > 127.0f ? 127 : y < -127.0f ? -127 : y);
        }
        scales[r] = scale;
    }
}

void sm_q8_decode(float *x, const int8_t *codes, const float *scales, int64_t n, int64_t d)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < d; c++) x[r * d + c] = (float)codes[r * d + c] * scales[r];
}

sm_status sm_index_q8_search(const int8_t *codes, const float *scales, int64_t n, int64_t d,
                             const float *q, int64_t nq, int64_t k, const float *base, int64_t rerank,
                             int64_t *idx, float *sim, sm_err *err)
{
    sm_status st = check_args(codes, n, d, q, nq, k, idx, sim, err);
    if (st) return st;
    if (rerank < 0 || rerank > SM_INDEX_MAX_K)
        return sm_fail(err, SM_ERR_ARG, "rerank must be in 0..%d (got %lld)", SM_INDEX_MAX_K, (long long)rerank);
    if (n > 0 && !scales) return sm_fail(err, SM_ERR_ARG, "NULL scales passed to an int8 search");
    if (n == 0 || nq == 0) {
        fill_empty(idx, sim, nq, k);
        return SM_OK;
    }
    bool re = rerank > 0 && base;
    int64_t kk = re && rerank > k ? rerank : k;
    /* One query: its scan splits over the threads. Several: chunks of
     * Q8_CHUNK queries, one chunk per thread at a time, each chunk walking the
     * rows in blocks of Q8_ROWS (d * Q8_ROWS bytes, L2-sized) and scanning
     * every query of the chunk over a block before the next: the codes are
     * read from memory once per chunk instead of once per query. */
    int nt = max_threads();
    bool one = nq == 1;
    int64_t chunk = one ? 1 : Q8_CHUNK;
    int64_t slots = one ? 1 : nt;                 /* chunks in flight */
    int64_t hslots = one ? nt : chunk;            /* heaps per slot */
    size_t per = (size_t)(kk * hslots);
    float *hs = malloc(sizeof(float) * per * (size_t)slots);
    int64_t *hi = malloc(sizeof(int64_t) * per * (size_t)slots);
    float *cs = malloc(sizeof(float) * (size_t)(kk * slots));
    int64_t *ci = malloc(sizeof(int64_t) * (size_t)(kk * slots));
    int8_t *qc = malloc((size_t)(d * chunk * slots));
    float *qs = malloc(sizeof(float) * (size_t)(chunk * slots));
    if (!hs || !hi || !cs || !ci || !qc || !qs) {
        free(hs);
        free(hi);
        free(cs);
        free(ci);
        free(qc);
        free(qs);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for int8 search heaps");
    }
    int64_t nchunks = (nq + chunk - 1) / chunk;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (!one)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        int slot = one ? 0 : sm_thread_id();
        int64_t q0 = c * chunk, nc = nq - q0 < chunk ? nq - q0 : chunk;
        int8_t *qci = qc + (int64_t)slot * chunk * d;
        float *qsi = qs + (int64_t)slot * chunk, *hsi = hs + (size_t)slot * per, *csi = cs + (int64_t)slot * kk;
        int64_t *hii = hi + (size_t)slot * per, *cii = ci + (int64_t)slot * kk;
        sm_q8_encode(qci, qsi, q + q0 * d, nc, d);
        sm_topk t[Q8_CHUNK];
        if (one) {
            scan_job j = {.kind = 1, .codes = codes, .scales = scales, .d = d, .qc = qci, .qs = qsi[0]};
            scan_one(&j, n, kk, hsi, hii, cii, csi);
        } else {
            for (int64_t i = 0; i < nc; i++) sm_topk_init(&t[i], kk, hsi + i * kk, hii + i * kk);
            for (int64_t r0 = 0; r0 < n; r0 += Q8_ROWS) {
                int64_t r1 = n - r0 < Q8_ROWS ? n : r0 + Q8_ROWS;
                for (int64_t i = 0; i < nc; i++) {
                    scan_job j = {.kind = 1, .codes = codes, .scales = scales, .d = d, .qc = qci + i * d, .qs = qsi[i]};
                    scan_range(&j, r0, r1, &t[i]);
                }
            }
        }
        for (int64_t i = 0; i < nc; i++) {
            int64_t *oi = idx + (q0 + i) * k;
            float *os = sim + (q0 + i) * k;
            if (!one) sm_topk_finish(&t[i], cii, csi);
            if (!re) {
                memcpy(oi, cii, sizeof(int64_t) * (size_t)k);
                memcpy(os, csi, sizeof(float) * (size_t)k);
                continue;
            }
            /* re-score the kk candidates exactly; the heap arrays of query i
             * are free again (finished into cii/csi) */
            sm_topk rt;
            sm_topk_init(&rt, k, hsi + i * kk, hii + i * kk);
            for (int64_t e = 0; e < kk && cii[e] >= 0; e++)
                sm_topk_push(&rt, sm_dot_f32(base + cii[e] * d, q + (q0 + i) * d, d), cii[e]);
            sm_topk_finish(&rt, oi, os);
        }
    }
    free(hs);
    free(hi);
    free(cs);
    free(ci);
    free(qc);
    free(qs);
    return SM_OK;
}
