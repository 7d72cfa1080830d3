/* A loopback port that nothing listens on, for a backend that is down:
 * bound and never listened on, the socket kept open for the rest of the
 * process. Closed, the port was free: another program's bind to port 0
 * (make test runs two lanes of tests at once) could be given it and
 * answer the spans meant to find the backend down. */
#ifndef SPANGUARD_TEST_LOOPBACK_H
#define SPANGUARD_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A loopback socket bound and not listened on, its port in `*port`:
 * each connection to it is refused until the test listens on it (then it
 * is a backend at the same URL that was down); the test exits with
 * status 2 when no socket can be had. */
static inline int unlistened_socket(int *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        exit(2);
    *port = ntohs(a.sin_port);
    return s;
}

/* The port; the test exits with status 2 when no socket can be had. */
static inline int closed_port(void) {
    int port;
    (void)unlistened_socket(&port); /* it stays open: it holds the port */
    return port;
}

#endif
