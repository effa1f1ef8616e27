// fuzz_tok_llama2c.c — llama2.c tokenizer.bin (SentencePiece BPE scores).
//
// An input is a whole tokenizer.bin. eng_tokenizer_load_llama2c_mem reads it
// twice: with vocab_size 0 (tokens until the end of file) and with the count
// a checkpoint might claim (the first byte of the file, plus 259, so counts
// around the minimum of <unk>, BOS, EOS and 256 byte tokens are tried). A
// tokenizer it accepts encodes and decodes the file's own bytes, and
// decode(encode(s)) == s must hold (byte fallback covers every byte).
#include "engine/text/tokenizer.h"  // eng_tokenizer_load_llama2c_mem
#include "fuzz/fuzz.h"         // fuzz_tok_exercise

int fuzz_tok_llama2c_init(void) { return 0; }

void fuzz_tok_llama2c_one(const uint8_t *data, size_t size) {
    int counts[2] = {0, size ? 259 + data[size - 1] % 64 : 259};
    for (int i = 0; i < 2; i++) {
        eng_tokenizer *t = NULL;
        char *err = NULL;
        if (eng_tokenizer_load_llama2c_mem(&t, data, size, counts[i], &err) != 0) {
            FUZZ_CHECK(!t && err);
            free(err);
            continue;
        }
        FUZZ_CHECK(eng_tok_kind_of(t) == ENG_TOK_KIND_LLAMA2C && eng_tok_vocab_size(t) >= 259);
        FUZZ_CHECK(counts[i] == 0 || eng_tok_vocab_size(t) == counts[i]);
        fuzz_tok_exercise(t, data, size < 4096 ? size : 4096, 1);
        eng_tokenizer_free(t);
    }
}

FUZZ_ENTRY(tok_llama2c)
