// test_image.c — eng_image_decode on PNGs of every colour type and bit depth
// (written here with libpng's writer from hand-packed rows), JPEGs written
// here with libjpeg, hostile inputs (huge IHDR, random bytes, truncation), the
// image -> tensor transform on hand-computed examples, and PNG encoding.
#include "engine/io/image.h"

#include <check.h>      // Check unit-test framework
#include <math.h>       // fabsf
#include <png.h>        // the independent PNG writer
#include <stdio.h>      // FILE (before jpeglib.h)
#include <stdlib.h>     // malloc, rand_r
#include <string.h>     // memcpy
#include <sys/resource.h> // setrlimit: the address-space cap of the shape test
#include <jpeglib.h>    // the independent JPEG writer
#include <zlib.h>       // crc32, compress for the hand-made PNG

#define MAXPX ((size_t)4096 * 4096)

// ---------------------------------------------------------------------------
// PNG writer (libpng, into memory)

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} membuf;

static void mb_write(png_structp png, png_bytep d, png_size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->buf = realloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, d, n);
    m->len += n;
}
static void mb_flush(png_structp png) { (void)png; }

typedef struct {
    int w, h, color, depth, interlace;
    const uint8_t *raw;             // packed rows in PNG byte order
    const png_color *pal;           // palette (color type 3)
    int npal;
    const uint8_t *trns;            // palette alpha
    int ntrns;
    const png_color_16 *trans;      // gray/RGB transparent colour
} png_spec;

static int spec_channels(int color) {
    switch (color) {
    case PNG_COLOR_TYPE_GRAY: case PNG_COLOR_TYPE_PALETTE: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    default: return 4;
    }
}

static size_t spec_rowbytes(const png_spec *s) {
    return ((size_t)s->w * spec_channels(s->color) * s->depth + 7) / 8;
}

static uint8_t *make_png(const png_spec *s, size_t *len) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(setjmp(png_jmpbuf(png)) == 0);
    png_set_write_fn(png, &m, mb_write, mb_flush);
    png_set_IHDR(png, info, s->w, s->h, s->depth, s->color, s->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->pal) png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->trans) png_set_tRNS(png, info, s->trns, s->ntrns, s->trans);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * s->h);
    for (int y = 0; y < s->h; y++) rows[y] = (png_bytep)s->raw + y * spec_rowbytes(s);
    png_write_image(png, rows);   // handles Adam7 passes itself
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *len = m.len;
    return m.buf;
}

// Packs sub-byte samples MSB first, as PNG does.
static void pack(uint8_t *row, const int *v, int n, int depth) {
    memset(row, 0, ((size_t)n * depth + 7) / 8);
    for (int i = 0; i < n; i++) {
        int bit = i * depth;
        row[bit / 8] |= (uint8_t)(v[i] << (8 - depth - bit % 8));
    }
}

static void expect_px(const eng_image *im, int x, int y, int r, int g, int b, int a) {
    const uint8_t *p = im->rgba + ((size_t)y * im->width + x) * 4;
    ck_assert_msg(p[0] == r && p[1] == g && p[2] == b && p[3] == a,
                  "pixel (%d,%d) = %d,%d,%d,%d, want %d,%d,%d,%d", x, y, p[0], p[1], p[2], p[3], r, g, b, a);
}

static void decode_ok(eng_image *im, const uint8_t *buf, size_t len, int w, int h) {
    char *err = NULL;
    int rc = eng_image_decode(im, buf, len, MAXPX, &err);
    ck_assert_msg(rc == ENG_IMG_OK, "decode failed (%d): %s", rc, err ? err : "");
    ck_assert_int_eq(im->width, w);
    ck_assert_int_eq(im->height, h);
}

// ---------------------------------------------------------------------------
// PNG: gray at every depth

static void gray_lowbit(int depth, int interlace) {
    const int w = 11, h = 5, maxv = (1 << depth) - 1, mul = 255 / maxv;
    png_spec s = {.w = w, .h = h, .color = PNG_COLOR_TYPE_GRAY, .depth = depth, .interlace = interlace};
    uint8_t raw[5 * 11];
    s.raw = raw;
    int v[11];
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) v[x] = (x * 3 + y * 5) % (maxv + 1);
        pack(raw + y * spec_rowbytes(&s), v, w, depth);
    }
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int g = (x * 3 + y * 5) % (maxv + 1) * mul;   // PNG spec: scale to 8 bits by replication
            expect_px(&im, x, y, g, g, g, 255);
        }
    eng_image_free(&im);
    free(buf);
}

START_TEST(test_png_gray1) { gray_lowbit(1, PNG_INTERLACE_NONE); }
END_TEST
START_TEST(test_png_gray2) { gray_lowbit(2, PNG_INTERLACE_NONE); }
END_TEST
START_TEST(test_png_gray4) { gray_lowbit(4, PNG_INTERLACE_NONE); }
END_TEST
START_TEST(test_png_gray8) { gray_lowbit(8, PNG_INTERLACE_NONE); }
END_TEST
START_TEST(test_png_gray2_interlaced) { gray_lowbit(2, PNG_INTERLACE_ADAM7); }
END_TEST

START_TEST(test_png_gray16) {
    uint8_t raw[2][3 * 2];
    const int v[2][3] = {{0x0000, 0x12ff, 0xffff}, {0x80a0, 0x7f7f, 0x0100}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) raw[y][2 * x] = v[y][x] >> 8, raw[y][2 * x + 1] = v[y][x] & 0xff;
    png_spec s = {.w = 3, .h = 2, .color = PNG_COLOR_TYPE_GRAY, .depth = 16, .interlace = 0, .raw = &raw[0][0]};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 3, 2);
    const int want[2][3] = {{0x00, 0x12, 0xff}, {0x80, 0x7f, 0x01}};   // high byte
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) expect_px(&im, x, y, want[y][x], want[y][x], want[y][x], 255);
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_png_gray_alpha) {
    const uint8_t raw[2][4] = {{10, 0, 200, 255}, {77, 128, 255, 1}};
    png_spec s = {.w = 2, .h = 2, .color = PNG_COLOR_TYPE_GRAY_ALPHA, .depth = 8, .interlace = 0, .raw = &raw[0][0]};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 2, 2);
    expect_px(&im, 0, 0, 10, 10, 10, 0);
    expect_px(&im, 1, 0, 200, 200, 200, 255);
    expect_px(&im, 0, 1, 77, 77, 77, 128);
    expect_px(&im, 1, 1, 255, 255, 255, 1);
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_png_gray_trns) {
    const uint8_t raw[1][3] = {{5, 9, 5}};
    png_color_16 t = {.gray = 5};
    png_spec s = {.w = 3, .h = 1, .color = PNG_COLOR_TYPE_GRAY, .depth = 8, .interlace = 0, .raw = &raw[0][0], .trans = &t};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 3, 1);
    expect_px(&im, 0, 0, 5, 5, 5, 0);
    expect_px(&im, 1, 0, 9, 9, 9, 255);
    expect_px(&im, 2, 0, 5, 5, 5, 0);
    eng_image_free(&im);
    free(buf);
}
END_TEST

// ---------------------------------------------------------------------------
// PNG: RGB, RGBA, palette

START_TEST(test_png_rgb8) {
    const uint8_t raw[2][6] = {{1, 2, 3, 250, 128, 0}, {0, 0, 0, 255, 255, 255}};
    png_spec s = {.w = 2, .h = 2, .color = PNG_COLOR_TYPE_RGB, .depth = 8, .interlace = 0, .raw = &raw[0][0]};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 2, 2);
    expect_px(&im, 0, 0, 1, 2, 3, 255);
    expect_px(&im, 1, 0, 250, 128, 0, 255);
    expect_px(&im, 0, 1, 0, 0, 0, 255);
    expect_px(&im, 1, 1, 255, 255, 255, 255);
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_png_rgb_trns) {
    const uint8_t raw[1][6] = {{10, 20, 30, 10, 20, 31}};
    png_color_16 t = {.red = 10, .green = 20, .blue = 30};
    png_spec s = {.w = 2, .h = 1, .color = PNG_COLOR_TYPE_RGB, .depth = 8, .interlace = 0, .raw = &raw[0][0], .trans = &t};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 2, 1);
    expect_px(&im, 0, 0, 10, 20, 30, 0);
    expect_px(&im, 1, 0, 10, 20, 31, 255);
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_png_rgb16) {
    const uint8_t raw[1][12] = {{0x12, 0x34, 0xab, 0xcd, 0xff, 0xff, 0x00, 0xff, 0x80, 0x00, 0x7f, 0xff}};
    png_spec s = {.w = 2, .h = 1, .color = PNG_COLOR_TYPE_RGB, .depth = 16, .interlace = 0, .raw = &raw[0][0]};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 2, 1);
    expect_px(&im, 0, 0, 0x12, 0xab, 0xff, 255);
    expect_px(&im, 1, 0, 0x00, 0x80, 0x7f, 255);
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_png_rgba8) {
    const uint8_t raw[1][8] = {{9, 8, 7, 6, 255, 0, 100, 0}};
    png_spec s = {.w = 2, .h = 1, .color = PNG_COLOR_TYPE_RGBA, .depth = 8, .interlace = 0, .raw = &raw[0][0]};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 2, 1);
    expect_px(&im, 0, 0, 9, 8, 7, 6);
    expect_px(&im, 1, 0, 255, 0, 100, 0);
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_png_rgba16) {
    const uint8_t raw[1][8] = {{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xfe, 0x07}};
    png_spec s = {.w = 1, .h = 1, .color = PNG_COLOR_TYPE_RGBA, .depth = 16, .interlace = 0, .raw = &raw[0][0]};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, 1, 1);
    expect_px(&im, 0, 0, 0x01, 0x03, 0x05, 0xfe);
    eng_image_free(&im);
    free(buf);
}
END_TEST

static const png_color test_pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {17, 34, 51}};

static void palette_case(int depth, int with_trns) {
    const int w = 7, h = 3;
    png_spec s = {.w = w, .h = h, .color = PNG_COLOR_TYPE_PALETTE, .depth = depth, .interlace = 0};
    uint8_t raw[3 * 7];
    int v[7];
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) v[x] = (x + 2 * y) % 4;
        pack(raw + y * spec_rowbytes(&s), v, w, depth);
    }
    s.raw = raw;
    s.pal = test_pal;
    s.npal = 4;
    const uint8_t trns[2] = {0, 128};   // entries 2, 3 stay opaque
    if (with_trns) s.trns = trns, s.ntrns = 2;
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    decode_ok(&im, buf, len, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = (x + 2 * y) % 4;
            int a = with_trns && i < 2 ? trns[i] : 255;
            expect_px(&im, x, y, test_pal[i].red, test_pal[i].green, test_pal[i].blue, a);
        }
    eng_image_free(&im);
    free(buf);
}

START_TEST(test_png_palette8) { palette_case(8, 0); }
END_TEST
START_TEST(test_png_palette2) { palette_case(2, 0); }
END_TEST
START_TEST(test_png_palette_trns) { palette_case(8, 1); }
END_TEST
START_TEST(test_png_palette4_trns) { palette_case(4, 1); }
END_TEST

START_TEST(test_png_interlaced_rgba) {
    const int w = 9, h = 7;   // not multiples of 8: partial Adam7 passes
    uint8_t raw[7 * 9 * 4];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = raw + (y * w + x) * 4;
            p[0] = (uint8_t)(x * 25), p[1] = (uint8_t)(y * 30), p[2] = (uint8_t)(x * y), p[3] = (uint8_t)(255 - x - y);
        }
    png_spec s = {.w = w, .h = h, .color = PNG_COLOR_TYPE_RGBA, .depth = 8, .interlace = PNG_INTERLACE_ADAM7, .raw = raw};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    ck_assert_int_eq(buf[8 + 4 + 4 + 12], 1);   // IHDR interlace byte really says Adam7
    eng_image im;
    decode_ok(&im, buf, len, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) expect_px(&im, x, y, x * 25, y * 30, x * y, 255 - x - y);
    eng_image_free(&im);
    free(buf);
}
END_TEST

// ---------------------------------------------------------------------------
// JPEG (libjpeg writer, quality 100, checked approximately)

static uint8_t *make_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE cs, size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long olen = 0;
    jpeg_mem_dest(&c, &out, &olen);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    for (int i = 0; i < c.num_components; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < (unsigned)h) {
        JSAMPROW r = (JSAMPROW)px + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = olen;
    return out;
}

static void expect_near(const eng_image *im, int x, int y, int r, int g, int b, int tol) {
    const uint8_t *p = im->rgba + ((size_t)y * im->width + x) * 4;
    ck_assert_msg(abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol && p[3] == 255,
                  "pixel (%d,%d) = %d,%d,%d,%d, want ~%d,%d,%d,255", x, y, p[0], p[1], p[2], p[3], r, g, b);
}

START_TEST(test_jpeg_gray) {
    const int w = 24, h = 16;
    uint8_t px[16 * 24];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) px[y * w + x] = (uint8_t)(x * 8 + y * 3);
    size_t len;
    uint8_t *buf = make_jpeg(px, w, h, 1, JCS_GRAYSCALE, &len);
    eng_image im;
    decode_ok(&im, buf, len, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int g = px[y * w + x];
            expect_near(&im, x, y, g, g, g, 2);
            const uint8_t *p = im.rgba + ((size_t)y * w + x) * 4;
            ck_assert(p[0] == p[1] && p[1] == p[2]);   // exactly grey
        }
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_jpeg_rgb) {
    const int w = 20, h = 12;
    uint8_t px[12 * 20 * 3];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + (y * w + x) * 3;
            p[0] = (uint8_t)(40 + x * 9), p[1] = (uint8_t)(200 - y * 10), p[2] = (uint8_t)(100 + x * 2 + y * 3);
        }
    size_t len;
    uint8_t *buf = make_jpeg(px, w, h, 3, JCS_RGB, &len);
    eng_image im;
    decode_ok(&im, buf, len, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = px + (y * w + x) * 3;
            expect_near(&im, x, y, p[0], p[1], p[2], 4);
        }
    eng_image_free(&im);
    free(buf);
}
END_TEST

START_TEST(test_jpeg_cmyk_adobe) {
    // libjpeg tags CMYK files with an Adobe marker; like Photoshop we store
    // inverted inks (255 = no ink), which is what the decoder assumes.
    const int w = 16, h = 8;
    uint8_t px[8 * 16 * 4];
    int ink[4] = {0};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + (y * w + x) * 4;
            ink[0] = x * 10, ink[1] = y * 20, ink[2] = 100, ink[3] = y < 4 ? 0 : 60;
            for (int k = 0; k < 4; k++) p[k] = (uint8_t)(255 - ink[k]);
        }
    size_t len;
    uint8_t *buf = make_jpeg(px, w, h, 4, JCS_CMYK, &len);
    eng_image im;
    decode_ok(&im, buf, len, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int k = y < 4 ? 0 : 60;
            // R = 255 * (1 - C) * (1 - K), with C, K in [0, 1]
            int r = (int)lround((255.0 - x * 10) * (255 - k) / 255);
            int g = (int)lround((255.0 - y * 20) * (255 - k) / 255);
            int b = (int)lround((255.0 - 100) * (255 - k) / 255);
            expect_near(&im, x, y, r, g, b, 4);
        }
    eng_image_free(&im);
    free(buf);
}
END_TEST

// ---------------------------------------------------------------------------
// hostile inputs

static void put32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = (uint8_t)v;
}

// Appends a chunk with its CRC (zlib's crc32, over type + data) at b + *n.
static void chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *data, uint32_t len) {
    put32(b + *n, len);
    memcpy(b + *n + 4, type, 4);
    if (len) memcpy(b + *n + 8, data, len);
    put32(b + *n + 8 + len, (uint32_t)crc32(0, b + *n + 4, 4 + len));
    *n += 12 + len;
}

START_TEST(test_png_huge_ihdr) {
    uint8_t b[128];
    size_t n = 0;
    const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(b, sig, 8);
    n = 8;
    uint8_t ihdr[13] = {0};
    put32(ihdr, 100000);
    put32(ihdr + 4, 100000);
    ihdr[8] = 8;   // depth 8, colour type 0 (gray), no interlace
    chunk(b, &n, "IHDR", ihdr, 13);
    uint8_t zero = 0, z[32];
    uLongf zl = sizeof z;
    ck_assert_int_eq(compress(z, &zl, &zero, 1), Z_OK);
    chunk(b, &n, "IDAT", z, (uint32_t)zl);
    chunk(b, &n, "IEND", NULL, 0);
    eng_image im;
    char *err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, b, n, MAXPX, &err), ENG_IMG_ETOOLARGE);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(im.rgba);
    free(err);
    err = NULL;
    // A 64x64 header against a limit one pixel short is refused the same way.
    put32(ihdr, 64);
    put32(ihdr + 4, 64);
    n = 8;
    chunk(b, &n, "IHDR", ihdr, 13);
    chunk(b, &n, "IDAT", z, (uint32_t)zl);
    chunk(b, &n, "IEND", NULL, 0);
    ck_assert_int_eq(eng_image_decode(&im, b, n, 64 * 64 - 1, &err), ENG_IMG_ETOOLARGE);
    free(err);
}
END_TEST

START_TEST(test_size_limit_edges) {
    uint8_t raw[8 * 8];
    memset(raw, 7, sizeof raw);
    png_spec s = {.w = 8, .h = 8, .color = PNG_COLOR_TYPE_GRAY, .depth = 8, .interlace = 0, .raw = raw};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    char *err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, buf, len, 63, &err), ENG_IMG_ETOOLARGE);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, buf, len, 64, &err), ENG_IMG_OK);
    eng_image_free(&im);
    free(buf);

    uint8_t g[16 * 16];
    memset(g, 99, sizeof g);
    buf = make_jpeg(g, 16, 16, 1, JCS_GRAYSCALE, &len);
    ck_assert_int_eq(eng_image_decode(&im, buf, len, 255, &err), ENG_IMG_ETOOLARGE);
    ck_assert_ptr_null(im.rgba);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, buf, len, 256, &err), ENG_IMG_OK);
    eng_image_free(&im);
    eng_image_free(&im);   // idempotent
    eng_image_free(NULL);
    free(buf);
}
END_TEST

START_TEST(test_not_an_image) {
    uint8_t junk[1000];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand_r(&seed);
    junk[0] = 'G';   // make sure it does not start like PNG or JPEG by chance
    eng_image im;
    char *err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, junk, sizeof junk, MAXPX, &err), ENG_IMG_EFORMAT);
    ck_assert_ptr_nonnull(err);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, junk, 0, MAXPX, &err), ENG_IMG_EFORMAT);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_image_decode(&im, NULL, 0, MAXPX, &err), ENG_IMG_EFORMAT);
    free(err);
    err = NULL;
    const char gif[] = "GIF89a\x01\x00\x01\x00";
    ck_assert_int_eq(eng_image_decode(&im, gif, sizeof gif, MAXPX, &err), ENG_IMG_EFORMAT);
    free(err);
    err = NULL;
    // right magic, garbage after it: corrupt, not "unknown format"
    uint8_t fake[200];
    memcpy(fake, junk, sizeof fake);
    memcpy(fake, "\x89PNG\r\n\x1a\n", 8);
    ck_assert_int_eq(eng_image_decode(&im, fake, sizeof fake, MAXPX, &err), ENG_IMG_ECORRUPT);
    free(err);
    err = NULL;
    fake[0] = 0xff, fake[1] = 0xd8, fake[2] = 0xff;
    ck_assert_int_eq(eng_image_decode(&im, fake, sizeof fake, MAXPX, &err), ENG_IMG_ECORRUPT);
    free(err);
}
END_TEST

START_TEST(test_png_truncated_and_corrupt) {
    const int w = 32, h = 32;
    uint8_t raw[32 * 32 * 3];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (uint8_t)rand_r(&seed);   // incompressible
    png_spec s = {.w = w, .h = h, .color = PNG_COLOR_TYPE_RGB, .depth = 8, .interlace = 0, .raw = raw};
    size_t len;
    uint8_t *buf = make_png(&s, &len);
    eng_image im;
    char *err = NULL;
    decode_ok(&im, buf, len, w, h);
    eng_image_free(&im);
    const size_t cuts[] = {8, 20, 33, 60, len / 2, len - 13, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        ck_assert_msg(eng_image_decode(&im, buf, cuts[i], MAXPX, &err) == ENG_IMG_ECORRUPT, "cut %zu", cuts[i]);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_null(im.rgba);
        free(err);
        err = NULL;
    }
    buf[20] ^= 1;   // height byte: IHDR CRC no longer matches
    ck_assert_int_eq(eng_image_decode(&im, buf, len, MAXPX, &err), ENG_IMG_ECORRUPT);
    free(err);
    err = NULL;
    buf[20] ^= 1;
    buf[len / 2] ^= 0x55;   // inside IDAT: CRC error
    ck_assert_int_eq(eng_image_decode(&im, buf, len, MAXPX, &err), ENG_IMG_ECORRUPT);
    free(err);
    free(buf);
}
END_TEST

START_TEST(test_jpeg_truncated) {
    const int w = 64, h = 48;
    uint8_t *px = malloc((size_t)w * h * 3);
    unsigned seed = 3;
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)rand_r(&seed);
    size_t len;
    uint8_t *buf = make_jpeg(px, w, h, 3, JCS_RGB, &len);
    eng_image im;
    char *err = NULL;
    decode_ok(&im, buf, len, w, h);
    eng_image_free(&im);
    const size_t cuts[] = {3, 10, 100, len / 2, len - 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        ck_assert_msg(eng_image_decode(&im, buf, cuts[i], MAXPX, &err) == ENG_IMG_ECORRUPT, "cut %zu", cuts[i]);
        ck_assert_ptr_nonnull(err);
        ck_assert_ptr_null(im.rgba);
        free(err);
        err = NULL;
    }
    free(buf);
    free(px);
}
END_TEST

// ---------------------------------------------------------------------------
// image -> tensor, against hand-computed values

// Builds an opaque grey image from values [h][w].
static eng_image gray_image(const int *v, int w, int h) {
    eng_image im = {w, h, malloc((size_t)w * h * 4)};
    for (int i = 0; i < w * h; i++) {
        im.rgba[4 * i] = im.rgba[4 * i + 1] = im.rgba[4 * i + 2] = (uint8_t)v[i];
        im.rgba[4 * i + 3] = 255;
    }
    return im;
}

static eng_image_prep prep(int c, int h, int w) {
    eng_image_prep p = {c, h, w, {0, 0, 0}, {1, 1, 1}, 0, 0};
    return p;
}

static void expect_tensor(const float *got, const float *want_255, int n) {
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabsf(got[i] - want_255[i] / 255.0f) < 1e-5f, "out[%d] = %g, want %g", i, got[i] * 255,
                      want_255[i]);
}

START_TEST(test_tensor_area_2x2_to_1x1) {
    const int v[4] = {0, 100, 200, 60};
    eng_image im = gray_image(v, 2, 2);
    float out[1];
    eng_image_prep p = prep(1, 1, 1);
    eng_image_to_tensor(out, &im, &p);
    expect_tensor(out, (const float[]){90}, 1);
    eng_image_free(&im);
}
END_TEST

START_TEST(test_tensor_area_fractional) {
    const int v[3] = {0, 30, 90};   // 3 -> 2: [0 + 30/2] / 1.5, [30/2 + 90] / 1.5
    eng_image im = gray_image(v, 3, 1);
    float out[2];
    eng_image_prep p = prep(1, 1, 2);
    eng_image_to_tensor(out, &im, &p);
    expect_tensor(out, (const float[]){10, 70}, 2);
    eng_image_free(&im);

    int v2[9];   // linear ramp 10 * (3y + x): averages are the ramp at the centroid
    for (int i = 0; i < 9; i++) v2[i] = 10 * i;
    im = gray_image(v2, 3, 3);
    float o2[4];
    p = prep(1, 2, 2);
    eng_image_to_tensor(o2, &im, &p);
    expect_tensor(o2, (const float[]){40.0f / 3, 80.0f / 3, 160.0f / 3, 200.0f / 3}, 4);
    eng_image_free(&im);
}
END_TEST

START_TEST(test_tensor_bilinear_up) {
    const int v[2] = {0, 100};
    eng_image im = gray_image(v, 2, 1);
    float out[4];
    eng_image_prep p = prep(1, 1, 4);
    eng_image_to_tensor(out, &im, &p);
    expect_tensor(out, (const float[]){0, 25, 75, 100}, 4);
    eng_image_free(&im);

    const int v2[4] = {0, 100, 200, 40};
    im = gray_image(v2, 2, 2);
    float o2[16];
    p = prep(1, 4, 4);
    eng_image_to_tensor(o2, &im, &p);
    // source coords -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1) per axis
    const float want[16] = {0,   25,     75,     100,    //
                            50,  58.75f, 76.25f, 85,     //
                            150, 126.25f, 78.75f, 55,    //
                            200, 160,    80,     40};
    expect_tensor(o2, want, 16);
    eng_image_free(&im);
}
END_TEST

START_TEST(test_tensor_mixed_and_identity) {
    const int v[4] = {10, 20, 30, 50};   // 4x1 -> 2x2: shrink x, grow y
    eng_image im = gray_image(v, 4, 1);
    float out[4];
    eng_image_prep p = prep(1, 2, 2);
    eng_image_to_tensor(out, &im, &p);
    expect_tensor(out, (const float[]){15, 40, 15, 40}, 4);
    eng_image_free(&im);

    int v2[5 * 3];
    float want[15];
    for (int i = 0; i < 15; i++) v2[i] = i * 17, want[i] = (float)(i * 17);
    im = gray_image(v2, 5, 3);
    float o2[15];
    p = prep(1, 3, 5);
    eng_image_to_tensor(o2, &im, &p);
    expect_tensor(o2, want, 15);
    eng_image_free(&im);
}
END_TEST

START_TEST(test_tensor_alpha_and_channels) {
    eng_image im = {2, 1, malloc(8)};
    const uint8_t px[8] = {200, 100, 0, 51, 9, 9, 9, 0};   // 20% opaque; fully transparent
    memcpy(im.rgba, px, 8);
    eng_image_prep p = prep(3, 1, 2);
    p.background = 50;
    float out[6];
    eng_image_to_tensor(out, &im, &p);
    // c*0.2 + 50*0.8; layout [c][h][w]
    expect_tensor(out, (const float[]){80, 50, 60, 50, 40, 50}, 6);

    p.channels = 1;
    eng_image_to_tensor(out, &im, &p);
    expect_tensor(out, (const float[]){0.299f * 80 + 0.587f * 60 + 0.114f * 40, 50}, 2);

    const uint8_t colour[8] = {255, 0, 0, 255, 0, 0, 255, 255};   // BT.601 weights
    memcpy(im.rgba, colour, 8);
    eng_image_to_tensor(out, &im, &p);
    expect_tensor(out, (const float[]){0.299f * 255, 0.114f * 255}, 2);
    eng_image_free(&im);
}
END_TEST

START_TEST(test_tensor_invert_normalise) {
    eng_image im = {1, 1, malloc(4)};
    const uint8_t px[4] = {255, 0, 51, 255};
    memcpy(im.rgba, px, 4);
    eng_image_prep p = {3, 1, 1, {0.5f, 0.5f, 0.5f}, {0.5f, 0.25f, 2.0f}, 0, 1};
    float out[3];
    eng_image_to_tensor(out, &im, &p);
    // inverted (0, 255, 204) -> (0, 1, 0.8) -> ((0-.5)/.5, (1-.5)/.25, (.8-.5)/2)
    ck_assert(fabsf(out[0] - -1.0f) < 1e-6f);
    ck_assert(fabsf(out[1] - 2.0f) < 1e-6f);
    ck_assert(fabsf(out[2] - 0.15f) < 1e-6f);
    eng_image_free(&im);
}
END_TEST

// ---------------------------------------------------------------------------
// PNG encoding

START_TEST(test_png_encode_roundtrip) {
    const int chans[3] = {1, 3, 4};
    const int want_color[3] = {0, 2, 6};   // IHDR colour types
    for (int ci = 0; ci < 3; ci++) {
        int c = chans[ci], w = 5, h = 4;
        uint8_t px[5 * 4 * 4];
        for (int i = 0; i < w * h * c; i++) px[i] = (uint8_t)(i * 37 + ci);
        uint8_t *png = NULL;
        size_t len = 0;
        char *err = NULL;
        ck_assert_msg(eng_png_encode(&png, &len, px, w, h, c, &err) == 0, "%s", err);
        ck_assert_int_eq(png[25], want_color[ci]);
        ck_assert_int_eq(png[24], 8);
        eng_image im;
        decode_ok(&im, png, len, w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const uint8_t *s = px + (y * w + x) * c;
                if (c == 1) expect_px(&im, x, y, s[0], s[0], s[0], 255);
                else expect_px(&im, x, y, s[0], s[1], s[2], c == 4 ? s[3] : 255);
            }
        eng_image_free(&im);
        free(png);
    }
}
END_TEST

START_TEST(test_png_encode_refuses) {
    uint8_t px[16] = {0};
    uint8_t *png = (uint8_t *)1;
    size_t len = 1;
    char *err = NULL;
    ck_assert_int_eq(eng_png_encode(&png, &len, px, 2, 2, 2, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(png);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_png_encode(&png, &len, px, 0, 2, 1, &err), -1);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_png_encode(&png, &len, px, 2, -1, 1, &err), -1);
    free(err);
}

// A 1 x 4,000,000 picture (and its transpose) once made the resize allocate
// height x target width floats: ~0.5 GB for a 7.8 KB PNG. The transform must
// now run in O(width + target) memory: checked under an address-space cap of
// 160 MB above what the process maps already (the image itself is 16 MB).
// AddressSanitizer maps terabytes of shadow, so there only the values are checked.
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
START_TEST(test_tensor_extreme_shapes_bounded_memory) {
#ifdef UNDER_ASAN
    enum { LONG = 400000 };    // ~10x slower under ASan, and only the values are checked
#else
    enum { LONG = 4000000 };
#endif
    #ifndef UNDER_ASAN
    {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        ck_assert(f && fscanf(f, "%ld", &pages) == 1);
        fclose(f);
        struct rlimit rl = {.rlim_cur = (rlim_t)pages * 4096 + (160u << 20), .rlim_max = RLIM_INFINITY};
        ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
    }
#endif
    for (int t = 0; t < 2; t++) {
        eng_image im = {t ? 1 : LONG, t ? LONG : 1, malloc((size_t)LONG * 4)};
        ck_assert_ptr_nonnull(im.rgba);
        for (size_t i = 0; i < (size_t)LONG; i++) {
            im.rgba[4 * i] = im.rgba[4 * i + 1] = im.rgba[4 * i + 2] = 51;
            im.rgba[4 * i + 3] = 255;
        }
        float out[3 * 28 * 28];
        eng_image_prep p = prep(3, 28, 28);
        ck_assert_int_eq(eng_image_to_tensor(out, &im, &p), 0);
        for (int i = 0; i < 3 * 28 * 28; i++) ck_assert_msg(fabsf(out[i] - 0.2f) < 1e-3f, "t=%d out[%d]=%g", t, i, out[i]);
        eng_image_free(&im);
    }
}
END_TEST

END_TEST

static Suite *image_suite(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("png");
    tcase_add_test(tc, test_png_gray1);
    tcase_add_test(tc, test_png_gray2);
    tcase_add_test(tc, test_png_gray4);
    tcase_add_test(tc, test_png_gray8);
    tcase_add_test(tc, test_png_gray2_interlaced);
    tcase_add_test(tc, test_png_gray16);
    tcase_add_test(tc, test_png_gray_alpha);
    tcase_add_test(tc, test_png_gray_trns);
    tcase_add_test(tc, test_png_rgb8);
    tcase_add_test(tc, test_png_rgb_trns);
    tcase_add_test(tc, test_png_rgb16);
    tcase_add_test(tc, test_png_rgba8);
    tcase_add_test(tc, test_png_rgba16);
    tcase_add_test(tc, test_png_palette8);
    tcase_add_test(tc, test_png_palette2);
    tcase_add_test(tc, test_png_palette_trns);
    tcase_add_test(tc, test_png_palette4_trns);
    tcase_add_test(tc, test_png_interlaced_rgba);
    suite_add_tcase(s, tc);

    tc = tcase_create("jpeg");
    tcase_add_test(tc, test_jpeg_gray);
    tcase_add_test(tc, test_jpeg_rgb);
    tcase_add_test(tc, test_jpeg_cmyk_adobe);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, test_png_huge_ihdr);
    tcase_add_test(tc, test_size_limit_edges);
    tcase_add_test(tc, test_not_an_image);
    tcase_add_test(tc, test_png_truncated_and_corrupt);
    tcase_add_test(tc, test_jpeg_truncated);
    suite_add_tcase(s, tc);

    tc = tcase_create("tensor");
    tcase_set_timeout(tc, 60);   // the 4,000,000-pixel shapes, on a loaded machine or under ASan
    tcase_add_test(tc, test_tensor_area_2x2_to_1x1);
    tcase_add_test(tc, test_tensor_area_fractional);
    tcase_add_test(tc, test_tensor_bilinear_up);
    tcase_add_test(tc, test_tensor_mixed_and_identity);
    tcase_add_test(tc, test_tensor_alpha_and_channels);
    tcase_add_test(tc, test_tensor_invert_normalise);
    tcase_add_test(tc, test_tensor_extreme_shapes_bounded_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_test(tc, test_png_encode_roundtrip);
    tcase_add_test(tc, test_png_encode_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(image_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
