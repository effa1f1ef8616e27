// tape_style.c — eng_t_* ops for style training (see tape_style.h). The
// kernels are plain loops over contiguous rows (the compiler vectorises the
// inner ones); the Gram forward and backward go through sgemm.
#include "engine/core/tape_style.h"

#include <assert.h>           // assert (caller bugs only)
#include <cblas.h>            // cblas_sgemm (Gram backward)
#include <math.h>             // sqrt
#include "engine/core/ops.h"  // eng_matmul_nt

static int wants_grad(const eng_tape *t, const eng_var *a, const eng_var *b, const eng_var *c) {
    return t->grad_enabled && ((a && a->grad) || (b && b->grad) || (c && c->grad));
}

// A var from the arena: values uninitialised, grad zeroed when `with_grad`.
static eng_var *new_var(eng_tape *t, int ndim, const int *shape, int with_grad) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    float *val = eng_arena_alloc(&t->arena, n * sizeof(float));
    float *grad = with_grad ? eng_arena_calloc(&t->arena, n * sizeof(float)) : NULL;
    eng_var_param(v, val, grad, ndim, shape);
    return v;
}

// Context shared by the single-input image ops: the input and one integer.
typedef struct { eng_var *x; int k; } img_ctx;

static eng_var *record1(eng_tape *t, eng_var *out, eng__tape_back_fn back, eng_var *x, int k) {
    img_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
    c->x = x; c->k = k;
    eng__tape_record(t, out, back, c);
    return out;
}

// ---------------------------------------------------------------- reflection padding
// Source index of padded position i (in [-p, n+p)) under reflection without
// repeating the edge: -1 -> 1, n -> n-2.
static int reflect(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

static void reflect_back(void *vc, eng_var *out) {
    img_ctx *c = vc;
    eng_var *x = c->x;
    int p = c->k, P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int OH = H + 2 * p, OW = W + 2 * p;
    for (int q = 0; q < P; q++) {
        float *dx = x->grad + (size_t)q * H * W;
        const float *dy = out->grad + (size_t)q * OH * OW;
        for (int i = 0; i < OH; i++) {
            float *drow = dx + (size_t)reflect(i - p, H) * W;
            const float *g = dy + (size_t)i * OW;
            for (int j = 0; j < OW; j++) drow[reflect(j - p, W)] += g[j];
        }
    }
}

eng_var *eng_t_reflect_pad2d(eng_tape *t, eng_var *x, int p) {
    assert(x->ndim == 4 && p >= 0 && p < x->shape[2] && p < x->shape[3]);
    int P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int OH = H + 2 * p, OW = W + 2 * p;
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, 4, (int[]){x->shape[0], x->shape[1], OH, OW}, rec);
    for (int q = 0; q < P; q++) {
        const float *src = x->val + (size_t)q * H * W;
        float *dst = out->val + (size_t)q * OH * OW;
        for (int i = 0; i < OH; i++) {
            const float *row = src + (size_t)reflect(i - p, H) * W;
            float *o = dst + (size_t)i * OW;
            for (int j = 0; j < p; j++) o[j] = row[p - j];                    // left mirror
            for (int j = 0; j < W; j++) o[p + j] = row[j];                    // interior
            for (int j = 0; j < p; j++) o[p + W + j] = row[W - 2 - j];        // right mirror
        }
    }
    return rec ? record1(t, out, reflect_back, x, p) : out;
}

// ---------------------------------------------------------------- instance norm
typedef struct { eng_var *x, *w, *b; float *mean, *rstd; } inorm_ctx;

static void inorm_back(void *vc, eng_var *out) {
    inorm_ctx *c = vc;
    eng_var *x = c->x;
    int B = x->shape[0], C = x->shape[1];
    size_t N = (size_t)x->shape[2] * x->shape[3];
    for (int bi = 0; bi < B; bi++)
        for (int ch = 0; ch < C; ch++) {
            size_t q = (size_t)bi * C + ch;
            const float *xv = x->val + q * N, *g = out->grad + q * N;
            float mean = c->mean[q], rstd = c->rstd[q], w = c->w ? c->w->val[ch] : 1.0f;
            // sums in double: planes can be large (256x256) and the two sums cancel
            double sg = 0, sgx = 0;   // sum g, sum g * xhat
            for (size_t i = 0; i < N; i++) {
                sg += g[i];
                sgx += (double)g[i] * ((xv[i] - mean) * rstd);
            }
            if (c->w && c->w->grad) c->w->grad[ch] += (float)sgx;
            if (c->b && c->b->grad) c->b->grad[ch] += (float)sg;
            if (x->grad) {
                // dx = w*rstd * (g - mean(g) - xhat * mean(g*xhat))
                float *dx = x->grad + q * N;
                float mg = (float)(sg / N), mgx = (float)(sgx / N), s = w * rstd;
                for (size_t i = 0; i < N; i++) dx[i] += s * (g[i] - mg - (xv[i] - mean) * rstd * mgx);
            }
        }
}

eng_var *eng_t_instance_norm(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, float eps) {
    assert(x->ndim == 4);
    int B = x->shape[0], C = x->shape[1];
    assert((!w || (int)w->n == C) && (!b || (int)b->n == C));
    size_t N = (size_t)x->shape[2] * x->shape[3];
    int rec = wants_grad(t, x, w, b);
    eng_var *out = new_var(t, 4, x->shape, rec);
    float *mean = eng_arena_alloc(&t->arena, (size_t)B * C * sizeof(float));
    float *rstd = eng_arena_alloc(&t->arena, (size_t)B * C * sizeof(float));
    for (int bi = 0; bi < B; bi++)
        for (int ch = 0; ch < C; ch++) {
            size_t q = (size_t)bi * C + ch;
            const float *xv = x->val + q * N;
            double s = 0, ss = 0;   // two-pass in double: exact enough for any plane size
            for (size_t i = 0; i < N; i++) s += xv[i];
            double m = s / N;
            for (size_t i = 0; i < N; i++) ss += (xv[i] - m) * (xv[i] - m);
            mean[q] = (float)m;
            rstd[q] = (float)(1.0 / sqrt(ss / N + eps));
            float sc = (w ? w->val[ch] : 1.0f) * rstd[q], sh = b ? b->val[ch] : 0.0f;
            float *o = out->val + q * N;
            for (size_t i = 0; i < N; i++) o[i] = (xv[i] - mean[q]) * sc + sh;
        }
    if (rec) {
        inorm_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->x = x; c->w = w; c->b = b; c->mean = mean; c->rstd = rstd;
        eng__tape_record(t, out, inorm_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- nearest upsampling
static void upsample_back(void *vc, eng_var *out) {
    img_ctx *c = vc;
    eng_var *x = c->x;
    int s = c->k, P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int OW = W * s;
    for (int q = 0; q < P; q++)
        for (int i = 0; i < H * s; i++) {
            float *dx = x->grad + ((size_t)q * H + i / s) * W;
            const float *g = out->grad + ((size_t)q * H * s + i) * OW;
            for (int j = 0; j < OW; j++) dx[j / s] += g[j];
        }
}

eng_var *eng_t_upsample_nearest(eng_tape *t, eng_var *x, int s) {
    assert(x->ndim == 4 && s >= 1);
    int P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    int OW = W * s;
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, 4, (int[]){x->shape[0], x->shape[1], H * s, OW}, rec);
    for (int q = 0; q < P; q++)
        for (int i = 0; i < H * s; i++) {
            const float *row = x->val + ((size_t)q * H + i / s) * W;
            float *o = out->val + ((size_t)q * H * s + i) * OW;
            for (int j = 0; j < OW; j++) o[j] = row[j / s];
        }
    return rec ? record1(t, out, upsample_back, x, s) : out;
}

// ---------------------------------------------------------------- Gram matrix
typedef struct { eng_var *x; float *sym; } gram_ctx;   // sym: [C*C] scratch for the backward

static void gram_back(void *vc, eng_var *out) {
    gram_ctx *c = vc;
    eng_var *x = c->x;
    int B = x->shape[0], C = x->shape[1];
    size_t N = (size_t)x->shape[2] * x->shape[3];
    float scale = 1.0f / (float)((double)C * N);
    for (int bi = 0; bi < B; bi++) {
        const float *F = x->val + (size_t)bi * C * N;
        const float *dG = out->grad + (size_t)bi * C * C;
        // dF += S F with S = (dG + dG^T) / (C*N): one sgemm (the loss network
        // runs this at full resolution every step)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) c->sym[(size_t)i * C + j] = (dG[(size_t)i * C + j] + dG[(size_t)j * C + i]) * scale;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, (int)N, C, 1.0f, c->sym, C, F, (int)N, 1.0f,
                    x->grad + (size_t)bi * C * N, (int)N);
    }
}

eng_var *eng_t_gram(eng_tape *t, eng_var *x) {
    assert(x->ndim == 4);
    int B = x->shape[0], C = x->shape[1];
    size_t N = (size_t)x->shape[2] * x->shape[3];
    int rec = wants_grad(t, x, NULL, NULL);
    eng_var *out = new_var(t, 3, (int[]){B, C, C}, rec);
    float scale = 1.0f / (float)((double)C * N);
    for (int bi = 0; bi < B; bi++) {
        const float *F = x->val + (size_t)bi * C * N;
        float *G = out->val + (size_t)bi * C * C;
        eng_matmul_nt(G, F, F, C, C, (int)N, 0);   // F F^T
        for (int i = 0; i < C * C; i++) G[i] *= scale;
    }
    if (rec) {
        gram_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->x = x;
        c->sym = eng_arena_alloc(&t->arena, (size_t)C * C * sizeof(float));
        eng__tape_record(t, out, gram_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- mean squared error
typedef struct { eng_var *a, *b; } mse_ctx;

static void mse_back(void *vc, eng_var *out) {
    mse_ctx *c = vc;
    size_t n = c->a->n;
    float k = 2.0f * out->grad[0] / (float)n;
    for (size_t i = 0; i < n; i++) {
        float d = k * (c->a->val[i] - c->b->val[i]);
        if (c->a->grad) c->a->grad[i] += d;
        if (c->b->grad) c->b->grad[i] -= d;
    }
}

eng_var *eng_t_mse(eng_tape *t, eng_var *a, eng_var *b) {
    assert(a->n == b->n && a->n > 0);
    int rec = wants_grad(t, a, b, NULL);
    eng_var *out = new_var(t, 1, (int[]){1}, rec);
    double s = 0;   // double: the loss sums up to a few million squares
    for (size_t i = 0; i < a->n; i++) {
        double d = (double)a->val[i] - b->val[i];
        s += d * d;
    }
    out->val[0] = (float)(s / a->n);
    if (rec) {
        mse_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->a = a; c->b = b;
        eng__tape_record(t, out, mse_back, c);
    }
    return out;
}
