// conv_batch.c — batched serving convolutions (see conv_batch.h).
#include "engine/core/conv_batch.h"
#include <cblas.h>              // cblas_sgemm
#include <math.h>               // sqrtf
#include <string.h>             // memcpy, memset
#include "engine/core/gemm.h"   // eng_gemm_nt
#include "engine/core/ops.h"    // eng_tanh_forward

int eng_conv_out_dim(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

void eng_bn_fold(float *scale, float *shift, const float *gamma, const float *beta, const float *mean,
                 const float *var, int C, float eps) {
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] / sqrtf(var[c] + eps);
        shift[c] = beta[c] - mean[c] * scale[c];
    }
}

// Images per group: as many as keep per_image * G within the bound (at least one).
static int group_of(int B, size_t per_image) {
    size_t g = ENG_CONV_BATCH_FLOATS / (per_image ? per_image : 1);
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
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(c * K + kh) * K + kw) * ld;
                // output columns that read inside the image: ow*s + kw - pad in [0, W)
                int lo = kw >= pad ? 0 : (pad - kw + s - 1) / s;
                int hi = (W - 1 + pad - kw) < 0 ? -1 : (W - 1 + pad - kw) / s;
                if (hi > OW - 1) hi = OW - 1;
                for (int n = 0; n < G; n++) {
                    const float *plane = in + ((size_t)n * C + c) * H * W;
                    float *dst = row + (size_t)n * P;
                    for (int oh = 0; oh < OH; oh++, dst += OW) {
                        int ih = oh * s - pad + kh;
                        if (ih < 0 || ih >= H || hi < lo) { memset(dst, 0, (size_t)OW * sizeof(float)); continue; }
                        const float *src = plane + (size_t)ih * W + (kw - pad);
                        for (int ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                        if (s == 1) memcpy(dst + lo, src + lo, (size_t)(hi - lo + 1) * sizeof(float));
                        else for (int ow = lo; ow <= hi; ow++) dst[ow] = src[ow * s];
                        for (int ow = hi + 1; ow < OW; ow++) dst[ow] = 0.0f;
                    }
                }
            }
}

void eng_conv2d_batch(float *out, float *scratch, const float *in, const float *w, const float *b, int B, int C,
                      int H, int W, int OC, int K, int stride, int pad, int act) {
    const int OH = eng_conv_out_dim(H, K, stride, pad), OW = eng_conv_out_dim(W, K, stride, pad);
    const size_t P = (size_t)OH * OW, CK = (size_t)C * K * K;
    const int G = group_of(B, conv2d_per_image(C, OC, K, (int)P));
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G;
        const size_t ld = (size_t)g * P;
        float *col = scratch, *prod = scratch + CK * ld;   // col[CK, g*P], prod[OC, g*P]
        im2col_group(col, ld, in + (size_t)n0 * C * H * W, g, C, H, W, K, stride, pad, OH, OW);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)ld, (int)CK, 1.0f, w, (int)CK, col, (int)ld,
                    0.0f, prod, (int)ld);
        // prod[oc][n*P + p] -> out[n0 + n][oc][p], with the bias and activation
        for (int n = 0; n < g; n++)
            for (int oc = 0; oc < OC; oc++) {
                const float *restrict src = prod + (size_t)oc * ld + (size_t)n * P;
                float *restrict dst = out + ((size_t)(n0 + n) * OC + oc) * P;
                const float bias = b ? b[oc] : 0.0f;
                if (act == ENG_CONV_ACT_RELU)
                    for (size_t p = 0; p < P; p++) { float v = src[p] + bias; dst[p] = v > 0 ? v : 0; }
                else
                    for (size_t p = 0; p < P; p++) dst[p] = src[p] + bias;
            }
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
            for (size_t q = 0; q < OP; q++)
                for (int oc = 0; oc < OC; oc++) o[q * ps + oc * cs] = b ? b[oc] : 0.0f;
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
                            for (int oc = 0; oc < OC; oc++) y[oc * cs] += v[oc];
                        }
                    }
                }
            if (act == ENG_CONV_ACT_RELU)
                for (size_t i = 0; i < (size_t)OC * OP; i++) o[i] = o[i] > 0 ? o[i] : 0;
            else if (act == ENG_CONV_ACT_TANH)
                eng_tanh_forward(o, o, (size_t)OC * OP);
        }
    }
}
