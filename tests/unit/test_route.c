/* test_route.c -- the route table: exact matches, 404 vs 405 with the
 * Allow list, and {param} captures. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "inferd/route.h"

struct http_request;
static void h_health(struct http_request *r) {
    (void)r;
}
static void h_models_get(struct http_request *r) {
    (void)r;
}
static void h_models_post(struct http_request *r) {
    (void)r;
}
static void h_models_delete(struct http_request *r) {
    (void)r;
}
static void h_model(struct http_request *r) {
    (void)r;
}
static void h_predict(struct http_request *r) {
    (void)r;
}
static void h_version(struct http_request *r) {
    (void)r;
}
static void h_root(struct http_request *r) {
    (void)r;
}

#define R(m, p, h)                                                            \
    { .method = (m), .pattern = (p), .handler = (h) }

static const route table[] = {
    R("GET", "/", h_root),
    R("GET", "/health", h_health),
    R("GET", "/models", h_models_get),
    R("POST", "/models", h_models_post),
    R("DELETE", "/models", h_models_delete),
    R("GET", "/models/{name}", h_model),
    R("POST", "/models/{name}/predict", h_predict),
    R("GET", "/models/{name}/versions/{version}", h_version),
    /* A second GET row that also matches /models/{name}/predict paths. */
    R("GET", "/models/{any}/{action}", h_model),
    /* And a third row, GET again, for any three segments. */
    R("GET", "/{a}/{b}/{c}", h_health),
};
#define N (sizeof table / sizeof table[0])

typedef struct {
    int rc;
    const route *found;
    route_params params;
    char allow[128];
} match;

static match do_match(const char *method, const char *path) {
    match m;
    memset(&m, 0, sizeof m);
    memset(m.allow, 'x', sizeof m.allow - 1); /* must be reset */
    m.allow[sizeof m.allow - 1] = '\0';
    m.rc = route_match(table, N, method, path, &m.found, &m.params, m.allow,
                       sizeof m.allow);
    return m;
}

static void test_route_exact_match(void **state) {
    (void)state;
    match m = do_match("GET", "/health");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_ptr_equal(m.found, &table[1]);
    assert_true(m.found->handler == h_health);
    assert_int_equal(m.params.n, 0);

    m = do_match("POST", "/models");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_models_post);

    m = do_match("DELETE", "/models");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_models_delete);

    m = do_match("GET", "/");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_root);
}

static void test_route_unknown_path_not_found(void **state) {
    (void)state;
    const char *paths[] = {"/nope",   "/healthz", "/healt", "/health/x",
                           "/Health", "",         "health", "//health"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        match m = do_match("GET", paths[i]);
        if (m.rc != ROUTE_NOT_FOUND)
            fail_msg("path \"%s\": rc %d, want ROUTE_NOT_FOUND", paths[i],
                     m.rc);
        assert_string_equal(m.allow, "");
    }
}

static void test_route_wrong_method_allow_lists_all(void **state) {
    (void)state;
    match m = do_match("PUT", "/models");
    assert_int_equal(m.rc, ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, POST, DELETE");

    m = do_match("POST", "/health");
    assert_int_equal(m.rc, ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET");

    /* Methods are case-sensitive. */
    m = do_match("get", "/health");
    assert_int_equal(m.rc, ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET");
}

static void test_route_allow_deduplicates_methods(void **state) {
    (void)state;
    /* /models/a/predict matches the POST row and two GET rows: GET is
     * listed once. */
    match m = do_match("DELETE", "/models/a/predict");
    assert_int_equal(m.rc, ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "POST, GET");

    m = do_match("GET", "/models/a/predict");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_model);
    assert_string_equal(route_param(&m.params, "any"), "a");
    assert_string_equal(route_param(&m.params, "action"), "predict");
    assert_null(route_param(&m.params, "name"));
}

static void test_route_allow_small_buffer(void **state) {
    (void)state;
    /* A buffer too small for the list stays terminated, no overflow. */
    char allow[6];
    const route *found = NULL;
    route_params params;
    int rc = route_match(table, N, "PATCH", "/models", &found, &params, allow,
                         sizeof allow);
    assert_int_equal(rc, ROUTE_BAD_METHOD);
    assert_true(strlen(allow) < sizeof allow);
    assert_memory_equal(allow, "GET", 3);
    /* No buffer at all is allowed. */
    rc = route_match(table, N, "PATCH", "/models", &found, &params, NULL, 0);
    assert_int_equal(rc, ROUTE_BAD_METHOD);
}

static void test_route_param_capture(void **state) {
    (void)state;
    match m = do_match("GET", "/models/resnet-50");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_model);
    assert_int_equal(m.params.n, 1);
    assert_string_equal(route_param(&m.params, "name"), "resnet-50");
    assert_null(route_param(&m.params, "version"));

    m = do_match("POST", "/models/demo/predict");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_predict);
    assert_string_equal(route_param(&m.params, "name"), "demo");

    m = do_match("GET", "/models/demo/versions/3");
    assert_int_equal(m.rc, ROUTE_OK);
    assert_true(m.found->handler == h_version);
    assert_int_equal(m.params.n, 2);
    assert_string_equal(route_param(&m.params, "name"), "demo");
    assert_string_equal(route_param(&m.params, "version"), "3");
}

static void test_route_param_refuses_empty_segment(void **state) {
    (void)state;
    match m = do_match("GET", "/models//predict");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
    m = do_match("POST", "/models//predict");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
    m = do_match("GET", "/models/demo/versions/");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
}

static void test_route_param_too_long_not_found(void **state) {
    (void)state;
    char path[ROUTE_PARAM_LEN + 32];
    strcpy(path, "/models/");
    size_t base = strlen(path);
    /* ROUTE_PARAM_LEN - 1 characters fit... */
    memset(path + base, 'a', ROUTE_PARAM_LEN - 1);
    path[base + ROUTE_PARAM_LEN - 1] = '\0';
    match m = do_match("GET", path);
    assert_int_equal(m.rc, ROUTE_OK);
    assert_int_equal(strlen(route_param(&m.params, "name")),
                     ROUTE_PARAM_LEN - 1);
    /* ...one more does not. */
    path[base + ROUTE_PARAM_LEN - 1] = 'a';
    path[base + ROUTE_PARAM_LEN] = '\0';
    m = do_match("GET", path);
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
}

static void test_route_trailing_slash_not_found(void **state) {
    (void)state;
    match m = do_match("GET", "/health/");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
    m = do_match("GET", "/models/");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND); /* {name} refuses "" */
    m = do_match("GET", "/models/demo/");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
}

static void test_route_longer_path_not_found(void **state) {
    (void)state;
    match m = do_match("GET", "/models/demo/versions/3/extra");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
    m = do_match("POST", "/models/demo/predict/now");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
    m = do_match("GET", "/health/live");
    assert_int_equal(m.rc, ROUTE_NOT_FOUND);
    /* Shorter than every pattern of that prefix, too. */
    m = do_match("GET", "/models/demo/versions");
    assert_int_equal(m.rc, ROUTE_OK); /* the {any}/{action} row */
    m = do_match("POST", "/models/demo/versions");
    assert_int_equal(m.rc, ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET");
}

static void test_route_empty_table(void **state) {
    (void)state;
    const route *found = NULL;
    route_params params;
    char allow[16] = "junk";
    assert_int_equal(route_match(table, 0, "GET", "/health", &found, &params,
                                 allow, sizeof allow),
                     ROUTE_NOT_FOUND);
    assert_string_equal(allow, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_exact_match),
        cmocka_unit_test(test_route_unknown_path_not_found),
        cmocka_unit_test(test_route_wrong_method_allow_lists_all),
        cmocka_unit_test(test_route_allow_deduplicates_methods),
        cmocka_unit_test(test_route_allow_small_buffer),
        cmocka_unit_test(test_route_param_capture),
        cmocka_unit_test(test_route_param_refuses_empty_segment),
        cmocka_unit_test(test_route_param_too_long_not_found),
        cmocka_unit_test(test_route_trailing_slash_not_found),
        cmocka_unit_test(test_route_longer_path_not_found),
        cmocka_unit_test(test_route_empty_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
