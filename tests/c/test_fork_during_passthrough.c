/* A disabled tracer (OTEL_SDK_DISABLED=true) keeps the contexts it passes
 * on in a ring made at its first span under a remote parent. A fork that
 * landed while another thread was making it gave a child that kept it
 * "being made" for good: the child's first span under a remote parent
 * waited for it forever (a worker forked while the parent's first request
 * came in on another thread never answered).
 *
 * The window is one allocation wide; the test holds it open: this program
 * defines malloc (a definition in the executable takes the library's
 * calls), and the ring's allocation, the one large one a disabled tracer
 * makes, stops until the other thread has forked (3 s at most). The child
 * then begins a span under a remote parent and checks that the context
 * passes on; SIGALRM ends a child that hangs. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"

#define S(str) (str), strlen(str)

extern void *__libc_malloc(size_t size);

static atomic_int armed;
static int in_window[2], forked[2];

void *malloc(size_t size) {
    if (size >= 256 * 1024 && atomic_exchange(&armed, 0)) {
        char byte = 'w';
        if (write(in_window[1], &byte, 1) != 1) _exit(20);
        struct pollfd done = {.fd = forked[0], .events = POLLIN};
        (void)poll(&done, 1, 3000);
    }
    return __libc_malloc(size);
}

static const char *incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
static spanguard_tracer *tracer;

/* A span under the incoming parent: the context it passes on must be that
 * parent's. */
static void passes_context_on(void) {
    spanguard_span s = SPANGUARD_SPAN_NONE;
    CHECK_RC(spanguard_span_begin_remote(tracer, S("request"), S(incoming), 0, &s),
             SPANGUARD_RESULT_NON_RECORDING);
    char tp[SPANGUARD_TRACEPARENT_SIZE] = "";
    CHECK_RC(spanguard_span_traceparent(s, tp, sizeof tp), SPANGUARD_RESULT_OK);
    CHECK(strcmp(tp, incoming) == 0);
}

static void *first_request(void *arg) {
    (void)arg;
    passes_context_on();
    return NULL;
}

int main(void) {
    alarm(60); /* a hang is a failure, not a stuck test */
    setenv("OTEL_SDK_DISABLED", "true", 1);
    CHECK_RC(spanguard_tracer_new_from_env(NULL, &tracer), SPANGUARD_RESULT_OK);
    if (!tracer) return check_summary();
    if (pipe(in_window) != 0 || pipe(forked) != 0) return 2;
    atomic_store(&armed, 1);
    pthread_t t;
    if (pthread_create(&t, NULL, first_request, NULL) != 0) return 2;
    char byte;
    if (read(in_window[0], &byte, 1) != 1) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        failures = 0;
        passes_context_on();
        _exit(failures ? 5 : 0);
    }
    if (write(forked[1], &byte, 1) != 1) return 2;
    pthread_join(t, NULL);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) fprintf(stderr, "the child died of signal %d\n", WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    spanguard_tracer_free(tracer);
    return check_summary();
}
