/* layers.h - layer kinds (private). See layers.c. */
#ifndef SM_LAYERS_H
#define SM_LAYERS_H
#include <stdio.h>
#include "model.h"

/* The vtable of a layer kind by its spec name ("conv"), or NULL. */
const struct sm_layer_ops *sm_layer_ops_find(const char *name);
/* Space-separated list of kinds, for messages. */
const char *sm_layer_kinds(void);
/* Eval mode only: runs layers i, i+1[, i+2] = conv, bn[, relu] as one fused
 * pass on input `in` (batch n), writing the last one's activation. Returns
 * how many layers it ran, 0 when the layers at i do not form that pattern. */
int sm_layers_forward_fused(sm_model *m, int i, const float *in, int64_t n);
#endif
