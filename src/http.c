/* http.c -- the libmicrohttpd daemon: collects bodies up to a cap, routes
 * requests, queues JSON replies, and suspends requests whose answer comes
 * from another thread. The only file that includes <microhttpd.h>. */
#include "inferd/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "inferd/error.h"
#include "inferd/log.h"

static struct MHD_Daemon *daemon_;
static const route *routes;
static size_t nroutes;
static size_t max_body;
static atomic_int in_flight;
static atomic_int draining; /* after http_quiesce: close after each reply */
static http_observer observer;
static http_guard guard;

void http_set_guard(http_guard fn) { guard = fn; }

/* Per-request state beyond the public part. */
typedef struct {
    http_request pub;
    size_t cap;       /* bytes allocated for body */
    int too_large;    /* body grew past max_body: answer 413 at the end */
    int dispatched;   /* the handler ran */
    int early;        /* a reply was queued before the body was read */
} request;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void http_set_observer(http_observer fn) { observer = fn; }

const char *http_header(http_request *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static void set_reply(http_request *req, int status, const char *ctype,
                      char *data, size_t len) {
    free(req->reply);
    req->status = status;
    req->content_type = ctype;
    req->reply = data;
    req->reply_len = len;
    req->replied = 1;
}

int http_content_is_json(const char *ctype) {
    static const char *ok[] = {"application/json", "text/plain",
                               "application/x-www-form-urlencoded"};
    if (!ctype || !*ctype) return 1;
    size_t len = strcspn(ctype, ";");
    while (len && ctype[len - 1] == ' ') len--;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (len == strlen(ok[i]) && !strncasecmp(ctype, ok[i], len)) return 1;
    return len > 5 && !strncasecmp(ctype + len - 5, "+json", 5);
}

void http_reply_raw(http_request *req, int status, const char *content_type,
                    char *data, size_t len) {
    set_reply(req, status, content_type, data, len);
}

void http_reply_json(http_request *req, int status, cJSON *body) {
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) {
        static const char oom[] = "{\"error\": \"out of memory\"}";
        text = strdup(oom);
        status = 500;
    }
    set_reply(req, status, "application/json", text, text ? strlen(text) : 0);
}

void http_reply_error(http_request *req, int status, const char *fmt, ...) {
    char msg[ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    error_clean_text(msg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    http_reply_json(req, status, o);
}

void http_reply_header(http_request *req, const char *name,
                       const char *value) {
    if (req->nheaders == HTTP_MAX_HEADERS) return;
    snprintf(req->headers[req->nheaders][0], 128, "%s", name);
    snprintf(req->headers[req->nheaders][1], 128, "%s", value);
    req->nheaders++;
}

void http_suspend(http_request *req) {
    req->suspended = 1;
    MHD_suspend_connection(req->conn);
}

void http_resume(http_request *req) { MHD_resume_connection(req->conn); }

static enum MHD_Result send_reply(struct MHD_Connection *conn,
                                  http_request *req) {
    if (!req->reply) http_reply_error(req, 500, "handler set no reply");
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        req->reply_len, req->reply, MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    req->reply = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            req->content_type);
    for (int i = 0; i < req->nheaders; i++)
        MHD_add_response_header(resp, req->headers[i][0], req->headers[i][1]);
    /* While draining, keep-alive clients must not keep the server busy:
     * each connection ends with its current request. */
    if (atomic_load(&draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void dispatch(request *r) {
    http_request *req = &r->pub;
    const route *found = NULL;
    char allow[128];
    int m = route_match(routes, nroutes, req->method, req->path, &found,
                        &req->params, allow, sizeof allow);
    req->route_index = found ? (int)(found - routes) : -1;
    if (m == ROUTE_NOT_FOUND) {
        http_reply_error(req, 404,
                         "no endpoint %s %s; see the README for the API",
                         req->method, req->path);
    } else if (m == ROUTE_BAD_METHOD) {
        http_reply_error(req, 405, "%s does not accept %s; use %s", req->path,
                         req->method, allow);
        http_reply_header(req, "Allow", allow);
    } else if (r->too_large) {
        http_reply_error(req, 413,
                         "request body is larger than MAX_REQUEST_MB (%zu "
                         "MB); send a smaller body or raise MAX_REQUEST_MB",
                         max_body >> 20);
    } else if (!guard || !guard(req, found->access)) {
        found->handler(req);
    }
}

static int append_body(request *r, const char *data, size_t n) {
    http_request *req = &r->pub;
    if (r->too_large || req->body_len + n > max_body) {
        r->too_large = 1;
        free(req->body);
        req->body = NULL;
        req->body_len = 0;
        return 0;
    }
    if (req->body_len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < req->body_len + n + 1) cap *= 2;
        char *nb = realloc(req->body, cap);
        if (!nb) return -1;
        req->body = nb;
        r->cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return 0;
}

/* Count the framing headers of a request. */
typedef struct {
    int content_length, transfer_encoding;
    const char *cl_first;
    int cl_conflict;
    const char *te;
} framing;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value) {
    (void)kind;
    framing *f = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->content_length++ && strcmp(f->cl_first, value))
            f->cl_conflict = 1;
        else
            f->cl_first = value;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->transfer_encoding++;
        f->te = value;
    }
    return MHD_YES;
}

/* A request whose body length has two readings (Content-Length with
 * Transfer-Encoding, two different Content-Lengths) is how requests are
 * smuggled past proxies: refuse it, and any coding but plain chunked,
 * before reading a byte of body. Returns 0 or the status to answer. */
static int check_framing(struct MHD_Connection *conn, const char *version,
                         const char **why) {
    if (!version || (strcmp(version, MHD_HTTP_VERSION_1_1) &&
                     strcmp(version, MHD_HTTP_VERSION_1_0))) {
        *why = "malformed request line: expected METHOD /path HTTP/1.1";
        return 400;
    }
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.transfer_encoding && f.content_length) {
        *why = "Content-Length and Transfer-Encoding together: send one";
        return 400;
    }
    if (f.cl_conflict) {
        *why = "conflicting Content-Length headers: send one";
        return 400;
    }
    if (f.transfer_encoding > 1 ||
        (f.transfer_encoding && strcasecmp(f.te, "chunked"))) {
        *why = "only Transfer-Encoding: chunked is supported";
        return 501;
    }
    return 0;
}

/* Percent-decoding as libmicrohttpd does it, except %00: a decoded NUL
 * would cut the path short ("/health%00.json" served as "/health"), so it
 * stays as the three characters and matches no route. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *uri) {
    (void)cls;
    (void)conn;
    char *r = uri, *w = uri;
    while (*r) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) &&
            isxdigit((unsigned char)r[2]) && !(r[1] == '0' && r[2] == '0')) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - uri);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **state) {
    (void)cls;
    request *r = *state;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *state = r;
        atomic_fetch_add(&in_flight, 1);
        r->pub.method = method;
        r->pub.path = url;
        r->pub.conn = conn;
        r->pub.start = now();
        const char *why = NULL;
        int bad = check_framing(conn, version, &why);
        if (bad) {
            r->early = 1;
            http_reply_error(&r->pub, bad, "%s", why);
            http_reply_header(&r->pub, MHD_HTTP_HEADER_CONNECTION, "close");
            return send_reply(conn, &r->pub);
        }
        /* Refuse an announced oversized body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > max_body) {
            r->too_large = 1;
            r->early = 1;
            dispatch(r);
            return send_reply(conn, &r->pub);
        }
        return MHD_YES;
    }
    if (r->early) {
        *data_size = 0;
        return MHD_YES;
    }
    if (*data_size) {
        if (append_body(r, data, *data_size)) return MHD_NO;
        *data_size = 0;
        return MHD_YES;
    }
    if (!r->dispatched) {
        r->dispatched = 1;
        if (!r->pub.body) append_body(r, "", 0);
        dispatch(r);
        if (r->pub.suspended) return MHD_YES;
    }
    return send_reply(conn, &r->pub);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    request *r = *state;
    if (!r) return;
    if (observer) observer(&r->pub, now() - r->pub.start);
    atomic_fetch_sub(&in_flight, 1);
    free(r->pub.body);
    free(r->pub.reply);
    free(r);
    *state = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_event(LOG_DEBUG, "libmicrohttpd", "detail", LOG_STR(msg), NULL);
}

int http_start(const http_options *opt, const route *table, size_t n,
               char *err, size_t errlen) {
    routes = table;
    nroutes = n;
    max_body = opt->max_body;
    struct sockaddr_in sin4;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    memset(&sin4, 0, sizeof sin4);
    memset(&sin6, 0, sizeof sin6);
    if (strchr(opt->host, ':')) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)opt->port);
        if (inet_pton(AF_INET6, opt->host, &sin6.sin6_addr) != 1)
            return error_set(err, errlen, ERR_INTERNAL,
                             "invalid HOST '%s': expected an IP address",
                             opt->host);
        sa = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        sin4.sin_family = AF_INET;
        sin4.sin_port = htons((uint16_t)opt->port);
        if (inet_pton(AF_INET, opt->host, &sin4.sin_addr) != 1)
            return error_set(err, errlen, ERR_INTERNAL,
                             "invalid HOST '%s': expected an IP address",
                             opt->host);
        sa = (struct sockaddr *)&sin4;
    }
    daemon_ = MHD_start_daemon(
        flags, (uint16_t)opt->port, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)opt->connection_timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)opt->max_connections, MHD_OPTION_UNESCAPE_CALLBACK,
        unescape, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_END);
    if (!daemon_)
        return error_set(err, errlen, ERR_INTERNAL,
                         "cannot listen on %s:%d (is the port in use?)",
                         opt->host, opt->port);
    return 0;
}

int http_port(void) {
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void http_quiesce(void) {
    atomic_store(&draining, 1);
    MHD_socket s = MHD_quiesce_daemon(daemon_);
    if (s != MHD_INVALID_SOCKET) close(s);
}

int http_in_flight(void) { return atomic_load(&in_flight); }

void http_stop(void) {
    if (daemon_) MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
