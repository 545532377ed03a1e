/* test_tensor_v2.c -- the Open Inference Protocol pieces of tensor.c: v2
 * datatype names, shapes from JSON, data decoded into a declared shape
 * (flat or nested, counts checked first) and raw binary tensors. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>
#include <string.h>

#include "inferd/error.h"
#include "inferd/tensor.h"

/* Decode json into shape (ndim dims) as dt; returns rc, err filled. */
static int shaped(const char *json, dtype_t dt, const int64_t *shape, int ndim,
                  backend_tensor *t, char *err) {
    cJSON *v = cJSON_Parse(json);
    if (!v) fail_msg("fixture JSON does not parse: %s", json);
    err[0] = '\0';
    int rc = tensor_from_json_shaped(v, dt, shape, ndim, "inputs[0].data", t,
                                     err, ERR_LEN);
    cJSON_Delete(v);
    return rc;
}

static void expect_shaped_error(const char *json, dtype_t dt,
                                const int64_t *shape, int ndim,
                                const char *want) {
    backend_tensor t;
    char err[ERR_LEN];
    int rc = shaped(json, dt, shape, ndim, &t, err);
    if (rc != ERR_BAD_REQUEST)
        fail_msg("%s: rc %d, want ERR_BAD_REQUEST", json, rc);
    assert_null(t.data);
    if (!strstr(err, want))
        fail_msg("%s: message \"%s\" lacks \"%s\"", json, err, want);
}

static void test_v2_names(void **state) {
    (void)state;
    static const char *names[] = {"BOOL",  "UINT8", "INT8", "INT16", "INT32",
                                  "INT64", "FP16",  "FP32", "FP64"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int dt = tensor_dtype_parse_v2(names[i]);
        assert_true(dt >= 0);
        assert_string_equal(tensor_dtype_name_v2((dtype_t)dt), names[i]);
    }
    assert_int_equal(tensor_dtype_parse_v2("FP32"), DTYPE_FLOAT32);
    assert_int_equal(tensor_dtype_parse_v2("fp32"), DTYPE_FLOAT32);
    assert_int_equal(tensor_dtype_parse_v2("INT64"), DTYPE_INT64);
    assert_int_equal(tensor_dtype_parse_v2("BOOL"), DTYPE_BOOL);
    /* v2 types inferd has no dtype for, and non-v2 names. */
    const char *bad[] = {"UINT16", "UINT32",  "UINT64", "BYTES",
                         "BF16",   "float32", "",       "FP3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tensor_dtype_parse_v2(bad[i]), -1);
    assert_string_equal(tensor_dtype_name_v2(DTYPE_COUNT), "UNKNOWN");
}

static void test_shape_from_json(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    cJSON *v = cJSON_Parse("[2, 3, 0]");
    assert_int_equal(tensor_shape_from_json(v, "shape", &t, err, sizeof err),
                     0);
    assert_int_equal(t.ndim, 3);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.shape[2], 0);
    cJSON_Delete(v);
    v = cJSON_Parse("[]");
    assert_int_equal(tensor_shape_from_json(v, "shape", &t, err, sizeof err),
                     0);
    assert_int_equal(t.ndim, 0);
    cJSON_Delete(v);
    const char *bad[] = {"[-1]",      "[1.5]", "[\"2\"]", "3",
                         "{\"a\":1}", "[[2]]", "[1e300]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = cJSON_Parse(bad[i]);
        assert_int_equal(
            tensor_shape_from_json(v, "inputs[0].shape", &t, err, sizeof err),
            ERR_BAD_REQUEST);
        assert_non_null(strstr(err, "inputs[0].shape"));
        cJSON_Delete(v);
    }
    v = cJSON_Parse("[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
                    "1,1,1,1,1]");
    assert_int_equal(tensor_shape_from_json(v, "shape", &t, err, sizeof err),
                     ERR_BAD_REQUEST);
    assert_non_null(strstr(err, "more than 32 dimensions"));
    cJSON_Delete(v);
}

static void test_flat_and_nested_agree(void **state) {
    (void)state;
    const int64_t shape[] = {2, 3};
    backend_tensor a, b;
    char err[ERR_LEN];
    assert_int_equal(shaped("[1,2,3,4,5,6]", DTYPE_FLOAT32, shape, 2, &a, err),
                     0);
    assert_int_equal(
        shaped("[[1,2,3],[4,5,6]]", DTYPE_FLOAT32, shape, 2, &b, err), 0);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.nbytes, 6 * sizeof(float));
    assert_memory_equal(a.data, b.data, a.nbytes);
    assert_true(((float *)a.data)[5] == 6.0f);
    tensor_free(&a);
    tensor_free(&b);
}

static void test_shaped_dtypes(void **state) {
    (void)state;
    const int64_t shape[] = {3};
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(
        shaped("[-1, 0, 9007199254740992]", DTYPE_INT64, shape, 1, &t, err),
        0);
    assert_true(((int64_t *)t.data)[0] == -1);
    assert_true(((int64_t *)t.data)[2] == 9007199254740992LL);
    tensor_free(&t);
    assert_int_equal(shaped("[true, false, 1]", DTYPE_BOOL, shape, 1, &t, err),
                     0);
    assert_memory_equal(t.data, "\1\0\1", 3);
    tensor_free(&t);
    assert_int_equal(
        shaped("[1.5, -2, 65504]", DTYPE_FLOAT16, shape, 1, &t, err), 0);
    assert_true(tensor_half_to_float(((uint16_t *)t.data)[0]) == 1.5f);
    assert_true(tensor_half_to_float(((uint16_t *)t.data)[2]) == 65504.0f);
    tensor_free(&t);
    expect_shaped_error("[1, 2.5, 3]", DTYPE_INT32, shape, 1,
                        "inputs[0].data[1] = 2.5 is not an integer");
    expect_shaped_error("[1, 300, 3]", DTYPE_UINT8, shape, 1,
                        "inputs[0].data[1] = 300 is not in range");
    expect_shaped_error("[1, \"a\", 3]", DTYPE_FLOAT32, shape, 1,
                        "inputs[0].data[1] is a string");
}

static void test_scalars_and_empty(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    /* shape [] holds one element: [x] or a bare x. */
    assert_int_equal(shaped("[7]", DTYPE_INT64, NULL, 0, &t, err), 0);
    assert_int_equal(t.ndim, 0);
    assert_true(*(int64_t *)t.data == 7);
    tensor_free(&t);
    assert_int_equal(shaped("7", DTYPE_INT64, NULL, 0, &t, err), 0);
    assert_true(*(int64_t *)t.data == 7);
    tensor_free(&t);
    const int64_t one[] = {1, 1};
    assert_int_equal(shaped("2.5", DTYPE_FLOAT64, one, 2, &t, err), 0);
    assert_int_equal(t.ndim, 2);
    tensor_free(&t);
    const int64_t empty[] = {0, 4};
    assert_int_equal(shaped("[]", DTYPE_FLOAT32, empty, 2, &t, err), 0);
    assert_int_equal(t.nbytes, 0);
    assert_int_equal(t.shape[1], 4);
    tensor_free(&t);
    const int64_t three[] = {3};
    expect_shaped_error("7", DTYPE_INT64, three, 1,
                        "has 1 element but shape [3] needs 3");
}

static void test_shaped_count_errors(void **state) {
    (void)state;
    const int64_t shape[] = {2, 4};
    expect_shaped_error(
        "[1,2,3,4,5,6]", DTYPE_FLOAT32, shape, 2,
        "inputs[0].data has 6 elements but shape [2,4] needs 8");
    expect_shaped_error("[[1,2],[3,4]]", DTYPE_FLOAT32, shape, 2,
                        "has 4 elements but shape [2,4] needs 8");
    /* The right count nested the wrong way. */
    expect_shaped_error("[[1,2],[3,4],[5,6],[7,8]]", DTYPE_FLOAT32, shape, 2,
                        "is nested as [4,2] but the shape is [2,4]");
    expect_shaped_error("[[1,2,3,4,5,6,7,8]]", DTYPE_FLOAT32, shape, 2,
                        "is nested as [1,8]");
    /* Ragged with the right total. */
    expect_shaped_error("[[1,2,3,4],[5,6,[7,8]]]", DTYPE_FLOAT32, shape, 2,
                        "ragged");
    /* Flat with an array among numbers. */
    const int64_t three[] = {3};
    expect_shaped_error("[1,[2],3]", DTYPE_FLOAT32, three, 1,
                        "inputs[0].data[1]");
    /* A huge declared shape fails on the count, before any allocation. */
    const int64_t huge[] = {1000000, 1000000};
    expect_shaped_error("[1,2]", DTYPE_FLOAT32, huge, 2,
                        "needs 1000000000000");
    const int64_t overflow[] = {1LL << 40, 1LL << 40};
    expect_shaped_error("[1]", DTYPE_FLOAT32, overflow, 2, "too large");
}

static void test_from_bytes(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    const float f[6] = {1, 2, 3, 4, 5, 6};
    const int64_t shape[] = {2, 3};
    assert_int_equal(tensor_from_bytes(f, sizeof f, DTYPE_FLOAT32, shape, 2,
                                       "inputs[0]", &t, err, sizeof err),
                     0);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.nbytes, sizeof f);
    assert_memory_equal(t.data, f, sizeof f);
    assert_true(t.data != (void *)f); /* a copy: the body is freed later */
    tensor_free(&t);
    assert_int_equal(tensor_from_bytes(f, 20, DTYPE_FLOAT32, shape, 2,
                                       "inputs[0]", &t, err, sizeof err),
                     ERR_BAD_REQUEST);
    assert_null(t.data);
    assert_non_null(strstr(err, "inputs[0] has 20 bytes but shape [2,3] of "
                                "float32 needs 24"));
    const uint8_t b[3] = {0, 1, 2};
    const int64_t three[] = {3};
    assert_int_equal(tensor_from_bytes(b, 3, DTYPE_BOOL, three, 1, "inputs[1]",
                                       &t, err, sizeof err),
                     ERR_BAD_REQUEST);
    assert_non_null(strstr(err, "byte 2 is 2"));
    assert_int_equal(tensor_from_bytes(b, 2, DTYPE_BOOL, three, 0, "x", &t,
                                       err, sizeof err),
                     ERR_BAD_REQUEST); /* shape [] needs one byte */
    const int64_t empty[] = {0};
    assert_int_equal(tensor_from_bytes(NULL, 0, DTYPE_INT64, empty, 1, "x", &t,
                                       err, sizeof err),
                     0);
    assert_int_equal(t.nbytes, 0);
    tensor_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_names),
        cmocka_unit_test(test_shape_from_json),
        cmocka_unit_test(test_flat_and_nested_agree),
        cmocka_unit_test(test_shaped_dtypes),
        cmocka_unit_test(test_scalars_and_empty),
        cmocka_unit_test(test_shaped_count_errors),
        cmocka_unit_test(test_from_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
