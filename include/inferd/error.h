/* error.h -- the daemon's error codes and the one place they become HTTP
 * statuses.
 *
 * Functions return 0 on success or a negative ERR_* code, and write a
 * human-readable message into a caller-provided buffer (ERR_LEN bytes is
 * always enough room). Handlers pass the code to error_http_status(). */
#ifndef INFERD_ERROR_H
#define INFERD_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define ERR_LEN 512

/* X(name, value, http status, short text) */
#define ERR_MAP(X)                                                            \
    X(OK, 0, 200, "ok")                                                       \
    X(BAD_REQUEST, -1, 400, "bad request")                                    \
    X(UNAUTHORIZED, -2, 401, "unauthorized")                                  \
    X(FORBIDDEN, -3, 403, "forbidden")                                        \
    X(NOT_FOUND, -4, 404, "not found")                                        \
    X(TOO_LARGE, -5, 413, "payload too large")                                \
    X(NOT_SCRIPT, -6, 422, "not a TorchScript archive")                       \
    X(INTERNAL, -7, 500, "internal error")                                    \
    X(NO_MODEL, -8, 503, "no model configured")                               \
    X(BUSY, -9, 503, "busy")                                                  \
    X(NO_MEMORY, -10, 507, "insufficient memory")                             \
    X(SHUTTING_DOWN, -11, 503, "shutting down")

enum {
#define X(name, value, status, text) ERR_##name = value,
    ERR_MAP(X)
#undef X
};

/* HTTP status for an ERR_* code (500 for unknown codes). */
int error_http_status(int code);

/* Short name of an ERR_* code, for logs. */
const char *error_name(int code);

/* Make s safe to put in a JSON reply or a log line, in place: every byte
 * that is not part of valid UTF-8, and every control byte, becomes '?'.
 * Requests echo paths and values into messages; they must not carry
 * invalid text into the JSON. */
void error_clean_text(char *s);

/* printf into err (which may be NULL) and return code. */
int error_set(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
