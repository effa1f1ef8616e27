// ops.c — the engine's operators over contiguous float arrays (see ops.h for
// the contracts and shapes). Matrix work goes through cblas_sgemm, except
// matmuls with fewer than 16 rows (single-sequence decode, small batches),
// which are bandwidth-bound: a plain vectorised loop reads the weights ~2x
// faster than sgemm/sgemv there (tests/bench/bench_ops.c; PERF-NOTES.md).
// Convolutions are im2col + sgemm, one image at a time (batching images into
// one sgemm measured no faster: per-image sgemm already runs near peak for
// the CNN's shapes, and a batch-wide column matrix falls out of cache).
// Nothing here allocates, keeps state, or sets BLAS threads (the caller decides).
//
// Vectorisation: the build's -O2 (gcc 12) vectorises a loop only when the
// vector code replaces it entirely, i.e. a constant trip count that is a
// multiple of the vector width; loops over a runtime length stay scalar, and
// a ternary in them becomes a mispredicted branch. So the hot loops below run
// in blocks of V_LANES with constant inner loops (one AVX register each),
// plus a scalar tail. Each such kernel keeps its plain predecessor as an
// `_naive` reference (see "naive references" at the end), which the tests
// compare it with.
//
// In-place use: the elementwise forwards and softmax / log-softmax may be
// called with out == in. Everything else needs distinct buffers.
#include "engine/core/ops.h"

#include "engine/core/gemm.h"  // eng_gemm_nt (the M < 16 and batch-invariant matmuls)
#include "engine/core/act_internal.h"  // eng__gelu_tanh_avx512/avx2
#include "engine/core/cpu.h"   // eng_cpu_level_get

#include <assert.h>   // assert (caller bugs only)
#include <cblas.h>    // cblas_sgemm
#include <math.h>     // expf, tanhf, fmaf, sqrt, log, INFINITY, isnan
#include <string.h>   // memcpy, memset

// ---------------------------------------------------------------- vector helpers
// Blocks of V_LANES floats with constant inner loops, so gcc -O2 emits one
// vector instruction per line (see the top of the file); then a scalar tail.

enum { V_LANES = 8 };   // floats per AVX register

// d[i] = v for i < n.
static void v_fill(float *restrict d, float v, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) d[i + l] = v;
    for (; i < n; i++) d[i] = v;
}

// d[i] = s[i] for i < n: for the short rows of im2col, where a memcpy call costs more than the copy.
static void v_copy(float *restrict d, const float *restrict s, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) d[i + l] = s[i + l];
    for (; i < n; i++) d[i] = s[i];
}

// d[i] += s[i] for i < n.
static void v_add(float *restrict d, const float *restrict s, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) d[i + l] += s[i + l];
    for (; i < n; i++) d[i] += s[i];
}

// Sum of x[i] - m over i < n, in 2 x V_LANES float partial sums (two chains
// hide the add latency). Meant for one image plane or one row (n up to a
// few thousand): each partial sum then adds at most a few hundred values, so
// float loses little, and less still when m is near the values; callers add
// the plane sums in double.
static float v_sum_dev(const float *x, float m, size_t n)
{
    float s[2][V_LANES] = {{0}};
    size_t i = 0;
    for (; i + 2 * V_LANES <= n; i += 2 * V_LANES)
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++)
            for (int l = 0; l < V_LANES; l++) s[g][l] += x[i + g * V_LANES + l] - m;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) s[0][l] += x[i + l] - m;
    for (int l = 0; l < V_LANES; l++) s[0][l] += s[1][l];
    float *t = s[0];
    float v = ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
    for (; i < n; i++) v += x[i] - m;
    return v;
}

// Sum of x[0..n), as v_sum_dev (x - 0 is exact).
static float v_sum(const float *x, size_t n)
{
    return v_sum_dev(x, 0.0f, n);
}

// Sum of (x[i] - m)^2 over i < n, partial sums as in v_sum.
static float v_sum_sq_dev(const float *x, float m, size_t n)
{
    float s[2][V_LANES] = {{0}};
    size_t i = 0;
    for (; i + 2 * V_LANES <= n; i += 2 * V_LANES)
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++)
            for (int l = 0; l < V_LANES; l++) {
                float d = x[i + g * V_LANES + l] - m;
                s[g][l] += d * d;
            }
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) {
            float d = x[i + l] - m;
            s[0][l] += d * d;
        }
    for (int l = 0; l < V_LANES; l++) s[0][l] += s[1][l];
    float *t = s[0];
    float v = ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
    for (; i < n; i++) v += (x[i] - m) * (x[i] - m);
    return v;
}

// Sum of g[i] * (x[i] - m) over i < n, partial sums as in v_sum.
static float v_dot_dev(const float *g, const float *x, float m, size_t n)
{
    float s[2][V_LANES] = {{0}};
    size_t i = 0;
    for (; i + 2 * V_LANES <= n; i += 2 * V_LANES)
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++)
            for (int l = 0; l < V_LANES; l++) {
                size_t j = i + k * V_LANES + l;
                s[k][l] += g[j] * (x[j] - m);
            }
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) s[0][l] += g[i + l] * (x[i + l] - m);
    for (int l = 0; l < V_LANES; l++) s[0][l] += s[1][l];
    float *t = s[0];
    float v = ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
    for (; i < n; i++) v += g[i] * (x[i] - m);
    return v;
}

// y[i] = x[i] * scale + shift for i < n; y and x distinct.
static void v_scale_shift(float *restrict y, const float *restrict x, float scale, float shift, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) y[i + l] = x[i + l] * scale + shift;
    for (; i < n; i++) y[i] = x[i] * scale + shift;
}

// ---------------------------------------------------------------- matmul

enum { MM_SGEMM_MIN_M = 16 };   // rows from which sgemm beats the loop kernels of gemm.c

// The batch-invariant rows (gemm.h); the contiguous-layout wrappers below are
// what the serving paths call.
void eng_matmul_nt_rowwise(float *out, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    eng_gemm_nt(out, (size_t)N, A, (size_t)K, B, (size_t)K, M, N, K, accumulate);
}

void eng_linear_forward_rowwise(float *out, const float *in, const float *w, const float *b, int N, int C, int OC)
{
    if (b)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
    eng_matmul_nt_rowwise(out, in, w, N, OC, C, b != NULL);
}

// Fewer than 16 rows are bandwidth-bound (the weights stream from DRAM once):
// gemm.c's loop kernels read them ~2x faster than sgemm/sgemv there.
void eng_matmul_nt(float *out, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (M < MM_SGEMM_MIN_M || K <= 0) {
        eng_matmul_nt_rowwise(out, A, B, M, N, K, accumulate);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K,
                accumulate ? 1.0f : 0.0f, out, N);
}

void eng_matmul_nt_naive(float *out, const float *A, const float *B, int M, int N, int K, int accumulate)
{
    // Deliberately plain: the reference the fast paths are tested against.
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++) sum += A[(size_t)i * K + k] * B[(size_t)j * K + k];
            out[(size_t)i * N + j] = accumulate ? out[(size_t)i * N + j] + sum : sum;
        }
    }
}

// ---------------------------------------------------------------- linear

void eng_linear_forward(float *out, const float *in, const float *w, const float *b, int N, int C, int OC)
{
    if (!b) {
        eng_matmul_nt(out, in, w, N, OC, C, 0);
        return;
    }
    // Start every row from the bias and let the matmul accumulate onto it.
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
    eng_matmul_nt(out, in, w, N, OC, C, 1);
}

// Training-side shapes are large enough that plain sgemm is the right tool
// for both products; beta = 1 gives the accumulate-into contract.
void eng_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int N, int C, int OC)
{
    if (N <= 0) return;
    if (din && OC > 0)   // din[N,C] += dout[N,OC] @ w[OC,C]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, din, C);
    if (dw)              // dw[OC,C] += dout^T[OC,N] @ in[N,C]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, in, C, 1.0f, dw, C);
    if (db)
        for (int n = 0; n < N; n++) v_add(db, dout + (size_t)n * OC, (size_t)OC);
}

// ---------------------------------------------------------------- conv2d

// Output size along one axis; the division floors, as in PyTorch, so a
// trailing partial window is dropped.
static int conv_out_dim(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

// The output columns ow in [*lo, *hi] read an input column iw = ow*stride -
// pad + kw inside [0, W); the others read padding. *hi < *lo when none do.
static void conv_valid_range(int *lo, int *hi, int kw, int stride, int pad, int W, int OW)
{
    int first = pad - kw;              // smallest ow*stride allowed
    int last = W - 1 + pad - kw;       // largest ow*stride allowed
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last < 0 ? -1 : last / stride;
    if (*hi > OW - 1) *hi = OW - 1;
}

// Zeroes the columns ow < lo and ow > hi of rows [oh_lo, oh_hi] of x[., OW]
// (at most `pad` columns each side). Column by column: written row by row,
// gcc turns each 1-element loop into a memset call, which costs far more.
static void zero_edge_columns(float *x, int OW, int oh_lo, int oh_hi, int lo, int hi)
{
    for (int ow = 0; ow < lo; ow++)
        for (int oh = oh_lo; oh <= oh_hi; oh++) x[(size_t)oh * OW + ow] = 0.0f;
    for (int ow = hi + 1; ow < OW; ow++)
        for (int oh = oh_lo; oh <= oh_hi; oh++) x[(size_t)oh * OW + ow] = 0.0f;
}

// col[(c*KH+kh)*KW+kw, oh*OW+ow] = img[c, oh*stride-pad+kh, ow*stride-pad+kw] (0 outside).
// Each (c, kh, kw) row of col is the input plane shifted by (kh-pad, kw-pad)
// and sampled every `stride`, with zeros where that leaves the plane: rows
// oh in [oh_lo, oh_hi] and columns ow in [lo, hi] read the plane.
static void im2col(float *restrict col, const float *restrict img, int C, int H, int W,
                   int KH, int KW, int stride, int pad, int OH, int OW)
{
    size_t P = (size_t)OH * OW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++) {
            int oh_lo, oh_hi;
            conv_valid_range(&oh_lo, &oh_hi, kh, stride, pad, H, OH);
            for (int kw = 0; kw < KW; kw++) {
                float *dst = col + ((size_t)(c * KH + kh) * KW + kw) * P;
                const float *plane = img + (size_t)c * H * W;
                int lo, hi;
                conv_valid_range(&lo, &hi, kw, stride, pad, W, OW);
                if (hi < lo || oh_hi < oh_lo) {
                    memset(dst, 0, P * sizeof(float));
                    continue;
                }
                if (oh_lo > 0) memset(dst, 0, (size_t)oh_lo * OW * sizeof(float));   // rows above the plane
                if (oh_hi < OH - 1)                                                      // and below it
                    memset(dst + (size_t)(oh_hi + 1) * OW, 0, (size_t)(OH - 1 - oh_hi) * OW * sizeof(float));
                if (stride == 1 && OW == W) {
                    // "Same" convolution: dst[p] = plane[p + shift] for every p
                    // from (oh_lo, lo) to (oh_hi, hi), one contiguous copy; it
                    // also fills the out-of-plane columns of those rows (from the
                    // neighbouring input row), which are then zeroed.
                    ptrdiff_t shift = (ptrdiff_t)(kh - pad) * W + (kw - pad);
                    size_t p0 = (size_t)oh_lo * W + lo, p1 = (size_t)oh_hi * W + hi + 1;
                    v_copy(dst + p0, plane + (ptrdiff_t)p0 + shift, p1 - p0);
                    zero_edge_columns(dst, OW, oh_lo, oh_hi, lo, hi);
                    continue;
                }
                int off = kw - pad;   // iw = ow*stride + off
                for (int oh = oh_lo; oh <= oh_hi; oh++) {
                    float *d = dst + (size_t)oh * OW;
                    const float *src = plane + (size_t)(oh * stride - pad + kh) * W;   // input row ih
                    for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                    if (stride == 1)
                        v_copy(d + lo, src + lo + off, (size_t)(hi - lo + 1));
                    else
                        for (int ow = lo; ow <= hi; ow++) d[ow] = src[ow * stride + off];
                    for (int ow = hi + 1; ow < OW; ow++) d[ow] = 0.0f;
                }
            }
        }
}

// The adjoint of im2col: img[c, ih, iw] += every col entry that was copied
// from it. Clobbers col (the entries that im2col sets to zero).
static void col2im_add(float *restrict img, float *restrict col, int C, int H, int W,
                       int KH, int KW, int stride, int pad, int OH, int OW)
{
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++) {
            int oh_lo, oh_hi;
            conv_valid_range(&oh_lo, &oh_hi, kh, stride, pad, H, OH);
            for (int kw = 0; kw < KW; kw++) {
                float *s = col + ((size_t)(c * KH + kh) * KW + kw) * OH * OW;
                float *plane = img + (size_t)c * H * W;
                int lo, hi;
                conv_valid_range(&lo, &hi, kw, stride, pad, W, OW);
                if (hi < lo || oh_hi < oh_lo) continue;
                if (stride == 1 && OW == W) {
                    // One contiguous add, as in im2col; zero the out-of-plane
                    // columns first so that they add nothing to the neighbours.
                    ptrdiff_t shift = (ptrdiff_t)(kh - pad) * W + (kw - pad);
                    size_t p0 = (size_t)oh_lo * W + lo, p1 = (size_t)oh_hi * W + hi + 1;
                    zero_edge_columns(s, OW, oh_lo, oh_hi, lo, hi);
                    v_add(plane + (ptrdiff_t)p0 + shift, s + p0, p1 - p0);
                    continue;
                }
                int off = kw - pad;
                for (int oh = oh_lo; oh <= oh_hi; oh++) {
                    float *dst = plane + (size_t)(oh * stride - pad + kh) * W;
                    const float *srow = s + (size_t)oh * OW;
                    if (stride == 1)
                        v_add(dst + lo + off, srow + lo, (size_t)(hi - lo + 1));
                    else
                        for (int ow = lo; ow <= hi; ow++) dst[ow * stride + off] += srow[ow];
                }
            }
        }
}

// A 1x1, stride-1, unpadded convolution is a plain matmul on the image itself.
static int conv_is_pointwise(int KH, int KW, int stride, int pad)
{
    return KH == 1 && KW == 1 && stride == 1 && pad == 0;
}

size_t eng_conv2d_col_size(int C, int H, int W, int KH, int KW, int stride, int pad)
{
    int OH = conv_out_dim(H, KH, stride, pad), OW = conv_out_dim(W, KW, stride, pad);
    return (size_t)C * KH * KW * OH * OW;
}

void eng_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                        int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    int OH = conv_out_dim(H, KH, stride, pad), OW = conv_out_dim(W, KW, stride, pad);
    int P = OH * OW;               // output pixels per channel
    int CK = C * KH * KW;          // rows of the column matrix
    for (int n = 0; n < B; n++) {
        const float *img = in + (size_t)n * C * H * W;
        float *o = out + (size_t)n * OC * P;   // [OC, P]
        const float *cols = img;                // [CK, P]
        if (!conv_is_pointwise(KH, KW, stride, pad)) {
            im2col(col, img, C, H, W, KH, KW, stride, pad, OH, OW);
            cols = col;
        }
        if (b)
            for (int oc = 0; oc < OC; oc++) v_fill(o + (size_t)oc * P, b[oc], (size_t)P);
        // o[OC,P] (+)= w[OC,CK] @ cols[CK,P]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, P, CK, 1.0f, w, CK, cols, P,
                    b ? 1.0f : 0.0f, o, P);
    }
}

void eng_conv2d_backward(float *din, float *dw, float *db, float *col, const float *dout,
                         const float *in, const float *w,
                         int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    int OH = conv_out_dim(H, KH, stride, pad), OW = conv_out_dim(W, KW, stride, pad);
    int P = OH * OW, CK = C * KH * KW;
    int pointwise = conv_is_pointwise(KH, KW, stride, pad);
    for (int n = 0; n < B; n++) {
        const float *img = in + (size_t)n * C * H * W;
        const float *g = dout + (size_t)n * OC * P;   // [OC, P]
        if (db)
            for (int oc = 0; oc < OC; oc++) db[oc] += v_sum(g + (size_t)oc * P, (size_t)P);
        if (dw) {
            // forward: o = w @ cols  =>  dw[OC,CK] += g[OC,P] @ cols^T[P,CK]
            const float *cols = img;
            if (!pointwise) {
                im2col(col, img, C, H, W, KH, KW, stride, pad, OH, OW);
                cols = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, CK, P, 1.0f, g, P, cols, P, 1.0f, dw, CK);
        }
        if (din) {
            // dcols[CK,P] = w^T[CK,OC] @ g[OC,P], scattered back by col2im.
            float *di = din + (size_t)n * C * H * W;
            if (pointwise) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, P, OC, 1.0f, w, CK, g, P, 1.0f, di, P);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, P, OC, 1.0f, w, CK, g, P, 0.0f, col, P);
                col2im_add(di, col, C, H, W, KH, KW, stride, pad, OH, OW);
            }
        }
    }
}

// ---------------------------------------------------------------- conv_transpose2d
// The adjoint of conv2d (PyTorch's ConvTranspose2d, output_padding 0): with
// w[C,OC,K,K] read as a conv2d weight mapping OC channels to C, the forward is
// conv2d's input gradient (cols = w^T @ x, scattered by col2im) and the
// backward is conv2d's forward (im2col of dout) plus its weight gradient.
int eng_conv_transpose2d_out_dim(int in, int k, int stride, int pad)
{
    return (in - 1) * stride - 2 * pad + k;
}

size_t eng_conv_transpose2d_col_size(int C, int H, int W, int OC, int K, int stride, int pad)
{
    (void)C;
    return (size_t)OC * K * K * H * W;   // the column matrix of one output image, [OC*K*K, H*W]
}

void eng_conv_transpose2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                                  int B, int C, int H, int W, int OC, int K, int stride, int pad)
{
    int OH = eng_conv_transpose2d_out_dim(H, K, stride, pad), OW = eng_conv_transpose2d_out_dim(W, K, stride, pad);
    int P = H * W, CK = OC * K * K;
    for (int n = 0; n < B; n++) {
        float *o = out + (size_t)n * OC * OH * OW;
        memset(o, 0, (size_t)OC * OH * OW * sizeof(float));
        // col[OC*K*K, P] = w^T[OC*K*K, C] @ x[C, P]  (w is [C, OC*K*K])
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, P, C, 1.0f, w, CK,
                    in + (size_t)n * C * P, P, 0.0f, col, P);
        col2im_add(o, col, OC, OH, OW, K, K, stride, pad, H, W);
        if (b)
            for (int oc = 0; oc < OC; oc++) {
                float *plane = o + (size_t)oc * OH * OW;
                for (int p = 0; p < OH * OW; p++) plane[p] += b[oc];
            }
    }
}

void eng_conv_transpose2d_backward(float *din, float *dw, float *db, float *col, const float *dout,
                                   const float *in, const float *w,
                                   int B, int C, int H, int W, int OC, int K, int stride, int pad)
{
    int OH = eng_conv_transpose2d_out_dim(H, K, stride, pad), OW = eng_conv_transpose2d_out_dim(W, K, stride, pad);
    int P = H * W, CK = OC * K * K;
    for (int n = 0; n < B; n++) {
        const float *g = dout + (size_t)n * OC * OH * OW;
        if (db)
            for (int oc = 0; oc < OC; oc++) db[oc] += v_sum(g + (size_t)oc * OH * OW, (size_t)OH * OW);
        if (!din && !dw) continue;
        im2col(col, g, OC, OH, OW, K, K, stride, pad, H, W);   // [CK, P]
        if (din)   // din[C,P] += w[C,CK] @ col[CK,P]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, CK, 1.0f, w, CK, col, P, 1.0f,
                        din + (size_t)n * C * P, P);
        if (dw)    // dw[C,CK] += x[C,P] @ col^T[P,CK]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, CK, P, 1.0f, in + (size_t)n * C * P, P, col, P,
                        1.0f, dw, CK);
    }
}

// ---------------------------------------------------------------- leaky relu
void eng_leaky_relu_forward(float *out, const float *in, size_t n, float slope)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : slope * in[i];
}

void eng_leaky_relu_backward(float *din, const float *dout, const float *in, size_t n, float slope)
{
    for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? dout[i] : slope * dout[i];
}

// ---------------------------------------------------------------- pooling

// One row of max-pooling windows, plain loops: o[ow], am[ow] for ow < OW,
// window ow starting at plane index row + ow*S. NaN propagates, as in
// PyTorch (the first NaN wins); ties keep the first maximum in row-major
// window order.
static void pool_row_exact(float *o, int *am, const float *x, int W, int row, int OW, int K, int S)
{
    for (int ow = 0; ow < OW; ow++) {
        int at0 = row + ow * S;
        float best = -INFINITY;
        int at = at0;
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                int idx = at0 + kh * W + kw;
                if (x[idx] > best || isnan(x[idx])) {
                    best = x[idx];
                    at = idx;
                    if (isnan(best)) goto done;
                }
            }
    done:
        o[ow] = best;
        am[ow] = at;
    }
}

// The 2x2, stride-2 case (every pooling layer of the CNNs here), over `L`
// adjacent windows of one row pair: `t` is the top-left input of the first
// window, `at0` its index in the plane. Inlined with constant L (8 or 4), so
// each line is one vector instruction (plus the even/odd shuffles).
// The select `!(v <= best)` is what gcc will turn into a vector blend
// (`v > best` stays a branch); it equals `v > best` unless a NaN is
// involved, so the exact NaN rule (see eng_maxpool2d_forward_naive) is left to
// the caller: z[l] turns NaN when a window holds a NaN (or an infinity).
static inline __attribute__((always_inline)) void
pool2x2_windows(float *restrict o, int *restrict am, float *restrict z, const float *restrict t,
                int W, int at0, const int L)
{
    const float *u = t + W;   // bottom row
    for (int l = 0; l < L; l++) {
        float a = t[2 * l], b = t[2 * l + 1], c = u[2 * l], d = u[2 * l + 1];
        float best = a;       // window order (0,0), (0,1), (1,0), (1,1); ties keep the first
        int at = 0;
        int take = !(b <= best);
        best = take ? b : best;
        at = take ? 1 : at;
        take = !(c <= best);
        best = take ? c : best;
        at = take ? W : at;
        take = !(d <= best);
        best = take ? d : best;
        at = take ? W + 1 : at;
        o[l] = best;
        am[l] = at0 + 2 * l + at;
        z[l] += (a + b + c + d) * 0.0f;
    }
}

// All planes, 2x2 windows at stride 2: OH = H/2, OW = W/2 (a trailing odd
// row/column is dropped). Each row of windows is covered by blocks of 8 (4
// when OW < 8), the last one shifted back to overlap the previous one
// (recomputing a few outputs is cheaper than a scalar tail). A plane that
// holds a NaN or an infinity is redone by the exact scalar code, as is
// everything when OW < 4.
static void maxpool2x2_forward(float *restrict out, int *restrict argmax, const float *restrict in,
                               size_t planes, int H, int W)
{
    int OH = H / 2, OW = W / 2;
    int L = OW >= V_LANES ? V_LANES : 4;
    for (size_t plane = 0; plane < planes; plane++) {
        const float *x = in + plane * H * W;
        float *o = out + plane * OH * OW;
        int *am = argmax + plane * OH * OW;
        if (OW >= 4) {
            float z[V_LANES] = {0};
            for (int oh = 0; oh < OH; oh++) {
                int row = 2 * oh * W;   // plane index of the row pair's first input
                float *orow = o + oh * OW;
                int *arow = am + oh * OW;
                for (int ow = 0; ow < OW; ow += L) {
                    int s = ow + L <= OW ? ow : OW - L;   // the overlapping last block
                    if (L == V_LANES)
                        pool2x2_windows(orow + s, arow + s, z, x + row + 2 * s, W, row + 2 * s, V_LANES);
                    else
                        pool2x2_windows(orow + s, arow + s, z, x + row + 2 * s, W, row + 2 * s, 4);
                }
            }
            float zs = ((z[0] + z[4]) + (z[2] + z[6])) + ((z[1] + z[5]) + (z[3] + z[7]));
            if (zs == 0.0f) continue;   // no NaN or infinity in the plane
        }
        for (int oh = 0; oh < OH; oh++) pool_row_exact(o + oh * OW, am + oh * OW, x, W, 2 * oh * W, OW, 2, 2);
    }
}

void eng_maxpool2d_forward(float *out, int *argmax, const float *in, int B, int C, int H, int W, int K, int S)
{
    if (K == 2 && S == 2) {
        maxpool2x2_forward(out, argmax, in, (size_t)B * C, H, W);
        return;
    }
    eng_maxpool2d_forward_naive(out, argmax, in, B, C, H, W, K, S);
}

// Each output's gradient goes to the one input it copied (argmax is an index
// within the plane); overlapping windows may send several to one input.
void eng_maxpool2d_backward(float *din, const float *dout, const int *argmax, int B, int C, int H, int W, int K, int S)
{
    size_t P = (size_t)((H - K) / S + 1) * ((W - K) / S + 1);
    for (size_t plane = 0; plane < (size_t)B * C; plane++) {
        float *d = din + plane * H * W;
        const float *g = dout + plane * P;
        const int *am = argmax + plane * P;
        for (size_t p = 0; p < P; p++) d[am[p]] += g[p];
    }
}

// No padding, so every window holds exactly K*K inputs.
void eng_avgpool2d_forward(float *out, const float *in, int B, int C, int H, int W, int K, int S)
{
    int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
    float inv = 1.0f / (float)(K * K);
    for (size_t plane = 0; plane < (size_t)B * C; plane++) {
        const float *x = in + plane * H * W;
        float *o = out + plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float s = 0.0f;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) s += x[(oh * S + kh) * W + ow * S + kw];
                o[oh * OW + ow] = s * inv;
            }
    }
}

// Each output spreads dout/(K*K) over its window.
void eng_avgpool2d_backward(float *din, const float *dout, int B, int C, int H, int W, int K, int S)
{
    int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
    float inv = 1.0f / (float)(K * K);
    for (size_t plane = 0; plane < (size_t)B * C; plane++) {
        float *d = din + plane * H * W;
        const float *g = dout + plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float v = g[oh * OW + ow] * inv;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) d[(oh * S + kh) * W + ow * S + kw] += v;
            }
    }
}

void eng_global_avgpool_forward(float *out, const float *in, int B, int C, int HW)
{
    for (size_t plane = 0; plane < (size_t)B * C; plane++) {
        const float *x = in + plane * HW;
        float s = 0.0f;
        for (int i = 0; i < HW; i++) s += x[i];
        out[plane] = s / (float)HW;
    }
}

void eng_global_avgpool_backward(float *din, const float *dout, int B, int C, int HW)
{
    for (size_t plane = 0; plane < (size_t)B * C; plane++) {
        float v = dout[plane] / (float)HW;
        float *d = din + plane * HW;
        for (int i = 0; i < HW; i++) d[i] += v;
    }
}

// ---------------------------------------------------------------- activations

// The vector loops need distinct buffers (restrict), or the same one.
static void relu_distinct(float *restrict out, const float *restrict in, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) out[i + l] = in[i + l] > 0.0f ? in[i + l] : 0.0f;
    for (; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

static void relu_inplace(float *x, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) x[i + l] = x[i + l] > 0.0f ? x[i + l] : 0.0f;
    for (; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void eng_relu_forward(float *out, const float *in, size_t n)
{
    if (out == in)
        relu_inplace(out, n);
    else
        relu_distinct(out, in, n);
}

void eng_relu_backward(float *restrict din, const float *restrict dout, const float *restrict in, size_t n)
{
    // The gradient at exactly 0 is taken as 0, as in PyTorch.
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) {
            float g = dout[i + l];   // loaded unconditionally, so that the select vectorises
            din[i + l] += in[i + l] > 0.0f ? g : 0.0f;
        }
    for (; i < n; i++) din[i] += in[i] > 0.0f ? dout[i] : 0.0f;
}

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)
#define GELU_CUBIC 0.044715f

void eng_gelu_forward(float *out, const float *in, size_t n)
{
    // as x / (1 + exp(-2u)) on vectors where the CPU has them (act_simd.c)
    eng_cpu_level lvl = eng_cpu_level_get();
    if (lvl == ENG_CPU_AVX512) { eng__gelu_tanh_avx512(out, in, n); return; }
    if (lvl == ENG_CPU_AVX2) { eng__gelu_tanh_avx2(out, in, n); return; }
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + GELU_CUBIC * x * x * x)));
    }
}

void eng_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float t = tanhf(GELU_SCALE * (x + GELU_CUBIC * x * x * x));
        float dinner = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * x * x);   // d(tanh argument)/dx
        float grad = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
        din[i] += grad * dout[i];
    }
}

void eng_tanh_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}

// tanh' = 1 - tanh^2: the forward output is all the backward needs.
void eng_tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void eng_sigmoid_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        // Only ever exp of a non-positive number: no overflow for large |x|.
        float x = in[i];
        if (x >= 0.0f) {
            out[i] = 1.0f / (1.0f + expf(-x));
        } else {
            float e = expf(x);
            out[i] = e / (1.0f + e);
        }
    }
}

// sigmoid' = s (1 - s), from the forward output s.
void eng_sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}

// ---------------------------------------------------------------- batch norm
// gamma / beta may also be NULL here (meaning 1 / 0: an affine=False layer).

// Channel c's running statistics after a training batch with mean mu and
// sum of squared deviations ss over cnt values (var = ss / cnt). Shared by the
// fast and the reference kernel. Either pointer may be NULL.
static void update_running(float *running_mean, float *running_var, int c, double mu, double ss, double var,
                           size_t cnt, float momentum) {
    if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
    if (running_var) {
        // PyTorch updates running_var with the unbiased variance (and
        // refuses cnt == 1; here that case falls back to the biased one).
        double unbiased = cnt > 1 ? ss / (double)(cnt - 1) : var;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
    }
}

// Statistics per channel, one image plane at a time: each plane's mean and
// centred sum of squares M2_p in float lanes (the plane is re-read from L1),
// then combined in double (Chan et al.'s pairwise update, for equal counts):
//   M2 = sum_p M2_p + HW * (sum_p d_p^2 - (sum_p d_p)^2 / B),  d_p = mean_p - K,
// where K, the channel's first value, keeps the float sums and d_p small
// when |mean| >> std (no cancellation; the naive version's two passes in
// double agree to float rounding).
void eng_batchnorm2d_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                   float *running_var, const float *in, const float *gamma,
                                   const float *beta, int B, int C, int HW, float momentum, float eps)
{
    size_t cnt = (size_t)B * HW;   // values per channel
    if (cnt == 0) return;
    for (int c = 0; c < C; c++) {
        float K = in[(size_t)c * HW];
        double m2 = 0.0, d1 = 0.0, d2 = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            float dp = v_sum_dev(x, K, (size_t)HW) / (float)HW;   // this plane's mean - K
            m2 += v_sum_sq_dev(x, K + dp, (size_t)HW);
            d1 += dp;
            d2 += (double)dp * dp;
        }
        double mu = K + d1 / B;
        double ss = m2 + (double)HW * (d2 - d1 * d1 / B);   // sum of (x - mu)^2
        if (ss < 0.0) ss = 0.0;
        double var = ss / (double)cnt;   // biased: what normalisation uses
        float r = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu;
        rstd[c] = r;
        // y = (x - mu) * rstd * gamma + beta, folded into one multiply-add.
        float scale = r * (gamma ? gamma[c] : 1.0f);
        float shift = (beta ? beta[c] : 0.0f) - (float)mu * scale;
        for (int n = 0; n < B; n++) {
            size_t at = ((size_t)n * C + c) * HW;
            v_scale_shift(out + at, in + at, scale, shift, (size_t)HW);
        }
        update_running(running_mean, running_var, c, mu, ss, var, cnt, momentum);
    }
}

// Folds the running statistics and the affine parameters into one
// multiply-add per value (as PyTorch's CPU kernel does). Walks the planes in
// memory order (large batches stream from DRAM), redoing the fold per plane:
// one division per HW values.
void eng_batchnorm2d_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var,
                                   int B, int C, int HW, float eps)
{
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            float scale = (gamma ? gamma[c] : 1.0f) / sqrtf(running_var[c] + eps);
            float shift = (beta ? beta[c] : 0.0f) - running_mean[c] * scale;
            size_t at = ((size_t)n * C + c) * HW;
            v_scale_shift(out + at, in + at, scale, shift, (size_t)HW);
        }
}

// d[i] += k * (g[i] - mg - (x[i] - mu) * rmgx) for i < n: the input-gradient
// step of batchnorm backward over one plane.
static void bn_backward_plane(float *restrict d, const float *restrict g, const float *restrict x,
                              float k, float mg, float mu, float rmgx, size_t n)
{
    size_t i = 0;
    for (; i + V_LANES <= n; i += V_LANES)
        for (int l = 0; l < V_LANES; l++) d[i + l] += k * (g[i + l] - mg - (x[i + l] - mu) * rmgx);
    for (; i < n; i++) d[i] += k * (g[i] - mg - (x[i] - mu) * rmgx);
}

// din = gamma * rstd * (dout - mean(dout) - xhat * mean(dout * xhat)): the
// last two terms are the paths through the batch mean and variance. The sums
// go plane by plane in float lanes, then in double, as in forward_train.
void eng_batchnorm2d_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *in, const float *gamma, const float *mean,
                              const float *rstd, int B, int C, int HW)
{
    double cnt = (double)B * HW;
    for (int c = 0; c < C; c++) {
        float mu = mean[c], r = rstd[c];
        // sum(dout) and sum(dout * xhat), xhat = (x - mu) * rstd
        double sg = 0.0, sgx = 0.0;
        for (int n = 0; n < B; n++) {
            size_t at = ((size_t)n * C + c) * HW;
            sg += v_sum(dout + at, (size_t)HW);
            sgx += v_dot_dev(dout + at, in + at, mu, (size_t)HW);
        }
        sgx *= r;
        if (dbeta) dbeta[c] += (float)sg;
        if (dgamma) dgamma[c] += (float)sgx;
        if (!din) continue;
        float k = (gamma ? gamma[c] : 1.0f) * r;
        float mg = (float)(sg / cnt), rmgx = r * (float)(sgx / cnt);
        for (int n = 0; n < B; n++) {
            size_t at = ((size_t)n * C + c) * HW;
            bn_backward_plane(din + at, dout + at, in + at, k, mg, mu, rmgx, (size_t)HW);
        }
    }
}

// ---------------------------------------------------------------- softmax / loss

// Returns the maximum of x[0..C), -INFINITY for C == 0.
static float row_max(const float *x, int C)
{
    float m = -INFINITY;
    for (int j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
    return m;
}

// Subtracting the row max keeps every exp in (0, 1]; the row sum is in double.
void eng_softmax_forward(float *out, const float *in, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float m = row_max(x, C);
        double s = 0.0;
        for (int j = 0; j < C; j++) {
            y[j] = expf(x[j] - m);
            s += y[j];
        }
        float inv = (float)(1.0 / s);
        for (int j = 0; j < C; j++) y[j] *= inv;
    }
}

void eng_log_softmax_forward(float *out, const float *in, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float m = row_max(x, C);
        double s = 0.0;
        for (int j = 0; j < C; j++) s += expf(x[j] - m);
        // y = x - m - log(s): subtracting m first keeps large logits exact
        // (rounding m + log(s) to float would cost up to half an ulp of m).
        float ls = (float)log(s);
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) - ls;
    }
}

float eng_cross_entropy_forward(float *probs, const float *logits, const int *targets, int N, int C)
{
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * C;
        float *p = probs + (size_t)n * C;
        assert(targets[n] >= 0 && targets[n] < C);
        float m = row_max(x, C);
        double s = 0.0;
        for (int j = 0; j < C; j++) {
            p[j] = expf(x[j] - m);
            s += p[j];
        }
        float inv = (float)(1.0 / s);
        for (int j = 0; j < C; j++) p[j] *= inv;
        // -log p[target] from the logits, finite even when p[target] underflows to 0.
        total += (double)m + log(s) - (double)x[targets[n]];
    }
    return N > 0 ? (float)(total / N) : 0.0f;
}

// d(mean loss)/dlogits = (softmax - onehot) / N; scale is the upstream gradient.
void eng_cross_entropy_backward(float *dlogits, const float *probs, const int *targets, int N, int C, float scale)
{
    float k = scale / (float)N;
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * C;
        float *d = dlogits + (size_t)n * C;
        for (int j = 0; j < C; j++) d[j] += k * p[j];
        d[targets[n]] -= k;
    }
}

// ---------------------------------------------------------------- naive references
// The plain versions of the kernels vectorised above (declared at the top of
// the file): what the tests compare the fast paths with. Keep them simple,
// and keep them out of any fast-math build.

// Direct convolution, no im2col: out[n,oc,oh,ow] = b[oc] + sum over c, kh, kw.
void eng_conv2d_forward_naive(float *out, const float *in, const float *w, const float *b,
                              int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    int OH = conv_out_dim(H, KH, stride, pad), OW = conv_out_dim(W, KW, stride, pad);
    for (int n = 0; n < B; n++)
        for (int oc = 0; oc < OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    float s = b ? b[oc] : 0.0f;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += w[((size_t)(oc * C + c) * KH + kh) * KW + kw] *
                                     in[((size_t)(n * C + c) * H + ih) * W + iw];
                            }
                    out[((size_t)(n * OC + oc) * OH + oh) * OW + ow] = s;
                }
}

// The transpose of the loop above: each output gradient flows to its bias,
// to every weight it multiplied and to every input it read.
void eng_conv2d_backward_naive(float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w,
                               int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    int OH = conv_out_dim(H, KH, stride, pad), OW = conv_out_dim(W, KW, stride, pad);
    for (int n = 0; n < B; n++)
        for (int oc = 0; oc < OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    float g = dout[((size_t)(n * OC + oc) * OH + oh) * OW + ow];
                    if (db) db[oc] += g;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                size_t wi = ((size_t)(oc * C + c) * KH + kh) * KW + kw;
                                size_t xi = ((size_t)(n * C + c) * H + ih) * W + iw;
                                if (dw) dw[wi] += g * in[xi];
                                if (din) din[xi] += g * w[wi];
                            }
                }
}

// Any K, S. Every (batch, channel) pair is an independent H x W plane; `plane` walks them.
void eng_maxpool2d_forward_naive(float *out, int *argmax, const float *in, int B, int C, int H, int W, int K, int S)
{
    int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
    for (size_t plane = 0; plane < (size_t)B * C; plane++) {
        const float *x = in + plane * H * W;
        for (int oh = 0; oh < OH; oh++)
            pool_row_exact(out + (plane * OH + oh) * OW, argmax + (plane * OH + oh) * OW, x, W,
                           oh * S * W, OW, K, S);
    }
}

void eng_relu_forward_naive(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void eng_relu_backward_naive(float *din, const float *dout, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) din[i] += in[i] > 0.0f ? dout[i] : 0.0f;
}

void eng_batchnorm2d_forward_train_naive(float *out, float *mean, float *rstd, float *running_mean,
                                         float *running_var, const float *in, const float *gamma,
                                         const float *beta, int B, int C, int HW, float momentum, float eps)
{
    size_t cnt = (size_t)B * HW;   // values per channel
    for (int c = 0; c < C; c++) {
        // Two passes in double: exact enough that var is never negative.
        double s = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) s += x[i];
        }
        double mu = s / (double)cnt;
        double ss = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                double d = x[i] - mu;
                ss += d * d;
            }
        }
        double var = ss / (double)cnt;   // biased: what normalisation uses
        float r = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu;
        rstd[c] = r;
        // y = (x - mu) * rstd * gamma + beta, folded into one multiply-add.
        float scale = r * (gamma ? gamma[c] : 1.0f);
        float shift = (beta ? beta[c] : 0.0f) - (float)mu * scale;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            float *y = out + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
        }
        update_running(running_mean, running_var, c, mu, ss, var, cnt, momentum);
    }
}

// Folds the running statistics and the affine parameters into one
// multiply-add per value (as PyTorch's CPU kernel does).
void eng_batchnorm2d_forward_infer_naive(float *out, const float *in, const float *gamma, const float *beta,
                                         const float *running_mean, const float *running_var,
                                         int B, int C, int HW, float eps)
{
    for (int c = 0; c < C; c++) {
        float scale = (gamma ? gamma[c] : 1.0f) / sqrtf(running_var[c] + eps);
        float shift = (beta ? beta[c] : 0.0f) - running_mean[c] * scale;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            float *y = out + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
        }
    }
}

void eng_batchnorm2d_backward_naive(float *din, float *dgamma, float *dbeta, const float *dout,
                                    const float *in, const float *gamma, const float *mean,
                                    const float *rstd, int B, int C, int HW)
{
    double cnt = (double)B * HW;
    for (int c = 0; c < C; c++) {
        float mu = mean[c], r = rstd[c];
        // With xhat = (x - mu) * rstd: sum(dout) and sum(dout * xhat).
        double sg = 0.0, sgx = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            const float *g = dout + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sg += g[i];
                sgx += (double)g[i] * ((x[i] - mu) * r);
            }
        }
        if (dbeta) dbeta[c] += (float)sg;
        if (dgamma) dgamma[c] += (float)sgx;
        if (!din) continue;
        // din = gamma * rstd * (dout - mean(dout) - xhat * mean(dout * xhat)):
        // the last two terms are the paths through the batch mean and variance.
        float gm = gamma ? gamma[c] : 1.0f;
        float k = gm * r;
        float mg = (float)(sg / cnt), mgx = (float)(sgx / cnt);
        for (int n = 0; n < B; n++) {
            const float *x = in + ((size_t)n * C + c) * HW;
            const float *g = dout + ((size_t)n * C + c) * HW;
            float *d = din + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) d[i] += k * (g[i] - mg - (x[i] - mu) * r * mgx);
        }
    }
}
