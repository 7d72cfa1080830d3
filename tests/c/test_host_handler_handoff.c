/* A host handler that hands the signal to another thread, which records
 * the program's last spans: Go's handler wakes the goroutine that
 * signal.Notify feeds; a server's wakes its shutdown thread.
 *
 * spanguard's watchdog flushes, delivers the host's handler on the thread
 * the signal arrived on, and thaws the tracers once it returns. The
 * woken thread got there first: its spans were refused as shut down
 * (a Go program with InstallSignalHandlers lost every span its Notify
 * goroutine recorded). Now a span begun while the host's handler runs
 * waits for the thaw, and so does a change to or the end of a span open
 * since before the signal (what Go's FlushOnSignals passes on to an
 * OpenTelemetry bridge's open spans before its shutdown: refused, they
 * arrived with what they had at their start).
 *
 * The handler wakes the other thread and takes a moment before it
 * returns, as a handler does that closes a listener or logs. An alarm
 * turns a hang into SIGALRM. */
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

static sem_t woken;
static spanguard_tracer *tracer;
static spanguard_span held = SPANGUARD_SPAN_NONE; /* open since before the signal */

static void hand_off(int signal) {
    (void)signal;
    sem_post(&woken); /* async-signal-safe */
    struct timespec moment = {0, 50 * 1000 * 1000};
    while (nanosleep(&moment, &moment) != 0) {
    }
}

/* The shutdown thread: blocks the termination signals, as a program's
 * other threads do, and records its span once woken. */
static void *stopper(void *arg) {
    (void)arg;
    while (sem_wait(&woken) != 0) {
    }
    /* First: a begin would wait for the thaw for both. */
    spanguard_attribute reason = text_attr("stop.reason", "sigterm");
    CHECK_RC(spanguard_span_set_attributes(held, &reason, 1), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(held), SPANGUARD_RESULT_OK);
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(tracer, "stopping", strlen("stopping"), SPANGUARD_SPAN_NONE, 0, &s),
             SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(30);
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_handoff-spans";
    CHECK(sem_init(&woken, 0, 0) == 0);

    CHECK(set_handler(SIGTERM, hand_off, 0) == 0);

    tracer = tracer_with_handlers(scratch);
    CHECK_RC(spanguard_span_begin(tracer, "held", strlen("held"), SPANGUARD_SPAN_NONE, 0, &held),
             SPANGUARD_RESULT_OK);

    pthread_t thread;
    CHECK(start_thread_blocking(&thread, stopper, SIGTERM, 0) == 0);

    kill(getpid(), SIGTERM); /* the main thread is the one that takes it */
    CHECK(pthread_join(thread, NULL) == 0);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 5000)));
    spanguard_tracer_free(tracer);
    CHECK(count_in_dir(scratch, "stopping") == 1);
    CHECK(count_in_dir(scratch, "\"held\"") == 1);
    CHECK(count_in_dir(scratch, "sigterm") == 1);
    CHECK(count_in_dir(scratch, "spanguard.unended") == 0);
    return check_summary();
}
