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
 * What is checked is a count, not a time: the watchdog's waits for a host
 * handler that ran out (`host_handler_waits_ran_out`) were 1 for each
 * Ctrl-C, the second waited out; now 0. An alarm turns a hang into
 * SIGALRM. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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
    hang_guard(30); /* a hang is a failure, not a stuck test */
    const char *scratch = argc > 1 ? argv[1] : "build/test_host_handler_longjmp-spans";

    CHECK(set_handler(SIGINT, back_to_prompt, 0) == 0);

    spanguard_tracer *t = tracer_with_handlers(scratch);
    record_span(t, "before-interrupt");

    volatile int interrupted = 0;
    if (sigsetjmp(prompt, 1) == 0) {
        kill(getpid(), SIGINT); /* to this thread: the only one that takes it */
        for (;;) pause();
    }
    interrupted = 1;
    /* Back at the prompt: the program goes on, and records. */
    record_span(t, "back-at-prompt");
    CHECK(interrupted);
    /* The span back at the prompt told the watchdog the handler was done:
     * no wait ran out (it waited the second, the tracers frozen, and the
     * span was refused or waited for the thaw). */
    uint64_t waits = stats_of(t).host_handler_waits_ran_out;
    if (waits != 0) fprintf(stderr, "the watchdog waited out its second for the handler %llu times\n", (unsigned long long)waits);
    CHECK(waits == 0);

    /* Ours is back in: a second Ctrl-C is flushed and delivered again. */
    record_span(t, "before-second");
    if (sigsetjmp(prompt, 1) == 0) {
        kill(getpid(), SIGINT);
        for (;;) pause();
    }
    record_span(t, "after-second");
    CHECK(count_in_dir(scratch, "before-second") == 1);

    CHECK(spanguard_result_is_ok(spanguard_shutdown(t, 5000)));
    CHECK(stats_of(t).host_handler_waits_ran_out == 0);
    spanguard_tracer_free(t);
    CHECK(count_in_dir(scratch, "before-interrupt") == 1);
    CHECK(count_in_dir(scratch, "back-at-prompt") == 1);
    CHECK(count_in_dir(scratch, "before-second") == 1);
    CHECK(count_in_dir(scratch, "after-second") == 1);
    return check_summary();
}
