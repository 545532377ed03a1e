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

/* Length of the valid UTF-8 sequence at p, or 0. */
static int utf8_len(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) n = 4;
    else return 0;
    /* No overlong forms, no surrogates, nothing above U+10FFFF. */
    if (p[0] == 0xe0) lo = 0xa0;
    if (p[0] == 0xed) hi = 0x9f;
    if (p[0] == 0xf0) lo = 0x90;
    if (p[0] == 0xf4) hi = 0x8f;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return n;
}

void error_clean_text(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = utf8_len(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            *p++ = '?';
        } else {
            p += n;
        }
    }
}
