// test_ops.c — unit tests of the engine's numeric core: util, arena, ops,
// optim. Every op's forward is checked against hand-computed values and/or
// PyTorch (tests/ref/ops_ref.txt, written by tests/ref/make_ops_ref.py);
// every backward against central finite differences of L = sum(out * R) and,
// where the fixture has them, against PyTorch's gradients; the fast matmul
// against the naive one; AdamW and clip_grad_norm against torch.optim.
// Run from the repository root (fixtures are read by relative path).
#include <check.h>       // Check
#include <dirent.h>      // opendir, readdir
#include <math.h>        // fabs, sqrt, log, NAN, isnan
#include <setjmp.h>      // the arena's out-of-memory recovery point
#include <signal.h>      // SIGABRT
#include <stdint.h>      // uint64_t
#include <stdio.h>       // fprintf, snprintf
#include <stdlib.h>      // free, strtod, mkdtemp
#include <string.h>      // strcmp, memcpy, strstr
#include <unistd.h>      // rmdir, unlink

#include "engine/core/arena.h"

// Under AddressSanitizer, a failed allocation returns NULL as in libc (the
// out-of-memory tests need that) instead of ending the process.
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#include "engine/core/ops.h"
#include "engine/core/optim.h"
#include "engine/core/util.h"

// Naive references of the vectorised kernels (defined in engine/core/ops.c).


#define REF_PATH "tests/ref/ops_ref.txt"
#define REF_VERSION 1   // format version the fixture must declare
#define MAX_SHOWN 5   // mismatching pairs printed per failed comparison

// ---------------------------------------------------------------- helpers

static float *fvec(size_t n) { return eng_xcalloc(n ? n : 1, sizeof(float)); }

static float *fdup(const float *x, size_t n)
{
    float *y = fvec(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

// Deterministic uniform values in [lo, hi) (xorshift64; independent of libc rand).
static void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((double)(s >> 40) / 16777216.0);
    }
}

// Counts values with |got - want| > atol + rtol*|want| (NaN counts as a
// mismatch) and prints the first few pairs to stderr.
static size_t count_mismatch(const char *what, const float *got, const float *want, size_t n,
                             double atol, double rtol)
{
    size_t bad = 0;
    double worst = 0.0, worst_ratio = 0.0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        double tol = atol + rtol * fabs((double)want[i]);
        if (!(diff <= tol)) {
            if (bad < MAX_SHOWN)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (diff %.3g)\n", what, i, got[i], want[i], diff);
            bad++;
        }
        if (!(diff <= worst)) worst = diff;
        if (tol > 0 && diff / tol > worst_ratio) worst_ratio = diff / tol;
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu values out of tolerance, max |diff| %.3g\n", what, bad, n, worst);
    // TEST_OPS_VERBOSE=1 shows how much of each tolerance was used.
    if (getenv("TEST_OPS_VERBOSE"))
        fprintf(stderr, "  %-60s max |diff| %.3g, %.3f of tolerance\n", what, worst, worst_ratio);
    return bad;
}

#define EXPECT_CLOSE(what, got, want, n, atol, rtol) \
    ck_assert_msg(count_mismatch(what, got, want, n, atol, rtol) == 0, "%s differs from the reference", what)

// Like count_mismatch with a tolerance per value: |got - want| <= tol[i].
static size_t count_mismatch_tol(const char *what, const float *got, const float *want, const float *tol, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - (double)want[i]) <= tol[i])) {
            if (bad < MAX_SHOWN)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (tol %.3g)\n", what, i, got[i], want[i], tol[i]);
            bad++;
        }
    if (bad) fprintf(stderr, "  %s: %zu of %zu values out of tolerance\n", what, bad, n);
    return bad;
}

// Bitwise comparison (NaN == NaN, -0 != +0); prints the first few differences.
static size_t count_bit_mismatch(const char *what, const float *got, const float *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            if (bad < MAX_SHOWN) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, got[i], want[i]);
            bad++;
        }
    return bad;
}

// ---------------------------------------------------------------- reference fixture

typedef struct {
    char *name;   // e.g. "conv_a.out"
    size_t n;     // number of values
    float *v;     // [n]
} ref_array;

static ref_array *g_refs;   // loaded by refs_setup in each (forked) test
static size_t g_nrefs;

static void refs_setup(void)
{
    char *err = NULL;
    size_t len = 0;
    char *text = eng_read_file(REF_PATH, &len, &err);
    ck_assert_msg(text != NULL, "cannot load fixture (run from the repo root): %s", err ? err : "?");
    size_t cap = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *p = line;
        char *sp = strchr(p, ' ');
        ck_assert_msg(sp != NULL, "malformed fixture line");
        *sp = '\0';
        char *end;
        long n = strtol(sp + 1, &end, 10);
        ck_assert_msg(n > 0, "bad count for %s", p);
        if (g_nrefs == cap) {
            cap = cap ? 2 * cap : 128;
            ref_array *grown = realloc(g_refs, cap * sizeof(ref_array));
            ck_assert(grown != NULL);
            g_refs = grown;
        }
        ref_array *r = &g_refs[g_nrefs++];
        r->name = strdup(p);
        r->n = (size_t)n;
        r->v = fvec((size_t)n);
        for (long i = 0; i < n; i++) {
            char *next;
            r->v[i] = (float)strtod(end, &next);
            ck_assert_msg(next != end, "%s: only %ld of %ld values", p, i, n);
            end = next;
        }
    }
    free(text);
    // Written by make_ops_ref.py's VERSION; bump both when the format changes.
    for (size_t i = 0; i < g_nrefs; i++)
        if (strcmp(g_refs[i].name, "version") == 0) {
            ck_assert_msg(g_refs[i].v[0] == REF_VERSION, "fixture version %g, expected %d", g_refs[i].v[0], REF_VERSION);
            return;
        }
    ck_abort_msg("fixture has no version");
}

static void refs_teardown(void)
{
    for (size_t i = 0; i < g_nrefs; i++) {
        free(g_refs[i].name);
        free(g_refs[i].v);
    }
    free(g_refs);
    g_refs = NULL;
    g_nrefs = 0;
}

// The named reference array; fails the test if it is missing or, when
// n != 0, does not hold exactly n values.
static const float *ref(const char *name, size_t n)
{
    for (size_t i = 0; i < g_nrefs; i++)
        if (strcmp(g_refs[i].name, name) == 0) {
            ck_assert_msg(n == 0 || g_refs[i].n == n, "%s has %zu values, expected %zu", name, g_refs[i].n, n);
            return g_refs[i].v;
        }
    ck_abort_msg("fixture has no array %s", name);
    return NULL;
}

// Integer dims stored as floats.
static void ref_ints(int *out, const char *name, size_t n)
{
    const float *v = ref(name, n);
    for (size_t i = 0; i < n; i++) out[i] = (int)v[i];
}

// ---------------------------------------------------------------- finite-difference gradient check

// One op under test: fwd computes out from x[]; bwd ACCUMULATES the
// gradients of sum(out * dout) into dx[]. d[] and the scratch buffers hold
// whatever the op needs (dims, im2col buffer, argmax, mean/rstd, probs).
typedef struct gc gc;
struct gc {
    const char *op;        // name for messages
    int nx;                // inputs to perturb (<= 3)
    float *x[3];           // inputs
    size_t xn[3];          // their lengths
    const char *xname[3];  // their names
    float *dx[3];          // their gradients
    float *out;            // [nout] forward output
    size_t nout;
    int d[10];             // op dims
    float *s1, *s2;        // float scratch
    int *is;               // int scratch / targets
    void (*fwd)(gc *c);
    void (*bwd)(gc *c, const float *dout);
};

static double dot_loss(const float *out, const float *R, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

// Compares backprop with central differences for every element of every
// input. The gradient buffers start from random values, so a backward that
// overwrites instead of accumulating fails too. Tolerance per value:
// atol * max(1, max|numeric grad of that input|) + rtol * |numeric|.
// Returns the number of mismatches (printing the first few).
static size_t grad_check(gc *c, float eps, double atol, double rtol)
{
    float *R = fvec(c->nout);
    fill_uniform(R, c->nout, -1.0f, 1.0f, 4242);
    float *g0[3];
    for (int i = 0; i < c->nx; i++) {
        g0[i] = fvec(c->xn[i]);
        fill_uniform(g0[i], c->xn[i], -0.5f, 0.5f, 77 + i);
        memcpy(c->dx[i], g0[i], c->xn[i] * sizeof(float));
    }
    c->fwd(c);
    c->bwd(c, R);
    size_t bad = 0;
    for (int i = 0; i < c->nx; i++) {
        size_t n = c->xn[i];
        float *ana = fvec(n), *num = fvec(n);
        double scale = 1.0;
        for (size_t k = 0; k < n; k++) {
            ana[k] = c->dx[i][k] - g0[i][k];
            float save = c->x[i][k];
            float xp = save + eps, xm = save - eps;
            c->x[i][k] = xp;
            c->fwd(c);
            double lp = dot_loss(c->out, R, c->nout);
            c->x[i][k] = xm;
            c->fwd(c);
            double lm = dot_loss(c->out, R, c->nout);
            c->x[i][k] = save;
            num[k] = (float)((lp - lm) / ((double)xp - (double)xm));   // the step actually taken
            if (fabs(num[k]) > scale) scale = fabs(num[k]);
        }
        char what[96];
        snprintf(what, sizeof what, "%s d%s (backprop vs finite diff)", c->op, c->xname[i]);
        bad += count_mismatch(what, ana, num, n, atol * scale, rtol);
        free(ana);
        free(num);
        free(g0[i]);
    }
    c->fwd(c);
    free(R);
    return bad;
}

// Gradient-check tolerances. The worst case measured (batchnorm din) uses
// under 10% of them (TEST_OPS_VERBOSE=1 prints the share for every check);
// a wrong term in a backward lands far above.
#define GC_EPS 1e-2f
#define GC_ATOL 5e-4
#define GC_RTOL 5e-3

// ---------------------------------------------------------------- util

START_TEST(test_util_errorf)
{
    char *err = NULL;
    ck_assert_int_eq(eng_errorf(&err, "bad shape %d x %s", 3, "four"), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, "bad shape 3 x four");
    free(err);
    ck_assert_int_eq(eng_errorf(NULL, "ignored %d", 1), -1);   // NULL err is allowed
}
END_TEST

START_TEST(test_util_alloc)
{
    for (size_t n = 1; n < 1000; n = n * 3 + 1) {
        unsigned char *p = eng_xaligned(n);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        memset(p, 0xab, n);
        free(p);
    }
    int *z = eng_xcalloc(100, sizeof(int));
    for (int i = 0; i < 100; i++) ck_assert_int_eq(z[i], 0);
    free(z);
    free(eng_xmalloc(0));   // a valid pointer, not an abort
    double t0 = eng_now(), t1 = eng_now();
    ck_assert(t0 > 0.0 && t1 >= t0);
}
END_TEST

START_TEST(test_util_files)
{
    char dir[] = "/tmp/test_ops.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128], *err = NULL;
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    const char payload[] = "hello\0world";   // embedded NUL: binary-safe
    ck_assert_int_eq(eng_write_file_atomic(path, payload, sizeof payload, &err), 0);
    // Overwrite: the new content replaces the old one in full.
    ck_assert_int_eq(eng_write_file_atomic(path, payload, 5, &err), 0);
    size_t len = 99;
    char *back = eng_read_file(path, &len, &err);
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(back, "hello", 5);
    ck_assert_int_eq(back[5], '\0');   // NUL-terminated
    free(back);
    // No temp file is left next to the target.
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            ck_assert_str_eq(e->d_name, "ckpt.bin");
            entries++;
        }
    closedir(d);
    ck_assert_int_eq(entries, 1);
    unlink(path);

    // An empty file reads as "" with length 0.
    ck_assert_int_eq(eng_write_file_atomic(path, "", 0, &err), 0);
    back = eng_read_file(path, &len, &err);
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(len, 0);
    free(back);
    unlink(path);
    rmdir(dir);

    // Failures are values with a message naming the file.
    ck_assert_ptr_null(eng_read_file("/nonexistent/x.bin", &len, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.bin"));
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_write_file_atomic("/nonexistent/dir/x.bin", "a", 1, &err), -1);
    ck_assert_ptr_nonnull(err);
    free(err);
}
END_TEST

// ---------------------------------------------------------------- arena

START_TEST(test_arena_basic)
{
    eng_arena a;
    eng_arena_init(&a);
    ck_assert_ptr_null(a.blocks);
    unsigned char *p = eng_arena_alloc(&a, 100);
    unsigned char *q = eng_arena_alloc(&a, 200);
    unsigned char *r = eng_arena_alloc(&a, 0);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    ck_assert_uint_eq((uintptr_t)q % 64, 0);
    ck_assert_uint_eq((uintptr_t)r % 64, 0);
    // Sizes are rounded to 64-byte lines: 100 -> 128, 200 -> 256, 0 -> 64.
    ck_assert_uint_eq(a.used, 128 + 256 + 64);
    ck_assert_uint_eq(a.high_water, 448);
    ck_assert(q >= p + 100 && r >= q + 200);   // no overlap
    memset(p, 1, 100);
    memset(q, 2, 200);
    ck_assert_int_eq(p[99], 1);
    float *z = eng_arena_calloc(&a, 1000);
    for (int i = 0; i < 250; i++) ck_assert(z[i] == 0.0f);
    eng_arena_reset(&a);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_uint_eq(a.high_water, 448 + 1024);
    // One block, reused: the same requests land at the same addresses.
    ck_assert_ptr_eq(eng_arena_alloc(&a, 100), p);
    eng_arena_free(&a);
    ck_assert_ptr_null(a.blocks);
    ck_assert_uint_eq(a.used, 0);
    eng_arena_free(&a);   // twice is harmless
}
END_TEST

START_TEST(test_arena_spill_and_merge)
{
    eng_arena a;
    eng_arena_init(&a);
    // Far more than the first block: several blocks get chained.
    size_t sizes[] = {1000, 70000, 5, 300000, 64, 1 << 20};
    void *ptrs[6];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 6; i++) {
            ptrs[i] = eng_arena_alloc(&a, sizes[i]);
            ck_assert_uint_eq((uintptr_t)ptrs[i] % 64, 0);
            memset(ptrs[i], i + 1, sizes[i]);   // ASan: every byte is ours
        }
        for (int i = 0; i < 6; i++) ck_assert_int_eq(((unsigned char *)ptrs[i])[sizes[i] - 1], i + 1);
        eng_arena_block *first = a.blocks;
        eng_arena_reset(&a);
        if (round >= 1) ck_assert_ptr_eq(a.blocks, first);   // merged last time: nothing new was allocated
        ck_assert_uint_eq(a.used, 0);
    }
    eng_arena_free(&a);
}
END_TEST

// ---------------------------------------------------------------- matmul

START_TEST(test_matmul_hand)
{
    // A = [[1,2,3],[4,5,6]], B = [[1,0,-1],[2,1,0]]: A B^T = [[-2,4],[-2,13]]
    const float A[] = {1, 2, 3, 4, 5, 6}, B[] = {1, 0, -1, 2, 1, 0};
    const float want[] = {-2, 4, -2, 13}, want_acc[] = {-1, 5, -1, 14};
    float out[4];
    for (int naive = 0; naive < 2; naive++) {
        void (*mm)(float *, const float *, const float *, int, int, int, int) =
            naive ? eng_matmul_nt_naive : eng_matmul_nt;
        for (int i = 0; i < 4; i++) out[i] = NAN;   // accumulate=0 must ignore old contents
        mm(out, A, B, 2, 2, 3, 0);
        EXPECT_CLOSE("matmul 2x3x2", out, want, 4, 0, 0);
        for (int i = 0; i < 4; i++) out[i] = 1.0f;
        mm(out, A, B, 2, 2, 3, 1);
        EXPECT_CLOSE("matmul accumulate", out, want_acc, 4, 0, 0);
    }
}
END_TEST

START_TEST(test_matmul_fast_vs_naive)
{
    // Rows on both sides of the sgemm cut-over (16) and of the 4/2/1-row
    // tiles; K around the 8/64-float vector blocks.
    const int Ms[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 33, 64};
    const int Ns[] = {1, 3, 37};
    const int Ks[] = {1, 7, 8, 9, 64, 77, 768};
    float *A = fvec(64 * 768), *B = fvec(37 * 768);
    float *fast = fvec(64 * 37), *slow = fvec(64 * 37), *tol = fvec(64 * 37);
    fill_uniform(A, 64 * 768, -1.0f, 1.0f, 1);
    fill_uniform(B, 37 * 768, -1.0f, 1.0f, 2);
    size_t bad = 0, cases = 0;
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                for (int acc = 0; acc < 2; acc++) {
                    int M = Ms[mi], N = Ns[ni], K = Ks[ki];
                    size_t n = (size_t)M * N;
                    fill_uniform(fast, n, -2.0f, 2.0f, 3 + (uint64_t)cases);
                    memcpy(slow, fast, n * sizeof(float));
                    if (!acc)
                        for (size_t i = 0; i < n; i++) fast[i] = NAN;
                    eng_matmul_nt(fast, A, B, M, N, K, acc);
                    eng_matmul_nt_naive(slow, A, B, M, N, K, acc);
                    // Both sum the same K products in different orders; allow
                    // 1e-5 of sum |a_k b_k| (random-walk rounding is ~1e-6 at
                    // K = 768; dropping one product costs ~1e-3).
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double s = 0.0;
                            for (int k = 0; k < K; k++) s += fabs((double)A[i * K + k] * B[j * K + k]);
                            tol[i * N + j] = (float)(1e-5 * s + 1e-6 * acc * 2.0);
                        }
                    for (size_t i = 0; i < n; i++)
                        if (!(fabs((double)fast[i] - slow[i]) <= tol[i])) {
                            if (bad < MAX_SHOWN)
                                fprintf(stderr, "  M=%d N=%d K=%d acc=%d [%zu]: fast %.9g naive %.9g\n", M, N, K,
                                        acc, i, fast[i], slow[i]);
                            bad++;
                        }
                    cases++;
                }
    ck_assert_msg(bad == 0, "%zu values differ between eng_matmul_nt and the naive reference", bad);
    ck_assert_uint_eq(cases, 12 * 3 * 7 * 2);
    free(A);
    free(B);
    free(fast);
    free(slow);
    free(tol);
}
END_TEST

// ---------------------------------------------------------------- linear

START_TEST(test_linear_hand)
{
    // in = [1,2]; w = [[1,1],[0,2],[3,-1]]; b = [0.5,0,-1] -> [3.5, 4, 0]
    const float in[] = {1, 2}, w[] = {1, 1, 0, 2, 3, -1}, b[] = {0.5f, 0, -1};
    const float want[] = {3.5f, 4, 0}, want_nob[] = {3, 4, 1};
    float out[3];
    eng_linear_forward(out, in, w, b, 1, 2, 3);
    EXPECT_CLOSE("linear", out, want, 3, 0, 0);
    eng_linear_forward(out, in, w, NULL, 1, 2, 3);
    EXPECT_CLOSE("linear no bias", out, want_nob, 3, 0, 0);
    // Backward with dout = [1, 0, 2]: din = dout @ w = [7, -1]; dw = dout^T in; db = dout.
    const float dout[] = {1, 0, 2};
    float din[2] = {10, 10}, dw[6] = {0}, db[3] = {0};
    eng_linear_backward(din, dw, db, dout, in, w, 1, 2, 3);
    const float want_din[] = {17, 9}, want_dw[] = {1, 2, 0, 0, 2, 4};
    EXPECT_CLOSE("linear din (accumulated on 10)", din, want_din, 2, 0, 0);
    EXPECT_CLOSE("linear dw", dw, want_dw, 6, 0, 0);
    EXPECT_CLOSE("linear db", db, dout, 3, 0, 0);
}
END_TEST

START_TEST(test_linear_torch)
{
    int d[3];
    ref_ints(d, "lin.dims", 3);
    int N = d[0], C = d[1], OC = d[2];
    float *out = fvec((size_t)N * OC), *din = fvec((size_t)N * C), *dw = fvec((size_t)OC * C), *db = fvec(OC);
    eng_linear_forward(out, ref("lin.in", N * C), ref("lin.w", OC * C), ref("lin.b", OC), N, C, OC);
    EXPECT_CLOSE("linear out", out, ref("lin.out", N * OC), (size_t)N * OC, 1e-6, 1e-5);
    eng_linear_backward(din, dw, db, ref("lin.R", N * OC), ref("lin.in", 0), ref("lin.w", 0), N, C, OC);
    EXPECT_CLOSE("linear din", din, ref("lin.din", N * C), (size_t)N * C, 1e-6, 1e-5);
    EXPECT_CLOSE("linear dw", dw, ref("lin.dw", OC * C), (size_t)OC * C, 1e-6, 1e-5);
    EXPECT_CLOSE("linear db", db, ref("lin.db", OC), OC, 1e-6, 1e-5);
    // Any gradient may be NULL; the others are unchanged by that.
    float *din2 = fvec((size_t)N * C);
    eng_linear_backward(din2, NULL, NULL, ref("lin.R", 0), ref("lin.in", 0), ref("lin.w", 0), N, C, OC);
    EXPECT_CLOSE("linear din alone", din2, din, (size_t)N * C, 0, 0);
    free(out);
    free(din);
    free(dw);
    free(db);
    free(din2);
}
END_TEST

static void linear_fwd(gc *c) { eng_linear_forward(c->out, c->x[0], c->x[1], c->x[2], c->d[0], c->d[1], c->d[2]); }
static void linear_bwd(gc *c, const float *dout)
{
    eng_linear_backward(c->dx[0], c->dx[1], c->dx[2], dout, c->x[0], c->x[1], c->d[0], c->d[1], c->d[2]);
}

START_TEST(test_linear_grad)
{
    // N = 20 rows takes the sgemm path in forward; N = 3 the small loop.
    const int Ns[] = {3, 20};
    for (int t = 0; t < 2; t++) {
        int N = Ns[t], C = 9, OC = 5;
        gc c = {.op = "linear", .nx = 3, .xname = {"in", "w", "b"}, .fwd = linear_fwd, .bwd = linear_bwd,
                .d = {N, C, OC}};
        size_t ns[3] = {(size_t)N * C, (size_t)OC * C, (size_t)OC};
        for (int i = 0; i < 3; i++) {
            c.xn[i] = ns[i];
            c.x[i] = fvec(ns[i]);
            c.dx[i] = fvec(ns[i]);
            fill_uniform(c.x[i], ns[i], -1.0f, 1.0f, 10 + i);
        }
        c.nout = (size_t)N * OC;
        c.out = fvec(c.nout);
        ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
        for (int i = 0; i < 3; i++) {
            free(c.x[i]);
            free(c.dx[i]);
        }
        free(c.out);
    }
}
END_TEST

// ---------------------------------------------------------------- conv2d

static int conv_od(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

START_TEST(test_conv_hand)
{
    // 3x3 image 1..9, 2x2 kernel of ones.
    const float img[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[] = {1, 1, 1, 1}, b[] = {0.5f};
    float out[4], col[16];
    ck_assert_uint_eq(eng_conv2d_col_size(1, 3, 3, 2, 2, 1, 0), 16);   // 4 rows x 2x2 outputs
    eng_conv2d_forward(out, col, img, w, NULL, 1, 1, 3, 3, 1, 2, 2, 1, 0);
    const float want_s1[] = {12, 16, 24, 28};
    EXPECT_CLOSE("conv 2x2 stride 1", out, want_s1, 4, 0, 0);
    // pad 1, stride 2: windows cover rows/cols {-1,0} and {1,2}.
    ck_assert_uint_eq(eng_conv2d_col_size(1, 3, 3, 2, 2, 2, 1), 16);
    eng_conv2d_forward(out, col, img, w, b, 1, 1, 3, 3, 1, 2, 2, 2, 1);
    const float want_s2[] = {1.5f, 5.5f, 11.5f, 28.5f};
    EXPECT_CLOSE("conv 2x2 stride 2 pad 1 + bias", out, want_s2, 4, 0, 0);
    // Backward of the stride-1 case with dout = ones: each input pixel
    // collects the number of windows covering it.
    const float ones[] = {1, 1, 1, 1};
    float din[9] = {0}, dw[4] = {0}, db[1] = {0};
    eng_conv2d_backward(din, dw, db, col, ones, img, w, 1, 1, 3, 3, 1, 2, 2, 1, 0);
    const float want_din[] = {1, 2, 1, 2, 4, 2, 1, 2, 1}, want_dw[] = {12, 16, 24, 28}, want_db[] = {4};
    EXPECT_CLOSE("conv din", din, want_din, 9, 0, 0);
    EXPECT_CLOSE("conv dw", dw, want_dw, 4, 0, 0);
    EXPECT_CLOSE("conv db", db, want_db, 1, 0, 0);
}
END_TEST

typedef struct {
    int B, C, H, W, OC, KH, KW, S, P, OH, OW;
} conv_dims;

static conv_dims conv_dims_of(const char *name)
{
    char key[64];
    int d[9];
    snprintf(key, sizeof key, "%s.dims", name);
    ref_ints(d, key, 9);
    conv_dims cd = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], 0, 0};
    cd.OH = conv_od(cd.H, cd.KH, cd.S, cd.P);
    cd.OW = conv_od(cd.W, cd.KW, cd.S, cd.P);
    return cd;
}

static const float *conv_ref(const char *name, const char *field, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "%s.%s", name, field);
    return ref(key, n);
}

static const char *const conv_cases[] = {"conv_a", "conv_b", "conv_c", "conv_d"};

START_TEST(test_conv_torch)
{
    // _i: a (stride 2, pad 1, 7x5), b (2x3 kernel, 6x9), c (1x1), d (stride 1, pad 1)
    const char *name = conv_cases[_i];
    conv_dims k = conv_dims_of(name);
    size_t n_in = (size_t)k.B * k.C * k.H * k.W, n_w = (size_t)k.OC * k.C * k.KH * k.KW;
    size_t n_out = (size_t)k.B * k.OC * k.OH * k.OW;
    float *out = fvec(n_out), *col = fvec(eng_conv2d_col_size(k.C, k.H, k.W, k.KH, k.KW, k.S, k.P));
    float *din = fvec(n_in), *dw = fvec(n_w), *db = fvec(k.OC);
    const float *in = conv_ref(name, "in", n_in), *w = conv_ref(name, "w", n_w);
    eng_conv2d_forward(out, col, in, w, conv_ref(name, "b", k.OC), k.B, k.C, k.H, k.W, k.OC, k.KH, k.KW, k.S, k.P);
    EXPECT_CLOSE(name, out, conv_ref(name, "out", n_out), n_out, 1e-5, 1e-5);
    eng_conv2d_backward(din, dw, db, col, conv_ref(name, "R", n_out), in, w,
                        k.B, k.C, k.H, k.W, k.OC, k.KH, k.KW, k.S, k.P);
    EXPECT_CLOSE("conv din", din, conv_ref(name, "din", n_in), n_in, 1e-5, 1e-5);
    EXPECT_CLOSE("conv dw", dw, conv_ref(name, "dw", n_w), n_w, 1e-5, 1e-5);
    EXPECT_CLOSE("conv db", db, conv_ref(name, "db", k.OC), k.OC, 1e-5, 1e-5);
    // Without bias, out is the biased result minus b.
    float *nob = fvec(n_out);
    eng_conv2d_forward(nob, col, in, w, NULL, k.B, k.C, k.H, k.W, k.OC, k.KH, k.KW, k.S, k.P);
    const float *b = conv_ref(name, "b", k.OC);
    size_t P = (size_t)k.OH * k.OW;
    for (size_t i = 0; i < n_out; i++) nob[i] += b[(i / P) % k.OC];
    EXPECT_CLOSE("conv no bias + b", nob, out, n_out, 1e-6, 1e-6);
    // NULL gradients are skipped; din alone matches.
    float *din2 = fvec(n_in);
    eng_conv2d_backward(din2, NULL, NULL, col, conv_ref(name, "R", n_out), in, w,
                        k.B, k.C, k.H, k.W, k.OC, k.KH, k.KW, k.S, k.P);
    EXPECT_CLOSE("conv din alone", din2, din, n_in, 0, 0);
    free(out);
    free(col);
    free(din);
    free(dw);
    free(db);
    free(nob);
    free(din2);
}
END_TEST

static void conv_fwd(gc *c)
{
    const int *d = c->d;
    eng_conv2d_forward(c->out, c->s1, c->x[0], c->x[1], c->x[2], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]);
}
static void conv_bwd(gc *c, const float *dout)
{
    const int *d = c->d;
    eng_conv2d_backward(c->dx[0], c->dx[1], c->dx[2], c->s1, dout, c->x[0], c->x[1],
                        d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]);
}

START_TEST(test_conv_grad)
{
    const char *name = conv_cases[_i];
    conv_dims k = conv_dims_of(name);
    gc c = {.op = name, .nx = 3, .xname = {"in", "w", "b"}, .fwd = conv_fwd, .bwd = conv_bwd,
            .d = {k.B, k.C, k.H, k.W, k.OC, k.KH, k.KW, k.S, k.P}};
    size_t ns[3] = {(size_t)k.B * k.C * k.H * k.W, (size_t)k.OC * k.C * k.KH * k.KW, (size_t)k.OC};
    const char *fields[3] = {"in", "w", "b"};
    for (int i = 0; i < 3; i++) {
        c.xn[i] = ns[i];
        c.x[i] = fdup(conv_ref(name, fields[i], ns[i]), ns[i]);
        c.dx[i] = fvec(ns[i]);
    }
    c.nout = (size_t)k.B * k.OC * k.OH * k.OW;
    c.out = fvec(c.nout);
    c.s1 = fvec(eng_conv2d_col_size(k.C, k.H, k.W, k.KH, k.KW, k.S, k.P));
    ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
    for (int i = 0; i < 3; i++) {
        free(c.x[i]);
        free(c.dx[i]);
    }
    free(c.out);
    free(c.s1);
}
END_TEST

// im2col + sgemm (with its "same"-convolution shortcut) against the direct
// loops, forward and backward, over geometries that exercise each path:
// same padding (3x3/1, 5x5/2, 1x1 image), valid, strided, pointwise, and
// padding wider than the kernel reaches (rows and columns of pure padding).
START_TEST(test_conv_fast_vs_naive)
{
    static const int cases[][8] = {   // B, C, H, W, OC, K, stride, pad
        {2, 1, 28, 28, 4, 3, 1, 1}, {2, 3, 14, 14, 5, 3, 1, 1}, {1, 2, 7, 9, 3, 3, 1, 1},
        {1, 2, 3, 17, 2, 3, 1, 1},  {2, 2, 6, 5, 3, 5, 1, 2},   {1, 2, 2, 2, 2, 3, 1, 1},
        {1, 1, 1, 1, 2, 3, 1, 1},   {1, 2, 5, 6, 3, 3, 1, 0},   {2, 2, 9, 8, 3, 3, 2, 1},
        {1, 3, 8, 8, 4, 1, 1, 0},   {1, 2, 5, 5, 2, 1, 1, 1},   {1, 1, 4, 4, 2, 3, 1, 2},
        {1, 2, 3, 3, 2, 3, 1, 4},   {1, 1, 6, 6, 2, 2, 2, 0},   {1, 1, 5, 5, 1, 3, 3, 2},
    };
    size_t bad = 0;
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const int *k = cases[t];
        int B = k[0], C = k[1], H = k[2], W = k[3], OC = k[4], K = k[5], S = k[6], P = k[7];
        int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
        size_t nin = (size_t)B * C * H * W, nw = (size_t)OC * C * K * K, nout = (size_t)B * OC * OH * OW;
        float *in = fvec(nin), *w = fvec(nw), *b = fvec(OC), *dout = fvec(nout);
        float *ain = fvec(nin), *aw = fvec(nw), *ab = fvec(OC), *adout = fvec(nout);
        fill_uniform(in, nin, -1.0f, 1.0f, 10 + t);
        fill_uniform(w, nw, -1.0f, 1.0f, 30 + t);
        fill_uniform(b, OC, -1.0f, 1.0f, 50 + t);
        fill_uniform(dout, nout, -1.0f, 1.0f, 70 + t);
        for (size_t i = 0; i < nin; i++) ain[i] = fabsf(in[i]);
        for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
        for (int i = 0; i < OC; i++) ab[i] = fabsf(b[i]);
        for (size_t i = 0; i < nout; i++) adout[i] = fabsf(dout[i]);
        float *col = fvec(eng_conv2d_col_size(C, H, W, K, K, S, P));
        char what[96];

        // Forward. Tolerance: 1e-5 of the sum of |terms| (the same loops on |x|).
        float *fast = fvec(nout), *slow = fvec(nout), *tol = fvec(nout);
        for (size_t i = 0; i < nout; i++) fast[i] = NAN;
        eng_conv2d_forward(fast, col, in, w, b, B, C, H, W, OC, K, K, S, P);
        eng_conv2d_forward_naive(slow, in, w, b, B, C, H, W, OC, K, K, S, P);
        eng_conv2d_forward_naive(tol, ain, aw, ab, B, C, H, W, OC, K, K, S, P);
        for (size_t i = 0; i < nout; i++) tol[i] = 1e-5f * tol[i] + 1e-7f;
        snprintf(what, sizeof what, "conv case %zu out", t);
        bad += count_mismatch_tol(what, fast, slow, tol, nout);

        // Backward, accumulating onto the same random starting gradients.
        float *g[2][3], *gt[3];
        size_t ng[3] = {nin, nw, (size_t)OC};
        for (int j = 0; j < 3; j++) {
            for (int v = 0; v < 2; v++) {
                g[v][j] = fvec(ng[j]);
                fill_uniform(g[v][j], ng[j], -0.5f, 0.5f, 90 + j);
            }
            gt[j] = fvec(ng[j]);
        }
        eng_conv2d_backward(g[0][0], g[0][1], g[0][2], col, dout, in, w, B, C, H, W, OC, K, K, S, P);
        eng_conv2d_backward_naive(g[1][0], g[1][1], g[1][2], dout, in, w, B, C, H, W, OC, K, K, S, P);
        eng_conv2d_backward_naive(gt[0], gt[1], gt[2], adout, ain, aw, B, C, H, W, OC, K, K, S, P);
        const char *names[3] = {"din", "dw", "db"};
        for (int j = 0; j < 3; j++) {
            for (size_t i = 0; i < ng[j]; i++) gt[j][i] = 1e-5f * (gt[j][i] + 0.5f) + 1e-7f;
            snprintf(what, sizeof what, "conv case %zu %s", t, names[j]);
            bad += count_mismatch_tol(what, g[0][j], g[1][j], gt[j], ng[j]);
            free(g[0][j]);
            free(g[1][j]);
            free(gt[j]);
        }
        // Each gradient alone (the others NULL) gives the same values.
        float *only = fvec(nin);
        eng_conv2d_backward(only, NULL, NULL, col, dout, in, w, B, C, H, W, OC, K, K, S, P);
        float *only_ref = fvec(nin);
        eng_conv2d_backward_naive(only_ref, NULL, NULL, dout, in, w, B, C, H, W, OC, K, K, S, P);
        for (size_t i = 0; i < nin; i++) ain[i] = 1e-5f * (float)(OC * K * K) + 1e-7f;
        snprintf(what, sizeof what, "conv case %zu din only", t);
        bad += count_mismatch_tol(what, only, only_ref, ain, nin);
        free(only);
        free(only_ref);
        free(in); free(w); free(b); free(dout); free(ain); free(aw); free(ab); free(adout);
        free(col); free(fast); free(slow); free(tol);
    }
    ck_assert_msg(bad == 0, "%zu values differ between the im2col convolution and the direct loops", bad);
}
END_TEST

// ---------------------------------------------------------------- pooling

START_TEST(test_pool_hand)
{
    // 4x4 plane, 2x2 windows, stride 2.
    const float x[] = {1, 5, 2, 0,
                       3, 4, 8, 7,
                       -1, -2, 6, 6,
                       -3, -4, 9, 1};
    float out[4];
    int am[4];
    eng_maxpool2d_forward(out, am, x, 1, 1, 4, 4, 2, 2);
    const float want_max[] = {5, 8, -1, 9};
    const int want_am[] = {1, 6, 8, 14};
    EXPECT_CLOSE("maxpool", out, want_max, 4, 0, 0);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(am[i], want_am[i]);
    const float dout[] = {1, 2, 3, 4};
    float din[16] = {0};
    eng_maxpool2d_backward(din, dout, am, 1, 1, 4, 4, 2, 2);
    const float want_din[] = {0, 1, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 4, 0};
    EXPECT_CLOSE("maxpool din", din, want_din, 16, 0, 0);
    // All -inf window: output -inf, argmax still inside the window.
    const float ninf[] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    eng_maxpool2d_forward(out, am, ninf, 1, 1, 2, 2, 2, 2);
    ck_assert(isinf(out[0]) && out[0] < 0);
    ck_assert(am[0] >= 0 && am[0] < 4);

    eng_avgpool2d_forward(out, x, 1, 1, 4, 4, 2, 2);
    const float want_avg[] = {3.25f, 4.25f, -2.5f, 5.5f};
    EXPECT_CLOSE("avgpool", out, want_avg, 4, 0, 0);
    memset(din, 0, sizeof din);
    eng_avgpool2d_backward(din, dout, 1, 1, 4, 4, 2, 2);
    const float want_adin[] = {0.25f, 0.25f, 0.5f, 0.5f, 0.25f, 0.25f, 0.5f, 0.5f,
                               0.75f, 0.75f, 1, 1, 0.75f, 0.75f, 1, 1};
    EXPECT_CLOSE("avgpool din", din, want_adin, 16, 0, 0);

    // Global average over two channels of 3 values.
    const float g[] = {1, 2, 6, -1, 0, 4};
    const float want_g[] = {3, 1};
    float gout[2], gdin[6] = {0};
    eng_global_avgpool_forward(gout, g, 1, 2, 3);
    EXPECT_CLOSE("global avgpool", gout, want_g, 2, 1e-7, 0);
    const float gd[] = {3, 6};
    eng_global_avgpool_backward(gdin, gd, 1, 2, 3);
    const float want_gdin[] = {1, 1, 1, 2, 2, 2};
    EXPECT_CLOSE("global avgpool din", gdin, want_gdin, 6, 0, 0);
}
END_TEST

START_TEST(test_pool_torch)
{
    int d[6];
    ref_ints(d, "mp.dims", 6);
    int B = d[0], C = d[1], H = d[2], W = d[3], K = d[4], S = d[5];
    size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * C * ((H - K) / S + 1) * ((W - K) / S + 1);
    float *out = fvec(n_out), *din = fvec(n_in);
    int *am = eng_xcalloc(n_out, sizeof(int));
    eng_maxpool2d_forward(out, am, ref("mp.in", n_in), B, C, H, W, K, S);
    EXPECT_CLOSE("maxpool out", out, ref("mp.out", n_out), n_out, 0, 0);
    eng_maxpool2d_backward(din, ref("mp.R", n_out), am, B, C, H, W, K, S);
    EXPECT_CLOSE("maxpool din", din, ref("mp.din", n_in), n_in, 1e-7, 0);
    free(out);
    free(din);
    free(am);

    ref_ints(d, "ap.dims", 6);
    B = d[0], C = d[1], H = d[2], W = d[3], K = d[4], S = d[5];
    n_in = (size_t)B * C * H * W, n_out = (size_t)B * C * ((H - K) / S + 1) * ((W - K) / S + 1);
    out = fvec(n_out), din = fvec(n_in);
    eng_avgpool2d_forward(out, ref("ap.in", n_in), B, C, H, W, K, S);
    EXPECT_CLOSE("avgpool out", out, ref("ap.out", n_out), n_out, 1e-6, 1e-6);
    eng_avgpool2d_backward(din, ref("ap.R", n_out), B, C, H, W, K, S);
    EXPECT_CLOSE("avgpool din", din, ref("ap.din", n_in), n_in, 1e-6, 1e-6);
    free(out);
    free(din);

    ref_ints(d, "gap.dims", 3);
    out = fvec((size_t)d[0] * d[1]);
    eng_global_avgpool_forward(out, ref("gap.in", (size_t)d[0] * d[1] * d[2]), d[0], d[1], d[2]);
    EXPECT_CLOSE("global avgpool out", out, ref("gap.out", (size_t)d[0] * d[1]), (size_t)d[0] * d[1], 1e-6, 1e-6);
    free(out);
}
END_TEST

static void maxpool_fwd(gc *c) { eng_maxpool2d_forward(c->out, c->is, c->x[0], c->d[0], c->d[1], c->d[2], c->d[3], c->d[4], c->d[5]); }
static void maxpool_bwd(gc *c, const float *dout)
{
    eng_maxpool2d_backward(c->dx[0], dout, c->is, c->d[0], c->d[1], c->d[2], c->d[3], c->d[4], c->d[5]);
}
static void avgpool_fwd(gc *c) { eng_avgpool2d_forward(c->out, c->x[0], c->d[0], c->d[1], c->d[2], c->d[3], c->d[4], c->d[5]); }
static void avgpool_bwd(gc *c, const float *dout)
{
    eng_avgpool2d_backward(c->dx[0], dout, c->d[0], c->d[1], c->d[2], c->d[3], c->d[4], c->d[5]);
}
static void gap_fwd(gc *c) { eng_global_avgpool_forward(c->out, c->x[0], c->d[0], c->d[1], c->d[2] * c->d[3]); }
static void gap_bwd(gc *c, const float *dout) { eng_global_avgpool_backward(c->dx[0], dout, c->d[0], c->d[1], c->d[2] * c->d[3]); }

START_TEST(test_pool_grad)
{
    // Max pool: inputs are a permutation of values 0.05 apart (> 2*eps), so
    // no perturbation changes which element is a window's max.
    int d[6];
    ref_ints(d, "mp.dims", 6);
    size_t n_in = (size_t)d[0] * d[1] * d[2] * d[3];
    size_t n_out = (size_t)d[0] * d[1] * ((d[2] - d[4]) / d[5] + 1) * ((d[3] - d[4]) / d[5] + 1);
    gc c = {.op = "maxpool 3/2", .nx = 1, .xname = {"in"}, .fwd = maxpool_fwd, .bwd = maxpool_bwd,
            .d = {d[0], d[1], d[2], d[3], d[4], d[5]}};
    c.xn[0] = n_in;
    c.x[0] = fdup(ref("mp.in", n_in), n_in);
    c.dx[0] = fvec(n_in);
    c.nout = n_out;
    c.out = fvec(n_out);
    c.is = eng_xcalloc(n_out, sizeof(int));
    ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
    free(c.is);
    free(c.out);

    // Average pool with overlapping windows (K 3, S 2) and global average,
    // on the same input.
    c.op = "avgpool 3/2";
    c.fwd = avgpool_fwd;
    c.bwd = avgpool_bwd;
    c.nout = (size_t)d[0] * d[1] * ((d[2] - 3) / 2 + 1) * ((d[3] - 3) / 2 + 1);
    c.d[4] = 3;
    c.d[5] = 2;
    c.out = fvec(c.nout);
    ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
    free(c.out);
    c.op = "global avgpool";
    c.fwd = gap_fwd;
    c.bwd = gap_bwd;
    c.nout = 2 * 3;
    c.out = fvec(c.nout);
    ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
    free(c.out);
    free(c.x[0]);
    free(c.dx[0]);
}
END_TEST

// The vectorised 2x2/stride-2 max pooling against the plain loops, bit for
// bit with the same argmax: row widths around its 4- and 8-window blocks,
// odd sizes, values with many ties (a few levels, zeros of both signs), and
// planes holding NaN (the first NaN wins) or infinities. Other geometries
// take the plain loops themselves.
START_TEST(test_pool_fast_vs_naive)
{
    static const int sizes[][2] = {{2, 2}, {3, 3}, {2, 7}, {4, 6}, {5, 7}, {6, 8}, {7, 9}, {8, 14},
                                   {14, 14}, {28, 28}, {9, 17}, {10, 33}, {4, 16}, {6, 2}};
    enum { B = 2, C = 3 };
    size_t bad = 0;
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++)
        for (int variant = 0; variant < 4; variant++) {
            int H = sizes[t][0], W = sizes[t][1], OH = H / 2, OW = W / 2;
            size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * OH * OW;
            float *x = fvec(nin), *fast = fvec(nout), *slow = fvec(nout);
            int *afast = eng_xcalloc(nout, sizeof(int)), *aslow = eng_xcalloc(nout, sizeof(int));
            fill_uniform(x, nin, -2.0f, 2.0f, 100 * t + variant);
            if (variant >= 1)   // few levels: ties everywhere; -0 and +0 among them
                for (size_t i = 0; i < nin; i++) {
                    float v = floorf(x[i]);
                    x[i] = v == -1.0f ? -0.0f : v < 0 ? 0.0f : v;
                }
            if (variant == 2)   // NaNs in one plane (two in one window), none in the others
                for (size_t i = 0; i < (size_t)H * W; i += 5) x[(size_t)H * W + i] = NAN;
            if (variant == 3)   // infinities of both signs
                for (size_t i = 0; i < nin; i += 7) x[i] = (i % 2) ? INFINITY : -INFINITY;
            eng_maxpool2d_forward(fast, afast, x, B, C, H, W, 2, 2);
            eng_maxpool2d_forward_naive(slow, aslow, x, B, C, H, W, 2, 2);
            char what[64];
            snprintf(what, sizeof what, "maxpool %dx%d variant %d", H, W, variant);
            size_t b = count_bit_mismatch(what, fast, slow, nout);
            for (size_t i = 0; i < nout; i++)
                if (afast[i] != aslow[i]) {
                    if (b < MAX_SHOWN) fprintf(stderr, "  %s argmax[%zu]: %d vs %d\n", what, i, afast[i], aslow[i]);
                    b++;
                }
            bad += b;
            free(x); free(fast); free(slow); free(afast); free(aslow);
        }
    ck_assert_msg(bad == 0, "%zu outputs differ between the 2x2 max pooling and the naive one", bad);
}
END_TEST

// ---------------------------------------------------------------- activations

START_TEST(test_act_hand)
{
    const float x[] = {-2, -1, 0, 1, 2, 0.5f};
    float y[6];
    eng_relu_forward(y, x, 6);
    const float want_relu[] = {0, 0, 0, 1, 2, 0.5f};
    EXPECT_CLOSE("relu", y, want_relu, 6, 0, 0);
    // gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), by hand in double.
    eng_gelu_forward(y, x, 6);
    ck_assert_float_eq(y[2], 0.0f);
    ck_assert_float_eq_tol(y[3], 0.8411919906082768f, 1e-6f);
    ck_assert_float_eq_tol(y[0], -0.04540230591222494f, 3e-7f);
    eng_sigmoid_forward(y, x, 6);
    ck_assert_float_eq(y[2], 0.5f);
    ck_assert_float_eq_tol(y[4], 0.8807970779778823f, 1e-7f);
    ck_assert_float_eq_tol(y[0], 1.0f - 0.8807970779778823f, 1e-7f);
    eng_tanh_forward(y, x, 6);
    ck_assert_float_eq(y[2], 0.0f);
    ck_assert_float_eq_tol(y[5], 0.46211715726000974f, 1e-7f);
    // Backward at hand-picked points: relu'(0) = 0 (PyTorch), sigmoid' = s(1-s), tanh' = 1 - t^2.
    const float ones[] = {1, 1, 1, 1, 1, 1};
    float dx[6] = {0};
    eng_relu_backward(dx, ones, x, 6);
    const float want_drelu[] = {0, 0, 0, 1, 1, 1};
    EXPECT_CLOSE("relu backward", dx, want_drelu, 6, 0, 0);
    const float s[] = {0.5f}, t[] = {0.5f};
    float ds[1] = {0}, dt[1] = {0};
    eng_sigmoid_backward(ds, ones, s, 1);
    eng_tanh_backward(dt, ones, t, 1);
    ck_assert_float_eq(ds[0], 0.25f);
    ck_assert_float_eq(dt[0], 0.75f);
    // In place (out == in) is allowed for the elementwise forwards.
    float z[6];
    memcpy(z, x, sizeof z);
    eng_relu_forward(z, z, 6);
    EXPECT_CLOSE("relu in place", z, want_relu, 6, 0, 0);
}
END_TEST

START_TEST(test_act_torch)
{
    const size_t n = 53;
    const float *x = ref("act.x", n);
    float *y = fvec(n);
    eng_relu_forward(y, x, n);
    EXPECT_CLOSE("relu", y, ref("act.relu", n), n, 0, 0);
    eng_gelu_forward(y, x, n);
    EXPECT_CLOSE("gelu", y, ref("act.gelu", n), n, 1e-6, 1e-5);
    eng_tanh_forward(y, x, n);
    EXPECT_CLOSE("tanh", y, ref("act.tanh", n), n, 1e-7, 1e-6);
    eng_sigmoid_forward(y, x, n);   // includes x = +-90: no overflow, exact 0/1 limits
    EXPECT_CLOSE("sigmoid", y, ref("act.sigmoid", n), n, 1e-7, 1e-6);
    free(y);
}
END_TEST

enum { ACT_RELU, ACT_GELU, ACT_TANH, ACT_SIGMOID, ACT_TANH_WRONG };

static void act_fwd(gc *c)
{
    switch (c->d[0]) {
    case ACT_RELU: eng_relu_forward(c->out, c->x[0], c->nout); break;
    case ACT_GELU: eng_gelu_forward(c->out, c->x[0], c->nout); break;
    case ACT_TANH:
    case ACT_TANH_WRONG: eng_tanh_forward(c->out, c->x[0], c->nout); break;
    default: eng_sigmoid_forward(c->out, c->x[0], c->nout); break;
    }
}
static void act_bwd(gc *c, const float *dout)
{
    switch (c->d[0]) {
    case ACT_RELU: eng_relu_backward(c->dx[0], dout, c->x[0], c->nout); break;
    case ACT_GELU: eng_gelu_backward(c->dx[0], dout, c->x[0], c->nout); break;
    case ACT_TANH: eng_tanh_backward(c->dx[0], dout, c->out, c->nout); break;
    // A plausible bug: passing the forward INPUT where the output is expected.
    case ACT_TANH_WRONG: eng_tanh_backward(c->dx[0], dout, c->x[0], c->nout); break;
    default: eng_sigmoid_backward(c->dx[0], dout, c->out, c->nout); break;
    }
}

static size_t act_grad_check(int which, const char *name)
{
    enum { N = 64 };
    float x[N], dx[N], out[N];
    fill_uniform(x, N, -3.0f, 3.0f, 31 + which);
    // Keep ReLU inputs at least 0.1 from its kink (> eps).
    if (which == ACT_RELU)
        for (int i = 0; i < N; i++) x[i] = x[i] >= 0 ? x[i] + 0.1f : x[i] - 0.1f;
    gc c = {.op = name, .nx = 1, .xname = {"in"}, .x = {x}, .xn = {N}, .dx = {dx}, .out = out, .nout = N,
            .fwd = act_fwd, .bwd = act_bwd, .d = {which}};
    return grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL);
}

START_TEST(test_act_grad)
{
    ck_assert_uint_eq(act_grad_check(ACT_RELU, "relu"), 0);
    ck_assert_uint_eq(act_grad_check(ACT_GELU, "gelu"), 0);
    ck_assert_uint_eq(act_grad_check(ACT_TANH, "tanh"), 0);
    ck_assert_uint_eq(act_grad_check(ACT_SIGMOID, "sigmoid"), 0);
}
END_TEST

START_TEST(test_grad_check_catches_bugs)
{
    // The checker itself must be able to fail: a wrong backward is caught.
    fprintf(stderr, "(the mismatches printed next are expected)\n");
    ck_assert_uint_gt(act_grad_check(ACT_TANH_WRONG, "tanh given its input (deliberately wrong)"), 10);
}
END_TEST

// ReLU's vector loops against the plain ones, bit for bit, for lengths
// around the 8-float blocks, with zeros of both signs, NaN and infinities;
// in place (out == in) too.
START_TEST(test_relu_fast_vs_naive)
{
    const size_t ns[] = {0, 1, 7, 8, 9, 16, 33, 100};
    size_t bad = 0;
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        size_t n = ns[t];
        float *x = fvec(n), *g = fvec(n), *fast = fvec(n), *slow = fvec(n);
        fill_uniform(x, n, -1.0f, 1.0f, 200 + t);
        fill_uniform(g, n, -1.0f, 1.0f, 300 + t);
        const float special[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY};
        for (size_t i = 0; i < n; i += 3) x[i] = special[(i / 3) % 5];
        for (size_t i = 1; i < n; i += 4) g[i] = special[(i / 4) % 5];
        eng_relu_forward(fast, x, n);
        eng_relu_forward_naive(slow, x, n);
        bad += count_bit_mismatch("relu", fast, slow, n);
        memcpy(fast, x, n * sizeof(float));
        eng_relu_forward(fast, fast, n);
        bad += count_bit_mismatch("relu in place", fast, slow, n);
        fill_uniform(fast, n, -1.0f, 1.0f, 400 + t);
        memcpy(slow, fast, n * sizeof(float));
        eng_relu_backward(fast, g, x, n);
        eng_relu_backward_naive(slow, g, x, n);
        bad += count_bit_mismatch("relu din", fast, slow, n);
        free(x); free(g); free(fast); free(slow);
    }
    ck_assert_msg(bad == 0, "%zu values differ between the vector and the naive ReLU", bad);
}
END_TEST

// Batch norm's plane-wise float/double statistics against the two passes
// in double, forward (train and inference) and backward, for plane sizes
// around the vector blocks and the CNN's (49, 784), and for data whose mean
// is far from 0 relative to its spread (where a one-pass variance would
// cancel). Tolerances: 2e-5 relative on the statistics and 1e-4 on values
// of order 1 (the naive version's own float rounding is ~1e-5 there), plus
// the rounding of the folded multiply-add for large offsets.
START_TEST(test_bn_fast_vs_naive)
{
    static const int cases[][3] = {{1, 2, 1}, {2, 3, 1}, {3, 2, 7}, {4, 3, 49}, {2, 2, 784},
                                   {5, 3, 13}, {64, 2, 49}, {1, 1, 37}};
    static const float offsets[] = {0.0f, 100.0f, -3000.0f};
    size_t bad = 0;
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++)
        for (size_t o = 0; o < sizeof offsets / sizeof *offsets; o++) {
            int B = cases[t][0], C = cases[t][1], HW = cases[t][2];
            size_t n = (size_t)B * C * HW;
            float *x = fvec(n), *dout = fvec(n), *gamma = fvec(C), *beta = fvec(C);
            fill_uniform(x, n, -1.0f, 1.0f, 500 + t);
            for (size_t i = 0; i < n; i++) x[i] = x[i] * (1.0f + (float)((i / HW) % C)) + offsets[o];
            fill_uniform(dout, n, -1.0f, 1.0f, 600 + t);
            fill_uniform(gamma, C, 0.5f, 1.5f, 700 + t);
            fill_uniform(beta, C, -0.5f, 0.5f, 800 + t);
            float *out[2], *mean[2], *rstd[2], *rm[2], *rv[2], *din[2], *dg[2], *db[2];
            for (int v = 0; v < 2; v++) {
                out[v] = fvec(n); din[v] = fvec(n);
                mean[v] = fvec(C); rstd[v] = fvec(C); rm[v] = fvec(C); rv[v] = fvec(C);
                dg[v] = fvec(C); db[v] = fvec(C);
                fill_uniform(rm[v], C, -1.0f, 1.0f, 900);
                fill_uniform(rv[v], C, 0.5f, 2.0f, 901);
                fill_uniform(din[v], n, -0.5f, 0.5f, 902);
                fill_uniform(dg[v], C, -0.5f, 0.5f, 903);
                fill_uniform(db[v], C, -0.5f, 0.5f, 904);
            }
            eng_batchnorm2d_forward_train(out[0], mean[0], rstd[0], rm[0], rv[0], x, gamma, beta, B, C, HW, 0.1f, 1e-5f);
            eng_batchnorm2d_forward_train_naive(out[1], mean[1], rstd[1], rm[1], rv[1], x, gamma, beta, B, C, HW, 0.1f, 1e-5f);
            char what[96];
            float scale = fabsf(offsets[o]) + 1.0f;   // magnitude of the values
            // Both fold y = x * (rstd gamma) + shift in float, so y carries
            // a rounding of order ulp(|x| rstd gamma): 2^-12 at offset 3000.
            double fold = 0.0;
            for (int c = 0; c < C; c++)
                if (scale * rstd[1][c] * gamma[c] > fold) fold = scale * rstd[1][c] * gamma[c];
            snprintf(what, sizeof what, "bn case %zu offset %g", t, offsets[o]);
            bad += count_mismatch(what, out[0], out[1], n, 1e-4 + 1.2e-7 * fold, 0);
            bad += count_mismatch("bn mean", mean[0], mean[1], C, 2e-6 * scale, 0);
            bad += count_mismatch("bn rstd", rstd[0], rstd[1], C, 0, 2e-5);
            bad += count_mismatch("bn running_mean", rm[0], rm[1], C, 2e-6 * scale, 0);
            bad += count_mismatch("bn running_var", rv[0], rv[1], C, 0, 2e-5);
            eng_batchnorm2d_forward_infer(out[0], x, gamma, beta, rm[1], rv[1], B, C, HW, 1e-5f);
            eng_batchnorm2d_forward_infer_naive(out[1], x, gamma, beta, rm[1], rv[1], B, C, HW, 1e-5f);
            bad += count_mismatch("bn infer", out[0], out[1], n, 0, 1e-6);
            // Backward from the same (naive) statistics.
            eng_batchnorm2d_backward(din[0], dg[0], db[0], dout, x, gamma, mean[1], rstd[1], B, C, HW);
            eng_batchnorm2d_backward_naive(din[1], dg[1], db[1], dout, x, gamma, mean[1], rstd[1], B, C, HW);
            bad += count_mismatch("bn din", din[0], din[1], n, 1e-4, 0);
            bad += count_mismatch("bn dgamma", dg[0], dg[1], C, 1e-5 * B * HW, 0);
            bad += count_mismatch("bn dbeta", db[0], db[1], C, 1e-6 * B * HW, 0);
            for (int v = 0; v < 2; v++) {
                free(out[v]); free(mean[v]); free(rstd[v]); free(rm[v]); free(rv[v]);
                free(din[v]); free(dg[v]); free(db[v]);
            }
            free(x); free(dout); free(gamma); free(beta);
        }
    ck_assert_msg(bad == 0, "%zu values differ between batch norm and its naive reference", bad);
}
END_TEST

// ---------------------------------------------------------------- batch norm

START_TEST(test_bn_hand)
{
    // One channel [1,2,3,4]: mean 2.5, biased var 1.25, unbiased var 5/3.
    const float x[] = {1, 2, 3, 4}, gamma[] = {2}, beta[] = {0.5f};
    float y[4], mean[1], rstd[1], rm[1] = {0}, rv[1] = {1};
    eng_batchnorm2d_forward_train(y, mean, rstd, rm, rv, x, gamma, beta, 1, 1, 4, 0.1f, 1e-5f);
    const float xhat[] = {-1.3416354199689269f, -0.447211806656309f, 0.447211806656309f, 1.3416354199689269f};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], 2 * xhat[i] + 0.5f, 2e-6f);
    ck_assert_float_eq(mean[0], 2.5f);
    ck_assert_float_eq_tol(rstd[0], 0.8944236f, 1e-6f);   // 1/sqrt(1.25 + 1e-5)
    ck_assert_float_eq_tol(rm[0], 0.25f, 1e-7f);          // 0.9*0 + 0.1*2.5
    ck_assert_float_eq_tol(rv[0], 1.0666667f, 1e-6f);     // 0.9*1 + 0.1*5/3
    // Inference with running stats (mean 2, var 4) and eps 0: (x - 2)/2 * 2 + 0.5;
    // with a large eps of 5, eps visibly enters: (x - 2)/3 * 2 + 0.5.
    const float rm2[] = {2}, rv2[] = {4};
    eng_batchnorm2d_forward_infer(y, x, gamma, beta, rm2, rv2, 1, 1, 4, 0.0f);
    const float want[] = {-0.5f, 0.5f, 1.5f, 2.5f};
    EXPECT_CLOSE("batchnorm infer", y, want, 4, 1e-6, 0);
    eng_batchnorm2d_forward_infer(y, x, gamma, beta, rm2, rv2, 1, 1, 4, 5.0f);
    const float want_eps[] = {-0.16666667f, 0.5f, 1.16666667f, 1.83333333f};
    EXPECT_CLOSE("batchnorm infer, eps 5", y, want_eps, 4, 1e-6, 0);
    // NULL gamma/beta act as 1/0 (an affine=False layer), in all three functions.
    const float one[] = {1}, zero[] = {0}, g[] = {0.5f, -1, 2, 0.25f};
    float y1[4], y2[4], d1[4] = {0}, d2[4] = {0};
    eng_batchnorm2d_forward_train(y1, mean, rstd, NULL, NULL, x, one, zero, 1, 1, 4, 0.1f, 1e-5f);
    eng_batchnorm2d_forward_train(y2, mean, rstd, NULL, NULL, x, NULL, NULL, 1, 1, 4, 0.1f, 1e-5f);
    EXPECT_CLOSE("batchnorm train, NULL affine", y2, y1, 4, 0, 0);
    eng_batchnorm2d_forward_infer(y1, x, one, zero, rm2, rv2, 1, 1, 4, 1e-5f);
    eng_batchnorm2d_forward_infer(y2, x, NULL, NULL, rm2, rv2, 1, 1, 4, 1e-5f);
    EXPECT_CLOSE("batchnorm infer, NULL affine", y2, y1, 4, 0, 0);
    eng_batchnorm2d_backward(d1, NULL, NULL, g, x, one, mean, rstd, 1, 1, 4);
    eng_batchnorm2d_backward(d2, NULL, NULL, g, x, NULL, mean, rstd, 1, 1, 4);
    EXPECT_CLOSE("batchnorm backward, NULL gamma", d2, d1, 4, 0, 0);
}
END_TEST

START_TEST(test_bn_torch)
{
    int d[3];
    ref_ints(d, "bn.dims", 3);
    int B = d[0], C = d[1], HW = d[2];
    size_t n = (size_t)B * C * HW;
    const float *hyper = ref("bn.hyper", 2);
    float momentum = hyper[0], eps = hyper[1];
    float *y = fvec(n), *mean = fvec(C), *rstd = fvec(C);
    float *rm = fdup(ref("bn.rm0", C), C), *rv = fdup(ref("bn.rv0", C), C);
    const float *gamma = ref("bn.gamma", C), *beta = ref("bn.beta", C);
    // Two training steps: outputs and running statistics after each.
    eng_batchnorm2d_forward_train(y, mean, rstd, rm, rv, ref("bn.x1", n), gamma, beta, B, C, HW, momentum, eps);
    EXPECT_CLOSE("bn train out (step 1)", y, ref("bn.out1", n), n, 1e-5, 1e-5);
    EXPECT_CLOSE("bn running_mean (step 1)", rm, ref("bn.rm1", C), C, 1e-6, 1e-6);
    EXPECT_CLOSE("bn running_var (step 1)", rv, ref("bn.rv1", C), C, 1e-6, 1e-6);
    // Backward of step 1 (mean/rstd from step 1).
    float *din = fvec(n), *dgamma = fvec(C), *dbeta = fvec(C);
    eng_batchnorm2d_backward(din, dgamma, dbeta, ref("bn.R", n), ref("bn.x1", n), gamma, mean, rstd, B, C, HW);
    EXPECT_CLOSE("bn din", din, ref("bn.din", n), n, 1e-5, 1e-5);
    EXPECT_CLOSE("bn dgamma", dgamma, ref("bn.dgamma", C), C, 1e-5, 1e-5);
    EXPECT_CLOSE("bn dbeta", dbeta, ref("bn.dbeta", C), C, 1e-5, 1e-5);
    float *din2 = fvec(n);
    eng_batchnorm2d_backward(din2, NULL, NULL, ref("bn.R", n), ref("bn.x1", n), gamma, mean, rstd, B, C, HW);
    EXPECT_CLOSE("bn din alone", din2, din, n, 0, 0);

    eng_batchnorm2d_forward_train(y, mean, rstd, rm, rv, ref("bn.x2", n), gamma, beta, B, C, HW, momentum, eps);
    EXPECT_CLOSE("bn train out (step 2)", y, ref("bn.out2", n), n, 1e-5, 1e-5);
    EXPECT_CLOSE("bn running_mean (step 2)", rm, ref("bn.rm2", C), C, 1e-6, 1e-6);
    EXPECT_CLOSE("bn running_var (step 2)", rv, ref("bn.rv2", C), C, 1e-6, 1e-6);
    // Inference with the running statistics after both steps.
    eng_batchnorm2d_forward_infer(y, ref("bn.x1", n), gamma, beta, rm, rv, B, C, HW, eps);
    EXPECT_CLOSE("bn infer out", y, ref("bn.out_infer", n), n, 1e-5, 1e-5);
    // running_* may be NULL in training.
    float *y2 = fvec(n);
    eng_batchnorm2d_forward_train(y2, mean, rstd, NULL, NULL, ref("bn.x1", n), gamma, beta, B, C, HW, momentum, eps);
    EXPECT_CLOSE("bn train out without running stats", y2, ref("bn.out1", n), n, 1e-5, 1e-5);
    free(y);
    free(y2);
    free(mean);
    free(rstd);
    free(rm);
    free(rv);
    free(din);
    free(din2);
    free(dgamma);
    free(dbeta);
}
END_TEST

static void bn_fwd(gc *c)
{
    eng_batchnorm2d_forward_train(c->out, c->s1, c->s2, NULL, NULL, c->x[0], c->x[1], c->x[2],
                                  c->d[0], c->d[1], c->d[2], 0.1f, 1e-5f);
}
static void bn_bwd(gc *c, const float *dout)
{
    eng_batchnorm2d_backward(c->dx[0], c->dx[1], c->dx[2], dout, c->x[0], c->x[1], c->s1, c->s2,
                             c->d[0], c->d[1], c->d[2]);
}

START_TEST(test_bn_grad)
{
    int d[3];
    ref_ints(d, "bn.dims", 3);
    int C = d[1];
    size_t n = (size_t)d[0] * d[1] * d[2];
    gc c = {.op = "batchnorm2d train", .nx = 3, .xname = {"in", "gamma", "beta"}, .fwd = bn_fwd, .bwd = bn_bwd,
            .d = {d[0], d[1], d[2]}};
    const char *names[3] = {"bn.x1", "bn.gamma", "bn.beta"};
    size_t ns[3] = {n, (size_t)C, (size_t)C};
    for (int i = 0; i < 3; i++) {
        c.xn[i] = ns[i];
        c.x[i] = fdup(ref(names[i], ns[i]), ns[i]);
        c.dx[i] = fvec(ns[i]);
    }
    c.nout = n;
    c.out = fvec(n);
    c.s1 = fvec(C);
    c.s2 = fvec(C);
    ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
    for (int i = 0; i < 3; i++) {
        free(c.x[i]);
        free(c.dx[i]);
    }
    free(c.out);
    free(c.s1);
    free(c.s2);
}
END_TEST

// ---------------------------------------------------------------- softmax / cross-entropy

START_TEST(test_softmax_hand)
{
    // [0, ln 2] -> [1/3, 2/3]; [1000, 1001] -> [1/(1+e), e/(1+e)] without
    // overflowing exp.
    const float x[] = {0.0f, 0.6931471805599453f, 1000.0f, 1001.0f};
    const float want[] = {1.0f / 3, 2.0f / 3, 0.2689414213699951f, 0.7310585786300049f};
    const float want_log[] = {-1.0986122886681098f, -0.4054651081081644f, -1.3132616875182228f,
                              -0.31326168751822286f};
    float y[4];
    eng_softmax_forward(y, x, 2, 2);
    EXPECT_CLOSE("softmax", y, want, 4, 1e-7, 1e-6);
    eng_log_softmax_forward(y, x, 2, 2);
    EXPECT_CLOSE("log_softmax", y, want_log, 4, 1e-7, 1e-6);
    float z[4];
    memcpy(z, x, sizeof z);
    eng_softmax_forward(z, z, 2, 2);   // in place
    EXPECT_CLOSE("softmax in place", z, want, 4, 1e-7, 1e-6);

    // Cross-entropy: uniform logits over 4 classes cost ln 4 whatever the
    // target; a confidently wrong logit of 1000 costs 1000, not inf.
    const float uni[] = {0.3f, 0.3f, 0.3f, 0.3f, 1000.0f, 0.0f, 0.0f, 0.0f};
    const int tgt[] = {2, 1};
    float probs[8];
    float loss = eng_cross_entropy_forward(probs, uni, tgt, 1, 4);
    ck_assert_float_eq_tol(loss, 1.3862943611198906f, 1e-6f);
    loss = eng_cross_entropy_forward(probs, uni + 4, tgt + 1, 1, 4);
    ck_assert_float_eq_tol(loss, 1000.0f, 1e-3f);
    loss = eng_cross_entropy_forward(probs, uni, tgt, 2, 4);   // mean of the two
    ck_assert_float_eq_tol(loss, (1.3862943611198906f + 1000.0f) / 2, 1e-3f);
    // dlogits = scale * (p - onehot) / N for row 0: (0.25 - [0,0,1,0]) * 3 / 2
    float dl[8] = {0};
    eng_cross_entropy_backward(dl, probs, tgt, 2, 4, 3.0f);
    const float want_dl[] = {0.375f, 0.375f, -1.125f, 0.375f};
    EXPECT_CLOSE("cross-entropy dlogits", dl, want_dl, 4, 1e-6, 0);
}
END_TEST

START_TEST(test_softmax_torch)
{
    int d[2];
    ref_ints(d, "sm.dims", 2);
    size_t n = (size_t)d[0] * d[1];
    float *y = fvec(n);
    eng_softmax_forward(y, ref("sm.in", n), d[0], d[1]);
    EXPECT_CLOSE("softmax", y, ref("sm.softmax", n), n, 1e-7, 1e-5);
    eng_log_softmax_forward(y, ref("sm.in", n), d[0], d[1]);
    EXPECT_CLOSE("log_softmax", y, ref("sm.log_softmax", n), n, 1e-6, 1e-6);
    free(y);

    ref_ints(d, "ce.dims", 2);
    int N = d[0], C = d[1];
    n = (size_t)N * C;
    int *t = eng_xcalloc(N, sizeof(int));
    ref_ints(t, "ce.targets", N);
    float *probs = fvec(n), *dl = fvec(n);
    float loss = eng_cross_entropy_forward(probs, ref("ce.logits", n), t, N, C);
    ck_assert_float_eq_tol(loss, ref("ce.loss", 1)[0], 1e-6f);
    EXPECT_CLOSE("cross-entropy probs", probs, ref("ce.probs", n), n, 1e-7, 1e-5);
    eng_cross_entropy_backward(dl, probs, t, N, C, 1.0f);
    EXPECT_CLOSE("cross-entropy dlogits", dl, ref("ce.dlogits", n), n, 1e-7, 1e-5);
    free(t);
    free(probs);
    free(dl);
}
END_TEST

static void ce_fwd(gc *c) { c->out[0] = eng_cross_entropy_forward(c->s1, c->x[0], c->is, c->d[0], c->d[1]); }
static void ce_bwd(gc *c, const float *dout)
{
    eng_cross_entropy_backward(c->dx[0], c->s1, c->is, c->d[0], c->d[1], dout[0]);
}

START_TEST(test_ce_grad)
{
    enum { N = 6, C = 5 };
    float x[N * C], dx[N * C], probs[N * C], loss[1];
    int t[N] = {0, 4, 2, 2, 1, 3};
    fill_uniform(x, N * C, -3.0f, 3.0f, 5);
    gc c = {.op = "cross-entropy", .nx = 1, .xname = {"logits"}, .x = {x}, .xn = {N * C}, .dx = {dx},
            .out = loss, .nout = 1, .s1 = probs, .is = t, .d = {N, C}, .fwd = ce_fwd, .bwd = ce_bwd};
    ck_assert_uint_eq(grad_check(&c, GC_EPS, GC_ATOL, GC_RTOL), 0);
}
END_TEST

// ---------------------------------------------------------------- optim

START_TEST(test_adamw_hand)
{
    // Step 1 from m = v = 0: mhat = g, vhat = g^2, so p = p(1 - lr wd) - lr g/(|g| + eps).
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -1e-3f}, m[2] = {0}, v[2] = {0};
    eng_adamw_step(p, g, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 1);
    ck_assert_float_eq_tol(p[0], 0.890000002f, 1e-7f);
    ck_assert_float_eq_tol(p[1], -1.88000099999f, 1e-6f);   // -2*0.99 + 0.1 * 1e-3/(1e-3 + 1e-8)
    ck_assert_float_eq_tol(m[0], 0.05f, 1e-7f);
    ck_assert_float_eq_tol(v[0], 0.00025f, 1e-8f);   // 1 - 0.999f is 1.3e-5 off 0.001
    // Zero weight decay and zero gradient leave a parameter where it is.
    float q[1] = {3.0f}, z[1] = {0}, mq[1] = {0}, vq[1] = {0};
    eng_adamw_step(q, z, mq, vq, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
    ck_assert_float_eq(q[0], 3.0f);
}
END_TEST

START_TEST(test_adamw_torch)
{
    const float *h = ref("adam.hyper", 7);
    size_t n = (size_t)h[0];
    int steps = (int)h[1];
    float *p = fdup(ref("adam.p0", n), n), *m = fvec(n), *v = fvec(n);
    for (int t = 1; t <= steps; t++) {
        char gname[32], pname[32];
        snprintf(gname, sizeof gname, "adam.g%d", t);
        snprintf(pname, sizeof pname, "adam.p%d", t);
        eng_adamw_step(p, ref(gname, n), m, v, n, h[2], h[3], h[4], h[5], h[6], t);
        EXPECT_CLOSE(pname, p, ref(pname, n), n, 2e-6, 1e-5);
    }
    free(p);
    free(m);
    free(v);
}
END_TEST

START_TEST(test_clip_grad_norm)
{
    // [3, 4] has norm 5; clipped to 1 it is [0.6, 0.8] (PyTorch's 1e-6 guard included).
    float g[2] = {3, 4};
    ck_assert_float_eq_tol(eng_clip_grad_norm(g, 2, 1.0f), 5.0f, 1e-6f);
    ck_assert_float_eq_tol(g[0], 0.59999988f, 1e-7f);
    ck_assert_float_eq_tol(g[1], 0.79999984f, 1e-7f);
    float mid[2] = {3, 4};   // coefficient 0.8
    ck_assert_float_eq_tol(eng_clip_grad_norm(mid, 2, 4.0f), 5.0f, 1e-6f);
    ck_assert_float_eq_tol(mid[0], 2.39999952f, 1e-6f);
    ck_assert_float_eq_tol(mid[1], 3.19999936f, 1e-6f);
    float small[2] = {0.3f, 0.4f};
    ck_assert_float_eq_tol(eng_clip_grad_norm(small, 2, 1.0f), 0.5f, 1e-7f);
    ck_assert_float_eq(small[0], 0.3f);   // under the limit: untouched
    const char *cases[] = {"clip1", "clip2"};
    for (int i = 0; i < 2; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s.g", cases[i]);
        float *gv = fdup(ref(key, 20), 20);
        snprintf(key, sizeof key, "%s.max_norm", cases[i]);
        float max_norm = ref(key, 1)[0];
        snprintf(key, sizeof key, "%s.norm", cases[i]);
        float want_norm = ref(key, 1)[0];
        ck_assert_float_eq_tol(eng_clip_grad_norm(gv, 20, max_norm), want_norm, 1e-6f * want_norm);
        snprintf(key, sizeof key, "%s.out", cases[i]);
        EXPECT_CLOSE(key, gv, ref(key, 20), 20, 1e-7, 1e-6);
        free(gv);
    }
}
END_TEST

// Memory running out mid-forward: with a recovery point set, the failing
// allocation longjmps there (the server answers 503 and keeps serving) and
// the arena stays usable; without one it aborts with a message.
START_TEST(test_arena_oom_escape)
{
    eng_arena a;
    eng_arena_init(&a);
    (void)eng_arena_alloc(&a, 100);
    static jmp_buf jb;
    static volatile int escaped;
    escaped = 0;
    if (setjmp(jb) == 0) {
        eng_arena_set_oom_jump(&jb);
        (void)eng_arena_alloc(&a, (size_t)1 << 46);   // 64 TiB: no machine has it
        ck_abort_msg("the allocation returned");
    } else {
        escaped = 1;
    }
    eng_arena_set_oom_jump(NULL);
    ck_assert_int_eq(escaped, 1);
    float *p = eng_arena_calloc(&a, 1000 * sizeof(float));   // still serves
    ck_assert(p && p[999] == 0.0f);
    eng_arena_reset(&a);
    eng_arena_free(&a);
}
END_TEST

START_TEST(test_arena_oom_aborts_without_jump)
{
    eng_arena a;
    eng_arena_init(&a);
    (void)eng_arena_alloc(&a, (size_t)1 << 46);
}
END_TEST

// ---------------------------------------------------------------- suite

// A test case whose tests all load the fixture first (in the forked child).
static TCase *tcase_new(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 120);   // generous: the machine is shared and ASan is slow
    tcase_add_checked_fixture(tc, refs_setup, refs_teardown);
    suite_add_tcase(s, tc);
    return tc;
}

// eng_matmul_nt_rowwise: a row's bits do not depend on how many rows share
// the call (batch invariance), and the values match the naive reference.
START_TEST(test_matmul_rowwise_invariant)
{
    enum { N = 37, K = 301, MAXM = 19 };
    static float A[MAXM * K], B[N * K], alone[N], batch[MAXM * N], ref[MAXM * N];
    unsigned seed = 7;
    for (int i = 0; i < MAXM * K; i++) { seed = seed * 1103515245u + 12345u; A[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f; }
    for (int i = 0; i < N * K; i++) { seed = seed * 1103515245u + 12345u; B[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f; }
    eng_matmul_nt_naive(ref, A, B, MAXM, N, K, 0);
    for (int M = 1; M <= MAXM; M++) {
        eng_matmul_nt_rowwise(batch, A, B, M, N, K, 0);
        for (int r = 0; r < M; r++) {
            eng_matmul_nt_rowwise(alone, A + (size_t)r * K, B, 1, N, K, 0);
            for (int j = 0; j < N; j++) {
                ck_assert_msg(memcmp(&alone[j], &batch[r * N + j], sizeof(float)) == 0,
                              "M=%d row %d col %d: %.9g alone vs %.9g in the batch", M, r, j, alone[j], batch[r * N + j]);
                ck_assert_msg(fabsf(batch[r * N + j] - ref[r * N + j]) <= 1e-4f * (1.0f + fabsf(ref[r * N + j])),
                              "M=%d row %d col %d: %.9g vs naive %.9g", M, r, j, batch[r * N + j], ref[r * N + j]);
            }
        }
    }
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("engine numeric core");
    TCase *tc = tcase_new(s, "util");
    tcase_add_test(tc, test_util_errorf);
    tcase_add_test(tc, test_util_alloc);
    tcase_add_test(tc, test_util_files);
    tc = tcase_new(s, "arena");
    tcase_add_test(tc, test_arena_basic);
    tcase_add_test(tc, test_arena_spill_and_merge);
    tcase_add_test(tc, test_arena_oom_escape);
    tcase_add_test_raise_signal(tc, test_arena_oom_aborts_without_jump, SIGABRT);
    tc = tcase_new(s, "matmul");
    tcase_add_test(tc, test_matmul_hand);
    tcase_add_test(tc, test_matmul_fast_vs_naive);
    tc = tcase_new(s, "linear");
    tcase_add_test(tc, test_linear_hand);
    tcase_add_test(tc, test_linear_torch);
    tcase_add_test(tc, test_linear_grad);
    tc = tcase_new(s, "conv2d");
    tcase_add_test(tc, test_conv_hand);
    // One run per fixture case (conv_a..conv_d); _i is the case index.
    tcase_add_loop_test(tc, test_conv_torch, 0, 4);
    tcase_add_loop_test(tc, test_conv_grad, 0, 4);
    tcase_add_test(tc, test_conv_fast_vs_naive);
    tc = tcase_new(s, "pooling");
    tcase_add_test(tc, test_pool_hand);
    tcase_add_test(tc, test_pool_torch);
    tcase_add_test(tc, test_pool_grad);
    tcase_add_test(tc, test_pool_fast_vs_naive);
    tc = tcase_new(s, "activations");
    tcase_add_test(tc, test_act_hand);
    tcase_add_test(tc, test_act_torch);
    tcase_add_test(tc, test_act_grad);
    tcase_add_test(tc, test_grad_check_catches_bugs);
    tcase_add_test(tc, test_relu_fast_vs_naive);
    tc = tcase_new(s, "batchnorm");
    tcase_add_test(tc, test_bn_hand);
    tcase_add_test(tc, test_bn_torch);
    tcase_add_test(tc, test_bn_grad);
    tcase_add_test(tc, test_bn_fast_vs_naive);
    tc = tcase_new(s, "softmax/loss");
    tcase_add_test(tc, test_softmax_hand);
    tcase_add_test(tc, test_softmax_torch);
    tcase_add_test(tc, test_ce_grad);
    tc = tcase_new(s, "optim");
    tcase_add_test(tc, test_adamw_hand);
    tcase_add_test(tc, test_adamw_torch);
    tcase_add_test(tc, test_clip_grad_norm);
    tcase_add_test(tc, test_matmul_rowwise_invariant);
    return s;
}


int main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
