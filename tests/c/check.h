/* The C tests' checks: each CHECK counts, and a failed one says where, in
 * which process (the fork tests check in parents and children), and what.
 * A test ends by printing the tally and exiting non-zero on any failure. */
#ifndef SPANGUARD_TEST_CHECK_H
#define SPANGUARD_TEST_CHECK_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spanguard.h"

static int checks, failures;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        checks++;                                                                                \
        if (!(cond)) {                                                                           \
            failures++;                                                                          \
            fprintf(stderr, "%s:%d (pid %d): check failed: %s\n", __FILE__, __LINE__, (int)getpid(), \
                    #cond);                                                                      \
        }                                                                                        \
    } while (0)

/* A call's result, with its name and the code's text when it differs. */
#define CHECK_RC(expr, want)                                                                     \
    do {                                                                                         \
        spanguard_result rc_ = (expr);                                                           \
        checks++;                                                                                \
        if (rc_ != (want)) {                                                                     \
            failures++;                                                                          \
            fprintf(stderr, "%s:%d (pid %d): %s returned %u (%s), want %s\n", __FILE__, __LINE__, \
                    (int)getpid(), #expr, (unsigned)rc_, spanguard_strerror(rc_), #want);        \
        }                                                                                        \
    } while (0)

/* A call on a span that has ended: ALREADY_ENDED, or STALE_SPAN once the
 * exporter has sent it and its slot went back (spanguard_span_end says
 * both). A loaded machine lets the exporter do that between two lines:
 * tests/pool_full.rs's second end met it in CI. */
#define CHECK_ENDED(expr)                                                                        \
    do {                                                                                         \
        spanguard_result rc_ = (expr);                                                           \
        checks++;                                                                                \
        if (rc_ != SPANGUARD_RESULT_ALREADY_ENDED && rc_ != SPANGUARD_RESULT_STALE_SPAN) {       \
            failures++;                                                                          \
            fprintf(stderr, "%s:%d (pid %d): %s returned %u (%s), want ALREADY_ENDED or STALE_SPAN\n", \
                    __FILE__, __LINE__, (int)getpid(), #expr, (unsigned)rc_, spanguard_strerror(rc_)); \
        }                                                                                        \
    } while (0)

/* Prints the tally; the process's exit status. */
static inline int check_summary(void) {
    printf("%d passed, %d failed\n", checks - failures, failures);
    fflush(stdout);
    return failures ? 1 : 0;
}

/* The tracer's counters (`spanguard_stats`, checked). */
static inline spanguard_counters stats_of(const spanguard_tracer *t) {
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    CHECK_RC(spanguard_stats(t, &c), SPANGUARD_RESULT_OK);
    return c;
}

static int hang_fd_ = 2;

static inline void on_hang_(int signal) {
    (void)signal;
    static const char said[] = "HUNG: still running at the test's alarm (a hang guard, not a speed check)\n";
    (void)!write(hang_fd_, said, sizeof said - 1);
    _exit(124);
}

/* A hang fails the test after `seconds`, saying it hung (on the stderr of
 * now, which a test may redirect meanwhile): the one bound on time a test
 * keeps, far from any run's duration. */
static inline void hang_guard(unsigned seconds) {
    int saved = dup(2);
    if (saved >= 0) hang_fd_ = saved;
    signal(SIGALRM, on_hang_);
    alarm(seconds);
}

/* A child that ends by exit() passes the parent one of its counters as
 * spanguard's exit hook left it: `counter_at_exit(fd, offsetof(...))`
 * before the first tracer (atexit runs the hook that tracer registers
 * first, this after it), `counter_at_exit_of(t)` once the tracer is made;
 * at exit the counter goes to `fd` as a uint64_t (UINT64_MAX: unread).
 * The parent reads it with `counter_from_exit`. */
static const spanguard_tracer *counter_tracer_;
static int counter_fd_ = -1;
static size_t counter_offset_;

static inline void counter_write_(void) {
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    uint64_t n = UINT64_MAX;
    if (counter_tracer_ && spanguard_stats(counter_tracer_, &c) == SPANGUARD_RESULT_OK)
        memcpy(&n, (const char *)&c + counter_offset_, sizeof n);
    if (write(counter_fd_, &n, sizeof n) != (ssize_t)sizeof n) _exit(125);
}

static inline int counter_at_exit(int fd, size_t offset) {
    counter_fd_ = fd;
    counter_offset_ = offset;
    return atexit(counter_write_);
}

static inline void counter_at_exit_of(const spanguard_tracer *t) { counter_tracer_ = t; }

/* What the child's `counter_at_exit` wrote to `fd`; UINT64_MAX if nothing
 * (a child that crashed runs no atexit handler). */
static inline uint64_t counter_from_exit(int fd) {
    uint64_t n = UINT64_MAX;
    if (read(fd, &n, sizeof n) != (ssize_t)sizeof n) n = UINT64_MAX;
    return n;
}

/* Records one span named `name` (begun and ended at once), checking both
 * calls: what most process tests put in the sink or a dump to look for. */
static inline void record_span(spanguard_tracer *t, const char *name) {
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(t, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
}

/* tracer_with_handlers and tracer_flushed_only: named `service` and
 * with `schedule_delay_ms` unless NULL or 0 (the defaults then). */
static inline spanguard_tracer *tracer_in_sink_(const char *sink, const char *service, uint32_t schedule_delay_ms) {
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", sink);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    if (service) cfg.service_name = service;
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    if (schedule_delay_ms) cfg.schedule_delay_ms = schedule_delay_ms;
    cfg.install_signal_handlers = 1;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

/* A tracer writing to the sink directory `sink`, its spool beside it
 * (`<sink>-spool`, which the Makefile clears), signal handlers on: the
 * tracer the signal and fork tests start. Checked; NULL if it failed. */
static inline spanguard_tracer *tracer_with_handlers(const char *sink) {
    return tracer_in_sink_(sink, NULL, 0);
}

/* tracer_with_handlers named `service`, whose spans leave only on a flush
 * (a schedule delay of a minute): a span in the sink then says that the
 * watchdog flushed it, not the exporter's schedule. */
static inline spanguard_tracer *tracer_flushed_only(const char *sink, const char *service) {
    return tracer_in_sink_(sink, service, 60000);
}

#endif
