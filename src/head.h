/* head.h - metric heads behind one interface (private).
 *
 * A head maps embeddings (N,D) and integer labels to a loss and predictions;
 * its parameters (class weights) live in the model's parameter buffer.
 * Margin heads (NormFace, CosFace, ArcFace) L2-normalise features and class
 * weights, take cos θ = x̂·ŵ_j, put a margin on the target class only and
 * scale by s; then exact cross-entropy (log-sum-exp in double). */
#ifndef SM_HEAD_H
#define SM_HEAD_H
#include "model.h"

struct sm_head {
    const struct sm_head_ops *ops;
    sm_head_config cfg;
    int64_t d, c;           /* embedding size, classes */
    int w, b;               /* tensor ids, -1 if absent */
    int64_t cap;            /* planned batch capacity */
    float *buf;             /* owned: everything below points into it */
    float *xn, *xnorm;      /* (N,D) normalised features, (N) norms */
    float *wn, *wnorm;      /* (C*K,D) normalised weights, (C*K) norms */
    float *cos;             /* (N,C) cos θ (margin heads) or logits (softmax) */
    float *dz;              /* (N,C) dL/dlogits */
    float *dphi;            /* (N) d target logit / d cos θ_target */
    float *dx, *dw;         /* (N,D), (C,D) gradient scratch */
    float *xs;              /* (N,D) scratch (L2-softmax: scaled features) */
    float *gy;              /* (N) A-Softmax: target logit / ||x|| */
    float *cosk;            /* (N,C*K) sub-center cosines, then their gradient */
    int32_t *argk;          /* (N,C) sub-center chosen per class */
    int64_t k;              /* weight rows per class (sub-centers), 1 otherwise */
    int64_t iter;           /* A-Softmax: training steps seen (λ annealing) */
    double *pair;           /* pair losses: (N,N) distances or similarities, (N,N) dL/d, (2N) scratch */
    double loss;            /* mean loss of the last forward with labels */
    int64_t correct;        /* argmax == label count of the last forward */
};

struct sm_head_ops {
    const char *name;
    bool normalized;        /* cos-based (margin) head */
    bool pairwise;          /* a pair/triplet loss: no class weights, no predictions */
    sm_status (*build)(sm_head *h, sm_model *m, sm_err *err);
    void (*init)(sm_head *h, sm_model *m, uint64_t seed);
    /* Computes cos/logits, predictions (pred may be NULL) and, when labels is
     * non-NULL, the loss and dz for backward. */
    void (*forward)(sm_head *h, sm_model *m, const float *emb, const int32_t *labels, int64_t n,
                    int32_t *pred);
    /* demb (N,D) += dL/demb; class weight grads accumulate into m->grads. */
    void (*backward)(sm_head *h, sm_model *m, const float *emb, const int32_t *labels, int64_t n,
                     float *demb);
};

/* The pair losses (pairloss.c). */
extern const struct sm_head_ops sm_contrastive_ops, sm_triplet_ops, sm_multisim_ops;

sm_status sm_head_new(sm_head **out, sm_model *m, const sm_head_config *cfg, int64_t d,
                      int64_t nclasses, sm_err *err);
void sm_head_free(sm_head *h);
sm_status sm_head_plan(sm_head *h, int64_t n, sm_err *err);

/* The target logit's margin function, exposed for tests: phi(cos θ) and its
 * derivative with respect to cos θ, for the head's configuration. */
double sm_head_phi(const sm_head_config *cfg, double c, double *dphi_dc);
/* A-Softmax's λ after `iter` training steps. */
double sm_head_asoftmax_lambda(const sm_head_config *c, int64_t iter);
#endif
