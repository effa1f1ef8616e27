// base64.h — RFC 4648 base64 decoding for images in JSON bodies.
#ifndef SRV_BASE64_H
#define SRV_BASE64_H
#include <stddef.h>   // size_t
#include <stdint.h>   // uint8_t

// Decodes `in` (length n; whitespace ignored, padding optional, an optional
// "data:<type>;base64," prefix skipped; '-' '_' accepted as in base64url).
// Returns a malloc'd buffer and its length in *out_len, or NULL if `in` is
// not valid base64.
uint8_t *srv_base64_decode(const char *in, size_t n, size_t *out_len);
// Encodes to a malloc'd NUL-terminated string.
char *srv_base64_encode(const uint8_t *in, size_t n);

#endif
