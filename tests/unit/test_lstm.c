// test_lstm.c — engine/arch/lstm.c against the torch.nn char-rnn of
// tests/ref/make_lstm_ref.py (nn.Embedding + nn.LSTM + nn.Linear, untied and
// tied): the same logits through one-step prefills, token-by-token decode,
// batched steps mixing three sequences at different positions, and the
// training forward; the training loss and every parameter gradient; finite
// differences of the layer op and of the whole tape backward; init, save ->
// load; loader errors; arena reuse. Run from the repository root.
#include "engine/arch/lstm.h"

#include <check.h>              // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_compare, tu_fill, temp dirs
#include <jansson.h>            // json_load_file, json_dump_file
#include <math.h>               // fabs, sqrt
#include <stdint.h>             // uint64_t
#include <stdio.h>              // fprintf, snprintf, FILE
#include <stdlib.h>             // malloc, free, mkdtemp
#include <string.h>             // strcmp, strstr, memcpy
#include <unistd.h>             // unlink, rmdir
#include "engine/core/tape.h"        // eng_tape

#define REF_DIR "tests/ref/lstm_ref"
#define REF_VERSION 1

// |got - want| <= atol + rtol * |want|. Observed (torch 1.13, OpenBLAS):
// logits (|values| up to ~1.5) within 7.2e-7, loss within 5e-7, gradients
// (largest entries ~0.1) within 2e-8.
// (Overridable with -D to print the observed differences: -DLOGIT_RTOL=0 ...)
#ifndef LOGIT_RTOL
#define LOGIT_RTOL 1e-4
#define LOGIT_ATOL 1e-5
#endif
#ifndef GRAD_RTOL
#define GRAD_RTOL 1e-4    // gradients: plus a floor of GRAD_SCALE * max|tensor|
#define GRAD_SCALE 1e-5   // (small entries come out of cancellations)
#endif

static const char *const configs[] = {"untied", "tied"};
enum { N_CONFIGS = sizeof configs / sizeof configs[0] };

// ---------------------------------------------------------------- fixture
// Text lines "<name> <count> <v0> ... <v(count-1)>"; '#' lines are comments.
typedef struct {
    char name[96];
    size_t n;
    double *v;    // [n]
} ref_array;

typedef struct {
    ref_array *a;
    int n, cap;
    int V, H, L, S, TL, B, T, tied;   // from "dims"
    int *tokens;                      // [S * TL]
    float *logits;                    // [S, TL, V]
} fixture;

static const ref_array *fx_get(const fixture *x, const char *name, size_t n) {
    for (int i = 0; i < x->n; i++)
        if (strcmp(x->a[i].name, name) == 0) {
            ck_assert_msg(n == 0 || x->a[i].n == n, "fixture %s: %zu values, expected %zu", name, x->a[i].n, n);
            return &x->a[i];
        }
    ck_abort_msg("fixture has no array %s", name);
    return NULL;
}

static float *fx_floats(const fixture *x, const char *name, size_t n) {
    const ref_array *a = fx_get(x, name, n);
    float *f = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) f[i] = (float)a->v[i];
    return f;
}

static int *fx_ints(const fixture *x, const char *name, size_t n) {
    const ref_array *a = fx_get(x, name, n);
    int *v = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) v[i] = (int)a->v[i];
    return v;
}

static void fx_free(fixture *x) {
    for (int i = 0; i < x->n; i++) free(x->a[i].v);
    free(x->a);
    free(x->tokens);
    free(x->logits);
    memset(x, 0, sizeof *x);
}

static void fx_load(fixture *x, const char *cfg) {
    memset(x, 0, sizeof *x);
    char path[256];
    snprintf(path, sizeof path, "%s/%s_ref.txt", REF_DIR, cfg);
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s (run from the repository root; "
                  "regenerate with /usr/bin/python3 tests/ref/make_lstm_ref.py)", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (x->n == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 32;
            x->a = realloc(x->a, (size_t)x->cap * sizeof *x->a);
        }
        ref_array *a = &x->a[x->n++];
        int used = 0;
        ck_assert_int_eq(sscanf(line, "%95s %zu%n", a->name, &a->n, &used), 2);
        a->v = malloc((a->n ? a->n : 1) * sizeof(double));
        char *p = line + used, *end;
        for (size_t i = 0; i < a->n; i++, p = end) {
            a->v[i] = strtod(p, &end);
            ck_assert_msg(end != p, "%s: %s: value %zu unreadable", path, a->name, i);
        }
    }
    free(line);
    fclose(fp);
    ck_assert_msg((int)fx_get(x, "version", 1)->v[0] == REF_VERSION, "%s: wrong fixture version", path);
    const ref_array *d = fx_get(x, "dims", 8);
    x->V = (int)d->v[0]; x->H = (int)d->v[1]; x->L = (int)d->v[2]; x->S = (int)d->v[3];
    x->TL = (int)d->v[4]; x->B = (int)d->v[5]; x->T = (int)d->v[6]; x->tied = (int)d->v[7];
    x->tokens = fx_ints(x, "tokens", (size_t)x->S * x->TL);
    x->logits = fx_floats(x, "logits", (size_t)x->S * x->TL * x->V);
}

// The reference logits of sequence s at position t.
static const float *ref_logits(const fixture *x, int s, int t) {
    return x->logits + ((size_t)s * x->TL + t) * x->V;
}

// Compares got[n] with want[n]; prints the first few mismatches and the
// largest difference, and returns the number of mismatches.


static eng_lstm *load_dir(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *config = tu_load_json(path);
    eng_lstm *m = NULL;
    char *err = NULL;
    ck_assert_msg(eng_lstm_load_dir(&m, dir, config, &err) == 0, "eng_lstm_load_dir(%s): %s", dir, err);
    json_decref(config);
    return m;
}

static eng_lstm *load_config(int i) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", REF_DIR, configs[i]);
    return load_dir(dir);
}

static void step(eng_lstm *m, eng_tape *t, eng_lm_seq **seqs, const int *const *toks, const int *n, int k,
                 float *logits) {
    eng_lstm_lm_ops.step(eng_lstm_as_lm(m), t, seqs, toks, n, k, logits);
}

// ---------------------------------------------------------------- serving vs torch
// One step consumes a whole prefix (several lengths), alone and two sequences together.
START_TEST(test_prefill) {
    fixture x;
    fx_load(&x, configs[_i]);
    eng_lstm *m = load_config(_i);
    const eng_lm_ops *ops = &eng_lstm_lm_ops;
    eng_lm_info info = ops->info(eng_lstm_as_lm(m));
    ck_assert_str_eq(info.arch, "lstm");
    ck_assert_int_eq(info.vocab_size, x.V);
    ck_assert_int_eq(info.context_len, 64);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    float *logits = malloc(2 * (size_t)x.V * sizeof(float));
    int bad = 0;
    const int lens[] = {1, 5, 17, x.TL};
    for (int s = 0; s < x.S; s++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            eng_lm_seq *seq = ops->seq_new(eng_lstm_as_lm(m), x.TL);
            const int *tok = x.tokens + (size_t)s * x.TL;
            int n = lens[li];
            step(m, &t, &seq, &tok, &n, 1, logits);
            ck_assert_int_eq(ops->seq_pos(seq), n);
            char what[64];
            snprintf(what, sizeof what, "%s prefill seq %d len %d", configs[_i], s, n);
            bad += tu_compare(what, logits, ref_logits(&x, s, n - 1), (size_t)x.V, LOGIT_RTOL, LOGIT_ATOL);
            ops->seq_free(seq);
        }
    // both sequences in one step, different lengths: the shorter drops out of the last time steps
    eng_lm_seq *seqs[2] = {ops->seq_new(eng_lstm_as_lm(m), x.TL), ops->seq_new(eng_lstm_as_lm(m), x.TL)};
    const int *toks[2] = {x.tokens, x.tokens + x.TL};
    int n[2] = {x.TL - 7, x.TL};
    step(m, &t, seqs, toks, n, 2, logits);
    bad += tu_compare("two prefills seq 0", logits, ref_logits(&x, 0, x.TL - 8), (size_t)x.V, LOGIT_RTOL, LOGIT_ATOL);
    bad += tu_compare("two prefills seq 1", logits + x.V, ref_logits(&x, 1, x.TL - 1), (size_t)x.V, LOGIT_RTOL,
                   LOGIT_ATOL);
    ck_assert_int_eq(bad, 0);
    ops->seq_free(seqs[0]);
    ops->seq_free(seqs[1]);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_lstm_as_lm(m));
    fx_free(&x);
}
END_TEST

// One token per step, every position checked.
START_TEST(test_decode) {
    fixture x;
    fx_load(&x, configs[_i]);
    eng_lstm *m = load_config(_i);
    const eng_lm_ops *ops = &eng_lstm_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    float *logits = malloc((size_t)x.V * sizeof(float));
    int bad = 0;
    for (int s = 0; s < x.S; s++) {
        eng_lm_seq *seq = ops->seq_new(eng_lstm_as_lm(m), x.TL);
        for (int p = 0; p < x.TL; p++) {
            const int *tok = x.tokens + (size_t)s * x.TL + p;
            int n = 1;
            step(m, &t, &seq, &tok, &n, 1, logits);
            char what[64];
            snprintf(what, sizeof what, "%s decode seq %d pos %d", configs[_i], s, p);
            bad += tu_compare(what, logits, ref_logits(&x, s, p), (size_t)x.V, LOGIT_RTOL, LOGIT_ATOL);
        }
        ops->seq_free(seq);
    }
    ck_assert_int_eq(bad, 0);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_lstm_as_lm(m));
    fx_free(&x);
}
END_TEST

// Mixed steps: three sequences (reference sequences 0, 1 and 0 again) join
// at different times, prefill in chunks and decode in the same steps, in a
// different order each step.
enum { MIX_SEQS = 3, MIX_STEPS = 8 };
static const int mix_ref[MIX_SEQS] = {0, 1, 0};
static const int mix_plan[MIX_STEPS][MIX_SEQS] = {   // tokens consumed per step (0 = not in this step)
    {5, 1, 0}, {1, 17, 3}, {6, 1, 1}, {1, 1, 20}, {1, 1, 0}, {9, 1, 0}, {1, 1, 0}, {0, 1, 0},
};

START_TEST(test_mixed_batch) {
    fixture x;
    fx_load(&x, configs[_i]);
    ck_assert_int_eq(x.TL, 24);   // the plan consumes each sequence fully
    eng_lstm *m = load_config(_i);
    const eng_lm_ops *ops = &eng_lstm_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq *all[MIX_SEQS];
    for (int q = 0; q < MIX_SEQS; q++) all[q] = ops->seq_new(eng_lstm_as_lm(m), x.TL);
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
            snprintf(what, sizeof what, "%s mixed step %d seq %d pos %d", configs[_i], st, q, last);
            bad += tu_compare(what, logits + (size_t)j * x.V, ref_logits(&x, mix_ref[q], last), (size_t)x.V,
                           LOGIT_RTOL, LOGIT_ATOL);
        }
    }
    for (int q = 0; q < MIX_SEQS; q++) {
        ck_assert_int_eq(ops->seq_pos(all[q]), x.TL);
        ops->seq_free(all[q]);
    }
    ck_assert_int_eq(bad, 0);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_lstm_as_lm(m));
    fx_free(&x);
}
END_TEST

// The training forward (tape, grad off) on all reference sequences at once.
START_TEST(test_forward_logits) {
    fixture x;
    fx_load(&x, configs[_i]);
    eng_lstm *m = load_config(_i);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *logits = eng_lstm_forward(m, &t, x.tokens, x.S, x.TL);
    ck_assert_uint_eq(logits->n, (size_t)x.S * x.TL * x.V);
    ck_assert_int_eq(t.n_entries, 0);   // grad off: nothing recorded
    ck_assert_int_eq(tu_compare(configs[_i], logits->val, x.logits, logits->n, LOGIT_RTOL, LOGIT_ATOL), 0);
    eng_tape_free(&t);
    eng_lstm_destroy(m);
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- training vs torch autograd
// Loss and every parameter gradient of the [B, T] batch.
START_TEST(test_train_gradients) {
    fixture x;
    fx_load(&x, configs[_i]);
    eng_lstm *m = load_config(_i);
    eng_lstm_make_owned(m);
    ck_assert_ptr_nonnull(m->params);
    eng_lstm_enable_grads(m);
    if (x.tied) {
        ck_assert_ptr_eq(m->head_w.val, m->embed.val);
        ck_assert_ptr_eq(m->head_w.grad, m->embed.grad);
    }
    int N = x.B * x.T;
    int *tokens = fx_ints(&x, "train.tokens", (size_t)N), *targets = fx_ints(&x, "train.targets", (size_t)N);
    float *want_loss = fx_floats(&x, "train.loss", 1);
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    for (int round = 0; round < 2; round++) {   // the second round checks zero_grads + tape reuse
        eng_tape_reset(&t);
        eng_lstm_zero_grads(m);
        eng_var *loss = eng_lstm_loss(m, &t, tokens, targets, x.B, x.T);
        ck_assert_int_eq(tu_compare("loss", loss->val, want_loss, 1, LOGIT_RTOL, LOGIT_ATOL), 0);
        eng_tape_backward(&t, loss);
        int bad = 0;
        for (int i = 0; i < m->n_tensors; i++) {
            const eng_lstm_tensor *p = &m->tensors[i];
            char name[112];
            snprintf(name, sizeof name, "grad.%s", p->name);
            float *want = fx_floats(&x, name, p->n);
            double amax = 0;
            for (size_t k = 0; k < p->n; k++) amax = fabs(want[k]) > amax ? fabs(want[k]) : amax;
            ck_assert_msg(amax > 0, "%s: all-zero reference gradient", name);
            bad += tu_compare(name, p->grad, want, p->n, GRAD_RTOL, GRAD_SCALE * amax);
            free(want);
        }
        ck_assert_int_eq(bad, 0);
    }
    free(want_loss);
    free(tokens);
    free(targets);
    eng_tape_free(&t);
    eng_lstm_destroy(m);
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- finite differences
// Deterministic uniform floats in [lo, hi) (splitmix64).


// The layer op alone: L = sum(r * out) in double; central differences for
// every element of every input vs eng_lstm_layer_backward with dout = r.
enum { FD_B = 2, FD_T = 5, FD_C = 4, FD_H = 3, FD_G = 4 * FD_H, FD_ROWS = FD_B * FD_T };

static double op_loss(float *const *in, const float *r) {
    float out[FD_ROWS * FD_H], gates[FD_ROWS * FD_G], cs[FD_ROWS * FD_H], scratch[5 * FD_B * FD_H];
    eng_lstm_layer_forward(out, gates, cs, scratch, in[0], in[1], in[2], in[3], in[4], FD_B, FD_T, FD_C, FD_H);
    double l = 0;
    for (int j = 0; j < FD_ROWS * FD_H; j++) l += (double)r[j] * out[j];
    return l;
}

START_TEST(test_layer_op_gradients) {
    ck_assert_uint_eq(eng_lstm_forward_scratch(FD_B, FD_H), 5 * FD_B * FD_H);
    const size_t in_n[5] = {FD_ROWS * FD_C, FD_G * FD_C, FD_G * FD_H, FD_G, FD_G};
    const char *names[5] = {"in", "w_ih", "w_hh", "b_ih", "b_hh"};
    float *in[5], *din[5];
    for (int i = 0; i < 5; i++) {
        in[i] = malloc(in_n[i] * sizeof(float));
        din[i] = calloc(in_n[i], sizeof(float));
        tu_fill(in[i], in_n[i], i == 0 ? -1.5f : -0.8f, i == 0 ? 1.5f : 0.8f);
    }
    float r[FD_ROWS * FD_H], out[FD_ROWS * FD_H], gates[FD_ROWS * FD_G], cs[FD_ROWS * FD_H];
    float fs[5 * FD_B * FD_H];
    tu_fill(r, FD_ROWS * FD_H, -1, 1);
    eng_lstm_layer_forward(out, gates, cs, fs, in[0], in[1], in[2], in[3], in[4], FD_B, FD_T, FD_C, FD_H);
    float *bs = malloc(eng_lstm_backward_scratch(FD_B, FD_T, FD_H) * sizeof(float));
    eng_lstm_layer_backward(din[0], din[1], din[2], din[3], din[4], bs, r, in[0], out, gates, cs, in[1], in[2],
                            FD_B, FD_T, FD_C, FD_H);
    int bad = 0;
    for (int i = 0; i < 5; i++)
        for (size_t k = 0; k < in_n[i]; k++) {
            float keep = in[i][k];
            const float eps = 1e-2f;
            in[i][k] = keep + eps;
            double lp = op_loss(in, r);
            in[i][k] = keep - eps;
            double lm = op_loss(in, r);
            in[i][k] = keep;
            double fd = (lp - lm) / (2.0 * eps);
            if (!(fabs(fd - din[i][k]) <= 2e-3 + 1e-2 * fabs(fd))) {
                if (bad < 5) fprintf(stderr, "  lstm %s [%zu]: backward %.6g, finite difference %.6g\n", names[i], k,
                                     din[i][k], fd);
                bad++;
            }
        }
    // accumulation: a second backward adds the same again
    float keep0 = din[2][0];
    eng_lstm_layer_backward(NULL, NULL, din[2], NULL, NULL, bs, r, in[0], out, gates, cs, in[1], in[2],
                            FD_B, FD_T, FD_C, FD_H);
    ck_assert_float_eq_tol(din[2][0], 2 * keep0, 1e-6 + 1e-5 * fabs(keep0));
    ck_assert_msg(bad == 0, "%d gradient entries off", bad);
    for (int i = 0; i < 5; i++) { free(in[i]); free(din[i]); }
    free(bs);
}
END_TEST

// The whole model through the tape: d loss / d (a few elements of each
// parameter tensor) by central differences of the loss, vs eng_tape_backward.
START_TEST(test_tape_finite_differences) {
    fixture x;
    fx_load(&x, configs[_i]);
    eng_lstm *m = load_config(_i);
    eng_lstm_make_owned(m);
    eng_lstm_enable_grads(m);
    int N = x.B * x.T;
    int *tokens = fx_ints(&x, "train.tokens", (size_t)N), *targets = fx_ints(&x, "train.targets", (size_t)N);
    eng_tape t, f;
    eng_tape_init(&t, 1, 1);
    eng_tape_init(&f, 0, 0);   // forward-only tape for the perturbed losses
    eng_var *loss = eng_lstm_loss(m, &t, tokens, targets, x.B, x.T);
    eng_tape_backward(&t, loss);
    int bad = 0, checked = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        eng_lstm_tensor *p = &m->tensors[i];
        size_t picks[4] = {0, p->n / 3, (2 * p->n) / 3 + 1, p->n - 1};
        if (i == 0) {   // embedding: rows of tokens in the batch (others have gradient 0 or come from the tied head)
            picks[0] = (size_t)tokens[0] * x.H;
            picks[1] = (size_t)tokens[N - 1] * x.H + (size_t)x.H - 1;
        }
        for (int q = 0; q < 4; q++) {
            size_t k = picks[q] < p->n ? picks[q] : p->n - 1;
            float keep = p->val[k];
            const float eps = 1e-2f;
            double l[2];
            for (int s = 0; s < 2; s++) {
                p->val[k] = keep + (s ? -eps : eps);
                eng_tape_reset(&f);
                l[s] = eng_lstm_loss(m, &f, tokens, targets, x.B, x.T)->val[0];
            }
            p->val[k] = keep;
            double fd = (l[0] - l[1]) / (2.0 * eps), g = p->grad[k];
            checked++;
            if (!(fabs(fd - g) <= 2e-4 + 2e-2 * fabs(g))) {
                fprintf(stderr, "  %s %s[%zu]: tape %.6g, finite difference %.6g\n", configs[_i], p->name, k, g, fd);
                bad++;
            }
        }
    }
    ck_assert_int_eq(checked, 4 * m->n_tensors);
    ck_assert_int_eq(bad, 0);
    free(tokens);
    free(targets);
    eng_tape_free(&t);
    eng_tape_free(&f);
    eng_lstm_destroy(m);
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- init / save / load


// PyTorch-default init (statistics), then save -> eng_lstm_load_dir keeps
// every parameter bit for bit (mapped, not copied), and the loaded model's
// step gives the training forward's logits of the original.
START_TEST(test_init_save_load) {
    eng_lstm *ref = load_config(_i);   // for the config only
    eng_lstm m;
    char *err = NULL;
    ck_assert_msg(eng_lstm_init(&m, &ref->cfg, &err) == 0, "%s", err);
    int V = m.cfg.vocab_size, H = m.cfg.hidden_size, L = m.cfg.num_layers;
    ck_assert_uint_eq(m.n_params, (size_t)V * H * (m.cfg.tied ? 1 : 2) + (size_t)L * (8 * H * H + 8 * H) + V);
    eng_lstm_init_params(&m, 42 + (uint64_t)_i);
    // embedding N(0, 1); everything else U(-1/sqrt(H), 1/sqrt(H)) and filling that range
    double sum = 0, sq = 0;
    for (size_t k = 0; k < m.embed.n; k++) { sum += m.embed.val[k]; sq += (double)m.embed.val[k] * m.embed.val[k]; }
    double mean = sum / m.embed.n, sd = sqrt(sq / m.embed.n - mean * mean);
    ck_assert_msg(fabs(mean) < 0.2 && sd > 0.85 && sd < 1.15, "embedding mean %g sd %g", mean, sd);
    float bound = 1.0f / sqrtf((float)H), vmax = 0;
    for (int i = 1; i < m.n_tensors; i++)
        for (size_t k = 0; k < m.tensors[i].n; k++) {
            float v = fabsf(m.tensors[i].val[k]);
            ck_assert_float_le(v, bound);
            vmax = v > vmax ? v : vmax;
        }
    ck_assert_float_gt(vmax, 0.95f * bound);

    char *dir = tu_temp_dir("test_lstm"), path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(eng_lstm_save(&m, path, &err) == 0, "eng_lstm_save: %s", err);
    json_t *cfg = eng_lstm_config_to_json(&m.cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
    eng_lstm *back = load_dir(dir);
    ck_assert_ptr_null(back->params);   // mapped
    ck_assert_int_eq(back->cfg.tied, m.cfg.tied);
    ck_assert_int_eq(back->cfg.context_len, m.cfg.context_len);
    ck_assert_int_eq(back->n_tensors, m.n_tensors);
    for (int i = 0; i < m.n_tensors; i++) {
        ck_assert_str_eq(back->tensors[i].name, m.tensors[i].name);
        ck_assert_int_eq(memcmp(back->tensors[i].val, m.tensors[i].val, m.tensors[i].n * sizeof(float)), 0);
    }

    enum { TL = 9 };
    int tokens[TL];
    for (int k = 0; k < TL; k++) tokens[k] = (5 * k + 3) % V;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *full = eng_lstm_forward(&m, &t, tokens, 1, TL);
    float *want = malloc(full->n * sizeof(float));
    memcpy(want, full->val, full->n * sizeof(float));
    eng_lm_seq *seq = eng_lstm_lm_ops.seq_new(eng_lstm_as_lm(back), TL);
    float *logits = malloc((size_t)V * sizeof(float));
    int n = TL;
    const int *tok = tokens;
    step(back, &t, &seq, &tok, &n, 1, logits);
    ck_assert_int_eq(tu_compare("saved model", logits, want + (size_t)(TL - 1) * V, (size_t)V, 1e-5, 1e-6), 0);
    eng_lstm_lm_ops.seq_free(seq);
    free(logits);
    free(want);
    eng_tape_free(&t);
    eng_lstm_destroy(back);
    tu_remove_model_dir(dir);
    eng_lstm_free(&m);
    eng_lstm_destroy(ref);
}
END_TEST

// ---------------------------------------------------------------- scratch reuse
// After a warm-up step, decode steps of the same batch do not grow the arena.
START_TEST(test_arena_reuse) {
    fixture x;
    fx_load(&x, configs[_i]);
    eng_lstm *m = load_config(_i);
    const eng_lm_ops *ops = &eng_lstm_lm_ops;
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_lm_seq *seqs[2] = {ops->seq_new(eng_lstm_as_lm(m), x.TL), ops->seq_new(eng_lstm_as_lm(m), x.TL)};
    float *logits = malloc(2 * (size_t)x.V * sizeof(float));
    const int *toks[2];
    int n[2] = {1, 1};
    size_t hw = 0;
    for (int p = 0; p < x.TL; p++) {
        toks[0] = x.tokens + p;
        toks[1] = x.tokens + x.TL + p;
        step(m, &t, seqs, toks, n, 2, logits);
        if (p == 1) hw = t.arena.high_water;
        if (p > 1) ck_assert_uint_eq(t.arena.high_water, hw);
    }
    ck_assert_int_eq(tu_compare("arena decode", logits + x.V, ref_logits(&x, 1, x.TL - 1), (size_t)x.V, LOGIT_RTOL,
                             LOGIT_ATOL), 0);
    ops->seq_free(seqs[0]);
    ops->seq_free(seqs[1]);
    free(logits);
    eng_tape_free(&t);
    ops->free(eng_lstm_as_lm(m));
    fx_free(&x);
}
END_TEST

// ---------------------------------------------------------------- errors
static int config_text(const char *text, eng_lstm_config *cfg, char **err) {
    json_t *c = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(c);
    int rc = eng_lstm_config_from_json(cfg, c, err);
    json_decref(c);
    return rc;
}

static void expect_error(int rc, char **err, const char *needle) {
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_nonnull(*err);
    ck_assert_msg(strstr(*err, needle) != NULL, "error \"%s\" does not mention %s", *err, needle);
    free(*err);
    *err = NULL;
}

START_TEST(test_errors) {
    char *err = NULL;
    eng_lstm_config cfg;
    // config.json problems name the key
    expect_error(config_text("{\"arch\": \"lstm\", \"vocab_size\": 20}", &cfg, &err), &err, "hidden_size");
    expect_error(config_text("{\"arch\": \"gpt2\", \"vocab_size\": 20, \"hidden_size\": 8}", &cfg, &err), &err, "arch");
    expect_error(config_text("{\"vocab_size\": 20, \"hidden_size\": 8, \"num_layers\": 0}", &cfg, &err), &err,
                 "num_layers");
    expect_error(config_text("{\"vocab_size\": 20, \"hidden_size\": 8, \"tie_word_embeddings\": 1}", &cfg, &err), &err,
                 "tie_word_embeddings");
    expect_error(config_text("{\"vocab_size\": 2.5, \"hidden_size\": 8}", &cfg, &err), &err, "vocab_size");
    ck_assert_int_eq(config_text("{\"vocab_size\": 20, \"hidden_size\": 8}", &cfg, &err), 0);   // defaults
    ck_assert_int_eq(cfg.num_layers, 1);
    ck_assert_int_eq(cfg.context_len, 1024);
    ck_assert_int_eq(cfg.tied, 0);
    eng_lstm m;
    cfg.hidden_size = 0;
    expect_error(eng_lstm_init(&m, &cfg, &err), &err, "hidden");

    // the tied model's file has no head.weight: an untied config of the same dims says so
    eng_lstm_config c2 = {.vocab_size = 20, .hidden_size = 12, .num_layers = 3, .context_len = 64, .tied = 0};
    ck_assert_int_eq(eng_lstm_init(&m, &c2, &err), 0);
    expect_error(eng_lstm_load_safetensors(&m, REF_DIR "/tied/model.safetensors", &err), &err, "tie_word_embeddings");
    ck_assert_ptr_null(m.embed.val);   // nothing left half-loaded
    // wrong width: the shape check names the tensor
    expect_error(eng_lstm_load_safetensors(&m, REF_DIR "/untied/model.safetensors", &err), &err, "embed.weight");
    expect_error(eng_lstm_load_safetensors(&m, REF_DIR "/missing.safetensors", &err), &err, "missing");
    eng_lstm_free(&m);
    eng_lstm_free(NULL);
    eng_lstm_destroy(NULL);

    // sequences: bounds and budget
    eng_lstm *u = load_config(0);
    const eng_lm_ops *ops = &eng_lstm_lm_ops;
    ck_assert_ptr_null(ops->seq_new(eng_lstm_as_lm(u), u->cfg.context_len + 1));
    ck_assert_ptr_null(ops->seq_new(eng_lstm_as_lm(u), 0));
    ck_assert_uint_ge(ops->seq_bytes(eng_lstm_as_lm(u), 64), 2u * 2 * 16 * sizeof(float));
    ck_assert_uint_eq(ops->seq_bytes(eng_lstm_as_lm(u), 64), ops->seq_bytes(eng_lstm_as_lm(u), 1));
    ops->seq_free(NULL);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    step(u, &t, NULL, NULL, NULL, 0, NULL);   // an empty step is a no-op
    eng_tape_free(&t);
    ck_assert_int_eq(ops->info(eng_lstm_as_lm(u)).n_params, u->n_params);
    ops->free(eng_lstm_as_lm(u));
}
END_TEST

static Suite *lstm_suite(void) {
    Suite *s = suite_create("lstm");
    TCase *tc = tcase_create("pytorch_ref");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_prefill, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_decode, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_mixed_batch, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_forward_logits, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_train_gradients, 0, N_CONFIGS);
    tcase_add_test(tc, test_layer_op_gradients);
    tcase_add_loop_test(tc, test_tape_finite_differences, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_init_save_load, 0, N_CONFIGS);
    tcase_add_loop_test(tc, test_arena_reuse, 0, N_CONFIGS);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    tu_rng_state = 11;   // the finite-difference inputs this suite was tuned with
    SRunner *sr = srunner_create(lstm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
