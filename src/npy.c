/* npy.c - .npy writer and a strict reader for (N, D) float32 (see npy.h).
 *
 * The reader parses only the dict numpy itself writes (keys 'descr',
 * 'fortran_order', 'shape' in any order, single or double quotes); it is not
 * a Python literal parser. */
#include "npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c writes '<f4' as the host's floats; add byte swapping for this host"
#endif

static const char npy_magic[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };

sm_status sm_npy_write_f32(const char *path, const float *x, int64_t n, int64_t d, sm_err *err)
{
    if (!path) return sm_fail(err, SM_ERR_ARG, "sm_npy_write_f32: NULL path");
    uint64_t numel;
    if (n < 0 || d < 0 || __builtin_mul_overflow((uint64_t)n, (uint64_t)d, &numel) || numel > SIZE_MAX / 4)
        return sm_fail(err, SM_ERR_ARG, "'%s': cannot write a (%lld, %lld) array", path, (long long)n, (long long)d);
    if (numel > 0 && !x) return sm_fail(err, SM_ERR_ARG, "'%s': NULL data for a (%lld, %lld) array", path, (long long)n, (long long)d);
    /* 10 bytes of preamble + dict + padding + '\n' = a multiple of 64. */
    char dict[160];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)n, (long long)d);
    size_t total = ((size_t)10 + (size_t)dl + 1 + 63) / 64 * 64;
    unsigned char hdr[256];
    size_t hlen = total - 10;
    memcpy(hdr, npy_magic, 6);
    hdr[6] = 1;
    hdr[7] = 0;
    hdr[8] = (unsigned char)(hlen & 0xff);
    hdr[9] = (unsigned char)(hlen >> 8);
    memcpy(hdr + 10, dict, (size_t)dl);
    memset(hdr + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    hdr[total - 1] = '\n';
    sm_iov parts[2] = { { hdr, total }, { x, (size_t)numel * 4 } };
    return sm_file_write_atomic(path, parts, 2, err);
}

/* Finds key (quoted with ' or ") in the dict and returns the text after the
 * ':' and spaces, or NULL. */
static const char *dict_value(const char *h, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = h; (p = strpbrk(p, "'\"")) != NULL; p++) {
        if (strncmp(p + 1, key, kl) == 0 && p[1 + kl] == p[0]) {
            const char *v = p + 2 + kl;
            while (*v == ' ') v++;
            if (*v != ':') return NULL;
            v++;
            while (*v == ' ') v++;
            return v;
        }
    }
    return NULL;
}

/* "(a, b, c)" of dims[0..nd) into buf. */
static const char *shape_text(char *buf, size_t cap, const int64_t *dims, int nd)
{
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < nd && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
    return buf;
}

sm_status sm_npy_read_f32(const char *path, float **x, int64_t *n, int64_t *d, sm_err *err)
{
    if (n) *n = 0;
    if (d) *d = 0;
    if (!n || !d) {
        if (x) *x = NULL;
        return sm_fail(err, SM_ERR_ARG, "sm_npy_read_f32: NULL argument");
    }
    int64_t dims[2];
    sm_status st = sm_npy_read_f32_nd(path, x, 2, "(N, D)", dims, err);
    if (!st) { *n = dims[0]; *d = dims[1]; }
    return st;
}

sm_status sm_npy_read_f32_nd(const char *path, float **x, int ndim, const char *what, int64_t *out_dims,
                             sm_err *err)
{
    if (x) *x = NULL;
    for (int k = 0; out_dims && k < ndim; k++) out_dims[k] = 0;
    if (!path || !x || !out_dims || !what || ndim < 1 || ndim > 8)
        return sm_fail(err, SM_ERR_ARG, "sm_npy_read_f32: NULL argument or ndim not in 1..8");
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    sm_status st = SM_OK;
    char *h = NULL;
    float *data = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, npy_magic, 6) != 0) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': not a .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    uint32_t hlen;
    size_t pre_len;
    if (pre[6] == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) goto trunc_header;
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
        pre_len = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 8, 1, 4, f) != 4) goto trunc_header;
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        pre_len = 12;
        if (hlen > (1u << 24)) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': .npy header length %u is absurd", path, hlen);
            goto done;
        }
    } else {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': .npy format version %d.%d is not supported (1.0 to 3.0 are)", path, pre[6], pre[7]);
        goto done;
    }
    h = malloc((size_t)hlen + 1);
    if (!h) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); goto done; }
    if (fread(h, 1, hlen, f) != hlen) goto trunc_header;
    h[hlen] = '\0';
    if (strlen(h) != hlen || h[0] != '{') {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': .npy header is not a dict literal", path);
        goto done;
    }
    const char *descr = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"), *shape = dict_value(h, "shape");
    if (!descr || !fo || !shape) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': .npy header lacks 'descr', 'fortran_order' or 'shape': %.100s", path, h);
        goto done;
    }
    if (!((descr[0] == '\'' || descr[0] == '"') && strncmp(descr + 1, "<f4", 3) == 0 && descr[4] == descr[0])) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': .npy dtype is %.12s, not '<f4' (little-endian float32); convert with a.astype('<f4')", path, descr);
        goto done;
    }
    if (strncmp(fo, "False", 5) != 0) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': .npy array is in Fortran order; save np.ascontiguousarray(a) instead", path);
        goto done;
    }
    if (*shape != '(') goto bad_shape;
    int64_t dims[8];
    int nd = 0;
    const char *p = shape + 1;
    for (;;) {   /* "(3, 4)", "(3,)", "()" */
        while (*p == ' ') p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p) || nd == 8) goto bad_shape;
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno) goto bad_shape;
        dims[nd++] = v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') goto bad_shape;
    }
    if (nd != ndim) {
        st = sm_fail(err, SM_ERR_SHAPE, "'%s': .npy array has %d dimensions: shape %.*s is not %s", path, nd,
                     (int)strcspn(shape, ")") + 1, shape, what);
        goto done;
    }
    uint64_t numel = 1;
    for (int k = 0; k < nd; k++)
        if (__builtin_mul_overflow(numel, (uint64_t)dims[k], &numel) || numel > SIZE_MAX / 4 - 16) goto bad_shape;
    char st_buf[200];
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
        uint64_t have = (uint64_t)sb.st_size - pre_len - hlen;
        if (have < numel * 4) {
            st = sm_fail(err, SM_ERR_IO, "'%s': truncated: expected %llu bytes of float32 data, got %llu", path,
                         (unsigned long long)numel * 4, (unsigned long long)have);
            goto done;
        }
        if (have > numel * 4) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': %llu trailing bytes after the %s array", path,
                         (unsigned long long)(have - numel * 4), shape_text(st_buf, sizeof st_buf, dims, nd));
            goto done;
        }
    }
    data = malloc(numel ? (size_t)numel * 4 : 4);
    if (!data) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory for a %s array", shape_text(st_buf, sizeof st_buf, dims, nd));
        goto done;
    }
    size_t got = fread(data, 4, (size_t)numel, f);
    if (got != numel) {
        st = sm_fail(err, SM_ERR_IO, "'%s': truncated: expected %llu bytes of float32 data, got %llu", path,
                     (unsigned long long)numel * 4, (unsigned long long)got * 4);
        goto done;
    }
    *x = data;
    memcpy(out_dims, dims, (size_t)nd * sizeof *dims);
    data = NULL;
    goto done;
trunc_header:
    st = sm_fail(err, SM_ERR_IO, "'%s': truncated inside the .npy header", path);
    goto done;
bad_shape:
    st = sm_fail(err, SM_ERR_FORMAT, "'%s': unreadable .npy shape %.40s", path, shape ? shape : "?");
done:
    free(data);
    free(h);
    fclose(f);
    return st;
}
