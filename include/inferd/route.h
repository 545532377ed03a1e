/* route.h -- the route table: method + path pattern -> handler.
 *
 * A pattern is a path whose segments are literals or "{name}", which
 * matches one non-empty segment and is captured. route_match() tells a
 * path that matches no row (404) from one that matches rows of other
 * methods only (405, with the Allow list). Pure functions, thread-safe. */
#ifndef INFERD_ROUTE_H
#define INFERD_ROUTE_H

#include <stddef.h>

struct http_request;
typedef void (*route_handler)(struct http_request *req);

/* Who may call a route (decided by the auth module). */
typedef enum {
    ACCESS_OPEN = 0, /* health checks, metadata */
    ACCESS_API,      /* predictions: API_KEY when set */
    ACCESS_ADMIN     /* load/unload: ADMIN_TOKEN */
} route_access;

typedef struct {
    const char *method;
    const char *pattern;
    route_handler handler;
    route_access access;
} route;

#define ROUTE_MAX_PARAMS 4
#define ROUTE_PARAM_LEN 256

typedef struct {
    int n;
    struct {
        char name[32];
        char value[ROUTE_PARAM_LEN];
    } p[ROUTE_MAX_PARAMS];
} route_params;

enum { ROUTE_OK = 0, ROUTE_NOT_FOUND = -1, ROUTE_BAD_METHOD = -2 };

/* Find the row for method and path. On ROUTE_OK *found and params are set;
 * on ROUTE_BAD_METHOD allow holds "GET, POST"-style text. */
int route_match(const route *table, size_t n, const char *method,
                const char *path, const route **found, route_params *params,
                char *allow, size_t allowlen);

/* The captured value of {name}, or NULL. */
const char *route_param(const route_params *params, const char *name);

#endif
