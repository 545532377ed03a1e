/* test_cpu.c -- cpu_available(): the affinity mask capped by a cgroup CPU
 * quota, against fixture trees built in a temp dir. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sched.h>

#include "fixture_tree.h"
#include "inferd/cpu.h"


#define W(t, rel, text) assert_int_equal(tree_write((t), (rel), (text)), 0)

/* CPUs in this process's affinity mask. */
static int affinity_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n < 1 ? 1 : n;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

static void test_cpu_available_real_system(void **state) {
    (void)state;
    int n = cpu_available("");
    assert_true(n >= 1);
    assert_true(n <= affinity_count());
}

static void test_cpu_available_no_cgroup_is_affinity(void **state) {
    fixture_tree *t = *state;
    /* Empty root: no /proc/self/cgroup, no quota. */
    assert_int_equal(cpu_available(t->root), affinity_count());
    assert_int_equal(cpu_available("/nonexistent-inferd-root"),
                     affinity_count());
}

static void test_cpu_available_v2_quota(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/app.slice\n");
    W(t, "sys/fs/cgroup/app.slice/cpu.max", "150000 100000\n");
    /* 1.5 CPUs round up to 2, capped by the affinity mask. */
    assert_int_equal(cpu_available(t->root), min_int(2, affinity_count()));
}

static void test_cpu_available_v2_fractional_quota_is_one(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/\n");
    W(t, "sys/fs/cgroup/cpu.max", "50000 100000\n");
    assert_int_equal(cpu_available(t->root), 1);
    W(t, "sys/fs/cgroup/cpu.max", "1000 100000\n"); /* 0.01 CPU */
    assert_int_equal(cpu_available(t->root), 1);
}

static void test_cpu_available_v2_max_is_affinity(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/app\n");
    W(t, "sys/fs/cgroup/app/cpu.max", "max 100000\n");
    assert_int_equal(cpu_available(t->root), affinity_count());
}

static void test_cpu_available_v2_large_quota_is_affinity(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/app\n");
    W(t, "sys/fs/cgroup/app/cpu.max", "100000000 100000\n"); /* 1000 CPUs */
    assert_int_equal(cpu_available(t->root), affinity_count());
}

static void test_cpu_available_v1_cfs_quota(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n");
    W(t, "sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "50000\n");
    W(t, "sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cpu_available(t->root), 1);
}

static void test_cpu_available_v1_unlimited_is_affinity(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:cpu,cpuacct:/\n");
    W(t, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
    W(t, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cpu_available(t->root), affinity_count());
}

static void test_cpu_available_v2_max_falls_through_to_v1(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:cpu,cpuacct:/job\n0::/job\n");
    W(t, "sys/fs/cgroup/job/cpu.max", "max 100000\n");
    W(t, "sys/fs/cgroup/cpu/job/cpu.cfs_quota_us", "100000\n");
    W(t, "sys/fs/cgroup/cpu/job/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cpu_available(t->root), 1);
}

static void test_cpu_available_v1_cpu_not_cpuset(void **state) {
    fixture_tree *t = *state;
    /* A cpuset line listed before the cpu line, with another path: the
     * quota is the cpu controller's. */
    W(t, "proc/self/cgroup", "6:cpuset:/other\n4:cpu,cpuacct:/docker/abc\n");
    W(t, "sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "50000\n");
    W(t, "sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cpu_available(t->root), 1);
    /* And a "cpuacct"-only line does not count as "cpu". */
    W(t, "proc/self/cgroup", "2:cpuacct:/docker/abc\n1:cpu:/\n");
    W(t, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
    W(t, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cpu_available(t->root), affinity_count());
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tree_setup, tree_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_available_real_system),
        T(test_cpu_available_no_cgroup_is_affinity),
        T(test_cpu_available_v2_quota),
        T(test_cpu_available_v2_fractional_quota_is_one),
        T(test_cpu_available_v2_max_is_affinity),
        T(test_cpu_available_v2_large_quota_is_affinity),
        T(test_cpu_available_v1_cfs_quota),
        T(test_cpu_available_v1_unlimited_is_affinity),
        T(test_cpu_available_v2_max_falls_through_to_v1),
        T(test_cpu_available_v1_cpu_not_cpuset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
