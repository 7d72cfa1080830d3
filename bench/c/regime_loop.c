/* begin + 3 attributes + end in one regime for a while, for a profiler
 * (`perf record -e cpu-clock`): 50,000-span samples with a flush between
 * them, as hot_path.c times them, for SECONDS seconds. Prints ns a span
 * over the samples (flushes excluded). With `scope`, each span begins
 * through spanguard_span_begin_ex with an instrumentation scope, as the
 * OpenTelemetry bridges begin theirs: such a span writes its record's rest
 * line (`SpanRest`), which the exporter clears as it frees the slot.
 * With `defaults`, the tracer has the settings users get
 * (bench_default_tracer: a 4,096-slot slab, whose slot hold of
 * src/buffer/aging.rs is 1,024 slots once all its slots have been used),
 * and in (a) a sample is 2,000 spans (the default queue holds 2,048).
 *
 * With `thread`, each sample runs on a thread of its own, started for it
 * and joined after it, as bench/rust/src/main.rs's measure_with runs its
 * samples (the recording thread's slot cache and bias start empty each
 * sample). Last, it prints what the counters say of the samples: spans
 * exported while they ran, the exporter's CPU-cap rest, and batches; and
 * what can be counted beside a sample's time on a loaded machine: the
 * recording thread's minor faults and the process's, the recording
 * thread's CPU time a span and the rest of the process's (the exporter's),
 * and the scheduler's counts of the recording thread (moves between CPUs,
 * switches off its CPU: voluntary ones are sleeps in a slot wait,
 * involuntary ones preemptions or yields that ran another task; time
 * runnable but not running). With pause=US, it sleeps that long between
 * the flush and each sample (the exporter's CPU-cap rest after the flush
 * then runs out before the sample, as when another library's sample ran
 * between them in interleaved.c).
 *
 * One setting at a time can be changed from either set (to find which of
 * them makes two sets differ): queue=N (max_queue_size), open=N
 * (max_open_spans; the slab has queue + open slots), batch=N
 * (max_export_batch_size), cap=N (exporter_max_cpu_percent).
 *
 * regime_loop (a|b) [seconds] [scope] [defaults] [thread] [queue=N] [open=N] [batch=N] [cap=N] [pause=US]
 *
 * Built by hand (no make target; -g for perf annotate):
 * cc -std=c11 -O2 -g -pthread -Iinclude bench/c/regime_loop.c -Lbuild/lib -lspanguard
 *    -Wl,-rpath,$PWD/build/lib -o build/bench/regime_loop */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "common.h"

#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 50000, N_DEFAULT_IDLE = 2000 };

/* One sample's work, for a thread of its own (`thread`). */
struct sample {
    spanguard_tracer *t;
    void (*span)(spanguard_tracer *, long);
    long n;
    long faults; /* minor faults the recording thread took in it */
    double cpu_ns; /* the recording thread's CPU time in it */
    /* The recording thread's moves between CPUs, its switches off the
     * CPU (voluntary: a wait; involuntary: preempted) and its time
     * runnable but not running, in it (the scheduler's own counts). */
    long migrations, voluntary, involuntary;
    double runqueue_ns;
};

/* The scheduler's counts of the calling thread (/proc/thread-self/sched
 * and schedstat): migrations, voluntary and involuntary switches, and ns
 * spent waiting on a run queue. */
static void sched_counts(long *migrations, long *voluntary, long *involuntary, double *runqueue_ns) {
    *migrations = *voluntary = *involuntary = 0;
    *runqueue_ns = 0;
    FILE *f = fopen("/proc/thread-self/sched", "r");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof line, f) != NULL) {
            char *colon = strchr(line, ':');
            if (colon == NULL) continue;
            long v = atol(colon + 1);
            if (strncmp(line, "se.nr_migrations", 16) == 0) *migrations = v;
            else if (strncmp(line, "nr_voluntary_switches", 21) == 0) *voluntary = v;
            else if (strncmp(line, "nr_involuntary_switches", 23) == 0) *involuntary = v;
        }
        fclose(f);
    }
    f = fopen("/proc/thread-self/schedstat", "r");
    if (f != NULL) {
        unsigned long long run, wait;
        if (fscanf(f, "%llu %llu", &run, &wait) == 2) *runqueue_ns = (double)wait;
        fclose(f);
    }
}

static double thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* CPU time (user + system) of the whole process so far, ns. */
static double process_cpu_ns(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e9 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e3;
}

static long minor_faults(int who) {
    struct rusage u;
    return getrusage(who, &u) == 0 ? u.ru_minflt : 0;
}

static void *run_sample(void *arg) {
    struct sample *s = arg;
    long m0, v0, i0, m1, v1, i1;
    double q0, q1;
    sched_counts(&m0, &v0, &i0, &q0);
    long f0 = minor_faults(RUSAGE_THREAD);
    double c0 = thread_cpu_ns();
    for (long i = 0; i < s->n; i++) {
        s->span(s->t, i);
    }
    s->cpu_ns = thread_cpu_ns() - c0;
    s->faults = minor_faults(RUSAGE_THREAD) - f0;
    sched_counts(&m1, &v1, &i1, &q1);
    s->migrations = m1 - m0;
    s->voluntary = v1 - v0;
    s->involuntary = i1 - i0;
    s->runqueue_ns = q1 - q0;
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
                        "[batch=N] [cap=N] [pause=US]\n");
        return 2;
    }
    int idle = strcmp(argv[1], "a") == 0;
    double seconds = argc > 2 ? atof(argv[2]) : 10;
    void (*span)(spanguard_tracer *, long) = bench_span_attrs3;
    int defaults = 0, own_thread = 0;
    /* Settings changed one at a time (0: as the set has it). */
    long queue = 0, open = 0, batch = 0, cap = 0, pause_us = 0;
    for (int i = 3; i < argc; i++) {
        if (sscanf(argv[i], "queue=%ld", &queue) == 1 || sscanf(argv[i], "open=%ld", &open) == 1 ||
            sscanf(argv[i], "batch=%ld", &batch) == 1 || sscanf(argv[i], "cap=%ld", &cap) == 1 ||
            sscanf(argv[i], "pause=%ld", &pause_us) == 1) {
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
    long thread_faults = 0, process_faults = 0;
    double thread_cpu = 0, runqueue_ns = 0, process_cpu = 0;
    long migrations = 0, voluntary = 0, involuntary = 0;
    struct sample work = {t, span, n, 0, 0, 0, 0, 0, 0};
    while (bench_now_ns() - start < seconds * 1e9) {
        if (pause_us > 0) {
            struct timespec p = {pause_us / 1000000, (pause_us % 1000000) * 1000};
            nanosleep(&p, NULL);
        }
        long pf0 = minor_faults(RUSAGE_SELF);
        double pc0 = process_cpu_ns();
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
        process_faults += minor_faults(RUSAGE_SELF) - pf0;
        process_cpu += process_cpu_ns() - pc0;
        thread_faults += work.faults;
        thread_cpu += work.cpu_ns;
        migrations += work.migrations;
        voluntary += work.voluntary;
        involuntary += work.involuntary;
        runqueue_ns += work.runqueue_ns;
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
    printf("minor faults a sample: %.1f by the recording thread, %.1f by the process\n", (double)thread_faults / samples,
           (double)process_faults / samples);
    printf("CPU time a span: %.1f ns the recording thread's, %.1f ns the rest of the process's (the exporter's)\n",
           thread_cpu / spans, (process_cpu - thread_cpu) / spans);
    printf("the recording thread, a sample: %.2f moves between CPUs, %.1f voluntary and %.1f involuntary switches, "
           "%.0f us runnable but not running\n",
           (double)migrations / samples, (double)voluntary / samples, (double)involuntary / samples,
           runqueue_ns / 1e3 / samples);
    spanguard_tracer_free(t);
    return 0;
}
