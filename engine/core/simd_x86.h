// simd_x86.h — what the AVX-512 and AVX2 kernels (compiled with target
// attributes: gemm_avx512.c, gemm_avx2.c, attention_simd.c, act_simd.c)
// share: the target attributes, the fixed lane trees that end every
// dot product (each path's bits depend on them: batch invariance), and exp.
//
// exp: Cephes' expf, x = n ln2
// + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial (relative error
// ~2e-7), times 2^n. x is clamped to [-87, 88]: below, exp(-87) ~ 1.6e-38
// stands for 0 in any sum of weights near 1; above, exp(88) ~ 1.7e38 still
// adds to 1 and divides to ~0, as infinity would in x / (1 + exp(-x)).
#ifndef ENG_SIMD_X86_H
#define ENG_SIMD_X86_H

#include <immintrin.h>  // AVX-512 / AVX2 intrinsics

#define ENG_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define ENG_T256 __attribute__((target("avx2,fma")))

// The lane tree of a 16-lane sum: l + (l+8), then + 4, + 2, + 1.
static inline __attribute__((always_inline)) ENG_T512 float eng_hsum512(__m512 v)
{
    __m256 w = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps(w, 1));   // l + (l+4)
    __m128 y = _mm_add_ps(x, _mm_movehl_ps(x, x));                                   // l + (l+2)
    __m128 z = _mm_add_ss(y, _mm_movehdup_ps(y));                                    // 0 + 1
    return _mm_cvtss_f32(z);
}

// The lane tree of an 8-lane sum: l + (l+4), then + 2, + 1.
static inline __attribute__((always_inline)) ENG_T256 float eng_hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // l + (l+4)
    __m128 y = _mm_add_ps(x, _mm_movehl_ps(x, x));                                  // l + (l+2)
    __m128 z = _mm_add_ss(y, _mm_movehdup_ps(y));                                   // 0 + 1
    return _mm_cvtss_f32(z);
}

#define ENG_VEXP_LO (-87.0f)
#define ENG_VEXP_HI 88.0f
#define ENG_VEXP_LOG2E 1.44269504088896341f
#define ENG_VEXP_LN2_HI 0.693359375f
#define ENG_VEXP_LN2_LO (-2.12194440e-4f)
#define ENG_VEXP_P0 1.9875691500e-4f
#define ENG_VEXP_P1 1.3981999507e-3f
#define ENG_VEXP_P2 8.3334519073e-3f
#define ENG_VEXP_P3 4.1665795894e-2f
#define ENG_VEXP_P4 1.6666665459e-1f
#define ENG_VEXP_P5 5.0000001201e-1f

static inline __attribute__((always_inline)) ENG_T512 __m512 eng_exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(ENG_VEXP_LO)), _mm512_set1_ps(ENG_VEXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ENG_VEXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ENG_VEXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ENG_VEXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(ENG_VEXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ENG_VEXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ENG_VEXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ENG_VEXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ENG_VEXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ENG_VEXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline __attribute__((always_inline)) ENG_T256 __m256 eng_exp256(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(ENG_VEXP_LO)), _mm256_set1_ps(ENG_VEXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(ENG_VEXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ENG_VEXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ENG_VEXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(ENG_VEXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ENG_VEXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ENG_VEXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ENG_VEXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ENG_VEXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ENG_VEXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n from the exponent bits: -126 <= n <= 127 after the clamp, a normal float
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#endif
