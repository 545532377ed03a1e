/* fuzz_v2.c -- libFuzzer target: the v2 infer request decoder, JSON header
 * plus binary tensor data (Inference-Header-Content-Length). The decoder is
 * file-static, so the handler file is compiled into this target. Input: two
 * bytes of JSON header length (little-endian), then the body. */
#include "../../src/handlers_v2.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t jlen = (size_t)data[0] | (size_t)data[1] << 8;
    size -= 2;
    if (jlen > size) jlen = size;
    http_request req;
    memset(&req, 0, sizeof req);
    req.body = malloc(size + 1);
    if (!req.body) return 0;
    memcpy(req.body, data + 2, size);
    req.body[size] = '\0';
    req.body_len = size;
    infer_job *j = infer_job_new(&req, NULL);
    v2_ctx *c = calloc(1, sizeof *c);
    char err[ERR_LEN];
    if (j && c) (void)decode_request(&req, jlen, j, c, err, sizeof err);
    infer_job_free(j);
    ctx_free(c);
    free(req.body);
    return 0;
}
