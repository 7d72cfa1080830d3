/* A host handler that changes its own signal's disposition, as a C
 * program's cleanup handler does to die of the signal it got
 * (`signal(sig, SIG_DFL); raise(sig)`), or as SA_RESETHAND does (a
 * one-shot handler: the next signal takes the default action).
 *
 * spanguard delivers the host's handler on the thread the signal arrived
 * on and, once it returns, puts its own handler back. It put it back over
 * the host's change: the re-raise, pending while the handler ran, came
 * back to spanguard, which ran the host's handler again, forever (the
 * process never died of its SIGTERM); the one-shot handler ran at every
 * SIGTERM, and the second never ended the process.
 *
 * Each case runs in a child that makes its own tracer and must die of
 * SIGTERM, its spans delivered once. An alarm turns a child that lives on
 * into SIGALRM. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

static volatile sig_atomic_t calls;

/* Cleans up, then dies of the signal as it would have without a handler. */
static void die_of_it(int signal) {
    calls++;
    set_handler(signal, SIG_DFL, 0);
    raise(signal);
}

static void count(int signal) {
    (void)signal;
    calls++;
}

static void send_sigterm(void) {
    pthread_t sender;
    if (pthread_create(&sender, NULL, send_signal_later, (void *)(long)SIGTERM) == 0) pthread_detach(sender);
}

/* The child: its handler re-raises with the default action. */
static void reraising_child(const char *dir) {
    set_handler(SIGTERM, die_of_it, 0);
    spanguard_tracer *t = tracer_with_handlers(dir);
    record_span(t, "before-reraise");
    send_sigterm();
    for (;;) pause();
}

/* The child: a one-shot handler; the first SIGTERM is handled, the second
 * ends the process. */
static void one_shot_child(const char *dir) {
    set_handler(SIGTERM, count, SA_RESETHAND);
    spanguard_tracer *t = tracer_with_handlers(dir);
    record_span(t, "before-first");
    send_sigterm();
    while (!calls) pause();
    record_span(t, "between");
    send_sigterm();
    for (;;) pause();
}

/* Runs `child` in a child process and checks that it died of SIGTERM. */
static void run(const char *name, void (*child)(const char *), const char *dir) {
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10); /* a child that lives on is a failure, not a stuck test */
        child(dir);
        _exit(99);
    }
    CHECK(pid > 0);
    char who[64];
    snprintf(who, sizeof who, "%s: the child", name);
    check_died_of_sigterm(pid, who);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_reraise-spans";
    char reraise_dir[512], one_shot_dir[512];
    snprintf(reraise_dir, sizeof reraise_dir, "%s/reraise", scratch);
    snprintf(one_shot_dir, sizeof one_shot_dir, "%s/one-shot", scratch);

    run("re-raise", reraising_child, reraise_dir);
    CHECK(count_in_dir(reraise_dir, "before-reraise") == 1);

    run("SA_RESETHAND", one_shot_child, one_shot_dir);
    CHECK(count_in_dir(one_shot_dir, "before-first") == 1);
    CHECK(count_in_dir(one_shot_dir, "between") == 1);
    return check_summary();
}
