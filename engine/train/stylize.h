// stylize.h — style transfer by optimisation (Gatys, Ecker & Bethge 2016):
// the pixels of the output image, started from the content photo, are
// optimised with Adam to lower the perceptual loss of engine/arch/style_loss.h
// (content features of the photo + Gram matrices of the style image). Shared
// by `inferd stylize` and the jobs API's image-stylization-optimize task.
#ifndef ENG_STYLIZE_H
#define ENG_STYLIZE_H
#include <stddef.h>                   // size_t
#include <stdint.h>                   // uint64_t
#include "engine/arch/style_loss.h"   // eng_style_weights

#define ENG_STYLIZE_DEFAULT_SIZE 384    // longest side of the output
#define ENG_STYLIZE_DEFAULT_STEPS 200
#define ENG_STYLIZE_MAX_SIDE 2048
#define ENG_STYLIZE_MAX_STEPS 100000
// Memory one optimisation step holds, per pixel of the result: the loss
// network's activations, gradients and im2col buffers on the tape, for the
// result and (without gradients) the content image. Measured: 4.7 KB
// (process RSS at 256x160 minus 128x80, divided by the pixels added).
#define ENG_STYLIZE_BYTES_PER_PIXEL 5120

typedef struct {
    int step, total_steps;
    float loss, content, style, tv;   // the loss's parts at this step (style_loss.h)
    double elapsed_s;
} eng_stylize_progress;

typedef struct {
    int steps;                  // Adam steps (default ENG_STYLIZE_DEFAULT_STEPS)
    float lr;                   // Adam's step in pixel units (0..255)
    eng_style_weights weights;  // content / style / TV weights
    uint64_t seed;              // the loss network's seed (default ENG_LOSSNET_DEFAULT_SEED)
    int log_every;              // steps between progress reports (the first and last are always reported)
    volatile int *cancel;       // non-zero stops at the next step (may be NULL)
    void (*progress)(void *ctx, const eng_stylize_progress *p);
    void *progress_ctx;
} eng_stylize_opts;

void eng_stylize_opts_init(eng_stylize_opts *o);

// content[3][H][W] and style[3][SH][SW] (0..255, planar RGB) -> out[3][H][W]
// (0..255). *first / *last (may be NULL) get the loss's parts before the
// first step and after the last. 0, or -1 with *err (sizes, out of memory,
// "cancelled").
int eng_stylize(const eng_stylize_opts *o, const float *content, int H, int W, const float *style, int SH, int SW,
                float *out, eng_style_loss_parts *first, eng_style_loss_parts *last, char **err);

// Decodes PNG or JPEG bytes (EXIF orientation applied, transparency composited
// onto white) and shrinks them so the longest side is at most max_side
// (0: as is), into a malloc'd planar float [3][*H][*W] of 0..255 pixels.
// max_pixels bounds the decoded size. Returns ENG_IMG_OK or a negative
// ENG_IMG_* code (engine/io/image.h; -1 for out of memory) with *err.
int eng_stylize_decode(const void *bytes, size_t len, int max_side, size_t max_pixels, float **planes, int *H, int *W,
                       char **err);

// PNG bytes of planar float pixels [3][H][W] (rounded, clamped to 0..255). 0 or -1 with *err.
int eng_stylize_encode_png(const float *planes, int H, int W, uint8_t **png, size_t *len, char **err);

#endif
