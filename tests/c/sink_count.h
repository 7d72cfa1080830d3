/* How often a string occurs in the local sink's files: the C tests check
 * what was exported by reading what the file sink wrote. */
#ifndef SPANGUARD_TEST_SINK_COUNT_H
#define SPANGUARD_TEST_SINK_COUNT_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* Occurrences of `needle` in the .jsonl files of `dir`; -1 when the
 * directory cannot be read. */
static inline long count_in_dir(const char *dir, const char *needle) {
    long total = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".jsonl")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        static char line[2 << 20]; /* longer than any sink line (1 MiB) */
        while (fgets(line, sizeof line, f))
            for (char *p = line; (p = strstr(p, needle)); p += strlen(needle)) total++;
        fclose(f);
    }
    closedir(d);
    return total;
}

/* Where `needle` first occurs in the sink files of `dir`: a pointer just
 * past it, in a line kept until the next call; NULL when it is not there. */
static inline const char *find_in_sink(const char *dir, const char *needle) {
    static char line[2 << 20]; /* longer than any sink line (1 MiB) */
    DIR *d = opendir(dir);
    if (!d) return NULL;
    const char *found = NULL;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (!strstr(e->d_name, ".jsonl")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (!found && fgets(line, sizeof line, f)) {
            char *p = strstr(line, needle);
            if (p) found = p + strlen(needle);
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

/* Entries of `dir` whose name contains `needle` ("" for every entry but
 * . and ..); -1 when the directory cannot be read. Names of what was found
 * go to stderr, for the failure message. */
static inline long files_in_dir(const char *dir, const char *needle) {
    long total = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!strstr(e->d_name, needle)) continue;
        fprintf(stderr, "  found %s/%s\n", dir, e->d_name);
        total++;
    }
    closedir(d);
    return total;
}

#endif
