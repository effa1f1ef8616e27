// test_transformer.c — engine/arch/transformer.c (with ops_seq.c and tape_seq.c
// under it) against the from-scratch PyTorch GPT-2 and Llama of
// tests/ref/make_transformer_ref.py: the same logits through a whole-sequence
// prefill, token-by-token decode, batched steps mixing prefill and decode of
// several sequences, and the training forward; the training loss and every
// parameter gradient, and the loss along AdamW steps; llama2.c model.bin (interleaved RoPE) against the same
// Llama; save -> load round trips; loader errors; arena reuse; and finite
// differences for each new op. Run from the repository root.
#include "engine/arch/transformer.h"

#include <check.h>              // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_compare, tu_fill, temp dirs
#include <jansson.h>            // json_load_file, json_dump_file
#include <math.h>               // fabs
#include <stdint.h>             // uint64_t
#include <stdio.h>              // fprintf, snprintf, FILE
#include <stdlib.h>             // malloc, free, mkdtemp
#include <string.h>             // strcmp, strstr, memcpy
#include <unistd.h>             // unlink, rmdir
#include "engine/core/ops_seq.h"     // the ops, for finite differences
#include "engine/core/optim.h"       // eng_adamw_step
#include "engine/core/pool.h"        // eng_pool_start/stop: steps split across threads
#include "engine/io/safetensors.h" // fixtures are safetensors files
#include "engine/core/tape.h"        // eng_tape
#include "engine/core/util.h"        // eng_read_file, eng_write_file_atomic

#define REF_DIR "tests/ref/transformer_ref"
#define REF_VERSION "1"

// |got - want| <= atol + rtol * |want|. Observed (torch 1.13, OpenBLAS):
// logits (|values| up to 8) within 6.4e-6, loss within 5e-7, gradients
// (largest entries ~0.5) within 4e-7.
// (Overridable with -D to print the observed differences: -DLOGIT_RTOL=0 ...)
#ifndef LOGIT_RTOL
#define LOGIT_RTOL 1e-4
#define LOGIT_ATOL 1e-5
#endif
#ifndef GRAD_RTOL
#define GRAD_RTOL 1e-3    // gradients: plus a floor of GRAD_SCALE * max|tensor|
#define GRAD_SCALE 2e-5   // (small entries come out of cancellations)
#endif
#define ADAM_RTOL 1e-4    // losses along 3 AdamW steps

// Model directories and the fixture each one is checked against.
static const struct { const char *dir, *ref, *arch; } families[] = {
    {"gpt2", "gpt2", "gpt2"},
    {"llama", "llama", "llama"},
    {"llama2c", "llama", "llama"},   // the same weights as a llama2.c checkpoint
};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

// ---------------------------------------------------------------- helpers
typedef struct {
    eng_st_file f;
    int S, TL, V;        // reference sequences, their length, vocabulary
    int *tokens;         // [S * TL]
    const float *logits; // [S, TL, V]
} fixture;

static const float *fx_get(const fixture *x, const char *name, size_t n) {
    const eng_st_tensor *t = eng_st_find(&x->f, name);
    ck_assert_msg(t && t->data, "fixture has no float tensor %s", name);
    ck_assert_msg(n == 0 || t->numel == n, "fixture %s: %zu values, expected %zu", name, t->numel, n);
    return t->data;
}

static int *fx_ints(const fixture *x, const char *name, size_t n) {
    const float *v = fx_get(x, name, n);
    int *out = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) out[i] = (int)v[i];
    return out;
}

static void fx_load(fixture *x, const char *ref) {
    char path[256], *err = NULL;
    snprintf(path, sizeof path, "%s/%s_ref.safetensors", REF_DIR, ref);
    ck_assert_msg(eng_st_open(&x->f, path, &err) == 0, "%s (run from the repository root; regenerate with "
                  "/usr/bin/python3 tests/ref/make_transformer_ref.py)", err);
    const char *ver = eng_st_meta(&x->f, "version");
    ck_assert_msg(ver && strcmp(ver, REF_VERSION) == 0, "%s: wrong fixture version", path);
    const eng_st_tensor *lg = eng_st_find(&x->f, "logits");
    ck_assert(lg && lg->ndim == 3);
    x->S = (int)lg->shape[0];
    x->TL = (int)lg->shape[1];
    x->V = (int)lg->shape[2];
    x->logits = lg->data;
    x->tokens = fx_ints(x, "tokens", (size_t)x->S * x->TL);
}

static void fx_free(fixture *x) {
    free(x->tokens);
    eng_st_close(&x->f);
}

static const float *ref_logits(const fixture *x, int s, int t) {
    return x->logits + ((size_t)s * x->TL + t) * x->V;
}

// Compares got[n] with want[n]; prints the first few mismatches and the
// largest difference; returns the number of mismatches.


static eng_transformer *load_dir(const char *dir) {
    char path[512], *err = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *config = tu_load_json(path);
    eng_transformer *m = NULL;
    ck_assert_msg(eng_tf_load_dir(&m, dir, config, &err) == 0, "eng_tf_load_dir(%s): %s", dir, err);
    json_decref(config);
    return m;
}

static eng_transformer *load_family(int f) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", REF_DIR, families[f].dir);
    return load_dir(dir);
}

static void step(eng_transformer *m, eng_tape *t, eng_lm_seq **seqs, const int *const *toks, const int *n,
                 int k, float *logits) {
    eng_tf_lm_ops.step(eng_tf_as_lm(m), t, seqs, toks, n, k, logits);
}

// ---------------------------------------------------------------- serving vs reference
// Prefill: one batched step of TL sequences, sequence j prefilling the first
// j+1 tokens; its logits are the reference's at position j. Covers the
// whole-sequence prefill (j = TL-1), prefills of every length up to it, and
// a batch of different lengths.
START_TEST(test_prefill) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_lm_info info = ops->info(eng_tf_as_lm(m));
    ck_assert_str_eq(info.arch, families[_i].arch);
    ck_assert_int_eq(info.vocab_size, x.V);
    ck_assert_uint_eq(info.n_params, m->n_params);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq **seqs = malloc((size_t)x.TL * sizeof *seqs);
    const int **toks = malloc((size_t)x.TL * sizeof *toks);
    int *n = malloc((size_t)x.TL * sizeof *n);
    float *logits = malloc((size_t)x.TL * x.V * sizeof(float));
    int bad = 0;
    for (int s = 0; s < x.S; s++) {
        for (int j = 0; j < x.TL; j++) {
            seqs[j] = ops->seq_new(eng_tf_as_lm(m), x.TL);
            ck_assert_ptr_nonnull(seqs[j]);
            toks[j] = x.tokens + (size_t)s * x.TL;
            n[j] = j + 1;
        }
        step(m, &t, seqs, toks, n, x.TL, logits);
        for (int j = 0; j < x.TL; j++) {
            char what[64];
            snprintf(what, sizeof what, "%s prefill seq %d len %d", families[_i].dir, s, j + 1);
            bad += tu_compare(what, logits + (size_t)j * x.V, ref_logits(&x, s, j), (size_t)x.V, LOGIT_RTOL, LOGIT_ATOL);
            ck_assert_int_eq(ops->seq_pos(seqs[j]), j + 1);
            ops->seq_free(seqs[j]);
        }
    }
    ck_assert_int_eq(bad, 0);
    free(seqs); free(toks); free(n); free(logits);
    eng_tape_free(&t);
    ops->free(eng_tf_as_lm(m));
    fx_free(&x);
}
END_TEST

// Decode: every reference sequence token by token, one step per token.
START_TEST(test_decode) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    float *logits = malloc((size_t)x.V * sizeof(float));
    int bad = 0;
    for (int s = 0; s < x.S; s++) {
        eng_lm_seq *seq = ops->seq_new(eng_tf_as_lm(m), x.TL);
        for (int p = 0; p < x.TL; p++) {
            const int *tok = x.tokens + (size_t)s * x.TL + p;
            int one = 1;
            step(m, &t, &seq, &tok, &one, 1, logits);
            char what[64];
            snprintf(what, sizeof what, "%s decode seq %d pos %d", families[_i].dir, s, p);
            bad += tu_compare(what, logits, ref_logits(&x, s, p), (size_t)x.V, LOGIT_RTOL, LOGIT_ATOL);
        }
        ck_assert_int_eq(ops->seq_pos(seq), x.TL);
        ops->seq_free(seq);
    }
    ck_assert_int_eq(bad, 0);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_tf_as_lm(m));
    fx_free(&x);
}
END_TEST

// Mixed steps: three sequences (reference sequences 0, 1 and 0 again) join
// at different times, prefill in chunks (of 5 to 20 tokens) and
// decode in the same steps, in a different order each step.
enum { MIX_SEQS = 3, MIX_STEPS = 8 };
static const int mix_ref[MIX_SEQS] = {0, 1, 0};
static const int mix_plan[MIX_STEPS][MIX_SEQS] = {   // tokens consumed per step (0 = not in this step)
    {5, 1, 0}, {1, 17, 3}, {6, 1, 1}, {1, 1, 20}, {1, 1, 0}, {9, 1, 0}, {1, 1, 0}, {0, 1, 0},
};

START_TEST(test_mixed_batch) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq *all[MIX_SEQS];
    for (int q = 0; q < MIX_SEQS; q++) all[q] = ops->seq_new(eng_tf_as_lm(m), x.TL);
    float *logits = malloc((size_t)MIX_SEQS * x.V * sizeof(float));
    int bad = 0;
    for (int st = 0; st < MIX_STEPS; st++) {
        eng_lm_seq *seqs[MIX_SEQS];
        const int *toks[MIX_SEQS];
        int n[MIX_SEQS], which[MIX_SEQS], k = 0;
        for (int r = 0; r < MIX_SEQS; r++) {
            int q = (r + st) % MIX_SEQS;   // rotate the order
            if (!mix_plan[st][q]) continue;
            int pos = ops->seq_pos(all[q]);
            ck_assert_int_le(pos + mix_plan[st][q], x.TL);
            seqs[k] = all[q];
            toks[k] = x.tokens + (size_t)mix_ref[q] * x.TL + pos;
            n[k] = mix_plan[st][q];
            which[k++] = q;
        }
        step(m, &t, seqs, toks, n, k, logits);
        for (int j = 0; j < k; j++) {
            int q = which[j], last = ops->seq_pos(all[q]) - 1;
            char what[80];
            snprintf(what, sizeof what, "%s mixed step %d seq %d pos %d", families[_i].dir, st, q, last);
            bad += tu_compare(what, logits + (size_t)j * x.V, ref_logits(&x, mix_ref[q], last), (size_t)x.V,
                           LOGIT_RTOL, LOGIT_ATOL);
        }
    }
    for (int q = 0; q < MIX_SEQS; q++) {
        ck_assert_int_eq(ops->seq_pos(all[q]), x.TL);   // the plan consumes every sequence fully
        ops->seq_free(all[q]);
    }
    ck_assert_int_eq(bad, 0);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_tf_as_lm(m));
    fx_free(&x);
}
END_TEST

// Batch invariance with the compute pool: every sequence of the mixed plan
// gets the same logits, bit for bit, run alone on one thread, alone on the
// pool, batched on one thread and batched on the pool (2 and 3 threads,
// every op split: threshold 0). Each sequence keeps its own chunking, so
// the runs differ only in what shares the step and how it is split
// (tests/unit/test_prefill_chunks.c varies the chunking itself).
static void run_mix(eng_transformer *m, const fixture *x, int batched, float *out /* [MIX_STEPS][MIX_SEQS][V] */) {
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq *all[MIX_SEQS];
    for (int q = 0; q < MIX_SEQS; q++) all[q] = ops->seq_new(eng_tf_as_lm(m), x->TL);
    float *logits = malloc((size_t)MIX_SEQS * x->V * sizeof(float));
    for (int st = 0; st < MIX_STEPS; st++) {
        eng_lm_seq *seqs[MIX_SEQS];
        const int *toks[MIX_SEQS];
        int n[MIX_SEQS], which[MIX_SEQS], k = 0;
        for (int r = 0; r < MIX_SEQS; r++) {
            int q = (r + st) % MIX_SEQS;
            if (!mix_plan[st][q]) continue;
            seqs[k] = all[q];
            toks[k] = x->tokens + (size_t)mix_ref[q] * x->TL + ops->seq_pos(all[q]);
            n[k] = mix_plan[st][q];
            which[k++] = q;
        }
        if (batched) {
            step(m, &t, seqs, toks, n, k, logits);
        } else {
            for (int j = 0; j < k; j++) step(m, &t, &seqs[j], &toks[j], &n[j], 1, logits + (size_t)j * x->V);
        }
        for (int j = 0; j < k; j++)
            memcpy(out + ((size_t)st * MIX_SEQS + which[j]) * x->V, logits + (size_t)j * x->V, (size_t)x->V * sizeof(float));
    }
    for (int q = 0; q < MIX_SEQS; q++) ops->seq_free(all[q]);
    free(logits);
    eng_tape_free(&t);
}

START_TEST(test_pool_invariance) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    size_t n = (size_t)MIX_STEPS * MIX_SEQS * x.V;
    float *want = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    eng_pool_set_min_flops(0);
    run_mix(m, &x, 0, want);   // alone, one thread
    // and it is the model: the last step's logits against the reference
    for (int q = 0; q < MIX_SEQS; q++)
        for (int st = MIX_STEPS - 1; st >= 0; st--)
            if (mix_plan[st][q]) {
                ck_assert_int_eq(tu_compare("pool mix", want + ((size_t)st * MIX_SEQS + q) * x.V,
                                            ref_logits(&x, mix_ref[q], x.TL - 1), (size_t)x.V, LOGIT_RTOL, LOGIT_ATOL), 0);
                break;
            }
    static const struct { int threads, batched; } runs[] = {{1, 1}, {2, 0}, {2, 1}, {3, 1}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        eng_pool_stop();
        ck_assert_int_eq(eng_pool_start(runs[r].threads), 0);
        memset(got, 0, n * sizeof(float));
        run_mix(m, &x, runs[r].batched, got);
        ck_assert_msg(!memcmp(got, want, n * sizeof(float)), "%s: %d thread(s), %s: logits differ from one thread alone",
                      families[_i].dir, runs[r].threads, runs[r].batched ? "batched" : "alone");
    }
    eng_pool_stop();
    free(want); free(got);
    eng_tf_lm_ops.free(eng_tf_as_lm(m));
    fx_free(&x);
}
END_TEST

// The training forward (tape, grad off) on all reference sequences at once.
START_TEST(test_forward_logits) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *logits = eng_tf_forward(m, &t, x.tokens, x.S, x.TL);
    ck_assert_uint_eq(logits->n, (size_t)x.S * x.TL * x.V);
    ck_assert_int_eq(t.n_entries, 0);   // grad off: nothing recorded
    ck_assert_int_eq(tu_compare(families[_i].dir, logits->val, x.logits, logits->n, LOGIT_RTOL, LOGIT_ATOL), 0);
    eng_tape_free(&t);
    eng_tf_destroy(m);
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- training
// Loss and every parameter gradient of a [2, 8] batch against torch autograd.
// The llama2.c family is made owned first, which reorders its q/k rows to HF
// order, so its gradients must equal the HF Llama's.
START_TEST(test_train_gradients) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    eng_tf_make_owned(m);
    ck_assert_ptr_nonnull(m->params);
    ck_assert_int_eq(m->cfg.rope_interleaved, 0);
    eng_tf_enable_grads(m);
    const eng_st_tensor *tt = eng_st_find(&x.f, "train.tokens");
    ck_assert(tt && tt->ndim == 2);
    int B = (int)tt->shape[0], T = (int)tt->shape[1];
    int *tokens = fx_ints(&x, "train.tokens", (size_t)B * T);
    int *targets = fx_ints(&x, "train.targets", (size_t)B * T);
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    for (int round = 0; round < 2; round++) {   // the second round checks zero_grads + tape reuse
        eng_tape_reset(&t);
        eng_tf_zero_grads(m);
        eng_var *loss = eng_tf_loss(m, &t, tokens, targets, B, T);
        ck_assert_int_eq(tu_compare("loss", loss->val, fx_get(&x, "train.loss", 1), 1, LOGIT_RTOL, LOGIT_ATOL), 0);
        eng_tape_backward(&t, loss);
        int bad = 0;
        for (int i = 0; i < m->n_tensors; i++) {
            const eng_tf_tensor *p = &m->tensors[i];
            char name[112];
            snprintf(name, sizeof name, "grad.%s", p->name);
            const float *want = fx_get(&x, name, p->n);
            float *got = p->grad, *tmp = NULL;
            if (p->conv1d) {   // the fixture keeps GPT-2's [in, out]: bring ours [out, in] there
                tmp = malloc(p->n * sizeof(float));
                for (int r = 0; r < p->shape[0]; r++)
                    for (int c = 0; c < p->shape[1]; c++)
                        tmp[(size_t)c * p->shape[0] + r] = p->grad[(size_t)r * p->shape[1] + c];
                got = tmp;
            }
            double amax = 0;
            for (size_t k = 0; k < p->n; k++) amax = fabs(want[k]) > amax ? fabs(want[k]) : amax;
            bad += tu_compare(name, got, want, p->n, GRAD_RTOL, GRAD_SCALE * amax);
            free(tmp);
        }
        ck_assert_int_eq(bad, 0);
    }
    free(tokens);
    free(targets);
    eng_tape_free(&t);
    eng_tf_destroy(m);
    fx_free(&x);
}
END_TEST

// AdamW over the whole parameter arena (one call: params and grads are each
// one contiguous block) follows torch.optim.AdamW's loss trajectory.
START_TEST(test_adamw_trajectory) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    eng_tf_make_owned(m);
    eng_tf_enable_grads(m);
    const float *hp = fx_get(&x, "adamw.hyper", 6);
    int steps = (int)hp[0];
    const float *want = fx_get(&x, "adamw.losses", (size_t)steps + 1);
    const eng_st_tensor *tt = eng_st_find(&x.f, "train.tokens");
    int B = (int)tt->shape[0], T = (int)tt->shape[1];
    int *tokens = fx_ints(&x, "train.tokens", (size_t)B * T);
    int *targets = fx_ints(&x, "train.targets", (size_t)B * T);
    float *mom = calloc(m->n_params, sizeof(float)), *vel = calloc(m->n_params, sizeof(float));
    float *got = malloc(((size_t)steps + 1) * sizeof(float));
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    for (int s = 0; s <= steps; s++) {
        eng_tape_reset(&t);
        eng_tf_zero_grads(m);
        eng_var *loss = eng_tf_loss(m, &t, tokens, targets, B, T);
        got[s] = loss->val[0];
        if (s == steps) break;
        eng_tape_backward(&t, loss);
        eng_adamw_step(m->params, m->grads, mom, vel, m->n_params, hp[1], hp[2], hp[3], hp[4], hp[5], s + 1);
    }
    ck_assert_int_eq(tu_compare("adamw losses", got, want, (size_t)steps + 1, ADAM_RTOL, LOGIT_ATOL), 0);
    ck_assert(got[steps] < got[0]);
    free(got); free(mom); free(vel); free(tokens); free(targets);
    eng_tape_free(&t);
    eng_tf_destroy(m);
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- save / load


// Saves m (with its HF config) into a new directory and loads it back.
static eng_transformer *save_and_load(const eng_transformer *m, char **dir_out) {
    char *dir = tu_temp_dir("test_transformer"), path[512], *err = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(eng_tf_save(m, path, &err) == 0, "eng_tf_save: %s", err);
    json_t *cfg = eng_tf_config_to_json(&m->cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, path, JSON_INDENT(1)), 0);
    json_decref(cfg);
    *dir_out = dir;
    return load_dir(dir);
}

// Freshly initialised owned models (both families, GPT-2's Conv1D layout
// included) survive save -> eng_tf_load_dir bit for bit, and the loaded,
// mapped model serves the same logits as the training forward of the original.
START_TEST(test_init_save_load) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *ref = load_family(_i);   // for its config
    eng_transformer m;
    char *err = NULL;
    ck_assert_msg(eng_tf_init(&m, &ref->cfg, &err) == 0, "%s", err);
    eng_tf_init_params(&m, 42 + (uint64_t)_i);
    ck_assert_ptr_nonnull(m.params);
    // GPT-2 init: norms 1, biases 0, matrices N(0, 0.02)
    double ss = 0;
    for (size_t k = 0; k < m.wte.n; k++) ss += (double)m.wte.val[k] * m.wte.val[k];
    ck_assert_double_eq_tol(sqrt(ss / m.wte.n), 0.02, 0.002);
    ck_assert_float_eq(m.lnf_w.val[0], 1.0f);
    char *dir;
    eng_transformer *back = save_and_load(&m, &dir);
    ck_assert_int_eq(back->n_tensors, m.n_tensors);
    for (int i = 0; i < m.n_tensors; i++) {
        ck_assert_str_eq(back->tensors[i].name, m.tensors[i].name);
        ck_assert_msg(memcmp(back->tensors[i].val, m.tensors[i].val, m.tensors[i].n * sizeof(float)) == 0,
                      "%s differs after save/load", m.tensors[i].name);
    }
    // logits: owned model's tape forward vs the loaded model's serving step
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *full = eng_tf_forward(&m, &t, x.tokens, 1, x.TL);
    float *want = malloc(full->n * sizeof(float));
    memcpy(want, full->val, full->n * sizeof(float));
    eng_lm_seq *seq = eng_tf_lm_ops.seq_new(eng_tf_as_lm(back), x.TL);
    float *logits = malloc((size_t)x.V * sizeof(float));
    int n = x.TL;
    const int *tok = x.tokens;
    step(back, &t, &seq, &tok, &n, 1, logits);
    ck_assert_int_eq(tu_compare("saved model", logits, want + (size_t)(x.TL - 1) * x.V, (size_t)x.V, LOGIT_RTOL, 1e-6), 0);
    eng_tf_lm_ops.seq_free(seq);
    free(logits);
    free(want);
    eng_tape_free(&t);
    eng_tf_destroy(back);
    tu_remove_model_dir(dir);
    eng_tf_free(&m);
    eng_tf_destroy(ref);
    fx_free(&x);
}
END_TEST

// A mapped llama2.c model saved as safetensors (q/k rows reordered on the
// way) loads as an HF Llama with the reference logits.
START_TEST(test_llama2c_to_hf) {
    fixture x;
    fx_load(&x, "llama");
    eng_transformer *m = load_family(2);
    ck_assert_int_eq(m->cfg.rope_interleaved, 1);
    ck_assert_int_eq(m->cfg.tied, 0);
    ck_assert_int_eq(m->cfg.context_len, 64);
    char *dir;
    eng_transformer *back = save_and_load(m, &dir);
    ck_assert_int_eq(back->cfg.rope_interleaved, 0);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *logits = eng_tf_forward(back, &t, x.tokens, x.S, x.TL);
    ck_assert_int_eq(tu_compare("llama2c->hf", logits->val, x.logits, logits->n, LOGIT_RTOL, LOGIT_ATOL), 0);
    eng_tape_free(&t);
    eng_tf_destroy(back);
    tu_remove_model_dir(dir);
    eng_tf_destroy(m);
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- scratch reuse
// After a warm-up step, decode steps of the same batch do not grow the arena.
START_TEST(test_arena_reuse) {
    fixture x;
    fx_load(&x, families[_i].ref);
    eng_transformer *m = load_family(_i);
    const eng_lm_ops *ops = &eng_tf_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq *seqs[2] = {ops->seq_new(eng_tf_as_lm(m), x.TL), ops->seq_new(eng_tf_as_lm(m), x.TL)};
    float *logits = malloc(2 * (size_t)x.V * sizeof(float));
    const int *toks[2] = {x.tokens, x.tokens + x.TL};
    int n[2] = {1, 1};
    size_t hw = 0;
    for (int p = 0; p < x.TL; p++) {
        toks[0] = x.tokens + p;
        toks[1] = x.tokens + x.TL + p;
        step(m, &t, seqs, toks, n, 2, logits);
        if (p == 1) hw = t.arena.high_water;   // the second reset merged any spill of the first step
        if (p > 1) ck_assert_uint_eq(t.arena.high_water, hw);
    }
    ck_assert_int_eq(tu_compare("arena decode", logits + x.V, ref_logits(&x, 1, x.TL - 1), (size_t)x.V, LOGIT_RTOL,
                             LOGIT_ATOL), 0);
    ops->seq_free(seqs[0]);
    ops->seq_free(seqs[1]);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_tf_as_lm(m));
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- loader errors
static int load_config_text(const char *text, char **err) {
    json_error_t jerr;
    json_t *c = json_loads(text, 0, &jerr);
    ck_assert_ptr_nonnull(c);
    eng_tf_config cfg;
    int rc = eng_tf_config_from_json(&cfg, c, err);
    json_decref(c);
    return rc;
}

START_TEST(test_errors) {
    char *err = NULL;
    // config.json problems name the key
    ck_assert_int_eq(load_config_text("{\"model_type\": \"bert\"}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "model_type")); free(err); err = NULL;
    ck_assert_int_eq(load_config_text("{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"vocab_size\": 9}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "n_head")); free(err); err = NULL;
    ck_assert_int_eq(load_config_text("{\"model_type\": \"gpt2\", \"n_embd\": 30, \"n_layer\": 2, \"n_head\": 4, "
                                      "\"vocab_size\": 9}", &err), -1);
    free(err); err = NULL;
    ck_assert_int_eq(load_config_text("{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, "
                                      "\"vocab_size\": 9, \"activation_function\": \"relu\"}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "activation_function")); free(err); err = NULL;
    ck_assert_int_eq(load_config_text("{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, "
                                      "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, "
                                      "\"vocab_size\": 9}", &err), 0);   // parses; init refuses 4 % 3
    eng_tf_config cfg;
    json_t *c = json_loads("{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, "
                           "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, "
                           "\"vocab_size\": 9, \"rope_scaling\": null}", 0, NULL);
    ck_assert_int_eq(eng_tf_config_from_json(&cfg, c, &err), 0);
    json_decref(c);
    eng_transformer m;
    ck_assert_int_eq(eng_tf_init(&m, &cfg, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "n_kv_heads")); free(err); err = NULL;
    ck_assert_int_eq(load_config_text("{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, "
                                      "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 9, "
                                      "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "rope_scaling")); free(err); err = NULL;

    // a safetensors file missing a tensor, and a truncated model.bin
    char *dir = tu_temp_dir("test_transformer"), path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    float w[4 * 8] = {0};
    eng_st_entry e = {"wte.weight", 2, {4, 8}, w, NULL};
    ck_assert_int_eq(eng_st_write(path, &e, 1, NULL, &err), 0);
    eng_tf_config g = {.arch = ENG_TF_GPT2, .dim = 8, .hidden_dim = 32, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
                       .head_dim = 4, .vocab_size = 4, .context_len = 16, .norm_eps = 1e-5f, .tied = 1};
    ck_assert_int_eq(eng_tf_init(&m, &g, &err), 0);
    ck_assert_int_eq(eng_tf_load_safetensors(&m, path, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "wpe.weight")); free(err); err = NULL;
    eng_tf_free(&m);
    unlink(path);

    size_t len;
    char *bin = eng_read_file(REF_DIR "/llama2c/model.bin", &len, &err);
    ck_assert_ptr_nonnull(bin);
    snprintf(path, sizeof path, "%s/model.bin", dir);
    ck_assert_int_eq(eng_write_file_atomic(path, bin, len - 4, &err), 0);
    ck_assert_int_eq(eng_tf_open_llama2c(&m, path, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "truncated")); free(err); err = NULL;
    ((int32_t *)bin)[3] = 3;   // n_heads 3 does not divide dim 40
    ck_assert_int_eq(eng_write_file_atomic(path, bin, len, &err), 0);
    ck_assert_int_eq(eng_tf_open_llama2c(&m, path, &err), -1);
    free(err); err = NULL;
    unlink(path);
    free(bin);

    // checkpoint names may not leave the model directory
    json_t *cfg2 = json_loads("{\"format\": \"llama2c\", \"checkpoint\": \"../x.bin\"}", 0, NULL);
    eng_transformer *mp = NULL;
    ck_assert_int_eq(eng_tf_load_dir(&mp, dir, cfg2, &err), -1);
    ck_assert_ptr_null(mp);
    free(err); err = NULL;
    json_decref(cfg2);
    tu_remove_model_dir(dir);

    // seq_new refuses lengths beyond the context
    eng_transformer *ll = load_family(2);
    ck_assert_ptr_null(eng_tf_lm_ops.seq_new(eng_tf_as_lm(ll), ll->cfg.context_len + 1));
    ck_assert_ptr_null(eng_tf_lm_ops.seq_new(eng_tf_as_lm(ll), 0));
    ck_assert_uint_gt(eng_tf_lm_ops.seq_bytes(eng_tf_as_lm(ll), 64), 2u * 2 * 64 * 20 * sizeof(float));
    eng_tf_destroy(ll);
}
END_TEST

// ---------------------------------------------------------------- op gradients vs finite differences
// Deterministic uniform floats in [lo, hi) (splitmix64).


// One op under test: up to 3 float inputs; fwd writes out[n_out]; bwd
// accumulates the inputs' gradients given dout.
enum { FD_C = 12, FD_B = 2, FD_T = 5, FD_NH = 4, FD_NKV = 2, FD_HD = 6 };
typedef struct {
    const char *name;
    int n_in;
    size_t in_n[3], n_out;
    void (*fwd)(float *out, float *const *in);
    void (*bwd)(float *const *din, const float *dout, float *const *in);
} op_case;

static const int fd_ids[6] = {3, 0, 3, 5, 1, 3};   // repeats: the scatter-add must accumulate
static float fd_cos[FD_B * FD_T * FD_HD / 2], fd_sin[FD_B * FD_T * FD_HD / 2];

static void ln_f(float *o, float *const *in) { eng_layernorm_forward(o, NULL, NULL, in[0], in[1], in[2], 6, FD_C, 1e-5f); }
static void ln_b(float *const *d, const float *dout, float *const *in) {
    float mean[6], rstd[6], o[6 * FD_C];
    eng_layernorm_forward(o, mean, rstd, in[0], in[1], in[2], 6, FD_C, 1e-5f);
    eng_layernorm_backward(d[0], d[1], d[2], dout, in[0], in[1], mean, rstd, 6, FD_C);
}
static void rms_f(float *o, float *const *in) { eng_rmsnorm_forward(o, NULL, in[0], in[1], 6, FD_C, 1e-5f); }
static void rms_b(float *const *d, const float *dout, float *const *in) {
    float rstd[6], o[6 * FD_C];
    eng_rmsnorm_forward(o, rstd, in[0], in[1], 6, FD_C, 1e-5f);
    eng_rmsnorm_backward(d[0], d[1], dout, in[0], in[1], rstd, 6, FD_C);
}
static void rope0_f(float *o, float *const *in) { eng_rope_forward(o, in[0], fd_cos, fd_sin, FD_B * FD_T, FD_NH, FD_HD, 0); }
static void rope0_b(float *const *d, const float *dout, float *const *in) {
    eng_rope_backward(d[0], dout, fd_cos, fd_sin, FD_B * FD_T, FD_NH, FD_HD, 0);
}
static void rope1_f(float *o, float *const *in) { eng_rope_forward(o, in[0], fd_cos, fd_sin, FD_B * FD_T, FD_NH, FD_HD, 1); }
static void rope1_b(float *const *d, const float *dout, float *const *in) {
    eng_rope_backward(d[0], dout, fd_cos, fd_sin, FD_B * FD_T, FD_NH, FD_HD, 1);
}
static void att_f(float *o, float *const *in) {
    float att[FD_B * FD_NH * FD_T * FD_T];
    eng_attention_forward(o, att, in[0], in[1], in[2], FD_B, FD_T, FD_NH, FD_NKV, FD_HD);
}
static void att_b(float *const *d, const float *dout, float *const *in) {
    float att[FD_B * FD_NH * FD_T * FD_T], o[FD_B * FD_T * FD_NH * FD_HD], scratch[FD_T * FD_T];
    eng_attention_forward(o, att, in[0], in[1], in[2], FD_B, FD_T, FD_NH, FD_NKV, FD_HD);
    eng_attention_backward(d[0], d[1], d[2], scratch, dout, in[0], in[1], in[2], att, FD_B, FD_T, FD_NH, FD_NKV, FD_HD);
}
static void swi_f(float *o, float *const *in) { eng_swiglu_forward(o, in[0], in[1], 30); }
static void swi_b(float *const *d, const float *dout, float *const *in) {
    eng_swiglu_backward(d[0], d[1], dout, in[0], in[1], 30);
}
static void emb_f(float *o, float *const *in) { eng_embedding_forward(o, in[0], fd_ids, 6, FD_C); }
static void emb_b(float *const *d, const float *dout, float *const *in) {
    eng_embedding_backward(d[0], dout, fd_ids, 6, FD_C);
}

static const op_case op_cases[] = {
    {"layernorm", 3, {6 * FD_C, FD_C, FD_C}, 6 * FD_C, ln_f, ln_b},
    {"rmsnorm", 2, {6 * FD_C, FD_C}, 6 * FD_C, rms_f, rms_b},
    {"rope_hf", 1, {FD_B * FD_T * FD_NH * FD_HD}, FD_B * FD_T * FD_NH * FD_HD, rope0_f, rope0_b},
    {"rope_interleaved", 1, {FD_B * FD_T * FD_NH * FD_HD}, FD_B * FD_T * FD_NH * FD_HD, rope1_f, rope1_b},
    {"attention_gqa", 3, {FD_B * FD_T * FD_NH * FD_HD, FD_B * FD_T * FD_NKV * FD_HD, FD_B * FD_T * FD_NKV * FD_HD},
     FD_B * FD_T * FD_NH * FD_HD, att_f, att_b},
    {"swiglu", 2, {30, 30}, 30, swi_f, swi_b},
    {"embedding", 1, {6 * FD_C}, 6 * FD_C, emb_f, emb_b},
};
enum { N_OP_CASES = sizeof op_cases / sizeof op_cases[0] };

// L = sum(r * op(x)) in double; central differences vs the backward with dout = r.
START_TEST(test_op_gradients) {
    const op_case *oc = &op_cases[_i];
    int pos[FD_B * FD_T];
    for (int n = 0; n < FD_B * FD_T; n++) pos[n] = 3 * n + 1;   // angles well past 2*pi
    eng_rope_table(fd_cos, fd_sin, pos, FD_B * FD_T, FD_HD, 10000.0f);
    float *in[3] = {0}, *din[3] = {0};
    for (int i = 0; i < oc->n_in; i++) {
        in[i] = malloc(oc->in_n[i] * sizeof(float));
        din[i] = calloc(oc->in_n[i], sizeof(float));
        tu_fill(in[i], oc->in_n[i], -1.5f, 1.5f);
    }
    float *r = malloc(oc->n_out * sizeof(float)), *out = malloc(oc->n_out * sizeof(float));
    tu_fill(r, oc->n_out, -1, 1);
    oc->bwd(din, r, in);
    int bad = 0;
    for (int i = 0; i < oc->n_in; i++)
        for (size_t k = 0; k < oc->in_n[i]; k++) {
            float keep = in[i][k];
            const float eps = 1e-2f;
            double l[2];
            for (int s = 0; s < 2; s++) {
                in[i][k] = keep + (s ? -eps : eps);
                oc->fwd(out, in);
                l[s] = 0;
                for (size_t j = 0; j < oc->n_out; j++) l[s] += (double)r[j] * out[j];
            }
            in[i][k] = keep;
            double fd = (l[0] - l[1]) / (2.0 * eps);
            if (!(fabs(fd - din[i][k]) <= 2e-3 + 1e-2 * fabs(fd))) {
                if (bad < 5) fprintf(stderr, "  %s input %d [%zu]: backward %.6g, finite difference %.6g\n",
                                     oc->name, i, k, din[i][k], fd);
                bad++;
            }
        }
    ck_assert_msg(bad == 0, "%s: %d gradient entries off", oc->name, bad);
    for (int i = 0; i < oc->n_in; i++) { free(in[i]); free(din[i]); }
    free(r);
    free(out);
}
END_TEST

// Serving attention against a cache equals the training attention on the
// same rows (within float rounding), for decode-size and prefill-size chunks.
START_TEST(test_cached_attention) {
    enum { TT = 40, NH = 6, NKV = 3, HD = 10 };
    float *q = malloc(TT * NH * HD * sizeof(float)), *k = malloc(TT * NKV * HD * sizeof(float));
    float *v = malloc(TT * NKV * HD * sizeof(float)), *want = malloc(TT * NH * HD * sizeof(float));
    float *att = malloc(NH * TT * TT * sizeof(float)), *got = malloc(TT * NH * HD * sizeof(float));
    float *scratch = malloc(eng_attention_cached_scratch(TT, 0) * sizeof(float));
    tu_fill(q, TT * NH * HD, -2, 2);
    tu_fill(k, TT * NKV * HD, -2, 2);
    tu_fill(v, TT * NKV * HD, -1, 1);
    eng_attention_forward(want, att, q, k, v, 1, TT, NH, NKV, HD);
    static const int chunks[] = {1, 3, 17, 1, 18};   // sums to TT
    for (int c = 0, p = 0; c < (int)(sizeof chunks / sizeof chunks[0]); p += chunks[c], c++)
        eng_attention_cached_forward(got + (size_t)p * NH * HD, scratch, q + (size_t)p * NH * HD, k, v, chunks[c], p,
                                     NH, NKV, HD);
    ck_assert_int_eq(tu_compare("cached attention", got, want, TT * NH * HD, 1e-5, 1e-6), 0);
    free(q); free(k); free(v); free(want); free(att); free(got); free(scratch);
}
END_TEST

static Suite *transformer_suite(void) {
    Suite *s = suite_create("transformer");
    TCase *tc = tcase_create("pytorch_ref");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_prefill, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_decode, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_mixed_batch, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_pool_invariance, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_forward_logits, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_train_gradients, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_adamw_trajectory, 0, N_FAMILIES);
    tcase_add_loop_test(tc, test_init_save_load, 0, 2);
    tcase_add_test(tc, test_llama2c_to_hf);
    tcase_add_loop_test(tc, test_arena_reuse, 0, N_FAMILIES);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    TCase *ops = tcase_create("ops");
    tcase_add_loop_test(ops, test_op_gradients, 0, N_OP_CASES);
    tcase_add_test(ops, test_cached_attention);
    suite_add_tcase(s, ops);
    return s;
}

int main(void) {
    tu_rng_state = 7;   // the finite-difference inputs this suite was tuned with
    SRunner *sr = srunner_create(transformer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
