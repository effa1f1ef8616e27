// test_tape.c — the autograd tape on whole graphs (per-op checks live in
// test_ops.c): backprop through small multi-op graphs against central
// differences of a double-accumulated loss, what grad-off tapes record,
// arena reuse after eng_tape_reset, and eng_cnn_save -> eng_cnn_load.
#include "engine/core/tape.h"

#include <check.h>               // Check unit-test framework
#include <jansson.h>             // json_loads for CNN configs
#include <math.h>                // fabs, exp, log
#include <stdint.h>              // uint64_t
#include <stdio.h>               // fprintf
#include <stdlib.h>              // mkdtemp
#include <string.h>              // memcmp
#include <unistd.h>              // unlink, rmdir
#include "engine/arch/cnn.h"          // eng_cnn
#include "engine/io/safetensors.h"  // eng_st_open, eng_st_meta

// ---------------------------------------------------------------- helpers
// Deterministic uniform floats in [lo, hi) (splitmix64).
static uint64_t rng_state;
static float urand(float lo, float hi) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 40) / (double)(1ull << 24));
}

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "bad test JSON: %s", jerr.text);
    return j;
}

// Mean cross-entropy of float logits[N,C] in double.
static double ce_double(const float *logits, const int *y, int N, int C) {
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * C;
        double mx = l[0], s = 0;
        for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
        for (int c = 0; c < C; c++) s += exp((double)l[c] - mx);
        total += mx + log(s) - l[y[n]];
    }
    return total / N;
}

// ---------------------------------------------------------------- graphs for finite differences
enum { MAX_VARS = 8 };

typedef struct {
    const char *name;
    int ndim, shape[4];
    float lo, hi;        // initial values uniform in [lo, hi)
} var_spec;

typedef struct {
    const char *name;
    int n_vars;
    var_spec v[MAX_VARS];                             // v[0] is the input batch
    // -> logits [N, C]; rs = the batch norm's running mean [8] then var [8]
    eng_var *(*forward)(eng_tape *t, eng_var *v, float *rs);
    int N, C;
    int y[8];                                         // targets [N]
} graph_case;

// x[2,2,6,5] -conv 3x3 p1-> [2,3,6,5] -bn(batch stats)-> -tanh-> -avgpool 2-> [2,3,3,2]
// -flatten-> [2,18] -linear-> [2,4]
static eng_var *graph_conv_bn(eng_tape *t, eng_var *v, float *rs) {
    eng_var *h = eng_t_conv2d(t, &v[0], &v[1], &v[2], 1, 1);
    h = eng_t_batchnorm(t, h, &v[3], &v[4], rs, rs + 8, 0.1f, 1e-5f);
    h = eng_t_tanh(t, h);
    h = eng_t_avgpool2d(t, h, 2, 2);
    h = eng_t_flatten(t, h);
    return eng_t_linear(t, h, &v[5], &v[6]);
}

// x[4,1,7,6] -conv 3x3 s2-> [4,4,3,2] -gelu-> -global avg-> [4,4] -linear W-> -sigmoid->
// -bn over [N,C]-> -linear W (the same W: two uses accumulate)-> -tanh-> -linear-> [4,5]
static eng_var *graph_shared(eng_tape *t, eng_var *v, float *rs) {
    eng_var *h = eng_t_conv2d(t, &v[0], &v[1], &v[2], 2, 0);
    h = eng_t_gelu(t, h);
    h = eng_t_global_avgpool(t, h);
    h = eng_t_sigmoid(t, eng_t_linear(t, h, &v[3], &v[4]));
    h = eng_t_batchnorm(t, h, &v[5], &v[6], rs, rs + 8, 0.1f, 1e-5f);
    h = eng_t_tanh(t, eng_t_linear(t, h, &v[3], &v[4]));
    return eng_t_linear(t, h, &v[7], NULL);
}

static const graph_case graphs[] = {
    {"conv_bn_tanh_avgpool_linear", 7,
     {{"x", 4, {2, 2, 6, 5}, -1.0f, 1.0f},
      {"conv.w", 4, {3, 2, 3, 3}, -0.4f, 0.4f},
      {"conv.b", 1, {3}, -0.2f, 0.2f},       // feeds the batch norm: its gradient is exactly 0
      {"bn.gamma", 1, {3}, 0.5f, 1.5f},
      {"bn.beta", 1, {3}, -0.3f, 0.3f},
      {"fc.w", 2, {4, 18}, -0.5f, 0.5f},
      {"fc.b", 1, {4}, -0.2f, 0.2f}},
     graph_conv_bn, 2, 4, {1, 3}},
    {"conv_gelu_gap_shared_linear_bn1d", 8,
     {{"x", 4, {4, 1, 7, 6}, -1.5f, 1.5f},
      {"conv.w", 4, {4, 1, 3, 3}, -0.6f, 0.6f},
      {"conv.b", 1, {4}, -0.3f, 0.3f},
      {"W", 2, {4, 4}, -1.0f, 1.0f},
      {"c", 1, {4}, -0.5f, 0.5f},
      {"bn.gamma", 1, {4}, 0.5f, 1.5f},
      {"bn.beta", 1, {4}, -0.3f, 0.3f},
      {"out.w", 2, {5, 4}, -1.0f, 1.0f}},
     graph_shared, 4, 5, {0, 4, 2, 4}},
};
enum { N_GRAPHS = sizeof graphs / sizeof graphs[0] };

typedef struct {
    eng_var v[MAX_VARS];
    float *val[MAX_VARS], *grad[MAX_VARS];
    float running[16];   // batch norm running mean [8], var [8]
} graph_vars;

static void graph_vars_init(graph_vars *g, const graph_case *gc, uint64_t seed) {
    rng_state = seed;
    for (int c = 0; c < 8; c++) { g->running[c] = urand(-0.5f, 0.5f); g->running[8 + c] = urand(0.5f, 2.0f); }
    for (int k = 0; k < gc->n_vars; k++) {
        const var_spec *s = &gc->v[k];
        size_t n = 1;
        for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
        g->val[k] = malloc(n * sizeof(float));
        g->grad[k] = calloc(n, sizeof(float));
        for (size_t i = 0; i < n; i++) g->val[k][i] = urand(s->lo, s->hi);
        eng_var_param(&g->v[k], g->val[k], g->grad[k], s->ndim, s->shape);
    }
}

static void graph_vars_free(graph_vars *g, const graph_case *gc) {
    for (int k = 0; k < gc->n_vars; k++) { free(g->val[k]); free(g->grad[k]); }
}

// One forward on `t` (reset first); returns the loss in double.
static double graph_loss(eng_tape *t, const graph_case *gc, graph_vars *g) {
    eng_tape_reset(t);
    eng_var *logits = gc->forward(t, g->v, g->running);
    ck_assert_int_eq(logits->shape[0], gc->N);
    ck_assert_int_eq(logits->shape[1], gc->C);
    return ce_double(logits->val, gc->y, gc->N, gc->C);
}

// Backprop of every var (input included) against central differences.
// FD step: FD_EPS, taken as the float-rounded (p + eps) - (p - eps).
// Per element: |fd - bp| <= FD_ATOL + FD_RTOL * max|fd over the tensor|.
// _i < N_GRAPHS: training tapes (batch norm with batch statistics);
// otherwise grad-enabled inference tapes (batch norm with frozen running
// statistics, as when fine-tuning with BN frozen or taking input gradients
// of a served model) — the gradient must still flow through the batch norm.
#define FD_EPS 1e-2f
#define FD_ATOL 2e-5
#define FD_RTOL 2e-3
START_TEST(test_graph_gradients_fd) {
    const graph_case *gc = &graphs[_i % N_GRAPHS];
    const int training = _i < N_GRAPHS;
    graph_vars g;
    graph_vars_init(&g, gc, 42 + (uint64_t)_i);

    // backprop
    eng_tape t;
    eng_tape_init(&t, 1, training);
    eng_var *logits = gc->forward(&t, g.v, g.running);
    eng_var *loss = eng_t_cross_entropy(&t, logits, gc->y);
    double l0 = ce_double(logits->val, gc->y, gc->N, gc->C);
    ck_assert_msg(fabs(loss->val[0] - l0) <= 1e-6 * (1 + fabs(l0)), "tape loss %.9g vs double %.9g", loss->val[0], l0);
    ck_assert_ptr_nonnull(loss->grad);
    eng_tape_backward(&t, loss);

    // finite differences on a tape that records nothing (in training mode
    // batch statistics are recomputed from the perturbed batch every time)
    eng_tape fd;
    eng_tape_init(&fd, 0, training);
    int bad = 0;
    for (int k = 0; k < gc->n_vars; k++) {
        size_t n = g.v[k].n;
        double *num = malloc(n * sizeof(double));
        double mx = 0;
        for (size_t i = 0; i < n; i++) {
            float p = g.val[k][i];
            float pp = p + FD_EPS, pm = p - FD_EPS;
            g.val[k][i] = pp;
            double lp = graph_loss(&fd, gc, &g);
            g.val[k][i] = pm;
            double lm = graph_loss(&fd, gc, &g);
            g.val[k][i] = p;
            ck_assert_int_eq(fd.n_entries, 0);
            num[i] = (lp - lm) / ((double)pp - (double)pm);
            mx = fabs(num[i]) > mx ? fabs(num[i]) : mx;
        }
        double maxdiff = 0;
        int shown = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs(num[i] - g.grad[k][i]);
            maxdiff = d > maxdiff ? d : maxdiff;
            if (!(d <= FD_ATOL + FD_RTOL * mx)) {
                if (shown++ < 5)
                    fprintf(stderr, "  %s (%s) %s[%zu]: backprop %.7g, finite difference %.7g\n", gc->name,
                            training ? "train" : "eval", gc->v[k].name, i, g.grad[k][i], num[i]);
                bad++;
            }
        }
        if (shown)
            fprintf(stderr, "%s (%s) %s: maxdiff %.3g (max |grad| %.3g)\n", gc->name, training ? "train" : "eval",
                    gc->v[k].name, maxdiff, mx);
        free(num);
    }
    ck_assert_msg(bad == 0, "%s (%s tape): %d gradient values disagree with finite differences", gc->name,
                  training ? "training" : "inference", bad);
    eng_tape_free(&fd);
    eng_tape_free(&t);
    graph_vars_free(&g, gc);
}
END_TEST

// Parameter grads accumulate across backwards until the caller zeroes them:
// two identical forward/backward rounds without zeroing give twice the
// gradient, and zeroing in between gives the same gradient again.
START_TEST(test_backward_accumulates) {
    const graph_case *gc = &graphs[1];
    graph_vars g;
    graph_vars_init(&g, gc, 7);
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    float *once[MAX_VARS];
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            for (int k = 0; k < gc->n_vars; k++) memset(g.grad[k], 0, g.v[k].n * sizeof(float));
        eng_tape_reset(&t);
        eng_var *loss = eng_t_cross_entropy(&t, gc->forward(&t, g.v, g.running), gc->y);
        eng_tape_backward(&t, loss);
        for (int k = 0; k < gc->n_vars; k++) {
            size_t n = g.v[k].n;
            if (round == 0) {
                once[k] = malloc(n * sizeof(float));
                memcpy(once[k], g.grad[k], n * sizeof(float));
            } else if (round == 1) {
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(fabsf(g.grad[k][i] - 2 * once[k][i]) <= 1e-5f * fabsf(once[k][i]) + 1e-12f,
                                  "%s[%zu]: %g after two rounds, %g after one", gc->v[k].name, i,
                                  g.grad[k][i], once[k][i]);
            } else {
                ck_assert_mem_eq(g.grad[k], once[k], n * sizeof(float));   // deterministic
            }
        }
    }
    for (int k = 0; k < gc->n_vars; k++) free(once[k]);
    eng_tape_free(&t);
    graph_vars_free(&g, gc);
}
END_TEST

// ---------------------------------------------------------------- what gets recorded
START_TEST(test_grad_off_records_nothing) {
    const graph_case *gc = &graphs[0];
    graph_vars g;
    graph_vars_init(&g, gc, 3);
    // grad off, inference and training batch norm alike
    for (int training = 0; training <= 1; training++) {
        eng_tape t;
        eng_tape_init(&t, 0, training);
        eng_var *logits = gc->forward(&t, g.v, g.running);
        eng_var *loss = eng_t_cross_entropy(&t, logits, gc->y);
        ck_assert_int_eq(t.n_entries, 0);
        ck_assert_ptr_null(logits->grad);
        ck_assert_ptr_null(loss->grad);
        ck_assert_ptr_null(eng_tape_var(&t, 1, (int[]){4})->grad);
        eng_tape_backward(&t, loss);   // a no-op
        for (int k = 0; k < gc->n_vars; k++)
            for (size_t i = 0; i < g.v[k].n; i++) ck_assert_float_eq(g.grad[k][i], 0.0f);
        eng_tape_free(&t);
    }
    // grad on, but nothing in the graph wants a gradient
    eng_var nog[MAX_VARS];
    for (int k = 0; k < gc->n_vars; k++) eng_var_param(&nog[k], g.val[k], NULL, g.v[k].ndim, g.v[k].shape);
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    eng_var *loss = eng_t_cross_entropy(&t, gc->forward(&t, nog, g.running), gc->y);
    ck_assert_int_eq(t.n_entries, 0);
    ck_assert_ptr_null(loss->grad);
    eng_tape_backward(&t, loss);
    // only the weights want grads: ops before the first weight are not
    // recorded for the input, but everything from the first conv on is
    eng_tape_reset(&t);
    ck_assert_int_eq(t.n_entries, 0);
    nog[1].grad = g.grad[1];
    loss = eng_t_cross_entropy(&t, gc->forward(&t, nog, g.running), gc->y);
    ck_assert_int_eq(t.n_entries, 6);   // conv, bn, tanh, avgpool, linear, cross-entropy (flatten is a view)
    eng_tape_backward(&t, loss);
    double s = 0;
    for (size_t i = 0; i < g.v[1].n; i++) s += fabs(g.grad[1][i]);
    ck_assert(s > 0);
    eng_tape_free(&t);
    graph_vars_free(&g, gc);
}
END_TEST

START_TEST(test_cnn_inference_tape_records_nothing) {
    json_t *cfg = parse_json(
        "{\"input\":{\"channels\":1,\"height\":8,\"width\":8},\"layers\":["
        "{\"type\":\"conv2d\",\"out_channels\":4,\"kernel_size\":3,\"padding\":1},{\"type\":\"batchnorm\"},"
        "{\"type\":\"relu\"},{\"type\":\"maxpool2d\",\"kernel_size\":2},{\"type\":\"flatten\"},"
        "{\"type\":\"linear\",\"out_features\":3}]}");
    eng_cnn m;
    char *err = NULL;
    ck_assert_msg(eng_cnn_init(&m, cfg, &err) == 0, "%s", err);
    eng_cnn_init_params(&m, 5);
    eng_cnn_enable_grads(&m);   // even with gradient buffers present
    float x[2 * 64];
    rng_state = 9;
    for (int i = 0; i < 128; i++) x[i] = urand(-1, 1);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *out = eng_cnn_forward(&m, &t, eng_tape_wrap(&t, x, 4, (int[]){2, 1, 8, 8}));
    ck_assert_int_eq(t.n_entries, 0);
    ck_assert_ptr_null(out->grad);
    ck_assert_int_eq(out->shape[1], 3);
    eng_tape_free(&t);
    eng_cnn_free(&m);
    json_decref(cfg);
}
END_TEST

// ---------------------------------------------------------------- arena reuse after reset
// Big enough to spill the arena's first block, so round 1 grows it and the
// reset merges; rounds 2 and 3 must then run in place.
static const char *const arena_cfg =
    "{\"input\":{\"channels\":1,\"height\":16,\"width\":16},\"layers\":["
    "{\"type\":\"conv2d\",\"out_channels\":8,\"kernel_size\":3,\"padding\":1},{\"type\":\"batchnorm\"},"
    "{\"type\":\"gelu\"},{\"type\":\"avgpool2d\",\"kernel_size\":2},"
    "{\"type\":\"conv2d\",\"out_channels\":8,\"kernel_size\":3,\"stride\":2,\"padding\":1},"
    "{\"type\":\"relu\"},{\"type\":\"flatten\"},{\"type\":\"linear\",\"out_features\":10}]}";

START_TEST(test_reset_reuses_memory) {
    const int training = _i;   // 0: serving tape (grad off), 1: training tape
    json_t *cfg = parse_json(arena_cfg);
    eng_cnn m;
    char *err = NULL;
    ck_assert_msg(eng_cnn_init(&m, cfg, &err) == 0, "%s", err);
    eng_cnn_init_params(&m, 11);
    if (training) eng_cnn_enable_grads(&m);
    enum { B = 16 };
    float *x = malloc((size_t)B * 256 * sizeof(float));
    rng_state = 1;
    for (int i = 0; i < B * 256; i++) x[i] = urand(-1, 1);
    int y[B];
    for (int b = 0; b < B; b++) y[b] = b % 10;

    eng_tape t;
    eng_tape_init(&t, training, training);
    size_t hw[3];
    const void *blocks[3], *entries[3];
    const float *outp[3];
    float first_logit[3];
    for (int round = 0; round < 3; round++) {
        eng_tape_reset(&t);
        eng_cnn_zero_grads(&m);
        eng_var *logits = eng_cnn_forward(&m, &t, eng_tape_wrap(&t, x, 4, (int[]){B, 1, 16, 16}));
        if (training) {
            eng_var *loss = eng_t_cross_entropy(&t, logits, y);
            eng_tape_backward(&t, loss);
        }
        hw[round] = t.arena.high_water;
        blocks[round] = t.arena.blocks;
        entries[round] = t.entries;
        outp[round] = logits->val;
        first_logit[round] = logits->val[0];
        ck_assert_uint_eq(t.arena.used, hw[0]);   // the same allocations every round
    }
    ck_assert_uint_gt(hw[0], 64 * 1024);        // the first round did spill
    ck_assert_uint_eq(hw[1], hw[0]);
    ck_assert_uint_eq(hw[2], hw[0]);
    ck_assert_ptr_eq(blocks[2], blocks[1]);     // no new block after the merge
    ck_assert_ptr_eq(outp[2], outp[1]);         // same addresses: nothing was reallocated
    ck_assert_ptr_eq(entries[2], entries[1]);
    // in training mode the running stats move, so only serving is bit-stable
    if (!training) ck_assert_float_eq(first_logit[2], first_logit[0]);
    eng_tape_free(&t);
    ck_assert_ptr_null(t.arena.blocks);
    free(x);
    eng_cnn_free(&m);
    json_decref(cfg);
}
END_TEST

// ---------------------------------------------------------------- save -> load
static char tmpdir[64];

static void tmpdir_make(void) {
    strcpy(tmpdir, "/tmp/test_tape_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

// Every tensor of a and b, bit for bit (weights, biases, gamma/beta, running stats).
static void assert_same_weights(const eng_cnn *a, const eng_cnn *b) {
    ck_assert_int_eq(a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        const eng_cnn_layer *A = &a->layers[i], *Bl = &b->layers[i];
        ck_assert_uint_eq(A->w.n, Bl->w.n);
        ck_assert_uint_eq(A->b.n, Bl->b.n);
        if (A->w.n) ck_assert_mem_eq(A->w.val, Bl->w.val, A->w.n * sizeof(float));
        if (A->b.n) ck_assert_mem_eq(A->b.val, Bl->b.val, A->b.n * sizeof(float));
        if (A->type == ENG_CNN_BATCHNORM) {
            size_t C = (size_t)A->in_shape[0];
            ck_assert_mem_eq(A->running_mean, Bl->running_mean, C * sizeof(float));
            ck_assert_mem_eq(A->running_var, Bl->running_var, C * sizeof(float));
        }
    }
}

START_TEST(test_save_load_roundtrip) {
    json_t *cfg = parse_json(
        "{\"input\":{\"channels\":3,\"height\":9,\"width\":11},\"layers\":["
        "{\"type\":\"conv2d\",\"out_channels\":5,\"kernel_size\":3,\"stride\":2,\"padding\":1},"
        "{\"type\":\"batchnorm\",\"momentum\":0.3},{\"type\":\"sigmoid\"},{\"type\":\"maxpool2d\",\"kernel_size\":2},"
        "{\"type\":\"flatten\"},{\"type\":\"linear\",\"out_features\":7},{\"type\":\"batchnorm\"},"
        "{\"type\":\"tanh\"},{\"type\":\"linear\",\"out_features\":4}]}");
    char *err = NULL;
    eng_cnn a, b, c;
    ck_assert_msg(eng_cnn_init(&a, cfg, &err) == 0, "%s", err);
    eng_cnn_init_params(&a, 123);
    // non-trivial everything, including NaN-free odd bit patterns and the running stats
    rng_state = 77;
    for (size_t i = 0; i < a.n_params + a.n_buffers; i++) a.params[i] = urand(0.01f, 2.0f) * (i % 3 ? 1 : -1);
    tmpdir_make();
    char path[128], path2[128];
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
    snprintf(path2, sizeof path2, "%s/b.safetensors", tmpdir);
    ck_assert_msg(eng_cnn_save(&a, path, &err) == 0, "save: %s", err);

    // load (mapped) and compare
    ck_assert_int_eq(eng_cnn_init(&b, cfg, &err), 0);
    ck_assert_msg(eng_cnn_load(&b, path, &err) == 0, "load: %s", err);
    ck_assert_ptr_null(b.params);
    assert_same_weights(&a, &b);
    ck_assert_str_eq(eng_st_meta(&b.weights, "arch"), "cnn");
    ck_assert_int_eq(b.weights.n, 2 + 4 + 2 + 4 + 2);   // conv, bn, linear, bn, linear

    // the same forward, bit for bit (serving tape)
    float x[2 * 3 * 9 * 11];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = urand(-1, 1);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *la = eng_cnn_forward(&a, &t, eng_tape_wrap(&t, x, 4, (int[]){2, 3, 9, 11}));
    eng_var *lb = eng_cnn_forward(&b, &t, eng_tape_wrap(&t, x, 4, (int[]){2, 3, 9, 11}));
    ck_assert_mem_eq(la->val, lb->val, la->n * sizeof(float));
    eng_tape_free(&t);

    // saving the mapped model writes the same bytes; so does the owned copy
    ck_assert_msg(eng_cnn_save(&b, path2, &err) == 0, "save mapped: %s", err);
    size_t n1, n2;
    uint8_t *f1 = slurp(path, &n1), *f2 = slurp(path2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(f1, f2, n1);
    free(f2);
    eng_cnn_make_owned(&b);
    ck_assert_ptr_nonnull(b.params);
    assert_same_weights(&a, &b);
    ck_assert_int_eq(eng_cnn_save(&b, path2, &err), 0);
    f2 = slurp(path2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(f1, f2, n1);

    // a config that disagrees with the file is refused with the tensor's name
    json_t *other = parse_json(
        "{\"input\":{\"channels\":3,\"height\":9,\"width\":11},\"layers\":["
        "{\"type\":\"conv2d\",\"out_channels\":6,\"kernel_size\":3,\"stride\":2,\"padding\":1},"
        "{\"type\":\"global_avgpool\"},{\"type\":\"linear\",\"out_features\":4}]}");
    ck_assert_int_eq(eng_cnn_init(&c, other, &err), 0);
    ck_assert_int_eq(eng_cnn_load(&c, path, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "layers.0.weight"));
    free(err);
    eng_cnn_free(&c);
    json_decref(other);

    free(f1); free(f2);
    unlink(path); unlink(path2); rmdir(tmpdir);
    eng_cnn_free(&a);
    eng_cnn_free(&b);
    json_decref(cfg);
}
END_TEST

static Suite *tape_suite(void) {
    Suite *s = suite_create("tape");
    TCase *tc = tcase_create("graphs");
    tcase_add_loop_test(tc, test_graph_gradients_fd, 0, 2 * N_GRAPHS);
    tcase_add_test(tc, test_backward_accumulates);
    tcase_add_test(tc, test_grad_off_records_nothing);
    tcase_add_test(tc, test_cnn_inference_tape_records_nothing);
    tcase_add_loop_test(tc, test_reset_reuses_memory, 0, 2);
    tcase_add_test(tc, test_save_load_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(tape_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
