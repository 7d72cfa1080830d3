/* What the host's slow state is: begin + 3 attributes + end through
 * libspanguard.so, in 50,000-span samples (regime (a): the exporter
 * sleeps through them, so nothing of ours runs beside the thread), each
 * followed by a probe of how much of its core the thread has:
 * independent additions retired per cycle of a dependent chain (as
 * bench/rust/src/host.rs). A core retires one addition of a dependent
 * chain per cycle whatever runs beside it, independent ones as fast as
 * it has ALUs (4 on an idle AMD Zen 3 core), and about half that while
 * its other hardware thread is busy. The additions add a register, not a
 * constant: some newer Intel cores fold a chain of constant additions at
 * rename, and the probe then read 1.0 whatever the core's state.
 * Prints each sample as ns/probe, then
 * a table: the samples grouped by their probe, the median ns/span of
 * each group.
 *
 * host_state [samples] */
#include "common.h"

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#define REPT64(x) ".rept 64\n" x ".endr\n"
enum { PROBE_ROUNDS = 2000 };

/* ns an addition of a dependent chain takes, over 128,000 of them. */
static double chain_ns(void) {
    uint64_t a = 1, one = 1;
    __asm__ volatile("" : "+r"(one)); /* not a constant to the compiler */
    double t0 = bench_now_ns();
    for (int i = 0; i < PROBE_ROUNDS; i++) {
        __asm__ volatile(REPT64("add %1, %0\n") : "+r"(a) : "r"(one));
    }
    return (bench_now_ns() - t0) / (PROBE_ROUNDS * 64.0);
}

/* ns an addition takes in four independent chains, over 512,000. */
static double wide_ns(void) {
    uint64_t a = 1, b = 2, c = 3, d = 4, one = 1;
    __asm__ volatile("" : "+r"(one));
    double t0 = bench_now_ns();
    for (int i = 0; i < PROBE_ROUNDS; i++) {
        __asm__ volatile(REPT64("add %4, %0\nadd %4, %1\nadd %4, %2\nadd %4, %3\n")
                         : "+r"(a), "+r"(b), "+r"(c), "+r"(d)
                         : "r"(one));
    }
    return (bench_now_ns() - t0) / (PROBE_ROUNDS * 256.0);
}

/* The two parts in turn, 16 times (about 3 ms, a share of a sample's
 * time: the neighbour's load changes within milliseconds), then the
 * ratio of their totals; *ghz is the core's clock (a dependent addition
 * takes one cycle). */
static double probe(double *ghz) {
    double chain = 0, wide = 0;
    for (int i = 0; i < 16; i++) {
        chain += chain_ns();
        wide += wide_ns();
    }
    *ghz = 16 / chain;
    return chain / wide;
}
#else
static double probe(double *ghz) {
    *ghz = 0;
    return 0;
}
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
        width[k] = probe(&ghz[k]);
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
