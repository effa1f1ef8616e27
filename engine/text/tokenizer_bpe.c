// tokenizer_bpe.c — GPT-2 byte-level BPE: loading vocab.json + merges.txt
// or a Hugging Face ByteLevel tokenizer.json, the GPT-2 pre-tokenizer, and
// encoding. Exactness target: OpenAI's encoder.py / tiktoken "gpt2".
//
// Pre-tokenization is the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// evaluated by hand over codepoints (scan_pretoken): every codepoint falls in
// exactly one class L, N, S (White_Space) or O (other), and each alternative
// of the regex becomes a run over those classes. Then each pre-token's bytes
// become byte tokens (bytes_to_unicode) merged by rank (eng__tok_bpe_merge).
#include "engine/text/tokenizer_internal.h"

#include <limits.h>                // INT_MAX
#include <stdlib.h>                // malloc, free
#include <string.h>                // memcpy, memchr, strcmp
#include "engine/text/unicode_tables.h" // eng__uni_letter, eng__uni_number, eng__uni_space
#include "engine/core/util.h"           // eng_errorf, eng_read_file

// ---------------------------------------------------------------- byte <-> unicode

// GPT-2's bytes_to_unicode(): printable bytes map to themselves, the other
// 68 (control, space, 0x7F-0xA0, 0xAD) to U+0100.. in byte order.
static uint32_t byte_to_cp(int b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256u + (uint32_t)n;
}

// The inverse: byte for codepoint cp, or -1 if cp is not in the byte alphabet.
static int cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_to_cp((int)cp) == cp ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    for (int b = 0; b < 256; b++)
        if (byte_to_cp(b) == cp) return b;
    return -1;
}

// ---------------------------------------------------------------- character classes

enum { CLS_L, CLS_N, CLS_S, CLS_O };

static int in_ranges(const uint32_t (*r)[2], int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define NRANGES(a) ((int)(sizeof(a) / sizeof(a[0])))

static int cls_of(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CLS_L;
        if (cp >= '0' && cp <= '9') return CLS_N;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CLS_S;
        return CLS_O;
    }
    if (in_ranges(eng__uni_space, NRANGES(eng__uni_space), cp)) return CLS_S;
    if (in_ranges(eng__uni_letter, NRANGES(eng__uni_letter), cp)) return CLS_L;
    if (in_ranges(eng__uni_number, NRANGES(eng__uni_number), cp)) return CLS_N;
    return CLS_O;
}

// ---------------------------------------------------------------- pre-tokenizer

// The text as codepoints: off[i] = byte offset of codepoint i (off[n] = len),
// cls[i] its class. An invalid UTF-8 byte is one codepoint of class O.
typedef struct {
    uint32_t *off;   // [n + 1]
    uint8_t *cls;    // [n]
    int n;
} cp_text;

// 0, or -1 when out of memory (c->off and c->cls then NULL).
static int cp_text_build(cp_text *c, const char *text, size_t len)
{
    c->off = malloc((len + 1) * sizeof(*c->off));
    c->cls = malloc(len ? len : 1);
    if (!c->off || !c->cls) {
        free(c->off);
        free(c->cls);
        c->off = NULL;
        c->cls = NULL;
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int d;
        if ((uint8_t)text[i] < 0x80) {
            cp = (uint8_t)text[i];
            d = 1;
        } else {
            d = eng_utf8_decode(text + i, len - i, &cp);
            if (d == 0) {   // invalid byte: a character of its own, class "other"
                cp = 0xFFFFFFFF;
                d = 1;
            }
        }
        c->off[n] = (uint32_t)i;
        c->cls[n] = (uint8_t)(cp == 0xFFFFFFFF ? CLS_O : cls_of(cp));
        n++;
        i += (size_t)d;
    }
    c->off[n] = (uint32_t)len;
    c->n = n;
    return 0;
}

// End (codepoint index) of the pre-token that starts at codepoint i: the
// first alternative of the regex that matches there, as the regex engine
// would pick it (alternatives in order, greedy runs, \s+(?!\S) backing off
// one character when a non-space follows).
static int scan_pretoken(const cp_text *c, const char *text, int i)
{
    int n = c->n;
    const uint8_t *cls = c->cls;
#define CH(k) (text[c->off[k]])   // first byte of codepoint k (the codepoint itself if ASCII)
    // 's|'t|'re|'ve|'m|'ll|'d (lower case only)
    if (CH(i) == '\'' && i + 1 < n) {
        char a = CH(i + 1);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (i + 2 < n) {
            char b = CH(i + 2);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
        }
    }
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : an optional leading ' ' then a run of one class
    int j = (CH(i) == ' ' && i + 1 < n && cls[i + 1] != CLS_S) ? i + 1 : i;
    if (cls[j] != CLS_S) {
        int k = cls[j];
        int e = j + 1;
        while (e < n && cls[e] == k) e++;
        return e;
    }
#undef CH
    // \s+(?!\S) | \s+ : a whitespace run; if a non-space follows, leave the
    // last space of the run to it (unless the run is a single space).
    int e = i + 1;
    while (e < n && cls[e] == CLS_S) e++;
    if (e < n && e - i >= 2) return e - 1;
    return e;
}

// ---------------------------------------------------------------- encoding

// Encodes one pre-token (bytes p[0..n)) and appends its ids. 0,
// ENG_TOK_E_TOO_LONG or ENG_TOK_E_NOMEM.
static int bpe_pretoken(const eng_tokenizer *t, const char *p, size_t n, eng__tok_bpe_scratch *s,
                        eng__tok_ids *out)
{
    if (n == 1) return eng__tok_ids_push(out, t->byte_id[(uint8_t)p[0]]);
    if (t->ignore_merges) {
        // HF ignore_merges: a pre-token that is a vocabulary entry is that id.
        char stackbuf[256] = {0};
        char *m = n * 2 <= sizeof(stackbuf) ? stackbuf : calloc(n * 2, 1);
        if (!m) return ENG_TOK_E_NOMEM;
        size_t ml = 0;
        for (size_t k = 0; k < n; k++) ml += (size_t)eng_utf8_encode(byte_to_cp((uint8_t)p[k]), m + ml);
        int id = eng__tok_strmap_get(t, m, ml);
        if (m != stackbuf) free(m);
        if (id >= 0) return eng__tok_ids_push(out, id);
    }
    int *sym = eng__tok_bpe_symbols(s, (int)n);
    if (!sym) return ENG_TOK_E_NOMEM;
    for (size_t k = 0; k < n; k++) sym[k] = t->byte_id[(uint8_t)p[k]];
    return eng__tok_bpe_merge(t, s, (int)n, t->merge_mode, out);
}

int eng__tok_gpt2_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                     eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err)
{
    if (len > (size_t)INT_MAX - 2) return eng_errorf(err, "text too long (%zu bytes)", len);
    char *prefixed = NULL;
    if (t->add_prefix_space && len > 0 && text[0] != ' ') {
        // HF ByteLevel(add_prefix_space): a space before every segment not starting with one.
        prefixed = malloc(len + 1);
        if (!prefixed) return ENG_TOK_E_NOMEM;
        prefixed[0] = ' ';
        memcpy(prefixed + 1, text, len);
        text = prefixed;
        len++;
    }
    cp_text c;
    if (cp_text_build(&c, text, len) != 0) {
        free(prefixed);
        return ENG_TOK_E_NOMEM;
    }
    int rc = 0;
    for (int i = 0; i < c.n && rc == 0;) {
        int e = scan_pretoken(&c, text, i);
        rc = bpe_pretoken(t, text + c.off[i], c.off[e] - c.off[i], s, out);
        i = e;
    }
    free(c.off);
    free(c.cls);
    free(prefixed);
    return rc;
}

// ---------------------------------------------------------------- loading

// Fills the byte tables and the decoded pieces for a byte-level vocabulary
// whose strings are already in `pool` at str_off. Fails if a byte token is
// missing, or when out of memory (pool then still the caller's to free).
static int finish_bytelevel(eng_tokenizer *t, eng__tok_buf *pool, size_t *str_off, const char *what,
                            char **err)
{
    size_t *piece_off = malloc((size_t)t->n_vocab * sizeof(size_t));
    char *tmp = NULL;
    size_t tmp_cap = 0;
    if (!piece_off) goto oom;
    for (int id = 0; id < t->n_vocab; id++) {
        // Piece = the bytes behind the byte-mapped characters; a character
        // outside the byte alphabet (added tokens) stands for itself.
        const char *s = pool->data + str_off[id];
        size_t l = t->str_len[id];
        if (l > tmp_cap) {
            free(tmp);
            tmp_cap = l * 2 + 16;
            if (!(tmp = malloc(tmp_cap))) goto oom;
        }
        size_t k = 0;
        for (size_t i = 0; i < l;) {
            uint32_t cp;
            int d = eng_utf8_decode(s + i, l - i, &cp);
            int b = d > 0 ? cp_to_byte(cp) : -1;
            if (b >= 0) {
                tmp[k++] = (char)b;
            } else {
                if (d == 0) d = 1;
                memcpy(tmp + k, s + i, (size_t)d);
                k += (size_t)d;
            }
            i += (size_t)d;
        }
        if (eng__tok_buf_add(pool, tmp, k, &piece_off[id]) != 0) goto oom;
        t->piece_len[id] = (uint32_t)k;
    }
    free(tmp);
    eng__tok_set_pool(t, pool, str_off, piece_off);
    free(piece_off);
    if (eng__tok_strmap_build(t) != 0) return eng__tok_oom(err);
    for (int b = 0; b < 256; b++) {
        char u[4];
        int l = eng_utf8_encode(byte_to_cp(b), u);
        t->byte_id[b] = eng__tok_strmap_get(t, u, (size_t)l);
        if (t->byte_id[b] < 0)
            return eng_errorf(err, "%s: the vocabulary has no token for byte 0x%02X (\"%.*s\")", what,
                              b, l, u);
    }
    int eot = eng__tok_strmap_get(t, "<|endoftext|>", 13);
    if (eot >= 0) {
        t->bos = t->eos = eot;
        if (t->n_special == 0) {
            if (!(t->special = malloc(sizeof(int)))) return eng__tok_oom(err);
            t->special[0] = eot;
            t->n_special = 1;
        }
    }
    return 0;

oom:
    free(piece_off);
    free(tmp);
    return eng__tok_oom(err);
}

int eng_tokenizer_load_gpt2_mem(eng_tokenizer **out, const char *vocab_json, size_t vocab_len,
                                const char *merges, size_t merges_len, char **err)
{
    *out = NULL;
    json_error_t je;
    json_t *vocab = json_loadb(vocab_json, vocab_len, 0, &je);
    if (!vocab) return eng_errorf(err, "vocab.json: line %d: %s", je.line, je.text);
    eng_tokenizer *t = calloc(1, sizeof(*t));
    eng__tok_buf pool = {0};
    size_t *str_off = NULL;
    char *cat = NULL;
    if (!t) goto oom;
    if (eng__tok_hf_read_vocab(t, ENG_TOK_KIND_GPT2, vocab, NULL, &pool, &str_off, "vocab.json", err) != 0)
        goto fail;
    if (finish_bytelevel(t, &pool, str_off, "vocab.json", err) != 0) goto fail;
    t->merge_mode = ENG__TOK_MERGE_RANK_SWEEP;
    if (eng__tok_pairmap_init(&t->merges, (size_t)t->n_vocab) != 0) goto oom;
    if (!(cat = malloc(merges_len + 1))) goto oom;
    // merges.txt: an optional "#version" first line, then "a b" per line.
    long line = 0;
    int rank = 0;
    for (size_t i = 0; i < merges_len;) {
        const char *ln = merges + i;
        const char *nl = memchr(ln, '\n', merges_len - i);
        size_t l = nl ? (size_t)(nl - ln) : merges_len - i;
        i += l + (nl ? 1 : 0);
        line++;
        if (l > 0 && ln[l - 1] == '\r') l--;
        if (l == 0) continue;
        if (line == 1 && l >= 8 && memcmp(ln, "#version", 8) == 0) continue;
        const char *sp = memchr(ln, ' ', l);
        if (!sp || sp == ln || sp == ln + l - 1 || memchr(sp + 1, ' ', (size_t)(ln + l - sp - 1))) {
            eng_errorf(err, "merges.txt line %ld: expected two tokens separated by one space, got \"%.*s\"",
                       line, (int)(l > 60 ? 60 : l), ln);
            goto fail;
        }
        if (eng__tok_add_merge(t, ln, (size_t)(sp - ln), sp + 1, (size_t)(ln + l - sp - 1), rank++, cat,
                      "merges.txt line", line, err) != 0)
            goto fail;
    }
    if (rank == 0) {
        eng_errorf(err, "merges.txt: no merges");
        goto fail;
    }
    free(cat);
    free(str_off);
    json_decref(vocab);
    *out = t;
    return 0;

oom:
    eng__tok_oom(err);
fail:
    free(cat);
    free(str_off);
    free(pool.data);
    json_decref(vocab);
    eng_tokenizer_free(t);
    return -1;
}

int eng_tokenizer_load_gpt2(eng_tokenizer **out, const char *vocab_json_path,
                            const char *merges_path, char **err)
{
    *out = NULL;
    size_t vl, ml;
    char *v = eng_read_file(vocab_json_path, &vl, err);
    if (!v) return -1;
    char *m = eng_read_file(merges_path, &ml, err);
    if (!m) {
        free(v);
        return -1;
    }
    char *e = NULL;
    int rc = eng_tokenizer_load_gpt2_mem(out, v, vl, m, ml, &e);
    if (rc != 0) {
        // no message: even that could not be allocated
        eng_errorf(err, "%s / %s: %s", vocab_json_path, merges_path,
                   e ? e : "out of memory loading the tokenizer");
        free(e);
    }
    free(v);
    free(m);
    return rc;
}

// The ByteLevel pre-tokenizer's options, if `pre` is ByteLevel or a Sequence
// of just that. Returns 1 (found), 0 (not ByteLevel), -1 (ByteLevel with
// unsupported options, *err set).
int eng__tok_hf_bytelevel(const json_t *pre, int *add_prefix_space, char **err)
{
    const char *type = json_string_value(json_object_get(pre, "type"));
    if (!type) return 0;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pre, "pretokenizers");
        if (json_array_size(list) != 1) {
            for (size_t i = 0; i < json_array_size(list); i++) {
                const char *ty = json_string_value(json_object_get(json_array_get(list, i), "type"));
                if (ty && strcmp(ty, "ByteLevel") == 0)
                    return eng_errorf(err, "pre_tokenizer Sequence with ByteLevel and other steps "
                                      "(a custom Split regex) is not supported: only GPT-2's regex is");
            }
            return 0;
        }
        pre = json_array_get(list, 0);
        type = json_string_value(json_object_get(pre, "type"));
        if (!type) return 0;
    }
    if (strcmp(type, "ByteLevel") != 0) return 0;
    const json_t *ur = json_object_get(pre, "use_regex");
    if (ur && json_is_false(ur))
        return eng_errorf(err, "ByteLevel pre_tokenizer with use_regex false is not supported");
    *add_prefix_space = json_is_true(json_object_get(pre, "add_prefix_space"));
    return 1;
}

int eng__tok_hf_bytelevel_load(eng_tokenizer **out, const json_t *root, int add_prefix_space,
                                 char **err)
{
    const json_t *model = json_object_get(root, "model");
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return eng_errorf(err, "byte-level BPE with a normalizer (%s) is not supported",
                          json_string_value(json_object_get(norm, "type")) ? json_string_value(json_object_get(norm, "type")) : "?");
    const char *cs = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    const char *ew = json_string_value(json_object_get(model, "end_of_word_suffix"));
    if ((cs && *cs) || (ew && *ew))
        return eng_errorf(err, "BPE with continuing_subword_prefix / end_of_word_suffix is not supported");
    const json_t *added = json_object_get(root, "added_tokens");
    eng_tokenizer *t = calloc(1, sizeof(*t));
    eng__tok_buf pool = {0};
    size_t *str_off = NULL;
    if (!t) {
        eng__tok_oom(err);
        goto fail;
    }
    if (eng__tok_hf_read_vocab(t, ENG_TOK_KIND_GPT2, json_object_get(model, "vocab"), added, &pool,
                          &str_off, "model.vocab", err) != 0)
        goto fail;
    if (finish_bytelevel(t, &pool, str_off, "model.vocab", err) != 0) goto fail;
    t->merge_mode = ENG__TOK_MERGE_RANK_SWEEP;
    t->add_prefix_space = add_prefix_space;
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    if (eng__tok_hf_read_merges(t, json_object_get(model, "merges"), err) != 0) goto fail;
    if (json_array_size(added) > 0 && eng__tok_hf_read_added(t, added, err) != 0) goto fail;
    free(str_off);
    *out = t;
    return 0;

fail:
    free(str_off);
    free(pool.data);
    eng_tokenizer_free(t);
    return -1;
}
