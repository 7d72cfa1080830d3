/* SIGTERM arrives while spanguard_shutdown runs (a supervisor's stop
 * signal to a program already on its way out): the shutdown's flush is in
 * a request the backend holds, the watchdog takes the signal, and the
 * program has no handler of its own, so it is to die of it. Neither may
 * wait for the other for good (the shutdown holds the tracer, the
 * watchdog flushes it), and the spans are delivered by one of them or
 * left in the crash files for the next process: a tracer started
 * afterwards recovers them. Every span arrives; the process ends within
 * its bounds (an alarm turns a hang into SIGALRM, said as such).
 *
 * The backend is a loopback OTLP/HTTP (JSON) server in this process that
 * holds its first request until the signal has been sent, and answers
 * every other at once. */
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
#include "held_receiver.h"

#define SPANS 50

static spanguard_tracer *tracer_to(const char *endpoint, const char *spool, const char *service) {
    spanguard_config cfg;
    held_backend_config(&cfg, service, endpoint, spool);
    cfg.schedule_delay_ms = 60000; /* nothing leaves before the shutdown */
    cfg.request_timeout_ms = 20000;
    cfg.export_timeout_ms = 20000;
    cfg.signal_flush_timeout_ms = 2000;
    cfg.log_level = "none";
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

/* The program: records, then shuts its tracer down; the test sends it
 * SIGTERM meanwhile. */
static void record_then_shut_down(const char *endpoint, const char *spool) {
    alarm(30);
    spanguard_tracer *t = tracer_to(endpoint, spool, "sigterm-during-shutdown");
    if (!t) _exit(3);
    for (int i = 0; i < SPANS; i++) {
        char name[32];
        snprintf(name, sizeof name, "s-%d", i);
        record_span(t, name);
    }
    spanguard_span open = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin(t, "open", strlen("open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    if (failures) _exit(4);
    (void)spanguard_shutdown(t, 15000);
    /* Here only when the shutdown ended before the signal came. */
    _exit(0);
}

int main(int argc, char **argv) {
    alarm(90); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_sigterm_during_shutdown-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", scratch);

    char endpoint[64];
    int listener = held_backend_listener(endpoint, sizeof endpoint);

    pid_t pid = fork();
    if (pid == 0) {
        close(listener);
        record_then_shut_down(endpoint, spool);
    }
    CHECK(serve_each_connection(listener, serve_held_first) == 0);
    /* The shutdown's flush is in the backend's hands: the signal now. */
    while (received_requests() == 0) usleep(1000);
    CHECK(kill(pid, SIGTERM) == 0);
    usleep(200 * 1000);
    release_first = 1;
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    int ended_well = (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) || (WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(ended_well);
    if (!ended_well) fprintf(stderr, "the program ended with status %#x (SIGALRM: it hung)\n", status);

    /* The next process takes what the program left. */
    spanguard_tracer *t = tracer_to(endpoint, spool, "recoverer");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 15000)));
    spanguard_tracer_free(t);

    long arrived = 0, twice = 0;
    for (int i = 0; i < SPANS; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "\"s-%d\"", i);
        long n = count_received(needle);
        arrived += n >= 1;
        twice += n > 1;
    }
    CHECK(arrived == SPANS);
    CHECK(count_received("\"open\"") >= 1);
    if (arrived != SPANS || count_received("\"open\"") < 1)
        fprintf(stderr, "%ld of %d ended spans arrived, the open one %ld times\n", arrived, SPANS,
                count_received("\"open\""));
    if (twice) printf("%ld spans arrived twice (recovery sends at least once)\n", twice);
    return check_summary();
}
