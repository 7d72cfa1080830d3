/* A forked child makes its tracer at its first use, and its signal
 * watchdog with it (the fork put them off: most children exec at once).
 * When another thread of that child forked a grandchild while the first
 * use was starting the watchdog, the grandchild inherited "nothing to
 * start" with no watchdog to show for it: its own tracer came up with
 * the host's handlers in place and no watchdog thread, so SIGTERM ended
 * it at once, its ended spans neither flushed nor dumped.
 *
 * The window is a few system calls wide; the test holds it open: this
 * program defines pipe2(2), which the library's watchdog start calls
 * first (a definition in the executable takes the library's calls), and
 * the child's first use stops there until the other thread has forked.
 * No sleeps: pipes say when each side is there. The grandchild records a
 * span (its first use), then sends itself SIGTERM: the span must be in
 * the sink, flushed by its watchdog. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

/* The gate in pipe2: armed once; the first call through it tells
 * `in_window` and waits on `go_on`. */
static atomic_int gate_armed;
static int in_window[2], go_on[2];

int pipe2(int fds[2], int flags) {
    if (atomic_exchange(&gate_armed, 0)) {
        char byte = 'w';
        if (write(in_window[1], &byte, 1) != 1) _exit(20);
        if (read(go_on[0], &byte, 1) != 1) _exit(21);
    }
    return (int)syscall(SYS_pipe2, fds, flags);
}

static spanguard_tracer *tracer;

static void *first_use(void *arg) {
    (void)arg;
    record_span(tracer, "child-first-use");
    return NULL;
}

/* The child: its first use on one thread, held in the watchdog's start
 * while this thread forks the grandchild. Exits with 0 when the
 * grandchild died of SIGTERM, 10 + its exit status when it exited, 9
 * when something else ended it. */
static void child(void) {
    failures = 0;
    if (pipe(in_window) != 0 || pipe(go_on) != 0) _exit(2);
    atomic_store(&gate_armed, 1);
    pthread_t t;
    if (pthread_create(&t, NULL, first_use, NULL) != 0) _exit(2);
    char byte;
    if (read(in_window[0], &byte, 1) != 1) _exit(3);
    pid_t pid = fork();
    if (pid == 0) record_then_die_of_sigterm(tracer, "grandchild-span", 30); /* the grandchild: its first use */
    if (write(go_on[1], &byte, 1) != 1) _exit(4);
    pthread_join(t, NULL);
    exit_as_grandchild_died(pid);
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    const char *sink = argc > 1 ? argv[1] : "build/test_fork_during_first_use-spans";
    tracer = tracer_flushed_only(sink, "fork-during-first-use");
    if (!tracer) return check_summary();

    pid_t pid = fork();
    if (pid == 0) child();
    check_exited_0(pid, NULL, "child");
    check_arrived_once(sink, "grandchild-span");

    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 20000)));
    spanguard_tracer_free(tracer);
    return check_summary();
}
