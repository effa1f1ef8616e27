// util.h — small helpers shared by the engine: error messages as values,
// checked allocation, timing. The engine never exits on client input: every
// fallible function returns 0 on success / -1 on failure and, when `err` is
// not NULL, stores a malloc'd message there that the caller frees.
#ifndef ENG_UTIL_H
#define ENG_UTIL_H
#include <stddef.h>   // size_t
#include <stdint.h>   // int64_t

// Formats a message into *err (if err != NULL) and returns -1, so callers can
// write `return eng_errorf(err, "bad shape %d", n);`.
int eng_errorf(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// malloc/calloc that abort on out-of-memory (a broken invariant, not client input).
void *eng_xmalloc(size_t n);
void *eng_xcalloc(size_t count, size_t size);
// 64-byte aligned allocation for weights and activations; free with free().
void *eng_xaligned(size_t n);
// The same, returning NULL when memory runs out (request paths and loaders).
void *eng_aligned(size_t n);

// Monotonic clock in seconds.
double eng_now(void);

// Reads a whole file into a malloc'd, NUL-terminated buffer. Returns NULL and
// sets *err on failure; *len gets the byte count (without the NUL).
char *eng_read_file(const char *path, size_t *len, char **err);

// Writes `len` bytes to `path` atomically: temp file in the same directory,
// fsync, rename, fsync of the directory. Returns 0 or -1 with *err.
int eng_write_file_atomic(const char *path, const void *data, size_t len, char **err);

#endif
