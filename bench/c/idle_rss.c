/* Memory of an idle tracer: resident set before spanguard_tracer_new and
 * a second after it, with default settings, as one JSON line. It uses only
 * calls every version since spanguard_config_init took the caller's size
 * has, so one build measures two libraries: run it with LD_LIBRARY_PATH
 * naming each one's directory.
 *
 * idle_rss SINK_DIR */
#define _POSIX_C_SOURCE 199309L
#include <spanguard.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

/* VmRSS or VmSize of this process, in KiB. */
static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') sscanf(line + n + 1, "%ld", &kib);
    if (f) fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    spanguard_config cfg;
    if (spanguard_config_init(&cfg, sizeof cfg) != SPANGUARD_RESULT_OK) return 2;
    cfg.sink_dir = argc > 1 ? argv[1] : "build/idle-rss-spans";
    cfg.spool_dir = cfg.sink_dir;
    cfg.install_signal_handlers = 0;
    long before = status_kib("VmRSS"), size_before = status_kib("VmSize");
    spanguard_tracer *t = NULL;
    if (spanguard_tracer_new(&cfg, &t) != SPANGUARD_RESULT_OK) return 2;
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    long after = status_kib("VmRSS"), size_after = status_kib("VmSize");
    printf("{\"version\": \"%s\", \"rss_before_kib\": %ld, \"rss_idle_tracer_kib\": %ld, "
           "\"address_space_added_kib\": %ld}\n",
           spanguard_version(), before, after, size_after - size_before);
    (void)spanguard_shutdown(t, 1000);
    spanguard_tracer_free(t);
    return 0;
}
