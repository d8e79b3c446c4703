/* simile.h - deep metric learning and similarity search in C.
 *
 * This header is the whole public API of libsimile and its manual.
 * (Overview and worked example: see the section "OVERVIEW" below.)
 */
#ifndef SIMILE_H
#define SIMILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

/* Every fallible call returns one of these; SM_OK is 0. Codes are append-only. */
typedef enum sm_status {
    SM_OK = 0,
    SM_ERR_NOMEM,       /* an allocation failed */
    SM_ERR_IO,          /* open/read/write/rename failed, or a file is truncated */
    SM_ERR_FORMAT,      /* a file is not what it claims to be */
    SM_ERR_SHAPE,       /* tensor shapes or sizes do not fit together */
    SM_ERR_ARG,         /* an argument is out of its documented range */
    SM_ERR_NAN,         /* a loss or value became NaN or infinite */
    SM_ERR_UNSUPPORTED, /* a valid request simile does not implement */
    SM_ERR_INTERNAL,    /* a bug in simile: please report it */
    SM_ERR_CONFLICT     /* the request contradicts what is stored (e.g. an image already
                           enrolled under another label); nothing was changed */
} sm_status;

/* A caller-owned error slot. Functions that take `sm_err *err` write a one-line
 * message there on failure (err may be NULL when the caller does not care). */
typedef struct sm_err {
    sm_status code;
    char msg[512];
} sm_err;

/* A static, lower-case name for a status ("bad file format"). */
const char *sm_status_str(sm_status s);


/* ---------------------------------------------------------------- threads */

/* Sets how many threads simile's kernels use (n <= 0: the OpenMP default,
 * usually the number of cores) and returns the count in effect. BLAS runs
 * single-threaded inside simile's own parallel loops, so cores are never
 * oversubscribed. Results are bit-reproducible for a given thread count. */
int sm_threads_set(int n);

/* ---------------------------------------------------------------- heads */

/* The loss head after the backbone. Values are append-only (files store names,
 * not numbers). */
typedef enum sm_head_kind {
    SM_HEAD_NONE = 0,
    SM_HEAD_SOFTMAX,   /* Linear(D, C) with bias + cross-entropy: the baseline */
    SM_HEAD_NORMFACE,  /* s * cos θ (L2-softmax / NormFace) */
    SM_HEAD_COSFACE,   /* s * (cos θ - m) on the target class; defaults s=30, m=0.35 */
    SM_HEAD_ARCFACE,   /* s * cos(θ + m) on the target class; defaults s=30, m=0.5 */
    /* Pair losses: no class weights, a loss over the pairs/triplets of a batch.
     * Distances are Euclidean between (by default L2-normalised) embeddings. */
    SM_HEAD_CONTRASTIVE,     /* siamese: mean over positive pairs of max(0, d - m_pos)^2
                                + mean over negative pairs of max(0, m_neg - d)^2;
                                defaults m_pos 0, m_neg 1 */
    SM_HEAD_TRIPLET,         /* max(0, d(a,p) - d(a,n) + m), m 0.2; reduction per miner:
                                all - mean over every valid triplet; hard - mean over anchors
                                having a positive and a negative; semihard - mean over
                                positive pairs (a,p) */
    SM_HEAD_MULTISIM,        /* multi-similarity (Wang et al. 2019) on cosine similarities,
                                with its pair mining; α 2, β 50, λ 0.5, ε 0.1; mean over anchors */
    SM_HEAD_COMBINED,        /* s * (cos(m1·θ + m2) - m3), insightface's combined margin;
                                defaults s=30, (m1, m2, m3) = (1, 0.3, 0.2). Past the point
                                θ* = (π - m2)/m1 where m1·θ + m2 reaches π, cos(m1·θ + m2)
                                would turn back up (a larger angle would be rewarded), so the
                                target logit continues as s * (cos θ - cos θ* - 1 - m3):
                                cos θ shifted to meet the curve at θ*, continuous and
                                decreasing in θ; its derivative there is that of cos θ */
    SM_HEAD_SPHEREFACE,      /* s * cos(m·θ), the real-valued SphereFace of later work
                                (normalised features); defaults s=30, m=1.35. For θ > π/m
                                the same continuation as COMBINED (m1 = m, m2 = m3 = 0):
                                s * (cos θ - cos(π/m) - 1) */
    SM_HEAD_ASOFTMAX,        /* the original SphereFace, A-Softmax: ||x||·ψ(θ) with
                                ψ(θ) = (-1)^k cos(mθ) - 2k on [kπ/m, (k+1)π/m], features not
                                normalised, blended with ||x|| cos θ by λ annealing; m = 4 */
    SM_HEAD_ADACOS,          /* AdaCos, dynamic scale (Zhang et al. 2019); no margin */
    SM_HEAD_ADACOS_FIXED,    /* AdaCos, fixed scale s = √2·ln(C-1); no margin */
    SM_HEAD_SUBCENTER,       /* sub-center ArcFace: K centres per class, cos θ = max over
                                them; defaults s=30, m=0.5, K=3 */
    SM_HEAD_L2SOFTMAX        /* L2-constrained softmax (Ranjan et al. 2017): features scaled
                                to norm α (= scale, default 16), then Linear with bias */
} sm_head_kind;

/* Triplet mining (see SM_HEAD_TRIPLET). */
typedef enum sm_miner {
    SM_MINER_ALL = 0,   /* every valid triplet */
    SM_MINER_HARD,      /* batch-hard: hardest positive and negative per anchor */
    SM_MINER_SEMIHARD   /* per positive pair, the closest negative farther than the positive */
} sm_miner;

typedef struct sm_head_config {
    sm_head_kind kind;
    float scale;        /* s, > 0 (margin heads) */
    float margin;       /* m: radians for ArcFace (0 <= m < π/2), cosine units for CosFace;
                           contrastive: the positive margin; triplet: the margin */
    bool easy_margin;   /* ArcFace only: where θ + m > π use cos θ when cos θ <= 0 instead
                           of the default fallback cos θ - m·sin m (insightface's th/mm) */
    float margin_neg;   /* contrastive: the negative margin */
    sm_miner miner;     /* triplet */
    bool raw;           /* pair losses: use embeddings as they are (default: L2-normalised) */
    float alpha, beta, base, epsilon;   /* multi-similarity: α, β, λ, mining ε */
    float m1, m2, m3;   /* combined margin */
    int64_t subcenters; /* sub-center ArcFace: K centres per class */
    float lambda_base, lambda_min, gamma, power;   /* A-Softmax: λ = max(λ_min,
                           λ_base·(1 + γ·iter)^-power), iter = training steps so far;
                           defaults 1000, 5, 0.12, 1; the margin m (integer 1..6) is `margin` */
} sm_head_config;

/* Fills cfg with the defaults of the head named `name` ("arcface", ...). */
sm_status sm_head_config_default(sm_head_config *cfg, const char *name, sm_err *err);
/* The name of a head kind ("arcface"), or NULL. */
const char *sm_head_name(sm_head_kind kind);
/* Space-separated names of all heads, for help texts. */
const char *sm_head_names(void);

/* ---------------------------------------------------------------- models */

/* A backbone (a chain of layers ending in a D-dimensional embedding) plus an
 * optional head. Parameters live in one contiguous float buffer. */
typedef struct sm_model sm_model;

/* Builds a model from a spec text (docs/model-spec.md) with a head for
 * `nclasses` classes (head may be NULL or kind SM_HEAD_NONE: backbone only).
 * Parameters are initialised as PyTorch does, from `seed`. On success *out
 * owns the model: free it with sm_model_free. Errors name the spec line. */
sm_status sm_model_new(sm_model **out, const char *spec, const sm_head_config *head,
                       int64_t nclasses, uint64_t seed, sm_err *err);
void sm_model_free(sm_model *m);   /* NULL is a no-op */

/* The spec of a built-in architecture ("mnist-net") with embedding size dim,
 * written into buf (cap bytes). Returns NULL and sets err for an unknown name. */
const char *sm_zoo_spec(const char *arch, int64_t dim, char *buf, size_t cap, sm_err *err);
/* Space-separated names of the built-in architectures. */
const char *sm_zoo_names(void);

int64_t sm_model_dim(const sm_model *m);           /* embedding size D */
int64_t sm_model_nparams(const sm_model *m);       /* trainable floats */
int64_t sm_model_classes(const sm_model *m);       /* head classes, 0 without a head */
const char *sm_model_spec(const sm_model *m);      /* the spec text, owned by m */
const sm_head_config *sm_model_head(const sm_model *m);   /* NULL without a head */
void sm_model_input_shape(const sm_model *m, int64_t *c, int64_t *h, int64_t *w);

/* Sizes the activation arena for batches of up to n (allocates once; a larger
 * n later re-plans). Training and inference calls plan themselves as needed. */
sm_status sm_model_plan(sm_model *m, int64_t n, sm_err *err);

/* One training forward + backward on x (N,C,H,W) with labels (N) in 0..C-1.
 * Leaves gradients in the model's gradient buffer (sm_model_grads); writes
 * the mean loss and the number of correct head predictions (correct may be
 * NULL). step_seed varies dropout masks between steps. Fails with SM_ERR_NAN
 * if the loss is not finite (parameters untouched). */
sm_status sm_model_train_step(sm_model *m, const float *x, const int32_t *labels, int64_t n,
                              uint64_t step_seed, double *loss, int64_t *correct, sm_err *err);

/* Inference (eval mode: BN running statistics, no dropout) on x (N,C,H,W):
 * emb (N,D) receives L2-normalised embeddings; pred (N) the head's argmax
 * class (for margin heads the nearest class centre by cosine). */
sm_status sm_model_embed(sm_model *m, const float *x, int64_t n, float *emb, sm_err *err);
sm_status sm_model_predict(sm_model *m, const float *x, int64_t n, int32_t *pred, sm_err *err);

/* The parameter and gradient buffers (sm_model_nparams floats each). */
float *sm_model_params(sm_model *m);
float *sm_model_grads(sm_model *m);

/* Named tensors (parameters and BN running statistics), PyTorch state_dict
 * names ("layers.0.weight", "head.weight"). data points into the model. */
typedef struct sm_tensor_info {
    const char *name;
    int ndim;
    int64_t shape[4];
    int64_t numel;
    float *data;
    bool trainable;
} sm_tensor_info;
int sm_model_ntensors(const sm_model *m);
sm_status sm_model_tensor(sm_model *m, int i, sm_tensor_info *info);

/* Class names (copied) and input normalisation travel with the model and its
 * checkpoints. Pixels u in 0..255 become x = (u/255 - mean)/std. */
sm_status sm_model_set_classes(sm_model *m, const char *const *names, int32_t n, sm_err *err);
const char *sm_model_class_name(const sm_model *m, int32_t i);   /* NULL if unknown */
void sm_model_set_input_norm(sm_model *m, float mean, float std);
void sm_model_input_norm(const sm_model *m, float *mean, float *std);
/* out[i] = (in[i]/255 - mean)/std for count pixels. */
void sm_images_to_float(float *out, const uint8_t *in, int64_t count, float mean, float std);

typedef struct sm_optim sm_optim;   /* see "optimizers" below */

/* Training state stored with a checkpoint so that a run can resume exactly. */
typedef struct sm_train_state {
    int64_t epoch;        /* epochs completed */
    int64_t step;         /* optimizer steps taken */
    sm_optim *optim;      /* its config and state buffers are saved/restored (may be NULL) */
    const char *config;   /* training configuration as JSON text (saved; may be NULL) */
} sm_train_state;

/* Writes the model as a safetensors checkpoint (atomically: temp file, fsync,
 * rename). Tensors use PyTorch state_dict names; __metadata__ holds the spec,
 * head, class names, input normalisation and, with ts, the training state
 * (ts may be NULL). */
sm_status sm_model_save(sm_model *m, const char *path, const sm_train_state *ts, sm_err *err);
/* Loads a checkpoint written by sm_model_save. *out is owned by the caller. */
sm_status sm_model_load(sm_model **out, const char *path, sm_err *err);
/* Reads the training state of a checkpoint into ts: epoch, step, and into
 * ts->optim (which must have the checkpoint's kind and parameter count) its
 * state buffers. ts->config is set to NULL. */
sm_status sm_model_load_train_state(const char *path, sm_train_state *ts, sm_err *err);

/* L2-normalises the rows of in (N,D) into out (may alias); zero rows stay 0. */
void sm_l2norm_rows(float *out, const float *in, int64_t n, int64_t d);

/* ---------------------------------------------------------------- optimizers */

typedef enum sm_optim_kind { SM_OPTIM_SGD = 1, SM_OPTIM_ADAMW = 2 } sm_optim_kind;

typedef struct sm_optim_config {
    sm_optim_kind kind;
    float lr;            /* base learning rate (schedules scale it) */
    float momentum;      /* SGD: 0 <= μ < 1 */
    bool nesterov;       /* SGD: Nesterov momentum (needs μ > 0) */
    float weight_decay;  /* SGD: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps;   /* AdamW */
} sm_optim_config;

/* SGD: lr 0.03, Nesterov momentum 0.9, wd 2e-3 (measured better for retrieval than the
 * common lr 0.1, momentum 0.9, wd 5e-4: docs/results.md, "Training recipe").
 * AdamW: lr 1e-3, wd 1e-2, betas 0.9/0.999, eps 1e-8. */
void sm_optim_config_default(sm_optim_config *c, sm_optim_kind kind);

/* An optimizer over n parameters; its state has the parameter buffer's layout. */
typedef struct sm_optim sm_optim;
sm_status sm_optim_new(sm_optim **out, const sm_optim_config *cfg, int64_t n, sm_err *err);
void sm_optim_free(sm_optim *o);
/* One update of p (n) from g (n) with learning rate lr (torch.optim semantics). */
void sm_optim_step(sm_optim *o, float *p, const float *g, float lr);
int64_t sm_optim_steps(const sm_optim *o);
int64_t sm_optim_size(const sm_optim *o);   /* parameters it updates */
void sm_optim_set_steps(sm_optim *o, int64_t t);
/* State buffer 0 (SGD momentum / Adam m) or 1 (Adam v; NULL for SGD), n floats. */
float *sm_optim_state(sm_optim *o, int which);
const sm_optim_config *sm_optim_config_of(const sm_optim *o);

typedef enum sm_sched_kind { SM_SCHED_CONSTANT = 0, SM_SCHED_STEP, SM_SCHED_COSINE } sm_sched_kind;

typedef struct sm_sched_config {
    sm_sched_kind kind;
    int64_t warmup;      /* steps of linear warm-up from base/warmup to base (0: none) */
    int64_t step_size;   /* STEP: multiply by gamma every step_size steps */
    float gamma;
    float min_lr;        /* COSINE: the floor reached at the last step */
} sm_sched_config;

/* The learning rate at step (0-based) of total steps. */
float sm_sched_lr(const sm_sched_config *s, float base, int64_t step, int64_t total);

#ifdef __cplusplus
}
#endif
#endif
