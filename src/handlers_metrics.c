/* handlers_metrics.c -- GET /metrics: Prometheus text exposition. */
#include <stdlib.h>
#include <string.h>

#include "inferd/app.h"
#include "inferd/metrics.h"

void handle_metrics(http_request *req) {
    metrics_gauges g;
    memset(&g, 0, sizeof g);
    memory_process p;
    memory_process_read(&p, NULL, 0);
    const double mb = 1024.0 * 1024.0;
    g.rss_bytes = p.rss_mb * mb;
    g.anon_bytes = p.anon_mb * mb;
    g.file_bytes = p.file_mb * mb;
    g.limit_bytes = (double)app.limit.limit_bytes;
    g.queue_depth = queue_depth(app.predict_q);
    model_status st;
    model_get_status(model_find(NULL), &st);
    g.model_loaded = st.state == MODEL_LOADED;
    g.loads = st.loads;
    g.unloads = st.unloads;
    g.load_failures = st.load_failures;
    g.last_load_seconds = st.last_load_ms / 1000.0;
    model_runtime rt;
    model_get_runtime(&rt);
    g.runtime_loaded = rt.loaded;
    char *text = metrics_render(&g);
    if (!text) {
        http_reply_error(req, 500, "out of memory rendering metrics");
        return;
    }
    http_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                   strlen(text));
}
