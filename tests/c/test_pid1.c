/* An agent that is a container's PID 1, stopped as `docker stop` stops it:
 * SIGTERM from outside its PID namespace, SIGKILL a while later.
 *
 * A namespace's init gets only the signals it handles (pid_namespaces(7)):
 * with SIGTERM at SIG_DFL it does not die of it, not even of its own
 * raise(). spanguard's handler makes SIGTERM a handled one, and its
 * watchdog re-raises with the program's own disposition: a PID 1 without
 * a handler must still live on, one with a handler end as it says.
 *
 * Each case's agent is this program again under `unshare --pid --fork`,
 * PID 1 of a new namespace; this process, outside, sends the signals.
 * (unshare says "sigprocmask unblock failed" when its child dies of
 * SIGKILL, which it cannot die of in turn: expected.)
 *
 * - "plain": no handler. SIGTERM flushes what has ended and the agent
 *   lives on; a thread recording all along has none of its spans refused
 *   (the tracers are not frozen for a signal that cannot end the
 *   process); a second SIGTERM flushes again; no dump or batch is left
 *   in the spool; at the SIGKILL the flight recorder covers the span
 *   ended since and the one still open, and the next start sends each
 *   span once.
 * - "exits": a handler that calls _exit(143): the agent ends with 143,
 *   the span it had open is dumped and sent once by the next start.
 * - "returns": a handler that returns: it runs at each SIGTERM, each
 *   flushes, the agent lives on until the SIGKILL, no span twice.
 *
 * Skipped (exit 0, said on stdout) where new PID namespaces cannot be
 * made (no privilege, a sandbox that forbids it). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
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
static int to_parent = -1, from_parent = -1;
static volatile sig_atomic_t host_terms;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* In the agent: tells the parent it reached step `c`, then waits for its
 * go-ahead. */
static void step(char c) {
    if (write(to_parent, &c, 1) != 1) _exit(5);
}

static void await_parent(void) {
    char c;
    if (read(from_parent, &c, 1) != 1) _exit(6);
}

/* In the agent: waits (10 s at most) for `needle` to be in the sink. */
static int sink_shows(const char *needle) {
    for (int i = 0; i < 1000; i++) {
        if (count_in_dir(sink, needle) > 0) return 1;
        sleep_ms(10);
    }
    return 0;
}

/* A tracer writing to `in` (its spool `in`-spool), whose spans leave
 * only on a flush. */
static spanguard_tracer *tracer_in(const char *in, const char *service, int flight) {
    char spool_of[600];
    snprintf(spool_of, sizeof spool_of, "%s-spool", in);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = service;
    cfg.sink_dir = in;
    cfg.spool_dir = spool_of;
    cfg.schedule_delay_ms = 60000;
    cfg.install_signal_handlers = 1;
    cfg.flight_recorder = flight;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

static spanguard_tracer *agent_tracer(const char *service, int flight) {
    return tracer_in(sink, service, flight);
}

/* A thread of the agent recording spans without a pause, as a busy agent
 * does while it is told to stop; counts the begins refused. */
static spanguard_tracer *busy_tracer;
static volatile int busy_stop;
static long busy_refused, busy_recorded;

static void *record_all_along(void *arg) {
    (void)arg;
    while (!busy_stop) {
        spanguard_span s;
        if (spanguard_span_begin(busy_tracer, S("busy"), SPANGUARD_SPAN_NONE, 0, &s) != SPANGUARD_RESULT_OK) {
            busy_refused++;
        } else if (spanguard_span_end(s) == SPANGUARD_RESULT_OK) {
            busy_recorded++;
        } else {
            busy_refused++;
        }
        struct timespec pause = {0, 20000}; /* a busy agent, not a flood */
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void plain_agent(void) {
    spanguard_tracer *t = agent_tracer("pid1-plain", 1);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, "plain-before");
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("plain-open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    /* The busy thread's tracer has a sink of its own (inside this one's
     * directory, which only its .jsonl files count for): its batches
     * would carry "plain-before" off before the signal's flush. */
    char busy_sink[600];
    snprintf(busy_sink, sizeof busy_sink, "%s/busy", sink);
    busy_tracer = tracer_in(busy_sink, "pid1-busy", 0);
    if (!busy_tracer) _exit(2);
    pthread_t busy;
    CHECK(pthread_create(&busy, NULL, record_all_along, NULL) == 0);
    sleep_ms(50);
    step('1');
    /* SIGTERM: flushed, and on. The watchdog freezes (when it does) right
     * after this flush: the busy thread records on through it. */
    CHECK(sink_shows("\"name\":\"plain-before\""));
    sleep_ms(1000);
    busy_stop = 1;
    pthread_join(busy, NULL);
    CHECK(busy_recorded > 0);
    fprintf(stderr, "%ld of %ld busy spans refused\n", busy_refused, busy_refused + busy_recorded);
    CHECK(busy_refused == 0);
    CHECK(count_in_dir(busy_sink, "\"name\":\"busy\"") > 0); /* flushed at the signal too */
    record_span(t, "plain-after");
    step('2');
    /* A second SIGTERM flushes again. */
    CHECK(sink_shows("\"name\":\"plain-after\""));
    sleep_ms(200);
    record_span(t, "plain-unflushed");
    step(failures ? 'F' : '3');
    /* SIGKILL. */
    await_parent();
    _exit(4);
}

static void exit_143(int sig) {
    (void)sig;
    _exit(143);
}

static void exits_agent(void) {
    signal(SIGTERM, exit_143);
    spanguard_tracer *t = agent_tracer("pid1-exits", 0);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, "exits-before");
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("exits-open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    step(failures ? 'F' : '1');
    await_parent(); /* the handler ends it */
    _exit(4);
}

static void count_term(int sig) {
    (void)sig;
    host_terms++;
}

static void returns_agent(void) {
    signal(SIGTERM, count_term);
    spanguard_tracer *t = agent_tracer("pid1-returns", 0);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, "returns-before");
    step('1');
    CHECK(sink_shows("\"name\":\"returns-before\""));
    for (int i = 0; i < 1000 && host_terms < 1; i++) sleep_ms(10);
    CHECK(host_terms == 1);
    record_span(t, "returns-after"); /* waits for the thaw */
    step('2');
    CHECK(sink_shows("\"name\":\"returns-after\""));
    for (int i = 0; i < 1000 && host_terms < 2; i++) sleep_ms(10);
    CHECK(host_terms == 2);
    step(failures ? 'F' : '3');
    await_parent();
    _exit(4);
}

static const char *self_path;

/* Runs this program again as `agent` (see main), PID 1 of a new PID
 * namespace made by `unshare --pid --fork`, as a container's entry point
 * is; its pid here (outside: where `docker stop` signals from), or -1.
 * `*unshare_pid`: the unshare process, whose status is the agent's. */
static pid_t start_pid1(const char *agent, int *events, int *go, pid_t *unshare_pid) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        char up_fd[16], down_fd[16];
        snprintf(up_fd, sizeof up_fd, "%d", up[1]);
        snprintf(down_fd, sizeof down_fd, "%d", down[0]);
        execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", self_path, "--agent", agent, sink, up_fd,
               down_fd, (char *)NULL);
        _exit(127);
    }
    close(up[1]);
    close(down[0]);
    *events = up[0];
    *go = down[1];
    *unshare_pid = pid;
    if (pid < 0) return -1;
    /* unshare's one child is the agent. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        int child = 0;
        if (f) {
            if (fscanf(f, "%d", &child) != 1) child = 0;
            fclose(f);
        }
        if (child > 0) return child;
        sleep_ms(10);
    }
    return -1;
}

/* Whether `unshare --pid --fork` works here; why not on stdout. */
static int pid_namespaces_work(void) {
    int status = system("unshare --pid --fork sh -c 'test $$ = 1' 2>/dev/null");
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("skipped: no PID namespace here (`unshare --pid --fork` fails: status %d)\n", status);
        return 0;
    }
    return 1;
}

/* The agent's next step ('F': its checks failed, 0: it ended). */
static char next_step(int events) {
    char c = 0;
    return read(events, &c, 1) == 1 ? c : 0;
}

/* A tracer started now, flushed and shut down: what it recovered from the
 * spool is in the sink. */
static void next_start(void) {
    spanguard_tracer *t = tracer_flushed_only(sink, "next");
    if (!t) return;
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
}

/* unshare's wait status: the agent's (it dies of the agent's signal). */
static int wait_status(pid_t pid) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

/* The plain and the returning agents' run: each SIGTERM flushed while
 * the agent lives on (its next step comes after it), twice, then the
 * SIGKILL a container's stop ends with; the agent is gone. */
static void two_sigterms_then_sigkill(pid_t pid, pid_t unshare_pid, int events, int go) {
    CHECK(next_step(events) == '1');
    kill(pid, SIGTERM);
    CHECK(next_step(events) == '2');
    kill(pid, SIGTERM);
    CHECK(next_step(events) == '3');
    kill(pid, SIGKILL);
    wait_status(unshare_pid);
    CHECK(kill(pid, 0) == -1); /* gone (unshare cannot die of SIGKILL as it does of others) */
    close(events);
    close(go);
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 6 && strcmp(argv[1], "--agent") == 0) {
        /* PID 1: `--agent CASE SINK TO_PARENT_FD FROM_PARENT_FD`. */
        snprintf(sink, sizeof sink, "%s", argv[3]);
        snprintf(spool, sizeof spool, "%s-spool", argv[3]);
        to_parent = atoi(argv[4]);
        from_parent = atoi(argv[5]);
        if (strcmp(argv[2], "plain") == 0) plain_agent();
        if (strcmp(argv[2], "exits") == 0) exits_agent();
        if (strcmp(argv[2], "returns") == 0) returns_agent();
        return 4;
    }
    const char *dir = argc > 1 ? argv[1] : "build/test_pid1-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);
    if (!pid_namespaces_work()) return 0;

    int events, go;
    pid_t unshare_pid;
    pid_t pid = start_pid1("plain", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    /* plain: lives through two SIGTERMs, each flushed; SIGKILL. */
    two_sigterms_then_sigkill(pid, unshare_pid, events, go);
    CHECK(files_ending(spool, ".sgdump") == 0);
    CHECK(files_ending(spool, ".sgspool") == 0);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"plain-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"plain-after\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"plain-unflushed\"") == 1); /* the flight recorder's */
    CHECK(count_in_dir(sink, "\"name\":\"plain-open\"") == 1);      /* open at the SIGKILL */
    CHECK(files_in_dir(spool, ".sg") == 0);

    /* exits: its handler's status; the open span dumped, sent once. */
    pid = start_pid1("exits", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    kill(pid, SIGTERM);
    int status = wait_status(unshare_pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 143);
    close(events);
    close(go);
    CHECK(count_in_dir(sink, "\"name\":\"exits-before\"") == 1);
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"exits-open\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);

    /* returns: the handler at each SIGTERM, each flushed; SIGKILL. */
    pid = start_pid1("returns", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    two_sigterms_then_sigkill(pid, unshare_pid, events, go);
    CHECK(files_ending(spool, ".sgdump") == 0);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"returns-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"returns-after\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);
    return check_summary();
}
