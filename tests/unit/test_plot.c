// test_plot.c — the loss plot (engine/io/plot.c): nice ticks, the curves
// where the data puts them (a falling series is drawn falling, in its own
// colour, over the whole x range), axes and text drawn, the legend, the PNG
// (decodes back to the same size and pixels), deterministic bytes, bad input.
#include "engine/io/plot.h"

#include <check.h>      // Check unit-test framework
#include <math.h>       // NAN
#include <stdio.h>      // fprintf
#include <stdlib.h>     // malloc
#include <string.h>     // memcmp
#include <zlib.h>       // crc32: the pinned pixels
#include "engine/io/image.h"   // eng_image_decode (the PNG read back)

static const uint8_t RED[3] = {214, 39, 40}, BLUE[3] = {31, 119, 180};

static int is(const uint8_t *p, const uint8_t c[3]) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

// A falling train curve (101 points) and a validation curve (3 points).
static float tx[101], ty[101], vx[3] = {0, 50, 100}, vy[3] = {2.6f, 2.0f, 1.7f};
static eng_plot_series series[2];
static void setup(void) {
    for (int i = 0; i <= 100; i++) { tx[i] = (float)i; ty[i] = 3.0f - 2.0f * i / 100.0f; }
    series[0] = (eng_plot_series){tx, ty, 101, "train", {RED[0], RED[1], RED[2]}};
    series[1] = (eng_plot_series){vx, vy, 3, "validation", {BLUE[0], BLUE[1], BLUE[2]}};
}

START_TEST(test_ticks) {
    double first, step;
    ck_assert_int_eq(eng_plot_ticks(0, 1, 5, &first, &step), 6);
    ck_assert(fabs(step - 0.2) < 1e-12 && first == 0);
    ck_assert_int_eq(eng_plot_ticks(0, 97, 6, &first, &step), 5);   // 0 20 40 60 80
    ck_assert(step == 20 && first == 0);
    ck_assert_int_eq(eng_plot_ticks(1.03, 2.97, 5, &first, &step), 3);   // (2.97-1.03)/5 = 0.388 -> 0.5: 1.5 2.0 2.5
    ck_assert(fabs(step - 0.5) < 1e-12 && fabs(first - 1.5) < 1e-12);
}
END_TEST

START_TEST(test_curves) {
    eng_plot_opts o = {640, 400, "step", "loss"};
    uint8_t *px = malloc(640 * 400 * 3);
    char *err = NULL;
    ck_assert_msg(eng_plot_render(px, &o, series, 2, &err) == 0, "%s", err);
    // the train curve: present in every column of a wide stretch, and falling
    // (its mean row grows from left to right), one colour
    int cols = 0, first_col = -1, last_col = -1;
    double prev_row = -1;
    int falling = 1;
    for (int x = 0; x < 640; x++) {
        double sum = 0;
        int n = 0, n_low = 0;
        for (int y = 0; y < 400; y++)
            if (is(px + ((size_t)y * 640 + x) * 3, RED)) {
                n++;
                if (y > 60) { sum += y; n_low++; }   // the legend's sample line (top right) is red too
            }
        if (!n) continue;
        cols++;
        if (first_col < 0) first_col = x;
        last_col = x;
        if (n_low) {
            double row = sum / n_low;
            if (prev_row >= 0 && row < prev_row - 2) falling = 0;
            prev_row = row;
        }
    }
    ck_assert_msg(cols > 400, "the train curve spans %d columns", cols);
    ck_assert_msg(last_col - first_col > 450, "train curve from column %d to %d", first_col, last_col);
    ck_assert_msg(falling, "a falling loss must be drawn falling");
    // the validation curve and the axes' text are drawn
    long blue = 0, black = 0, other = 0;
    for (size_t i = 0; i < 640 * 400; i++) {
        const uint8_t *p = px + i * 3;
        if (is(p, BLUE)) blue++;
        else if (p[0] == 0 && p[1] == 0 && p[2] == 0) black++;
        else if (!(p[0] == 255 && p[1] == 255 && p[2] == 255)) other++;
    }
    ck_assert_msg(blue > 300, "validation pixels: %ld", blue);
    ck_assert_msg(black > 1000, "axes and labels: %ld black pixels", black);
    // the bottom-left corner of the plot area is the axes' meeting point:
    // a long black horizontal run near the bottom
    int best = 0;
    for (int y = 300; y < 400; y++) {
        int run = 0;
        for (int x = 0; x < 640; x++) {
            run = px[((size_t)y * 640 + x) * 3] == 0 && px[((size_t)y * 640 + x) * 3 + 1] == 0 ? run + 1 : 0;
            if (run > best) best = run;
        }
    }
    ck_assert_msg(best > 500, "the x axis: longest black run %d", best);
    // pinned pixels: the drawing is deterministic
    uLong crc = crc32(0, px, 640 * 400 * 3);
    uint8_t *px2 = malloc(640 * 400 * 3);
    ck_assert(eng_plot_render(px2, &o, series, 2, &err) == 0);
    ck_assert(memcmp(px, px2, 640 * 400 * 3) == 0);
    ck_assert_msg(crc == 0x558ba1bbUL, "pixels changed: crc32 %08lx (update the pin if the drawing changed on purpose)", crc);
    free(px);
    free(px2);
}
END_TEST

START_TEST(test_png) {
    eng_plot_opts o = {500, 300, "step", "loss"};
    uint8_t *a = NULL, *b = NULL, *px = malloc(500 * 300 * 3);
    size_t na, nb;
    char *err = NULL;
    ck_assert_msg(eng_plot_png(&a, &na, &o, series, 2, &err) == 0, "%s", err);
    ck_assert(eng_plot_png(&b, &nb, &o, series, 2, &err) == 0);
    ck_assert(na == nb && memcmp(a, b, na) == 0);    // same input, same bytes
    ck_assert(na > 8 && memcmp(a, "\x89PNG\r\n\x1a\n", 8) == 0);
    eng_image img;
    ck_assert_msg(eng_image_decode(&img, a, na, 1 << 24, &err) == 0, "%s", err);
    ck_assert_int_eq(img.width, 500);
    ck_assert_int_eq(img.height, 300);
    ck_assert(eng_plot_render(px, &o, series, 2, &err) == 0);
    // the decoded pixels are the rendered ones
    int same = 1;
    for (size_t i = 0; i < 500 * 300 && same; i++)
        for (int k = 0; k < 3; k++)
            if (img.rgba[i * 4 + k] != px[i * 3 + k]) same = 0;
    ck_assert(same);
    eng_image_free(&img);
    free(a); free(b); free(px);
}
END_TEST

START_TEST(test_edges) {
    eng_plot_opts o = {320, 200, "step", "loss"};
    uint8_t *px = malloc(320 * 200 * 3);
    char *err = NULL;
    // no series at all: axes and "no data"
    ck_assert(eng_plot_render(px, &o, NULL, 0, &err) == 0);
    long dark = 0;
    for (size_t i = 0; i < 320 * 200; i++) dark += px[i * 3] == 0;
    ck_assert(dark > 200);
    // one point, NaN points, a flat series: drawn without failing
    float x1[1] = {5}, y1[1] = {1}, xn[4] = {0, 1, 2, 3}, yn[4] = {1, NAN, 2, INFINITY};
    eng_plot_series s[2] = {{x1, y1, 1, "train", {200, 0, 0}}, {xn, yn, 4, "validation", {0, 0, 200}}};
    ck_assert(eng_plot_render(px, &o, s, 2, &err) == 0);
    long red = 0;
    for (size_t i = 0; i < 320 * 200; i++) red += px[i * 3] == 200 && px[i * 3 + 1] == 0;
    ck_assert_msg(red >= 9, "a single point draws a dot (%ld px)", red);
    // bad sizes and series
    o.width = 10;
    ck_assert(eng_plot_render(px, &o, s, 2, &err) == -1);
    ck_assert(err && strstr(err, "plot size"));
    free(err); err = NULL;
    o.width = 320;
    s[0].n = -1;
    ck_assert(eng_plot_render(px, &o, s, 2, &err) == -1);
    free(err);
    free(px);
}
END_TEST

static Suite *plot_suite(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_ticks);
    tcase_add_test(tc, test_curves);
    tcase_add_test(tc, test_png);
    tcase_add_test(tc, test_edges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(plot_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
