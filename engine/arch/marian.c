// marian.c — MarianMT encoder-decoder (see marian.h for the architecture
// and how serving batches it).
#include "engine/arch/marian.h"

#include <assert.h>             // assert (caller bugs only)
#include <cblas.h>              // cblas_sgemm
#include <math.h>               // sqrt, sin, cos, expf, erff
#include <stdio.h>              // snprintf
#include <stdlib.h>             // malloc, calloc, free
#include <string.h>             // memcpy, memset, strcmp
#include "engine/core/ops.h"         // eng_linear_forward_rowwise, eng_softmax_forward, eng_gelu_forward
#include "engine/core/ops_par.h"     // eng_par_linear (decoder steps across the compute pool)
#include "engine/core/ops_seq.h"     // eng_layernorm_forward, eng_attention_cached_forward, eng_add_forward
#include "engine/core/util.h"        // eng_errorf
#include "engine/io/safetensors.h"   // eng_st_file

enum {
    MA_MAX_DIM = 1 << 14,
    MA_MAX_FFN = 1 << 16,
    MA_MAX_LAYERS = 256,
    MA_MAX_HEADS = 256,
    MA_MAX_VOCAB = 1 << 22,
    MA_MAX_POS = 1 << 16,
};

typedef enum { ACT_SILU, ACT_GELU, ACT_GELU_TANH, ACT_RELU } ma_act;

typedef struct { const float *w, *b; } ma_lin;    // w [out, in], b [out]
typedef struct { const float *w, *b; } ma_norm;   // [d] each
typedef struct { ma_lin q, k, v, o; ma_norm ln; } ma_attn;
typedef struct {
    ma_attn self, cross;   // cross: decoder layers only
    ma_lin fc1, fc2;
    ma_norm ln_ff;
} ma_layer;

struct eng_s2s {
    int d, enc_layers, dec_layers, enc_heads, dec_heads, enc_ffn, dec_ffn;
    int src_vocab, tgt_vocab, max_pos;
    int pad_id, eos_id, start_id;
    int share;                   // one vocabulary and embedding matrix for both sides
    float emb_scale;
    ma_act act;
    eng_st_file st;              // the mapped checkpoint (every weight points into it)
    const float *enc_emb, *dec_emb, *head;   // [V, d]
    const float *final_bias;     // [tgt_vocab], or NULL (none in the file)
    float *pos;                  // [max_pos, d] sinusoids (owned)
    ma_layer *enc, *dec;
    size_t n_params;
};

// Encoder outputs of B sources, kept as what the decoder reads: per decoder
// layer the cross-attention K and V of every source row (rows of source b at
// off[b] .. off[b] + n[b]).
struct eng_s2s_mem {
    int B, N, d, L;
    int *n, *off;
    float *kv;                   // [L][2][N][d]
};

struct eng_s2s_dec {
    const eng_s2s *m;
    const eng_s2s_mem *mem;
    int b;                       // its source in mem
    int pos;                     // tokens consumed
    int max_len;
    float *kv;                   // [dec_layers][2][max_len][d] self-attention cache
};

// ---------------------------------------------------------------- config.json

// Integer key in [min, max]; def when absent or null (def < min: required).
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

static int cfg_bool(const json_t *o, const char *key, int def, int *out, char **err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_boolean(v)) return eng_errorf(err, "config.json: \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

static int parse_config(eng_s2s *m, const json_t *c, char **err) {
    int scale = 0, share = 1;
    if (cfg_int(c, "d_model", -1, 2, MA_MAX_DIM, &m->d, err) ||
        cfg_int(c, "encoder_layers", -1, 1, MA_MAX_LAYERS, &m->enc_layers, err) ||
        cfg_int(c, "decoder_layers", -1, 1, MA_MAX_LAYERS, &m->dec_layers, err) ||
        cfg_int(c, "encoder_attention_heads", -1, 1, MA_MAX_HEADS, &m->enc_heads, err) ||
        cfg_int(c, "decoder_attention_heads", -1, 1, MA_MAX_HEADS, &m->dec_heads, err) ||
        cfg_int(c, "encoder_ffn_dim", -1, 1, MA_MAX_FFN, &m->enc_ffn, err) ||
        cfg_int(c, "decoder_ffn_dim", -1, 1, MA_MAX_FFN, &m->dec_ffn, err) ||
        cfg_int(c, "vocab_size", -1, 2, MA_MAX_VOCAB, &m->src_vocab, err) ||
        cfg_int(c, "decoder_vocab_size", m->src_vocab, 2, MA_MAX_VOCAB, &m->tgt_vocab, err) ||
        cfg_int(c, "max_position_embeddings", 512, 2, MA_MAX_POS, &m->max_pos, err) ||
        cfg_int(c, "pad_token_id", -1, 0, MA_MAX_VOCAB, &m->pad_id, err) ||
        cfg_int(c, "eos_token_id", 0, 0, MA_MAX_VOCAB, &m->eos_id, err) ||
        cfg_int(c, "decoder_start_token_id", m->pad_id, 0, MA_MAX_VOCAB, &m->start_id, err) ||
        cfg_bool(c, "scale_embedding", 0, &scale, err) ||
        cfg_bool(c, "share_encoder_decoder_embeddings", 1, &share, err))
        return -1;
    if (m->d % 2 || m->d % m->enc_heads || m->d % m->dec_heads)
        return eng_errorf(err, "config.json: d_model %d must be even and a multiple of the head counts (%d, %d)", m->d,
                          m->enc_heads, m->dec_heads);
    if (share && m->tgt_vocab != m->src_vocab)
        return eng_errorf(err, "config.json: shared embeddings but decoder_vocab_size %d != vocab_size %d",
                          m->tgt_vocab, m->src_vocab);
    if (m->pad_id >= m->tgt_vocab || m->eos_id >= m->tgt_vocab || m->start_id >= m->tgt_vocab)
        return eng_errorf(err, "config.json: pad/eos/decoder_start token ids must be below the vocabulary size %d",
                          m->tgt_vocab);
    if (json_is_true(json_object_get(c, "normalize_before")) || json_is_true(json_object_get(c, "normalize_embedding")))
        return eng_errorf(err, "config.json: \"normalize_before\"/\"normalize_embedding\" are not supported (Marian is post-LN)");
    const char *act = json_string_value(json_object_get(c, "activation_function"));
    if (!act) act = "gelu";   // HF MarianConfig's default
    if (strcmp(act, "swish") == 0 || strcmp(act, "silu") == 0) m->act = ACT_SILU;
    else if (strcmp(act, "gelu") == 0) m->act = ACT_GELU;
    else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) m->act = ACT_GELU_TANH;
    else if (strcmp(act, "relu") == 0) m->act = ACT_RELU;
    else return eng_errorf(err, "config.json: activation_function \"%s\" is not supported (swish, silu, gelu, gelu_new, relu)", act);
    m->emb_scale = scale ? (float)sqrt((double)m->d) : 1.0f;
    m->share = share;
    return 0;
}

// MarianSinusoidalPositionalEmbedding: row p, feature j < d/2 is
// sin(p / 10000^(2j/d)), feature d/2 + j the cos of the same angle.
static void sinusoids(float *out, int n, int d) {
    for (int p = 0; p < n; p++)
        for (int j = 0; j < d / 2; j++) {
            double a = p / pow(10000.0, 2.0 * j / d);
            out[(size_t)p * d + j] = (float)sin(a);
            out[(size_t)p * d + d / 2 + j] = (float)cos(a);
        }
}

// ---------------------------------------------------------------- weights

typedef struct {
    eng_s2s *m;
    const char *path;
    char **err;
} loader;

// Tensor `name` of shape [s0] (s1 == 0) or [s0, s1]; NULL with *err naming file and tensor.
static const float *tensor(loader *L, const char *name, int s0, int s1) {
    int64_t shape[2] = {s0, s1};
    char *why = NULL;
    const float *p = eng_st_get(&L->m->st, name, s1 ? 2 : 1, shape, &why);
    if (!p) {
        eng_errorf(L->err, "%s: %s", L->path, why ? why : "out of memory");
        free(why);
        return NULL;
    }
    L->m->n_params += (size_t)s0 * (size_t)(s1 ? s1 : 1);
    return p;
}

static int lin(loader *L, ma_lin *o, const char *pre, const char *name, int out, int in) {
    char b[160];
    snprintf(b, sizeof b, "%s%s.weight", pre, name);
    if (!(o->w = tensor(L, b, out, in))) return -1;
    snprintf(b, sizeof b, "%s%s.bias", pre, name);
    return (o->b = tensor(L, b, out, 0)) ? 0 : -1;
}

static int norm(loader *L, ma_norm *o, const char *pre, const char *name, int d) {
    ma_lin l;
    if (lin(L, &l, pre, name, d, 0) != 0) return -1;
    o->w = l.w;
    o->b = l.b;
    return 0;
}

static int attn(loader *L, ma_attn *a, const char *pre, const char *name, int d) {
    char p[160];
    snprintf(p, sizeof p, "%s%s.", pre, name);
    char ln[64];
    snprintf(ln, sizeof ln, "%s_layer_norm", name);
    return lin(L, &a->q, p, "q_proj", d, d) || lin(L, &a->k, p, "k_proj", d, d) || lin(L, &a->v, p, "v_proj", d, d) ||
           lin(L, &a->o, p, "out_proj", d, d) || norm(L, &a->ln, pre, ln, d) ? -1 : 0;
}

// Layer norm weights are [d] vectors: lin() with in == 0 asks for [out].
static int layers(loader *L, ma_layer *ls, int n, const char *side, int ffn) {
    int d = L->m->d;
    for (int l = 0; l < n; l++) {
        char pre[96];
        snprintf(pre, sizeof pre, "model.%s.layers.%d.", side, l);
        ma_layer *y = &ls[l];
        if (attn(L, &y->self, pre, "self_attn", d) != 0) return -1;
        if (strcmp(side, "decoder") == 0 && attn(L, &y->cross, pre, "encoder_attn", d) != 0) return -1;
        if (lin(L, &y->fc1, pre, "fc1", ffn, d) || lin(L, &y->fc2, pre, "fc2", d, ffn) ||
            norm(L, &y->ln_ff, pre, "final_layer_norm", d))
            return -1;
    }
    return 0;
}

static void marian_free(eng_s2s *m) {
    if (!m) return;
    eng_st_close(&m->st);
    free(m->pos);
    free(m->enc);
    free(m->dec);
    free(m);
}

// The first of the NULL-terminated `names` the file has, or NULL.
static const char *first_present(const eng_st_file *st, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (eng_st_find(st, names[i])) return names[i];
    return NULL;
}

// The embedding matrices and the output projection. Shared vocabulary: one
// matrix; a file written with tied duplicates dropped may keep it under any
// of its tied names. Separate vocabularies: one per side.
static int embeddings(loader *L) {
    static const char *const shared[] = {"model.shared.weight", "model.encoder.embed_tokens.weight",
                                         "model.decoder.embed_tokens.weight", "lm_head.weight", NULL};
    static const char *const enc[] = {"model.encoder.embed_tokens.weight", "model.shared.weight", NULL};
    static const char *const dec[] = {"model.decoder.embed_tokens.weight", NULL};
    eng_s2s *m = L->m;
    const char *e = first_present(&m->st, m->share ? shared : enc), *d = m->share ? e : first_present(&m->st, dec);
    if (!e || !d)
        return eng_errorf(L->err, "%s: tensor '%s' is missing", L->path, !e ? (m->share ? shared[0] : enc[0]) : dec[0]);
    if (!(m->enc_emb = tensor(L, e, m->src_vocab, m->d))) return -1;
    m->dec_emb = m->share ? m->enc_emb : tensor(L, d, m->tgt_vocab, m->d);
    if (!m->dec_emb) return -1;
    m->head = m->dec_emb;
    // an untied head, or a stored copy of the tied one (same values either way)
    if (strcmp(e, "lm_head.weight") != 0 && eng_st_find(&m->st, "lm_head.weight") &&
        !(m->head = tensor(L, "lm_head.weight", m->tgt_vocab, m->d)))
        return -1;
    if (eng_st_find(&m->st, "final_logits_bias") &&
        !(m->final_bias = tensor(L, "final_logits_bias", 1, m->tgt_vocab)))
        return -1;
    return 0;
}

int eng_marian_load_dir(eng_s2s **out, const char *dir, const json_t *config, char **err) {
    *out = NULL;
    eng_s2s *m = calloc(1, sizeof *m);
    if (!m) return eng_errorf(err, "%s: out of memory", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *why = NULL;
    if (parse_config(m, config, &why) != 0) {
        eng_errorf(err, "%s/%s", dir, why ? why : "config.json: out of memory");
        free(why);
        free(m);
        return -1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    loader L = {m, path, err};
    m->enc = calloc((size_t)m->enc_layers, sizeof *m->enc);
    m->dec = calloc((size_t)m->dec_layers, sizeof *m->dec);
    m->pos = malloc((size_t)m->max_pos * (size_t)m->d * sizeof(float));
    if (!m->enc || !m->dec || !m->pos) {
        eng_errorf(err, "%s: out of memory", dir);
        goto fail;
    }
    sinusoids(m->pos, m->max_pos, m->d);
    if (eng_st_open(&m->st, path, err) != 0) goto fail;
    if (embeddings(&L) != 0 || layers(&L, m->enc, m->enc_layers, "encoder", m->enc_ffn) != 0 ||
        layers(&L, m->dec, m->dec_layers, "decoder", m->dec_ffn) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    marian_free(m);
    return -1;
}

// ---------------------------------------------------------------- kernels

// out[N, OUT] = x[N, IN] W^T + b (b may be NULL). Few rows (a decoder step
// of a few hypotheses, a short source): eng_par_linear, which reads W once,
// split by columns across the compute pool, and sums every row in the same
// order whatever N or the split, so results do not depend on the batch; from
// 16 rows on: OpenBLAS sgemm (packing W pays off there; below, it costs more
// than the product).
static void linear_wb(float *out, const float *x, const float *w, const float *b, int N, int in, int outd) {
    if (N < 16) {
        eng_par_linear(out, x, w, b, N, in, outd);
        return;
    }
    for (int r = 0; r < N; r++) {
        if (b) memcpy(out + (size_t)r * outd, b, (size_t)outd * sizeof(float));
        else memset(out + (size_t)r * outd, 0, (size_t)outd * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, outd, in, 1.0f, x, in, w, in, 1.0f, out, outd);
}

static void linear(float *out, const float *x, const ma_lin *l, int N, int in, int outd) {
    linear_wb(out, x, l->w, l->b, N, in, outd);
}

static float *scratch_floats(eng_tape *t, size_t n) { return eng_arena_alloc(&t->arena, n * sizeof(float)); }

static void activate(ma_act a, float *x, size_t n) {
    switch (a) {
    case ACT_SILU: for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i])); break;
    case ACT_GELU: for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f)); break;
    case ACT_GELU_TANH: eng_gelu_forward(x, x, n); break;
    case ACT_RELU: eng_relu_forward(x, x, n); break;
    }
}

// x = LN(x + h) over N rows.
static void add_norm(float *x, const float *h, const ma_norm *ln, int N, int d) {
    eng_add_forward(x, x, h, (size_t)N * d);
    eng_layernorm_forward(x, NULL, NULL, x, ln->w, ln->b, N, d, 1e-5f);
}

// x = LN(x + FC2(act(FC1(x)))); f [N, ffn] and h [N, d] are scratch.
static void ffn_block(const eng_s2s *m, const ma_layer *y, float *x, float *f, float *h, int N, int ffn) {
    linear(f, x, &y->fc1, N, m->d, ffn);
    activate(m->act, f, (size_t)N * ffn);
    linear(h, f, &y->fc2, N, ffn, m->d);
    add_norm(x, h, &y->ln_ff, N, m->d);
}

// Bidirectional attention of n rows over themselves (one source): per head,
// S = q k^T / sqrt(hd), softmax by row, out = S v. Rows are d wide, heads
// side by side. sc: [n * n] scratch.
static void self_attend(float *out, float *sc, const float *q, const float *k, const float *v, int n, int d, int H) {
    int hd = d / H;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * hd, *kh = k + (size_t)h * hd, *vh = v + (size_t)h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, scale, qh, d, kh, d, 0.0f, sc, n);
        eng_softmax_forward(sc, sc, n, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f, sc, n, vh, d, 0.0f,
                    out + (size_t)h * hd, d);
    }
}

// ---------------------------------------------------------------- encode

static eng_s2s_mem *mem_alloc(int B, int N, int d, int L) {
    eng_s2s_mem *mem = calloc(1, sizeof *mem);
    if (!mem) return NULL;
    mem->B = B; mem->N = N; mem->d = d; mem->L = L;
    mem->n = malloc((size_t)B * sizeof(int));
    mem->off = malloc((size_t)B * sizeof(int));
    mem->kv = malloc((size_t)L * 2 * (size_t)N * (size_t)d * sizeof(float));
    if (!mem->n || !mem->off || !mem->kv) {
        free(mem->n); free(mem->off); free(mem->kv); free(mem);
        return NULL;
    }
    return mem;
}

static void mem_free(eng_s2s_mem *mem) {
    if (!mem) return;
    free(mem->n);
    free(mem->off);
    free(mem->kv);
    free(mem);
}

// The encoder over one source's n rows x[n, d] (in place); the other
// buffers are scratch for n rows.
static void encode_rows(const eng_s2s *m, float *x, int n, float *q, float *k, float *v, float *a, float *h, float *f,
                        float *sc) {
    int d = m->d;
    for (int l = 0; l < m->enc_layers; l++) {
        const ma_layer *y = &m->enc[l];
        linear(q, x, &y->self.q, n, d, d);
        linear(k, x, &y->self.k, n, d, d);
        linear(v, x, &y->self.v, n, d, d);
        self_attend(a, sc, q, k, v, n, d, m->enc_heads);
        linear(h, a, &y->self.o, n, d, d);
        add_norm(x, h, &y->self.ln, n, d);
        ffn_block(m, y, x, f, h, n, m->enc_ffn);
    }
}

// Sources are encoded one after the other with sgemm over each one's rows:
// the same calls whatever else is in the batch, so a source's encoding (and
// translation) does not depend on its batch neighbours; no padding rows are
// computed. The decoder steps, where a batch pays off, stack hypotheses.
static eng_s2s_mem *encode(const eng_s2s *m, eng_tape *scratch, const int *const *src, const int *n_src, int B) {
    int d = m->d, N = 0, longest = 0;
    for (int b = 0; b < B; b++) {
        assert(n_src[b] >= 1 && n_src[b] <= m->max_pos);
        N += n_src[b];
        if (n_src[b] > longest) longest = n_src[b];
    }
    eng_s2s_mem *mem = mem_alloc(B, N, d, m->dec_layers);
    if (!mem) return NULL;
    eng_tape_reset(scratch);
    size_t rows = (size_t)longest * d;
    float *x = scratch_floats(scratch, (size_t)N * d);
    float *q = scratch_floats(scratch, rows), *k = scratch_floats(scratch, rows), *v = scratch_floats(scratch, rows);
    float *a = scratch_floats(scratch, rows), *h = scratch_floats(scratch, rows);
    float *f = scratch_floats(scratch, (size_t)longest * m->enc_ffn);
    float *sc = scratch_floats(scratch, (size_t)longest * longest);
    for (int b = 0, r = 0; b < B; r += n_src[b], b++) {
        int n = n_src[b];
        mem->n[b] = n;
        mem->off[b] = r;
        float *xb = x + (size_t)r * d;
        for (int t = 0; t < n; t++) {   // scaled token embedding + position t
            int id = src[b][t];
            assert(id >= 0 && id < m->src_vocab);
            const float *e = m->enc_emb + (size_t)id * d, *p = m->pos + (size_t)t * d;
            for (int j = 0; j < d; j++) xb[(size_t)t * d + j] = e[j] * m->emb_scale + p[j];
        }
        encode_rows(m, xb, n, q, k, v, a, h, f, sc);
        // what every decoder step reads: each decoder layer's cross K and V of these rows
        for (int l = 0; l < m->dec_layers; l++) {
            const ma_attn *c = &m->dec[l].cross;
            float *K = mem->kv + ((size_t)(2 * l) * N + (size_t)r) * d, *V = K + (size_t)N * d;
            linear(K, xb, &c->k, n, d, d);
            linear(V, xb, &c->v, n, d, d);
        }
    }
    return mem;
}

// ---------------------------------------------------------------- decode

static eng_s2s_dec *dec_new(const eng_s2s *m, const eng_s2s_mem *mem, int b, int max_len) {
    assert(b >= 0 && b < mem->B && max_len >= 1 && max_len <= m->max_pos);
    eng_s2s_dec *dc = malloc(sizeof *dc);
    if (!dc) return NULL;
    *dc = (eng_s2s_dec){.m = m, .mem = mem, .b = b, .pos = 0, .max_len = max_len};
    dc->kv = malloc((size_t)m->dec_layers * 2 * (size_t)max_len * (size_t)m->d * sizeof(float));
    if (!dc->kv) { free(dc); return NULL; }
    return dc;
}

static void dec_copy(eng_s2s_dec *dst, const eng_s2s_dec *src) {
    assert(dst->m == src->m && dst->max_len == src->max_len);
    dst->mem = src->mem;
    dst->b = src->b;
    dst->pos = src->pos;
    size_t rows = (size_t)src->pos * src->m->d, block = (size_t)src->max_len * src->m->d;
    for (int i = 0; i < 2 * src->m->dec_layers; i++)   // only the filled rows of each K / V block
        memcpy(dst->kv + i * block, src->kv + i * block, rows * sizeof(float));
}

static void dec_free(eng_s2s_dec *dc) {
    if (!dc) return;
    free(dc->kv);
    free(dc);
}

static void step(const eng_s2s *m, eng_tape *scratch, eng_s2s_dec **decs, const int *tokens, int n, float *logits) {
    int d = m->d, H = m->dec_heads, hd = d / H;
    eng_tape_reset(scratch);
    if (n <= 0) return;
    size_t att = 0;   // attention scratch: the longest key range (own cache or source)
    for (int i = 0; i < n; i++) {
        const eng_s2s_dec *dc = decs[i];
        assert(dc->m == m && dc->pos < dc->max_len);
        size_t s1 = eng_attention_cached_scratch(1, dc->pos), s2 = eng_attention_cached_scratch(1, dc->mem->n[dc->b] - 1);
        att = s1 > att ? s1 : att;
        att = s2 > att ? s2 : att;
    }
    float *x = scratch_floats(scratch, (size_t)n * d), *q = scratch_floats(scratch, (size_t)n * d);
    float *k = scratch_floats(scratch, (size_t)n * d), *v = scratch_floats(scratch, (size_t)n * d);
    float *a = scratch_floats(scratch, (size_t)n * d), *h = scratch_floats(scratch, (size_t)n * d);
    float *f = scratch_floats(scratch, (size_t)n * m->dec_ffn), *sc = scratch_floats(scratch, att);
    for (int i = 0; i < n; i++) {
        assert(tokens[i] >= 0 && tokens[i] < m->tgt_vocab);
        const float *e = m->dec_emb + (size_t)tokens[i] * d, *p = m->pos + (size_t)decs[i]->pos * d;
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = e[j] * m->emb_scale + p[j];
    }
    for (int l = 0; l < m->dec_layers; l++) {
        const ma_layer *y = &m->dec[l];
        // causal self-attention: each row's k/v into its cache, then over positions 0..pos
        linear(q, x, &y->self.q, n, d, d);
        linear(k, x, &y->self.k, n, d, d);
        linear(v, x, &y->self.v, n, d, d);
        for (int i = 0; i < n; i++) {
            eng_s2s_dec *dc = decs[i];
            size_t block = (size_t)dc->max_len * d;
            float *kc = dc->kv + (size_t)(2 * l) * block, *vc = kc + block;
            memcpy(kc + (size_t)dc->pos * d, k + (size_t)i * d, (size_t)d * sizeof(float));
            memcpy(vc + (size_t)dc->pos * d, v + (size_t)i * d, (size_t)d * sizeof(float));
            eng_attention_cached_forward(a + (size_t)i * d, sc, q + (size_t)i * d, kc, vc, 1, dc->pos, H, H, hd);
        }
        linear(h, a, &y->self.o, n, d, d);
        add_norm(x, h, &y->self.ln, n, d);
        // cross-attention over the row's source (its K/V precomputed by encode)
        linear(q, x, &y->cross.q, n, d, d);
        for (int i = 0; i < n; i++) {
            const eng_s2s_mem *mem = decs[i]->mem;
            int b = decs[i]->b;
            const float *K = mem->kv + ((size_t)(2 * l) * mem->N + (size_t)mem->off[b]) * d;
            const float *V = K + (size_t)mem->N * d;
            // one query at "position" n-1 over n keys: the cached kernel's causal limit covers them all
            eng_attention_cached_forward(a + (size_t)i * d, sc, q + (size_t)i * d, K, V, 1, mem->n[b] - 1, H, H, hd);
        }
        linear(h, a, &y->cross.o, n, d, d);
        add_norm(x, h, &y->cross.ln, n, d);
        linear(f, x, &y->fc1, n, d, m->dec_ffn);
        activate(m->act, f, (size_t)n * m->dec_ffn);
        linear(h, f, &y->fc2, n, m->dec_ffn, d);
        add_norm(x, h, &y->ln_ff, n, d);
    }
    linear_wb(logits, x, m->head, m->final_bias, n, d, m->tgt_vocab);   // + final_logits_bias
    for (int i = 0; i < n; i++) decs[i]->pos++;
}

static eng_s2s_info info(const eng_s2s *m) {
    return (eng_s2s_info){
        .arch = "marian",
        .src_vocab = m->src_vocab,
        .tgt_vocab = m->tgt_vocab,
        .max_src_len = m->max_pos,
        .max_tgt_len = m->max_pos,
        .start_id = m->start_id,
        .eos_id = m->eos_id,
        .pad_id = m->pad_id,
        .n_params = m->n_params,
    };
}

const eng_s2s_ops eng_marian_s2s_ops = {
    .info = info,
    .encode = encode,
    .mem_free = mem_free,
    .dec_new = dec_new,
    .dec_copy = dec_copy,
    .dec_free = dec_free,
    .step = step,
    .free = marian_free,
};
