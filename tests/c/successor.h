/* The process after a dead one: what the dead one left in its spool
 * directory (crash dumps, its flight file, spool files) goes only to a
 * sender set up like it, so a test that killed one starts this to see
 * what arrives. */
#ifndef SPANGUARD_TEST_SUCCESSOR_H
#define SPANGUARD_TEST_SUCCESSOR_H

#include "spanguard.h"

/* A tracer for `service` sending to `endpoint`, over the spool `spool`,
 * uncompressed (a receiver finds span names as they are), without signal
 * handlers: its start takes what was left there and its shutdown (20 s
 * at most) sends it. The shutdown's result, or the tracer's creation's
 * when it failed. */
static inline spanguard_result successor_sends_what_was_left(const char *service, const char *endpoint,
                                                             const char *spool) {
    spanguard_config next;
    (void)spanguard_config_init(&next, sizeof next);
    next.service_name = service;
    next.endpoint = endpoint;
    next.compression = SPANGUARD_COMPRESSION_NONE;
    next.spool_dir = spool;
    next.install_signal_handlers = 0;
    spanguard_tracer *r = NULL;
    spanguard_result rc = spanguard_tracer_new(&next, &r);
    if (rc != SPANGUARD_RESULT_OK) return rc;
    rc = spanguard_shutdown(r, 20000);
    spanguard_tracer_free(r);
    return rc;
}

#endif
