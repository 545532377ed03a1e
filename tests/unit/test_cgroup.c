/* test_cgroup.c -- cgroup_path() and cgroup_read_file() on fixture
 * /proc/self/cgroup files built in a temp dir. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture_tree.h"
#include "inferd/cgroup.h"


#define W(t, rel, text) assert_int_equal(tree_write((t), (rel), (text)), 0)

static const char hybrid[] = "12:cpuset:/set\n"
                             "11:cpuacct:/acct\n"
                             "10:name=systemd:/user.slice\n"
                             "4:cpu,memory:/docker/abc\n"
                             "garbage line without colons\n"
                             "3:pids:/p\n"
                             "0::/unified/path\n";

static void test_cgroup_path_v2_line(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", hybrid);
    char out[256];
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), 0);
    assert_string_equal(out, "/unified/path");
    W(t, "proc/self/cgroup", "0::/\n");
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), 0);
    assert_string_equal(out, "/");
}

static void test_cgroup_path_v1_controller_exact(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", hybrid);
    char out[256];
    /* "cpu" is the cpu,memory line, not cpuset or cpuacct. */
    assert_int_equal(cgroup_path(t->root, "cpu", out, sizeof out), 0);
    assert_string_equal(out, "/docker/abc");
    assert_int_equal(cgroup_path(t->root, "memory", out, sizeof out), 0);
    assert_string_equal(out, "/docker/abc");
    assert_int_equal(cgroup_path(t->root, "cpuacct", out, sizeof out), 0);
    assert_string_equal(out, "/acct");
    assert_int_equal(cgroup_path(t->root, "pids", out, sizeof out), 0);
    assert_string_equal(out, "/p");
    assert_int_equal(cgroup_path(t->root, "mem", out, sizeof out), -1);
    assert_int_equal(cgroup_path(t->root, "systemd", out, sizeof out), -1);
}

static void test_cgroup_path_v1_only_has_no_v2(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:memory:/m\n1:cpu:/c\n");
    char out[256];
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), -1);
    /* "10::" is not the v2 line either: only hierarchy 0 is. */
    W(t, "proc/self/cgroup", "10::/x\n");
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), -1);
}

static void test_cgroup_path_missing_file(void **state) {
    fixture_tree *t = *state;
    char out[256] = "untouched";
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), -1);
    assert_int_equal(cgroup_path(t->root, "memory", out, sizeof out), -1);
    W(t, "proc/self/cgroup", "");
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), -1);
}

static void test_cgroup_path_truncates_to_buffer(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/a/very/long/path\n");
    char out[8];
    assert_int_equal(cgroup_path(t->root, NULL, out, sizeof out), 0);
    assert_string_equal(out, "/a/very");
}

static void test_cgroup_read_file(void **state) {
    fixture_tree *t = *state;
    W(t, "f", "hello world\n");
    char path[512], buf[64];
    snprintf(path, sizeof path, "%s/f", t->root);
    assert_int_equal(cgroup_read_file(path, buf, sizeof buf), 12);
    assert_string_equal(buf, "hello world\n");
    char small[6];
    assert_int_equal(cgroup_read_file(path, small, sizeof small), 5);
    assert_string_equal(small, "hello");
    snprintf(path, sizeof path, "%s/absent", t->root);
    assert_int_equal(cgroup_read_file(path, buf, sizeof buf), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tree_setup, tree_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_cgroup_path_v2_line),
        T(test_cgroup_path_v1_controller_exact),
        T(test_cgroup_path_v1_only_has_no_v2),
        T(test_cgroup_path_missing_file),
        T(test_cgroup_path_truncates_to_buffer),
        T(test_cgroup_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
