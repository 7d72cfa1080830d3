/* One recording thread against two, through libspanguard.so, in both
 * regimes of the exporter (bench/c/common.h): where two threads' time goes
 * (BENCHMARKS.md). Each sample is 50,000 begin+3 attrs+end spans a thread,
 * timed from the first thread's start to the last one's end, then a flush;
 * the figure is wall time per span over all threads' spans, the median of
 * 10 samples after 2 of warm-up (the slots a sample needs are faulted in
 * during those). Rounds alternate the four configurations. Not part of
 * make test: `make bench-threads`. */
#include "common.h"

#include <pthread.h>
#include <stdbool.h>

enum { SAMPLES = 10, WARM = 2, ROUNDS = 3 };
static const long N = 50000;

static void *spans(void *arg) {
    spanguard_tracer *t = arg;
    for (long i = 0; i < N; i++) {
        bench_span_attrs3(t, i);
    }
    return NULL;
}

/* The median ns a span of one tracer's samples on `threads` threads. */
static double run(int threads, int idle) {
    /* Room for both threads' sample (100,000 spans) with the exporter
     * asleep, so that no begin waits for a slot. */
    spanguard_tracer *t = bench_tracer_sized(idle, 1 << 17);
    double per_span[SAMPLES];
    for (int k = 0; k < WARM + SAMPLES; k++) {
        pthread_t th[2];
        double t0 = bench_now_ns();
        for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, spans, t);
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
        if (k >= WARM) per_span[k - WARM] = (bench_now_ns() - t0) / (N * threads);
        spanguard_flush(t, 30000);
    }
    spanguard_tracer_free(t);
    return bench_median(per_span, SAMPLES);
}

int main(void) {
    static const char *const REGIME[2] = {"(b) exporter busy", "(a) exporter idle"};
    double figures[2][2][ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        for (int idle = 0; idle < 2; idle++)
            for (int threads = 1; threads <= 2; threads++)
                figures[idle][threads - 1][r] = run(threads, idle);
    printf("| regime | 1 thread ns/span | 2 threads ns/span (wall time over both threads' spans) | ratio |\n");
    printf("|---|---|---|---|\n");
    for (int idle = 0; idle < 2; idle++) {
        double one = bench_median(figures[idle][0], ROUNDS), two = bench_median(figures[idle][1], ROUNDS);
        printf("| %s | %.1f | %.1f | %.2f |\n", REGIME[idle], one, two, two / one);
    }
    printf("(begin+3 attrs+end, 50,000 spans a thread a sample; medians of %d rounds of %d-sample medians)\n",
           ROUNDS, SAMPLES);
    return 0;
}
