// test_sample.c — token sampling: greedy, temperature, top-k, top-p, logprobs.
// Frequencies are compared with probabilities computed here by hand.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include "engine/sample.h"

static const float logits[5] = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f};

// softmax(logits / t) computed in double, independently of sample.c
static void ref_probs(double *p, double t) {
    double s = 0;
    for (int i = 0; i < 5; i++) { p[i] = exp(logits[i] / t); s += p[i]; }
    for (int i = 0; i < 5; i++) p[i] /= s;
}

static void frequencies(const eng_sampler *s, double *freq, int draws) {
    eng_rng rng;
    eng_rng_seed(&rng, 42);
    float scratch[10];
    int count[5] = {0};
    for (int d = 0; d < draws; d++) count[eng_sample(s, logits, 5, &rng, scratch)]++;
    for (int i = 0; i < 5; i++) freq[i] = (double)count[i] / draws;
}

START_TEST(test_greedy) {
    ck_assert_int_eq(eng_argmax(logits, 5), 1);   // ties: lowest index
    eng_sampler s = {0, 0, 1};
    eng_rng rng;
    eng_rng_seed(&rng, 1);
    float scratch[10];
    for (int i = 0; i < 100; i++) ck_assert_int_eq(eng_sample(&s, logits, 5, &rng, scratch), 1);
}
END_TEST

START_TEST(test_temperature_frequencies) {
    double p[5], f[5];
    for (int k = 0; k < 2; k++) {
        double t = k ? 0.5 : 1.0;
        eng_sampler s = {(float)t, 0, 1};
        ref_probs(p, t);
        frequencies(&s, f, 200000);
        for (int i = 0; i < 5; i++)
            ck_assert_msg(fabs(f[i] - p[i]) < 0.005, "t=%g token %d: freq %f prob %f", t, i, f[i], p[i]);
    }
}
END_TEST

START_TEST(test_top_k) {
    double p[5], f[5];
    ref_probs(p, 1.0);
    eng_sampler s = {1.0f, 3, 1};   // keeps tokens 1, 3 (2.0) and 0 (1.0)
    frequencies(&s, f, 200000);
    double z = p[0] + p[1] + p[3];
    ck_assert(f[2] == 0 && f[4] == 0);
    ck_assert_msg(fabs(f[0] - p[0] / z) < 0.005, "%f vs %f", f[0], p[0] / z);
    ck_assert_msg(fabs(f[1] - p[1] / z) < 0.005, "%f vs %f", f[1], p[1] / z);
}
END_TEST

START_TEST(test_top_p) {
    double p[5], f[5];
    ref_probs(p, 1.0);
    // p = {.134,.364,.081,.364,.018}: the two 2.0 tokens hold .728 < .8, adding token 0 reaches .862
    eng_sampler s = {1.0f, 0, 0.8f};
    frequencies(&s, f, 200000);
    double z = p[0] + p[1] + p[3];
    ck_assert(f[2] == 0 && f[4] == 0);
    ck_assert_msg(fabs(f[0] - p[0] / z) < 0.005, "%f vs %f", f[0], p[0] / z);
    eng_sampler tiny = {1.0f, 0, 0.01f};   // nucleus of one token
    frequencies(&tiny, f, 1000);
    ck_assert(f[1] + f[3] == 1.0);
}
END_TEST

START_TEST(test_seed_determinism) {
    eng_sampler s = {0.9f, 0, 0.95f};
    eng_rng a, b;
    eng_rng_seed(&a, 7);
    eng_rng_seed(&b, 7);
    float scratch[10];
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(eng_sample(&s, logits, 5, &a, scratch), eng_sample(&s, logits, 5, &b, scratch));
}
END_TEST

START_TEST(test_logprobs) {
    double p[5];
    ref_probs(p, 1.0);
    for (int i = 0; i < 5; i++) ck_assert(fabs(eng_logprob(logits, 5, i) - log(p[i])) < 1e-5);
    int ids[3];
    float lp[3];
    eng_top_logprobs(logits, 5, 3, ids, lp);
    ck_assert(ids[0] == 1 || ids[0] == 3);
    ck_assert(ids[1] == 1 || ids[1] == 3);
    ck_assert_int_eq(ids[2], 0);
    ck_assert(fabs(lp[2] - log(p[0])) < 1e-5);
}
END_TEST

START_TEST(test_large_vocab_top_k) {
    enum { N = 32000 };
    float *x = malloc(N * sizeof(float)), *scratch = malloc(2 * N * sizeof(float));
    eng_rng rng;
    eng_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) x[i] = eng_rng_normal(&rng);
    x[12345] = 50;   // dominant token
    eng_sampler s = {1.0f, 40, 0.9f};
    for (int i = 0; i < 10; i++) ck_assert_int_eq(eng_sample(&s, x, N, &rng, scratch), 12345);
    free(x); free(scratch);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_temperature_frequencies);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_seed_determinism);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_large_vocab_top_k);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
