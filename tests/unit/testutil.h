// testutil.h — helpers shared by the Check suites (header-only: each test
// binary is one .c file): comparing against reference numbers, JSON files,
// temporary model directories, deterministic random floats.
#ifndef TESTUTIL_H
#define TESTUTIL_H
#include <check.h>      // ck_assert_msg
#include <jansson.h>    // json_load_file
#include <math.h>       // fabs
#include <stdint.h>     // uint64_t
#include <stdio.h>      // fprintf, snprintf
#include <stdlib.h>     // free, mkdtemp
#include <string.h>     // strdup
#include <unistd.h>     // unlink, rmdir
#include "engine/core/util.h"   // eng_write_file_atomic
#include "engine/io/image.h"    // eng_png_encode

// Compares got[n] with want[n] (pass: |got - want| <= atol + rtol*|want|);
// prints the first few mismatches and the largest difference, and returns
// the number of mismatches. NaN always counts as a mismatch.
static inline int tu_compare(const char *what, const float *got, const float *want, size_t n, double rtol, double atol) {
    int bad = 0;
    double maxdiff = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= maxdiff)) { maxdiff = d; at = i; }   // NaN lands here too
        if (!(d <= atol + rtol * fabs(want[i]))) {
            if (bad < 5) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (diff %.3g)\n", what, i, got[i], want[i], d);
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "%s: %d of %zu values out of tolerance (rtol %g atol %g); maxdiff %.3g at [%zu]\n",
                what, bad, n, rtol, atol, maxdiff, at);
    return bad;
}

// Parses a JSON file; fails the test with jansson's message when it cannot.
static inline json_t *tu_load_json(const char *path) {
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    ck_assert_msg(j != NULL, "%s: %s", path, jerr.text);
    return j;
}

// A fresh directory /tmp/<prefix>_XXXXXX (malloc'd path).
static inline char *tu_temp_dir(const char *prefix) {
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/%s_XXXXXX", prefix);
    char *d = strdup(tmpl);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

// Removes a model directory written by a test (config.json, model.safetensors) and frees its path.
static inline void tu_remove_model_dir(char *d) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", d);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    unlink(p);
    rmdir(d);
    free(d);
}

// Deterministic uniform floats in [lo, hi) (splitmix64 over tu_rng_state).
static uint64_t tu_rng_state = 7;
static inline float tu_urand(float lo, float hi) {
    uint64_t z = (tu_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 40) / (double)(1ull << 24));
}

static inline void tu_fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = tu_urand(lo, hi);
}

// A w x h RGB PNG at path standing in for a photo (kind 0: a colour
// gradient with a few discs and bars, different for each seed) or for an
// artwork (kind 1: diagonal stripes of two seeded colours with grain), for
// style-training tests.
static inline void tu_write_picture(const char *path, int w, int h, int kind, uint64_t seed) {
    tu_rng_state = seed;
    uint8_t *px = malloc((size_t)w * h * 3);
    float c0[3], c1[3], disc[4][6];
    for (int k = 0; k < 3; k++) c0[k] = tu_urand(0, 255), c1[k] = tu_urand(0, 255);
    for (int d = 0; d < 4; d++)
        for (int k = 0; k < 6; k++) disc[d][k] = tu_urand(0, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float u = (float)x / w, v = (float)y / h, rgb[3];
            for (int k = 0; k < 3; k++) {
                if (kind == 1) rgb[k] = ((x + y) / 6) % 2 ? c0[k] : c1[k];
                else rgb[k] = c0[k] * (1 - u) + c1[k] * v;
            }
            for (int d = 0; kind == 0 && d < 4; d++) {
                float dx = u - disc[d][0], dy = v - disc[d][1];
                int in = d % 2 ? (dx * dx + dy * dy < 0.04f * disc[d][2]) : (fabsf(dx) < 0.1f && fabsf(dy) < 0.3f);
                if (in)
                    for (int k = 0; k < 3; k++) rgb[k] = 255 * disc[d][3 + k];
            }
            for (int k = 0; k < 3; k++) {
                float g = rgb[k] + tu_urand(-12, 12);
                px[((size_t)y * w + x) * 3 + k] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
            }
        }
    uint8_t *png;
    size_t len;
    char *err = NULL;
    ck_assert_msg(eng_png_encode(&png, &len, px, w, h, 3, &err) == 0, "png: %s", err);
    ck_assert_msg(eng_write_file_atomic(path, png, len, &err) == 0, "%s: %s", path, err);
    free(png);
    free(px);
}

#endif
