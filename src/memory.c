/* memory.c -- process memory figures (libproc2) and the memory limit
 * (cgroup v2/v1 or configuration). */
#include "inferd/memory.h"

#include <libproc2/pids.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inferd/cgroup.h"
#include "inferd/error.h"

/* v1 reports "no limit" as a page-rounded LONG_MAX; anything this large is
 * unlimited for our purposes. */
#define UNLIMITED_BYTES (1ULL << 60)

static pthread_mutex_t pids_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pids_info *pids;
static enum pids_item pid_items[] = {PIDS_VM_RSS, PIDS_VM_SIZE,
                                     PIDS_VM_RSS_ANON, PIDS_VM_RSS_FILE};

double memory_status_field(const char *text, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (!strncmp(p, key, kl) && p[kl] == ':') {
            char *end;
            double kb = strtod(p + kl + 1, &end);
            if (end == p + kl + 1) return -1;
            return kb / 1024.0;
        }
    }
    return -1;
}

int memory_process_read(memory_process *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    unsigned self = (unsigned)getpid();
    int rc = 0;
    pthread_mutex_lock(&pids_lock);
    if (!pids && procps_pids_new(&pids, pid_items, 4) < 0) {
        pids = NULL;
        rc = error_set(err, errlen, ERR_INTERNAL, "libproc2: cannot open pids");
    } else {
        struct pids_fetch *f =
            procps_pids_select(pids, &self, 1, PIDS_SELECT_PID);
        if (!f || f->counts->total < 1) {
            rc = error_set(err, errlen, ERR_INTERNAL,
                           "libproc2: cannot read /proc/self/status");
        } else {
            struct pids_stack *s = f->stacks[0];
            out->rss_mb = PIDS_VAL(0, ul_int, s, pids) / 1024.0;
            out->vms_mb = PIDS_VAL(1, ul_int, s, pids) / 1024.0;
            out->anon_mb = PIDS_VAL(2, ul_int, s, pids) / 1024.0;
            out->file_mb = PIDS_VAL(3, ul_int, s, pids) / 1024.0;
        }
    }
    pthread_mutex_unlock(&pids_lock);
    char status[4096];
    if (cgroup_read_file("/proc/self/status", status, sizeof status) > 0)
        out->hwm_mb = memory_status_field(status, "VmHWM");
    return rc;
}

/* Parse a limit file: a byte count, or "max". 0 means unlimited/unknown. */
static uint64_t read_limit(const char *path) {
    char buf[64];
    if (cgroup_read_file(path, buf, sizeof buf) <= 0) return 0;
    if (!strncmp(buf, "max", 3)) return 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || v >= UNLIMITED_BYTES) return 0;
    return v;
}

/* Try <mount><cgpath>/<file>, then <mount>/<file> (a container whose
 * cgroup namespace makes the mount root its own cgroup). */
static uint64_t limit_at(const char *mount, const char *cgpath,
                         const char *file, char *dir, size_t dirlen) {
    char path[1024];
    const char *bases[2] = {cgpath, ""};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s/%s", mount,
                 strcmp(bases[i], "/") ? bases[i] : "", file);
        if (access(path, R_OK) != 0) continue;
        snprintf(dir, dirlen, "%s%s", mount,
                 strcmp(bases[i], "/") ? bases[i] : "");
        return read_limit(path);
    }
    return 0;
}

void memory_limit_detect(const char *root, int env_limit_mb,
                         uint64_t default_bytes, memory_limit *out) {
    memset(out, 0, sizeof *out);
    if (env_limit_mb > 0) {
        out->limit_bytes = (uint64_t)env_limit_mb << 20;
        out->source = "env";
        return;
    }
    char cg[512], mount[600], dir[512];
    if (cgroup_path(root, NULL, cg, sizeof cg) == 0) {
        /* Pure v2 mounts at /sys/fs/cgroup; hybrid hosts at .../unified. */
        static const char *mounts[] = {"/sys/fs/cgroup",
                                       "/sys/fs/cgroup/unified"};
        for (int i = 0; i < 2; i++) {
            snprintf(mount, sizeof mount, "%s%s", root, mounts[i]);
            uint64_t v = limit_at(mount, cg, "memory.max", dir, sizeof dir);
            if (v) {
                out->limit_bytes = v;
                out->source = "cgroup";
                out->cgroup_version = 2;
                snprintf(out->cgroup_dir, sizeof out->cgroup_dir, "%s", dir);
                return;
            }
        }
    }
    if (cgroup_path(root, "memory", cg, sizeof cg) == 0) {
        snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/memory", root);
        uint64_t v =
            limit_at(mount, cg, "memory.limit_in_bytes", dir, sizeof dir);
        if (v) {
            out->limit_bytes = v;
            out->source = "cgroup";
            out->cgroup_version = 1;
            snprintf(out->cgroup_dir, sizeof out->cgroup_dir, "%s", dir);
            return;
        }
    }
    out->limit_bytes = default_bytes;
    out->source = "default";
}

/* A "key value" line of memory.stat, in bytes; -1 if absent. */
static double stat_value(const char *text, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (!strncmp(p, key, kl) && p[kl] == ' ') return atof(p + kl + 1);
    return -1;
}

/* The cgroup's usage minus its inactive file pages (what the kernel can
 * reclaim before it OOM-kills), in MB; -1 when it cannot be read. */
static double cgroup_usage_mb(const memory_limit *lim) {
    char path[700], buf[8192];
    int v2 = lim->cgroup_version == 2;
    snprintf(path, sizeof path, "%s/%s", lim->cgroup_dir,
             v2 ? "memory.current" : "memory.usage_in_bytes");
    if (cgroup_read_file(path, buf, sizeof buf) <= 0) return -1;
    double usage = atof(buf);
    snprintf(path, sizeof path, "%s/memory.stat", lim->cgroup_dir);
    if (cgroup_read_file(path, buf, sizeof buf) > 0) {
        double inactive =
            stat_value(buf, v2 ? "inactive_file" : "total_inactive_file");
        if (inactive > 0 && inactive < usage) usage -= inactive;
    }
    return usage / (1024.0 * 1024.0);
}

void memory_usage_read(const memory_limit *lim, const memory_process *proc,
                       int warning_percent, int critical_percent,
                       memory_usage *out) {
    out->usage_mb = proc->rss_mb;
    out->source = "rss";
    if (lim->cgroup_version && !strcmp(lim->source, "cgroup")) {
        double cg = cgroup_usage_mb(lim);
        if (cg >= 0) {
            out->usage_mb = cg;
            out->source = "cgroup";
        }
    }
    double limit_mb = (double)lim->limit_bytes / (1024.0 * 1024.0);
    out->percent = limit_mb > 0 ? out->usage_mb * 100.0 / limit_mb : 0;
    out->level = out->percent >= critical_percent  ? "critical"
                 : out->percent >= warning_percent ? "warning"
                                                   : "ok";
}
