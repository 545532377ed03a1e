/* cpu.h -- how many CPUs this process may really use: its affinity mask,
 * capped by a cgroup CPU quota (v2 cpu.max, v1 cfs_quota_us/period). */
#ifndef INFERD_CPU_H
#define INFERD_CPU_H

/* At least 1. root prefixes the /proc and /sys paths ("" for the system). */
int cpu_available(const char *root);

#endif
