// log.h — levelled logging to stderr: "2026-11-23T17:45:21.123Z INFO  message".
// The macro checks the level first so filtered messages cost no formatting.
// Each line is written by one fprintf call, so lines from different threads
// never interleave. Control characters in the message (a newline from a
// client's input, say) are written as \xNN so one call is always one line.
#ifndef SRV_LOG_H
#define SRV_LOG_H

typedef enum { SRV_LOG_ERROR = 0, SRV_LOG_WARN, SRV_LOG_INFO, SRV_LOG_DEBUG } srv_log_level;

// Messages above this level are skipped. Default SRV_LOG_INFO. Set it at
// startup (or on reload) only: it is read without a lock.
extern srv_log_level srv_log_threshold;
// Parses "error|warn|info|debug" (exact, lower case); returns the level or -1.
int srv_log_level_parse(const char *name);
// "error", "warn", "info" or "debug"; "?" for anything else.
const char *srv_log_level_name(srv_log_level lvl);
// Parses "error|warn|info|debug" and sets srv_log_threshold; returns 0, or
// -1 on an unknown name (the threshold is then unchanged).
int srv_log_set_level(const char *name);
// Writes one line at level lvl whatever the threshold (use the macros).
// A trailing newline in fmt's output is dropped; the line gets its own.
void srv_log_write(srv_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SRV_LOG(lvl, ...) do { if ((lvl) <= srv_log_threshold) srv_log_write((lvl), __VA_ARGS__); } while (0)
#define log_error(...) SRV_LOG(SRV_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  SRV_LOG(SRV_LOG_WARN, __VA_ARGS__)
#define log_info(...)  SRV_LOG(SRV_LOG_INFO, __VA_ARGS__)
#define log_debug(...) SRV_LOG(SRV_LOG_DEBUG, __VA_ARGS__)

#endif
