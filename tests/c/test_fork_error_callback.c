/* fork: a child's tracer, made at its first use, is told its failures
 * through the error callback (and user_data) its parent's had at the fork,
 * as the parent's is: the child's memory is a copy, so the function and
 * what user_data points at are there. Before, the child's new tracer had
 * no callback: a worker's failures (its batches spooled, a backend
 * rejecting its spans) were said in the parent and silent in the child.
 *
 * Nothing listens at the endpoint, so each flush spools and reports a
 * batch. The parent counts its own calls; the child counts in its copy of
 * the counter (user_data) and must see calls of its own after the fork,
 * each with the user_data the parent gave. A callback removed before a
 * second fork stays removed in that child. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

#define S(str) (str), strlen(str)

struct tally {
    atomic_int calls;
    atomic_int wrong_user_data;
};

static struct tally tally;

static void counting(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len;
    if (user_data != &tally) atomic_fetch_add(&tally.wrong_user_data, 1);
    atomic_fetch_add(&tally.calls, 1);
}

static void emit(spanguard_tracer *t, int n) {
    for (int i = 0; i < n; i++) {
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S("op"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    }
}

/* Forks a child that records and flushes; returns the child's count of
 * callback calls since the fork (its exit status), or -1. */
static int calls_in_child(spanguard_tracer *t) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Its own tally: the parent's calls and checks came along. */
        checks = failures = 0;
        atomic_store(&tally.calls, 0);
        emit(t, 3);
        CHECK(spanguard_result_is_ok(spanguard_flush(t, 10000)));
        CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
        CHECK(atomic_load(&tally.wrong_user_data) == 0);
        fflush(NULL);
        int calls = atomic_load(&tally.calls);
        _exit(check_summary() != 0 ? 100 : (calls > 99 ? 99 : calls));
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 100);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_fork_error_callback-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "fork-error-callback";
    cfg.endpoint = "http://127.0.0.1:1/v1/traces"; /* nothing listens: refused */
    cfg.spool_dir = spool;
    cfg.export_timeout_ms = 50;
    cfg.request_timeout_ms = 200;
    spanguard_tracer *t;
    CHECK(spanguard_tracer_new(&cfg, &t) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_set_error_callback(t, counting, &tally) == SPANGUARD_RESULT_OK);
    emit(t, 3);
    CHECK(spanguard_result_is_ok(spanguard_flush(t, 10000)));
    int parent_calls = atomic_load(&tally.calls);
    CHECK(parent_calls >= 1);

    int child_calls = calls_in_child(t);
    if (child_calls < 1) fprintf(stderr, "the child's tracer called the callback %d times\n", child_calls);
    CHECK(child_calls >= 1);

    /* Removed before the fork: the child's tracer has none either. */
    CHECK(spanguard_set_error_callback(t, NULL, NULL) == SPANGUARD_RESULT_OK);
    CHECK(calls_in_child(t) == 0);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
    spanguard_tracer_free(t);
    CHECK(atomic_load(&tally.wrong_user_data) == 0);
    return check_summary();
}
