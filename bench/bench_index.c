/* bench_index.c - build time, memory, QPS and recall@10 of simile's exact
 * float32, int8 and HNSW search on random clustered unit vectors, and the
 * memory-bandwidth bound of a single-query exact scan.
 *
 *   build/bench/bench_index [--n 100000] [--d 128] [--nq 1000] [--clusters 1000]
 *       [--sigma 0.06] [--m 16] [--efc 200] [--ef 16,24,32,64] [--threads T]
 *       [--dir DIR] [--seed 1] [--skip-hnsw]
 *
 * Data: `clusters` centres uniform on the unit sphere; each row is a centre
 * plus Gaussian noise of `sigma` per coordinate, normalised. Queries are drawn
 * the same way (not from the base). Ground truth is the exact top-10 by the
 * GEMM path. With --dir the base, queries and ground truth are written there
 * (raw little-endian float32 / int32, a text header `DIR/meta`) so that
 * bench/bench_hnswlib.cpp measures hnswlib on the very same vectors; see
 * bench/index.sh, which runs both and prints one table.
 *
 * Threads: "single" columns run one query at a time on 1 thread (latency
 * path); "batched" columns hand all queries at once to all T threads. Builds
 * run on 1 thread (simile's HNSW build is sequential). The bandwidth bound is
 * a plain streaming read (sum) of the base's bytes on 1 thread, timed next to
 * every exact single query; the medians of both are compared.
 * Memory is the structure's bytes (vectors included) and the RSS growth
 * measured around the build. Single-thread times (builds, single queries,
 * the streaming read, and batched ones when T is 1) are the thread's CPU
 * time, batched times with T > 1 wall clock:
 * the machines this runs on are shared, and CPU time does not count the
 * waits for a core (memory stalls are counted: they are CPU time).
 * Output: one line per method, `name build_s mem_MiB rss_MiB single_qps
 * batched_qps recall10 [extra]`, machine-readable after a '#'-comment header. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "hnsw.h"
#include "index.h"
#include "rng.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "bench.h"

/* CPU time of the calling thread: the single-thread timings use it, so that
 * on a shared machine time spent waiting for a core is not counted (the
 * batched, multi-thread timings are wall clock). */
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The clock of the batched timings: wall clock with several threads, the
 * thread's CPU time with one (then it is a single-thread measurement too). */
static int bthreads = 1;
static double bclock(void) { return bthreads > 1 ? now() : cpu(); }

static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    return v;
}

static void gen(float *x, int64_t n, int64_t d, const float *c, int64_t nc, double sigma, sm_rng *r)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)sm_rng_below(r, (uint64_t)nc);
        for (int64_t j = 0; j < d; j++) x[i * d + j] = c[k * d + j] + (float)(sigma * sm_rng_normal(r));
    }
    sm_l2norm_rows(x, x, n, d);
}

static double recall10(const int64_t *got, const int32_t *gt, int64_t nq, int64_t k)
{
    int64_t hit = 0;
    for (int64_t i = 0; i < nq; i++)
        for (int64_t a = 0; a < 10; a++)
            for (int64_t b = 0; b < 10; b++)
                if (got[i * k + a] == gt[i * 10 + b]) { hit++; break; }
    return (double)hit / (double)(nq * 10);
}

/* Sum of all floats, 4 independent vector chains: a plain streaming read. */
static float stream_sum(const float *x, int64_t n)
{
#if defined(__AVX2__)
    __m256 a = _mm256_setzero_ps(), b = a, c = a, e = a;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a = _mm256_add_ps(a, _mm256_loadu_ps(x + i));
        b = _mm256_add_ps(b, _mm256_loadu_ps(x + i + 8));
        c = _mm256_add_ps(c, _mm256_loadu_ps(x + i + 16));
        e = _mm256_add_ps(e, _mm256_loadu_ps(x + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, e)));
    float s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    for (; i < n; i++) s += x[i];
    return s;
#else
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j];
    float s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) s += x[i];
    return s;
#endif
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what, const sm_err *e)
{
    fprintf(stderr, "bench_index: %s: %s\n", what, e->msg);
    exit(1);
}

static void write_raw(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "bench_index: cannot write '%s'\n", path);
        exit(1);
    }
}

static void row(const char *name, double build, double mem, double rss, double sq, double bq, double rc,
                const char *extra)
{
    printf("%-16s %8.2f %9.1f %9.1f %10.0f %10.0f %8.4f  %s\n", name, build, mem, rss, sq, bq, rc, extra);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int64_t n = 100000, d = 128, nq = 1000, nc = 1000, m = 16, efc = 200, threads = 0;
    uint64_t seed = 1;
    double sigma = 0.06;
    const char *efs = "16,24,32,64", *dir = NULL;
    int skip_hnsw = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--skip-hnsw")) { skip_hnsw = 1; continue; }
        if (!v) { fprintf(stderr, "bench_index: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--n")) n = atoll(v);
        else if (!strcmp(a, "--d")) d = atoll(v);
        else if (!strcmp(a, "--nq")) nq = atoll(v);
        else if (!strcmp(a, "--clusters")) nc = atoll(v);
        else if (!strcmp(a, "--sigma")) sigma = atof(v);
        else if (!strcmp(a, "--m")) m = atoll(v);
        else if (!strcmp(a, "--efc")) efc = atoll(v);
        else if (!strcmp(a, "--ef")) efs = v;
        else if (!strcmp(a, "--threads")) threads = atoll(v);
        else if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--seed")) seed = (uint64_t)atoll(v);
        else { fprintf(stderr, "bench_index: unknown option %s\n", a); return 2; }
    }
    int T = sm_threads_set((int)threads);
    bthreads = T;
    sm_err err = {0};
    sm_rng r;
    sm_rng_seed(&r, seed);
    float *cent = malloc(sizeof(float) * (size_t)(nc * d));
    for (int64_t i = 0; i < nc * d; i++) cent[i] = (float)sm_rng_normal(&r);
    sm_l2norm_rows(cent, cent, nc, d);
    float *base = malloc(sizeof(float) * (size_t)(n * d)), *q = malloc(sizeof(float) * (size_t)(nq * d));
    gen(base, n, d, cent, nc, sigma, &r);
    gen(q, nq, d, cent, nc, sigma, &r);
    free(cent);
    const int64_t K = 10;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(nq * K));
    float *sim = malloc(sizeof(float) * (size_t)(nq * K));
    int32_t *gt = malloc(sizeof(int32_t) * (size_t)(nq * K));
    size_t bytes = sizeof(float) * (size_t)(n * d);

    printf("# n %lld, d %lld, %lld queries, %lld clusters, sigma %.3f; %d threads for batched, 1 for single\n",
           (long long)n, (long long)d, (long long)nq, (long long)nc, sigma, T);

    /* exact, batched: the ground truth */
    double t0 = bclock();
    if (sm_index_flat_gemm(base, n, d, q, nq, K, idx, sim, &err)) die("exact gemm", &err);
    double t_gemm = bclock() - t0;
    for (int64_t i = 0; i < nq * K; i++) gt[i] = (int32_t)idx[i];
    if (dir) {
        write_raw(dir, "base.f32", base, bytes);
        write_raw(dir, "query.f32", q, sizeof(float) * (size_t)(nq * d));
        write_raw(dir, "gt.i32", gt, sizeof(int32_t) * (size_t)(nq * K));
        char meta[256];
        int len = snprintf(meta, sizeof meta, "%lld %lld %lld\n", (long long)n, (long long)d, (long long)nq);
        write_raw(dir, "meta", meta, (size_t)len);
    }

    /* exact single queries on 1 thread, each one next to a plain streaming
     * read of the same bytes (the bandwidth bound), so that both see the
     * same machine; the medians are compared */
    int64_t ns = nq < 200 ? nq : 200;
    if (n >= 1000000) ns = nq < 50 ? nq : 50;
    sm_threads_set(1);
    int64_t *si = malloc(sizeof(int64_t) * (size_t)(nq * K));
    float *ss = malloc(sizeof(float) * (size_t)(nq * K));
    double *tsr = malloc(sizeof(double) * (size_t)ns), *tsc = malloc(sizeof(double) * (size_t)ns);
    volatile float sink = 0;
    for (int64_t i = 0; i < ns; i++) {
        t0 = cpu();
        sink += stream_sum(base, n * d);
        tsr[i] = cpu() - t0;
        t0 = cpu();
        if (sm_index_flat_scan(base, n, d, q + i * d, 1, K, si + i * K, ss + i * K, &err)) die("scan", &err);
        tsc[i] = cpu() - t0;
    }
    double best = median(tsr, ns), t_scan = median(tsc, ns);
    free(tsr);
    free(tsc);
    double bw = (double)bytes / best;
    printf("# streaming read of %.1f MiB: %.2f GB/s on 1 thread (median of %lld) -> bound %.3f ms per single exact query\n",
           (double)bytes / 1048576.0, bw / 1e9, (long long)ns, 1e3 * best);
    printf("%-16s %8s %9s %9s %10s %10s %8s  %s\n", "# method", "build_s", "mem_MiB", "rss_MiB", "single_qps",
           "batch_qps", "recall10", "notes");

    sm_threads_set(T);
    char note[256];
    snprintf(note, sizeof note, "scan %.3f ms/query (median) = %.2fx the bandwidth bound; batched = GEMM", 1e3 * t_scan,
             t_scan / best);
    row("exact-f32", 0.0, (double)bytes / 1048576.0, (double)bytes / 1048576.0, 1.0 / t_scan, (double)nq / t_gemm,
        recall10(si, gt, ns, K), note);
    /* exact scan on all threads, single query (the bound scales with threads too) */
    if (T > 1) {
        t0 = now();
        for (int64_t i = 0; i < ns; i++)
            if (sm_index_flat_scan(base, n, d, q + i * d, 1, K, si + i * K, ss + i * K, &err)) die("scan", &err);
        double t_scan2 = (now() - t0) / (double)ns;
        snprintf(note, sizeof note, "single query split over %d threads: %.3f ms/query", T, 1e3 * t_scan2);
        row("exact-f32-mt", 0.0, (double)bytes / 1048576.0, (double)bytes / 1048576.0, 1.0 / t_scan2, (double)nq / t_gemm,
            recall10(si, gt, ns, K), note);
    }

    /* int8 */
    double rss0 = rss_mib();
    t0 = cpu();
    int8_t *codes = malloc((size_t)(n * d));
    float *scales = malloc(sizeof(float) * (size_t)n);
    sm_q8_encode(codes, scales, base, n, d);
    double t_q8 = cpu() - t0, rss_q8 = rss_mib() - rss0;
    double q8mem = (double)(n * d + 4 * n) / 1048576.0;
    for (int rr = 0; rr < 2; rr++) {
        int64_t rerank = rr ? 50 : 0;
        sm_threads_set(1);
        t0 = cpu();
        for (int64_t i = 0; i < ns; i++)
            if (sm_index_q8_search(codes, scales, n, d, q + i * d, 1, K, base, rerank, si + i * K, ss + i * K, &err))
                die("int8", &err);
        double t1 = (cpu() - t0) / (double)ns;
        sm_threads_set(T);
        t0 = bclock();
        if (sm_index_q8_search(codes, scales, n, d, q, nq, K, base, rerank, idx, sim, &err)) die("int8", &err);
        double tb = bclock() - t0;
        if (rr)
            snprintf(note, sizeof note, "int8 scan, best 50 re-scored with the float rows (+%.0f MiB)",
                     (double)bytes / 1048576.0);
        else
            snprintf(note, sizeof note, "int8 x int8 scan, per-vector scales");
        row(rr ? "int8+rerank50" : "int8", t_q8, q8mem + (rr ? (double)bytes / 1048576.0 : 0), rss_q8, 1.0 / t1,
            (double)nq / tb, recall10(idx, gt, nq, K), note);
    }
    free(codes);
    free(scales);

    /* HNSW */
    if (!skip_hnsw) {
        sm_hnsw_config cfg = {.m = m, .ef_construction = efc, .seed = 100};
        sm_hnsw *h = NULL;
        sm_threads_set(1);
        rss0 = rss_mib();
        t0 = cpu();
        if (sm_hnsw_build(&h, base, n, d, &cfg, &err)) die("hnsw build", &err);
        double t_b = cpu() - t0, rss_h = rss_mib() - rss0;
        double hmem = (double)sm_hnsw_bytes(h) / 1048576.0;
        char efbuf[256];
        snprintf(efbuf, sizeof efbuf, "%s", efs);
        for (char *tok = strtok(efbuf, ","); tok; tok = strtok(NULL, ",")) {
            int64_t ef = atoll(tok);
            sm_threads_set(1);
            /* warm-up pass, then timed */
            if (sm_hnsw_search(h, q, 1, K, ef, si, ss, &err)) die("hnsw", &err);
            t0 = cpu();
            for (int64_t i = 0; i < nq; i++)
                if (sm_hnsw_search(h, q + i * d, 1, K, ef, si + i * K, ss + i * K, &err)) die("hnsw", &err);
            double t1 = (cpu() - t0) / (double)nq;
            double rc = recall10(si, gt, nq, K);
            sm_threads_set(T);
            t0 = bclock();
            if (sm_hnsw_search(h, q, nq, K, ef, idx, sim, &err)) die("hnsw", &err);
            double tb = bclock() - t0;
            char name[32];
            snprintf(name, sizeof name, "hnsw-ef%lld", (long long)ef);
            snprintf(note, sizeof note, "M %lld, efC %lld, max level %d; graph + its copy of the rows", (long long)m,
                     (long long)efc, sm_hnsw_max_level(h));
            row(name, t_b, hmem, rss_h, 1.0 / t1, (double)nq / tb, rc, note);
        }
        sm_hnsw_free(h);
    }
    (void)sink;
    free(base);
    free(q);
    free(idx);
    free(sim);
    free(si);
    free(ss);
    free(gt);
    return 0;
}
