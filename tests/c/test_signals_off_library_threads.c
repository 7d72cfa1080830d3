/* An application's signal handler (SIGUSR1 here; SIGCHLD, SIGALRM, SIGPROF
 * alike) never runs on one of spanguard's own threads. A signal sent to
 * the process goes to any thread that does not block it, and ours blocked
 * only the termination signals: the handler ran on the exporter (inside
 * its HTTP client, or holding the library's locks) or the watchdog, and a
 * handler that records a span there could wait for a lock that very thread
 * held. Now our threads block every asynchronous signal: the application's
 * threads alone take them.
 *
 * The main thread makes its tracer (our threads are started from it, with
 * SIGUSR1 open on it), then blocks SIGUSR1 and sends it to the process many
 * times while the exporter is busy: no thread of ours may take one. Once
 * unblocked, it comes to the main thread. An alarm turns a hang into
 * SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define ROUNDS 2000

static volatile sig_atomic_t ran_on[ROUNDS + 1]; /* the threads the handler ran on */
static volatile sig_atomic_t runs;

static void note_thread(int signal) {
    (void)signal;
    if (runs <= ROUNDS) ran_on[runs] = gettid();
    runs++;
}

/* The name the kernel has for this process's thread `tid`, for the
 * failure message ("" once it has gone). */
static const char *thread_name(int tid) {
    static char name[64];
    char path[128];
    name[0] = '\0';
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = '\0';
        fclose(f);
    }
    return name;
}

int main(int argc, char **argv) {
    alarm(60);
    const char *scratch = argc > 1 ? argv[1] : "build/test_signals_off_library_threads-spans";

    CHECK(set_handler(SIGUSR1, note_thread, SA_RESTART) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "the-first"); /* the exporter is running */

    CHECK(mask_signal(SIG_BLOCK, SIGUSR1) == 0);
    int main_tid = gettid();

    for (int i = 0; i < ROUNDS; i++) {
        for (int j = 0; j < 5; j++) record_span(t, "busy");
        CHECK(kill(getpid(), SIGUSR1) == 0);
        if (i % 100 == 0) usleep(1000); /* the exporter wakes and sends */
    }
    int on_ours = 0;
    for (int i = 0; i < runs && i <= ROUNDS; i++) {
        if (ran_on[i] == main_tid) continue;
        if (on_ours++ < 5) fprintf(stderr, "SIGUSR1's handler ran on thread %d (%s)\n", (int)ran_on[i],
                                   thread_name(ran_on[i]));
    }
    CHECK(on_ours == 0);
    if (on_ours) fprintf(stderr, "%d of %d runs on a thread of spanguard's\n", on_ours, (int)runs);

    /* Pending for the process all along: the main thread takes it now. */
    int before = runs;
    CHECK(mask_signal(SIG_UNBLOCK, SIGUSR1) == 0);
    CHECK(runs == before + 1);
    CHECK(before > ROUNDS || ran_on[before] == main_tid);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "the-first") == 1);
    return check_summary();
}
