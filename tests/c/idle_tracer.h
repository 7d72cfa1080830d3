/* A tracer whose exporter waits a minute before it sends: what a test
 * records stays in its slots (and its flight file) until the flush, the
 * shutdown or the death the test has in store for the process. */
#ifndef SPANGUARD_TEST_IDLE_TRACER_H
#define SPANGUARD_TEST_IDLE_TRACER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spanguard.h"
#include "sink_count.h"

/* The settings: `service` writing to `sink`, spooling to `spool`, the
 * flight recorder on when `flight`; the test sets what else it needs. */
static inline spanguard_config idle_tracer_config(const char *service, const char *sink, const char *spool,
                                                  int flight) {
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = service;
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.flight_recorder = (uint32_t)flight;
    cfg.schedule_delay_ms = 60000;
    return cfg;
}

/* The tracer `cfg` sets up; the test exits with status 2 when it cannot
 * be made. */
static inline spanguard_tracer *tracer_or_exit(const spanguard_config *cfg) {
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "tracer_new failed\n");
        exit(2);
    }
    return t;
}

/* Ends `n` spans named "<tag>-<i>" and leaves one, "<tag>-open", open: what
 * the death should leave for a successor. A call that fails is let be:
 * the test counts what arrives. */
static inline void record_ended_and_open(spanguard_tracer *t, const char *tag, int n) {
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s-%d", tag, i);
        spanguard_span s;
        if (spanguard_span_begin(t, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &s) == SPANGUARD_RESULT_OK)
            (void)spanguard_span_end(s);
    }
    snprintf(name, sizeof name, "%s-open", tag);
    spanguard_span open_span;
    (void)spanguard_span_begin(t, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &open_span);
}

/* How many of the spans `record_ended_and_open(t, tag, n)` recorded
 * arrived in the local sink `sink` once each (the `n` ended ones and the
 * open one); a span that arrived more than once is said on stderr. */
static inline int ended_and_open_arrived_once(const char *sink, const char *tag, int n) {
    int once = 0;
    char needle[96];
    for (int i = 0; i <= n; i++) {
        if (i < n)
            snprintf(needle, sizeof needle, "\"name\":\"%s-%d\"", tag, i);
        else
            snprintf(needle, sizeof needle, "\"name\":\"%s-open\"", tag);
        long c = count_in_dir(sink, needle);
        if (c > 1) fprintf(stderr, "%s arrived %ld times\n", needle, c);
        once += c == 1;
    }
    return once;
}

#endif
