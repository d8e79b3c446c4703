/* image.c - PNG/JPEG decoding and encoding, channel conversion, resizing.
 * See simile.h ("images") for the rules; this file holds the plumbing around libpng and
 * libjpeg-turbo.
 *
 * Both libraries report fatal errors through a callback that must not
 * return. Ours copies the message and longjmps to a jmp_buf in a context
 * struct that lives in the caller's frame; everything the decoder allocates
 * hangs off that struct, so the caller frees it the same way on success and
 * on failure, and no local variable of the function that called setjmp is
 * read after a longjmp (C11 7.13.2.1). Warnings are never printed. */
#include "simile.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "ckpt.h"
#include "model.h"
#include "status.h"

static const uint8_t png_magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* Most scans a progressive JPEG may have: a few hundred crafted scans of a
 * large image make decoding take minutes (libjpeg-turbo's TurboJPEG API
 * stops at 500 with TJPARAM_SCANLIMIT for the same reason). */
#define SM_JPEG_MAX_SCANS 500
/* Memory libjpeg may use for itself (progressive coefficient buffers: about
 * 2 bytes per pixel and component, so 384 MiB at the 64 Mpixel limit). */
#define SM_JPEG_MAX_MEMORY (768L << 20)
/* Largest ancillary PNG chunk libpng may allocate (big ICC profiles are a
 * few MB); libpng's own default depends on how it was built. */
#define SM_PNG_MAX_CHUNK (16u << 20)

sm_image_format sm_image_sniff(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    if (p && n >= 8 && memcmp(p, png_magic, 8) == 0) return SM_IMAGE_PNG;
    if (p && n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return SM_IMAGE_JPEG;
    return SM_IMAGE_UNKNOWN;
}

void sm_image_free(sm_image *img)
{
    if (!img) return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* The size limits, checked on the header's numbers before any pixel memory
 * exists. */
static sm_status check_size(const char *kind, uint64_t w, uint64_t h, sm_err *err)
{
    if (w == 0 || h == 0)
        return sm_fail(err, SM_ERR_FORMAT, "corrupt %s: the header says %llux%llu pixels", kind,
                       (unsigned long long)w, (unsigned long long)h);
    if (w > SM_IMAGE_MAX_SIDE || h > SM_IMAGE_MAX_SIDE || w * h > (uint64_t)SM_IMAGE_MAX_PIXELS)
        return sm_fail(err, SM_ERR_ARG,
                       "%s of %llux%llu pixels is too large; simile accepts at most %d pixels a side and "
                       "%lld Mpixel (scale it down first)",
                       kind, (unsigned long long)w, (unsigned long long)h, SM_IMAGE_MAX_SIDE,
                       (long long)(SM_IMAGE_MAX_PIXELS >> 20));
    return SM_OK;
}

/* ------------------------------------------------------------------ PNG in */

struct png_in {
    jmp_buf jb;
    char msg[200];
    const uint8_t *buf;
    size_t n, off;
    int truncated;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    sm_image img;
    int info_only;
};

static void png_error_cb(png_structp png, png_const_charp msg)
{
    struct png_in *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    longjmp(s->jb, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;   /* the library never prints; benign oddities are not errors */
}

static void png_read_cb(png_structp png, png_bytep data, size_t len)
{
    struct png_in *s = png_get_io_ptr(png);
    if (len > s->n - s->off) {
        s->truncated = 1;
        png_error(png, "the data ends early");
    }
    memcpy(data, s->buf + s->off, len);
    s->off += len;
}

/* Runs libpng over s->buf; on return (either way) the caller frees s. */
static sm_status png_in_run(struct png_in *s, sm_err *err)
{
    /* The IHDR chunk must come first (PNG spec 5.6): its size fields are
     * checked here, from the raw bytes, before libpng allocates anything. */
    if (s->n < 8 + 8 + 13) return sm_fail(err, SM_ERR_FORMAT, "truncated PNG: the file ends inside its header");
    const uint8_t *p = s->buf + 8;
    if (memcmp(p + 4, "IHDR", 4) == 0) {
        uint32_t w = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
        uint32_t h = (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
        sm_status st = check_size("PNG image", w, h, err);
        if (st) return st;
    }
    if (setjmp(s->jb)) {
        if (s->truncated) return sm_fail(err, SM_ERR_FORMAT, "truncated PNG: the file ends before the image does");
        return sm_fail(err, SM_ERR_FORMAT, "corrupt PNG: %s", s->msg);
    }
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, png_error_cb, png_warning_cb);
    if (!s->png) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a PNG decoder");
    s->info = png_create_info_struct(s->png);
    if (!s->info) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a PNG decoder");
    png_set_read_fn(s->png, s, png_read_cb);
    png_set_user_limits(s->png, SM_IMAGE_MAX_SIDE, SM_IMAGE_MAX_SIDE);   /* a second guard */
    png_set_chunk_malloc_max(s->png, SM_PNG_MAX_CHUNK);
    png_read_info(s->png, s->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    sm_status st = check_size("PNG image", w, h, err);
    if (st) return st;
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (png_get_valid(s->png, s->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(s->png);
    if (depth == 16) png_set_scale_16(s->png);   /* rounds: (v * 255 + 32895) >> 16 */
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);
    int c = png_get_channels(s->png, s->info);
    if (c < 1 || c > 4 || png_get_bit_depth(s->png, s->info) != 8 ||
        png_get_rowbytes(s->png, s->info) != (size_t)w * (size_t)c)
        return sm_fail(err, SM_ERR_INTERNAL, "PNG decoder: unexpected row layout after transforms");
    s->img.w = w;
    s->img.h = h;
    s->img.c = c;
    if (s->info_only) return SM_OK;

    size_t stride = (size_t)w * (size_t)c;
    s->img.px = malloc(stride * h);
    s->rows = malloc(sizeof *s->rows * h);
    if (!s->img.px || !s->rows)
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for a %lux%lu PNG image", (unsigned long)w, (unsigned long)h);
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = s->img.px + y * stride;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, NULL);   /* reads up to IEND: a file cut after the pixels is still truncated */
    return SM_OK;
}

static sm_status png_decode(const uint8_t *buf, size_t n, int info_only, sm_image *out, sm_err *err)
{
    struct png_in *s = calloc(1, sizeof *s);
    if (!s) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a PNG decoder");
    s->buf = buf;
    s->n = n;
    s->off = 0;
    s->info_only = info_only;
    sm_status st = png_in_run(s, err);
    if (s->png) png_destroy_read_struct(&s->png, s->info ? &s->info : NULL, NULL);
    free(s->rows);
    if (st) free(s->img.px);
    else *out = s->img;
    free(s);
    return st;
}

/* ----------------------------------------------------------------- JPEG in */

struct jpeg_in {
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 64];
    int created;
    sm_image img;
    int info_only;
};

static void jpeg_error_cb(j_common_ptr cinfo)
{
    struct jpeg_in *s = cinfo->client_data;
    char m[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, m);
    snprintf(s->msg, sizeof s->msg, "corrupt JPEG: %s", m);
    longjmp(s->jb, 1);
}

/* Warnings that mean pixels were lost (damaged entropy-coded data, a file
 * cut short) stop the decoder, as TurboJPEG's stop-on-warning does: a
 * damaged photo is refused, not accepted half grey. Harmless oddities
 * (extraneous bytes before a marker, an unknown JFIF version, a bad ICC
 * marker) are ignored. Nothing is printed. */
static void jpeg_emit_cb(j_common_ptr cinfo, int level)
{
    if (level >= 0) return;   /* trace messages */
    struct jpeg_in *s = cinfo->client_data;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_ARITH_BAD_CODE || code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL ||
        code == JWRN_BOGUS_PROGRESSION) {
        char m[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, m);
        if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER)
            snprintf(s->msg, sizeof s->msg, "truncated JPEG: the file ends before the image does (%s)", m);
        else
            snprintf(s->msg, sizeof s->msg, "corrupt JPEG: %s", m);
        longjmp(s->jb, 1);
    }
}

static void jpeg_output_cb(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_progress_cb(j_common_ptr cinfo)
{
    struct jpeg_in *s = cinfo->client_data;
    if (cinfo->is_decompressor && s->d.input_scan_number > SM_JPEG_MAX_SCANS) {
        snprintf(s->msg, sizeof s->msg, "corrupt JPEG: more than %d progressive scans", SM_JPEG_MAX_SCANS);
        longjmp(s->jb, 1);
    }
}

/* The EXIF orientation (TIFF tag 0x0112 in IFD0 of the APP1 "Exif" segment,
 * EXIF 2.32 section 4.6.4), 1..8; 1 when absent or unreadable: a damaged
 * EXIF block never fails an image whose pixels are fine. */
static uint32_t exif_get(const uint8_t *p, int le, int bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint32_t)p[le ? i : bytes - 1 - i] << (8 * i);
    return v;
}

static int exif_orientation(j_decompress_ptr d)
{
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 + 8 || memcmp(m->data, "Exif\0\0", 6) != 0) continue;
        const uint8_t *t = m->data + 6;   /* the TIFF header */
        size_t n = m->data_length - 6;
        int le = t[0] == 'I' && t[1] == 'I';
        if ((!le && !(t[0] == 'M' && t[1] == 'M')) || exif_get(t + 2, le, 2) != 42) return 1;
        uint32_t ifd = exif_get(t + 4, le, 4);
        if (ifd > n - 2) return 1;
        uint32_t count = exif_get(t + ifd, le, 2);
        for (uint32_t i = 0; i < count; i++) {
            size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
            if (e + 12 > n) return 1;
            if (exif_get(t + e, le, 2) != 0x0112) continue;
            uint32_t v = exif_get(t + e + 8, le, 2);   /* type SHORT, count 1: the value is inline */
            return exif_get(t + e + 2, le, 2) == 3 && v >= 1 && v <= 8 ? (int)v : 1;
        }
        return 1;
    }
    return 1;
}

/* Turns the stored pixels (w, h) upright for EXIF orientation o; for 5..8
 * the result is h wide and w high. Returns the new buffer, or NULL. */
static uint8_t *orient(const uint8_t *px, int64_t w, int64_t h, int c, int o)
{
    uint8_t *out = malloc((size_t)(w * h * c));
    if (!out) return NULL;
    int64_t ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++) {
            int64_t sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;              /* mirrored */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;      /* rotated 180 */
            case 4: sx = x; sy = h - 1 - y; break;              /* flipped */
            case 5: sx = y; sy = x; break;                      /* transposed */
            case 6: sx = y; sy = h - 1 - x; break;              /* needs 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;      /* transversed */
            case 8: sx = w - 1 - y; sy = x; break;              /* needs 90 counter-clockwise */
            default: sx = x; sy = y; break;
            }
            memcpy(out + (y * ow + x) * c, px + (sy * w + sx) * c, (size_t)c);
        }
    return out;
}

static sm_status jpeg_in_run(struct jpeg_in *s, const uint8_t *buf, size_t n, sm_err *err)
{
    if (setjmp(s->jb)) return sm_fail(err, SM_ERR_FORMAT, "%s", s->msg);
    s->d.err = jpeg_std_error(&s->jerr);
    s->jerr.error_exit = jpeg_error_cb;
    s->jerr.emit_message = jpeg_emit_cb;
    s->jerr.output_message = jpeg_output_cb;
    s->d.client_data = s;
    jpeg_create_decompress(&s->d);
    s->created = 1;
    s->d.mem->max_memory_to_use = SM_JPEG_MAX_MEMORY;
    s->progress.progress_monitor = jpeg_progress_cb;
    s->d.progress = &s->progress;
    jpeg_mem_src(&s->d, buf, (unsigned long)n);
    jpeg_save_markers(&s->d, JPEG_APP0 + 1, 0xffff);   /* EXIF, for the orientation */
    jpeg_read_header(&s->d, TRUE);
    sm_status st = check_size("JPEG image", s->d.image_width, s->d.image_height, err);
    if (st) return st;
    int c;
    if (s->d.jpeg_color_space == JCS_CMYK || s->d.jpeg_color_space == JCS_YCCK)
        return sm_fail(err, SM_ERR_UNSUPPORTED, "CMYK JPEG images are not supported; convert it to RGB first");
    if (s->d.num_components == 1) {
        s->d.out_color_space = JCS_GRAYSCALE;
        c = 1;
    } else {
        s->d.out_color_space = JCS_RGB;
        c = 3;
    }
    int o = exif_orientation(&s->d);
    s->img.w = o >= 5 ? s->d.image_height : s->d.image_width;
    s->img.h = o >= 5 ? s->d.image_width : s->d.image_height;
    s->img.c = c;
    if (s->info_only) return SM_OK;

    jpeg_start_decompress(&s->d);
    if ((int)s->d.output_components != c || s->d.output_width != s->d.image_width ||
        s->d.output_height != s->d.image_height)
        return sm_fail(err, SM_ERR_INTERNAL, "JPEG decoder: unexpected output layout");
    size_t stride = (size_t)s->d.output_width * (size_t)c;
    s->img.px = malloc(stride * (size_t)s->d.output_height);
    if (!s->img.px)
        return sm_fail(err, SM_ERR_NOMEM, "out of memory for a %lldx%lld JPEG image", (long long)s->img.w,
                       (long long)s->img.h);
    while (s->d.output_scanline < s->d.output_height) {
        JSAMPROW row = s->img.px + (size_t)s->d.output_scanline * stride;
        jpeg_read_scanlines(&s->d, &row, 1);
    }
    jpeg_finish_decompress(&s->d);
    if (o != 1) {
        uint8_t *up = orient(s->img.px, s->d.output_width, s->d.output_height, c, o);
        if (!up) return sm_fail(err, SM_ERR_NOMEM, "out of memory turning a JPEG image upright");
        free(s->img.px);
        s->img.px = up;
    }
    return SM_OK;
}

static sm_status jpeg_decode(const uint8_t *buf, size_t n, int info_only, sm_image *out, sm_err *err)
{
    struct jpeg_in *s = calloc(1, sizeof *s);
    if (!s) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a JPEG decoder");
    s->info_only = info_only;
    sm_status st = jpeg_in_run(s, buf, n, err);
    if (s->created) jpeg_destroy_decompress(&s->d);
    if (st) free(s->img.px);
    else *out = s->img;
    free(s);
    return st;
}

/* ------------------------------------------------------------ decode entry */

static sm_status decode_any(const void *buf, size_t n, int info_only, sm_image *out, sm_err *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (!out || (!buf && n)) return sm_fail(err, SM_ERR_ARG, "sm_image_decode: NULL argument");
    switch (sm_image_sniff(buf, n)) {
    case SM_IMAGE_PNG: return png_decode(buf, n, info_only, out, err);
    case SM_IMAGE_JPEG: return jpeg_decode(buf, n, info_only, out, err);
    case SM_IMAGE_UNKNOWN: break;
    }
    if (n == 0) return sm_fail(err, SM_ERR_FORMAT, "not a PNG or JPEG image (it is empty)");
    const uint8_t *p = buf;
    char head[40] = "";
    for (size_t i = 0, o = 0; i < n && i < 4; i++) o += (size_t)snprintf(head + o, sizeof head - o, " %02x", p[i]);
    return sm_fail(err, SM_ERR_FORMAT, "not a PNG or JPEG image (it starts with bytes%s)", head);
}

sm_status sm_image_decode(const void *buf, size_t n, sm_image *out, sm_err *err)
{
    return decode_any(buf, n, 0, out, err);
}

/* Reads a whole file into a malloc'd buffer (NULL-safe for empty files). */
static sm_status read_all(const char *path, uint8_t **buf, size_t *n, sm_err *err)
{
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fileno(f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        fclose(f);
        return sm_fail(err, SM_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)stt.st_size > SM_IMAGE_MAX_FILE) {
        fclose(f);
        return sm_fail(err, SM_ERR_IO, "'%s' is %lld bytes; image files over %zu MiB are refused", path,
                       (long long)stt.st_size, SM_IMAGE_MAX_FILE >> 20);
    }
    size_t size = (size_t)stt.st_size;
    uint8_t *b = malloc(size ? size : 1);
    if (!b) {
        fclose(f);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    size_t got = fread(b, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != size) {
        free(b);
        return sm_fail(err, SM_ERR_IO, "cannot read '%s': %s", path, bad ? strerror(errno) : "the file shrank while read");
    }
    *buf = b;
    *n = size;
    return SM_OK;
}

static sm_status read_any(const char *path, int info_only, sm_image *out, sm_err *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) return sm_fail(err, SM_ERR_ARG, "sm_image_read: NULL argument");
    uint8_t *buf;
    size_t n;
    sm_status st = read_all(path, &buf, &n, err);
    if (st) return st;
    st = decode_any(buf, n, info_only, out, err);
    free(buf);
    if (st) return sm_fail_prefix(err, st, "'%s': ", path);
    return SM_OK;
}

sm_status sm_image_read(const char *path, sm_image *out, sm_err *err)
{
    return read_any(path, 0, out, err);
}

sm_status sm_image_read_info(const char *path, int64_t *w, int64_t *h, int *c, sm_err *err)
{
    sm_image img;
    sm_status st = read_any(path, 1, &img, err);
    if (st) return st;
    if (w) *w = img.w;
    if (h) *h = img.h;
    if (c) *c = img.c;
    return SM_OK;
}

/* -------------------------------------------------------------- conversion */

static int valid_image(const sm_image *in)
{
    return in && in->px && in->w >= 1 && in->h >= 1 && in->c >= 1 && in->c <= 4;
}

/* Converts n pixels of sc channels to dc channels (see simile.h, "images"). */
static void convert_pixels(uint8_t *dst, int dc, const uint8_t *src, int sc, int64_t n)
{
    for (int64_t i = 0; i < n; i++, src += sc, dst += dc) {
        uint32_t r, g, b, a = 255;
        if (sc <= 2) {
            r = g = b = src[0];
            if (sc == 2) a = src[1];
        } else {
            r = src[0]; g = src[1]; b = src[2];
            if (sc == 4) a = src[3];
        }
        int keep_alpha = dc == 2 || dc == 4;
        if (dc <= 2) {
            uint32_t luma = 299 * r + 587 * g + 114 * b;   /* 1000 x BT.601 Y */
            /* one rounding: round(luma * a / (1000 * 255)), or round(luma / 1000) with alpha kept */
            dst[0] = (uint8_t)(keep_alpha ? (luma + 500) / 1000 : (luma * a + 127500) / 255000);
            if (dc == 2) dst[1] = (uint8_t)a;
        } else if (keep_alpha) {
            dst[0] = (uint8_t)r; dst[1] = (uint8_t)g; dst[2] = (uint8_t)b; dst[3] = (uint8_t)a;
        } else {
            dst[0] = (uint8_t)((r * a + 127) / 255);
            dst[1] = (uint8_t)((g * a + 127) / 255);
            dst[2] = (uint8_t)((b * a + 127) / 255);
        }
    }
}

sm_status sm_image_convert(const sm_image *in, int c, sm_image *out, sm_err *err)
{
    if (!valid_image(in) || !out) return sm_fail(err, SM_ERR_ARG, "sm_image_convert: empty image or NULL output");
    if (c < 1 || c > 4) return sm_fail(err, SM_ERR_ARG, "sm_image_convert: %d channels; expected 1 to 4", c);
    int64_t n = in->w * in->h;
    uint8_t *px = malloc((size_t)n * (size_t)c);
    if (!px) return sm_fail(err, SM_ERR_NOMEM, "out of memory converting a %lldx%lld image", (long long)in->w, (long long)in->h);
    if (c == in->c) memcpy(px, in->px, (size_t)n * (size_t)c);
    else convert_pixels(px, c, in->px, in->c, n);
    sm_image r = { in->w, in->h, c, px };
    if (out == in) free(out->px);
    *out = r;
    return SM_OK;
}

/* ---------------------------------------------------------------- resizing */

/* Per output index j of one axis: taps first[j] .. first[j] + count[j] - 1
 * with weights wt[j * maxt + t] (summing to 1). */
typedef struct axis {
    int64_t *first, *count;
    float *wt;
    int64_t maxt;
} axis;

static void axis_free(axis *a)
{
    free(a->first);
    free(a->count);
    free(a->wt);
}

static int axis_build(axis *a, int64_t in, int64_t out)
{
    double s = (double)in / (double)out;
    a->maxt = out <= in ? (int64_t)ceil(s) + 1 : 2;
    a->first = malloc(sizeof *a->first * (size_t)out);
    a->count = malloc(sizeof *a->count * (size_t)out);
    a->wt = malloc(sizeof *a->wt * (size_t)(out * a->maxt));
    if (!a->first || !a->count || !a->wt) return 0;
    for (int64_t j = 0; j < out; j++) {
        float *w = a->wt + j * a->maxt;
        if (out <= in) {   /* area: the input interval [lo, hi) */
            double lo = (double)(j * in) / (double)out, hi = (double)((j + 1) * in) / (double)out;
            int64_t i0 = (int64_t)floor(lo), i1 = (int64_t)ceil(hi);
            if (i1 > in) i1 = in;
            int64_t t = 0;
            double sum = 0, wd[64];
            double *ws = a->maxt <= 64 ? wd : NULL;
            for (int64_t i = i0; i < i1 && t < a->maxt; i++) {
                double o = fmin(hi, (double)(i + 1)) - fmax(lo, (double)i);
                if (o <= 0) { if (t == 0) i0++; continue; }
                if (ws) ws[t] = o;
                else w[t] = (float)o;
                sum += o;
                t++;
            }
            for (int64_t k = 0; k < t; k++) w[k] = (float)((ws ? ws[k] : (double)w[k]) / sum);
            a->first[j] = i0;
            a->count[j] = t;
        } else {           /* bilinear, half-pixel centres */
            double src = ((double)j + 0.5) * s - 0.5;
            if (src < 0) src = 0;
            int64_t i0 = (int64_t)floor(src);
            if (i0 >= in - 1) {
                a->first[j] = in - 1;
                a->count[j] = 1;
                w[0] = 1.0f;
            } else {
                double f = src - (double)i0;
                a->first[j] = i0;
                a->count[j] = 2;
                w[0] = (float)(1.0 - f);
                w[1] = (float)f;
            }
        }
    }
    return 1;
}

/* Resamples in (h, w, c) u8 to out (oh, ow, c) float, unrounded. */
static sm_status resample(const uint8_t *in, int64_t w, int64_t h, int c, int64_t ow, int64_t oh, float *out,
                          sm_err *err)
{
    axis ax = {0}, ay = {0};
    float *tmp = malloc(sizeof *tmp * (size_t)(h * ow * c));
    sm_status st = SM_OK;
    if (!tmp || !axis_build(&ax, w, ow) || !axis_build(&ay, h, oh)) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory resizing a %lldx%lld image to %lldx%lld", (long long)w,
                     (long long)h, (long long)ow, (long long)oh);
        goto done;
    }
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *row = in + y * w * c;
        float *t = tmp + y * ow * c;
        for (int64_t x = 0; x < ow; x++) {
            const float *wt = ax.wt + x * ax.maxt;
            const uint8_t *src = row + ax.first[x] * c;
            for (int k = 0; k < c; k++) {
                float acc = 0;
                for (int64_t i = 0; i < ax.count[x]; i++) acc += wt[i] * (float)src[i * c + k];
                t[x * c + k] = acc;
            }
        }
    }
    int64_t rowlen = ow * c;
    for (int64_t y = 0; y < oh; y++) {
        const float *wt = ay.wt + y * ay.maxt;
        float *o = out + y * rowlen;
        const float *src = tmp + ay.first[y] * rowlen;
        for (int64_t e = 0; e < rowlen; e++) o[e] = wt[0] * src[e];
        for (int64_t i = 1; i < ay.count[y]; i++)
            for (int64_t e = 0; e < rowlen; e++) o[e] += wt[i] * src[i * rowlen + e];
    }
done:
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    return st;
}

static uint8_t round_u8(float v)
{
    if (!(v > 0)) return 0;
    if (v >= 255) return 255;
    return (uint8_t)(v + 0.5f);
}

static int valid_size(int64_t w, int64_t h)
{
    return w >= 1 && h >= 1 && w <= SM_IMAGE_MAX_SIDE && h <= SM_IMAGE_MAX_SIDE && w * h <= SM_IMAGE_MAX_PIXELS;
}

sm_status sm_image_resize(const sm_image *in, int64_t w, int64_t h, sm_image *out, sm_err *err)
{
    if (!valid_image(in) || !out) return sm_fail(err, SM_ERR_ARG, "sm_image_resize: empty image or NULL output");
    if (!valid_size(w, h))
        return sm_fail(err, SM_ERR_ARG, "cannot resize to %lldx%lld: sizes must be 1..%d a side, at most %lld Mpixel",
                       (long long)w, (long long)h, SM_IMAGE_MAX_SIDE, (long long)(SM_IMAGE_MAX_PIXELS >> 20));
    size_t n = (size_t)(w * h * in->c);
    uint8_t *px = malloc(n);
    float *f = malloc(sizeof *f * n);
    if (!px || !f) {
        free(px);
        free(f);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory resizing to %lldx%lld", (long long)w, (long long)h);
    }
    sm_status st = resample(in->px, in->w, in->h, in->c, w, h, f, err);
    if (st) {
        free(px);
        free(f);
        return st;
    }
    for (size_t i = 0; i < n; i++) px[i] = round_u8(f[i]);
    free(f);
    sm_image r = { w, h, in->c, px };
    if (out == in) free(out->px);
    *out = r;
    return SM_OK;
}

sm_status sm_image_to_planes(const sm_image *img, int c, int64_t h, int64_t w, uint8_t *out, sm_err *err)
{
    if (!valid_image(img) || !out) return sm_fail(err, SM_ERR_ARG, "sm_image_to_planes: empty image or NULL output");
    if (c < 1 || c > 4) return sm_fail(err, SM_ERR_ARG, "sm_image_to_planes: %d channels; expected 1 to 4", c);
    if (!valid_size(w, h))
        return sm_fail(err, SM_ERR_ARG, "cannot resize to %lldx%lld: sizes must be 1..%d a side", (long long)w,
                       (long long)h, SM_IMAGE_MAX_SIDE);
    sm_image conv = {0}, sized = {0};
    sm_status st = sm_image_convert(img, c, &conv, err);
    if (st) return st;
    const sm_image *src = &conv;
    if (conv.w != w || conv.h != h) {
        if ((st = sm_image_resize(&conv, w, h, &sized, err))) goto done;
        src = &sized;
    }
    int64_t plane = w * h;
    for (int k = 0; k < c; k++)
        for (int64_t i = 0; i < plane; i++) out[k * plane + i] = src->px[i * c + k];
done:
    sm_image_free(&conv);
    sm_image_free(&sized);
    return st;
}

sm_status sm_image_to_model_input(const sm_model *m, const sm_image *img, float *out, sm_err *err)
{
    if (!m || !out) return sm_fail(err, SM_ERR_ARG, "sm_image_to_model_input: NULL argument");
    int64_t c, h, w;
    sm_model_input_shape(m, &c, &h, &w);
    if (c != 1 && c != 3)
        return sm_fail(err, SM_ERR_UNSUPPORTED, "the model takes %lld-channel input; images convert to 1 (gray) or 3 (RGB)",
                       (long long)c);
    size_t n = (size_t)(c * h * w);
    uint8_t *u = malloc(n);
    if (!u) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a %lldx%lldx%lld model input", (long long)c,
                           (long long)h, (long long)w);
    /* through u8, as a dataset stores images: a file embeds exactly as the
     * same file loaded into a folder dataset */
    sm_status st = sm_image_to_planes(img, (int)c, h, w, u, err);
    if (!st) sm_images_to_float(out, u, (int64_t)n, m->in_mean, m->in_std);
    free(u);
    return st;
}

/* ----------------------------------------------------------------- PNG out */

struct png_out {
    jmp_buf jb;
    char msg[200];
    png_structp png;
    png_infop info;
    uint8_t *buf;
    size_t n, cap;
    int nomem;
};

static void png_write_cb(png_structp png, png_bytep data, size_t len)
{
    struct png_out *s = png_get_io_ptr(png);
    if (len > s->cap - s->n) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap - s->n < len) {
            if (cap > SIZE_MAX / 2) { s->nomem = 1; png_error(png, "output too large"); }
            cap *= 2;
        }
        uint8_t *b = realloc(s->buf, cap);
        if (!b) { s->nomem = 1; png_error(png, "out of memory"); }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, data, len);
    s->n += len;
}

static void png_flush_cb(png_structp png) { (void)png; }

static void png_error_cb_w(png_structp png, png_const_charp msg)
{
    struct png_out *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    longjmp(s->jb, 1);
}

static sm_status png_out_run(struct png_out *s, const uint8_t *px, int64_t w, int64_t h, int c, sm_err *err)
{
    if (setjmp(s->jb)) return sm_fail(err, s->nomem ? SM_ERR_NOMEM : SM_ERR_INTERNAL, "PNG encoder: %s", s->msg);
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, png_error_cb_w, png_warning_cb);
    if (!s->png) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a PNG encoder");
    s->info = png_create_info_struct(s->png);
    if (!s->info) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a PNG encoder");
    png_set_write_fn(s->png, s, png_write_cb, png_flush_cb);
    static const int ctypes[5] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                   PNG_COLOR_TYPE_RGB_ALPHA };
    png_set_IHDR(s->png, s->info, (png_uint_32)w, (png_uint_32)h, 8, ctypes[c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    for (int64_t y = 0; y < h; y++) png_write_row(s->png, px + (size_t)(y * w * c));
    png_write_end(s->png, NULL);
    return SM_OK;
}

static sm_status check_encode_args(const char *what, const uint8_t *px, int64_t w, int64_t h, int c,
                                   uint8_t **out, size_t *n, sm_err *err)
{
    if (!px || !out || !n) return sm_fail(err, SM_ERR_ARG, "%s: NULL argument", what);
    if (!valid_size(w, h))
        return sm_fail(err, SM_ERR_ARG, "%s: %lldx%lld pixels; sizes must be 1..%d a side, at most %lld Mpixel", what,
                       (long long)w, (long long)h, SM_IMAGE_MAX_SIDE, (long long)(SM_IMAGE_MAX_PIXELS >> 20));
    (void)c;
    return SM_OK;
}

sm_status sm_png_encode(const uint8_t *px, int64_t w, int64_t h, int c, uint8_t **out, size_t *n, sm_err *err)
{
    if (out) *out = NULL;
    if (n) *n = 0;
    sm_status st = check_encode_args("sm_png_encode", px, w, h, c, out, n, err);
    if (st) return st;
    if (c < 1 || c > 4) return sm_fail(err, SM_ERR_ARG, "sm_png_encode: %d channels; expected 1 to 4", c);
    struct png_out *s = calloc(1, sizeof *s);
    if (!s) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a PNG encoder");
    st = png_out_run(s, px, w, h, c, err);
    if (s->png) png_destroy_write_struct(&s->png, s->info ? &s->info : NULL);
    if (st) {
        free(s->buf);
    } else {
        *out = s->buf;
        *n = s->n;
    }
    free(s);
    return st;
}

static sm_status write_encoded(const char *path, uint8_t *buf, size_t n, sm_err *err)
{
    sm_iov part = { buf, n };
    sm_status st = sm_file_write_atomic(path, &part, 1, err);
    free(buf);
    return st;
}

sm_status sm_png_write(const char *path, const uint8_t *px, int64_t w, int64_t h, int c, sm_err *err)
{
    if (!path) return sm_fail(err, SM_ERR_ARG, "sm_png_write: NULL path");
    uint8_t *buf;
    size_t n;
    sm_status st = sm_png_encode(px, w, h, c, &buf, &n, err);
    if (st) return sm_fail_prefix(err, st, "writing '%s': ", path);
    return write_encoded(path, buf, n, err);
}

/* ---------------------------------------------------------------- JPEG out */

struct jpeg_out {
    struct jpeg_compress_struct cc;
    struct jpeg_error_mgr jerr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 64];
    int created;
    unsigned char *buf;   /* jpeg_mem_dest's buffer: malloc'd by libjpeg-turbo */
    unsigned long n;
};

static void jpeg_error_cb_w(j_common_ptr cinfo)
{
    struct jpeg_out *s = cinfo->client_data;
    char m[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, m);
    snprintf(s->msg, sizeof s->msg, "JPEG encoder: %s", m);
    longjmp(s->jb, 1);
}

static sm_status jpeg_out_run(struct jpeg_out *s, const uint8_t *px, int64_t w, int64_t h, int c, int quality,
                              sm_err *err)
{
    if (setjmp(s->jb)) return sm_fail(err, SM_ERR_INTERNAL, "%s", s->msg);
    s->cc.err = jpeg_std_error(&s->jerr);
    s->jerr.error_exit = jpeg_error_cb_w;
    s->jerr.output_message = jpeg_output_cb;
    s->cc.client_data = s;
    jpeg_create_compress(&s->cc);
    s->created = 1;
    jpeg_mem_dest(&s->cc, &s->buf, &s->n);
    s->cc.image_width = (JDIMENSION)w;
    s->cc.image_height = (JDIMENSION)h;
    s->cc.input_components = c;
    s->cc.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&s->cc);
    jpeg_set_quality(&s->cc, quality, TRUE);
    jpeg_start_compress(&s->cc, TRUE);
    while (s->cc.next_scanline < s->cc.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)s->cc.next_scanline * (size_t)(w * c));
        jpeg_write_scanlines(&s->cc, &row, 1);
    }
    jpeg_finish_compress(&s->cc);
    return SM_OK;
}

sm_status sm_jpeg_encode(const uint8_t *px, int64_t w, int64_t h, int c, int quality, uint8_t **out, size_t *n,
                         sm_err *err)
{
    if (out) *out = NULL;
    if (n) *n = 0;
    sm_status st = check_encode_args("sm_jpeg_encode", px, w, h, c, out, n, err);
    if (st) return st;
    if (c != 1 && c != 3) return sm_fail(err, SM_ERR_ARG, "sm_jpeg_encode: %d channels; JPEG takes 1 (gray) or 3 (RGB)", c);
    if (quality < 1 || quality > 100) return sm_fail(err, SM_ERR_ARG, "sm_jpeg_encode: quality %d; expected 1 to 100", quality);
    struct jpeg_out *s = calloc(1, sizeof *s);
    if (!s) return sm_fail(err, SM_ERR_NOMEM, "out of memory for a JPEG encoder");
    st = jpeg_out_run(s, px, w, h, c, quality, err);
    if (s->created) jpeg_destroy_compress(&s->cc);
    if (st) {
        free(s->buf);
    } else {
        *out = s->buf;
        *n = (size_t)s->n;
    }
    free(s);
    return st;
}

sm_status sm_jpeg_write(const char *path, const uint8_t *px, int64_t w, int64_t h, int c, int quality, sm_err *err)
{
    if (!path) return sm_fail(err, SM_ERR_ARG, "sm_jpeg_write: NULL path");
    uint8_t *buf;
    size_t n;
    sm_status st = sm_jpeg_encode(px, w, h, c, quality, &buf, &n, err);
    if (st) return sm_fail_prefix(err, st, "writing '%s': ", path);
    return write_encoded(path, buf, n, err);
}
