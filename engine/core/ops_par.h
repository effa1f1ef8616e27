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

// One linear layer of a group sharing the same input: out[N, OC] = in W^T (+ b).
typedef struct {
    float *out;
    const float *w;   // [OC, C]
    const float *b;   // [OC] or NULL
    int OC;
} eng_par_lin;

// Runs n linear layers over the same in[N, C] in one parallel-for (one
// barrier): the columns of all of them are cut as one range (q/k/v
// projections, llama's gate and up). Same values as
// eng_linear_forward_rowwise on each.
void eng_par_linears(const eng_par_lin *lins, int n, const float *in, int N, int C);
// One layer: eng_linear_forward_rowwise's contract, split across the pool.
void eng_par_linear(float *out, const float *in, const float *w, const float *b, int N, int C, int OC);

#endif
