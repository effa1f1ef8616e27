// test_quantize.c — int8 transformers (engine/arch/transformer_quantize.c and
// the int8 path of transformer.c): eng_tf_quantize_dir on the tiny GPT-2 of
// tests/ref and on a llama2.c checkpoint written here; the quantized model's
// logits close to the fp32 model's through prefill and decode; batch
// invariance bit for bit on every int8 kernel the CPU runs; the written
// files; loader and quantizer errors. Run from the repository root.
#include "engine/arch/transformer.h"

#include <check.h>              // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_temp_dir, tu_fill
#include <jansson.h>            // json_load_file
#include <math.h>               // sqrt
#include <stdio.h>              // fopen, fwrite
#include <stdlib.h>             // free, system
#include <string.h>             // strstr, memcmp
#include <sys/stat.h>           // stat
#include "engine/core/gemm_q8.h"     // eng_q8_set_isa
#include "engine/core/pool.h"        // eng_pool_start: columns split across threads
#include "engine/io/safetensors.h"   // inspecting and rewriting files
#include "engine/core/util.h"        // eng_xmalloc

#define GPT2_DIR "tests/ref/transformer_ref/gpt2"

static void rm_rf(const char *d) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    ck_assert_int_eq(system(cmd), 0);
}

static eng_transformer *load(const char *dir) {
    char path[600], *err = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = tu_load_json(path);
    eng_transformer *m = NULL;
    int rc = eng_tf_load_dir(&m, dir, cfg, &err);
    ck_assert_msg(rc == 0, "%s: %s", dir, err ? err : "");
    json_decref(cfg);
    return m;
}

// A llama2.c legacy checkpoint with random weights: dim 64, hidden 96 (a
// multiple of 32, not of 64), 2 layers, 4 heads / 2 kv heads, vocab 67
// (unshared classifier), seq_len 32.
static void write_llama2c(const char *dir) {
    enum { C = 64, H = 96, L = 2, NH = 4, NKV = 2, V = 67, T = 32, HD = C / NH };
    char path[600];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    int32_t h[7] = {C, H, L, NH, NKV, -V, T};
    fwrite(h, sizeof h, 1, f);
    size_t n = (size_t)V * C + L * C + L * C * C + 2 * L * NKV * HD * C + L * C * C + L * C + 3 * L * H * C + C +
               (size_t)T * HD + (size_t)V * C;
    float *w = eng_xmalloc(n * sizeof(float));
    tu_rng_state = 42;
    tu_fill(w, n, -0.08f, 0.08f);
    // norm gains near 1 (rms_att, rms_ffn, rms_final), as trained models have
    size_t at = (size_t)V * C;
    for (size_t i = 0; i < (size_t)L * C; i++) w[at + i] = 1.0f + w[at + i];
    at += L * C + L * C * C + 2 * L * NKV * HD * C + L * C * C;
    for (size_t i = 0; i < (size_t)L * C; i++) w[at + i] = 1.0f + w[at + i];
    at += L * C + 3 * L * H * C;
    for (size_t i = 0; i < C; i++) w[at + i] = 1.0f + w[at + i];
    fwrite(w, sizeof(float), n, f);
    fclose(f);
    free(w);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    fputs("{\"format\": \"llama2c\"}\n", f);
    fclose(f);
}

// Logits of one sequence: a prefill of 9 tokens, then 4 decode steps -> out[5, V].
static void run_seq(eng_transformer *m, float *out) {
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_lm *lm = eng_tf_as_lm(m);
    int V = m->cfg.vocab_size;
    eng_lm_seq *s = ops->seq_new(lm, 16);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    int prompt[9] = {3, 14, 15, 9, 2, 6, 5, 35, 8};
    int nt = 9;
    const int *tp = prompt;
    ops->step(lm, &t, &s, &tp, &nt, 1, out);
    for (int i = 1; i <= 4; i++) {
        int tok = (7 * i + 11) % V, one = 1;
        const int *tk = &tok;
        ops->step(lm, &t, &s, &tk, &one, 1, out + (size_t)i * V);
    }
    ops->seq_free(s);
    eng_tape_free(&t);
}

// ||a - b|| / ||b||
static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        nb += (double)b[i] * b[i];
    }
    return sqrt(e / nb);
}

// Quantizes `src` with `group` into a temp dir; the int8 model's logits
// against the fp32 one's (relative error below `tol`); returns the dir.
static char *quantize_and_compare(const char *src, int group, double tol, int *n_q8) {
    char *out = tu_temp_dir("inferd_q8");
    char *err = NULL;
    eng_tf_quant_report r;
    int rc = eng_tf_quantize_dir(src, out, group, &r, &err);
    ck_assert_msg(rc == 0, "quantize %s: %s", src, err ? err : "");
    ck_assert_int_eq(r.group, group);
    *n_q8 = r.n_quantized;
    eng_transformer *f32 = load(src), *q8 = load(out);
    ck_assert_int_eq(q8->q8_group, group);
    ck_assert_int_eq(f32->q8_group, 0);
    size_t n = 5 * (size_t)f32->cfg.vocab_size;
    float *a = eng_xmalloc(n * sizeof(float)), *b = eng_xmalloc(n * sizeof(float));
    run_seq(f32, a);
    run_seq(q8, b);
    double e = rel_err(b, a, n);
    fprintf(stderr, "test_quantize: %s, groups of %d: logits relative error %.4f\n", src, group, e);
    ck_assert_msg(e < tol && e > 0, "%s: relative error %g", src, e);   // > 0: the int8 path really ran
    free(a); free(b);
    eng_tf_destroy(f32);
    eng_tf_destroy(q8);
    return out;
}

START_TEST(test_gpt2_close_to_fp32) {
    int nq;
    char *out = quantize_and_compare(GPT2_DIR, 32, 0.03, &nq);
    ck_assert_int_eq(nq, 1 + 2 * 4);   // wte (also the head), per layer c_attn, c_proj, c_fc, mlp.c_proj
    // the files: I8 matrices [out, in] with F32 scales, fp32 positions and norms, "quantization"
    char path[600], *err = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    eng_st_file f;
    ck_assert_int_eq(eng_st_open(&f, path, &err), 0);
    const eng_st_tensor *t = eng_st_find(&f, "h.0.attn.c_attn.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->dtype, "I8");
    ck_assert_int_eq(t->shape[0], 96);   // [3C, C]: Conv1D's [in, out] transposed
    ck_assert_int_eq(t->shape[1], 32);
    t = eng_st_find(&f, "h.0.attn.c_attn.weight_scale");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->dtype, "F32");
    ck_assert_int_eq(t->shape[1], 1);
    ck_assert_str_eq(eng_st_find(&f, "wpe.weight")->dtype, "F32");
    ck_assert_str_eq(eng_st_find(&f, "h.1.ln_2.bias")->dtype, "F32");
    eng_st_close(&f);
    snprintf(path, sizeof path, "%s/config.json", out);
    json_t *cfg = tu_load_json(path);
    json_t *q = json_object_get(cfg, "quantization");
    ck_assert_int_eq(json_integer_value(json_object_get(q, "group_size")), 32);
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "model_type")), "gpt2");
    json_decref(cfg);
    // quantizing it again is refused
    char *again = tu_temp_dir("inferd_q8b");
    eng_tf_quant_report r;
    ck_assert_int_eq(eng_tf_quantize_dir(out, again, 32, &r, &err), -1);
    ck_assert_msg(strstr(err, "already quantized"), "%s", err);
    free(err);
    rm_rf(again);
    free(again);
    rm_rf(out);
    free(out);
}
END_TEST

START_TEST(test_llama2c_close_to_fp32) {
    char *src = tu_temp_dir("inferd_l2c");
    write_llama2c(src);
    int nq;
    char *out = quantize_and_compare(src, 32, 0.03, &nq);
    ck_assert_int_eq(nq, 2 + 2 * 7);   // embedding, lm_head, 7 per layer
    rm_rf(out);
    free(out);
    // groups of 64: down_proj (96 wide) stays fp32, the rest int8
    out = quantize_and_compare(src, 64, 0.03, &nq);
    ck_assert_int_eq(nq, 2 + 2 * 6);
    eng_transformer *m = load(out);
    ck_assert_ptr_null(m->layers[0].qw2.q);
    ck_assert_ptr_nonnull(m->layers[0].w2.val);
    ck_assert_ptr_nonnull(m->layers[0].qw3.q);
    ck_assert_ptr_nonnull(m->qhead.q);
    ck_assert_int_eq(m->cfg.rope_interleaved, 0);   // written in Hugging Face order
    eng_tf_destroy(m);
    rm_rf(out);
    free(out);
    rm_rf(src);
    free(src);
}
END_TEST

// Sequence A's logits alone == A's logits in a step with B (prefill) and C
// (decode), bit for bit, on every int8 kernel and with the linears split
// across 2 and 3 pool threads; A's rows also sit at different offsets of the
// stacked matrix; every kernel and split gives the C kernel's bits.
START_TEST(test_batch_invariance) {
    char *src = tu_temp_dir("inferd_l2c");
    write_llama2c(src);
    char *out = tu_temp_dir("inferd_q8");
    char *err = NULL;
    eng_tf_quant_report r;
    ck_assert_int_eq(eng_tf_quantize_dir(src, out, 32, &r, &err), 0);
    eng_transformer *m = load(out);
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_lm *lm = eng_tf_as_lm(m);
    int V = m->cfg.vocab_size;
    float *alone = eng_xmalloc(2 * (size_t)V * sizeof(float)), *mixed = eng_xmalloc(3 * (size_t)V * sizeof(float));
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    int pa[6] = {1, 2, 3, 4, 5, 6}, pb[5] = {9, 8, 7, 6, 5}, pc[3] = {11, 12, 13};
    float *first = eng_xmalloc(2 * (size_t)V * sizeof(float));   // one thread, the C kernel
    double min_flops = eng_pool_min_flops();
    eng_pool_set_min_flops(0);   // every linear split, however small
    // every kernel on one thread, then the default kernel with the columns split over 2 and 3 threads
    for (int run = 0; run < ENG_Q8__COUNT + 2; run++) {
        int isa = run < ENG_Q8__COUNT ? run : (int)ENG_Q8_C, threads = run < ENG_Q8__COUNT ? 1 : run - ENG_Q8__COUNT + 2;
        if (run < ENG_Q8__COUNT && eng_q8_set_isa((eng_q8_isa_t)isa) != 0) continue;
        if (run >= ENG_Q8__COUNT) {
            eng_q8_reset_isa();
            isa = eng_q8_isa();
        }
        eng_pool_stop();
        ck_assert_int_eq(eng_pool_start(threads), 0);
        // alone: prefill 5, decode 1
        eng_lm_seq *a = ops->seq_new(lm, 16);
        int n5 = 5, n1 = 1;
        const int *ta = pa;
        ops->step(lm, &t, &a, &ta, &n5, 1, alone);
        ta = pa + 5;
        ops->step(lm, &t, &a, &ta, &n1, 1, alone + V);
        ops->seq_free(a);
        // mixed: C (prefill 2) first; then B prefills 5 while A prefills 5 and C decodes; then A decodes beside B
        a = ops->seq_new(lm, 16);
        eng_lm_seq *b = ops->seq_new(lm, 16), *c = ops->seq_new(lm, 16);
        int n2 = 2;
        const int *tc = pc;
        ops->step(lm, &t, &c, &tc, &n2, 1, mixed);
        eng_lm_seq *s3[3] = {b, a, c};
        const int *t3[3] = {pb, pa, pc + 2};
        int nn[3] = {5, 5, 1};
        ops->step(lm, &t, s3, t3, nn, 3, mixed);
        ck_assert_msg(memcmp(mixed + V, alone, (size_t)V * sizeof(float)) == 0, "%s: prefill differs batched",
                      eng_q8_isa_name((eng_q8_isa_t)isa));
        eng_lm_seq *s2[2] = {a, b};
        const int *t2[2] = {pa + 5, pb};
        int n11[2] = {1, 1};
        ops->step(lm, &t, s2, t2, n11, 2, mixed);
        ck_assert_msg(memcmp(mixed, alone + V, (size_t)V * sizeof(float)) == 0, "%s: decode differs batched",
                      eng_q8_isa_name((eng_q8_isa_t)isa));
        // and the same bits on every kernel and split as the C kernel on one thread
        if (run == 0) memcpy(first, alone, 2 * (size_t)V * sizeof(float));
        ck_assert_msg(memcmp(first, alone, 2 * (size_t)V * sizeof(float)) == 0, "%s, %d thread(s): differs from c",
                      eng_q8_isa_name((eng_q8_isa_t)isa), threads);
        ops->seq_free(a);
        ops->seq_free(b);
        ops->seq_free(c);
    }
    eng_q8_reset_isa();
    eng_pool_stop();
    eng_pool_set_min_flops(min_flops);
    eng_tape_free(&t);
    free(first);
    free(alone);
    free(mixed);
    eng_tf_destroy(m);
    rm_rf(out);
    free(out);
    rm_rf(src);
    free(src);
}
END_TEST

// A file whose int8 tensor lacks its scales, or whose scales imply a group
// size the kernels lack, is refused with a message; so are bad quantizer inputs.
START_TEST(test_errors) {
    char *out = tu_temp_dir("inferd_q8");
    char *err = NULL;
    eng_tf_quant_report r;
    ck_assert_int_eq(eng_tf_quantize_dir(GPT2_DIR, out, 32, &r, &err), 0);
    char path[1400];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    eng_st_file f;
    ck_assert_int_eq(eng_st_open(&f, path, &err), 0);
    for (int drop = 0; drop < 2; drop++) {
        eng_st_entry *e = calloc((size_t)f.n, sizeof *e);
        float *odd = NULL;
        int n = 0;
        for (int i = 0; i < f.n; i++) {
            const eng_st_tensor *t = &f.tensors[i];
            if (strcmp(t->name, "h.1.mlp.c_fc.weight_scale") == 0 && drop == 0) continue;
            e[n] = (eng_st_entry){.name = t->name, .ndim = t->ndim};
            for (int d = 0; d < t->ndim; d++) e[n].shape[d] = t->shape[d];
            if (strcmp(t->dtype, "I8") == 0) e[n].i8 = t->raw;
            else e[n].data = t->data;
            if (drop == 1 && strcmp(t->name, "h.1.mlp.c_fc.weight_scale") == 0) {   // 2 scales per row: groups of 16
                e[n].shape[1] = 2;
                odd = calloc((size_t)t->shape[0] * 2, sizeof(float));
                e[n].data = odd;
            }
            n++;
        }
        char bad[600];
        snprintf(bad, sizeof bad, "%s/bad", out);
        mkdir(bad, 0755);
        snprintf(path, sizeof path, "%s/model.safetensors", bad);
        ck_assert_int_eq(eng_st_write(path, e, n, NULL, &err), 0);
        snprintf(path, sizeof path, "cp %s/config.json %s/config.json", out, bad);
        ck_assert_int_eq(system(path), 0);
        snprintf(path, sizeof path, "%s/config.json", bad);
        json_t *cfg = tu_load_json(path);
        eng_transformer *m = NULL;
        ck_assert_int_eq(eng_tf_load_dir(&m, bad, cfg, &err), -1);
        ck_assert_msg(strstr(err, drop == 0 ? "needs \"h.1.mlp.c_fc.weight_scale\"" : "group size 16"), "%s", err);
        free(err);
        err = NULL;
        json_decref(cfg);
        free(e);
        free(odd);
    }
    eng_st_close(&f);
    // quantizer inputs
    ck_assert_int_eq(eng_tf_quantize_dir("/nonexistent/model", out, 32, &r, &err), -1);
    ck_assert_msg(strstr(err, "No such file"), "%s", err);
    free(err);
    ck_assert_int_eq(eng_tf_quantize_dir(GPT2_DIR, out, 48, &r, &err), -1);
    ck_assert_msg(strstr(err, "32 or 64"), "%s", err);
    free(err);
    ck_assert_int_eq(eng_tf_quantize_dir("tests/ref/lstm_ref/tied", out, 32, &r, &err), -1);   // an LSTM
    ck_assert_msg(strstr(err, "not a model `inferd quantize` handles"), "%s", err);
    free(err);
    ck_assert_int_eq(eng_tf_quantize_dir(GPT2_DIR, GPT2_DIR, 32, &r, &err), -1);
    ck_assert_msg(strstr(err, "must differ"), "%s", err);
    free(err);
    rm_rf(out);
    free(out);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("int8");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gpt2_close_to_fp32);
    tcase_add_test(tc, test_llama2c_close_to_fp32);
    tcase_add_test(tc, test_batch_invariance);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
