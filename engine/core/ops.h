// ops.h — the engine's operators: plain functions over contiguous float
// arrays (llm.c style). Outputs come first, then const inputs, then dims.
// Every op has a forward and, where training needs it, a backward that
// ACCUMULATES (`d* +=`) into gradient buffers the caller zeroed.
// Layout conventions: images are NCHW; matrices are row-major; a linear
// layer's weight is [OC, C] (PyTorch's layout), y = x W^T + b.
// Shape checks belong to the caller (graph/model build time), not here.
#ifndef ENG_OPS_H
#define ENG_OPS_H
#include <stddef.h>   // size_t

// ---------------------------------------------------------------- matmul
// out[M,N] = (accumulate ? out : 0) + A[M,K] @ B^T, where B is [N,K]
// (i.e. x W^T). Uses cblas_sgemm for large M, a vectorised loop for M < 16.
void eng_matmul_nt(float *out, const float *A, const float *B, int M, int N, int K, int accumulate);
// Batch-invariant variant: every output row is computed in the same order
// whatever M is, so a row's bits never depend on its batch neighbours (used
// by serving steps: same seed, same tokens, whatever else runs). Streams B
// once per call like the M < 16 path; slower than sgemm for large M.
void eng_matmul_nt_rowwise(float *out, const float *A, const float *B, int M, int N, int K, int accumulate);
// Reference implementation of the same contract, plain loops, for tests.
void eng_matmul_nt_naive(float *out, const float *A, const float *B, int M, int N, int K, int accumulate);

// ---------------------------------------------------------------- linear
// out[N,OC] = in[N,C] @ w[OC,C]^T + b[OC] (b may be NULL)
void eng_linear_forward(float *out, const float *in, const float *w, const float *b, int N, int C, int OC);
// The same through eng_matmul_nt_rowwise (batch-invariant rows).
void eng_linear_forward_rowwise(float *out, const float *in, const float *w, const float *b, int N, int C, int OC);
// din[N,C] += dout @ w ; dw[OC,C] += dout^T @ in ; db[OC] += sum_n dout.
// Any of din/dw/db may be NULL when that gradient is not needed.
void eng_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int N, int C, int OC);

// ---------------------------------------------------------------- conv2d
// NCHW convolution, square stride/pad, dilation 1, groups 1.
// in[B,C,H,W], w[OC,C,KH,KW], b[OC] (may be NULL) -> out[B,OC,OH,OW]
// with OH = (H + 2*pad - KH)/stride + 1, OW likewise.
// `col` is scratch of eng_conv2d_col_size() floats (im2col buffer for ONE image).
size_t eng_conv2d_col_size(int C, int H, int W, int KH, int KW, int stride, int pad);
void eng_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                        int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
// din[B,C,H,W] += ; dw[OC,C,KH,KW] += ; db[OC] += (any may be NULL). `col` as above.
void eng_conv2d_backward(float *din, float *dw, float *db, float *col, const float *dout,
                         const float *in, const float *w,
                         int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);

// ---------------------------------------------------------------- conv_transpose2d
// PyTorch's ConvTranspose2d (square kernel, output_padding 0, groups 1): the
// adjoint of conv2d, <conv2d(y, w), x> = <y, conv_transpose2d(x, w)>.
// in[B,C,H,W], w[C,OC,K,K] (PyTorch's layout), b[OC] or NULL -> out[B,OC,OH,OW]
// with OH = (H-1)*stride - 2*pad + K. `col` is scratch of
// eng_conv_transpose2d_col_size() floats (one image).
int eng_conv_transpose2d_out_dim(int in, int k, int stride, int pad);
size_t eng_conv_transpose2d_col_size(int C, int H, int W, int OC, int K, int stride, int pad);
void eng_conv_transpose2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                                  int B, int C, int H, int W, int OC, int K, int stride, int pad);
// din[B,C,H,W] += ; dw[C,OC,K,K] += ; db[OC] += (any may be NULL). `col` as above.
void eng_conv_transpose2d_backward(float *din, float *dw, float *db, float *col, const float *dout,
                                   const float *in, const float *w,
                                   int B, int C, int H, int W, int OC, int K, int stride, int pad);

// ---------------------------------------------------------------- leaky relu
// out = in > 0 ? in : slope*in; the backward accumulates into din.
void eng_leaky_relu_forward(float *out, const float *in, size_t n, float slope);
void eng_leaky_relu_backward(float *din, const float *dout, const float *in, size_t n, float slope);

// ---------------------------------------------------------------- pooling
// Max pooling, window K, stride S, no padding: out[B,C,OH,OW], OH = (H-K)/S+1.
// argmax[B*C*OH*OW] records the flat input index (within the image plane) of each max.
void eng_maxpool2d_forward(float *out, int *argmax, const float *in, int B, int C, int H, int W, int K, int S);
void eng_maxpool2d_backward(float *din, const float *dout, const int *argmax, int B, int C, int H, int W, int K, int S);
// Average pooling, same geometry.
void eng_avgpool2d_forward(float *out, const float *in, int B, int C, int H, int W, int K, int S);
void eng_avgpool2d_backward(float *din, const float *dout, int B, int C, int H, int W, int K, int S);
// Global average pooling: in[B,C,H,W] -> out[B,C].
void eng_global_avgpool_forward(float *out, const float *in, int B, int C, int HW);
void eng_global_avgpool_backward(float *din, const float *dout, int B, int C, int HW);

// ---------------------------------------------------------------- activations (elementwise, n values)
void eng_relu_forward(float *out, const float *in, size_t n);
void eng_relu_backward(float *din, const float *dout, const float *in, size_t n);
void eng_gelu_forward(float *out, const float *in, size_t n);       // tanh approximation (GPT-2)
void eng_gelu_backward(float *din, const float *dout, const float *in, size_t n);
void eng_tanh_forward(float *out, const float *in, size_t n);
void eng_tanh_backward(float *din, const float *dout, const float *out, size_t n);  // uses forward OUTPUT
void eng_sigmoid_forward(float *out, const float *in, size_t n);
void eng_sigmoid_backward(float *din, const float *dout, const float *out, size_t n); // uses forward OUTPUT

// ---------------------------------------------------------------- batch norm (2d, per channel)
// Training: normalises with batch statistics over (B,H,W), writes mean[C] and
// rstd[C] (1/sqrt(var+eps), biased var) for backward, and updates running
// stats PyTorch's way: running = (1-momentum)*running + momentum*batch
// (running_var uses the UNBIASED batch variance). running_* may be NULL.
void eng_batchnorm2d_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                   float *running_var, const float *in, const float *gamma,
                                   const float *beta, int B, int C, int HW, float momentum, float eps);
// Inference: uses running statistics.
void eng_batchnorm2d_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var,
                                   int B, int C, int HW, float eps);
// din/dgamma/dbeta accumulate (any may be NULL); mean/rstd from forward_train.
void eng_batchnorm2d_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *in, const float *gamma, const float *mean,
                              const float *rstd, int B, int C, int HW);

// ---------------------------------------------------------------- softmax / loss
// Row-wise softmax over C columns, numerically stable (subtracts the max).
void eng_softmax_forward(float *out, const float *in, int N, int C);
// Row-wise log-softmax.
void eng_log_softmax_forward(float *out, const float *in, int N, int C);
// Mean cross-entropy of logits[N,C] against integer targets[N]; writes the
// softmax probabilities to probs[N,C] (needed by backward); returns the mean loss.
float eng_cross_entropy_forward(float *probs, const float *logits, const int *targets, int N, int C);
// dlogits[N,C] += scale * (probs - onehot(target)) / N
void eng_cross_entropy_backward(float *dlogits, const float *probs, const int *targets, int N, int C, float scale);

// ---------------------------------------------------------------- naive references
// Plain-loop versions of the kernels with fast paths, same contracts, kept
// to test the fast paths against (tests/unit/test_ops.c) and as fallbacks.
void eng_conv2d_forward_naive(float *out, const float *in, const float *w, const float *b,
                              int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
void eng_conv2d_backward_naive(float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w,
                               int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
void eng_maxpool2d_forward_naive(float *out, int *argmax, const float *in, int B, int C, int H, int W, int K, int S);
void eng_relu_forward_naive(float *out, const float *in, size_t n);
void eng_relu_backward_naive(float *din, const float *dout, const float *in, size_t n);
void eng_batchnorm2d_forward_train_naive(float *out, float *mean, float *rstd, float *running_mean,
                                         float *running_var, const float *in, const float *gamma,
                                         const float *beta, int B, int C, int HW, float momentum, float eps);
void eng_batchnorm2d_forward_infer_naive(float *out, const float *in, const float *gamma, const float *beta,
                                         const float *running_mean, const float *running_var,
                                         int B, int C, int HW, float eps);
void eng_batchnorm2d_backward_naive(float *din, float *dgamma, float *dbeta, const float *dout,
                                    const float *in, const float *gamma, const float *mean,
                                    const float *rstd, int B, int C, int HW);

#endif
