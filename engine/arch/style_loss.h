// style_loss.h — the perceptual loss of neural style transfer (Gatys et al.
// 2016; Johnson et al. 2016): content = distance between feature maps of an
// intermediate layer, style = distance between Gram matrices of the feature
// maps of several depths, over a fixed LOSS NETWORK.
//
// There is no pretrained VGG on these machines, so the loss network is a
// small fixed multi-scale convolutional network whose filters are drawn from
// our RNG (engine/core/rng.h) from a seed: random filters at several scales
// carry texture and style (Ustyuzhaninov et al. 2017; He, Wang & Hopcroft
// 2016). Its weights are never stored: the seed (default
// ENG_LOSSNET_DEFAULT_SEED) regenerates them bit for bit. See
// docs/design/stylization.md ("The perceptual loss network") for the design.
//
// Everything is recorded on an eng_tape (engine/core/tape.h), so gradients
// flow to the image being optimised (inferd stylize) or to the network that
// produced it (inferd train --task image-stylization). The loss network's own
// weights never take gradients.
//
// Images are [B, 3, H, W], planar RGB, pixels 0..255 (the TransformerNet's
// range), H and W at least ENG_LOSSNET_MIN_SIDE.
#ifndef ENG_STYLE_LOSS_H
#define ENG_STYLE_LOSS_H
#include <stdint.h>              // uint64_t
#include "engine/core/tape.h"    // eng_tape, eng_var

#define ENG_LOSSNET_MAX_LAYERS 8
#define ENG_LOSSNET_DEFAULT_SEED 20161127u
#define ENG_LOSSNET_MIN_SIDE 32   // the deepest level (1/16 scale) needs 2 pixels to reflect-pad
#define ENG_STYLE_DEFAULT_STYLE_WEIGHT 1.0f
#define ENG_STYLE_DEFAULT_TV_WEIGHT 0.0f

typedef struct eng_lossnet eng_lossnet;

// Builds the loss network from `seed`. 0, or -1 with *err (out of memory).
int eng_lossnet_new(eng_lossnet **out, uint64_t seed, char **err);
void eng_lossnet_free(eng_lossnet *n);   // NULL-safe
int eng_lossnet_n_layers(const eng_lossnet *n);       // feature layers (<= ENG_LOSSNET_MAX_LAYERS)
int eng_lossnet_content_layer(const eng_lossnet *n);  // index of the content layer
int eng_lossnet_channels(const eng_lossnet *n, int layer);

// x[B,3,H,W] (0..255) -> feats[0..n_layers-1], each [B, C_l, H_l, W_l] (post-ReLU),
// recorded on t (gradients reach x when x has a grad). Returns n_layers.
int eng_lossnet_features(eng_tape *t, const eng_lossnet *n, eng_var *x, eng_var **feats);

// The style image's Gram matrices, computed once (one image, any size >= MIN_SIDE).
typedef struct {
    int n_layers;
    int channels[ENG_LOSSNET_MAX_LAYERS];
    float *gram[ENG_LOSSNET_MAX_LAYERS];     // [C_l * C_l] (eng_t_gram's normalisation; random levels: of the
                                             // features minus each channel's mean, see style_loss.c)
    float norm[ENG_LOSSNET_MAX_LAYERS];      // mean of gram[l]^2 (random levels: + 1e-3 x the uncentred
                                             // Gram's): the layer's loss is divided by it
} eng_style_target;

// style[3][H][W] (0..255). 0, or -1 with *err (too small, out of memory).
int eng_style_target_compute(eng_style_target *st, const eng_lossnet *n, const float *style,
                             int H, int W, char **err);
void eng_style_target_free(eng_style_target *st);   // NULL-safe, leaves it zeroed

typedef struct {
    float content_weight;                       // default 1
    float style_weight;                         // default ENG_STYLE_DEFAULT_STYLE_WEIGHT
    float tv_weight;                            // total variation (smoothness), default small
    float layer_weight[ENG_LOSSNET_MAX_LAYERS]; // per style layer, default 1 each
} eng_style_weights;
void eng_style_weights_default(eng_style_weights *w);

typedef struct {
    float content;   // content term, before content_weight (relative: 1 = as far as a black image)
    float style;     // sum over layers of layer_weight * relative Gram error, before style_weight
    float tv;        // total variation term, before tv_weight
    float total;     // the returned loss
    float style_layer[ENG_LOSSNET_MAX_LAYERS];   // each layer's relative Gram error
} eng_style_loss_parts;

// -> [1]: content_weight * content + style_weight * style + tv_weight * tv,
// averaged over the batch. y and content are [B,3,H,W] of the same shape
// (content may be NULL: no content term, pure texture synthesis). content's
// features are computed without gradients. Each term is relative, so the
// weights do not depend on the image or the layer's scale:
//   content = mse(F_c(y), F_c(content)) / mean(F_c(content)^2)
//   style_l = mse(G_l(y), G_l(style)) / mean(G_l(style)^2)
//             (G_l: Gram of the colour level; of the centred features at the random levels)
//   tv      = mean of squared differences of neighbouring pixels, / 255^2
// parts (may be NULL) receives each term.
eng_var *eng_style_loss(eng_tape *t, const eng_lossnet *n, eng_var *y, eng_var *content,
                        const eng_style_target *st, const eng_style_weights *w,
                        eng_style_loss_parts *parts);

#endif
