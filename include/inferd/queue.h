/* queue.h -- a bounded job queue served by a pool of worker threads.
 *
 * Jobs are embedded in the caller's own structs (container-of style). A
 * full queue refuses a job at once (ERR_BUSY) instead of growing: memory
 * stays bounded under a burst. queue_stop() lets the workers finish the
 * job in hand, rejects the jobs still queued and joins the workers.
 * All functions are thread-safe. */
#ifndef INFERD_QUEUE_H
#define INFERD_QUEUE_H

typedef struct queue_job {
    void (*run)(struct queue_job *job);
    /* Dynamic batching: jobs with equal non-empty batch_key may be taken
     * together and given to run_batch (n >= 2) instead of run. */
    const char *batch_key;
    void (*run_batch)(struct queue_job **jobs, int n);
    /* Called instead of run when the queue stops first. */
    void (*reject)(struct queue_job *job, int code);
    struct queue_job *next;
    double enqueued; /* monotonic seconds */
} queue_job;

typedef struct queue queue;

queue *queue_create(const char *name, int workers, int capacity);

/* Take up to max_batch jobs of one key together, waiting up to timeout_us
 * for the batch to fill once its first job is in hand. max_batch 1 = off. */
void queue_set_batching(queue *q, int max_batch, int timeout_us);

/* 0, ERR_BUSY (full) or ERR_SHUTTING_DOWN. */
int queue_push(queue *q, queue_job *job);

/* What to tell a client whose job the queue refused (queue_push's
 * ERR_BUSY, or ERR_SHUTTING_DOWN from the push or from reject). A refusal
 * for ERR_BUSY is worth retrying: answer it with Retry-After: 1. */
const char *queue_refusal(int code);

/* Jobs waiting (not running). */
int queue_depth(queue *q);

/* Stop and join, waiting at most timeout_s for running jobs. Returns 0
 * when every worker ended, -1 when some are still running. */
int queue_stop(queue *q, double timeout_s);

#endif
