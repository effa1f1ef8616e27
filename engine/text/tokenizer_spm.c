// tokenizer_spm.c — SentencePiece-style BPE with byte fallback, in two
// flavours:
//   - llama2.c tokenizer.bin, encoded exactly like llama2.c run.c's encode():
//     dummy prefix " " (unless the text is empty), one token per UTF-8
//     character or its bytes + 3, then repeatedly merge the adjacent pair
//     whose concatenation is the highest-scoring piece (leftmost on ties);
//   - a Hugging Face Llama tokenizer.json: "▁" for space (Prepend/Replace
//     normalizer or Metaspace pre-tokenizer), characters or <0xNN> byte
//     tokens, then merges by rank as HF tokenizers' BPE does.
#include "engine/text/tokenizer_internal.h"

#include <stdio.h>          // snprintf
#include <stdlib.h>         // malloc, free
#include <string.h>         // memcpy, memcmp, strcmp
#include "engine/core/util.h"    // eng_errorf, eng_read_file

static const char META[] = "\xE2\x96\x81";   // U+2581 "▁", SentencePiece's space
#define META_LEN 3

// 0..255 if s[0..l) is exactly "<0xHH>", else -1.
static int byte_token(const char *s, size_t l)
{
    if (l != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// ---------------------------------------------------------------- llama2.c

int eng_tokenizer_load_llama2c_mem(eng_tokenizer **out, const void *data, size_t len,
                                   int vocab_size, char **err)
{
    *out = NULL;
    const uint8_t *d = data;
    if (len < 4) return eng_errorf(err, "truncated: %zu bytes, no max_token_length header", len);
    int32_t max_tok;
    memcpy(&max_tok, d, 4);
    if (max_tok <= 0 || max_tok > (1 << 20))
        return eng_errorf(err, "max_token_length %d is not plausible (not a tokenizer.bin?)", max_tok);
    // First pass: count and check the records.
    size_t o = 4;
    int n = 0;
    while (vocab_size > 0 ? n < vocab_size : o < len) {
        if (len - o < 8)
            return eng_errorf(err, "truncated at token %d (byte %zu): no score/length", n, o);
        int32_t l;
        memcpy(&l, d + o + 4, 4);
        if (l < 0 || l > max_tok)
            return eng_errorf(err, "token %d (byte %zu): length %d outside 0..max_token_length %d", n,
                              o, l, max_tok);
        if (len - o - 8 < (size_t)l)
            return eng_errorf(err, "truncated in token %d (byte %zu): %d bytes announced, %zu left", n,
                              o, l, len - o - 8);
        o += 8 + (size_t)l;
        n++;
        if (n > (1 << 24)) return eng_errorf(err, "more than 2^24 tokens");
    }
    if (n < 259)
        return eng_errorf(err, "%d tokens: llama2.c needs <unk> <s> </s> and 256 byte tokens first", n);

    eng_tokenizer *t = calloc(1, sizeof(*t));
    eng__tok_buf pool = {0};
    size_t *str_off = malloc((size_t)n * sizeof(size_t));
    size_t *piece_off = malloc((size_t)n * sizeof(size_t));
    if (!t || !str_off || !piece_off || eng__tok_alloc(t, ENG_TOK_KIND_LLAMA2C, n) != 0 ||
        !(t->score = malloc((size_t)n * sizeof(float))))
        goto oom;
    o = 4;
    for (int i = 0; i < n; i++) {
        int32_t l;
        memcpy(&t->score[i], d + o, 4);
        memcpy(&l, d + o + 4, 4);
        const char *s = (const char *)d + o + 8;
        if (eng__tok_buf_add(&pool, s, (size_t)l, &str_off[i]) != 0) goto oom;
        t->str_len[i] = (uint32_t)l;
        // decode(): "<0xNN>" is that raw byte; BOS/EOS show as nothing.
        int b = byte_token(s, (size_t)l);
        if (i == 1 || i == 2) {
            if (eng__tok_buf_add(&pool, "", 0, &piece_off[i]) != 0) goto oom;
            t->piece_len[i] = 0;
        } else if (b >= 0) {
            char c = (char)b;
            if (eng__tok_buf_add(&pool, &c, 1, &piece_off[i]) != 0) goto oom;
            t->piece_len[i] = 1;
        } else {
            piece_off[i] = str_off[i];
            t->piece_len[i] = (uint32_t)l;
        }
        if (i >= 3 && i < 259 && b != i - 3) {
            eng_errorf(err, "token %d is \"%.*s\", not the byte token <0x%02X> run.c expects", i,
                       l > 20 ? 20 : l, s, i - 3);
            goto fail;
        }
        o += 8 + (size_t)l;
    }
    eng__tok_set_pool(t, &pool, str_off, piece_off);
    if (eng__tok_strmap_build(t) != 0) goto oom;
    if (eng__tok_strmap_get(t, " ", 1) < 0) {
        eng_errorf(err, "no \" \" token for the dummy prefix");
        goto fail;
    }
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    for (int b = 0; b < 256; b++) t->byte_id[b] = b + 3;
    t->merge_mode = ENG__TOK_MERGE_SCORE;
    free(str_off);
    free(piece_off);
    *out = t;
    return 0;

oom:
    eng__tok_oom(err);
fail:
    free(pool.data);
    free(str_off);
    free(piece_off);
    eng_tokenizer_free(t);
    return -1;
}

int eng_tokenizer_load_llama2c(eng_tokenizer **out, const char *path, int vocab_size, char **err)
{
    *out = NULL;
    size_t len;
    char *data = eng_read_file(path, &len, err);
    if (!data) return -1;
    char *e = NULL;
    int rc = eng_tokenizer_load_llama2c_mem(out, data, len, vocab_size, &e);
    if (rc != 0) {
        // no message: even that could not be allocated
        eng_errorf(err, "%s: %s", path, e ? e : "out of memory loading the tokenizer");
        free(e);
    }
    free(data);
    return rc;
}

int eng__tok_llama2c_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                        eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err)
{
    if (len == 0) return 0;   // no dummy prefix for the empty text
    if (len >= (size_t)1 << 30) return eng_errorf(err, "text too long (%zu bytes)", len);
    int *sym = eng__tok_bpe_symbols(s, (int)len + 1);
    if (!sym) return ENG_TOK_E_NOMEM;
    int n = 0;
    sym[n++] = eng__tok_strmap_get(t, " ", 1);
    // run.c's loop: gather a byte and the continuation bytes after it (at
    // most 4 bytes), look the group up, else emit each byte as byte + 3.
    // A position past the end reads as run.c's NUL terminator.
    char buf[4];
    size_t bl = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)text[i];
        if ((c & 0xC0) != 0x80) bl = 0;
        buf[bl++] = (char)c;
        int next_cont = i + 1 < len && ((uint8_t)text[i + 1] & 0xC0) == 0x80;
        if (next_cont && bl < 4) continue;
        int id = eng__tok_strmap_get(t, buf, bl);
        if (id >= 0) {
            sym[n++] = id;
        } else {
            for (size_t k = 0; k < bl; k++) sym[n++] = (uint8_t)buf[k] + 3;
        }
        bl = 0;
    }
    return eng__tok_bpe_merge(t, s, n, ENG__TOK_MERGE_SCORE, out);
}

// ---------------------------------------------------------------- Hugging Face Llama

// Reads the normalizer / pre_tokenizer pair into t->meta_*; -1 with *err
// when they ask for something this encoder does not do.
static int hf_llama_meta(eng_tokenizer *t, const json_t *root, char **err)
{
    const json_t *norm = json_object_get(root, "normalizer");
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    int prepend = 0, replace = 0;
    if (norm && !json_is_null(norm)) {
        const char *type = json_string_value(json_object_get(norm, "type"));
        const json_t *list = norm;
        size_t nl = 1;
        if (type && strcmp(type, "Sequence") == 0) {
            list = json_object_get(norm, "normalizers");
            nl = json_array_size(list);
        }
        for (size_t i = 0; i < nl; i++) {
            const json_t *st = list == norm ? norm : json_array_get(list, i);
            const char *ty = json_string_value(json_object_get(st, "type"));
            if (ty && strcmp(ty, "Prepend") == 0 &&
                json_string_value(json_object_get(st, "prepend")) &&
                strcmp(json_string_value(json_object_get(st, "prepend")), META) == 0) {
                prepend = 1;
            } else if (ty && strcmp(ty, "Replace") == 0 &&
                       json_string_value(json_object_get(json_object_get(st, "pattern"), "String")) &&
                       strcmp(json_string_value(json_object_get(json_object_get(st, "pattern"), "String")), " ") == 0 &&
                       json_string_value(json_object_get(st, "content")) &&
                       strcmp(json_string_value(json_object_get(st, "content")), META) == 0) {
                replace = 1;
            } else {
                return eng_errorf(err, "normalizer step \"%s\" is not supported (only Prepend \"▁\" "
                                  "and Replace \" \" -> \"▁\")", ty ? ty : "?");
            }
        }
        t->meta_prepend = prepend ? 1 : 0;
    }
    if (pre && !json_is_null(pre)) {
        const char *ty = json_string_value(json_object_get(pre, "type"));
        if (ty && strcmp(ty, "Sequence") == 0 && json_array_size(json_object_get(pre, "pretokenizers")) == 1) {
            pre = json_array_get(json_object_get(pre, "pretokenizers"), 0);
            ty = json_string_value(json_object_get(pre, "type"));
        }
        if (!ty || strcmp(ty, "Metaspace") != 0)
            return eng_errorf(err, "pre_tokenizer \"%s\" is not supported for a SentencePiece BPE",
                              ty ? ty : "?");
        const char *rep = json_string_value(json_object_get(pre, "replacement"));
        if (rep && strcmp(rep, META) != 0)
            return eng_errorf(err, "Metaspace replacement other than \"▁\" is not supported");
        const char *scheme = json_string_value(json_object_get(pre, "prepend_scheme"));
        const json_t *aps = json_object_get(pre, "add_prefix_space");   // older files
        if (scheme ? strcmp(scheme, "always") == 0 : (!aps || json_is_true(aps))) t->meta_prepend = 2;
        else if (scheme && strcmp(scheme, "first") == 0) t->meta_prepend = 3;
        else if (scheme && strcmp(scheme, "never") != 0)
            return eng_errorf(err, "Metaspace prepend_scheme \"%s\" is not supported", scheme);
        else t->meta_prepend = 0;
        const json_t *split = json_object_get(pre, "split");
        t->meta_split = !split || json_is_true(split);
        replace = 1;
    }
    if (!replace)
        return eng_errorf(err, "BPE without ByteLevel nor a \"▁\" Replace/Metaspace step is not supported");
    return 0;
}

int eng__tok_hf_llama_load(eng_tokenizer **out, const json_t *root, char **err)
{
    *out = NULL;
    const json_t *model = json_object_get(root, "model");
    const json_t *added = json_object_get(root, "added_tokens");
    const char *cs = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    const char *ew = json_string_value(json_object_get(model, "end_of_word_suffix"));
    if ((cs && *cs) || (ew && *ew))
        return eng_errorf(err, "BPE with continuing_subword_prefix / end_of_word_suffix is not supported");
    eng_tokenizer *t = calloc(1, sizeof(*t));
    eng__tok_buf pool = {0};
    size_t *str_off = NULL, *piece_off = NULL;
    char *tmp = NULL;
    if (!t) goto oom;
    if (eng__tok_hf_read_vocab(t, ENG_TOK_KIND_HF_LLAMA, json_object_get(model, "vocab"), added, &pool,
                           &str_off, "model.vocab", err) != 0)
        goto fail;
    if (hf_llama_meta(t, root, err) != 0) goto fail;
    // Pieces: "▁" -> " ", "<0xNN>" -> the byte. Specials are set below.
    if (!(piece_off = malloc((size_t)t->n_vocab * sizeof(size_t)))) goto oom;
    size_t tmp_cap = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = pool.data + str_off[id];
        size_t l = t->str_len[id];
        int b = byte_token(s, l);
        if (l + 1 > tmp_cap) {
            free(tmp);
            tmp_cap = 2 * l + 16;
            if (!(tmp = malloc(tmp_cap))) goto oom;
        }
        size_t k = 0;
        if (b >= 0) {
            tmp[k++] = (char)b;
        } else {
            for (size_t i = 0; i < l;) {
                if (l - i >= META_LEN && memcmp(s + i, META, META_LEN) == 0) {
                    tmp[k++] = ' ';
                    i += META_LEN;
                } else {
                    tmp[k++] = s[i++];
                }
            }
        }
        // may move pool.data: s is not used after
        if (eng__tok_buf_add(&pool, tmp, k, &piece_off[id]) != 0) goto oom;
        t->piece_len[id] = (uint32_t)k;
    }
    free(tmp);
    tmp = NULL;
    eng__tok_set_pool(t, &pool, str_off, piece_off);
    if (eng__tok_strmap_build(t) != 0) goto oom;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        t->byte_id[b] = eng__tok_strmap_get(t, name, 6);
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk) t->unk = eng__tok_strmap_get(t, unk, strlen(unk));
    t->bos = eng__tok_strmap_get(t, "<s>", 3);
    t->eos = eng__tok_strmap_get(t, "</s>", 4);
    if (!json_is_true(json_object_get(model, "byte_fallback")) && t->unk < 0) {
        eng_errorf(err, "BPE without byte_fallback needs an unk_token in the vocabulary");
        goto fail;
    }
    t->merge_mode = ENG__TOK_MERGE_RANK_SINGLE;
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    if (!json_is_true(json_object_get(model, "byte_fallback")))
        for (int b = 0; b < 256; b++) t->byte_id[b] = -1;   // unknown characters -> unk
    if (eng__tok_hf_read_merges(t, json_object_get(model, "merges"), err) != 0) goto fail;
    if (eng__tok_hf_read_added(t, added, err) != 0) goto fail;
    // BOS and EOS decode to nothing (SentencePiece control tokens).
    if (t->bos >= 0) t->piece_len[t->bos] = 0;
    if (t->eos >= 0) t->piece_len[t->eos] = 0;
    free(str_off);
    free(piece_off);
    *out = t;
    return 0;

oom:
    eng__tok_oom(err);
fail:
    free(tmp);
    free(str_off);
    free(piece_off);
    free(pool.data);
    eng_tokenizer_free(t);
    return -1;
}

// BPE of one "▁"-word w[0..n): characters (or their byte tokens, or unk),
// then merges by rank.
static int hf_llama_word(const eng_tokenizer *t, const char *w, size_t n, eng__tok_bpe_scratch *s,
                         eng__tok_ids *out, char **err)
{
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int id = eng__tok_strmap_get(t, w, n);
        if (id >= 0) return eng__tok_ids_push(out, id);
    }
    int *sym = eng__tok_bpe_symbols(s, (int)n);
    if (!sym) return ENG_TOK_E_NOMEM;
    int k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int d = eng_utf8_decode(w + i, n - i, &cp);
        int id = d > 0 ? eng__tok_strmap_get(t, w + i, (size_t)d) : -1;
        if (d == 0) d = 1;   // an invalid byte: only its byte token can stand for it
        if (id >= 0) {
            sym[k++] = id;
        } else {
            int ok = 1;
            for (int j = 0; j < d; j++) ok &= t->byte_id[(uint8_t)w[i + (size_t)j]] >= 0;
            if (ok) {
                for (int j = 0; j < d; j++) sym[k++] = t->byte_id[(uint8_t)w[i + (size_t)j]];
            } else if (t->unk >= 0) {
                // Consecutive unknowns become one <unk> (fuse_unk, as Llama sets it).
                if (!(k > 0 && sym[k - 1] == t->unk)) sym[k++] = t->unk;
            } else {
                return eng_errorf(err, "character at byte %zu has no token and no byte fallback", i);
            }
        }
        i += (size_t)d;
    }
    return eng__tok_bpe_merge(t, s, k, ENG__TOK_MERGE_RANK_SINGLE, out);
}

int eng__tok_hf_llama_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                         eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err)
{
    if (len == 0) return 0;
    // Normalize: optional leading "▁", every ' ' -> "▁".
    int pre = t->meta_prepend == 1 ||
              ((t->meta_prepend == 2 || (t->meta_prepend == 3 && seg == 0)) &&
               !(len >= META_LEN && memcmp(text, META, META_LEN) == 0) && text[0] != ' ');
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t nl = len + 2 * spaces + (pre ? META_LEN : 0);
    char *norm = malloc(nl);
    if (!norm) return ENG_TOK_E_NOMEM;
    size_t k = 0;
    if (pre) {
        memcpy(norm, META, META_LEN);
        k = META_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(norm + k, META, META_LEN);
            k += META_LEN;
        } else {
            norm[k++] = text[i];
        }
    }
    int rc = 0;
    if (!t->meta_split) {
        rc = hf_llama_word(t, norm, k, s, out, err);
    } else {
        // Metaspace split: each word begins at a "▁" (merged with what follows).
        size_t start = 0;
        for (size_t i = 1; i + META_LEN <= k && rc == 0; i++) {
            if (memcmp(norm + i, META, META_LEN) == 0) {
                rc = hf_llama_word(t, norm + start, i - start, s, out, err);
                start = i;
                i += META_LEN - 1;
            }
        }
        if (rc == 0) rc = hf_llama_word(t, norm + start, k - start, s, out, err);
    }
    free(norm);
    return rc;
}
