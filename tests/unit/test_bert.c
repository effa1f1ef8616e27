// test_bert.c — engine/arch/bert.c against the PyTorch reference of
// tests/ref/make_bert_ref.py (BERT and DistilBERT written from the papers,
// random weights, HF names): the ids of the texts through the model's
// tokenizer, logits and probabilities of the whole list as one batch, each
// text's result whatever else is in its batch, the checkpoint without the
// "bert."/"distilbert." prefix, the length limit, and load errors (no
// id2label, truncated safetensors, wrong shapes, missing vocab.txt). Run from
// the repository root.
#include "engine/arch/bert.h"
#include "engine/arch/model.h"   // eng_model_load: the directories as the server loads them

#include <check.h>              // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_compare, tu_load_json, tu_temp_dir
#include <stdio.h>              // fopen, snprintf
#include <stdlib.h>             // malloc, free
#include <string.h>             // strstr, memcpy
#include "engine/core/tape.h"        // eng_tape
#include "engine/core/util.h"        // eng_read_file
#include "engine/io/safetensors.h"   // eng_st_open, eng_st_write

// Observed (torch 1.13 vs OpenBLAS sgemm): logits within 9.6e-7, probabilities within 1.5e-7.
#define RTOL 1e-4
#define ATOL 1e-5

static const char *const dirs[] = {"tests/ref/bert_tiny", "tests/ref/distilbert_tiny"};

typedef struct {
    int n;              // texts
    int **ids;          // [n][len]
    int *len;           // [n]
    float *logits;      // [n, labels]
    float *probs;       // [n, labels]
    int n_labels;
    json_t *j;
} expected;

static expected load_expected(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/expected.json", dir);
    expected e = {.j = tu_load_json(p)};
    const json_t *ids = json_object_get(e.j, "ids");
    e.n = (int)json_array_size(ids);
    e.n_labels = (int)json_array_size(json_object_get(e.j, "labels"));
    e.ids = malloc((size_t)e.n * sizeof *e.ids);
    e.len = malloc((size_t)e.n * sizeof *e.len);
    e.logits = malloc((size_t)e.n * e.n_labels * sizeof(float));
    e.probs = malloc((size_t)e.n * e.n_labels * sizeof(float));
    for (int i = 0; i < e.n; i++) {
        const json_t *a = json_array_get(ids, (size_t)i);
        e.len[i] = (int)json_array_size(a);
        e.ids[i] = malloc((size_t)e.len[i] * sizeof(int));
        for (int k = 0; k < e.len[i]; k++) e.ids[i][k] = (int)json_integer_value(json_array_get(a, (size_t)k));
        for (int c = 0; c < e.n_labels; c++) {
            e.logits[i * e.n_labels + c] =
                (float)json_number_value(json_array_get(json_array_get(json_object_get(e.j, "logits"), (size_t)i), (size_t)c));
            e.probs[i * e.n_labels + c] =
                (float)json_number_value(json_array_get(json_array_get(json_object_get(e.j, "probs"), (size_t)i), (size_t)c));
        }
    }
    return e;
}

static void free_expected(expected *e) {
    for (int i = 0; i < e->n; i++) free(e->ids[i]);
    free(e->ids);
    free(e->len);
    free(e->logits);
    free(e->probs);
    json_decref(e->j);
}

static eng_model *load_ok(const char *dir) {
    eng_model *m;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "%s: %s", dir, err ? err : "?");
    return m;
}

// The model's tokenizer gives the reference ids; the whole list as one batch
// gives the reference logits and probabilities.
START_TEST(test_reference) {
    const char *dir = dirs[_i];
    expected e = load_expected(dir);
    eng_model *m = load_ok(dir);
    ck_assert_int_eq(m->task, ENG_TASK_TEXT_CLASSIFICATION);
    ck_assert_str_eq(m->arch->name, _i ? "distilbert" : "bert");
    ck_assert_int_eq(m->n_labels, e.n_labels);
    for (int c = 0; c < e.n_labels; c++)
        ck_assert_str_eq(m->labels[c], json_string_value(json_array_get(json_object_get(e.j, "labels"), (size_t)c)));
    ck_assert_int_eq(m->max_text_ids, 64);
    const json_t *texts = json_object_get(e.j, "texts");
    for (int i = 0; i < e.n; i++) {
        const char *s = json_string_value(json_array_get(texts, (size_t)i));
        int *ids, n;
        char *err = NULL;
        ck_assert_msg(eng_model_text_ids(m, s, strlen(s), &ids, &n, &err) == 0, "%s", err);
        ck_assert_int_eq(n, e.len[i]);
        for (int k = 0; k < n; k++) ck_assert_int_eq(ids[k], e.ids[i][k]);
        free(ids);
    }
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    float *got = malloc((size_t)e.n * e.n_labels * sizeof(float));
    eng_bert_logits(m->impl, &t.arena, (const int *const *)e.ids, e.len, e.n, got);
    ck_assert_int_eq(tu_compare("logits", got, e.logits, (size_t)e.n * e.n_labels, RTOL, ATOL), 0);
    m->arch->classify_text(m, &t, (const int *const *)e.ids, e.len, e.n, got);
    ck_assert_int_eq(tu_compare("probs", got, e.probs, (size_t)e.n * e.n_labels, RTOL, ATOL), 0);
    free(got);
    eng_tape_free(&t);
    eng_model_free(m);
    free_expected(&e);
}
END_TEST

// A text's probabilities do not depend on its batch: alone, with the others,
// and in a batch of 40 (the sgemm path for every matrix) in another order.
START_TEST(test_batch_invariance) {
    const char *dir = dirs[_i];
    expected e = load_expected(dir);
    eng_model *m = load_ok(dir);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    const int NB = 40, C = e.n_labels;
    const int **ids = malloc((size_t)NB * sizeof *ids);
    int *len = malloc((size_t)NB * sizeof *len);
    float *big = malloc((size_t)NB * C * sizeof(float)), one[8];
    for (int i = 0; i < NB; i++) {
        int src = (i * 5 + 3) % e.n;
        ids[i] = e.ids[src];
        len[i] = e.len[src];
    }
    m->arch->classify_text(m, &t, ids, len, NB, big);
    double worst = 0;
    for (int i = 0; i < NB; i++) {
        int src = (i * 5 + 3) % e.n;
        m->arch->classify_text(m, &t, (const int *const *)&e.ids[src], &e.len[src], 1, one);
        for (int c = 0; c < C; c++) {
            double d = fabs(one[c] - big[i * C + c]);
            if (d > worst) worst = d;
        }
    }
    ck_assert_msg(worst <= 1e-5, "a text's probabilities moved by %g with its batch", worst);
    free(ids);
    free(len);
    free(big);
    eng_tape_free(&t);
    eng_model_free(m);
    free_expected(&e);
}
END_TEST

// ---------------------------------------------------------------- variants and errors

static void copy_file(const char *from_dir, const char *to_dir, const char *name) {
    char p[512];
    size_t len;
    char *err = NULL;
    snprintf(p, sizeof p, "%s/%s", from_dir, name);
    char *buf = eng_read_file(p, &len, &err);
    ck_assert_msg(buf != NULL, "%s", err);
    snprintf(p, sizeof p, "%s/%s", to_dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
}

// A copy of `from` in a fresh directory, its tensors renamed by `rename`
// (may be NULL) and its config.json edited by `edit` (may be NULL).
static char *variant(const char *from, const char *(*rename)(const char *name, char *buf),
                     void (*edit)(json_t *cfg)) {
    char *d = tu_temp_dir("bert");
    copy_file(from, d, "vocab.txt");
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", from);
    json_t *cfg = tu_load_json(p);
    if (edit) edit(cfg);
    snprintf(p, sizeof p, "%s/config.json", d);
    ck_assert_int_eq(json_dump_file(cfg, p, 0), 0);
    json_decref(cfg);
    eng_st_file st;
    char *err = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors", from);
    ck_assert_msg(eng_st_open(&st, p, &err) == 0, "%s", err);
    eng_st_entry *ent = calloc((size_t)st.n, sizeof *ent);
    char (*names)[160] = calloc((size_t)st.n, sizeof *names);
    int n = 0;
    for (int i = 0; i < st.n; i++) {
        if (!st.tensors[i].data) continue;   // the integer position_ids buffer
        ent[n].name = rename ? rename(st.tensors[i].name, names[n]) : st.tensors[i].name;
        ent[n].ndim = st.tensors[i].ndim;
        memcpy(ent[n].shape, st.tensors[i].shape, sizeof ent[n].shape);
        ent[n].data = st.tensors[i].data;
        n++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    ck_assert_msg(eng_st_write(p, ent, n, NULL, &err) == 0, "%s", err);
    eng_st_close(&st);
    free(ent);
    free(names);
    return d;
}

static void remove_variant(char *d) {
    char p[512];
    snprintf(p, sizeof p, "%s/vocab.txt", d);
    unlink(p);
    tu_remove_model_dir(d);
}

static const char *strip_prefix(const char *name, char *buf) {
    const char *dot = strchr(name, '.');
    if (strncmp(name, "bert.", 5) == 0 || strncmp(name, "distilbert.", 11) == 0) name = dot + 1;
    snprintf(buf, 160, "%s", name);
    return buf;
}

// Checkpoints saved from BertModel / DistilBertModel + head name their tensors without the prefix.
START_TEST(test_no_prefix) {
    expected e = load_expected(dirs[_i]);
    char *d = variant(dirs[_i], strip_prefix, NULL);
    eng_model *m = load_ok(d);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    float *got = malloc((size_t)e.n * e.n_labels * sizeof(float));
    m->arch->classify_text(m, &t, (const int *const *)e.ids, e.len, e.n, got);
    ck_assert_int_eq(tu_compare("probs", got, e.probs, (size_t)e.n * e.n_labels, RTOL, ATOL), 0);
    free(got);
    eng_tape_free(&t);
    eng_model_free(m);
    remove_variant(d);
    free_expected(&e);
}
END_TEST

// Text longer than max_position_embeddings: ENG_TOK_E_TOO_LONG naming the limit.
START_TEST(test_too_long) {
    eng_model *m = load_ok(dirs[_i]);
    char text[400] = "";
    for (int i = 0; i < 70; i++) strcat(text, "ok ");
    int *ids, n;
    char *err = NULL;
    ck_assert_int_eq(eng_model_text_ids(m, text, strlen(text), &ids, &n, &err), ENG_TOK_E_TOO_LONG);
    ck_assert_msg(err && strstr(err, "64"), "%s", err);
    free(err);
    text[3 * 62] = '\0';   // 62 words + [CLS] + [SEP] = 64 ids: fits
    err = NULL;
    ck_assert_msg(eng_model_text_ids(m, text, strlen(text), &ids, &n, &err) == 0, "%s", err);
    ck_assert_int_eq(n, 64);
    free(ids);
    eng_model_free(m);
}
END_TEST

static void drop_id2label(json_t *c) {
    json_object_del(c, "id2label");
    json_object_del(c, "label2id");
}
static void four_labels(json_t *c) {
    json_object_set_new(c, "id2label", json_pack("{s:s,s:s,s:s,s:s}", "0", "a", "1", "b", "2", "c", "3", "d"));
}
static void gap_labels(json_t *c) {
    json_object_set_new(c, "id2label", json_pack("{s:s,s:s}", "0", "a", "2", "b"));
}
static void bad_layers(json_t *c) {
    json_object_set_new(c, json_object_get(c, "n_layers") ? "n_layers" : "num_hidden_layers", json_integer(3));
}
static void bad_hidden(json_t *c) {
    json_object_set_new(c, json_object_get(c, "dim") ? "dim" : "hidden_size", json_integer(48));
}
static void bad_act(json_t *c) {
    json_object_set_new(c, json_object_get(c, "activation") ? "activation" : "hidden_act", json_string("swish"));
}

static void expect_load_error(const char *dir, const char *needle) {
    eng_model *m = NULL;
    char *err = NULL;
    ck_assert_int_eq(eng_model_load(&m, dir, &err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(err && strstr(err, needle), "%s: error \"%s\" should name \"%s\"", dir, err ? err : "(none)", needle);
    free(err);
}

START_TEST(test_load_errors) {
    const char *src = dirs[_i];
    struct {
        void (*edit)(json_t *);
        const char *needle;
    } cases[] = {
        {drop_id2label, "id2label"},
        {four_labels, "classifier.weight"},
        {gap_labels, "id2label"},
        {bad_layers, "layer.2."},        // a tensor of a third layer is missing
        {bad_hidden, "word_embeddings"}, // the first tensor's shape is wrong
        {bad_act, "swish"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *d = variant(src, NULL, cases[k].edit);
        expect_load_error(d, cases[k].needle);
        remove_variant(d);
    }
    // a truncated safetensors file
    char *d = variant(src, NULL, NULL);
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    ck_assert_int_eq(truncate(p, 50000), 0);
    expect_load_error(d, "model.safetensors");
    remove_variant(d);
    // no vocab.txt
    d = variant(src, NULL, NULL);
    snprintf(p, sizeof p, "%s/vocab.txt", d);
    unlink(p);
    expect_load_error(d, "vocab.txt");
    remove_variant(d);
    // a classifier whose tensor is missing: a bare encoder checkpoint
    d = variant(src, strip_prefix, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    eng_st_file st;
    char *err = NULL;
    ck_assert_int_eq(eng_st_open(&st, p, &err), 0);
    eng_st_entry *ent = calloc((size_t)st.n, sizeof *ent);
    int n = 0;
    for (int i = 0; i < st.n; i++) {
        if (strncmp(st.tensors[i].name, "classifier.", 11) == 0) continue;
        ent[n] = (eng_st_entry){.name = st.tensors[i].name, .ndim = st.tensors[i].ndim, .data = st.tensors[i].data};
        memcpy(ent[n].shape, st.tensors[i].shape, sizeof ent[n].shape);
        n++;
    }
    char p2[520];
    snprintf(p2, sizeof p2, "%s.new", p);
    ck_assert_int_eq(eng_st_write(p2, ent, n, NULL, &err), 0);
    eng_st_close(&st);
    free(ent);
    ck_assert_int_eq(rename(p2, p), 0);
    expect_load_error(d, "classifier.weight");
    remove_variant(d);
}
END_TEST

static Suite *bert_suite(void) {
    Suite *s = suite_create("bert");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_reference, 0, 2);
    tcase_add_loop_test(tc, test_batch_invariance, 0, 2);
    tcase_add_loop_test(tc, test_no_prefix, 0, 2);
    tcase_add_loop_test(tc, test_too_long, 0, 2);
    tcase_add_loop_test(tc, test_load_errors, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(bert_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
