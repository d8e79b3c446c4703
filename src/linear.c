/* linear.c - fully connected layer, out = inp @ weight^T + bias, on dense
 * (N, F) activations with PyTorch's (Out, In) weight layout. See kernels.h.
 *
 * Three GEMMs through sm_gemm (which splits large products over the OpenMP
 * threads); the bias gradient is a per-feature column sum in double. The
 * naive oracle for this kernel is sm_gemm_naive. */
#include "kernels.h"

#include "gemm.h"

/* An OpenMP loop (static schedule) that disappears, without an unknown-pragma
 * warning, in a build without OpenMP. */
#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#define PAR_FOR(cond) SM_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define PAR_FOR(cond)
#endif

void sm_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int64_t n, int64_t in, int64_t outf)
{
    sm_gemm(false, true, n, outf, in, 1.0f, inp, in, weight, in, 0.0f, out, outf);
    if (bias)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < outf; j++) out[i * outf + j] += bias[j];
}

void sm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int64_t n, int64_t in,
                        int64_t outf)
{
    if (dinp)    /* dinp (N,In) += dout (N,Out) @ weight (Out,In) */
        sm_gemm(false, false, n, in, outf, 1.0f, dout, outf, weight, in, 1.0f, dinp, in);
    if (dweight) /* dweight (Out,In) += dout^T (Out,N) @ inp (N,In) */
        sm_gemm(true, false, outf, in, n, 1.0f, dout, outf, inp, in, 1.0f, dweight, in);
    if (dbias) {
        PAR_FOR(n * outf >= 32768)
        for (int64_t j = 0; j < outf; j++) {
            double s = 0.0;
            for (int64_t i = 0; i < n; i++) s += dout[i * outf + j];
            dbias[j] += (float)s;
        }
    }
}
