// fuzz_tok_gpt2.c — the GPT-2 tokenizer files: vocab.json + merges.txt.
//
// An input is vocab.json, the separator line "\n#merges\n", then merges.txt
// (without the separator: all vocab, empty merges). They go to
// eng_tokenizer_load_gpt2_mem, the loader eng_tokenizer_load_dir uses for a
// model directory. A tokenizer it accepts then encodes and decodes the
// merges text (fuzz_tok_exercise: ids inside the vocabulary, and
// decode(encode(s)) == s, which byte-level BPE promises for any bytes).
#include "engine/text/tokenizer.h"  // eng_tokenizer_load_gpt2_mem
#include "fuzz/fuzz.h"         // fuzz_split, fuzz_tok_exercise

int fuzz_tok_gpt2_init(void) { return 0; }

void fuzz_tok_gpt2_one(const uint8_t *data, size_t size) {
    size_t vlen, mlen;
    const uint8_t *merges;
    fuzz_split(data, size, "\n#merges\n", &vlen, &merges, &mlen);
    eng_tokenizer *t = NULL;
    char *err = NULL;
    if (eng_tokenizer_load_gpt2_mem(&t, (const char *)data, vlen, (const char *)merges, mlen, &err) != 0) {
        FUZZ_CHECK(!t && err);
        free(err);
        return;
    }
    FUZZ_CHECK(eng_tok_kind_of(t) == ENG_TOK_KIND_GPT2 && eng_tok_vocab_size(t) >= 256);
    fuzz_tok_exercise(t, merges, mlen, 1);
    eng_tokenizer_free(t);
}

FUZZ_ENTRY(tok_gpt2)
