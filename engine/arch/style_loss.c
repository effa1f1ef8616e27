// style_loss.c — the random multi-scale loss network and the perceptual loss
// (see style_loss.h; the design and why is in docs/design/stylization.md).
#include "engine/arch/style_loss.h"

#include <math.h>                  // sqrtf
#include <stdlib.h>                // calloc, free
#include <string.h>                // memcpy, memset
#include "engine/core/rng.h"       // eng_rng
#include "engine/core/tape_style.h" // eng_t_reflect_pad2d, eng_t_gram, eng_t_mse
#include "engine/core/util.h"      // eng_errorf, eng_aligned

// One level of the network. A RANDOM level is (anti-aliased halving,
// blur_pool, when `pool`), reflection pad k/2, k x k convolution cin -> cout with random
// filters, ReLU, fed by the level before it. The COLOUR level reads the
// normalised pixels through a fixed 1x1 convolution (the three channels and
// a constant one), so its Gram matrix holds the colours' mean and second
// moments: the palette, which random ReLU features pin down only loosely.
// Every level's output is a style layer; CONTENT_LEVEL's is also the content layer.
enum { RANDOM, COLOUR };
typedef struct { int kind, cin, cout, k, pool; } level_spec;
static const level_spec LEVELS[] = {
    {COLOUR, 3, 4, 1, 0},     // the palette
    {RANDOM, 3, 48, 3, 0},    // full scale: fine grain
    {RANDOM, 48, 96, 3, 1},   // 1/2
    {RANDOM, 96, 128, 3, 1},  // 1/4: content
    {RANDOM, 128, 128, 3, 1}, // 1/8
    {RANDOM, 128, 128, 3, 1}, // 1/16: brush strokes, large motifs
};
#define N_LEVELS ((int)(sizeof LEVELS / sizeof LEVELS[0]))
#define CONTENT_LEVEL 3
_Static_assert(N_LEVELS <= ENG_LOSSNET_MAX_LAYERS, "too many levels");

// The statistics of natural photos (ImageNet's per-channel mean and std of
// 0..1 pixels), folded into the convolutions that read pixels so their input is centred.
static const float IN_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IN_STD[3] = {0.229f, 0.224f, 0.225f};

struct eng_lossnet {
    eng_var w[N_LEVELS], b[N_LEVELS];   // parameter vars over `mem` (no grads)
    float *mem;
};

int eng_lossnet_n_layers(const eng_lossnet *n) { (void)n; return N_LEVELS; }
int eng_lossnet_content_layer(const eng_lossnet *n) { (void)n; return CONTENT_LEVEL; }
int eng_lossnet_channels(const eng_lossnet *n, int layer) { (void)n; return LEVELS[layer].cout; }

int eng_lossnet_new(eng_lossnet **out, uint64_t seed, char **err) {
    *out = NULL;
    size_t total = 0;
    for (int l = 0; l < N_LEVELS; l++) {
        const level_spec *s = &LEVELS[l];
        total += (size_t)s->cout * s->cin * s->k * s->k + (size_t)s->cout;
    }
    eng_lossnet *n = calloc(1, sizeof *n);
    float *mem = n ? eng_aligned(total * sizeof(float)) : NULL;
    if (!mem) {
        free(n);
        return eng_errorf(err, "out of memory for the loss network");
    }
    n->mem = mem;
    eng_rng rng;
    eng_rng_seed(&rng, seed);
    float *p = mem;
    for (int l = 0; l < N_LEVELS; l++) {
        const level_spec *s = &LEVELS[l];
        int fan_in = s->cin * s->k * s->k;
        float *w = p, *b = p + (size_t)s->cout * fan_in;
        memset(b, 0, (size_t)s->cout * sizeof(float));
        if (s->kind == COLOUR) {
            // identity on the three channels, and a constant 1 as the fourth
            memset(w, 0, (size_t)s->cout * fan_in * sizeof(float));
            for (int c = 0; c < 3; c++) w[c * 3 + c] = 1.0f;
            b[3] = 1.0f;
        } else {
            // He initialisation keeps the activations' scale roughly constant with depth.
            float sd = sqrtf(2.0f / (float)fan_in);
            for (size_t i = 0; i < (size_t)s->cout * fan_in; i++) w[i] = sd * eng_rng_normal(&rng);
        }
        if (l <= 1) {
            // The levels that read pixels: fold (x/255 - mean_c) / std_c into the
            // weights and the bias; exact because the padding reflects pixels
            // (no zeros enter the convolution).
            int kk = s->k * s->k;
            for (int o = 0; o < s->cout; o++)
                for (int c = 0; c < 3; c++)
                    for (int i = 0; i < kk; i++) {
                        float *wi = &w[((size_t)o * 3 + c) * kk + i];
                        b[o] -= *wi * IN_MEAN[c] / IN_STD[c];
                        *wi /= 255.0f * IN_STD[c];
                    }
        }
        eng_var_param(&n->w[l], w, NULL, 4, (int[]){s->cout, s->cin, s->k, s->k});
        eng_var_param(&n->b[l], b, NULL, 1, (int[]){s->cout});
        p = b + s->cout;
    }
    *out = n;
    return 0;
}

void eng_lossnet_free(eng_lossnet *n) {
    if (!n) return;
    free(n->mem);
    free(n);
}

// ---------------------------------------------------------------- anti-aliased downsampling
// Halves a plane with the binomial filter [1 2 1]/4 in each direction at
// stride 2 (reflected at the borders): x[B,C,H,W] -> [B,C,ceil(H/2),ceil(W/2)].
// A 2x2 average pool aliases: its gradient paints a lattice of 2^k-pixel
// blocks into the optimised image; the blur (Zhang 2019, "Making
// convolutional networks shift-invariant again") does not.
static const float BLUR[3] = {0.25f, 0.5f, 0.25f};

static int refl(int i, int n) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; }

// One direction: rows of length n (count `rows`, stride n) -> length (n+1)/2.
// back = 0: out = blur(in); back = 1: in += blur^T(out).
static void blur_rows(float *in, float *out, int rows, int n, int back) {
    int m = (n + 1) / 2;
    for (int r = 0; r < rows; r++) {
        float *x = in + (size_t)r * n, *y = out + (size_t)r * m;
        for (int j = 0; j < m; j++)
            for (int d = -1; d <= 1; d++) {
                int src = refl(2 * j + d, n);
                if (back) x[src] += BLUR[d + 1] * y[j];
                else y[j] = (d == -1 ? 0 : y[j]) + BLUR[d + 1] * x[src];
            }
    }
}

// The same down columns of an H x W plane -> (H+1)/2 x W.
static void blur_cols(float *in, float *out, int H, int W, int back) {
    int m = (H + 1) / 2;
    for (int i = 0; i < m; i++) {
        float *y = out + (size_t)i * W;
        if (!back) memset(y, 0, (size_t)W * sizeof(float));
        for (int d = -1; d <= 1; d++) {
            float *x = in + (size_t)refl(2 * i + d, H) * W, k = BLUR[d + 1];
            if (back) for (int j = 0; j < W; j++) x[j] += k * y[j];
            else for (int j = 0; j < W; j++) y[j] += k * x[j];
        }
    }
}

typedef struct { eng_var *x; float *tmp; } blur_ctx;   // tmp: [P][H][(W+1)/2], the horizontal pass

static void blur_back(void *vc, eng_var *out) {
    blur_ctx *c = vc;
    eng_var *x = c->x;
    int P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], w2 = (W + 1) / 2, h2 = (H + 1) / 2;
    for (int q = 0; q < P; q++) {
        float *t = c->tmp + (size_t)q * H * w2;
        memset(t, 0, (size_t)H * w2 * sizeof(float));
        blur_cols(t, out->grad + (size_t)q * h2 * w2, H, w2, 1);
        blur_rows(x->grad + (size_t)q * H * W, t, H, W, 1);
    }
}

static eng_var *blur_pool(eng_tape *t, eng_var *x) {
    int B = x->shape[0], C = x->shape[1], P = B * C, H = x->shape[2], W = x->shape[3], w2 = (W + 1) / 2, h2 = (H + 1) / 2;
    int rec = t->grad_enabled && x->grad;
    eng_var *out = eng_tape_var(t, 4, (int[]){B, C, h2, w2});
    if (!rec) out->grad = NULL;
    float *tmp = eng_arena_alloc(&t->arena, (size_t)P * H * w2 * sizeof(float));
    for (int q = 0; q < P; q++) {
        blur_rows(x->val + (size_t)q * H * W, tmp + (size_t)q * H * w2, H, W, 0);
        blur_cols(tmp + (size_t)q * H * w2, out->val + (size_t)q * h2 * w2, H, w2, 0);
    }
    if (rec) {
        blur_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->x = x;
        c->tmp = tmp;
        eng__tape_record(t, out, blur_back, c);
    }
    return out;
}

// Levels 0..upto of x's features into feats.
static void features_upto(eng_tape *t, const eng_lossnet *n, eng_var *x, eng_var **feats, int upto) {
    eng_var *h = x;
    for (int l = 0; l <= upto; l++) {
        const level_spec *s = &LEVELS[l];
        // the weights are read-only: no grads, the conv never writes them
        eng_var *w = (eng_var *)&n->w[l], *b = (eng_var *)&n->b[l];
        if (s->kind == COLOUR) {
            feats[l] = eng_t_conv2d(t, x, w, b, 1, 0);
            continue;
        }
        if (s->pool) h = blur_pool(t, h);
        if (s->k > 1) h = eng_t_reflect_pad2d(t, h, s->k / 2);
        h = eng_t_relu(t, eng_t_conv2d(t, h, w, b, 1, 0));
        feats[l] = h;
    }
}

int eng_lossnet_features(eng_tape *t, const eng_lossnet *n, eng_var *x, eng_var **feats) {
    features_upto(t, n, x, feats, N_LEVELS - 1);
    return N_LEVELS;
}

// ---------------------------------------------------------------- centring
// Each (b, c) plane minus its own mean: y = x - mean(x); dx = dy - mean(dy).
static void centre_back(void *vc, eng_var *out) {
    eng_var *x = vc;
    size_t P = (size_t)x->shape[0] * x->shape[1], N = (size_t)x->shape[2] * x->shape[3];
    for (size_t q = 0; q < P; q++) {
        const float *g = out->grad + q * N;
        float *dx = x->grad + q * N;
        double s = 0;
        for (size_t i = 0; i < N; i++) s += g[i];
        float m = (float)(s / N);
        for (size_t i = 0; i < N; i++) dx[i] += g[i] - m;
    }
}

static eng_var *centre(eng_tape *t, eng_var *x) {
    size_t P = (size_t)x->shape[0] * x->shape[1], N = (size_t)x->shape[2] * x->shape[3];
    int rec = t->grad_enabled && x->grad;
    eng_var *out = eng_tape_var(t, 4, x->shape);
    if (!rec) out->grad = NULL;
    for (size_t q = 0; q < P; q++) {
        const float *v = x->val + q * N;
        float *o = out->val + q * N;
        double s = 0;
        for (size_t i = 0; i < N; i++) s += v[i];
        float m = (float)(s / N);
        for (size_t i = 0; i < N; i++) o[i] = v[i] - m;
    }
    if (rec) eng__tape_record(t, out, centre_back, x);
    return out;
}

// The style statistic of level l's features f: the Gram matrix of the
// colour level; of the random levels, the Gram of the centred features (their
// covariance: ReLU features of random filters have large means, which
// otherwise dominate the Gram, so that a photo already "matches" most of a
// painting's Gram and the texture in it moves the loss little — a truchet
// pattern's relative Gram error against a flower photo was 0.1 uncentred,
// 3.5 centred).
static eng_var *style_stat(eng_tape *t, eng_var *f, int l) {
    if (LEVELS[l].kind == RANDOM) f = centre(t, f);
    return eng_t_gram(t, f);
}

// ---------------------------------------------------------------- style target
int eng_style_target_compute(eng_style_target *st, const eng_lossnet *n, const float *style,
                             int H, int W, char **err) {
    memset(st, 0, sizeof *st);
    if (H < ENG_LOSSNET_MIN_SIDE || W < ENG_LOSSNET_MIN_SIDE)
        return eng_errorf(err, "style image is %dx%d; the loss network needs at least %dx%d",
                          W, H, ENG_LOSSNET_MIN_SIDE, ENG_LOSSNET_MIN_SIDE);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    eng_var *x = eng_tape_wrap(&t, (float *)style, 4, (int[]){1, 3, H, W});
    eng_var *feats[ENG_LOSSNET_MAX_LAYERS];
    int L = eng_lossnet_features(&t, n, x, feats);
    st->n_layers = L;
    for (int l = 0; l < L; l++) {
        eng_var *g = style_stat(&t, feats[l], l);
        int C = feats[l]->shape[1];
        st->channels[l] = C;
        st->gram[l] = malloc((size_t)C * C * sizeof(float));
        if (!st->gram[l]) {
            eng_tape_free(&t);
            eng_style_target_free(st);
            return eng_errorf(err, "out of memory for the style target");
        }
        memcpy(st->gram[l], g->val, (size_t)C * C * sizeof(float));
        double ss = 0;
        for (int i = 0; i < C * C; i++) ss += (double)g->val[i] * g->val[i];
        if (LEVELS[l].kind == RANDOM) {
            // plus a thousandth of the uncentred Gram's: a flat style image has no
            // covariance at all, and its loss must not divide by ~0
            eng_var *gu = eng_t_gram(&t, feats[l]);
            double su = 0;
            for (int i = 0; i < C * C; i++) su += (double)gu->val[i] * gu->val[i];
            ss += 1e-3 * su;
        }
        st->norm[l] = (float)(ss / ((double)C * C)) + 1e-20f;
    }
    eng_tape_free(&t);
    return 0;
}

void eng_style_target_free(eng_style_target *st) {
    if (!st) return;
    for (int l = 0; l < ENG_LOSSNET_MAX_LAYERS; l++) free(st->gram[l]);
    memset(st, 0, sizeof *st);
}

void eng_style_weights_default(eng_style_weights *w) {
    memset(w, 0, sizeof *w);
    w->content_weight = 1.0f;
    w->style_weight = ENG_STYLE_DEFAULT_STYLE_WEIGHT;
    w->tv_weight = ENG_STYLE_DEFAULT_TV_WEIGHT;
    for (int l = 0; l < ENG_LOSSNET_MAX_LAYERS; l++) w->layer_weight[l] = 1.0f;
}

// ---------------------------------------------------------------- small tape ops
// out[1] = sum_i k[i] * v[i][0]: combines the scalar terms with constant weights.
#define MAX_TERMS (ENG_LOSSNET_MAX_LAYERS + 2)
typedef struct { int n; eng_var *v[MAX_TERMS]; float k[MAX_TERMS]; } wsum_ctx;

static void wsum_back(void *vc, eng_var *out) {
    wsum_ctx *c = vc;
    for (int i = 0; i < c->n; i++)
        if (c->v[i]->grad) c->v[i]->grad[0] += c->k[i] * out->grad[0];
}

static eng_var *weighted_sum(eng_tape *t, int n, eng_var **v, const float *k) {
    int rec = 0;
    double s = 0;
    for (int i = 0; i < n; i++) {
        s += (double)k[i] * v[i]->val[0];
        if (v[i]->grad) rec = t->grad_enabled;
    }
    eng_var *out = eng_tape_var(t, 1, (int[]){1});
    if (!rec && out->grad) out->grad = NULL;   // nothing to send a gradient to
    out->val[0] = (float)s;
    if (rec) {
        wsum_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
        c->n = n;
        memcpy(c->v, v, (size_t)n * sizeof *v);
        memcpy(c->k, k, (size_t)n * sizeof *k);
        eng__tape_record(t, out, wsum_back, c);
    }
    return out;
}

// Total variation: mean over every horizontally and vertically adjacent pixel
// pair of (difference / 255)^2 -> [1]. Smooths the high-frequency noise that
// pixel optimisation can otherwise introduce.
static void tv_back(void *vc, eng_var *out) {
    eng_var *y = vc;
    int P = y->shape[0] * y->shape[1], H = y->shape[2], W = y->shape[3];
    double pairs = (double)P * ((double)H * (W - 1) + (double)(H - 1) * W);
    float k = (float)(2.0 * out->grad[0] / (pairs * 255.0 * 255.0));
    for (int q = 0; q < P; q++) {
        const float *v = y->val + (size_t)q * H * W;
        float *g = y->grad + (size_t)q * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                size_t a = (size_t)i * W + j;
                if (j + 1 < W) { float d = k * (v[a + 1] - v[a]); g[a + 1] += d; g[a] -= d; }
                if (i + 1 < H) { float d = k * (v[a + W] - v[a]); g[a + W] += d; g[a] -= d; }
            }
    }
}

static eng_var *total_variation(eng_tape *t, eng_var *y) {
    int P = y->shape[0] * y->shape[1], H = y->shape[2], W = y->shape[3];
    double s = 0;
    for (int q = 0; q < P; q++) {
        const float *v = y->val + (size_t)q * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                size_t a = (size_t)i * W + j;
                if (j + 1 < W) { double d = v[a + 1] - v[a]; s += d * d; }
                if (i + 1 < H) { double d = v[a + W] - v[a]; s += d * d; }
            }
    }
    double pairs = (double)P * ((double)H * (W - 1) + (double)(H - 1) * W);
    int rec = t->grad_enabled && y->grad;
    eng_var *out = eng_tape_var(t, 1, (int[]){1});
    if (!rec) out->grad = NULL;
    out->val[0] = (float)(s / (pairs * 255.0 * 255.0));
    if (rec) eng__tape_record(t, out, tv_back, y);
    return out;
}

// ---------------------------------------------------------------- the loss
eng_var *eng_style_loss(eng_tape *t, const eng_lossnet *n, eng_var *y, eng_var *content,
                        const eng_style_target *st, const eng_style_weights *w,
                        eng_style_loss_parts *parts) {
    int B = y->shape[0];
    eng_var *fy[ENG_LOSSNET_MAX_LAYERS];
    int L = eng_lossnet_features(t, n, y, fy);
    eng_var *terms[MAX_TERMS];
    float k[MAX_TERMS];
    int nt = 0;
    eng_style_loss_parts p;
    memset(&p, 0, sizeof p);

    for (int l = 0; l < L && l < st->n_layers; l++) {
        int C = st->channels[l];
        eng_var *gy = style_stat(t, fy[l], l);
        // the style Gram repeated for each image of the batch (no grad)
        float *rep = eng_arena_alloc(&t->arena, (size_t)B * C * C * sizeof(float));
        for (int b = 0; b < B; b++) memcpy(rep + (size_t)b * C * C, st->gram[l], (size_t)C * C * sizeof(float));
        eng_var *gs = eng_tape_wrap(t, rep, 3, (int[]){B, C, C});
        eng_var *e = eng_t_mse(t, gy, gs);
        p.style_layer[l] = e->val[0] / st->norm[l];
        p.style += w->layer_weight[l] * p.style_layer[l];
        terms[nt] = e;
        k[nt++] = w->style_weight * w->layer_weight[l] / st->norm[l];
    }
    if (content) {
        eng_var *fc[ENG_LOSSNET_MAX_LAYERS];
        features_upto(t, n, content, fc, CONTENT_LEVEL);   // content has no grad: nothing recorded
        eng_var *target = fc[CONTENT_LEVEL];
        double ss = 0;
        for (size_t i = 0; i < target->n; i++) ss += (double)target->val[i] * target->val[i];
        float norm = (float)(ss / (double)target->n) + 1e-12f;
        eng_var *e = eng_t_mse(t, fy[CONTENT_LEVEL], target);
        p.content = e->val[0] / norm;
        terms[nt] = e;
        k[nt++] = w->content_weight / norm;
    }
    if (w->tv_weight != 0.0f) {
        eng_var *e = total_variation(t, y);
        p.tv = e->val[0];
        terms[nt] = e;
        k[nt++] = w->tv_weight;
    }
    eng_var *loss = weighted_sum(t, nt, terms, k);
    p.total = loss->val[0];
    if (parts) *parts = p;
    return loss;
}
