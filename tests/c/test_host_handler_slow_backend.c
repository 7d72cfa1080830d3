/* A program stopping gracefully on SIGTERM (its handler returns) next to
 * a slow backend. spanguard's watchdog flushes, and the backend holds the
 * exporter's request: the flush gives up at three quarters of the signal
 * flush timeout, the tracers are frozen, the watchdog waits for that
 * request until the timeout (so as not to dump a batch that may still
 * arrive), dumps, delivers the host's handler and thaws. The freeze lasts
 * a quarter of the timeout and the handler: 1.5 s here (6 s), more with
 * several tracers (each frozen once its own flush is over, until the
 * slowest is done).
 *
 * A span begun, changed or ended on another thread meanwhile waits for
 * the thaw, but gave up after 1 s: the change was refused as shut down
 * while the end after it, past the thaw, was accepted, and the span
 * arrived ended by the program without what it was told; a span begun
 * was refused (counted, but lost to a program that only stopped). Now
 * they wait as long as the freeze can last, and every call is accepted.
 *
 * The backend is a loopback OTLP/HTTP (JSON) server here that holds its
 * first request until the test lets it answer, and answers the others at
 * once; what it received is searched for the spans. An alarm turns a
 * hang into SIGALRM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "attrs.h"
#include "check.h"
#include "proc.h"
#include "held_receiver.h"

#define FLUSH_TIMEOUT_MS 6000

/* The program. */
static spanguard_tracer *tracer;
static spanguard_span held = SPANGUARD_SPAN_NONE; /* open since before the signal */
static volatile sig_atomic_t handled;
static long changes_refused, begins_refused, recorded;
static spanguard_result reason_rc, end_rc;
static double longest_call;

static void on_term(int signal) {
    (void)signal;
    handled = 1;
}

/* Another thread (blocking SIGTERM, as a program's other threads do)
 * goes on working on its open span and records small spans, until the
 * host's handler ran; then it sets the reason it stops and ends the span. */
static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; !handled; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (spanguard_span_set_int(held, "tick", strlen("tick"), i) != SPANGUARD_RESULT_OK) changes_refused++;
        char name[32];
        snprintf(name, sizeof name, "\"tick-%d\"", i);
        spanguard_span s = SPANGUARD_SPAN_NONE;
        if (spanguard_span_begin(tracer, name + 1, strlen(name) - 2, SPANGUARD_SPAN_NONE, 0, &s) == SPANGUARD_RESULT_OK) {
            CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
            recorded++;
        } else {
            begins_refused++;
        }
        double took = seconds_since(&t0);
        if (took > longest_call) longest_call = took;
        usleep(20 * 1000);
    }
    spanguard_attribute reason = text_attr("stop.reason", "sigterm");
    reason_rc = spanguard_span_set_attributes(held, &reason, 1);
    end_rc = spanguard_span_end(held);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_slow_backend-spans";

    char endpoint[64];
    int listener = held_backend_listener(endpoint, sizeof endpoint);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_term;
    CHECK(sigaction(SIGTERM, &sa, NULL) == 0);

    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", scratch);
    spanguard_config cfg;
    held_backend_config(&cfg, "host-handler-slow-backend", endpoint, spool);
    cfg.signal_flush_timeout_ms = FLUSH_TIMEOUT_MS;
    if (spanguard_tracer_new(&cfg, &tracer) != SPANGUARD_RESULT_OK) return 2;

    /* Blocked in every thread but main: the server's and the worker's. */
    sigset_t term, was;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &was);
    pthread_t thread;
    CHECK(serve_each_connection(listener, serve_held_first) == 0);

    /* A first span: the exporter sends it, and the backend holds it. */
    record_span(tracer, "before-signal");
    while (count_received("\"before-signal\"") == 0) usleep(1000);

    CHECK_RC(spanguard_span_begin(tracer, "held", strlen("held"), SPANGUARD_SPAN_NONE, 0, &held), SPANGUARD_RESULT_OK);
    CHECK(pthread_create(&thread, NULL, worker, NULL) == 0);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    usleep(50 * 1000);

    kill(getpid(), SIGTERM); /* the main thread is the one that takes it */
    while (!handled) usleep(1000);
    CHECK(pthread_join(thread, NULL) == 0);
    release_first = 1;

    CHECK(changes_refused == 0);
    CHECK(begins_refused == 0);
    CHECK_RC(reason_rc, SPANGUARD_RESULT_OK);
    CHECK_RC(end_rc, SPANGUARD_RESULT_OK);
    if (changes_refused || begins_refused)
        fprintf(stderr, "refused during the freeze: %ld changes, %ld begins (the longest call took %.2f s)\n",
                changes_refused, begins_refused, longest_call);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 10000)));
    spanguard_tracer_free(tracer);
    /* The span arrived once, with what the program told it last. */
    CHECK(count_received("\"held\"") == 1);
    CHECK(count_received("\"stop.reason\"") == 1);
    CHECK(count_received("\"before-signal\"") == 1);
    long ticks = 0;
    for (long i = 0; i < recorded + begins_refused; i++) {
        char name[32];
        snprintf(name, sizeof name, "\"tick-%ld\"", i);
        ticks += count_received(name) == 1;
    }
    CHECK(ticks == recorded);
    if (ticks != recorded) fprintf(stderr, "%ld spans recorded, %ld arrived once\n", recorded, ticks);
    return check_summary();
}
