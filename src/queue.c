/* queue.c -- the bounded job queue and its worker threads. */
#include "inferd/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inferd/error.h"
#include "inferd/log.h"

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    queue_job *head, *tail;
    int depth, capacity, stopping, nworkers;
    int max_batch, batch_timeout_us;
    pthread_t *workers;
    char name[32];
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Unlink job (whose predecessor is prev, or NULL for the head). */
static void unlink_job(queue *q, queue_job *prev, queue_job *j) {
    if (prev)
        prev->next = j->next;
    else
        q->head = j->next;
    if (q->tail == j) q->tail = prev;
    q->depth--;
}

/* Move queued jobs with first's key into batch[], up to the limit. */
static int gather(queue *q, queue_job **batch, int n) {
    const char *key = batch[0]->batch_key;
    queue_job *prev = NULL, *j = q->head;
    while (j && n < q->max_batch) {
        queue_job *next = j->next;
        if (j->batch_key && !strcmp(j->batch_key, key)) {
            unlink_job(q, prev, j);
            batch[n++] = j;
        } else {
            prev = j;
        }
        j = next;
    }
    return n;
}

static void *worker_main(void *arg) {
    queue *q = arg;
    queue_job *batch[1024];
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stopping) pthread_cond_wait(&q->cond, &q->lock);
        if (q->stopping) break;
        queue_job *j = q->head;
        unlink_job(q, NULL, j);
        int n = 1;
        batch[0] = j;
        if (q->max_batch > 1 && j->batch_key && *j->batch_key) {
            n = gather(q, batch, n);
            /* Wait a little for the batch to fill; arrivals signal. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            long ns = until.tv_nsec + (long)q->batch_timeout_us * 1000;
            until.tv_sec += ns / 1000000000;
            until.tv_nsec = ns % 1000000000;
            while (n < q->max_batch && q->batch_timeout_us > 0 &&
                   !q->stopping &&
                   pthread_cond_timedwait(&q->cond, &q->lock, &until) == 0)
                n = gather(q, batch, n);
            n = gather(q, batch, n);
        }
        pthread_mutex_unlock(&q->lock);
        if (n == 1)
            j->run(j);
        else
            j->run_batch(batch, n);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

queue *queue_create(const char *name, int workers, int capacity) {
    queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->capacity = capacity;
    q->max_batch = 1;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->workers = calloc((size_t)workers, sizeof *q->workers);
    if (!q->workers) {
        free(q);
        return NULL;
    }
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&q->workers[i], NULL, worker_main, q)) break;
        q->nworkers++;
    }
    return q;
}

void queue_set_batching(queue *q, int max_batch, int timeout_us) {
    pthread_mutex_lock(&q->lock);
    q->max_batch = max_batch < 1 ? 1 : max_batch > 1024 ? 1024 : max_batch;
    q->batch_timeout_us = timeout_us;
    pthread_mutex_unlock(&q->lock);
}

int queue_push(queue *q, queue_job *job) {
    pthread_mutex_lock(&q->lock);
    int rc = 0;
    if (q->stopping)
        rc = ERR_SHUTTING_DOWN;
    else if (q->depth >= q->capacity)
        rc = ERR_BUSY;
    else {
        job->next = NULL;
        job->enqueued = now();
        if (q->tail)
            q->tail->next = job;
        else
            q->head = job;
        q->tail = job;
        q->depth++;
        /* Broadcast: a worker filling a batch waits on the same cond. */
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

const char *queue_refusal(int code) {
    return code == ERR_BUSY
               ? "the inference queue is full (QUEUE_CAPACITY); retry after "
                 "a second"
               : "the server is shutting down; retry on another instance";
}

int queue_depth(queue *q) {
    pthread_mutex_lock(&q->lock);
    int d = q->depth;
    pthread_mutex_unlock(&q->lock);
    return d;
}

int queue_stop(queue *q, double timeout_s) {
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    queue_job *rest = q->head;
    q->head = q->tail = NULL;
    q->depth = 0;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    while (rest) {
        queue_job *next = rest->next;
        rest->reject(rest, ERR_SHUTTING_DOWN);
        rest = next;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)((timeout_s - (long)timeout_s) * 1e9);
    until.tv_sec += (time_t)timeout_s + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    int all = 0;
    for (int i = 0; i < q->nworkers; i++)
        if (pthread_timedjoin_np(q->workers[i], NULL, &until) != 0) all = -1;
    return all;
}
