/* model.h - the model: a list of layers, a metric head, one parameter buffer (private).
 *
 * A model is built from a text spec (see docs/model-spec.md), planned for a
 * maximum batch size (all activations in one arena, allocated once), then run
 * forward/backward. Trainable parameters of every layer and of the head live
 * in one contiguous float buffer `params`; `grads` and optimizer state share
 * its layout, so an optimizer step is one loop and a checkpoint one write.
 * Non-trainable state (BN running statistics) lives in `state`.
 *
 * Activations between layers are (C,N,H,W) for spatial tensors and (N,F) for
 * dense ones (see kernels.h). */
#ifndef SM_MODEL_H
#define SM_MODEL_H
#include "simile.h"
#include "status.h"

#define SM_MAX_LAYERS 128
#define SM_MAX_TENSORS 512

typedef struct sm_layer sm_layer;

/* A named tensor inside params (trainable) or state (running statistics). */
typedef struct sm_tensor_ref {
    char name[64];
    int64_t off;            /* offset in floats into params or state */
    int64_t numel;
    int ndim;
    int64_t shape[4];
    bool trainable;         /* params (true) or state (false) */
} sm_tensor_ref;

/* Per-sample shape of an activation. dense: (f) with f = c; else (c, h, w). */
typedef struct sm_ashape { int64_t c, h, w; bool dense; } sm_ashape;

static inline int64_t sm_ashape_numel(sm_ashape s) { return s.dense ? s.c : s.c * s.h * s.w; }

struct sm_layer_ops {
    const char *name;
    const char *keys;   /* allowed key=value keys, space separated, for messages */
    /* infer the output shape and declare parameters; return SM_ERR_* with message */
    sm_status (*build)(sm_layer *l, sm_model *m, sm_err *err);
    /* floats of per-layer saved data and scratch for batch n */
    void (*plan)(sm_layer *l, int64_t n, size_t *save_floats, size_t *scratch_floats);
    void (*init)(sm_layer *l, sm_model *m, uint64_t seed);
    void (*forward)(sm_layer *l, sm_model *m, const float *in, float *out, int64_t n);
    /* din may be NULL (first layer). din/params grads accumulate. */
    void (*backward)(sm_layer *l, sm_model *m, const float *in, const float *out,
                     const float *dout, float *din, int64_t n);
};

struct sm_layer {
    const struct sm_layer_ops *ops;
    int index;
    int line;               /* spec line, for messages */
    sm_ashape in, out;
    /* hyperparameters (meaning per kind) */
    int64_t units, k, stride, pad;
    float p, eps, momentum;
    bool bias;
    /* tensor ids into m->tensors, -1 when absent */
    int w, b, rmean, rvar;
    int64_t nbt;            /* BN num_batches_tracked */
    /* arena views (valid after plan) */
    float *save;            /* per-kind saved data for backward */
    int32_t *idx;           /* maxpool argmax */
};

typedef struct sm_head sm_head;

struct sm_model {
    char *spec;             /* spec text (owned), saved in checkpoints */
    sm_ashape input;
    int nlayers;
    sm_layer layers[SM_MAX_LAYERS];
    int ntensors;
    sm_tensor_ref tensors[SM_MAX_TENSORS];
    int64_t nparams, nstate;    /* floats */
    float *params, *grads, *state;
    sm_head *head;              /* NULL: backbone only */
    float in_mean, in_std;      /* input normalisation: x = (u/255 - mean)/std */
    int32_t nnames;
    char **names;               /* class names (nnames), owned; may be NULL */
    bool training;
    bool fuse;                  /* eval: conv-bn[-relu] in one pass (default; tests turn it off) */
    uint64_t step_seed;         /* varies per step: dropout masks */
    /* plan: a training arena (every layer's activation, gradient buffers) or,
     * for a model only used for inference, two activation buffers in turn */
    int64_t plan_n;
    bool plan_infer;
    float *ibuf[2];
    float *arena;
    size_t arena_floats;
    float **acts;               /* acts[i]: output of layer i, (C,N,H,W) or (N,F) */
    float *gbuf[2];             /* gradient ping-pong, max activation size */
    float *xin;                 /* (C,N,H,W) copy of the input when C > 1 */
    float *scratch;
    size_t scratch_floats;
    int64_t max_act;            /* floats per sample of the largest activation */
};

/* Declares a tensor; returns its id or -1 (too many). */
int sm_model_add_tensor(sm_model *m, const char *name, bool trainable, int ndim,
                        const int64_t *shape);
static inline float *sm_model_param(sm_model *m, int id)
{
    return m->tensors[id].trainable ? m->params + m->tensors[id].off : m->state + m->tensors[id].off;
}
static inline float *sm_model_grad(sm_model *m, int id) { return m->grads + m->tensors[id].off; }

#endif
