/* handlers_model.c -- POST /model/load and POST /model/unload. Both run on
 * the admin worker: a load takes seconds and an unload waits for the
 * predictions in flight. */
#include <stdio.h>

#include "inferd/app.h"
#include "inferd/error.h"

static void do_load(http_request *req, void *arg) {
    (void)arg;
    int already = 0;
    double ms = 0;
    model_err err = {0};
    int rc = model_load(model_find(NULL), &already, &ms, &err);
    if (rc) {
        app_reply_model_error(req, rc, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", already ? "already_loaded" : "loaded");
    app_add_num(o, "load_time_ms", ms);
    cJSON_AddItemToObject(o, "memory", app_memory_json());
    http_reply_json(req, 200, o);
}

static void do_unload(http_request *req, void *arg) {
    (void)arg;
    int was = 0;
    double freed = 0;
    model_unload(model_find(NULL), &was, &freed);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", was ? "unloaded" : "not_loaded");
    if (was) app_add_num(o, "freed_mb", freed);
    http_reply_json(req, 200, o);
}

void handle_model_load(http_request *req) {
    app_defer(req, app.admin_q, do_load, NULL, NULL);
}

void handle_model_unload(http_request *req) {
    app_defer(req, app.admin_q, do_unload, NULL, NULL);
}
