// cnn.h — CNN image classifiers described by a layer list in config.json:
//   "input":  {"channels":1,"height":28,"width":28,"mean":[0.286],"std":[0.353]}
//   "layers": [{"type":"conv2d","out_channels":32,"kernel_size":3,"stride":1,"padding":1},
//              {"type":"batchnorm"}, {"type":"relu"}, {"type":"maxpool2d","kernel_size":2},
//              {"type":"flatten"}, {"type":"linear","out_features":10}, ...]
// Other layer types: "avgpool2d", "global_avgpool", "gelu", "tanh", "sigmoid".
// Weights use PyTorch nn.Sequential names: "layers.<i>.weight", ".bias",
// ".running_mean", ".running_var" (i = index in the layer list), so a
// torch.nn.Sequential built from the same list loads the same state dict.
// The forward pass is written once against the tape (engine/core/tape.h): it
// trains (grad on) and is the reference the serving pass is tested against.
// Serving (eng_cnn_prepare_serving at load, then eng_cnn_serve) folds each
// batch norm that follows a conv2d or linear layer into that layer's weights
// and bias (copies: the model's own parameters, and what eng_cnn_save
// writes, stay as trained), fuses a following ReLU and max pooling into the
// convolution, and
// runs each convolution over the whole batch as one GEMM
// (engine/core/conv_batch.h).
#ifndef ENG_CNN_H
#define ENG_CNN_H
#include <jansson.h>             // json_t
#include <stdint.h>              // uint64_t
#include "engine/io/safetensors.h"  // eng_st_file
#include "engine/core/tape.h"         // eng_var, eng_tape

typedef enum {
    ENG_CNN_CONV2D, ENG_CNN_BATCHNORM, ENG_CNN_RELU, ENG_CNN_GELU, ENG_CNN_TANH, ENG_CNN_SIGMOID,
    ENG_CNN_MAXPOOL2D, ENG_CNN_AVGPOOL2D, ENG_CNN_GLOBAL_AVGPOOL, ENG_CNN_FLATTEN, ENG_CNN_LINEAR,
    ENG_CNN__COUNT
} eng_cnn_layer_type;

typedef struct {
    eng_cnn_layer_type type;
    int out;                  // conv: out channels; linear: out features
    int kernel, stride, pad;  // conv / pool geometry
    float eps, momentum;      // batch norm
    int in_shape[3];          // input [C,H,W] per example (H=W=0 for flat [features])
    int out_shape[3];         // output, same convention
    eng_var w, b;             // conv/linear weight+bias; batch norm gamma+beta (n == 0 when unused)
    float *running_mean;      // batch norm [C]
    float *running_var;       // batch norm [C]
    // serving (eng_cnn_prepare_serving): conv/linear weight and bias with a
    // following batch norm folded in (else the same values as w, b)
    eng_var sw, sb;
    int act;                  // conv: ENG_CONV_ACT_RELU when a ReLU follows (after a folded batch norm)
    int pool_k, pool_s;       // conv: a max pooling that follows those (0: none)
    int fused;                // batch norm / ReLU / max pooling done by the conv before it when serving
    int serve_shape[3];       // conv: its output when serving (after a fused pooling)
} eng_cnn_layer;

typedef struct {
    int in_c, in_h, in_w;     // input image shape
    int n_classes;            // output width of the last layer
    int n_layers;
    eng_cnn_layer *layers;    // [n_layers]
    size_t n_params;          // trainable floats (weights, biases, gamma, beta)
    size_t n_buffers;         // running statistics floats
    float *params;            // owned storage [n_params + n_buffers] when trained/initialised here, else NULL
    float *grads;             // [n_params] when training, else NULL
    eng_st_file weights;      // the mapped safetensors file when loaded from disk
    float *serve;             // owned folded weights for serving, NULL until eng_cnn_prepare_serving
} eng_cnn;

// Builds the layer list from config (its "input" and "layers"), computing
// every shape; no weights yet. Returns 0 or -1 with *err.
int eng_cnn_init(eng_cnn *m, const json_t *config, char **err);
void eng_cnn_free(eng_cnn *m);   // NULL-safe
// Allocates owned parameters with PyTorch's default init (Kaiming-uniform
// a=sqrt(5) for conv/linear, gamma=1 beta=0, running var=1 mean=0), seeded.
void eng_cnn_init_params(eng_cnn *m, uint64_t seed);
// Allocates gradient buffers and points every parameter var's grad at them.
void eng_cnn_enable_grads(eng_cnn *m);
// Zeroes the gradients.
void eng_cnn_zero_grads(eng_cnn *m);
// Maps weights from a safetensors file (names/shapes checked). Returns 0 or -1 with *err.
int eng_cnn_load(eng_cnn *m, const char *path, char **err);
// Copies mapped weights into owned, writable parameters (to fine-tune a loaded model).
void eng_cnn_make_owned(eng_cnn *m);
// Writes the weights (owned or mapped) to a safetensors file atomically.
int eng_cnn_save(const eng_cnn *m, const char *path, char **err);
// x[B,C,H,W] -> logits [B, n_classes].
eng_var *eng_cnn_forward(eng_cnn *m, eng_tape *t, eng_var *x);
// Builds the serving copies (folded batch norms, fused ReLUs) from the
// current parameters; call again after changing them. 0, or -1 with *err
// (out of memory).
int eng_cnn_prepare_serving(eng_cnn *m, char **err);
// The serving forward (inference only: eval-mode batch norm, grad-off tape,
// after eng_cnn_prepare_serving): x[B,C,H,W] -> logits [B, n_classes],
// equal to eng_cnn_forward's within float rounding.
eng_var *eng_cnn_serve(eng_cnn *m, eng_tape *t, eng_var *x);

#endif
