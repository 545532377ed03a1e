/* tensor.c -- decodes JSON nested arrays into tensor buffers and encodes
 * tensors back into JSON text. */
#include "inferd/tensor.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inferd/error.h"

static const struct {
    const char *name;
    dtype_t dt;
} dtype_names[] = {
    {"float32", DTYPE_FLOAT32}, {"float", DTYPE_FLOAT32},
    {"float64", DTYPE_FLOAT64}, {"double", DTYPE_FLOAT64},
    {"float16", DTYPE_FLOAT16}, {"half", DTYPE_FLOAT16},
    {"int64", DTYPE_INT64},     {"long", DTYPE_INT64},
    {"int32", DTYPE_INT32},     {"int", DTYPE_INT32},
    {"int16", DTYPE_INT16},     {"int8", DTYPE_INT8},
    {"uint8", DTYPE_UINT8},     {"bool", DTYPE_BOOL},
};

int tensor_dtype_parse(const char *name) {
    for (size_t i = 0; i < sizeof dtype_names / sizeof dtype_names[0]; i++)
        if (!strcasecmp(name, dtype_names[i].name)) return dtype_names[i].dt;
    return -1;
}

const char *tensor_dtype_name(dtype_t dt) {
    static const char *names[DTYPE_COUNT] = {"float32", "float64", "float16",
                                             "int64",   "int32",   "int16",
                                             "int8",    "uint8",   "bool"};
    return (unsigned)dt < DTYPE_COUNT ? names[dt] : "unknown";
}

size_t tensor_numel(const backend_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

int tensor_parse_shape(const char *text, backend_tensor *t, char *err,
                       size_t errlen) {
    t->ndim = 0;
    const char *p = text;
    while (*p == ' ')
        p++;
    if (!*p) return 0; /* a 0-dim scalar */
    for (;;) {
        char *end;
        errno = 0;
        long long d = strtoll(p, &end, 10);
        if (end == p || errno || d < 0 || d > (1LL << 40))
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "invalid shape \"%s\": expected comma-separated "
                             "sizes such as 1,3,224,224",
                             text);
        if (t->ndim == BACKEND_MAX_DIMS)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "shape \"%s\" has more than %d dimensions", text,
                             BACKEND_MAX_DIMS);
        t->shape[t->ndim++] = d;
        p = end;
        while (*p == ' ')
            p++;
        if (!*p) return 0;
        if (*p != ',')
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "invalid shape \"%s\": expected comma-separated "
                             "sizes such as 1,3,224,224",
                             text);
        p++;
    }
}

void tensor_free(backend_tensor *t) {
    free(t->data);
    t->data = NULL;
}

/* ---------------------------------------------------------------- half */

float tensor_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400))
                man <<= 1, exp--;
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t tensor_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) /* inf or nan */
        return sign | 0x7c00 | (man ? 0x200 : 0);
    if (exp >= 31) return sign | 0x7c00;
    if (exp <= 0) {
        if (exp < -10) return sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint16_t h = (uint16_t)(man >> shift);
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return sign | h;
    }
    uint16_t h = (uint16_t)(sign | (exp << 10) | (man >> 13));
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return h;
}

/* -------------------------------------------------------------- decode */

typedef struct {
    dtype_t dt;
    size_t esize;
    char *data;
    size_t next; /* index of the next element */
    char *err;
    size_t errlen;
    /* Where the walk is: where[idx[0]]...[idx[depth-1]]. The text is only
     * made for an error message: formatting it for every number was most
     * of the decoder's time. */
    const char *where;
    int depth;
    int64_t idx[BACKEND_MAX_DIMS];
    char path[BACKEND_MAX_DIMS * 24 + 128];
} decoder;

static const char *path_of(decoder *d) {
    size_t used = (size_t)snprintf(d->path, sizeof d->path, "%s", d->where);
    for (int i = 0; i < d->depth && used < sizeof d->path; i++)
        used += (size_t)snprintf(d->path + used, sizeof d->path - used,
                                 "[%lld]", (long long)d->idx[i]);
    return d->path;
}

/* Allocate out's buffer for its shape and set up a decoder filling it. */
static int decoder_start(decoder *d, backend_tensor *out, dtype_t dt,
                         const char *where, char *err, size_t errlen) {
    size_t esize = backend_dtype_size(dt);
    out->nbytes = tensor_numel(out) * esize;
    out->data = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->data)
        return error_set(err, errlen, ERR_INTERNAL, "out of memory");
    *d = (decoder){.dt = dt,
                   .esize = esize,
                   .data = out->data,
                   .err = err,
                   .errlen = errlen,
                   .where = where};
    return 0;
}

/* Store one JSON leaf as element d->next. */
static int put_leaf(decoder *d, const cJSON *v) {
    double x;
    if (cJSON_IsBool(v)) {
        x = cJSON_IsTrue(v) ? 1 : 0;
    } else if (cJSON_IsNumber(v)) {
        x = v->valuedouble;
    } else {
        return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                         "%s is %s, expected a number", path_of(d),
                         cJSON_IsNull(v)     ? "null"
                         : cJSON_IsString(v) ? "a string"
                         : cJSON_IsObject(v) ? "an object"
                                             : "not a number");
    }
    char *p = d->data + d->next * d->esize;
    d->next++;
    static const double lo[] = {
        0, 0, 0, -9223372036854775808.0, -2147483648.0, -32768, -128, 0, 0};
    static const double hi[] = {
        0, 0, 0, 9223372036854775807.0, 2147483647.0, 32767, 127, 255, 1};
    switch (d->dt) {
    case DTYPE_FLOAT32: {
        float f = (float)x;
        if (isinf(f))
            return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                             "%s = %g is out of range for float32", path_of(d),
                             x);
        memcpy(p, &f, 4);
        return 0;
    }
    case DTYPE_FLOAT64: memcpy(p, &x, 8); return 0;
    case DTYPE_FLOAT16: {
        if (fabs(x) > 65504.0)
            return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                             "%s = %g is out of range for float16", path_of(d),
                             x);
        uint16_t h = tensor_float_to_half((float)x);
        memcpy(p, &h, 2);
        return 0;
    }
    default: break;
    }
    if (x != floor(x) || x < lo[d->dt] || x > hi[d->dt] ||
        (d->dt == DTYPE_INT64 && x >= 9223372036854775808.0))
        return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                         "%s = %g is not %s for %s", path_of(d), x,
                         x != floor(x) ? "an integer" : "in range",
                         tensor_dtype_name(d->dt));
    switch (d->dt) {
    case DTYPE_INT64: {
        /* valuedouble loses precision above 2^53; cJSON also keeps
         * valueint, but only as int. Doubles are exact to 2^53. */
        int64_t i = (int64_t)x;
        memcpy(p, &i, 8);
        break;
    }
    case DTYPE_INT32: {
        int32_t i = (int32_t)x;
        memcpy(p, &i, 4);
        break;
    }
    case DTYPE_INT16: {
        int16_t i = (int16_t)x;
        memcpy(p, &i, 2);
        break;
    }
    case DTYPE_INT8: *(int8_t *)p = (int8_t)x; break;
    case DTYPE_UINT8: *(uint8_t *)p = (uint8_t)x; break;
    case DTYPE_BOOL: *(uint8_t *)p = (uint8_t)(x != 0); break;
    default: break;
    }
    return 0;
}

/* Walk v, which must have shape[depth..ndim). */
static int walk(decoder *d, const cJSON *v, const backend_tensor *t,
                int depth) {
    d->depth = depth;
    if (depth == t->ndim) {
        if (cJSON_IsArray(v))
            return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                             "%s is an array, expected a number (the array "
                             "is ragged: deeper here than at its first "
                             "element)",
                             path_of(d));
        return put_leaf(d, v);
    }
    if (!cJSON_IsArray(v))
        return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                         "%s is not an array, expected %lld elements (the "
                         "array is ragged)",
                         path_of(d), (long long)t->shape[depth]);
    int64_t n = cJSON_GetArraySize(v);
    if (n != t->shape[depth])
        return error_set(d->err, d->errlen, ERR_BAD_REQUEST,
                         "%s has %lld elements, expected %lld (the array is "
                         "ragged)",
                         path_of(d), (long long)n, (long long)t->shape[depth]);
    int64_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        d->idx[depth] = i;
        int rc = walk(d, c, t, depth + 1);
        if (rc) return rc;
        d->depth = depth;
    }
    return 0;
}

int tensor_from_json(const cJSON *value, dtype_t dt, const char *where,
                     backend_tensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    /* The shape is read down the first elements; walk() then checks that
     * every other element agrees. */
    const cJSON *v = value;
    while (cJSON_IsArray(v)) {
        if (out->ndim == BACKEND_MAX_DIMS)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "%s has more than %d dimensions", where,
                             BACKEND_MAX_DIMS);
        out->shape[out->ndim++] = cJSON_GetArraySize(v);
        v = v->child;
    }
    decoder d;
    if (decoder_start(&d, out, dt, where, err, errlen))
        return ERR_INTERNAL;
    int rc = walk(&d, value, out, 0);
    if (rc) tensor_free(out);
    return rc;
}

/* -------------------------------------------------------------- encode */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t n) {
    if (b->oom || b->len + n < b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->len + n)
        cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) {
        b->oom = 1;
        return;
    }
    b->buf = nb;
    b->cap = cap;
}

static void sb_putc(sbuf *b, char c) {
    sb_reserve(b, 1);
    if (!b->oom) b->buf[b->len++] = c;
}

static void sb_puts(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

/* The shortest %g text that reads back to the same float: the slow, sure
 * way, a search over precisions with snprintf and strtof. */
static int format_float_slow(char *out, size_t len, float f) {
    int n = 0;
    for (int prec = isnormal(f) ? 6 : 1; prec <= 9; prec++) {
        n = snprintf(out, len, "%.*g", prec, (double)f);
        if (strtof(out, NULL) == f) break;
    }
    return n;
}

static const double pow10_tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22};

/* Write digits (no trailing zeros, n of them) times 10^x, where x is the
 * exponent of the first digit, as a JSON number: plain from 1e-6 to 1e21,
 * else with an exponent (as JavaScript writes numbers). */
static int put_decimal(char *out, const char *digits, int n, int x, int neg) {
    char *o = out;
    if (neg) *o++ = '-';
    if (x >= -6 && x < 0) { /* 0.000ddd */
        *o++ = '0', *o++ = '.';
        for (int i = 0; i < -x - 1; i++) *o++ = '0';
        memcpy(o, digits, (size_t)n), o += n;
    } else if (x >= 0 && x < 21) { /* ddd.ddd or ddd000 */
        for (int i = 0; i < n || i <= x; i++) {
            if (i == x + 1) *o++ = '.';
            *o++ = i < n ? digits[i] : '0';
        }
    } else { /* d.ddde±x */
        *o++ = digits[0];
        if (n > 1) *o++ = '.', memcpy(o, digits + 1, (size_t)n - 1), o += n - 1;
        o += sprintf(o, "e%d", x);
    }
    *o = '\0';
    return (int)(o - out);
}

/* The shortest text that reads back to f, without snprintf/strtof in the
 * common case. For p = 1..9 digits, round f to p significant digits in
 * double and accept the candidate when its value lies strictly inside the
 * interval of reals that round to f (between the midpoints to its
 * neighbours), with a margin that covers the one rounding of computing it.
 * Then strtof must read it back as f. What the shortcut cannot decide
 * (very large or small exponents) goes to the slow search. */
static int format_float(char *out, size_t len, float f) {
    if (f == 0) return snprintf(out, len, signbit(f) ? "-0" : "0");
    double d = fabs((double)f);
    float af = fabsf(f);
    double lo = ((double)nextafterf(af, 0) + d) / 2; /* exact in double */
    double hi = ((double)nextafterf(af, INFINITY) + d) / 2;
    int e = (int)floor(log10(d));
    for (int p = 1; p <= 9; p++) {
        int k = e - p + 1; /* candidate = m * 10^k */
        if (k < -22 || k > 22 || e - k > 22) break;
        double scaled = k < 0 ? d * pow10_tab[-k] : d / pow10_tab[k];
        double m = nearbyint(scaled);
        if (m >= pow10_tab[p]) continue; /* rounded up to p+1 digits */
        if (m < pow10_tab[p - 1]) continue; /* e was one too high */
        double v = k < 0 ? m / pow10_tab[-k] : m * pow10_tab[k];
        double margin = v * 4e-16;
        if (v + margin <= lo || v - margin >= hi) continue; /* outside */
        if (v - margin <= lo || v + margin >= hi)
            break; /* on or near a midpoint: ties need strtof's rule */
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%.0f", m);
        while (n > 1 && digits[n - 1] == '0') n--;
        if (len < 40) break;
        return put_decimal(out, digits, n, e, f < 0);
    }
    return format_float_slow(out, len, f);
}

static int format_double(char *out, size_t len, double x) {
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, len, "%.*g", prec, x);
        if (strtod(out, NULL) == x) break;
    }
    return n;
}

static void put_elem(sbuf *b, const backend_tensor *t, size_t i) {
    char num[40];
    int n;
    const char *p = (const char *)t->data + i * backend_dtype_size(t->dtype);
    switch (t->dtype) {
    case DTYPE_FLOAT32:
    case DTYPE_FLOAT16: {
        float f;
        if (t->dtype == DTYPE_FLOAT16) {
            uint16_t h;
            memcpy(&h, p, 2);
            f = tensor_half_to_float(h);
        } else {
            memcpy(&f, p, 4);
        }
        if (!isfinite(f)) return sb_puts(b, "null", 4);
        n = format_float(num, sizeof num, f);
        break;
    }
    case DTYPE_FLOAT64: {
        double x;
        memcpy(&x, p, 8);
        if (!isfinite(x)) return sb_puts(b, "null", 4);
        n = format_double(num, sizeof num, x);
        break;
    }
    case DTYPE_INT64: {
        int64_t x;
        memcpy(&x, p, 8);
        n = snprintf(num, sizeof num, "%lld", (long long)x);
        break;
    }
    case DTYPE_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        n = snprintf(num, sizeof num, "%d", x);
        break;
    }
    case DTYPE_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        n = snprintf(num, sizeof num, "%d", x);
        break;
    }
    case DTYPE_INT8:
        n = snprintf(num, sizeof num, "%d", *(const int8_t *)p);
        break;
    case DTYPE_UINT8:
        n = snprintf(num, sizeof num, "%u", *(const uint8_t *)p);
        break;
    case DTYPE_BOOL:
        if (*p) return sb_puts(b, "true", 4);
        return sb_puts(b, "false", 5);
    default: n = snprintf(num, sizeof num, "null"); break;
    }
    sb_puts(b, num, (size_t)n);
}

static void encode(sbuf *b, const backend_tensor *t, int depth, size_t *i) {
    if (depth == t->ndim) {
        put_elem(b, t, (*i)++);
        return;
    }
    sb_putc(b, '[');
    for (int64_t k = 0; k < t->shape[depth]; k++) {
        if (k) sb_putc(b, ',');
        encode(b, t, depth + 1, i);
    }
    sb_putc(b, ']');
}

char *tensor_to_json_text(const backend_tensor *t) {
    sbuf b = {0};
    size_t i = 0;
    sb_reserve(&b, tensor_numel(t) * 8 + 16);
    encode(&b, t, 0, &i);
    sb_putc(&b, '\0');
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}

cJSON *tensor_shape_json(const backend_tensor *t) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < t->ndim; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[i]));
    return a;
}

/* ------------------------------------------------ Open Inference Protocol */

/* The v2 names, indexed by dtype_t. */
static const char *v2_names[DTYPE_COUNT] = {"FP32",  "FP64",  "FP16",
                                            "INT64", "INT32", "INT16",
                                            "INT8",  "UINT8", "BOOL"};

int tensor_dtype_parse_v2(const char *name) {
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (!strcasecmp(name, v2_names[d])) return d;
    return -1;
}

const char *tensor_dtype_name_v2(dtype_t dt) {
    return (unsigned)dt < DTYPE_COUNT ? v2_names[dt] : "UNKNOWN";
}

/* "[2,4]" for messages. */
static void shape_text(const int64_t *shape, int ndim, char *out, size_t len) {
    size_t used = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%lld",
                                 i ? "," : "", (long long)shape[i]);
    if (used < len) snprintf(out + used, len - used, "]");
}

/* numel of shape, or 0 with *ok = 0 when the buffer would not fit a size_t
 * (8 bytes per element at most). */
static size_t shape_numel(const int64_t *shape, int ndim, int *ok) {
    size_t n = 1;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 ||
            (shape[i] && n > SIZE_MAX / 8 / (size_t)shape[i])) {
            *ok = 0;
            return 0;
        }
        n *= (size_t)shape[i];
    }
    return n;
}

int tensor_shape_from_json(const cJSON *shape, const char *where,
                           backend_tensor *t, char *err, size_t errlen) {
    t->ndim = 0;
    if (!cJSON_IsArray(shape))
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "%s must be an array of sizes such as [1, 4]", where);
    int i = 0;
    for (const cJSON *c = shape->child; c; c = c->next, i++) {
        double x = cJSON_IsNumber(c) ? c->valuedouble : -1;
        /* 2^53: every size up to it is exact in the double cJSON keeps. */
        if (x < 0 || x != floor(x) || x > 9007199254740992.0)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "%s[%d] is not a size (a non-negative integer)",
                             where, i);
        if (i == BACKEND_MAX_DIMS)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "%s has more than %d dimensions", where,
                             BACKEND_MAX_DIMS);
        t->shape[i] = (int64_t)x;
    }
    t->ndim = i;
    return 0;
}

/* Leaves (non-array values) under v: bounded by the JSON text, so it is
 * safe to count before trusting any declared size. */
static size_t count_leaves(const cJSON *v) {
    if (!cJSON_IsArray(v)) return 1;
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next)
        n += count_leaves(c);
    return n;
}

#define SHAPE_TEXT_LEN (BACKEND_MAX_DIMS * 21 + 3)

/* What both shaped decoders do first: check rank and dtype, give out the
 * shape, and write the shape's text (for messages) and element count. */
static int shaped_start(backend_tensor *out, dtype_t dt, const int64_t *shape,
                        int ndim, const char *where, char *stext,
                        size_t *numel, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (ndim < 0 || ndim > BACKEND_MAX_DIMS || (unsigned)dt >= DTYPE_COUNT)
        return error_set(err, errlen, ERR_BAD_REQUEST, "%s: bad rank or dtype",
                         where);
    out->dtype = dt;
    out->ndim = ndim;
    if (ndim) memcpy(out->shape, shape, sizeof *shape * (size_t)ndim);
    shape_text(shape, ndim, stext, SHAPE_TEXT_LEN);
    int ok;
    *numel = shape_numel(shape, ndim, &ok);
    if (!ok)
        return error_set(err, errlen, ERR_BAD_REQUEST, "shape %s is too large",
                         stext);
    return 0;
}

int tensor_from_json_shaped(const cJSON *value, dtype_t dt,
                            const int64_t *shape, int ndim, const char *where,
                            backend_tensor *out, char *err, size_t errlen) {
    char stext[SHAPE_TEXT_LEN];
    size_t numel;
    int rc = shaped_start(out, dt, shape, ndim, where, stext, &numel, err,
                          errlen);
    if (rc) return rc;
    int nested =
        cJSON_IsArray(value) && value->child && cJSON_IsArray(value->child);
    size_t have = count_leaves(value);
    if (have != numel)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "%s has %zu element%s but shape %s needs %zu", where,
                         have, have == 1 ? "" : "s", stext, numel);
    if (nested) {
        /* Nested data must be nested as the shape: read its shape down the
         * first elements, compare, then walk() checks every element. */
        backend_tensor probe = {.ndim = 0};
        const cJSON *v = value;
        while (cJSON_IsArray(v) && probe.ndim < BACKEND_MAX_DIMS) {
            probe.shape[probe.ndim++] = cJSON_GetArraySize(v);
            v = v->child;
        }
        if (probe.ndim != ndim ||
            (ndim &&
             memcmp(probe.shape, shape, sizeof *shape * (size_t)ndim))) {
            char ptext[sizeof stext];
            shape_text(probe.shape, probe.ndim, ptext, sizeof ptext);
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "%s is nested as %s but the shape is %s: send "
                             "it nested as the shape, or flat",
                             where, ptext, stext);
        }
    } else if (!cJSON_IsArray(value) && ndim > 0 && numel != 1) {
        return error_set(err, errlen, ERR_BAD_REQUEST, "%s must be an array",
                         where);
    }
    decoder d;
    if (decoder_start(&d, out, dt, where, err, errlen))
        return ERR_INTERNAL;
    if (nested) {
        rc = walk(&d, value, out, 0);
    } else if (cJSON_IsArray(value)) {
        d.depth = 1;
        for (const cJSON *c = value->child; c && !rc; c = c->next) {
            rc = put_leaf(&d, c);
            d.idx[0]++;
        }
    } else {
        rc = put_leaf(&d, value);
    }
    if (rc) tensor_free(out);
    return rc;
}

int tensor_from_bytes(const void *data, size_t len, dtype_t dt,
                      const int64_t *shape, int ndim, const char *where,
                      backend_tensor *out, char *err, size_t errlen) {
    char stext[SHAPE_TEXT_LEN];
    size_t numel;
    int rc = shaped_start(out, dt, shape, ndim, where, stext, &numel, err,
                          errlen);
    if (rc) return rc;
    size_t want = numel * backend_dtype_size(dt);
    if (want != len)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "%s has %zu bytes but shape %s of %s needs %zu",
                         where, len, stext, tensor_dtype_name(dt), want);
    if (dt == DTYPE_BOOL)
        for (size_t i = 0; i < len; i++)
            if (((const uint8_t *)data)[i] > 1)
                return error_set(err, errlen, ERR_BAD_REQUEST,
                                 "%s: byte %zu is %u; a bool byte is 0 or 1",
                                 where, i, ((const uint8_t *)data)[i]);
    out->nbytes = len;
    out->data = malloc(len ? len : 1);
    if (!out->data)
        return error_set(err, errlen, ERR_INTERNAL, "out of memory");
    if (len) memcpy(out->data, data, len);
    return 0;
}
