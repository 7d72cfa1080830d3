/* begin + 3 attributes + end in one regime for a while, for a profiler
 * (`perf record -e cpu-clock`): 50,000-span samples with a flush between
 * them, as hot_path.c times them, for SECONDS seconds. Prints ns a span
 * over the samples (flushes excluded).
 *
 * regime_loop (a|b) [seconds] */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 50000 };

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "a") != 0 && strcmp(argv[1], "b") != 0)) {
        fprintf(stderr, "usage: regime_loop (a|b) [seconds]\n");
        return 2;
    }
    int idle = strcmp(argv[1], "a") == 0;
    double seconds = argc > 2 ? atof(argv[2]) : 10;
    spanguard_tracer *t = bench_tracer(idle);
    for (long i = 0; i < 4 * N; i++) {
        bench_span_attrs3(t, i);
    }
    spanguard_flush(t, 30000);
    double start = bench_now_ns(), spent = 0;
    long spans = 0;
    while (bench_now_ns() - start < seconds * 1e9) {
        double t0 = bench_now_ns();
        for (long i = 0; i < N; i++) {
            bench_span_attrs3(t, i);
        }
        spent += bench_now_ns() - t0;
        spans += N;
        spanguard_flush(t, 30000);
    }
    printf("regime (%s): %.1f ns a span over %ld spans\n", argv[1], spent / spans, spans);
    spanguard_tracer_free(t);
    return 0;
}
