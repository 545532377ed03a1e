/* memory.h -- how much memory the process uses and how much it may use.
 *
 * Process figures come from libproc2 (VmRSS, VmSize, RssAnon, RssFile of
 * /proc/self/status; VmHWM, which libproc2 does not expose, is parsed from
 * the same file). The limit comes from MEMORY_LIMIT_MB, else the process's
 * cgroup (v2 memory.max, then v1 memory.limit_in_bytes), else the default.
 * memory_process_read() is thread-safe. */
#ifndef INFERD_MEMORY_H
#define INFERD_MEMORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double rss_mb, vms_mb, anon_mb, file_mb, hwm_mb;
} memory_process;

typedef struct {
    uint64_t limit_bytes;
    const char *source; /* "env", "cgroup" or "default" */
    int cgroup_version; /* 1 or 2 when a cgroup was found, else 0 */
    char cgroup_dir[512]; /* the cgroup's directory, for usage readings */
} memory_limit;

typedef struct {
    double usage_mb;      /* what counts against the limit */
    const char *source;   /* "cgroup" or "rss" */
    double percent;       /* usage / limit * 100 */
    const char *level;    /* "ok", "warning", "critical" */
} memory_usage;

/* Read this process's figures. Returns 0 or ERR_INTERNAL. */
int memory_process_read(memory_process *out, char *err, size_t errlen);

/* The value in MB of a "Key:   123 kB" line of a /proc status text, or -1. */
double memory_status_field(const char *status_text, const char *key);

/* Detect the limit. root prefixes every path ("" for the real system, a
 * fixture directory in tests): <root>/proc/self/cgroup and
 * <root>/sys/fs/cgroup/... are read. env_limit_mb > 0 wins. */
void memory_limit_detect(const char *root, int env_limit_mb,
                         uint64_t default_bytes, memory_limit *out);

/* Current usage against lim: the cgroup's usage net of its inactive page
 * cache when the limit came from the cgroup, else RSS. */
void memory_usage_read(const memory_limit *lim, const memory_process *proc,
                       int warning_percent, int critical_percent,
                       memory_usage *out);

#endif
