/* idx.h - reading IDX files, the format of MNIST and Fashion-MNIST (private).
 *
 * An IDX file is a big-endian header (magic 0x000008NN: two zero bytes, the
 * element type 0x08 = unsigned byte, the number of dimensions NN) followed by
 * one big-endian u32 per dimension and the raw elements. simile reads only
 * the two layouts the datasets use: images, magic 0x00000803, u8 (N, H, W),
 * and labels, magic 0x00000801, u8 (N). Files may be gzipped (detected by
 * their 1f 8b magic and read through zlib) or plain.
 * Reference: http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS").
 *
 * It refuses other element types (i8, i16, i32, f32, f64) and other ranks:
 * none of our data uses them. */
#ifndef SM_IDX_H
#define SM_IDX_H
#include <stdint.h>

#include "simile.h"

#define SM_IDX_MAGIC_IMAGES 0x00000803u
#define SM_IDX_MAGIC_LABELS 0x00000801u

/* A loaded IDX file. For images data is (n, h, w) u8, row-major; for labels
 * data is (n) u8 and h = w = 1. data is owned by the struct (malloc'd). After a
 * successful read n, h, w >= 1 and data is non-NULL. */
typedef struct sm_idx {
    int64_t n, h, w;
    uint8_t *data;
} sm_idx;

/* Reads an image file (magic 0x00000803, dims N, H, W) into *out.
 * On success *out owns its data: release it with sm_idx_free.
 * On failure *out is zeroed and nothing is left allocated.
 * Errors: SM_ERR_IO (cannot open, read error, truncated data, corrupt gzip
 * stream), SM_ERR_FORMAT (wrong magic, a dimension of 0 or absurdly large,
 * trailing bytes after the data), SM_ERR_NOMEM. */
sm_status sm_idx_read_images(const char *path, sm_idx *out, sm_err *err);

/* Reads a label file (magic 0x00000801, dim N) into *out (h = w = 1).
 * Ownership and errors as for sm_idx_read_images. */
sm_status sm_idx_read_labels(const char *path, sm_idx *out, sm_err *err);

/* Releases data and zeroes *x. NULL, or an already freed/zeroed struct, is a
 * no-op. */
void sm_idx_free(sm_idx *x);

#endif
