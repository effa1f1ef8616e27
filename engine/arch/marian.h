// marian.h — MarianMT (the opus-mt translation models), served from a
// Hugging Face MarianMTModel directory as it is: config.json
// (model_type "marian") and model.safetensors with HF's names. Implements
// the encoder-decoder interface of engine/arch/seq2seq.h.
//
// The architecture (post-LN transformer, Vaswani et al. 2017, as Marian and
// HF's port define it): token embeddings scaled by sqrt(d_model) when
// scale_embedding, plus sinusoidal positions from 0 (first half of the
// features sin, second half cos; computed here, a stored
// embed_positions tensor is ignored); encoder layer
//   x = LN(x + SelfAttn(x)); x = LN(x + FC2(act(FC1(x))))
// decoder layer
//   x = LN(x + CausalSelfAttn(x)); x = LN(x + CrossAttn(x, enc)); x = LN(x + FFN(x))
// no final norm; logits = x lm_head^T + final_logits_bias; decoding starts
// from decoder_start_token_id (= pad). Embeddings are shared
// (model.shared.weight) unless the file carries separate encoder / decoder
// embed_tokens and lm_head (share_encoder_decoder_embeddings false).
//
// Serving: encode runs a batch of sources as their rows stacked (no padding
// rows: each source attends only to its own rows), then computes every
// decoder layer's cross-attention K/V of each source once, into the mem. A
// dec is a decoder self-attention KV cache bound to one source of a mem; one
// step advances n decs, one token each, as n stacked rows through OpenBLAS
// sgemm.
#ifndef ENG_MARIAN_H
#define ENG_MARIAN_H
#include <jansson.h>                // json_t
#include "engine/arch/seq2seq.h"    // eng_s2s, eng_s2s_ops

// Loads <dir>/model.safetensors (mapped read-only) per `config`. Returns 0
// and *out, or -1 with *err naming the file and the key or tensor at fault.
int eng_marian_load_dir(eng_s2s **out, const char *dir, const json_t *config, char **err);

extern const eng_s2s_ops eng_marian_s2s_ops;

#endif
