// test_style_loss.c — the perceptual loss (engine/arch/style_loss.h): the
// loss network is a function of its seed alone; the style target's Gram
// matrices match a double-precision Gram of the features; an image compared
// with itself has zero loss; the batch broadcasts the style target; and the
// gradient of the whole loss w.r.t. the pixels matches central differences.
#include "engine/arch/style_loss.h"

#include <check.h>        // Check unit-test framework
#include <math.h>         // fabs, sin
#include <stdio.h>        // fprintf
#include <stdlib.h>       // malloc, free
#include <string.h>       // memcpy, memcmp
#include "engine/core/rng.h"       // eng_rng
#include "engine/train/stylize.h"  // eng_stylize
#include "tests/unit/testutil.h"   // tu_compare

// A smooth synthetic picture with some texture: gradients, stripes, noise.
static void picture(float *x, int H, int W, uint64_t seed) {
    eng_rng r;
    eng_rng_seed(&r, seed);
    double f = 0.2 + 0.3 * eng_rng_uniform(&r);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double v = 128 + 60 * sin(f * (i + 2 * c) + 0.1 * j * (c + 1)) + 40.0 * (j - W / 2) / W * (c - 1) +
                           20 * (eng_rng_uniform(&r) - 0.5);
                x[((size_t)c * H + i) * W + j] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static eng_lossnet *net(uint64_t seed) {
    eng_lossnet *n = NULL;
    char *err = NULL;
    ck_assert_msg(eng_lossnet_new(&n, seed, &err) == 0, "lossnet: %s", err ? err : "?");
    return n;
}

// Features of x under the net, copied into one malloc'd buffer (sizes in *len).
static float *features_copy(const eng_lossnet *n, const float *x, int H, int W, size_t *len) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *f[ENG_LOSSNET_MAX_LAYERS];
    int L = eng_lossnet_features(&t, n, eng_tape_wrap(&t, (float *)x, 4, (int[]){1, 3, H, W}), f);
    size_t total = 0;
    for (int l = 0; l < L; l++) total += f[l]->n;
    float *out = malloc(total * sizeof(float)), *p = out;
    for (int l = 0; l < L; l++) { memcpy(p, f[l]->val, f[l]->n * sizeof(float)); p += f[l]->n; }
    eng_tape_free(&t);
    *len = total;
    return out;
}

START_TEST(test_seed_determines_features) {
    enum { H = 40, W = 36 };
    float x[3 * H * W];
    picture(x, H, W, 1);
    eng_lossnet *a = net(7), *b = net(7), *c = net(8);
    ck_assert_int_ge(eng_lossnet_n_layers(a), 3);
    ck_assert_int_le(eng_lossnet_n_layers(a), ENG_LOSSNET_MAX_LAYERS);
    size_t na, nb, nc;
    float *fa = features_copy(a, x, H, W, &na), *fb = features_copy(b, x, H, W, &nb), *fc = features_copy(c, x, H, W, &nc);
    ck_assert(na == nb && na == nc);
    ck_assert_msg(memcmp(fa, fb, na * sizeof(float)) == 0, "same seed, different features");
    size_t differ = 0, nonzero = 0;
    for (size_t i = 0; i < na; i++) { differ += fa[i] != fc[i]; nonzero += fa[i] != 0; }
    ck_assert_msg(differ > na / 4, "another seed changed only %zu of %zu features", differ, na);
    // ReLU features of a textured picture: a healthy share is active at every depth
    ck_assert_msg(nonzero > na / 5, "only %zu of %zu features active", nonzero, na);
    free(fa); free(fb); free(fc);
    eng_lossnet_free(a); eng_lossnet_free(b); eng_lossnet_free(c);
}
END_TEST

START_TEST(test_style_target_is_gram_of_features) {
    enum { H = 48, W = 40 };
    float x[3 * H * W];
    picture(x, H, W, 2);
    eng_lossnet *n = net(ENG_LOSSNET_DEFAULT_SEED);
    eng_style_target st;
    char *err = NULL;
    ck_assert_msg(eng_style_target_compute(&st, n, x, H, W, &err) == 0, "%s", err);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *f[ENG_LOSSNET_MAX_LAYERS];
    int L = eng_lossnet_features(&t, n, eng_tape_wrap(&t, x, 4, (int[]){1, 3, H, W}), f);
    ck_assert_int_eq(st.n_layers, L);
    for (int l = 0; l < L; l++) {
        int C = f[l]->shape[1];
        size_t N = (size_t)f[l]->shape[2] * f[l]->shape[3];
        ck_assert_int_eq(C, st.channels[l]);
        ck_assert_int_eq(C, eng_lossnet_channels(n, l));
        float *want = malloc((size_t)C * C * sizeof(float));
        // level 0 (colour): the Gram; the random levels: the Gram of the centred features
        double *mean = calloc((size_t)C, sizeof(double));
        for (int i = 0; i < C && l > 0; i++) {
            for (size_t k = 0; k < N; k++) mean[i] += f[l]->val[i * N + k];
            mean[i] /= (double)N;
        }
        double ss = 0, su = 0;   // sums of squares of the centred and the uncentred Gram
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) {
                double s = 0, u = 0;
                for (size_t k = 0; k < N; k++) {
                    s += (f[l]->val[i * N + k] - mean[i]) * (f[l]->val[j * N + k] - mean[j]);
                    u += (double)f[l]->val[i * N + k] * f[l]->val[j * N + k];
                }
                u /= (double)C * N;
                su += u * u;
                want[i * C + j] = (float)(s / ((double)C * N));
                ss += (double)want[i * C + j] * want[i * C + j];
            }
        ck_assert_int_eq(tu_compare("gram", st.gram[l], want, (size_t)C * C, 1e-4, 1e-6), 0);
        double norm = (ss + (l > 0 ? 1e-3 * su : 0)) / ((double)C * C);
        ck_assert_msg(fabs(st.norm[l] - norm) <= 1e-4 * norm, "level %d: norm %g vs %g", l, st.norm[l], norm);
        free(want);
        free(mean);
    }
    eng_tape_free(&t);

    // The style image against its own target: zero style loss; against itself as content: zero content loss.
    eng_tape_init(&t, 0, 0);
    eng_style_weights w;
    eng_style_weights_default(&w);
    eng_style_loss_parts p;
    eng_var *xv = eng_tape_wrap(&t, x, 4, (int[]){1, 3, H, W});
    eng_var *loss = eng_style_loss(&t, n, xv, xv, &st, &w, &p);
    ck_assert_msg(fabs(loss->val[0]) < 1e-5 && p.style < 1e-6 && p.content == 0,
                  "self loss %g (style %g content %g)", loss->val[0], p.style, p.content);
    eng_tape_free(&t);

    // Too small a style image is an error, not a crash.
    eng_style_target bad;
    ck_assert_int_eq(eng_style_target_compute(&bad, n, x, 8, 8, &err), -1);
    ck_assert_ptr_nonnull(err);
    free(err);
    eng_style_target_free(&st);
    eng_lossnet_free(n);
}
END_TEST

// A hand example: a flat image of colour (200, 100, 50). The colour level's
// features at every pixel are v = ((p/255 - mean) / std for each channel, 1)
// with ImageNet's mean and std, so its Gram is v v^T / 4 (eng_t_gram divides
// by C*H*W and every pixel adds v v^T). The random levels of a flat image
// are flat too (reflection padding keeps it flat): centred, their Grams are 0.
START_TEST(test_style_target_by_hand) {
    enum { H = 32, W = 40 };
    static float x[3 * H * W];
    const float px[3] = {200, 100, 50}, mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H * W; i++) x[c * H * W + i] = px[c];
    eng_lossnet *n = net(ENG_LOSSNET_DEFAULT_SEED);
    eng_style_target st;
    ck_assert_int_eq(eng_style_target_compute(&st, n, x, H, W, NULL), 0);
    ck_assert_int_eq(st.channels[0], 4);
    double v[4] = {0, 0, 0, 1};
    for (int c = 0; c < 3; c++) v[c] = (px[c] / 255.0 - mean[c]) / sd[c];
    float want[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) want[i * 4 + j] = (float)(v[i] * v[j] / 4);
    ck_assert_int_eq(tu_compare("colour gram", st.gram[0], want, 16, 1e-5, 1e-6), 0);
    for (int l = 1; l < st.n_layers; l++)   // flat features, centred: zero covariance
        for (int i = 0; i < st.channels[l] * st.channels[l]; i++)
            ck_assert_msg(fabs(st.gram[l][i]) < 1e-9, "level %d: gram[%d] = %g", l, i, st.gram[l][i]);
    eng_style_target_free(&st);
    eng_lossnet_free(n);
}
END_TEST

// A batch of two images: the style term is the mean of each image's own.
START_TEST(test_batch_broadcasts_style_target) {
    enum { H = 32, W = 32 };
    float s[3 * H * W], xy[2 * 3 * H * W];
    picture(s, H, W, 3);
    picture(xy, H, W, 4);
    picture(xy + 3 * H * W, H, W, 5);
    eng_lossnet *n = net(ENG_LOSSNET_DEFAULT_SEED);
    eng_style_target st;
    ck_assert_int_eq(eng_style_target_compute(&st, n, s, H, W, NULL), 0);
    eng_style_weights w;
    eng_style_weights_default(&w);
    float one[2];
    eng_style_loss_parts both;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_style_loss(&t, n, eng_tape_wrap(&t, xy, 4, (int[]){2, 3, H, W}), NULL, &st, &w, &both);
    for (int b = 0; b < 2; b++) {
        eng_style_loss_parts p;
        eng_style_loss(&t, n, eng_tape_wrap(&t, xy + b * 3 * H * W, 4, (int[]){1, 3, H, W}), NULL, &st, &w, &p);
        one[b] = p.style;
    }
    eng_tape_free(&t);
    ck_assert_msg(one[0] > 1e-3 && one[1] > 1e-3, "different pictures, no style loss");
    ck_assert_msg(fabs(both.style - (one[0] + one[1]) / 2) <= 1e-4 * both.style,
                  "batch %g vs mean of singles %g", both.style, (one[0] + one[1]) / 2);
    eng_style_target_free(&st);
    eng_lossnet_free(n);
}
END_TEST

// Loss of pixels x (forward only).
static double loss_at(const eng_lossnet *n, float *x, float *c, int H, int W, const eng_style_target *st,
                      const eng_style_weights *w) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *l = eng_style_loss(&t, n, eng_tape_wrap(&t, x, 4, (int[]){1, 3, H, W}),
                                eng_tape_wrap(&t, c, 4, (int[]){1, 3, H, W}), st, w, NULL);
    double v = l->val[0];
    eng_tape_free(&t);
    return v;
}

// d(loss)/d(pixels) against central differences along directions over all
// pixels (the ReLU kinks make single-pixel differences noisy; a direction
// over all pixels averages them) and at single pixels with a looser bound.
// The directions are the gradient's signs with a random 25% of them flipped:
// random, yet far enough from orthogonal to the gradient that the float
// rounding of the loss does not swamp the difference.
START_TEST(test_gradient_matches_finite_differences) {
    enum { H = 32, W = 32, N = 3 * H * W };
    static float s[N], c[N], x[N], g[N], xp[N];
    picture(s, H, W, 10);
    picture(c, H, W, 11);
    picture(x, H, W, 12);
    eng_lossnet *n = net(ENG_LOSSNET_DEFAULT_SEED);
    eng_style_target st;
    ck_assert_int_eq(eng_style_target_compute(&st, n, s, H, W, NULL), 0);
    eng_style_weights w;
    eng_style_weights_default(&w);
    w.tv_weight = 5.0f;   // exercise the TV term's backward too
    w.layer_weight[1] = 2.0f;

    eng_tape t;
    eng_tape_init(&t, 1, 1);
    eng_var *xv = eng_tape_var(&t, 4, (int[]){1, 3, H, W});
    memcpy(xv->val, x, sizeof x);
    eng_var *cv = eng_tape_wrap(&t, c, 4, (int[]){1, 3, H, W});
    eng_style_loss_parts p;
    eng_var *loss = eng_style_loss(&t, n, xv, cv, &st, &w, &p);
    ck_assert(p.content > 0 && p.style > 0 && p.tv > 0);
    ck_assert(fabs(p.total - (p.content + w.style_weight * p.style + w.tv_weight * p.tv)) <= 1e-4 * p.total);
    eng_tape_backward(&t, loss);
    memcpy(g, xv->grad, sizeof g);
    eng_tape_free(&t);

    eng_rng r;
    eng_rng_seed(&r, 99);
    const double h = 0.05;   // pixel levels
    for (int trial = 0; trial < 3; trial++) {
        static float d[N];
        double gd = 0;
        for (int i = 0; i < N; i++) {
            d[i] = (g[i] < 0 ? -1.0f : 1.0f) * (eng_rng_uniform(&r) < 0.25f ? -1.0f : 1.0f);
            gd += (double)g[i] * d[i];
        }
        for (int i = 0; i < N; i++) xp[i] = x[i] + (float)h * d[i];
        double lp = loss_at(n, xp, c, H, W, &st, &w);
        for (int i = 0; i < N; i++) xp[i] = x[i] - (float)h * d[i];
        double lm = loss_at(n, xp, c, H, W, &st, &w);
        double fd = (lp - lm) / (2 * h);
        fprintf(stderr, "direction %d: analytic %.6g, finite difference %.6g\n", trial, gd, fd);
        ck_assert_msg(fabs(fd - gd) <= 0.005 * fabs(gd), "direction %d: analytic %g vs fd %g", trial, gd, fd);
    }
    // single pixels with large gradients
    double gmax = 0;
    for (int i = 0; i < N; i++) gmax = fmax(gmax, fabs(g[i]));
    int checked = 0, good = 0;
    for (int i = 0; i < N && checked < 12; i += 37) {
        if (fabs(g[i]) < 0.1 * gmax) continue;
        memcpy(xp, x, sizeof x);
        double hp = 0.5;
        xp[i] = x[i] + (float)hp;
        double lp = loss_at(n, xp, c, H, W, &st, &w);
        xp[i] = x[i] - (float)hp;
        double lm = loss_at(n, xp, c, H, W, &st, &w);
        double fd = (lp - lm) / (2 * hp);
        checked++;
        good += fabs(fd - g[i]) <= 0.1 * fabs(g[i]) + 1e-6;
    }
    fprintf(stderr, "single pixels: %d of %d match\n", good, checked);
    ck_assert_msg(checked >= 6 && good >= checked - 2, "%d of %d pixels match", good, checked);
    eng_style_target_free(&st);
    eng_lossnet_free(n);
}
END_TEST

// Style by optimisation: the loss falls to under half in 30 steps, the pixels
// stay in 0..255, progress is reported, and a set cancel flag stops it.
static int n_reports;
static void count_report(void *ctx, const eng_stylize_progress *p) {
    (void)ctx;
    ck_assert(p->step >= 1 && p->step <= p->total_steps && p->loss > 0);
    n_reports++;
}

START_TEST(test_stylize_lowers_the_loss) {
    enum { H = 40, W = 48, SH = 36, SW = 36 };
    static float c[3 * H * W], s[3 * SH * SW], y[3 * H * W];
    picture(c, H, W, 20);
    picture(s, SH, SW, 21);
    eng_stylize_opts o;
    eng_stylize_opts_init(&o);
    o.steps = 30;
    o.log_every = 10;
    o.progress = count_report;
    eng_style_loss_parts first, last;
    char *err = NULL;
    n_reports = 0;
    ck_assert_msg(eng_stylize(&o, c, H, W, s, SH, SW, y, &first, &last, &err) == 0, "%s", err);
    fprintf(stderr, "stylize: loss %.4f -> %.4f (style %.4f -> %.4f, content %.4f)\n", first.total, last.total,
            first.style, last.style, last.content);
    ck_assert_msg(last.total < 0.5f * first.total, "loss %g -> %g", first.total, last.total);
    ck_assert(first.content == 0 && last.content > 0);   // it starts at the photo and moves away from it
    ck_assert_int_eq(n_reports, 4);                      // steps 1, 10, 20, 30
    for (int i = 0; i < 3 * H * W; i++) ck_assert(y[i] >= 0 && y[i] <= 255);

    volatile int cancel = 1;
    o.cancel = &cancel;
    ck_assert_int_eq(eng_stylize(&o, c, H, W, s, SH, SW, y, NULL, NULL, &err), -1);
    ck_assert_str_eq(err, "cancelled");
    free(err);
    o.cancel = NULL;
    ck_assert_int_eq(eng_stylize(&o, c, 20, 20, s, SH, SW, y, NULL, NULL, &err), -1);   // too small
    free(err);
}
END_TEST

static Suite *style_loss_suite(void) {
    Suite *s = suite_create("style_loss");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_seed_determines_features);
    tcase_add_test(tc, test_style_target_is_gram_of_features);
    tcase_add_test(tc, test_style_target_by_hand);
    tcase_add_test(tc, test_batch_broadcasts_style_target);
    tcase_add_test(tc, test_gradient_matches_finite_differences);
    tcase_add_test(tc, test_stylize_lowers_the_loss);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(style_loss_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
