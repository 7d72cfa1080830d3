/* A tracer's cold start, as a short-lived program sees it: the wall time of
 * spanguard_tracer_new with default settings (the flight recorder on if
 * asked), the resident memory an idle tracer adds once its exporter thread
 * has settled, and what this thread's first span adds. One JSON line.
 * Built against the header of any version (it uses nothing new), so the
 * same program measures two libraries: run it with LD_LIBRARY_PATH naming
 * each one's directory. bench/run.py runs it in fresh processes and takes
 * medians.
 *
 * startup STATE_DIR [flight] */
#define _POSIX_C_SOURCE 199309L
#include <spanguard.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* VmRSS of this process, in KiB. */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) sscanf(line + 6, "%ld", &kib);
    if (f) fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    spanguard_config cfg;
    if (spanguard_config_init(&cfg, sizeof cfg) != SPANGUARD_RESULT_OK) return 2;
    cfg.sink_dir = argv[1];
    cfg.spool_dir = argv[1];
    cfg.flight_recorder = argc > 2 && strcmp(argv[2], "flight") == 0;
    long before = rss_kib();
    spanguard_tracer *t = NULL;
    double t0 = now_ms();
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    double elapsed = now_ms() - t0;
    struct timespec settle = {0, 200 * 1000000L};
    nanosleep(&settle, NULL);
    long idle = rss_kib();
    spanguard_span s;
    (void)spanguard_span_begin(t, "op", 2, SPANGUARD_SPAN_NONE, SPANGUARD_KIND_INTERNAL, &s);
    (void)spanguard_span_end(s);
    long first_span = rss_kib();
    (void)spanguard_shutdown(t, 5000);
    spanguard_tracer_free(t);
    printf("{\"ms\": %.3f, \"idle_kib\": %ld, \"first_span_kib\": %ld}\n", elapsed, idle - before,
           first_span - idle);
    return 0;
}
