// test_cnn.c — engine/arch/cnn.c (and the tape, ops and optimiser under it)
// against PyTorch: tests/ref/make_cnn_ref.py builds the same nn.Sequential
// from each config in tests/ref/cnn_ref/ and records eval logits, the
// train-mode loss, every gradient, the running statistics and a 3-step
// AdamW trajectory. Run from the repository root.
#include "engine/arch/cnn.h"

#include <check.h>            // Check unit-test framework
#include <jansson.h>          // json_load_file
#include <math.h>             // fabs, exp
#include <stdio.h>            // FILE, fprintf
#include <stdlib.h>           // strtod
#include <string.h>           // strcmp
#include "engine/arch/model.h"     // eng_model_load
#include "engine/core/optim.h"     // eng_adamw_step
#include "engine/core/tape.h"      // eng_tape

#define REF_DIR "tests/ref/cnn_ref"
#define REF_VERSION 1

// Tolerances: |got - want| <= atol + rtol * |want|. Observed differences
// (torch 1.13, OpenBLAS) are below 1e-6 everywhere, 10-100x inside these.
#define LOGIT_RTOL 1e-4   // eval / train logits, probabilities, losses
#define LOGIT_ATOL 1e-5
#define GRAD_RTOL 1e-3    // gradients: float32 sums in another order, plus an
#define GRAD_ATOL 1e-7    // absolute floor of GRAD_SCALE * max|tensor| (small
#define GRAD_SCALE 2e-5   // entries come out of cancellations)
#define STAT_RTOL 1e-4    // running statistics
#define STAT_ATOL 1e-6
#define ADAM_RTOL 1e-4    // parameters after 3 AdamW steps
#define ADAM_ATOL 1e-5

static const char *const configs[] = {"full", "gap"};
enum { N_CONFIGS = sizeof configs / sizeof configs[0] };

// ---------------------------------------------------------------- fixture
// Text lines "<name> <count> <v0> ... <v(count-1)>"; '#' lines are comments.
typedef struct {
    char name[96];
    size_t n;
    double *v;    // [n]
} ref_array;

typedef struct {
    ref_array *a;
    int n, cap;
} ref_file;

static void ref_free(ref_file *r) {
    for (int i = 0; i < r->n; i++) free(r->a[i].v);
    free(r->a);
    memset(r, 0, sizeof *r);
}

static void ref_load(ref_file *r, const char *path) {
    memset(r, 0, sizeof *r);
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s (run from the repository root; "
                  "regenerate with /usr/bin/python3 tests/ref/make_cnn_ref.py)", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (r->n == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 64;
            r->a = realloc(r->a, (size_t)r->cap * sizeof *r->a);
        }
        ref_array *a = &r->a[r->n++];
        int used = 0;
        ck_assert_int_eq(sscanf(line, "%95s %zu%n", a->name, &a->n, &used), 2);
        a->v = malloc((a->n ? a->n : 1) * sizeof(double));
        char *p = line + used, *end;
        for (size_t i = 0; i < a->n; i++, p = end) {
            a->v[i] = strtod(p, &end);
            ck_assert_msg(end != p, "%s: %s: value %zu unreadable", path, a->name, i);
        }
    }
    free(line);
    fclose(fp);
    const ref_array *ver = NULL;
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->a[i].name, "version") == 0) ver = &r->a[i];
    ck_assert_msg(ver && ver->n == 1 && (int)ver->v[0] == REF_VERSION, "%s: wrong fixture version", path);
}

// The array called `name`; with n != 0 its length must be n.
static const ref_array *ref_get(const ref_file *r, const char *name, size_t n) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->a[i].name, name) == 0) {
            ck_assert_msg(n == 0 || r->a[i].n == n, "fixture %s: %zu values, expected %zu", name, r->a[i].n, n);
            return &r->a[i];
        }
    ck_abort_msg("fixture has no array %s", name);
    return NULL;
}

// Compares got[n] with want[n]; prints the first few mismatches and the
// largest difference, and returns the number of mismatches.
static int compare(const char *what, const float *got, const double *want, size_t n, double rtol, double atol) {
    int bad = 0;
    double maxdiff = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= maxdiff)) { maxdiff = d; at = i; }   // NaN lands here too
        if (!(d <= atol + rtol * fabs(want[i]))) {
            if (bad < 5) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (diff %.3g)\n", what, i, got[i], want[i], d);
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "%s: %d of %zu values out of tolerance (rtol %g atol %g); maxdiff %.3g at [%zu]\n",
                what, bad, n, rtol, atol, maxdiff, at);
    return bad;
}

// ---------------------------------------------------------------- model helpers
typedef struct {
    char name[64];
    float *val, *grad;   // grad NULL for buffers
    size_t n;
    int shadowed;        // bias of a conv/linear feeding a batch norm straight away
} tensor_ref;

// Lists the model's tensors by their PyTorch names; returns the count.
static int list_tensors(eng_cnn *m, tensor_ref *out, int cap) {
    int k = 0;
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->type != ENG_CNN_CONV2D && L->type != ENG_CNN_LINEAR && L->type != ENG_CNN_BATCHNORM) continue;
        ck_assert_int_le(k + 4, cap);
        // A train-mode batch norm subtracts the batch mean, so the bias right
        // before it has a gradient of exactly 0 in exact arithmetic: what
        // float32 leaves is rounding noise, which AdamW scales up to ±lr steps.
        int shadowed = L->type != ENG_CNN_BATCHNORM && i + 1 < m->n_layers &&
                       m->layers[i + 1].type == ENG_CNN_BATCHNORM;
        snprintf(out[k].name, sizeof out[k].name, "layers.%d.weight", i);
        out[k].val = L->w.val; out[k].grad = L->w.grad; out[k].n = L->w.n; out[k].shadowed = 0; k++;
        snprintf(out[k].name, sizeof out[k].name, "layers.%d.bias", i);
        out[k].val = L->b.val; out[k].grad = L->b.grad; out[k].n = L->b.n; out[k].shadowed = shadowed; k++;
        if (L->type == ENG_CNN_BATCHNORM) {
            size_t C = (size_t)L->in_shape[0];
            snprintf(out[k].name, sizeof out[k].name, "layers.%d.running_mean", i);
            out[k].val = L->running_mean; out[k].grad = NULL; out[k].n = C; out[k].shadowed = 0; k++;
            snprintf(out[k].name, sizeof out[k].name, "layers.%d.running_var", i);
            out[k].val = L->running_var; out[k].grad = NULL; out[k].n = C; out[k].shadowed = 0; k++;
        }
    }
    return k;
}

// Is the batch norm that owns buffer `name` fed by a shadowed bias? (Its
// running mean then follows that bias's noise; its running var does not.)
static int mean_follows_shadowed_bias(const eng_cnn *m, const char *name) {
    int i;
    if (sscanf(name, "layers.%d.running_mean", &i) != 1 || !strstr(name, "running_mean")) return 0;
    return i > 0 && (m->layers[i - 1].type == ENG_CNN_CONV2D || m->layers[i - 1].type == ENG_CNN_LINEAR);
}

static json_t *load_config(const char *cfg) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/config.json", REF_DIR, cfg);
    json_error_t jerr;
    json_t *c = json_load_file(path, 0, &jerr);
    ck_assert_msg(c != NULL, "%s: %s", path, jerr.text);
    return c;
}

// Builds the config's CNN from its model directory with owned, writable
// parameters and gradient buffers (the fine-tuning path).
static void build_trainable(eng_cnn *m, const char *cfg) {
    json_t *config = load_config(cfg);
    char *err = NULL, path[256];
    ck_assert_msg(eng_cnn_init(m, config, &err) == 0, "eng_cnn_init: %s", err);
    json_decref(config);
    snprintf(path, sizeof path, "%s/%s/model.safetensors", REF_DIR, cfg);
    ck_assert_msg(eng_cnn_load(m, path, &err) == 0, "eng_cnn_load: %s", err);
    eng_cnn_make_owned(m);
    ck_assert_ptr_nonnull(m->params);
    eng_cnn_enable_grads(m);
    ck_assert_ptr_nonnull(m->grads);
}

static int *targets_of(const ref_file *r, int B) {
    const ref_array *t = ref_get(r, "targets", (size_t)B);
    int *y = malloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) y[b] = (int)t->v[b];
    return y;
}

static void load_ref(ref_file *r, const char *cfg, int dims[5]) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s_ref.txt", REF_DIR, cfg);
    ref_load(r, path);
    const ref_array *d = ref_get(r, "dims", 5);
    for (int i = 0; i < 5; i++) dims[i] = (int)d->v[i];
}

// ---------------------------------------------------------------- eval mode
// eng_model_load of the model directory; logits from a grad-off inference
// tape, and classify_images' probabilities against softmax(torch logits).
START_TEST(test_eval_logits) {
    const char *cfg = configs[_i];
    ref_file r;
    int d[5];
    load_ref(&r, cfg, d);
    int B = d[0], C = d[1], H = d[2], W = d[3], K = d[4];
    char dir[256], *err = NULL;
    snprintf(dir, sizeof dir, "%s/%s", REF_DIR, cfg);
    eng_model *model = NULL;
    ck_assert_msg(eng_model_load(&model, dir, &err) == 0, "eng_model_load(%s): %s", dir, err);
    ck_assert_int_eq(model->task, ENG_TASK_IMAGE_CLASSIFICATION);
    ck_assert_int_eq(model->n_labels, K);
    ck_assert_uint_eq(eng_model_input_size(model), (size_t)C * H * W);
    eng_cnn *cnn = model->impl;
    ck_assert_int_eq(cnn->n_classes, K);

    // parameter count = what the fixture has gradients for
    size_t n_grads = 0;
    for (int i = 0; i < r.n; i++)
        if (strncmp(r.a[i].name, "grad.layers.", 12) == 0) n_grads += r.a[i].n;
    ck_assert_uint_eq(model->n_params, n_grads);
    ck_assert_uint_eq(cnn->n_params, n_grads);

    const ref_array *x = ref_get(&r, "x", (size_t)B * C * H * W);
    const ref_array *want = ref_get(&r, "eval.logits", (size_t)B * K);
    float *xf = malloc(x->n * sizeof(float));
    for (size_t i = 0; i < x->n; i++) xf[i] = (float)x->v[i];

    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *in = eng_tape_wrap(&t, xf, 4, (int[]){B, C, H, W});
    eng_var *logits = eng_cnn_forward(cnn, &t, in);
    ck_assert_int_eq(logits->ndim, 2);
    ck_assert_int_eq(logits->shape[0], B);
    ck_assert_int_eq(logits->shape[1], K);
    ck_assert_int_eq(t.n_entries, 0);
    ck_assert_int_eq(compare("eval.logits", logits->val, want->v, want->n, LOGIT_RTOL, LOGIT_ATOL), 0);

    // The server's entry point: softmax probabilities.
    double *pw = malloc((size_t)B * K * sizeof(double));
    for (int b = 0; b < B; b++) {
        const double *l = want->v + (size_t)b * K;
        double mx = l[0], s = 0;
        for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
        for (int k = 0; k < K; k++) s += exp(l[k] - mx);
        for (int k = 0; k < K; k++) pw[(size_t)b * K + k] = exp(l[k] - mx) / s;
    }
    float *probs = malloc((size_t)B * K * sizeof(float));
    model->arch->classify_images(model, &t, xf, B, probs);
    ck_assert_int_eq(compare("probs", probs, pw, (size_t)B * K, LOGIT_RTOL, LOGIT_ATOL), 0);
    // and again on the reset tape: same answer
    float *probs2 = malloc((size_t)B * K * sizeof(float));
    model->arch->classify_images(model, &t, xf, B, probs2);
    ck_assert_mem_eq(probs, probs2, (size_t)B * K * sizeof(float));
    // one example alone gives its row of the batch (eval batch norm is per example)
    model->arch->classify_images(model, &t, xf + (size_t)(B - 1) * C * H * W, 1, probs2);
    ck_assert_int_eq(compare("probs[B-1] alone", probs2, pw + (size_t)(B - 1) * K, (size_t)K,
                             LOGIT_RTOL, LOGIT_ATOL), 0);

    eng_tape_free(&t);
    free(probs); free(probs2); free(pw); free(xf);
    eng_model_free(model);
    ref_free(&r);
}
END_TEST

// ---------------------------------------------------------------- train mode: loss and gradients
START_TEST(test_train_gradients) {
    const char *cfg = configs[_i];
    ref_file r;
    int d[5];
    load_ref(&r, cfg, d);
    int B = d[0], C = d[1], H = d[2], W = d[3], K = d[4];
    eng_cnn m;
    build_trainable(&m, cfg);
    eng_cnn_zero_grads(&m);
    int *y = targets_of(&r, B);

    eng_tape t;
    eng_tape_init(&t, 1, 1);
    const ref_array *x = ref_get(&r, "x", (size_t)B * C * H * W);
    eng_var *in = eng_tape_var(&t, 4, (int[]){B, C, H, W});   // arena var with a zeroed grad
    ck_assert_ptr_nonnull(in->grad);
    for (size_t i = 0; i < x->n; i++) in->val[i] = (float)x->v[i];
    eng_var *logits = eng_cnn_forward(&m, &t, in);
    eng_var *loss = eng_t_cross_entropy(&t, logits, y);
    ck_assert_int_gt(t.n_entries, 0);
    eng_tape_backward(&t, loss);

    int bad = 0;
    const ref_array *tl = ref_get(&r, "train.logits", (size_t)B * K);
    bad += compare("train.logits", logits->val, tl->v, tl->n, LOGIT_RTOL, LOGIT_ATOL);
    bad += compare("train.loss", loss->val, ref_get(&r, "train.loss", 1)->v, 1, LOGIT_RTOL, LOGIT_ATOL);

    tensor_ref ts[64];
    int nt = list_tensors(&m, ts, 64);
    char name[96];
    for (int k = 0; k < nt; k++) {
        if (ts[k].grad) {
            snprintf(name, sizeof name, "grad.%.63s", ts[k].name);
            const ref_array *g = ref_get(&r, name, ts[k].n);
            double mx = 0;
            for (size_t i = 0; i < g->n; i++) mx = fabs(g->v[i]) > mx ? fabs(g->v[i]) : mx;
            bad += compare(name, ts[k].grad, g->v, g->n, GRAD_RTOL, GRAD_ATOL + GRAD_SCALE * mx);
        } else {
            snprintf(name, sizeof name, "run1.%.63s", ts[k].name);
            const ref_array *s = ref_get(&r, name, ts[k].n);
            bad += compare(name, ts[k].val, s->v, s->n, STAT_RTOL, STAT_ATOL);
        }
    }
    const ref_array *gx = ref_get(&r, "grad.x", x->n);
    double mx = 0;
    for (size_t i = 0; i < gx->n; i++) mx = fabs(gx->v[i]) > mx ? fabs(gx->v[i]) : mx;
    bad += compare("grad.x", in->grad, gx->v, gx->n, GRAD_RTOL, GRAD_ATOL + GRAD_SCALE * mx);
    ck_assert_msg(bad == 0, "%s: %d values differ from PyTorch", cfg, bad);

    eng_tape_free(&t);
    free(y);
    eng_cnn_free(&m);
    ref_free(&r);
}
END_TEST

// ---------------------------------------------------------------- 3 AdamW steps on one batch
START_TEST(test_adamw_trajectory) {
    const char *cfg = configs[_i];
    ref_file r;
    int d[5];
    load_ref(&r, cfg, d);
    int B = d[0], C = d[1], H = d[2], W = d[3];
    eng_cnn m;
    build_trainable(&m, cfg);
    int *y = targets_of(&r, B);
    const ref_array *hp = ref_get(&r, "adamw.hyper", 6);
    int steps = (int)hp->v[0];
    float lr = (float)hp->v[1], b1 = (float)hp->v[2], b2 = (float)hp->v[3], eps = (float)hp->v[4],
          wd = (float)hp->v[5];
    const ref_array *x = ref_get(&r, "x", (size_t)B * C * H * W);
    float *xf = malloc(x->n * sizeof(float));
    for (size_t i = 0; i < x->n; i++) xf[i] = (float)x->v[i];
    float *am = calloc(m.n_params, sizeof(float)), *av = calloc(m.n_params, sizeof(float));
    float *p0 = malloc(m.n_params * sizeof(float));
    memcpy(p0, m.params, m.n_params * sizeof(float));

    float *losses = malloc((size_t)steps * sizeof(float));
    for (int s = 1; s <= steps; s++) {
        eng_tape t;   // a fresh tape each step
        eng_tape_init(&t, 1, 1);
        eng_cnn_zero_grads(&m);
        eng_var *in = eng_tape_wrap(&t, xf, 4, (int[]){B, C, H, W});
        eng_var *loss = eng_t_cross_entropy(&t, eng_cnn_forward(&m, &t, in), y);
        eng_tape_backward(&t, loss);
        losses[s - 1] = loss->val[0];
        eng_adamw_step(m.params, m.grads, am, av, m.n_params, lr, b1, b2, eps, wd, s);
        eng_tape_free(&t);
    }

    int bad = compare("adamw.losses", losses, ref_get(&r, "adamw.losses", (size_t)steps)->v, (size_t)steps,
                      LOGIT_RTOL, LOGIT_ATOL);
    tensor_ref ts[64];
    int nt = list_tensors(&m, ts, 64);
    char name[96];
    for (int k = 0; k < nt; k++) {
        if (ts[k].shadowed) {
            // Its gradient is noise in both implementations; AdamW moves each
            // value by at most lr per step plus the weight decay.
            float *v0 = p0 + (ts[k].val - m.params);
            for (size_t i = 0; i < ts[k].n; i++)
                ck_assert_msg(fabsf(ts[k].val[i] - v0[i]) <= steps * lr * (1.0f + wd * fabsf(v0[i])) + 1e-6f,
                              "%s[%zu] moved too far: %g -> %g", ts[k].name, i, v0[i], ts[k].val[i]);
            continue;
        }
        if (ts[k].grad) {
            snprintf(name, sizeof name, "adamw.%.63s", ts[k].name);
            const ref_array *p = ref_get(&r, name, ts[k].n);
            bad += compare(name, ts[k].val, p->v, p->n, ADAM_RTOL, ADAM_ATOL);
        } else if (!mean_follows_shadowed_bias(&m, ts[k].name)) {
            snprintf(name, sizeof name, "adamw.run.%.63s", ts[k].name);
            const ref_array *s = ref_get(&r, name, ts[k].n);
            bad += compare(name, ts[k].val, s->v, s->n, STAT_RTOL, STAT_ATOL);
        }
    }
    ck_assert_msg(bad == 0, "%s: %d values differ from PyTorch", cfg, bad);
    // and the loss went down, as it did in PyTorch
    ck_assert(losses[steps - 1] < losses[0]);

    free(losses); free(p0); free(am); free(av); free(xf); free(y);
    eng_cnn_free(&m);
    ref_free(&r);
}
END_TEST

static Suite *cnn_suite(void) {
    Suite *s = suite_create("cnn");
    TCase *tc = tcase_create("pytorch_ref");
    tcase_add_loop_test(tc, test_eval_logits, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_train_gradients, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_adamw_trajectory, 0, N_CONFIGS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(cnn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
