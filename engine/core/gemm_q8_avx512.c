// gemm_q8_avx512.c — eng_gemm_q8_nt's AVX-512 VNNI kernel (gemm_q8_internal.h).
//
// Register tiles of R activation rows x C weight rows: per 64-byte chunk of
// the packed layout each weight load feeds R vpdpbusd and each activation
// load C, into R*C integer sums of 16 lanes (one per group of the block).
// The tiles only decide which dot products run side by side; each output
// element is the fixed arithmetic of gemm_q8.h whatever R, C, M or N:
//   S (exact int32 per group) -> acc += (float)S * (sa * sw), blocks in order
//   -> the fixed lane tree l + (l+8), + 4, + 2, + 1.
// Integer sums are exact, so starting S at -128 * sum(a) (the unsigned-weight
// correction) instead of subtracting it afterwards gives the same S.
#include "engine/core/gemm_q8_internal.h"

#include <immintrin.h>   // AVX-512 intrinsics

#define T512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

enum { MAX_R = 4, MAX_C = 8 };

typedef eng__q8_geom geom;

// The fixed lane tree of four sums at once, [a b c d] in a 128-bit result;
// each add sees the same two values as the one-vector tree
// (l + (l+8), then + 4, + 2, then lane 0 + lane 1).
INLINE T512 __m128 tree16x4(__m512 a, __m512 b, __m512 c, __m512 d) {
    __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));   // l + (l+8): [a' b']
    __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));   // [c' d']
    __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));   // l + (l+4): [a b c d]
    __m512 y = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));        // l + (l+2)
    __m512 z = _mm512_add_ps(y, _mm512_permute_ps(y, _MM_SHUFFLE(2, 3, 0, 1)));        // 0 + 1
    return _mm512_castps512_ps128(
        _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), z));
}

INLINE T512 float tree16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// The tail block's 16 lanes folded to P group sums in lanes [0, P): lane l
// gets lanes l, l + P, l + 2P ... (the lanes above hold partial sums, met by
// zero scales only).
INLINE T512 __m512i fold(__m512i S, int P) {
    if (P <= 8) S = _mm512_add_epi32(S, _mm512_shuffle_i32x4(S, S, _MM_SHUFFLE(1, 0, 3, 2)));   // + l+8
    if (P <= 4) S = _mm512_add_epi32(S, _mm512_shuffle_i32x4(S, S, _MM_SHUFFLE(2, 3, 0, 1)));   // + l+4
    if (P <= 2) S = _mm512_add_epi32(S, _mm512_shuffle_epi32(S, _MM_PERM_BADC));               // + l+2
    if (P <= 1) S = _mm512_add_epi32(S, _mm512_shuffle_epi32(S, _MM_PERM_CDAB));               // + l+1
    return S;
}

// S[r][c] += the int32 lane sums of n chunks of activation row r (at a) and
// weight row c (at w); rows pr bytes apart. pf: also prefetch the same bytes
// of the next C weight rows (the next tile's, which follow in memory): the
// hardware prefetcher alone leaves a weight stream from DRAM ~10% slower.
INLINE T512 void sums(__m512i S[MAX_R][MAX_C], const int8_t *a, const int8_t *w, size_t pr, int n, int pf,
                      const int R, const int C) {
    // a 1 x 1 or 1 x 2 tile alone would wait on vpdpbusd's latency: odd chunks go to second sums
    const int split = R * C <= 2;
    __m512i T[MAX_R][MAX_C];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) T[r][c] = _mm512_setzero_si512();
    for (int ch = 0; ch < n; ch++, a += 64, w += 64) {
        __m512i wv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) wv[c] = _mm512_loadu_si512(w + (size_t)c * pr);
        if (pf)
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) _mm_prefetch((const char *)(w + (size_t)(c + C) * pr), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512i av = _mm512_loadu_si512(a + (size_t)r * pr);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                if (split && (ch & 1)) T[r][c] = _mm512_dpbusd_epi32(T[r][c], wv[c], av);
                else S[r][c] = _mm512_dpbusd_epi32(S[r][c], wv[c], av);
            }
        }
    }
    if (split)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) S[r][c] = _mm512_add_epi32(S[r][c], T[r][c]);
}

// out[r * ldo + c] (+)= A_r . B_c for r < R activation rows (packed at a,
// scales sa, group sums as) and c < C weight rows (packed at w, scales sw);
// pf as sums.
INLINE T512 void tile(float *out, int ldo, const geom *g, const int8_t *a, const float *sa, const int32_t *as,
                      const int8_t *w, const float *sw, int accumulate, int pf, const int R, const int C) {
    const size_t pr = g->pr;
    const int ng = g->ng;
    __m512 acc[MAX_R][MAX_C];
    __m512i S[MAX_R][MAX_C];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int b = 0; b < g->nfull; b++) {   // full blocks of 16 groups
        size_t o = (size_t)b * 16 * g->G;
        int g0 = 16 * b;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {   // -128 * sum(a): the weights are stored as w + 128
            __m512i init = _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_slli_epi32(_mm512_loadu_si512(as + (size_t)r * ng + g0), 7));
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) S[r][c] = init;
        }
        sums(S, a + o, w + o, pr, g->chunks, pf, R, C);
        __m512 swv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) swv[c] = _mm512_loadu_ps(sw + (size_t)c * ng + g0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 sav = _mm512_loadu_ps(sa + (size_t)r * ng + g0);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                acc[r][c] = _mm512_add_ps(acc[r][c], _mm512_mul_ps(_mm512_cvtepi32_ps(S[r][c]), _mm512_mul_ps(sav, swv[c])));
        }
    }
    if (g->P) {   // the tail: fold to P lanes, then lanes [0, nv) meet their scales
        size_t o = (size_t)g->nfull * 16 * g->G;
        int g0 = 16 * g->nfull;
        __mmask16 m = (__mmask16)((1u << g->nv) - 1);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) S[r][c] = _mm512_setzero_si512();
        sums(S, a + o, w + o, pr, g->tchunks, pf, R, C);
        __m512 swv[MAX_C];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) swv[c] = _mm512_maskz_loadu_ps(m, sw + (size_t)c * ng + g0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 sav = _mm512_maskz_loadu_ps(m, sa + (size_t)r * ng + g0);
            __m512i corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, as + (size_t)r * ng + g0), 7);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                __m512i s = _mm512_sub_epi32(fold(S[r][c], g->P), corr);
                acc[r][c] = _mm512_add_ps(acc[r][c], _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sav, swv[c])));
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)r * ldo;
        int c = 0;
#pragma GCC unroll 2
        for (; c + 4 <= C; c += 4) {
            __m128 v = tree16x4(acc[r][c], acc[r][c + 1], acc[r][c + 2], acc[r][c + 3]);
            if (accumulate) v = _mm_add_ps(_mm_loadu_ps(o + c), v);
            _mm_storeu_ps(o + c, v);
        }
#pragma GCC unroll 4
        for (; c < C; c++) {
            float v = tree16(acc[r][c]);
            o[c] = accumulate ? o[c] + v : v;
        }
    }
}

// Rows [0, M) of A from row i0 against C weight rows at w: R rows at a time,
// then the last M % R. The last tile prefetches the next weight rows (the
// others find this tile's in L1).
INLINE T512 void column_block(float *out, int ldo, const geom *g, const eng_q8_rows *A, int i0, int M, const int8_t *w,
                              const float *sw, int accumulate, const int R, const int C) {
#define Q8_TILE(RR)                                                                                          \
    tile(out + (size_t)i * ldo, ldo, g, A->p + (size_t)(i0 + i) * g->pr, A->s + (size_t)(i0 + i) * g->ng, \
         A->sum + (size_t)(i0 + i) * g->ng, w, sw, accumulate, i + RR >= M, RR, C)
    int i = 0;
    for (; i + R <= M; i += R) Q8_TILE(R);
    switch (M - i) {
    case 3: Q8_TILE(3); break;
    case 2: Q8_TILE(2); break;
    case 1: Q8_TILE(1); break;
    default: break;
    }
#undef Q8_TILE
}

// All N weight rows, C at a time, the last N % C in tiles of 4, 2, 1.
INLINE T512 void columns(float *out, int ldo, const geom *g, const eng_q8_rows *A, int i0, int M,
                         const eng_q8_matrix *B, int N, int accumulate, const int R, const int C) {
#define Q8_COLS(CC)                                                                                                  \
    column_block(out + j, ldo, g, A, i0, M, B->p + (size_t)j * g->pr, B->s + (size_t)j * g->ng, accumulate, R, CC); \
    j += CC
    int j = 0;
    while (j + C <= N) { Q8_COLS(C); }
    if (C > 4 && N - j >= 4) { Q8_COLS(4); }
    if (C > 2 && N - j >= 2) { Q8_COLS(2); }
    if (N - j >= 1) { Q8_COLS(1); }
#undef Q8_COLS
}

// One or two rows (decode) stream the weights from DRAM: 1 x 8 and 2 x 4
// tiles keep 8 independent sums and 8 loads in flight per step. More rows
// take 4 x 4 tiles (16 integer + 16 float sums) over blocks of rows that
// stay in L2 while each tile's weight rows sit in L1.
T512 void eng__gemm_q8_avx512vnni(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N,
                                  int accumulate) {
    geom g = eng__q8_geom_of(B);
    if (M == 1) columns(out, ldo, &g, A, 0, 1, B, N, accumulate, 1, 8);
    else if (M == 2) columns(out, ldo, &g, A, 0, 2, B, N, accumulate, 2, 4);
    else {
        int mc = (int)(ENG__Q8_A_BLOCK_BYTES / g.pr) / 4 * 4;
        if (mc < 4) mc = 4;
        for (int i0 = 0; i0 < M; i0 += mc)
            columns(out + (size_t)i0 * ldo, ldo, &g, A, i0, M - i0 < mc ? M - i0 : mc, B, N, accumulate, 4, 4);
    }
}
