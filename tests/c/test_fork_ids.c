/* fork: a forked child never repeats its parent's ids. A thread draws its
 * ids from a generator kept in its cache of free slots (or, without one,
 * a thread-local); the child inherits the parent's memory, generators
 * included. So the parent begins spans (roots, and children of a root:
 * the two ways ids are drawn) before and after a fork, the child the same
 * after it, sending its traceparents up a pipe; no trace id or span id
 * of the child's may be one of the parent's. Twice: with a tracer whose threads have caches (the
 * default sizes), and with one too small for any (the thread-local). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

#define S(str) (str), strlen(str)

enum { SPANS = 300, TP = 55 };

/* 2 * SPANS traceparents: SPANS roots, then SPANS children of one root. */
static void record(spanguard_tracer *t, char (*out)[TP + 1]) {
    for (int i = 0; i < SPANS; i++) {
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S("root"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_traceparent(s, out[i], TP + 1), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    }
    spanguard_span parent;
    CHECK_RC(spanguard_span_begin(t, S("parent"), SPANGUARD_SPAN_NONE, 0, &parent), SPANGUARD_RESULT_OK);
    for (int i = 0; i < SPANS; i++) {
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S("child"), parent, 0, &s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_traceparent(s, out[SPANS + i], TP + 1), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    }
    CHECK_RC(spanguard_span_end(parent), SPANGUARD_RESULT_OK);
}

/* "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>" */
static int same_trace(const char *a, const char *b) { return memcmp(a + 3, b + 3, 32) == 0; }
static int same_span(const char *a, const char *b) { return memcmp(a + 36, b + 36, 16) == 0; }

static void fork_and_compare(const char *what, uint32_t queue, uint32_t open) {
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "fork-ids-test";
    cfg.endpoint = "discard:";
    cfg.install_signal_handlers = 0;
    cfg.max_queue_size = queue;
    cfg.max_open_spans = open;
    spanguard_tracer *t;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    /* The parent's generator in use before the fork, as in a server that
     * forks its workers after it started. */
    static char parent[4 * SPANS][TP + 1], child[2 * SPANS][TP + 1];
    record(t, parent);
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    int failed_before = failures; /* the child's exit says only its own */
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        record(t, child);
        CHECK(write(fds[1], child, sizeof child) == (ssize_t)sizeof child);
        _exit(failures > failed_before ? 1 : 0);
    }
    close(fds[1]);
    record(t, parent + 2 * SPANS);
    size_t got = 0;
    ssize_t n;
    while (got < sizeof child && (n = read(fds[0], (char *)child + got, sizeof child - got)) > 0) got += (size_t)n;
    close(fds[0]);
    CHECK(got == sizeof child);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int traces = 0, spans = 0;
    for (int i = 0; i < 4 * SPANS; i++) {
        for (int j = 0; j < 2 * SPANS; j++) {
            /* Children share their root's trace id: only roots count. */
            if (i % (2 * SPANS) < SPANS && j < SPANS && same_trace(parent[i], child[j])) traces++;
            if (same_span(parent[i], child[j])) spans++;
        }
    }
    if (traces || spans)
        fprintf(stderr, "%s: %d trace ids and %d span ids in both parent and child\n", what, traces, spans);
    CHECK(traces == 0 && spans == 0);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
}

int main(void) {
    fork_and_compare("with caches", 2048, 1024);
    /* 128 slots: fewer than a cache needs (8 * 32). */
    fork_and_compare("without caches", 64, 64);
    return check_summary();
}
