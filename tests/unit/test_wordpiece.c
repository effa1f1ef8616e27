// test_wordpiece.c — the BERT WordPiece tokenizer (engine/text/tokenizer_wordpiece.c)
// against tests/ref/wordpiece_ref.json (tests/ref/make_wordpiece_ref.py: HF
// BertTokenizer's algorithm on Python's str and unicodedata): the ids of 192
// texts in many scripts, with control characters and invalid UTF-8, under
// four settings; decoding; vocab.txt line endings and duplicates; loader
// errors; every allocation failing in turn. Run from the repository root.
#include "engine/text/tokenizer.h"

#include <check.h>              // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_load_json
#include <stdio.h>              // fprintf
#include <stdlib.h>             // malloc, free
#include <string.h>             // strlen, memcmp

#define REF "tests/ref/wordpiece_ref.json"

static size_t unhex(const char *h, char *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    return n;
}

static eng_tokenizer *load_case(const json_t *ref, const json_t *cfg) {
    const char *vocab = json_string_value(json_object_get(ref, "vocab_txt"));
    eng_tokenizer *t = NULL;
    char *err = NULL;
    int rc = eng_tokenizer_load_wordpiece_mem(&t, vocab, strlen(vocab), cfg, &err);
    ck_assert_msg(rc == 0, "load: %s", err ? err : "?");
    return t;
}

START_TEST(test_reference_ids) {
    json_t *ref = tu_load_json(REF);
    const json_t *texts = json_object_get(ref, "texts_hex");
    const json_t *cases = json_object_get(ref, "cases");
    ck_assert_int_eq(json_array_size(cases), 4);
    int bad = 0, total = 0;
    size_t ci;
    const json_t *c;
    json_array_foreach(cases, ci, c) {
        eng_tokenizer *t = load_case(ref, json_object_get(c, "config"));
        ck_assert_int_eq(eng_tok_kind_of(t), ENG_TOK_KIND_WORDPIECE);
        const json_t *want_all = json_object_get(c, "ids");
        for (size_t i = 0; i < json_array_size(texts); i++) {
            const char *hex = json_string_value(json_array_get(texts, i));
            char *buf = malloc(strlen(hex) / 2 + 1);
            size_t len = unhex(hex, buf);
            int *ids, n;
            char *err = NULL;
            int rc = eng_tok_encode(t, buf, len, ENG_TOK_FLAG_ADD_BOS | ENG_TOK_FLAG_ADD_EOS, 0, &ids, &n, &err);
            ck_assert_msg(rc == 0, "%s text %zu: %s", json_string_value(json_object_get(c, "name")), i, err);
            const json_t *want = json_array_get(want_all, i);
            int ok = (size_t)n == json_array_size(want);
            for (int k = 0; ok && k < n; k++) ok = ids[k] == json_integer_value(json_array_get(want, (size_t)k));
            if (!ok && bad++ < 5) {
                fprintf(stderr, "%s text %zu (%.*s): got", json_string_value(json_object_get(c, "name")), i,
                        (int)(len > 60 ? 60 : len), buf);
                for (int k = 0; k < n; k++) fprintf(stderr, " %d", ids[k]);
                fprintf(stderr, "\n   want");
                for (size_t k = 0; k < json_array_size(want); k++)
                    fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, k)));
                fprintf(stderr, "\n");
            }
            total++;
            free(ids);
            free(buf);
        }
        eng_tokenizer_free(t);
    }
    ck_assert_msg(bad == 0, "%d of %d encodings differ from the reference", bad, total);
    json_decref(ref);
}
END_TEST

// Decoding is HF's convert_tokens_to_string; the pieces concatenate to it.
START_TEST(test_decode) {
    json_t *ref = tu_load_json(REF);
    eng_tokenizer *t = load_case(ref, NULL);
    const json_t *want = json_object_get(ref, "decode_uncased");
    const json_t *ids_all = json_object_get(json_array_get(json_object_get(ref, "cases"), 0), "ids");
    for (size_t i = 0; i < json_array_size(ids_all); i++) {
        const json_t *a = json_array_get(ids_all, i);
        int n = (int)json_array_size(a);
        int *ids = malloc((size_t)n * sizeof(int));
        for (int k = 0; k < n; k++) ids[k] = (int)json_integer_value(json_array_get(a, (size_t)k));
        char *text, *err = NULL;
        size_t len;
        ck_assert_int_eq(eng_tok_decode(t, ids, n, &text, &len, &err), 0);
        ck_assert_str_eq(text, json_string_value(json_array_get(want, i)));
        size_t off = 0;
        for (int k = 0; k < n; k++) {
            size_t l;
            const char *p = eng_tok_piece(t, k ? ids[k - 1] : -1, ids[k], &l);
            ck_assert(off + l <= len && memcmp(text + off, p, l) == 0);
            off += l;
        }
        ck_assert_uint_eq(off, len);
        free(text);
        free(ids);
    }
    // a continuation first keeps its "##", as " ".join does
    int first = eng_tok_lookup(t, "##s", 3), sid = eng_tok_lookup(t, "the", 3);
    ck_assert(first >= 0 && sid >= 0);
    char *text, *err = NULL;
    ck_assert_int_eq(eng_tok_decode(t, (int[]){first, sid, first}, 3, &text, NULL, &err), 0);
    ck_assert_str_eq(text, "##s thes");
    free(text);
    eng_tokenizer_free(t);
    json_decref(ref);
}
END_TEST

static eng_tokenizer *load_str(const char *vocab, const char *cfg_json, char **err) {
    json_t *cfg = cfg_json ? json_loads(cfg_json, 0, NULL) : NULL;
    eng_tokenizer *t = NULL;
    *err = NULL;
    eng_tokenizer_load_wordpiece_mem(&t, vocab, strlen(vocab), cfg, err);
    json_decref(cfg);
    return t;
}

static void expect_ids(eng_tokenizer *t, const char *text, int flags, const int *want, int n_want) {
    int *ids, n;
    char *err = NULL;
    ck_assert_int_eq(eng_tok_encode(t, text, strlen(text), flags, 0, &ids, &n, &err), 0);
    ck_assert_msg(n == n_want, "\"%s\": %d ids, want %d", text, n, n_want);
    for (int i = 0; i < n; i++) ck_assert_msg(ids[i] == want[i], "\"%s\"[%d] = %d, want %d", text, i, ids[i], want[i]);
    free(ids);
}

// vocab.txt lines end in \n, \r\n or \r (Python's readlines); the last line
// may lack one; a duplicate line's later id wins; BOS/EOS are [CLS]/[SEP].
START_TEST(test_vocab_file) {
    char *err;
    eng_tokenizer *t = load_str("[PAD]\r\n[UNK]\r[CLS]\n[SEP]\nun\n##aff\n##able\nun\nx", NULL, &err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_int_eq(eng_tok_vocab_size(t), 9);
    ck_assert_int_eq(eng_tok_bos_id(t), 2);
    ck_assert_int_eq(eng_tok_eos_id(t), 3);
    ck_assert_int_eq(eng_tok_lookup(t, "un", 2), 7);
    ck_assert_int_eq(eng_tok_lookup(t, "x", 1), 8);
    expect_ids(t, "Unaffable", ENG_TOK_FLAG_ADD_BOS | ENG_TOK_FLAG_ADD_EOS, (int[]){2, 7, 5, 6, 3}, 5);
    expect_ids(t, "unaffablex xx x", 0, (int[]){1, 1, 8}, 3);   // no match to the end: the word is [UNK]
    // [SEP] standing alone is the special (HF never_split); inside a word only with the flag
    expect_ids(t, "x [SEP] x", 0, (int[]){8, 3, 8}, 3);
    expect_ids(t, "x[SEP]x", ENG_TOK_FLAG_SPECIAL, (int[]){8, 3, 8}, 3);
    // a bound on the ids
    int *ids, n;
    ck_assert_int_eq(eng_tok_encode(t, "x x x x", 7, ENG_TOK_FLAG_ADD_BOS | ENG_TOK_FLAG_ADD_EOS, 5, &ids, &n, &err),
                     ENG_TOK_E_TOO_LONG);
    free(err);
    eng_tokenizer_free(t);
}
END_TEST

START_TEST(test_errors) {
    char *err;
    ck_assert_ptr_null(load_str("[PAD]\n[CLS]\n", NULL, &err));
    ck_assert_msg(err && strstr(err, "[UNK]"), "%s", err);
    free(err);
    ck_assert_ptr_null(load_str("", NULL, &err));
    ck_assert_msg(err && strstr(err, "empty"), "%s", err);
    free(err);
    ck_assert_ptr_null(load_str("[UNK]\n\xff\n", NULL, &err));
    ck_assert_msg(err && strstr(err, "UTF-8"), "%s", err);
    free(err);
    ck_assert_ptr_null(load_str("[UNK]\n", "{\"do_lower_case\": \"yes\"}", &err));
    ck_assert_msg(err && strstr(err, "do_lower_case"), "%s", err);
    free(err);
    ck_assert_ptr_null(load_str("[UNK]\n", "{\"do_basic_tokenize\": false}", &err));
    ck_assert_msg(err && strstr(err, "do_basic_tokenize"), "%s", err);
    free(err);
    eng_tokenizer *t = NULL;
    ck_assert_int_eq(eng_tokenizer_load_wordpiece(&t, "/nonexistent/vocab.txt", NULL, &err), -1);
    ck_assert_msg(err && strstr(err, "/nonexistent/vocab.txt"), "%s", err);
    free(err);
    // a tokenizer_config.json whose unk_token is not in the vocabulary
    ck_assert_ptr_null(load_str("[UNK]\n", "{\"unk_token\": {\"content\": \"<unk>\"}}", &err));
    ck_assert_msg(err && strstr(err, "<unk>"), "%s", err);
    free(err);
}
END_TEST

static Suite *wordpiece_suite(void) {
    Suite *s = suite_create("wordpiece");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reference_ids);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_vocab_file);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(wordpiece_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
