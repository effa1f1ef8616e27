// tape.c — records ops on eng_vars and replays their backwards (see tape.h).
#include "engine/core/tape.h"
#include <math.h>          // sqrtf
#include <stdlib.h>        // free
#include <string.h>        // memset, memcpy
#include "engine/core/ops.h"    // forward/backward kernels
#include "engine/core/arena.h"  // eng_arena_oom

// One recorded op. `back` reads the forward's inputs/outputs/caches and
// accumulates into the inputs' grads (those that have one).
struct eng_tape_entry {
    void (*back)(eng_tape_entry *e);
    eng_var *out;        // the op's output
    eng_var *in[3];      // its inputs (unused slots NULL)
    int i[8];            // integer arguments (dims, stride, ...)
    void *aux;           // op cache (argmax, mean/rstd, probs, im2col scratch)
    void *aux2;
};

void eng_tape_init(eng_tape *t, int grad_enabled, int training) {
    memset(t, 0, sizeof *t);
    eng_arena_init(&t->arena);
    t->grad_enabled = grad_enabled;
    t->training = training;
}

void eng_tape_reset(eng_tape *t) {
    eng_arena_reset(&t->arena);
    t->n_entries = 0;
}

void eng_tape_free(eng_tape *t) {
    if (!t) return;
    eng_arena_free(&t->arena);
    free(t->entries);
    t->entries = NULL;
    t->n_entries = t->cap_entries = 0;
}

static eng_tape_entry *record(eng_tape *t, void (*back)(eng_tape_entry *), eng_var *out,
                              eng_var *a, eng_var *b, eng_var *c) {
    if (t->n_entries == t->cap_entries) {
        size_t cap = t->cap_entries ? 2 * (size_t)t->cap_entries : 64;
        eng_tape_entry *n = malloc(cap * sizeof *n);
        if (!n) eng_arena_oom("tape entries", cap * sizeof *n);
        t->cap_entries = (int)cap;
        if (t->entries) memcpy(n, t->entries, (size_t)t->n_entries * sizeof *n);
        free(t->entries);
        t->entries = n;
    }
    eng_tape_entry *e = &t->entries[t->n_entries++];
    memset(e, 0, sizeof *e);
    e->back = back;
    e->out = out;
    e->in[0] = a; e->in[1] = b; e->in[2] = c;
    return e;
}

// Does this op need recording? Only when the tape records and some input wants a grad.
static int wants_grad(const eng_tape *t, const eng_var *a, const eng_var *b, const eng_var *c) {
    return t->grad_enabled && ((a && a->grad) || (b && b->grad) || (c && c->grad));
}

static eng_var *new_var(eng_tape *t, int ndim, const int *shape, int with_grad) {
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    memset(v, 0, sizeof *v);
    v->ndim = ndim;
    v->n = 1;
    for (int d = 0; d < ndim; d++) { v->shape[d] = shape[d]; v->n *= (size_t)shape[d]; }
    v->val = eng_arena_alloc(&t->arena, v->n * sizeof(float));
    v->grad = with_grad ? eng_arena_calloc(&t->arena, v->n * sizeof(float)) : NULL;
    return v;
}

eng_var *eng_tape_var(eng_tape *t, int ndim, const int *shape) {
    return new_var(t, ndim, shape, t->grad_enabled);
}

eng_var *eng_tape_wrap(eng_tape *t, float *data, int ndim, const int *shape) {
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    eng_var_param(v, data, NULL, ndim, shape);
    return v;
}

void eng_var_param(eng_var *v, float *val, float *grad, int ndim, const int *shape) {
    memset(v, 0, sizeof *v);
    v->val = val;
    v->grad = grad;
    v->ndim = ndim;
    v->n = 1;
    for (int d = 0; d < ndim; d++) { v->shape[d] = shape[d]; v->n *= (size_t)shape[d]; }
}

void eng_tape_backward(eng_tape *t, eng_var *loss) {
    if (!loss->grad) return;          // nothing in the graph needs a gradient
    loss->grad[0] += 1.0f;
    for (int k = t->n_entries - 1; k >= 0; k--) {
        eng_tape_entry *e = &t->entries[k];
        if (e->out->grad) e->back(e);
    }
}

// ---------------------------------------------------------------- conv2d
// forward: out = conv(x, w) + b; i = {B, C, H, W, OC, K, stride, pad}
static void conv2d_back(eng_tape_entry *e) {
    eng_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    int *i = e->i;
    eng_conv2d_backward(x->grad, w->grad, b ? b->grad : NULL, e->aux, e->out->grad, x->val, w->val,
                        i[0], i[1], i[2], i[3], i[4], i[5], i[5], i[6], i[7]);
}

eng_var *eng_t_conv2d(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, int stride, int pad) {
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int OC = w->shape[0], K = w->shape[2];
    int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    int rec = wants_grad(t, x, w, b);
    eng_var *out = new_var(t, 4, (int[]){B, OC, OH, OW}, rec);
    float *col = eng_arena_alloc(&t->arena, eng_conv2d_col_size(C, H, W, K, K, stride, pad) * sizeof(float));
    eng_conv2d_forward(out->val, col, x->val, w->val, b ? b->val : NULL, B, C, H, W, OC, K, K, stride, pad);
    if (rec) {
        eng_tape_entry *e = record(t, conv2d_back, out, x, w, b);
        int args[8] = {B, C, H, W, OC, K, stride, pad};
        memcpy(e->i, args, sizeof args);
        e->aux = col;   // reused as scratch by the backward
    }
    return out;
}

// ---------------------------------------------------------------- conv_transpose2d
// forward: out = conv_transpose(x, w) + b; i = {B, C, H, W, OC, K, stride, pad}
static void conv_transpose2d_back(eng_tape_entry *e) {
    eng_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    int *i = e->i;
    eng_conv_transpose2d_backward(x->grad, w->grad, b ? b->grad : NULL, e->aux, e->out->grad, x->val, w->val,
                                  i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7]);
}

eng_var *eng_t_conv_transpose2d(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, int stride, int pad) {
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int OC = w->shape[1], K = w->shape[2];
    int OH = eng_conv_transpose2d_out_dim(H, K, stride, pad), OW = eng_conv_transpose2d_out_dim(W, K, stride, pad);
    int rec = wants_grad(t, x, w, b);
    eng_var *out = new_var(t, 4, (int[]){B, OC, OH, OW}, rec);
    float *col = eng_arena_alloc(&t->arena, eng_conv_transpose2d_col_size(C, H, W, OC, K, stride, pad) * sizeof(float));
    eng_conv_transpose2d_forward(out->val, col, x->val, w->val, b ? b->val : NULL, B, C, H, W, OC, K, stride, pad);
    if (rec) {
        eng_tape_entry *e = record(t, conv_transpose2d_back, out, x, w, b);
        int args[8] = {B, C, H, W, OC, K, stride, pad};
        memcpy(e->i, args, sizeof args);
        e->aux = col;   // reused as scratch by the backward
    }
    return out;
}

// ---------------------------------------------------------------- leaky relu
// i[0] holds the slope's bits.
static void leaky_relu_back(eng_tape_entry *e) {
    float slope;
    memcpy(&slope, &e->i[0], sizeof slope);
    if (e->in[0]->grad) eng_leaky_relu_backward(e->in[0]->grad, e->out->grad, e->in[0]->val, e->out->n, slope);
}

eng_var *eng_t_leaky_relu(eng_tape *t, eng_var *x, float slope) {
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, x->ndim, x->shape, rec);
    eng_leaky_relu_forward(out->val, x->val, x->n, slope);
    if (rec) memcpy(&record(t, leaky_relu_back, out, x, NULL, NULL)->i[0], &slope, sizeof slope);
    return out;
}

// ---------------------------------------------------------------- linear
// forward: out[N,OC] = x[N,C] w^T + b; i = {N, C, OC}
static void linear_back(eng_tape_entry *e) {
    eng_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    eng_linear_backward(x->grad, w->grad, b ? b->grad : NULL, e->out->grad, x->val, w->val,
                        e->i[0], e->i[1], e->i[2]);
}

eng_var *eng_t_linear(eng_tape *t, eng_var *x, eng_var *w, eng_var *b) {
    int C = x->shape[x->ndim - 1], OC = w->shape[0];
    int N = (int)(x->n / (size_t)C);
    int rec = wants_grad(t, x, w, b);
    int shape[ENG_VAR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OC;
    eng_var *out = new_var(t, x->ndim, shape, rec);
    eng_linear_forward(out->val, x->val, w->val, b ? b->val : NULL, N, C, OC);
    if (rec) {
        eng_tape_entry *e = record(t, linear_back, out, x, w, b);
        e->i[0] = N; e->i[1] = C; e->i[2] = OC;
    }
    return out;
}

// ---------------------------------------------------------------- elementwise activations
static void relu_back(eng_tape_entry *e) {
    eng_relu_backward(e->in[0]->grad, e->out->grad, e->in[0]->val, e->out->n);
}
static void gelu_back(eng_tape_entry *e) {
    eng_gelu_backward(e->in[0]->grad, e->out->grad, e->in[0]->val, e->out->n);
}
static void tanh_back(eng_tape_entry *e) {   // uses the forward output
    eng_tanh_backward(e->in[0]->grad, e->out->grad, e->out->val, e->out->n);
}
static void sigmoid_back(eng_tape_entry *e) {
    eng_sigmoid_backward(e->in[0]->grad, e->out->grad, e->out->val, e->out->n);
}

static eng_var *unary(eng_tape *t, eng_var *x, void (*fwd)(float *, const float *, size_t),
                      void (*back)(eng_tape_entry *)) {
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, x->ndim, x->shape, rec);
    fwd(out->val, x->val, x->n);
    if (rec) record(t, back, out, x, NULL, NULL);
    return out;
}

eng_var *eng_t_relu(eng_tape *t, eng_var *x) { return unary(t, x, eng_relu_forward, relu_back); }
eng_var *eng_t_gelu(eng_tape *t, eng_var *x) { return unary(t, x, eng_gelu_forward, gelu_back); }
eng_var *eng_t_tanh(eng_tape *t, eng_var *x) { return unary(t, x, eng_tanh_forward, tanh_back); }
eng_var *eng_t_sigmoid(eng_tape *t, eng_var *x) { return unary(t, x, eng_sigmoid_forward, sigmoid_back); }

// ---------------------------------------------------------------- pooling
// i = {B, C, H, W, K, S}
static void maxpool_back(eng_tape_entry *e) {
    int *i = e->i;
    eng_maxpool2d_backward(e->in[0]->grad, e->out->grad, e->aux, i[0], i[1], i[2], i[3], i[4], i[5]);
}
static void avgpool_back(eng_tape_entry *e) {
    int *i = e->i;
    eng_avgpool2d_backward(e->in[0]->grad, e->out->grad, i[0], i[1], i[2], i[3], i[4], i[5]);
}

static eng_var *pool(eng_tape *t, eng_var *x, int k, int s, int is_max) {
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, 4, (int[]){B, C, (H - k) / s + 1, (W - k) / s + 1}, rec);
    int *argmax = NULL;
    if (is_max) {
        argmax = eng_arena_alloc(&t->arena, out->n * sizeof(int));
        eng_maxpool2d_forward(out->val, argmax, x->val, B, C, H, W, k, s);
    } else {
        eng_avgpool2d_forward(out->val, x->val, B, C, H, W, k, s);
    }
    if (rec) {
        eng_tape_entry *e = record(t, is_max ? maxpool_back : avgpool_back, out, x, NULL, NULL);
        int args[6] = {B, C, H, W, k, s};
        memcpy(e->i, args, sizeof args);
        e->aux = argmax;
    }
    return out;
}

eng_var *eng_t_maxpool2d(eng_tape *t, eng_var *x, int k, int s) { return pool(t, x, k, s, 1); }
eng_var *eng_t_avgpool2d(eng_tape *t, eng_var *x, int k, int s) { return pool(t, x, k, s, 0); }

static void gap_back(eng_tape_entry *e) {
    eng_global_avgpool_backward(e->in[0]->grad, e->out->grad, e->i[0], e->i[1], e->i[2]);
}

eng_var *eng_t_global_avgpool(eng_tape *t, eng_var *x) {
    int B = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, 2, (int[]){B, C}, rec);
    eng_global_avgpool_forward(out->val, x->val, B, C, HW);
    if (rec) {
        eng_tape_entry *e = record(t, gap_back, out, x, NULL, NULL);
        e->i[0] = B; e->i[1] = C; e->i[2] = HW;
    }
    return out;
}

// ---------------------------------------------------------------- batch norm
// i = {B, C, HW}; aux = mean[C], aux2 = rstd[C] of the batch
static void batchnorm_back(eng_tape_entry *e) {
    eng_var *x = e->in[0], *g = e->in[1], *b = e->in[2];
    eng_batchnorm2d_backward(x->grad, g->grad, b->grad, e->out->grad, x->val, g->val,
                             e->aux, e->aux2, e->i[0], e->i[1], e->i[2]);
}

// Inference-mode batch norm is an affine map per channel with the running
// statistics: y = gamma * (x - rm) * rs + beta, rs = 1/sqrt(rv + eps).
// i = {B, C, HW}; aux = running_mean, aux2 = rs[C] (arena copy)
static void batchnorm_infer_back(eng_tape_entry *e) {
    eng_var *x = e->in[0], *g = e->in[1], *b = e->in[2];
    const float *rm = e->aux, *rs = e->aux2;
    int B = e->i[0], C = e->i[1], HW = e->i[2];
    for (int bi = 0; bi < B; bi++) {
        for (int c = 0; c < C; c++) {
            size_t off = ((size_t)bi * C + c) * HW;
            const float *dy = e->out->grad + off, *xv = x->val + off;
            float gsum = 0, bsum = 0, scale = g->val[c] * rs[c];
            for (int k = 0; k < HW; k++) {
                if (x->grad) x->grad[off + k] += dy[k] * scale;
                gsum += dy[k] * (xv[k] - rm[c]) * rs[c];
                bsum += dy[k];
            }
            if (g->grad) g->grad[c] += gsum;
            if (b->grad) b->grad[c] += bsum;
        }
    }
}

eng_var *eng_t_batchnorm(eng_tape *t, eng_var *x, eng_var *gamma, eng_var *beta,
                         float *running_mean, float *running_var, float momentum, float eps) {
    int B = x->shape[0], C = x->shape[1];
    int HW = (int)(x->n / ((size_t)B * (size_t)C));
    int rec = wants_grad(t, x, gamma, beta);
    eng_var *out = new_var(t, x->ndim, x->shape, rec);
    if (t->training) {
        float *mean = eng_arena_alloc(&t->arena, (size_t)C * sizeof(float));
        float *rstd = eng_arena_alloc(&t->arena, (size_t)C * sizeof(float));
        eng_batchnorm2d_forward_train(out->val, mean, rstd, running_mean, running_var, x->val,
                                      gamma->val, beta->val, B, C, HW, momentum, eps);
        if (rec) {
            eng_tape_entry *e = record(t, batchnorm_back, out, x, gamma, beta);
            e->i[0] = B; e->i[1] = C; e->i[2] = HW;
            e->aux = mean; e->aux2 = rstd;
        }
    } else {
        eng_batchnorm2d_forward_infer(out->val, x->val, gamma->val, beta->val, running_mean,
                                      running_var, B, C, HW, eps);
        if (rec) {
            float *rs = eng_arena_alloc(&t->arena, (size_t)C * sizeof(float));
            for (int c = 0; c < C; c++) rs[c] = 1.0f / sqrtf(running_var[c] + eps);
            eng_tape_entry *e = record(t, batchnorm_infer_back, out, x, gamma, beta);
            e->i[0] = B; e->i[1] = C; e->i[2] = HW;
            e->aux = running_mean; e->aux2 = rs;
        }
    }
    return out;
}

// ---------------------------------------------------------------- reshape, softmax, loss
eng_var *eng_t_flatten(eng_tape *t, eng_var *x) {
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    *v = *x;   // same val and grad buffers: a view
    v->ndim = 2;
    v->shape[0] = x->shape[0];
    v->shape[1] = (int)(x->n / (size_t)x->shape[0]);
    v->shape[2] = v->shape[3] = 0;
    return v;
}

eng_var *eng_t_softmax(eng_tape *t, eng_var *x) {
    int C = x->shape[x->ndim - 1];
    eng_var *out = new_var(t, x->ndim, x->shape, 0);
    eng_softmax_forward(out->val, x->val, (int)(x->n / (size_t)C), C);
    return out;
}

// i = {N, C}; aux = probs[N,C], aux2 = targets[N]
static void cross_entropy_back(eng_tape_entry *e) {
    eng_cross_entropy_backward(e->in[0]->grad, e->aux, e->aux2, e->i[0], e->i[1], e->out->grad[0]);
}

eng_var *eng_t_cross_entropy(eng_tape *t, eng_var *logits, const int *targets) {
    int C = logits->shape[logits->ndim - 1], N = (int)(logits->n / (size_t)C);
    int rec = wants_grad(t, logits, NULL, NULL);
    eng_var *out = new_var(t, 1, (int[]){1}, rec);
    float *probs = eng_arena_alloc(&t->arena, logits->n * sizeof(float));
    int *tg = eng_arena_alloc(&t->arena, (size_t)N * sizeof(int));
    memcpy(tg, targets, (size_t)N * sizeof(int));
    out->val[0] = eng_cross_entropy_forward(probs, logits->val, tg, N, C);
    if (rec) {
        eng_tape_entry *e = record(t, cross_entropy_back, out, logits, NULL, NULL);
        e->i[0] = N; e->i[1] = C;
        e->aux = probs; e->aux2 = tg;
    }
    return out;
}

// ---------------------------------------------------------------- ops recorded from other files
// The closure an external op leaves in e->aux: its backward and its context.
typedef struct {
    eng__tape_back_fn back;
    void *ctx;
} ext_closure;

static void ext_back(eng_tape_entry *e) {
    ext_closure *c = e->aux;
    c->back(c->ctx, e->out);
}

void eng__tape_record(eng_tape *t, eng_var *out, eng__tape_back_fn back, void *ctx) {
    ext_closure *c = eng_arena_alloc(&t->arena, sizeof *c);
    c->back = back;
    c->ctx = ctx;
    eng_tape_entry *e = record(t, ext_back, out, NULL, NULL, NULL);
    e->aux = c;
}
