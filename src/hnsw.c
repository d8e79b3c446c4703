/* hnsw.c - HNSW graph: build, search, save, load (see hnsw.h). */
#include "hnsw.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ckpt.h"
#include "gemm.h"
#include "index.h"
#include "rng.h"
#include "status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hnsw.c writes its arrays in host order, which the format requires to be little-endian"
#endif

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Levels above this are not drawn (probability M^-64: never, for M >= 2). */
#define MAX_LEVEL 63

/* ----------------------------------------------------------------- types */

typedef struct cand {
    float d;       /* distance = -dot: smaller is closer */
    uint32_t id;
} cand;

/* Scratch of one search: visited tags and the two heaps. */
typedef struct ctx {
    uint16_t *tag;
    uint16_t cur;
    cand *cq;            /* candidates: min-heap by d */
    int64_t ncq, capq;
    cand *rq;            /* results: max-heap by d, at most ef + 1 */
    int64_t nrq, caprq;
    bool oom;
} ctx;

struct sm_hnsw {
    int64_t n, d, m0;
    sm_hnsw_config cfg;
    uint8_t *level;       /* (n) */
    /* Level 0, one block of `stride` bytes per node (64-byte aligned): the
     * count and M0 links, then at voff a copy of the node's row. Links and
     * vector share a block so that expanding a node and scoring it touch one
     * region of memory (hnswlib's layout); the copy costs n*d*4 bytes. */
    uint8_t *blk;
    size_t stride, voff;
    uint32_t *up;         /* level l >= 1 of node i: up + up_off[i] + (l-1)*(1+m) */
    int64_t *up_off;      /* (n) */
    int64_t up_words;
    int max_level;
    uint32_t entry;
    pthread_mutex_t lock; /* guards pool */
    ctx **pool;
    int npool, cappool, nctx;
};

static inline uint32_t *links(const sm_hnsw *h, uint32_t i, int l)
{
    if (l == 0) return (uint32_t *)(void *)(h->blk + (size_t)i * h->stride);
    return h->up + h->up_off[i] + (int64_t)(l - 1) * (1 + h->cfg.m);
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
/* The distance inlined into the search loops (a call per distance costs
 * ~10% of a search at d = 128): 2 chains of 8 lanes. */
static inline float dot_inl(const float *a, const float *b, int64_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= d) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    s0 = _mm256_add_ps(s0, s1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    for (; i < d; i++) r += a[i] * b[i];
    return r;
}
#else
#define dot_inl sm_dot_f32
#endif

static inline const float *vec(const sm_hnsw *h, uint32_t i)
{
    return (const float *)(const void *)(h->blk + (size_t)i * h->stride + h->voff);
}

static inline float dist_q(const sm_hnsw *h, const float *q, uint32_t i)
{
    return -dot_inl(q, vec(h, i), h->d);
}

static inline float dist_ij(const sm_hnsw *h, uint32_t i, uint32_t j)
{
    return dist_q(h, vec(h, i), j);
}

void sm_hnsw_config_default(sm_hnsw_config *c)
{
    c->m = 16;
    c->ef_construction = 200;
    c->seed = 100;
}

int64_t sm_hnsw_size(const sm_hnsw *h) { return h->n; }
int64_t sm_hnsw_dim(const sm_hnsw *h) { return h->d; }
int sm_hnsw_max_level(const sm_hnsw *h) { return h->max_level; }
const sm_hnsw_config *sm_hnsw_config_of(const sm_hnsw *h) { return &h->cfg; }

size_t sm_hnsw_bytes(const sm_hnsw *h)
{
    size_t b = sizeof *h + (size_t)h->n * (1 + sizeof(int64_t) + h->stride) + (size_t)h->up_words * sizeof(uint32_t);
    b += (size_t)h->nctx * (sizeof(ctx) + (size_t)h->n * sizeof(uint16_t));
    return b;
}

/* ------------------------------------------------------------------ heaps */

static inline bool cless(cand a, cand b) { return a.d < b.d || (a.d == b.d && a.id < b.id); }

static bool grow(cand **a, int64_t *cap, int64_t need)
{
    if (need <= *cap) return true;
    int64_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    cand *p = realloc(*a, sizeof(cand) * (size_t)nc);
    if (!p) return false;
    *a = p;
    *cap = nc;
    return true;
}

/* min-heap (is_max false) or max-heap (true) of cand */
static inline bool above(cand a, cand b, bool is_max) { return is_max ? cless(b, a) : cless(a, b); }

static void heap_push(cand *h, int64_t *n, cand c, bool is_max)
{
    int64_t p = (*n)++;
    while (p > 0) {
        int64_t up = (p - 1) / 2;
        if (!above(c, h[up], is_max)) break;
        h[p] = h[up];
        p = up;
    }
    h[p] = c;
}

static cand heap_pop(cand *h, int64_t *n, bool is_max)
{
    cand top = h[0], last = h[--*n];
    int64_t p = 0, m = *n;
    for (;;) {
        int64_t c = 2 * p + 1;
        if (c >= m) break;
        if (c + 1 < m && above(h[c + 1], h[c], is_max)) c++;
        if (!above(h[c], last, is_max)) break;
        h[p] = h[c];
        p = c;
    }
    if (m > 0) h[p] = last;
    return top;
}

/* ------------------------------------------------------------- scratch pool */

static ctx *ctx_get(sm_hnsw *h)
{
    pthread_mutex_lock(&h->lock);
    ctx *c = h->npool > 0 ? h->pool[--h->npool] : NULL;
    pthread_mutex_unlock(&h->lock);
    if (c) return c;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->tag = calloc((size_t)(h->n > 0 ? h->n : 1), sizeof(uint16_t));
    if (!c->tag) {
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&h->lock);
    h->nctx++;
    pthread_mutex_unlock(&h->lock);
    return c;
}

static void ctx_free(ctx *c)
{
    if (!c) return;
    free(c->tag);
    free(c->cq);
    free(c->rq);
    free(c);
}

static void ctx_put(sm_hnsw *h, ctx *c)
{
    if (!c) return;
    c->oom = false;
    pthread_mutex_lock(&h->lock);
    if (h->npool == h->cappool) {
        int nc = h->cappool ? h->cappool * 2 : 4;
        ctx **p = realloc(h->pool, sizeof(ctx *) * (size_t)nc);
        if (!p) {   /* cannot keep it: drop it */
            h->nctx--;
            pthread_mutex_unlock(&h->lock);
            ctx_free(c);
            return;
        }
        h->pool = p;
        h->cappool = nc;
    }
    h->pool[h->npool++] = c;
    pthread_mutex_unlock(&h->lock);
}

/* A fresh visited mark; tags wrap every 65535 searches (then one memset). */
static inline void visit_reset(const sm_hnsw *h, ctx *c)
{
    if (++c->cur == 0) {
        memset(c->tag, 0, sizeof(uint16_t) * (size_t)h->n);
        c->cur = 1;
    }
}

/* ------------------------------------------------------------------ search */

/* Greedy descent from (ep, dep) through levels top..lo+1 (top > lo). */
static uint32_t greedy(const sm_hnsw *h, const float *q, uint32_t ep, float *dep, int top, int lo)
{
    uint32_t cur = ep;
    float dcur = *dep;
    for (int l = top; l > lo; l--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const uint32_t *L = links(h, cur, l);
            for (uint32_t j = 1; j <= L[0]; j++) {
                float dd = dist_q(h, q, L[j]);
                if (dd < dcur) {
                    dcur = dd;
                    cur = L[j];
                    changed = true;
                }
            }
        }
    }
    *dep = dcur;
    return cur;
}

/* Best-first search of level l from (ep, dep) keeping ef results in c->rq
 * (a max-heap of c->nrq entries). Sets c->oom when a heap cannot grow. */
static void search_layer(const sm_hnsw *h, ctx *c, const float *q, uint32_t ep, float dep, int l, int64_t ef)
{
    visit_reset(h, c);
    c->ncq = c->nrq = 0;
    if (!grow(&c->cq, &c->capq, 64) || !grow(&c->rq, &c->caprq, ef + 2)) {
        c->oom = true;
        return;
    }
    c->tag[ep] = c->cur;
    cand e0 = {dep, ep};
    heap_push(c->cq, &c->ncq, e0, false);
    heap_push(c->rq, &c->nrq, e0, true);
    float lb = dep;
    const size_t d = (size_t)h->d;
    while (c->ncq > 0) {
        if (c->cq[0].d > lb && c->nrq >= ef) break;
        cand top = heap_pop(c->cq, &c->ncq, false);
        const uint32_t *L = links(h, top.id, l);
        uint32_t cnt = L[0];
        /* two passes: mark the unvisited neighbours and prefetch their rows
         * (all their cache lines: the loads overlap), then score them */
        uint32_t fresh[2 * 256];
        int nf = 0;
        for (uint32_t j = 1; j <= cnt; j++) {
            uint32_t e = L[j];
            if (c->tag[e] == c->cur) continue;
            c->tag[e] = c->cur;
            fresh[nf++] = e;
            const float *nv = vec(h, e);
            for (size_t o = 0; o < d; o += 16) PREFETCH(nv + o);
        }
        for (int j = 0; j < nf; j++) {
            uint32_t e = fresh[j];
            float de = dist_q(h, q, e);
            if (c->nrq < ef || de < lb) {
                if (!grow(&c->cq, &c->capq, c->ncq + 1)) {
                    c->oom = true;
                    return;
                }
                cand ce = {de, e};
                heap_push(c->cq, &c->ncq, ce, false);
                PREFETCH(links(h, c->cq[0].id, l));
                heap_push(c->rq, &c->nrq, ce, true);
                if (c->nrq > ef) heap_pop(c->rq, &c->nrq, true);
                lb = c->rq[0].d;
            }
        }
    }
}

sm_status sm_hnsw_search(sm_hnsw *h, const float *q, int64_t nq, int64_t k, int64_t ef, int64_t *idx,
                         float *sim, sm_err *err)
{
    if (k < 1 || k > SM_INDEX_MAX_K)
        return sm_fail(err, SM_ERR_ARG, "k must be in 1..%d (got %lld)", SM_INDEX_MAX_K, (long long)k);
    if (ef < 1) return sm_fail(err, SM_ERR_ARG, "ef must be >= 1 (got %lld)", (long long)ef);
    if (nq < 0 || (nq > 0 && (!q || !idx || !sim)))
        return sm_fail(err, SM_ERR_ARG, "bad query arrays (nq %lld)", (long long)nq);
    if (ef < k) ef = k;
    bool oom = false;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) if (nq > 16)
#endif
    for (int64_t i = 0; i < nq; i++) {
        int64_t *oi = idx + i * k;
        float *os = sim + i * k;
        for (int64_t j = 0; j < k; j++) {
            oi[j] = -1;
            os[j] = -INFINITY;
        }
        if (h->n == 0) continue;
        ctx *c = ctx_get(h);
        if (!c) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            oom = true;
            continue;
        }
        const float *qi = q + i * h->d;
        float dep = dist_q(h, qi, h->entry);
        uint32_t ep = h->max_level > 0 ? greedy(h, qi, h->entry, &dep, h->max_level, 0) : h->entry;
        search_layer(h, c, qi, ep, dep, 0, ef);
        if (c->oom) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            oom = true;
        } else {
            sm_topk t;
            sm_topk_init(&t, k, os, oi);
            for (int64_t r = 0; r < c->nrq; r++) sm_topk_push(&t, -c->rq[r].d, c->rq[r].id);
            sm_topk_finish(&t, oi, os);
        }
        ctx_put(h, c);
    }
    if (oom) return sm_fail(err, SM_ERR_NOMEM, "out of memory during an HNSW search");
    return SM_OK;
}

/* ------------------------------------------------------------------- build */

static int cmp_cand(const void *a, const void *b)
{
    cand x = *(const cand *)a, y = *(const cand *)b;
    return cless(x, y) ? -1 : cless(y, x) ? 1 : 0;
}

/* hnswlib's getNeighborsByHeuristic2: w (nw) sorted closest first; keeps a
 * candidate only if it is closer to the base point than to every one kept.
 * Fewer than m candidates are all kept. Returns the count written to out. */
static int64_t select_heuristic(const sm_hnsw *h, const cand *w, int64_t nw, int64_t m, uint32_t *out)
{
    if (nw < m) {
        for (int64_t i = 0; i < nw; i++) out[i] = w[i].id;
        return nw;
    }
    int64_t ns = 0;
    for (int64_t i = 0; i < nw && ns < m; i++) {
        bool good = true;
        for (int64_t j = 0; j < ns; j++)
            if (dist_ij(h, w[i].id, out[j]) < w[i].d) {
                good = false;
                break;
            }
        if (good) out[ns++] = w[i].id;
    }
    return ns;
}

/* Links node c at level l to the best of c->rq (the search results) and
 * back. Returns the closest selected neighbour (next level's entry). */
static uint32_t connect(sm_hnsw *h, ctx *c, uint32_t node, int l, cand *tmp, uint32_t *sel)
{
    int64_t nw = c->nrq;
    memcpy(tmp, c->rq, sizeof(cand) * (size_t)nw);
    qsort(tmp, (size_t)nw, sizeof(cand), cmp_cand);
    int64_t ns = select_heuristic(h, tmp, nw, h->cfg.m, sel);
    uint32_t *Lc = links(h, node, l);
    Lc[0] = (uint32_t)ns;
    memcpy(Lc + 1, sel, sizeof(uint32_t) * (size_t)ns);
    int64_t mmax = l == 0 ? h->m0 : h->cfg.m;
    for (int64_t s = 0; s < ns; s++) {
        uint32_t nb = sel[s];
        uint32_t *L = links(h, nb, l);
        if (L[0] < (uint32_t)mmax) {
            L[++L[0]] = node;
            continue;
        }
        /* full: re-select nb's neighbours among them and the new node */
        int64_t nc = 0;
        tmp[nc].d = dist_ij(h, nb, node);
        tmp[nc++].id = node;
        for (uint32_t j = 1; j <= L[0]; j++) {
            tmp[nc].d = dist_ij(h, nb, L[j]);
            tmp[nc++].id = L[j];
        }
        qsort(tmp, (size_t)nc, sizeof(cand), cmp_cand);
        uint32_t keep[2 * 256 + 1];
        int64_t nk = select_heuristic(h, tmp, nc, mmax, keep);
        L[0] = (uint32_t)nk;
        memcpy(L + 1, keep, sizeof(uint32_t) * (size_t)nk);
    }
    return ns > 0 ? sel[0] : node;
}

static size_t round64(size_t x) { return (x + 63) / 64 * 64; }

static sm_status alloc_graph(sm_hnsw **out, const float *base, int64_t n, int64_t d, const sm_hnsw_config *cfg,
                             sm_err *err)
{
    sm_hnsw *h = calloc(1, sizeof *h);
    if (!h) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    h->n = n;
    h->d = d;
    h->cfg = *cfg;
    h->m0 = 2 * cfg->m;
    h->entry = UINT32_MAX;
    h->max_level = -1;
    pthread_mutex_init(&h->lock, NULL);
    size_t nn = (size_t)(n > 0 ? n : 1);
    h->level = calloc(nn, 1);
    h->up_off = calloc(nn, sizeof(int64_t));
    h->voff = round64(sizeof(uint32_t) * (size_t)(1 + h->m0));
    h->stride = round64(h->voff + sizeof(float) * (size_t)d);
    h->blk = aligned_alloc(64, nn * h->stride);
    if (h->blk)
        for (int64_t i = 0; i < n; i++) {
            memset(h->blk + (size_t)i * h->stride, 0, h->voff);
            memcpy(h->blk + (size_t)i * h->stride + h->voff, base + (size_t)i * (size_t)d, sizeof(float) * (size_t)d);
        }
    if (!h->level || !h->up_off || !h->blk) {
        sm_hnsw_free(h);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for an HNSW graph of %lld nodes", (long long)n);
    }
    *out = h;
    return SM_OK;
}

/* Offsets of the upper lists from the levels; allocates up. */
static sm_status place_upper(sm_hnsw *h, sm_err *err)
{
    int64_t w = 0;
    for (int64_t i = 0; i < h->n; i++) {
        h->up_off[i] = w;
        w += (int64_t)h->level[i] * (1 + h->cfg.m);
    }
    h->up_words = w;
    h->up = calloc((size_t)(w > 0 ? w : 1), sizeof(uint32_t));
    if (!h->up) return sm_fail(err, SM_ERR_NOMEM, "out of memory for HNSW upper levels");
    return SM_OK;
}

sm_status sm_hnsw_build(sm_hnsw **out, const float *base, int64_t n, int64_t d, const sm_hnsw_config *cfg,
                        sm_err *err)
{
    *out = NULL;
    if (n < 0 || n >= INT32_MAX || d < 1 || d > ((int64_t)1 << 17) || (n > 0 && !base))
        return sm_fail(err, SM_ERR_ARG, "bad HNSW build sizes: n %lld, d %lld", (long long)n, (long long)d);
    if (cfg->m < 2 || cfg->m > 256)
        return sm_fail(err, SM_ERR_ARG, "HNSW M must be in 2..256 (got %lld)", (long long)cfg->m);
    if (cfg->ef_construction < 1 || cfg->ef_construction > 100000)
        return sm_fail(err, SM_ERR_ARG, "HNSW efConstruction must be in 1..100000 (got %lld)",
                       (long long)cfg->ef_construction);
    sm_hnsw *h;
    sm_status st = alloc_graph(&h, base, n, d, cfg, err);
    if (st) return st;
    sm_rng rng;
    sm_rng_seed(&rng, cfg->seed);
    double ml = 1.0 / log((double)cfg->m);
    for (int64_t i = 0; i < n; i++) {
        double u = 1.0 - sm_rng_double(&rng);   /* (0, 1] */
        double lv = floor(-log(u) * ml);
        h->level[i] = (uint8_t)(lv > MAX_LEVEL ? MAX_LEVEL : lv);
    }
    if ((st = place_upper(h, err))) {
        sm_hnsw_free(h);
        return st;
    }
    int64_t efc = cfg->ef_construction;
    int64_t tcap = (efc > h->m0 ? efc : h->m0) + 2;
    cand *tmp = malloc(sizeof(cand) * (size_t)tcap);
    uint32_t *sel = malloc(sizeof(uint32_t) * (size_t)(h->m0 + 1));
    ctx *c = ctx_get(h);
    if (!tmp || !sel || !c) {
        free(tmp);
        free(sel);
        ctx_free(c);
        sm_hnsw_free(h);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory while building an HNSW graph");
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t node = (uint32_t)i;
        int lc = h->level[i];
        if (h->max_level < 0) {
            h->entry = node;
            h->max_level = lc;
            continue;
        }
        const float *q = base + (size_t)i * (size_t)d;
        float dep = dist_q(h, q, h->entry);
        uint32_t ep = h->entry;
        if (h->max_level > lc) ep = greedy(h, q, ep, &dep, h->max_level, lc);
        for (int l = lc < h->max_level ? lc : h->max_level; l >= 0; l--) {
            search_layer(h, c, q, ep, dep, l, efc);
            if (c->oom) {
                free(tmp);
                free(sel);
                ctx_free(c);
                sm_hnsw_free(h);
                return sm_fail(err, SM_ERR_NOMEM, "out of memory while building an HNSW graph");
            }
            ep = connect(h, c, node, l, tmp, sel);
            dep = dist_q(h, q, ep);
        }
        if (lc > h->max_level) {
            h->entry = node;
            h->max_level = lc;
        }
    }
    free(tmp);
    free(sel);
    ctx_put(h, c);
    *out = h;
    return SM_OK;
}

void sm_hnsw_free(sm_hnsw *h)
{
    if (!h) return;
    for (int i = 0; i < h->npool; i++) ctx_free(h->pool[i]);
    free(h->pool);
    pthread_mutex_destroy(&h->lock);
    free(h->level);
    free(h->up_off);
    free(h->blk);
    free(h->up);
    free(h);
}

/* ------------------------------------------------------------------ files */

#define HDR_BYTES 128
static const char MAGIC[8] = {'S', 'M', 'H', 'N', 'S', 'W', '\r', '\n'};
#define VERSION 1u

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* CRC-32 (zlib's, the PNG/gzip polynomial) over any length. */
static uint32_t crc_more(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return crc;
}

static size_t pad4(size_t n) { return (4 - n % 4) % 4; }

sm_status sm_hnsw_save(const sm_hnsw *h, const char *path, const sm_hnsw_stamp *stamp, const int64_t *ids,
                       sm_err *err)
{
    uint8_t hdr[HDR_BYTES] = {0};
    memcpy(hdr, MAGIC, 8);
    put32(hdr + 8, VERSION);
    put32(hdr + 12, HDR_BYTES);
    put64(hdr + 16, (uint64_t)h->n);
    put32(hdr + 24, (uint32_t)h->d);
    put32(hdr + 28, (uint32_t)h->cfg.m);
    put32(hdr + 32, (uint32_t)h->m0);
    put32(hdr + 36, (uint32_t)h->cfg.ef_construction);
    put64(hdr + 40, h->cfg.seed);
    put32(hdr + 48, (uint32_t)(int32_t)h->max_level);
    put32(hdr + 52, h->entry);
    put64(hdr + 56, (uint64_t)h->up_words);
    put64(hdr + 64, stamp->generation);
    memcpy(hdr + 72, stamp->uuid, 16);
    memcpy(hdr + 88, stamp->model, 32);
    put32(hdr + 124, crc_more(0, hdr, 124));

    int64_t *own = NULL;
    size_t w0 = (size_t)(1 + h->m0);
    uint32_t *l0 = malloc(sizeof(uint32_t) * w0 * (size_t)(h->n > 0 ? h->n : 1));
    if (!ids) {
        own = malloc(sizeof(int64_t) * (size_t)(h->n > 0 ? h->n : 1));
        if (own)
            for (int64_t i = 0; i < h->n; i++) own[i] = i;
        ids = own;
    }
    if (!l0 || !ids) {
        free(l0);
        free(own);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < h->n; i++) memcpy(l0 + (size_t)i * w0, links(h, (uint32_t)i, 0), sizeof(uint32_t) * w0);
    static const uint8_t zeros[4] = {0};
    size_t nid = sizeof(int64_t) * (size_t)h->n, nlev = (size_t)h->n, npad = pad4(nlev);
    size_t nl0 = sizeof(uint32_t) * (size_t)h->n * (size_t)(1 + h->m0), nup = sizeof(uint32_t) * (size_t)h->up_words;
    uint32_t crc = crc_more(0, ids, nid);
    crc = crc_more(crc, h->level, nlev);
    crc = crc_more(crc, zeros, npad);
    crc = crc_more(crc, l0, nl0);
    crc = crc_more(crc, h->up, nup);
    uint8_t tail[4];
    put32(tail, crc);
    sm_iov parts[7] = {{hdr, HDR_BYTES}, {ids, nid},  {h->level, nlev}, {zeros, npad},
                       {l0, nl0},       {h->up, nup}, {tail, 4}};
    sm_status st = sm_file_write_atomic(path, parts, 7, err);
    free(l0);
    free(own);
    return st;
}

sm_status sm_hnsw_peek(const char *path, sm_hnsw_stamp *stamp, int64_t *n, int64_t *d, sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open HNSW index '%s': %s", path, strerror(errno));
    uint8_t hdr[HDR_BYTES];
    size_t got = fread(hdr, 1, HDR_BYTES, f);
    fclose(f);
    if (got != HDR_BYTES || memcmp(hdr, MAGIC, 8) != 0)
        return sm_fail(err, SM_ERR_FORMAT, "'%s' is not an HNSW index (%s)", path, got != HDR_BYTES ? "truncated" : "bad magic");
    if (get32(hdr + 8) != VERSION)
        return sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' has version %u; this simile reads version %u", path,
                       get32(hdr + 8), VERSION);
    if (get32(hdr + 124) != crc_more(0, hdr, 124))
        return sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' has a damaged header (CRC mismatch)", path);
    if (stamp) {
        stamp->generation = get64(hdr + 64);
        memcpy(stamp->uuid, hdr + 72, 16);
        memcpy(stamp->model, hdr + 88, 32);
    }
    if (n) *n = (int64_t)get64(hdr + 16);
    if (d) *d = get32(hdr + 24);
    return SM_OK;
}

sm_status sm_hnsw_load(sm_hnsw **out, const char *path, const float *base, int64_t n, int64_t d,
                       sm_hnsw_stamp *stamp, int64_t **ids, sm_err *err)
{
    *out = NULL;
    if (ids) *ids = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open HNSW index '%s': %s", path, strerror(errno));
    uint8_t hdr[HDR_BYTES];
    sm_status st = SM_OK;
    sm_hnsw *h = NULL;
    int64_t *idv = NULL;
    uint32_t *l0 = NULL;
    long fsz = -1;
    if (fseek(f, 0, SEEK_END) == 0) fsz = ftell(f);
    rewind(f);
    if (fsz < HDR_BYTES + 4 || fread(hdr, 1, HDR_BYTES, f) != HDR_BYTES) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s' is not an HNSW index (truncated: %ld bytes)", path, fsz);
        goto done;
    }
    if (memcmp(hdr, MAGIC, 8) != 0) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s' is not an HNSW index (bad magic)", path);
        goto done;
    }
    if (get32(hdr + 8) != VERSION) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' has version %u; this simile reads version %u", path,
                     get32(hdr + 8), VERSION);
        goto done;
    }
    if (get32(hdr + 124) != crc_more(0, hdr, 124) || get32(hdr + 12) != HDR_BYTES) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' has a damaged header (CRC mismatch)", path);
        goto done;
    }
    uint64_t fn = get64(hdr + 16), fup = get64(hdr + 56);
    int64_t fd = get32(hdr + 24);
    sm_hnsw_config cfg = {.m = get32(hdr + 28), .ef_construction = get32(hdr + 36), .seed = get64(hdr + 40)};
    int32_t maxl = (int32_t)get32(hdr + 48);
    uint32_t entry = get32(hdr + 52);
    if (fn >= INT32_MAX || cfg.m < 2 || cfg.m > 256 || get32(hdr + 32) != 2 * cfg.m || fd < 1 ||
        fd > ((int64_t)1 << 17) || maxl < -1 || maxl > MAX_LEVEL || fup > ((uint64_t)1 << 40)) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' has inconsistent header fields", path);
        goto done;
    }
    if ((int64_t)fn != n || fd != d) {
        st = sm_fail(err, SM_ERR_SHAPE, "HNSW index '%s' holds %llu rows of dimension %lld; the gallery has %lld of %lld",
                     path, (unsigned long long)fn, (long long)fd, (long long)n, (long long)d);
        goto done;
    }
    size_t nid = sizeof(int64_t) * (size_t)n, nlev = (size_t)n, npad = pad4(nlev);
    size_t nl0 = sizeof(uint32_t) * (size_t)n * (size_t)(1 + 2 * cfg.m), nup = sizeof(uint32_t) * (size_t)fup;
    if ((uint64_t)fsz != HDR_BYTES + nid + nlev + npad + nl0 + nup + 4) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' is %ld bytes; its header implies %zu (truncated?)", path,
                     fsz, (size_t)(HDR_BYTES + nid + nlev + npad + nl0 + nup + 4));
        goto done;
    }
    if ((st = alloc_graph(&h, base, n, d, &cfg, err))) goto done;
    h->max_level = maxl;
    h->entry = entry;
    idv = malloc(nid > 0 ? nid : 1);
    l0 = malloc(nl0 > 0 ? nl0 : 1);
    uint8_t pad[4], tail[4];
    if (!idv || !l0) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (fread(idv, 1, nid, f) != nid || fread(h->level, 1, nlev, f) != nlev || fread(pad, 1, npad, f) != npad ||
        fread(l0, 1, nl0, f) != nl0) {
        st = sm_fail(err, SM_ERR_IO, "cannot read HNSW index '%s'", path);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (h->level[i] > MAX_LEVEL || (int32_t)h->level[i] > maxl) {
            st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s': node %lld has level %u above the top %d", path,
                         (long long)i, h->level[i], maxl);
            goto done;
        }
    if ((st = place_upper(h, err))) goto done;
    if ((uint64_t)h->up_words != fup) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s': upper levels hold %llu words, the levels need %lld", path,
                     (unsigned long long)fup, (long long)h->up_words);
        goto done;
    }
    if (fread(h->up, 1, nup, f) != nup || fread(tail, 1, 4, f) != 4) {
        st = sm_fail(err, SM_ERR_IO, "cannot read HNSW index '%s'", path);
        goto done;
    }
    uint32_t crc = crc_more(0, idv, nid);
    crc = crc_more(crc, h->level, nlev);
    crc = crc_more(crc, pad, npad);
    crc = crc_more(crc, l0, nl0);
    crc = crc_more(crc, h->up, nup);
    if (crc != get32(tail)) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' is damaged (body CRC mismatch)", path);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(links(h, (uint32_t)i, 0), l0 + (size_t)i * (size_t)(1 + h->m0), sizeof(uint32_t) * (size_t)(1 + h->m0));
    /* structure: entry point on the top level, link counts and targets in range */
    if ((n == 0) != (maxl < 0) || (n > 0 && (entry >= (uint64_t)n || h->level[entry] != maxl))) {
        st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s' has a bad entry point", path);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int l = 0; l <= h->level[i]; l++) {
            const uint32_t *L = links(h, (uint32_t)i, l);
            uint32_t cap = (uint32_t)(l == 0 ? h->m0 : cfg.m);
            bool ok = L[0] <= cap;
            for (uint32_t j = 1; ok && j <= L[0]; j++) ok = L[j] < (uint64_t)n && h->level[L[j]] >= l;
            if (!ok) {
                st = sm_fail(err, SM_ERR_FORMAT, "HNSW index '%s': node %lld has bad links on level %d", path,
                             (long long)i, l);
                goto done;
            }
        }
    if (stamp) {
        stamp->generation = get64(hdr + 64);
        memcpy(stamp->uuid, hdr + 72, 16);
        memcpy(stamp->model, hdr + 88, 32);
    }
done:
    fclose(f);
    free(l0);
    if (st) {
        sm_hnsw_free(h);
        free(idv);
        return st;
    }
    *out = h;
    if (ids) *ids = idv;
    else free(idv);
    return SM_OK;
}
