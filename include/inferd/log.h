/* log.h -- levelled, one-line-per-event logging to stderr, as text or JSON.
 *
 * log_event() takes a message and an optional list of key/value fields so
 * that JSON output stays machine-readable:
 *   log_event(LOG_INFO, "model loaded", "ms", LOG_NUM(12.5), "name",
 *             LOG_STR("demo"), NULL);
 * All functions are thread-safe (one write(2) per line). */
#ifndef INFERD_LOG_H
#define INFERD_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Field value tags: a field is a key followed by one of these. */
typedef struct {
    int kind; /* 0 = string, 1 = number, 2 = integer, 3 = bool */
    const char *s;
    double d;
    long long i;
} log_value;

#define LOG_STR(x) ((log_value){.kind = 0, .s = (x)})
#define LOG_NUM(x) ((log_value){.kind = 1, .d = (x)})
#define LOG_INT(x) ((log_value){.kind = 2, .i = (x)})
#define LOG_BOOL(x) ((log_value){.kind = 3, .i = (x)})

/* Configure once at start-up; before that, text at info level. */
void log_setup(log_level level, int json);

/* Parse "debug", "info", "warn"/"warning", "error"; -1 if unknown. */
int log_level_parse(const char *s);

int log_enabled(log_level level);

/* Fields: const char *key, log_value value, ..., NULL. */
void log_event(log_level level, const char *msg, ...);

#endif
