// lstm_attention.c — character-level LSTM encoder-decoder with Luong
// attention (see lstm_attention.h): the parameter table, the training
// forward on the tape (with the few ops it needs that the tape lacks: row
// gather, column concat, step stacking, the LSTM cell and the attention),
// and the serving ops of seq2seq.h.
#include "engine/arch/lstm_attention.h"

#include <assert.h>                 // assert (caller bugs only)
#include <math.h>                   // expf, tanhf, sqrtf
#include <stdio.h>                  // snprintf
#include <stdlib.h>                 // calloc, free
#include <string.h>                 // memcpy, memset, strcmp
#include "engine/arch/lstm.h"       // eng_t_lstm (one encoder direction)
#include "engine/core/ops.h"        // eng_linear_forward_rowwise, eng_sigmoid/tanh_forward
#include "engine/core/ops_seq.h"    // eng_embedding_forward
#include "engine/core/rng.h"        // init
#include "engine/core/tape_seq.h"   // eng_t_embedding, eng_t_add
#include "engine/core/util.h"       // eng_errorf, eng_xaligned

enum {
    LA_MAX_VOCAB = 1 << 20,
    LA_MAX_DIM = 1 << 13,
    LA_MAX_LAYERS = 16,
    LA_MAX_LEN = 1 << 14,
};

// ---------------------------------------------------------------- config.json
static int cfg_int(const json_t *o, const char *key, int def, int min, int max, int *out, char **err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (def < min) return eng_errorf(err, "config.json: \"%s\" is required", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return eng_errorf(err, "config.json: \"%s\" must be an integer in [%d, %d]", key, min, max);
    *out = (int)json_integer_value(v);
    return 0;
}

int eng_la_config_from_json(eng_la_config *c, const json_t *config, char **err) {
    memset(c, 0, sizeof *c);
    if (cfg_int(config, "src_vocab_size", -1, 1, LA_MAX_VOCAB, &c->src_vocab, err) ||
        cfg_int(config, "tgt_vocab_size", -1, 1, LA_MAX_VOCAB, &c->tgt_vocab, err) ||
        cfg_int(config, "embed_size", -1, 1, LA_MAX_DIM, &c->embed, err) ||
        cfg_int(config, "hidden_size", -1, 2, LA_MAX_DIM, &c->hidden, err) ||
        cfg_int(config, "encoder_layers", 1, 1, LA_MAX_LAYERS, &c->enc_layers, err) ||
        cfg_int(config, "max_src_len", 256, 1, LA_MAX_LEN, &c->max_src_len, err) ||
        cfg_int(config, "max_tgt_len", 256, 1, LA_MAX_LEN, &c->max_tgt_len, err) ||
        cfg_int(config, "start_id", -1, 0, c->tgt_vocab - 1, &c->start_id, err) ||
        cfg_int(config, "eos_id", -1, 0, c->tgt_vocab - 1, &c->eos_id, err) ||
        cfg_int(config, "pad_id", -1, 0, c->tgt_vocab - 1, &c->pad_id, err))
        return -1;
    if (c->hidden % 2) return eng_errorf(err, "config.json: \"hidden_size\" must be even (half per encoder direction)");
    return 0;
}

json_t *eng_la_config_to_json(const eng_la_config *c) {
    return json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "task", "translation", "arch",
                     "lstm-attention", "src_vocab_size", c->src_vocab, "tgt_vocab_size", c->tgt_vocab, "embed_size",
                     c->embed, "hidden_size", c->hidden, "encoder_layers", c->enc_layers, "max_src_len",
                     c->max_src_len, "max_tgt_len", c->max_tgt_len, "start_id", c->start_id, "eos_id", c->eos_id,
                     "pad_id", c->pad_id);
}

// ---------------------------------------------------------------- tensor table
static void add_tensor(eng_la *m, const char *name, int s0, int s1, int embed, eng_var *view) {
    eng_la_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = s1 ? 2 : 1;
    t->shape[0] = s0;
    t->shape[1] = s1;
    t->n = (size_t)s0 * (s1 ? (size_t)s1 : 1);
    t->embed = embed;
    t->view = view;
    m->n_params += t->n;
}

static void bind_views(eng_la *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        eng_la_tensor *t = &m->tensors[i];
        eng_var_param(t->view, t->val, t->grad, t->ndim, t->shape);
    }
}

static void add_lstm(eng_la *m, eng_la_lstm *L, const char *prefix, const char *suffix, int in, int H) {
    char n[80];
    snprintf(n, sizeof n, "%s.weight_ih%s", prefix, suffix);
    add_tensor(m, n, 4 * H, in, 0, &L->w_ih);
    snprintf(n, sizeof n, "%s.weight_hh%s", prefix, suffix);
    add_tensor(m, n, 4 * H, H, 0, &L->w_hh);
    snprintf(n, sizeof n, "%s.bias_ih%s", prefix, suffix);
    add_tensor(m, n, 4 * H, 0, 0, &L->b_ih);
    snprintf(n, sizeof n, "%s.bias_hh%s", prefix, suffix);
    add_tensor(m, n, 4 * H, 0, 0, &L->b_hh);
}

int eng_la_init(eng_la *m, const eng_la_config *c, char **err) {
    memset(m, 0, sizeof *m);
    if (c->src_vocab < 1 || c->tgt_vocab < 1 || c->embed < 1 || c->hidden < 2 || c->hidden % 2 ||
        c->hidden > LA_MAX_DIM || c->embed > LA_MAX_DIM || c->enc_layers < 1 || c->enc_layers > LA_MAX_LAYERS ||
        c->src_vocab > LA_MAX_VOCAB || c->tgt_vocab > LA_MAX_VOCAB)
        return eng_errorf(err, "lstm-attention: a dimension is out of range");
    m->cfg = *c;
    int E = c->enc_layers, H = c->hidden, He = H / 2, D = c->embed;
    m->enc = calloc(2 * (size_t)E, sizeof *m->enc);
    m->tensors = calloc(8 * (size_t)E + 10, sizeof *m->tensors);
    if (!m->enc || !m->tensors) {
        free(m->enc);
        free(m->tensors);
        memset(m, 0, sizeof *m);
        return eng_errorf(err, "lstm-attention: out of memory");
    }
    add_tensor(m, "src_embed.weight", c->src_vocab, D, 1, &m->src_embed);
    add_tensor(m, "tgt_embed.weight", c->tgt_vocab, D, 1, &m->tgt_embed);
    for (int k = 0; k < E; k++) {
        char sfx[32];
        snprintf(sfx, sizeof sfx, "_l%d", k);
        add_lstm(m, &m->enc[2 * k], "encoder", sfx, k ? H : D, He);
        snprintf(sfx, sizeof sfx, "_l%d_reverse", k);
        add_lstm(m, &m->enc[2 * k + 1], "encoder", sfx, k ? H : D, He);
    }
    add_lstm(m, &m->dec, "decoder", "", D + H, H);
    add_tensor(m, "attn.weight", H, H, 0, &m->attn_w);
    add_tensor(m, "combine.weight", H, 2 * H, 0, &m->comb_w);
    add_tensor(m, "out.weight", c->tgt_vocab, H, 0, &m->out_w);
    add_tensor(m, "out.bias", c->tgt_vocab, 0, 0, &m->out_b);
    bind_views(m);
    return 0;
}

static void release_weights(eng_la *m) {
    eng_st_close(&m->st);
    free(m->params);
    m->params = NULL;
    eng_params_clear_values(ENG_PARAM_TABLE(m->tensors, m->n_tensors));
}

void eng_la_free(eng_la *m) {
    if (!m) return;
    release_weights(m);
    free(m->grads);
    free(m->tensors);
    free(m->enc);
    memset(m, 0, sizeof *m);
}

void eng_la_init_params(eng_la *m, uint64_t seed) {
    release_weights(m);
    m->params = eng_xaligned(m->n_params * sizeof(float));
    eng_params_carve(ENG_PARAM_TABLE(m->tensors, m->n_tensors), m->params, 0);
    bind_views(m);
    eng_rng rng;
    eng_rng_seed(&rng, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        eng_la_tensor *t = &m->tensors[i];
        // nn.Embedding: N(0, 1); nn.LSTM: U(+-1/sqrt(hidden)); nn.Linear: U(+-1/sqrt(fan_in))
        int fan = t->ndim == 2 ? t->shape[1] : t->shape[0] / 4;
        if (t->view == &m->out_b) fan = m->cfg.hidden;
        if (strncmp(t->name, "encoder.", 8) == 0 || strncmp(t->name, "decoder.", 8) == 0)
            fan = t->shape[0] / 4;
        float bound = 1.0f / sqrtf((float)fan);
        for (size_t k = 0; k < t->n; k++)
            t->val[k] = t->embed ? eng_rng_normal(&rng) : bound * (2.0f * eng_rng_uniform(&rng) - 1.0f);
    }
}

void eng_la_enable_grads(eng_la *m) {
    free(m->grads);
    m->grads = eng_params_new_grads(ENG_PARAM_TABLE(m->tensors, m->n_tensors), m->n_params);
    bind_views(m);
}

int eng_la_load_safetensors(eng_la *m, const char *path, char **err) {
    release_weights(m);
    if (eng_st_open(&m->st, path, err) != 0) return -1;
    for (int i = 0; i < m->n_tensors; i++) {
        eng_la_tensor *t = &m->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        char *why = NULL;
        const float *p = eng_st_find(&m->st, t->name) ? eng_st_get(&m->st, t->name, t->ndim, shape, &why) : NULL;
        if (!p) {
            if (why) eng_errorf(err, "%s: %s", path, why);
            else eng_errorf(err, "%s: tensor \"%s\" is missing", path, t->name);
            free(why);
            release_weights(m);
            bind_views(m);
            return -1;
        }
        t->val = (float *)p;   // read-only mapping
    }
    bind_views(m);
    return 0;
}

int eng_la_save(const eng_la *m, const char *path, char **err) {
    return eng_params_save(ENG_PARAM_TABLE(m->tensors, m->n_tensors), path, NULL, NULL, err);
}

int eng_la_load_dir(eng_la **out, const char *dir, const json_t *config, char **err) {
    *out = NULL;
    eng_la_config c;
    eng_la *m = calloc(1, sizeof *m);
    if (!m) return eng_errorf(err, "%s: out of memory", dir);
    char *why = NULL;
    if (eng_la_config_from_json(&c, config, &why) != 0 || eng_la_init(m, &c, &why) != 0) {
        eng_errorf(err, "%s: %s", dir, why ? why : "bad config.json");
        free(why);
        free(m);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (eng_la_load_safetensors(m, path, err) != 0) {
        eng_la_destroy(m);
        return -1;
    }
    *out = m;
    return 0;
}

void eng_la_destroy(eng_la *m) {
    if (!m) return;
    eng_la_free(m);
    free(m);
}

// ---------------------------------------------------------------- kernels shared by training and serving
static float *arena_floats(eng_tape *t, size_t n) { return eng_arena_alloc(&t->arena, n * sizeof(float)); }

// One LSTM cell on preactivations a[4H] (i, f, g, o), activated in place;
// c_prev NULL = zero state. Same arithmetic as lstm.c's cell.
static void cell_forward(float *a, float *c, float *h, const float *c_prev, int H) {
    eng_sigmoid_forward(a, a, 2 * (size_t)H);
    eng_tanh_forward(a + 2 * H, a + 2 * H, (size_t)H);
    eng_sigmoid_forward(a + 3 * H, a + 3 * H, (size_t)H);
    const float *i = a, *f = a + H, *g = a + 2 * H, *o = a + 3 * H;
    for (int k = 0; k < H; k++) {
        float cn = (c_prev ? f[k] * c_prev[k] : 0.0f) + i[k] * g[k];
        c[k] = cn;
        h[k] = o[k] * tanhf(cn);
    }
}

// Attention of one query q[H] over the n keys K[n, H] / memory rows M[n, H]:
// p[n] = softmax(K q), ctx[H] = p M.
static void attend(float *ctx, float *p, const float *q, const float *K, const float *M, int n, int H) {
    float mx = -INFINITY;
    for (int s = 0; s < n; s++) {
        float d = 0;
        for (int k = 0; k < H; k++) d += q[k] * K[(size_t)s * H + k];
        p[s] = d;
        mx = d > mx ? d : mx;
    }
    float sum = 0;
    for (int s = 0; s < n; s++) sum += (p[s] = expf(p[s] - mx));
    memset(ctx, 0, (size_t)H * sizeof(float));
    for (int s = 0; s < n; s++) {
        p[s] /= sum;
        for (int k = 0; k < H; k++) ctx[k] += p[s] * M[(size_t)s * H + k];
    }
}

// ---------------------------------------------------------------- tape ops this model needs
static eng_var *new_var(eng_tape *t, int rows, int cols, int with_grad) {
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    size_t n = (size_t)rows * cols;
    eng_var_param(v, arena_floats(t, n), with_grad ? eng_arena_calloc(&t->arena, n * sizeof(float)) : NULL, 2,
                  (int[]){rows, cols});
    return v;
}

static int cols_of(const eng_var *v) { return v->shape[v->ndim - 1]; }
static int rows_of(const eng_var *v) { return (int)(v->n / (size_t)cols_of(v)); }
static int recording(const eng_tape *t, const eng_var *a, const eng_var *b) {
    return t->grad_enabled && ((a && a->grad) || (b && b->grad));
}

// out[i] = x[idx[i]]
typedef struct { eng_var *x; int *idx; int n, C; } gather_ctx;

static void gather_back(void *vc, eng_var *out) {
    gather_ctx *c = vc;
    for (int i = 0; i < c->n; i++) {
        float *d = c->x->grad + (size_t)c->idx[i] * c->C;
        const float *s = out->grad + (size_t)i * c->C;
        for (int k = 0; k < c->C; k++) d[k] += s[k];
    }
}

static eng_var *gather_rows(eng_tape *t, eng_var *x, const int *idx, int n) {
    int C = cols_of(x), rec = recording(t, x, NULL);
    eng_var *out = new_var(t, n, C, rec);
    for (int i = 0; i < n; i++)
        memcpy(out->val + (size_t)i * C, x->val + (size_t)idx[i] * C, (size_t)C * sizeof(float));
    if (rec) {
        gather_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        *c = (gather_ctx){x, eng_arena_alloc(&t->arena, (size_t)n * sizeof(int)), n, C};
        memcpy(c->idx, idx, (size_t)n * sizeof(int));
        eng__tape_record(t, out, gather_back, c);
    }
    return out;
}

// out[r] = [a[r] | b[r]]
typedef struct { eng_var *a, *b; } concat_ctx;

static void concat_back(void *vc, eng_var *out) {
    concat_ctx *c = vc;
    int Ca = cols_of(c->a), Cb = cols_of(c->b), N = rows_of(c->a);
    for (int r = 0; r < N; r++) {
        const float *s = out->grad + (size_t)r * (Ca + Cb);
        if (c->a->grad) for (int k = 0; k < Ca; k++) c->a->grad[(size_t)r * Ca + k] += s[k];
        if (c->b->grad) for (int k = 0; k < Cb; k++) c->b->grad[(size_t)r * Cb + k] += s[Ca + k];
    }
}

static eng_var *concat_cols(eng_tape *t, eng_var *a, eng_var *b) {
    int Ca = cols_of(a), Cb = cols_of(b), N = rows_of(a), rec = recording(t, a, b);
    assert(rows_of(b) == N);
    eng_var *out = new_var(t, N, Ca + Cb, rec);
    for (int r = 0; r < N; r++) {
        memcpy(out->val + (size_t)r * (Ca + Cb), a->val + (size_t)r * Ca, (size_t)Ca * sizeof(float));
        memcpy(out->val + (size_t)r * (Ca + Cb) + Ca, b->val + (size_t)r * Cb, (size_t)Cb * sizeof(float));
    }
    if (rec) {
        concat_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        *c = (concat_ctx){a, b};
        eng__tape_record(t, out, concat_back, c);
    }
    return out;
}

// out[b*T + t] = steps[t][b]: T vars [B, C] into one [B*T, C]
typedef struct { eng_var **steps; int T, B, C; } stack_ctx;

static void stack_back(void *vc, eng_var *out) {
    stack_ctx *c = vc;
    for (int s = 0; s < c->T; s++) {
        if (!c->steps[s]->grad) continue;
        for (int b = 0; b < c->B; b++) {
            float *d = c->steps[s]->grad + (size_t)b * c->C;
            const float *g = out->grad + ((size_t)b * c->T + s) * c->C;
            for (int k = 0; k < c->C; k++) d[k] += g[k];
        }
    }
}

static eng_var *stack_steps(eng_tape *t, eng_var **steps, int T) {
    int B = rows_of(steps[0]), C = cols_of(steps[0]), rec = 0;
    for (int s = 0; s < T; s++) rec |= recording(t, steps[s], NULL);
    eng_var *out = new_var(t, B * T, C, rec);
    for (int s = 0; s < T; s++)
        for (int b = 0; b < B; b++)
            memcpy(out->val + ((size_t)b * T + s) * C, steps[s]->val + (size_t)b * C, (size_t)C * sizeof(float));
    if (rec) {
        stack_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        *c = (stack_ctx){eng_arena_alloc(&t->arena, (size_t)T * sizeof(eng_var *)), T, B, C};
        memcpy(c->steps, steps, (size_t)T * sizeof(eng_var *));
        eng__tape_record(t, out, stack_back, c);
    }
    return out;
}

// The LSTM cell over B rows: preactivations a[B, 4H], c_prev[B, H] (NULL:
// zero) -> *h, *c [B, H]. Two tape entries share the cache: c's is recorded
// first, so h's backward (dh -> da_o, dc) runs before c's (dc -> da_i,f,g, dc_prev).
typedef struct { eng_var *a, *c_prev, *c; float *gates; int B, H; } cell_ctx;

static void cell_back_h(void *vc, eng_var *h) {
    cell_ctx *x = vc;
    int H = x->H, G = 4 * H;
    for (int b = 0; b < x->B; b++) {
        const float *o = x->gates + (size_t)b * G + 3 * H, *c = x->c->val + (size_t)b * H;
        const float *dh = h->grad + (size_t)b * H;
        float *dc = x->c->grad + (size_t)b * H, *da = x->a->grad + (size_t)b * G + 3 * H;
        for (int k = 0; k < H; k++) {
            float tc = tanhf(c[k]);
            da[k] += dh[k] * tc * o[k] * (1.0f - o[k]);
            dc[k] += dh[k] * o[k] * (1.0f - tc * tc);
        }
    }
}

static void cell_back_c(void *vc, eng_var *cv) {
    cell_ctx *x = vc;
    int H = x->H, G = 4 * H;
    for (int b = 0; b < x->B; b++) {
        const float *i = x->gates + (size_t)b * G, *f = i + H, *g = i + 2 * H;
        const float *dc = cv->grad + (size_t)b * H;
        const float *cp = x->c_prev ? x->c_prev->val + (size_t)b * H : NULL;
        float *dcp = x->c_prev && x->c_prev->grad ? x->c_prev->grad + (size_t)b * H : NULL;
        float *da = x->a->grad + (size_t)b * G;
        for (int k = 0; k < H; k++) {
            da[k] += dc[k] * g[k] * i[k] * (1.0f - i[k]);
            if (cp) da[H + k] += dc[k] * cp[k] * f[k] * (1.0f - f[k]);
            da[2 * H + k] += dc[k] * i[k] * (1.0f - g[k] * g[k]);
            if (dcp) dcp[k] += dc[k] * f[k];
        }
    }
}

static void cell(eng_tape *t, eng_var *a, eng_var *c_prev, eng_var **h_out, eng_var **c_out) {
    int B = rows_of(a), H = cols_of(a) / 4, rec = recording(t, a, c_prev);
    float *gates = arena_floats(t, a->n);
    memcpy(gates, a->val, a->n * sizeof(float));
    eng_var *h = new_var(t, B, H, rec), *c = new_var(t, B, H, rec);
    for (int b = 0; b < B; b++)
        cell_forward(gates + (size_t)b * 4 * H, c->val + (size_t)b * H, h->val + (size_t)b * H,
                     c_prev ? c_prev->val + (size_t)b * H : NULL, H);
    if (rec) {
        cell_ctx *x = eng_arena_alloc(&t->arena, sizeof *x);
        *x = (cell_ctx){a, c_prev, c, gates, B, H};
        eng__tape_record(t, c, cell_back_c, x);
        eng__tape_record(t, h, cell_back_h, x);
    }
    *h_out = h;
    *c_out = c;
}

// Attention of q[B, H] (row b) over rows b*S .. b*S + len[b] - 1 of K and
// M [B*S, H] -> ctx [B, H]; probabilities cached for the backward.
typedef struct { eng_var *q, *K, *M; float *p; const int *len; int B, S, H; } attn_ctx;

static void attn_back(void *vc, eng_var *out) {
    attn_ctx *x = vc;
    int H = x->H;
    for (int b = 0; b < x->B; b++) {
        int n = x->len[b];
        const float *p = x->p + (size_t)b * x->S, *dctx = out->grad + (size_t)b * H, *q = x->q->val + (size_t)b * H;
        size_t r0 = (size_t)b * x->S;
        float dot_sum = 0;
        // d score_s = p_s (dctx . m_s - sum_j p_j dctx . m_j)
        float *dd = x->p + (size_t)x->B * x->S + (size_t)b * x->S;   // scratch [S] after the probabilities
        for (int s = 0; s < n; s++) {
            const float *m = x->M->val + (r0 + s) * H;
            float d = 0;
            for (int k = 0; k < H; k++) d += dctx[k] * m[k];
            dd[s] = d;
            dot_sum += p[s] * d;
        }
        for (int s = 0; s < n; s++) {
            float dsc = p[s] * (dd[s] - dot_sum);
            const float *kk = x->K->val + (r0 + s) * H;
            if (x->q->grad) for (int k = 0; k < H; k++) x->q->grad[(size_t)b * H + k] += dsc * kk[k];
            if (x->K->grad) for (int k = 0; k < H; k++) x->K->grad[(r0 + s) * H + k] += dsc * q[k];
            if (x->M->grad) for (int k = 0; k < H; k++) x->M->grad[(r0 + s) * H + k] += p[s] * dctx[k];
        }
    }
}

static eng_var *attention(eng_tape *t, eng_var *q, eng_var *K, eng_var *M, const int *len, int S) {
    int B = rows_of(q), H = cols_of(q);
    int rec = t->grad_enabled && (q->grad || K->grad || M->grad);
    eng_var *out = new_var(t, B, H, rec);
    float *p = arena_floats(t, 2 * (size_t)B * S);
    for (int b = 0; b < B; b++)
        attend(out->val + (size_t)b * H, p + (size_t)b * S, q->val + (size_t)b * H, K->val + (size_t)b * S * H,
               M->val + (size_t)b * S * H, len[b], H);
    if (rec) {
        attn_ctx *x = eng_arena_alloc(&t->arena, sizeof *x);
        *x = (attn_ctx){q, K, M, p, len, B, S, H};
        eng__tape_record(t, out, attn_back, x);
    }
    return out;
}

// ---------------------------------------------------------------- the training forward
// Encoder: memory M [B*S, H] (forward | backward halves) and keys K = M Wa^T.
// The backward direction reads each source reversed within its own length
// (rows past the length stay in place: they are padding, never attended).
static void encoder(eng_la *m, eng_tape *t, const int *src, const int *len, int B, int S, eng_var **M_out,
                    eng_var **K_out) {
    int *rev = eng_arena_alloc(&t->arena, (size_t)B * S * sizeof(int));
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) rev[b * S + s] = b * S + (s < len[b] ? len[b] - 1 - s : s);
    eng_var *x = eng_t_embedding(t, &m->src_embed, src, B * S);
    for (int k = 0; k < m->cfg.enc_layers; k++) {
        eng_la_lstm *F = &m->enc[2 * k], *R = &m->enc[2 * k + 1];
        eng_var *fw = eng_t_lstm(t, x, &F->w_ih, &F->w_hh, &F->b_ih, &F->b_hh, B, S);
        eng_var *bw = eng_t_lstm(t, gather_rows(t, x, rev, B * S), &R->w_ih, &R->w_hh, &R->b_ih, &R->b_hh, B, S);
        x = concat_cols(t, fw, gather_rows(t, bw, rev, B * S));
    }
    *M_out = x;
    *K_out = eng_t_linear(t, x, &m->attn_w, NULL);
}

static eng_var *zeros(eng_tape *t, int rows, int cols) {
    float *z = eng_arena_calloc(&t->arena, (size_t)rows * cols * sizeof(float));
    return eng_tape_wrap(t, z, 2, (int[]){rows, cols});
}

eng_var *eng_la_forward(eng_la *m, eng_tape *t, const int *src, const int *src_len, int B, int S,
                        const int *tgt_in, int T) {
    const eng_la_config *c = &m->cfg;
    int H = c->hidden;
    for (int b = 0; b < B; b++) assert(src_len[b] >= 1 && src_len[b] <= S);
    for (int i = 0; i < B * S; i++) assert(src[i] >= 0 && src[i] < c->src_vocab);
    for (int i = 0; i < B * T; i++) assert(tgt_in[i] >= 0 && tgt_in[i] < c->tgt_vocab);
    int *len = eng_arena_alloc(&t->arena, (size_t)B * sizeof(int));   // lives as long as the tape's entries
    memcpy(len, src_len, (size_t)B * sizeof(int));
    eng_var *M, *K;
    encoder(m, t, src, len, B, S, &M, &K);
    eng_var *h = zeros(t, B, H), *cs = NULL, *ht = zeros(t, B, H);
    eng_var **steps = eng_arena_alloc(&t->arena, (size_t)T * sizeof(eng_var *));
    int *ids = eng_arena_alloc(&t->arena, (size_t)B * sizeof(int));
    for (int s = 0; s < T; s++) {
        for (int b = 0; b < B; b++) ids[b] = tgt_in[b * T + s];
        eng_var *x = concat_cols(t, eng_t_embedding(t, &m->tgt_embed, ids, B), ht);   // input feeding
        eng_var *a = eng_t_add(t, eng_t_linear(t, x, &m->dec.w_ih, &m->dec.b_ih),
                               eng_t_linear(t, h, &m->dec.w_hh, &m->dec.b_hh));
        cell(t, a, cs, &h, &cs);
        eng_var *ctx = attention(t, h, K, M, len, S);
        ht = eng_t_tanh(t, eng_t_linear(t, concat_cols(t, ctx, h), &m->comb_w, NULL));
        steps[s] = ht;
    }
    return stack_steps(t, steps, T);
}

eng_var *eng_la_logits(eng_la *m, eng_tape *t, eng_var *htilde) { return eng_t_linear(t, htilde, &m->out_w, &m->out_b); }

eng_var *eng_la_loss(eng_la *m, eng_tape *t, const int *src, const int *src_len, int B, int S,
                     const int *tgt_in, const int *tgt_out, int T) {
    eng_var *ht = eng_la_forward(m, t, src, src_len, B, S, tgt_in, T);
    int *rows = eng_arena_alloc(&t->arena, (size_t)B * T * sizeof(int));
    int *tg = eng_arena_alloc(&t->arena, (size_t)B * T * sizeof(int));
    int n = 0;
    for (int i = 0; i < B * T; i++)
        if (tgt_out[i] != m->cfg.pad_id) { rows[n] = i; tg[n++] = tgt_out[i]; }
    assert(n > 0);
    return eng_t_cross_entropy(t, eng_la_logits(m, t, gather_rows(t, ht, rows, n)), tg);
}

// ---------------------------------------------------------------- serving (seq2seq.h)
struct eng_s2s_mem {
    int B, S;
    int *len;      // [B]
    float *M, *K;  // [B*S, H] each
};

struct eng_s2s_dec {
    const eng_s2s_mem *mem;
    int b, max_len, pos, H;
    float *h, *c, *ht;   // [H] each: decoder state and the last attentional vector
};

static const eng_la *la_of(const eng_s2s *s) { return (const eng_la *)s; }

static eng_s2s_info la_info(const eng_s2s *s) {
    const eng_la *m = la_of(s);
    const eng_la_config *c = &m->cfg;
    return (eng_s2s_info){.arch = "lstm-attention", .src_vocab = c->src_vocab, .tgt_vocab = c->tgt_vocab,
                          .max_src_len = c->max_src_len, .max_tgt_len = c->max_tgt_len, .start_id = c->start_id,
                          .eos_id = c->eos_id, .pad_id = c->pad_id, .n_params = m->n_params};
}

static void la_mem_free(eng_s2s_mem *mem) {
    if (!mem) return;
    free(mem->len);
    free(mem->M);
    free(mem);
}

// The encoder of the training forward on the scratch tape (grad off), its
// outputs copied out of the arena.
static eng_s2s_mem *la_encode(const eng_s2s *s, eng_tape *scratch, const int *const *src, const int *n_src, int B) {
    eng_la *m = (eng_la *)la_of(s);   // the tape ops take non-const vars; nothing is written (grad off)
    int H = m->cfg.hidden, S = 0;
    for (int b = 0; b < B; b++) {
        assert(n_src[b] >= 1 && n_src[b] <= m->cfg.max_src_len);
        S = n_src[b] > S ? n_src[b] : S;
    }
    int grad = scratch->grad_enabled;
    scratch->grad_enabled = 0;
    eng_tape_reset(scratch);
    int *ids = eng_arena_alloc(&scratch->arena, (size_t)B * S * sizeof(int));
    int *len = eng_arena_alloc(&scratch->arena, (size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) {
        len[b] = n_src[b];
        for (int i = 0; i < S; i++) {
            int id = i < n_src[b] ? src[b][i] : 0;   // padding: any valid id, never attended
            assert(id >= 0 && id < m->cfg.src_vocab);
            ids[b * S + i] = id;
        }
    }
    eng_var *M, *K;
    encoder(m, scratch, ids, len, B, S, &M, &K);
    scratch->grad_enabled = grad;
    // Allocated after the arena work, which may jump out when memory runs out.
    eng_s2s_mem *mem = calloc(1, sizeof *mem);
    if (!mem) return NULL;
    mem->B = B;
    mem->S = S;
    mem->len = malloc((size_t)B * sizeof(int));
    mem->M = eng_aligned(2 * (size_t)B * S * H * sizeof(float));
    if (!mem->len || !mem->M) { la_mem_free(mem); return NULL; }
    mem->K = mem->M + (size_t)B * S * H;
    memcpy(mem->len, len, (size_t)B * sizeof(int));
    memcpy(mem->M, M->val, (size_t)B * S * H * sizeof(float));
    memcpy(mem->K, K->val, (size_t)B * S * H * sizeof(float));
    return mem;
}

static eng_s2s_dec *la_dec_new(const eng_s2s *s, const eng_s2s_mem *mem, int b, int max_len) {
    const eng_la *m = la_of(s);
    int H = m->cfg.hidden;
    if (b < 0 || b >= mem->B || max_len < 1 || max_len > m->cfg.max_tgt_len) return NULL;
    eng_s2s_dec *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->h = eng_aligned(3 * (size_t)H * sizeof(float));
    if (!d->h) { free(d); return NULL; }
    memset(d->h, 0, 3 * (size_t)H * sizeof(float));
    d->c = d->h + H;
    d->ht = d->c + H;
    d->mem = mem;
    d->b = b;
    d->max_len = max_len;
    d->H = H;
    return d;
}

// dst's state arrays have the same size (same model); the binding follows src.
static void la_dec_copy(eng_s2s_dec *dst, const eng_s2s_dec *src) {
    assert(dst->H == src->H);
    memcpy(dst->h, src->h, 3 * (size_t)src->H * sizeof(float));
    dst->mem = src->mem;
    dst->b = src->b;
    dst->pos = src->pos;
    dst->max_len = src->max_len;
}

static void la_dec_free(eng_s2s_dec *d) {
    if (!d) return;
    free(d->h);
    free(d);
}

// One decoder step for n hypotheses: every weight matrix is read once, over
// the n stacked rows (row-wise kernels: a hypothesis' logits do not depend
// on what else is in the step).
static void la_step(const eng_s2s *s, eng_tape *scratch, eng_s2s_dec **decs, const int *tokens, int n,
                    float *logits) {
    const eng_la *m = la_of(s);
    const eng_la_config *c = &m->cfg;
    int H = c->hidden, D = c->embed, G = 4 * H;
    eng_tape_reset(scratch);
    if (n <= 0) return;
    float *x = arena_floats(scratch, (size_t)n * (D + H));    // [emb; h~_prev]
    float *hp = arena_floats(scratch, (size_t)n * H);         // h_prev
    float *a = arena_floats(scratch, (size_t)n * G);
    float *r = arena_floats(scratch, (size_t)n * G);
    float *y = arena_floats(scratch, (size_t)n * 2 * H);      // [ctx; h]
    float *ht = arena_floats(scratch, (size_t)n * H);
    int Smax = 1;
    for (int i = 0; i < n; i++) Smax = decs[i]->mem->S > Smax ? decs[i]->mem->S : Smax;
    float *p = arena_floats(scratch, (size_t)Smax);
    for (int i = 0; i < n; i++) {
        const eng_s2s_dec *d = decs[i];
        assert(tokens[i] >= 0 && tokens[i] < c->tgt_vocab && d->pos < d->max_len);
        memcpy(x + (size_t)i * (D + H), m->tgt_embed.val + (size_t)tokens[i] * D, (size_t)D * sizeof(float));
        memcpy(x + (size_t)i * (D + H) + D, d->ht, (size_t)H * sizeof(float));
        memcpy(hp + (size_t)i * H, d->h, (size_t)H * sizeof(float));
    }
    eng_linear_forward_rowwise(a, x, m->dec.w_ih.val, m->dec.b_ih.val, n, D + H, G);
    eng_linear_forward_rowwise(r, hp, m->dec.w_hh.val, m->dec.b_hh.val, n, H, G);
    for (int i = 0; i < n; i++) {
        eng_s2s_dec *d = decs[i];
        float *ai = a + (size_t)i * G;
        for (int k = 0; k < G; k++) ai[k] += r[(size_t)i * G + k];
        cell_forward(ai, d->c, d->h, d->pos > 0 ? d->c : NULL, H);
        const eng_s2s_mem *mem = d->mem;
        size_t r0 = (size_t)d->b * mem->S * H;
        attend(y + (size_t)i * 2 * H, p, d->h, mem->K + r0, mem->M + r0, mem->len[d->b], H);
        memcpy(y + (size_t)i * 2 * H + H, d->h, (size_t)H * sizeof(float));
    }
    eng_linear_forward_rowwise(ht, y, m->comb_w.val, NULL, n, 2 * H, H);
    eng_tanh_forward(ht, ht, (size_t)n * H);
    for (int i = 0; i < n; i++) {
        memcpy(decs[i]->ht, ht + (size_t)i * H, (size_t)H * sizeof(float));
        decs[i]->pos++;
    }
    eng_linear_forward_rowwise(logits, ht, m->out_w.val, m->out_b.val, n, H, c->tgt_vocab);
}

static void la_s2s_free(eng_s2s *s) { eng_la_destroy((eng_la *)s); }

const eng_s2s_ops eng_la_s2s_ops = {
    .info = la_info,
    .encode = la_encode,
    .mem_free = la_mem_free,
    .dec_new = la_dec_new,
    .dec_copy = la_dec_copy,
    .dec_free = la_dec_free,
    .step = la_step,
    .free = la_s2s_free,
};
