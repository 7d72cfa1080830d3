/* Worker processes, as multiprocessing and process pools make them: forked
 * from a process whose tracer runs, they leave through _exit (no exit
 * hooks) after a shutdown, or are ended with SIGTERM (Pool.terminate).
 * Every span a worker ended arrives exactly once; a terminated worker's
 * open span arrives marked interrupted with its signal, recovered by the
 * parent's running tracer; a worker that shut down leaves nothing in the
 * spool directory, and after the parent's shutdown the directory is empty. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define SPANS 50
#define WORKERS 3

static char sink[512], spool[512];

static void emit(spanguard_tracer *t, const char *prefix, int worker, int n) {
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%d-%d", prefix, worker, i);
        spanguard_span s;
        CHECK(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s) == SPANGUARD_RESULT_OK);
        CHECK(spanguard_span_end(s) == SPANGUARD_RESULT_OK);
    }
}

/* Each of the named spans is in the sink exactly once. */
static int each_once(const char *prefix, int worker, int n) {
    int once = 0;
    for (int i = 0; i < n; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "\"name\":\"%s-%d-%d\"", prefix, worker, i);
        long c = count_in_dir(sink, needle);
        if (c != 1) fprintf(stderr, "  %s-%d-%d arrived %ld times\n", prefix, worker, i, c);
        once += c == 1;
    }
    return once == n;
}

/* A worker that shuts its tracer down and leaves with _exit. */
static void clean_worker(spanguard_tracer *t, int worker) {
    emit(t, "clean", worker, SPANS);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    _exit(failures ? 1 : 0);
}

/* A worker that is terminated: spans ended, one still open. */
static void terminated_worker(spanguard_tracer *t, int worker, int ready) {
    emit(t, "term", worker, SPANS);
    char name[64];
    snprintf(name, sizeof name, "open-%d", worker);
    spanguard_span open_span;
    CHECK(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &open_span) == SPANGUARD_RESULT_OK);
    if (write(ready, "r", 1) != 1) _exit(3);
    for (;;) pause();
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/workers-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "workers";
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.schedule_delay_ms = 100;
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    emit(t, "parent", 0, 5);

    /* fork + shutdown + _exit */
    for (int w = 0; w < WORKERS; w++) {
        pid_t pid = fork();
        if (pid == 0) clean_worker(t, w);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        char mark[32];
        snprintf(mark, sizeof mark, "-%010d-", (int)pid);
        CHECK(files_in_dir(spool, mark) == 0); /* nothing of the worker is left */
    }

    /* fork + SIGTERM */
    for (int w = 0; w < WORKERS; w++) {
        int ready[2];
        if (pipe(ready) != 0) return 2;
        pid_t pid = fork();
        if (pid == 0) {
            close(ready[0]);
            terminated_worker(t, w, ready[1]);
        }
        close(ready[1]);
        char byte;
        CHECK(read(ready[0], &byte, 1) == 1);
        close(ready[0]);
        kill(pid, SIGTERM);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    }

    /* The parent's running tracer finds the terminated workers' dumps (a
     * minute is only a bound for a hang: it looks every few seconds). */
    for (int waited = 0; waited < 600 && count_in_dir(sink, "\"spanguard.interrupted\"") < WORKERS; waited++) {
        struct timespec tick = {0, 100000000L};
        nanosleep(&tick, NULL);
    }
    CHECK(count_in_dir(sink, "\"spanguard.interrupted\"") == WORKERS);

    emit(t, "parent", 1, 5);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);

    for (int w = 0; w < WORKERS; w++) {
        CHECK(each_once("clean", w, SPANS));
        CHECK(each_once("term", w, SPANS));
        char needle[64];
        snprintf(needle, sizeof needle, "\"name\":\"open-%d\"", w);
        CHECK(count_in_dir(sink, needle) == 1);
    }
    CHECK(each_once("parent", 0, 5) && each_once("parent", 1, 5));
    CHECK(count_in_dir(sink, "{\"key\":\"spanguard.signal\",\"value\":{\"intValue\":\"15\"}}") == WORKERS);
    CHECK(files_in_dir(spool, "") == 0);
    return check_summary();
}
