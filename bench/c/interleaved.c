/* Two builds of libspanguard.so in one process, sample by sample:
 * begin + 3 attributes + end through each library in turn, 50,000 spans a
 * sample, the first library of each pair alternating. Why: on a shared VM
 * the host's state moves within minutes (BENCHMARKS.md: a busy neighbour
 * cost a thread 0.99x to 2.69x of the floor within one hour), so two
 * processes run one after the other, as bench/compare.sh runs them, meet
 * different minutes, and a 3% change hides in pair ratios that scatter by
 * 10%. Here the two samples of a pair are a few milliseconds apart.
 *
 * Each library is loaded by path (dlopen, RTLD_LOCAL: its own statics,
 * thread-locals and exporter thread) and called through dlsym, so the two
 * need only agree on the calls below; each gets its own tracer from the
 * same settings (bench/c/common.h's, regime (b) unless --idle; with
 * --defaults, the settings users get, bench_default_settings, whose slab
 * holds 1,024 slots back once all its slots have been used
 * (src/buffer/aging.rs), and in (a) samples of 2,000 spans).
 *
 * After each pair, a probe of how much of its core the thread had
 * (probe.h): a change made for one host state (the recording thread's
 * core to itself, or shared with a busy neighbour) may cost in the other,
 * and a run meets either or both (BENCHMARKS.md, run 111: the slot-header
 * change timed in the shared state only).
 *
 * interleaved LIB_A LIB_B [pairs] [--idle] [--defaults]
 * Prints each pair's ratio (B over A), then the pair ratios' median in each
 * host state, then (last line) the medians of A, of B and of the pair
 * ratios, and in how many pairs B was faster; before it, the median of the
 * pair ratios of the recording thread's CPU time (CLOCK_THREAD_CPUTIME_ID),
 * and for each library the medians of its samples' recording thread CPU time
 * a span and of the begins that waited for a slot (`slot_waits`): counts to
 * set beside make bench's default settings' row, which prints the same
 * (bench/rust/src/main.rs, `BusyCounts`). */
#define _GNU_SOURCE
#include "common.h"
#include "probe.h"

#include <dlfcn.h>

typedef spanguard_result (*config_init_fn)(spanguard_config *, size_t);
typedef spanguard_result (*tracer_new_fn)(const spanguard_config *, spanguard_tracer **);
typedef spanguard_result (*begin_fn)(const spanguard_tracer *, const char *, size_t, spanguard_span, uint32_t,
                                     spanguard_span *);
typedef spanguard_result (*set_int_fn)(spanguard_span, const char *, size_t, int64_t);
typedef spanguard_result (*set_string_fn)(spanguard_span, const char *, size_t, const char *, size_t);
typedef spanguard_result (*set_bool_fn)(spanguard_span, const char *, size_t, bool);
typedef spanguard_result (*end_fn)(spanguard_span);
typedef spanguard_result (*flush_fn)(const spanguard_tracer *, uint32_t);
typedef void (*tracer_free_fn)(spanguard_tracer *);
typedef spanguard_result (*stats_fn)(const spanguard_tracer *, spanguard_counters *);

/* One library's calls, and the tracer made through them. */
struct lib {
    config_init_fn config_init;
    tracer_new_fn tracer_new;
    begin_fn begin;
    set_int_fn set_int;
    set_string_fn set_string;
    set_bool_fn set_bool;
    end_fn end;
    flush_fn flush;
    tracer_free_fn tracer_free;
    stats_fn stats;
    spanguard_tracer *tracer;
};

static void *symbol(void *handle, const char *path, const char *name) {
    void *f = dlsym(handle, name);
    if (f == NULL) {
        fprintf(stderr, "interleaved: %s has no %s\n", path, name);
        exit(2);
    }
    return f;
}

static void load(struct lib *l, const char *path, int idle, int defaults) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "interleaved: %s\n", dlerror());
        exit(2);
    }
    l->config_init = (config_init_fn)symbol(h, path, "spanguard_config_init");
    l->tracer_new = (tracer_new_fn)symbol(h, path, "spanguard_tracer_new");
    l->begin = (begin_fn)symbol(h, path, "spanguard_span_begin");
    l->set_int = (set_int_fn)symbol(h, path, "spanguard_span_set_int");
    l->set_string = (set_string_fn)symbol(h, path, "spanguard_span_set_string");
    l->set_bool = (set_bool_fn)symbol(h, path, "spanguard_span_set_bool");
    l->end = (end_fn)symbol(h, path, "spanguard_span_end");
    l->flush = (flush_fn)symbol(h, path, "spanguard_flush");
    l->tracer_free = (tracer_free_fn)symbol(h, path, "spanguard_tracer_free");
    l->stats = (stats_fn)symbol(h, path, "spanguard_stats");
    /* bench_tracer's settings, through this library's calls. */
    spanguard_config cfg;
    if (l->config_init(&cfg, sizeof cfg) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "interleaved: spanguard_config_init failed in %s\n", path);
        exit(2);
    }
    if (defaults) {
        bench_default_settings(&cfg, idle);
    } else {
        bench_settings(&cfg, idle, 1 << 16);
    }
    if (l->tracer_new(&cfg, &l->tracer) != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "interleaved: spanguard_tracer_new failed in %s\n", path);
        exit(2);
    }
}

enum { N = 50000, N_DEFAULT_IDLE = 2000, MAX_PAIRS = 1000 };

/* ns of this thread's CPU time so far: unlike the wall clock, it does not
 * count the time the thread waited for a CPU while other work ran (on a
 * loaded machine, most of a sample's wall time). */
static double thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* The thread's CPU time of the last `sample`, ns a span. */
static double last_cpu_ns;

/* Begins that have waited for a free slot in `l`'s tracer so far. */
static double slot_waits(const struct lib *l) {
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    l->stats(l->tracer, &c);
    return (double)c.slot_waits;
}

/* bench_span_attrs3 through `l`, n times; ns a span (wall clock). */
static double sample(const struct lib *l, long n) {
    double c0 = thread_cpu_ns();
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        spanguard_span s;
        l->begin(l->tracer, "op", 2, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_SERVER, &s);
        l->set_int(s, "gen_ai.usage.input_tokens", 25, i);
        l->set_string(s, "gen_ai.request.model", 20, "gpt-4o", 6);
        l->set_bool(s, "stream", 6, true);
        l->end(s);
    }
    double wall = (bench_now_ns() - t0) / n;
    last_cpu_ns = (thread_cpu_ns() - c0) / n;
    return wall;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: interleaved LIB_A LIB_B [pairs] [--idle] [--defaults]\n");
        return 2;
    }
    int pairs = 40, idle = 0, defaults = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--idle") == 0) {
            idle = 1;
        } else if (strcmp(argv[i], "--defaults") == 0) {
            defaults = 1;
        } else {
            pairs = atoi(argv[i]);
        }
    }
    if (pairs < 1 || pairs > MAX_PAIRS) {
        fprintf(stderr, "interleaved: 1 to %d pairs\n", MAX_PAIRS);
        return 2;
    }
    static struct lib libs[2];
    load(&libs[0], argv[1], idle, defaults);
    load(&libs[1], argv[2], idle, defaults);
    /* The default queue holds 2,048 ended spans: a longer sample in (a)
     * would wake the exporter. */
    long n = defaults && idle ? N_DEFAULT_IDLE : N;
    for (int k = 0; k < 2; k++) {
        sample(&libs[k], 4 * N); /* warm-up: the thread's slots faulted in */
        libs[k].flush(libs[k].tracer, 30000);
    }
    static double a[MAX_PAIRS], b[MAX_PAIRS], ratio[MAX_PAIRS], width[MAX_PAIRS], cpu_ratio[MAX_PAIRS];
    /* Each library's samples: recording thread CPU ns a span, slot waits. */
    static double cpu_of[2][MAX_PAIRS], waits_of[2][MAX_PAIRS];
    int b_faster = 0;
    for (int p = 0; p < pairs; p++) {
        double ns[2], cpu[2];
        for (int j = 0; j < 2; j++) {
            int k = (p + j) % 2; /* A first in even pairs, B first in odd */
            /* Each sample starts with both exporters' queues empty: the
             * other library's exporter finishing its spans would run
             * beside this sample. */
            libs[0].flush(libs[0].tracer, 30000);
            libs[1].flush(libs[1].tracer, 30000);
            double w0 = slot_waits(&libs[k]);
            ns[k] = sample(&libs[k], n);
            cpu[k] = last_cpu_ns;
            waits_of[k][p] = slot_waits(&libs[k]) - w0;
            cpu_of[k][p] = cpu[k];
        }
        cpu_ratio[p] = cpu[1] / cpu[0];
        a[p] = ns[0];
        b[p] = ns[1];
        ratio[p] = ns[1] / ns[0];
        b_faster += ratio[p] < 1;
        double ghz;
        width[p] = bench_probe(&ghz);
        printf("%.3f/%.1f%s", ratio[p], width[p], p + 1 < pairs ? " " : "\n");
    }
    /* The pair ratios by the probe after them (the state the pair most
     * likely met: the neighbour's load holds for seconds to minutes). */
    static double whole[MAX_PAIRS], shared[MAX_PAIRS];
    int n_whole = 0, n_shared = 0;
    for (int p = 0; p < pairs; p++) {
        if (width[p] >= BENCH_PROBE_WHOLE_CORE) {
            whole[n_whole++] = ratio[p];
        } else {
            shared[n_shared++] = ratio[p];
        }
    }
    printf("by host state: whole core %d pairs, ratio B/A %.3f; shared core %d pairs, ratio B/A %.3f "
           "(0 pairs: 0.000)\n",
           n_whole, n_whole > 0 ? bench_median(whole, n_whole) : 0.0, n_shared,
           n_shared > 0 ? bench_median(shared, n_shared) : 0.0);
    /* The recording thread's CPU time instead of the wall clock: the same
     * samples, without the time spent waiting for a CPU. */
    printf("thread CPU: pair ratio B/A %.3f (median)\n", bench_median(cpu_ratio, pairs));
    printf("recording thread CPU, ns a span: A %.1f, B %.1f; begins that waited for a slot, a sample: A %.1f, B %.1f "
           "(medians)\n",
           bench_median(cpu_of[0], pairs), bench_median(cpu_of[1], pairs), bench_median(waits_of[0], pairs),
           bench_median(waits_of[1], pairs));
    printf("begin+3 attrs+end, regime %s%s, %d pairs of %ld-span samples: A %.1f ns/span, B %.1f, "
           "pair ratio B/A %.3f (median), B faster in %d of %d\n",
           idle ? "(a)" : "(b)", defaults ? ", default settings" : "", pairs, n, bench_median(a, pairs), bench_median(b, pairs),
           bench_median(ratio, pairs), b_faster, pairs);
    for (int k = 0; k < 2; k++) {
        libs[k].tracer_free(libs[k].tracer);
    }
    return 0;
}
