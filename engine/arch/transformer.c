// transformer.c — GPT-2 / Llama decoder-only transformers (see
// transformer.h for the design: tensor table + views, KV cache per
// sequence, stacked-rows step, tape training forward).
#include "engine/arch/transformer.h"

#include <assert.h>             // assert (caller bugs only)
#include <fcntl.h>              // open
#include <limits.h>             // INT_MIN
#include <math.h>               // sqrtf
#include <stdio.h>              // snprintf
#include <stdlib.h>             // free
#include <string.h>             // memcpy, memset, strcmp, strerror
#include <errno.h>              // errno
#include <stdint.h>             // uintptr_t
#include <sys/mman.h>           // munmap, madvise
#include <sys/stat.h>           // fstat
#include <unistd.h>             // close
#include "engine/core/ops.h"         // eng_linear_forward, eng_gelu_forward
#include "engine/core/ops_par.h"     // eng_par_linear(s): linears split across the pool
#include "engine/core/ops_seq.h"     // norms, rope, attention, swiglu, embedding
#include "engine/core/pool.h"        // eng_pool_for: attention split by (sequence, head)
#include "engine/core/rng.h"         // eng_rng for init
#include "engine/core/tape_seq.h"    // eng_t_* sequence ops
#include "engine/io/weights_map.h"   // eng_weights_map: the checkpoint in memory
#include "engine/core/util.h"        // eng_errorf, eng_xmalloc, eng_xaligned

static const char *const arch_names[] = {[ENG_TF_GPT2] = "gpt2", [ENG_TF_LLAMA] = "llama"};
_Static_assert(sizeof arch_names / sizeof arch_names[0] == ENG_TF__COUNT, "arch_names out of step");

// Bounds on hyperparameters: far above any real model, low enough that no
// size computed from them overflows.
enum {
    TF_MAX_DIM = 1 << 16,
    TF_MAX_HIDDEN = 1 << 18,
    TF_MAX_LAYERS = 1024,
    TF_MAX_HEADS = 1024,
    TF_MAX_HEAD_DIM = 2048,
    TF_MAX_VOCAB = 1 << 22,
    TF_MAX_CONTEXT = 1 << 20,
    TF_REQUIRED = INT_MIN,      // cfg_int default meaning "the key must be present"
    LLAMA2C_HEADER = 7,         // int32 fields before the weights
    LLAMA2C_MAGIC = 0x616b3432, // "ak42": llama2.c's versioned export, not the legacy format
};

const char *eng_tf_arch_name(eng_tf_arch a) { return (unsigned)a < ENG_TF__COUNT ? arch_names[a] : "unknown"; }

int eng_tf_arch_parse(const char *name) {
    for (int a = 0; name && a < ENG_TF__COUNT; a++)
        if (strcmp(name, arch_names[a]) == 0) return a;
    return -1;
}

// ---------------------------------------------------------------- config.json

// Integer key in [min, max]; `def` when absent or null (TF_REQUIRED: an error).
static int cfg_int(const json_t *o, const char *key, int def, int min, int max, int *out, char **err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (def == TF_REQUIRED) return eng_errorf(err, "config.json: \"%s\" is required", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return eng_errorf(err, "config.json: \"%s\" must be an integer in [%d, %d]", key, min, max);
    *out = (int)json_integer_value(v);
    return 0;
}

// Positive number key; `def` when absent.
static int cfg_pos(const json_t *o, const char *key, double def, float *out, char **err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = (float)def; return 0; }
    if (!json_is_number(v) || !(json_number_value(v) > 0))
        return eng_errorf(err, "config.json: \"%s\" must be a positive number", key);
    *out = (float)json_number_value(v);
    return 0;
}

// A special-token id: an integer, the first of an array (Llama 3 lists
// several eos ids), or `def` when absent/null.
static int token_id(const json_t *o, const char *key, int def) {
    const json_t *v = json_object_get(o, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!json_is_integer(v)) return def;
    json_int_t x = json_integer_value(v);
    return x >= 0 && x < TF_MAX_VOCAB ? (int)x : def;
}

// A key that, when present and not null, must be one of the strings in `ok` (NULL-terminated).
static int cfg_oneof(const json_t *o, const char *key, const char *const *ok, char **err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    for (int i = 0; json_is_string(v) && ok[i]; i++)
        if (strcmp(json_string_value(v), ok[i]) == 0) return 0;
    return eng_errorf(err, "config.json: \"%s\" = %s is not supported (this engine implements %s)", key,
                      json_is_string(v) ? json_string_value(v) : "(not a string)", ok[0]);
}

static int parse_gpt2(eng_tf_config *c, const json_t *o, char **err) {
    static const char *const acts[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast", NULL};
    int n_positions;
    if (cfg_int(o, "n_embd", TF_REQUIRED, 1, TF_MAX_DIM, &c->dim, err) ||
        cfg_int(o, "n_layer", TF_REQUIRED, 1, TF_MAX_LAYERS, &c->n_layers, err) ||
        cfg_int(o, "n_head", TF_REQUIRED, 1, TF_MAX_HEADS, &c->n_heads, err) ||
        cfg_int(o, "vocab_size", TF_REQUIRED, 1, TF_MAX_VOCAB, &c->vocab_size, err) ||
        cfg_int(o, "n_ctx", 1024, 1, TF_MAX_CONTEXT, &n_positions, err) ||
        cfg_int(o, "n_positions", n_positions, 1, TF_MAX_CONTEXT, &c->context_len, err) ||
        cfg_int(o, "n_inner", 4 * c->dim, 1, TF_MAX_HIDDEN, &c->hidden_dim, err) ||
        cfg_pos(o, "layer_norm_epsilon", 1e-5, &c->norm_eps, err) ||
        cfg_oneof(o, "activation_function", acts, err))
        return -1;
    c->n_kv_heads = c->n_heads;
    c->tied = 1;
    c->bos_token_id = token_id(o, "bos_token_id", 50256);
    c->eos_token_id = token_id(o, "eos_token_id", 50256);
    return 0;
}

static int parse_llama(eng_tf_config *c, const json_t *o, char **err) {
    static const char *const acts[] = {"silu", NULL};
    const json_t *tie = json_object_get(o, "tie_word_embeddings");
    int head_dim;
    if (cfg_int(o, "hidden_size", TF_REQUIRED, 1, TF_MAX_DIM, &c->dim, err) ||
        cfg_int(o, "intermediate_size", TF_REQUIRED, 1, TF_MAX_HIDDEN, &c->hidden_dim, err) ||
        cfg_int(o, "num_hidden_layers", TF_REQUIRED, 1, TF_MAX_LAYERS, &c->n_layers, err) ||
        cfg_int(o, "num_attention_heads", TF_REQUIRED, 1, TF_MAX_HEADS, &c->n_heads, err) ||
        cfg_int(o, "num_key_value_heads", c->n_heads, 1, TF_MAX_HEADS, &c->n_kv_heads, err) ||
        cfg_int(o, "vocab_size", TF_REQUIRED, 1, TF_MAX_VOCAB, &c->vocab_size, err) ||
        cfg_int(o, "max_position_embeddings", 2048, 1, TF_MAX_CONTEXT, &c->context_len, err) ||
        cfg_int(o, "head_dim", c->dim / c->n_heads, 1, TF_MAX_HEAD_DIM, &head_dim, err) ||
        cfg_pos(o, "rms_norm_eps", 1e-6, &c->norm_eps, err) ||
        cfg_pos(o, "rope_theta", 10000.0, &c->rope_theta, err) ||
        cfg_oneof(o, "hidden_act", acts, err))
        return -1;
    if (head_dim * c->n_heads != c->dim)
        return eng_errorf(err, "config.json: \"head_dim\" %d * num_attention_heads %d != hidden_size %d "
                          "(not supported)", head_dim, c->n_heads, c->dim);
    const json_t *rs = json_object_get(o, "rope_scaling");
    if (rs && !json_is_null(rs)) return eng_errorf(err, "config.json: \"rope_scaling\" is not supported");
    if (json_is_true(json_object_get(o, "attention_bias")) || json_is_true(json_object_get(o, "mlp_bias")))
        return eng_errorf(err, "config.json: \"attention_bias\"/\"mlp_bias\" are not supported");
    if (tie && !json_is_boolean(tie)) return eng_errorf(err, "config.json: \"tie_word_embeddings\" must be a boolean");
    c->tied = json_is_true(tie);
    c->bos_token_id = token_id(o, "bos_token_id", 1);
    c->eos_token_id = token_id(o, "eos_token_id", 2);
    return 0;
}

int eng_tf_config_from_json(eng_tf_config *cfg, const json_t *config, char **err) {
    memset(cfg, 0, sizeof *cfg);
    const char *type = json_string_value(json_object_get(config, "model_type"));
    int a = eng_tf_arch_parse(type);
    if (a < 0) return eng_errorf(err, "config.json: \"model_type\" must be \"gpt2\" or \"llama\"");
    cfg->arch = (eng_tf_arch)a;
    if ((a == ENG_TF_GPT2 ? parse_gpt2 : parse_llama)(cfg, config, err) != 0) return -1;
    if (cfg->dim % cfg->n_heads != 0)
        return eng_errorf(err, "config.json: the width %d is not a multiple of the head count %d", cfg->dim, cfg->n_heads);
    cfg->head_dim = cfg->dim / cfg->n_heads;
    return 0;
}

json_t *eng_tf_config_to_json(const eng_tf_config *c) {
    json_t *o = json_object();
    json_object_set_new(o, "model_type", json_string(eng_tf_arch_name(c->arch)));
    if (c->arch == ENG_TF_GPT2) {
        json_object_set_new(o, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
        json_object_set_new(o, "n_embd", json_integer(c->dim));
        json_object_set_new(o, "n_layer", json_integer(c->n_layers));
        json_object_set_new(o, "n_head", json_integer(c->n_heads));
        json_object_set_new(o, "n_positions", json_integer(c->context_len));
        json_object_set_new(o, "n_ctx", json_integer(c->context_len));
        json_object_set_new(o, "n_inner", c->hidden_dim == 4 * c->dim ? json_null() : json_integer(c->hidden_dim));
        json_object_set_new(o, "layer_norm_epsilon", json_real(c->norm_eps));
        json_object_set_new(o, "activation_function", json_string("gelu_new"));
    } else {
        json_object_set_new(o, "architectures", json_pack("[s]", "LlamaForCausalLM"));
        json_object_set_new(o, "hidden_size", json_integer(c->dim));
        json_object_set_new(o, "intermediate_size", json_integer(c->hidden_dim));
        json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
        json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
        json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads ? c->n_kv_heads : c->n_heads));
        json_object_set_new(o, "max_position_embeddings", json_integer(c->context_len));
        json_object_set_new(o, "rms_norm_eps", json_real(c->norm_eps));
        json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
        json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tied));
        json_object_set_new(o, "hidden_act", json_string("silu"));
    }
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    if (c->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_token_id));
    if (c->eos_token_id >= 0) json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_id));
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    return o;
}

// ---------------------------------------------------------------- tensor table

static eng_tf_tensor *tensor_add(eng_transformer *m, const char *name, int ndim, int s0, int s1,
                                 eng_tf_tensor_kind kind) {
    eng_tf_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = s0;
    t->shape[1] = ndim == 2 ? s1 : 0;
    t->n = (size_t)s0 * (ndim == 2 ? (size_t)s1 : 1);
    t->kind = kind;
    m->n_params += t->n;
    return t;
}

// Makes `v` a view of t's elements [off, off + s0*s1) shaped [s0] or [s0, s1].
static void view_add(eng_tf_tensor *t, eng_var *v, size_t off, int ndim, int s0, int s1) {
    assert(t->n_views < ENG_TF_MAX_VIEWS);
    eng_tf_view *w = &t->views[t->n_views++];
    w->var = v;
    w->off = off;
    w->ndim = ndim;
    w->shape[0] = s0;
    w->shape[1] = s1;
}

// Names q as the int8 twin of t's view of v (used when t is loaded quantized).
static eng_tf_tensor *twin(eng_tf_tensor *t, const eng_var *v, eng_q8_matrix *q) {
    for (int j = 0; j < t->n_views; j++)
        if (t->views[j].var == v) t->views[j].q8 = q;
    return t;
}

// A tensor that backs exactly one view of its own shape.
static eng_tf_tensor *tensor_add1(eng_transformer *m, const char *name, int ndim, int s0, int s1,
                                  eng_tf_tensor_kind kind, eng_var *v) {
    eng_tf_tensor *t = tensor_add(m, name, ndim, s0, s1, kind);
    view_add(t, v, 0, ndim, s0, s1);
    return t;
}

// Points every view at its tensor's current values and gradients.
static void bind_views(eng_transformer *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        eng_tf_tensor *t = &m->tensors[i];
        for (int j = 0; j < t->n_views; j++) {
            eng_tf_view *w = &t->views[j];
            eng_var_param(w->var, t->val ? t->val + w->off : NULL, t->grad ? t->grad + w->off : NULL,
                          w->ndim, w->shape);
            if (w->q8) {   // rows of the int8 matrix (groups run along the rows, so any row block is whole)
                eng_q8_matrix none = {0};
                *w->q8 = t->q8.q ? eng_q8_matrix_rows(&t->q8, (int)(w->off / (size_t)t->shape[1]), w->shape[0]) : none;
            }
        }
    }
}

static const char *fmt_name(char *buf, size_t cap, const char *fmt, int layer) {
    snprintf(buf, cap, fmt, layer);
    return buf;
}

// Layer l's tensor named by the pattern `fmt` ("h.%d.ln_1.weight"), backing
// the single view v (or no view yet when v is NULL).
static eng_tf_tensor *layer_tensor(eng_transformer *m, const char *fmt, int l, int ndim, int s0, int s1,
                                   eng_tf_tensor_kind kind, eng_var *v) {
    char b[80];
    fmt_name(b, sizeof b, fmt, l);
    return v ? tensor_add1(m, b, ndim, s0, s1, kind, v) : tensor_add(m, b, ndim, s0, s1, kind);
}

// GPT-2: HF GPT2Model names; Conv1D matrices marked for transposition.
static void build_gpt2(eng_transformer *m) {
    const eng_tf_config *c = &m->cfg;
    int C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    eng_tf_tensor *wte = tensor_add1(m, "wte.weight", 2, V, C, ENG_TF_T_MATRIX, &m->wte);
    view_add(wte, &m->head, 0, 2, V, C);   // GPT-2's head is always the token embedding
    twin(twin(wte, &m->wte, &m->qwte), &m->head, &m->qhead);
    tensor_add1(m, "wpe.weight", 2, c->context_len, C, ENG_TF_T_MATRIX, &m->wpe);
    for (int l = 0; l < c->n_layers; l++) {
        eng_tf_layer *L = &m->layers[l];
        layer_tensor(m, "h.%d.ln_1.weight", l, 1, C, 0, ENG_TF_T_NORM, &L->ln1_w);
        layer_tensor(m, "h.%d.ln_1.bias", l, 1, C, 0, ENG_TF_T_BIAS, &L->ln1_b);
        // c_attn: one [3C, C] matrix (and [3C] bias) whose row blocks are q, k, v
        eng_tf_tensor *w = layer_tensor(m, "h.%d.attn.c_attn.weight", l, 2, 3 * C, C, ENG_TF_T_MATRIX, NULL);
        w->conv1d = 1;
        view_add(w, &L->wq, 0, 2, C, C);
        view_add(w, &L->wk, (size_t)C * C, 2, C, C);
        view_add(w, &L->wv, 2 * (size_t)C * C, 2, C, C);
        twin(twin(twin(w, &L->wq, &L->qwq), &L->wk, &L->qwk), &L->wv, &L->qwv);
        eng_tf_tensor *b = layer_tensor(m, "h.%d.attn.c_attn.bias", l, 1, 3 * C, 0, ENG_TF_T_BIAS, NULL);
        view_add(b, &L->bq, 0, 1, C, 0);
        view_add(b, &L->bk, (size_t)C, 1, C, 0);
        view_add(b, &L->bv, 2 * (size_t)C, 1, C, 0);
        twin(layer_tensor(m, "h.%d.attn.c_proj.weight", l, 2, C, C, ENG_TF_T_RESID, &L->wo), &L->wo, &L->qwo)->conv1d = 1;
        layer_tensor(m, "h.%d.attn.c_proj.bias", l, 1, C, 0, ENG_TF_T_BIAS, &L->bo);
        layer_tensor(m, "h.%d.ln_2.weight", l, 1, C, 0, ENG_TF_T_NORM, &L->ln2_w);
        layer_tensor(m, "h.%d.ln_2.bias", l, 1, C, 0, ENG_TF_T_BIAS, &L->ln2_b);
        twin(layer_tensor(m, "h.%d.mlp.c_fc.weight", l, 2, H, C, ENG_TF_T_MATRIX, &L->w1), &L->w1, &L->qw1)->conv1d = 1;
        layer_tensor(m, "h.%d.mlp.c_fc.bias", l, 1, H, 0, ENG_TF_T_BIAS, &L->b1);
        twin(layer_tensor(m, "h.%d.mlp.c_proj.weight", l, 2, C, H, ENG_TF_T_RESID, &L->w2), &L->w2, &L->qw2)->conv1d = 1;
        layer_tensor(m, "h.%d.mlp.c_proj.bias", l, 1, C, 0, ENG_TF_T_BIAS, &L->b2);
    }
    tensor_add1(m, "ln_f.weight", 1, C, 0, ENG_TF_T_NORM, &m->lnf_w);
    tensor_add1(m, "ln_f.bias", 1, C, 0, ENG_TF_T_BIAS, &m->lnf_b);
}

// Llama: HF LlamaForCausalLM names; q/k rows marked as following the RoPE layout.
static void build_llama(eng_transformer *m) {
    const eng_tf_config *c = &m->cfg;
    int C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    eng_tf_tensor *wte = tensor_add1(m, "model.embed_tokens.weight", 2, V, C, ENG_TF_T_MATRIX, &m->wte);
    if (c->tied) view_add(wte, &m->head, 0, 2, V, C);
    twin(twin(wte, &m->wte, &m->qwte), &m->head, &m->qhead);
    for (int l = 0; l < c->n_layers; l++) {
        eng_tf_layer *L = &m->layers[l];
#define LP "model.layers.%d."
        layer_tensor(m, LP "input_layernorm.weight", l, 1, C, 0, ENG_TF_T_NORM, &L->ln1_w);
        twin(layer_tensor(m, LP "self_attn.q_proj.weight", l, 2, qd, C, ENG_TF_T_MATRIX, &L->wq), &L->wq, &L->qwq)->rope_heads =
            c->n_heads;
        twin(layer_tensor(m, LP "self_attn.k_proj.weight", l, 2, kvd, C, ENG_TF_T_MATRIX, &L->wk), &L->wk, &L->qwk)->rope_heads =
            c->n_kv_heads;
        twin(layer_tensor(m, LP "self_attn.v_proj.weight", l, 2, kvd, C, ENG_TF_T_MATRIX, &L->wv), &L->wv, &L->qwv);
        twin(layer_tensor(m, LP "self_attn.o_proj.weight", l, 2, C, qd, ENG_TF_T_RESID, &L->wo), &L->wo, &L->qwo);
        layer_tensor(m, LP "post_attention_layernorm.weight", l, 1, C, 0, ENG_TF_T_NORM, &L->ln2_w);
        twin(layer_tensor(m, LP "mlp.gate_proj.weight", l, 2, H, C, ENG_TF_T_MATRIX, &L->w1), &L->w1, &L->qw1);
        twin(layer_tensor(m, LP "mlp.up_proj.weight", l, 2, H, C, ENG_TF_T_MATRIX, &L->w3), &L->w3, &L->qw3);
        twin(layer_tensor(m, LP "mlp.down_proj.weight", l, 2, C, H, ENG_TF_T_RESID, &L->w2), &L->w2, &L->qw2);
#undef LP
    }
    tensor_add1(m, "model.norm.weight", 1, C, 0, ENG_TF_T_NORM, &m->lnf_w);
    if (!c->tied) twin(tensor_add1(m, "lm_head.weight", 2, V, C, ENG_TF_T_MATRIX, &m->head), &m->head, &m->qhead);
}

// Finds a tensor by name, searching from *from on (then from the start) and
// leaving *from just after the hit. The llama2.c loader asks for layer 0, 1,
// 2, ... of one kind, in table order, so its 9 * n_layers lookups stay linear
// in the table size; a plain scan was quadratic (a 1024-layer model.bin
// header took seconds, found by fuzz/fuzz_llama2c.c).
static eng_tf_tensor *find_tensor(eng_transformer *m, const char *name, int *from) {
    for (int k = 0; k < m->n_tensors; k++) {
        int i = (*from + k) % m->n_tensors;
        if (strcmp(m->tensors[i].name, name) == 0) {
            *from = i + 1;
            return &m->tensors[i];
        }
    }
    return NULL;
}

int eng_tf_init(eng_transformer *m, const eng_tf_config *cfg, char **err) {
    memset(m, 0, sizeof *m);
    eng_tf_config fixed = *cfg;   // fill the derivable fields a caller left at 0
    if (fixed.n_kv_heads == 0) fixed.n_kv_heads = fixed.n_heads;
    if (fixed.head_dim == 0 && fixed.n_heads > 0) fixed.head_dim = fixed.dim / fixed.n_heads;
    if (fixed.arch == ENG_TF_GPT2) fixed.tied = 1;
    const eng_tf_config *c = &fixed;
    if ((unsigned)c->arch >= ENG_TF__COUNT) return eng_errorf(err, "transformer: unknown architecture");
    if (c->dim < 1 || c->dim > TF_MAX_DIM || c->hidden_dim < 1 || c->hidden_dim > TF_MAX_HIDDEN ||
        c->n_layers < 1 || c->n_layers > TF_MAX_LAYERS || c->n_heads < 1 || c->n_heads > TF_MAX_HEADS ||
        c->vocab_size < 1 || c->vocab_size > TF_MAX_VOCAB || c->context_len < 1 || c->context_len > TF_MAX_CONTEXT)
        return eng_errorf(err, "transformer: a dimension is out of range (dim %d, hidden %d, layers %d, heads %d, "
                          "vocab %d, context %d)", c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->vocab_size,
                          c->context_len);
    if (c->dim % c->n_heads != 0 || c->head_dim != c->dim / c->n_heads || c->head_dim > TF_MAX_HEAD_DIM)
        return eng_errorf(err, "transformer: dim %d must be n_heads %d * head_dim %d", c->dim, c->n_heads, c->head_dim);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
        return eng_errorf(err, "transformer: n_kv_heads %d must divide n_heads %d", c->n_kv_heads, c->n_heads);
    if (!(c->norm_eps > 0)) return eng_errorf(err, "transformer: the norm epsilon must be positive");
    if (c->arch == ENG_TF_GPT2 && c->n_kv_heads != c->n_heads)
        return eng_errorf(err, "transformer: gpt2 has n_kv_heads == n_heads");
    if (c->arch == ENG_TF_LLAMA && (c->head_dim % 2 != 0 || !(c->rope_theta > 0)))
        return eng_errorf(err, "transformer: llama needs an even head_dim (%d) and rope_theta > 0", c->head_dim);
    m->cfg = fixed;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->tensors = calloc(4 + 12 * (size_t)c->n_layers, sizeof *m->tensors);
    if (!m->layers || !m->tensors) {
        free(m->layers);
        free(m->tensors);
        memset(m, 0, sizeof *m);
        return eng_errorf(err, "out of memory for %d layers", c->n_layers);
    }
    if (c->arch == ENG_TF_GPT2) build_gpt2(m);
    else build_llama(m);
    bind_views(m);   // shapes now, values once loaded or initialised
    return 0;
}

// Drops whatever backs the values (mapping, owned copies); the table stays.
static void release_weights(eng_transformer *m) {
    eng_st_close(&m->st);
    if (m->map) munmap(m->map, m->map_len);
    m->map = NULL;
    m->map_len = 0;
    free(m->converted);
    m->converted = NULL;
    free(m->params);
    m->params = NULL;
    free(m->q8_packed);
    m->q8_packed = NULL;
    m->q8_group = 0;
    eng_params_clear_values(ENG_PARAM_TABLE(m->tensors, m->n_tensors));
    for (int i = 0; i < m->n_tensors; i++) memset(&m->tensors[i].q8, 0, sizeof m->tensors[i].q8);
}

void eng_tf_free(eng_transformer *m) {
    if (!m) return;
    release_weights(m);
    free(m->grads);
    free(m->tensors);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

// Points each tensor's values (grads = 0) or gradients (grads = 1) at
// consecutive slices of `base`, in table order.
static void carve(eng_transformer *m, float *base, int grads) {
    eng_params_carve(ENG_PARAM_TABLE(m->tensors, m->n_tensors), base, grads);
    bind_views(m);
}

void eng_tf_init_params(eng_transformer *m, uint64_t seed) {
    release_weights(m);
    m->params = eng_xaligned(m->n_params * sizeof(float));
    carve(m, m->params, 0);
    m->cfg.rope_interleaved = 0;
    eng_rng rng;
    eng_rng_seed(&rng, seed);
    float std_resid = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        eng_tf_tensor *t = &m->tensors[i];
        for (size_t k = 0; k < t->n; k++)
            switch (t->kind) {
            case ENG_TF_T_MATRIX: t->val[k] = 0.02f * eng_rng_normal(&rng); break;
            case ENG_TF_T_RESID: t->val[k] = std_resid * eng_rng_normal(&rng); break;
            case ENG_TF_T_NORM: t->val[k] = 1.0f; break;
            case ENG_TF_T_BIAS: t->val[k] = 0.0f; break;
            }
    }
}

void eng_tf_enable_grads(eng_transformer *m) {
    free(m->grads);
    m->grads = eng_params_new_grads(ENG_PARAM_TABLE(m->tensors, m->n_tensors), m->n_params);
    bind_views(m);
}

void eng_tf_zero_grads(eng_transformer *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

// ---------------------------------------------------------------- layout conversions

// dst[cols, rows] = src[rows, cols]^T
static void transpose(float *dst, const float *src, int rows, int cols) {
    enum { TB = 32 };   // tile: both sides stay in cache
    for (int r0 = 0; r0 < rows; r0 += TB)
        for (int c0 = 0; c0 < cols; c0 += TB)
            for (int r = r0; r < rows && r < r0 + TB; r++)
                for (int c = c0; c < cols && c < c0 + TB; c++)
                    dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

// q/k weight rows from llama2.c order (within each head, pair j is rows 2j,
// 2j+1) to HF order (rows j, j + hd/2): what llama2.c's export.py undoes
// with permute_reverse. w[heads*hd, cols].
static void rope_rows_to_hf(float *dst, const float *src, int heads, int hd, int cols) {
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < hd / 2; j++)
            for (int s = 0; s < 2; s++)
                memcpy(dst + ((size_t)h * hd + (size_t)s * (hd / 2) + j) * cols,
                       src + ((size_t)h * hd + 2 * (size_t)j + s) * cols, (size_t)cols * sizeof(float));
}

// ---------------------------------------------------------------- loading

// An int8 tensor (what `inferd quantize` writes): e = I8 [out, in] in our
// layout (Conv1D weights too), "<name>_scale" = F32 [out, in / group].
// Sets t->q8 (unpacked; load_safetensors packs them all at the end).
static int load_q8(eng_transformer *m, eng_tf_tensor *t, const eng_st_tensor *e, const char *path, char **err) {
    if (t->ndim != 2 || t->kind == ENG_TF_T_NORM || t->kind == ENG_TF_T_BIAS)
        return eng_errorf(err, "%s: tensor \"%s\" is int8, but only weight matrices can be", path, t->name);
    if (e->ndim != 2 || e->shape[0] != t->shape[0] || e->shape[1] != t->shape[1])
        return eng_errorf(err, "%s: int8 tensor \"%s\" must have shape [%d, %d] (rows are outputs)", path, t->name,
                          t->shape[0], t->shape[1]);
    char sname[96];
    snprintf(sname, sizeof sname, "%s_scale", t->name);
    const eng_st_tensor *se = eng_st_find(&m->st, sname);
    if (!se || se->ndim != 2 || se->shape[0] != t->shape[0] || se->shape[1] < 1 || t->shape[1] % se->shape[1] != 0)
        return eng_errorf(err, "%s: int8 tensor \"%s\" needs \"%s\" of shape [%d, %d / group size]", path, t->name,
                          sname, t->shape[0], t->shape[1]);
    int group = t->shape[1] / (int)se->shape[1];
    if (group != 32 && group != 64)
        return eng_errorf(err, "%s: \"%s\": group size %d (only 32 and 64 are served)", path, sname, group);
    if (m->q8_group && m->q8_group != group)
        return eng_errorf(err, "%s: \"%s\": group size %d, but other tensors use %d", path, sname, group, m->q8_group);
    const float *sc = eng_st_get(&m->st, sname, 2, se->shape, err);
    if (!sc) return -1;
    m->q8_group = group;
    t->q8 = (eng_q8_matrix){.q = e->raw, .s = sc, .n = t->shape[0], .k = t->shape[1], .group = group};
    t->val = NULL;
    return 0;
}

// Copies every int8 tensor into the kernels' packed layout (one owned block).
static int pack_q8(eng_transformer *m, const char *path, char **err) {
    size_t total = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const eng_q8_matrix *q = &m->tensors[i].q8;
        if (q->q) total += (size_t)q->n * eng_q8_packed_row_bytes(q->k, q->group);
    }
    if (!total) return 0;
    if (!(m->q8_packed = eng_aligned(total))) return eng_errorf(err, "%s: out of memory for %zu bytes of int8 weights", path, total);
    size_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        eng_q8_matrix *q = &m->tensors[i].q8;
        if (!q->q) continue;
        eng_q8_pack(m->q8_packed + off, q->q, q->n, q->k, q->group);
        q->p = m->q8_packed + off;
        off += (size_t)q->n * eng_q8_packed_row_bytes(q->k, q->group);
    }
    return 0;
}

int eng_tf_load_safetensors(eng_transformer *m, const char *path, char **err) {
    release_weights(m);
    if (eng_st_open(&m->st, path, err) != 0) return -1;
    size_t n_conv = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const eng_st_tensor *e = eng_st_find(&m->st, m->tensors[i].name);
        if (m->tensors[i].conv1d && !(e && strcmp(e->dtype, "I8") == 0)) n_conv += m->tensors[i].n;
    }
    if (n_conv && !(m->converted = eng_aligned(n_conv * sizeof(float)))) {
        eng_errorf(err, "%s: out of memory for %zu converted weights", path, n_conv);
        goto fail;
    }
    size_t off = 0;
    char alt[96];
    for (int i = 0; i < m->n_tensors; i++) {
        eng_tf_tensor *t = &m->tensors[i];
        const eng_st_tensor *e = eng_st_find(&m->st, t->name);
        if (!e && m->cfg.arch == ENG_TF_GPT2) {   // GPT2LMHeadModel saves "transformer.h.0...."
            snprintf(alt, sizeof alt, "transformer.%s", t->name);
            e = eng_st_find(&m->st, alt);
        }
        if (!e) {
            eng_errorf(err, "%s: tensor \"%s\" is missing%s", path, t->name,
                       strcmp(t->name, "lm_head.weight") == 0 ? " (or set \"tie_word_embeddings\": true)" : "");
            goto fail;
        }
        if (strcmp(e->dtype, "I8") == 0) {
            if (load_q8(m, t, e, path, err) != 0) goto fail;
            continue;
        }
        // Conv1D weights are [in, out] in the file
        int64_t shape[2] = {t->conv1d ? t->shape[1] : t->shape[0], t->conv1d ? t->shape[0] : t->shape[1]};
        const float *p = eng_st_get(&m->st, e->name, t->ndim, shape, err);
        if (!p) goto fail;
        if (t->conv1d) {
            t->val = m->converted + off;
            transpose(t->val, p, t->shape[1], t->shape[0]);
            off += t->n;
        } else {
            t->val = (float *)p;   // read-only mapping: serving never writes weights
        }
    }
    if (pack_q8(m, path, err) != 0) goto fail;
    bind_views(m);
    return 0;
fail:
    release_weights(m);
    bind_views(m);
    return -1;
}

int eng_tf_open_llama2c(eng_transformer *m, const char *path, char **err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return eng_errorf(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return eng_errorf(err, "%s: %s", path, strerror(e));
    }
    size_t len = (size_t)st.st_size;
    if (len < LLAMA2C_HEADER * sizeof(int32_t)) {
        close(fd);
        return eng_errorf(err, "%s: too short for a llama2.c checkpoint header", path);
    }
    void *map = eng_weights_map(fd, len);   // on huge pages when it pays (weights_map.h)
    int map_errno = errno;
    close(fd);
    if (!map) return eng_errorf(err, "%s: reading the weights: %s", path, strerror(map_errno));

    int32_t h[LLAMA2C_HEADER];
    memcpy(h, map, sizeof h);
    if ((uint32_t)h[0] == LLAMA2C_MAGIC) {
        munmap(map, len);
        return eng_errorf(err, "%s: a versioned llama2.c export (magic \"ak42\"); only the legacy format "
                          "(export.py --version 0) is supported", path);
    }
    int64_t vocab = h[5] < 0 ? -(int64_t)h[5] : h[5];   // negative: unshared classifier
    eng_tf_config c = {
        .arch = ENG_TF_LLAMA, .dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3],
        .n_kv_heads = h[4], .vocab_size = vocab > TF_MAX_VOCAB ? 0 : (int)vocab, .context_len = h[6],
        .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied = h[5] > 0, .rope_interleaved = 1,
        .bos_token_id = 1, .eos_token_id = 2,   // run.c's constants and SentencePiece's ids
    };
    c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
    char *why = NULL;
    if (eng_tf_init(m, &c, &why) != 0) {
        munmap(map, len);
        eng_errorf(err, "%s: bad llama2.c header: %s", path, why ? why : "");
        free(why);
        return -1;
    }
    // run.c's order: every tensor kind stacked over layers, then the final
    // norm, two legacy RoPE tables of seq_len * hd/2, then the classifier if unshared.
    size_t C = (size_t)c.dim, H = (size_t)c.hidden_dim, L = (size_t)c.n_layers, V = (size_t)c.vocab_size;
    size_t qd = (size_t)c.n_heads * c.head_dim, kvd = (size_t)c.n_kv_heads * c.head_dim;
    size_t floats = V * C + L * C + L * qd * C + 2 * L * kvd * C + L * C * qd + L * C + 3 * L * H * C + C +
                    (size_t)c.context_len * c.head_dim + (c.tied ? 0 : V * C);
    size_t want = LLAMA2C_HEADER * sizeof(int32_t) + floats * sizeof(float);
    if (len != want) {
        eng_tf_free(m);
        munmap(map, len);
        return eng_errorf(err, "%s: %zu bytes, but its header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, "
                          "seq_len %d) implies %zu: truncated, or not a legacy llama2.c checkpoint", path, len,
                          c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, h[5], c.context_len, want);
    }
    m->map = map;
    m->map_len = len;
    float *p = (float *)((char *)map + LLAMA2C_HEADER * sizeof(int32_t));
    // Per-layer tensors in file order: name pattern, size class (index into per_layer).
    static const struct { const char *fmt; int kind; } stacked[] = {
        {"model.layers.%d.input_layernorm.weight", 0}, {"model.layers.%d.self_attn.q_proj.weight", 1},
        {"model.layers.%d.self_attn.k_proj.weight", 2}, {"model.layers.%d.self_attn.v_proj.weight", 2},
        {"model.layers.%d.self_attn.o_proj.weight", 1}, {"model.layers.%d.post_attention_layernorm.weight", 0},
        {"model.layers.%d.mlp.gate_proj.weight", 3}, {"model.layers.%d.mlp.down_proj.weight", 3},
        {"model.layers.%d.mlp.up_proj.weight", 3},
    };
    const size_t per_layer[] = {C, qd * C, kvd * C, H * C};
    int cur = 0;   // find_tensor's cursor
    find_tensor(m, "model.embed_tokens.weight", &cur)->val = p;
    p += V * C;
    char b[80];
    for (size_t s = 0; s < sizeof stacked / sizeof stacked[0]; s++)
        for (int l = 0; l < c.n_layers; l++) {
            find_tensor(m, fmt_name(b, sizeof b, stacked[s].fmt, l), &cur)->val = p;
            p += per_layer[stacked[s].kind];
        }
    find_tensor(m, "model.norm.weight", &cur)->val = p;
    p += C + (size_t)c.context_len * c.head_dim;
    if (!c.tied) find_tensor(m, "lm_head.weight", &cur)->val = p;
    bind_views(m);
    return 0;
}

// Tensor i's values in HF layout (llama2.c q/k rows reordered), for make_owned.
static void copy_to_hf(void *ctx, int i, float *dst, const eng_param *p) {
    const eng_transformer *m = ctx;
    const eng_tf_tensor *t = &m->tensors[i];
    if (t->rope_heads && m->cfg.rope_interleaved)
        rope_rows_to_hf(dst, t->val, t->rope_heads, m->cfg.head_dim, t->shape[1]);
    else
        memcpy(dst, t->val, t->n * sizeof(float));
}

// Tensor i in the file's layout: Conv1D weights back to [in, out], llama2.c
// q/k rows in HF order; NULL when the values are already as the file wants.
static float *export_hf(void *ctx, int i, const eng_param *p, int shape[2]) {
    const eng_transformer *m = ctx;
    const eng_tf_tensor *t = &m->tensors[i];
    float *tmp = NULL;
    if (t->conv1d) {   // back to Conv1D's [in, out]
        tmp = eng_xmalloc(t->n * sizeof(float));
        transpose(tmp, t->val, t->shape[0], t->shape[1]);
        shape[0] = t->shape[1];
        shape[1] = t->shape[0];
    } else if (t->rope_heads && m->cfg.rope_interleaved) {
        tmp = eng_xmalloc(t->n * sizeof(float));
        rope_rows_to_hf(tmp, t->val, t->rope_heads, m->cfg.head_dim, t->shape[1]);
    }
    return tmp;
}

void eng_tf_make_owned(eng_transformer *m) {
    if (m->params) return;
    float *p = eng_params_gather(ENG_PARAM_TABLE(m->tensors, m->n_tensors), m->n_params, copy_to_hf, m);
    release_weights(m);
    m->params = p;
    m->cfg.rope_interleaved = 0;
    carve(m, p, 0);
}

int eng_tf_save(const eng_transformer *m, const char *path, char **err) {
    return eng_params_save(ENG_PARAM_TABLE(m->tensors, m->n_tensors), path, export_hf, (void *)m, err);
}

// A relative path without ".." components (config.json names files inside the model directory).
static int safe_relative(const char *p) {
    if (!p || !*p || p[0] == '/') return 0;
    for (const char *s = p; *s; s++)
        if (s[0] == '.' && s[1] == '.' && (s == p || s[-1] == '/') && (s[2] == '/' || s[2] == 0)) return 0;
    return 1;
}

int eng_tf_load_dir(eng_transformer **out, const char *dir, const json_t *config, char **err) {
    *out = NULL;
    eng_transformer *m = calloc(1, sizeof *m);
    if (!m) return eng_errorf(err, "%s: out of memory", dir);
    char path[4096];
    const char *format = json_string_value(json_object_get(config, "format"));
    if (format && strcmp(format, "llama2c") == 0) {
        const json_t *ck = json_object_get(config, "checkpoint");
        const char *file = ck ? json_string_value(ck) : "model.bin";
        if (!safe_relative(file)) {
            free(m);
            return eng_errorf(err, "%s/config.json: \"checkpoint\" must be a relative file name inside the "
                              "model directory", dir);
        }
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (eng_tf_open_llama2c(m, path, err) != 0) { free(m); return -1; }
    } else {
        eng_tf_config cfg;
        char *why = NULL;
        if (eng_tf_config_from_json(&cfg, config, &why) != 0 || eng_tf_init(m, &cfg, &why) != 0) {
            eng_errorf(err, "%s: %s", dir, why ? why : "bad config.json");
            free(why);
            free(m);
            return -1;
        }
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (eng_tf_load_safetensors(m, path, err) != 0) { eng_tf_destroy(m); return -1; }
    }
    *out = m;
    return 0;
}

void eng_tf_destroy(eng_transformer *m) {
    if (!m) return;
    eng_tf_free(m);
    free(m);
}

// ---------------------------------------------------------------- training forward (tape)

// A bias view, or NULL for the architectures without biases.
static eng_var *opt(eng_var *v) { return v->val ? v : NULL; }

static eng_var *t_norm(const eng_transformer *m, eng_tape *t, eng_var *x, eng_var *w, eng_var *b) {
    return m->cfg.arch == ENG_TF_GPT2 ? eng_t_layernorm(t, x, w, b, m->cfg.norm_eps)
                                      : eng_t_rmsnorm(t, x, w, m->cfg.norm_eps);
}

eng_var *eng_tf_forward(eng_transformer *m, eng_tape *t, const int *tokens, int B, int T) {
    const eng_tf_config *c = &m->cfg;
    int N = B * T, NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim;
    int gpt2 = c->arch == ENG_TF_GPT2;
    assert(T >= 1 && T <= c->context_len);
    int *pos = eng_arena_alloc(&t->arena, (size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) pos[n] = n % T;
    eng_var *x = eng_t_embedding(t, &m->wte, tokens, N);                  // [N, C]
    float *cos_t = NULL, *sin_t = NULL;                                    // [N, hd/2]
    if (gpt2) {
        x = eng_t_add(t, x, eng_t_embedding(t, &m->wpe, pos, N));
    } else {
        cos_t = eng_arena_alloc(&t->arena, (size_t)N * (hd / 2) * sizeof(float));
        sin_t = eng_arena_alloc(&t->arena, (size_t)N * (hd / 2) * sizeof(float));
        eng_rope_table(cos_t, sin_t, pos, N, hd, c->rope_theta);
    }
    for (int l = 0; l < c->n_layers; l++) {
        eng_tf_layer *L = &m->layers[l];
        eng_var *h = t_norm(m, t, x, &L->ln1_w, &L->ln1_b);
        eng_var *q = eng_t_linear(t, h, &L->wq, opt(&L->bq));            // [N, NH*hd]
        eng_var *k = eng_t_linear(t, h, &L->wk, opt(&L->bk));            // [N, NKV*hd]
        eng_var *v = eng_t_linear(t, h, &L->wv, opt(&L->bv));            // [N, NKV*hd]
        if (!gpt2) {
            q = eng_t_rope(t, q, cos_t, sin_t, NH, hd, c->rope_interleaved);
            k = eng_t_rope(t, k, cos_t, sin_t, NKV, hd, c->rope_interleaved);
        }
        eng_var *a = eng_t_attention(t, q, k, v, B, T, NH, NKV);          // [N, NH*hd]
        x = eng_t_add(t, x, eng_t_linear(t, a, &L->wo, opt(&L->bo)));
        h = t_norm(m, t, x, &L->ln2_w, &L->ln2_b);
        eng_var *f;
        if (gpt2) f = eng_t_gelu(t, eng_t_linear(t, h, &L->w1, &L->b1));   // [N, H]
        else f = eng_t_swiglu(t, eng_t_linear(t, h, &L->w1, NULL), eng_t_linear(t, h, &L->w3, NULL));
        x = eng_t_add(t, x, eng_t_linear(t, f, &L->w2, opt(&L->b2)));
    }
    x = t_norm(m, t, x, &m->lnf_w, &m->lnf_b);
    return eng_t_linear(t, x, &m->head, NULL);                             // [N, V]
}

eng_var *eng_tf_loss(eng_transformer *m, eng_tape *t, const int *tokens, const int *targets, int B, int T) {
    return eng_t_cross_entropy(t, eng_tf_forward(m, t, tokens, B, T), targets);
}

// ---------------------------------------------------------------- serving (eng_lm_ops)

static const eng_transformer *tf_of(const eng_lm *lm) { return (const eng_transformer *)lm; }

eng_lm *eng_tf_as_lm(eng_transformer *m) { return (eng_lm *)m; }

static size_t tf_seq_bytes(const eng_lm *lm, int max_len) {
    const eng_tf_config *c = &tf_of(lm)->cfg;
    return sizeof(eng_tf_seq) +
           2 * (size_t)c->n_layers * (size_t)max_len * (size_t)c->n_kv_heads * c->head_dim * sizeof(float);
}

static eng_lm_seq *tf_seq_new(const eng_lm *lm, int max_len) {
    const eng_tf_config *c = &tf_of(lm)->cfg;
    if (max_len < 1 || max_len > c->context_len) return NULL;
    eng_tf_seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->max_len = max_len;
    s->kv_dim = c->n_kv_heads * c->head_dim;
    size_t n = (size_t)c->n_layers * (size_t)max_len * (size_t)s->kv_dim;
    s->k = eng_aligned(2 * n * sizeof(float));   // rows are written before they are read
    if (!s->k) { free(s); return NULL; }
#ifdef MADV_POPULATE_WRITE
    // Fault the cache in now, in one call, rather than a page at a time as
    // steps write it: each fault is a trap (a costly VM exit on a virtual
    // machine), and they land inside the step of every sequence sharing it.
    // The zeroing costs the same either way. Failure (an older kernel) only
    // leaves the faults where they were.
    uintptr_t a = ((uintptr_t)s->k + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)(s->k + 2 * n)) & ~(uintptr_t)4095;
    if (e > a) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#endif
    s->v = s->k + n;
    return (eng_lm_seq *)s;
}

static void tf_seq_free(eng_lm_seq *ls) {
    eng_tf_seq *s = (eng_tf_seq *)ls;
    if (!s) return;
    free(s->k);
    free(s);
}

static int tf_seq_pos(const eng_lm_seq *s) { return ((const eng_tf_seq *)s)->pos; }

static void norm_rows(const eng_transformer *m, float *out, const float *in, const eng_var *w,
                      const eng_var *b, int N) {
    if (m->cfg.arch == ENG_TF_GPT2)
        eng_layernorm_forward(out, NULL, NULL, in, w->val, b->val, N, m->cfg.dim, m->cfg.norm_eps);
    else
        eng_rmsnorm_forward(out, NULL, in, w->val, N, m->cfg.dim, m->cfg.norm_eps);
}

static float *scratch_floats(eng_tape *t, size_t n) { return eng_arena_alloc(&t->arena, n * sizeof(float)); }

// The batched step (lm.h). Rows r = the new tokens of seqs[0], then of
// seqs[1], ...; the same forward as eng_tf_forward, kernel by kernel, with
// attention against each sequence's cache.
// One step's working set for T stacked rows, reused by every layer (from the
// worker's scratch arena).
typedef struct {
    int T;                 // rows: the new tokens of all sequences
    int *ids, *pos;        // [T] token ids, positions
    float *x;              // [T, C] residual stream
    float *h;              // [T, C] normed input / block output
    float *q, *k, *v;      // [T, NH*hd], [T, NKV*hd], [T, NKV*hd]
    float *att;            // [T, NH*hd] attention output
    float *f1, *f3;        // [T, H] MLP hidden (gate), llama's up (NULL for GPT-2)
    float *sc;             // attention scores: sc_floats per pool thread
    size_t sc_floats;
    int *row0;             // [n] first row of each sequence
    float *cos_t, *sin_t;  // [T, hd/2] RoPE tables (llama), else NULL
    void *qmem;            // int8 models: room for T quantized rows of the widest input
    eng_q8_rows qa;        // the rows last quantized (the next matmuls' input)
} tf_work;

// Sizes and takes the working set; fills ids/pos from the sequences' new tokens.
static void work_init(tf_work *w, const eng_transformer *m, eng_tape *scratch, eng_lm_seq **seqs,
                      const int *const *tokens, const int *n_tokens, int n) {
    const eng_tf_config *c = &m->cfg;
    int C = c->dim, Hd = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int T = 0;
    size_t att_floats = 0;
    for (int i = 0; i < n; i++) {
        const eng_tf_seq *s = (const eng_tf_seq *)seqs[i];
        assert(n_tokens[i] >= 1 && s->pos + n_tokens[i] <= s->max_len);
        // n * max_len >= eng_attention_cached_scratch(n, pos): sized by the
        // sequence's capacity, so decode steps do not grow it position by position
        size_t need = (size_t)n_tokens[i] * (size_t)s->max_len;
        att_floats = need > att_floats ? need : att_floats;
        T += n_tokens[i];
    }
    w->T = T;
    w->ids = eng_arena_alloc(&scratch->arena, (size_t)T * sizeof(int));
    w->pos = eng_arena_alloc(&scratch->arena, (size_t)T * sizeof(int));
    w->x = scratch_floats(scratch, (size_t)T * C);
    w->h = scratch_floats(scratch, (size_t)T * C);
    w->q = scratch_floats(scratch, (size_t)T * qd);
    w->k = scratch_floats(scratch, (size_t)T * kvd);
    w->v = scratch_floats(scratch, (size_t)T * kvd);
    w->att = scratch_floats(scratch, (size_t)T * qd);
    w->f1 = scratch_floats(scratch, (size_t)T * Hd);
    w->f3 = c->arch == ENG_TF_GPT2 ? NULL : scratch_floats(scratch, (size_t)T * Hd);
    w->sc_floats = att_floats;
    w->sc = scratch_floats(scratch, att_floats * (size_t)eng_pool_threads());
    w->row0 = eng_arena_alloc(&scratch->arena, (size_t)n * sizeof(int));
    w->cos_t = w->sin_t = NULL;
    w->qmem = NULL;
    if (m->q8_group) {
        int kmax = C > qd ? C : qd;
        kmax = Hd > kmax ? Hd : kmax;
        // groups that do not divide a width leave that matrix fp32: size for the widest anyway
        w->qmem = eng_arena_alloc(&scratch->arena, eng_q8_rows_bytes(T, (kmax + m->q8_group - 1) / m->q8_group *
                                                                            m->q8_group, m->q8_group));
    }
    for (int i = 0, r = 0; i < n; i++) {
        const eng_tf_seq *s = (const eng_tf_seq *)seqs[i];
        w->row0[i] = r;
        for (int j = 0; j < n_tokens[i]; j++, r++) {
            assert(tokens[i][j] >= 0 && tokens[i][j] < c->vocab_size);
            w->ids[r] = tokens[i][j];
            w->pos[r] = s->pos + j;
        }
    }
}

// Quantizes rows in[T, K] into w->qa when any of the matmuls that read
// them has int8 weights (`q` lists them, NULL-terminated).
static void quant_rows(tf_work *w, const float *in, int T, int K, const eng_q8_matrix *const *q) {
    for (; *q; q++)
        if ((*q)->q) {
            eng_q8_rows_init(&w->qa, w->qmem, T, K, (*q)->group);
            eng_q8_quantize_rows(&w->qa, in, K);
            return;
        }
}

// One linear layer of a pool split (ops_par.h): its int8 twin when the
// model has one (on w->qa, quant_rows of the input), else the fp32 weights.
static eng_par_lin plin(float *out, const eng_var *wt, const eng_q8_matrix *q, const float *b, int OC) {
    return (eng_par_lin){.out = out, .w = wt->val, .b = b, .OC = OC, .q8 = q->q ? q : NULL};
}

// x = token embedding (+ GPT-2's position embedding); llama: the RoPE tables.
static void embed_rows(const eng_transformer *m, tf_work *w, eng_tape *scratch) {
    const eng_tf_config *c = &m->cfg;
    int T = w->T, C = c->dim, hd = c->head_dim;
    if (m->qwte.q)   // an int8 embedding: its rows dequantized
        for (int r = 0; r < T; r++) eng_q8_dequantize_row(w->x + (size_t)r * C, &m->qwte, w->ids[r]);
    else
        eng_embedding_forward(w->x, m->wte.val, w->ids, T, C);
    if (c->arch == ENG_TF_GPT2) {
        eng_embedding_forward(w->h, m->wpe.val, w->pos, T, C);
        eng_add_forward(w->x, w->x, w->h, (size_t)T * C);
    } else {
        w->cos_t = scratch_floats(scratch, (size_t)T * (hd / 2));
        w->sin_t = scratch_floats(scratch, (size_t)T * (hd / 2));
        eng_rope_table(w->cos_t, w->sin_t, w->pos, T, hd, c->rope_theta);
    }
}

// Attention of one layer split by (sequence, kv head): task t is kv head
// t % NKV of sequence t / NKV. It first copies that head's new key/value
// rows into the sequence's cache (in parallel, and into the cache of the
// thread about to read them), then runs the query heads that share it
// over the cache with the running thread's scratch. A head's result does
// not depend on which thread computes it.
typedef struct {
    const eng_transformer *m;
    int l;
    tf_work *w;
    eng_lm_seq **seqs;
    const int *n_tokens;
} att_job;

static void att_task(void *ctx, int t) {
    const att_job *J = ctx;
    const eng_tf_config *c = &J->m->cfg;
    int NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim, qd = NH * hd, kvd = NKV * hd, rep = NH / NKV;
    int i = t / NKV, g = t % NKV, n = J->n_tokens[i];
    eng_tf_seq *s = (eng_tf_seq *)J->seqs[i];
    size_t layer_off = (size_t)J->l * s->max_len * kvd, r = (size_t)J->w->row0[i];
    float *kc = s->k + layer_off, *vc = s->v + layer_off;   // [NKV][max_len][hd]: each head's rows together
    for (int j = 0; j < n; j++) {
        size_t to = ((size_t)g * s->max_len + (size_t)(s->pos + j)) * hd, from = (r + (size_t)j) * kvd + (size_t)g * hd;
        memcpy(kc + to, J->w->k + from, (size_t)hd * sizeof(float));
        memcpy(vc + to, J->w->v + from, (size_t)hd * sizeof(float));
    }
    float *sc = J->w->sc + (size_t)eng_pool_self() * J->w->sc_floats;
    eng_attention_cached_strided(J->w->att + r * qd, sc, J->w->q + r * qd, kc, vc, n, s->pos, NH, NKV, hd, g * rep,
                                 (g + 1) * rep, (size_t)s->max_len * hd, (size_t)hd);
}

// Layer l's attention: q/k/v of all rows at once, each sequence's new k/v
// rows into its cache, its queries over its own cache; x += output projection.
static void attention_block(const eng_transformer *m, int l, tf_work *w, eng_lm_seq **seqs, const int *n_tokens, int n) {
    const eng_tf_config *c = &m->cfg;
    const eng_tf_layer *L = &m->layers[l];
    int T = w->T, C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads, hd = c->head_dim, qd = NH * hd, kvd = NKV * hd;
    norm_rows(m, w->h, w->x, &L->ln1_w, &L->ln1_b, T);
    quant_rows(w, w->h, T, C, (const eng_q8_matrix *const[]){&L->qwq, &L->qwk, &L->qwv, NULL});
    eng_par_linears_q8((const eng_par_lin[]){plin(w->q, &L->wq, &L->qwq, L->bq.val, qd), plin(w->k, &L->wk, &L->qwk, L->bk.val, kvd),
                                             plin(w->v, &L->wv, &L->qwv, L->bv.val, kvd)}, 3, w->h, &w->qa, T, C);
    if (c->arch != ENG_TF_GPT2) {
        eng_rope_forward(w->q, w->q, w->cos_t, w->sin_t, T, NH, hd, c->rope_interleaved);
        eng_rope_forward(w->k, w->k, w->cos_t, w->sin_t, T, NKV, hd, c->rope_interleaved);
    }
    double flops = 0;   // scores and weighted sums: 4 flops per (query, key, dim)
    for (int i = 0; i < n; i++) flops += 4.0 * n_tokens[i] * (((eng_tf_seq *)seqs[i])->pos + n_tokens[i]) * qd;
    att_job J = {m, l, w, seqs, n_tokens};
    if (eng_pool_width(flops) > 1) eng_pool_for(n * NKV, att_task, &J);
    else for (int t = 0; t < n * NKV; t++) att_task(&J, t);
    quant_rows(w, w->att, T, qd, (const eng_q8_matrix *const[]){&L->qwo, NULL});
    eng_par_linears_q8((const eng_par_lin[]){plin(w->h, &L->wo, &L->qwo, L->bo.val, C)}, 1, w->att, &w->qa, T, qd);
    eng_add_forward(w->x, w->x, w->h, (size_t)T * C);
}

// Layer l's MLP (GPT-2: GELU; llama: SwiGLU); x += its output.
static void mlp_block(const eng_transformer *m, int l, tf_work *w) {
    const eng_tf_config *c = &m->cfg;
    const eng_tf_layer *L = &m->layers[l];
    int T = w->T, C = c->dim, Hd = c->hidden_dim;
    norm_rows(m, w->h, w->x, &L->ln2_w, &L->ln2_b, T);
    quant_rows(w, w->h, T, C, (const eng_q8_matrix *const[]){&L->qw1, &L->qw3, NULL});
    // the activation fused into the tasks that compute its inputs (ops_par.h)
    if (c->arch == ENG_TF_GPT2) {
        eng_par_lin fc = plin(w->f1, &L->w1, &L->qw1, L->b1.val, Hd);
        fc.act = ENG_PAR_ACT_GELU;
        eng_par_linears_q8(&fc, 1, w->h, &w->qa, T, C);
    } else {
        eng_par_lin gate = plin(w->f1, &L->w1, &L->qw1, NULL, Hd), up = plin(w->f3, &L->w3, &L->qw3, NULL, Hd);
        eng_par_swiglu(&gate, &up, w->h, &w->qa, T, C);
    }
    quant_rows(w, w->f1, T, Hd, (const eng_q8_matrix *const[]){&L->qw2, NULL});
    eng_par_linears_q8((const eng_par_lin[]){plin(w->h, &L->w2, &L->qw2, L->b2.val, C)}, 1, w->f1, &w->qa, T, Hd);
    eng_add_forward(w->x, w->x, w->h, (size_t)T * C);
}

static void tf_step(const eng_lm *lm, eng_tape *scratch, eng_lm_seq **seqs, const int *const *tokens,
                    const int *n_tokens, int n, float *logits) {
    const eng_transformer *m = tf_of(lm);
    int C = m->cfg.dim;
    eng_tape_reset(scratch);
    if (n <= 0) return;
    tf_work w;
    work_init(&w, m, scratch, seqs, tokens, n_tokens, n);
    embed_rows(m, &w, scratch);
    eng_pool_enter();   // shares the pool with other workers' steps (pool.h); nothing below allocates
    for (int l = 0; l < m->cfg.n_layers; l++) {
        attention_block(m, l, &w, seqs, n_tokens, n);
        mlp_block(m, l, &w);
    }
    // Only each sequence's last row goes on to the head.
    for (int i = 0, r = 0; i < n; i++) {
        r += n_tokens[i];
        memcpy(w.h + (size_t)i * C, w.x + (size_t)(r - 1) * C, (size_t)C * sizeof(float));
        ((eng_tf_seq *)seqs[i])->pos += n_tokens[i];
    }
    norm_rows(m, w.h, w.h, &m->lnf_w, &m->lnf_b, n);
    quant_rows(&w, w.h, n, C, (const eng_q8_matrix *const[]){&m->qhead, NULL});
    eng_par_linears_q8((const eng_par_lin[]){plin(logits, &m->head, &m->qhead, NULL, m->cfg.vocab_size)}, 1, w.h, &w.qa, n, C);
    eng_pool_leave();
}

static void tf_free(eng_lm *lm) { eng_tf_destroy((eng_transformer *)lm); }

static eng_lm_info tf_info(const eng_lm *lm) {
    const eng_transformer *m = tf_of(lm);
    return (eng_lm_info){
        .arch = eng_tf_arch_name(m->cfg.arch),
        .vocab_size = m->cfg.vocab_size,
        .context_len = m->cfg.context_len,
        .n_params = m->n_params,
    };
}

const eng_lm_ops eng_tf_lm_ops = {
    .seq_bytes = tf_seq_bytes,
    .seq_new = tf_seq_new,
    .seq_free = tf_seq_free,
    .seq_pos = tf_seq_pos,
    .step = tf_step,
    .free = tf_free,
    .info = tf_info,
};
