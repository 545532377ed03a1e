/* cpu.c -- counts the CPUs available to the process, cgroup quota aware,
 * so that libtorch does not start more threads than it can run. */
#include "inferd/cpu.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/cgroup.h"

/* The directory of this process's cgroup under mount: v1 controller, or
 * v2 when controller is NULL. */
static int cgroup_dir(const char *root, const char *controller,
                      const char *mount, char *out, size_t len) {
    char cg[512];
    if (cgroup_path(root, controller, cg, sizeof cg)) return -1;
    snprintf(out, len, "%s%s%s", root, mount, strcmp(cg, "/") ? cg : "");
    return 0;
}

/* CPUs granted by a quota, or 0 when there is none. */
static double quota_cpus(const char *root) {
    char dir[1024], path[1100], buf[128];
    if (cgroup_dir(root, NULL, "/sys/fs/cgroup", dir, sizeof dir) == 0) {
        snprintf(path, sizeof path, "%s/cpu.max", dir);
        if (cgroup_read_file(path, buf, sizeof buf) > 0 && strncmp(buf, "max", 3)) {
            double q = 0, p = 0;
            if (sscanf(buf, "%lf %lf", &q, &p) == 2 && q > 0 && p > 0)
                return q / p;
        }
    }
    if (cgroup_dir(root, "cpu", "/sys/fs/cgroup/cpu", dir, sizeof dir) == 0) {
        snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
        if (cgroup_read_file(path, buf, sizeof buf) <= 0) return 0;
        double q = atof(buf);
        snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
        if (cgroup_read_file(path, buf, sizeof buf) <= 0) return 0;
        double p = atof(buf);
        if (q > 0 && p > 0) return q / p;
    }
    return 0;
}

int cpu_available(const char *root) {
    int n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    double q = quota_cpus(root);
    if (q > 0 && ceil(q) < n) n = (int)ceil(q);
    return n < 1 ? 1 : n;
}
