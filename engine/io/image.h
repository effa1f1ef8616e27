// image.h — decoding PNG (libpng) and JPEG (libjpeg-turbo) of any size,
// colour type and bit depth into 8-bit RGBA, turning an image into a model's
// input tensor (resize, channels, normalisation as the model's config says),
// and encoding RGB/RGBA/gray pixels as PNG.
#ifndef ENG_IMAGE_H
#define ENG_IMAGE_H
#include <stddef.h>   // size_t
#include <stdint.h>   // uint8_t

// Decode errors (negative, so callers can map them to HTTP statuses).
enum {
    ENG_IMG_OK = 0,
    ENG_IMG_EFORMAT = -2,    // neither PNG nor JPEG (magic bytes)        -> 415
    ENG_IMG_ECORRUPT = -3,   // claims to be PNG/JPEG but does not decode  -> 400
    ENG_IMG_ETOOLARGE = -4,  // width*height above the caller's limit, checked
                             // from the header BEFORE any pixel memory is allocated -> 413
};

typedef struct {
    int width, height;   // pixels
    uint8_t *rgba;       // [height][width][4], owned
} eng_image;

// Decodes PNG or JPEG bytes (detected by magic) into img (RGBA8; gray is
// replicated, palette expanded, 16-bit reduced, tRNS becomes alpha, CMYK
// converted). max_pixels bounds width*height. Returns ENG_IMG_OK or a
// negative ENG_IMG_* code with *err set.
int eng_image_decode(eng_image *img, const void *data, size_t len, size_t max_pixels, char **err);
void eng_image_free(eng_image *img);   // NULL-safe

// How a model wants its input (from config.json "input").
typedef struct {
    int channels;        // 1 (luminance, ITU-R BT.601 weights) or 3 (RGB)
    int height, width;   // target size
    float mean[3];       // per-channel mean, applied after scaling to [0,1]
    float std[3];        // per-channel std
    float background;    // 0..255 grey level that transparent pixels are composited onto
    int invert;          // 1: v = 255 - v before scaling (dark-on-light photos -> light-on-dark)
} eng_image_prep;

// Writes the input tensor out[channels][height][width]:
// composite alpha onto background, convert channels, resize the whole image
// to height x width (area averaging when shrinking, bilinear when growing),
// optionally invert, scale to [0,1], then (v - mean[c]) / std[c].
// Works in O(width + target size) memory; returns 0, or -1 when out of memory.
int eng_image_to_tensor(float *out, const eng_image *img, const eng_image_prep *p);

// An upper bound on the bytes that eng_image_decode and eng_image_to_tensor
// hold at once per source pixel: RGBA (4) + libjpeg's whole-image
// coefficient buffers of a progressive CMYK file (8) in decode; RGBA (4) +
// the float source row (12, when the image is one row) + its resampling
// weights (4) in the transform. A server derives its pixel limit from a byte
// budget with it: max_pixels = budget / ENG_IMG_BYTES_PER_PIXEL.
#define ENG_IMG_BYTES_PER_PIXEL 24

// Encodes pixels [h][w][channels] (channels 1, 3 or 4) as PNG into a
// malloc'd buffer. Returns 0 or -1 with *err.
int eng_png_encode(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h, int channels, char **err);

#endif
