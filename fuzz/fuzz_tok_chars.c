// fuzz_tok_chars.c — character vocabularies (vocab.json holding a JSON
// array, as `inferd train --task text-generation` writes them).
//
// An input is a vocab.json, then optionally "\n#text\n" and a text. The
// array goes to eng_tokenizer_load_chars_json; the text also builds a
// vocabulary of its own characters (eng_tokenizer_chars_from_text, the
// trainer's path). Both encode and decode the text (fuzz_tok_exercise); the
// text's own vocabulary must round-trip it exactly.
#include <jansson.h>           // json_loadb
#include "engine/text/tokenizer.h"  // eng_tokenizer_load_chars_json
#include "fuzz/fuzz.h"         // fuzz_split, fuzz_tok_exercise

int fuzz_tok_chars_init(void) { return 0; }

void fuzz_tok_chars_one(const uint8_t *data, size_t size) {
    size_t jlen, tlen;
    const uint8_t *text;
    fuzz_split(data, size, "\n#text\n", &jlen, &text, &tlen);
    eng_tokenizer *t = NULL;
    char *err = NULL;
    json_t *root = json_loadb((const char *)data, jlen, JSON_REJECT_DUPLICATES, NULL);
    if (root) {
        if (eng_tokenizer_load_chars_json(&t, root, &err) == 0) {
            FUZZ_CHECK(eng_tok_kind_of(t) == ENG_TOK_KIND_CHAR);
            fuzz_tok_exercise(t, text, tlen, 0);
            eng_tokenizer_free(t);
        } else {
            FUZZ_CHECK(!t && err);
            free(err);
        }
        json_decref(root);
    }
    t = NULL;
    err = NULL;
    if (eng_tokenizer_chars_from_text(&t, (const char *)text, tlen, &err) == 0) {
        fuzz_tok_exercise(t, text, tlen, 1);
        eng_tokenizer_free(t);
    } else {
        FUZZ_CHECK(!t && err);
        free(err);
    }
}

FUZZ_ENTRY(tok_chars)
