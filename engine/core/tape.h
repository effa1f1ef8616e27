// tape.h — the autograd tape: architectures write their training forward
// ONCE against these functions. The CNN also serves through it (grad off);
// the language models serve through their own batched step (engine/arch/lm.h:
// KV caches, stacked rows) over the same kernels, and use the tape only for
// training and for its arena (a worker's scratch memory).
//
// Each eng_t_* call runs an op's forward (engine/core/ops.h) on eng_vars and, when
// the tape has grad enabled, records an entry whose backward is replayed in
// reverse order by eng_tape_backward (the way micrograd and ggml do it).
// Inference uses a tape with grad disabled: nothing is recorded, no gradient
// buffers exist, and every activation comes from the tape's arena, so after
// the first batch of the largest size the forward pass does not malloc.
//
// Ownership: vars made by eng_t_* live in the arena until eng_tape_reset.
// Parameter vars (eng_var_param) are owned by the model and point at its
// weights (read-only mmapped weights for serving, owned buffers for training).
#ifndef ENG_TAPE_H
#define ENG_TAPE_H
#include <stddef.h>       // size_t
#include "engine/core/arena.h" // eng_arena

#define ENG_VAR_MAX_DIMS 4

typedef struct {
    float *val;                    // [n] values
    float *grad;                   // [n] accumulated dL/dval, or NULL (no grad needed)
    int ndim;                      // 1..4
    int shape[ENG_VAR_MAX_DIMS];   // outermost first; images are [B, C, H, W]
    size_t n;                      // product of shape
} eng_var;

typedef struct eng_tape_entry eng_tape_entry;

typedef struct {
    eng_arena arena;          // activations, grads, op caches
    int grad_enabled;         // 1: record entries and allocate grads (training)
    int training;             // 1: batch norm uses batch statistics and updates running stats
    eng_tape_entry *entries;  // [n_entries] recorded ops, in forward order
    int n_entries, cap_entries;
} eng_tape;

void eng_tape_init(eng_tape *t, int grad_enabled, int training);
// Forgets every var and entry made since the last reset (keeps the memory).
void eng_tape_reset(eng_tape *t);
void eng_tape_free(eng_tape *t);
// Seeds d(loss)/d(loss) = 1 and runs every recorded backward in reverse order.
// `loss` must be a 1-element var produced on this tape.
void eng_tape_backward(eng_tape *t, eng_var *loss);

// A var of the given shape whose values (and grads, if the tape records)
// come from the arena. Values are uninitialised.
eng_var *eng_tape_var(eng_tape *t, int ndim, const int *shape);
// A var wrapping caller memory (e.g. an input batch), no grad.
eng_var *eng_tape_wrap(eng_tape *t, float *data, int ndim, const int *shape);
// Fills a model-owned parameter var; grad may be NULL (serving).
void eng_var_param(eng_var *v, float *val, float *grad, int ndim, const int *shape);

// ---------------------------------------------------------------- ops (see engine/core/ops.h for semantics)
// x[B,C,H,W], w[OC,C,K,K], b[OC] or NULL -> [B,OC,OH,OW]
eng_var *eng_t_conv2d(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, int stride, int pad);
// x[B,C,H,W], w[C,OC,K,K] (PyTorch's ConvTranspose2d layout), b[OC] or NULL -> [B,OC,(H-1)*stride-2*pad+K, ...]
eng_var *eng_t_conv_transpose2d(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, int stride, int pad);
// x[N,C] (or any shape whose last dim is C), w[OC,C], b[OC] or NULL -> [N,OC]
eng_var *eng_t_linear(eng_tape *t, eng_var *x, eng_var *w, eng_var *b);
eng_var *eng_t_relu(eng_tape *t, eng_var *x);
eng_var *eng_t_gelu(eng_tape *t, eng_var *x);
eng_var *eng_t_tanh(eng_tape *t, eng_var *x);
eng_var *eng_t_sigmoid(eng_tape *t, eng_var *x);
eng_var *eng_t_leaky_relu(eng_tape *t, eng_var *x, float slope);   // x > 0 ? x : slope*x
// x[B,C,H,W] -> [B,C,(H-K)/S+1,(W-K)/S+1]
eng_var *eng_t_maxpool2d(eng_tape *t, eng_var *x, int k, int s);
eng_var *eng_t_avgpool2d(eng_tape *t, eng_var *x, int k, int s);
// x[B,C,H,W] -> [B,C]
eng_var *eng_t_global_avgpool(eng_tape *t, eng_var *x);
// Batch norm over channels of x[B,C,H,W] (or x[N,C]); running stats are
// updated in training mode and used in inference mode.
eng_var *eng_t_batchnorm(eng_tape *t, eng_var *x, eng_var *gamma, eng_var *beta,
                         float *running_mean, float *running_var, float momentum, float eps);
// Reshape [B, ...] -> [B, rest] sharing values and grads (no copy, no entry).
eng_var *eng_t_flatten(eng_tape *t, eng_var *x);
// Row-wise softmax of x[N,C] (inference only: no backward).
eng_var *eng_t_softmax(eng_tape *t, eng_var *x);
// Mean cross-entropy of logits[N,C] against targets[N] (copied) -> [1].
eng_var *eng_t_cross_entropy(eng_tape *t, eng_var *logits, const int *targets);

// ---------------------------------------------------------------- ops recorded from other files
// For eng_t_* wrappers defined outside tape.c (engine/core/tape_seq.c): records an
// entry whose backward calls back(ctx, out) when `out` has a gradient. ctx
// must live until the tape is reset (allocate it from t->arena). Call only
// when t->grad_enabled.
typedef void (*eng__tape_back_fn)(void *ctx, eng_var *out);
void eng__tape_record(eng_tape *t, eng_var *out, eng__tape_back_fn back, void *ctx);

#endif
