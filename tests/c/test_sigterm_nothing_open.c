/* A SIGTERM that finds nothing to keep leaves nothing in the spool.
 *
 * A process whose last span was flushed, with no span open and no batch in
 * flight, ended by SIGTERM (the default action, after the watchdog's
 * flush): its watchdog published a crash dump of a header and no span
 * (1,328 bytes) and left the empty file kept for a batch in flight, two
 * files per process, which every next start opened, locked, read and
 * deleted (a pool of workers stopped 1,000 times: 2,000 files), and which
 * `spanguard spool` listed as a crash dump in the meantime.
 *
 * - "idle": recorded, flushed, SIGTERMed: nothing at all in the spool.
 * - "open": the same with a span left open: its dump is there, and the
 *   next tracer delivers the span once, marked spanguard.interrupted.
 * - "lives": a host SIGTERM handler that returns, the first time: the
 *   process lives on, and its crash files are there again (an empty dump
 *   removed them); at the second SIGTERM, with a span open, the host's
 *   handler _exits and that span is recovered by the next tracer.
 *
 * test_sigterm_nothing_open DIR [N]: N idle processes (1 by default), one
 * after another, as a pool's workers stopped N times. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static char sink[512], spool[512];
static volatile sig_atomic_t host_term;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_host_term(int sig) {
    (void)sig;
    if (++host_term >= 2) _exit(7);
}

/* Whatever a tracer keeps or leaves in the spool directory. */
static int crash_files(void) {
    return files_ending(spool, ".sgdump") + files_ending(spool, ".sgdump-pending") +
           files_ending(spool, ".sgspool-pending") + files_ending(spool, ".sgspool");
}

/* Runs in a child: records and flushes a span, leaves one open with
 * `open`, then SIGTERMs itself. Exits 3 when it outlives the signal. */
static void record_then_term(const char *tag, int open) {
    spanguard_tracer *t = tracer_flushed_only(sink, tag);
    if (!t) _exit(2);
    char name[64];
    snprintf(name, sizeof name, "%s-span", tag);
    record_span(t, name);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    if (open) {
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S("left-open"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    }
    if (failures) _exit(1);
    raise(SIGTERM);
    sleep_ms(20000);
    _exit(3);
}

/* The host handler's child (see "lives" above). */
static void lives_on(void) {
    signal(SIGTERM, on_host_term);
    spanguard_tracer *t = tracer_flushed_only(sink, "lives");
    if (!t) _exit(2);
    record_span(t, "lives-before");
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(crash_files() == 2); /* the dump and the batch file kept ready */
    raise(SIGTERM);
    for (int i = 0; i < 1000 && !host_term; i++) sleep_ms(10);
    CHECK(host_term == 1);
    /* The begin waits for the thaw: recording again, the crash files back
     * under their names. */
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S("lives-open"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK(files_ending(spool, ".sgdump-pending") == 1);
    CHECK(files_ending(spool, ".sgspool-pending") == 1);
    CHECK(files_ending(spool, ".sgdump") == 0);
    if (failures) _exit(1);
    raise(SIGTERM); /* the host's handler _exits */
    sleep_ms(20000);
    _exit(3);
}

/* Forks `child`, waits for it; its wait status. */
static int run(void (*child)(const char *, int), const char *tag, int open) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        failures = 0; /* the child's own checks */
        if (child) child(tag, open);
        else lives_on();
        _exit(4);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

/* A tracer started now, flushed and shut down: what it recovered is in
 * the sink. */
static void next_start(void) {
    spanguard_tracer *t = tracer_flushed_only(sink, "next");
    if (!t) return;
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_sigterm_nothing_open-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);

    long idle = argc > 2 ? atol(argv[2]) : 1;
    if (idle < 1) idle = 1;

    /* Nothing open, nothing in flight: nothing left. */
    int status = 0;
    for (long i = 0; i < idle; i++) {
        status = run(record_then_term, "idle", 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    }
    CHECK(count_in_dir(sink, "\"name\":\"idle-span\"") == idle);
    if (idle > 1) printf("%d files left in %s by %ld processes\n", files_ending(spool, ""), spool, idle);
    CHECK(files_in_dir(spool, "") == 0);

    /* A span open: its dump, recovered once, interrupted. */
    status = run(record_then_term, "open", 1);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"left-open\"") == 1);
    CHECK(count_in_dir(sink, "\"spanguard.interrupted\"") == 1);
    CHECK(files_in_dir(spool, "") == 0);

    /* Lives on after an empty dump; its files made again work. */
    status = run(NULL, "lives", 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    CHECK(count_in_dir(sink, "\"name\":\"lives-before\"") == 1);
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"lives-open\"") == 1);
    CHECK(count_in_dir(sink, "\"spanguard.interrupted\"") == 2);
    CHECK(files_in_dir(spool, "") == 0);
    return check_summary();
}
