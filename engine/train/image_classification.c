// image_classification.c — training and evaluating image classifiers
// (`inferd train --task image-classification`, `inferd eval`): IDX datasets (MNIST layout: train-images-idx3-ubyte[.gz],
// train-labels-idx1-ubyte[.gz], t10k-* for the test split) or a tar of label
// folders (engine/io/dataset_tar.c; its test split is val_data), a CNN from the
// default layer list, AdamW with linear warmup + cosine decay, random shifts
// and horizontal flips as augmentation.
#include "engine/train/train_internal.h"
#include "engine/train/checkpoint.h"   // eng_ckpt
#include <math.h>           // sqrt
#include <stdio.h>          // snprintf, FILE
#include <string.h>         // strcmp, memset
#include <sys/stat.h>       // stat
#include "engine/arch/cnn.h"     // eng_cnn
#include "engine/io/dataset_tar.h"   // eng_dataset_tar_load, eng_dataset_is_tar
#include "engine/io/idx.h"     // eng_idx_load
#include "engine/arch/model.h"   // eng_model_load, eng_task_parse
#include "engine/core/optim.h"   // eng_adamw_step
#include "engine/core/rng.h"     // eng_rng
#include "engine/core/util.h"    // eng_errorf, eng_now


// ---------------------------------------------------------------- IDX datasets
typedef struct {
    eng_idx images;   // [N, H, W] bytes
    eng_idx labels;   // [N] bytes
    int n, h, w;
    int n_classes;    // 1 + max label
    json_t *names;    // a tar's label folders, sorted (owned), or NULL (IDX)
} image_set;

static void image_set_free(image_set *s) {
    eng_idx_free(&s->images);
    eng_idx_free(&s->labels);
    json_decref(s->names);
    s->names = NULL;
}

// Loads <dir>/<split>-images-idx3-ubyte[.gz] and the matching labels.
static int image_set_load(image_set *s, const char *dir, const char *split, char **err) {
    memset(s, 0, sizeof *s);
    char path[4096];
    struct stat st;
    const char *kinds[2] = {"images-idx3", "labels-idx1"};
    eng_idx *dst[2] = {&s->images, &s->labels};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s-%s-ubyte.gz", dir, split, kinds[k]);
        if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/%s-%s-ubyte", dir, split, kinds[k]);
        if (eng_idx_load(dst[k], path, err) != 0) { image_set_free(s); return -1; }
    }
    if (s->images.ndim != 3 || s->labels.ndim != 1 || s->images.dims[0] != s->labels.dims[0]) {
        image_set_free(s);
        return eng_errorf(err, "%s: %s images and labels do not match (need [N,H,W] and [N])", dir, split);
    }
    s->n = s->images.dims[0]; s->h = s->images.dims[1]; s->w = s->images.dims[2];
    for (int i = 0; i < s->n; i++)
        if (s->labels.data[i] + 1 > s->n_classes) s->n_classes = s->labels.data[i] + 1;
    return 0;
}

// Loads a tar of label folders as gray h x w images (the trainer's layout:
// the same bytes an IDX file would hold).
static int image_set_load_tar(image_set *s, const char *path, int h, int w, char **err) {
    memset(s, 0, sizeof *s);
    eng_tar_opts to;
    eng_tar_opts_init(&to);
    to.height = h;
    to.width = w;
    eng_image_dataset d;
    if (eng_dataset_tar_load(&d, path, &to, err) != 0) return -1;
    s->images = (eng_idx){.ndim = 3, .dims = {d.n, h, w}, .n = (size_t)d.n * h * w, .data = d.pixels};
    s->labels = (eng_idx){.ndim = 1, .dims = {d.n}, .n = (size_t)d.n, .data = d.labels};
    d.pixels = d.labels = NULL;   // handed over
    s->n = d.n; s->h = h; s->w = w;
    s->n_classes = d.n_labels;
    s->names = json_array();
    for (int i = 0; i < d.n_labels; i++) json_array_append_new(s->names, json_string(d.label_names[i]));
    eng_image_dataset_free(&d);
    return 0;
}

// The training data: a tar (28x28, the default CNN's input) or an IDX directory.
static int image_set_load_train(image_set *s, const char *data, char **err) {
    if (eng_dataset_is_tar(data)) return image_set_load_tar(s, data, 28, 28, err);
    return image_set_load(s, data, "train", err);
}

// ---------------------------------------------------------------- labels
static const char *const fashion_labels[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

// Class names: --labels, else <data>/labels.txt, else Fashion-MNIST's when the
// path says so, else the digits. Returns a JSON array (new reference).
static json_t *class_labels(const eng_train_opts *o, const image_set *tr, char **err) {
    int n_classes = tr->n_classes;
    if (tr->names) {   // a tar's folders name its classes
        if (o->labels) { eng_errorf(err, "--labels cannot rename a tar's label folders"); return NULL; }
        return json_incref(tr->names);
    }
    json_t *a = json_array();
    if (o->labels) {
        char *copy = strdup(o->labels), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            json_array_append_new(a, json_string(tok));
        free(copy);
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/labels.txt", o->data);
        FILE *f = fopen(path, "r");
        if (f) {
            char line[256];
            while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\r\n")] = 0;
                if (line[0]) json_array_append_new(a, json_string(line));
            }
            fclose(f);
        } else if (strstr(o->data, "fashion") && n_classes == 10) {
            for (int i = 0; i < 10; i++) json_array_append_new(a, json_string(fashion_labels[i]));
        } else {
            for (int i = 0; i < n_classes; i++) {
                char num[16];
                snprintf(num, sizeof num, "%d", i);
                json_array_append_new(a, json_string(num));
            }
        }
    }
    if ((int)json_array_size(a) != n_classes) {
        int got = (int)json_array_size(a);
        json_decref(a);
        eng_errorf(err, "%d class names given but the data has %d classes", got, n_classes);
        return NULL;
    }
    return a;
}

// The default CNN: two conv blocks and a two-layer head (~420k parameters,
// ~8.5 MFLOP per 28x28 image). Reaches ~92% on Fashion-MNIST in 10 epochs.
static json_t *default_cnn_layers(void) {
    return json_pack("[{s:s,s:i,s:i,s:i}, {s:s}, {s:s}, {s:s,s:i},"
                     " {s:s,s:i,s:i,s:i}, {s:s}, {s:s}, {s:s,s:i},"
                     " {s:s}, {s:s,s:i}, {s:s}, {s:s,s:i}]",
                     "type", "conv2d", "out_channels", 32, "kernel_size", 3, "padding", 1,
                     "type", "batchnorm", "type", "relu", "type", "maxpool2d", "kernel_size", 2,
                     "type", "conv2d", "out_channels", 64, "kernel_size", 3, "padding", 1,
                     "type", "batchnorm", "type", "relu", "type", "maxpool2d", "kernel_size", 2,
                     "type", "flatten", "type", "linear", "out_features", 128,
                     "type", "relu", "type", "linear", "out_features", 10);
}

// ---------------------------------------------------------------- examples
// Copies image `src` (h x w bytes) into dst as normalised floats, shifted by
// (dy, dx) with zero fill and optionally mirrored.
static void load_example(float *dst, const uint8_t *src, int h, int w, int dy, int dx, int flip,
                         float mean, float inv_std) {
    float zero = (0.0f - mean) * inv_std;
    for (int y = 0; y < h; y++) {
        int sy = y - dy;
        for (int x = 0; x < w; x++) {
            int sx = (flip ? w - 1 - x : x) - dx;
            dst[y * w + x] = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? zero
                             : (src[sy * w + sx] / 255.0f - mean) * inv_std;
        }
    }
}

// ---------------------------------------------------------------- the model's config
// The config.json of the model being trained: the default CNN with one
// output per class, input normalised by the training set's mean and std
// (returned in *mean, *std), the labels, serving settings. NULL with *err.
// IDX data (Fashion-MNIST: light on dark) is served with invert "auto" for
// dark-on-light photos; a tar's images are served as they were trained, not inverted.
static json_t *model_config(const image_set *tr, json_t *labels, float *mean, float *std, char **err) {
    double sum = 0, sq = 0;
    for (size_t i = 0; i < tr->images.n; i++) { double p = tr->images.data[i] / 255.0; sum += p; sq += p * p; }
    *mean = (float)(sum / (double)tr->images.n);
    *std = (float)sqrt(sq / (double)tr->images.n - (double)*mean * *mean);
    json_t *layers = default_cnn_layers();
    json_array_set_new(layers, json_array_size(layers) - 1,
                       json_pack("{s:s,s:i}", "type", "linear", "out_features", tr->n_classes));
    json_t *config = json_pack("{s:s,s:s,s:{s:i,s:i,s:i,s:[f],s:[f],s:i,s:o},s:o,s:O,"
                               "s:i,s:i,s:i,s:i}",
                               "task", "image-classification", "arch", "cnn",
                               "input", "channels", 1, "height", tr->h, "width", tr->w, "mean", (double)*mean,
                               "std", (double)*std, "background", 0, "invert",
                               tr->names ? json_false() : json_string("auto"),
                               "layers", layers, "labels", labels,
                               "max_batch_size", 64, "max_queue_delay_us", 500, "max_queue_size", 1024,
                               "timeout_ms", 10000);
    if (!config) eng_errorf(err, "internal: could not build config");
    return config;
}

// ---------------------------------------------------------------- validation
// The split of a validation directory (--val-data, or the test split next to
// the training data): t10k-* when present, else train-*.
static const char *val_split(const char *dir) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    if (stat(path, &st) == 0) return "t10k";
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    return stat(path, &st) == 0 ? "t10k" : "train";
}

// Mean cross-entropy and accuracy on the first `max` images of va (all when
// max <= 0), in evaluation mode (batch norm's running statistics; no RNG, no
// state touched, so checkpoints and resume are unaffected).
static void validate(eng_cnn *cnn, const image_set *va, int max, float mean, float std, float *loss, float *acc) {
    const int B = 64, HW = va->h * va->w;
    int n = max > 0 && max < va->n ? max : va->n;
    float *x = eng_xmalloc((size_t)B * HW * sizeof(float));
    int *y = eng_xmalloc((size_t)B * sizeof(int));
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    double sum = 0;
    long correct = 0;
    for (int s = 0; s < n; s += B) {
        int nb = n - s < B ? n - s : B;
        for (int b = 0; b < nb; b++) {
            load_example(x + (size_t)b * HW, va->images.data + (size_t)(s + b) * HW, va->h, va->w, 0, 0, 0, mean, 1.0f / std);
            y[b] = va->labels.data[s + b];
        }
        eng_tape_reset(&t);
        eng_var *logits = eng_cnn_forward(cnn, &t, eng_tape_wrap(&t, x, 4, (int[]){nb, 1, va->h, va->w}));
        for (int b = 0; b < nb; b++) {
            const float *l = logits->val + (size_t)b * cnn->n_classes;
            int best = 0;
            for (int c = 1; c < cnn->n_classes; c++) if (l[c] > l[best]) best = c;
            correct += best == y[b];
        }
        sum += (double)eng_t_cross_entropy(&t, logits, y)->val[0] * nb;
    }
    eng_tape_free(&t);
    free(x); free(y);
    *loss = (float)(sum / n);
    *acc = (float)correct / (float)n;
}

// ---------------------------------------------------------------- the loop
// Where the loop is in the data: a shuffled order, redrawn each epoch.
typedef struct {
    int *perm;          // [n] example order of this epoch
    int pos;            // next index into perm; n = reshuffle first
    eng_rng rng;        // shuffling and augmentation
} sampler;

// Fills x[B, H*W] / y[B] with the next batch, augmented when o->augment.
static void next_batch(const eng_train_opts *o, const image_set *tr, sampler *s, float *x, int *y, int B,
                       float mean, float std) {
    int HW = tr->h * tr->w;
    for (int b = 0; b < B; b++) {
        if (s->pos >= tr->n) {   // new epoch: Fisher-Yates shuffle
            for (int i = tr->n - 1; i > 0; i--) {
                int j = (int)eng_rng_below(&s->rng, (uint64_t)i + 1), tmp = s->perm[i];
                s->perm[i] = s->perm[j]; s->perm[j] = tmp;
            }
            s->pos = 0;
        }
        int idx = s->perm[s->pos++];
        int dy = 0, dx = 0, flip = 0;
        if (o->augment) {
            dy = (int)eng_rng_below(&s->rng, 5) - 2;
            dx = (int)eng_rng_below(&s->rng, 5) - 2;
            flip = (int)eng_rng_below(&s->rng, 2);
        }
        load_example(x + (size_t)b * HW, tr->images.data + (size_t)idx * HW, tr->h, tr->w, dy, dx, flip, mean, 1.0f / std);
        y[b] = tr->labels.data[idx];
    }
}

// Trains cnn for `total` steps of batch o->batch_size; reports progress.
// Returns 0, or -1 with *err when cancelled.
static int train_loop(const eng_train_opts *o, const image_set *tr, const image_set *va, eng_cnn *cnn, int total,
                      float mean, float std, double *train_s, char **err) {
    int B = o->batch_size, steps_per_epoch = tr->n / B, rc = -1;
    eng_lr_schedule sched = {.peak = o->lr, .warmup = total / 50 < 100 ? total / 50 : 100, .total = total, .floor = 0.0f};
    float *m = eng_xcalloc(cnn->n_params, sizeof(float)), *v = eng_xcalloc(cnn->n_params, sizeof(float));
    float *x = eng_xmalloc((size_t)B * tr->h * tr->w * sizeof(float));
    int *y = eng_xmalloc((size_t)B * sizeof(int));
    sampler s = {.perm = eng_xmalloc((size_t)tr->n * sizeof(int)), .pos = tr->n};
    for (int i = 0; i < tr->n; i++) s.perm[i] = i;
    eng_rng_seed(&s.rng, o->seed ^ 0x5eed);
    eng_tape tape;
    eng_tape_init(&tape, 1, 1);
    double t0 = eng_now(), t_last = t0, loss_sum = 0;
    int loss_n = 0;
    // everything the next step depends on, for checkpoints and resume
    eng_ckpt ck;
    eng_ckpt_init(&ck, o, "cnn", total);
    eng_ckpt_floats(&ck, "params", cnn->params, cnn->n_params + cnn->n_buffers);   // + batch-norm statistics
    eng_ckpt_floats(&ck, "adamw.m", m, cnn->n_params);
    eng_ckpt_floats(&ck, "adamw.v", v, cnn->n_params);
    eng_ckpt_ints(&ck, "data.order", s.perm, (size_t)tr->n);
    eng_ckpt_ints(&ck, "data.pos", &s.pos, 1);
    eng_ckpt_rng(&ck, "data.rng", &s.rng);
    eng_ckpt_double(&ck, "loss_sum", &loss_sum);
    eng_ckpt_ints(&ck, "loss_n", &loss_n, 1);
    long start;
    if (eng_ckpt_resume(&ck, &start, err) != 0) goto done;
    for (int step = (int)start + 1; step <= total; step++) {
        if (o->cancel && *o->cancel) { eng_errorf(err, "cancelled"); goto done; }
        next_batch(o, tr, &s, x, y, B, mean, std);
        float lr = eng_lr_at(&sched, step);
        eng_tape_reset(&tape);
        eng_cnn_zero_grads(cnn);
        eng_var *in = eng_tape_wrap(&tape, x, 4, (int[]){B, 1, tr->h, tr->w});
        eng_var *loss = eng_t_cross_entropy(&tape, eng_cnn_forward(cnn, &tape, in), y);
        eng_tape_backward(&tape, loss);
        eng_adamw_step(cnn->params, cnn->grads, m, v, cnn->n_params, lr, 0.9f, 0.999f, 1e-8f, o->weight_decay, step);
        loss_sum += loss->val[0];
        loss_n++;
        if (step % o->log_every == 0 || step == total) {
            double now = eng_now();
            eng_train_progress p = {
                .step = step, .total_steps = total, .epoch = 1 + (step - 1) / (steps_per_epoch ? steps_per_epoch : 1),
                .loss = (float)(loss_sum / loss_n), .lr = lr,
                .examples_per_s = loss_n * B / (now - t_last),
                .eta_s = (now - t0) / (step - start) * (total - step), .val_loss = -1, .val_accuracy = -1};
            if (va) validate(cnn, va, 1000, mean, std, &p.val_loss, &p.val_accuracy);   // a quick look: 1000 images
            eng_ckpt_report(&ck, &p);
            t_last = now; loss_sum = 0; loss_n = 0;
        }
        if (eng_ckpt_after_step(&ck, step, err) != 0) goto done;
    }
    *train_s = eng_ckpt_seconds(&ck);
    rc = 0;
done:
    eng_ckpt_free(&ck);
    free(m); free(v); free(x); free(y); free(s.perm);
    eng_tape_free(&tape);
    return rc;
}

// ---------------------------------------------------------------- the model directory
// Writes weights, config.json (with the run's settings) and a README with
// the test accuracy (eng_eval on the written model). 0 or -1 with *err.
static int write_model(const eng_train_opts *o, const image_set *tr, const image_set *va, eng_cnn *cnn, json_t *config,
                       int total, float mean, float std, double train_s, char **err) {
    char path[4096];
    if (eng__train_mkdirs(o->out, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (eng_cnn_save(cnn, path, err) != 0) return -1;
    json_object_set_new(config, "training", json_pack("{s:i,s:i,s:f,s:f,s:I,s:f}",
                        "steps", total, "batch_size", o->batch_size, "learning_rate", (double)o->lr,
                        "weight_decay", (double)o->weight_decay, "seed", (json_int_t)o->seed,
                        "seconds", train_s));
    if (eng__train_write_json(o->out, "config.json", config, err) != 0) return -1;

    double acc = -1;
    long n_test = 0;
    char *eerr = NULL;
    const char *test = tr->names ? o->val_data : o->data;   // a tar's test split is val_data; IDX: t10k next to train
    if (o->val_data && va && !tr->names) {   // an IDX validation directory: all of it
        float vl, va_acc;
        validate(cnn, va, 0, mean, std, &vl, &va_acc);
        acc = va_acc;
        n_test = va->n;
    } else if (!test || eng_eval(o->out, test, &acc, &n_test, &eerr) != 0) { free(eerr); acc = -1; }
    if (o->progress) {
        eng_train_progress p = {.step = total, .total_steps = total, .loss = -1, .val_loss = -1,
                                .val_accuracy = (float)acc};
        o->progress(o->progress_ctx, &p);
    }
    char *readme = NULL;
    size_t rl = 0;
    FILE *mf = open_memstream(&readme, &rl);   // grows as needed: the command line may be long
    fprintf(mf,
        "# %s\n\nImage classifier (CNN, %zu parameters) trained by inferd's own trainer.\n\n"
        "## Reproduce\n\n```\n%s\n```\n\n"
        "Data: `%s` (%d training images, %dx%d, %d classes). %d steps of batch %d "
        "(%.1f epochs), AdamW lr %g with warmup and cosine decay, weight decay %g, seed %llu, "
        "augmentation %s. Training took %.0f s on this machine.\n\n"
        "## Score\n\n",
        strrchr(o->out, '/') ? strrchr(o->out, '/') + 1 : o->out, cnn->n_params,
        o->command ? o->command : "inferd train --task image-classification ...",
        o->data, tr->n, tr->h, tr->w, tr->n_classes, total, o->batch_size, (double)total * o->batch_size / tr->n,
        (double)o->lr, (double)o->weight_decay, (unsigned long long)o->seed,
        o->augment ? "random shifts of up to 2 pixels and horizontal flips" : "off", train_s);
    if (o->base_model) fprintf(mf, "Fine-tuned from `%s` (its config and labels).\n\n", o->base_model);
    if (acc >= 0 && o->val_data && !tr->names)
        fprintf(mf, "Validation accuracy: **%.2f%%** on the %ld images of `%s`.\n", 100 * acc, n_test, o->val_data);
    else if (acc >= 0)
        fprintf(mf, "Test accuracy: **%.2f%%** on the %ld test images (`inferd eval --model %s --data %s`).\n",
                100 * acc, n_test, o->out, test);
    else
        fprintf(mf, "No test split found next to the training data.\n");
    fclose(mf);
    snprintf(path, sizeof path, "%s/README.md", o->out);
    int rc = eng_write_file_atomic(path, readme, rl, err);
    free(readme);
    return rc;
}

// ---------------------------------------------------------------- the task
// A tar's classes are its sorted folder names: map them to `labels` (a JSON
// array of names: the model's) by name. 0, or -1 with *err naming a folder
// that is not a label.
static int relabel_json(image_set *s, const json_t *labels, const char *what, char **err) {
    int map[256];
    for (int i = 0; i < s->n_classes && i < 256; i++) {
        const char *name = json_string_value(json_array_get(s->names, (size_t)i));
        map[i] = -1;
        for (size_t k = 0; k < json_array_size(labels) && k < 256; k++)
            if (name && strcmp(json_string_value(json_array_get(labels, k)) ? json_string_value(json_array_get(labels, k)) : "", name) == 0) map[i] = (int)k;
        if (map[i] < 0) return eng_errorf(err, "%s: label folder \"%s\" is not one of the model's labels", what, name ? name : "?");
    }
    int n_classes = 0;
    for (int i = 0; i < s->n; i++) {
        s->labels.data[i] = (uint8_t)map[s->labels.data[i]];
        if (s->labels.data[i] + 1 > n_classes) n_classes = s->labels.data[i] + 1;
    }
    s->n_classes = n_classes;
    return 0;
}

// Fine-tuning: cnn and config from o->base_model, checked against the data
// (input size, classes, --labels). *mean/*std are the base's normalisation. 0 or -1 with *err.
static int open_base_model(const eng_train_opts *o, image_set *tr, eng_cnn *cnn, json_t **config,
                           float *mean, float *std, char **err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o->base_model);
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    if (!c) return eng_errorf(err, "base model %s: %s", path, je.text);
    int rc = -1;
    const char *arch = json_string_value(json_object_get(c, "arch"));
    json_t *labels = json_object_get(c, "labels");
    eng_image_prep prep;
    int inv;
    if (!arch || strcmp(arch, "cnn") != 0) { eng_errorf(err, "base model %s is arch \"%s\", image-classification trains \"cnn\"", o->base_model, arch ? arch : "?"); goto done; }
    if (eng_model_parse_image_input(json_object_get(c, "input"), &prep, &inv, err) != 0) goto done;
    if (eng_cnn_init(cnn, c, err) != 0) goto done;
    snprintf(path, sizeof path, "%s/model.safetensors", o->base_model);
    if (eng_cnn_load(cnn, path, err) != 0) goto done;
    if (cnn->in_c != 1 || cnn->in_h != tr->h || cnn->in_w != tr->w) {
        eng_errorf(err, "base model %s takes %dx%dx%d images, the data has 1x%dx%d", o->base_model, cnn->in_c, cnn->in_h,
                   cnn->in_w, tr->h, tr->w);
        goto done;
    }
    if (tr->names && relabel_json(tr, labels, o->data, err) != 0) goto done;   // a tar: its folders by name
    if (tr->n_classes > cnn->n_classes) {
        eng_errorf(err, "the data has label %d, the base model %s has %d classes", tr->n_classes - 1, o->base_model, cnn->n_classes);
        goto done;
    }
    if (o->labels) {   // may only repeat the base's
        json_t *given = json_array();
        char *copy = strdup(o->labels), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            json_array_append_new(given, json_string(tok));
        free(copy);
        int same = json_equal(given, labels);
        json_decref(given);
        if (!same) { eng_errorf(err, "--labels differ from the base model's labels"); goto done; }
    }
    eng_cnn_make_owned(cnn);
    eng_cnn_enable_grads(cnn);
    *mean = prep.mean[0];
    *std = prep.std[0];
    *config = json_deep_copy(c);
    json_object_del(*config, "training");   // this run writes its own
    rc = 0;
done:
    json_decref(c);
    return rc;
}

int eng__train_image_classification(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "cnn") != 0) return eng_errorf(err, "image-classification trains arch \"cnn\" only");
    image_set tr, va;
    memset(&va, 0, sizeof va);
    if (image_set_load_train(&tr, o->data, err) != 0) return -1;
    int rc = -1, have_va = 0;
    json_t *config = NULL, *labels = NULL;
    eng_cnn cnn;
    memset(&cnn, 0, sizeof cnn);
    float mean, std;
    if (o->base_model) {
        if (open_base_model(o, &tr, &cnn, &config, &mean, &std, err) != 0) goto done;
    } else {
        if (!(labels = class_labels(o, &tr, err))) goto done;
        if (!(config = model_config(&tr, labels, &mean, &std, err))) goto done;
        if (eng_cnn_init(&cnn, config, err) != 0) goto done;
        eng_cnn_init_params(&cnn, o->seed);
        eng_cnn_enable_grads(&cnn);
    }
    // validation: --val-data, else the test split next to IDX training data when there is one
    if (o->val_data) {
        if (eng_dataset_is_tar(o->val_data)) {   // its folders mapped to the model's labels by name
            if (image_set_load_tar(&va, o->val_data, tr.h, tr.w, err) != 0) goto done;
            have_va = 1;
            if (relabel_json(&va, json_object_get(config, "labels"), o->val_data, err) != 0) goto done;
        } else {
            if (image_set_load(&va, o->val_data, val_split(o->val_data), err) != 0) goto done;
            have_va = 1;
        }
    } else if (!tr.names && strcmp(val_split(o->data), "t10k") == 0) {
        char *verr = NULL;
        have_va = image_set_load(&va, o->data, "t10k", &verr) == 0;
        free(verr);
    }
    if (have_va && (va.h != tr.h || va.w != tr.w || va.n_classes > cnn.n_classes)) {
        eng_errorf(err, "%s: validation images %dx%d with %d classes do not match the model's %dx%d and %d classes",
                   o->val_data ? o->val_data : o->data, va.h, va.w, va.n_classes, tr.h, tr.w, cnn.n_classes);
        goto done;
    }
    int steps_per_epoch = tr.n / o->batch_size;
    if (steps_per_epoch < 1) { eng_errorf(err, "%d training images is less than one batch of %d", tr.n, o->batch_size); goto done; }
    int total = o->steps > 0 ? o->steps : o->epochs * steps_per_epoch;
    double train_s = 0;
    if (train_loop(o, &tr, have_va ? &va : NULL, &cnn, total, mean, std, &train_s, err) != 0) goto done;
    rc = write_model(o, &tr, have_va ? &va : NULL, &cnn, config, total, mean, std, train_s, err);
done:
    eng_cnn_free(&cnn);
    json_decref(config);
    json_decref(labels);
    image_set_free(&tr);
    image_set_free(&va);
    return rc;
}

// ---------------------------------------------------------------- evaluation
// A tar's labels are its sorted folder names: turn them into the model's
// label indices by name. 0, or -1 with *err naming a label the model lacks.
static int relabel(image_set *te, const eng_model *m, char **err) {
    int map[256];
    for (int i = 0; i < te->n_classes; i++) {
        const char *name = json_string_value(json_array_get(te->names, (size_t)i));
        map[i] = -1;
        for (int k = 0; k < m->n_labels; k++)
            if (strcmp(m->labels[k], name) == 0) map[i] = k;
        if (map[i] < 0 || map[i] > 255) return eng_errorf(err, "label folder \"%s\" is not one of the model's labels", name);
    }
    for (int i = 0; i < te->n; i++) te->labels.data[i] = (uint8_t)map[te->labels.data[i]];
    return 0;
}

int eng_eval(const char *model_dir, const char *data, double *score, long *n, char **err) {
    eng_model *model;
    if (eng_model_load(&model, model_dir, err) != 0) return -1;
    int rc = -1;
    if (model->task == ENG_TASK_TEXT_CLASSIFICATION) {   // text_classification.c measures those
        eng_model_free(model);
        eng_eval_report r;
        if (eng_eval_text(model_dir, data, &r, err) != 0) return -1;
        *score = r.n ? (double)r.correct / (double)r.n : 0;
        *n = r.n;
        eng_eval_report_free(&r);
        return 0;
    }
    if (model->task != ENG_TASK_IMAGE_CLASSIFICATION) {
        eng_errorf(err, "eval supports image- and text-classification models in this build");
        eng_model_free(model);
        return -1;
    }
    image_set te;
    const eng_image_prep *p = &model->prep;
    int tar = eng_dataset_is_tar(data);
    if ((tar ? image_set_load_tar(&te, data, p->height, p->width, err) : image_set_load(&te, data, "t10k", err)) != 0) {
        eng_model_free(model);
        return -1;
    }
    if (tar && relabel(&te, model, err) != 0) goto done;
    if (p->channels != 1 || p->height != te.h || p->width != te.w) {
        eng_errorf(err, "model input %dx%dx%d does not match the data's 1x%dx%d", p->channels, p->height, p->width, te.h, te.w);
        goto done;
    }
    {
        const int B = 256, HW = te.h * te.w;
        float *x = eng_xmalloc((size_t)B * HW * sizeof(float));
        float *probs = eng_xmalloc((size_t)B * model->n_labels * sizeof(float));
        eng_tape tape;
        eng_tape_init(&tape, 0, 0);
        long correct = 0;
        for (int s = 0; s < te.n; s += B) {
            int nb = te.n - s < B ? te.n - s : B;
            for (int b = 0; b < nb; b++)   // the same normalisation the server applies to a gray image
                load_example(x + (size_t)b * HW, te.images.data + (size_t)(s + b) * HW, te.h, te.w, 0, 0, 0,
                             p->mean[0], 1.0f / p->std[0]);
            model->arch->classify_images(model, &tape, x, nb, probs);
            for (int b = 0; b < nb; b++) {
                int best = 0;
                for (int c = 1; c < model->n_labels; c++)
                    if (probs[b * model->n_labels + c] > probs[b * model->n_labels + best]) best = c;
                correct += best == te.labels.data[s + b];
            }
        }
        eng_tape_free(&tape);
        free(x); free(probs);
        *score = (double)correct / te.n;
        *n = te.n;
        rc = 0;
    }
done:
    image_set_free(&te);
    eng_model_free(model);
    return rc;
}

// ---------------------------------------------------------------- the check (POST /v1/jobs)
// Reads the training data (and val_data) once, as training would, without
// training: the tar's first bad member or the IDX files' problem.
static int check_set(const eng_train_opts *o, const char *path, const char *what, int need, char **err) {
    image_set s;
    char *e = NULL;
    int idx_val = path == o->val_data && !eng_dataset_is_tar(path);   // an IDX validation directory: t10k-* or train-*
    if ((idx_val ? image_set_load(&s, path, val_split(path), &e) : image_set_load_train(&s, path, &e)) != 0) {
        eng_errorf(err, "%s: %s", what, e ? e : "unreadable");
        free(e);
        return -1;
    }
    int rc = 0;
    if (s.n_classes < 2) rc = eng_errorf(err, "%s: the data has %d class; classification needs at least two", what, s.n_classes);
    else if (s.n < need) rc = eng_errorf(err, "%s: %d images is less than one batch of %d", what, s.n, need);
    image_set_free(&s);
    return rc;
}

int eng__check_image_classification(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "cnn") != 0) return eng_errorf(err, "image-classification trains arch \"cnn\" only");
    if (check_set(o, o->data, "training data", o->batch_size, err) != 0) return -1;
    if (o->val_data && check_set(o, o->val_data, "validation data", 1, err) != 0) return -1;
    return 0;
}
