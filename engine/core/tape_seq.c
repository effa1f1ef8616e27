// tape_seq.c — eng_t_* wrappers for ops_seq.h (see tape_seq.h): run the
// forward on eng_vars and, when recording, leave a context in the arena that
// the backward (called through eng__tape_record) reads.
#include "engine/core/tape_seq.h"

#include <assert.h>           // assert (caller bugs only)
#include <string.h>           // memcpy
#include "engine/core/ops_seq.h"   // forward/backward kernels

// Does this op need recording? Only when the tape records and some input wants a grad.
static int wants_grad(const eng_tape *t, const eng_var *a, const eng_var *b, const eng_var *c) {
    return t->grad_enabled && ((a && a->grad) || (b && b->grad) || (c && c->grad));
}

// A var of the given shape from the arena: values uninitialised, grad
// zeroed when `with_grad`, else NULL.
static eng_var *new_var(eng_tape *t, int ndim, const int *shape, int with_grad) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    float *val = eng_arena_alloc(&t->arena, n * sizeof(float));
    float *grad = with_grad ? eng_arena_calloc(&t->arena, n * sizeof(float)) : NULL;
    eng_var_param(v, val, grad, ndim, shape);
    return v;
}

static int last_dim(const eng_var *x) { return x->shape[x->ndim - 1]; }
static int rows(const eng_var *x) { return (int)(x->n / (size_t)last_dim(x)); }
static float *grad_of(const eng_var *v) { return v ? v->grad : NULL; }

// ---------------------------------------------------------------- embedding
typedef struct { eng_var *table; int *ids; int N, C; } embedding_ctx;

static void embedding_back(void *vc, eng_var *out) {
    embedding_ctx *c = vc;
    eng_embedding_backward(c->table->grad, out->grad, c->ids, c->N, c->C);
}

eng_var *eng_t_embedding(eng_tape *t, eng_var *table, const int *ids, int N) {
    int C = last_dim(table);
    int rec = wants_grad(t, table, NULL, NULL);
    eng_var *out = new_var(t, 2, (int[]){N, C}, rec);
    eng_embedding_forward(out->val, table->val, ids, N, C);
    if (rec) {
        embedding_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->table = table; c->N = N; c->C = C;
        c->ids = eng_arena_alloc(&t->arena, (size_t)N * sizeof(int));
        memcpy(c->ids, ids, (size_t)N * sizeof(int));
        eng__tape_record(t, out, embedding_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- add
typedef struct { eng_var *a, *b; } add_ctx;

static void add_back(void *vc, eng_var *out) {
    add_ctx *c = vc;
    eng_add_backward(c->a->grad, c->b->grad, out->grad, out->n);
}

eng_var *eng_t_add(eng_tape *t, eng_var *a, eng_var *b) {
    assert(a->n == b->n);
    int rec = wants_grad(t, a, b, NULL);
    eng_var *out = new_var(t, a->ndim, a->shape, rec);
    eng_add_forward(out->val, a->val, b->val, a->n);
    if (rec) {
        add_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->a = a; c->b = b;
        eng__tape_record(t, out, add_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- norms
typedef struct { eng_var *x, *w, *b; float *mean, *rstd; int N, C; } norm_ctx;

static void layernorm_back(void *vc, eng_var *out) {
    norm_ctx *c = vc;
    eng_layernorm_backward(c->x->grad, c->w->grad, grad_of(c->b), out->grad, c->x->val, c->w->val,
                           c->mean, c->rstd, c->N, c->C);
}

static void rmsnorm_back(void *vc, eng_var *out) {
    norm_ctx *c = vc;
    eng_rmsnorm_backward(c->x->grad, c->w->grad, out->grad, c->x->val, c->w->val, c->rstd, c->N, c->C);
}

// layer = 1: layer norm (w, b); 0: RMS norm (w only).
static eng_var *norm(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, float eps, int layer) {
    int C = last_dim(x), N = rows(x);
    int rec = wants_grad(t, x, w, b);
    eng_var *out = new_var(t, x->ndim, x->shape, rec);
    float *mean = rec && layer ? eng_arena_alloc(&t->arena, (size_t)N * sizeof(float)) : NULL;
    float *rstd = rec ? eng_arena_alloc(&t->arena, (size_t)N * sizeof(float)) : NULL;
    if (layer) eng_layernorm_forward(out->val, mean, rstd, x->val, w->val, b->val, N, C, eps);
    else eng_rmsnorm_forward(out->val, rstd, x->val, w->val, N, C, eps);
    if (rec) {
        norm_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->x = x; c->w = w; c->b = b; c->mean = mean; c->rstd = rstd; c->N = N; c->C = C;
        eng__tape_record(t, out, layer ? layernorm_back : rmsnorm_back, c);
    }
    return out;
}

eng_var *eng_t_layernorm(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, float eps) {
    return norm(t, x, w, b, eps, 1);
}

eng_var *eng_t_rmsnorm(eng_tape *t, eng_var *x, eng_var *w, float eps) {
    return norm(t, x, w, NULL, eps, 0);
}

// ---------------------------------------------------------------- rope
typedef struct { eng_var *x; const float *cos_t, *sin_t; int N, H, hd, interleaved; } rope_ctx;

static void rope_back(void *vc, eng_var *out) {
    rope_ctx *c = vc;
    eng_rope_backward(c->x->grad, out->grad, c->cos_t, c->sin_t, c->N, c->H, c->hd, c->interleaved);
}

eng_var *eng_t_rope(eng_tape *t, eng_var *x, const float *cos_t, const float *sin_t, int H, int hd,
                    int interleaved) {
    assert(last_dim(x) == H * hd);
    int N = rows(x);
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, x->ndim, x->shape, rec);
    eng_rope_forward(out->val, x->val, cos_t, sin_t, N, H, hd, interleaved);
    if (rec) {
        rope_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->x = x; c->cos_t = cos_t; c->sin_t = sin_t;
        c->N = N; c->H = H; c->hd = hd; c->interleaved = interleaved;
        eng__tape_record(t, out, rope_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- attention
typedef struct { eng_var *q, *k, *v; float *att, *scratch; int B, T, NH, NKV, hd; } attention_ctx;

static void attention_back(void *vc, eng_var *out) {
    attention_ctx *c = vc;
    eng_attention_backward(c->q->grad, c->k->grad, c->v->grad, c->scratch, out->grad, c->q->val,
                           c->k->val, c->v->val, c->att, c->B, c->T, c->NH, c->NKV, c->hd);
}

eng_var *eng_t_attention(eng_tape *t, eng_var *q, eng_var *k, eng_var *v, int B, int T, int NH, int NKV) {
    int hd = last_dim(q) / NH;
    assert(NH % NKV == 0 && last_dim(q) == NH * hd && last_dim(k) == NKV * hd && k->n == v->n);
    assert(q->n == (size_t)B * T * NH * hd);
    int rec = wants_grad(t, q, k, v);
    eng_var *out = new_var(t, q->ndim, q->shape, rec);
    size_t tt = (size_t)T * T;
    float *att = eng_arena_alloc(&t->arena, (size_t)B * NH * tt * sizeof(float));
    eng_attention_forward(out->val, att, q->val, k->val, v->val, B, T, NH, NKV, hd);
    if (rec) {
        attention_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->q = q; c->k = k; c->v = v; c->att = att;
        c->scratch = eng_arena_alloc(&t->arena, tt * sizeof(float));
        c->B = B; c->T = T; c->NH = NH; c->NKV = NKV; c->hd = hd;
        eng__tape_record(t, out, attention_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- swiglu
typedef struct { eng_var *gate, *up; } swiglu_ctx;

static void swiglu_back(void *vc, eng_var *out) {
    swiglu_ctx *c = vc;
    eng_swiglu_backward(c->gate->grad, c->up->grad, out->grad, c->gate->val, c->up->val, out->n);
}

eng_var *eng_t_swiglu(eng_tape *t, eng_var *gate, eng_var *up) {
    assert(gate->n == up->n);
    int rec = wants_grad(t, gate, up, NULL);
    eng_var *out = new_var(t, gate->ndim, gate->shape, rec);
    eng_swiglu_forward(out->val, gate->val, up->val, gate->n);
    if (rec) {
        swiglu_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->gate = gate; c->up = up;
        eng__tape_record(t, out, swiglu_back, c);
    }
    return out;
}
