// mkimg.c — test-image maker for the integration tests and README examples.
// Turns one picture of an IDX image file (MNIST / Fashion-MNIST) into PNG or
// JPEG files, in every encoding the decoder must handle, and writes hostile
// files (a PNG claiming 100000x100000, truncated copies). A CLI, so errors
// print a message and exit non-zero.
//
//   mkimg idx2png IMAGES.idx[.gz] INDEX OUT.png [SCALE]
//   mkimg idx2jpg IMAGES.idx[.gz] INDEX OUT.jpg [SCALE]
//   mkimg variants IMAGES.idx[.gz] INDEX OUTDIR
//   mkimg huge OUT.png
//   mkimg truncated IN OUT BYTES
//   mkimg noise OUT.png W H [rgba]
//   mkimg exif IN.jpg OUT.jpg ORIENTATION
//   mkimg info IMG
//   mkimg diff A B
//   mkimg change A B
#include "engine/io/idx.h"     // eng_idx_load
#include "engine/io/image.h"   // eng_png_encode
#include "engine/core/util.h"    // eng_read_file, eng_write_file_atomic

#include <errno.h>          // errno
#include <limits.h>         // INT_MAX
#include <math.h>           // fabs
#include <png.h>            // encodings eng_png_encode does not produce
#include <setjmp.h>         // libpng's error return
#include <stdarg.h>         // va_list for die
#include <stdio.h>          // fprintf (before jpeglib.h)
#include <stdlib.h>         // strtol, exit
#include <string.h>         // strcmp, memcpy
#include <jpeglib.h>        // JPEG writer
#include <zlib.h>           // crc32, compress for `huge`

static void usage(void) {
    fprintf(stderr,
            "usage:\n"
            "  mkimg idx2png IMAGES.idx[.gz] INDEX OUT.png [SCALE]  one image as 8-bit gray PNG (nearest upscale)\n"
            "  mkimg idx2jpg IMAGES.idx[.gz] INDEX OUT.jpg [SCALE]  the same as JPEG, quality 95\n"
            "  mkimg variants IMAGES.idx[.gz] INDEX OUTDIR          the image in every PNG/JPEG flavour\n"
            "  mkimg huge OUT.png                                   PNG header claiming 100000x100000\n"
            "  mkimg truncated IN OUT BYTES                         first BYTES bytes of IN\n"
            "  mkimg noise OUT.png W H [rgba]                       W x H random colours (seeded), RGB or RGBA\n"
            "  mkimg exif IN.jpg OUT.jpg ORIENTATION                IN with an EXIF APP1 saying ORIENTATION (1..8)\n"
            "  mkimg info IMG                                       prints \"W H opaque|alpha\" as decoded\n"
            "  mkimg diff A B                                       prints the largest channel difference (RGBA), sizes must match\n"
            "  mkimg change A B                                     prints the mean absolute RGB difference, then the same\n"
            "                                                       after removing each image's per-channel mean (a tint's share)\n");
}

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mkimg: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static long parse_long(const char *s, const char *what, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) die("bad %s '%s' (want %ld..%ld)", what, s, lo, hi);
    return v;
}

static void save(const char *path, const void *buf, size_t len) {
    char *err = NULL;
    if (eng_write_file_atomic(path, buf, len, &err) != 0) die("%s", err);
}

// ---------------------------------------------------------------------------
// source picture

typedef struct {
    int w, h;       // pixels
    uint8_t *px;    // [h][w] gray, owned
} gray_img;

static gray_img load_idx_image(const char *path, const char *index) {
    eng_idx x;
    char *err = NULL;
    if (eng_idx_load(&x, path, &err) != 0) die("%s", err);
    if (x.ndim != 3) die("%s: %d-dimensional IDX, want images [n][h][w]", path, x.ndim);
    long i = parse_long(index, "INDEX", 0, (long)x.dims[0] - 1);
    gray_img g = {x.dims[2], x.dims[1], malloc((size_t)x.dims[1] * x.dims[2])};
    if (!g.px) die("out of memory");
    memcpy(g.px, x.data + (size_t)i * g.w * g.h, (size_t)g.w * g.h);
    eng_idx_free(&x);
    return g;
}

// Nearest-neighbour upscale by an integer factor.
static gray_img upscale(const gray_img *g, int s) {
    gray_img o = {g->w * s, g->h * s, malloc((size_t)g->w * s * g->h * s)};
    if (!o.px) die("out of memory");
    for (int y = 0; y < o.h; y++)
        for (int x = 0; x < o.w; x++) o.px[(size_t)y * o.w + x] = g->px[(size_t)(y / s) * g->w + x / s];
    return o;
}

// ---------------------------------------------------------------------------
// writers

static void write_png_eng(const char *path, const uint8_t *px, int w, int h, int channels) {
    uint8_t *buf;
    size_t len;
    char *err = NULL;
    if (eng_png_encode(&buf, &len, px, w, h, channels, &err) != 0) die("%s: %s", path, err);
    save(path, buf, len);
    free(buf);
}

// A PNG in any colour type / depth straight from libpng. rows: packed, PNG
// byte order (16-bit big-endian).
typedef struct {
    int color, depth, interlace;   // PNG_COLOR_TYPE_*, bits per sample, PNG_INTERLACE_*
    const png_color *pal;          // palette or NULL
    int npal;
    const uint8_t *trns;           // palette alpha or NULL
    int ntrns;
} png_fmt;

static void write_png_raw(const char *path, const uint8_t *raw, size_t rowbytes, int w, int h, const png_fmt *f) {
    FILE *fp = fopen(path, "wb");
    if (!fp) die("%s: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) die("out of memory");
    if (setjmp(png_jmpbuf(png))) die("%s: libpng failed", path);   // libpng printed why
    png_init_io(png, fp);
    png_set_IHDR(png, info, w, h, f->depth, f->color, f->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (f->pal) png_set_PLTE(png, info, f->pal, f->npal);
    if (f->trns) png_set_tRNS(png, info, f->trns, f->ntrns, NULL);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    if (!rows) die("out of memory");
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)raw + (size_t)y * rowbytes;
    png_write_image(png, rows);   // runs the Adam7 passes when interlaced
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(fp) != 0) die("%s: %s", path, strerror(errno));
}

static void write_jpeg(const char *path, const gray_img *g, int rgb) {
    FILE *fp = fopen(path, "wb");
    if (!fp) die("%s: %s", path, strerror(errno));
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);   // default error_exit prints and exits: fine for a CLI
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)g->w;
    c.image_height = (JDIMENSION)g->h;
    c.input_components = rgb ? 3 : 1;
    c.in_color_space = rgb ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)g->w * 3);
    if (!row) die("out of memory");
    while (c.next_scanline < c.image_height) {
        const uint8_t *s = g->px + (size_t)c.next_scanline * g->w;
        if (rgb)
            for (int x = 0; x < g->w; x++) row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = s[x];
        else memcpy(row, s, (size_t)g->w);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    if (fclose(fp) != 0) die("%s: %s", path, strerror(errno));
}

// ---------------------------------------------------------------------------
// commands

static int cmd_idx2(int argc, char **argv, int jpeg) {
    if (argc != 5 && argc != 6) {
        usage();
        return 2;
    }
    gray_img g = load_idx_image(argv[2], argv[3]);
    if (argc == 6) {
        int s = (int)parse_long(argv[5], "SCALE", 1, 64);
        gray_img big = upscale(&g, s);
        free(g.px);
        g = big;
    }
    if (jpeg) write_jpeg(argv[4], &g, 0);
    else write_png_eng(argv[4], g.px, g.w, g.h, 1);
    free(g.px);
    return 0;
}

static const char *out_path(char *buf, size_t cap, const char *dir, const char *name) {
    if (snprintf(buf, cap, "%s/%s", dir, name) >= (int)cap) die("%s/%s: path too long", dir, name);
    return buf;
}

static int cmd_variants(int argc, char **argv) {
    if (argc != 5) {
        usage();
        return 2;
    }
    gray_img g = load_idx_image(argv[2], argv[3]);
    const char *dir = argv[4];
    const int w = g.w, h = g.h;
    const size_t n = (size_t)w * h;
    char path[4096];
#define OUT(name) out_path(path, sizeof path, dir, name)
    uint8_t *buf = malloc(n * 8);   // big enough for every layout below (RGB16 = 6 bytes/pixel)
    if (!buf) die("out of memory");

    write_png_eng(OUT("gray8.png"), g.px, w, h, 1);

    for (size_t i = 0; i < n; i++) buf[2 * i] = buf[2 * i + 1] = g.px[i];   // v * 257, big-endian
    write_png_raw(OUT("gray16.png"), buf, (size_t)w * 2, w, h, &(png_fmt){.color = PNG_COLOR_TYPE_GRAY, .depth = 16});

    size_t rb4 = ((size_t)w + 1) / 2;   // two 4-bit samples per byte, high nibble first
    memset(buf, 0, rb4 * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v4 = (g.px[(size_t)y * w + x] * 15 + 127) / 255;
            buf[(size_t)y * rb4 + x / 2] |= (uint8_t)(x % 2 ? v4 : v4 << 4);
        }
    write_png_raw(OUT("gray4.png"), buf, rb4, w, h, &(png_fmt){.color = PNG_COLOR_TYPE_GRAY, .depth = 4});

    for (size_t i = 0; i < n; i++) buf[2 * i] = g.px[i], buf[2 * i + 1] = 255;   // opaque alpha
    write_png_raw(OUT("gray_alpha.png"), buf, (size_t)w * 2, w, h,
                  &(png_fmt){.color = PNG_COLOR_TYPE_GRAY_ALPHA, .depth = 8});

    for (size_t i = 0; i < n; i++) buf[3 * i] = buf[3 * i + 1] = buf[3 * i + 2] = g.px[i];
    write_png_eng(OUT("rgb8.png"), buf, w, h, 3);

    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 6; k++) buf[6 * i + k] = g.px[i];
    write_png_raw(OUT("rgb16.png"), buf, (size_t)w * 6, w, h, &(png_fmt){.color = PNG_COLOR_TYPE_RGB, .depth = 16});

    for (size_t i = 0; i < n; i++) buf[4 * i] = buf[4 * i + 1] = buf[4 * i + 2] = g.px[i], buf[4 * i + 3] = 255;
    write_png_eng(OUT("rgba.png"), buf, w, h, 4);

    // Palette of the 256 grey levels, index = grey value. The tRNS variant
    // marks every entry opaque (so the picture is unchanged whatever the
    // model's background), but still exercises the tRNS -> alpha path.
    png_color pal[256];
    uint8_t trns[256];
    for (int i = 0; i < 256; i++) pal[i].red = pal[i].green = pal[i].blue = (png_byte)i, trns[i] = 255;
    write_png_raw(OUT("palette.png"), g.px, (size_t)w, w, h,
                  &(png_fmt){.color = PNG_COLOR_TYPE_PALETTE, .depth = 8, .pal = pal, .npal = 256});
    write_png_raw(OUT("palette_trns.png"), g.px, (size_t)w, w, h,
                  &(png_fmt){.color = PNG_COLOR_TYPE_PALETTE, .depth = 8, .pal = pal, .npal = 256,
                             .trns = trns, .ntrns = 256});

    write_png_raw(OUT("interlaced.png"), g.px, (size_t)w, w, h,
                  &(png_fmt){.color = PNG_COLOR_TYPE_GRAY, .depth = 8, .interlace = PNG_INTERLACE_ADAM7});

    gray_img big = upscale(&g, 10);
    write_png_eng(OUT("big.png"), big.px, big.w, big.h, 1);
    free(big.px);

    write_jpeg(OUT("gray.jpg"), &g, 0);
    write_jpeg(OUT("rgb.jpg"), &g, 1);
#undef OUT
    free(buf);
    free(g.px);
    return 0;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// Appends a chunk (length, type, data, CRC over type + data) at b + *n.
static void put_chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *data, uint32_t len) {
    put32(b + *n, len);
    memcpy(b + *n + 4, type, 4);
    if (len) memcpy(b + *n + 8, data, len);
    put32(b + *n + 8 + len, (uint32_t)crc32(0, b + *n + 4, 4 + len));
    *n += 12 + len;
}

static int cmd_huge(int argc, char **argv) {
    if (argc != 3) {
        usage();
        return 2;
    }
    uint8_t b[256];
    size_t n = 8;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0};
    put32(ihdr, 100000);
    put32(ihdr + 4, 100000);
    ihdr[8] = 8;   // bit depth; colour type 0 (gray), deflate, filter 0, no interlace
    put_chunk(b, &n, "IHDR", ihdr, 13);
    uint8_t row[64] = {0}, z[128];   // the start of the first scanline only
    uLongf zl = sizeof z;
    if (compress(z, &zl, row, sizeof row) != Z_OK) die("zlib compress failed");
    put_chunk(b, &n, "IDAT", z, (uint32_t)zl);
    put_chunk(b, &n, "IEND", NULL, 0);
    save(argv[2], b, n);
    return 0;
}

static int cmd_truncated(int argc, char **argv) {
    if (argc != 5) {
        usage();
        return 2;
    }
    size_t len;
    char *err = NULL;
    char *data = eng_read_file(argv[2], &len, &err);
    if (!data) die("%s", err);
    long keep = parse_long(argv[4], "BYTES", 0, LONG_MAX);
    if ((size_t)keep > len) die("%s has only %zu bytes, cannot keep %ld", argv[2], len, keep);
    save(argv[3], data, (size_t)keep);
    free(data);
    return 0;
}

static int cmd_noise(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        usage();
        return 2;
    }
    int w = (int)parse_long(argv[3], "W", 1, 20000), h = (int)parse_long(argv[4], "H", 1, 20000);
    int ch = argc == 6 && strcmp(argv[5], "rgba") == 0 ? 4 : 3;
    uint8_t *px = malloc((size_t)w * h * ch);
    if (!px) die("out of memory");
    uint32_t s = 12345;
    for (size_t i = 0; i < (size_t)w * h * ch; i++) {
        s = s * 1664525u + 1013904223u;
        px[i] = (uint8_t)(s >> 24);
    }
    write_png_eng(argv[2], px, w, h, ch);
    free(px);
    return 0;
}

// An EXIF APP1 (big-endian TIFF, one IFD0 entry: Orientation) right after SOI.
static int cmd_exif(int argc, char **argv) {
    if (argc != 5) {
        usage();
        return 2;
    }
    size_t len;
    char *err = NULL;
    uint8_t *in = (uint8_t *)eng_read_file(argv[2], &len, &err);
    if (!in) die("%s", err);
    if (len < 4 || in[0] != 0xff || in[1] != 0xd8) die("%s is not a JPEG", argv[2]);
    long o = parse_long(argv[4], "ORIENTATION", 1, 8);
    static const uint8_t app1[] = {0xff, 0xe1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0,
                                   'M', 'M', 0, 42, 0, 0, 0, 8,   // TIFF header, IFD0 at 8
                                   0, 1,                          // one entry
                                   0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0,   // Orientation, SHORT, 1, value
                                   0, 0, 0, 0};                   // no next IFD
    uint8_t *out = malloc(len + sizeof app1);
    if (!out) die("out of memory");
    memcpy(out, in, 2);
    memcpy(out + 2, app1, sizeof app1);
    out[2 + 2 + 2 + 6 + 8 + 2 + 8 + 1] = (uint8_t)o;
    memcpy(out + 2 + sizeof app1, in + 2, len - 2);
    save(argv[3], out, len + sizeof app1);
    free(out);
    free(in);
    return 0;
}

static eng_image decode_file(const char *path) {
    size_t len;
    char *err = NULL;
    char *data = eng_read_file(path, &len, &err);
    if (!data) die("%s", err);
    eng_image img;
    if (eng_image_decode(&img, data, len, (size_t)1 << 28, &err) != ENG_IMG_OK) die("%s: %s", path, err);
    free(data);
    return img;
}

static int cmd_info(int argc, char **argv) {
    if (argc != 3) {
        usage();
        return 2;
    }
    eng_image img = decode_file(argv[2]);
    int alpha = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height; i++) alpha |= img.rgba[4 * i + 3] != 255;
    printf("%d %d %s\n", img.width, img.height, alpha ? "alpha" : "opaque");
    eng_image_free(&img);
    return 0;
}

static int cmd_diff(int argc, char **argv) {
    if (argc != 4) {
        usage();
        return 2;
    }
    eng_image a = decode_file(argv[2]), b = decode_file(argv[3]);
    if (a.width != b.width || a.height != b.height)
        die("sizes differ: %dx%d and %dx%d", a.width, a.height, b.width, b.height);
    int maxd = 0;
    for (size_t i = 0; i < (size_t)a.width * a.height * 4; i++) {
        int d = abs((int)a.rgba[i] - (int)b.rgba[i]);
        if (d > maxd) maxd = d;
    }
    printf("%d\n", maxd);
    eng_image_free(&a);
    eng_image_free(&b);
    return 0;
}

// How much B restyles A: mean |B - A| over the RGB values, and mean
// |(B - mean_c B) - (A - mean_c A)| (what is left once a per-channel shift,
// a tint, is taken out).
static int cmd_change(int argc, char **argv) {
    if (argc != 4) {
        usage();
        return 2;
    }
    eng_image a = decode_file(argv[2]), b = decode_file(argv[3]);
    if (a.width != b.width || a.height != b.height)
        die("sizes differ: %dx%d and %dx%d", a.width, a.height, b.width, b.height);
    size_t n = (size_t)a.width * a.height;
    double ma[3] = {0, 0, 0}, mb[3] = {0, 0, 0}, abs_d = 0, centred = 0;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) ma[c] += a.rgba[4 * i + c], mb[c] += b.rgba[4 * i + c];
    for (int c = 0; c < 3; c++) ma[c] /= (double)n, mb[c] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            double d = (double)b.rgba[4 * i + c] - a.rgba[4 * i + c];
            abs_d += fabs(d);
            centred += fabs(d - (mb[c] - ma[c]));
        }
    printf("%.2f %.2f\n", abs_d / (3.0 * (double)n), centred / (3.0 * (double)n));
    eng_image_free(&a);
    eng_image_free(&b);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "idx2png") == 0) return cmd_idx2(argc, argv, 0);
    if (strcmp(cmd, "idx2jpg") == 0) return cmd_idx2(argc, argv, 1);
    if (strcmp(cmd, "variants") == 0) return cmd_variants(argc, argv);
    if (strcmp(cmd, "huge") == 0) return cmd_huge(argc, argv);
    if (strcmp(cmd, "truncated") == 0) return cmd_truncated(argc, argv);
    if (strcmp(cmd, "noise") == 0) return cmd_noise(argc, argv);
    if (strcmp(cmd, "exif") == 0) return cmd_exif(argc, argv);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc, argv);
    if (strcmp(cmd, "diff") == 0) return cmd_diff(argc, argv);
    if (strcmp(cmd, "change") == 0) return cmd_change(argc, argv);
    fprintf(stderr, "mkimg: unknown command '%s'\n", cmd);
    usage();
    return 2;
}
