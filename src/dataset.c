/* dataset.c - named and directory IDX datasets, subsets by class.
 *
 * Loads whole splits into memory (Fashion-MNIST train is 47 MB of u8): the
 * loader converts to float per batch, so the float copy never exists. */
#include "simile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idx.h"
#include "status.h"

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

void sm_dataset_free(sm_dataset *d)
{
    if (!d) return;
    if (d->class_names)
        for (int32_t i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Finds "<dir>/<prefix>-<kind>-idx<r>-ubyte[.gz]" (or the dotted spelling
 * "<prefix>-<kind>.idx<r>-ubyte"); fills path or an error naming the file. */
static sm_status find_file(const char *dir, const char *prefix, const char *kind, int rank,
                           char *path, size_t cap, sm_err *err)
{
    static const char *const forms[4] = { "%s/%s-%s-idx%d-ubyte.gz", "%s/%s-%s-idx%d-ubyte",
                                          "%s/%s-%s.idx%d-ubyte.gz", "%s/%s-%s.idx%d-ubyte" };
    for (int i = 0; i < 4; i++) {
        int n = snprintf(path, cap, forms[i], dir, prefix, kind, rank);
        if (n < 0 || (size_t)n >= cap)
            return sm_fail(err, SM_ERR_ARG, "dataset directory path '%s' is too long", dir);
        if (access(path, F_OK) == 0) return SM_OK;
    }
    return sm_fail(err, SM_ERR_IO,
                   "'%s': no %s-%s-idx%d-ubyte[.gz] file; a dataset directory holds the four IDX files "
                   "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                   "t10k-labels-idx1-ubyte (each optionally .gz)", dir, prefix, kind, rank);
}

/* Loads one split; out gets images/labels/n/c/h/w and n_classes = max+1. */
static sm_status load_split(const char *dir, const char *prefix, sm_dataset *out, sm_err *err)
{
    char ipath[4096], lpath[4096];
    sm_status st;
    if ((st = find_file(dir, prefix, "images", 3, ipath, sizeof ipath, err))) return st;
    if ((st = find_file(dir, prefix, "labels", 1, lpath, sizeof lpath, err))) return st;
    sm_idx im, lb;
    if ((st = sm_idx_read_images(ipath, &im, err))) return st;
    if ((st = sm_idx_read_labels(lpath, &lb, err))) { sm_idx_free(&im); return st; }
    if (im.n != lb.n) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s' holds %lld images but '%s' holds %lld labels; the files do not belong together",
                     ipath, (long long)im.n, lpath, (long long)lb.n);
        goto fail;
    }
    out->labels = malloc((size_t)lb.n * sizeof *out->labels);
    if (!out->labels) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory for %lld labels", (long long)lb.n); goto fail; }
    int32_t maxl = 0;
    for (int64_t i = 0; i < lb.n; i++) {
        out->labels[i] = lb.data[i];   /* u8, so always < 256 */
        if (lb.data[i] > maxl) maxl = lb.data[i];
    }
    /* (N, H, W) and (N, 1, H, W) are the same bytes: take the buffer over. */
    out->images = im.data;
    out->n = im.n; out->c = 1; out->h = im.h; out->w = im.w;
    out->n_classes = maxl + 1;
    sm_idx_free(&lb);
    return SM_OK;
fail:
    sm_idx_free(&im);
    sm_idx_free(&lb);
    return st;
}

static sm_status set_names(sm_dataset *d, int fashion, sm_err *err)
{
    d->class_names = calloc((size_t)d->n_classes, sizeof *d->class_names);
    if (!d->class_names) return sm_fail(err, SM_ERR_NOMEM, "out of memory for class names");
    for (int32_t i = 0; i < d->n_classes; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", (int)i);
        d->class_names[i] = strdup(fashion ? fashion_names[i] : num);
        if (!d->class_names[i]) return sm_fail(err, SM_ERR_NOMEM, "out of memory for class names");
    }
    return SM_OK;
}

static int contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0) return 1;
    return 0;
}

sm_status sm_dataset_open(const char *spec, sm_dataset *train, sm_dataset *test, sm_err *err)
{
    if (train) memset(train, 0, sizeof *train);
    if (test) memset(test, 0, sizeof *test);
    if (!spec || !*spec) return sm_fail(err, SM_ERR_ARG, "dataset spec is empty; use fashion-mnist, mnist or a directory");
    if (!train && !test) return sm_fail(err, SM_ERR_ARG, "sm_dataset_open: both outputs are NULL");

    const char *root = getenv("SIMILE_DATA_ROOT");
    if (!root || !*root) root = SM_DATASET_ROOT;
    char dir[4096];
    int known = 0, fashion = 0;
    if (strcmp(spec, "fashion-mnist") == 0 || strcmp(spec, "mnist") == 0) {
        known = 1;
        fashion = spec[0] == 'f';
        int n = snprintf(dir, sizeof dir, "%s/%s", root, spec);
        if (n < 0 || (size_t)n >= sizeof dir) return sm_fail(err, SM_ERR_ARG, "data root '%s' is too long", root);
        if (!is_dir(dir)) {
            if (fashion)
                return sm_fail(err, SM_ERR_IO, "Fashion-MNIST not found in '%s'; install it with: apt-get install dataset-fashion-mnist", dir);
            return sm_fail(err, SM_ERR_IO, "MNIST not found in '%s' (no Debian package ships its IDX files); put the four IDX files "
                           "(train-images-idx3-ubyte.gz, ...) in a directory and pass that directory instead", dir);
        }
    } else {
        /* Real image files (simile.h, "image folders"): a .csv manifest, or a directory without
         * IDX images - a folder per class, optionally under train/ and test/ -
         * go to the folder loader, at the size of their first image. */
        if (sm_folder_is_source(spec)) return sm_folder_open(spec, 0, 0, 0, train, test, err);
        if (!is_dir(spec))
            return sm_fail(err, SM_ERR_IO, "'%s' is neither a known dataset (fashion-mnist, mnist) nor a directory "
                           "(of IDX files or of class folders of images) nor a .csv manifest", spec);
        int n = snprintf(dir, sizeof dir, "%s", spec);
        if (n < 0 || (size_t)n >= sizeof dir) return sm_fail(err, SM_ERR_ARG, "dataset directory path is too long");
        const char *base = strrchr(spec, '/');
        /* a trailing slash: look at the whole path instead */
        fashion = contains_ci(base && base[1] ? base + 1 : spec, "fashion");
    }

    sm_status st;
    sm_dataset *outs[2] = { train, test };
    static const char *const prefixes[2] = { "train", "t10k" };
    int32_t ncls = 0;
    for (int s = 0; s < 2; s++) {
        if (!outs[s]) continue;
        if ((st = load_split(dir, prefixes[s], outs[s], err))) goto fail;
        if (outs[s]->n_classes > ncls) ncls = outs[s]->n_classes;
    }
    if (train && test && (train->h != test->h || train->w != test->w)) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': train images are %lldx%lld but test images %lldx%lld", dir,
                     (long long)train->h, (long long)train->w, (long long)test->h, (long long)test->w);
        goto fail;
    }
    if (known && ncls > 10) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': label %d is out of range for %s's 10 classes; the label files are corrupt",
                     dir, (int)ncls - 1, spec);
        goto fail;
    }
    if (known) ncls = 10;   /* a split missing class 9 still has 10 classes */
    fashion = fashion && ncls == 10;
    for (int s = 0; s < 2; s++) {
        if (!outs[s]) continue;
        outs[s]->n_classes = ncls;
        if ((st = set_names(outs[s], fashion, err))) goto fail;
    }
    return SM_OK;
fail:
    sm_dataset_free(train);
    sm_dataset_free(test);
    return st;
}

sm_status sm_dataset_parse_spec(const char *arg, char *name, size_t name_cap, sm_split *split,
                                sm_split default_split, sm_err *err)
{
    if (!arg || !*arg) return sm_fail(err, SM_ERR_ARG, "empty dataset argument; expected NAME:train or NAME:test (e.g. fashion-mnist:test)");
    size_t len = strlen(arg);
    sm_split sp = default_split;
    const char *colon = strrchr(arg, ':');
    if (colon) {
        const char *w = colon + 1;
        if (strcmp(w, "train") == 0 || strcmp(w, "test") == 0) {
            sp = w[1] == 'r' ? SM_SPLIT_TRAIN : SM_SPLIT_TEST;
            len = (size_t)(colon - arg);
        } else if (!strchr(w, '/')) {   /* a ':' inside a directory path is not a split */
            return sm_fail(err, SM_ERR_ARG, "'%s': unknown split '%s'; expected NAME:train or NAME:test (e.g. fashion-mnist:test)", arg, w);
        }
    }
    if (sp == SM_SPLIT_NONE)
        return sm_fail(err, SM_ERR_ARG, "'%s': no split; expected NAME:train or NAME:test (e.g. fashion-mnist:test)", arg);
    if (len == 0) return sm_fail(err, SM_ERR_ARG, "'%s': empty dataset name; expected NAME:train or NAME:test (e.g. fashion-mnist:test)", arg);
    if (!name || len + 1 > name_cap) return sm_fail(err, SM_ERR_ARG, "'%s': dataset name is too long (at most %zu bytes)", arg, name_cap ? name_cap - 1 : 0);
    memcpy(name, arg, len);
    name[len] = '\0';
    if (split) *split = sp;
    return SM_OK;
}

sm_status sm_dataset_open_split(const char *arg, sm_split default_split, sm_dataset *out, sm_err *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (!out) return sm_fail(err, SM_ERR_ARG, "sm_dataset_open_split: output is NULL");
    char name[4096];
    sm_split sp = SM_SPLIT_NONE;
    sm_status st = sm_dataset_parse_spec(arg, name, sizeof name, &sp, default_split, err);
    if (st) return st;
    return sm_dataset_open(name, sp == SM_SPLIT_TRAIN ? out : NULL, sp == SM_SPLIT_TEST ? out : NULL, err);
}

sm_status sm_dataset_subset(const sm_dataset *src, const int32_t *classes, int64_t k, bool relabel,
                            sm_dataset *out, sm_err *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (!src || !out || !classes || k < 1)
        return sm_fail(err, SM_ERR_ARG, "sm_dataset_subset: need a dataset, an output and at least one class");
    if (k > src->n_classes)
        return sm_fail(err, SM_ERR_ARG, "subset lists %lld classes but the dataset has only %d", (long long)k, (int)src->n_classes);
    /* map[c] = position of class c in the list, or -1 */
    int32_t *map = malloc((size_t)src->n_classes * sizeof *map);
    if (!map) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int32_t c = 0; c < src->n_classes; c++) map[c] = -1;
    sm_status st = SM_OK;
    for (int64_t j = 0; j < k; j++) {
        int32_t c = classes[j];
        if (c < 0 || c >= src->n_classes) {
            st = sm_fail(err, SM_ERR_ARG, "class %d is out of range; the dataset's classes are 0..%d", (int)c, (int)src->n_classes - 1);
            goto done;
        }
        if (map[c] >= 0) { st = sm_fail(err, SM_ERR_ARG, "class %d is listed twice in the subset", (int)c); goto done; }
        map[c] = (int32_t)j;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < src->n; i++) n += map[src->labels[i]] >= 0;
    if (n == 0) { st = sm_fail(err, SM_ERR_ARG, "no image belongs to the %lld classes listed", (long long)k); goto done; }
    size_t img = (size_t)(src->c * src->h * src->w);
    out->images = malloc((size_t)n * img);
    out->labels = malloc((size_t)n * sizeof *out->labels);
    out->n_classes = relabel ? (int32_t)k : src->n_classes;
    out->class_names = calloc((size_t)out->n_classes, sizeof *out->class_names);
    if (!out->images || !out->labels || !out->class_names) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory for a subset of %lld images", (long long)n); goto done; }
    out->n = n; out->c = src->c; out->h = src->h; out->w = src->w;
    int64_t o = 0;
    for (int64_t i = 0; i < src->n; i++) {
        int32_t m = map[src->labels[i]];
        if (m < 0) continue;
        memcpy(out->images + (size_t)o * img, src->images + (size_t)i * img, img);
        out->labels[o++] = relabel ? m : src->labels[i];
    }
    for (int32_t c = 0; c < out->n_classes; c++) {
        int32_t from = relabel ? classes[c] : c;
        char num[16];
        snprintf(num, sizeof num, "%d", (int)from);
        const char *nm = src->class_names && src->class_names[from] ? src->class_names[from] : num;
        if (!(out->class_names[c] = strdup(nm))) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory for class names"); goto done; }
    }
done:
    free(map);
    if (st) sm_dataset_free(out);
    return st;
}

sm_status sm_dataset_parse_classes(const char *s, int32_t *classes, int64_t cap, int64_t *k, sm_err *err)
{
    if (k) *k = 0;
    if (!s || !*s || !classes || !k) return sm_fail(err, SM_ERR_ARG, "empty class list; expected e.g. 0-5 or 6,7,8,9");
    const char *p = s;
    int64_t n = 0;
    for (;;) {
        long a, b;
        char *end;
        if (!isdigit((unsigned char)*p)) goto syntax;
        errno = 0;
        a = strtol(p, &end, 10);
        if (errno || a > 65535) goto syntax;
        p = end;
        b = a;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p)) goto syntax;
            b = strtol(p, &end, 10);
            if (errno || b > 65535) goto syntax;
            p = end;
            if (b < a) return sm_fail(err, SM_ERR_ARG, "class list '%s': range %ld-%ld is backwards", s, a, b);
        }
        for (long c = a; c <= b; c++) {
            if (n >= cap) return sm_fail(err, SM_ERR_ARG, "class list '%s' has more than %lld classes", s, (long long)cap);
            classes[n++] = (int32_t)c;
        }
        if (*p == '\0') break;
        if (*p != ',') goto syntax;
        p++;
    }
    *k = n;
    return SM_OK;
syntax:
    return sm_fail(err, SM_ERR_ARG, "class list '%s': bad syntax at '%s'; expected e.g. 0-5 or 6,7,8,9", s, p);
}

sm_status sm_dataset_fit(sm_dataset *ds, int64_t c, int64_t h, int64_t w, sm_err *err)
{
    if (!ds) return sm_fail(err, SM_ERR_ARG, "sm_dataset_fit: NULL dataset");
    if ((c != 1 && c != 3) || h < 1 || w < 1 || h > 4096 || w > 4096)
        return sm_fail(err, SM_ERR_ARG, "cannot fit images to %lldx%lldx%lld (1 or 3 channels, "
                       "1..4096 px)", (long long)c, (long long)h, (long long)w);
    if (ds->c == c && ds->h == h && ds->w == w) return SM_OK;
    if ((ds->c != 1 && ds->c != 3) || ds->h < 1 || ds->w < 1)
        return sm_fail(err, SM_ERR_ARG, "cannot convert %lld-channel images", (long long)ds->c);
    size_t per = (size_t)(c * h * w), in = (size_t)(ds->c * ds->h * ds->w);
    if (ds->n < 0 || (ds->n > 0 && per > SIZE_MAX / (size_t)ds->n))
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    uint8_t *px = malloc(per * (size_t)(ds->n ? ds->n : 1));
    sm_image img = {.w = ds->w, .h = ds->h, .c = (int)ds->c,
                    .px = malloc(in)};
    if (!px || !img.px) {
        free(px);
        free(img.px);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_status st = SM_OK;
    for (int64_t i = 0; i < ds->n && !st; i++) {
        const uint8_t *src = ds->images + (size_t)i * in;   /* (c, h, w) planes */
        for (int64_t y = 0; y < ds->h; y++)
            for (int64_t x = 0; x < ds->w; x++)
                for (int64_t k = 0; k < ds->c; k++)
                    img.px[(y * ds->w + x) * ds->c + k] = src[(k * ds->h + y) * ds->w + x];
        st = sm_image_to_planes(&img, (int)c, h, w, px + (size_t)i * per, err);
    }
    free(img.px);
    if (st) { free(px); return st; }
    free(ds->images);
    ds->images = px;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    return SM_OK;
}
