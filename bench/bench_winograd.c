/* bench_winograd.c - Winograd F(4x4, 3x3) against im2col + GEMM on the 3x3
 * stride-1 convolutions of ResNet-18 (64, 128, 256, 512 channels at S/4 ..
 * S/32) and mnist-net (16, 32, 64 at 28, 14, 7), forward and input gradient,
 * best of `reps` after a warm-up, same process, same threads. Also prints the
 * max error of each against the naive twin, relative to the output's max |x|.
 *
 *   make build/bench/bench_winograd
 *   build/bench/bench_winograd [threads] [reps] [size: 112] [batch: 64]
 * (not a test; the machine's noise is why both run interleaved) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"

#include "bench.h"

static double rel_err(const float *a, const float *ref, int64_t n)
{
    double m = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
        if (fabs(a[i] - ref[i]) > e) e = fabs(a[i] - ref[i]);
    }
    return m > 0 ? e / m : e;
}

int main(int argc, char **argv)
{
    int threads = sm_threads_set(argc > 1 ? atoi(argv[1]) : 0);
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    int64_t size = argc > 3 ? atoll(argv[3]) : 112, batch = argc > 4 ? atoll(argv[4]) : 64;
    int check = argc > 5 ? atoi(argv[5]) : 1;
    const int64_t layers[][4] = {   /* cin, cout, h=w, batch */
        {64, 64, size / 4, batch}, {128, 128, size / 8, batch}, {256, 256, size / 16, batch},
        {512, 512, size / 32, batch}, {64, 64, size / 4, 1}, {512, 512, size / 32, 1},
        {16, 16, 28, 128}, {32, 32, 14, 128}, {64, 64, 7, 128}};
    sm_rng r;
    sm_rng_seed(&r, 1);
    printf("conv2d 3x3 pad 1, %d thread(s), best of %d: ms im2col / Winograd (ratio), max rel err vs naive\n",
           threads, reps);
    printf("%-22s | %8s %8s %6s | %8s %8s %6s | %8s %8s\n", "layer", "fwd", "wino", "x", "dinp", "wino", "x",
           "err fwd", "err dinp");
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        sm_conv_shape s = {.n = layers[l][3], .cin = layers[l][0], .h = layers[l][2], .w = layers[l][2],
                           .cout = layers[l][1], .kh = 3, .kw = 3, .stride = 1, .pad = 1};
        if (s.h < 1 || sm_conv_shape_init(&s) != 0) continue;
        int64_t nx = s.cin * s.n * s.h * s.w, nw = s.cout * s.cin * 9, no = s.cout * s.n * s.oh * s.ow;
        float *x = bench_randn(nx, &r), *w = bench_randn(nw, &r), *dout = bench_randn(no, &r);
        float *out = bench_randn(no, &r), *ref = bench_randn(no, &r), *dx = bench_randn(nx, &r);
        float *dxref = bench_randn(nx, &r);
        float *scratch = malloc(sm_conv2d_scratch_floats(&s, threads) * sizeof(float));
        double t[2][2] = {{1e30, 1e30}, {1e30, 1e30}}, err[2] = {0, 0};
        for (int i = 0; i < 2 * (reps + 1); i++) {   /* interleaved; the first pair warms up */
            int wino = i & 1;
            sm_conv_set_winograd(wino);
            double t0 = now();
            sm_conv2d_forward(out, x, w, NULL, &s, scratch);
            double t1 = now();
            memset(dx, 0, (size_t)nx * sizeof(float));
            double t2 = now();
            sm_conv2d_backward(dx, NULL, NULL, dout, x, w, &s, scratch);
            double t3 = now();
            if (i >= 2) {
                if (t1 - t0 < t[wino][0]) t[wino][0] = t1 - t0;
                if (t3 - t2 < t[wino][1]) t[wino][1] = t3 - t2;
            }
            if (check && i == 2 * reps + 1) {   /* the last pair: errors */
                sm_conv2d_forward_naive(ref, x, w, NULL, &s);
                memset(dxref, 0, (size_t)nx * sizeof(float));
                sm_conv2d_backward_naive(dxref, NULL, NULL, dout, x, w, &s);
                err[0] = rel_err(out, ref, no);
                err[1] = rel_err(dx, dxref, nx);
            }
        }
        sm_conv_set_winograd(true);
        char name[48];
        snprintf(name, sizeof name, "%lld->%lld %lldx%lld n%lld", (long long)s.cin, (long long)s.cout,
                 (long long)s.h, (long long)s.w, (long long)s.n);
        printf("%-22s | %8.2f %8.2f %5.2fx | %8.2f %8.2f %5.2fx | %8.1e %8.1e\n", name, 1e3 * t[0][0],
               1e3 * t[1][0], t[0][0] / t[1][0], 1e3 * t[0][1], 1e3 * t[1][1], t[0][1] / t[1][1], err[0],
               err[1]);
        free(x); free(w); free(dout); free(out); free(ref); free(dx); free(dxref); free(scratch);
    }
    return 0;
}
