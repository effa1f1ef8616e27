// config.c — the option table and everything driven by it: defaults,
// conf-file parsing, command-line flags, validation, --help and the dump.
// Not here: acting on the values (see config.h). Nothing here logs or exits
// on bad input; errors are malloc'd messages handed back to the caller.
#include "server/config.h"
#include "server/log.h"   // srv_log_level_parse (log_level validation)
#include "engine/io/weights_map.h"   // eng_weights_pages_parse (weights_pages validation)

#include <ctype.h>        // isdigit, isspace, iscntrl, isalnum
#include <errno.h>        // errno, ERANGE
#include <stdarg.h>       // va_list
#include <stdio.h>        // FILE, getline, open_memstream, vasprintf
#include <stdlib.h>       // malloc, free, strtoll, abort
#include <string.h>       // strcmp, strchr, strdup, strerror
#include <strings.h>      // strcasecmp
#include <unistd.h>       // sysconf

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

typedef enum { OPT_STRING, OPT_INT, OPT_INT64, OPT_BOOL } opt_type;

// Extra validation of a string value: returns 0, or -1 with a reason in why.
typedef int (*opt_check_fn)(const char *value, char *why, size_t whylen);

typedef struct {
    const char *name;            // conf-file name == field name; flag is --name with '_' -> '-'
    opt_type type;               // how the value is parsed and which field type it writes
    long long min, max;          // inclusive range (OPT_INT, OPT_INT64 only)
    const char *dflt;            // default, spelled as in the conf file
    long long (*auto_value)(void); // if set, the value "auto" means this (OPT_INT only)
    opt_check_fn check;          // extra validation for strings, or NULL
    int secret;                  // 1: the value is never echoed (dump, errors)
    size_t off;                  // offsetof(srv_config, name)
    const char *help;            // one line for --help and conf/inferd.conf
} opt_def;

// Compile-time guard: an entry's type must match its field's C type.
#define OPT_FIELD_OK(field, type) _Generic(((srv_config *)0)->field,          \
    char *: (type) == OPT_STRING,                                              \
    int: ((type) == OPT_INT || (type) == OPT_BOOL),                            \
    long long: (type) == OPT_INT64,                                            \
    default: 0)
#define OPT(field, type, min, max, dflt, autofn, check, secret, help)          \
    { #field, type, min, max, dflt, autofn, check, secret,                     \
      offsetof(srv_config, field) + 0 * sizeof(char[OPT_FIELD_OK(field, type) ? 1 : -1]), \
      help }

static long long online_cpus(void);
static int check_nonempty(const char *v, char *why, size_t n);
static int check_host(const char *v, char *why, size_t n);
static int check_model_list(const char *v, char *why, size_t n);
static int check_token(const char *v, char *why, size_t n);
static int check_log_level(const char *v, char *why, size_t n);
static int check_cors(const char *v, char *why, size_t n);
static int check_weights_pages(const char *v, char *why, size_t n);

#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

// The table. Order is the order of --help, the dump and conf/inferd.conf.
// Defaults go through the same parser as user input (srv_config_init), so a
// default that fails its own range or check aborts at the first start.
static const opt_def options[] = {
    OPT(host, OPT_STRING, 0, 0, "127.0.0.1", NULL, check_host, 0,
        "address to listen on (0.0.0.0 = every interface)"),
    OPT(port, OPT_INT, 0, 65535, "8080", NULL, NULL, 0,
        "TCP port; 0 picks a free port and logs it"),
    OPT(models, OPT_STRING, 0, 0, "models", NULL, check_nonempty, 0,
        "model repository: one directory per model, named by its id"),
    OPT(data_dir, OPT_STRING, 0, 0, "data", NULL, check_nonempty, 0,
        "where uploaded files and training jobs are kept"),
    OPT(load, OPT_STRING, 0, 0, "", NULL, check_model_list, 0,
        "comma-separated model ids to load at start; empty = every directory in models"),
    OPT(api_key, OPT_STRING, 0, 0, "", NULL, check_token, 1,
        "if set, /v1/* requests need 'Authorization: Bearer <key>'"),
    OPT(api_key_file, OPT_STRING, 0, 0, "", NULL, NULL, 0,
        "file whose first line is the API key (instead of api_key)"),
    OPT(auth_probes, OPT_BOOL, 0, 1, "false", NULL, NULL, 0,
        "require the key for /healthz, /readyz and /metrics too"),
    OPT(threads, OPT_INT, 1, 256, "4", NULL, NULL, 0,
        "HTTP threads (parse and validate requests; never run models)"),
    OPT(workers, OPT_INT, 1, 256, "auto", online_cpus, NULL, 0,
        "compute worker threads; auto = number of online CPUs"),
    OPT(compute_threads, OPT_INT, 1, 256, "auto", online_cpus, NULL, 0,
        "threads one model step is split across (the compute pool); auto = number of online CPUs, 1 = no pool"),
    OPT(weights_pages, OPT_STRING, 0, 0, "auto", NULL, check_weights_pages, 0,
        "where loaded weights live: huge = a copy on 2 MiB pages (decode streams them ~1.2x faster), file = the "
        "checkpoint file mapped (shared with the page cache), auto = huge when the kernel offers transparent huge pages"),
    OPT(log_level, OPT_STRING, 0, 0, "info", NULL, check_log_level, 0,
        "error, warn, info or debug"),
    OPT(access_log, OPT_BOOL, 0, 1, "true", NULL, NULL, 0,
        "log one line per request"),
    OPT(max_body_bytes, OPT_INT64, 1 * KIB, 4 * GIB, "33554432", NULL, NULL, 0,
        "largest request body in bytes; larger gets 413"),
    OPT(max_body_bytes_total, OPT_INT64, 1 * MIB, 64 * GIB, "268435456", NULL, NULL, 0,
        "bytes of request bodies held at once over all connections; a body that would go past it gets 503 + Retry-After"),
    OPT(max_file_bytes, OPT_INT64, 1 * KIB, 1024 * GIB, "1073741824", NULL, NULL, 0,
        "largest upload to POST /v1/files in bytes (streamed to data_dir, not held in memory); larger gets 413"),
    OPT(max_image_pixels, OPT_INT64, 1, 1000000000LL, "40000000", NULL, NULL, 0,
        "largest decoded image, width*height; larger gets 413"),
    OPT(max_image_bytes, OPT_INT64, 1 * MIB, 64 * GIB, "268435456", NULL, NULL, 0,
        "memory one request's images may take: decoding and resizing one image (24 bytes per pixel) and the model inputs of all of them; more gets 413"),
    OPT(cors_origins, OPT_STRING, 0, 0, "", NULL, check_cors, 0,
        "empty = no CORS headers, * = any origin, or comma-separated origins (no spaces)"),
    OPT(shutdown_timeout_s, OPT_INT, 0, 3600, "30", NULL, NULL, 0,
        "on SIGTERM, seconds to wait for in-flight requests before exiting"),
    OPT(max_running_jobs, OPT_INT, 1, 64, "1", NULL, NULL, 0,
        "training jobs that run at once; more wait in the queue"),
    OPT(max_queued_jobs, OPT_INT, 0, 100000, "16", NULL, NULL, 0,
        "training jobs that may wait for a slot; more get 503"),
    OPT(max_job_steps, OPT_INT, 1, 100000000, "100000", NULL, NULL, 0,
        "most optimizer steps one training job may take (steps, or epochs x batches)"),
    OPT(max_job_image_bytes, OPT_INT64, 1 * MIB, 1024 * GIB, "1073741824", NULL, NULL, 0,
        "memory an image-stylization-optimize job's optimisation may take (about 5 KB per pixel of the result); a larger size gets 400"),
    OPT(train_threads, OPT_INT, 1, 256, "1", NULL, NULL, 0,
        "CPUs the training jobs may use (at a lower priority than serving)"),
    OPT(prefill_chunk, OPT_INT, 0, 1048576, "16", NULL, NULL, 0,
        "prompt tokens one text-generation step feeds, shared by the prompts being prefilled, next to one token per "
        "decoding stream (long prompts are prefilled in chunks); 0 = whole prompts at once; a model's config.json may set its own"),
};
#define NOPTIONS (sizeof options / sizeof options[0])
_Static_assert(NOPTIONS == SRV_CONFIG_NOPTIONS,
               "options[] must have one entry per srv_config field (but config_path)");

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

// Sets *err to a malloc'd formatted message (NULL if out of memory); err may be NULL.
__attribute__((format(printf, 2, 3)))
static void set_err(char **err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0) *err = NULL;
    va_end(ap);
}

static long long online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 256) n = 256;
    return n;
}

// Pointer to the field an option writes.
static void *opt_field(srv_config *c, const opt_def *o) { return (char *)c + o->off; }
static const void *opt_cfield(const srv_config *c, const opt_def *o) { return (const char *)c + o->off; }

// Finds an option by name, dashes and underscores alike. NULL if unknown.
static const opt_def *opt_find(const char *name) {
    char buf[64];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof buf) return NULL;
    for (size_t i = 0; i <= len; i++) buf[i] = name[i] == '-' ? '_' : name[i];
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcmp(options[i].name, buf) == 0) return &options[i];
    return NULL;
}

// Parses a whole string as a decimal integer. Returns 0, -1 (not an
// integer) or -2 (does not fit in a long long).
static int parse_ll(const char *s, long long *out) {
    const char *p = s + (*s == '-' || *s == '+');
    if (!isdigit((unsigned char)*p)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0') return -1;
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

// Returns 1 or 0 for a boolean word, -1 for anything else.
static int parse_bool(const char *s) {
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) return 1;
        if (strcasecmp(s, no[i]) == 0) return 0;
    }
    return -1;
}

// Parses value for option o and, only if it is valid, stores it in c.
// Returns 0, or -1 with the reason in why.
static int opt_apply(srv_config *c, const opt_def *o, const char *value, char *why, size_t whylen) {
    switch (o->type) {
    case OPT_STRING: {
        // No option has a use for control characters, and a newline or an
        // escape sequence in a path or key only hides mistakes (or attacks).
        for (const char *p = value; *p; p++) {
            if (iscntrl((unsigned char)*p)) {
                snprintf(why, whylen, "contains a control character");
                return -1;
            }
        }
        if (o->check && o->check(value, why, whylen) < 0) return -1;
        // Copy before freeing the old value so a failed strdup leaves *c intact.
        char *copy = strdup(value);
        if (!copy) { snprintf(why, whylen, "out of memory"); return -1; }
        char **field = opt_field(c, o);
        free(*field);
        *field = copy;
        return 0;
    }
    case OPT_BOOL: {
        int b = parse_bool(value);
        if (b < 0) {
            snprintf(why, whylen, "not a boolean (true/false, yes/no, on/off, 1/0)");
            return -1;
        }
        *(int *)opt_field(c, o) = b;
        return 0;
    }
    case OPT_INT:
    case OPT_INT64: {
        long long v;
        int rc;
        if (o->auto_value && strcasecmp(value, "auto") == 0) {
            v = o->auto_value();
            rc = 0;
        } else {
            rc = parse_ll(value, &v);
        }
        if (rc == -1) {
            snprintf(why, whylen, o->auto_value ? "not an integer or 'auto'" : "not an integer");
            return -1;
        }
        // -2: strtoll overflowed, which is out of every range we have.
        if (rc == -2 || v < o->min || v > o->max) {
            snprintf(why, whylen, "out of range (%lld..%lld)", o->min, o->max);
            return -1;
        }
        if (o->type == OPT_INT) *(int *)opt_field(c, o) = (int)v;
        else *(long long *)opt_field(c, o) = v;
        return 0;
    }
    }
    snprintf(why, whylen, "bad option type");
    return -1;
}

// Deep copy of src into dst (dst is overwritten, not freed). Returns 0 or -1
// (out of memory; dst is then freed and zeroed).
static int config_copy(srv_config *dst, const srv_config *src) {
    // Shallow copy first, then NULL every string so the oom path frees
    // only what this copy owns.
    *dst = *src;
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].type == OPT_STRING) *(char **)opt_field(dst, &options[i]) = NULL;
    dst->config_path = NULL;
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].type != OPT_STRING) continue;
        const char *s = *(char *const *)opt_cfield(src, &options[i]);
        if (s && !(*(char **)opt_field(dst, &options[i]) = strdup(s))) goto oom;
    }
    if (src->config_path && !(dst->config_path = strdup(src->config_path))) goto oom;
    return 0;
oom:
    srv_config_free(dst);
    return -1;
}

// ---------------------------------------------------------------------------
// String checks (the table's check column)
// ---------------------------------------------------------------------------

static int check_nonempty(const char *v, char *why, size_t n) {
    if (*v) return 0;
    snprintf(why, n, "must not be empty");
    return -1;
}

static int check_token(const char *v, char *why, size_t n) {
    for (; *v; v++) {
        if (isspace((unsigned char)*v)) {
            snprintf(why, n, "must not contain blanks");
            return -1;
        }
    }
    return 0;
}

static int check_host(const char *v, char *why, size_t n) {
    if (check_nonempty(v, why, n) < 0) return -1;
    return check_token(v, why, n);
}

// Model ids follow API.md: [A-Za-z0-9._-]{1,64}.
static int check_model_list(const char *v, char *why, size_t n) {
    if (!*v) return 0;
    const char *p = v;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int ok = len >= 1 && len <= 64;
        for (size_t i = 0; ok && i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            ok = isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
        }
        if (!ok) {
            snprintf(why, n, "'%.*s' is not a model id ([A-Za-z0-9._-]{1,64})",
                     (int)(len > 80 ? 80 : len), p);
            return -1;
        }
        if (!end) return 0;
        p = end + 1;
    }
}

static int check_log_level(const char *v, char *why, size_t n) {
    if (srv_log_level_parse(v) >= 0) return 0;
    snprintf(why, n, "must be one of error|warn|info|debug");
    return -1;
}

static int check_weights_pages(const char *v, char *why, size_t n) {
    eng_weights_pages p;
    if (eng_weights_pages_parse(v, &p) == 0) return 0;
    snprintf(why, n, "must be one of auto|huge|file");
    return -1;
}

// "", "*", or comma-separated origins like https://example.com:8443.
static int check_cors(const char *v, char *why, size_t n) {
    if (!*v || strcmp(v, "*") == 0) return 0;
    if (check_token(v, why, n) < 0) {
        snprintf(why, n, "origins are comma-separated, without blanks");
        return -1;
    }
    const char *p = v;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *sep = strstr(p, "://");
        int ok = len > 3 && sep && sep > p && (size_t)(sep - p) + 3 < len && p[len - 1] != '/';
        if (!ok) {
            snprintf(why, n, "'%.*s' is not an origin like https://example.com "
                     "('*' must stand alone)", (int)(len > 80 ? 80 : len), p);
            return -1;
        }
        if (!end) return 0;
        p = end + 1;
    }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

void srv_config_init(srv_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NOPTIONS; i++) {
        char why[160];
        if (opt_apply(c, &options[i], options[i].dflt, why, sizeof why) < 0) {
            // A broken built-in default is a bug; running out of memory
            // before the daemon has started is fatal too.
            fprintf(stderr, "inferd: config.c: default for '%s' (\"%s\"): %s\n",
                    options[i].name, options[i].dflt, why);
            abort();
        }
    }
}

void srv_config_free(srv_config *c) {
    if (!c) return;
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].type == OPT_STRING) free(*(char **)opt_field(c, &options[i]));
    free(c->config_path);
    memset(c, 0, sizeof *c);
}

int srv_config_set(srv_config *c, const char *name, const char *value, char **err) {
    const opt_def *o = opt_find(name);
    if (!o) {
        set_err(err, "unknown option '%s'", name);
        return -1;
    }
    char why[160];
    if (opt_apply(c, o, value, why, sizeof why) < 0) {
        set_err(err, "%s: '%s': %s", o->name, o->secret ? "***" : value, why);
        return -1;
    }
    return 0;
}

// Parses the value part of a conf line in place: strips double quotes and
// their escapes. Returns the value, or NULL with the reason in why.
static char *conf_unquote(char *v, char *why, size_t n) {
    if (*v != '"') return v;
    char *out = v, *p = v + 1;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\') {
            p++;
            if (*p != '"' && *p != '\\') {
                snprintf(why, n, "unknown escape in quotes (only \\\" and \\\\)");
                return NULL;
            }
        }
        *out++ = *p;
    }
    if (*p != '"') { snprintf(why, n, "missing closing quote"); return NULL; }
    for (p++; *p; p++) {
        if (!isspace((unsigned char)*p)) {
            snprintf(why, n, "text after the closing quote");
            return NULL;
        }
    }
    *out = '\0';
    return v;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

int srv_config_load_file(srv_config *c, const char *path, char **err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    // Lines are applied to a copy that replaces *c only once the whole file
    // parsed, so a reload with a broken file keeps the running config.
    srv_config tmp;
    char *line = NULL, *text = NULL;   // text: the trimmed line, for messages
    size_t cap = 0;
    int first_line[NOPTIONS] = { 0 };    // line where each option was set, 0 = not yet
    int lineno = 0, rc = -1;
    if (config_copy(&tmp, c) < 0) {
        fclose(f);
        set_err(err, "%s: out of memory", path);
        return -1;
    }
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char why[200];
        char *s = line;
        if (lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB
            && (unsigned char)s[2] == 0xBF) s += 3;               // UTF-8 byte-order mark
        const opt_def *o = NULL;
        free(text);
        text = NULL;
        if ((ssize_t)strlen(line) != len) { snprintf(why, sizeof why, "contains a NUL byte"); goto bad; }
        s = trim(s);
        if (*s == '\0' || *s == '#') continue;
        // Keep the trimmed line for the error message; parse a copy.
        if (!(text = strdup(s))) { snprintf(why, sizeof why, "out of memory"); goto bad; }
        // name = value; the first '=' splits, so values may contain '='.
        char *eq = strchr(s, '=');
        if (!eq) { snprintf(why, sizeof why, "expected 'name = value'"); goto bad; }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        if (!*name) { snprintf(why, sizeof why, "missing option name before '='"); goto bad; }
        if (!(o = opt_find(name))) {
            snprintf(why, sizeof why, "unknown option '%.60s'", name);
            goto bad;
        }
        int idx = (int)(o - options);
        if (first_line[idx]) {
            snprintf(why, sizeof why, "'%s' is already set on line %d", o->name, first_line[idx]);
            goto bad;
        }
        if (!(value = conf_unquote(value, why, sizeof why))) goto bad;
        if (opt_apply(&tmp, o, value, why, sizeof why) < 0) goto bad;
        first_line[idx] = lineno;
        continue;
    bad:
        // Never echo a secret, and keep messages one readable line long.
        if (o && o->secret) set_err(err, "%s line %d: '%s = ***': %s", path, lineno, o->name, why);
        else if (text && strlen(text) > 120)
            set_err(err, "%s line %d: '%.117s...': %s", path, lineno, text, why);
        else set_err(err, "%s line %d: '%s': %s", path, lineno, text ? text : "", why);
        goto done;
    }
    if (ferror(f)) {
        set_err(err, "%s: read error after line %d", path, lineno);
        goto done;
    }
    free(tmp.config_path);
    if (!(tmp.config_path = strdup(path))) {
        set_err(err, "%s: out of memory", path);
        goto done;
    }
    srv_config_free(c);
    *c = tmp;
    tmp = (srv_config){ 0 };
    rc = 0;
done:
    srv_config_free(&tmp);
    free(text);
    free(line);
    fclose(f);
    return rc;
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

// One parsed flag.
typedef struct {
    const opt_def *opt;   // the option, or NULL for --config
    const char *value;    // its value (borrowed from argv or a literal)
    char flag[72];        // the flag as --dashed-name, for messages
} flag_tok;

// Reads the flag at argv[*i] (and its value, if that is the next word),
// advancing *i past what it used. Returns 0 or -1 with *err.
static int next_flag(int argc, char **argv, int *i, flag_tok *t, char **err) {
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
        set_err(err, "unexpected argument '%s' (options look like --name value)", arg);
        return -1;
    }
    // Split --name=value; normalise the name to dashes for messages
    // (opt_find accepts either spelling).
    const char *body = arg + 2, *eq = strchr(body, '=');
    size_t nlen = eq ? (size_t)(eq - body) : strlen(body);
    char name[64];
    if (nlen >= sizeof name) {
        set_err(err, "unknown option '--%.*s'", (int)(nlen > 80 ? 80 : nlen), body);
        return -1;
    }
    for (size_t k = 0; k < nlen; k++) name[k] = body[k] == '_' ? '-' : body[k];
    name[nlen] = '\0';
    snprintf(t->flag, sizeof t->flag, "--%s", name);
    (*i)++;

    int is_config = strcmp(name, "config") == 0;
    t->opt = is_config ? NULL : opt_find(name);
    if (!is_config && !t->opt && strncmp(name, "no-", 3) == 0) {
        const opt_def *o = opt_find(name + 3);
        if (o && o->type == OPT_BOOL) {          // --no-access-log
            if (eq) { set_err(err, "%s takes no value", t->flag); return -1; }
            t->opt = o;
            t->value = "false";
            return 0;
        }
    }
    if (!is_config && !t->opt) {
        set_err(err, "unknown option '%s'", t->flag);
        return -1;
    }
    if (eq) { t->value = eq + 1; return 0; }
    // No '=': the value is the next word. A word starting with "--" is the
    // next flag, so the value is missing (use --name=--x for such a value).
    const char *next = *i < argc ? argv[*i] : NULL;
    if (t->opt && t->opt->type == OPT_BOOL) {     // --access-log [BOOL]
        if (next && parse_bool(next) >= 0) { t->value = next; (*i)++; }
        else t->value = "true";
        return 0;
    }
    if (!next || strncmp(next, "--", 2) == 0) {
        set_err(err, "%s: missing value", t->flag);
        return -1;
    }
    t->value = next;
    (*i)++;
    return 0;
}

// If api_key_file is set, reads its first line into api_key.
static int load_api_key_file(srv_config *c, char **err) {
    if (!c->api_key_file[0]) return 0;
    if (c->api_key[0]) {
        set_err(err, "api_key and api_key_file are both set; use one");
        return -1;
    }
    FILE *f = fopen(c->api_key_file, "r");
    if (!f) {
        set_err(err, "api_key_file: %s: %s", c->api_key_file, strerror(errno));
        return -1;
    }
    char *line = NULL, why[160];
    size_t cap = 0;
    int rc = -1;
    ssize_t len = getline(&line, &cap, f);
    char *key = len > 0 ? trim(line) : NULL;
    if (!key || !*key) set_err(err, "api_key_file: %s: the first line is empty", c->api_key_file);
    else if (opt_apply(c, opt_find("api_key"), key, why, sizeof why) < 0)
        set_err(err, "api_key_file: %s: the key %s", c->api_key_file, why);
    else rc = 0;
    free(line);
    fclose(f);
    return rc;
}

int srv_config_from_args(srv_config *c, int argc, char **argv, char **err) {
    // Two passes so that flags win over the file wherever --config appears
    // on the line; both passes use next_flag, so they split argv alike.
    flag_tok t;
    const char *config_file = NULL;
    // Pass 1: check every flag's shape and find --config.
    for (int i = 1; i < argc;) {
        if (next_flag(argc, argv, &i, &t, err) < 0) return -1;
        if (t.opt) continue;
        if (config_file) {
            set_err(err, "--config given twice");
            return -1;
        }
        if (!*t.value) {
            set_err(err, "--config: missing value");
            return -1;
        }
        config_file = t.value;
    }
    // As in load_file: work on a copy, replace *c only on success.
    srv_config tmp;
    if (config_copy(&tmp, c) < 0) {
        set_err(err, "out of memory");
        return -1;
    }
    if (config_file && srv_config_load_file(&tmp, config_file, err) < 0) goto fail;
    // Pass 2: flags override the file.
    for (int i = 1; i < argc;) {
        char why[160];
        if (next_flag(argc, argv, &i, &t, err) < 0) goto fail;
        if (!t.opt) continue;
        if (opt_apply(&tmp, t.opt, t.value, why, sizeof why) < 0) {
            set_err(err, "%s: '%s': %s", t.flag, t.opt->secret ? "***" : t.value, why);
            goto fail;
        }
    }
    // The key file is read last: either source may have named it.
    if (load_api_key_file(&tmp, err) < 0) goto fail;
    srv_config_free(c);
    *c = tmp;
    return 0;
fail:
    srv_config_free(&tmp);
    return -1;
}

// ---------------------------------------------------------------------------
// Help and dump
// ---------------------------------------------------------------------------

void srv_config_print_help(FILE *stream) {
    fprintf(stream, "Options (flags override the config file; each is also a conf-file line 'name = value'):\n");
    fprintf(stream, "  %-30s %s\n", "--config FILE", "read options from FILE first");
    for (size_t i = 0; i < NOPTIONS; i++) {
        // "  --max-body-bytes N   help (1024..4294967296, default: 33554432)"
        const opt_def *o = &options[i];
        char flag[80];
        int n = snprintf(flag, sizeof flag, "--");
        for (const char *p = o->name; *p && n < (int)sizeof flag - 1; p++) flag[n++] = *p == '_' ? '-' : *p;
        flag[n] = '\0';
        const char *arg = o->type == OPT_STRING ? " TEXT" : o->type == OPT_BOOL ? " [BOOL]" : " N";
        char left[96], range[64] = "";
        snprintf(left, sizeof left, "%s%s", flag, arg);
        if (o->type == OPT_INT || o->type == OPT_INT64)
            snprintf(range, sizeof range, "%lld..%lld, ", o->min, o->max);
        fprintf(stream, "  %-30s %s (%sdefault: %s)\n", left, o->help, range,
                o->dflt[0] ? o->dflt : "\"\"");
    }
}

// Writes s double-quoted, escaping '"' and '\'.
static void put_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

// The dump is valid conf-file syntax (tests load it back), except that a set
// api_key reads (set), which keeps it out of logs and the /config endpoint.
char *srv_config_dump(const srv_config *c) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_def *o = &options[i];
        const void *field = opt_cfield(c, o);
        fprintf(f, "%s = ", o->name);
        switch (o->type) {
        case OPT_STRING: {
            const char *s = *(char *const *)field;
            if (o->secret && s && *s) fputs("(set)", f);
            else put_quoted(f, s);
            break;
        }
        case OPT_BOOL:  fputs(*(const int *)field ? "true" : "false", f); break;
        case OPT_INT:   fprintf(f, "%d", *(const int *)field); break;
        case OPT_INT64: fprintf(f, "%lld", *(const long long *)field); break;
        }
        fputc('\n', f);
    }
    if (ferror(f)) { fclose(f); free(buf); return NULL; }
    if (fclose(f) != 0) { free(buf); return NULL; }
    return buf;
}
