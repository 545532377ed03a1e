/* fastjson.h -- the fast path of JSON tensor decoding: nested number arrays
 * parsed straight from the text into the tensor buffer, without building a
 * cJSON node per number.
 *
 * It only ever succeeds or declines: on anything unusual (a ragged array, a
 * string, a value out of range, numbers it cannot convert exactly) it
 * returns FASTJSON_DECLINE and the caller runs the cJSON path, which
 * produces the precise error message or the same values. Values are the
 * same as that path's: the number's correctly rounded double, then cast to
 * the dtype. Thread-safe. */
#ifndef INFERD_FASTJSON_H
#define INFERD_FASTJSON_H

#include <stddef.h>

#include "inferd/backend.h"

#define FASTJSON_DECLINE 1

/* Past the bracketed array at p (a '['), or NULL when it does not end
 * before end or holds a string or an object: the fast path's first pass,
 * which finds where "inputs" ends without reading its numbers. */
const char *fastjson_skip_array(const char *p, const char *end);

/* Decode the array that starts at text[0] ('[' after optional spaces) into
 * out (malloc'd data). On success returns 0 and sets *end past the array. */
int fastjson_array(const char *text, size_t len, dtype_t dt,
                   backend_tensor *out, size_t *end);

#endif
