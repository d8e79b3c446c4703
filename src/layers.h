/* layers.h - layer kinds (private). See layers.c. */
#ifndef SM_LAYERS_H
#define SM_LAYERS_H
#include <stdio.h>
#include "model.h"

/* The vtable of a layer kind by its spec name ("conv"), or NULL. */
const struct sm_layer_ops *sm_layer_ops_find(const char *name);
/* Space-separated list of kinds, for messages. */
const char *sm_layer_kinds(void);
/* Eval mode only: how many layers from i form conv, bn[, relu] (3 or 2), to
 * be run as one pass by sm_layers_forward_fused (relu: the count was 3),
 * which writes the last one's activation to out; 0 when they do not. */
int sm_layers_fusable(const sm_model *m, int i);
void sm_layers_forward_fused(sm_model *m, int i, bool relu, const float *in, float *out, int64_t n);
/* Floats of l->save that an eval-mode forward of batch n writes. */
size_t sm_layer_eval_save(const sm_layer *l, int64_t n);
#endif
