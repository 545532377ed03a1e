/* auth.c -- bearer-token checks for the admin and prediction routes. */
#include "inferd/auth.h"

#include <string.h>
#include <strings.h>

static const config *cfg;

void auth_init(const config *c) { cfg = c; }

int auth_equal(const char *a, size_t la, const char *b) {
    size_t lb = strlen(b);
    /* Walk the secret's length whatever a is, so that timing tells
     * nothing about how much of it matched. */
    volatile unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

/* 0 when the Bearer token equals secret, else a reply is set. */
static int check_bearer(http_request *req, const char *secret,
                        const char *what) {
    /* "Bearer" 1*SP token (RFC 6750); trailing blanks are not part of a
     * header value (RFC 7230), and libmicrohttpd leaves them in. */
    const char *h = http_header(req, "Authorization");
    const char *tok = NULL;
    size_t len = 0;
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        tok = h + 7;
        while (*tok == ' ') tok++;
        len = strlen(tok);
        while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) len--;
    }
    if (!len) {
        http_reply_error(req, 401,
                         "this endpoint needs \"Authorization: Bearer "
                         "<%s>\"",
                         what);
        http_reply_header(req, "WWW-Authenticate", "Bearer");
        return 1;
    }
    if (!auth_equal(tok, len, secret)) {
        http_reply_error(req, 403, "the %s is wrong", what);
        return 1;
    }
    return 0;
}

int auth_check(http_request *req, route_access access) {
    switch (access) {
    case ACCESS_OPEN: return 0;
    case ACCESS_API:
        if (!*cfg->api_key) return 0;
        return check_bearer(req, cfg->api_key, "API_KEY");
    case ACCESS_ADMIN:
        if (*cfg->admin_token)
            return check_bearer(req, cfg->admin_token, "ADMIN_TOKEN");
        if (cfg->environment == ENV_DEVELOPMENT) return 0;
        http_reply_error(req, 403,
                         "admin endpoints are disabled in production: set "
                         "ADMIN_TOKEN and send \"Authorization: Bearer "
                         "<ADMIN_TOKEN>\" (or run with "
                         "ENVIRONMENT=development)");
        return 1;
    }
    return 0;
}
