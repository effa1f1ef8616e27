// test_prefill_chunks.c — chunked prefill changes nothing: a prompt fed to
// eng_lm_ops.step all at once, one token per step, or in chunks of 7, 16
// or 64 tokens, alone or sharing its steps with other sequences (prefilling
// and decoding, in a different order each step), gives BIT-IDENTICAL logits
// for its last prompt token and for the tokens decoded after it. This is what
// lets the server (server/gen.c) cut long prompts into chunks without
// changing any sampled text. Random-weight GPT-2, Llama (grouped-query
// attention, 64-token heads) and LSTM models; prompts longer than every
// kernel's row threshold. Also the serving attention kernel alone: the rows of
// a 70-token chunk equal those of the same tokens fed in smaller chunks.
#include <check.h>              // Check unit-test framework
#include <stdio.h>              // snprintf
#include <stdlib.h>             // malloc, free
#include <string.h>             // memcmp, memcpy
#include "engine/arch/lstm.h"        // eng_lstm, eng_lstm_lm_ops
#include "engine/arch/transformer.h" // eng_transformer, eng_tf_lm_ops
#include "engine/core/ops_seq.h"     // eng_attention_cached_forward
#include "engine/core/tape.h"        // eng_tape
#include "tests/unit/testutil.h"     // tu_fill

enum {
    PROMPT = 150,     // prompt tokens: above every row threshold of the kernels
    DECODE = 5,       // tokens fed one at a time after it
    CTX = PROMPT + DECODE,
    VOCAB = 97,
    NEIGH = 2,        // other sequences sharing the steps
};

typedef struct {
    const char *name;
    const eng_lm_ops *ops;
    eng_lm *lm;
    void (*destroy)(eng_lm *lm);
} model;

// The models: small, but every code path of the full-size ones (GPT-2
// biases and learned positions; Llama RoPE, GQA, SwiGLU; LSTM recurrences).
enum { M_GPT2, M_LLAMA, M_LLAMA_HD64, M_LSTM, N_MODELS };

static model make_model(int which) {
    model mm = {0};
    char *err = NULL;
    if (which == M_LSTM) {
        eng_lstm *m = calloc(1, sizeof *m);
        eng_lstm_config c = {.vocab_size = VOCAB, .hidden_size = 48, .num_layers = 2, .context_len = CTX};
        ck_assert_msg(eng_lstm_init(m, &c, &err) == 0, "%s", err);
        eng_lstm_init_params(m, 11);
        mm = (model){"lstm", &eng_lstm_lm_ops, eng_lstm_as_lm(m), NULL};
        return mm;
    }
    eng_transformer *m = calloc(1, sizeof *m);
    eng_tf_config c = {.arch = ENG_TF_GPT2, .dim = 64, .hidden_dim = 128, .n_layers = 2, .n_heads = 4,
                       .vocab_size = VOCAB, .context_len = CTX, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                       .bos_token_id = -1, .eos_token_id = -1};
    const char *name = "gpt2";
    if (which == M_LLAMA) {
        c.arch = ENG_TF_LLAMA; c.n_kv_heads = 2; c.hidden_dim = 96; name = "llama";
    } else if (which == M_LLAMA_HD64) {
        c.arch = ENG_TF_LLAMA; c.dim = 128; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 160; name = "llama-hd64";
    }
    ck_assert_msg(eng_tf_init(m, &c, &err) == 0, "%s", err);
    eng_tf_init_params(m, 5 + (uint64_t)which);
    // GPT-2's init (N(0, 0.02)) makes near-uniform attention; larger weights
    // make every score matter, so a changed reduction order shows
    for (size_t k = 0; k < m->n_params; k++) m->params[k] *= 8.0f;
    mm = (model){name, &eng_tf_lm_ops, eng_tf_as_lm(m), NULL};
    return mm;
}

static int prompt_tok(int seq, int j) { return (7 + 31 * j + 13 * seq + (j * j) % 11) % VOCAB; }

// One run: sequence 0 prefills its prompt `chunk` tokens per step, then
// decodes DECODE tokens; with `neighbours`, sequences 1..NEIGH join the same
// steps (their own prompts in chunks of 5 and 33, then decoding), in an order
// that rotates every step. out[(1 + DECODE) * V]: sequence 0's logits after
// its prompt, then after each decoded token.
static void run(const model *mm, int chunk, int neighbours, float *out) {
    const eng_lm_ops *ops = mm->ops;
    int V = ops->info(mm->lm).vocab_size, n_seq = 1 + (neighbours ? NEIGH : 0);
    static const int neigh_chunk[NEIGH] = {5, 33};
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq *all[1 + NEIGH];
    int toks[1 + NEIGH][CTX];
    for (int s = 0; s < n_seq; s++) {
        all[s] = ops->seq_new(mm->lm, CTX);
        ck_assert_ptr_nonnull(all[s]);
        for (int j = 0; j < CTX; j++) toks[s][j] = prompt_tok(s, j);
    }
    float *logits = malloc((size_t)n_seq * V * sizeof(float));
    int got = 0;   // sequence 0's outputs written
    for (int st = 0; got < 1 + DECODE; st++) {
        eng_lm_seq *seqs[1 + NEIGH];
        const int *tp[1 + NEIGH];
        int n[1 + NEIGH], which[1 + NEIGH], k = 0;
        for (int r = 0; r < n_seq; r++) {
            int s = (r + st) % n_seq, pos = ops->seq_pos(all[s]);
            int c = s == 0 ? chunk : neigh_chunk[s - 1];
            int want = pos < PROMPT ? (PROMPT - pos < c ? PROMPT - pos : c) : 1;
            if (pos + want > CTX) continue;   // a neighbour that is full sits out
            seqs[k] = all[s];
            tp[k] = toks[s] + pos;
            n[k] = want;
            which[k++] = s;
        }
        ops->step(mm->lm, &t, seqs, tp, n, k, logits);
        for (int j = 0; j < k; j++) {
            int pos = ops->seq_pos(all[which[j]]);
            if (which[j] == 0 && pos >= PROMPT) memcpy(out + (size_t)got++ * V, logits + (size_t)j * V, (size_t)V * sizeof(float));
        }
    }
    for (int s = 0; s < n_seq; s++) ops->seq_free(all[s]);
    free(logits);
    eng_tape_free(&t);
}

static void destroy(model *mm) { mm->ops->free(mm->lm); }

START_TEST(test_chunks_bit_identical) {
    model mm = make_model(_i);
    int V = mm.ops->info(mm.lm).vocab_size;
    size_t n = (size_t)(1 + DECODE) * V;
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    run(&mm, PROMPT, 0, want);   // the whole prompt in one step, alone
    static const int chunks[] = {1, 7, 16, 64, PROMPT};
    for (int c = 0; c < (int)(sizeof chunks / sizeof chunks[0]); c++)
        for (int nb = 0; nb <= 1; nb++) {
            if (chunks[c] == PROMPT && !nb) continue;   // the reference itself
            run(&mm, chunks[c], nb, got);
            for (int o = 0; o <= DECODE; o++)
                ck_assert_msg(memcmp(got + (size_t)o * V, want + (size_t)o * V, (size_t)V * sizeof(float)) == 0,
                              "%s: chunks of %d%s: logits %s differ from the one-step prefill's", mm.name, chunks[c],
                              nb ? " with neighbours" : "", o == 0 ? "after the prompt" : "of a decoded token");
        }
    // and the runs are not trivially equal: the decoded tokens' logits move
    ck_assert(memcmp(want, want + (size_t)DECODE * V, (size_t)V * sizeof(float)) != 0);
    free(want); free(got);
    destroy(&mm);
}
END_TEST

// The serving attention alone: every query row's output is the same whether
// the row comes in a chunk of 70 rows, of 16, of 5 or alone (the
// per-row reduction order never depends on the chunk).
START_TEST(test_attention_rows_invariant) {
    enum { TT = 70, NH = 4, NKV = 2, HD = 64 };
    float *q = malloc(TT * NH * HD * sizeof(float)), *k = malloc(TT * NKV * HD * sizeof(float));
    float *v = malloc(TT * NKV * HD * sizeof(float));
    float *want = malloc(TT * NH * HD * sizeof(float)), *got = malloc(TT * NH * HD * sizeof(float));
    float *scratch = malloc(eng_attention_cached_scratch(TT, 0) * sizeof(float));
    tu_fill(q, TT * NH * HD, -3, 3);
    tu_fill(k, TT * NKV * HD, -3, 3);
    tu_fill(v, TT * NKV * HD, -1, 1);
    eng_attention_cached_forward(want, scratch, q, k, v, TT, 0, NH, NKV, HD);
    static const int sizes[] = {1, 5, 16, 33};
    for (int c = 0; c < (int)(sizeof sizes / sizeof sizes[0]); c++) {
        for (int p = 0; p < TT; p += sizes[c]) {
            int n = TT - p < sizes[c] ? TT - p : sizes[c];
            eng_attention_cached_forward(got + (size_t)p * NH * HD, scratch, q + (size_t)p * NH * HD, k, v, n, p, NH, NKV, HD);
        }
        ck_assert_msg(memcmp(got, want, sizeof(float) * TT * NH * HD) == 0, "attention rows in chunks of %d differ", sizes[c]);
    }
    free(q); free(k); free(v); free(want); free(got); free(scratch);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("prefill_chunks");
    TCase *tc = tcase_create("invariance");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_chunks_bit_identical, 0, N_MODELS);
    tcase_add_test(tc, test_attention_rows_invariant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
