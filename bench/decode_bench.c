/* decode_bench.c -- speed of inferd's own JSON tensor codec, linked from
 * build/obj: the fast path /predict tries first (fastjson_array on the
 * "inputs" array, src/fastjson.c), the cJSON path decode_request() in
 * src/handlers_predict.c falls back to (cJSON_ParseWithLengthOpts,
 * tensor_from_json, cJSON_Delete), each step timed separately, and the
 * reply's encoding
 * (tensor_to_json_text, cJSON_CreateRaw + cJSON_PrintUnformatted as
 * http_reply_json does). Figures are MB/s of JSON text (1 MB = 10^6 bytes).
 *
 *   decode_bench [--shape 1,3,224,224] [--format repr|short] [--iters N]
 *                [--phase all|parse|decode]
 *
 * --format repr: numbers as Python's json.dumps(tensor.tolist()) writes a
 *   float32 tensor (the shortest text of the double, ~17 digits), what a
 *   client of the Python server sends; short: the shortest text that reads
 *   back to the float32 (what inferd itself writes, ~9 digits).
 * --phase fast|parse|decode: loop that phase only (for callgrind/perf).
 * Prints one JSON object on stdout. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inferd/fastjson.h"
#include "inferd/tensor.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void) { /* xorshift64*, (0, 1) */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return ((double)((rng * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void) {
    return (float)(sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()));
}

/* The shortest %g text that reads back to the double (repr) or to the
 * float32 (short). */
static void put_number(char **p, float f, int short_form) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (short_form ? strtof(buf, NULL) == f : strtod(buf, NULL) == (double)f)
            break;
    }
    size_t n = strlen(buf);
    memcpy(*p, buf, n);
    *p += n;
}

/* {"inputs": nested array of shape} with ", " separators like json.dumps. */
static void put_array(char **p, const int64_t *shape, int ndim, int depth,
                      const float *vals, size_t *i, int short_form) {
    if (depth == ndim) {
        put_number(p, vals[(*i)++], short_form);
        return;
    }
    *(*p)++ = '[';
    for (int64_t k = 0; k < shape[depth]; k++) {
        if (k) {
            *(*p)++ = ',';
            *(*p)++ = ' ';
        }
        put_array(p, shape, ndim, depth + 1, vals, i, short_form);
    }
    *(*p)++ = ']';
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    const char *shape_text = "1,3,224,224", *format = "repr", *phase = "all";
    int iters = 15;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shape")) shape_text = argv[i + 1];
        else if (!strcmp(argv[i], "--format")) format = argv[i + 1];
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--phase")) phase = argv[i + 1];
        else {
            fprintf(stderr, "decode_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    int short_form = !strcmp(format, "short");
    backend_tensor shape;
    char err[512];
    memset(&shape, 0, sizeof shape);
    if (tensor_parse_shape(shape_text, &shape, err, sizeof err)) {
        fprintf(stderr, "decode_bench: %s\n", err);
        return 2;
    }
    size_t numel = tensor_numel(&shape);
    float *vals = malloc(numel * sizeof *vals);
    char *body = malloc(numel * 28 + 64);
    if (!vals || !body) return 1;
    for (size_t i = 0; i < numel; i++) vals[i] = normal();
    char *p = body;
    memcpy(p, "{\"inputs\": ", 11);
    p += 11;
    size_t idx = 0;
    put_array(&p, shape.shape, shape.ndim, 0, vals, &idx, short_form);
    *p++ = '}';
    *p = '\0';
    size_t len = (size_t)(p - body);

    double *t_parse = calloc((size_t)iters, sizeof(double));
    double *t_decode = calloc((size_t)iters, sizeof(double));
    double *t_delete = calloc((size_t)iters, sizeof(double));
    double *t_encode = calloc((size_t)iters, sizeof(double));
    double *t_print = calloc((size_t)iters, sizeof(double));
    double *t_fast = calloc((size_t)iters, sizeof(double));
    double *t_scan = calloc((size_t)iters, sizeof(double));
    int fast_declined = 0;
    const size_t arr_off = 11; /* after {"inputs": */
    for (int it = 0; it < iters; it++) {
        backend_tensor t;
        size_t used = 0;
        double t0 = now();
        const char *q = fastjson_skip_array(body + arr_off, body + len);
        double t1 = now();
        int rc = !q || fastjson_array(body + arr_off, (size_t)(q - body) - arr_off, DTYPE_FLOAT32, &t, &used);
        t_fast[it] = now() - t1;
        t_scan[it] = t1 - t0;
        if (rc) {
            fast_declined = 1;
            break;
        }
        if (it == 0 && (used != len - arr_off - 1 || memcmp(t.data, vals, numel * sizeof *vals))) {
            fprintf(stderr, "decode_bench: the fast path decoded different values\n");
            return 1;
        }
        tensor_free(&t);
    }
    if (!strcmp(phase, "fast")) return 0;
    size_t out_len = 0;
    int only_parse = !strcmp(phase, "parse"), only_decode = !strcmp(phase, "decode");
    cJSON *kept = NULL;
    if (only_decode) kept = cJSON_ParseWithLengthOpts(body, len + 1, NULL, 1);
    for (int it = 0; it < iters; it++) {
        const char *end = NULL;
        double t0 = now();
        cJSON *root = kept ? kept : cJSON_ParseWithLengthOpts(body, len + 1, &end, 1);
        double t1 = now();
        if (!root || (!kept && (size_t)(end - body) != len)) {
            fprintf(stderr, "decode_bench: the body does not parse\n");
            return 1;
        }
        t_parse[it] = t1 - t0;
        if (only_parse) {
            cJSON_Delete(root);
            continue;
        }
        backend_tensor t;
        const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
        t0 = now();
        int rc = tensor_from_json(inputs, DTYPE_FLOAT32, "inputs", &t, err, sizeof err);
        t1 = now();
        if (rc) {
            fprintf(stderr, "decode_bench: %s\n", err);
            return 1;
        }
        t_decode[it] = t1 - t0;
        if (it == 0 && memcmp(t.data, vals, numel * sizeof *vals)) {
            fprintf(stderr, "decode_bench: decoded values differ from the input\n");
            return 1;
        }
        if (only_decode) {
            tensor_free(&t);
            continue;
        }
        t0 = now();
        cJSON_Delete(root);
        t_delete[it] = now() - t0;

        /* The reply: the same tensor encoded as the outputs of /predict. */
        t0 = now();
        char *text = tensor_to_json_text(&t);
        t1 = now();
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "outputs", cJSON_CreateRaw(text));
        free(text);
        char *reply = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        t_print[it] = now() - t1;
        t_encode[it] = t1 - t0;
        out_len = strlen(reply);
        free(reply);
        tensor_free(&t);
    }
    if (kept) cJSON_Delete(kept);
    double mb = (double)len / 1e6, omb = (double)out_len / 1e6;
    double parse = median(t_parse, iters), decode = median(t_decode, iters);
    double del = median(t_delete, iters), enc = median(t_encode, iters);
    double print = median(t_print, iters);
    double total = parse + decode + del;
    double fast = fast_declined ? 0 : median(t_fast, iters);
    double scan = fast_declined ? 0 : median(t_scan, iters);
    printf("{\"shape\": \"%s\", \"format\": \"%s\", \"iters\": %d, "
           "\"fast_declined\": %d, \"scan_ms\": %.2f, \"fastjson_ms\": %.2f, "
           "\"fast_ms\": %.2f, \"fastjson_mb_s\": %.1f, \"fast_mb_s\": %.1f, "
           "\"json_bytes\": %zu, \"parse_ms\": %.2f, \"tensor_from_json_ms\": %.2f, "
           "\"delete_ms\": %.2f, \"decode_total_ms\": %.2f, "
           "\"parse_mb_s\": %.1f, \"tensor_from_json_mb_s\": %.1f, \"decode_total_mb_s\": %.1f, "
           "\"encode_bytes\": %zu, \"encode_ms\": %.2f, \"reply_print_ms\": %.2f, "
           "\"encode_mb_s\": %.1f}\n",
           shape_text, format, iters, fast_declined, scan * 1e3, fast * 1e3,
           (scan + fast) * 1e3, fast > 0 ? mb / fast : 0, fast > 0 ? mb / (scan + fast) : 0,
           len, parse * 1e3, decode * 1e3, del * 1e3,
           total * 1e3, parse > 0 ? mb / parse : 0, decode > 0 ? mb / decode : 0,
           total > 0 ? mb / total : 0, out_len, enc * 1e3, print * 1e3,
           enc + print > 0 ? omb / (enc + print) : 0);
    free(vals);
    free(body);
    return 0;
}
