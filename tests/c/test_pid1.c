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
 *   lives on (SIGHUP after it, as well); a thread recording all along has none of its spans refused
 *   (the tracers are not frozen for a signal that cannot end the
 *   process); a SIGHUP then flushes again; no dump or batch is left
 *   in the spool; at the SIGKILL the flight recorder covers the span
 *   ended since and the one still open, and the next start sends each
 *   span once.
 * - "exits": a handler that calls _exit(143): the agent ends with 143,
 *   the span it had open is dumped and sent once by the next start.
 * - "returns": a handler (of SIGTERM and SIGINT) that returns: it runs
 *   at a SIGTERM and at a SIGINT (Ctrl-C in `docker run -it`), each
 *   flushes, the agent lives on until the SIGKILL, no span twice.
 * - "segv", "bus", "abort": a crash. A real fault (a write to a
 *   PROT_NONE page, a read past a mapped file's end) and abort(). The
 *   crash handler dumps and re-raises at SIG_DFL, a raise the kernel
 *   drops for init; a fault recurs on return and the kernel's own
 *   signal, forced, ends even init. abort() raises SIGABRT twice (both
 *   dropped), then executes glibc's ABORT_INSTRUCTION (hlt: SIGSEGV on
 *   x86-64, so the agent dies of SIGSEGV, as it does without spanguard)
 *   or _exit(127). Each ends within seconds, its dump written, and the
 *   next start, PID 1 again on the same spool (the container
 *   restarted), sends the dump's spans once.
 * - "sent": SIGABRT and SIGSEGV sent to it (`docker kill --signal`), no
 *   handler of its own: dropped for init, as without spanguard. The
 *   agent lives on recording, nothing dumped. The crash handler dumped,
 *   froze every tracer and re-raised in vain: the agent went on with
 *   every span refused.
 * - "raised": SIGFPE, SIGSEGV and SIGBUS the agent raises on itself
 *   (raise, kill(getpid()), sigqueue), no handler of its own: the kernel
 *   drops them for init too (the sender is the process, not the
 *   kernel), and without spanguard the agent goes on. It lives on
 *   recording, nothing dumped. The crash handler took a signal of the
 *   process's own for abort()'s, dumped, froze every tracer and
 *   re-raised in vain: every later span was refused. A SIGABRT of its
 *   own is still taken for abort()'s and dumped (they cannot be told
 *   apart, and abort() may end by _exit(127), unseen): the "abort" case.
 *
 * - "logs": a program with crash handlers of its own that log and
 *   return (SIGSEGV, SIGFPE), expecting the default action to end it. A
 *   SIGSEGV sent to it (`docker kill --signal`) and a SIGFPE it raises
 *   run its handler once each and it lives on recording, as it would
 *   without spanguard: nothing dumped, no span refused. The crash handler
 *   dumped, froze every tracer and chained to the program's handler,
 *   whose return left them frozen for good. Then a real fault: its
 *   handler (once) puts the default back and returns, the fault recurs
 *   and ends it, dumped; the next start sends the dump's spans once (our
 *   handler is back in after the return: left to the program's alone,
 *   the fault ended it with nothing dumped).
 *
 * - "init": the agent as PID 2 under an init that forwards signals (as
 *   tini and dumb-init do, `docker run --init`): it is no namespace
 *   init, so the SIGTERM init passes on ends it, flushed first; the span
 *   it had open is dumped and sent once by the next start; init exits
 *   with 128 + 15, as tini does.
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
#include <sys/mman.h>
#include <sys/resource.h>
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
    ssize_t n;
    /* A signal the agent lives through may interrupt the read. */
    while ((n = read(from_parent, &c, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) _exit(6);
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
    /* The rule bindings ask (Node's hooks): a raise at the default
     * cannot end init, one the program handles can. */
    CHECK(!spanguard_raised_signal_can_end_process(false));
    CHECK(spanguard_raised_signal_can_end_process(true));
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
    /* SIGHUP flushes again. */
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

/* An agent, pid `want_pid` in its namespace, with a span `NAME-before`
 * ended (unflushed) and `NAME-open` open, until the signal the parent
 * sends ends it. */
static void ended_and_open_until_ended(const char *name, pid_t want_pid) {
    char service[64], before[64], open_name[64];
    snprintf(service, sizeof service, "pid%d-%s", (int)want_pid, name);
    snprintf(before, sizeof before, "%s-before", name);
    snprintf(open_name, sizeof open_name, "%s-open", name);
    spanguard_tracer *t = agent_tracer(service, 0);
    if (!t || getpid() != want_pid) _exit(2);
    record_span(t, before);
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S(open_name), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    step(failures ? 'F' : '1');
    await_parent(); /* the signal ends it */
    _exit(4);
}

static void exits_agent(void) {
    signal(SIGTERM, exit_143);
    ended_and_open_until_ended("exits", 1); /* the handler ends it */
}

static void count_term(int sig) {
    (void)sig;
    host_terms++;
}

static void returns_agent(void) {
    signal(SIGTERM, count_term);
    signal(SIGINT, count_term);
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

static void next_start(void);

/* A crash of kind `how` ("segv", "bus", "abort", "abort127") once the
 * parent says so, with a span ended and unflushed (in the slab) and one
 * open. "abort127" is abort() whose abort instruction returned (every
 * glibc port has one: `hlt`, arm64's `brk`, else `__builtin_trap()`; the
 * fallback is glibc's and musl's last resort): its raise of SIGABRT,
 * dropped for init, then _exit(127), which no handler sees (its second
 * raise, at SIG_DFL, is dropped too and left out). */
static void crash_agent(const char *how) {
    char service[64], before[64], open_name[64];
    snprintf(service, sizeof service, "pid1-%s", how);
    snprintf(before, sizeof before, "%s-before", how);
    snprintf(open_name, sizeof open_name, "%s-open", how);
    spanguard_tracer *t = agent_tracer(service, 0);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, before);
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S(open_name), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    /* The fault's page, made before the go-ahead. */
    long page = sysconf(_SC_PAGESIZE);
    volatile char *fault = MAP_FAILED;
    if (strcmp(how, "segv") == 0) {
        fault = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else if (strcmp(how, "bus") == 0) {
        FILE *empty = tmpfile(); /* a mapping past its end: SIGBUS */
        if (empty) fault = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fileno(empty), 0);
    }
    if (strncmp(how, "abort", 5) != 0 && fault == MAP_FAILED) _exit(2);
    step(failures ? 'F' : '1');
    await_parent();
    if (strcmp(how, "segv") == 0) fault[0] = 1;
    if (strcmp(how, "bus") == 0) (void)fault[0];
    if (strcmp(how, "abort") == 0) abort();
    if (strcmp(how, "abort127") == 0) {
        raise(SIGABRT);
        _exit(127);
    }
    _exit(4); /* lived through it */
}

/* The "logs" agent's crash handler: says 'h' to the parent (one line of
 * a log) and returns; for a real fault, the default action first, so
 * that the fault, met again, ends the program. */
static volatile sig_atomic_t logged;

static void log_and_return(int sig, siginfo_t *info, void *context) {
    (void)context;
    logged++;
    char c = 'h';
    if (write(to_parent, &c, 1) != 1) _exit(5);
    if (info->si_code > 0) signal(sig, SIG_DFL);
}

static void logs_agent(void) {
    struct sigaction logs;
    memset(&logs, 0, sizeof logs);
    logs.sa_sigaction = log_and_return;
    logs.sa_flags = SA_SIGINFO;
    sigemptyset(&logs.sa_mask);
    sigaction(SIGSEGV, &logs, NULL);
    sigaction(SIGFPE, &logs, NULL);
    spanguard_tracer *t = agent_tracer("pid1-logs", 0);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, "logs-before");
    volatile char *fault = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fault == MAP_FAILED) _exit(2);
    step(failures ? 'F' : '1');
    for (int i = 0; i < 1000 && logged < 1; i++) sleep_ms(10); /* the SIGSEGV sent */
    CHECK(logged == 1);
    /* Taken on this thread, the handler's return thawed the tracers; on
     * one of the library's, a moment later: up to 10 s for that. */
    spanguard_span s;
    spanguard_result rc = SPANGUARD_RESULT_SHUT_DOWN;
    for (int i = 0; i < 1000 && rc != SPANGUARD_RESULT_OK; i++) {
        rc = spanguard_span_begin(t, S("logs-after-sent"), SPANGUARD_SPAN_NONE, 0, &s);
        if (rc != SPANGUARD_RESULT_OK) sleep_ms(10);
    }
    CHECK_RC(rc, SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    /* Raised on this thread: recording as raise() returns. */
    CHECK(raise(SIGFPE) == 0);
    CHECK(logged == 2);
    CHECK_RC(spanguard_span_begin(t, S("logs-after-raised"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(sink, "\"name\":\"logs-after-sent\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"logs-after-raised\"") == 1);
    CHECK(files_ending(spool, ".sgdump") == 0);
    record_span(t, "logs-ended");
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("logs-open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    step(failures ? 'F' : '2');
    await_parent();
    fault[0] = 1;
    _exit(4); /* lived through it */
}

static void sent_agent(void) {
    spanguard_tracer *t = agent_tracer("pid1-sent", 0);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, "sent-before");
    step(failures ? 'F' : '1');
    await_parent(); /* SIGABRT and SIGSEGV came and went */
    record_span(t, "sent-after");
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(sink, "\"name\":\"sent-after\"") == 1);
    CHECK(files_ending(spool, ".sgdump") == 0);
    step(failures ? 'F' : '2');
    await_parent();
    _exit(0);
}

static void raised_agent(void) {
    spanguard_tracer *t = agent_tracer("pid1-raised", 0);
    if (!t || getpid() != 1) _exit(2);
    record_span(t, "raised-before");
    union sigval nothing = {0};
    CHECK(raise(SIGFPE) == 0);
    CHECK(kill(getpid(), SIGSEGV) == 0);
    CHECK(sigqueue(getpid(), SIGBUS, nothing) == 0);
    /* Each delivered (and dropped) before its call returned. */
    spanguard_span after;
    CHECK_RC(spanguard_span_begin(t, S("raised-after"), SPANGUARD_SPAN_NONE, 0, &after), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(after), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_flush(t, 10000), SPANGUARD_RESULT_OK);
    CHECK(count_in_dir(sink, "\"name\":\"raised-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"raised-after\"") == 1);
    CHECK(files_ending(spool, ".sgdump") == 0);
    step(failures ? 'F' : '1');
    await_parent();
    _exit(failures ? 3 : 0);
}

static void initee_agent(void) {
    ended_and_open_until_ended("initee", 2); /* SIGTERM, from init, ends it */
}

/* A minimal tini: PID 1 that starts `agent_argv` and passes SIGTERM,
 * SIGINT and SIGHUP on to it; its status is the agent's (128 + the
 * signal that ended it). */
static volatile pid_t forwarded_to;

static void forward(int sig) {
    if (forwarded_to > 0) kill(forwarded_to, sig);
}

static int fake_init(char **agent_argv) {
    if (getpid() != 1) return 2;
    struct sigaction pass_on;
    memset(&pass_on, 0, sizeof pass_on);
    pass_on.sa_handler = forward;
    pass_on.sa_flags = SA_RESTART;
    sigemptyset(&pass_on.sa_mask);
    sigaction(SIGTERM, &pass_on, NULL);
    sigaction(SIGINT, &pass_on, NULL);
    sigaction(SIGHUP, &pass_on, NULL);
    pid_t child = fork();
    if (child == 0) {
        execv(agent_argv[0], agent_argv); /* the handlers go back to SIG_DFL */
        _exit(127);
    }
    if (child < 0) return 2;
    forwarded_to = child;
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* The next start as PID 1 again (the container restarted on the same
 * spool): it recovers, flushes and shuts down, then waits to be told. */
static void next_agent(void) {
    if (getpid() != 1) _exit(2);
    next_start();
    step(failures ? 'F' : '1');
    await_parent();
    _exit(failures ? 3 : 0);
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
        /* No core file for the crash cases: a core of the agent takes
         * time and disk, and says nothing here. */
        struct rlimit no_core = {0, 0};
        (void)setrlimit(RLIMIT_CORE, &no_core);
        if (strcmp(agent, "init") == 0) {
            execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", self_path, "--fake-init", self_path,
                   "--agent", "initee", sink, up_fd, down_fd, (char *)NULL);
        } else {
            execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", self_path, "--agent", agent, sink, up_fd,
                   down_fd, (char *)NULL);
        }
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

/* The plain and the returning agents' run: SIGTERM then `second`, each
 * flushed while the agent lives on (its next step comes after it), then
 * the SIGKILL a container's stop ends with; the agent is gone. */
static void two_signals_then_sigkill(pid_t pid, pid_t unshare_pid, int events, int go, int second) {
    CHECK(next_step(events) == '1');
    kill(pid, SIGTERM);
    CHECK(next_step(events) == '2');
    kill(pid, second);
    CHECK(next_step(events) == '3');
    kill(pid, SIGKILL);
    wait_status(unshare_pid);
    CHECK(kill(pid, 0) == -1); /* gone (unshare cannot die of SIGKILL as it does of others) */
    close(events);
    close(go);
}

/* unshare's wait status once it ended, within `seconds`; else the agent
 * and unshare are killed and -1 returned (a hang, or a spin). */
static int status_within(pid_t agent, pid_t unshare_pid, int seconds) {
    for (int i = 0; i < seconds * 100; i++) {
        int status = 0;
        pid_t got = waitpid(unshare_pid, &status, WNOHANG);
        if (got == unshare_pid) return status;
        if (got < 0) return -1;
        sleep_ms(10);
    }
    kill(agent, SIGKILL);
    kill(unshare_pid, SIGKILL);
    int status;
    waitpid(unshare_pid, &status, 0);
    return -1;
}

/* The next start, PID 1 again on the same spool: ends 0, its checks passed. */
static void next_start_as_pid1(void) {
    int events, go;
    pid_t unshare_pid;
    pid_t pid = start_pid1("next", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    CHECK(write(go, "g", 1) == 1);
    int status = status_within(pid, unshare_pid, 30);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(events);
    close(go);
}

/* A crash of kind `how` as PID 1: the agent ends within seconds (as
 * `ended` says of its wait status), its dump on disk, and the next start
 * as PID 1 sends the span ended before and the one open, once each. */
static void crash_as_pid1(const char *how, int (*ended)(int status)) {
    int events, go;
    pid_t unshare_pid;
    pid_t pid = start_pid1(how, &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    CHECK(write(go, "g", 1) == 1);
    /* 20 s: the dump takes milliseconds; a loaded machine's margin. */
    int status = status_within(pid, unshare_pid, 20);
    printf("%s as PID 1: %s %d\n", how,
           status == -1 ? "still running after 20 s, killed:"
           : WIFSIGNALED(status) ? "ended by signal"
                                 : "exited with",
           status == -1 ? 0 : WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    CHECK(status != -1 && ended(status));
    close(events);
    close(go);
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start_as_pid1();
    char before[64], open_name[64];
    snprintf(before, sizeof before, "\"name\":\"%s-before\"", how);
    snprintf(open_name, sizeof open_name, "\"name\":\"%s-open\"", how);
    CHECK(count_in_dir(sink, before) == 1);
    CHECK(count_in_dir(sink, open_name) == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);
}

static int died_of_sigsegv(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV; }
static int died_of_sigbus(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS; }
/* abort() as PID 1: by the signal its abort instruction raises, or glibc's
 * _exit(127) where it has none (or SIGABRT, should a kernel deliver it). */
static int aborted(int status) {
    return WIFSIGNALED(status) ? WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGILL ||
                                     WTERMSIG(status) == SIGTRAP || WTERMSIG(status) == SIGABRT
                               : WEXITSTATUS(status) == 127;
}

int main(int argc, char **argv) {
    self_path = argv[0];
    /* A container's PID 1 starts with the default dispositions; a test run
     * from a background shell (SIGINT, SIGQUIT) or under nohup (SIGHUP)
     * inherits them ignored, and the plain agent's SIGHUP then did nothing. */
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    /* PID 1 that starts this program as PID 2: `--fake-init SELF --agent ...`. */
    if (argc == 8 && strcmp(argv[1], "--fake-init") == 0) return fake_init(argv + 2);
    if (argc == 6 && strcmp(argv[1], "--agent") == 0) {
        /* PID 1: `--agent CASE SINK TO_PARENT_FD FROM_PARENT_FD`. */
        snprintf(sink, sizeof sink, "%s", argv[3]);
        snprintf(spool, sizeof spool, "%s-spool", argv[3]);
        to_parent = atoi(argv[4]);
        from_parent = atoi(argv[5]);
        if (strcmp(argv[2], "plain") == 0) plain_agent();
        if (strcmp(argv[2], "exits") == 0) exits_agent();
        if (strcmp(argv[2], "returns") == 0) returns_agent();
        if (strcmp(argv[2], "segv") == 0 || strcmp(argv[2], "bus") == 0 || strcmp(argv[2], "abort") == 0 ||
            strcmp(argv[2], "abort127") == 0)
            crash_agent(argv[2]);
        if (strcmp(argv[2], "next") == 0) next_agent();
        if (strcmp(argv[2], "sent") == 0) sent_agent();
        if (strcmp(argv[2], "logs") == 0) logs_agent();
        if (strcmp(argv[2], "raised") == 0) raised_agent();
        if (strcmp(argv[2], "initee") == 0) initee_agent();
        return 4;
    }
    const char *dir = argc > 1 ? argv[1] : "build/test_pid1-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);
    /* Outside a namespace's init, any raise can end the process. */
    CHECK(spanguard_raised_signal_can_end_process(false));
    CHECK(spanguard_raised_signal_can_end_process(true));
    if (!pid_namespaces_work()) return 0;

    int events, go;
    pid_t unshare_pid;
    pid_t pid = start_pid1("plain", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    /* plain: lives through SIGTERM and SIGHUP, each flushed; SIGKILL. */
    two_signals_then_sigkill(pid, unshare_pid, events, go, SIGHUP);
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

    /* returns: the handler at SIGTERM and at SIGINT, each flushed; SIGKILL. */
    pid = start_pid1("returns", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    two_signals_then_sigkill(pid, unshare_pid, events, go, SIGINT);
    CHECK(files_ending(spool, ".sgdump") == 0);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"returns-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"returns-after\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);

    /* Crashes as PID 1: each ends, dumped; the next PID 1 sends it once. */
    crash_as_pid1("segv", died_of_sigsegv);
    crash_as_pid1("bus", died_of_sigbus);
    crash_as_pid1("abort", aborted);
    crash_as_pid1("abort127", aborted);

    /* sent: crash signals from outside, dropped; it records on. */
    pid = start_pid1("sent", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    kill(pid, SIGABRT);
    kill(pid, SIGSEGV);
    sleep_ms(300); /* handled, if they are, by now */
    CHECK(write(go, "g", 1) == 1);
    CHECK(next_step(events) == '2');
    CHECK(write(go, "g", 1) == 1);
    status = status_within(pid, unshare_pid, 20);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(events);
    close(go);
    CHECK(count_in_dir(sink, "\"name\":\"sent-before\"") == 1);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"sent-before\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);

    /* raised: crash signals it raises on itself, dropped; it records on. */
    pid = start_pid1("raised", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    CHECK(write(go, "g", 1) == 1);
    status = status_within(pid, unshare_pid, 20);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(events);
    close(go);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"raised-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"raised-after\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);

    /* logs: its own crash handlers, which return; it lives through a sent
     * and a raised signal, recording, and a fault ends it dumped. */
    pid = start_pid1("logs", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    kill(pid, SIGSEGV);
    CHECK(next_step(events) == 'h'); /* the sent SIGSEGV */
    CHECK(next_step(events) == 'h'); /* its raised SIGFPE */
    CHECK(next_step(events) == '2');
    CHECK(write(go, "g", 1) == 1);
    CHECK(next_step(events) == 'h'); /* the fault, once */
    status = status_within(pid, unshare_pid, 20);
    CHECK(status != -1 && died_of_sigsegv(status));
    CHECK(next_step(events) == 0); /* its handler said no more */
    close(events);
    close(go);
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start_as_pid1();
    CHECK(count_in_dir(sink, "\"name\":\"logs-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"logs-after-sent\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"logs-ended\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"logs-open\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);

    /* init: PID 2 under a forwarding init; init's SIGTERM ends it flushed. */
    pid = start_pid1("init", &events, &go, &unshare_pid);
    CHECK(pid > 0);
    CHECK(next_step(events) == '1');
    kill(pid, SIGTERM);
    status = status_within(pid, unshare_pid, 20);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM);
    close(events);
    close(go);
    CHECK(count_in_dir(sink, "\"name\":\"initee-before\"") == 1); /* flushed at the signal */
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start();
    CHECK(count_in_dir(sink, "\"name\":\"initee-before\"") == 1);
    CHECK(count_in_dir(sink, "\"name\":\"initee-open\"") == 1);
    CHECK(files_in_dir(spool, ".sg") == 0);
    return check_summary();
}
