// train.h — the trainer shared by `inferd train` and (later) the jobs API:
// one entry point per task, options common to all, progress through a
// callback, cancellation through a flag. Writes a servable model directory:
// config.json, model.safetensors (atomically) and README.md.
#ifndef ENG_TRAIN_H
#define ENG_TRAIN_H
#include <stdint.h>   // uint64_t

typedef struct {
    int step, total_steps;     // optimizer steps done / planned
    int epoch;                 // current pass over the data (from 1)
    float loss;                // mean training loss since the last report
    float lr;                  // current learning rate
    double examples_per_s;     // throughput since the last report
    double eta_s;              // estimated seconds left
    float val_loss;            // < 0 when not evaluated in this report
    float val_accuracy;        // < 0 when not evaluated in this report
    int gan;                   // 1: a GAN's report: loss is the discriminator's, and
    float g_loss;              //    the generator's loss,
    float d_real, d_fake;      //    mean D(x) and D(G(z)) (not kept in checkpoint histories)
    int stylization;           // 1: a style network's report: loss is the weighted total, and
    float content_loss;        //    its content and style terms, before their weights
    float style_loss;          //    (not kept in checkpoint histories),
    float structure_loss;      //    and the Laplacian structure term's
} eng_train_progress;

typedef struct {
    const char *task;          // "image-classification", ...
    const char *data;          // dataset path (task-specific layout)
    const char *out;           // output model directory (created)
    const char *arch;          // NULL = the task's default ("cnn")
    int epochs;                // passes over the data (used when steps == 0)
    int steps;                 // optimizer steps; 0 = derive from epochs
    int batch_size;            // examples per step
    float lr;                  // peak learning rate (AdamW), cosine decay after warmup;
                               // text-classification: SGD's rate, falling linearly to 0
    float weight_decay;        // AdamW decoupled weight decay
    uint64_t seed;             // init + shuffling + augmentation
    int log_every;             // steps between progress reports
    int augment;               // 1: random shifts (and flips where the task allows)
    const char *labels;        // comma-separated class names, or NULL (labels.txt / known datasets)
    // text generation (0 = the architecture's default)
    int dim;                   // model width (gpt: n_embd, lstm: hidden_size)
    int n_layers;              // blocks / LSTM layers
    int n_heads;               // attention heads (gpt)
    int context_len;           // training window and longest served sequence
    // text classification (0 = the architecture's default; see fasttext.h)
    int buckets;               // rows of the hashed feature table
    int minn, maxn;            // character n-gram lengths
    int balance;               // 1: rare labels oversampled, each label's share of an epoch
                               // growing as the square root of its count (default 1)
    // image stylization (0 = the defaults; data = the content photos, a directory or a tar)
    const char *style;         // the style image (PNG or JPEG)
    float net_width;           // TransformerNet channel multiplier (default 0.5: a quarter of the full net's work)
    int image_size;            // side of the square training crops (default 256)
    int style_size;            // the style image's longer side for its Gram targets (default 2 x image_size)
    float style_weight;        // default ENG_STYLE_DEFAULT_STYLE_WEIGHT (engine/arch/style_loss.h)
    float content_weight;      // default 1
    float structure_weight;    // the Laplacian structure term's weight; < 0 = default (1), 0 = off
    const char *sample_prompt; // the README's sample starts here (NULL: the text's first line);
                               // translation: sources the README translates, separated by '|'
    const char *command;       // the command line that produced this run, for the model's README (may be NULL)
    // training jobs (server/jobs.c): checkpoints, resume, fine-tuning, validation
    const char *checkpoint_path;  // NULL: none. Every checkpoint_every steps the trainer writes this
                                  // file atomically (temp file, fsync, rename, fsync of the directory):
                                  // weights, optimizer state, RNG state, step; a failed write fails the
                                  // run and leaves the previous checkpoint intact
    int checkpoint_every;         // steps between checkpoints (0: the trainer's default)
    int resume;                   // 1: continue from checkpoint_path when it exists (same total steps)
    const char *base_model;       // a model directory to fine-tune (same task and arch), or NULL
    const char *val_data;         // a validation dataset (same layout as data), or NULL (own held-out split)
    volatile int *cancel;      // set to non-zero to stop at the next step (may be NULL)
    void (*progress)(void *ctx, const eng_train_progress *p);
    void *progress_ctx;
} eng_train_opts;

// Fills the defaults (epochs 10, batch 64, lr 2e-3, weight decay 1e-4, seed 1, log every 100, augment on, balance on).
void eng_train_opts_init(eng_train_opts *o);
// Trains and writes the model directory. Returns 0, or -1 with *err
// (also when cancelled: "cancelled").
int eng_train(const eng_train_opts *o, char **err);

// Checks the options and the dataset's format without training (fast: reads
// the data once), for POST /v1/jobs. 0, or -1 with *err saying what is wrong
// and where (the line of a TSV, the member of a tar).
int eng_train_check(const eng_train_opts *o, char **err);

// Evaluates a model directory on a dataset (image classification, and text
// classification through eng_eval_text); *score is the task's metric
// (accuracy for classification), *n the number of examples. 0 or -1 with *err.
int eng_eval(const char *model_dir, const char *data, double *score, long *n, char **err);

// What eng_eval_text measured: accuracy overall, on texts over 20
// characters, and per true label (the model's labels, in its order).
typedef struct {
    long n, correct;              // every text
    long n_long, correct_long;    // texts over 20 characters (Unicode codepoints)
    int n_labels;
    char **labels;                // [n_labels]
    long *label_n, *label_correct; // [n_labels] texts of each true label, and how many were right
} eng_eval_report;

// Evaluates a text classifier (any architecture with classify_text) on
// "label<TAB>text" lines: `data` is a TSV file or a directory with test.tsv.
// A text the model refuses (no features, too long) counts as wrong; so does
// a label the model does not know. 0 or -1 with *err.
int eng_eval_text(const char *model_dir, const char *data, eng_eval_report *r, char **err);
void eng_eval_report_free(eng_eval_report *r);

// Image generators (eval_generation.c): n images from latents of `seed`
// (eng_dcgan_latents; a conditional model's image i asks for label i % L),
// each classified by an image classifier: its mean top-1 probability, how
// often each of its labels won, and (conditional) how often the requested
// label won. grid_png (may be NULL): a PNG of the first 100 images, ten per
// row. 0 or -1 with *err.
typedef struct {
    long n;
    double mean_confidence;
    int n_labels;                 // the classifier's
    char **labels;                // [n_labels]
    long *counts;                 // [n_labels] images classified as each label
    int conditional;
    long matched;                 // conditional: images classified as their requested label
} eng_gen_report;
int eng_eval_generation(const char *model_dir, const char *classifier_dir, int n, uint64_t seed, const char *grid_png,
                        eng_gen_report *r, char **err);
void eng_gen_report_free(eng_gen_report *r);

// Translation models (translation.c): greedy outputs on a TSV of
// "source<TAB>reference" lines scored by chrF2 (sacrebleu's definition,
// 0..100) and exact match (0..1). Returns 0, -1 with *err, or 1 when the
// model is not a translation model (nothing set: use eng_eval).
int eng_eval_translation(const char *model_dir, const char *data, double *chrf, double *exact, long *n, char **err);
// Language models (eval_perplexity.c): the perplexity of a plain text file
// through the serving step (so an int8 model is measured as it is served):
// the text's tokens in consecutive windows of `window` tokens (0: the
// model's context, at most 256), each from an empty sequence, every token
// after a window's first predicted from those before it; *nll the mean
// negative log-likelihood (nats per token), *n the predictions. Returns 0,
// -1 with *err, or 1 when the model is not a language model (nothing set).
int eng_eval_perplexity(const char *model_dir, const char *text_path, int window, double *nll, long *n, char **err);
// Corpus chrF2 (0..100) of n hypotheses against their references.
double eng_chrf(const char *const *hyp, const char *const *ref, int n);

#endif
