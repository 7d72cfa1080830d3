/* fork: a child's tracer starts with the resource and scope attributes its
 * parent's was given at run time (spanguard_tracer_set_resource and
 * spanguard_tracer_set_scope_attributes: what the OpenTelemetry bridges
 * pass for their SDK provider's Resource and their tracers' scopes).
 * Before, the child's replacement tracer had only its config: a prefork
 * server's workers sent their spans under the configured service name,
 * without the provider's attributes or their scope's.
 *
 * The parent's exporter sends a batch after the resource is set, before
 * the fork (it has read what was given by then), so the child's tracer
 * cannot have it from a batch still pending. Every sink line holding a
 * span of the child's must name the given service, its attribute and the
 * scope's attribute, and none the configured service name. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "attrs.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)

/* A span of scope "agent.lib" 1.0. */
static void emit(spanguard_tracer *t, const char *name) {
    spanguard_span_options o;
    CHECK(spanguard_span_options_init_sized(&o, sizeof o) == SPANGUARD_RESULT_OK);
    o.name = name;
    o.name_len = strlen(name);
    o.parent = SPANGUARD_SPAN_NONE;
    o.scope_name = "agent.lib";
    o.scope_name_len = strlen(o.scope_name);
    o.scope_version = "1.0";
    o.scope_version_len = strlen(o.scope_version);
    spanguard_span s;
    CHECK(spanguard_span_begin_ex(t, &o, &s) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_span_end(s) == SPANGUARD_RESULT_OK);
}

/* Sink lines holding `needle`, and of those, how many hold all of
 * `wanted` and none of `unwanted`. */
struct lines_with {
    const char *needle;
    const char *const *wanted;
    int n_wanted;
    const char *unwanted;
    int lines, good;
};

static int line_with(const char *line, void *ctx) {
    struct lines_with *c = ctx;
    if (!strstr(line, c->needle)) return 0;
    c->lines++;
    int ok = !strstr(line, c->unwanted);
    for (int i = 0; i < c->n_wanted; i++) ok = ok && strstr(line, c->wanted[i]);
    if (ok) c->good++;
    else fprintf(stderr, "a line of %s without what was given:\n%.2000s\n", c->needle, line);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/test_fork_resource-spans";
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", dir);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "configured-service";
    cfg.sink_dir = dir;
    cfg.spool_dir = spool;
    spanguard_tracer *t;
    CHECK(spanguard_tracer_new(&cfg, &t) == SPANGUARD_RESULT_OK);
    spanguard_attribute resource[2] = {
        text_attr("service.name", "prefork-agent"),
        text_attr("deployment.environment.name", "staging-7"),
    };
    CHECK(spanguard_tracer_set_resource(t, resource, 2) == SPANGUARD_RESULT_OK);
    spanguard_attribute scope[1] = {text_attr("lib.tier", "gold-3")};
    CHECK(spanguard_tracer_set_scope_attributes(t, S("agent.lib"), S("1.0"), NULL, 0, scope, 1) ==
          SPANGUARD_RESULT_OK);
    emit(t, "before-fork");
    /* Sent: the exporter has read what was given. */
    CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        emit(t, "in-child");
        CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
        _exit(check_summary());
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    emit(t, "after-fork");
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);

    const char *wanted[] = {"\"prefork-agent\"", "\"staging-7\"", "\"gold-3\""};
    const char *names[] = {"\"before-fork\"", "\"in-child\"", "\"after-fork\""};
    for (int i = 0; i < 3; i++) {
        struct lines_with c = {names[i], wanted, 3, "\"configured-service\"", 0, 0};
        CHECK(each_sink_line(dir, line_with, &c) == 0);
        if (c.lines < 1 || c.good != c.lines)
            fprintf(stderr, "%s: %d sink lines, %d with what was given\n", names[i], c.lines, c.good);
        CHECK(c.lines >= 1 && c.good == c.lines);
    }
    return check_summary();
}
