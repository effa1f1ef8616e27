// test_act.c — the language models' activations (eng_gelu_forward,
// eng_swiglu_forward) on every CPU level this machine can run: within 4e-7
// relative plus 1e-7 |x| (the tanh form cancels where tanh is near -1) of
// the double-precision formulas over
// [-30, 30] and at the extremes (±100, ±0, tiny values), for every length
// 1..40 (each vector tail), in place too; and the value of an element does
// not depend on the length of the call it is in (batch invariance).
#include "engine/core/ops.h"

#include <check.h>                 // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_fill
#include <math.h>                  // tanh, exp, fabs
#include <stdlib.h>                // malloc, free
#include <string.h>                // memcmp, memcpy
#include "engine/core/cpu.h"       // eng_cpu_set_level, eng_cpu_level_max
#include "engine/core/ops_seq.h"   // eng_swiglu_forward

enum { N = 4096 };

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double swiglu_ref(double g, double u) { return g / (1.0 + exp(-g)) * u; }

static void inputs(float *x, float *u) {
    tu_fill(x, N, -30, 30);
    tu_fill(u, N, -2, 2);
    static const float special[] = {100.0f, -100.0f, 0.0f, -0.0f, 1e-30f, -1e-30f, 88.5f, -88.5f, 3.0f, -3.0f};
    memcpy(x, special, sizeof special);
}

static void check(const char *what, const float *got, const double *want, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-30 + 4e-7 * fabs(want[i]) + 1e-7 * fabs(x[i]), "%s %s [%zu]: %.9g want %.9g",
                      eng_cpu_level_name(eng_cpu_level_get()), what, i, got[i], want[i]);
}

START_TEST(test_levels) {
    float *x = malloc(N * sizeof(float)), *u = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    float *part = malloc(N * sizeof(float));
    double *want = malloc(N * sizeof(double));
    inputs(x, u);
    eng_cpu_level max = eng_cpu_level_max();
    for (int lvl = ENG_CPU_GENERIC; lvl <= (int)max; lvl++) {
        ck_assert_int_eq(eng_cpu_set_level((eng_cpu_level)lvl, NULL), 0);
        for (size_t i = 0; i < N; i++) want[i] = gelu_ref(x[i]);
        eng_gelu_forward(y, x, N);
        check("gelu", y, want, x, N);
        for (size_t n = 1; n <= 40; n++) {   // every tail; the same bits as in the long call
            eng_gelu_forward(part, x + 3, n);
            ck_assert_msg(!memcmp(part, y + 3, n * sizeof(float)), "gelu: length %zu changes bits", n);
        }
        memcpy(part, x, N * sizeof(float));
        eng_gelu_forward(part, part, N);   // in place
        ck_assert(!memcmp(part, y, N * sizeof(float)));
        for (size_t i = 0; i < N; i++) want[i] = swiglu_ref(x[i], u[i]);
        eng_swiglu_forward(y, x, u, N);
        check("swiglu", y, want, x, N);
        for (size_t n = 1; n <= 40; n++) {
            eng_swiglu_forward(part, x + 5, u + 5, n);
            ck_assert_msg(!memcmp(part, y + 5, n * sizeof(float)), "swiglu: length %zu changes bits", n);
        }
        memcpy(part, x, N * sizeof(float));
        eng_swiglu_forward(part, part, u, N);
        ck_assert(!memcmp(part, y, N * sizeof(float)));
    }
    eng_cpu_set_level(max, NULL);
    free(x); free(u); free(y); free(part); free(want);
}
END_TEST

static Suite *act_suite(void) {
    Suite *s = suite_create("act");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_levels);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(act_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
