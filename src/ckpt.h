/* ckpt.h - checkpoints as safetensors files, and atomic file writes (private).
 *
 * safetensors (https://github.com/huggingface/safetensors, "Format"):
 *   u64 little-endian N | N bytes of UTF-8 JSON header | raw tensor data
 * The header maps each tensor name to {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]} (offsets into the data section, which starts
 * right after the header), plus an optional "__metadata__" object of string
 * values. We write what the reference implementation writes: the header is
 * padded with spaces so the data starts at a multiple of 8, tensors are laid
 * out largest dtype first (so each one is aligned for its type) with no gap
 * between them, metadata first in the header. We read what it accepts and
 * refuse what it refuses: holes or overlaps in the data, trailing bytes,
 * headers over 100 MB, duplicate keys.
 * Tensor names follow PyTorch state_dict naming; the model spec, head
 * hyperparameters, class names and training config go in __metadata__.
 *
 * Also here: sm_file_write_atomic, the temp + fsync + rename writer every
 * simile file format uses (npy.c too). */
#ifndef SM_CKPT_H
#define SM_CKPT_H
#include <stddef.h>
#include <stdint.h>

#include "simile.h"

/* ------------------------------------------------------------ atomic write */

/* One piece of a file: n bytes at p (p may be NULL when n == 0). */
typedef struct sm_iov {
    const void *p;
    size_t n;
} sm_iov;

/* Writes the concatenation of parts[0..nparts) to path atomically: into
 * "<path>.tmp.<pid>" in the same directory, then fsync, close, rename over
 * path, and fsync of the directory. Readers see the old file or the whole
 * new one, never a part. On any failure the temp file is removed and path
 * is untouched. The file gets mode 0644 less the umask.
 * Errors: SM_ERR_IO with the reason (cannot create in that directory, disk
 * full, file too large, rename failed), SM_ERR_ARG (NULL path, nparts < 0). */
sm_status sm_file_write_atomic(const char *path, const sm_iov *parts, int nparts, sm_err *err);

/* ------------------------------------------------------------------ dtypes */

/* safetensors element types (their names in the header are the enum names
 * without SM_DT_: "F32", "I64", "BOOL", "F8_E4M3", ...). Append-only. */
typedef enum sm_dtype {
    SM_DT_F32 = 0, SM_DT_F64, SM_DT_F16, SM_DT_BF16,
    SM_DT_I64, SM_DT_I32, SM_DT_I16, SM_DT_I8,
    SM_DT_U64, SM_DT_U32, SM_DT_U16, SM_DT_U8,
    SM_DT_BOOL, SM_DT_F8_E4M3, SM_DT_F8_E5M2,
    SM_DT_COUNT
} sm_dtype;

/* Bytes per element (0 for an invalid dtype). */
size_t sm_dtype_size(sm_dtype dt);
/* Header name ("F32"), or NULL for an invalid dtype. */
const char *sm_dtype_name(sm_dtype dt);
/* The dtype named s; -1 if s names none. */
int sm_dtype_parse(const char *s);

/* Most dimensions a checkpoint tensor may have. */
#define SM_CKPT_MAX_DIMS 8
/* Largest header accepted, as in the reference reader (100 MB). */
#define SM_CKPT_MAX_HEADER 100000000ull

/* ------------------------------------------------------------------ writer */

typedef struct sm_ckpt_writer sm_ckpt_writer;

/* A new, empty writer, owned by the caller (sm_ckpt_writer_free).
 * Errors: SM_ERR_NOMEM. */
sm_status sm_ckpt_writer_new(sm_ckpt_writer **out, sm_err *err);

/* Adds tensor `name` of dtype dt and shape[0..ndim) (0 <= ndim <= 8, each
 * dim >= 0; ndim 0 is a scalar) whose little-endian elements are at data
 * (row-major, product(shape) * sm_dtype_size(dt) bytes). The name is copied;
 * data is borrowed and must stay valid and unchanged until sm_ckpt_write.
 * Errors: SM_ERR_ARG (empty, non-UTF-8 or duplicate name, "__metadata__",
 * invalid dtype, bad ndim or negative dim, NULL data with a non-zero size,
 * size overflow), SM_ERR_NOMEM. */
sm_status sm_ckpt_add(sm_ckpt_writer *w, const char *name, sm_dtype dt, int ndim, const int64_t *shape,
                      const void *data, sm_err *err);

/* Sets metadata key -> value (both copied, UTF-8; a key set twice keeps the
 * last value). Errors: SM_ERR_ARG (NULL, empty or non-UTF-8), SM_ERR_NOMEM. */
sm_status sm_ckpt_add_meta(sm_ckpt_writer *w, const char *key, const char *value, sm_err *err);

/* Writes everything added so far to path atomically (sm_file_write_atomic).
 * The writer is unchanged and may be written again.
 * Errors: SM_ERR_IO (see sm_file_write_atomic), SM_ERR_NOMEM. */
sm_status sm_ckpt_write(const sm_ckpt_writer *w, const char *path, sm_err *err);

/* Releases the writer (not the borrowed tensor data). NULL is a no-op. */
void sm_ckpt_writer_free(sm_ckpt_writer *w);

/* ------------------------------------------------------------------ reader */

/* One tensor of a loaded checkpoint; every pointer is owned by the sm_ckpt
 * and valid until sm_ckpt_free. data is aligned for the dtype (at least 64
 * bytes when the tensor starts on such an offset); it is non-NULL even for
 * zero-size tensors. */
typedef struct sm_ckpt_tensor {
    const char *name;
    sm_dtype dtype;
    int ndim;
    int64_t shape[SM_CKPT_MAX_DIMS];   /* shape[0..ndim) */
    int64_t numel;                     /* product of shape (1 for a scalar) */
    const void *data;
    size_t nbytes;                     /* numel * sm_dtype_size(dtype) */
} sm_ckpt_tensor;

typedef struct sm_ckpt sm_ckpt;

/* Loads and validates a whole safetensors file. On success *out is owned by
 * the caller (sm_ckpt_free); on failure *out is NULL.
 * Errors: SM_ERR_IO (cannot open/read, data section shorter than the header
 * says), SM_ERR_FORMAT (file too small, header length absurd or past the
 * end, JSON syntax with jansson's line/column/message, a header entry
 * missing dtype/shape/data_offsets or of the wrong type, unknown dtype,
 * negative or overflowing dims, more than 8 dims, shape size != end - begin,
 * offsets backwards, overlapping, leaving holes or past the data, trailing
 * bytes, a non-string metadata value, duplicate keys), SM_ERR_NOMEM. */
sm_status sm_ckpt_read(const char *path, sm_ckpt **out, sm_err *err);

/* The tensor called name, or NULL. */
const sm_ckpt_tensor *sm_ckpt_find(const sm_ckpt *ck, const char *name);

/* Like sm_ckpt_find but demands dtype dt and shape[0..ndim), with a message
 * that names the checkpoint, the tensor, what it has and what was expected.
 * Errors: SM_ERR_FORMAT (missing tensor), SM_ERR_SHAPE (other dtype/shape). */
sm_status sm_ckpt_get(const sm_ckpt *ck, const char *name, sm_dtype dt, int ndim, const int64_t *shape,
                      const sm_ckpt_tensor **out, sm_err *err);

/* Number of tensors, and tensor i (0 <= i < count, in data order; NULL out
 * of range) to iterate over them. */
int64_t sm_ckpt_count(const sm_ckpt *ck);
const sm_ckpt_tensor *sm_ckpt_tensor_at(const sm_ckpt *ck, int64_t i);

/* Metadata value of key, or NULL if absent. Owned by ck. */
const char *sm_ckpt_meta(const sm_ckpt *ck, const char *key);

/* Number of metadata entries, and entry i (key and value owned by ck);
 * returns 0 when i is out of range, else 1. */
int64_t sm_ckpt_meta_count(const sm_ckpt *ck);
int sm_ckpt_meta_at(const sm_ckpt *ck, int64_t i, const char **key, const char **value);

/* Releases the checkpoint and everything it owns. NULL is a no-op. */
void sm_ckpt_free(sm_ckpt *ck);

#endif
