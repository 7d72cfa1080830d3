/* fork: the child gets a working tracer (one: one exporter thread), handles
 * from before the fork are stale in it, and no span is exported by both
 * processes. The child keeps its parent's clock anchor (the parent's
 * tracer has run long enough to have one): a span it times reads the
 * system clock's time. In the child, a span begun on its thread (biased to it) is
 * ended on another thread: taking it away needs membarrier in the child,
 * whatever the kernel carried over of the parent's registration. Both write to one sink directory (one file per process); the
 * parent then counts every span name across all files. After both shut
 * down cleanly, nothing of either is left in the spool directory. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static unsigned long long realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* This process's threads whose name starts with `prefix`. */
static int threads_named(const char *prefix) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(name, sizeof name, f) && strncmp(name, prefix, strlen(prefix)) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

static void *end_here(void *span) {
    return (void *)(long)spanguard_span_end(*(spanguard_span *)span);
}

static void emit(spanguard_tracer *t, const char *name, int n) {
    for (int i = 0; i < n; i++) {
        spanguard_span s;
        CHECK(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s) == SPANGUARD_RESULT_OK);
        CHECK(spanguard_span_end(s) == SPANGUARD_RESULT_OK);
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/fork-test-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "fork-test";
    cfg.sink_dir = dir;
    cfg.spool_dir = spool;
    cfg.schedule_delay_ms = 5000; /* nothing exported before the fork */
    cfg.install_signal_handlers = 1;
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    emit(t, "before-fork", 50); /* buffered, not yet exported */
    /* Long enough for the clock's first anchor (10 ms), which the child
     * keeps. */
    struct timespec anchored = {0, 50 * 1000000L};
    nanosleep(&anchored, NULL);
    spanguard_span open_in_parent;
    CHECK(spanguard_span_begin(t, S("open-at-fork"), SPANGUARD_SPAN_NONE, 0, &open_in_parent) ==
          SPANGUARD_RESULT_OK);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        CHECK(spanguard_span_end(open_in_parent) == SPANGUARD_RESULT_STALE_SPAN);
        emit(t, "in-child", 30);
        /* A span between two readings of the system clock; the bounds go
         * out in the name of another span, for the parent to compare. */
        unsigned long long before = realtime_ns();
        emit(t, "timed-in-child", 1);
        unsigned long long after = realtime_ns();
        char bounds[96];
        snprintf(bounds, sizeof bounds, "bounds-%llu-%llu", before, after);
        emit(t, bounds, 1);
        spanguard_span moved;
        CHECK(spanguard_span_begin(t, S("moved-in-child"), SPANGUARD_SPAN_NONE, 0, &moved) ==
              SPANGUARD_RESULT_OK);
        CHECK(spanguard_span_set_int(moved, S("n"), 1) == SPANGUARD_RESULT_OK);
        pthread_t other;
        void *ended = NULL;
        CHECK(pthread_create(&other, NULL, end_here, &moved) == 0);
        CHECK(pthread_join(other, &ended) == 0);
        CHECK((long)ended == SPANGUARD_RESULT_OK);
        spanguard_result again = spanguard_span_end(moved);
        CHECK(again == SPANGUARD_RESULT_ALREADY_ENDED || again == SPANGUARD_RESULT_STALE_SPAN);
        CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
        /* One replacement tracer: one exporter thread (named by itself as
         * it starts; it has run by the time the flush returned). */
        CHECK(threads_named("spanguard-expor") == 1);
        /* What arrived is counted in the sink by the parent below. */
        CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);
        printf("child: %d passed, %d failed\n", checks - failures, failures);
        fflush(stdout);
        _exit(failures ? 1 : 0);
    }
    emit(t, "after-fork", 20);
    CHECK(spanguard_span_end(open_in_parent) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Both shut down cleanly: neither left a crash file or anything else. */
    CHECK(files_in_dir(spool, "") == 0);
    CHECK(count_in_dir(dir, "\"name\":\"before-fork\"") == 50);
    CHECK(count_in_dir(dir, "\"name\":\"open-at-fork\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"after-fork\"") == 20);
    CHECK(count_in_dir(dir, "\"name\":\"in-child\"") == 30);
    CHECK(count_in_dir(dir, "\"name\":\"moved-in-child\"") == 1);
    /* The child's timed span lies between its readings of the system
     * clock, give or take the 1 ms a TSC anchor may miss by before it is
     * withdrawn. */
    unsigned long long start = 0, end = 0, before = 0, after = 0;
    const char *timed = find_in_sink(dir, "\"name\":\"timed-in-child\",\"kind\":0,");
    CHECK(timed && sscanf(timed, "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"", &start,
                          &end) == 2);
    const char *bounds = find_in_sink(dir, "\"name\":\"bounds-");
    CHECK(bounds && sscanf(bounds, "%llu-%llu", &before, &after) == 2);
    const unsigned long long ms = 1000000ull;
    CHECK(before > 0 && start + ms >= before && start <= end && end <= after + ms);
    spanguard_tracer_free(t);
    return check_summary();
}
