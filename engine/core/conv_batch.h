// conv_batch.h — a batch of images through a convolution as ONE matrix
// product, for the serving paths of the image models (cnn classify, dcgan
// generate). The training ops (ops.c, behind the tape) run one GEMM per image
// and keep the activations their backward needs; these keep nothing.
//
// eng_conv2d_batch: the im2col of a group of G images side by side,
// col[C*K*K, G*P] (P = OH*OW output pixels), then out = w[OC, C*K*K] @ col:
// one sgemm whose N is G*P instead of G sgemms of N = P (a 14x14 layer's
// N = 196 leaves OpenBLAS's kernels short of work), scattered to [B, OC, OH,
// OW] with the bias and, optionally, a ReLU. Groups are as many images as keep
// the scratch under ENG_CONV_BATCH_FLOATS. The sums are sgemm's, so an
// image's bits may move with the group size (the classifier's linear layers
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

// Scratch bound of one call: a group's im2col and product (16 MB).
#define ENG_CONV_BATCH_FLOATS ((size_t)1 << 22)

enum { ENG_CONV_ACT_NONE, ENG_CONV_ACT_RELU, ENG_CONV_ACT_TANH };

int eng_conv_out_dim(int in, int k, int stride, int pad);   // (in + 2 pad - k) / stride + 1

// Floats of scratch eng_conv2d_batch needs for B images.
size_t eng_conv2d_batch_scratch(int B, int C, int H, int W, int OC, int K, int stride, int pad);
// out[B, OC, OH, OW] = act(conv2d(in[B, C, H, W], w[OC, C, K, K]) + b) (b may be NULL;
// act: ENG_CONV_ACT_NONE or ENG_CONV_ACT_RELU).
void eng_conv2d_batch(float *out, float *scratch, const float *in, const float *w, const float *b, int B, int C,
                      int H, int W, int OC, int K, int stride, int pad, int act);

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
