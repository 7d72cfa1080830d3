/* Several tracers whose exporters are stuck (the application's error
 * callback blocks, as in test_shutdown_stuck_exporter.c) when the process
 * exits or gets SIGTERM. The exit hook and the signal watchdog dealt with
 * them one after another, each with its own full timeout: with four
 * tracers and a 2 s signal_flush_timeout, exit() took 4 x (2 s + the 1.5 s
 * grace for a stuck exporter) = 14 s and SIGTERM 6 s, past a container's
 * 10 s grace, so SIGKILL came before the last tracers were even asked to
 * flush. Now every tracer is dealt with at once, against one deadline: the
 * process ends after about one timeout (plus the grace). What is checked
 * is a count, not a time: the parent watches the child's threads while it
 * ends, and every tracer but the first (which the exiting thread or the
 * watchdog takes) had a "spanguard-flush" thread of its own at once
 * (`for_each_at_once`); one after another, none had.
 *
 * Each tracer's spans that its stuck exporter did not deal with are then
 * in its crash dump (dumps of several tracers written at once, none left
 * out): a tracer started afterwards sends each of them once. */
#define _GNU_SOURCE
#include <signal.h>
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
#include "receiver.h"
#include "successor.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define TRACERS 4
#define AFTER 3
#define FLUSH_TIMEOUT_MS 2000
/* One timeout plus the grace a stuck exporter gets (EXPORTER_STOP_GRACE). */
#define ONE_EXIT_S (FLUSH_TIMEOUT_MS / 1000.0 + 1.5)
#define ONE_SIGNAL_S (FLUSH_TIMEOUT_MS / 1000.0)

static char spool[512], endpoint[64];

/* Each tracer's callback tells `entered` it runs (its tracer's number),
 * then waits on `never`, which nobody writes. */
static int entered[2], never[2];
static _Atomic int calls[TRACERS];

static void stuck_callback(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len;
    int me = (int)(intptr_t)user_data;
    if (calls[me]++ > 0) return;
    char byte = (char)me;
    if (write(entered[1], &byte, 1) != 1) _exit(3);
    (void)!read(never[0], &byte, 1);
}

/* The child: TRACERS tracers, each exporter stuck in its callback, each
 * with AFTER ended spans it will not deal with; then one byte on `ready`
 * and, by `how`, exit(0) or a wait for the parent's SIGTERM. */
static void child(const char *how, int ready) {
    failures = 0; /* this child's own, not the parent's so far */
    spanguard_tracer *t[TRACERS];
    for (int i = 0; i < TRACERS; i++) {
        char service[64];
        snprintf(service, sizeof service, "exit-many-stuck-%d", i);
        spanguard_config cfg;
        (void)spanguard_config_init(&cfg, sizeof cfg);
        cfg.service_name = service;
        cfg.endpoint = endpoint;
        cfg.spool_dir = spool;
        cfg.schedule_delay_ms = 10;
        cfg.export_timeout_ms = 100;
        cfg.request_timeout_ms = 200;
        cfg.install_signal_handlers = 1; /* a crash dump to write to */
        cfg.signal_flush_timeout_ms = FLUSH_TIMEOUT_MS;
        cfg.log_level = "error";
        if (spanguard_tracer_new(&cfg, &t[i]) != SPANGUARD_RESULT_OK) _exit(2);
        CHECK_RC(spanguard_set_error_callback(t[i], stuck_callback, (void *)(intptr_t)i), SPANGUARD_RESULT_OK);
        /* Fails to reach the backend and is spooled; the callback told of
         * it blocks. */
        record_span(t[i], "before-stuck");
    }
    for (int i = 0; i < TRACERS; i++) {
        char byte;
        if (read(entered[0], &byte, 1) != 1) _exit(4);
    }
    for (int i = 0; i < TRACERS; i++)
        for (int k = 0; k < AFTER; k++) {
            char name[48];
            snprintf(name, sizeof name, "%s-%d-after-%d", how, i, k);
            record_span(t[i], name);
        }
    if (failures) _exit(5);
    char byte = 'r';
    if (write(ready, &byte, 1) != 1) _exit(6);
    if (strcmp(how, "exit") == 0) exit(0);
    for (;;) pause(); /* SIGTERM ends it */
}

/* Runs a child that ends by `how`; how long it took from its last span to
 * its end (said, not checked), its wait status in `status`, and the most
 * flush threads it had at once while it ended in `most`. */
static double run(const char *how, int *status, int *most) {
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        child(how, ready[1]);
        _exit(7);
    }
    close(ready[1]);
    char byte;
    if (read(ready[0], &byte, 1) != 1) {
        CHECK(waitpid(pid, status, 0) == pid);
        fprintf(stderr, "the %s child ended before its spans: status %#x\n", how, *status);
        CHECK(0);
        return 0;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (strcmp(how, "term") == 0) kill(pid, SIGTERM);
    *most = 0;
    for (;;) {
        pid_t ended = waitpid(pid, status, WNOHANG);
        if (ended != 0) {
            CHECK(ended == pid);
            break;
        }
        int now = threads_named_in(pid, "spanguard-flush");
        if (now > *most) *most = now;
        struct timespec tick = {0, 1000000L};
        nanosleep(&tick, NULL);
    }
    close(ready[0]);
    return seconds_since(&t0);
}

int main(int argc, char **argv) {
    hang_guard(60); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_exit_many_stuck-spans";
    snprintf(spool, sizeof spool, "%s-spool", scratch);
    /* Down (connections refused) until the dumps are to be sent. */
    int backend_port = 0;
    int backend = unlistened_socket(&backend_port);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/v1/traces", backend_port);
    CHECK(pipe(entered) == 0 && pipe(never) == 0);

    int status = 0, most = 0;
    double took = run("exit", &status, &most);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (most != TRACERS - 1)
        fprintf(stderr, "exit with %d stuck tracers: %d flush threads at once, not %d\n", TRACERS, most, TRACERS - 1);
    CHECK(most == TRACERS - 1);
    printf("exit with %d stuck tracers: %.1f s (one: %.1f s)\n", TRACERS, took, ONE_EXIT_S);

    took = run("term", &status, &most);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    if (most != TRACERS - 1)
        fprintf(stderr, "SIGTERM with %d stuck tracers: %d flush threads at once, not %d\n", TRACERS, most, TRACERS - 1);
    CHECK(most == TRACERS - 1);
    printf("SIGTERM with %d stuck tracers: %.1f s (one: %.1f s)\n", TRACERS, took, ONE_SIGNAL_S);

    /* The backend up at its URL, a tracer set up like the dead ones (a
     * dump waits for its own sender) sends what the dumps hold. */
    CHECK(files_ending(spool, ".sgdump") == 2 * TRACERS);
    start_recording_receiver(backend);
    CHECK(spanguard_result_is_ok(successor_sends_what_was_left("exit-many-stuck", endpoint, spool)));
    const char *hows[] = {"exit", "term"};
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < TRACERS; i++)
            for (int k = 0; k < AFTER; k++) {
                char needle[64];
                snprintf(needle, sizeof needle, "%s-%d-after-%d", hows[h], i, k);
                long n = recorded_count(needle);
                /* Exactly once. The "term" child's tracers recovered the
                 * "exit" child's dumps at their start, failed to send them
                 * and spooled them, and then blocked in the callback that
                 * told of it before marking them sent in the dumps: those
                 * spans were then both in the spool and in the dumps, and
                 * arrived twice. */
                if (n != 1) fprintf(stderr, "%s arrived %ld times\n", needle, n);
                CHECK(n == 1);
            }
    CHECK(files_ending(spool, ".sgdump") == 0);
    return check_summary();
}
