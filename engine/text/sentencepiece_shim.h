// sentencepiece_shim.h — a C view of Debian's libsentencepiece (the
// reference SentencePiece implementation, C++): load a .model, split text
// into pieces, join pieces back into text. sentencepiece_shim.cc is the only
// C++ in the engine; no exception crosses into C (every entry point catches
// and returns an error value). A loaded processor is read-only and may be
// used from any number of threads at once (the library's Encode/Decode are
// const).
#ifndef ENG_SENTENCEPIECE_SHIM_H
#define ENG_SENTENCEPIECE_SHIM_H
#include <stddef.h>   // size_t

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_spm eng_spm;

// Return values besides 0.
enum { ENG_SPM_E_FAIL = -1, ENG_SPM_E_NOMEM = -3 };

// Loads a serialized model (a .model / .spm file's bytes; not kept). NULL
// with *err (malloc'd, naming nothing: the caller adds the file) on failure.
eng_spm *eng_spm_load(const void *data, size_t len, char **err);
void eng_spm_free(eng_spm *p);   // NULL-safe

int eng_spm_piece_count(const eng_spm *p);
// Piece `id` (0 <= id < count) as bytes, not NUL-terminated in general.
const char *eng_spm_id_to_piece(const eng_spm *p, int id, size_t *len);
int eng_spm_unk_id(const eng_spm *p);
// 1 for the control pieces (<s>, </s>, ...) that decode to nothing.
int eng_spm_is_control(const eng_spm *p, int id);

// Splits text[0..len) into pieces (the model's normalizer applied, best
// segmentation: what spm_encode prints) and calls piece(ctx, bytes, n, id)
// for each in order; id is the model's id (its unk id for unknown
// characters, whose piece is the character itself). A non-zero return of the
// callback stops the encoding and is returned. Else 0, ENG_SPM_E_FAIL (*err),
// or ENG_SPM_E_NOMEM.
int eng_spm_encode(const eng_spm *p, const char *text, size_t len,
                   int (*piece)(void *ctx, const char *s, size_t n, int id), void *ctx, char **err);

// Joins n pieces (bytes s[i][0..n[i])) into text as the library decodes them
// (spm_decode --input_format=piece): *out malloc'd, NUL-terminated, *out_len
// bytes. 0, ENG_SPM_E_FAIL (*err) or ENG_SPM_E_NOMEM.
int eng_spm_decode_pieces(const eng_spm *p, const char *const *s, const size_t *n, int count,
                          char **out, size_t *out_len, char **err);

#ifdef __cplusplus
}
#endif
#endif
