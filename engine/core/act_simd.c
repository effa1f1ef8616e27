// act_simd.c — the language models' element-wise activations on AVX-512 and
// AVX2 (act_internal.h; ops.c and ops_seq.c dispatch): GPT-2's tanh GELU and
// llama's SwiGLU, both x / (1 + exp(-y)) with the vector exp of vexp_x86.h
// instead of a libm tanhf or expf per element (a 16-stream GPT-2-small step
// has 590,000 GELUs). Element by element, so a value never depends on its
// neighbours or on how a call is split.
#include "engine/core/act_internal.h"

#include "engine/core/vexp_x86.h"  // eng_exp512, eng_exp256, ENG_T512, ENG_T256

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
