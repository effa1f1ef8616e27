// grid.c — sample sheets of generated images (see grid.h).
#include "engine/io/grid.h"
#include <string.h>   // memset

int eng_grid_cols(int n) { return n < 8 ? (n > 0 ? n : 1) : 8; }

static uint8_t to_byte(float v) {
    if (!(v > 0)) return 0;   // NaN too
    if (v >= 1) return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

void eng_grid_pixels(uint8_t *px, const float *y, int n, int cols, int C, int H, int W) {
    int rows = (n + cols - 1) / cols;
    size_t stride = (size_t)cols * W * C;   // bytes per pixel row of the grid
    memset(px, 0, (size_t)rows * H * stride);
    for (int i = 0; i < n; i++) {
        const float *img = y + (size_t)i * C * H * W;
        int r = i / cols, c = i % cols;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                for (int ch = 0; ch < C; ch++)
                    px[((size_t)r * H + h) * stride + ((size_t)c * W + w) * C + ch] = to_byte(img[((size_t)ch * H + h) * W + w]);
    }
}

void eng_image_pixels(uint8_t *px, const float *y, int C, int H, int W) {
    for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++)
            for (int ch = 0; ch < C; ch++) px[((size_t)h * W + w) * C + ch] = to_byte(y[((size_t)ch * H + h) * W + w]);
}
