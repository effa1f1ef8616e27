// gemm_q8_avx2.c — eng_gemm_q8_nt's 256-bit kernels (gemm_q8_internal.h):
// AVX2 (sign trick) and AVX-VNNI, both from the one tiled kernel in
// gemm_q8_ymm.inc; the helpers here are the float tail of gemm_q8.h's fixed
// arithmetic in two 8-lane halves (lo = groups 0-7 of a block, hi = 8-15).
#include "engine/core/gemm_q8_internal.h"

#include <immintrin.h>   // AVX2, AVX-VNNI intrinsics

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))
#define INLINE static inline __attribute__((always_inline))

enum { MAX_R = 4, MAX_C = 4 };

typedef eng__q8_geom geom;
static inline geom geom_of(const eng_q8_matrix *B) { return eng__q8_geom_of(B); }

// The float tail of the reference: lanes l + l+8 (lo + hi), then + l+4, + l+2, + l+1.
INLINE T_AVX2 float tree16_256(__m256 lo, __m256 hi) {
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

// tree16_256 of four sums at once, [a b c d] from acc[k] = {lo, hi}; each add
// sees the same two values as in tree16_256.
INLINE T_AVX2 __m128 tree16x4_256(__m256 acc[][2]) {
    __m256 v0 = _mm256_add_ps(acc[0][0], acc[0][1]), v1 = _mm256_add_ps(acc[1][0], acc[1][1]);   // l + (l+8)
    __m256 v2 = _mm256_add_ps(acc[2][0], acc[2][1]), v3 = _mm256_add_ps(acc[3][0], acc[3][1]);
    __m256 x01 = _mm256_add_ps(_mm256_permute2f128_ps(v0, v1, 0x20), _mm256_permute2f128_ps(v0, v1, 0x31));   // l + (l+4)
    __m256 x23 = _mm256_add_ps(_mm256_permute2f128_ps(v2, v3, 0x20), _mm256_permute2f128_ps(v2, v3, 0x31));
    // per 128-bit half: [a0+a2, a1+a3, c0+c2, c1+c3] (half 0), the same of b, d (half 1)
    __m256 y = _mm256_add_ps(_mm256_shuffle_ps(x01, x23, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(x01, x23, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 z = _mm256_hadd_ps(y, y);   // lane 0 + lane 1: [a c a c | b d b d]
    return _mm_unpacklo_ps(_mm256_castps256_ps128(z), _mm256_extractf128_ps(z, 1));
}

// Lanes [0, n) of 8 set (masked loads of a partial block).
INLINE T_AVX2 __m256i lanes_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Folds a tail's 16 lanes (lo, hi) to P group sums: lanes l, l + P, l + 2P ... added.
INLINE T_AVX2 void fold_tail(__m256i *lo, __m256i *hi, int P) {
    if (P >= 16) return;
    __m256i x = _mm256_add_epi32(*lo, *hi);   // 8 lanes
    if (P <= 4) {
        __m128i y = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
        if (P <= 2) y = _mm_add_epi32(y, _mm_unpackhi_epi64(y, y));
        if (P <= 1) y = _mm_add_epi32(y, _mm_shuffle_epi32(y, 1));
        x = _mm256_zextsi128_si256(y);
    }
    // lanes >= P hold partial copies: cleared so that they meet zero scales only
    *lo = _mm256_and_si256(x, lanes_mask(P));
    *hi = _mm256_setzero_si256();
}

// ---------------------------------------------------------------- activation quantization
// gemm_q8.c's quantize_group on 8 lanes, the same bits: max |x| ignoring NaN
// (vmaxps returns its second operand, the running max, when the first is
// NaN: as the scalar `|x| > amax ? |x| : amax`), the same scale and inverse,
// x * inv rounded to nearest even (vcvtps2dq in the default mode, as lrintf)
// and clamped to [-127, 127] (NaN: INT_MIN -> -127, as lrintf's LONG_MIN).
T_AVX2 float eng__q8_quantize_group_avx2(int8_t *q, int32_t *sum, const float *x, int n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absmask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
    if (!(amax > 0.0f)) {
        for (int i = 0; i < n; i++) q[i] = 0;
        *sum = 0;
        return 0.0f;
    }
    const __m256 inv = _mm256_set1_ps(127.0f / amax);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < n; i += 8) {
        __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
        v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        acc = _mm256_add_epi32(acc, v);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(void *)(q + i), _mm_packs_epi16(w, w));
    }
    __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    a4 = _mm_add_epi32(a4, _mm_unpackhi_epi64(a4, a4));
    *sum = _mm_cvtsi128_si32(_mm_add_epi32(a4, _mm_shuffle_epi32(a4, 1)));
    return amax / 127.0f;
}

#define Q8_CAT2(a, b) a##b
#define Q8_CAT(a, b) Q8_CAT2(a, b)

// AVX2: 2 x 3 tiles (the sign trick needs |a|, a and a constant per row: 16 registers)
#define Q8_FN eng__gemm_q8_avx2
#define Q8_TARGET T_AVX2
#define Q8_VNNI 0
#define Q8_R 2
#define Q8_C 3
#define Q8_(name) Q8_CAT(name, _avx2)
#include "engine/core/gemm_q8_ymm.inc"
#undef Q8_FN
#undef Q8_TARGET
#undef Q8_VNNI
#undef Q8_R
#undef Q8_C
#undef Q8_

// AVX-VNNI: 3 x 3 tiles
#define Q8_FN eng__gemm_q8_avxvnni
#define Q8_TARGET T_AVXVNNI
#define Q8_VNNI 1
#define Q8_R 3
#define Q8_C 3
#define Q8_(name) Q8_CAT(name, _avxvnni)
#include "engine/core/gemm_q8_ymm.inc"
