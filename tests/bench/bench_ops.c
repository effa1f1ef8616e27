// bench_ops.c — micro-benchmark of the engine's two hot ops, single-threaded:
// eng_matmul_nt (x W^T) for M = 1..256 rows with N = K = 768 (GPT-2-small
// width), next to plain cblas_sgemm on the same shape so the M < 16 cut-over
// can be re-checked, the same for weights too big for the caches (decode),
// and conv2d forward on a CNN-sized layer. Prints
// GFLOP/s (best of 5 rounds of >= 0.2 s each); asserts nothing.
//
//   gcc -O2 -march=x86-64-v3 -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread
//       -o bench_ops tests/bench/bench_ops.c engine/core/ops.c engine/core/util.c -lopenblas -lm
#include <cblas.h>    // cblas_sgemm, openblas_set_num_threads (OpenBLAS's cblas.h)
#include <stdio.h>    // printf
#include <stdlib.h>   // free

#include "engine/core/ops.h"    // eng_matmul_nt, eng_conv2d_*
#include "engine/core/util.h"   // eng_xaligned, eng_now

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

typedef void (*bench_fn)(void *ctx);

// Best seconds per call over 5 rounds, each repeating fn for >= 0.2 s.
static double time_best(bench_fn fn, void *ctx)
{
    fn(ctx);   // warm caches and lazy BLAS initialisation
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        long calls = 0;
        double t0 = eng_now(), t;
        do {
            fn(ctx);
            calls++;
            t = eng_now() - t0;
        } while (t < 0.2);
        if (t / calls < best) best = t / calls;
    }
    return best;
}

typedef struct {
    float *out, *A, *B;   // [M,N], [M,K], [N,K]
    int M, N, K;
} mm_ctx;

static void run_matmul(void *p)
{
    mm_ctx *c = p;
    eng_matmul_nt(c->out, c->A, c->B, c->M, c->N, c->K, 0);
}

static void run_sgemm(void *p)
{
    mm_ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->M, c->N, c->K, 1.0f, c->A, c->K, c->B, c->K,
                0.0f, c->out, c->N);
}

typedef struct {
    float *out, *col, *in, *w, *b;
    int B, C, H, W, OC, K, pad;
} conv_ctx;

static void run_conv(void *p)
{
    conv_ctx *c = p;
    eng_conv2d_forward(c->out, c->col, c->in, c->w, c->b, c->B, c->C, c->H, c->W, c->OC, c->K, c->K, 1, c->pad);
}

int main(void)
{
    openblas_set_num_threads(1);
    printf("single thread; GFLOP/s, best of 5 rounds\n");

    // ---- matmul: out[M,768] = A[M,768] @ B[768,768]^T (B is 2.25 MiB: cache-resident)
    const int N = 768, K = 768;
    const int Ms[] = {1, 4, 16, 64, 256};
    float *B = eng_xaligned((size_t)N * K * sizeof(float));
    float *A = eng_xaligned((size_t)256 * K * sizeof(float));
    float *out = eng_xaligned((size_t)256 * N * sizeof(float));
    fill(B, (size_t)N * K, 1);
    fill(A, (size_t)256 * K, 2);
    printf("%-28s %10s %10s\n", "eng_matmul_nt N=K=768", "matmul_nt", "sgemm");
    for (size_t i = 0; i < sizeof(Ms) / sizeof(Ms[0]); i++) {
        mm_ctx c = {out, A, B, Ms[i], N, K};
        double flops = 2.0 * Ms[i] * N * K;
        double t_eng = time_best(run_matmul, &c);
        double t_blas = time_best(run_sgemm, &c);
        printf("  M=%-25d %10.1f %10.1f\n", Ms[i], flops / t_eng * 1e-9, flops / t_blas * 1e-9);
    }
    free(B);
    free(A);
    free(out);

    // ---- the decode case: weights [24576,768] = 72 MiB, twice the L3, so
    // every call streams them from DRAM; GB/s of weights read is what counts.
    const int NB = 24576;
    B = eng_xaligned((size_t)NB * K * sizeof(float));
    A = eng_xaligned((size_t)16 * K * sizeof(float));
    out = eng_xaligned((size_t)16 * NB * sizeof(float));
    fill(B, (size_t)NB * K, 6);
    fill(A, (size_t)16 * K, 7);
    printf("%-28s %10s %10s   (weights GB/s: matmul_nt, sgemm)\n", "weights from DRAM K=768", "matmul_nt", "sgemm");
    const int Md[] = {1, 4, 16};
    for (size_t i = 0; i < sizeof(Md) / sizeof(Md[0]); i++) {
        mm_ctx c = {out, A, B, Md[i], NB, K};
        double flops = 2.0 * Md[i] * NB * K, bytes = (double)NB * K * sizeof(float);
        double t_eng = time_best(run_matmul, &c);
        double t_blas = time_best(run_sgemm, &c);
        printf("  M=%-25d %10.1f %10.1f   (%.1f, %.1f)\n", Md[i], flops / t_eng * 1e-9, flops / t_blas * 1e-9,
               bytes / t_eng * 1e-9, bytes / t_blas * 1e-9);
    }
    free(B);
    free(A);
    free(out);

    // ---- conv2d forward: B=64, C=32, 14x14, OC=64, 3x3, stride 1, pad 1
    conv_ctx cv = {.B = 64, .C = 32, .H = 14, .W = 14, .OC = 64, .K = 3, .pad = 1};
    size_t n_in = (size_t)cv.B * cv.C * cv.H * cv.W;
    size_t n_w = (size_t)cv.OC * cv.C * cv.K * cv.K;
    size_t n_out = (size_t)cv.B * cv.OC * cv.H * cv.W;   // stride 1, pad 1: same size
    cv.in = eng_xaligned(n_in * sizeof(float));
    cv.w = eng_xaligned(n_w * sizeof(float));
    cv.b = eng_xaligned((size_t)cv.OC * sizeof(float));
    cv.out = eng_xaligned(n_out * sizeof(float));
    cv.col = eng_xaligned(eng_conv2d_col_size(cv.C, cv.H, cv.W, cv.K, cv.K, 1, cv.pad) * sizeof(float));
    fill(cv.in, n_in, 3);
    fill(cv.w, n_w, 4);
    fill(cv.b, (size_t)cv.OC, 5);
    double conv_flops = 2.0 * (double)n_out * cv.C * cv.K * cv.K;
    double t_conv = time_best(run_conv, &cv);
    printf("conv2d_forward B=64 C=32 14x14 OC=64 3x3 pad=1: %.1f GFLOP/s (%.2f ms/batch)\n",
           conv_flops / t_conv * 1e-9, t_conv * 1e3);
    free(cv.in);
    free(cv.w);
    free(cv.b);
    free(cv.out);
    free(cv.col);
    return 0;
}
