/* model.h - the model: a graph of layers, a metric head, one parameter buffer (private).
 *
 * A model is built from a text spec (see docs/model-spec.md): nodes with
 * named inputs, in an order where each reads only earlier ones. It is
 * planned for a maximum batch size (activations in one arena, allocated
 * once, slots reused by tensor lifetime), then run
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

typedef struct sm_layer sm_layer;

/* A named tensor inside params (trainable) or state (running statistics). */
typedef struct sm_tensor_ref {
    char name[128];
    int64_t off;            /* offset in floats into params or state */
    int64_t numel;
    int ndim;
    int64_t shape[4];
    bool trainable;         /* params (true) or state (false) */
} sm_tensor_ref;

/* Per-sample shape of an activation. dense: (f) with f = c; else (c, h, w). */
typedef struct sm_ashape { int64_t c, h, w; bool dense; } sm_ashape;

static inline int64_t sm_ashape_numel(sm_ashape s) { return s.dense ? s.c : s.c * s.h * s.w; }

/* How a conv or linear layer's weight starts (key init=). */
enum { SM_INIT_DEFAULT = 0,   /* PyTorch's layer default: U(+-1/sqrt(fan_in)), bias too */
       SM_INIT_FAN_OUT = 1,   /* kaiming_normal_(mode='fan_out', relu): N(0, 2/fan_out), bias 0
                               * (torchvision's ResNet and MobileNetV2 convolutions) */
       SM_INIT_NORMAL = 2 };  /* N(0, 0.01^2), bias 0 (torchvision's MobileNetV2 classifier) */

/* What a layer sees when it runs: its own tensors, the scratch, the mode.
 * Pointers are NULL for tensors the layer does not have; gradients are NULL
 * outside a backward. */
typedef struct sm_lctx {
    float *w, *b, *rmean, *rvar;    /* parameters and running statistics */
    float *dw, *db;                 /* their gradients (backward only) */
    float *scratch;                 /* sized by plan() for the planned batch and threads */
    bool training;
    bool frozen;                    /* training, but this node is fixed (a frozen stage, or a
                                     * batch norm with sm_model_set_bn_eval): batch norms use
                                     * their running statistics and leave them alone, dropout
                                     * passes its input through */
    bool exact;                     /* convolutions by direct sums only (training, unless
                                     * sm_model_set_train_winograd) */
    uint64_t seed;                  /* per step and node (dropout masks) */
} sm_lctx;

struct sm_layer_ops {
    const char *name;
    const char *keys;   /* allowed key=value keys, space separated, for messages */
    int min_in, max_in; /* number of inputs (1, 1 for all but add and concat) */
    /* check the input shapes ins[0..nin), infer the output shape, declare
     * parameters; return SM_ERR_* with message */
    sm_status (*build)(sm_layer *l, sm_model *m, const sm_ashape *ins, sm_err *err);
    /* floats of per-layer saved data and scratch for batch n with nthreads */
    void (*plan)(const sm_layer *l, int64_t n, int nthreads, size_t *save, size_t *scratch);
    void (*init)(sm_layer *l, const sm_lctx *c, uint64_t seed);
    void (*forward)(sm_layer *l, const sm_lctx *c, const float *const *in, float *out, int64_t n);
    /* din[k] may be NULL (an input that needs no gradient); din and the
     * parameter gradients accumulate (+=) */
    void (*backward)(sm_layer *l, const sm_lctx *c, const float *const *in, const float *out,
                     const float *dout, float *const *din, int64_t n);
    /* Training plans let an in-place node's output share its input's memory
     * when that input has no other reader and its producer's backward never
     * reads its own output (out_unread): the node is elementwise and its
     * backward reads only its output (a ReLU after a batch norm). */
    bool inplace;
    bool out_unread;
};

/* A node of the graph: a layer, its inputs (earlier nodes, -1 the model
 * input) and the shapes of its output. Nodes are in spec order, which is a
 * topological order: a node reads only nodes before it. */
struct sm_layer {
    const struct sm_layer_ops *ops;
    char *name;             /* owned; its tensors are "<name>.weight", ... */
    int index;
    int line;               /* spec line, for messages */
    int nin;
    int *inp;               /* owned, nin producer ids (-1: the model input) */
    int nreaders;           /* how many later nodes read this one */
    int last_reader;        /* the last of them (-1: none, the output) */
    int64_t *parts;         /* concat: the channels of each input (owned) */
    sm_ashape in, out;      /* in: the first input's shape */
    /* hyperparameters (meaning per kind) */
    int64_t units, k, stride, pad, groups, oh, ow;
    float p, eps, momentum;
    bool bias;
    int init;               /* SM_INIT_* */
    /* tensor ids into m->tensors, -1 when absent */
    int w, b, rmean, rvar;
    int64_t nbt;            /* BN num_batches_tracked */
    int stage;              /* sm_model_stages' stage, -1 for dense nodes */
    bool frozen;            /* in a frozen stage: no parameter updates, eval-mode statistics */
    bool need_grad;         /* dL/d(output) is needed: this node or one before it has
                             * parameters that train */
    /* arena views (valid after plan) */
    float *save;            /* per-kind saved data for backward */
};

typedef struct sm_head sm_head;

struct sm_model {
    char *spec;             /* spec text (owned), saved in checkpoints */
    sm_ashape input;
    int nlayers;
    sm_layer *layers;       /* nlayers nodes, owned */
    int ntensors, cap_tensors;
    sm_tensor_ref *tensors;
    int64_t nparams, nstate;    /* floats */
    float *params, *grads, *state;
    sm_head *head;              /* NULL: backbone only */
    float in_mean, in_std;      /* input normalisation: x = (u/255 - mean)/std */
    int32_t nnames;
    char **names;               /* class names (nnames), owned; may be NULL */
    bool training;
    bool bn_eval;           /* batch norms keep their running statistics in training */
    bool train_winograd;    /* training convolutions may use Winograd (sm_model_set_train_winograd) */
    int frozen_stages;
    bool fuse;                  /* eval: conv-bn[-relu] in one pass (default; tests turn it off) */
    uint64_t step_seed;         /* varies per step: dropout masks */
    /* plan: a training arena (every node's activation, gradient slots reused
     * by lifetime) or, for a model only used for inference, activation slots
     * reused once their last reader has run. A plan records the batch, the
     * thread count its scratch was sized for and (inference) whether it
     * fused; a call that differs re-plans. */
    int64_t plan_n;
    int plan_threads;
    bool plan_infer, plan_fuse;
    float *arena;
    size_t arena_floats;
    float **acts;               /* acts[i]: output of node i, (C,N,H,W) or (N,F); NULL when
                                 * fused away (inference) */
    float **grad;               /* grad[i]: dL/d(output of node i) (training) */
    float *xin;                 /* (C,N,H,W) copy of the input when C > 1 */
    float *scratch;
    size_t scratch_floats;
    const float *run_x;         /* the (C,N,H,W) input of the last training-mode sm_model_run */
    int64_t run_n;
    bool backward_ready;        /* a training forward waits for its one backward */
};

/* Declares a tensor; returns its id, or -2 when out of memory. */
int sm_model_add_tensor(sm_model *m, const char *name, bool trainable, int ndim,
                        const int64_t *shape);
static inline float *sm_model_param(sm_model *m, int id)
{
    return m->tensors[id].trainable ? m->params + m->tensors[id].off : m->state + m->tensors[id].off;
}
static inline float *sm_model_grad(sm_model *m, int id) { return m->grads + m->tensors[id].off; }
/* sm_model_new; with init false every tensor stays 0, for a caller that
 * fills all of them (a checkpoint load: a ResNet's random init is ~0.5 s). */
sm_status sm_model_build(sm_model **out, const char *spec, const sm_head_config *head,
                         int64_t nclasses, uint64_t seed, bool init, sm_err *err);
/* The forward of a planned model on x (N,C,H,W), in its current mode; the
 * output node's activation. */
const float *sm_model_forward(sm_model *m, const float *x, int64_t n);

#endif
