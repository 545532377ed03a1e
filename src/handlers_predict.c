/* handlers_predict.c -- POST /predict: JSON in, forward on a worker, JSON
 * out. Decoding happens on the HTTP thread (bad input is answered without
 * a queue trip); the forward and the encoding on an inference worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inferd/app.h"
#include "inferd/error.h"
#include "inferd/tensor.h"

typedef struct {
    int n;
    int named; /* inputs came as an object keyed by argument name */
    backend_tensor in[BACKEND_MAX_ARGS];
} predict_job;

static void job_free(void *arg) {
    predict_job *j = arg;
    for (int i = 0; i < j->n; i++) tensor_free(&j->in[i]);
    free(j);
}

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

static int decode_request(http_request *req, predict_job *j, char *err,
                          size_t errlen) {
    if (req->body_len == 0)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "empty body: send {\"inputs\": [[...]]}");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 1);
    if (!root)
        return error_set(err, errlen, ERR_BAD_REQUEST,
                         "malformed JSON near byte %zu: send "
                         "{\"inputs\": [[...]]} (NaN and Infinity are not "
                         "JSON)",
                         end ? (size_t)(end - req->body) : 0);
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

/* Put named inputs in forward()'s argument order. */
static int order_inputs(predict_job *j, const backend_info *info,
                        backend_tensor *ordered, char *err, size_t errlen) {
    char expected[512] = "";
    size_t used = 0;
    for (int a = 0; a < info->nargs && used < sizeof expected; a++)
        used += (size_t)snprintf(expected + used, sizeof expected - used,
                                 "%s%s", a ? ", " : "", info->args[a].name);
    if (!j->named) {
        if (info->nargs > 1)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "the model's forward takes %d arguments (%s): "
                             "send \"inputs\" as an object keyed by them",
                             info->nargs, expected);
        ordered[0] = j->in[0];
        return 1;
    }
    for (int i = 0; i < j->n; i++) {
        int found = 0;
        for (int a = 0; a < info->nargs; a++)
            found |= !strcmp(j->in[i].name, info->args[a].name);
        if (!found)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "unknown input \"%s\"; the model expects %s",
                             j->in[i].name, expected);
    }
    for (int a = 0; a < info->nargs; a++) {
        int k = 0;
        while (k < j->n && strcmp(j->in[k].name, info->args[a].name)) k++;
        if (k == j->n)
            return error_set(err, errlen, ERR_BAD_REQUEST,
                             "missing input \"%s\"; the model expects %s",
                             info->args[a].name, expected);
        ordered[a] = j->in[k];
    }
    return info->nargs;
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

static void run_predict(http_request *req, void *arg) {
    predict_job *j = arg;
    model_entry *e = model_find(NULL);
    model_handle h;
    model_err merr = {0};
    int rc = model_acquire(e, &h, &merr);
    if (rc) {
        app_reply_model_error(req, rc, &merr);
        return;
    }
    char err[ERR_LEN];
    backend_tensor ordered[BACKEND_MAX_ARGS];
    int nin = order_inputs(j, h.info, ordered, err, sizeof err);
    if (nin < 0) {
        model_release(&h);
        http_reply_error(req, error_http_status(nin), "%s", err);
        return;
    }
    backend_tensor *out = NULL;
    int nout = 0;
    double t0 = app_now();
    rc = h.api->forward(h.bm, ordered, nin, &out, &nout, err, sizeof err);
    double ms = (app_now() - t0) * 1000.0;
    backend_output_kind kind = h.info->output_kind;
    if (rc != BACKEND_OK) {
        model_release(&h);
        if (rc == BACKEND_EINPUT)
            http_reply_error(req, 400, "the model rejected the input: %s",
                             err);
        else
            http_reply_error(req, 500, "forward failed: %s", err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (encode_outputs(o, out, nout, kind)) {
        cJSON_Delete(o);
        h.api->free_outputs(out, nout);
        model_release(&h);
        http_reply_error(req, 500, "out of memory encoding the outputs");
        return;
    }
    h.api->free_outputs(out, nout);
    model_release(&h);
    cJSON_AddStringToObject(o, "model", app.cfg->model_name);
    cJSON_AddNumberToObject(o, "inference_ms", ms);
    http_reply_json(req, 200, o);
}

/* JSON, or what curl -d sends by default: users try the API with it. */
static int json_content_type(const char *ctype) {
    static const char *ok[] = {"application/json", "text/plain",
                               "application/x-www-form-urlencoded"};
    if (!ctype || !*ctype) return 1;
    size_t len = strcspn(ctype, ";");
    while (len && ctype[len - 1] == ' ') len--;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (len == strlen(ok[i]) && !strncasecmp(ctype, ok[i], len)) return 1;
    return len > 5 && !strncasecmp(ctype + len - 5, "+json", 5);
}

void handle_predict(http_request *req) {
    const char *ctype = http_header(req, "Content-Type");
    if (!json_content_type(ctype)) {
        http_reply_error(req, 415,
                         "unsupported Content-Type \"%s\": send "
                         "application/json",
                         ctype);
        return;
    }
    predict_job *j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_error(req, 500, "out of memory");
        return;
    }
    char err[ERR_LEN];
    int rc = decode_request(req, j, err, sizeof err);
    if (rc) {
        job_free(j);
        http_reply_error(req, error_http_status(rc), "%s", err);
        return;
    }
    app_defer(req, app.predict_q, run_predict, j, job_free);
}
