/* backend_smoke.c -- drives a backend shared object through the C ABI of
 * include/inferd/backend.h, without the daemon: load a model, describe it,
 * run forward on inputs read from raw files, print (or dump) the outputs.
 *
 *   backend_smoke [--lib build/libinferd_torch.so] [--no-mmap] [--loops N]
 *                 [--dump PREFIX] [--threads N] MODEL [DTYPE:SHAPE:FILE ...]
 *
 * An input is e.g. float32:2,4:x.bin (raw little-endian bytes; an empty
 * SHAPE is a 0-dim tensor). --dump writes output i to PREFIX.i.bin. --loops
 * repeats load/forward/free N times and prints memory every 10 rounds, to
 * show that a load leaves nothing behind. --threads runs forward from N
 * threads at once on the same model and checks every result is bitwise the
 * first one. Exit: 0 ok, 2 load failed, 3 forward failed (or differed),
 * 1 usage or setup error. */
#define _GNU_SOURCE
#include <inferd/backend.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dtype_names[DTYPE_COUNT] = {
    "float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"};
static const size_t dtype_sizes[DTYPE_COUNT] = {4, 8, 2, 8, 4, 2, 1, 1, 1};

static void print_memory(const char *when) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    printf("mem %-14s", when);
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6) || !strncmp(line, "RssAnon:", 8) ||
            !strncmp(line, "RssFile:", 8) || !strncmp(line, "VmHWM:", 6)) {
            line[strcspn(line, "\n")] = 0;
            char *colon = strchr(line, ':');
            *colon = 0;
            printf(" %s=%ld", line, strtol(colon + 1, NULL, 10) / 1024); /* MB */
        }
    }
    printf(" (MB)\n");
    if (f) fclose(f);
}

/* Parses DTYPE:SHAPE:FILE into t, reading FILE into a malloc'd buffer. */
static int parse_input(const char *spec, backend_tensor *t) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *shape = strchr(buf, ':'), *file = shape ? strchr(shape + 1, ':') : NULL;
    if (!file) return fprintf(stderr, "bad input spec %s\n", spec), -1;
    *shape++ = 0;
    *file++ = 0;
    memset(t, 0, sizeof *t);
    t->dtype = DTYPE_COUNT;
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (!strcmp(buf, dtype_names[d])) t->dtype = (dtype_t)d;
    if (t->dtype == DTYPE_COUNT) return fprintf(stderr, "unknown dtype %s\n", buf), -1;
    size_t numel = 1;
    for (char *p = shape; *p && t->ndim < BACKEND_MAX_DIMS; p += *p == ',') {
        t->shape[t->ndim] = strtoll(p, &p, 10);
        numel *= (size_t)t->shape[t->ndim++];
    }
    t->nbytes = numel * dtype_sizes[t->dtype];
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    FILE *f = fopen(file, "rb");
    size_t got = f ? fread(t->data, 1, t->nbytes, f) : 0;
    if (f) fclose(f);
    if (got != t->nbytes) return fprintf(stderr, "%s: need %zu bytes, read %zu\n", file, t->nbytes, got), -1;
    return 0;
}

static double element(const backend_tensor *t, size_t i) {
    const void *p = t->data;
    switch (t->dtype) {
    case DTYPE_FLOAT32: return ((const float *)p)[i];
    case DTYPE_FLOAT64: return ((const double *)p)[i];
    case DTYPE_INT64: return (double)((const int64_t *)p)[i];
    case DTYPE_INT32: return ((const int32_t *)p)[i];
    case DTYPE_INT16: return ((const int16_t *)p)[i];
    case DTYPE_INT8: return ((const int8_t *)p)[i];
    case DTYPE_UINT8:
    case DTYPE_BOOL: return ((const uint8_t *)p)[i];
    default: return 0; /* float16: shown as raw bytes via --dump */
    }
}

static void print_info(const backend_info *info) {
    printf("parameters %lld\nforward(", (long long)info->parameters);
    for (int i = 0; i < info->nargs; i++)
        printf("%s%s: %s", i ? ", " : "", info->args[i].name, info->args[i].type);
    printf(") -> %s (kind %d)\n", info->output_type, (int)info->output_kind);
    printf("weights_bytes %llu mapped_bytes %llu copied_bytes %llu unaligned_records %d mmap %d\n",
           (unsigned long long)info->weights_bytes, (unsigned long long)info->mapped_bytes,
           (unsigned long long)info->copied_bytes, info->unaligned_records, info->mmap);
}

static void print_outputs(const backend_tensor *out, int nout, const char *dump) {
    for (int i = 0; i < nout; i++) {
        const backend_tensor *t = &out[i];
        printf("out[%d] name=\"%s\" %s%s shape=[", i, t->name, dtype_names[t->dtype], t->is_scalar ? " scalar" : "");
        for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? "," : "", (long long)t->shape[d]);
        size_t n = t->nbytes / dtype_sizes[t->dtype];
        printf("] values:");
        for (size_t k = 0; k < n && k < 8; k++) printf(" %.9g", element(t, k));
        printf("%s\n", n > 8 ? " ..." : "");
        if (dump) {
            char path[1024];
            snprintf(path, sizeof path, "%s.%d.bin", dump, i);
            FILE *f = fopen(path, "wb");
            if (f) fwrite(t->data, 1, t->nbytes, f), fclose(f);
        }
    }
}

/* What each --threads worker needs: the model, inputs and the reference. */
typedef struct {
    const backend_api *api;
    backend_model *m;
    const backend_tensor *in, *ref;
    int nin, nref, failures;
} worker_job;

static void *forward_worker(void *arg) {
    worker_job *job = arg;
    char err[512];
    for (int k = 0; k < 20; k++) {
        backend_tensor *out = NULL;
        int nout = 0;
        if (job->api->forward(job->m, job->in, job->nin, &out, &nout, err, sizeof err)) {
            job->failures++;
            continue;
        }
        int same = nout == job->nref;
        for (int i = 0; same && i < nout; i++)
            same = out[i].nbytes == job->ref[i].nbytes && !memcmp(out[i].data, job->ref[i].data, out[i].nbytes);
        job->failures += !same;
        job->api->free_outputs(out, nout);
    }
    return NULL;
}

/* Runs forward from nthreads threads at once; returns the failure count. */
static int run_threads(const backend_api *api, backend_model *m, const backend_tensor *in, int nin,
                       const backend_tensor *ref, int nref, int nthreads) {
    pthread_t tid[64];
    worker_job jobs[64];
    int failures = 0;
    if (nthreads > 64) nthreads = 64;
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (worker_job){api, m, in, ref, nin, nref, 0};
        pthread_create(&tid[t], NULL, forward_worker, &jobs[t]);
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        failures += jobs[t].failures;
    }
    printf("threads %d x 20 forwards: %d failed or differed\n", nthreads, failures);
    return failures;
}

int main(int argc, char **argv) {
    const char *lib = "build/libinferd_torch.so", *dump = NULL;
    backend_load_opts opts = {1, 0};
    int loops = 1, threads = 0, argi = 1;
    for (; argi < argc && !strncmp(argv[argi], "--", 2); argi++) {
        if (!strcmp(argv[argi], "--no-mmap")) opts.use_mmap = 0;
        else if (!strcmp(argv[argi], "--lib") && argi + 1 < argc) lib = argv[++argi];
        else if (!strcmp(argv[argi], "--dump") && argi + 1 < argc) dump = argv[++argi];
        else if (!strcmp(argv[argi], "--loops") && argi + 1 < argc) loops = atoi(argv[++argi]);
        else if (!strcmp(argv[argi], "--threads") && argi + 1 < argc) threads = atoi(argv[++argi]);
        else return fprintf(stderr, "unknown option %s\n", argv[argi]), 1;
    }
    if (argi >= argc) return fprintf(stderr, "usage: backend_smoke [--lib SO] [--no-mmap] [--loops N] [--dump PREFIX] [--threads N] MODEL [DTYPE:SHAPE:FILE ...]\n"), 1;
    const char *model = argv[argi++];
    int nin = argc - argi;
    backend_tensor in[BACKEND_MAX_ARGS];
    if (nin > BACKEND_MAX_ARGS) return fprintf(stderr, "too many inputs\n"), 1;
    for (int i = 0; i < nin; i++)
        if (parse_input(argv[argi + i], &in[i])) return 1;

    print_memory("start");
    void *so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    backend_entry_fn entry = so ? (backend_entry_fn)dlsym(so, BACKEND_ENTRY_SYMBOL) : NULL;
    if (!entry) return fprintf(stderr, "cannot load %s: %s\n", lib, dlerror()), 1;
    const backend_api *api = entry();
    char err[512];
    printf("backend %s %s abi %d\n", api->name(), api->version(), api->abi_version);
    if (api->init(0, 1, 1, err, sizeof err)) return fprintf(stderr, "init: %s\n", err), 1;
    print_memory("after-dlopen");

    int rc = 0;
    for (int round = 1; round <= loops && !rc; round++) {
        backend_model *m = NULL;
        backend_tensor *out = NULL;
        int nout = 0, code = api->load(model, &opts, &m, err, sizeof err);
        if (code) {
            printf("load error %d: %s\n", code, err);
            rc = 2;
            break;
        }
        if (round == 1) {
            backend_info info;
            if (api->describe(m, &info, err, sizeof err) == 0) print_info(&info);
            print_memory("after-load");
        }
        code = api->forward(m, in, nin, &out, &nout, err, sizeof err);
        if (code) {
            printf("forward error %d: %s\n", code, err);
            rc = 3;
        } else if (round == 1) {
            print_outputs(out, nout, dump);
            print_memory("after-forward");
            if (threads > 0 && run_threads(api, m, in, nin, out, nout, threads)) rc = 3;
        }
        api->free_outputs(out, nout);
        api->free_model(m);
        if (loops > 1 && round % 10 == 0) {
            char when[32];
            snprintf(when, sizeof when, "round-%d", round);
            print_memory(when);
        }
    }
    for (int i = 0; i < nin; i++) free(in[i].data);
    return rc;
}
