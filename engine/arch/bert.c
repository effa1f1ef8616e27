// bert.c — BERT / DistilBERT sequence classification (see bert.h): config
// and weights as Hugging Face writes them, one packed forward per batch.
#include "engine/arch/bert.h"
#include <cblas.h>           // cblas_sgemm
#include <math.h>            // sqrtf, expf, tanhf
#include <stdio.h>           // snprintf
#include <stdlib.h>          // calloc, free
#include <string.h>          // strcmp, memcpy
#include "engine/core/cpu.h"       // eng_cpu_level_get (the AVX2 GELU)
#include "engine/core/ops.h"       // eng_linear_forward, eng_gelu_forward, eng_softmax_forward
#include "engine/core/util.h"      // eng_errorf
#include "engine/io/safetensors.h" // eng_st_file

enum { ACT_GELU, ACT_GELU_TANH, ACT_RELU };

typedef struct { const float *w, *b; } lin;    // y = x w^T + b, w [out, in]
typedef struct { const float *g, *b; } norm;   // LayerNorm weight, bias

typedef struct {
    lin q, k, v, o;      // attention projections
    norm ln1;            // after attention (BERT attention.output.LayerNorm, DistilBERT sa_layer_norm)
    lin f1, f2;          // feed-forward
    norm ln2;            // after the feed-forward (output.LayerNorm / output_layer_norm)
} layer;

struct eng_bert {
    int distil;                  // 1: DistilBERT names and head
    int V, H, L, NH, FF, P, T;   // vocab, hidden, layers, heads, ffn, positions, token types
    int NL;                      // labels (classifier rows)
    float eps;                   // LayerNorm epsilon
    int act;                     // ACT_*
    int multi_label;             // sigmoid scores instead of softmax
    const float *wemb, *pemb, *temb;   // [V,H] [P,H] [T,H] (temb NULL for DistilBERT)
    norm emb_ln;
    layer *layers;               // [L]
    lin pool;                    // BERT pooler.dense / DistilBERT pre_classifier, [H,H]
    lin cls;                     // classifier, [NL,H]
    size_t n_params;
    eng_st_file st;              // the mapping every view above points into
};

// ---------------------------------------------------------------- config

// A positive integer config key (the first of two spellings present).
static int cfg_int(const json_t *cfg, const char *key, const char *alt, int lo, int hi, int *out, char **err) {
    const json_t *v = json_object_get(cfg, key);
    if (!v && alt) v = json_object_get(cfg, alt);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return eng_errorf(err, "config.json: \"%s\" must be an integer in %d..%d", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int parse_config(eng_bert *b, const json_t *cfg, char **err) {
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    b->distil = mt && strcmp(mt, "distilbert") == 0;
    const char *act;
    if (b->distil) {
        if (cfg_int(cfg, "dim", NULL, 1, 1 << 16, &b->H, err) || cfg_int(cfg, "n_layers", NULL, 1, 1024, &b->L, err) ||
            cfg_int(cfg, "n_heads", NULL, 1, 1024, &b->NH, err) ||
            cfg_int(cfg, "hidden_dim", NULL, 1, 1 << 18, &b->FF, err))
            return -1;
        b->T = 0;
        b->eps = 1e-12f;   // fixed in DistilBERT
        act = json_string_value(json_object_get(cfg, "activation"));
        if (!act) act = "gelu";
    } else {
        if (cfg_int(cfg, "hidden_size", NULL, 1, 1 << 16, &b->H, err) ||
            cfg_int(cfg, "num_hidden_layers", NULL, 1, 1024, &b->L, err) ||
            cfg_int(cfg, "num_attention_heads", NULL, 1, 1024, &b->NH, err) ||
            cfg_int(cfg, "intermediate_size", NULL, 1, 1 << 18, &b->FF, err))
            return -1;
        b->T = 2;
        if (json_object_get(cfg, "type_vocab_size") && cfg_int(cfg, "type_vocab_size", NULL, 1, 1 << 16, &b->T, err))
            return -1;
        const json_t *e = json_object_get(cfg, "layer_norm_eps");
        if (e && (!json_is_number(e) || !(json_number_value(e) > 0) || json_number_value(e) > 1))
            return eng_errorf(err, "config.json: \"layer_norm_eps\" must be a number in (0, 1]");
        b->eps = e ? (float)json_number_value(e) : 1e-12f;
        const char *pet = json_string_value(json_object_get(cfg, "position_embedding_type"));
        if (pet && strcmp(pet, "absolute") != 0)
            return eng_errorf(err, "config.json: position_embedding_type \"%s\" is not supported (only absolute)", pet);
        act = json_string_value(json_object_get(cfg, "hidden_act"));
        if (!act) act = "gelu";
    }
    if (cfg_int(cfg, "vocab_size", NULL, 1, 1 << 24, &b->V, err) ||
        cfg_int(cfg, "max_position_embeddings", NULL, 1, 1 << 20, &b->P, err))
        return -1;
    if (b->H % b->NH != 0)
        return eng_errorf(err, "config.json: hidden size %d is not a multiple of the %d heads", b->H, b->NH);
    if (strcmp(act, "gelu") == 0) b->act = ACT_GELU;
    else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) b->act = ACT_GELU_TANH;
    else if (strcmp(act, "relu") == 0) b->act = ACT_RELU;
    else return eng_errorf(err, "config.json: activation \"%s\" is not supported (gelu, gelu_new, relu)", act);
    const char *pt = json_string_value(json_object_get(cfg, "problem_type"));
    b->multi_label = pt && strcmp(pt, "multi_label_classification") == 0;
    return 0;
}

// ---------------------------------------------------------------- weights

// The tensor `name` (tried with the model prefix, then without, then with
// LayerNorm's old gamma/beta spelling), checked to be [d0] or [d0, d1].
static const float *weight(eng_bert *b, const char *name, int d0, int d1, char **err) {
    const char *prefix = b->distil ? "distilbert." : "bert.";
    char full[160], old[160];
    snprintf(old, sizeof old, "%s", name);
    size_t l = strlen(old);
    if (l > 7 && strstr(old, "LayerNorm") && strcmp(old + l - 7, ".weight") == 0) strcpy(old + l - 7, ".gamma");
    else if (l > 5 && strstr(old, "LayerNorm") && strcmp(old + l - 5, ".bias") == 0) strcpy(old + l - 5, ".beta");
    const char *cands[4] = {full, name, NULL, NULL};
    char full_old[200];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    snprintf(full_old, sizeof full_old, "%s%s", prefix, old);
    cands[2] = full_old;
    cands[3] = old;
    int64_t shape[2] = {d0, d1};
    for (int i = 0; i < 4; i++) {
        if (!eng_st_find(&b->st, cands[i])) continue;
        const float *p = eng_st_get(&b->st, cands[i], d1 > 0 ? 2 : 1, shape, err);
        if (p) b->n_params += (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
        return p;
    }
    eng_errorf(err, "model.safetensors: tensor \"%s%s\" is missing", prefix, name);
    return NULL;
}

static int get_lin(eng_bert *b, lin *o, const char *name, int out, int in, char **err) {
    char n[160];
    snprintf(n, sizeof n, "%s.weight", name);
    if (!(o->w = weight(b, n, out, in, err))) return -1;
    snprintf(n, sizeof n, "%s.bias", name);
    return (o->b = weight(b, n, out, 0, err)) ? 0 : -1;
}

static int get_norm(eng_bert *b, norm *o, const char *name, char **err) {
    char n[160];
    snprintf(n, sizeof n, "%s.weight", name);
    if (!(o->g = weight(b, n, b->H, 0, err))) return -1;
    snprintf(n, sizeof n, "%s.bias", name);
    return (o->b = weight(b, n, b->H, 0, err)) ? 0 : -1;
}

static int bind_weights(eng_bert *b, char **err) {
    char n[160];
    const int H = b->H, FF = b->FF;
    if (!(b->wemb = weight(b, "embeddings.word_embeddings.weight", b->V, H, err)) ||
        !(b->pemb = weight(b, "embeddings.position_embeddings.weight", b->P, H, err)) ||
        (!b->distil && !(b->temb = weight(b, "embeddings.token_type_embeddings.weight", b->T, H, err))) ||
        get_norm(b, &b->emb_ln, "embeddings.LayerNorm", err))
        return -1;
    for (int i = 0; i < b->L; i++) {
        layer *y = &b->layers[i];
        if (b->distil) {
            char p[64];
            snprintf(p, sizeof p, "transformer.layer.%d.", i);
#define NAME(s) (snprintf(n, sizeof n, "%s%s", p, s), n)
            if (get_lin(b, &y->q, NAME("attention.q_lin"), H, H, err) ||
                get_lin(b, &y->k, NAME("attention.k_lin"), H, H, err) ||
                get_lin(b, &y->v, NAME("attention.v_lin"), H, H, err) ||
                get_lin(b, &y->o, NAME("attention.out_lin"), H, H, err) ||
                get_norm(b, &y->ln1, NAME("sa_layer_norm"), err) ||
                get_lin(b, &y->f1, NAME("ffn.lin1"), FF, H, err) || get_lin(b, &y->f2, NAME("ffn.lin2"), H, FF, err) ||
                get_norm(b, &y->ln2, NAME("output_layer_norm"), err))
                return -1;
        } else {
            char p[64];
            snprintf(p, sizeof p, "encoder.layer.%d.", i);
            if (get_lin(b, &y->q, NAME("attention.self.query"), H, H, err) ||
                get_lin(b, &y->k, NAME("attention.self.key"), H, H, err) ||
                get_lin(b, &y->v, NAME("attention.self.value"), H, H, err) ||
                get_lin(b, &y->o, NAME("attention.output.dense"), H, H, err) ||
                get_norm(b, &y->ln1, NAME("attention.output.LayerNorm"), err) ||
                get_lin(b, &y->f1, NAME("intermediate.dense"), FF, H, err) ||
                get_lin(b, &y->f2, NAME("output.dense"), H, FF, err) ||
                get_norm(b, &y->ln2, NAME("output.LayerNorm"), err))
                return -1;
#undef NAME
        }
    }
    if (get_lin(b, &b->pool, b->distil ? "pre_classifier" : "pooler.dense", H, H, err)) return -1;
    // The classifier's rows are the labels: read its shape from the file.
    const eng_st_tensor *c = eng_st_find(&b->st, "classifier.weight");
    if (!c) return eng_errorf(err, "model.safetensors: no \"classifier.weight\": not a sequence-classification checkpoint");
    if (c->ndim != 2 || c->shape[0] < 1 || c->shape[0] > 100000)
        return eng_errorf(err, "model.safetensors: classifier.weight must be [labels, %d]", H);
    b->NL = (int)c->shape[0];
    return get_lin(b, &b->cls, "classifier", b->NL, H, err);
}

int eng_bert_load(eng_bert **out, const char *dir, const json_t *config, char **err) {
    *out = NULL;
    eng_bert *b = calloc(1, sizeof *b);
    if (!b) return eng_errorf(err, "%s: out of memory", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (parse_config(b, config, err) != 0) goto fail;
    if (!(b->layers = calloc((size_t)b->L, sizeof *b->layers))) {
        eng_errorf(err, "%s: out of memory", dir);
        goto fail;
    }
    if (eng_st_open(&b->st, path, err) != 0) goto fail;
    if (bind_weights(b, err) != 0) goto fail;
    *out = b;
    return 0;
fail:
    eng_bert_free(b);
    return -1;
}

void eng_bert_free(eng_bert *b) {
    if (!b) return;
    eng_st_close(&b->st);
    free(b->layers);
    free(b);
}

int eng_bert_n_labels(const eng_bert *b) { return b->NL; }
int eng_bert_vocab_size(const eng_bert *b) { return b->V; }
int eng_bert_max_positions(const eng_bert *b) { return b->P; }
size_t eng_bert_n_params(const eng_bert *b) { return b->n_params; }

// ---------------------------------------------------------------- kernels

// x[N,H] = LayerNorm(x + r) (r may be NULL).
static void add_layer_norm(float *x, const float *r, const norm *n, int N, int H, float eps) {
    for (int i = 0; i < N; i++) {
        float *row = x + (size_t)i * H;
        if (r) {
            const float *rr = r + (size_t)i * H;
            for (int j = 0; j < H; j++) row[j] += rr[j];
        }
        float mean = 0;
        for (int j = 0; j < H; j++) mean += row[j];
        mean /= (float)H;
        float var = 0;
        for (int j = 0; j < H; j++) var += (row[j] - mean) * (row[j] - mean);
        float rstd = 1.0f / sqrtf(var / (float)H + eps);
        for (int j = 0; j < H; j++) row[j] = (row[j] - mean) * rstd * n->g[j] + n->b[j];
    }
}

// GELU as BERT defines it, 0.5 x (1 + erf(x / sqrt 2)), eight values at a
// time (GCC vector extensions: one AVX register where the CPU has AVX2, picked
// at run time, else two SSE ones; erff would be a scalar libm
// call per element, 6% of a BERT-base forward). erf on [-4, 4] (beyond, erf is
// +-1 in float) as x P(x^2) / Q(x^2), the rational approximation Eigen and
// TensorFlow use, within ~1e-7 of erff.
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

// (In place through a pointer: a 32-byte vector passed by value would change
// the ABI of a baseline-x86-64 build.)
static inline __attribute__((always_inline)) void erf8(v8f *px) {
    v8f x = *px;
    const v8f hi = {4, 4, 4, 4, 4, 4, 4, 4};
    v8i over = x > hi, under = x < -hi;   // clamp to [-4, 4] with lane masks
    x = (v8f)(((v8i)x & ~over & ~under) | ((v8i)hi & over) | ((v8i)(-hi) & under));
    v8f x2 = x * x;
    v8f p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    v8f q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    *px = x * p / q;
}

static inline __attribute__((always_inline)) void gelu_erf_body(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        v8f e = v * 0.70710678118654752f;
        erf8(&e);
        v = 0.5f * v * (1.0f + e);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {   // the tail through one padded vector
        v8f v = {0};
        memcpy(&v, x + i, (n - i) * sizeof(float));
        v8f e = v * 0.70710678118654752f;
        erf8(&e);
        v = 0.5f * v * (1.0f + e);
        memcpy(x + i, &v, (n - i) * sizeof(float));
    }
}

// The same code either way (no contraction under -std=c11: the same bits).
static __attribute__((target("avx2"))) void gelu_erf_avx2(float *x, size_t n) { gelu_erf_body(x, n); }

static void gelu_erf(float *x, size_t n) {
    if (eng_cpu_level_get() >= ENG_CPU_AVX2) gelu_erf_avx2(x, n);
    else gelu_erf_body(x, n);
}

static void activation(float *x, size_t n, int act) {
    if (act == ACT_GELU) gelu_erf(x, n);
    else if (act == ACT_GELU_TANH) eng_gelu_forward(x, x, n);
    else eng_relu_forward(x, x, n);
}

// Self-attention of one text (n tokens from row `off`), every head: ctx =
// softmax(q k^T / sqrt(dh)) v. The text's own keys only: HF's mask gives the
// padding keys of a padded batch probability 0.
static void attend(const eng_bert *b, float *ctx, const float *q, const float *k, const float *v, int off, int n,
                   float *S) {
    const int H = b->H, dh = H / b->NH;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int h = 0; h < b->NH; h++) {
        size_t at = (size_t)off * H + (size_t)h * dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dh, scale, q + at, H, k + at, H, 0.0f, S, n);
        eng_softmax_forward(S, S, n, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dh, n, 1.0f, S, n, v + at, H, 0.0f, ctx + at, H);
    }
}

// ---------------------------------------------------------------- forward

void eng_bert_logits(const eng_bert *b, eng_arena *a, const int *const *tokens, const int *n_tokens, int B,
                     float *logits) {
    const int H = b->H, FF = b->FF;
    int N = 0, max_n = 0;
    for (int i = 0; i < B; i++) {
        N += n_tokens[i];
        if (n_tokens[i] > max_n) max_n = n_tokens[i];
    }
    size_t NH = (size_t)N * H;
    float *x = eng_arena_alloc(a, NH * sizeof *x);
    float *q = eng_arena_alloc(a, NH * sizeof *q);
    float *k = eng_arena_alloc(a, NH * sizeof *k);
    float *v = eng_arena_alloc(a, NH * sizeof *v);
    float *ctx = eng_arena_alloc(a, NH * sizeof *ctx);
    float *f = eng_arena_alloc(a, (size_t)N * FF * sizeof *f);
    float *S = eng_arena_alloc(a, (size_t)max_n * max_n * sizeof *S);
    int *off = eng_arena_alloc(a, (size_t)B * sizeof *off);

    // embeddings: word + position (+ token type 0), LayerNorm
    for (int i = 0, row = 0; i < B; i++) {
        off[i] = row;
        for (int t = 0; t < n_tokens[i]; t++, row++) {
            float *xr = x + (size_t)row * H;
            const float *we = b->wemb + (size_t)tokens[i][t] * H, *pe = b->pemb + (size_t)t * H;
            for (int j = 0; j < H; j++) xr[j] = we[j] + pe[j];
            if (b->temb)
                for (int j = 0; j < H; j++) xr[j] += b->temb[j];
        }
    }
    add_layer_norm(x, NULL, &b->emb_ln, N, H, b->eps);

    for (int l = 0; l < b->L; l++) {
        const layer *y = &b->layers[l];
        eng_linear_forward(q, x, y->q.w, y->q.b, N, H, H);
        eng_linear_forward(k, x, y->k.w, y->k.b, N, H, H);
        eng_linear_forward(v, x, y->v.w, y->v.b, N, H, H);
        for (int i = 0; i < B; i++) attend(b, ctx, q, k, v, off[i], n_tokens[i], S);
        eng_linear_forward(q, ctx, y->o.w, y->o.b, N, H, H);   // q is free again: the attention output
        add_layer_norm(x, q, &y->ln1, N, H, b->eps);
        eng_linear_forward(f, x, y->f1.w, y->f1.b, N, H, FF);
        activation(f, (size_t)N * FF, b->act);
        eng_linear_forward(q, f, y->f2.w, y->f2.b, N, FF, H);
        add_layer_norm(x, q, &y->ln2, N, H, b->eps);
    }

    // head on each text's first ([CLS]) state
    float *cls = eng_arena_alloc(a, (size_t)B * H * sizeof *cls);
    float *hid = eng_arena_alloc(a, (size_t)B * H * sizeof *hid);
    for (int i = 0; i < B; i++) memcpy(cls + (size_t)i * H, x + (size_t)off[i] * H, (size_t)H * sizeof *cls);
    eng_linear_forward(hid, cls, b->pool.w, b->pool.b, B, H, H);
    if (b->distil) eng_relu_forward(hid, hid, (size_t)B * H);
    else eng_tanh_forward(hid, hid, (size_t)B * H);
    eng_linear_forward(logits, hid, b->cls.w, b->cls.b, B, H, b->NL);
}

void eng_bert_scores(const eng_bert *b, float *logits, int B) {
    if (b->multi_label || b->NL == 1) eng_sigmoid_forward(logits, logits, (size_t)B * b->NL);
    else eng_softmax_forward(logits, logits, B, b->NL);
}
