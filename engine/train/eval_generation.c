// eval_generation.c — a generator judged by a classifier (eng_eval_generation,
// `inferd eval --model GEN --classifier CLS`): an Inception-Score-like
// measure with the classifier we trained ourselves instead of Inception.
#include "engine/train/train.h"
#include <stdio.h>              // snprintf
#include <stdlib.h>             // calloc, free
#include <string.h>             // strcmp
#include "engine/arch/dcgan.h"  // eng_dcgan_latents
#include "engine/arch/model.h"  // eng_model_load
#include "engine/core/util.h"   // eng_errorf, eng_write_file_atomic
#include "engine/io/grid.h"     // eng_grid_pixels
#include "engine/io/image.h"    // eng_png_encode

void eng_gen_report_free(eng_gen_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_labels; i++) free(r->labels[i]);
    free(r->labels);
    free(r->counts);
    memset(r, 0, sizeof *r);
}

int eng_eval_generation(const char *model_dir, const char *classifier_dir, int n, uint64_t seed, const char *grid_png,
                        eng_gen_report *r, char **err) {
    memset(r, 0, sizeof *r);
    if (n < 1 || n > 1000000) return eng_errorf(err, "the number of images must be in 1..1000000");
    eng_model *g = NULL, *c = NULL;
    if (eng_model_load(&g, model_dir, err) != 0) return -1;
    int rc = -1;
    float *z = NULL, *y = NULL, *x = NULL, *probs = NULL;
    int *want = NULL, *map = NULL;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    if (!g->arch->generate_images) { eng_errorf(err, "%s is not an image-generation model", model_dir); goto done; }
    if (eng_model_load(&c, classifier_dir, err) != 0) goto done;
    if (!c->arch->classify_images) { eng_errorf(err, "%s is not an image classifier", classifier_dir); goto done; }
    int C = g->out_channels, H = g->out_height, W = g->out_width, HW = H * W;
    if (c->prep.channels != C || c->prep.height != H || c->prep.width != W) {
        eng_errorf(err, "the classifier takes %dx%dx%d images, the generator makes %dx%dx%d", c->prep.channels,
                   c->prep.height, c->prep.width, C, H, W);
        goto done;
    }
    // a conditional generator's labels as the classifier's indices (by name; -1: unknown to it)
    map = calloc(g->n_labels ? (size_t)g->n_labels : 1, sizeof *map);
    for (int i = 0; i < g->n_labels; i++) {
        map[i] = -1;
        for (int k = 0; k < c->n_labels; k++) if (strcmp(g->labels[i], c->labels[k]) == 0) map[i] = k;
    }
    r->conditional = g->n_labels > 0;
    r->n_labels = c->n_labels;
    r->labels = calloc((size_t)c->n_labels, sizeof(char *));
    r->counts = calloc((size_t)c->n_labels, sizeof(long));
    for (int k = 0; k < c->n_labels; k++) r->labels[k] = strdup(c->labels[k]);
    z = malloc((size_t)n * g->n_latent * sizeof(float));
    y = malloc((size_t)n * C * HW * sizeof(float));
    want = malloc((size_t)n * sizeof(int));
    x = malloc((size_t)C * HW * sizeof(float));
    probs = malloc((size_t)c->n_labels * sizeof(float));
    if (!z || !y || !want || !x || !probs || !map || !r->labels || !r->counts) { eng_errorf(err, "out of memory"); goto done; }
    eng_dcgan_latents(seed, n, g->n_latent, z);
    for (int i = 0; i < n; i++) want[i] = g->n_labels ? i % g->n_labels : 0;   // every class equally often
    g->arch->generate_images(g, &t, z, g->n_labels ? want : NULL, n, y);
    double conf = 0;
    for (int i = 0; i < n; i++) {
        // the classifier's own normalisation of a [0, 1] image (as the server applies to a PNG)
        for (int ch = 0; ch < C; ch++)
            for (int k = 0; k < HW; k++)
                x[ch * HW + k] = (y[((size_t)i * C + ch) * HW + k] - c->prep.mean[ch]) / c->prep.std[ch];
        c->arch->classify_images(c, &t, x, 1, probs);
        int best = 0;
        for (int k = 1; k < c->n_labels; k++) if (probs[k] > probs[best]) best = k;
        conf += probs[best];
        r->counts[best]++;
        if (g->n_labels && map[want[i]] == best) r->matched++;
    }
    r->n = n;
    r->mean_confidence = conf / n;
    if (grid_png) {   // the first 100 images (64 when fewer)
        int m = n >= 100 ? 100 : n;
        int cols = m == 100 ? 10 : eng_grid_cols(m), rows = (m + cols - 1) / cols;
        uint8_t *px = calloc((size_t)rows * H * cols * W * C, 1);
        uint8_t *png = NULL;
        size_t png_len = 0;
        if (!px) { eng_errorf(err, "out of memory"); goto done; }
        // 100: ten columns, so a conditional model's classes (image i has label i % 10) form the columns
        eng_grid_pixels(px, y, m, cols, C, H, W);
        int prc = eng_png_encode(&png, &png_len, px, cols * W, rows * H, C, err);
        free(px);
        if (prc != 0) goto done;
        prc = eng_write_file_atomic(grid_png, png, png_len, err);
        free(png);
        if (prc != 0) goto done;
    }
    rc = 0;
done:
    if (rc != 0) eng_gen_report_free(r);
    eng_tape_free(&t);
    free(z); free(y); free(x); free(probs); free(want); free(map);
    eng_model_free(g);
    eng_model_free(c);
    return rc;
}
