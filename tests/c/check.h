/* The C tests' checks: each CHECK counts, and a failed one says where, in
 * which process (the fork tests check in parents and children), and what.
 * A test ends by printing the tally and exiting non-zero on any failure. */
#ifndef SPANGUARD_TEST_CHECK_H
#define SPANGUARD_TEST_CHECK_H

#include <stdio.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        checks++;                                                                                \
        if (!(cond)) {                                                                           \
            failures++;                                                                          \
            fprintf(stderr, "%s:%d (pid %d): check failed: %s\n", __FILE__, __LINE__, (int)getpid(), \
                    #cond);                                                                      \
        }                                                                                        \
    } while (0)

/* Prints the tally; the process's exit status. */
static inline int check_summary(void) {
    printf("%d passed, %d failed\n", checks - failures, failures);
    fflush(stdout);
    return failures ? 1 : 0;
}

#endif
