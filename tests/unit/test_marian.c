// test_marian.c — engine/arch/marian.c against the independent PyTorch
// reference of tests/ref/make_marian_ref.py: teacher-forced logits of a
// batch of padded sources through encode + step by step decoding (1e-4
// relative), batch invariance, dec_copy, greedy decoding (our own loop and
// eng_translate) giving the reference ids, HF source tokenization, and clean
// load errors.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/arch/model.h"
#include "engine/arch/translate.h"
#include "engine/core/util.h"
#include "engine/io/safetensors.h"
#include "tests/unit/testutil.h"

#define TINY "tests/ref/marian_tiny"
#define REF "tests/ref/marian_ref.safetensors"

typedef struct {
    eng_st_file f;
    int P, S, T, V;
    int *src, *src_len, *tgt, *tgt_len, *greedy, *greedy_len;
    const float *logits;
} fixture;

static int *ints(fixture *x, const char *name, size_t n) {
    const eng_st_tensor *t = eng_st_find(&x->f, name);
    ck_assert_msg(t && t->data && t->numel == n, "fixture tensor %s", name);
    int *o = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) o[i] = (int)t->data[i];
    return o;
}

static void fx_load(fixture *x) {
    char *err = NULL;
    ck_assert_msg(eng_st_open(&x->f, REF, &err) == 0, "%s (regenerate: /usr/bin/python3 tests/ref/make_marian_ref.py)", err);
    const eng_st_tensor *lg = eng_st_find(&x->f, "logits");
    ck_assert(lg && lg->ndim == 3);
    x->P = (int)lg->shape[0];
    x->T = (int)lg->shape[1];
    x->V = (int)lg->shape[2];
    x->logits = lg->data;
    x->S = (int)eng_st_find(&x->f, "src")->shape[1];
    x->src = ints(x, "src", (size_t)x->P * x->S);
    x->src_len = ints(x, "src_len", (size_t)x->P);
    x->tgt = ints(x, "tgt", (size_t)x->P * x->T);
    x->tgt_len = ints(x, "tgt_len", (size_t)x->P);
    x->greedy = ints(x, "greedy", (size_t)x->P * 20);
    x->greedy_len = ints(x, "greedy_len", (size_t)x->P);
}

static void fx_free(fixture *x) {
    free(x->src); free(x->src_len); free(x->tgt); free(x->tgt_len); free(x->greedy); free(x->greedy_len);
    eng_st_close(&x->f);
}

static eng_model *load_tiny(void) {
    eng_model *m;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, TINY, &err) == 0, "%s", err);
    ck_assert_int_eq(m->task, ENG_TASK_TRANSLATION);
    ck_assert_ptr_nonnull(m->arch->s2s);
    return m;
}

// Teacher-forced logits of sources idx[0..B) (fixture rows) as one batch,
// step by step: out[b][t * V ...] for t < tgt_len.
static float **run(const eng_model *m, const fixture *x, const int *idx, int B) {
    const eng_s2s_ops *ops = m->arch->s2s;
    ck_assert(B >= 1 && B <= 8);
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    const int *src[8];
    int n_src[8];
    for (int b = 0; b < B; b++) {
        src[b] = x->src + (size_t)idx[b] * x->S;
        n_src[b] = x->src_len[idx[b]];
    }
    eng_s2s_mem *mem = ops->encode(m->s2s, &tape, src, n_src, B);
    ck_assert_ptr_nonnull(mem);
    eng_s2s_dec *dec[8];
    float **out = calloc(8, sizeof *out);
    for (int b = 0; b < B; b++) {
        dec[b] = ops->dec_new(m->s2s, mem, b, x->T);
        out[b] = malloc((size_t)x->T * x->V * sizeof(float));
    }
    float *lg = malloc((size_t)B * x->V * sizeof(float));
    for (int t = 0; t < x->T; t++) {
        eng_s2s_dec *live[8];
        int tok[8], who[8], n = 0;
        for (int b = 0; b < B; b++)
            if (t < x->tgt_len[idx[b]]) {   // hypotheses drop out as their targets end
                live[n] = dec[b];
                tok[n] = x->tgt[(size_t)idx[b] * x->T + t];
                who[n++] = b;
            }
        if (!n) break;
        ops->step(m->s2s, &tape, live, tok, n, lg);
        for (int i = 0; i < n; i++) memcpy(out[who[i]] + (size_t)t * x->V, lg + (size_t)i * x->V, (size_t)x->V * sizeof(float));
    }
    free(lg);
    for (int b = 0; b < B; b++) ops->dec_free(dec[b]);
    ops->mem_free(mem);
    eng_tape_free(&tape);
    return out;
}

START_TEST(test_marian_reference_logits) {
    fixture x;
    fx_load(&x);
    eng_model *m = load_tiny();
    eng_s2s_info info = m->arch->s2s->info(m->s2s);
    ck_assert_str_eq(info.arch, "marian");
    ck_assert_int_eq(info.tgt_vocab, x.V);
    ck_assert_int_eq(info.start_id, x.tgt[0]);   // decoding starts from pad
    ck_assert_int_eq(info.pad_id, x.V - 1);
    ck_assert_int_eq(info.eos_id, 0);
    ck_assert_int_eq(m->max_text_ids, 64);
    int idx[8];
    for (int i = 0; i < x.P; i++) idx[i] = i;
    float **got = run(m, &x, idx, x.P);
    for (int b = 0; b < x.P; b++) {
        char what[64];
        snprintf(what, sizeof what, "pair %d logits", b);
        ck_assert_int_eq(tu_compare(what, got[b], x.logits + (size_t)b * x.T * x.V, (size_t)x.tgt_len[b] * x.V,
                                    1e-4, 1e-4), 0);
        free(got[b]);
    }
    free(got);
    eng_model_free(m);
    fx_free(&x);
}
END_TEST

// A source alone, or in a batch of 3 with others of other lengths: the same
// logits, bit for bit (sources are encoded by the same calls whatever the
// batch; decoder steps of fewer than 16 hypotheses sum each row in a fixed
// order; from 16 on sgemm takes over, whose last bits may differ).
START_TEST(test_marian_batch_invariance) {
    fixture x;
    fx_load(&x);
    eng_model *m = load_tiny();
    ck_assert_int_ge(x.P, 3);
    for (int s = 0; s < 3; s++) {
        int one[1] = {s}, three[3] = {(s + 1) % x.P, s, (s + 2) % x.P};
        float **a = run(m, &x, one, 1), **b = run(m, &x, three, 3);
        ck_assert_int_eq(tu_compare("alone vs batch of 3", b[1], a[0], (size_t)x.tgt_len[s] * x.V, 0, 0), 0);
        free(a[0]); free(a);
        for (int i = 0; i < 3; i++) free(b[i]);
        free(b);
    }
    eng_model_free(m);
    fx_free(&x);
}
END_TEST

// dec_copy mid-sentence into a dec of another mem and source: both go on
// exactly as the original would (beam search reorders hypotheses this way).
START_TEST(test_marian_dec_copy) {
    fixture x;
    fx_load(&x);
    eng_model *m = load_tiny();
    const eng_s2s_ops *ops = m->arch->s2s;
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    int p = 1;   // the longest target
    const int *s0 = x.src + (size_t)p * x.S, *s1 = x.src;
    eng_s2s_mem *mem = ops->encode(m->s2s, &tape, &s0, &x.src_len[p], 1);
    eng_s2s_mem *other = ops->encode(m->s2s, &tape, &s1, &x.src_len[0], 1);
    eng_s2s_dec *a = ops->dec_new(m->s2s, mem, 0, x.T), *b = ops->dec_new(m->s2s, other, 0, x.T);
    float *lg = malloc(2 * (size_t)x.V * sizeof(float));
    const int *tgt = x.tgt + (size_t)p * x.T;
    int t = 0;
    for (; t < 3; t++) ops->step(m->s2s, &tape, &a, &tgt[t], 1, lg);
    ops->dec_copy(b, a);
    for (; t < x.tgt_len[p]; t++) {
        eng_s2s_dec *both[2] = {a, b};
        int tok[2] = {tgt[t], tgt[t]};
        ops->step(m->s2s, &tape, both, tok, 2, lg);
        const float *want = x.logits + ((size_t)p * x.T + t) * x.V;
        ck_assert_int_eq(tu_compare("original", lg, want, (size_t)x.V, 1e-4, 1e-4), 0);
        ck_assert_int_eq(tu_compare("copy", lg + x.V, want, (size_t)x.V, 1e-4, 1e-4), 0);
    }
    free(lg);
    ops->dec_free(a);
    ops->dec_free(b);
    ops->mem_free(mem);
    ops->mem_free(other);
    eng_tape_free(&tape);
    eng_model_free(m);
    fx_free(&x);
}
END_TEST

// The texts of marian_ref_greedy.json: HF-style source ids, then greedy
// decoding (pad masked) by a plain loop over the ops and by eng_translate,
// and beam search (beam 4, 8 tokens) by eng_translate: the reference's ids.
START_TEST(test_marian_greedy) {
    eng_model *m = load_tiny();
    const eng_s2s_ops *ops = m->arch->s2s;
    json_t *cases = tu_load_json("tests/ref/marian_ref_greedy.json");
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    eng_s2s_info info = ops->info(m->s2s);
    float *lg = malloc((size_t)info.tgt_vocab * sizeof(float));
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        int *ids, n;
        char *err = NULL;
        ck_assert_int_eq(eng_model_text_ids(m, text, strlen(text), &ids, &n, &err), 0);
        json_t *want_src = json_object_get(c, "src_ids"), *want = json_object_get(c, "ids");
        ck_assert_int_eq(n, (int)json_array_size(want_src));
        for (int k = 0; k < n; k++) ck_assert_int_eq(ids[k], (int)json_integer_value(json_array_get(want_src, k)));
        // our loop
        const int *src = ids;
        eng_s2s_mem *mem = ops->encode(m->s2s, &tape, &src, &n, 1);
        eng_s2s_dec *d = ops->dec_new(m->s2s, mem, 0, 21);
        int tok = info.start_id, out[20], no = 0, finished = 0;
        while (no < 20) {
            ops->step(m->s2s, &tape, &d, &tok, 1, lg);
            lg[info.pad_id] = -1e30f;
            int best = 0;
            for (int v = 1; v < info.tgt_vocab; v++) if (lg[v] > lg[best]) best = v;
            if (best == info.eos_id) { finished = 1; break; }
            out[no++] = tok = best;
        }
        ck_assert_int_eq(no, (int)json_array_size(want));
        ck_assert_int_eq(finished, json_is_true(json_object_get(c, "finished")));
        for (int k = 0; k < no; k++) ck_assert_int_eq(out[k], (int)json_integer_value(json_array_get(want, k)));
        ops->dec_free(d);
        ops->mem_free(mem);
        // the lead's search over the same ops
        eng_translate_opts o = {.beam_size = 1, .max_tokens = 20, .length_penalty = 1.0f};
        eng_translation tr;
        ck_assert_int_eq(eng_translate(ops, m->s2s, &tape, &src, &n, 1, &o, &tr), 0);
        ck_assert_int_eq(tr.n, no);
        for (int k = 0; k < no; k++) ck_assert_int_eq(tr.ids[k], out[k]);
        // beam search (beam 4, 8 tokens) = the reference's beam
        json_t *bw = json_object_get(c, "beam4_max8_ids");
        eng_translate_opts ob = {.beam_size = 4, .max_tokens = 8, .length_penalty = 1.0f};
        eng_translation bt;
        ck_assert_int_eq(eng_translate(ops, m->s2s, &tape, &src, &n, 1, &ob, &bt), 0);
        ck_assert_int_eq(bt.n, (int)json_array_size(bw));
        for (int k = 0; k < bt.n; k++)
            ck_assert_msg(bt.ids[k] == (int)json_integer_value(json_array_get(bw, k)), "case %zu beam token %d: %d", i, k,
                          bt.ids[k]);
        free(bt.ids);
        // and the target side decodes them to text
        char *txt;
        ck_assert_int_eq(eng_tok_decode(m->tok_tgt, tr.ids, tr.n, &txt, NULL, &err), 0);
        ck_assert_int_gt((int)strlen(txt), 0);
        free(txt);
        free(tr.ids);
        free(ids);
    }
    free(lg);
    eng_tape_free(&tape);
    json_decref(cases);
    eng_model_free(m);
}
END_TEST

START_TEST(test_marian_text_ids) {
    eng_model *m = load_tiny();
    int *ids, n;
    char *err = NULL;
    // a language code in the vocabulary is one token (none here: plain text then)
    ck_assert_int_eq(eng_model_text_ids(m, ">>xx<< Hi", 9, &ids, &n, &err), 0);
    ck_assert_int_eq(ids[n - 1], 0);
    free(ids);
    // the length limit counts </s>
    char big[400];
    for (int i = 0; i < 399; i++) big[i] = i % 2 ? ' ' : 'a' + (i / 2) % 26;
    big[399] = 0;
    ck_assert_int_eq(eng_model_text_ids(m, big, strlen(big), &ids, &n, &err), ENG_TOK_E_TOO_LONG);
    free(err);
    eng_model_free(m);
}
END_TEST

// ---------------------------------------------------------------- load errors

static void copy_file(const char *from, const char *to, size_t limit) {
    size_t len;
    char *err = NULL;
    char *d = eng_read_file(from, &len, &err);
    ck_assert_msg(d, "%s", err);
    FILE *f = fopen(to, "wb");
    fwrite(d, 1, len < limit ? len : limit, f);
    fclose(f);
    free(d);
}

static const char *FILES[] = {"config.json", "model.safetensors", "source.spm", "target.spm", "vocab.json"};

static char *tiny_copy(void) {
    char *dir = tu_temp_dir("marian");
    for (size_t i = 0; i < 5; i++) {
        char a[512], b[512];
        snprintf(a, sizeof a, TINY "/%s", FILES[i]);
        snprintf(b, sizeof b, "%s/%s", dir, FILES[i]);
        copy_file(a, b, (size_t)-1);
    }
    return dir;
}

static void remove_copy(char *dir) {
    for (size_t i = 0; i < 5; i++) {
        char b[512];
        snprintf(b, sizeof b, "%s/%s", dir, FILES[i]);
        unlink(b);
    }
    rmdir(dir);
    free(dir);
}

static void set_config(const char *dir, const char *key, json_t *value) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = tu_load_json(p);
    if (value) json_object_set_new(c, key, value);
    else json_object_del(c, key);
    json_dump_file(c, p, 0);
    json_decref(c);
}

static void expect_fail(const char *dir, const char *needle) {
    eng_model *m = (eng_model *)1;
    char *err = NULL;
    ck_assert_int_eq(eng_model_load(&m, dir, &err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(err && strstr(err, needle), "error \"%s\" should name \"%s\"", err ? err : "(null)", needle);
    free(err);
}

// Rewrites dir/model.safetensors from the tiny model's tensors, renaming
// `from` to `to` (to == NULL: drops it).
// `also` (may be NULL): a second copy of `from` under that name.
static void rewrite_checkpoint2(const char *dir, const char *from, const char *to, const char *also) {
    eng_st_file f;
    char *err = NULL, p[512];
    ck_assert_msg(eng_st_open(&f, TINY "/model.safetensors", &err) == 0, "%s", err);
    eng_st_entry *e = calloc((size_t)f.n + 1, sizeof *e);
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        const eng_st_tensor *t = &f.tensors[i];
        if (strcmp(t->name, from) == 0 && !to) continue;
        e[n].name = strcmp(t->name, from) == 0 ? to : t->name;
        e[n].ndim = t->ndim;
        memcpy(e[n].shape, t->shape, sizeof e[n].shape);
        e[n].data = t->data;
        n++;
        if (also && strcmp(t->name, from) == 0) {
            e[n] = e[n - 1];
            e[n++].name = also;
        }
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_assert_msg(eng_st_write(p, e, n, NULL, &err) == 0, "%s", err);
    free(e);
    eng_st_close(&f);
}

static void rewrite_checkpoint(const char *dir, const char *from, const char *to) {
    rewrite_checkpoint2(dir, from, to, NULL);
}

// Checkpoints that dropped tied duplicates keep the shared matrix under
// another of its names: the same model loads from each.
START_TEST(test_marian_tied_names) {
    fixture x;
    fx_load(&x);
    const char *names[] = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"};
    char *dir = tiny_copy();
    for (int k = 0; k < 3; k++) {
        rewrite_checkpoint(dir, "model.shared.weight", names[k]);
        eng_model *m;
        char *err = NULL;
        ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "%s: %s", names[k], err);
        int idx[1] = {2};
        float **got = run(m, &x, idx, 1);
        ck_assert_int_eq(tu_compare(names[k], got[0], x.logits + (size_t)2 * x.T * x.V, (size_t)x.tgt_len[2] * x.V,
                                    1e-4, 1e-4), 0);
        free(got[0]);
        free(got);
        eng_model_free(m);
    }
    rewrite_checkpoint(dir, "model.shared.weight", NULL);
    expect_fail(dir, "model.shared.weight");
    remove_copy(dir);
    fx_free(&x);
}
END_TEST

// Separate vocabularies (share_encoder_decoder_embeddings false): per-side
// embeddings, the target side's ids from target_vocab.json. Here both hold
// the tiny model's values, so the logits are the fixture's.
START_TEST(test_marian_separate_vocabs) {
    fixture x;
    fx_load(&x);
    char *dir = tiny_copy(), p[512];
    rewrite_checkpoint2(dir, "model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight");
    set_config(dir, "share_encoder_decoder_embeddings", json_false());
    snprintf(p, sizeof p, "%s/target_vocab.json", dir);
    copy_file(TINY "/vocab.json", p, (size_t)-1);
    eng_model *m;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "%s", err);
    ck_assert_ptr_nonnull(m->tok_tgt);
    ck_assert_ptr_ne(m->tok_tgt, m->tok);
    int idx[1] = {1};
    float **got = run(m, &x, idx, 1);
    ck_assert_int_eq(tu_compare("separate", got[0], x.logits + (size_t)1 * x.T * x.V, (size_t)x.tgt_len[1] * x.V,
                                1e-4, 1e-4), 0);
    free(got[0]);
    free(got);
    eng_model_free(m);
    // without the decoder's embedding: an error naming it
    rewrite_checkpoint(dir, "model.shared.weight", "model.encoder.embed_tokens.weight");
    expect_fail(dir, "model.decoder.embed_tokens.weight");
    unlink(p);
    remove_copy(dir);
    fx_free(&x);
}
END_TEST

START_TEST(test_marian_load_errors) {
    char p[512];
    char *dir = tiny_copy();
    // each file missing in turn
    for (size_t i = 1; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, FILES[i]);
        unlink(p);
        expect_fail(dir, FILES[i]);
        char a[512];
        snprintf(a, sizeof a, TINY "/%s", FILES[i]);
        copy_file(a, p, (size_t)-1);
    }
    // a truncated checkpoint
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    copy_file(TINY "/model.safetensors", p, 200000);
    expect_fail(dir, "model.safetensors");
    copy_file(TINY "/model.safetensors", p, (size_t)-1);
    // shapes that disagree with config.json
    set_config(dir, "d_model", json_integer(64));
    expect_fail(dir, "model.safetensors");
    set_config(dir, "d_model", json_integer(32));
    set_config(dir, "encoder_ffn_dim", json_integer(65));
    expect_fail(dir, "fc1");
    set_config(dir, "encoder_ffn_dim", json_integer(64));
    set_config(dir, "decoder_layers", json_integer(3));
    expect_fail(dir, "model.decoder.layers.2");
    set_config(dir, "decoder_layers", json_integer(2));
    // config keys
    set_config(dir, "d_model", NULL);
    expect_fail(dir, "d_model");
    set_config(dir, "d_model", json_integer(32));
    set_config(dir, "activation_function", json_string("tanh"));
    expect_fail(dir, "activation_function");
    set_config(dir, "activation_function", json_string("swish"));
    set_config(dir, "encoder_attention_heads", json_integer(5));
    expect_fail(dir, "head");
    set_config(dir, "encoder_attention_heads", json_integer(4));
    set_config(dir, "vocab_size", json_integer(1000));
    expect_fail(dir, "vocab");
    set_config(dir, "vocab_size", json_integer(1500));
    set_config(dir, "eos_token_id", json_integer(5));
    expect_fail(dir, "eos_token_id");
    set_config(dir, "eos_token_id", json_integer(0));
    // a model that loads again after all that
    eng_model *m;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "%s", err);
    eng_model_free(m);
    remove_copy(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("marian");
    TCase *tc = tcase_create("marian");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_marian_reference_logits);
    tcase_add_test(tc, test_marian_batch_invariance);
    tcase_add_test(tc, test_marian_dec_copy);
    tcase_add_test(tc, test_marian_greedy);
    tcase_add_test(tc, test_marian_text_ids);
    tcase_add_test(tc, test_marian_load_errors);
    tcase_add_test(tc, test_marian_tied_names);
    tcase_add_test(tc, test_marian_separate_vocabs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
