/* metrics.h -- counters and histograms of requests and inference, rendered
 * in the Prometheus text exposition format.
 *
 * Observations are lock-free (atomics) and may come from any thread. The
 * gauges (memory, queue, model state) are read at scrape time by the
 * caller and passed to metrics_render. */
#ifndef INFERD_METRICS_H
#define INFERD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "inferd/route.h"

/* Values read at scrape time. */
typedef struct {
    double rss_bytes, anon_bytes, file_bytes, limit_bytes;
    int queue_depth;
    int model_loaded;
    uint64_t loads, unloads, load_failures;
    double last_load_seconds;
    int runtime_loaded;
} metrics_gauges;

/* Label requests by the route table's patterns (bounded cardinality). */
void metrics_init(const route *table, size_t n);

/* route_index -1 = no route matched. */
void metrics_observe_request(int route_index, int status, double seconds);
void metrics_observe_inference(double queue_seconds, double infer_seconds);
void metrics_observe_batch(int size);

/* The exposition text, malloc'd (NULL when out of memory). */
char *metrics_render(const metrics_gauges *g);

#endif
