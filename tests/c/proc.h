/* What the C tests read of a process: its threads by name (to see the
 * library's exporter come and go, its flush threads at an exit) and the
 * time since a moment (printed, or a bound where nothing can be counted). */
#ifndef SPANGUARD_TEST_PROC_H
#define SPANGUARD_TEST_PROC_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* Threads of process `pid` (0: this one) whose name starts with `name`
 * (the kernel keeps 15 characters of one); -1 when /proc cannot be read
 * (the process is gone). */
static inline int threads_named_in(pid_t pid, const char *name) {
    char task[64] = "/proc/self/task";
    if (pid) snprintf(task, sizeof task, "/proc/%d/task", (int)pid);
    DIR *d = opendir(task);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[400], comm[64] = "";
        snprintf(path, sizeof path, "%s/%s/comm", task, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Threads of this process whose name starts with `name`. */
static inline int threads_named(const char *name) { return threads_named_in(0, name); }

/* Seconds on the monotonic clock since `t0`. */
static inline double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

#endif
