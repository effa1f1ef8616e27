// fasttext.c — the fastText-style classifier (see fasttext.h): features,
// forward pass, one SGD step, and the weights on disk.
#include "engine/arch/fasttext.h"
#include <math.h>                      // expf, logf
#include <stdlib.h>                    // malloc, realloc
#include <string.h>                    // memset, memcpy
#include "engine/core/rng.h"           // eng_rng (init)
#include "engine/core/util.h"          // eng_errorf, eng_aligned
#include "engine/text/tokenizer.h"     // ENG_TOK_E_TOO_LONG, ENG_TOK_E_NOMEM
#include "engine/text/unicode_tables.h" // eng__uni_letter (what a word is made of)
#include "engine/text/utf8.h"          // eng_utf8_decode, eng_utf8_encode

#define FT_DEFAULT_DIM 16
#define FT_DEFAULT_BUCKETS 131072
#define FT_DEFAULT_MINN 1
#define FT_DEFAULT_MAXN 4
#define FT_DEFAULT_MAX_IDS 16384
#define FT_WORD_SEED 0x9747b28cu   // words hash apart from the n-grams of the same bytes

// ---------------------------------------------------------------- hyperparameters
static int cfg_int(const json_t *cfg, const char *key, int def, int lo, int hi, int *out, char **err) {
    const json_t *v = json_object_get(cfg, key);
    if (!v) { *out = def; return 0; }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return eng_errorf(err, "config: \"%s\" must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

int eng_ft_init(eng_fasttext *ft, const json_t *cfg, int n_labels, char **err) {
    memset(ft, 0, sizeof *ft);
    if (n_labels < 1) return eng_errorf(err, "config: a classifier needs at least one label");
    ft->n_labels = n_labels;
    if (cfg_int(cfg, "dim", FT_DEFAULT_DIM, 1, ENG_FT_MAX_DIM, &ft->dim, err) ||
        cfg_int(cfg, "buckets", FT_DEFAULT_BUCKETS, 1, 1 << 26, &ft->buckets, err) ||
        cfg_int(cfg, "minn", FT_DEFAULT_MINN, 1, 16, &ft->minn, err) ||
        cfg_int(cfg, "maxn", FT_DEFAULT_MAXN, 1, 16, &ft->maxn, err) ||
        cfg_int(cfg, "max_text_ids", FT_DEFAULT_MAX_IDS, 0, 1 << 24, &ft->max_ids, err))
        return -1;
    if (ft->minn > ft->maxn) return eng_errorf(err, "config: \"minn\" (%d) exceeds \"maxn\" (%d)", ft->minn, ft->maxn);
    return 0;
}

void eng_ft_config(const eng_fasttext *ft, json_t *cfg) {
    json_object_set_new(cfg, "dim", json_integer(ft->dim));
    json_object_set_new(cfg, "buckets", json_integer(ft->buckets));
    json_object_set_new(cfg, "minn", json_integer(ft->minn));
    json_object_set_new(cfg, "maxn", json_integer(ft->maxn));
    json_object_set_new(cfg, "max_text_ids", json_integer(ft->max_ids));
}

size_t eng_ft_n_params(const eng_fasttext *ft) {
    return (size_t)ft->buckets * (size_t)ft->dim + (size_t)ft->n_labels * (size_t)(ft->dim + 1);
}

// ---------------------------------------------------------------- weights
int eng_ft_load(eng_fasttext *ft, const char *path, char **err) {
    if (eng_st_open(&ft->st, path, err) != 0) return -1;
    const float *e = eng_st_get(&ft->st, "embeddings", 2, (int64_t[]){ft->buckets, ft->dim}, err);
    const float *w = e ? eng_st_get(&ft->st, "output.weight", 2, (int64_t[]){ft->n_labels, ft->dim}, err) : NULL;
    const float *b = w ? eng_st_get(&ft->st, "output.bias", 1, (int64_t[]){ft->n_labels}, err) : NULL;
    if (!b) { eng_st_close(&ft->st); return -1; }
    ft->emb = (float *)e;   // read-only mapping: never written while serving
    ft->out_w = (float *)w;
    ft->out_b = (float *)b;
    return 0;
}

int eng_ft_alloc(eng_fasttext *ft, uint64_t seed) {
    size_t n = eng_ft_n_params(ft);
    ft->owned = eng_aligned(n * sizeof(float));
    if (!ft->owned) return -1;
    ft->emb = ft->owned;
    ft->out_w = ft->emb + (size_t)ft->buckets * (size_t)ft->dim;
    ft->out_b = ft->out_w + (size_t)ft->n_labels * (size_t)ft->dim;
    eng_rng r;
    eng_rng_seed(&r, seed);
    float a = 1.0f / (float)ft->dim;
    for (size_t i = 0; i < (size_t)ft->buckets * (size_t)ft->dim; i++) ft->emb[i] = (2 * eng_rng_uniform(&r) - 1) * a;
    memset(ft->out_w, 0, (size_t)ft->n_labels * (size_t)(ft->dim + 1) * sizeof(float));
    return 0;
}

int eng_ft_save(const eng_fasttext *ft, const char *path, char **err) {
    eng_st_entry e[3] = {
        {.name = "embeddings", .ndim = 2, .shape = {ft->buckets, ft->dim}, .data = ft->emb},
        {.name = "output.weight", .ndim = 2, .shape = {ft->n_labels, ft->dim}, .data = ft->out_w},
        {.name = "output.bias", .ndim = 1, .shape = {ft->n_labels}, .data = ft->out_b},
    };
    const char *meta[] = {"format", "pt", NULL};
    return eng_st_write(path, e, 3, meta, err);
}

void eng_ft_free(eng_fasttext *ft) {
    if (!ft) return;
    eng_st_close(&ft->st);
    free(ft->owned);
    ft->owned = ft->emb = ft->out_w = ft->out_b = NULL;
}

// ---------------------------------------------------------------- features
// Letters (\p{L}) and the combining marks that spell words (Latin/Cyrillic
// diacritics, the vowel signs of Indic scripts) make words; all else separates.
static int is_word_char(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    if ((c >= 0x300 && c <= 0x36F) || (c >= 0x483 && c <= 0x489) || (c >= 0x1AB0 && c <= 0x1AFF) ||
        (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x900 && c <= 0xDFF && !(c >= 0x966 && c <= 0x96F)))
        return 1;
    int lo = 0, hi = (int)(sizeof eng__uni_letter / sizeof eng__uni_letter[0]) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < eng__uni_letter[mid][0]) hi = mid - 1;
        else if (c > eng__uni_letter[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

// Simple lowercase mapping of the alphabets with case that the languages of
// Europe use (Latin incl. Extended-A and Vietnamese, Greek, Cyrillic,
// Armenian); other characters are returned as they are.
static uint32_t to_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x130) return 'i';
        if (c == 0x178) return 0xFF;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c & 1 ? c + 1 : c;
        if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
        return c & 1 ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F)) return c & 1 ? c : c + 1;
    if (c >= 0x4C1 && c <= 0x4CE) return c & 1 ? c + 1 : c;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if (c >= 0x1E00 && c <= 0x1EFF) return c & 1 ? c : c + 1;
    return c;
}

static uint32_t fnv1a(uint32_t h, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 16777619u; }
    return h;
}

typedef struct {
    int *ids;
    int n, cap, max;
} id_list;

static int push(id_list *l, uint32_t id) {
    if (l->max > 0 && l->n >= l->max) return ENG_TOK_E_TOO_LONG;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        if (l->max > 0 && cap > l->max) cap = l->max;
        int *p = realloc(l->ids, (size_t)cap * sizeof(int));
        if (!p) return ENG_TOK_E_NOMEM;
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = (int)id;
    return 0;
}

// The features of one word w[0..len) = "<" letters ">", whose k codepoints
// start at pos[0..k) (pos[k] == len).
static int word_features(const eng_fasttext *ft, const unsigned char *w, const int *pos, int k, id_list *l) {
    uint32_t B = (uint32_t)ft->buckets;
    int rc = push(l, fnv1a(2166136261u ^ FT_WORD_SEED, w + 1, (size_t)(pos[k - 1] - 1)) % B);
    for (int i = 0; rc == 0 && i < k; i++) {
        uint32_t h = 2166136261u;
        for (int j = i, n = 1; rc == 0 && j < k && n <= ft->maxn; j++, n++) {
            h = fnv1a(h, w + pos[j], (size_t)(pos[j + 1] - pos[j]));
            if (n >= ft->minn && !(n == 1 && (j == 0 || j == k - 1))) rc = push(l, h % B);
        }
    }
    return rc;
}

int eng_ft_features(const eng_fasttext *ft, const char *text, size_t len, int **ids, int *n, char **err) {
    *ids = NULL;
    *n = 0;
    // one word at a time: w holds "<" + its lowercased letters + ">", pos the
    // start of each codepoint in w; neither outgrows the text plus the markers
    unsigned char *w = malloc(len + 3);
    int *pos = malloc((len + 3) * sizeof(int));
    id_list l = {.max = ft->max_ids};
    int rc = 0, k = 0;
    size_t wn = 0;
    if (!w || !pos) { rc = ENG_TOK_E_NOMEM; goto done; }
    for (size_t i = 0; i <= len && rc == 0;) {
        uint32_t c = 0;
        int cl = 1, letter = 0;
        if (i < len) {
            cl = eng_utf8_decode(text + i, len - i, &c);
            if (cl == 0) cl = 1;   // an invalid byte separates words, like U+FFFD would
            else letter = is_word_char(c);
        }
        if (letter) {
            if (k == 0) { w[0] = '<'; pos[0] = 0; wn = 1; k = 1; }
            char buf[4];
            int bl = eng_utf8_encode(to_lower(c), buf);
            if (bl <= 0 || wn + (size_t)bl + 1 > len + 3) { bl = cl; memcpy(buf, text + i, (size_t)cl); }   // keep it as is
            pos[k++] = (int)wn;
            memcpy(w + wn, buf, (size_t)bl);
            wn += (size_t)bl;
        } else if (k > 0) {   // the word ends here
            pos[k++] = (int)wn;
            w[wn++] = '>';
            pos[k] = (int)wn;
            rc = word_features(ft, w, pos, k, &l);
            k = 0;
        }
        i += (size_t)cl;
    }
    if (rc == ENG_TOK_E_TOO_LONG)
        eng_errorf(err, "text has more than %d features (max_text_ids of this model)", ft->max_ids);
    else if (rc == ENG_TOK_E_NOMEM)
        eng_errorf(err, "out of memory");
    else if (l.n == 0)
        rc = eng_errorf(err, "text has no letters to classify");
done:
    free(w);
    free(pos);
    if (rc != 0) { free(l.ids); return rc; }
    *ids = l.ids;
    *n = l.n;
    return 0;
}

// ---------------------------------------------------------------- forward and SGD
void eng_ft_forward(const eng_fasttext *ft, const int *ids, int n, float *h, float *probs) {
    int d = ft->dim;
    memset(h, 0, (size_t)d * sizeof(float));
    for (int i = 0; i < n; i++) {
        const float *row = ft->emb + (size_t)ids[i] * (size_t)d;
        for (int k = 0; k < d; k++) h[k] += row[k];
    }
    float inv = n > 0 ? 1.0f / (float)n : 0.0f;
    for (int k = 0; k < d; k++) h[k] *= inv;
    float mx = -INFINITY, sum = 0;
    for (int c = 0; c < ft->n_labels; c++) {
        const float *wr = ft->out_w + (size_t)c * (size_t)d;
        float z = ft->out_b[c];
        for (int k = 0; k < d; k++) z += wr[k] * h[k];
        probs[c] = z;
        if (z > mx) mx = z;
    }
    for (int c = 0; c < ft->n_labels; c++) sum += probs[c] = expf(probs[c] - mx);
    for (int c = 0; c < ft->n_labels; c++) probs[c] /= sum;
}

float eng_ft_sgd_step(eng_fasttext *ft, const int *ids, int n, int label, float lr) {
    int d = ft->dim;
    float h[ENG_FT_MAX_DIM], dh[ENG_FT_MAX_DIM], stack_p[256];
    float *p = ft->n_labels <= 256 ? stack_p : malloc((size_t)ft->n_labels * sizeof(float));
    if (!p) return NAN;
    eng_ft_forward(ft, ids, n, h, p);
    float loss = -logf(p[label] > 1e-30f ? p[label] : 1e-30f);
    memset(dh, 0, (size_t)d * sizeof(float));
    for (int c = 0; c < ft->n_labels; c++) {
        float g = p[c] - (c == label ? 1.0f : 0.0f);
        float *wr = ft->out_w + (size_t)c * (size_t)d;
        for (int k = 0; k < d; k++) {
            dh[k] += g * wr[k];
            wr[k] -= lr * g * h[k];
        }
        ft->out_b[c] -= lr * g;
    }
    float s = n > 0 ? -lr / (float)n : 0.0f;
    for (int i = 0; i < n; i++) {
        float *row = ft->emb + (size_t)ids[i] * (size_t)d;
        for (int k = 0; k < d; k++) row[k] += s * dh[k];
    }
    if (p != stack_p) free(p);
    return loss;
}
