/* A program stopping gracefully on SIGTERM: its handler wakes another
 * thread, which sets a last attribute on a span open since before the
 * signal and ends it (what Go's FlushOnSignals passes on to an
 * OpenTelemetry bridge's open spans), and the main thread shuts the
 * tracer down as soon as the handler has run.
 *
 * spanguard's watchdog flushes, freezes the tracers, delivers the host's
 * handler and thaws them once it returns. A change to or the end of a
 * span made while the handler runs waits for that thaw. The main thread
 * may begin its shutdown before the waiting thread wakes: the change was
 * then refused as shut down, while the end made right after it was
 * accepted (a shutting-down tracer still takes ends and changes), and the
 * span arrived ended by the program without the attribute it was told
 * nothing about but SHUT_DOWN. Now a change or an end that waited goes
 * on as it would have had it come a moment after the thaw: accepted while
 * the tracer shuts down, refused only once the shutdown ended the span.
 *
 * A race (who wakes first after the thaw): many rounds, a tracer each.
 * An alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "attrs.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define ROUNDS 40

static sem_t woken;
static volatile sig_atomic_t handled;
static spanguard_span held = SPANGUARD_SPAN_NONE; /* open since before the signal */
static spanguard_result set_rc, end_rc;

static void hand_off(int signal) {
    (void)signal;
    sem_post(&woken); /* async-signal-safe */
    struct timespec moment = {0, 5 * 1000 * 1000};
    while (nanosleep(&moment, &moment) != 0) {
    }
    handled = 1;
}

/* The thread the handler wakes: blocks the termination signals, as a
 * program's other threads do. */
static void *last_words(void *arg) {
    (void)arg;
    while (sem_wait(&woken) != 0) {
    }
    spanguard_attribute reason = text_attr("stop.reason", "sigterm");
    set_rc = spanguard_span_set_attributes(held, &reason, 1);
    end_rc = spanguard_span_end(held);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(60);
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_stop_after_thaw-spans";
    CHECK(sem_init(&woken, 0, 0) == 0);

    CHECK(set_handler(SIGTERM, hand_off, 0) == 0);

    int set_ok = 0, inconsistent = 0;
    for (int round = 0; round < ROUNDS; round++) {
        handled = 0;
        spanguard_tracer *tracer = tracer_with_handlers(scratch);
        CHECK_RC(spanguard_span_begin(tracer, "held", strlen("held"), SPANGUARD_SPAN_NONE, 0, &held),
                 SPANGUARD_RESULT_OK);

        pthread_t thread;
        CHECK(start_thread_blocking(&thread, last_words, SIGTERM, 0) == 0);

        kill(getpid(), SIGTERM); /* the main thread is the one that takes it */
        struct timespec tick = {0, 1000 * 1000};
        while (!handled) nanosleep(&tick, NULL);
        CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 5000)));
        CHECK(pthread_join(thread, NULL) == 0);
        spanguard_tracer_free(tracer);

        /* Refused both (the shutdown's scan ended the span first) or
         * accepted both; never an end accepted after its change was
         * refused. */
        if (end_rc == SPANGUARD_RESULT_OK && set_rc != SPANGUARD_RESULT_OK) {
            if (!inconsistent)
                fprintf(stderr, "round %d: the change was refused (%s), the end accepted\n", round,
                        spanguard_strerror(set_rc));
            inconsistent++;
        }
        if (set_rc == SPANGUARD_RESULT_OK) set_ok++;
    }
    CHECK(inconsistent == 0);
    if (inconsistent) fprintf(stderr, "%d of %d rounds\n", inconsistent, ROUNDS);
    /* Every change accepted arrived. */
    CHECK(count_in_dir(scratch, "sigterm") == set_ok);
    CHECK(count_in_dir(scratch, "\"held\"") == ROUNDS);
    return check_summary();
}
