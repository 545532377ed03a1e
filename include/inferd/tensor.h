/* tensor.h -- tensors to and from JSON: nested number arrays in, and the
 * same shape of JSON text out, with the dtype names users write.
 *
 * Decoded tensors own a malloc'd buffer (tensor_free releases it). Error
 * messages name the place in the input, e.g. "inputs[1] has 3 elements,
 * expected 4". Thread-safe. */
#ifndef INFERD_TENSOR_H
#define INFERD_TENSOR_H

#include <cJSON.h>
#include <stddef.h>

#include "inferd/backend.h"

/* "float32" etc. (also "float", "double", "half", "long", "int"); -1 if
 * unknown. */
int tensor_dtype_parse(const char *name);
const char *tensor_dtype_name(dtype_t dt);

/* Decode a JSON number, bool or nested array into *out. where names the
 * value in messages ("inputs", "inputs.a"). 0 or ERR_BAD_REQUEST. */
int tensor_from_json(const cJSON *value, dtype_t dt, const char *where,
                     backend_tensor *out, char *err, size_t errlen);

/* Parse "1,3,224,224" into t's ndim and shape. 0 or ERR_BAD_REQUEST. */
int tensor_parse_shape(const char *text, backend_tensor *t, char *err,
                       size_t errlen);

/* Elements in a tensor (product of its shape). */
size_t tensor_numel(const backend_tensor *t);

/* The tensor's values as JSON text (nested arrays, or a scalar for a 0-dim
 * or is_scalar tensor); malloc'd, NULL when out of memory. float32 values
 * are written with the fewest digits that read back to the same float;
 * NaN and infinities, which JSON lacks, become null. */
char *tensor_to_json_text(const backend_tensor *t);

/* The shape as a JSON array. */
cJSON *tensor_shape_json(const backend_tensor *t);

void tensor_free(backend_tensor *t);

/* IEEE half <-> float, for float16 tensors. */
float tensor_half_to_float(uint16_t h);
uint16_t tensor_float_to_half(float f);

/* --- Open Inference Protocol (KServe v2) codec pieces --- */

/* "FP32", "INT64", "BOOL", ... (case-insensitive) -> dtype; -1 for the v2
 * names inferd has no dtype for (UINT16/32/64, BF16, BYTES) and unknown
 * names. */
int tensor_dtype_parse_v2(const char *name);
const char *tensor_dtype_name_v2(dtype_t dt);

/* Read a JSON array of non-negative integers (a v2 "shape") into t's ndim
 * and shape. where names it in messages. 0 or ERR_BAD_REQUEST. */
int tensor_shape_from_json(const cJSON *shape, const char *where,
                           backend_tensor *t, char *err, size_t errlen);

/* Decode value into a tensor of the given shape. value is a flat array of
 * numel elements in row-major order, an array nested exactly as the shape,
 * or (when the shape holds one element) a bare number or bool. The element
 * count is checked before the buffer is allocated. 0 or ERR_BAD_REQUEST. */
int tensor_from_json_shaped(const cJSON *value, dtype_t dt,
                            const int64_t *shape, int ndim, const char *where,
                            backend_tensor *out, char *err, size_t errlen);

/* Copy len raw little-endian bytes into a tensor of dt and shape; len must
 * be numel * element size, and bool bytes 0 or 1. 0 or ERR_BAD_REQUEST. */
int tensor_from_bytes(const void *data, size_t len, dtype_t dt,
                      const int64_t *shape, int ndim, const char *where,
                      backend_tensor *out, char *err, size_t errlen);

#endif
