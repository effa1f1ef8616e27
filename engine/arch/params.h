// params.h — the parameter table every architecture keeps: named tensors
// (checkpoint names and shapes) whose values are either read-only views of a
// mapped checkpoint (serving) or slices of one owned arena (training, or a
// converted copy), with gradients in a twin arena. Each architecture's tensor
// type starts with ENG_PARAM_HEAD (its own fields follow: init kind, views),
// so these functions walk any architecture's table; the architecture binds
// its named eng_var views afterwards.
#ifndef ENG_PARAMS_H
#define ENG_PARAMS_H
#include <stddef.h>     // size_t

#define ENG_PARAM_FIELDS                                                          \
    char name[80];   /* checkpoint name, e.g. "h.0.attn.c_attn.weight" */         \
    int ndim;        /* 1..4 (4: convolution kernels) */                          \
    int shape[4];    /* our layout: a matrix is [out, in] (y = x W^T) */          \
    size_t n;        /* elements */                                               \
    float *val;      /* [n] mapped or owned values, or NULL */                    \
    float *grad;     /* [n] gradient, or NULL */

typedef struct { ENG_PARAM_FIELDS } eng_param;

// First member of an architecture's tensor type: t->name, t->val, ... and
// t->param (the common part as one eng_param).
#define ENG_PARAM_HEAD union { eng_param param; struct { ENG_PARAM_FIELDS }; }

// A view of an architecture's tensor array: entries of `stride` bytes.
typedef struct {
    void *first;
    size_t stride;
    int n;
} eng_param_table;
#define ENG_PARAM_TABLE(array, count) ((eng_param_table){(array), sizeof *(array), (count)})

static inline eng_param *eng_param_at(eng_param_table t, int i) {
    return (eng_param *)((char *)t.first + (size_t)i * t.stride);
}

// Points each tensor's values (grads = 0) or gradients (grads = 1) at
// consecutive slices of base, in table order.
void eng_params_carve(eng_param_table t, float *base, int grads);
// Forgets every tensor's values (what backed them was released).
void eng_params_clear_values(eng_param_table t);
// A zeroed, aligned gradient arena of n_params floats, carved into the table.
float *eng_params_new_grads(eng_param_table t, size_t n_params);
// One aligned arena holding a copy of every tensor's values, in table order.
// `copy` (may be NULL: memcpy) writes tensor i's values converted to our layout.
float *eng_params_gather(eng_param_table t, size_t n_params,
                         void (*copy)(void *ctx, int i, float *dst, const eng_param *p), void *ctx);
// Writes the table as a safetensors file (metadata format=pt). `export` (may
// be NULL) returns a malloc'd copy of tensor i in the file's layout, setting
// shape[] if it differs, or NULL to write the values as they are.
int eng_params_save(eng_param_table t, const char *path,
                    float *(*export)(void *ctx, int i, const eng_param *p, int shape[2]), void *ctx, char **err);

#endif
