// bench_stylize.c — stylization speed of a TransformerNet model through the
// call the server's stylization worker makes (arch->image_to_image on a
// worker tape). Prints; asserts nothing.
//
//   bench_stylize [--sizes 256,512] [--batch 1] [--threads 2] [--rounds 3] [--dump FILE] MODEL_DIR
//
// Inputs are fixed smooth patterns in 0..255. For each size S: one warm-up,
// then --rounds calls on --batch S x S images; prints
//   engine threads=T size=S batch=B ms_image=<median per image> img_s=..
// --dump FILE writes, for the first size, int32 H, W then float32 x[3][H][W]
// and y[3][H][W] of the first image (tests/bench/bench_stylize.py checks them).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/arch/model.h"
#include "engine/core/util.h"   // eng_now

void openblas_set_num_threads(int num_threads);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *sizes = "256,512", *dir = NULL, *dump = NULL;
    int threads = 2, rounds = 3, batch = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--sizes") == 0) sizes = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0) batch = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--dump") == 0) dump = argv[++i];
        else dir = argv[i];
    }
    if (!dir || rounds < 1 || rounds > 64 || batch < 1 || batch > 64) {
        fprintf(stderr, "usage: bench_stylize [--sizes 256,512] [--batch 1] [--threads 2] [--rounds 3] [--dump FILE] MODEL_DIR\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    eng_model *m;
    char *err = NULL;
    if (eng_model_load(&m, dir, &err) != 0 || !m->arch->image_to_image) {
        fprintf(stderr, "bench_stylize: %s\n", err ? err : "not a stylization model");
        return 1;
    }
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    int first = 1;
    for (const char *p = sizes; *p;) {
        int S = atoi(p);
        p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p);
        if (S < 5 || S > 8192) continue;
        size_t per = (size_t)3 * S * S;
        float *x = eng_xmalloc((size_t)batch * per * sizeof(float)), *y = eng_xmalloc((size_t)batch * per * sizeof(float));
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < S; i++)
                    for (int j = 0; j < S; j++)
                        x[b * per + ((size_t)c * S + i) * S + j] =
                            127.5f + 120.0f * sinf(0.05f * (float)(j * (c + 1)) + 0.07f * (float)i + (float)b);
        m->arch->image_to_image(m, &t, x, batch, S, S, y);   // warm-up (arena grows once)
        double *ms = eng_xmalloc((size_t)rounds * sizeof(double));
        for (int r = 0; r < rounds; r++) {
            double t0 = eng_now();
            m->arch->image_to_image(m, &t, x, batch, S, S, y);
            ms[r] = (eng_now() - t0) * 1000.0 / batch;
        }
        qsort(ms, (size_t)rounds, sizeof(double), cmp_double);
        double med = ms[rounds / 2];
        printf("engine threads=%d size=%d batch=%d ms_image=%.1f img_s=%.2f best_ms=%.1f scratch_mb=%.0f\n", threads, S, batch,
               med, 1000.0 / med, ms[0], m->arch->image_to_image_bytes(m, S, S) / 1048576.0);
        fflush(stdout);
        if (dump && first) {
            FILE *f = fopen(dump, "wb");
            int hw[2] = {S, S};
            if (!f || fwrite(hw, sizeof hw, 1, f) != 1 || fwrite(x, sizeof(float), per, f) != per ||
                fwrite(y, sizeof(float), per, f) != per || fclose(f) != 0)
                fprintf(stderr, "bench_stylize: cannot write %s\n", dump);
        }
        first = 0;
        free(ms);
        free(x);
        free(y);
    }
    eng_tape_free(&t);
    eng_model_free(m);
    return 0;
}
