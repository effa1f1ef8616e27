// eval_perplexity.c — `inferd eval --model LM --data TEXT`: a language
// model's perplexity on held-out text (eng_eval_perplexity), through the
// same batched step the server runs.
#include "engine/train/train.h"
#include <math.h>               // exp, log
#include <stdlib.h>             // calloc, free
#include <string.h>             // memset
#include "engine/arch/model.h"  // eng_model_load
#include "engine/core/util.h"   // eng_errorf, eng_read_file
#include "engine/text/tokenizer.h"  // eng_tok_encode

enum { PPL_BATCH = 8 };   // windows advanced together, one token each per step

// -log softmax(logits)[target], in double.
static double nll_of(const float *logits, int V, int target) {
    float mx = logits[0];
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    double z = 0;
    for (int v = 0; v < V; v++) z += exp((double)logits[v] - mx);
    return log(z) - ((double)logits[target] - mx);
}

int eng_eval_perplexity(const char *model_dir, const char *text_path, int window, double *nll, long *n, char **err) {
    eng_model *m;
    if (eng_model_load(&m, model_dir, err) != 0) return -1;
    if (m->task != ENG_TASK_TEXT_GENERATION || !m->arch->lm) { eng_model_free(m); return 1; }
    const eng_lm_ops *ops = m->arch->lm;
    eng_lm_info info = ops->info(m->lm);
    int W = window > 0 ? window : info.context_len < 256 ? info.context_len : 256;
    if (W < 2 || W > info.context_len) {
        eng_errorf(err, "the window must be in 2..%d (the model's context)", info.context_len);
        eng_model_free(m);
        return -1;
    }
    size_t len;
    char *text = eng_read_file(text_path, &len, err);
    int *ids = NULL, n_ids = 0, rc = -1;
    float *logits = NULL;
    eng_lm_seq *seqs[PPL_BATCH] = {0};
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    if (!text) goto done;
    if (eng_tok_encode(m->tok, text, len, 0, 0, &ids, &n_ids, err) != 0) goto done;
    int n_win = n_ids / W;
    if (n_win < 1) { eng_errorf(err, "%s: %d tokens, fewer than one window of %d", text_path, n_ids, W); goto done; }
    logits = calloc((size_t)PPL_BATCH * info.vocab_size, sizeof(float));
    if (!logits) { eng_errorf(err, "out of memory"); goto done; }
    double sum = 0;
    long count = 0;
    for (int w0 = 0; w0 < n_win; w0 += PPL_BATCH) {
        int B = n_win - w0 < PPL_BATCH ? n_win - w0 : PPL_BATCH;
        for (int b = 0; b < B; b++)
            if (!(seqs[b] = ops->seq_new(m->lm, W))) { eng_errorf(err, "out of memory"); goto done; }
        int ones[PPL_BATCH];
        const int *toks[PPL_BATCH];
        for (int b = 0; b < PPL_BATCH; b++) ones[b] = 1;
        for (int p = 0; p + 1 < W; p++) {   // token p of every window in, token p + 1 scored
            for (int b = 0; b < B; b++) toks[b] = ids + (size_t)(w0 + b) * W + p;
            ops->step(m->lm, &t, seqs, toks, ones, B, logits);
            for (int b = 0; b < B; b++) sum += nll_of(logits + (size_t)b * info.vocab_size, info.vocab_size, toks[b][1]);
            count += B;
        }
        for (int b = 0; b < B; b++) { ops->seq_free(seqs[b]); seqs[b] = NULL; }
    }
    *nll = sum / (double)count;
    *n = count;
    rc = 0;
done:
    for (int b = 0; b < PPL_BATCH; b++) if (seqs[b]) ops->seq_free(seqs[b]);
    eng_tape_free(&t);
    free(logits);
    free(ids);
    free(text);
    eng_model_free(m);
    return rc;
}
