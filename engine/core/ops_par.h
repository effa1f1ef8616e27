// ops_par.h — serving operators split across the compute pool
// (engine/core/pool.h): linear layers by output columns, so one model step
// uses every core, with results bit-identical whatever the split.
//
// A linear layer y[N, OC] = x[N, C] W[OC, C]^T + b is cut into contiguous
// column ranges (weight rows), a few per pool thread; each range is one
// task computing its columns for all N rows, so every weight byte is read
// once, by one thread, front to back. Each output element is one dot product
// whose reduction order does not depend on N or on the range it falls in
// (the batch-invariant kernel), so the bits never depend on how many
// threads ran or on what else shares the step. Ops below eng_pool_width's
// FLOP threshold run inline on the caller.
#ifndef ENG_OPS_PAR_H
#define ENG_OPS_PAR_H

#include "engine/core/gemm_q8.h"   // eng_q8_matrix, eng_q8_rows (int8 weights)

// An activation a task applies to the columns it has just computed (while
// they are in cache, and in parallel): the same values as applying it after.
typedef enum { ENG_PAR_ACT_NONE, ENG_PAR_ACT_GELU } eng_par_act;

// One linear layer of a group sharing the same input: out[N, OC] = act(in W^T (+ b)).
typedef struct {
    float *out;
    const float *w;   // [OC, C]
    const float *b;   // [OC] or NULL
    int OC;
    const eng_q8_matrix *q8;   // int8 weights [OC, C] used instead of w (eng_par_linears_q8), or NULL
    eng_par_act act;           // applied to out (eng_gelu_forward), or NONE
} eng_par_lin;

// Runs n linear layers over the same in[N, C] in one parallel-for (one
// barrier): the columns of all of them are cut as one range (q/k/v
// projections, llama's gate and up). Same values as
// eng_linear_forward_rowwise on each.
void eng_par_linears(const eng_par_lin *lins, int n, const float *in, int N, int C);
// The same where some layers have int8 weights (q8 set): those read qin,
// the input quantized by eng_q8_quantize_rows (gemm_q8.h), through
// eng_gemm_q8_nt, whose column blocks give the same bits too; the others
// read in. qin may be NULL when no layer has q8.
void eng_par_linears_q8(const eng_par_lin *lins, int n, const float *in, const eng_q8_rows *qin, int N, int C);
// Llama's gated MLP input: gate->out = silu(in Wg^T) * (in Wu^T), [N, OC]
// (gate and up have the same OC; up->out is scratch). Gate and up are cut
// by the same column ranges, so a task takes the product of the columns it
// has just computed: eng_swiglu_forward's values, without a serial pass.
void eng_par_swiglu(const eng_par_lin *gate, const eng_par_lin *up, const float *in, const eng_q8_rows *qin, int N,
                    int C);
// One layer: eng_linear_forward_rowwise's contract, split across the pool.
void eng_par_linear(float *out, const float *in, const float *w, const float *b, int N, int C, int OC);

#endif
