// test_fasttext.c — engine/arch/fasttext.c and the text-classification
// trainer: the features (n-gram count and hashes as fasttext.h defines them,
// case folding, separators, invalid UTF-8, limits), the SGD step against
// central finite differences of an independent double-precision loss, and
// training on a small synthetic dataset (loss falls, held-out accuracy,
// the written model loads and classifies through eng_model).
#include "engine/arch/fasttext.h"

#include <check.h>            // Check unit-test framework
#include <math.h>             // exp, log, fabs
#include <stdio.h>            // fopen, fprintf
#include <stdlib.h>           // free, mkdtemp
#include <string.h>           // strcmp, memcmp
#include "engine/arch/model.h"        // eng_model_load, eng_model_text_ids
#include "engine/core/rng.h"          // eng_rng
#include "engine/core/util.h"         // eng_read_file
#include "engine/text/tokenizer.h"    // ENG_TOK_E_TOO_LONG
#include "engine/train/train.h"       // eng_train, eng_eval_text

static eng_fasttext make(int dim, int buckets, int minn, int maxn, int n_labels, int max_ids) {
    eng_fasttext ft;
    json_t *cfg = json_pack("{s:i,s:i,s:i,s:i,s:i}", "dim", dim, "buckets", buckets, "minn", minn, "maxn", maxn,
                            "max_text_ids", max_ids);
    char *err = NULL;
    ck_assert_msg(eng_ft_init(&ft, cfg, n_labels, &err) == 0, "init: %s", err);
    json_decref(cfg);
    return ft;
}

static uint32_t fnv(uint32_t h, const char *s) {
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 16777619u; }
    return h;
}

static int features(const eng_fasttext *ft, const char *s, size_t len, int **ids, int *n) {
    char *err = NULL;
    int rc = eng_ft_features(ft, s, len, ids, n, &err);
    free(err);
    return rc;
}

// ---------------------------------------------------------------- features
START_TEST(test_feature_count_and_hashes) {
    eng_fasttext ft = make(4, 1000003, 1, 4, 2, 0);
    int *ids, n;
    ck_assert_int_eq(features(&ft, "Hello", 5, &ids, &n), 0);
    // "<hello>" has 7 codepoints: n-grams of 1..4 starting at each = 4+4+4+4+3+2+1 = 22,
    // minus the bare "<" and ">" = 20, plus the word = 21
    ck_assert_int_eq(n, 21);
    ck_assert_int_eq(ids[0], (int)(fnv(2166136261u ^ 0x9747b28cu, "hello") % 1000003u));   // the word
    ck_assert_int_eq(ids[1], (int)(fnv(2166136261u, "<h") % 1000003u));                     // i=0: n=1 skipped
    ck_assert_int_eq(ids[2], (int)(fnv(2166136261u, "<he") % 1000003u));
    ck_assert_int_eq(ids[3], (int)(fnv(2166136261u, "<hel") % 1000003u));
    ck_assert_int_eq(ids[4], (int)(fnv(2166136261u, "h") % 1000003u));
    ck_assert_int_eq(ids[20], (int)(fnv(2166136261u, "o>") % 1000003u));                     // last: ">" alone skipped
    // case, punctuation, digits and spacing do not change the features
    int *ids2, n2;
    ck_assert_int_eq(features(&ft, "  HELLO, 42 hello!!", 19, &ids2, &n2), 0);
    ck_assert_int_eq(n2, 42);
    ck_assert_mem_eq(ids2, ids, 21 * sizeof(int));
    ck_assert_mem_eq(ids2 + 21, ids, 21 * sizeof(int));
    free(ids); free(ids2);
}
END_TEST

START_TEST(test_feature_case_folding_and_scripts) {
    eng_fasttext ft = make(4, 131072, 1, 4, 2, 0);
    const char *pairs[][2] = {{"ÄÖÜ ŁÓDŹ ŽLUŤOUČKÝ", "äöü łódź žluťoučký"}, {"ДОМ ЁЛКА", "дом ёлка"},
                              {"ΑΘΗΝΑ", "αθηνα"}, {"Straße", "straße"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int *a, na, *b, nb;
        ck_assert_int_eq(features(&ft, pairs[i][0], strlen(pairs[i][0]), &a, &na), 0);
        ck_assert_int_eq(features(&ft, pairs[i][1], strlen(pairs[i][1]), &b, &nb), 0);
        ck_assert_msg(na == nb && memcmp(a, b, (size_t)na * sizeof(int)) == 0, "%s vs %s", pairs[i][0], pairs[i][1]);
        free(a); free(b);
    }
    // Chinese: one run of letters is one word; 4 characters -> 6 codepoints with markers
    int *c, nc;
    ck_assert_int_eq(features(&ft, "这是测试", strlen("这是测试"), &c, &nc), 0);
    ck_assert_int_eq(nc, 1 + (4 + 4 + 4 + 3 + 2 + 1) - 2);
    free(c);
}
END_TEST

START_TEST(test_feature_invalid_utf8_and_limits) {
    eng_fasttext ft = make(4, 4096, 2, 3, 2, 50);
    int *a, na, *b, nb;
    ck_assert_int_eq(features(&ft, "ab\xff" "cd", 5, &a, &na), 0);   // an invalid byte separates
    ck_assert_int_eq(features(&ft, "ab cd", 5, &b, &nb), 0);
    ck_assert_int_eq(na, nb);
    ck_assert_mem_eq(a, b, (size_t)na * sizeof(int));
    free(a); free(b);
    char *err = NULL;
    int *ids = (int *)1, n = 7;
    ck_assert_int_eq(eng_ft_features(&ft, "12 + 34 = 46!", 13, &ids, &n, &err), -1);   // no letters
    ck_assert_ptr_null(ids);
    ck_assert_ptr_nonnull(err);
    free(err); err = NULL;
    ck_assert_int_eq(eng_ft_features(&ft, "", 0, &ids, &n, &err), -1);
    free(err); err = NULL;
    const char *longtext = "many words make many features, more than fifty of them for sure";
    ck_assert_int_eq(eng_ft_features(&ft, longtext, strlen(longtext), &ids, &n, &err), ENG_TOK_E_TOO_LONG);
    ck_assert_ptr_null(ids);
    ck_assert_ptr_nonnull(err);
    free(err);
    // random bytes never crash and every id is a bucket
    eng_rng r;
    eng_rng_seed(&r, 7);
    eng_fasttext big = make(4, 4096, 1, 5, 2, 0);
    char buf[300];
    for (int it = 0; it < 2000; it++) {
        size_t len = (size_t)eng_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < len; i++) buf[i] = (char)eng_rng_below(&r, 256);
        int rc = features(&big, buf, len, &ids, &n);
        ck_assert(rc == 0 || rc == -1);
        for (int i = 0; rc == 0 && i < n; i++) ck_assert(ids[i] >= 0 && ids[i] < 4096);
        if (rc == 0) free(ids);
    }
}
END_TEST

// ---------------------------------------------------------------- gradient
// The loss in double precision, written from the definition (not from fasttext.c).
static double ref_loss(const eng_fasttext *ft, const int *ids, int n, int y) {
    double h[16] = {0}, z[8], mx = -1e300, sum = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ft->dim; k++) h[k] += ft->emb[ids[i] * ft->dim + k] / n;
    for (int c = 0; c < ft->n_labels; c++) {
        z[c] = ft->out_b[c];
        for (int k = 0; k < ft->dim; k++) z[c] += (double)ft->out_w[c * ft->dim + k] * h[k];
        if (z[c] > mx) mx = z[c];
    }
    for (int c = 0; c < ft->n_labels; c++) sum += exp(z[c] - mx);
    return -(z[y] - mx - log(sum));
}

START_TEST(test_gradient_matches_finite_differences) {
    eng_fasttext ft = make(5, 11, 1, 3, 3, 0);
    ck_assert_int_eq(eng_ft_alloc(&ft, 3), 0);
    eng_rng r;
    eng_rng_seed(&r, 11);
    size_t np = eng_ft_n_params(&ft);
    for (size_t i = 0; i < np; i++) ft.owned[i] = eng_rng_normal(&r) * 0.5f;   // output non-zero too
    const int ids[] = {2, 7, 2, 0, 10, 7, 2};   // repeated rows accumulate
    int n = 7, y = 1;
    float *before = malloc(np * sizeof(float)), *grad = malloc(np * sizeof(float));
    memcpy(before, ft.owned, np * sizeof(float));
    // the SGD step moves every parameter by -lr * gradient
    const float lr = 1e-2f;
    double loss = ref_loss(&ft, ids, n, y);
    float got_loss = eng_ft_sgd_step(&ft, ids, n, y, lr);
    ck_assert_msg(fabs(got_loss - loss) < 1e-5 * (1 + loss), "loss %g vs %g", (double)got_loss, loss);
    for (size_t i = 0; i < np; i++) grad[i] = (before[i] - ft.owned[i]) / lr;
    memcpy(ft.owned, before, np * sizeof(float));
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        float keep = ft.owned[i];
        const float eps = 1e-2f;
        ft.owned[i] = keep + eps;
        double lp = ref_loss(&ft, ids, n, y);
        ft.owned[i] = keep - eps;
        double lm = ref_loss(&ft, ids, n, y);
        ft.owned[i] = keep;
        double fd = (lp - lm) / (2.0 * (double)eps);
        if (fabs(fd - grad[i]) > 2e-3 * fabs(fd) + 2e-4) {
            if (bad++ < 5) fprintf(stderr, "param %zu: sgd gradient %g, finite difference %g\n", i, (double)grad[i], fd);
        }
    }
    ck_assert_int_eq(bad, 0);
    // an untouched row (id 5) has no gradient; a touched one (id 2) has
    for (int k = 0; k < ft.dim; k++) ck_assert(grad[5 * ft.dim + k] == 0.0f);
    ck_assert(fabs(grad[2 * ft.dim]) > 0);
    free(before); free(grad);
    eng_ft_free(&ft);
}
END_TEST

// ---------------------------------------------------------------- training
// Three made-up "languages" with their own syllables, and shared noise words.
static void write_lang_tsv(const char *path, int n, uint64_t seed) {
    static const char *const syl[3][6] = {{"ka", "lo", "mi", "nu", "pe", "ri"},
                                          {"tur", "sen", "dax", "vol", "gir", "hem"},
                                          {"ész", "öly", "ász", "üré", "győ", "szé"}};
    static const char *const noise[] = {"ok", "la", "de", "internet", "linux"};
    static const char *const names[] = {"aa", "bb", "cc"};
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    eng_rng r;
    eng_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int y = (int)eng_rng_below(&r, 3), words = 2 + (int)eng_rng_below(&r, 5);
        fprintf(f, "%s\t", names[y]);
        for (int w = 0; w < words; w++) {
            if (eng_rng_below(&r, 4) == 0) fprintf(f, "%s", noise[eng_rng_below(&r, 5)]);
            else for (int s = 1 + (int)eng_rng_below(&r, 3); s > 0; s--) fprintf(f, "%s", syl[y][eng_rng_below(&r, 6)]);
            fprintf(f, w + 1 < words ? " " : ".\n");
        }
    }
    fclose(f);
}

typedef struct { float first, last; int reports; } losses;
static void on_progress(void *ctx, const eng_train_progress *p) {
    losses *l = ctx;
    if (p->loss < 0) return;
    if (l->reports++ == 0) l->first = p->loss;
    l->last = p->loss;
}

START_TEST(test_train_lowers_loss_and_classifies) {
    char dir[] = "/tmp/test_fasttext_XXXXXX", path[512], out[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    write_lang_tsv(path, 1500, 1);
    snprintf(path, sizeof path, "%s/test.tsv", dir);
    write_lang_tsv(path, 300, 2);
    snprintf(out, sizeof out, "%s/model", dir);
    eng_train_opts o;
    eng_train_opts_init(&o);
    losses l = {0};
    o.task = "text-classification";
    o.data = dir;
    o.out = out;
    o.epochs = 3;
    o.lr = 0.5f;
    o.dim = 8;
    o.buckets = 4096;
    o.log_every = 250;
    o.progress = on_progress;
    o.progress_ctx = &l;
    char *err = NULL;
    ck_assert_msg(eng_train(&o, &err) == 0, "train: %s", err);
    ck_assert_int_ge(l.reports, 4);
    ck_assert_msg(l.last < 0.5f * l.first, "loss %g -> %g", (double)l.first, (double)l.last);
    eng_eval_report rep;
    ck_assert_msg(eng_eval_text(out, dir, &rep, &err) == 0, "eval: %s", err);
    ck_assert_int_eq(rep.n, 300);
    ck_assert_msg(rep.correct >= 0.95 * rep.n, "held-out accuracy %ld/%ld", rep.correct, rep.n);
    ck_assert_int_eq(rep.n_labels, 3);
    ck_assert_str_eq(rep.labels[0], "aa");
    eng_eval_report_free(&rep);
    // the directory serves: config, labels, text_ids, classify_text
    eng_model *m;
    ck_assert_msg(eng_model_load(&m, out, &err) == 0, "load: %s", err);
    ck_assert_int_eq(m->task, ENG_TASK_TEXT_CLASSIFICATION);
    ck_assert_int_eq(m->n_labels, 3);
    int *ids, n;
    const char *text = "dax volgir senhem";
    ck_assert_int_eq(eng_model_text_ids(m, text, strlen(text), &ids, &n, &err), 0);
    float p[3];
    const int *const iv[1] = {ids};
    m->arch->classify_text(m, NULL, iv, &n, 1, p);
    ck_assert_msg(p[1] > 0.9f && fabs(p[0] + p[1] + p[2] - 1.0) < 1e-5, "p = %g %g %g", p[0], p[1], p[2]);
    free(ids);
    eng_model_free(m);
    // the README records the held-out accuracy
    snprintf(path, sizeof path, "%s/README.md", out);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char buf[4096] = {0};
    ck_assert(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "Held-out accuracy"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *fa = eng_read_file(a, &na, NULL), *fb = eng_read_file(b, &nb, NULL);
    int same = fa && fb && na == nb && memcmp(fa, fb, na) == 0;
    free(fa); free(fb);
    return same;
}

// Checkpoints: a run resumed from its last checkpoint ends with the same
// weights as the unbroken run; fine-tuning from a model directory; the
// dataset check names the bad line.
START_TEST(test_resume_finetune_and_check) {
    char dir[] = "/tmp/test_fasttext_XXXXXX", path[512], a[512], b[512], ck[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/data.tsv", dir);
    write_lang_tsv(path, 400, 3);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(ck, sizeof ck, "%s/ckpt.safetensors", dir);
    eng_train_opts o;
    eng_train_opts_init(&o);
    o.task = "text-classification";
    o.data = path;
    o.out = a;
    o.steps = 1000;
    o.lr = 0.5f;
    o.dim = 4;
    o.buckets = 512;
    o.log_every = 50;
    o.checkpoint_path = ck;
    o.checkpoint_every = 300;   // the last checkpoint: step 900
    losses l1 = {0}, l2 = {0};
    o.progress = on_progress;
    o.progress_ctx = &l1;
    char *err = NULL;
    ck_assert_msg(eng_train(&o, &err) == 0, "train: %s", err);
    o.out = b;
    o.resume = 1;   // continues from step 900 of the same run: reports at 950 and 1000 only
    o.progress_ctx = &l2;
    ck_assert_msg(eng_train(&o, &err) == 0, "resume: %s", err);
    ck_assert_int_ge(l1.reports, 20);
    ck_assert_int_le(l2.reports, 3);
    char fa[600], fb[600];
    snprintf(fa, sizeof fa, "%s/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/model.safetensors", b);
    ck_assert_msg(same_file(fa, fb), "resumed weights differ from the unbroken run's");
    // fine-tuning: labels and sizes from the base; a label it lacks is an error
    o.resume = 0;
    o.checkpoint_path = NULL;
    o.base_model = a;
    o.dim = 0;
    o.buckets = 0;
    o.steps = 10;
    o.out = b;
    ck_assert_msg(eng_train(&o, &err) == 0, "fine-tune: %s", err);
    eng_model *m;
    ck_assert_msg(eng_model_load(&m, b, &err) == 0, "load: %s", err);
    ck_assert_int_eq(m->n_labels, 3);
    eng_model_free(m);
    FILE *f = fopen(path, "a");
    fputs("zz\tunknown label\nno tab on this line\n", f);
    fclose(f);
    ck_assert_int_eq(eng_train_check(&o, &err), -1);
    ck_assert_msg(strstr(err, ":402:") != NULL, "check: %s", err);   // the line without a tab
    free(err); err = NULL;
    o.base_model = NULL;
    o.dim = 99999;
    ck_assert_int_eq(eng_train_check(&o, &err), -1);   // options are checked too
    free(err); err = NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_load_errors) {
    char dir[] = "/tmp/test_fasttext_XXXXXX", path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    eng_fasttext ft = make(4, 16, 1, 2, 2, 0);
    ck_assert_int_eq(eng_ft_alloc(&ft, 1), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    char *err = NULL;
    ck_assert_int_eq(eng_ft_save(&ft, path, &err), 0);
    eng_ft_free(&ft);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *bad[] = {
        "{\"task\":\"text-classification\",\"arch\":\"fasttext\",\"dim\":4,\"buckets\":16,\"maxn\":2}",   // no labels
        "{\"task\":\"text-classification\",\"arch\":\"fasttext\",\"labels\":[\"a\",\"b\"],\"dim\":5,\"buckets\":16}",
        "{\"task\":\"text-classification\",\"arch\":\"fasttext\",\"labels\":[\"a\",\"b\",\"c\"],\"dim\":4,\"buckets\":16}",
        "{\"task\":\"text-classification\",\"arch\":\"fasttext\",\"labels\":[\"a\",\"b\"],\"dim\":4,\"buckets\":16,\"minn\":3,\"maxn\":2}",
        "{\"task\":\"text-classification\",\"arch\":\"fasttext\",\"labels\":[\"a\",\"b\"],\"dim\":\"4\",\"buckets\":16}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        eng_model *m = NULL;
        ck_assert_msg(eng_model_load(&m, dir, &err) == -1, "config %zu loaded", i);
        ck_assert_ptr_nonnull(err);
        free(err); err = NULL;
    }
    FILE *f = fopen(path, "w");
    fputs("{\"task\":\"text-classification\",\"arch\":\"fasttext\",\"labels\":[\"a\",\"b\"],\"dim\":4,\"buckets\":16,\"maxn\":2}", f);
    fclose(f);
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "load: %s", err);
    ck_assert_int_eq(m->max_text_ids, 16384);
    eng_model_free(m);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *fasttext_suite(void) {
    Suite *s = suite_create("fasttext");
    TCase *tc = tcase_create("fasttext");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_feature_count_and_hashes);
    tcase_add_test(tc, test_feature_case_folding_and_scripts);
    tcase_add_test(tc, test_feature_invalid_utf8_and_limits);
    tcase_add_test(tc, test_gradient_matches_finite_differences);
    tcase_add_test(tc, test_train_lowers_loss_and_classifies);
    tcase_add_test(tc, test_resume_finetune_and_check);
    tcase_add_test(tc, test_load_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(fasttext_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
