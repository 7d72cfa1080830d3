/* The recording path early in a process's life, and in a forked child:
 * where a short-lived program (a command-line agent, a test run) and a
 * pre-fork server's workers spend theirs. A tracer (regime (a),
 * bench/c/common.h), 50 ms of other work (a sleep), then 5 samples of
 * 20,000 begin+3 attrs+end spans, each followed by a flush; prints the
 * median ns a span as one JSON line. With `fork`, the same in a child
 * forked after the parent's tracer had run for 300 ms: the child records
 * into the tracer that replaced the parent's there, as every forked
 * tracer is replaced. Built against the header of any version (it uses
 * nothing new), so the same program measures two libraries: run it with
 * LD_LIBRARY_PATH naming each one's directory. bench/run.py runs it in
 * fresh processes and takes medians.
 *
 * early_spans [fork] */
#define _DEFAULT_SOURCE
#include "common.h"

#include <sys/wait.h>
#include <unistd.h>

enum { SAMPLES = 5, SPANS = 20000 };

static void sleep_ms(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

/* 50 ms after the caller's tracer began: the median ns a span. */
static double record(spanguard_tracer *t) {
    sleep_ms(50);
    double per_span[SAMPLES];
    for (int k = 0; k < SAMPLES; k++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < SPANS; i++) bench_span_attrs3(t, i);
        per_span[k] = (bench_now_ns() - t0) / SPANS;
        spanguard_flush(t, 30000);
    }
    return bench_median(per_span, SAMPLES);
}

int main(int argc, char **argv) {
    int forked = argc > 1 && strcmp(argv[1], "fork") == 0;
    spanguard_tracer *t = bench_tracer(1);
    if (!forked) {
        printf("{\"ns_per_span\": %.1f}\n", record(t));
        spanguard_tracer_free(t);
        return 0;
    }
    for (long i = 0; i < 1000; i++) bench_span_attrs3(t, i);
    sleep_ms(300);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) return 2;
    if (child == 0) {
        printf("{\"ns_per_span\": %.1f}\n", record(t));
        spanguard_tracer_free(t);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    spanguard_tracer_free(t);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
