// fuzz_tok_hf.c — Hugging Face tokenizer.json (GPT-2 byte-level and Llama
// SentencePiece-converted BPE).
//
// An input is a tokenizer.json, then optionally "\n#text\n" and a text. The
// JSON is parsed with jansson (as eng_tokenizer_load_hf does with the file)
// and given to eng_tokenizer_load_hf_json. A tokenizer it accepts encodes and
// decodes the text (fuzz_tok_exercise: ids inside the vocabulary; no
// round-trip check, since normalizers and unk_token legitimately change text).
#include <jansson.h>           // json_loadb
#include "engine/text/tokenizer.h"  // eng_tokenizer_load_hf_json
#include "fuzz/fuzz.h"         // fuzz_split, fuzz_tok_exercise

int fuzz_tok_hf_init(void) { return 0; }

void fuzz_tok_hf_one(const uint8_t *data, size_t size) {
    size_t jlen, tlen;
    const uint8_t *text;
    fuzz_split(data, size, "\n#text\n", &jlen, &text, &tlen);
    json_t *root = json_loadb((const char *)data, jlen, JSON_REJECT_DUPLICATES, NULL);
    if (!root) return;
    eng_tokenizer *t = NULL;
    char *err = NULL;
    if (eng_tokenizer_load_hf_json(&t, root, &err) == 0) {
        eng_tok_kind k = eng_tok_kind_of(t);
        FUZZ_CHECK(k == ENG_TOK_KIND_GPT2 || k == ENG_TOK_KIND_HF_LLAMA);
        fuzz_tok_exercise(t, text, tlen, 0);
        eng_tokenizer_free(t);
    } else {
        FUZZ_CHECK(!t && err);
        free(err);
    }
    json_decref(root);
}

FUZZ_ENTRY(tok_hf)
