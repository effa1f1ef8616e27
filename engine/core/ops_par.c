// ops_par.c — linear layers split by output columns across the compute pool
// (see ops_par.h).
#include "engine/core/ops_par.h"

#include <string.h>             // memcpy
#include "engine/core/gemm.h"   // eng_gemm_nt (column ranges give the same bits)
#include "engine/core/pool.h"   // eng_pool_for, eng_pool_width
#include "engine/core/ops.h"    // eng_gelu_forward
#include "engine/core/ops_seq.h"   // eng_swiglu_forward

enum {
    PAR_TASKS_PER_THREAD = 4,   // a few ranges per thread: a thread slowed by other work takes fewer
    PAR_ALIGN = 16,             // range boundaries on multiples of 16 columns (one cache line of out)
};

// ---------------------------------------------------------------- the split
typedef struct {
    const eng_par_lin *lins;
    int n_lins;
    const float *in;
    const eng_q8_rows *qin;   // the input quantized, for layers with int8 weights
    int N, C;
    long total;      // columns of all layers (paired: of each)
    int n_tasks;
    int paired;      // eng_par_swiglu: lins[0] (gate) and lins[1] (up) split by the same ranges
} lin_job;

// Applies layer L's activation to its columns [lo, hi) of every row (just
// computed by this task, still in cache).
static void lin_act(const eng_par_lin *L, int N, long lo, long hi) {
    if (L->act != ENG_PAR_ACT_GELU) return;
    for (int i = 0; i < N; i++) eng_gelu_forward(L->out + (size_t)i * L->OC + lo, L->out + (size_t)i * L->OC + lo, (size_t)(hi - lo));
}

// Columns [lo, hi) of one layer for all rows.
static void lin_cols(const lin_job *J, const eng_par_lin *L, long lo, long hi) {
    if (L->b)
        for (int i = 0; i < J->N; i++)
            memcpy(L->out + (size_t)i * L->OC + lo, L->b + lo, (size_t)(hi - lo) * sizeof(float));
    if (L->q8) {
        eng_q8_matrix blk = eng_q8_matrix_rows(L->q8, (int)lo, (int)(hi - lo));
        eng_gemm_q8_nt(L->out + lo, L->OC, J->qin, &blk, J->N, (int)(hi - lo), L->b != NULL);
    } else {
        eng_gemm_nt(L->out + lo, (size_t)L->OC, J->in, (size_t)J->C, L->w + (size_t)lo * J->C, (size_t)J->C, J->N,
                    (int)(hi - lo), J->C, L->b != NULL);
    }
    lin_act(L, J->N, lo, hi);
}

// Columns [c0, c1) of the concatenated layers: the part of each layer they cover.
static void lin_range(const lin_job *J, long c0, long c1) {
    long base = 0;
    for (int l = 0; l < J->n_lins && base < c1; base += J->lins[l].OC, l++) {
        const eng_par_lin *L = &J->lins[l];
        long lo = c0 > base ? c0 - base : 0, hi = c1 - base < L->OC ? c1 - base : L->OC;
        if (lo < hi) lin_cols(J, L, lo, hi);
    }
}

// eng_par_swiglu's range: the gate's and the up projection's columns [c0, c1),
// then out = silu(gate) * up on them.
static void swiglu_range(const lin_job *J, long c0, long c1) {
    const eng_par_lin *G = &J->lins[0], *U = &J->lins[1];
    lin_cols(J, G, c0, c1);
    lin_cols(J, U, c0, c1);
    for (int i = 0; i < J->N; i++) {
        size_t o = (size_t)i * G->OC + (size_t)c0;
        eng_swiglu_forward(G->out + o, G->out + o, U->out + o, (size_t)(c1 - c0));
    }
}

// Task t's columns: an equal share rounded to PAR_ALIGN (the last takes the rest).
static void lin_task(void *ctx, int t) {
    const lin_job *J = ctx;
    long per = (J->total + J->n_tasks - 1) / J->n_tasks;
    per = (per + PAR_ALIGN - 1) / PAR_ALIGN * PAR_ALIGN;
    long c0 = (long)t * per, c1 = c0 + per < J->total ? c0 + per : J->total;
    if (c0 >= c1) return;
    if (J->paired) swiglu_range(J, c0, c1);
    else lin_range(J, c0, c1);
}

// The split shared by both entry points: tasks worth the op's FLOPs.
static void lin_run(lin_job *J, double flops) {
    int width = eng_pool_width(flops);
    long max_tasks = (J->total + PAR_ALIGN - 1) / PAR_ALIGN;
    long tasks = width > 1 ? (long)width * PAR_TASKS_PER_THREAD : 1;
    J->n_tasks = (int)(tasks < max_tasks ? tasks : max_tasks);
    if (J->n_tasks < 1) J->n_tasks = 1;
    eng_pool_for(J->n_tasks, lin_task, J);
}

void eng_par_linears(const eng_par_lin *lins, int n, const float *in, int N, int C) {
    eng_par_linears_q8(lins, n, in, NULL, N, C);
}

void eng_par_linears_q8(const eng_par_lin *lins, int n, const float *in, const eng_q8_rows *qin, int N, int C) {
    if (n <= 0 || N <= 0) return;
    lin_job J = {.lins = lins, .n_lins = n, .in = in, .qin = qin, .N = N, .C = C};
    for (int l = 0; l < n; l++) J.total += lins[l].OC;
    lin_run(&J, 2.0 * N * C * (double)J.total);
}

void eng_par_swiglu(const eng_par_lin *gate, const eng_par_lin *up, const float *in, const eng_q8_rows *qin, int N,
                    int C) {
    if (N <= 0) return;
    eng_par_lin lins[2] = {*gate, *up};
    lins[0].act = lins[1].act = ENG_PAR_ACT_NONE;
    lin_job J = {.lins = lins, .n_lins = 2, .in = in, .qin = qin, .N = N, .C = C, .total = gate->OC, .paired = 1};
    lin_run(&J, 4.0 * N * C * (double)gate->OC);
}

void eng_par_linear(float *out, const float *in, const float *w, const float *b, int N, int C, int OC) {
    eng_par_lin l = {.out = out, .w = w, .b = b, .OC = OC};
    eng_par_linears(&l, 1, in, N, C);
}
