/* A thread of the parent holds OpenSSL's primary DRBG lock (as a thread
 * reseeding from it does, briefly) at the fork; the child's first tracer
 * sends over TLS. Prints what its shutdown answered and its stats. */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spanguard.h"
#include <sys/syscall.h>
#include <errno.h>
/* OpenSSL 3.0 takes its seed through getentropy (a weak reference): this
 * one blocks for good once `block` is set, in the thread that reseeds. */
static volatile int block, blocked;
int getentropy(void *buf, size_t len) {
  if (block) { blocked = 1; for (;;) pause(); }
  long n = syscall(SYS_getrandom, buf, len, 0);
  return n == (long)len ? 0 : -1;
}
static void *holder(void *a) { (void)a; block = 1; RAND_poll(); return 0; }
int main(int argc, char **argv) {
  int hold = argc > 2 && atoi(argv[2]);
  unsigned char b[8]; RAND_bytes(b, sizeof b); /* the parent's RNG is set up */
  if (hold) { pthread_t t; pthread_create(&t, 0, holder, 0); for (int i = 0; i < 5000 && !blocked; i++) usleep(1000); fprintf(stderr, "parent: reseed blocked=%d\n", blocked); block = 0; }
  pid_t p = fork();
  if (p == 0) {
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", argv[1], 1);
    setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", getenv("CERT"), 1);
    spanguard_config cfg; spanguard_config_init(&cfg, sizeof cfg);
    cfg.spool_dir = "rand_fork-spool"; cfg.sink_dir = "rand_fork-sink";
    spanguard_tracer *t = NULL;
    spanguard_result rc = spanguard_tracer_new_from_env(&cfg, &t);
    if (rc != SPANGUARD_RESULT_OK) { fprintf(stderr, "new %u\n", rc); _exit(9); }
    for (int i = 0; i < 5; i++) { spanguard_span s; spanguard_span_begin(t, "c", 1, SPANGUARD_SPAN_NONE, 0, &s); spanguard_span_end(s); }
    rc = spanguard_flush(t, 3000);
    fprintf(stderr, "child flush: %s\n", spanguard_strerror(rc));
    rc = spanguard_shutdown(t, 2000);
    fprintf(stderr, "child shutdown: %s\n", spanguard_strerror(rc));
    spanguard_counters st; memset(&st, 0, sizeof st); st.struct_size = sizeof st;
    spanguard_stats(t, &st);
    fprintf(stderr, "child stats: exported %llu spooled %llu dropped_export_failed %llu\n", (unsigned long long)st.spans_exported, (unsigned long long)st.spooled_spans, (unsigned long long)st.dropped_export_failed);
    _exit(0);
  }
  int status; waitpid(p, &status, 0);
  printf("child exit %d\n", WEXITSTATUS(status));
  return 0;
}
