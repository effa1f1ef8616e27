// plot.h — line plots as PNG (the loss curve of a training job): axes with
// ticks and numeric labels drawn with a built-in 5x7 bitmap font, one curve
// per series in its own colour, a legend. Rendering is deterministic: the
// same series give the same pixels and the same PNG bytes. Not a general
// charting library: linear axes, lines only.
#ifndef ENG_PLOT_H
#define ENG_PLOT_H
#include <stddef.h>   // size_t
#include <stdint.h>   // uint8_t

typedef struct {
    const float *x, *y;        // [n] points, drawn in order; non-finite y values are skipped
    int n;
    const char *label;         // legend text (the font's characters; others draw as a box)
    uint8_t rgb[3];            // line colour
} eng_plot_series;

typedef struct {
    int width, height;         // pixels; each in [ENG_PLOT_MIN_SIDE, ENG_PLOT_MAX_SIDE]
    const char *xlabel;        // under the x axis, e.g. "step"
    const char *ylabel;        // above the y axis, e.g. "loss"
} eng_plot_opts;

#define ENG_PLOT_MIN_SIDE 160
#define ENG_PLOT_MAX_SIDE 4096
#define ENG_PLOT_BG 255        // background grey level (white)

// Draws the series into rgb[height][width][3]. With no finite point the
// axes are drawn over [0, 1] and the plot says so ("no data"). 0, or -1 with
// *err for a bad size or a series with n < 0.
int eng_plot_render(uint8_t *rgb, const eng_plot_opts *o, const eng_plot_series *s, int n_series, char **err);
// The same, encoded as PNG (libpng) into a malloc'd buffer. 0 or -1 with *err.
int eng_plot_png(uint8_t **png, size_t *len, const eng_plot_opts *o, const eng_plot_series *s, int n_series, char **err);

// The axis's tick positions for [lo, hi]: a "nice" step (1, 2 or 5 times a
// power of ten) giving about `target` ticks; *first is the first tick >= lo.
// Returns the number of ticks (at least 2 when hi > lo).
int eng_plot_ticks(double lo, double hi, int target, double *first, double *step);

#endif
