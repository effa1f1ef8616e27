// test_conv_batch.c — the image models' serving paths: engine/core/conv_batch.c
// (a batch of convolutions as one GEMM) against the per-image training ops,
// and batch norm folded at load (eng_cnn_serve, eng_dcgan_serve) against the
// unfolded tape forward, on small generated models and on the shipped
// models/fashion-cnn and models/fashion-dcgan (when present). Run from the
// repository root.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>                  // access
#include "engine/arch/cnn.h"
#include "engine/arch/dcgan.h"
#include "engine/arch/model.h"
#include "engine/core/conv_batch.h"
#include "engine/core/ops.h"
#include "engine/core/tape.h"
#include "tests/unit/testutil.h"

// folded vs unfolded: float sums in another order (observed ~1e-6)
#define RTOL 1e-4
#define ATOL 1e-5

// ---------------------------------------------------------------- conv2d
// {B, C, H, W, OC, K, stride, pad}
static const int geo2[][8] = {
    {5, 1, 28, 28, 8, 3, 1, 1},   // fashion-cnn's first layer
    {3, 3, 10, 12, 4, 3, 2, 1},
    {2, 4, 7, 5, 6, 5, 1, 2},
    {4, 2, 9, 9, 3, 1, 1, 0},     // 1x1
    {1, 3, 6, 8, 2, 3, 3, 0},
    {2, 2, 5, 5, 3, 4, 2, 3},     // padding wider than a stride: whole rows of zeros
    {5, 2, 24, 20, 4, 3, 1, 1},   // groups of 3 images (ENG_CONV_GEMM_FLOATS), then 2
};
#define N_GEO2 ((int)(sizeof geo2 / sizeof geo2[0]))

START_TEST(test_conv2d_batch) {
    const int *g = geo2[_i];
    int B = g[0], C = g[1], H = g[2], W = g[3], OC = g[4], K = g[5], S = g[6], P = g[7];
    int OH = eng_conv_out_dim(H, K, S, P), OW = eng_conv_out_dim(W, K, S, P);
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * OC * OH * OW;
    float *x = malloc(nin * sizeof(float)), *w = malloc((size_t)OC * C * K * K * sizeof(float)), b[8];
    float *want = malloc(nout * sizeof(float)), *got = malloc(nout * sizeof(float));
    float *scratch = malloc(eng_conv2d_batch_scratch(B, C, H, W, OC, K, S, P) * sizeof(float));
    if (_i == N_GEO2 - 1)   // the grouped case is grouped: scratch for 3 of the 5 images
        ck_assert_uint_eq(eng_conv2d_batch_scratch(B, C, H, W, OC, K, S, P),
                          3 * eng_conv2d_batch_scratch(1, C, H, W, OC, K, S, P));
    tu_fill(x, nin, -1, 1);
    tu_fill(w, (size_t)OC * C * K * K, -1, 1);
    tu_fill(b, 8, -1, 1);
    eng_conv2d_forward_naive(want, x, w, b, B, C, H, W, OC, K, K, S, P);
    eng_conv2d_batch(got, scratch, x, w, b, B, C, H, W, OC, K, S, P, ENG_CONV_ACT_NONE, 0, 0);
    ck_assert_int_eq(tu_compare("conv2d_batch", got, want, nout, RTOL, ATOL), 0);
    eng_conv2d_batch(got, scratch, x, w, NULL, B, C, H, W, OC, K, S, P, ENG_CONV_ACT_RELU, 0, 0);   // no bias, relu
    eng_conv2d_forward_naive(want, x, w, NULL, B, C, H, W, OC, K, K, S, P);
    for (size_t i = 0; i < nout; i++) want[i] = want[i] > 0 ? want[i] : 0;
    ck_assert_int_eq(tu_compare("conv2d_batch relu", got, want, nout, RTOL, ATOL), 0);
    // + bias, relu, then max pooling (2 every 2; 3 every 1), fused
    static const int pools[][2] = {{2, 2}, {3, 1}};
    for (int k = 0; k < 2; k++) {
        int pk = pools[k][0], ps = pools[k][1];
        if (pk > OH || pk > OW) continue;
        int PH = (OH - pk) / ps + 1, PW = (OW - pk) / ps + 1;
        size_t npool = (size_t)B * OC * PH * PW;
        float *pw = malloc(npool * sizeof(float));
        int *arg = malloc(npool * sizeof(int));
        eng_conv2d_forward_naive(want, x, w, b, B, C, H, W, OC, K, K, S, P);
        for (size_t i = 0; i < nout; i++) want[i] = want[i] > 0 ? want[i] : 0;
        eng_maxpool2d_forward_naive(pw, arg, want, B, OC, OH, OW, pk, ps);
        eng_conv2d_batch(got, scratch, x, w, b, B, C, H, W, OC, K, S, P, ENG_CONV_ACT_RELU, pk, ps);
        ck_assert_int_eq(tu_compare("conv2d_batch relu maxpool", got, pw, npool, RTOL, ATOL), 0);
        free(pw); free(arg);
    }
    free(x); free(w); free(want); free(got); free(scratch);
}
END_TEST

// ---------------------------------------------------------------- conv_transpose2d
// {B, C, H, W, OC, K, stride, pad}
static const int geoT[][8] = {
    {3, 6, 4, 3, 4, 4, 2, 1},   // the DCGAN's upsampling
    {2, 2, 5, 3, 3, 3, 1, 1},
    {2, 1, 3, 4, 2, 3, 2, 0},
    {1, 4, 2, 2, 1, 4, 2, 1},
    {6, 3, 8, 8, 8, 4, 2, 1},   // groups of 4 images (ENG_CONV_GEMM_FLOATS), then 2
};
#define N_GEOT ((int)(sizeof geoT / sizeof geoT[0]))

// wt[(kh*K + kw)*OC + oc][c] = w[c][oc][kh][kw], as eng_dcgan_prepare_serving lays it out.
static void to_wt(float *wt, const float *w, int C, int OC, int K) {
    for (int c = 0; c < C; c++)
        for (int oc = 0; oc < OC; oc++)
            for (int t = 0; t < K * K; t++) wt[((size_t)t * OC + oc) * C + c] = w[((size_t)c * OC + oc) * K * K + t];
}

START_TEST(test_convT_batch) {
    const int *g = geoT[_i];
    int B = g[0], C = g[1], H = g[2], W = g[3], OC = g[4], K = g[5], S = g[6], P = g[7];
    int OH = eng_conv_transpose2d_out_dim(H, K, S, P), OW = eng_conv_transpose2d_out_dim(W, K, S, P);
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * OC * OH * OW, OP = (size_t)OH * OW;
    float *x = malloc(nin * sizeof(float)), *xt = malloc(nin * sizeof(float)), b[8];
    float *w = malloc((size_t)C * OC * K * K * sizeof(float)), *wt = malloc((size_t)C * OC * K * K * sizeof(float));
    float *want = malloc(nout * sizeof(float)), *got = malloc(nout * sizeof(float)), *got2 = malloc(nout * sizeof(float));
    float *col = malloc(eng_conv_transpose2d_col_size(C, H, W, OC, K, S, P) * sizeof(float));
    float *scratch = malloc(eng_convT_batch_scratch(B, C, H, W, OC, K) * sizeof(float));
    if (_i == N_GEOT - 1)   // the grouped case is grouped: scratch for 4 of the 6 images
        ck_assert_uint_eq(eng_convT_batch_scratch(B, C, H, W, OC, K), 4 * eng_convT_batch_scratch(1, C, H, W, OC, K));
    tu_fill(x, nin, -1, 1);
    tu_fill(w, (size_t)C * OC * K * K, -1, 1);
    tu_fill(b, 8, -1, 1);
    for (int n = 0; n < B; n++)   // NCHW -> NHWC
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) xt[((size_t)n * H * W + p) * C + c] = x[((size_t)n * C + c) * H * W + p];
    to_wt(wt, w, C, OC, K);
    eng_conv_transpose2d_forward(want, col, x, w, b, B, C, H, W, OC, K, S, P);
    eng_convT_batch(got, 0, scratch, xt, wt, b, B, C, H, W, OC, K, S, P, ENG_CONV_ACT_NONE);
    ck_assert_int_eq(tu_compare("convT_batch nchw", got, want, nout, RTOL, ATOL), 0);
    // NHWC output, tanh
    eng_convT_batch(got2, 1, scratch, xt, wt, b, B, C, H, W, OC, K, S, P, ENG_CONV_ACT_TANH);
    for (int n = 0; n < B; n++)
        for (int oc = 0; oc < OC; oc++)
            for (size_t q = 0; q < OP; q++)
                got[((size_t)n * OC + oc) * OP + q] = got2[((size_t)n * OP + q) * OC + oc];
    eng_tanh_forward(want, want, nout);
    ck_assert_int_eq(tu_compare("convT_batch nhwc tanh", got, want, nout, RTOL, ATOL), 0);
    // batch invariance: each image alone gives the bits it has in the batch
    eng_convT_batch(got, 0, scratch, xt, wt, b, B, C, H, W, OC, K, S, P, ENG_CONV_ACT_RELU);
    for (int n = 0; n < B; n++) {
        eng_convT_batch(got2, 0, scratch, xt + (size_t)n * H * W * C, wt, b, 1, C, H, W, OC, K, S, P, ENG_CONV_ACT_RELU);
        ck_assert_msg(memcmp(got2, got + (size_t)n * OC * OP, OC * OP * sizeof(float)) == 0, "image %d alone differs", n);
    }
    free(x); free(xt); free(w); free(wt); free(want); free(got); free(got2); free(col); free(scratch);
}
END_TEST

// ---------------------------------------------------------------- cnn: folded vs unfolded
// Gives every batch norm of m non-trivial statistics and affine parameters.
static void randomise_bn(eng_cnn *m) {
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->type != ENG_CNN_BATCHNORM) continue;
        for (size_t k = 0; k < L->w.n; k++) {
            L->w.val[k] = tu_urand(0.5f, 2.0f);
            L->b.val[k] = tu_urand(-0.5f, 0.5f);
            L->running_mean[k] = tu_urand(-0.3f, 0.3f);
            L->running_var[k] = tu_urand(0.2f, 3.0f);
        }
    }
}

// logits of eng_cnn_forward (unfolded, per-image convolutions) and eng_cnn_serve for x[B]
static void compare_cnn(eng_cnn *m, const float *x, int B, const char *what) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    int shape[4] = {B, m->in_c, m->in_h, m->in_w};
    eng_var *want = eng_cnn_forward(m, &t, eng_tape_wrap(&t, (float *)x, 4, shape));
    eng_var *got = eng_cnn_serve(m, &t, eng_tape_wrap(&t, (float *)x, 4, shape));
    ck_assert_uint_eq(got->n, (size_t)B * m->n_classes);
    ck_assert_int_eq(tu_compare(what, got->val, want->val, want->n, RTOL, ATOL), 0);
    ck_assert_int_eq(t.n_entries, 0);
    eng_tape_free(&t);
}

static const char *const cnn_layers[] = {
    // conv -> BN -> ReLU (fused), conv -> ReLU -> maxpool (fused, no BN), BN
    // after a pool (not foldable), a 1x1 conv -> BN, linear -> BN (flat)
    "[{\"type\":\"conv2d\",\"out_channels\":5,\"kernel_size\":3,\"padding\":1},{\"type\":\"batchnorm\"},"
    "{\"type\":\"relu\"},{\"type\":\"conv2d\",\"out_channels\":6,\"kernel_size\":3,\"stride\":2},{\"type\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"kernel_size\":2},{\"type\":\"batchnorm\",\"eps\":0.001},"
    "{\"type\":\"conv2d\",\"out_channels\":4,\"kernel_size\":1},{\"type\":\"batchnorm\"},{\"type\":\"flatten\"},"
    "{\"type\":\"linear\",\"out_features\":12},{\"type\":\"batchnorm\"},{\"type\":\"relu\"},"
    "{\"type\":\"linear\",\"out_features\":3}]",
    // conv -> BN -> tanh (folded, not fused), conv -> maxpool 3/1 (fused, no
    // ReLU), global pool, linear -> BN last
    "[{\"type\":\"conv2d\",\"out_channels\":7,\"kernel_size\":5,\"padding\":2,\"stride\":2},{\"type\":\"batchnorm\"},"
    "{\"type\":\"tanh\"},{\"type\":\"conv2d\",\"out_channels\":6,\"kernel_size\":1},"
    "{\"type\":\"maxpool2d\",\"kernel_size\":3,\"stride\":1},{\"type\":\"conv2d\",\"out_channels\":8,\"kernel_size\":3,\"padding\":1},"
    "{\"type\":\"batchnorm\",\"eps\":0.01},{\"type\":\"gelu\"},{\"type\":\"global_avgpool\"},"
    "{\"type\":\"linear\",\"out_features\":4},{\"type\":\"batchnorm\"}]",
};
#define N_CNN ((int)(sizeof cnn_layers / sizeof cnn_layers[0]))

START_TEST(test_cnn_folded) {
    char cfg_text[2048];
    snprintf(cfg_text, sizeof cfg_text, "{\"input\":{\"channels\":3,\"height\":13,\"width\":11},\"layers\":%s}",
             cnn_layers[_i]);
    json_error_t jerr;
    json_t *cfg = json_loads(cfg_text, 0, &jerr);
    ck_assert_msg(cfg != NULL, "%s", jerr.text);
    eng_cnn m;
    char *err = NULL;
    ck_assert_msg(eng_cnn_init(&m, cfg, &err) == 0, "%s", err);
    eng_cnn_init_params(&m, 11);
    randomise_bn(&m);
    float *orig = malloc((m.n_params + m.n_buffers) * sizeof(float));
    memcpy(orig, m.params, (m.n_params + m.n_buffers) * sizeof(float));
    ck_assert_int_eq(eng_cnn_prepare_serving(&m, &err), 0);
    // the model's own parameters are untouched
    ck_assert_int_eq(memcmp(orig, m.params, (m.n_params + m.n_buffers) * sizeof(float)), 0);
    enum { B = 9 };
    size_t in = (size_t)3 * 13 * 11;
    float *x = malloc(B * in * sizeof(float));
    tu_fill(x, B * in, -2, 2);
    compare_cnn(&m, x, B, "cnn serve vs forward");
    compare_cnn(&m, x + 4 * in, 1, "cnn serve vs forward, one image");

    // saving after prepare writes the trained parameters, not the folded ones
    char *dir = tu_temp_dir("conv_batch");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(eng_cnn_save(&m, path, &err), 0);
    eng_cnn m2;
    ck_assert_int_eq(eng_cnn_init(&m2, cfg, &err), 0);
    ck_assert_msg(eng_cnn_load(&m2, path, &err) == 0, "%s", err);
    for (int i = 0; i < m.n_layers; i++) {
        eng_cnn_layer *a = &m.layers[i], *b = &m2.layers[i];
        if (a->w.n) ck_assert_int_eq(memcmp(a->w.val, b->w.val, a->w.n * sizeof(float)), 0);
        if (a->b.n) ck_assert_int_eq(memcmp(a->b.val, b->b.val, a->b.n * sizeof(float)), 0);
    }
    // and the reloaded model, prepared, serves the same logits
    ck_assert_int_eq(eng_cnn_prepare_serving(&m2, &err), 0);
    compare_cnn(&m2, x, B, "reloaded cnn serve vs forward");
    eng_cnn_free(&m2);
    tu_remove_model_dir(dir);
    eng_cnn_free(&m);
    json_decref(cfg);
    free(orig);
    free(x);
}
END_TEST

// The shipped classifier: classify_images (folded, batched) against softmax
// of the unfolded forward on the same mapped weights.
START_TEST(test_fashion_cnn) {
    const char *dir = "models/fashion-cnn";
    if (access("models/fashion-cnn/model.safetensors", R_OK) != 0) return;   // `make models` not run
    eng_model *mod;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&mod, dir, &err) == 0, "%s", err);
    eng_cnn *c = mod->impl;
    static const int batches[] = {1, 7, 64};
    for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++) {
        int B = batches[k];
        size_t in = eng_model_input_size(mod);
        float *x = malloc((size_t)B * in * sizeof(float)), *probs = malloc((size_t)B * mod->n_labels * sizeof(float));
        tu_fill(x, (size_t)B * in, -0.81f, 2.02f);   // normalised pixel range
        compare_cnn(c, x, B, "fashion-cnn logits");
        eng_tape t;
        eng_tape_init(&t, 0, 0);
        eng_var *want = eng_t_softmax(&t, eng_cnn_forward(c, &t, eng_tape_wrap(&t, x, 4, (int[]){B, 1, 28, 28})));
        size_t nw = want->n;   // want lives in t's arena: classify_images resets it
        float *w = malloc(nw * sizeof(float));
        memcpy(w, want->val, nw * sizeof(float));
        mod->arch->classify_images(mod, &t, x, B, probs);
        ck_assert_int_eq(tu_compare("fashion-cnn probs", probs, w, nw, RTOL, ATOL), 0);
        eng_tape_free(&t);
        free(x); free(probs); free(w);
    }
    eng_model_free(mod);
}
END_TEST

// ---------------------------------------------------------------- dcgan: folded vs unfolded
// generate_images (folded, batched) vs eng_dcgan_generate (unfolded tape,
// eval-mode batch norm) on g's own tensors, mapped to [0, 1] as served.
static void compare_dcgan(eng_model *mod, eng_dcgan *g, int B, uint64_t seed) {
    size_t img = (size_t)g->channels * g->height * g->width;
    float *z = malloc((size_t)B * g->n_latent * sizeof(float));
    float *got = malloc((size_t)B * img * sizeof(float)), *want = malloc((size_t)B * img * sizeof(float));
    int *labels = malloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) labels[b] = g->n_classes ? b % g->n_classes : 0;
    eng_dcgan_latents(seed, B, g->n_latent, z);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *x = eng_dcgan_generate(g, &t, eng_tape_wrap(&t, z, 2, (int[]){B, g->n_latent}),
                                    g->n_classes ? labels : NULL, 0);
    ck_assert_uint_eq(x->n, (size_t)B * img);
    for (size_t k = 0; k < x->n; k++) want[k] = 0.5f * (x->val[k] + 1.0f);
    mod->arch->generate_images(mod, &t, z, g->n_classes ? labels : NULL, B, got);
    ck_assert_int_eq(tu_compare("dcgan serve vs generate", got, want, (size_t)B * img, RTOL, ATOL), 0);
    eng_tape_free(&t);
    free(z); free(got); free(want); free(labels);
}

START_TEST(test_dcgan_folded) {
    char *dir = tu_temp_dir("conv_batch_dcgan");
    json_t *cfg = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i}", "task", "image-generation", "arch", "dcgan",
                            "n_latent", 8, "channels", _i ? 3 : 1, "height", 12, "width", 8, "g_channels", 5,
                            "d_channels", 3);
    if (_i) json_object_set_new(cfg, "labels", json_pack("[s,s,s]", "a", "b", "c"));
    eng_dcgan m;
    char *err = NULL;
    ck_assert_int_eq(eng_dcgan_init(&m, cfg, 0, &err), 0);
    eng_dcgan_init_params(&m, 5);
    for (int i = 0; i < m.n_tensors; i++) {   // batch norms far from identity
        eng_dcgan_tensor *t = &m.tensors[i];
        const char *dot = strrchr(t->name, '.');
        int bn = strstr(t->name, ".bn") != NULL;
        for (size_t k = 0; bn && k < t->n; k++) {
            if (strcmp(dot, ".running_var") == 0) t->val[k] = tu_urand(0.2f, 3.0f);
            else if (strcmp(dot, ".running_mean") == 0) t->val[k] = tu_urand(-0.05f, 0.05f);
            else if (strcmp(dot, ".weight") == 0) t->val[k] = tu_urand(0.5f, 2.0f);
            else t->val[k] = tu_urand(-0.5f, 0.5f);
        }
        if (!bn) for (size_t k = 0; k < t->n; k++) t->val[k] *= 10;   // N(0, 0.2): activations of order 1
    }
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(eng_dcgan_save_generator(&m, path, &err), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    eng_model *mod;
    ck_assert_msg(eng_model_load(&mod, dir, &err) == 0, "%s", err);
    compare_dcgan(mod, mod->impl, 6, 3);
    compare_dcgan(mod, mod->impl, 1, 4);
    eng_model_free(mod);
    eng_dcgan_free(&m);
    json_decref(cfg);
    tu_remove_model_dir(dir);
}
END_TEST

START_TEST(test_fashion_dcgan) {
    if (access("models/fashion-dcgan/model.safetensors", R_OK) != 0) return;   // `make models` not run
    eng_model *mod;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&mod, "models/fashion-dcgan", &err) == 0, "%s", err);
    compare_dcgan(mod, mod->impl, 20, 1);
    compare_dcgan(mod, mod->impl, 1, 2);
    eng_model_free(mod);
}
END_TEST

static Suite *conv_batch_suite(void) {
    Suite *s = suite_create("conv_batch");
    TCase *tc = tcase_create("conv_batch");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv2d_batch, 0, N_GEO2);
    tcase_add_loop_test(tc, test_convT_batch, 0, N_GEOT);
    tcase_add_loop_test(tc, test_cnn_folded, 0, N_CNN);
    tcase_add_test(tc, test_fashion_cnn);
    tcase_add_loop_test(tc, test_dcgan_folded, 0, 2);
    tcase_add_test(tc, test_fashion_dcgan);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(conv_batch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
