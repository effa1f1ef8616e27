// gemm_q8.h — int8 weights: group-wise symmetric quantization (one fp32
// scale per group of 32 or 64 values along K, as GGML's Q8_0 and llama2.c's
// runq.c) and the matrix product out = A B^T with int8 dot products.
//
// DESIGN
// - Weights: q[n, k] int8 in [-127, 127] and s[n, k/group] fp32, value =
//   q * s; s = max|w| / 127 over the group. Activations are quantized the
//   same way, row by row, when a step needs them (eng_q8_quantize_rows).
// - One output element is FIXED arithmetic, whatever the ISA, the number of
//   rows, or the column block a caller computes:
//     S_g  = exact int32 sum over group g of qa * qw          (integers: any order)
//     acc[g mod 16] += (float)S_g * (sa_g * sw_g)            (g ascending, no FMA)
//     out = tree sum of acc[16]: lanes l + l+8, then +4, +2, +1
//   so every kernel (AVX-512 VNNI, AVX-VNNI, AVX2, plain C) gives the same
//   bits, a row's result never depends on its batch neighbours (batch
//   invariance), and the C path is the reference the others are tested against.
// - VNNI's vpdpbusd multiplies unsigned by signed bytes: the packed weights
//   are stored with the sign bit flipped (w + 128 as u8) and the kernels
//   subtract 128 * sum(qa) per group, which the activation quantizer
//   precomputes. AVX2 uses the sign trick
//   (maddubs(|a|, sign(w, a))), which cannot overflow with q in [-127, 127].
// - The SIMD kernels are register-tiled (gemm_q8_avx512.c, gemm_q8_avx2.c):
//   several activation rows x several weight rows per tile, each chunk loaded
//   once per k-step; a tile only decides which of these fixed dot products
//   run side by side, never their arithmetic.
// - The kernel is chosen at run time from the CPU (eng_q8_isa); tests force
//   each path the machine runs with eng_q8_set_isa.
#ifndef ENG_GEMM_Q8_H
#define ENG_GEMM_Q8_H
#include <stddef.h>   // size_t
#include <stdint.h>   // int8_t

// A quantized weight matrix (rows are output columns, y = x W^T).
typedef struct {
    const int8_t *q;   // [n, k] row-major (the file's layout; the plain C kernel)
    const int8_t *p;   // [n, eng_q8_packed_row_bytes] the SIMD kernels' layout (eng_q8_pack)
    const float *s;    // [n, k / group]
    int n, k, group;
} eng_q8_matrix;

// The packed layout: each row's groups in blocks of 16, interleaved so that
// int32 lane l of every 64-byte chunk holds 4 bytes of group l of the block;
// vpdpbusd over a block's chunks then leaves the 16 group sums in the 16
// lanes with no horizontal reduction. A last block of fewer than 16 groups
// is padded with zero groups to a power of two P (>= 64 / group) and spread
// over all 16 lanes (lane l: group l % P), folded once at the end.
size_t eng_q8_packed_row_bytes(int k, int group);
// dst[n, packed_row_bytes] from the row-major q[n, k].
void eng_q8_pack(int8_t *dst, const int8_t *q, int n, int k, int group);

// Rows [j0, j0 + n) of B: a column block of the product (for splitting work).
eng_q8_matrix eng_q8_matrix_rows(const eng_q8_matrix *b, int j0, int n);

// Quantized activation rows.
typedef struct {
    int m, k, group;
    int8_t *q;      // [m, k]
    int8_t *p;      // [m, packed_row_bytes] q in the packed layout
    uint8_t *u;     // [m, packed_row_bytes] |p| (AVX2's sign trick)
    float *s;       // [m, k / group] scales
    int32_t *sum;   // [m, k / group] sum of q per group (VNNI's unsigned-weight correction)
} eng_q8_rows;

// Bytes eng_q8_rows_init needs for m rows of k (k % group == 0).
size_t eng_q8_rows_bytes(int m, int k, int group);
// Carves a from `mem` (eng_q8_rows_bytes of it, 64-byte aligned).
void eng_q8_rows_init(eng_q8_rows *a, void *mem, int m, int k, int group);
// Quantizes rows x[i * ldx ...] (i < a->m) into a.
void eng_q8_quantize_rows(eng_q8_rows *a, const float *x, int ldx);

// Weight quantization: q[n, k], s[n, k / group] from w[n, k] (k % group == 0).
void eng_q8_quantize(int8_t *q, float *s, const float *w, int n, int k, int group);
// w[n, k] = q * s (the values a quantized matrix stands for).
void eng_q8_dequantize(float *w, const int8_t *q, const float *s, int n, int k, int group);
// One dequantized row (embedding lookups of a quantized embedding).
void eng_q8_dequantize_row(float *out, const eng_q8_matrix *b, int row);

// out[i * ldo + j] = (accumulate ? out[i * ldo + j] : 0) + A_i . B_j for i < M
// (<= A->m), j < N (<= B->n). A->k == B->k and A->group == B->group.
void eng_gemm_q8_nt(float *out, int ldo, const eng_q8_rows *A, const eng_q8_matrix *B, int M, int N, int accumulate);

// The kernels. eng_q8_isa() is the one in use: the best the CPU has within
// cpu.h's level (INFERD_CPU=avx2 leaves AVX-VNNI or AVX2, generic the C
// kernel). eng_q8_set_isa forces one (tests, benchmarks; -1 when the CPU
// lacks it), eng_q8_reset_isa returns to cpu.h's choice.
typedef enum { ENG_Q8_C, ENG_Q8_AVX2, ENG_Q8_AVXVNNI, ENG_Q8_AVX512VNNI, ENG_Q8__COUNT } eng_q8_isa_t;
eng_q8_isa_t eng_q8_isa(void);
int eng_q8_set_isa(eng_q8_isa_t isa);
void eng_q8_reset_isa(void);
int eng_q8_isa_supported(eng_q8_isa_t isa);
const char *eng_q8_isa_name(eng_q8_isa_t isa);

#endif
