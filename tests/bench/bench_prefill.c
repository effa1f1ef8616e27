// bench_prefill.c — what a prefill chunk costs the streams decoding beside
// it, through eng_lm (the calls server/gen.c makes), in one process so the
// machine's load hits every configuration alike. Prints key=value lines;
// asserts nothing.
//
//   bench_prefill MODEL_DIR [--threads 2] [--chunks 8,16,32,64] [--streams 8] [--prompt 1000] [--rounds 5]
//
// `streams` sequences hold 100 tokens each; a long prompt of `prompt` tokens
// is half consumed. Per round, for chunk 0 (decode only) and each chunk c, one
// step feeds the streams one token each plus the next c tokens of the long
// prompt (rounds interleave the configurations). Median over rounds:
//   prefill_step chunk=C step_ms=.. ratio=.. ttft_est_s=..
// ratio = step time / the decode-only step's (how much slower the streams'
// tokens come while a prompt is prefilled in chunks of C); ttft_est_s =
// ceil(prompt / C) such steps (the long prompt's time to first token). Then
// the whole prompt in one step beside the streams (prefill_chunk = 0):
//   prefill_step chunk=whole step_ms=.. ratio=..   (the streams' one long gap)
// --threads sizes the compute pool (engine/core/pool.h), as the daemon's
// compute_threads does.
#include <jansson.h>               // json_load_file
#include <stdio.h>                 // printf
#include <stdlib.h>                // atoi, qsort
#include <string.h>                // strcmp
#include "engine/arch/transformer.h" // eng_tf_load_dir, eng_tf_lm_ops
#include "engine/core/pool.h"        // eng_pool_start
#include "engine/core/util.h"        // eng_now

enum { MAX_CHUNKS = 16, MAX_STREAMS = 64, MAX_ROUNDS = 64, HISTORY = 100 };

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *chunk_list = "8,16,32,64";
    int threads = 2, streams = 8, prompt = 1000, rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--chunks") == 0) chunk_list = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--streams") == 0) streams = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--prompt") == 0) prompt = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[++i]);
        else dir = argv[i];
    }
    int chunks[MAX_CHUNKS + 1] = {0}, nc = 1;
    for (const char *p = chunk_list; *p && nc <= MAX_CHUNKS; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
        if (atoi(p) > 0) chunks[nc++] = atoi(p);
    if (!dir || streams < 1 || streams > MAX_STREAMS || rounds < 1 || rounds > MAX_ROUNDS || prompt < 2) {
        fprintf(stderr, "usage: bench_prefill MODEL_DIR [--threads 2] [--chunks 8,16,32,64] [--streams 8] "
                        "[--prompt 1000] [--rounds 5]\n");
        return 2;
    }
    char path[4096], *err = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    eng_transformer *m = NULL;
    if (!cfg || eng_tf_load_dir(&m, dir, cfg, &err) != 0) {
        fprintf(stderr, "bench_prefill: %s: %s\n", dir, err ? err : "no config.json");
        return 1;
    }
    json_decref(cfg);
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_lm *lm = eng_tf_as_lm(m);
    eng_lm_info info = ops->info(lm);
    int ctx = info.context_len;
    if (HISTORY + (rounds + 1) * (nc + 1) > ctx || prompt > ctx) {   // every step adds a token to each stream
        fprintf(stderr, "bench_prefill: the model's context (%d) is too short\n", ctx);
        return 1;
    }
    eng_pool_start(threads);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    int *toks = malloc((size_t)ctx * sizeof(int));
    for (int i = 0; i < ctx; i++) toks[i] = 3 + (i * 7919) % (info.vocab_size - 3);
    float *logits = malloc((size_t)(streams + 1) * info.vocab_size * sizeof(float));
    eng_lm_seq *dec[MAX_STREAMS], *seqs[MAX_STREAMS + 1];
    const int *tk[MAX_STREAMS + 1];
    int nt[MAX_STREAMS + 1];
    for (int i = 0; i < streams; i++) {
        dec[i] = ops->seq_new(lm, ctx);
        int n = HISTORY;
        const int *tp = toks;
        ops->step(lm, &t, &dec[i], &tp, &n, 1, logits);
    }
    static double tm[MAX_CHUNKS + 2][MAX_ROUNDS];
    int half = prompt / 2;
    for (int r = -1; r < rounds; r++) {   // round -1 warms up (arena, pages)
        for (int k = 0; k <= nc; k++) {   // k == nc: the whole prompt in one step
            eng_lm_seq *long_s = ops->seq_new(lm, ctx);
            int n = half;
            const int *tp = toks;
            if (k > 0 && k < nc) ops->step(lm, &t, &long_s, &tp, &n, 1, logits);   // half consumed
            for (int i = 0; i < streams; i++) {
                seqs[i] = dec[i];
                tk[i] = toks + ops->seq_pos(dec[i]);
                nt[i] = 1;
            }
            int ns = streams;
            if (k > 0) {
                seqs[ns] = long_s;
                tk[ns] = k < nc ? toks + half : toks;
                nt[ns] = k < nc ? chunks[k] : prompt;
                ns++;
            }
            double t0 = eng_now();
            ops->step(lm, &t, seqs, tk, nt, ns, logits);
            if (r >= 0) tm[k][r] = eng_now() - t0;
            ops->seq_free(long_s);
        }
    }
    double base = 0;
    for (int k = 0; k <= nc; k++) {
        qsort(tm[k], (size_t)rounds, sizeof(double), cmp);
        double med = tm[k][rounds / 2];
        if (k == 0) base = med;
        if (k == nc)
            printf("prefill_step chunk=whole step_ms=%.1f ratio=%.2f prompt=%d\n", med * 1e3, med / base, prompt);
        else
            printf("prefill_step chunk=%d step_ms=%.1f ratio=%.2f ttft_est_s=%.1f streams=%d threads=%d\n", chunks[k],
                   med * 1e3, med / base, k ? (double)((prompt + chunks[k] - 1) / chunks[k]) * med : 0.0, streams, threads);
    }
    for (int i = 0; i < streams; i++) ops->seq_free(dec[i]);
    free(toks);
    free(logits);
    eng_tape_free(&t);
    ops->free(lm);
    eng_pool_stop();
    return 0;
}
