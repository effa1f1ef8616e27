// ops_par.c — linear layers split by output columns across the compute pool
// (see ops_par.h).
#include "engine/core/ops_par.h"

#include <pthread.h>            // pthread_once, thread-specific buffer
#include <stdlib.h>             // free
#include <string.h>             // memcpy
#include "engine/core/ops.h"    // eng_matmul_nt_rowwise
#include "engine/core/pool.h"   // eng_pool_for, eng_pool_width
#include "engine/core/util.h"   // eng_aligned

enum {
    PAR_TASKS_PER_THREAD = 4,   // a few ranges per thread: a thread slowed by other work takes fewer
    PAR_ALIGN = 16,             // range boundaries on multiples of 16 columns (one cache line of out)
};

// ---------------------------------------------------------------- the column-range kernel
// out[i*ldo + j] (+)= dot(A row i, B row j) for j in [j0, j1), i < M, every
// element summed in eng_matmul_nt_rowwise's fixed order. A one-row call
// writes in place; more rows go through a per-thread buffer, as
// eng_matmul_nt_rowwise writes rows of stride N (its column count).
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
typedef struct { float *p; size_t cap; } tbuf;

static void tbuf_free(void *v) {
    tbuf *b = v;
    free(b->p);
    free(b);
}

static void buf_key_make(void) { (void)pthread_key_create(&buf_key, tbuf_free); }

static float *thread_buf(size_t n) {
    pthread_once(&buf_once, buf_key_make);
    tbuf *b = pthread_getspecific(buf_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(buf_key, b) != 0) { free(b); return NULL; }
    }
    if (n > b->cap) {
        free(b->p);
        b->p = eng_aligned(n * sizeof(float));
        b->cap = b->p ? n : 0;
    }
    return b->p;
}

static void gemm_cols(float *out, size_t ldo, const float *A, const float *B, int M, int K, int j0, int j1,
                      int accumulate) {
    int n = j1 - j0;
    const float *Bj = B + (size_t)j0 * K;
    float *tmp = M > 1 ? thread_buf((size_t)M * n) : NULL;
    if (!tmp) {   // one row (or no buffer): row by row, in place
        for (int i = 0; i < M; i++) eng_matmul_nt_rowwise(out + (size_t)i * ldo + j0, A + (size_t)i * K, Bj, 1, n, K, accumulate);
        return;
    }
    eng_matmul_nt_rowwise(tmp, A, Bj, M, n, K, 0);
    for (int i = 0; i < M; i++) {
        float *o = out + (size_t)i * ldo + j0;
        const float *t = tmp + (size_t)i * n;
        if (accumulate) for (int j = 0; j < n; j++) o[j] += t[j];
        else memcpy(o, t, (size_t)n * sizeof(float));
    }
}

// ---------------------------------------------------------------- the split
typedef struct {
    const eng_par_lin *lins;
    int n_lins;
    const float *in;
    int N, C;
    long total;      // columns of all layers
    int n_tasks;
} lin_job;

// Columns [c0, c1) of the concatenated layers: the part of each layer they cover.
static void lin_range(const lin_job *J, long c0, long c1) {
    long base = 0;
    for (int l = 0; l < J->n_lins && base < c1; base += J->lins[l].OC, l++) {
        const eng_par_lin *L = &J->lins[l];
        long lo = c0 > base ? c0 - base : 0, hi = c1 - base < L->OC ? c1 - base : L->OC;
        if (lo >= hi) continue;
        if (L->b)
            for (int i = 0; i < J->N; i++)
                memcpy(L->out + (size_t)i * L->OC + lo, L->b + lo, (size_t)(hi - lo) * sizeof(float));
        gemm_cols(L->out, (size_t)L->OC, J->in, L->w, J->N, J->C, (int)lo, (int)hi, L->b != NULL);
    }
}

// Task t's columns: an equal share rounded to PAR_ALIGN (the last takes the rest).
static void lin_task(void *ctx, int t) {
    const lin_job *J = ctx;
    long per = (J->total + J->n_tasks - 1) / J->n_tasks;
    per = (per + PAR_ALIGN - 1) / PAR_ALIGN * PAR_ALIGN;
    long c0 = (long)t * per, c1 = c0 + per < J->total ? c0 + per : J->total;
    if (c0 < c1) lin_range(J, c0, c1);
}

void eng_par_linears(const eng_par_lin *lins, int n, const float *in, int N, int C) {
    if (n <= 0 || N <= 0) return;
    lin_job J = {.lins = lins, .n_lins = n, .in = in, .N = N, .C = C};
    for (int l = 0; l < n; l++) J.total += lins[l].OC;
    int width = eng_pool_width(2.0 * N * C * (double)J.total);
    long max_tasks = (J.total + PAR_ALIGN - 1) / PAR_ALIGN;
    long tasks = width > 1 ? (long)width * PAR_TASKS_PER_THREAD : 1;
    J.n_tasks = (int)(tasks < max_tasks ? tasks : max_tasks);
    if (J.n_tasks < 1) J.n_tasks = 1;
    eng_pool_for(J.n_tasks, lin_task, &J);
}

void eng_par_linear(float *out, const float *in, const float *w, const float *b, int N, int C, int OC) {
    eng_par_lin l = {.out = out, .w = w, .b = b, .OC = OC};
    eng_par_linears(&l, 1, in, N, C);
}
