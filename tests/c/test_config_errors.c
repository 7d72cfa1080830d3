/* What a C program learns when a tracer cannot be made: the sentence
 * spanguard_tracer_new_with_error writes names the variable or field and
 * its bad value, never a header's value, fits any buffer it is given, and
 * is empty on success. Compiled with -Wall -Wextra -Wpedantic -Werror. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Makes a tracer from the environment and returns its message; the tracer,
 * if one was made, is shut down and freed. */
static spanguard_result try_env(const char *var, const char *value, char *msg, size_t cap,
                                size_t *len) {
    setenv(var, value, 1);
    spanguard_tracer *t = NULL;
    spanguard_result rc = spanguard_tracer_new_with_error(NULL, true, &t, msg, cap, len);
    unsetenv(var);
    if (t) {
        (void)spanguard_shutdown(t, 1000);
        spanguard_tracer_free(t);
    }
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/c-config-spans";
    setenv("SPANGUARD_SINK_DIR", dir, 1);
    setenv("SPANGUARD_SIGNAL_HANDLERS", "false", 1);
    char msg[SPANGUARD_ERROR_MESSAGE_SIZE];
    size_t len = 0;

    /* The example, word for word at its start. */
    CHECK(try_env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_INVALID_CONFIG);
    const char *want = "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json";
    CHECK(strncmp(msg, want, strlen(want)) == 0);
    CHECK(len == strlen(msg));

    /* Bytes in the environment, MiB in the struct: the message says so. */
    CHECK(try_env("SPANGUARD_SPOOL_MAX_BYTES", "64MiB", msg, sizeof msg, &len) ==
          SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(strstr(msg, "SPANGUARD_SPOOL_MAX_BYTES=64MiB: ") == msg);
    CHECK(strstr(msg, "bytes") && strstr(msg, "spool_max_mib is in MiB"));

    /* A header's value may be an API key: named, never shown. */
    CHECK(try_env("OTEL_EXPORTER_OTLP_HEADERS", "api-key=sk-live-123,oops", msg, sizeof msg,
                  &len) == SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(strstr(msg, "OTEL_EXPORTER_OTLP_HEADERS") == msg);
    CHECK(strstr(msg, "sk-live-123") == NULL);

    /* A small buffer gets the start, NUL-terminated; the length says how
     * much there was. */
    char small[16];
    memset(small, 'x', sizeof small);
    CHECK(try_env("OTEL_BSP_MAX_QUEUE_SIZE", "0", small, sizeof small, &len) ==
          SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(strcmp(small, "OTEL_BSP_MAX_QU") == 0);
    CHECK(len == strlen("OTEL_BSP_MAX_QUEUE_SIZE=0: must be at least 1"));
    /* No buffer at all: only the length. */
    CHECK(try_env("OTEL_BSP_MAX_QUEUE_SIZE", "0", NULL, 0, &len) ==
          SPANGUARD_RESULT_INVALID_CONFIG);
    CHECK(len == strlen("OTEL_BSP_MAX_QUEUE_SIZE=0: must be at least 1"));

    /* A config field: named as the struct names it. */
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

    /* The plain calls fail the same way, with the same codes. */
    CHECK(spanguard_tracer_new(&cfg, &t) == SPANGUARD_RESULT_INVALID_CONFIG);
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    CHECK(spanguard_tracer_new_from_env(NULL, &t) == SPANGUARD_RESULT_INVALID_CONFIG);
    unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");

    /* Success: an empty message, and a tracer that works. */
    cfg.endpoint = NULL;
    cfg.service_name = "config-errors-test";
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
