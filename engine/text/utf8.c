// utf8.c — UTF-8 decoding, encoding and validation (see utf8.h).
#include "engine/text/utf8.h"

// Length of the sequence lead byte c starts (2..4), with the allowed range of
// the second byte (excludes overlongs, surrogates, > U+10FFFF); 0 if c is
// not a multi-byte lead.
static int utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

int eng_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    if (len == 0) return 0;
    const uint8_t *u = (const uint8_t *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    uint8_t lo, hi;
    int need = utf8_lead(u[0], &lo, &hi);
    if (need == 0 || len < (size_t)need) return 0;
    if (u[1] < lo || u[1] > hi) return 0;
    for (int k = 2; k < need; k++)
        if ((u[k] & 0xC0) != 0x80) return 0;
    uint32_t c = u[0] & (0x7F >> need);
    for (int k = 1; k < need; k++) c = (c << 6) | (u[k] & 0x3F);
    *cp = c;
    return need;
}

int eng_utf8_encode(uint32_t cp, char *out)
{
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return 0;
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

int eng_utf8_valid(const char *buf, size_t len)
{
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        if ((uint8_t)buf[i] < 0x80) { i++; continue; }
        int d = eng_utf8_decode(buf + i, len - i, &cp);
        if (d == 0) return 0;
        i += (size_t)d;
    }
    return 1;
}

size_t eng_utf8_complete_prefix(const char *buf, size_t len)
{
    // Only the last 3 bytes can hold an unfinished character: find a lead
    // byte there whose sequence is longer than what follows it, with every
    // following byte valid so far. Anything else (complete or invalid) goes.
    const uint8_t *u = (const uint8_t *)buf;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        size_t p = len - k;
        uint8_t lo, hi;
        int need = utf8_lead(u[p], &lo, &hi);
        if (need == 0) {
            if ((u[p] & 0xC0) == 0x80) continue;   // a continuation: look further back
            return len;                            // ASCII or invalid byte: all complete
        }
        if ((size_t)need <= k) return len;         // its sequence is complete (or invalid)
        if (k >= 2 && (u[p + 1] < lo || u[p + 1] > hi)) return len;
        for (size_t j = p + 2; j < len; j++)
            if ((u[j] & 0xC0) != 0x80) return len;
        return p;
    }
    return len;
}

