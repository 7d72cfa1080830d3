/* A loopback OTLP/HTTP backend for tests that read what arrives: a
 * listener on 127.0.0.1, each connection served on a thread of its own by
 * the test's function, and the reading of one request. Needs _GNU_SOURCE
 * (memmem) defined before the test's first include. */
#ifndef SPANGUARD_TEST_RECEIVER_H
#define SPANGUARD_TEST_RECEIVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) != 0 || listen(listener, 16) != 0 ||
        getsockname(listener, (struct sockaddr *)&a, &len) != 0)
        exit(2);
    *port = ntohs(a.sin_port);
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

#endif
