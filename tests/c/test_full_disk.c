/* The flight recorder on a disk with no room: never a SIGBUS.
 *
 * The flight recorder keeps the slots and the payload pool in a file mapped
 * MAP_SHARED. A page of a sparse file that the disk has no room for is a
 * SIGBUS at the store that first writes it: the program dies. So the slots'
 * blocks are reserved when the tracer starts (no room: no flight recorder,
 * said on stderr, spans recorded in memory), and the pool's as it grows (no
 * room: the pool is used up, values are cut and counted). Both cases run on
 * a small tmpfs mounted in a mount namespace of this process's own, which
 * takes root (CAP_SYS_ADMIN): elsewhere the test says so and passes.
 *
 * test_full_disk SCRATCH_DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spanguard.h"
#include "check.h"
#include "sink_count.h"

#define S(str) (str), strlen(str)
#define PROMPT_BYTES 100000

/* Mounts a tmpfs of `size` (as mount(8) takes it) at `dir`. */
static int mount_small(const char *dir, const char *size) {
    char options[64];
    snprintf(options, sizeof options, "size=%s,mode=0700", size);
    mkdir(dir, 0700);
    return mount("tmpfs", dir, "tmpfs", 0, options);
}

static spanguard_tracer *flight_tracer(const char *spool) {
    spanguard_config cfg;
    (void)spanguard_config_init(&cfg, sizeof cfg);
    cfg.service_name = "full-disk";
    cfg.endpoint = "discard:";
    cfg.spool_dir = spool;
    cfg.flight_recorder = 1;
    cfg.install_signal_handlers = 0;
    /* About 3.8 MiB of slots, and a pool four times what the disk has. */
    cfg.max_queue_size = 1024;
    cfg.max_open_spans = 256;
    cfg.payload_pool_mib = 16;
    spanguard_tracer *t = NULL;
    CHECK_RC(spanguard_tracer_new(&cfg, &t), SPANGUARD_RESULT_OK);
    return t;
}

static spanguard_counters counters(spanguard_tracer *t) {
    spanguard_counters c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    CHECK_RC(spanguard_stats(t, &c), SPANGUARD_RESULT_OK);
    return c;
}

/* No room for the slots: the tracer starts without its flight recorder,
 * leaves no flight file, and records and exports every span. */
static void no_room_for_the_slots(const char *spool) {
    spanguard_tracer *t = flight_tracer(spool);
    if (!t) return;
    CHECK(files_ending(spool, ".sgflight") == 0);
    for (int i = 0; i < 2000; i++) {
        spanguard_span s;
        CHECK_RC(spanguard_span_begin(t, S("op"), SPANGUARD_SPAN_NONE, 0, &s), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_set_int(s, S("i"), i), SPANGUARD_RESULT_OK);
        CHECK_RC(spanguard_span_end(s), SPANGUARD_RESULT_OK);
    }
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_counters c = counters(t);
    CHECK(c.spans_ended == 2000 && c.spans_exported == 2000);
    spanguard_tracer_free(t);
}

/* Room for the slots and a few MiB of the pool: 64 spans open at once with
 * a 100 KB prompt each need 6.4 MB of it. The prompts that found no room
 * are cut (counted); every span is exported. */
static void no_room_for_the_pool(const char *spool) {
    spanguard_tracer *t = flight_tracer(spool);
    if (!t) return;
    CHECK(files_ending(spool, ".sgflight") == 1);
    char *prompt = malloc(PROMPT_BYTES);
    memset(prompt, 'p', PROMPT_BYTES);
    enum { OPEN = 64 };
    spanguard_span open[OPEN];
    int cut = 0;
    for (int i = 0; i < OPEN; i++) {
        CHECK_RC(spanguard_span_begin(t, S("llm"), SPANGUARD_SPAN_NONE, 0, &open[i]), SPANGUARD_RESULT_OK);
        spanguard_result rc = spanguard_span_set_string(open[i], S("gen_ai.prompt"), prompt, PROMPT_BYTES);
        CHECK(rc == SPANGUARD_RESULT_OK || rc == SPANGUARD_RESULT_TRUNCATED);
        cut += rc == SPANGUARD_RESULT_TRUNCATED;
    }
    for (int i = 0; i < OPEN; i++) CHECK_RC(spanguard_span_end(open[i]), SPANGUARD_RESULT_OK);
    CHECK_RC(spanguard_shutdown(t, 10000), SPANGUARD_RESULT_OK);
    spanguard_counters c = counters(t);
    CHECK(cut > 0 && cut < OPEN);
    CHECK(c.values_truncated == (uint64_t)cut);
    CHECK(c.spans_ended == OPEN && c.spans_exported == OPEN);
    spanguard_tracer_free(t);
    free(prompt);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "build/test_full_disk-spans";
    mkdir(scratch, 0700);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("skipped: a mount namespace takes root (%s)\n", strerror(errno));
        return 0;
    }
    char tiny[512], small[512];
    snprintf(tiny, sizeof tiny, "%s/tiny", scratch);
    snprintf(small, sizeof small, "%s/small", scratch);
    CHECK(mount_small(tiny, "1m") == 0);
    CHECK(mount_small(small, "6m") == 0);
    no_room_for_the_slots(tiny);
    no_room_for_the_pool(small);
    return check_summary();
}
