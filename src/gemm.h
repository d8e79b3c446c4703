/* gemm.h - the one place simile calls BLAS (private).
 *
 * Row-major single-precision GEMM: C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N)
 * + beta * C, where op(X) is X or X^T. lda/ldb/ldc are row strides of the
 * matrices as stored. Every call goes through here so that OpenBLAS can be
 * swapped for BLIS/MKL in one file.
 *
 * Threads: OpenBLAS always runs single-threaded (sm_threads_set); simile
 * parallelises its own loops with OpenMP so the two never oversubscribe the
 * cores. sm_gemm called outside a parallel region splits the columns of C over
 * the OpenMP threads when the product is large enough; inside a parallel
 * region (or for small products) it runs on the calling thread. The split is
 * static, so results are reproducible for a given thread count. */
#ifndef SM_GEMM_H
#define SM_GEMM_H
#include <stdbool.h>
#include <stdint.h>

void sm_gemm(bool transa, bool transb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
             float *c, int64_t ldc);

/* Same contract, plain loops in double accumulation: the oracle for tests. */
void sm_gemm_naive(bool transa, bool transb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc);

/* Sets the number of OpenMP threads simile uses (n <= 0: leave the default)
 * and pins OpenBLAS to one thread. Returns the thread count in effect. */
int sm_threads_set(int n);
int sm_threads_get(void);

/* Index of the calling thread inside a parallel region (0 outside), and the
 * number of threads in that region (1 outside). */
int sm_thread_id(void);
int sm_team_size(void);
#endif
