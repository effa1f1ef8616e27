// ops_seq.c — sequence-model operators (see ops_seq.h for contracts and
// shapes): embeddings, residual add, layer/RMS norm, rotary embeddings,
// causal grouped-query attention (training, and serving against a KV cache),
// SwiGLU. Training attention over whole sequences goes through cblas_sgemm
// per (sequence, head) with row strides, so no head is ever copied out;
// serving attention against a KV cache uses plain loops written so gcc
// vectorises them, row by row, so that a row never depends on its chunk.
// Nothing here allocates, keeps state, or sets BLAS threads.
#include "engine/core/ops_seq.h"
#include "engine/core/act_internal.h"         // eng__swiglu_avx512/avx2
#include "engine/core/attention_internal.h"   // eng__attn_row_avx512/avx2
#include "engine/core/cpu.h"                  // eng_cpu_level_get

#include <assert.h>   // assert (caller bugs only)
#include <cblas.h>    // cblas_sgemm
#include <math.h>     // expf, sqrt, powf, cosf, sinf, INFINITY
#include <string.h>   // memcpy, memset

enum {
    ROPE_MAX_HALF = 1024,   // largest hd/2 the rope table supports
};

// ---------------------------------------------------------------- embedding

void eng_embedding_forward(float *out, const float *table, const int *ids, int N, int C)
{
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, (size_t)C * sizeof(float));
}

void eng_embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C)
{
    for (int n = 0; n < N; n++) {
        float *d = dtable + (size_t)ids[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

// ---------------------------------------------------------------- residual add

void eng_add_forward(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void eng_add_backward(float *da, float *db, const float *dout, size_t n)
{
    if (da) for (size_t i = 0; i < n; i++) da[i] += dout[i];
    if (db) for (size_t i = 0; i < n; i++) db[i] += dout[i];
}

// ---------------------------------------------------------------- layer norm

// Row statistics are summed in double: C can be thousands wide and the
// variance is a difference of similar numbers.
void eng_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                           const float *b, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += x[c];
        float m = (float)(s / C);
        double v = 0.0;
        for (int c = 0; c < C; c++) {
            double d = (double)x[c] - m;
            v += d * d;
        }
        float r = (float)(1.0 / sqrt(v / C + eps));
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + b[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
}

// With xhat = (x - mean) * rstd and g = dout * w:
//   din = rstd * (g - mean(g) - xhat * mean(g * xhat)), dw = sum dout * xhat, db = sum dout.
void eng_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const float *mean, const float *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        float g_mean = 0.0f, gx_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r, g = dy[c] * w[c];
            g_mean += g;
            gx_mean += g * xhat;
        }
        g_mean /= (float)C;
        gx_mean /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            if (dw) dw[c] += dy[c] * xhat;
            if (db) db[c] += dy[c];
            if (din) din[(size_t)n * C + c] += r * (dy[c] * w[c] - g_mean - xhat * gx_mean);
        }
    }
}

// ---------------------------------------------------------------- RMS norm

void eng_rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) y[c] = w[c] * (x[c] * r);
        if (rstd) rstd[n] = r;
    }
}

// y = w * x * r with r = (mean(x^2) + eps)^-1/2, so dr/dx_j = -r^3 x_j / C:
//   din_j = r * w_j * dy_j - x_j * r^3 / C * sum_c dy_c w_c x_c ; dw_c = sum dy_c x_c r.
void eng_rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                          const float *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
        float r = rstd[n];
        float dot = 0.0f;
        for (int c = 0; c < C; c++) dot += dy[c] * w[c] * x[c];
        float k = dot * r * r * r / (float)C;
        for (int c = 0; c < C; c++) {
            if (dw) dw[c] += dy[c] * x[c] * r;
            if (din) din[(size_t)n * C + c] += r * w[c] * dy[c] - x[c] * k;
        }
    }
}

// ---------------------------------------------------------------- rotary position embedding

// Computed in float32 exactly the way Meta's reference, HF's
// LlamaRotaryEmbedding and llama2.c's run.c do it (inv_freq =
// 1/theta^(2j/hd) in float, angle = pos * inv_freq in float), so long
// contexts rotate by the same angles the model was trained with.
void eng_rope_table(float *cos_t, float *sin_t, const int *pos, int N, int hd, float theta)
{
    int h2 = hd / 2;
    assert(hd % 2 == 0 && h2 <= ROPE_MAX_HALF);
    float inv[ROPE_MAX_HALF];
    for (int j = 0; j < h2; j++) inv[j] = 1.0f / powf(theta, (float)(2 * j) / (float)hd);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < h2; j++) {
            float a = (float)pos[n] * inv[j];
            cos_t[(size_t)n * h2 + j] = cosf(a);
            sin_t[(size_t)n * h2 + j] = sinf(a);
        }
}

// Pair j of a head is dims (j, j + hd/2) or, interleaved, (2j, 2j + 1):
// both views are one loop with index stride `step` and pair offset `off`.
// sign = +1 rotates forward, -1 by the opposite angle (the backward).
static void rope_apply(float *out, const float *in, const float *cos_t, const float *sin_t,
                       int N, int H, int hd, int interleaved, float sign, int accumulate)
{
    int h2 = hd / 2;
    int step = interleaved ? 2 : 1, off = interleaved ? 1 : h2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)n * h2, *s = sin_t + (size_t)n * h2;
        for (int h = 0; h < H; h++) {
            size_t base = ((size_t)n * H + h) * hd;
            const float *x = in + base;
            float *y = out + base;
            for (int j = 0; j < h2; j++) {
                int i0 = j * step, i1 = i0 + off;
                float x0 = x[i0], x1 = x[i1], sn = sign * s[j];
                float y0 = x0 * c[j] - x1 * sn, y1 = x1 * c[j] + x0 * sn;
                if (accumulate) { y[i0] += y0; y[i1] += y1; }
                else { y[i0] = y0; y[i1] = y1; }
            }
        }
    }
}

void eng_rope_forward(float *out, const float *in, const float *cos_t, const float *sin_t,
                      int N, int H, int hd, int interleaved)
{
    rope_apply(out, in, cos_t, sin_t, N, H, hd, interleaved, 1.0f, 0);
}

void eng_rope_backward(float *din, const float *dout, const float *cos_t, const float *sin_t,
                       int N, int H, int hd, int interleaved)
{
    rope_apply(din, dout, cos_t, sin_t, N, H, hd, interleaved, -1.0f, 1);
}

// ---------------------------------------------------------------- attention helpers

// In place: x[0..len) <- softmax(x[0..len)), x[len..total) <- 0 (the causal mask).
static void masked_softmax_row(float *x, int len, int total)
{
    float m = -INFINITY;
    for (int j = 0; j < len; j++) m = x[j] > m ? x[j] : m;
    float s = 0.0f;
    for (int j = 0; j < len; j++) {
        x[j] = expf(x[j] - m);
        s += x[j];
    }
    float inv = 1.0f / s;
    for (int j = 0; j < len; j++) x[j] *= inv;
    for (int j = len; j < total; j++) x[j] = 0.0f;
}

// The decode loops below use GCC/Clang vector extensions, VL floats per
// register (8 with AVX, as under -march=x86-64-v3; 4 otherwise, so builds
// without -march keep the ABI of 16-byte vectors): gcc -O2 does not
// vectorise float reductions without -ffast-math, and its cheap vectoriser
// leaves loops of unknown length over hd scalar.
#ifdef __AVX__
enum { VL = 8 };
#else
enum { VL = 4 };
#endif
typedef float vf __attribute__((vector_size(VL * sizeof(float))));

static inline vf vld(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);   // an unaligned load
    return v;
}

static inline void vst(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline float vsum(vf a)
{
    float s = 0.0f;
    for (int i = 0; i < VL; i++) s += a[i];
    return s;
}

// dot(a, b) over n floats.
static inline float vdot(const float *a, const float *b, int n)
{
    vf acc = {0};
    int k = 0;
    for (; k + VL <= n; k += VL) acc += vld(a + k) * vld(b + k);
    float s = vsum(acc);
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

// s[t] = scale * dot(q, K[t]) for keys t < len (rows ks floats apart), four
// keys at a time: one dot product is a chain of dependent adds (latency-
// bound); four independent chains keep the FMA units busy.
static void decode_scores(float *s, const float *q, const float *K, size_t ks, int len, int hd, float scale)
{
    int t = 0;
    for (; t + 4 <= len; t += 4) {
        const float *k0 = K + (size_t)t * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        int d = 0;
        for (; d + VL <= hd; d += VL) {
            vf qv = vld(q + d);
            a0 += qv * vld(k0 + d);
            a1 += qv * vld(k1 + d);
            a2 += qv * vld(k2 + d);
            a3 += qv * vld(k3 + d);
        }
        float r0 = vsum(a0), r1 = vsum(a1), r2 = vsum(a2), r3 = vsum(a3);
        for (; d < hd; d++) {
            r0 += q[d] * k0[d];
            r1 += q[d] * k1[d];
            r2 += q[d] * k2[d];
            r3 += q[d] * k3[d];
        }
        s[t] = scale * r0;
        s[t + 1] = scale * r1;
        s[t + 2] = scale * r2;
        s[t + 3] = scale * r3;
    }
    for (; t < len; t++) s[t] = scale * vdot(q, K + (size_t)t * ks, hd);
}

// The scores of four query rows at once (keys two at a time, each key row
// loaded once for the four): every s[r][t] is computed exactly as
// decode_scores computes it (lanes, lane sum, tail, scale), so grouping rows
// changes no bit. Keys t < len (the longest of the four rows' lengths).
static void scores_rows4(float *const s[4], const float *const q[4], const float *K, size_t ks, int len, int hd,
                         float scale)
{
    int t = 0;
    for (; t + 2 <= len; t += 2) {
        const float *k0 = K + (size_t)t * ks, *k1 = k0 + ks;
        vf a[4][2] = {{{0}}};
        int d = 0;
        for (; d + VL <= hd; d += VL) {
            vf x0 = vld(k0 + d), x1 = vld(k1 + d);
#pragma GCC unroll 4   // the eight sums stay in registers
            for (int r = 0; r < 4; r++) {
                vf qv = vld(q[r] + d);
                a[r][0] += qv * x0;
                a[r][1] += qv * x1;
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            float r0 = vsum(a[r][0]), r1 = vsum(a[r][1]);
            for (int e = d; e < hd; e++) {
                r0 += q[r][e] * k0[e];
                r1 += q[r][e] * k1[e];
            }
            s[r][t] = scale * r0;
            s[r][t + 1] = scale * r1;
        }
    }
    for (; t < len; t++)
        for (int r = 0; r < 4; r++) s[r][t] = scale * vdot(q[r], K + (size_t)t * ks, hd);
}

// o[hd] += sum_t p[t] * V[t] over from <= t < len (rows ks floats apart), in
// the order decode_weighted_sum uses from t = 0: blocks of four while they
// fit, then one row at a time. Four rows per pass over o so its
// read-modify-write is not the bottleneck.
static void weighted_sum_from(float *o, const float *p, const float *V, size_t ks, int from, int len, int hd)
{
    int t = from;
    for (; t + 4 <= len; t += 4) {
        const float *v0 = V + (size_t)t * ks, *v1 = v0 + ks, *v2 = v1 + ks, *v3 = v2 + ks;
        float p0 = p[t], p1 = p[t + 1], p2 = p[t + 2], p3 = p[t + 3];
        int d = 0;
        for (; d + VL <= hd; d += VL)
            vst(o + d, vld(o + d) + ((p0 * vld(v0 + d) + p1 * vld(v1 + d)) + (p2 * vld(v2 + d) + p3 * vld(v3 + d))));
        for (; d < hd; d++) o[d] += (p0 * v0[d] + p1 * v1[d]) + (p2 * v2[d] + p3 * v3[d]);
    }
    for (; t < len; t++) {
        const float *vt = V + (size_t)t * ks;
        int d = 0;
        for (; d + VL <= hd; d += VL) vst(o + d, vld(o + d) + p[t] * vld(vt + d));
        for (; d < hd; d++) o[d] += p[t] * vt[d];
    }
}

// o[hd] = sum_t p[t] * V[t] over t < len.
static void decode_weighted_sum(float *o, const float *p, const float *V, size_t ks, int len, int hd)
{
    memset(o, 0, (size_t)hd * sizeof(float));
    weighted_sum_from(o, p, V, ks, 0, len, hd);
}

// decode_weighted_sum for four rows of lengths len[0] <= .. <= len[3]: the
// blocks of four every row has are done together (each value row loaded once
// for the four), then each row finishes alone, so each o[r] is summed in
// exactly decode_weighted_sum's order.
static void weighted_sum_rows4(float *const o[4], const float *const p[4], const float *V, size_t ks,
                               const int len[4], int hd)
{
    for (int r = 0; r < 4; r++) memset(o[r], 0, (size_t)hd * sizeof(float));
    int t = 0;
    for (; t + 4 <= len[0]; t += 4) {
        const float *v0 = V + (size_t)t * ks, *v1 = v0 + ks, *v2 = v1 + ks, *v3 = v2 + ks;
        int d = 0;
        for (; d + VL <= hd; d += VL) {
            vf x0 = vld(v0 + d), x1 = vld(v1 + d), x2 = vld(v2 + d), x3 = vld(v3 + d);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const float *pr = p[r] + t;
                vst(o[r] + d, vld(o[r] + d) + ((pr[0] * x0 + pr[1] * x1) + (pr[2] * x2 + pr[3] * x3)));
            }
        }
        for (; d < hd; d++)
            for (int r = 0; r < 4; r++) {
                const float *pr = p[r] + t;
                o[r][d] += (pr[0] * v0[d] + pr[1] * v1[d]) + (pr[2] * v2[d] + pr[3] * v3[d]);
            }
    }
    for (int r = 0; r < 4; r++) weighted_sum_from(o[r], p[r], V, ks, t, len[r], hd);
}

// ---------------------------------------------------------------- causal attention (training)

void eng_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int NKV, int hd)
{
    int rep = NH / NKV, qs = NH * hd, ks = NKV * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *Q = q + (size_t)b * T * qs + (size_t)h * hd;
            const float *K = k + (size_t)b * T * ks + (size_t)(h / rep) * hd;
            const float *V = v + (size_t)b * T * ks + (size_t)(h / rep) * hd;
            float *O = out + (size_t)b * T * qs + (size_t)h * hd;
            float *A = att + ((size_t)b * NH + h) * T * T;
            // A[T,T] = scale * Q K^T ; then row i keeps columns 0..i
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q, qs, K, ks, 0.0f, A, T);
            for (int i = 0; i < T; i++) masked_softmax_row(A + (size_t)i * T, i + 1, T);
            // O[T,hd] = A V
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, A, T, V, ks, 0.0f, O, qs);
        }
}

// Reverse of the forward above, per (sequence, head):
//   O = P V          -> dP = dO V^T ; dV += P^T dO
//   P = softmax(S)   -> dS = P * (dP - rowsum(P * dP))
//   S = scale Q K^T  -> dQ += scale dS K ; dK += scale dS^T Q
void eng_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *q, const float *k, const float *v, const float *att,
                            int B, int T, int NH, int NKV, int hd)
{
    int rep = NH / NKV, qs = NH * hd, ks = NKV * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *dP = scratch;   // [T,T], becomes scale * dS in place
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qo = (size_t)b * T * qs + (size_t)h * hd;
            size_t ko = (size_t)b * T * ks + (size_t)(h / rep) * hd;
            const float *P = att + ((size_t)b * NH + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dout + qo, qs, v + ko, ks,
                        0.0f, dP, T);
            if (dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dout + qo, qs,
                            1.0f, dv + ko, ks);
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * T;
                float *d = dP + (size_t)i * T;
                float s = 0.0f;
                for (int j = 0; j <= i; j++) s += p[j] * d[j];
                for (int j = 0; j <= i; j++) d[j] = scale * p[j] * (d[j] - s);
                for (int j = i + 1; j < T; j++) d[j] = 0.0f;
            }
            if (dq)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, dP, T, k + ko, ks,
                            1.0f, dq + qo, qs);
            if (dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, dP, T, q + qo, qs,
                            1.0f, dk + ko, ks);
        }
}

// ---------------------------------------------------------------- attention against a KV cache

size_t eng_attention_cached_scratch(int n, int pos)
{
    return (size_t)n * (size_t)(pos + n);
}

void eng_attention_cached_forward(float *out, float *scratch, const float *q, const float *kc,
                                  const float *vc, int n, int pos, int NH, int NKV, int hd)
{
    eng_attention_cached_heads(out, scratch, q, kc, vc, n, pos, NH, NKV, hd, 0, NH);
}

void eng_attention_cached_heads(float *out, float *scratch, const float *q, const float *kc, const float *vc,
                                int n, int pos, int NH, int NKV, int hd, int h0, int h1)
{
    eng_attention_cached_strided(out, scratch, q, kc, vc, n, pos, NH, NKV, hd, h0, h1, (size_t)hd, (size_t)NKV * hd);
}

void eng_attention_cached_strided(float *out, float *scratch, const float *q, const float *kc, const float *vc,
                                  int n, int pos, int NH, int NKV, int hd, int h0, int h1, size_t head_stride,
                                  size_t row_stride)
{
    int rep = NH / NKV, qs = NH * hd;
    size_t ks = row_stride;
    float scale = 1.0f / sqrtf((float)hd);
    // Row by row, prefill or decode alike: each new token's scores against
    // every key it sees, softmax, weighted sum of values. A row's result
    // depends only on its position and the cache, never on how many rows
    // came with it (batch invariance: a prompt prefilled in chunks gives the
    // bits of one prefilled at once; sgemm over the chunk would not).
    // Heads outside rows: one head's keys and values stay in cache for all
    // rows; rows four at a time where there are four (each key and value row
    // read once for the four; the same bits as one at a time).
    int L = pos + n;
    // AVX2 / AVX-512 (attention_simd.c): one row at a time, or with hd <= 64
    // four rows at a time (each key row read once for the four), the same
    // bits whatever n is; the plain path below otherwise
    eng_cpu_level lvl = eng_cpu_level_get();
    int W = lvl == ENG_CPU_AVX512 ? 16 : lvl == ENG_CPU_AVX2 ? 8 : 0;
    if (W && hd % W == 0 && hd <= ENG_ATTN_SIMD_MAX_HD) {
        int four = hd <= ENG_ATTN_ROWS4_MAX_HD;
        for (int h = h0; h < h1; h++) {
            const float *K = kc + (size_t)(h / rep) * head_stride, *V = vc + (size_t)(h / rep) * head_stride;
            int i = 0;
            for (; four && i + 4 <= n; i += 4) {   // scratch: 4 rows of <= pos + n floats
                float *o = out + (size_t)i * qs + (size_t)h * hd;
                const float *qv = q + (size_t)i * qs + (size_t)h * hd;
                if (W == 16) eng__attn_rows4_avx512(o, scratch, qv, (size_t)qs, K, V, ks, pos + i + 1, hd, scale);
                else eng__attn_rows4_avx2(o, scratch, qv, (size_t)qs, K, V, ks, pos + i + 1, hd, scale);
            }
            for (; i < n; i++) {
                const float *qv = q + (size_t)i * qs + (size_t)h * hd;
                float *o = out + (size_t)i * qs + (size_t)h * hd;
                if (W == 16) eng__attn_row_avx512(o, scratch, qv, K, V, ks, pos + i + 1, hd, scale);
                else eng__attn_row_avx2(o, scratch, qv, K, V, ks, pos + i + 1, hd, scale);
            }
        }
        return;
    }
    for (int h = h0; h < h1; h++) {
        const float *K = kc + (size_t)(h / rep) * head_stride, *V = vc + (size_t)(h / rep) * head_stride;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            float *sr[4], *o[4];
            const float *qr[4];
            int len[4];
            for (int r = 0; r < 4; r++) {
                sr[r] = scratch + (size_t)r * L;   // n >= 4 rows of L floats
                qr[r] = q + (size_t)(i + r) * qs + (size_t)h * hd;
                o[r] = out + (size_t)(i + r) * qs + (size_t)h * hd;
                len[r] = pos + i + r + 1;
            }
            scores_rows4(sr, qr, K, ks, len[3], hd, scale);
            for (int r = 0; r < 4; r++) masked_softmax_row(sr[r], len[r], len[r]);
            weighted_sum_rows4(o, (const float *const *)sr, V, ks, len, hd);
        }
        for (; i < n; i++) {
            int len = pos + i + 1;
            const float *qv = q + (size_t)i * qs + (size_t)h * hd;
            decode_scores(scratch, qv, K, ks, len, hd, scale);
            masked_softmax_row(scratch, len, len);
            decode_weighted_sum(out + (size_t)i * qs + (size_t)h * hd, scratch, V, ks, len, hd);
        }
    }
}

// ---------------------------------------------------------------- SwiGLU

void eng_swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
    // silu on vectors where the CPU has them (act_simd.c)
    eng_cpu_level lvl = eng_cpu_level_get();
    if (lvl == ENG_CPU_AVX512) { eng__swiglu_avx512(out, gate, up, n); return; }
    if (lvl == ENG_CPU_AVX2) { eng__swiglu_avx2(out, gate, up, n); return; }
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// silu'(g) = sig(g) * (1 + g * (1 - sig(g)))
void eng_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
        if (dgate) dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        if (dup) dup[i] += dout[i] * g * sig;
    }
}
