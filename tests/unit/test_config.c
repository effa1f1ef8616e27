// test_config.c — unit tests for server/config (defaults, conf-file parsing
// and its errors, type and range checks, flags, the shipped conf/inferd.conf,
// dump, help) and server/log (level names, line format, filtering).
#include "server/config.h"
#include "server/log.h"

#include <check.h>
#include <regex.h>      // regcomp, regexec
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>     // mkstemp, unlink, dup, dup2, sysconf

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

// Writes content (len bytes) to a new temp file; returns its malloc'd path.
static char *write_temp_n(const char *content, size_t len) {
    char *path = strdup("/tmp/inferd_test_conf_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}
static char *write_temp(const char *content) { return write_temp_n(content, strlen(content)); }

// Loads content as a conf file and expects exactly "PATH line ...": want.
static void expect_file_error(const char *content, const char *want) {
    srv_config c;
    srv_config_init(&c);
    char *path = write_temp(content), *err = NULL, expected[512];
    ck_assert_int_eq(srv_config_load_file(&c, path, &err), -1);
    ck_assert_ptr_nonnull(err);
    snprintf(expected, sizeof expected, "%s %s", path, want);
    ck_assert_str_eq(err, expected);
    free(err);
    unlink(path);
    free(path);
    srv_config_free(&c);
}

// Sets name = value and expects success (want == NULL) or exactly the error want.
static void expect_set(const char *name, const char *value, const char *want) {
    srv_config c;
    srv_config_init(&c);
    char *before = srv_config_dump(&c), *err = NULL;
    int rc = srv_config_set(&c, name, value, &err);
    if (!want) {
        ck_assert_msg(rc == 0, "%s = '%s' should be accepted, got: %s", name, value, err ? err : "?");
    } else {
        ck_assert_msg(rc == -1, "%s = '%s' should be rejected", name, value);
        ck_assert_str_eq(err, want);
        char *after = srv_config_dump(&c);   // a rejected value changes nothing
        ck_assert_str_eq(after, before);
        free(after);
    }
    free(err);
    free(before);
    srv_config_free(&c);
}

// Runs srv_config_from_args on a NULL-terminated list (argv[0] = "serve").
static int run_args(srv_config *c, char **err, const char *const *args) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = "serve";
    for (; *args; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return srv_config_from_args(c, argc, argv, err);
}

// Returns the value part of "name = value" in a dump, as a malloc'd string.
static char *dump_value(const srv_config *c, const char *name) {
    char *dump = srv_config_dump(c), key[80], *out = NULL;
    snprintf(key, sizeof key, "\n%s = ", name);
    char *hay = NULL;
    ck_assert_int_ge(asprintf(&hay, "\n%s", dump), 0);
    char *p = strstr(hay, key);
    if (p) {
        p += strlen(key);
        out = strndup(p, strcspn(p, "\n"));
    }
    free(hay);
    free(dump);
    return out;
}

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

START_TEST(test_defaults) {
    srv_config c;
    srv_config_init(&c);
    ck_assert_str_eq(c.host, "127.0.0.1");
    ck_assert_int_eq(c.port, 8080);
    ck_assert_str_eq(c.models, "models");
    ck_assert_str_eq(c.data_dir, "data");
    ck_assert_str_eq(c.load, "");
    ck_assert_str_eq(c.api_key, "");
    ck_assert_str_eq(c.api_key_file, "");
    ck_assert_int_eq(c.auth_probes, 0);
    ck_assert_int_eq(c.threads, 4);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(c.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    ck_assert_int_eq(c.compute_threads, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_int_eq(c.access_log, 1);
    ck_assert_int_eq(c.max_body_bytes, 32LL * 1024 * 1024);
    ck_assert_int_eq(c.max_image_pixels, 40000000LL);
    ck_assert_str_eq(c.cors_origins, "");
    ck_assert_int_eq(c.shutdown_timeout_s, 30);
    ck_assert_int_eq(c.max_running_jobs, 1);
    ck_assert_int_eq(c.max_queued_jobs, 16);
    ck_assert_int_eq(c.max_job_steps, 100000);
    ck_assert_int_eq(c.train_threads, 1);
    ck_assert_int_eq(c.prefill_chunk, 16);
    ck_assert_ptr_null(c.config_path);
    srv_config_free(&c);
    ck_assert_ptr_null(c.host);
    srv_config_free(&c);      // twice is fine: free zeroes
    srv_config_free(NULL);
}
END_TEST

// Every option writes its own field: setting one changes exactly one dump line.
START_TEST(test_each_option_own_field) {
    static const char *const alt[][2] = {
        { "host", "0.0.0.0" }, { "port", "9" }, { "models", "m2" }, { "data_dir", "d2" },
        { "load", "a,b" }, { "api_key", "k" }, { "api_key_file", "/k" }, { "auth_probes", "true" },
        { "threads", "7" }, { "workers", "255" }, { "compute_threads", "254" }, { "weights_pages", "file" }, { "log_level", "debug" }, { "access_log", "false" },
        { "max_body_bytes", "2048" }, { "max_body_bytes_total", "2097152" }, { "max_file_bytes", "4096" }, { "max_image_pixels", "5" }, { "max_image_bytes", "2097152" }, { "cors_origins", "*" },
        { "shutdown_timeout_s", "3" }, { "max_running_jobs", "3" }, { "max_queued_jobs", "5" }, { "max_job_steps", "77" }, { "max_job_image_bytes", "2097152" },
        { "train_threads", "2" }, { "prefill_chunk", "0" },
    };
    const int nalt = (int)(sizeof alt / sizeof alt[0]);
    ck_assert_int_eq(nalt, SRV_CONFIG_NOPTIONS);
    srv_config def;
    srv_config_init(&def);
    char *def_dump = srv_config_dump(&def);
    int lines = 0;
    for (char *p = def_dump; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, SRV_CONFIG_NOPTIONS);
    for (int i = 0; i < nalt; i++) {
        srv_config c;
        srv_config_init(&c);
        char *err = NULL;
        ck_assert_msg(srv_config_set(&c, alt[i][0], alt[i][1], &err) == 0, "%s", err ? err : "");
        char *dump = srv_config_dump(&c);
        // Compare line by line: exactly line i differs.
        char *a = def_dump, *b = dump;
        for (int l = 0; l < lines; l++) {
            size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
            int same = la == lb && memcmp(a, b, la) == 0;
            ck_assert_msg(same == (l != i), "setting %s changed line %d ('%.*s')", alt[i][0], l, (int)lb, b);
            a += la + 1;
            b += lb + 1;
        }
        free(dump);
        srv_config_free(&c);
    }
    free(def_dump);
    srv_config_free(&def);
}
END_TEST

// ---------------------------------------------------------------------------
// Conf files
// ---------------------------------------------------------------------------

START_TEST(test_file_parsing) {
    const char *text =
        "\xEF\xBB\xBF# a comment\n"
        "\n"
        "   # an indented comment\n"
        "host=0.0.0.0\n"
        "  port   =   9001  \r\n"
        "models = my models\n"
        "data_dir = \"/var/lib/in \\\"ferd\\\" \\\\ x\"   \n"
        "load = \"\"\n"
        "api_key = \"abc#def\"\n"
        "auth_probes = Yes\n"
        "log-level = debug\n"
        "access_log = off\n"
        "max_body_bytes = 1024\n"
        "max_image_pixels = 1000000000\n"
        "cors_origins = https://a.example,http://localhost:3000\n"
        "shutdown_timeout_s = 0\n"
        "workers = auto\n"
        "threads = 16";               // no newline at the end
    srv_config c;
    srv_config_init(&c);
    char *path = write_temp(text), *err = NULL;
    ck_assert_msg(srv_config_load_file(&c, path, &err) == 0, "%s", err ? err : "");
    ck_assert_str_eq(c.host, "0.0.0.0");
    ck_assert_int_eq(c.port, 9001);
    ck_assert_str_eq(c.models, "my models");
    ck_assert_str_eq(c.data_dir, "/var/lib/in \"ferd\" \\ x");
    ck_assert_str_eq(c.load, "");
    ck_assert_str_eq(c.api_key, "abc#def");
    ck_assert_int_eq(c.auth_probes, 1);
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_int_eq(c.access_log, 0);
    ck_assert_int_eq(c.max_body_bytes, 1024);
    ck_assert_int_eq(c.max_image_pixels, 1000000000LL);
    ck_assert_str_eq(c.cors_origins, "https://a.example,http://localhost:3000");
    ck_assert_int_eq(c.shutdown_timeout_s, 0);
    ck_assert_int_eq(c.threads, 16);
    ck_assert_str_eq(c.config_path, path);
    unlink(path);
    free(path);
    srv_config_free(&c);
}
END_TEST

START_TEST(test_file_errors) {
    expect_file_error("# c\n\nport = x\n", "line 3: 'port = x': not an integer");
    expect_file_error("port = 70000\n", "line 1: 'port = 70000': out of range (0..65535)");
    expect_file_error("host\n", "line 1: 'host': expected 'name = value'");
    expect_file_error("  = 5\n", "line 1: '= 5': missing option name before '='");
    expect_file_error("port = 1\nbogus = 1\n", "line 2: 'bogus = 1': unknown option 'bogus'");
    expect_file_error("config_path = x\n", "line 1: 'config_path = x': unknown option 'config_path'");
    expect_file_error("port = 1\n\nport = 2\n", "line 3: 'port = 2': 'port' is already set on line 1");
    expect_file_error("host = \"abc\n", "line 1: 'host = \"abc': missing closing quote");
    expect_file_error("host = \"a\" b\n", "line 1: 'host = \"a\" b': text after the closing quote");
    expect_file_error("host = \"a\\nb\"\n", "line 1: 'host = \"a\\nb\"': unknown escape in quotes (only \\\" and \\\\)");
    expect_file_error("port = 8080 # inline\n", "line 1: 'port = 8080 # inline': not an integer");
    expect_file_error("access_log = maybe\n",
                      "line 1: 'access_log = maybe': not a boolean (true/false, yes/no, on/off, 1/0)");
    expect_file_error("log_level = verbose\n",
                      "line 1: 'log_level = verbose': must be one of error|warn|info|debug");
    // The key never appears in an error.
    expect_file_error("api_key = two words\n", "line 1: 'api_key = ***': must not contain blanks");
    // A NUL byte on line 2.
    srv_config c;
    srv_config_init(&c);
    char *path = write_temp_n("port = 1\nhost = a\0b\n", 20), *err = NULL, want[256];
    ck_assert_int_eq(srv_config_load_file(&c, path, &err), -1);
    snprintf(want, sizeof want, "%s line 2: '': contains a NUL byte", path);
    ck_assert_str_eq(err, want);
    free(err);
    unlink(path);
    free(path);
    // A missing file names the file and the reason.
    err = NULL;
    ck_assert_int_eq(srv_config_load_file(&c, "/nonexistent/inferd.conf", &err), -1);
    ck_assert_str_eq(err, "/nonexistent/inferd.conf: No such file or directory");
    free(err);
    // A long line is cut in the message.
    char line[400];
    snprintf(line, sizeof line, "load = %0300d\n", 0);
    path = write_temp(line);
    err = NULL;
    ck_assert_int_eq(srv_config_load_file(&c, path, &err), -1);
    ck_assert_msg(strlen(err) < 120 + strlen(path) + 160, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "...': "));
    free(err);
    unlink(path);
    free(path);
    srv_config_free(&c);
}
END_TEST

// A file with an error changes nothing, even options set on earlier lines.
START_TEST(test_file_all_or_nothing) {
    srv_config c;
    srv_config_init(&c);
    char *path = write_temp("port = 9000\nhost = 10.0.0.1\nthreads = 0\n"), *err = NULL;
    ck_assert_int_eq(srv_config_load_file(&c, path, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 3: 'threads = 0': out of range (1..256)"));
    ck_assert_int_eq(c.port, 8080);
    ck_assert_str_eq(c.host, "127.0.0.1");
    ck_assert_ptr_null(c.config_path);
    free(err);
    unlink(path);
    free(path);
    srv_config_free(&c);
}
END_TEST

// ---------------------------------------------------------------------------
// Types and ranges
// ---------------------------------------------------------------------------

START_TEST(test_int_ranges) {
    static const struct { const char *name, *lo_bad, *lo_ok, *hi_ok, *hi_bad, *range; } r[] = {
        { "port", "-1", "0", "65535", "65536", "0..65535" },
        { "threads", "0", "1", "256", "257", "1..256" },
        { "workers", "0", "1", "256", "257", "1..256" },
        { "max_body_bytes", "1023", "1024", "4294967296", "4294967297", "1024..4294967296" },
        { "max_image_pixels", "0", "1", "1000000000", "1000000001", "1..1000000000" },
        { "shutdown_timeout_s", "-1", "0", "3600", "3601", "0..3600" },
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        char want[160];
        snprintf(want, sizeof want, "%s: '%s': out of range (%s)", r[i].name, r[i].lo_bad, r[i].range);
        expect_set(r[i].name, r[i].lo_bad, want);
        snprintf(want, sizeof want, "%s: '%s': out of range (%s)", r[i].name, r[i].hi_bad, r[i].range);
        expect_set(r[i].name, r[i].hi_bad, want);
        expect_set(r[i].name, r[i].lo_ok, NULL);
        expect_set(r[i].name, r[i].hi_ok, NULL);
        snprintf(want, sizeof want, "%s: '99999999999999999999': out of range (%s)", r[i].name, r[i].range);
        expect_set(r[i].name, "99999999999999999999", want);
    }
    // Values really land in the fields, including 64-bit ones.
    srv_config c;
    srv_config_init(&c);
    ck_assert_int_eq(srv_config_set(&c, "max_body_bytes", "4294967296", NULL), 0);
    ck_assert_int_eq(c.max_body_bytes, 4294967296LL);
    ck_assert_int_eq(srv_config_set(&c, "port", "+80", NULL), 0);
    ck_assert_int_eq(c.port, 80);
    ck_assert_int_eq(srv_config_set(&c, "workers", "3", NULL), 0);
    ck_assert_int_eq(c.workers, 3);
    ck_assert_int_eq(srv_config_set(&c, "workers", "AUTO", NULL), 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(c.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    srv_config_free(&c);
}
END_TEST

START_TEST(test_not_integers) {
    static const char *const bad[] = { "", "abc", "8080x", " 80", "80 ", "0x10", "1e3", "8.5", "-", "+" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "port: '%s': not an integer", bad[i]);
        expect_set("port", bad[i], want);
        snprintf(want, sizeof want, "max_body_bytes: '%s': not an integer", bad[i]);
        expect_set("max_body_bytes", bad[i], want);
    }
    expect_set("threads", "auto", "threads: 'auto': not an integer");
    expect_set("workers", "many", "workers: 'many': not an integer or 'auto'");
}
END_TEST

START_TEST(test_bools) {
    static const char *const yes[] = { "true", "yes", "on", "1", "TRUE", "Yes", "ON" };
    static const char *const no[] = { "false", "no", "off", "0", "False", "NO", "Off" };
    srv_config c;
    srv_config_init(&c);
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        c.auth_probes = 0;
        ck_assert_int_eq(srv_config_set(&c, "auth_probes", yes[i], NULL), 0);
        ck_assert_int_eq(c.auth_probes, 1);
        c.access_log = 1;
        ck_assert_int_eq(srv_config_set(&c, "access-log", no[i], NULL), 0);
        ck_assert_int_eq(c.access_log, 0);
    }
    srv_config_free(&c);
    expect_set("access_log", "maybe", "access_log: 'maybe': not a boolean (true/false, yes/no, on/off, 1/0)");
    expect_set("auth_probes", "", "auth_probes: '': not a boolean (true/false, yes/no, on/off, 1/0)");
    expect_set("auth_probes", "2", "auth_probes: '2': not a boolean (true/false, yes/no, on/off, 1/0)");
}
END_TEST

START_TEST(test_strings) {
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    for (size_t i = 0; i < 4; i++) expect_set("log_level", levels[i], NULL);
    expect_set("log_level", "INFO", "log_level: 'INFO': must be one of error|warn|info|debug");
    expect_set("log_level", "", "log_level: '': must be one of error|warn|info|debug");
    expect_set("weights_pages", "HUGE", "weights_pages: 'HUGE': must be one of auto|huge|file");
    expect_set("host", "", "host: '': must not be empty");
    expect_set("host", "a b", "host: 'a b': must not contain blanks");
    expect_set("host", "a\tb", "host: 'a\tb': contains a control character");
    expect_set("models", "", "models: '': must not be empty");
    expect_set("data_dir", "", "data_dir: '': must not be empty");
    expect_set("models", "dir with spaces", NULL);
    expect_set("load", "gpt2-tiny,fashion_cnn,m.v2", NULL);
    expect_set("load", "a,,b", "load: 'a,,b': '' is not a model id ([A-Za-z0-9._-]{1,64})");
    expect_set("load", "ok,bad/id", "load: 'ok,bad/id': 'bad/id' is not a model id ([A-Za-z0-9._-]{1,64})");
    char long_id[80], want[256];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    snprintf(want, sizeof want, "load: '%s': '%s' is not a model id ([A-Za-z0-9._-]{1,64})", long_id, long_id);
    expect_set("load", long_id, want);
    long_id[64] = '\0';
    expect_set("load", long_id, NULL);
    expect_set("cors_origins", "*", NULL);
    expect_set("cors_origins", "", NULL);
    expect_set("cors_origins", "https://a.example,http://localhost:3000", NULL);
    expect_set("cors_origins", "https://a, https://b", "cors_origins: 'https://a, https://b': origins are comma-separated, without blanks");
    expect_set("cors_origins", "*,https://a", "cors_origins: '*,https://a': '*' is not an origin like https://example.com ('*' must stand alone)");
    expect_set("cors_origins", "example.com", "cors_origins: 'example.com': 'example.com' is not an origin like https://example.com ('*' must stand alone)");
    expect_set("cors_origins", "https://a/", "cors_origins: 'https://a/': 'https://a/' is not an origin like https://example.com ('*' must stand alone)");
    expect_set("api_key", "secret key", "api_key: '***': must not contain blanks");
    expect_set("nope", "1", "unknown option 'nope'");
    expect_set("config_path", "x", "unknown option 'config_path'");
    expect_set("", "x", "unknown option ''");
    // Dashes stand for underscores in names.
    srv_config c;
    srv_config_init(&c);
    ck_assert_int_eq(srv_config_set(&c, "log-level", "debug", NULL), 0);
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_int_eq(srv_config_set(&c, "max-body-bytes", "4096", NULL), 0);
    ck_assert_int_eq(c.max_body_bytes, 4096);
    srv_config_free(&c);
}
END_TEST

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

START_TEST(test_flags_override_file) {
    char *path = write_temp("port = 9000\nthreads = 8\nlog_level = warn\naccess_log = false\n");
    char cfg_eq[300];
    snprintf(cfg_eq, sizeof cfg_eq, "--config=%s", path);
    // --config FILE, with flags before and after it.
    srv_config c;
    srv_config_init(&c);
    char *err = NULL;
    const char *a1[] = { "--port", "9100", "--config", path, "--log-level=debug", "--access-log", NULL };
    ck_assert_msg(run_args(&c, &err, a1) == 0, "%s", err ? err : "");
    ck_assert_int_eq(c.port, 9100);
    ck_assert_int_eq(c.threads, 8);
    ck_assert_str_eq(c.log_level, "debug");
    ck_assert_int_eq(c.access_log, 1);
    ck_assert_str_eq(c.config_path, path);
    srv_config_free(&c);
    // --config=FILE, underscores in flags.
    srv_config_init(&c);
    const char *a2[] = { cfg_eq, "--max_body_bytes", "2048", NULL };
    ck_assert_msg(run_args(&c, &err, a2) == 0, "%s", err ? err : "");
    ck_assert_int_eq(c.port, 9000);
    ck_assert_str_eq(c.log_level, "warn");
    ck_assert_int_eq(c.access_log, 0);
    ck_assert_int_eq(c.max_body_bytes, 2048);
    srv_config_free(&c);
    // No --config: defaults plus flags, no path.
    srv_config_init(&c);
    const char *a3[] = { "--host", "0.0.0.0", "--load", "a,b", "--api-key=k1", NULL };
    ck_assert_msg(run_args(&c, &err, a3) == 0, "%s", err ? err : "");
    ck_assert_str_eq(c.host, "0.0.0.0");
    ck_assert_str_eq(c.load, "a,b");
    ck_assert_str_eq(c.api_key, "k1");
    ck_assert_ptr_null(c.config_path);
    srv_config_free(&c);
    // Only argv[0]: nothing changes.
    srv_config_init(&c);
    const char *a4[] = { NULL };
    ck_assert_int_eq(run_args(&c, &err, a4), 0);
    ck_assert_int_eq(c.port, 8080);
    srv_config_free(&c);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_flag_bools) {
    srv_config c;
    srv_config_init(&c);
    char *err = NULL;
    const char *a1[] = { "--no-access-log", "--auth-probes", "--port", "1", NULL };
    ck_assert_msg(run_args(&c, &err, a1) == 0, "%s", err ? err : "");
    ck_assert_int_eq(c.access_log, 0);
    ck_assert_int_eq(c.auth_probes, 1);
    ck_assert_int_eq(c.port, 1);
    const char *a2[] = { "--auth-probes", "off", "--access-log=yes", NULL };
    ck_assert_msg(run_args(&c, &err, a2) == 0, "%s", err ? err : "");
    ck_assert_int_eq(c.auth_probes, 0);
    ck_assert_int_eq(c.access_log, 1);
    const char *a3[] = { "--auth-probes", NULL };            // last word, no value
    ck_assert_int_eq(run_args(&c, &err, a3), 0);
    ck_assert_int_eq(c.auth_probes, 1);
    srv_config_free(&c);
}
END_TEST

// Expects run_args to fail with exactly want and leave the config unchanged.
static void expect_args_error(const char *const *args, const char *want) {
    srv_config c;
    srv_config_init(&c);
    char *before = srv_config_dump(&c), *err = NULL;
    ck_assert_int_eq(run_args(&c, &err, args), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, want);
    char *after = srv_config_dump(&c);
    ck_assert_str_eq(after, before);
    ck_assert_ptr_null(c.config_path);
    free(after);
    free(before);
    free(err);
    srv_config_free(&c);
}

START_TEST(test_flag_errors) {
    const char *a1[] = { "--port", "1", "--bogus", "1", NULL };
    expect_args_error(a1, "unknown option '--bogus'");
    const char *a2[] = { "--port", NULL };
    expect_args_error(a2, "--port: missing value");
    const char *a3[] = { "--port", "--threads", "2", NULL };
    expect_args_error(a3, "--port: missing value");
    const char *a4[] = { "models", NULL };
    expect_args_error(a4, "unexpected argument 'models' (options look like --name value)");
    const char *a5[] = { "--threads", "3", "--port=abc", NULL };
    expect_args_error(a5, "--port: 'abc': not an integer");
    const char *a6[] = { "--no-access-log=1", NULL };
    expect_args_error(a6, "--no-access-log takes no value");
    const char *a7[] = { "--no-port", NULL };
    expect_args_error(a7, "unknown option '--no-port'");
    const char *a8[] = { "--config", "/nonexistent/x.conf", NULL };
    expect_args_error(a8, "/nonexistent/x.conf: No such file or directory");
    const char *a9[] = { "--config", NULL };
    expect_args_error(a9, "--config: missing value");
    const char *a10[] = { "--config=", NULL };
    expect_args_error(a10, "--config: missing value");
    const char *a11[] = { "--config", "a", "--config=b", NULL };
    expect_args_error(a11, "--config given twice");
    const char *a12[] = { "-p", "80", NULL };
    expect_args_error(a12, "unexpected argument '-p' (options look like --name value)");
    const char *a13[] = { "--api-key", "two words", NULL };
    expect_args_error(a13, "--api-key: '***': must not contain blanks");
    const char *a14[] = { "--help", NULL };
    expect_args_error(a14, "unknown option '--help'");
    // A bad file named by --config fails the whole call, flags included.
    char *path = write_temp("port = 1\nport = 2\n"), want[300];
    const char *a15[] = { "--threads", "2", "--config", path, NULL };
    snprintf(want, sizeof want, "%s line 2: 'port = 2': 'port' is already set on line 1", path);
    expect_args_error(a15, want);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_api_key_file) {
    char *keyfile = write_temp("  s3cr3t-key \nsecond line\n"), flag[300];
    snprintf(flag, sizeof flag, "--api-key-file=%s", keyfile);
    srv_config c;
    srv_config_init(&c);
    char *err = NULL;
    const char *a1[] = { flag, NULL };
    ck_assert_msg(run_args(&c, &err, a1) == 0, "%s", err ? err : "");
    ck_assert_str_eq(c.api_key, "s3cr3t-key");
    srv_config_free(&c);
    const char *a2[] = { flag, "--api-key", "other", NULL };
    expect_args_error(a2, "api_key and api_key_file are both set; use one");
    char *empty = write_temp("\n   \n");
    char want[400];
    snprintf(flag, sizeof flag, "--api-key-file=%s", empty);
    snprintf(want, sizeof want, "api_key_file: %s: the first line is empty", empty);
    expect_args_error(a1, want);
    const char *a3[] = { "--api-key-file", "/nonexistent/key", NULL };
    expect_args_error(a3, "api_key_file: /nonexistent/key: No such file or directory");
    unlink(keyfile);
    unlink(empty);
    free(keyfile);
    free(empty);
}
END_TEST

// ---------------------------------------------------------------------------
// The shipped conf/inferd.conf, dump and help
// ---------------------------------------------------------------------------

START_TEST(test_shipped_conf_complete) {
    // It loads through --config ...
    srv_config c, def;
    srv_config_init(&c);
    srv_config_init(&def);
    char *err = NULL;
    const char *args[] = { "--config", "conf/inferd.conf", NULL };
    ck_assert_msg(run_args(&c, &err, args) == 0, "conf/inferd.conf: %s", err ? err : "");
    // ... sets every option to its default ...
    char *dump = srv_config_dump(&c), *def_dump = srv_config_dump(&def);
    ck_assert_str_eq(dump, def_dump);
    ck_assert_str_eq(c.models, "models");
    ck_assert_str_eq(c.data_dir, "data");
    // ... and names every option in the table (the dump lists the table).
    FILE *f = fopen("conf/inferd.conf", "r");
    ck_assert_ptr_nonnull(f);
    char names[64][64];
    int nnames = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *s = line + strspn(line, " \t");
        if (*s == '#' || *s == '\n' || *s == '\0') continue;
        size_t len = strcspn(s, " \t=");
        ck_assert_int_lt(nnames, 64);
        snprintf(names[nnames++], sizeof names[0], "%.*s", (int)len, s);
    }
    fclose(f);
    int options = 0;
    for (char *p = def_dump; *p; p = strchr(p, '\n') + 1) {
        size_t len = strcspn(p, " ");
        int found = 0;
        for (int i = 0; i < nnames && !found; i++)
            found = strlen(names[i]) == len && strncmp(names[i], p, len) == 0;
        ck_assert_msg(found, "conf/inferd.conf does not set '%.*s'", (int)len, p);
        options++;
    }
    ck_assert_int_eq(options, SRV_CONFIG_NOPTIONS);
    ck_assert_int_eq(nnames, SRV_CONFIG_NOPTIONS);
    free(dump);
    free(def_dump);
    srv_config_free(&c);
    srv_config_free(&def);
}
END_TEST

START_TEST(test_dump) {
    srv_config c;
    srv_config_init(&c);
    char *v;
    ck_assert_str_eq(v = dump_value(&c, "host"), "\"127.0.0.1\""); free(v);
    ck_assert_str_eq(v = dump_value(&c, "port"), "8080"); free(v);
    ck_assert_str_eq(v = dump_value(&c, "access_log"), "true"); free(v);
    ck_assert_str_eq(v = dump_value(&c, "auth_probes"), "false"); free(v);
    ck_assert_str_eq(v = dump_value(&c, "api_key"), "\"\""); free(v);
    ck_assert_str_eq(v = dump_value(&c, "max_body_bytes"), "33554432"); free(v);
    // The key is never shown.
    ck_assert_int_eq(srv_config_set(&c, "api_key", "s3cr3t", NULL), 0);
    char *dump = srv_config_dump(&c);
    ck_assert_ptr_null(strstr(dump, "s3cr3t"));
    free(dump);
    ck_assert_str_eq(v = dump_value(&c, "api_key"), "(set)"); free(v);
    // Quotes and backslashes are escaped, and the dump reads back as a conf file.
    ck_assert_int_eq(srv_config_set(&c, "api_key", "", NULL), 0);
    ck_assert_int_eq(srv_config_set(&c, "models", "a\"b\\c d", NULL), 0);
    ck_assert_int_eq(srv_config_set(&c, "port", "0", NULL), 0);
    ck_assert_str_eq(v = dump_value(&c, "models"), "\"a\\\"b\\\\c d\""); free(v);
    dump = srv_config_dump(&c);
    char *path = write_temp(dump), *err = NULL;
    srv_config back;
    srv_config_init(&back);
    ck_assert_msg(srv_config_load_file(&back, path, &err) == 0, "%s", err ? err : "");
    char *dump2 = srv_config_dump(&back);
    ck_assert_str_eq(dump2, dump);
    ck_assert_str_eq(back.models, "a\"b\\c d");
    free(dump2);
    free(dump);
    unlink(path);
    free(path);
    srv_config_free(&back);
    srv_config_free(&c);
}
END_TEST

START_TEST(test_help) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    srv_config_print_help(f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "--config FILE"));
    ck_assert_ptr_nonnull(strstr(buf, "--port N"));
    ck_assert_ptr_nonnull(strstr(buf, "0..65535, default: 8080"));
    ck_assert_ptr_nonnull(strstr(buf, "--access-log [BOOL]"));
    // Every option appears as its flag.
    srv_config c;
    srv_config_init(&c);
    char *dump = srv_config_dump(&c);
    for (char *p = dump; *p; p = strchr(p, '\n') + 1) {
        char flag[80] = "--";
        size_t len = strcspn(p, " ");
        for (size_t i = 0; i < len; i++) flag[2 + i] = p[i] == '_' ? '-' : p[i];
        flag[2 + len] = ' ';
        flag[3 + len] = '\0';
        ck_assert_msg(strstr(buf, flag), "help lacks '%s'", flag);
    }
    free(dump);
    free(buf);
    srv_config_free(&c);
}
END_TEST

// ---------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------

// Runs fn with stderr sent to a temp file; returns what was written (malloc'd).
static char *capture_stderr(void (*fn)(void)) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fileno(tmp), 0, SEEK_END);
    char *out = calloc((size_t)n + 1, 1);
    ck_assert_int_eq(pread(fileno(tmp), out, (size_t)n, 0), n);
    fclose(tmp);
    return out;
}

static int evaluated;   // counts argument evaluations in log_lines
static int count_eval(void) { return ++evaluated; }

static void log_lines(void) {
    srv_log_threshold = SRV_LOG_INFO;
    log_info("hello %d", 42);
    log_warn("two\nlines\x1b[31m\n");        // control characters are escaped
    log_debug("filtered %d", count_eval());   // not written, not evaluated
    log_error("e");
}

static void log_long(void) {
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    srv_log_threshold = SRV_LOG_DEBUG;
    log_debug("[%s]", big);
}

START_TEST(test_log) {
    ck_assert_int_eq(srv_log_level_parse("error"), SRV_LOG_ERROR);
    ck_assert_int_eq(srv_log_level_parse("warn"), SRV_LOG_WARN);
    ck_assert_int_eq(srv_log_level_parse("info"), SRV_LOG_INFO);
    ck_assert_int_eq(srv_log_level_parse("debug"), SRV_LOG_DEBUG);
    ck_assert_int_eq(srv_log_level_parse("warning"), -1);
    ck_assert_int_eq(srv_log_level_parse(NULL), -1);
    ck_assert_str_eq(srv_log_level_name(SRV_LOG_WARN), "warn");
    ck_assert_int_eq(srv_log_set_level("debug"), 0);
    ck_assert_int_eq(srv_log_threshold, SRV_LOG_DEBUG);
    ck_assert_int_eq(srv_log_set_level("loud"), -1);
    ck_assert_int_eq(srv_log_threshold, SRV_LOG_DEBUG);

    evaluated = 0;
    char *out = capture_stderr(log_lines);
    ck_assert_int_eq(evaluated, 0);
    regex_t re;
    const char *pat =
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z INFO  hello 42\n"
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z WARN  two\\\\x0alines\\\\x1b\\[31m\n"
        "[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z ERROR e\n$";
    ck_assert_int_eq(regcomp(&re, pat, REG_EXTENDED), 0);
    ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "log output:\n%s", out);
    regfree(&re);
    free(out);

    out = capture_stderr(log_long);
    char *open = strchr(out, '['), *close_ = strchr(out, ']');
    ck_assert_ptr_nonnull(open);
    ck_assert_ptr_nonnull(close_);
    ck_assert_int_eq(close_ - open - 1, 2999);
    ck_assert_str_eq(close_, "]\n");
    free(out);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_each_option_own_field);
    tcase_add_test(tc, test_file_parsing);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_file_all_or_nothing);
    tcase_add_test(tc, test_int_ranges);
    tcase_add_test(tc, test_not_integers);
    tcase_add_test(tc, test_bools);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_flags_override_file);
    tcase_add_test(tc, test_flag_bools);
    tcase_add_test(tc, test_flag_errors);
    tcase_add_test(tc, test_api_key_file);
    tcase_add_test(tc, test_shipped_conf_complete);
    tcase_add_test(tc, test_dump);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
