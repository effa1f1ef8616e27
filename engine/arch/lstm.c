// lstm.c — multi-layer LSTM language model (see lstm.h for the design:
// tensor table + views, (h, c) per sequence, time-stepped batched step,
// one tape entry per layer with a BPTT backward).
#include "engine/arch/lstm.h"

#include <assert.h>             // assert (caller bugs only)
#include <math.h>               // sqrtf, tanhf
#include <stdio.h>              // snprintf
#include <stdlib.h>             // free
#include <string.h>             // memcpy, memset, strcmp
#include "engine/core/ops.h"         // eng_linear_*, eng_matmul_nt, eng_sigmoid/tanh_forward
#include "engine/core/ops_par.h"     // eng_par_linear: the serving step's matmuls across the compute pool
#include "engine/core/ops_seq.h"     // eng_embedding_forward
#include "engine/core/rng.h"         // eng_rng for init
#include "engine/core/tape_seq.h"    // eng_t_embedding
#include "engine/core/util.h"        // eng_errorf, eng_xcalloc, eng_xaligned

// Bounds on hyperparameters: far above any char-rnn, low enough that no
// size computed from them overflows (4H * H fits an int).
enum {
    LSTM_MAX_HIDDEN = 1 << 14,
    LSTM_MAX_LAYERS = 256,
    LSTM_MAX_VOCAB = 1 << 22,
    LSTM_MAX_CONTEXT = 1 << 24,
    LSTM_DEFAULT_CONTEXT = 1024,
    LSTM_REQUIRED = -1,   // cfg_int default meaning "the key must be present"
};

// ---------------------------------------------------------------- the LSTM layer op

// One cell update. a[4H]: the preactivations (i, f, g, o) in, the activated
// gates out. c_prev NULL means the zero state; c may alias c_prev.
static void lstm_cell(float *a, float *c, float *h, const float *c_prev, int H) {
    eng_sigmoid_forward(a, a, 2 * (size_t)H);                 // i, f
    eng_tanh_forward(a + 2 * H, a + 2 * H, (size_t)H);        // g
    eng_sigmoid_forward(a + 3 * H, a + 3 * H, (size_t)H);     // o
    const float *i = a, *f = a + H, *g = a + 2 * H, *o = a + 3 * H;
    for (int k = 0; k < H; k++) {
        float cn = (c_prev ? f[k] * c_prev[k] : 0.0f) + i[k] * g[k];
        c[k] = cn;
        h[k] = o[k] * tanhf(cn);
    }
}

static void add_row(float *restrict d, const float *restrict s, int n) {
    for (int k = 0; k < n; k++) d[k] += s[k];
}

size_t eng_lstm_forward_scratch(int B, int H) { return 5 * (size_t)B * (size_t)H; }

void eng_lstm_layer_forward(float *out, float *gates, float *cs, float *scratch, const float *in,
                            const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                            int B, int T, int C, int H) {
    int G = 4 * H;
    float *hb = scratch;                         // [B, H] h[t-1] of every sequence
    float *rec = scratch + (size_t)B * H;        // [B, 4H] h[t-1] W_hh^T
    // The input part of every step at once: gates = in W_ih^T + b_ih.
    eng_linear_forward(gates, in, w_ih, b_ih, B * T, C, G);
    for (int t = 0; t < T; t++) {
        if (t > 0) {
            for (int b = 0; b < B; b++)
                memcpy(hb + (size_t)b * H, out + ((size_t)b * T + t - 1) * H, (size_t)H * sizeof(float));
            eng_matmul_nt(rec, hb, w_hh, B, G, H, 0);
        }
        for (int b = 0; b < B; b++) {
            size_t row = (size_t)b * T + t;
            float *a = gates + row * G;
            if (t > 0) add_row(a, rec + (size_t)b * G, G);
            if (b_hh) add_row(a, b_hh, G);
            lstm_cell(a, cs + row * H, out + row * H, t > 0 ? cs + (row - 1) * H : NULL, H);
        }
    }
}

size_t eng_lstm_backward_scratch(int B, int T, int H) {
    size_t rows = (size_t)B * T;
    return rows * 4 * H + rows * H + 2 * (size_t)B * H + (size_t)B * 4 * H;
}

void eng_lstm_layer_backward(float *din, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                             float *scratch, const float *dout, const float *in, const float *out,
                             const float *gates, const float *cs, const float *w_ih, const float *w_hh,
                             int B, int T, int C, int H) {
    int G = 4 * H;
    size_t rows = (size_t)B * T;
    float *da = scratch;                        // [B*T, 4H] dL/d(preactivations)
    float *hprev = da + rows * G;               // [B*T, H] h[t-1] (0 at t = 0)
    float *dhn = hprev + rows * H;              // [B, H] dL/dh[t] through the recurrence (from t+1)
    float *dcn = dhn + (size_t)B * H;           // [B, H] dL/dc[t] from t+1
    float *dat = dcn + (size_t)B * H;           // [B, 4H] da of step t, rows contiguous
    memset(dhn, 0, 2 * (size_t)B * H * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        for (int b = 0; b < B; b++) {
            size_t row = (size_t)b * T + t;
            const float *i = gates + row * G, *f = i + H, *g = i + 2 * H, *o = i + 3 * H;
            const float *c = cs + row * H, *cp = t > 0 ? cs + (row - 1) * H : NULL;
            const float *dy = dout + row * H;
            float *dh_r = dhn + (size_t)b * H, *dc_r = dcn + (size_t)b * H, *d = dat + (size_t)b * G;
            for (int k = 0; k < H; k++) {
                float dh = dy[k] + dh_r[k];                     // h[t] feeds the output and step t+1
                float tc = tanhf(c[k]);
                float dc = dc_r[k] + dh * o[k] * (1.0f - tc * tc);   // h = o * tanh(c)
                float d_o = dh * tc;
                float d_i = dc * g[k], d_g = dc * i[k];         // c = f * c_prev + i * g
                float d_f = cp ? dc * cp[k] : 0.0f;
                dc_r[k] = dc * f[k];                            // -> dL/dc[t-1]
                d[k] = d_i * i[k] * (1.0f - i[k]);              // sigmoid' = s (1 - s)
                d[H + k] = d_f * f[k] * (1.0f - f[k]);
                d[2 * H + k] = d_g * (1.0f - g[k] * g[k]);      // tanh' = 1 - tanh^2
                d[3 * H + k] = d_o * o[k] * (1.0f - o[k]);
            }
            memcpy(da + row * G, d, (size_t)G * sizeof(float));
        }
        if (t > 0) {   // a[t] = ... + h[t-1] W_hh^T  =>  dL/dh[t-1] = da[t] W_hh
            memset(dhn, 0, (size_t)B * H * sizeof(float));
            eng_linear_backward(dhn, NULL, NULL, dat, NULL, w_hh, B, H, G);
        }
    }
    // The weight gradients of every step at once.
    for (int b = 0; b < B; b++) {
        memset(hprev + (size_t)b * T * H, 0, (size_t)H * sizeof(float));
        memcpy(hprev + ((size_t)b * T + 1) * H, out + (size_t)b * T * H, (size_t)(T - 1) * H * sizeof(float));
    }
    if (dw_hh || db_hh) eng_linear_backward(NULL, dw_hh, db_hh, da, hprev, w_hh, (int)rows, H, G);
    if (din || dw_ih || db_ih) eng_linear_backward(din, dw_ih, db_ih, da, in, w_ih, (int)rows, C, G);
}

// ---------------------------------------------------------------- tape wrapper
typedef struct {
    eng_var *x, *w_ih, *w_hh, *b_ih, *b_hh;
    float *gates, *cs;   // [B*T, 4H], [B*T, H] forward caches
    float *scratch;      // eng_lstm_backward_scratch floats
    int B, T, C, H;
} lstm_ctx;

static float *grad_of(const eng_var *v) { return v ? v->grad : NULL; }

static void lstm_back(void *vc, eng_var *out) {
    lstm_ctx *c = vc;
    eng_lstm_layer_backward(grad_of(c->x), grad_of(c->w_ih), grad_of(c->w_hh), grad_of(c->b_ih), grad_of(c->b_hh),
                            c->scratch, out->grad, c->x->val, out->val, c->gates, c->cs, c->w_ih->val,
                            c->w_hh->val, c->B, c->T, c->C, c->H);
}

static float *arena_floats(eng_tape *t, size_t n) { return eng_arena_alloc(&t->arena, n * sizeof(float)); }

eng_var *eng_t_lstm(eng_tape *t, eng_var *x, eng_var *w_ih, eng_var *w_hh, eng_var *b_ih, eng_var *b_hh,
                    int B, int T) {
    int H = w_hh->shape[1], C = w_ih->shape[1];
    assert(w_hh->shape[0] == 4 * H && w_ih->shape[0] == 4 * H && x->n == (size_t)B * T * C);
    int rec = t->grad_enabled && (x->grad || w_ih->grad || w_hh->grad || grad_of(b_ih) || grad_of(b_hh));
    size_t rows = (size_t)B * T;
    eng_var *out = eng_arena_alloc(&t->arena, sizeof *out);
    eng_var_param(out, arena_floats(t, rows * H), rec ? eng_arena_calloc(&t->arena, rows * H * sizeof(float)) : NULL,
                  2, (int[]){B * T, H});
    float *gates = arena_floats(t, rows * 4 * H), *cs = arena_floats(t, rows * H);
    float *fs = arena_floats(t, eng_lstm_forward_scratch(B, H));
    eng_lstm_layer_forward(out->val, gates, cs, fs, x->val, w_ih->val, w_hh->val, b_ih ? b_ih->val : NULL,
                           b_hh ? b_hh->val : NULL, B, T, C, H);
    if (rec) {
        lstm_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        *c = (lstm_ctx){x, w_ih, w_hh, b_ih, b_hh, gates, cs, arena_floats(t, eng_lstm_backward_scratch(B, T, H)),
                        B, T, C, H};
        eng__tape_record(t, out, lstm_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- config.json

// Integer key in [min, max]; `def` when absent or null (LSTM_REQUIRED: an error).
static int cfg_int(const json_t *o, const char *key, int def, int min, int max, int *out, char **err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (def == LSTM_REQUIRED) return eng_errorf(err, "config.json: \"%s\" is required", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return eng_errorf(err, "config.json: \"%s\" must be an integer in [%d, %d]", key, min, max);
    *out = (int)json_integer_value(v);
    return 0;
}

int eng_lstm_config_from_json(eng_lstm_config *cfg, const json_t *config, char **err) {
    memset(cfg, 0, sizeof *cfg);
    const json_t *arch = json_object_get(config, "arch");
    if (arch && (!json_is_string(arch) || strcmp(json_string_value(arch), "lstm") != 0))
        return eng_errorf(err, "config.json: \"arch\" must be \"lstm\"");
    if (cfg_int(config, "vocab_size", LSTM_REQUIRED, 1, LSTM_MAX_VOCAB, &cfg->vocab_size, err) ||
        cfg_int(config, "hidden_size", LSTM_REQUIRED, 1, LSTM_MAX_HIDDEN, &cfg->hidden_size, err) ||
        cfg_int(config, "num_layers", 1, 1, LSTM_MAX_LAYERS, &cfg->num_layers, err) ||
        cfg_int(config, "context_len", LSTM_DEFAULT_CONTEXT, 1, LSTM_MAX_CONTEXT, &cfg->context_len, err))
        return -1;
    const json_t *tie = json_object_get(config, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie) && !json_is_null(tie))
        return eng_errorf(err, "config.json: \"tie_word_embeddings\" must be a boolean");
    cfg->tied = json_is_true(tie);
    return 0;
}

json_t *eng_lstm_config_to_json(const eng_lstm_config *c) {
    json_t *o = json_object();
    json_object_set_new(o, "task", json_string("text-generation"));
    json_object_set_new(o, "arch", json_string("lstm"));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "num_layers", json_integer(c->num_layers));
    json_object_set_new(o, "context_len", json_integer(c->context_len));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tied));
    return o;
}

// ---------------------------------------------------------------- tensor table

static eng_lstm_tensor *tensor_add(eng_lstm *m, const char *name, int ndim, int s0, int s1,
                                   eng_lstm_tensor_kind kind, eng_var *view) {
    eng_lstm_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = s0;
    t->shape[1] = ndim == 2 ? s1 : 0;
    t->n = (size_t)s0 * (ndim == 2 ? (size_t)s1 : 1);
    t->kind = kind;
    t->views[0] = view;
    m->n_params += t->n;
    return t;
}

// Points every view at its tensor's current values and gradients.
static void bind_views(eng_lstm *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        eng_lstm_tensor *t = &m->tensors[i];
        for (int j = 0; j < 2; j++)
            if (t->views[j]) eng_var_param(t->views[j], t->val, t->grad, t->ndim, t->shape);
    }
}

int eng_lstm_init(eng_lstm *m, const eng_lstm_config *cfg, char **err) {
    memset(m, 0, sizeof *m);
    const eng_lstm_config *c = cfg;
    if (c->vocab_size < 1 || c->vocab_size > LSTM_MAX_VOCAB || c->hidden_size < 1 || c->hidden_size > LSTM_MAX_HIDDEN ||
        c->num_layers < 1 || c->num_layers > LSTM_MAX_LAYERS || c->context_len < 1 || c->context_len > LSTM_MAX_CONTEXT)
        return eng_errorf(err, "lstm: a dimension is out of range (vocab %d, hidden %d, layers %d, context %d)",
                          c->vocab_size, c->hidden_size, c->num_layers, c->context_len);
    m->cfg = *cfg;
    int V = c->vocab_size, H = c->hidden_size;
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    m->tensors = calloc(3 + 4 * (size_t)c->num_layers, sizeof *m->tensors);
    if (!m->layers || !m->tensors) {
        free(m->layers);
        free(m->tensors);
        memset(m, 0, sizeof *m);
        return eng_errorf(err, "lstm: out of memory for %d layers", c->num_layers);
    }
    eng_lstm_tensor *embed = tensor_add(m, "embed.weight", 2, V, H, ENG_LSTM_T_EMBED, &m->embed);
    char name[48];
    for (int l = 0; l < c->num_layers; l++) {
        eng_lstm_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "lstm.weight_ih_l%d", l);
        tensor_add(m, name, 2, 4 * H, H, ENG_LSTM_T_UNIFORM, &L->w_ih);
        snprintf(name, sizeof name, "lstm.weight_hh_l%d", l);
        tensor_add(m, name, 2, 4 * H, H, ENG_LSTM_T_UNIFORM, &L->w_hh);
        snprintf(name, sizeof name, "lstm.bias_ih_l%d", l);
        tensor_add(m, name, 1, 4 * H, 0, ENG_LSTM_T_UNIFORM, &L->b_ih);
        snprintf(name, sizeof name, "lstm.bias_hh_l%d", l);
        tensor_add(m, name, 1, 4 * H, 0, ENG_LSTM_T_UNIFORM, &L->b_hh);
    }
    if (c->tied) embed->views[1] = &m->head_w;
    else tensor_add(m, "head.weight", 2, V, H, ENG_LSTM_T_UNIFORM, &m->head_w);
    tensor_add(m, "head.bias", 1, V, 0, ENG_LSTM_T_UNIFORM, &m->head_b);
    bind_views(m);   // shapes now, values once loaded or initialised
    return 0;
}

// Drops whatever backs the values (mapping, owned copy); the table stays.
static void release_weights(eng_lstm *m) {
    eng_st_close(&m->st);
    free(m->params);
    m->params = NULL;
    eng_params_clear_values(ENG_PARAM_TABLE(m->tensors, m->n_tensors));
}

void eng_lstm_free(eng_lstm *m) {
    if (!m) return;
    release_weights(m);
    free(m->grads);
    free(m->tensors);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

// Points each tensor's values (grads = 0) or gradients (grads = 1) at
// consecutive slices of `base`, in table order.
static void carve(eng_lstm *m, float *base, int grads) {
    eng_params_carve(ENG_PARAM_TABLE(m->tensors, m->n_tensors), base, grads);
    bind_views(m);
}

void eng_lstm_init_params(eng_lstm *m, uint64_t seed) {
    release_weights(m);
    m->params = eng_xaligned(m->n_params * sizeof(float));
    carve(m, m->params, 0);
    eng_rng rng;
    eng_rng_seed(&rng, seed);
    float bound = 1.0f / sqrtf((float)m->cfg.hidden_size);   // nn.LSTM; nn.Linear(H, V) too
    for (int i = 0; i < m->n_tensors; i++) {
        eng_lstm_tensor *t = &m->tensors[i];
        for (size_t k = 0; k < t->n; k++)
            t->val[k] = t->kind == ENG_LSTM_T_EMBED ? eng_rng_normal(&rng)
                                                    : bound * (2.0f * eng_rng_uniform(&rng) - 1.0f);
    }
}

void eng_lstm_enable_grads(eng_lstm *m) {
    free(m->grads);
    m->grads = eng_params_new_grads(ENG_PARAM_TABLE(m->tensors, m->n_tensors), m->n_params);
    bind_views(m);
}

void eng_lstm_zero_grads(eng_lstm *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

// ---------------------------------------------------------------- loading / saving

int eng_lstm_load_safetensors(eng_lstm *m, const char *path, char **err) {
    release_weights(m);
    if (eng_st_open(&m->st, path, err) != 0) return -1;
    for (int i = 0; i < m->n_tensors; i++) {
        eng_lstm_tensor *t = &m->tensors[i];
        if (!eng_st_find(&m->st, t->name)) {
            eng_errorf(err, "%s: tensor \"%s\" is missing%s", path, t->name,
                       strcmp(t->name, "head.weight") == 0 ? " (or set \"tie_word_embeddings\": true)" : "");
            goto fail;
        }
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        char *why = NULL;
        const float *p = eng_st_get(&m->st, t->name, t->ndim, shape, &why);
        if (!p) {
            eng_errorf(err, "%s: %s", path, why ? why : t->name);
            free(why);
            goto fail;
        }
        t->val = (float *)p;   // read-only mapping: serving never writes weights
    }
    bind_views(m);
    return 0;
fail:
    release_weights(m);
    bind_views(m);
    return -1;
}

void eng_lstm_make_owned(eng_lstm *m) {
    if (m->params) return;
    float *p = eng_params_gather(ENG_PARAM_TABLE(m->tensors, m->n_tensors), m->n_params, NULL, NULL);
    release_weights(m);
    m->params = p;
    carve(m, p, 0);
}

int eng_lstm_save(const eng_lstm *m, const char *path, char **err) {
    return eng_params_save(ENG_PARAM_TABLE(m->tensors, m->n_tensors), path, NULL, NULL, err);
}

int eng_lstm_load_dir(eng_lstm **out, const char *dir, const json_t *config, char **err) {
    *out = NULL;
    eng_lstm_config cfg;
    eng_lstm *m = calloc(1, sizeof *m);
    if (!m) return eng_errorf(err, "%s: out of memory", dir);
    char *why = NULL;
    if (eng_lstm_config_from_json(&cfg, config, &why) != 0 || eng_lstm_init(m, &cfg, &why) != 0) {
        eng_errorf(err, "%s: %s", dir, why ? why : "bad config.json");
        free(why);
        free(m);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (eng_lstm_load_safetensors(m, path, err) != 0) {
        eng_lstm_destroy(m);
        return -1;
    }
    *out = m;
    return 0;
}

void eng_lstm_destroy(eng_lstm *m) {
    if (!m) return;
    eng_lstm_free(m);
    free(m);
}

// ---------------------------------------------------------------- training forward (tape)

eng_var *eng_lstm_forward(eng_lstm *m, eng_tape *t, const int *tokens, int B, int T) {
    assert(B >= 1 && T >= 1);
    for (int n = 0; n < B * T; n++) assert(tokens[n] >= 0 && tokens[n] < m->cfg.vocab_size);
    eng_var *x = eng_t_embedding(t, &m->embed, tokens, B * T);                 // [B*T, H]
    for (int l = 0; l < m->cfg.num_layers; l++) {
        eng_lstm_layer *L = &m->layers[l];
        x = eng_t_lstm(t, x, &L->w_ih, &L->w_hh, &L->b_ih, &L->b_hh, B, T);   // [B*T, H]
    }
    return eng_t_linear(t, x, &m->head_w, &m->head_b);                        // [B*T, V]
}

eng_var *eng_lstm_loss(eng_lstm *m, eng_tape *t, const int *tokens, const int *targets, int B, int T) {
    return eng_t_cross_entropy(t, eng_lstm_forward(m, t, tokens, B, T), targets);
}

// ---------------------------------------------------------------- serving (eng_lm_ops)

static const eng_lstm *lstm_of(const eng_lm *lm) { return (const eng_lstm *)lm; }

eng_lm *eng_lstm_as_lm(eng_lstm *m) { return (eng_lm *)m; }

static size_t lstm_seq_bytes(const eng_lm *lm, int max_len) {
    const eng_lstm_config *c = &lstm_of(lm)->cfg;
    return sizeof(eng_lstm_seq) + 2 * (size_t)c->num_layers * (size_t)c->hidden_size * sizeof(float);
}

static eng_lm_seq *lstm_seq_new(const eng_lm *lm, int max_len) {
    const eng_lstm_config *c = &lstm_of(lm)->cfg;
    if (max_len < 1 || max_len > c->context_len) return NULL;
    eng_lstm_seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t n = (size_t)c->num_layers * (size_t)c->hidden_size;
    s->max_len = max_len;
    s->h = eng_aligned(2 * n * sizeof(float));
    if (!s->h) { free(s); return NULL; }
    memset(s->h, 0, 2 * n * sizeof(float));   // the zero state
    s->c = s->h + n;
    return (eng_lm_seq *)s;
}

static void lstm_seq_free(eng_lm_seq *ls) {
    eng_lstm_seq *s = (eng_lstm_seq *)ls;
    if (!s) return;
    free(s->h);
    free(s);
}

static int lstm_seq_pos(const eng_lm_seq *s) { return ((const eng_lstm_seq *)s)->pos; }

// The batched step (lm.h). Rows r = the new tokens of seqs[0], then of
// seqs[1], ...; per layer one input projection over all rows, then time
// steps j, each one recurrent matmul over the sequences with a j-th token.
static void lstm_step(const eng_lm *lm, eng_tape *scratch, eng_lm_seq **seqs, const int *const *tokens,
                      const int *n_tokens, int n, float *logits) {
    const eng_lstm *m = lstm_of(lm);
    int H = m->cfg.hidden_size, G = 4 * H, V = m->cfg.vocab_size;
    eng_tape_reset(scratch);
    if (n <= 0) return;

    int T = 0, maxn = 0;
    for (int i = 0; i < n; i++) {
        const eng_lstm_seq *s = (const eng_lstm_seq *)seqs[i];
        assert(n_tokens[i] >= 1 && s->pos + n_tokens[i] <= s->max_len);
        T += n_tokens[i];
        maxn = n_tokens[i] > maxn ? n_tokens[i] : maxn;
    }
    int *ids = eng_arena_alloc(&scratch->arena, (size_t)T * sizeof(int));    // [T] token ids
    int *first = eng_arena_alloc(&scratch->arena, (size_t)n * sizeof(int));  // [n] first row of sequence i
    int *act = eng_arena_alloc(&scratch->arena, (size_t)n * sizeof(int));    // [n] sequences in time step j
    float *x = arena_floats(scratch, (size_t)T * H);    // [T, H] layer input
    float *y = arena_floats(scratch, (size_t)T * H);    // [T, H] layer output
    float *xg = arena_floats(scratch, (size_t)T * G);   // [T, 4H] x W_ih^T + b_ih
    float *hb = arena_floats(scratch, (size_t)n * H);   // [n, H] h of the active sequences
    float *rg = arena_floats(scratch, (size_t)n * G);   // [n, 4H] gates of the active sequences
    for (int i = 0, r = 0; i < n; i++) {
        first[i] = r;
        for (int j = 0; j < n_tokens[i]; j++, r++) {
            assert(tokens[i][j] >= 0 && tokens[i][j] < V);
            ids[r] = tokens[i][j];
        }
    }

    eng_embedding_forward(x, m->embed.val, ids, T, H);
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const eng_lstm_layer *L = &m->layers[l];
        eng_par_linear(xg, x, L->w_ih.val, L->b_ih.val, T, H, G);
        for (int j = 0; j < maxn; j++) {
            int na = 0;
            for (int i = 0; i < n; i++) {
                if (n_tokens[i] <= j) continue;   // this sequence has no j-th token
                const eng_lstm_seq *s = (const eng_lstm_seq *)seqs[i];
                memcpy(hb + (size_t)na * H, s->h + (size_t)l * H, (size_t)H * sizeof(float));
                act[na++] = i;
            }
            eng_par_linear(rg, hb, L->w_hh.val, NULL, na, H, G);
            for (int a = 0; a < na; a++) {
                eng_lstm_seq *s = (eng_lstm_seq *)seqs[act[a]];
                size_t row = (size_t)first[act[a]] + j;
                float *g = rg + (size_t)a * G, *h = s->h + (size_t)l * H, *c = s->c + (size_t)l * H;
                add_row(g, xg + row * G, G);
                add_row(g, L->b_hh.val, G);
                lstm_cell(g, c, h, c, H);
                memcpy(y + row * H, h, (size_t)H * sizeof(float));
            }
        }
        float *tmp = x;   // this layer's output is the next one's input
        x = y;
        y = tmp;
    }
    // Only each sequence's last row goes on to the head.
    for (int i = 0; i < n; i++) {
        memcpy(hb + (size_t)i * H, x + (size_t)(first[i] + n_tokens[i] - 1) * H, (size_t)H * sizeof(float));
        ((eng_lstm_seq *)seqs[i])->pos += n_tokens[i];
    }
    eng_par_linear(logits, hb, m->head_w.val, m->head_b.val, n, H, V);
}

static void lstm_free(eng_lm *lm) { eng_lstm_destroy((eng_lstm *)lm); }

static eng_lm_info lstm_info(const eng_lm *lm) {
    const eng_lstm *m = lstm_of(lm);
    return (eng_lm_info){
        .arch = "lstm",
        .vocab_size = m->cfg.vocab_size,
        .context_len = m->cfg.context_len,
        .n_params = m->n_params,
    };
}

const eng_lm_ops eng_lstm_lm_ops = {
    .seq_bytes = lstm_seq_bytes,
    .seq_new = lstm_seq_new,
    .seq_free = lstm_seq_free,
    .seq_pos = lstm_seq_pos,
    .step = lstm_step,
    .free = lstm_free,
    .info = lstm_info,
};
