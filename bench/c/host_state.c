/* What the host's slow state is: begin + 3 attributes + end through
 * libspanguard.so, in 50,000-span samples (regime (a): the exporter
 * sleeps through them, so nothing of ours runs beside the thread), each
 * followed by a probe of how much of its core the thread has (probe.h).
 * Prints each sample as ns/probe, then
 * a table: the samples grouped by their probe, the median ns/span of
 * each group.
 *
 * host_state [samples] */
#include "common.h"
#include "probe.h"

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* ns one read of each clock a span may take its times from (twice a
 * span): the TSC, and clock_gettime before the TSC is anchored or
 * without it. In a loop, a million reads each. */
static void clock_reads(double *tsc_ns, double *gettime_ns) {
    enum { READS = 1000000 };
    uint64_t sum = 0;
    double t0 = bench_now_ns();
#if defined(__x86_64__)
    for (int i = 0; i < READS; i++) {
        sum += __rdtsc();
    }
#endif
    double t1 = bench_now_ns();
    for (int i = 0; i < READS; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sum += (uint64_t)ts.tv_nsec;
    }
    double t2 = bench_now_ns();
    __asm__ volatile("" : : "r"(sum));
    *tsc_ns = (t1 - t0) / READS;
    *gettime_ns = (t2 - t1) / READS;
}

static void spans(spanguard_tracer *t, long n) {
    for (long i = 0; i < n; i++) {
        bench_span_attrs3(t, i);
    }
}

enum { N = 50000, MAX_SAMPLES = 1000 };

int main(int argc, char **argv) {
    int samples = argc > 1 ? atoi(argv[1]) : 120;
    if (samples < 1 || samples > MAX_SAMPLES) {
        fprintf(stderr, "host_state: 1 to %d samples\n", MAX_SAMPLES);
        return 2;
    }
#if !defined(__x86_64__)
    printf("host_state: no probe on this architecture\n");
    return 0;
#endif
    spanguard_tracer *t = bench_tracer(1);
    static double ns[MAX_SAMPLES], width[MAX_SAMPLES], ghz[MAX_SAMPLES];
    spans(t, 2 * N); /* warm-up: the thread's slots faulted in */
    for (int k = 0; k < samples; k++) {
        spanguard_flush(t, 30000);
        double t0 = bench_now_ns();
        spans(t, N);
        ns[k] = (bench_now_ns() - t0) / N;
        width[k] = bench_probe(&ghz[k]);
        printf("%.0f/%.1f%s", ns[k], width[k], k + 1 < samples ? " " : "\n");
    }
    /* The samples by their probe, in steps of half an addition a cycle:
     * what the recording path costs at each share of the core. */
    printf("begin+3 attrs+end, regime (a), %d samples of %d spans; the core's clock %.2f GHz (median of the "
           "probes)\n",
           samples, N, bench_median(ghz, samples));
    printf("| probe (additions a cycle) | samples | median ns/span |\n|---|---|---|\n");
    for (int step = 0; step < 16; step++) {
        static double in_step[MAX_SAMPLES];
        int n = 0;
        for (int k = 0; k < samples; k++) {
            if ((int)(width[k] * 2) == step || (step == 15 && width[k] * 2 >= 15)) {
                in_step[n++] = ns[k];
            }
        }
        if (n > 0) {
            printf("| %.1f to %.1f | %d | %.1f |\n", step / 2.0, (step + 1) / 2.0, n, bench_median(in_step, n));
        }
    }
    double tsc_ns, gettime_ns;
    clock_reads(&tsc_ns, &gettime_ns);
    printf("a clock read here: rdtsc %.1f ns, clock_gettime(CLOCK_REALTIME) %.1f ns (a span reads one of them "
           "twice)\n",
           tsc_ns, gettime_ns);
    spanguard_tracer_free(t);
    return 0;
}
