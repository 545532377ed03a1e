/* handlers_v2.c -- the Open Inference Protocol (KServe v2) REST API on the
 * model inferd serves: metadata, health, inference (JSON, and Triton's
 * binary tensor data extension) and Triton's model repository extension.
 * Inference decodes on the HTTP thread and runs through infer.c as /predict
 * does; whatever may load the model runs on a worker (app_defer). Where the
 * texts leave a choice, examples/v2/README.md says which one is made. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "inferd/app.h"
#include "inferd/error.h"
#include "inferd/infer.h"
#include "inferd/tensor.h"

#define V2_VERSION "1"
#define V2_MAX_OUTPUTS 64
#define V2_HEADER_LEN "Inference-Header-Content-Length"
/* A 400 with its message, in functions that have err and errlen. */
#define BAD(...) error_set(err, errlen, ERR_BAD_REQUEST, __VA_ARGS__)

/* ------------------------------------------------------------- helpers */

/* The configured model, or NULL when MODEL_PATH is empty. */
static model_entry *configured(void) {
    return model_find(app.cfg->model_name);
}

/* The model and version named in the path, or NULL with a 404 set. */
static model_entry *path_model(http_request *req) {
    const char *name = route_param(&req->params, "model");
    const char *ver = route_param(&req->params, "version");
    model_entry *e = name ? model_find(name) : NULL;
    if (!e) {
        http_reply_error(req, 404, "unknown model \"%s\"; this server %s%s%s",
                         name ? name : "", configured() ? "serves \"" : "",
                         configured() ? app.cfg->model_name
                                      : "has none (MODEL_PATH is empty)",
                         configured() ? "\"" : "");
        return NULL;
    }
    if (ver && strcmp(ver, V2_VERSION)) {
        http_reply_error(req, 404,
                         "model \"%s\" has no version \"%s\"; its one version "
                         "is \"" V2_VERSION "\"",
                         name, ver);
        return NULL;
    }
    return e;
}

/* Can e serve inference? 1, or 0 with the reason in why. */
static int model_ready(model_entry *e, char *why, size_t len) {
    model_status st;
    model_get_status(e, &st);
    struct stat sb;
    if (st.state == MODEL_LOADED) return 1;
    if (st.state == MODEL_ERROR)
        snprintf(why, len, "the last load failed: %s", st.last_error);
    else if (stat(st.path, &sb) != 0)
        snprintf(why, len, "model file %s: %s", st.path, strerror(errno));
    else if (!app.cfg->lazy_loading) /* it promised a loaded model */
        snprintf(why, len, "not loaded (LAZY_LOADING=false)");
    else
        return 1; /* lazy: it loads on first use */
    return 0;
}

/* Parse len bytes of JSON; *out is NULL for an empty (or blank) body.
 * Trailing bytes other than whitespace are refused. */
static int parse_json(const char *buf, size_t len, cJSON **out, char *err,
                      size_t errlen) {
    size_t at = 0;
    *out = NULL;
    while (at < len && isspace((unsigned char)buf[at]))
        at++;
    if (at == len) return 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    at = end ? (size_t)(end - buf) : 0;
    while (root && at < len && isspace((unsigned char)buf[at]))
        at++;
    if (!root || at != len) {
        cJSON_Delete(root);
        return BAD("malformed JSON near byte %zu (NaN and Infinity are "
                   "not JSON)",
                   at);
    }
    *out = root;
    return 0;
}

/* A request body that must be empty or a JSON object. */
static int parse_object_body(http_request *req, cJSON **out) {
    char err[ERR_LEN];
    if (parse_json(req->body, req->body_len, out, err, sizeof err)) {
        http_reply_error(req, 400, "%s", err);
        return -1;
    }
    if (*out && !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        http_reply_error(req, 400, "the body must be a JSON object");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------- server and metadata */

void handle_v2_server(http_request *req) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "inferd");
    cJSON_AddStringToObject(o, "version", INFERD_VERSION);
    cJSON *x = cJSON_AddArrayToObject(o, "extensions");
    cJSON_AddItemToArray(x, cJSON_CreateString("model_repository"));
    cJSON_AddItemToArray(x, cJSON_CreateString("binary_tensor_data"));
    http_reply_json(req, 200, o);
}

void handle_v2_live(http_request *req) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "live", 1);
    http_reply_json(req, 200, o);
}

/* {name?, ready}: 200 when ready, else 503 with the reason in "error", as
 * every inferd error reply has one. */
static void reply_ready(http_request *req, const char *name, int ready,
                        const char *why) {
    cJSON *o = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(o, "name", name);
    cJSON_AddBoolToObject(o, "ready", ready);
    if (!ready) cJSON_AddStringToObject(o, "error", why);
    http_reply_json(req, ready ? 200 : 503, o);
}

/* With no model there is nothing to serve: not ready. */
void handle_v2_ready(http_request *req) {
    char why[600] = "no model is configured (MODEL_PATH is empty)";
    model_entry *e = configured();
    reply_ready(req, NULL, e && model_ready(e, why, sizeof why), why);
}

void handle_v2_model_ready(http_request *req) {
    model_entry *e = path_model(req);
    char why[600];
    if (e)
        reply_ready(req, app.cfg->model_name, model_ready(e, why, sizeof why),
                    why);
}

/* A metadata tensor for a schema type. The schema carries no dtype for a
 * Tensor: FP32, the dtype of nearly every model's inputs, is the default
 * (the /infer datatype of each request still decides). */
static cJSON *meta_tensor(const char *name, const char *type) {
    const char *dt = !strcmp(type, "int")     ? "INT64"
                     : !strcmp(type, "float") ? "FP64"
                     : !strcmp(type, "bool")  ? "BOOL"
                                              : NULL;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "datatype", dt ? dt : "FP32");
    cJSON *s = cJSON_AddArrayToObject(t, "shape"); /* numbers: one element */
    cJSON_AddItemToArray(s, cJSON_CreateNumber(dt ? 1 : -1));
    return t;
}

/* The outputs a return type tells: one for Tensor or a scalar, one per
 * element of a flat Tuple; nothing for List, Dict and nested tuples, whose
 * count (and dict keys) only a forward tells. */
static void meta_outputs(cJSON *arr, const backend_info *info) {
    const char *ty = info->output_type;
    if (info->output_kind == OUTPUT_TENSOR ||
        info->output_kind == OUTPUT_SCALAR) {
        cJSON_AddItemToArray(arr, meta_tensor("output0", ty));
        return;
    }
    size_t len = strlen(ty);
    if (info->output_kind != OUTPUT_TUPLE || strncmp(ty, "Tuple[", 6) ||
        ty[len - 1] != ']' || strstr(ty + 6, "Tuple[") ||
        strstr(ty + 6, "List[") || strstr(ty + 6, "Dict["))
        return; /* nested: flattened into an unknown number; or cut short */
    const char *p = ty + 6;
    for (int n = 0; p < ty + len - 1; n++) {
        size_t k = 0;
        for (int depth = 0; p[k] && (depth || (p[k] != ',' && p[k] != ']'));
             k++)
            depth += (p[k] == '[') - (p[k] == ']');
        char name[32], type[BACKEND_NAME_LEN];
        snprintf(name, sizeof name, "output%d", n);
        snprintf(type, sizeof type, "%.*s", (int)k, p);
        cJSON_AddItemToArray(arr, meta_tensor(name, type));
        for (p += k + 1; *p == ' '; p++) {
        }
    }
}

static cJSON *metadata_json(const backend_info *info) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", app.cfg->model_name);
    cJSON *v = cJSON_AddArrayToObject(o, "versions");
    cJSON_AddItemToArray(v, cJSON_CreateString(V2_VERSION));
    cJSON_AddStringToObject(o, "platform", "pytorch_torchscript");
    cJSON *in = cJSON_AddArrayToObject(o, "inputs");
    for (int a = 0; a < info->nargs; a++)
        cJSON_AddItemToArray(
            in, meta_tensor(info->args[a].name, info->args[a].type));
    meta_outputs(cJSON_AddArrayToObject(o, "outputs"), info);
    return o;
}

/* On a worker: the schema needs a loaded model, and a load blocks. */
static void do_metadata(http_request *req, void *arg) {
    model_handle h;
    model_err err = {0};
    int rc = model_acquire(arg, &h, &err);
    if (rc) {
        app_reply_model_error(req, rc, &err);
        return;
    }
    http_reply_json(req, 200, metadata_json(h.info));
    model_release(&h);
}

void handle_v2_model(http_request *req) {
    model_entry *e = path_model(req);
    if (!e) return;
    model_status st;
    model_get_status(e, &st);
    if (st.has_info) { /* loaded: the snapshot has the schema */
        http_reply_json(req, 200, metadata_json(&st.info));
        return;
    }
    app_defer(req, app.admin_q, do_metadata, e, NULL);
}

/* ------------------------------------------------------------ inference */

typedef struct {
    char *id;       /* echoed; NULL when the request had none */
    int binary_all; /* parameters.binary_data_output */
    int nsel;       /* requested outputs; 0 = all */
    struct {
        char name[BACKEND_NAME_LEN];
        int binary; /* -1: not said, follow binary_all */
    } sel[V2_MAX_OUTPUTS];
} v2_ctx;

static void ctx_free(void *p) {
    v2_ctx *c = p;
    if (c) free(c->id);
    free(c);
}

/* An optional bool member of an optional object. */
static int opt_bool(const cJSON *obj, const char *key, const char *where,
                    int *out, char *err, size_t errlen) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v) return 0;
    if (!cJSON_IsBool(v))
        return BAD("%s.%s must be true or false", where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* "parameters", which must be an object when present. */
static int params_of(const cJSON *obj, const char *where, const cJSON **out,
                     char *err, size_t errlen) {
    *out = cJSON_GetObjectItemCaseSensitive(obj, "parameters");
    if (*out && !cJSON_IsObject(*out))
        return BAD("%s.parameters must be an object", where);
    return 0;
}

/* A name member: a non-empty string shorter than BACKEND_NAME_LEN. */
static int name_of(const cJSON *obj, const char *where, const char **out,
                   char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "name");
    if (!cJSON_IsString(v) || !*v->valuestring ||
        strlen(v->valuestring) >= BACKEND_NAME_LEN)
        return BAD("%s.name must be a non-empty string of at most %d "
                   "bytes",
                   where, BACKEND_NAME_LEN - 1);
    *out = v->valuestring;
    return 0;
}

/* One $request_input into j->in[k]; binary data is taken from *bin. */
static int decode_input(const cJSON *in, int k, infer_job *j, const char *bin,
                        size_t binlen, size_t *off, char *err, size_t errlen) {
    char where[48];
    snprintf(where, sizeof where, "inputs[%d]", k);
    const char *name;
    const cJSON *params;
    if (!cJSON_IsObject(in))
        return BAD("%s must be an object {name, shape, datatype, data}",
                   where);
    int rc = name_of(in, where, &name, err, errlen);
    if (rc || (rc = params_of(in, where, &params, err, errlen))) return rc;
    for (int i = 0; i < k; i++)
        if (!strcmp(j->in[i].name, name))
            return BAD("inputs[%d] and %s are both named \"%s\"", i, where,
                       name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    if (!cJSON_IsString(dt))
        return BAD("%s.datatype must be a string such as \"FP32\"", where);
    int dtype = tensor_dtype_parse_v2(dt->valuestring);
    if (dtype < 0)
        return BAD("%s.datatype \"%s\" is not supported; use one of "
                   "BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32, "
                   "FP64",
                   where, dt->valuestring);
    backend_tensor shape;
    char swhere[64];
    snprintf(swhere, sizeof swhere, "%s.shape", where);
    const cJSON *sj = cJSON_GetObjectItemCaseSensitive(in, "shape");
    if ((rc = tensor_shape_from_json(sj, swhere, &shape, err, errlen)))
        return rc;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    const cJSON *size =
        params ? cJSON_GetObjectItemCaseSensitive(params, "binary_data_size")
               : NULL;
    char dwhere[64];
    if (size) {
        double x = cJSON_IsNumber(size) ? size->valuedouble : -1;
        if (x < 0 || x != floor(x) || x > 9007199254740992.0)
            return BAD("%s.parameters.binary_data_size must be a "
                       "non-negative integer",
                       where);
        if (data)
            return BAD("%s has both data and binary_data_size; send "
                       "one",
                       where);
        size_t n = (size_t)x;
        if (n > binlen - *off)
            return BAD("%s.parameters.binary_data_size is %zu but only "
                       "%zu bytes of binary data are left after the "
                       "JSON header",
                       where, n, binlen - *off);
        snprintf(dwhere, sizeof dwhere, "%s binary data", where);
        rc = tensor_from_bytes(bin + *off, n, (dtype_t)dtype, shape.shape,
                               shape.ndim, dwhere, &j->in[k], err, errlen);
        *off += n;
    } else {
        if (!data)
            return BAD("%s has no data (nor parameters.binary_data_size)",
                       where);
        snprintf(dwhere, sizeof dwhere, "%s.data", where);
        rc = tensor_from_json_shaped(data, (dtype_t)dtype, shape.shape,
                                     shape.ndim, dwhere, &j->in[k], err,
                                     errlen);
    }
    if (rc) return rc;
    snprintf(j->in[k].name, BACKEND_NAME_LEN, "%s", name);
    j->n = k + 1; /* from now on infer_job_free frees it */
    return 0;
}

/* The $request_output list into c->sel. */
static int decode_outputs(const cJSON *outs, v2_ctx *c, char *err,
                          size_t errlen) {
    if (!outs) return 0;
    if (!cJSON_IsArray(outs) || cJSON_GetArraySize(outs) > V2_MAX_OUTPUTS)
        return BAD("\"outputs\" must be an array of at most %d "
                   "{\"name\": ...} objects",
                   V2_MAX_OUTPUTS);
    int k = 0, rc;
    for (const cJSON *o = outs->child; o; o = o->next, k++) {
        char where[48];
        snprintf(where, sizeof where, "outputs[%d]", k);
        const char *name;
        const cJSON *params;
        if (!cJSON_IsObject(o))
            return BAD("%s must be an object {\"name\": ...}", where);
        if ((rc = name_of(o, where, &name, err, errlen)) ||
            (rc = params_of(o, where, &params, err, errlen)))
            return rc;
        for (int i = 0; i < k; i++)
            if (!strcmp(c->sel[i].name, name))
                return BAD("output \"%s\" is requested twice", name);
        /* Would change what the answer means; silently ignoring it would
         * return something else than asked. */
        if (params &&
            cJSON_GetObjectItemCaseSensitive(params, "classification"))
            return BAD("%s.parameters.classification is not supported", where);
        snprintf(c->sel[k].name, BACKEND_NAME_LEN, "%s", name);
        c->sel[k].binary = -1;
        if ((rc = opt_bool(params, "binary_data", where, &c->sel[k].binary,
                           err, errlen)))
            return rc;
        c->nsel = k + 1;
    }
    return 0;
}

/* The inference request: JSON header (the first jlen bytes), then the
 * binary tensors of the inputs that have binary_data_size, in order. */
static int decode_request(http_request *req, size_t jlen, infer_job *j,
                          v2_ctx *c, char *err, size_t errlen) {
    cJSON *root;
    int rc = parse_json(req->body, jlen, &root, err, errlen);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        rc = BAD("the body must be a JSON object {\"inputs\": [{name, "
                 "shape, datatype, data}]}");
        goto out;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *params,
        *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (id && (!cJSON_IsString(id) || !(c->id = strdup(id->valuestring)))) {
        rc = BAD("\"id\" must be a string");
        goto out;
    }
    if ((rc = params_of(root, "request", &params, err, errlen)) ||
        (rc = opt_bool(params, "binary_data_output", "parameters",
                       &c->binary_all, err, errlen)))
        goto out;
    int n = cJSON_IsArray(inputs) ? cJSON_GetArraySize(inputs) : -1;
    if (n < 1 || n > BACKEND_MAX_ARGS) {
        rc = BAD("\"inputs\" must be an array of 1 to %d {name, shape, "
                 "datatype, data} objects",
                 BACKEND_MAX_ARGS);
        goto out;
    }
    const char *bin = req->body + jlen;
    size_t binlen = req->body_len - jlen, off = 0;
    int k = 0;
    for (const cJSON *in = inputs->child; in; in = in->next, k++)
        if ((rc = decode_input(in, k, j, bin, binlen, &off, err, errlen)))
            goto out;
    if (off != binlen) {
        rc = BAD("%zu bytes follow the JSON header, but the inputs' "
                 "binary_data_size add up to %zu",
                 binlen, off);
        goto out;
    }
    rc = decode_outputs(cJSON_GetObjectItemCaseSensitive(root, "outputs"), c,
                        err, errlen);
out:
    cJSON_Delete(root);
    return rc;
}

/* Output i's name: dict outputs by key, all others output0, output1, ... */
static void out_name(const infer_job *j, int i, char *buf, size_t len) {
    if (j->kind == OUTPUT_DICT && j->out[i].name[0])
        snprintf(buf, len, "%s", j->out[i].name);
    else
        snprintf(buf, len, "output%d", i);
}

/* Which outputs to return, in the answer's order, and whether as binary.
 * 0, or -1 with a 400 set for an unknown name. */
static int select_outputs(infer_job *j, v2_ctx *c, int *idx, int *bin) {
    char name[BACKEND_NAME_LEN];
    if (!c->nsel) {
        for (int i = 0; i < j->nout; i++)
            idx[i] = i, bin[i] = c->binary_all;
        return j->nout;
    }
    for (int s = 0; s < c->nsel; s++) {
        int i = 0;
        for (; i < j->nout; i++) {
            out_name(j, i, name, sizeof name);
            if (!strcmp(name, c->sel[s].name)) break;
        }
        if (i == j->nout) {
            char have[512] = "";
            size_t used = 0;
            for (int k = 0; k < j->nout && used < sizeof have; k++) {
                out_name(j, k, name, sizeof name);
                used += (size_t)snprintf(have + used, sizeof have - used,
                                         "%s\"%s\"", k ? ", " : "", name);
            }
            http_reply_error(j->req, 400,
                             "unknown output \"%s\"; the model returns %s",
                             c->sel[s].name, j->nout ? have : "no outputs");
            return -1;
        }
        idx[s] = i;
        bin[s] = c->sel[s].binary >= 0 ? c->sel[s].binary : c->binary_all;
    }
    return c->nsel;
}

/* One $response_output; binary ones carry binary_data_size, not data. */
static int encode_output(cJSON *arr, const infer_job *j, int i, int binary) {
    const backend_tensor *t = &j->out[i];
    char name[BACKEND_NAME_LEN];
    out_name(j, i, name, sizeof name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "datatype", tensor_dtype_name_v2(t->dtype));
    /* A plain int/float/bool return is a one-element tensor to v2. */
    backend_tensor flat = *t;
    flat.ndim = 1;
    flat.shape[0] = (int64_t)tensor_numel(t);
    flat.is_scalar = 0;
    cJSON_AddItemToObject(o, "shape",
                          tensor_shape_json(t->is_scalar ? &flat : t));
    if (binary) {
        cJSON *p = cJSON_AddObjectToObject(o, "parameters");
        cJSON_AddNumberToObject(p, "binary_data_size", (double)t->nbytes);
        return 0;
    }
    char *text = tensor_to_json_text(&flat); /* data is flat */
    if (!text) return -1;
    cJSON_AddItemToObject(o, "data", cJSON_CreateRaw(text));
    free(text);
    return 0;
}

/* The $inference_response, followed by the binary outputs when any. */
static void reply_v2(infer_job *j) {
    v2_ctx *c = j->ctx;
    if (j->rc && (j->rc == ERR_NO_MEMORY || j->merr.msg[0])) {
        app_reply_model_error(j->req, j->rc, &j->merr); /* a load failed */
        return;
    }
    if (j->rc) {
        http_reply_error(j->req, error_http_status(j->rc), "%s", j->err);
        return;
    }
    int cap = c->nsel > j->nout ? c->nsel : j->nout;
    int *idx = malloc(sizeof *idx * (size_t)(cap + 1));
    int *bin = malloc(sizeof *bin * (size_t)(cap + 1));
    cJSON *o = NULL;
    char *head = NULL, *body = NULL;
    if (!idx || !bin) goto oom;
    int n = select_outputs(j, c, idx, bin);
    if (n < 0) goto done;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", app.cfg->model_name);
    cJSON_AddStringToObject(o, "model_version", V2_VERSION);
    if (c->id) cJSON_AddStringToObject(o, "id", c->id);
    cJSON *arr = cJSON_AddArrayToObject(o, "outputs");
    size_t nbin = 0;
    int any = 0;
    for (int s = 0; s < n; s++) {
        if (encode_output(arr, j, idx[s], bin[s])) goto oom;
        if (bin[s]) any = 1, nbin += j->out[idx[s]].nbytes;
    }
    if (!any) {
        http_reply_json(j->req, 200, o);
        o = NULL;
        goto done;
    }
    /* Binary tensor data extension: JSON header, then the raw tensors in
     * the order of the outputs in it. */
    if (!(head = cJSON_PrintUnformatted(o))) goto oom;
    size_t hlen = strlen(head), used = hlen;
    if (!(body = malloc(hlen + nbin + 1))) goto oom;
    memcpy(body, head, hlen);
    for (int s = 0; s < n; s++)
        if (bin[s]) {
            const backend_tensor *t = &j->out[idx[s]];
            if (t->nbytes) memcpy(body + used, t->data, t->nbytes);
            used += t->nbytes;
        }
    char num[24];
    snprintf(num, sizeof num, "%zu", hlen);
    http_reply_header(j->req, V2_HEADER_LEN, num);
    http_reply_raw(j->req, 200, "application/octet-stream", body, used);
    body = NULL;
    goto done;
oom:
    http_reply_error(j->req, 500, "out of memory encoding the outputs");
done:
    cJSON_Delete(o);
    free(head);
    free(body);
    free(idx);
    free(bin);
}

/* JSON (also what curl -d sends), or octet-stream for binary tensors. */
static int accepted_type(const char *ctype, int *octet) {
    *octet = ctype && !strncasecmp(ctype, "application/octet-stream", 24);
    return *octet || http_content_is_json(ctype);
}

/* Length of the JSON header: Inference-Header-Content-Length, or the
 * whole body. 0, or -1 with a 400/415 set. */
static int header_length(http_request *req, size_t *jlen) {
    const char *ctype = http_header(req, "Content-Type");
    int octet;
    if (!accepted_type(ctype, &octet)) {
        http_reply_error(req, 415,
                         "unsupported Content-Type \"%s\": send "
                         "application/json, or application/octet-stream with "
                         "an " V2_HEADER_LEN " header",
                         ctype);
        return -1;
    }
    const char *h = http_header(req, V2_HEADER_LEN);
    *jlen = req->body_len;
    if (!h) {
        if (!octet) return 0;
        http_reply_error(
            req, 400,
            "an application/octet-stream body needs an " V2_HEADER_LEN
            " header giving the length of its JSON header");
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(h, &end, 10);
    if (!isdigit((unsigned char)*h) || *end || errno || n > req->body_len) {
        http_reply_error(req, 400,
                         V2_HEADER_LEN " \"%s\" is not a length within the "
                                       "%zu-byte body",
                         h, req->body_len);
        return -1;
    }
    if (n == 0) {
        /* A raw binary request needs the input's shape and datatype from the
         * metadata, which a TorchScript schema does not give. */
        http_reply_error(req, 400,
                         "raw binary requests (" V2_HEADER_LEN ": 0) are not "
                         "supported: the model's metadata has no shape or "
                         "datatype to read the bytes with; send a JSON header "
                         "with binary_data_size");
        return -1;
    }
    *jlen = (size_t)n;
    return 0;
}

void handle_v2_infer(http_request *req) {
    model_entry *e = path_model(req);
    size_t jlen;
    if (!e || header_length(req, &jlen)) return;
    infer_job *j = infer_job_new(req, e);
    v2_ctx *c = calloc(1, sizeof *c);
    if (!j || !c) {
        free(c);
        infer_job_free(j);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    j->ctx = c;
    j->free_ctx = ctx_free;
    j->named = 2; /* by name when all names are forward's, else by position */
    char err[ERR_LEN];
    int rc = decode_request(req, jlen, j, c, err, sizeof err);
    if (rc) {
        infer_job_free(j);
        http_reply_error(req, error_http_status(rc), "%s", err);
        return;
    }
    j->reply = reply_v2;
    infer_submit(j, app.predict_q);
}

/* ----------------------------------------------------------- repository */

void handle_v2_repo_index(http_request *req) {
    cJSON *body;
    if (parse_object_body(req, &body)) return;
    int only_ready = 0;
    char err[ERR_LEN];
    int rc = opt_bool(body, "ready", "request", &only_ready, err, sizeof err);
    cJSON_Delete(body);
    if (rc) {
        http_reply_error(req, 400, "%s", err);
        return;
    }
    cJSON *arr = cJSON_CreateArray();
    model_entry *e = configured();
    if (e) {
        model_status st;
        model_get_status(e, &st);
        static const char *states[] = {"UNAVAILABLE", "LOADING", "READY",
                                       "UNLOADING", "UNAVAILABLE"};
        char reason[600] = "";
        if ((st.state == MODEL_NOT_LOADED || st.state == MODEL_ERROR) &&
            model_ready(e, reason, sizeof reason))
            snprintf(reason, sizeof reason, "not loaded; loads on first use");
        if (!only_ready || st.state == MODEL_LOADED) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "name", st.name);
            cJSON_AddStringToObject(m, "version", V2_VERSION);
            cJSON_AddStringToObject(m, "state", states[st.state]);
            cJSON_AddStringToObject(m, "reason", reason);
            cJSON_AddItemToArray(arr, m);
        }
    }
    http_reply_json(req, 200, arr);
}

/* Load, or reload when loaded (the text asks for a reload): the file is
 * checked first so that a reload from a vanished file keeps the model. */
static void do_repo_load(http_request *req, void *arg) {
    model_entry *e = arg;
    model_status st;
    model_get_status(e, &st);
    int already = 0, was;
    double ms, freed;
    model_err err = {0};
    struct stat sb;
    if (st.state == MODEL_LOADED) {
        if (stat(st.path, &sb)) {
            http_reply_error(req, 404,
                             "cannot reload: model file %s: %s; the loaded "
                             "model is kept",
                             st.path, strerror(errno));
            return;
        }
        model_unload(e, &was, &freed);
    }
    int rc = model_load(e, &already, &ms, &err);
    if (rc) {
        app_reply_model_error(req, rc, &err);
        return;
    }
    http_reply_json(req, 200, cJSON_CreateObject());
}

static void do_repo_unload(http_request *req, void *arg) {
    int was;
    double freed;
    model_unload(arg, &was, &freed);
    http_reply_json(req, 200, cJSON_CreateObject());
}

void handle_v2_repo_load(http_request *req) {
    model_entry *e = path_model(req);
    cJSON *body;
    if (!e || parse_object_body(req, &body)) return;
    const cJSON *p =
        body ? cJSON_GetObjectItemCaseSensitive(body, "parameters") : NULL;
    const cJSON *c = cJSON_IsObject(p) ? p->child : NULL;
    while (c && strcmp(c->string, "config") && strncmp(c->string, "file:", 5))
        c = c->next;
    cJSON_Delete(body);
    if (c) {
        http_reply_error(req, 400,
                         "load parameters \"config\" and \"file:...\" are not "
                         "supported: inferd serves MODEL_PATH as it is");
        return;
    }
    app_defer(req, app.admin_q, do_repo_load, e, NULL);
}

void handle_v2_repo_unload(http_request *req) {
    model_entry *e = path_model(req);
    cJSON *body;
    if (!e || parse_object_body(req, &body)) return;
    cJSON_Delete(body); /* unload_dependents: inferd has no dependents */
    app_defer(req, app.admin_q, do_repo_unload, e, NULL);
}
