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
 *   figures;
 * - the page faults the recording threads took in the measured samples,
 *   per 1,000 spans they recorded (each thread's own count,
 *   getrusage(RUSAGE_THREAD)), and the rest of the process's: a count
 *   that does not depend on the machine's load, which says whether first
 *   touches of memory (a fault, or a populate the thread ran itself, which
 *   the kernel counts as faults of the thread that asked) remain on the
 *   recording path. A fault may zero a 4 KiB page or a 2 MiB huge page. */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "common.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>

enum { SAMPLES = 10, WARM = 2, MAX_WARM = 12, ROUNDS = 3, QUEUE = 1 << 17 };
static long N = 50000;

struct worker {
    spanguard_tracer *t;
    double cpu_ns; /* the thread's own CPU time for its N spans */
    long faults;   /* the page faults the thread took in them */
};

/* Page faults, minor and major, of the calling thread (RUSAGE_THREAD) or
 * of the whole process (RUSAGE_SELF). */
static long faults(int who) {
    struct rusage u;
    if (getrusage(who, &u) != 0) return 0;
    return u.ru_minflt + u.ru_majflt;
}

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
    long f0 = faults(RUSAGE_THREAD);
    double c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < N; i++) {
        bench_span_attrs3(w->t, i);
    }
    w->cpu_ns = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    w->faults = faults(RUSAGE_THREAD) - f0;
    return NULL;
}

/* One configuration's medians: wall ns a span, a recording thread's CPU ns
 * a span, the rest of the process's CPU ns a span; and in all, KiB grown
 * and page faults of the recording threads and of the rest. */
struct figures {
    double wall, recording, rest;
    long grown_kib, recording_faults, rest_faults;
};

/* One sample on `threads` threads: its wall, recording and rest-of-process
 * CPU ns a span, the KiB of resident memory it added and the page faults
 * taken during it; then a flush. */
static struct figures sample(spanguard_tracer *t, int threads) {
    pthread_t th[2];
    struct worker w[2] = {{t, 0, 0}, {t, 0, 0}};
    long rss0 = resident_kib(), pf0 = faults(RUSAGE_SELF);
    double p0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = bench_now_ns();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, spans, &w[i]);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double t1 = bench_now_ns(), p1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    double spans_made = (double)N * threads, own = w[0].cpu_ns + w[1].cpu_ns;
    long recording_faults = w[0].faults + w[1].faults;
    /* RUSAGE_SELF counts the threads joined above too. */
    long rest_faults = faults(RUSAGE_SELF) - pf0 - recording_faults;
    struct figures f = {(t1 - t0) / spans_made, own / spans_made, ((p1 - p0) - own) / spans_made,
                        resident_kib() - rss0, recording_faults, rest_faults};
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
    long grown = 0, recording_faults = 0, rest_faults = 0;
    for (int k = 0; k < SAMPLES; k++) {
        struct figures f = sample(t, threads);
        wall[k] = f.wall;
        recording[k] = f.recording;
        rest[k] = f.rest;
        grown += f.grown_kib;
        recording_faults += f.recording_faults;
        rest_faults += f.rest_faults;
    }
    spanguard_tracer_free(t);
    return (struct figures){bench_median(wall, SAMPLES), bench_median(recording, SAMPLES),
                            bench_median(rest, SAMPLES), grown, recording_faults, rest_faults};
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
           " MiB grown in measured samples, 1 / 2 threads |"
           " recording threads' page faults a 1,000 spans, 1 / 2 threads |"
           " the rest of the process's page faults a 1,000 spans, 1 / 2 threads |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int idle = 0; idle < regimes; idle++) {
        double m[2][3];
        long grown[2], recording_faults[2], rest_faults[2];
        for (int n = 0; n < 2; n++) {
            double wall[ROUNDS], recording[ROUNDS], rest[ROUNDS];
            grown[n] = recording_faults[n] = rest_faults[n] = 0;
            for (int r = 0; r < ROUNDS; r++) {
                wall[r] = f[idle][n][r].wall;
                recording[r] = f[idle][n][r].recording;
                rest[r] = f[idle][n][r].rest;
                grown[n] += f[idle][n][r].grown_kib;
                recording_faults[n] += f[idle][n][r].recording_faults;
                rest_faults[n] += f[idle][n][r].rest_faults;
            }
            m[n][0] = bench_median(wall, ROUNDS);
            m[n][1] = bench_median(recording, ROUNDS);
            m[n][2] = bench_median(rest, ROUNDS);
        }
        /* Spans recorded in all measured samples of all rounds. */
        double spans1 = (double)N * SAMPLES * ROUNDS, spans2 = 2 * spans1;
        printf("| %s | %.1f | %.1f | %.2f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.3f / %.3f | %.3f / %.3f |\n",
               REGIME[idle], m[0][0], m[1][0], m[1][0] / m[0][0], m[0][1], m[1][1], m[0][2], m[1][2],
               grown[0] / 1024.0 / ROUNDS, grown[1] / 1024.0 / ROUNDS, 1000.0 * recording_faults[0] / spans1,
               1000.0 * recording_faults[1] / spans2, 1000.0 * rest_faults[0] / spans1,
               1000.0 * rest_faults[1] / spans2);
    }
    printf("(begin+3 attrs+end, %ld spans a thread a sample; medians of %d rounds of %d-sample medians;"
           " memory grown: the mean a round; page faults: all measured samples' over all their spans)\n",
           N, ROUNDS, SAMPLES);
    return 0;
}
