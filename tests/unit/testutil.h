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

#endif
