/* layers.h - layer kinds (private). See layers.c. */
#ifndef SM_LAYERS_H
#define SM_LAYERS_H
#include <stdio.h>
#include "model.h"

/* The vtable of a layer kind by its spec name ("conv"), or NULL. */
const struct sm_layer_ops *sm_layer_ops_find(const char *name);
/* Space-separated list of kinds, for messages. */
const char *sm_layer_kinds(void);
#endif
