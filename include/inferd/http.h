/* http.h -- the HTTP server: libmicrohttpd, body collection with a size cap,
 * routing, JSON replies and errors, suspended requests.
 *
 * A handler receives an http_request with the whole body collected. It
 * either sets the reply (http_reply_json / http_reply_error / ...) and
 * returns, or calls http_suspend() and hands the request to another thread,
 * which sets the reply and calls http_resume(). The request is freed by the
 * server after the reply is sent; nobody else frees it. */
#ifndef INFERD_HTTP_H
#define INFERD_HTTP_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd/route.h"

#define HTTP_MAX_HEADERS 6

typedef struct http_request {
    const char *method;
    const char *path;
    char *body; /* NUL-terminated, body_len bytes */
    size_t body_len;
    route_params params;
    int route_index; /* row of the route table, -1 when none matched */
    double start; /* monotonic seconds at arrival */

    /* The reply, set by the handler or by whoever resumes the request. */
    int status;
    char *reply; /* malloc'd, freed by the server */
    size_t reply_len;
    const char *content_type;
    int nheaders;
    char headers[HTTP_MAX_HEADERS][2][128];

    void *user;        /* for the handler's own use */
    void *conn;        /* struct MHD_Connection *, opaque outside http.c */
    int suspended;
    int replied;
} http_request;

typedef struct {
    const char *host;
    int port;
    size_t max_body;
    int connection_timeout;
    int max_connections;
} http_options;

/* Start the daemon on its own thread. Returns 0 or ERR_INTERNAL. */
int http_start(const http_options *opt, const route *table, size_t nroutes,
               char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int http_port(void);

/* Stop accepting connections; requests in progress go on. */
void http_quiesce(void);

/* Requests received and not yet answered. */
int http_in_flight(void);

/* Stop the daemon; call after http_quiesce and draining. */
void http_stop(void);

/* Value of a request header (case-insensitive), or NULL. */
const char *http_header(http_request *req, const char *name);

/* Whether a Content-Type (may be NULL) is read as JSON: none, JSON
 * (application/json, any +json type, parameters allowed), or what curl -d
 * sends by default (users try the API with it) and text/plain. */
int http_content_is_json(const char *ctype);

/* Reply with a JSON document; takes ownership of body. */
void http_reply_json(http_request *req, int status, cJSON *body);

/* Reply {"error": "<printf text>"}. */
void http_reply_error(http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reply with bytes already allocated with malloc (ownership passes). */
void http_reply_raw(http_request *req, int status, const char *content_type,
                    char *data, size_t len);

/* Add a reply header (copied). */
void http_reply_header(http_request *req, const char *name,
                       const char *value);

/* Defer the reply: the request stays open until http_resume(). Only from
 * within a handler. */
void http_suspend(http_request *req);

/* Send the reply set on a suspended request. Any thread. */
void http_resume(http_request *req);

/* Called before each handler; returns nonzero (with a reply set) to refuse
 * the request. */
typedef int (*http_guard)(http_request *req, route_access access);
void http_set_guard(http_guard fn);

/* Called after each reply is sent (for logs and metrics); may be NULL. */
typedef void (*http_observer)(const http_request *req, double seconds);
void http_set_observer(http_observer fn);

#endif
