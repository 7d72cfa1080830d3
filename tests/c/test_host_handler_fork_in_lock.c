/* A host's signal handler (an application's SIGUSR1 or SIGCHLD handler)
 * that forks, run on a thread while that thread held spanguard's lock
 * over the dispositions its handlers replaced: the fork's prepare handler
 * found the lock held by the thread it interrupted and let it be, and the
 * child had it held for good, by a frame that never returns there: the
 * child's first tracer waited for it forever. Two places hold it:
 *
 *  - the handlers' install, at the first spanguard_tracer_new: this
 *    program defines sigaction(2), which the install calls (a definition
 *    in the executable takes the library's calls), and raises SIGUSR1
 *    from inside the install of SIGTERM's handler;
 *  - a fork, from its prepare handler to its parent's: this program
 *    registers a fork handler before the library does (glibc runs prepare
 *    handlers in the reverse order: this one after the library's, lock
 *    held) and raises SIGUSR1 from it. There, the handler's own fork let
 *    go of the lock in its parent handler before the first fork was done,
 *    whose child then skipped the library's child handler: its SIGTERM
 *    went to the parent's watchdog, which killed the parent, and the
 *    child never died of it.
 *
 * The handler forks a child that makes a tracer, records a span, shuts
 * down and exits 0 (SIGALRM ends it when it hangs). With the signals
 * blocked while the lock is held, the handler runs as soon as it is let
 * go, still inside the call that raised it. Each case runs in a fresh
 * process, reporting through its exit status; the spans are counted in
 * the sink. No sleeps, but in the wait for the watchdog thread to have
 * its name. */
#define _GNU_SOURCE
#include <dirent.h>
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

static const char *sink;

/* Armed by a case: raise SIGUSR1 at the install of SIGTERM's handler, or
 * from this program's fork prepare handler. */
static atomic_int raise_at_install, raise_at_prepare, raised;

int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact) {
    if (act && signum == SIGTERM && atomic_exchange(&raise_at_install, 0)) {
        atomic_store(&raised, 1);
        raise(SIGUSR1);
    }
    return libc_sigaction()(signum, act, oldact);
}

static void on_fork_prepare(void) {
    if (atomic_exchange(&raise_at_prepare, 0)) {
        atomic_store(&raised, 1);
        raise(SIGUSR1);
    }
}

/* What the handler's child records. */
static const char *handler_child_span;
static volatile sig_atomic_t handler_ran, handler_child_status = -1;

static void handler_child(void) {
    alarm(10);
    failures = 0;
    spanguard_tracer *t = tracer_with_handlers(sink);
    if (!t) _exit(6);
    record_span(t, handler_child_span);
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
    _exit(failures ? 5 : 0);
}

static void on_usr1(int signal) {
    (void)signal;
    pid_t pid = fork();
    if (pid == 0) handler_child();
    int status = -1;
    if (pid > 0 && waitpid(pid, &status, 0) != pid) status = -1;
    handler_child_status = status;
    handler_ran = 1;
}

static void install_usr1_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CHECK(libc_sigaction()(SIGUSR1, &sa, NULL) == 0);
}

/* After the call that raised SIGUSR1: it was raised, its handler ran, and
 * the handler's child exited 0. */
static void check_handler_done(const char *where) {
    CHECK(atomic_load(&raised));
    CHECK(handler_ran);
    int status = handler_child_status;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "%s: the handler's child ended with status %#x%s\n", where, status,
                WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (it hung)" : "");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Reads into `mask` the signal mask of this process's thread named
 * `name` (as comm has it: 15 characters at most), from /proc; 0 when
 * there is no such thread. */
static int thread_mask(const char *name, unsigned long long *mask) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int named = fgets(line, sizeof line, f) && strncmp(line, name, strlen(name)) == 0;
        fclose(f);
        if (!named) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        while (fgets(line, sizeof line, f))
            if ((found = sscanf(line, "SigBlk: %llx", mask) == 1)) break;
        fclose(f);
    }
    closedir(d);
    return found;
}

/* `thread_mask` once the thread has its name (a minute at most): a thread
 * of ours names itself as it starts, and the first tracer may return
 * before the watchdog it started has run (1 run in 500 on a loaded
 * machine found no "spanguard-watch", and no mask). */
static int named_thread_mask(const char *name, unsigned long long *mask) {
    for (int waited_ms = 0; waited_ms < 60 * 1000; waited_ms++) {
        if (thread_mask(name, mask)) return 1;
        usleep(1000);
    }
    return 0;
}

/* SIGUSR1 at the install of the handlers, on the thread installing them.
 * The watchdog thread, started there, blocks the asynchronous signals
 * (SIGUSR1, SIGTERM: the application's threads take them) and leaves the
 * synchronous ones open: not everything the install blocked meanwhile. */
static void case_install(void) {
    install_usr1_handler();
    handler_child_span = "handler-child-at-install";
    atomic_store(&raise_at_install, 1);
    spanguard_tracer *t = tracer_with_handlers(sink);
    if (!t) _exit(1);
    check_handler_done("at the install");
    unsigned long long watchdog = 0;
    CHECK(named_thread_mask("spanguard-watch", &watchdog));
    unsigned long long asynchronous = (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGTERM - 1));
    unsigned long long synchronous = (1ULL << (SIGSEGV - 1)) | (1ULL << (SIGBUS - 1)) | (1ULL << (SIGABRT - 1));
    if ((watchdog & asynchronous) != asynchronous || (watchdog & synchronous))
        fprintf(stderr, "the watchdog thread's mask is %#llx\n", watchdog);
    CHECK((watchdog & asynchronous) == asynchronous);
    CHECK(!(watchdog & synchronous));
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
    spanguard_tracer_free(t);
}

/* SIGUSR1 during a fork, between the library's prepare handler and its
 * parent handler. The fork's child records a span and sends itself
 * SIGTERM: it must die of it (SIGALRM when it does not within 10 s). */
static void case_prepare(void) {
    spanguard_tracer *t = tracer_with_handlers(sink);
    if (!t) _exit(1);
    install_usr1_handler();
    handler_child_span = "handler-child-at-prepare";
    atomic_store(&raise_at_prepare, 1);
    pid_t pid = fork();
    if (pid == 0) record_then_die_of_sigterm(t, "forked-child-at-prepare", 10);
    CHECK(pid > 0);
    check_handler_done("during a fork");
    check_died_of_sigterm(pid, "the forked child");
    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 10000)));
    spanguard_tracer_free(t);
}

static void case_process(const char *name, void (*run)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        failures = 0;
        run();
        _exit(failures ? 1 : 0);
    }
    check_exited_0(pid, name, "case");
}

int main(int argc, char **argv) {
    alarm(90); /* a hang is a failure, not a stuck test */
    if (!libc_sigaction()) return 2;
    sink = argc > 1 ? argv[1] : "build/test_host_handler_fork_in_lock-spans";
    /* Before the library's (registered at a process's first tracer): its
     * prepare handler runs after the library's. */
    CHECK(pthread_atfork(on_fork_prepare, NULL, NULL) == 0);

    case_process("at the install", case_install);
    case_process("during a fork", case_prepare);

    check_arrived_once(sink, "handler-child-at-install");
    check_arrived_once(sink, "handler-child-at-prepare");
    check_arrived_once(sink, "forked-child-at-prepare");
    return check_summary();
}
