// tokenizer_wordpiece.c — BERT's tokenizer: vocab.txt (one token a line, id =
// line number) and Hugging Face's BertTokenizer (the Python one, which the
// fast tokenizer follows): BasicTokenizer, then WordpieceTokenizer.
//
//   clean:    drop U+0000, U+FFFD and category C* (but \t \n \r), every
//             whitespace (\t \n \r, Zs) becomes " "
//   CJK:      each ideograph of _is_chinese_char's ranges is a word of its own
//   words:    split at " ", U+2028, U+2029 (what str.split() still sees)
//   per word: str.lower() (final sigma included), NFD minus Mn (strip_accents),
//             then split around every punctuation character (ASCII symbols
//             and category P*)
//   per piece: greedy longest match first, "##" on continuations; a piece
//             of more than 100 characters, or one that does not match to its
//             end, is [UNK]
//
// The Unicode data is read off Python by tests/ref/make_wordpiece_tables.py
// (unicode_wordpiece.h). Invalid UTF-8 bytes are read as U+FFFD, which the
// cleaning drops (as Python's decode(errors="replace") then HF would).
// Special tokens in the text ("[SEP]") are ordinary text unless the caller
// passes ENG_TOK_FLAG_SPECIAL.
#include "engine/text/tokenizer_internal.h"
#include <stdlib.h>          // malloc, free
#include <string.h>          // memcpy, strcmp
#include "engine/core/util.h"     // eng_errorf, eng_read_file
#include "engine/text/unicode_wordpiece.h"   // eng__wp_class, eng__wp_lower, eng__wp_strip

enum { MAX_WORD_CHARS = 100 };   // HF max_input_chars_per_word

// ---------------------------------------------------------------- character data

static unsigned cp_flags(uint32_t cp)
{
    size_t lo = 0, hi = sizeof eng__wp_class / sizeof eng__wp_class[0];
    while (hi - lo > 1) {   // the last run starting at or before cp
        size_t mid = (lo + hi) / 2;
        if ((eng__wp_class[mid] >> 8) <= cp) lo = mid;
        else hi = mid;
    }
    return eng__wp_class[lo] & 0xFF;
}

static uint32_t lower1(uint32_t cp)
{
    size_t lo = 0, hi = sizeof eng__wp_lower / sizeof eng__wp_lower[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uint32_t)eng__wp_lower[mid][1] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < sizeof eng__wp_lower / sizeof eng__wp_lower[0]) {
        const int32_t *r = eng__wp_lower[lo];
        if (cp >= (uint32_t)r[0] && (cp - (uint32_t)r[0]) % (uint32_t)r[2] == 0) return (uint32_t)((int32_t)cp + r[3]);
    }
    return cp;
}

// HF BasicTokenizer._is_chinese_char.
static int is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// HF _is_punctuation: the ASCII non-alphanumerics count too ("^", "$", "`").
static int is_punct(uint32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    return (cp_flags(cp) & ENG_WP_PUNCT) != 0;
}

// ---------------------------------------------------------------- one word

// str.lower() of w[0..n) into out (room for 2n); returns the count. Capital
// sigma is final (U+03C2) after a cased letter and not before one, skipping
// case-ignorable characters both ways (Python's handle_capital_sigma).
static int lower_word(const uint32_t *w, int n, uint32_t *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        uint32_t c = w[i];
        if (c == 0x130) {   // İ -> i + combining dot above
            out[k++] = 'i';
            out[k++] = 0x307;
            continue;
        }
        if (c == 0x3A3) {
            int j = i - 1;
            while (j >= 0 && (cp_flags(w[j]) & ENG_WP_CASE_IGN)) j--;
            int final = j >= 0 && (cp_flags(w[j]) & ENG_WP_CASED);
            if (final) {
                j = i + 1;
                while (j < n && (cp_flags(w[j]) & ENG_WP_CASE_IGN)) j++;
                final = j == n || !(cp_flags(w[j]) & ENG_WP_CASED);
            }
            out[k++] = final ? 0x3C2 : 0x3C3;
            continue;
        }
        out[k++] = lower1(c);
    }
    return k;
}

// NFD with the Mn marks dropped, w[0..n) into out (room for 3n); returns the count.
static int strip_word(const uint32_t *w, int n, uint32_t *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        uint32_t c = w[i];
        if (c >= 0xAC00 && c <= 0xD7A3) {   // Hangul syllable -> L V (T), none of them Mn
            uint32_t s = c - 0xAC00;
            out[k++] = 0x1100 + s / 588;
            out[k++] = 0x1161 + (s % 588) / 28;
            if (s % 28) out[k++] = 0x11A7 + s % 28;
            continue;
        }
        size_t lo = 0, hi = sizeof eng__wp_strip / sizeof eng__wp_strip[0];
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (eng__wp_strip[mid][0] < c) lo = mid + 1;
            else hi = mid;
        }
        if (lo < sizeof eng__wp_strip / sizeof eng__wp_strip[0] && eng__wp_strip[lo][0] == c) {
            uint32_t o = eng__wp_strip[lo][1];
            if (o & ENG_WP_STRIP_POOL) {
                uint32_t cnt = (o >> 16) & 0x7FFF, off = o & 0xFFFF;
                for (uint32_t q = 0; q < cnt; q++) out[k++] = eng__wp_strip_pool[off + q];
            } else {
                out[k++] = o;
            }
            continue;
        }
        if (!(cp_flags(c) & ENG_WP_MN)) out[k++] = c;
    }
    return k;
}

// WordpieceTokenizer on one piece p[0..n) (no whitespace, no punctuation
// inside unless it is the punctuation character alone).
static int wordpiece(const eng_tokenizer *t, const uint32_t *p, int n, eng__tok_ids *out)
{
    if (n > MAX_WORD_CHARS) return eng__tok_ids_push(out, t->unk);
    char bytes[MAX_WORD_CHARS * 4 + 2];
    int off[MAX_WORD_CHARS + 1];
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = off[i] + eng_utf8_encode(p[i], bytes + 2 + off[i]);
    int mark = out->n;   // sub-tokens pushed so far are dropped if the word turns out unknown
    for (int start = 0; start < n;) {
        int end = n, id = -1;
        char sub[MAX_WORD_CHARS * 4 + 2];
        for (; end > start; end--) {
            size_t l = (size_t)(off[end] - off[start]);
            if (start == 0) {
                id = eng__tok_strmap_get(t, bytes + 2, l);
            } else {
                sub[0] = sub[1] = '#';
                memcpy(sub + 2, bytes + 2 + off[start], l);
                id = eng__tok_strmap_get(t, sub, l + 2);
            }
            if (id >= 0) break;
        }
        if (id < 0) {
            out->n = mark;
            return eng__tok_ids_push(out, t->unk);
        }
        int rc = eng__tok_ids_push(out, id);
        if (rc != 0) return rc;
        start = end;
    }
    return 0;
}

// The special token a word is, as written ("[SEP]"), or -1: HF passes them
// as never_split (not lowered, not split at "[" "]").
static int special_word(const eng_tokenizer *t, const uint32_t *w, int n)
{
    char b[64];
    int l = 0;
    for (int i = 0; i < n; i++) {
        if (l + 4 > (int)sizeof b) return -1;
        l += eng_utf8_encode(w[i], b + l);
    }
    for (int k = 0; k < t->n_special; k++) {
        int id = t->special[k];
        if (t->str_len[id] == (uint32_t)l && memcmp(t->str[id], b, (size_t)l) == 0) return id;
    }
    return -1;
}

// One whitespace-separated word: lower / strip, then split at punctuation.
static int encode_word(const eng_tokenizer *t, const uint32_t *w, int n, uint32_t *buf1, uint32_t *buf2,
                       eng__tok_ids *out)
{
    int sp = special_word(t, w, n);
    if (sp >= 0) return eng__tok_ids_push(out, sp);
    if (t->wp_lower) {
        n = lower_word(w, n, buf1);
        w = buf1;
    }
    if (t->wp_strip) {
        n = strip_word(w, n, buf2);
        w = buf2;
    }
    int rc = 0;
    for (int i = 0, start = 0; i <= n && rc == 0; i++) {
        if (i < n && !is_punct(w[i])) continue;
        if (i > start) rc = wordpiece(t, w + start, i - start, out);   // the run before
        if (rc == 0 && i < n) rc = wordpiece(t, w + i, 1, out);        // the punctuation alone
        start = i + 1;
    }
    return rc;
}

// ---------------------------------------------------------------- encode

int eng__tok_wordpiece_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                              eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err)
{
    // cps: the cleaned text; a word of it grows at most 2x lowering, 3x stripping.
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    uint32_t *b1 = malloc((2 * len + 1) * sizeof *b1);
    uint32_t *b2 = malloc((6 * len + 1) * sizeof *b2);
    int rc = 0;
    if (!cps || !b1 || !b2) {
        rc = ENG_TOK_E_NOMEM;
        goto done;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        int d = eng_utf8_decode(text + i, len - i, &c);
        if (d == 0) {   // invalid byte: U+FFFD, which cleaning drops
            i++;
            continue;
        }
        i += (size_t)d;
        if (c == 0 || c == 0xFFFD) continue;
        if (c == '\t' || c == '\n' || c == '\r') c = ' ';
        unsigned f = cp_flags(c);
        if (f & ENG_WP_CTRL) continue;
        if (f & ENG_WP_ZS) c = ' ';
        cps[n++] = c;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n && rc == 0; i++) {
        int sep = i == n || cps[i] == ' ' || cps[i] == 0x2028 || cps[i] == 0x2029;
        int cjk = !sep && t->wp_chinese && is_cjk(cps[i]);
        if (!sep && !cjk) continue;
        if (i > start) rc = encode_word(t, cps + start, (int)(i - start), b1, b2, out);
        if (rc == 0 && cjk) rc = encode_word(t, cps + i, 1, b1, b2, out);
        start = i + 1;
    }
done:
    free(cps);
    free(b1);
    free(b2);
    return rc;
}

// ---------------------------------------------------------------- loading

// A special token's name in tokenizer_config.json: a string or {"content": ...}.
static const char *config_token(const json_t *cfg, const char *key, const char *def)
{
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : def;
}

static int config_bool(const json_t *cfg, const char *key, int def, const char *what, int *out, char **err)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return eng_errorf(err, "%s: \"%s\" must be true or false", what, key);
    *out = json_is_true(v);
    return 0;
}

int eng_tokenizer_load_wordpiece_mem(eng_tokenizer **out, const char *vocab, size_t len, const json_t *cfg,
                                     char **err)
{
    *out = NULL;
    const char *what = "tokenizer_config.json";
    int lower = 1, chinese = 1, strip = 1, basic = 1;
    if (cfg && !json_is_object(cfg)) return eng_errorf(err, "%s: not a JSON object", what);
    if (config_bool(cfg, "do_lower_case", 1, what, &lower, err) ||
        config_bool(cfg, "tokenize_chinese_chars", 1, what, &chinese, err) ||
        config_bool(cfg, "strip_accents", lower, what, &strip, err) ||
        config_bool(cfg, "do_basic_tokenize", 1, what, &basic, err))
        return -1;
    if (!basic) return eng_errorf(err, "%s: do_basic_tokenize false is not supported", what);
    if (!eng_utf8_valid(vocab, len)) return eng_errorf(err, "vocab.txt: not UTF-8");
    // Lines as Python's readlines() in text mode: "\n", "\r\n" and "\r" end one.
    int n = 0;
    for (size_t i = 0; i < len; i++)
        if (vocab[i] == '\n' || (vocab[i] == '\r' && (i + 1 == len || vocab[i + 1] != '\n'))) n++;
    if (len > 0 && vocab[len - 1] != '\n' && vocab[len - 1] != '\r') n++;   // a last line without an end
    if (n == 0) return eng_errorf(err, "vocab.txt: empty");
    if (n > (1 << 24)) return eng_errorf(err, "vocab.txt: %d lines", n);

    eng_tokenizer *t = calloc(1, sizeof *t);
    eng__tok_buf pool = {0};
    size_t *str_off = malloc((size_t)n * sizeof *str_off);
    size_t *piece_off = malloc((size_t)n * sizeof *piece_off);
    if (!t || !str_off || !piece_off || eng__tok_alloc(t, ENG_TOK_KIND_WORDPIECE, n) != 0) goto oom;
    t->wp_lower = lower;
    t->wp_strip = strip;
    t->wp_chinese = chinese;
    int id = 0;
    for (size_t i = 0; i < len && id < n;) {
        size_t e = i;
        while (e < len && vocab[e] != '\n' && vocab[e] != '\r') e++;
        size_t l = e - i;
        // Decoding: a continuation "##x" adds "x", a word " x" (the space is
        // dropped at the start): HF's " ".join(tokens).replace(" ##", "").
        int cont = l >= 2 && vocab[i] == '#' && vocab[i + 1] == '#';
        char *tmp = malloc(l + 1);
        if (!tmp) goto oom;
        tmp[0] = ' ';
        memcpy(tmp + 1, vocab + i, l);
        int bad = eng__tok_buf_add(&pool, vocab + i, l, &str_off[id]) != 0 ||
                  eng__tok_buf_add(&pool, cont ? tmp + 3 : tmp, cont ? l - 2 : l + 1, &piece_off[id]) != 0;
        free(tmp);
        if (bad) goto oom;
        t->str_len[id] = (uint32_t)l;
        t->piece_len[id] = (uint32_t)(cont ? l - 2 : l + 1);
        id++;
        i = e < len && vocab[e] == '\r' && e + 1 < len && vocab[e + 1] == '\n' ? e + 2 : e + 1;
    }
    eng__tok_set_pool(t, &pool, str_off, piece_off);
    if (eng__tok_strmap_build(t) != 0) goto oom;
    eng__tok_strmap_prefer_last(t);
    const char *unk = config_token(cfg, "unk_token", "[UNK]");
    const char *cls = config_token(cfg, "cls_token", "[CLS]");
    const char *sep = config_token(cfg, "sep_token", "[SEP]");
    t->unk = eng__tok_strmap_get(t, unk, strlen(unk));
    t->bos = eng__tok_strmap_get(t, cls, strlen(cls));
    t->eos = eng__tok_strmap_get(t, sep, strlen(sep));
    if (t->unk < 0) {
        eng_errorf(err, "vocab.txt: no unknown-word token \"%s\"", unk);
        goto fail;
    }
    // The specials ENG_TOK_FLAG_SPECIAL matches in text.
    static const char *const specials[] = {"unk_token", "cls_token", "sep_token", "pad_token", "mask_token"};
    static const char *const defaults[] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
    if (!(t->special = malloc(sizeof specials / sizeof specials[0] * sizeof(int)))) goto oom;
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
        const char *s = config_token(cfg, specials[k], defaults[k]);
        int sid = eng__tok_strmap_get(t, s, strlen(s));
        if (sid >= 0) t->special[t->n_special++] = sid;
    }
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

int eng_tokenizer_load_wordpiece(eng_tokenizer **out, const char *vocab_path, const char *config_path,
                                 char **err)
{
    *out = NULL;
    json_t *cfg = NULL;
    if (config_path) {
        json_error_t je;
        cfg = json_load_file(config_path, 0, &je);
        if (!cfg) return eng_errorf(err, "%s: line %d: %s", config_path, je.line, je.text);
    }
    size_t len;
    char *e = NULL;
    char *vocab = eng_read_file(vocab_path, &len, &e);
    int rc = -1;
    if (vocab) {
        rc = eng_tokenizer_load_wordpiece_mem(out, vocab, len, cfg, &e);
        if (rc != 0) eng_errorf(err, "%s: %s", vocab_path, e ? e : "out of memory loading the tokenizer");
    } else {
        eng_errorf(err, "%s", e ? e : "out of memory loading the tokenizer");
    }
    free(e);
    free(vocab);
    json_decref(cfg);
    return rc;
}
