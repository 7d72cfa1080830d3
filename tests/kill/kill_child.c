/* The child of the kill test: several threads make numbered spans as fast
 * as they can and report each span's number on stdout (4 bytes, native
 * order) right after spanguard_span_end returned, with bit 30 set if its
 * child span could not be begun. The parent kills it at a random moment;
 * every reported span must then arrive exactly once, and so must its child,
 * ended or, if the kill caught it open, marked interrupted. Every 50th
 * span and its child carry a 100,000-byte prompt (PROMPT_BYTES letters
 * from 'a' + n % 26 on), which must arrive whole: the payload pool's
 * chunks are in the crash dump and the flight recorder's file.
 *
 * kill_child ENDPOINT SPOOL_DIR THREADS FLIGHT(0|1) CRASH(none|segv|overflow|abort) CRASH_AFTER_MS TRIAL PAUSE_US [HOST
 *            [SHUTDOWN_MS]]
 *
 * PAUSE_US 0 is full speed; the test suite pauses a little per span so that
 * its Python receiver keeps up. HOST is the SIGTERM handler the host
 * installed before the tracer: none (default), exit (it ends the process
 * with _exit(3), as many servers do) or return (it asks the main thread to
 * shut the tracer down, within SHUTDOWN_MS, 5000 by default). That
 * shutdown's answer is the exit status: 0 when every span was delivered,
 * 5 when some only reached the spool by its deadline (a slow backend: they
 * are the next start's to send, and the test replays them), 6 when the
 * exporter was not done by then (what it had not dealt with is in the
 * crash dump, sent by the next start too), 4 for any other answer. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"

#define S(str) (str), strlen(str)

static spanguard_tracer *tracer;
static atomic_long next_number;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static long pause_us;

/* Set in a report when the span's child could not be begun. */
#define NO_CHILD (1L << 30)

static atomic_long reports;

static void report(long n) {
    int32_t v = (int32_t)n;
    pthread_mutex_lock(&out_lock);
    if (write(1, &v, sizeof v) != (ssize_t)sizeof v) _exit(3);
    pthread_mutex_unlock(&out_lock);
    atomic_fetch_add(&reports, 1);
}

#define PROMPT_BYTES 100000
#define PROMPT_EVERY 50
/* 26 extra letters, so the prompt of span n starts at n % 26. */
static char letters[PROMPT_BYTES + 26];

static void set_prompt(spanguard_span s, long n) {
    if (n % PROMPT_EVERY == 0)
        (void)spanguard_span_set_string(s, S("gen_ai.prompt"), letters + n % 26, PROMPT_BYTES);
}

static atomic_int overflow_now;

/* Recursion that the compiler cannot turn into a loop: a stack overflow.
   It stops only when overflow_now is cleared, which nothing does. */
static int recurse(int depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    if (!atomic_load(&overflow_now)) return frame[0];
    return recurse(depth + 1) + frame[0];
}

static void *work(void *arg) {
    int first = arg != NULL;
    for (;;) {
        if (first && atomic_load(&overflow_now)) (void)recurse(0);
        long n = atomic_fetch_add(&next_number, 1);
        spanguard_span s, child;
        if (spanguard_span_begin(tracer, S("work"), SPANGUARD_SPAN_NONE, SPANGUARD_KIND_INTERNAL, &s) !=
            SPANGUARD_RESULT_OK)
            continue; /* never reported, so never expected */
        (void)spanguard_span_set_int(s, S("n"), n);
        (void)spanguard_span_set_string(s, S("gen_ai.request.model"), S("kill-test"));
        set_prompt(s, n);
        /* A child that stays open across the pause, ended after its parent
         * is reported: most signals land while it is open, and it must then
         * come back marked interrupted. The report says whether it exists. */
        int has_child = spanguard_span_begin(tracer, S("child"), s, 0, &child) == SPANGUARD_RESULT_OK;
        if (has_child) set_prompt(child, n);
        if (spanguard_span_end(s) == SPANGUARD_RESULT_OK) report(has_child ? n : n | NO_CHILD);
        if (pause_us > 0) {
            struct timespec ts = {0, pause_us * 1000L};
            nanosleep(&ts, NULL);
        }
        if (has_child) (void)spanguard_span_end(child);
    }
    return NULL;
}

static volatile sig_atomic_t stop_requested;

static void host_exits(int signal) {
    (void)signal;
    _exit(3);
}

static void host_returns(int signal) {
    (void)signal;
    stop_requested = 1;
}

int main(int argc, char **argv) {
    if (argc < 9) return 2;
    pause_us = atol(argv[8]);
    const char *host = argc > 9 ? argv[9] : "none";
    if (strcmp(host, "none") != 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = strcmp(host, "exit") == 0 ? host_exits : host_returns;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
    }
    /* A shell runs background jobs with SIGINT and SIGQUIT ignored, and
     * the ignored disposition survives exec; spanguard rightly leaves an
     * ignored signal alone, so a test run started in the background would
     * send SIGINT to a child that never dies. Start as a foreground
     * program does. */
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    for (size_t i = 0; i < sizeof letters; i++) letters[i] = (char)('a' + i % 26);
    char resource[128];
    snprintf(resource, sizeof resource, "kill.trial=%s", argv[7]);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "kill-child";
    cfg.endpoint = argv[1];
    cfg.spool_dir = argv[2];
    cfg.resource_attributes = resource;
    cfg.flight_recorder = (uint32_t)atoi(argv[4]);
    cfg.schedule_delay_ms = 20;
    cfg.max_export_batch_size = 256;
    cfg.install_signal_handlers = 1;
    cfg.signal_flush_timeout_ms = 5000;
    if (spanguard_tracer_new(&cfg, &tracer) != SPANGUARD_RESULT_OK) return 2;
    /* A span open from start to kill, with a 100 KB prompt: it must come
     * back interrupted, its prompt whole. */
    spanguard_span held;
    if (spanguard_span_begin(tracer, S("held"), SPANGUARD_SPAN_NONE, 0, &held) != SPANGUARD_RESULT_OK) return 2;
    if (spanguard_span_set_string(held, S("gen_ai.prompt"), letters + 7, PROMPT_BYTES) != SPANGUARD_RESULT_OK) return 2;
    int threads = atoi(argv[3]);
    pthread_t th[16];
    /* The first worker is the one that overflows its stack on request. */
    for (int i = 0; i < threads && i < 16; i++) pthread_create(&th[i], NULL, work, i == 0 ? (void *)1 : NULL);
    const char *crash = argv[5];
    long after_ms = atol(argv[6]);
    /* The crash comes CRASH_AFTER_MS after the first reported span, so that
     * a slow start on a loaded machine cannot leave a trial with none. */
    struct timespec tick = {0, 1000000L};
    while (atomic_load(&reports) == 0) nanosleep(&tick, NULL);
    struct timespec ts = {after_ms / 1000, (after_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    /* Under tests/kill/malloc_guard.so: from here on this thread must not
     * allocate, and the crash handler runs on this thread. */
    void *symbol = dlsym(RTLD_DEFAULT, "malloc_guard_arm");
    void (*arm)(void) = NULL;
    memcpy(&arm, &symbol, sizeof arm); /* POSIX's way from object to function pointer */
    if (arm && strcmp(crash, "none") != 0 && strcmp(crash, "overflow") != 0) arm();
    if (strcmp(crash, "overflow") == 0) {
        atomic_store(&overflow_now, 1); /* a worker thread dies of it */
    } else if (strcmp(crash, "segv") == 0) {
        /* A real invalid write, through an address the compiler cannot see. */
        volatile uintptr_t address = 16;
        *(volatile int *)address = 1;
    } else if (strcmp(crash, "abort") == 0) {
        abort();
    }
    /* Wait for the parent's signal (which the watchdog thread handles, so
     * a returning host handler reports back through a flag). */
    struct timespec poll = {0, 1000000L};
    while (!stop_requested) nanosleep(&poll, NULL);
    unsigned shutdown_ms = argc > 10 ? (unsigned)atoi(argv[10]) : 5000;
    spanguard_result rc = spanguard_shutdown(tracer, shutdown_ms);
    if (rc != SPANGUARD_RESULT_OK) fprintf(stderr, "kill_child: shutdown: %s\n", spanguard_strerror(rc));
    _exit(rc == SPANGUARD_RESULT_OK        ? 0
          : rc == SPANGUARD_RESULT_SPOOLED ? 5
          : rc == SPANGUARD_RESULT_TIMEOUT ? 6
                                           : 4);
}
