// grid.h — images laid out as one picture (a sample sheet): a generator's
// output [n, C, H, W] in [0, 1] as a grid of min(n, 8) columns and
// ceil(n / columns) rows, without gaps, as 8-bit pixels.
#ifndef ENG_GRID_H
#define ENG_GRID_H
#include <stdint.h>   // uint8_t

// Columns of the grid of n images.
int eng_grid_cols(int n);
// Writes px[rows*H][cols*W][C] (row-major, interleaved channels; rows =
// ceil(n / cols)) for n images y[n, C, H, W] with values in [0, 1]
// (clamped), image i at row i / cols, column i % cols. px must hold
// rows*H * cols*W * C bytes; cells past the last image are black.
void eng_grid_pixels(uint8_t *px, const float *y, int n, int cols, int C, int H, int W);
// One image y[C, H, W] as px[H][W][C].
void eng_image_pixels(uint8_t *px, const float *y, int C, int H, int W);

#endif
