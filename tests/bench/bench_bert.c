// bench_bert.c — texts/s of a BERT sequence classifier's classify_text (the
// call a server worker makes per batch), on the inputs tests/bench/bench_bert.py
// gives PyTorch. Prints one line per configuration; asserts nothing. Built
// and run by tests/bench/run.sh (section "bert").
//
//   bench_bert [--batches 1,32] [--len 64 | --mixed] [--threads 2] [--rounds 3] MODEL_DIR
//       openblas_set_num_threads(T), warm up, then rounds of calls (8 at
//       batch 1, 1 above); prints
//         engine threads=T batch=B len=L texts_s=<median round> ms_batch=.. best_texts_s=<best round> calls=N
//   bench_bert --dump PREFIX MODEL_DIR
//       writes the logits of the first 8 --mixed texts to PREFIX.logits.f32
//       ([8, labels] float32) for bench_bert.py's check
//
// Inputs: a pool of 64 texts; text i is [CLS], ids 5 + (i * 7919 + t * 104729)
// % (V - 5) for t = 1 .. n-2, [SEP], with n = L or 32 + (i * 37) % 97
// (--mixed); a call of batch B takes the next B texts of the pool.
#include <stdio.h>     // printf, fopen
#include <stdlib.h>    // malloc, atoi, qsort
#include <string.h>    // strcmp
#include "engine/arch/bert.h"    // eng_bert_logits (--dump)
#include "engine/arch/model.h"   // eng_model_load, classify_text
#include "engine/core/tape.h"    // eng_tape
#include "engine/core/util.h"    // eng_now

void openblas_set_num_threads(int num_threads);

enum { POOL = 64, MAX_LIST = 8 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int batches[MAX_LIST] = {1, 32}, n_batches = 2, len = 64, mixed = 0, threads = 2, rounds = 3;
    const char *dump = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--batches") == 0 && v) {
            n_batches = 0;
            for (const char *p = v; *p && n_batches < MAX_LIST; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
                batches[n_batches++] = atoi(p);
            i++;
        } else if (strcmp(a, "--len") == 0 && v) { len = atoi(v); i++; }
        else if (strcmp(a, "--mixed") == 0) mixed = 1;
        else if (strcmp(a, "--threads") == 0 && v) { threads = atoi(v); i++; }
        else if (strcmp(a, "--rounds") == 0 && v) { rounds = atoi(v); i++; }
        else if (strcmp(a, "--dump") == 0 && v) { dump = v; mixed = 1; i++; }
        else dir = a;
    }
    if (!dir || len < 2 || rounds < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_bert [--batches 1,32] [--len 64 | --mixed] [--threads 2] [--rounds 3] "
                        "[--dump PREFIX] MODEL_DIR\n");
        return 2;
    }
    eng_model *m;
    char *err = NULL;
    if (eng_model_load(&m, dir, &err) != 0) {
        fprintf(stderr, "bench_bert: %s\n", err);
        return 1;
    }
    const int V = eng_tok_vocab_size(m->tok), C = m->n_labels;
    int *pool[POOL], n_pool[POOL];
    for (int i = 0; i < POOL; i++) {
        int n = mixed ? 32 + (i * 37) % 97 : len;
        if (n > m->max_text_ids) n = m->max_text_ids;
        pool[i] = malloc((size_t)n * sizeof(int));
        n_pool[i] = n;
        pool[i][0] = 2;
        for (int t = 1; t < n - 1; t++) pool[i][t] = (int)(5 + ((long long)i * 7919 + (long long)t * 104729) % (V - 5));
        pool[i][n - 1] = 3;
    }
    openblas_set_num_threads(threads);
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    if (dump) {
        float *logits = malloc((size_t)8 * C * sizeof(float));
        eng_bert_logits(m->impl, &tape.arena, (const int *const *)pool, n_pool, 8, logits);
        char p[4096];
        snprintf(p, sizeof p, "%s.logits.f32", dump);
        FILE *f = fopen(p, "wb");
        if (!f || fwrite(logits, sizeof(float), (size_t)8 * C, f) != (size_t)8 * C || fclose(f) != 0) {
            fprintf(stderr, "bench_bert: cannot write %s\n", p);
            return 1;
        }
        printf("dump texts=8 labels=%d\n", C);
        return 0;
    }
    int maxB = 0;
    for (int b = 0; b < n_batches; b++) maxB = batches[b] > maxB ? batches[b] : maxB;
    const int **ids = malloc((size_t)maxB * sizeof *ids);
    int *n_ids = malloc((size_t)maxB * sizeof *n_ids);
    float *probs = malloc((size_t)maxB * C * sizeof(float));
    double *rate = malloc((size_t)rounds * sizeof *rate);
    for (int bi = 0; bi < n_batches; bi++) {
        const int B = batches[bi], calls = B == 1 ? 8 : 1;
        int next = 0;
        for (int r = -1; r < rounds; r++) {   // round -1: warm-up (the arena grows, pages fault in)
            double t0 = eng_now();
            for (int c = 0; c < calls; c++) {
                for (int j = 0; j < B; j++) {
                    ids[j] = pool[(next + j) % POOL];
                    n_ids[j] = n_pool[(next + j) % POOL];
                }
                next += B;
                m->arch->classify_text(m, &tape, ids, n_ids, B, probs);
            }
            if (r >= 0) rate[r] = calls * B / (eng_now() - t0);
        }
        qsort(rate, (size_t)rounds, sizeof *rate, cmp_double);
        double med = rate[rounds / 2];
        char lname[16];
        snprintf(lname, sizeof lname, mixed ? "mixed" : "%d", len);
        printf("engine threads=%d batch=%d len=%s texts_s=%.2f ms_batch=%.1f best_texts_s=%.2f calls=%d\n", threads, B,
               lname, med, 1000.0 * B / med, rate[rounds - 1], (rounds + 1) * calls);
        fflush(stdout);
    }
    eng_tape_free(&tape);
    eng_model_free(m);
    return 0;
}
