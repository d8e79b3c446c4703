/* eval.c - retrieval, classification and verification metrics. See simile.h ("evaluation").
 *
 * Retrieval is brute force: one GEMM per block of queries gives their
 * similarities to every reference; each query then turns its row into 64-bit
 * keys (similarity in the high half, reference index in the low half) whose
 * unsigned order IS the ranking rule, and finds its top max(R, 8) without a
 * full sort: a histogram of similarity buckets, then a quickselect inside the
 * boundary bucket only, then a stable radix sort of the winners (see
 * rank_query). Keys are distinct, so the selected set and its order do not
 * depend on pivots, threads or block boundaries.
 * Per-query results land in per-block arrays and are summed in query order. */
#include "simile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "rng.h"
#include "status.h"

const int SM_EVAL_RECALL_K[SM_EVAL_NRECALL] = {1, 2, 4, 8};

/* Queries per GEMM block, and a cap on the block's similarity matrix
 * (16 Mi floats = 64 MiB) so very large reference sets shrink the block. */
#define EVAL_BLOCK 256
#define EVAL_BLOCK_FLOATS (16 * 1024 * 1024)

/* ------------------------------------------------------------ sort keys */

/* Unsigned key that increases with s (IEEE trick: flip all bits of negatives,
 * the sign bit of positives). -0.0 is folded into +0.0 first. */
static inline uint32_t asc_key(float s)
{
    if (s == 0.0f) s = 0.0f;
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Rank key: smaller = better; similarity descending, then index ascending. */
static inline uint64_t rank_key(float s, int64_t j)
{
    return ((uint64_t)~asc_key(s) << 32) | (uint64_t)(uint32_t)j;
}

static inline void swap_u64(uint64_t *a, uint64_t *b) { uint64_t t = *a; *a = *b; *b = t; }

/* Median of three values moved to a[lo] as the pivot. */
static void pivot_to_front(uint64_t *a, int64_t lo, int64_t hi)
{
    int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] < a[lo]) swap_u64(&a[mid], &a[lo]);
    if (a[hi] < a[lo]) swap_u64(&a[hi], &a[lo]);
    if (a[hi] < a[mid]) swap_u64(&a[hi], &a[mid]);
    swap_u64(&a[lo], &a[mid]);   /* median at lo */
}

/* Hoare partition of a[lo..hi] around a[lo]; returns p with a[lo..p] <= pivot
 * <= a[p+1..hi], lo <= p < hi. Handles runs of equal keys in O(n). */
static int64_t partition_u64(uint64_t *a, int64_t lo, int64_t hi)
{
    pivot_to_front(a, lo, hi);
    uint64_t p = a[lo];
    int64_t i = lo - 1, j = hi + 1;
    for (;;) {
        do i++; while (a[i] < p);
        do j--; while (a[j] > p);
        if (i >= j) return j;
        swap_u64(&a[i], &a[j]);
    }
}

static void insertion_u64(uint64_t *a, int64_t lo, int64_t hi)
{
    for (int64_t i = lo + 1; i <= hi; i++) {
        uint64_t v = a[i];
        int64_t j = i - 1;
        while (j >= lo && a[j] > v) { a[j + 1] = a[j]; j--; }
        a[j + 1] = v;
    }
}

static void heapsort_u64(uint64_t *a, int64_t n)
{
    for (int64_t start = n / 2 - 1, end = n; end > 1;) {
        int64_t root;
        if (start >= 0) root = start--;
        else { end--; swap_u64(&a[0], &a[end]); root = 0; }
        for (;;) {
            int64_t c = 2 * root + 1;
            if (c >= end) break;
            if (c + 1 < end && a[c + 1] > a[c]) c++;
            if (a[root] >= a[c]) break;
            swap_u64(&a[root], &a[c]);
            root = c;
        }
    }
}

/* Sorts a[lo..hi] ascending: quicksort, recursion on the smaller side,
 * heapsort when the depth budget runs out (introsort). */
static void sort_u64_rec(uint64_t *a, int64_t lo, int64_t hi, int depth)
{
    while (hi - lo > 16) {
        if (depth-- == 0) { heapsort_u64(a + lo, hi - lo + 1); return; }
        int64_t p = partition_u64(a, lo, hi);
        if (p - lo < hi - p) { sort_u64_rec(a, lo, p, depth); lo = p + 1; }
        else { sort_u64_rec(a, p + 1, hi, depth); hi = p; }
    }
    insertion_u64(a, lo, hi);
}

static void sort_u64(uint64_t *a, int64_t n)
{
    if (n > 1) sort_u64_rec(a, 0, n - 1, 2 * (int)(log2((double)n) + 1));
}

/* Rearranges a[0..n) so that a[0..k) hold the k smallest keys (any order).
 * Quickselect; falls back to a full sort after too many bad pivots. */
static void select_u64(uint64_t *a, int64_t n, int64_t k)
{
    if (k <= 0 || k >= n) return;
    int64_t lo = 0, hi = n - 1;
    int budget = 2 * (int)(log2((double)n) + 1);
    while (hi - lo > 16) {
        if (budget-- == 0) { sort_u64(a + lo, hi - lo + 1); return; }
        int64_t p = partition_u64(a, lo, hi);   /* a[lo..p] <= a[p+1..hi] */
        if (k - 1 <= p) hi = p;                 /* the k-th smallest is in the left part */
        else lo = p + 1;
    }
    insertion_u64(a, lo, hi);
}

/* ------------------------------------------------------------ retrieval */

static bool all_finite(const float *x, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

/* Number of v in sorted s[0..n). */
static int64_t count_sorted(const int32_t *s, int64_t n, int32_t v)
{
    int64_t lo = 0, hi = n;   /* first >= v */
    while (lo < hi) { int64_t m = lo + (hi - lo) / 2; if (s[m] < v) lo = m + 1; else hi = m; }
    int64_t a = lo;
    hi = n;                   /* first > v */
    while (lo < hi) { int64_t m = lo + (hi - lo) / 2; if (s[m] <= v) lo = m + 1; else hi = m; }
    return lo - a;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Per-query results, one row of EVAL_NRES doubles. */
enum { RES_VALID, RES_P1, RES_RP, RES_MAP, RES_KNN, RES_REC, EVAL_NRES = RES_REC + SM_EVAL_NRECALL };

/* Coarse buckets of similarity for the first selection pass: bucket =
 * floor((1 - s) * 2048), clamped to [0, 4095], so cosines in [-1, 1] get a
 * resolution of 1/2048. The map is monotone (better similarity, smaller or
 * equal bucket) in float arithmetic too, which is all correctness needs; the
 * resolution only decides how many candidates the boundary bucket holds. */
#define EVAL_NBUCKET 4096

static inline int sim_bucket(float s)
{
    float f = (1.0f - s) * (float)(EVAL_NBUCKET / 2);
    if (!(f > 0.0f)) return 0;
    if (f >= (float)(EVAL_NBUCKET - 1)) return EVAL_NBUCKET - 1;
    return (int)f;
}

/* Stable LSD radix sort of a[0..n) by the high 32 bits (the similarity part of
 * a rank key), 8 bits a pass, tmp (n) as the other buffer. Stability keeps
 * equal similarities in their input order. */
static void radix_sort_hi32(uint64_t *a, uint64_t *tmp, int64_t n)
{
    static const int shifts[4] = {32, 40, 48, 56};
    if (n < 2) return;
    int64_t cnt[4][256];
    memset(cnt, 0, sizeof cnt);
    for (int64_t i = 0; i < n; i++)
        for (int p = 0; p < 4; p++) cnt[p][(a[i] >> shifts[p]) & 0xff]++;
    uint64_t *src = a, *dst = tmp;
    for (int p = 0; p < 4; p++) {
        if (cnt[p][(src[0] >> shifts[p]) & 0xff] == n) continue;   /* one digit value: no-op pass */
        int64_t off = 0;
        for (int v = 0; v < 256; v++) { int64_t c = cnt[p][v]; cnt[p][v] = off; off += c; }
        for (int64_t i = 0; i < n; i++) dst[cnt[p][(src[i] >> shifts[p]) & 0xff]++] = src[i];
        uint64_t *t = src; src = dst; dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* Ranks one query: sims (nr) is its similarity row, self its own index in the
 * references or -1, R its relevant count. Scratch: keys and tmp (nr each),
 * hist (EVAL_NBUCKET). Writes res.
 *
 * Top-k selection (k = max(R, 8)): a histogram of similarity buckets finds the
 * bucket b holding the k-th best; rows in better buckets are all in the top k
 * and are gathered in index order, then radix-sorted stably by similarity
 * (so ties stay in index order); the boundary bucket's rows are quickselected
 * and sorted by full key, and follow them. */
static void rank_query(double *res, const float *sims, int64_t nr, int64_t self, int32_t lab,
                       const int32_t *rlab, int64_t R, uint64_t *keys, uint64_t *tmp,
                       int64_t *hist)
{
    int64_t n = nr - (self >= 0);
    int64_t k = R > 8 ? R : 8;
    if (k > n) k = n;
    memset(hist, 0, EVAL_NBUCKET * sizeof *hist);
    for (int64_t j = 0; j < nr; j++) hist[sim_bucket(sims[j])]++;
    if (self >= 0) hist[sim_bucket(sims[self])]--;
    int64_t above = 0;
    int b = 0;
    while (above + hist[b] < k) above += hist[b++];
    int64_t na = 0, nb = 0;
    for (int64_t j = 0; j < nr; j++) {
        if (j == self) continue;
        int bj = sim_bucket(sims[j]);
        if (bj < b) keys[na++] = rank_key(sims[j], j);
        else if (bj == b) tmp[nb++] = rank_key(sims[j], j);
    }
    int64_t need = k - above;
    select_u64(tmp, nb, need);
    sort_u64(tmp, need);
    memcpy(keys + above, tmp, (size_t)need * sizeof *keys);
    radix_sort_hi32(keys, tmp, above);

    bool rel1 = rlab[(uint32_t)keys[0]] == lab;
    res[RES_KNN] = rel1;
    res[RES_VALID] = R > 0;
    res[RES_P1] = rel1;
    int64_t first_hit = -1;   /* rank (0-based) of the first relevant among the top k */
    int64_t hits = 0;
    double ap = 0.0;
    for (int64_t i = 0; i < k; i++) {
        if (rlab[(uint32_t)keys[i]] != lab) continue;
        if (first_hit < 0) first_hit = i;
        if (i < R) { hits++; ap += (double)hits / (double)(i + 1); }
    }
    for (int t = 0; t < SM_EVAL_NRECALL; t++)
        res[RES_REC + t] = first_hit >= 0 && first_hit < SM_EVAL_RECALL_K[t];
    res[RES_RP] = R > 0 ? (double)hits / (double)R : 0.0;
    res[RES_MAP] = R > 0 ? ap / (double)R : 0.0;
}

sm_status sm_eval_retrieval(sm_retrieval_metrics *out, const float *query, const int32_t *qlab,
                            int64_t nq, const float *ref, const int32_t *rlab, int64_t nr,
                            int64_t d, bool same_set, sm_err *err)
{
    memset(out, 0, sizeof *out);
    if (nq < 1 || nr < 1 || d < 1)
        return sm_fail(err, SM_ERR_ARG, "need at least one query, one reference and d >= 1 "
                       "(got nq=%lld nr=%lld d=%lld)", (long long)nq, (long long)nr, (long long)d);
    if (nr >= ((int64_t)1 << 31))
        return sm_fail(err, SM_ERR_ARG, "%lld references is too many (limit 2^31 - 1); "
                       "evaluate on a subset", (long long)nr);
    if (same_set && nq != nr)
        return sm_fail(err, SM_ERR_ARG, "same_set needs the same rows as queries and "
                       "references (nq=%lld, nr=%lld)", (long long)nq, (long long)nr);
    if (same_set && nr < 2)
        return sm_fail(err, SM_ERR_ARG, "leave-one-out needs at least 2 rows");
    if (!all_finite(query, nq * d) || !all_finite(ref, nr * d))
        return sm_fail(err, SM_ERR_NAN, "an embedding holds NaN or infinity; "
                       "check the model's output (diverged training?)");

    int64_t block = EVAL_BLOCK_FLOATS / nr;
    if (block > EVAL_BLOCK) block = EVAL_BLOCK;
    if (block < 1) block = 1;
    if (block > nq) block = nq;
    int nth = sm_threads_get();
    int32_t *sorted = malloc((size_t)nr * sizeof *sorted);
    float *sims = malloc((size_t)block * (size_t)nr * sizeof *sims);
    uint64_t *keys = malloc((size_t)nth * 2 * (size_t)nr * sizeof *keys);
    int64_t *hist = malloc((size_t)nth * EVAL_NBUCKET * sizeof *hist);
    double *res = malloc((size_t)block * EVAL_NRES * sizeof *res);
    int64_t *rcount = malloc((size_t)block * sizeof *rcount);
    if (!sorted || !sims || !keys || !hist || !res || !rcount) {
        free(sorted); free(sims); free(keys); free(hist); free(res); free(rcount);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for %lld x %lld similarities",
                       (long long)block, (long long)nr);
    }
    memcpy(sorted, rlab, (size_t)nr * sizeof *sorted);
    qsort(sorted, (size_t)nr, sizeof *sorted, cmp_i32);

    double sum[EVAL_NRES] = {0};
    for (int64_t q0 = 0; q0 < nq; q0 += block) {
        int64_t nb = nq - q0 < block ? nq - q0 : block;
        for (int64_t b = 0; b < nb; b++)
            rcount[b] = count_sorted(sorted, nr, qlab[q0 + b]) - (same_set ? 1 : 0);
        sm_gemm(false, true, nb, nr, d, 1.0f, query + q0 * d, d, ref, d, 0.0f, sims, nr);
#pragma omp parallel for schedule(dynamic, 4)
        for (int64_t b = 0; b < nb; b++) {
            size_t t = (size_t)sm_thread_id();
            rank_query(res + b * EVAL_NRES, sims + b * nr, nr, same_set ? q0 + b : -1, qlab[q0 + b],
                       rlab, rcount[b], keys + 2 * t * (size_t)nr, keys + (2 * t + 1) * (size_t)nr,
                       hist + t * EVAL_NBUCKET);
        }
        for (int64_t b = 0; b < nb; b++) {
            const double *r = res + b * EVAL_NRES;
            sum[RES_KNN] += r[RES_KNN];
            if (r[RES_VALID] == 0.0) continue;
            for (int t = 0; t < EVAL_NRES; t++)
                if (t != RES_KNN) sum[t] += r[t];
        }
    }
    free(sorted); free(sims); free(keys); free(hist); free(res); free(rcount);

    int64_t nv = (int64_t)sum[RES_VALID];
    double inv = nv > 0 ? 1.0 / (double)nv : 0.0;
    out->n_queries = nq;
    out->n_valid = nv;
    out->precision_at_1 = sum[RES_P1] * inv;
    out->r_precision = sum[RES_RP] * inv;
    out->map_at_r = sum[RES_MAP] * inv;
    for (int t = 0; t < SM_EVAL_NRECALL; t++)
        out->recall_at_k[t] = sum[RES_REC + t] * inv;
    out->knn_accuracy = sum[RES_KNN] / (double)nq;
    return SM_OK;
}

/* ------------------------------------------------------- classification */

double sm_eval_accuracy(const int32_t *pred, const int32_t *lab, int64_t n)
{
    if (n <= 0) return 0.0;
    int64_t hit = 0;
    for (int64_t i = 0; i < n; i++) hit += pred[i] == lab[i];
    return (double)hit / (double)n;
}

void sm_argmax_rows(int32_t *pred, const float *logits, int64_t n, int64_t c)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits + i * c;
        int64_t best = 0;
        for (int64_t j = 1; j < c; j++)
            if (row[j] > row[best]) best = j;
        pred[i] = (int32_t)best;
    }
}

/* --------------------------------------------------------- verification */

sm_status sm_eval_roc(sm_roc_point *out, const float *sim, const uint8_t *same, int64_t n,
                      const double *far, int64_t nfar, sm_err *err)
{
    if (n < 1 || nfar < 1)
        return sm_fail(err, SM_ERR_ARG, "roc: need at least one pair and one FAR (got %lld, %lld)",
                       (long long)n, (long long)nfar);
    for (int64_t f = 0; f < nfar; f++)
        if (!(far[f] >= 0.0 && far[f] <= 1.0))
            return sm_fail(err, SM_ERR_ARG, "roc: FAR %g is outside [0, 1] (1e-3 means 0.1%%)",
                           far[f]);
    if (!all_finite(sim, n))
        return sm_fail(err, SM_ERR_NAN, "roc: a pair similarity is NaN or infinite");
    int64_t np = 0;
    for (int64_t i = 0; i < n; i++) np += same[i] != 0;
    int64_t nn = n - np;
    if (np == 0 || nn == 0)
        return sm_fail(err, SM_ERR_ARG, "roc: need both positive and negative pairs "
                       "(got %lld positive, %lld negative)", (long long)np, (long long)nn);
    uint64_t *neg = malloc((size_t)nn * sizeof *neg);
    if (!neg) return sm_fail(err, SM_ERR_NOMEM, "roc: out of memory for %lld pairs", (long long)nn);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!same[i]) neg[m++] = (uint64_t)~asc_key(sim[i]);   /* ascending = sim descending */
    sort_u64(neg, nn);

    for (int64_t f = 0; f < nfar; f++) {
        /* The epsilon absorbs rounding of far * nn (0.57 * 100 = 56.99999999999999). */
        double fa = floor(far[f] * (double)nn + 1e-6);
        int64_t a = fa >= (double)nn ? nn : (int64_t)fa;
        float t = -INFINITY;
        if (a < nn) {
            uint32_t u = ~(uint32_t)neg[a];    /* back to the ascending key, then to the float */
            u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
            memcpy(&t, &u, sizeof t);
        }
        int64_t tp = 0, fp = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!(sim[i] > t)) continue;
            if (same[i]) tp++;
            else fp++;
        }
        out[f].far_target = far[f];
        out[f].threshold = t;
        out[f].tar = (double)tp / (double)np;
        out[f].far = (double)fp / (double)nn;
    }
    free(neg);
    return SM_OK;
}

sm_status sm_eval_best_threshold_accuracy(double *accuracy, float *threshold, const float *sim,
                                          const uint8_t *same, int64_t n, sm_err *err)
{
    *accuracy = 0.0;
    if (threshold) *threshold = -INFINITY;
    if (n < 1) return sm_fail(err, SM_ERR_ARG, "best threshold: no pairs");
    if (!all_finite(sim, n))
        return sm_fail(err, SM_ERR_NAN, "best threshold: a pair similarity is NaN or infinite");
    uint64_t *k = malloc((size_t)n * sizeof *k);
    if (!k) return sm_fail(err, SM_ERR_NOMEM, "best threshold: out of memory for %lld pairs",
                           (long long)n);
    int64_t np = 0;
    for (int64_t i = 0; i < n; i++) {
        k[i] = ((uint64_t)asc_key(sim[i]) << 32) | (same[i] != 0);
        np += same[i] != 0;
    }
    sort_u64(k, n);
    /* t = -inf accepts all: the positives are right. Raising t to each distinct
     * value v (ascending) rejects the pairs equal to v. */
    int64_t correct = np, best = np;
    uint32_t best_key = 0;
    bool best_inf = true;
    for (int64_t i = 0; i < n;) {
        uint32_t v = (uint32_t)(k[i] >> 32);
        for (; i < n && (uint32_t)(k[i] >> 32) == v; i++)
            correct += (k[i] & 1) ? -1 : 1;
        if (correct >= best) { best = correct; best_key = v; best_inf = false; }
    }
    free(k);
    *accuracy = (double)best / (double)n;
    if (threshold && !best_inf) {
        uint32_t u = (best_key & 0x80000000u) ? (best_key & 0x7fffffffu) : ~best_key;
        memcpy(threshold, &u, sizeof u);
    }
    return SM_OK;
}

/* ---------------------------------------------------------------- pairs */

/* Maps u in [0, c(c-1)/2) to the u-th pair (a, b), a < b < c, in lexicographic
 * order; the pairs starting at a begin at off(a) = a(c-1) - a(a-1)/2. */
static void tri_unrank(int64_t u, int64_t c, int64_t *a, int64_t *b)
{
    int64_t lo = 0, hi = c - 2;   /* largest a with off(a) <= u */
    while (lo < hi) {
        int64_t m = lo + (hi - lo + 1) / 2;
        int64_t off = m * (c - 1) - m * (m - 1) / 2;
        if (off <= u) lo = m; else hi = m - 1;
    }
    *a = lo;
    *b = lo + 1 + (u - (lo * (c - 1) - lo * (lo - 1) / 2));
}

typedef struct pair_space {
    int64_t n;
    const int32_t *lab;
    const int64_t *ord;     /* row indices sorted by (label, index) */
    const int64_t *start;   /* (ncls + 1) class starts in ord */
    const int64_t *cum;     /* (ncls + 1) cumulative positive-pair counts */
    int64_t ncls;
} pair_space;

/* The u-th positive pair as the key i*n + j. */
static uint64_t pos_key(const pair_space *s, int64_t u)
{
    int64_t lo = 0, hi = s->ncls - 1;   /* class with cum[k] <= u < cum[k+1] */
    while (lo < hi) {
        int64_t m = lo + (hi - lo + 1) / 2;
        if (s->cum[m] <= u) lo = m; else hi = m - 1;
    }
    int64_t a, b;
    tri_unrank(u - s->cum[lo], s->start[lo + 1] - s->start[lo], &a, &b);
    int64_t i = s->ord[s->start[lo] + a], j = s->ord[s->start[lo] + b];
    return (uint64_t)i * (uint64_t)s->n + (uint64_t)j;
}

static int64_t unique_u64(uint64_t *a, int64_t n)
{
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (m == 0 || a[i] != a[m - 1]) a[m++] = a[i];
    return m;
}

/* Draws `want` distinct keys uniformly from the positives (kind 0) or the
 * negatives (kind 1) into buf (capacity want), sorted. Each round draws as
 * many i.i.d. keys as are missing and deduplicates, so the result is the first
 * `want` distinct values of an i.i.d. sequence: a uniform random subset. */
static void draw_keys(uint64_t *buf, int64_t want, int kind, int64_t npos, const pair_space *s,
                      sm_rng *rng)
{
    uint64_t tot = (uint64_t)s->n * (uint64_t)(s->n - 1) / 2;
    int64_t have = 0;
    while (have < want) {
        int64_t m = have;
        while (m < want) {
            if (kind == 0) {
                buf[m++] = pos_key(s, (int64_t)sm_rng_below(rng, (uint64_t)npos));
            } else {   /* uniform over all pairs, rejecting positives */
                int64_t i, j;
                tri_unrank((int64_t)sm_rng_below(rng, tot), s->n, &i, &j);
                if (s->lab[i] != s->lab[j]) buf[m++] = (uint64_t)i * (uint64_t)s->n + (uint64_t)j;
            }
        }
        sort_u64(buf, m);
        have = unique_u64(buf, m);
    }
}

/* Fills keys (sorted) with the kept pairs of one kind: all of them, all but a
 * drawn exclusion set, or a drawn set, whichever draws fewer. Returns the
 * count or -1 when out of memory. */
static int64_t kept_keys(uint64_t **keys_out, int kind, int64_t total, int64_t cap, int64_t npos,
                         const pair_space *s, sm_rng *rng)
{
    int64_t keep = total < cap ? total : cap;
    *keys_out = NULL;
    /* Enumerating needs room for all `total` keys before the exclusions go. */
    uint64_t *keys = malloc((size_t)(keep > total / 2 ? total : keep) * sizeof *keys + 8);
    if (!keys) return -1;
    if (keep == total || keep > total / 2) {
        int64_t nex = total - keep;
        uint64_t *ex = NULL;
        if (nex > 0) {
            ex = malloc((size_t)nex * sizeof *ex);
            if (!ex) { free(keys); return -1; }
            draw_keys(ex, nex, kind, npos, s, rng);
        }
        int64_t m = 0, e = 0;
        if (kind == 0) {
            for (int64_t u = 0; u < npos; u++) keys[m++] = pos_key(s, u);
            sort_u64(keys, m);
        } else {
            for (int64_t i = 0; i < s->n; i++)
                for (int64_t j = i + 1; j < s->n; j++)
                    if (s->lab[i] != s->lab[j]) keys[m++] = (uint64_t)i * (uint64_t)s->n + (uint64_t)j;
        }
        int64_t w = 0;   /* drop the excluded keys (both lists sorted) */
        for (int64_t r = 0; r < m; r++) {
            while (e < nex && ex[e] < keys[r]) e++;
            if (e < nex && ex[e] == keys[r]) continue;
            keys[w++] = keys[r];
        }
        free(ex);
        *keys_out = keys;
        return w;
    }
    draw_keys(keys, keep, kind, npos, s, rng);
    *keys_out = keys;
    return keep;
}

sm_status sm_eval_pairs(sm_pairs *out, const float *emb, const int32_t *lab, int64_t n, int64_t d,
                        int64_t max_pos, int64_t max_neg, uint64_t seed, sm_err *err)
{
    memset(out, 0, sizeof *out);
    if (n < 2 || d < 1 || max_pos < 0 || max_neg < 0 || n >= ((int64_t)1 << 31))
        return sm_fail(err, SM_ERR_ARG, "pairs: need 2 <= n < 2^31, d >= 1, max_pos/max_neg >= 0 "
                       "(got n=%lld d=%lld max_pos=%lld max_neg=%lld)", (long long)n, (long long)d,
                       (long long)max_pos, (long long)max_neg);
    /* Rows sorted by (label, index): keys are label << 32 | index. */
    int64_t *ord = malloc((size_t)n * sizeof *ord);
    int64_t *start = malloc((size_t)(n + 1) * sizeof *start);
    int64_t *cum = malloc((size_t)(n + 1) * sizeof *cum);
    uint64_t *tmp = malloc((size_t)n * sizeof *tmp);
    uint64_t *pk = NULL, *nk = NULL;
    if (!ord || !start || !cum || !tmp) goto nomem;
    for (int64_t i = 0; i < n; i++)
        tmp[i] = ((uint64_t)((uint32_t)lab[i] ^ 0x80000000u) << 32) | (uint64_t)i;
    sort_u64(tmp, n);
    int64_t ncls = 0;
    for (int64_t i = 0; i < n; i++) {
        ord[i] = (int64_t)(uint32_t)tmp[i];
        if (i == 0 || lab[ord[i]] != lab[ord[i - 1]]) start[ncls++] = i;
    }
    start[ncls] = n;
    cum[0] = 0;
    for (int64_t k = 0; k < ncls; k++) {
        int64_t c = start[k + 1] - start[k];
        cum[k + 1] = cum[k] + c * (c - 1) / 2;
    }
    int64_t npos = cum[ncls], nneg = n * (n - 1) / 2 - npos;
    pair_space s = {n, lab, ord, start, cum, ncls};
    sm_rng rng;
    sm_rng_seed(&rng, seed);
    int64_t kp = kept_keys(&pk, 0, npos, max_pos, npos, &s, &rng);
    if (kp < 0) goto nomem;
    int64_t kn = kept_keys(&nk, 1, nneg, max_neg, npos, &s, &rng);
    if (kn < 0) goto nomem;

    int64_t m = kp + kn;
    out->sim = malloc((size_t)(m + 1) * sizeof *out->sim);
    out->same = malloc((size_t)(m + 1) * sizeof *out->same);
    out->i = malloc((size_t)(m + 1) * sizeof *out->i);
    out->j = malloc((size_t)(m + 1) * sizeof *out->j);
    if (!out->sim || !out->same || !out->i || !out->j) goto nomem;
    out->n = m; out->npos = kp; out->nneg = kn;
    for (int64_t p = 0; p < m; p++) {
        uint64_t key = p < kp ? pk[p] : nk[p - kp];
        out->i[p] = (int32_t)(key / (uint64_t)n);
        out->j[p] = (int32_t)(key % (uint64_t)n);
        out->same[p] = p < kp;
    }
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < m; p++) {
        const float *x = emb + (int64_t)out->i[p] * d, *y = emb + (int64_t)out->j[p] * d;
        double acc = 0.0;
        for (int64_t t = 0; t < d; t++) acc += (double)x[t] * (double)y[t];
        out->sim[p] = (float)acc;
    }
    free(ord); free(start); free(cum); free(tmp); free(pk); free(nk);
    return SM_OK;
nomem:
    free(ord); free(start); free(cum); free(tmp); free(pk); free(nk);
    sm_pairs_free(out);
    return sm_fail(err, SM_ERR_NOMEM, "pairs: out of memory (lower max_pos/max_neg)");
}

void sm_pairs_free(sm_pairs *p)
{
    if (!p) return;
    free(p->sim); free(p->same); free(p->i); free(p->j);
    memset(p, 0, sizeof *p);
}
