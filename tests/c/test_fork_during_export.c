/* fork() while the exporter is in a request the backend holds and another
 * thread waits in spanguard_flush for it (a pre-fork server starting a
 * worker while its tracer delivers). The child records and shuts down:
 * its shutdown must neither wait for the parent's request (its exporter
 * is a new thread; the parent's is not in the child) nor send the
 * parent's spans again. The parent's flush returns once the backend
 * answers, and its shutdown delivers the rest. Every span of each process
 * arrives exactly once; an alarm turns a hang into SIGALRM.
 *
 * The backend is a loopback OTLP/HTTP (JSON) server in the parent that
 * holds its first request until the child has ended. */
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

#define SPANS 20

static spanguard_tracer *tracer;
static spanguard_result flush_rc = SPANGUARD_RESULT_OK;

static void *flusher(void *arg) {
    (void)arg;
    flush_rc = spanguard_flush(tracer, 20000);
    return NULL;
}

static void record(const char *prefix, int from, int to) {
    for (int i = from; i < to; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s-%d", prefix, i);
        record_span(tracer, name);
    }
}

/* Each span "<prefix>-<i>" arrived exactly once. */
static void check_once(const char *prefix, int n) {
    int once = 0;
    for (int i = 0; i < n; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "\"%s-%d\"", prefix, i);
        long c = count_received(needle);
        if (c != 1) fprintf(stderr, "%s-%d arrived %ld times\n", prefix, i, c);
        once += c == 1;
    }
    CHECK(once == n);
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_fork_during_export-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", scratch);

    char endpoint[64];
    int listener = held_backend_listener(endpoint, sizeof endpoint);
    CHECK(serve_each_connection(listener, serve_held_first) == 0);

    spanguard_config cfg;
    held_backend_config(&cfg, "fork-during-export", endpoint, spool);
    CHECK_RC(spanguard_tracer_new(&cfg, &tracer), SPANGUARD_RESULT_OK);
    if (!tracer) return check_summary();

    /* The first batch goes out and the backend holds it; more spans wait
     * behind it, and a flush waits for them all. */
    record("parent", 0, SPANS / 2);
    while (received_requests() == 0) usleep(1000);
    record("parent", SPANS / 2, SPANS);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, flusher, NULL) == 0);
    usleep(50 * 1000);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        failures = 0;
        record("child", 0, SPANS);
        spanguard_result rc = spanguard_shutdown(tracer, 10000);
        _exit(failures ? 3 : !spanguard_result_is_ok(rc) ? 4 : 0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "the child ended with status %#x (SIGALRM: it hung)\n", status);

    release_first = 1;
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_RC(flush_rc, SPANGUARD_RESULT_OK);
    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 10000)));
    spanguard_tracer_free(tracer);
    check_once("parent", SPANS);
    check_once("child", SPANS);
    return check_summary();
}
