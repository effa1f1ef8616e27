// attention_simd.c — query rows of one head against a KV cache, on
// AVX-512 or AVX2 + FMA (attention_internal.h; ops_seq.c dispatches).
//
// WHY: the engine is built for baseline x86-64, so the plain attention loop
// runs 4-wide SSE with a libm expf per score. With 16 streams decoding that
// was ~12% of a stories110M step at 70 tokens of context and grows with
// the context; here each score is a 16- or 8-lane FMA dot product and the
// softmax's exponentials are a vector polynomial (simd_x86.h).
//
// Fixed order of every result, whatever the row's neighbours (batch
// invariance): score t = scale * (lanes over hd in blocks of W, in order;
// then the fixed lane tree); the maximum (exact in any order); e_t =
// exp(score_t - max) by the polynomial below; sum = lanes over t in blocks of
// W in order (the last block masked) then the lane tree; out = (sum over t of
// e_t * V[t], even t and odd t in two running sums, added at the end) / sum.
// Nothing depends on how many rows or heads a call has.
//
// A single row is bound by reading its head's K and V from L2 (~256 KB at
// 500 keys, hd 64); a prefill chunk's rows re-read them row after row. So
// with hd <= 64 four consecutive rows go together (rows4_512):
// each key row loaded once for four rows' scores, each value row once for
// two rows' sums, every row's result in the order above (AVX2, rows4_256:
// the scores only).
#include "engine/core/attention_internal.h"

#include <immintrin.h>  // AVX-512 / AVX2 intrinsics
#include <string.h>     // memcpy
#include "engine/core/simd_x86.h"   // eng_exp512, eng_exp256, eng_hsum512, eng_hsum256

#define T512 ENG_T512
#define T256 ENG_T256
// loops over a head's vectors and a group's sums unroll, so the sums stay
// in registers (-O2 alone leaves some in memory)
#define UNROLL _Pragma("GCC unroll 16")

// ---------------------------------------------------------------- AVX-512

// eng_hsum512 of sixteen vectors at once, each add the one it makes (so the
// same bits) but a lane holds a different vector's sums: about two shuffles
// and one add per sum instead of four of each. Lane 4k + l of the result is
// the sum of a[k + 4l].
static inline __attribute__((always_inline)) T512 __m512 hsum512x16(const __m512 *a)
{
    __m512 w[8], x[4], y[2];
    UNROLL
    for (int i = 0; i < 8; i++)   // l + (l+8): vector 2i's in the low half, 2i+1's in the high
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    UNROLL
    for (int i = 0; i < 4; i++)   // + 4: quarter k holds vector 4i + k's
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    UNROLL
    for (int i = 0; i < 2; i++)   // + 2: quarter k holds vectors 8i + k's and 8i + 4 + k's
        y[i] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // + 1: quarter k holds vectors k, 4 + k, 8 + k, 12 + k
    return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// A score's chain: mul of vector 0, fmadd of vectors 1..nv-1 (then
// scale * eng_hsum512), whoever calls it.
static inline __attribute__((always_inline)) T512 __m512 dot512(const __m512 *qv, const float *k, const int nv)
{
    __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
    UNROLL
    for (int j = 1; j < nv; j++) a = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k + j * 16), a);
    return a;
}

// s[0..len) = exp(s - max) in place; returns 1 / their sum.
static inline __attribute__((always_inline)) T512 float softmax512(float *s, int len)
{
    enum { W = 16 };
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    int full = len / W * W, t;
    __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    for (t = 0; t < full; t += W) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + t));
    if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + full));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
    for (t = 0; t < full; t += W) {
        __m512 e = eng_exp512(_mm512_sub_ps(_mm512_loadu_ps(s + t), m));
        _mm512_storeu_ps(s + t, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (tail) {
        __m512 e = _mm512_maskz_mov_ps(tail, eng_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + full), m)));
        _mm512_mask_storeu_ps(s + full, tail, e);
        sum = _mm512_add_ps(sum, e);
    }
    return 1.0f / eng_hsum512(sum);
}

// The weighted sum's keys t..len-1 (t even): pairs into oa (even) and ob
// (odd), a last odd key into oa; then out = (oa + ob) * inv.
static inline __attribute__((always_inline)) T512 void
wsum_end512(float *out, __m512 *oa, __m512 *ob, const float *s, const float *V, size_t ks, int t, int len, float inv,
            const int nv)
{
    enum { W = 16 };
    for (; t + 2 <= len; t += 2) {
        const float *v0 = V + (size_t)t * ks, *v1 = v0 + ks;
        __m512 p0 = _mm512_set1_ps(s[t]), p1 = _mm512_set1_ps(s[t + 1]);
        UNROLL
        for (int j = 0; j < nv; j++) {
            oa[j] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + j * W), oa[j]);
            ob[j] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v1 + j * W), ob[j]);
        }
    }
    if (t < len) {
        const float *v0 = V + (size_t)t * ks;
        __m512 p0 = _mm512_set1_ps(s[t]);
        UNROLL
        for (int j = 0; j < nv; j++) oa[j] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + j * W), oa[j]);
    }
    __m512 iv = _mm512_set1_ps(inv);
    UNROLL
    for (int j = 0; j < nv; j++) _mm512_storeu_ps(out + j * W, _mm512_mul_ps(_mm512_add_ps(oa[j], ob[j]), iv));
}

// One row with nv vectors per head (a constant where it is called: the
// loops over j unroll and the sums stay in registers).
static inline __attribute__((always_inline)) T512 void
row512(float *out, float *s, const float *q, const float *K, const float *V, size_t ks, int len, float scale, const int nv)
{
    enum { W = 16, MAXV = ENG_ATTN_SIMD_MAX_HD / 16 };
    __m512 qv[MAXV];
    for (int j = 0; j < nv; j++) qv[j] = _mm512_loadu_ps(q + j * W);
    // scores, four keys side by side (four independent chains)
    int t = 0;
    for (; t + 4 <= len; t += 4) {
        const float *k0 = K + (size_t)t * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0)), a1 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k1));
        __m512 a2 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k2)), a3 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k3));
        for (int j = 1; j < nv; j++) {
            a0 = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k0 + j * W), a0);
            a1 = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k1 + j * W), a1);
            a2 = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k2 + j * W), a2);
            a3 = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k3 + j * W), a3);
        }
        s[t] = scale * eng_hsum512(a0);
        s[t + 1] = scale * eng_hsum512(a1);
        s[t + 2] = scale * eng_hsum512(a2);
        s[t + 3] = scale * eng_hsum512(a3);
    }
    for (; t < len; t++) {
        const float *k0 = K + (size_t)t * ks;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0));
        for (int j = 1; j < nv; j++) a0 = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k0 + j * W), a0);
        s[t] = scale * eng_hsum512(a0);
    }
    // softmax's numerator in place, and its sum
    float inv = softmax512(s, len);
    // weighted sum of the values: even and odd keys in two sets of sums
    __m512 oa[MAXV], ob[MAXV];
    for (int j = 0; j < nv; j++) oa[j] = ob[j] = _mm512_setzero_ps();
    wsum_end512(out, oa, ob, s, V, ks, 0, len, inv, nv);
}

// Four consecutive rows of one head, lengths len .. len+3 (nv <= 4). Each
// key row is loaded once for the four rows' scores and each value row once
// for two rows' sums over the keys they share; every row then finishes its
// own tail keys in row512's order, so each gets row512's bits.
static inline __attribute__((always_inline)) T512 void
rows4_512(float *out, float *s, const float *q, size_t qs, const float *K, const float *V, size_t ks, int len,
          float scale, const int nv)
{
    enum { W = 16 };
    size_t sl = (size_t)len + 3;   // scratch row r at s + r * sl
    __m512 qv[4][4];
    UNROLL
    for (int r = 0; r < 4; r++)
        UNROLL
        for (int j = 0; j < nv; j++) qv[r][j] = _mm512_loadu_ps(q + r * qs + j * W);
    // scores: keys all four rows see, four at a time (sixteen chains, one
    // lane tree pass); a[r + 4l] is row r, key t + l: quarter r is row r's
    int t = 0;
    __m512 vs = _mm512_set1_ps(scale);
    for (; t + 4 <= len; t += 4) {
        __m512 a[16];
        UNROLL
        for (int l = 0; l < 4; l++)
            UNROLL
            for (int r = 0; r < 4; r++) a[r + 4 * l] = dot512(qv[r], K + (size_t)(t + l) * ks, nv);
        __m512 z = _mm512_mul_ps(vs, hsum512x16(a));
        _mm_storeu_ps(s + t, _mm512_castps512_ps128(z));
        _mm_storeu_ps(s + sl + t, _mm512_extractf32x4_ps(z, 1));
        _mm_storeu_ps(s + 2 * sl + t, _mm512_extractf32x4_ps(z, 2));
        _mm_storeu_ps(s + 3 * sl + t, _mm512_extractf32x4_ps(z, 3));
    }
    // then each key for the rows that see it (row r sees keys < len + r)
    for (; t < len + 3; t++)
        for (int r = t < len ? 0 : t - len + 1; r < 4; r++) s[r * sl + t] = scale * eng_hsum512(dot512(qv[r], K + (size_t)t * ks, nv));
    // weighted sums two rows at a time: keys both see (pairs below len + r),
    // then each row's own end
    for (int r = 0; r < 4; r += 2) {
        float *sa = s + r * sl, *sb = sa + sl;
        float ia = softmax512(sa, len + r), ib = softmax512(sb, len + r + 1);
        __m512 oa[2][4], ob[2][4];
        UNROLL
        for (int j = 0; j < nv; j++) oa[0][j] = ob[0][j] = oa[1][j] = ob[1][j] = _mm512_setzero_ps();
        for (t = 0; t + 2 <= len + r; t += 2) {
            const float *v0 = V + (size_t)t * ks, *v1 = v0 + ks;
            __m512 pa0 = _mm512_set1_ps(sa[t]), pa1 = _mm512_set1_ps(sa[t + 1]);
            __m512 pb0 = _mm512_set1_ps(sb[t]), pb1 = _mm512_set1_ps(sb[t + 1]);
            UNROLL
            for (int j = 0; j < nv; j++) {
                __m512 x0 = _mm512_loadu_ps(v0 + j * W), x1 = _mm512_loadu_ps(v1 + j * W);
                oa[0][j] = _mm512_fmadd_ps(pa0, x0, oa[0][j]);
                ob[0][j] = _mm512_fmadd_ps(pa1, x1, ob[0][j]);
                oa[1][j] = _mm512_fmadd_ps(pb0, x0, oa[1][j]);
                ob[1][j] = _mm512_fmadd_ps(pb1, x1, ob[1][j]);
            }
        }
        wsum_end512(out + r * qs, oa[0], ob[0], sa, V, ks, t, len + r, ia, nv);
        wsum_end512(out + (r + 1) * qs, oa[1], ob[1], sb, V, ks, t, len + r + 1, ib, nv);
    }
}

// Common head sizes with constant vector counts, the rest generic.
T512 void eng__attn_row_avx512(float *out, float *s, const float *q, const float *K, const float *V, size_t ks, int len,
                               int hd, float scale)
{
    switch (hd / 16) {
    case 2: row512(out, s, q, K, V, ks, len, scale, 2); break;    // hd 32
    case 3: row512(out, s, q, K, V, ks, len, scale, 3); break;    // hd 48 (stories15M)
    case 4: row512(out, s, q, K, V, ks, len, scale, 4); break;    // hd 64 (GPT-2, stories110M)
    case 8: row512(out, s, q, K, V, ks, len, scale, 8); break;    // hd 128 (Llama)
    default: row512(out, s, q, K, V, ks, len, scale, hd / 16); break;
    }
}

T512 void eng__attn_rows4_avx512(float *out, float *s, const float *q, size_t qs, const float *K, const float *V,
                                 size_t ks, int len, int hd, float scale)
{
    switch (hd / 16) {
    case 1: rows4_512(out, s, q, qs, K, V, ks, len, scale, 1); break;   // hd 16
    case 2: rows4_512(out, s, q, qs, K, V, ks, len, scale, 2); break;   // hd 32
    case 3: rows4_512(out, s, q, qs, K, V, ks, len, scale, 3); break;   // hd 48
    default: rows4_512(out, s, q, qs, K, V, ks, len, scale, 4); break;  // hd 64
    }
}

// ---------------------------------------------------------------- AVX2

static inline __attribute__((always_inline)) T256 float hmax256(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

// s[0..len) = exp(s - max) in place; returns 1 / their sum.
static inline __attribute__((always_inline)) T256 float softmax256(float *s, int len)
{
    enum { W = 8 };
    int t;
    // the last len % 8 scores go through a padded block (-inf: exp gives 0)
    int full = len / W * W, rest = len - full;
    float pad[W];
    for (int i = 0; i < W; i++) pad[i] = i < rest ? s[full + i] : -__builtin_inff();
    __m256 mx = _mm256_loadu_ps(pad);
    for (t = 0; t < full; t += W) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + t));
    __m256 m = _mm256_set1_ps(hmax256(mx)), sum = _mm256_setzero_ps();
    for (t = 0; t < full; t += W) {
        __m256 e = eng_exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), m));
        _mm256_storeu_ps(s + t, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (rest) {
        __m256 e = eng_exp256(_mm256_sub_ps(_mm256_loadu_ps(pad), m));
        e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_loadu_ps(pad), _mm256_set1_ps(-__builtin_inff()), _CMP_NEQ_OQ));
        _mm256_storeu_ps(pad, e);
        memcpy(s + full, pad, (size_t)rest * sizeof(float));
        sum = _mm256_add_ps(sum, e);
    }
    return 1.0f / eng_hsum256(sum);
}

// out = (sum over t of s[t] V[t], even and odd t in two sets of sums) * inv.
static inline __attribute__((always_inline)) T256 void
wsum256(float *out, const float *s, const float *V, size_t ks, int len, float inv, const int nv)
{
    enum { W = 8, MAXV = ENG_ATTN_SIMD_MAX_HD / 8 };
    int t;
    __m256 oa[MAXV], ob[MAXV];
    for (int j = 0; j < nv; j++) oa[j] = ob[j] = _mm256_setzero_ps();
    for (t = 0; t + 2 <= len; t += 2) {
        const float *v0 = V + (size_t)t * ks, *v1 = v0 + ks;
        __m256 p0 = _mm256_set1_ps(s[t]), p1 = _mm256_set1_ps(s[t + 1]);
        for (int j = 0; j < nv; j++) {
            oa[j] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + j * W), oa[j]);
            ob[j] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + j * W), ob[j]);
        }
    }
    if (t < len) {
        const float *v0 = V + (size_t)t * ks;
        __m256 p0 = _mm256_set1_ps(s[t]);
        for (int j = 0; j < nv; j++) oa[j] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + j * W), oa[j]);
    }
    __m256 iv = _mm256_set1_ps(inv);
    for (int j = 0; j < nv; j++) _mm256_storeu_ps(out + j * W, _mm256_mul_ps(_mm256_add_ps(oa[j], ob[j]), iv));
}

// One row (row512's order on 8 lanes).
static inline __attribute__((always_inline)) T256 void
row256(float *out, float *s, const float *q, const float *K, const float *V, size_t ks, int len, float scale, const int nv)
{
    enum { W = 8, MAXV = ENG_ATTN_SIMD_MAX_HD / 8 };
    int t = 0;
    // scores, four keys side by side; q is re-read from L1 (16 registers)
    for (; t + 4 <= len; t += 4) {
        const float *k0 = K + (size_t)t * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        __m256 q0 = _mm256_loadu_ps(q);
        __m256 a0 = _mm256_mul_ps(q0, _mm256_loadu_ps(k0)), a1 = _mm256_mul_ps(q0, _mm256_loadu_ps(k1));
        __m256 a2 = _mm256_mul_ps(q0, _mm256_loadu_ps(k2)), a3 = _mm256_mul_ps(q0, _mm256_loadu_ps(k3));
        for (int j = 1; j < nv; j++) {
            __m256 qj = _mm256_loadu_ps(q + j * W);
            a0 = _mm256_fmadd_ps(qj, _mm256_loadu_ps(k0 + j * W), a0);
            a1 = _mm256_fmadd_ps(qj, _mm256_loadu_ps(k1 + j * W), a1);
            a2 = _mm256_fmadd_ps(qj, _mm256_loadu_ps(k2 + j * W), a2);
            a3 = _mm256_fmadd_ps(qj, _mm256_loadu_ps(k3 + j * W), a3);
        }
        s[t] = scale * eng_hsum256(a0);
        s[t + 1] = scale * eng_hsum256(a1);
        s[t + 2] = scale * eng_hsum256(a2);
        s[t + 3] = scale * eng_hsum256(a3);
    }
    for (; t < len; t++) {
        const float *k0 = K + (size_t)t * ks;
        __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(k0));
        for (int j = 1; j < nv; j++) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j * W), _mm256_loadu_ps(k0 + j * W), a0);
        s[t] = scale * eng_hsum256(a0);
    }
    float inv = softmax256(s, len);
    wsum256(out, s, V, ks, len, inv, nv);
}

// eng_hsum256 of eight vectors at once, each add the one it makes (so the
// same bits): lane 4h + l of the result is the sum of a[h + 2l].
static inline __attribute__((always_inline)) T256 __m256 hsum256x8(const __m256 *a)
{
    __m256 w[4], y[2];
    UNROLL
    for (int i = 0; i < 4; i++)   // l + (l+4): half 0 vector 2i's, half 1 vector 2i+1's
        w[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                             _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
    UNROLL
    for (int i = 0; i < 2; i++)   // + 2: half h holds vectors 4i + h's and 4i + 2 + h's
        y[i] = _mm256_add_ps(_mm256_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // + 1: half h holds vectors h, 2 + h, 4 + h, 6 + h
    return _mm256_add_ps(_mm256_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// rows4_512 on AVX2 (nv <= 8): the four rows' scores from one pass over the
// keys (q re-read from L1: 16 registers), then each row's softmax and sum
// of values as row256 does them (2 rows x nv x 2 sums would not fit).
static inline __attribute__((always_inline)) T256 void
rows4_256(float *out, float *s, const float *q, size_t qs, const float *K, const float *V, size_t ks, int len,
          float scale, const int nv)
{
    enum { W = 8 };
    size_t sl = (size_t)len + 3;   // scratch row r at s + r * sl
    __m256 vs = _mm256_set1_ps(scale);
    // keys all four rows see, two at a time; a[h + 2l] is row 2h + l / 2,
    // key t + l % 2: each 64-bit pair of the sums is one row's two scores
    int t = 0;
    for (; t + 2 <= len; t += 2) {
        const float *k0 = K + (size_t)t * ks, *k1 = k0 + ks;
        __m256 a[8];
        UNROLL
        for (int i = 0; i < 8; i++) {
            int r = 2 * (i % 2) + i / 4;
            a[i] = _mm256_mul_ps(_mm256_loadu_ps(q + r * qs), _mm256_loadu_ps(i / 2 % 2 ? k1 : k0));
        }
        UNROLL
        for (int j = 1; j < nv; j++) {
            __m256 x0 = _mm256_loadu_ps(k0 + j * W), x1 = _mm256_loadu_ps(k1 + j * W);
            UNROLL
            for (int i = 0; i < 8; i++)
                a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (2 * (i % 2) + i / 4) * qs + j * W), i / 2 % 2 ? x1 : x0, a[i]);
        }
        __m256 z = _mm256_mul_ps(vs, hsum256x8(a));
        __m128 lo = _mm256_castps256_ps128(z), hi = _mm256_extractf128_ps(z, 1);
        _mm_storel_pi((__m64 *)(s + t), lo);
        _mm_storeh_pi((__m64 *)(s + sl + t), lo);
        _mm_storel_pi((__m64 *)(s + 2 * sl + t), hi);
        _mm_storeh_pi((__m64 *)(s + 3 * sl + t), hi);
    }
    // then each key for the rows that see it (row r sees keys < len + r)
    for (; t < len + 3; t++)
        for (int r = t < len ? 0 : t - len + 1; r < 4; r++) {
            const float *k0 = K + (size_t)t * ks, *qr = q + r * qs;
            __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(qr), _mm256_loadu_ps(k0));
            for (int j = 1; j < nv; j++) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qr + j * W), _mm256_loadu_ps(k0 + j * W), a0);
            s[r * sl + t] = scale * eng_hsum256(a0);
        }
    for (int r = 0; r < 4; r++) {
        float inv = softmax256(s + r * sl, len + r);
        wsum256(out + r * qs, s + r * sl, V, ks, len + r, inv, nv);
    }
}

T256 void eng__attn_row_avx2(float *out, float *s, const float *q, const float *K, const float *V, size_t ks, int len,
                             int hd, float scale)
{
    switch (hd / 8) {
    case 4: row256(out, s, q, K, V, ks, len, scale, 4); break;
    case 6: row256(out, s, q, K, V, ks, len, scale, 6); break;
    case 8: row256(out, s, q, K, V, ks, len, scale, 8); break;
    default: row256(out, s, q, K, V, ks, len, scale, hd / 8); break;
    }
}

T256 void eng__attn_rows4_avx2(float *out, float *s, const float *q, size_t qs, const float *K, const float *V,
                               size_t ks, int len, int hd, float scale)
{
    switch (hd / 8) {
    case 4: rows4_256(out, s, q, qs, K, V, ks, len, scale, 4); break;   // hd 32
    case 6: rows4_256(out, s, q, qs, K, V, ks, len, scale, 6); break;   // hd 48
    case 8: rows4_256(out, s, q, qs, K, V, ks, len, scale, 8); break;   // hd 64
    default: rows4_256(out, s, q, qs, K, V, ks, len, scale, hd / 8); break;
    }
}
