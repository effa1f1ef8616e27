// translation.c — `inferd train --task translation --arch lstm-attention`:
// a character-level LSTM encoder-decoder with attention
// (engine/arch/lstm_attention.h) on a TSV of "source<TAB>target" lines, and
// the translation metrics `inferd eval` reports.
//
// Held-out split: a pair is held out when a hash (FNV-1a) of its source is
// 0 mod 50 (2%): deterministic, independent of the file's order, and a
// repeated source never straddles the split. Batches: each epoch shuffles
// the training pairs, sorts chunks of 32 batches by length and cuts them
// into batches (little padding), in shuffled order. Teacher forcing, AdamW,
// warmup + cosine (eng_lr_at), gradient clipping at 1.0.
// Output: config.json, model.safetensors, source_vocab.json and
// target_vocab.json (characters + specials), heldout.tsv (the held-out
// pairs, for `inferd eval`), README.md (command, time, chrF and exact match
// of greedy decoding through eng_translate on the held-out pairs, examples).
//
// Metrics: chrF2 as sacrebleu defines it (Popović 2015; sacrebleu's corpus
// CHRF(char_order=6, word_order=0, beta=2), its default): whitespace
// removed, character n-gram counts n = 1..6 summed over the corpus,
// precision and recall averaged over the orders present, then F2; exact
// match = the output equals the reference.
#include <math.h>                 // log
#include <stdio.h>                // snprintf, open_memstream
#include <stdlib.h>               // qsort
#include <string.h>               // strcmp, memchr
#include "engine/arch/lstm_attention.h"  // eng_la
#include "engine/arch/model.h"    // eng_model_load (the saved model is what gets evaluated)
#include "engine/arch/translate.h"  // eng_translate
#include "engine/core/optim.h"    // eng_adamw_step, eng_clip_grad_norm
#include "engine/core/rng.h"      // eng_rng
#include "engine/train/checkpoint.h"  // eng_ckpt
#include "engine/core/util.h"     // eng_errorf, eng_read_file, eng_xmalloc
#include "engine/text/tokenizer.h"  // character vocabularies
#include "engine/text/utf8.h"     // eng_utf8_decode, eng_utf8_valid
#include "engine/train/train_internal.h"  // eng__train_*, eng_lr_schedule

// ---------------------------------------------------------------- data
typedef struct {
    char *buf;          // the file, with tabs and newlines replaced by NULs
    char **src, **tgt;  // [n] pointers into buf
    int n;
} pair_set;

static void pairs_free(pair_set *p) {
    free(p->buf);
    free(p->src);
    free(p->tgt);
    memset(p, 0, sizeof *p);
}

// Reads "source\ttarget" lines (empty lines skipped; \r\n accepted). Every
// other line must have exactly one tab and two non-empty valid UTF-8 sides.
static int read_pairs(pair_set *p, const char *path, char **err) {
    memset(p, 0, sizeof *p);
    size_t len;
    if (!(p->buf = eng_read_file(path, &len, err))) return -1;
    int cap = 0, line = 0;
    for (char *s = p->buf, *end = p->buf + len; s < end;) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *e = nl ? nl : end;
        line++;
        if (e > s && e[-1] == '\r') e[-1] = 0;
        *e = 0;   // the buffer has room for the NUL eng_read_file puts at its end
        if (*s) {
            char *tab = strchr(s, '\t');
            if (!tab || strchr(tab + 1, '\t') || tab == s || !tab[1]) {
                pairs_free(p);
                return eng_errorf(err, "%s:%d: expected \"source<TAB>target\" (two non-empty fields)", path, line);
            }
            *tab = 0;
            if (!eng_utf8_valid(s, strlen(s)) || !eng_utf8_valid(tab + 1, strlen(tab + 1))) {
                pairs_free(p);
                return eng_errorf(err, "%s:%d: invalid UTF-8", path, line);
            }
            if (p->n == cap) {
                cap = cap ? 2 * cap : 1024;
                p->src = realloc(p->src, (size_t)cap * sizeof *p->src);
                p->tgt = realloc(p->tgt, (size_t)cap * sizeof *p->tgt);
                if (!p->src || !p->tgt) { pairs_free(p); return eng_errorf(err, "%s: out of memory", path); }
            }
            p->src[p->n] = s;
            p->tgt[p->n++] = tab + 1;
        }
        s = e + 1;
    }
    if (p->n == 0) { pairs_free(p); return eng_errorf(err, "%s: no pairs", path); }
    return 0;
}

static int held_out(const char *src) {
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)src; *c; c++) h = (h ^ *c) * 16777619u;
    return h % 50 == 0;
}

// A character vocabulary of the given texts, specials first.
static eng_tokenizer *vocab_of(char *const *texts, const int *which, int n, const char *const *specials,
                               int n_specials, json_t **json, char **err) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(texts[which[i]]);
    char *all = eng_xmalloc(total + 1), *w = all;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(texts[which[i]]);
        memcpy(w, texts[which[i]], l);
        w += l;
    }
    uint32_t *cps = NULL;
    int ncp = 0;
    int rc = eng_tok_chars_collect(all, total, &cps, &ncp, err);
    free(all);
    if (rc != 0) return NULL;
    json_t *a = json_array();
    for (int i = 0; i < n_specials; i++) json_array_append_new(a, json_string(specials[i]));
    for (int i = 0; i < ncp; i++) {
        char u[8];
        int k = eng_utf8_encode(cps[i], u);
        json_array_append_new(a, json_stringn(u, (size_t)k));
    }
    free(cps);
    eng_tokenizer *t = NULL;
    if (eng_tokenizer_load_chars_json(&t, a, err) != 0) { json_decref(a); return NULL; }
    *json = a;
    return t;
}

// ---------------------------------------------------------------- chrF
typedef struct { double hyp[6], ref[6], match[6]; } chrf_stats;

static int utf8_cps_nospace(const char *s, uint32_t *out, int cap) {
    int n = 0;
    size_t len = strlen(s);
    for (size_t i = 0; i < len && n < cap;) {
        uint32_t cp;
        int k = eng_utf8_decode(s + i, len - i, &cp);
        if (k <= 0) { cp = 0xFFFD; k = 1; }
        i += (size_t)k;
        if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v') continue;
        out[n++] = cp;
    }
    return n;
}

static int order_n;   // qsort context: the n-gram length being compared
static int cmp_gram(const void *a, const void *b) {
    const uint32_t *x = *(uint32_t *const *)a, *y = *(uint32_t *const *)b;
    for (int k = 0; k < order_n; k++)
        if (x[k] != y[k]) return x[k] < y[k] ? -1 : 1;
    return 0;
}

// Adds one sentence pair's n-gram counts (n = 1..6) to st.
static void chrf_add(chrf_stats *st, const char *hyp, const char *ref) {
    enum { CAP = 4096 };
    static __thread uint32_t h[CAP], r[CAP];
    static __thread const uint32_t *hp[CAP], *rp[CAP];
    int nh = utf8_cps_nospace(hyp, h, CAP), nr = utf8_cps_nospace(ref, r, CAP);
    for (int n = 1; n <= 6; n++) {
        int gh = nh >= n ? nh - n + 1 : 0, gr = nr >= n ? nr - n + 1 : 0;
        st->hyp[n - 1] += gh;
        st->ref[n - 1] += gr;
        for (int i = 0; i < gh; i++) hp[i] = h + i;
        for (int i = 0; i < gr; i++) rp[i] = r + i;
        order_n = n;
        qsort(hp, (size_t)gh, sizeof *hp, cmp_gram);
        qsort(rp, (size_t)gr, sizeof *rp, cmp_gram);
        for (int i = 0, j = 0; i < gh && j < gr;) {   // sum of min(count) = merge of the sorted lists
            int c = cmp_gram(&hp[i], &rp[j]);
            if (c == 0) { st->match[n - 1]++; i++; j++; }
            else if (c < 0) i++;
            else j++;
        }
    }
}

// sacrebleu's compute_chrf: precision and recall averaged over the orders
// with n-grams on both sides, then F-beta (beta = 2), times 100.
static double chrf_score(const chrf_stats *st) {
    const double beta2 = 4.0;
    double p = 0, r = 0;
    int eff = 0;
    for (int n = 0; n < 6; n++) {
        if (st->hyp[n] > 0 && st->ref[n] > 0) {
            p += st->match[n] / st->hyp[n];
            r += st->match[n] / st->ref[n];
            eff++;
        }
    }
    if (eff) { p /= eff; r /= eff; }
    return p + r > 0 ? 100.0 * (1 + beta2) * p * r / (beta2 * p + r) : 0.0;
}

double eng_chrf(const char *const *hyp, const char *const *ref, int n) {
    chrf_stats st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < n; i++) chrf_add(&st, hyp[i], ref[i]);
    return chrf_score(&st);
}

// ---------------------------------------------------------------- greedy translation of many texts
// Translates texts[0..n) with the loaded model (greedy, batches of 64);
// out[i] is a malloc'd string ("" for a text the model cannot take).
static int translate_texts(eng_model *m, char *const *texts, int n, char **out, char **err) {
    eng_s2s_info info = m->arch->s2s->info(m->s2s);
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    eng_translate_opts o = {.beam_size = 1, .max_tokens = info.max_tgt_len - 1, .length_penalty = 1.0f};
    enum { BATCH = 64 };
    int rc = 0;
    for (int s = 0; s < n && rc == 0; s += BATCH) {
        int nb = n - s < BATCH ? n - s : BATCH, k = 0, idx[BATCH], *ids[BATCH], n_ids[BATCH];
        eng_translation tr[BATCH];
        for (int b = 0; b < nb; b++) {
            char *why = NULL;
            out[s + b] = NULL;
            if (eng_model_text_ids(m, texts[s + b], strlen(texts[s + b]), &ids[k], &n_ids[k], &why) != 0) {
                free(why);
                out[s + b] = strdup("");
                continue;
            }
            idx[k++] = s + b;
        }
        if (k && eng_translate(m->arch->s2s, m->s2s, &tape, (const int *const *)ids, n_ids, k, &o, tr) != 0)
            rc = eng_errorf(err, "out of memory translating");
        for (int j = 0; j < k; j++) {
            if (rc == 0) {
                char *text = NULL;
                if (eng_tok_decode(m->tok_tgt, tr[j].ids, tr[j].n, &text, NULL, err) != 0) rc = -1;
                out[idx[j]] = text ? text : strdup("");
                free(tr[j].ids);
            } else {
                out[idx[j]] = strdup("");
            }
            free(ids[j]);
        }
    }
    eng_tape_free(&tape);
    return rc;
}

// chrF and exact match of the model's greedy outputs against refs.
static int score_pairs(eng_model *m, char *const *src, char *const *ref, int n, double *chrf, double *exact,
                       char ***hyps_out, char **err) {
    char **hyp = eng_xcalloc((size_t)n, sizeof *hyp);
    if (translate_texts(m, src, n, hyp, err) != 0) {
        for (int i = 0; i < n; i++) free(hyp[i]);
        free(hyp);
        return -1;
    }
    long same = 0;
    for (int i = 0; i < n; i++) same += strcmp(hyp[i], ref[i]) == 0;
    *chrf = eng_chrf((const char *const *)hyp, (const char *const *)ref, n);
    *exact = n ? (double)same / n : 0;
    if (hyps_out) {
        *hyps_out = hyp;
    } else {
        for (int i = 0; i < n; i++) free(hyp[i]);
        free(hyp);
    }
    return 0;
}

int eng_eval_translation(const char *model_dir, const char *data, double *chrf, double *exact, long *n,
                         char **err) {
    eng_model *m;
    if (eng_model_load(&m, model_dir, err) != 0) return -1;
    if (m->task != ENG_TASK_TRANSLATION) { eng_model_free(m); return 1; }
    pair_set p;
    int rc = -1;
    if (read_pairs(&p, data, err) == 0) {
        rc = score_pairs(m, p.src, p.tgt, p.n, chrf, exact, NULL, err);
        *n = p.n;
        pairs_free(&p);
    }
    eng_model_free(m);
    return rc;
}

// ---------------------------------------------------------------- batches
typedef struct {
    int *src, *src_len;   // ids with EOS; lengths
    int *tin, *tout;      // decoder inputs (start + y) and targets (y + eos)
    int *src_off, *tgt_off, *tgt_len;   // per example: offsets into src / tin,tout; target length (+1)
    int n;
} encoded;

static const encoded *sort_enc;
static int cmp_len(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    int lx = sort_enc->tgt_len[x] + sort_enc->src_len[x], ly = sort_enc->tgt_len[y] + sort_enc->src_len[y];
    return lx != ly ? lx - ly : x - y;
}

// Fills a padded batch of the examples idx[0..B): src [B*S], tin/tout [B*T].
static void make_batch(const encoded *e, const int *idx, int B, int pad_src, int pad_tgt, int *src, int *len, int *tin,
                       int *tout, int *S_out, int *T_out) {
    int S = 1, T = 1;
    for (int b = 0; b < B; b++) {
        S = e->src_len[idx[b]] > S ? e->src_len[idx[b]] : S;
        T = e->tgt_len[idx[b]] > T ? e->tgt_len[idx[b]] : T;
    }
    for (int b = 0; b < B; b++) {
        int i = idx[b];
        len[b] = e->src_len[i];
        for (int s = 0; s < S; s++) src[b * S + s] = s < len[b] ? e->src[e->src_off[i] + s] : pad_src;
        for (int t = 0; t < T; t++) {
            int in = t < e->tgt_len[i];
            tin[b * T + t] = in ? e->tin[e->tgt_off[i] + t] : pad_tgt;
            tout[b * T + t] = in ? e->tout[e->tgt_off[i] + t] : pad_tgt;
        }
    }
    *S_out = S;
    *T_out = T;
}

static void shuffle(int *a, int n, eng_rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)eng_rng_below(rng, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

// One epoch's batch order: shuffled, chunks of 32 batches sorted by length.
static void epoch_order(const encoded *e, const int *train, int n_train, int B, int *order, eng_rng *rng) {
    memcpy(order, train, (size_t)n_train * sizeof(int));
    shuffle(order, n_train, rng);
    sort_enc = e;
    for (int c = 0; c < n_train; c += 32 * B) {
        int k = n_train - c < 32 * B ? n_train - c : 32 * B;
        qsort(order + c, (size_t)k, sizeof(int), cmp_len);
    }
    // shuffle whole batches so lengths are not in order across the epoch
    int nb = n_train / B;
    int *perm = eng_xmalloc((size_t)nb * sizeof(int)), *tmp = eng_xmalloc((size_t)nb * B * sizeof(int));
    for (int i = 0; i < nb; i++) perm[i] = i;
    shuffle(perm, nb, rng);
    for (int i = 0; i < nb; i++) memcpy(tmp + (size_t)i * B, order + (size_t)perm[i] * B, (size_t)B * sizeof(int));
    memcpy(order, tmp, (size_t)nb * B * sizeof(int));
    free(perm);
    free(tmp);
}

// ---------------------------------------------------------------- the loop
static const char *const SRC_SPECIALS[] = {"<pad>", "<unk>", "</s>"};
static const char *const TGT_SPECIALS[] = {"<pad>", "<s>", "</s>", "<unk>"};
enum { SRC_PAD = 0, TGT_PAD = 0, TGT_START = 1, TGT_EOS = 2 };

// ---------------------------------------------------------------- fine-tuning
// The config and both character vocabularies of o->base_model (an
// lstm-attention directory); size options must match. 0 or -1 with *err.
static int open_base_config(const eng_train_opts *o, eng_la_config *c, eng_tokenizer **ts, eng_tokenizer **tt,
                            json_t **vs, json_t **vt, char **err) {
    char path[4096];
    json_error_t je;
    snprintf(path, sizeof path, "%s/config.json", o->base_model);
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) return eng_errorf(err, "base model %s: %s", path, je.text);
    const char *arch = json_string_value(json_object_get(cfg, "arch"));
    int rc = -1;
    if (!arch || strcmp(arch, "lstm-attention") != 0) {
        eng_errorf(err, "base model %s is arch \"%s\", translation trains \"lstm-attention\"", o->base_model, arch ? arch : "?");
        goto done;
    }
    if (eng_la_config_from_json(c, cfg, err) != 0) goto done;
    if (o->dim && o->dim != c->hidden) { eng_errorf(err, "base model %s has hidden %d, the options ask for %d", o->base_model, c->hidden, o->dim); goto done; }
    if (o->n_layers && o->n_layers != c->enc_layers) {
        eng_errorf(err, "base model %s has %d encoder layers, the options ask for %d", o->base_model, c->enc_layers, o->n_layers);
        goto done;
    }
    const char *names[2] = {"source_vocab.json", "target_vocab.json"};
    json_t **js[2] = {vs, vt};
    eng_tokenizer **toks[2] = {ts, tt};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", o->base_model, names[k]);
        if (!(*js[k] = json_load_file(path, 0, &je))) { eng_errorf(err, "base model %s: %s", path, je.text); goto done; }
        if (eng_tokenizer_load_chars_json(toks[k], *js[k], err) != 0) goto done;
    }
    rc = 0;
done:
    json_decref(cfg);
    return rc;
}

// Copies the base model's weights into m's owned parameters (same config). 0 or -1 with *err.
static int copy_base_weights(const eng_train_opts *o, eng_la *m, char **err) {
    eng_la base;
    memset(&base, 0, sizeof base);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->base_model);
    int rc = -1;
    if (eng_la_init(&base, &m->cfg, err) != 0 || eng_la_load_safetensors(&base, path, err) != 0) goto done;
    for (int i = 0; i < m->n_tensors; i++) memcpy(m->tensors[i].val, base.tensors[i].val, m->tensors[i].n * sizeof(float));
    rc = 0;
done:
    eng_la_free(&base);
    return rc;
}

int eng__train_translation(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "lstm-attention") != 0)
        return eng_errorf(err, "translation trains arch \"lstm-attention\"");
    pair_set p, vp;
    memset(&vp, 0, sizeof vp);
    if (read_pairs(&p, o->data, err) != 0) return -1;
    int n_data = p.n;
    if (o->val_data) {   // all of --data trains; the validation pairs follow it in p (their text stays in vp.buf)
        if (read_pairs(&vp, o->val_data, err) != 0) { pairs_free(&p); return -1; }
        char **ns = realloc(p.src, (size_t)(p.n + vp.n) * sizeof *ns), **nt = ns ? realloc(p.tgt, (size_t)(p.n + vp.n) * sizeof *nt) : NULL;
        if (ns) p.src = ns;
        if (nt) p.tgt = nt;
        if (!ns || !nt) { pairs_free(&p); pairs_free(&vp); return eng_errorf(err, "%s: out of memory", o->val_data); }
        memcpy(p.src + p.n, vp.src, (size_t)vp.n * sizeof *ns);
        memcpy(p.tgt + p.n, vp.tgt, (size_t)vp.n * sizeof *nt);
        p.n += vp.n;
    }
    int rc = -1, max_len = o->context_len ? o->context_len : 64;
    int *train = eng_xmalloc((size_t)p.n * sizeof(int)), *held = eng_xmalloc((size_t)p.n * sizeof(int));
    int n_train = 0, n_held = 0;
    for (int i = 0; i < p.n; i++) {
        if (o->val_data ? i >= n_data : held_out(p.src[i])) held[n_held++] = i;
        else train[n_train++] = i;
    }
    eng_ckpt ck;
    eng_ckpt_init(&ck, o, "lstm-attention", 0);
    eng_tokenizer *ts = NULL, *tt = NULL;
    json_t *vs = NULL, *vt = NULL, *config = NULL;
    eng_la model;
    memset(&model, 0, sizeof model);
    encoded e;
    memset(&e, 0, sizeof e);
    float *m1 = NULL, *m2 = NULL;
    int *order = NULL, *bsrc = NULL, *blen = NULL, *btin = NULL, *btout = NULL;
    char *readme = NULL, **hyps = NULL, **ex_hyps = NULL, *ex_buf = NULL, **ex_src = NULL;
    int n_ex = 0;
    eng_model *saved = NULL;
    FILE *f = NULL;
    eng_tape tape;
    eng_tape_init(&tape, 1, 1);
    if (n_train < o->batch_size) {
        eng_errorf(err, "%s: %d training pairs is less than one batch of %d", o->data, n_train, o->batch_size);
        goto done;
    }
    eng_la_config c;
    if (o->base_model) {   // fine-tuning: its config and vocabularies
        if (open_base_config(o, &c, &ts, &tt, &vs, &vt, err) != 0) goto done;
    } else if (!(ts = vocab_of(p.src, train, n_train, SRC_SPECIALS, 3, &vs, err)) ||
               !(tt = vocab_of(p.tgt, train, n_train, TGT_SPECIALS, 4, &vt, err)))
        goto done;

    // ---- encode the training pairs that fit
    {
        size_t cs = 0, ct = 0;
        e.src_off = eng_xmalloc((size_t)p.n * sizeof(int));
        e.tgt_off = eng_xmalloc((size_t)p.n * sizeof(int));
        e.src_len = eng_xcalloc((size_t)p.n, sizeof(int));
        e.tgt_len = eng_xcalloc((size_t)p.n, sizeof(int));
        e.src = eng_xmalloc((size_t)p.n * (max_len + 1) * sizeof(int));
        e.tin = eng_xmalloc((size_t)p.n * (max_len + 1) * sizeof(int));
        e.tout = eng_xmalloc((size_t)p.n * (max_len + 1) * sizeof(int));
        int kept = 0;
        for (int k = 0; k < n_train; k++) {
            int i = train[k], *si = NULL, *ti = NULL, ns = 0, nt = 0;
            if (eng_tok_encode(ts, p.src[i], strlen(p.src[i]), ENG_TOK_FLAG_ADD_EOS, max_len, &si, &ns, NULL) == 0 &&
                eng_tok_encode(tt, p.tgt[i], strlen(p.tgt[i]), 0, max_len - 1, &ti, &nt, NULL) == 0) {
                e.src_off[i] = (int)cs;
                e.tgt_off[i] = (int)ct;
                e.src_len[i] = ns;
                e.tgt_len[i] = nt + 1;
                memcpy(e.src + cs, si, (size_t)ns * sizeof(int));
                e.tin[ct] = TGT_START;
                memcpy(e.tin + ct + 1, ti, (size_t)nt * sizeof(int));
                memcpy(e.tout + ct, ti, (size_t)nt * sizeof(int));
                e.tout[ct + nt] = TGT_EOS;
                cs += (size_t)ns;
                ct += (size_t)nt + 1;
                train[kept++] = i;
            }
            free(si);
            free(ti);
        }
        n_train = kept;
        if (n_train < o->batch_size) {
            eng_errorf(err, "%s: %d training pairs fit in %d characters, less than one batch", o->data, n_train, max_len);
            goto done;
        }
    }

    int H = o->dim ? o->dim : 256;
    if (H % 2) { eng_errorf(err, "--dim must be even (half per encoder direction)"); goto done; }
    if (!o->base_model)
        c = (eng_la_config){.src_vocab = eng_tok_vocab_size(ts), .tgt_vocab = eng_tok_vocab_size(tt),
                            .embed = H / 4 > 16 ? H / 4 : 16, .hidden = H, .enc_layers = o->n_layers ? o->n_layers : 1,
                            .max_src_len = 4 * max_len, .max_tgt_len = 4 * max_len,
                            .start_id = TGT_START, .eos_id = TGT_EOS, .pad_id = TGT_PAD};
    if (eng_la_init(&model, &c, err) != 0) goto done;
    eng_la_init_params(&model, o->seed);
    if (o->base_model && copy_base_weights(o, &model, err) != 0) goto done;
    eng_la_enable_grads(&model);

    int B = o->batch_size, per_epoch = n_train / B;
    int total = o->steps > 0 ? o->steps : o->epochs * per_epoch;
    eng_lr_schedule sched = {.peak = o->lr, .warmup = total / 20 < 200 ? total / 20 + 1 : 200, .total = total,
                             .floor = 0.1f};
    m1 = eng_xcalloc(model.n_params, sizeof(float));
    m2 = eng_xcalloc(model.n_params, sizeof(float));
    order = eng_xmalloc((size_t)n_train * sizeof(int));
    bsrc = eng_xmalloc((size_t)B * (max_len + 1) * sizeof(int));
    blen = eng_xmalloc((size_t)B * sizeof(int));
    btin = eng_xmalloc((size_t)B * (max_len + 1) * sizeof(int));
    btout = eng_xmalloc((size_t)B * (max_len + 1) * sizeof(int));
    eng_rng rng;
    eng_rng_seed(&rng, o->seed ^ 0x5e95e9);
    double t0 = eng_now(), t_last = t0, loss_sum = 0;
    long ex_since = 0;
    int loss_n = 0, pos = per_epoch, epoch = 0;
    // everything the next step depends on, for checkpoints and resume
    eng_ckpt_init(&ck, o, "lstm-attention", total);
    eng_ckpt_floats(&ck, "params", model.params, model.n_params);
    eng_ckpt_floats(&ck, "adamw.m", m1, model.n_params);
    eng_ckpt_floats(&ck, "adamw.v", m2, model.n_params);
    eng_ckpt_ints(&ck, "data.order", order, (size_t)n_train);
    eng_ckpt_ints(&ck, "data.pos", &pos, 1);
    eng_ckpt_ints(&ck, "data.epoch", &epoch, 1);
    eng_ckpt_rng(&ck, "data.rng", &rng);
    eng_ckpt_check(&ck, "data.pairs", p.n);
    eng_ckpt_double(&ck, "loss_sum", &loss_sum);
    eng_ckpt_ints(&ck, "loss_n", &loss_n, 1);
    eng_ckpt_long(&ck, "examples_since_report", &ex_since);
    long start;
    if (eng_ckpt_resume(&ck, &start, err) != 0) goto done;
    for (int step = (int)start + 1; step <= total; step++) {
        if (o->cancel && *o->cancel) { eng_errorf(err, "cancelled"); goto done; }
        if (pos >= per_epoch) { epoch_order(&e, train, n_train, B, order, &rng); pos = 0; epoch++; }
        int S, T;
        make_batch(&e, order + (size_t)pos++ * B, B, SRC_PAD, TGT_PAD, bsrc, blen, btin, btout, &S, &T);
        float lr = eng_lr_at(&sched, step);
        eng_tape_reset(&tape);
        memset(model.grads, 0, model.n_params * sizeof(float));
        eng_var *loss = eng_la_loss(&model, &tape, bsrc, blen, B, S, btin, btout, T);
        eng_tape_backward(&tape, loss);
        eng_clip_grad_norm(model.grads, model.n_params, 1.0f);
        eng_adamw_step(model.params, model.grads, m1, m2, model.n_params, lr, 0.9f, 0.999f, 1e-8f, o->weight_decay, step);
        loss_sum += loss->val[0];
        loss_n++;
        ex_since += B;
        if (step % o->log_every == 0 || step == total) {
            double now = eng_now();
            eng_train_progress pr = {.step = step, .total_steps = total, .epoch = epoch, .loss = (float)(loss_sum / loss_n),
                                     .lr = lr, .examples_per_s = (double)ex_since / (now - t_last),
                                     .eta_s = (now - t0) / (step - start) * (total - step), .val_loss = -1, .val_accuracy = -1};
            eng_ckpt_report(&ck, &pr);
            t_last = now; loss_sum = 0; loss_n = 0; ex_since = 0;
        }
        if (eng_ckpt_after_step(&ck, step, err) != 0) goto done;
    }
    double train_s = eng_ckpt_seconds(&ck);

    // ---- write the model directory
    if (eng__train_mkdirs(o->out, err) != 0) goto done;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (eng_la_save(&model, path, err) != 0) goto done;
    if (eng__train_write_json(o->out, "source_vocab.json", vs, err) != 0 ||
        eng__train_write_json(o->out, "target_vocab.json", vt, err) != 0)
        goto done;
    config = eng_la_config_to_json(&c);
    json_object_set_new(config, "tokenizer_kind", json_string("char"));
    json_object_set_new(config, "max_batch_size", json_integer(16));
    json_object_set_new(config, "max_queue_delay_us", json_integer(2000));
    json_object_set_new(config, "timeout_ms", json_integer(60000));
    if (eng__train_write_json(o->out, "config.json", config, err) != 0) goto done;
    {   // the held-out pairs, for `inferd eval`
        char *hb = NULL;
        size_t hl = 0;
        FILE *hf = open_memstream(&hb, &hl);
        for (int k = 0; k < n_held; k++) fprintf(hf, "%s\t%s\n", p.src[held[k]], p.tgt[held[k]]);
        fclose(hf);
        snprintf(path, sizeof path, "%s/heldout.tsv", o->out);
        int wrc = eng_write_file_atomic(path, hb, hl, err);
        free(hb);
        if (wrc != 0) goto done;
    }

    // ---- evaluate the SAVED model on the held-out pairs
    if (eng_model_load(&saved, o->out, err) != 0) goto done;
    double chrf = 0, exact = 0;
    char **hsrc = eng_xmalloc((size_t)(n_held + 1) * sizeof(char *)), **href = eng_xmalloc((size_t)(n_held + 1) * sizeof(char *));
    for (int k = 0; k < n_held; k++) { hsrc[k] = p.src[held[k]]; href[k] = p.tgt[held[k]]; }
    int src_rc = n_held ? score_pairs(saved, hsrc, href, n_held, &chrf, &exact, &hyps, err) : 0;
    if (src_rc != 0) { free(hsrc); free(href); goto done; }
    // examples: the sources given with --sample-prompt ("a|b|c"), then held-out pairs
    if (o->sample_prompt) {
        ex_buf = strdup(o->sample_prompt);
        ex_src = eng_xmalloc((strlen(ex_buf) + 1) * sizeof(char *));
        for (char *s = ex_buf, *bar; s; s = bar ? bar + 1 : NULL) {
            bar = strchr(s, '|');
            if (bar) *bar = 0;
            if (*s) ex_src[n_ex++] = s;
        }
        ex_hyps = eng_xcalloc((size_t)n_ex + 1, sizeof(char *));
        if (translate_texts(saved, ex_src, n_ex, ex_hyps, err) != 0) { free(hsrc); free(href); goto done; }
    }
    size_t rl = 0;
    f = open_memstream(&readme, &rl);
    const char *base = strrchr(o->out, '/') ? strrchr(o->out, '/') + 1 : o->out;
    fprintf(f, "# %s\n\nA character-level LSTM encoder-decoder with attention (arch `lstm-attention`: bidirectional "
               "LSTM encoder, %d layer%s; LSTM decoder with Luong \"general\" attention and input feeding; hidden %d, "
               "embeddings %d; %zu parameters; vocabularies of %d source and %d target characters) trained by "
               "inferd's own trainer.\n\n## Reproduce\n\n```\n%s\n```\n\n"
               "Data: `%s`: %d pairs, of which %d %s are held out (`heldout.tsv`) and %d of "
               "the others (at most %d characters a side) train. %d steps of %d pairs (%.1f epochs), teacher forcing, "
               "AdamW lr %g (warmup %d, cosine to 10%%), weight decay %g, gradient clipping 1.0, seed %llu. "
               "Training took %.0f s on this machine.\n\n"
               "## Held-out score\n\nGreedy decoding of the %d held-out sources by the saved model: "
               "**chrF2 %.2f**, **exact match %.2f%%** (`inferd eval --model %s --data %s/heldout.tsv`).\n",
            base, c.enc_layers, c.enc_layers > 1 ? "s" : "", c.hidden, c.embed, model.n_params, c.src_vocab, c.tgt_vocab,
            o->command ? o->command : "inferd train --task translation ...", o->data, p.n, n_held,
            o->val_data ? "(those of the validation file)" : "(source hash mod 50 == 0)", n_train, max_len,
            total, B, (double)total / per_epoch, (double)o->lr, sched.warmup, (double)o->weight_decay,
            (unsigned long long)o->seed, train_s, n_held, chrf, 100 * exact, o->out, o->out);
    if (o->base_model) fprintf(f, "\nFine-tuned from `%s` (its config and vocabularies).\n", o->base_model);
    if (o->val_data) fprintf(f, "\nValidation pairs: `%s`.\n", o->val_data);
    if (n_ex) {
        fprintf(f, "\n## Examples\n\n| source | output (greedy) |\n|---|---|\n");
        for (int k = 0; k < n_ex; k++) fprintf(f, "| %s | %s |\n", ex_src[k], ex_hyps[k]);
    }
    if (n_held) {
        fprintf(f, "\n## Held-out examples (the first 15)\n\n| source | reference | output |\n|---|---|---|\n");
        for (int k = 0; k < n_held && k < 15; k++) fprintf(f, "| %s | %s | %s |\n", hsrc[k], href[k], hyps[k]);
    }
    fclose(f);
    f = NULL;
    free(hsrc);
    free(href);
    snprintf(path, sizeof path, "%s/README.md", o->out);
    if (eng_write_file_atomic(path, readme, rl, err) != 0) goto done;
    json_object_set_new(config, "training", json_pack("{s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:i}", "steps", total, "batch_size", B,
                        "max_len", max_len, "learning_rate", (double)o->lr, "heldout_chrf", chrf, "heldout_exact_match",
                        exact, "seconds", train_s, "heldout_pairs", n_held));
    if (eng__train_write_json(o->out, "config.json", config, err) != 0) goto done;
    if (o->progress) {
        eng_train_progress pr = {.step = total, .total_steps = total, .loss = -1, .val_loss = -1, .val_accuracy = -1};
        o->progress(o->progress_ctx, &pr);
    }
    fprintf(stderr, "held-out chrF2 %.2f, exact match %.2f%% (%d pairs)\n", chrf, 100 * exact, n_held);
    rc = 0;
done:
    if (f) fclose(f);
    if (hyps) for (int k = 0; k < n_held; k++) free(hyps[k]);
    free(hyps);
    if (ex_hyps) for (int k = 0; k < n_ex; k++) free(ex_hyps[k]);
    free(ex_hyps); free(ex_src); free(ex_buf);
    eng_model_free(saved);
    free(readme);
    free(m1); free(m2); free(order); free(bsrc); free(blen); free(btin); free(btout);
    free(e.src); free(e.tin); free(e.tout); free(e.src_off); free(e.tgt_off); free(e.src_len); free(e.tgt_len);
    eng_la_free(&model);
    json_decref(vs); json_decref(vt); json_decref(config);
    eng_tokenizer_free(ts);
    eng_tokenizer_free(tt);
    eng_tape_free(&tape);
    free(train); free(held);
    eng_ckpt_free(&ck);
    pairs_free(&p);
    pairs_free(&vp);
    return rc;
}

// ---------------------------------------------------------------- eng_train_check
// Every line "source<TAB>target" in UTF-8 (read_pairs names the line), enough
// training pairs for a batch; the validation file likewise.
int eng__check_translation(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "lstm-attention") != 0)
        return eng_errorf(err, "translation trains arch \"lstm-attention\"");
    pair_set p;
    if (read_pairs(&p, o->data, err) != 0) return -1;
    int n_train = 0;
    for (int i = 0; i < p.n; i++) n_train += o->val_data || !held_out(p.src[i]);
    pairs_free(&p);
    if (n_train < o->batch_size)
        return eng_errorf(err, "%s: %d training pairs is less than one batch of %d", o->data, n_train, o->batch_size);
    if (o->val_data) {
        if (read_pairs(&p, o->val_data, err) != 0) return -1;
        pairs_free(&p);
    }
    return 0;
}
