/* Spans recovered after a process died arrive under the resource its live
 * spans were sent with, also when that resource was set at run time
 * (spanguard_tracer_set_resource: what the OpenTelemetry bridges pass for
 * their SDK provider's Resource).
 *
 * A child starts a tracer named "own-service", records ended spans and
 * one open span (nothing exported: a minute's schedule delay), sets the
 * provider's resource, and dies: with the flight recorder on, by SIGKILL
 * (nothing of its own runs); with it off, by SIGSEGV (the crash handler
 * writes a crash dump). A tracer started afterwards recovers its spans
 * into the file sink, where each of their lines must name the provider's
 * service and attributes, and none the tracer's own name.
 *
 * A service name longer than the header's 256-byte field arrives whole
 * (it was cut there, with nothing said); one longer than the header's
 * whole room arrives cut, counted in values_truncated. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "attrs.h"
#include "check.h"
#include "idle_tracer.h"
#include "sink_count.h"

#define SPANS 10

static char sink[512], spool[512];
/* The provider's service name, set in main(). */
static char service[4096];

/* The error callback's SPANS_RECOVERED events, and whether each said
 * which process, how it ended and the file. */
static int recovered_events, recovered_said_well;

static void on_event(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)user_data;
    if (event != SPANGUARD_EVENT_SPANS_RECOVERED) return;
    recovered_events++;
    char text[4096];
    snprintf(text, sizeof text, "%.*s", (int)len, message);
    if (strstr(text, " of process ") && strstr(text, "(ended ") && strstr(text, ") recovered from ") &&
        strstr(text, spool))
        recovered_said_well++;
}

/* Nothing is exported before the death. */
static spanguard_tracer *start_tracer(int flight, int handlers) {
    spanguard_config cfg = idle_tracer_config("own-service", sink, spool, flight);
    cfg.install_signal_handlers = (uint32_t)handlers;
    return tracer_or_exit(&cfg);
}

/* In the child: records, sets the provider's resource, says so on `ready`
 * and dies as `flight` says. */
static void record_then_die(const char *tag, int flight, int ready) {
    spanguard_tracer *t = start_tracer(flight, !flight);
    record_ended_and_open(t, tag, SPANS);
    spanguard_attribute resource[3] = {
        text_attr("service.name", service),
        text_attr("deployment.environment.name", "prod"),
        text_attr("telemetry.sdk.language", "python"),
    };
    if (spanguard_tracer_set_resource(t, resource, 3) != SPANGUARD_RESULT_OK) _exit(3);
    if (!flight) raise(SIGSEGV); /* the crash handler dumps, then dies */
    if (write(ready, "r", 1) != 1) _exit(3);
    for (;;) pause();
}

static void record_and_die(const char *tag, int flight) {
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        record_then_die(tag, flight, ready[1]);
    }
    close(ready[1]);
    if (flight) {
        char byte;
        CHECK(read(ready[0], &byte, 1) == 1);
        kill(pid, SIGKILL);
    }
    close(ready[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == (flight ? SIGKILL : SIGSEGV));
}

/* Lines of the sink holding spans of `tag`, and of those, how many also
 * hold `needle`. */
static void lines_with(const char *tag, const char *needle, long *tagged, long *both) {
    *tagged = *both = 0;
    DIR *d = opendir(sink);
    CHECK(d != NULL);
    struct dirent *e;
    static char line[2 << 20];
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".jsonl")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", sink, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            if (strstr(line, tag)) {
                (*tagged)++;
                if (strstr(line, needle)) (*both)++;
            }
        fclose(f);
    }
    closedir(d);
}

/* `name` is the service name the spans of `tag` must arrive under. */
static void check_recovered(const char *tag, const char *name) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s-", tag);
    /* Every span arrived: each name at least once. A later child's tracer
     * recovers this file at its start and may be killed (the next test
     * child's death) between a batch's delivery and its marks in the file:
     * that batch is sent again by the next recoverer (at least once, as
     * README says), so a name may arrive twice, never more. */
    for (int i = 0; i <= SPANS; i++) {
        char quoted[96];
        if (i < SPANS) snprintf(quoted, sizeof quoted, "\"%s-%d\"", tag, i);
        else snprintf(quoted, sizeof quoted, "\"%s-open\"", tag);
        long n = count_in_dir(sink, quoted);
        CHECK(n == 1 || n == 2);
    }
    CHECK(count_in_dir(sink, needle) <= 2 * (SPANS + 1));
    long tagged, both;
    static char named[4200];
    snprintf(named, sizeof named, "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"%s\"}}", name);
    lines_with(needle, named, &tagged, &both);
    CHECK(tagged > 0 && both == tagged);
    lines_with(needle, "{\"key\":\"deployment.environment.name\",\"value\":{\"stringValue\":\"prod\"}}", &tagged,
               &both);
    CHECK(both == tagged);
    lines_with(needle, "{\"key\":\"telemetry.sdk.language\",\"value\":{\"stringValue\":\"python\"}}", &tagged,
               &both);
    CHECK(both == tagged);
    lines_with(needle, "own-service", &tagged, &both);
    CHECK(both == 0);
}

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : "build/test_recovered_resource-spans";
    snprintf(sink, sizeof sink, "%s", base);
    snprintf(spool, sizeof spool, "%s-spool", base);
    snprintf(service, sizeof service, "checkout-agent");
    record_and_die("flight", 1);
    record_and_die("crash", 0);
    /* 600 bytes: over the header's field, within its resource text. */
    static char long_name[601];
    memset(long_name, 'l', 600);
    snprintf(service, sizeof service, "%s", long_name);
    record_and_die("longflight", 1);
    record_and_die("longcrash", 0);
    /* 3000 bytes: more than the whole header holds. */
    memset(service, 'h', 3000);
    service[3000] = 0;
    record_and_die("huge", 1);
    spanguard_tracer *t = start_tracer(0, 0);
    /* Set after the tracer started, as every program sets it: what its
     * first look recovered (the last child's file at least) is told. */
    CHECK(spanguard_set_error_callback(t, on_event, NULL) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_flush(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    CHECK(spanguard_stats(t, &c) == SPANGUARD_RESULT_OK);
    CHECK(c.values_truncated == 1); /* the huge name, once for its file */
    CHECK(spanguard_shutdown(t, 10000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    CHECK(recovered_events >= 1 && recovered_said_well == recovered_events);
    CHECK(c.recovered_spans > 0);
    check_recovered("flight", "checkout-agent");
    check_recovered("crash", "checkout-agent");
    check_recovered("longflight", long_name);
    check_recovered("longcrash", long_name);
    service[256] = 0;
    check_recovered("huge", service);
    return check_summary();
}
