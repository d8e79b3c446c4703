/* train.h - the training loop (private; the CLI's `simile train`).
 *
 * Epochs over a dataset with a loader thread, one optimizer step per batch,
 * a progress bar (or plain lines when not on a terminal), one JSON line per
 * epoch in a log, validation (head accuracy) after each epoch, a checkpoint
 * after each epoch (atomic) that --resume continues from, and a NaN/Inf guard
 * that stops with the step named and the last good checkpoint untouched. */
#ifndef SM_TRAIN_H
#define SM_TRAIN_H
#include <stdio.h>

#include "dataset.h"
#include "simile.h"

typedef struct sm_train_config {
    int64_t epochs;           /* total epochs of the run (>= 1) */
    int64_t batch;            /* images per step (>= 2: batch norm needs two) */
    uint64_t seed;            /* shuffling, dropout; init is seeded by the caller */
    sm_optim_config optim;
    sm_sched_config sched;
    const char *out_path;     /* checkpoint written after every epoch; NULL: none */
    const char *log_path;     /* JSON lines, appended; NULL: none */
    const char *resume_path;  /* continue the run saved there (model already loaded) */
    int64_t pk_p, pk_k;       /* P x K class-balanced batches (0: plain shuffled batches) */
    bool flip;                /* augmentation: random horizontal flips */
    int64_t shift;            /* augmentation: random translation up to this many pixels */
    int progress;             /* 0 quiet, 1 bar on a terminal / plain lines otherwise */
    int64_t max_steps;        /* stop each epoch after this many steps (0: whole epoch); tests */
    FILE *out;                /* progress and summaries (stderr when NULL) */
} sm_train_config;

/* Trains m (which must have a head with train->n_classes classes) on train,
 * validating on val (may be NULL). Errors: SM_ERR_NAN naming epoch and step,
 * SM_ERR_IO for log/checkpoint writes, SM_ERR_ARG for bad settings. */
sm_status sm_train(sm_model *m, const sm_dataset *train, const sm_dataset *val,
                   const sm_train_config *cfg, sm_err *err);

/* Head accuracy of m on ds (eval mode). */
sm_status sm_eval_head_accuracy(sm_model *m, const sm_dataset *ds, double *acc, sm_err *err);

/* Embeds all images of ds into emb (n, D), L2-normalised, in batches. */
sm_status sm_embed_dataset(sm_model *m, const sm_dataset *ds, float *emb, sm_err *err);
#endif
