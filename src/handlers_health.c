/* handlers_health.c -- GET /health and GET /memory. Neither touches the
 * model beyond reading its status: they answer at once during a load. */
#include "inferd/app.h"
#include "inferd/tensor.h"

static cJSON *model_json(void) {
    model_status st;
    model_get_status(model_find(NULL), &st);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "status", model_state_name(st.state));
    if (st.has_info)
        app_add_num(m, "total_parameters",
                                (double)st.info.parameters);
    else
        cJSON_AddNullToObject(m, "total_parameters");
    cJSON_AddStringToObject(m, "name", st.name);
    cJSON_AddStringToObject(m, "path", st.path);
    cJSON_AddBoolToObject(m, "mmap", app.cfg->model_mmap);
    if (st.has_info) {
        const double mb = 1 << 20;
        app_add_num(m, "weights_mb", st.info.weights_bytes / mb);
        app_add_num(m, "weights_mapped_mb",
                                st.info.mapped_bytes / mb);
        app_add_num(m, "weights_copied_mb",
                                st.info.copied_bytes / mb);
        app_add_num(m, "load_peak_rss_mb", st.load_peak_rss_mb);
        app_add_num(m, "load_time_ms", st.last_load_ms);
    }
    app_add_num(m, "loads", (double)st.loads);
    app_add_num(m, "unloads", (double)st.unloads);
    app_add_num(m, "load_failures", (double)st.load_failures);
    if (st.last_error[0])
        cJSON_AddStringToObject(m, "last_error", st.last_error);
    else
        cJSON_AddNullToObject(m, "last_error");
    return m;
}

static cJSON *runtime_json(void) {
    model_runtime rt;
    model_get_runtime(&rt);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "loaded", rt.loaded);
    if (rt.loaded) {
        cJSON_AddStringToObject(r, "name", rt.name);
        cJSON_AddStringToObject(r, "version", rt.version);
        app_add_num(r, "threads", rt.threads);
    }
    return r;
}

void handle_health(http_request *req) {
    model_status st;
    model_get_status(model_find(NULL), &st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddBoolToObject(o, "model_loaded", st.state == MODEL_LOADED);
    cJSON_AddStringToObject(o, "model_status", model_state_name(st.state));
    cJSON_AddStringToObject(o, "model", st.name);
    if (st.last_error[0])
        cJSON_AddStringToObject(o, "model_error", st.last_error);
    app_add_num(o, "uptime_s", app_now() - app.started);
    cJSON_AddStringToObject(o, "version", INFERD_VERSION);
    http_reply_json(req, 200, o);
}

void handle_memory(http_request *req) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "memory", app_memory_json());
    cJSON_AddItemToObject(o, "model", model_json());
    cJSON_AddItemToObject(o, "runtime", runtime_json());
    http_reply_json(req, 200, o);
}
