/* handlers_predict.c -- POST /predict: JSON in, forward on a worker, JSON
 * out. Decoding happens on the HTTP thread (bad input is answered without
 * a queue trip); the forward and the encoding on an inference worker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inferd/app.h"
#include "inferd/error.h"
#include "inferd/fastjson.h"
#include "inferd/infer.h"
#include "inferd/tensor.h"

/* The dtype for input `name` from "dtype" (absent, a string, or an object
 * by name). */
static int input_dtype(const cJSON *dtype, const char *name, dtype_t *out,
                       char *err, size_t errlen) {
    *out = DTYPE_FLOAT32;
    if (!dtype || cJSON_IsNull(dtype)) return 0;
    if (cJSON_IsObject(dtype) && name) {
        dtype = cJSON_GetObjectItemCaseSensitive(dtype, name);
        if (!dtype) return 0;
    }
    if (!cJSON_IsString(dtype))
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "\"dtype\" must be a string such as \"float32\"%s",
                         name ? " or an object of them by input name" : "");
    int dt = tensor_dtype_parse(dtype->valuestring);
    if (dt < 0)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "unknown dtype \"%s\"; use one of float32, float64, "
                         "float16, int64, int32, int16, int8, uint8, bool",
                         dtype->valuestring);
    *out = (dtype_t)dt;
    return 0;
}

/* ------------------------------------------------------------ fast path */

/* The body {"inputs": <array or object of arrays>, "dtype": ..., ...} with
 * plain keys, decoded without a cJSON node per number. Returns 0 when it
 * decoded j, FASTJSON_DECLINE otherwise (then the cJSON path runs and
 * gives the same values or the precise error). */
typedef struct {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
} span;

/* A key without escapes: returns its length and moves *p past the quote. */
static int scan_key(const char **p, const char *end, const char **key,
                    size_t *len) {
    const char *q = *p;
    if (q >= end || *q != '"') return -1;
    const char *k = ++q;
    while (q < end && *q != '"' && *q != '\\') q++;
    if (q >= end || *q != '"') return -1;
    *key = k;
    *len = (size_t)(q - k);
    *p = q + 1;
    return 0;
}

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* Parse "key": value pairs of one object; arrays are only spanned, other
 * values are parsed by cJSON into *others (which the caller frees). */
static int scan_object(const char **pp, const char *end, span *spans,
                       int max, int *n, cJSON **others) {
    const char *p = skip_space(*pp, end);
    if (p >= end || *p != '{') return -1;
    p = skip_space(p + 1, end);
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    for (;;) {
        const char *key;
        size_t klen;
        if (scan_key(&p, end, &key, &klen)) return -1;
        p = skip_space(p, end);
        if (p >= end || *p != ':') return -1;
        p = skip_space(p + 1, end);
        for (int i = 0; i < *n; i++)
            if (spans[i].key_len == klen && !memcmp(spans[i].key, key, klen))
                return -1; /* duplicate keys: let the cJSON path decide */
        if (*n == max) return -1;
        span *s = &spans[(*n)++];
        s->key = key;
        s->key_len = klen;
        s->val = p;
        if (p < end && *p == '[') {
            const char *q = fastjson_skip_array(p, end);
            if (!q) return -1;
            s->val_len = (size_t)(q - p);
            p = q;
        } else {
            const char *q = NULL;
            cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &q, 0);
            if (!v || !q) {
                cJSON_Delete(v);
                return -1;
            }
            if (!*others) *others = cJSON_CreateObject();
            char name[BACKEND_NAME_LEN];
            snprintf(name, sizeof name, "%.*s", (int)klen, key);
            cJSON_AddItemToObject(*others, name, v);
            s->val_len = (size_t)(q - p);
            p = q;
        }
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') break;
        return -1;
    }
    *pp = p + 1;
    return 0;
}

static int decode_fast(http_request *req, infer_job *j) {
    const char *p = req->body, *end = req->body + req->body_len;
    span top[8], ins[BACKEND_MAX_ARGS];
    int ntop = 0, nin = 0, rc = FASTJSON_DECLINE;
    cJSON *others = NULL, *inner = NULL;
    if (scan_object(&p, end, top, 8, &ntop, &others)) goto out;
    if (skip_space(p, end) != end) goto out;
    const span *inputs = NULL;
    for (int i = 0; i < ntop; i++)
        if (top[i].key_len == 6 && !memcmp(top[i].key, "inputs", 6))
            inputs = &top[i];
    if (!inputs) goto out;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(others, "dtype");
    if (*inputs->val == '[') {
        ins[0] = *inputs;
        ins[0].key_len = 0;
        nin = 1;
    } else {
        const char *q = inputs->val;
        if (scan_object(&q, inputs->val + inputs->val_len, ins,
                        BACKEND_MAX_ARGS, &nin, &inner) ||
            inner || nin == 0)
            goto out; /* a non-array input: the cJSON path explains */
        j->named = 1;
    }
    char err[ERR_LEN];
    for (int i = 0; i < nin; i++) {
        char name[BACKEND_NAME_LEN] = "";
        snprintf(name, sizeof name, "%.*s", (int)ins[i].key_len, ins[i].key);
        dtype_t dt;
        size_t used;
        if (input_dtype(dtype, j->named ? name : NULL, &dt, err, sizeof err) ||
            fastjson_array(ins[i].val, ins[i].val_len, dt, &j->in[i], &used) ||
            used != ins[i].val_len)
            goto out;
        snprintf(j->in[i].name, BACKEND_NAME_LEN, "%s", name);
        j->n = i + 1;
    }
    rc = 0;
out:
    if (rc) {
        for (int i = 0; i < j->n; i++) tensor_free(&j->in[i]);
        j->n = 0;
        j->named = 0;
    }
    cJSON_Delete(others);
    cJSON_Delete(inner);
    return rc;
}

/* ----------------------------------------------------------- cJSON path */

static int decode_request(http_request *req, infer_job *j, char *err,
                          size_t errlen) {
    if (decode_fast(req, j) == 0) return 0;
    if (req->body_len == 0)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "empty body: send {\"inputs\": [[...]]}");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(req->body, req->body_len + 1, &end, 1);
    /* The +1 takes in the NUL that http.c puts after the body, so that
     * trailing garbage is refused. A NUL inside the body ends it early and
     * is refused the same way. */
    if (!root || (size_t)(end - req->body) != req->body_len) {
        cJSON_Delete(root);
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "malformed JSON near byte %zu: send "
                         "{\"inputs\": [[...]]} (NaN and Infinity are not "
                         "JSON)",
                         end ? (size_t)(end - req->body) : 0);
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = error_set(err, errlen, ERR_BAD_REQUEST,
                       "the body must be a JSON object: {\"inputs\": "
                       "[[...]]}");
        goto out;
    }
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (!inputs) {
        rc = error_set(err, errlen, ERR_BAD_REQUEST,
                       "missing \"inputs\": send {\"inputs\": [[...]]}");
        goto out;
    }
    dtype_t dt;
    if (cJSON_IsObject(inputs)) {
        j->named = 1;
        for (const cJSON *c = inputs->child; c; c = c->next) {
            if (j->n == BACKEND_MAX_ARGS) {
                rc = error_set(err, errlen, ERR_BAD_REQUEST,
                               "more than %d inputs", BACKEND_MAX_ARGS);
                goto out;
            }
            char where[BACKEND_NAME_LEN + 16];
            snprintf(where, sizeof where, "inputs.%s", c->string);
            if ((rc = input_dtype(dtype, c->string, &dt, err, errlen)) ||
                (rc = tensor_from_json(c, dt, where, &j->in[j->n], err,
                                       errlen)))
                goto out;
            snprintf(j->in[j->n].name, BACKEND_NAME_LEN, "%s", c->string);
            j->n++;
        }
    } else {
        if ((rc = input_dtype(dtype, NULL, &dt, err, errlen)) ||
            (rc = tensor_from_json(inputs, dt, "inputs", &j->in[0], err,
                                   errlen)))
            goto out;
        j->n = 1;
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* {"outputs": ..., "shape": ..., "dtype": ...}: single values for one
 * tensor, lists for tuples and lists, objects for dicts. */
static int encode_outputs(cJSON *o, const backend_tensor *out, int nout,
                          backend_output_kind kind) {
    cJSON *vals, *shapes, *dtypes;
    int dict = kind == OUTPUT_DICT;
    int single = nout == 1 && (kind == OUTPUT_TENSOR ||
                               kind == OUTPUT_SCALAR || kind == OUTPUT_UNKNOWN);
    for (int i = 0; i < nout; i++) {
        char *text = tensor_to_json_text(&out[i]);
        if (!text) return -1;
        cJSON *v = cJSON_CreateRaw(text);
        free(text);
        cJSON *s = tensor_shape_json(&out[i]);
        cJSON *d = cJSON_CreateString(tensor_dtype_name(out[i].dtype));
        if (single) {
            cJSON_AddItemToObject(o, "outputs", v);
            cJSON_AddItemToObject(o, "shape", s);
            cJSON_AddItemToObject(o, "dtype", d);
            return 0;
        }
        if (i == 0) {
            vals = dict ? cJSON_CreateObject() : cJSON_CreateArray();
            shapes = dict ? cJSON_CreateObject() : cJSON_CreateArray();
            dtypes = dict ? cJSON_CreateObject() : cJSON_CreateArray();
            cJSON_AddItemToObject(o, "outputs", vals);
            cJSON_AddItemToObject(o, "shape", shapes);
            cJSON_AddItemToObject(o, "dtype", dtypes);
        }
        if (dict) {
            cJSON_AddItemToObject(vals, out[i].name, v);
            cJSON_AddItemToObject(shapes, out[i].name, s);
            cJSON_AddItemToObject(dtypes, out[i].name, d);
        } else {
            cJSON_AddItemToArray(vals, v);
            cJSON_AddItemToArray(shapes, s);
            cJSON_AddItemToArray(dtypes, d);
        }
    }
    if (nout == 0) {
        cJSON_AddItemToObject(o, "outputs", cJSON_CreateArray());
        cJSON_AddItemToObject(o, "shape", cJSON_CreateArray());
        cJSON_AddItemToObject(o, "dtype", cJSON_CreateArray());
    }
    return 0;
}

static void reply_error(infer_job *j) {
    if (j->rc == ERR_NO_MEMORY || j->merr.msg[0])
        app_reply_model_error(j->req, j->rc, &j->merr);
    else
        http_reply_error(j->req, error_http_status(j->rc), "%s", j->err);
}

static void reply_json(infer_job *j) {
    if (j->rc) {
        reply_error(j);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (encode_outputs(o, j->out, j->nout, j->kind)) {
        cJSON_Delete(o);
        http_reply_error(j->req, 500, "out of memory encoding the outputs");
        return;
    }
    cJSON_AddStringToObject(o, "model", app.cfg->model_name);
    app_add_num(o, "inference_ms", j->inference_ms);
    if (j->batch_size > 1) cJSON_AddNumberToObject(o, "batch_size", j->batch_size);
    http_reply_json(j->req, 200, o);
}

/* Accept: application/octet-stream: the one output tensor's raw bytes,
 * described by X-Shape and X-Dtype. */
static void reply_raw(infer_job *j) {
    if (j->rc) {
        reply_error(j);
        return;
    }
    if (j->nout != 1) {
        http_reply_error(j->req, 406,
                         "the model returns %d outputs; a raw "
                         "(application/octet-stream) answer holds one: ask "
                         "for application/json",
                         j->nout);
        return;
    }
    const backend_tensor *t = &j->out[0];
    char shape[BACKEND_MAX_DIMS * 21 + 1] = "";
    size_t used = 0;
    for (int d = 0; d < t->ndim && used < sizeof shape; d++)
        used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%lld",
                                 d ? "," : "", (long long)t->shape[d]);
    char *data = malloc(t->nbytes ? t->nbytes : 1);
    if (!data) {
        http_reply_error(j->req, 500, "out of memory");
        return;
    }
    memcpy(data, t->data, t->nbytes);
    http_reply_header(j->req, "X-Shape", shape);
    http_reply_header(j->req, "X-Dtype", tensor_dtype_name(t->dtype));
    http_reply_raw(j->req, 200, "application/octet-stream", data, t->nbytes);
}

/* application/octet-stream body: one raw little-endian tensor whose shape
 * and dtype are in X-Shape ("1,3,224,224") and X-Dtype ("float32"). */
static int decode_raw(http_request *req, infer_job *j, char *err,
                      size_t errlen) {
    const char *shape = http_header(req, "X-Shape");
    const char *dtype = http_header(req, "X-Dtype");
    if (!shape)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "a raw body needs an X-Shape header, e.g. X-Shape: "
                         "1,3,224,224");
    int dt = dtype ? tensor_dtype_parse(dtype) : DTYPE_FLOAT32;
    if (dt < 0)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "unknown X-Dtype \"%s\"; use one of float32, "
                         "float64, float16, int64, int32, int16, int8, "
                         "uint8, bool",
                         dtype);
    backend_tensor *t = &j->in[0];
    int rc = tensor_parse_shape(shape, t, err, errlen);
    if (rc) return rc;
    t->dtype = (dtype_t)dt;
    size_t want = tensor_numel(t) * backend_dtype_size(t->dtype);
    if (tensor_numel(t) && want / tensor_numel(t) != backend_dtype_size(t->dtype))
        want = SIZE_MAX;
    if (want != req->body_len)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "the body has %zu bytes but X-Shape %s of %s needs "
                         "%zu",
                         req->body_len, shape, tensor_dtype_name(t->dtype),
                         want);
    t->nbytes = want;
    /* The body buffer becomes the tensor: no copy. */
    t->data = req->body;
    req->body = NULL;
    req->body_len = 0;
    j->n = 1;
    return 0;
}

void handle_predict(http_request *req) {
    const char *ctype = http_header(req, "Content-Type");
    int raw = ctype && !strncasecmp(ctype, "application/octet-stream", 24);
    if (!raw && !http_content_is_json(ctype)) {
        http_reply_error(req, 415,
                         "unsupported Content-Type \"%s\": send "
                         "application/json (or application/octet-stream with X-Shape and "
                         "X-Dtype headers)",
                         ctype);
        return;
    }
    infer_job *j = infer_job_new(req, model_find(NULL));
    if (!j) {
        http_reply_error(req, 500, "out of memory");
        return;
    }
    char err[ERR_LEN];
    int rc = raw ? decode_raw(req, j, err, sizeof err)
                 : decode_request(req, j, err, sizeof err);
    if (rc) {
        infer_job_free(j);
        http_reply_error(req, error_http_status(rc), "%s", err);
        return;
    }
    const char *accept = http_header(req, "Accept");
    j->reply = accept && strstr(accept, "application/octet-stream")
                   ? reply_raw
                   : reply_json;
    infer_submit(j, app.predict_q);
}
