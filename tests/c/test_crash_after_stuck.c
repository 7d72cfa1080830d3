/* A shutdown that left its exporter stuck (TIMEOUT) writes what the
 * exporter had not dealt with to the crash files at once: the spans in its
 * slots to the slot dump, the batch it was sending to a spool file. When
 * the process then crashed before spanguard_tracer_free (the tracer still
 * known to the crash handler), the handler dumped the same tracer again,
 * appending to the files already published: the slot dump held two dumps
 * (its header rewritten with the second's count), and the batch's spool
 * file two copies of the batch, which the spool's reader took for torn and
 * set aside: that batch's spans never arrived. Now a tracer whose dump is
 * on disk is not dumped again (a tracer shut down records nothing more,
 * so a second dump could only repeat the first).
 *
 * Two children, each then sent to a loopback receiver by a tracer started
 * on its spool: one whose exporter is stuck in the error callback after
 * the batch it sent was spooled (what is left is in its slots), one whose
 * exporter is stuck in the callback told of the first part of a batch
 * over the spool's cap, spooled in parts (the batch is in flight). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "loopback.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define AFTER 3
/* The "parts" child's batch: spans with values this long, over the
 * spool's cap of 1 MiB together, so that it is spooled in parts. */
#define BIG 4
#define BIG_VALUE (300 * 1024)

/* --- a loopback OTLP receiver: answers 200 to every request, keeps the
 * bodies (uncompressed protobuf: span names appear as they are) --- */

static char *received;
static size_t received_len;
static pthread_mutex_t received_lock = PTHREAD_MUTEX_INITIALIZER;

static int read_full(int fd, char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n <= 0) return -1;
        buf += n, len -= (size_t)n;
    }
    return 0;
}

/* One connection's requests, until the client closes it. */
static void serve(int fd) {
    for (;;) {
        char head[8192];
        size_t len = 0;
        while (len < sizeof head - 1 && !(len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)) {
            if (read(fd, head + len, 1) != 1) return;
            len++;
        }
        head[len] = '\0';
        const char *cl = strcasestr(head, "content-length:");
        size_t body_len = cl ? strtoul(cl + 15, NULL, 10) : 0;
        char *body = malloc(body_len + 1);
        if (!body || read_full(fd, body, body_len) != 0) {
            free(body);
            return;
        }
        pthread_mutex_lock(&received_lock);
        char *grown = realloc(received, received_len + body_len + 1);
        if (grown) {
            received = grown;
            memcpy(received + received_len, body, body_len);
            received_len += body_len;
        }
        pthread_mutex_unlock(&received_lock);
        free(body);
        const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if (write(fd, ok, strlen(ok)) != (ssize_t)strlen(ok)) return;
    }
}

static void *receiver(void *arg) {
    int listener = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) return NULL;
        serve(fd);
        close(fd);
    }
}

/* Starts the receiver; its port. */
/* A loopback socket bound and not listened on: the backend is down (a
 * connection is refused) until `start_receiver_on` listens on it, at the
 * same URL: what a dead process left waits for a sender set up like it. */
static int bound_socket(int *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        exit(2);
    *port = ntohs(a.sin_port);
    return s;
}

static void start_receiver_on(int s) {
    if (listen(s, 16) != 0) exit(2);
    pthread_t t;
    if (pthread_create(&t, NULL, receiver, (void *)(intptr_t)s) != 0) exit(2);
    pthread_detach(t);
}

/* How often `name` occurs in what the receiver got. */
static long received_count(const char *name) {
    long n = 0;
    size_t k = strlen(name);
    pthread_mutex_lock(&received_lock);
    for (size_t i = 0; i + k <= received_len; i++)
        if (memcmp(received + i, name, k) == 0) n++;
    pthread_mutex_unlock(&received_lock);
    return n;
}

/* --- the children --- */

/* The callback tells `entered` it runs, then waits on `never`, which
 * nobody writes: at the first event told ("callback"), or at the first
 * batch spooled ("parts": the first part of the batch spooled in parts,
 * while the batch is still in flight). */
static int entered[2], never[2];
static int stuck_on_parts;

static void stuck_callback(spanguard_event event, const char *message, size_t len, void *user_data) {
    (void)message, (void)len, (void)user_data;
    static _Atomic int stuck;
    if (stuck_on_parts && event != SPANGUARD_EVENT_BATCH_SPOOLED) return;
    if (stuck++ > 0) return;
    char byte = 'x';
    if (write(entered[1], &byte, 1) != 1) _exit(3);
    (void)!read(never[0], &byte, 1);
}

static void record(spanguard_tracer *t, const char *name, size_t value_len) {
    static char value[BIG_VALUE];
    spanguard_span s;
    CHECK_RC(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
    if (value_len > 0) {
        /* Not all alike, so no encoder finds it compressible by accident. */
        for (size_t i = 0; i < value_len; i++) value[i] = (char)('a' + (i * 7 + i / 13) % 26);
        CHECK_RC(spanguard_span_set_string(s, S("llm.prompt"), value, value_len), SPANGUARD_RESULT_OK);
    }
    CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
}

/* The child: a shutdown that answers TIMEOUT, its exporter stuck (`how`:
 * "callback" or "parts"), then SIGSEGV before the tracer is freed. Exits
 * 5 when a check failed. */
static void child(const char *spool, const char *endpoint, const char *how) {
    failures = 0; /* this child's own */
    stuck_on_parts = strcmp(how, "parts") == 0;
    CHECK(pipe(entered) == 0 && pipe(never) == 0);
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "crash-after-stuck";
    cfg.endpoint = endpoint;
    cfg.spool_dir = spool;
    cfg.compression = SPANGUARD_COMPRESSION_NONE;
    cfg.schedule_delay_ms = stuck_on_parts ? 300 : 10;
    cfg.export_timeout_ms = 100;
    cfg.request_timeout_ms = 200;
    cfg.spool_max_mib = 1;
    cfg.max_request_bytes = 4 << 20; /* the parts child's batch in one request */
    cfg.install_signal_handlers = 1; /* the crash dump and its handler */
    cfg.log_level = "error";
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) _exit(2);
    CHECK_RC(spanguard_set_error_callback(t, stuck_callback, NULL), SPANGUARD_RESULT_OK);
    char name[48];
    if (stuck_on_parts) {
        /* One batch over the spool's cap (the backend is down): spooled
         * in parts, the callback told of the first blocks. */
        for (int i = 0; i < BIG; i++) {
            snprintf(name, sizeof name, "parts-big-%d", i);
            record(t, name, BIG_VALUE);
        }
    } else {
        /* Spooled (the backend is down); the callback told of it blocks. */
        record(t, "callback-before-stuck", 0);
    }
    char byte;
    if (read(entered[0], &byte, 1) != 1) _exit(4);
    for (int i = 0; i < AFTER; i++) {
        snprintf(name, sizeof name, "%s-after-stuck-%d", how, i);
        record(t, name, 0);
    }
    spanguard_span unended;
    snprintf(name, sizeof name, "%s-open-at-shutdown", how);
    CHECK_RC(spanguard_span_begin(t, S(name), SPANGUARD_SPAN_NONE, 0, &unended), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 300), SPANGUARD_RESULT_TIMEOUT);
    if (failures) _exit(5);
    raise(SIGSEGV);
    _exit(6);
}

int main(int argc, char **argv) {
    alarm(60); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_crash_after_stuck-spans";
    char spool[2][512], down[64];
    int port = 0;
    int backend = bound_socket(&port);
    snprintf(down, sizeof down, "http://127.0.0.1:%d/v1/traces", port);
    const char *hows[] = {"callback", "parts"};
    for (int h = 0; h < 2; h++) {
        /* A spool directory each: a tracer started in the second child
         * would otherwise recover the first one's dump itself. */
        snprintf(spool[h], sizeof spool[h], "%s-spool-%s", scratch, hows[h]);
        pid_t pid = fork();
        if (pid == 0) child(spool[h], down, hows[h]);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFSIGNALED(status)) fprintf(stderr, "the %s child ended with status %#x\n", hows[h], status);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    }

    /* The backend up at its URL, a tracer started now on each spool sends
     * what it holds: the crash dump and the spool files. */
    start_receiver_on(backend);
    const char *up = down;
    for (int h = 0; h < 2; h++) {
        spanguard_config next;
        (void)spanguard_config_init(&next, sizeof next);
        next.service_name = "crash-after-stuck";
        next.endpoint = up;
        next.compression = SPANGUARD_COMPRESSION_NONE;
        next.spool_dir = spool[h];
        next.install_signal_handlers = 0;
        spanguard_tracer *r = NULL;
        CHECK_RC(spanguard_tracer_new(&next, &r), SPANGUARD_RESULT_OK);
        if (r) {
            CHECK_RC(spanguard_shutdown(r, 20000), SPANGUARD_RESULT_OK);
            spanguard_tracer_free(r);
        }
        CHECK(files_in_dir(spool[h], ".unreadable") == 0);
        CHECK(files_in_dir(spool[h], "") == 0);
    }
    /* Once each: the spans the stuck exporters had not dealt with, and the
     * one spooled before the callback blocked. The parts child's batch at
     * least once: its first part was spooled and the whole batch, still in
     * flight, dumped (documented: a batch in flight may arrive twice). */
    for (int h = 0; h < 2; h++) {
        char needle[64];
        for (int i = 0; i <= AFTER; i++) {
            if (i == AFTER) snprintf(needle, sizeof needle, "%s-open-at-shutdown", hows[h]);
            else snprintf(needle, sizeof needle, "%s-after-stuck-%d", hows[h], i);
            long n = received_count(needle);
            if (n != 1) fprintf(stderr, "%s arrived %ld times\n", needle, n);
            CHECK(n == 1);
        }
    }
    long before = received_count("callback-before-stuck");
    if (before != 1) fprintf(stderr, "callback-before-stuck arrived %ld times\n", before);
    CHECK(before == 1);
    for (int i = 0; i < BIG; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "parts-big-%d", i);
        long n = received_count(needle);
        if (n < 1 || n > 2) fprintf(stderr, "%s arrived %ld times\n", needle, n);
        CHECK(n >= 1 && n <= 2);
    }
    return check_summary();
}
