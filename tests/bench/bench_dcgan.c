// bench_dcgan.c — generations/s of an image generator through the engine on
// one thread: a request of n images = its latents (eng_dcgan_latents, the
// HTTP thread's part) + generate_images (the worker's) + one PNG per image
// (the response). Prints; asserts nothing. Built and run by tests/bench/run.sh.
//
//   bench_dcgan [--seconds S] [--n 1,64] [--plain | --compare] MODEL_DIR
//       For each n, ~S seconds (default 2) in 5 rounds; prints
//         gen model=NAME n=N images_s=<median> requests_s=<median> generate_only_images_s=<median>
//       --plain generates as serving did before batch-norm folding and batched
//       convolutions (eng_dcgan_generate on a tape, image by image, batch norm
//       as its own op; still the training forward) and prints "gen-plain ..." lines;
//       --compare alternates the two round by round (the same machine load)
//       and prints both lines, each with cpu_us_img: the process CPU time of
//       generate_images per image (median round), which other programs on a
//       shared machine disturb less than the wall clock.
#include <stdio.h>     // printf
#include <stdlib.h>    // malloc, qsort, strtod
#include <string.h>    // strcmp, strrchr
#include <time.h>      // clock_gettime (CPU time)

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

typedef struct {
    eng_model *m;
    eng_tape t;
    int n;
    float *z, *y;
    int *labels;
    uint8_t *px;
} bench;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One round of ~seconds: images/s of whole requests (*full) and of the
// generator alone (*gen), and the generator's CPU seconds per image (*cpu).
static int run_round(bench *b, int plain, double seconds, double *full, double *gen, double *cpu) {
    eng_model *m = b->m;
    int n = b->n, C = m->out_channels, H = m->out_height, W = m->out_width;
    size_t img = (size_t)C * H * W;
    char *err = NULL;
    long done = 0;
    double t0 = eng_now(), t_gen = 0, c_gen = 0;
    uint64_t seed = 1;
    while (eng_now() - t0 < seconds) {
        eng_dcgan_latents(seed++, n, m->n_latent, b->z);
        double g0 = eng_now(), c0 = cpu_now();
        if (plain) generate_plain(m, &b->t, b->z, m->n_labels ? b->labels : NULL, n, b->y);
        else m->arch->generate_images(m, &b->t, b->z, m->n_labels ? b->labels : NULL, n, b->y);
        t_gen += eng_now() - g0;
        c_gen += cpu_now() - c0;
        for (int i = 0; i < n; i++) {
            uint8_t *png = NULL;
            size_t len;
            eng_image_pixels(b->px, b->y + (size_t)i * img, C, H, W);
            if (eng_png_encode(&png, &len, b->px, W, H, C, &err) != 0) { fprintf(stderr, "bench_dcgan: %s\n", err); return -1; }
            free(png);
        }
        done++;
    }
    *full = (double)done * n / (eng_now() - t0);
    *gen = (double)done * n / t_gen;
    *cpu = c_gen / ((double)done * n);
    return 0;
}

// cpu: printed when not NULL
static void report(const char *what, const char *name, int n, double *full, double *gen, double *cpu) {
    qsort(full, ROUNDS, sizeof(double), cmp_double);
    qsort(gen, ROUNDS, sizeof(double), cmp_double);
    printf("%s model=%s n=%d images_s=%.1f requests_s=%.2f generate_only_images_s=%.1f", what, name, n,
           full[ROUNDS / 2], full[ROUNDS / 2] / n, gen[ROUNDS / 2]);
    if (cpu) {
        qsort(cpu, ROUNDS, sizeof(double), cmp_double);
        printf(" cpu_us_img=%.2f", 1e6 * cpu[ROUNDS / 2]);
    }
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    double seconds = 2;
    int ns[MAX_LIST] = {1, 64}, n_ns = 2, plain = 0, compare = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            n_ns = 0;
            for (char *s = argv[++i]; *s && n_ns < MAX_LIST; s = strchr(s, ',') ? strchr(s, ',') + 1 : s + strlen(s))
                ns[n_ns++] = atoi(s);
        } else if (strcmp(argv[i], "--plain") == 0) plain = 1;
        else if (strcmp(argv[i], "--compare") == 0) compare = 1;
        else dir = argv[i];
    }
    if (!dir) { fprintf(stderr, "usage: bench_dcgan [--seconds S] [--n 1,64] [--plain | --compare] MODEL_DIR\n"); return 2; }
    bench b = {0};
    char *err = NULL;
    if (eng_model_load(&b.m, dir, &err) != 0) { fprintf(stderr, "bench_dcgan: %s\n", err); return 1; }
    eng_model *m = b.m;
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    size_t img = (size_t)m->out_channels * m->out_height * m->out_width;
    eng_tape_init(&b.t, 0, 0);
    for (int k = 0; k < n_ns; k++) {
        int n = b.n = ns[k];
        b.z = malloc((size_t)n * m->n_latent * sizeof(float));
        b.y = malloc((size_t)n * img * sizeof(float));
        b.labels = malloc((size_t)n * sizeof(int));
        b.px = malloc(img);
        for (int i = 0; i < n; i++) b.labels[i] = m->n_labels ? i % m->n_labels : 0;
        double full[ROUNDS], gen[ROUNDS], cpu[ROUNDS], full_p[ROUNDS], gen_p[ROUNDS], cpu_p[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            if (run_round(&b, plain && !compare, seconds / ROUNDS / (compare ? 2 : 1), &full[r], &gen[r], &cpu[r]) != 0)
                return 1;
            if (compare && run_round(&b, 1, seconds / ROUNDS / 2, &full_p[r], &gen_p[r], &cpu_p[r]) != 0) return 1;
        }
        report(plain && !compare ? "gen-plain" : "gen", name, n, full, gen, compare ? cpu : NULL);
        if (compare) report("gen-plain", name, n, full_p, gen_p, cpu_p);
        free(b.z); free(b.y); free(b.labels); free(b.px);
    }
    eng_tape_free(&b.t);
    eng_model_free(m);
    return 0;
}
