/* ckpt.c - safetensors reader/writer (see ckpt.h) and the atomic writer.
 *
 * The reader loads the whole file (header parsed with jansson, data into one
 * 64-byte aligned block) and checks every byte range before handing out a
 * pointer: a checkpoint from elsewhere is untrusted input. It is not an mmap
 * reader; our checkpoints are megabytes. */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c reads and writes little-endian tensors as-is; add byte swapping for this host"
#endif

/* ------------------------------------------------------------ atomic write */

static const char *io_hint(int e)
{
    switch (e) {
    case ENOSPC: return " (disk full? free some space and retry)";
    case EDQUOT: return " (disk quota exceeded)";
    case EFBIG: return " (file too large for this filesystem or the process's file size limit)";
    case EACCES: case EPERM: case EROFS: return " (is the directory writable?)";
    case ENOENT: case ENOTDIR: return " (does the directory exist?)";
    default: return "";
    }
}

sm_status sm_file_write_atomic(const char *path, const sm_iov *parts, int nparts, sm_err *err)
{
    if (!path || !*path || nparts < 0 || (nparts > 0 && !parts))
        return sm_fail(err, SM_ERR_ARG, "sm_file_write_atomic: empty path or bad parts");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    sm_status st = SM_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        st = sm_fail(err, SM_ERR_IO, "cannot write '%s': cannot create '%s': %s%s", path, tmp, strerror(e), io_hint(e));
        free(tmp);
        return st;
    }
    for (int i = 0; i < nparts && !st; i++) {
        const char *p = parts[i].p;
        size_t left = parts[i].n;
        while (left > 0) {
            size_t chunk = left > ((size_t)1 << 30) ? (size_t)1 << 30 : left;
            ssize_t w = write(fd, p, chunk);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int e = w < 0 ? errno : EIO;
                st = sm_fail(err, SM_ERR_IO, "cannot write '%s': %s%s", path, strerror(e), io_hint(e));
                break;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (!st && fsync(fd) != 0) {
        int e = errno;
        st = sm_fail(err, SM_ERR_IO, "cannot write '%s': fsync: %s%s", path, strerror(e), io_hint(e));
    }
    if (close(fd) != 0 && !st) {
        int e = errno;
        st = sm_fail(err, SM_ERR_IO, "cannot write '%s': close: %s%s", path, strerror(e), io_hint(e));
    }
    if (!st && rename(tmp, path) != 0) {
        int e = errno;
        st = sm_fail(err, SM_ERR_IO, "cannot write '%s': rename from '%s': %s%s", path, tmp, strerror(e),
                     e == EISDIR ? " (the destination is a directory)" : io_hint(e));
    }
    if (st) {
        unlink(tmp);
    } else {
        /* Make the rename itself durable; failure here is not fatal (some
         * filesystems refuse fsync on directories). */
        char *dir = strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
            int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
            free(dir);
        }
    }
    free(tmp);
    return st;
}

/* ------------------------------------------------------------------ dtypes */

static const struct { const char *name; size_t size; } dtypes[SM_DT_COUNT] = {
    [SM_DT_F32] = {"F32", 4}, [SM_DT_F64] = {"F64", 8}, [SM_DT_F16] = {"F16", 2}, [SM_DT_BF16] = {"BF16", 2},
    [SM_DT_I64] = {"I64", 8}, [SM_DT_I32] = {"I32", 4}, [SM_DT_I16] = {"I16", 2}, [SM_DT_I8] = {"I8", 1},
    [SM_DT_U64] = {"U64", 8}, [SM_DT_U32] = {"U32", 4}, [SM_DT_U16] = {"U16", 2}, [SM_DT_U8] = {"U8", 1},
    [SM_DT_BOOL] = {"BOOL", 1}, [SM_DT_F8_E4M3] = {"F8_E4M3", 1}, [SM_DT_F8_E5M2] = {"F8_E5M2", 1},
};

size_t sm_dtype_size(sm_dtype dt)
{
    return (unsigned)dt < SM_DT_COUNT ? dtypes[dt].size : 0;
}

const char *sm_dtype_name(sm_dtype dt)
{
    return (unsigned)dt < SM_DT_COUNT ? dtypes[dt].name : NULL;
}

int sm_dtype_parse(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < SM_DT_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) return i;
    return -1;
}

/* numel and bytes of a shape, or -1 on a negative dim or overflow. */
static int shape_size(int ndim, const int64_t *shape, sm_dtype dt, int64_t *numel, size_t *nbytes)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return -1;
    }
    uint64_t b;
    if (n > INT64_MAX || __builtin_mul_overflow(n, (uint64_t)sm_dtype_size(dt), &b) || b > INT64_MAX || b > SIZE_MAX)
        return -1;
    *numel = (int64_t)n;
    *nbytes = (size_t)b;
    return 0;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, ")");
}

/* ------------------------------------------------------------------ writer */

typedef struct {
    char *name;
    sm_dtype dt;
    int ndim;
    int64_t shape[SM_CKPT_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wtensor;

struct sm_ckpt_writer {
    wtensor *t;
    int64_t nt, ct;
    char **mk, **mv;
    int64_t nm, cm;
};

sm_status sm_ckpt_writer_new(sm_ckpt_writer **out, sm_err *err)
{
    if (!out) return sm_fail(err, SM_ERR_ARG, "sm_ckpt_writer_new: NULL output");
    *out = calloc(1, sizeof **out);
    return *out ? SM_OK : sm_fail(err, SM_ERR_NOMEM, "out of memory for a checkpoint writer");
}

void sm_ckpt_writer_free(sm_ckpt_writer *w)
{
    if (!w) return;
    for (int64_t i = 0; i < w->nt; i++) free(w->t[i].name);
    for (int64_t i = 0; i < w->nm; i++) { free(w->mk[i]); free(w->mv[i]); }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

static int valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

sm_status sm_ckpt_add(sm_ckpt_writer *w, const char *name, sm_dtype dt, int ndim, const int64_t *shape,
                      const void *data, sm_err *err)
{
    if (!w || !name || !*name) return sm_fail(err, SM_ERR_ARG, "checkpoint tensor needs a non-empty name");
    if (strcmp(name, "__metadata__") == 0)
        return sm_fail(err, SM_ERR_ARG, "'__metadata__' is reserved in safetensors; rename the tensor");
    if (!valid_utf8(name)) return sm_fail(err, SM_ERR_ARG, "tensor name '%s' is not valid UTF-8", name);
    if (!sm_dtype_name(dt)) return sm_fail(err, SM_ERR_ARG, "tensor '%s': invalid dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > SM_CKPT_MAX_DIMS || (ndim > 0 && !shape))
        return sm_fail(err, SM_ERR_ARG, "tensor '%s': %d dimensions; 0 to %d are supported", name, ndim, SM_CKPT_MAX_DIMS);
    wtensor t = { .dt = dt, .ndim = ndim, .data = data };
    int64_t numel;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    if (shape_size(ndim, t.shape, dt, &numel, &t.nbytes) != 0) {
        char sb[256];
        fmt_shape(sb, sizeof sb, ndim, t.shape);
        return sm_fail(err, SM_ERR_ARG, "tensor '%s': shape %s has a negative dimension or is too large", name, sb);
    }
    if (t.nbytes > 0 && !data) return sm_fail(err, SM_ERR_ARG, "tensor '%s': NULL data for %zu bytes", name, t.nbytes);
    for (int64_t i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0) return sm_fail(err, SM_ERR_ARG, "tensor '%s' added twice to the checkpoint", name);
    if (w->nt == w->ct) {
        int64_t nc = w->ct ? w->ct * 2 : 16;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
        w->t = nt;
        w->ct = nc;
    }
    if (!(t.name = strdup(name))) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    w->t[w->nt++] = t;
    return SM_OK;
}

sm_status sm_ckpt_add_meta(sm_ckpt_writer *w, const char *key, const char *value, sm_err *err)
{
    if (!w || !key || !*key || !value) return sm_fail(err, SM_ERR_ARG, "checkpoint metadata needs a non-empty key and a value");
    if (!valid_utf8(key) || !valid_utf8(value))
        return sm_fail(err, SM_ERR_ARG, "checkpoint metadata '%s' is not valid UTF-8", key);
    char *v = strdup(value);
    if (!v) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) { free(w->mv[i]); w->mv[i] = v; return SM_OK; }
    if (w->nm == w->cm) {
        int64_t nc = w->cm ? w->cm * 2 : 8;
        char **nk = realloc(w->mk, (size_t)nc * sizeof *nk);
        if (!nk) { free(v); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
        w->mk = nk;
        char **nv = realloc(w->mv, (size_t)nc * sizeof *nv);
        if (!nv) { free(v); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
        w->mv = nv;
        w->cm = nc;
    }
    char *k = strdup(key);
    if (!k) { free(v); return sm_fail(err, SM_ERR_NOMEM, "out of memory"); }
    w->mk[w->nm] = k;
    w->mv[w->nm++] = v;
    return SM_OK;
}

sm_status sm_ckpt_write(const sm_ckpt_writer *w, const char *path, sm_err *err)
{
    if (!w || !path) return sm_fail(err, SM_ERR_ARG, "sm_ckpt_write: NULL writer or path");
    sm_status st = SM_OK;
    int64_t *ord = malloc((size_t)(w->nt ? w->nt : 1) * sizeof *ord);
    sm_iov *iov = malloc((size_t)(w->nt + 2) * sizeof *iov);
    json_t *root = json_object();
    char *js = NULL, *hdr = NULL;
    if (!ord || !iov || !root) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    /* Largest element size first, stable: every tensor then starts aligned
     * for its type (the data section starts at a multiple of 8). */
    for (int64_t i = 0; i < w->nt; i++) {
        int64_t j = i;
        while (j > 0 && sm_dtype_size(w->t[ord[j - 1]].dt) < sm_dtype_size(w->t[i].dt)) { ord[j] = ord[j - 1]; j--; }
        ord[j] = i;
    }
    if (w->nm > 0) {
        json_t *md = json_object();
        if (!md || json_object_set_new(root, "__metadata__", md)) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
        for (int64_t i = 0; i < w->nm; i++)
            if (json_object_set_new(md, w->mk[i], json_string(w->mv[i]))) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    }
    uint64_t off = 0;
    for (int64_t k = 0; k < w->nt; k++) {
        const wtensor *t = &w->t[ord[k]];
        json_t *shape = json_array();
        for (int i = 0; shape && i < t->ndim; i++)
            if (json_array_append_new(shape, json_integer(t->shape[i]))) { json_decref(shape); shape = NULL; }
        json_t *offs = json_pack("[II]", (json_int_t)off, (json_int_t)(off + t->nbytes));
        json_t *o = json_pack("{s:s, s:o, s:o}", "dtype", sm_dtype_name(t->dt), "shape", shape, "data_offsets", offs);
        if (!o || json_object_set_new(root, t->name, o)) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
        iov[2 + k] = (sm_iov){ t->data, t->nbytes };
        off += t->nbytes;
    }
    js = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!js) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    size_t hl = strlen(js), padded = (hl + 7) & ~(size_t)7;
    hdr = malloc(padded);
    if (!hdr) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    memcpy(hdr, js, hl);
    memset(hdr + hl, ' ', padded - hl);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    iov[0] = (sm_iov){ len8, 8 };
    iov[1] = (sm_iov){ hdr, padded };
    st = sm_file_write_atomic(path, iov, (int)(w->nt + 2), err);
done:
    free(hdr);
    free(js);
    json_decref(root);
    free(iov);
    free(ord);
    return st;
}

/* ------------------------------------------------------------------ reader */

typedef struct {
    sm_ckpt_tensor t;
    uint64_t begin;          /* offset into the data section */
    void *own;               /* an aligned copy of a misaligned tensor, or NULL */
} rtensor;

struct sm_ckpt {
    json_t *root;            /* owns every name and metadata string */
    unsigned char *data;     /* the data section, 64-byte aligned */
    rtensor *t;              /* in data order */
    int64_t nt;
    const char **mk, **mv;
    int64_t nm;
};

void sm_ckpt_free(sm_ckpt *ck)
{
    if (!ck) return;
    for (int64_t i = 0; i < ck->nt; i++) free(ck->t[i].own);
    free(ck->t);
    free(ck->mk);
    free(ck->mv);
    free(ck->data);
    json_decref(ck->root);
    free(ck);
}

static int cmp_begin(const void *a, const void *b)
{
    const rtensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->t.nbytes < y->t.nbytes ? -1 : x->t.nbytes > y->t.nbytes;
}

static sm_status read_full(int fd, void *buf, size_t n, uint64_t at, size_t *got)
{
    size_t g = 0;
    while (g < n) {
        size_t chunk = n - g > ((size_t)1 << 30) ? (size_t)1 << 30 : n - g;
        ssize_t r = pread(fd, (char *)buf + g, chunk, (off_t)(at + g));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return SM_ERR_IO;
        if (r == 0) break;
        g += (size_t)r;
    }
    *got = g;
    return SM_OK;
}

static sm_status parse_tensor(const char *path, const char *name, json_t *v, sm_ckpt_tensor *t, uint64_t *begin,
                              sm_err *err)
{
    if (!json_is_object(v))
        return sm_fail(err, SM_ERR_FORMAT, "'%s': header entry '%s' is not an object with dtype, shape and data_offsets", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s' needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" ([begin, end])",
                       path, name);
    int dt = sm_dtype_parse(json_string_value(jd));
    if (dt < 0)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s' has unknown dtype '%s' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2)",
                       path, name, json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > SM_CKPT_MAX_DIMS)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s' has %zu dimensions; at most %d are supported", path, name, nd, SM_CKPT_MAX_DIMS);
    t->name = name;
    t->dtype = (sm_dtype)dt;
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s': shape entry %zu is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)json_integer_value(d);
    }
    char sb[256];
    fmt_shape(sb, sizeof sb, t->ndim, t->shape);
    if (shape_size(t->ndim, t->shape, t->dtype, &t->numel, &t->nbytes) != 0)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s': shape %s is too large", path, name, sb);
    json_t *b = json_array_get(jo, 0), *e = json_array_get(jo, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s': data_offsets must be two non-negative integers", path, name);
    uint64_t ub = (uint64_t)json_integer_value(b), ue = (uint64_t)json_integer_value(e);
    if (ue < ub)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s': data_offsets [%llu, %llu] end before they begin", path, name,
                       (unsigned long long)ub, (unsigned long long)ue);
    if (ue - ub != (uint64_t)t->nbytes)
        return sm_fail(err, SM_ERR_FORMAT, "'%s': tensor '%s': %s %s needs %zu bytes but data_offsets [%llu, %llu] hold %llu",
                       path, name, sm_dtype_name(t->dtype), sb, t->nbytes, (unsigned long long)ub, (unsigned long long)ue,
                       (unsigned long long)(ue - ub));
    *begin = ub;
    return SM_OK;
}

sm_status sm_ckpt_read(const char *path, sm_ckpt **out, sm_err *err)
{
    if (out) *out = NULL;
    if (!path || !out) return sm_fail(err, SM_ERR_ARG, "sm_ckpt_read: NULL path or output");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    sm_status st = SM_OK;
    char *hbuf = NULL;
    sm_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    struct stat sb;
    if (fstat(fd, &sb) != 0) { st = sm_fail(err, SM_ERR_IO, "cannot stat '%s': %s", path, strerror(errno)); goto done; }
    if (S_ISDIR(sb.st_mode)) { st = sm_fail(err, SM_ERR_IO, "cannot read '%s': it is a directory", path); goto done; }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char l8[8];
    size_t got;
    if (fsize < 8 || read_full(fd, l8, 8, 0, &got) || got < 8) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': not a safetensors file (%llu bytes, too short for the 8-byte header length)",
                     path, (unsigned long long)fsize);
        goto done;
    }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)l8[i] << (8 * i);
    if (hl < 2 || hl > SM_CKPT_MAX_HEADER || hl > fsize - 8) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': not a safetensors file or truncated: header length %llu, file size %llu bytes%s",
                     path, (unsigned long long)hl, (unsigned long long)fsize,
                     hl > SM_CKPT_MAX_HEADER ? " (headers are at most 100 MB)" : "");
        goto done;
    }
    hbuf = malloc((size_t)hl);
    if (!hbuf) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory for a %llu-byte header", (unsigned long long)hl); goto done; }
    if (read_full(fd, hbuf, (size_t)hl, 8, &got) || got < hl) {
        st = sm_fail(err, SM_ERR_IO, "cannot read the header of '%s': %s", path, got < hl ? "file shrank while reading" : strerror(errno));
        goto done;
    }
    json_error_t je;
    ck->root = json_loadb(hbuf, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!ck->root) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': bad JSON header at line %d column %d: %s", path, je.line, je.column, je.text);
        goto done;
    }
    if (!json_is_object(ck->root)) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': the JSON header is not an object", path);
        goto done;
    }

    size_t nkeys = json_object_size(ck->root);
    ck->t = calloc(nkeys ? nkeys : 1, sizeof *ck->t);
    if (!ck->t) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    const char *key;
    json_t *val;
    json_object_foreach(ck->root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (json_is_null(val)) continue;
            if (!json_is_object(val)) { st = sm_fail(err, SM_ERR_FORMAT, "'%s': __metadata__ is not an object", path); goto done; }
            size_t nm = json_object_size(val);
            ck->mk = calloc(nm ? nm : 1, sizeof *ck->mk);
            ck->mv = calloc(nm ? nm : 1, sizeof *ck->mv);
            if (!ck->mk || !ck->mv) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    st = sm_fail(err, SM_ERR_FORMAT, "'%s': __metadata__ value of '%s' is not a string (safetensors metadata is string to string)", path, mk);
                    goto done;
                }
                ck->mk[ck->nm] = mk;
                ck->mv[ck->nm++] = json_string_value(mv);
            }
            continue;
        }
        rtensor *r = &ck->t[ck->nt];
        if ((st = parse_tensor(path, key, val, &r->t, &r->begin, err))) goto done;
        ck->nt++;
    }
    qsort(ck->t, (size_t)ck->nt, sizeof *ck->t, cmp_begin);
    uint64_t end = 0;
    for (int64_t i = 0; i < ck->nt; i++) {
        uint64_t b = ck->t[i].begin;
        if (b < end)
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': tensors '%s' and '%s' overlap in the data section (bytes %llu..%llu)", path,
                         ck->t[i - 1].t.name, ck->t[i].t.name, (unsigned long long)b, (unsigned long long)end);
        else if (b > end)
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': bytes %llu..%llu of the data section belong to no tensor (safetensors forbids holes)",
                         path, (unsigned long long)end, (unsigned long long)b);
        if (st) goto done;
        end = b + ck->t[i].t.nbytes;
    }
    uint64_t dsize = fsize - 8 - hl;
    if (end > dsize) {
        st = sm_fail(err, SM_ERR_IO, "'%s': truncated: the header describes %llu bytes of tensor data, the file holds %llu",
                     path, (unsigned long long)end, (unsigned long long)dsize);
        goto done;
    }
    if (end < dsize) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': %llu trailing bytes after the tensor data the header describes", path,
                     (unsigned long long)(dsize - end));
        goto done;
    }
    if (dsize > SIZE_MAX - 64) { st = sm_fail(err, SM_ERR_NOMEM, "'%s' is too large for memory", path); goto done; }
    ck->data = aligned_alloc(64, ((size_t)dsize + 63) / 64 * 64 + 64);
    if (!ck->data) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory for %llu bytes of tensors", (unsigned long long)dsize); goto done; }
    if (read_full(fd, ck->data, (size_t)dsize, 8 + hl, &got) || got < dsize) {
        st = sm_fail(err, SM_ERR_IO, "cannot read the tensors of '%s': %s", path, got < dsize ? "file shrank while reading" : strerror(errno));
        goto done;
    }
    for (int64_t i = 0; i < ck->nt; i++) {
        rtensor *r = &ck->t[i];
        r->t.data = ck->data + r->begin;
        if (r->begin % sm_dtype_size(r->t.dtype) != 0) {   /* another writer's layout: give the tensor its own aligned copy */
            r->own = aligned_alloc(64, (r->t.nbytes + 63) / 64 * 64 + 64);
            if (!r->own) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
            memcpy(r->own, r->t.data, r->t.nbytes);
            r->t.data = r->own;
        }
    }
done:
    free(hbuf);
    close(fd);
    if (st) {
        sm_ckpt_free(ck);
    } else {
        *out = ck;
    }
    return st;
}

const sm_ckpt_tensor *sm_ckpt_find(const sm_ckpt *ck, const char *name)
{
    if (!ck || !name) return NULL;
    for (int64_t i = 0; i < ck->nt; i++)
        if (strcmp(ck->t[i].t.name, name) == 0) return &ck->t[i].t;
    return NULL;
}

sm_status sm_ckpt_get(const sm_ckpt *ck, const char *name, sm_dtype dt, int ndim, const int64_t *shape,
                      const sm_ckpt_tensor **out, sm_err *err)
{
    if (out) *out = NULL;
    const sm_ckpt_tensor *t = sm_ckpt_find(ck, name);
    if (!t) return sm_fail(err, SM_ERR_FORMAT, "checkpoint has no tensor '%s'; was it written for another model?", name ? name : "(null)");
    int same = t->dtype == dt && t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char have[256], want[256];
        fmt_shape(have, sizeof have, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim < 0 || ndim > SM_CKPT_MAX_DIMS ? 0 : ndim, shape);
        return sm_fail(err, SM_ERR_SHAPE, "checkpoint tensor '%s' is %s %s, expected %s %s; was it written for another model?",
                       name, sm_dtype_name(t->dtype), have, sm_dtype_name(dt) ? sm_dtype_name(dt) : "?", want);
    }
    if (out) *out = t;
    return SM_OK;
}

int64_t sm_ckpt_count(const sm_ckpt *ck)
{
    return ck ? ck->nt : 0;
}

const sm_ckpt_tensor *sm_ckpt_tensor_at(const sm_ckpt *ck, int64_t i)
{
    return ck && i >= 0 && i < ck->nt ? &ck->t[i].t : NULL;
}

const char *sm_ckpt_meta(const sm_ckpt *ck, const char *key)
{
    if (!ck || !key) return NULL;
    for (int64_t i = 0; i < ck->nm; i++)
        if (strcmp(ck->mk[i], key) == 0) return ck->mv[i];
    return NULL;
}

int64_t sm_ckpt_meta_count(const sm_ckpt *ck)
{
    return ck ? ck->nm : 0;
}

int sm_ckpt_meta_at(const sm_ckpt *ck, int64_t i, const char **key, const char **value)
{
    if (!ck || i < 0 || i >= ck->nm) return 0;
    if (key) *key = ck->mk[i];
    if (value) *value = ck->mv[i];
    return 1;
}
