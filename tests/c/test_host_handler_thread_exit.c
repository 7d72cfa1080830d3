/* A host handler that ends its own thread with pthread_exit (a worker
 * pool's "stop this worker" signal). spanguard's watchdog, done flushing,
 * delivers the host's handler on the thread the signal arrived on and
 * waits for it to return; it saw that thread gone and took it for one
 * that had exited with the signal blocked, never run: it ran the handler
 * again, on the watchdog's own thread, whose pthread_exit then ended the
 * watchdog. The handler ran twice, and the next signal was never acted
 * on (spans neither flushed nor the host's handler run). Now the handler
 * runs once, and the watchdog lives on.
 *
 * An alarm turns the next signal never acted on into SIGALRM. */
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

static volatile sig_atomic_t runs;         /* how often the host's handler ran */
static volatile sig_atomic_t end_thread;   /* whether it ends its thread */

static void host_handler(int signal) {
    (void)signal;
    runs++;
    if (end_thread) pthread_exit(NULL);
}

/* Starts a worker, the only thread that takes SIGTERM, sends SIGTERM once
 * it waits for it, waits until the host's handler has run `want` times in
 * all. */
static pthread_t signal_worker(int want) {
    pthread_t w = signal_through_receiver(receive_forever, SIGTERM);
    while (runs < want) usleep(1000);
    return w;
}

int main(int argc, char **argv) {
    alarm(30); /* a signal never acted on is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_thread_exit-spans";

    CHECK(set_handler(SIGTERM, host_handler, 0) == 0);
    /* This thread, and the library's threads made from it, block SIGTERM. */
    CHECK(mask_signal(SIG_BLOCK, SIGTERM) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before-first");

    end_thread = 1;
    pthread_t first = signal_worker(1);
    CHECK(pthread_join(first, NULL) == 0);
    /* Past the watchdog's wait for the handler (1 s), whatever it does. */
    usleep(1200 * 1000);
    CHECK(runs == 1);
    if (runs != 1) fprintf(stderr, "the host's handler ran %d times\n", (int)runs);

    /* The watchdog still acts on the next one: flushes, delivers once. */
    end_thread = 0;
    record_span(t, "before-second");
    int before = runs;
    pthread_t second = signal_worker(before + 1);
    CHECK(count_in_dir(scratch, "before-second") == 1);
    CHECK(pthread_cancel(second) == 0);
    CHECK(pthread_join(second, NULL) == 0);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before-first") == 1);
    CHECK(count_in_dir(scratch, "before-second") == 1);
    return check_summary();
}
