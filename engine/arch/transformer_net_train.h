// transformer_net_train.h — TransformerNet (see transformer_net.h) as a
// trainable network: the same layers written on the autograd tape
// (engine/core/tape_style.h), with every parameter in one owned buffer under
// the state_dict names and shapes engine/arch/transformer_net.c loads, so a
// trained network is saved as model.safetensors and served as it is.
// Used by the image-stylization trainer (engine/train/image_stylization.c).
#ifndef ENG_TRANSFORMER_NET_TRAIN_H
#define ENG_TRANSFORMER_NET_TRAIN_H
#include <stdint.h>               // uint64_t
#include "engine/arch/params.h"   // ENG_PARAM_HEAD
#include "engine/core/tape.h"     // eng_tape, eng_var

#define ENG_TNET_N_TENSORS 62   // 16 convolutions and 15 instance norms, a weight and a bias each

typedef struct {
    ENG_PARAM_HEAD;
    eng_var v;        // the tensor as a tape variable
} eng_tnet_tensor;

typedef struct {
    float width;                      // channel multiplier (config "width")
    int c1, c2, c3;                   // 32, 64, 128 x width, rounded as the loader rounds
    eng_tnet_tensor tensors[ENG_TNET_N_TENSORS];   // in the loader's order
    size_t n_params;
    float *owned, *grads;             // one buffer each, in table order
} eng_tnet_train;

// Builds the table for `width` (1/32..4) with PyTorch's default initialisation
// (convolutions uniform(+-1/sqrt(fan_in)) for weight and bias, norms 1 and 0)
// drawn from `seed`, except that the last convolution starts at the pixel
// scale (weights x 64, bias 127.5). 0, or -1 with *err.
int eng_tnet_train_init(eng_tnet_train *m, float width, uint64_t seed, char **err);
// Overwrites the values with a model directory's model.safetensors (same
// width; names and shapes checked). 0, or -1 with *err.
int eng_tnet_train_load(eng_tnet_train *m, const char *dir, char **err);
void eng_tnet_train_free(eng_tnet_train *m);   // NULL-safe; keeps nothing

// x[B,3,H,W] (pixels 0..255, H and W >= ENG_TNET_MIN_SIDE) -> [B,3,H,W]
// unclamped: PyTorch's TransformerNet, its output cropped to the input's size
// when H or W is not a multiple of 4 (what eng_tnet_forward serves).
eng_var *eng_tnet_train_forward(eng_tnet_train *m, eng_tape *t, eng_var *x);

// Writes the parameters as a safetensors file (metadata format=pt). 0 or -1 with *err.
int eng_tnet_train_save(const eng_tnet_train *m, const char *path, char **err);

#endif
