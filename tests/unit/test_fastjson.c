/* test_fastjson.c -- the fast JSON array decoder gives exactly what the
 * cJSON path gives, and declines whatever it does not handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inferd/fastjson.h"
#include "inferd/tensor.h"

/* Decode text both ways; the fast path must agree bitwise with cJSON's. */
static int both(const char *text, dtype_t dt, int expect_fast) {
    backend_tensor a, b;
    size_t end = 0;
    int fast = fastjson_array(text, strlen(text), dt, &a, &end);
    cJSON *root = cJSON_Parse(text);
    char err[512];
    int slow = root ? tensor_from_json(root, dt, "inputs", &b, err, sizeof err)
                    : -1;
    cJSON_Delete(root);
    if (expect_fast) assert_int_equal(fast, 0);
    if (fast == 0) {
        assert_int_equal(end, strlen(text));
        assert_int_equal(slow, 0);
        assert_int_equal(a.ndim, b.ndim);
        for (int i = 0; i < a.ndim; i++) assert_int_equal(a.shape[i], b.shape[i]);
        assert_int_equal(a.nbytes, b.nbytes);
        assert_memory_equal(a.data, b.data, a.nbytes);
        tensor_free(&a);
    }
    if (slow == 0) tensor_free(&b);
    return fast;
}

static void test_fastjson_matches_cjson_shapes(void **state) {
    (void)state;
    both("[[1,2,3],[4,5,6]]", DTYPE_FLOAT32, 1);
    both("[ [ 0.1 , -2.5e-3 ] ,\n [1E5, -0] ]", DTYPE_FLOAT32, 1);
    both("[[[1],[2]],[[3],[4]]]", DTYPE_FLOAT64, 1);
    both("[]", DTYPE_FLOAT32, 1);
    both("[[],[]]", DTYPE_FLOAT32, 1);
    both("[1,2,3]", DTYPE_INT64, 1);
    both("[-2147483648, 2147483647]", DTYPE_INT32, 1);
}

static void test_fastjson_matches_cjson_hard_numbers(void **state) {
    (void)state;
    /* Beyond the exact fast path: 20+ digits, big exponents, subnormals. */
    both("[0.1000000000000000055511151231257827, 123456789012345678901]",
         DTYPE_FLOAT64, 1);
    both("[1e-300, 2.2250738585072014e-308, 1e308, 4.9e-324]", DTYPE_FLOAT64,
         1);
    both("[0.0000000000000000000001, 1e-45, 3.4028234e38]", DTYPE_FLOAT32, 1);
    both("[9007199254740993, 9007199254740992]", DTYPE_FLOAT64, 1);
}

static void test_fastjson_random_floats_match(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ULL;
    char text[64 * 1024];
    for (int round = 0; round < 50; round++) {
        size_t len = 0;
        len += (size_t)snprintf(text + len, sizeof text - len, "[");
        for (int i = 0; i < 200; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint32_t bits = (uint32_t)x;
            float f;
            memcpy(&f, &bits, 4);
            if (f != f || f - f != 0) f = 1.5f; /* no NaN or inf in JSON */
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%.*g",
                                    i ? "," : "", 6 + (int)(x >> 60) % 12,
                                    (double)f);
        }
        snprintf(text + len, sizeof text - len, "]");
        both(text, DTYPE_FLOAT32, 1);
        both(text, DTYPE_FLOAT64, 1);
    }
}

/* What Python sends for a float32 tensor: 17-digit reprs of the floats,
 * which take the float32 shortcut instead of strtod. */
static void test_fastjson_python_reprs_match(void **state) {
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    char text[64 * 1024];
    for (int round = 0; round < 100; round++) {
        size_t len = (size_t)snprintf(text, sizeof text, "[");
        for (int i = 0; i < 300; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            float f = (float)((double)(x >> 11) / 9007199254740992.0 * 6 - 3);
            if (round % 2) f *= 1e-30f; /* small, and subnormal, values */
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%.17g",
                                    i ? "," : "", (double)f);
        }
        snprintf(text + len, sizeof text - len, "]");
        both(text, DTYPE_FLOAT32, 1);
    }
}

static void test_fastjson_declines_the_unusual(void **state) {
    (void)state;
    static const char *cases[] = {
        "[[1,2],[3]]",     "[[1,2],3]",  "[1,[2]]",   "[\"a\"]",
        "[null]",          "[true]",     "[1,]",      "[01]",
        "[1.]",            "[.5]",       "[1e999]",   "[[1],[]]",
        "[1 2]",           "[",          "{\"a\":1}", "[NaN]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(both(cases[i], DTYPE_FLOAT32, 0), FASTJSON_DECLINE);
    /* Values the dtype cannot hold, and dtypes left to the cJSON path. */
    assert_int_equal(both("[1.5]", DTYPE_INT64, 0), FASTJSON_DECLINE);
    assert_int_equal(both("[2147483648]", DTYPE_INT32, 0), FASTJSON_DECLINE);
    assert_int_equal(both("[1]", DTYPE_UINT8, 0), FASTJSON_DECLINE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fastjson_matches_cjson_shapes),
        cmocka_unit_test(test_fastjson_matches_cjson_hard_numbers),
        cmocka_unit_test(test_fastjson_random_floats_match),
        cmocka_unit_test(test_fastjson_python_reprs_match),
        cmocka_unit_test(test_fastjson_declines_the_unusual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
