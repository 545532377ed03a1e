/* app.h -- what the HTTP handlers share: the running configuration, the
 * memory limit, the work queues, the route table, and the one function
 * that runs a handler's blocking part on a worker (app_defer).
 *
 * Handlers live in handlers_*.c; each group is a few rows of app_routes. */
#ifndef INFERD_APP_H
#define INFERD_APP_H

#include "inferd/config.h"
#include "inferd/http.h"
#include "inferd/memory.h"
#include "inferd/model.h"
#include "inferd/queue.h"
#include "inferd/route.h"

typedef struct {
    const config *cfg;
    memory_limit limit;
    queue *predict_q; /* inference: bounded, INFERENCE_WORKERS threads */
    queue *admin_q;   /* loads and unloads: one thread */
    double started;   /* monotonic seconds */
} app_state;

extern app_state app;
extern const route app_routes[];
extern const size_t app_nroutes;

/* Run fn(req, arg) on a worker of q while the connection is suspended;
 * fn sets the reply. free_arg (may be NULL) releases arg afterwards, and
 * also when the job never runs (full queue, shutdown). */
void app_defer(http_request *req, queue *q,
               void (*fn)(http_request *req, void *arg), void *arg,
               void (*free_arg)(void *arg));

/* The "memory" object of /memory (also returned by /model/load). */
cJSON *app_memory_json(void);

/* Reply for a failed model operation: the status of code, the message, and
 * for ERR_NO_MEMORY the guard's figures. */
void app_reply_model_error(http_request *req, int code, const model_err *err);

/* Add a number rounded to 2 decimals: MB and ms figures read better so
 * and carry no false precision. */
void app_add_num(cJSON *obj, const char *key, double x);

/* Monotonic seconds. */
double app_now(void);

/* Handlers (one group per file). */
void handle_health(http_request *req);
void handle_memory(http_request *req);
void handle_model_load(http_request *req);
void handle_model_unload(http_request *req);
void handle_predict(http_request *req);
void handle_metrics(http_request *req);
void handle_v2_server(http_request *req);
void handle_v2_live(http_request *req);
void handle_v2_ready(http_request *req);
void handle_v2_model(http_request *req);
void handle_v2_model_ready(http_request *req);
void handle_v2_infer(http_request *req);
void handle_v2_repo_index(http_request *req);
void handle_v2_repo_load(http_request *req);
void handle_v2_repo_unload(http_request *req);

#endif
