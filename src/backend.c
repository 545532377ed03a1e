/* backend.c -- finds and dlopens the runtime shim the first time a model is
 * needed, so that libtorch is mapped only then. */
#include "inferd/backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "inferd/error.h"

/* lock serialises opening; api is published atomically so that readers
 * (/memory during a load) never wait for a dlopen in progress. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const backend_api *_Atomic api;

size_t backend_dtype_size(dtype_t dt) {
    static const size_t sizes[DTYPE_COUNT] = {4, 8, 2, 8, 4, 2, 1, 1, 1};
    return (unsigned)dt < DTYPE_COUNT ? sizes[dt] : 0;
}

/* libinferd_torch.so in the directory of the running binary. */
static void default_path(char *out, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, len, "libinferd_torch.so");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(out, len, "%s/libinferd_torch.so", exe);
}

const backend_api *backend_open(const char *path, char *err, size_t errlen) {
    pthread_mutex_lock(&lock);
    if (api) goto out;
    char buf[PATH_MAX + 32];
    if (!path || !*path) {
        default_path(buf, sizeof buf);
        path = buf;
    }
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        error_set(err, errlen, ERR_INTERNAL,
                  "cannot load the runtime %s: %s (build it with make, or "
                  "set BACKEND_PATH)",
                  path, dlerror());
        goto out;
    }
    backend_entry_fn entry = (backend_entry_fn)dlsym(so, BACKEND_ENTRY_SYMBOL);
    const backend_api *a = entry ? entry() : NULL;
    if (!a || a->abi_version != BACKEND_ABI_VERSION) {
        error_set(err, errlen, ERR_INTERNAL,
                  "%s is not an inferd backend of ABI version %d", path,
                  BACKEND_ABI_VERSION);
        /* Deliberately not dlclosed: unloading C++ runtimes is unsafe. */
        goto out;
    }
    api = a;
out:;
    const backend_api *r = api;
    pthread_mutex_unlock(&lock);
    return r;
}

const backend_api *backend_get(void) { return api; }
