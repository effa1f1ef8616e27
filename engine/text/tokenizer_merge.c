// tokenizer_merge.c — the BPE merge loop shared by the byte-level (GPT-2),
// SentencePiece-BPE (llama2.c) and Hugging Face Llama kinds: a symbol list
// and a heap of merge candidates, by rank or by score (tokenizer_internal.h).
// It runs per request: a failed allocation is ENG_TOK_E_NOMEM up the chain.
#include "engine/text/tokenizer_internal.h"
#include <stdlib.h>          // malloc, realloc, free
#include <string.h>          // memcpy

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
        int *id = malloc((size_t)cap * sizeof(int));
        int *prev = malloc((size_t)cap * sizeof(int));
        int *next = malloc((size_t)cap * sizeof(int));
        if (!id || !prev || !next) {   // keep the old (smaller) arrays
            free(id);
            free(prev);
            free(next);
            return NULL;
        }
        free(s->id);
        free(s->prev);
        free(s->next);
        s->id = id;
        s->prev = prev;
        s->next = next;
        s->cap = cap;
    }
    return s->id;
}

static int cand_before(const merge_cand *a, const merge_cand *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->pos < b->pos);
}

// 0, or -1 when out of memory (the heap unchanged).
static int heap_push(eng__tok_bpe_scratch *s, merge_cand c)
{
    if (s->heap_n == s->heap_cap) {
        int cap = s->heap_cap ? s->heap_cap * 2 : 64;
        merge_cand *nh = realloc(s->heap, (size_t)cap * sizeof(*nh));
        if (!nh) return -1;
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
    return 0;
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

// Pushes the candidate (left, right) at pos if that pair can merge. 0, or
// -1 when out of memory.
static int try_pair(const eng_tokenizer *t, eng__tok_bpe_scratch *s, eng__tok_merge_mode mode, int pos,
                     int left, int right)
{
    merge_cand c = {.pos = pos, .left = left, .right = right};
    if (mode == ENG__TOK_MERGE_SCORE) {
        // llama2.c: the pair merges if the concatenated string is a piece
        // whose score beats run.c's initial best_score of -1e10.
        size_t la = t->str_len[left], lb = t->str_len[right];
        if (la + lb > s->cat_cap) {
            char *cat = malloc(la + lb + 64);
            if (!cat) return -1;
            free(s->cat);
            s->cat = cat;
            s->cat_cap = la + lb + 64;
        }
        memcpy(s->cat, t->str[left], la);
        memcpy(s->cat + la, t->str[right], lb);
        int id = eng__tok_strmap_get(t, s->cat, la + lb);
        if (id < 0 || !(t->score[id] > -1e10f)) return 0;
        c.prio = score_key(t->score[id]);
        c.merged = id;
    } else {
        int32_t rank, merged;
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        if (!eng__tok_pairmap_get(&t->merges, key, &rank, &merged)) return 0;
        c.prio = (uint32_t)rank;
        c.merged = merged;
    }
    return heap_push(s, c);
}

// Applies candidate c if its pair is still adjacent and unchanged. 0, or -1
// when out of memory for the new candidates.
static int apply_cand(const eng_tokenizer *t, eng__tok_bpe_scratch *s, eng__tok_merge_mode mode,
                      const merge_cand *c)
{
    int p = c->pos;
    if (s->id[p] != c->left) return 0;   // merged away (-1) or grown since
    int r = s->next[p];
    if (r < 0 || s->id[r] != c->right) return 0;
    s->id[p] = c->merged;
    s->id[r] = -1;
    s->next[p] = s->next[r];
    if (s->next[r] >= 0) s->prev[s->next[r]] = p;
    if (s->prev[p] >= 0 && try_pair(t, s, mode, s->prev[p], s->id[s->prev[p]], c->merged) != 0) return -1;
    if (s->next[p] >= 0 && try_pair(t, s, mode, p, c->merged, s->id[s->next[p]]) != 0) return -1;
    return 0;
}

int eng__tok_bpe_merge(const eng_tokenizer *t, eng__tok_bpe_scratch *s, int n, eng__tok_merge_mode mode,
                   eng__tok_ids *out)
{
    s->heap_n = 0;
    for (int i = 0; i < n; i++) {
        s->prev[i] = i - 1;
        s->next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++)
        if (try_pair(t, s, mode, i, s->id[i], s->id[i + 1]) != 0) return ENG_TOK_E_NOMEM;

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
                    merge_cand *nbuf = realloc(s->batch, (size_t)cap * sizeof(*nbuf));
                    if (!nbuf) return ENG_TOK_E_NOMEM;
                    s->batch = nbuf;
                    s->batch_cap = cap;
                }
                s->batch[nb++] = heap_pop(s);
            }
            for (int k = 0; k < nb; k++)
                if (apply_cand(t, s, mode, &s->batch[k]) != 0) return ENG_TOK_E_NOMEM;
        }
    } else {
        while (s->heap_n > 0) {
            merge_cand c = heap_pop(s);
            if (apply_cand(t, s, mode, &c) != 0) return ENG_TOK_E_NOMEM;
        }
    }
    for (int i = 0; i >= 0 && n > 0; i = s->next[i]) {
        int rc = eng__tok_ids_push(out, s->id[i]);
        if (rc != 0) return rc;
    }
    return 0;
}

