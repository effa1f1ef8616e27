// test_lstm_attention.c — engine/arch/lstm_attention.c: the tape backward
// of the training forward against central finite differences (every
// tensor); the serving path (encode + batched steps through eng_s2s_ops)
// against the teacher-forced training forward; batch invariance of encode
// (a source alone or padded among longer ones); save -> load; the logits
// and greedy outputs of an independent PyTorch model
// (tests/ref/make_lstm_attention_ref.py); chrF against
// sacrebleu's published figure; and `inferd train --task translation` on a
// synthetic task (reverse a string) reaching a high held-out exact match.
#include "engine/arch/lstm_attention.h"

#include <check.h>                 // Check unit-test framework
#include <math.h>                  // fabs
#include <stdlib.h>                // malloc, free
#include <string.h>                // memcpy
#include "tests/unit/testutil.h"   // tu_compare, tu_temp_dir
#include "engine/core/rng.h"       // the synthetic task's strings
#include "engine/train/train.h"    // eng_train, eng_eval_translation, eng_chrf
#include "engine/arch/model.h"     // eng_model_load (the reference directory is servable)
#include "engine/arch/translate.h" // eng_translate

// A tiny model: 2 encoder layers, ragged sources, targets with padding.
enum { VS = 7, VT = 9, D = 5, H = 6, E = 2, B = 3, S = 5, T = 4 };
static const int src_len[B] = {5, 2, 3};
static const int src[B * S] = {3, 4, 5, 6, 2, 5, 2, 0, 0, 0, 6, 3, 2, 0, 0};
static const int tgt_in[B * T] = {1, 4, 5, 6, 1, 7, 0, 0, 1, 8, 4, 0};
static const int tgt_out[B * T] = {4, 5, 6, 2, 7, 2, 0, 0, 8, 4, 2, 0};

static eng_la *tiny(uint64_t seed) {
    eng_la_config c = {.src_vocab = VS, .tgt_vocab = VT, .embed = D, .hidden = H, .enc_layers = E,
                       .max_src_len = 16, .max_tgt_len = 16, .start_id = 1, .eos_id = 2, .pad_id = 0};
    eng_la *m = calloc(1, sizeof *m);
    char *err = NULL;
    ck_assert_msg(eng_la_init(m, &c, &err) == 0, "%s", err);
    eng_la_init_params(m, seed);
    return m;
}

START_TEST(test_finite_differences) {
    eng_la *m = tiny(3);
    eng_la_enable_grads(m);
    eng_tape t, f;
    eng_tape_init(&t, 1, 1);
    eng_tape_init(&f, 0, 0);
    eng_var *loss = eng_la_loss(m, &t, src, src_len, B, S, tgt_in, tgt_out, T);
    eng_tape_backward(&t, loss);
    int bad = 0, checked = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        eng_la_tensor *p = &m->tensors[i];
        size_t picks[5] = {0, p->n / 3, (2 * p->n) / 3 + 1, p->n - 1, p->n / 2};
        if (p->embed) {   // rows of ids in the batch
            int id = i == 0 ? src[0] : tgt_in[1];
            picks[0] = (size_t)id * D;
            picks[1] = (size_t)id * D + D - 1;
            picks[2] = (size_t)(i == 0 ? src[11] : tgt_in[9]) * D + 2;
        }
        int nonzero = 0;
        for (int q = 0; q < 5; q++) {
            size_t k = picks[q] < p->n ? picks[q] : p->n - 1;
            float keep = p->val[k];
            const float eps = 1e-2f;
            double l[2];
            for (int s = 0; s < 2; s++) {
                p->val[k] = keep + (s ? -eps : eps);
                eng_tape_reset(&f);
                l[s] = eng_la_loss(m, &f, src, src_len, B, S, tgt_in, tgt_out, T)->val[0];
            }
            p->val[k] = keep;
            double fd = (l[0] - l[1]) / (2.0 * eps), g = p->grad[k];
            checked++;
            nonzero += fabs(g) > 1e-6;
            if (!(fabs(fd - g) <= 2e-4 + 2e-2 * fabs(g))) {
                fprintf(stderr, "  %s[%zu]: tape %.6g, finite difference %.6g\n", p->name, k, g, fd);
                bad++;
            }
        }
        ck_assert_msg(nonzero > 0, "%s: every checked gradient is zero", p->name);
    }
    ck_assert_int_eq(checked, 5 * m->n_tensors);
    ck_assert_int_eq(bad, 0);
    eng_tape_free(&t);
    eng_tape_free(&f);
    eng_la_destroy(m);
}
END_TEST

// Teacher-forced training logits [B*T, VT] of the tiny batch.
static float *train_logits(eng_la *m) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *lg = eng_la_logits(m, &t, eng_la_forward(m, &t, src, src_len, B, S, tgt_in, T));
    float *out = malloc(lg->n * sizeof(float));
    memcpy(out, lg->val, lg->n * sizeof(float));
    eng_tape_free(&t);
    return out;
}

// Encodes the given sources and steps all their hypotheses together through
// the teacher-forced tokens of the tiny batch rows `rows`.
static void serve_logits(const eng_s2s_ops *ops, eng_s2s *s, const int *rows, int n, float *out /* [n*T*VT] */) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    const int *srcs[B];
    int lens[B];
    for (int i = 0; i < n; i++) { srcs[i] = src + rows[i] * S; lens[i] = src_len[rows[i]]; }
    eng_s2s_mem *mem = ops->encode(s, &t, srcs, lens, n);
    ck_assert_ptr_nonnull(mem);
    eng_s2s_dec *decs[B];
    for (int i = 0; i < n; i++) ck_assert_ptr_nonnull(decs[i] = ops->dec_new(s, mem, i, T));
    float lg[B * VT];
    for (int j = 0; j < T; j++) {
        int tok[B];
        for (int i = 0; i < n; i++) tok[i] = tgt_in[rows[i] * T + j];
        ops->step(s, &t, decs, tok, n, lg);
        for (int i = 0; i < n; i++) memcpy(out + ((size_t)i * T + j) * VT, lg + (size_t)i * VT, VT * sizeof(float));
    }
    for (int i = 0; i < n; i++) ops->dec_free(decs[i]);
    ops->mem_free(mem);
    eng_tape_free(&t);
}

START_TEST(test_serving_matches_training) {
    eng_la *m = tiny(5);
    float *want = train_logits(m), got[B * T * VT];
    serve_logits(&eng_la_s2s_ops, eng_la_as_s2s(m), (int[]){0, 1, 2}, B, got);
    ck_assert_int_eq(tu_compare("serving vs training logits", got, want, B * T * VT, 0, 1e-5), 0);
    // dec_copy: a copy taken after two steps continues exactly like the original
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    const int *s0[1] = {src};
    eng_s2s_mem *mem = eng_la_s2s_ops.encode(eng_la_as_s2s(m), &t, s0, src_len, 1);
    eng_s2s_dec *a = eng_la_s2s_ops.dec_new(eng_la_as_s2s(m), mem, 0, T);
    eng_s2s_dec *b = eng_la_s2s_ops.dec_new(eng_la_as_s2s(m), mem, 0, T);
    float la[VT], lb[VT];
    eng_la_s2s_ops.step(eng_la_as_s2s(m), &t, &a, &tgt_in[0], 1, la);
    eng_la_s2s_ops.step(eng_la_as_s2s(m), &t, &a, &tgt_in[1], 1, la);
    eng_la_s2s_ops.dec_copy(b, a);
    eng_la_s2s_ops.step(eng_la_as_s2s(m), &t, &b, &tgt_in[2], 1, lb);
    ck_assert_int_eq(tu_compare("after dec_copy", lb, want + 2 * VT, VT, 0, 1e-5), 0);
    eng_la_s2s_ops.dec_free(a);
    eng_la_s2s_ops.dec_free(b);
    eng_la_s2s_ops.mem_free(mem);
    eng_tape_free(&t);
    free(want);
    eng_la_destroy(m);
}
END_TEST

START_TEST(test_batch_invariance) {
    eng_la *m = tiny(7);
    float alone[T * VT], batched[B * T * VT];
    serve_logits(&eng_la_s2s_ops, eng_la_as_s2s(m), (int[]){1}, 1, alone);      // length 2 alone
    serve_logits(&eng_la_s2s_ops, eng_la_as_s2s(m), (int[]){0, 1, 2}, B, batched);  // padded to 5
    ck_assert_int_eq(tu_compare("alone vs batched", batched + T * VT, alone, T * VT, 0, 1e-5), 0);
    float last[T * VT];
    serve_logits(&eng_la_s2s_ops, eng_la_as_s2s(m), (int[]){2, 0}, 2, batched);  // another order
    serve_logits(&eng_la_s2s_ops, eng_la_as_s2s(m), (int[]){2}, 1, last);
    ck_assert_int_eq(tu_compare("first of two vs alone", batched, last, T * VT, 0, 1e-5), 0);
    eng_la_destroy(m);
}
END_TEST

START_TEST(test_save_load) {
    eng_la *m = tiny(9);
    char *dir = tu_temp_dir("la_test"), path[512], *err = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(eng_la_save(m, path, &err) == 0, "%s", err);
    json_t *cfg = eng_la_config_to_json(&m->cfg);
    eng_la *l;
    ck_assert_msg(eng_la_load_dir(&l, dir, cfg, &err) == 0, "%s", err);
    ck_assert_int_eq(l->n_params, m->n_params);
    for (int i = 0; i < m->n_tensors; i++)
        ck_assert_int_eq(memcmp(l->tensors[i].val, m->tensors[i].val, m->tensors[i].n * sizeof(float)), 0);
    ck_assert_int_eq(eng_la_s2s_ops.info(eng_la_as_s2s(l)).n_params, m->n_params);
    // a config that disagrees with the file is refused, naming the tensor
    json_object_set_new(cfg, "hidden_size", json_integer(8));
    eng_la *l2 = NULL;
    ck_assert_int_ne(eng_la_load_dir(&l2, dir, cfg, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "weight"));
    free(err);
    err = NULL;
    json_object_set_new(cfg, "hidden_size", json_integer(7));
    eng_la *bad = NULL;
    ck_assert_int_ne(eng_la_load_dir(&bad, dir, cfg, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "even"));
    free(err);
    json_decref(cfg);
    eng_la_destroy(l);
    eng_la_destroy(m);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

// ---------------------------------------------------------------- the PyTorch reference
#define REF_DIR "tests/ref/lstm_attention_ref"

static int *json_ints(const json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int *v = malloc((size_t)(*n ? *n : 1) * sizeof(int));
    for (int i = 0; i < *n; i++) v[i] = (int)json_integer_value(json_array_get(a, (size_t)i));
    return v;
}

// All reference sources in ONE padded batch: teacher-forced logits through the
// serving ops and through the training forward, then greedy eng_translate.
START_TEST(test_pytorch_reference) {
    eng_model *m;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, REF_DIR, &err) == 0, "%s", err);
    ck_assert_ptr_nonnull(m->s2s);
    json_t *ref = tu_load_json(REF_DIR "/ref.json");
    const json_t *js = json_object_get(ref, "sources"), *jt = json_object_get(ref, "tgt_in"),
                 *jl = json_object_get(ref, "logits");
    int NB = (int)json_array_size(js), V = (int)json_array_size(json_array_get(json_array_get(jl, 0), 0));
    ck_assert_int_eq(NB, 4);
    ck_assert_int_eq(V, eng_la_s2s_ops.info(m->s2s).tgt_vocab);
    int *rsrc[4], n_src[4], *tin[4], n_tin[4], Smax = 0, Tn = 0;
    for (int b = 0; b < NB; b++) {
        rsrc[b] = json_ints(json_array_get(js, (size_t)b), &n_src[b]);
        tin[b] = json_ints(json_array_get(jt, (size_t)b), &n_tin[b]);
        Smax = n_src[b] > Smax ? n_src[b] : Smax;
        Tn = n_tin[b];
    }
    float *want = malloc((size_t)NB * Tn * V * sizeof(float)), *got = malloc((size_t)NB * Tn * V * sizeof(float));
    for (int b = 0; b < NB; b++)
        for (int t = 0; t < Tn; t++)
            for (int v = 0; v < V; v++)
                want[((size_t)b * Tn + t) * V + v] =
                    (float)json_real_value(json_array_get(json_array_get(json_array_get(jl, (size_t)b), (size_t)t), (size_t)v));
    // serving: encode the batch, step the four hypotheses together
    const eng_s2s_ops *ops = m->arch->s2s;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_s2s_mem *mem = ops->encode(m->s2s, &t, (const int *const *)rsrc, n_src, NB);
    eng_s2s_dec *decs[4];
    for (int b = 0; b < NB; b++) decs[b] = ops->dec_new(m->s2s, mem, b, Tn);
    float lg[4 * 64];
    for (int j = 0; j < Tn; j++) {
        int tok[4];
        for (int b = 0; b < NB; b++) tok[b] = tin[b][j];
        ops->step(m->s2s, &t, decs, tok, NB, lg);
        for (int b = 0; b < NB; b++) memcpy(got + ((size_t)b * Tn + j) * V, lg + (size_t)b * V, (size_t)V * sizeof(float));
    }
    ck_assert_int_eq(tu_compare("serving vs PyTorch", got, want, (size_t)NB * Tn * V, 1e-4, 1e-5), 0);
    for (int b = 0; b < NB; b++) ops->dec_free(decs[b]);
    ops->mem_free(mem);
    // training forward on the padded batch
    int *psrc = calloc((size_t)NB * Smax, sizeof(int)), *ptin = calloc((size_t)NB * Tn, sizeof(int));
    for (int b = 0; b < NB; b++) {
        memcpy(psrc + (size_t)b * Smax, rsrc[b], (size_t)n_src[b] * sizeof(int));
        memcpy(ptin + (size_t)b * Tn, tin[b], (size_t)Tn * sizeof(int));
    }
    eng_la *la = (eng_la *)m->s2s;
    eng_tape_reset(&t);
    eng_var *tl = eng_la_logits(la, &t, eng_la_forward(la, &t, psrc, n_src, NB, Smax, ptin, Tn));
    ck_assert_int_eq(tu_compare("training forward vs PyTorch", tl->val, want, (size_t)NB * Tn * V, 1e-4, 1e-5), 0);
    // greedy search through eng_translate
    int max_tokens = (int)json_integer_value(json_object_get(ref, "max_tokens"));
    eng_translate_opts o = {.beam_size = 1, .max_tokens = max_tokens, .length_penalty = 1.0f};
    eng_translation tr[4];
    ck_assert_int_eq(eng_translate(ops, m->s2s, &t, (const int *const *)rsrc, n_src, NB, &o, tr), 0);
    for (int b = 0; b < NB; b++) {
        int n;
        int *g = json_ints(json_array_get(json_object_get(ref, "greedy"), (size_t)b), &n);
        ck_assert_int_eq(tr[b].n, n);
        for (int i = 0; i < n; i++) ck_assert_int_eq(tr[b].ids[i], g[i]);
        ck_assert_int_eq(tr[b].finished, json_is_true(json_array_get(json_object_get(ref, "finished"), (size_t)b)));
        free(g);
        free(tr[b].ids);
    }
    // the text path: characters -> ids ending with the source EOS; too long -> refused
    int *ids, n_ids;
    ck_assert_int_eq(eng_model_text_ids(m, "abc", 3, &ids, &n_ids, &err), 0);
    ck_assert_int_eq(n_ids, 4);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[3], 2);
    free(ids);
    char longtext[64];
    memset(longtext, 'a', sizeof longtext);
    ck_assert_int_eq(eng_model_text_ids(m, longtext, sizeof longtext, &ids, &n_ids, &err), ENG_TOK_E_TOO_LONG);
    free(err);
    for (int b = 0; b < NB; b++) { free(rsrc[b]); free(tin[b]); }
    free(psrc); free(ptin); free(want); free(got);
    eng_tape_free(&t);
    json_decref(ref);
    eng_model_free(m);
}
END_TEST

// sacrebleu 2.x CHRF() (char_order 6, beta 2, whitespace removed): the
// example of the Hugging Face chrF metric card, 61.576379378113785.
START_TEST(test_chrf) {
    const char *hyp[] = {"The relationship between Obama and Netanyahu is not exactly friendly."};
    const char *ref[] = {"The ties between Obama and Netanyahu are not particularly friendly."};
    ck_assert_msg(fabs(eng_chrf(hyp, ref, 1) - 61.576379378113785) < 1e-9, "chrF %.12f", eng_chrf(hyp, ref, 1));
    const char *same[] = {"Haus", "guten Morgen"};
    ck_assert_double_eq_tol(eng_chrf(same, same, 2), 100.0, 1e-9);
    const char *none[] = {"xyz"}, *r1[] = {"abc"};
    ck_assert_double_eq_tol(eng_chrf(none, r1, 1), 0.0, 1e-12);
    // "ab" vs "abc": orders 1 and 2 present; P = (1 + 1)/2, R = (2/3 + 1/2)/2; F2 = 5PR/(4P + R)
    const char *h2[] = {"a b"}, *r2[] = {"abc"};
    double P = 1.0, R = (2.0 / 3 + 0.5) / 2;
    ck_assert_double_eq_tol(eng_chrf(h2, r2, 1), 100 * 5 * P * R / (4 * P + R), 1e-9);
}
END_TEST

// The trainer end to end on "reverse a string of a-h": 600 steps must give
// (nearly) every held-out string reversed exactly by greedy decoding.
START_TEST(test_train_reverse) {
    char *dir = tu_temp_dir("la_train"), data[512], out[512], held[600], *err = NULL;
    snprintf(data, sizeof data, "%s/rev.tsv", dir);
    snprintf(out, sizeof out, "%s/model", dir);
    FILE *f = fopen(data, "w");
    eng_rng rng;
    eng_rng_seed(&rng, 42);
    for (int i = 0; i < 4000; i++) {
        char s[16];
        int n = 3 + (int)eng_rng_below(&rng, 5);
        for (int k = 0; k < n; k++) s[k] = (char)('a' + eng_rng_below(&rng, 8));
        s[n] = 0;
        fputs(s, f);
        fputc('\t', f);
        for (int k = n - 1; k >= 0; k--) fputc(s[k], f);
        fputc('\n', f);
    }
    fclose(f);
    eng_train_opts o;
    eng_train_opts_init(&o);
    o.task = "translation";
    o.arch = "lstm-attention";
    o.data = data;
    o.out = out;
    o.dim = 64;
    o.steps = 600;
    o.batch_size = 32;
    o.lr = 5e-3f;
    o.log_every = 1000;
    ck_assert_msg(eng_train(&o, &err) == 0, "%s", err);
    snprintf(held, sizeof held, "%s/heldout.tsv", out);
    double chrf, exact;
    long n;
    ck_assert_msg(eng_eval_translation(out, held, &chrf, &exact, &n, &err) == 0, "%s", err);
    fprintf(stderr, "reverse task: %ld held-out pairs, chrF2 %.2f, exact match %.4f\n", n, chrf, exact);
    ck_assert_int_ge(n, 40);
    ck_assert_msg(exact >= 0.9 && chrf >= 95, "exact %.3f chrF %.2f", exact, chrf);
    // a model of another task: 1 (the caller falls back to eng_eval)
    ck_assert_int_eq(eng_eval_translation("models/fashion-cnn", held, &chrf, &exact, &n, &err), 1);
    // a bad TSV
    f = fopen(data, "w");
    fputs("abc\tcba\nno tab here\n", f);
    fclose(f);
    ck_assert_int_ne(eng_eval_translation(out, data, &chrf, &exact, &n, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, ":2:"));
    free(err);
    err = NULL;
    ck_assert_int_ne(eng_train(&o, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "source<TAB>target"));
    free(err);
    const char *files[] = {"config.json", "model.safetensors", "source_vocab.json", "target_vocab.json", "heldout.tsv", "README.md"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        ck_assert_int_eq(unlink(p), 0);
    }
    rmdir(out);
    unlink(data);
    rmdir(dir);
    free(dir);
}
END_TEST

static Suite *la_suite(void) {
    Suite *s = suite_create("lstm_attention");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_serving_matches_training);
    tcase_add_test(tc, test_batch_invariance);
    tcase_add_test(tc, test_save_load);
    tcase_add_test(tc, test_pytorch_reference);
    tcase_add_test(tc, test_chrf);
    tcase_add_test(tc, test_train_reverse);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(la_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
