/* cmd_embed.c - `simile embed`: a data split, or a float32 .npy batch as it is. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "simile.h"

/* Writes the output of the model at path `model` for the .npy at `path`, x (N, C, H, W)
 * (read first: a bad input fails before the model loads), as (N, D) .npy: L2-normalised
 * (sm_model_embed), or raw (sm_model_run in eval mode, in chunks). */
static void embed_input(const char *model, const char *path, bool raw, const char *out)
{
    sm_err err = {0};
    float *x = NULL;
    int64_t s[4], c, h, w;
    if (sm_npy_read_f32_nd(path, &x, 4, "(N, C, H, W)", s, &err)) die(&err, "--input takes a float32 array (N, C, H, W): np.save(path, x.astype('<f4'))");
    sm_model *m = NULL;
    if (sm_model_load(&m, model, &err)) die(&err, NULL);
    int64_t d = sm_model_dim(m);
    sm_model_input_shape(m, &c, &h, &w);
    if (s[1] != c || s[2] != h || s[3] != w) {
        snprintf(err.msg, sizeof err.msg, "'%.300s' is (%lld, %lld, %lld, %lld), the model takes (N, %lld, %lld, %lld)", path,
                 (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], (long long)c, (long long)h, (long long)w);
        die(&err, "--input is used as it is: no resizing, no normalisation");
    }
    int64_t n = s[0], in = c * h * w;
    float *e = malloc(sizeof(float) * (size_t)(n * d + 1));
    if (!e) { snprintf(err.msg, sizeof err.msg, "out of memory"); die(&err, NULL); }
    if (!raw && n && sm_model_embed(m, x, n, e, &err)) die(&err, NULL);
    for (int64_t i = 0; raw && i < n; i += 256) {
        int64_t b = n - i < 256 ? n - i : 256;
        const float *y;
        if (sm_model_run(m, x + i * in, b, &y, &err)) die(&err, NULL);
        memcpy(e + i * d, y, sizeof(float) * (size_t)(b * d));
    }
    if (sm_npy_write_f32(out, e, n, d, &err)) die(&err, NULL);
    fprintf(stderr, "simile embed: wrote %lld x %lld %s to %s\n", (long long)n, (long long)d,
            raw ? "raw outputs" : "embeddings", out);
    free(e);
    free(x);
    sm_model_free(m);
}

/* ------------------------------------------------------------------ embed */
int cmd_embed(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC[:split]", "data set and split (default fashion-mnist:test)", NULL},
               {"input", "X.npy", "instead of --data: float32 (N, C, H, W) network inputs, used as they are", NULL},
               {"raw", "0|1", "with --input: 1 writes the unnormalised network output", NULL},
               {"out", "PATH", "output .npy file, (N, D) float32 (required)", NULL},
               {"labels", "PATH", "also write the labels as a (N, 1) float32 .npy", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile embed";
    parse(argc, argv, 2, o, "simile embed --model M (--data fashion-mnist:test | --input X.npy) --out E.npy",
          "Writes L2-normalised embeddings of a data split, or of a .npy batch of inputs, to a .npy file.");
    set_threads(o);
    if (!get(o, "model", NULL) || !get(o, "out", NULL)) die_usage("--model and --out are required");
    bool raw = get_int(o, "raw", 0, 0, 1) != 0;
    if (get(o, "input", NULL) && (get(o, "data", NULL) || get(o, "labels", NULL)))
        die_usage("--input replaces --data (and has no --labels)");
    if (raw && !get(o, "input", NULL)) die_usage("--raw goes with --input");
    if (get(o, "input", NULL)) {
        embed_input(get(o, "model", NULL), get(o, "input", NULL), raw, get(o, "out", NULL));
        return 0;
    }
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, get(o, "model", NULL), &err)) die(&err, NULL);
    sm_dataset ds = {0};
    if (sm_dataset_open_split(get(o, "data", "fashion-mnist:test"), SM_SPLIT_TEST, &ds, &err)) die(&err, NULL);
    zoo_fit_data(m, &ds);
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
