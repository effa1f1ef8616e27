// transformer_net.c — TransformerNet (fast neural style) inference: see
// transformer_net.h. Each convolution is a reflection-padded (and for the
// deconvs nearest-upsampled) im2col straight from the source tensor, then one
// sgemm per tile of output rows, so neither the padded nor the upsampled
// input is ever materialised and the im2col tile stays bounded whatever the
// image size (a 9x9 conv over 32 channels would need 2592 floats per pixel).
#include "engine/arch/transformer_net.h"
#include <cblas.h>     // cblas_sgemm
#include <immintrin.h> // AVX2/FMA multiply-add rows (target("avx2,fma") functions, picked at run time)
#include <math.h>      // lroundf, sqrt
#include <stdio.h>     // snprintf
#include <stdlib.h>    // calloc, free
#include <string.h>    // strcmp, strncmp
#include "engine/core/cpu.h"    // eng_cpu_level_get
#include "engine/core/util.h"   // eng_errorf

#define TILE_FLOATS ((size_t)1 << 19)   // im2col tile: 2 MB, a few hundred output pixels of the widest conv
#define NORM_EPS 1e-5

// ---------------------------------------------------------------- loading
#define N_TENSORS 62   // 16 convolutions and 15 norms, a weight and a bias each

typedef struct {
    eng_tnet *n;
    char **err;
    int failed;
    const float *bound[N_TENSORS];   // what was bound, to spot tensors left over
    int n_bound;
} bind_ctx;

static const float *get(bind_ctx *c, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (c->failed) return NULL;
    const int64_t shape[4] = {d0, d1, d2, d3};
    const float *p = eng_st_get(&c->n->weights, name, ndim, shape, c->err);
    if (!p) { c->failed = 1; return NULL; }
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    c->n->n_params += numel;
    if (c->n_bound < N_TENSORS) c->bound[c->n_bound++] = p;
    return p;
}

static void bind_conv(bind_ctx *c, eng_tnet_conv *L, const char *prefix, int ci, int co, int k, int stride, int up) {
    char name[96];
    *L = (eng_tnet_conv){.c = ci, .oc = co, .k = k, .stride = stride, .upsample = up};
    snprintf(name, sizeof name, "%s.conv2d.weight", prefix);
    L->w = get(c, name, 4, co, ci, k, k);
    snprintf(name, sizeof name, "%s.conv2d.bias", prefix);
    L->b = get(c, name, 1, co, 0, 0, 0);
}

static void bind_norm(bind_ctx *c, eng_tnet_norm *N, const char *prefix, int ch) {
    char name[96];
    N->c = ch;
    snprintf(name, sizeof name, "%s.weight", prefix);
    N->g = get(c, name, 1, ch, 0, 0, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    N->b = get(c, name, 1, ch, 0, 0, 0);
}

// in1.running_mean, res2.in1.running_var ...: statistics InstanceNorm2d kept
// in old PyTorch versions; pytorch/examples deletes them before loading.
static int is_running_stat(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcmp(dot, ".running_mean") == 0 || strcmp(dot, ".running_var") == 0 ||
                   strcmp(dot, ".num_batches_tracked") == 0);
}

int eng_tnet_load_dir(eng_tnet **out, const char *dir, const json_t *config, char **err) {
    *out = NULL;
    const json_t *jw = json_object_get(config, "width");
    double width = jw ? json_number_value(jw) : 1.0;
    if (jw && (!json_is_number(jw) || !(width >= 1.0 / 32 && width <= 4)))
        return eng_errorf(err, "%s/config.json: \"width\" must be a number in 1/32..4 (channel multiplier)", dir);
    eng_tnet *n = calloc(1, sizeof *n);
    if (!n) return eng_errorf(err, "%s: out of memory", dir);
    n->width = (float)width;
    n->c1 = (int)lround(32 * width);
    n->c2 = (int)lround(64 * width);
    n->c3 = (int)lround(128 * width);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (eng_st_open(&n->weights, path, err) != 0) { free(n); return -1; }

    bind_ctx c = {.n = n, .err = err};
    bind_conv(&c, &n->conv1, "conv1", 3, n->c1, 9, 1, 1);
    bind_norm(&c, &n->in1, "in1", n->c1);
    bind_conv(&c, &n->conv2, "conv2", n->c1, n->c2, 3, 2, 1);
    bind_norm(&c, &n->in2, "in2", n->c2);
    bind_conv(&c, &n->conv3, "conv3", n->c2, n->c3, 3, 2, 1);
    bind_norm(&c, &n->in3, "in3", n->c3);
    for (int r = 0; r < 5; r++) {
        char p[32];
        for (int j = 0; j < 2; j++) {
            snprintf(p, sizeof p, "res%d.conv%d", r + 1, j + 1);
            bind_conv(&c, &n->res_conv[r][j], p, n->c3, n->c3, 3, 1, 1);
            snprintf(p, sizeof p, "res%d.in%d", r + 1, j + 1);
            bind_norm(&c, &n->res_in[r][j], p, n->c3);
        }
    }
    bind_conv(&c, &n->deconv1, "deconv1", n->c3, n->c2, 3, 1, 2);
    bind_norm(&c, &n->in4, "in4", n->c2);
    bind_conv(&c, &n->deconv2, "deconv2", n->c2, n->c1, 3, 1, 2);
    bind_norm(&c, &n->in5, "in5", n->c1);
    bind_conv(&c, &n->deconv3, "deconv3", n->c1, 3, 9, 1, 1);
    if (c.failed) {
        char *e = *err;
        eng_errorf(err, "%s: %s (TransformerNet width %g: channels %d/%d/%d)", path, e ? e : "?", width, n->c1,
                   n->c2, n->c3);
        free(e);
        eng_tnet_free(n);
        return -1;
    }
    // a tensor we do not use means a different network: refuse it, as
    // PyTorch's strict load_state_dict would
    for (int i = 0; i < n->weights.n; i++) {
        const eng_st_tensor *t = &n->weights.tensors[i];
        int bound = 0;
        for (int j = 0; j < c.n_bound && !bound; j++) bound = c.bound[j] == t->data;
        if (!bound && !is_running_stat(t->name)) {
            eng_errorf(err, "%s: tensor \"%s\" is not part of TransformerNet", path, t->name);
            eng_tnet_free(n);
            return -1;
        }
    }
    *out = n;
    return 0;
}

void eng_tnet_free(eng_tnet *n) {
    if (!n) return;
    eng_st_close(&n->weights);
    free(n);
}

// ---------------------------------------------------------------- geometry
typedef struct {
    int H, W;     // input
    int H2, W2;   // after conv2 (stride 2 rounds up)
    int H4, W4;   // after conv3
    int Hf, Wf;   // after the two upsamplings: 4*H4 >= H
} dims;

static dims dims_of(int H, int W) {
    dims d = {.H = H, .W = W};
    d.H2 = (H - 1) / 2 + 1, d.W2 = (W - 1) / 2 + 1;
    d.H4 = (d.H2 - 1) / 2 + 1, d.W4 = (d.W2 - 1) / 2 + 1;
    d.Hf = 4 * d.H4, d.Wf = 4 * d.W4;
    return d;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

// im2col floats of one conv producing OH x OW: a tile of TILE_FLOATS (a
// run of output pixels in raster order, however wide the image), or the whole
// output when smaller.
static size_t tile_target = TILE_FLOATS;

void eng_tnet_set_tile_floats(size_t floats) { tile_target = floats ? floats : TILE_FLOATS; }

static size_t tile_floats(const eng_tnet_conv *L, int OH, int OW) {
    size_t ckk = (size_t)L->c * (size_t)L->k * (size_t)L->k;
    size_t px = tile_target / ckk;
    if (px < 8) px = 8;
    if (px > (size_t)OH * (size_t)OW) px = (size_t)OH * (size_t)OW;
    return px * ckk;
}

static size_t col_floats(const eng_tnet *n, dims d) {
    size_t m = tile_floats(&n->conv1, d.H, d.W);
    m = max_z(m, tile_floats(&n->conv2, d.H2, d.W2));
    m = max_z(m, tile_floats(&n->conv3, d.H4, d.W4));
    m = max_z(m, tile_floats(&n->res_conv[0][0], d.H4, d.W4));
    m = max_z(m, tile_floats(&n->deconv1, 2 * d.H4, 2 * d.W4));
    m = max_z(m, tile_floats(&n->deconv2, d.Hf, d.Wf));
    return max_z(m, tile_floats(&n->deconv3, d.H, d.W));
}

typedef struct { size_t full, half, quarter, col, rows, xidx; } scratch;   // floats (xidx: ints)

static scratch scratch_of(const eng_tnet *n, dims d) {
    scratch s;
    s.full = (size_t)n->c1 * (size_t)d.Hf * (size_t)d.Wf;
    s.half = (size_t)n->c2 * (size_t)(2 * d.H4) * (size_t)(2 * d.W4);   // >= c2 * H2 * W2
    s.quarter = (size_t)n->c3 * (size_t)d.H4 * (size_t)d.W4;
    s.col = col_floats(n, d);
    s.rows = (size_t)9 * (size_t)(n->c1 > 3 ? n->c1 : 3) * (size_t)(d.Wf + 8);   // conv_direct's padded rows
    s.xidx = 9 * (size_t)(d.Wf + 8);
    return s;
}

size_t eng_tnet_scratch_bytes(const eng_tnet *n, int H, int W) {
    scratch s = scratch_of(n, dims_of(H, W));
    return (s.full + s.half + 3 * s.quarter + s.col + s.rows) * sizeof(float) + s.xidx * sizeof(int) + 8 * 64;
}

// ---------------------------------------------------------------- kernels
// ReflectionPad2d index: -1 -> 1, n -> n-2 (pad < n is guaranteed by the sizes).
static inline int reflect(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

// out[oc][OH][OW] = conv(pad_reflect(upsample(in[c][H][W]))) (+ bias when
// `bias`: the convolutions followed by an instance norm skip it, since the
// norm subtracts the channel mean and a per-channel constant cancels).
static void conv(const eng_tnet_conv *L, const float *in, int H, int W, float *out, int OH, int OW,
                 float *col, int *xidx, int bias) {
    const int k = L->k, s = L->stride, up = L->upsample, p = k / 2;
    const int Hu = H * up, Wu = W * up;
    const int ckk = L->c * k * k;
    const size_t total = (size_t)OH * (size_t)OW;
    for (int kx = 0; kx < k; kx++)
        for (int ow = 0; ow < OW; ow++) xidx[kx * OW + ow] = reflect(ow * s + kx - p, Wu) / up;
    const size_t tile = tile_floats(L, OH, OW) / (size_t)ckk;   // output pixels per GEMM
    for (size_t p0 = 0; p0 < total; p0 += tile) {
        const int np = (int)(total - p0 < tile ? total - p0 : tile);
        for (int c = 0; c < L->c; c++) {
            const float *plane = in + (size_t)c * H * W;
            for (int ky = 0; ky < k; ky++) {
                for (int kx = 0; kx < k; kx++) {
                    float *restrict dst = col + ((size_t)(c * k + ky) * k + kx) * (size_t)np;
                    const int *restrict xi = xidx + kx * OW;
                    int oh = (int)(p0 / (size_t)OW), ow = (int)(p0 % (size_t)OW);
                    for (int i = 0; i < np; oh++, ow = 0) {   // the tile's pieces of output rows
                        const float *restrict src = plane + (size_t)(reflect(oh * s + ky - p, Hu) / up) * W;
                        int end = ow + (np - i) < OW ? ow + (np - i) : OW;
                        if (s == 1 && up == 1) {   // the source run is contiguous but for reflected edges
                            int lo = ow > p - kx ? ow : p - kx, hi = end < W + p - kx ? end : W + p - kx;
                            if (lo > hi) lo = hi = end;
                            for (int x = ow; x < lo; x++) *dst++ = src[xi[x]];
                            memcpy(dst, src + lo + kx - p, (size_t)(hi - lo) * sizeof(float));
                            dst += hi - lo;
                            for (int x = hi; x < end; x++) *dst++ = src[xi[x]];
                        } else {
                            for (int x = ow; x < end; x++) *dst++ = src[xi[x]];
                        }
                        i += end - ow;
                    }
                }
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->oc, np, ckk, 1.0f, L->w, ckk, col, np, 0.0f,
                    out + p0, (int)total);
    }
    if (bias)
        for (int o = 0; o < L->oc; o++) {
            float *restrict y = out + (size_t)o * total;
            for (size_t i = 0; i < total; i++) y[i] += L->b[o];
        }
}

// The binary is built for baseline x86-64: the AVX2 rows below are compiled
// for AVX2 + FMA on their own and used when the CPU has them (engine/core/cpu.h);
// each returns how far it got, and plain C finishes the row.
#define TNET_AVX2 __attribute__((target("avx2,fma")))
static int tnet_avx2(void) { return eng_cpu_level_get() >= ENG_CPU_AVX2; }

// conv_direct's outputs y[x] for x < OW in runs of 32, then 8 (see below).
static TNET_AVX2 int conv_row_avx2(float *restrict y, const float *rows, const float *wo, float b0, int C, int k,
                                   int Wp, int OW) {
    int x = 0;
    for (; x + 32 <= OW; x += 32) {
        __m256 a0 = _mm256_set1_ps(b0), a1 = a0, a2 = a0, a3 = a0;
        for (int ck = 0; ck < C * k; ck++) {
            const float *pr = rows + (size_t)ck * Wp + x, *wk = wo + (size_t)ck * k;
            for (int kx = 0; kx < k; kx++) {
                const __m256 wv = _mm256_broadcast_ss(wk + kx);
                a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(pr + kx), a0);
                a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(pr + kx + 8), a1);
                a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(pr + kx + 16), a2);
                a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(pr + kx + 24), a3);
            }
        }
        _mm256_storeu_ps(y + x, a0);
        _mm256_storeu_ps(y + x + 8, a1);
        _mm256_storeu_ps(y + x + 16, a2);
        _mm256_storeu_ps(y + x + 24, a3);
    }
    for (; x + 8 <= OW; x += 8) {
        __m256 a0 = _mm256_set1_ps(b0);
        for (int ck = 0; ck < C * k; ck++) {
            const float *pr = rows + (size_t)ck * Wp + x, *wk = wo + (size_t)ck * k;
            for (int kx = 0; kx < k; kx++) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(wk + kx), _mm256_loadu_ps(pr + kx), a0);
        }
        _mm256_storeu_ps(y + x, a0);
    }
    return x;
}

// The 9x9 stride-1 convolutions (conv1: 3 inputs; deconv3: 3 outputs)
// directly: their im2col would hold 81 rows per channel and feed a GEMM of 3
// inputs or 3 outputs, moving far more memory than it computes. Per output
// row, the C*k source rows it reads are reflection-padded once into `rows`
// (C*k rows of OW + 2p floats); each run of 32 outputs then stays in four
// AVX registers over all C*k*k weights.
static void conv_direct(const eng_tnet_conv *L, const float *in, int H, int W, float *out, int OH, int OW, int bias,
                        float *rows) {
    const int k = L->k, p = k / 2, C = L->c, Wp = OW + 2 * p;
    for (int oh = 0; oh < OH; oh++) {
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < k; ky++) {
                const float *r = in + ((size_t)c * H + (size_t)reflect(oh + ky - p, H)) * W;
                float *pr = rows + (size_t)(c * k + ky) * Wp;
                for (int j = 0; j < Wp; j++) pr[j] = r[reflect(j - p, W)];
            }
        for (int o = 0; o < L->oc; o++) {
            float *restrict y = out + ((size_t)o * OH + oh) * OW;
            const float *wo = L->w + (size_t)o * C * k * k;
            const float b0 = bias ? L->b[o] : 0.0f;
            int x = tnet_avx2() ? conv_row_avx2(y, rows, wo, b0, C, k, Wp, OW) : 0;
            for (; x < OW; x++) {
                float a = b0;
                for (int ck = 0; ck < C * k; ck++)
                    for (int kx = 0; kx < k; kx++) a += wo[(size_t)ck * k + kx] * rows[(size_t)ck * Wp + x + kx];
                y[x] = a;
            }
        }
    }
}

enum { NORM, NORM_RELU, NORM_ADD };

// plane_stats' eight-lane sums over whole blocks of 8 (returns where they stopped).
static TNET_AVX2 size_t sum_avx2(const float *restrict x, size_t n, double *s0) {
    size_t i = 0;
    __m256 vs = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) vs = _mm256_add_ps(vs, _mm256_loadu_ps(x + i));
    float l[8];
    _mm256_storeu_ps(l, vs);
    for (int j = 0; j < 8; j++) *s0 += l[j];
    return i;
}

static TNET_AVX2 size_t sq_dev_avx2(const float *restrict x, size_t n, float m, double *q0) {
    size_t i = 0;
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vq = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        vq = _mm256_fmadd_ps(d, d, vq);
    }
    float l[8];
    _mm256_storeu_ps(l, vq);
    for (int j = 0; j < 8; j++) *q0 += l[j];
    return i;
}

// Sum of x[0..n) and sum of (x - m)^2, in eight float lanes (then double):
// a plane is at most a few million values, well within float's range.
static void plane_stats(const float *restrict x, size_t n, double *sum, double m, double *sq) {
    size_t i = 0;
    double s0 = 0, q0 = 0;
    if (tnet_avx2()) i = sum_avx2(x, n, &s0);
    for (; i < n; i++) s0 += x[i];
    if (sum) { *sum = s0; return; }
    i = 0;
    if (tnet_avx2()) i = sq_dev_avx2(x, n, (float)m, &q0);
    for (; i < n; i++) { double d = x[i] - m; q0 += d * d; }
    *sq = q0;
}

// inorm's y = x * scale + shift (+ relu or + residual) over whole blocks of 8.
static TNET_AVX2 size_t norm_avx2(float *o, const float *v, size_t n, float scale, float shift, int mode) {
    size_t i = 0;
    const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(shift), z = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), vs, vb);
        if (mode == NORM_ADD) y = _mm256_add_ps(y, _mm256_loadu_ps(o + i));
        else if (mode == NORM_RELU) y = _mm256_max_ps(y, z);
        _mm256_storeu_ps(o + i, y);
    }
    return i;
}

// InstanceNorm2d(affine) over each plane of x[c][n] (biased variance, eps
// 1e-5), then relu, or added into `into` (the residual) instead of stored.
static void inorm(float *x, size_t n, const eng_tnet_norm *N, int mode, float *into) {
    for (int c = 0; c < N->c; c++) {
        float *restrict v = x + (size_t)c * n;
        double sum, sq;
        plane_stats(v, n, &sum, 0, NULL);
        const double mean = sum / (double)n;
        plane_stats(v, n, NULL, mean, &sq);
        const float scale = (float)(N->g[c] / sqrt(sq / (double)n + NORM_EPS));
        const float shift = (float)(N->b[c] - mean * scale);   // y = x * scale + shift
        float *restrict o = mode == NORM_ADD ? into + (size_t)c * n : v;
        size_t i = 0;
        if (tnet_avx2()) i = norm_avx2(o, v, n, scale, shift, mode);
        for (; i < n; i++) {
            float y = v[i] * scale + shift;
            if (mode == NORM_ADD) o[i] += y;
            else o[i] = mode == NORM_RELU ? (y > 0 ? y : 0) : y;
        }
    }
}

// ---------------------------------------------------------------- forward
void eng_tnet_forward(const eng_tnet *n, eng_arena *a, const float *x, int B, int H, int W, float *y) {
    const dims d = dims_of(H, W);
    const scratch s = scratch_of(n, d);
    float *full = eng_arena_alloc(a, s.full * sizeof(float));
    float *half = eng_arena_alloc(a, s.half * sizeof(float));
    float *q0 = eng_arena_alloc(a, s.quarter * sizeof(float));
    float *q1 = eng_arena_alloc(a, s.quarter * sizeof(float));
    float *q2 = eng_arena_alloc(a, s.quarter * sizeof(float));
    float *col = eng_arena_alloc(a, s.col * sizeof(float));
    float *rows = eng_arena_alloc(a, s.rows * sizeof(float));
    int *xidx = eng_arena_alloc(a, s.xidx * sizeof(int));
    const size_t n1 = (size_t)H * W, n2 = (size_t)d.H2 * d.W2, n4 = (size_t)d.H4 * d.W4;
    const size_t nd1 = 4 * n4, nf = 16 * n4;
    for (int b = 0; b < B; b++) {
        conv_direct(&n->conv1, x + (size_t)b * 3 * n1, H, W, full, H, W, 0, rows);
        inorm(full, n1, &n->in1, NORM_RELU, NULL);
        conv(&n->conv2, full, H, W, half, d.H2, d.W2, col, xidx, 0);
        inorm(half, n2, &n->in2, NORM_RELU, NULL);
        conv(&n->conv3, half, d.H2, d.W2, q0, d.H4, d.W4, col, xidx, 0);
        inorm(q0, n4, &n->in3, NORM_RELU, NULL);
        for (int r = 0; r < 5; r++) {
            conv(&n->res_conv[r][0], q0, d.H4, d.W4, q1, d.H4, d.W4, col, xidx, 0);
            inorm(q1, n4, &n->res_in[r][0], NORM_RELU, NULL);
            conv(&n->res_conv[r][1], q1, d.H4, d.W4, q2, d.H4, d.W4, col, xidx, 0);
            inorm(q2, n4, &n->res_in[r][1], NORM_ADD, q0);
        }
        conv(&n->deconv1, q0, d.H4, d.W4, half, 2 * d.H4, 2 * d.W4, col, xidx, 0);
        inorm(half, nd1, &n->in4, NORM_RELU, NULL);
        conv(&n->deconv2, half, 2 * d.H4, 2 * d.W4, full, d.Hf, d.Wf, col, xidx, 0);
        inorm(full, nf, &n->in5, NORM_RELU, NULL);
        // only the top-left H x W of the network's Hf x Wf output
        conv_direct(&n->deconv3, full, d.Hf, d.Wf, y + (size_t)b * 3 * n1, H, W, 1, rows);
    }
}
