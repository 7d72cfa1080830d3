/* What the C benchmarks share: the tracer they record into and the three
 * attributes every benchmark span gets (the same keys and values as the
 * Rust, Go, Node and Python benchmarks). */
#ifndef SPANGUARD_BENCH_COMMON_H
#define SPANGUARD_BENCH_COMMON_H

#include <spanguard.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tracer that discards what it encodes (65,536 slots). With `idle`, its
 * exporter sleeps through a sample (regime (a): a batch as large as the
 * queue and a minute's schedule delay); otherwise it is woken every
 * 512-span batch and encodes while the thread records (regime (b)), its
 * CPU cap lifted: with the default 50% it rested through part or all of a
 * sample after the flush before it (bench/rust/src/main.rs, `Regime`). */
static inline spanguard_tracer *bench_tracer(int idle) {
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    cfg.endpoint = "discard:";
    cfg.install_signal_handlers = 0;
    cfg.max_queue_size = 1 << 16;
    cfg.max_open_spans = 1 << 12;
    if (idle) {
        cfg.max_export_batch_size = cfg.max_queue_size;
        cfg.schedule_delay_ms = 60000;
    } else {
        cfg.exporter_max_cpu_percent = 100;
    }
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        exit(1);
    }
    return t;
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
