/* A program in C (as a Node tool or a Go helper would be) started by an
 * instrumented Python agent: `opentelemetry-instrument`'s distro set
 * OTEL_EXPORTER_OTLP_PROTOCOL=grpc in the agent when the user set none,
 * and the wheel named it in _SPANGUARD_DISTRO_SET=NAME=value for the
 * agent's children. The child inherits both. Only the wheel read the
 * marker: this program warned of grpc, a setting nobody made. The library
 * now reads it: the distro's grpc is read as unset, with no warning, and
 * spans go as http/protobuf; a marker naming another value, a value set
 * since, or no marker leaves grpc the user's, warned of.
 *
 * The backend is a loopback OTLP/HTTP server that keeps each request
 * (headers and body, compression off) to find a span and its
 * Content-Type. An alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "receiver.h"

/* What the backend received: requests (headers and body, which may hold
 * NULs), each after its length, one after another. */
static pthread_mutex_t received_lock = PTHREAD_MUTEX_INITIALIZER;
static char received[4 << 20];
static size_t received_len;

static void *serve_connection(void *arg) {
    int fd = (int)(long)arg;
    static __thread char buf[1 << 20];
    long length;
    size_t head;
    while ((length = read_request(fd, buf, sizeof buf, &head)) >= 0) {
        pthread_mutex_lock(&received_lock);
        size_t whole = (size_t)length;
        if (received_len + sizeof whole + whole < sizeof received) {
            memcpy(received + received_len, &whole, sizeof whole); /* its length first */
            memcpy(received + received_len + sizeof whole, buf, whole);
            received_len += sizeof whole + whole;
        }
        pthread_mutex_unlock(&received_lock);
        const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if (write(fd, answer, sizeof answer - 1) != (ssize_t)(sizeof answer - 1)) break;
    }
    close(fd);
    return NULL;
}

/* The Content-Type of the request that carried `span` ("" when none did;
 * "two" when more than one). */
static const char *content_type_of(const char *span) {
    static char found[128];
    int seen = 0;
    found[0] = '\0';
    pthread_mutex_lock(&received_lock);
    for (size_t at = 0; at < received_len;) {
        size_t whole;
        memcpy(&whole, received + at, sizeof whole);
        const char *request = received + at + sizeof whole;
        const char *head_end = memmem(request, whole, "\r\n\r\n", 4);
        if (head_end && memmem(head_end, whole - (size_t)(head_end - request), span, strlen(span))) {
            seen++;
            for (const char *line = request; line < head_end; line = strstr(line, "\r\n") + 2)
                if (strncasecmp(line, "content-type:", 13) == 0) {
                    const char *v = line + 13;
                    while (*v == ' ') v++;
                    size_t n = (size_t)(strstr(v, "\r\n") - v);
                    if (n >= sizeof found) n = sizeof found - 1;
                    memcpy(found, v, n);
                    found[n] = '\0';
                }
        }
        at += sizeof whole + whole;
    }
    pthread_mutex_unlock(&received_lock);
    return seen > 1 ? "two" : found;
}

/* What the process wrote to stderr while the tracer was made and shut down. */
static char captured[8192];

/* Makes a tracer from the environment, with OTEL_EXPORTER_OTLP_PROTOCOL
 * = `protocol` and _SPANGUARD_DISTRO_SET = `marker` (NULL: unset), records
 * a span named `span`, shuts it down; its message is in `msg`, its stderr
 * in `captured`. */
static void run(const char *protocol, const char *marker, const char *span, char *msg, size_t cap) {
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol, 1);
    if (marker)
        setenv("_SPANGUARD_DISTRO_SET", marker, 1);
    else
        unsetenv("_SPANGUARD_DISTRO_SET");
    char path[256];
    snprintf(path, sizeof path, "/tmp/sg-distro-marker-%d.err", (int)getpid());
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    spanguard_tracer *t = NULL;
    size_t len = 0;
    CHECK_RC(spanguard_tracer_new_with_error(NULL, true, &t, msg, cap, &len), SPANGUARD_RESULT_OK);
    if (t) {
        record_span(t, span);
        CHECK_RC(spanguard_shutdown(t, 5000), SPANGUARD_RESULT_OK);
        spanguard_tracer_free(t);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(captured, 1, sizeof captured - 1, f) : 0;
    captured[n] = '\0';
    if (f) fclose(f);
    unlink(path);
    unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
    unsetenv("_SPANGUARD_DISTRO_SET");
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    char spool[512];
    snprintf(spool, sizeof spool, "%s-spool", argc > 1 ? argv[1] : "build/test_distro_marker-spans");
    setenv("SPANGUARD_SPOOL_DIR", spool, 1);
    int port;
    int listener = loopback_listener(&port);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    if (serve_each_connection(listener, serve_connection) != 0) return 2;
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint, 1);
    setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none", 1);
    setenv("SPANGUARD_SIGNAL_HANDLERS", "false", 1);
    setenv("OTEL_SERVICE_NAME", "distro-marker-test", 1);
    char msg[SPANGUARD_ERROR_MESSAGE_SIZE];
    const char *protobuf = "application/x-protobuf";

    /* The distro's grpc, named so: no word, and http/protobuf sent. */
    run("grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "span.distro", msg, sizeof msg);
    CHECK(msg[0] == '\0');
    CHECK(strstr(captured, "OTEL_EXPORTER_OTLP_PROTOCOL") == NULL);
    CHECK(strcmp(content_type_of("span.distro"), protobuf) == 0);
    if (msg[0] || captured[0]) fprintf(stderr, "said: %s\n%s\n", msg, captured);

    /* Among other entries, with blanks, as a parent may have written it. */
    run("grpc", "OTHER=1, OTEL_EXPORTER_OTLP_PROTOCOL=grpc ,", "span.among", msg, sizeof msg);
    CHECK(msg[0] == '\0');
    CHECK(strstr(captured, "OTEL_EXPORTER_OTLP_PROTOCOL") == NULL);
    CHECK(strcmp(content_type_of("span.among"), protobuf) == 0);

    /* The marker names another value than the variable holds: grpc is
     * the user's (set since the distro's), warned of, protobuf sent. */
    run("grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json", "span.other", msg, sizeof msg);
    CHECK(strstr(msg, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json") == msg);
    CHECK(strstr(captured, "spanguard: warn: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf") != NULL);
    CHECK(strcmp(content_type_of("span.other"), protobuf) == 0);

    /* No marker: the user's grpc, warned of. */
    run("grpc", NULL, "span.unmarked", msg, sizeof msg);
    CHECK(strstr(msg, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json") == msg);
    CHECK(strstr(captured, "spanguard: warn: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf") != NULL);
    CHECK(strcmp(content_type_of("span.unmarked"), protobuf) == 0);

    /* The distro's grpc was named, and the variable set since to
     * http/json: that is the user's, and used. */
    run("http/json", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "span.json", msg, sizeof msg);
    CHECK(msg[0] == '\0');
    CHECK(strstr(captured, "OTEL_EXPORTER_OTLP_PROTOCOL") == NULL);
    CHECK(strcmp(content_type_of("span.json"), "application/json") == 0);

    return check_summary();
}
