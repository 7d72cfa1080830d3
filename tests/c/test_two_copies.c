/* Two copies of libspanguard in one process, and dlclose.
 *
 * A Python agent whose wheel carries the library and a C extension that
 * links its own, or a plugin host loading two plugins each built against
 * its own libspanguard, end up with two copies in one pid: dlopen'ed
 * RTLD_LOCAL, each has its own globals and statics (its own counters, its
 * own signal watchdog, its own crash handlers, its own fork handlers) and
 * both share the spool directory, the pid and the signal dispositions.
 * Here the built library is copied to two paths and both copies are
 * dlopen'ed RTLD_LOCAL in one process (a child of this test), each with a
 * tracer on the same spool directory with the flight recorder on (where a
 * name clash would bite: a copy taking the other's live flight file for a
 * dead process's), both sending to one loopback receiver. Then the child
 * ends four ways: (a) both tracers shut down (after a fork, whose child
 * runs both copies' fork handlers and exit hooks), (b) SIGTERM, (c) SIGSEGV in
 * a thread, (d) SIGKILL, followed in (b)-(d) by a recoverer (a tracer
 * started on the same spool directory and endpoint, in a process of its
 * own). Every span of both copies, the ones left open included, must
 * reach the receiver exactly once, and the spool directory must be left
 * empty.
 *
 * (e)-(g) A plugin host dlcloses the library. Its plugin's thread made
 * the tracer, recorded and ended; the host then dlcloses, and a fork, a
 * thread's start and end and (e, g) SIGTERM follow. The library must
 * still be loaded after the dlclose (RTLD_NOLOAD finds it), the fork's
 * child must exit 0, SIGTERM must end the process as SIGTERM (not as a
 * jump into unmapped code) and every span must arrive once. (e) after
 * the tracer's shutdown, signal handlers on; (f) with the tracer running:
 * unloaded, its exporter ran on in unmapped code (SIGSEGV, or the spans
 * left in the flight file), so the library is linked -z nodelete and
 * its exit hook sends them at exit; (g) signal handlers off and the
 * tracer shut down, no thread of the library's left: unloaded at every
 * run before, only -z nodelete keeps it.
 *
 * Not linked with -lspanguard: the library comes only from the dlopens. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "proc.h"
#include "receiver.h"
#include "sink_count.h"

#define SPANS 60

/* One copy of the library: its handle and the calls the test makes. */
struct copy {
    void *handle;
    __typeof__(spanguard_config_init) *config_init;
    __typeof__(spanguard_tracer_new) *tracer_new;
    __typeof__(spanguard_span_begin) *span_begin;
    __typeof__(spanguard_span_end) *span_end;
    __typeof__(spanguard_shutdown) *shutdown;
    __typeof__(spanguard_tracer_free) *tracer_free;
    spanguard_tracer *tracer;
};

/* Reads a function pointer out of dlsym's void * (ISO C has no cast
 * between them; POSIX makes them the same size). */
static void *sym(void *handle, const char *name) {
    void *p = dlsym(handle, name);
    if (!p) {
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
        _exit(3);
    }
    return p;
}
#define LOAD(c, field, name) memcpy(&(c)->field, &(void *){sym((c)->handle, name)}, sizeof(void *))

static void load(struct copy *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!c->handle) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        _exit(3);
    }
    LOAD(c, config_init, "spanguard_config_init");
    LOAD(c, tracer_new, "spanguard_tracer_new");
    LOAD(c, span_begin, "spanguard_span_begin");
    LOAD(c, span_end, "spanguard_span_end");
    LOAD(c, shutdown, "spanguard_shutdown");
    LOAD(c, tracer_free, "spanguard_tracer_free");
}

/* A tracer of copy `c` sending to `endpoint`, its spool (and flight file)
 * in `spool`; spans leave on a flush, a shutdown or a signal only (a
 * schedule delay of a minute), so the kill cases find them in the files. */
static void start_tracer(struct copy *c, const char *service, const char *endpoint, const char *spool,
                         uint32_t handlers) {
    spanguard_config cfg;
    (void)c->config_init(&cfg, sizeof cfg);
    cfg.service_name = service;
    cfg.endpoint = endpoint;
    cfg.compression = SPANGUARD_COMPRESSION_NONE;
    cfg.spool_dir = spool;
    cfg.flight_recorder = 1;
    cfg.install_signal_handlers = handlers;
    cfg.schedule_delay_ms = 60000;
    cfg.signal_flush_timeout_ms = 3000;
    spanguard_result rc = c->tracer_new(&cfg, &c->tracer);
    if (rc != SPANGUARD_RESULT_OK) {
        fprintf(stderr, "%s: spanguard_tracer_new returned %u\n", service, (unsigned)rc);
        _exit(3);
    }
}

static void emit(struct copy *c, const char *prefix, int n) {
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%03d;", prefix, i);
        spanguard_span s = SPANGUARD_SPAN_NONE;
        if (c->span_begin(c->tracer, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &s) != SPANGUARD_RESULT_OK ||
            c->span_end(s) != SPANGUARD_RESULT_OK)
            _exit(3);
    }
}

static spanguard_span open_span(struct copy *c, const char *name) {
    spanguard_span s = SPANGUARD_SPAN_NONE;
    if (c->span_begin(c->tracer, name, strlen(name), SPANGUARD_SPAN_NONE, 0, &s) != SPANGUARD_RESULT_OK) _exit(3);
    return s;
}

/* ---- the child: the two copies, ended one of the ways ---- */

static void *segfault(void *arg) {
    (void)arg;
    volatile int *nowhere = NULL;
    *nowhere = 1;
    return NULL;
}

/* The plugin's thread: it starts the tracer, records, shuts the tracer
 * down (unless told not to) and ends, its thread-locals' destructors
 * run: then no thread of the library's own is left in the unhooked case
 * (no watchdog), and nothing but the library's link flags keeps it
 * loaded through a dlclose. */
struct plugin_thread {
    struct copy *copy;
    const char *endpoint, *spool, *how;
    uint32_t handlers;
    int shut;
};

static void *run_plugin(void *arg) {
    struct plugin_thread *p = arg;
    start_tracer(p->copy, "closed", p->endpoint, p->spool, p->handlers);
    emit(p->copy, p->how, SPANS);
    if (p->shut) {
        if (p->copy->shutdown(p->copy->tracer, 10000) != SPANGUARD_RESULT_OK) _exit(4);
        p->copy->tracer_free(p->copy->tracer);
    }
    return NULL;
}

static void *do_nothing(void *arg) {
    return arg;
}

/* The copies' paths, the endpoint, the spool directory, the case. */
static int two_copies_child(const char *lib_a, const char *lib_b, const char *endpoint, const char *spool,
                            const char *how, int ready_fd) {
    struct copy a, b;
    load(&a, lib_a);
    load(&b, lib_b);
    if (a.span_begin == b.span_begin) {
        fprintf(stderr, "the two paths gave one copy of the library\n");
        _exit(3);
    }
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "%s-a", how);
    snprintf(pb, sizeof pb, "%s-b", how);
    start_tracer(&a, "copy-a", endpoint, spool, SPANGUARD_SIGNAL_HANDLERS_ALL);
    start_tracer(&b, "copy-b", endpoint, spool, SPANGUARD_SIGNAL_HANDLERS_ALL);
    emit(&a, pa, SPANS);
    emit(&b, pb, SPANS);
    if (strcmp(how, "shutdown") == 0) {
        /* A fork runs both copies' fork handlers, and the child's exit
         * both exit hooks: it sends none of the parent's spans (they
         * would arrive twice), and ends as it would without them. */
        fflush(NULL);
        pid_t child = fork();
        if (child == 0) exit(0);
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "shutdown: the forked child ended with status %#x\n", status);
            return 7;
        }
        if (a.shutdown(a.tracer, 10000) != SPANGUARD_RESULT_OK) return 4;
        if (b.shutdown(b.tracer, 10000) != SPANGUARD_RESULT_OK) return 4;
        a.tracer_free(a.tracer);
        b.tracer_free(b.tracer);
        return 0;
    }
    char open_a[64], open_b[64];
    snprintf(open_a, sizeof open_a, "%s-a-open;", how);
    snprintf(open_b, sizeof open_b, "%s-b-open;", how);
    (void)open_span(&a, open_a);
    (void)open_span(&b, open_b);
    if (strcmp(how, "sigterm") == 0) {
        kill(getpid(), SIGTERM);
        for (;;) pause();
    }
    if (strcmp(how, "segv") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, segfault, NULL) != 0) return 3;
        for (;;) pause();
    }
    if (strcmp(how, "sigkill") == 0) {
        /* Killed with a batch of each copy in export (the backend hangs:
         * each one's journal is in the spool, its spans in its flight
         * file as in export), waited for 10 s at most. */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (files_ending(spool, ".sgspool") < 2 && seconds_since(&t0) < 10) {
            struct timespec tick = {0, 10000000L};
            nanosleep(&tick, NULL);
        }
        if (write(ready_fd, "r", 1) != 1) return 3;
        for (;;) pause();
    }
    return 3;
}

/* A tracer on the spool directory and endpoint, started and shut down:
 * what a dead process left there is sent. */
static int recover_child(const char *lib, const char *endpoint, const char *spool) {
    struct copy c;
    load(&c, lib);
    start_tracer(&c, "recoverer", endpoint, spool, SPANGUARD_SIGNAL_HANDLERS_ALL);
    if (c.shutdown(c.tracer, 20000) != SPANGUARD_RESULT_OK) return 4;
    c.tracer_free(c.tracer);
    return 0;
}

/* (e)-(g): one copy, its tracer made and its spans recorded on the
 * plugin's thread, which ends; the library dlclosed (after the tracer's
 * shutdown, or with it running), then a fork, a thread's start and end
 * and (e, g) SIGTERM. */
static int dlclose_child(const char *lib, const char *endpoint, const char *spool, const char *how) {
    struct copy c;
    load(&c, lib);
    /* Unhooked: no signal handler and, once shut down, no thread of the
     * library's left: only the library's own -z nodelete keeps it loaded
     * (unloaded at every run before). */
    int unhooked = strcmp(how, "dlclose-unhooked") == 0;
    static struct plugin_thread plugin;
    plugin.copy = &c;
    plugin.endpoint = endpoint;
    plugin.spool = spool;
    plugin.how = how;
    plugin.handlers = unhooked ? SPANGUARD_SIGNAL_HANDLERS_NONE : SPANGUARD_SIGNAL_HANDLERS_ALL;
    plugin.shut = strcmp(how, "dlclose-running") != 0;
    pthread_t t;
    if (pthread_create(&t, NULL, run_plugin, &plugin) != 0 || pthread_join(t, NULL) != 0) return 3;
    if (dlclose(c.handle) != 0) return 5;
    /* Still loaded: its handlers and threads point into it. */
    void *again = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
    if (!again) {
        fprintf(stderr, "%s: unloaded by dlclose\n", how);
        return 6;
    }
    dlclose(again);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: the forked child ended with status %#x\n", how, status);
        return 7;
    }
    /* A thread's start and end run the thread hooks of every library
     * loaded (glibc's TLS set-up and destructors). */
    pthread_t plain;
    if (pthread_create(&plain, NULL, do_nothing, NULL) != 0 || pthread_join(plain, NULL) != 0) return 3;
    if (!plugin.shut) return 0; /* (f): the spans go at exit */
    kill(getpid(), SIGTERM);
    for (;;) pause();
}

/* ---- the parent: the receiver, the children, the counts ---- */

static char self[PATH_MAX];

/* Runs this program as `args` (NULL-terminated, after the program), and
 * returns its pid. `keep_fd`: an fd left open for it (-1: none). */
static pid_t spawn(char *const args[], int keep_fd) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (keep_fd >= 0) fcntl(keep_fd, F_SETFD, 0);
        char *argv[12] = {self};
        for (int i = 0; args[i] && i < 10; i++) argv[i + 1] = args[i];
        execv(self, argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to `seconds` for `pid`; its status, or -1 (then it is killed). */
static int wait_for(pid_t pid, double seconds) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) return status;
        if (seconds_since(&t0) > seconds) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec tick = {0, 20000000L};
        nanosleep(&tick, NULL);
    }
}

static void describe(const char *what, int status) {
    if (status == -1)
        fprintf(stderr, "  %s: did not end in time\n", what);
    else if (WIFEXITED(status))
        fprintf(stderr, "  %s: exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "  %s: killed by signal %d\n", what, WTERMSIG(status));
}

static int ended_by(int status, int signal) {
    return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == signal;
}

static int exited_zero(int status) {
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Each of the prefix's n spans arrived exactly once. */
static int each_once(const char *prefix, int n) {
    int once = 0;
    for (int i = 0; i < n; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "%s-%03d;", prefix, i);
        long c = recorded_count(needle);
        if (c != 1) fprintf(stderr, "  %s arrived %ld times\n", needle, c);
        once += c == 1;
    }
    return once == n;
}

static int once(const char *name) {
    long c = recorded_count(name);
    if (c != 1) fprintf(stderr, "  %s arrived %ld times\n", name, c);
    return c == 1;
}

/* Spool leftovers: anything but the outcome records. */
static long leftovers(const char *spool) {
    return files_in_dir(spool, "");
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        fprintf(stderr, "copy %s -> %s: %s\n", from, to, strerror(errno));
        exit(2);
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) exit(2);
    fclose(in);
    if (fclose(out) != 0) exit(2);
}

/* While set, the receiver answers nothing and keeps nothing of a
 * connection it accepts: a backend that hangs, each request in export
 * for as long as its sender lives. */
static atomic_int holding;

/* The copies whose request a held connection carried (bit 0: copy a's
 * span names seen in it, bit 1: copy b's): the test kills once both are
 * held. Killed as soon as the journals were there, a connection the
 * receiver's thread had not yet looked at was taken after `holding` went
 * back to 0 (a loaded machine: the acceptor or the thread not yet run),
 * and its request, sent whole before the kill, recorded: that batch
 * arrived from it and again from its journal at recovery: both copies'
 * 60 spans twice, 2 runs in 6 at load 20; every run with the receiver's
 * thread held 500 ms before it looks at `holding`. */
static atomic_int held_copies;

/* Whether `needle` is in the `len` bytes at `data`. */
static int contains(const char *data, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(data + i, needle, n) == 0) return 1;
    return 0;
}

static void *hold_or_record(void *arg) {
    int fd = (int)(long)arg;
    if (!atomic_load(&holding)) return record_each_request(arg);
    /* The request's start, enough for its span names (uncompressed). */
    char seen[1 << 16], buf[4096];
    size_t have = 0;
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        size_t take = (size_t)got < sizeof seen - have ? (size_t)got : sizeof seen - have;
        memcpy(seen + have, buf, take);
        have += take;
        if (contains(seen, have, "sigkill-a-")) atomic_fetch_or(&held_copies, 1);
        if (contains(seen, have, "sigkill-b-")) atomic_fetch_or(&held_copies, 2);
    }
    close(fd);
    return NULL;
}

static void two_copies_case(const char *dir, const char *lib_a, const char *lib_b, const char *endpoint,
                            const char *how) {
    /* SIGKILL while the backend hangs: each copy's batch in export is in
     * its journal and in its flight file, unanswered (a SIGKILL after the
     * backend took a request and before its answer was read sends it
     * again: at least once, as documented). The other cases' signals and
     * shutdowns wait for the answers. */
    atomic_store(&holding, strcmp(how, "sigkill") == 0);
    atomic_store(&held_copies, 0);
    char spool[PATH_MAX + 64];
    snprintf(spool, sizeof spool, "%s/spool-%s", dir, how);
    int ready[2] = {-1, -1};
    if (strcmp(how, "sigkill") == 0 && pipe2(ready, O_CLOEXEC) != 0) exit(2);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", ready[1]);
    pid_t pid = spawn((char *[]){"two-copies", (char *)lib_a, (char *)lib_b, (char *)endpoint, spool,
                                 (char *)how, fd, NULL},
                      ready[1]);
    int status;
    if (strcmp(how, "sigkill") == 0) {
        close(ready[1]);
        char said = 0;
        CHECK(read(ready[0], &said, 1) == 1 && said == 'r');
        close(ready[0]);
        /* Each copy's request taken and held: no connection of the killed
         * process is left for the receiver to record after the kill. */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (atomic_load(&held_copies) != 3 && seconds_since(&t0) < 60) {
            struct timespec tick = {0, 10000000L};
            nanosleep(&tick, NULL);
        }
        CHECK(atomic_load(&held_copies) == 3);
        kill(pid, SIGKILL);
    }
    status = wait_for(pid, 60);
    describe(how, status);
    if (strcmp(how, "shutdown") == 0) CHECK(exited_zero(status));
    if (strcmp(how, "sigterm") == 0) CHECK(ended_by(status, SIGTERM));
    if (strcmp(how, "segv") == 0) CHECK(ended_by(status, SIGSEGV));
    if (strcmp(how, "sigkill") == 0) CHECK(ended_by(status, SIGKILL));
    if (strcmp(how, "shutdown") != 0) {
        atomic_store(&holding, 0);
        pid_t r = spawn((char *[]){"recover", (char *)lib_a, (char *)endpoint, spool, NULL}, -1);
        int rs = wait_for(r, 60);
        describe("recoverer", rs);
        CHECK(exited_zero(rs));
    }
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "%s-a", how);
    snprintf(pb, sizeof pb, "%s-b", how);
    fprintf(stderr, "%s: checking both copies' spans\n", how);
    CHECK(each_once(pa, SPANS));
    CHECK(each_once(pb, SPANS));
    if (strcmp(how, "shutdown") != 0) {
        char open_a[64], open_b[64];
        snprintf(open_a, sizeof open_a, "%s-a-open;", how);
        snprintf(open_b, sizeof open_b, "%s-b-open;", how);
        CHECK(once(open_a));
        CHECK(once(open_b));
    }
    CHECK(leftovers(spool) == 0);
}

static void dlclose_case(const char *dir, const char *lib, const char *endpoint, const char *how) {
    char spool[PATH_MAX + 64];
    snprintf(spool, sizeof spool, "%s/spool-%s", dir, how);
    pid_t pid = spawn((char *[]){"dlclose", (char *)lib, (char *)endpoint, spool, (char *)how, NULL}, -1);
    int status = wait_for(pid, 60);
    describe(how, status);
    if (strcmp(how, "dlclose-running") != 0)
        CHECK(ended_by(status, SIGTERM));
    else
        CHECK(exited_zero(status));
    fprintf(stderr, "%s: checking the spans\n", how);
    CHECK(each_once(how, SPANS));
    CHECK(leftovers(spool) == 0);
}

int main(int argc, char **argv) {
    if (argc == 8 && strcmp(argv[1], "two-copies") == 0)
        return two_copies_child(argv[2], argv[3], argv[4], argv[5], argv[6], atoi(argv[7]));
    if (argc == 5 && strcmp(argv[1], "recover") == 0) return recover_child(argv[2], argv[3], argv[4]);
    if (argc == 6 && strcmp(argv[1], "dlclose") == 0) return dlclose_child(argv[2], argv[3], argv[4], argv[5]);

    const char *dir = argc > 1 ? argv[1] : "build/test_two_copies-spans";
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 2;
    self[n] = 0;
    /* The built library: build/lib beside build/tests. */
    char built[PATH_MAX];
    snprintf(built, sizeof built, "%s", self);
    char *slash = strrchr(built, '/');
    if (!slash) return 2;
    snprintf(slash, sizeof built - (size_t)(slash - built), "/../lib/libspanguard.so");

    mkdir(dir, 0700);
    char lib_a[PATH_MAX + 32], lib_b[PATH_MAX + 32], da[PATH_MAX + 16], db[PATH_MAX + 16];
    snprintf(da, sizeof da, "%s/copy-a", dir);
    snprintf(db, sizeof db, "%s/copy-b", dir);
    mkdir(da, 0700);
    mkdir(db, 0700);
    /* Absolute: the children's dlopen takes a path, never a search. */
    char abs_dir[PATH_MAX];
    if (!realpath(dir, abs_dir)) return 2;
    snprintf(lib_a, sizeof lib_a, "%s/copy-a/libspanguard.so", abs_dir);
    snprintf(lib_b, sizeof lib_b, "%s/copy-b/libspanguard.so", abs_dir);
    copy_file(built, lib_a);
    copy_file(built, lib_b);

    int port = 0;
    int backend = loopback_listener(&port);
    if (serve_each_connection(backend, hold_or_record) != 0) return 2;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/v1/traces", port);

    /* TWO_COPIES_ONLY=<case> runs one case (when looking into one). */
    const char *only = getenv("TWO_COPIES_ONLY");
    const char *cases[] = {"shutdown", "sigterm", "segv", "sigkill"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!only || strcmp(only, cases[i]) == 0) two_copies_case(abs_dir, lib_a, lib_b, endpoint, cases[i]);
    const char *closes[] = {"dlclose-shutdown", "dlclose-running", "dlclose-unhooked"};
    for (size_t i = 0; i < sizeof closes / sizeof *closes; i++)
        if (!only || strcmp(only, closes[i]) == 0) dlclose_case(abs_dir, lib_a, endpoint, closes[i]);
    return check_summary();
}
