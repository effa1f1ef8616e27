// fuzz_tok_encode.c — the encoders of real vocabularies on arbitrary text
// (what a completions "prompt" reaches).
//
// Loaded once: GPT-2 byte-level BPE (the full GPT-2 vocabulary when
// scripts/fetch-test-vocab.sh has put it in tests/ref/gpt2-vocab, else the
// tiny hand-made one in tests/ref/tiny_bpe), fortune-gpt's characters, and
// the llama2.c tokenizer seed (fuzz/corpus/tok_llama2c/tiny.bin), and the
// SentencePiece model + Marian vocab.json of tests/ref/marian_tiny (through
// libsentencepiece; no round trip: its normalizer folds text). Each input
// is a text, encoded and decoded by each (fuzz_tok_exercise); GPT-2 and
// llama2.c must give the text back exactly.
#include <unistd.h>            // access
#include "engine/text/tokenizer.h"  // eng_tokenizer_load_*
#include "fuzz/fuzz.h"         // fuzz_tok_exercise

static eng_tokenizer *gpt2, *chars, *llama2c, *spm;

int fuzz_tok_encode_init(void) {
    char *err = NULL;
    int big = access("tests/ref/gpt2-vocab/merges.txt", R_OK) == 0;
    const char *dir = big ? "tests/ref/gpt2-vocab" : "tests/ref/tiny_bpe";
    char v[128], m[128];
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    if (eng_tokenizer_load_gpt2(&gpt2, v, m, &err) != 0 ||
        eng_tokenizer_load_chars(&chars, "models/fortune-gpt/vocab.json", &err) != 0 ||
        eng_tokenizer_load_llama2c(&llama2c, "fuzz/corpus/tok_llama2c/tiny.bin", 0, &err) != 0 ||
        eng_tokenizer_load_spm(&spm, "tests/ref/marian_tiny/source.spm", "tests/ref/marian_tiny/vocab.json", &err) != 0) {
        fprintf(stderr, "fuzz_tok_encode: %s\n", err);
        free(err);
        return -1;
    }
    return 0;
}

void fuzz_tok_encode_one(const uint8_t *data, size_t size) {
    fuzz_tok_exercise(gpt2, data, size, 1);
    fuzz_tok_exercise(chars, data, size, 0);
    fuzz_tok_exercise(llama2c, data, size, 1);
    fuzz_tok_exercise(spm, data, size, 0);
}

FUZZ_ENTRY(tok_encode)
