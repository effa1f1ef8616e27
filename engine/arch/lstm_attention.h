// lstm_attention.h — the seeds' own translator: a character-level LSTM
// encoder-decoder with attention (arch "lstm-attention", task translation),
// the model of the Keras seq2seq translator of the seed articles with the
// attention of Luong, Pham & Manning, "Effective Approaches to
// Attention-based Neural Machine Translation" (EMNLP 2015): global
// attention, "general" score, input feeding.
//
//   encoder  bidirectional LSTM (E layers, H/2 per direction; a layer's
//            input is the previous layer's [forward | backward] output)
//            over source embeddings -> memory m_s [S, H]; keys k_s = Wa m_s
//   decoder  one LSTM layer (hidden H) whose input at step t is the target
//            embedding of y_{t-1} (the start id first) concatenated with the
//            previous attentional vector h~_{t-1} (zeros at t = 0):
//              h_t   = LSTM([emb(y_{t-1}); h~_{t-1}], h_{t-1}, c_{t-1})  (zero initial state)
//              a_t   = softmax_s(h_t . k_s) over the source's real tokens
//              c_t   = sum_s a_t[s] m_s
//              h~_t  = tanh(Wc [c_t; h_t])
//              logits = Wo h~_t + bo
// Serving runs the eng_s2s_ops of seq2seq.h; training runs
// eng_la_forward on the tape (one tape entry per op, custom ops for the
// cell and the attention); both are tested to agree.
//
// Parameters (PyTorch-style names, matrices [out, in]):
//   src_embed.weight [Vs, D]       tgt_embed.weight [Vt, D]
//   encoder.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}[_reverse]  (nn.LSTM, bidirectional)
//   decoder.weight_ih [4H, D + H]  decoder.weight_hh [4H, H]  decoder.bias_ih/bias_hh [4H]
//   attn.weight [H, H] (Wa)        combine.weight [H, 2H] (Wc, input [c_t; h_t])
//   out.weight [Vt, H]             out.bias [Vt]
//
// config.json:
//   {"task": "translation", "arch": "lstm-attention", "src_vocab_size": Vs,
//    "tgt_vocab_size": Vt, "embed_size": D, "hidden_size": H (even),
//    "encoder_layers": E, "max_src_len": .., "max_tgt_len": ..,
//    "start_id": .., "eos_id": .., "pad_id": ..}
// with source_vocab.json and target_vocab.json (character vocabularies,
// tokenizer.h) beside it. The source ids of a text end with eos_id of the
// SOURCE vocabulary ("</s>" in source_vocab.json).
#ifndef ENG_LSTM_ATTENTION_H
#define ENG_LSTM_ATTENTION_H
#include <jansson.h>                // json_t
#include <stdint.h>                 // uint64_t
#include "engine/arch/params.h"     // ENG_PARAM_HEAD
#include "engine/arch/seq2seq.h"    // eng_s2s_ops
#include "engine/core/tape.h"       // eng_tape, eng_var
#include "engine/io/safetensors.h"  // eng_st_file

typedef struct {
    int src_vocab, tgt_vocab;   // Vs, Vt
    int embed;                  // D
    int hidden;                 // H (even: H/2 per encoder direction)
    int enc_layers;             // E
    int max_src_len, max_tgt_len;
    int start_id, eos_id, pad_id;   // target ids
} eng_la_config;

int eng_la_config_from_json(eng_la_config *c, const json_t *config, char **err);
json_t *eng_la_config_to_json(const eng_la_config *c);   // a new reference (task, arch, the keys above)

typedef struct {
    ENG_PARAM_HEAD;
    int embed;         // 1: N(0, 1) init; 0: U(-1/sqrt(fan_in), +)
    eng_var *view;
} eng_la_tensor;

typedef struct { eng_var w_ih, w_hh, b_ih, b_hh; } eng_la_lstm;

typedef struct {
    eng_la_config cfg;
    eng_var src_embed, tgt_embed;
    eng_la_lstm *enc;      // [2E]: layer k forward at 2k, backward at 2k+1
    eng_la_lstm dec;
    eng_var attn_w, comb_w, out_w, out_b;
    eng_la_tensor *tensors;
    int n_tensors;
    size_t n_params;
    float *params, *grads;   // owned values (training) / gradients, or NULL
    eng_st_file st;          // the mapped checkpoint (serving)
} eng_la;

int eng_la_init(eng_la *m, const eng_la_config *c, char **err);   // table only
void eng_la_free(eng_la *m);                                      // NULL-safe
void eng_la_init_params(eng_la *m, uint64_t seed);
void eng_la_enable_grads(eng_la *m);
int eng_la_load_safetensors(eng_la *m, const char *path, char **err);
int eng_la_save(const eng_la *m, const char *path, char **err);
// A heap model from <dir>/model.safetensors and the parsed config.json.
int eng_la_load_dir(eng_la **out, const char *dir, const json_t *config, char **err);
void eng_la_destroy(eng_la *m);   // NULL-safe

// Training forward (teacher forcing). src[B*S]: row b holds src_len[b]
// source ids (EOS included) then padding; tgt_in[B*T]: the decoder inputs
// (start_id, y_1, ..., padding). Returns the attentional vectors h~ [B*T, H]
// (row b*T + t); eng_la_logits projects them to [.., Vt].
eng_var *eng_la_forward(eng_la *m, eng_tape *t, const int *src, const int *src_len, int B, int S,
                        const int *tgt_in, int T);
eng_var *eng_la_logits(eng_la *m, eng_tape *t, eng_var *htilde);
// Mean cross-entropy over the target tokens tgt_out[B*T] that are not
// pad_id (tgt_out[b*T + t] follows tgt_in[b*T + t]).
eng_var *eng_la_loss(eng_la *m, eng_tape *t, const int *src, const int *src_len, int B, int S,
                     const int *tgt_in, const int *tgt_out, int T);

// Serving: the eng_s2s interface over a heap model (ops->free destroys it).
extern const eng_s2s_ops eng_la_s2s_ops;
static inline eng_s2s *eng_la_as_s2s(eng_la *m) { return (eng_s2s *)m; }

#endif
