/* A forked worker with the flight recorder on is SIGKILLed (the OOM
 * killer, a supervisor's hard kill): nothing of it runs, and its spans are
 * in its flight file. Its parent's running tracer looks for such files
 * every few seconds and must send them while it runs, not only at its
 * shutdown; before, that look waited for the exporter's schedule delay,
 * so with a long one (a minute here, as set for a quiet agent) the
 * worker's spans sat unsent for as long, and were lost with the parent if
 * it was killed too before then.
 *
 * The parent's own spans queued at the fork, and an open one, are sent
 * once by the parent; the worker's ended spans arrive once, its open span
 * once, marked interrupted. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "idle_tracer.h"
#include "proc.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define SPANS 40

static void emit(spanguard_tracer *t, const char *prefix, int n) {
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%d", prefix, i);
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    }
}

/* Each of the prefix's n spans is in the sink exactly once. */
static int each_once(const char *dir, const char *prefix, int n) {
    int once = 0;
    for (int i = 0; i < n; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "\"name\":\"%s-%d\"", prefix, i);
        long c = count_in_dir(dir, needle);
        if (c != 1) fprintf(stderr, "  %s-%d arrived %ld times\n", prefix, i, c);
        once += c == 1;
    }
    return once == n;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_fork_flight_kill-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg = idle_tracer_config("fork-flight-kill", dir, spool, 1);
    spanguard_tracer *t = tracer_or_exit(&cfg);
    emit(t, "parent-before", 30); /* queued at the fork */
    spanguard_span open_in_parent;
    CHECK_RC(spanguard_span_begin(t, S("parent-open"), SPANGUARD_SPAN_NONE, 0, &open_in_parent),
             SPANGUARD_RESULT_OK);

    int ready[2];
    CHECK(pipe(ready) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        emit(t, "worker", SPANS);
        spanguard_span open_in_worker;
        CHECK_RC(spanguard_span_begin(t, S("worker-open"), SPANGUARD_SPAN_NONE, 0, &open_in_worker),
                 SPANGUARD_RESULT_OK);
        if (write(ready[1], failures ? "f" : "r", 1) != 1) _exit(3);
        for (;;) pause();
    }
    close(ready[1]);
    char said = 0;
    CHECK(read(ready[0], &said, 1) == 1 && said == 'r');
    close(ready[0]);
    kill(pid, SIGKILL);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* Sent by the running parent: its looks are 3 s apart; 20 s is only a
     * bound for a loaded machine, far below the schedule delay. */
    struct timespec killed;
    clock_gettime(CLOCK_MONOTONIC, &killed);
    while (count_in_dir(dir, "\"name\":\"worker-open\"") < 1 && seconds_since(&killed) < 20) {
        struct timespec tick = {0, 20000000L};
        nanosleep(&tick, NULL);
    }
    CHECK(count_in_dir(dir, "\"name\":\"worker-open\"") == 1);
    CHECK(each_once(dir, "worker", SPANS));
    fprintf(stderr, "waited %.1f s for the worker's flight file\n", seconds_since(&killed));

    CHECK_RC(spanguard_span_end(open_in_parent), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    CHECK(each_once(dir, "parent-before", 30));
    CHECK(each_once(dir, "worker", SPANS));
    CHECK(count_in_dir(dir, "\"name\":\"parent-open\"") == 1);
    CHECK(count_in_dir(dir, "\"name\":\"worker-open\"") == 1);
    CHECK(count_in_dir(dir, "\"spanguard.interrupted\"") == 1);
    CHECK(files_in_dir(spool, "") == 0);
    return check_summary();
}
