/* simile.h - deep metric learning and similarity search in C.
 *
 * This header is the whole public API of libsimile and its manual.
 * (Overview and worked example: see the section "OVERVIEW" below.)
 */
#ifndef SIMILE_H
#define SIMILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

/* Every fallible call returns one of these; SM_OK is 0. Codes are append-only. */
typedef enum sm_status {
    SM_OK = 0,
    SM_ERR_NOMEM,       /* an allocation failed */
    SM_ERR_IO,          /* open/read/write/rename failed, or a file is truncated */
    SM_ERR_FORMAT,      /* a file is not what it claims to be */
    SM_ERR_SHAPE,       /* tensor shapes or sizes do not fit together */
    SM_ERR_ARG,         /* an argument is out of its documented range */
    SM_ERR_NAN,         /* a loss or value became NaN or infinite */
    SM_ERR_UNSUPPORTED, /* a valid request simile does not implement */
    SM_ERR_INTERNAL     /* a bug in simile: please report it */
} sm_status;

/* A caller-owned error slot. Functions that take `sm_err *err` write a one-line
 * message there on failure (err may be NULL when the caller does not care). */
typedef struct sm_err {
    sm_status code;
    char msg[512];
} sm_err;

/* A static, lower-case name for a status ("bad file format"). */
const char *sm_status_str(sm_status s);

#ifdef __cplusplus
}
#endif
#endif
