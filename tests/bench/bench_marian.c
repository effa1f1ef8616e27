// bench_marian.c — translation throughput of a Marian model through the
// calls the server's translation worker makes (eng_model_text_ids-sized
// sources, eng_translate over engine/arch/marian.c). Prints; asserts nothing.
//
//   bench_marian [--batches 1,16] [--threads 1] [--src-len 20] [--max-tokens 20] [--beam 1]
//                [--rounds 3] [--dump FILE] MODEL_DIR
//
// Sources are fixed-seed random ids (src-len - 1 of them, then </s>), the
// same for every batch size; a random model never emits </s>, so every
// sentence decodes exactly max-tokens tokens. For each batch size B: one
// warm-up, then --rounds rounds of eng_translate over B sentences; prints
//   marian threads=T batch=B beam=K sent_s=<median round> ms_batch=.. tok_s=..
// --dump FILE writes the sources and the greedy outputs of the first batch
// (text: one "src ids | out ids" line per sentence) for the PyTorch check.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/arch/model.h"
#include "engine/arch/translate.h"
#include "engine/core/util.h"   // eng_now

void openblas_set_num_threads(int num_threads);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *batches = "1,16", *dir = NULL, *dump = NULL;
    int threads = 1, src_len = 20, max_tokens = 20, beam = 1, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--batches") == 0) batches = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--src-len") == 0) src_len = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--max-tokens") == 0) max_tokens = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--beam") == 0) beam = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--dump") == 0) dump = argv[++i];
        else dir = argv[i];
    }
    if (!dir || rounds < 1 || rounds > 64 || src_len < 2) {
        fprintf(stderr, "usage: bench_marian [--batches 1,16] [--threads 1] [--src-len 20] [--max-tokens 20] "
                        "[--beam 1] [--rounds 3] [--dump FILE] MODEL_DIR\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    eng_model *m;
    char *err = NULL;
    if (eng_model_load(&m, dir, &err) != 0 || !m->arch->s2s) {
        fprintf(stderr, "bench_marian: %s\n", err ? err : "not a translation model");
        return 1;
    }
    const eng_s2s_ops *ops = m->arch->s2s;
    eng_s2s_info info = ops->info(m->s2s);
    printf("marian model=%s params=%zu src_vocab=%d src_len=%d max_tokens=%d\n", dir, info.n_params, info.src_vocab,
           src_len, max_tokens);
    enum { MAXB = 256 };
    static int ids[MAXB][512];
    const int *src[MAXB];
    int n_src[MAXB];
    unsigned long long s = 0x9e3779b97f4a7c15ULL;
    for (int b = 0; b < MAXB; b++) {
        for (int t = 0; t < src_len - 1; t++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            ids[b][t] = 3 + (int)((s >> 33) % (unsigned long long)(info.src_vocab - 4));
        }
        ids[b][src_len - 1] = info.eos_id;
        src[b] = ids[b];
        n_src[b] = src_len;
    }
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    eng_translate_opts o = {.beam_size = beam, .max_tokens = max_tokens, .length_penalty = 1.0f};
    eng_translation out[MAXB];
    for (const char *p = batches; *p;) {
        int B = atoi(p);
        if (B < 1 || B > MAXB) break;
        double t[64];
        long toks = 0;
        for (int r = -1; r < rounds; r++) {   // r = -1: warm-up
            double t0 = eng_now();
            if (eng_translate(ops, m->s2s, &tape, src, n_src, B, &o, out) != 0) { fprintf(stderr, "out of memory\n"); return 1; }
            double dt = eng_now() - t0;
            if (r >= 0) t[r] = dt;
            toks = 0;
            for (int b = 0; b < B; b++) toks += out[b].n;
            if (r == -1 && dump && B == 1) {   // only the first (smallest) batch: the sources written once
                FILE *f = fopen(dump, "w");
                for (int b = 0; f && b < 4; b++) {
                    eng_translation one;
                    eng_translate(ops, m->s2s, &tape, &src[b], &n_src[b], 1, &o, &one);
                    for (int k = 0; k < n_src[b]; k++) fprintf(f, "%d ", src[b][k]);
                    fprintf(f, "|");
                    for (int k = 0; k < one.n; k++) fprintf(f, " %d", one.ids[k]);
                    fprintf(f, "\n");
                    free(one.ids);
                }
                if (f) fclose(f);
            }
            for (int b = 0; b < B; b++) free(out[b].ids);
        }
        qsort(t, (size_t)rounds, sizeof t[0], cmp_double);
        double med = t[rounds / 2];
        printf("marian threads=%d batch=%d beam=%d sent_s=%.2f ms_batch=%.1f tok_s=%.1f\n", threads, B, beam, B / med,
               med * 1e3, toks / med);
        fflush(stdout);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    eng_tape_free(&tape);
    eng_model_free(m);
    return 0;
}
