// attention_internal.h — the ISA paths behind eng_attention_cached_heads
// (ops_seq.c dispatches): one query row of one head against len cached keys.
// Each is compiled with __attribute__((target(...))) (attention_simd.c), so
// the rest of the binary stays baseline x86-64; call one only when
// eng_cpu_level_get() allows it, with len >= 1 and hd a multiple of the
// vector width (16 floats for AVX-512, 8 for AVX2) no larger than
// ENG_ATTN_SIMD_MAX_HD (other head sizes take the plain C path).
//   s[len]: scratch; out[hd] = softmax(scale * K q) V, K and V rows ks floats apart.
// eng__attn_rows4_avx512 / _avx2: four consecutive rows of one head at once (rows r =
// 0..3 of q and out qs floats apart, row r seeing len + r keys; scratch s of
// 4 * (len + 3) floats; hd 16..ENG_ATTN_ROWS4_MAX_HD): each row's bits are
// the one-row kernel's, with each key row (and on AVX-512 value row) read
// once per group.
#ifndef ENG_ATTENTION_INTERNAL_H
#define ENG_ATTENTION_INTERNAL_H

#include <stddef.h>  // size_t

enum { ENG_ATTN_SIMD_MAX_HD = 256, ENG_ATTN_ROWS4_MAX_HD = 64 };

void eng__attn_row_avx512(float *out, float *s, const float *q, const float *K, const float *V, size_t ks, int len,
                          int hd, float scale);
void eng__attn_rows4_avx512(float *out, float *s, const float *q, size_t qs, const float *K, const float *V,
                            size_t ks, int len, int hd, float scale);
void eng__attn_rows4_avx2(float *out, float *s, const float *q, size_t qs, const float *K, const float *V,
                          size_t ks, int len, int hd, float scale);
void eng__attn_row_avx2(float *out, float *s, const float *q, const float *K, const float *V, size_t ks, int len,
                        int hd, float scale);

#endif
