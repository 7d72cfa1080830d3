/* How often a string occurs in the local sink's files: the C tests check
 * what was exported by reading what the file sink wrote. */
#ifndef SPANGUARD_TEST_SINK_COUNT_H
#define SPANGUARD_TEST_SINK_COUNT_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* Calls `each(line, ctx)` with every line of the .jsonl files of `dir`
 * (in a buffer longer than any sink line, 1 MiB, kept until the next
 * walk) until it returns nonzero; that value, 0 when none did, or -1 when
 * the directory cannot be read. */
static inline int each_sink_line(const char *dir, int (*each)(const char *line, void *ctx), void *ctx) {
    static char line[2 << 20];
    DIR *d = opendir(dir);
    if (!d) return -1;
    int stop = 0;
    struct dirent *e;
    while (!stop && (e = readdir(d))) {
        if (!strstr(e->d_name, ".jsonl")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (!stop && fgets(line, sizeof line, f)) stop = each(line, ctx);
        fclose(f);
    }
    closedir(d);
    return stop;
}

struct sink_count_ {
    const char *needle;
    long total;
    const char *found;
};

static inline int sink_count_line_(const char *line, void *ctx) {
    struct sink_count_ *c = ctx;
    for (const char *p = line; (p = strstr(p, c->needle)); p += strlen(c->needle)) c->total++;
    return 0;
}

/* Occurrences of `needle` in the .jsonl files of `dir`; -1 when the
 * directory cannot be read. */
static inline long count_in_dir(const char *dir, const char *needle) {
    struct sink_count_ c = {needle, 0, NULL};
    return each_sink_line(dir, sink_count_line_, &c) < 0 ? -1 : c.total;
}

static inline int sink_find_line_(const char *line, void *ctx) {
    struct sink_count_ *c = ctx;
    const char *p = strstr(line, c->needle);
    if (p) c->found = p + strlen(c->needle);
    return p != NULL;
}

/* Where `needle` first occurs in the sink files of `dir`: a pointer just
 * past it, in a line kept until the next walk (`each_sink_line`); NULL
 * when it is not there. */
static inline const char *find_in_sink(const char *dir, const char *needle) {
    struct sink_count_ c = {needle, 0, NULL};
    return each_sink_line(dir, sink_find_line_, &c) > 0 ? c.found : NULL;
}

/* Entries of `dir` whose name contains `needle` ("" for every entry but
 * . and ..); -1 when the directory cannot be read. Names of what was found
 * go to stderr, for the failure message. A spool directory's `outcomes`
 * (each tracer's outcome record, written at every stop, clean or not, for
 * `spanguard why`) is not a leftover, nor its `.sender-key` (the key of the
 * files' sender marks, made once for the directory): counted only when the
 * needle names them. */
static inline long files_in_dir(const char *dir, const char *needle) {
    long total = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!strstr(e->d_name, needle)) continue;
        if (strcmp(e->d_name, "outcomes") == 0 && strstr(needle, "outcomes") == NULL) continue;
        if (strcmp(e->d_name, ".sender-key") == 0 && strstr(needle, "sender-key") == NULL) continue;
        fprintf(stderr, "  found %s/%s\n", dir, e->d_name);
        total++;
    }
    closedir(d);
    return total;
}

/* Entries of `dir` whose name ends with `suffix` ("" for every entry but
 * . and ..), told silently (the before/after counts of a test); 0 when
 * the directory cannot be read. */
static inline int files_ending(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    size_t slen = strlen(suffix);
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t len = strlen(e->d_name);
        n += len >= slen && strcmp(e->d_name + len - slen, suffix) == 0;
    }
    closedir(d);
    return n;
}

#endif
