/* Two termination signals close together, to a program that stops
 * gracefully on them (its handlers return): SIGTERM then SIGINT 1 ms
 * apart, then SIGTERM twice. For each, spanguard's watchdog flushes,
 * freezes the tracers and dumps, delivers the host's handler, and thaws.
 * Spans begun on another thread while the dump was written (before the
 * handler's delivery) were refused as shut down: a program already
 * stopping after the first signal, recording as it stops, lost spans at
 * each freeze, the second one's too. Now a span begun from the freeze on
 * waits for the thaw (1 s at most), and every span is delivered once.
 *
 * A recorder thread (blocking the signals, as a program's other threads
 * do) records spans all along. An alarm turns a hang into SIGALRM. */
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

static volatile sig_atomic_t terms, ints, stop;
static spanguard_tracer *tracer;
static long recorded, refused;

static void on_term(int signal) {
    (void)signal;
    terms++;
}

static void on_int(int signal) {
    (void)signal;
    ints++;
}

static void *recorder(void *arg) {
    (void)arg;
    for (int i = 0; !stop; i++) {
        char name[32];
        snprintf(name, sizeof name, "stopping-%d", i);
        spanguard_span s = SPANGUARD_SPAN_NONE;
        spanguard_result rc = spanguard_span_begin(tracer, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &s);
        if (rc == SPANGUARD_RESULT_OK) {
            CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
            recorded++;
        } else {
            refused++;
        }
        usleep(100);
    }
    return NULL;
}

/* Sends `first`, then `second` 1 ms later, to this thread (the only one
 * that takes them), and waits until the host's handlers ran `want_terms`
 * and `want_ints` times in all (a signal pending twice runs once). */
static void two_signals(int first, int second, int want_terms, int want_ints) {
    kill(getpid(), first);
    usleep(1000);
    kill(getpid(), second);
    while (terms < want_terms || ints < want_ints) usleep(1000);
    usleep(100 * 1000); /* and the recorder records after the thaw */
}

int main(int argc, char **argv) {
    alarm(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_two_signals-spans";

    CHECK(set_handler(SIGTERM, on_term, 0) == 0);
    CHECK(set_handler(SIGINT, on_int, 0) == 0);

    tracer = tracer_with_handlers(scratch);

    pthread_t thread;
    CHECK(start_thread_blocking(&thread, recorder, SIGTERM, SIGINT) == 0);
    usleep(50 * 1000);

    two_signals(SIGTERM, SIGINT, 1, 1);
    two_signals(SIGTERM, SIGTERM, 2, 1);
    stop = 1;
    CHECK(pthread_join(thread, NULL) == 0);

    CHECK(refused == 0);
    if (refused) fprintf(stderr, "%ld spans refused (%ld recorded)\n", refused, recorded);
    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 5000)));
    spanguard_tracer_free(tracer);
    long delivered = count_in_dir(scratch, "\"stopping-");
    CHECK(delivered == recorded);
    if (delivered != recorded) fprintf(stderr, "%ld recorded, %ld delivered\n", recorded, delivered);
    return check_summary();
}
