/* What the C tests read of their own process: its threads by name (to see
 * the library's exporter come and go) and the time since a moment (to
 * bound a shutdown or an exit). */
#ifndef SPANGUARD_TEST_PROC_H
#define SPANGUARD_TEST_PROC_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Threads of this process whose name starts with `name` (the kernel keeps
 * 15 characters of one); -1 when /proc cannot be read. */
static inline int threads_named(const char *name) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Seconds on the monotonic clock since `t0`. */
static inline double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

#endif
