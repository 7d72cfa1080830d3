/* What the C benchmarks share: the tracer they record into, the three
 * attributes every benchmark span gets (the same keys and values as the
 * Rust, Go, Node and Python benchmarks), a clock and a median. Include it
 * first: it asks for POSIX's clock_gettime before any system header. */
#ifndef SPANGUARD_BENCH_COMMON_H
#define SPANGUARD_BENCH_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 199309L
#endif

#include <spanguard.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Settings (after spanguard_config_init) for a tracer that discards what
 * it encodes, with room for `queue` ended spans. With `idle`, its
 * exporter sleeps through a sample (regime (a): a
 * batch as large as the queue and a minute's schedule delay); otherwise
 * it is woken every 512-span batch and encodes while the thread records
 * (regime (b)), its CPU cap lifted: with the default 50% it rested
 * through part or all of a sample after the flush before it
 * (bench/rust/src/main.rs, `Regime`). */
static inline void bench_settings(spanguard_config *cfg, int idle, uint32_t queue) {
    cfg->endpoint = "discard:";
    cfg->install_signal_handlers = 0;
    cfg->max_queue_size = queue;
    cfg->max_open_spans = 1 << 12;
    if (idle) {
        cfg->max_export_batch_size = cfg->max_queue_size;
        cfg->schedule_delay_ms = 60000;
    } else {
        cfg->exporter_max_cpu_percent = 100;
    }
}

/* A tracer with bench_settings. */
static inline spanguard_tracer *bench_tracer_sized(int idle, uint32_t queue) {
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    bench_settings(&cfg, idle, queue);
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        exit(1);
    }
    return t;
}

/* bench_tracer_sized with room for 65,536 ended spans. */
static inline spanguard_tracer *bench_tracer(int idle) { return bench_tracer_sized(idle, 1 << 16); }

/* Settings (after spanguard_config_init) that keep its defaults (a 4,096-slot
 * slab: 2,048 queued and 2,048 open spans, batches of 512, the exporter's
 * CPU cap 50%) but for what a benchmark must change: the sink (discard:)
 * and no signal handlers; with `idle`, an exporter that sleeps until a
 * flush (regime (a), as in bench_settings: samples must then stay under
 * the 2,048 spans the default queue holds). As the Rust bench's default
 * settings row (bench/rust/src/main.rs, `new_c_tracer_default`). */
static inline void bench_default_settings(spanguard_config *cfg, int idle) {
    cfg->endpoint = "discard:";
    cfg->install_signal_handlers = 0;
    if (idle) {
        cfg->max_export_batch_size = cfg->max_queue_size;
        cfg->schedule_delay_ms = 60000;
    }
}

/* A tracer with bench_default_settings. */
static inline spanguard_tracer *bench_default_tracer(int idle) {
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    bench_default_settings(&cfg, idle);
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        exit(1);
    }
    return t;
}

static inline double bench_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static inline int bench_by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n] (sorts v). */
static inline double bench_median(double *v, int n) {
    qsort(v, n, sizeof v[0], bench_by_value);
    return v[n / 2];
}

/* One benchmark span through the calls a C program makes: begin, the
 * three attributes one call each, end. */
static inline void bench_span_attrs3(spanguard_tracer *t, long i) {
    spanguard_span s;
    spanguard_span_begin(t, "op", 2, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_SERVER, &s);
    spanguard_span_set_int(s, "gen_ai.usage.input_tokens", 25, i);
    spanguard_span_set_string(s, "gen_ai.request.model", 20, "gpt-4o", 6);
    spanguard_span_set_bool(s, "stream", 6, true);
    spanguard_span_end(s);
}

static inline void bench_attributes(spanguard_attribute a[3], long i) {
    memset(a, 0, 3 * sizeof a[0]);
    a[0].key = "gen_ai.usage.input_tokens";
    a[0].key_len = 25;
    a[0].type_ = SPANGUARD_VALUE_INT;
    a[0].int_value = i;
    a[1].key = "gen_ai.request.model";
    a[1].key_len = 20;
    a[1].type_ = SPANGUARD_VALUE_STRING;
    a[1].string_value = "gpt-4o";
    a[1].string_len = 6;
    a[2].key = "stream";
    a[2].key_len = 6;
    a[2].type_ = SPANGUARD_VALUE_BOOL;
    a[2].bool_value = true;
}

#endif
