/* install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_TERMINATION (2): the
 * termination watchdog without the crash handlers, the Go binding's
 * default. Go's runtime turns a nil dereference into a panic a program may
 * recover from, through SIGSEGV; with the crash handlers over its own,
 * each recovered one dumped the spans and froze the tracers, so Go turned
 * every handler off, and SIGTERM then ended a Go service with its spans
 * unsent.
 *
 * With a host SIGSEGV handler in place (a stand-in for Go's), a tracer in
 * mode 2 leaves it there, takes SIGTERM (its flush puts a span recorded
 * under a minute's schedule delay in the sink, then the host's SIGTERM
 * handler runs), and a SIGSEGV the host handles and returns from dumps
 * nothing and leaves the tracer recording. A later tracer asking for
 * every handler (1) adds the crash handlers then. Values past 2 are
 * refused, naming the field. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

static char sink[512], spool[512];
static volatile sig_atomic_t host_segv, host_term;

static void on_host_segv(int sig) {
    (void)sig;
    host_segv++;
}

static void on_host_term(int sig) {
    (void)sig;
    host_term++;
}

static spanguard_result start(uint32_t handlers, spanguard_tracer **t, char *msg) {
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = handlers;
    cfg.schedule_delay_ms = 60000; /* only a flush exports */
    *t = NULL;
    return spanguard_tracer_new_with_error(&cfg, false, t, msg, SPANGUARD_ERROR_MESSAGE_SIZE, NULL);
}

static void (*handler_of(int sig))(int) {
    struct sigaction now;
    sigaction(sig, NULL, &now);
    return now.sa_handler;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_termination_handlers_only-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);
    char msg[SPANGUARD_ERROR_MESSAGE_SIZE];

    spanguard_config defaults;
    (void)spanguard_config_init(&defaults, sizeof defaults);
    CHECK(defaults.install_signal_handlers == SPANGUARD_SIGNAL_HANDLERS_ALL);

    spanguard_tracer *t = NULL;
    signal(SIGSEGV, on_host_segv);
    signal(SIGTERM, on_host_term);
    CHECK_RC(start(SPANGUARD_SIGNAL_HANDLERS_TERMINATION, &t, msg), SPANGUARD_RESULT_OK);
    if (!t) return check_summary();
    CHECK(handler_of(SIGSEGV) == on_host_segv); /* no crash handler over it */
    CHECK(handler_of(SIGTERM) != on_host_term); /* the watchdog is in */

    /* SIGTERM: the watchdog flushes, then the host's handler runs. */
    record_span(t, "before-term");
    raise(SIGTERM);
    for (int i = 0; i < 1000 && !host_term; i++) sleep_ms(10);
    CHECK(host_term == 1);
    CHECK(count_in_dir(sink, "\"before-term\"") == 1);

    /* A SIGSEGV the host handles and survives: no dump, no freeze. */
    record_span(t, "before-segv");
    raise(SIGSEGV);
    CHECK(host_segv == 1);
    record_span(t, "after-segv");
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(sink, "\"before-segv\"") == 1);
    CHECK(count_in_dir(sink, "\"after-segv\"") == 1);
    /* No published crash dump (.sgdump, not the .sgdump-pending every
     * tracer with a watchdog keeps ready) in the spool. */
    CHECK(files_ending(spool, ".sgdump") == 0);

    /* Past 2: refused, naming the field (no tracer, no handler). */
    spanguard_tracer *bad = NULL;
    CHECK_RC(start(3, &bad, msg), SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    CHECK(strstr(msg, "install_signal_handlers") != NULL);
    CHECK(strstr(msg, "SPANGUARD_SIGNAL_HANDLERS_TERMINATION (2)") != NULL);
    CHECK(handler_of(SIGSEGV) == on_host_segv);

    /* A tracer asking for every handler adds the crash handlers. */
    spanguard_tracer *all = NULL;
    CHECK_RC(start(SPANGUARD_SIGNAL_HANDLERS_ALL, &all, msg), SPANGUARD_RESULT_OK);
    CHECK(handler_of(SIGSEGV) != on_host_segv);

    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    if (all) {
        CHECK_RC(spanguard_shutdown(all, 10000), SPANGUARD_RESULT_OK);
        spanguard_tracer_free(all);
    }
    return check_summary();
}
