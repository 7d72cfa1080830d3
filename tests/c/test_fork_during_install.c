/* A fork that landed while another thread was installing spanguard's
 * termination handlers (holding the lock over the dispositions they
 * replace) gave a child whose handlers were half installed and whose lock
 * was held forever, by a thread it does not have. Landed before SIGTERM's
 * handler went in, the child's SIGTERM ended it at once, its ended spans
 * neither flushed nor dumped; landed after, the watchdog flushed them and
 * then waited forever for the lock to put the host's disposition back:
 * the child never died of the SIGTERM it was sent.
 *
 * The window is a few system calls wide; the test holds it open: this
 * program defines sigaction(2), which the library's install calls (a
 * definition in the executable takes the library's calls), and the
 * install stops at one signal's until the other thread has forked. With
 * the fork kept out of the install, the fork waits for the lock instead
 * and the gate stops waiting after a while: the test passes either way
 * the fork comes out, never by timing. The installing thread is a forked
 * child's first use of its tracer (which starts the child's watchdog and
 * handlers, put off by the fork); the other thread forks a grandchild,
 * which records a span and sends itself SIGTERM: it must die of it, the
 * span in the sink. Once with the fork at SIGTERM's install, once at
 * SIGINT's (SIGTERM's done). */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

/* The gate in sigaction: armed for one signal; the first install of it
 * tells `in_window`, waits for the fork to start (`fork_started`, told by
 * this program's fork handler, which runs before the library's) and then
 * for it to be done (`forked`), 2 s at most: a fork the library holds off
 * until the install is over is done only after the gate. */
static atomic_int gate_signal, gate_armed, note_fork;
static int in_window[2], fork_started[2], forked[2];

int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact) {
    if (act && signum == atomic_load(&gate_signal) && atomic_exchange(&gate_armed, 0)) {
        char byte = 'w';
        if (write(in_window[1], &byte, 1) != 1) _exit(20);
        if (read(fork_started[0], &byte, 1) != 1) _exit(21);
        struct pollfd done = {.fd = forked[0], .events = POLLIN};
        (void)poll(&done, 1, 2000);
    }
    return libc_sigaction()(signum, act, oldact);
}

static void on_fork_prepare(void) {
    if (atomic_exchange(&note_fork, 0)) {
        char byte = 'f';
        if (write(fork_started[1], &byte, 1) != 1) _exit(22);
    }
}

static spanguard_tracer *tracer;

static void *first_use(void *arg) {
    (void)arg;
    record_span(tracer, "child-first-use");
    return NULL;
}

/* The child: its first use on one thread, held in the install of
 * `signal`'s handler while this thread forks the grandchild. Exits 0 when
 * the grandchild died of SIGTERM, 10 + its exit status when it exited, 9
 * when something else ended it (SIGALRM: it hung). */
static void child(int signal, const char *span) {
    failures = 0;
    if (pipe(in_window) != 0 || pipe(fork_started) != 0 || pipe(forked) != 0) _exit(2);
    atomic_store(&gate_signal, signal);
    atomic_store(&gate_armed, 1);
    pthread_t t;
    if (pthread_create(&t, NULL, first_use, NULL) != 0) _exit(2);
    char byte;
    if (read(in_window[0], &byte, 1) != 1) _exit(3);
    atomic_store(&note_fork, 1);
    pid_t pid = fork();
    if (pid == 0) record_then_die_of_sigterm(tracer, span, 10); /* the grandchild: its first use */
    if (write(forked[1], &byte, 1) != 1) _exit(4);
    pthread_join(t, NULL);
    exit_as_grandchild_died(pid);
}

static void fork_at_install_of(int signal, const char *span, const char *sink) {
    pid_t pid = fork();
    if (pid == 0) child(signal, span);
    check_exited_0(pid, span, "child");
    check_arrived_once(sink, span);
}

int main(int argc, char **argv) {
    alarm(90); /* a hang is a failure, not a stuck test */
    if (!libc_sigaction()) return 2;
    const char *sink = argc > 1 ? argv[1] : "build/test_fork_during_install-spans";
    tracer = tracer_flushed_only(sink, "fork-during-install");
    if (!tracer) return check_summary();
    /* After the library's: fork handlers made later prepare first. */
    CHECK(pthread_atfork(on_fork_prepare, NULL, NULL) == 0);

    fork_at_install_of(SIGTERM, "grandchild-at-sigterm", sink);
    fork_at_install_of(SIGINT, "grandchild-at-sigint", sink);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(tracer, 20000)));
    spanguard_tracer_free(tracer);
    return check_summary();
}
