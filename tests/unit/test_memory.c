/* test_memory.c -- /proc status parsing, process figures, and the memory
 * limit / usage from cgroup v1 and v2 fixture trees built in a temp dir. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "fixture_tree.h"
#include "inferd/memory.h"

#define MB (1024.0 * 1024.0)
#define DEFAULT_BYTES (512ULL << 20)

/* ------------------------------------------------------------ fixtures */


#define W(t, rel, text) assert_int_equal(tree_write((t), (rel), (text)), 0)

/* ------------------------------------------------------- status fields */

static const char status_text[] =
    "Name:\tinferd\n"
    "VmPeak:\t   10240 kB\n"
    "VmSize:\t    9216 kB\n"
    "VmHWM:\t    4096 kB\n"
    "VmRSSx:\t       1 kB\n" /* a key that extends "VmRSS", before it */
    "VmRSS:\t    2048 kB\n"
    "RssAnon:\t     512 kB\n"
    "VmBogus:\t  n/a\n"
    "VmSwap:\t       3 kB"; /* last line without a newline */

static void test_memory_status_field_values(void **state) {
    (void)state;
    assert_float_equal(memory_status_field(status_text, "VmRSS"), 2.0, 1e-9);
    assert_float_equal(memory_status_field(status_text, "VmHWM"), 4.0, 1e-9);
    assert_float_equal(memory_status_field(status_text, "RssAnon"), 0.5, 1e-9);
    assert_float_equal(memory_status_field(status_text, "VmSwap"),
                       3.0 / 1024.0, 1e-12);
}

static void test_memory_status_field_missing_key(void **state) {
    (void)state;
    assert_true(memory_status_field(status_text, "VmLck") == -1);
    assert_true(memory_status_field("", "VmRSS") == -1);
    /* Present but not a number. */
    assert_true(memory_status_field(status_text, "VmBogus") == -1);
}

static void test_memory_status_field_key_prefix(void **state) {
    (void)state;
    /* "VmRSS" must not match the "VmRSSx" line that comes first... */
    assert_float_equal(memory_status_field(status_text, "VmRSS"), 2.0, 1e-9);
    /* ...and "VmRSSx" is its own key. */
    assert_float_equal(memory_status_field(status_text, "VmRSSx"),
                       1.0 / 1024.0, 1e-12);
    /* A prefix of a key is not the key. */
    assert_true(memory_status_field(status_text, "VmRS") == -1);
    assert_true(memory_status_field(status_text, "Vm") == -1);
    /* Only line starts count: "Size" is inside "VmSize". */
    assert_true(memory_status_field(status_text, "Size") == -1);
}

/* ----------------------------------------------------- process figures */

static void test_memory_process_read_real_process(void **state) {
    (void)state;
    memory_process p;
    char err[512] = "";
    int rc = memory_process_read(&p, err, sizeof err);
    if (rc != 0) {
        print_message("libproc2 cannot read this process: %s\n", err);
        skip();
    }
    assert_true(p.rss_mb > 0);
    assert_true(p.vms_mb >= p.rss_mb);
    /* VmRSS = RssAnon + RssFile + RssShmem; shmem is ~0 here. */
    assert_true(fabs(p.anon_mb + p.file_mb - p.rss_mb) <= 1.0);
    /* VmHWM is the peak, read just after: at least about the RSS. */
    assert_true(p.hwm_mb > 0);
    assert_true(p.hwm_mb + 1.0 >= p.rss_mb);
}

/* ---------------------------------------------------------- limit: v2 */

static void test_memory_limit_v2_number(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/app.slice/inferd.service\n");
    W(t, "sys/fs/cgroup/app.slice/inferd.service/memory.max", "268435456\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 2);
    assert_int_equal(lim.limit_bytes, 268435456ULL);
    char want[1024];
    snprintf(want, sizeof want, "%s/sys/fs/cgroup/app.slice/inferd.service",
             t->root);
    assert_string_equal(lim.cgroup_dir, want);
}

static void test_memory_limit_v2_max_falls_through_to_v1(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:memory:/app\n0::/app\n");
    W(t, "sys/fs/cgroup/app/memory.max", "max\n");
    W(t, "sys/fs/cgroup/memory/app/memory.limit_in_bytes", "134217728\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 1);
    assert_int_equal(lim.limit_bytes, 134217728ULL);
}

static void test_memory_limit_v2_max_alone_is_default(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/app\n");
    W(t, "sys/fs/cgroup/app/memory.max", "max\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "default");
    assert_int_equal(lim.cgroup_version, 0);
    assert_int_equal(lim.limit_bytes, DEFAULT_BYTES);
}

static void test_memory_limit_hybrid_unified_mount(void **state) {
    fixture_tree *t = *state;
    /* Hybrid host: v1 controllers plus the v2 tree at .../unified. The v2
     * limit is preferred over v1's. */
    W(t, "proc/self/cgroup",
      "12:cpuset:/\n4:memory:/app\n1:name=systemd:/app\n0::/app\n");
    W(t, "sys/fs/cgroup/unified/app/memory.max", "209715200\n");
    W(t, "sys/fs/cgroup/memory/app/memory.limit_in_bytes", "536870912\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 2);
    assert_int_equal(lim.limit_bytes, 209715200ULL);
    char want[1024];
    snprintf(want, sizeof want, "%s/sys/fs/cgroup/unified/app", t->root);
    assert_string_equal(lim.cgroup_dir, want);
}

/* ---------------------------------------------------------- limit: v1 */

static void test_memory_limit_v1_number(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup",
      "9:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n");
    W(t, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
      "1073741824\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 1);
    assert_int_equal(lim.limit_bytes, 1073741824ULL);
    char want[1024];
    snprintf(want, sizeof want, "%s/sys/fs/cgroup/memory/docker/abc", t->root);
    assert_string_equal(lim.cgroup_dir, want);
}

static void test_memory_limit_v1_controller_in_list(void **state) {
    fixture_tree *t = *state;
    /* "memory" as one of several comma-separated controllers, and a
     * "memoryx" look-alike that must not match. */
    W(t, "proc/self/cgroup", "5:memoryx:/wrong\n3:cpu,memory:/right\n");
    W(t, "sys/fs/cgroup/memory/right/memory.limit_in_bytes", "67108864\n");
    W(t, "sys/fs/cgroup/memory/wrong/memory.limit_in_bytes", "1048576\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 1);
    assert_int_equal(lim.limit_bytes, 67108864ULL);
}

static void test_memory_limit_v1_unlimited_is_default(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:memory:/\n");
    W(t, "sys/fs/cgroup/memory/memory.limit_in_bytes",
      "9223372036854771712\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "default");
    assert_int_equal(lim.cgroup_version, 0);
    assert_int_equal(lim.limit_bytes, DEFAULT_BYTES);
}

/* ------------------------------------------------- limit: other cases */

static void test_memory_limit_missing_files_is_default(void **state) {
    fixture_tree *t = *state;
    memory_limit lim;
    /* No proc/self/cgroup at all. */
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "default");
    assert_int_equal(lim.cgroup_version, 0);
    assert_int_equal(lim.limit_bytes, DEFAULT_BYTES);
    /* A cgroup file naming cgroups whose limit files do not exist. */
    W(t, "proc/self/cgroup", "4:memory:/gone\n0::/gone\n");
    memory_limit_detect(t->root, 0, 7ULL << 20, &lim);
    assert_string_equal(lim.source, "default");
    assert_int_equal(lim.cgroup_version, 0);
    assert_int_equal(lim.limit_bytes, 7ULL << 20);
    /* A root that does not exist. */
    memory_limit_detect("/nonexistent-inferd-root", 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "default");
}

static void test_memory_limit_env_wins(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/app\n");
    W(t, "sys/fs/cgroup/app/memory.max", "268435456\n");
    memory_limit lim;
    memory_limit_detect(t->root, 300, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "env");
    assert_int_equal(lim.cgroup_version, 0);
    assert_int_equal(lim.limit_bytes, 300ULL << 20);
}

static void test_memory_limit_mount_root_fallback(void **state) {
    fixture_tree *t = *state;
    /* A cgroup namespace: /proc/self/cgroup names a path that is not under
     * the mount, whose root is the container's own cgroup. */
    W(t, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    W(t, "sys/fs/cgroup/memory.max", "104857600\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 2);
    assert_int_equal(lim.limit_bytes, 104857600ULL);
    char want[1024];
    snprintf(want, sizeof want, "%s/sys/fs/cgroup", t->root);
    assert_string_equal(lim.cgroup_dir, want);
}

static void test_memory_limit_v1_mount_root_fallback(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:memory:/docker/abc\n");
    W(t, "sys/fs/cgroup/memory/memory.limit_in_bytes", "52428800\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_string_equal(lim.source, "cgroup");
    assert_int_equal(lim.cgroup_version, 1);
    assert_int_equal(lim.limit_bytes, 52428800ULL);
    char want[1024];
    snprintf(want, sizeof want, "%s/sys/fs/cgroup/memory", t->root);
    assert_string_equal(lim.cgroup_dir, want);
}

/* --------------------------------------------------------------- usage */

static void env_limit(memory_limit *lim, double mb) {
    memset(lim, 0, sizeof *lim);
    lim->limit_bytes = (uint64_t)(mb * MB);
    lim->source = "env";
}

static void test_memory_usage_levels_from_rss(void **state) {
    (void)state;
    memory_limit lim;
    env_limit(&lim, 100);
    memory_process proc = {.rss_mb = 50};
    memory_usage u;

    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.source, "rss");
    assert_float_equal(u.usage_mb, 50, 1e-9);
    assert_float_equal(u.percent, 50, 1e-9);
    assert_string_equal(u.level, "ok");

    proc.rss_mb = 79.9;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.level, "ok");

    proc.rss_mb = 80; /* the boundary belongs to the higher level */
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.level, "warning");

    proc.rss_mb = 90;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_float_equal(u.percent, 90, 1e-9);
    assert_string_equal(u.level, "warning");

    proc.rss_mb = 95;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.level, "critical");

    proc.rss_mb = 150;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_float_equal(u.percent, 150, 1e-9);
    assert_string_equal(u.level, "critical");

    /* The thresholds are the caller's. */
    proc.rss_mb = 50;
    memory_usage_read(&lim, &proc, 40, 60, &u);
    assert_string_equal(u.level, "warning");
}

static void test_memory_usage_default_limit_uses_rss(void **state) {
    fixture_tree *t = *state;
    memory_limit lim;
    memory_limit_detect(t->root, 0, 200ULL << 20, &lim);
    assert_string_equal(lim.source, "default");
    memory_process proc = {.rss_mb = 20};
    memory_usage u;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.source, "rss");
    assert_float_equal(u.percent, 10, 1e-9);
    assert_string_equal(u.level, "ok");
}

static void test_memory_usage_cgroup_v1_net_of_inactive_file(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "4:memory:/job\n");
    W(t, "sys/fs/cgroup/memory/job/memory.limit_in_bytes", "419430400\n");
    W(t, "sys/fs/cgroup/memory/job/memory.usage_in_bytes", "314572800\n");
    /* v1 uses the hierarchical total_inactive_file, not inactive_file. */
    W(t, "sys/fs/cgroup/memory/job/memory.stat",
      "cache 200000000\nrss 100000000\ninactive_file 1048576\n"
      "active_file 5000000\ntotal_cache 200000000\n"
      "total_inactive_file 104857600\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_int_equal(lim.cgroup_version, 1);
    memory_process proc = {.rss_mb = 1};
    memory_usage u;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.source, "cgroup");
    assert_float_equal(u.usage_mb, 200, 1e-9); /* 300 - 100 */
    assert_float_equal(u.percent, 50, 1e-9);
    assert_string_equal(u.level, "ok");
}

static void test_memory_usage_cgroup_v2_net_of_inactive_file(void **state) {
    fixture_tree *t = *state;
    W(t, "proc/self/cgroup", "0::/svc\n");
    W(t, "sys/fs/cgroup/svc/memory.max", "262144000\n");     /* 250 MB */
    W(t, "sys/fs/cgroup/svc/memory.current", "251658240\n"); /* 240 MB */
    W(t, "sys/fs/cgroup/svc/memory.stat",
      "anon 100000000\nfile 150000000\nactive_file 99999999\n"
      "inactive_file 20971520\nslab 1000\n"); /* 20 MB */
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_int_equal(lim.cgroup_version, 2);
    memory_process proc = {.rss_mb = 1};
    memory_usage u;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.source, "cgroup");
    assert_float_equal(u.usage_mb, 220, 1e-9); /* 240 - 20 */
    assert_float_equal(u.percent, 88, 1e-9);
    assert_string_equal(u.level, "warning");

    /* Inactive cache larger than the usage is not subtracted. */
    W(t, "sys/fs/cgroup/svc/memory.stat", "inactive_file 999999999999\n");
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_float_equal(u.usage_mb, 240, 1e-9);
    assert_string_equal(u.level, "critical");

    /* No memory.stat: the raw usage. */
    char path[1024];
    snprintf(path, sizeof path, "%s/sys/fs/cgroup/svc/memory.stat", t->root);
    assert_int_equal(unlink(path), 0);
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.source, "cgroup");
    assert_float_equal(u.usage_mb, 240, 1e-9);
}

static void test_memory_usage_cgroup_unreadable_uses_rss(void **state) {
    fixture_tree *t = *state;
    /* A limit but no memory.current: fall back to RSS. */
    W(t, "proc/self/cgroup", "0::/svc\n");
    W(t, "sys/fs/cgroup/svc/memory.max", "104857600\n");
    memory_limit lim;
    memory_limit_detect(t->root, 0, DEFAULT_BYTES, &lim);
    assert_int_equal(lim.cgroup_version, 2);
    memory_process proc = {.rss_mb = 10};
    memory_usage u;
    memory_usage_read(&lim, &proc, 80, 95, &u);
    assert_string_equal(u.source, "rss");
    assert_float_equal(u.usage_mb, 10, 1e-9);
    assert_float_equal(u.percent, 10, 1e-9);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tree_setup, tree_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_status_field_values),
        cmocka_unit_test(test_memory_status_field_missing_key),
        cmocka_unit_test(test_memory_status_field_key_prefix),
        cmocka_unit_test(test_memory_process_read_real_process),
        T(test_memory_limit_v2_number),
        T(test_memory_limit_v2_max_falls_through_to_v1),
        T(test_memory_limit_v2_max_alone_is_default),
        T(test_memory_limit_hybrid_unified_mount),
        T(test_memory_limit_v1_number),
        T(test_memory_limit_v1_controller_in_list),
        T(test_memory_limit_v1_unlimited_is_default),
        T(test_memory_limit_missing_files_is_default),
        T(test_memory_limit_env_wins),
        T(test_memory_limit_mount_root_fallback),
        T(test_memory_limit_v1_mount_root_fallback),
        cmocka_unit_test(test_memory_usage_levels_from_rss),
        T(test_memory_usage_default_limit_uses_rss),
        T(test_memory_usage_cgroup_v1_net_of_inactive_file),
        T(test_memory_usage_cgroup_v2_net_of_inactive_file),
        T(test_memory_usage_cgroup_unreadable_uses_rss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
