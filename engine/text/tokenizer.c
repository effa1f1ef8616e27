// tokenizer.c — the tokenizers' public API: encode / decode / piece through
// one per-kind ops table, loading from a model directory or a tokenizer.json.
// The kinds and their shared pieces live in the other tokenizer_*.c files
// (tokenizer_internal.h lists them); see tokenizer.h for the contracts.
#include "engine/text/tokenizer.h"
#include "engine/text/tokenizer_internal.h"

#include <assert.h>          // static_assert
#include <stdio.h>           // snprintf
#include <stdlib.h>          // malloc, free, qsort
#include <string.h>          // memcpy, memcmp, strlen
#include <sys/stat.h>        // stat
#include "engine/core/util.h"     // eng_errorf

// ---------------------------------------------------------------- the kinds

// What differs per kind, in one table: its name, its segment encoder, and
// two decoding conventions.
typedef struct {
    const char *name;
    int (*encode)(const eng_tokenizer *t, const char *text, size_t len, int seg,
                  eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
    int dummy_prefix;        // SentencePiece: a piece's leading space is dropped after BOS / at the start
    int special_as_piece;    // a special token is written as its decoded bytes (GPT-2's strings are byte-mapped)
    // decode ids (checked to be in the vocabulary); NULL: concatenate eng_tok_piece
    int (*decode)(const eng_tokenizer *t, const int *ids, int n, char **text, size_t *len, char **err);
    int word_joined;         // WordPiece: pieces are " word" / "##cont" -> "cont"; the first token is its string
} tok_kind_ops;

static const tok_kind_ops kinds[] = {
    [ENG_TOK_KIND_GPT2] = {"gpt2", eng__tok_gpt2_encode, 0, 1},
    [ENG_TOK_KIND_LLAMA2C] = {"llama2c", eng__tok_llama2c_encode, 1, 0},
    [ENG_TOK_KIND_HF_LLAMA] = {"hf-llama", eng__tok_hf_llama_encode, 1, 0},
    [ENG_TOK_KIND_CHAR] = {"char", eng__tok_char_encode, 0, 0},
    [ENG_TOK_KIND_SPM] = {"spm", eng__tok_spm_encode, 1, 0, eng__tok_spm_decode},
    [ENG_TOK_KIND_WORDPIECE] = {"wordpiece", eng__tok_wordpiece_encode, 0, 0, NULL, 1},
};
static_assert(sizeof(kinds) / sizeof(kinds[0]) == ENG_TOK_KIND__COUNT,
              "kinds must describe every eng_tok_kind");

const char *eng_tok_kind_name(eng_tok_kind k)
{
    return (unsigned)k < ENG_TOK_KIND__COUNT ? kinds[k].name : "?";
}

// ---------------------------------------------------------------- info

eng_tok_kind eng_tok_kind_of(const eng_tokenizer *t) { return t->kind; }
int eng_tok_vocab_size(const eng_tokenizer *t) { return t->n_vocab; }
int eng_tok_bos_id(const eng_tokenizer *t) { return t->bos; }
int eng_tok_eos_id(const eng_tokenizer *t) { return t->eos; }

int eng_tok_lookup(const eng_tokenizer *t, const char *piece, size_t len)
{
    return eng__tok_strmap_get(t, piece, len);
}

// ---------------------------------------------------------------- loading a directory

static int file_exists(const char *dir, const char *name, char *path, size_t cap)
{
    struct stat st;
    snprintf(path, cap, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int eng_tokenizer_load_dir(eng_tokenizer **out, const char *dir, int vocab_size, char **err)
{
    *out = NULL;
    size_t cap = strlen(dir) + 32;
    char *p1 = malloc(cap), *p2 = malloc(cap);
    int rc;
    if (!p1 || !p2) {
        rc = eng_errorf(err, "%s: out of memory loading the tokenizer", dir);
    } else if (file_exists(dir, "vocab.txt", p1, cap)) {   // BERT (its tokenizer.json is WordPiece)
        rc = eng_tokenizer_load_wordpiece(out, p1, file_exists(dir, "tokenizer_config.json", p2, cap) ? p2 : NULL, err);
    } else if (file_exists(dir, "tokenizer.json", p1, cap)) {
        rc = eng_tokenizer_load_hf(out, p1, err);
    } else if (file_exists(dir, "vocab.json", p1, cap) && file_exists(dir, "merges.txt", p2, cap)) {
        rc = eng_tokenizer_load_gpt2(out, p1, p2, err);
    } else if (file_exists(dir, "tokenizer.bin", p1, cap)) {
        rc = eng_tokenizer_load_llama2c(out, p1, vocab_size, err);
    } else if (file_exists(dir, "vocab.json", p1, cap)) {
        rc = eng_tokenizer_load_chars(out, p1, err);
    } else {
        rc = eng_errorf(err, "%s: no vocab.txt, tokenizer.json, vocab.json (+ merges.txt) or tokenizer.bin", dir);
    }
    free(p1);
    free(p2);
    return rc;
}

// ---------------------------------------------------------------- Hugging Face tokenizer.json

// Byte-level BPE (GPT-2 style, tokenizer_bpe.c) when the pre-tokenizer is
// ByteLevel, else SentencePiece-style BPE (HF Llama, tokenizer_spm.c).
int eng_tokenizer_load_hf_json(eng_tokenizer **out, const json_t *root, char **err)
{
    *out = NULL;
    const json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model)) return eng_errorf(err, "no \"model\" object");
    // Older files omit model.type; a vocab plus merges is a BPE model.
    if (type ? strcmp(type, "BPE") != 0 : !json_object_get(model, "merges"))
        return eng_errorf(err, "model.type \"%s\" is not supported (only BPE)", type ? type : "?");
    int aps = 0;
    int bl = eng__tok_hf_bytelevel(json_object_get(root, "pre_tokenizer"), &aps, err);
    if (bl < 0) return -1;
    if (bl > 0) return eng__tok_hf_bytelevel_load(out, root, aps, err);
    return eng__tok_hf_llama_load(out, root, err);
}

int eng_tokenizer_load_hf(eng_tokenizer **out, const char *tokenizer_json_path, char **err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(tokenizer_json_path, 0, &je);
    if (!root) return eng_errorf(err, "%s: line %d: %s", tokenizer_json_path, je.line, je.text);
    char *e = NULL;
    int rc = eng_tokenizer_load_hf_json(out, root, &e);
    json_decref(root);
    if (rc != 0) {
        // no message: even that could not be allocated
        eng_errorf(err, "%s: %s", tokenizer_json_path, e ? e : "out of memory loading the tokenizer");
        free(e);
    }
    return rc;
}

// ---------------------------------------------------------------- encode / decode

// Encodes one segment that holds no special token.
static int encode_segment(const eng_tokenizer *t, const char *text, size_t len, int seg,
                          eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err)
{
    if ((unsigned)t->kind >= ENG_TOK_KIND__COUNT) return eng_errorf(err, "unknown tokenizer kind");
    return kinds[t->kind].encode(t, text, len, seg, s, out, err);
}

// The text a special token is written as: its decoded bytes for GPT-2 (the
// vocabulary string is byte-mapped), the added-token content for HF Llama
// (whose BOS/EOS decode to nothing).
static const char *special_text(const eng_tokenizer *t, int id, size_t *len)
{
    if (kinds[t->kind].special_as_piece) {
        *len = t->piece_len[id];
        return t->piece[id];
    }
    *len = t->str_len[id];
    return t->str[id];
}

// The special token that starts at text[i], longest first; -1 if none.
// *slen gets the length of its text.
static int special_at(const eng_tokenizer *t, const char *text, size_t len, size_t i, size_t *slen)
{
    int best = -1;
    *slen = 0;
    for (int k = 0; k < t->n_special; k++) {
        size_t l;
        const char *s = special_text(t, t->special[k], &l);
        if (l == 0 || l > len - i || l <= *slen) continue;
        if (memcmp(text + i, s, l) == 0) {
            best = t->special[k];
            *slen = l;
        }
    }
    return best;
}

int eng_tok_encode(const eng_tokenizer *t, const char *text, size_t len, int flags, int max_ids,
                   int **ids, int *n_ids, char **err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return eng_errorf(err, "NULL text");
    eng__tok_ids out = {.max = max_ids};
    eng__tok_bpe_scratch s = {0};
    int rc = 0;
    if ((flags & ENG_TOK_FLAG_ADD_BOS) && t->bos >= 0) rc = eng__tok_ids_push(&out, t->bos);
    if (rc == 0 && (flags & ENG_TOK_FLAG_SPECIAL) && t->n_special > 0) {
        size_t start = 0;
        int seg = 0;
        for (size_t i = 0; i < len && rc == 0;) {
            size_t sl;
            int sp = special_at(t, text, len, i, &sl);
            if (sp < 0) { i++; continue; }
            if (i > start) rc = encode_segment(t, text + start, i - start, seg++, &s, &out, err);
            if (rc == 0) rc = eng__tok_ids_push(&out, sp);
            i += sl;
            start = i;
            seg++;
        }
        if (rc == 0 && (start < len || len == 0))
            rc = encode_segment(t, text + start, len - start, seg, &s, &out, err);
    } else if (rc == 0) {
        rc = encode_segment(t, text, len, 0, &s, &out, err);
    }
    if (rc == 0 && (flags & ENG_TOK_FLAG_ADD_EOS) && t->eos >= 0) rc = eng__tok_ids_push(&out, t->eos);
    eng__tok_bpe_scratch_free(&s);
    if (rc == 0 && !out.v && !(out.v = malloc(sizeof(int))))   // a valid pointer even for no ids
        rc = ENG_TOK_E_NOMEM;
    if (rc != 0) {
        free(out.v);
        if (rc == ENG_TOK_E_TOO_LONG) eng_errorf(err, "text is longer than %d tokens", max_ids);
        else if (rc == ENG_TOK_E_NOMEM) eng_errorf(err, "out of memory encoding the text");
        else rc = -1;   // *err set by the segment encoder
        return rc;
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

const char *eng_tok_piece(const eng_tokenizer *t, int prev, int id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    const char *p = t->piece[id];
    size_t l = t->piece_len[id];
    if (kinds[t->kind].word_joined && prev < 0) {   // " ".join: nothing before the first token
        *len = t->str_len[id];
        return t->str[id];
    }
    // SentencePiece: the dummy-prefix space goes after BOS (run.c) and at the start.
    if (kinds[t->kind].dummy_prefix && (prev < 0 || prev == t->bos) && l > 0 && p[0] == ' ') {
        p++;
        l--;
    }
    *len = l;
    return p;
}

int eng_tok_decode(const eng_tokenizer *t, const int *ids, int n, char **text, size_t *len,
                   char **err)
{
    *text = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return eng_errorf(err, "token id %d at position %d is outside the vocabulary (0..%d)",
                              ids[i], i, t->n_vocab - 1);
        total += t->piece_len[ids[i]] + t->str_len[ids[i]];   // bounds eng_tok_piece's either
    }
    if (kinds[t->kind].decode) return kinds[t->kind].decode(t, ids, n, text, len, err);
    char *buf = malloc(total + 1);
    if (!buf) {
        eng_errorf(err, "out of memory decoding %d tokens", n);
        return ENG_TOK_E_NOMEM;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *p = eng_tok_piece(t, i > 0 ? ids[i - 1] : -1, ids[i], &l);
        memcpy(buf + k, p, l);
        k += l;
    }
    buf[k] = '\0';
    *text = buf;
    if (len) *len = k;
    return 0;
}
