/* A loopback OTLP/HTTP backend that holds its first request until the test
 * lets it answer (`release_first`), and answers every other at once with
 * 200: the exporter is then known to be in a request, for a test that
 * sends a signal, forks or shuts down right there. What it received (the
 * bodies, one after another) is searched for the spans: JSON, so that a
 * span's name is found as "name". Started with
 * serve_each_connection(listener, serve_held_first). */
#ifndef SPANGUARD_TEST_HELD_RECEIVER_H
#define SPANGUARD_TEST_HELD_RECEIVER_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "receiver.h"
#include "spanguard.h"

static pthread_mutex_t received_lock = PTHREAD_MUTEX_INITIALIZER;
static char received[8 << 20];
static size_t received_len;
static int requests;
static volatile int release_first;

static inline void *serve_held_first(void *arg) {
    int fd = (int)(long)arg;
    static __thread char buf[1 << 20];
    long whole;
    size_t head;
    while ((whole = read_request(fd, buf, sizeof buf, &head)) >= 0) {
        size_t length = (size_t)whole - head; /* the body's */
        pthread_mutex_lock(&received_lock);
        int first = requests++ == 0;
        if (received_len + length < sizeof received) {
            memcpy(received + received_len, buf + head, length);
            received_len += length;
        }
        pthread_mutex_unlock(&received_lock);
        while (first && !release_first) usleep(1000);
        const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if (write(fd, answer, sizeof answer - 1) != (ssize_t)(sizeof answer - 1)) break;
    }
    close(fd);
    return NULL;
}

/* How many times `needle` is in what the backend received. */
static inline long count_received(const char *needle) {
    long total = 0;
    pthread_mutex_lock(&received_lock);
    for (char *p = received; (p = memmem(p, received_len - (size_t)(p - received), needle, strlen(needle)));
         p += strlen(needle))
        total++;
    pthread_mutex_unlock(&received_lock);
    return total;
}

/* Requests the backend has begun to read so far. */
static inline int received_requests(void) {
    pthread_mutex_lock(&received_lock);
    int n = requests;
    pthread_mutex_unlock(&received_lock);
    return n;
}

/* A loopback listener for the held backend (serve it with
 * serve_each_connection(listener, serve_held_first)), its traces URL
 * written into `endpoint`. */
static inline int held_backend_listener(char *endpoint, size_t size) {
    int port;
    int listener = loopback_listener(&port);
    snprintf(endpoint, size, "http://127.0.0.1:%d/v1/traces", port);
    return listener;
}

/* A tracer's settings aimed at the held backend at `endpoint`: JSON
 * without gzip (count_received searches the bodies as text), what is not
 * delivered spooled to `spool`, signal handlers on, a batch every 10 ms and
 * 30 s for a request, which the held first one must not reach. A test
 * changes what its case needs. */
static inline void held_backend_config(spanguard_config *cfg, const char *service, const char *endpoint,
                                       const char *spool) {
    (void)spanguard_config_init(cfg, sizeof *cfg);
    cfg->service_name = service;
    cfg->endpoint = endpoint;
    cfg->protocol = SPANGUARD_PROTOCOL_HTTP_JSON;
    cfg->compression = SPANGUARD_COMPRESSION_NONE;
    cfg->spool_dir = spool;
    cfg->schedule_delay_ms = 10;
    cfg->request_timeout_ms = 30000;
    cfg->export_timeout_ms = 30000;
    cfg->install_signal_handlers = 1;
    cfg->log_level = "warn";
}

#endif
