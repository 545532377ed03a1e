/* log.c -- writes one line per event to stderr, as text or as JSON. */
#include "inferd/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "inferd/error.h"

static log_level min_level = LOG_INFO;
static int as_json = 0;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_setup(log_level level, int json) {
    min_level = level;
    as_json = json;
}

int log_level_parse(const char *s) {
    if (!strcasecmp(s, "debug")) return LOG_DEBUG;
    if (!strcasecmp(s, "info")) return LOG_INFO;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning")) return LOG_WARN;
    if (!strcasecmp(s, "error")) return LOG_ERROR;
    return -1;
}

int log_enabled(log_level level) { return level >= min_level; }

/* A small bounded string builder: a log line is never worth a malloc. */
typedef struct {
    char buf[2048];
    size_t len;
} line;

static void put(line *l, const char *fmt, ...) {
    if (l->len >= sizeof l->buf) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n;
    if (l->len > sizeof l->buf - 1) l->len = sizeof l->buf - 1;
}

/* JSON string escaping; also used for text output of values with spaces. */
static void put_quoted(line *l, const char *s) {
    char clean[1024];
    snprintf(clean, sizeof clean, "%s", s);
    error_clean_text(clean); /* JSON lines must stay valid UTF-8 */
    put(l, "\"");
    for (const unsigned char *p = (const unsigned char *)clean; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(l, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            put(l, "\\u%04x", *p);
        else
            put(l, "%c", *p);
    }
    put(l, "\"");
}

/* Quote values with spaces, quotes, '=' or control bytes: a request path
 * with %0a in it must not start a forged log line. */
static int needs_quotes(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f) return 1;
    return 0;
}

static void put_value(line *l, log_value v) {
    switch (v.kind) {
    case 0:
        if (as_json || !v.s || !*v.s || needs_quotes(v.s))
            put_quoted(l, v.s ? v.s : "");
        else
            put(l, "%s", v.s);
        break;
    case 1: put(l, "%.1f", v.d); break;
    case 2: put(l, "%lld", v.i); break;
    default: put(l, "%s", v.i ? "true" : "false"); break;
    }
}

void log_event(log_level level, const char *msg, ...) {
    if (level < min_level) return;
    line l = {.len = 0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
    if (as_json) {
        put(&l, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", when,
            level_names[level]);
        put_quoted(&l, msg);
    } else {
        put(&l, "%s %-5s %s", when, level_names[level], msg);
    }
    va_list ap;
    va_start(ap, msg);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        log_value v = va_arg(ap, log_value);
        if (as_json) {
            put(&l, ",");
            put_quoted(&l, key);
            put(&l, ":");
        } else {
            put(&l, " %s=", key);
        }
        put_value(&l, v);
    }
    va_end(ap);
    put(&l, as_json ? "}\n" : "\n");
    if (l.buf[l.len - 1] != '\n') l.buf[l.len - 1] = '\n';
    ssize_t w = write(STDERR_FILENO, l.buf, l.len);
    (void)w;
}
