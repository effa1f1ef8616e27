// tokenizer_sentencepiece.c — ENG_TOK_KIND_SPM: a SentencePiece model (.spm /
// .model: unigram or BPE, any normalizer) run by Debian's libsentencepiece
// through engine/text/sentencepiece_shim.h, optionally with a Marian
// vocab.json that gives the model's ids of the pieces (opus-mt: one id space
// for a source and a target vocabulary, "</s>" 0, "<pad>" last). The
// library splits and joins the text, so the pieces are spm_encode's by
// construction; this file only maps pieces to ids and back.
#include "engine/text/tokenizer_internal.h"

#include <stdlib.h>          // malloc, free
#include <string.h>          // memcpy, strcmp
#include "engine/core/util.h"           // eng_errorf, eng_read_file
#include "engine/text/sentencepiece_shim.h"  // eng_spm_*

static const char META[] = "\xe2\x96\x81";   // U+2581 "▁", SentencePiece's space
static const char UNK_SURFACE[] = " \xe2\x81\x87 ";   // " ⁇ ": what the library decodes <unk> to

// Whether vocabulary string s is a control symbol that decodes to nothing.
static int is_control(const char *s, size_t n) {
    static const char *const ctl[] = {"<s>", "</s>", "<pad>"};
    for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++)
        if (n == strlen(ctl[i]) && memcmp(s, ctl[i], n) == 0) return 1;
    return 0;
}

// The bytes piece s decodes to inside a text: "▁" -> " " (the library's
// Decode on a whole sequence, minus the start-of-text rule eng_tok_piece
// applies). Written into pool at *off.
static int add_piece_bytes(eng__tok_buf *pool, const char *s, size_t n, int unk, size_t *off, uint32_t *plen) {
    *plen = 0;
    if (unk) {
        *plen = sizeof UNK_SURFACE - 1;
        return eng__tok_buf_add(pool, UNK_SURFACE, sizeof UNK_SURFACE - 1, off);
    }
    if (is_control(s, n)) return eng__tok_buf_add(pool, "", 0, off);
    char *tmp = malloc(n + 1);
    if (!tmp) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(s + i, META, 3) == 0) { tmp[k++] = ' '; i += 3; }
        else tmp[k++] = s[i++];
    }
    int rc = eng__tok_buf_add(pool, tmp, k, off);
    *plen = (uint32_t)k;
    free(tmp);
    return rc;
}

// Fills t from the model's own pieces (no vocab.json): id = piece id.
static int read_model_vocab(eng_tokenizer *t, eng__tok_buf *pool, size_t **str_off) {
    int n = eng_spm_piece_count(t->spm);
    *str_off = malloc((size_t)(n > 0 ? n : 1) * sizeof(size_t));
    if (!*str_off || eng__tok_alloc(t, ENG_TOK_KIND_SPM, n) != 0) return -1;
    for (int id = 0; id < n; id++) {
        size_t len;
        const char *s = eng_spm_id_to_piece(t->spm, id, &len);
        if (eng__tok_buf_add(pool, s, len, &(*str_off)[id]) != 0) return -1;
        t->str_len[id] = (uint32_t)len;
    }
    return 0;
}

int eng_tokenizer_load_spm(eng_tokenizer **out, const char *model_path, const char *vocab_json_path, char **err) {
    *out = NULL;
    size_t len;
    char *data = eng_read_file(model_path, &len, err);
    if (!data) return -1;
    eng_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { free(data); return eng_errorf(err, "%s: out of memory loading the tokenizer", model_path); }
    char *why = NULL;
    t->spm = eng_spm_load(data, len, &why);
    free(data);
    eng__tok_buf pool = {0};
    size_t *str_off = NULL, *piece_off = NULL;
    json_t *vocab = NULL;
    if (!t->spm) {
        eng_errorf(err, "%s: %s", model_path, why ? why : "out of memory loading the tokenizer");
        goto fail;
    }
    if (vocab_json_path) {
        json_error_t je;
        vocab = json_load_file(vocab_json_path, 0, &je);
        if (!vocab) { eng_errorf(err, "%s: line %d: %s", vocab_json_path, je.line, je.text); goto fail; }
        if (eng__tok_hf_read_vocab(t, ENG_TOK_KIND_SPM, vocab, NULL, &pool, &str_off, vocab_json_path, err) != 0)
            goto fail;
        t->spm_vocab = 1;
    } else if (read_model_vocab(t, &pool, &str_off) != 0) {
        eng__tok_oom(err);
        goto fail;
    }
    // unk / eos by their usual names (the pool holds every string by now)
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = pool.data + str_off[id];
        if (t->unk < 0 && strcmp(s, "<unk>") == 0) t->unk = id;
        if (t->eos < 0 && strcmp(s, "</s>") == 0) t->eos = id;
    }
    if (!t->spm_vocab) t->unk = eng_spm_unk_id(t->spm);
    if (t->unk < 0) {
        eng_errorf(err, "%s: no \"<unk>\" piece", vocab_json_path ? vocab_json_path : model_path);
        goto fail;
    }
    if (!(piece_off = malloc((size_t)t->n_vocab * sizeof(size_t)))) { eng__tok_oom(err); goto fail; }
    for (int id = 0; id < t->n_vocab; id++) {
        // the pool may move while it grows: copy the string out first
        size_t n = t->str_len[id];
        char *s = malloc(n + 1);
        if (!s) { eng__tok_oom(err); goto fail; }
        memcpy(s, pool.data + str_off[id], n);
        int rc = add_piece_bytes(&pool, s, n, id == t->unk, &piece_off[id], &t->piece_len[id]);
        free(s);
        if (rc != 0) { eng__tok_oom(err); goto fail; }
    }
    eng__tok_set_pool(t, &pool, str_off, piece_off);
    if (eng__tok_strmap_build(t) != 0) { eng__tok_oom(err); goto fail; }
    free(str_off);
    free(piece_off);
    json_decref(vocab);
    free(why);
    *out = t;
    return 0;
fail:
    free(why);
    free(pool.data);
    free(str_off);
    free(piece_off);
    json_decref(vocab);
    eng_tokenizer_free(t);
    return -1;
}

// ---------------------------------------------------------------- encode

typedef struct {
    const eng_tokenizer *t;
    eng__tok_ids *out;
} spm_ctx;

// One piece from the library -> its id (vocab.json: by string, unknown -> <unk>).
static int push_piece(void *ctx, const char *s, size_t n, int id) {
    spm_ctx *c = ctx;
    if (c->t->spm_vocab) {
        id = eng__tok_strmap_get(c->t, s, n);
        if (id < 0) id = c->t->unk;
    }
    return eng__tok_ids_push(c->out, id);
}

int eng__tok_spm_encode(const eng_tokenizer *t, const char *text, size_t len, int seg, eng__tok_bpe_scratch *s,
                        eng__tok_ids *out, char **err) {
    spm_ctx c = {t, out};
    int rc = eng_spm_encode(t->spm, text, len, push_piece, &c, err);
    if (rc == ENG_SPM_E_NOMEM) return ENG_TOK_E_NOMEM;
    return rc;   // 0, -1 (*err), or the push's ENG_TOK_E_TOO_LONG / ENG_TOK_E_NOMEM
}

// ---------------------------------------------------------------- decode

int eng__tok_spm_decode(const eng_tokenizer *t, const int *ids, int n, char **text, size_t *len, char **err) {
    const char **s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    size_t *l = malloc((size_t)(n > 0 ? n : 1) * sizeof *l);
    int k = 0, rc;
    if (!s || !l) {
        rc = ENG_TOK_E_NOMEM;
    } else {
        for (int i = 0; i < n; i++) {
            if (t->piece_len[ids[i]] == 0) continue;   // </s>, <pad>, <s>: nothing
            s[k] = t->str[ids[i]];
            l[k++] = t->str_len[ids[i]];
        }
        size_t dl = 0;
        rc = eng_spm_decode_pieces(t->spm, s, l, k, text, &dl, err);
        if (rc == ENG_SPM_E_NOMEM) rc = ENG_TOK_E_NOMEM;
        if (rc == 0 && len) *len = dl;
    }
    free(s);
    free(l);
    if (rc == ENG_TOK_E_NOMEM) eng_errorf(err, "out of memory decoding %d tokens", n);
    return rc;
}
