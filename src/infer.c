/* infer.c -- runs inference jobs on the workers: lazy model acquisition,
 * argument matching, forward, dynamic batching, reply hand-off. */
#include "inferd/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inferd/metrics.h"
#include "inferd/tensor.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

infer_job *infer_job_new(http_request *req, model_entry *e) {
    infer_job *j = calloc(1, sizeof *j);
    if (j) {
        j->req = req;
        j->entry = e;
        j->batch_size = 1;
    }
    return j;
}

static void free_outputs(infer_job *j) {
    if (!j->out) return;
    if (j->out_owned) {
        for (int i = 0; i < j->nout; i++) free(j->out[i].data);
        free(j->out);
    } else {
        j->api->free_outputs(j->out, j->nout);
    }
    j->out = NULL;
    j->nout = 0;
}

void infer_job_free(infer_job *j) {
    if (!j) return;
    for (int i = 0; i < j->n; i++) tensor_free(&j->in[i]);
    free_outputs(j);
    if (j->free_ctx) j->free_ctx(j->ctx);
    free(j);
}

/* Encode, free, resume: the end of every job. */
static void finish(infer_job *j) {
    http_request *req = j->req;
    if (j->rc == 0)
        metrics_observe_inference(j->queue_ms / 1000.0,
                                  j->inference_ms / 1000.0);
    j->reply(j);
    infer_job_free(j);
    http_resume(req);
}

/* Put the inputs in forward()'s argument order: by name when they were
 * named and every name matches, else by position. */
static int order_inputs(infer_job *j, const backend_info *info,
                        backend_tensor *ordered) {
    char expected[512] = "";
    size_t used = 0;
    for (int a = 0; a < info->nargs && used < sizeof expected; a++)
        used += (size_t)snprintf(expected + used, sizeof expected - used,
                                 "%s%s", a ? ", " : "", info->args[a].name);
    if (j->n != info->nargs && !(j->named && j->n > info->nargs))
        return error_set(j->err, sizeof j->err, ERR_BAD_REQUEST,
                         "the model's forward takes %d input%s (%s), got %d"
                         "%s",
                         info->nargs, info->nargs == 1 ? "" : "s", expected,
                         j->n,
                         info->nargs > 1 && !j->named
                             ? ": send \"inputs\" as an object keyed by them"
                             : "");
    if (!j->named) {
        memcpy(ordered, j->in, sizeof *ordered * (size_t)j->n);
        return j->n;
    }
    for (int a = 0; a < info->nargs; a++) {
        int k = 0;
        while (k < j->n && strcmp(j->in[k].name, info->args[a].name)) k++;
        if (k == j->n) {
            if (j->n == info->nargs && j->named == 2) {
                /* v2 inputs whose names are not forward's: by position. */
                memcpy(ordered, j->in, sizeof *ordered * (size_t)j->n);
                return j->n;
            }
            return error_set(j->err, sizeof j->err, ERR_BAD_REQUEST,
                             "missing input \"%s\"; the model expects %s",
                             info->args[a].name, expected);
        }
        ordered[a] = j->in[k];
    }
    for (int i = 0; i < j->n; i++) {
        int a = 0;
        while (a < info->nargs && strcmp(j->in[i].name, info->args[a].name))
            a++;
        if (a == info->nargs)
            return error_set(j->err, sizeof j->err, ERR_BAD_REQUEST,
                             "unknown input \"%s\"; the model expects %s",
                             j->in[i].name, expected);
    }
    return info->nargs;
}

/* forward() on ordered inputs; sets j->rc/err/out. */
static void forward(infer_job *j, model_handle *h, backend_tensor *in,
                    int nin) {
    double t0 = now();
    int rc = h->api->forward(h->bm, in, nin, &j->out, &j->nout, j->err,
                             sizeof j->err);
    j->inference_ms = (now() - t0) * 1000.0;
    j->api = h->api;
    j->kind = h->info->output_kind;
    if (rc != BACKEND_OK) {
        const char *what = rc == BACKEND_EINPUT
                               ? "the model rejected the input: "
                               : "forward failed: ";
        size_t wl = strlen(what), ml = strnlen(j->err, sizeof j->err - 1);
        if (ml > sizeof j->err - 1 - wl) ml = sizeof j->err - 1 - wl;
        memmove(j->err + wl, j->err, ml);
        memcpy(j->err, what, wl);
        j->err[wl + ml] = '\0';
        j->rc = rc == BACKEND_EINPUT ? ERR_BAD_REQUEST : ERR_INTERNAL;
    }
}

static void run_one(queue_job *qj) {
    infer_job *j = (infer_job *)qj;
    j->queue_ms = (now() - qj->enqueued) * 1000.0;
    model_handle h;
    j->rc = model_acquire(j->entry, &h, &j->merr);
    if (j->rc) {
        snprintf(j->err, sizeof j->err, "%s", j->merr.msg);
        finish(j);
        return;
    }
    backend_tensor ordered[BACKEND_MAX_ARGS];
    int nin = order_inputs(j, h.info, ordered);
    if (nin < 0)
        j->rc = nin;
    else
        forward(j, &h, ordered, nin);
    model_release(&h);
    metrics_observe_batch(1);
    finish(j);
}

static void reject(queue_job *qj, int code) {
    infer_job *j = (infer_job *)qj;
    j->rc = code;
    snprintf(j->err, sizeof j->err, "%s", queue_refusal(code));
    if (code == ERR_BUSY) http_reply_header(j->req, "Retry-After", "1");
    finish(j);
}

/* ------------------------------------------------------------- batching */

/* Rows of every output must be the batch's rows for a split to be right. */
static int splittable(const backend_tensor *out, int nout, int64_t rows) {
    for (int i = 0; i < nout; i++)
        if (out[i].is_scalar || out[i].ndim < 1 || out[i].shape[0] != rows)
            return 0;
    return nout > 0;
}

/* Give job j rows [r0, r0 + rows) of each batched output. */
static int split_into(infer_job *j, const backend_tensor *out, int nout,
                      int64_t r0, int64_t rows, int64_t total) {
    j->out = calloc((size_t)nout, sizeof *j->out);
    if (!j->out) return -1;
    j->out_owned = 1;
    j->nout = nout;
    for (int i = 0; i < nout; i++) {
        backend_tensor *t = &j->out[i];
        *t = out[i];
        size_t row_bytes = out[i].nbytes / (size_t)total;
        t->shape[0] = rows;
        t->nbytes = row_bytes * (size_t)rows;
        t->data = malloc(t->nbytes ? t->nbytes : 1);
        if (!t->data) return -1;
        memcpy(t->data, (char *)out[i].data + row_bytes * (size_t)r0,
               t->nbytes);
    }
    return 0;
}

/* Jobs with one key share dtype, rank, every dim but the first, and input
 * names: concatenate along dim 0, one forward, split the rows back. */
static void run_batch(queue_job **qjobs, int n) {
    infer_job **jobs = (infer_job **)qjobs;
    double t = now();
    for (int i = 0; i < n; i++) jobs[i]->queue_ms = (t - qjobs[i]->enqueued) * 1000.0;
    infer_job *first = jobs[0];
    model_handle h;
    model_err merr = {0};
    int rc = model_acquire(first->entry, &h, &merr);
    if (rc) {
        /* Every job shares the failed load's answer; merr is a local copy
         * because finish() frees each job, the first included. */
        for (int i = 0; i < n; i++) {
            jobs[i]->rc = rc;
            jobs[i]->merr = merr;
            snprintf(jobs[i]->err, sizeof jobs[i]->err, "%s", merr.msg);
            finish(jobs[i]);
        }
        return;
    }
    backend_tensor ordered[BACKEND_MAX_ARGS], cat[BACKEND_MAX_ARGS];
    int nin = order_inputs(first, h.info, ordered);
    int ok = nin > 0 && h.info->output_kind != OUTPUT_SCALAR;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += jobs[i]->in[0].shape[0];
    memset(cat, 0, sizeof cat);
    for (int a = 0; ok && a < nin; a++) {
        /* Argument a of each job: the same slot as in first's order. */
        int slot = (int)(&ordered[a] - ordered);
        for (int k = 0; k < first->n; k++)
            if (ordered[a].data == first->in[k].data) slot = k;
        cat[a] = first->in[slot];
        cat[a].shape[0] = total;
        cat[a].nbytes = 0;
        for (int i = 0; i < n; i++) cat[a].nbytes += jobs[i]->in[slot].nbytes;
        cat[a].data = malloc(cat[a].nbytes ? cat[a].nbytes : 1);
        if (!cat[a].data) {
            ok = 0;
            break;
        }
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            memcpy((char *)cat[a].data + off, jobs[i]->in[slot].data,
                   jobs[i]->in[slot].nbytes);
            off += jobs[i]->in[slot].nbytes;
        }
    }
    infer_job tmp;
    memset(&tmp, 0, sizeof tmp);
    if (ok) {
        forward(&tmp, &h, cat, nin);
        ok = tmp.rc == 0 && splittable(tmp.out, tmp.nout, total);
        if (ok) metrics_observe_batch(n);
    }
    int64_t r0 = 0;
    for (int i = 0; ok && i < n; i++) {
        int64_t rows = jobs[i]->in[0].shape[0];
        if (split_into(jobs[i], tmp.out, tmp.nout, r0, rows, total)) ok = 0;
        jobs[i]->inference_ms = tmp.inference_ms;
        jobs[i]->kind = tmp.kind;
        jobs[i]->api = h.api;
        jobs[i]->batch_size = n;
        r0 += rows;
    }
    if (tmp.out) h.api->free_outputs(tmp.out, tmp.nout);
    for (int a = 0; a < nin; a++) free(cat[a].data);
    model_release(&h);
    for (int i = 0; i < n; i++) {
        if (!ok) {
            /* Not batchable after all (or an error): each alone gets
             * exactly the answer it would have had. */
            free_outputs(jobs[i]);
            jobs[i]->batch_size = 1;
            run_one(qjobs[i]);
        } else {
            finish(jobs[i]);
        }
    }
}

/* "dtype:rank:d1xd2..|" per input, names included when named. */
static void make_key(infer_job *j) {
    size_t used = 0;
    j->key[0] = '\0';
    for (int i = 0; i < j->n; i++) {
        const backend_tensor *t = &j->in[i];
        if (t->ndim < 1 || t->shape[0] < 1) {
            j->key[0] = '\0';
            return;
        }
        used += (size_t)snprintf(j->key + used, sizeof j->key - used,
                                 "%s:%d:%d", j->named ? t->name : "",
                                 (int)t->dtype, t->ndim);
        for (int d = 1; d < t->ndim && used < sizeof j->key; d++)
            used += (size_t)snprintf(j->key + used, sizeof j->key - used,
                                     "x%lld", (long long)t->shape[d]);
        if (used < sizeof j->key)
            used += (size_t)snprintf(j->key + used, sizeof j->key - used, "|");
        /* All inputs must share one first dim to be rows of one batch. */
        if (t->shape[0] != j->in[0].shape[0]) {
            j->key[0] = '\0';
            return;
        }
    }
    if (used >= sizeof j->key) j->key[0] = '\0';
}

void infer_configure(queue *q, int max_batch, int timeout_us) {
    queue_set_batching(q, max_batch, timeout_us);
}

void infer_submit(infer_job *j, queue *q) {
    j->qjob.run = run_one;
    j->qjob.reject = reject;
    j->qjob.run_batch = run_batch;
    make_key(j);
    j->qjob.batch_key = j->key[0] ? j->key : NULL;
    http_suspend(j->req);
    int rc = queue_push(q, &j->qjob);
    if (rc) reject(&j->qjob, rc);
}
