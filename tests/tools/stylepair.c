// stylepair.c — a style model's before/after picture, for the default
// styles' READMEs (scripts/train-models.sh) and for looking at a model while
// tuning: the input photo (PNG or JPEG) shrunk to SIDE pixels on its longer
// side, and beside it what the model (a model directory of task
// image-stylization) makes of it, as one PNG. A CLI: errors print and exit 1.
//
//   stylepair MODEL_DIR IN OUT.png [SIDE (default 256)] [--after-only | --before-only]
// (--before-only: just the shrunk input, e.g. a thumbnail of the style image.)
#include "engine/arch/model.h"   // eng_model_load
#include "engine/core/tape.h"    // eng_tape
#include "engine/core/util.h"    // eng_read_file, eng_write_file_atomic
#include "engine/io/image.h"     // eng_image_decode, eng_png_encode

#include <math.h>           // lround
#include <stdio.h>          // fprintf
#include <stdlib.h>         // atoi, exit
#include <string.h>         // strcmp

static void die(const char *what, char *err) {
    fprintf(stderr, "stylepair: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: stylepair MODEL_DIR IN OUT.png [SIDE] [--after-only | --before-only]\n");
        return 2;
    }
    int side = argc > 4 && argv[4][0] != '-' ? atoi(argv[4]) : 256;
    int after_only = strcmp(argv[argc - 1], "--after-only") == 0;
    int before_only = strcmp(argv[argc - 1], "--before-only") == 0;
    char *err = NULL;
    eng_model *m = NULL;
    if (eng_model_load(&m, argv[1], &err) != 0) die(argv[1], err);
    if (!m->arch->image_to_image) die(argv[1], "not an image-to-image model");
    size_t len;
    char *data = eng_read_file(argv[2], &len, &err);
    if (!data) die(argv[2], err);
    eng_image img;
    if (eng_image_decode(&img, data, len, (size_t)1 << 28, &err) != ENG_IMG_OK) die(argv[2], err);
    int longer = img.width > img.height ? img.width : img.height;
    double f = longer > side ? (double)side / longer : 1.0;
    int W = (int)lround(img.width * f), H = (int)lround(img.height * f);
    // area-average shrink into planar 0..255
    float *x = calloc((size_t)3 * W * H, sizeof(float)), *y = calloc((size_t)3 * W * H, sizeof(float));
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) {
            int ya = (int)((long)r * img.height / H), yb = (int)((long)(r + 1) * img.height / H);
            int xa = (int)((long)c * img.width / W), xb = (int)((long)(c + 1) * img.width / W);
            if (yb <= ya) yb = ya + 1;
            if (xb <= xa) xb = xa + 1;
            double s[3] = {0, 0, 0};
            for (int yy = ya; yy < yb; yy++)
                for (int xx = xa; xx < xb; xx++)
                    for (int k = 0; k < 3; k++) s[k] += img.rgba[((size_t)yy * img.width + xx) * 4 + k];
            for (int k = 0; k < 3; k++) x[((size_t)k * H + r) * W + c] = (float)(s[k] / ((yb - ya) * (xb - xa)));
        }
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    if (before_only) memcpy(y, x, (size_t)3 * W * H * sizeof(float));
    else m->arch->image_to_image(m, &t, x, 1, H, W, y);
    int OW = after_only || before_only ? W : 2 * W + 4;
    uint8_t *px = calloc((size_t)3 * OW * H, 1);
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++)
            for (int k = 0; k < 3; k++) {
                float a = x[((size_t)k * H + r) * W + c], b = y[((size_t)k * H + r) * W + c];
                b = b < 0 ? 0 : b > 255 ? 255 : b;
                if (after_only || before_only) px[((size_t)r * OW + c) * 3 + k] = (uint8_t)lroundf(b);
                else {
                    px[((size_t)r * OW + c) * 3 + k] = (uint8_t)lroundf(a);
                    px[((size_t)r * OW + W + 4 + c) * 3 + k] = (uint8_t)lroundf(b);
                }
            }
    uint8_t *png;
    size_t png_len;
    if (eng_png_encode(&png, &png_len, px, OW, H, 3, &err) != 0) die("png", err);
    if (eng_write_file_atomic(argv[3], png, png_len, &err) != 0) die(argv[3], err);
    return 0;
}
