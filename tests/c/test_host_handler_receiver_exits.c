/* The thread a termination signal arrived on blocks it and exits before
 * the watchdog, done flushing, delivers the host's handler there again (a
 * pool's worker that got SIGTERM as the pool wound down). The redelivery
 * went into that thread's exit, pending, and was lost: the host's handler
 * never ran. Now the watchdog sees the thread gone and runs the handler
 * on its own thread, as when the thread was gone before the redelivery,
 * and a span another thread begins meanwhile waits for the thaw after it.
 * An alarm turns a handler that never runs into SIGALRM. */
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
#include "sink_count.h"

static volatile sig_atomic_t ran_on; /* the thread the host's handler ran on */

/* Where main is: an alarm says it, and whether the handler ran, so a
 * hang tells a handler that never ran (the defect) from a slow wait. */
static volatile sig_atomic_t stage;
static const char *const stages[] = {"starting", "joining the receiver", "waiting for the handler",
                                     "shutting down"};

static void on_alarm(int signal) {
    (void)signal;
    char line[160];
    int n = snprintf(line, sizeof line, "alarm: hung %s; the host's handler %s (on %d; receiver %d)\n",
                     stages[stage], ran_on ? "ran" : "never ran", (int)ran_on, (int)receiver_tid);
    if (n > 0 && write(2, line, (size_t)n) < 0) {
    }
    _exit(70);
}

static void host_handler(int signal) {
    (void)signal;
    ran_on = gettid();
    /* Still running when main records its next span: that span waits for
     * the thaw after this handler, as when it runs on the receiver (it
     * was refused as shut down while the watchdog's thread ran it). */
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGALRM, on_alarm);
    alarm(30); /* a handler that never runs is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_receiver_exits-spans";

    CHECK(set_handler(SIGTERM, host_handler, 0) == 0);
    /* This thread, and the library's threads made from it, block SIGTERM:
     * the kernel gives it to the receiver. */
    CHECK(mask_signal(SIG_BLOCK, SIGTERM) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before-the-signal");

    /* The only thread that takes SIGTERM, gone before the redelivery. */
    pthread_t r = signal_through_receiver(receive_then_exit_pending, SIGTERM);
    stage = 1;
    CHECK(pthread_join(r, NULL) == 0);
    stage = 2;
    while (!ran_on) usleep(1000);
    CHECK(ran_on != receiver_tid);
    /* The watchdog flushed first; the process lives on, nothing twice. */
    CHECK(count_in_dir(scratch, "before-the-signal") == 1);
    record_span(t, "after");
    stage = 3;
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before-the-signal") == 1);
    CHECK(count_in_dir(scratch, "\"after\"") == 1); /* quoted: a path may hold "after" */
    return check_summary();
}
