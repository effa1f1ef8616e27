// translate.c — greedy and beam search over any encoder-decoder (see
// translate.h). All live hypotheses of all sources advance through ONE
// ops->step per output position, so a batch of sentences costs one weight
// read per position, not one per sentence.
//
// Beam search follows the common definition (Hugging Face generate, Marian,
// fairseq): each source keeps beam_size live hypotheses; every step expands
// each into its 2*beam_size best next tokens, and the best candidates refill
// the beam; a candidate ending in EOS joins the source's finished list with
// score logp / len^length_penalty (len counts the EOS). A source is done when
// it holds beam_size finished hypotheses and no live one can beat the worst
// of them (HF's early_stopping=False test: best live logp / cur_len^lp).
// The pad token is never produced (its logit is masked before the softmax).
#include "engine/arch/translate.h"
#include "engine/core/arena.h"   // eng_arena_oom_jump, eng_arena_set_oom_jump, eng_arena_oom
#include <math.h>      // expf, logf, powf, INFINITY
#include <setjmp.h>    // catching an out-of-memory escape to free the search
#include <stdlib.h>    // malloc, calloc, free, qsort
#include <string.h>    // memcpy

typedef struct {
    eng_s2s_dec *dec;
    int *ids;        // [max_tokens] tokens produced so far
    int n;
    float logp;      // sum of log-probabilities of ids
} hyp;

typedef struct {
    int *ids;
    int n;
    float logp, score;   // score = logp / n^lp
} done_hyp;

typedef struct {
    int b;               // source
    int T;               // its max_tokens
    int n_live;
    hyp live[ENG_TRANSLATE_MAX_BEAM];
    hyp next[ENG_TRANSLATE_MAX_BEAM];   // the next beam is built here, then swapped in
    done_hyp fin[ENG_TRANSLATE_MAX_BEAM];
    int n_fin;
    int done;
} source_state;

typedef struct {
    float logp;   // candidate's total
    int parent;   // live index
    int token;
} cand;

static int cand_cmp(const void *a, const void *b) {
    float x = ((const cand *)a)->logp, y = ((const cand *)b)->logp;
    if (x != y) return x > y ? -1 : 1;
    // ties: lower parent, then lower token (deterministic)
    const cand *p = a, *q = b;
    return p->parent != q->parent ? p->parent - q->parent : p->token - q->token;
}

// log-softmax of row x[V] in place, with the pad logit masked.
static void log_softmax_masked(float *x, int V, int pad) {
    if (pad >= 0 && pad < V) x[pad] = -INFINITY;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += expf(x[i] - mx);
    float lse = mx + (float)log(sum);
    for (int i = 0; i < V; i++) x[i] -= lse;
}

static float norm_score(float logp, int len, float lp) {
    return len > 0 ? logp / powf((float)len, lp) : logp;
}

// Adds a finished hypothesis (ids[n], EOS excluded; its score counts the
// EOS in the length), keeping the beam_size best scores. 0, or -1 on OOM.
static int add_finished(source_state *s, int K, const int *ids, int n, float logp, float lp) {
    float sc = norm_score(logp, n + 1, lp);
    int slot = s->n_fin;
    if (s->n_fin == K) {   // replace the worst when better
        slot = 0;
        for (int i = 1; i < K; i++)
            if (s->fin[i].score < s->fin[slot].score) slot = i;
        if (sc <= s->fin[slot].score) return 0;
    }
    int *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!copy) return -1;
    if (n > 0) memcpy(copy, ids, (size_t)n * sizeof(int));
    if (slot == s->n_fin) s->n_fin++;
    else free(s->fin[slot].ids);
    s->fin[slot] = (done_hyp){copy, n, logp, sc};
    return 0;
}

// The `want` best tokens of row lp[V] by descending log-probability (ties:
// lower id first), into best[]; one pass with an insertion into a short list.
static int top_tokens(const float *lp, int V, int want, int *best) {
    int n = 0;
    for (int v = 0; v < V; v++) {
        if (n == want && !(lp[v] > lp[best[n - 1]])) continue;
        int i = n < want ? n++ : n - 1;
        while (i > 0 && lp[v] > lp[best[i - 1]]) { best[i] = best[i - 1]; i--; }
        best[i] = v;
    }
    return n;
}

static void free_hyp(const eng_s2s_ops *ops, hyp *h) {
    if (h->dec) ops->dec_free(h->dec);
    free(h->ids);
    h->dec = NULL;
    h->ids = NULL;
}

static int new_hyp(const eng_s2s_ops *ops, const eng_s2s *m, const eng_s2s_mem *mem, int b, int max_tokens, hyp *h) {
    h->dec = ops->dec_new(m, mem, b, max_tokens + 1);
    h->ids = malloc((size_t)(max_tokens > 0 ? max_tokens : 1) * sizeof(int));
    h->n = 0;
    h->logp = 0;
    return h->dec && h->ids ? 0 : -1;
}

int eng_translate(const eng_s2s_ops *ops, const eng_s2s *m, eng_tape *scratch, const int *const *src,
                  const int *n_src, int B, const eng_translate_opts *o, eng_translation *out) {
    eng_s2s_info info = ops->info(m);
    int K = o->beam_size < 1 ? 1 : o->beam_size > ENG_TRANSLATE_MAX_BEAM ? ENG_TRANSLATE_MAX_BEAM : o->beam_size;
    int T = 0;   // the longest bound of any source
    const int V = info.tgt_vocab;
    for (int b = 0; b < B; b++) out[b] = (eng_translation){0};

    int rc = -1;
    jmp_buf *outer = eng_arena_oom_jump(), jb;   // see the setjmp below
    volatile int oom = 0;
    eng_s2s_mem *volatile mem = NULL;   // volatile: assigned after the setjmp below
    source_state *st = calloc((size_t)B, sizeof *st);
    eng_s2s_dec **decs = malloc((size_t)B * K * sizeof *decs);
    int *tokens = malloc((size_t)B * K * sizeof(int));
    int *owner = malloc((size_t)B * K * sizeof(int));      // flat index -> source
    int *live_ix = malloc((size_t)B * K * sizeof(int));    // flat index -> live slot
    float *logits = malloc((size_t)B * K * (size_t)V * sizeof(float));
    cand *cands = malloc((size_t)K * 2 * K * sizeof *cands);
    if (!st || !decs || !tokens || !owner || !live_ix || !logits || !cands) goto out;
    // Memory running out inside a forward pass longjmps to the worker's
    // recovery point (engine/core/arena.h) and would leak every hypothesis
    // above: catch the escape here, free the search, then pass it on.
    if (setjmp(jb) != 0) {
        oom = 1;
        rc = -1;
        goto out;
    }
    eng_arena_set_oom_jump(&jb);
    if (!(mem = ops->encode(m, scratch, src, n_src, B))) goto out;
    for (int b = 0; b < B; b++) {
        int Tb = o->max_tokens_each ? o->max_tokens_each[b] : o->max_tokens;
        if (Tb > info.max_tgt_len - 1) Tb = info.max_tgt_len - 1;
        if (Tb < 0) Tb = 0;
        if (Tb > T) T = Tb;
        st[b].b = b;
        st[b].T = Tb;
        st[b].n_live = 1;
        for (int k = 0; k < K; k++)   // K live slots (one used at first) and K for the next beam
            if (new_hyp(ops, m, mem, b, Tb, &st[b].live[k]) != 0 || new_hyp(ops, m, mem, b, Tb, &st[b].next[k]) != 0) goto out;
    }

    for (int pos = 0; pos <= T; pos++) {
        // gather every live hypothesis of every unfinished source
        int n = 0;
        for (int b = 0; b < B; b++) {
            if (st[b].done) continue;
            for (int k = 0; k < st[b].n_live; k++) {
                hyp *h = &st[b].live[k];
                decs[n] = h->dec;
                tokens[n] = h->n ? h->ids[h->n - 1] : info.start_id;
                owner[n] = b;
                live_ix[n] = k;
                n++;
            }
        }
        if (n == 0) break;
        ops->step(m, scratch, decs, tokens, n, logits);
        for (int i = 0; i < n; i++) log_softmax_masked(logits + (size_t)i * V, V, info.pad_id);

        for (int i = 0; i < n;) {   // one source at a time: rows i .. j-1 are its live hypotheses
            int b = owner[i], j = i;
            while (j < n && owner[j] == b) j++;
            source_state *s = &st[b];
            // candidates: each live hypothesis' 2K best tokens
            int nc = 0, want = 2 * K < V ? 2 * K : V, top[2 * ENG_TRANSLATE_MAX_BEAM];
            for (int r = i; r < j; r++) {
                const float *lp = logits + (size_t)r * V;
                const hyp *h = &s->live[live_ix[r]];
                int got = top_tokens(lp, V, want, top);
                for (int t = 0; t < got; t++) cands[nc++] = (cand){h->logp + lp[top[t]], live_ix[r], top[t]};
            }
            qsort(cands, (size_t)nc, sizeof *cands, cand_cmp);
            int n_next = 0;
            for (int c = 0; c < nc && n_next < K; c++) {
                const hyp *p = &s->live[cands[c].parent];
                if (!isfinite(cands[c].logp)) break;
                if (cands[c].token == info.eos_id) {
                    // in greedy mode only the top candidate counts
                    if (K == 1 && c > 0) continue;
                    if (add_finished(s, K, p->ids, p->n, cands[c].logp, o->length_penalty) != 0) goto out;
                    if (K == 1) break;
                    continue;
                }
                if (pos == s->T) continue;   // no room for another token: only EOS may still finish
                hyp *q = &s->next[n_next++];
                ops->dec_copy(q->dec, p->dec);
                memcpy(q->ids, p->ids, (size_t)p->n * sizeof(int));
                q->ids[p->n] = cands[c].token;
                q->n = p->n + 1;
                q->logp = cands[c].logp;
                if (K == 1) break;
            }
            if (pos == s->T) {   // out of room: the live hypotheses compete with the finished ones as they are
                s->done = 1;
                i = j;
                continue;
            }
            for (int k = 0; k < K; k++) {   // swap the beams
                hyp t = s->live[k];
                s->live[k] = s->next[k];
                s->next[k] = t;
            }
            s->n_live = n_next;
            if (n_next == 0) s->done = 1;
            else if (K == 1 && s->n_fin) s->done = 1;
            else if (s->n_fin == K) {
                float worst = s->fin[0].score, best_live = -INFINITY;
                for (int f = 1; f < K; f++)
                    if (s->fin[f].score < worst) worst = s->fin[f].score;
                for (int k = 0; k < n_next; k++)
                    if (s->live[k].logp > best_live) best_live = s->live[k].logp;
                if (worst >= norm_score(best_live, pos + 1, o->length_penalty)) s->done = 1;
            }
            i = j;
        }
    }

    // the answer: the best finished hypothesis, or the best live one at max_tokens
    for (int b = 0; b < B; b++) {
        source_state *s = &st[b];
        int best = -1;
        for (int f = 0; f < s->n_fin; f++)
            if (best < 0 || s->fin[f].score > s->fin[best].score) best = f;
        int best_live = -1;
        for (int k = 0; k < s->n_live; k++)
            if (best_live < 0 || s->live[k].logp > s->live[best_live].logp) best_live = k;
        if (best >= 0 && (best_live < 0 || K == 1 ||
                          s->fin[best].score >= norm_score(s->live[best_live].logp, s->live[best_live].n, o->length_penalty))) {
            out[b] = (eng_translation){s->fin[best].ids, s->fin[best].n, s->fin[best].logp, 1};
            s->fin[best].ids = NULL;
        } else if (best_live >= 0) {
            hyp *h = &s->live[best_live];
            out[b] = (eng_translation){h->ids, h->n, h->logp, 0};
            h->ids = NULL;
        } else {   // cannot happen: a source ends with a finished or a live hypothesis
            out[b] = (eng_translation){malloc(sizeof(int)), 0, 0, 0};
        }
        if (!out[b].ids && !(out[b].ids = malloc(sizeof(int)))) goto out;
    }
    rc = 0;
out:
    if (outer != eng_arena_oom_jump()) eng_arena_set_oom_jump(outer);
    for (int b = 0; st && b < B; b++) {
        for (int k = 0; k < K; k++) {
            free_hyp(ops, &st[b].live[k]);
            free_hyp(ops, &st[b].next[k]);
        }
        for (int f = 0; f < st[b].n_fin; f++) free(st[b].fin[f].ids);
    }
    if (rc != 0)
        for (int b = 0; b < B; b++) {
            free(out[b].ids);
            out[b] = (eng_translation){0};
        }
    if (mem) ops->mem_free(mem);
    free(st); free(decs); free(tokens); free(owner); free(live_ix); free(logits); free(cands);
    if (oom) eng_arena_oom("translation search", 0);   // on to the caller's recovery point (or abort)
    return rc;
}
