// params.c — parameter tables shared by the architectures (see params.h).
#include "engine/arch/params.h"
#include <stdlib.h>              // free
#include <string.h>              // memcpy, memset
#include "engine/core/util.h"    // eng_xaligned, eng_xcalloc
#include "engine/io/safetensors.h"  // eng_st_write

void eng_params_carve(eng_param_table t, float *base, int grads) {
    size_t off = 0;
    for (int i = 0; i < t.n; i++) {
        eng_param *p = eng_param_at(t, i);
        if (grads) p->grad = base + off;
        else p->val = base + off;
        off += p->n;
    }
}

void eng_params_clear_values(eng_param_table t) {
    for (int i = 0; i < t.n; i++) eng_param_at(t, i)->val = NULL;
}

float *eng_params_new_grads(eng_param_table t, size_t n_params) {
    float *g = eng_xaligned(n_params * sizeof(float));
    memset(g, 0, n_params * sizeof(float));
    eng_params_carve(t, g, 1);
    return g;
}

float *eng_params_gather(eng_param_table t, size_t n_params,
                         void (*copy)(void *ctx, int i, float *dst, const eng_param *p), void *ctx) {
    float *all = eng_xaligned(n_params * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < t.n; i++) {
        const eng_param *p = eng_param_at(t, i);
        if (copy) copy(ctx, i, all + off, p);
        else memcpy(all + off, p->val, p->n * sizeof(float));
        off += p->n;
    }
    return all;
}

int eng_params_save(eng_param_table t, const char *path,
                    float *(*export)(void *ctx, int i, const eng_param *p, int shape[2]), void *ctx, char **err) {
    eng_st_entry *e = eng_xcalloc((size_t)t.n, sizeof *e);
    float **tmp = eng_xcalloc((size_t)t.n, sizeof *tmp);
    for (int i = 0; i < t.n; i++) {
        const eng_param *p = eng_param_at(t, i);
        int shape[2] = {p->shape[0], p->shape[1]};
        tmp[i] = export ? export(ctx, i, p, shape) : NULL;
        e[i].name = p->name;
        e[i].ndim = p->ndim;
        e[i].shape[0] = shape[0];
        e[i].shape[1] = shape[1];
        for (int d = 2; d < p->ndim; d++) e[i].shape[d] = p->shape[d];   // kernels: as they are
        e[i].data = tmp[i] ? tmp[i] : p->val;
    }
    const char *meta[] = {"format", "pt", NULL};
    int rc = eng_st_write(path, e, t.n, meta, err);
    for (int i = 0; i < t.n; i++) free(tmp[i]);
    free(tmp);
    free(e);
    return rc;
}
