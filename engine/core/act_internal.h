// act_internal.h — the ISA paths behind eng_gelu_forward (ops.c),
// eng_swiglu_forward (ops_seq.c) and eng_sample's softmax (sample.c),
// compiled with target attributes in
// act_simd.c; call one only when eng_cpu_level_get() allows it. Arguments as
// the public functions (in-place allowed).
#ifndef ENG_ACT_INTERNAL_H
#define ENG_ACT_INTERNAL_H

#include <stddef.h>  // size_t

void eng__gelu_tanh_avx512(float *out, const float *in, size_t n);
void eng__gelu_tanh_avx2(float *out, const float *in, size_t n);
void eng__swiglu_avx512(float *out, const float *gate, const float *up, size_t n);
void eng__swiglu_avx2(float *out, const float *gate, const float *up, size_t n);

// Sampling (engine/text/sample.c): the maximum of x[0..n), and p[i] =
// exp((x[i] - m) * inv_t) (0 below exp(-87), for NaN and -inf) with their sum.
float eng__max_avx512(const float *x, int n);
double eng__exp_sum_avx512(float *p, const float *x, int n, float m, float inv_t);
double eng__exp_sum_avx2(float *p, const float *x, int n, float m, float inv_t);

#endif
