// checkpoint.h — resumable training state, shared by every training loop.
//
// A loop describes its state ONCE by registering pointers into it (the
// parameters, the optimizer moments, data order, RNGs, running sums); the
// checkpoint then saves and restores exactly those bytes, so resuming a run
// continues it bit for bit. One checkpoint is one safetensors file:
//   - each float buffer as an F32 tensor, each int buffer as I32, each RNG as
//     its 4 xoshiro words (I64 bit patterns);
//   - __metadata__ "inferd_checkpoint": a JSON text with the format version,
//     task, arch, step, total_steps, seconds trained, the options the run
//     depends on (batch size, learning rate, seed, model sizes ...), the
//     registered scalars and the progress history (every report so far).
// Loading refuses anything that does not match what this run registered
// (names, dtypes, element counts, task/arch, options, total steps), naming it.
// Writing is atomic: a temp file in the same directory, fflush + fsync,
// rename, fsync of the directory; a failed write fails the run with
// "checkpoint: <path>: <reason>" and leaves the previous checkpoint intact.
//
// Use in a loop (see image_classification.c):
//   eng_ckpt ck; eng_ckpt_init(&ck, o, "cnn", total);
//   eng_ckpt_floats(&ck, "params", params, n); ... register the rest ...
//   long start; if (eng_ckpt_resume(&ck, &start, err) != 0) fail;
//   for (step = start + 1; step <= total; step++) {
//       ... train ...; eng_ckpt_report(&ck, &p) instead of o->progress;
//       if (eng_ckpt_after_step(&ck, step, err) != 0) fail;
//   }
//   eng_ckpt_free(&ck);
#ifndef ENG_CHECKPOINT_H
#define ENG_CHECKPOINT_H
#include <stddef.h>                 // size_t
#include "engine/core/rng.h"        // eng_rng
#include "engine/train/train.h"     // eng_train_opts, eng_train_progress

#define ENG_CKPT_MAX_ITEMS 32
#define ENG_CKPT_MAX_HISTORY 65536   // reports kept (thinned to every other one beyond)

typedef enum { ENG_CKPT_F32, ENG_CKPT_I32, ENG_CKPT_RNG, ENG_CKPT_DOUBLE, ENG_CKPT_LONG, ENG_CKPT_CHECK } eng_ckpt_kind;

typedef struct {
    eng_ckpt_kind kind;
    char name[48];
    void *ptr;          // F32: float[n]; I32: int[n]; RNG: eng_rng; DOUBLE: double; LONG: long
    size_t n;           // elements (buffers)
    long check;         // CHECK: a value the checkpoint must have been made with (e.g. dataset size)
} eng_ckpt_item;

typedef struct {
    const eng_train_opts *o;
    char arch[32];
    long total_steps;
    long every;                 // steps between checkpoints (resolved from o->checkpoint_every)
    int n_items;
    eng_ckpt_item items[ENG_CKPT_MAX_ITEMS];
    eng_train_progress *history;   // every report of the run, resumed ones included
    int n_history, cap_history;
    double seconds_before;      // training time of the runs this one resumes
    double t_start;             // eng_now() when this run's training started
} eng_ckpt;

// Starts a description of a run of `total_steps` steps of `arch` with options o.
void eng_ckpt_init(eng_ckpt *c, const eng_train_opts *o, const char *arch, long total_steps);
// Registers state (restored on resume). Names are unique per checkpoint.
void eng_ckpt_floats(eng_ckpt *c, const char *name, float *data, size_t n);
void eng_ckpt_ints(eng_ckpt *c, const char *name, int *data, size_t n);
void eng_ckpt_rng(eng_ckpt *c, const char *name, eng_rng *r);
void eng_ckpt_double(eng_ckpt *c, const char *name, double *v);
void eng_ckpt_long(eng_ckpt *c, const char *name, long *v);
// A value the resumed run must share with the checkpoint (not restored: compared).
void eng_ckpt_check(eng_ckpt *c, const char *name, long value);

// When o->resume and o->checkpoint_path exists: loads it into the registered
// state and sets *start to its step; otherwise *start = 0. Removes temp files
// a killed run left next to the checkpoint. 0 or -1 with *err.
int eng_ckpt_resume(eng_ckpt *c, long *start, char **err);
// Called after step `step` (1-based) is done: writes o->checkpoint_path when a
// checkpoint is due (every c->every steps, and after the last step). 0 or -1 with *err.
int eng_ckpt_after_step(eng_ckpt *c, long step, char **err);
// Records a progress report in the history and passes it to o->progress.
void eng_ckpt_report(eng_ckpt *c, const eng_train_progress *p);
// Seconds of training so far, resumed runs included.
double eng_ckpt_seconds(const eng_ckpt *c);
void eng_ckpt_free(eng_ckpt *c);

// The two halves of the above, for tests and tools: write the registered
// state as of `step` to path; read path into the registered state (*step set).
int eng_ckpt_save(const eng_ckpt *c, const char *path, long step, char **err);
int eng_ckpt_load(eng_ckpt *c, const char *path, long *step, char **err);

// What a checkpoint file says about its run, without the run (for the jobs
// API after a restart: where a job stands, the curve so far). The file is
// checked as far as it can be without knowing the run (structure, format,
// checksum). 0, or -1 with *err.
typedef struct {
    long step, total_steps;
    double seconds;                // training time up to the checkpoint
    eng_train_progress *history;   // [n_history] the progress reports so far (malloc'd)
    int n_history;
} eng_ckpt_info;
int eng_ckpt_peek(const char *path, eng_ckpt_info *info, char **err);
void eng_ckpt_info_free(eng_ckpt_info *info);

#endif
