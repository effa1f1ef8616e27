// tokenizer.h — exact text <-> token-id conversion for the text-generation
// models (UTF-8 helpers: engine/text/utf8.h).
//
// One opaque type, eng_tokenizer, with a loader per vocabulary format:
//   - GPT-2 byte-level BPE: vocab.json + merges.txt, or a Hugging Face
//     tokenizer.json (model.type "BPE", ByteLevel pre-tokenizer). Gives the
//     ids of OpenAI's reference encoder (tiktoken / encoder.py): the GPT-2
//     pre-tokenization regex is implemented by hand over UTF-8 codepoints,
//     with \p{L} \p{N} \s tables generated from Unicode (unicode_tables.h);
//     \s is Unicode White_Space, as in Python's `regex` and Rust's `regex`.
//   - llama2.c tokenizer.bin (SentencePiece BPE with byte fallback): encodes
//     and decodes exactly like llama2.c run.c's encode()/decode().
//   - a Hugging Face Llama tokenizer.json (model.type "BPE" with
//     byte_fallback, "▁" for space, merges by rank).
//   - a SentencePiece model (.spm / .model) run by Debian's libsentencepiece,
//     optionally with a Marian vocab.json mapping pieces to model ids.
//   - BERT WordPiece: vocab.txt (+ tokenizer_config.json), exactly HF's
//     BertTokenizer (BasicTokenizer: cleaning, CJK, lower-casing, accent
//     stripping, punctuation; then WordpieceTokenizer), Unicode tables
//     generated from Python (unicode_wordpiece.h).
//   - characters (char-level LSTM models): a JSON array of one-character
//     strings, or the sorted set of characters of a training text.
//
// A loaded tokenizer is read-only: every function taking a const pointer may
// be called from any number of threads at once (scratch is per call).
// Each kind is a row of one ops table in tokenizer.c; the files behind it are
// listed in tokenizer_internal.h.
// Input text is bytes, not necessarily valid UTF-8; what each kind does with
// invalid UTF-8 is stated at eng_tok_encode. Errors are values (0 / -1 with a
// malloc'd *err the caller frees); nothing here exits on bad input, nor when
// memory runs out: a loader then fails with -1 ("out of memory loading the
// tokenizer"), encode / decode with ENG_TOK_E_NOMEM. *err may stay NULL when
// even the message cannot be allocated.
//
// Not here: chat templates, normalization beyond what a tokenizer.json
// declares (NFC/NFKC normalizers are refused), and training of vocabularies.
#ifndef ENG_TOKENIZER_H
#define ENG_TOKENIZER_H
#include <jansson.h>   // json_t
#include <stddef.h>    // size_t
#include <stdint.h>    // uint32_t

typedef struct eng_tokenizer eng_tokenizer;

typedef enum {
    ENG_TOK_KIND_GPT2,       // byte-level BPE, merges by rank (vocab.json+merges.txt, HF ByteLevel)
    ENG_TOK_KIND_LLAMA2C,    // llama2.c tokenizer.bin: merges by piece score, byte fallback
    ENG_TOK_KIND_HF_LLAMA,   // HF tokenizer.json: "▁" metaspace BPE by rank, byte fallback
    ENG_TOK_KIND_CHAR,       // one id per Unicode character
    ENG_TOK_KIND_SPM,        // a SentencePiece model run by libsentencepiece (+ Marian vocab.json)
    ENG_TOK_KIND_WORDPIECE,  // BERT vocab.txt: HF BasicTokenizer + greedy longest-match WordPiece
    ENG_TOK_KIND__COUNT
} eng_tok_kind;

// Flags for eng_tok_encode (OR them).
enum {
    ENG_TOK_FLAG_ADD_BOS = 1 << 0,   // prepend the BOS id (ignored when the tokenizer has none)
    ENG_TOK_FLAG_ADD_EOS = 1 << 1,   // append the EOS id (ignored when the tokenizer has none)
    ENG_TOK_FLAG_SPECIAL = 1 << 2,   // match special/added tokens ("<|endoftext|>") in the text;
                                     // without it they are ordinary text, as in gpt-3-encoder
};

// eng_tok_encode's return value when the text needs more than max_ids ids.
#define ENG_TOK_E_TOO_LONG (-2)
// eng_tok_encode's / eng_tok_decode's return value when an allocation failed:
// the request may be retried (a server answers 503), the tokenizer is intact.
#define ENG_TOK_E_NOMEM (-3)

// ---------------------------------------------------------------- loading
// Each loader returns 0 and a new tokenizer in *out, or -1 with *err naming
// the file and what is wrong (truncated, bad JSON, merge of unknown tokens,
// ..., or out of memory); nothing is leaked on failure and *out is then NULL.

// GPT-2: vocab.json ({"token": id, ...}, the byte-mapped strings of
// encoder.json) and merges.txt ("#version" line optional, then "a b" per
// line, rank = line order). Every one of the 256 byte tokens must be in the
// vocabulary, and both halves and the result of every merge. "<|endoftext|>",
// when present, is the special token and both BOS and EOS (as in HF GPT-2).
int eng_tokenizer_load_gpt2(eng_tokenizer **out, const char *vocab_json_path,
                            const char *merges_path, char **err);
// Same from memory (the buffers are not kept).
int eng_tokenizer_load_gpt2_mem(eng_tokenizer **out, const char *vocab_json, size_t vocab_len,
                                const char *merges, size_t merges_len, char **err);

// Hugging Face tokenizer.json with model.type "BPE". Two shapes are accepted:
//   - byte-level (GPT-2 family): pre_tokenizer ByteLevel (alone or as the
//     only member of a Sequence, use_regex true, add_prefix_space honoured),
//     no normalizer -> ENG_TOK_KIND_GPT2;
//   - Llama (SentencePiece converted): "▁" for space via a Prepend+Replace
//     normalizer or a Metaspace pre-tokenizer, unknown characters to <0xNN>
//     byte tokens (byte_fallback) or else to unk_token (consecutive unknowns
//     fused) -> ENG_TOK_KIND_HF_LLAMA. A literal "▁" in the text counts as a
//     space, as in HF.
// merges may be "a b" strings or ["a","b"] pairs; added_tokens become the
// special tokens; bos/eos come from "<s>"/"</s>" or "<|endoftext|>" when present.
// Anything else (other pre-tokenizers, NFKC normalizers, WordPiece...) is refused.
int eng_tokenizer_load_hf(eng_tokenizer **out, const char *tokenizer_json_path, char **err);
int eng_tokenizer_load_hf_json(eng_tokenizer **out, const json_t *root, char **err);

// llama2.c tokenizer.bin: int32 max_token_length, then per token: float32
// score, int32 byte length, the bytes. vocab_size > 0 reads exactly that many
// tokens (the count comes from the model checkpoint; trailing bytes are
// ignored as run.c does); vocab_size <= 0 reads tokens until the end of file.
// Ids 0/1/2 are <unk>/BOS/EOS and 3..258 the byte tokens <0x00>..<0xFF>, as
// run.c assumes; a file without them is refused.
int eng_tokenizer_load_llama2c(eng_tokenizer **out, const char *path, int vocab_size, char **err);
int eng_tokenizer_load_llama2c_mem(eng_tokenizer **out, const void *data, size_t len,
                                   int vocab_size, char **err);

// SentencePiece: a serialized model (.model; Marian's source.spm /
// target.spm) run by libsentencepiece, so the pieces are spm_encode's. With
// vocab_json_path (may be NULL), ids come from that {"piece": id} object
// (Marian: one id space for both sides); a piece it lacks maps to its
// "<unk>". Without it, ids are the model's. EOS is "</s>", no BOS. Decoding
// joins the pieces through the library (control symbols dropped).
int eng_tokenizer_load_spm(eng_tokenizer **out, const char *model_path, const char *vocab_json_path, char **err);

// Characters: a JSON array of strings; id = index. Each entry is exactly one
// UTF-8 character, or one of the specials "<unk>", "<s>"/"<bos>",
// "</s>"/"<eos>", "<pad>". Duplicates are refused. Unknown characters at
// encode time map to <unk> when the vocabulary has it, and are an error
// otherwise. The specials decode to nothing, except <unk> which decodes to
// U+FFFD.
int eng_tokenizer_load_chars(eng_tokenizer **out, const char *json_path, char **err);
int eng_tokenizer_load_chars_json(eng_tokenizer **out, const json_t *array, char **err);
// A character vocabulary of the sorted distinct characters of `text` (no
// specials). Invalid UTF-8 in the text is an error.
int eng_tokenizer_chars_from_text(eng_tokenizer **out, const char *text, size_t len, char **err);
// The sorted distinct codepoints of `text`: *cps (malloc'd) and *n. -1 with
// *err on invalid UTF-8 (naming the byte offset) or when out of memory.
int eng_tok_chars_collect(const char *text, size_t len, uint32_t **cps, int *n, char **err);
// The vocabulary of a CHAR tokenizer as a new JSON array (what
// eng_tokenizer_load_chars_json reads back); NULL for other kinds or when
// out of memory.
json_t *eng_tokenizer_chars_to_json(const eng_tokenizer *t);

// BERT: vocab.txt (one token a line, id = line number; "\n", "\r\n" or "\r"
// ends a line, as Python's readlines(); for a duplicate the last id wins) and
// the settings of tokenizer_config.json (config_path may be NULL; cfg NULL =
// defaults): do_lower_case (default true), strip_accents (default: as
// do_lower_case), tokenize_chinese_chars (default true), unk/cls/sep/pad/
// mask_token (default [UNK] [CLS] [SEP] [PAD] [MASK]). BOS = cls, EOS = sep.
// The unknown token must be in the vocabulary. Invalid UTF-8 in the text
// to encode is dropped (read as U+FFFD, which BERT's cleaning removes); a
// whitespace-separated special token ("[SEP]") is that token, as HF's
// never_split; inside a word only under ENG_TOK_FLAG_SPECIAL. Decoding is
// HF's convert_tokens_to_string: tokens joined by " ", " ##" removed.
int eng_tokenizer_load_wordpiece(eng_tokenizer **out, const char *vocab_path, const char *config_path,
                                 char **err);
int eng_tokenizer_load_wordpiece_mem(eng_tokenizer **out, const char *vocab, size_t len, const json_t *cfg,
                                     char **err);

// A model directory: vocab.txt (BERT, + tokenizer_config.json), else tokenizer.json (HF), else vocab.json + merges.txt
// (GPT-2), else tokenizer.bin (llama2.c, vocab_size as above), else
// vocab.json holding a JSON array (characters).
int eng_tokenizer_load_dir(eng_tokenizer **out, const char *dir, int vocab_size, char **err);

void eng_tokenizer_free(eng_tokenizer *t);   // NULL-safe

// ---------------------------------------------------------------- info

eng_tok_kind eng_tok_kind_of(const eng_tokenizer *t);
const char *eng_tok_kind_name(eng_tok_kind k);   // "gpt2", "llama2c", "hf-llama", "char", "spm", "wordpiece"
int eng_tok_vocab_size(const eng_tokenizer *t);
int eng_tok_bos_id(const eng_tokenizer *t);      // -1 when none
int eng_tok_eos_id(const eng_tokenizer *t);      // -1 when none
// The id whose vocabulary string, as written in the file (byte-mapped for
// GPT-2, "▁" for HF Llama, raw bytes for llama2.c), is piece[0..len); -1 if none.
int eng_tok_lookup(const eng_tokenizer *t, const char *piece, size_t len);

// ---------------------------------------------------------------- encode / decode

// Encodes text[0..len) into *ids (malloc'd, *n_ids of them; free() it).
// max_ids > 0 bounds the output: if more ids would be produced, returns
// ENG_TOK_E_TOO_LONG with *err and *ids NULL (work stops early). max_ids <= 0: no bound.
// Invalid UTF-8: GPT-2 encodes every byte (each invalid byte is a
// punctuation-class character for the pre-tokenizer), llama2.c falls back to
// byte tokens exactly as run.c does (NUL bytes included, as <0x00>); HF
// Llama falls back to byte tokens; CHAR returns -1 with the byte offset.
// For these byte-capable kinds decode(encode(s)) == s for any bytes s.
// llama2.c adds its dummy prefix " " unless the text is empty (run.c).
// Returns 0, -1 (*err), ENG_TOK_E_TOO_LONG (*err) or ENG_TOK_E_NOMEM (*err;
// nothing allocated is left, *ids NULL).
int eng_tok_encode(const eng_tokenizer *t, const char *text, size_t len, int flags,
                   int max_ids, int **ids, int *n_ids, char **err);

// The raw bytes token `id` contributes when it follows token `prev` (-1 at
// the start of the text): for streaming, concatenating the pieces of a
// sequence gives exactly eng_tok_decode of it. A piece may be part of a UTF-8
// character (byte tokens); see eng_utf8_complete_prefix (engine/text/utf8.h). Not NUL-terminated
// in general (a piece can contain a 0 byte); *len gets its length.
// Returns NULL (and *len 0) for an id outside the vocabulary.
//   llama2.c / HF Llama: the leading space of a piece is dropped after BOS
//   (run.c) and at the start of the text (prev < 0); "<0xNN>" -> that byte;
//   BOS and EOS give "". GPT-2: the special token gives its text
//   ("<|endoftext|>"), as tiktoken does.
const char *eng_tok_piece(const eng_tokenizer *t, int prev, int id, size_t *len);

// Decodes ids into *text (malloc'd, NUL-terminated, *len bytes without the
// NUL; len may be NULL). -1 with *err for an id outside the vocabulary,
// ENG_TOK_E_NOMEM with *err when the text cannot be allocated.
int eng_tok_decode(const eng_tokenizer *t, const int *ids, int n, char **text, size_t *len,
                   char **err);

#endif
