/* One recording thread against two, through libspanguard.so, in both
 * regimes of the exporter (bench/c/common.h): where two threads' time goes
 * (BENCHMARKS.md). Each sample is N begin+3 attrs+end spans a thread
 * (50,000, or the first argument), timed from the first thread's start to
 * the last one's end, then a flush; the figure is wall time per span over
 * all threads' spans, the median of 10 samples after a warm-up of at least
 * 2 (the slots a sample needs are faulted in during those; until a sample
 * adds under a MiB of resident memory, at most 12). Rounds alternate the
 * four configurations (two, exporter busy only, for samples longer than
 * the idle regime's queue holds). Not part of make test: `make bench-threads`
 * (`make bench-threads SPANS=500000` for samples long enough to pass the
 * start of each, see below).
 *
 * Beside the wall time, where it went, medians over the same samples:
 * - each recording thread's own CPU time per span it recorded
 *   (CLOCK_THREAD_CPUTIME_ID), which is what sharing lines between cores
 *   raises;
 * - the rest of the process's CPU during the sample per span, nearly all
 *   the exporter's (encoding and giving slots back): with two recording
 *   threads it competes with them for two vCPUs;
 * - the resident memory the measured samples added, in all: memory
 *   first used then (slots reached for the first time as the spans
 *   waiting for the exporter pile up) is a one-time cost inside the
 *   figures. */
#include "common.h"

#include <pthread.h>
#include <stdbool.h>

enum { SAMPLES = 10, WARM = 2, MAX_WARM = 12, ROUNDS = 3, QUEUE = 1 << 17 };
static long N = 50000;

struct worker {
    spanguard_tracer *t;
    double cpu_ns; /* the thread's own CPU time for its N spans */
};

static double cpu_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static long resident_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * 4;
}

static void *spans(void *arg) {
    struct worker *w = arg;
    double c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < N; i++) {
        bench_span_attrs3(w->t, i);
    }
    w->cpu_ns = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    return NULL;
}

/* One configuration's medians: wall ns a span, a recording thread's CPU ns
 * a span, the rest of the process's CPU ns a span, and KiB grown. */
struct figures {
    double wall, recording, rest;
    long grown_kib;
};

/* One sample on `threads` threads: its wall, recording and rest-of-process
 * CPU ns a span, and the KiB of resident memory it added; then a flush. */
static struct figures sample(spanguard_tracer *t, int threads) {
    pthread_t th[2];
    struct worker w[2] = {{t, 0}, {t, 0}};
    long rss0 = resident_kib();
    double p0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = bench_now_ns();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, spans, &w[i]);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double t1 = bench_now_ns(), p1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    double spans_made = (double)N * threads, own = w[0].cpu_ns + w[1].cpu_ns;
    struct figures f = {(t1 - t0) / spans_made, own / spans_made, ((p1 - p0) - own) / spans_made,
                        resident_kib() - rss0};
    spanguard_flush(t, 30000);
    return f;
}

static struct figures run(int threads, int idle) {
    /* Room for both threads' sample (100,000 spans) with the exporter
     * asleep, so that no begin waits for a slot. */
    spanguard_tracer *t = bench_tracer_sized(idle, QUEUE);
    /* Warm-up, as bench/rust's: at least WARM samples, then until one adds
     * under a MiB of resident memory (at most MAX_WARM). */
    for (int k = 0; k < MAX_WARM; k++) {
        if (sample(t, threads).grown_kib < 1024 && k + 1 >= WARM) break;
    }
    double wall[SAMPLES], recording[SAMPLES], rest[SAMPLES];
    long grown = 0;
    for (int k = 0; k < SAMPLES; k++) {
        struct figures f = sample(t, threads);
        wall[k] = f.wall;
        recording[k] = f.recording;
        rest[k] = f.rest;
        grown += f.grown_kib;
    }
    spanguard_tracer_free(t);
    return (struct figures){bench_median(wall, SAMPLES), bench_median(recording, SAMPLES),
                            bench_median(rest, SAMPLES), grown};
}

int main(int argc, char **argv) {
    if (argc > 1) N = atol(argv[1]);
    if (N < 1000) {
        fprintf(stderr, "usage: %s [spans a thread a sample, at least 1000]\n", argv[0]);
        return 2;
    }
    static const char *const REGIME[2] = {"(b) exporter busy", "(a) exporter idle"};
    /* The idle regime holds a whole sample in the queue: only for samples
     * that fit it. */
    int regimes = 2 * N <= QUEUE ? 2 : 1;
    static struct figures f[2][2][ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        for (int idle = 0; idle < regimes; idle++)
            for (int threads = 1; threads <= 2; threads++) f[idle][threads - 1][r] = run(threads, idle);
    printf("| regime | 1 thread ns/span | 2 threads ns/span (wall time over both threads' spans) | ratio |"
           " recording CPU ns a span, 1 / 2 threads | rest of the process's CPU ns a span, 1 / 2 threads |"
           " MiB grown in measured samples, 1 / 2 threads |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int idle = 0; idle < regimes; idle++) {
        double m[2][3];
        long grown[2];
        for (int n = 0; n < 2; n++) {
            double wall[ROUNDS], recording[ROUNDS], rest[ROUNDS];
            grown[n] = 0;
            for (int r = 0; r < ROUNDS; r++) {
                wall[r] = f[idle][n][r].wall;
                recording[r] = f[idle][n][r].recording;
                rest[r] = f[idle][n][r].rest;
                grown[n] += f[idle][n][r].grown_kib;
            }
            m[n][0] = bench_median(wall, ROUNDS);
            m[n][1] = bench_median(recording, ROUNDS);
            m[n][2] = bench_median(rest, ROUNDS);
        }
        printf("| %s | %.1f | %.1f | %.2f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f |\n", REGIME[idle], m[0][0],
               m[1][0], m[1][0] / m[0][0], m[0][1], m[1][1], m[0][2], m[1][2], grown[0] / 1024.0 / ROUNDS,
               grown[1] / 1024.0 / ROUNDS);
    }
    printf("(begin+3 attrs+end, %ld spans a thread a sample; medians of %d rounds of %d-sample medians;"
           " memory grown: the mean a round)\n",
           N, ROUNDS, SAMPLES);
    return 0;
}
