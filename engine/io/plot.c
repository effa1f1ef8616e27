// plot.c — line plots drawn into an RGB buffer and encoded with libpng
// (engine/io/image.c's eng_png_encode). See plot.h.
#include "engine/io/plot.h"
#include <math.h>               // floor, ceil, log10, pow, isfinite
#include <stdio.h>              // snprintf
#include <stdlib.h>             // malloc, free
#include <string.h>             // memset, strlen
#include "engine/core/util.h"   // eng_errorf
#include "engine/io/image.h"    // eng_png_encode

// ---------------------------------------------------------------- the font
// 5x7 glyphs, one byte per row, bit 4 = leftmost column. Digits, the signs a
// number needs, and the lower-case alphabet (upper case draws as lower case).
typedef struct { char c; uint8_t rows[7]; } glyph;
static const glyph font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}}, {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}}, {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}}, {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}}, {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}}, {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}},
    {'g', {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}}, {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}}, {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}}, {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}}, {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}}, {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}},
    {'q', {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}}, {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'w', {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}}, {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}}, {'z', {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}},
};
static const uint8_t unknown_glyph[7] = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};   // a box

static const uint8_t *glyph_rows(char c) {
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == c) return font[i].rows;
    return unknown_glyph;
}

// ---------------------------------------------------------------- the canvas
typedef struct {
    uint8_t *px;               // [h][w][3]
    int w, h;
    int cx0, cy0, cx1, cy1;    // clip rectangle, inclusive
} canvas;

static void put(canvas *c, int x, int y, const uint8_t rgb[3]) {
    if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1) return;
    uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
    p[0] = rgb[0]; p[1] = rgb[1]; p[2] = rgb[2];
}

static void fill(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, rgb);
}

// A line `thick` pixels wide (Bresenham, a thick x thick block per step).
static void line(canvas *c, int x0, int y0, int x1, int y1, int thick, const uint8_t rgb[3]) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        fill(c, x0 - (thick - 1) / 2, y0 - (thick - 1) / 2, x0 + thick / 2, y0 + thick / 2, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; x0 += sx; }
        if (e2 <= dx) { e += dx; y0 += sy; }
    }
}

// Text with its top-left corner at (x, y); each font pixel is scale x scale.
static void text(canvas *c, int x, int y, const char *s, int scale, const uint8_t rgb[3]) {
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *g = glyph_rows(*s);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (g[r] & (0x10 >> b)) fill(c, x + b * scale, y + r * scale, x + b * scale + scale - 1, y + r * scale + scale - 1, rgb);
    }
}

static int text_width(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

// ---------------------------------------------------------------- axes
int eng_plot_ticks(double lo, double hi, int target, double *first, double *step) {
    if (!(hi > lo) || target < 1) { *first = lo; *step = 1; return 1; }
    double raw = (hi - lo) / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    *step = nice * mag;
    *first = ceil(lo / *step - 1e-9) * *step;
    return (int)floor((hi - *first) / *step + 1e-9) + 1;
}

// A tick value with as many decimals as the step needs ("0.25", "1500", "-0.1").
static void tick_label(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;   // not "-0.0"
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6 || fabs(v) >= 1e7) snprintf(buf, n, "%.2g", v);
    else snprintf(buf, n, "%.*f", dec, v);
}

// ---------------------------------------------------------------- the plot
static const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, frame[3] = {150, 150, 150}, white[3] = {255, 255, 255};

int eng_plot_render(uint8_t *rgb, const eng_plot_opts *o, const eng_plot_series *s, int n_series, char **err) {
    int w = o->width, h = o->height;
    if (w < ENG_PLOT_MIN_SIDE || w > ENG_PLOT_MAX_SIDE || h < ENG_PLOT_MIN_SIDE || h > ENG_PLOT_MAX_SIDE)
        return eng_errorf(err, "plot size %dx%d: each side must be in [%d, %d]", w, h, ENG_PLOT_MIN_SIDE, ENG_PLOT_MAX_SIDE);
    for (int i = 0; i < n_series; i++)
        if (s[i].n < 0 || (s[i].n > 0 && (!s[i].x || !s[i].y))) return eng_errorf(err, "plot series %d: no points", i);
    memset(rgb, ENG_PLOT_BG, (size_t)w * h * 3);
    canvas c = {rgb, w, h, 0, 0, w - 1, h - 1};
    int scale = w >= 1000 && h >= 600 ? 2 : 1, ch = 7 * scale;   // text scale, character height

    // data range over every finite point
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n_series; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) continue;
            if (s[i].x[k] < x0) x0 = s[i].x[k];
            if (s[i].x[k] > x1) x1 = s[i].x[k];
            if (s[i].y[k] < y0) y0 = s[i].y[k];
            if (s[i].y[k] > y1) y1 = s[i].y[k];
        }
    int have_data = x0 <= x1;
    if (!have_data) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-9 * (fabs(y0) + 1)) { double d = fabs(y0) * 0.1 + 0.1; y0 -= d; y1 += d; }
    // axes cover whole tick steps
    double xf, xs, yf, ys;
    eng_plot_ticks(x0, x1, 6, &xf, &xs);
    eng_plot_ticks(y0, y1, 5, &yf, &ys);
    x0 = floor(x0 / xs + 1e-9) * xs; x1 = ceil(x1 / xs - 1e-9) * xs;
    y0 = floor(y0 / ys + 1e-9) * ys; y1 = ceil(y1 / ys - 1e-9) * ys;
    int nx = eng_plot_ticks(x0, x1, 6, &xf, &xs), ny = eng_plot_ticks(y0, y1, 5, &yf, &ys);

    // plot area: room on the left for the widest y label
    char lab[32];
    int ylab_w = 0;
    for (int k = 0; k < ny; k++) {
        tick_label(lab, sizeof lab, yf + k * ys, ys);
        if (text_width(lab, scale) > ylab_w) ylab_w = text_width(lab, scale);
    }
    int L = ylab_w + 14 * scale, R = w - 1 - 16 * scale, T = 24 * scale, B = h - 1 - 34 * scale;
    if (R - L < 40 || B - T < 40) return eng_errorf(err, "plot size %dx%d leaves no room for the curves", w, h);
#define PX(v) (L + (int)lround(((v) - x0) / (x1 - x0) * (R - L)))
#define PY(v) (B - (int)lround(((v) - y0) / (y1 - y0) * (B - T)))

    // grid, ticks and labels
    for (int k = 0; k < nx; k++) {
        double v = xf + k * xs;
        int x = PX(v);
        line(&c, x, T, x, B, 1, grid);
        line(&c, x, B, x, B + 4 * scale, 1, black);
        tick_label(lab, sizeof lab, v, xs);
        text(&c, x - text_width(lab, scale) / 2, B + 7 * scale, lab, scale, black);
    }
    for (int k = 0; k < ny; k++) {
        double v = yf + k * ys;
        int y = PY(v);
        line(&c, L, y, R, y, 1, grid);
        line(&c, L - 4 * scale, y, L, y, 1, black);
        tick_label(lab, sizeof lab, v, ys);
        text(&c, L - 7 * scale - text_width(lab, scale), y - ch / 2, lab, scale, black);
    }
    line(&c, L, T, L, B, 1, black);   // the axes
    line(&c, L, B, R, B, 1, black);
    if (o->xlabel) text(&c, (L + R) / 2 - text_width(o->xlabel, scale) / 2, B + 20 * scale, o->xlabel, scale, black);
    if (o->ylabel) text(&c, L - text_width(o->ylabel, scale) / 2 < 2 ? 2 : L - text_width(o->ylabel, scale) / 2,
                        T - 16 * scale, o->ylabel, scale, black);
    if (!have_data) {
        const char *msg = "no data";
        text(&c, (L + R) / 2 - text_width(msg, scale) / 2, (T + B) / 2 - ch / 2, msg, scale, black);
    }

    // the curves, clipped to the plot area
    c.cx0 = L + 1; c.cy0 = T; c.cx1 = R; c.cy1 = B - 1;
    int thick = 2 * scale;
    for (int i = 0; i < n_series; i++) {
        int have_prev = 0, px = 0, py = 0;
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) { have_prev = 0; continue; }
            int x = PX(s[i].x[k]), y = PY(s[i].y[k]);
            if (have_prev) line(&c, px, py, x, y, thick, s[i].rgb);
            else fill(&c, x - thick / 2 - 1, y - thick / 2 - 1, x + thick / 2, y + thick / 2, s[i].rgb);   // a lone point shows as a dot
            px = x; py = y; have_prev = 1;
        }
    }
#undef PX
#undef PY

    // the legend: top right inside the plot area, one row per labelled series
    int rows = 0, lw = 0;
    for (int i = 0; i < n_series; i++)
        if (s[i].label && *s[i].label) {
            rows++;
            if (text_width(s[i].label, scale) > lw) lw = text_width(s[i].label, scale);
        }
    if (rows) {
        int bw = lw + 32 * scale, bh = rows * 12 * scale + 6 * scale, bx = R - 8 * scale - bw, by = T + 6 * scale;
        fill(&c, bx, by, bx + bw, by + bh, white);
        line(&c, bx, by, bx + bw, by, 1, frame); line(&c, bx, by + bh, bx + bw, by + bh, 1, frame);
        line(&c, bx, by, bx, by + bh, 1, frame); line(&c, bx + bw, by, bx + bw, by + bh, 1, frame);
        int row = 0;
        for (int i = 0; i < n_series; i++) {
            if (!s[i].label || !*s[i].label) continue;
            int y = by + 4 * scale + row * 12 * scale;
            line(&c, bx + 5 * scale, y + ch / 2, bx + 21 * scale, y + ch / 2, thick, s[i].rgb);
            text(&c, bx + 26 * scale, y, s[i].label, scale, black);
            row++;
        }
    }
    return 0;
}

int eng_plot_png(uint8_t **png, size_t *len, const eng_plot_opts *o, const eng_plot_series *s, int n_series, char **err) {
    *png = NULL;
    *len = 0;
    if (o->width < ENG_PLOT_MIN_SIDE || o->width > ENG_PLOT_MAX_SIDE || o->height < ENG_PLOT_MIN_SIDE || o->height > ENG_PLOT_MAX_SIDE)
        return eng_errorf(err, "plot size %dx%d: each side must be in [%d, %d]", o->width, o->height, ENG_PLOT_MIN_SIDE, ENG_PLOT_MAX_SIDE);
    uint8_t *rgb = malloc((size_t)o->width * o->height * 3);
    if (!rgb) return eng_errorf(err, "plot: out of memory");
    int rc = eng_plot_render(rgb, o, s, n_series, err);
    if (rc == 0) rc = eng_png_encode(png, len, rgb, o->width, o->height, 3, err);
    free(rgb);
    return rc;
}
