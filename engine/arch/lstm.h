// lstm.h — a multi-layer LSTM language model (char-rnn): token embedding,
// L stacked nn.LSTM layers, a linear head. Serves through eng_lm_ops (lm.h)
// and trains through the tape (tape.h). Not here: tokenizers, sampling, the
// scheduler, dropout (inference and plain training only).
//
// config.json:
//   {"task": "text-generation", "arch": "lstm", "vocab_size": V, "hidden_size": H,
//    "num_layers": L, "context_len": N (longest sequence served, default 1024),
//    "tie_word_embeddings": false}
// Parameters carry PyTorch names, so the state_dict of
//   embed = nn.Embedding(V, H); lstm = nn.LSTM(H, H, L, batch_first=True); head = nn.Linear(H, V)
// converts 1:1 (gate order i, f, g, o in the 4H rows, as nn.LSTM):
//   embed.weight [V, H]   lstm.weight_ih_l{k} [4H, H]   lstm.weight_hh_l{k} [4H, H]
//   lstm.bias_ih_l{k} [4H]   lstm.bias_hh_l{k} [4H]   head.weight [V, H]   head.bias [V]
// With tie_word_embeddings the head's weight IS embed.weight ("head.weight"
// is neither required nor saved); head.bias stays.
//
// DESIGN
// - Weights: a table of parameter tensors (eng_lstm_tensor) whose memory is
//   either the read-only mapping of model.safetensors (serving: shared by
//   every worker) or one owned arena of n_params floats (training), with
//   gradients in a twin arena. Named eng_var views point into the tensors.
// - State: each sequence (eng_lstm_seq, made by seq_new) owns h and c of
//   every layer ([L][H] each) and its position; its size does not depend on
//   its length.
// - step: an LSTM is sequential in time, so per layer the input projection
//   x W_ih^T + b_ih is ONE matmul over the stacked new tokens of all
//   sequences ([T_total, 4H]); then the recurrence runs over time steps
//   j = 0 .. max n_tokens - 1, and at each j the sequences that still have a
//   token (n_tokens[i] > j) are batched into one [n_active, H] @ W_hh^T
//   matmul. Sequences with fewer tokens drop out of later time steps. Only
//   the last row of each sequence goes through the head. Working memory
//   ([T_total, 6H] + [n, 6H] floats) comes from the scratch tape's arena
//   after eng_tape_reset: no malloc once the arena has grown.
// - Training: eng_lstm_forward over a [B, T] batch records the embedding,
//   each whole LSTM layer (one tape entry with its own BPTT backward:
//   eng_t_lstm), and the head; eng_tape_backward fills every parameter's
//   gradient. Each window starts from h = c = 0 (truncated BPTT).
// - Thread safety: a loaded model is read-only during step; each worker
//   brings its own scratch tape; a sequence must not be in two steps at once.
#ifndef ENG_LSTM_H
#define ENG_LSTM_H
#include <jansson.h>             // json_t (config.json)
#include <stddef.h>              // size_t
#include <stdint.h>              // uint64_t
#include "engine/arch/lm.h"           // eng_lm, eng_lm_ops
#include "engine/arch/params.h"       // ENG_PARAM_HEAD
#include "engine/io/safetensors.h"  // eng_st_file
#include "engine/core/tape.h"         // eng_tape, eng_var

// ---------------------------------------------------------------- the LSTM layer op (flat arrays)
// One nn.LSTM layer over B sequences of T steps, state starting at zero.
// Rows are b*T + t (batch_first). Per step, with gate order i, f, g, o:
//   a = in[b,t] W_ih^T + b_ih + h[t-1] W_hh^T + b_hh          [4H]
//   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
//   c[t] = f * c[t-1] + i * g ;  h[t] = o * tanh(c[t])
// out[B*T, H] = h; gates[B*T, 4H] = the activated (i, f, g, o) and cs[B*T, H]
// = c, both cached for the backward. in[B*T, C], w_ih[4H, C], w_hh[4H, H],
// b_ih/b_hh [4H] (either bias may be NULL). scratch: eng_lstm_forward_scratch floats.
size_t eng_lstm_forward_scratch(int B, int H);
void eng_lstm_layer_forward(float *out, float *gates, float *cs, float *scratch, const float *in,
                            const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                            int B, int T, int C, int H);
// Backpropagation through time, t = T-1 .. 0. Accumulates din[B*T, C],
// dw_ih[4H, C], dw_hh[4H, H], db_ih[4H], db_hh[4H] (any may be NULL) from
// dout[B*T, H] = dL/dh. out/gates/cs from the forward.
// scratch: eng_lstm_backward_scratch floats.
size_t eng_lstm_backward_scratch(int B, int T, int H);
void eng_lstm_layer_backward(float *din, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                             float *scratch, const float *dout, const float *in, const float *out,
                             const float *gates, const float *cs, const float *w_ih, const float *w_hh,
                             int B, int T, int C, int H);
// Tape wrapper: x[B*T, C] -> h[B*T, H] (H = w_hh->shape[1]); b_ih/b_hh may be NULL.
// Records one entry (whose backward is eng_lstm_layer_backward) when the
// tape has grad enabled and some input has a gradient.
eng_var *eng_t_lstm(eng_tape *t, eng_var *x, eng_var *w_ih, eng_var *w_hh, eng_var *b_ih, eng_var *b_hh,
                    int B, int T);

// ---------------------------------------------------------------- model
typedef struct {
    int vocab_size;   // V ["vocab_size"]
    int hidden_size;  // H, embedding width and every layer's state width ["hidden_size"]
    int num_layers;   // L ["num_layers"]
    int context_len;  // longest sequence served ["context_len", default 1024]
    int tied;         // 1: head.weight is embed.weight ["tie_word_embeddings", default false]
} eng_lstm_config;

// Reads config.json (keys above; "arch", when present, must be "lstm").
// Returns 0 or -1 with *err naming the key.
int eng_lstm_config_from_json(eng_lstm_config *cfg, const json_t *config, char **err);
// The config.json for cfg (task, arch and the keys above), a new reference.
json_t *eng_lstm_config_to_json(const eng_lstm_config *cfg);

typedef enum {
    ENG_LSTM_T_EMBED,     // nn.Embedding: init N(0, 1)
    ENG_LSTM_T_UNIFORM,   // nn.LSTM / nn.Linear(H, V): init U(-1/sqrt(H), 1/sqrt(H))
} eng_lstm_tensor_kind;

// One parameter tensor and the views it backs (embed.weight also backs the tied head).
typedef struct {
    ENG_PARAM_HEAD;             // PyTorch name (e.g. "lstm.weight_hh_l1"), shape, val, grad
    eng_lstm_tensor_kind kind;
    eng_var *views[2];          // the named views it backs (second may be NULL)
} eng_lstm_tensor;

typedef struct {
    eng_var w_ih;   // [4H, H] lstm.weight_ih_l{k}, rows i | f | g | o
    eng_var w_hh;   // [4H, H] lstm.weight_hh_l{k}
    eng_var b_ih;   // [4H]    lstm.bias_ih_l{k}
    eng_var b_hh;   // [4H]    lstm.bias_hh_l{k}
} eng_lstm_layer;

typedef struct {
    eng_lstm_config cfg;
    eng_var embed;             // [V, H] token embedding
    eng_lstm_layer *layers;    // [L]
    eng_var head_w;            // [V, H] output projection (tied: same val/grad as embed)
    eng_var head_b;            // [V]
    eng_lstm_tensor *tensors;  // [n_tensors] every parameter tensor, in save order
    int n_tensors;
    size_t n_params;           // trainable floats (sum of tensors[].n)
    float *params;             // [n_params] owned values (init_params / make_owned), or NULL
    float *grads;              // [n_params] gradients (enable_grads), or NULL
    eng_st_file st;            // the mapped safetensors file, if loaded from one
} eng_lstm;

// Builds the tensor table and views for cfg (dims checked); no weights yet.
// Returns 0 or -1 with *err (m is then cleared).
int eng_lstm_init(eng_lstm *m, const eng_lstm_config *cfg, char **err);
void eng_lstm_free(eng_lstm *m);   // NULL-safe; frees/unmaps everything init/load made
// Owned parameters with PyTorch's default init (see eng_lstm_tensor_kind), seeded.
void eng_lstm_init_params(eng_lstm *m, uint64_t seed);
// Allocates zeroed gradients and points every view's grad at them.
void eng_lstm_enable_grads(eng_lstm *m);
void eng_lstm_zero_grads(eng_lstm *m);
// Maps the weights of a safetensors file by PyTorch name (F16/BF16 are
// converted by the reader); shapes are checked. Returns 0 or -1 with *err.
int eng_lstm_load_safetensors(eng_lstm *m, const char *path, char **err);
// Copies mapped weights into owned, writable parameters (fine-tuning). No-op when owned.
void eng_lstm_make_owned(eng_lstm *m);
// Writes every parameter under its PyTorch name to a safetensors file
// atomically (metadata format=pt). Returns 0 or -1 with *err.
int eng_lstm_save(const eng_lstm *m, const char *path, char **err);

// Training forward over tokens[B*T] (row b*T + t), each row a sequence
// starting from zero state -> logits [B*T, V].
eng_var *eng_lstm_forward(eng_lstm *m, eng_tape *t, const int *tokens, int B, int T);
// Mean next-token cross-entropy -> [1] (targets[b*T + t] follows
// tokens[b*T + t]). eng_tape_backward(t, loss) then accumulates every
// parameter's gradient (after eng_lstm_enable_grads).
eng_var *eng_lstm_loss(eng_lstm *m, eng_tape *t, const int *tokens, const int *targets, int B, int T);

// ---------------------------------------------------------------- model directories and serving
// Loads <dir>/model.safetensors into a new heap model, given the directory's
// parsed config.json. Returns 0 and *out, or -1 with *err.
int eng_lstm_load_dir(eng_lstm **out, const char *dir, const json_t *config, char **err);
void eng_lstm_destroy(eng_lstm *m);   // NULL-safe: eng_lstm_free + free

// The eng_lm interface (lm.h) over a heap model (eng_lstm_load_dir, or
// eng_xcalloc + eng_lstm_init + load/init_params): pass eng_lstm_as_lm(m)
// with &eng_lstm_lm_ops; ops->free(lm) is eng_lstm_destroy. seq_new returns
// NULL (out of memory, or max_len not in 1..context_len). step requires n_tokens[i] >= 1,
// every token in [0, vocab_size) and seq_pos + n_tokens[i] <= max_len
// (asserted: validate client input before).
extern const eng_lm_ops eng_lstm_lm_ops;
eng_lm *eng_lstm_as_lm(eng_lstm *m);

// A sequence's state (what eng_lm_seq points at for this architecture).
typedef struct {
    int max_len;   // tokens the caller may feed in total
    int pos;       // tokens consumed so far
    float *h;      // [L][H] hidden state after the last consumed token (0 before any)
    float *c;      // [L][H] cell state
} eng_lstm_seq;

#endif
