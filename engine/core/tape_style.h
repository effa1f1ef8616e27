// tape_style.h — tape ops (see tape.h) for training image-to-image networks
// with a perceptual loss (fast neural style, Johnson et al. 2016): the
// TransformerNet's reflection padding, instance norm and nearest upsampling,
// and the loss's Gram matrix and mean squared error. Layouts are [B, C, H, W];
// each op matches the PyTorch module named beside it. Each wrapper records an
// entry only when the tape has grad enabled and some input has a gradient.
#ifndef ENG_TAPE_STYLE_H
#define ENG_TAPE_STYLE_H
#include "engine/core/tape.h"   // eng_tape, eng_var

// torch.nn.ReflectionPad2d(p): x[B,C,H,W] -> [B,C,H+2p,W+2p]; needs 0 <= p < H, W.
eng_var *eng_t_reflect_pad2d(eng_tape *t, eng_var *x, int p);
// torch.nn.InstanceNorm2d(C, affine=True): each (b, c) plane normalised by its
// own mean and biased variance, then * w[c] + b[c]. w, b [C] (NULL: 1 and 0).
eng_var *eng_t_instance_norm(eng_tape *t, eng_var *x, eng_var *w, eng_var *b, float eps);
// torch.nn.Upsample(scale_factor=s, mode="nearest"): x[B,C,H,W] -> [B,C,H*s,W*s].
eng_var *eng_t_upsample_nearest(eng_tape *t, eng_var *x, int s);
// Gram matrix of x[B,C,H,W] -> [B,C,C]: G[b] = F F^T / (C*H*W), F = x[b] as
// [C, H*W] (the normalisation of pytorch/examples fast_neural_style).
eng_var *eng_t_gram(eng_tape *t, eng_var *x);
// Mean of (a - b)^2 over all elements (same count) -> [1]
// (torch.nn.functional.mse_loss, reduction "mean").
eng_var *eng_t_mse(eng_tape *t, eng_var *a, eng_var *b);

#endif
