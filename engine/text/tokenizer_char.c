// tokenizer_char.c — the character tokenizer: one id per Unicode codepoint
// of a vocabulary (what `inferd train --task text-generation` builds from its
// corpus and writes as vocab.json).
#include "engine/text/tokenizer_internal.h"
#include <stdlib.h>          // malloc, calloc, free, qsort
#include <string.h>          // memcpy
#include "engine/core/util.h"     // eng_errorf
#include "engine/text/utf8.h"     // eng_utf8_decode, eng_utf8_encode

// ---------------------------------------------------------------- characters

int eng__tok_char_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                         eng__tok_bpe_scratch *s, eng__tok_ids *out,
                       char **err)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int d = eng_utf8_decode(text + i, len - i, &cp);
        if (d == 0)
            return eng_errorf(err, "invalid UTF-8 at byte %zu (0x%02x)", i, (uint8_t)text[i]);
        int32_t id;
        if (!eng__tok_pairmap_get(&t->char_map, cp, &id, NULL)) {
            if (t->unk < 0)
                return eng_errorf(err, "character U+%04X at byte %zu is not in the vocabulary",
                                  (unsigned)cp, i);
            id = t->unk;
        }
        int rc = eng__tok_ids_push(out, id);
        if (rc != 0) return rc;
        i += (size_t)d;
    }
    return 0;
}

static const struct {
    const char *name;
    int role;   // 0 unk, 1 bos, 2 eos, 3 pad
} char_specials[] = {
    {"<unk>", 0}, {"<s>", 1}, {"<bos>", 1}, {"</s>", 2}, {"<eos>", 2}, {"<pad>", 3},
};

// Builds a CHAR tokenizer from n entries (strings of given lengths).
static int chars_build(eng_tokenizer **out, const char *const *ent, const size_t *ent_len, int n,
                       char **err)
{
    *out = NULL;
    if (n <= 0) return eng_errorf(err, "empty character vocabulary");
    eng_tokenizer *t = calloc(1, sizeof(*t));
    eng__tok_buf pool = {0};
    size_t *str_off = malloc((size_t)n * sizeof(size_t));
    size_t *piece_off = malloc((size_t)n * sizeof(size_t));
    if (!t || !str_off || !piece_off || eng__tok_alloc(t, ENG_TOK_KIND_CHAR, n) != 0 ||
        eng__tok_pairmap_init(&t->char_map, (size_t)n) != 0)
        goto oom;
    for (int i = 0; i < n; i++) {
        const char *s = ent[i];
        size_t l = ent_len[i];
        uint32_t cp;
        int d = eng_utf8_decode(s, l, &cp);
        if (eng__tok_buf_add(&pool, s, l, &str_off[i]) != 0) goto oom;
        t->str_len[i] = (uint32_t)l;
        if (d > 0 && (size_t)d == l) {
            if (eng__tok_pairmap_get(&t->char_map, cp, NULL, NULL)) {
                eng_errorf(err, "entry %d: character U+%04X appears twice", i, (unsigned)cp);
                goto fail;
            }
            if (eng__tok_pairmap_put(&t->char_map, cp, i, 0) < 0) goto oom;
            piece_off[i] = str_off[i];
            t->piece_len[i] = (uint32_t)l;
            continue;
        }
        int role = -1;
        for (size_t k = 0; k < sizeof(char_specials) / sizeof(char_specials[0]); k++)
            if (strlen(char_specials[k].name) == l && memcmp(char_specials[k].name, s, l) == 0)
                role = char_specials[k].role;
        if (role < 0) {
            eng_errorf(err, "entry %d (\"%.*s\") is not a single UTF-8 character nor one of "
                       "<unk> <s> </s> <bos> <eos> <pad>", i, (int)(l > 40 ? 40 : l), s);
            goto fail;
        }
        int *slot = role == 0 ? &t->unk : role == 1 ? &t->bos : role == 2 ? &t->eos : NULL;
        if (slot && *slot >= 0) {
            eng_errorf(err, "entry %d: a second \"%.*s\" special", i, (int)l, s);
            goto fail;
        }
        if (slot) *slot = i;
        // <unk> shows as U+FFFD; <s> </s> <pad> show as nothing.
        if (eng__tok_buf_add(&pool, role == 0 ? "\xEF\xBF\xBD" : "", role == 0 ? 3 : 0, &piece_off[i]) != 0)
            goto oom;
        t->piece_len[i] = role == 0 ? 3 : 0;
    }
    eng__tok_set_pool(t, &pool, str_off, piece_off);
    if (eng__tok_strmap_build(t) != 0) goto oom;
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

int eng_tokenizer_load_chars_json(eng_tokenizer **out, const json_t *array, char **err)
{
    *out = NULL;
    if (!json_is_array(array)) return eng_errorf(err, "character vocabulary must be a JSON array");
    size_t n = json_array_size(array);
    if (n == 0 || n > (1u << 22)) return eng_errorf(err, "character vocabulary has %zu entries", n);
    const char **ent = malloc(n * sizeof(*ent));
    size_t *len = malloc(n * sizeof(*len));
    if (!ent || !len) {
        free(ent);
        free(len);
        return eng__tok_oom(err);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(array, i);
        if (!json_is_string(v)) {
            free(ent);
            free(len);
            return eng_errorf(err, "character vocabulary entry %zu is not a string", i);
        }
        ent[i] = json_string_value(v);
        len[i] = json_string_length(v);
    }
    int rc = chars_build(out, ent, len, (int)n, err);
    free(ent);
    free(len);
    return rc;
}

int eng_tokenizer_load_chars(eng_tokenizer **out, const char *json_path, char **err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(json_path, JSON_ALLOW_NUL, &je);
    if (!root) return eng_errorf(err, "%s: line %d: %s", json_path, je.line, je.text);
    char *e = NULL;
    int rc = eng_tokenizer_load_chars_json(out, root, &e);
    json_decref(root);
    if (rc != 0) {
        // no message: even that could not be allocated
        eng_errorf(err, "%s: %s", json_path, e ? e : "out of memory loading the tokenizer");
        free(e);
    }
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int eng_tok_chars_collect(const char *text, size_t len, uint32_t **cps, int *n, char **err)
{
    *cps = NULL;
    *n = 0;
    eng__tok_pairmap seen = {0};
    if (eng__tok_pairmap_init(&seen, 256) != 0) return eng_errorf(err, "out of memory collecting characters");
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int d = eng_utf8_decode(text + i, len - i, &cp);
        if (d == 0) {
            eng__tok_pairmap_free(&seen);
            return eng_errorf(err, "invalid UTF-8 at byte %zu (0x%02x)", i, (uint8_t)text[i]);
        }
        if (eng__tok_pairmap_put(&seen, cp, 0, 0) < 0) {
            eng__tok_pairmap_free(&seen);
            return eng_errorf(err, "out of memory collecting characters");
        }
        i += (size_t)d;
    }
    uint32_t *v = malloc((seen.n ? seen.n : 1) * sizeof(*v));
    if (!v) {
        eng__tok_pairmap_free(&seen);
        return eng_errorf(err, "out of memory collecting characters");
    }
    size_t k = 0;
    for (size_t j = 0; j < seen.cap; j++)
        if (seen.key[j] != UINT64_MAX) v[k++] = (uint32_t)seen.key[j];
    qsort(v, k, sizeof(*v), cmp_u32);
    eng__tok_pairmap_free(&seen);
    *cps = v;
    *n = (int)k;
    return 0;
}

int eng_tokenizer_chars_from_text(eng_tokenizer **out, const char *text, size_t len, char **err)
{
    *out = NULL;
    uint32_t *cps;
    int n;
    if (eng_tok_chars_collect(text, len, &cps, &n, err) != 0) return -1;
    if (n == 0) {
        free(cps);
        return eng_errorf(err, "no characters in the text");
    }
    char *buf = malloc((size_t)n * 4);
    const char **ent = malloc((size_t)n * sizeof(*ent));
    size_t *elen = malloc((size_t)n * sizeof(*elen));
    int rc;
    if (!buf || !ent || !elen) {
        rc = eng__tok_oom(err);
    } else {
        for (int i = 0; i < n; i++) {
            ent[i] = buf + (size_t)i * 4;
            elen[i] = (size_t)eng_utf8_encode(cps[i], buf + (size_t)i * 4);
        }
        rc = chars_build(out, ent, elen, n, err);
    }
    free(buf);
    free(ent);
    free(elen);
    free(cps);
    return rc;
}

json_t *eng_tokenizer_chars_to_json(const eng_tokenizer *t)
{
    if (!t || t->kind != ENG_TOK_KIND_CHAR) return NULL;
    json_t *a = json_array();
    for (int i = 0; a && i < t->n_vocab; i++) {
        if (json_array_append_new(a, json_stringn(t->str[i], t->str_len[i])) != 0) {
            json_decref(a);   // out of memory: no partial vocabulary
            return NULL;
        }
    }
    return a;
}

