/* main.c -- reads the configuration, starts the server, waits for SIGTERM
 * or SIGINT while running periodic model work, then drains and exits. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../memory_config.h"
#include "inferd/app.h"
#include "inferd/auth.h"
#include "inferd/error.h"
#include "inferd/metrics.h"
#include "inferd/infer.h"
#include "inferd/log.h"

static void log_request(const http_request *req, double seconds) {
    metrics_observe_request(req->route_index, req->status, seconds);
    log_event(LOG_INFO, "request", "method", LOG_STR(req->method), "path",
              LOG_STR(req->path), "status", LOG_INT(req->status), "ms",
              LOG_NUM(seconds * 1000.0), NULL);
}

static void log_memory(const char *msg) {
    memory_process p;
    memory_process_read(&p, NULL, 0);
    log_event(LOG_INFO, msg, "rss_mb", LOG_NUM(p.rss_mb), "anon_mb",
              LOG_NUM(p.anon_mb), "file_mb", LOG_NUM(p.file_mb), "limit_mb",
              LOG_NUM((double)app.limit.limit_bytes / (1 << 20)),
              "limit_source", LOG_STR(app.limit.source), NULL);
}

/* Development mode without lazy loading: load right after start-up, on a
 * thread of its own so /health answers meanwhile. */
static void *eager_load(void *arg) {
    (void)arg;
    int already;
    double ms;
    model_err err;
    model_load(model_find(NULL), &already, &ms, &err);
    return NULL;
}

/* With MODEL_MMAP the weights are pages of the model file: a file truncated
 * or rewritten in place under a running server faults with SIGBUS when a
 * vanished page is touched. Nothing can recover a half-gone model, but the
 * crash must not be silent: say what happened and how to deploy safely. */
static void on_sigbus(int sig) {
    static const char msg[] =
        "inferd: fatal: SIGBUS: a mapped model file was truncated or "
        "rewritten in place while being served (MODEL_MMAP=true); replace "
        "model files by atomic rename (write elsewhere, then mv)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void *preload(void *arg) {
    (void)arg;
    model_err err;
    model_preload_runtime(&err);
    return NULL;
}

/* Stop taking connections, let requests in flight finish, stop. */
static int drain(int timeout_s) {
    http_quiesce();
    double until = app_now() + timeout_s;
    while (http_in_flight() > 0 && app_now() < until) usleep(10 * 1000);
    int left = http_in_flight();
    double rest = until - app_now();
    int stuck = queue_stop(app.predict_q, rest > 0 ? rest : 0) |
                queue_stop(app.admin_q, 0.5);
    if (left || stuck) {
        /* A forward still runs: MHD cannot be stopped under a suspended
         * connection, and the process is exiting anyway. */
        log_event(LOG_WARN, "shutdown timeout: requests abandoned", "count",
                  LOG_INT(left), NULL);
        return 0;
    }
    /* Let the replies of resumed requests leave before stopping. */
    for (int i = 0; i < 100 && http_in_flight() > 0; i++) usleep(10 * 1000);
    http_stop();
    return 0;
}

int main(int argc, char **argv) {
    static config cfg;
    char err[ERR_LEN];
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == CONFIG_EXIT_HELP) {
        config_print_help(argv[0]);
        return 0;
    }
    if (rc == CONFIG_EXIT_VERSION) {
        printf("inferd %s\n", INFERD_VERSION);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "inferd: %s\n", err);
        return 2;
    }
    log_setup((log_level)cfg.log_level, cfg.log_format == LOGFMT_JSON);
    if (cfg.lazy_forced)
        log_event(LOG_WARN,
                  "LAZY_LOADING=false was ignored: ENVIRONMENT=production "
                  "always loads lazily",
                  NULL);
    config_log(&cfg);

    /* libtorch's OpenMP threads spin while they wait for work by default;
     * on a small instance they then take the cores the HTTP thread and the
     * other workers need (measured here: CNN at 16 clients, 2 threads, 31-93
     * req/s spinning vs 573-661 passive; docs/performance.md). Set before
     * any thread exists and before libgomp is loaded, and only when the
     * user has not chosen. */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);

    app.cfg = &cfg;
    app.started = app_now();
    memory_limit_detect("", cfg.memory_limit_mb,
                        (uint64_t)MEMCFG_DEFAULT_LIMIT_MB << 20, &app.limit);
    model_init(&cfg, &app.limit);

    /* Signals are taken by sigtimedwait in this thread only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGBUS, on_sigbus);

    app.predict_q =
        queue_create("predict", cfg.inference_workers, cfg.queue_capacity);
    app.admin_q = queue_create("admin", 1, 16);
    if (!app.predict_q || !app.admin_q) {
        fprintf(stderr, "inferd: cannot start worker threads\n");
        return 1;
    }
    infer_configure(app.predict_q, cfg.max_batch_size, cfg.batch_timeout_us);
    http_options opt = {cfg.host, cfg.port, (size_t)cfg.max_request_mb << 20,
                        cfg.connection_timeout_seconds, cfg.max_connections};
    http_set_observer(log_request);
    metrics_init(app_routes, app_nroutes);
    auth_init(&cfg);
    http_set_guard(auth_check);
    if (http_start(&opt, app_routes, app_nroutes, err, sizeof err)) {
        log_event(LOG_ERROR, err, NULL);
        return 1;
    }
    log_event(LOG_INFO, "listening", "host", LOG_STR(cfg.host), "port",
              LOG_INT(http_port()), "model", LOG_STR(cfg.model_path),
              "lazy_loading", LOG_BOOL(cfg.lazy_loading), NULL);
    log_memory("memory at start-up");
    if (cfg.preload_runtime && (cfg.lazy_loading || !*cfg.model_path)) {
        pthread_t t;
        if (pthread_create(&t, NULL, preload, NULL) == 0) pthread_detach(t);
    }
    if (!cfg.lazy_loading && *cfg.model_path) {
        pthread_t t;
        if (pthread_create(&t, NULL, eager_load, NULL) == 0)
            pthread_detach(t);
    }

    struct timespec tick = {1, 0};
    int sig;
    while ((sig = sigtimedwait(&sigs, NULL, &tick)) < 0) model_tick();
    log_event(LOG_INFO, "signal received: draining", "signal",
              LOG_STR(strsignal(sig)), "timeout_s",
              LOG_INT(cfg.shutdown_timeout_seconds), NULL);
    drain(cfg.shutdown_timeout_seconds);
    log_event(LOG_INFO, "stopped", NULL);
    return 0;
}
