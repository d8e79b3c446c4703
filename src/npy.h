/* npy.h - float32 matrices as NumPy .npy files (private).
 *
 * Format (numpy.lib.format, version 1.0): "\x93NUMPY", major 1, minor 0, a
 * u16 little-endian header length HLEN, then HLEN bytes of an ASCII Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
 * padded with spaces and ending in '\n' so the data starts at a multiple of
 * 64, then N*D little-endian float32 in row-major order. Embeddings are
 * exported this way (np.load reads them directly).
 * Only '<f4' C-order arrays are written (2-D) or read (2-D, or N-D for
 * network inputs): nothing else is ours. */
#ifndef SM_NPY_H
#define SM_NPY_H
#include <stdint.h>

#include "simile.h"

/* Writes x, (n, d) row-major, to path as a version 1.0 .npy file, atomically
 * (sm_file_write_atomic: temp file + fsync + rename). n, d >= 0 (an empty
 * array is valid). x may be NULL only when n*d == 0.
 * Errors: SM_ERR_ARG (negative dims, size overflow, NULL x), SM_ERR_IO. */
sm_status sm_npy_write_f32(const char *path, const float *x, int64_t n, int64_t d, sm_err *err);

/* Reads a 2-D float32 .npy (version 1.x, 2.x or 3.x header; descr '<f4',
 * fortran_order False) into a new malloc'd buffer *x of (n, d) floats that
 * the caller frees with free() (*x is non-NULL on success, even when empty).
 * On failure *x = NULL and *n = *d = 0.
 * Errors: SM_ERR_IO (cannot open, truncated data), SM_ERR_FORMAT (bad magic,
 * unreadable header, another dtype, fortran_order True, trailing bytes),
 * SM_ERR_SHAPE (not 2-D), SM_ERR_NOMEM. */
sm_status sm_npy_read_f32(const char *path, float **x, int64_t *n, int64_t *d, sm_err *err);
/* The same for an array of exactly ndim (1..8) dimensions, its shape into
 * dims[0..ndim); `what` names the expected shape in the SM_ERR_SHAPE message
 * ("(N, C, H, W)"). On failure *x = NULL and dims are 0. */
sm_status sm_npy_read_f32_nd(const char *path, float **x, int ndim, const char *what, int64_t *dims,
                             sm_err *err);

#endif
