// bench_lm.c — decode throughput of the decoder transformer through the
// eng_lm interface (the calls the server's continuous batcher makes): N
// sequences each prefill a short prompt, then every step advances all N by
// one greedy token. Prints one line per configuration; asserts nothing.
//
//   bench_lm [--batches 1,4,16] [--threads 1] [--steps 120] [--prompt 8] [--rounds 3] [MODEL_DIR]
//
// Without MODEL_DIR the model is a random llama shaped like llama2.c's
// stories15M (dim 288, hidden 768, 6 layers, 6 heads, vocab 32000, seq 256,
// tied embedding), so the figure needs no download. For each OpenBLAS
// thread count T and batch N it prints the median of the rounds:
//   lm threads=T batch=N decode_tok_s=.. ms_step=.. weights_GB_s=..
// weights_GB_s = weight bytes read per step / step time (each step reads
// every weight once, whatever N is): the bandwidth-bound ceiling is the
// machine's DRAM read rate (PERF-NOTES.md). Then one prefill line:
//   lm threads=T prefill=P tok_s=..
//
// Build from the repository root (one line):
//   cc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread
//      $(pkg-config --cflags jansson) -o /tmp/bench_lm tests/bench/bench_lm.c engine/*.c
//      $(pkg-config --libs jansson libpng zlib) -lopenblas -ljpeg -lm -lpthread
#include <jansson.h>               // json_load_file (MODEL_DIR/config.json)
#include <stdio.h>                 // printf, fprintf, snprintf
#include <stdlib.h>                // malloc, free, atoi, qsort
#include <string.h>                // strcmp, strtok

#include "engine/tape.h"           // eng_tape (the worker's scratch)
#include "engine/transformer.h"    // eng_transformer, eng_tf_lm_ops
#include "engine/util.h"           // eng_now

// Declared here in case this cblas.h does not (OpenBLAS-specific).
void openblas_set_num_threads(int num_threads);

enum { MAX_LIST = 16 };

static int parse_list(const char *s, int *out) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok && n < MAX_LIST; tok = strtok(NULL, ",")) out[n++] = atoi(tok);
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

// One round: N fresh sequences prefill `prompt` tokens (one step), then
// `steps` decode steps. Returns the seconds spent in the decode steps.
static double decode_round(eng_transformer *m, eng_tape *t, int N, int prompt, int steps, unsigned seed) {
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_lm *lm = eng_tf_as_lm(m);
    int V = m->cfg.vocab_size, max_len = prompt + steps;
    eng_lm_seq **seqs = malloc((size_t)N * sizeof *seqs);
    int *toks = malloc((size_t)N * prompt * sizeof(int)), *n = malloc((size_t)N * sizeof(int));
    const int **tp = malloc((size_t)N * sizeof *tp);
    float *logits = malloc((size_t)N * V * sizeof(float));
    for (int i = 0; i < N; i++) {
        seqs[i] = ops->seq_new(lm, max_len);
        for (int j = 0; j < prompt; j++) {
            seed = seed * 1664525u + 1013904223u;
            toks[i * prompt + j] = (int)((seed >> 8) % (unsigned)V);
        }
        tp[i] = toks + (size_t)i * prompt;
        n[i] = prompt;
    }
    ops->step(lm, t, seqs, tp, n, N, logits);
    double t0 = eng_now();
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < N; i++) {
            toks[i * prompt] = argmax(logits + (size_t)i * V, V);   // greedy: linear time
            tp[i] = toks + (size_t)i * prompt;
            n[i] = 1;
        }
        ops->step(lm, t, seqs, tp, n, N, logits);
    }
    double dt = eng_now() - t0;
    for (int i = 0; i < N; i++) ops->seq_free(seqs[i]);
    free(seqs); free(toks); free(n); free(tp); free(logits);
    return dt;
}

static eng_transformer *stories15m_shaped(void) {
    eng_tf_config c = {
        .arch = ENG_TF_LLAMA, .dim = 288, .hidden_dim = 768, .n_layers = 6, .n_heads = 6, .n_kv_heads = 6,
        .head_dim = 48, .vocab_size = 32000, .context_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
        .tied = 1, .bos_token_id = 1, .eos_token_id = 2,
    };
    eng_transformer *m = malloc(sizeof *m);
    char *err = NULL;
    if (eng_tf_init(m, &c, &err) != 0) { fprintf(stderr, "bench_lm: %s\n", err); exit(1); }
    eng_tf_init_params(m, 1);
    return m;
}

static eng_transformer *load(const char *dir) {
    char path[4096], *err = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!cfg) { fprintf(stderr, "bench_lm: %s: %s\n", path, jerr.text); exit(1); }
    eng_transformer *m = NULL;
    if (eng_tf_load_dir(&m, dir, cfg, &err) != 0) { fprintf(stderr, "bench_lm: %s\n", err); exit(1); }
    json_decref(cfg);
    return m;
}

int main(int argc, char **argv) {
    int batches[MAX_LIST] = {1, 4, 16}, nb = 3, threads[MAX_LIST] = {1}, nt = 1;
    int steps = 120, prompt = 8, rounds = 3;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batches") && i + 1 < argc) nb = parse_list(argv[++i], batches);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nt = parse_list(argv[++i], threads);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (argv[i][0] != '-') dir = argv[i];
        else { fprintf(stderr, "usage: bench_lm [--batches 1,4,16] [--threads 1] [--steps N] [--prompt P] [--rounds R] [MODEL_DIR]\n"); return 2; }
    }
    eng_transformer *m = dir ? load(dir) : stories15m_shaped();
    const eng_tf_config *c = &m->cfg;
    if (prompt < 1 || steps < 1 || rounds < 1 || prompt + steps > c->context_len) {
        fprintf(stderr, "bench_lm: need prompt >= 1, steps >= 1 and prompt + steps <= context %d\n", c->context_len);
        return 2;
    }
    // Bytes of weights one step reads: every tensor once, except that an
    // untied token embedding is only looked up (a tied one is read by the head).
    double bytes = ((double)m->n_params - (c->tied ? 0.0 : (double)c->vocab_size * c->dim)) * sizeof(float);
    printf("lm model=%s arch=%s dim=%d layers=%d heads=%d/%d vocab=%d params=%zu prompt=%d steps=%d (positions %d..%d)\n",
           dir ? dir : "random-stories15M-shape", eng_tf_arch_name(c->arch), c->dim, c->n_layers, c->n_heads,
           c->n_kv_heads, c->vocab_size, m->n_params, prompt, steps, prompt, prompt + steps - 1);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    double *sec = malloc((size_t)rounds * sizeof(double));
    for (int ti = 0; ti < nt; ti++) {
        openblas_set_num_threads(threads[ti]);
        for (int bi = 0; bi < nb; bi++) {
            int N = batches[bi];
            decode_round(m, &t, N, prompt, steps < 8 ? steps : 8, 7);   // warm-up: arena, caches, page-in
            for (int r = 0; r < rounds; r++) sec[r] = decode_round(m, &t, N, prompt, steps, 11 + (unsigned)r);
            qsort(sec, (size_t)rounds, sizeof *sec, cmp_double);
            double s = sec[rounds / 2], per_step = s / steps;
            printf("lm threads=%d batch=%d decode_tok_s=%.1f ms_step=%.3f weights_GB_s=%.1f\n", threads[ti], N,
                   N * steps / s, 1e3 * per_step, bytes / per_step / 1e9);
            fflush(stdout);
        }
        // prefill of one prompt as long as the decode range, for comparison
        int P = prompt + steps;
        eng_lm *lm = eng_tf_as_lm(m);
        int *toks = malloc((size_t)P * sizeof(int));
        for (int j = 0; j < P; j++) toks[j] = (j * 7919) % c->vocab_size;
        float *logits = malloc((size_t)c->vocab_size * sizeof(float));
        for (int r = 0; r < rounds + 1; r++) {
            eng_lm_seq *seq = eng_tf_lm_ops.seq_new(lm, P);
            const int *tp = toks;
            double t0 = eng_now();
            eng_tf_lm_ops.step(lm, &t, &seq, &tp, &P, 1, logits);
            if (r > 0) sec[r - 1] = eng_now() - t0;   // round 0 warms up
            eng_tf_lm_ops.seq_free(seq);
        }
        qsort(sec, (size_t)rounds, sizeof *sec, cmp_double);
        printf("lm threads=%d prefill=%d tok_s=%.1f\n", threads[ti], P, P / sec[rounds / 2]);
        free(toks);
        free(logits);
    }
    free(sec);
    eng_tape_free(&t);
    eng_tf_destroy(m);
    return 0;
}
