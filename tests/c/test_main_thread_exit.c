/* A program whose main thread calls pthread_exit once its workers are
 * started ends when the last of them does (glibc then calls exit(0), which
 * runs the exit hooks). spanguard's exporter thread kept such a process
 * alive for good: a zombie main thread plus our threads, which block the
 * application's signals, so only SIGKILL ended it and its spans were never
 * sent. (Python's way to it: a child forked from a thread other than the
 * main one, whose code leaves that thread.) Here a child does that; it
 * must exit 0 within 20 s, with its worker's 100 spans delivered. */
#define _GNU_SOURCE
#include <pthread.h>
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

static void *worker(void *arg) {
    struct spanguard_tracer *tracer = arg;
    for (int i = 0; i < 100; i++) {
        spanguard_span span;
        if (spanguard_span_begin(tracer, S("worker.span"), 0, 0, &span) == SPANGUARD_RESULT_OK)
            spanguard_span_end(span);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_main_thread_exit-spans";
    char sink[512], spool[512];
    snprintf(sink, sizeof sink, "%s/spans", scratch);
    snprintf(spool, sizeof spool, "%s/spool", scratch);
    pid_t child = fork();
    if (child == 0) {
        struct spanguard_config cfg;
        spanguard_config_init(&cfg, sizeof cfg);
        cfg.sink_dir = sink;
        cfg.spool_dir = spool;
        cfg.schedule_delay_ms = 100;
        struct spanguard_tracer *tracer = NULL;
        if (spanguard_tracer_new(&cfg, &tracer) != SPANGUARD_RESULT_OK) _exit(3);
        pthread_t t;
        if (pthread_create(&t, NULL, worker, tracer) != 0) _exit(4);
        pthread_exit(NULL); /* the worker is the process's last thread of its own */
    }
    CHECK(child > 0);
    int status = 0;
    pid_t done = 0;
    for (int i = 0; i < 2000 && done == 0; i++) {
        done = waitpid(child, &status, WNOHANG);
        if (done == 0) usleep(10000);
    }
    if (done == 0) {
        fprintf(stderr, "the child did not exit within 20 s\n");
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        CHECK(!"the child exited");
    } else {
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(count_in_dir(sink, "\"worker.span\"") == 100);
    return check_summary();
}
