// tape_seq.h — tape wrappers (see tape.h) for the sequence-model operators
// of ops_seq.h, so a decoder transformer's training forward is written once
// against eng_t_* calls and eng_tape_backward yields every parameter
// gradient. Semantics and layouts are those of ops_seq.h; a var [N, C] may
// have any shape whose last dimension is C (rows = n / C). Each wrapper
// records an entry only when the tape has grad enabled and some input has a
// gradient; outputs come from the tape's arena.
#ifndef ENG_TAPE_SEQ_H
#define ENG_TAPE_SEQ_H
#include "engine/core/tape.h"   // eng_tape, eng_var

// table[V, C], ids[N] (copied; each in [0, V)) -> [N, C]
eng_var *eng_t_embedding(eng_tape *t, eng_var *table, const int *ids, int N);
// a + b, same element count -> a's shape
eng_var *eng_t_add(eng_tape *t, eng_var *a, eng_var *b);
// x[N, C], w[C], b[C] -> [N, C] (layer norm, GPT-2)
eng_var *eng_t_layernorm(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, float eps);
// x[N, C], w[C] -> [N, C] (RMS norm, Llama)
eng_var *eng_t_rmsnorm(eng_tape *t, eng_var *x, eng_var *w, float eps);
// x[N, H*hd] -> rotated [N, H*hd]. cos_t/sin_t [N, hd/2] come from
// eng_rope_table and must stay valid until the backward (arena memory).
eng_var *eng_t_rope(eng_tape *t, eng_var *x, const float *cos_t, const float *sin_t, int H, int hd,
                    int interleaved);
// Causal attention of B sequences of T tokens: q[B*T, NH*hd], k/v[B*T, NKV*hd]
// (hd = q's row width / NH) -> [B*T, NH*hd]
eng_var *eng_t_attention(eng_tape *t, eng_var *q, eng_var *k, eng_var *v, int B, int T, int NH, int NKV);
// silu(gate) * up, same shape -> gate's shape
eng_var *eng_t_swiglu(eng_tape *t, eng_var *gate, eng_var *up);

#endif
