/* app.c -- the route table, and the shared pieces of the handlers: the
 * suspend-run-resume of a blocking job, memory figures, model errors. */
#include "inferd/app.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inferd/error.h"

app_state app;

const route app_routes[] = {
    {"GET", "/health", handle_health, ACCESS_OPEN},
    {"GET", "/memory", handle_memory, ACCESS_OPEN},
    {"GET", "/metrics", handle_metrics, ACCESS_OPEN},
    {"POST", "/model/load", handle_model_load, ACCESS_ADMIN},
    {"POST", "/model/unload", handle_model_unload, ACCESS_ADMIN},
    {"POST", "/predict", handle_predict, ACCESS_API},
    {"GET", "/v2", handle_v2_server, ACCESS_OPEN},
    {"GET", "/v2/", handle_v2_server, ACCESS_OPEN},
    {"GET", "/v2/health/live", handle_v2_live, ACCESS_OPEN},
    {"GET", "/v2/health/ready", handle_v2_ready, ACCESS_OPEN},
    {"GET", "/v2/models/{model}", handle_v2_model, ACCESS_OPEN},
    {"GET", "/v2/models/{model}/versions/{version}", handle_v2_model,
     ACCESS_OPEN},
    {"GET", "/v2/models/{model}/ready", handle_v2_model_ready, ACCESS_OPEN},
    {"GET", "/v2/models/{model}/versions/{version}/ready",
     handle_v2_model_ready, ACCESS_OPEN},
    {"POST", "/v2/models/{model}/infer", handle_v2_infer, ACCESS_API},
    {"POST", "/v2/models/{model}/versions/{version}/infer", handle_v2_infer,
     ACCESS_API},
    {"POST", "/v2/repository/index", handle_v2_repo_index, ACCESS_ADMIN},
    {"POST", "/v2/repository/models/{model}/load", handle_v2_repo_load,
     ACCESS_ADMIN},
    {"POST", "/v2/repository/models/{model}/unload", handle_v2_repo_unload,
     ACCESS_ADMIN},
};
const size_t app_nroutes = sizeof app_routes / sizeof app_routes[0];

void app_add_num(cJSON *obj, const char *key, double x) {
    cJSON_AddNumberToObject(obj, key, round(x * 100.0) / 100.0);
}

double app_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    queue_job job; /* first: the queue hands us this pointer */
    http_request *req;
    void (*fn)(http_request *, void *);
    void *arg;
    void (*free_arg)(void *);
} deferred;

static void deferred_done(deferred *d) {
    if (d->free_arg) d->free_arg(d->arg);
    http_request *req = d->req;
    free(d);
    http_resume(req);
}

static void deferred_run(queue_job *j) {
    deferred *d = (deferred *)j;
    d->fn(d->req, d->arg);
    deferred_done(d);
}

static void deferred_reject(queue_job *j, int code) {
    deferred *d = (deferred *)j;
    if (code == ERR_BUSY) http_reply_header(d->req, "Retry-After", "1");
    http_reply_error(d->req, error_http_status(code), "%s",
                     queue_refusal(code));
    deferred_done(d);
}

void app_defer(http_request *req, queue *q,
               void (*fn)(http_request *, void *), void *arg,
               void (*free_arg)(void *)) {
    deferred *d = calloc(1, sizeof *d);
    if (!d) {
        if (free_arg) free_arg(arg);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    d->job.run = deferred_run;
    d->job.reject = deferred_reject;
    d->req = req;
    d->fn = fn;
    d->arg = arg;
    d->free_arg = free_arg;
    /* Suspend before the push: a worker may resume as soon as it has it. */
    http_suspend(req);
    int rc = queue_push(q, &d->job);
    if (rc == 0) return;
    deferred_reject(&d->job, rc);
}

cJSON *app_memory_json(void) {
    memory_process p;
    memory_usage u;
    memory_process_read(&p, NULL, 0);
    memory_usage_read(&app.limit, &p, app.cfg->memory_warning_percent,
                      app.cfg->memory_critical_percent, &u);
    model_entry *e = model_find(NULL);
    model_status st;
    model_get_status(e, &st);
    cJSON *m = cJSON_CreateObject();
    app_add_num(m, "rss_mb", p.rss_mb);
    app_add_num(m, "vms_mb", p.vms_mb);
    cJSON_AddBoolToObject(m, "model_loaded", st.state == MODEL_LOADED);
    app_add_num(m, "gpu_allocated_mb", 0.0);
    app_add_num(m, "gpu_cached_mb", 0.0);
    app_add_num(m, "rss_anon_mb", p.anon_mb);
    app_add_num(m, "rss_file_mb", p.file_mb);
    app_add_num(m, "peak_rss_mb", p.hwm_mb);
    app_add_num(m, "limit_mb",
                            (double)app.limit.limit_bytes / (1 << 20));
    cJSON_AddStringToObject(m, "limit_source", app.limit.source);
    app_add_num(m, "usage_mb", u.usage_mb);
    cJSON_AddStringToObject(m, "usage_source", u.source);
    app_add_num(m, "usage_percent", u.percent);
    cJSON_AddStringToObject(m, "level", u.level);
    cJSON_AddBoolToObject(m, "paging", st.paging);
    return m;
}

void app_reply_model_error(http_request *req, int code, const model_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", err->msg);
    if (code == ERR_NO_MEMORY) {
        app_add_num(o, "needed_mb", err->needed_mb);
        app_add_num(o, "free_mb", err->free_mb);
        app_add_num(o, "limit_mb", err->limit_mb);
    }
    http_reply_json(req, error_http_status(code), o);
}
