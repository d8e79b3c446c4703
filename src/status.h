/* status.h - error reporting shared by every module (private).
 *
 * Every fallible function returns an sm_status and, when given a non-NULL
 * sm_err, leaves a one-line human message there that says what went wrong and,
 * where we know it, how to fix it. Nothing in the library prints or exits. */
#ifndef SM_STATUS_H
#define SM_STATUS_H
#include "simile.h"

#if defined(__GNUC__)
#define SM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SM_PRINTF(a, b)
#endif

/* Formats the message into err (if non-NULL) and returns code, so that a
 * failure site reads `return sm_fail(err, SM_ERR_IO, "cannot open '%s'", p);` */
sm_status sm_fail(sm_err *err, sm_status code, const char *fmt, ...) SM_PRINTF(3, 4);

/* Prefixes an existing message with context ("loading 'x': " + old message). */
sm_status sm_fail_prefix(sm_err *err, sm_status code, const char *fmt, ...) SM_PRINTF(3, 4);

#endif
