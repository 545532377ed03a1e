/* infer.h -- one inference request from decoded tensors to outputs: queued
 * on the inference workers, run on the model (loading it lazily), batched
 * with compatible requests when MAX_BATCH_SIZE > 1, and handed back to the
 * protocol that decoded it (/predict or /v2) to encode the reply.
 *
 * The post-and-wait for the model is written once, here. A job belongs to
 * this module from infer_submit() on; it is freed after its reply. */
#ifndef INFERD_INFER_H
#define INFERD_INFER_H

#include "inferd/backend.h"
#include "inferd/error.h"
#include "inferd/http.h"
#include "inferd/model.h"
#include "inferd/queue.h"

typedef struct infer_job infer_job;

struct infer_job {
    queue_job qjob; /* first member: the queue hands it back */
    http_request *req;
    model_entry *entry;

    /* Inputs, decoded by the protocol handler. named: match them to
     * forward()'s arguments by name (else by position). */
    int n;
    int named;
    backend_tensor in[BACKEND_MAX_ARGS];
    char key[256]; /* batch key, built by infer_submit */

    /* Results, set before reply() runs. rc is 0 or an ERR_* code. */
    int rc;
    char err[ERR_LEN];
    model_err merr;
    backend_tensor *out;
    int nout;
    backend_output_kind kind;
    double queue_ms, inference_ms;
    int batch_size;

    /* The protocol's encoder: sets req's reply from the results. Runs on
     * the worker. */
    void (*reply)(infer_job *j);
    void *ctx;                /* the protocol's own data */
    void (*free_ctx)(void *); /* may be NULL */

    /* Private. */
    const backend_api *api;
    int out_owned; /* out was split from a batch: ours to free */
};

/* A zeroed job, or NULL. */
infer_job *infer_job_new(http_request *req, model_entry *e);

/* Free a job that was never submitted. */
void infer_job_free(infer_job *j);

/* Suspend req and queue j; on a full queue (503 + Retry-After) or during
 * shutdown, reply at once. */
void infer_submit(infer_job *j, queue *q);

/* Set up batching on q from the configuration. */
void infer_configure(queue *q, int max_batch, int timeout_us);

#endif
