// test_metrics.c — unit tests for server/metrics: counters, gauges,
// histogram buckets (cumulative), _sum/_count, label escaping, the bound on
// label sets, thread safety, and that the whole render parses as the
// Prometheus text exposition format.
#include "server/metrics.h"

#include <check.h>
#include <math.h>       // NAN, isnan, fabs
#include <pthread.h>
#include <regex.h>      // regcomp, regexec
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Value of the sample whose text before the value is exactly `series`
// (e.g. "inferd_models_loaded" or "x{a=\"b\"}"), or NAN if absent.
static double sample(const char *text, const char *series) {
    size_t len = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, len) == 0 && p[len] == ' ') return strtod(p + len + 1, NULL);
    }
    return NAN;
}

// Asserts the sample exists with value want.
#define ck_sample(text, series, want) do {                                          \
        double got_ = sample((text), (series));                                     \
        ck_assert_msg(!isnan(got_), "missing sample %s in:\n%s", (series), (text)); \
        ck_assert_msg(fabs(got_ - (want)) < 1e-9, "%s = %.17g, want %.17g",         \
                      (series), got_, (double)(want));                              \
    } while (0)

START_TEST(test_counts) {
    srv_metrics_init();
    srv_metrics_request("/v1/completions", "gpt", 200, 0.01);
    srv_metrics_request("/v1/completions", "gpt", 200, 0.02);
    srv_metrics_request("/v1/completions", "gpt", 200, 0.03);
    srv_metrics_request("/v1/completions", "gpt", 400, 0.001);
    srv_metrics_request("/healthz", NULL, 200, 0.0001);
    srv_metrics_request("/healthz", "", 200, 0.0001);
    srv_metrics_tokens("gpt", 10);
    srv_metrics_tokens("gpt", 5);
    srv_metrics_tokens("gpt", -3);                  // ignored: counters never go down
    srv_metrics_tokens("lstm", 0);
    srv_metrics_queue_depth("gpt", 7);
    srv_metrics_queue_depth("gpt", 2);              // gauges are set, not added
    srv_metrics_models_loaded(3);
    srv_metrics_training_jobs("running", 1);
    srv_metrics_training_jobs("queued", 4);
    srv_metrics_training_jobs("running", 0);
    char *t = srv_metrics_render();
    ck_assert_ptr_nonnull(t);
    ck_sample(t, "inferd_requests_total{endpoint=\"/v1/completions\",model=\"gpt\",status=\"200\"}", 3);
    ck_sample(t, "inferd_requests_total{endpoint=\"/v1/completions\",model=\"gpt\",status=\"400\"}", 1);
    ck_sample(t, "inferd_requests_total{endpoint=\"/healthz\",model=\"\",status=\"200\"}", 2);
    ck_sample(t, "inferd_request_duration_seconds_count{endpoint=\"/v1/completions\"}", 4);
    ck_sample(t, "inferd_request_duration_seconds_sum{endpoint=\"/v1/completions\"}", 0.061);
    ck_sample(t, "inferd_tokens_generated_total{model=\"gpt\"}", 15);
    ck_sample(t, "inferd_tokens_generated_total{model=\"lstm\"}", 0);
    ck_sample(t, "inferd_queue_depth{model=\"gpt\"}", 2);
    ck_sample(t, "inferd_models_loaded", 3);
    ck_sample(t, "inferd_training_jobs{status=\"running\"}", 0);
    ck_sample(t, "inferd_training_jobs{status=\"queued\"}", 4);
    ck_assert(sample(t, "process_resident_memory_bytes") > 1024 * 1024);
    free(t);
    // free empties everything, and metrics work again afterwards.
    srv_metrics_free();
    t = srv_metrics_render();
    ck_sample(t, "inferd_models_loaded", 0);      // an unlabelled gauge is always there
    ck_assert_ptr_null(strstr(t, "gpt"));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE inferd_requests_total counter\n"));
    free(t);
    srv_metrics_models_loaded(1);
    t = srv_metrics_render();
    ck_sample(t, "inferd_models_loaded", 1);
    free(t);
    srv_metrics_free();
}
END_TEST

START_TEST(test_latency_histogram) {
    srv_metrics_init();
    // 0.001 sits exactly on a bound: le is "less or equal".
    const double obs[] = { 0.0005, 0.001, 0.003, 0.2, 7, 20 };
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        srv_metrics_request("/v1/x", "m", 200, obs[i]);
        sum += obs[i];
    }
    srv_metrics_request("/v1/x", "m", 200, -1);      // counted as 0
    srv_metrics_request("/v1/x", "m", 200, NAN);     // counted as 0
    static const struct { const char *le; int cum; } want[] = {
        { "0.001", 4 }, { "0.0025", 4 }, { "0.005", 5 }, { "0.01", 5 }, { "0.025", 5 },
        { "0.05", 5 }, { "0.1", 5 }, { "0.25", 6 }, { "0.5", 6 }, { "1", 6 }, { "2.5", 6 },
        { "5", 6 }, { "10", 7 }, { "+Inf", 8 },
    };
    char *t = srv_metrics_render();
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char s[160];
        snprintf(s, sizeof s, "inferd_request_duration_seconds_bucket{endpoint=\"/v1/x\",le=\"%s\"}", want[i].le);
        ck_sample(t, s, want[i].cum);
    }
    ck_sample(t, "inferd_request_duration_seconds_sum{endpoint=\"/v1/x\"}", sum);
    ck_sample(t, "inferd_request_duration_seconds_count{endpoint=\"/v1/x\"}", 8);
    // No other buckets than those 14.
    int buckets = 0;
    for (const char *p = t; (p = strstr(p, "inferd_request_duration_seconds_bucket{")); p++) buckets++;
    ck_assert_int_eq(buckets, 14);
    free(t);
    srv_metrics_free();
}
END_TEST

START_TEST(test_batch_histogram) {
    srv_metrics_init();
    const int sizes[] = { 1, 1, 3, 64, 300 };
    for (size_t i = 0; i < 5; i++) srv_metrics_batch("cnn", sizes[i]);
    srv_metrics_batch("cnn", 0);                      // ignored
    static const struct { const char *le; int cum; } want[] = {
        { "1", 2 }, { "2", 2 }, { "4", 3 }, { "8", 3 }, { "16", 3 }, { "32", 3 },
        { "64", 4 }, { "128", 4 }, { "256", 4 }, { "+Inf", 5 },
    };
    char *t = srv_metrics_render();
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char s[160];
        snprintf(s, sizeof s, "inferd_batch_size_bucket{model=\"cnn\",le=\"%s\"}", want[i].le);
        ck_sample(t, s, want[i].cum);
    }
    ck_sample(t, "inferd_batch_size_sum{model=\"cnn\"}", 369);
    ck_sample(t, "inferd_batch_size_count{model=\"cnn\"}", 5);
    int buckets = 0;
    for (const char *p = t; (p = strstr(p, "inferd_batch_size_bucket{")); p++) buckets++;
    ck_assert_int_eq(buckets, 10);
    free(t);
    srv_metrics_free();
}
END_TEST

START_TEST(test_label_escaping) {
    srv_metrics_init();
    srv_metrics_request("/v1/a\"b\\c\nd", "m\"1", 404, 0.5);
    srv_metrics_training_jobs("x\\y", 2);
    char *t = srv_metrics_render();
    ck_sample(t, "inferd_requests_total{endpoint=\"/v1/a\\\"b\\\\c\\nd\",model=\"m\\\"1\",status=\"404\"}", 1);
    ck_sample(t, "inferd_request_duration_seconds_count{endpoint=\"/v1/a\\\"b\\\\c\\nd\"}", 1);
    ck_sample(t, "inferd_training_jobs{status=\"x\\\\y\"}", 2);
    ck_assert_ptr_null(strstr(t, "c\nd"));           // no raw newline inside a value
    free(t);
    srv_metrics_free();
}
END_TEST

// The number of label sets per family is bounded; the rest go to "_other".
START_TEST(test_series_bound) {
    srv_metrics_init();
    const int n = SRV_METRICS_MAX_SERIES + 88;
    for (int i = 0; i < n; i++) {
        char ep[32];
        snprintf(ep, sizeof ep, "/e%d", i);
        srv_metrics_request(ep, "m", 200, 0.1);
    }
    char *t = srv_metrics_render();
    ck_sample(t, "inferd_requests_total{endpoint=\"/e0\",model=\"m\",status=\"200\"}", 1);
    ck_assert(isnan(sample(t, "inferd_requests_total{endpoint=\"/e600\",model=\"m\",status=\"200\"}")));
    ck_sample(t, "inferd_requests_total{endpoint=\"_other\",model=\"_other\",status=\"_other\"}", 88);
    ck_sample(t, "inferd_request_duration_seconds_count{endpoint=\"_other\"}", 88);
    int series = 0;
    for (const char *p = t; (p = strstr(p, "\ninferd_requests_total{")); p++) series++;
    ck_assert_int_eq(series, SRV_METRICS_MAX_SERIES + 1);
    free(t);
    srv_metrics_free();
}
END_TEST

// Checks the text line by line against the exposition format: comments are
// HELP/TYPE (once per family, HELP then TYPE, before its samples); samples
// are name{labels} value, named after a declared family (with _bucket,
// _sum, _count for histograms); histogram buckets never decrease.
static void check_exposition(const char *text) {
    regex_t help, type, smp;
    ck_assert_int_eq(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]*$", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&smp,
        "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
        "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
        "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})?"
        " (-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|[-+]Inf|NaN)$", REG_EXTENDED), 0);
    char families[32][80], types[32][16];
    int nfam = 0, samples = 0;
    char *copy = strdup(text), *save = NULL;
    ck_assert_int_gt((int)strlen(text), 0);
    ck_assert_int_eq(text[strlen(text) - 1], '\n');
    double last_bucket = -1;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[3];
        if (regexec(&help, line, 2, m, 0) == 0) {
            char name[80];
            snprintf(name, sizeof name, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
            for (int i = 0; i < nfam; i++) ck_assert_msg(strcmp(families[i], name) != 0, "HELP twice for %s", name);
            ck_assert_int_lt(nfam, 32);
            strcpy(families[nfam], name);
            types[nfam][0] = '\0';
            nfam++;
        } else if (regexec(&type, line, 3, m, 0) == 0) {
            ck_assert_int_gt(nfam, 0);
            ck_assert_msg(strncmp(line + 7, families[nfam - 1], strlen(families[nfam - 1])) == 0
                          && types[nfam - 1][0] == '\0', "TYPE without its HELP or twice: %s", line);
            snprintf(types[nfam - 1], sizeof types[0], "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
        } else if (regexec(&smp, line, 2, m, 0) == 0) {
            ck_assert_int_gt(nfam, 0);
            const char *fam = families[nfam - 1], *typ = types[nfam - 1];
            char name[100];
            snprintf(name, sizeof name, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line);
            if (strcmp(typ, "histogram") == 0) {
                char b[100], s[100], c[100];
                snprintf(b, sizeof b, "%s_bucket", fam);
                snprintf(s, sizeof s, "%s_sum", fam);
                snprintf(c, sizeof c, "%s_count", fam);
                ck_assert_msg(!strcmp(name, b) || !strcmp(name, s) || !strcmp(name, c),
                              "sample %s in histogram %s", name, fam);
                if (!strcmp(name, b)) {
                    double v = strtod(strrchr(line, ' ') + 1, NULL);
                    ck_assert_msg(v >= last_bucket, "bucket decreases: %s", line);
                    last_bucket = strstr(line, "le=\"+Inf\"") ? -1 : v;
                    ck_assert_ptr_nonnull(strstr(line, "le=\""));
                }
            } else {
                ck_assert_msg(strcmp(name, fam) == 0, "sample %s outside its family %s", name, fam);
                ck_assert_str_ne(typ, "");
            }
            samples++;
        } else {
            ck_abort_msg("not exposition format: '%s'", line);
        }
    }
    ck_assert_int_eq(nfam, 8);
    ck_assert_int_gt(samples, 0);
    free(copy);
    regfree(&help);
    regfree(&type);
    regfree(&smp);
}

START_TEST(test_exposition_format) {
    srv_metrics_init();
    srv_metrics_request("/v1/completions", "gpt", 200, 0.3);
    srv_metrics_request("/v1/images/\"x\"", NULL, 415, 1.5);
    srv_metrics_request("/metrics", NULL, 200, 0.00001);
    srv_metrics_batch("gpt", 8);
    srv_metrics_batch("cnn", 2);
    srv_metrics_queue_depth("gpt", 0);
    srv_metrics_tokens("gpt", 123456789);
    srv_metrics_models_loaded(2);
    srv_metrics_training_jobs("succeeded", 3);
    char *t = srv_metrics_render();
    check_exposition(t);
    free(t);
    srv_metrics_free();
    // Empty metrics are valid too (HELP/TYPE only, plus RSS).
    t = srv_metrics_render();
    check_exposition(t);
    free(t);
}
END_TEST

enum { NTHREADS = 4, PER_THREAD = 20000 };

static void *hammer(void *arg) {
    const char *model = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        srv_metrics_request("/v1/classifications", model, 200, 0.004);
        srv_metrics_batch(model, 1 + i % 16);
        srv_metrics_tokens("shared", 1);
        if (i % 1000 == 0) free(srv_metrics_render());
    }
    return NULL;
}

START_TEST(test_threads) {
    srv_metrics_init();
    pthread_t th[NTHREADS];
    static const char *const models[NTHREADS] = { "a", "b", "a", "b" };
    for (int i = 0; i < NTHREADS; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, (void *)models[i]), 0);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    char *t = srv_metrics_render();
    ck_sample(t, "inferd_requests_total{endpoint=\"/v1/classifications\",model=\"a\",status=\"200\"}", 2 * PER_THREAD);
    ck_sample(t, "inferd_requests_total{endpoint=\"/v1/classifications\",model=\"b\",status=\"200\"}", 2 * PER_THREAD);
    ck_sample(t, "inferd_request_duration_seconds_count{endpoint=\"/v1/classifications\"}", NTHREADS * PER_THREAD);
    ck_sample(t, "inferd_request_duration_seconds_bucket{endpoint=\"/v1/classifications\",le=\"0.005\"}", NTHREADS * PER_THREAD);
    ck_sample(t, "inferd_tokens_generated_total{model=\"shared\"}", NTHREADS * PER_THREAD);
    ck_sample(t, "inferd_batch_size_count{model=\"a\"}", 2 * PER_THREAD);
    check_exposition(t);
    free(t);
    srv_metrics_free();
}
END_TEST

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_counts);
    tcase_add_test(tc, test_latency_histogram);
    tcase_add_test(tc, test_batch_histogram);
    tcase_add_test(tc, test_label_escaping);
    tcase_add_test(tc, test_series_bound);
    tcase_add_test(tc, test_exposition_format);
    tcase_add_test(tc, test_threads);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
