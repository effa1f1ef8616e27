// fuzz.h — helpers shared by the libFuzzer harnesses (fuzz/fuzz_*.c) and by
// the regression suite that replays their crash inputs (tests/unit/
// test_fuzz_regressions.c). Header-only: each harness is one translation
// unit plus the engine and server objects.
//
// FUZZ_CHECK is the harnesses' own assertion: an invariant the parser
// promised (e.g. "a prompt it accepted has ids inside the vocabulary") that
// does not hold is a bug worth a crash report, so it aborts loudly.
#ifndef INFERD_FUZZ_H
#define INFERD_FUZZ_H
#include <stdatomic.h>         // atomic_init
#include <stdint.h>            // uint8_t
#include <stdio.h>             // fprintf
#include <stdlib.h>            // abort, calloc
#include <string.h>            // memcpy, memmem
#include <sys/mman.h>          // memfd_create
#include <unistd.h>            // write, ftruncate
#include "fuzz/targets.h"      // fuzz_<name>_init / fuzz_<name>_one
#include "server/request.h"    // srv_request

// Each harness defines fuzz_<name>_init (once per process; 0 = ready) and
// fuzz_<name>_one (one input; never fails, crashes are the finding), then
// FUZZ_ENTRY(name) binds them to libFuzzer. Built with -DFUZZ_NO_MAIN the
// same file becomes a plain object the regression suite calls directly.
#ifdef FUZZ_NO_MAIN
#define FUZZ_ENTRY(name)
#else
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#define FUZZ_ENTRY(name)                                                                        \
    int LLVMFuzzerInitialize(int *argc, char ***argv) {                                        \
        (void)argc; (void)argv;                                                                \
        if (fuzz_##name##_init() != 0) { fprintf(stderr, "fuzz_" #name ": init failed\n"); abort(); } \
        return 0;                                                                              \
    }                                                                                          \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                             \
        fuzz_##name##_one(data, size);                                                         \
        return 0;                                                                              \
    }
#endif

// Creates (once per process) the temporary model repository of fuzz_common.c
// with fashion-cnn, fortune-gpt and marian-tiny loaded in the registry; returns its path,
// or NULL when the checkout's models are missing.
const char *fuzz_registry(void);

// Runs text through t's encoder and decoder with the checks of fuzz_common.c.
struct eng_tokenizer;
void fuzz_tok_exercise(const struct eng_tokenizer *t, const uint8_t *text, size_t len, int roundtrip);

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

// A request as the HTTP layer builds it, without a connection: only the body
// (NUL-terminated copy, as http.c keeps it). Free with srv_request_unref.
static inline srv_request *fuzz_request(const uint8_t *data, size_t size) {
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    atomic_init(&r->refs, 1);
    snprintf(r->id, sizeof r->id, "fuzz");
    r->method = "POST";
    r->client_fd = -1;
    r->body = malloc(size + 1);
    if (!r->body) { free(r); return NULL; }
    if (size) memcpy(r->body, data, size);
    r->body[size] = '\0';
    r->body_len = r->body_cap = size;
    return r;
}

// Splits data at the first occurrence of sep: [0, *len1) and the rest after
// sep. Without sep, everything is the first part and the second is empty.
static inline void fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t *len1,
                              const uint8_t **rest, size_t *rest_len) {
    const uint8_t *p = memmem(data, size, sep, strlen(sep));
    if (!p) { *len1 = size; *rest = data + size; *rest_len = 0; return; }
    *len1 = (size_t)(p - data);
    *rest = p + strlen(sep);
    *rest_len = size - *len1 - strlen(sep);
}

// An in-memory file holding data[0, size) (then grown to `total` bytes of
// zeros when total > size, without using memory: a sparse tail). Its path is
// written to path ("/proc/self/fd/N"), for loaders that only take paths.
// Returns the fd (close it after use) or -1.
static inline int fuzz_memfile(const uint8_t *data, size_t size, size_t total, char *path, size_t path_len) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) { close(fd); return -1; }
        off += (size_t)w;
    }
    if (total > size && ftruncate(fd, (off_t)total) != 0) { close(fd); return -1; }
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
