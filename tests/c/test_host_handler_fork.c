/* A host handler that forks (a pre-fork server that starts a fresh
 * worker on SIGHUP; a supervisor that spawns its replacement on SIGTERM).
 * spanguard's watchdog, done flushing, holds the list of dispositions it
 * replaced while it delivers the host's handler and waits for its return;
 * the fork's prepare handler waited for that list: the handler, and so
 * the signal, took a whole second (the watchdog's wait) and the child
 * waited once more in the handler it was born in, for a thaw that nobody
 * in it would ever make. Now neither waits.
 *
 * The parent's handler forks; the child, back from the handler, records
 * a span with a tracer of its own and exits; the parent records a span
 * too. Bounds are generous: 600 ms catches the full second a wait took.
 * An alarm turns a hang into SIGALRM. */
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
#include "host_handler.h"
#include "proc.h"
#include "sink_count.h"

static volatile sig_atomic_t forked = -1; /* the handler's fork(): 0 in the child */

static void forks(int signal) {
    (void)signal;
    forked = fork();
}

int main(int argc, char **argv) {
    alarm(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_fork-spans";

    CHECK(set_handler(SIGHUP, forks, 0) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before-hup");

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kill(getpid(), SIGHUP); /* to this thread: the only one that takes it */
    while (forked < 0) pause();
    if (forked == 0) {
        alarm(10);
        record_span(t, "in-child");
        int ok = spanguard_result_is_ok(spanguard_shutdown(t, 5000));
        double took = seconds_since(&t0);
        if (took >= 0.6) fprintf(stderr, "child: %.3f s from the signal to its span\n", took);
        _exit(failures ? 3 : !ok ? 4 : took >= 0.6 ? 5 : 0);
    }
    double took = seconds_since(&t0);
    CHECK(took < 0.6);
    if (took >= 0.6) fprintf(stderr, "parent: the handler took %.3f s\n", took);
    record_span(t, "in-parent");
    int status = 0;
    CHECK(waitpid(forked, &status, 0) == forked);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) fprintf(stderr, "child: status %#x\n", status);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before-hup") == 1);
    CHECK(count_in_dir(scratch, "in-parent") == 1);
    CHECK(count_in_dir(scratch, "in-child") == 1);
    return check_summary();
}
