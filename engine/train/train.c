// train.c — the trainer's entry point (see train.h): options, validation,
// and the dispatch to one training loop per task (image_classification.c,
// text_generation.c, text_classification.c, ...); plus what every loop's model directory needs.
#include "engine/train/train_internal.h"
#include <errno.h>          // errno
#include <stdio.h>          // snprintf
#include <string.h>         // strcmp, memset, strlen
#include <sys/stat.h>       // mkdir
#include "engine/arch/model.h"   // eng_task_parse, ENG_TASK__COUNT
#include "engine/core/util.h"    // eng_errorf, eng_write_file_atomic
#include "engine/text/utf8.h"    // eng_utf8_decode

void eng_train_opts_init(eng_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->task = "image-classification";
    o->epochs = 10;
    o->batch_size = 64;
    o->lr = 2e-3f;
    o->weight_decay = 1e-4f;
    o->seed = 1;
    o->log_every = 100;
    o->augment = 1;
    o->balance = 1;
    o->structure_weight = -1;
}

// The training loop of each task; NULL = not trainable in this build. Each
// loop checks the --arch it is given (its default when NULL).
static int (*const loops[ENG_TASK__COUNT])(const eng_train_opts *o, char **err) = {
    [ENG_TASK_IMAGE_CLASSIFICATION] = eng__train_image_classification,
    [ENG_TASK_TEXT_GENERATION] = eng__train_text_generation,
    [ENG_TASK_TEXT_CLASSIFICATION] = eng__train_text_classification,
    [ENG_TASK_TRANSLATION] = eng__train_translation,
    [ENG_TASK_IMAGE_GENERATION] = eng__train_image_generation,
    [ENG_TASK_IMAGE_STYLIZATION] = eng__train_image_stylization,
};

// Checks shared by eng_train and eng_train_check; the task's index, or -1 with *err.
static int check_common(const eng_train_opts *o, char **err) {
    int task = eng_task_parse(o->task);
    if (task < 0) return eng_errorf(err, "unknown task \"%s\"", o->task ? o->task : "");
    if (!o->data || !o->out) return eng_errorf(err, "--data and --out are required");
    if (o->batch_size < 1 || o->batch_size > 65536) return eng_errorf(err, "batch size must be in 1..65536");
    if (!(o->lr > 0) || o->lr > 10) return eng_errorf(err, "learning rate must be in (0, 10]");
    if (!(o->weight_decay >= 0) || o->weight_decay >= 1) return eng_errorf(err, "weight decay must be in [0, 1)");
    if (o->epochs < 1 && o->steps < 1) return eng_errorf(err, "epochs or steps must be positive");
    if (o->epochs > 100000 || o->steps < 0 || o->steps > 100000000)
        return eng_errorf(err, "epochs must be at most 100000 and steps in 0..100000000");
    if (o->log_every < 1) return eng_errorf(err, "log interval must be positive");
    if (o->dim < 0 || o->dim > 8192 || o->n_layers < 0 || o->n_layers > 256 || o->n_heads < 0 || o->n_heads > 256 ||
        o->context_len < 0 || o->context_len > 65536 || o->buckets < 0 || o->buckets > (1 << 26) ||
        o->minn < 0 || o->minn > 16 || o->maxn < 0 || o->maxn > 16)
        return eng_errorf(err, "model size options out of range");
    if (o->checkpoint_every < 0) return eng_errorf(err, "checkpoint interval must not be negative");
    if (o->resume && !o->checkpoint_path) return eng_errorf(err, "resume needs a checkpoint path");
    if (o->checkpoint_path) {   // its directory must exist now, not after the first N steps
        const char *slash = strrchr(o->checkpoint_path, '/');
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", slash ? (slash == o->checkpoint_path ? 1 : (int)(slash - o->checkpoint_path)) : 1,
                 slash ? o->checkpoint_path : ".");
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return eng_errorf(err, "checkpoint: %s: directory %s %s", o->checkpoint_path, dir,
                              stat(dir, &st) != 0 ? strerror(errno) : "is not a directory");
    }
    if (o->base_model) {   // a model directory of this task; the trainer checks arch and sizes
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", o->base_model);
        json_error_t je;
        json_t *c = json_load_file(path, 0, &je);
        if (!c) return eng_errorf(err, "base model %s: %s", o->base_model, je.text);
        const char *t = json_string_value(json_object_get(c, "task"));
        int same = t && strcmp(t, eng_task_name(task)) == 0;
        char *tcopy = t ? strdup(t) : NULL;
        json_decref(c);
        if (!same) {
            int rc = eng_errorf(err, "base model %s is a %s model, not %s", o->base_model, tcopy ? tcopy : "(no task)",
                                eng_task_name(task));
            free(tcopy);
            return rc;
        }
        free(tcopy);
    }
    if (!loops[task]) return eng_errorf(err, "training for task \"%s\" is not available in this build", o->task);
    return task;
}

int eng_train(const eng_train_opts *o, char **err) {
    int task = check_common(o, err);
    if (task < 0) return -1;
    return loops[task](o, err);
}

// The dataset check of each task (eng_train_check): its data and val_data
// read once without training, naming what is wrong and where. NULL = none
// yet for that task (the options are still checked).
static int (*const checks[ENG_TASK__COUNT])(const eng_train_opts *o, char **err) = {
    [ENG_TASK_IMAGE_CLASSIFICATION] = eng__check_image_classification,
    [ENG_TASK_TEXT_GENERATION] = eng__check_text_generation,
    [ENG_TASK_TEXT_CLASSIFICATION] = eng__check_text_classification,
    [ENG_TASK_TRANSLATION] = eng__check_translation,
    [ENG_TASK_IMAGE_GENERATION] = eng__check_image_generation,
    [ENG_TASK_IMAGE_STYLIZATION] = eng__check_image_stylization,
};

int eng_train_check(const eng_train_opts *o, char **err) {
    int task = check_common(o, err);
    if (task < 0) return -1;
    return checks[task] ? checks[task](o, err) : 0;
}

// ---------------------------------------------------------------- the model directory
int eng__train_mkdirs(const char *path, char **err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

int eng__train_write_json(const char *dir, const char *name, json_t *j, char **err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!s) return eng_errorf(err, "%s: out of memory", path);
    size_t n = strlen(s);
    s[n] = '\n';   // json_dumps' buffer has room for its NUL: end the file with a newline instead
    int rc = eng_write_file_atomic(path, s, n + 1, err);
    free(s);
    return rc;
}

int eng__train_check_utf8(const char *path, const char *text, size_t len, char **err) {
    int line = 1;
    const char *line_start = text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = eng_utf8_decode(text + i, len - i, &cp);
        if (k <= 0)
            return eng_errorf(err, "%s:%d: invalid UTF-8 (byte 0x%02x at byte %ld of the line)", path, line,
                              (unsigned char)text[i], (long)(text + i - line_start) + 1);
        if (text[i] == '\n') { line++; line_start = text + i + 1; }
        i += (size_t)k;
    }
    return 0;
}
