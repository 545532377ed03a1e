/* fuzz_tensor_json.c -- libFuzzer target: JSON text -> cJSON -> tensor, the
 * path of every /predict body. The first byte picks the dtype. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    dtype_t dt = (dtype_t)(data[0] % DTYPE_COUNT);
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    cJSON *root = cJSON_ParseWithLength(text, size - 1);
    if (root) {
        backend_tensor t;
        char err[512];
        if (tensor_from_json(root, dt, "inputs", &t, err, sizeof err) == 0) {
            char *out = tensor_to_json_text(&t);
            free(out);
            tensor_free(&t);
        }
        cJSON_Delete(root);
    }
    free(text);
    return 0;
}
