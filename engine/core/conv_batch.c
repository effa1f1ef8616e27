// conv_batch.c — batched serving convolutions (see conv_batch.h).
#include "engine/core/conv_batch.h"
#include <cblas.h>              // cblas_sgemm
#include <emmintrin.h>          // _mm_max_ss: a branch-free ReLU of one float (baseline x86-64)
#include <math.h>               // sqrtf
#include <stddef.h>             // ptrdiff_t
#include <string.h>             // memcpy, memset
#include "engine/core/gemm.h"   // eng_gemm_nt
#include "engine/core/ops.h"    // eng_relu_forward, eng_tanh_forward

int eng_conv_out_dim(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

void eng_bn_fold(float *scale, float *shift, const float *gamma, const float *beta, const float *mean,
                 const float *var, int C, float eps) {
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] / sqrtf(var[c] + eps);
        shift[c] = beta[c] - mean[c] * scale[c];
    }
}

// x[0..n) = v, in runs of 8 the compiler vectorises (a plain loop stays scalar at -O2).
static void fill(float *restrict x, float v, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) x[i + l] = v;
    for (; i < n; i++) x[i] = v;
}

// Images per GEMM: as many as keep per_image * G within the cache budget (at least one).
static int group_of(int B, size_t per_image) {
    size_t g = ENG_CONV_GEMM_FLOATS / (per_image ? per_image : 1);
    if (g < 1) g = 1;
    return g < (size_t)B ? (int)g : B;
}

// ---------------------------------------------------------------- conv2d
static size_t conv2d_per_image(int C, int OC, int K, int P) { return ((size_t)C * K * K + (size_t)OC) * (size_t)P; }

size_t eng_conv2d_batch_scratch(int B, int C, int H, int W, int OC, int K, int stride, int pad) {
    int P = eng_conv_out_dim(H, K, stride, pad) * eng_conv_out_dim(W, K, stride, pad);
    size_t per = conv2d_per_image(C, OC, K, P);
    return per * (size_t)group_of(B, per);
}

// col[(c*K + kh)*K + kw][n*P + oh*OW + ow] = img_n[c][oh*s - pad + kh][ow*s - pad + kw]
// (0 outside the image) for the G images of the group; ld = G * P.
static void im2col_group(float *restrict col, size_t ld, const float *in, int G, int C, int H, int W, int K,
                         int s, int pad, int OH, int OW) {
    const size_t P = (size_t)OH * OW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++) {
            // output rows that read inside the image: oh*s + kh - pad in [0, H)
            int oh_lo = kh >= pad ? 0 : (pad - kh + s - 1) / s;
            int oh_hi = (H - 1 + pad - kh) < 0 ? -1 : (H - 1 + pad - kh) / s;
            if (oh_hi > OH - 1) oh_hi = OH - 1;
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(c * K + kh) * K + kw) * ld;
                // and columns: ow*s + kw - pad in [0, W)
                int lo = kw >= pad ? 0 : (pad - kw + s - 1) / s;
                int hi = (W - 1 + pad - kw) < 0 ? -1 : (W - 1 + pad - kw) / s;
                if (hi > OW - 1) hi = OW - 1;
                for (int n = 0; n < G; n++) {
                    const float *plane = in + ((size_t)n * C + c) * H * W;
                    float *restrict dst = row + (size_t)n * P;
                    // (fill, not memset: these runs are a row or two, and hundreds of
                    // library calls per image cost more than the copies)
                    if (hi < lo || oh_hi < oh_lo) { fill(dst, 0.0f, P); continue; }
                    fill(dst, 0.0f, (size_t)oh_lo * OW);   // rows above the image
                    fill(dst + (size_t)(oh_hi + 1) * OW, 0.0f, (size_t)(OH - 1 - oh_hi) * OW);   // and below
                    if (s == 1 && OW == W) {
                        // a "same" convolution: the in-image rows are one shifted
                        // run of the plane; then zero the columns that wrapped
                        // around from the neighbouring rows
                        const ptrdiff_t shift = (ptrdiff_t)(kh - pad) * W + (kw - pad);
                        const size_t p0 = (size_t)oh_lo * W + lo, p1 = (size_t)oh_hi * W + hi + 1;
                        memcpy(dst + p0, plane + (ptrdiff_t)p0 + shift, (p1 - p0) * sizeof(float));
                        for (int oh = oh_lo; oh <= oh_hi; oh++) {
                            float *d = dst + (size_t)oh * OW;
                            for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                            for (int ow = hi + 1; ow < OW; ow++) d[ow] = 0.0f;
                        }
                        continue;
                    }
                    for (int oh = oh_lo; oh <= oh_hi; oh++) {
                        float *restrict d = dst + (size_t)oh * OW;
                        const float *restrict src = plane + (size_t)(oh * s - pad + kh) * W;   // input row
                        for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                        for (int ow = lo; ow <= hi; ow++) d[ow] = src[ow * s + kw - pad];
                        for (int ow = hi + 1; ow < OW; ow++) d[ow] = 0.0f;
                    }
                }
            }
        }
}

// a > b ? a : b and max(v, 0) without a branch (which of two activations is
// larger, or a ReLU's sign, is a coin toss for the branch predictor); NaN
// compares false, as in those expressions.
static inline float max1(float a, float b) { return _mm_cvtss_f32(_mm_max_ss(_mm_set_ss(a), _mm_set_ss(b))); }
static inline float relu1(float v) { return max1(v, 0.0f); }

// dst[i] = src[i] + bias (then ReLU) in runs of 8 the compiler vectorises.
static void add_bias(float *restrict dst, const float *restrict src, size_t n, float bias, int relu) {
    size_t i = 0;
    if (relu)
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++) { float v = src[i + l] + bias; dst[i + l] = v > 0.0f ? v : 0.0f; }
    else
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++) dst[i + l] = src[i + l] + bias;
    for (; i < n; i++) dst[i] = relu ? relu1(src[i] + bias) : src[i] + bias;
}

// One output plane from its product row src[OH*OW]: + bias, ReLU, max pooling.
static void finish_plane(float *restrict dst, const float *restrict src, float bias, int relu, int OH, int OW,
                         int pk, int ps) {
    if (!pk) {
        add_bias(dst, src, (size_t)OH * OW, bias, relu);
        return;
    }
    const int PH = (OH - pk) / ps + 1, PW = (OW - pk) / ps + 1;
    if (pk == 2 && ps == 2) {   // the common case, without the window loops
        for (int y = 0; y < PH; y++) {
            const float *restrict r0 = src + (size_t)2 * y * OW, *restrict r1 = r0 + OW;
            float *restrict d = dst + (size_t)y * PW;
            for (int x = 0; x < PW; x++) {
                float m = max1(max1(r0[2 * x], r0[2 * x + 1]), max1(r1[2 * x], r1[2 * x + 1])) + bias;
                d[x] = relu ? relu1(m) : m;
            }
        }
        return;
    }
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++) {
            const float *win = src + (size_t)y * ps * OW + (size_t)x * ps;
            float m = win[0];
            for (int i = 0; i < pk; i++)
                for (int j = 0; j < pk; j++) m = max1(win[(size_t)i * OW + j], m);
            m += bias;
            dst[(size_t)y * PW + x] = relu ? relu1(m) : m;
        }
}

void eng_conv2d_batch(float *out, float *scratch, const float *in, const float *w, const float *b, int B, int C,
                      int H, int W, int OC, int K, int stride, int pad, int act, int pool_k, int pool_s) {
    const int OH = eng_conv_out_dim(H, K, stride, pad), OW = eng_conv_out_dim(W, K, stride, pad);
    const size_t P = (size_t)OH * OW, CK = (size_t)C * K * K;
    const size_t PP = pool_k ? (size_t)((OH - pool_k) / pool_s + 1) * (size_t)((OW - pool_k) / pool_s + 1) : P;
    const int G = group_of(B, conv2d_per_image(C, OC, K, (int)P));
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G;
        const size_t ld = (size_t)g * P;
        float *col = scratch, *prod = scratch + CK * ld;   // col[CK, g*P], prod[OC, g*P]
        im2col_group(col, ld, in + (size_t)n0 * C * H * W, g, C, H, W, K, stride, pad, OH, OW);
        if (g == 1 && !pool_k) {   // one image, no pooling: the product is the output, started at the bias
            float *o = out + (size_t)n0 * OC * P;
            for (int oc = 0; oc < OC; oc++) fill(o + (size_t)oc * P, b ? b[oc] : 0.0f, P);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)P, (int)CK, 1.0f, w, (int)CK, col, (int)P,
                        1.0f, o, (int)P);
            if (act == ENG_CONV_ACT_RELU) eng_relu_forward(o, o, (size_t)OC * P);
            continue;
        }
        // the product accumulates onto the bias (beta = 0 would cost OpenBLAS a
        // zeroing pass of its own), as the training op's does
        for (int oc = 0; oc < OC; oc++) fill(prod + (size_t)oc * ld, b ? b[oc] : 0.0f, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)ld, (int)CK, 1.0f, w, (int)CK, col, (int)ld,
                    1.0f, prod, (int)ld);
        // prod[oc][n*P + p] -> out[n0 + n][oc][p']
        for (int n = 0; n < g; n++)
            for (int oc = 0; oc < OC; oc++)
                finish_plane(out + ((size_t)(n0 + n) * OC + oc) * PP, prod + (size_t)oc * ld + (size_t)n * P, 0.0f,
                             act == ENG_CONV_ACT_RELU, OH, OW, pool_k, pool_s);
    }
}

// ---------------------------------------------------------------- conv_transpose2d
static size_t convT_per_image(int C, int H, int W, int OC, int K) {
    (void)C;   // the input is read in place
    return (size_t)H * W * (size_t)K * K * (size_t)OC;
}

size_t eng_convT_batch_scratch(int B, int C, int H, int W, int OC, int K) {
    size_t per = convT_per_image(C, H, W, OC, K);
    return per * (size_t)group_of(B, per);
}

void eng_convT_batch(float *out, int out_nhwc, float *scratch, const float *x_nhwc, const float *wt, const float *b,
                     int B, int C, int H, int W, int OC, int K, int stride, int pad, int act) {
    const int OH = (H - 1) * stride - 2 * pad + K, OW = (W - 1) * stride - 2 * pad + K;
    const size_t P = (size_t)H * W, OP = (size_t)OH * OW, KKO = (size_t)K * K * OC;
    const int G = group_of(B, convT_per_image(C, H, W, OC, K));
    // NHWC: channel oc of pixel q at q*OC + oc; NCHW: at oc*OP + q
    const size_t cs = out_nhwc ? 1 : OP, ps = out_nhwc ? (size_t)OC : 1;
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G;
        // cols[pixel][(kh*K + kw)*OC + oc] = x_nhwc[pixel] . wt[(kh*K + kw)*OC + oc]
        eng_gemm_nt(scratch, KKO, x_nhwc + (size_t)n0 * P * C, (size_t)C, wt, (size_t)C, g * (int)P, (int)KKO, C, 0);
        for (int n = 0; n < g; n++) {
            float *o = out + (size_t)(n0 + n) * OC * OP;
            if (out_nhwc)   // every pixel's channels start at the bias
                for (size_t q = 0; q < OP; q++) {
                    if (b) memcpy(o + q * OC, b, (size_t)OC * sizeof(float));
                    else memset(o + q * OC, 0, (size_t)OC * sizeof(float));
                }
            else
                for (int oc = 0; oc < OC; oc++) fill(o + (size_t)oc * OP, b ? b[oc] : 0.0f, OP);
            const float *cols = scratch + (size_t)n * P * KKO;
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    const float *r = cols + ((size_t)ih * W + iw) * KKO;
                    for (int kh = 0; kh < K; kh++) {
                        const int oh = ih * stride - pad + kh;
                        if (oh < 0 || oh >= OH) continue;
                        for (int kw = 0; kw < K; kw++) {
                            const int ow = iw * stride - pad + kw;
                            if (ow < 0 || ow >= OW) continue;
                            const float *restrict v = r + (size_t)(kh * K + kw) * OC;
                            float *restrict y = o + ((size_t)oh * OW + ow) * ps;
                            if (out_nhwc) for (int oc = 0; oc < OC; oc++) y[oc] += v[oc];
                            else for (int oc = 0; oc < OC; oc++) y[oc * cs] += v[oc];
                        }
                    }
                }
            if (act == ENG_CONV_ACT_RELU)
                eng_relu_forward(o, o, (size_t)OC * OP);
            else if (act == ENG_CONV_ACT_TANH)
                eng_tanh_forward(o, o, (size_t)OC * OP);
        }
    }
}
