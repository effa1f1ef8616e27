// gemm_avx2.c — eng_gemm_nt's AVX2 + FMA path (gemm_internal.h).
//
// Fixed order of every output element (whatever M, N or the column range):
// one 8-lane sum; element k of the dot product is added into lane k % 8,
// blocks of 8 in increasing k, one fused multiply-add each; the last K % 8
// elements are a masked block (zeros elsewhere) into the same sum; then the
// lanes are added as a fixed tree: l + (l+4), then + 2, + 1.
// Register tiles of R rows of A x C rows of B only decide which dot products
// run side by side (16 ymm registers: R*C sums + C B vectors + one A).
#include "engine/core/gemm_internal.h"

#include <immintrin.h>  // AVX2 / FMA intrinsics
#include "engine/core/simd_x86.h"   // ENG_T256, eng_hsum256 (the lane tree)

#define T256 ENG_T256

enum { MAX_R = 4, MAX_C = 8 };
// Many-row tiles prefetch the next column block (see columns): measured on
// the stories110M step's matmuls with INFERD_CPU=avx2, 2 threads,
// alternating runs: 4 rows 14.2 -> 7.7 ms, 16 rows 28.8 -> 19.9, 64 rows
// 83.5 -> 74.4.

// pf, when not NULL: rows pc0 <= c < pc1 of the next block of B, fetched
// into cache a line (16 floats) at a time alongside (see columns).
static inline __attribute__((always_inline)) T256 void
tile(float *restrict out, size_t ldo, const float *restrict a, size_t lda, const float *restrict b, size_t ldb, int K,
     int accumulate, const int R, const int C, const float *pf, int pc0, int pc1)
{
    __m256 s[MAX_R][MAX_C];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) s[r][c] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        if (pf && !(k & 15))
            for (int c = pc0; c < pc1; c++) _mm_prefetch((const char *)(pf + c * ldb + k), _MM_HINT_T0);
        __m256 bv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) bv[c] = _mm256_loadu_ps(b + c * ldb + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_loadu_ps(a + r * lda + k);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) s[r][c] = _mm256_fmadd_ps(av, bv[c], s[r][c]);
        }
    }
    if (k < K) {   // the last K % 8: masked loads give zeros in the other lanes
        static const int ramp[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
        __m256i m = _mm256_loadu_si256((const __m256i *)(ramp + 8 - (K - k)));
        __m256 bv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) bv[c] = _mm256_maskload_ps(b + c * ldb + k, m);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_maskload_ps(a + r * lda + k, m);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) s[r][c] = _mm256_fmadd_ps(av, bv[c], s[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            float v = eng_hsum256(s[r][c]);
            out[r * ldo + c] = accumulate ? out[r * ldo + c] + v : v;
        }
}

// All rows of A against C rows of B; tile t of nt also fetches its share
// [t*C/nt, (t+1)*C/nt) of the next block's rows (pf, or NULL).
static inline __attribute__((always_inline)) T256 void
column_block(float *out, size_t ldo, const float *A, size_t lda, const float *b, size_t ldb, int M, int K,
             int accumulate, const int C, const float *pf)
{
    int i = 0, nt = (M + 3) / 4, t = 0;
    for (; i + 4 <= M; i += 4, t++)
        tile(out + i * ldo, ldo, A + i * lda, lda, b, ldb, K, accumulate, 4, C, pf, t * C / nt, (t + 1) * C / nt);
    int pc0 = t * C / nt, pc1 = (t + 1) * C / nt;
    switch (M - i) {
    case 3: tile(out + i * ldo, ldo, A + i * lda, lda, b, ldb, K, accumulate, 3, C, pf, pc0, pc1); break;
    case 2: tile(out + i * ldo, ldo, A + i * lda, lda, b, ldb, K, accumulate, 2, C, pf, pc0, pc1); break;
    case 1: tile(out + i * ldo, ldo, A + i * lda, lda, b, ldb, K, accumulate, 1, C, pf, pc0, pc1); break;
    default: break;
    }
}

// C columns (B rows) at a time, then the last N % C one by one; with
// prefetch (many rows: see gemm_avx512.c), each block's tiles fetch the next
// block's rows so the DRAM stream overlaps the FMAs.
static inline __attribute__((always_inline)) T256 void
columns(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M, int N, int K,
        int accumulate, const int C, const int prefetch)
{
    int j = 0;
    for (; j + C <= N; j += C)
        column_block(out + j, ldo, A, lda, B + j * ldb, ldb, M, K, accumulate, C,
                     prefetch && j + 2 * C <= N ? B + (j + C) * ldb : NULL);
    for (; j < N; j++) column_block(out + j, ldo, A, lda, B + j * ldb, ldb, M, K, accumulate, 1, NULL);
}

// One or two rows (decode) stream the weights from DRAM: 8 independent sums
// (1 x 8 or 2 x 4 tiles) keep enough loads in flight; a chain-bound loop
// with fewer issues them too slowly. More rows use 4 x 3 tiles (12 sums, 3 B
// vectors, one A: all 16 ymm registers; measured 25-45% above 4 x 2).
T256 void eng__gemm_nt_avx2(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M,
                              int N, int K, int accumulate)
{
    if (M == 1) columns(out, ldo, A, lda, B, ldb, M, N, K, accumulate, 8, 0);
    else if (M == 2) columns(out, ldo, A, lda, B, ldb, M, N, K, accumulate, 4, 0);
    else columns(out, ldo, A, lda, B, ldb, M, N, K, accumulate, 3, 1);
}
