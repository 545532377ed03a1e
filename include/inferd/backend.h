/* backend.h -- the C ABI between the daemon and a model runtime.
 *
 * The daemon never links libtorch. The runtime lives in a shared object
 * (build/libinferd_torch.so, built from src/backend_torch.cpp) that exports
 * one symbol, inferd_backend_api(), returning a table of plain C functions.
 * backend_open() dlopens that object the first time a model is needed.
 *
 * Rules of the ABI: no C++ type and no exception crosses it; every failure is
 * a negative BACKEND_E* code plus a message written to the caller's buffer.
 * Tensors are plain structs; who allocates a buffer frees it (outputs of
 * forward are freed with free_outputs). forward() may be called from several
 * threads at once on the same model; load/free must not race with forward on
 * the same model (the model manager guarantees that with refcounts). */
#ifndef INFERD_BACKEND_H
#define INFERD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define BACKEND_ABI_VERSION 1
#define BACKEND_MAX_DIMS 32
#define BACKEND_MAX_ARGS 16
#define BACKEND_NAME_LEN 64

/* Return codes. The model manager maps them to HTTP statuses. */
#define BACKEND_OK 0
#define BACKEND_EINTERNAL -1   /* a runtime failure: 500 */
#define BACKEND_ENOTSCRIPT -2  /* the file is not a TorchScript archive: 422 */
#define BACKEND_EINPUT -3      /* the model rejected the inputs: 400 */
#define BACKEND_ENOENT -4      /* the file does not exist: 404 */
#define BACKEND_EUNSUPPORTED -5 /* an output kind we cannot return: 500 */

typedef enum {
    DTYPE_FLOAT32 = 0,
    DTYPE_FLOAT64,
    DTYPE_FLOAT16,
    DTYPE_INT64,
    DTYPE_INT32,
    DTYPE_INT16,
    DTYPE_INT8,
    DTYPE_UINT8,
    DTYPE_BOOL,
    DTYPE_COUNT
} dtype_t;

/* A dense, contiguous, row-major CPU tensor. For a 0-dim tensor ndim is 0
 * and data holds one element. is_scalar marks an output that was a plain
 * TorchScript number or bool (int -> INT64, float -> FLOAT64, bool -> BOOL),
 * which the daemon returns as a JSON scalar, not an array. name carries the
 * key of a dict output (empty otherwise). */
typedef struct {
    dtype_t dtype;
    int ndim;
    int64_t shape[BACKEND_MAX_DIMS];
    void *data;
    size_t nbytes;
    int is_scalar;
    char name[BACKEND_NAME_LEN];
} backend_tensor;

/* One argument of forward(), self excluded, as the TorchScript schema tells. */
typedef struct {
    char name[BACKEND_NAME_LEN];
    char type[BACKEND_NAME_LEN]; /* schema type text: "Tensor", "int", ... */
} backend_arg;

typedef enum {
    OUTPUT_TENSOR = 0, /* one tensor */
    OUTPUT_TUPLE,      /* tuple, flattened in order */
    OUTPUT_LIST,       /* list of tensors, flattened in order */
    OUTPUT_DICT,       /* dict str -> tensor, one output per key */
    OUTPUT_SCALAR,     /* int, float or bool */
    OUTPUT_UNKNOWN     /* not known from the schema (e.g. Any) */
} backend_output_kind;

typedef struct {
    int64_t parameters;             /* numel of parameters */
    int nargs;                      /* forward's arguments, self excluded */
    backend_arg args[BACKEND_MAX_ARGS];
    backend_output_kind output_kind;
    char output_type[BACKEND_NAME_LEN]; /* schema text of the return type */
    /* Weight storage accounting (all tensor records of the archive). */
    uint64_t weights_bytes;  /* bytes of all tensor records */
    uint64_t mapped_bytes;   /* bytes served from the file mapping */
    uint64_t copied_bytes;   /* bytes copied to the heap */
    int unaligned_records;   /* records kept as copies: misaligned/compressed */
    int mmap;                /* 1 when the load used the mapping */
} backend_info;

typedef struct {
    int use_mmap; /* map the archive and point storages into it */
    int warmup;   /* reserved for a warm-up forward at load time */
} backend_load_opts;

typedef struct backend_model backend_model;

typedef struct {
    int abi_version; /* BACKEND_ABI_VERSION */
    const char *(*name)(void);    /* "libtorch" */
    const char *(*version)(void); /* "1.13.1" */
    /* Set thread counts; call once before any other torch work. */
    int (*init)(int intra_threads, int inter_threads, int jit_profiling,
                char *err, size_t errlen);
    int (*load)(const char *path, const backend_load_opts *opts,
                backend_model **out, char *err, size_t errlen);
    int (*describe)(backend_model *m, backend_info *info, char *err,
                    size_t errlen);
    /* Run forward(in[0..nin-1]). On success *out is an array of *nout
     * tensors owned by the caller, freed with free_outputs. */
    int (*forward)(backend_model *m, const backend_tensor *in, int nin,
                   backend_tensor **out, int *nout, char *err, size_t errlen);
    void (*free_outputs)(backend_tensor *out, int nout);
    void (*free_model)(backend_model *m);
} backend_api;

/* The one symbol a backend shared object exports. */
typedef const backend_api *(*backend_entry_fn)(void);
#define BACKEND_ENTRY_SYMBOL "inferd_backend_api"

/* --- daemon side (src/backend.c) --- */

/* Load the backend shared object at path (once; later calls return the same
 * table). Returns NULL and fills err when it cannot be loaded. Thread-safe. */
const backend_api *backend_open(const char *path, char *err, size_t errlen);

/* The table if backend_open already succeeded, else NULL. Thread-safe. */
const backend_api *backend_get(void);

/* Size in bytes of one element of dtype. */
size_t backend_dtype_size(dtype_t dt);

#endif
