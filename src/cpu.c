/* cpu.c -- counts the CPUs available to the process, cgroup quota aware,
 * so that libtorch does not start more threads than it can run. */
#include "inferd/cpu.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_text(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

/* The cgroup directory of this process for a v1 controller, or v2 when
 * controller is NULL; appended to mount. */
static int cgroup_dir(const char *root, const char *controller,
                      const char *mount, char *out, size_t len) {
    char path[512], buf[4096];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    if (read_text(path, buf, sizeof buf) <= 0) return -1;
    char *sp;
    for (char *line = strtok_r(buf, "\n", &sp); line;
         line = strtok_r(NULL, "\n", &sp)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        int match = controller ? strstr(c1 + 1, controller) != NULL
                               : !strcmp(line, "0") && c1[1] == '\0';
        if (match) {
            snprintf(out, len, "%s%s%s", root, mount,
                     strcmp(c2 + 1, "/") ? c2 + 1 : "");
            return 0;
        }
    }
    return -1;
}

/* CPUs granted by a quota, or 0 when there is none. */
static double quota_cpus(const char *root) {
    char dir[1024], path[1100], buf[128];
    if (cgroup_dir(root, NULL, "/sys/fs/cgroup", dir, sizeof dir) == 0) {
        snprintf(path, sizeof path, "%s/cpu.max", dir);
        if (read_text(path, buf, sizeof buf) > 0 && strncmp(buf, "max", 3)) {
            double q = 0, p = 0;
            if (sscanf(buf, "%lf %lf", &q, &p) == 2 && q > 0 && p > 0)
                return q / p;
        }
    }
    if (cgroup_dir(root, "cpu", "/sys/fs/cgroup/cpu", dir, sizeof dir) == 0) {
        snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
        if (read_text(path, buf, sizeof buf) <= 0) return 0;
        double q = atof(buf);
        snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
        if (read_text(path, buf, sizeof buf) <= 0) return 0;
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
