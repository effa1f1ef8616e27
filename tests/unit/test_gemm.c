// test_gemm.c — eng_gemm_nt (engine/core/gemm.h) on every ISA path this CPU
// can run, against a double-precision reference; batch invariance bit for
// bit (a row's result is the same for every row count, row position and
// column split); the CPU level override and its log name (engine/core/cpu.h).
#include <check.h>   // START_TEST, ck_assert_*
#include <math.h>    // fabs, NAN
#include <stdint.h>  // uint64_t
#include <stdio.h>   // fprintf, fopen
#include <stdlib.h>  // setenv, unsetenv, free
#include <string.h>  // memcmp, strstr

#include "engine/core/cpu.h"   // eng_cpu_*
#include "engine/core/gemm.h"  // eng_gemm_nt, eng_gemm_nt_level
#include "engine/core/util.h"  // eng_xcalloc

static float *fvec(size_t n) { return eng_xcalloc(n ? n : 1, sizeof(float)); }

static void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

// The paths to test: every level up to what the CPU offers.
static int n_levels(void) { return (int)eng_cpu_level_max() + 1; }

// ---------------------------------------------------------------- vs reference

START_TEST(test_gemm_vs_reference)
{
    eng_cpu_level lvl = (eng_cpu_level)_i;
    if (_i >= n_levels()) {
        fprintf(stderr, "test_gemm: this CPU cannot run %s kernels; skipped\n", eng_cpu_level_name(lvl));
        return;
    }
    const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33, 128};
    const int Ns[] = {1, 3, 17, 37};
    const int Ks[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 63, 100, 257, 768};
    const int PAD = 5;   // every leading dimension is wider than the row: strides must be honoured
    const int MAXM = 128, MAXN = 37, MAXK = 768;
    float *A = fvec((size_t)MAXM * (MAXK + PAD)), *B = fvec((size_t)MAXN * (MAXK + PAD));
    float *out = fvec((size_t)MAXM * (MAXN + PAD)), *init = fvec((size_t)MAXM * (MAXN + PAD));
    fill_uniform(A, (size_t)MAXM * (MAXK + PAD), -1.0f, 1.0f, 11);
    fill_uniform(B, (size_t)MAXN * (MAXK + PAD), -1.0f, 1.0f, 12);
    size_t bad = 0, cases = 0;
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                for (int acc = 0; acc < 2; acc++) {
                    int M = Ms[mi], N = Ns[ni], K = Ks[ki];
                    size_t lda = (size_t)K + PAD, ldb = (size_t)K + 3, ldo = (size_t)N + 2;
                    size_t n = (size_t)M * ldo;
                    fill_uniform(init, n, -2.0f, 2.0f, 100 + cases);
                    memcpy(out, init, n * sizeof(float));
                    if (!acc)   // accumulate = 0 must ignore the old contents: poison them
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < N; j++) out[i * ldo + j] = NAN;
                    eng_gemm_nt_level(lvl, out, ldo, A, lda, B, ldb, M, N, K, acc);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < (int)ldo; j++) {
                            double want, tol;
                            if (j >= N) {   // the padding between rows is never written
                                want = init[i * ldo + j];
                                tol = 0.0;
                            } else {
                                double s = 0.0, sa = 0.0;
                                for (int k = 0; k < K; k++) {
                                    double p = (double)A[i * lda + k] * B[j * ldb + k];
                                    s += p;
                                    sa += fabs(p);
                                }
                                want = (acc ? init[i * ldo + j] : 0.0) + s;
                                // float sums of K products in any order: ~1e-7 * K^0.5 * sum|p|
                                tol = 2e-6 * sa + 1e-6 * fabs(want);
                            }
                            double got = out[i * ldo + j];
                            if (!(fabs(got - want) <= tol)) {
                                if (bad < 8)
                                    fprintf(stderr, "  %s M=%d N=%d K=%d acc=%d [%d,%d]: got %.9g want %.9g\n",
                                            eng_cpu_level_name(lvl), M, N, K, acc, i, j, got, want);
                                bad++;
                            }
                        }
                    cases++;
                }
    ck_assert_msg(bad == 0, "%s: %zu values out of tolerance over %zu cases", eng_cpu_level_name(lvl), bad, cases);
    free(A);
    free(B);
    free(out);
    free(init);
}
END_TEST

START_TEST(test_gemm_empty)
{
    // M or N <= 0: nothing written; K = 0: the sums are 0.
    float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8}, out[4] = {9, 9, 9, 9};
    for (int l = 0; l < n_levels(); l++) {
        eng_gemm_nt_level((eng_cpu_level)l, out, 2, A, 2, B, 2, 0, 2, 2, 0);
        eng_gemm_nt_level((eng_cpu_level)l, out, 2, A, 2, B, 2, 2, 0, 2, 0);
        ck_assert(out[0] == 9 && out[3] == 9);
        eng_gemm_nt_level((eng_cpu_level)l, out, 2, A, 2, B, 2, 2, 2, 0, 1);
        ck_assert(out[0] == 9 && out[3] == 9);
        eng_gemm_nt_level((eng_cpu_level)l, out, 2, A, 2, B, 2, 2, 2, 0, 0);
        ck_assert(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0);
        for (int i = 0; i < 4; i++) out[i] = 9;
    }
}
END_TEST

// ---------------------------------------------------------------- batch invariance

// For one path and K: the full product of 128 rows x 53 columns, then every
// row count M at several row offsets, and several column splits (each piece
// called on its own, as the thread pool does), must give the same bits.
START_TEST(test_gemm_invariant)
{
    const int Ks[] = {5, 17, 100, 288, 768};
    const int MAXM = 128, N = 53, MAXK = 768;
    const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33, 64, 127};
    const int splits[][4] = {{1, 2, 3, 53}, {7, 8, 24, 53}, {13, 26, 39, 53}, {16, 32, 48, 53}, {52, 53, 53, 53}};
    float *A = fvec((size_t)MAXM * MAXK), *B = fvec((size_t)N * MAXK);
    float *full = fvec((size_t)MAXM * N), *part = fvec((size_t)MAXM * N);
    fill_uniform(A, (size_t)MAXM * MAXK, -1.0f, 1.0f, 21);
    fill_uniform(B, (size_t)N * MAXK, -1.0f, 1.0f, 22);
    size_t bad = 0;
    for (int l = 0; l < n_levels(); l++) {
        eng_cpu_level lvl = (eng_cpu_level)l;
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
            int K = Ks[ki];
            eng_gemm_nt_level(lvl, full, N, A, K, B, K, MAXM, N, K, 0);
            for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
                int M = Ms[mi];
                for (int r0 = 0; r0 + M <= MAXM; r0 += M < 16 ? 37 : 61) {   // rows r0..r0+M-1 alone
                    eng_gemm_nt_level(lvl, part, N, A + (size_t)r0 * K, K, B, K, M, N, K, 0);
                    if (memcmp(part, full + (size_t)r0 * N, (size_t)M * N * sizeof(float)) != 0) {
                        if (bad < 8)
                            fprintf(stderr, "  %s K=%d: rows %d..%d alone differ from the full product\n",
                                    eng_cpu_level_name(lvl), K, r0, r0 + M - 1);
                        bad++;
                    }
                }
            }
            for (size_t si = 0; si < sizeof splits / sizeof *splits; si++) {
                for (int M = 1; M <= MAXM; M = M < 9 ? M + 1 : M * 2) {
                    int j0 = 0;
                    for (int p = 0; p < 4; p++) {   // column pieces [j0, splits[si][p])
                        int j1 = splits[si][p];
                        eng_gemm_nt_level(lvl, part + j0, N, A, K, B + (size_t)j0 * K, K, M, j1 - j0, K, 0);
                        j0 = j1;
                    }
                    if (memcmp(part, full, (size_t)M * N * sizeof(float)) != 0) {
                        if (bad < 8)
                            fprintf(stderr, "  %s K=%d M=%d: column split %zu differs from the full product\n",
                                    eng_cpu_level_name(lvl), K, M, si);
                        bad++;
                    }
                }
            }
            // accumulate adds the same bits: (init + sum) with sum computed as above
            for (int i = 0; i < 9 * N; i++) part[i] = 0.25f * (float)(i % 7);
            eng_gemm_nt_level(lvl, part, N, A, K, B, K, 9, N, K, 1);
            for (int i = 0; i < 9 * N; i++)
                if (part[i] != 0.25f * (float)(i % 7) + full[i]) {
                    if (bad < 8) fprintf(stderr, "  %s K=%d: accumulate is not init + sum\n", eng_cpu_level_name(lvl), K);
                    bad++;
                    break;
                }
        }
    }
    ck_assert_msg(bad == 0, "%zu batch-invariance violations", bad);
    free(A);
    free(B);
    free(full);
    free(part);
}
END_TEST

// ---------------------------------------------------------------- CPU level

// The features from /proc/cpuinfo's flags line (the kernel's own cpuid read).
static int cpuinfo_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return -1;
    char line[8192];
    int has = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0) {
            has = 0;
            for (char *t = strtok(strchr(line, ':') + 1, " \n"); t; t = strtok(NULL, " \n"))
                if (strcmp(t, flag) == 0) has = 1;
            break;
        }
    fclose(f);
    return has;
}

START_TEST(test_cpu_detect)
{
    const eng_cpu_features *f = eng_cpu_features_get();
    const struct { const char *flag; int got; } pairs[] = {
        {"avx2", f->avx2}, {"fma", f->fma}, {"avx512f", f->avx512f}, {"avx512bw", f->avx512bw},
        {"avx512vl", f->avx512vl}, {"avx512_vnni", f->avx512vnni}, {"avx_vnni", f->avxvnni},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        int want = cpuinfo_has(pairs[i].flag);
        if (want < 0) return;   // no /proc/cpuinfo flags line: nothing to compare with
        ck_assert_msg(pairs[i].got == want, "%s: detected %d, /proc/cpuinfo says %d", pairs[i].flag, pairs[i].got, want);
    }
    eng_cpu_level max = eng_cpu_level_max();
    ck_assert_int_eq(max >= ENG_CPU_AVX2, f->avx2 && f->fma);
    ck_assert_int_eq(max == ENG_CPU_AVX512, f->avx2 && f->fma && f->avx512f && f->avx512bw && f->avx512vl);
}
END_TEST

START_TEST(test_cpu_override)
{
    char *err = NULL, line[200];
    eng_cpu_level max = eng_cpu_level_max();
    ck_assert_str_eq(eng_cpu_level_name(ENG_CPU_GENERIC), "generic");
    ck_assert_str_eq(eng_cpu_level_name(ENG_CPU_AVX2), "avx2");
    ck_assert_str_eq(eng_cpu_level_name(ENG_CPU_AVX512), "avx512");
    ck_assert_int_eq(eng_cpu_level_parse("avx2"), ENG_CPU_AVX2);
    ck_assert_int_eq(eng_cpu_level_parse("AVX2"), -1);

    // the API: each level the CPU has is taken, named in the log line, and used by eng_gemm_nt
    float A[3 * 40], B[5 * 40], got[15], want[15];
    fill_uniform(A, 120, -1, 1, 5);
    fill_uniform(B, 200, -1, 1, 6);
    for (int l = 0; l <= (int)max; l++) {
        ck_assert_int_eq(eng_cpu_set_level((eng_cpu_level)l, &err), 0);
        ck_assert_int_eq(eng_cpu_level_get(), l);
        eng_cpu_describe(line, sizeof line);
        ck_assert_msg(strncmp(line, eng_cpu_level_name((eng_cpu_level)l), strlen(eng_cpu_level_name((eng_cpu_level)l))) == 0 &&
                          line[strlen(eng_cpu_level_name((eng_cpu_level)l))] == ' ',
                      "log line '%s' for level %d", line, l);
        eng_gemm_nt(got, 5, A, 40, B, 40, 3, 5, 37, 0);
        eng_gemm_nt_level((eng_cpu_level)l, want, 5, A, 40, B, 40, 3, 5, 37, 0);
        ck_assert(memcmp(got, want, sizeof got) == 0);
    }
    if (max < ENG_CPU_AVX512) {   // never above what the CPU has
        ck_assert_int_eq(eng_cpu_set_level(ENG_CPU_AVX512, &err), -1);
        ck_assert_ptr_nonnull(strstr(err, "cannot run avx512"));
        free(err);
        err = NULL;
    }
    ck_assert_int_eq(eng_cpu_set_level(ENG_CPU_N_LEVELS, &err), -1);
    free(err);
    err = NULL;

    // the environment: INFERD_CPU lowers the level, a bad value is refused with the maximum kept
    setenv("INFERD_CPU", "generic", 1);
    ck_assert_int_eq(eng_cpu_init(&err), 0);
    ck_assert_int_eq(eng_cpu_level_get(), ENG_CPU_GENERIC);
    eng_cpu_describe(line, sizeof line);
    ck_assert_msg(strncmp(line, "generic (", 9) == 0 && strstr(line, "INFERD_CPU=generic"), "%s", line);
    setenv("INFERD_CPU", "sse9", 1);
    ck_assert_int_eq(eng_cpu_init(&err), -1);
    ck_assert_ptr_nonnull(strstr(err, "INFERD_CPU=sse9: unknown level"));
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_cpu_level_get(), max);
    if (max < ENG_CPU_AVX512) {
        setenv("INFERD_CPU", "avx512", 1);
        ck_assert_int_eq(eng_cpu_init(&err), -1);
        ck_assert_ptr_nonnull(strstr(err, "offers up to"));
        free(err);
        err = NULL;
        ck_assert_int_eq(eng_cpu_level_get(), max);
    }
    unsetenv("INFERD_CPU");
    ck_assert_int_eq(eng_cpu_init(&err), 0);
    ck_assert_int_eq(eng_cpu_level_get(), max);
}
END_TEST

static Suite *gemm_suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gemm_vs_reference, 0, ENG_CPU_N_LEVELS);
    tcase_add_test(tc, test_gemm_empty);
    tcase_add_test(tc, test_gemm_invariant);
    suite_add_tcase(s, tc);
    tc = tcase_create("cpu");
    tcase_add_test(tc, test_cpu_detect);
    tcase_add_test(tc, test_cpu_override);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gemm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
