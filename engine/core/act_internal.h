// act_internal.h — the ISA paths behind eng_gelu_forward (ops.c) and
// eng_swiglu_forward (ops_seq.c), compiled with target attributes in
// act_simd.c; call one only when eng_cpu_level_get() allows it. Arguments as
// the public functions (in-place allowed).
#ifndef ENG_ACT_INTERNAL_H
#define ENG_ACT_INTERNAL_H

#include <stddef.h>  // size_t

void eng__gelu_tanh_avx512(float *out, const float *in, size_t n);
void eng__gelu_tanh_avx2(float *out, const float *in, size_t n);
void eng__swiglu_avx512(float *out, const float *gate, const float *up, size_t n);
void eng__swiglu_avx2(float *out, const float *gate, const float *up, size_t n);

#endif
