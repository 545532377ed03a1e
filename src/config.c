/* config.c -- the table of settings and the one loop that reads them. */
#include "inferd/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../memory_config.h"
#include "inferd/error.h"
#include "inferd/log.h"

#define STR_(x) #x
#define STR(x) STR_(x)

typedef enum { T_INT, T_BOOL, T_STR, T_ENUM } setting_type;

typedef struct {
    const char *env;
    const char *flag;
    setting_type type;
    size_t offset;
    const char *def;
    long min, max;       /* T_INT bounds */
    const char *choices; /* T_ENUM: "a|b|c", the index is stored */
    const char *help;
    int secret; /* never logged */
} setting;

#define F(field) offsetof(config, field)

/* The single source of truth for every setting. */
static const setting settings[] = {
    {"PORT", "--port", T_INT, F(port), "8000", 1, 65535, NULL,
     "TCP port to listen on (Render sets PORT)", 0},
    {"HOST", "--host", T_STR, F(host), "0.0.0.0", 0, 0, NULL,
     "address to bind", 0},
    {"MODEL_PATH", "--model-path", T_STR, F(model_path), "", 0, 0, NULL,
     "TorchScript file to serve", 0},
    {"MODEL_NAME", "--model-name", T_STR, F(model_name), "", 0, 0, NULL,
     "model name (default: MODEL_PATH's base name without extension)", 0},
    {"LAZY_LOADING", "--lazy-loading", T_BOOL, F(lazy_loading), "true", 0, 0,
     NULL, "load the model on the first request that needs it", 0},
    {"ENVIRONMENT", "--environment", T_ENUM, F(environment), "production", 0,
     0, "production|development",
     "production forces lazy loading and closes admin endpoints", 0},
    {"MEMORY_LIMIT_MB", "--memory-limit-mb", T_INT, F(memory_limit_mb), "0",
     0, 1 << 24, NULL, "memory limit in MB; 0 = cgroup limit, else 512", 0},
    {"MEMORY_WARNING_PERCENT", "--memory-warning-percent", T_INT,
     F(memory_warning_percent), STR(MEMCFG_WARNING_PERCENT), 1, 100, NULL,
     "share of the limit reported as level \"warning\"", 0},
    {"MEMORY_CRITICAL_PERCENT", "--memory-critical-percent", T_INT,
     F(memory_critical_percent), STR(MEMCFG_CRITICAL_PERCENT), 1, 100, NULL,
     "share of the limit reported as level \"critical\"", 0},
    {"MAX_REQUEST_MB", "--max-request-mb", T_INT, F(max_request_mb),
     STR(MEMCFG_MAX_REQUEST_MB), 1, 4096, NULL,
     "largest request body accepted (413 above)", 0},
    {"SHUTDOWN_TIMEOUT_SECONDS", "--shutdown-timeout-seconds", T_INT,
     F(shutdown_timeout_seconds), "25", 0, 3600, NULL,
     "on SIGTERM, wait this long for in-flight requests", 0},
    {"LOG_LEVEL", "--log-level", T_ENUM, F(log_level), "info", 0, 0,
     "debug|info|warn|error", "least severe level logged", 0},
    {"LOG_FORMAT", "--log-format", T_ENUM, F(log_format), "text", 0, 0,
     "text|json", "log line format on stderr", 0},
    {"BACKEND_PATH", "--backend-path", T_STR, F(backend_path), "", 0, 0, NULL,
     "runtime shim to dlopen (default: libinferd_torch.so beside inferd)", 0},
    {"TORCH_NUM_THREADS", "--torch-num-threads", T_INT, F(torch_num_threads),
     "0", 0, 1024, NULL, "intra-op threads; 0 = CPUs available (cgroup aware)", 0},
    {"MODEL_MMAP", "--model-mmap", T_BOOL, F(model_mmap), "true", 0, 0, NULL,
     "serve weights from a private mapping of the file (zero-copy)", 0},
    {"MEMORY_GUARD", "--memory-guard", T_BOOL, F(memory_guard), "true", 0, 0,
     NULL, "refuse (507) a load that would not fit under the limit", 0},
    {"RUNTIME_ANON_MB", "--runtime-anon-mb", T_INT, F(runtime_anon_mb),
     STR(MEMCFG_RUNTIME_ANON_MB), 0, 1 << 20, NULL,
     "anonymous MB the runtime costs when first mapped (guard estimate)", 0},
    {"ACTIVATION_MB", "--activation-mb", T_INT, F(activation_mb),
     STR(MEMCFG_ACTIVATION_MB), 0, 1 << 20, NULL,
     "working-set MB allowed for activations (guard estimate)", 0},
    {"MODEL_IDLE_UNLOAD_SECONDS", "--model-idle-unload-seconds", T_INT,
     F(model_idle_unload_seconds), STR(MEMCFG_IDLE_UNLOAD_SECONDS), 0,
     1 << 30, NULL, "unload after this long without a prediction; 0 = never", 0},
    {"UNLOAD_ON_PRESSURE", "--unload-on-pressure", T_BOOL,
     F(unload_on_pressure), "false", 0, 0, NULL,
     "unload an idle model when memory crosses the critical level", 0},
    {"INFERENCE_WORKERS", "--inference-workers", T_INT, F(inference_workers),
     "1", 1, 64, NULL, "threads running forward", 0},
    {"QUEUE_CAPACITY", "--queue-capacity", T_INT, F(queue_capacity), "64", 1,
     100000, NULL, "queued requests before 503", 0},
    {"MAX_BATCH_SIZE", "--max-batch-size", T_INT, F(max_batch_size), "1", 1,
     1024, NULL, "requests stacked into one forward; 1 = no batching", 0},
    {"BATCH_TIMEOUT_US", "--batch-timeout-us", T_INT, F(batch_timeout_us),
     "500", 0, 1000000, NULL, "how long a batch waits to fill (microseconds)", 0},
    {"CONNECTION_TIMEOUT_SECONDS", "--connection-timeout-seconds", T_INT,
     F(connection_timeout_seconds), "30", 1, 3600, NULL,
     "close a connection idle (or stalled) this long", 0},
    {"MAX_CONNECTIONS", "--max-connections", T_INT, F(max_connections), "1024",
     1, 65536, NULL, "concurrent connections accepted", 0},
    {"JIT_PROFILING", "--jit-profiling", T_BOOL, F(jit_profiling), "false",
     0, 0, NULL,
     "TorchScript profiling executor (slow first calls per new shape)", 0},
    {"MODEL_WARMUP", "--model-warmup", T_STR, F(model_warmup), "", 0, 0, NULL,
     "after each load, run forward on zeros of these shapes (\"1,4\"; "
     "\";\" between inputs)",
     0},
    {"PRELOAD_RUNTIME", "--preload-runtime", T_BOOL, F(preload_runtime),
     "false", 0, 0, NULL,
     "map libtorch in the background at start-up (model stays lazy)", 0},
    {"ADMIN_TOKEN", "--admin-token", T_STR, F(admin_token), "", 0, 0, NULL,
     "bearer token for /model/* and /v2/repository/* (secret)", 1},
    {"API_KEY", "--api-key", T_STR, F(api_key), "", 0, 0, NULL,
     "bearer token for /predict and /v2/.../infer (secret)", 1},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return *out = 1, 0;
        if (!strcasecmp(v, no[i])) return *out = 0, 0;
    }
    return -1;
}

/* Index of v among "a|b|c", or -1. */
static int parse_choice(const char *choices, const char *v) {
    int idx = 0;
    const char *p = choices;
    size_t vl = strlen(v);
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vl && !strncasecmp(p, v, len)) return idx;
        if (!bar) break;
        p = bar + 1;
        idx++;
    }
    /* "warning" is a friendly alias of "warn" for LOG_LEVEL. */
    if (!strcasecmp(v, "warning") && strstr(choices, "|warn|")) return 2;
    return -1;
}

static int set_value(config *c, const setting *s, const char *v, char *err,
                     size_t errlen) {
    char *base = (char *)c + s->offset;
    switch (s->type) {
    case T_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < s->min || n > s->max)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "invalid %s '%s': expected an integer from %ld "
                             "to %ld",
                             s->env, v, s->min, s->max);
        *(int *)base = (int)n;
        return 0;
    }
    case T_BOOL:
        if (parse_bool(v, (int *)base))
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "invalid %s '%s': expected true or false "
                             "(also 1/0, yes/no, on/off)",
                             s->env, v);
        return 0;
    case T_ENUM: {
        int idx = parse_choice(s->choices, v);
        if (idx < 0)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "invalid %s '%s': expected one of %s", s->env, v,
                             s->choices);
        *(int *)base = idx;
        return 0;
    }
    case T_STR:
        /* A secret read from a file often ends in a newline, which no
         * Authorization header can carry: refuse it rather than never
         * match. */
        if (s->secret && *v && strchr(" \t\r\n", v[strlen(v) - 1]))
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "invalid %s: it ends in whitespace (a newline "
                             "from a file?); strip it",
                             s->env);
        *(const char **)base = v;
        return 0;
    }
    return 0;
}

static const setting *find_flag(const char *arg, size_t len) {
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].flag) == len &&
            !strncmp(settings[i].flag, arg, len))
            return &settings[i];
    return NULL;
}

static void derive(config *c) {
    if (!*c->model_name && *c->model_path) {
        const char *slash = strrchr(c->model_path, '/');
        const char *base = slash ? slash + 1 : c->model_path;
        snprintf(c->model_name_buf, sizeof c->model_name_buf, "%s", base);
        char *dot = strrchr(c->model_name_buf, '.');
        if (dot && dot != c->model_name_buf) *dot = '\0';
        c->model_name = c->model_name_buf;
    }
    if (!*c->model_name) c->model_name = "model";
    c->lazy_forced = 0;
    if (c->environment == ENV_PRODUCTION && !c->lazy_loading) {
        c->lazy_loading = 1;
        c->lazy_forced = 1;
    }
}

int config_load(config *c, int argc, char **argv, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    int rc;
    for (size_t i = 0; i < NSETTINGS; i++)
        if ((rc = set_value(c, &settings[i], settings[i].def, err, errlen)))
            return rc;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && (rc = set_value(c, &settings[i], v, err, errlen))) return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
            return CONFIG_EXIT_HELP;
        if (!strcmp(arg, "--version")) return CONFIG_EXIT_VERSION;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const setting *s = strncmp(arg, "--", 2) ? NULL : find_flag(arg, len);
        if (!s)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "unknown option '%s': run with --help for the "
                             "settings",
                             arg);
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "option %s needs a value", s->flag);
        if ((rc = set_value(c, s, v, err, errlen))) return rc;
    }
    if (c->memory_warning_percent > c->memory_critical_percent)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "invalid MEMORY_WARNING_PERCENT %d: expected at most "
                         "MEMORY_CRITICAL_PERCENT (%d)",
                         c->memory_warning_percent,
                         c->memory_critical_percent);
    derive(c);
    return 0;
}

static const char *type_name(const setting *s) {
    switch (s->type) {
    case T_INT: return "int";
    case T_BOOL: return "bool";
    case T_ENUM: return s->choices;
    default: return "string";
    }
}

void config_print_help(const char *prog) {
    printf("usage: %s [--flag value | --flag=value]...\n\n"
           "inferd %s: a small inference daemon for TorchScript models.\n"
           "Every setting is an environment variable; its flag overrides it."
           "\n\n",
           prog, INFERD_VERSION);
    printf("%-26s %-28s %-22s %-12s %s\n", "ENV", "FLAG", "TYPE", "DEFAULT",
           "HELP");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        printf("%-26s %-28s %-22s %-12s %s\n", s->env, s->flag, type_name(s),
               *s->def ? s->def : "\"\"", s->help);
    }
}

void config_log(const config *c) {
    char all[4096];
    size_t len = 0;
    for (size_t i = 0; i < NSETTINGS && len < sizeof all; i++) {
        const setting *s = &settings[i];
        const char *base = (const char *)c + s->offset;
        char num[32];
        const char *v = num;
        int vlen = -1;
        switch (s->type) {
        case T_INT: snprintf(num, sizeof num, "%d", *(const int *)base); break;
        case T_BOOL: v = *(const int *)base ? "true" : "false"; break;
        case T_STR:
            v = *(const char *const *)base;
            if (s->secret) v = *v ? "(set)" : "(unset)";
            break;
        case T_ENUM: {
            v = s->choices;
            for (int k = *(const int *)base; k > 0 && v; k--)
                if ((v = strchr(v, '|'))) v++;
            if (!v) v = "";
            vlen = (int)strcspn(v, "|");
            break;
        }
        }
        len += (size_t)snprintf(all + len, sizeof all - len, "%s%s=%.*s",
                                i ? " " : "", s->env, vlen, v);
    }
    log_event(LOG_INFO, "configuration", "settings", LOG_STR(all), NULL);
}
