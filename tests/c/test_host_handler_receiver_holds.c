/* The thread a termination signal arrived on blocks it again (a thread
 * that masks signals around its own work, or one stuck in a long call
 * with them blocked) and keeps it blocked past the watchdog's wait for
 * the host's handler (HOST_HANDLER_WAIT, 1 s). The watchdog, done
 * flushing, re-sent the signal to that thread and waited; when the wait
 * ran out it gave up and put its own handler back: the host's handler
 * had not run, and did not as long as the thread held the signal (never,
 * if it never let go of it); when the thread let go, the pending copy
 * came to spanguard's handler, which flushed, froze and dumped all over
 * again before the host's handler ran, late. Now the host's handler runs
 * by the time the watchdog is done with the signal, once: the copy still
 * pending on the thread is dropped, not run again.
 *
 * The receiver takes SIGTERM (spanguard's handler runs on it), blocks it
 * at once, and unblocks it only when this test says so: after the
 * watchdog has put its own handler back, which the test sees in SIGTERM's
 * disposition (spanguard's, then the one it delivers through, then
 * spanguard's again). SIGINT after that is a barrier: the watchdog takes
 * one signal at a time, so once the host's SIGINT handler has run, a
 * round for the copy the receiver held has been through too. Conditions
 * with deadlines, no sleeps; an alarm turns a hang into a failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "proc.h"
#include "sink_count.h"

static volatile sig_atomic_t term_runs; /* how often the host's SIGTERM handler ran */
static volatile sig_atomic_t int_runs;  /* and its SIGINT handler */
static volatile sig_atomic_t release;   /* the receiver may unblock SIGTERM */
static volatile sig_atomic_t unblocked; /* it has */

static void on_term(int signal) {
    (void)signal;
    term_runs++;
}

static void on_int(int signal) {
    (void)signal;
    int_runs++;
}

static void on_alarm(int signal) {
    (void)signal;
    char line[160];
    int n = snprintf(line, sizeof line, "alarm: hung; the host's SIGTERM handler ran %d times, SIGINT's %d\n",
                     (int)term_runs, (int)int_runs);
    if (n > 0 && write(2, line, (size_t)n) < 0) {
    }
    _exit(70);
}

/* The receiver: starts with SIGTERM and SIGINT blocked (its creator's
 * mask), takes SIGTERM inside sigsuspend only (spanguard's handler runs
 * here; sigsuspend blocks it again as it returns, as one step), holds it
 * until told, then takes both for good. */
static void *receive_then_hold(void *arg) {
    (void)arg;
    sigset_t during;
    pthread_sigmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, SIGTERM);
    receiver_tid = gettid();
    sigsuspend(&during);
    while (!release) usleep(1000);
    CHECK(mask_signal(SIG_UNBLOCK, SIGTERM) == 0);
    CHECK(mask_signal(SIG_UNBLOCK, SIGINT) == 0);
    unblocked = 1;
    for (;;) pause();
    return NULL;
}

/* SIGTERM's disposition is `handler` (the one read after the tracer
 * installed spanguard's). */
static int term_disposition_is(void (*handler)(int)) {
    struct sigaction now;
    return sigaction(SIGTERM, NULL, &now) == 0 && now.sa_handler == handler;
}

/* Waits up to `seconds` for `*flag` to reach `want`; whether it did. */
static int wait_for(volatile sig_atomic_t *flag, int want, double seconds) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (*flag < want && seconds_since(&t0) < seconds) usleep(1000);
    return *flag >= want;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGALRM, on_alarm);
    alarm(90);
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_receiver_holds-spans";
    char spool[600];
    snprintf(spool, sizeof spool, "%s-spool", scratch);

    CHECK(set_handler(SIGTERM, on_term, 0) == 0);
    CHECK(set_handler(SIGINT, on_int, 0) == 0);
    /* This thread, and the library's threads made from it, block both:
     * the kernel gives them to the receiver. */
    CHECK(mask_signal(SIG_BLOCK, SIGTERM) == 0);
    CHECK(mask_signal(SIG_BLOCK, SIGINT) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    struct sigaction installed;
    CHECK(sigaction(SIGTERM, NULL, &installed) == 0);
    void (*ours)(int) = installed.sa_handler;
    CHECK(ours != on_term);
    record_span(t, "before-the-signal");

    pthread_t r;
    receiver_tid = 0;
    CHECK(pthread_create(&r, NULL, receive_then_hold, NULL) == 0);
    while (!receiver_tid) usleep(1000);
    /* Pending for the process until the receiver's sigsuspend takes it. */
    CHECK(kill(getpid(), SIGTERM) == 0);

    /* The watchdog delivers (its disposition in place of spanguard's), or
     * has delivered already when this thread was slow to look... */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (term_disposition_is(ours) && !term_runs && seconds_since(&t0) < 20) usleep(1000);
    CHECK(!term_disposition_is(ours) || term_runs);
    /* ...recorded meanwhile, this span waits for the thaw after it... */
    record_span(t, "while-held");
    /* ...and is done: spanguard's handler is back. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!term_disposition_is(ours) && seconds_since(&t0) < 20) usleep(1000);
    CHECK(term_disposition_is(ours));
    /* The host's handler has run, though the receiver still holds the
     * signal. It had not, and would not until the receiver let go. */
    CHECK(term_runs == 1);
    if (term_runs != 1)
        fprintf(stderr, "the watchdog was done with SIGTERM and the host's handler had run %d times\n",
                (int)term_runs);

    /* The receiver lets go of the copy it held. */
    release = 1;
    CHECK(wait_for(&unblocked, 1, 20));
    /* The barrier: spanguard's handler, the watchdog and the host's
     * handler for SIGINT, after whatever the held copy set off. */
    CHECK(kill(getpid(), SIGINT) == 0);
    CHECK(wait_for(&int_runs, 1, 20));
    CHECK(term_runs == 1);
    if (term_runs != 1) fprintf(stderr, "the host's SIGTERM handler ran %d times in all\n", (int)term_runs);

    record_span(t, "after");
    CHECK(pthread_cancel(r) == 0);
    CHECK(pthread_join(r, NULL) == 0);
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    /* Each span once: flushed, neither lost nor sent twice; no dump left
     * behind (the tracers were thawed and took theirs back). */
    CHECK(count_in_dir(scratch, "\"before-the-signal\"") == 1);
    CHECK(count_in_dir(scratch, "\"while-held\"") == 1);
    CHECK(count_in_dir(scratch, "\"after\"") == 1);
    CHECK(files_ending(spool, ".sgdump") == 0);
    return check_summary();
}
