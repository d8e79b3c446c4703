// bench_hnswlib.cpp - hnswlib (Debian's libhnswlib-dev, header-only) on the
// vectors bench_index wrote to DIR, printing rows in bench_index's format.
// Not part of simile: the reference to beat. Built by bench/index.sh:
//   g++ -O3 -march=native -std=c++17 bench/bench_hnswlib.cpp -o build/bench/bench_hnswlib -pthread
// usage: bench_hnswlib DIR [M 16] [efConstruction 200] [ef list 16,24,32,64] [threads 2]
// Builds single-threaded (as simile does), searches one query at a time on
// one thread ("single") and all queries over `threads` threads ("batched").
// Single-thread times are thread CPU time, batched ones wall clock, as in
// bench_index.c.
#include <hnswlib/hnswlib.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

static double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the calling thread, for the single-thread timings (build,
// single queries), exactly as bench_index.c measures simile.
static double cpu()
{
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double rss_mib()
{
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
    return 0;
}

template <class T> static std::vector<T> load(const std::string &path, size_t n)
{
    std::vector<T> v(n);
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(v.data(), sizeof(T), n, f) != n) {
        std::fprintf(stderr, "bench_hnswlib: cannot read %s\n", path.c_str());
        std::exit(1);
    }
    std::fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_hnswlib DIR [M] [efC] [ef,list] [threads]\n");
        return 2;
    }
    std::string dir = argv[1];
    size_t M = argc > 2 ? std::atoi(argv[2]) : 16, efc = argc > 3 ? std::atoi(argv[3]) : 200;
    std::string efs = argc > 4 ? argv[4] : "16,24,32,64";
    int T = argc > 5 ? std::atoi(argv[5]) : 2;
    long long n, d, nq;
    {
        std::ifstream m(dir + "/meta");
        m >> n >> d >> nq;
    }
    auto base = load<float>(dir + "/base.f32", n * d);
    auto q = load<float>(dir + "/query.f32", nq * d);
    auto gt = load<int32_t>(dir + "/gt.i32", nq * 10);

    hnswlib::InnerProductSpace space(d);
    double r0 = rss_mib(), t0 = cpu();
    auto *h = new hnswlib::HierarchicalNSW<float>(&space, n, M, efc, 100);
    for (long long i = 0; i < n; i++) h->addPoint(base.data() + i * d, (hnswlib::labeltype)i);
    double tb = cpu() - t0, rss = rss_mib() - r0;
    // structure bytes: level-0 block (links + vector + label per element) + upper link lists
    double mem = (double)n * h->size_data_per_element_;
    for (long long i = 0; i < n; i++) mem += h->element_levels_[i] * h->size_links_per_element_;
    mem /= 1048576.0;

    std::stringstream ss(efs);
    std::string tok;
    std::vector<long long> got(nq * 10);
    while (std::getline(ss, tok, ',')) {
        size_t ef = std::atoi(tok.c_str());
        h->setEf(ef);
        auto run = [&](long long i) {
            auto res = h->searchKnn(q.data() + i * d, 10);
            for (int j = 9; j >= 0; j--) {
                got[i * 10 + j] = res.empty() ? -1 : (long long)res.top().second;
                if (!res.empty()) res.pop();
            }
        };
        run(0);
        t0 = cpu();
        for (long long i = 0; i < nq; i++) run(i);
        double t1 = (cpu() - t0) / nq;
        long long hit = 0;
        for (long long i = 0; i < nq; i++)
            for (int a = 0; a < 10; a++)
                for (int b = 0; b < 10; b++)
                    if (got[i * 10 + a] == gt[i * 10 + b]) { hit++; break; }
        double tbq;
        if (T > 1) {
            t0 = now();
            std::vector<std::thread> th;
            for (int t = 0; t < T; t++)
                th.emplace_back([&, t] {
                    for (long long i = t; i < nq; i += T) run(i);
                });
            for (auto &x : th) x.join();
            tbq = now() - t0;
        } else {
            t0 = cpu();
            for (long long i = 0; i < nq; i++) run(i);
            tbq = cpu() - t0;
        }
        char name[32];
        std::snprintf(name, sizeof name, "hnswlib-ef%zu", ef);
        std::printf("%-16s %8.2f %9.1f %9.1f %10.0f %10.0f %8.4f  hnswlib 0.6.2, M %zu, efC %zu, g++ -O3 -march=native\n",
                    name, tb, mem, rss, 1.0 / t1, nq / tbq, (double)hit / (nq * 10.0), M, efc);
        std::fflush(stdout);
    }
    delete h;
    return 0;
}
