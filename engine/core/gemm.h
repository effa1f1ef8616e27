// gemm.h — the batch-invariant matrix product behind every serving-path
// linear layer (transformer, LSTM and Marian steps):
//
//   out[i*ldo + j] (+)= sum_k A[i*lda + k] * B[j*ldb + k]   i < M, j < N, k < K
//
// B is [N,K] row-major (the "nt" layout of linear weights, one output per row).
// BATCH-INVARIANT: the bits of out[i][j] depend only on row i of A, row j of
// B, K and the kernel path (cpu.h level) — never on M, on the other rows, or
// on which column range a caller asks for. So a sequence's tokens do not
// change with what else is in the batch, and callers may split the columns
// across threads: eng_gemm_nt(out + j0, ldo, A, lda, B + j0*ldb, ldb, M,
// j1 - j0, K, acc) on each thread gives the same bits as one call.
// Each path (generic, avx2, avx512) has its own fixed reduction order: bits
// may differ between paths, never within one.
#ifndef ENG_GEMM_H
#define ENG_GEMM_H

#include <stddef.h>  // size_t

#include "engine/core/cpu.h"  // eng_cpu_level

// accumulate != 0 adds to out, else overwrites it. M, N <= 0: nothing;
// K <= 0: the sums are 0. out must not overlap A or B.
void eng_gemm_nt(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M, int N, int K,
                 int accumulate);
// The same on an explicit path (tests, benchmarks): the caller makes sure the
// CPU can run it (eng_cpu_level_max()).
void eng_gemm_nt_level(eng_cpu_level lvl, float *out, size_t ldo, const float *A, size_t lda, const float *B,
                       size_t ldb, int M, int N, int K, int accumulate);

#endif
