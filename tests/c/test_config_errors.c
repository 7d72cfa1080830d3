/* What a C program learns when a tracer cannot be made, or is made with
 * some of the environment left out: an error in the struct fails with a
 * sentence naming the field and its bad value; a wrong environment
 * variable is ignored, as the OpenTelemetry SDKs ignore one, named in the
 * success message and in a warning on stderr, and the tracer works. No
 * message shows a header's value; every message fits any buffer it is
 * given. Compiled with -Wall -Wextra -Wpedantic -Werror. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spanguard.h"
#include "sink_count.h"

static int failures = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            failures++;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                          \
    } while (0)

/* What the process wrote to stderr while `stderr_to` was in force. */
static char captured[8192];
static int saved_stderr = -1;
static char capture_path[256];

static void stderr_to_file(void) {
    snprintf(capture_path, sizeof capture_path, "/tmp/sg-config-errors-%d.err", (int)getpid());
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}

static void stderr_back(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(capture_path, "r");
    size_t n = f ? fread(captured, 1, sizeof captured - 1, f) : 0;
    captured[n] = '\0';
    if (f) fclose(f);
    unlink(capture_path);
}

/* Makes a tracer from the environment with `var` set to `value`, records a
 * span named `span` in it, and returns the call's result and message; the
 * tracer is shut down (its warnings on stderr are in `captured`). */
static spanguard_result try_env(const char *var, const char *value, const char *span, char *msg,
                                size_t cap, size_t *len) {
    setenv(var, value, 1);
    spanguard_tracer *t = NULL;
    stderr_to_file();
    spanguard_result rc = spanguard_tracer_new_with_error(NULL, true, &t, msg, cap, len);
    unsetenv(var);
    if (t) {
        spanguard_span s;
        if (spanguard_span_begin(t, span, strlen(span), SPANGUARD_SPAN_NONE, SPANGUARD_KIND_INTERNAL,
                                 &s) == SPANGUARD_RESULT_OK)
            (void)spanguard_span_end(s);
        (void)spanguard_shutdown(t, 5000);
        spanguard_tracer_free(t);
    }
    stderr_back();
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/c-config-spans";
    setenv("SPANGUARD_SINK_DIR", dir, 1);
    setenv("SPANGUARD_SIGNAL_HANDLERS", "false", 1);
    char msg[SPANGUARD_ERROR_MESSAGE_SIZE];
    size_t len = 0;

    /* A process configured for the official SDKs' gRPC exporter still gets
     * a tracer (spanguard sends OTLP over HTTP): the variable is ignored,
     * named with its value in the message and on stderr, and spans arrive. */
    CHECK(try_env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "after.grpc", msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_OK);
    const char *want = "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json";
    CHECK(strncmp(msg, want, strlen(want)) == 0);
    CHECK(strstr(msg, "; ignored") != NULL);
    CHECK(len == strlen(msg));
    CHECK(strstr(captured, "spanguard: warn: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf") !=
          NULL);
    CHECK(count_in_dir(dir, "\"after.grpc\"") == 1);

    /* OTEL_TRACES_EXPORTER=none, left from an SDK's setup, turns off an
     * exporter that SDK would set up by itself, not spanguard: said once,
     * in the message and on stderr, and the span still arrives. */
    CHECK(try_env("OTEL_TRACES_EXPORTER", "none", "after.none", msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_OK);
    const char *none = "OTEL_TRACES_EXPORTER=none: spanguard records and exports all the same";
    CHECK(strncmp(msg, none, strlen(none)) == 0);
    const char *said = strstr(captured, "spanguard: warn: OTEL_TRACES_EXPORTER=none: spanguard records");
    CHECK(said != NULL);
    CHECK(said == NULL || strstr(said + strlen("spanguard: warn: OTEL_TRACES_EXPORTER"), "OTEL_TRACES_EXPORTER") == NULL);
    CHECK(count_in_dir(dir, "\"after.none\"") == 1);

    /* Bytes in the environment, MiB in the struct: the message says so. */
    CHECK(try_env("SPANGUARD_SPOOL_MAX_BYTES", "64MiB", "after.spool", msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_OK);
    CHECK(strstr(msg, "SPANGUARD_SPOOL_MAX_BYTES=64MiB: ") == msg);
    CHECK(strstr(msg, "bytes") && strstr(msg, "spool_max_mib is in MiB"));

    /* A header's value may be an API key: named, never shown, here or on
     * stderr. */
    CHECK(try_env("OTEL_EXPORTER_OTLP_HEADERS", "api-key=sk-live-123,oops", "after.headers", msg,
                  sizeof msg, &len) == SPANGUARD_RESULT_OK);
    CHECK(strstr(msg, "OTEL_EXPORTER_OTLP_HEADERS") == msg);
    CHECK(strstr(msg, "sk-live-123") == NULL);
    CHECK(strstr(captured, "OTEL_EXPORTER_OTLP_HEADERS") != NULL);
    CHECK(strstr(captured, "sk-live-123") == NULL);

    /* A small buffer gets the start, NUL-terminated; the length says how
     * much there was. */
    const char *queue = "OTEL_BSP_MAX_QUEUE_SIZE=0: must be at least 1; ignored";
    char small[16];
    memset(small, 'x', sizeof small);
    CHECK(try_env("OTEL_BSP_MAX_QUEUE_SIZE", "0", "after.queue", small, sizeof small, &len) ==
          SPANGUARD_RESULT_OK);
    CHECK(strcmp(small, "OTEL_BSP_MAX_QU") == 0);
    CHECK(len == strlen(queue));
    /* No buffer at all: only the length. */
    CHECK(try_env("OTEL_BSP_MAX_QUEUE_SIZE", "0", "after.queue", NULL, 0, &len) ==
          SPANGUARD_RESULT_OK);
    CHECK(len == strlen(queue));
    CHECK(count_in_dir(dir, "\"after.queue\"") == 2);

    /* A config field: an error, named as the struct names it. */
    spanguard_config cfg;
    CHECK(spanguard_config_init(&cfg, sizeof cfg) == SPANGUARD_RESULT_OK);
    cfg.install_signal_handlers = 0;
    cfg.sink_dir = dir;
    cfg.protocol = 7;
    spanguard_tracer *t = NULL;
    CHECK(spanguard_tracer_new_with_error(&cfg, false, &t, msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_INVALID_ARGUMENT);
    CHECK(t == NULL);
    CHECK(strstr(msg, "spanguard_config.protocol=7: ") == msg);
    cfg.protocol = SPANGUARD_PROTOCOL_HTTP_JSON;
    cfg.endpoint = "localhost:4318";
    CHECK(spanguard_tracer_new_with_error(&cfg, false, &t, msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(strstr(msg, "endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=localhost:4318: ") == msg);
    /* With the environment too: the struct's error, whatever it holds. */
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", 1);
    CHECK(spanguard_tracer_new_with_error(&cfg, true, &t, msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(t == NULL);
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");

    /* The plain calls: the struct's error fails; the environment's does not. */
    CHECK(spanguard_tracer_new(&cfg, &t) == SPANGUARD_RESULT_INVALID_CONFIG);
    cfg.endpoint = NULL;
    cfg.service_name = "config-errors-test";
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    stderr_to_file();
    CHECK(spanguard_tracer_new_from_env(&cfg, &t) == SPANGUARD_RESULT_OK);
    unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
    CHECK(t != NULL);
    if (t) {
        CHECK(spanguard_shutdown(t, 5000) == SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);
    }
    stderr_back();
    CHECK(strstr(captured, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc") != NULL);

    /* Success with nothing ignored: an empty message, and a tracer that
     * works. */
    strcpy(msg, "stale");
    CHECK(spanguard_tracer_new_with_error(&cfg, true, &t, msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_OK);
    CHECK(t != NULL && msg[0] == '\0' && len == 0);
    spanguard_span s;
    CHECK(spanguard_span_begin(t, "made.after.errors", strlen("made.after.errors"),
                               SPANGUARD_SPAN_NONE, SPANGUARD_KIND_INTERNAL, &s) ==
          SPANGUARD_RESULT_OK);
    CHECK(spanguard_span_end(s) == SPANGUARD_RESULT_OK);
    CHECK(spanguard_shutdown(t, 5000) == SPANGUARD_RESULT_OK);
    spanguard_tracer_free(t);
    CHECK(count_in_dir(dir, "\"made.after.errors\"") == 1);

    if (failures) {
        fprintf(stderr, "test_config_errors: %d checks failed\n", failures);
        return 1;
    }
    printf("test_config_errors: all checks passed\n");
    return 0;
}
