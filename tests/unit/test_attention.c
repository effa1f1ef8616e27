// test_attention.c — attention against a KV cache (eng_attention_cached_*,
// engine/core/ops_seq.c and its AVX2 / AVX-512 rows in attention_simd.c),
// on every CPU level this machine can run: equal to a double-precision
// softmax(q K^T / sqrt(hd)) V for head sizes that take the vector rows and
// ones that do not, context lengths around every vector tail, grouped query
// heads, and scores large enough that most weights underflow; and batch
// invariant: a row's bits are the same whether it comes alone, in a chunk
// of n rows (the AVX-512 path takes four rows at a time where it can), or
// with a different head range, and whatever the cache layout
// (rows interleaved by head, or head-major).
#include "engine/core/ops_seq.h"

#include <check.h>                 // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_fill
#include <math.h>                  // exp, sqrt
#include <stdlib.h>                // malloc, free
#include <string.h>                // memcmp
#include "engine/core/cpu.h"       // eng_cpu_set_level, eng_cpu_level_max

// out[n, NH*hd] for rows at positions pos.. (row i sees keys 0..pos+i), in double.
static void reference(double *out, const float *q, const float *k, const float *v, int n, int pos, int NH, int NKV,
                      int hd) {
    int rep = NH / NKV, qs = NH * hd, ks = NKV * hd;
    double *p = malloc((size_t)(pos + n) * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int h = 0; h < NH; h++) {
            int len = pos + i + 1;
            const float *qr = q + (size_t)i * qs + (size_t)h * hd;
            double m = -INFINITY, sum = 0;
            for (int t = 0; t < len; t++) {
                const float *kr = k + (size_t)t * ks + (size_t)(h / rep) * hd;
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)qr[e] * kr[e];
                p[t] = d / sqrt((double)hd);
                m = p[t] > m ? p[t] : m;
            }
            for (int t = 0; t < len; t++) sum += p[t] = exp(p[t] - m);
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int t = 0; t < len; t++) o += p[t] * v[(size_t)t * ks + (size_t)(h / rep) * hd + e];
                out[(size_t)i * qs + (size_t)h * hd + e] = o / sum;
            }
        }
    free(p);
}

static const int head_dims[] = {16, 24, 32, 40, 48, 64, 128};   // 24, 40: not a multiple of 16 (40: nor of 8)

// Every level x head size x length up to 70 (all tails of 4, 8 and 16), with
// grouped heads (NH 4, NKV 2); |q|, |k| up to `amp` (amp 6: scores up to ~hd,
// most exponentials far below the largest).
static void check_level(eng_cpu_level lvl, double amp) {
    char *err = NULL;
    ck_assert_msg(eng_cpu_set_level(lvl, &err) == 0, "%s", err ? err : "");
    enum { NH = 4, NKV = 2, T = 70 };
    for (size_t hi = 0; hi < sizeof head_dims / sizeof head_dims[0]; hi++) {
        int hd = head_dims[hi], qs = NH * hd, ks = NKV * hd;
        float *q = malloc((size_t)T * qs * sizeof(float)), *k = malloc((size_t)T * ks * sizeof(float));
        float *v = malloc((size_t)T * ks * sizeof(float)), *got = malloc((size_t)T * qs * sizeof(float));
        float *one = malloc((size_t)qs * sizeof(float)), *sc = malloc(eng_attention_cached_scratch(T, 0) * sizeof(float));
        double *want = malloc((size_t)T * qs * sizeof(double));
        tu_fill(q, (size_t)T * qs, -amp, amp);
        tu_fill(k, (size_t)T * ks, -amp, amp);
        tu_fill(v, (size_t)T * ks, -1, 1);
        reference(want, q, k, v, T, 0, NH, NKV, hd);
        // the whole prompt at once
        eng_attention_cached_forward(got, sc, q, k, v, T, 0, NH, NKV, hd);
        for (size_t i = 0; i < (size_t)T * qs; i++)
            ck_assert_msg(fabs(got[i] - want[i]) <= 2e-5 + 2e-5 * fabs(want[i]), "%s hd %d amp %g [%zu]: %.8g want %.8g",
                          eng_cpu_level_name(lvl), hd, amp, i, got[i], want[i]);
        // each row alone (decode), and in chunks of 5: the same bits
        for (int p = 0; p < T; p++) {
            eng_attention_cached_forward(one, sc, q + (size_t)p * qs, k, v, 1, p, NH, NKV, hd);
            ck_assert_msg(!memcmp(one, got + (size_t)p * qs, (size_t)qs * sizeof(float)),
                          "%s hd %d: row %d alone differs from the prompt at once", eng_cpu_level_name(lvl), hd, p);
        }
        float *chunked = malloc((size_t)T * qs * sizeof(float));
        for (int p = 0; p < T; p += 5) {
            int n = T - p < 5 ? T - p : 5;
            eng_attention_cached_forward(chunked + (size_t)p * qs, sc, q + (size_t)p * qs, k, v, n, p, NH, NKV, hd);
        }
        ck_assert_msg(!memcmp(chunked, got, (size_t)T * qs * sizeof(float)), "%s hd %d: chunks of 5 differ",
                      eng_cpu_level_name(lvl), hd);
        // chunks of 16 (the server's prefill_chunk) after a first one of 7 or 12: groups of four
        // rows starting at every length mod 4, crossing the 16-key blocks
        for (int first = 7; first <= 12; first += 5) {
            memset(chunked, 0xff, (size_t)T * qs * sizeof(float));
            for (int p = 0; p < T;) {
                int n = p == 0 ? first : T - p < 16 ? T - p : 16;
                eng_attention_cached_forward(chunked + (size_t)p * qs, sc, q + (size_t)p * qs, k, v, n, p, NH, NKV, hd);
                p += n;
            }
            ck_assert_msg(!memcmp(chunked, got, (size_t)T * qs * sizeof(float)), "%s hd %d: chunks of 16 after %d differ",
                          eng_cpu_level_name(lvl), hd, first);
        }
        // heads one at a time (the pool's split)
        for (int h = 0; h < NH; h++)
            eng_attention_cached_heads(chunked, sc, q, k, v, T, 0, NH, NKV, hd, h, h + 1);
        ck_assert_msg(!memcmp(chunked, got, (size_t)T * qs * sizeof(float)), "%s hd %d: head by head differs",
                      eng_cpu_level_name(lvl), hd);
        // the same cache head-major ([NKV][T][hd], eng_attention_cached_strided): the same bits
        float *kh = malloc((size_t)T * ks * sizeof(float)), *vh = malloc((size_t)T * ks * sizeof(float));
        for (int t = 0; t < T; t++)
            for (int g = 0; g < NKV; g++) {
                memcpy(kh + ((size_t)g * T + t) * hd, k + (size_t)t * ks + (size_t)g * hd, (size_t)hd * sizeof(float));
                memcpy(vh + ((size_t)g * T + t) * hd, v + (size_t)t * ks + (size_t)g * hd, (size_t)hd * sizeof(float));
            }
        memset(chunked, 0xff, (size_t)T * qs * sizeof(float));
        eng_attention_cached_strided(chunked, sc, q, kh, vh, T, 0, NH, NKV, hd, 0, NH, (size_t)T * hd, (size_t)hd);
        ck_assert_msg(!memcmp(chunked, got, (size_t)T * qs * sizeof(float)), "%s hd %d: head-major cache differs",
                      eng_cpu_level_name(lvl), hd);
        free(kh); free(vh);
        free(chunked); free(q); free(k); free(v); free(got); free(one); free(sc); free(want);
    }
}

START_TEST(test_levels) {
    eng_cpu_level max = eng_cpu_level_max();
    for (int lvl = ENG_CPU_GENERIC; lvl <= (int)max; lvl++) {
        check_level((eng_cpu_level)lvl, 1.0);
        check_level((eng_cpu_level)lvl, 6.0);
    }
    eng_cpu_set_level(max, NULL);
}
END_TEST

static Suite *attention_suite(void) {
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_levels);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(attention_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
