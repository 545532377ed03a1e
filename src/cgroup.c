/* cgroup.c -- parses /proc/self/cgroup to find this process's cgroups. */
#include "inferd/cgroup.h"

#include <stdio.h>
#include <string.h>

int cgroup_read_file(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (int)n;
}

/* Lines are "id:controllers:path"; v1 controllers are comma-separated
 * ("cpu,cpuacct"), the v2 line is "0::path". */
int cgroup_path(const char *root, const char *controller, char *out,
                size_t len) {
    char path[512], buf[4096];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    if (cgroup_read_file(path, buf, sizeof buf) <= 0) return -1;
    char *lsp;
    for (char *line = strtok_r(buf, "\n", &lsp); line;
         line = strtok_r(NULL, "\n", &lsp)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c1 = *c2 = '\0';
        int match = 0;
        if (!controller) {
            match = !strcmp(line, "0") && c1 + 1 == c2;
        } else {
            char *sp;
            for (char *t = strtok_r(c1 + 1, ",", &sp); t && !match;
                 t = strtok_r(NULL, ",", &sp))
                match = !strcmp(t, controller);
        }
        if (match) {
            snprintf(out, len, "%s", c2 + 1);
            return 0;
        }
    }
    return -1;
}
