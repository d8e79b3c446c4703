/* gemm.c - CBLAS wrapper and its naive twin. See gemm.h. */
#include "gemm.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void blas_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb,
                beta, c, (blasint)ldc);
}

void sm_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
             float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {   /* C = beta * C, as BLAS defines it */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
#ifdef _OPENMP
    int nt = omp_get_max_threads();
    /* Below ~4 MFLOP a split costs more in wake-ups than it saves. */
    if (nt > 1 && !omp_in_parallel() && (double)m * (double)n * (double)k > 2e6) {
        bool split_n = n >= m;   /* split the longer side of C */
        int64_t len = split_n ? n : m;
        int64_t per = (len + nt - 1) / nt;
        if (split_n && per > 16) per = (per + 15) / 16 * 16;   /* keep column blocks aligned */
        int64_t chunks = (len + per - 1) / per;
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < chunks; t++) {
            int64_t lo = t * per, hi = lo + per < len ? lo + per : len;
            if (split_n)
                blas_call(ta, tb, m, hi - lo, k, alpha, a, lda, tb ? b + lo * ldb : b + lo, ldb,
                          beta, c + lo, ldc);
            else
                blas_call(ta, tb, hi - lo, n, k, alpha, ta ? a + lo : a + lo * lda, lda, b, ldb,
                          beta, c + lo * ldc, ldc);
        }
        return;
    }
#endif
    blas_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sm_gemm_naive(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p];
                double y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y;
            }
            double prev = beta == 0.0f ? 0.0 : (double)beta * c[i * ldc + j];
            c[i * ldc + j] = (float)(alpha * s + prev);
        }
}

int sm_threads_set(int n)
{
    openblas_set_num_threads(1);
#ifdef _OPENMP
    if (n > 0)
        omp_set_num_threads(n);
    return omp_get_max_threads();
#else
    (void)n;
    return 1;
#endif
}

int sm_threads_get(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int sm_team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

int sm_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
