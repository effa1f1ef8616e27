// model.h — what the server sees of a model: a task, an architecture, its
// config.json, and the task's entry points. Loading reads <dir>/config.json,
// picks the architecture's row of ONE dispatch table (engine/arch/model.c),
// and maps the weights. A loaded eng_model is read-only and shared by every
// worker; per-worker mutable state is the eng_tape (arena) the worker passes in.
//
// Adding an architecture = its file (engine/arch/<name>.c) + one row in the
// table, whose non-NULL entry points say which tasks it serves. Adding a task
// = one enum value + one name + an entry point in eng_model_arch. Training
// loops (engine/train/) sit above this layer and pick the architecture by name.
#ifndef ENG_MODEL_H
#define ENG_MODEL_H
#include <jansson.h>          // json_t
#include <stddef.h>           // size_t
#include "engine/io/image.h"     // eng_image, eng_image_prep
#include "engine/arch/lm.h"        // eng_lm, eng_lm_ops
#include "engine/arch/seq2seq.h"   // eng_s2s, eng_s2s_ops
#include "engine/core/tape.h"      // eng_tape
#include "engine/text/tokenizer.h" // eng_tokenizer

typedef enum {
    ENG_TASK_IMAGE_CLASSIFICATION,
    ENG_TASK_TEXT_GENERATION,
    ENG_TASK_TRANSLATION,
    ENG_TASK_TEXT_CLASSIFICATION,
    ENG_TASK_IMAGE_STYLIZATION,
    ENG_TASK_IMAGE_GENERATION,
    ENG_TASK__COUNT
} eng_task;

// "image-classification", ... ; eng_task_parse returns -1 for unknown names.
const char *eng_task_name(eng_task t);
int eng_task_parse(const char *name);

typedef struct eng_model eng_model;

// One row of the dispatch table: an architecture, how to load it, and the
// task entry points it offers (NULL = not offered). Every entry point runs on
// the calling worker's inference tape `t`, which it resets.
typedef struct {
    const char *name;   // config.json "arch", e.g. "cnn"
    eng_task task;      // the task its checkpoints serve
    int (*load)(eng_model *m, char **err);   // fills m->impl or m->lm, m->n_params from m->dir/m->config
    void (*free)(eng_model *m);              // frees m->impl (NULL: nothing beyond the lm entry's free)
    // ---- image-classification: x[B, C, H, W] (preprocessed) -> probs[B, n_labels]
    void (*classify_images)(eng_model *m, eng_tape *t, const float *x, int B, float *probs);
    // ---- text-classification: B token sequences -> probs[B, n_labels]
    //      (ids from eng_model_text_ids, computed on the HTTP thread)
    void (*classify_text)(eng_model *m, eng_tape *t, const int *const *tokens, const int *n_tokens, int B, float *probs);
    // ---- text-generation (and a translation decoder): the language-model
    //      step over per-sequence state (engine/arch/lm.h), on m->lm
    const eng_lm_ops *lm;
    // ---- translation: the encoder-decoder ops (engine/arch/seq2seq.h) on
    //      m->s2s, searched by engine/arch/translate.c
    const eng_s2s_ops *s2s;
    // ---- text input (classification, translation): the ids of one text, as
    //      eng_model_text_ids documents; NULL = m->tok with BOS and EOS added
    int (*text_ids)(const eng_model *m, const char *text, size_t len, int **ids, int *n_ids, char **err);
    // ---- image-stylization: x[B, 3, H, W] -> y[B, 3, H, W], pixels in 0..255
    //      (y unclamped). The B images of one call share one size (images of
    //      different sizes cannot share a tensor: the runner groups by size).
    void (*image_to_image)(eng_model *m, eng_tape *t, const float *x, int B, int H, int W, float *y);
    //      bytes of tape arena one H x W image takes (the whole batch reuses
    //      them), and the smallest side the network takes
    size_t (*image_to_image_bytes)(const eng_model *m, int H, int W);
    int image_min_side;
    // ---- image-generation: latent z[B, n_latent] and labels[B] (class
    //      indices into m->labels; NULL for an unconditional model) -> images
    //      y[B, C, H, W] with values in [0, 1]. Image b depends only on
    //      z[b] and labels[b], never on the rest of the batch.
    void (*generate_images)(eng_model *m, eng_tape *t, const float *z, const int *labels, int B, float *y);
} eng_model_arch;

struct eng_model {
    const eng_model_arch *arch;  // architecture table entry
    eng_task task;               // == arch->task
    char *dir;                   // model directory
    json_t *config;              // parsed config.json (owned)
    size_t n_params;             // trainable parameter count
    int n_labels;                // classification: number of classes
    char **labels;               // [n_labels] class names
    eng_image_prep prep;         // image-input tasks: how to build the input tensor
    int invert_auto;             // 1: invert when the image border is light (photos on white)
    void *impl;                  // the architecture's own state (e.g. eng_cnn*)
    // text generation: driven through arch->lm
    eng_lm *lm;                  // the language model's weights + hyperparameters, or NULL
    eng_tokenizer *tok;          // the model's tokenizer (translation: the source side)
    // translation: driven through arch->s2s
    eng_s2s *s2s;                // the encoder-decoder's weights, or NULL
    eng_tokenizer *tok_tgt;      // translation: the target side (NULL: tok serves both)
    int max_text_ids;            // text input: most ids one text may have (0: no limit)
    // image generation
    int n_latent;                // latent size (z[B, n_latent])
    int out_channels, out_height, out_width;   // generated image shape
};

// Loads the model in `dir`. Returns 0 and *out, or -1 with *err (naming the
// file and key at fault); nothing is leaked on failure.
int eng_model_load(eng_model **out, const char *dir, char **err);
void eng_model_free(eng_model *m);   // NULL-safe

// Image-input tasks: element count of one preprocessed input (C*H*W).
size_t eng_model_input_size(const eng_model *m);
// Builds one preprocessed input from a decoded image (applies invert_auto).
int eng_model_image_input(const eng_model *m, const eng_image *img, float *out);   // 0, or -1 out of memory

// Text-input tasks: the ids of one text for classify_text / encode (called on
// HTTP threads). Returns 0 with a malloc'd *ids, ENG_TOK_E_TOO_LONG when the
// text needs more than m->max_text_ids, ENG_TOK_E_NOMEM, or -1 with *err
// (text the model cannot take).
int eng_model_text_ids(const eng_model *m, const char *text, size_t len, int **ids, int *n_ids, char **err);

// Parses the "input" object of a config into prep (+ invert_auto). Returns 0 or -1 with *err.
int eng_model_parse_image_input(const json_t *input, eng_image_prep *prep, int *invert_auto, char **err);

#endif
