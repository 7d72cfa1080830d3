/* A loopback OTLP/HTTP backend for tests that read what arrives: a
 * listener on 127.0.0.1, each connection served on a thread of its own by
 * the test's function, and the reading of one request. Needs _GNU_SOURCE
 * (memmem) defined before the test's first include. */
#ifndef SPANGUARD_TEST_RECEIVER_H
#define SPANGUARD_TEST_RECEIVER_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"

/* Reads one request (headers, then Content-Length bytes of body) into
 * `buf`: its whole length, its headers' length in `*head`; -1 when the
 * connection closed or the request is over `cap`. */
static inline long read_request(int fd, char *buf, size_t cap, size_t *head) {
    size_t have = 0;
    char *end = NULL;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        if (have == cap) return -1;
        ssize_t n = read(fd, buf + have, cap - have);
        if (n <= 0) return -1;
        have += (size_t)n;
    }
    long length = 0;
    for (char *line = buf; line < end; line = strstr(line, "\r\n") + 2)
        if (strncasecmp(line, "content-length:", 15) == 0) length = atol(line + 15);
    *head = (size_t)(end + 4 - buf);
    size_t whole = *head + (size_t)length;
    if (whole > cap) return -1;
    while (have < whole) {
        ssize_t n = read(fd, buf + have, whole - have);
        if (n <= 0) return -1;
        have += (size_t)n;
    }
    return (long)whole;
}

/* A socket listening on a free loopback port, the port in `*port`; the
 * test exits with status 2 when none can be had. */
static inline int loopback_listener(int *port) {
    int listener = unlistened_socket(port);
    if (listen(listener, 16) != 0) exit(2);
    return listener;
}

struct receiver_args {
    int listener;
    void *(*serve_connection)(void *); /* given the connection's fd as (void *)(long) */
};

static inline void *receiver_accept_loop(void *arg) {
    struct receiver_args *r = arg;
    for (;;) {
        int fd = accept(r->listener, NULL, NULL);
        if (fd < 0) continue;
        pthread_t t;
        if (pthread_create(&t, NULL, r->serve_connection, (void *)(long)fd) == 0) pthread_detach(t);
    }
    return NULL;
}

/* Accepts connections on `listener` for good, each served by
 * `serve_connection` on a thread of its own, from a thread started now
 * (with the caller's signal mask); 0 when started. */
static inline int serve_each_connection(int listener, void *(*serve_connection)(void *)) {
    static struct receiver_args args;
    args.listener = listener;
    args.serve_connection = serve_connection;
    pthread_t server;
    return pthread_create(&server, NULL, receiver_accept_loop, &args);
}

/* What a recording receiver took: every request, end to end. */
struct recorded_requests {
    pthread_mutex_t lock;
    char *bytes;
    size_t len;
};

static inline struct recorded_requests *recorded_requests(void) {
    static struct recorded_requests r = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};
    return &r;
}

/* Takes each request on a connection (200, empty body), keeping it. */
static inline void *record_each_request(void *arg) {
    int fd = (int)(long)arg;
    size_t cap = 16 << 20, head = 0;
    char *buf = malloc(cap);
    long n;
    while (buf && (n = read_request(fd, buf, cap, &head)) > 0) {
        struct recorded_requests *r = recorded_requests();
        pthread_mutex_lock(&r->lock);
        char *grown = realloc(r->bytes, r->len + (size_t)n);
        if (grown) {
            memcpy(grown + r->len, buf, (size_t)n);
            r->bytes = grown;
            r->len += (size_t)n;
        }
        pthread_mutex_unlock(&r->lock);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if (write(fd, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1)) break;
    }
    free(buf);
    close(fd);
    return NULL;
}

/* Listens on `s` (`unlistened_socket`: a backend down until now, at
 * the same URL) and records every request. */
static inline void start_recording_receiver(int s) {
    if (listen(s, 16) != 0 || serve_each_connection(s, record_each_request) != 0) exit(2);
}

/* How often `needle` occurs in what the recording receiver took. */
static inline long recorded_count(const char *needle) {
    struct recorded_requests *r = recorded_requests();
    size_t k = strlen(needle);
    long n = 0;
    pthread_mutex_lock(&r->lock);
    for (const char *p = r->bytes, *end = r->bytes + r->len; p && (p = memmem(p, (size_t)(end - p), needle, k));
         p += k)
        n++;
    pthread_mutex_unlock(&r->lock);
    return n;
}

#endif
