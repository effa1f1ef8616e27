// idx.h — reading IDX files (the MNIST / Fashion-MNIST format), gzip'd or not.
// Magic: 0x00 0x00 <type> <ndim>, then ndim big-endian u32 dims, then data.
// Only type 0x08 (unsigned byte) is supported; others are refused.
#ifndef ENG_IDX_H
#define ENG_IDX_H
#include <stddef.h>   // size_t
#include <stdint.h>   // uint8_t

typedef struct {
    int ndim;            // 1 for labels, 3 for images
    int dims[4];         // e.g. {60000, 28, 28}
    size_t n;            // total number of bytes of data
    uint8_t *data;       // [n], owned
} eng_idx;

// Loads path (transparently gunzips). Returns 0 or -1 with *err; checks that
// the data length matches the dims (truncated files are refused).
int eng_idx_load(eng_idx *out, const char *path, char **err);
void eng_idx_free(eng_idx *x);   // NULL-safe

#endif
