/* A host handler that never returns: it siglongjmp()s back into the
 * program's main loop (a C interpreter's Ctrl-C back to its prompt; a
 * REPL's "interrupt the command, keep the session"). spanguard's
 * watchdog, done flushing, waits for the host's handler to return before
 * it thaws the tracers: it never saw the return, so the tracers stayed
 * frozen a whole second, and the spans the program recorded back at its
 * prompt on that thread were refused as shut down (and on other threads
 * waited that second). Now a span begun on the thread the handler was
 * delivered to, outside that handler's frame, tells the watchdog the
 * handler is done with the signal and waits for the thaw.
 *
 * The bound is generous: 600 ms catches the full second the wait took.
 * An alarm turns a hang into SIGALRM. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "host_handler.h"
#include "proc.h"
#include "sink_count.h"

static sigjmp_buf prompt;

static void back_to_prompt(int signal) {
    (void)signal;
    siglongjmp(prompt, 1);
}

int main(int argc, char **argv) {
    alarm(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_longjmp-spans";

    CHECK(set_handler(SIGINT, back_to_prompt, 0) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before-interrupt");

    struct timespec t0;
    volatile int interrupted = 0;
    if (sigsetjmp(prompt, 1) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        kill(getpid(), SIGINT); /* to this thread: the only one that takes it */
        for (;;) pause();
    }
    interrupted = 1;
    /* Back at the prompt: the program goes on, and records. */
    record_span(t, "back-at-prompt");
    double took = seconds_since(&t0);
    CHECK(interrupted);
    CHECK(took < 0.6);
    if (took >= 0.6) fprintf(stderr, "the span back at the prompt came %.3f s after the signal\n", took);

    /* Ours is back in: a second Ctrl-C is flushed and delivered again. */
    record_span(t, "before-second");
    if (sigsetjmp(prompt, 1) == 0) {
        kill(getpid(), SIGINT);
        for (;;) pause();
    }
    record_span(t, "after-second");
    CHECK(count_in_dir(scratch, "before-second") == 1);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before-interrupt") == 1);
    CHECK(count_in_dir(scratch, "back-at-prompt") == 1);
    CHECK(count_in_dir(scratch, "before-second") == 1);
    CHECK(count_in_dir(scratch, "after-second") == 1);
    return check_summary();
}
