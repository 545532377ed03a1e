/* error.c -- maps error codes to HTTP statuses and names, in one place. */
#include "inferd/error.h"

#include <stdio.h>

int error_http_status(int code) {
    switch (code) {
#define X(name, value, status, text)                                          \
    case value:                                                               \
        return status;
        ERR_MAP(X)
#undef X
    }
    return 500;
}

const char *error_name(int code) {
    switch (code) {
#define X(name, value, status, text)                                          \
    case value:                                                               \
        return text;
        ERR_MAP(X)
#undef X
    }
    return "unknown error";
}

int error_set(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
