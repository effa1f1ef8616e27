// test_gemm_q8.c — engine/core/gemm_q8.c: quantization error bounds on known
// vectors, every kernel this CPU runs against a naive double-precision product
// of the dequantized operands and bit for bit against the plain C kernel,
// and batch invariance (a row's result whatever the row count and column block).
#include "engine/core/gemm_q8.h"

#include <check.h>      // Check unit-test framework
#include <math.h>       // fabsf
#include <stdio.h>      // fprintf
#include <stdlib.h>     // malloc, free
#include <string.h>     // memcmp
#include "engine/core/cpu.h"    // eng_cpu_set_level
#include "engine/core/rng.h"    // eng_rng
#include "engine/core/util.h"   // eng_xaligned

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    eng_rng r;
    eng_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * eng_rng_normal(&r);
}

// ---------------------------------------------------------------- quantization

START_TEST(test_quantize_known) {
    // one group of 32: max |w| = 2.54 -> scale 0.02; 1.0 -> 50, -0.01 -> -0.5 -> round half even: 0
    float w[32] = {2.54f, 1.0f, -0.01f, -2.54f, 0.03f};
    int8_t q[32];
    float s;
    eng_q8_quantize(q, &s, w, 1, 32, 32);
    ck_assert_float_eq_tol(s, 0.02f, 1e-8f);
    ck_assert_int_eq(q[0], 127);
    ck_assert_int_eq(q[1], 50);
    ck_assert_int_eq(q[2], 0);
    ck_assert_int_eq(q[3], -127);
    ck_assert_int_eq(q[4], 2);   // 1.5 -> 2
    ck_assert_int_eq(q[5], 0);
    // an all-zero group: scale 0, codes 0
    float z[64] = {0};
    int8_t qz[64];
    float sz = 1;
    eng_q8_quantize(qz, &sz, z, 1, 64, 64);
    ck_assert(sz == 0.0f);
    for (int i = 0; i < 64; i++) ck_assert_int_eq(qz[i], 0);
}
END_TEST

START_TEST(test_quantize_error_bound) {
    // |w - dequant(w)| <= scale / 2 (plus float rounding), scale = max|w|/127 per group
    int n = 7, k = 256;
    for (int G = 32; G <= 64; G *= 2) {
        float *w = malloc((size_t)n * k * sizeof(float)), *d = malloc((size_t)n * k * sizeof(float));
        int8_t *q = malloc((size_t)n * k);
        float *s = malloc((size_t)n * (k / G) * sizeof(float));
        fill(w, (size_t)n * k, 3, 0.7f);
        w[5] = 40.0f;   // an outlier: only its group's precision suffers
        eng_q8_quantize(q, s, w, n, k, G);
        eng_q8_dequantize(d, q, s, n, k, G);
        for (int r = 0; r < n; r++)
            for (int g = 0; g < k / G; g++) {
                float amax = 0;
                for (int t = 0; t < G; t++) amax = fmaxf(amax, fabsf(w[r * k + g * G + t]));
                ck_assert_float_eq_tol(s[r * (k / G) + g], amax / 127.0f, amax * 1e-6f);
                for (int t = 0; t < G; t++) {
                    int i = r * k + g * G + t;
                    ck_assert_msg(fabsf(w[i] - d[i]) <= 0.5f * s[r * (k / G) + g] * (1 + 1e-5f) + 1e-7f,
                                  "G %d [%d]: %g -> %g (scale %g)", G, i, w[i], d[i], s[r * (k / G) + g]);
                }
            }
        free(w); free(d); free(q); free(s);
    }
}
END_TEST

// Activation rows quantized by the AVX2 path (cpu.h level avx2 and up) and
// the plain C one (generic): every array the same bytes, with all-zero
// groups, NaN, infinities, exact halves (round half to even) and values
// that clamp.
START_TEST(test_quantize_rows_paths) {
    int m = 3, k = 352;   // 11 groups of 32, 5 of 64 (+ 32: not a whole group of 64, unused)
    float *x = malloc((size_t)m * k * sizeof(float));
    fill(x, (size_t)m * k, 21, 2.0f);
    for (int t = 0; t < 64; t++) x[64 + t] = 0.0f;   // a zero group (either size)
    x[130] = NAN;
    x[200] = INFINITY;
    x[400] = -INFINITY;
    x[420] = 127.0f;   // scale 1: halves are exact below
    x[421] = 2.5f;
    x[422] = -3.5f;
    x[423] = 0.5f;
    x[700] = -1e30f;
    char *err = NULL;
    eng_cpu_level max = eng_cpu_level_max();
    if (max < ENG_CPU_AVX2) {
        fprintf(stderr, "test_gemm_q8: no AVX2: the SIMD quantizer is not tested\n");
        free(x);
        return;
    }
    for (int G = 32; G <= 64; G *= 2) {
        int kk = k / G * G;
        size_t bytes = eng_q8_rows_bytes(m, kk, G);
        void *m0 = eng_xaligned(bytes), *m1 = eng_xaligned(bytes);
        memset(m0, 0x5a, bytes);
        memset(m1, 0x5a, bytes);
        eng_q8_rows a0, a1;
        eng_q8_rows_init(&a0, m0, m, kk, G);
        eng_q8_rows_init(&a1, m1, m, kk, G);
        ck_assert_int_eq(eng_cpu_set_level(ENG_CPU_GENERIC, &err), 0);
        eng_q8_quantize_rows(&a0, x, k);
        ck_assert_int_eq(eng_cpu_set_level(max, &err), 0);
        eng_q8_quantize_rows(&a1, x, k);
        ck_assert_msg(memcmp(m0, m1, bytes) == 0, "G %d: the AVX2 quantizer differs from the C one", G);
        if (G == 32) {   // the known codes of group 13 (x[416..448), scale 1)
            ck_assert(a1.s[13] == 1.0f);
            ck_assert_int_eq(a1.q[421], 2);
            ck_assert_int_eq(a1.q[422], -4);
            ck_assert_int_eq(a1.q[423], 0);
            ck_assert(a1.s[2] == 0.0f);   // the zero group
        }
        free(m0);
        free(m1);
    }
    free(x);
}
END_TEST

// ---------------------------------------------------------------- kernels

typedef struct {
    int M, N, K, G;
    float *x, *w;          // fp32 operands [M, K], [N, K]
    int8_t *wq, *wp;
    float *ws;
    eng_q8_matrix B;
    void *amem;
    eng_q8_rows A;
} problem;

static void problem_make(problem *p, int M, int N, int K, int G, uint64_t seed) {
    p->M = M; p->N = N; p->K = K; p->G = G;
    p->x = malloc((size_t)M * K * sizeof(float));
    p->w = malloc((size_t)N * K * sizeof(float));
    p->wq = malloc((size_t)N * K);
    p->ws = malloc((size_t)N * (K / G) * sizeof(float));
    fill(p->x, (size_t)M * K, seed, 1.0f);
    fill(p->w, (size_t)N * K, seed + 1, 0.05f);
    eng_q8_quantize(p->wq, p->ws, p->w, N, K, G);
    p->wp = malloc((size_t)N * eng_q8_packed_row_bytes(K, G));
    eng_q8_pack(p->wp, p->wq, N, K, G);
    p->B = (eng_q8_matrix){.q = p->wq, .p = p->wp, .s = p->ws, .n = N, .k = K, .group = G};
    p->amem = eng_xaligned(eng_q8_rows_bytes(M, K, G));
    eng_q8_rows_init(&p->A, p->amem, M, K, G);
    eng_q8_quantize_rows(&p->A, p->x, K);
}

static void problem_free(problem *p) {
    free(p->x); free(p->w); free(p->wq); free(p->wp); free(p->ws); free(p->amem);
}

// Shapes: full 16-group blocks, partial blocks (odd group counts for G = 32), one group.
static const int shapes[][4] = {
    {1, 9, 768, 32}, {5, 13, 96, 32}, {3, 7, 32, 32}, {4, 11, 544, 32}, {2, 17, 1024, 64}, {6, 5, 320, 64},
    {1, 3, 64, 64}, {2, 4, 352, 32}, {3, 5, 2048, 32}, {2, 3, 1088, 64}, {1, 2, 1216, 64},
};
enum { N_SHAPES = sizeof shapes / sizeof shapes[0] };

START_TEST(test_kernels_vs_reference) {
    for (int s = 0; s < N_SHAPES; s++) {
        problem p;
        problem_make(&p, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 100 + s);
        int M = p.M, N = p.N, K = p.K, G = p.G;
        // naive: double-precision product of the dequantized operands
        float *xd = malloc((size_t)M * K * sizeof(float)), *wd = malloc((size_t)N * K * sizeof(float));
        eng_q8_dequantize(xd, p.A.q, p.A.s, M, K, G);
        eng_q8_dequantize(wd, p.wq, p.ws, N, K, G);
        float *ref = malloc((size_t)M * N * sizeof(float)), *c_out = malloc((size_t)M * N * sizeof(float));
        float *out = malloc((size_t)M * N * sizeof(float));
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double acc = 0, mag = 0;
                for (int t = 0; t < K; t++) {
                    acc += (double)xd[i * K + t] * wd[j * K + t];
                    mag += fabs((double)xd[i * K + t] * wd[j * K + t]);
                }
                ref[i * N + j] = (float)acc;
                (void)mag;
            }
        ck_assert_int_eq(eng_q8_set_isa(ENG_Q8_C), 0);
        eng_gemm_q8_nt(c_out, N, &p.A, &p.B, M, N, 0);
        for (int i = 0; i < M * N; i++)
            ck_assert_msg(fabsf(c_out[i] - ref[i]) <= 1e-5f * (1 + fabsf(ref[i])) * sqrtf((float)K),
                          "shape %d: c kernel [%d] %g vs naive %g", s, i, c_out[i], ref[i]);
        for (int isa = ENG_Q8_AVX2; isa < ENG_Q8__COUNT; isa++) {
            if (eng_q8_set_isa((eng_q8_isa_t)isa) != 0) {
                fprintf(stderr, "test_gemm_q8: this CPU lacks %s: not tested\n", eng_q8_isa_name((eng_q8_isa_t)isa));
                continue;
            }
            for (int i = 0; i < M * N; i++) out[i] = 1.5f;
            eng_gemm_q8_nt(out, N, &p.A, &p.B, M, N, 1);   // accumulate onto 1.5
            for (int i = 0; i < M * N; i++) ck_assert_float_eq(out[i], 1.5f + c_out[i]);
            eng_gemm_q8_nt(out, N, &p.A, &p.B, M, N, 0);
            ck_assert_msg(memcmp(out, c_out, (size_t)M * N * sizeof(float)) == 0, "shape %d: %s differs from c",
                          s, eng_q8_isa_name((eng_q8_isa_t)isa));
        }
        free(xd); free(wd); free(ref); free(c_out); free(out);
        problem_free(&p);
    }
    eng_q8_reset_isa();
}
END_TEST

// Close to the fp32 product of the unquantized operands (what quantization costs).
START_TEST(test_close_to_fp32) {
    problem p;
    problem_make(&p, 4, 32, 768, 32, 7);
    float *out = malloc(4 * 32 * sizeof(float));
    eng_q8_set_isa(eng_q8_isa_supported(ENG_Q8_AVX512VNNI) ? ENG_Q8_AVX512VNNI : ENG_Q8_C);
    eng_gemm_q8_nt(out, 32, &p.A, &p.B, 4, 32, 0);
    double err = 0, norm = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 32; j++) {
            double r = 0;
            for (int t = 0; t < 768; t++) r += (double)p.x[i * 768 + t] * p.w[j * 768 + t];
            err += (out[i * 32 + j] - r) * (out[i * 32 + j] - r);
            norm += r * r;
        }
    ck_assert_msg(sqrt(err / norm) < 0.01, "relative error %g", sqrt(err / norm));   // ~0.4% expected for Gaussian data
    eng_q8_reset_isa();
    free(out);
    problem_free(&p);
}
END_TEST

// Row i of an M-row product equals the same row alone, and any column block
// [j0, j1) equals those columns of the whole, bit for bit, on every kernel.
START_TEST(test_batch_invariance) {
    problem p;
    problem_make(&p, 9, 37, 544, 32, 11);
    int M = p.M, N = p.N;
    float *all = malloc((size_t)M * N * sizeof(float)), *one = malloc((size_t)N * sizeof(float));
    for (int isa = 0; isa < ENG_Q8__COUNT; isa++) {
        if (eng_q8_set_isa((eng_q8_isa_t)isa) != 0) continue;
        eng_gemm_q8_nt(all, N, &p.A, &p.B, M, N, 0);
        for (int i = 0; i < M; i++) {
            // row i quantized alone
            void *mem = eng_xaligned(eng_q8_rows_bytes(1, p.K, p.G));
            eng_q8_rows a1;
            eng_q8_rows_init(&a1, mem, 1, p.K, p.G);
            eng_q8_quantize_rows(&a1, p.x + (size_t)i * p.K, p.K);
            // in column blocks of 5
            for (int j0 = 0; j0 < N; j0 += 5) {
                int nb = N - j0 < 5 ? N - j0 : 5;
                eng_q8_matrix blk = eng_q8_matrix_rows(&p.B, j0, nb);
                eng_gemm_q8_nt(one + j0, N, &a1, &blk, 1, nb, 0);
            }
            ck_assert_msg(memcmp(one, all + (size_t)i * N, (size_t)N * sizeof(float)) == 0, "%s row %d",
                          eng_q8_isa_name((eng_q8_isa_t)isa), i);
            free(mem);
        }
    }
    eng_q8_reset_isa();
    free(all); free(one);
    problem_free(&p);
}
END_TEST

// The register tiles: every row count 1..17 (tiles of 4, 3, 2 and 1 rows;
// the 1- and 2-row decode tiles), column windows that start anywhere and end
// in every remainder of the column tile (8, 4, 3, 2, 1), and every shape of
// the last block of groups (K / group not a multiple of 16: P = 1, 2, 4, 8,
// 16 lanes, and none), on every kernel this CPU runs: each element bit for
// bit the C reference's, and nothing written outside the window (a wrong
// tile, a wrong row or column offset, or an overrun fails here).
static const int tile_shapes[][2] = {   // K, group
    {512, 32},    // 16 groups: full blocks only
    {768, 32},    // 24: one block + 8 (P = 8; stories110M's dim)
    {96, 32},     // 3 groups: P = 4, no full block
    {544, 32},    // 17: one block + 1 (P = 2)
    {1056, 32},   // 33: two blocks + 1
    {832, 32},    // 26: one block + 10 (P = 16)
    {64, 64},     // 1 group of 64: P = 1
    {320, 64},    // 5: P = 8
    {2048, 64},   // 32: full blocks only
    {1216, 64},   // 19: one block + 3 (P = 4)
};

START_TEST(test_tiles) {
    enum { MAXM = 17, MAXN = 21, LDO = 29 };
    const float sentinel = -12345.5f;
    for (size_t t = 0; t < sizeof tile_shapes / sizeof *tile_shapes; t++) {
        problem p;
        problem_make(&p, MAXM, MAXN, tile_shapes[t][0], tile_shapes[t][1], 300 + t);
        float *ref = malloc((size_t)MAXM * MAXN * sizeof(float)), *out = malloc((size_t)MAXM * LDO * sizeof(float));
        ck_assert_int_eq(eng_q8_set_isa(ENG_Q8_C), 0);
        eng_gemm_q8_nt(ref, MAXN, &p.A, &p.B, MAXM, MAXN, 0);
        for (int isa = ENG_Q8_AVX2; isa < ENG_Q8__COUNT; isa++) {
            if (eng_q8_set_isa((eng_q8_isa_t)isa) != 0) continue;
            const char *name = eng_q8_isa_name((eng_q8_isa_t)isa);
            for (int M = 1; M <= MAXM; M++)
                for (int j0 = 0; j0 <= 5; j0 += 5)   // windows [j0, j0 + n) of the weight rows
                    for (int n = 1; j0 + n <= MAXN; n++) {
                        for (int i = 0; i < MAXM * LDO; i++) out[i] = sentinel;
                        eng_q8_matrix blk = eng_q8_matrix_rows(&p.B, j0, n);
                        eng_gemm_q8_nt(out + 1, LDO, &p.A, &blk, M, n, 0);   // column 0 of out: never written
                        for (int i = 0; i < MAXM; i++)
                            for (int c = 0; c < LDO; c++) {
                                float v = out[i * LDO + c];
                                if (i < M && c >= 1 && c <= n) {
                                    float r = ref[i * MAXN + j0 + c - 1];
                                    if (memcmp(&v, &r, sizeof v) != 0)
                                        ck_abort_msg("%s K %d G %d M %d cols [%d, %d): row %d col %d: %a vs c %a", name,
                                                     p.K, p.G, M, j0, j0 + n, i, j0 + c - 1, v, r);
                                } else if (v != sentinel) {
                                    ck_abort_msg("%s K %d G %d M %d cols [%d, %d): wrote out[%d][%d]", name, p.K, p.G,
                                                 M, j0, j0 + n, i, c);
                                }
                            }
                    }
            // accumulate: out (+)= on top of what is there, the same bits as c + r
            for (int i = 0; i < MAXM * LDO; i++) out[i] = 0.25f * (float)(i % 7);
            eng_gemm_q8_nt(out, LDO, &p.A, &p.B, MAXM, MAXN, 1);
            for (int i = 0; i < MAXM; i++)
                for (int j = 0; j < MAXN; j++)
                    ck_assert_msg(out[i * LDO + j] == 0.25f * (float)((i * LDO + j) % 7) + ref[i * MAXN + j],
                                  "%s K %d accumulate [%d][%d]", name, p.K, i, j);
        }
        free(ref); free(out);
        problem_free(&p);
    }
    eng_q8_reset_isa();
}
END_TEST

// Many rows of long K: the kernels take A's rows in blocks that fit L2
// (ENG__Q8_A_BLOCK_BYTES: 32 rows of K = 8192); rows across the block
// boundary equal the C reference bit for bit.
START_TEST(test_row_blocks) {
    problem p;
    problem_make(&p, 70, 6, 8192, 32, 400);
    float *ref = malloc((size_t)70 * 6 * sizeof(float)), *out = malloc((size_t)70 * 6 * sizeof(float));
    ck_assert_int_eq(eng_q8_set_isa(ENG_Q8_C), 0);
    eng_gemm_q8_nt(ref, 6, &p.A, &p.B, 70, 6, 0);
    for (int isa = ENG_Q8_AVX2; isa < ENG_Q8__COUNT; isa++) {
        if (eng_q8_set_isa((eng_q8_isa_t)isa) != 0) continue;
        eng_gemm_q8_nt(out, 6, &p.A, &p.B, 70, 6, 0);
        ck_assert_msg(memcmp(out, ref, (size_t)70 * 6 * sizeof(float)) == 0, "%s differs from c",
                      eng_q8_isa_name((eng_q8_isa_t)isa));
    }
    eng_q8_reset_isa();
    free(ref); free(out);
    problem_free(&p);
}
END_TEST

// The kernel follows cpu.h's level (INFERD_CPU): never above it.
START_TEST(test_follows_cpu_level) {
    char *err = NULL;
    eng_q8_reset_isa();
    eng_cpu_level max = eng_cpu_level_max();
    ck_assert_int_eq(eng_cpu_set_level(ENG_CPU_GENERIC, &err), 0);
    ck_assert_int_eq(eng_q8_isa(), ENG_Q8_C);
    if (max >= ENG_CPU_AVX2) {
        ck_assert_int_eq(eng_cpu_set_level(ENG_CPU_AVX2, &err), 0);
        ck_assert(eng_q8_isa() == ENG_Q8_AVX2 || eng_q8_isa() == ENG_Q8_AVXVNNI);
    }
    ck_assert_int_eq(eng_cpu_set_level(max, &err), 0);
    if (max >= ENG_CPU_AVX512 && eng_q8_isa_supported(ENG_Q8_AVX512VNNI)) ck_assert_int_eq(eng_q8_isa(), ENG_Q8_AVX512VNNI);
    else if (max >= ENG_CPU_AVX2 && eng_q8_isa_supported(ENG_Q8_AVXVNNI)) ck_assert_int_eq(eng_q8_isa(), ENG_Q8_AVXVNNI);
    fprintf(stderr, "test_gemm_q8: at level %s the int8 kernel is %s\n", eng_cpu_level_name(max), eng_q8_isa_name(eng_q8_isa()));
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("gemm_q8");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_quantize_known);
    tcase_add_test(tc, test_quantize_error_bound);
    tcase_add_test(tc, test_quantize_rows_paths);
    tcase_add_test(tc, test_kernels_vs_reference);
    tcase_add_test(tc, test_close_to_fp32);
    tcase_add_test(tc, test_batch_invariance);
    tcase_add_test(tc, test_tiles);   // ~1 CPU-second
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_row_blocks);
    tcase_add_test(tc, test_follows_cpu_level);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
