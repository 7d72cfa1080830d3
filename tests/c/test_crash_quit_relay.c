/* A runtime that relays SIGQUIT through its threads as it dies of a
 * fault, as Go's does at the "crash" traceback level (which the Go binding
 * sets with the crash handlers on) when C code called through cgo faults:
 * its SIGSEGV handler, which blocks every signal while it runs, sends
 * SIGQUIT to the process; each thread's SIGQUIT handler, blocking every
 * signal too, takes one and sends the next, until every thread of the
 * runtime has had one; then the crashing thread ends the process. The
 * kernel gives each relay to a thread that does not block SIGQUIT: never
 * the crashing thread, inside its handler. Go's crashing thread ends the
 * process as soon as every other thread has had its SIGQUIT; one that
 * waits for its own ends it 10 s later, by another thread's timeout.
 *
 * - "crash": the main thread faults, a span open. spanguard's crash
 *   handler calls the runtime's with the signals that handler blocks
 *   blocked, as the kernel would have: it blocked none, and the first
 *   relay came back to the crashing thread itself (Go's took 10 s to
 *   die). A relay during the crash goes to the runtime's handler at once,
 *   on the thread it arrived on: the watchdog took it, flushed and handed
 *   it on from its own thread (si_code SI_TKILL then, SI_QUEUE since the
 *   re-sent copy carries a tag, no longer the relay's SI_USER), waiting a second for the handler to return. The process dies
 *   of the fault, every runtime thread having had one SIGQUIT, none of
 *   them handed on by the watchdog; the next start sends the spans ended
 *   before and the open one from the crash dump.
 * - "quit": a healthy program gets SIGQUIT from another process: the
 *   watchdog still flushes the spans ended before, dumps the open one and
 *   hands the signal on (SI_QUEUE: its tagged copy), and the process dies
 *   of it.
 *
 * Each case runs in a child; an alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

/* The runtime's threads beside the crashing one: each is to have one
 * SIGQUIT. */
#define RUNTIME_THREADS 3

/* What the runtime saw, written by the thread that ends the child to the
 * pipe `report_fd`. */
struct relay_report {
    int quits;                /* SIGQUIT handler calls */
    int on_crashing_thread;   /* of them, on the crashing thread, inside its SIGSEGV handler */
    int handed_on;            /* of them, re-sent to a thread (the watchdog's tagged copy, SI_QUEUE;
                                 SI_TKILL before it was tagged), not by the relay's kill */
    int every_thread_had_one; /* the crashing thread saw RUNTIME_THREADS quits */
};

static atomic_int quits, on_crashing_thread, handed_on;
static atomic_int crashing_tid;
static int report_fd = -1;

static void report(int every_thread_had_one) {
    struct relay_report r = {atomic_load(&quits), atomic_load(&on_crashing_thread), atomic_load(&handed_on),
                             every_thread_had_one};
    if (write(report_fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(6);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The runtime's SIGQUIT handler: counts, relays while some thread has not
 * had one, and (as Go's on every thread but the crashing one) waits for
 * the process to end. On the crashing thread it returns: there it is the
 * defect this test looks for, and waiting would hang the crash. */
static void on_quit(int signal, siginfo_t *info, void *context) {
    (void)context;
    int n = atomic_fetch_add(&quits, 1) + 1;
    if (info->si_code == SI_TKILL || info->si_code == SI_QUEUE) atomic_fetch_add(&handed_on, 1);
    int crashing = atomic_load(&crashing_tid);
    if (crashing == 0) {
        /* "quit": no crash; the program dies of the signal. */
        report(0);
        set_handler(signal, SIG_DFL, 0);
        raise(signal);
        return;
    }
    if (n < RUNTIME_THREADS) kill(getpid(), SIGQUIT);
    if (gettid() == crashing) {
        atomic_fetch_add(&on_crashing_thread, 1);
        return;
    }
    for (;;) pause();
}

/* The runtime's SIGSEGV handler: relays SIGQUIT, waits until every
 * thread had one (a minute at most: a relay that went astray is reported,
 * not waited for), then lets the fault recur at the default action. */
static void on_segv(int signal, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    atomic_store(&crashing_tid, gettid());
    kill(getpid(), SIGQUIT);
    for (int i = 0; i < 60000 && atomic_load(&quits) < RUNTIME_THREADS; i++) sleep_ms(1);
    report(atomic_load(&quits) >= RUNTIME_THREADS);
    set_handler(signal, SIG_DFL, 0);
}

/* Installs `handler` for `signal` as Go's runtime does: SA_SIGINFO,
 * SA_ONSTACK, every signal blocked while it runs. */
static void set_runtime_handler(int signal, void (*handler)(int, siginfo_t *, void *)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigfillset(&sa.sa_mask);
    CHECK(sigaction(signal, &sa, NULL) == 0);
}

static void *runtime_thread(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

/* The child: the runtime's handlers and threads, a tracer with spans
 * ended and one open, then "crash" faults on this (the main) thread and
 * "quit" tells the parent it is ready and waits for its SIGQUIT. */
static void child(const char *dir, int crash, int ready) {
    alarm(120);
    set_runtime_handler(SIGSEGV, on_segv);
    set_runtime_handler(SIGQUIT, on_quit);
    for (int i = 0; i < RUNTIME_THREADS; i++) {
        pthread_t thread;
        CHECK(pthread_create(&thread, NULL, runtime_thread, NULL) == 0);
    }
    spanguard_tracer *t = tracer_flushed_only(dir, "crash-quit-relay");
    if (!t || failures) _exit(2);
    record_span(t, "before");
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    if (crash) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
        _exit(4); /* the fault was repaired: not this runtime's */
    }
    if (write(ready, "r", 1) != 1) _exit(5);
    for (;;) pause();
}

/* Runs a child (`crash` or not); its wait status and what its runtime
 * reported (all zero and -1 when it reported nothing). */
static int run(const char *dir, int crash, struct relay_report *r) {
    int ready[2], reported[2];
    CHECK(pipe(ready) == 0 && pipe(reported) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(reported[0]);
        report_fd = reported[1];
        child(dir, crash, ready[1]);
    }
    close(ready[1]);
    close(reported[1]);
    if (!crash) {
        char c = 0;
        CHECK(read(ready[0], &c, 1) == 1);
        CHECK(kill(pid, SIGQUIT) == 0);
    }
    close(ready[0]);
    memset(r, 0, sizeof *r);
    if (read(reported[0], r, sizeof *r) != (ssize_t)sizeof *r) r->quits = -1;
    close(reported[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

/* The spans the child ended before and left open arrive once each at
 * the next start: the ended one flushed by the watchdog or dumped, the
 * open one from the dump. */
static void check_spans_arrive(const char *dir) {
    next_start_on(dir);
    check_arrived_once(dir, "before");
    check_arrived_once(dir, "open");
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_crash_quit_relay-spans";
    char crash[512], quit[512];
    snprintf(crash, sizeof crash, "%s/crash", scratch);
    snprintf(quit, sizeof quit, "%s/quit", scratch);

    /* Both children first: one forked after this process had a tracer
     * (the next start's) or a failed check would inherit them. */
    struct relay_report crashed, quitted;
    int crash_status = run(crash, 1, &crashed);
    int quit_status = run(quit, 0, &quitted);

    if (!WIFSIGNALED(crash_status) || WTERMSIG(crash_status) != SIGSEGV)
        fprintf(stderr, "crash: the child ended with %#x\n", crash_status);
    CHECK(WIFSIGNALED(crash_status) && WTERMSIG(crash_status) == SIGSEGV);
    fprintf(stderr, "crash: %d SIGQUITs, %d on the crashing thread, %d handed on by the watchdog%s\n",
            crashed.quits, crashed.on_crashing_thread, crashed.handed_on,
            crashed.every_thread_had_one ? "" : ", not every thread had one");
    CHECK(crashed.every_thread_had_one == 1);
    CHECK(crashed.quits == RUNTIME_THREADS);
    CHECK(crashed.on_crashing_thread == 0);
    CHECK(crashed.handed_on == 0);
    check_spans_arrive(crash);

    if (!WIFSIGNALED(quit_status) || WTERMSIG(quit_status) != SIGQUIT)
        fprintf(stderr, "quit: the child ended with %#x\n", quit_status);
    CHECK(WIFSIGNALED(quit_status) && WTERMSIG(quit_status) == SIGQUIT);
    /* Handed on by the watchdog after its flush and dump. */
    CHECK(quitted.quits == 1 && quitted.handed_on == 1);
    /* Flushed by the watchdog before the process died (the schedule delay
     * is a minute): in the sink before any next start. */
    CHECK(count_in_dir(quit, "\"before\"") == 1);
    check_spans_arrive(quit);
    return check_summary();
}
