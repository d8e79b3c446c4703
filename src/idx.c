/* idx.c - IDX reader (MNIST / Fashion-MNIST files), plain or gzipped.
 *
 * Everything goes through zlib's gzread, which reads plain files
 * transparently; the first two bytes are looked at only to word messages.
 * The element buffer grows as data actually arrives, so a tiny corrupt file
 * that claims 4 G images costs a small allocation and a "truncated" error,
 * not a giant malloc. */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "status.h"

/* Largest element count we accept: 2^36 bytes (64 GiB) is far beyond any
 * dataset read this way; anything larger is a corrupt header. */
#define IDX_MAX_BYTES ((uint64_t)1 << 36)

typedef struct {
    gzFile gz;
    const char *path;
    int gzipped;
} idx_file;

static const char *gz_msg(gzFile gz, int *zerr);

/* Reads up to len bytes; returns the count read (short only at end of data)
 * or -1 after filling err on a read/decompression error. */
static int64_t read_some(idx_file *f, void *buf, size_t len, sm_err *err)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f->gz, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *m = gz_msg(f->gz, &zerr);
            sm_fail(err, SM_ERR_IO, "cannot read '%s': %s%s", f->path,
                    zerr == Z_ERRNO ? strerror(errno) : m,
                    f->gzipped ? " (corrupt gzip file? try: gzip -t FILE)" : "");
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    int zerr = 0;
    const char *m = gz_msg(f->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
        sm_fail(err, SM_ERR_IO, "cannot read '%s': %s%s", f->path,
                zerr == Z_ERRNO ? strerror(errno) : m,
                f->gzipped ? " (corrupt gzip file? try: gzip -t FILE)" : "");
        return -1;
    }
    return (int64_t)got;
}

/* zlib's message without the "<fd:N>: " prefix that gzdopen gives it. */
static const char *gz_msg(gzFile gz, int *zerr)
{
    const char *m = gzerror(gz, zerr);
    const char *c = strncmp(m, "<fd:", 4) == 0 ? strstr(m, ": ") : NULL;
    return c ? c + 2 : m;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static sm_status idx_read(const char *path, uint32_t want_magic, sm_idx *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path) return sm_fail(err, SM_ERR_ARG, "IDX path is NULL");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char m2[2] = {0, 0};
    ssize_t pr = pread(fd, m2, 2, 0);
    idx_file f = { NULL, path, pr == 2 && m2[0] == 0x1f && m2[1] == 0x8b };
    f.gz = gzdopen(fd, "rb");
    if (!f.gz) {
        close(fd);
        return sm_fail(err, SM_ERR_NOMEM, "cannot read '%s': out of memory opening zlib stream", path);
    }
    gzbuffer(f.gz, 1u << 18);

    sm_status st = SM_OK;
    uint8_t *data = NULL;
    const int ndim = (int)(want_magic & 0xff);
    const char *what = ndim == 3 ? "image" : "label";
    unsigned char hdr[16];

    int64_t got = read_some(&f, hdr, 4, err);
    if (got < 0) { st = SM_ERR_IO; goto done; }
    if (got == 0) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': empty file, not an IDX %s file%s", path, what,
                     f.gzipped ? " (the gzip stream holds no data)" : "");
        goto done;
    }
    if (got < 4) {
        st = sm_fail(err, SM_ERR_IO, "'%s': truncated: the file ends inside the 4-byte IDX magic", path);
        goto done;
    }
    uint32_t magic = be32(hdr);
    if (magic != want_magic) {
        const char *hint = "";
        if (hdr[0] == 0x1f && hdr[1] == 0x8b) hint = "; is it gzipped twice? try: gunzip it once";
        else if (magic == SM_IDX_MAGIC_IMAGES) hint = "; this is an IDX image file, a label file was expected";
        else if (magic == SM_IDX_MAGIC_LABELS) hint = "; this is an IDX label file, an image file was expected";
        else if (hdr[0] == 0 && hdr[1] == 0 && hdr[2] != 0x08)
            hint = "; IDX element types other than unsigned byte (0x08) are not supported";
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': not an IDX %s file (magic 0x%08x, expected 0x%08x%s)",
                     path, what, magic, want_magic, hint);
        goto done;
    }
    got = read_some(&f, hdr + 4, (size_t)ndim * 4, err);
    if (got < 0) { st = SM_ERR_IO; goto done; }
    if (got < ndim * 4) {
        st = sm_fail(err, SM_ERR_IO, "'%s': truncated: the file ends inside the IDX header (%d dimensions)",
                     path, ndim);
        goto done;
    }
    int64_t dims[3] = {1, 1, 1};
    uint64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = be32(hdr + 4 + 4 * i);
        if (d == 0) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': dimension %d of the IDX header is 0; the file is empty or corrupt",
                         path, i);
            goto done;
        }
        dims[i] = d;
        if (__builtin_mul_overflow(total, (uint64_t)d, &total) || total > IDX_MAX_BYTES) {
            st = sm_fail(err, SM_ERR_FORMAT, "'%s': absurd IDX dimensions (dimension %d is %u, more than 2^36 bytes in all); the header is corrupt",
                         path, i, d);
            goto done;
        }
    }
    if (total > SIZE_MAX) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': IDX data of %llu bytes does not fit in memory on this platform",
                     path, (unsigned long long)total);
        goto done;
    }

    /* Grow as the bytes arrive (see the file comment). */
    size_t cap = 0, have = 0;
    while (have < total) {
        size_t ncap = cap ? cap * 2 : (size_t)1 << 20;
        if (ncap > total) ncap = (size_t)total;
        uint8_t *nd = realloc(data, ncap);
        if (!nd) {
            st = sm_fail(err, SM_ERR_NOMEM, "'%s': out of memory for %llu bytes of %s data", path,
                         (unsigned long long)total, what);
            goto done;
        }
        data = nd;
        cap = ncap;
        got = read_some(&f, data + have, cap - have, err);
        if (got < 0) { st = SM_ERR_IO; goto done; }
        have += (size_t)got;
        if (have < cap) break;
    }
    if (have < total) {
        st = sm_fail(err, SM_ERR_IO, "'%s': truncated: expected %llu bytes of %s data, got %llu%s", path,
                     (unsigned long long)total, what, (unsigned long long)have,
                     f.gzipped ? " (incomplete download? re-fetch or reinstall the file)" : "");
        goto done;
    }
    unsigned char extra;
    got = read_some(&f, &extra, 1, err);
    if (got < 0) { st = SM_ERR_IO; goto done; }
    if (got > 0) {
        st = sm_fail(err, SM_ERR_FORMAT, "'%s': trailing bytes after the %llu bytes of %s data the header announces; the header is wrong or the file corrupt",
                     path, (unsigned long long)total, what);
        goto done;
    }
    out->n = dims[0];
    out->h = dims[1];
    out->w = dims[2];
    out->data = data;
    data = NULL;

done:
    free(data);
    gzclose(f.gz);
    return st;
}

sm_status sm_idx_read_images(const char *path, sm_idx *out, sm_err *err)
{
    return idx_read(path, SM_IDX_MAGIC_IMAGES, out, err);
}

sm_status sm_idx_read_labels(const char *path, sm_idx *out, sm_err *err)
{
    return idx_read(path, SM_IDX_MAGIC_LABELS, out, err);
}

void sm_idx_free(sm_idx *x)
{
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
