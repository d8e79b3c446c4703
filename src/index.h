/* index.h - exact and int8 nearest-neighbour search over embeddings (private).
 *
 * What it is: the search kernels behind the gallery. The base is n rows of
 * d floats (row-major, L2-normalised embeddings); a query's similarity to a
 * row is their dot product (the cosine for unit rows). Every search returns,
 * per query, the k best rows best first:
 *
 *   Ranking rule: similarity descending, ties by row index ascending (the
 *   rule of simile.h ("evaluation")), so results do not depend on the thread count, on how
 *   queries are grouped, or on which path (scan or GEMM) computed them,
 *   except where the paths round differently (see below).
 *   When n < k the tail of each result row is (-1, -INFINITY).
 *
 * Paths:
 *   scan   one query against all rows: a dot-product loop over contiguous
 *          rows, one row after another (AVX2+FMA intrinsics when compiled
 *          with them, 8 independent float lanes otherwise, which the compiler
 *          vectorises), feeding a size-k min-heap (partial selection,
 *          O(n log k)). Split over the OpenMP threads in row blocks when n*d
 *          is large (sm_index_scan_split_min); per-thread heaps are merged.
 *          Memory-bandwidth bound for large n: bench/bench_index.c compares
 *          it with a plain streaming read of the same bytes (1.1x at 1M x 128).
 *   gemm   a block of queries against blocks of rows through sm_gemm (one
 *          similarity tile at a time, never the whole nq x n matrix), then the
 *          same heaps. Used by sm_index_flat_search for nq >= SM_INDEX_GEMM_MIN.
 *   int8   rows (and the query) quantised symmetrically per vector:
 *          scale = max|x_i| / 127, code_i = round(x_i / scale) in [-127, 127];
 *          the similarity estimate is dot(codes) * scale_a * scale_b, with the
 *          code dot product exact in int32. 4x less memory than float32 (plus
 *          4 bytes of scale per row); optionally the best `rerank` candidates
 *          are re-scored with the float rows. Several queries are scanned in
 *          chunks over L2-sized blocks of rows, so the codes are read once per
 *          chunk of queries, not once per query.
 *
 * Rounding: scan and gemm accumulate in float in different orders, so their
 * similarities may differ in the last bits (tests compare both with a double
 * oracle). Rows are never checked for norm; non-finite values are the
 * caller's responsibility (the gallery refuses them at enroll).
 *
 * What it refuses to be: a store (the gallery) or a graph index (hnsw.h). */
#ifndef SM_INDEX_H
#define SM_INDEX_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "simile.h"

/* Number of queries from which sm_index_flat_search uses the GEMM path: below
 * it one scan per query reads the rows nq times, above it a GEMM tile reads
 * them once per block of queries and runs at compute speed. */
#define SM_INDEX_GEMM_MIN 4

/* Largest k accepted by every search (a top-k heap per query per thread):
 * the gallery's public limit. */
#define SM_INDEX_MAX_K SM_GALLERY_MAX_K

/* Sets the size (n * d floats, > 0) from which one query's scan is split over
 * the OpenMP threads, and returns the previous value (floats <= 0 only
 * reads it). Default 2^24 (64 MiB of rows). For tests and benches; not
 * thread-safe against concurrent searches. */
int64_t sm_index_scan_split_min(int64_t floats);

/* Dot product of a (d) and b (d), float accumulation in the path's order. */
float sm_dot_f32(const float *a, const float *b, int64_t d);

/* Dot product of two int8 code vectors (d) in exact int32 (d <= 2^17, so
 * 127 * 127 * d cannot overflow). */
int32_t sm_dot_i8(const int8_t *a, const int8_t *b, int64_t d);

/* Exact top-k of queries q (nq, d) against base (n, d).
 *   idx (nq, k): row indices in [0, n) or -1; sim (nq, k): similarities.
 * Uses scan for nq < SM_INDEX_GEMM_MIN and gemm otherwise.
 * Errors: SM_ERR_ARG (k < 1 or > SM_INDEX_MAX_K, n < 0, d < 1, nq < 0, NULL
 * pointers with non-zero sizes), SM_ERR_NOMEM. n == 0 fills every result with
 * (-1, -INFINITY). Nothing is allocated for the caller. */
sm_status sm_index_flat_search(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                               int64_t k, int64_t *idx, float *sim, sm_err *err);

/* The two paths of sm_index_flat_search, callable on their own (tests and
 * benches); same contract. */
sm_status sm_index_flat_scan(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                             int64_t k, int64_t *idx, float *sim, sm_err *err);
sm_status sm_index_flat_gemm(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                             int64_t k, int64_t *idx, float *sim, sm_err *err);

/* Naive twin: double accumulation, a full sort per query. The test oracle. */
sm_status sm_index_flat_naive(const float *base, int64_t n, int64_t d, const float *q, int64_t nq,
                              int64_t k, int64_t *idx, float *sim, sm_err *err);

/* Quantises x (n, d) into codes (n, d) and scales (n) as in the file comment.
 * A zero row gets scale 0 and zero codes. Never fails. */
void sm_q8_encode(int8_t *codes, float *scales, const float *x, int64_t n, int64_t d);

/* Dequantises codes (n, d) with scales (n) into x (n, d). */
void sm_q8_decode(float *x, const int8_t *codes, const float *scales, int64_t n, int64_t d);

/* Top-k of queries q (nq, d, float) against int8 rows codes (n, d) / scales (n).
 * The query is quantised the same way. With rerank > 0 and base (n, d) the
 * float rows, the best max(k, rerank) rows by the int8 estimate are re-scored
 * exactly (sm_dot_f32) and the top-k of those returned; sims are then exact.
 * Without (rerank == 0 or base NULL) sims are the int8 estimates.
 * Queries run in parallel over the OpenMP threads.
 * Errors: as sm_index_flat_search; rerank < 0 or > SM_INDEX_MAX_K is SM_ERR_ARG. */
sm_status sm_index_q8_search(const int8_t *codes, const float *scales, int64_t n, int64_t d,
                             const float *q, int64_t nq, int64_t k, const float *base, int64_t rerank,
                             int64_t *idx, float *sim, sm_err *err);

/* ------------------------------------------------------------ top-k helper */

/* A bounded selection of the k best (sim, index) pairs under the ranking
 * rule: a binary min-heap whose root is the worst pair kept. Shared with the
 * HNSW code and the gallery. The arrays are caller-provided, k entries each. */
typedef struct sm_topk {
    int64_t k, n;   /* capacity, entries held */
    float *sim;     /* (k) */
    int64_t *idx;   /* (k) */
} sm_topk;

/* Starts an empty selection over caller arrays sim (k), idx (k). */
void sm_topk_init(sm_topk *t, int64_t k, float *sim, int64_t *idx);
/* Offers (s, i); keeps it if it ranks among the k best seen so far. */
void sm_topk_push(sm_topk *t, float s, int64_t i);
/* The similarity a new pair must beat to enter (-INFINITY while not full). */
static inline float sm_topk_floor(const sm_topk *t) { return t->n < t->k ? -INFINITY : t->sim[0]; }
/* Sorts the held pairs best first into out_idx/out_sim (k each; the tail past
 * n is (-1, -INFINITY)). The selection is consumed (n becomes 0). out arrays
 * may be the selection's own. */
void sm_topk_finish(sm_topk *t, int64_t *out_idx, float *out_sim);

#endif
