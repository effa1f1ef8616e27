// utf8.h — UTF-8 helpers shared by the tokenizers and the server's text
// responses (streams that must not split a character, JSON of model output):
// strict decoding (no overlongs, surrogates, > U+10FFFF), encoding,
// validation and the complete-prefix rule of streaming.
#ifndef ENG_UTF8_H
#define ENG_UTF8_H
#include <stddef.h>    // size_t
#include <stdint.h>    // uint32_t

// How many leading bytes of buf[0..len) the streamer may send now: all of
// them except a trailing, still-incomplete but so-far-valid multi-byte
// sequence (at most 3 bytes held back). Invalid bytes count as complete, so
// a stream never stalls on garbage; at the end of a stream send the rest.
size_t eng_utf8_complete_prefix(const char *buf, size_t len);
// 1 if buf[0..len) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF), else 0.
int eng_utf8_valid(const char *buf, size_t len);
// Decodes one well-formed character at s[0..len): returns its byte length
// (1..4) and *cp, or 0 when s does not start with one (len 0, invalid or
// truncated sequence).
int eng_utf8_decode(const char *s, size_t len, uint32_t *cp);
// Writes cp (<= U+10FFFF, not a surrogate) as UTF-8 into out[4]; returns the
// length, or 0 for an invalid codepoint.
int eng_utf8_encode(uint32_t cp, char *out);

#endif
