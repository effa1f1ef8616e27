// gemm.c — eng_gemm_nt (gemm.h): the dispatcher and the plain-C path.
//
// Every path computes each output element as one dot product of an A row and
// a B row with a FIXED order (lanes, chains, tail, final horizontal sum) that
// depends only on K; register tiles only change which dot products run side
// by side, so M and the column range cannot change any bits. The weights (B)
// are read once per call, front to back, each B row meeting all A rows while
// it is in cache: for the few-row decode steps that is a single pass over
// weights streamed from DRAM.
#include "engine/core/gemm.h"

#include "engine/core/gemm_internal.h"  // eng__gemm_nt_avx2, eng__gemm_nt_avx512


// ---------------------------------------------------------------- plain C
// Built for baseline x86-64 (SSE2). gcc -O2 vectorises a loop only when the
// vector code replaces it entirely, so the lanes run in blocks with constant
// inner loops (see ops.c's top comment); -std=c11 keeps fp contraction off,
// so the order written here is the order computed.

enum {
    G_LANES = 8,   // floats per partial-sum vector (two SSE registers); the reduction assumes 8
    G_CHAINS = 2,  // lane groups per dot product: element k goes to group (k / 8) % 2 in blocks of 16
};

// out[r*ldo] (+)= dot(a + r*lda, b) over K values for r < R (R constant, <= 4).
// Per element: 16-float blocks into two 8-lane sums, a last whole 8 into the
// first, the groups added, a fixed lane tree, then the K % 8 tail serially.
static inline __attribute__((always_inline)) void
tile_generic(float *restrict out, size_t ldo, const float *restrict a, size_t lda, const float *restrict b, int K,
             int accumulate, const int R)
{
    float s[4 * G_CHAINS][G_LANES];  // [r*G_CHAINS + g][lane]
#pragma GCC unroll 8
    for (int q = 0; q < R * G_CHAINS; q++)
        for (int l = 0; l < G_LANES; l++) s[q][l] = 0.0f;
    int k = 0;
    for (; k + G_CHAINS * G_LANES <= K; k += G_CHAINS * G_LANES)
#pragma GCC unroll 8
        for (int g = 0; g < G_CHAINS; g++)
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                for (int l = 0; l < G_LANES; l++) {
                    int kk = k + g * G_LANES + l;
                    s[r * G_CHAINS + g][l] += a[r * lda + kk] * b[kk];
                }
    for (; k + G_LANES <= K; k += G_LANES)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            for (int l = 0; l < G_LANES; l++) s[r * G_CHAINS][l] += a[r * lda + k + l] * b[k + l];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        float *t = s[r * G_CHAINS];
        for (int l = 0; l < G_LANES; l++) t[l] += s[r * G_CHAINS + 1][l];
        float v = ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
        for (int kk = k; kk < K; kk++) v += a[r * lda + kk] * b[kk];
        out[r * ldo] = accumulate ? out[r * ldo] + v : v;
    }
}

static void gemm_nt_generic(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M,
                            int N, int K, int accumulate)
{
    for (int j = 0; j < N; j++) {
        const float *b = B + (size_t)j * ldb;
        int i = 0;
        for (; i + 4 <= M; i += 4) tile_generic(out + i * ldo + j, ldo, A + i * lda, lda, b, K, accumulate, 4);
        for (; i + 2 <= M; i += 2) tile_generic(out + i * ldo + j, ldo, A + i * lda, lda, b, K, accumulate, 2);
        for (; i < M; i++) tile_generic(out + i * ldo + j, ldo, A + i * lda, lda, b, K, accumulate, 1);
    }
}

// ---------------------------------------------------------------- dispatch

void eng_gemm_nt_level(eng_cpu_level lvl, float *out, size_t ldo, const float *A, size_t lda, const float *B,
                       size_t ldb, int M, int N, int K, int accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (K < 0) K = 0;
    switch (lvl) {
    case ENG_CPU_AVX512: eng__gemm_nt_avx512(out, ldo, A, lda, B, ldb, M, N, K, accumulate); return;
    case ENG_CPU_AVX2: eng__gemm_nt_avx2(out, ldo, A, lda, B, ldb, M, N, K, accumulate); return;
    default: gemm_nt_generic(out, ldo, A, lda, B, ldb, M, N, K, accumulate); return;
    }
}

void eng_gemm_nt(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M, int N, int K,
                 int accumulate)
{
    eng_gemm_nt_level(eng_cpu_level_get(), out, ldo, A, lda, B, ldb, M, N, K, accumulate);
}
