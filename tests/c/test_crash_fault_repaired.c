/* A crash signal the program's own handler deals with, and the process
 * goes on: what garbage collectors, JVMs, Mono and userfault-style
 * allocators do in normal operation (a write to a page they protected:
 * the handler makes it writable and returns; a JIT's trap: the handler
 * moves the program counter on), and a program that raises SIGABRT on
 * itself to log something. Their handler was installed before the tracer,
 * so spanguard's crash handler is the one the kernel calls, and it
 * chains to theirs. It dumped every tracer and froze it first: the
 * process went on with every later span refused as shut down, and the
 * next start sent the dumped spans again (a fault is no signal the
 * handler could take back).
 *
 * - "repaired": SIGSEGV, a write to a read-only page; the handler
 *   mprotects it writable and returns; the write is done.
 * - "skipped": SIGILL, an undefined instruction the handler steps over
 *   (the program counter moved: a JIT's landing pad).
 * - "after ours": "repaired" with the handler installed after the tracer
 *   (it gets the fault first and never chains to ours for its own page).
 * - "raised abrt": raise(SIGABRT) with a handler that logs and returns.
 * - "grown": SIGBUS, a write to a shared file mapping past the file's end
 *   (the file shrank); the handler grows the file back (ftruncate) and
 *   returns. A repair the crash handler cannot see: the program counter
 *   stays, the page's permission was right all along. It was dumped and
 *   every tracer frozen, every later span refused.
 * In each the spans recorded before, during (one open) and after arrive
 * once, in the process itself, and no dump is left.
 *
 * And a real crash still dumps every span:
 * - "crash": SIGSEGV with a handler that cannot repair it and returns at
 *   the default (as Rust's standard library and many runtimes pass on a
 *   fault that is not theirs): the process dies of SIGSEGV with its dump.
 * - "abort": abort() with a handler that logs and returns: abort() ends
 *   the process (SIGABRT at the default), the dump left.
 * - "never dies": "grown" with a handler that does not grow the file: it
 *   logs and returns, and at its third call puts the default back. The
 *   write faults again and again; the process dies of SIGBUS with its dump.
 * - "never loops": the same handler never giving up, as a program that
 *   logs and returns loops on the fault without spanguard too: at its
 *   fourth call the dump is on disk (checked from the handler, which then
 *   _exits 0): the fault met again is judged unrepaired, and the loop is
 *   the program's, its handler called once a fault.
 * - "probe": SIGSEGV, a read of a page mapped with no access, as a
 *   program probes whether memory is readable; the handler siglongjmp()s
 *   back past the read (never returns). The crash handler never learns
 *   what became of the fault: the tracers must be as they were, nothing
 *   frozen or dumped. (A dump written before the program's handler runs,
 *   so that one ending the process with _exit leaves it, froze them here
 *   for good: every later span refused.)
 * The next start sends what the dump held once.
 *
 * Each case runs in a child forked before any tracer; an alarm turns a
 * hang into SIGALRM. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

static char *page;
static size_t page_size;
static int mapped_file = -1;
static volatile sig_atomic_t handled;
static struct sigaction before_ours;

/* Makes the page writable when the fault is on it; otherwise passes the
 * fault on to the handler it replaced (spanguard's, in "after ours"). */
static void make_writable(int signal, siginfo_t *info, void *context) {
    char *addr = info->si_addr;
    if (addr >= page && addr < page + page_size) {
        handled++;
        mprotect(page, page_size, PROT_READ | PROT_WRITE);
        return;
    }
    if (before_ours.sa_flags & SA_SIGINFO) {
        before_ours.sa_sigaction(signal, info, context);
    } else {
        sigaction(signal, &before_ours, NULL);
    }
}

/* Steps over the 2-byte ud2 (x86-64) or 4-byte udf (arm64). */
static void skip_instruction(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    ucontext_t *uc = context;
    handled++;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RIP] += 2;
#elif defined(__aarch64__)
    uc->uc_mcontext.pc += 4;
#else
    (void)uc;
#endif
}

static void undefined_instruction(void) {
#if defined(__x86_64__)
    __asm__ volatile("ud2");
#elif defined(__aarch64__)
    __asm__ volatile("udf #0");
#else
    raise(SIGILL); /* not a fault: only the other cases say anything here */
#endif
}

/* Cannot repair it: puts the default back and returns, the write faults
 * again and ends the process. */
static void give_up(int signal, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    handled++;
    set_handler(signal, SIG_DFL, 0);
}

static void log_and_return(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    handled++;
}

/* Grows the mapped file back to a page: the write past its end is one
 * within it now. */
static void grow_file(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    handled++;
    if (ftruncate(mapped_file, (off_t)page_size) != 0) _exit(6);
}

static const char *child_dir;

/* Leaves the file short: at the third call puts the default back (the
 * fault then ends the process). */
static void never_grow_then_give_up(int signal, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    if (++handled == 3) set_handler(signal, SIG_DFL, 0);
}

/* Leaves the file short for good; at the fourth call, exits 0 when the
 * dump is on disk (7 when not). A test's handler, not a program's: it
 * lists a directory (malloc) interrupting a plain store, not malloc. */
static void never_grow(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    if (++handled < 4) return;
    char spool[600];
    snprintf(spool, sizeof spool, "%s-spool", child_dir);
    _exit(files_ending(spool, ".sgdump") == 1 ? 0 : 7);
}

static sigjmp_buf probed;

static void back_from_probe(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    handled++;
    siglongjmp(probed, 1);
}

enum how { REPAIRED, SKIPPED, AFTER_OURS, RAISED_ABRT, GROWN, CRASH, ABORT, NEVER_DIES, NEVER_LOOPS, PROBE };

/* A page of a shared mapping of a file (memfd) that is then cut to
 * nothing: a write to it raises SIGBUS (BUS_ADRERR) until the file grows
 * again. */
static char *page_past_end_of_file(void) {
    mapped_file = memfd_create("fault-repaired", 0);
    if (mapped_file < 0 || ftruncate(mapped_file, (off_t)page_size) != 0) return MAP_FAILED;
    char *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED, mapped_file, 0);
    if (p == MAP_FAILED || ftruncate(mapped_file, 0) != 0) return MAP_FAILED;
    return p;
}

static int install(int signal, void (*fn)(int, siginfo_t *, void *)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(signal, &sa, &before_ours);
}

/* The child: its handler (before or after the tracer), spans before and
 * one open, the signal, then what it records (exit 0 when every check
 * passed; the crash cases do not get there). */
static void child(const char *dir, enum how how) {
    alarm(20);
    checks = failures = 0; /* the parent's, counted before the fork */
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    child_dir = dir;
    int on_file = how == GROWN || how == NEVER_DIES || how == NEVER_LOOPS;
    page = on_file ? page_past_end_of_file() : mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) _exit(4);
    int signal = how == SKIPPED                       ? SIGILL
                 : how == RAISED_ABRT || how == ABORT ? SIGABRT
                 : on_file                            ? SIGBUS
                                                      : SIGSEGV;
    void (*fn)(int, siginfo_t *, void *) = how == SKIPPED                       ? skip_instruction
                                           : how == CRASH                       ? give_up
                                           : how == RAISED_ABRT || how == ABORT ? log_and_return
                                           : how == GROWN                       ? grow_file
                                           : how == NEVER_DIES                  ? never_grow_then_give_up
                                           : how == NEVER_LOOPS                 ? never_grow
                                           : how == PROBE                       ? back_from_probe
                                                                                : make_writable;
    if (how != AFTER_OURS && install(signal, fn) != 0) _exit(5);
    spanguard_tracer *t = tracer_flushed_only(dir, "fault-repaired");
    if (!t) _exit(2);
    if (how == AFTER_OURS && install(signal, fn) != 0) _exit(5);
    record_span(t, "before");
    spanguard_span open;
    CHECK_RC(spanguard_span_begin(t, S("open"), SPANGUARD_SPAN_NONE, 0, &open), SPANGUARD_RESULT_OK);
    if (how == SKIPPED) {
        undefined_instruction();
    } else if (how == RAISED_ABRT) {
        raise(SIGABRT);
    } else if (how == ABORT) {
        abort();
    } else if (how == PROBE) {
        if (mprotect(page, page_size, PROT_NONE) != 0) _exit(4);
        if (sigsetjmp(probed, 1) == 0) (void)*(volatile char *)page;
    } else {
        *(volatile char *)page = 1;
    }
    CHECK(handled == 1);
    finish_after_living_through(t, open, dir);
}

static int run(const char *dir, enum how how) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) child(dir, how);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

struct run {
    const char *name;
    enum how how;
    int died_of; /* 0: lives on, or exits (`dumped`) */
    int status;
    int dumped; /* exits 0 with a dump left */
};

/* A child that lived on: it checked its spans itself; the next start
 * finds nothing more to send (no dump), each span once. */
static void check_lived_on(const char *dir, const struct run *r) {
    if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
        fprintf(stderr, "%s: the child ended with status %#x\n", r->name, r->status);
    CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
    next_start_on(dir);
    check_arrived_once(dir, "before");
    check_arrived_once(dir, "open");
    check_arrived_once(dir, "after");
}

/* A child that died of its crash (or exited with its dump left): its
 * dump sent by the next start. */
static void check_died(const char *dir, const struct run *r) {
    char spool[600];
    int ended = r->dumped ? WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0
                          : WIFSIGNALED(r->status) && WTERMSIG(r->status) == r->died_of;
    if (!ended) fprintf(stderr, "%s: the child ended with status %#x\n", r->name, r->status);
    CHECK(ended);
    snprintf(spool, sizeof spool, "%s-spool", dir);
    CHECK(files_ending(spool, ".sgdump") == 1);
    next_start_on(dir);
    check_arrived_once(dir, "before");
    check_arrived_once(dir, "open");
    CHECK(count_in_dir(dir, "\"after\"") == 0);
    CHECK(files_in_dir(spool, ".sg") == 0);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_crash_fault_repaired-spans";
    struct run runs[] = {
        {"repaired", REPAIRED, 0, 0, 0},
#if defined(__x86_64__) || defined(__aarch64__)
        {"skipped", SKIPPED, 0, 0, 0},
#endif
        {"after-ours", AFTER_OURS, 0, 0, 0},
        {"raised-abrt", RAISED_ABRT, 0, 0, 0},
        {"grown", GROWN, 0, 0, 0},
        {"crash", CRASH, SIGSEGV, 0, 0},
        {"abort", ABORT, SIGABRT, 0, 0},
        {"never-dies", NEVER_DIES, SIGBUS, 0, 0},
        {"never-loops", NEVER_LOOPS, 0, 0, 1},
        {"probe", PROBE, 0, 0, 0},
    };
    size_t n = sizeof runs / sizeof runs[0];
    char dir[512];
    /* Every child first: one forked after this process had a tracer (the
     * next start's) would find the crash handler installed already, and
     * its own handler, set after the fork, replace it. */
    for (size_t i = 0; i < n; i++) {
        snprintf(dir, sizeof dir, "%s/%s", scratch, runs[i].name);
        runs[i].status = run(dir, runs[i].how);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(dir, sizeof dir, "%s/%s", scratch, runs[i].name);
        if (runs[i].died_of || runs[i].dumped)
            check_died(dir, &runs[i]);
        else
            check_lived_on(dir, &runs[i]);
    }
    return check_summary();
}
