/* begin + 3 attributes + end in one regime for a while, for a profiler
 * (`perf record -e cpu-clock`): 50,000-span samples with a flush between
 * them, as hot_path.c times them, for SECONDS seconds. Prints ns a span
 * over the samples (flushes excluded). With `scope`, each span begins
 * through spanguard_span_begin_ex with an instrumentation scope, as the
 * OpenTelemetry bridges begin theirs: such a span writes its record's rest
 * line (`SpanRest`), which the exporter clears as it frees the slot.
 * With `defaults`, the tracer has the settings users get
 * (bench_default_tracer: a 4,096-slot slab, too small for the slot hold of
 * src/buffer/aging.rs), and in (a) a sample is 2,000 spans (the default
 * queue holds 2,048).
 *
 * With `thread`, each sample runs on a thread of its own, started for it
 * and joined after it, as bench/rust/src/main.rs's measure_with runs its
 * samples (the recording thread's slot cache and bias start empty each
 * sample). Last, it prints what the counters say of the samples: spans
 * exported while they ran, the exporter's CPU-cap rest, and batches.
 *
 * One setting at a time can be changed from either set (to find which of
 * them makes two sets differ): queue=N (max_queue_size), open=N
 * (max_open_spans; the slab has queue + open slots), batch=N
 * (max_export_batch_size), cap=N (exporter_max_cpu_percent).
 *
 * regime_loop (a|b) [seconds] [scope] [defaults] [thread] [queue=N] [open=N] [batch=N] [cap=N]
 *
 * Built by hand (no make target; -g for perf annotate):
 * cc -std=c11 -O2 -g -pthread -Iinclude bench/c/regime_loop.c -Lbuild/lib -lspanguard
 *    -Wl,-rpath,$PWD/build/lib -o build/bench/regime_loop */
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 50000, N_DEFAULT_IDLE = 2000 };

/* One sample's work, for a thread of its own (`thread`). */
struct sample {
    spanguard_tracer *t;
    void (*span)(spanguard_tracer *, long);
    long n;
};

static void *run_sample(void *arg) {
    struct sample *s = arg;
    for (long i = 0; i < s->n; i++) {
        s->span(s->t, i);
    }
    return NULL;
}

static spanguard_counters counters(spanguard_tracer *t) {
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    spanguard_stats(t, &c);
    return c;
}

/* bench_span_attrs3, begun with a scope as a bridge begins a span. */
static void span_with_scope(spanguard_tracer *t, long i) {
    spanguard_span_options o;
    spanguard_span_options_init_sized(&o, sizeof o);
    o.name = "op";
    o.name_len = 2;
    o.kind = SPANGUARD_KIND_SERVER;
    o.scope_name = "opentelemetry.instrumentation.openai";
    o.scope_name_len = 36;
    o.scope_version = "0.40.0";
    o.scope_version_len = 6;
    spanguard_span s;
    spanguard_span_begin_ex(t, &o, &s);
    spanguard_span_set_int(s, "gen_ai.usage.input_tokens", 25, i);
    spanguard_span_set_string(s, "gen_ai.request.model", 20, "gpt-4o", 6);
    spanguard_span_set_bool(s, "stream", 6, true);
    spanguard_span_end(s);
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "a") != 0 && strcmp(argv[1], "b") != 0)) {
        fprintf(stderr, "usage: regime_loop (a|b) [seconds] [scope] [defaults] [thread] [queue=N] [open=N] "
                        "[batch=N] [cap=N]\n");
        return 2;
    }
    int idle = strcmp(argv[1], "a") == 0;
    double seconds = argc > 2 ? atof(argv[2]) : 10;
    void (*span)(spanguard_tracer *, long) = bench_span_attrs3;
    int defaults = 0, own_thread = 0;
    /* Settings changed one at a time (0: as the set has it). */
    long queue = 0, open = 0, batch = 0, cap = 0;
    for (int i = 3; i < argc; i++) {
        if (sscanf(argv[i], "queue=%ld", &queue) == 1 || sscanf(argv[i], "open=%ld", &open) == 1 ||
            sscanf(argv[i], "batch=%ld", &batch) == 1 || sscanf(argv[i], "cap=%ld", &cap) == 1) {
            continue;
        }
        if (strcmp(argv[i], "scope") == 0) {
            span = span_with_scope;
        } else if (strcmp(argv[i], "defaults") == 0) {
            defaults = 1;
        } else if (strcmp(argv[i], "thread") == 0) {
            own_thread = 1;
        }
    }
    spanguard_config cfg;
    spanguard_config_init(&cfg, sizeof cfg);
    if (defaults) {
        bench_default_settings(&cfg, idle);
    } else {
        bench_settings(&cfg, idle, 1 << 16);
    }
    if (queue > 0) {
        cfg.max_queue_size = (uint32_t)queue;
    }
    if (open > 0) {
        cfg.max_open_spans = (uint32_t)open;
    }
    if (batch > 0) {
        cfg.max_export_batch_size = (uint32_t)batch;
    }
    if (cap > 0) {
        cfg.exporter_max_cpu_percent = (uint32_t)cap;
    }
    spanguard_tracer *t;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "spanguard_tracer_new failed\n");
        return 1;
    }
    printf("settings: queue %u, open %u, batch %u, cap %u%%\n", cfg.max_queue_size, cfg.max_open_spans,
           cfg.max_export_batch_size, cfg.exporter_max_cpu_percent);
    long n = defaults && idle ? N_DEFAULT_IDLE : N;
    for (long i = 0; i < 4 * N; i++) {
        span(t, i);
    }
    spanguard_flush(t, 30000);
    double start = bench_now_ns(), spent = 0;
    long spans = 0, samples = 0;
    uint64_t exported_during = 0, rested_ns = 0, batches = 0, dropped = 0, waits = 0, waited_ns = 0;
    struct sample work = {t, span, n};
    while (bench_now_ns() - start < seconds * 1e9) {
        spanguard_counters c0 = counters(t);
        double t0 = bench_now_ns();
        if (own_thread) {
            pthread_t th;
            if (pthread_create(&th, NULL, run_sample, &work) != 0) {
                fprintf(stderr, "pthread_create failed\n");
                return 1;
            }
            pthread_join(th, NULL);
        } else {
            run_sample(&work);
        }
        spent += bench_now_ns() - t0;
        spanguard_counters c1 = counters(t);
        exported_during += c1.spans_exported - c0.spans_exported;
        rested_ns += c1.exporter_throttled_ns - c0.exporter_throttled_ns;
        batches += c1.batches_sent - c0.batches_sent;
        dropped += c1.dropped_buffer_full - c0.dropped_buffer_full;
        waits += c1.slot_waits - c0.slot_waits;
        waited_ns += c1.slot_wait_ns - c0.slot_wait_ns;
        spans += n;
        samples++;
        spanguard_flush(t, 30000);
    }
    printf("regime (%s)%s%s: %.1f ns a span over %ld spans\n", argv[1], defaults ? ", default settings" : "",
           own_thread ? ", a thread a sample" : "", spent / spans, spans);
    printf("over %ld samples: %.1f%% of their spans exported during them, %.1f batches a sample, exporter rested "
           "%.0f us a sample (CPU cap), %lu dropped\n",
           samples, 100.0 * exported_during / spans, (double)batches / samples, rested_ns / 1e3 / samples,
           (unsigned long)dropped);
    printf("begins that waited for a free slot: %.1f a sample, %.1f ns a span of waiting\n", (double)waits / samples,
           (double)waited_ns / spans);
    spanguard_tracer_free(t);
    return 0;
}
