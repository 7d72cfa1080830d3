/* fork while the parent's exporter thread is writing a diagnostic to
 * stderr (here: blocked on a full pipe, as under a supervisor that reads
 * its workers' stderr slowly). Rust's stderr handle is a lock that the
 * writing thread holds, and a forked child has only the forking thread:
 * a lock held at the fork stays held in the child for good. The child's
 * exporter then hung at its first diagnostic, so its flush and shutdown
 * timed out (and its shutdown never returned: it joins that thread), its
 * spans neither sent, spooled nor counted; a fork handler with something
 * to say (a tracer it could not start) would hang the child inside fork().
 *
 * Here the parent's stderr is a pipe filled to the brim, and its exporter
 * fails to reach a closed port; once that thread is seen blocked in
 * write(2) on fd 2, the process forks. The child gives itself a stderr
 * of its own (a file), records a span that fails the same way, and must
 * say so there, then shut down in time with the span spooled. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"
#include "loopback.h"

#define S(str) (str), strlen(str)

/* Whether a thread of this process is inside write(2) on fd 2. */
static int a_thread_writes_to_stderr(void) {
    char want[32];
    snprintf(want, sizeof want, "%ld 0x2 ", (long)SYS_write);
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        found = fgets(line, sizeof line, f) && strncmp(line, want, strlen(want)) == 0;
        fclose(f);
    }
    closedir(d);
    return found;
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_fork_stderr_held-spans";
    char spool[512], errors[512], endpoint[64];
    snprintf(spool, sizeof spool, "%s-spool", scratch);
    snprintf(errors, sizeof errors, "%s.child-stderr", scratch);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", closed_port());
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "fork-stderr-held";
    cfg.endpoint = endpoint;
    cfg.spool_dir = spool;
    cfg.schedule_delay_ms = 10;
    cfg.request_timeout_ms = 500;
    cfg.export_timeout_ms = 1000;
    cfg.install_signal_handlers = 0;
    cfg.log_level = "warn";

    /* stderr: a pipe nobody reads yet, full. */
    int full[2];
    CHECK(pipe(full) == 0);
    fcntl(full[1], F_SETFL, O_NONBLOCK);
    static char filler[65536];
    memset(filler, 'x', sizeof filler);
    while (write(full[1], filler, sizeof filler) > 0 || write(full[1], filler, 1) > 0) {
    }
    fcntl(full[1], F_SETFL, 0);
    int saved = dup(2);
    CHECK(saved >= 0);
    fflush(stderr);
    dup2(full[1], 2);

    spanguard_tracer *t = NULL;
    spanguard_result made = spanguard_tracer_new(&cfg, &t);
    spanguard_span s;
    if (made == SPANGUARD_RESULT_OK && spanguard_span_begin(t, S("in-parent"), SPANGUARD_SPAN_NONE, 0, &s) ==
                                           SPANGUARD_RESULT_OK)
        (void)spanguard_span_end(s);
    /* The exporter fails to send it and says so: blocked on the pipe. */
    int waited = 0;
    while (made == SPANGUARD_RESULT_OK && !a_thread_writes_to_stderr() && waited++ < 2000) {
        struct timespec tick = {0, 5000000L};
        nanosleep(&tick, NULL);
    }
    int blocked = a_thread_writes_to_stderr();

    pid_t pid = fork();
    if (pid == 0) {
        alarm(60); /* a hang is a failure, not a stuck test */
        int file = open(errors, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        dup2(file >= 0 ? file : saved, 2);
        close(full[0]);
        close(full[1]);
        spanguard_span c;
        CHECK_RC(spanguard_span_begin(t, S("in-child"), SPANGUARD_SPAN_NONE, 0, &c), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(c), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_shutdown(t, 20000), SPANGUARD_RESULT_SPOOLED);
        _exit(failures ? 1 : 0);
    }
    /* The parent's stderr back, and its exporter's line read, so it goes on. */
    dup2(saved, 2);
    close(full[1]);
    char sink[4096];
    while (read(full[0], sink, sizeof sink) > 0) {
    }
    close(full[0]);
    CHECK(made == SPANGUARD_RESULT_OK);
    CHECK(blocked);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status)) fprintf(stderr, "the child was ended by signal %d\n", WTERMSIG(status));

    char text[8192] = "";
    FILE *f = fopen(errors, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    CHECK(strstr(text, "spanguard: warn: export to") != NULL);
    if (!strstr(text, "spanguard: warn: export to")) fprintf(stderr, "the child said: [%s]\n", text);

    CHECK_RC(spanguard_shutdown(t, 20000), SPANGUARD_RESULT_SPOOLED);
    spanguard_tracer_free(t);
    /* Neither process's span is lost: both went to the spool. */
    CHECK(files_ending(spool, ".sgspool") >= 2);
    return check_summary();
}
