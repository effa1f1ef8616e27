// bench_dcgan.c — generations/s of an image generator through the engine on
// one thread: a request of n images = its latents (eng_dcgan_latents, the
// HTTP thread's part) + generate_images (the worker's) + one PNG per image
// (the response). Prints; asserts nothing. Built and run by tests/bench/run.sh.
//
//   bench_dcgan [--seconds S] [--n 1,64] [--plain] MODEL_DIR
//       For each n, ~S seconds (default 2) in 5 rounds; prints
//         gen model=NAME n=N images_s=<median> requests_s=<median> generate_only_images_s=<median>
//       --plain generates as serving did before batch-norm folding and batched
//       convolutions (eng_dcgan_generate on a tape, image by image, batch norm
//       as its own op; still the training forward) and prints "gen-plain ..." lines.
#include <stdio.h>     // printf
#include <stdlib.h>    // malloc, qsort, strtod
#include <string.h>    // strcmp, strrchr

#include "engine/arch/dcgan.h"   // eng_dcgan_latents
#include "engine/arch/model.h"   // eng_model_load, generate_images
#include "engine/core/tape.h"    // eng_tape
#include "engine/core/util.h"    // eng_now
#include "engine/io/grid.h"      // eng_image_pixels
#include "engine/io/image.h"     // eng_png_encode

enum { MAX_LIST = 8, ROUNDS = 5 };

// The pre-folding serving path: one tape forward per image.
static void generate_plain(eng_model *m, eng_tape *t, const float *z, const int *labels, int n, float *y) {
    eng_dcgan *g = m->impl;
    size_t img = (size_t)g->channels * g->height * g->width;
    for (int b = 0; b < n; b++) {
        eng_tape_reset(t);
        eng_var *zb = eng_tape_wrap(t, (float *)z + (size_t)b * g->n_latent, 2, (int[]){1, g->n_latent});
        eng_var *x = eng_dcgan_generate(g, t, zb, labels ? labels + b : NULL, 0);
        for (size_t k = 0; k < img; k++) y[(size_t)b * img + k] = 0.5f * (x->val[k] + 1.0f);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    double seconds = 2;
    int ns[MAX_LIST] = {1, 64}, n_ns = 2, plain = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            n_ns = 0;
            for (char *s = argv[++i]; *s && n_ns < MAX_LIST; s = strchr(s, ',') ? strchr(s, ',') + 1 : s + strlen(s))
                ns[n_ns++] = atoi(s);
        } else if (strcmp(argv[i], "--plain") == 0) plain = 1;
        else dir = argv[i];
    }
    if (!dir) { fprintf(stderr, "usage: bench_dcgan [--seconds S] [--n 1,64] [--plain] MODEL_DIR\n"); return 2; }
    eng_model *m;
    char *err = NULL;
    if (eng_model_load(&m, dir, &err) != 0) { fprintf(stderr, "bench_dcgan: %s\n", err); return 1; }
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int C = m->out_channels, H = m->out_height, W = m->out_width;
    size_t img = (size_t)C * H * W;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    for (int k = 0; k < n_ns; k++) {
        int n = ns[k];
        float *z = malloc((size_t)n * m->n_latent * sizeof(float)), *y = malloc((size_t)n * img * sizeof(float));
        int *labels = malloc((size_t)n * sizeof(int));
        uint8_t *px = malloc(img);
        for (int i = 0; i < n; i++) labels[i] = m->n_labels ? i % m->n_labels : 0;
        double full[ROUNDS], gen[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            long done = 0;
            double t0 = eng_now(), t_gen = 0;
            uint64_t seed = 1;
            while (eng_now() - t0 < seconds / ROUNDS) {
                eng_dcgan_latents(seed++, n, m->n_latent, z);
                double g0 = eng_now();
                if (plain) generate_plain(m, &t, z, m->n_labels ? labels : NULL, n, y);
                else m->arch->generate_images(m, &t, z, m->n_labels ? labels : NULL, n, y);
                t_gen += eng_now() - g0;
                for (int i = 0; i < n; i++) {
                    uint8_t *png = NULL;
                    size_t len;
                    eng_image_pixels(px, y + (size_t)i * img, C, H, W);
                    if (eng_png_encode(&png, &len, px, W, H, C, &err) != 0) { fprintf(stderr, "bench_dcgan: %s\n", err); return 1; }
                    free(png);
                }
                done++;
            }
            double el = eng_now() - t0;
            full[r] = (double)done * n / el;
            gen[r] = (double)done * n / t_gen;
        }
        qsort(full, ROUNDS, sizeof(double), cmp_double);
        qsort(gen, ROUNDS, sizeof(double), cmp_double);
        printf("%s model=%s n=%d images_s=%.1f requests_s=%.2f generate_only_images_s=%.1f\n", plain ? "gen-plain" : "gen",
               name, n, full[ROUNDS / 2], full[ROUNDS / 2] / n, gen[ROUNDS / 2]);
        fflush(stdout);
        free(z); free(y); free(labels); free(px);
    }
    eng_tape_free(&t);
    eng_model_free(m);
    return 0;
}
