/* cmd_embed.c - `simile embed`. */
#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "simile.h"

/* ------------------------------------------------------------------ embed */
int cmd_embed(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC[:split]", "data set and split (default fashion-mnist:test)", NULL},
               {"out", "PATH", "output .npy file, (N, D) float32 (required)", NULL},
               {"labels", "PATH", "also write the labels as a (N, 1) float32 .npy", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile embed";
    parse(argc, argv, 2, o, "simile embed --model M --data fashion-mnist:test --out E.npy",
          "Writes L2-normalised embeddings of a data split to a .npy file.");
    set_threads(o);
    if (!get(o, "model", NULL) || !get(o, "out", NULL)) die_usage("--model and --out are required");
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, get(o, "model", NULL), &err)) die(&err, NULL);
    sm_dataset ds = {0};
    if (sm_dataset_open_split(get(o, "data", "fashion-mnist:test"), SM_SPLIT_TEST, &ds, &err)) die(&err, NULL);
    int64_t d = sm_model_dim(m);
    float *emb = malloc(sizeof(float) * (size_t)(ds.n * d + 1));
    if (!emb) { snprintf(err.msg, sizeof err.msg, "out of memory"); die(&err, NULL); }
    if (sm_embed_dataset(m, &ds, emb, &err) || sm_npy_write_f32(get(o, "out", NULL), emb, ds.n, d, &err))
        die(&err, NULL);
    if (get(o, "labels", NULL)) {
        float *lab = malloc(sizeof(float) * (size_t)(ds.n + 1));
        for (int64_t i = 0; lab && i < ds.n; i++) lab[i] = (float)ds.labels[i];
        if (!lab || sm_npy_write_f32(get(o, "labels", NULL), lab, ds.n, 1, &err)) die(&err, NULL);
        free(lab);
    }
    fprintf(stderr, "simile embed: wrote %lld x %lld embeddings to %s\n", (long long)ds.n, (long long)d,
            get(o, "out", NULL));
    free(emb);
    sm_dataset_free(&ds);
    sm_model_free(m);
    return 0;
}
