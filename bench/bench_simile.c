/* bench_simile.c - simile's side of the speed/memory benchmark (not a test).
 *
 * Mirrors bench/torch_ref.py --mode bench on the same model (mnist-net, D=512,
 * ArcFace s=30 m=0.5, SGD lr 0.03 Nesterov momentum 0.9 wd 2e-3 (the defaults), batch 128):
 *   (a) training images/s over --steps timed steps after --warmup steps, each a
 *       full step of `simile train` (loader thread, forward, head, backward,
 *       optimizer);
 *   (b) embedding images/s at batch 256 (eval mode, L2-normalised output), by
 *       a model holding the trained weights that only embeds, as `simile embed`;
 *   (c) batch-1 embedding latency, median of 200;
 *   (d) peak RSS of the process (getrusage), data set included.
 * Prints one JSON line with the same keys as torch_ref.py.
 * usage: bench_simile [threads] [steps] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "simile.h"
#include "bench.h"
#include "loader.h"

static void check(sm_status st, const sm_err *err) { bench_check("bench_simile", st, err); }

int main(int argc, char **argv)
{
    bench_conv_algo();
    int threads = sm_threads_set(argc > 1 ? atoi(argv[1]) : 0);
    int steps = argc > 2 ? atoi(argv[2]) : 100, warmup = 20;
    sm_err err = {0};
    sm_dataset train = {0}, test = {0};
    check(sm_dataset_open("fashion-mnist", &train, &test, &err), &err);
    char spec[4096];
    sm_head_config hc;
    check(sm_head_config_default(&hc, "arcface", &err), &err);
    sm_model *m = NULL;
    check(sm_model_new(&m, sm_zoo_spec("mnist-net", 512, spec, sizeof spec, &err), &hc, 10, 1, &err), &err);
    sm_optim_config oc;
    sm_optim_config_default(&oc, SM_OPTIM_SGD);
    sm_optim *opt = NULL;
    check(sm_optim_new(&opt, &oc, sm_model_nparams(m), &err), &err);
    sm_loader *ld = NULL;
    check(sm_loader_new(&ld, &train, 128, true, true, 1, SM_FASHION_MNIST_MEAN, SM_FASHION_MNIST_STD, &err), &err);

    const float *x;
    const int32_t *y;
    int64_t n, epoch = 0;
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = now();
        if (!sm_loader_next(ld, &x, &y, &n)) {
            sm_loader_start_epoch(ld, ++epoch);
            sm_loader_next(ld, &x, &y, &n);
        }
        double loss;
        check(sm_model_train_step(m, x, y, n, (uint64_t)s, &loss, NULL, &err), &err);
        sm_optim_step(opt, sm_model_params(m), sm_model_grads(m), oc.lr);
    }
    double train_ips = steps * 128.0 / (now() - t0);
    sm_loader_free(ld);

    /* inference as `simile embed` / the service run it: a model that only
     * embeds (inference arena, chunks of 256), with the trained weights */
    sm_model *tm = m;
    check(sm_model_new(&m, spec, &hc, 10, 1, &err), &err);
    for (int t = 0; t < sm_model_ntensors(m); t++) {
        sm_tensor_info a, b;
        check(sm_model_tensor(tm, t, &a), &err);
        check(sm_model_tensor(m, t, &b), &err);
        memcpy(b.data, a.data, sizeof(float) * (size_t)a.numel);
    }
    sm_model_free(tm);

    /* embedding at batch 256 over the first 40 batches of the test split */
    const int64_t eb = 256, nb = test.n / eb < 40 ? test.n / eb : 40, in = 784;
    float *xb = malloc(sizeof(float) * (size_t)(eb * nb * in)), *emb = malloc(sizeof(float) * (size_t)(eb * 512));
    sm_images_to_float(xb, test.images, eb * nb * in, SM_FASHION_MNIST_MEAN, SM_FASHION_MNIST_STD);
    for (int i = 0; i < 3; i++) check(sm_model_embed(m, xb + i * eb * in, eb, emb, &err), &err);
    t0 = now();
    for (int64_t i = 0; i < nb; i++) check(sm_model_embed(m, xb + i * eb * in, eb, emb, &err), &err);
    double embed_ips = (double)(nb * eb) / (now() - t0);

    double lat[200];
    for (int i = 0; i < 20; i++) check(sm_model_embed(m, xb + i * in, 1, emb, &err), &err);
    for (int i = 0; i < 200; i++) {
        double a = now();
        check(sm_model_embed(m, xb + i * in, 1, emb, &err), &err);
        lat[i] = now() - a;
    }
    qsort(lat, 200, sizeof lat[0], cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"train_images_per_s\": %.1f, \"embed_images_per_s\": %.1f, \"latency_ms\": %.3f, "
           "\"peak_rss_mib\": %.1f, \"threads\": %d}\n",
           train_ips, embed_ips, 0.5 * (lat[99] + lat[100]) * 1e3, ru.ru_maxrss / 1024.0, threads);
    free(xb);
    free(emb);
    sm_optim_free(opt);
    sm_model_free(m);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    return 0;
}
