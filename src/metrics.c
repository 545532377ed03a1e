/* metrics.c -- request and inference metrics in Prometheus text format. */
#include "inferd/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statuses inferd answers with; anything else is counted as "other". */
static const int statuses[] = {200, 400, 401, 403, 404, 405, 406, 413,
                               415, 422, 500, 503, 507, 0};
#define NSTATUS (sizeof statuses / sizeof statuses[0])
#define MAX_ROUTES 64

/* A histogram with fixed bounds; counts are per bucket, not cumulative,
 * so an observation touches one counter. */
#define MAX_BUCKETS 16
typedef struct {
    const double *bounds;
    int nbounds;
    atomic_uint_fast64_t counts[MAX_BUCKETS + 1];
    _Atomic double sum; /* updated with a CAS loop */
    atomic_uint_fast64_t total;
} histogram;

static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,  0.1,    0.25,  0.5,
                                        1,      2.5,   5,      10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128};
#define NB(a) ((int)(sizeof a / sizeof a[0]))

static const route *routes;
static size_t nroutes;
static atomic_uint_fast64_t requests[MAX_ROUTES + 1][NSTATUS];
static histogram req_hist[MAX_ROUTES + 1];
static histogram queue_hist, infer_hist, batch_hist;

static void hist_init(histogram *h, const double *b, int n) {
    h->bounds = b;
    h->nbounds = n;
}

void metrics_init(const route *table, size_t n) {
    routes = table;
    nroutes = n < MAX_ROUTES ? n : MAX_ROUTES;
    for (size_t i = 0; i <= MAX_ROUTES; i++)
        hist_init(&req_hist[i], latency_bounds, NB(latency_bounds));
    hist_init(&queue_hist, latency_bounds, NB(latency_bounds));
    hist_init(&infer_hist, latency_bounds, NB(latency_bounds));
    hist_init(&batch_hist, batch_bounds, NB(batch_bounds));
}

static void hist_observe(histogram *h, double v) {
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i]) i++;
    atomic_fetch_add(&h->counts[i], 1);
    atomic_fetch_add(&h->total, 1);
    double old = atomic_load(&h->sum);
    while (!atomic_compare_exchange_weak(&h->sum, &old, old + v)) {
    }
}

static size_t route_slot(int route_index) {
    return route_index >= 0 && (size_t)route_index < nroutes
               ? (size_t)route_index
               : nroutes;
}

void metrics_observe_request(int route_index, int status, double seconds) {
    size_t r = route_slot(route_index), s = 0;
    while (statuses[s] && statuses[s] != status) s++;
    atomic_fetch_add(&requests[r][s], 1);
    hist_observe(&req_hist[r], seconds);
}

void metrics_observe_inference(double queue_seconds, double infer_seconds) {
    hist_observe(&queue_hist, queue_seconds);
    hist_observe(&infer_hist, infer_seconds);
}

void metrics_observe_batch(int size) { hist_observe(&batch_hist, size); }

/* ----------------------------------------------------------- rendering */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} out;

static void put(out *o, const char *fmt, ...) {
    for (;;) {
        if (o->oom) return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)(n > 0 ? n : 0);
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->oom = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

static const char *route_label(size_t r) {
    return r < nroutes ? routes[r].pattern : "unmatched";
}

static void hist_render(out *o, const char *name, const char *labels,
                        histogram *h) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (int i = 0; i < h->nbounds; i++) {
        cum += atomic_load(&h->counts[i]);
        put(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
            h->bounds[i], (unsigned long long)cum);
    }
    cum += atomic_load(&h->counts[h->nbounds]);
    put(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
        (unsigned long long)cum);
    const char *lb = *labels ? "{" : "", *rb = *labels ? "}" : "";
    put(o, "%s_sum%s%s%s %.17g\n", name, lb, labels, rb, atomic_load(&h->sum));
    put(o, "%s_count%s%s%s %llu\n", name, lb, labels, rb,
        (unsigned long long)cum);
}

static void header(out *o, const char *name, const char *type,
                   const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(out *o, const char *name, const char *help, double v) {
    header(o, name, "gauge", help);
    put(o, "%s %.17g\n", name, v);
}

static void counter(out *o, const char *name, const char *help, double v) {
    header(o, name, "counter", help);
    put(o, "%s %.17g\n", name, v);
}

char *metrics_render(const metrics_gauges *g) {
    out o = {malloc(8192), 0, 8192, 0};
    if (!o.buf) return NULL;
    header(&o, "inferd_requests_total", "counter",
           "HTTP requests answered, by route pattern and status.");
    for (size_t r = 0; r <= nroutes; r++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load(&requests[r][s]);
            if (!v) continue;
            char code[8];
            snprintf(code, sizeof code, "%d", statuses[s]);
            put(&o, "inferd_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                route_label(r), statuses[s] ? code : "other",
                (unsigned long long)v);
        }
    header(&o, "inferd_request_duration_seconds", "histogram",
           "Time from a request's arrival to its reply, by route pattern.");
    for (size_t r = 0; r <= nroutes; r++) {
        if (!atomic_load(&req_hist[r].total)) continue;
        char labels[160];
        snprintf(labels, sizeof labels, "route=\"%s\"", route_label(r));
        hist_render(&o, "inferd_request_duration_seconds", labels,
                    &req_hist[r]);
    }
    header(&o, "inferd_queue_wait_seconds", "histogram",
           "Time predictions waited in the inference queue.");
    hist_render(&o, "inferd_queue_wait_seconds", "", &queue_hist);
    header(&o, "inferd_inference_duration_seconds", "histogram",
           "Time of the model's forward, per prediction.");
    hist_render(&o, "inferd_inference_duration_seconds", "", &infer_hist);
    header(&o, "inferd_batch_size", "histogram",
           "Predictions stacked into one forward.");
    hist_render(&o, "inferd_batch_size", "", &batch_hist);
    gauge(&o, "inferd_queue_depth", "Predictions waiting for a worker.",
          g->queue_depth);
    gauge(&o, "inferd_model_loaded", "1 when the model is loaded.",
          g->model_loaded);
    gauge(&o, "inferd_runtime_loaded", "1 once libtorch is mapped.",
          g->runtime_loaded);
    counter(&o, "inferd_model_loads_total", "Successful model loads.",
            (double)g->loads);
    counter(&o, "inferd_model_unloads_total", "Model unloads.",
            (double)g->unloads);
    counter(&o, "inferd_model_load_failures_total", "Failed model loads.",
            (double)g->load_failures);
    gauge(&o, "inferd_model_load_duration_seconds",
          "Duration of the last successful model load.",
          g->last_load_seconds);
    gauge(&o, "inferd_process_resident_memory_bytes", "Resident set size.",
          g->rss_bytes);
    gauge(&o, "inferd_process_anonymous_memory_bytes",
          "Anonymous resident memory (RssAnon).", g->anon_bytes);
    gauge(&o, "inferd_process_file_memory_bytes",
          "File-backed resident memory (RssFile).", g->file_bytes);
    gauge(&o, "inferd_memory_limit_bytes", "The memory limit in force.",
          g->limit_bytes);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
