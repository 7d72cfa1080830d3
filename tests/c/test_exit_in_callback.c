/* The error callback ends the process: it calls exit() (an agent that
 * gives up when its backend is away), or it crashes. Both run on the
 * exporter thread, which the exit hook's shutdown and the crash handler
 * then waited for: the exit took the whole signal_flush_timeout plus the
 * 1.5 s grace of a stuck exporter (4.5 s with the default 3 s), the crash
 * the whole timeout, for an exporter that could do nothing meanwhile (it
 * is the thread doing the waiting). Now each knows it runs on the
 * exporter and leaves it stuck at once: the process ends well within the
 * timeout, its spans on disk (spooled, or in its crash dump) for the
 * next start to send.
 *
 * exit(): what is checked is a count, not a time. The child's own atexit
 * handler, registered before the tracer's exit hook and so run after it,
 * reads `exporter_waits_ran_out` (shutdowns that waited out their
 * deadline and grace for a stuck exporter) and passes it to the parent:
 * it was 1, now 0. A crash leaves no handler to read a count after the
 * crash handler, so there the bound stays, against a long timeout (20 s):
 * half of it is far from the waiting out, and far from a loaded
 * machine's slowness (1.6 s for the crash at load 20 once failed a 1.5 s
 * bound of a 3 s timeout). */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "proc.h"
#include "loopback.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define SPANS 5
#define FLUSH_TIMEOUT_MS 20000

static char spool[512], endpoint[64];

static void ending_callback(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len;
    if (strcmp((const char *)user_data, "exit") == 0) exit(0);
    raise(SIGSEGV);
}

/* A child whose callback ends it by `how`; the seconds from its last span
 * to its end, its wait status in `status`, and what its atexit handler
 * reported in `waits` (UINT64_MAX: nothing, as a crash runs none). */
static double run(const char *how, int *status, uint64_t *waits) {
    int ready[2], report[2];
    CHECK(pipe(ready) == 0 && pipe(report) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(report[0]);
        if (counter_at_exit(report[1], offsetof(spanguard_counters, exporter_waits_ran_out)) != 0) _exit(6);
        spanguard_config cfg;
        (void)spanguard_config_init(&cfg, sizeof cfg);
        cfg.service_name = "exit-in-callback";
        cfg.endpoint = endpoint; /* refused: the callback is told */
        cfg.spool_dir = spool;
        cfg.schedule_delay_ms = 200;
        cfg.export_timeout_ms = 100;
        cfg.request_timeout_ms = 200;
        cfg.install_signal_handlers = 1;
        cfg.signal_flush_timeout_ms = FLUSH_TIMEOUT_MS;
        cfg.log_level = "error";
        spanguard_tracer *t;
        if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) _exit(2);
        counter_at_exit_of(t);
        if (spanguard_set_error_callback(t, ending_callback, (void *)how) != SPANGUARD_RESULT_OK) _exit(3);
        for (int i = 0; i < SPANS; i++) {
            char name[48];
            snprintf(name, sizeof name, "%s-span-%d", how, i);
            spanguard_span s;
            if (spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s) != SPANGUARD_RESULT_OK) _exit(4);
            if (spanguard_span_end(s) != SPANGUARD_RESULT_OK) _exit(4);
        }
        char byte = 'r';
        if (write(ready[1], &byte, 1) != 1) _exit(5);
        for (;;) pause(); /* the callback ends it */
    }
    close(ready[1]);
    close(report[1]);
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(waitpid(pid, status, 0) == pid);
    double took = seconds_since(&t0);
    *waits = counter_from_exit(report[0]);
    close(ready[0]);
    close(report[0]);
    return took;
}

int main(int argc, char **argv) {
    hang_guard(120); /* a hang is a failure, not a stuck test: two waits of the timeout and grace fit */
    const char *scratch = argc > 1 ? argv[1] : "build/test_exit_in_callback-spans";
    snprintf(spool, sizeof spool, "%s-spool", scratch);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/v1/traces", closed_port());

    int status = 0;
    uint64_t waits = 0;
    double took = run("exit", &status, &waits);
    /* Its spans are on disk, spooled (the batch the callback was told of)
     * or in its crash dump, for the next start to send. */
    long files = files_ending(spool, ".sgspool") + files_ending(spool, ".sgdump");
    CHECK(files >= 1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The exit hook, on the exporter thread, left it at once: no wait for
     * it ran out. */
    if (waits != 0)
        fprintf(stderr, "exit() in the callback: %llu waits for the exporter ran out (%.1f s)\n",
                (unsigned long long)waits, took);
    CHECK(waits == 0);
    printf("exit() in the callback: %.2f s\n", took);

    took = run("segv", &status, &waits);
    CHECK(waits == UINT64_MAX); /* a crash runs no atexit handler */
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    if (took >= FLUSH_TIMEOUT_MS / 1000.0 / 2)
        fprintf(stderr, "a crash in the callback took %.1f s: it waited out the flush timeout for the exporter it runs on\n", took);
    CHECK(took < FLUSH_TIMEOUT_MS / 1000.0 / 2);
    printf("a crash in the callback: %.2f s\n", took);
    CHECK(files_ending(spool, ".sgspool") + files_ending(spool, ".sgdump") > files);

    return check_summary();
}
