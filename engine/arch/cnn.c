// cnn.c — layer-list CNN classifiers (see cnn.h).
#include "engine/arch/cnn.h"
#include <math.h>          // sqrtf
#include <stdio.h>         // snprintf
#include <stdlib.h>        // malloc, free
#include <string.h>        // strcmp, memset, memcpy
#include "engine/core/conv_batch.h"   // eng_conv2d_batch, eng_bn_fold (serving)
#include "engine/core/rng.h"    // eng_rng for init
#include "engine/core/util.h"   // eng_errorf, eng_xmalloc

// Layer type names as they appear in config.json; indexed by eng_cnn_layer_type.
static const char *const layer_names[] = {
    [ENG_CNN_CONV2D] = "conv2d",       [ENG_CNN_BATCHNORM] = "batchnorm",
    [ENG_CNN_RELU] = "relu",           [ENG_CNN_GELU] = "gelu",
    [ENG_CNN_TANH] = "tanh",           [ENG_CNN_SIGMOID] = "sigmoid",
    [ENG_CNN_MAXPOOL2D] = "maxpool2d", [ENG_CNN_AVGPOOL2D] = "avgpool2d",
    [ENG_CNN_GLOBAL_AVGPOOL] = "global_avgpool", [ENG_CNN_FLATTEN] = "flatten",
    [ENG_CNN_LINEAR] = "linear",
};
_Static_assert(sizeof layer_names / sizeof layer_names[0] == ENG_CNN__COUNT, "layer_names out of step");

// Reads an optional positive integer field; returns def when absent, -1 when invalid.
static int int_field(const json_t *o, const char *key, int def, int min, int max) {
    const json_t *v = json_object_get(o, key);
    if (!v) return def;
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return (x < min || x > max) ? -1 : (int)x;
}

int eng_cnn_init(eng_cnn *m, const json_t *config, char **err) {
    memset(m, 0, sizeof *m);
    const json_t *in = json_object_get(config, "input");
    const json_t *layers = json_object_get(config, "layers");
    if (!json_is_object(in)) return eng_errorf(err, "config: \"input\" must be an object");
    if (!json_is_array(layers) || json_array_size(layers) == 0 || json_array_size(layers) > 256)
        return eng_errorf(err, "config: \"layers\" must be a non-empty array (at most 256)");
    m->in_c = int_field(in, "channels", -1, 1, 3);
    m->in_h = int_field(in, "height", -1, 1, 4096);
    m->in_w = int_field(in, "width", -1, 1, 4096);
    if (m->in_c < 0 || m->in_h < 0 || m->in_w < 0)
        return eng_errorf(err, "config: input.channels (1 or 3), input.height and input.width (1..4096) are required");

    m->n_layers = (int)json_array_size(layers);
    m->layers = calloc(m->n_layers ? (size_t)m->n_layers : 1, sizeof *m->layers);
    if (!m->layers) return eng_errorf(err, "config: out of memory for %d layers", m->n_layers);
    int c = m->in_c, h = m->in_h, w = m->in_w;   // current shape; h = w = 0 once flat
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        const json_t *spec = json_array_get(layers, (size_t)i);
        const char *type = json_string_value(json_object_get(spec, "type"));
        int t = 0;
        while (t < ENG_CNN__COUNT && (!type || strcmp(type, layer_names[t]) != 0)) t++;
        if (t == ENG_CNN__COUNT) { eng_cnn_free(m); return eng_errorf(err, "config: layers[%d]: unknown or missing \"type\"", i); }
        L->type = (eng_cnn_layer_type)t;
        L->in_shape[0] = c; L->in_shape[1] = h; L->in_shape[2] = w;
        int spatial = h > 0;
        switch (L->type) {
        case ENG_CNN_CONV2D:
            L->out = int_field(spec, "out_channels", -1, 1, 65536);
            L->kernel = int_field(spec, "kernel_size", -1, 1, 64);
            L->stride = int_field(spec, "stride", 1, 1, 64);
            L->pad = int_field(spec, "padding", 0, 0, 64);
            if (L->out < 0 || L->kernel < 0 || L->stride < 0 || L->pad < 0 || !spatial) goto bad;
            h = (h + 2 * L->pad - L->kernel) / L->stride + 1;
            w = (w + 2 * L->pad - L->kernel) / L->stride + 1;
            if (h <= 0 || w <= 0) goto bad;
            c = L->out;
            m->n_params += (size_t)L->out * (size_t)L->in_shape[0] * (size_t)(L->kernel * L->kernel) + (size_t)L->out;
            break;
        case ENG_CNN_MAXPOOL2D: case ENG_CNN_AVGPOOL2D:
            L->kernel = int_field(spec, "kernel_size", -1, 1, 64);
            L->stride = int_field(spec, "stride", L->kernel, 1, 64);
            if (L->kernel < 0 || L->stride < 0 || !spatial || L->kernel > h || L->kernel > w) goto bad;
            h = (h - L->kernel) / L->stride + 1;
            w = (w - L->kernel) / L->stride + 1;
            break;
        case ENG_CNN_BATCHNORM: {
            const json_t *e = json_object_get(spec, "eps"), *mo = json_object_get(spec, "momentum");
            L->eps = e ? (float)json_number_value(e) : 1e-5f;
            L->momentum = mo ? (float)json_number_value(mo) : 0.1f;
            if (!(L->eps > 0) || !(L->momentum >= 0 && L->momentum <= 1)) goto bad;
            m->n_params += 2 * (size_t)c;
            m->n_buffers += 2 * (size_t)c;
            break;
        }
        case ENG_CNN_GLOBAL_AVGPOOL:
            if (!spatial) goto bad;
            h = w = 0;
            break;
        case ENG_CNN_FLATTEN:
            if (spatial) c = c * h * w;
            h = w = 0;
            break;
        case ENG_CNN_LINEAR:
            L->out = int_field(spec, "out_features", -1, 1, 1 << 20);
            if (L->out < 0 || spatial) goto bad;   // needs flat input: add "flatten" first
            m->n_params += (size_t)L->out * (size_t)c + (size_t)L->out;
            c = L->out;
            break;
        default: break;   // elementwise activations keep the shape
        }
        L->out_shape[0] = c; L->out_shape[1] = h; L->out_shape[2] = w;
        continue;
    bad:
        eng_cnn_free(m);
        return eng_errorf(err, "config: layers[%d] (%s): missing/invalid parameters or wrong input shape "
                          "(%s needs %s input)", i, layer_names[t], layer_names[t],
                          (t == ENG_CNN_LINEAR) ? "flat (add \"flatten\")" : "image [C,H,W]");
    }
    if (m->layers[m->n_layers - 1].out_shape[1] != 0)
        { eng_cnn_free(m); return eng_errorf(err, "config: the last layer must produce flat class scores"); }
    m->n_classes = c;
    return 0;
}

void eng_cnn_free(eng_cnn *m) {
    if (!m) return;
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->serve);
    eng_st_close(&m->weights);
    memset(m, 0, sizeof *m);
}

// Visits every tensor in file order: callback gets its name, shape and the
// place where its data pointer lives. `kind` 0 = trainable param, 1 = buffer.
typedef void (*tensor_fn)(void *ctx, const char *name, int ndim, const int *shape, float **slot, int kind);

static void for_each_tensor(eng_cnn *m, tensor_fn fn, void *ctx) {
    char name[64];
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        int C = L->in_shape[0];
        if (L->type == ENG_CNN_CONV2D) {
            snprintf(name, sizeof name, "layers.%d.weight", i);
            fn(ctx, name, 4, (int[]){L->out, C, L->kernel, L->kernel}, &L->w.val, 0);
            snprintf(name, sizeof name, "layers.%d.bias", i);
            fn(ctx, name, 1, (int[]){L->out}, &L->b.val, 0);
        } else if (L->type == ENG_CNN_LINEAR) {
            snprintf(name, sizeof name, "layers.%d.weight", i);
            fn(ctx, name, 2, (int[]){L->out, C}, &L->w.val, 0);
            snprintf(name, sizeof name, "layers.%d.bias", i);
            fn(ctx, name, 1, (int[]){L->out}, &L->b.val, 0);
        } else if (L->type == ENG_CNN_BATCHNORM) {
            snprintf(name, sizeof name, "layers.%d.weight", i);
            fn(ctx, name, 1, (int[]){C}, &L->w.val, 0);
            snprintf(name, sizeof name, "layers.%d.bias", i);
            fn(ctx, name, 1, (int[]){C}, &L->b.val, 0);
            snprintf(name, sizeof name, "layers.%d.running_mean", i);
            fn(ctx, name, 1, (int[]){C}, &L->running_mean, 1);
            snprintf(name, sizeof name, "layers.%d.running_var", i);
            fn(ctx, name, 1, (int[]){C}, &L->running_var, 1);
        }
    }
}

// Sets the shape of the eng_var that owns `slot` (w or b), keeping its val.
static void set_var_shape(eng_cnn *m, float **slot, int ndim, const int *shape) {
    for (int i = 0; i < m->n_layers; i++) {
        eng_var *v = (slot == &m->layers[i].w.val) ? &m->layers[i].w
                   : (slot == &m->layers[i].b.val) ? &m->layers[i].b : NULL;
        if (v) { float *val = *slot; eng_var_param(v, val, v->grad, ndim, shape); return; }
    }
}

// ---- owned parameters: carve the arena in file order
typedef struct { eng_cnn *m; size_t off_p, off_b; } carve_ctx;
static void carve(void *vctx, const char *name, int ndim, const int *shape, float **slot, int kind) {
    carve_ctx *c = vctx;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    // trainable params first (one contiguous block for the optimiser), then buffers
    *slot = kind == 0 ? c->m->params + c->off_p : c->m->params + c->m->n_params + c->off_b;
    if (kind == 0) c->off_p += n; else c->off_b += n;
    if (kind == 0) set_var_shape(c->m, slot, ndim, shape);
    (void)name;
}

static void alloc_owned(eng_cnn *m) {
    free(m->params);
    m->params = eng_xcalloc(m->n_params + m->n_buffers, sizeof(float));
    carve_ctx c = {m, 0, 0};
    for_each_tensor(m, carve, &c);
}

void eng_cnn_init_params(eng_cnn *m, uint64_t seed) {
    alloc_owned(m);
    eng_rng rng;
    eng_rng_seed(&rng, seed);
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->type == ENG_CNN_CONV2D || L->type == ENG_CNN_LINEAR) {
            // PyTorch default: kaiming_uniform(a=sqrt(5)) => U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias alike
            int fan_in = (int)(L->w.n / (size_t)L->out);
            float bound = 1.0f / sqrtf((float)fan_in);
            for (size_t k = 0; k < L->w.n; k++) L->w.val[k] = (2 * eng_rng_uniform(&rng) - 1) * bound;
            for (size_t k = 0; k < L->b.n; k++) L->b.val[k] = (2 * eng_rng_uniform(&rng) - 1) * bound;
        } else if (L->type == ENG_CNN_BATCHNORM) {
            for (size_t k = 0; k < L->w.n; k++) { L->w.val[k] = 1; L->b.val[k] = 0; L->running_var[k] = 1; }
        }
    }
}

void eng_cnn_enable_grads(eng_cnn *m) {
    free(m->grads);
    m->grads = eng_xcalloc(m->n_params, sizeof(float));
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->w.n) L->w.grad = m->grads + (L->w.val - m->params);
        if (L->b.n) L->b.grad = m->grads + (L->b.val - m->params);
    }
}

void eng_cnn_zero_grads(eng_cnn *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

// ---- mapped parameters
typedef struct { eng_cnn *m; char **err; int failed; } load_ctx;
static void bind_mapped(void *vctx, const char *name, int ndim, const int *shape, float **slot, int kind) {
    load_ctx *c = vctx;
    if (c->failed) return;
    int64_t s64[4];
    for (int d = 0; d < ndim; d++) s64[d] = shape[d];
    const float *p = eng_st_get(&c->m->weights, name, ndim, s64, c->err);
    if (!p) { c->failed = 1; return; }
    *slot = (float *)p;   // read-only mapping: serving never writes weights
    if (kind == 0) set_var_shape(c->m, slot, ndim, shape);
}

int eng_cnn_load(eng_cnn *m, const char *path, char **err) {
    if (eng_st_open(&m->weights, path, err) != 0) return -1;
    load_ctx c = {m, err, 0};
    for_each_tensor(m, bind_mapped, &c);
    if (c.failed) { eng_st_close(&m->weights); return -1; }
    return 0;
}

typedef struct { eng_cnn *m; float *dst_p, *dst_b; } copy_ctx;
static void copy_owned(void *vctx, const char *name, int ndim, const int *shape, float **slot, int kind) {
    copy_ctx *c = vctx;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float **dst = kind == 0 ? &c->dst_p : &c->dst_b;
    memcpy(*dst, *slot, n * sizeof(float));
    *slot = *dst;
    *dst += n;
    if (kind == 0) set_var_shape(c->m, slot, ndim, shape);
    (void)name;
}

void eng_cnn_make_owned(eng_cnn *m) {
    if (m->params) return;
    m->params = eng_xcalloc(m->n_params + m->n_buffers, sizeof(float));
    copy_ctx c = {m, m->params, m->params + m->n_params};
    for_each_tensor(m, copy_owned, &c);
    eng_st_close(&m->weights);
}

typedef struct { eng_st_entry *e; int n; } save_ctx;
static void collect(void *vctx, const char *name, int ndim, const int *shape, float **slot, int kind) {
    save_ctx *c = vctx;
    eng_st_entry *e = &c->e[c->n++];
    e->name = strdup(name);
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = *slot;
    (void)kind;
}

int eng_cnn_save(const eng_cnn *m, const char *path, char **err) {
    save_ctx c = {eng_xcalloc((size_t)m->n_layers * 4 + 1, sizeof(eng_st_entry)), 0};
    for_each_tensor((eng_cnn *)m, collect, &c);
    const char *meta[] = {"format", "inferd", "arch", "cnn", NULL};
    int rc = eng_st_write(path, c.e, c.n, meta, err);
    for (int i = 0; i < c.n; i++) free((char *)c.e[i].name);
    free(c.e);
    return rc;
}

// ---------------------------------------------------------------- forward (trains; the serving reference)
// The layers without weights of their own, or batch norm: the same ops in
// both passes.
static eng_var *plain_layer(eng_tape *t, eng_cnn_layer *L, eng_var *x) {
    switch (L->type) {
    case ENG_CNN_BATCHNORM: return eng_t_batchnorm(t, x, &L->w, &L->b, L->running_mean, L->running_var, L->momentum,
                                                   L->eps);
    case ENG_CNN_RELU:      return eng_t_relu(t, x);
    case ENG_CNN_GELU:      return eng_t_gelu(t, x);
    case ENG_CNN_TANH:      return eng_t_tanh(t, x);
    case ENG_CNN_SIGMOID:   return eng_t_sigmoid(t, x);
    case ENG_CNN_MAXPOOL2D: return eng_t_maxpool2d(t, x, L->kernel, L->stride);
    case ENG_CNN_AVGPOOL2D: return eng_t_avgpool2d(t, x, L->kernel, L->stride);
    case ENG_CNN_GLOBAL_AVGPOOL: return eng_t_global_avgpool(t, x);
    case ENG_CNN_FLATTEN:   return eng_t_flatten(t, x);
    default:                return x;   // conv2d and linear: the callers'
    }
}

eng_var *eng_cnn_forward(eng_cnn *m, eng_tape *t, eng_var *x) {
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->type == ENG_CNN_CONV2D) x = eng_t_conv2d(t, x, &L->w, &L->b, L->stride, L->pad);
        else if (L->type == ENG_CNN_LINEAR) x = eng_t_linear(t, x, &L->w, &L->b);
        else x = plain_layer(t, L, x);
    }
    return x;
}

// ---------------------------------------------------------------- serving
int eng_cnn_prepare_serving(eng_cnn *m, char **err) {
    size_t n = 0;   // floats of the folded copies
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        L->fused = L->pool_k = L->pool_s = 0;
        L->act = ENG_CONV_ACT_NONE;
        memcpy(L->serve_shape, L->out_shape, sizeof L->serve_shape);
        if ((L->type == ENG_CNN_CONV2D || L->type == ENG_CNN_LINEAR) && i + 1 < m->n_layers &&
            m->layers[i + 1].type == ENG_CNN_BATCHNORM)
            n += L->w.n + L->b.n + 2 * (size_t)L->out;   // + the fold's scale and shift
    }
    free(m->serve);
    m->serve = NULL;
    if (n && !(m->serve = malloc(n * sizeof(float))))
        return eng_errorf(err, "cnn: out of memory for %zu folded weights", n);
    float *p = m->serve;
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->type != ENG_CNN_CONV2D && L->type != ENG_CNN_LINEAR) continue;
        float *w = L->w.val, *b = L->b.val;
        int j = i + 1;
        if (j < m->n_layers && m->layers[j].type == ENG_CNN_BATCHNORM) {
            // y = (x w^T + b) * scale + shift  =  x (w * scale)^T + (b * scale + shift), per output channel
            eng_cnn_layer *N = &m->layers[j];
            float *scale = p, *shift = p + L->out;
            w = p + 2 * (size_t)L->out;
            b = w + L->w.n;
            p = b + L->b.n;
            eng_bn_fold(scale, shift, N->w.val, N->b.val, N->running_mean, N->running_var, L->out, N->eps);
            size_t row = L->w.n / (size_t)L->out;   // C*K*K (conv) or C (linear)
            for (int o = 0; o < L->out; o++) {
                for (size_t k = 0; k < row; k++) w[(size_t)o * row + k] = L->w.val[(size_t)o * row + k] * scale[o];
                b[o] = L->b.val[o] * scale[o] + shift[o];
            }
            N->fused = 1;
            j++;
        }
        if (L->type == ENG_CNN_CONV2D && j < m->n_layers && m->layers[j].type == ENG_CNN_RELU) {
            L->act = ENG_CONV_ACT_RELU;
            m->layers[j++].fused = 1;
        }
        if (L->type == ENG_CNN_CONV2D && j < m->n_layers && m->layers[j].type == ENG_CNN_MAXPOOL2D) {
            L->pool_k = m->layers[j].kernel;
            L->pool_s = m->layers[j].stride;
            memcpy(L->serve_shape, m->layers[j].out_shape, sizeof L->serve_shape);
            m->layers[j].fused = 1;
        }
        eng_var_param(&L->sw, w, NULL, L->w.ndim, L->w.shape);
        eng_var_param(&L->sb, b, NULL, L->b.ndim, L->b.shape);
    }
    return 0;
}

eng_var *eng_cnn_serve(eng_cnn *m, eng_tape *t, eng_var *x) {
    for (int i = 0; i < m->n_layers; i++) {
        eng_cnn_layer *L = &m->layers[i];
        if (L->fused) continue;
        if (L->type == ENG_CNN_CONV2D) {
            const int B = x->shape[0], C = L->in_shape[0], H = L->in_shape[1], W = L->in_shape[2];
            const int OC = L->out_shape[0], OH = L->serve_shape[1], OW = L->serve_shape[2];
            size_t scratch = eng_conv2d_batch_scratch(B, C, H, W, OC, L->kernel, L->stride, L->pad);
            float *out = eng_arena_alloc(&t->arena, (size_t)B * OC * OH * OW * sizeof(float));
            float *tmp = eng_arena_alloc(&t->arena, scratch * sizeof(float));
            eng_conv2d_batch(out, tmp, x->val, L->sw.val, L->sb.val, B, C, H, W, OC, L->kernel, L->stride, L->pad,
                             L->act, L->pool_k, L->pool_s);
            x = eng_tape_wrap(t, out, 4, (int[]){B, OC, OH, OW});
        } else if (L->type == ENG_CNN_LINEAR) {
            x = eng_t_linear(t, x, &L->sw, &L->sb);
        } else {
            x = plain_layer(t, L, x);
        }
    }
    return x;
}
