/* bench_kernels.c - times the fast (im2col + GEMM) conv2d against its naive
 * twin, forward + backward, on the six conv layers of mnist-net at batch 128
 * (3x3, pad 1; 1->16->16 at 28x28, 16->32->32 at 14x14, 32->64->64 at 7x7),
 * and prints GFLOP/s. FLOPs counted as 2*N*Cout*Cin*KH*KW*OH*OW per pass
 * (forward; backward counts dinp and dweight, so twice that).
 *
 * Standalone, not part of `make`; from the repository root:
 *   make build/libsimile.a
 *   cc -std=c11 -O3 -march=native -fopenmp -Iinclude -Isrc bench/bench_kernels.c \
 *      build/libsimile.a -lopenblas -ljansson -lz -lpthread -lm -o build/bench_kernels
 *   build/bench_kernels [threads] [reps]                  (naive is run once) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"

#include "bench.h"

int main(int argc, char **argv)
{
    int threads = sm_threads_set(argc > 1 ? atoi(argv[1]) : 0);
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    static const int64_t layers[][3] = {   /* cin, cout, h=w */
        {1, 16, 28}, {16, 16, 28}, {16, 32, 14}, {32, 32, 14}, {32, 64, 7}, {64, 64, 7}};
    sm_rng r;
    sm_rng_seed(&r, 1);
    double tf_all = 0, tb_all = 0, tnf_all = 0, tnb_all = 0, fl_all = 0;
    printf("conv2d 3x3 pad 1, batch 128, %d thread(s), best of %d (naive: 1 run)\n", threads, reps);
    printf("%-16s %9s | %10s %10s | %10s %10s | %8s\n", "layer", "MFLOP/fb", "fwd GF/s",
           "bwd GF/s", "naive fwd", "naive bwd", "speedup");
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        sm_conv_shape s = {.n = 128, .cin = layers[l][0], .h = layers[l][2], .w = layers[l][2],
                           .cout = layers[l][1], .kh = 3, .kw = 3, .stride = 1, .pad = 1};
        if (sm_conv_shape_init(&s) != 0) return 1;
        int64_t nx = s.cin * s.n * s.h * s.w, nw = s.cout * s.cin * 9, no = s.cout * s.n * s.oh * s.ow;
        float *x = bench_randn(nx, &r), *w = bench_randn(nw, &r), *b = bench_randn(s.cout, &r);
        float *dout = bench_randn(no, &r), *out = bench_randn(no, &r), *dx = bench_randn(nx, &r);
        float *dw = bench_randn(nw, &r), *db = bench_randn(s.cout, &r);
        float *scratch = malloc(sm_conv2d_scratch_floats(&s, threads) * sizeof(float));
        double flop = 2.0 * (double)s.n * s.cout * s.cin * 9 * s.oh * s.ow;
        double tf = 1e30, tb = 1e30;
        for (int i = 0; i < reps + 1; i++) {   /* the first is a warm-up */
            double t0 = now();
            sm_conv2d_forward(out, x, w, b, &s, scratch);
            double t1 = now();
            sm_conv2d_backward(dx, dw, db, dout, x, w, &s, scratch);
            double t2 = now();
            if (i > 0) { if (t1 - t0 < tf) tf = t1 - t0; if (t2 - t1 < tb) tb = t2 - t1; }
        }
        double t0 = now();
        sm_conv2d_forward_naive(out, x, w, b, &s);
        double t1 = now();
        sm_conv2d_backward_naive(dx, dw, db, dout, x, w, &s);
        double t2 = now();
        double tnf = t1 - t0, tnb = t2 - t1;
        char name[32];
        snprintf(name, sizeof name, "%lld->%lld %lldx%lld", (long long)s.cin, (long long)s.cout,
                 (long long)s.h, (long long)s.w);
        printf("%-16s %9.1f | %10.1f %10.1f | %10.2f %10.2f | %7.0fx\n", name, 3 * flop / 1e6,
               flop / tf / 1e9, 2 * flop / tb / 1e9, flop / tnf / 1e9, 2 * flop / tnb / 1e9,
               (tnf + tnb) / (tf + tb));
        tf_all += tf; tb_all += tb; tnf_all += tnf; tnb_all += tnb; fl_all += flop;
        free(x); free(w); free(b); free(dout); free(out); free(dx); free(dw); free(db); free(scratch);
    }
    printf("%-16s %9.1f | %10.1f %10.1f | %10.2f %10.2f | %7.0fx\n", "all six", 3 * fl_all / 1e6,
           fl_all / tf_all / 1e9, 2 * fl_all / tb_all / 1e9, fl_all / tnf_all / 1e9,
           2 * fl_all / tnb_all / 1e9, (tnf_all + tnb_all) / (tf_all + tb_all));
    printf("fast fwd+bwd for the six layers: %.1f ms per batch of 128 (naive %.0f ms)\n",
           1e3 * (tf_all + tb_all), 1e3 * (tnf_all + tnb_all));
    return 0;
}
