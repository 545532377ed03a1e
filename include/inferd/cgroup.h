/* cgroup.h -- where this process's cgroup is, for the memory limit and the
 * CPU quota. Reads <root>/proc/self/cgroup; root is "" on the real system
 * and a fixture directory in tests. Thread-safe. */
#ifndef INFERD_CGROUP_H
#define INFERD_CGROUP_H

#include <stddef.h>

/* The cgroup path ("/a/b") of a v1 controller ("memory", "cpu"), or of the
 * v2 unified hierarchy when controller is NULL. 0, or -1 when absent. */
int cgroup_path(const char *root, const char *controller, char *out,
                size_t len);

/* Read a small text file whole; bytes read or -1. */
int cgroup_read_file(const char *path, char *buf, size_t len);

#endif
