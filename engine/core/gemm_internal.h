// gemm_internal.h — the ISA paths behind eng_gemm_nt (gemm.c dispatches).
// Each is compiled with __attribute__((target(...))) in its own file, so the
// rest of the binary stays baseline x86-64; call one only when
// eng_cpu_level_max() says the CPU has it. Arguments as eng_gemm_nt, with
// M, N > 0 and K >= 0.
#ifndef ENG_GEMM_INTERNAL_H
#define ENG_GEMM_INTERNAL_H

#include <stddef.h>  // size_t

void eng__gemm_nt_avx2(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M, int N,
                       int K, int accumulate);
void eng__gemm_nt_avx512(float *out, size_t ldo, const float *A, size_t lda, const float *B, size_t ldb, int M, int N,
                         int K, int accumulate);

#endif
