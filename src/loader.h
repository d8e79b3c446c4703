/* loader.h - float batches from a dataset, prepared by a background thread
 * (private).
 *
 * Each epoch visits every image once, in an order that is a pure function of
 * (seed, epoch) when shuffling (so a resumed run sees the same batches) and
 * in dataset order otherwise (evaluation). A batch is B images converted
 * from u8 to float, x = (u/255 - mean) / std, laid out (n, C, H, W) - for
 * single-channel images that is the same memory as (1, n, H, W) - with their
 * int32 labels. One worker thread fills batch i+1 while the caller trains on
 * batch i (two buffers); the caller never sees a half-written batch.
 *
 * Not thread-safe: one thread drives a loader (new, start_epoch, next,
 * free). No augmentation here (augment.c's job). */
#ifndef SM_LOADER_H
#define SM_LOADER_H
#include <stdbool.h>
#include <stdint.h>

#include "simile.h"

typedef struct sm_loader sm_loader;

/* Creates a loader over ds (borrowed: it must outlive the loader and not
 * change) with batches of `batch` images, starts its worker thread and
 * prepares epoch 0 (so new + a loop over sm_loader_next is a full pass).
 * drop_last drops the last incomplete batch (training); without it the last
 * batch holds the remaining n % batch images. The shuffle of epoch e is
 * seeded by hash(seed, e); seed is ignored when shuffle is false.
 * On success *out is owned by the caller (sm_loader_free); on failure *out
 * is NULL.
 * Errors: SM_ERR_ARG (NULL ds/out, empty dataset, batch < 1, std not > 0 or
 * mean/std not finite, drop_last with fewer images than one batch),
 * SM_ERR_NOMEM (buffers, or the thread could not be started). */
sm_status sm_loader_new(sm_loader **out, const sm_dataset *ds, int64_t batch, bool shuffle, bool drop_last,
                        uint64_t seed, float mean, float std, sm_err *err);

/* Switches to P x K class-balanced batches (for pair and triplet losses, which
 * need positives in every batch): each batch holds P distinct classes drawn
 * uniformly and K images of each; an epoch has n / (P*K) batches. P*K must not
 * exceed the batch given to sm_loader_new; the batch becomes P*K. Takes effect
 * for the current epoch (restarted) and every later one.
 * Errors: SM_ERR_ARG (P or K < 2, too few classes or images), SM_ERR_NOMEM. */
sm_status sm_loader_set_pk(sm_loader *ld, int64_t p, int64_t k, sm_err *err);

/* Training augmentation from the next sm_loader_start_epoch on: a random
 * horizontal flip (half the images) and a random translation of up to `shift`
 * pixels in each direction (uncovered pixels are black, 0). The draw for the
 * image at position i of epoch e is a pure function of (seed, e, i), so
 * resumed runs see the same images. flip false and shift 0 turn it off. */
void sm_loader_set_augment(sm_loader *ld, bool flip, int64_t shift);

/* Restarts iteration at the beginning of epoch `epoch` (>= 0), with that
 * epoch's order. May be called at any point, mid-epoch included; it waits
 * for a batch being prepared to finish. Buffers returned before become
 * invalid. */
void sm_loader_start_epoch(sm_loader *ld, int64_t epoch);

/* Hands out the next batch of the epoch: *x is (n, C, H, W) floats, *y is
 * (n) labels, *n the batch size (batch, or less for a last partial batch).
 * The buffers belong to the loader and stay valid until the next call to
 * sm_loader_next, sm_loader_start_epoch or sm_loader_free. Returns false,
 * leaving the outputs untouched, at the end of the epoch (and on every call
 * after it until sm_loader_start_epoch). Blocks while the batch is still
 * being prepared. */
bool sm_loader_next(sm_loader *ld, const float **x, const int32_t **y, int64_t *n);

/* Batches per epoch: n / batch with drop_last, ceil(n / batch) without. */
int64_t sm_loader_batches(const sm_loader *ld);

/* The dataset index of the image at position i of the current epoch's
 * order, 0 <= i < n (for tests and for logging which image a batch held);
 * -1 when i is out of range. */
int64_t sm_loader_order(const sm_loader *ld, int64_t i);

/* Stops and joins the worker thread, releases everything. NULL is a no-op. */
void sm_loader_free(sm_loader *ld);

#endif
