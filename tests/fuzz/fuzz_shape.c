/* fuzz_shape.c -- libFuzzer target: the binary path's headers, X-Shape and
 * X-Dtype, as handle_predict parses them. Input: "shape\0dtype". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 2);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *dtype = text + strlen(text) + 1;
    backend_tensor t;
    memset(&t, 0, sizeof t);
    char err[512];
    if (tensor_parse_shape(text, &t, err, sizeof err) == 0) {
        /* What decode_raw computes next: the byte size the body must have. */
        size_t n = tensor_numel(&t);
        (void)n;
    }
    (void)tensor_dtype_parse(dtype);
    free(text);
    return 0;
}
