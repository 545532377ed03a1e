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
    pthread_t *workers;
    char name[32];
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker_main(void *arg) {
    queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stopping) pthread_cond_wait(&q->cond, &q->lock);
        if (q->stopping) break;
        queue_job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->depth--;
        pthread_mutex_unlock(&q->lock);
        j->run(j);
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
        pthread_cond_signal(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
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
    until.tv_sec += (time_t)timeout_s;
    int all = 0;
    for (int i = 0; i < q->nworkers; i++)
        if (pthread_timedjoin_np(q->workers[i], NULL, &until) != 0) all = -1;
    return all;
}
