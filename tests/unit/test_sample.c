// test_sample.c — token sampling: greedy, temperature, top-k, top-p, logprobs.
// Frequencies are compared with probabilities computed here by hand.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include "engine/text/sample.h"
#include "engine/core/cpu.h"   // eng_cpu_set_level: every softmax path

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

// ---- every combination of the knobs against an independent reference
// Distinct logits (no ties, so the reference's choice at the top-k border is
// the only possible one).
static const float knob_logits[8] = {0.3f, 2.1f, -1.0f, 1.4f, 0.9f, -0.2f, 1.9f, 0.0f};

// Expected distribution, computed the way users of OpenAI/vLLM/HF expect:
// softmax(logits/T), keep the top k, renormalise, keep the smallest prefix
// (most likely first) whose mass reaches top_p, renormalise.
static void ref_dist(double t, int k, double top_p, const float *x, int n, double *out) {
    double p[64], s = 0;
    int order[64];
    for (int i = 0; i < n; i++) { p[i] = exp((x[i] - 3.0) / t); s += p[i]; order[i] = i; }
    for (int i = 0; i < n; i++) p[i] /= s;
    for (int i = 1; i < n; i++)   // insertion sort, descending
        for (int j = i; j > 0 && p[order[j]] > p[order[j - 1]]; j--) { int o = order[j]; order[j] = order[j - 1]; order[j - 1] = o; }
    int keep = k > 0 && k < n ? k : n;
    double mass = 0;
    for (int i = 0; i < keep; i++) mass += p[order[i]];
    int nucleus = keep;
    if (top_p < 1) {
        double cum = 0;
        for (int i = 0; i < keep; i++) {
            cum += p[order[i]] / mass;
            if (cum >= top_p) { nucleus = i + 1; break; }
        }
    }
    double z = 0;
    for (int i = 0; i < n; i++) out[i] = 0;
    for (int i = 0; i < nucleus; i++) z += p[order[i]];
    for (int i = 0; i < nucleus; i++) out[order[i]] = p[order[i]] / z;
}

START_TEST(test_every_knob_combination) {
    const double temps[] = {0.05, 1.0, 1.6};
    const int ks[] = {0, 1, 3, 7, 9, 1000000};
    const double ps[] = {1e-6, 0.5, 0.8, 1.0};
    enum { N = 8, DRAWS = 10000 };
    float scratch[2 * N];
    for (size_t a = 0; a < sizeof temps / sizeof *temps; a++)
        for (size_t b = 0; b < sizeof ks / sizeof *ks; b++)
            for (size_t c = 0; c < sizeof ps / sizeof *ps; c++) {
                eng_sampler s = {(float)temps[a], ks[b], (float)ps[c]};
                double want[N];
                ref_dist(temps[a], ks[b], ps[c], knob_logits, N, want);
                int count[N] = {0};
                eng_rng rng;
                eng_rng_seed(&rng, 1000 + a * 100 + b * 10 + c);
                for (int d = 0; d < DRAWS; d++) {
                    int tok = eng_sample(&s, knob_logits, N, &rng, scratch);
                    ck_assert_msg(tok >= 0 && tok < N, "T=%g k=%d p=%g: token %d out of range", temps[a], ks[b], ps[c], tok);
                    count[tok]++;
                }
                for (int i = 0; i < N; i++) {
                    // 5 standard deviations, plus 3 draws for the discreteness of rare tokens
                    double f = (double)count[i] / DRAWS, sd = sqrt(want[i] * (1 - want[i]) / DRAWS);
                    if (want[i] == 0)
                        ck_assert_msg(count[i] == 0, "T=%g k=%d p=%g: token %d drawn %d times, outside the candidates",
                                      temps[a], ks[b], ps[c], i, count[i]);
                    else
                        ck_assert_msg(fabs(f - want[i]) <= 5 * sd + 3.0 / DRAWS, "T=%g k=%d p=%g: token %d freq %f want %f",
                                      temps[a], ks[b], ps[c], i, f, want[i]);
                }
            }
}
END_TEST

// The two requests that used to kill the daemon: top-p computed as if the
// top-k candidates held all the mass kept nothing and returned idx[-1].
START_TEST(test_top_k_then_tiny_top_p_regression) {
    enum { N = 96 };
    float x[N], scratch[2 * N];
    eng_rng rng;
    eng_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) x[i] = eng_rng_normal(&rng);   // flat-ish: top-2 mass well below 0.9
    const eng_sampler cases[] = {{1.0f, 2, 0.1f}, {1.0f, 3, 0.5f}, {0.7f, 1, 0.01f}, {2.0f, 5, 1e-7f}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int best = eng_argmax(x, N);
        for (int d = 0; d < 200; d++) {
            int tok = eng_sample(&cases[c], x, N, &rng, scratch);
            ck_assert_int_ge(tok, 0);
            ck_assert_int_lt(tok, N);
            if (cases[c].top_p <= 0.1f) ck_assert_int_eq(tok, best);   // the nucleus is the top token alone
        }
    }
}
END_TEST

// Extremes: temperature tiny is greedy; top_k beyond the vocabulary is off;
// NaN logits (a broken checkpoint) still give a valid id.
START_TEST(test_extreme_knobs) {
    float scratch[16];
    eng_rng rng;
    eng_rng_seed(&rng, 9);
    eng_sampler cold = {1e-6f, 0, 1};
    for (int d = 0; d < 100; d++) ck_assert_int_eq(eng_sample(&cold, knob_logits, 8, &rng, scratch), 1);
    eng_sampler wide = {1.0f, 1 << 30, 1e-9f};
    for (int d = 0; d < 100; d++) ck_assert_int_eq(eng_sample(&wide, knob_logits, 8, &rng, scratch), 1);
    float nan_logits[8] = {NAN, 1, NAN, 2, NAN, NAN, 0, NAN};
    eng_sampler any = {1.0f, 3, 0.5f};
    for (int d = 0; d < 100; d++) {
        int tok = eng_sample(&any, nan_logits, 8, &rng, scratch);
        ck_assert(tok >= 0 && tok < 8);
    }
    float all_nan[4] = {NAN, NAN, NAN, NAN};
    int tok = eng_sample(&any, all_nan, 4, &rng, scratch);
    ck_assert(tok >= 0 && tok < 4);
    float one = 3.0f;
    ck_assert_int_eq(eng_sample(&any, &one, 1, &rng, scratch), 0);
}
END_TEST

// Every CPU level's softmax (vector exp on AVX2 / AVX-512): over 37 tokens
// (full vectors and a tail) with NaN, -inf and very negative logits, the
// frequencies of temperature sampling match double-precision softmax, and
// the NaN / -inf / far-below tokens are never drawn.
START_TEST(test_levels) {
    enum { V = 37, DRAWS = 200000 };
    float x[V];
    for (int i = 0; i < V; i++) x[i] = (float)((i * 7) % 11) * 0.3f - 1.0f;
    x[3] = NAN; x[17] = -INFINITY; x[33] = -500.0f; x[36] = NAN;
    double p[V], sum = 0;
    for (int i = 0; i < V; i++) { p[i] = isfinite(x[i]) ? exp((double)x[i] / 0.7) : 0; sum += p[i]; }
    for (int i = 0; i < V; i++) p[i] /= sum;
    eng_cpu_level max = eng_cpu_level_max();
    for (int lvl = ENG_CPU_GENERIC; lvl <= (int)max; lvl++) {
        ck_assert_int_eq(eng_cpu_set_level((eng_cpu_level)lvl, NULL), 0);
        eng_sampler s = {0.7f, 0, 1};
        eng_rng rng;
        eng_rng_seed(&rng, 5);
        float scratch[2 * V];
        int count[V] = {0};
        for (int d = 0; d < DRAWS; d++) count[eng_sample(&s, x, V, &rng, scratch)]++;
        for (int i = 0; i < V; i++)
            ck_assert_msg(fabs((double)count[i] / DRAWS - p[i]) < 0.004, "%s token %d: freq %f prob %f",
                          eng_cpu_level_name((eng_cpu_level)lvl), i, (double)count[i] / DRAWS, p[i]);
        ck_assert_int_eq(count[3] + count[17] + count[33] + count[36], 0);
    }
    eng_cpu_set_level(max, NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_temperature_frequencies);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_seed_determinism);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_large_vocab_top_k);
    tcase_add_test(tc, test_every_knob_combination);
    tcase_add_test(tc, test_top_k_then_tiny_top_p_regression);
    tcase_add_test(tc, test_extreme_knobs);
    tcase_add_test(tc, test_levels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
