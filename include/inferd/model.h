/* model.h -- the model manager: a table of models by name, each with its
 * lifecycle (not_loaded -> loading -> loaded -> unloading, or error),
 * refcounted handles, one load at a time, idle unload and a memory guard.
 *
 * All functions are thread-safe. model_acquire/model_load/model_unload may
 * block (they load or wait), so they must not run on the HTTP thread. A
 * handle from model_acquire stays valid until model_release, whatever
 * unloads happen meanwhile. */
#ifndef INFERD_MODEL_H
#define INFERD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "inferd/backend.h"
#include "inferd/config.h"
#include "inferd/memory.h"

typedef enum {
    MODEL_NOT_LOADED = 0,
    MODEL_LOADING,
    MODEL_LOADED,
    MODEL_UNLOADING,
    MODEL_ERROR
} model_state;

typedef struct model_entry model_entry;

typedef struct {
    model_entry *entry;
    const backend_api *api;
    backend_model *bm;
    const backend_info *info;
    void *priv;
} model_handle;

/* What a failed call tells: a message, and for ERR_NO_MEMORY the figures
 * of the memory guard. */
typedef struct {
    char msg[512];
    double needed_mb, free_mb, limit_mb;
} model_err;

/* A snapshot for /memory, /health and metrics. */
typedef struct {
    const char *name;
    const char *path;
    model_state state;
    char last_error[512];
    int has_info;
    backend_info info;
    uint64_t loads, unloads, load_failures;
    double last_load_ms;
    double load_peak_rss_mb;
    double idle_seconds; /* since the last prediction */
    int paging;          /* mapped weights exceed the limit */
    int in_use;          /* predictions holding a handle */
} model_status;

/* Runtime facts for /memory. */
typedef struct {
    int loaded;
    const char *name;
    const char *version;
    int threads;
} model_runtime;

/* Register the configured model (none when MODEL_PATH is empty). */
void model_init(const config *cfg, const memory_limit *lim);

/* The entry called name, or the only/default entry when name is NULL. */
model_entry *model_find(const char *name);

/* A loaded handle, loading the model first when needed. 0 or ERR_*. */
int model_acquire(model_entry *e, model_handle *h, model_err *err);
void model_release(model_handle *h);

/* Load now. *already is set when it was loaded. 0 or ERR_*. */
int model_load(model_entry *e, int *already, double *load_ms, model_err *err);

/* Unload, waiting for predictions in flight. *was_loaded tells whether
 * there was anything to unload; *freed_mb the RSS given back. */
int model_unload(model_entry *e, int *was_loaded, double *freed_mb);

void model_get_status(model_entry *e, model_status *out);
void model_get_runtime(model_runtime *out);
const char *model_state_name(model_state s);

/* Map the runtime now (PRELOAD_RUNTIME), without loading the model.
 * Blocks for the dlopen; run it on a thread of its own. */
int model_preload_runtime(model_err *err);

/* Periodic work from the main loop: idle unload, memory pressure. */
void model_tick(void);

#endif
