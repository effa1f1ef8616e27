// test_spm.c — SentencePiece through Debian's libsentencepiece
// (engine/text/sentencepiece_shim.cc, tokenizer_sentencepiece.c): pieces,
// ids and decoded text exactly as Debian's spm_encode / spm_decode give them
// on a multi-script corpus (fixture: tests/ref/make_spm_ref.py), Marian
// vocab.json ids, bounds, and load errors.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine/core/util.h"
#include "engine/text/sentencepiece_shim.h"
#include "engine/text/tokenizer.h"
#include "tests/unit/testutil.h"

#define SPM_DIR "tests/ref/spm"
#define MODEL SPM_DIR "/tiny.model"
#define MARIAN_VOCAB "tests/ref/marian_tiny/vocab.json"

// The lines of a fixture file (the file ends with "\n"); *n gets the count.
static char **read_lines(const char *path, int *n, char **buf) {
    size_t len;
    char *err = NULL;
    *buf = eng_read_file(path, &len, &err);
    ck_assert_msg(*buf, "%s", err ? err : path);
    char **lines = calloc(len + 1, sizeof *lines);
    int k = 0;
    for (char *p = *buf; p < *buf + len;) {
        char *e = memchr(p, '\n', (size_t)(*buf + len - p));
        ck_assert_ptr_nonnull(e);
        *e = 0;
        lines[k++] = p;
        p = e + 1;
    }
    *n = k;
    return lines;
}

// Splits s on ' ' into words (in place); returns the count.
static int split(char *s, char **w, int cap) {
    int n = 0;
    for (char *p = strtok(s, " "); p && n < cap; p = strtok(NULL, " ")) w[n++] = p;
    return n;
}

typedef struct {
    char pieces[4096];
    size_t len;
    int n;
} joined;

static int join_piece(void *ctx, const char *s, size_t n, int id) {
    joined *j = ctx;
    ck_assert(j->len + n + 2 < sizeof j->pieces);
    if (j->n++) j->pieces[j->len++] = ' ';
    memcpy(j->pieces + j->len, s, n);
    j->len += n;
    j->pieces[j->len] = 0;
    return 0;
}

START_TEST(test_spm_encode_exact) {
    char *b1, *b2, *b3, *b4, *err = NULL;
    int nt, np, ni, nd;
    char **text = read_lines(SPM_DIR "/test.txt", &nt, &b1);
    char **pieces = read_lines(SPM_DIR "/test.pieces", &np, &b2);
    char **ids = read_lines(SPM_DIR "/test.ids", &ni, &b3);
    char **dec = read_lines(SPM_DIR "/test.decoded", &nd, &b4);
    ck_assert_int_eq(nt, np);
    ck_assert_int_eq(nt, ni);
    ck_assert_int_eq(nt, nd);
    ck_assert_int_gt(nt, 40);
    eng_tokenizer *t;
    ck_assert_msg(eng_tokenizer_load_spm(&t, MODEL, NULL, &err) == 0, "%s", err);
    ck_assert_int_eq(eng_tok_kind_of(t), ENG_TOK_KIND_SPM);
    ck_assert_str_eq(eng_tok_kind_name(ENG_TOK_KIND_SPM), "spm");
    ck_assert_int_eq(eng_tok_vocab_size(t), 1500);
    ck_assert_int_eq(eng_tok_eos_id(t), 2);
    ck_assert_int_eq(eng_tok_bos_id(t), -1);
    size_t mlen;
    char *mdata = eng_read_file(MODEL, &mlen, &err);
    eng_spm *sp = eng_spm_load(mdata, mlen, &err);
    ck_assert_msg(sp, "%s", err);
    int total = 0;
    for (int i = 0; i < nt; i++) {
        // pieces: the shim's split is the CLI's, byte for byte
        joined j = {.len = 0};
        ck_assert_int_eq(eng_spm_encode(sp, text[i], strlen(text[i]), join_piece, &j, &err), 0);
        ck_assert_msg(strcmp(j.pieces, pieces[i]) == 0, "line %d \"%s\": pieces\n  got  %s\n  want %s", i + 1,
                      text[i], j.pieces, pieces[i]);
        // ids: through the tokenizer API
        int *got, n;
        ck_assert_int_eq(eng_tok_encode(t, text[i], strlen(text[i]), 0, 0, &got, &n, &err), 0);
        char *w[512];
        int nw = split(ids[i], w, 512);
        ck_assert_msg(n == nw, "line %d: %d ids, want %d", i + 1, n, nw);
        for (int k = 0; k < n; k++) ck_assert_msg(got[k] == atoi(w[k]), "line %d id %d: %d want %s", i + 1, k, got[k], w[k]);
        // decode: the CLI's detokenization
        char *out;
        size_t ol;
        ck_assert_int_eq(eng_tok_decode(t, got, n, &out, &ol, &err), 0);
        ck_assert_msg(strcmp(out, dec[i]) == 0, "line %d: decoded \"%s\" want \"%s\"", i + 1, out, dec[i]);
        ck_assert_uint_eq(ol, strlen(dec[i]));
        total += n;
        free(out);
        free(got);
    }
    ck_assert_int_gt(total, 500);
    // encode speed (printed, not asserted): the test corpus 200 times
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t bytes = 0;
    for (int r = 0; r < 200; r++)
        for (int i = 0; i < nt; i++) {
            int *got, n;
            eng_tok_encode(t, text[i], strlen(text[i]), 0, 0, &got, &n, &err);
            bytes += strlen(text[i]);
            free(got);
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "spm encode: %.0f lines/s, %.1f MB/s (libsentencepiece, one thread)\n", 200.0 * nt / s,
            (double)bytes / s / 1e6);
    eng_spm_free(sp);
    free(mdata);
    eng_tokenizer_free(t);
    free(text); free(pieces); free(ids); free(dec);
    free(b1); free(b2); free(b3); free(b4);
}
END_TEST

// Marian: ids from vocab.json by piece string; pieces it lacks -> its <unk>.
START_TEST(test_spm_marian_vocab) {
    char *err = NULL;
    eng_tokenizer *t, *plain;
    ck_assert_msg(eng_tokenizer_load_spm(&t, MODEL, MARIAN_VOCAB, &err) == 0, "%s", err);
    ck_assert_msg(eng_tokenizer_load_spm(&plain, MODEL, NULL, &err) == 0, "%s", err);
    json_t *vocab = tu_load_json(MARIAN_VOCAB);
    ck_assert_int_eq(eng_tok_vocab_size(t), (int)json_object_size(vocab));
    ck_assert_int_eq(eng_tok_eos_id(t), 0);
    ck_assert_int_eq(eng_tok_lookup(t, "<pad>", 5), (int)json_object_size(vocab) - 1);
    const char *text = "Mixed: Hello Мир Welt 世界 κόσμος 🌍!";
    int *a, na, *b, nb;
    ck_assert_int_eq(eng_tok_encode(t, text, strlen(text), ENG_TOK_FLAG_ADD_EOS, 0, &a, &na, &err), 0);
    ck_assert_int_eq(eng_tok_encode(plain, text, strlen(text), 0, 0, &b, &nb, &err), 0);
    ck_assert_int_eq(na, nb + 1);
    ck_assert_int_eq(a[na - 1], 0);   // </s> appended
    int unk = 0;
    for (int i = 0; i < nb; i++) {
        char piece[64];
        // unknown characters: <unk> in both (the model's 0, vocab.json's 1)
        if (b[i] == 0) { ck_assert_int_eq(a[i], 1); unk++; continue; }
        // the vocab.json id of the same piece string
        int id = -1;
        const char *key;
        json_t *v;
        json_object_foreach(vocab, key, v) {
            if (json_integer_value(v) == a[i]) { snprintf(piece, sizeof piece, "%s", key); id = a[i]; }
        }
        ck_assert_int_ge(id, 0);
        ck_assert_int_eq(eng_tok_lookup(plain, piece, strlen(piece)), b[i]);
    }
    ck_assert_int_gt(unk, 0);   // 🌍 is not in the model
    char *out;
    ck_assert_int_eq(eng_tok_decode(t, a, na, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "Mixed: Hello Мир Welt  ⁇  κόσμος  ⁇ !");
    free(out);
    // streaming pieces concatenate to the same text for known pieces
    const char *hello = "Hello world.";
    free(b);
    ck_assert_int_eq(eng_tok_encode(t, hello, strlen(hello), 0, 0, &b, &nb, &err), 0);
    char buf[128] = "";
    size_t k = 0;
    for (int i = 0; i < nb; i++) {
        size_t pl;
        const char *p = eng_tok_piece(t, i ? b[i - 1] : -1, b[i], &pl);
        memcpy(buf + k, p, pl);
        k += pl;
    }
    buf[k] = 0;
    ck_assert_str_eq(buf, hello);
    free(a);
    free(b);
    json_decref(vocab);
    eng_tokenizer_free(t);
    eng_tokenizer_free(plain);
}
END_TEST

START_TEST(test_spm_bound) {
    char *err = NULL;
    eng_tokenizer *t;
    ck_assert_int_eq(eng_tokenizer_load_spm(&t, MODEL, MARIAN_VOCAB, &err), 0);
    const char *text = "The house is very small and the water is cold.";
    int *ids, n;
    ck_assert_int_eq(eng_tok_encode(t, text, strlen(text), 0, 0, &ids, &n, &err), 0);
    free(ids);
    ck_assert_int_eq(eng_tok_encode(t, text, strlen(text), 0, n - 1, &ids, &n, &err), ENG_TOK_E_TOO_LONG);
    ck_assert_ptr_null(ids);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_tok_encode(t, "", 0, ENG_TOK_FLAG_ADD_EOS, 0, &ids, &n, &err), 0);
    ck_assert_int_eq(n, 1);
    free(ids);
    // bytes that are not UTF-8 and NULs: encoded, never a crash
    const char bad[] = "a\xff\xfe b\0c \xe2\x82";
    ck_assert_int_eq(eng_tok_encode(t, bad, sizeof bad - 1, 0, 0, &ids, &n, &err), 0);
    ck_assert_int_gt(n, 0);
    int out_of_range = 5000;
    char *out;
    ck_assert_int_eq(eng_tok_decode(t, &out_of_range, 1, &out, NULL, &err), -1);
    ck_assert_ptr_nonnull(err);
    free(err);
    free(ids);
    eng_tokenizer_free(t);
}
END_TEST

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(data, 1, n, f);
    fclose(f);
}

START_TEST(test_spm_load_errors) {
    char *err = NULL;
    eng_tokenizer *t = (eng_tokenizer *)1;
    ck_assert_int_eq(eng_tokenizer_load_spm(&t, "/nonexistent/x.model", NULL, &err), -1);
    ck_assert_ptr_null(t);
    ck_assert_msg(err && strstr(err, "/nonexistent/x.model"), "%s", err);
    free(err);
    err = NULL;
    char *dir = tu_temp_dir("spm");
    char p[512], v[512];
    snprintf(p, sizeof p, "%s/bad.model", dir);
    write_file(p, "not a protobuf at all \xff\xff\xff", 24);
    ck_assert_int_eq(eng_tokenizer_load_spm(&t, p, NULL, &err), -1);
    ck_assert_msg(err && strstr(err, "bad.model"), "%s", err);
    free(err);
    err = NULL;
    // a truncated model
    size_t len;
    char *m = eng_read_file(MODEL, &len, &err);
    write_file(p, m, len / 2);
    ck_assert_int_eq(eng_tokenizer_load_spm(&t, p, NULL, &err), -1);
    ck_assert_msg(err && strstr(err, "bad.model"), "%s", err);
    free(err);
    err = NULL;
    free(m);
    // vocab.json: not JSON, a gap in the ids, no <unk>
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    const char *bad[] = {"{\"a\": ", "{\"</s>\": 0, \"<unk>\": 2}", "{\"</s>\": 0, \"x\": 1}", "[1, 2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(v, bad[i], strlen(bad[i]));
        ck_assert_int_eq(eng_tokenizer_load_spm(&t, MODEL, v, &err), -1);
        ck_assert_msg(err && strstr(err, "vocab.json"), "case %zu: %s", i, err);
        ck_assert_ptr_null(t);
        free(err);
        err = NULL;
    }
    unlink(p);
    unlink(v);
    rmdir(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("spm");
    TCase *tc = tcase_create("spm");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spm_encode_exact);
    tcase_add_test(tc, test_spm_marian_vocab);
    tcase_add_test(tc, test_spm_bound);
    tcase_add_test(tc, test_spm_load_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
