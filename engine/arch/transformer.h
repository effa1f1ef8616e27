// transformer.h — decoder-only transformers: GPT-2 and Llama (Hugging Face
// safetensors directories, llama2.c legacy model.bin, and our own trained
// models saved under the HF names). Serves through eng_lm_ops (lm.h) and
// trains through the tape (tape_seq.h). Not here: tokenizers, sampling,
// the scheduler.
//
// DESIGN
// - Weights: one table of parameter tensors (eng_tf_tensor, HF names, our
//   [out, in] layout) whose memory is either the read-only mapping of the
//   checkpoint (serving: shared by every worker) or one owned arena of
//   n_params floats (training / fine-tuning), with gradients in a twin arena.
//   Named views (eng_var fields of eng_transformer / eng_tf_layer) point into
//   the tensors; a tensor may back several views (GPT-2's fused c_attn backs
//   wq, wk, wv; a tied embedding also backs the head). GPT-2's Conv1D weights
//   are stored [in, out] in files: a mapped GPT-2 keeps transposed copies of
//   those (`converted`), everything else stays mapped.
// - KV cache: owned by each sequence (eng_tf_seq, made by seq_new):
//   k and v [n_layers][n_kv_heads][max_len][head_dim] floats (head-major:
//   attention reads each head's rows front to back), written by step as
//   tokens are consumed. Nothing else is per-sequence.
// - step: the new tokens of all sequences are stacked into one [T_total, C]
//   activation matrix and every linear layer is ONE matrix product over all
//   rows (eng_linear_forward_rowwise → eng_matmul_nt_rowwise: weights are
//   read once per step, and a row's result never depends on its batch
//   neighbours, so a seeded request gives the same text whatever else runs;
//   no sgemm on this path, whatever M). Per layer, each sequence's new k/v rows are copied into
//   its cache and its queries attend over its own cache rows
//   (eng_attention_cached_forward). Only the last row of each sequence goes
//   through the final norm and the output head, straight into `logits`.
//   Working memory: one layer's activations for T_total rows, taken from the
//   worker's scratch tape arena after eng_tape_reset, so once the arena has
//   grown to the largest step seen, step does not allocate. Memory grows with
//   T_total: chunk long prompts into several steps (positions continue).
// - Training: eng_tf_forward writes the same architecture against eng_t_*
//   calls (grad-enabled tape) over a [B, T] batch; eng_tape_backward fills
//   every parameter's gradient. The serving step calls the same kernels
//   directly (so activation memory is one layer, not n_layers); the tests
//   hold both to the same PyTorch reference.
// - Thread safety: a loaded model is read-only during step; each worker
//   brings its own scratch tape; a sequence must not be in two steps at once.
#ifndef ENG_TRANSFORMER_H
#define ENG_TRANSFORMER_H
#include <jansson.h>             // json_t (config.json)
#include <stddef.h>              // size_t
#include <stdint.h>              // uint64_t
#include "engine/arch/lm.h"           // eng_lm, eng_lm_ops
#include "engine/arch/params.h"       // ENG_PARAM_HEAD
#include "engine/io/safetensors.h"  // eng_st_file
#include "engine/core/gemm_q8.h"      // eng_q8_matrix (int8 weights)
#include "engine/core/tape.h"         // eng_tape, eng_var

typedef enum {
    ENG_TF_GPT2,    // learned positions, layer norm + bias, GELU (tanh) MLP, tied head
    ENG_TF_LLAMA,   // RoPE, RMS norm, no biases, SwiGLU MLP, grouped-query attention
    ENG_TF__COUNT
} eng_tf_arch;

// "gpt2" / "llama" (also HF's model_type); eng_tf_arch_parse returns -1 for others.
const char *eng_tf_arch_name(eng_tf_arch a);
int eng_tf_arch_parse(const char *name);

// Hyperparameters. HF config.json keys in brackets (gpt2 / llama).
typedef struct {
    eng_tf_arch arch;
    int dim;              // C, model width [n_embd / hidden_size]
    int hidden_dim;       // H, MLP inner width [n_inner (null: 4*C) / intermediate_size]
    int n_layers;         // [n_layer / num_hidden_layers]
    int n_heads;          // NH, query heads [n_head / num_attention_heads]
    int n_kv_heads;       // NKV, key/value heads, divides NH [gpt2: NH / num_key_value_heads]
    int head_dim;         // hd = C / NH (even for llama)
    int vocab_size;       // V [vocab_size]
    int context_len;      // longest sequence [n_positions / max_position_embeddings]
    float norm_eps;       // [layer_norm_epsilon / rms_norm_eps]
    float rope_theta;     // llama: rotary base [rope_theta]
    int tied;             // 1: the output head is the token embedding [gpt2: always / tie_word_embeddings]
    int rope_interleaved; // llama: 1 = q/k rows in llama2.c model.bin order (RoPE pairs 2j, 2j+1),
                          //        0 = Hugging Face order (pairs j, j + hd/2); see ops_seq.h
    int bos_token_id;     // [bos_token_id], -1 when absent
    int eos_token_id;     // [eos_token_id], -1 when absent
} eng_tf_config;

// Reads an HF config.json object: "model_type" "gpt2" or "llama" and that
// family's keys (defaults as HF's for optional ones). Refuses what this
// engine does not implement (rope_scaling, attention/mlp biases, other
// activations) with a message naming the key. Returns 0 or -1 with *err.
int eng_tf_config_from_json(eng_tf_config *cfg, const json_t *config, char **err);
// The HF-style config.json for cfg (model_type, architectures, the family's
// keys), a new reference; eng_tf_config_from_json reads it back. HF layout
// is implied, so only save models with rope_interleaved == 0 weights (eng_tf_save converts).
json_t *eng_tf_config_to_json(const eng_tf_config *cfg);

// One parameter tensor and the views it backs.
enum { ENG_TF_MAX_VIEWS = 3 };
typedef enum {
    ENG_TF_T_MATRIX,   // weight matrix / embedding: init N(0, 0.02)
    ENG_TF_T_RESID,    // projection into the residual stream: N(0, 0.02 / sqrt(2 * n_layers))
    ENG_TF_T_NORM,     // norm gain: init 1
    ENG_TF_T_BIAS,     // bias: init 0
} eng_tf_tensor_kind;

typedef struct {
    eng_var *var;      // the view
    eng_q8_matrix *q8; // its int8 twin (matrices used by a matmul), or NULL
    size_t off;        // its first element within the tensor
    int ndim;
    int shape[2];
} eng_tf_view;

typedef struct {
    ENG_PARAM_HEAD;          // HF name (e.g. "h.0.attn.c_attn.weight"), shape [out, in], val, grad
    eng_tf_tensor_kind kind;
    int conv1d;              // 1: files store it [in, out] (GPT-2 Conv1D); transposed at load/save
    int rope_heads;          // q_proj / k_proj: heads whose rows follow the RoPE layout, else 0
    eng_q8_matrix q8;        // int8 weights (a quantized model; val is then NULL), else q8.q == NULL
    int n_views;
    eng_tf_view views[ENG_TF_MAX_VIEWS];
} eng_tf_tensor;

// Named views of one block. Vars the architecture lacks have val == NULL.
typedef struct {
    eng_var ln1_w, ln1_b;   // [C] norm before attention (ln_1 / input_layernorm); b gpt2 only
    eng_var wq, bq;         // [NH*hd, C], [NH*hd] (b gpt2 only)
    eng_var wk, bk;         // [NKV*hd, C], [NKV*hd]
    eng_var wv, bv;         // [NKV*hd, C], [NKV*hd]
    eng_var wo, bo;         // [C, NH*hd], [C]
    eng_var ln2_w, ln2_b;   // [C] norm before the MLP (ln_2 / post_attention_layernorm)
    eng_var w1, b1;         // [H, C], [H]: gpt2 mlp.c_fc; llama gate_proj (no bias)
    eng_var w3;             // [H, C]: llama up_proj
    eng_var w2, b2;         // [C, H], [C]: gpt2 mlp.c_proj; llama down_proj (no bias)
    eng_q8_matrix qwq, qwk, qwv, qwo, qw1, qw3, qw2;   // int8 twins of the matrices (q == NULL: fp32)
} eng_tf_layer;

typedef struct {
    eng_tf_config cfg;
    eng_var wte;             // [V, C] token embedding
    eng_var wpe;             // [context_len, C] position embedding (gpt2)
    eng_tf_layer *layers;    // [n_layers]
    eng_var lnf_w, lnf_b;    // [C] final norm (b gpt2 only)
    eng_var head;            // [V, C] output projection; tied: same val/grad as wte
    eng_q8_matrix qwte, qhead;   // int8 twins of wte (rows dequantized on lookup) and head, or q == NULL
    int q8_group;            // int8 weights' group size (a quantized model), else 0
    int8_t *q8_packed;       // owned: every int8 matrix in the kernels' packed layout
    eng_tf_tensor *tensors;  // [n_tensors] every parameter tensor, in save order
    int n_tensors;
    size_t n_params;         // trainable floats (sum of tensors[].n)
    float *params;           // [n_params] owned values (init_params / make_owned), or NULL
    float *grads;            // [n_params] gradients (enable_grads), or NULL
    float *converted;        // mapped GPT-2: its Conv1D weights transposed, owned; else NULL
    eng_st_file st;          // the mapped safetensors file, if loaded from one
    void *map;               // the mapped llama2.c model.bin, or NULL
    size_t map_len;          // its length in bytes
} eng_transformer;

// Builds the tensor table and views for cfg (checked: positive bounded
// dims, NH % NKV == 0, C % NH == 0, even hd for llama); no weights yet.
// Fields left 0 are derived: n_kv_heads = n_heads, head_dim = dim / n_heads;
// gpt2 is always tied. Returns 0 or -1 with *err (m is then cleared).
int eng_tf_init(eng_transformer *m, const eng_tf_config *cfg, char **err);
void eng_tf_free(eng_transformer *m);   // NULL-safe; frees/unmaps everything init/load made
// Owned parameters with GPT-2's init (see eng_tf_tensor_kind), seeded.
void eng_tf_init_params(eng_transformer *m, uint64_t seed);
// Allocates zeroed gradients and points every view's grad at them.
void eng_tf_enable_grads(eng_transformer *m);
void eng_tf_zero_grads(eng_transformer *m);
// Maps the weights of a safetensors file by HF name (GPT-2 names may carry
// a "transformer." prefix; F16/BF16 are converted). Shapes are checked.
// Returns 0 or -1 with *err naming the tensor.
int eng_tf_load_safetensors(eng_transformer *m, const char *path, char **err);
// Initialises m from a llama2.c legacy checkpoint: header of 7 int32 (dim,
// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: unshared
// classifier), seq_len), then fp32 weights in run.c's order, mapped
// read-only (rms eps 1e-5, theta 10000, rope_interleaved = 1, bos 1, eos 2).
// The file size must match the header exactly. Returns 0 or -1 with *err.
int eng_tf_open_llama2c(eng_transformer *m, const char *path, char **err);
// Copies mapped weights into owned, writable parameters (for fine-tuning);
// q/k rows of a llama2.c model are reordered to HF order (rope_interleaved
// becomes 0). No-op when already owned.
void eng_tf_make_owned(eng_transformer *m);
// Writes every parameter under its HF name (Conv1D transposed back, q/k in
// HF order) to a safetensors file atomically, metadata format=pt.
int eng_tf_save(const eng_transformer *m, const char *path, char **err);

// Training forward over tokens[B*T] (row b*T + t; T <= context_len), each
// row a separate sequence starting at position 0 -> logits [B*T, V].
eng_var *eng_tf_forward(eng_transformer *m, eng_tape *t, const int *tokens, int B, int T);
// Mean cross-entropy of next-token prediction -> [1]: targets[b*T + t] is the
// token that follows tokens[b*T + t] (from a window w of T+1 tokens per row:
// tokens = w[0..T), targets = w[1..T]). eng_tape_backward(t, loss) then
// accumulates every parameter's gradient (after eng_tf_enable_grads).
eng_var *eng_tf_loss(eng_transformer *m, eng_tape *t, const int *tokens, const int *targets, int B, int T);

// ---------------------------------------------------------------- model directories and serving
// Loads a model directory into a new heap model, given its parsed config.json:
//   {"format": "llama2c"[, "checkpoint": "model.bin"]}  -> llama2.c legacy file
//   {"model_type": "gpt2" | "llama", ...}             -> <dir>/model.safetensors
// (our trained models are the latter). Returns 0 and *out, or -1 with *err.
int eng_tf_load_dir(eng_transformer **out, const char *dir, const json_t *config, char **err);
void eng_tf_destroy(eng_transformer *m);   // NULL-safe: eng_tf_free + free

// ---------------------------------------------------------------- int8 weights (`inferd quantize`)
// A quantized directory is a Hugging Face-style one (config.json with
// model_type, model.safetensors) whose weight matrices are I8 tensors in our
// [out, in] layout, each with "<name>_scale" F32 [out, in / group]
// (gemm_q8.h: value = q * scale), and a "quantization" object in config.json.
// Stays fp32: norms, biases, GPT-2's position table, and any matrix whose
// input width the group does not divide. eng_tf_load_safetensors serves I8
// tensors through the int8 kernels (and dequantizes embedding rows); such a
// model cannot be trained (make_owned / enable_grads are for fp32 models).
typedef struct {
    int group;               // group size used
    int n_quantized;         // matrices written as int8
    size_t q8_params;        // their elements
    size_t fp32_params;      // elements left fp32
} eng_tf_quant_report;
// Reads any model directory eng_tf_load_dir serves (config.json parsed here)
// and writes out_dir: model.safetensors, config.json, the tokenizer files.
// group: 32 or 64. Refuses a missing or unsupported directory, an already
// quantized one, and out_dir == in_dir. Returns 0 or -1 with *err.
int eng_tf_quantize_dir(const char *in_dir, const char *out_dir, int group, eng_tf_quant_report *rep, char **err);

// The eng_lm interface (lm.h) over a heap model from eng_tf_load_dir (or
// eng_xcalloc + eng_tf_init + load/init_params): pass eng_tf_as_lm(m) with
// &eng_tf_lm_ops. ops->free(lm) is eng_tf_destroy. seq_new returns NULL (out of memory, or
// max_len not in 1..context_len). step requires n_tokens[i] >= 1, every
// token in [0, vocab_size), and seq_pos + n_tokens[i] <= max_len (asserted:
// validate client input before). logits[i * V ...] get sequence i's last token's logits.
extern const eng_lm_ops eng_tf_lm_ops;
eng_lm *eng_tf_as_lm(eng_transformer *m);

// A sequence's state (what eng_lm_seq points at for this architecture).
typedef struct {
    int max_len;   // tokens the cache holds
    int pos;       // tokens consumed so far
    int kv_dim;    // NKV * hd
    float *k;      // [n_layers][n_kv_heads][max_len][head_dim] keys (after RoPE)
    float *v;      // [n_layers][n_kv_heads][max_len][head_dim] values
} eng_tf_seq;

#endif
