/* fixture_tree.h -- builds a throw-away file tree (a fake "/" with
 * proc/self/cgroup and sys/fs/cgroup/...) in a temp directory, for the
 * tests of code that takes a root prefix. Header-only; included by the
 * test files that need it. */
#ifndef INFERD_TEST_FIXTURE_TREE_H
#define INFERD_TEST_FIXTURE_TREE_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char root[256];
} fixture_tree;

/* Create an empty root directory. 0 or -1. */
static inline int tree_make(fixture_tree *t) {
    const char *tmp = getenv("TMPDIR");
    snprintf(t->root, sizeof t->root, "%s/inferd-unit-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(t->root) ? 0 : -1;
}

/* mkdir -p of the parent directories of path (absolute). */
static inline int tree_mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

/* Write text to <root>/<rel>, creating directories. 0 or -1. */
static inline int tree_write(const fixture_tree *t, const char *rel,
                             const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", t->root, rel);
    if (tree_mkdirs(path)) return -1;
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static inline int tree_rm_one(const char *path, const struct stat *sb,
                              int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove the whole tree. */
static inline void tree_remove(fixture_tree *t) {
    if (t->root[0]) nftw(t->root, tree_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    t->root[0] = '\0';
}

/* cmocka setup and teardown: a fresh tree in *state for each test. */
static inline int tree_setup(void **state) {
    fixture_tree *t = calloc(1, sizeof *t);
    if (!t || tree_make(t)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static inline int tree_teardown(void **state) {
    fixture_tree *t = *state;
    tree_remove(t);
    free(t);
    return 0;
}

#endif
