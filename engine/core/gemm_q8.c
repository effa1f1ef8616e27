// gemm_q8.c — int8 quantization, the packed layout, the plain C int8 matrix
// product (the reference arithmetic of gemm_q8.h that every kernel
// reproduces bit for bit) and the choice of kernel. The SIMD kernels are in
// gemm_q8_avx2.c (AVX2, AVX-VNNI) and gemm_q8_avx512.c (AVX-512 VNNI).
#include "engine/core/gemm_q8.h"

#include <math.h>        // fabsf, lrintf
#include <string.h>      // memset
#include "engine/core/cpu.h"   // eng_cpu_features_get, eng_cpu_level_get
#include "engine/core/gemm_q8_internal.h"   // the SIMD kernels, eng__q8_tail_groups

// ---------------------------------------------------------------- quantization

// One group: q = round(x * 127 / max|x|), scale = max|x| / 127 (0 for an all-zero group).
static float quantize_group(int8_t *q, const float *x, int n) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (!(amax > 0.0f)) {   // zeros (or NaN input: quantized as zeros rather than spreading NaN)
        memset(q, 0, (size_t)n);
        return 0.0f;
    }
    float inv = 127.0f / amax;
    for (int i = 0; i < n; i++) {
        long v = lrintf(x[i] * inv);
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return amax / 127.0f;
}

void eng_q8_quantize(int8_t *q, float *s, const float *w, int n, int k, int group) {
    int ng = k / group;
    for (size_t r = 0; r < (size_t)n; r++)
        for (int g = 0; g < ng; g++)
            s[r * ng + g] = quantize_group(q + r * k + (size_t)g * group, w + r * k + (size_t)g * group, group);
}

void eng_q8_dequantize(float *w, const int8_t *q, const float *s, int n, int k, int group) {
    for (size_t i = 0; i < (size_t)n * k; i++) w[i] = (float)q[i] * s[i / group];
}

void eng_q8_dequantize_row(float *out, const eng_q8_matrix *b, int row) {
    eng_q8_dequantize(out, b->q + (size_t)row * b->k, b->s + (size_t)row * (b->k / b->group), 1, b->k, b->group);
}

eng_q8_matrix eng_q8_matrix_rows(const eng_q8_matrix *b, int j0, int n) {
    eng_q8_matrix r = *b;
    r.q += (size_t)j0 * b->k;
    if (r.p) r.p += (size_t)j0 * eng_q8_packed_row_bytes(b->k, b->group);
    r.s += (size_t)j0 * (b->k / b->group);
    r.n = n;
    return r;
}

// ---------------------------------------------------------------- the packed layout

static int tail_groups(int ng, int G) { return eng__q8_tail_groups(ng, G); }

size_t eng_q8_packed_row_bytes(int k, int group) {
    int ng = k / group;
    return (size_t)(ng / 16 * 16 + tail_groups(ng, group)) * group;
}

// One row: full blocks (lane l = group l, chunk c = its bytes [4c, 4c + 4)),
// then the tail (lane l = group l % P, its portion l / P of G * P / 16 bytes).
static void pack_row(int8_t *dst, const int8_t *q, int k, int G, int flip) {
    int ng = k / G, nfull = ng / 16, P = tail_groups(ng, G);
    for (int b = 0; b < nfull; b++) {
        const int8_t *src = q + (size_t)b * 16 * G;
        int8_t *d = dst + (size_t)b * 16 * G;
        for (int c = 0; c < G / 4; c++)
            for (int l = 0; l < 16; l++) memcpy(d + 64 * c + 4 * l, src + (size_t)l * G + 4 * c, 4);
    }
    if (P) {
        const int8_t *src = q + (size_t)nfull * 16 * G;
        int8_t *d = dst + (size_t)nfull * 16 * G;
        int nv = ng % 16, portion = G * P / 16;   // bytes of a group per lane
        for (int c = 0; c < portion / 4; c++)
            for (int l = 0; l < 16; l++) {
                int g = l % P, part = l / P;
                if (g < nv) memcpy(d + 64 * c + 4 * l, src + (size_t)g * G + part * portion + 4 * c, 4);
                else memset(d + 64 * c + 4 * l, 0, 4);
            }
    }
    if (flip)   // weights: stored as w + 128 (unsigned), what vpdpbusd multiplies
        for (size_t i = 0; i < eng_q8_packed_row_bytes(k, G); i++) dst[i] = (int8_t)((uint8_t)dst[i] ^ 0x80);
}

void eng_q8_pack(int8_t *dst, const int8_t *q, int n, int k, int group) {
    size_t pr = eng_q8_packed_row_bytes(k, group);
    for (size_t r = 0; r < (size_t)n; r++) pack_row(dst + r * pr, q + r * k, k, group, 1);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t eng_q8_rows_bytes(int m, int k, int group) {
    size_t mk = (size_t)m * k, mp = (size_t)m * eng_q8_packed_row_bytes(k, group), mg = (size_t)m * (k / group);
    return align64(mk) + 2 * align64(mp) + align64(mg * sizeof(float)) + align64(mg * sizeof(int32_t));
}

void eng_q8_rows_init(eng_q8_rows *a, void *mem, int m, int k, int group) {
    size_t mk = (size_t)m * k, mp = (size_t)m * eng_q8_packed_row_bytes(k, group), mg = (size_t)m * (k / group);
    char *p = mem;
    a->m = m;
    a->k = k;
    a->group = group;
    a->q = (int8_t *)p;
    p += align64(mk);
    a->p = (int8_t *)p;
    p += align64(mp);
    a->u = (uint8_t *)p;
    p += align64(mp);
    a->s = (float *)(void *)p;
    p += align64(mg * sizeof(float));
    a->sum = (int32_t *)(void *)p;
}

void eng_q8_quantize_rows(eng_q8_rows *a, const float *x, int ldx) {
    int k = a->k, G = a->group, ng = k / G;
    size_t pr = eng_q8_packed_row_bytes(k, G);
    // a step quantizes every matmul input: AVX2 where cpu.h's level allows it (the same bits)
    int simd = G % 8 == 0 && eng_cpu_level_get() >= ENG_CPU_AVX2 && eng_q8_isa_supported(ENG_Q8_AVX2);
    for (size_t i = 0; i < (size_t)a->m; i++) {
        int8_t *q = a->q + i * k;
        for (int g = 0; g < ng; g++) {
            int8_t *qg = q + (size_t)g * G;
            const float *xg = x + i * ldx + (size_t)g * G;
            if (simd) {
                a->s[i * ng + g] = eng__q8_quantize_group_avx2(qg, &a->sum[i * ng + g], xg, G);
                continue;
            }
            a->s[i * ng + g] = quantize_group(qg, xg, G);
            int32_t sum = 0;
            for (int t = 0; t < G; t++) sum += qg[t];
            a->sum[i * ng + g] = sum;
        }
        pack_row(a->p + i * pr, q, k, G, 0);
        for (size_t t = 0; t < pr; t++) {
            int8_t v = a->p[i * pr + t];
            a->u[i * pr + t] = (uint8_t)(v < 0 ? -v : v);
        }
    }
}

// ---------------------------------------------------------------- plain C: the reference arithmetic

// acc[16] -> one float: lanes l + l+8, then + l+4, + l+2, + l+1.
static float tree16(float acc[16]) {
    for (int w = 8; w >= 1; w >>= 1)
        for (int l = 0; l < w; l++) acc[l] = acc[l] + acc[l + w];
    return acc[0];
}

static float dot_c(const int8_t *a, const float *sa, const int8_t *w, const float *sw, int k, int G) {
    float acc[16] = {0};
    for (int g = 0; g < k / G; g++) {
        int32_t S = 0;
        for (int t = 0; t < G; t++) S += (int32_t)a[g * G + t] * w[g * G + t];
        float sc = sa[g] * sw[g];
        float p = (float)S * sc;
        acc[g & 15] = acc[g & 15] + p;
    }
    return tree16(acc);
}

static void gemm_c(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N, int accumulate) {
    int k = B->k, G = B->group, ng = k / G;
    for (int j = 0; j < N; j++)
        for (int i = 0; i < M; i++) {
            float r = dot_c(A->q + (size_t)i * k, A->s + (size_t)i * ng, B->q + (size_t)j * k, B->s + (size_t)j * ng, k, G);
            float *o = out + (size_t)i * ldo + j;
            *o = accumulate ? *o + r : r;
        }
}

// ---------------------------------------------------------------- dispatch

typedef void (*gemm_fn)(float *, int, const eng_q8_rows *, const eng_q8_matrix *, int, int, int);
static const gemm_fn kernels[ENG_Q8__COUNT] = {
    [ENG_Q8_C] = gemm_c,
    [ENG_Q8_AVX2] = eng__gemm_q8_avx2,
    [ENG_Q8_AVXVNNI] = eng__gemm_q8_avxvnni,
    [ENG_Q8_AVX512VNNI] = eng__gemm_q8_avx512vnni,
};
static const char *const isa_names[ENG_Q8__COUNT] = {
    [ENG_Q8_C] = "c", [ENG_Q8_AVX2] = "avx2", [ENG_Q8_AVXVNNI] = "avxvnni", [ENG_Q8_AVX512VNNI] = "avx512vnni",
};
static int forced = -1;   // eng_q8_isa_t from eng_q8_set_isa, or -1: follow cpu.h

const char *eng_q8_isa_name(eng_q8_isa_t isa) { return (unsigned)isa < ENG_Q8__COUNT ? isa_names[isa] : "unknown"; }

int eng_q8_isa_supported(eng_q8_isa_t isa) {
    const eng_cpu_features *f = eng_cpu_features_get();
    int avx2 = f->avx2 && f->fma;
    switch (isa) {
    case ENG_Q8_C: return 1;
    case ENG_Q8_AVX2: return avx2;
    case ENG_Q8_AVXVNNI: return avx2 && f->avxvnni;
    case ENG_Q8_AVX512VNNI: return avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
    default: return 0;
    }
}

int eng_q8_set_isa(eng_q8_isa_t isa) {
    if ((unsigned)isa >= ENG_Q8__COUNT || !eng_q8_isa_supported(isa)) return -1;
    __atomic_store_n(&forced, (int)isa, __ATOMIC_RELAXED);
    return 0;
}

void eng_q8_reset_isa(void) { __atomic_store_n(&forced, -1, __ATOMIC_RELAXED); }

// The best kernel the cpu.h level allows (INFERD_CPU=avx2 rules out AVX-512
// VNNI; generic rules out every SIMD kernel).
eng_q8_isa_t eng_q8_isa(void) {
    int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
    if (f >= 0) return (eng_q8_isa_t)f;
    eng_cpu_level lvl = eng_cpu_level_get();
    // AVX-512 VNNI first where both exist: with 32 registers its tiles are
    // twice AVX-VNNI's (4 x 4 against 3 x 3), and on Zen 4 it measured
    // 1.7x AVX-VNNI at 128 rows, 1.4x at 16 and 1.1-1.2x at 1 (bench_gemm)
    if (lvl >= ENG_CPU_AVX512 && eng_q8_isa_supported(ENG_Q8_AVX512VNNI)) return ENG_Q8_AVX512VNNI;
    if (lvl >= ENG_CPU_AVX2 && eng_q8_isa_supported(ENG_Q8_AVXVNNI)) return ENG_Q8_AVXVNNI;
    if (lvl >= ENG_CPU_AVX2 && eng_q8_isa_supported(ENG_Q8_AVX2)) return ENG_Q8_AVX2;
    return ENG_Q8_C;
}

void eng_gemm_q8_nt(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N, int accumulate) {
    if (M <= 0 || N <= 0) return;
    kernels[eng_q8_isa()](out, ldo, A, B, M, N, accumulate);
}
