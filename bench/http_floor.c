/* http_floor.c -- the HTTP floor: a libmicrohttpd server with inferd's
 * daemon flags (internal polling thread + epoll, suspend/resume allowed)
 * whose handler collects the POST body the way inferd's http.c does and
 * answers a fixed small JSON reply. Nothing else: no routing, no JSON, no
 * queue, no worker thread. What inferd adds on top of this is its own cost.
 *
 *   http_floor PORT        (runs until SIGINT/SIGTERM) */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char reply[] =
    "{\"outputs\":[[0.032042038,0.41447988,-0.0381725]],\"shape\":[1,3],"
    "\"dtype\":\"float32\",\"model\":\"floor\",\"inference_ms\":0.01}";

typedef struct {
    char *body;
    size_t len, cap;
} request;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **state) {
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    request *r = *state;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        *state = r;
        return MHD_YES;
    }
    if (*data_size) {
        /* Same growth policy as inferd: 4 KiB, doubling, NUL after. */
        if (r->len + *data_size + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + *data_size + 1) cap *= 2;
            char *nb = realloc(r->body, cap);
            if (!nb) return MHD_NO;
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, data, *data_size);
        r->len += *data_size;
        r->body[r->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    /* inferd copies its reply into a malloc'd buffer the response frees. */
    char *text = malloc(sizeof reply - 1);
    if (!text) return MHD_NO;
    memcpy(text, reply, sizeof reply - 1);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof reply - 1, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    request *r = *state;
    if (!r) return;
    free(r->body);
    free(r);
    *state = NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: http_floor PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    /* Block the signals before MHD starts its thread, so sigwait gets them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_LIMIT,
        1024u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "http_floor: cannot listen on port %d\n", port);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
