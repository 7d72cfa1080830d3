/* spanguard_shutdown returns by about its timeout even when the exporter
 * thread is stuck where nothing of spanguard's cuts it short. Here the
 * application's error callback blocks on a pipe read (a user's bug: a
 * callback waiting on a lock or a queue that the program, shutting down,
 * no longer serves). The shutdown joined that thread without a bound and
 * never returned: in a container, the SIGTERM hook hung until SIGKILL.
 *
 * Now it answers TIMEOUT within its timeout plus a grace, says so on
 * stderr, and writes the spans the exporter had not dealt with to the
 * crash dump (not the batch already spooled, whose outcome the callback
 * was told); spanguard_tracer_free returns at once. Once the callback is
 * let go, the exporter left running ends without touching freed memory,
 * and a tracer started afterwards sends the dumped spans. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
#define TIMEOUT_MS 500
#define AFTER 3
#define EXPORTER "spanguard-expor" /* "spanguard-export", as the kernel keeps it */

/* The callback tells `entered` it runs, then waits on `release`. */
static int entered[2], release_cb[2];

static void stuck_callback(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len, (void)user_data;
    static int calls;
    if (calls++ > 0) return;
    char byte = 'x';
    if (write(entered[1], &byte, 1) != 1) _exit(3);
    (void)!read(release_cb[0], &byte, 1);
}

int main(int argc, char **argv) {
    hang_guard(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_shutdown_stuck_exporter-spans";
    char spool[512], errors[512], endpoint[64];
    snprintf(spool, sizeof spool, "%s-spool", scratch);
    snprintf(errors, sizeof errors, "%s.stderr", scratch);
    /* Down (connections refused) until the dump is to be sent. */
    int backend_port = 0;
    int backend = unlistened_socket(&backend_port);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/v1/traces", backend_port);
    CHECK(pipe(entered) == 0 && pipe(release_cb) == 0);

    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "shutdown-stuck-exporter";
    cfg.endpoint = endpoint;
    cfg.spool_dir = spool;
    cfg.schedule_delay_ms = 10;
    cfg.export_timeout_ms = 100;
    cfg.request_timeout_ms = 200;
    cfg.install_signal_handlers = 1; /* a crash dump to write to */
    cfg.log_level = "warn";
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    CHECK_RC(spanguard_set_error_callback(t, stuck_callback, NULL), SPANGUARD_RESULT_OK);

    /* The first span fails to reach the backend and is spooled; the
     * callback told of it blocks. */
    record_span(t, "before-stuck");
    char byte;
    CHECK(read(entered[0], &byte, 1) == 1);
    /* What the exporter will not deal with: ended spans and an open one. */
    for (int i = 0; i < AFTER; i++) {
        char name[32];
        snprintf(name, sizeof name, "after-stuck-%d", i);
        record_span(t, name);
    }
    spanguard_span unended;
    CHECK_RC(spanguard_span_begin(t, S("open-at-shutdown"), SPANGUARD_SPAN_NONE, 0, &unended), SPANGUARD_RESULT_OK);

    /* stderr to a file, for the line the shutdown writes. */
    fflush(stderr);
    int saved = dup(2);
    int file = open(errors, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(saved >= 0 && file >= 0);
    dup2(file, 2);
    spanguard_result rc = spanguard_shutdown(t, TIMEOUT_MS);
    dup2(saved, 2);
    close(file);
    CHECK_RC(rc, SPANGUARD_RESULT_TIMEOUT);
    /* It returned because its wait for the exporter ran out (the timeout
     * and the grace), once, and left it stuck; a join without a bound
     * never returns (the hang guard above fails it, saying so). */
    CHECK(stats_of(t).exporter_waits_ran_out == 1);
    CHECK(files_in_dir(spool, ".sgdump") == 1);
    /* The first span's batch, spooled before the callback blocked, is in
     * one spool file: the dump did not write it again as a batch in flight. */
    CHECK(files_ending(spool, ".sgspool") == 1);

    char text[4096] = "";
    FILE *f = fopen(errors, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    CHECK(strstr(text, "the exporter thread did not stop") != NULL);
    CHECK(strstr(text, "crash dump") != NULL);
    if (!strstr(text, "crash dump")) fprintf(stderr, "the shutdown said: [%s]\n", text);

    /* Shut down: later calls say so, and free returns at once. */
    CHECK_RC(spanguard_shutdown(t, TIMEOUT_MS), SPANGUARD_RESULT_SHUT_DOWN);
    CHECK(stats_of(t).exporter_waits_ran_out == 1); /* the shut down one did not wait again */
    /* Returns with the exporter still stuck: one that joined it would wait
     * for the release below, for good (the hang guard). */
    spanguard_tracer_free(t);
    CHECK(threads_named(EXPORTER) == 1); /* still stuck */

    /* Let the callback go: the exporter, left running past the free,
     * ends (its pipeline was kept for it). */
    CHECK(write(release_cb[1], &byte, 1) == 1);
    for (int i = 0; i < 2000 && threads_named(EXPORTER) > 0; i++) {
        struct timespec tick = {0, 10000000L};
        nanosleep(&tick, NULL);
    }
    CHECK(threads_named(EXPORTER) == 0);

    /* The backend up at its URL, a tracer set up like the stuck one (its
     * dump no longer held; a dump waits for its own sender) sends the
     * spans the stuck exporter had not dealt with. */
    start_recording_receiver(backend);
    CHECK(spanguard_result_is_ok(successor_sends_what_was_left("shutdown-stuck-exporter", endpoint, spool)));
    for (int i = 0; i < AFTER; i++) {
        char needle[48];
        snprintf(needle, sizeof needle, "after-stuck-%d", i);
        CHECK(recorded_count(needle) >= 1);
    }
    CHECK(recorded_count("open-at-shutdown") >= 1);
    CHECK(files_in_dir(spool, ".sgdump") == 0);
    return check_summary();
}
