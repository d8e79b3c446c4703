/* folder.c - datasets of PNG/JPEG files: folder per class, split trees, CSV manifests.
 * The rules are in simile.h ("image folders"). Two steps: list the images (path, class key,
 * manifest line) and fix the label order; then decode, convert and resize
 * every image into one (N, C, H, W) u8 buffer, in parallel, reporting the
 * failure of the lowest-numbered image so the message does not depend on
 * thread timing. */
#include "simile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "status.h"

#ifdef _OPENMP
#define SM_PRAGMA(x) _Pragma(#x)
#else
#define SM_PRAGMA(x)
#endif

/* ------------------------------------------------------------ small lists */

typedef struct strs {
    char **v;
    int64_t n, cap;
} strs;

static void strs_free(strs *s)
{
    for (int64_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Appends a copy of str; 0 when out of memory. */
static int strs_push(strs *s, const char *str)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return 0;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str))) return 0;
    s->n++;
    return 1;
}

/* qsort, which must not see a NULL base even for 0 elements (C11 7.1.4). */
static void sort_n(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1) qsort(base, n, size, cmp);
}

static int cmp_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One image to load: its path, the class key (folder name or manifest
 * label), its manifest line (0 for trees), and its label once known. */
typedef struct item {
    char *path;
    char *key;
    int64_t line;
    int64_t seq;
    int32_t label;
} item;

typedef struct items {
    item *v;
    int64_t n, cap;
    const char *csv;   /* the manifest, for messages; NULL for trees */
} items;

static void items_free(items *it)
{
    for (int64_t i = 0; i < it->n; i++) {
        free(it->v[i].path);
        free(it->v[i].key);
    }
    free(it->v);
    memset(it, 0, sizeof *it);
}

static int items_push(items *it, const char *path, const char *key, int64_t line)
{
    if (it->n == it->cap) {
        int64_t cap = it->cap ? it->cap * 2 : 64;
        item *v = realloc(it->v, sizeof *v * (size_t)cap);
        if (!v) return 0;
        it->v = v;
        it->cap = cap;
    }
    item *e = &it->v[it->n];
    e->path = strdup(path);
    e->key = strdup(key);
    e->line = line;
    e->seq = it->n;
    e->label = -1;
    if (!e->path || !e->key) {
        free(e->path);
        free(e->key);
        return 0;
    }
    it->n++;
    return 1;
}

/* "<a>/<b>" into a malloc'd string, or NULL. */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/') p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static int is_image_name(const char *name)
{
    return ends_with_ci(name, ".png") || ends_with_ci(name, ".jpg") || ends_with_ci(name, ".jpeg");
}

/* ------------------------------------------------------------- label order */

/* A decimal number of at most 18 digits (fits int64). */
static int is_number(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isdigit((unsigned char)s[n])) return 0;
    return n >= 1 && n <= 18;
}

static int cmp_numeric(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    long long u = strtoll(x, NULL, 10), v = strtoll(y, NULL, 10);
    if (u != v) return u < v ? -1 : 1;
    return strcmp(x, y);   /* "7" and "007": distinct classes, fixed order */
}

/* The class table: keys[i] (folder name / manifest label) has label i and
 * class name names[i]; sorted[] holds the keys in byte order for lookups. */
typedef struct keyidx {
    const char *key;
    int64_t label;
} keyidx;

typedef struct classes {
    strs keys, names;
    keyidx *sorted;
} classes;

static void classes_free(classes *k)
{
    strs_free(&k->keys);
    strs_free(&k->names);
    free(k->sorted);
    memset(k, 0, sizeof *k);
}

static int cmp_keyidx(const void *a, const void *b)
{
    const keyidx *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->label > y->label) - (x->label < y->label);
}

/* Builds the lookup index; fails with SM_ERR_FORMAT and the later
 * position of a key listed twice in *dup. */
static sm_status classes_index(classes *k, int64_t *dup, sm_err *err)
{
    *dup = -1;
    k->sorted = malloc(sizeof *k->sorted * (size_t)(k->keys.n + 1));
    if (!k->sorted) return sm_fail(err, SM_ERR_NOMEM, "out of memory for class names");
    for (int64_t i = 0; i < k->keys.n; i++) k->sorted[i] = (keyidx){ k->keys.v[i], i };
    sort_n(k->sorted, (size_t)k->keys.n, sizeof *k->sorted, cmp_keyidx);
    for (int64_t i = 1; i < k->keys.n; i++)
        if (strcmp(k->sorted[i - 1].key, k->sorted[i].key) == 0) {
            *dup = k->sorted[i].label;
            return SM_ERR_FORMAT;
        }
    return SM_OK;
}

static int32_t classes_find(const classes *k, const char *key)
{
    int64_t lo = 0, hi = k->keys.n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(k->sorted[mid].key, key);
        if (c == 0) return (int32_t)k->sorted[mid].label;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Classes from the distinct keys of the items, sorted (numerically when all
 * keys are numbers); names = keys. */
static sm_status classes_from_items(classes *k, const items *const *lists, int nlists, sm_err *err)
{
    strs all = {0};
    for (int l = 0; l < nlists; l++)
        for (int64_t i = 0; lists[l] && i < lists[l]->n; i++)
            if (!strs_push(&all, lists[l]->v[i].key)) {
                strs_free(&all);
                return sm_fail(err, SM_ERR_NOMEM, "out of memory for class names");
            }
    sort_n(all.v, (size_t)all.n, sizeof *all.v, cmp_bytes);
    int numeric = 1;
    for (int64_t i = 0; i < all.n && numeric; i++) numeric = is_number(all.v[i]);
    sm_status st = SM_OK;
    for (int64_t i = 0; i < all.n; i++) {
        if (i > 0 && strcmp(all.v[i], all.v[i - 1]) == 0) continue;
        if (!strs_push(&k->keys, all.v[i]) || !strs_push(&k->names, all.v[i])) {
            st = sm_fail(err, SM_ERR_NOMEM, "out of memory for class names");
            break;
        }
    }
    strs_free(&all);
    if (st) return st;
    if (numeric) {
        sort_n(k->keys.v, (size_t)k->keys.n, sizeof *k->keys.v, cmp_numeric);
        sort_n(k->names.v, (size_t)k->names.n, sizeof *k->names.v, cmp_numeric);
    }
    int64_t dup;
    return classes_index(k, &dup, err);   /* keys are distinct here */
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
    return s;
}

/* Reads classes.txt: `folder` or `folder<TAB>name` per line, label order. */
static sm_status classes_from_file(classes *k, const char *path, sm_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int64_t ln = 0;
    sm_status st = SM_OK;
    while (getline(&line, &cap, f) >= 0) {
        ln++;
        char *s = line;
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
        if (!*trim(s)) continue;
        char *tab = strchr(s, '\t');
        if (tab) *tab = '\0';
        char *key = trim(s), *name = tab ? trim(tab + 1) : key;
        if (!*key || !*name) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s' line %lld: empty class %s; expected 'folder' or 'folder<TAB>name'",
                         path, (long long)ln, *key ? "name" : "folder");
            break;
        }
        if (!strs_push(&k->keys, key) || !strs_push(&k->names, name)) {
            st = sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", path);
            break;
        }
    }
    if (!st && ferror(f)) st = sm_fail(err, SM_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    free(line);
    fclose(f);
    if (st) return st;
    if (k->keys.n == 0) return sm_fail(err, SM_ERR_FORMAT, "'%s' lists no class", path);
    if (k->keys.n > INT32_MAX) return sm_fail(err, SM_ERR_FORMAT, "'%s' lists too many classes", path);
    int64_t dup;
    st = classes_index(k, &dup, err);
    if (st == SM_ERR_FORMAT)
        return sm_fail(err, st, "'%s': class folder '%s' is listed twice", path, k->keys.v[dup]);
    return st;
}

/* Gives every item its label and sorts trees by (label, file order). */
static sm_status assign_labels(items *it, const classes *k, const char *root, const char *cfile, sm_err *err)
{
    for (int64_t i = 0; i < it->n; i++) {
        int32_t l = classes_find(k, it->v[i].key);
        if (l < 0)
            return sm_fail(err, SM_ERR_FORMAT, "'%s/%s' holds images but is not listed in '%s'; add a line for it",
                           root, it->v[i].key, cfile);
        it->v[i].label = l;
    }
    return SM_OK;
}

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ------------------------------------------------------------------ listing */

/* The names in dir (not starting with '.') that are directories (dirs) or
 * regular image files (!dirs), in byte order. */
static sm_status list_dir(const char *dir, int dirs, strs *out, sm_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return sm_fail(err, SM_ERR_IO, "cannot open the directory '%s': %s", dir, strerror(errno));
    sm_status st = SM_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!dirs && !is_image_name(e->d_name)) continue;
        char *p = join(dir, e->d_name);
        if (!p) {
            st = sm_fail(err, SM_ERR_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
        struct stat sb;
        int keep = stat(p, &sb) == 0 && (dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
        free(p);
        if (keep && !strs_push(out, e->d_name)) {
            st = sm_fail(err, SM_ERR_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
    }
    closedir(d);
    if (st) return st;
    sort_n(out->v, (size_t)out->n, sizeof *out->v, cmp_bytes);
    return SM_OK;
}

/* Lists root/<class>/<image> into it (key = class folder). */
static sm_status scan_tree(const char *root, items *it, sm_err *err)
{
    strs cls = {0};
    sm_status st = list_dir(root, 1, &cls, err);
    for (int64_t c = 0; !st && c < cls.n; c++) {
        char *cdir = join(root, cls.v[c]);
        strs files = {0};
        if (!cdir) st = sm_fail(err, SM_ERR_NOMEM, "out of memory listing '%s'", root);
        else st = list_dir(cdir, 0, &files, err);
        for (int64_t f = 0; !st && f < files.n; f++) {
            char *p = join(cdir, files.v[f]);
            if (!p || !items_push(it, p, cls.v[c], 0)) st = sm_fail(err, SM_ERR_NOMEM, "out of memory listing '%s'", root);
            free(p);
        }
        strs_free(&files);
        free(cdir);
    }
    strs_free(&cls);
    return st;
}

/* The error for a tree without images, with the layout it expects. */
static sm_status no_images(const char *root, sm_err *err)
{
    strs loose = {0};
    sm_err ignore;
    int has_loose = list_dir(root, 0, &loose, &ignore) == SM_OK && loose.n > 0;
    strs_free(&loose);
    if (has_loose)
        return sm_fail(err, SM_ERR_IO, "'%s' holds images but no class folders; put each class's images in its own "
                       "folder, %s/<class>/<image>.png", root, root);
    return sm_fail(err, SM_ERR_IO, "'%s' holds neither IDX files nor class folders of images; expected %s/<class>/<image>.png|.jpg "
                   "(optionally under train/ and test/), or the four IDX files train-images-idx3-ubyte, ...", root, root);
}

/* ------------------------------------------------------------------- manifest */

/* Strips one pair of surrounding double quotes. */
static char *unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

static sm_status scan_csv(const char *csv, items *it, sm_err *err)
{
    FILE *f = fopen(csv, "r");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", csv, strerror(errno));
    /* the CSV's directory, for relative paths */
    char *dir = strdup(csv);
    if (!dir) {
        fclose(f);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", csv);
    }
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';

    char *line = NULL;
    size_t cap = 0;
    int64_t ln = 0;
    int first = 1;
    sm_status st = SM_OK;
    while (!st && getline(&line, &cap, f) >= 0) {
        ln++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *comma = strrchr(s, ',');
        if (!comma) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s' line %lld: expected 'path,label', got '%.80s'", csv, (long long)ln, s);
            break;
        }
        *comma = '\0';
        char *path = unquote(trim(s)), *label = unquote(trim(comma + 1));
        if (first && strcasecmp(path, "path") == 0 && strcasecmp(label, "label") == 0) {
            first = 0;   /* the header */
            continue;
        }
        first = 0;
        if (!*path || !*label) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s' line %lld: empty %s; expected 'path,label'", csv, (long long)ln,
                         *path ? "label" : "path");
            break;
        }
        char *full = path[0] == '/' ? strdup(path) : join(dir, path);
        if (!full || !items_push(it, full, label, ln)) st = sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", csv);
        free(full);
    }
    if (!st && ferror(f)) st = sm_fail(err, SM_ERR_IO, "cannot read '%s': %s", csv, strerror(errno));
    if (!st && it->n == 0)
        st = sm_fail(err, SM_ERR_FORMAT, "'%s' lists no image; expected lines 'path,label' (e.g. img/1.png,cat)", csv);
    free(line);
    free(dir);
    fclose(f);
    return st;
}

/* -------------------------------------------------------------- decoding */

/* Prefixes a per-image message with the manifest line, when there is one. */
static sm_status item_fail(const items *it, const item *e, sm_status st, sm_err *err)
{
    if (it->csv) return sm_fail_prefix(err, st, "'%s' line %lld: ", it->csv, (long long)e->line);
    return st;
}

/* The reference size: (c, h, w) of the first image, c = 1 or 3. */
static sm_status reference_size(const items *it, int64_t *c, int64_t *h, int64_t *w, sm_err *err)
{
    int ic;
    sm_status st = sm_image_read_info(it->v[0].path, w, h, &ic, err);
    if (st) return item_fail(it, &it->v[0], st, err);
    *c = ic <= 2 ? 1 : 3;
    return SM_OK;
}

static sm_status load_items(const items *it, const classes *k, int64_t c, int64_t h, int64_t w, sm_dataset *out,
                            sm_err *err)
{
    memset(out, 0, sizeof *out);
    int64_t n = it->n;
    size_t chw = (size_t)(c * h * w);
    if (n <= 0 || (size_t)n > SIZE_MAX / chw)
        return sm_fail(err, SM_ERR_NOMEM, "%lld images of %lldx%lldx%lld do not fit in memory", (long long)n,
                       (long long)c, (long long)h, (long long)w);
    out->images = malloc((size_t)n * chw);
    out->labels = malloc(sizeof *out->labels * (size_t)n);
    out->class_names = calloc((size_t)k->names.n, sizeof *out->class_names);
    if (!out->images || !out->labels || !out->class_names) {
        sm_dataset_free(out);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for %lld images of %lldx%lldx%lld (%.1f MB); give a smaller "
                       "target size", (long long)n, (long long)c, (long long)h, (long long)w, (double)n * (double)chw / 1e6);
    }
    out->n_classes = (int32_t)k->names.n;   /* set first: sm_dataset_free walks the names */
    for (int64_t i = 0; i < k->names.n; i++)
        if (!(out->class_names[i] = strdup(k->names.v[i]))) {
            sm_dataset_free(out);
            return sm_fail(err, SM_ERR_NOMEM, "out of memory for class names");
        }
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;

    atomic_llong bad = n;   /* lowest index that failed, n while none */
    sm_status bad_st = SM_OK;
    sm_err bad_err = {0};
    uint8_t *images = out->images;
SM_PRAGMA(omp parallel for schedule(dynamic, 8))
    for (int64_t i = 0; i < n; i++) {
        if (i > atomic_load(&bad)) continue;   /* an earlier image failed: no more work */
        sm_err e = {0};
        sm_image img;
        sm_status st = sm_image_read(it->v[i].path, &img, &e);
        if (!st) st = sm_image_to_planes(&img, (int)c, h, w, images + (size_t)i * chw, &e);
        sm_image_free(&img);
        if (st) {
SM_PRAGMA(omp critical(sm_folder_error))
            {
                if (i < atomic_load(&bad)) {
                    atomic_store(&bad, i);
                    bad_st = st;
                    bad_err = e;
                }
            }
        }
    }
    int64_t b = atomic_load(&bad);
    if (b < n) {
        sm_dataset_free(out);
        if (err) *err = bad_err;
        return item_fail(it, &it->v[b], bad_st, err);
    }
    for (int64_t i = 0; i < n; i++) out->labels[i] = it->v[i].label;
    return SM_OK;
}

static sm_status copy_dataset(const sm_dataset *src, sm_dataset *dst, sm_err *err)
{
    memset(dst, 0, sizeof *dst);
    size_t bytes = (size_t)(src->n * src->c * src->h * src->w);
    dst->images = malloc(bytes);
    dst->labels = malloc(sizeof *dst->labels * (size_t)src->n);
    dst->class_names = calloc((size_t)src->n_classes, sizeof *dst->class_names);
    dst->n_classes = src->n_classes;
    int ok = dst->images && dst->labels && dst->class_names;
    for (int32_t i = 0; ok && i < src->n_classes; i++) ok = (dst->class_names[i] = strdup(src->class_names[i])) != NULL;
    if (!ok) {
        sm_dataset_free(dst);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory copying a dataset of %lld images", (long long)src->n);
    }
    memcpy(dst->images, src->images, bytes);
    memcpy(dst->labels, src->labels, sizeof *dst->labels * (size_t)src->n);
    dst->n = src->n;
    dst->c = src->c;
    dst->h = src->h;
    dst->w = src->w;
    return SM_OK;
}

/* -------------------------------------------------------------- entries */

bool sm_folder_is_source(const char *spec)
{
    struct stat sb;
    if (!spec || stat(spec, &sb) != 0) return false;
    if (S_ISREG(sb.st_mode)) return ends_with_ci(spec, ".csv");
    if (!S_ISDIR(sb.st_mode)) return false;
    DIR *d = opendir(spec);
    if (!d) return true;   /* the folder loader reports why it cannot be read */
    bool idx = false;
    struct dirent *e;
    while (!idx && (e = readdir(d)))
        idx = strncmp(e->d_name, "train-images", 12) == 0 || strncmp(e->d_name, "t10k-images", 11) == 0;
    closedir(d);
    return !idx;
}

void sm_folder_sanitize(const char *name, char *out, size_t cap)
{
    if (!cap) return;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 1 < cap; p++) {
        unsigned char ch = *p;
        int bad = ch < 0x20 || ch == 0x7f || strchr("/\\<>:\"|?*", ch) != NULL || (o == 0 && ch == '.');
        out[o++] = bad ? '_' : (char)ch;
    }
    if (o == 0 && cap > 1) out[o++] = '_';
    out[o] = '\0';
    /* a leading or trailing space would not survive classes.txt (its lines are trimmed) */
    if (out[0] == ' ') out[0] = '_';
    if (o > 0 && out[o - 1] == ' ') out[o - 1] = '_';
}

/* Finds classes.txt for a tree: root's, else (split trees) train's, test's. */
static char *find_classes_file(const char *root, int split)
{
    const char *places[3] = { "", "train/", "test/" };
    for (int i = 0; i < (split ? 3 : 1); i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s%s", places[i], SM_FOLDER_CLASSES_FILE);
        char *p = join(root, rel);
        if (!p) return NULL;
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) return p;
        free(p);
    }
    return NULL;
}

static sm_status check_target(int64_t c, int64_t h, int64_t w, sm_err *err)
{
    if (c == 0 && h == 0 && w == 0) return SM_OK;
    if (c != 1 && c != 3)
        return sm_fail(err, SM_ERR_ARG, "image datasets have 1 (gray) or 3 (RGB) channels, not %lld", (long long)c);
    if (h < 1 || w < 1 || h > SM_IMAGE_MAX_SIDE || w > SM_IMAGE_MAX_SIDE || h * w > SM_IMAGE_MAX_PIXELS)
        return sm_fail(err, SM_ERR_ARG, "target image size %lldx%lld is out of range (1..%d a side)", (long long)h,
                       (long long)w, SM_IMAGE_MAX_SIDE);
    return SM_OK;
}

sm_status sm_folder_open(const char *spec, int64_t c, int64_t h, int64_t w, sm_dataset *train, sm_dataset *test,
                         sm_err *err)
{
    if (train) memset(train, 0, sizeof *train);
    if (test) memset(test, 0, sizeof *test);
    if (!spec || !*spec || (!train && !test)) return sm_fail(err, SM_ERR_ARG, "sm_folder_open: no path or no output");
    sm_status st = check_target(c, h, w, err);
    if (st) return st;
    struct stat sb;
    if (stat(spec, &sb) != 0) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", spec, strerror(errno));

    items lists[2] = { {0}, {0} };   /* train, test (a plain tree or manifest: lists[0] only) */
    classes k = {0};
    char *cfile = NULL, *sub[2] = { NULL, NULL };
    int split = 0;
    sm_dataset *outs[2] = { train, test };
    static const char *const split_names[2] = { "train", "test" };

    if (S_ISREG(sb.st_mode)) {
        if (!ends_with_ci(spec, ".csv"))
            return sm_fail(err, SM_ERR_FORMAT, "'%s' is a file but not a .csv manifest of 'path,label' lines", spec);
        lists[0].csv = spec;
        if ((st = scan_csv(spec, &lists[0], err))) goto done;
        const items *ls[1] = { &lists[0] };
        if ((st = classes_from_items(&k, ls, 1, err))) goto done;
        if ((st = assign_labels(&lists[0], &k, spec, spec, err))) goto done;   /* every key is in k */
    } else if (S_ISDIR(sb.st_mode)) {
        for (int s = 0; s < 2; s++) {
            sub[s] = join(spec, split_names[s]);
            if (!sub[s]) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
            if (is_dir(sub[s])) split = 1;
        }
        for (int s = 0; s < (split ? 2 : 1); s++) {
            const char *root = split ? sub[s] : spec;
            if (split && !is_dir(root)) {
                if (outs[s]) {
                    st = sm_fail(err, SM_ERR_IO, "'%s' has a %s/ folder but no %s/ folder; a split tree needs both "
                                 "(or drop the split folders for one set of images)", spec, split_names[!s], split_names[s]);
                    goto done;
                }
                continue;
            }
            if ((st = scan_tree(root, &lists[s], err))) goto done;
        }
        cfile = find_classes_file(spec, split);
        if (cfile) {
            if ((st = classes_from_file(&k, cfile, err))) goto done;
        } else {
            const items *ls[2] = { &lists[0], &lists[1] };
            if ((st = classes_from_items(&k, ls, 2, err))) goto done;
        }
        for (int s = 0; s < 2; s++) {
            if ((st = assign_labels(&lists[s], &k, split ? sub[s] : spec, cfile ? cfile : "", err))) goto done;
            sort_n(lists[s].v, (size_t)lists[s].n, sizeof *lists[s].v, cmp_item);
        }
    } else {
        return sm_fail(err, SM_ERR_IO, "'%s' is neither a directory nor a .csv manifest", spec);
    }

    if (lists[0].n == 0 && lists[1].n == 0) {
        st = split ? sm_fail(err, SM_ERR_IO, "'%s': no images in its train/ and test/ class folders", spec)
                   : no_images(spec, err);
        goto done;
    }
    for (int s = 0; split && s < 2; s++)
        if (outs[s] && lists[s].n == 0) {
            st = sm_fail(err, SM_ERR_IO, "'%s' holds no images in class folders (%s/<class>/<image>.png)", sub[s], sub[s]);
            goto done;
        }
    if (c == 0) {
        /* the reference: the first image of train (or the only list) */
        const items *ref = lists[0].n ? &lists[0] : &lists[1];
        if ((st = reference_size(ref, &c, &h, &w, err))) goto done;
    }
    if (split) {
        for (int s = 0; s < 2; s++)
            if (outs[s] && (st = load_items(&lists[s], &k, c, h, w, outs[s], err))) goto done;
    } else {
        sm_dataset *first = train ? train : test;
        if ((st = load_items(&lists[0], &k, c, h, w, first, err))) goto done;
        if (train && test) st = copy_dataset(train, test, err);
    }
done:
    if (st) {
        sm_dataset_free(train);
        sm_dataset_free(test);
    }
    items_free(&lists[0]);
    items_free(&lists[1]);
    classes_free(&k);
    free(cfile);
    free(sub[0]);
    free(sub[1]);
    return st;
}

/* ----------------------------------------------------------------- export */

/* Threads writing PNG files. The loop waits on fsync (every file is written
 * atomically and durably), not on the cores: measured here (ext4, 2 cores),
 * 10 000 Fashion-MNIST test images took 26 s with 2 threads, 6 s with 16,
 * and no less with 32 or 64. */
#define SM_EXPORT_THREADS 16

/* mkdir -p. */
static sm_status make_dirs(const char *dir, sm_err *err)
{
    char *p = strdup(dir);
    if (!p) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = SM_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char save = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            st = sm_fail(err, SM_ERR_IO, "cannot create the directory '%s': %s", p, strerror(errno));
            break;
        }
        *s = save;
        if (!save) break;
    }
    if (!st && !is_dir(dir)) st = sm_fail(err, SM_ERR_IO, "'%s' exists and is not a directory", dir);
    free(p);
    return st;
}

static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d))) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

sm_status sm_folder_export(const sm_dataset *ds, const char *dir, int64_t limit, sm_err *err)
{
    if (!ds || !dir || !*dir || ds->n < 0 || (ds->n > 0 && (!ds->images || !ds->labels)) || ds->n_classes < 1)
        return sm_fail(err, SM_ERR_ARG, "sm_folder_export: no dataset or no directory");
    if (ds->c != 1 && ds->c != 3)
        return sm_fail(err, SM_ERR_ARG, "cannot export %lld-channel images as PNG files; expected 1 (gray) or 3 (RGB)",
                       (long long)ds->c);
    int64_t count = limit > 0 && limit < ds->n ? limit : ds->n;
    for (int64_t i = 0; i < count; i++)
        if (ds->labels[i] < 0 || ds->labels[i] >= ds->n_classes)
            return sm_fail(err, SM_ERR_ARG, "image %lld has label %d, outside the dataset's %d classes", (long long)i,
                           (int)ds->labels[i], (int)ds->n_classes);
    sm_status st = SM_OK;
    int32_t k = ds->n_classes;
    char **fold = calloc((size_t)k, sizeof *fold);
    char *used = NULL;
    keyidx *order = NULL;
    char *list = NULL;
    size_t list_len = 0;
    FILE *lf = open_memstream(&list, &list_len);
    if (!fold || !lf) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* folder names: sanitized; a clash gets "_<label>" on all but the first class */
    for (int32_t c = 0; c < k; c++) {
        char num[16], buf[256];
        snprintf(num, sizeof num, "%d", (int)c);
        sm_folder_sanitize(ds->class_names && ds->class_names[c] ? ds->class_names[c] : num, buf, sizeof buf - 16);
        if (!(fold[c] = malloc(strlen(buf) + 16))) {
            st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
            goto done;
        }
        strcpy(fold[c], buf);
    }
    if (!(order = malloc(sizeof *order * (size_t)k))) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t c = 0; c < k; c++) order[c] = (keyidx){ fold[c], c };
        sort_n(order, (size_t)k, sizeof *order, cmp_keyidx);
        int64_t clash = -1;
        for (int32_t i = k - 1; i > 0; i--)
            if (!strcmp(order[i].key, order[i - 1].key)) clash = i;
        if (clash < 0) break;
        if (pass == 1) {   /* "a_b_3" was also a class of its own */
            st = sm_fail(err, SM_ERR_ARG, "classes %lld and %lld both need the folder name '%s'; rename one",
                         (long long)order[clash - 1].label, (long long)order[clash].label, order[clash].key);
            goto done;
        }
        for (int32_t i = k - 1; i > 0; i--)
            if (!strcmp(order[i].key, order[i - 1].key))
                snprintf(fold[order[i].label] + strlen(fold[order[i].label]), 16, "_%d", (int)order[i].label);
    }
    for (int32_t c = 0; c < k; c++) {
        char num[16];
        snprintf(num, sizeof num, "%d", (int)c);
        const char *name = ds->class_names && ds->class_names[c] ? ds->class_names[c] : num;
        /* a name with a tab or newline cannot be a classes.txt line: keep the folder name */
        if (strcmp(name, fold[c]) && !strpbrk(name, "\t\r\n")) fprintf(lf, "%s\t%s\n", fold[c], name);
        else fprintf(lf, "%s\n", fold[c]);
    }
    if (fclose(lf) != 0) {
        lf = NULL;
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    lf = NULL;
    if ((st = make_dirs(dir, err))) goto done;
    if (!dir_is_empty(dir)) {
        st = sm_fail(err, SM_ERR_ARG, "'%s' is not empty; export into a new or empty directory", dir);
        goto done;
    }
    char *cpath = join(dir, SM_FOLDER_CLASSES_FILE);
    if (!cpath) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    sm_iov part = { list, list_len };
    st = sm_file_write_atomic(cpath, &part, 1, err);
    free(cpath);
    if (st) goto done;
    used = calloc((size_t)k, 1);
    if (!used) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < count; i++) used[ds->labels[i]] = 1;
    for (int32_t c = 0; c < k && !st; c++) {   /* a folder for each class with images */
        if (!used[c]) continue;
        char *cdir = join(dir, fold[c]);
        if (!cdir) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        else if (mkdir(cdir, 0777) != 0)
            st = sm_fail(err, SM_ERR_IO, "cannot create the directory '%s': %s", cdir, strerror(errno));
        free(cdir);
    }
    if (st) goto done;

    int width = 1;
    for (int64_t m = count - 1; m >= 10 && width < 19; m /= 10) width++;   /* int64 has 19 digits */
    int64_t c = ds->c, h = ds->h, w = ds->w;
    size_t chw = (size_t)(c * h * w);
    atomic_llong bad = count;
    sm_status bad_st = SM_OK;
    sm_err bad_err = {0};
SM_PRAGMA(omp parallel for schedule(dynamic, 16) num_threads(SM_EXPORT_THREADS))
    for (int64_t i = 0; i < count; i++) {
        if (i > atomic_load(&bad)) continue;
        sm_err e = {0};
        sm_status s2 = SM_OK;
        const uint8_t *src = ds->images + (size_t)i * chw;
        uint8_t *px = malloc(chw);
        char *path = NULL;
        size_t plen = strlen(dir) + strlen(fold[ds->labels[i]]) + 48;
        if (px) path = malloc(plen);
        if (!px || !path) {
            s2 = sm_fail(&e, SM_ERR_NOMEM, "out of memory");
        } else {
            for (int64_t ch = 0; ch < c; ch++)   /* planes (c, h, w) -> interleaved (h, w, c) */
                for (int64_t p = 0; p < h * w; p++) px[p * c + ch] = src[ch * h * w + p];
            snprintf(path, plen, "%s/%s/%0*lld.png", dir, fold[ds->labels[i]], width, (long long)i);
            s2 = sm_png_write(path, px, w, h, (int)c, &e);
        }
        free(px);
        free(path);
        if (s2) {
SM_PRAGMA(omp critical(sm_folder_error))
            {
                if (i < atomic_load(&bad)) {
                    atomic_store(&bad, i);
                    bad_st = s2;
                    bad_err = e;
                }
            }
        }
    }
    if (atomic_load(&bad) < count) {
        if (err) *err = bad_err;
        st = bad_st;
    }
done:
    if (lf) fclose(lf);
    free(list);
    free(used);
    free(order);
    for (int32_t c2 = 0; fold && c2 < k; c2++) free(fold[c2]);
    free(fold);
    return st;
}
