// test_dcgan.c — conv_transpose2d (adjoint of conv2d, finite differences),
// leaky ReLU, the DCGAN's shapes, serving determinism and batch invariance,
// a GAN step lowering the discriminator's loss, resuming GAN training.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/arch/dcgan.h"
#include "engine/arch/model.h"
#include "engine/core/ops.h"
#include "engine/core/rng.h"
#include "engine/core/tape.h"
#include "engine/io/grid.h"
#include "engine/train/train_internal.h"
#include "tests/unit/testutil.h"

static void fill(float *x, size_t n, uint64_t seed) {
    eng_rng r;
    eng_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = 2 * eng_rng_uniform(&r) - 1;
}

// Geometries: {B, C, H, W, OC, K, stride, pad}
static const int geo[][8] = {
    {2, 3, 4, 4, 2, 4, 2, 1},   // the DCGAN's upsampling
    {1, 2, 5, 3, 3, 3, 1, 1},
    {2, 1, 3, 4, 2, 3, 2, 0},
    {1, 4, 2, 2, 1, 4, 2, 1},
    {1, 2, 3, 3, 2, 1, 1, 0},   // 1x1
};
#define N_GEO ((int)(sizeof geo / sizeof geo[0]))

// <conv2d(y, w), x> == <y, conv_transpose2d(x, w)>: conv_transpose2d maps
// x[B,C,H,W] to y[B,OC,OH,OW]; conv2d with the same w (read as [C,OC,K,K],
// i.e. OC inputs, C outputs) maps y back to [B,C,H,W].
START_TEST(test_adjoint_identity) {
    const int *g = geo[_i];
    int B = g[0], C = g[1], H = g[2], W = g[3], OC = g[4], K = g[5], S = g[6], P = g[7];
    int OH = eng_conv_transpose2d_out_dim(H, K, S, P), OW = eng_conv_transpose2d_out_dim(W, K, S, P);
    ck_assert_int_eq((OH + 2 * P - K) / S + 1, H);
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * OH * OW, nw = (size_t)C * OC * K * K;
    float *x = malloc(nx * 4), *y = malloc(ny * 4), *w = malloc(nw * 4), *tx = malloc(ny * 4), *cy = malloc(nx * 4);
    float *col = malloc((eng_conv_transpose2d_col_size(C, H, W, OC, K, S, P) + eng_conv2d_col_size(OC, OH, OW, K, K, S, P)) * 4);
    fill(x, nx, 1); fill(y, ny, 2); fill(w, nw, 3);
    eng_conv_transpose2d_forward(tx, col, x, w, NULL, B, C, H, W, OC, K, S, P);
    eng_conv2d_forward(cy, col, y, w, NULL, B, OC, OH, OW, C, K, K, S, P);
    double a = 0, b = 0;
    for (size_t i = 0; i < ny; i++) a += (double)tx[i] * y[i];
    for (size_t i = 0; i < nx; i++) b += (double)cy[i] * x[i];
    ck_assert_msg(fabs(a - b) < 1e-4 * (fabs(a) + 1), "geometry %d: <convT(x), y> %.8g != <x, conv(y)> %.8g", _i, a, b);
    // and against the definition, as plain loops (PyTorch's ConvTranspose2d)
    float *ref = calloc(ny, 4);
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    for (int oc = 0; oc < OC; oc++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                int oh = i * S - P + kh, ow = j * S - P + kw;
                                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                                ref[(((size_t)n * OC + oc) * OH + oh) * OW + ow] +=
                                    x[(((size_t)n * C + c) * H + i) * W + j] * w[(((size_t)c * OC + oc) * K + kh) * K + kw];
                            }
    ck_assert_int_eq(tu_compare("convT", tx, ref, ny, 1e-5, 1e-5), 0);
    free(x); free(y); free(w); free(tx); free(cy); free(col); free(ref);
}
END_TEST

// Gradients of L = sum(r * f(x, w, b)) against central differences (double-checked in float).
START_TEST(test_conv_transpose_gradients_fd) {
    const int *g = geo[_i];
    int B = g[0], C = g[1], H = g[2], W = g[3], OC = g[4], K = g[5], S = g[6], P = g[7];
    size_t nx = (size_t)B * C * H * W, nw = (size_t)C * OC * K * K;
    float *xv = malloc(nx * 4), *wv = malloc(nw * 4), *bv = malloc(OC * 4);
    float *xg = calloc(nx, 4), *wg = calloc(nw, 4), *bg = calloc(OC, 4);
    fill(xv, nx, 4); fill(wv, nw, 5); fill(bv, OC, 6);
    eng_var x, w, b;
    eng_var_param(&x, xv, xg, 4, (int[]){B, C, H, W});
    eng_var_param(&w, wv, wg, 4, (int[]){C, OC, K, K});
    eng_var_param(&b, bv, bg, 1, (int[]){OC});
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    // L = sum(r * convT(x)) (leaky ReLU's kink is tested on its own below)
    eng_var *y = eng_t_conv_transpose2d(&t, &x, &w, &b, S, P);
    float *r = malloc(y->n * 4);
    fill(r, y->n, 7);
    // a weighted sum as a linear layer with one output: [1, n] x [1, n]^T
    eng_var rw;
    eng_var_param(&rw, r, NULL, 2, (int[]){1, (int)y->n});
    eng_var *flat = eng_t_flatten(&t, y);
    flat->ndim = 2; flat->shape[0] = 1; flat->shape[1] = (int)y->n;
    eng_var *L = eng_t_linear(&t, flat, &rw, NULL);
    eng_tape_backward(&t, L);
    float *vals[3] = {xv, wv, bv}, *grads[3] = {xg, wg, bg};
    size_t ns[3] = {nx, nw, (size_t)OC};
    eng_tape tf;
    eng_tape_init(&tf, 0, 0);
    for (int v = 0; v < 3; v++)
        for (size_t i = 0; i < ns[v]; i++) {
            float keep = vals[v][i], e = 1e-2f;
            double f[2];
            for (int s = 0; s < 2; s++) {
                vals[v][i] = keep + (s ? -e : e);
                eng_tape_reset(&tf);
                eng_var *yy = eng_t_conv_transpose2d(&tf, &x, &w, &b, S, P);
                double acc = 0;
                for (size_t k = 0; k < yy->n; k++) acc += (double)r[k] * yy->val[k];
                f[s] = acc;
            }
            vals[v][i] = keep;
            double fd = (f[0] - f[1]) / (2 * e);
            ck_assert_msg(fabs(fd - grads[v][i]) < 2e-2 * (1 + fabs(fd)), "geometry %d input %d [%zu]: fd %.6f grad %.6f",
                          _i, v, i, fd, grads[v][i]);
        }
    eng_tape_free(&t); eng_tape_free(&tf);
    free(xv); free(wv); free(bv); free(xg); free(wg); free(bg); free(r);
}
END_TEST

// Leaky ReLU: forward, and its tape gradient (L = <r, leaky(x)>) against the
// definition, with x away from the kink.
START_TEST(test_leaky_relu) {
    enum { N = 64 };
    float x[N], g[N], r[N];
    fill(x, N, 21); fill(r, N, 22);
    for (int i = 0; i < N; i++) { if (fabsf(x[i]) < 0.05f) x[i] = 0.5f; g[i] = 1.0f; }   // g: accumulates onto 1
    eng_var v, rv;
    eng_var_param(&v, x, g, 2, (int[]){1, N});
    eng_var_param(&rv, r, NULL, 2, (int[]){1, N});
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    eng_var *y = eng_t_leaky_relu(&t, &v, 0.2f);
    for (int i = 0; i < N; i++) ck_assert_float_eq(y->val[i], x[i] > 0 ? x[i] : 0.2f * x[i]);
    eng_tape_backward(&t, eng_t_linear(&t, y, &rv, NULL));
    for (int i = 0; i < N; i++) ck_assert_float_eq_tol(g[i], 1.0f + (x[i] > 0 ? r[i] : 0.2f * r[i]), 1e-6f);
    eng_tape_free(&t);
}
END_TEST

// ---------------------------------------------------------------- the model
static json_t *small_config(int conditional) {
    json_t *c = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i}", "task", "image-generation", "arch", "dcgan",
                          "n_latent", 8, "channels", 1, "height", 12, "width", 8, "g_channels", 4, "d_channels", 3);
    if (conditional) json_object_set_new(c, "labels", json_pack("[s,s,s]", "a", "b", "c"));
    return c;
}

START_TEST(test_shapes) {
    json_t *cfg = small_config(1);
    eng_dcgan m;
    char *err = NULL;
    ck_assert_int_eq(eng_dcgan_init(&m, cfg, 1, &err), 0);
    eng_dcgan_init_params(&m, 3);
    ck_assert_int_eq(m.n_classes, 3);
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    float z[5 * 8];
    fill(z, 40, 9);
    int labels[5] = {0, 1, 2, 0, 1};
    eng_var *img = eng_dcgan_generate(&m, &t, eng_tape_wrap(&t, z, 2, (int[]){5, 8}), labels, 1);
    ck_assert_int_eq(img->ndim, 4);
    ck_assert_int_eq(img->shape[0], 5); ck_assert_int_eq(img->shape[1], 1);
    ck_assert_int_eq(img->shape[2], 12); ck_assert_int_eq(img->shape[3], 8);
    for (size_t i = 0; i < img->n; i++) ck_assert(img->val[i] >= -1 && img->val[i] <= 1);
    eng_var *logit = eng_dcgan_discriminate(&m, &t, img, labels);
    ck_assert_int_eq(logit->ndim, 2);
    ck_assert_int_eq(logit->shape[0], 5); ck_assert_int_eq(logit->shape[1], 1);
    eng_tape_free(&t);
    eng_dcgan_free(&m);
    // bad configs are refused with a message (a fresh struct: init does not free an old one)
    eng_dcgan bad;
    json_object_set_new(cfg, "height", json_integer(10));
    ck_assert_int_eq(eng_dcgan_init(&bad, cfg, 0, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "multiples of 4"));
    free(err);
    json_decref(cfg);
}
END_TEST

// A saved model, served: same latents -> same bits; image b of a batch of 7
// equals the same latent generated alone; labels change images.
START_TEST(test_serving_batch_invariant) {
    char *dir = tu_temp_dir("dcgan");
    json_t *cfg = small_config(1);
    eng_dcgan m;
    char *err = NULL;
    ck_assert_int_eq(eng_dcgan_init(&m, cfg, 0, &err), 0);
    eng_dcgan_init_params(&m, 5);
    for (int i = 0; i < m.n_tensors; i++)   // non-trivial running statistics
        if (strstr(m.tensors[i].name, "running_var"))
            for (size_t k = 0; k < m.tensors[i].n; k++) m.tensors[i].val[k] = 0.5f + 0.1f * (float)k;
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(eng_dcgan_save_generator(&m, path, &err), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    eng_model *mod;
    ck_assert_msg(eng_model_load(&mod, dir, &err) == 0, "%s", err);
    ck_assert_int_eq(mod->n_labels, 3);
    ck_assert_str_eq(mod->labels[2], "c");
    ck_assert_int_eq(mod->n_latent, 8);
    enum { N = 7, IMG = 12 * 8 };
    float z[N * 8], y[N * IMG], y1[IMG], y2[N * IMG];
    eng_dcgan_latents(42, N, 8, z);
    float z2[3 * 8];
    eng_dcgan_latents(42, 3, 8, z2);
    ck_assert_int_eq(memcmp(z, z2, sizeof z2), 0);   // image i's latent does not depend on n
    int labels[N] = {0, 1, 2, 0, 1, 2, 0};
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    mod->arch->generate_images(mod, &t, z, labels, N, y);
    for (int b = 0; b < N; b++) {
        mod->arch->generate_images(mod, &t, z + b * 8, labels + b, 1, y1);
        ck_assert_msg(memcmp(y1, y + b * IMG, sizeof y1) == 0, "image %d differs alone and in a batch", b);
    }
    mod->arch->generate_images(mod, &t, z, labels, N, y2);
    ck_assert_int_eq(memcmp(y, y2, sizeof y), 0);
    for (int k = 0; k < N * IMG; k++) ck_assert(y[k] >= 0 && y[k] <= 1);
    int other[N] = {1, 1, 1, 1, 1, 1, 1};
    mod->arch->generate_images(mod, &t, z, other, N, y2);
    ck_assert(memcmp(y, y2, IMG * sizeof(float)) != 0);   // image 0: label 0 vs 1
    // grid: 7 images -> 7 columns, 1 row
    ck_assert_int_eq(eng_grid_cols(7), 7);
    ck_assert_int_eq(eng_grid_cols(64), 8);
    uint8_t px[12 * 8 * 7];
    eng_grid_pixels(px, y, N, 7, 1, 12, 8);
    ck_assert_int_eq(px[0], (int)(y[0] * 255 + 0.5f));
    ck_assert_int_eq(px[8], (int)(y[IMG] * 255 + 0.5f));   // image 1's first pixel
    eng_tape_free(&t);
    eng_model_free(mod);
    eng_dcgan_free(&m);
    json_decref(cfg);
    tu_remove_model_dir(dir);
}
END_TEST

// The discriminator's loss on a fixed real batch and fixed fakes falls after one GAN step.
static float d_loss_of(eng_dcgan *m, const float *x, const int *y, const float *fake, const int *yf, int B) {
    eng_tape t;
    eng_tape_init(&t, 0, 1);
    eng_var *lr = eng_dcgan_discriminate(m, &t, eng_tape_wrap(&t, (float *)x, 4, (int[]){B, 1, 12, 8}), y);
    eng_var *lf = eng_dcgan_discriminate(m, &t, eng_tape_wrap(&t, (float *)fake, 4, (int[]){B, 1, 12, 8}), yf);
    double s = 0;
    for (int b = 0; b < B; b++) {
        s += log1p(exp(-(double)lr->val[b])) / B;   // -log sigmoid(l)
        s += log1p(exp((double)lf->val[b])) / B;    // -log(1 - sigmoid(l))
    }
    eng_tape_free(&t);
    return (float)s;
}

START_TEST(test_gan_step_lowers_d_loss) {
    json_t *cfg = small_config(_i);
    eng_dcgan m;
    char *err = NULL;
    ck_assert_int_eq(eng_dcgan_init(&m, cfg, 1, &err), 0);
    eng_dcgan_init_params(&m, 11);
    enum { B = 6, IMG = 12 * 8 };
    float x[B * IMG], z[B * 8], fake[B * IMG];
    int y[B] = {0, 1, 2, 0, 1, 2}, yf[B] = {2, 2, 1, 1, 0, 0};
    fill(x, B * IMG, 12);
    fill(z, B * 8, 13);
    size_t ng = m.n_g_params, nd = m.n_params - ng;
    eng__gan_adam ad = {calloc(ng, 4), calloc(ng, 4), calloc(nd, 4), calloc(nd, 4)};
    eng_tape t, tng;
    eng_tape_init(&t, 1, 1);
    eng_tape_init(&tng, 0, 1);
    float first = 0, last = 0;
    for (int step = 1; step <= 5; step++) {
        // the fakes the step's discriminator update sees (batch statistics, no update of running ones)
        eng_tape_reset(&tng);
        eng_var *f = eng_dcgan_generate(&m, &tng, eng_tape_wrap(&tng, z, 2, (int[]){B, 8}), _i ? yf : NULL, 0);
        memcpy(fake, f->val, sizeof fake);
        float before = d_loss_of(&m, x, _i ? y : NULL, fake, _i ? yf : NULL, B);
        eng__gan_stats st;
        eng__gan_step(&m, &ad, &t, &tng, x, y, z, yf, B, 1e-3f, step, &st);
        ck_assert_msg(fabsf(st.d_loss - before) < 1e-4f, "step %d: reported D loss %.6f, measured %.6f", step, st.d_loss, before);
        float after = d_loss_of(&m, x, _i ? y : NULL, fake, _i ? yf : NULL, B);
        ck_assert_msg(after < before, "step %d: D loss %.6f -> %.6f", step, before, after);
        ck_assert(st.d_real > 0 && st.d_real < 1 && st.d_fake > 0 && st.d_fake < 1 && st.g_loss > 0);
        if (step == 1) first = before;
        last = after;
    }
    ck_assert(last < first);
    eng_tape_free(&t); eng_tape_free(&tng);
    free(ad.gm); free(ad.gv); free(ad.dm); free(ad.dv);
    eng_dcgan_free(&m);
    json_decref(cfg);
}
END_TEST

// ---------------------------------------------------------------- training and resume
static void put_be32(FILE *fp, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, fp);
}

// dir/train-* : n 8x8 images of 3 classes (bright left half, right half, top half).
static void write_idx(const char *dir, int n) {
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fl = fopen(path, "wb");
    ck_assert(fi && fl);
    put_be32(fi, 0x803); put_be32(fi, (uint32_t)n); put_be32(fi, 8); put_be32(fi, 8);
    put_be32(fl, 0x801); put_be32(fl, (uint32_t)n);
    uint32_t seed = 7;
    for (int i = 0; i < n; i++) {
        int c = i % 3;
        fputc(c, fl);
        for (int yy = 0; yy < 8; yy++)
            for (int xx = 0; xx < 8; xx++) {
                int bright = (c == 0 && xx < 4) || (c == 1 && xx >= 4) || (c == 2 && yy < 4);
                seed = seed * 1103515245u + 12345u;
                fputc((int)((seed >> 16) % 60) + (bright ? 180 : 0), fi);
            }
    }
    fclose(fi); fclose(fl);
}

static size_t file_bytes(const char *path, unsigned char **out) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n);
    ck_assert_int_eq(fread(*out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return (size_t)n;
}

// Cancels the run from the report of step 8 (after the checkpoint of step 6).
static void cancel_at_8(void *ctx, const eng_train_progress *p) {
    if (p->step == 8) *(volatile int *)ctx = 1;
}

// 12 steps straight == a run killed after step 8 (checkpoint at 6) and resumed: same generator bytes.
START_TEST(test_train_and_resume) {
    char *dir = tu_temp_dir("dcgan_train");
    write_idx(dir, 48);
    char out1[512], out2[512], ck[512], w[600];
    snprintf(out1, sizeof out1, "%s/straight", dir);
    snprintf(out2, sizeof out2, "%s/resumed", dir);
    snprintf(ck, sizeof ck, "%s/run.ckpt", dir);
    eng_train_opts o;
    eng_train_opts_init(&o);
    o.task = "image-generation";
    o.data = dir;
    o.out = out1;
    o.steps = 12;
    o.batch_size = 8;
    o.lr = 2e-4f;
    o.dim = 4;
    o.log_every = 4;
    char *err = NULL;
    ck_assert_msg(eng_train(&o, &err) == 0, "%s", err);
    json_t *cfg = tu_load_json((snprintf(w, sizeof w, "%s/config.json", out1), w));
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "arch")), "dcgan");
    ck_assert_int_eq(json_array_size(json_object_get(cfg, "labels")), 3);
    json_decref(cfg);

    volatile int cancel = 0;
    o.out = out2;
    o.checkpoint_path = ck;
    o.checkpoint_every = 6;
    o.resume = 1;
    o.cancel = &cancel;
    o.progress = cancel_at_8;
    o.progress_ctx = (void *)&cancel;
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_str_eq(err, "cancelled");
    free(err);
    err = NULL;
    cancel = 0;
    o.progress = NULL;
    ck_assert_msg(eng_train(&o, &err) == 0, "%s", err);
    unsigned char *a, *b;
    snprintf(w, sizeof w, "%s/model.safetensors", out1);
    size_t na = file_bytes(w, &a);
    snprintf(w, sizeof w, "%s/model.safetensors", out2);
    size_t nb = file_bytes(w, &b);
    ck_assert_int_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na) == 0, "the resumed run's generator differs from the straight run's");
    free(a); free(b);
    // the served model of the run loads and generates
    eng_model *mod;
    ck_assert_msg(eng_model_load(&mod, out2, &err) == 0, "%s", err);
    ck_assert_int_eq(mod->task, ENG_TASK_IMAGE_GENERATION);
    eng_model_free(mod);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

static Suite *dcgan_suite(void) {
    Suite *s = suite_create("dcgan");
    TCase *tc = tcase_create("dcgan");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_adjoint_identity, 0, N_GEO);
    tcase_add_loop_test(tc, test_conv_transpose_gradients_fd, 0, N_GEO);
    tcase_add_test(tc, test_leaky_relu);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_serving_batch_invariant);
    tcase_add_loop_test(tc, test_gan_step_lowers_d_loss, 0, 2);
    tcase_add_test(tc, test_train_and_resume);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(dcgan_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
