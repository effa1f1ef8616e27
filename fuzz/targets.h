// targets.h — the entry points of every fuzz harness (fuzz/fuzz_<name>.c),
// as a table the regression suite (tests/unit/test_fuzz_regressions.c)
// walks: it replays fuzz/corpus/<name>/ and fuzz/regressions/<name>/ through
// the same functions libFuzzer calls. Adding a harness = one FUZZ_TARGET line.
// Inputs are read relative to the repository root (run from there).
#ifndef INFERD_FUZZ_TARGETS_H
#define INFERD_FUZZ_TARGETS_H
#include <stddef.h>   // size_t
#include <stdint.h>   // uint8_t

#define FUZZ_TARGETS(X)  \
    X(completions)       \
    X(translations)      \
    X(classify)          \
    X(models)            \
    X(image)             \
    X(safetensors)       \
    X(llama2c)           \
    X(config)            \
    X(tok_gpt2)          \
    X(tok_hf)            \
    X(tok_llama2c)       \
    X(tok_chars)         \
    X(tok_encode)        \
    X(dataset_tar)       \
    X(jobs)

#define FUZZ_DECLARE(name)        \
    int fuzz_##name##_init(void); \
    void fuzz_##name##_one(const uint8_t *data, size_t size);
FUZZ_TARGETS(FUZZ_DECLARE)
#undef FUZZ_DECLARE

#endif
