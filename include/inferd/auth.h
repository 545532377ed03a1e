/* auth.h -- who may call which endpoint: ADMIN_TOKEN for the admin routes,
 * API_KEY for predictions, both as "Authorization: Bearer <secret>".
 *
 * The one place that decides 401 (no or malformed credentials) and 403
 * (wrong ones, or admin routes closed in production). Tokens are compared
 * in constant time and never logged or echoed. Thread-safe after init. */
#ifndef INFERD_AUTH_H
#define INFERD_AUTH_H

#include <stddef.h>

#include "inferd/config.h"
#include "inferd/http.h"

void auth_init(const config *cfg);

/* The http_guard: 0 to let the request through, else a reply is set. */
int auth_check(http_request *req, route_access access);

/* Constant-time equality of a (la bytes) and the NUL-terminated secret b:
 * the time depends only on the length of b. */
int auth_equal(const char *a, size_t la, const char *b);

#endif
