// bench_text.c — throughput of a text classifier through the engine, on one
// thread: what an HTTP thread does per text (eng_model_text_ids) plus what a
// worker does per batch (arch->classify_text). Prints; asserts nothing.
// Built and run by tests/bench/run.sh.
//
//   bench_text [--seconds S] [--batches 1,32] [--max-bytes N] MODEL_DIR TSV
//       Texts: the TSV's texts (label<TAB>text lines) of at most N bytes
//       (default 80: "short texts"), taken in turn. For each batch size B,
//       ~S seconds (default 2) in 5 rounds, and prints
//         text model=NAME batch=B texts_s=<median> classify_only_texts_s=<median> ids_per_text=.. bytes_per_text=..
//       texts_s counts ids + classify_text; classify_only_texts_s the forward
//       pass alone on ids made beforehand.
#include <stdio.h>     // printf, fopen
#include <stdlib.h>    // malloc, qsort, strtod
#include <string.h>    // strcmp, strchr, strrchr

#include "engine/arch/model.h"   // eng_model_load, eng_model_text_ids, classify_text
#include "engine/core/tape.h"    // eng_tape
#include "engine/core/util.h"    // eng_now, eng_read_file

enum { MAX_LIST = 16, ROUNDS = 5 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    double seconds = 2;
    int batches[MAX_LIST] = {1, 32}, n_batches = 2;
    size_t max_bytes = 80;
    const char *dir = NULL, *tsv = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc) max_bytes = (size_t)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc) {
            n_batches = 0;
            for (char *s = argv[++i]; *s && n_batches < MAX_LIST; s = strchr(s, ',') ? strchr(s, ',') + 1 : s + strlen(s))
                batches[n_batches++] = atoi(s);
        } else if (!dir) dir = argv[i];
        else if (!tsv) tsv = argv[i];
    }
    if (!dir || !tsv) { fprintf(stderr, "usage: bench_text [--seconds S] [--batches 1,32] [--max-bytes N] MODEL_DIR TSV\n"); return 2; }
    char *err = NULL;
    eng_model *m;
    if (eng_model_load(&m, dir, &err) != 0 || !m->arch->classify_text) {
        fprintf(stderr, "bench_text: %s\n", err ? err : "not a text classifier");
        return 1;
    }
    size_t len;
    char *buf = eng_read_file(tsv, &len, &err);
    if (!buf) { fprintf(stderr, "bench_text: %s\n", err); return 1; }
    // the short texts, and their ids made once for the classify-only figure
    int n = 0, cap = 0;
    char **text = NULL;
    size_t *tlen = NULL;
    int **ids = NULL, *n_ids = NULL;
    long total_ids = 0, total_bytes = 0;
    for (char *p = buf; p && *p;) {
        char *nl = strchr(p, '\n'), *tab = strchr(p, '\t');
        if (nl) *nl = 0;
        if (tab && (!nl || tab < nl) && strlen(tab + 1) <= max_bytes && strlen(tab + 1) > 0) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                text = realloc(text, (size_t)cap * sizeof *text);
                tlen = realloc(tlen, (size_t)cap * sizeof *tlen);
                ids = realloc(ids, (size_t)cap * sizeof *ids);
                n_ids = realloc(n_ids, (size_t)cap * sizeof *n_ids);
            }
            text[n] = tab + 1;
            tlen[n] = strlen(tab + 1);
            if (eng_model_text_ids(m, text[n], tlen[n], &ids[n], &n_ids[n], NULL) == 0) {
                total_ids += n_ids[n];
                total_bytes += (long)tlen[n];
                n++;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    if (n == 0) { fprintf(stderr, "bench_text: no texts of at most %zu bytes in %s\n", max_bytes, tsv); return 1; }
    const char *name = strrchr(dir, '/') && strrchr(dir, '/')[1] ? strrchr(dir, '/') + 1 : dir;
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi] < 1 ? 1 : batches[bi] > 1024 ? 1024 : batches[bi];
        float *probs = malloc((size_t)B * (size_t)m->n_labels * sizeof(float));
        const int **bid = malloc((size_t)B * sizeof *bid);
        int *bn = malloc((size_t)B * sizeof *bn), *own[1024];
        double full[ROUNDS], fwd[ROUNDS];
        int next = 0;
        for (int mode = 0; mode < 2; mode++) {
            for (int r = -1; r < ROUNDS; r++) {   // round -1 warms up
                double t0 = eng_now(), end = t0 + (r < 0 ? 0.2 : seconds / ROUNDS);
                long done = 0;
                do {
                    for (int b = 0; b < B; b++, next = (next + 1) % n) {
                        if (mode == 0) {   // what the HTTP thread does, then the worker
                            int *x = NULL, nx = 0;
                            eng_model_text_ids(m, text[next], tlen[next], &x, &nx, NULL);
                            bid[b] = x; bn[b] = nx;
                            if (b < 1024) own[b] = x;
                        } else {
                            bid[b] = ids[next]; bn[b] = n_ids[next];
                        }
                    }
                    m->arch->classify_text(m, &tape, bid, bn, B, probs);
                    if (mode == 0) for (int b = 0; b < B && b < 1024; b++) free(own[b]);
                    done += B;
                } while (eng_now() < end);
                if (r >= 0) (mode == 0 ? full : fwd)[r] = (double)done / (eng_now() - t0);
            }
        }
        qsort(full, ROUNDS, sizeof(double), cmp_double);
        qsort(fwd, ROUNDS, sizeof(double), cmp_double);
        printf("text model=%s batch=%d texts_s=%.0f classify_only_texts_s=%.0f ids_per_text=%.1f bytes_per_text=%.1f texts=%d\n",
               name, B, full[ROUNDS / 2], fwd[ROUNDS / 2], (double)total_ids / n, (double)total_bytes / n, n);
        fflush(stdout);
        free(probs); free(bid); free(bn);
    }
    eng_tape_free(&tape);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids); free(n_ids); free(text); free(tlen); free(buf);
    eng_model_free(m);
    return 0;
}
