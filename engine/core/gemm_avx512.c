// gemm_avx512.c — eng_gemm_nt's AVX-512 path (gemm_internal.h).
//
// Fixed order of every output element (whatever M, N or the column range):
// one 16-lane sum; element k of the dot product is added into lane k % 16,
// blocks of 16 in increasing k, with one fused multiply-add each; the last
// K % 16 elements are a masked block (zeros elsewhere) into the same sum; then
// the lanes are added as a fixed tree: l + (l+8), then + 4, + 2, + 1.
// Register tiles of R rows of A x C rows of B (R*C sums) only decide which
// dot products run side by side: each A load feeds C FMAs and each B load R.
#include "engine/core/gemm_internal.h"

#include <immintrin.h>  // AVX-512 intrinsics
#include "engine/core/simd_x86.h"   // ENG_T512, eng_hsum512 (the lane tree)

#define T512 ENG_T512

enum { MAX_R = 4, MAX_C = 8 };
// Many-row steps fetch the next column block's weight rows while computing
// this block, the fetch spread over the block's row tiles (each tile issues
// its share of the rows). A 16-row step otherwise streams a block from DRAM
// in its first tile and computes in the other three, with no overlap;
// measured on the stories110M step's matmuls, 2 threads, alternating runs:
// 16 rows 19.6-20.6 -> 16.0-17.0 ms (first-tile-only prefetch two blocks
// ahead -> this), 8 rows 11.5 -> 9.8, 32 rows 26.0 -> 21.0; one block ahead
// beat two. The decode tiles
// (1 and 2 rows) gain nothing: the hardware prefetcher keeps up with them.

static const size_t A_BLOCK_BYTES = 256 * 1024;   // rows of A kept in L2 at a time (see the driver)

// eng_hsum512 of four vectors at once, [a, b, c, d] in a 128-bit result: the same
// pairings as eng_hsum512 (each add sees the same two values), done on 512-bit
// shuffles of two and four vectors instead of 4 x 4 narrowing steps.
static inline __attribute__((always_inline)) T512 __m128 hsum16x4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));  // l + (l+8): [a' b']
    __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));  // [c' d']
    __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));  // l + (l+4): [a b c d]
    __m512 y = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));       // l + (l+2)
    __m512 z = _mm512_add_ps(y, _mm512_permute_ps(y, _MM_SHUFFLE(2, 3, 0, 1)));       // 0 + 1
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), z));
}

// out[r*ldo + c] (+)= dot(a + r*lda, b + c*ldb) for r < R, c < C (constants).
// pf, when not NULL: rows pc0 <= c < pc1 of the next block of B (ldb apart),
// fetched into cache line by line alongside (DRAM latency hidden behind
// this tile's FMAs).
static inline __attribute__((always_inline)) T512 void
tile(float *restrict out, size_t ldo, const float *restrict a, size_t lda, const float *restrict b, size_t ldb, int K,
     int accumulate, const int R, const int C, const float *pf, int pc0, int pc1)
{
    __m512 s[MAX_R][MAX_C];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) s[r][c] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        if (pf)
            for (int c = pc0; c < pc1; c++) _mm_prefetch((const char *)(pf + c * ldb + k), _MM_HINT_T0);
        __m512 bv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) bv[c] = _mm512_loadu_ps(b + c * ldb + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_loadu_ps(a + r * lda + k);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) s[r][c] = _mm512_fmadd_ps(av, bv[c], s[r][c]);
        }
    }
    if (k < K) {   // the last K % 16: masked loads give zeros in the other lanes
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 bv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) bv[c] = _mm512_maskz_loadu_ps(m, b + c * ldb + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_maskz_loadu_ps(m, a + r * lda + k);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) s[r][c] = _mm512_fmadd_ps(av, bv[c], s[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        int c = 0;
#pragma GCC unroll 2
        for (; c + 4 <= C; c += 4) {
            __m128 v = hsum16x4(s[r][c], s[r][c + 1], s[r][c + 2], s[r][c + 3]);
            if (accumulate) v = _mm_add_ps(_mm_loadu_ps(out + r * ldo + c), v);
            _mm_storeu_ps(out + r * ldo + c, v);
        }
#pragma GCC unroll 4
        for (; c < C; c++) {
            float v = eng_hsum512(s[r][c]);
            out[r * ldo + c] = accumulate ? out[r * ldo + c] + v : v;
        }
    }
}

// All rows of A against C rows of B (kept in L1 while A's rows pass by);
// the tiles also fetch the next C rows of B (pf, or NULL at the end), tile
// t of nt its share [t*C/nt, (t+1)*C/nt).
static inline __attribute__((always_inline)) T512 void
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
// prefetch, each block's tiles fetch the next block's rows.
static inline __attribute__((always_inline)) T512 void
columns(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M, int N, int K,
        int accumulate, const int C, const int prefetch)
{
    int j = 0;
    for (; j + C <= N; j += C)
        column_block(out + j, ldo, A, lda, B + j * ldb, ldb, M, K, accumulate, C,
                     prefetch && j + 2 * C <= N ? B + (j + C) * ldb : NULL);
    for (; j < N; j++) column_block(out + j, ldo, A, lda, B + j * ldb, ldb, M, K, accumulate, 1, NULL);
}

// Few rows stream the weights from DRAM: one row in 1 x 8 tiles (8
// independent sums keep enough loads in flight; the hardware prefetcher
// keeps up, software prefetch measured 12% slower), two rows in 2 x 4 tiles
// and 3-8 rows in 4 x 4, both with the next block prefetched (stories110M
// step matmuls, 2 threads, alternating runs: 2 rows 46-48 -> 54-58 GB/s;
// 4 rows 46 (4 x 6) -> 49-51 GB/s; 8 rows 40-41 -> 42-46). More rows use
// 4 x 6 tiles (24 sums; measured 7-13% above 4 x 4 on the step shapes at
// 16 rows, 4 x 8 spills registers).
T512 void eng__gemm_nt_avx512(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M,
                              int N, int K, int accumulate)
{
    if (M == 1) columns(out, ldo, A, lda, B, ldb, M, N, K, accumulate, 8, 0);
    else if (M == 2) columns(out, ldo, A, lda, B, ldb, M, N, K, accumulate, 4, 1);
    else if (M <= 8) columns(out, ldo, A, lda, B, ldb, M, N, K, accumulate, 4, 1);
    else {
        // Many rows: every 6 weight rows meet all rows of A, so A should stay
        // in L2 (1 MB on Zen 4); with long rows (K = 3072: 12 KB each) take
        // the rows in chunks that fit, and read the weights once per chunk.
        int mc = M;
        if ((size_t)M * K * sizeof(float) > A_BLOCK_BYTES) {
            mc = (int)(A_BLOCK_BYTES / ((size_t)K * sizeof(float))) / 4 * 4;
            if (mc < 4) mc = 4;
        }
        for (int i0 = 0; i0 < M; i0 += mc)
            columns(out + i0 * ldo, ldo, A + i0 * lda, lda, B, ldb, M - i0 < mc ? M - i0 : mc, N, K, accumulate, 6, 1);
    }
}
