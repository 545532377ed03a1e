/* test_tensor.c -- JSON nested arrays to tensors and back: dtype names,
 * decoding with error messages that name the place, shortest float text,
 * and IEEE half conversion. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/error.h"
#include "inferd/tensor.h"

/* ------------------------------------------------------------- helpers */

/* Decode JSON text as dtype dt; returns the rc, err filled. */
static int decode(const char *json, dtype_t dt, backend_tensor *t, char *err,
                  size_t errlen) {
    cJSON *v = cJSON_Parse(json);
    if (!v) fail_msg("fixture JSON does not parse: %s", json);
    err[0] = '\0';
    int rc = tensor_from_json(v, dt, "inputs", t, err, errlen);
    cJSON_Delete(v);
    return rc;
}

/* Decoding must fail with ERR_BAD_REQUEST and a message containing want. */
static void expect_error(const char *json, dtype_t dt, const char *want) {
    backend_tensor t;
    char err[ERR_LEN];
    int rc = decode(json, dt, &t, err, sizeof err);
    if (rc != ERR_BAD_REQUEST)
        fail_msg("%s as %s: rc %d, want ERR_BAD_REQUEST", json,
                 tensor_dtype_name(dt), rc);
    assert_null(t.data);
    if (!strstr(err, want))
        fail_msg("%s as %s: message \"%s\" lacks \"%s\"", json,
                 tensor_dtype_name(dt), err, want);
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* xorshift32, fixed seed: the same floats on every run. */
static uint32_t rng_state = 0x9e3779b9u;
static uint32_t rng(void) {
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

/* A tensor over caller-owned data (not freed). */
static backend_tensor view(dtype_t dt, void *data, size_t nbytes, int ndim,
                           const int64_t *shape) {
    backend_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    t.data = data;
    t.nbytes = nbytes;
    return t;
}

static void expect_text(const backend_tensor *t, const char *want) {
    char *s = tensor_to_json_text(t);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

/* --------------------------------------------------------------- dtype */

static void test_tensor_dtype_round_trip(void **state) {
    (void)state;
    for (int dt = 0; dt < DTYPE_COUNT; dt++) {
        const char *name = tensor_dtype_name((dtype_t)dt);
        assert_string_not_equal(name, "unknown");
        assert_int_equal(tensor_dtype_parse(name), dt);
    }
    assert_string_equal(tensor_dtype_name(DTYPE_FLOAT32), "float32");
    assert_string_equal(tensor_dtype_name(DTYPE_UINT8), "uint8");
    assert_string_equal(tensor_dtype_name(DTYPE_BOOL), "bool");
    assert_string_equal(tensor_dtype_name(DTYPE_COUNT), "unknown");
    assert_string_equal(tensor_dtype_name((dtype_t)-1), "unknown");
}

static void test_tensor_dtype_aliases(void **state) {
    (void)state;
    assert_int_equal(tensor_dtype_parse("float"), DTYPE_FLOAT32);
    assert_int_equal(tensor_dtype_parse("double"), DTYPE_FLOAT64);
    assert_int_equal(tensor_dtype_parse("half"), DTYPE_FLOAT16);
    assert_int_equal(tensor_dtype_parse("long"), DTYPE_INT64);
    assert_int_equal(tensor_dtype_parse("int"), DTYPE_INT32);
    assert_int_equal(tensor_dtype_parse("FLOAT32"), DTYPE_FLOAT32);
    assert_int_equal(tensor_dtype_parse("Int64"), DTYPE_INT64);
    assert_int_equal(tensor_dtype_parse("float128"), -1);
    assert_int_equal(tensor_dtype_parse("int4"), -1);
    assert_int_equal(tensor_dtype_parse(""), -1);
    assert_int_equal(tensor_dtype_parse("float32 "), -1);
}

/* -------------------------------------------------------------- decode */

static void test_tensor_decode_2d_float32_exact(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(decode("[[0.1, 0.2, 0.3], [-1.5, 1e-7, 3.4028234e38]]",
                            DTYPE_FLOAT32, &t, err, sizeof err),
                     0);
    assert_int_equal(t.dtype, DTYPE_FLOAT32);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(tensor_numel(&t), 6);
    assert_int_equal(t.nbytes, 6 * sizeof(float));
    const float want[] = {0.1f, 0.2f, 0.3f, -1.5f, 1e-7f, 3.4028234e38f};
    const float *got = t.data;
    for (int i = 0; i < 6; i++)
        if (float_bits(got[i]) != float_bits(want[i]))
            fail_msg("element %d: %08x, want %08x", i, float_bits(got[i]),
                     float_bits(want[i]));
    tensor_free(&t);
    assert_null(t.data);
}

static void test_tensor_decode_other_dtypes(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(decode("[0.1, -2]", DTYPE_FLOAT64, &t, err, sizeof err),
                     0);
    assert_true(((double *)t.data)[0] == 0.1);
    assert_true(((double *)t.data)[1] == -2.0);
    tensor_free(&t);

    assert_int_equal(decode("[-9007199254740992, 9007199254740992]",
                            DTYPE_INT64, &t, err, sizeof err),
                     0);
    assert_true(((int64_t *)t.data)[0] == -9007199254740992LL);
    assert_true(((int64_t *)t.data)[1] == 9007199254740992LL);
    tensor_free(&t);

    assert_int_equal(
        decode("[-2147483648, 2147483647]", DTYPE_INT32, &t, err, sizeof err),
        0);
    assert_int_equal(((int32_t *)t.data)[0], INT32_MIN);
    assert_int_equal(((int32_t *)t.data)[1], INT32_MAX);
    tensor_free(&t);

    assert_int_equal(
        decode("[-32768, 32767]", DTYPE_INT16, &t, err, sizeof err), 0);
    assert_int_equal(((int16_t *)t.data)[0], INT16_MIN);
    assert_int_equal(((int16_t *)t.data)[1], INT16_MAX);
    tensor_free(&t);

    assert_int_equal(
        decode("[-128, 127, 2.0]", DTYPE_INT8, &t, err, sizeof err), 0);
    assert_int_equal(((int8_t *)t.data)[0], -128);
    assert_int_equal(((int8_t *)t.data)[1], 127);
    assert_int_equal(((int8_t *)t.data)[2], 2);
    tensor_free(&t);

    assert_int_equal(decode("[0, 255]", DTYPE_UINT8, &t, err, sizeof err), 0);
    assert_int_equal(((uint8_t *)t.data)[1], 255);
    tensor_free(&t);

    assert_int_equal(
        decode("[1.0, -65504, 65504]", DTYPE_FLOAT16, &t, err, sizeof err), 0);
    assert_int_equal(((uint16_t *)t.data)[0], 0x3c00);
    assert_int_equal(((uint16_t *)t.data)[1], 0xfbff);
    assert_int_equal(((uint16_t *)t.data)[2], 0x7bff);
    tensor_free(&t);
}

static void test_tensor_decode_shape_inference(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(decode("[[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]]",
                            DTYPE_INT32, &t, err, sizeof err),
                     0);
    assert_int_equal(t.ndim, 3);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.shape[2], 2);
    assert_int_equal(tensor_numel(&t), 12);
    const int32_t *v = t.data;
    for (int i = 0; i < 12; i++)
        assert_int_equal(v[i], i + 1); /* row-major */
    cJSON *shape = tensor_shape_json(&t);
    char *s = cJSON_PrintUnformatted(shape);
    assert_string_equal(s, "[2,3,2]");
    free(s);
    cJSON_Delete(shape);
    tensor_free(&t);

    assert_int_equal(decode("[5]", DTYPE_INT64, &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(t.shape[0], 1);
    tensor_free(&t);
}

static void test_tensor_decode_ragged_error(void **state) {
    (void)state;
    expect_error("[[1,2,3,4],[1,2,3]]", DTYPE_FLOAT32,
                 "inputs[1] has 3 elements, expected 4");
    expect_error("[[1,2],[3,4],[5,6,7]]", DTYPE_FLOAT32,
                 "inputs[2] has 3 elements, expected 2");
    /* Deeper than the first element... */
    expect_error("[1,[2]]", DTYPE_FLOAT32, "inputs[1] is an array");
    /* ...or shallower. */
    expect_error("[[1,2],3]", DTYPE_FLOAT32, "inputs[1] is not an array");
    expect_error("[[[1],[2]],[[3],[4,5]]]", DTYPE_INT32,
                 "inputs[1][1] has 2 elements, expected 1");
}

static void test_tensor_decode_non_number_leaf(void **state) {
    (void)state;
    expect_error("[[1,2,\"x\"]]", DTYPE_FLOAT32,
                 "inputs[0][2] is a string, expected a number");
    expect_error("[[1,2,null]]", DTYPE_FLOAT32,
                 "inputs[0][2] is null, expected a number");
    expect_error("[[1,2,{}]]", DTYPE_INT32, "inputs[0][2] is an object");
    expect_error("\"abc\"", DTYPE_FLOAT32, "inputs is a string");
    expect_error("null", DTYPE_FLOAT32, "inputs is null");
}

static void test_tensor_decode_out_of_range(void **state) {
    (void)state;
    expect_error("[127, 128]", DTYPE_INT8,
                 "inputs[1] = 128 is not in range for int8");
    expect_error("[-129]", DTYPE_INT8, "inputs[0] = -129 is not in range");
    expect_error("[-1]", DTYPE_UINT8,
                 "inputs[0] = -1 is not in range for uint8");
    expect_error("[0, 256]", DTYPE_UINT8,
                 "inputs[1] = 256 is not in range for uint8");
    expect_error("[32768]", DTYPE_INT16, "not in range for int16");
    expect_error("[2147483648]", DTYPE_INT32, "not in range for int32");
    expect_error("[9223372036854775808]", DTYPE_INT64,
                 "not in range for int64");
    expect_error("[[1],[1e39]]", DTYPE_FLOAT32,
                 "inputs[1][0] = 1e+39 is out of range for float32");
    expect_error("[-1e39]", DTYPE_FLOAT32, "out of range for float32");
    expect_error("[65536]", DTYPE_FLOAT16, "out of range for float16");
}

static void test_tensor_decode_non_integer_for_int(void **state) {
    (void)state;
    expect_error("[1, 2.5]", DTYPE_INT32,
                 "inputs[1] = 2.5 is not an integer for int32");
    expect_error("[0.1]", DTYPE_INT64, "is not an integer for int64");
    expect_error("[-0.5]", DTYPE_INT8, "is not an integer for int8");
    expect_error("[1.5]", DTYPE_UINT8, "is not an integer for uint8");
    expect_error("[0.5]", DTYPE_BOOL, "is not an integer for bool");
}

static void test_tensor_decode_bools(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(
        decode("[true, false, 1, 0]", DTYPE_BOOL, &t, err, sizeof err), 0);
    const uint8_t want[] = {1, 0, 1, 0};
    assert_memory_equal(t.data, want, 4);
    tensor_free(&t);
    /* Bools are 1 and 0 in number dtypes. */
    assert_int_equal(
        decode("[true, false]", DTYPE_FLOAT32, &t, err, sizeof err), 0);
    assert_true(((float *)t.data)[0] == 1.0f);
    assert_true(((float *)t.data)[1] == 0.0f);
    tensor_free(&t);
    assert_int_equal(decode("true", DTYPE_INT64, &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 0);
    assert_true(*(int64_t *)t.data == 1);
    tensor_free(&t);
    expect_error("[2]", DTYPE_BOOL, "inputs[0] = 2 is not in range for bool");
}

/* n nested arrays around a 1. */
static char *nested(int n) {
    char *s = malloc((size_t)n * 2 + 2);
    memset(s, '[', (size_t)n);
    s[n] = '1';
    memset(s + n + 1, ']', (size_t)n);
    s[2 * n + 1] = '\0';
    return s;
}

static void test_tensor_decode_dimension_limit(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    char *ok = nested(BACKEND_MAX_DIMS);
    assert_int_equal(decode(ok, DTYPE_FLOAT32, &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, BACKEND_MAX_DIMS);
    assert_int_equal(tensor_numel(&t), 1);
    tensor_free(&t);
    free(ok);
    char *deep = nested(BACKEND_MAX_DIMS + 1);
    expect_error(deep, DTYPE_FLOAT32, "inputs has more than 32 dimensions");
    free(deep);
}

static void test_tensor_decode_scalar_0dim(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(decode("2.5", DTYPE_FLOAT32, &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 0);
    assert_int_equal(tensor_numel(&t), 1);
    assert_int_equal(t.nbytes, sizeof(float));
    assert_true(*(float *)t.data == 2.5f);
    expect_text(&t, "2.5");
    cJSON *shape = tensor_shape_json(&t);
    char *s = cJSON_PrintUnformatted(shape);
    assert_string_equal(s, "[]");
    free(s);
    cJSON_Delete(shape);
    tensor_free(&t);
    expect_error("300", DTYPE_UINT8, "inputs = 300 is not in range");
}

static void test_tensor_decode_empty_array(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(decode("[]", DTYPE_FLOAT32, &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(t.shape[0], 0);
    assert_int_equal(tensor_numel(&t), 0);
    assert_int_equal(t.nbytes, 0);
    assert_non_null(t.data);
    expect_text(&t, "[]");
    tensor_free(&t);

    assert_int_equal(decode("[[],[]]", DTYPE_INT32, &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 0);
    expect_text(&t, "[[],[]]");
    tensor_free(&t);

    expect_error("[[],[1]]", DTYPE_INT32,
                 "inputs[1] has 1 elements, expected 0");
}

static void test_tensor_decode_where_names_input(void **state) {
    (void)state;
    cJSON *v = cJSON_Parse("{\"a\": [[1, 2], [3]]}");
    backend_tensor t;
    char err[ERR_LEN];
    int rc = tensor_from_json(cJSON_GetObjectItem(v, "a"), DTYPE_FLOAT32,
                              "inputs.a", &t, err, sizeof err);
    cJSON_Delete(v);
    assert_int_equal(rc, ERR_BAD_REQUEST);
    assert_non_null(strstr(err, "inputs.a[1] has 1 elements, expected 2"));
}

/* -------------------------------------------------------------- encode */

/* Split "[a,b,c]" into its numbers. */
static size_t split_numbers(char *text, char **out, size_t max) {
    size_t n = 0;
    assert_int_equal(text[0], '[');
    char *sp;
    for (char *tok = strtok_r(text + 1, ",]", &sp); tok && n < max;
         tok = strtok_r(NULL, ",]", &sp))
        out[n++] = tok;
    return n;
}

/* Significant digits of a %g text ("100" and "1e+02" both have 1). */
static int sig_digits(const char *s) {
    char digits[64];
    size_t n = 0;
    for (; *s && *s != 'e' && n < sizeof digits; s++)
        if (*s >= '0' && *s <= '9' && (n || *s != '0')) digits[n++] = *s;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return n ? (int)n : 1;
}

static void test_tensor_encode_float32_shortest_round_trip(void **state) {
    (void)state;
    enum { N = 20000 };
    float *v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N;) {
        float f = bits_float(rng());
        if (!isfinite(f)) continue;
        v[i++] = f;
    }
    /* Some values with few digits, and edge cases. */
    v[0] = 0.1f, v[1] = 1.0f / 3, v[2] = 16777216.0f, v[3] = 3.4028235e38f,
    v[4] = 1.17549435e-38f, v[5] = 1.4e-45f, v[6] = -0.0f, v[7] = 0.0f,
    v[8] = 100.0f, v[9] = 1e-7f, v[10] = 123456.789f;
    int64_t shape[1] = {N};
    backend_tensor t = view(DTYPE_FLOAT32, v, N * sizeof *v, 1, shape);
    char *text = tensor_to_json_text(&t);
    assert_non_null(text);
    /* Valid JSON with N numbers. */
    cJSON *parsed = cJSON_Parse(text);
    assert_non_null(parsed);
    assert_int_equal(cJSON_GetArraySize(parsed), N);
    cJSON_Delete(parsed);

    char **nums = malloc(N * sizeof *nums);
    assert_int_equal(split_numbers(text, nums, N), N);
    for (size_t i = 0; i < N; i++) {
        float back = strtof(nums[i], NULL);
        if (float_bits(back) != float_bits(v[i]))
            fail_msg("element %zu: %a written as \"%s\" reads back as %a", i,
                     (double)v[i], nums[i], (double)back);
        /* Fewest digits: one digit fewer does not round-trip. Only for
         * normal floats; a subnormal may be written with 6 digits where
         * fewer would do (the search starts at %.6g). */
        int d = sig_digits(nums[i]);
        if (d > 1 && isnormal(v[i])) {
            char shorter[320];
            snprintf(shorter, sizeof shorter, "%.*g", d - 1, (double)v[i]);
            if (float_bits(strtof(shorter, NULL)) == float_bits(v[i]))
                fail_msg("element %zu: \"%s\" is not shortest, \"%s\" reads "
                         "back the same",
                         i, nums[i], shorter);
        }
    }
    assert_string_equal(nums[0], "0.1");
    assert_string_equal(nums[2], "16777216");
    assert_string_equal(nums[6], "-0");
    assert_string_equal(nums[7], "0");
    assert_string_equal(nums[8], "100");
    assert_string_equal(nums[9], "1e-7");
    free(nums);
    free(text);
    free(v);
}

static void test_tensor_encode_float64_round_trip(void **state) {
    (void)state;
    enum { N = 2000 };
    double *v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N;) {
        uint64_t bits = (uint64_t)rng() << 32 | rng();
        double x;
        memcpy(&x, &bits, 8);
        if (!isfinite(x)) continue;
        v[i++] = x;
    }
    v[0] = 0.1;
    int64_t shape[1] = {N};
    backend_tensor t = view(DTYPE_FLOAT64, v, N * sizeof *v, 1, shape);
    char *text = tensor_to_json_text(&t);
    assert_non_null(text);
    char **nums = malloc(N * sizeof *nums);
    assert_int_equal(split_numbers(text, nums, N), N);
    for (size_t i = 0; i < N; i++) {
        double back = strtod(nums[i], NULL);
        if (memcmp(&back, &v[i], 8))
            fail_msg("element %zu: %a written as \"%s\"", i, v[i], nums[i]);
    }
    assert_string_equal(nums[0], "0.1");
    free(nums);
    free(text);
    free(v);
}

static void test_tensor_encode_ints(void **state) {
    (void)state;
    int64_t s4[1] = {4}, s3[1] = {3};
    int64_t i64[] = {INT64_MIN, -1, 0, INT64_MAX};
    backend_tensor t = view(DTYPE_INT64, i64, sizeof i64, 1, s4);
    expect_text(&t, "[-9223372036854775808,-1,0,9223372036854775807]");
    int32_t i32[] = {INT32_MIN, 7, INT32_MAX};
    t = view(DTYPE_INT32, i32, sizeof i32, 1, s3);
    expect_text(&t, "[-2147483648,7,2147483647]");
    int16_t i16[] = {INT16_MIN, 0, INT16_MAX};
    t = view(DTYPE_INT16, i16, sizeof i16, 1, s3);
    expect_text(&t, "[-32768,0,32767]");
    int8_t i8[] = {-128, 0, 127};
    t = view(DTYPE_INT8, i8, sizeof i8, 1, s3);
    expect_text(&t, "[-128,0,127]");
    uint8_t u8[] = {0, 128, 255};
    t = view(DTYPE_UINT8, u8, sizeof u8, 1, s3);
    expect_text(&t, "[0,128,255]");
}

static void test_tensor_encode_bools(void **state) {
    (void)state;
    uint8_t b[] = {1, 0, 0, 1};
    int64_t shape[2] = {2, 2};
    backend_tensor t = view(DTYPE_BOOL, b, sizeof b, 2, shape);
    expect_text(&t, "[[true,false],[false,true]]");
    /* A 0-dim bool, as a TorchScript bool output is returned. */
    uint8_t one = 1;
    t = view(DTYPE_BOOL, &one, 1, 0, NULL);
    t.is_scalar = 1;
    expect_text(&t, "true");
}

static void test_tensor_encode_nan_inf_null(void **state) {
    (void)state;
    float f[] = {NAN, INFINITY, -INFINITY, 1.5f};
    int64_t s4[1] = {4};
    backend_tensor t = view(DTYPE_FLOAT32, f, sizeof f, 1, s4);
    expect_text(&t, "[null,null,null,1.5]");
    double d[] = {NAN, -INFINITY, 2.25};
    int64_t s3[1] = {3};
    t = view(DTYPE_FLOAT64, d, sizeof d, 1, s3);
    expect_text(&t, "[null,null,2.25]");
    uint16_t h[] = {0x7e00, 0x7c00, 0x3c00};
    t = view(DTYPE_FLOAT16, h, sizeof h, 1, s3);
    expect_text(&t, "[null,null,1]");
}

static void test_tensor_encode_nested_shape(void **state) {
    (void)state;
    int32_t v[] = {1, 2, 3, 4};
    int64_t s22[2] = {2, 2};
    backend_tensor t = view(DTYPE_INT32, v, sizeof v, 2, s22);
    expect_text(&t, "[[1,2],[3,4]]");
    float f[] = {1, 2, 3, 4};
    t = view(DTYPE_FLOAT32, f, sizeof f, 2, s22);
    expect_text(&t, "[[1,2],[3,4]]");
    int64_t s141[3] = {1, 4, 1};
    t = view(DTYPE_FLOAT32, f, sizeof f, 3, s141);
    expect_text(&t, "[[[1],[2],[3],[4]]]");
    int64_t s4[1] = {4};
    t = view(DTYPE_FLOAT32, f, sizeof f, 1, s4);
    expect_text(&t, "[1,2,3,4]");
}

static void test_tensor_json_round_trip(void **state) {
    (void)state;
    /* decode(encode(x)) == x for a nested float32 input. */
    const char *in = "[[0.1,-2.5,3.4028235e+38],[1e-45,0,-0]]";
    backend_tensor t;
    char err[ERR_LEN];
    assert_int_equal(decode(in, DTYPE_FLOAT32, &t, err, sizeof err), 0);
    char *text = tensor_to_json_text(&t);
    assert_non_null(text);
    backend_tensor t2;
    assert_int_equal(decode(text, DTYPE_FLOAT32, &t2, err, sizeof err), 0);
    assert_int_equal(t2.ndim, 2);
    assert_int_equal(t2.shape[0], 2);
    assert_int_equal(t2.shape[1], 3);
    assert_memory_equal(t.data, t2.data, t.nbytes);
    free(text);
    tensor_free(&t);
    tensor_free(&t2);
}

/* ---------------------------------------------------------------- half */

static void test_tensor_half_round_trip_all_patterns(void **state) {
    (void)state;
    int checked = 0;
    for (uint32_t h = 0; h <= 0xffff; h++) {
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x03ff);
        float f = tensor_half_to_float((uint16_t)h);
        if (is_nan) {
            assert_true(isnan(f));
            assert_true(isnan(tensor_half_to_float(tensor_float_to_half(f))));
            continue;
        }
        uint16_t back = tensor_float_to_half(f);
        if (back != h) fail_msg("half %04x -> %a -> %04x", h, (double)f, back);
        checked++;
    }
    assert_int_equal(checked, 65536 - 2 * 1023);
}

static void test_tensor_half_known_values(void **state) {
    (void)state;
    assert_true(tensor_half_to_float(0x3c00) == 1.0f);
    assert_true(tensor_half_to_float(0xc000) == -2.0f);
    assert_true(tensor_half_to_float(0x7bff) == 65504.0f);
    assert_true(tensor_half_to_float(0x0001) == ldexpf(1, -24));
    assert_true(tensor_half_to_float(0x0400) == ldexpf(1, -14));
    assert_true(isinf(tensor_half_to_float(0x7c00)));
    assert_int_equal(float_bits(tensor_half_to_float(0x8000)), 0x80000000u);
    /* Rounding to nearest, ties to even. */
    assert_int_equal(tensor_float_to_half(1.0f + ldexpf(1, -11)), 0x3c00);
    assert_int_equal(tensor_float_to_half(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_int_equal(tensor_float_to_half(65519.0f), 0x7bff);
    assert_int_equal(tensor_float_to_half(65520.0f), 0x7c00); /* to inf */
    assert_int_equal(tensor_float_to_half(1e10f), 0x7c00);
    assert_int_equal(tensor_float_to_half(-1e10f), 0xfc00);
    assert_int_equal(tensor_float_to_half(ldexpf(1, -25)), 0x0000); /* tie */
    assert_int_equal(tensor_float_to_half(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(tensor_float_to_half(ldexpf(1, -30)), 0x0000);
    assert_int_equal(tensor_float_to_half(-ldexpf(1, -30)), 0x8000);
    uint16_t nan = tensor_float_to_half(NAN);
    assert_true((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff));
}

/* --------------------------------------------------------- parse shape */

static void test_tensor_parse_shape(void **state) {
    (void)state;
    backend_tensor t;
    char err[ERR_LEN];
    memset(&t, 0, sizeof t);
    assert_int_equal(tensor_parse_shape("1,3,224,224", &t, err, sizeof err),
                     0);
    assert_int_equal(t.ndim, 4);
    assert_int_equal(t.shape[0], 1);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.shape[3], 224);
    assert_int_equal(tensor_parse_shape(" 2 , 0 ", &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[1], 0);
    assert_int_equal(tensor_parse_shape("", &t, err, sizeof err), 0);
    assert_int_equal(t.ndim, 0);
    const char *bad[] = {"1,,2", "1,", "a", "-1", "1;2", "1,2x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (tensor_parse_shape(bad[i], &t, err, sizeof err) != ERR_BAD_REQUEST)
            fail_msg("shape \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "invalid shape"));
    }
    char deep[BACKEND_MAX_DIMS * 2 + 4];
    size_t n = 0;
    for (int i = 0; i <= BACKEND_MAX_DIMS; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, i ? ",1" : "1");
    assert_int_equal(tensor_parse_shape(deep, &t, err, sizeof err),
                     ERR_BAD_REQUEST);
    assert_non_null(strstr(err, "more than 32 dimensions"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_dtype_round_trip),
        cmocka_unit_test(test_tensor_dtype_aliases),
        cmocka_unit_test(test_tensor_decode_2d_float32_exact),
        cmocka_unit_test(test_tensor_decode_other_dtypes),
        cmocka_unit_test(test_tensor_decode_shape_inference),
        cmocka_unit_test(test_tensor_decode_ragged_error),
        cmocka_unit_test(test_tensor_decode_non_number_leaf),
        cmocka_unit_test(test_tensor_decode_out_of_range),
        cmocka_unit_test(test_tensor_decode_non_integer_for_int),
        cmocka_unit_test(test_tensor_decode_bools),
        cmocka_unit_test(test_tensor_decode_dimension_limit),
        cmocka_unit_test(test_tensor_decode_scalar_0dim),
        cmocka_unit_test(test_tensor_decode_empty_array),
        cmocka_unit_test(test_tensor_decode_where_names_input),
        cmocka_unit_test(test_tensor_encode_float32_shortest_round_trip),
        cmocka_unit_test(test_tensor_encode_float64_round_trip),
        cmocka_unit_test(test_tensor_encode_ints),
        cmocka_unit_test(test_tensor_encode_bools),
        cmocka_unit_test(test_tensor_encode_nan_inf_null),
        cmocka_unit_test(test_tensor_encode_nested_shape),
        cmocka_unit_test(test_tensor_json_round_trip),
        cmocka_unit_test(test_tensor_half_round_trip_all_patterns),
        cmocka_unit_test(test_tensor_half_known_values),
        cmocka_unit_test(test_tensor_parse_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
