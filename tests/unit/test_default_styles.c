// test_default_styles.c — the default styles shipped in models/ restyle a
// photo they were not trained on (tests/ref/style_photo.jpg) substantially,
// not with a faint tint: the mean absolute change of the pixels is large,
// and still large once each channel's mean shift (a tint) is taken out; and
// under the perceptual loss network the output's Gram matrices are much
// closer to the style's (models/<name>/style.png, the style image as it was
// trained on) than the photo's are. Run from the repository root.
#include <check.h>            // Check unit-test framework
#include <math.h>             // fabs
#include <stdio.h>            // fprintf
#include <stdlib.h>           // malloc, free
#include "engine/arch/model.h"        // eng_model_load
#include "engine/arch/style_loss.h"   // eng_lossnet, eng_style_loss
#include "engine/core/tape.h"         // eng_tape
#include "engine/core/util.h"         // eng_read_file
#include "engine/io/image.h"          // eng_image_decode

static const char *const STYLES[] = {"elephants", "rhythm"};
#define N_STYLES (int)(sizeof STYLES / sizeof *STYLES)
#define PHOTO "tests/ref/style_photo.jpg"

// thresholds, of 0..255 (a tint of the photo scores ~0 on the second)
#define MIN_MEAN_CHANGE 20.0
#define MIN_CENTRED_CHANGE 12.0
#define MAX_GRAM_RATIO 0.5   // output's Gram distance to the style / the photo's

// Decodes a PNG/JPEG file into planar RGB floats (0..255).
static float *load_planar(const char *path, int *W, int *H) {
    size_t len;
    char *err = NULL, *data = eng_read_file(path, &len, &err);
    ck_assert_msg(data != NULL, "%s: %s", path, err);
    eng_image img;
    ck_assert_msg(eng_image_decode(&img, data, len, 1 << 24, &err) == ENG_IMG_OK, "%s: %s", path, err);
    free(data);
    *W = img.width, *H = img.height;
    size_t n = (size_t)img.width * img.height;
    float *x = malloc(3 * n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) x[c * n + i] = img.rgba[4 * i + c];
    eng_image_free(&img);
    return x;
}

// The style term alone (relative Gram error summed over the layers) of x[3][H][W].
static double gram_distance(const eng_lossnet *net, const eng_style_target *st, float *x, int H, int W) {
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_style_weights w;
    eng_style_weights_default(&w);
    w.content_weight = 0, w.style_weight = 1, w.tv_weight = 0;
    eng_style_loss_parts parts;
    eng_style_loss(&t, net, eng_tape_wrap(&t, x, 4, (int[]){1, 3, H, W}), NULL, st, &w, &parts);
    eng_tape_free(&t);
    return parts.style;
}

START_TEST(test_restyles_substantially) {
    const char *name = STYLES[_i];
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "models/%s", name);
    eng_model *m = NULL;
    char *err = NULL;
    ck_assert_msg(eng_model_load(&m, dir, &err) == 0, "%s: %s", dir, err ? err : "?");
    ck_assert_int_eq(m->task, ENG_TASK_IMAGE_STYLIZATION);
    int W, H;
    float *x = load_planar(PHOTO, &W, &H);
    size_t n = (size_t)W * H;
    float *y = malloc(3 * n * sizeof(float));
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    m->arch->image_to_image(m, &t, x, 1, H, W, y);
    eng_tape_free(&t);
    for (size_t i = 0; i < 3 * n; i++) y[i] = y[i] < 0 ? 0 : y[i] > 255 ? 255 : y[i];   // as served
    // pixel change, raw and without each channel's mean shift
    double mean_abs = 0, centred = 0;
    for (int c = 0; c < 3; c++) {
        double mx = 0, my = 0;
        for (size_t i = 0; i < n; i++) mx += x[c * n + i], my += y[c * n + i];
        mx /= (double)n, my /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = (double)y[c * n + i] - x[c * n + i];
            mean_abs += fabs(d);
            centred += fabs(d - (my - mx));
        }
    }
    mean_abs /= 3.0 * (double)n, centred /= 3.0 * (double)n;
    // Gram statistics against the style's
    snprintf(path, sizeof path, "%s/style.png", dir);
    int SW, SH;
    float *style = load_planar(path, &SW, &SH);
    eng_lossnet *net = NULL;
    ck_assert_int_eq(eng_lossnet_new(&net, ENG_LOSSNET_DEFAULT_SEED, &err), 0);
    eng_style_target st;
    ck_assert_msg(eng_style_target_compute(&st, net, style, SH, SW, &err) == 0, "%s", err);
    double g_photo = gram_distance(net, &st, x, H, W), g_out = gram_distance(net, &st, y, H, W);
    fprintf(stderr, "%s on %s: mean |change| %.1f, without the channel shifts %.1f; Gram distance to the style %.3f "
            "(the photo's %.3f)\n", name, PHOTO, mean_abs, centred, g_out, g_photo);
    ck_assert_msg(mean_abs > MIN_MEAN_CHANGE, "%s: mean change %.1f", name, mean_abs);
    ck_assert_msg(centred > MIN_CENTRED_CHANGE, "%s: change without the tint %.1f", name, centred);
    ck_assert_msg(g_out < MAX_GRAM_RATIO * g_photo, "%s: Gram distance %.3f, the photo's %.3f", name, g_out, g_photo);
    eng_style_target_free(&st);
    eng_lossnet_free(net);
    eng_model_free(m);
    free(x); free(y); free(style);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("default_styles");
    TCase *tc = tcase_create("default_styles");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_restyles_substantially, 0, N_STYLES);
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
