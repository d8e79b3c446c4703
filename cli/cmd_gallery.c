/* cmd_gallery.c - the gallery verbs: `simile enroll`, `remove`, `items`,
 * `search`, `calibrate`.
 *
 *   simile enroll    --gallery G --model M IMAGE... --label NAME
 *   simile remove    --gallery G ID...
 *   simile items     --gallery G [--json]
 *   simile search    --gallery G --model M IMAGE... [-k 5] [--json] [--threshold T]
 *   simile calibrate --gallery G --model M --data SPEC:split [--far 0.01]
 *
 * Images are read once: their bytes are hashed (SHA-256, the gallery's
 * content hash) and decoded from memory (simile.h, "images"), converted to the model's
 * input and embedded in batches. Every image is decoded and embedded before
 * the gallery is opened for writing, so a corrupt image ends the command with
 * the gallery untouched. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simile.h"
#include "status.h"

/* ------------------------------------------------------------ arguments */

/* Splits argv[2..argc) into options (for parse()) and positional words.
 * "-k" is accepted as "--k"; everything after "--" is positional. The
 * returned arrays point into argv (argv itself is not modified). */
static void split_args(int argc, char **argv, const opt *opts, char ***oargv, int *oargc, char ***pos, int *npos)
{
    char **ov = calloc((size_t)argc + 1, sizeof *ov), **pv = calloc((size_t)argc + 1, sizeof *pv);
    if (!ov || !pv) {
        fprintf(stderr, "%s: out of memory\n", prog_cmd);
        exit(1);
    }
    int no = 0, np = 0;
    ov[no++] = argv[0];
    ov[no++] = argv[1];
    bool rest = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (rest) { pv[np++] = argv[i]; continue; }
        if (!strcmp(a, "--")) { rest = true; continue; }
        if (!strcmp(a, "-k")) {
            static char kk[] = "--k";
            ov[no++] = kk;
            if (i + 1 < argc) ov[no++] = argv[++i];
            continue;
        }
        if (strncmp(a, "--", 2) != 0 && strcmp(a, "-h") != 0) { pv[np++] = argv[i]; continue; }
        ov[no++] = argv[i];
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (const opt *o = opts; o->name; o++)
            if (strlen(o->name) == len && !strncmp(o->name, name, len)) {
                if (o->arg && !eq && i + 1 < argc) ov[no++] = argv[++i];
                break;
            }
    }
    *oargv = ov;
    *oargc = no;
    *pos = pv;
    *npos = np;
}

static void die_oom(void)
{
    sm_err e = {.code = SM_ERR_NOMEM};
    snprintf(e.msg, sizeof e.msg, "out of memory");
    die(&e, NULL);
}

static sm_model *load_model(const opt *o, sm_gallery_model *gm)
{
    const char *mp = get(o, "model", NULL);
    if (!mp) die_usage("--model is required");
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, mp, &err)) die(&err, NULL);
    sm_model_identity(m, gm->id);
    gm->dim = sm_model_dim(m);
    const char *slash = strrchr(mp, '/');
    gm->name = slash ? slash + 1 : mp;
    return m;
}

/* Reads, hashes, decodes and embeds files[0..n) into emb (n, D); hash (n,
 * 32 bytes each) may be NULL. Exits with the file named on any failure. */
static void embed_files(sm_model *m, char *const *files, int64_t n, float *emb, uint8_t *hash, const char *hint)
{
    int64_t c, h, w;
    sm_model_input_shape(m, &c, &h, &w);
    int64_t per = c * h * w, bs = 64;
    float *x = malloc(sizeof(float) * (size_t)(per * bs));
    if (!x) die_oom();
    sm_err err = {0};
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
        int64_t nb = n - b0 < bs ? n - b0 : bs;
        for (int64_t i = 0; i < nb; i++) {
            const char *path = files[b0 + i];
            FILE *f = fopen(path, "rb");
            if (!f) {
                snprintf(err.msg, sizeof err.msg, "cannot open image '%s': %s", path, strerror(errno));
                die(&err, NULL);
            }
            struct stat sb;
            if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > SM_IMAGE_MAX_FILE) {
                fclose(f);
                snprintf(err.msg, sizeof err.msg, "'%s' is not a regular image file of at most %zu bytes", path,
                         (size_t)SM_IMAGE_MAX_FILE);
                die(&err, NULL);
            }
            size_t size = (size_t)sb.st_size;
            uint8_t *buf = malloc(size ? size : 1);
            if (!buf) die_oom();
            size_t got = fread(buf, 1, size, f);
            fclose(f);
            if (got != size) {
                snprintf(err.msg, sizeof err.msg, "cannot read image '%s'", path);
                die(&err, NULL);
            }
            if (hash) {
                sm_sha256 s;
                sm_sha256_init(&s);
                sm_sha256_update(&s, buf, size);
                sm_sha256_final(&s, hash + 32 * (b0 + i));
            }
            sm_image img = {0};
            if (sm_image_decode(buf, size, &img, &err) || sm_image_to_model_input(m, &img, x + i * per, &err)) {
                sm_fail_prefix(&err, err.code, "image '%s': ", path);
                die(&err, hint);
            }
            sm_image_free(&img);
            free(buf);
        }
        if (sm_model_embed(m, x, nb, emb + b0 * sm_model_dim(m), &err)) die(&err, NULL);
    }
    free(x);
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!s) die_oom();
    puts(s);
    free(s);
    json_decref(j);
}

static const char *dtype_name(sm_gallery_dtype t) { return t == SM_GALLERY_I8 ? "int8" : "float32"; }

/* ------------------------------------------------------------------ enroll */
int cmd_enroll(int argc, char **argv)
{
    opt o[] = {{"gallery", "G", "gallery file (created if missing) (required)", NULL},
               {"model", "M", "checkpoint that embeds the images (required)", NULL},
               {"label", "NAME", "label (name) of the items enrolled", NULL},
               {"label-from-dir", NULL, "label each image by the name of its directory (root/<label>/x.png)", NULL},
               {"dtype", "T", "embeddings of a new gallery: float32 (default) or int8 (4x smaller)", NULL},
               {"commit-every", "N", "commit every N images (default: all in one transaction)", NULL},
               {"json", NULL, "print one JSON object", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile enroll";
    char **ov, **files;
    int oc, nf;
    split_args(argc, argv, o, &ov, &oc, &files, &nf);
    parse(oc, ov, 2, o, "simile enroll --gallery G --model M IMAGE... --label NAME",
          "Adds one item per image (PNG or JPEG) to the gallery, in one transaction: all or nothing.\n"
          "Enrolling an image that is already there (same bytes, same label) is a no-op that reports its id.");
    set_threads(o);
    if (!get(o, "gallery", NULL)) die_usage("--gallery is required");
    if (nf < 1) die_usage("no images given");
    const char *label = get(o, "label", NULL);
    bool from_dir = get(o, "label-from-dir", NULL) != NULL;
    if (!label == !from_dir) die_usage("give either --label NAME or --label-from-dir");
    if (label && !*label) die_usage("--label must not be empty");
    const char *dt = get(o, "dtype", "float32");
    if (strcmp(dt, "float32") && strcmp(dt, "int8")) die_usage("--dtype must be float32 or int8 (got '%s')", dt);
    int64_t every = get_int(o, "commit-every", nf, 1, INT64_MAX);
    sm_gallery_model gm;
    sm_model *m = load_model(o, &gm);
    sm_err err = {0};
    const char *gp = get(o, "gallery", NULL);
    /* an existing gallery of another model: refused before any image work */
    struct stat sb;
    if (stat(gp, &sb) == 0) {
        sm_gallery *probe = NULL;
        sm_gallery_options ro = {.readonly = true};
        if (sm_gallery_open(&probe, gp, &gm, &ro, &err)) die(&err, NULL);
        sm_gallery_close(probe);
    }
    int64_t d = gm.dim;
    float *emb = malloc(sizeof(float) * (size_t)(every * d));
    uint8_t *hash = malloc(32 * (size_t)every);
    char **src = calloc((size_t)every, sizeof *src), **labs = calloc((size_t)every, sizeof *labs);
    sm_gallery_item *items = calloc((size_t)every, sizeof *items);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)nf);
    if (!emb || !hash || !src || !labs || !items || !ids) die_oom();
    sm_gallery *g = NULL;
    sm_gallery_options co = {.create = true, .dtype = strcmp(dt, "int8") ? SM_GALLERY_F32 : SM_GALLERY_I8};
    int64_t total_added = 0;
    json_t *jitems = json_array();
    for (int64_t c0 = 0; c0 < nf; c0 += every) {
        int64_t nc = nf - c0 < every ? nf - c0 : every;
        embed_files(m, files + c0, nc, emb, hash,
                    c0 > 0 ? "the images before this batch were committed; the rest were not"
                           : "every image must be a readable PNG or JPEG; nothing was enrolled");
        for (int64_t i = 0; i < nc; i++) {
            const char *path = files[c0 + i];
            char *rp = realpath(path, NULL);
            src[i] = rp ? rp : strdup(path);
            if (!src[i]) die_oom();
            if (from_dir) {
                char *tmp = strdup(src[i]);
                if (!tmp) die_oom();
                char *slash = strrchr(tmp, '/');
                if (slash) *slash = '\0';
                char *parent = strrchr(tmp, '/');
                labs[i] = strdup(parent ? parent + 1 : tmp);
                free(tmp);
                if (!labs[i]) die_oom();
                if (!*labs[i]) {
                    snprintf(err.msg, sizeof err.msg, "image '%s' has no directory to take a label from", path);
                    die(&err, NULL);
                }
            }
            items[i] = (sm_gallery_item){.label = from_dir ? labs[i] : label, .source = src[i], .content = hash + 32 * i,
                                         .embedding = emb + i * d};
        }
        if (!g && sm_gallery_open(&g, gp, &gm, &co, &err)) die(&err, NULL);
        int64_t added = 0;
        if (sm_gallery_enroll(g, items, nc, ids + c0, &added, &err)) die(&err, c0 > 0 ? "the images before this batch were committed" : NULL);
        total_added += added;
        for (int64_t i = 0; i < nc; i++) {
            if (get(o, "json", NULL))
                json_array_append_new(jitems, json_pack("{sIsssss}", "id", (json_int_t)ids[c0 + i], "label", items[i].label,
                                                        "source", items[i].source));
            else
                printf("%lld\t%s\t%s\n", (long long)ids[c0 + i], items[i].label, files[c0 + i]);
            free(src[i]);
            free(labs[i]);
            src[i] = labs[i] = NULL;
        }
        fflush(stdout);
    }
    sm_gallery_info info;
    if (sm_gallery_info_get(g, &info, &err)) die(&err, NULL);
    if (get(o, "json", NULL))
        print_json(json_pack("{sssIsIsIso}", "gallery", gp, "added", (json_int_t)total_added, "already",
                             (json_int_t)(nf - total_added), "count", (json_int_t)info.count, "items", jitems));
    else
        json_decref(jitems);
    fprintf(stderr, "simile enroll: %lld new, %lld already enrolled; '%s' holds %lld items (%s, %lld-d)\n",
            (long long)total_added, (long long)(nf - total_added), gp, (long long)info.count, dtype_name(info.dtype),
            (long long)info.dim);
    sm_gallery_close(g);
    sm_model_free(m);
    free(emb);
    free(hash);
    free(src);
    free(labs);
    free(items);
    free(ids);
    free(ov);
    free(files);
    return 0;
}

/* ------------------------------------------------------------------ remove */
int cmd_remove(int argc, char **argv)
{
    opt o[] = {{"gallery", "G", "gallery file (required)", NULL}, {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile remove";
    char **ov, **words;
    int oc, nw;
    split_args(argc, argv, o, &ov, &oc, &words, &nw);
    parse(oc, ov, 2, o, "simile remove --gallery G ID...",
          "Removes items by id (see 'simile items'), in one transaction: an unknown id removes nothing.");
    if (!get(o, "gallery", NULL)) die_usage("--gallery is required");
    if (nw < 1) die_usage("no item ids given");
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)nw);
    if (!ids) die_oom();
    for (int i = 0; i < nw; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(words[i], &end, 10);
        if (errno || end == words[i] || *end || v < 1) die_usage("'%s' is not an item id (a positive integer)", words[i]);
        ids[i] = v;
    }
    sm_err err = {0};
    sm_gallery *g = NULL;
    const char *gp = get(o, "gallery", NULL);
    if (sm_gallery_open(&g, gp, NULL, NULL, &err)) die(&err, NULL);
    /* The service keeps a thumbnail per item in G.images/<content hash>.png:
     * note the hashes first, unlink them once the removal has committed. */
    char (*hex)[65] = calloc((size_t)nw, sizeof *hex);
    if (!hex) die_oom();
    for (int i = 0; i < nw; i++) {
        sm_gallery_entry e = {0};
        bool found = false;
        if (sm_gallery_get(g, ids[i], &e, &found, &err)) die(&err, NULL);
        if (found) memcpy(hex[i], e.content, sizeof hex[i]);
        sm_gallery_entry_clear(&e);
    }
    if (sm_gallery_remove(g, ids, nw, &err)) die(&err, NULL);
    for (int i = 0; i < nw; i++) {
        char path[4096];
        if (sm_serve_thumb_path(path, sizeof path, gp, hex[i]))
            (void)unlink(path);   /* usually absent: only the service writes thumbnails */
    }
    free(hex);
    sm_gallery_info info;
    if (sm_gallery_info_get(g, &info, &err)) die(&err, NULL);
    fprintf(stderr, "simile remove: removed %d item%s; '%s' holds %lld items\n", nw, nw == 1 ? "" : "s",
            get(o, "gallery", NULL), (long long)info.count);
    sm_gallery_close(g);
    free(ids);
    free(ov);
    free(words);
    return 0;
}

/* ------------------------------------------------------------------- items */
int cmd_items(int argc, char **argv)
{
    opt o[] = {{"gallery", "G", "gallery file (required)", NULL},
               {"after", "ID", "list items with ids above this (paging; default 0)", NULL},
               {"limit", "N", "list at most N items (default: all)", NULL},
               {"json", NULL, "print one JSON object", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile items";
    parse(argc, argv, 2, o, "simile items --gallery G [--json] [--after ID --limit N]",
          "Lists the gallery's items (id, label, source) in id order, and what the gallery holds.");
    if (!get(o, "gallery", NULL)) die_usage("--gallery is required");
    int64_t after = get_int(o, "after", 0, 0, INT64_MAX), limit = get_int(o, "limit", INT64_MAX, 1, INT64_MAX);
    sm_err err = {0};
    sm_gallery *g = NULL;
    sm_gallery_options ro = {.readonly = true};
    const char *gp = get(o, "gallery", NULL);
    if (sm_gallery_open(&g, gp, NULL, &ro, &err)) die(&err, NULL);
    sm_gallery_info info;
    if (sm_gallery_info_get(g, &info, &err)) die(&err, NULL);
    bool js = get(o, "json", NULL) != NULL;
    json_t *arr = js ? json_array() : NULL;
    if (!js) {
        printf("# gallery %s: %lld items, %lld-d %s, model %.12s (%s), generation %lld", gp, (long long)info.count,
               (long long)info.dim, dtype_name(info.dtype), info.model_id, info.model_name, (long long)info.generation);
        if (info.has_threshold) printf(", threshold %.4f (FAR %g)", (double)info.threshold, info.threshold_far);
        printf("\n# id\tlabel\tsource\n");
    }
    int64_t shown = 0;
    while (shown < limit) {
        sm_gallery_entry *e = NULL;
        int64_t ne = 0, page = limit - shown < 1000 ? limit - shown : 1000;
        if (sm_gallery_items(g, after, page, &e, &ne, &err)) die(&err, NULL);
        for (int64_t i = 0; i < ne; i++) {
            if (js) {
                json_t *it = json_pack("{sIssss?sssI}", "id", (json_int_t)e[i].id, "label", e[i].label, "source",
                                       e[i].source, "content_sha256", e[i].content, "created", (json_int_t)e[i].created);
                json_array_append_new(arr, it);
            } else {
                printf("%lld\t%s\t%s\n", (long long)e[i].id, e[i].label, e[i].source ? e[i].source : "-");
            }
            after = e[i].id;
        }
        sm_gallery_entries_free(e, ne);
        shown += ne;
        if (ne < page) break;
    }
    if (js) {
        json_t *j = json_pack("{sssIsIsssssssIso}", "gallery", gp, "count", (json_int_t)info.count, "dim",
                              (json_int_t)info.dim, "dtype", dtype_name(info.dtype), "model_id", info.model_id,
                              "model_name", info.model_name, "generation", (json_int_t)info.generation, "items", arr);
        json_object_set_new(j, "threshold", info.has_threshold ? json_real(info.threshold) : json_null());
        print_json(j);
    }
    sm_gallery_close(g);
    return 0;
}

/* ------------------------------------------------------------------ search */

static bool parse_index(const char *s, sm_gallery_index *out)
{
    static const char *names[] = {"auto", "exact", "int8", "hnsw"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (sm_gallery_index)i;
            return true;
        }
    return false;
}

int cmd_search(int argc, char **argv)
{
    opt o[] = {{"gallery", "G", "gallery file (required)", NULL},
               {"model", "M", "checkpoint that embeds the queries: the gallery's model (required)", NULL},
               {"k", "K", "results per query (-k works too; default 5)", NULL},
               {"threshold", "T", "answer 'unknown' when the best similarity is <= T (default: the calibrated one; 'none': never)", NULL},
               {"index", "KIND", "auto (default), exact, int8 or hnsw", NULL},
               {"ef", "N", "HNSW search list size (default 64)", NULL},
               {"rerank", "N", "int8 index on a float32 gallery: re-score the best N with floats (default 0)", NULL},
               {"json", NULL, "print one JSON object", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile search";
    char **ov, **files;
    int oc, nf;
    split_args(argc, argv, o, &ov, &oc, &files, &nf);
    parse(oc, ov, 2, o, "simile search --gallery G --model M IMAGE... [-k 5] [--json] [--threshold T]",
          "Finds the k most similar gallery items to each image (cosine similarity of embeddings). With a\n"
          "threshold (calibrated by 'simile calibrate', or given) the answer is the best item's label when\n"
          "its similarity is above the threshold, else 'unknown'.");
    set_threads(o);
    if (!get(o, "gallery", NULL)) die_usage("--gallery is required");
    if (nf < 1) die_usage("no query images given");
    int64_t k = get_int(o, "k", 5, INT64_MIN, INT64_MAX);
    if (k < 1 || k > SM_GALLERY_MAX_K) die_usage("-k must be in 1..%d (got %lld)", SM_GALLERY_MAX_K, (long long)k);
    sm_gallery_search_opts so = {.ef = get_int(o, "ef", 64, 1, 100000), .rerank = get_int(o, "rerank", 0, 0, SM_GALLERY_MAX_K)};
    if (!parse_index(get(o, "index", "auto"), &so.index)) die_usage("--index must be auto, exact, int8 or hnsw");
    const char *targ = get(o, "threshold", NULL);
    bool use_t = false;
    float t = 0;
    if (targ && strcmp(targ, "none")) {
        char *end;
        double v = strtod(targ, &end);
        if (end == targ || *end || !isfinite(v)) die_usage("--threshold must be a number or 'none' (got '%s')", targ);
        t = (float)v;
        use_t = true;
    }
    sm_gallery_model gm;
    sm_model *m = load_model(o, &gm);
    sm_err err = {0};
    const char *gp = get(o, "gallery", NULL);
    sm_gallery *g = NULL;
    if (sm_gallery_open(&g, gp, &gm, NULL, &err)) die(&err, NULL);
    sm_gallery_info info;
    if (sm_gallery_info_get(g, &info, &err)) die(&err, NULL);
    if (!targ && info.has_threshold) {
        use_t = true;
        t = info.threshold;
    }
    int64_t d = gm.dim;
    float *q = malloc(sizeof(float) * (size_t)(nf * d)), *sims = malloc(sizeof(float) * (size_t)(nf * k));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(nf * k));
    if (!q || !sims || !ids) die_oom();
    embed_files(m, files, nf, q, NULL, "queries must be readable PNG or JPEG images");
    char note[800];
    if (sm_gallery_prepare(g, &so, note, sizeof note, &err)) die(&err, NULL);
    if (note[0]) fprintf(stderr, "simile search: %s\n", note);
    if (sm_gallery_search(g, q, nf, d, k, &so, ids, sims, &err)) die(&err, NULL);
    bool js = get(o, "json", NULL) != NULL;
    json_t *jq = js ? json_array() : NULL;
    for (int64_t i = 0; i < nf; i++) {
        json_t *res = js ? json_array() : NULL;
        char *best = NULL;
        for (int64_t j = 0; j < k; j++) {
            int64_t id = ids[i * k + j];
            if (id < 0) break;
            sm_gallery_entry e;
            bool found;
            if (sm_gallery_get(g, id, &e, &found, &err)) die(&err, NULL);
            const char *lab = found ? e.label : "?";
            float s = sims[i * k + j];
            bool acc = !use_t || s > t;
            if (j == 0 && found) {
                best = strdup(lab);
                if (!best) die_oom();
            }
            if (js) {
                json_t *r = json_pack("{sIsIssss?sf}", "rank", (json_int_t)(j + 1), "id", (json_int_t)id, "label", lab,
                                      "source", found ? e.source : NULL, "similarity", (double)s);
                json_object_set_new(r, "accepted", json_boolean(acc));
                json_array_append_new(res, r);
            } else {
                if (j == 0) {
                    if (acc) printf("%s: %s (item %lld, similarity %.4f)\n", files[i], lab, (long long)id, (double)s);
                    else printf("%s: unknown (best: %s, item %lld, similarity %.4f <= threshold %.4f)\n", files[i], lab,
                                (long long)id, (double)s, (double)t);
                }
                printf("  %lld\t%.4f\t%lld\t%s\n", (long long)(j + 1), (double)s, (long long)id, lab);
            }
            if (found) sm_gallery_entry_clear(&e);
        }
        if (!js && ids[i * k] < 0) printf("%s: unknown (the gallery is empty)\n", files[i]);
        if (js) {
            bool known = ids[i * k] >= 0 && (!use_t || sims[i * k] > t);
            json_t *jo = json_pack("{ss}", "query", files[i]);
            json_object_set_new(jo, "answer", known && best ? json_string(best) : json_null());
            json_object_set_new(jo, "unknown", json_boolean(!known));
            json_object_set_new(jo, "results", res);
            json_array_append_new(jq, jo);
        }
        free(best);
    }
    if (js) {
        json_t *j = json_pack("{sssIsIss}", "gallery", gp, "count", (json_int_t)info.count, "k", (json_int_t)k, "index",
                              get(o, "index", "auto"));
        json_object_set_new(j, "threshold", use_t ? json_real(t) : json_null());
        json_object_set_new(j, "queries", jq);
        print_json(j);
    }
    sm_gallery_close(g);
    sm_model_free(m);
    free(q);
    free(sims);
    free(ids);
    free(ov);
    free(files);
    return 0;
}

/* --------------------------------------------------------------- calibrate */
int cmd_calibrate(int argc, char **argv)
{
    opt o[] = {{"gallery", "G", "gallery file (required)", NULL},
               {"model", "M", "the gallery's model (required)", NULL},
               {"data", "SPEC:split", "labelled images to calibrate on, e.g. fashion-mnist:test (required)", NULL},
               {"classes", "LIST", "use these classes only (e.g. 0-5: known classes, unseen by the gallery)", NULL},
               {"far", "F", "target false-accept rate of impostor pairs (default 0.01)", NULL},
               {"max-pairs", "N", "at most N genuine and N impostor pairs, drawn at random (default 200000)", NULL},
               {"seed", "S", "seed of the pair draw (default 1)", NULL},
               {"json", NULL, "print one JSON object", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile calibrate";
    parse(argc, argv, 2, o, "simile calibrate --gallery G --model M --data fashion-mnist:test [--far 0.01]",
          "Picks the similarity threshold for a target false-accept rate from labelled images: every pair of\n"
          "images is genuine (same label) or impostor; the threshold is the smallest one that accepts at most\n"
          "FAR of the impostor pairs (accept iff similarity > threshold). Stores it in the gallery, where\n"
          "'simile search' uses it to answer 'unknown'.");
    set_threads(o);
    if (!get(o, "gallery", NULL)) die_usage("--gallery is required");
    if (!get(o, "data", NULL)) die_usage("--data is required (labelled images, e.g. fashion-mnist:test)");
    double far = get_num(o, "far", 0.01, 0.0, 1.0);
    int64_t maxp = get_int(o, "max-pairs", 200000, 1, INT64_MAX);
    uint64_t seed = (uint64_t)get_int(o, "seed", 1, 0, INT64_MAX);
    sm_gallery_model gm;
    sm_model *m = load_model(o, &gm);
    sm_err err = {0};
    const char *gp = get(o, "gallery", NULL);
    sm_gallery *g = NULL;
    if (sm_gallery_open(&g, gp, &gm, NULL, &err)) die(&err, NULL);
    sm_dataset ds = {0};
    if (sm_dataset_open_split(get(o, "data", NULL), SM_SPLIT_TEST, &ds, &err)) die(&err, NULL);
    subset(&ds, get(o, "classes", NULL), "--classes");
    if (ds.n < 2) {
        snprintf(err.msg, sizeof err.msg, "calibration needs at least 2 images (got %lld)", (long long)ds.n);
        die(&err, NULL);
    }
    int64_t d = gm.dim;
    float *emb = malloc(sizeof(float) * (size_t)(ds.n * d));
    if (!emb) die_oom();
    sm_pairs pairs;
    sm_roc_point pt;
    if (sm_embed_dataset(m, &ds, emb, &err) ||
        sm_eval_pairs(&pairs, emb, ds.labels, ds.n, d, maxp, maxp, seed, &err))
        die(&err, NULL);
    if (sm_eval_roc(&pt, pairs.sim, pairs.same, pairs.n, &far, 1, &err))
        die(&err, "calibration needs images of at least two classes, and two of one class");
    if (!isfinite(pt.threshold)) {
        snprintf(err.msg, sizeof err.msg, "FAR %g accepts every impostor pair: no threshold to store (ask for a smaller --far)", far);
        die(&err, NULL);
    }
    char desc[512];
    snprintf(desc, sizeof desc, "%s%s%s: %lld images, %lld genuine / %lld impostor pairs, seed %llu", get(o, "data", NULL),
             get(o, "classes", NULL) ? " classes " : "", get(o, "classes", ""), (long long)ds.n, (long long)pairs.npos,
             (long long)pairs.nneg, (unsigned long long)seed);
    if (sm_gallery_set_threshold(g, pt.threshold, pt.far, pt.tar, desc, &err)) die(&err, NULL);
    if (get(o, "json", NULL))
        print_json(json_pack("{sssfsfsfsfsIsIss}", "gallery", gp, "threshold", (double)pt.threshold, "far_target", far,
                             "far", pt.far, "tar", pt.tar, "genuine_pairs", (json_int_t)pairs.npos, "impostor_pairs",
                             (json_int_t)pairs.nneg, "data", desc));
    else
        printf("threshold %.6f: FAR %.4f (target %.4f), TAR %.4f on %s; stored in %s\n", (double)pt.threshold, pt.far,
               far, pt.tar, desc, gp);
    sm_pairs_free(&pairs);
    free(emb);
    sm_dataset_free(&ds);
    sm_gallery_close(g);
    sm_model_free(m);
    return 0;
}
