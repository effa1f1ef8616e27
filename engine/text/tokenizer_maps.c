// tokenizer_maps.c — the building blocks every tokenizer kind shares: the
// string -> id and pair -> value hash maps, the string pool a vocabulary is
// built in, and the bounded id vector encoders append to (declared in
// tokenizer_internal.h). Every allocation here is checked: failure is a
// return value and leaves the structure being grown as it was.
#include "engine/text/tokenizer_internal.h"
#include <stdlib.h>          // malloc, calloc, realloc, free
#include <string.h>          // memcpy, memcmp, memset
#include "engine/core/util.h"     // eng_errorf
#include "engine/text/sentencepiece_shim.h"  // eng_spm_free

int eng__tok_oom(char **err)
{
    return eng_errorf(err, "out of memory loading the tokenizer");
}

// ---------------------------------------------------------------- hashing and maps

uint64_t eng__tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;   // splitmix64 finalizer
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int eng__tok_strmap_build(eng_tokenizer *t)
{
    eng__tok_strmap *m = &t->str_map;
    size_t cap = pow2_at_least((size_t)t->n_vocab * 2 + 1);
    int32_t *slot = malloc(cap * sizeof(*slot));
    if (!slot) return -1;
    free(m->slot);
    m->slot = slot;
    m->cap = cap;
    memset(m->slot, 0xff, m->cap * sizeof(*m->slot));   // -1
    for (int id = 0; id < t->n_vocab; id++) {
        size_t i = eng__tok_hash_bytes(t->str[id], t->str_len[id]) & (m->cap - 1);
        for (;; i = (i + 1) & (m->cap - 1)) {
            int32_t o = m->slot[i];
            if (o < 0) { m->slot[i] = id; break; }
            if (t->str_len[o] == t->str_len[id] && memcmp(t->str[o], t->str[id], t->str_len[id]) == 0)
                break;   // duplicate string: the lower id keeps it
        }
    }
    return 0;
}

void eng__tok_strmap_prefer_last(eng_tokenizer *t)
{
    eng__tok_strmap *m = &t->str_map;
    if (!m->slot) return;
    for (int id = 0; id < t->n_vocab; id++) {
        size_t i = eng__tok_hash_bytes(t->str[id], t->str_len[id]) & (m->cap - 1);
        for (;; i = (i + 1) & (m->cap - 1)) {
            int32_t o = m->slot[i];
            if (o < 0) break;
            if (t->str_len[o] == t->str_len[id] && memcmp(t->str[o], t->str[id], t->str_len[id]) == 0) {
                m->slot[i] = id;   // ids rise: the last one stays
                break;
            }
        }
    }
}

int eng__tok_strmap_get(const eng_tokenizer *t, const char *s, size_t n)
{
    const eng__tok_strmap *m = &t->str_map;
    if (!m->slot) return -1;
    size_t i = eng__tok_hash_bytes(s, n) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        int32_t o = m->slot[i];
        if (o < 0) return -1;
        if (t->str_len[o] == n && memcmp(t->str[o], s, n) == 0) return o;
    }
}

int eng__tok_pairmap_init(eng__tok_pairmap *m, size_t expected)
{
    m->cap = pow2_at_least(expected * 2 + 1);
    m->n = 0;
    m->key = malloc(m->cap * sizeof(*m->key));
    m->a = malloc(m->cap * sizeof(*m->a));
    m->b = malloc(m->cap * sizeof(*m->b));
    if (!m->key || !m->a || !m->b) {
        eng__tok_pairmap_free(m);
        return -1;
    }
    memset(m->key, 0xff, m->cap * sizeof(*m->key));   // UINT64_MAX = empty
    return 0;
}

void eng__tok_pairmap_free(eng__tok_pairmap *m)
{
    free(m->key);
    free(m->a);
    free(m->b);
    memset(m, 0, sizeof(*m));
}

// Doubles the capacity; 0, or -1 when out of memory (m unchanged).
static int pairmap_grow(eng__tok_pairmap *m)
{
    eng__tok_pairmap big;
    if (eng__tok_pairmap_init(&big, m->cap) != 0) return -1;
    // big holds at least twice m's capacity and m is at most half full, so these
    // puts never grow big (they cannot fail).
    for (size_t i = 0; i < m->cap; i++)
        if (m->key[i] != UINT64_MAX) eng__tok_pairmap_put(&big, m->key[i], m->a[i], m->b[i]);
    eng__tok_pairmap_free(m);
    *m = big;
    return 0;
}

int eng__tok_pairmap_put(eng__tok_pairmap *m, uint64_t key, int32_t a, int32_t b)
{
    if (!m->key && eng__tok_pairmap_init(m, 16) != 0) return -1;
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m) != 0) return -1;
    size_t i = hash_u64(key) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == key) {   // replace
            m->a[i] = a;
            m->b[i] = b;
            return 0;
        }
        if (m->key[i] == UINT64_MAX) break;
    }
    m->key[i] = key;
    m->a[i] = a;
    m->b[i] = b;
    m->n++;
    return 1;
}

int eng__tok_pairmap_get(const eng__tok_pairmap *m, uint64_t key, int32_t *a, int32_t *b)
{
    if (!m->key) return 0;
    size_t i = hash_u64(key) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == key) {
            if (a) *a = m->a[i];
            if (b) *b = m->b[i];
            return 1;
        }
        if (m->key[i] == UINT64_MAX) return 0;
    }
}

// ---------------------------------------------------------------- building a tokenizer

int eng__tok_buf_add(eng__tok_buf *b, const void *p, size_t n, size_t *off)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *nd = realloc(b->data, cap);
        if (!nd) return -1;   // b->data is still valid and still b's
        b->data = nd;
        b->cap = cap;
    }
    *off = b->len;
    if (n) memcpy(b->data + *off, p, n);
    b->data[*off + n] = '\0';
    b->len += n + 1;
    return 0;
}

int eng__tok_alloc(eng_tokenizer *t, eng_tok_kind kind, int n)
{
    t->kind = kind;
    t->n_vocab = n;
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    t->str = calloc((size_t)n, sizeof(*t->str));
    t->str_len = calloc((size_t)n, sizeof(*t->str_len));
    t->piece = calloc((size_t)n, sizeof(*t->piece));
    t->piece_len = calloc((size_t)n, sizeof(*t->piece_len));
    return t->str && t->str_len && t->piece && t->piece_len ? 0 : -1;
}

void eng__tok_set_pool(eng_tokenizer *t, eng__tok_buf *pool, const size_t *str_off,
                       const size_t *piece_off)
{
    t->pool = pool->data;
    pool->data = NULL;
    t->max_str_len = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        t->str[i] = t->pool + str_off[i];
        t->piece[i] = t->pool + piece_off[i];
        if (t->str_len[i] > t->max_str_len) t->max_str_len = t->str_len[i];
    }
}

void eng_tokenizer_free(eng_tokenizer *t)
{
    if (!t) return;
    free(t->pool);
    free(t->str);
    free(t->str_len);
    free(t->piece);
    free(t->piece_len);
    free(t->str_map.slot);
    free(t->special);
    eng__tok_pairmap_free(&t->merges);
    free(t->score);
    eng__tok_pairmap_free(&t->char_map);
    eng_spm_free(t->spm);
    free(t);
}

// ---------------------------------------------------------------- output ids

int eng__tok_ids_push(eng__tok_ids *o, int id)
{
    if (o->max > 0 && o->n >= o->max) return ENG_TOK_E_TOO_LONG;
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        int *nv = realloc(o->v, (size_t)cap * sizeof(int));
        if (!nv) return ENG_TOK_E_NOMEM;   // o->v is still valid and still o's
        o->v = nv;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return 0;
}

