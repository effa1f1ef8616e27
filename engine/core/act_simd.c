// act_simd.c — the language models' element-wise activations on AVX-512 and
// AVX2 (act_internal.h; ops.c and ops_seq.c dispatch): GPT-2's tanh GELU and
// llama's SwiGLU, both x / (1 + exp(-y)) with the vector exp of simd_x86.h
// instead of a libm tanhf or expf per element (a 16-stream GPT-2-small step
// has 590,000 GELUs). Element by element, so a value never depends on its
// neighbours or on how a call is split.
#include "engine/core/act_internal.h"

#include "engine/core/simd_x86.h"  // eng_exp512, eng_exp256, ENG_T512, ENG_T256

#define GELU_K (2.0f * 0.7978845608028654f)   // 2 sqrt(2/pi): 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u))
#define GELU_CUBIC 0.044715f

// The last n % W elements: a masked (AVX-512) or zero-padded (AVX2) vector,
// the same arithmetic as every other element.
static inline __attribute__((always_inline)) ENG_T512 __m512 gelu512(__m512 x)
{
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(GELU_K), _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(GELU_CUBIC), x), _mm512_mul_ps(x, x), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), eng_exp512(_mm512_sub_ps(_mm512_setzero_ps(), u))));
}

static inline __attribute__((always_inline)) ENG_T512 __m512 silu512(__m512 g)
{
    return _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), eng_exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

ENG_T512 void eng__gelu_tanh_avx512(float *out, const float *in, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, gelu512(_mm512_loadu_ps(in + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(out + i, m, gelu512(_mm512_maskz_loadu_ps(m, in + i)));
    }
}

ENG_T512 void eng__swiglu_avx512(float *out, const float *gate, const float *up, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(silu512(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mul_ps(silu512(_mm512_maskz_loadu_ps(m, gate + i)), _mm512_maskz_loadu_ps(m, up + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

static inline __attribute__((always_inline)) ENG_T256 __m256 gelu256(__m256 x)
{
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(GELU_K), _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_CUBIC), x), _mm256_mul_ps(x, x), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), eng_exp256(_mm256_sub_ps(_mm256_setzero_ps(), u))));
}

static inline __attribute__((always_inline)) ENG_T256 __m256 silu256(__m256 g)
{
    return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), eng_exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

ENG_T256 void eng__gelu_tanh_avx2(float *out, const float *in, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu256(_mm256_loadu_ps(in + i)));
    if (i < n) {
        float t[8] = {0};
        for (size_t j = 0; j < n - i; j++) t[j] = in[i + j];
        _mm256_storeu_ps(t, gelu256(_mm256_loadu_ps(t)));
        for (size_t j = 0; j < n - i; j++) out[i + j] = t[j];
    }
}

ENG_T256 void eng__swiglu_avx2(float *out, const float *gate, const float *up, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu256(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    if (i < n) {
        float g[8] = {0}, u[8] = {0};
        for (size_t j = 0; j < n - i; j++) { g[j] = gate[i + j]; u[j] = up[i + j]; }
        _mm256_storeu_ps(g, _mm256_mul_ps(silu256(_mm256_loadu_ps(g)), _mm256_loadu_ps(u)));
        for (size_t j = 0; j < n - i; j++) out[i + j] = g[j];
    }
}

// ---------------------------------------------------------------- sampling
// The largest of x[0..n) (NaN ignored, as the scalar loop's comparisons do:
// max(x, m) keeps m when x is NaN); -inf for n = 0.
ENG_T512 float eng__max_avx512(const float *x, int n)
{
    __m512 m = _mm512_set1_ps(-__builtin_inff());
    int i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);
    float r = _mm512_reduce_max_ps(m);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

// p[i] = exp((x[i] - m) * inv_t), 0 where that argument is below -87 (a
// weight under 1.6e-38 beside the maximum's 1), NaN or -inf; returns their
// sum (16 lanes in order, the lane tree, then the tail in order).
ENG_T512 double eng__exp_sum_avx512(float *p, const float *x, int n, float m, float inv_t)
{
    __m512 vm = _mm512_set1_ps(m), vt = _mm512_set1_ps(inv_t), lo = _mm512_set1_ps(ENG_VEXP_LO), s = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vt);
        __mmask16 keep = _mm512_cmp_ps_mask(a, lo, _CMP_GE_OQ);   // false for NaN
        __m512 e = _mm512_maskz_mov_ps(keep, eng_exp512(a));
        _mm512_storeu_ps(p + i, e);
        s = _mm512_add_ps(s, e);
    }
    double sum = _mm512_reduce_add_ps(s);
    if (i < n) {
        __mmask16 t = (__mmask16)((1u << (n - i)) - 1);
        __m512 a = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + i), vm), vt);
        __mmask16 keep = _mm512_cmp_ps_mask(a, lo, _CMP_GE_OQ) & t;
        __m512 e = _mm512_maskz_mov_ps(keep, eng_exp512(a));
        _mm512_mask_storeu_ps(p + i, t, e);
        sum += _mm512_reduce_add_ps(e);
    }
    return sum;
}

ENG_T256 double eng__exp_sum_avx2(float *p, const float *x, int n, float m, float inv_t)
{
    __m256 vm = _mm256_set1_ps(m), vt = _mm256_set1_ps(inv_t), lo = _mm256_set1_ps(ENG_VEXP_LO), s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vt);
        __m256 e = _mm256_and_ps(eng_exp256(a), _mm256_cmp_ps(a, lo, _CMP_GE_OQ));
        _mm256_storeu_ps(p + i, e);
        s = _mm256_add_ps(s, e);
    }
    float l[8];
    _mm256_storeu_ps(l, s);
    double sum = ((double)l[0] + l[4] + l[2] + l[6]) + ((double)l[1] + l[5] + l[3] + l[7]);
    if (i < n) {
        float t[8] = {0}, e8[8];
        int r = n - i;
        for (int j = 0; j < 8; j++) t[j] = j < r ? (x[i + j] - m) * inv_t : ENG_VEXP_LO - 1.0f;
        __m256 a = _mm256_loadu_ps(t);
        _mm256_storeu_ps(e8, _mm256_and_ps(eng_exp256(a), _mm256_cmp_ps(a, lo, _CMP_GE_OQ)));
        for (int j = 0; j < r; j++) { p[i + j] = e8[j]; sum += e8[j]; }
    }
    return sum;
}
