// test_transformer_net_train.c — TransformerNet's training forward
// (engine/arch/transformer_net_train.c): it computes what PyTorch computes
// (the tests/ref/transformer_net_tiny fixture of test_transformer_net.c) and
// what the serving forward computes on random weights, for sizes that are
// and are not multiples of 4; what it saves loads through the serving loader;
// its gradients agree with finite differences on a tiny width. Run from the
// repository root.
#include "engine/arch/transformer_net_train.h"

#include <check.h>            // Check unit-test framework
#include <math.h>             // fabs
#include <stdio.h>            // FILE, fscanf
#include <stdlib.h>           // malloc, free
#include <string.h>           // strcmp
#include <unistd.h>           // unlink, rmdir
#include "engine/arch/transformer_net.h"   // eng_tnet_load_dir, eng_tnet_forward
#include "engine/core/tape_style.h"        // eng_t_mse
#include "engine/core/util.h"              // eng_write_file_atomic
#include "testutil.h"                      // tu_temp_dir, tu_fill

#define REF_DIR "tests/ref/transformer_net_tiny"

// The fixture's first arrays: dims [B,H,W], x, y (see test_transformer_net.c).
static float *read_array(FILE *fp, const char *want, size_t n) {
    char name[64];
    size_t count;
    ck_assert_int_eq(fscanf(fp, "%63s %zu", name, &count), 2);
    ck_assert_str_eq(name, want);
    ck_assert_uint_eq(count, n);
    float *v = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        double d;
        ck_assert_int_eq(fscanf(fp, "%lf", &d), 1);
        v[i] = (float)d;
    }
    return v;
}

// Runs the training forward on x[B,3,H,W] with grad off; returns a malloc'd copy of the output.
static float *train_forward(eng_tnet_train *m, const float *x, int B, int H, int W) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *y = eng_tnet_train_forward(m, &t, eng_tape_wrap(&t, (float *)x, 4, (int[]){B, 3, H, W}));
    ck_assert_int_eq(y->shape[0], B);
    ck_assert_int_eq(y->shape[1], 3);
    ck_assert_int_eq(y->shape[2], H);
    ck_assert_int_eq(y->shape[3], W);
    float *out = malloc(y->n * sizeof(float));
    memcpy(out, y->val, y->n * sizeof(float));
    eng_tape_free(&t);
    return out;
}

START_TEST(test_matches_pytorch) {
    FILE *fp = fopen(REF_DIR "/ref.txt", "r");
    ck_assert_msg(fp != NULL, "cannot open " REF_DIR "/ref.txt (run from the repository root)");
    float *d = read_array(fp, "dims", 3);
    int B = (int)d[0], H = (int)d[1], W = (int)d[2];
    free(d);
    size_t n = (size_t)B * 3 * H * W;
    float *x = read_array(fp, "x", n), *want = read_array(fp, "y", n);
    fclose(fp);
    eng_tnet_train m;
    char *err = NULL;
    ck_assert_int_eq(eng_tnet_train_init(&m, 0.25f, 1, &err), 0);
    ck_assert_uint_eq(m.n_params, 108771);   // what the converter counted
    ck_assert_msg(eng_tnet_train_load(&m, REF_DIR, &err) == 0, "load: %s", err ? err : "?");
    float *y = train_forward(&m, x, B, H, W);   // 18x23: not a multiple of 4
    ck_assert_msg(tu_compare("train forward vs PyTorch", y, want, n, 0, 0.05) == 0, "differs from PyTorch");
    eng_tnet_train_free(&m);
    free(x); free(want); free(y);
}
END_TEST

// Random weights (norm scales and shifts too), saved, loaded by the serving
// loader, and both forwards run on the same images.
START_TEST(test_matches_serving) {
    const float width = 0.375f;   // 12/24/48 channels: not a width PyTorch's fixture covers
    eng_tnet_train m;
    char *err = NULL;
    ck_assert_int_eq(eng_tnet_train_init(&m, width, 42, &err), 0);
    tu_rng_state = 3;
    for (int k = 0; k < ENG_TNET_N_TENSORS; k++)
        if (!strstr(m.tensors[k].name, "conv2d")) tu_fill(m.tensors[k].val, m.tensors[k].n, 0.5f, 1.5f);
    char *dir = tu_temp_dir("tnet_train");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(eng_tnet_train_save(&m, path, &err) == 0, "save: %s", err ? err : "?");
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"task\":\"image-stylization\",\"arch\":\"transformer_net\",\"width\":0.375}";
    ck_assert_int_eq(eng_write_file_atomic(path, cfg, strlen(cfg), &err), 0);
    json_t *config = tu_load_json(path);
    eng_tnet *s = NULL;
    ck_assert_msg(eng_tnet_load_dir(&s, dir, config, &err) == 0, "serving load: %s", err ? err : "?");
    ck_assert_uint_eq(s->n_params, m.n_params);
    const int sizes[][3] = {{2, 16, 20}, {1, 21, 18}, {1, 7, 13}};
    for (int c = 0; c < 3; c++) {
        int B = sizes[c][0], H = sizes[c][1], W = sizes[c][2];
        size_t n = (size_t)B * 3 * H * W;
        float *x = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
        tu_fill(x, n, 0, 255);
        eng_arena a;
        eng_arena_init(&a);
        eng_tnet_forward(s, &a, x, B, H, W, want);
        eng_arena_free(&a);
        float *y = train_forward(&m, x, B, H, W);
        double mx = 0;
        for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
        ck_assert_msg(mx > 1, "outputs too small (%g) for the comparison to mean anything", mx);
        char what[64];
        snprintf(what, sizeof what, "train vs serving %dx%dx%d", B, H, W);
        ck_assert_msg(tu_compare(what, y, want, n, 1e-4, 1e-4 * mx) == 0, "%s differs", what);
        free(x); free(want); free(y);
    }
    eng_tnet_free(s);
    json_decref(config);
    tu_remove_model_dir(dir);
    eng_tnet_train_free(&m);
}
END_TEST

// d mse(net(x), target) / d(every parameter tensor, sampled, and the
// input) against central differences of the same forward, at width 1/16
// (2/4/8 channels) on a 2 x 10x13 batch.
static double loss_of(eng_tnet_train *m, const float *x, const float *target, int B, int H, int W) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *y = eng_tnet_train_forward(m, &t, eng_tape_wrap(&t, (float *)x, 4, (int[]){B, 3, H, W}));
    double s = 0;
    for (size_t i = 0; i < y->n; i++) s += ((double)y->val[i] - target[i]) * ((double)y->val[i] - target[i]);
    eng_tape_free(&t);
    return s / (double)((size_t)B * 3 * H * W);
}

START_TEST(test_gradient_check) {
    const int B = 2, H = 10, W = 13;
    eng_tnet_train m;
    char *err = NULL;
    ck_assert_int_eq(eng_tnet_train_init(&m, 1.0f / 16, 5, &err), 0);
    ck_assert_int_eq(m.c1, 2);
    tu_rng_state = 9;
    for (int k = 0; k < ENG_TNET_N_TENSORS; k++)
        if (!strstr(m.tensors[k].name, "conv2d")) tu_fill(m.tensors[k].val, m.tensors[k].n, 0.5f, 1.5f);
    size_t n = (size_t)B * 3 * H * W;
    float *x = malloc(n * sizeof(float)), *target = malloc(n * sizeof(float)), *gx = calloc(n, sizeof(float));
    tu_fill(x, n, 0, 255);
    tu_fill(target, n, -2, 2);
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    memset(m.grads, 0, m.n_params * sizeof(float));
    eng_var xv;
    eng_var_param(&xv, x, gx, 4, (int[]){B, 3, H, W});
    eng_var *y = eng_tnet_train_forward(&m, &t, &xv);
    eng_var *loss = eng_t_mse(&t, y, eng_tape_wrap(&t, target, 4, (int[]){B, 3, H, W}));
    eng_tape_backward(&t, loss);
    // a few entries of every tensor and of the input. The network is a deep
    // ReLU net on tiny instance-norm planes, so differences need a small step
    // (1e-3: no kink crossed, float rounding still far below the signal) and
    // are compared against the tensor's largest gradient; the whole sample must
    // also point the same way (cosine), and each difference may be off by the
    // float rounding of the loss (outputs in 0..255 make it large). The biases
    // before instance norms have a zero gradient: the norm removes any
    // per-channel constant.
    int checked = 0;
    double dot = 0, ng = 0, nf = 0;
    const double base = loss_of(&m, x, target, B, H, W);   // float outputs: the loss is good to ~1e-6 of itself
    for (int k = 0; k <= ENG_TNET_N_TENSORS; k++) {
        float *val = k < ENG_TNET_N_TENSORS ? m.tensors[k].val : x;
        float *grad = k < ENG_TNET_N_TENSORS ? m.tensors[k].grad : gx;
        size_t cnt = k < ENG_TNET_N_TENSORS ? m.tensors[k].n : n;
        const char *name = k < ENG_TNET_N_TENSORS ? m.tensors[k].name : "input";
        const float h = k < ENG_TNET_N_TENSORS ? 1e-3f : 0.05f;
        double gmax = 0;
        for (size_t i = 0; i < cnt; i++) gmax = fmax(gmax, fabs(grad[i]));
        for (int s = 0; s < 4; s++) {
            size_t i = (size_t)s * 7919 % cnt;
            float keep = val[i];
            val[i] = keep + h;
            double lp = loss_of(&m, x, target, B, H, W);
            val[i] = keep - h;
            double lm = loss_of(&m, x, target, B, H, W);
            val[i] = keep;
            double fd = (lp - lm) / (2.0 * h);
            double tol = 5e-2 * fmax(fabs(fd), gmax) + 2e-7 * base / h;   // + float rounding of the loss over 2h (~3e-8 base/h measured)
            ck_assert_msg(fabs(grad[i] - fd) <= tol, "%s[%zu]: grad %.6g, finite difference %.6g (max |grad| %.3g)",
                          name, i, grad[i], fd, gmax);
            dot += grad[i] * fd, ng += (double)grad[i] * grad[i], nf += fd * fd;
            checked++;
        }
    }
    double cosine = dot / sqrt(ng * nf);
    fprintf(stderr, "transformer_net_train gradient check: %d entries, cosine %.6f (loss %.4g)\n", checked, cosine, base);
    ck_assert_msg(cosine > 0.995, "gradients and finite differences disagree (cosine %g)", cosine);
    ck_assert_int_eq(checked, 4 * (ENG_TNET_N_TENSORS + 1));
    eng_tape_free(&t);
    eng_tnet_train_free(&m);
    free(x); free(target); free(gx);
}
END_TEST

START_TEST(test_bad_width_and_load) {
    eng_tnet_train m;
    char *err = NULL;
    ck_assert_int_eq(eng_tnet_train_init(&m, 0.0f, 1, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "width"));
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_tnet_train_init(&m, 0.5f, 1, &err), 0);
    ck_assert_int_eq(eng_tnet_train_load(&m, REF_DIR, &err), -1);   // the fixture is width 0.25
    ck_assert_ptr_nonnull(strstr(err, "conv1.conv2d.weight"));
    free(err);
    eng_tnet_train_free(&m);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("transformer_net_train");
    TCase *tc = tcase_create("transformer_net_train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_matches_pytorch);
    tcase_add_test(tc, test_matches_serving);
    tcase_add_test(tc, test_gradient_check);
    tcase_add_test(tc, test_bad_width_and_load);
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
