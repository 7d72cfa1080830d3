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
 * too. What each wait was is checked, not how long anything took (a
 * loaded machine makes any bound on that fail now and then):
 * - the child's wait was a thousand sleeps of a millisecond in the
 *   handler (the trampoline's wait for a thaw): the child, a new process
 *   whose counters start at zero, has made far fewer voluntary context
 *   switches than that when it is back from the handler;
 * - the parent's fork slept (a voluntary context switch in the fork) until
 *   the watchdog stopped waiting for the handler (SIGHUP's disposition
 *   spanguard's own again when the fork returned, not the delivery's).
 *   Either alone can happen without the bug (the fork blocks a moment on
 *   a lock of glibc's; a handler slowed past the watchdog's whole wait
 *   finds it over): both together are the bug.
 * An alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

static volatile sig_atomic_t forked = -1; /* the handler's fork(): 0 in the child */
static volatile sig_atomic_t fork_slept = -1;   /* voluntary context switches in it */
static volatile sig_atomic_t fork_outlasted_watchdog = -1; /* ours back at its return */
static void (*ours)(int);                       /* spanguard's handler, installed */

static long voluntary_switches(int who) {
    struct rusage r;
    return getrusage(who, &r) == 0 ? r.ru_nvcsw : -1;
}

/* SIGHUP's handler as the kernel has it now. */
static void (*sighup_handler(void))(int) {
    struct sigaction now;
    memset(&now, 0, sizeof now);
    sigaction(SIGHUP, NULL, &now);
    return now.sa_handler;
}

static void forks(int signal) {
    (void)signal;
    long before = voluntary_switches(RUSAGE_THREAD);
    pid_t pid = fork();
    if (pid > 0) {
        fork_slept = voluntary_switches(RUSAGE_THREAD) != before;
        fork_outlasted_watchdog = sighup_handler() == ours;
    }
    forked = pid;
}

int main(int argc, char **argv) {
    alarm(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_fork-spans";

    CHECK(set_handler(SIGHUP, forks, 0) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before-hup");
    ours = sighup_handler();
    CHECK(ours != forks && ours != SIG_DFL && ours != SIG_IGN); /* the tracer's, over the host's */

    kill(getpid(), SIGHUP); /* to this thread: the only one that takes it */
    while (forked < 0) pause();
    if (forked == 0) {
        long slept = voluntary_switches(RUSAGE_SELF);
        if (slept >= 100) fprintf(stderr, "child: %ld voluntary context switches back from the handler\n", slept);
        alarm(10);
        record_span(t, "in-child");
        int ok = spanguard_result_is_ok(spanguard_shutdown(t, 5000));
        _exit(failures ? 3 : !ok ? 4 : slept < 0 || slept >= 100 ? 5 : 0);
    }
    CHECK(fork_slept >= 0 && fork_outlasted_watchdog >= 0);
    CHECK(!(fork_slept && fork_outlasted_watchdog));
    if (fork_slept && fork_outlasted_watchdog)
        fprintf(stderr, "parent: the handler's fork slept until the watchdog stopped waiting for the handler\n");
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
