/* status.c - error codes and messages. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

sm_status sm_fail(sm_err *err, sm_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

sm_status sm_fail_prefix(sm_err *err, sm_status code, const char *fmt, ...)
{
    if (err) {
        char old[sizeof err->msg];
        memcpy(old, err->msg, sizeof old);
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, "%s", old);
        err->code = code;
    }
    return code;
}

const char *sm_status_str(sm_status s)
{
    switch (s) {
    case SM_OK: return "ok";
    case SM_ERR_NOMEM: return "out of memory";
    case SM_ERR_IO: return "i/o error";
    case SM_ERR_FORMAT: return "bad file format";
    case SM_ERR_SHAPE: return "shape mismatch";
    case SM_ERR_ARG: return "invalid argument";
    case SM_ERR_NAN: return "non-finite value";
    case SM_ERR_UNSUPPORTED: return "unsupported";
    case SM_ERR_INTERNAL: return "internal error";
    case SM_ERR_CONFLICT: return "conflict";
    }
    return "unknown status";
}
