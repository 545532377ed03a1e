/* model.c -- the model manager: lifecycle state machine, one load at a time,
 * refcounted handles, unload that waits for predictions in flight, the
 * memory guard, idle unload and pressure handling. */
#include "inferd/model.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inferd/cpu.h"
#include "inferd/error.h"
#include "inferd/log.h"
#include "inferd/tensor.h"

/* A loaded model; refs counts predictions holding it. */
typedef struct {
    const backend_api *api;
    backend_model *bm;
    backend_info info;
    int refs;
} loaded;

struct model_entry {
    char name[256];
    char path[4096];
    pthread_mutex_t lock;
    pthread_cond_t cond; /* state or refs changed */
    model_state state;
    int last_code;
    char last_error[512];
    model_err last_err;
    loaded *cur;
    uint64_t loads, unloads, failures, attempts;
    double last_load_ms, load_peak_rss_mb, last_used;
    int paging;
};

static const config *cfg;
static const memory_limit *limit;
static model_entry the_entry;
static int have_entry;
static int runtime_threads;
static pthread_once_t runtime_once = PTHREAD_ONCE_INIT;
static int runtime_rc;
static char runtime_err[512];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *model_state_name(model_state s) {
    static const char *names[] = {"not_loaded", "loading", "loaded",
                                  "unloading", "error"};
    return (unsigned)s <= MODEL_ERROR ? names[s] : "unknown";
}

void model_init(const config *c, const memory_limit *lim) {
    cfg = c;
    limit = lim;
    have_entry = *c->model_path != '\0';
    model_entry *e = &the_entry;
    snprintf(e->name, sizeof e->name, "%s", c->model_name);
    snprintf(e->path, sizeof e->path, "%s", c->model_path);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->state = MODEL_NOT_LOADED;
    e->last_used = now();
}

model_entry *model_find(const char *name) {
    if (!name) return &the_entry;
    if (have_entry && !strcmp(name, the_entry.name)) return &the_entry;
    return NULL;
}

static double rss_now(memory_process *p) {
    if (memory_process_read(p, NULL, 0)) return 0;
    return p->rss_mb;
}

/* VmHWM is the peak over the process's life; writing 5 to clear_refs
 * resets it so that the peak of one load can be read afterwards. */
static void reset_peak(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t w = write(fd, "5", 1);
    (void)w;
    close(fd);
}

static void runtime_init(void) {
    const backend_api *api = backend_get();
    int n = cfg->torch_num_threads;
    if (n <= 0) {
        n = cpu_available("") / cfg->inference_workers;
        if (n < 1) n = 1;
    }
    runtime_threads = n;
    runtime_rc = api->init(n, 1, cfg->jit_profiling, runtime_err,
                           sizeof runtime_err);
}

/* dlopen the shim (mapping libtorch) and set its threads, once. */
static int open_runtime(model_err *err) {
    const backend_api *api =
        backend_open(cfg->backend_path, err->msg, sizeof err->msg);
    if (!api) return ERR_INTERNAL;
    pthread_once(&runtime_once, runtime_init);
    if (runtime_rc)
        return error_set(err->msg, sizeof err->msg, ERR_INTERNAL,
                         "runtime initialisation failed: %s", runtime_err);
    return 0;
}

int model_preload_runtime(model_err *err) {
    double t0 = now();
    int rc = open_runtime(err);
    memory_process p;
    rss_now(&p);
    if (rc)
        log_event(LOG_WARN, "runtime preload failed", "error",
                  LOG_STR(err->msg), NULL);
    else
        log_event(LOG_INFO, "runtime preloaded", "ms",
                  LOG_NUM((now() - t0) * 1000.0), "rss_mb", LOG_NUM(p.rss_mb),
                  "anon_mb", LOG_NUM(p.anon_mb), NULL);
    return rc;
}

/* MODEL_WARMUP: forward twice on zeros of the configured shapes, so that
 * the first real request does not pay for the executor's first runs. */
static void warm_up(model_entry *e, loaded *l) {
    backend_tensor in[BACKEND_MAX_ARGS];
    memset(in, 0, sizeof in);
    int n = 0;
    char err[ERR_LEN] = "";
    char spec[512];
    snprintf(spec, sizeof spec, "%s", cfg->model_warmup);
    char *sp;
    int rc = 0;
    for (char *s = strtok_r(spec, ";", &sp); s && n < BACKEND_MAX_ARGS && !rc;
         s = strtok_r(NULL, ";", &sp)) {
        backend_tensor *t = &in[n++];
        rc = tensor_parse_shape(s, t, err, sizeof err);
        t->dtype = DTYPE_FLOAT32;
        t->nbytes = tensor_numel(t) * 4;
        if (!rc && !(t->data = calloc(1, t->nbytes ? t->nbytes : 1)))
            rc = ERR_INTERNAL;
    }
    double t0 = now();
    for (int round = 0; round < 2 && !rc; round++) {
        backend_tensor *out = NULL;
        int nout = 0;
        rc = l->api->forward(l->bm, in, n, &out, &nout, err, sizeof err);
        if (!rc) l->api->free_outputs(out, nout);
    }
    for (int i = 0; i < n; i++) free(in[i].data);
    if (rc)
        log_event(LOG_WARN, "model warm-up failed (check MODEL_WARMUP)",
                  "name", LOG_STR(e->name), "error", LOG_STR(err), NULL);
    else
        log_event(LOG_INFO, "model warmed up", "name", LOG_STR(e->name),
                  "ms", LOG_NUM((now() - t0) * 1000.0), NULL);
}

static int backend_status(int rc) {
    switch (rc) {
    case BACKEND_OK: return 0;
    case BACKEND_ENOENT: return ERR_NOT_FOUND;
    case BACKEND_ENOTSCRIPT: return ERR_NOT_SCRIPT;
    case BACKEND_EINPUT: return ERR_BAD_REQUEST;
    default: return ERR_INTERNAL;
    }
}

/* The memory guard: will the anonymous memory this load needs fit in what
 * is left under the limit? Mapped weights are reclaimable file pages and
 * do not count. */
static int guard_check(model_entry *e, const struct stat *st, model_err *err) {
    double needed = cfg->activation_mb;
    if (!backend_get()) needed += cfg->runtime_anon_mb;
    if (!cfg->model_mmap) needed += (double)st->st_size / (1 << 20);
    memory_process p;
    memory_process_read(&p, NULL, 0);
    memory_usage u;
    memory_usage_read(limit, &p, cfg->memory_warning_percent,
                      cfg->memory_critical_percent, &u);
    double limit_mb = (double)limit->limit_bytes / (1 << 20);
    double free_mb = limit_mb - u.usage_mb;
    if (free_mb < 0) free_mb = 0;
    if (needed <= free_mb) return 0;
    err->needed_mb = needed;
    err->free_mb = free_mb;
    err->limit_mb = limit_mb;
    return error_set(err->msg, sizeof err->msg, ERR_NO_MEMORY,
                     "model %s needs ~%.0f MB, %.0f MB of the %.0f MB limit "
                     "are free; raise MEMORY_LIMIT_MB or serve a smaller "
                     "model",
                     e->name, needed, free_mb, limit_mb);
}

/* Load the file into a new 'loaded'. Runs without the entry lock. */
static int do_load(model_entry *e, loaded **out, model_err *err) {
    struct stat st;
    if (!*e->path)
        return error_set(err->msg, sizeof err->msg, ERR_NO_MODEL,
                         "no model configured: set MODEL_PATH to a "
                         "TorchScript file");
    if (stat(e->path, &st) != 0)
        return error_set(err->msg, sizeof err->msg,
                         errno == ENOENT ? ERR_NOT_FOUND : ERR_INTERNAL,
                         "model file %s: %s; check MODEL_PATH", e->path,
                         strerror(errno));
    if (S_ISDIR(st.st_mode))
        return error_set(err->msg, sizeof err->msg, ERR_NOT_SCRIPT,
                         "model file %s is a directory; MODEL_PATH must name "
                         "a TorchScript .pt file",
                         e->path);
    int rc;
    if (cfg->memory_guard && (rc = guard_check(e, &st, err))) return rc;

    memory_process before, after;
    rss_now(&before);
    reset_peak();
    double t0 = now();
    if ((rc = open_runtime(err))) return rc;
    const backend_api *api = backend_get();
    loaded *l = calloc(1, sizeof *l);
    if (!l)
        return error_set(err->msg, sizeof err->msg, ERR_INTERNAL,
                         "out of memory");
    l->api = api;
    backend_load_opts opts = {.use_mmap = cfg->model_mmap, .warmup = 0};
    rc = api->load(e->path, &opts, &l->bm, err->msg, sizeof err->msg);
    if (rc == BACKEND_OK)
        rc = api->describe(l->bm, &l->info, err->msg, sizeof err->msg);
    if (rc != BACKEND_OK) {
        if (l->bm) api->free_model(l->bm);
        free(l);
        return backend_status(rc);
    }
    if (*cfg->model_warmup) warm_up(e, l);
    double ms = (now() - t0) * 1000.0;
    rss_now(&after);
    e->last_load_ms = ms;
    e->load_peak_rss_mb = after.hwm_mb;
    /* Mapped weights page from disk once they and what is already resident
     * (the runtime, the heap) cannot all stay in memory under the limit. */
    e->paging = (double)l->info.mapped_bytes + after.rss_mb * (1 << 20) >
                (double)limit->limit_bytes;
    log_event(LOG_INFO, "model loaded", "name", LOG_STR(e->name), "ms",
              LOG_NUM(ms), "rss_before_mb", LOG_NUM(before.rss_mb),
              "rss_after_mb", LOG_NUM(after.rss_mb), "anon_before_mb",
              LOG_NUM(before.anon_mb), "anon_after_mb",
              LOG_NUM(after.anon_mb), "hwm_before_mb",
              LOG_NUM(before.hwm_mb), "hwm_after_mb", LOG_NUM(after.hwm_mb),
              "weights_mb", LOG_NUM((double)l->info.weights_bytes / (1 << 20)),
              "mapped_mb", LOG_NUM((double)l->info.mapped_bytes / (1 << 20)),
              NULL);
    if (e->paging)
        log_event(LOG_WARN,
                  "weights exceed the memory limit: predictions will page "
                  "from disk",
                  "name", LOG_STR(e->name), "mapped_mb",
                  LOG_NUM((double)l->info.mapped_bytes / (1 << 20)),
                  "limit_mb", LOG_NUM((double)limit->limit_bytes / (1 << 20)),
                  NULL);
    *out = l;
    return 0;
}

/* With e->lock held and state NOT_LOADED or ERROR: load, then publish. */
static int load_locked(model_entry *e, model_err *err) {
    e->state = MODEL_LOADING;
    e->attempts++;
    pthread_mutex_unlock(&e->lock);
    loaded *l = NULL;
    model_err local;
    memset(&local, 0, sizeof local);
    int rc = do_load(e, &l, &local);
    pthread_mutex_lock(&e->lock);
    if (rc == 0) {
        e->cur = l;
        e->state = MODEL_LOADED;
        e->loads++;
        e->last_error[0] = '\0';
        e->last_used = now();
    } else {
        e->state = MODEL_ERROR;
        e->failures++;
        e->last_code = rc;
        e->last_err = local;
        snprintf(e->last_error, sizeof e->last_error, "%s", local.msg);
        log_event(LOG_WARN, "model load failed", "name", LOG_STR(e->name),
                  "error", LOG_STR(local.msg), NULL);
    }
    if (err) *err = local;
    pthread_cond_broadcast(&e->cond);
    return rc;
}

/* Wait until no load or unload is under way. */
static void wait_settled(model_entry *e) {
    while (e->state == MODEL_LOADING || e->state == MODEL_UNLOADING)
        pthread_cond_wait(&e->cond, &e->lock);
}

int model_acquire(model_entry *e, model_handle *h, model_err *err) {
    memset(h, 0, sizeof *h);
    pthread_mutex_lock(&e->lock);
    int rc = 0;
    uint64_t seen = e->attempts;
    for (;;) {
        wait_settled(e);
        if (e->state == MODEL_LOADED) break;
        if (e->state == MODEL_ERROR && e->attempts != seen) {
            /* We waited for somebody's load, and it failed: share its
             * answer instead of trying again at once. */
            rc = e->last_code;
            if (err) *err = e->last_err;
            goto out;
        }
        if ((rc = load_locked(e, err))) goto out;
    }
    e->cur->refs++;
    e->last_used = now();
    h->entry = e;
    h->api = e->cur->api;
    h->bm = e->cur->bm;
    h->info = &e->cur->info;
    h->priv = e->cur;
out:
    pthread_mutex_unlock(&e->lock);
    return rc;
}

void model_release(model_handle *h) {
    if (!h->entry) return;
    model_entry *e = h->entry;
    pthread_mutex_lock(&e->lock);
    loaded *l = h->priv;
    if (--l->refs == 0) pthread_cond_broadcast(&e->cond);
    e->last_used = now();
    pthread_mutex_unlock(&e->lock);
    memset(h, 0, sizeof *h);
}

int model_load(model_entry *e, int *already, double *load_ms,
               model_err *err) {
    pthread_mutex_lock(&e->lock);
    wait_settled(e);
    int rc = 0;
    *already = e->state == MODEL_LOADED;
    if (!*already) rc = load_locked(e, err);
    *load_ms = e->last_load_ms;
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int model_unload(model_entry *e, int *was_loaded, double *freed_mb) {
    pthread_mutex_lock(&e->lock);
    wait_settled(e);
    *was_loaded = e->state == MODEL_LOADED;
    *freed_mb = 0;
    if (!*was_loaded) {
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    e->state = MODEL_UNLOADING;
    while (e->cur->refs > 0) pthread_cond_wait(&e->cond, &e->lock);
    loaded *l = e->cur;
    e->cur = NULL;
    pthread_mutex_unlock(&e->lock);

    memory_process before, after;
    rss_now(&before);
    l->api->free_model(l->bm);
    free(l);
    malloc_trim(0);
    rss_now(&after);
    *freed_mb = before.rss_mb > after.rss_mb ? before.rss_mb - after.rss_mb : 0;
    log_event(LOG_INFO, "model unloaded", "name", LOG_STR(e->name),
              "rss_before_mb", LOG_NUM(before.rss_mb), "rss_after_mb",
              LOG_NUM(after.rss_mb), "anon_after_mb", LOG_NUM(after.anon_mb),
              NULL);

    pthread_mutex_lock(&e->lock);
    e->state = MODEL_NOT_LOADED;
    e->unloads++;
    e->paging = 0;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

void model_get_status(model_entry *e, model_status *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&e->lock);
    out->name = e->name;
    out->path = e->path;
    out->state = e->state;
    snprintf(out->last_error, sizeof out->last_error, "%s", e->last_error);
    if (e->cur) {
        out->has_info = 1;
        out->info = e->cur->info;
        out->in_use = e->cur->refs;
    }
    out->loads = e->loads;
    out->unloads = e->unloads;
    out->load_failures = e->failures;
    out->last_load_ms = e->last_load_ms;
    out->load_peak_rss_mb = e->load_peak_rss_mb;
    out->idle_seconds = now() - e->last_used;
    out->paging = e->paging;
    pthread_mutex_unlock(&e->lock);
}

void model_get_runtime(model_runtime *out) {
    const backend_api *api = backend_get();
    memset(out, 0, sizeof *out);
    out->loaded = api != NULL;
    if (api) {
        out->name = api->name();
        out->version = api->version();
        out->threads = runtime_threads;
    }
}

/* Idle unload and pressure: one pass per call, from the main loop. */
void model_tick(void) {
    static const char *last_level = "ok";
    memory_process p;
    memory_usage u;
    memory_process_read(&p, NULL, 0);
    memory_usage_read(limit, &p, cfg->memory_warning_percent,
                      cfg->memory_critical_percent, &u);
    if (strcmp(u.level, last_level) && strcmp(u.level, "ok"))
        log_event(LOG_WARN, "memory threshold crossed", "level",
                  LOG_STR(u.level), "usage_mb", LOG_NUM(u.usage_mb),
                  "limit_mb", LOG_NUM((double)limit->limit_bytes / (1 << 20)),
                  "percent", LOG_NUM(u.percent), "source", LOG_STR(u.source),
                  NULL);
    /* One pressure unload per stay in critical: if the runtime alone keeps
     * usage critical, unloading again and again would only make every
     * prediction reload. Re-armed once usage leaves critical. */
    static int pressure_armed = 1;
    int critical = !strcmp(u.level, "critical");
    if (!critical) pressure_armed = 1;
    int critical_now = critical && pressure_armed;
    last_level = u.level;
    if (!have_entry) return;
    model_status st;
    model_get_status(&the_entry, &st);
    if (st.state != MODEL_LOADED || st.in_use) return;
    const char *why = NULL;
    if (cfg->model_idle_unload_seconds > 0 &&
        st.idle_seconds >= cfg->model_idle_unload_seconds)
        why = "idle";
    else if (cfg->unload_on_pressure && critical_now)
        why = "memory pressure";
    if (!why) return;
    int was;
    double freed;
    model_unload(&the_entry, &was, &freed);
    if (was && !strcmp(why, "memory pressure"))
        pressure_armed = 0;
    if (was)
        log_event(LOG_INFO, "model unloaded automatically", "reason",
                  LOG_STR(why), "freed_mb", LOG_NUM(freed), NULL);
}
