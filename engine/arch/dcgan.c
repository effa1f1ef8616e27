// dcgan.c — the DCGAN generator and discriminator (see dcgan.h).
#include "engine/arch/dcgan.h"
#include <stdio.h>              // snprintf
#include <stdlib.h>             // calloc, free
#include <string.h>             // memset, memcpy
#include "engine/core/conv_batch.h"   // eng_convT_batch, eng_bn_fold (serving)
#include "engine/core/gemm.h"   // eng_gemm_nt (serving)
#include "engine/core/ops.h"    // eng_relu_forward (serving)
#include "engine/core/rng.h"    // eng_rng
#include "engine/core/util.h"   // eng_errorf, eng_xcalloc

// Tensor indices, generator first (a prefix of the table), then the discriminator.
enum {
    G_FC_W, G_BN0_W, G_BN0_B, G_BN0_RM, G_BN0_RV, G_UP1_W, G_BN1_W, G_BN1_B, G_BN1_RM, G_BN1_RV, G_UP2_W, G_UP2_B,
    G__COUNT,
    D_CONV1_W = G__COUNT, D_CONV1_B, D_CONV2_W, D_BN2_W, D_BN2_B, D_BN2_RM, D_BN2_RV, D_FC_W, D_FC_B,
    D__END
};
_Static_assert(D__END <= ENG_DCGAN_MAX_TENSORS, "raise ENG_DCGAN_MAX_TENSORS");

static void add(eng_dcgan *m, int idx, const char *name, int buffer, int ndim, int d0, int d1, int d2, int d3) {
    eng_dcgan_tensor *t = &m->tensors[idx];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->buffer = buffer;
    t->ndim = ndim;
    int d[4] = {d0, d1, d2, d3};
    t->n = 1;
    for (int k = 0; k < ndim; k++) { t->shape[k] = d[k]; t->n *= (size_t)d[k]; }
}

// An optional integer field in [lo, hi]; def when absent, -1 when invalid.
static int int_field(const json_t *c, const char *key, int def, int lo, int hi) {
    const json_t *v = json_object_get(c, key);
    if (!v) return def;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return -1;
    return (int)json_integer_value(v);
}

int eng_dcgan_init(eng_dcgan *m, const json_t *config, int with_d, char **err) {
    memset(m, 0, sizeof *m);
    m->n_latent = int_field(config, "n_latent", 64, 1, 4096);
    m->channels = int_field(config, "channels", 1, 1, 4);
    m->height = int_field(config, "height", 28, 4, 1024);
    m->width = int_field(config, "width", 28, 4, 1024);
    m->g_ch = int_field(config, "g_channels", 32, 1, 1024);
    m->d_ch = int_field(config, "d_channels", 32, 1, 1024);
    if (m->n_latent < 0 || m->channels < 0 || m->height < 0 || m->width < 0 || m->g_ch < 0 || m->d_ch < 0)
        return eng_errorf(err, "config: n_latent (1..4096), channels (1..4), height and width (4..1024), "
                               "g_channels and d_channels (1..1024) must be integers in range");
    if (m->height % 4 || m->width % 4) return eng_errorf(err, "config: height and width must be multiples of 4");
    const json_t *labels = json_object_get(config, "labels");
    if (labels && (!json_is_array(labels) || json_array_size(labels) < 1 || json_array_size(labels) > 1000))
        return eng_errorf(err, "config: \"labels\" must be an array of 1..1000 class names");
    m->n_classes = labels ? (int)json_array_size(labels) : 0;
    int C = m->channels, g = m->g_ch, d = m->d_ch, h4 = m->height / 4, w4 = m->width / 4, L = m->n_classes;
    // no biases before batch norm (it removes them), as in the DCGAN paper's code
    add(m, G_FC_W, "g.fc.weight", 0, 2, 2 * g * h4 * w4, m->n_latent + L, 0, 0);
    add(m, G_BN0_W, "g.bn0.weight", 0, 1, 2 * g, 0, 0, 0);
    add(m, G_BN0_B, "g.bn0.bias", 0, 1, 2 * g, 0, 0, 0);
    add(m, G_BN0_RM, "g.bn0.running_mean", 1, 1, 2 * g, 0, 0, 0);
    add(m, G_BN0_RV, "g.bn0.running_var", 1, 1, 2 * g, 0, 0, 0);
    add(m, G_UP1_W, "g.up1.weight", 0, 4, 2 * g, g, 4, 4);   // ConvTranspose2d: [in, out, K, K]
    add(m, G_BN1_W, "g.bn1.weight", 0, 1, g, 0, 0, 0);
    add(m, G_BN1_B, "g.bn1.bias", 0, 1, g, 0, 0, 0);
    add(m, G_BN1_RM, "g.bn1.running_mean", 1, 1, g, 0, 0, 0);
    add(m, G_BN1_RV, "g.bn1.running_var", 1, 1, g, 0, 0, 0);
    add(m, G_UP2_W, "g.up2.weight", 0, 4, g, C, 4, 4);
    add(m, G_UP2_B, "g.up2.bias", 0, 1, C, 0, 0, 0);
    m->n_g_tensors = m->n_tensors = G__COUNT;
    if (with_d) {
        add(m, D_CONV1_W, "d.conv1.weight", 0, 4, d, C + L, 4, 4);
        add(m, D_CONV1_B, "d.conv1.bias", 0, 1, d, 0, 0, 0);
        add(m, D_CONV2_W, "d.conv2.weight", 0, 4, 2 * d, d, 4, 4);
        add(m, D_BN2_W, "d.bn2.weight", 0, 1, 2 * d, 0, 0, 0);
        add(m, D_BN2_B, "d.bn2.bias", 0, 1, 2 * d, 0, 0, 0);
        add(m, D_BN2_RM, "d.bn2.running_mean", 1, 1, 2 * d, 0, 0, 0);
        add(m, D_BN2_RV, "d.bn2.running_var", 1, 1, 2 * d, 0, 0, 0);
        add(m, D_FC_W, "d.fc.weight", 0, 2, 1, 2 * d * h4 * w4, 0, 0);
        add(m, D_FC_B, "d.fc.bias", 0, 1, 1, 0, 0, 0);
        m->n_tensors = D__END;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        m->n_params += m->tensors[i].n;
        if (i < m->n_g_tensors) m->n_g_params += m->tensors[i].n;
        if (!m->tensors[i].buffer) m->n_trainable += m->tensors[i].n;
    }
    return 0;
}

void eng_dcgan_free(eng_dcgan *m) {
    if (!m) return;
    eng_st_close(&m->st);
    free(m->owned);
    free(m->grads);
    free(m->serve);
    memset(m, 0, sizeof *m);
}

// Points each trainable tensor's tape variable at its values (and gradients).
static void bind_vars(eng_dcgan *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        eng_dcgan_tensor *t = &m->tensors[i];
        if (!t->buffer) eng_var_param(&t->v, t->val, t->grad, t->ndim, t->shape);
    }
}

void eng_dcgan_init_params(eng_dcgan *m, uint64_t seed) {
    eng_param_table tab = ENG_PARAM_TABLE(m->tensors, m->n_tensors);
    free(m->owned);
    free(m->grads);
    m->owned = eng_xcalloc(m->n_params, sizeof(float));
    eng_params_carve(tab, m->owned, 0);
    m->grads = eng_params_new_grads(tab, m->n_params);
    eng_rng r;
    eng_rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        eng_dcgan_tensor *t = &m->tensors[i];
        int is_gamma = i == G_BN0_W || i == G_BN1_W || i == D_BN2_W;
        int is_zero = i == G_BN0_B || i == G_BN1_B || i == D_BN2_B || i == G_UP2_B || i == D_CONV1_B || i == D_FC_B ||
                      i == G_BN0_RM || i == G_BN1_RM || i == D_BN2_RM;
        int is_one = i == G_BN0_RV || i == G_BN1_RV || i == D_BN2_RV;
        for (size_t k = 0; k < t->n; k++)
            t->val[k] = is_one ? 1.0f : is_zero ? 0.0f : (is_gamma ? 1.0f : 0.0f) + 0.02f * eng_rng_normal(&r);
    }
    bind_vars(m);
}

int eng_dcgan_load(eng_dcgan *m, const char *path, char **err) {
    if (eng_st_open(&m->st, path, err) != 0) return -1;
    for (int i = 0; i < m->n_g_tensors; i++) {
        eng_dcgan_tensor *t = &m->tensors[i];
        int64_t shape[4] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
        char *why = NULL;
        const float *p = eng_st_get(&m->st, t->name, t->ndim, shape, &why);
        if (!p) {
            eng_errorf(err, "%s: %s", path, why ? why : t->name);
            free(why);
            eng_st_close(&m->st);
            return -1;
        }
        t->val = (float *)p;   // read-only mapping: serving never writes weights
    }
    m->n_tensors = m->n_g_tensors;
    bind_vars(m);
    return 0;
}

int eng_dcgan_save_generator(const eng_dcgan *m, const char *path, char **err) {
    return eng_params_save(ENG_PARAM_TABLE((eng_dcgan_tensor *)m->tensors, m->n_g_tensors), path, NULL, NULL, err);
}

// ---------------------------------------------------------------- tape helpers
// A view of x with another shape (same element count), sharing values and gradients.
static eng_var *reshape(eng_tape *t, eng_var *x, int ndim, const int *shape) {
    eng_var *v = eng_arena_alloc(&t->arena, sizeof *v);
    *v = *x;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++) v->shape[d] = shape[d];
    return v;
}

// x[B, C, H, W] with L one-hot label planes appended -> [B, C+L, H, W];
// the backward passes the first C channels' gradient to x.
typedef struct { eng_var *x; int C, L, HW; } planes_ctx;
static void planes_back(void *vctx, eng_var *out) {
    planes_ctx *c = vctx;
    if (!c->x->grad) return;
    int B = c->x->shape[0];
    size_t n = (size_t)c->C * c->HW;
    for (int b = 0; b < B; b++) {
        const float *g = out->grad + (size_t)b * (c->C + c->L) * c->HW;
        float *dx = c->x->grad + (size_t)b * n;
        for (size_t k = 0; k < n; k++) dx[k] += g[k];
    }
}

static eng_var *label_planes(eng_tape *t, eng_var *x, const int *labels, int L) {
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], HW = H * W;
    int rec = t->grad_enabled && x->grad;
    eng_var *out = rec ? eng_tape_var(t, 4, (int[]){B, C + L, H, W}) : NULL;
    if (!out) {   // no gradient wanted: a plain buffer
        out = eng_tape_wrap(t, eng_arena_alloc(&t->arena, (size_t)B * (C + L) * HW * sizeof(float)), 4,
                            (int[]){B, C + L, H, W});
    }
    for (int b = 0; b < B; b++) {
        float *o = out->val + (size_t)b * (C + L) * HW;
        memcpy(o, x->val + (size_t)b * C * HW, (size_t)C * HW * sizeof(float));
        memset(o + (size_t)C * HW, 0, (size_t)L * HW * sizeof(float));
        float *plane = o + (size_t)(C + labels[b]) * HW;
        for (int k = 0; k < HW; k++) plane[k] = 1.0f;
    }
    if (rec) {
        planes_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        *c = (planes_ctx){x, C, L, HW};
        eng__tape_record(t, out, planes_back, c);
    }
    return out;
}

// ---------------------------------------------------------------- the networks
#define V(i) (&m->tensors[(i)].v)
#define BUF(i) (m->tensors[(i)].val)

eng_var *eng_dcgan_generate(eng_dcgan *m, eng_tape *t, eng_var *z, const int *labels, int update_stats) {
    int B = z->shape[0], nz = m->n_latent, L = m->n_classes, g = m->g_ch, h4 = m->height / 4, w4 = m->width / 4;
    // input [z ; onehot(label)]: data, no gradient
    float *in = eng_arena_alloc(&t->arena, (size_t)B * (nz + L) * sizeof(float));
    for (int b = 0; b < B; b++) {
        float *row = in + (size_t)b * (nz + L);
        memcpy(row, z->val + (size_t)b * nz, (size_t)nz * sizeof(float));
        for (int k = 0; k < L; k++) row[nz + k] = labels && labels[b] == k ? 1.0f : 0.0f;
    }
    eng_var *x = eng_t_linear(t, eng_tape_wrap(t, in, 2, (int[]){B, nz + L}), V(G_FC_W), NULL);
    x = reshape(t, x, 4, (int[]){B, 2 * g, h4, w4});
    int upd = !t->training || update_stats;   // inference reads the running statistics
    x = eng_t_batchnorm(t, x, V(G_BN0_W), V(G_BN0_B), upd ? BUF(G_BN0_RM) : NULL, upd ? BUF(G_BN0_RV) : NULL, 0.1f, 1e-5f);
    x = eng_t_relu(t, x);
    x = eng_t_conv_transpose2d(t, x, V(G_UP1_W), NULL, 2, 1);
    x = eng_t_batchnorm(t, x, V(G_BN1_W), V(G_BN1_B), upd ? BUF(G_BN1_RM) : NULL, upd ? BUF(G_BN1_RV) : NULL, 0.1f, 1e-5f);
    x = eng_t_relu(t, x);
    x = eng_t_conv_transpose2d(t, x, V(G_UP2_W), V(G_UP2_B), 2, 1);
    return eng_t_tanh(t, x);
}

eng_var *eng_dcgan_discriminate(eng_dcgan *m, eng_tape *t, eng_var *x, const int *labels) {
    if (m->n_classes) x = label_planes(t, x, labels, m->n_classes);
    x = eng_t_conv2d(t, x, V(D_CONV1_W), V(D_CONV1_B), 2, 1);
    x = eng_t_leaky_relu(t, x, 0.2f);
    x = eng_t_conv2d(t, x, V(D_CONV2_W), NULL, 2, 1);
    // batch statistics only: the discriminator is never served
    x = eng_t_batchnorm(t, x, V(D_BN2_W), V(D_BN2_B), t->training ? NULL : BUF(D_BN2_RM), t->training ? NULL : BUF(D_BN2_RV),
                        0.1f, 1e-5f);
    x = eng_t_leaky_relu(t, x, 0.2f);
    return eng_t_linear(t, eng_t_flatten(t, x), V(D_FC_W), V(D_FC_B));
}

void eng_dcgan_latents(uint64_t seed, int n, int n_latent, float *z) {
    eng_rng r;
    eng_rng_seed(&r, seed);
    for (size_t k = 0; k < (size_t)n * (size_t)n_latent; k++) z[k] = eng_rng_normal(&r);
}

// ---------------------------------------------------------------- serving
// wt[(kh*K + kw)*OC + oc][c] = w[c][oc][kh][kw] * scale[oc] (ConvTranspose2d's
// [in, out, K, K] kernel in conv_batch.h's layout; scale NULL: 1).
static void convT_weights(float *wt, const float *w, int C, int OC, int K, const float *scale) {
    for (int c = 0; c < C; c++)
        for (int oc = 0; oc < OC; oc++)
            for (int t = 0; t < K * K; t++)
                wt[((size_t)t * OC + oc) * C + c] = w[((size_t)c * OC + oc) * K * K + t] * (scale ? scale[oc] : 1.0f);
}

int eng_dcgan_prepare_serving(eng_dcgan *m, char **err) {
    const int g = m->g_ch, c0 = 2 * g, C = m->channels, nin = m->n_latent + m->n_classes;
    const size_t P1 = (size_t)(m->height / 4) * (size_t)(m->width / 4), nfc = (size_t)c0 * P1;
    const size_t n = nfc * nin + nfc + (size_t)16 * g * c0 + g + (size_t)16 * C * g + C + 2 * (size_t)c0;
    free(m->serve);
    if (!(m->serve = malloc(n * sizeof(float)))) return eng_errorf(err, "dcgan: out of memory for %zu folded weights", n);
    float *p = m->serve;
    m->fc_w = p, p += nfc * nin;
    m->fc_b = p, p += nfc;
    m->up1_wt = p, p += (size_t)16 * g * c0;
    m->up1_b = p, p += g;
    m->up2_wt = p, p += (size_t)16 * C * g;
    m->up2_b = p, p += C;
    float *scale = p, *shift = p + c0;
    // bn0 over fc's output read as [2g, H/4, W/4]: row ch*P1 + q scaled by
    // scale[ch], and moved to row q*2g + ch so fc writes the NHWC input up1 reads
    eng_bn_fold(scale, shift, BUF(G_BN0_W), BUF(G_BN0_B), BUF(G_BN0_RM), BUF(G_BN0_RV), c0, 1e-5f);
    for (int ch = 0; ch < c0; ch++)
        for (size_t q = 0; q < P1; q++) {
            const float *src = BUF(G_FC_W) + ((size_t)ch * P1 + q) * nin;
            float *dst = m->fc_w + (q * c0 + ch) * nin;
            for (int k = 0; k < nin; k++) dst[k] = src[k] * scale[ch];
            m->fc_b[q * c0 + ch] = shift[ch];
        }
    eng_bn_fold(scale, shift, BUF(G_BN1_W), BUF(G_BN1_B), BUF(G_BN1_RM), BUF(G_BN1_RV), g, 1e-5f);
    convT_weights(m->up1_wt, BUF(G_UP1_W), c0, g, 4, scale);   // up1 has no bias: bn1's shift is it
    memcpy(m->up1_b, shift, (size_t)g * sizeof(float));
    convT_weights(m->up2_wt, BUF(G_UP2_W), g, C, 4, NULL);
    memcpy(m->up2_b, BUF(G_UP2_B), (size_t)C * sizeof(float));
    return 0;
}

void eng_dcgan_serve(const eng_dcgan *m, eng_arena *a, const float *z, const int *labels, int B, float *y) {
    const int nz = m->n_latent, L = m->n_classes, nin = nz + L, g = m->g_ch, c0 = 2 * g, C = m->channels;
    const int h4 = m->height / 4, w4 = m->width / 4;
    const size_t P1 = (size_t)h4 * w4, nfc = (size_t)c0 * P1, n1 = 4 * P1 * g, img = (size_t)C * m->height * m->width;
    // images per group: their inputs, activations and the larger product within the scratch bound
    size_t s1 = eng_convT_batch_scratch(1, c0, h4, w4, g, 4), s2 = eng_convT_batch_scratch(1, g, 2 * h4, 2 * w4, C, 4);
    size_t per = (size_t)nin + nfc + n1 + (s1 > s2 ? s1 : s2);
    int G = (int)(ENG_CONV_BATCH_FLOATS / per);
    G = G < 1 ? 1 : G > B ? B : G;
    s1 = eng_convT_batch_scratch(G, c0, h4, w4, g, 4), s2 = eng_convT_batch_scratch(G, g, 2 * h4, 2 * w4, C, 4);
    float *in = eng_arena_alloc(a, (size_t)G * nin * sizeof(float));
    float *h0 = eng_arena_alloc(a, (size_t)G * nfc * sizeof(float));
    float *h1 = eng_arena_alloc(a, (size_t)G * n1 * sizeof(float));
    float *scratch = eng_arena_alloc(a, (s1 > s2 ? s1 : s2) * sizeof(float));
    for (int b0 = 0; b0 < B; b0 += G) {
        const int gb = B - b0 < G ? B - b0 : G;
        for (int b = 0; b < gb; b++) {   // [z ; onehot(label)]
            float *row = in + (size_t)b * nin;
            memcpy(row, z + (size_t)(b0 + b) * nz, (size_t)nz * sizeof(float));
            for (int k = 0; k < L; k++) row[nz + k] = labels && labels[b0 + b] == k ? 1.0f : 0.0f;
        }
        eng_gemm_nt(h0, nfc, in, (size_t)nin, m->fc_w, (size_t)nin, gb, (int)nfc, nin, 0);
        for (int b = 0; b < gb; b++) {
            float *restrict r = h0 + (size_t)b * nfc;
            const float *restrict bias = m->fc_b;
            for (size_t j = 0; j < nfc; j++) r[j] += bias[j];
            eng_relu_forward(r, r, nfc);
        }
        eng_convT_batch(h1, 1, scratch, h0, m->up1_wt, m->up1_b, gb, c0, h4, w4, g, 4, 2, 1, ENG_CONV_ACT_RELU);
        eng_convT_batch(y + (size_t)b0 * img, 0, scratch, h1, m->up2_wt, m->up2_b, gb, g, 2 * h4, 2 * w4, C, 4, 2, 1,
                        ENG_CONV_ACT_TANH);
    }
}
