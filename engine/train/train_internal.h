// train_internal.h — what the trainer's files share (not for other modules):
// the per-task loops eng_train dispatches to and the model-directory helpers.
#ifndef ENG_TRAIN_INTERNAL_H
#define ENG_TRAIN_INTERNAL_H
#include <jansson.h>                  // json_t
#include "engine/train/schedule.h"    // eng_lr_schedule (the loops)
#include "engine/train/train.h"       // eng_train_opts

// One loop per task: trains and writes the model directory; 0 or -1 with *err.
int eng__train_image_classification(const eng_train_opts *o, char **err);   // image_classification.c
int eng__train_text_generation(const eng_train_opts *o, char **err);        // text_generation.c
int eng__train_text_classification(const eng_train_opts *o, char **err);    // text_classification.c
int eng__train_translation(const eng_train_opts *o, char **err);            // translation.c
int eng__train_image_generation(const eng_train_opts *o, char **err);       // image_generation.c
int eng__train_image_stylization(const eng_train_opts *o, char **err);      // image_stylization.c

// One dataset check per task (eng_train_check): the task's data (and
// val_data) read once without training; 0 or -1 with *err saying what and
// where (the file and line of a TSV, the member of a tar, the IDX file).
int eng__check_image_classification(const eng_train_opts *o, char **err);   // image_classification.c
int eng__check_text_generation(const eng_train_opts *o, char **err);        // text_generation.c
int eng__check_text_classification(const eng_train_opts *o, char **err);    // text_classification.c
int eng__check_translation(const eng_train_opts *o, char **err);            // translation.c
int eng__check_image_generation(const eng_train_opts *o, char **err);       // image_generation.c
int eng__check_image_stylization(const eng_train_opts *o, char **err);      // image_stylization.c

// One DCGAN step (image_generation.c; exposed for tests): a discriminator
// update on real x/y and G(z, yf), then a generator update on the same
// latents, each with Adam (beta1 0.5) at lr; `step` counts from 1.
typedef struct { float d_loss, g_loss, d_real, d_fake; } eng__gan_stats;   // D(x), D(G(z)): mean probabilities
typedef struct { float *gm, *gv, *dm, *dv; } eng__gan_adam;              // both networks' Adam moments

#include "engine/arch/dcgan.h"     // eng_dcgan
int eng__gan_step(eng_dcgan *m, eng__gan_adam *ad, eng_tape *tape, eng_tape *tape_ng, const float *x, const int *y,
                  const float *z, const int *yf, int B, float lr, int step, eng__gan_stats *st);

// Refuses text that is not UTF-8, naming path:line and the byte. 0 or -1 with *err.
int eng__train_check_utf8(const char *path, const char *text, size_t len, char **err);

// mkdir -p. 0 or -1 with *err.
int eng__train_mkdirs(const char *path, char **err);
// Writes j as <dir>/<name> (indented, key order kept, newline-terminated), atomically.
int eng__train_write_json(const char *dir, const char *name, json_t *j, char **err);

#endif
