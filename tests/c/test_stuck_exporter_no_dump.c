/* A shutdown that leaves a stuck exporter running (its error callback
 * blocks) in a process with no crash dump (signal handlers off) and no
 * flight recorder: the spans the exporter had not dealt with have nowhere
 * else to go, and the shutdown says they are "lost unless it gets
 * unstuck". It did freeze the exporter all the same: let go after the
 * free, it took none of them, and they were neither sent, spooled nor
 * counted. And the callback, whose user_data the application may free once
 * spanguard_tracer_free returned, was called again by the exporter left
 * running.
 *
 * Now, let go, the exporter deals with them (here: spools them, the
 * backend is away, for the next start to send); the callback is not
 * called after the shutdown returned. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "proc.h"
#include "loopback.h"

#define TIMEOUT_MS 300
#define AFTER 3
#define EXPORTER "spanguard-expor" /* "spanguard-export", as the kernel keeps it */

static int entered[2], release_cb[2];
/* Calls of the callback that began after the shutdown returned. */
static volatile int calls_after_shutdown;
static volatile int shut_down;

static void stuck_callback(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)event, (void)message, (void)len, (void)user_data;
    static int calls;
    if (shut_down) calls_after_shutdown++;
    if (calls++ > 0) return;
    char byte = 'x';
    if (write(entered[1], &byte, 1) != 1) _exit(3);
    (void)!read(release_cb[0], &byte, 1);
}

/* How many spool files of `dir` hold `needle`. */
static int in_spool(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    static char body[1 << 20];
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 8 || strcmp(e->d_name + len - 8, ".sgspool") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t got = fread(body, 1, sizeof body, f);
        fclose(f);
        if (memmem(body, got, needle, strlen(needle))) n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    alarm(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_stuck_exporter_no_dump-spans";
    char spool[512], endpoint[64];
    snprintf(spool, sizeof spool, "%s-spool", scratch);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/v1/traces", closed_port());
    CHECK(pipe(entered) == 0 && pipe(release_cb) == 0);

    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "stuck-exporter-no-dump";
    cfg.endpoint = endpoint;
    cfg.spool_dir = spool;
    cfg.schedule_delay_ms = 10;
    cfg.export_timeout_ms = 100;
    cfg.request_timeout_ms = 200;
    cfg.install_signal_handlers = 0; /* no crash dump */
    cfg.flight_recorder = 0;
    cfg.protocol = SPANGUARD_PROTOCOL_HTTP_JSON;
    cfg.compression = SPANGUARD_COMPRESSION_NONE;
    cfg.log_level = "none";
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    CHECK_RC(spanguard_set_error_callback(t, stuck_callback, NULL), SPANGUARD_RESULT_OK);

    /* The first span is spooled; the callback told of it blocks. */
    record_span(t, "before-stuck");
    char byte;
    CHECK(read(entered[0], &byte, 1) == 1);
    for (int i = 0; i < AFTER; i++) {
        char name[32];
        snprintf(name, sizeof name, "after-stuck-%d", i);
        record_span(t, name);
    }
    CHECK_RC(spanguard_shutdown(t, TIMEOUT_MS), SPANGUARD_RESULT_TIMEOUT);
    shut_down = 1;
    spanguard_tracer_free(t);
    CHECK(threads_named(EXPORTER) == 1); /* still stuck */

    /* Let go: the exporter deals with what it had not, and ends. */
    CHECK(write(release_cb[1], &byte, 1) == 1);
    for (int i = 0; i < 2000 && threads_named(EXPORTER) > 0; i++) {
        struct timespec tick = {0, 10000000L};
        nanosleep(&tick, NULL);
    }
    CHECK(threads_named(EXPORTER) == 0);
    CHECK(calls_after_shutdown == 0);
    if (calls_after_shutdown) fprintf(stderr, "the callback was called %d times after the shutdown\n", calls_after_shutdown);

    /* Spooled (JSON, uncompressed, so the names can be looked for). */
    CHECK(in_spool(spool, "\"before-stuck\"") == 1);
    for (int i = 0; i < AFTER; i++) {
        char needle[48];
        snprintf(needle, sizeof needle, "\"after-stuck-%d\"", i);
        int n = in_spool(spool, needle);
        CHECK(n == 1);
        if (n != 1) fprintf(stderr, "%s: in %d spool files\n", needle, n);
    }
    return check_summary();
}
