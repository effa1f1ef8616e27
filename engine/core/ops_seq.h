// ops_seq.h — the sequence-model operators (decoder transformers: GPT-2 and
// Llama), in the style of ops.h: plain functions over contiguous float
// arrays, outputs first, then const inputs, then dims. Every training op has
// a forward and a backward that ACCUMULATES (`d* +=`) into gradient buffers
// the caller zeroed; a backward's gradient outputs may be NULL when that
// gradient is not needed. The serving-only op (attention against a KV cache)
// has no backward.
//
// Layouts: a batch of B sequences of T tokens is B*T rows, row b*T + t.
// Attention inputs keep heads side by side in a row: q[rows, NH*hd] (head h
// at columns h*hd .. h*hd+hd-1), k and v [rows, NKV*hd]. Grouped-query
// attention: NKV divides NH and query head h reads kv head h / (NH/NKV)
// (plain multi-head attention is NKV == NH).
//
// In-place use: eng_add_forward, eng_rope_forward, eng_swiglu_forward and the
// norms' forwards may be called with out == (an) input. Nothing else.
#ifndef ENG_OPS_SEQ_H
#define ENG_OPS_SEQ_H
#include <stddef.h>   // size_t

// ---------------------------------------------------------------- embedding
// out[N,C] = table[ids[n], :] (ids must be valid rows of the table).
void eng_embedding_forward(float *out, const float *table, const int *ids, int N, int C);
// dtable[ids[n], :] += dout[n, :] (scatter-add; repeated ids accumulate).
void eng_embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C);

// ---------------------------------------------------------------- residual add
// out[n] = a[n] + b[n]
void eng_add_forward(float *out, const float *a, const float *b, size_t n);
// da += dout ; db += dout (either may be NULL)
void eng_add_backward(float *da, float *db, const float *dout, size_t n);

// ---------------------------------------------------------------- layer norm (GPT-2)
// out[N,C] = (in - mean) * rstd * w + b per row, biased variance,
// rstd = 1/sqrt(var + eps). mean[N] and rstd[N] are written for the backward
// (either may be NULL when no backward follows).
void eng_layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                           const float *b, int N, int C, float eps);
// din[N,C] += ; dw[C] += ; db[C] += (any may be NULL)
void eng_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const float *mean, const float *rstd, int N, int C);

// ---------------------------------------------------------------- RMS norm (Llama)
// out[N,C] = in * rstd * w, rstd = 1/sqrt(mean(in^2) + eps) per row (HF
// LlamaRMSNorm, llama2.c rmsnorm). rstd[N] may be NULL when no backward follows.
void eng_rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C, float eps);
// din[N,C] += ; dw[C] += (either may be NULL)
void eng_rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                          const float *rstd, int N, int C);

// ---------------------------------------------------------------- rotary position embedding
// Rotates pairs of each head's dims by the angle pos * theta^(-2j/hd), pair
// j = 0 .. hd/2-1. Which dims form pair j depends on the checkpoint's layout:
//   interleaved = 0  dims (j, j + hd/2): Hugging Face Llama ("rotate_half"),
//                    Meta's HF conversion, and every model we train or save;
//   interleaved = 1  dims (2j, 2j+1): llama2.c's run.c and its model.bin
//                    (Meta's original layout: HF's conversion permutes the q/k
//                    rows, llama2.c's export.py undoes it).
// Both give the same model; only the q/k weight rows are ordered differently.
//
// cos[N, hd/2], sin[N, hd/2] for rows at positions pos[N] (angles in double;
// computed once per forward and shared by every layer and head).
void eng_rope_table(float *cos_t, float *sin_t, const int *pos, int N, int hd, float theta);
// out[N, H*hd] = x rotated per row n by that row's table entries (H heads).
void eng_rope_forward(float *out, const float *in, const float *cos_t, const float *sin_t,
                      int N, int H, int hd, int interleaved);
// din += the inverse rotation of dout (rotation is orthogonal).
void eng_rope_backward(float *din, const float *dout, const float *cos_t, const float *sin_t,
                       int N, int H, int hd, int interleaved);

// ---------------------------------------------------------------- causal attention (training)
// Scaled dot-product attention of B sequences of T tokens, each token seeing
// itself and earlier tokens of its own sequence, scale 1/sqrt(hd):
//   q[B*T, NH*hd], k/v[B*T, NKV*hd] -> out[B*T, NH*hd]
// att[B, NH, T, T] receives the softmax probabilities (entries above the
// diagonal are exactly 0); the backward needs them.
void eng_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int NKV, int hd);
// dq[B*T, NH*hd] += ; dk, dv[B*T, NKV*hd] += (any may be NULL).
// scratch: [T*T] floats.
void eng_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *q, const float *k, const float *v, const float *att,
                            int B, int T, int NH, int NKV, int hd);

// ---------------------------------------------------------------- attention against a KV cache (serving)
// One sequence whose n new tokens sit at positions pos .. pos+n-1 and whose
// keys/values for positions 0 .. pos+n-1 (the new ones included) are rows of
// kc / vc [pos+n, NKV*hd]. New token i attends to positions 0 .. pos+i:
//   q[n, NH*hd] -> out[n, NH*hd]
// scratch: eng_attention_cached_scratch(n, pos) floats. Matches
// eng_attention_forward on the same rows (within float rounding). Row by row
// (a vectorised loop): each row's output bits depend only on its position and
// the cache, whatever n is, so a prompt prefilled in chunks of any size gives
// the same bits (tests/unit/test_prefill_chunks.c).
size_t eng_attention_cached_scratch(int n, int pos);
void eng_attention_cached_forward(float *out, float *scratch, const float *q, const float *kc,
                                  const float *vc, int n, int pos, int NH, int NKV, int hd);
// The same for heads h0 <= h < h1 only (their columns of out): each head's
// result is bit-identical to the all-heads call, so heads can be split
// across threads (engine/core/pool.h), each with its own scratch.
void eng_attention_cached_heads(float *out, float *scratch, const float *q, const float *kc, const float *vc,
                                int n, int pos, int NH, int NKV, int hd, int h0, int h1);
// The same over a cache of any layout: key (value) row t of kv head g at
// kc + g * head_stride + t * row_stride. The layout above is head_stride hd,
// row_stride NKV * hd; a head-major cache ([NKV][max_len][hd], each head's
// rows contiguous: a sequential read per head) is max_len * hd and hd. The
// bits do not depend on the layout.
void eng_attention_cached_strided(float *out, float *scratch, const float *q, const float *kc, const float *vc,
                                  int n, int pos, int NH, int NKV, int hd, int h0, int h1, size_t head_stride,
                                  size_t row_stride);

// ---------------------------------------------------------------- SwiGLU (Llama MLP)
// out[n] = silu(gate[n]) * up[n], silu(g) = g * sigmoid(g); gate = x W1^T
// (gate_proj), up = x W3^T (up_proj), then out W2^T (down_proj) follows.
void eng_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
// dgate += dout * up * silu'(gate) ; dup += dout * silu(gate) (either may be NULL)
void eng_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n);

#endif
