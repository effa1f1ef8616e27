// transformer_net_train.c — TransformerNet's training forward on the tape
// (see transformer_net_train.h). Layers as pytorch/examples writes them:
// ConvLayer = ReflectionPad2d(k/2) + Conv2d; UpsampleConvLayer = nearest
// upsample x2, then a ConvLayer; ResidualBlock = conv, in, relu, conv, in, + x.
#include "engine/arch/transformer_net_train.h"
#include <math.h>       // lround, sqrtf
#include <stdio.h>      // snprintf
#include <stdlib.h>     // free
#include <string.h>     // memset, memcpy
#include "engine/arch/transformer_net.h"   // ENG_TNET_MIN_SIDE
#include "engine/core/rng.h"               // eng_rng
#include "engine/core/tape_seq.h"          // eng_t_add
#include "engine/core/tape_style.h"        // eng_t_reflect_pad2d, eng_t_instance_norm, eng_t_upsample_nearest
#include "engine/core/util.h"              // eng_errorf, eng_xcalloc
#include "engine/io/safetensors.h"         // eng_st_open

#define NORM_EPS 1e-5f
#define OUT_SCALE 64.0f   // the last convolution's initial weights, x PyTorch's

// ---------------------------------------------------------------- the table
// Appends a convolution's weight [co, ci, k, k] and bias [co].
static void add_conv(eng_tnet_train *m, int *i, const char *prefix, int ci, int co, int k) {
    eng_tnet_tensor *w = &m->tensors[(*i)++], *b = &m->tensors[(*i)++];
    snprintf(w->name, sizeof w->name, "%s.conv2d.weight", prefix);
    w->ndim = 4, w->shape[0] = co, w->shape[1] = ci, w->shape[2] = k, w->shape[3] = k;
    snprintf(b->name, sizeof b->name, "%s.conv2d.bias", prefix);
    b->ndim = 1, b->shape[0] = co;
}

static void add_norm(eng_tnet_train *m, int *i, const char *prefix, int c) {
    eng_tnet_tensor *w = &m->tensors[(*i)++], *b = &m->tensors[(*i)++];
    snprintf(w->name, sizeof w->name, "%s.weight", prefix);
    w->ndim = 1, w->shape[0] = c;
    snprintf(b->name, sizeof b->name, "%s.bias", prefix);
    b->ndim = 1, b->shape[0] = c;
}

static void build_table(eng_tnet_train *m) {
    int i = 0;
    add_conv(m, &i, "conv1", 3, m->c1, 9);
    add_norm(m, &i, "in1", m->c1);
    add_conv(m, &i, "conv2", m->c1, m->c2, 3);
    add_norm(m, &i, "in2", m->c2);
    add_conv(m, &i, "conv3", m->c2, m->c3, 3);
    add_norm(m, &i, "in3", m->c3);
    for (int r = 1; r <= 5; r++) {
        char p[32];
        for (int j = 1; j <= 2; j++) {
            snprintf(p, sizeof p, "res%d.conv%d", r, j);
            add_conv(m, &i, p, m->c3, m->c3, 3);
            snprintf(p, sizeof p, "res%d.in%d", r, j);
            add_norm(m, &i, p, m->c3);
        }
    }
    add_conv(m, &i, "deconv1", m->c3, m->c2, 3);
    add_norm(m, &i, "in4", m->c2);
    add_conv(m, &i, "deconv2", m->c2, m->c1, 3);
    add_norm(m, &i, "in5", m->c1);
    add_conv(m, &i, "deconv3", m->c1, 3, 9);
    m->n_params = 0;
    for (int k = 0; k < ENG_TNET_N_TENSORS; k++) {
        eng_tnet_tensor *t = &m->tensors[k];
        t->n = 1;
        for (int d = 0; d < t->ndim; d++) t->n *= (size_t)t->shape[d];
        m->n_params += t->n;
    }
}

int eng_tnet_train_init(eng_tnet_train *m, float width, uint64_t seed, char **err) {
    memset(m, 0, sizeof *m);
    if (!(width >= 1.0f / 32 && width <= 4)) return eng_errorf(err, "TransformerNet width must be in 1/32..4");
    m->width = width;
    m->c1 = (int)lround(32 * (double)width);   // as eng_tnet_load_dir rounds
    m->c2 = (int)lround(64 * (double)width);
    m->c3 = (int)lround(128 * (double)width);
    build_table(m);
    eng_param_table tab = ENG_PARAM_TABLE(m->tensors, ENG_TNET_N_TENSORS);
    m->owned = eng_xcalloc(m->n_params, sizeof(float));
    eng_params_carve(tab, m->owned, 0);
    m->grads = eng_params_new_grads(tab, m->n_params);
    eng_rng r;
    eng_rng_seed(&r, seed);
    for (int k = 0; k < ENG_TNET_N_TENSORS; k++) {
        eng_tnet_tensor *t = &m->tensors[k];
        int is_conv = strstr(t->name, ".conv2d.") != NULL;
        // Conv2d.reset_parameters: kaiming_uniform(a=sqrt(5)) and the bias both give U(-1/sqrt(fan_in), +)
        const eng_tnet_tensor *w = is_conv && t->ndim == 1 ? t - 1 : t;
        float bound = is_conv ? 1.0f / sqrtf((float)(w->shape[1] * w->shape[2] * w->shape[3])) : 0;
        int is_norm_weight = !is_conv && strstr(t->name, ".weight") != NULL;
        for (size_t j = 0; j < t->n; j++)
            t->val[j] = is_conv ? bound * (2 * eng_rng_uniform(&r) - 1) : is_norm_weight ? 1.0f : 0.0f;
        eng_var_param(&t->v, t->val, t->grad, t->ndim, t->shape);
    }
    // The last convolution makes pixels (0..255) from unit-scale features:
    // start it at that scale (mid-grey, a spread of tens of levels) rather
    // than at PyTorch's +-1, which Adam's small steps take hundreds of steps
    // to grow. Only the starting point differs; the network is the same.
    eng_tnet_tensor *w3 = &m->tensors[ENG_TNET_N_TENSORS - 2], *b3 = &m->tensors[ENG_TNET_N_TENSORS - 1];
    for (size_t j = 0; j < w3->n; j++) w3->val[j] *= OUT_SCALE;
    for (size_t j = 0; j < b3->n; j++) b3->val[j] = 127.5f;
    return 0;
}

int eng_tnet_train_load(eng_tnet_train *m, const char *dir, char **err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    eng_st_file f;
    if (eng_st_open(&f, path, err) != 0) return -1;
    for (int k = 0; k < ENG_TNET_N_TENSORS; k++) {
        eng_tnet_tensor *t = &m->tensors[k];
        int64_t shape[4] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
        char *why = NULL;
        const float *p = eng_st_get(&f, t->name, t->ndim, shape, &why);
        if (!p) {
            eng_errorf(err, "%s: %s (TransformerNet width %g)", path, why ? why : t->name, (double)m->width);
            free(why);
            eng_st_close(&f);
            return -1;
        }
        memcpy(t->val, p, t->n * sizeof(float));
    }
    eng_st_close(&f);
    return 0;
}

void eng_tnet_train_free(eng_tnet_train *m) {
    if (!m) return;
    free(m->owned);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

int eng_tnet_train_save(const eng_tnet_train *m, const char *path, char **err) {
    return eng_params_save(ENG_PARAM_TABLE((eng_tnet_tensor *)m->tensors, ENG_TNET_N_TENSORS), path, NULL, NULL, err);
}

// ---------------------------------------------------------------- the forward
// The top-left H x W of x[B,C,Hx,Wx]: the network's output for a size that is
// not a multiple of 4 (its stride-2 convolutions round up).
typedef struct { eng_var *x; } crop_ctx;

static void crop_back(void *vc, eng_var *out) {
    eng_var *x = ((crop_ctx *)vc)->x;
    int P = x->shape[0] * x->shape[1], Hx = x->shape[2], Wx = x->shape[3], H = out->shape[2], W = out->shape[3];
    for (int q = 0; q < P; q++)
        for (int i = 0; i < H; i++) {
            float *dx = x->grad + ((size_t)q * Hx + i) * Wx;
            const float *g = out->grad + ((size_t)q * H + i) * W;
            for (int j = 0; j < W; j++) dx[j] += g[j];
        }
}

static eng_var *crop(eng_tape *t, eng_var *x, int H, int W) {
    if (x->shape[2] == H && x->shape[3] == W) return x;
    int P = x->shape[0] * x->shape[1], Hx = x->shape[2], Wx = x->shape[3];
    eng_var *out = eng_tape_var(t, 4, (int[]){x->shape[0], x->shape[1], H, W});
    for (int q = 0; q < P; q++)
        for (int i = 0; i < H; i++)
            memcpy(out->val + ((size_t)q * H + i) * W, x->val + ((size_t)q * Hx + i) * Wx, (size_t)W * sizeof(float));
    if (t->grad_enabled && x->grad) {
        crop_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->x = x;
        eng__tape_record(t, out, crop_back, c);
    }
    return out;
}

// ConvLayer (reflection pad k/2, conv), upsampled x`up` first when up > 1.
static eng_var *conv_layer(eng_tnet_train *m, eng_tape *t, eng_var *x, int ti, int stride, int up) {
    eng_tnet_tensor *w = &m->tensors[ti], *b = &m->tensors[ti + 1];
    if (up > 1) x = eng_t_upsample_nearest(t, x, up);
    x = eng_t_reflect_pad2d(t, x, w->shape[2] / 2);
    return eng_t_conv2d(t, x, &w->v, &b->v, stride, 0);
}

static eng_var *norm(eng_tnet_train *m, eng_tape *t, eng_var *x, int ti, int relu) {
    x = eng_t_instance_norm(t, x, &m->tensors[ti].v, &m->tensors[ti + 1].v, NORM_EPS);
    return relu ? eng_t_relu(t, x) : x;
}

eng_var *eng_tnet_train_forward(eng_tnet_train *m, eng_tape *t, eng_var *x) {
    const int H = x->shape[2], W = x->shape[3];
    int ti = 0;   // walks the table: a conv's 2 tensors, then its norm's 2
    eng_var *h = norm(m, t, conv_layer(m, t, x, ti, 1, 1), ti + 2, 1);
    ti += 4;
    h = norm(m, t, conv_layer(m, t, h, ti, 2, 1), ti + 2, 1);
    ti += 4;
    h = norm(m, t, conv_layer(m, t, h, ti, 2, 1), ti + 2, 1);
    ti += 4;
    for (int r = 0; r < 5; r++) {
        eng_var *y = norm(m, t, conv_layer(m, t, h, ti, 1, 1), ti + 2, 1);
        y = norm(m, t, conv_layer(m, t, y, ti + 4, 1, 1), ti + 6, 0);
        h = eng_t_add(t, h, y);
        ti += 8;
    }
    h = norm(m, t, conv_layer(m, t, h, ti, 1, 2), ti + 2, 1);
    ti += 4;
    h = norm(m, t, conv_layer(m, t, h, ti, 1, 2), ti + 2, 1);
    ti += 4;
    h = conv_layer(m, t, h, ti, 1, 1);
    return crop(t, h, H, W);
}
