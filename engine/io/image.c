// image.c — PNG/JPEG decoding from memory into RGBA8, the image -> input
// tensor transform, and PNG encoding into memory; see image.h.
// Untrusted bytes come straight from clients, so every decoder checks the
// claimed size against the caller's max_pixels before allocating pixels, and
// libpng/libjpeg errors longjmp back here and become ENG_IMG_* values.
// Not here: base64, HTTP, and knowing which model wants which size.
#include "engine/io/image.h"
#include "engine/core/util.h"   // eng_errorf, eng_xmalloc

#include <setjmp.h>        // setjmp/longjmp for the libpng and libjpeg error paths
#include <stdarg.h>        // va_list for img_fail
#include <stdio.h>         // FILE (needed before jpeglib.h), snprintf
#include <limits.h>        // LONG_MAX
#include <stdlib.h>        // malloc, realloc, free
#include <string.h>        // memcpy, memcmp, memset
#include <math.h>          // floor
#include <png.h>           // libpng
#include <jpeglib.h>       // libjpeg-turbo
#include <jerror.h>        // JWRN_JPEG_EOF
#include <zlib.h>          // crc32 for the IHDR pre-check

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

#define IMG_PNG_MAX_CHUNK (8u << 20)   // bytes of ancillary chunk data libpng may buffer
#define IMG_JPEG_MAX_SCANS 1000        // progressive scans; more is a CPU-exhaustion attack

static uint32_t img_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Sets *err like eng_errorf and returns `code` (an ENG_IMG_* value).
__attribute__((format(printf, 3, 4)))
static int img_fail(char **err, int code, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    eng_errorf(err, "%s", buf);
    return code;
}

// 1 when w*h pixels (of 4 bytes) are within max_pixels and addressable.
static int img_size_ok(uint64_t w, uint64_t h, size_t max_pixels) {
    if (w == 0 || h == 0) return 0;
    if (w > UINT32_MAX || h > UINT32_MAX) return 0;
    uint64_t px = w * h;   // both < 2^32, cannot overflow
    return px <= (uint64_t)max_pixels && px <= SIZE_MAX / 4;
}

// ---------------------------------------------------------------------------
// PNG decoding

typedef struct {
    const uint8_t *data;   // the whole file
    size_t len, pos;       // bytes, read cursor
    char msg[160];         // libpng's error text
} img_png_src;

static void img_png_error(png_structp png, png_const_charp msg) {
    img_png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void img_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;   // benign (e.g. a bad ancillary chunk CRC); nothing to report
}

static void img_png_read(png_structp png, png_bytep out, png_size_t n) {
    img_png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "unexpected end of data (truncated file)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static int img_decode_png(eng_image *img, const uint8_t *data, size_t len, size_t max_pixels, char **err) {
    // Signature (8) + IHDR length, type, 13 bytes of fields, CRC = 33 bytes.
    // Read the claimed size ourselves so a huge image is refused before
    // libpng allocates anything.
    if (len < 33) return img_fail(err, ENG_IMG_ECORRUPT, "PNG: truncated header (%zu bytes)", len);
    if (img_be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0)
        return img_fail(err, ENG_IMG_ECORRUPT, "PNG: first chunk is not IHDR");
    if (crc32(0, data + 12, 17) != img_be32(data + 29))   // a damaged size is not "too large"
        return img_fail(err, ENG_IMG_ECORRUPT, "PNG: IHDR CRC mismatch");
    uint32_t cw = img_be32(data + 16), ch = img_be32(data + 20);
    if (cw == 0 || ch == 0) return img_fail(err, ENG_IMG_ECORRUPT, "PNG: zero width or height");
    if (!img_size_ok(cw, ch, max_pixels))
        return img_fail(err, ENG_IMG_ETOOLARGE, "PNG: %ux%u pixels exceeds the limit of %zu", cw, ch, max_pixels);

    img_png_src src = {.data = data, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, img_png_error, img_png_warning);
    if (!png) return img_fail(err, ENG_IMG_ETOOLARGE, "PNG: out of memory");
    png_infop info = png_create_info_struct(png);
    // Written between setjmp and a possible longjmp, hence volatile.
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile int rc = ENG_IMG_ECORRUPT;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return img_fail(err, ENG_IMG_ETOOLARGE, "PNG: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        if (rc == ENG_IMG_ECORRUPT) eng_errorf(err, "PNG: %s", src.msg);
        free(rows);
        free(px);
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    // libpng's own bounds, matching ours, for anything that gets past the pre-check.
    png_uint_32 lim = max_pixels > PNG_UINT_31_MAX ? PNG_UINT_31_MAX : (png_uint_32)max_pixels;
    png_set_user_limits(png, lim, lim);
    png_set_chunk_malloc_max(png, IMG_PNG_MAX_CHUNK);
    png_set_chunk_cache_max(png, 1000);
    // Ancillary chunks we never use are skipped unread: in test_random (seed
    // 594640127) one random PNG made png_read_info allocate and fill 512 MB
    // while handling one of them (peak RSS 580 MB; 180 MB once skipped).
    static const png_byte ignored[] = "iCCP\0zTXt\0iTXt\0tEXt\0sPLT\0eXIf\0pCAL\0sCAL\0hIST\0tIME\0pHYs\0oFFs\0sBIT\0cHRM\0gAMA\0sRGB\0bKGD";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);   // unknown chunks
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, ignored, (int)(sizeof ignored / 5));
    png_set_read_fn(png, &src, img_png_read);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (!img_size_ok(w, h, max_pixels)) {   // cannot differ from the pre-check, but cheap
        rc = ENG_IMG_ETOOLARGE;
        eng_errorf(err, "PNG: %ux%u pixels exceeds the limit of %zu", (unsigned)w, (unsigned)h, max_pixels);
        png_longjmp(png, 1);
    }

    // Everything becomes 8-bit RGBA.
    png_set_expand(png);   // palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    if (!(color & PNG_COLOR_MASK_ALPHA) && !png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4) png_error(png, "unexpected row size after transforms");

    px = malloc((size_t)w * h * 4);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) {
        rc = ENG_IMG_ETOOLARGE;
        eng_errorf(err, "PNG: out of memory for %ux%u pixels", (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL);   // checks the remaining chunks' CRCs and that IEND is there

    img->width = (int)w;
    img->height = (int)h;
    img->rgba = px;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return ENG_IMG_OK;
}

// ---------------------------------------------------------------------------
// JPEG decoding

typedef struct {
    struct jpeg_error_mgr pub;   // must be first: libjpeg sees only this
    jmp_buf jb;                  // where errors land
    char msg[JMSG_LENGTH_MAX];   // formatted message
} img_jpeg_err;

static void img_jpeg_error_exit(j_common_ptr cinfo) {
    img_jpeg_err *e = (img_jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

// Warnings are dropped, except hitting the end of the data: libjpeg would pad
// a truncated file with grey and call it a success.
static void img_jpeg_emit(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) img_jpeg_error_exit(cinfo);
}

static void img_jpeg_progress(j_common_ptr cinfo) {
    if (cinfo->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (d->input_scan_number > IMG_JPEG_MAX_SCANS) {
            img_jpeg_err *e = (img_jpeg_err *)cinfo->err;
            snprintf(e->msg, sizeof e->msg, "more than %d scans", IMG_JPEG_MAX_SCANS);
            longjmp(e->jb, 1);
        }
    }
}

static int img_decode_jpeg(eng_image *img, const uint8_t *data, size_t len, size_t max_pixels, char **err) {
    struct jpeg_decompress_struct cinfo;
    img_jpeg_err jerr;
    struct jpeg_progress_mgr progress = {.progress_monitor = img_jpeg_progress};
    uint8_t *volatile px = NULL;
    uint8_t *volatile row = NULL;
    volatile int rc = ENG_IMG_ECORRUPT;

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = img_jpeg_error_exit;
    jerr.pub.emit_message = img_jpeg_emit;
    jerr.msg[0] = 0;
    if (setjmp(jerr.jb)) {
        if (rc == ENG_IMG_ECORRUPT) eng_errorf(err, "JPEG: %s", jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        free(row);
        free(px);
        return rc;
    }
    jpeg_create_decompress(&cinfo);
    // libjpeg's own buffers (whole-image coefficient arrays of progressive
    // files) within the per-pixel budget of image.h: above it libjpeg fails
    // with "backing store not supported" instead of allocating.
    cinfo.mem->max_memory_to_use = (long)((max_pixels < (size_t)LONG_MAX / 8 ? max_pixels : (size_t)LONG_MAX / 8) * 8 + (1 << 20));
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (!img_size_ok(cinfo.image_width, cinfo.image_height, max_pixels)) {
        rc = cinfo.image_width && cinfo.image_height ? ENG_IMG_ETOOLARGE : ENG_IMG_ECORRUPT;
        eng_errorf(err, "JPEG: %ux%u pixels exceeds the limit of %zu", cinfo.image_width, cinfo.image_height,
                   max_pixels);
        longjmp(jerr.jb, 1);
    }
    // CMYK/YCCK come out as CMYK and are converted below; the rest as RGB
    // (libjpeg replicates grayscale).
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    unsigned w = cinfo.output_width, h = cinfo.output_height;
    int nc = cinfo.output_components;
    if (nc != (cmyk ? 4 : 3) || !img_size_ok(w, h, max_pixels)) ERREXIT(&cinfo, JERR_CONVERSION_NOTIMPL);

    px = malloc((size_t)w * h * 4);
    row = malloc((size_t)w * (size_t)nc);
    if (!px || !row) {
        rc = ENG_IMG_ETOOLARGE;
        eng_errorf(err, "JPEG: out of memory for %ux%u pixels", w, h);
        longjmp(jerr.jb, 1);
    }
    // Adobe's CMYK JPEGs (the ones carrying an Adobe marker) store inverted
    // inks, 255 = no ink; others store plain inks.
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < h) {
        JSAMPROW rp = row;
        unsigned y = cinfo.output_scanline;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) ERREXIT(&cinfo, JERR_INPUT_EOF);
        uint8_t *o = px + (size_t)y * w * 4;
        for (unsigned x = 0; x < w; x++, o += 4) {
            const uint8_t *s = row + (size_t)x * nc;
            if (cmyk) {
                unsigned c = s[0], m = s[1], yy = s[2], k = s[3];
                if (!inverted) c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
                // now 255 = no ink: channel = (1 - ink) * (1 - black)
                o[0] = (uint8_t)((c * k + 127) / 255);
                o[1] = (uint8_t)((m * k + 127) / 255);
                o[2] = (uint8_t)((yy * k + 127) / 255);
            } else {
                o[0] = s[0], o[1] = s[1], o[2] = s[2];
            }
            o[3] = 255;
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    img->width = (int)w;
    img->height = (int)h;
    img->rgba = px;
    return ENG_IMG_OK;
}

// ---------------------------------------------------------------------------
// public: decode / free

int eng_image_decode(eng_image *img, const void *data, size_t len, size_t max_pixels, char **err) {
    memset(img, 0, sizeof *img);
    const uint8_t *d = data;
    if (d && len >= 8 && memcmp(d, png_sig, 8) == 0) return img_decode_png(img, d, len, max_pixels, err);
    if (d && len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return img_decode_jpeg(img, d, len, max_pixels, err);
    eng_errorf(err, "not a PNG or JPEG image");
    return ENG_IMG_EFORMAT;
}

void eng_image_free(eng_image *img) {
    if (!img) return;
    free(img->rgba);
    memset(img, 0, sizeof *img);
}

// ---------------------------------------------------------------------------
// image -> tensor

// Resampling weights for one axis, src_n -> dst_n:
// out[i] = sum_k w[i*maxc + k] * in[first[i] + k], k < count[i].
typedef struct {
    int *first;   // [dst_n] first source index
    int *count;   // [dst_n] number of taps
    float *w;     // [dst_n][maxc] weights, summing to 1
    int maxc;     // taps per output, upper bound
} img_axis;

static void img_axis_free(img_axis *a) {
    free(a->first);
    free(a->count);
    free(a->w);
}

// Fills the weights; returns -1 when out of memory. Memory is O(src_n + dst_n).
static int img_axis_init(img_axis *a, int src_n, int dst_n) {
    double scale = (double)src_n / dst_n;   // source pixels per output pixel
    a->maxc = dst_n < src_n ? (int)scale + 2 : 2;
    a->first = malloc(sizeof(int) * (size_t)dst_n);
    a->count = malloc(sizeof(int) * (size_t)dst_n);
    a->w = calloc((size_t)dst_n * (size_t)a->maxc, sizeof(float));
    if (!a->first || !a->count || !a->w) { img_axis_free(a); return -1; }
    if (dst_n < src_n) {
        // Area averaging: output i covers source [i*scale, (i+1)*scale).
        for (int i = 0; i < dst_n; i++) {
            double x0 = i * scale, x1 = (i + 1) * scale;
            int j0 = (int)floor(x0), j1 = (int)ceil(x1);
            if (j1 > src_n) j1 = src_n;
            a->first[i] = j0;
            a->count[i] = j1 - j0;
            for (int j = j0; j < j1; j++) {
                double lo = j > x0 ? j : x0, hi = j + 1 < x1 ? j + 1 : x1;
                a->w[(size_t)i * a->maxc + (j - j0)] = (float)((hi - lo) / scale);
            }
        }
    } else {
        // Bilinear with pixel centres aligned (PyTorch align_corners=False);
        // equal sizes reduce to the identity.
        for (int i = 0; i < dst_n; i++) {
            double s = (i + 0.5) * scale - 0.5;
            if (s < 0) s = 0;
            if (s > src_n - 1) s = src_n - 1;
            int j0 = (int)floor(s);
            double f = s - j0;
            a->first[i] = j0;
            a->count[i] = j0 + 1 < src_n ? 2 : 1;
            a->w[(size_t)i * 2] = (float)(1 - f);
            if (a->count[i] == 2) a->w[(size_t)i * 2 + 1] = (float)f;
        }
    }
    return 0;
}

// Source row y composited onto the background, converted to C channels and
// resampled horizontally: dst[w][C] (0..255 floats). srow is [W][C] scratch.
static void img_row_resample(float *dst, const eng_image *img, int y, int C, float bg, const img_axis *ax, int w, float *srow) {
    const uint8_t *s = img->rgba + (size_t)y * img->width * 4;
    for (int x = 0; x < img->width; x++, s += 4) {
        float a = s[3] / 255.0f;
        float r = s[0] * a + bg * (1 - a), g = s[1] * a + bg * (1 - a), b = s[2] * a + bg * (1 - a);
        if (C == 1) srow[x] = 0.299f * r + 0.587f * g + 0.114f * b;
        else srow[3 * x] = r, srow[3 * x + 1] = g, srow[3 * x + 2] = b;
    }
    for (int i = 0; i < w; i++) {
        const float *wt = ax->w + (size_t)i * ax->maxc;
        for (int c = 0; c < C; c++) {
            float acc = 0;
            for (int k = 0; k < ax->count[i]; k++) acc += wt[k] * srow[(size_t)(ax->first[i] + k) * C + c];
            dst[(size_t)i * C + c] = acc;
        }
    }
}

int eng_image_to_tensor(float *out, const eng_image *img, const eng_image_prep *p) {
    const int C = p->channels == 1 ? 1 : 3;
    const int H = img->height, W = img->width;   // source
    const int h = p->height, w = p->width;       // target
    const float bg = p->background;
    if (H <= 0 || W <= 0 || !img->rgba) {   // nothing to show: all background
        for (int c = 0; c < C; c++) {
            float v = p->invert ? 255.0f - bg : bg;
            for (int i = 0; i < h * w; i++) out[(size_t)c * h * w + i] = (v / 255.0f - p->mean[c]) / p->std[c];
        }
        return 0;
    }
    // One pass over the output rows. Each needs a few horizontally resampled
    // source rows; consecutive output rows share at most their border rows, so
    // a two-row cache computes every source row once, and memory stays
    // O(W + w) whatever the shape (a 1 x 4,000,000 image must not cost H*w).
    img_axis ax = {0}, ay = {0};
    float *srow = malloc(sizeof(float) * (size_t)W * C);
    float *cache = malloc(sizeof(float) * 2 * (size_t)w * C);
    int rc = img_axis_init(&ax, W, w) | img_axis_init(&ay, H, h);
    if (!srow || !cache || rc != 0) {
        free(srow); free(cache); img_axis_free(&ax); img_axis_free(&ay);
        return -1;
    }
    int cached[2] = {-1, -1};   // source row held by each cache slot
    for (int j = 0; j < h; j++) {
        const float *wt = ay.w + (size_t)j * ay.maxc;
        float *o = out + (size_t)j * w;   // channel 0 of output row j; accumulates in place
        for (int c = 0; c < C; c++) memset(o + (size_t)c * h * w, 0, sizeof(float) * (size_t)w);
        for (int k = 0; k < ay.count[j]; k++) {
            int y = ay.first[j] + k, slot = cached[0] == y ? 0 : cached[1] == y ? 1 : -1;
            if (slot < 0) {   // replace the older row (rows are visited in increasing order)
                slot = cached[0] < cached[1] ? 0 : 1;
                img_row_resample(cache + (size_t)slot * w * C, img, y, C, bg, &ax, w, srow);
                cached[slot] = y;
            }
            const float *t = cache + (size_t)slot * w * C;
            for (int i = 0; i < w; i++)
                for (int c = 0; c < C; c++) o[(size_t)c * h * w + i] += wt[k] * t[(size_t)i * C + c];
        }
        for (int c = 0; c < C; c++)   // invert, scale, normalise
            for (int i = 0; i < w; i++) {
                float v = o[(size_t)c * h * w + i];
                if (p->invert) v = 255.0f - v;
                o[(size_t)c * h * w + i] = (v / 255.0f - p->mean[c]) / p->std[c];
            }
    }
    free(srow);
    free(cache);
    img_axis_free(&ax);
    img_axis_free(&ay);
    return 0;
}

// ---------------------------------------------------------------------------
// PNG encoding

typedef struct {
    uint8_t *buf;      // growing output
    size_t len, cap;   // bytes used / allocated
    char msg[160];     // libpng's error text
} img_png_sink;

static void img_png_write(png_structp png, png_bytep d, png_size_t n) {
    img_png_sink *s = png_get_io_ptr(png);
    if (n > s->cap - s->len) {
        size_t cap = s->cap ? s->cap : 4096;
        while (n > cap - s->len) {
            if (cap > SIZE_MAX / 2) png_error(png, "output too large");
            cap *= 2;
        }
        uint8_t *nb = realloc(s->buf, cap);
        if (!nb) png_error(png, "out of memory");
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, d, n);
    s->len += n;
}

static void img_png_flush(png_structp png) {
    (void)png;
}

static void img_png_sink_error(png_structp png, png_const_charp msg) {
    img_png_sink *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

int eng_png_encode(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h, int channels, char **err) {
    *out = NULL;
    *out_len = 0;
    int color = channels == 1 ? PNG_COLOR_TYPE_GRAY
              : channels == 3 ? PNG_COLOR_TYPE_RGB
              : channels == 4 ? PNG_COLOR_TYPE_RGBA : -1;
    if (color < 0) return eng_errorf(err, "png_encode: %d channels (want 1, 3 or 4)", channels);
    if (w <= 0 || h <= 0 || !px) return eng_errorf(err, "png_encode: bad size %dx%d", w, h);
    if ((size_t)w > SIZE_MAX / 4 / (size_t)h) return eng_errorf(err, "png_encode: %dx%d is too large", w, h);

    img_png_sink sink = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, img_png_sink_error, img_png_warning);
    if (!png) return eng_errorf(err, "png_encode: out of memory");
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return eng_errorf(err, "png_encode: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(sink.buf);
        png_destroy_write_struct(&png, &info);
        return eng_errorf(err, "png_encode: %s", sink.msg);
    }
    png_set_write_fn(png, &sink, img_png_write, img_png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(px + (size_t)y * w * channels);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    *out = sink.buf;
    *out_len = sink.len;
    return 0;
}
