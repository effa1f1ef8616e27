// test_exif.c — engine/io/exif.c: the EXIF orientation of JPEG bytes (both
// byte orders, every value, hostile segments) and the eight turns of pixels.
#include "engine/io/exif.h"

#include <check.h>     // Check unit-test framework
#include <stdint.h>    // uint8_t
#include <stdlib.h>    // malloc, free
#include <string.h>    // memcpy

// SOI, an APP0 to skip, APP1 "Exif" with a one-entry IFD0 (tag, type, count,
// value) in the byte order asked, then SOS. Returns the length.
static size_t make_jpeg(uint8_t *b, int le, unsigned tag, unsigned type, unsigned count, unsigned value) {
    size_t n = 0;
    const uint8_t head[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00};
    memcpy(b, head, sizeof head);
    n = sizeof head;
    uint8_t t[26];
    memcpy(t, le ? "II*\0" : "MM\0*", 4);
#define P16(p, v) (le ? ((p)[0] = (uint8_t)(v), (p)[1] = (uint8_t)((v) >> 8)) : ((p)[0] = (uint8_t)((v) >> 8), (p)[1] = (uint8_t)(v)))
#define P32(p, v) (le ? (P16(p, (v) & 0xffff), P16((p) + 2, (v) >> 16)) : (P16(p, (v) >> 16), P16((p) + 2, (v) & 0xffff)))
    P32(t + 4, 8u);
    P16(t + 8, 1u);
    P16(t + 10, tag);
    P16(t + 12, type);
    P32(t + 14, count);
    memset(t + 18, 0, 8);
    P16(t + 18, value);
    size_t seg = 2 + 6 + sizeof t;
    b[n++] = 0xff, b[n++] = 0xe1, b[n++] = (uint8_t)(seg >> 8), b[n++] = (uint8_t)seg;
    memcpy(b + n, "Exif\0\0", 6);
    n += 6;
    memcpy(b + n, t, sizeof t);
    n += sizeof t;
    b[n++] = 0xff, b[n++] = 0xda;
    return n;
}

START_TEST(test_orientation_tag) {
    uint8_t b[128];
    for (int le = 0; le < 2; le++)
        for (unsigned o = 1; o <= 8; o++) ck_assert_int_eq(eng_jpeg_orientation(b, make_jpeg(b, le, 0x0112, 3, 1, o)), (int)o);
    size_t n = make_jpeg(b, 1, 0x0112, 3, 1, 9);
    ck_assert_int_eq(eng_jpeg_orientation(b, n), 1);              // out of range
    n = make_jpeg(b, 1, 0x0110, 3, 1, 6);
    ck_assert_int_eq(eng_jpeg_orientation(b, n), 1);              // another tag
    n = make_jpeg(b, 1, 0x0112, 4, 1, 6);
    ck_assert_int_eq(eng_jpeg_orientation(b, n), 1);              // wrong type
    n = make_jpeg(b, 0, 0x0112, 3, 1, 6);
    for (size_t cut = 0; cut < n; cut++) {                        // truncated anywhere: never past the end
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        int o = eng_jpeg_orientation(c, cut);
        ck_assert(o == 1 || (o == 6 && cut >= n - 2));
        free(c);
    }
    n = make_jpeg(b, 0, 0x0112, 3, 1, 6);
    b[8 + 2 + 2 + 6 + 4 + 3] = 0xff;                              // IFD0 offset far outside
    ck_assert_int_eq(eng_jpeg_orientation(b, n), 1);
    n = make_jpeg(b, 1, 0x0110, 3, 1, 6);
    b[8 + 2 + 2 + 6 + 8] = 0xff, b[8 + 2 + 2 + 6 + 9] = 0xff;     // 65535 IFD entries claimed, none the tag
    ck_assert_int_eq(eng_jpeg_orientation(b, n), 1);
    n = make_jpeg(b, 1, 0x0112, 3, 1, 6);
    b[10] = 0xff, b[11] = 0xff;                                   // APP1 longer than the data
    ck_assert_int_eq(eng_jpeg_orientation(b, n), 1);
    ck_assert_int_eq(eng_jpeg_orientation("\x89PNG", 4), 1);
    ck_assert_int_eq(eng_jpeg_orientation(NULL, 0), 1);
}
END_TEST

// A 3x2 image whose pixel (x, y) is value 10*y + x in every channel.
static eng_image grid(void) {
    eng_image img = {.width = 3, .height = 2, .rgba = malloc(3 * 2 * 4)};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) memset(img.rgba + (y * 3 + x) * 4, 10 * y + x, 4);
    return img;
}

static int px(const eng_image *img, int x, int y) { return img->rgba[(y * img->width + x) * 4]; }

START_TEST(test_orient_pixels) {
    // what each orientation's upright image holds, row by row (source values 10*y + x)
    static const struct { int o, w, h, v[6]; } want[] = {
        {1, 3, 2, {0, 1, 2, 10, 11, 12}},
        {2, 3, 2, {2, 1, 0, 12, 11, 10}},
        {3, 3, 2, {12, 11, 10, 2, 1, 0}},
        {4, 3, 2, {10, 11, 12, 0, 1, 2}},
        {5, 2, 3, {0, 10, 1, 11, 2, 12}},
        {6, 2, 3, {10, 0, 11, 1, 12, 2}},   // 90° clockwise: the left column becomes the top row, read upwards
        {7, 2, 3, {12, 2, 11, 1, 10, 0}},
        {8, 2, 3, {2, 12, 1, 11, 0, 10}},   // 90° counter-clockwise
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        eng_image img = grid();
        ck_assert_int_eq(eng_image_orient(&img, want[i].o), 0);
        ck_assert_int_eq(img.width, want[i].w);
        ck_assert_int_eq(img.height, want[i].h);
        for (int k = 0; k < 6; k++)
            ck_assert_msg(px(&img, k % img.width, k / img.width) == want[i].v[k], "orientation %d pixel %d: %d", want[i].o,
                          k, px(&img, k % img.width, k / img.width));
        eng_image_free(&img);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("exif");
    TCase *tc = tcase_create("exif");
    tcase_add_test(tc, test_orientation_tag);
    tcase_add_test(tc, test_orient_pixels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
