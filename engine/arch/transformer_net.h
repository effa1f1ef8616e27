// transformer_net.h — the feed-forward style network of Johnson et al. 2016
// exactly as pytorch/examples fast_neural_style defines it (TransformerNet):
//   conv1 9x9 3->c1, in1, relu; conv2 3x3/2 ->c2, in2, relu; conv3 3x3/2 ->c3,
//   in3, relu; res1..res5 (conv, in, relu, conv, in, + x); deconv1 (nearest
//   upsample x2, 3x3) ->c2, in4, relu; deconv2 ->c1, in5, relu; deconv3 9x9 ->3.
// Every convolution is reflection-padded by k/2 (ConvLayer); the instance
// norms are affine with eps 1e-5 and never use running statistics.
// (c1, c2, c3) = (32, 64, 128) x config "width" (default 1; slimmer nets for
// faster styles). Parameter names are the state_dict's ("conv1.conv2d.weight",
// "in1.weight", "res3.conv2.conv2d.bias", "deconv3.conv2d.weight", ...);
// in<i>.running_mean/var entries of old checkpoints are ignored.
// Pixels are in 0..255 in and out (pytorch/examples feeds x*255 and clamps
// the output to 0..255), planar RGB.
//
// Sizes: an H x W input gives the network's own 4*ceil(ceil(H/2)/2) rows
// (more than H when H is not a multiple of 4: stride-2 convolutions round up);
// the forward computes only the top-left H x W of that output, which is what
// PyTorch's output cropped to the input size holds.
#ifndef ENG_TRANSFORMER_NET_H
#define ENG_TRANSFORMER_NET_H
#include <jansson.h>              // json_t
#include <stddef.h>               // size_t
#include "engine/core/arena.h"    // eng_arena
#include "engine/io/safetensors.h"  // eng_st_file

#define ENG_TNET_MIN_SIDE 5   // reflection padding of 4 (9x9) and of 1 at H/4 need this much

typedef struct {
    const float *w, *b;   // w[oc][c][k][k], b[oc]
    int c, oc, k, stride, upsample;
} eng_tnet_conv;

typedef struct {
    const float *g, *b;   // affine scale and shift [c]
    int c;
} eng_tnet_norm;

typedef struct {
    int c1, c2, c3;                  // channel widths (32, 64, 128 at width 1)
    float width;                     // config "width"
    eng_tnet_conv conv1, conv2, conv3, res_conv[5][2], deconv1, deconv2, deconv3;
    eng_tnet_norm in1, in2, in3, res_in[5][2], in4, in5;
    size_t n_params;
    eng_st_file weights;             // the mapped safetensors file
} eng_tnet;

// Reads config ("width") and maps <dir>/model.safetensors, checking every
// name and shape. Returns 0 with *out, or -1 with *err; nothing leaks.
int eng_tnet_load_dir(eng_tnet **out, const char *dir, const json_t *config, char **err);
void eng_tnet_free(eng_tnet *n);   // NULL-safe

// Scratch bytes the forward of ONE H x W image takes from the arena (the
// whole batch reuses them): activations at 1, 1/2 and 1/4 scale + the
// im2col tile. Servers bound a request's memory with it.
size_t eng_tnet_scratch_bytes(const eng_tnet *n, int H, int W);

// x[B][3][H][W] (0..255) -> y[B][3][H][W] (unclamped: callers clamp to 0..255).
// All B images have the same size (H, W >= ENG_TNET_MIN_SIDE); scratch from
// `a` (the caller resets it).
void eng_tnet_forward(const eng_tnet *n, eng_arena *a, const float *x, int B, int H, int W, float *y);

// Tests only: the im2col tile target in floats (0 = the default, 2 MB), so
// small images exercise tiles that split output rows. Process-wide; not for
// use while a forward runs.
void eng_tnet_set_tile_floats(size_t floats);

#endif
