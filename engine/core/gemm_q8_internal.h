// gemm_q8_internal.h — the SIMD kernels behind eng_gemm_q8_nt (gemm_q8.c
// dispatches; gemm_q8.h describes the packed layout and the fixed arithmetic
// every kernel reproduces bit for bit). Each is compiled with
// __attribute__((target(...))) in its own file, so the rest of the binary
// stays baseline x86-64; call one only when eng_q8_isa_supported says the CPU
// has it. Arguments as eng_gemm_q8_nt, with M, N > 0.
#ifndef ENG_GEMM_Q8_INTERNAL_H
#define ENG_GEMM_Q8_INTERNAL_H

#include "engine/core/gemm_q8.h"   // eng_q8_rows, eng_q8_matrix

void eng__gemm_q8_avx2(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N,
                       int accumulate);
void eng__gemm_q8_avxvnni(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N,
                          int accumulate);
void eng__gemm_q8_avx512vnni(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N,
                             int accumulate);

// One activation group (n % 8 == 0) quantized as gemm_q8.c's quantize_group,
// the same bits, with its sum of q in *sum; returns the scale. AVX2.
float eng__q8_quantize_group_avx2(int8_t *q, int32_t *sum, const float *x, int n);

// Groups of the last, partial block of 16 padded to P (a power of two,
// >= 64 / group, so every int32 lane holds at least 4 bytes); 0 when the
// groups fill whole blocks.
static inline int eng__q8_tail_groups(int ng, int group) {
    int nv = ng % 16;
    if (!nv) return 0;
    int P = 64 / group;
    while (P < nv) P *= 2;
    return P;
}

// One call's geometry: groups per row and how they fill blocks of 16.
typedef struct {
    int G, ng, nfull, P, nv;   // group, groups per row, full blocks, tail padded to P groups (0: none), tail groups
    int chunks, tchunks;       // 64-byte chunks of a full block and of the tail
    size_t pr;                 // packed row bytes
} eng__q8_geom;

static inline eng__q8_geom eng__q8_geom_of(const eng_q8_matrix *B) {
    eng__q8_geom g = {.G = B->group, .ng = B->k / B->group};
    g.nfull = g.ng / 16;
    g.nv = g.ng % 16;
    g.P = eng__q8_tail_groups(g.ng, g.G);
    g.chunks = g.G / 4;
    g.tchunks = g.G * g.P / 64;
    g.pr = eng_q8_packed_row_bytes(B->k, B->group);
    return g;
}

// A's rows kept in L2 while a tile's weight rows (in L1) meet them: the
// kernels take the rows in blocks of about this many bytes.
enum { ENG__Q8_A_BLOCK_BYTES = 256 * 1024 };

#endif
