// model.c — config.json → architecture table → loaded model (see model.h).
#include "engine/arch/model.h"
#include <stdio.h>          // snprintf
#include <stdlib.h>         // strtol, calloc
#include <string.h>         // strcmp, memset, memmem
#include <sys/stat.h>       // stat
#include "engine/arch/bert.h"    // BERT / DistilBERT text classifiers
#include "engine/arch/cnn.h"     // the CNN classifier architecture
#include "engine/arch/dcgan.h"   // DCGAN image generators
#include "engine/arch/fasttext.h"  // fastText-style text classifiers
#include "engine/arch/lstm.h"    // char-RNN LSTM language models
#include "engine/arch/marian.h"  // MarianMT translation (HF directories)
#include "engine/arch/lstm_attention.h"  // the LSTM encoder-decoder translator
#include "engine/arch/transformer.h"  // GPT-2 / Llama decoders
#include "engine/arch/transformer_net.h"  // fast neural style (image stylization)
#include "engine/core/util.h"    // eng_errorf

static const char *const task_names[] = {
    [ENG_TASK_IMAGE_CLASSIFICATION] = "image-classification",
    [ENG_TASK_TEXT_GENERATION] = "text-generation",
    [ENG_TASK_TRANSLATION] = "translation",
    [ENG_TASK_TEXT_CLASSIFICATION] = "text-classification",
    [ENG_TASK_IMAGE_STYLIZATION] = "image-stylization",
    [ENG_TASK_IMAGE_GENERATION] = "image-generation",
};
_Static_assert(sizeof task_names / sizeof task_names[0] == ENG_TASK__COUNT, "task_names out of step");

const char *eng_task_name(eng_task t) { return (unsigned)t < ENG_TASK__COUNT ? task_names[t] : "unknown"; }

int eng_task_parse(const char *name) {
    for (int t = 0; name && t < ENG_TASK__COUNT; t++)
        if (strcmp(name, task_names[t]) == 0) return t;
    return -1;
}

// ---------------------------------------------------------------- arch: cnn
static int cnn_load(eng_model *m, char **err) {
    eng_cnn *c = calloc(1, sizeof *c);
    if (!c) return eng_errorf(err, "%s: out of memory", m->dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", m->dir);
    if (eng_cnn_init(c, m->config, err) != 0) { free(c); return -1; }
    if (c->in_c != m->prep.channels || c->in_h != m->prep.height || c->in_w != m->prep.width) {
        eng_cnn_free(c); free(c);
        return eng_errorf(err, "config: input shape and layers disagree");
    }
    if (c->n_classes != m->n_labels) {
        int n = c->n_classes;
        eng_cnn_free(c); free(c);
        return eng_errorf(err, "config: \"labels\" has %d names but the last layer has %d outputs", m->n_labels, n);
    }
    if (eng_cnn_load(c, path, err) != 0 || eng_cnn_prepare_serving(c, err) != 0) { eng_cnn_free(c); free(c); return -1; }
    m->impl = c;
    m->n_params = c->n_params;
    return 0;
}

static void cnn_free(eng_model *m) {
    eng_cnn_free(m->impl);
    free(m->impl);
}

static void cnn_classify(eng_model *m, eng_tape *t, const float *x, int B, float *probs) {
    eng_cnn *c = m->impl;
    eng_tape_reset(t);
    eng_var *in = eng_tape_wrap(t, (float *)x, 4, (int[]){B, c->in_c, c->in_h, c->in_w});
    eng_var *p = eng_t_softmax(t, eng_cnn_serve(c, t, in));   // batch norm folded, one GEMM per conv
    memcpy(probs, p->val, (size_t)B * (size_t)c->n_classes * sizeof(float));
}

// ---------------------------------------------------------------- arch: dcgan (image generation)
static int dcgan_load(eng_model *m, char **err) {
    eng_dcgan *g = calloc(1, sizeof *g);
    if (!g) return eng_errorf(err, "%s: out of memory", m->dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", m->dir);
    if (eng_dcgan_init(g, m->config, 0, err) != 0 || eng_dcgan_load(g, path, err) != 0 ||
        eng_dcgan_prepare_serving(g, err) != 0) {
        eng_dcgan_free(g);
        free(g);
        return -1;
    }
    m->impl = g;
    m->n_params = g->n_g_params;
    m->n_latent = g->n_latent;
    m->out_channels = g->channels; m->out_height = g->height; m->out_width = g->width;
    const json_t *labels = json_object_get(m->config, "labels");   // a conditional model's classes
    if (g->n_classes) {
        if (!(m->labels = calloc((size_t)g->n_classes, sizeof(char *)))) return eng_errorf(err, "%s: out of memory", m->dir);
        for (int i = 0; i < g->n_classes; i++) {
            const char *s = json_string_value(json_array_get(labels, (size_t)i));
            if (!s) return eng_errorf(err, "config: labels[%d] is not a string", i);
            if (!(m->labels[i] = strdup(s))) return eng_errorf(err, "%s: out of memory", m->dir);
            m->n_labels = i + 1;
        }
    }
    return 0;
}

static void dcgan_free(eng_model *m) {
    eng_dcgan_free(m->impl);
    free(m->impl);
}

// The whole batch at once, batch norm folded (batch invariance: see dcgan.h).
static void dcgan_generate(eng_model *m, eng_tape *t, const float *z, const int *labels, int B, float *y) {
    eng_dcgan *g = m->impl;
    size_t n = (size_t)B * g->channels * g->height * g->width;
    eng_tape_reset(t);
    eng_dcgan_serve(g, &t->arena, z, labels, B, y);
    for (size_t k = 0; k < n; k++) y[k] = 0.5f * (y[k] + 1.0f);
}

// ---------------------------------------------------------------- arch: gpt2 / llama (text generation)
// Loads the tokenizer the directory carries (tokenizer.json, vocab.json +
// merges.txt, tokenizer.bin, or a character vocabulary); config "tokenizer"
// may name a llama2.c tokenizer file instead.
static int load_tokenizer(eng_model *m, int vocab_size, char **err) {
    const char *name = json_string_value(json_object_get(m->config, "tokenizer"));
    int rc;
    if (name) {
        if (strchr(name, '/') || strcmp(name, "..") == 0)
            return eng_errorf(err, "config: \"tokenizer\" must be a file name inside the model directory");
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", m->dir, name);
        rc = eng_tokenizer_load_llama2c(&m->tok, path, vocab_size, err);
    } else {
        rc = eng_tokenizer_load_dir(&m->tok, m->dir, vocab_size, err);
    }
    if (rc != 0) return -1;
    if (eng_tok_vocab_size(m->tok) > vocab_size)
        return eng_errorf(err, "tokenizer has %d tokens but the model only %d", eng_tok_vocab_size(m->tok), vocab_size);
    return 0;
}

// The model's lm is set: its parameter count, then its tokenizer.
static int lm_loaded(eng_model *m, char **err) {
    eng_lm_info info = m->arch->lm->info(m->lm);
    m->n_params = info.n_params;
    return load_tokenizer(m, info.vocab_size, err);
}

static int tf_load(eng_model *m, char **err) {
    eng_transformer *tf;
    if (eng_tf_load_dir(&tf, m->dir, m->config, err) != 0) return -1;
    m->lm = eng_tf_as_lm(tf);
    return lm_loaded(m, err);
}

static int lstm_load(eng_model *m, char **err) {
    eng_lstm *l;
    if (eng_lstm_load_dir(&l, m->dir, m->config, err) != 0) return -1;
    m->lm = eng_lstm_as_lm(l);
    return lm_loaded(m, err);
}

// ---------------------------------------------------------------- arch: fasttext (text classification)
static int ft_load(eng_model *m, char **err) {
    if (m->n_labels < 1) return eng_errorf(err, "%s/config.json: \"labels\" (the class names) is required", m->dir);
    eng_fasttext *ft = calloc(1, sizeof *ft);
    if (!ft) return eng_errorf(err, "%s: out of memory", m->dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", m->dir);
    if (eng_ft_init(ft, m->config, m->n_labels, err) != 0 || eng_ft_load(ft, path, err) != 0) { free(ft); return -1; }
    m->impl = ft;
    m->n_params = eng_ft_n_params(ft);
    m->max_text_ids = ft->max_ids;
    return 0;
}

static void ft_free(eng_model *m) {
    eng_ft_free(m->impl);
    free(m->impl);
}

// No tape: the forward pass of each text needs only a dim-sized buffer.
static void ft_classify(eng_model *m, eng_tape *t, const int *const *ids, const int *n_ids, int B, float *probs) {
    const eng_fasttext *ft = m->impl;
    float h[ENG_FT_MAX_DIM];
    for (int b = 0; b < B; b++) eng_ft_forward(ft, ids[b], n_ids[b], h, probs + (size_t)b * (size_t)ft->n_labels);
    (void)t;
}

static int ft_text_ids(const eng_model *m, const char *text, size_t len, int **ids, int *n_ids, char **err) {
    return eng_ft_features(m->impl, text, len, ids, n_ids, err);
}

// ---------------------------------------------------------------- arch: marian (translation)
// A HF MarianMT directory: the weights, then source.spm / target.spm with
// vocab.json (target_vocab.json for the target side when the model has
// separate vocabularies), each checked against the model's vocabulary.
static int marian_tokenizer(eng_model *m, eng_tokenizer **tok, const char *spm, const char *vocab, int model_vocab,
                            char **err) {
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/%s", m->dir, spm);
    snprintf(p2, sizeof p2, "%s/%s", m->dir, vocab);
    if (eng_tokenizer_load_spm(tok, p1, p2, err) != 0) return -1;
    if (eng_tok_vocab_size(*tok) > model_vocab)
        return eng_errorf(err, "%s: %d ids but the model's vocabulary has %d", p2, eng_tok_vocab_size(*tok), model_vocab);
    if (eng_tok_eos_id(*tok) < 0) return eng_errorf(err, "%s: no \"</s>\" token", p2);
    return 0;
}

static int marian_load(eng_model *m, char **err) {
    if (eng_marian_load_dir(&m->s2s, m->dir, m->config, err) != 0) return -1;
    eng_s2s_info info = eng_marian_s2s_ops.info(m->s2s);
    m->n_params = info.n_params;
    m->max_text_ids = info.max_src_len;
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/target_vocab.json", m->dir);
    const char *tgt_vocab = stat(p, &st) == 0 ? "target_vocab.json" : "vocab.json";
    if (marian_tokenizer(m, &m->tok, "source.spm", "vocab.json", info.src_vocab, err) != 0 ||
        marian_tokenizer(m, &m->tok_tgt, "target.spm", tgt_vocab, info.tgt_vocab, err) != 0)
        return -1;
    if (eng_tok_eos_id(m->tok) != info.eos_id)
        return eng_errorf(err, "%s: vocab.json's \"</s>\" is id %d but config.json's eos_token_id is %d", m->dir,
                          eng_tok_eos_id(m->tok), info.eos_id);
    return 0;
}

// Source ids as HF's MarianTokenizer makes them: a leading language code
// ">>xx<<" (multilingual opus-mt targets) is one token when the vocabulary
// has it, the rest goes through SentencePiece, then </s>.
static int marian_text_ids(const eng_model *m, const char *text, size_t len, int **ids, int *n_ids, char **err) {
    int code = -1;
    size_t skip = 0;
    if (len > 4 && text[0] == '>' && text[1] == '>') {
        const char *end = memmem(text + 2, len - 2 < 32 ? len - 2 : 32, "<<", 2);
        if (end && (code = eng_tok_lookup(m->tok, text, (size_t)(end + 2 - text))) >= 0) skip = (size_t)(end + 2 - text);
    }
    int max = m->max_text_ids - (code >= 0);
    int rc = eng_tok_encode(m->tok, text + skip, len - skip, ENG_TOK_FLAG_ADD_EOS, max > 0 ? max : 1, ids, n_ids, err);
    if (rc != 0 || code < 0) return rc;
    int *w = realloc(*ids, (size_t)(*n_ids + 1) * sizeof(int));
    if (!w) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
        eng_errorf(err, "out of memory encoding the text");
        return ENG_TOK_E_NOMEM;
    }
    memmove(w + 1, w, (size_t)*n_ids * sizeof(int));
    w[0] = code;
    *ids = w;
    (*n_ids)++;
    return 0;
}

// ---------------------------------------------------------------- arch: bert / distilbert (text classification)

// id2label {"0": "NEGATIVE", "1": "POSITIVE"} -> m->labels in id order.
static int read_labels(eng_model *m, int n_out, char **err) {
    const json_t *map = json_object_get(m->config, "id2label");
    if (!json_is_object(map) || json_object_size(map) == 0)
        return eng_errorf(err, "%s/config.json: \"id2label\" (the label names, {\"0\": \"NEGATIVE\", ...}) is required "
                          "for text classification", m->dir);
    int n = (int)json_object_size(map);
    const json_t *nl = json_object_get(m->config, "num_labels");
    if (nl && json_integer_value(nl) != n)
        return eng_errorf(err, "%s/config.json: num_labels is %lld but id2label has %d entries", m->dir,
                          (long long)json_integer_value(nl), n);
    if (n != n_out)
        return eng_errorf(err, "%s/config.json: id2label has %d labels but classifier.weight has %d rows", m->dir, n,
                          n_out);
    if (!(m->labels = calloc((size_t)n, sizeof *m->labels))) return eng_errorf(err, "%s: out of memory", m->dir);
    m->n_labels = n;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)map, key, val) {
        char *end;
        long id = strtol(key, &end, 10);
        if (*key == '\0' || *end != '\0' || id < 0 || id >= n || m->labels[id] || !json_is_string(val))
            return eng_errorf(err, "%s/config.json: id2label must map each of \"0\"..\"%d\" to a name (\"%s\")", m->dir,
                              n - 1, key);
        if (!(m->labels[id] = strdup(json_string_value(val)))) return eng_errorf(err, "%s: out of memory", m->dir);
    }
    return 0;
}

static int bert_load(eng_model *m, char **err) {
    eng_bert *b;
    if (eng_bert_load(&b, m->dir, m->config, err) != 0) return -1;
    m->impl = b;
    m->n_params = eng_bert_n_params(b);
    m->max_text_ids = eng_bert_max_positions(b);
    if (!m->labels && read_labels(m, eng_bert_n_labels(b), err) != 0) return -1;
    if (m->n_labels != eng_bert_n_labels(b))
        return eng_errorf(err, "%s: %d labels but classifier.weight has %d rows", m->dir, m->n_labels, eng_bert_n_labels(b));
    char vocab[4096], tcfg[4096];
    struct stat st;
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", m->dir);
    snprintf(tcfg, sizeof tcfg, "%s/tokenizer_config.json", m->dir);
    if (stat(vocab, &st) != 0) return eng_errorf(err, "%s: vocab.txt (the WordPiece vocabulary) is missing", m->dir);
    if (eng_tokenizer_load_wordpiece(&m->tok, vocab, stat(tcfg, &st) == 0 ? tcfg : NULL, err) != 0) return -1;
    if (eng_tok_vocab_size(m->tok) > eng_bert_vocab_size(b))
        return eng_errorf(err, "%s: vocab.txt has %d tokens but the model only %d", m->dir, eng_tok_vocab_size(m->tok),
                          eng_bert_vocab_size(b));
    if (eng_tok_bos_id(m->tok) < 0 || eng_tok_eos_id(m->tok) < 0)
        return eng_errorf(err, "%s: vocab.txt lacks [CLS] or [SEP]", m->dir);
    return 0;
}

static void bert_free(eng_model *m) { eng_bert_free(m->impl); }

static void bert_classify(eng_model *m, eng_tape *t, const int *const *tokens, const int *n_tokens, int B, float *probs) {
    eng_tape_reset(t);
    eng_bert_logits(m->impl, &t->arena, tokens, n_tokens, B, probs);
    eng_bert_scores(m->impl, probs, B);
}

// ---------------------------------------------------------------- arch: lstm-attention (translation)
// Weights, then the two character vocabularies beside them; the source ids
// of a text end with the source vocabulary's "</s>".
static int la_load(eng_model *m, char **err) {
    eng_la *l;
    if (eng_la_load_dir(&l, m->dir, m->config, err) != 0) return -1;
    m->s2s = eng_la_as_s2s(l);
    m->n_params = l->n_params;
    m->max_text_ids = l->cfg.max_src_len;
    char path[4096];
    snprintf(path, sizeof path, "%s/source_vocab.json", m->dir);
    if (eng_tokenizer_load_chars(&m->tok, path, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/target_vocab.json", m->dir);
    if (eng_tokenizer_load_chars(&m->tok_tgt, path, err) != 0) return -1;
    if (eng_tok_vocab_size(m->tok) != l->cfg.src_vocab || eng_tok_vocab_size(m->tok_tgt) != l->cfg.tgt_vocab)
        return eng_errorf(err, "%s: the vocabularies (%d, %d entries) do not match src_vocab_size %d / tgt_vocab_size %d",
                          m->dir, eng_tok_vocab_size(m->tok), eng_tok_vocab_size(m->tok_tgt), l->cfg.src_vocab,
                          l->cfg.tgt_vocab);
    if (eng_tok_eos_id(m->tok) < 0) return eng_errorf(err, "%s: source_vocab.json has no \"</s>\"", m->dir);
    return 0;
}

// ---------------------------------------------------------------- the architecture table
// One row per architecture; its entry points say what it serves.
// ---------------------------------------------------------------- arch: transformer_net (image stylization)
static int tnet_load(eng_model *m, char **err) {
    eng_tnet *n;
    if (eng_tnet_load_dir(&n, m->dir, m->config, err) != 0) return -1;
    m->impl = n;
    m->n_params = n->n_params;
    return 0;
}

static void tnet_free(eng_model *m) { eng_tnet_free(m->impl); }

static void tnet_stylize(eng_model *m, eng_tape *t, const float *x, int B, int H, int W, float *y) {
    eng_tape_reset(t);
    eng_tnet_forward(m->impl, &t->arena, x, B, H, W, y);
}

static size_t tnet_bytes(const eng_model *m, int H, int W) { return eng_tnet_scratch_bytes(m->impl, H, W); }

static const eng_model_arch archs[] = {
    {.name = "cnn", .task = ENG_TASK_IMAGE_CLASSIFICATION, .load = cnn_load, .free = cnn_free,
     .classify_images = cnn_classify},
    {.name = "gpt2", .task = ENG_TASK_TEXT_GENERATION, .load = tf_load, .lm = &eng_tf_lm_ops},
    {.name = "llama", .task = ENG_TASK_TEXT_GENERATION, .load = tf_load, .lm = &eng_tf_lm_ops},
    {.name = "lstm", .task = ENG_TASK_TEXT_GENERATION, .load = lstm_load, .lm = &eng_lstm_lm_ops},
    {.name = "fasttext", .task = ENG_TASK_TEXT_CLASSIFICATION, .load = ft_load, .free = ft_free,
     .classify_text = ft_classify, .text_ids = ft_text_ids},
    {.name = "marian", .task = ENG_TASK_TRANSLATION, .load = marian_load, .s2s = &eng_marian_s2s_ops,
     .text_ids = marian_text_ids},
    {.name = "bert", .task = ENG_TASK_TEXT_CLASSIFICATION, .load = bert_load, .free = bert_free,
     .classify_text = bert_classify},
    {.name = "distilbert", .task = ENG_TASK_TEXT_CLASSIFICATION, .load = bert_load,
     .free = bert_free, .classify_text = bert_classify},
    {.name = "lstm-attention", .task = ENG_TASK_TRANSLATION, .load = la_load, .s2s = &eng_la_s2s_ops},
    {.name = "transformer_net", .task = ENG_TASK_IMAGE_STYLIZATION, .load = tnet_load, .free = tnet_free,
     .image_to_image = tnet_stylize, .image_to_image_bytes = tnet_bytes, .image_min_side = ENG_TNET_MIN_SIDE},
    {.name = "dcgan", .task = ENG_TASK_IMAGE_GENERATION, .load = dcgan_load, .free = dcgan_free,
     .generate_images = dcgan_generate},
};

// Foreign layouts say what they are with "model_type" (Hugging Face) or
// "format" (llama2.c); returns the task/arch they imply, or sets *err.
static int foreign_layout(const json_t *cfg, const char **task, const char **arch, const char *path, char **err) {
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    const char *fmt = json_string_value(json_object_get(cfg, "format"));
    if (fmt && strcmp(fmt, "llama2c") == 0) { *task = "text-generation"; *arch = "llama"; return 0; }
    if (mt && (strcmp(mt, "gpt2") == 0 || strcmp(mt, "llama") == 0)) { *task = "text-generation"; *arch = mt; return 0; }
    if (mt && strcmp(mt, "marian") == 0) { *task = "translation"; *arch = "marian"; return 0; }
    if (mt && (strcmp(mt, "bert") == 0 || strcmp(mt, "distilbert") == 0)) {
        // sequence classification: the label names come with the checkpoint
        if (!json_is_object(json_object_get(cfg, "id2label")))
            return eng_errorf(err, "%s: model_type \"%s\" needs \"id2label\" (the label names, {\"0\": \"NEGATIVE\", ...}): "
                              "only sequence-classification checkpoints are served", path, mt);
        *task = "text-classification";
        *arch = mt;
        return 0;
    }
    if (mt) return eng_errorf(err, "%s: unsupported model_type \"%s\"", path, mt);
    if (fmt) return eng_errorf(err, "%s: unsupported format \"%s\"", path, fmt);
    return 0;
}

// ---------------------------------------------------------------- loading
static int parse_floats(const json_t *a, float *out, int n, float def, const char *key, char **err) {
    for (int i = 0; i < n; i++) out[i] = def;
    if (!a) return 0;
    if (json_is_number(a)) { for (int i = 0; i < n; i++) out[i] = (float)json_number_value(a); return 0; }
    if (!json_is_array(a) || (json_array_size(a) != 1 && (int)json_array_size(a) != n))
        return eng_errorf(err, "config: input.%s must be a number or an array of %d numbers", key, n);
    for (int i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, json_array_size(a) == 1 ? 0 : (size_t)i);
        if (!json_is_number(v)) return eng_errorf(err, "config: input.%s must hold numbers", key);
        out[i] = (float)json_number_value(v);
    }
    return 0;
}

int eng_model_parse_image_input(const json_t *in, eng_image_prep *p, int *invert_auto, char **err) {
    memset(p, 0, sizeof *p);
    *invert_auto = 0;
    if (!json_is_object(in)) return eng_errorf(err, "config: \"input\" (channels, height, width) is required");
    json_int_t c = json_integer_value(json_object_get(in, "channels"));
    json_int_t h = json_integer_value(json_object_get(in, "height"));
    json_int_t w = json_integer_value(json_object_get(in, "width"));
    if ((c != 1 && c != 3) || h < 1 || h > 4096 || w < 1 || w > 4096)
        return eng_errorf(err, "config: input.channels must be 1 or 3 and input.height/width in 1..4096");
    p->channels = (int)c; p->height = (int)h; p->width = (int)w;
    if (parse_floats(json_object_get(in, "mean"), p->mean, p->channels, 0.0f, "mean", err) ||
        parse_floats(json_object_get(in, "std"), p->std, p->channels, 1.0f, "std", err))
        return -1;
    for (int i = 0; i < p->channels; i++)
        if (!(p->std[i] > 0)) return eng_errorf(err, "config: input.std must be positive");
    const json_t *bg = json_object_get(in, "background");
    p->background = bg ? (float)json_number_value(bg) : 0.0f;
    const json_t *inv = json_object_get(in, "invert");
    if (json_is_string(inv) && strcmp(json_string_value(inv), "auto") == 0) *invert_auto = 1;
    else if (inv && !json_is_boolean(inv)) return eng_errorf(err, "config: input.invert must be true, false or \"auto\"");
    else p->invert = json_is_true(inv);
    return 0;
}

void eng_model_free(eng_model *m) {
    if (!m) return;
    if (m->arch && m->arch->free && m->impl) m->arch->free(m);
    if (m->arch && m->arch->lm && m->lm) m->arch->lm->free(m->lm);
    if (m->arch && m->arch->s2s && m->s2s) m->arch->s2s->free(m->s2s);
    eng_tokenizer_free(m->tok);
    eng_tokenizer_free(m->tok_tgt);
    for (int i = 0; i < m->n_labels; i++) free(m->labels[i]);
    free(m->labels);
    json_decref(m->config);
    free(m->dir);
    free(m);
}

int eng_model_load(eng_model **out, const char *dir, char **err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) return eng_errorf(err, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(cfg)) { json_decref(cfg); return eng_errorf(err, "%s: not a JSON object", path); }

    eng_model *m = calloc(1, sizeof *m);
    if (!m) { json_decref(cfg); return eng_errorf(err, "%s: out of memory", path); }
    m->config = cfg;
    m->dir = strdup(dir);
    if (!m->dir) { eng_errorf(err, "%s: out of memory", path); goto fail; }
    const char *task = json_string_value(json_object_get(cfg, "task"));
    const char *arch = json_string_value(json_object_get(cfg, "arch"));
    if ((!task || !arch) && foreign_layout(cfg, &task, &arch, path, err) != 0) goto fail;
    if (!task || eng_task_parse(task) < 0) { eng_errorf(err, "%s: \"task\" missing or unknown", path); goto fail; }
    if (!arch) { eng_errorf(err, "%s: \"arch\" missing", path); goto fail; }
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, arch) == 0 && (int)archs[i].task == eng_task_parse(task)) m->arch = &archs[i];
    if (!m->arch) { eng_errorf(err, "%s: no architecture \"%s\" for task \"%s\" in this build", path, arch, task); goto fail; }
    m->task = m->arch->task;

    if (m->task == ENG_TASK_IMAGE_CLASSIFICATION &&
        eng_model_parse_image_input(json_object_get(cfg, "input"), &m->prep, &m->invert_auto, err) != 0)
        goto fail;
    // classifiers name their classes in "labels" (Hugging Face text
    // classifiers may use "id2label" instead: their loader reads it)
    if (m->task == ENG_TASK_IMAGE_CLASSIFICATION ||
        (m->task == ENG_TASK_TEXT_CLASSIFICATION && json_object_get(cfg, "labels"))) {
        const json_t *labels = json_object_get(cfg, "labels");
        if (!json_is_array(labels) || json_array_size(labels) == 0 || json_array_size(labels) > 100000) {
            eng_errorf(err, "%s: \"labels\" must be a non-empty array of strings", path);
            goto fail;
        }
        m->labels = calloc(json_array_size(labels), sizeof(char *));
        if (!m->labels) { eng_errorf(err, "%s: out of memory for the labels", path); goto fail; }
        for (size_t i = 0; i < json_array_size(labels); i++) {
            const char *s = json_string_value(json_array_get(labels, i));
            if (!s) { eng_errorf(err, "%s: labels[%zu] is not a string", path, i); goto fail; }
            if (!(m->labels[m->n_labels] = strdup(s))) { eng_errorf(err, "%s: out of memory for the labels", path); goto fail; }
            m->n_labels++;
        }
    }
    if (m->arch->load(m, err) != 0) goto fail;
    *out = m;
    return 0;
fail:
    eng_model_free(m);
    return -1;
}

size_t eng_model_input_size(const eng_model *m) {
    return (size_t)m->prep.channels * (size_t)m->prep.height * (size_t)m->prep.width;
}

// Mean luminance of the image's one-pixel border after compositing on the background.
static float border_luma(const eng_image *img, float bg) {
    double sum = 0;
    long n = 0;
    for (int y = 0; y < img->height; y++) {
        for (int x = 0; x < img->width; x++) {
            if (y != 0 && y != img->height - 1 && x != 0 && x != img->width - 1) {
                x = img->width - 2;   // jump to the right edge
                continue;
            }
            const unsigned char *p = img->rgba + ((size_t)y * (size_t)img->width + (size_t)x) * 4;
            float a = p[3] / 255.0f;
            float l = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
            sum += a * l + (1 - a) * bg;
            n++;
        }
    }
    return n ? (float)(sum / (double)n) : 0.0f;
}

int eng_model_image_input(const eng_model *m, const eng_image *img, float *out) {
    eng_image_prep p = m->prep;
    if (m->invert_auto) p.invert = border_luma(img, p.background) > 127.5f;
    return eng_image_to_tensor(out, img, &p);
}

int eng_model_text_ids(const eng_model *m, const char *text, size_t len, int **ids, int *n_ids, char **err) {
    *ids = NULL;
    *n_ids = 0;
    if (m->arch->text_ids) return m->arch->text_ids(m, text, len, ids, n_ids, err);
    if (!m->tok) return eng_errorf(err, "model %s takes no text", m->dir);
    int max = m->max_text_ids > 0 ? m->max_text_ids : 1 << 30;
    return eng_tok_encode(m->tok, text, len, ENG_TOK_FLAG_ADD_BOS | ENG_TOK_FLAG_ADD_EOS, max, ids, n_ids, err);
}
