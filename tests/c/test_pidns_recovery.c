/* A spool directory shared across PID namespaces (a container's volume,
 * read from the host or a sibling container). The writer runs as pid 2 of
 * its own PID namespace, records with the flight recorder on, raw-forks a
 * child that lives on without exec (a runtime forking without libc: no
 * fork handler closes the descriptor that holds the flight file) and is
 * SIGKILLed. Here, pid 2 is another, live process (kthreadd on a host),
 * and the flock on the file was taken by a pid that is not 2 here: the
 * dead writer looked alive by its pid, and its spans were not recovered
 * while the child lived (a daemon: for good).
 *
 * While the writer lives, a tracer here takes none of its spans (its file
 * is not recovered from a live writer); once it is dead, a tracer started
 * here recovers each ended span once, the open one once and marked
 * interrupted, while the child still lives, and nothing again after. Needs
 * a PID namespace of its own: root, or an unprivileged user namespace;
 * where neither may be made, the test says so and passes (exit 0, "SKIP"). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "idle_tracer.h"
#include "sink_count.h"

#define SPANS 20

static char sink[512], spool[512];

static spanguard_tracer *start_tracer(int flight) {
    spanguard_config cfg = idle_tracer_config("pidns-recovery", sink, spool, flight);
    return tracer_or_exit(&cfg);
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Makes the next child of this (single-threaded) process pid 1 of a new
 * PID namespace: as root directly, otherwise inside a user namespace
 * that maps this user to its root, so that the files made there are
 * this user's. -1 when this machine allows neither. */
static int unshare_pid_namespace(void) {
    if (unshare(CLONE_NEWPID) == 0) return 0;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) return -1;
    char map[64];
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) != 0) return -1;
    (void)write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
    return write_file("/proc/self/gid_map", map);
}

/* The writer, pid 2 of its namespace: records, raw-forks a child that
 * lives until `hold` reaches end of file, says so on `ready` (with its pid
 * here), and is SIGKILLed when `die` says. */
static void writer(int ready, int hold, int die) {
    spanguard_tracer *t = start_tracer(1);
    record_ended_and_open(t, "ns", SPANS);
    /* No libc fork: the kernel's, as a runtime without libc makes one. */
    long child = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (child == 0) {
        char byte;
        close(ready);
        close(die);
        while (read(hold, &byte, 1) > 0) {
        }
        _exit(0);
    }
    pid_t me = getpid();
    if (child < 0 || write(ready, &me, sizeof me) != (ssize_t)sizeof me) _exit(3);
    char byte;
    if (read(die, &byte, 1) != 1) _exit(3);
    kill(me, SIGKILL);
    for (;;) pause();
}

/* Pid 1 of the namespace: starts the writer, says on `dead` how it ended,
 * and lives (the namespace with it, the writer's child too) until `hold`
 * reaches end of file. */
static void namespace_init(int ready, int hold, int die, int dead) {
    pid_t w = fork();
    if (w == 0) {
        close(dead);
        writer(ready, hold, die);
    }
    close(ready);
    close(die);
    int status = 0;
    if (w < 0 || waitpid(w, &status, 0) != w) _exit(3);
    if (write(dead, &status, sizeof status) != (ssize_t)sizeof status) _exit(3);
    char byte;
    while (read(hold, &byte, 1) > 0) {
    }
    while (wait(NULL) > 0) {
    }
    _exit(0);
}

static long arrived_at_all(void) { return count_in_dir(sink, "\"name\":\"ns-"); }

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_pidns_recovery-spans";
    snprintf(sink, sizeof sink, "%s", dir);
    snprintf(spool, sizeof spool, "%s-spool", dir);

    int ready[2], hold[2], die[2], dead[2], entered[2];
    if (pipe(ready) != 0 || pipe(hold) != 0 || pipe(die) != 0 || pipe(dead) != 0 || pipe(entered) != 0)
        return 2;
    pid_t outer = fork();
    if (outer == 0) {
        close(ready[0]);
        close(hold[1]);
        close(die[1]);
        close(dead[0]);
        close(entered[0]);
        char ok = unshare_pid_namespace() == 0 ? 'y' : 'n';
        if (write(entered[1], &ok, 1) != 1 || ok != 'y') _exit(0);
        close(entered[1]);
        pid_t init = fork();
        if (init == 0) namespace_init(ready[1], hold[0], die[0], dead[1]);
        int status = 0;
        _exit(init > 0 && waitpid(init, &status, 0) == init && WIFEXITED(status) ? WEXITSTATUS(status) : 3);
    }
    close(ready[1]);
    close(hold[0]);
    close(die[0]);
    close(dead[1]);
    close(entered[1]);
    char ok = 'n';
    if (read(entered[0], &ok, 1) != 1 || ok != 'y') {
        printf("SKIP test_pidns_recovery: no PID namespace may be made here (neither root nor a user namespace)\n");
        waitpid(outer, NULL, 0);
        return 0;
    }
    pid_t in_namespace = 0;
    CHECK(read(ready[0], &in_namespace, sizeof in_namespace) == (ssize_t)sizeof in_namespace);
    CHECK(in_namespace == 2);

    /* The writer lives: a tracer here takes none of its spans. */
    spanguard_tracer *t = start_tracer(0);
    CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    CHECK(arrived_at_all() == 0);

    CHECK(write(die[1], "k", 1) == 1);
    int status = 0;
    CHECK(read(dead[0], &status, sizeof status) == (ssize_t)sizeof status);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    t = start_tracer(0);
    CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
    /* Recovered although pid 2 lives here and the writer's child still
     * holds its file. */
    CHECK(ended_and_open_arrived_once(sink, "ns", SPANS) == SPANS + 1);

    close(hold[1]); /* the child and the namespace end */
    CHECK(waitpid(outer, &status, 0) == outer && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);

    CHECK(ended_and_open_arrived_once(sink, "ns", SPANS) == SPANS + 1);
    CHECK(count_in_dir(sink, "\"spanguard.interrupted\"") == 1);
    CHECK(files_in_dir(spool, "") == 0);
    return check_summary();
}
