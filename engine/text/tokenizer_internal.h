// tokenizer_internal.h — what the files of the tokenizer module share: the
// eng_tokenizer struct, the building blocks, and each kind's entry points.
// Not for other modules.
//
//   tokenizer.c        the public API (tokenizer.h) and its per-kind ops table,
//                      loading a model directory or a tokenizer.json
//   tokenizer_maps.c   hash maps, string pool, bounded id vector
//   tokenizer_merge.c  the BPE merge loop (by rank or by score)
//   tokenizer_hf.c     Hugging Face tokenizer.json readers (vocab, merges, added)
//   tokenizer_bpe.c    GPT-2 byte-level BPE (vocab.json+merges.txt, HF ByteLevel)
//   tokenizer_spm.c    llama2.c tokenizer.bin and HF Llama (metaspace + byte fallback)
//   tokenizer_char.c   one id per codepoint
//   tokenizer_sentencepiece.c  SentencePiece models through libsentencepiece
//                      (sentencepiece_shim.h), Marian vocab.json ids
//   tokenizer_wordpiece.c  BERT: vocab.txt, HF BasicTokenizer + WordpieceTokenizer
//   utf8.c             UTF-8 (its own module: the server uses it too)
#ifndef ENG_TOKENIZER_INTERNAL_H
#define ENG_TOKENIZER_INTERNAL_H
#include <stddef.h>             // size_t
#include <stdint.h>             // uint32_t, uint64_t
#include "engine/text/tokenizer.h"   // eng_tokenizer, eng_tok_kind
#include "engine/text/utf8.h"        // eng_utf8_decode, eng_utf8_encode

// ---------------------------------------------------------------- maps

// Vocabulary string -> id. Open addressing over ids; the keys are the
// tokenizer's own strings (t->str[id]), so the table stores only ids.
typedef struct {
    int32_t *slot;    // [cap] token id, or -1 when empty
    size_t cap;       // power of two, >= 2 * entries
} eng__tok_strmap;

// uint64 key -> (a, b). Merges: key (left id << 32 | right id) -> (rank,
// merged id). Characters: key codepoint -> (id, unused).
typedef struct {
    uint64_t *key;    // [cap], UINT64_MAX when empty
    int32_t *a;       // [cap]
    int32_t *b;       // [cap]
    size_t cap;       // power of two, >= 2 * entries
    size_t n;         // entries
} eng__tok_pairmap;

// ---------------------------------------------------------------- the tokenizer

typedef enum {
    ENG__TOK_MERGE_RANK_SWEEP,    // lowest rank first; all its occurrences left to right (OpenAI bpe())
    ENG__TOK_MERGE_RANK_SINGLE,   // lowest (rank, position) one at a time (HF tokenizers Word::merge_all)
    ENG__TOK_MERGE_SCORE,         // highest score of the merged piece, leftmost on ties (llama2.c)
} eng__tok_merge_mode;

struct eng_tokenizer {
    eng_tok_kind kind;
    int n_vocab;              // number of ids
    char *pool;               // every string below lives in this one allocation
    const char **str;         // [n_vocab] vocabulary string as in the file (for lookup)
    uint32_t *str_len;        // [n_vocab] its length in bytes
    const char **piece;       // [n_vocab] raw bytes the token decodes to
    uint32_t *piece_len;      // [n_vocab] their length
    eng__tok_strmap str_map;      // str -> id (the lowest id wins for duplicates)
    int bos, eos, unk;        // ids, -1 when absent
    int n_special;            // tokens matched in text under ENG_TOK_FLAG_SPECIAL
    int *special;             // [n_special] their ids (text: piece[id] for GPT2, else str[id])
    // BPE by rank (GPT2, HF_LLAMA)
    eng__tok_pairmap merges;      // (left, right) -> (rank, merged id)
    eng__tok_merge_mode merge_mode;
    int byte_id[256];         // GPT2: token of each byte; HF_LLAMA: <0xNN> token (-1: none)
    int add_prefix_space;     // GPT2 from HF ByteLevel: prepend " " unless text starts with it
    int ignore_merges;        // HF BPE: a pre-token that is itself in the vocabulary is one id
    // HF_LLAMA
    int meta_prepend;         // "▁" before a segment: 0 never, 1 always (Prepend normalizer),
                              // 2 unless already there (Metaspace "always"), 3 same, first segment only
    int meta_split;           // 1: split the text into words before each "▁" (Metaspace split)
    // LLAMA2C
    float *score;             // [n_vocab] piece scores (merge priority: higher first)
    size_t max_str_len;       // longest vocabulary string (pair-concatenation buffer bound)
    // CHAR
    eng__tok_pairmap char_map;    // codepoint -> id
    // SPM
    struct eng_spm *spm;      // the library's processor (sentencepiece_shim.h), or NULL
    int spm_vocab;            // 1: ids from a vocab.json (pieces mapped by string), 0: the model's ids
    // WORDPIECE (HF BasicTokenizer settings)
    int wp_lower;             // do_lower_case
    int wp_strip;             // strip accents (NFD, drop Mn): strip_accents, or do_lower_case when null
    int wp_chinese;           // tokenize_chinese_chars: CJK ideographs are words of their own
};

// ---------------------------------------------------------------- building blocks (tokenizer_maps.c)
// Out of memory is an error value everywhere in this module, never an abort
// (encoding runs per request on the server's threads, loading on
// POST /v1/models): a function that allocates says how it reports failure,
// and a structure whose growth failed is left as it was before the call.

// The loaders' out-of-memory error: -1 with *err "out of memory loading the tokenizer".
int eng__tok_oom(char **err);

uint64_t eng__tok_hash_bytes(const char *s, size_t n);
// Builds t->str_map over t->str[0..n_vocab). 0, or -1 when out of memory.
int eng__tok_strmap_build(eng_tokenizer *t);
int eng__tok_strmap_get(const eng_tokenizer *t, const char *s, size_t n);   // id or -1
// Makes the highest id win for duplicate strings (a Python dict built line by
// line: BERT's vocab.txt).
void eng__tok_strmap_prefer_last(eng_tokenizer *t);
// 0, or -1 when out of memory (m is then empty: key/a/b NULL).
int eng__tok_pairmap_init(eng__tok_pairmap *m, size_t expected);
void eng__tok_pairmap_free(eng__tok_pairmap *m);
// Inserts, or replaces the value of a present key; returns 1 if inserted, 0
// if replaced, -1 when growing the map ran out of memory (m unchanged).
int eng__tok_pairmap_put(eng__tok_pairmap *m, uint64_t key, int32_t a, int32_t b);
// 1 and *a, *b when found, else 0.
int eng__tok_pairmap_get(const eng__tok_pairmap *m, uint64_t key, int32_t *a, int32_t *b);

// A growable byte buffer (strings are appended, referenced by offset, and
// turned into pointers once the pool stops moving).
typedef struct {
    char *data;
    size_t len, cap;
} eng__tok_buf;
// Appends p[0..n) and a NUL; *off gets the offset. 0, or -1 when out of
// memory (b unchanged).
int eng__tok_buf_add(eng__tok_buf *b, const void *p, size_t n, size_t *off);
// Allocates the per-id arrays of t (n ids) and sets bos/eos/unk = -1. 0, or
// -1 when out of memory (what was allocated is in t for eng_tokenizer_free).
int eng__tok_alloc(eng_tokenizer *t, eng_tok_kind kind, int n);
// Moves the pool into t and turns the offsets into t->str / t->piece pointers.
void eng__tok_set_pool(eng_tokenizer *t, eng__tok_buf *pool, const size_t *str_off,
                       const size_t *piece_off);

// Output ids with a bound.
typedef struct {
    int *v;
    int n, cap;
    int max;      // > 0: pushing more than max ids fails
} eng__tok_ids;
// 0, ENG_TOK_E_TOO_LONG when the bound is exceeded, ENG_TOK_E_NOMEM when
// growing ran out of memory (o unchanged).
int eng__tok_ids_push(eng__tok_ids *o, int id);

// Scratch for the merge loop, reused across the pre-tokens of one call.
typedef struct {
    int *id, *prev, *next;        // [cap] symbol list
    int cap;
    struct eng__tok_merge_cand *heap; // [heap_cap]
    int heap_n, heap_cap;
    struct eng__tok_merge_cand *batch;
    int batch_cap;
    char *cat;                    // [cat_cap] pair concatenation (SCORE mode)
    size_t cat_cap;
} eng__tok_bpe_scratch;
// ---------------------------------------------------------------- the merge loop (tokenizer_merge.c)
void eng__tok_bpe_scratch_free(eng__tok_bpe_scratch *s);
// Makes room for n symbols; returns s->id to fill, or NULL when out of
// memory (s unchanged).
int *eng__tok_bpe_symbols(eng__tok_bpe_scratch *s, int n);
// Merges the n symbols in s->id per `mode` and appends the result to out.
// Returns 0, ENG_TOK_E_TOO_LONG when out's bound is exceeded, or
// ENG_TOK_E_NOMEM (the scratch is then only fit for eng__tok_bpe_scratch_free
// or another eng__tok_bpe_merge, which starts afresh).
int eng__tok_bpe_merge(const eng_tokenizer *t, eng__tok_bpe_scratch *s, int n, eng__tok_merge_mode mode,
                   eng__tok_ids *out);

// ---------------------------------------------------------------- the kinds
// Per-kind segment encoders (the `encode` of tokenizer.c's ops table):
// encode text[0..len) (no specials inside) and append to out. seg is the
// segment index (0 = start of the text). Return 0, -1 with *err, or
// ENG_TOK_E_TOO_LONG / ENG_TOK_E_NOMEM (without *err; the caller words them).
int eng__tok_gpt2_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                     eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
int eng__tok_llama2c_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                        eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
int eng__tok_char_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                         eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
int eng__tok_spm_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                        eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
// SPM's decode: the pieces of ids (control symbols left out) joined by the library.
int eng__tok_spm_decode(const eng_tokenizer *t, const int *ids, int n, char **text, size_t *len, char **err);
int eng__tok_wordpiece_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                               eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
int eng__tok_hf_llama_encode(const eng_tokenizer *t, const char *text, size_t len, int seg,
                         eng__tok_bpe_scratch *s, eng__tok_ids *out, char **err);
// HF Llama half of eng_tokenizer_load_hf_json (model already checked to be BPE).
int eng__tok_hf_llama_load(eng_tokenizer **out, const json_t *root, char **err);
// The ByteLevel pre-tokenizer's options, if `pre` is ByteLevel or a Sequence
// of just that: 1 (found), 0 (not ByteLevel), -1 (unsupported options, *err).
int eng__tok_hf_bytelevel(const json_t *pre, int *add_prefix_space, char **err);
// Byte-level half of eng_tokenizer_load_hf_json (tokenizer_bpe.c).
int eng__tok_hf_bytelevel_load(eng_tokenizer **out, const json_t *root, int add_prefix_space, char **err);

// ---------------------------------------------------------------- Hugging Face readers (tokenizer_hf.c)
// Adds merge (a, b) with `rank`; the three strings must be tokens. `cat` has
// room for la + lb bytes; `what` and `line` word the error (out of memory too).
int eng__tok_add_merge(eng_tokenizer *t, const char *a, size_t la, const char *b, size_t lb, int rank,
                       char *cat, const char *what, long line, char **err);
// Shared by the HF loaders and vocab.json: reads a {"token": id} object (plus
// HF added_tokens, may be NULL) into a fresh t (eng__tok_alloc'd here), the
// strings into pool at *str_off (malloc'd, [n_vocab]). Ids must be 0..n-1.
int eng__tok_hf_read_vocab(eng_tokenizer *t, eng_tok_kind kind, const json_t *vocab,
                       const json_t *added, eng__tok_buf *pool, size_t **str_off, const char *what,
                       char **err);
// Reads model.merges (strings "a b" or pairs) into t->merges (rank = index).
int eng__tok_hf_read_merges(eng_tokenizer *t, const json_t *merges, char **err);
// Marks the HF added_tokens as specials (t->special). 0, or -1 with *err
// when out of memory.
int eng__tok_hf_read_added(eng_tokenizer *t, const json_t *added, char **err);

#endif
