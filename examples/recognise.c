/* recognise.c - enroll items with one image each, then recognise a query.
 *
 * The worked example of simile.h's OVERVIEW, built against the public header
 * alone (make builds it with -Iinclude and nothing from src/):
 *
 *   recognise MODEL GALLERY enroll LABEL=IMAGE...   add items (creates GALLERY)
 *   recognise MODEL GALLERY search IMAGE [K]        the K (default 3) nearest
 *
 * MODEL is a checkpoint of `simile train`; IMAGE a PNG or JPEG file of any
 * size. A search prints one line per hit, "rank label similarity id", and
 * then "unknown" when the best similarity is not above the gallery's
 * threshold (`simile calibrate` sets one). Exit status 0, or 1 with one line
 * on stderr naming the problem. */
#include <simile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const sm_err *err)
{
    fprintf(stderr, "recognise: %s: %s\n", what, err->msg);
    return 1;
}

/* The L2-normalised embedding (sm_model_dim floats) of one image file. */
static sm_status embed_file(sm_model *m, const char *path, float *emb, sm_err *err)
{
    int64_t c, h, w;
    sm_model_input_shape(m, &c, &h, &w);
    float *x = malloc((size_t)(c * h * w) * sizeof *x);
    if (!x) {
        err->code = SM_ERR_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return SM_ERR_NOMEM;
    }
    sm_image img = {0};
    sm_status st = sm_image_read(path, &img, err);
    if (!st) st = sm_image_to_model_input(m, &img, x, err);
    if (!st) st = sm_model_embed(m, x, 1, emb, err);
    sm_image_free(&img);
    free(x);
    return st;
}

static int enroll(sm_model *m, sm_gallery *g, int n, char **pairs, float *emb)
{
    sm_err err = {0};
    for (int i = 0; i < n; i++) {
        char *eq = strchr(pairs[i], '=');
        if (!eq || eq == pairs[i] || !eq[1]) {
            fprintf(stderr, "recognise: '%s' is not LABEL=IMAGE\n", pairs[i]);
            return 1;
        }
        *eq = '\0';
        const char *label = pairs[i], *path = eq + 1;
        uint8_t hash[32];
        if (embed_file(m, path, emb, &err) || sm_sha256_file(path, hash, &err)) return fail(path, &err);
        sm_gallery_item item = {.label = label, .source = path, .content = hash, .embedding = emb};
        int64_t id, added;
        if (sm_gallery_enroll(g, &item, 1, &id, &added, &err)) return fail(path, &err);
        printf("%s %s as item %lld (%s)\n", added ? "enrolled" : "already enrolled", label, (long long)id, path);
    }
    return 0;
}

static int search(sm_model *m, sm_gallery *g, const char *path, int64_t k, float *emb)
{
    sm_err err = {0};
    sm_gallery_info info;
    if (embed_file(m, path, emb, &err)) return fail(path, &err);
    if (sm_gallery_info_get(g, &info, &err)) return fail("gallery", &err);
    int64_t ids[16];
    float sims[16];
    if (sm_gallery_search(g, emb, 1, sm_model_dim(m), k, NULL, ids, sims, &err)) return fail("search", &err);
    for (int64_t r = 0; r < k && ids[r] >= 0; r++) {
        sm_gallery_entry e;
        bool found;
        if (sm_gallery_get(g, ids[r], &e, &found, &err)) return fail("gallery", &err);
        printf("%lld %s %.4f %lld\n", (long long)r + 1, found ? e.label : "?", (double)sims[r], (long long)ids[r]);
        sm_gallery_entry_clear(&e);
    }
    if (ids[0] < 0 || (info.has_threshold && !(sims[0] > info.threshold))) printf("unknown\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[3], "enroll") && strcmp(argv[3], "search"))) {
        fprintf(stderr, "usage: recognise MODEL GALLERY enroll LABEL=IMAGE...\n"
                        "       recognise MODEL GALLERY search IMAGE [K]\n");
        return 2;
    }
    bool is_search = !strcmp(argv[3], "search");
    int64_t k = 3;
    if (is_search && argc > 5) {
        char *end;
        k = strtoll(argv[5], &end, 10);
        if (*end || k < 1 || k > 16 || argc > 6) {
            fprintf(stderr, "recognise: K must be one number 1..16\n");
            return 2;
        }
    }
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, argv[1], &err)) return fail(argv[1], &err);
    /* The gallery remembers which model made its embeddings: another model
     * (other weights, other size) cannot add to it or search it. */
    sm_gallery_model gm = {.dim = sm_model_dim(m), .name = argv[1]};
    sm_model_identity(m, gm.id);
    sm_gallery_options go = {.create = !is_search, .dtype = SM_GALLERY_F32, .readonly = is_search};
    sm_gallery *g = NULL;
    float *emb = malloc((size_t)sm_model_dim(m) * sizeof *emb);
    int rc;
    if (!emb) {
        fprintf(stderr, "recognise: out of memory\n");
        rc = 1;
    } else if (sm_gallery_open(&g, argv[2], &gm, &go, &err)) {
        rc = fail(argv[2], &err);
    } else {
        rc = is_search ? search(m, g, argv[4], k, emb) : enroll(m, g, argc - 4, argv + 4, emb);
    }
    sm_gallery_close(g);
    free(emb);
    sm_model_free(m);
    return rc;
}
