/* A shutdown that left its exporter stuck (TIMEOUT) writes what the
 * exporter had not dealt with to the crash files at once: the spans in its
 * slots to the slot dump, the batch it was sending to a spool file. When
 * the process then crashed before spanguard_tracer_free (the tracer still
 * known to the crash handler), the handler dumped the same tracer again,
 * appending to the files already published: the slot dump held two dumps
 * (its header rewritten with the second's count), and the batch's spool
 * file two copies of the batch, which the spool's reader took for torn and
 * set aside: that batch's spans never arrived. Now a tracer whose dump is
 * on disk is not dumped again (a tracer shut down records nothing more,
 * so a second dump could only repeat the first).
 *
 * Two children, each then sent to a loopback receiver by a tracer started
 * on its spool: one whose exporter is stuck in the error callback after
 * the batch it sent was spooled (what is left is in its slots), one whose
 * exporter is stuck in the callback told of the first part of a batch
 * over the spool's cap, spooled in parts (the batch is in flight). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "receiver.h"
#include "successor.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define AFTER 3
/* The "parts" child's batch: spans with values this long, over the
 * spool's cap of 1 MiB together, so that it is spooled in parts. */
#define BIG 4
#define BIG_VALUE (300 * 1024)

/* --- the children --- */

/* The callback tells `entered` it runs, then waits on `never`, which
 * nobody writes: at the first event told ("callback"), or at the first
 * batch spooled ("parts": the first part of the batch spooled in parts,
 * while the batch is still in flight). */
static int entered[2], never[2];
static int stuck_on_parts;

static void stuck_callback(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)message, (void)len, (void)user_data;
    static _Atomic int stuck;
    if (stuck_on_parts && event != SPANGUARD_EVENT_BATCH_SPOOLED) return;
    if (stuck++ > 0) return;
    char byte = 'x';
    if (write(entered[1], &byte, 1) != 1) _exit(3);
    (void)!read(never[0], &byte, 1);
}

static void record(spanguard_tracer *t, const char *name, size_t value_len) {
    static char value[BIG_VALUE];
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    if (value_len > 0) {
        /* Not all alike, so no encoder finds it compressible by accident. */
        for (size_t i = 0; i < value_len; i++) value[i] = (char)('a' + (i * 7 + i / 13) % 26);
        CHECK_RC(spanguard_span_set_string(s, S("llm.prompt"), value, value_len), SPANGUARD_RESULT_OK);
    }
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
}

/* The child: a shutdown that answers TIMEOUT, its exporter stuck (`how`:
 * "callback" or "parts"), then SIGSEGV before the tracer is freed. Exits
 * 5 when a check failed. */
static void child(const char *spool, const char *endpoint, const char *how) {
    failures = 0; /* this child's own */
    stuck_on_parts = strcmp(how, "parts") == 0;
    CHECK(pipe(entered) == 0 && pipe(never) == 0);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "crash-after-stuck";
    cfg.endpoint = endpoint;
    cfg.spool_dir = spool;
    cfg.compression = SPANGUARD_COMPRESSION_NONE;
    cfg.schedule_delay_ms = stuck_on_parts ? 300 : 10;
    cfg.export_timeout_ms = 100;
    cfg.request_timeout_ms = 200;
    cfg.spool_max_mib = 1;
    cfg.max_request_bytes = 4 << 20; /* the parts child's batch in one request */
    cfg.install_signal_handlers = 1; /* the crash dump and its handler */
    cfg.log_level = "error";
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) _exit(2);
    CHECK_RC(spanguard_set_error_callback(t, stuck_callback, NULL), SPANGUARD_RESULT_OK);
    char name[48];
    if (stuck_on_parts) {
        /* One batch over the spool's cap (the backend is down): spooled
         * in parts, the callback told of the first blocks. */
        for (int i = 0; i < BIG; i++) {
            snprintf(name, sizeof name, "parts-big-%d", i);
            record(t, name, BIG_VALUE);
        }
    } else {
        /* Spooled (the backend is down); the callback told of it blocks. */
        record(t, "callback-before-stuck", 0);
    }
    char byte;
    if (read(entered[0], &byte, 1) != 1) _exit(4);
    for (int i = 0; i < AFTER; i++) {
        snprintf(name, sizeof name, "%s-after-stuck-%d", how, i);
        record(t, name, 0);
    }
    spanguard_span unended;
    snprintf(name, sizeof name, "%s-open-at-shutdown", how);
    CHECK_RC(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &unended), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 300), SPANGUARD_RESULT_TIMEOUT);
    if (failures) _exit(5);
    raise(SIGSEGV);
    _exit(6);
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_crash_after_stuck-spans";
    char spool[2][512], down[64];
    int port = 0;
    int backend = unlistened_socket(&port);
    snprintf(down, sizeof down, "http://127.0.0.1:%d/v1/traces", port);
    const char *hows[] = {"callback", "parts"};
    for (int h = 0; h < 2; h++) {
        /* A spool directory each: a tracer started in the second child
         * would otherwise recover the first one's dump itself. */
        snprintf(spool[h], sizeof spool[h], "%s-spool-%s", scratch, hows[h]);
        pid_t pid = fork();
        if (pid == 0) child(spool[h], down, hows[h]);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFSIGNALED(status)) fprintf(stderr, "the %s child ended with status %#x\n", hows[h], status);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    }

    /* The backend up at its URL, a tracer started now on each spool sends
     * what it holds: the crash dump and the spool files. */
    start_recording_receiver(backend);
    const char *up = down;
    for (int h = 0; h < 2; h++) {
        CHECK_RC(successor_sends_what_was_left("crash-after-stuck", up, spool[h]), SPANGUARD_RESULT_OK);
        CHECK(files_in_dir(spool[h], ".unreadable") == 0);
        CHECK(files_in_dir(spool[h], "") == 0);
    }
    /* Once each: the spans the stuck exporters had not dealt with, and the
     * one spooled before the callback blocked. The parts child's batch at
     * least once: its first part was spooled and the whole batch, still in
     * flight, dumped (documented: a batch in flight may arrive twice). */
    for (int h = 0; h < 2; h++) {
        char needle[64];
        for (int i = 0; i <= AFTER; i++) {
            if (i == AFTER) snprintf(needle, sizeof needle, "%s-open-at-shutdown", hows[h]);
            else snprintf(needle, sizeof needle, "%s-after-stuck-%d", hows[h], i);
            long n = recorded_count(needle);
            if (n != 1) fprintf(stderr, "%s arrived %ld times\n", needle, n);
            CHECK(n == 1);
        }
    }
    long before = recorded_count("callback-before-stuck");
    if (before != 1) fprintf(stderr, "callback-before-stuck arrived %ld times\n", before);
    CHECK(before == 1);
    for (int i = 0; i < BIG; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "parts-big-%d", i);
        long n = recorded_count(needle);
        if (n < 1 || n > 2) fprintf(stderr, "%s arrived %ld times\n", needle, n);
        CHECK(n >= 1 && n <= 2);
    }
    return check_summary();
}
