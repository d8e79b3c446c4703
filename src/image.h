/* image.h - PNG and JPEG in and out, channel conversion, resizing (private).
 *
 * Decoding is libpng's and libjpeg-turbo's (never a hand-written decoder),
 * wrapped so that a corrupt, truncated or hostile file is an error message,
 * never a crash, an exit or a print: both libraries report errors through
 * our own handlers, which longjmp back into the decoder call.
 *
 * What is refused before any pixel memory is allocated (decompression bombs):
 * a header that says width or height > SM_IMAGE_MAX_SIDE or
 * width * height > SM_IMAGE_MAX_PIXELS. A forged 30000x30000 PNG header is
 * rejected from its first 33 bytes.
 *
 * Pixels are u8, interleaved, row-major: px[(y * w + x) * c + k], with
 *   c = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
 * 16-bit PNG samples are scaled to 8 bits with rounding (v * 255 / 65535),
 * palettes are expanded (to RGBA when the palette has transparency, tRNS),
 * 1/2/4-bit gray is expanded to 0..255, Adam7-interlaced files are
 * deinterlaced. A gray JPEG is c = 1, any other JPEG c = 3 (CMYK JPEGs are
 * refused as unsupported). A JPEG's EXIF orientation (1..8) is applied, so
 * a phone photo comes out upright and w, h are those of the upright image;
 * a missing or unreadable EXIF block means "as stored". Gamma, colour
 * profiles and PNG's eXIf chunk are ignored: the stored samples are used.
 *
 * Conversions (sm_image_convert):
 *   gray = BT.601 luma, round((299 R + 587 G + 114 B) / 1000)   (ITU-R BT.601)
 *   RGB from gray: the gray value in all three channels
 *   dropping alpha composites over black: v' = round(v * a / 255), so fully
 *   transparent pixels are 0 whatever colour they hide (Fashion-MNIST's
 *   background is black too).
 *
 * Resizing (sm_image_resize), each axis on its own, in float, rounded to the
 * nearest u8 once at the end:
 *   shrinking or same size (out <= in): area averaging. Output pixel j covers
 *     the input interval [j * in/out, (j+1) * in/out); each input pixel
 *     weighs by the length of its overlap with that interval divided by
 *     in/out. At the same size this is the identity; halving averages 2x2
 *     blocks exactly (OpenCV's INTER_AREA, PIL's BOX filter).
 *   enlarging (out > in): bilinear with pixel centres at half-integers,
 *     src = (j + 0.5) * in/out - 0.5 clamped to [0, in - 1], the weights
 *     1 - f and f of the two nearest input pixels (PyTorch's
 *     interpolate(mode="bilinear", align_corners=False), OpenCV's
 *     INTER_LINEAR).
 *   Horizontal pass first, then vertical. A constant image stays constant.
 */
#ifndef SM_IMAGE_H
#define SM_IMAGE_H
#include <stddef.h>
#include <stdint.h>

#include "simile.h"

/* Largest width or height accepted (a 16384x16384 RGBA image is 1 GiB). */
#define SM_IMAGE_MAX_SIDE 16384
/* Largest pixel count accepted: 64 Mi pixels (8192x8192, 256 MiB as RGBA). */
#define SM_IMAGE_MAX_PIXELS ((int64_t)1 << 26)
/* Largest file sm_image_read reads (any real PNG/JPEG within the pixel
 * limits is far smaller). */
#define SM_IMAGE_MAX_FILE ((size_t)1 << 30)

typedef struct sm_image {
    int64_t w, h;   /* >= 1 */
    int c;          /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *px;    /* (h, w, c) interleaved, owned (malloc) */
} sm_image;

typedef enum sm_image_format {
    SM_IMAGE_UNKNOWN = 0,
    SM_IMAGE_PNG,   /* starts with 89 50 4E 47 0D 0A 1A 0A */
    SM_IMAGE_JPEG   /* starts with FF D8 FF */
} sm_image_format;

/* The format the first bytes announce (n may be anything, even 0). */
sm_image_format sm_image_sniff(const void *buf, size_t n);

/* Decodes a whole PNG or JPEG file held in buf[0..n) (an HTTP request body,
 * say) into *out. buf is only read. On success *out owns its pixels (free
 * with sm_image_free); on failure *out is zeroed.
 * Errors: SM_ERR_FORMAT "not a PNG or JPEG image" (other magic, empty
 * input), a corrupt or truncated image (libpng's / libjpeg's reason, e.g.
 * "truncated PNG", "Premature end of JPEG file"), SM_ERR_ARG (a header that
 * exceeds the size limits above, with the size it claims; NULL arguments),
 * SM_ERR_UNSUPPORTED (CMYK JPEG), SM_ERR_NOMEM. */
sm_status sm_image_decode(const void *buf, size_t n, sm_image *out, sm_err *err);

/* Reads and decodes the file at path (as sm_image_decode; messages start
 * with the path in quotes). Errors add SM_ERR_IO (cannot open or read; a
 * file over SM_IMAGE_MAX_FILE bytes). */
sm_status sm_image_read(const char *path, sm_image *out, sm_err *err);

/* Reads only the header: width, height and channels as sm_image_decode
 * would give them (any pointer may be NULL). Same errors, limits included;
 * a file whose pixel data is damaged may pass here and fail to decode. */
sm_status sm_image_read_info(const char *path, int64_t *w, int64_t *h, int *c, sm_err *err);

/* Releases the pixels and zeroes *img; NULL or a zeroed image is a no-op. */
void sm_image_free(sm_image *img);

/* Makes *out a copy of in with c channels (1..4), by the rules in the file
 * comment; c == in->c copies. *out is owned by the caller; in is unchanged
 * (in == out is allowed and replaces the image). Errors: SM_ERR_ARG (c not
 * in 1..4, an empty image), SM_ERR_NOMEM. */
sm_status sm_image_convert(const sm_image *in, int c, sm_image *out, sm_err *err);

/* Makes *out a copy of in resized to w x h (each 1..SM_IMAGE_MAX_SIDE),
 * same channels, by the rules in the file comment (alpha is resampled like
 * any other channel). Ownership as sm_image_convert (in == out allowed).
 * Errors: SM_ERR_ARG, SM_ERR_NOMEM. */
sm_status sm_image_resize(const sm_image *in, int64_t w, int64_t h, sm_image *out, sm_err *err);

/* The float planes (C, H, W) a model with input (C, H, W) takes for img:
 * channels converted to C (1 or 3), resized to H x W and rounded to u8
 * (sm_image_to_planes, as a folder dataset stores it), then
 * x = (u/255 - mean)/std with the model's input normalisation through
 * sm_images_to_float. So a file embeds exactly as the same file does in a
 * folder dataset, and an image already of the model's size as the IDX path.
 * out holds C*H*W floats, caller-allocated.
 * Errors: SM_ERR_UNSUPPORTED (a model whose input has neither 1 nor 3
 * channels), SM_ERR_ARG, SM_ERR_NOMEM. */
sm_status sm_image_to_model_input(const sm_model *m, const sm_image *img, float *out, sm_err *err);

/* Lower-level form of the above for callers without a model (datasets):
 * writes u8 planes (c, h, w) of img converted to c channels (1..4) and
 * resized to w x h, into out (c*h*w bytes, caller-allocated). */
sm_status sm_image_to_planes(const sm_image *img, int c, int64_t h, int64_t w, uint8_t *out, sm_err *err);

/* Encodes px (h, w, c) interleaved, c = 1..4, 8 bits per sample, as a
 * non-interlaced PNG in memory. *out is malloc'd (caller frees), *n its
 * size. Errors: SM_ERR_ARG (sizes, c, NULL), SM_ERR_NOMEM. */
sm_status sm_png_encode(const uint8_t *px, int64_t w, int64_t h, int c, uint8_t **out, size_t *n,
                        sm_err *err);

/* Writes px as a PNG file (sm_png_encode), atomically: temp file + fsync +
 * rename (sm_file_write_atomic); path is untouched on failure.
 * Errors: those of sm_png_encode, SM_ERR_IO. */
sm_status sm_png_write(const char *path, const uint8_t *px, int64_t w, int64_t h, int c, sm_err *err);

/* Encodes px (h, w, c), c = 1 (gray) or 3 (RGB), as a baseline JPEG of the
 * given quality (1..100) in memory; *out malloc'd. Errors as sm_png_encode. */
sm_status sm_jpeg_encode(const uint8_t *px, int64_t w, int64_t h, int c, int quality, uint8_t **out,
                         size_t *n, sm_err *err);

/* Writes a JPEG file atomically, as sm_png_write. */
sm_status sm_jpeg_write(const char *path, const uint8_t *px, int64_t w, int64_t h, int c, int quality,
                        sm_err *err);

#endif
