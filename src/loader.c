/* loader.c - double-buffered batch preparation on one worker thread.
 *
 * Protocol (all counters under mu, per epoch):
 *   filled   - batches the worker has finished (batch b lives in slot b % 2)
 *   consumed - batches handed to the caller; the caller holds batch
 *              consumed - 1, in slot (consumed - 1) % 2
 * The worker prepares batch `filled` only when filled == consumed, i.e. into
 * the slot the caller does not hold: at most one batch ahead. It fills
 * without the lock (busy = true); start_epoch waits until the worker is not
 * busy before touching the order array, so the worker never reads an order
 * that is being rewritten and never writes a slot the caller holds. */
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "status.h"

struct sm_loader {
    const sm_dataset *ds;
    int64_t batch, nbatches, img;   /* img = C*H*W */
    bool shuffle;
    uint64_t seed;
    float lut[256];                 /* u8 -> normalized float */
    int64_t pk_p, pk_k;             /* P x K class-balanced batches when pk_p > 0 */
    int64_t *cls_start, *cls_idx;   /* P x K: images of class c are cls_idx[cls_start[c]..cls_start[c+1]) */
    int64_t *cls_pos, *cls_list;    /* P x K: per-class cursor; scratch list of classes */
    bool flip;                      /* augmentation: random horizontal flips */
    int64_t shift;                  /* augmentation: random translation in [-shift, shift] px */
    uint64_t epoch_seed;
    int64_t *order;                 /* (n) dataset indices of this epoch */
    float *x[2];                    /* (batch, C, H, W) per slot */
    int32_t *y[2];                  /* (batch) per slot */
    int64_t slot_n[2];

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;         /* worker waits: work or quit */
    pthread_cond_t cv_done;         /* caller waits: batch ready or worker idle */
    int64_t filled, consumed;
    bool busy, quit;
};

/* One augmented image: output pixel (y, x) reads source (y + dy, x' + dx)
 * with x' = W-1-x when flipped; pixels from outside the image are 0 (black).
 * The draw is a pure function of (seed, epoch, position in the epoch). */
static void augment(const sm_loader *ld, float *dst, const uint8_t *src, uint64_t h)
{
    const int64_t C = ld->ds->c, H = ld->ds->h, W = ld->ds->w, T = ld->shift;
    const bool flip = ld->flip && (h & 1);
    const int64_t dx = T ? (int64_t)((h >> 8) % (uint64_t)(2 * T + 1)) - T : 0;
    const int64_t dy = T ? (int64_t)((h >> 24) % (uint64_t)(2 * T + 1)) - T : 0;
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++) {
            const int64_t sy = y + dy;
            float *row = dst + (c * H + y) * W;
            for (int64_t xo = 0; xo < W; xo++) {
                const int64_t sx = (flip ? W - 1 - xo : xo) + dx;
                row[xo] = sy >= 0 && sy < H && sx >= 0 && sx < W ? ld->lut[src[(c * H + sy) * W + sx]]
                                                                  : ld->lut[0];
            }
        }
}

static void fill(sm_loader *ld, int64_t b)
{
    const sm_dataset *ds = ld->ds;
    int s = (int)(b & 1);
    int64_t first = b * ld->batch;
    int64_t n = ds->n - first < ld->batch ? ds->n - first : ld->batch;
    float *x = ld->x[s];
    for (int64_t i = 0; i < n; i++) {
        int64_t k = ld->order[first + i];
        const uint8_t *src = ds->images + (size_t)k * (size_t)ld->img;
        float *dst = x + (size_t)i * (size_t)ld->img;
        if (ld->flip || ld->shift)
            augment(ld, dst, src, sm_hash64(ld->epoch_seed, (uint64_t)(first + i)));
        else
            for (int64_t j = 0; j < ld->img; j++) dst[j] = ld->lut[src[j]];
        ld->y[s][i] = ds->labels[k];
    }
    ld->slot_n[s] = n;
}

static void *worker(void *arg)
{
    sm_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->quit && !(ld->filled == ld->consumed && ld->filled < ld->nbatches))
            pthread_cond_wait(&ld->cv_work, &ld->mu);
        if (ld->quit) break;
        int64_t b = ld->filled;
        ld->busy = true;
        pthread_mutex_unlock(&ld->mu);
        fill(ld, b);
        pthread_mutex_lock(&ld->mu);
        ld->busy = false;
        ld->filled = b + 1;
        pthread_cond_broadcast(&ld->cv_done);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Caller side, mu held, worker not busy. */
/* P x K order for one epoch: each batch takes P distinct classes drawn
 * uniformly, and K images from each. Every class's images are consumed in a
 * shuffled order and reshuffled when used up, so all images are seen; K images
 * of one class in a batch are distinct when the class has at least K. */
static void set_epoch_pk(sm_loader *ld, int64_t epoch)
{
    const int64_t C = ld->ds->n_classes, P = ld->pk_p, K = ld->pk_k;
    sm_rng r;
    sm_rng_seed(&r, sm_hash64(ld->seed, (uint64_t)epoch));
    int64_t nc = 0;
    for (int64_t c = 0; c < C; c++) {
        int64_t a = ld->cls_start[c], cnt = ld->cls_start[c + 1] - a;
        if (cnt == 0) continue;
        sm_rng_shuffle(&r, ld->cls_idx + a, cnt);
        ld->cls_pos[c] = 0;
        ld->cls_list[nc++] = c;
    }
    int64_t o = 0;
    for (int64_t b = 0; b < ld->nbatches; b++) {
        for (int64_t j = 0; j < P; j++) {   /* partial Fisher-Yates: P distinct classes */
            int64_t t = j + (int64_t)sm_rng_below(&r, (uint64_t)(nc - j));
            int64_t tmp = ld->cls_list[j]; ld->cls_list[j] = ld->cls_list[t]; ld->cls_list[t] = tmp;
        }
        for (int64_t j = 0; j < P; j++) {
            int64_t c = ld->cls_list[j], a = ld->cls_start[c], cnt = ld->cls_start[c + 1] - a;
            for (int64_t q = 0; q < K; q++) {
                if (ld->cls_pos[c] == cnt) {
                    sm_rng_shuffle(&r, ld->cls_idx + a, cnt);
                    ld->cls_pos[c] = 0;
                }
                ld->order[o++] = ld->cls_idx[a + ld->cls_pos[c]++];
            }
        }
    }
}

static void set_epoch(sm_loader *ld, int64_t epoch)
{
    int64_t n = ld->ds->n;
    ld->epoch_seed = sm_hash64(ld->seed ^ 0xa5a5a5a5a5a5a5a5ull, (uint64_t)epoch);
    if (ld->pk_p > 0) {
        set_epoch_pk(ld, epoch);
        ld->filled = ld->consumed = 0;
        return;
    }
    for (int64_t i = 0; i < n; i++) ld->order[i] = i;
    if (ld->shuffle) {
        sm_rng r;
        sm_rng_seed(&r, sm_hash64(ld->seed, (uint64_t)epoch));
        sm_rng_shuffle(&r, ld->order, n);
    }
    ld->filled = ld->consumed = 0;
}

void sm_loader_free(sm_loader *ld)
{
    if (!ld) return;
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->mu);
        ld->quit = true;
        pthread_cond_broadcast(&ld->cv_work);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
        pthread_cond_destroy(&ld->cv_work);
        pthread_cond_destroy(&ld->cv_done);
        pthread_mutex_destroy(&ld->mu);
    }
    for (int s = 0; s < 2; s++) { free(ld->x[s]); free(ld->y[s]); }
    free(ld->order);
    free(ld->cls_start);
    free(ld->cls_idx);
    free(ld->cls_pos);
    free(ld->cls_list);
    free(ld);
}

sm_status sm_loader_new(sm_loader **out, const sm_dataset *ds, int64_t batch, bool shuffle, bool drop_last,
                        uint64_t seed, float mean, float std, sm_err *err)
{
    if (out) *out = NULL;
    if (!out || !ds) return sm_fail(err, SM_ERR_ARG, "sm_loader_new: NULL output or dataset");
    if (ds->n < 1 || !ds->images || !ds->labels)
        return sm_fail(err, SM_ERR_ARG, "cannot batch an empty dataset");
    if (ds->c < 1 || ds->h < 1 || ds->w < 1)
        return sm_fail(err, SM_ERR_ARG, "dataset has image shape (%lld, %lld, %lld); every dimension must be >= 1",
                       (long long)ds->c, (long long)ds->h, (long long)ds->w);
    if (batch < 1) return sm_fail(err, SM_ERR_ARG, "batch size %lld; it must be >= 1", (long long)batch);
    if (!isfinite(mean) || !isfinite(std) || !(std > 0))
        return sm_fail(err, SM_ERR_ARG, "normalization mean %g, std %g; std must be > 0 and both finite", (double)mean, (double)std);
    if (drop_last && ds->n < batch)
        return sm_fail(err, SM_ERR_ARG, "the dataset has %lld images, fewer than one batch of %lld with drop_last; lower the batch size",
                       (long long)ds->n, (long long)batch);
    if (batch > ds->n) batch = ds->n;   /* no buffer larger than the data */

    sm_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a loader");
    ld->ds = ds;
    ld->batch = batch;
    ld->nbatches = drop_last ? ds->n / batch : (ds->n + batch - 1) / batch;
    ld->img = ds->c * ds->h * ds->w;
    ld->shuffle = shuffle;
    ld->seed = seed;
    for (int u = 0; u < 256; u++) ld->lut[u] = (float)(((double)u / 255.0 - (double)mean) / (double)std);
    ld->order = malloc((size_t)ds->n * sizeof *ld->order);
    for (int s = 0; s < 2; s++) {
        ld->x[s] = malloc((size_t)batch * (size_t)ld->img * sizeof(float));
        ld->y[s] = malloc((size_t)batch * sizeof(int32_t));
    }
    if (!ld->order || !ld->x[0] || !ld->x[1] || !ld->y[0] || !ld->y[1]) {
        sm_loader_free(ld);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for loader buffers (2 x %lld images)", (long long)batch);
    }
    set_epoch(ld, 0);
    if (pthread_mutex_init(&ld->mu, NULL)) { sm_loader_free(ld); return sm_fail(err, SM_ERR_NOMEM, "cannot create the loader's mutex"); }
    if (pthread_cond_init(&ld->cv_work, NULL)) {
        pthread_mutex_destroy(&ld->mu); sm_loader_free(ld);
        return sm_fail(err, SM_ERR_NOMEM, "cannot create the loader's condition variable");
    }
    if (pthread_cond_init(&ld->cv_done, NULL)) {
        pthread_cond_destroy(&ld->cv_work); pthread_mutex_destroy(&ld->mu); sm_loader_free(ld);
        return sm_fail(err, SM_ERR_NOMEM, "cannot create the loader's condition variable");
    }
    int rc = pthread_create(&ld->thread, NULL, worker, ld);
    if (rc) {
        pthread_cond_destroy(&ld->cv_done); pthread_cond_destroy(&ld->cv_work); pthread_mutex_destroy(&ld->mu);
        sm_loader_free(ld);
        return sm_fail(err, SM_ERR_NOMEM, "cannot start the loader thread: %s", strerror(rc));
    }
    ld->thread_started = true;
    *out = ld;
    return SM_OK;
}

sm_status sm_loader_set_pk(sm_loader *ld, int64_t p, int64_t k, sm_err *err)
{
    const sm_dataset *ds = ld->ds;
    const int64_t C = ds->n_classes;
    if (p < 2 || k < 2)
        return sm_fail(err, SM_ERR_ARG, "P x K sampling needs P >= 2 classes and K >= 2 images (got %lld x %lld)",
                       (long long)p, (long long)k);
    if (p * k > ld->batch)
        return sm_fail(err, SM_ERR_ARG, "P x K = %lld is larger than the batch of %lld", (long long)(p * k),
                       (long long)ld->batch);
    int64_t *start = calloc((size_t)C + 1, sizeof *start), *idx = malloc(sizeof *idx * (size_t)ds->n);
    int64_t *pos = calloc((size_t)C + 1, sizeof *pos), *list = calloc((size_t)C + 1, sizeof *list);
    if (!start || !idx || !pos || !list) {
        free(start); free(idx); free(pos); free(list);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for P x K sampling");
    }
    for (int64_t i = 0; i < ds->n; i++) start[ds->labels[i] + 1]++;
    int64_t present = 0;
    for (int64_t c = 0; c < C; c++) present += start[c + 1] > 0;
    for (int64_t c = 0; c < C; c++) start[c + 1] += start[c];
    for (int64_t i = 0; i < ds->n; i++) idx[start[ds->labels[i]] + pos[ds->labels[i]]++] = i;
    if (present < p) {
        free(start); free(idx); free(pos); free(list);
        return sm_fail(err, SM_ERR_ARG, "P x K sampling wants %lld classes per batch but the data has %lld",
                       (long long)p, (long long)present);
    }
    pthread_mutex_lock(&ld->mu);
    while (ld->busy) pthread_cond_wait(&ld->cv_done, &ld->mu);
    free(ld->cls_start); free(ld->cls_idx); free(ld->cls_pos); free(ld->cls_list);
    ld->cls_start = start;
    ld->cls_idx = idx;
    ld->cls_pos = pos;
    ld->cls_list = list;
    ld->pk_p = p;
    ld->pk_k = k;
    ld->batch = p * k;
    ld->nbatches = ds->n / (p * k) > 0 ? ds->n / (p * k) : 1;
    if (ld->nbatches * p * k > ds->n) ld->nbatches = 0;   /* order has room for n indices */
    set_epoch(ld, 0);
    pthread_mutex_unlock(&ld->mu);
    return ld->nbatches ? SM_OK : sm_fail(err, SM_ERR_ARG, "the data has fewer images than one P x K batch");
}

void sm_loader_set_augment(sm_loader *ld, bool flip, int64_t shift)
{
    pthread_mutex_lock(&ld->mu);
    while (ld->busy) pthread_cond_wait(&ld->cv_done, &ld->mu);
    ld->flip = flip;
    ld->shift = shift > 0 ? shift : 0;
    pthread_mutex_unlock(&ld->mu);
}

void sm_loader_start_epoch(sm_loader *ld, int64_t epoch)
{
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    while (ld->busy) pthread_cond_wait(&ld->cv_done, &ld->mu);
    set_epoch(ld, epoch < 0 ? 0 : epoch);
    pthread_cond_signal(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
}

bool sm_loader_next(sm_loader *ld, const float **x, const int32_t **y, int64_t *n)
{
    if (!ld) return false;
    pthread_mutex_lock(&ld->mu);
    if (ld->consumed >= ld->nbatches) {
        pthread_mutex_unlock(&ld->mu);
        return false;
    }
    while (ld->filled <= ld->consumed) pthread_cond_wait(&ld->cv_done, &ld->mu);
    int s = (int)(ld->consumed & 1);
    ld->consumed++;
    pthread_cond_signal(&ld->cv_work);
    if (x) *x = ld->x[s];
    if (y) *y = ld->y[s];
    if (n) *n = ld->slot_n[s];
    pthread_mutex_unlock(&ld->mu);
    return true;
}

int64_t sm_loader_batches(const sm_loader *ld)
{
    return ld ? ld->nbatches : 0;
}

int64_t sm_loader_order(const sm_loader *ld, int64_t i)
{
    if (!ld || i < 0 || i >= ld->ds->n) return -1;
    return ld->order[i];
}
