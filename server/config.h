// config.h — the daemon's configuration: one declarative table (name, type,
// min, max, default, field, help) drives defaults, conf/inferd.conf parsing,
// command-line flags (--name value, dashes or underscores), validation,
// `--help` and a dump. Errors name the place: "line 12: 'port = x': not an integer".
//
// Not here: acting on the values (binding, loading models); that is the
// caller's job. Nothing in this module logs or exits: every failure is a
// return value with a malloc'd message the caller prints and frees.
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H
#include <stddef.h>   // size_t
#include <stdio.h>    // FILE

// String options are never NULL after srv_config_init: "" means "not set".
typedef struct {
    char *host;                 // bind address, default "127.0.0.1"
    int port;                   // TCP port, default 8080; 0 = pick a free port (logged)
    char *models;           // model repository, default "models"
    char *data_dir;             // uploaded files and jobs, default "data"
    char *load;                 // comma-separated ids to load at start; "" = every directory in models
    char *api_key;              // if set, /v1/* needs "Authorization: Bearer <key>"
    char *api_key_file;         // file holding the key (first line), alternative to api_key
    int auth_probes;            // 1: probes and /metrics need the key too (default 0)
    int threads;                // HTTP threads (libmicrohttpd pool), default 4
    int workers;                // compute workers, default = number of CPUs ("auto")
    int compute_threads;        // threads one step is split across (engine/core/pool.h), default = CPUs; 1 = off
    char *weights_pages;        // auto|huge|file: loaded weights on huge pages or the file mapped (engine/io/weights_map.h)
    char *log_level;            // error|warn|info|debug, default "info"
    int access_log;             // one line per request on stderr, default 1
    long long max_body_bytes;   // request body limit in bytes, default 32 MiB
    long long max_body_bytes_total; // bodies held at once over all connections, default 256 MiB
    long long max_file_bytes;   // largest upload to POST /v1/files (streamed to disk), default 1 GiB
    long long max_image_pixels; // decoded image limit (width*height), default 40,000,000
    long long max_image_bytes;  // memory one request's images may take (decode, resize, inputs), default 256 MiB
    char *cors_origins;         // "" = no CORS headers, "*" = any, or comma-separated origins
    int shutdown_timeout_s;     // SIGTERM: how long to wait for in-flight requests, default 30
    int max_running_jobs;       // training jobs run at once (the training pool's threads), default 1
    int max_queued_jobs;        // jobs waiting for a slot before POST /v1/jobs gets 503, default 16
    int max_job_steps;          // most optimizer steps one job may take, default 100000
    long long max_job_image_bytes; // memory an image-stylization-optimize job's optimisation may take, default 1 GiB
    int train_threads;          // CPUs the training pool may run on (nice +10), default 1
    int prefill_chunk;          // prompt tokens one text-generation step feeds (shared by the prompts
                                // being prefilled, on top of one token per decoding sequence); 0 = no limit
    char *config_path;          // the file this came from, or NULL (not an option itself)
} srv_config;

// Number of options in the table = every srv_config field but config_path.
// config.c static_asserts that its table has exactly this many entries and
// that each entry's type matches its field: add a field, add a table row.
#define SRV_CONFIG_NOPTIONS 27

// Fills every field with its default (strings malloc'd). Aborts only if
// memory runs out at startup or a built-in default fails its own check (a bug).
void srv_config_init(srv_config *c);
// Frees every string; NULL-safe; leaves *c zeroed.
void srv_config_free(srv_config *c);

// Parses a conf file: "name = value" lines, '#' comments (a '#' only starts a
// comment as the first non-blank character of a line), blank lines, values
// optionally in double quotes (inside them \" and \\ are escapes; nothing but
// blanks may follow the closing quote). Unknown names, bad values and an
// option set twice are errors: returns -1 with *err = "FILE line N: 'text': reason".
// All or nothing: on error *c is unchanged. On success c->config_path = path.
int srv_config_load_file(srv_config *c, const char *path, char **err);

// Sets one option by name (dashes allowed for underscores) from a string,
// with type and range checks. Bools take true/false/yes/no/on/off/1/0
// (any case); workers and compute_threads also take "auto". Returns 0, or -1 with
// *err = "NAME: 'VALUE': reason" (or "unknown option 'NAME'"); *c unchanged then.
int srv_config_set(srv_config *c, const char *name, const char *value, char **err);

// Parses argv for `inferd serve`. argv[0] is skipped (the program or the
// subcommand name), every other word must be a flag. First finds
// --config FILE / --config=FILE and loads it, then applies every
// --name value / --name=value flag on top. A bool flag alone means true
// (--access-log) and --no-NAME means false; a value for a bool flag is taken
// from the next word only if that word is a boolean. Finally, if api_key_file
// is set, its first line (blanks trimmed, must be non-empty) becomes api_key;
// setting both api_key and api_key_file is an error.
// --help and --version are handled by the caller before this.
// Returns 0, or -1 with *err naming the flag; *c unchanged then.
int srv_config_from_args(srv_config *c, int argc, char **argv, char **err);

// Prints the options table (flag, default, help) for --help.
void srv_config_print_help(FILE *stream);

// Every option as a "name = value\n" line in table order, in conf-file syntax
// (strings double-quoted); api_key shows as (set) when set, never the key.
// Returns a malloc'd string, or NULL if out of memory.
char *srv_config_dump(const srv_config *c);

#endif
