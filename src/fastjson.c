/* fastjson.c -- decodes nested JSON number arrays directly into tensor
 * buffers; declines (for the cJSON path to handle) anything unusual. */
#include "inferd/fastjson.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end;
    dtype_t dt;
    size_t esize;
    char *data;
    size_t n, cap; /* elements written, elements allocated */
    int ndim;      /* known once the first leaf is reached */
    int64_t shape[BACKEND_MAX_DIMS];
    int64_t count[BACKEND_MAX_DIMS]; /* elements seen at each open level */
} parser;

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                     1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                     1e18, 1e19, 1e20, 1e21, 1e22};

static void skip_ws(parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

/* float32 from up to 19 digits (what Python writes for a float32 value:
 * 17) without strtod. The double computed here may be ~1 ulp off the
 * correctly rounded one, so its cast to float is the same as the exact
 * one's unless it lies next to a float rounding boundary (a midpoint
 * between two floats, exact in double): then decline, and strtod decides.
 * Sets *out to the float's value and returns 1, or returns 0. */
static int float_shortcut(uint64_t mant, int exp10, int neg, double *out) {
    double d = (double)mant;
    d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
    float f = (float)d;
    if (f == 0 || isinf(f)) return 0;
    double lo = ((double)nextafterf(f, 0) + (double)f) / 2;
    double hi = ((double)nextafterf(f, INFINITY) + (double)f) / 2;
    double margin = d * 1e-15; /* many ulps of double, far below a float's */
    if (d - margin <= lo || d + margin >= hi) return 0;
    *out = neg ? -(double)f : (double)f;
    return 1;
}

/* A JSON number as its correctly rounded double. Digits ≤ 19 and a decimal
 * exponent within ±22 of an exact mantissa ≤ 2^53 convert with one exact
 * multiply or divide (Clinger's fast path); anything else goes to strtod.
 * Returns 0, or -1 when the text is not a JSON number. */
static int parse_number(parser *ps, double *out) {
    const char *p = ps->p, *start = p;
    int neg = 0;
    if (p < ps->end && *p == '-') neg = 1, p++;
    if (p >= ps->end || *p < '0' || *p > '9') return -1;
    if (*p == '0' && p + 1 < ps->end && p[1] >= '0' && p[1] <= '9') return -1;
    uint64_t mant = 0;
    int digits = 0, exp10 = 0, truncated = 0;
    while (p < ps->end && *p >= '0' && *p <= '9') {
        if (digits < 19)
            mant = mant * 10 + (uint64_t)(*p - '0'), digits++;
        else
            truncated = 1;
        p++;
    }
    if (p < ps->end && *p == '.') {
        p++;
        if (p >= ps->end || *p < '0' || *p > '9') return -1;
        while (p < ps->end && *p >= '0' && *p <= '9') {
            if (digits < 19)
                mant = mant * 10 + (uint64_t)(*p - '0'), digits++, exp10--;
            else
                truncated = 1;
            p++;
        }
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0, e = 0;
        if (p < ps->end && (*p == '+' || *p == '-')) eneg = *p == '-', p++;
        if (p >= ps->end || *p < '0' || *p > '9') return -1;
        while (p < ps->end && *p >= '0' && *p <= '9') {
            if (e < 10000) e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -e : e;
    }
    ps->p = p;
    if (!truncated && mant <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        *out = neg ? -d : d;
        return 0;
    }
    if (!truncated && ps->dt == DTYPE_FLOAT32 && exp10 >= -22 && exp10 <= 22 &&
        float_shortcut(mant, exp10, neg, out))
        return 0;
    char buf[128];
    size_t len = (size_t)(p - start);
    if (len >= sizeof buf) return -1;
    memcpy(buf, start, len);
    buf[len] = '\0';
    *out = strtod(buf, NULL);
    return 0;
}

/* Store x as element n, with the checks of the cJSON path; -1 declines. */
static int store(parser *ps, double x) {
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 1024;
        char *nd = realloc(ps->data, cap * ps->esize);
        if (!nd) return -1;
        ps->data = nd;
        ps->cap = cap;
    }
    char *dst = ps->data + ps->n++ * ps->esize;
    switch (ps->dt) {
    case DTYPE_FLOAT32: {
        float f = (float)x;
        if (isinf(f)) return -1;
        memcpy(dst, &f, 4);
        return 0;
    }
    case DTYPE_FLOAT64: memcpy(dst, &x, 8); return 0;
    case DTYPE_INT64:
        if (x != floor(x) || x < -9223372036854775808.0 ||
            x >= 9223372036854775808.0)
            return -1;
        {
            int64_t v = (int64_t)x;
            memcpy(dst, &v, 8);
        }
        return 0;
    case DTYPE_INT32:
        if (x != floor(x) || x < -2147483648.0 || x > 2147483647.0) return -1;
        {
            int32_t v = (int32_t)x;
            memcpy(dst, &v, 4);
        }
        return 0;
    default: return -1; /* the rarer dtypes take the cJSON path */
    }
}

/* Parse the array at depth d (its '[' already consumed). */
static int parse_array(parser *ps, int d) {
    if (d >= BACKEND_MAX_DIMS) return -1;
    ps->count[d] = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        if (ps->ndim == 0) { /* an empty array fixes the rank here */
            ps->ndim = d + 1;
            ps->shape[d] = 0;
            return 0;
        }
        return d < ps->ndim && ps->shape[d] == 0 ? 0 : -1;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end) return -1;
        if (*ps->p == '[') {
            if (ps->ndim && d + 1 >= ps->ndim) return -1;
            ps->p++;
            if (parse_array(ps, d + 1)) return -1;
        } else {
            if (ps->ndim == 0) ps->ndim = d + 1;
            if (d + 1 != ps->ndim) return -1;
            double x;
            if (parse_number(ps, &x) || store(ps, x)) return -1;
        }
        ps->count[d]++;
        skip_ws(ps);
        if (ps->p >= ps->end) return -1;
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p != ']') return -1;
        ps->p++;
        break;
    }
    /* The first complete array at each depth fixes that dimension; the
     * first element of every level is complete before any other. */
    if (ps->shape[d] < 0) ps->shape[d] = ps->count[d];
    return ps->count[d] == ps->shape[d] ? 0 : -1;
}

const char *fastjson_skip_array(const char *p, const char *end) {
    int depth = 0;
    for (; p < end; p++) {
        if (*p == '[')
            depth++;
        else if (*p == ']' && --depth == 0)
            return p + 1;
        else if (*p == '"' || *p == '{')
            return NULL;
    }
    return NULL;
}

int fastjson_array(const char *text, size_t len, dtype_t dt,
                   backend_tensor *out, size_t *end) {
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.p = text;
    ps.end = text + len;
    ps.dt = dt;
    ps.esize = backend_dtype_size(dt);
    for (int i = 0; i < BACKEND_MAX_DIMS; i++) ps.shape[i] = -1;
    skip_ws(&ps);
    if (ps.p >= ps.end || *ps.p != '[') return FASTJSON_DECLINE;
    ps.p++;
    if (parse_array(&ps, 0)) {
        free(ps.data);
        return FASTJSON_DECLINE;
    }
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->ndim = ps.ndim;
    size_t numel = 1;
    for (int i = 0; i < ps.ndim; i++) {
        out->shape[i] = ps.shape[i];
        numel *= (size_t)ps.shape[i];
    }
    if (numel != ps.n) {
        free(ps.data);
        return FASTJSON_DECLINE;
    }
    out->data = ps.data ? ps.data : malloc(1);
    out->nbytes = numel * ps.esize;
    *end = (size_t)(ps.p - text);
    return 0;
}
