// log.c — levelled logging to stderr, one line per call (see log.h).
// Not a log router: no files, no rotation; systemd/journald or the container
// runtime collects stderr.
#include "server/log.h"

#include <stdarg.h>   // va_list
#include <stdio.h>    // fprintf, vsnprintf
#include <stdlib.h>   // malloc, free
#include <string.h>   // strcmp
#include <time.h>     // clock_gettime, gmtime_r

srv_log_level srv_log_threshold = SRV_LOG_INFO;

// Indexed by srv_log_level; the guard keeps it in step with the enum.
static const char *const level_names[] = { "error", "warn", "info", "debug" };
_Static_assert(sizeof level_names / sizeof level_names[0] == SRV_LOG_DEBUG + 1,
               "level_names must have one entry per srv_log_level");
// The same, as printed in a line: upper case, padded to 5 columns.
static const char *const level_tags[] = { "ERROR", "WARN ", "INFO ", "DEBUG" };
_Static_assert(sizeof level_tags / sizeof level_tags[0] == SRV_LOG_DEBUG + 1,
               "level_tags must have one entry per srv_log_level");

int srv_log_level_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i <= SRV_LOG_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *srv_log_level_name(srv_log_level lvl) {
    return (lvl >= SRV_LOG_ERROR && lvl <= SRV_LOG_DEBUG) ? level_names[lvl] : "?";
}

int srv_log_set_level(const char *name) {
    int lvl = srv_log_level_parse(name);
    if (lvl < 0) return -1;
    srv_log_threshold = (srv_log_level)lvl;
    return 0;
}

// Copies msg[0..n) to out, writing control characters as \xNN; out must hold
// 4*n+1 bytes. Returns out.
static char *escape_controls(char *out, const char *msg, size_t n) {
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            *o++ = '\\'; *o++ = 'x'; *o++ = hex[ch >> 4]; *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    return out;
}

void srv_log_write(srv_log_level lvl, const char *fmt, ...) {
    // Timestamp: UTC, ISO-8601, milliseconds.
    struct timespec ts;
    struct tm tm;
    char stamp[32] = "";
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    int millis = (int)(ts.tv_nsec / 1000000L);
    const char *tag = (lvl >= SRV_LOG_ERROR && lvl <= SRV_LOG_DEBUG) ? level_tags[lvl] : "?????";

    // Format into a stack buffer; fall back to the heap for long messages.
    char small[512], esc_small[4 * sizeof small + 1];
    char *msg = small, *esc = esc_small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { msg = small; n = 0; small[0] = '\0'; }
    if ((size_t)n >= sizeof small) {
        char *big = malloc((size_t)n + 1);
        char *big_esc = big ? malloc(4 * (size_t)n + 1) : NULL;
        if (big && big_esc) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
            esc = big_esc;
        } else {            // out of memory: log the truncated message
            free(big);
            n = (int)sizeof small - 1;
        }
    }
    size_t len = (size_t)n;
    if (len > 0 && msg[len - 1] == '\n') len--;   // the line gets its own newline
    escape_controls(esc, msg, len);

    // One call per line: glibc locks stderr for the whole fprintf.
    fprintf(stderr, "%s.%03dZ %s %s\n", stamp, millis, tag, esc);

    if (msg != small) { free(msg); free(esc); }
}
