/* A forked child gets a tracer of its own, made at its first use (here:
 * its first begin). When that cannot be made (here: the child has no
 * address space left for it), the child's spans are not recorded, and
 * that must be said once on the child's stderr: otherwise they vanish
 * with nothing but "not recorded" codes to show for it, no counter and no
 * message. The parent's tracer goes on. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

#define S(str) (str), strlen(str)

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_fork_no_tracer-spans";
    char sink[512], spool[512], errors[512];
    snprintf(sink, sizeof sink, "%s/spans", scratch);
    snprintf(spool, sizeof spool, "%s/spool", scratch);
    snprintf(errors, sizeof errors, "%s.child-stderr", scratch);
    struct spanguard_config cfg;
    CHECK_RC(spanguard_config_init(&cfg, sizeof cfg), SPANGUARD_RESULT_OK);
    cfg.sink_dir = sink;
    cfg.spool_dir = spool;
    cfg.install_signal_handlers = 0;
    struct spanguard_tracer *tracer = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &tracer), SPANGUARD_RESULT_OK);
    if (!tracer) return check_summary();

    /* Address space for what this process has, not for a second tracer
     * (its payload pool alone reserves 256 MiB). */
    FILE *statm = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    CHECK(statm && fscanf(statm, "%lu", &pages) == 1);
    if (statm) fclose(statm);
    struct rlimit limit = {pages * (unsigned long)sysconf(_SC_PAGESIZE) + (64ul << 20), 0};
    limit.rlim_max = limit.rlim_cur;
    CHECK(setrlimit(RLIMIT_AS, &limit) == 0);

    /* The child's stderr, from the fork handler on, goes to a file. */
    int saved = dup(2);
    int file = open(errors, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(saved >= 0 && file >= 0);
    fflush(stderr);
    dup2(file, 2);
    pid_t child = fork();
    if (child == 0) {
        spanguard_span span;
        spanguard_result rc = spanguard_span_begin(tracer, S("in the child"), 0, 0, &span);
        _exit(rc == SPANGUARD_RESULT_OK ? 3 : 0);
    }
    dup2(saved, 2);
    close(saved);
    close(file);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    char text[4096] = "";
    FILE *f = fopen(errors, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    char want[128];
    snprintf(want, sizeof want, "spanguard: error: this forked process (pid %d) could not start its tracer",
             (int)child);
    CHECK(strstr(text, want) != NULL);
    if (!strstr(text, want)) fprintf(stderr, "the child said: %s\n", text);

    /* The parent's tracer goes on. */
    spanguard_span span;
    CHECK_RC(spanguard_span_begin(tracer, S("in the parent"), 0, 0, &span), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_span_end(span), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(tracer, 5000), SPANGUARD_RESULT_OK);
    spanguard_tracer_free(tracer);
    return check_summary();
}
