/* bench_zoo.c - simile's side of the zoo benchmark (issue 13, point 8; not a test).
 *
 * Mirrors bench/torch_zoo.py on a torchvision-compatible backbone of the zoo
 * (resnet18, resnet34, resnet50, mobilenet-v2) at S x S pixels, 3 channels,
 * with the embedding Linear -> 512, BatchNorm1d(512) in place of the
 * classifier. One process measures one phase, so that each peak RSS is that
 * phase's alone:
 *   train  ArcFace head (s=30, m=0.5) over 1000 classes, SGD with the defaults
 *          (lr 0.03, Nesterov momentum 0.9, wd 2e-3), batch 32: images/s over
 *          `steps` timed steps (forward, head, backward, optimizer) after 2
 *          untimed ones;
 *   infer  a backbone-only model (no head, as `simile embed` uses it) in eval
 *          mode: embedding images/s at batch 64 (L2-normalised output) over
 *          `steps` batches after 1, then batch-1 latency, median of up to 50
 *          after 5.
 * A timed loop also stops once it has run `seconds` (and at least 2 steps),
 * so a slow model keeps the whole bench short; the JSON says how many ran.
 * Inputs are one fixed batch of uniform [-1, 1) values and labels, made once
 * before timing: no loader, no decoding, the same work as the PyTorch side.
 * Peak RSS is VmHWM of /proc/self/status, read at the end; base_rss_mib is
 * VmRSS once the model, optimizer and inputs exist, before the first step
 * (simile's arenas are allocated by that step, PyTorch's gradients too).
 * Prints one JSON line.
 * SIMILE_TRAIN_WINOGRAD=1: training convolutions by Winograd too (train
 * --winograd); SIMILE_WINOGRAD=0: no Winograd at all (bench.h).
 * usage: bench_zoo ARCH SIZE train|infer [threads] [steps] [seconds] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simile.h"
#include "bench.h"

enum { DIM = 512, CLASSES = 1000, TRAIN_BATCH = 32, EMBED_BATCH = 64, MAX_LAT = 50 };

static void check(sm_status st, const sm_err *err) { bench_check("bench_zoo", st, err); }

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_zoo: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* splitmix64: inputs need only be reproducible, not match PyTorch's */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float *random_images(int64_t n, uint64_t seed)
{
    float *x = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((double)(next(&seed) >> 11) * 0x1p-52 - 1.0);
    return x;
}

/* a line of /proc/self/status in MiB ("VmHWM:" peak resident set, "VmRSS:"
 * current), -1 if unreadable */
static double status_mib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) kib = atof(line + strlen(key));
    if (f) fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "train") && strcmp(argv[3], "infer"))) {
        fprintf(stderr, "usage: bench_zoo ARCH SIZE train|infer [threads] [steps] [seconds]\n"
                        "  ARCH one of: %s\n", sm_zoo_names());
        return 2;
    }
    const char *arch = argv[1], *phase = argv[3];
    int64_t size = atoll(argv[2]);
    bench_conv_algo();
    int threads = sm_threads_set(argc > 4 ? atoi(argv[4]) : 0);
    int steps = argc > 5 ? atoi(argv[5]) : 10;
    double seconds = argc > 6 ? atof(argv[6]) : 30.0;
    if (steps < 2) steps = 2;
    bool train = !strcmp(phase, "train");
    sm_err err = {0};
    char *spec = sm_zoo_build(arch, &(sm_zoo_config){.dim = DIM, .channels = 3, .height = size,
                                                     .width = size}, &err);
    if (!spec) check(SM_ERR_ARG, &err);
    sm_head_config hc;
    check(sm_head_config_default(&hc, "arcface", &err), &err);
    sm_model *m = NULL;
    check(sm_model_new(&m, spec, train ? &hc : NULL, train ? CLASSES : 0, 1, &err), &err);
    const char *tw = getenv("SIMILE_TRAIN_WINOGRAD");   /* 1: as `simile train --winograd` */
    sm_model_set_train_winograd(m, tw && tw[0] == '1');
    free(spec);
    const int64_t in = 3 * size * size;

    char res[256];   /* the phase's measurements, printed once all succeeded */
    double base;
    if (train) {
        sm_optim_config oc;
        sm_optim_config_default(&oc, SM_OPTIM_SGD);
        sm_optim *opt = NULL;
        check(sm_optim_new(&opt, &oc, sm_model_nparams(m), &err), &err);
        float *x = random_images(TRAIN_BATCH * in, 1);
        int32_t y[TRAIN_BATCH];
        uint64_t s = 2;
        for (int i = 0; i < TRAIN_BATCH; i++) y[i] = (int32_t)(next(&s) % CLASSES);
        base = status_mib("VmRSS:");
        const int warmup = 2;
        int done = 0;
        double t0 = 0, dt = 0;
        for (int st = 0; st < warmup + steps; st++) {
            if (st == warmup) t0 = now();
            double loss;
            check(sm_model_train_step(m, x, y, TRAIN_BATCH, (uint64_t)st, &loss, NULL, &err), &err);
            sm_optim_step(opt, sm_model_params(m), sm_model_grads(m), oc.lr);
            if (st >= warmup) {
                done++;
                dt = now() - t0;
                if (done >= 2 && dt >= seconds) break;
            }
        }
        snprintf(res, sizeof res, "\"train_images_per_s\": %.2f, \"train_steps\": %d",
                 done * (double)TRAIN_BATCH / dt, done);
        free(x);
        sm_optim_free(opt);
    } else {
        float *x = random_images(EMBED_BATCH * in, 1), *emb = xmalloc(sizeof(float) * EMBED_BATCH * DIM);
        base = status_mib("VmRSS:");
        check(sm_model_plan_inference(m, EMBED_BATCH, &err), &err);
        check(sm_model_embed(m, x, EMBED_BATCH, emb, &err), &err);
        int done = 0;
        double t0 = now(), dt = 0;
        while (done < steps) {
            check(sm_model_embed(m, x, EMBED_BATCH, emb, &err), &err);
            done++;
            dt = now() - t0;
            if (done >= 2 && dt >= seconds) break;
        }
        double embed_ips = done * (double)EMBED_BATCH / dt;
        double lat[MAX_LAT];
        for (int i = 0; i < 5; i++) check(sm_model_embed(m, x + i * in, 1, emb, &err), &err);
        int nl = 0;
        t0 = now();
        while (nl < MAX_LAT && (nl < 5 || now() - t0 < seconds)) {
            double a = now();
            check(sm_model_embed(m, x + (nl % EMBED_BATCH) * in, 1, emb, &err), &err);
            lat[nl++] = now() - a;
        }
        qsort(lat, (size_t)nl, sizeof lat[0], cmp_double);
        double med = nl % 2 ? lat[nl / 2] : 0.5 * (lat[nl / 2 - 1] + lat[nl / 2]);
        snprintf(res, sizeof res,
                 "\"embed_images_per_s\": %.2f, \"embed_batches\": %d, \"latency_ms\": %.3f, "
                 "\"latency_runs\": %d", embed_ips, done, med * 1e3, nl);
        free(x);
        free(emb);
    }
    printf("{\"side\": \"simile\", \"model\": \"%s\", \"size\": %lld, \"phase\": \"%s\", %s, "
           "\"base_rss_mib\": %.1f, \"peak_rss_mib\": %.1f, \"threads\": %d}\n",
           arch, (long long)size, phase, res, base, status_mib("VmHWM:"), threads);
    sm_model_free(m);
    return 0;
}
