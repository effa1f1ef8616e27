// test_jobs.c — the parts of server/jobs.c that need no daemon: the
// hyperparameters of POST /v1/jobs (every type, range, null, unknown key,
// the param each error names) and the shape of job ids. The jobs
// themselves run end to end in tests/integration/test_jobs.sh.
#include "server/jobs.h"

#include <check.h>      // Check unit-test framework
#include <stdlib.h>     // free
#include <string.h>     // strstr

// Parses the JSON text as hyperparameters into *s; returns the rc, *param and
// the message (freed here; matched against `want` when not NULL).
static int parse(const char *text, srv_job_spec *s, const char **param, const char *want) {
    json_error_t e;
    json_t *hp = json_loads(text, 0, &e);
    ck_assert_msg(hp != NULL, "%s: %s", text, e.text);
    srv_job_spec_init(s);
    char *msg = NULL;
    *param = NULL;
    int rc = srv_jobs_hparams_parse(hp, s, &msg, param);
    if (rc == 0) ck_assert_ptr_null(msg);
    else {
        ck_assert_msg(msg != NULL, "%s: an error without a message", text);
        if (want) ck_assert_msg(strstr(msg, want), "%s: message \"%s\" lacks \"%s\"", text, msg, want);
    }
    free(msg);
    if (rc == 0) {
        // strings are borrowed from hp: keep it alive for the caller's checks
        static json_t *keep[64];
        static int n;
        json_decref(keep[n % 64]);
        keep[n++ % 64] = hp;
    } else json_decref(hp);
    return rc;
}

START_TEST(test_defaults) {
    srv_job_spec s;
    const char *param;
    ck_assert_int_eq(parse("{}", &s, &param, NULL), 0);
    ck_assert_int_eq(s.steps, 0);
    ck_assert_int_eq(s.augment, -1);
    ck_assert_int_eq(s.balance, -1);
    ck_assert(s.learning_rate < 0 && s.weight_decay < 0 && s.seed < 0);
    char *msg = NULL;
    ck_assert_int_eq(srv_jobs_hparams_parse(NULL, &s, &msg, &param), 0);            // absent
    ck_assert_int_eq(srv_jobs_hparams_parse(json_null(), &s, &msg, &param), 0);     // null
    // null members: the default
    ck_assert_int_eq(parse("{\"steps\": null, \"augment\": null}", &s, &param, NULL), 0);
    ck_assert_int_eq(s.steps, 0);
    ck_assert_int_eq(s.augment, -1);
}
END_TEST

START_TEST(test_values) {
    srv_job_spec s;
    const char *param;
    ck_assert_int_eq(parse("{\"steps\": 60, \"epochs\": 3, \"batch_size\": 8, \"learning_rate\": 0.003, \"weight_decay\": 0,"
                           " \"seed\": 9007199254740991, \"log_every\": 5, \"checkpoint_every\": 10, \"augment\": false,"
                           " \"balance\": true, \"dim\": 32, \"layers\": 1, \"heads\": 2, \"context_len\": 32, \"buckets\": 4096,"
                           " \"minn\": 2, \"maxn\": 5, \"labels\": \"a,b\", \"sample_prompt\": \"The \"}", &s, &param, NULL), 0);
    ck_assert_int_eq(s.steps, 60);
    ck_assert_int_eq(s.epochs, 3);
    ck_assert_int_eq(s.batch_size, 8);
    ck_assert(s.learning_rate == 0.003 && s.weight_decay == 0);
    ck_assert(s.seed == 9007199254740991LL);
    ck_assert_int_eq(s.log_every, 5);
    ck_assert_int_eq(s.checkpoint_every, 10);
    ck_assert_int_eq(s.augment, 0);
    ck_assert_int_eq(s.balance, 1);
    ck_assert_int_eq(s.dim, 32);
    ck_assert_int_eq(s.layers, 1);
    ck_assert_int_eq(s.heads, 2);
    ck_assert_int_eq(s.context_len, 32);
    ck_assert_int_eq(s.buckets, 4096);
    ck_assert_int_eq(s.minn, 2);
    ck_assert_int_eq(s.maxn, 5);
    ck_assert_str_eq(s.labels, "a,b");
    ck_assert_str_eq(s.sample_prompt, "The ");
    ck_assert_int_eq(parse("{\"learning_rate\": 1}", &s, &param, NULL), 0);   // an integer is a number
    ck_assert(s.learning_rate == 1);
}
END_TEST

START_TEST(test_errors) {
    static const struct { const char *json, *param, *says; } bad[] = {
        {"{\"stepz\": 10}", "hyperparameters", "stepz"},
        {"{\"steps\": \"10\"}", "hyperparameters.steps", "integer"},
        {"{\"steps\": 10.5}", "hyperparameters.steps", "integer"},
        {"{\"steps\": 0}", "hyperparameters.steps", "[1,"},
        {"{\"steps\": -3}", "hyperparameters.steps", NULL},
        {"{\"steps\": 100000001}", "hyperparameters.steps", NULL},
        {"{\"batch_size\": 65537}", "hyperparameters.batch_size", NULL},
        {"{\"learning_rate\": -1}", "hyperparameters.learning_rate", "number"},
        {"{\"learning_rate\": 0}", "hyperparameters.learning_rate", NULL},
        {"{\"learning_rate\": 10.5}", "hyperparameters.learning_rate", NULL},
        {"{\"learning_rate\": \"fast\"}", "hyperparameters.learning_rate", NULL},
        {"{\"weight_decay\": 2}", "hyperparameters.weight_decay", NULL},
        {"{\"seed\": -1}", "hyperparameters.seed", NULL},
        {"{\"augment\": 1}", "hyperparameters.augment", "true or false"},
        {"{\"balance\": \"no\"}", "hyperparameters.balance", NULL},
        {"{\"context_len\": 1}", "hyperparameters.context_len", NULL},
        {"{\"minn\": 17}", "hyperparameters.minn", NULL},
        {"{\"labels\": \"\"}", "hyperparameters.labels", "string"},
        {"{\"labels\": [\"a\"]}", "hyperparameters.labels", NULL},
        {"{\"steps\": 10, \"dim\": {}}", "hyperparameters.dim", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_job_spec s;
        const char *param;
        ck_assert_msg(parse(bad[i].json, &s, &param, bad[i].says) == -1, "%s: accepted", bad[i].json);
        ck_assert_msg(param && strcmp(param, bad[i].param) == 0, "%s: param %s, want %s", bad[i].json, param ? param : "NULL", bad[i].param);
    }
    // not an object
    srv_job_spec s;
    srv_job_spec_init(&s);
    char *msg = NULL;
    const char *param = NULL;
    json_t *a = json_array();
    ck_assert_int_eq(srv_jobs_hparams_parse(a, &s, &msg, &param), -1);
    ck_assert_str_eq(param, "hyperparameters");
    free(msg);
    json_decref(a);
}
END_TEST

START_TEST(test_ids) {
    ck_assert(srv_jobs_valid_id("job-0123456789abcdef01234567"));
    ck_assert(!srv_jobs_valid_id("job-0123456789abcdef0123456"));     // short
    ck_assert(!srv_jobs_valid_id("job-0123456789abcdef012345678"));   // long
    ck_assert(!srv_jobs_valid_id("job-0123456789ABCDEF01234567"));    // upper case
    ck_assert(!srv_jobs_valid_id("job-../../../../etc/passwd/xx"));
    ck_assert(!srv_jobs_valid_id("file-0123456789abcdef0123456"));
    ck_assert(!srv_jobs_valid_id(""));
    ck_assert(!srv_jobs_valid_id(NULL));
}
END_TEST

static Suite *jobs_suite(void) {
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_ids);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(jobs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
