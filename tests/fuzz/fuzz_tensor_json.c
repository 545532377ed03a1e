/* fuzz_tensor_json.c -- libFuzzer target: JSON text -> tensor, the path of
 * every /predict body, both ways: the fast decoder and the cJSON one. When
 * the fast one accepts, both must give the same tensor bit for bit. The
 * first byte picks the dtype. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/fastjson.h"
#include "inferd/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    dtype_t dt = (dtype_t)(data[0] % DTYPE_COUNT);
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    backend_tensor fast;
    size_t end = 0;
    int fast_rc = fastjson_array(text, size - 1, dt, &fast, &end);
    int fast_whole = fast_rc == 0 && end == size - 1;
    cJSON *root = cJSON_ParseWithLength(text, size - 1);
    backend_tensor t;
    char err[512];
    int slow_rc = root ? tensor_from_json(root, dt, "inputs", &t, err,
                                          sizeof err)
                       : -1;
    if (fast_whole) {
        /* The fast path accepted the whole text: cJSON must agree. */
        if (slow_rc != 0 || t.ndim != fast.ndim || t.nbytes != fast.nbytes ||
            memcmp(t.shape, fast.shape, sizeof t.shape) ||
            memcmp(t.data, fast.data, t.nbytes))
            __builtin_trap();
    }
    if (fast_rc == 0) tensor_free(&fast);
    if (slow_rc == 0) {
        char *out = tensor_to_json_text(&t);
        free(out);
        tensor_free(&t);
    }
    cJSON_Delete(root);
    free(text);
    return 0;
}
