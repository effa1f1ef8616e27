// dcgan.h — a DCGAN (Radford et al. 2016), optionally class-conditional
// (Mirza & Osindero 2014), for small gray or color images (H and W multiples of 4):
//   generator:     [z ; onehot(label)] -> linear -> [2g, H/4, W/4] -> BN, ReLU
//                  -> conv_transpose 4x4 s2 -> [g, H/2, W/2] -> BN, ReLU
//                  -> conv_transpose 4x4 s2 -> [C, H, W] -> tanh
//   discriminator: [x ; onehot(label) as constant planes] -> conv 4x4 s2 -> [d, H/2, W/2], leaky 0.2
//                  -> conv 4x4 s2 -> [2d, H/4, W/4] -> BN, leaky 0.2 -> linear -> 1 logit
// config.json: {"task":"image-generation","arch":"dcgan","n_latent":64,"channels":1,
// "height":28,"width":28,"g_channels":32,"d_channels":32,"labels":[...]} (no
// "labels": unconditional). Tensors are named as in a PyTorch module with
// submodules g.fc, g.bn0, g.up1, g.bn1, g.up2 and d.conv1, d.conv2, d.bn2, d.fc
// (convolution kernels in PyTorch's layouts). model.safetensors holds the
// generator; a training run holds both networks in one parameter table.
//
// Serving (eng_dcgan_prepare_serving at load, then eng_dcgan_serve) folds
// each batch norm into the layer before it (copies: the mapped weights stay
// as trained) and runs the whole batch through each layer as one product
// (eng_gemm_nt, batch-invariant; engine/core/conv_batch.h), so an image's
// bits depend only on its latent and label, never on what else is in the batch.
#ifndef ENG_DCGAN_H
#define ENG_DCGAN_H
#include <jansson.h>              // json_t
#include <stdint.h>               // uint64_t
#include "engine/arch/params.h"   // ENG_PARAM_HEAD
#include "engine/core/tape.h"     // eng_var, eng_tape
#include "engine/io/safetensors.h"   // eng_st_file

#define ENG_DCGAN_MAX_TENSORS 24

typedef struct {
    ENG_PARAM_HEAD;
    int buffer;       // 1: batch-norm running statistic (not trained)
    eng_var v;        // the tensor as a tape variable (trainable ones)
} eng_dcgan_tensor;

typedef struct {
    int n_latent, n_classes;          // n_classes 0: unconditional
    int channels, height, width;
    int g_ch, d_ch;                   // generator / discriminator widths
    int n_tensors, n_g_tensors;       // the generator's tensors come first
    eng_dcgan_tensor tensors[ENG_DCGAN_MAX_TENSORS];
    size_t n_params;                  // floats of every tensor in the table (buffers included)
    size_t n_g_params;                // floats of the generator's tensors (a prefix)
    size_t n_trainable;               // trainable floats (buffers excluded)
    float *owned, *grads;             // training: one arena each, in table order
    eng_st_file st;                   // serving: the mapped generator
    // serving copies (eng_dcgan_prepare_serving): g.fc with bn0 folded, rows
    // in NHWC order; up1 with bn1 folded and up2, as conv_batch.h's wt
    float *serve, *fc_w, *fc_b, *up1_wt, *up1_b, *up2_wt, *up2_b;
} eng_dcgan;

// Reads the hyperparameters from config (labels: n_classes = their count)
// and builds the tensor table; with_d = 1 adds the discriminator. 0 or -1 with *err.
int eng_dcgan_init(eng_dcgan *m, const json_t *config, int with_d, char **err);
void eng_dcgan_free(eng_dcgan *m);   // NULL-safe
// Owned values with DCGAN's init (weights N(0, 0.02), BN gamma N(1, 0.02)), and gradients.
void eng_dcgan_init_params(eng_dcgan *m, uint64_t seed);
// Maps the generator's tensors from a safetensors file (names and shapes checked). 0 or -1 with *err.
int eng_dcgan_load(eng_dcgan *m, const char *path, char **err);
// Writes the generator's tensors as a safetensors file. 0 or -1 with *err.
int eng_dcgan_save_generator(const eng_dcgan *m, const char *path, char **err);

// z[B, n_latent] (no grad) and labels[B] (NULL when unconditional) ->
// images [B, C, H, W] in [-1, 1]. Batch norm: the tape's mode (training:
// batch statistics, running ones updated when update_stats).
eng_var *eng_dcgan_generate(eng_dcgan *m, eng_tape *t, eng_var *z, const int *labels, int update_stats);
// Builds the serving copies from the generator's current tensors. 0, or -1
// with *err (out of memory).
int eng_dcgan_prepare_serving(eng_dcgan *m, char **err);
// The serving generator (eval-mode batch norm; after eng_dcgan_prepare_serving):
// z[B, n_latent], labels[B] (NULL when unconditional) -> y[B, C, H, W] in
// [-1, 1], equal to eng_dcgan_generate's within float rounding; scratch from `a`.
void eng_dcgan_serve(const eng_dcgan *m, eng_arena *a, const float *z, const int *labels, int B, float *y);
// x[B, C, H, W] -> logits [B, 1] (batch statistics in training mode, running stats never updated).
eng_var *eng_dcgan_discriminate(eng_dcgan *m, eng_tape *t, eng_var *x, const int *labels);

// The latents of a request: n vectors of n_latent standard normals drawn in
// order from one generator seeded with `seed`, so image i of a request does
// not depend on n.
void eng_dcgan_latents(uint64_t seed, int n, int n_latent, float *z);

#endif
