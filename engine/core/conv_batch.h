// conv_batch.h — convolutions over a batch of images for the serving paths
// of the image models (cnn classify, dcgan generate): the images of a group
// share one GEMM, and what follows the GEMM (bias, ReLU, max pooling, tanh)
// is one pass over its product. The training ops (ops.c, behind the tape)
// run one GEMM per image and a pass per op, keeping what their backward needs.
//
// eng_conv2d_batch: the im2col of a group of G images side by side,
// col[C*K*K, G*P] (P = OH*OW output pixels), one sgemm out = w[OC, C*K*K] @ col,
// then one pass that adds the bias, applies a ReLU and a max pooling when
// they follow and writes [B, OC, OH', OW']. Max pooling commutes with the
// bias and the ReLU (both monotonic), so the pass takes the window's max
// first: the same bits as doing them in order. The sums are sgemm's, so an
// image's bits may move with its group (the classifier's linear layers
// already do: eng_matmul_nt picks sgemm from 16 rows).
//
// eng_convT_batch (transposed convolution, PyTorch's ConvTranspose2d with
// output_padding 0): the input pixels of the group in NHWC order are the rows,
// cols[G*H*W, K*K*OC] = x_nhwc @ wt^T through eng_gemm_nt, then each pixel's
// row is added into its K x K output window (col2im). eng_gemm_nt is
// batch-invariant and col2im visits an image's pixels in raster order, so an
// image's bits depend only on its input: the same alone or in any batch.
// The weight `wt` is laid out for this at load: row (kh*K + kw)*OC + oc
// holds the C input-channel weights of output channel oc at tap (kh, kw).
#ifndef ENG_CONV_BATCH_H
#define ENG_CONV_BATCH_H
#include <stddef.h>   // size_t

// How many images share a GEMM: as many as keep their im2col and product
// within ENG_CONV_GEMM_FLOATS (128 KB, so they stay in L2 from the GEMM to
// the pass that reads them back), at least one. Measured on fashion-cnn's
// 28x28 and 14x14 layers: one image per GEMM (N = 784 or 196 columns) already
// runs OpenBLAS near its peak, and groups of 16 images were 10-20% slower
// (the product spills to L3); small feature maps (N of a few dozen) gain.
#define ENG_CONV_GEMM_FLOATS ((size_t)1 << 15)
// A bound for the scratch callers hold for a group of images (16 MB).
#define ENG_CONV_BATCH_FLOATS ((size_t)1 << 22)

enum { ENG_CONV_ACT_NONE, ENG_CONV_ACT_RELU, ENG_CONV_ACT_TANH };

int eng_conv_out_dim(int in, int k, int stride, int pad);   // (in + 2 pad - k) / stride + 1

// Floats of scratch eng_conv2d_batch needs for B images.
size_t eng_conv2d_batch_scratch(int B, int C, int H, int W, int OC, int K, int stride, int pad);
// out[B, OC, OH', OW'] = maxpool(act(conv2d(in[B, C, H, W], w[OC, C, K, K]) + b))
// (b may be NULL; act: ENG_CONV_ACT_NONE or ENG_CONV_ACT_RELU; pool_k = 0:
// no pooling, OH' = OH; else a pool_k window every pool_s, OH' = (OH - pool_k) / pool_s + 1).
void eng_conv2d_batch(float *out, float *scratch, const float *in, const float *w, const float *b, int B, int C,
                      int H, int W, int OC, int K, int stride, int pad, int act, int pool_k, int pool_s);

// Floats of scratch eng_convT_batch needs for B images.
size_t eng_convT_batch_scratch(int B, int C, int H, int W, int OC, int K);
// out = act(conv_transpose2d(x) + b) with x[B, H, W, C] (NHWC) and wt as
// above; out is [B, OH, OW, OC] when out_nhwc, else [B, OC, OH, OW];
// OH = (H - 1) * stride - 2 pad + K. act: any ENG_CONV_ACT_*.
void eng_convT_batch(float *out, int out_nhwc, float *scratch, const float *x_nhwc, const float *wt, const float *b,
                     int B, int C, int H, int W, int OC, int K, int stride, int pad, int act);

// Batch norm from running statistics as y = x * scale + shift per channel
// (what eng_batchnorm2d_forward_infer computes), to fold into the layer
// before it: scale[c] = gamma[c] / sqrt(var[c] + eps), shift = beta - mean * scale.
void eng_bn_fold(float *scale, float *shift, const float *gamma, const float *beta, const float *mean,
                 const float *var, int C, float eps);

#endif
