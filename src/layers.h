/* layers.h - layer kinds (private). See layers.c. */
#ifndef SM_LAYERS_H
#define SM_LAYERS_H
#include <stdio.h>
#include "model.h"

/* The vtable of a layer kind by its spec name ("conv"), or NULL. */
const struct sm_layer_ops *sm_layer_ops_find(const char *name);
/* Space-separated list of kinds, for messages. */
const char *sm_layer_kinds(void);
/* Eval mode only: how many nodes from i form conv, bn[, relu|relu6] (3 or
 * 2), each the only reader of the one before, to be run as one pass by
 * sm_layers_forward_fused (count: that number), which writes the last one's
 * activation to out; 0 when they do not. */
int sm_layers_fusable(const sm_model *m, int i);
void sm_layers_forward_fused(sm_model *m, int i, int count, const float *in, float *out, int64_t n);
/* Whether l is a batch norm (its running statistics, num_batches_tracked). */
bool sm_layer_is_bn(const sm_layer *l);
/* Floats of l->save that an eval-mode forward of batch n writes. */
size_t sm_layer_eval_save(const sm_layer *l, int64_t n);
#endif
