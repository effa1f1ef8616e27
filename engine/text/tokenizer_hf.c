// tokenizer_hf.c — readers of Hugging Face tokenizer.json pieces that the
// byte-level BPE (tokenizer_bpe.c) and the HF Llama (tokenizer_spm.c) kinds
// share: the vocabulary with its added tokens, the merges, the specials.
// Which kind a tokenizer.json is, is decided in tokenizer.c.
#include "engine/text/tokenizer_internal.h"
#include <stdlib.h>          // malloc, calloc, free
#include <string.h>          // memcpy, memchr
#include "engine/core/util.h"     // eng_errorf

// Adds merge (a, b) with the given rank; the three strings must be tokens.
int eng__tok_add_merge(eng_tokenizer *t, const char *a, size_t la, const char *b, size_t lb, int rank,
                     char *cat, const char *what, long line, char **err)
{
    int ia = eng__tok_strmap_get(t, a, la), ib = eng__tok_strmap_get(t, b, lb);
    memcpy(cat, a, la);
    memcpy(cat + la, b, lb);
    int im = eng__tok_strmap_get(t, cat, la + lb);
    if (ia < 0 || ib < 0 || im < 0)
        return eng_errorf(err, "%s %ld: merge \"%.*s %.*s\": \"%.*s\" is not in the vocabulary", what,
                          line, (int)la, a, (int)lb, b,
                          ia < 0 ? (int)la : ib < 0 ? (int)lb : (int)(la + lb),
                          ia < 0 ? a : ib < 0 ? b : cat);
    // A repeated pair keeps its last rank, as dict(zip(merges, range(...))) does.
    if (eng__tok_pairmap_put(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, rank, im) < 0)
        return eng__tok_oom(err);
    return 0;
}

int eng__tok_hf_read_vocab(eng_tokenizer *t, eng_tok_kind kind, const json_t *vocab,
                       const json_t *added, eng__tok_buf *pool, size_t **str_off_out, const char *what,
                       char **err)
{
    *str_off_out = NULL;
    if (!json_is_object(vocab)) return eng_errorf(err, "%s: vocab is not a JSON object", what);
    // The id range covers the vocab and the added tokens.
    long long max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= (1 << 24))
            return eng_errorf(err, "%s: token \"%.40s\" has a bad id", what, key);
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    size_t na = json_is_array(added) ? json_array_size(added) : 0;
    for (size_t i = 0; i < na; i++) {
        json_t *id = json_object_get(json_array_get(added, i), "id");
        json_t *content = json_object_get(json_array_get(added, i), "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(content))
            return eng_errorf(err, "%s: added_tokens[%zu] needs an integer id and a string content",
                              what, i);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (max_id < 0) return eng_errorf(err, "%s: empty vocabulary", what);
    int n = (int)max_id + 1;
    size_t *str_off = malloc((size_t)n * sizeof(size_t));
    char *have = calloc((size_t)n, 1);
    if (eng__tok_alloc(t, kind, n) != 0 || !str_off || !have) goto oom;
    json_object_foreach((json_t *)vocab, key, val) {
        int id = (int)json_integer_value(val);
        if (have[id]) {
            eng_errorf(err, "%s: id %d is used twice (\"%.40s\")", what, id, key);
            goto fail;
        }
        have[id] = 1;
        size_t l = strlen(key);
        if (eng__tok_buf_add(pool, key, l, &str_off[id]) != 0) goto oom;
        t->str_len[id] = (uint32_t)l;
    }
    for (size_t i = 0; i < na; i++) {
        int id = (int)json_integer_value(json_object_get(json_array_get(added, i), "id"));
        if (have[id]) continue;   // an added token that is also in the vocab
        json_t *content = json_object_get(json_array_get(added, i), "content");
        have[id] = 1;
        if (eng__tok_buf_add(pool, json_string_value(content), json_string_length(content), &str_off[id]) != 0)
            goto oom;
        t->str_len[id] = (uint32_t)json_string_length(content);
    }
    for (int id = 0; id < n; id++) {
        if (!have[id]) {
            eng_errorf(err, "%s: no token has id %d (ids must be 0..%d without gaps)", what, id, n - 1);
            goto fail;
        }
    }
    free(have);
    *str_off_out = str_off;
    return 0;

oom:
    eng__tok_oom(err);
fail:
    free(have);
    free(str_off);
    return -1;
}

int eng__tok_hf_read_merges(eng_tokenizer *t, const json_t *merges, char **err)
{
    if (!json_is_array(merges)) return eng_errorf(err, "model.merges is not an array");
    size_t n = json_array_size(merges);
    if (eng__tok_pairmap_init(&t->merges, n + 16) != 0) return eng__tok_oom(err);
    char *cat = malloc(2 * t->max_str_len + 2);
    if (!cat) return eng__tok_oom(err);   // t->merges is freed with t
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) {
            // "a b": HF splits on the space and wants exactly two parts.
            const char *s = json_string_value(m);
            size_t l = json_string_length(m);
            const char *sp = memchr(s, ' ', l);
            if (!sp || memchr(sp + 1, ' ', (size_t)(s + l - sp - 1))) {
                free(cat);
                return eng_errorf(err, "model.merges[%zu] \"%.60s\" is not two tokens", i, s);
            }
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = (size_t)(s + l - sp - 1);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            la = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            lb = json_string_length(json_array_get(m, 1));
        } else {
            free(cat);
            return eng_errorf(err, "model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", i);
        }
        if (la + lb > 2 * t->max_str_len) {
            free(cat);
            return eng_errorf(err, "model.merges[%zu]: merged token is not in the vocabulary", i);
        }
        if (eng__tok_add_merge(t, a, la, b, lb, (int)i, cat, "model.merges entry", (long)i, err) != 0) {
            free(cat);
            return -1;
        }
    }
    free(cat);
    return 0;
}

int eng__tok_hf_read_added(eng_tokenizer *t, const json_t *added, char **err)
{
    size_t na = json_is_array(added) ? json_array_size(added) : 0;
    int *special = malloc((na ? na : 1) * sizeof(int));
    if (!special) return eng__tok_oom(err);
    free(t->special);
    t->special = special;
    t->n_special = 0;
    for (size_t i = 0; i < na; i++) {
        int id = (int)json_integer_value(json_object_get(json_array_get(added, i), "id"));
        if (id >= 0 && id < t->n_vocab && t->piece_len[id] > 0) t->special[t->n_special++] = id;
    }
    return 0;
}

