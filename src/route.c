/* route.c -- matches a request's method and path against the route table. */
#include "inferd/route.h"

#include <stdio.h>
#include <string.h>

/* Match one pattern against a path, capturing {name} segments. */
static int match_pattern(const char *pat, const char *path,
                         route_params *params) {
    params->n = 0;
    while (*pat && *path) {
        if (*pat != '/' || *path != '/') return 0;
        pat++, path++;
        size_t plen = strcspn(pat, "/");
        size_t slen = strcspn(path, "/");
        if (plen > 2 && pat[0] == '{' && pat[plen - 1] == '}') {
            if (slen == 0 || slen >= ROUTE_PARAM_LEN ||
                params->n == ROUTE_MAX_PARAMS)
                return 0;
            int i = params->n++;
            snprintf(params->p[i].name, sizeof params->p[i].name, "%.*s",
                     (int)(plen - 2), pat + 1);
            memcpy(params->p[i].value, path, slen);
            params->p[i].value[slen] = '\0';
        } else if (plen != slen || strncmp(pat, path, plen)) {
            return 0;
        }
        pat += plen, path += slen;
    }
    return !*pat && !*path;
}

int route_match(const route *table, size_t n, const char *method,
                const char *path, const route **found, route_params *params,
                char *allow, size_t allowlen) {
    int path_seen = 0;
    size_t used = 0;
    if (allow && allowlen) allow[0] = '\0';
    route_params scratch;
    for (size_t i = 0; i < n; i++) {
        if (!match_pattern(table[i].pattern, path, &scratch)) continue;
        if (!strcmp(table[i].method, method)) {
            *found = &table[i];
            *params = scratch;
            return ROUTE_OK;
        }
        path_seen = 1;
        if (allow && used < allowlen && !strstr(allow, table[i].method))
            used += (size_t)snprintf(allow + used, allowlen - used, "%s%s",
                                     used ? ", " : "", table[i].method);
    }
    return path_seen ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

const char *route_param(const route_params *params, const char *name) {
    for (int i = 0; i < params->n; i++)
        if (!strcmp(params->p[i].name, name)) return params->p[i].value;
    return NULL;
}
