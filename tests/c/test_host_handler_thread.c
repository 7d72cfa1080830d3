/* A host that had its own handler for a termination signal before the
 * tracer (CPython's for SIGINT, which raises KeyboardInterrupt; a server's
 * graceful stop) and waits in a blocking call for it to be acted on.
 * spanguard's watchdog flushed, then raised the signal again on its own
 * thread, so the host's handler ran there: nothing woke the thread the
 * signal had arrived on. A Python program with spanguard took 20 s to see
 * Ctrl-C in a time.sleep(20), and a busy loop never saw it.
 *
 * Now the host's handler runs on the thread the signal arrived on (here
 * the main thread, the only one that does not block it), after the
 * watchdog's flush, and the process lives on with its spans delivered
 * once. A plain handler for SIGTERM, an SA_SIGINFO one for SIGINT. An
 * alarm turns a main thread never woken into SIGALRM. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

static volatile sig_atomic_t ran_on;     /* the thread the host's handler ran on */
static volatile sig_atomic_t info_signo; /* what its siginfo said, SA_SIGINFO */

static void host_plain(int signal) {
    (void)signal;
    ran_on = gettid();
}

static void host_siginfo(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)context;
    info_signo = info ? info->si_signo : -1;
    ran_on = gettid();
}

/* Sends `signal`, waits in pause() until the host's handler has run, and
 * checks where it ran and that the span ended before it was flushed. */
static void signal_and_wait(spanguard_tracer *t, const char *dir, int signal, const char *name) {
    record_span(t, name);
    ran_on = 0;
    pthread_t sender;
    CHECK(pthread_create(&sender, NULL, send_signal_later, (void *)(long)signal) == 0);
    while (!ran_on) pause();
    CHECK(pthread_join(sender, NULL) == 0);
    CHECK(ran_on == getpid());
    if (ran_on != getpid()) fprintf(stderr, "signal %d: host handler ran on thread %d, not main %d\n", signal, (int)ran_on, (int)getpid());
    /* The watchdog flushed before it delivered the signal again. */
    CHECK(count_in_dir(dir, name) == 1);
}

int main(int argc, char **argv) {
    alarm(30); /* a main thread never woken is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_thread-spans";

    CHECK(set_handler(SIGTERM, host_plain, 0) == 0);
    struct sigaction with_info;
    memset(&with_info, 0, sizeof with_info);
    with_info.sa_sigaction = host_siginfo;
    with_info.sa_flags = SA_SIGINFO;
    sigemptyset(&with_info.sa_mask);
    CHECK(sigaction(SIGINT, &with_info, NULL) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);

    signal_and_wait(t, scratch, SIGTERM, "before-sigterm");
    signal_and_wait(t, scratch, SIGINT, "before-sigint");
    CHECK(info_signo == SIGINT);
    /* And once more: ours is back in after each. */
    signal_and_wait(t, scratch, SIGTERM, "before-second-sigterm");

    /* The process lived on: the dumps were taken back, nothing twice. */
    record_span(t, "after");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before-sigterm") == 1);
    CHECK(count_in_dir(scratch, "before-sigint") == 1);
    CHECK(count_in_dir(scratch, "\"after\"") == 1); /* quoted: a path may hold "after" */
    return check_summary();
}
