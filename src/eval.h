/* eval.h - evaluation metrics on embeddings and logits (private).
 *
 * What it is: retrieval metrics (precision@1, R-precision, MAP@R, Recall@K,
 * 1-NN accuracy), classification accuracy from logits, and verification
 * metrics on pairs (TAR at given FAR, best-threshold accuracy), plus a builder
 * of positive/negative pair similarities from a labelled embedding set.
 * What it refuses to be: an index. Retrieval here is exact and brute force
 * (one GEMM per block of queries); the gallery/index modules do search.
 *
 * Similarity is the dot product of rows; embeddings are assumed L2-normalised
 * so that it is the cosine. Nothing here normalises or checks the norms.
 *
 * Ranking rule (every function that ranks): by similarity descending, ties by
 * reference index ascending. -0.0 and +0.0 are the same similarity. The rule
 * is total, so the metrics are deterministic and do not depend on the thread
 * count or on how queries are split into blocks.
 *
 * Definitions follow pytorch-metric-learning's AccuracyCalculator
 * (utils/accuracy_calculator.py, avg_of_avgs=False: a plain mean over
 * queries, "macro over queries"), except Recall@K, which is the Recall@K of
 * deep metric learning papers (Song et al. 2016, "Deep Metric Learning via
 * Lifted Structured Feature Embedding"): 1 if ANY of the top K references has
 * the query's label. All means are accumulated in double, in query order. */
#ifndef SM_EVAL_H
#define SM_EVAL_H
#include <stdbool.h>
#include <stdint.h>

#include "simile.h"

/* --------------------------------------------------------------- retrieval */

/* The K of recall_at_k[i] is SM_EVAL_RECALL_K[i] = 1, 2, 4, 8. */
#define SM_EVAL_NRECALL 4
extern const int SM_EVAL_RECALL_K[SM_EVAL_NRECALL];

/* Retrieval metrics over a set of queries against a set of references.
 * For query q, R(q) = number of references with q's label (q itself not
 * counted when same_set). "Valid" queries are those with R(q) > 0; the others
 * ("lone" queries in pytorch-metric-learning) cannot retrieve anything
 * relevant and are left out of every mean marked [valid], as PML does. */
typedef struct sm_retrieval_metrics {
    double precision_at_1;  /* [valid] rank-1 reference has q's label */
    double r_precision;     /* [valid] (# of q's label among the top R) / R */
    double map_at_r;        /* [valid] (1/R) sum_{i=1..R} P(i) rel(i), P(i) = precision at rank i */
    double recall_at_k[SM_EVAL_NRECALL]; /* [valid] 1 if any of the top K has q's label */
    double knn_accuracy;    /* [all] 1-NN label == q's label, over ALL nq queries (lone ones count
                               as misses): 1-NN classification accuracy, test->train when
                               same_set is false. Equals precision_at_1 when every query is valid. */
    int64_t n_queries;      /* nq */
    int64_t n_valid;        /* queries with R > 0; the [valid] means are over these (0.0 if none) */
} sm_retrieval_metrics;

/* Fills *out with the retrieval metrics of queries against references.
 *
 *   query (nq, d), qlab (nq): query embeddings (rows) and labels
 *   ref   (nr, d), rlab (nr): reference embeddings and labels
 *   same_set: leave-one-out on one split. The caller passes the same set twice
 *             (ref row i is query row i, so nq == nr and rlab == qlab); query i
 *             is removed from its own ranking (by index, not by value).
 *
 * Similarities are computed with sm_gemm for blocks of queries (the nq x nr
 * matrix is never held whole); each query then keeps only its top max(R, 8)
 * references by partial selection, sorted by the ranking rule above. Uses the
 * OpenMP threads of sm_threads_get(); results are identical for any count.
 * Memory: about min(nq, 256) * nr floats, plus 2 * nr 8-byte keys and a
 * 32 KiB histogram per thread.
 *
 * Errors: SM_ERR_ARG (nq, nr or d < 1, nr >= 2^31, same_set with nq != nr, or
 * same_set with a single row), SM_ERR_NAN (a non-finite embedding value),
 * SM_ERR_NOMEM. On error *out is zeroed. Nothing is allocated for the caller. */
sm_status sm_eval_retrieval(sm_retrieval_metrics *out, const float *query, const int32_t *qlab,
                            int64_t nq, const float *ref, const int32_t *rlab, int64_t nr,
                            int64_t d, bool same_set, sm_err *err);

/* ---------------------------------------------------------- classification */

/* Fraction of i in [0, n) with pred[i] == lab[i]; 0.0 when n == 0. */
double sm_eval_accuracy(const int32_t *pred, const int32_t *lab, int64_t n);

/* pred (n) = argmax over each row of logits (n, c), c >= 1. Ties go to the
 * lowest column. The comparison is `>`, so NaN entries never win (a row whose
 * first entry is NaN predicts 0, since nothing compares greater than NaN). */
void sm_argmax_rows(int32_t *pred, const float *logits, int64_t n, int64_t c);

/* ------------------------------------------------------------ verification */

/* One operating point of a ROC curve. A pair is accepted ("same") when its
 * similarity is STRICTLY greater than the threshold. */
typedef struct sm_roc_point {
    double far_target;  /* the FAR asked for */
    float threshold;    /* accept iff sim > threshold (may be -INFINITY: accept all) */
    double tar;         /* true accept rate: accepted positives / positives */
    double far;         /* false accept rate actually reached, <= far_target */
} sm_roc_point;

/* TAR at given FAR values.
 *
 *   sim (n): pair similarities; same (n): 1 for a positive (same-label) pair,
 *   0 for a negative one. far (nfar): targets in [0, 1]. out (nfar): filled.
 *
 * Rule: sort the Nn negative similarities descending, neg[0] >= neg[1] >= ...;
 * let a = floor(far * Nn) (the number of false accepts allowed). The threshold
 * is neg[a] (if a < Nn), else -INFINITY. Accepting sim > neg[a] lets through
 * only negatives strictly above neg[a], all among neg[0..a-1], so the reached
 * FAR is <= the target (smaller when neg[a] is tied with higher negatives).
 * This is the smallest threshold among the negatives' values that keeps
 * FAR <= target (a larger one would lower TAR for nothing).
 *
 * Errors: SM_ERR_ARG (n < 1, no positive or no negative pair, a far outside
 * [0, 1], nfar < 1), SM_ERR_NAN (a non-finite similarity), SM_ERR_NOMEM. */
sm_status sm_eval_roc(sm_roc_point *out, const float *sim, const uint8_t *same, int64_t n,
                      const double *far, int64_t nfar, sm_err *err);

/* Best verification accuracy over thresholds: the threshold t maximising
 * (#positives with sim > t + #negatives with sim <= t) / n, searched over
 * t in {-INFINITY} and every distinct similarity value (that is every distinct
 * split of the sorted pairs). Ties between thresholds go to the LARGEST t.
 * *threshold (may be NULL) receives t; *accuracy receives the accuracy.
 * Errors: SM_ERR_ARG (n < 1), SM_ERR_NAN (non-finite similarity), SM_ERR_NOMEM. */
sm_status sm_eval_best_threshold_accuracy(double *accuracy, float *threshold, const float *sim,
                                          const uint8_t *same, int64_t n, sm_err *err);

/* All (or a sample of the) unordered pairs {i, j}, i < j, of a labelled
 * embedding set, with their similarities. Positives come first, then
 * negatives; each group is sorted by (i, j). */
typedef struct sm_pairs {
    int64_t n, npos, nneg;  /* n = npos + nneg */
    float *sim;             /* (n) dot product of rows i and j */
    uint8_t *same;          /* (n) 1 for positives (lab[i] == lab[j]), else 0 */
    int32_t *i, *j;         /* (n) row indices, i < j */
} sm_pairs;

/* Builds the pairs of emb (n, d) with labels lab (n).
 *
 * When there are at most max_pos positive pairs, all are kept, else exactly
 * max_pos distinct ones are drawn uniformly at random (without replacement);
 * the same for negatives with max_neg. The draw is a pure function of seed
 * (and the inputs): same seed, same pairs, for any thread count.
 * Similarities: a per-pair dot product accumulated in double (so a pair's
 * value does not depend on which other pairs were drawn, nor on threads).
 *
 * Ownership: fills *out with arrays allocated here; free with sm_pairs_free.
 * Errors: SM_ERR_ARG (n < 2, d < 1, max_pos or max_neg < 0, n >= 2^31),
 * SM_ERR_NOMEM. On error *out is zeroed. */
sm_status sm_eval_pairs(sm_pairs *out, const float *emb, const int32_t *lab, int64_t n, int64_t d,
                        int64_t max_pos, int64_t max_neg, uint64_t seed, sm_err *err);

/* Frees the arrays of p and zeroes it; p == NULL is a no-op. */
void sm_pairs_free(sm_pairs *p);
#endif
