// test_transformer_net.c — engine/arch/transformer_net.c against PyTorch:
// tests/ref/make_transformer_net_ref.py converts a randomly initialised
// TransformerNet (width 0.25) with scripts/convert_fast_neural_style.py into
// tests/ref/transformer_net_tiny/ and records its output for two 18x23
// images. Also: a batch equals its images one at a time, the smallest and
// other sizes, the arena stays within the advertised scratch bytes, and
// broken model directories fail to load with a message. Run from the
// repository root.
#include "engine/arch/transformer_net.h"

#include <check.h>            // Check unit-test framework
#include <math.h>             // fabs, isfinite
#include <stdio.h>            // FILE, fprintf
#include <stdlib.h>           // strtod
#include <string.h>           // strcmp, strstr
#include "engine/arch/model.h"     // eng_model_load
#include "engine/core/tape.h"      // eng_tape
#include "engine/core/util.h"      // eng_write_file_atomic
#include "testutil.h"              // tu_temp_dir, tu_fill

#define REF_DIR "tests/ref/transformer_net_tiny"
#define PIXEL_TOL 1.0   // 1/255 of the range, after clamping to 0..255

// ---------------------------------------------------------------- fixture
// Lines "<name> <count> <v0> ...": dims [B,H,W], x, y, full_dims.
typedef struct { int B, H, W; float *x, *y; int H2, W2; float *x2, *y2; } fixture;

static float *read_array(FILE *fp, const char *want, size_t n) {
    char name[64];
    size_t count;
    ck_assert_int_eq(fscanf(fp, "%63s %zu", name, &count), 2);
    ck_assert_str_eq(name, want);
    ck_assert_msg(n == 0 || count == n, "%s: %zu values, expected %zu", name, count, n);
    float *v = malloc((count ? count : 1) * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        double d;
        ck_assert_int_eq(fscanf(fp, "%lf", &d), 1);
        v[i] = (float)d;
    }
    return v;
}

static fixture fixture_load(void) {
    FILE *fp = fopen(REF_DIR "/ref.txt", "r");
    ck_assert_msg(fp != NULL, "cannot open " REF_DIR "/ref.txt (run from the repository root; "
                  "regenerate with /usr/bin/python3 tests/ref/make_transformer_net_ref.py)");
    fixture f;
    float *d = read_array(fp, "dims", 3);
    f.B = (int)d[0], f.H = (int)d[1], f.W = (int)d[2];
    free(d);
    size_t n = (size_t)f.B * 3 * f.H * f.W;
    f.x = read_array(fp, "x", n);
    f.y = read_array(fp, "y", n);
    free(read_array(fp, "full_dims", 2));
    d = read_array(fp, "big_dims", 2);
    f.H2 = (int)d[0], f.W2 = (int)d[1];
    free(d);
    f.x2 = read_array(fp, "big_x", (size_t)3 * f.H2 * f.W2);
    f.y2 = read_array(fp, "big_y", (size_t)3 * f.H2 * f.W2);
    fclose(fp);
    return f;
}

static void fixture_free(fixture *f) { free(f->x); free(f->y); free(f->x2); free(f->y2); }

static eng_model *load_tiny(void) {
    eng_model *m = NULL;
    char *err = NULL;
    int rc = eng_model_load(&m, REF_DIR, &err);
    ck_assert_msg(rc == 0, "load: %s", err ? err : "?");
    ck_assert_int_eq(m->task, ENG_TASK_IMAGE_STYLIZATION);
    ck_assert_ptr_nonnull(m->arch->image_to_image);
    return m;
}

static float clamp255(float v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

// ---------------------------------------------------------------- tests
// Runs x[B][3][H][W] and compares with PyTorch's y: every pixel within
// PIXEL_TOL after clamping, and the raw outputs within 0.05 (float32 sums in
// another order agree far more closely than the bound).
static void check_against(eng_model *m, const float *x, const float *want, int B, int H, int W, const char *what) {
    size_t n = (size_t)B * 3 * H * W;
    float *y = malloc(n * sizeof(float));
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    m->arch->image_to_image(m, &t, x, B, H, W, y);
    double maxd = 0, maxraw = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(clamp255(y[i]) - clamp255(want[i]));
        double r = fabs(y[i] - want[i]);
        if (!(d <= PIXEL_TOL)) bad++;
        if (!(d <= maxd)) maxd = d;
        if (!(r <= maxraw)) maxraw = r;
    }
    fprintf(stderr, "transformer_net vs PyTorch, %s: max |diff| %.3g clamped, %.3g raw (of 0..255)\n", what, maxd, maxraw);
    ck_assert_msg(bad == 0, "%s: %d of %zu pixels differ from PyTorch by more than %g", what, bad, n, PIXEL_TOL);
    ck_assert_msg(maxraw < 0.05, "%s: raw max diff %g", what, maxraw);
    eng_tape_free(&t);
    free(y);
}

START_TEST(test_pytorch_ref) {
    fixture f = fixture_load();
    eng_model *m = load_tiny();
    ck_assert_uint_eq(m->n_params, 108771);   // what the converter counted
    check_against(m, f.x, f.y, f.B, f.H, f.W, "2 x 18x23");
    check_against(m, f.x2, f.y2, 1, f.H2, f.W2, "37x61");
    // tiles of 3000 floats: 10..41 output pixels per GEMM, so every 3x3
    // convolution's tiles start and end inside output rows
    eng_tnet_set_tile_floats(3000);
    check_against(m, f.x, f.y, f.B, f.H, f.W, "2 x 18x23, small tiles");
    check_against(m, f.x2, f.y2, 1, f.H2, f.W2, "37x61, small tiles");
    eng_tnet_set_tile_floats(0);
    eng_model_free(m);
    fixture_free(&f);
}
END_TEST

START_TEST(test_batch_equals_singles) {
    fixture f = fixture_load();
    eng_model *m = load_tiny();
    size_t per = (size_t)3 * f.H * f.W;
    float *yb = malloc(2 * per * sizeof(float)), *ys = malloc(per * sizeof(float));
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    m->arch->image_to_image(m, &t, f.x, 2, f.H, f.W, yb);
    for (int b = 0; b < 2; b++) {
        m->arch->image_to_image(m, &t, f.x + b * per, 1, f.H, f.W, ys);
        ck_assert_msg(memcmp(ys, yb + b * per, per * sizeof(float)) == 0, "image %d: batch differs from single", b);
    }
    eng_tape_free(&t);
    eng_model_free(m);
    free(yb);
    free(ys);
    fixture_free(&f);
}
END_TEST

// Any size from the smallest up runs, gives finite pixels, and stays within
// the scratch bytes the server budgets with.
START_TEST(test_sizes_and_scratch) {
    eng_model *m = load_tiny();
    ck_assert_int_eq(m->arch->image_min_side, ENG_TNET_MIN_SIDE);
    static const int sizes[][2] = {{5, 5}, {5, 9}, {8, 8}, {13, 6}, {32, 40}, {3, 1000}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int H = sizes[s][0], W = sizes[s][1];
        if (H < ENG_TNET_MIN_SIDE) H = ENG_TNET_MIN_SIDE;
        size_t n = (size_t)2 * 3 * H * W;
        float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        tu_fill(x, n, 0, 255);
        eng_tape t;
        eng_tape_init(&t, 0, 0);
        m->arch->image_to_image(m, &t, x, 2, H, W, y);
        for (size_t i = 0; i < n; i++) ck_assert_msg(isfinite(y[i]), "%dx%d: pixel %zu = %g", H, W, i, y[i]);
        size_t budget = m->arch->image_to_image_bytes(m, H, W);
        ck_assert_msg(t.arena.high_water <= budget, "%dx%d: arena %zu > advertised %zu", H, W, t.arena.high_water, budget);
        eng_tape_free(&t);
        free(x);
        free(y);
    }
    // the budget grows with the image (about 290 bytes a pixel at full width)
    ck_assert(m->arch->image_to_image_bytes(m, 512, 512) > m->arch->image_to_image_bytes(m, 256, 256));
    eng_model_free(m);
}
END_TEST

// ---------------------------------------------------------------- load errors
// A model directory with config `cfg` and the tiny model's tensors, minus
// `drop` (NULL: none), plus `extra` (NULL: none).
static char *write_variant(const char *cfg, const char *drop, const char *extra) {
    char *dir = tu_temp_dir("tnet");
    char p[512], *err = NULL;
    snprintf(p, sizeof p, "%s/config.json", dir);
    ck_assert_int_eq(eng_write_file_atomic(p, cfg, strlen(cfg), &err), 0);
    eng_st_file f;
    ck_assert_int_eq(eng_st_open(&f, REF_DIR "/model.safetensors", &err), 0);
    eng_st_entry *e = calloc((size_t)f.n + 1, sizeof *e);
    int n = 0;
    static const float one[4] = {1, 2, 3, 4};
    for (int i = 0; i < f.n; i++) {
        if (drop && strcmp(f.tensors[i].name, drop) == 0) continue;
        e[n].name = f.tensors[i].name;
        e[n].ndim = f.tensors[i].ndim;
        memcpy(e[n].shape, f.tensors[i].shape, sizeof e[n].shape);
        e[n].data = f.tensors[i].data;
        n++;
    }
    if (extra) e[n++] = (eng_st_entry){.name = extra, .ndim = 1, .shape = {4}, .data = one};
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_assert_int_eq(eng_st_write(p, e, n, NULL, &err), 0);
    free(e);
    eng_st_close(&f);
    return dir;
}

static void expect_load_error(const char *cfg, const char *drop, const char *extra, const char *needle) {
    char *dir = write_variant(cfg, drop, extra);
    eng_model *m = NULL;
    char *err = NULL;
    ck_assert_int_eq(eng_model_load(&m, dir, &err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(err && strstr(err, needle), "error \"%s\" lacks \"%s\"", err ? err : "(none)", needle);
    free(err);
    tu_remove_model_dir(dir);
}

#define CFG_OK "{\"task\":\"image-stylization\",\"arch\":\"transformer_net\",\"width\":0.25}"

START_TEST(test_load_errors) {
    // a good copy loads (the variants below differ in one thing each)
    char *dir = write_variant(CFG_OK, NULL, "in1.running_mean");   // old checkpoints' statistics are ignored
    eng_model *m = NULL;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "%s", err ? err : "?");
    eng_model_free(m);
    tu_remove_model_dir(dir);
    // full width claimed for a width-0.25 file: conv1's shape is named
    expect_load_error("{\"task\":\"image-stylization\",\"arch\":\"transformer_net\"}", NULL, NULL, "conv1.conv2d.weight");
    expect_load_error("{\"task\":\"image-stylization\",\"arch\":\"transformer_net\",\"width\":\"wide\"}", NULL, NULL,
                      "\"width\"");
    expect_load_error("{\"task\":\"image-stylization\",\"arch\":\"transformer_net\",\"width\":0}", NULL, NULL, "\"width\"");
    expect_load_error(CFG_OK, "res3.in2.bias", NULL, "res3.in2.bias");
    expect_load_error(CFG_OK, NULL, "res6.conv1.conv2d.weight", "res6.conv1.conv2d.weight");
    expect_load_error("{\"task\":\"image-classification\",\"arch\":\"transformer_net\"}", NULL, NULL,
                      "no architecture \"transformer_net\"");
}
END_TEST

static Suite *tnet_suite(void) {
    Suite *s = suite_create("transformer_net");
    TCase *tc = tcase_create("transformer_net");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pytorch_ref);
    tcase_add_test(tc, test_batch_equals_singles);
    tcase_add_test(tc, test_sizes_and_scratch);
    tcase_add_test(tc, test_load_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(tnet_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
