/* simile.h - deep metric learning and similarity search in C.
 *
 * This header is the whole public API of libsimile and its manual: link
 * build/libsimile.a and the libraries of the Makefile's LDLIBS; nothing under
 * src/ is needed. The sections below, in order: status, threads, heads,
 * models, optimizers, data sets, image folders, images, training,
 * evaluation, gallery, service.
 *
 * OVERVIEW
 *
 * A model is a CNN backbone (a text spec, or sm_zoo_spec's built-in
 * "mnist-net") followed by a head: a margin head (ArcFace, CosFace, ...), a
 * softmax, or a pair loss. Training makes images of one class land close
 * together on the unit sphere; afterwards only the backbone matters: it
 * embeds an image as a unit vector, and two images are alike when the dot
 * product (cosine) of their embeddings is high. A new item is enrolled by
 * storing the embedding of one image of it in a gallery; a query image is
 * recognised as the label of its most similar item, or as unknown when even
 * that similarity is not above a calibrated threshold.
 *
 *   train      sm_dataset_open (IDX files, Fashion-MNIST) or sm_folder_open
 *              (a folder per class), sm_model_new, sm_train; or a loop of
 *              your own around sm_model_train_step and sm_optim_step
 *   keep       sm_model_save / sm_model_load (safetensors)
 *   embed      sm_image_read or sm_image_decode (PNG, JPEG),
 *              sm_image_to_model_input, sm_model_embed
 *   recognise  sm_gallery_open, sm_gallery_enroll, sm_gallery_search, and a
 *              threshold for "unknown" (sm_gallery_set_threshold)
 *   measure    sm_eval_retrieval (precision@1, MAP@R, ...), sm_eval_roc
 *   serve      sm_serve_start: the HTTP API and web page over a model and a
 *              gallery, in background threads of the calling program
 *
 * Conventions. Every call that can fail returns an sm_status (SM_OK is 0) and
 * writes one line into a caller-owned sm_err; nothing in the library exits,
 * aborts or prints on bad input; files are written atomically (a failed call
 * leaves them as they were). A full disk is an SM_ERR_IO like any other; so is
 * a write past the process's file-size limit (ulimit -f), provided the program
 * ignores SIGXFSZ (signal(SIGXFSZ, SIG_IGN), as the simile command does):
 * the library leaves signal dispositions to the program.
 * Objects returned through `**out` belong to the caller and have one free or
 * close function each; NULL is a no-op for all of them. Shapes are (N, ...)
 * row-major float32 unless said; embeddings are L2-normalised.
 *
 * Worked example (examples/recognise.c, built by make with -Iinclude only,
 * run by make test): enroll an item from one image, then recognise a query
 * (die: the caller's error handler).
 *
 *     sm_err err = {0};
 *     sm_model *m = NULL;
 *     if (sm_model_load(&m, "model.safetensors", &err)) die(err.msg);
 *     int64_t c, h, w;
 *     sm_model_input_shape(m, &c, &h, &w);
 *     float *x = malloc(c * h * w * sizeof *x), *e = malloc(sm_model_dim(m) * sizeof *e);
 *     sm_image img = {0};
 *     if (sm_image_read("cola.jpg", &img, &err) || sm_image_to_model_input(m, &img, x, &err) ||
 *         sm_model_embed(m, x, 1, e, &err)) die(err.msg);
 *
 *     sm_gallery_model gm = {.dim = sm_model_dim(m), .name = "model.safetensors"};
 *     sm_model_identity(m, gm.id);                  // a gallery belongs to one model
 *     sm_gallery_options go = {.create = true};
 *     sm_gallery *g = NULL;
 *     if (sm_gallery_open(&g, "shelf.db", &gm, &go, &err)) die(err.msg);
 *     sm_gallery_item it = {.label = "cola", .embedding = e};
 *     if (sm_gallery_enroll(g, &it, 1, NULL, NULL, &err)) die(err.msg);
 *
 *     // later: e = the embedding of a query image, as above
 *     int64_t ids[3];
 *     float sims[3];
 *     if (sm_gallery_search(g, e, 1, sm_model_dim(m), 3, NULL, ids, sims, &err)) die(err.msg);
 *     // ids[0]: the best item (sm_gallery_get gives its label), sims[0] its cosine
 *     sm_gallery_close(g);
 *     sm_image_free(&img);
 *     sm_model_free(m);
 */
#ifndef SIMILE_H
#define SIMILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* A built-in architecture with options (sm_zoo_spec is this with dim set and
 * the rest 0). The zoo's ResNets (resnet18, resnet34, resnet50) and
 * MobileNetV2 (mobilenet-v2) are torchvision 0.14's, node for node: their
 * tensors carry torchvision's state_dict names ("layer1.0.conv1.weight",
 * "features.1.conv.0.0.weight", "bn1.running_var"). With dim > 0 the
 * classifier (fc / classifier) is replaced by the embedding
 * "embedding.0" (Linear -> dim) and "embedding.1" (BatchNorm1d(dim)); with
 * dim == 0 torchvision's classifier is kept, with `classes` outputs. */
typedef struct sm_zoo_config {
    int64_t dim;        /* embedding size; 0: torchvision's classifier instead */
    int64_t classes;    /* classifier outputs when dim == 0 (0: 1000, as torchvision) */
    int64_t channels;   /* input channels (0: 3; mnist-net 1) */
    int64_t height, width;   /* input size (0: 224; mnist-net 28); ResNets and
                              * MobileNetV2 take any size >= 32 */
} sm_zoo_config;
/* The spec text of a built-in architecture, malloc'd (free it), or NULL with
 * err set (unknown name, sizes out of range). */
char *sm_zoo_build(const char *arch, const sm_zoo_config *cfg, sm_err *err);

int64_t sm_model_dim(const sm_model *m);           /* embedding size D */
int64_t sm_model_nparams(const sm_model *m);       /* trainable floats */
int64_t sm_model_classes(const sm_model *m);       /* head classes, 0 without a head */
const char *sm_model_spec(const sm_model *m);      /* the spec text, owned by m */
const sm_head_config *sm_model_head(const sm_model *m);   /* NULL without a head */
void sm_model_input_shape(const sm_model *m, int64_t *c, int64_t *h, int64_t *w);

/* Sizes the training arena (every layer's activation and the gradient
 * buffers) for batches of up to n; allocates once, a larger n re-plans.
 * sm_model_plan_inference sizes the much smaller inference arena instead (two
 * activation buffers that the layers use in turn), for a model that only
 * embeds; it does nothing when the model has a training arena, which
 * inference then uses at its size. Both are optional: training and inference
 * calls plan themselves (inference in chunks of up to 256), and a training
 * step replaces an inference arena. Planning up front moves the allocation,
 * and an out-of-memory error, out of the first call. */
sm_status sm_model_plan(sm_model *m, int64_t n, sm_err *err);
sm_status sm_model_plan_inference(sm_model *m, int64_t n, sm_err *err);

/* One training forward + backward on x (N,C,H,W) with labels (N) in 0..C-1.
 * Leaves gradients in the model's gradient buffer (sm_model_grads); writes
 * the mean loss and the number of correct head predictions (correct may be
 * NULL). step_seed varies dropout masks between steps. Fails with SM_ERR_NAN
 * if the loss is not finite (parameters untouched). */
sm_status sm_model_train_step(sm_model *m, const float *x, const int32_t *labels, int64_t n,
                              uint64_t step_seed, double *loss, int64_t *correct, sm_err *err);

/* The network's raw output for x (N,C,H,W), before any normalisation and
 * without the head, in the model's current mode (sm_model_set_training):
 * *out (N,D) points into the model's arena and stays valid until the next
 * call that runs the model. A training-mode run (which plans a training
 * arena for n) may be followed by one sm_model_backward. */
sm_status sm_model_run(sm_model *m, const float *x, int64_t n, const float **out, sm_err *err);
/* Training mode (batch statistics in batch norms, dropout) or eval mode
 * (the default) for sm_model_run; sm_model_train_step is always training,
 * sm_model_embed / sm_model_predict always eval. */
void sm_model_set_training(sm_model *m, bool training);
/* Back-propagates dout (N,D), dL/d(output) of the last training-mode
 * sm_model_run, into the gradient buffer (sm_model_grads), which it zeroes
 * first. Each training run serves one backward; SM_ERR_ARG otherwise. x of
 * that run must still hold its batch (for 1-channel inputs it is read
 * again). */
sm_status sm_model_backward(sm_model *m, const float *dout, sm_err *err);

/* Inference (eval mode: BN running statistics, no dropout) on x (N,C,H,W):
 * emb (N,D) receives L2-normalised embeddings; pred (N) the head's argmax
 * class (for margin heads the nearest class centre by cosine). A conv
 * followed by a batch norm (and a ReLU) runs as one pass with the batch norm
 * folded into the conv's output; the fold is taken from the parameters and
 * running statistics at each call, so changes made through sm_model_params
 * or sm_model_tensor apply at once. */
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

/* ---------------------------------------------------------------- data sets */

/* Labelled image sets in memory.
 *
 * An sm_dataset is N single- or multi-channel u8 images (N, C, H, W) with an
 * int32 label each, the class count and a name per class. It is what the
 * training loop batches. Sources today: the IDX quartet of MNIST and
 * Fashion-MNIST, by name or from a directory.
 *
 * Names ("specs"):
 *   fashion-mnist  $SIMILE_DATA_ROOT/fashion-mnist, default root
 *                  /usr/share/datasets (Debian package dataset-fashion-mnist)
 *   mnist          $SIMILE_DATA_ROOT/mnist (no Debian package ships it)
 *   DIR            any directory holding train-images-idx3-ubyte,
 *                  train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
 *                  t10k-labels-idx1-ubyte, each gzipped (.gz) or not (the
 *                  dotted spelling train-images.idx3-ubyte is accepted too).
 * SIMILE_DATA_ROOT exists for tests and unusual installs; it is read at each
 * open. */

typedef enum sm_split {
    SM_SPLIT_NONE = -1, /* "no split given" in sm_dataset_parse_spec */
    SM_SPLIT_TRAIN = 0,
    SM_SPLIT_TEST = 1
} sm_split;

/* Default data root of named datasets, overridden by $SIMILE_DATA_ROOT. */
#define SM_DATASET_ROOT "/usr/share/datasets"

/* Fashion-MNIST training-set pixel statistics on x/255 (the usual values,
 * e.g. torchvision's examples): the input normalisation `simile train` gives
 * a model trained on it (sm_model_set_input_norm). */
#define SM_FASHION_MNIST_MEAN 0.2860f
#define SM_FASHION_MNIST_STD 0.3530f

typedef struct sm_dataset {
    int64_t n, c, h, w;   /* n images of c channels, h rows, w columns */
    uint8_t *images;      /* (n, c, h, w), row-major, owned */
    int32_t *labels;      /* (n), each in [0, n_classes), owned */
    int32_t n_classes;    /* >= 1 */
    char **class_names;   /* n_classes NUL-terminated strings, owned */
} sm_dataset;

/* Loads a dataset by spec (see the file comment) into *train and/or *test
 * (either may be NULL, not both). Images become (N, 1, 28, 28) for the
 * MNIST family. The class count is max label + 1 over the splits loaded
 * (10 for both named sets; their labels are checked to be < 10); class names
 * are Fashion-MNIST's ("T-shirt/top", ..., "Ankle boot") for fashion-mnist
 * and for a directory whose name contains "fashion" with 10 classes, else
 * the decimal class numbers ("0".."9" for MNIST).
 * On success the caller owns both outputs (sm_dataset_free each); on failure
 * both are zeroed and nothing is allocated.
 * Errors: SM_ERR_IO (dataset or file not found, with the apt-get line for
 * fashion-mnist; read errors; truncation), SM_ERR_FORMAT (a bad IDX file,
 * image and label counts that differ, labels out of range, image sizes that
 * differ between train and test), SM_ERR_ARG (NULL spec, both outputs NULL),
 * SM_ERR_NOMEM. */
sm_status sm_dataset_open(const char *spec, sm_dataset *train, sm_dataset *test, sm_err *err);

/* Splits "NAME:train" / "NAME:test" (as in `--data fashion-mnist:test`) into
 * name (copied into the caller's buffer of name_cap bytes, NUL-terminated)
 * and *split. The split is taken after the last ':'; without a ":train" or
 * ":test" suffix the whole argument is the name and *split = default_split,
 * which must not be SM_SPLIT_NONE when the caller requires a split (that
 * case is SM_ERR_ARG with a message showing the expected form).
 * Errors: SM_ERR_ARG (NULL or empty argument or name, unknown split word
 * after the last ':' such as "x:val", name longer than name_cap - 1). */
sm_status sm_dataset_parse_spec(const char *arg, char *name, size_t name_cap, sm_split *split,
                                sm_split default_split, sm_err *err);

/* Loads one split named "NAME:split" (default_split as for parse_spec) into
 * *out. Ownership and errors as sm_dataset_open plus sm_dataset_parse_spec. */
sm_status sm_dataset_open_split(const char *arg, sm_split default_split, sm_dataset *out, sm_err *err);

/* Makes *out hold the images of src whose label is one of classes[0..k)
 * (distinct values in [0, src->n_classes)), in src's order. With relabel,
 * the label of class classes[j] becomes j, out->n_classes = k and the names
 * follow the list; without it labels, class count and names are src's.
 * Used for open-set runs: train on classes 0-5, evaluate on 6-9.
 * *out is a deep copy owned by the caller (sm_dataset_free); src is not
 * changed. On failure *out is zeroed.
 * Errors: SM_ERR_ARG (k < 1, a class out of range or listed twice, no image
 * in the listed classes), SM_ERR_NOMEM. */
sm_status sm_dataset_subset(const sm_dataset *src, const int32_t *classes, int64_t k, bool relabel,
                            sm_dataset *out, sm_err *err);

/* Parses a class list such as "0-5", "6,7,8,9" or "0-2,7" into
 * classes[0..*k) (at most cap values, in the order written, each in
 * [0, 65535]). Errors: SM_ERR_ARG (syntax, a range written backwards, more
 * than cap values). Duplicates are left for sm_dataset_subset to refuse. */
sm_status sm_dataset_parse_classes(const char *s, int32_t *classes, int64_t cap, int64_t *k, sm_err *err);

/* Releases everything *d owns and zeroes it; NULL or a zeroed dataset is a
 * no-op. */
void sm_dataset_free(sm_dataset *d);
/* Converts every image of ds in place to c channels (1 or 3) and h x w
 * pixels, as a folder dataset or sm_image_to_model_input would (gray
 * replicated to RGB, RGB to luma; area when shrinking, bilinear when
 * enlarging): Fashion-MNIST's 1x28x28 for a 32-px ResNet, say. Sizes equal
 * to the data's keep it as it is. On failure ds is unchanged.
 * Errors: SM_ERR_ARG (sizes out of range: 1..4096 per side, c not 1 or 3),
 * SM_ERR_NOMEM. */
sm_status sm_dataset_fit(sm_dataset *ds, int64_t c, int64_t h, int64_t w, sm_err *err);

/* ---------------------------------------------------------------- image folders */

/* Datasets of real image files: a folder per class or a CSV manifest.
 *
 * Layouts (PNG and JPEG files, decoded as in "images" below):
 *
 *   ROOT/<class>/<image>.png|.jpg|.jpeg      a folder per class
 *   ROOT/train/<class>/...  ROOT/test/<class>/...   the same, split in two
 *   FILE.csv                                 a manifest of `path,label` lines
 *
 * Folder per class. The class folders are the subdirectories of ROOT (of
 * ROOT/train and ROOT/test for a split tree) that hold at least one image;
 * names starting with '.' are skipped, as are files of other extensions
 * (case does not matter: .PNG, .JPG, .Jpeg) and anything deeper than one
 * level. Images are taken in byte order of their file names within a class,
 * classes in label order. A tree is split when ROOT/train or ROOT/test is a
 * directory; then both splits share one class list (the union of their
 * class folders), so a label means the same class in both.
 *
 * Label order. Class names are sorted, numerically when every name is a
 * decimal number ("2" before "10"), else by bytes (strcmp), and label i is
 * the i-th name. An optional ROOT/classes.txt (else ROOT/train/classes.txt,
 * else ROOT/test/classes.txt) fixes the order instead: one class per line,
 * `folder` or `folder<TAB>name`, label i on line i+1, the name (default the
 * folder) kept as the class name. Then every listed class exists even
 * without images in a split, and a class folder with images that the file
 * does not list is an error. `simile export-images` writes this file, so an
 * exported IDX set keeps its labels and names ("T-shirt/top" in the folder
 * "T-shirt_top").
 *
 * CSV manifest. One image per line, `path,label`: the label is the text
 * after the last comma (so paths may hold commas), both fields trimmed of
 * spaces and of one pair of surrounding double quotes. A first line that
 * reads `path,label` is a header and skipped; so are blank lines and lines
 * starting with '#'. A relative path is relative to the CSV file's
 * directory. Labels are names, ordered as folder names are (sorted, numeric
 * when all are numbers). Errors name the file and line.
 *
 * Size. Every image is converted (see "images": BT.601 gray, alpha composited
 * over black) and resized (area when shrinking, bilinear when enlarging,
 * aspect ratio not kept) to one (C, H, W): the target given, else that of
 * the reference image - the first image of the (train) tree or of the
 * manifest - with C = 1 for a gray (or gray + alpha) reference and 3
 * otherwise. Images are decoded in parallel (OpenMP); the result does not
 * depend on the thread count.
 *
 * Splits. sm_folder_open gives a split tree's train and test. A plain tree
 * or a manifest is one set of images: asked for both splits, both get the
 * same images (validation then measures fit, not generalisation; make
 * train/ and test/ folders for a held-out split). */

/* The name of the optional class-order file in a tree's root. */
#define SM_FOLDER_CLASSES_FILE "classes.txt"

/* True when spec names real image files rather than IDX data: a regular
 * file ending in ".csv" (any case), or a directory that holds no IDX
 * images (no entry named train-images* or t10k-images*). */
bool sm_folder_is_source(const char *spec);

/* Loads a tree or a manifest (see the file comment) into *train and/or
 * *test (either may be NULL, not both), converted to (c, h, w) when all
 * three are > 0, else to the reference image's size (all three 0).
 * On success the caller owns both (sm_dataset_free); on failure both are
 * zeroed. Errors: SM_ERR_IO (missing root, unreadable file, no images at
 * all, a split tree without the split asked for), SM_ERR_FORMAT (an image
 * that does not decode, a bad manifest or classes.txt line: messages name
 * the file and line), SM_ERR_ARG (c not 1 or 3, sizes out of range, a
 * header over the image size limits), SM_ERR_NOMEM. */
sm_status sm_folder_open(const char *spec, int64_t c, int64_t h, int64_t w, sm_dataset *train,
                         sm_dataset *test, sm_err *err);

/* Writes the first `limit` images of ds (all when limit <= 0) as a folder
 * per class: DIR/<class>/<index>.png, the class folder named by
 * sm_folder_sanitize (a name that clashes with an earlier class's gets
 * "_<label>" appended), <index> the image's position in ds, zero-padded to
 * the width of the largest index written (so byte order = dataset order),
 * plus DIR/classes.txt listing every class of ds in label order (`folder`,
 * or `folder<TAB>name` when sanitizing changed the name). PNG is lossless:
 * sm_folder_open(DIR) gives back the same pixels, labels and class names.
 * Pixels are gray (c = 1) or RGB (c = 3) PNGs, each written atomically
 * (sm_png_write), in parallel. DIR is created (with its parents)
 * when missing and must be empty. Errors: SM_ERR_ARG (DIR not empty, a
 * dataset of other than 1 or 3 channels), SM_ERR_IO (naming the path),
 * SM_ERR_NOMEM. */
sm_status sm_folder_export(const sm_dataset *ds, const char *dir, int64_t limit, sm_err *err);

/* Turns a class name into a file name: '/', '\\', control characters and
 * the characters <>:"|?* become '_', as does a leading '.'; an empty name
 * becomes "_". Writes at most cap bytes (NUL included) into out. */
void sm_folder_sanitize(const char *name, char *out, size_t cap);

/* ---------------------------------------------------------------- images */

/* PNG and JPEG in and out, channel conversion, resizing.
 *
 * Decoding is libpng's and libjpeg-turbo's (never a hand-written decoder),
 * wrapped so that a corrupt, truncated or hostile file is an error message,
 * never a crash, an exit or a print: both libraries report errors through
 * our own handlers, which longjmp back into the decoder call.
 *
 * What is refused before any pixel memory is allocated (decompression bombs):
 * a header that says width or height > SM_IMAGE_MAX_SIDE or
 * width * height > SM_IMAGE_MAX_PIXELS. A forged 30000x30000 PNG header is
 * rejected from its first 33 bytes.
 *
 * Pixels are u8, interleaved, row-major: px[(y * w + x) * c + k], with
 *   c = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
 * 16-bit PNG samples are scaled to 8 bits with rounding (v * 255 / 65535),
 * palettes are expanded (to RGBA when the palette has transparency, tRNS),
 * 1/2/4-bit gray is expanded to 0..255, Adam7-interlaced files are
 * deinterlaced. A gray JPEG is c = 1, any other JPEG c = 3 (CMYK JPEGs are
 * refused as unsupported). A JPEG's EXIF orientation (1..8) is applied, so
 * a phone photo comes out upright and w, h are those of the upright image;
 * a missing or unreadable EXIF block means "as stored". Gamma, colour
 * profiles and PNG's eXIf chunk are ignored: the stored samples are used.
 *
 * Conversions (sm_image_convert):
 *   gray = BT.601 luma, round((299 R + 587 G + 114 B) / 1000)   (ITU-R BT.601)
 *   RGB from gray: the gray value in all three channels
 *   dropping alpha composites over black: v' = round(v * a / 255), so fully
 *   transparent pixels are 0 whatever colour they hide (Fashion-MNIST's
 *   background is black too).
 *
 * Resizing (sm_image_resize), each axis on its own, in float, rounded to the
 * nearest u8 once at the end:
 *   shrinking or same size (out <= in): area averaging. Output pixel j covers
 *     the input interval [j * in/out, (j+1) * in/out); each input pixel
 *     weighs by the length of its overlap with that interval divided by
 *     in/out. At the same size this is the identity; halving averages 2x2
 *     blocks exactly (OpenCV's INTER_AREA, PIL's BOX filter).
 *   enlarging (out > in): bilinear with pixel centres at half-integers,
 *     src = (j + 0.5) * in/out - 0.5 clamped to [0, in - 1], the weights
 *     1 - f and f of the two nearest input pixels (PyTorch's
 *     interpolate(mode="bilinear", align_corners=False), OpenCV's
 *     INTER_LINEAR).
 *   Horizontal pass first, then vertical. A constant image stays constant.
 */

/* Largest width or height accepted (a 16384x16384 RGBA image is 1 GiB). */
#define SM_IMAGE_MAX_SIDE 16384
/* Largest pixel count accepted: 64 Mi pixels (8192x8192, 256 MiB as RGBA). */
#define SM_IMAGE_MAX_PIXELS ((int64_t)1 << 26)
/* Largest file sm_image_read reads (any real PNG/JPEG within the pixel
 * limits is far smaller). */
#define SM_IMAGE_MAX_FILE ((size_t)1 << 30)

typedef struct sm_image {
    int64_t w, h;   /* >= 1 */
    int c;          /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *px;    /* (h, w, c) interleaved, owned (malloc) */
} sm_image;

typedef enum sm_image_format {
    SM_IMAGE_UNKNOWN = 0,
    SM_IMAGE_PNG,   /* starts with 89 50 4E 47 0D 0A 1A 0A */
    SM_IMAGE_JPEG   /* starts with FF D8 FF */
} sm_image_format;

/* The format the first bytes announce (n may be anything, even 0). */
sm_image_format sm_image_sniff(const void *buf, size_t n);

/* Decodes a whole PNG or JPEG file held in buf[0..n) (an HTTP request body,
 * say) into *out. buf is only read. On success *out owns its pixels (free
 * with sm_image_free); on failure *out is zeroed.
 * Errors: SM_ERR_FORMAT "not a PNG or JPEG image" (other magic, empty
 * input), a corrupt or truncated image (libpng's / libjpeg's reason, e.g.
 * "truncated PNG", "Premature end of JPEG file"), SM_ERR_ARG (a header that
 * exceeds the size limits above, with the size it claims; NULL arguments),
 * SM_ERR_UNSUPPORTED (CMYK JPEG), SM_ERR_NOMEM. */
sm_status sm_image_decode(const void *buf, size_t n, sm_image *out, sm_err *err);

/* Reads and decodes the file at path (as sm_image_decode; messages start
 * with the path in quotes). Errors add SM_ERR_IO (cannot open or read; a
 * file over SM_IMAGE_MAX_FILE bytes). */
sm_status sm_image_read(const char *path, sm_image *out, sm_err *err);

/* Reads only the header: width, height and channels as sm_image_decode
 * would give them (any pointer may be NULL). Same errors, limits included;
 * a file whose pixel data is damaged may pass here and fail to decode. */
sm_status sm_image_read_info(const char *path, int64_t *w, int64_t *h, int *c, sm_err *err);

/* Releases the pixels and zeroes *img; NULL or a zeroed image is a no-op. */
void sm_image_free(sm_image *img);

/* Makes *out a copy of in with c channels (1..4), by the rules in the file
 * comment; c == in->c copies. *out is owned by the caller; in is unchanged
 * (in == out is allowed and replaces the image). Errors: SM_ERR_ARG (c not
 * in 1..4, an empty image), SM_ERR_NOMEM. */
sm_status sm_image_convert(const sm_image *in, int c, sm_image *out, sm_err *err);

/* Makes *out a copy of in resized to w x h (each 1..SM_IMAGE_MAX_SIDE),
 * same channels, by the rules in the file comment (alpha is resampled like
 * any other channel). Ownership as sm_image_convert (in == out allowed).
 * Errors: SM_ERR_ARG, SM_ERR_NOMEM. */
sm_status sm_image_resize(const sm_image *in, int64_t w, int64_t h, sm_image *out, sm_err *err);

/* The float planes (C, H, W) a model with input (C, H, W) takes for img:
 * channels converted to C (1 or 3), resized to H x W and rounded to u8
 * (sm_image_to_planes, as a folder dataset stores it), then
 * x = (u/255 - mean)/std with the model's input normalisation through
 * sm_images_to_float. So a file embeds exactly as the same file does in a
 * folder dataset, and an image already of the model's size as the IDX path.
 * out holds C*H*W floats, caller-allocated.
 * Errors: SM_ERR_UNSUPPORTED (a model whose input has neither 1 nor 3
 * channels), SM_ERR_ARG, SM_ERR_NOMEM. */
sm_status sm_image_to_model_input(const sm_model *m, const sm_image *img, float *out, sm_err *err);

/* Lower-level form of the above for callers without a model (datasets):
 * writes u8 planes (c, h, w) of img converted to c channels (1..4) and
 * resized to w x h, into out (c*h*w bytes, caller-allocated). */
sm_status sm_image_to_planes(const sm_image *img, int c, int64_t h, int64_t w, uint8_t *out, sm_err *err);

/* Encodes px (h, w, c) interleaved, c = 1..4, 8 bits per sample, as a
 * non-interlaced PNG in memory. *out is malloc'd (caller frees), *n its
 * size. Errors: SM_ERR_ARG (sizes, c, NULL), SM_ERR_NOMEM. */
sm_status sm_png_encode(const uint8_t *px, int64_t w, int64_t h, int c, uint8_t **out, size_t *n,
                        sm_err *err);

/* Writes px as a PNG file (sm_png_encode), atomically: temp file + fsync +
 * rename (sm_file_write_atomic); path is untouched on failure.
 * Errors: those of sm_png_encode, SM_ERR_IO. */
sm_status sm_png_write(const char *path, const uint8_t *px, int64_t w, int64_t h, int c, sm_err *err);

/* Encodes px (h, w, c), c = 1 (gray) or 3 (RGB), as a baseline JPEG of the
 * given quality (1..100) in memory; *out malloc'd. Errors as sm_png_encode. */
sm_status sm_jpeg_encode(const uint8_t *px, int64_t w, int64_t h, int c, int quality, uint8_t **out,
                         size_t *n, sm_err *err);

/* Writes a JPEG file atomically, as sm_png_write. */
sm_status sm_jpeg_write(const char *path, const uint8_t *px, int64_t w, int64_t h, int c, int quality,
                        sm_err *err);

/* ---------------------------------------------------------------- training */

/* The training loop (private; the CLI's `simile train`).
 *
 * Epochs over a dataset with a loader thread, one optimizer step per batch,
 * a progress bar (or plain lines when not on a terminal), one JSON line per
 * epoch in a log, validation (head accuracy) after each epoch, a checkpoint
 * after each epoch (atomic) that --resume continues from, and a NaN/Inf guard
 * that stops with the step named and the last good checkpoint untouched. */

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

/* ---------------------------------------------------------------- evaluation */

/* Evaluation metrics on embeddings and logits.
 *
 * What it is: retrieval metrics (precision@1, R-precision, MAP@R, Recall@K,
 * 1-NN accuracy), classification accuracy from logits, and verification
 * metrics on pairs (TAR at given FAR, best-threshold accuracy), plus a builder
 * of positive/negative pair similarities from a labelled embedding set.
 * What it refuses to be: an index. Retrieval here is exact and brute force
 * (one GEMM per block of queries); the gallery/index modules do search.
 *
 * Similarity is the dot product of rows; embeddings are assumed L2-normalised
 * so that it is the cosine. Nothing here normalises or checks the norms.
 *
 * Ranking rule (every function that ranks): by similarity descending, ties by
 * reference index ascending. -0.0 and +0.0 are the same similarity. The rule
 * is total, so the metrics are deterministic and do not depend on the thread
 * count or on how queries are split into blocks.
 *
 * Definitions follow pytorch-metric-learning's AccuracyCalculator
 * (utils/accuracy_calculator.py, avg_of_avgs=False: a plain mean over
 * queries, "macro over queries"), except Recall@K, which is the Recall@K of
 * deep metric learning papers (Song et al. 2016, "Deep Metric Learning via
 * Lifted Structured Feature Embedding"): 1 if ANY of the top K references has
 * the query's label. All means are accumulated in double, in query order. */

/* --------------------------------------------------------------- retrieval */

/* The K of recall_at_k[i] is SM_EVAL_RECALL_K[i] = 1, 2, 4, 8. */
#define SM_EVAL_NRECALL 4
extern const int SM_EVAL_RECALL_K[SM_EVAL_NRECALL];

/* Retrieval metrics over a set of queries against a set of references.
 * For query q, R(q) = number of references with q's label (q itself not
 * counted when same_set). "Valid" queries are those with R(q) > 0; the others
 * ("lone" queries in pytorch-metric-learning) cannot retrieve anything
 * relevant and are left out of every mean marked [valid], as PML does. */
typedef struct sm_retrieval_metrics {
    double precision_at_1;  /* [valid] rank-1 reference has q's label */
    double r_precision;     /* [valid] (# of q's label among the top R) / R */
    double map_at_r;        /* [valid] (1/R) sum_{i=1..R} P(i) rel(i), P(i) = precision at rank i */
    double recall_at_k[SM_EVAL_NRECALL]; /* [valid] 1 if any of the top K has q's label */
    double knn_accuracy;    /* [all] 1-NN label == q's label, over ALL nq queries (lone ones count
                               as misses): 1-NN classification accuracy, test->train when
                               same_set is false. Equals precision_at_1 when every query is valid. */
    int64_t n_queries;      /* nq */
    int64_t n_valid;        /* queries with R > 0; the [valid] means are over these (0.0 if none) */
} sm_retrieval_metrics;

/* Fills *out with the retrieval metrics of queries against references.
 *
 *   query (nq, d), qlab (nq): query embeddings (rows) and labels
 *   ref   (nr, d), rlab (nr): reference embeddings and labels
 *   same_set: leave-one-out on one split. The caller passes the same set twice
 *             (ref row i is query row i, so nq == nr and rlab == qlab); query i
 *             is removed from its own ranking (by index, not by value).
 *
 * Similarities are computed with sm_gemm for blocks of queries (the nq x nr
 * matrix is never held whole); each query then keeps only its top max(R, 8)
 * references by partial selection, sorted by the ranking rule above. Uses the
 * OpenMP threads of sm_threads_get(); results are identical for any count.
 * Memory: about min(nq, 256) * nr floats, plus 2 * nr 8-byte keys and a
 * 32 KiB histogram per thread.
 *
 * Errors: SM_ERR_ARG (nq, nr or d < 1, nr >= 2^31, same_set with nq != nr, or
 * same_set with a single row), SM_ERR_NAN (a non-finite embedding value),
 * SM_ERR_NOMEM. On error *out is zeroed. Nothing is allocated for the caller. */
sm_status sm_eval_retrieval(sm_retrieval_metrics *out, const float *query, const int32_t *qlab,
                            int64_t nq, const float *ref, const int32_t *rlab, int64_t nr,
                            int64_t d, bool same_set, sm_err *err);

/* ---------------------------------------------------------- classification */

/* Fraction of i in [0, n) with pred[i] == lab[i]; 0.0 when n == 0. */
double sm_eval_accuracy(const int32_t *pred, const int32_t *lab, int64_t n);

/* pred (n) = argmax over each row of logits (n, c), c >= 1. Ties go to the
 * lowest column. The comparison is `>`, so NaN entries never win (a row whose
 * first entry is NaN predicts 0, since nothing compares greater than NaN). */
void sm_argmax_rows(int32_t *pred, const float *logits, int64_t n, int64_t c);

/* ------------------------------------------------------------ verification */

/* One operating point of a ROC curve. A pair is accepted ("same") when its
 * similarity is STRICTLY greater than the threshold. */
typedef struct sm_roc_point {
    double far_target;  /* the FAR asked for */
    float threshold;    /* accept iff sim > threshold (may be -INFINITY: accept all) */
    double tar;         /* true accept rate: accepted positives / positives */
    double far;         /* false accept rate actually reached, <= far_target */
} sm_roc_point;

/* TAR at given FAR values.
 *
 *   sim (n): pair similarities; same (n): 1 for a positive (same-label) pair,
 *   0 for a negative one. far (nfar): targets in [0, 1]. out (nfar): filled.
 *
 * Rule: sort the Nn negative similarities descending, neg[0] >= neg[1] >= ...;
 * let a = floor(far * Nn) (the number of false accepts allowed). The threshold
 * is neg[a] (if a < Nn), else -INFINITY. Accepting sim > neg[a] lets through
 * only negatives strictly above neg[a], all among neg[0..a-1], so the reached
 * FAR is <= the target (smaller when neg[a] is tied with higher negatives).
 * This is the smallest threshold among the negatives' values that keeps
 * FAR <= target (a larger one would lower TAR for nothing).
 *
 * Errors: SM_ERR_ARG (n < 1, no positive or no negative pair, a far outside
 * [0, 1], nfar < 1), SM_ERR_NAN (a non-finite similarity), SM_ERR_NOMEM. */
sm_status sm_eval_roc(sm_roc_point *out, const float *sim, const uint8_t *same, int64_t n,
                      const double *far, int64_t nfar, sm_err *err);

/* Best verification accuracy over thresholds: the threshold t maximising
 * (#positives with sim > t + #negatives with sim <= t) / n, searched over
 * t in {-INFINITY} and every distinct similarity value (that is every distinct
 * split of the sorted pairs). Ties between thresholds go to the LARGEST t.
 * *threshold (may be NULL) receives t; *accuracy receives the accuracy.
 * Errors: SM_ERR_ARG (n < 1), SM_ERR_NAN (non-finite similarity), SM_ERR_NOMEM. */
sm_status sm_eval_best_threshold_accuracy(double *accuracy, float *threshold, const float *sim,
                                          const uint8_t *same, int64_t n, sm_err *err);

/* All (or a sample of the) unordered pairs {i, j}, i < j, of a labelled
 * embedding set, with their similarities. Positives come first, then
 * negatives; each group is sorted by (i, j). */
typedef struct sm_pairs {
    int64_t n, npos, nneg;  /* n = npos + nneg */
    float *sim;             /* (n) dot product of rows i and j */
    uint8_t *same;          /* (n) 1 for positives (lab[i] == lab[j]), else 0 */
    int32_t *i, *j;         /* (n) row indices, i < j */
} sm_pairs;

/* Builds the pairs of emb (n, d) with labels lab (n).
 *
 * When there are at most max_pos positive pairs, all are kept, else exactly
 * max_pos distinct ones are drawn uniformly at random (without replacement);
 * the same for negatives with max_neg. The draw is a pure function of seed
 * (and the inputs): same seed, same pairs, for any thread count.
 * Similarities: a per-pair dot product accumulated in double (so a pair's
 * value does not depend on which other pairs were drawn, nor on threads).
 *
 * Ownership: fills *out with arrays allocated here; free with sm_pairs_free.
 * Errors: SM_ERR_ARG (n < 2, d < 1, max_pos or max_neg < 0, n >= 2^31),
 * SM_ERR_NOMEM. On error *out is zeroed. */
sm_status sm_eval_pairs(sm_pairs *out, const float *emb, const int32_t *lab, int64_t n, int64_t d,
                        int64_t max_pos, int64_t max_neg, uint64_t seed, sm_err *err);

/* Frees the arrays of p and zeroes it; p == NULL is a no-op. */
void sm_pairs_free(sm_pairs *p);

/* ---------------------------------------------------------------- gallery */

/* The persistent gallery: enrolled items and their embeddings in
 * SQLite, searched through an in-memory index.
 *
 * What it is: a file (an SQLite database) holding, per item, an id, a label,
 * an optional source path, the SHA-256 of the image file it came from, and
 * its embedding; plus what the embeddings mean (the identity of the model
 * that made them, their dimension and storage type). Enrolling and removing
 * are transactions; searching reads every embedding into memory once and
 * runs an exact float32 or int8 search or an HNSW graph kept in a
 * file beside the gallery.
 * What it refuses to be: an image decoder or a model. Callers embed (the CLI
 * and the service do), the gallery stores and searches L2-normalised vectors.
 *
 * File (docs/formats.md, "Gallery"):
 *   PRAGMA application_id = 0x534D474C ("SMGL"), PRAGMA user_version = 1
 *   (SM_GALLERY_SCHEMA), journal_mode = WAL;
 *   meta(key TEXT PRIMARY KEY, value TEXT) holding format = "simile-gallery",
 *     format_version, model_id (64 hex digits), model_name, dim, dtype
 *     ("float32" | "int8"), generation, uuid, created, and once calibrated
 *     threshold, threshold_far, threshold_tar, threshold_data;
 *   items(id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL,
 *     source TEXT, content_hash TEXT UNIQUE, embedding BLOB NOT NULL,
 *     created INTEGER NOT NULL).
 *   embedding: float32 galleries dim little-endian float32; int8 galleries a
 *   little-endian float32 scale then dim int8 codes (symmetric per-row quantisation,
 *   4x smaller). Ids are never reused (AUTOINCREMENT), so a saved HNSW graph
 *   that names ids cannot silently point at a different item.
 *
 * Durability: WAL with synchronous = FULL. In WAL mode NORMAL is already safe
 * against a crash of the process (kill -9: the WAL keeps every committed
 * transaction and recovery drops the uncommitted tail), but after a power
 * loss it may lose the last transactions that were reported committed. An
 * enroll is a user action whose success the CLI reports, and it is one
 * transaction for many items, so FULL costs one WAL fsync per enroll, not per
 * item: we take FULL.
 *
 * Every change bumps the meta generation counter in its own transaction, and
 * an HNSW file records the generation (with the gallery's uuid and model
 * identity) it was built from: a graph with another stamp is stale and is
 * rebuilt from the store.
 *
 * Errors never change the file: opening checks everything before any write
 * (a file that is not a gallery, of a newer format, damaged, of another
 * model), and enroll/remove run in one transaction that is rolled back on
 * any error. A handle is used by one thread at a time. */

/* Schema version (PRAGMA user_version and meta format_version). */
#define SM_GALLERY_SCHEMA 1
/* PRAGMA application_id of a gallery: "SMGL". */
#define SM_GALLERY_APP_ID 0x534D474C
/* Galleries at least this large use HNSW under SM_GALLERY_INDEX_AUTO. */
#define SM_GALLERY_HNSW_MIN 100000

/* ------------------------------------------------------------------ SHA-256 */

/* SHA-256 (FIPS 180-4), for content hashes and model identities. */
typedef struct sm_sha256 {
    uint32_t h[8];
    uint64_t len;        /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sm_sha256;

void sm_sha256_init(sm_sha256 *s);
void sm_sha256_update(sm_sha256 *s, const void *p, size_t n);
void sm_sha256_final(sm_sha256 *s, uint8_t out[32]);
/* out = 64 lower-case hex digits + NUL. */
void sm_hex(char *out, const uint8_t *bytes, size_t n);
/* SHA-256 of a whole file. Errors: SM_ERR_IO naming the file. */
sm_status sm_sha256_file(const char *path, uint8_t out[32], sm_err *err);

/* --------------------------------------------------------------- identity */

/* The identity of a model: SHA-256 over a tag and version, the spec text,
 * the head (kind, classes, scale, margin, easy_margin), the input
 * normalisation, and every tensor of sm_model_tensor in order (name, shape,
 * little-endian float32 bytes). Two checkpoints have the same identity iff
 * they embed identically (up to a hash collision); the class names and the
 * training state do not count. Never fails for a valid model. */
void sm_model_identity(sm_model *m, uint8_t out[32]);

/* --------------------------------------------------- opening, enrolling, searching */

typedef struct sm_gallery sm_gallery;

typedef enum sm_gallery_dtype { SM_GALLERY_F32 = 0, SM_GALLERY_I8 = 1 } sm_gallery_dtype;

/* What the embeddings of a gallery come from. */
typedef struct sm_gallery_model {
    uint8_t id[32];       /* sm_model_identity */
    int64_t dim;          /* embedding size */
    const char *name;     /* shown in messages (the checkpoint path); may be NULL */
} sm_gallery_model;

typedef struct sm_gallery_options {
    bool create;              /* create the gallery if path does not exist (needs a model) */
    sm_gallery_dtype dtype;   /* storage of a new gallery's embeddings */
    bool readonly;            /* open read-only (search, items) */
} sm_gallery_options;

/* Opens (or, with opts->create, creates) the gallery at path. With a model,
 * the gallery must have been built with that model (identity and dim);
 * without (NULL) any gallery opens, for listing and removing.
 * A new gallery is created complete in a temporary file and linked into
 * place, so a crash never leaves a half-made one; two processes creating the
 * same path at once both end up with the one that got there first.
 * *out is owned by the caller (sm_gallery_close). opts may be NULL (open an
 * existing gallery read-write).
 * Errors: SM_ERR_IO (no such file without create, permission, cannot
 * create), SM_ERR_FORMAT ("not a simile gallery": not SQLite, another
 * application's database, schema newer than this simile, missing meta;
 * damaged: SQLite reports corruption), SM_ERR_ARG (another model: "gallery
 * 'G' was built with model X (name, D-d); this is model Y (name, D-d)",
 * create without a model, a gallery busy beyond the 5 s lock timeout),
 * SM_ERR_SHAPE (same model identity, other dim), SM_ERR_NOMEM.
 * The file is never written on failure. */
sm_status sm_gallery_open(sm_gallery **out, const char *path, const sm_gallery_model *model,
                          const sm_gallery_options *opts, sm_err *err);

/* Closes the database and frees everything. NULL is a no-op. */
void sm_gallery_close(sm_gallery *g);

typedef struct sm_gallery_info {
    int64_t count;           /* items */
    int64_t dim;
    sm_gallery_dtype dtype;
    int64_t generation;
    char model_id[65];       /* hex */
    char model_name[256];
    char uuid[33];           /* hex */
    bool has_threshold;
    float threshold;         /* accept iff similarity > threshold */
    double threshold_far, threshold_tar;
} sm_gallery_info;

/* Counts and meta of the gallery as of now. Errors: SM_ERR_FORMAT/IO from SQLite. */
sm_status sm_gallery_info_get(sm_gallery *g, sm_gallery_info *info, sm_err *err);

/* One item to enroll. */
typedef struct sm_gallery_item {
    const char *label;          /* non-empty UTF-8 */
    const char *source;         /* where it came from (an image path); may be NULL */
    const uint8_t *content;     /* SHA-256 of the image file (32 bytes); NULL: no dedup */
    const float *embedding;     /* dim floats, finite, not all zero; stored L2-normalised */
} sm_gallery_item;

/* Enrolls items[0..n) in ONE transaction: all of them or (on any error)
 * none. An item whose content hash is already in the gallery with the same
 * label is not added again (its existing id is returned): enrolling the
 * same image twice is idempotent. The same image under another label is an
 * error (remove it first). ids (n, may be NULL) receives each item's id,
 * *added (may be NULL) how many rows were new. The generation is bumped
 * when any row is new. The in-memory index follows.
 * Errors: SM_ERR_CONFLICT (the same image under another label), SM_ERR_ARG
 * (empty label, n < 0, readonly), SM_ERR_NAN (a non-finite or zero embedding), SM_ERR_IO (disk
 * full, lock timeout), SM_ERR_NOMEM. */
sm_status sm_gallery_enroll(sm_gallery *g, const sm_gallery_item *items, int64_t n, int64_t *ids,
                            int64_t *added, sm_err *err);

/* Removes the items ids[0..n) in one transaction. An id that is not in the
 * gallery is an error and nothing is removed. Bumps the generation.
 * Errors: SM_ERR_ARG (unknown id, readonly), SM_ERR_IO. */
sm_status sm_gallery_remove(sm_gallery *g, const int64_t *ids, int64_t n, sm_err *err);

/* One listed item; strings owned by the array (sm_gallery_entries_free). */
typedef struct sm_gallery_entry {
    int64_t id;
    char *label;
    char *source;           /* NULL when none */
    char content[65];       /* hex SHA-256, "" when none */
    int64_t created;        /* unix seconds */
} sm_gallery_entry;

/* Items with id > after_id in id order, at most limit (>= 1) of them: a page.
 * *out (malloc'd, *n entries; NULL when 0) is owned by the caller.
 * Errors: SM_ERR_ARG (limit < 1), SM_ERR_IO/FORMAT from SQLite, SM_ERR_NOMEM. */
sm_status sm_gallery_items(sm_gallery *g, int64_t after_id, int64_t limit, sm_gallery_entry **out, int64_t *n,
                           sm_err *err);
/* The item with this id into *out (its strings then belong to *out: release
 * them with sm_gallery_entry_clear); *found says whether it exists (when not,
 * *out is zeroed). Errors: SM_ERR_IO/FORMAT from SQLite, SM_ERR_NOMEM. */
sm_status sm_gallery_get(sm_gallery *g, int64_t id, sm_gallery_entry *out, bool *found, sm_err *err);
void sm_gallery_entry_clear(sm_gallery_entry *e);
void sm_gallery_entries_free(sm_gallery_entry *e, int64_t n);

typedef enum sm_gallery_index {
    SM_GALLERY_INDEX_AUTO = 0, /* float32: exact below SM_GALLERY_HNSW_MIN items, else HNSW; int8: int8 */
    SM_GALLERY_INDEX_EXACT,    /* float32 scan/GEMM; on an int8 gallery the int8 scan (the codes are all there is) */
    SM_GALLERY_INDEX_INT8,     /* int8 scan (float32 galleries quantise in memory; rerank with the floats) */
    SM_GALLERY_INDEX_HNSW      /* HNSW graph from G.hnsw, rebuilt when stale */
} sm_gallery_index;

typedef struct sm_gallery_search_opts {
    sm_gallery_index index;
    int64_t ef;        /* HNSW search list (0: 64) */
    int64_t rerank;    /* INT8 on a float32 gallery: re-score this many with floats (0: none) */
    int64_t hnsw_m;    /* HNSW build: M (0: 16) */
    int64_t hnsw_efc;  /* HNSW build: efConstruction (0: 200) */
} sm_gallery_search_opts;

/* Largest k (and rerank) a search accepts. */
#define SM_GALLERY_MAX_K 100000

/* Top-k items for each query q (nq, d): ids (nq, k) item ids (-1 past the
 * end), sims (nq, k) cosine similarities, best first, ties to the lower id
 * (items sit in memory in id order). Queries are L2-normalised here. opts
 * may be NULL (AUTO).
 * The embeddings are read from SQLite at the first search after open and
 * again when another connection has changed the gallery.
 * Errors: SM_ERR_ARG (k outside 1..SM_GALLERY_MAX_K, nq < 0), SM_ERR_SHAPE (d != the
 * gallery's dim), SM_ERR_NAN (a query not finite or zero), SM_ERR_FORMAT (a
 * damaged embedding row), SM_ERR_NOMEM. */
sm_status sm_gallery_search(sm_gallery *g, const float *q, int64_t nq, int64_t d, int64_t k,
                            const sm_gallery_search_opts *opts, int64_t *ids, float *sims, sm_err *err);

/* Makes sure the index kind opts->index is ready (loads the embeddings;
 * for HNSW loads G.hnsw or, when missing, stale or damaged, rebuilds it and
 * saves it unless readonly). *note (may be NULL) receives a one-line
 * description of what happened ("HNSW index rebuilt: stale (generation 7,
 * gallery at 9)"), "" when nothing worth saying. sm_gallery_search calls it.
 * Errors: those of the search, SM_ERR_IO (saving the graph). */
sm_status sm_gallery_prepare(sm_gallery *g, const sm_gallery_search_opts *opts, char *note, size_t note_cap,
                             sm_err *err);

/* Path of the HNSW file beside the gallery ("<path>.hnsw"), owned by g. */
const char *sm_gallery_hnsw_path(const sm_gallery *g);

/* Stores the open-set threshold (accept iff similarity > t) with the FAR and
 * TAR it was calibrated at and a free-text description of the data, in one
 * transaction. Does not bump the generation (the index is unaffected).
 * Errors: SM_ERR_ARG (t not finite, readonly), SM_ERR_IO. */
sm_status sm_gallery_set_threshold(sm_gallery *g, float t, double far, double tar, const char *data, sm_err *err);

/* ---------------------------------------------------------------- service
 * The HTTP service: search, enroll and embed over HTTP, and the web page,
 * in background threads of the calling program. `simile serve` is this plus
 * its signals (cli/cmd_serve.c: it ignores SIGPIPE and SIGXFSZ, and stops
 * on SIGINT or SIGTERM); a program that embeds the service chooses its own.
 *
 * What it is: libmicrohttpd (one internal polling thread, a pool of worker
 * threads, a bounded number of connections, an inactivity timeout) in front
 * of a model and a gallery (section "gallery"). JSON in and out through jansson.
 *
 *   GET    /                      the web page (src/web/index.html, built in)
 *   GET    /healthz               {"status":"ok","items":N}
 *   GET    /metrics               Prometheus text: requests by endpoint and
 *                                 status, latency histograms, gallery size
 *   POST   /v1/search?k=&threshold=   image body (PNG/JPEG), multipart field
 *                                 "image", or JSON {"embedding":[...]}
 *   POST   /v1/embed              image body or multipart -> the embedding
 *   GET    /v1/items?offset=&limit=   (or after=ID) a page of items
 *   POST   /v1/items?label=       image body (label in the query) or multipart
 *                                 fields "image" and "label" -> enroll
 *   GET    /v1/items/{id}         one item
 *   GET    /v1/items/{id}/image   the item's thumbnail (PNG)
 *   DELETE /v1/items/{id}         remove
 * Errors are JSON {"error": code, "detail": message} with the status:
 *   400 malformed (parameters, JSON, multipart, corrupt image), 401 missing or
 *   wrong bearer token on POST/DELETE /v1/items when a token is set, 404, 405
 *   (with Allow), 409 the same image already enrolled under another label,
 *   408 the request did not arrive in full within request_timeout_s (slow
 *   headers or body; the connection is closed), 413 body over max_body
 *   (refused from its Content-Length before any byte is read, or as soon as
 *   a streamed body passes the limit; the connection is closed), 415 not a
 *   PNG or JPEG, 422 an image whose header exceeds simile.h's pixel limits
 *   (refused before any pixel memory is allocated) or that embeds to a zero
 *   or non-finite vector, 500 internal, 503 the gallery is busy or the disk
 *   is full (retry later).
 *
 * What it refuses to be: a file server. No part of a request is ever used as
 * a path. Thumbnails of items enrolled over HTTP are PNGs re-encoded from the
 * decoded upload (longest side at most SM_SERVE_THUMB), stored as
 * "<gallery>.images/<content sha256>.png" (names from the gallery's own
 * content hash); items enrolled by the CLI get theirs re-encoded from the
 * source path the gallery stores. A thumbnail lives exactly as long as its
 * item: an enroll that fails removes the one it wrote, a delete removes it.
 *
 * Slow clients: libmicrohttpd closes a connection idle for timeout_s, but
 * has no deadline for a whole request, so a client trickling one byte at a
 * time would keep its connection forever. A watchdog thread tracks every
 * connection (MHD_OPTION_NOTIFY_CONNECTION) and answers one whose request
 * is not in by request_timeout_s itself (serve.c, "Aborting a connection");
 * a body that passes max_body mid-stream is answered the same way, since
 * libmicrohttpd 0.9.75 does not queue a response in the middle of a body.
 * At most max_conns connections, max_conns_per_ip from one address.
 *
 * Concurrency: a gallery handle is for one thread at a time (section "gallery"), so
 * every gallery call runs under one mutex; an enroll is one SQLite
 * transaction and updates the in-memory index inside that same critical
 * section, so a search sees an item completely or not at all. Decoding and
 * embedding (the expensive part) run outside it, on a pool of model copies
 * (one per worker thread: a model's activation arena is not shareable).
 * Each worker runs OpenMP single-threaded: parallelism is across requests. */

/* Longest side of a stored thumbnail (pixels). */
#define SM_SERVE_THUMB 256

typedef struct sm_serve_config {
    const char *model_path;    /* checkpoint (required) */
    const char *gallery_path;  /* gallery (created if missing) (required) */
    const char *listen;        /* IPv4 or IPv6 literal; NULL: "127.0.0.1" */
    int port;                  /* 0: an ephemeral port (sm_serve_port tells which) */
    const char *token;         /* bearer token for the mutating endpoints; NULL: none */
    int threads;               /* worker threads (0: the number of cores, at most 64) */
    size_t max_body;           /* bytes (0: 16 MiB) */
    int max_conns;             /* simultaneous connections (0: 256) */
    int timeout_s;             /* idle connection timeout in seconds (0: 10) */
    int request_timeout_s;     /* a request's headers and body must arrive within
                                  this many seconds (0: 30); else 408 and closed.
                                  The clock starts when the connection opens or
                                  its previous response is sent, so below
                                  timeout_s an idle keep-alive connection gets
                                  the 408 (as RFC 9110 15.5.9 allows) */
    int max_conns_per_ip;      /* simultaneous connections from one address (0: 64) */
} sm_serve_config;

typedef struct sm_server sm_server;

/* Loads the model (threads copies), opens or creates the gallery, binds and
 * starts serving in background threads. *out is owned by the caller
 * (sm_serve_stop). Errors: those of sm_model_load and sm_gallery_open,
 * SM_ERR_ARG (bad listen address, config), SM_ERR_IO (cannot bind: the
 * port is in use or not permitted), SM_ERR_NOMEM. */
sm_status sm_serve_start(sm_server **out, const sm_serve_config *cfg, sm_err *err);

/* The port actually bound. */
int sm_serve_port(const sm_server *s);

/* Items in the gallery as the server last saw them. */
int64_t sm_serve_items(const sm_server *s);

/* Stops accepting, waits for the requests in flight, frees everything.
 * NULL is a no-op. */
void sm_serve_stop(sm_server *s);

/* Where the service keeps the thumbnail of the item whose content hash is hex
 * (64 lowercase hex digits) in the gallery at gallery_path:
 * "<gallery>.images/<hex>.png" into buf. False when hex is not such a hash or
 * the path does not fit in cap bytes. `simile remove` deletes them with it. */
bool sm_serve_thumb_path(char *buf, size_t cap, const char *gallery_path, const char *hex);

#ifdef __cplusplus
}
#endif
#endif
