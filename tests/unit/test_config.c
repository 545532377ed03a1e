/* test_config.c -- config_load(): defaults, environment, flags overriding
 * the environment, and a one-line error naming the setting and what it
 * accepts for every bad value. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../memory_config.h"
#include "inferd/config.h"
#include "inferd/error.h"

/* ------------------------------------------------- the settings' names */

/* Every environment variable of the settings table, read from --help's
 * table so that a setting added to src/config.c is cleared too. */
#define MAX_SETTINGS 128
static char env_names[MAX_SETTINGS][64];
static int n_env_names;

/* These must be among them (the tests set them). */
static const char *const known_env[] = {"PORT",
                                        "HOST",
                                        "MODEL_PATH",
                                        "MODEL_NAME",
                                        "LAZY_LOADING",
                                        "ENVIRONMENT",
                                        "MEMORY_LIMIT_MB",
                                        "MEMORY_WARNING_PERCENT",
                                        "MEMORY_CRITICAL_PERCENT",
                                        "MAX_REQUEST_MB",
                                        "SHUTDOWN_TIMEOUT_SECONDS",
                                        "LOG_LEVEL",
                                        "LOG_FORMAT",
                                        "BACKEND_PATH",
                                        "TORCH_NUM_THREADS",
                                        "MODEL_MMAP",
                                        "MEMORY_GUARD",
                                        "RUNTIME_ANON_MB",
                                        "ACTIVATION_MB",
                                        "MODEL_IDLE_UNLOAD_SECONDS",
                                        "UNLOAD_ON_PRESSURE",
                                        "INFERENCE_WORKERS",
                                        "QUEUE_CAPACITY"};
#define N_KNOWN (sizeof known_env / sizeof known_env[0])

/* config_print_help() into a malloc'd string. */
static char *capture_help(void) {
    fflush(stdout);
    FILE *tmp = tmpfile();
    if (!tmp) return NULL;
    int saved = dup(STDOUT_FILENO);
    dup2(fileno(tmp), STDOUT_FILENO);
    config_print_help("inferd");
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long len = ftell(tmp);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (text) {
        rewind(tmp);
        size_t n = fread(text, 1, (size_t)len, tmp);
        text[n] = '\0';
    }
    fclose(tmp);
    return text;
}

static int group_setup(void **state) {
    (void)state;
    char *help = capture_help();
    if (!help) return -1;
    int in_table = 0;
    char *sp;
    for (char *line = strtok_r(help, "\n", &sp); line;
         line = strtok_r(NULL, "\n", &sp)) {
        if (!strncmp(line, "ENV ", 4)) {
            in_table = 1;
            continue;
        }
        if (!in_table || n_env_names == MAX_SETTINGS) continue;
        size_t len = strcspn(line, " ");
        if (len && len < sizeof env_names[0]) {
            memcpy(env_names[n_env_names], line, len);
            env_names[n_env_names++][len] = '\0';
        }
    }
    free(help);
    /* Also clear the known names, whatever the help printed. */
    for (size_t i = 0; i < N_KNOWN && n_env_names < MAX_SETTINGS; i++)
        snprintf(env_names[n_env_names++], sizeof env_names[0], "%s",
                 known_env[i]);
    return 0;
}

static int clear_env(void **state) {
    (void)state;
    for (int i = 0; i < n_env_names; i++)
        unsetenv(env_names[i]);
    return 0;
}

/* ------------------------------------------------------------- helpers */

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static int load(config *c, int argc, char **argv, char *err) {
    err[0] = '\0';
    return config_load(c, argc, argv, err, ERR_LEN);
}

static int load_noargs(config *c, char *err) {
    char *argv[] = {"inferd", NULL};
    return load(c, 1, argv, err);
}

static void expect_contains(const char *err, const char *want) {
    if (!strstr(err, want)) fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

/* With env=value set (and nothing else), loading fails with
 * ERR_BAD_REQUEST and a message naming env and containing accepts. */
static void expect_bad_env(const char *env, const char *value,
                           const char *accepts) {
    clear_env(NULL);
    setenv(env, value, 1);
    config c;
    char err[ERR_LEN];
    int rc = load_noargs(&c, err);
    unsetenv(env);
    if (rc != ERR_BAD_REQUEST)
        fail_msg("%s=%s: rc %d, want ERR_BAD_REQUEST", env, value, rc);
    expect_contains(err, env);
    char quoted[128];
    snprintf(quoted, sizeof quoted, "'%s'", value);
    expect_contains(err, quoted);
    expect_contains(err, accepts);
    assert_null(strchr(err, '\n')); /* one line */
}

/* The same through a flag, as --flag=value. */
static void expect_bad_flag(const char *flag, const char *env,
                            const char *value, const char *accepts) {
    clear_env(NULL);
    char arg[128];
    snprintf(arg, sizeof arg, "%s=%s", flag, value);
    char *argv[] = {"inferd", arg, NULL};
    config c;
    char err[ERR_LEN];
    int rc = load(&c, 2, argv, err);
    if (rc != ERR_BAD_REQUEST)
        fail_msg("%s: rc %d, want ERR_BAD_REQUEST", arg, rc);
    expect_contains(err, env);
    expect_contains(err, accepts);
}

/* --------------------------------------------------------------- tests */

static void test_config_table_names_cleared(void **state) {
    (void)state;
    /* The help table lists at least the settings the tests know. */
    char *help = capture_help();
    assert_non_null(help);
    for (size_t i = 0; i < N_KNOWN; i++) {
        char row[80];
        snprintf(row, sizeof row, "\n%s ", known_env[i]);
        if (!strstr(help, row))
            fail_msg("--help does not list %s", known_env[i]);
    }
    expect_contains(help, INFERD_VERSION);
    free(help);
    assert_true(n_env_names >= (int)(2 * N_KNOWN));
}

static void test_config_defaults(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    assert_int_equal(load_noargs(&c, err), 0);
    assert_int_equal(c.port, 8000);
    assert_string_equal(c.host, "0.0.0.0");
    assert_string_equal(c.model_path, "");
    assert_string_equal(c.model_name, "model");
    assert_int_equal(c.lazy_loading, 1);
    assert_int_equal(c.lazy_forced, 0);
    assert_int_equal(c.environment, ENV_PRODUCTION);
    assert_int_equal(c.memory_limit_mb, 0);
    assert_int_equal(c.memory_warning_percent, MEMCFG_WARNING_PERCENT);
    assert_int_equal(c.memory_critical_percent, MEMCFG_CRITICAL_PERCENT);
    assert_int_equal(c.max_request_mb, MEMCFG_MAX_REQUEST_MB);
    assert_int_equal(c.shutdown_timeout_seconds, 25);
    assert_int_equal(c.log_level, 1); /* info */
    assert_int_equal(c.log_format, LOGFMT_TEXT);
    assert_string_equal(c.backend_path, "");
    assert_int_equal(c.torch_num_threads, 0);
    assert_int_equal(c.model_mmap, 1);
    assert_int_equal(c.memory_guard, 1);
    assert_int_equal(c.runtime_anon_mb, MEMCFG_RUNTIME_ANON_MB);
    assert_int_equal(c.activation_mb, MEMCFG_ACTIVATION_MB);
    assert_int_equal(c.model_idle_unload_seconds, MEMCFG_IDLE_UNLOAD_SECONDS);
    assert_int_equal(c.unload_on_pressure, 0);
    assert_int_equal(c.inference_workers, 1);
    assert_int_equal(c.queue_capacity, 64);
}

static void test_config_env_read(void **state) {
    (void)state;
    setenv("PORT", "9001", 1);
    setenv("HOST", "127.0.0.1", 1);
    setenv("MODEL_PATH", "/srv/m.pt", 1);
    setenv("LAZY_LOADING", "false", 1);
    setenv("ENVIRONMENT", "Development", 1); /* case-insensitive */
    setenv("MEMORY_LIMIT_MB", "256", 1);
    setenv("MEMORY_WARNING_PERCENT", "70", 1);
    setenv("MEMORY_CRITICAL_PERCENT", "90", 1);
    setenv("MAX_REQUEST_MB", "4096", 1);
    setenv("LOG_LEVEL", "warning", 1); /* alias of warn */
    setenv("LOG_FORMAT", "JSON", 1);
    setenv("MODEL_MMAP", "off", 1);
    setenv("MEMORY_GUARD", "0", 1);
    setenv("UNLOAD_ON_PRESSURE", "yes", 1);
    setenv("INFERENCE_WORKERS", "4", 1);
    setenv("QUEUE_CAPACITY", "100000", 1);
    setenv("TORCH_NUM_THREADS", "3", 1);
    config c;
    char err[ERR_LEN];
    assert_int_equal(load_noargs(&c, err), 0);
    assert_int_equal(c.port, 9001);
    assert_string_equal(c.host, "127.0.0.1");
    assert_string_equal(c.model_path, "/srv/m.pt");
    assert_int_equal(c.lazy_loading, 0);
    assert_int_equal(c.environment, ENV_DEVELOPMENT);
    assert_int_equal(c.memory_limit_mb, 256);
    assert_int_equal(c.memory_warning_percent, 70);
    assert_int_equal(c.memory_critical_percent, 90);
    assert_int_equal(c.max_request_mb, 4096);
    assert_int_equal(c.log_level, 2); /* warn */
    assert_int_equal(c.log_format, LOGFMT_JSON);
    assert_int_equal(c.model_mmap, 0);
    assert_int_equal(c.memory_guard, 0);
    assert_int_equal(c.unload_on_pressure, 1);
    assert_int_equal(c.inference_workers, 4);
    assert_int_equal(c.queue_capacity, 100000);
    assert_int_equal(c.torch_num_threads, 3);
}

static void test_config_flag_overrides_env(void **state) {
    (void)state;
    setenv("PORT", "9001", 1);
    setenv("HOST", "127.0.0.1", 1);
    setenv("LOG_FORMAT", "json", 1);
    setenv("LAZY_LOADING", "false", 1);
    setenv("ENVIRONMENT", "development", 1);
    config c;
    char err[ERR_LEN];

    /* --flag value */
    char *a1[] = {"inferd", "--port",       "9100", "--host",
                  "::1",    "--log-format", "text", NULL};
    assert_int_equal(load(&c, ARGC(a1), a1, err), 0);
    assert_int_equal(c.port, 9100);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.log_format, LOGFMT_TEXT);
    assert_int_equal(c.lazy_loading, 0); /* env kept where no flag */

    /* --flag=value, including an '=' inside the value */
    char *a2[] = {"inferd", "--port=9200", "--lazy-loading=on",
                  "--model-path=/a=b/net.pt", NULL};
    assert_int_equal(load(&c, ARGC(a2), a2, err), 0);
    assert_int_equal(c.port, 9200);
    assert_int_equal(c.lazy_loading, 1);
    assert_string_equal(c.model_path, "/a=b/net.pt");
    assert_string_equal(c.host, "127.0.0.1");

    /* The last flag wins; an empty string value is allowed for strings. */
    char *a3[] = {"inferd", "--port", "1", "--port=65535", "--host=", NULL};
    assert_int_equal(load(&c, ARGC(a3), a3, err), 0);
    assert_int_equal(c.port, 65535);
    assert_string_equal(c.host, "");
}

static void test_config_bad_port(void **state) {
    (void)state;
    expect_bad_env("PORT", "abc", "expected an integer from 1 to 65535");
    expect_bad_env("PORT", "70000", "expected an integer from 1 to 65535");
    expect_bad_env("PORT", "0", "expected an integer from 1 to 65535");
    expect_bad_env("PORT", "", "expected an integer from 1 to 65535");
    expect_bad_env("PORT", "80x", "expected an integer from 1 to 65535");
    expect_bad_env("PORT", "99999999999999999999", "from 1 to 65535");
    expect_bad_flag("--port", "PORT", "abc", "from 1 to 65535");
}

static void test_config_bad_bool(void **state) {
    (void)state;
    expect_bad_env("LAZY_LOADING", "maybe", "expected true or false");
    expect_bad_env("MODEL_MMAP", "2", "expected true or false");
    expect_bad_flag("--memory-guard", "MEMORY_GUARD", "nope", "true or false");
}

static void test_config_bad_negative_size(void **state) {
    (void)state;
    expect_bad_env("MAX_REQUEST_MB", "-1",
                   "expected an integer from 1 to 4096");
    expect_bad_env("MEMORY_LIMIT_MB", "-5", "expected an integer from 0 to");
    expect_bad_flag("--memory-limit-mb", "MEMORY_LIMIT_MB", "-5", "from 0 to");
}

static void test_config_bad_enum(void **state) {
    (void)state;
    expect_bad_env("ENVIRONMENT", "staging",
                   "expected one of production|development");
    expect_bad_env("LOG_FORMAT", "xml", "expected one of text|json");
    expect_bad_env("LOG_LEVEL", "verbose",
                   "expected one of debug|info|warn|error");
    expect_bad_flag("--environment", "ENVIRONMENT", "prod",
                    "production|development");
}

static void test_config_unknown_flag(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    char *a1[] = {"inferd", "--nope", NULL};
    assert_int_equal(load(&c, ARGC(a1), a1, err), ERR_BAD_REQUEST);
    expect_contains(err, "unknown option '--nope'");
    expect_contains(err, "--help");
    char *a2[] = {"inferd", "--nope=1", NULL};
    assert_int_equal(load(&c, ARGC(a2), a2, err), ERR_BAD_REQUEST);
    expect_contains(err, "--nope=1");
    /* A prefix of a flag is not the flag; nor is a bare word. */
    char *a3[] = {"inferd", "--po", "1", NULL};
    assert_int_equal(load(&c, ARGC(a3), a3, err), ERR_BAD_REQUEST);
    expect_contains(err, "unknown option '--po'");
    char *a4[] = {"inferd", "port", "1", NULL};
    assert_int_equal(load(&c, ARGC(a4), a4, err), ERR_BAD_REQUEST);
    expect_contains(err, "unknown option 'port'");
}

static void test_config_flag_without_value(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    char *a1[] = {"inferd", "--port", NULL};
    assert_int_equal(load(&c, ARGC(a1), a1, err), ERR_BAD_REQUEST);
    expect_contains(err, "option --port needs a value");
    char *a2[] = {"inferd", "--host", "h", "--model-path", NULL};
    assert_int_equal(load(&c, ARGC(a2), a2, err), ERR_BAD_REQUEST);
    expect_contains(err, "--model-path needs a value");
    /* --port= gives an empty value, which an integer refuses. */
    char *a3[] = {"inferd", "--port=", NULL};
    assert_int_equal(load(&c, ARGC(a3), a3, err), ERR_BAD_REQUEST);
    expect_contains(err, "invalid PORT ''");
}

static void test_config_warning_above_critical(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    setenv("MEMORY_WARNING_PERCENT", "96", 1); /* critical default 95 */
    assert_int_equal(load_noargs(&c, err), ERR_BAD_REQUEST);
    expect_contains(err, "MEMORY_WARNING_PERCENT");
    expect_contains(err, "96");
    expect_contains(err, "at most MEMORY_CRITICAL_PERCENT (95)");

    char *a[] = {"inferd", "--memory-critical-percent=50", NULL};
    setenv("MEMORY_WARNING_PERCENT", "60", 1);
    assert_int_equal(load(&c, ARGC(a), a, err), ERR_BAD_REQUEST);
    expect_contains(err, "at most MEMORY_CRITICAL_PERCENT (50)");

    /* Equal is fine. */
    setenv("MEMORY_WARNING_PERCENT", "50", 1);
    assert_int_equal(load(&c, ARGC(a), a, err), 0);
    assert_int_equal(c.memory_warning_percent, 50);
    assert_int_equal(c.memory_critical_percent, 50);
    /* And out-of-range percentages are refused by their own bounds. */
    expect_bad_env("MEMORY_CRITICAL_PERCENT", "101", "from 1 to 100");
}

static void test_config_help_and_version(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    char *a1[] = {"inferd", "--help", NULL};
    assert_int_equal(load(&c, ARGC(a1), a1, err), CONFIG_EXIT_HELP);
    char *a2[] = {"inferd", "-h", NULL};
    assert_int_equal(load(&c, ARGC(a2), a2, err), CONFIG_EXIT_HELP);
    char *a3[] = {"inferd", "--version", NULL};
    assert_int_equal(load(&c, ARGC(a3), a3, err), CONFIG_EXIT_VERSION);
    /* After valid flags, still help; a bad environment fails first. */
    char *a4[] = {"inferd", "--port", "1", "--help", "--nope", NULL};
    assert_int_equal(load(&c, ARGC(a4), a4, err), CONFIG_EXIT_HELP);
    setenv("PORT", "abc", 1);
    assert_int_equal(load(&c, ARGC(a3), a3, err), ERR_BAD_REQUEST);
}

static void test_config_model_name_from_path(void **state) {
    (void)state;
    static const struct {
        const char *path, *name;
    } cases[] = {
        {"/models/resnet50.pt", "resnet50"},
        {"models/demo.pt", "demo"},
        {"demo.pt", "demo"},
        {"demo", "demo"},
        {"/srv/v1.2/net", "net"},       /* a dot in a directory only */
        {"/srv/net.tar.pt", "net.tar"}, /* the last extension only */
        {"/srv/.hidden", ".hidden"},    /* a leading dot is the name */
        {"/srv/models/", "model"},      /* no base name: the default */
    };
    config c;
    char err[ERR_LEN];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("MODEL_PATH", cases[i].path, 1);
        assert_int_equal(load_noargs(&c, err), 0);
        if (strcmp(c.model_name, cases[i].name))
            fail_msg("MODEL_PATH=%s: model_name \"%s\", want \"%s\"",
                     cases[i].path, c.model_name, cases[i].name);
    }
    /* A flag path, too. */
    unsetenv("MODEL_PATH");
    char *a[] = {"inferd", "--model-path", "/x/bert-base.pt", NULL};
    assert_int_equal(load(&c, ARGC(a), a, err), 0);
    assert_string_equal(c.model_name, "bert-base");
    /* MODEL_NAME given wins. */
    setenv("MODEL_NAME", "custom", 1);
    assert_int_equal(load(&c, ARGC(a), a, err), 0);
    assert_string_equal(c.model_name, "custom");
}

static void test_config_production_forces_lazy(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    setenv("ENVIRONMENT", "production", 1);
    setenv("LAZY_LOADING", "false", 1);
    assert_int_equal(load_noargs(&c, err), 0);
    assert_int_equal(c.environment, ENV_PRODUCTION);
    assert_int_equal(c.lazy_loading, 1);
    assert_int_equal(c.lazy_forced, 1);

    /* Lazy already: nothing forced. */
    setenv("LAZY_LOADING", "true", 1);
    assert_int_equal(load_noargs(&c, err), 0);
    assert_int_equal(c.lazy_loading, 1);
    assert_int_equal(c.lazy_forced, 0);

    /* The default environment is production. */
    unsetenv("ENVIRONMENT");
    char *a[] = {"inferd", "--lazy-loading=false", NULL};
    assert_int_equal(load(&c, ARGC(a), a, err), 0);
    assert_int_equal(c.lazy_forced, 1);
}

static void test_config_development_honours_lazy_false(void **state) {
    (void)state;
    config c;
    char err[ERR_LEN];
    setenv("ENVIRONMENT", "development", 1);
    setenv("LAZY_LOADING", "false", 1);
    assert_int_equal(load_noargs(&c, err), 0);
    assert_int_equal(c.environment, ENV_DEVELOPMENT);
    assert_int_equal(c.lazy_loading, 0);
    assert_int_equal(c.lazy_forced, 0);
    /* A flag switching to production forces it again. */
    char *a[] = {"inferd", "--environment", "production", NULL};
    assert_int_equal(load(&c, ARGC(a), a, err), 0);
    assert_int_equal(c.lazy_loading, 1);
    assert_int_equal(c.lazy_forced, 1);
}

static void test_config_null_error_buffer(void **state) {
    (void)state;
    config c;
    setenv("PORT", "abc", 1);
    char *a[] = {"inferd", NULL};
    assert_int_equal(config_load(&c, 1, a, NULL, 0), ERR_BAD_REQUEST);
    /* A short buffer is truncated, still terminated. */
    char err[8];
    memset(err, 'x', sizeof err);
    assert_int_equal(config_load(&c, 1, a, err, sizeof err), ERR_BAD_REQUEST);
    assert_int_equal(strlen(err), sizeof err - 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, clear_env, clear_env)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_config_table_names_cleared),
        T(test_config_defaults),
        T(test_config_env_read),
        T(test_config_flag_overrides_env),
        T(test_config_bad_port),
        T(test_config_bad_bool),
        T(test_config_bad_negative_size),
        T(test_config_bad_enum),
        T(test_config_unknown_flag),
        T(test_config_flag_without_value),
        T(test_config_warning_above_critical),
        T(test_config_help_and_version),
        T(test_config_model_name_from_path),
        T(test_config_production_forces_lazy),
        T(test_config_development_honours_lazy_false),
        T(test_config_null_error_buffer),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
