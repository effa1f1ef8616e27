// tokenizer.c — the common half of the tokenizers: the public encode /
// decode / piece API and its dispatch per kind, the hash maps and the BPE
// merge loop the kinds share, UTF-8 helpers, the character vocabulary, and
// loading from a model directory. The GPT-2 and SentencePiece specifics live
// in tokenizer_bpe.c and tokenizer_spm.c; see tokenizer.h for the contracts.
#include "engine/text/tokenizer.h"
#include "engine/text/tokenizer_internal.h"

#include <assert.h>          // static_assert
#include <stdio.h>           // snprintf
#include <stdlib.h>          // malloc, free, qsort
#include <string.h>          // memcpy, memcmp, strlen
#include <sys/stat.h>        // stat
#include "engine/core/util.h"     // eng_errorf, eng_xmalloc, eng_read_file

// ---------------------------------------------------------------- names

static const char *const kind_names[] = {
    [ENG_TOK_KIND_GPT2] = "gpt2",
    [ENG_TOK_KIND_LLAMA2C] = "llama2c",
    [ENG_TOK_KIND_HF_LLAMA] = "hf-llama",
    [ENG_TOK_KIND_CHAR] = "char",
};
static_assert(sizeof(kind_names) / sizeof(kind_names[0]) == ENG_TOK_KIND__COUNT,
              "kind_names must name every eng_tok_kind");

const char *eng_tok_kind_name(eng_tok_kind k)
{
    return (unsigned)k < ENG_TOK_KIND__COUNT ? kind_names[k] : "?";
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

void eng__tok_strmap_build(eng_tokenizer *t)
{
    eng__tok_strmap *m = &t->str_map;
    m->cap = pow2_at_least((size_t)t->n_vocab * 2 + 1);
    m->slot = eng_xmalloc(m->cap * sizeof(*m->slot));
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

void eng__tok_pairmap_init(eng__tok_pairmap *m, size_t expected)
{
    m->cap = pow2_at_least(expected * 2 + 1);
    m->n = 0;
    m->key = eng_xmalloc(m->cap * sizeof(*m->key));
    memset(m->key, 0xff, m->cap * sizeof(*m->key));   // UINT64_MAX = empty
    m->a = eng_xmalloc(m->cap * sizeof(*m->a));
    m->b = eng_xmalloc(m->cap * sizeof(*m->b));
}

void eng__tok_pairmap_free(eng__tok_pairmap *m)
{
    free(m->key);
    free(m->a);
    free(m->b);
    memset(m, 0, sizeof(*m));
}

static void pairmap_grow(eng__tok_pairmap *m)
{
    eng__tok_pairmap big;
    eng__tok_pairmap_init(&big, m->cap);   // doubles the capacity
    for (size_t i = 0; i < m->cap; i++)
        if (m->key[i] != UINT64_MAX) eng__tok_pairmap_put(&big, m->key[i], m->a[i], m->b[i]);
    eng__tok_pairmap_free(m);
    *m = big;
}

int eng__tok_pairmap_put(eng__tok_pairmap *m, uint64_t key, int32_t a, int32_t b)
{
    if (!m->key) eng__tok_pairmap_init(m, 16);
    if ((m->n + 1) * 2 > m->cap) pairmap_grow(m);
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

size_t eng__tok_buf_add(eng__tok_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *nd = realloc(b->data, cap);
        if (!nd) {   // eng_xmalloc aborts with the OOM message if this fails too
            nd = eng_xmalloc(cap);
            memcpy(nd, b->data, b->len);
            free(b->data);
        }
        b->data = nd;
        b->cap = cap;
    }
    size_t off = b->len;
    if (n) memcpy(b->data + off, p, n);
    b->data[off + n] = '\0';
    b->len += n + 1;
    return off;
}

void eng__tok_alloc(eng_tokenizer *t, eng_tok_kind kind, int n)
{
    t->kind = kind;
    t->n_vocab = n;
    t->str = eng_xcalloc((size_t)n, sizeof(*t->str));
    t->str_len = eng_xcalloc((size_t)n, sizeof(*t->str_len));
    t->piece = eng_xcalloc((size_t)n, sizeof(*t->piece));
    t->piece_len = eng_xcalloc((size_t)n, sizeof(*t->piece_len));
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
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
    free(t);
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

// ---------------------------------------------------------------- UTF-8

// Length of the sequence lead byte c starts (2..4), with the allowed range of
// the second byte (excludes overlongs, surrogates, > U+10FFFF); 0 if c is
// not a multi-byte lead.
static int utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

int eng_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    if (len == 0) return 0;
    const uint8_t *u = (const uint8_t *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    uint8_t lo, hi;
    int need = utf8_lead(u[0], &lo, &hi);
    if (need == 0 || len < (size_t)need) return 0;
    if (u[1] < lo || u[1] > hi) return 0;
    for (int k = 2; k < need; k++)
        if ((u[k] & 0xC0) != 0x80) return 0;
    uint32_t c = u[0] & (0x7F >> need);
    for (int k = 1; k < need; k++) c = (c << 6) | (u[k] & 0x3F);
    *cp = c;
    return need;
}

int eng_utf8_encode(uint32_t cp, char *out)
{
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return 0;
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

int eng_utf8_valid(const char *buf, size_t len)
{
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        if ((uint8_t)buf[i] < 0x80) { i++; continue; }
        int d = eng_utf8_decode(buf + i, len - i, &cp);
        if (d == 0) return 0;
        i += (size_t)d;
    }
    return 1;
}

size_t eng_utf8_complete_prefix(const char *buf, size_t len)
{
    // Only the last 3 bytes can hold an unfinished character: find a lead
    // byte there whose sequence is longer than what follows it, with every
    // following byte valid so far. Anything else (complete or invalid) goes.
    const uint8_t *u = (const uint8_t *)buf;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        size_t p = len - k;
        uint8_t lo, hi;
        int need = utf8_lead(u[p], &lo, &hi);
        if (need == 0) {
            if ((u[p] & 0xC0) == 0x80) continue;   // a continuation: look further back
            return len;                            // ASCII or invalid byte: all complete
        }
        if ((size_t)need <= k) return len;         // its sequence is complete (or invalid)
        if (k >= 2 && (u[p + 1] < lo || u[p + 1] > hi)) return len;
        for (size_t j = p + 2; j < len; j++)
            if ((u[j] & 0xC0) != 0x80) return len;
        return p;
    }
    return len;
}

// ---------------------------------------------------------------- output ids

int eng__tok_ids_push(eng__tok_ids *o, int id)
{
    if (o->max > 0 && o->n >= o->max) return -1;
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        int *nv = realloc(o->v, (size_t)cap * sizeof(int));
        if (!nv) {   // eng_xmalloc aborts with the OOM message if this fails too
            nv = eng_xmalloc((size_t)cap * sizeof(int));
            memcpy(nv, o->v, (size_t)o->n * sizeof(int));
            free(o->v);
        }
        o->v = nv;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return 0;
}

// ---------------------------------------------------------------- BPE merge loop

// One merge candidate: symbols pos and next[pos] hold (left, right), which
// merge into `merged`. prio orders candidates (lower first), then pos.
struct eng__tok_merge_cand {
    uint32_t prio;   // rank, or a score mapped so that a higher score is lower
    int32_t pos;     // index of the left symbol (its original position)
    int32_t left, right, merged;
};
typedef struct eng__tok_merge_cand merge_cand;

void eng__tok_bpe_scratch_free(eng__tok_bpe_scratch *s)
{
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s->batch);
    free(s->cat);
    memset(s, 0, sizeof(*s));
}

int *eng__tok_bpe_symbols(eng__tok_bpe_scratch *s, int n)
{
    if (n > s->cap) {
        int cap = s->cap ? s->cap : 64;
        while (cap < n) cap *= 2;
        free(s->id);
        free(s->prev);
        free(s->next);
        s->id = eng_xmalloc((size_t)cap * sizeof(int));
        s->prev = eng_xmalloc((size_t)cap * sizeof(int));
        s->next = eng_xmalloc((size_t)cap * sizeof(int));
        s->cap = cap;
    }
    return s->id;
}

static int cand_before(const merge_cand *a, const merge_cand *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->pos < b->pos);
}

static void heap_push(eng__tok_bpe_scratch *s, merge_cand c)
{
    if (s->heap_n == s->heap_cap) {
        int cap = s->heap_cap ? s->heap_cap * 2 : 64;
        merge_cand *nh = eng_xmalloc((size_t)cap * sizeof(*nh));
        if (s->heap_n) memcpy(nh, s->heap, (size_t)s->heap_n * sizeof(*nh));
        free(s->heap);
        s->heap = nh;
        s->heap_cap = cap;
    }
    int i = s->heap_n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_before(&c, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = c;
}

static merge_cand heap_pop(eng__tok_bpe_scratch *s)
{
    merge_cand top = s->heap[0];
    merge_cand last = s->heap[--s->heap_n];
    int i = 0, n = s->heap_n;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const merge_cand *best = &last;
        if (l < n && cand_before(&s->heap[l], best)) { m = l; best = &s->heap[l]; }
        if (r < n && cand_before(&s->heap[r], best)) { m = r; }
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

// Float score -> uint32 whose order is the reverse of the score's (higher
// score = smaller key), so the min-heap pops the best score first.
static uint32_t score_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);   // ascending with f
    return ~u;
}

// Pushes the candidate (left, right) at pos if that pair can merge.
static void try_pair(const eng_tokenizer *t, eng__tok_bpe_scratch *s, eng__tok_merge_mode mode, int pos,
                     int left, int right)
{
    merge_cand c = {.pos = pos, .left = left, .right = right};
    if (mode == ENG__TOK_MERGE_SCORE) {
        // llama2.c: the pair merges if the concatenated string is a piece
        // whose score beats run.c's initial best_score of -1e10.
        size_t la = t->str_len[left], lb = t->str_len[right];
        if (la + lb > s->cat_cap) {
            free(s->cat);
            s->cat_cap = la + lb + 64;
            s->cat = eng_xmalloc(s->cat_cap);
        }
        memcpy(s->cat, t->str[left], la);
        memcpy(s->cat + la, t->str[right], lb);
        int id = eng__tok_strmap_get(t, s->cat, la + lb);
        if (id < 0 || !(t->score[id] > -1e10f)) return;
        c.prio = score_key(t->score[id]);
        c.merged = id;
    } else {
        int32_t rank, merged;
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        if (!eng__tok_pairmap_get(&t->merges, key, &rank, &merged)) return;
        c.prio = (uint32_t)rank;
        c.merged = merged;
    }
    heap_push(s, c);
}

// Applies candidate c if its pair is still adjacent and unchanged.
static void apply_cand(const eng_tokenizer *t, eng__tok_bpe_scratch *s, eng__tok_merge_mode mode,
                       const merge_cand *c)
{
    int p = c->pos;
    if (s->id[p] != c->left) return;   // merged away (-1) or grown since
    int r = s->next[p];
    if (r < 0 || s->id[r] != c->right) return;
    s->id[p] = c->merged;
    s->id[r] = -1;
    s->next[p] = s->next[r];
    if (s->next[r] >= 0) s->prev[s->next[r]] = p;
    if (s->prev[p] >= 0) try_pair(t, s, mode, s->prev[p], s->id[s->prev[p]], c->merged);
    if (s->next[p] >= 0) try_pair(t, s, mode, p, c->merged, s->id[s->next[p]]);
}

int eng__tok_bpe_merge(const eng_tokenizer *t, eng__tok_bpe_scratch *s, int n, eng__tok_merge_mode mode,
                   eng__tok_ids *out)
{
    s->heap_n = 0;
    for (int i = 0; i < n; i++) {
        s->prev[i] = i - 1;
        s->next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) try_pair(t, s, mode, i, s->id[i], s->id[i + 1]);

    if (mode == ENG__TOK_MERGE_RANK_SWEEP) {
        // OpenAI's bpe(): take the lowest-ranked pair and merge every
        // occurrence of it left to right before looking at new pairs. The
        // candidates of one rank come off the heap in position order; they
        // are all taken first, so pairs created meanwhile wait their turn
        // even in a merges file whose ranks are not in creation order.
        while (s->heap_n > 0) {
            uint32_t prio = s->heap[0].prio;
            int nb = 0;
            while (s->heap_n > 0 && s->heap[0].prio == prio) {
                if (nb == s->batch_cap) {
                    int cap = s->batch_cap ? s->batch_cap * 2 : 64;
                    merge_cand *nbuf = eng_xmalloc((size_t)cap * sizeof(*nbuf));
                    if (nb) memcpy(nbuf, s->batch, (size_t)nb * sizeof(*nbuf));
                    free(s->batch);
                    s->batch = nbuf;
                    s->batch_cap = cap;
                }
                s->batch[nb++] = heap_pop(s);
            }
            for (int k = 0; k < nb; k++) apply_cand(t, s, mode, &s->batch[k]);
        }
    } else {
        while (s->heap_n > 0) {
            merge_cand c = heap_pop(s);
            apply_cand(t, s, mode, &c);
        }
    }
    for (int i = 0; i >= 0 && n > 0; i = s->next[i])
        if (eng__tok_ids_push(out, s->id[i]) != 0) return -1;
    return 0;
}

// ---------------------------------------------------------------- characters

static int char_encode(const eng_tokenizer *t, const char *text, size_t len, eng__tok_ids *out,
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
        if (eng__tok_ids_push(out, id) != 0) return ENG_TOK_E_TOO_LONG;
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
    eng_tokenizer *t = eng_xcalloc(1, sizeof(*t));
    eng__tok_alloc(t, ENG_TOK_KIND_CHAR, n);
    eng__tok_pairmap_init(&t->char_map, (size_t)n);
    eng__tok_buf pool = {0};
    size_t *str_off = eng_xmalloc((size_t)n * sizeof(size_t));
    size_t *piece_off = eng_xmalloc((size_t)n * sizeof(size_t));
    for (int i = 0; i < n; i++) {
        const char *s = ent[i];
        size_t l = ent_len[i];
        uint32_t cp;
        int d = eng_utf8_decode(s, l, &cp);
        str_off[i] = eng__tok_buf_add(&pool, s, l);
        t->str_len[i] = (uint32_t)l;
        if (d > 0 && (size_t)d == l) {
            if (eng__tok_pairmap_get(&t->char_map, cp, NULL, NULL)) {
                eng_errorf(err, "entry %d: character U+%04X appears twice", i, (unsigned)cp);
                goto fail;
            }
            eng__tok_pairmap_put(&t->char_map, cp, i, 0);
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
        piece_off[i] = role == 0 ? eng__tok_buf_add(&pool, "\xEF\xBF\xBD", 3) : eng__tok_buf_add(&pool, "", 0);
        t->piece_len[i] = role == 0 ? 3 : 0;
    }
    eng__tok_set_pool(t, &pool, str_off, piece_off);
    eng__tok_strmap_build(t);
    free(str_off);
    free(piece_off);
    *out = t;
    return 0;

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
    const char **ent = eng_xmalloc(n * sizeof(*ent));
    size_t *len = eng_xmalloc(n * sizeof(*len));
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
        eng_errorf(err, "%s: %s", json_path, e ? e : "invalid");
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
    eng__tok_pairmap_init(&seen, 256);
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int d = eng_utf8_decode(text + i, len - i, &cp);
        if (d == 0) {
            eng__tok_pairmap_free(&seen);
            return eng_errorf(err, "invalid UTF-8 at byte %zu (0x%02x)", i, (uint8_t)text[i]);
        }
        eng__tok_pairmap_put(&seen, cp, 0, 0);
        i += (size_t)d;
    }
    uint32_t *v = eng_xmalloc((seen.n ? seen.n : 1) * sizeof(*v));
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
    char *buf = eng_xmalloc((size_t)n * 4);
    const char **ent = eng_xmalloc((size_t)n * sizeof(*ent));
    size_t *elen = eng_xmalloc((size_t)n * sizeof(*elen));
    for (int i = 0; i < n; i++) {
        ent[i] = buf + (size_t)i * 4;
        elen[i] = (size_t)eng_utf8_encode(cps[i], buf + (size_t)i * 4);
    }
    int rc = chars_build(out, ent, elen, n, err);
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
    for (int i = 0; i < t->n_vocab; i++)
        json_array_append_new(a, json_stringn(t->str[i], t->str_len[i]));
    return a;
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
    char *p1 = eng_xmalloc(cap), *p2 = eng_xmalloc(cap);
    int rc;
    if (file_exists(dir, "tokenizer.json", p1, cap)) {
        rc = eng_tokenizer_load_hf(out, p1, err);
    } else if (file_exists(dir, "vocab.json", p1, cap) && file_exists(dir, "merges.txt", p2, cap)) {
        rc = eng_tokenizer_load_gpt2(out, p1, p2, err);
    } else if (file_exists(dir, "tokenizer.bin", p1, cap)) {
        rc = eng_tokenizer_load_llama2c(out, p1, vocab_size, err);
    } else if (file_exists(dir, "vocab.json", p1, cap)) {
        rc = eng_tokenizer_load_chars(out, p1, err);
    } else {
        rc = eng_errorf(err, "%s: no tokenizer.json, vocab.json (+ merges.txt) or tokenizer.bin", dir);
    }
    free(p1);
    free(p2);
    return rc;
}

// ---------------------------------------------------------------- encode / decode

// Encodes one segment that holds no special token.
static int encode_segment(const eng_tokenizer *t, const char *text, size_t len, int seg,
                          eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err)
{
    switch (t->kind) {
    case ENG_TOK_KIND_GPT2: return eng__tok_gpt2_encode(t, text, len, seg, s, out, err);
    case ENG_TOK_KIND_LLAMA2C: return eng__tok_llama2c_encode(t, text, len, s, out, err);
    case ENG_TOK_KIND_HF_LLAMA: return eng__tok_hf_llama_encode(t, text, len, seg, s, out, err);
    case ENG_TOK_KIND_CHAR: return char_encode(t, text, len, out, err);
    default: return eng_errorf(err, "unknown tokenizer kind");
    }
}

// The text a special token is written as: its decoded bytes for GPT-2 (the
// vocabulary string is byte-mapped), the added-token content for HF Llama
// (whose BOS/EOS decode to nothing).
static const char *special_text(const eng_tokenizer *t, int id, size_t *len)
{
    if (t->kind == ENG_TOK_KIND_GPT2) {
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
    if ((flags & ENG_TOK_FLAG_ADD_BOS) && t->bos >= 0 && eng__tok_ids_push(&out, t->bos) != 0)
        rc = ENG_TOK_E_TOO_LONG;
    if (rc == 0 && (flags & ENG_TOK_FLAG_SPECIAL) && t->n_special > 0) {
        size_t start = 0;
        int seg = 0;
        for (size_t i = 0; i < len && rc == 0;) {
            size_t sl;
            int sp = special_at(t, text, len, i, &sl);
            if (sp < 0) { i++; continue; }
            if (i > start) rc = encode_segment(t, text + start, i - start, seg++, &s, &out, err);
            if (rc == 0 && eng__tok_ids_push(&out, sp) != 0) rc = ENG_TOK_E_TOO_LONG;
            i += sl;
            start = i;
            seg++;
        }
        if (rc == 0 && (start < len || len == 0))
            rc = encode_segment(t, text + start, len - start, seg, &s, &out, err);
    } else if (rc == 0) {
        rc = encode_segment(t, text, len, 0, &s, &out, err);
    }
    if (rc == 0 && (flags & ENG_TOK_FLAG_ADD_EOS) && t->eos >= 0 && eng__tok_ids_push(&out, t->eos) != 0)
        rc = ENG_TOK_E_TOO_LONG;
    eng__tok_bpe_scratch_free(&s);
    if (rc == ENG_TOK_E_TOO_LONG) {
        free(out.v);
        eng_errorf(err, "text is longer than %d tokens", max_ids);
        return ENG_TOK_E_TOO_LONG;
    }
    if (rc != 0) {
        free(out.v);
        return -1;
    }
    if (!out.v) out.v = eng_xmalloc(sizeof(int));   // a valid pointer even for no ids
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
    // SentencePiece: the dummy-prefix space goes after BOS (run.c) and at the start.
    if ((t->kind == ENG_TOK_KIND_LLAMA2C || t->kind == ENG_TOK_KIND_HF_LLAMA) &&
        (prev < 0 || prev == t->bos) && l > 0 && p[0] == ' ') {
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
        total += t->piece_len[ids[i]];
    }
    char *buf = eng_xmalloc(total + 1);
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
