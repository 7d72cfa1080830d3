/* How much of its core the calling thread has: independent additions
 * retired per cycle of a dependent chain (as bench/rust/src/host.rs). A
 * core retires one addition of a dependent chain per cycle whatever runs
 * beside it, independent ones as fast as it has ALUs (4 on an idle AMD
 * Zen 3 core), and about half that while its other hardware thread is
 * busy. The additions add a register, not a constant: some newer Intel
 * cores fold a chain of constant additions at rename, and the probe then
 * read 1.0 whatever the core's state. Shared by host_state.c (the cost of
 * a span at each state) and interleaved.c (a change's ratio in each
 * state). Include after common.h. */
#ifndef SPANGUARD_BENCH_PROBE_H
#define SPANGUARD_BENCH_PROBE_H

#include <stdint.h>

#if defined(__x86_64__)
#define BENCH_REPT64(x) ".rept 64\n" x ".endr\n"
enum { BENCH_PROBE_ROUNDS = 2000 };

/* ns an addition of a dependent chain takes, over 128,000 of them. */
static inline double bench_chain_ns(void) {
    uint64_t a = 1, one = 1;
    __asm__ volatile("" : "+r"(one)); /* not a constant to the compiler */
    double t0 = bench_now_ns();
    for (int i = 0; i < BENCH_PROBE_ROUNDS; i++) {
        __asm__ volatile(BENCH_REPT64("add %1, %0\n") : "+r"(a) : "r"(one));
    }
    return (bench_now_ns() - t0) / (BENCH_PROBE_ROUNDS * 64.0);
}

/* ns an addition takes in four independent chains, over 512,000. */
static inline double bench_wide_ns(void) {
    uint64_t a = 1, b = 2, c = 3, d = 4, one = 1;
    __asm__ volatile("" : "+r"(one));
    double t0 = bench_now_ns();
    for (int i = 0; i < BENCH_PROBE_ROUNDS; i++) {
        __asm__ volatile(BENCH_REPT64("add %4, %0\nadd %4, %1\nadd %4, %2\nadd %4, %3\n")
                         : "+r"(a), "+r"(b), "+r"(c), "+r"(d)
                         : "r"(one));
    }
    return (bench_now_ns() - t0) / (BENCH_PROBE_ROUNDS * 256.0);
}

/* The two parts in turn, 16 times (about 3 ms, a share of a sample's
 * time: the neighbour's load changes within milliseconds), then the
 * ratio of their totals; *ghz is the core's clock (a dependent addition
 * takes one cycle). */
static inline double bench_probe(double *ghz) {
    double chain = 0, wide = 0;
    for (int i = 0; i < 16; i++) {
        chain += bench_chain_ns();
        wide += bench_wide_ns();
    }
    *ghz = 16 / chain;
    return chain / wide;
}
#else
/* 0: no probe on this architecture. */
static inline double bench_probe(double *ghz) {
    *ghz = 0;
    return 0;
}
#endif

/* A probe at or above this: the thread had its core to itself (the
 * vCPUs on two physical cores); below: the core's other hardware thread
 * was busy. BENCHMARKS.md's runs read 3.5 to 4.5 or 2.0 to 3.0, rarely
 * between. */
#define BENCH_PROBE_WHOLE_CORE 3.5

#endif
