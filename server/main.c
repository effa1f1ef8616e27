// main.c — the `inferd` command: serve (default), train, eval, run.
// Each subcommand parses its own flags and calls the engine or the daemon.
#include <cblas.h>             // openblas_set_num_threads
#include <math.h>             // exp
#include <stdio.h>            // printf, fprintf
#include <stdlib.h>           // strtol, strtod
#include <string.h>           // strcmp
#include "engine/io/image.h"     // eng_image_decode (run)
#include "engine/arch/model.h"     // eng_model_load (run)
#include "engine/arch/transformer.h"  // eng_tf_quantize_dir (quantize)
#include "engine/train/train.h"     // eng_train, eng_eval
#include "engine/train/stylize.h"   // eng_stylize
#include "engine/core/util.h"      // eng_read_file
#include "server/config.h"    // srv_config
#include "server/daemon.h"    // srv_daemon_run
#include "server/log.h"       // srv_log_set_level

static void usage(FILE *f) {
    fprintf(f,
        "inferd %s — a model-serving daemon that also trains its models\n\n"
        "usage:\n"
        "  inferd [serve] [--config FILE] [--host H] [--port P] [--models DIR] [--data-dir DIR]\n"
        "                 [--api-key KEY] [--threads N] [--workers N] [--log-level L] ...\n"
        "  inferd train --task T --data PATH --out DIR [--arch A] [--epochs N] [--steps N] [...]\n"
        "  inferd eval  --model DIR --data PATH\n"
        "  inferd run   --model DIR INPUT\n"
        "  inferd stylize --style ART --content PHOTO --out RESULT.png [--steps N] [--size S] [...]\n"
        "  inferd quantize --model DIR --out DIR [--group-size 32|64]\n"
        "  inferd --version | --help | <subcommand> --help\n", INFERD_VERSION);
}

// ---------------------------------------------------------------- serve
static int cmd_serve(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: inferd serve [--config FILE] [--OPTION VALUE ...]\n\n"
                   "Every option of conf/inferd.conf is also a flag (dashes or underscores);\n"
                   "flags override the file. --port 0 picks a free port and logs it.\n\n");
            srv_config_print_help(stdout);
            return 0;
        }
    }
    srv_config cfg;
    srv_config_init(&cfg);
    char *err = NULL;
    if (srv_config_from_args(&cfg, argc, argv, &err) != 0) {
        fprintf(stderr, "inferd: %s\n", err);
        free(err);
        srv_config_free(&cfg);
        return 2;
    }
    srv_log_set_level(cfg.log_level);
    int rc = srv_daemon_run(&cfg);
    srv_config_free(&cfg);
    return rc;
}

// ---------------------------------------------------------------- flag helpers
static int flag_int(const char *v, long lo, long hi, int *out, const char *name) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) { fprintf(stderr, "inferd: %s must be an integer in [%ld, %ld]\n", name, lo, hi); return -1; }
    *out = (int)x;
    return 0;
}

static int flag_float(const char *v, float *out, const char *name) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= 0)) { fprintf(stderr, "inferd: %s must be a non-negative number\n", name); return -1; }
    *out = (float)x;
    return 0;
}

// ---------------------------------------------------------------- train
static void print_progress(void *ctx, const eng_train_progress *p) {
    if (p->loss < 0) {
        if (p->val_accuracy >= 0 && p->val_loss >= 0)
            fprintf(stderr, "validation accuracy %.2f%%, loss %.4f\n", 100.0 * p->val_accuracy, (double)p->val_loss);
        else if (p->val_accuracy >= 0) fprintf(stderr, "test accuracy %.2f%%\n", 100.0 * p->val_accuracy);
        else if (p->val_loss >= 0) fprintf(stderr, "validation loss %.4f, perplexity %.2f\n", (double)p->val_loss, exp((double)p->val_loss));
        return;
    }
    int eta = (int)p->eta_s;
    if (p->gan) {
        fprintf(stderr, "step %6d/%d  epoch %2d  D loss %.4f  G loss %.4f  D(x) %.3f  D(G(z)) %.3f  %6.0f ex/s  ETA %dm%02ds\n",
                p->step, p->total_steps, p->epoch, (double)p->loss, (double)p->g_loss, (double)p->d_real,
                (double)p->d_fake, p->examples_per_s, eta / 60, eta % 60);
        return;
    }
    if (p->stylization) {
        fprintf(stderr, "step %6d/%d  loss %.4f  content %.4f  style %.4f  structure %.4f  %6.2f img/s  ETA %dm%02ds\n",
                p->step, p->total_steps, (double)p->loss, (double)p->content_loss, (double)p->style_loss,
                (double)p->structure_loss, p->examples_per_s, eta / 60, eta % 60);
        return;
    }
    char val[48] = "";
    if (p->val_loss >= 0 && p->val_accuracy >= 0)
        snprintf(val, sizeof val, "  val %.4f acc %.2f%%", (double)p->val_loss, 100.0 * p->val_accuracy);
    else if (p->val_loss >= 0) snprintf(val, sizeof val, "  val %.4f", (double)p->val_loss);
    fprintf(stderr, "step %6d/%d  epoch %2d  loss %.4f%s  lr %.2e  %7.0f ex/s  ETA %dm%02ds\n",
            p->step, p->total_steps, p->epoch, (double)p->loss, val, (double)p->lr, p->examples_per_s, eta / 60, eta % 60);
}

static int cmd_train(int argc, char **argv) {
    eng_train_opts o;
    eng_train_opts_init(&o);
    o.task = NULL;
    int threads = 0, lr_given = 0, batch_given = 0, check_only = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: inferd train --task T --data PATH --out DIR [options]\n\n"
                   "  --task T          image-classification | text-generation | text-classification | translation\n"
                   "                    | image-generation (DCGAN; --dim sets its base width, --labels none: unconditional)\n"
                   "                    | image-stylization (a fast style network: --style IMAGE --content DIR, below)\n"
                   "  --data PATH       dataset (image-classification: a directory with MNIST-style IDX files,\n"
                   "                    e.g. /usr/share/datasets/fashion-mnist, or a tar (gzip'd or not) of label\n"
                   "                    folders: label/image.png|jpg, trained as gray 28x28; text-generation: a text file or a\n"
                   "                    directory of them, e.g. /usr/share/games/fortunes; text-classification: a\n"
                   "                    TSV file of label<TAB>text lines, or a directory with train.tsv + test.tsv;\n"
                   "                    translation: a TSV of source<TAB>target lines, e.g. from\n"
                   "                    scripts/data/freedict-en-de.py)\n"
                   "  --style IMAGE     image-stylization: the style (PNG or JPEG); --content DIR (= --data): a directory\n"
                   "                    of PNG/JPEG photos, searched recursively; --width X the network's channel\n"
                   "                    multiplier (default 0.5; 1 = pytorch/examples' size); --size N training crop side\n"
                   "                    (default 256); --style-size N the style's longer side for its targets (default\n"
                   "                    2 x --size); --style-weight X (default 1) --content-weight X (default 1);\n"
                   "                    --structure-weight X (the Laplacian edge term, default 1; 0: off);\n"
                   "                    defaults --batch-size 4 --lr 0.001\n"
                   "  --val-data PATH   validation data in the layout of --data, instead of the held-out split\n"
                   "                    (image-classification tars: the test split the README's score is measured on)\n"
                   "  --out DIR         model directory to write (config.json, model.safetensors, README.md)\n"
                   "  --arch A          architecture (image-classification: cnn; text-generation: gpt | llama | lstm;\n"
                   "                    text-classification: fasttext; translation: lstm-attention)\n"
                   "  --dim N --layers N --heads N --context N   text models' size (defaults gpt 128/4/4/128, lstm 256/2;\n"
                   "                    lstm-attention: hidden 256, 1 encoder layer, pairs of at most 64 characters)\n"
                   "  --buckets N --minn N --maxn N   fasttext: hashed feature rows (default 131072) and\n"
                   "                    character n-gram lengths (default 1..4); --dim (default 16)\n"
                   "  --sample-prompt S the README sample's prompt (text-generation); translation: sources to\n"
                   "                    translate in the README, separated by |\n"
                   "  --epochs N        passes over the data (default 10)\n"
                   "  --steps N         optimizer steps (overrides --epochs)\n"
                   "  --batch-size N    default 64\n"
                   "  --lr X            peak learning rate, AdamW (default 0.002); text-classification: SGD,\n"
                   "                    falling linearly to 0 (default 0.5)\n"
                   "  --weight-decay X  default 0.0001\n"
                   "  --seed N          default 1\n"
                   "  --log-every N     progress line every N steps (default 100)\n"
                   "  --labels A,B,...  class names (default: DATA/labels.txt or the dataset's own)\n"
                   "  --no-augment      no random shifts/flips\n"
                   "  --no-balance      text-classification: no oversampling of rare labels\n"
                   "  --base-model DIR  fine-tune this model (same task and arch; its config, tokenizer and labels)\n"
                   "  --checkpoint PATH write a checkpoint there every --checkpoint-every steps (atomically)\n"
                   "  --checkpoint-every N   default: about 20 per run\n"
                   "  --resume          continue from --checkpoint when it exists (same settings, same result)\n"
                   "  --check           check the options and the data's format, without training\n"
                   "  --threads N       OpenBLAS threads (default: all cores)\n");
            return 0;
        }
        int has = v != NULL, rc = 0;
        if (strcmp(a, "--no-augment") == 0) { o.augment = 0; continue; }
        if (strcmp(a, "--no-balance") == 0) { o.balance = 0; continue; }
        if (strcmp(a, "--resume") == 0) { o.resume = 1; continue; }
        if (strcmp(a, "--check") == 0) { check_only = 1; continue; }
        if (!has) { fprintf(stderr, "inferd train: %s needs a value (or is unknown)\n", a); return 2; }
        if (strcmp(a, "--task") == 0) o.task = v;
        else if (strcmp(a, "--data") == 0 || strcmp(a, "--content") == 0) o.data = v;
        else if (strcmp(a, "--style") == 0) o.style = v;
        else if (strcmp(a, "--width") == 0) rc = flag_float(v, &o.net_width, a);
        else if (strcmp(a, "--size") == 0) rc = flag_int(v, 8, 1024, &o.image_size, a);
        else if (strcmp(a, "--style-size") == 0) rc = flag_int(v, 8, 4096, &o.style_size, a);
        else if (strcmp(a, "--style-weight") == 0) rc = flag_float(v, &o.style_weight, a);
        else if (strcmp(a, "--content-weight") == 0) rc = flag_float(v, &o.content_weight, a);
        else if (strcmp(a, "--structure-weight") == 0) rc = flag_float(v, &o.structure_weight, a);
        else if (strcmp(a, "--out") == 0) o.out = v;
        else if (strcmp(a, "--val-data") == 0) o.val_data = v;
        else if (strcmp(a, "--arch") == 0) o.arch = v;
        else if (strcmp(a, "--labels") == 0) o.labels = v;
        else if (strcmp(a, "--epochs") == 0) rc = flag_int(v, 1, 100000, &o.epochs, a);
        else if (strcmp(a, "--steps") == 0) rc = flag_int(v, 1, 100000000, &o.steps, a);
        else if (strcmp(a, "--batch-size") == 0) { rc = flag_int(v, 1, 65536, &o.batch_size, a); batch_given = 1; }
        else if (strcmp(a, "--log-every") == 0) rc = flag_int(v, 1, 100000000, &o.log_every, a);
        else if (strcmp(a, "--threads") == 0) rc = flag_int(v, 1, 256, &threads, a);
        else if (strcmp(a, "--dim") == 0) rc = flag_int(v, 1, 8192, &o.dim, a);
        else if (strcmp(a, "--layers") == 0) rc = flag_int(v, 1, 256, &o.n_layers, a);
        else if (strcmp(a, "--heads") == 0) rc = flag_int(v, 1, 256, &o.n_heads, a);
        else if (strcmp(a, "--context") == 0) rc = flag_int(v, 2, 65536, &o.context_len, a);
        else if (strcmp(a, "--buckets") == 0) rc = flag_int(v, 1, 1 << 26, &o.buckets, a);
        else if (strcmp(a, "--minn") == 0) rc = flag_int(v, 1, 16, &o.minn, a);
        else if (strcmp(a, "--maxn") == 0) rc = flag_int(v, 1, 16, &o.maxn, a);
        else if (strcmp(a, "--sample-prompt") == 0) o.sample_prompt = v;
        else if (strcmp(a, "--base-model") == 0) o.base_model = v;
        else if (strcmp(a, "--checkpoint") == 0) o.checkpoint_path = v;
        else if (strcmp(a, "--checkpoint-every") == 0) rc = flag_int(v, 1, 100000000, &o.checkpoint_every, a);
        else if (strcmp(a, "--lr") == 0) { rc = flag_float(v, &o.lr, a); lr_given = 1; }
        else if (strcmp(a, "--weight-decay") == 0) rc = flag_float(v, &o.weight_decay, a);
        else if (strcmp(a, "--seed") == 0) { int s; rc = flag_int(v, 0, 2147483647, &s, a); o.seed = (uint64_t)s; }
        else { fprintf(stderr, "inferd train: unknown option %s (see inferd train --help)\n", a); return 2; }
        if (rc) return 2;
        i++;
    }
    if (!o.task || !o.data || !o.out) {
        fprintf(stderr, "inferd train: --task, --data (image-stylization: --content) and --out are required\n");
        return 2;
    }
    if (!lr_given && strcmp(o.task, "text-classification") == 0) o.lr = 0.5f;   // SGD, as fastText, not AdamW
    if (!lr_given && strcmp(o.task, "image-generation") == 0) o.lr = 2e-4f;     // DCGAN's Adam rate
    if (strcmp(o.task, "image-stylization") == 0) {   // pytorch/examples fast_neural_style's settings
        if (!lr_given) o.lr = 1e-3f;
        if (!batch_given) o.batch_size = 4;
    }
    if (threads > 0) openblas_set_num_threads(threads);
    // the README of the model records the exact command
    char command[2048] = "inferd train";
    for (int i = 0; i < argc; i++) {   // quoted where the shell needs it
        size_t n = strlen(command);
        int quote = argv[i][0] == 0 || strpbrk(argv[i], " \t'\"$*?&;|<>()") != NULL;
        snprintf(command + n, sizeof command - n, quote ? " '%s'" : " %s", argv[i]);
    }
    o.command = command;
    o.progress = print_progress;
    char *err = NULL;
    if (check_only) {
        if (eng_train_check(&o, &err) != 0) {
            fprintf(stderr, "inferd train: %s\n", err);
            free(err);
            return 1;
        }
        fprintf(stderr, "options and data look right\n");
        return 0;
    }
    if (eng_train(&o, &err) != 0) {
        fprintf(stderr, "inferd train: %s\n", err);
        free(err);
        return 1;
    }
    fprintf(stderr, "model written to %s\n", o.out);
    return 0;
}

// ---------------------------------------------------------------- eval
// An image generator judged by a classifier (eng_eval_generation).
static int eval_generation(const char *model, const char *classifier, int n, uint64_t seed, const char *grid) {
    eng_gen_report r;
    char *err = NULL;
    if (eng_eval_generation(model, classifier, n, seed, grid, &r, &err) != 0) {
        fprintf(stderr, "inferd eval: %s\n", err);
        free(err);
        return 1;
    }
    int present = 0;
    for (int k = 0; k < r.n_labels; k++) present += r.counts[k] > 0;
    printf("images %ld  mean top-1 confidence %.4f  classes represented %d/%d", r.n, r.mean_confidence, present, r.n_labels);
    if (r.conditional) printf("  classified as the requested label %.4f", (double)r.matched / (double)r.n);
    printf("\n");
    for (int k = 0; k < r.n_labels; k++) printf("label %-12s %.4f (%ld images)\n", r.labels[k], (double)r.counts[k] / (double)r.n, r.counts[k]);
    eng_gen_report_free(&r);
    return 0;
}

static int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *classifier = NULL, *grid = NULL;
    int n_images = 1000, window = 0;
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: inferd eval --model DIR --data PATH\n"
                   "       inferd eval --model LM --data TEXT [--window N]   (a language model: perplexity)\n"
                   "       inferd eval --model GENERATOR --classifier DIR [--n 1000] [--seed 1] [--grid out.png]\n");
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--model") == 0) model = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--data") == 0) data = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--classifier") == 0) classifier = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--grid") == 0) grid = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--n") == 0) { if (flag_int(argv[++i], 1, 1000000, &n_images, "--n") != 0) return 2; }
        else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--window") == 0) { if (flag_int(argv[++i], 2, 1 << 20, &window, "--window") != 0) return 2; }
        else { fprintf(stderr, "inferd eval: unknown option %s\n", argv[i]); return 2; }
    }
    if (model && classifier) return eval_generation(model, classifier, n_images, seed, grid);
    if (!model || !data) { fprintf(stderr, "inferd eval: --model and --data are required\n"); return 2; }
    double score, exact;
    long n;
    char *err = NULL;
    int lm = eng_eval_perplexity(model, data, window, &score, &n, &err);   // 1: not a language model
    if (lm == 0) {
        printf("perplexity %.4f  loss %.5f nats/token (%ld predictions)\n", exp(score), score, n);
        return 0;
    }
    if (lm < 0) {
        fprintf(stderr, "inferd eval: %s\n", err);
        free(err);
        return 1;
    }
    int tr = eng_eval_translation(model, data, &score, &exact, &n, &err);   // 1: not a translation model
    if (tr == 0) {
        printf("chrF2 %.2f exact-match %.4f (%ld examples)\n", score, exact, n);
        return 0;
    }
    if (tr < 0) {
        fprintf(stderr, "inferd eval: %s\n", err);
        free(err);
        return 1;
    }
    eng_eval_report r;
    if (eng_eval_text(model, data, &r, &err) == 0) {   // a text classifier: overall, long texts, per label
        printf("accuracy %.4f (%ld examples)\n", r.n ? (double)r.correct / (double)r.n : 0.0, r.n);
        printf("accuracy over 20 characters %.4f (%ld examples)\n",
               r.n_long ? (double)r.correct_long / (double)r.n_long : 0.0, r.n_long);
        for (int i = 0; i < r.n_labels; i++)
            printf("label %-12s %.4f (%ld examples)\n", r.labels[i],
                   r.label_n[i] ? (double)r.label_correct[i] / (double)r.label_n[i] : 0.0, r.label_n[i]);
        eng_eval_report_free(&r);
        return 0;
    }
    free(err);
    err = NULL;
    if (eng_eval(model, data, &score, &n, &err) != 0) {
        fprintf(stderr, "inferd eval: %s\n", err);
        free(err);
        return 1;
    }
    printf("accuracy %.4f (%ld examples)\n", score, n);
    return 0;
}

// ---------------------------------------------------------------- stylize
static void print_stylize_progress(void *ctx, const eng_stylize_progress *p) {
    (void)ctx;
    printf("step %5d/%d  loss %.4f  content %.4f  style %.4f  tv %.5f  %.1fs\n", p->step, p->total_steps,
           (double)p->loss, (double)p->content, (double)p->style, (double)p->tv, p->elapsed_s);
    fflush(stdout);
}

// Reads and decodes an image file for stylize; NULL after printing why.
static float *stylize_read(const char *path, const char *what, int size, int *H, int *W) {
    char *err = NULL;
    size_t len;
    char *bytes = eng_read_file(path, &len, &err);
    float *x = NULL;
    if (bytes && eng_stylize_decode(bytes, len, size, 100000000, &x, H, W, &err) == ENG_IMG_OK) {
        free(bytes);
        return x;
    }
    fprintf(stderr, "inferd stylize: %s %s: %s\n", what, path, err ? err : "cannot read");
    free(err);
    free(bytes);
    return NULL;
}

static int cmd_stylize(int argc, char **argv) {
    eng_stylize_opts o;
    eng_stylize_opts_init(&o);
    const char *style = NULL, *content = NULL, *out = NULL;
    int size = ENG_STYLIZE_DEFAULT_SIZE, style_size = 0, seed = (int)ENG_LOSSNET_DEFAULT_SEED;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: inferd stylize --style ART --content PHOTO --out RESULT.png [options]\n\n"
                   "Paints PHOTO in the style of ART by optimising the result's pixels (Gatys et al.),\n"
                   "starting from the photo; PNG or JPEG in, PNG out.\n\n"
                   "  --steps N           Adam steps (default %d)\n"
                   "  --size S            longest side of the result, in pixels (default %d; the photo is shrunk)\n"
                   "  --style-size S      longest side the style image is shrunk to (default: --size)\n"
                   "  --style-weight W    weight of the style term (default %g)\n"
                   "  --content-weight W  weight of the content term (default 1)\n"
                   "  --tv-weight W       weight of the smoothness term (default %g)\n"
                   "  --lr R              Adam's step, in pixel levels (default %g)\n"
                   "  --seed N            the loss network's seed (default %u)\n"
                   "  --log-every N       steps between progress lines (default %d)\n",
                   ENG_STYLIZE_DEFAULT_STEPS, ENG_STYLIZE_DEFAULT_SIZE, (double)ENG_STYLE_DEFAULT_STYLE_WEIGHT,
                   (double)ENG_STYLE_DEFAULT_TV_WEIGHT, (double)o.lr, ENG_LOSSNET_DEFAULT_SEED, o.log_every);
            return 0;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "inferd stylize: %s needs a value (or is unknown)\n", a); return 2; }
        i++;
        int bad = 0;
        if (strcmp(a, "--style") == 0) style = v;
        else if (strcmp(a, "--content") == 0) content = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else if (strcmp(a, "--steps") == 0) bad = flag_int(v, 0, ENG_STYLIZE_MAX_STEPS, &o.steps, a);
        else if (strcmp(a, "--size") == 0) bad = flag_int(v, ENG_LOSSNET_MIN_SIDE, ENG_STYLIZE_MAX_SIDE, &size, a);
        else if (strcmp(a, "--style-size") == 0) bad = flag_int(v, ENG_LOSSNET_MIN_SIDE, ENG_STYLIZE_MAX_SIDE, &style_size, a);
        else if (strcmp(a, "--style-weight") == 0) bad = flag_float(v, &o.weights.style_weight, a);
        else if (strcmp(a, "--content-weight") == 0) bad = flag_float(v, &o.weights.content_weight, a);
        else if (strcmp(a, "--tv-weight") == 0) bad = flag_float(v, &o.weights.tv_weight, a);
        else if (strcmp(a, "--lr") == 0) bad = flag_float(v, &o.lr, a);
        else if (strcmp(a, "--seed") == 0) bad = flag_int(v, 0, 2147483647, &seed, a);
        else if (strcmp(a, "--log-every") == 0) bad = flag_int(v, 1, 1000000, &o.log_every, a);
        else { fprintf(stderr, "inferd stylize: unknown option %s (see inferd stylize --help)\n", a); return 2; }
        if (bad) return 2;
    }
    if (!style || !content || !out) { fprintf(stderr, "inferd stylize: --style, --content and --out are required\n"); return 2; }
    o.seed = (uint64_t)seed;
    o.progress = print_stylize_progress;
    int H, W, SH, SW;
    float *c = stylize_read(content, "content", size, &H, &W);
    float *s = c ? stylize_read(style, "style", style_size ? style_size : size, &SH, &SW) : NULL;
    float *y = s ? malloc((size_t)3 * H * W * sizeof(float)) : NULL;
    if (!y) { free(c); free(s); return 1; }
    printf("stylize: content %s (%dx%d), style %s (%dx%d), %d steps\n", content, W, H, style, SW, SH, o.steps);
    char *err = NULL;
    eng_style_loss_parts first, last;
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = 1;
    if (eng_stylize(&o, c, H, W, s, SH, SW, y, &first, &last, &err) != 0 ||
        eng_stylize_encode_png(y, H, W, &png, &len, &err) != 0 || eng_write_file_atomic(out, png, len, &err) != 0) {
        fprintf(stderr, "inferd stylize: %s\n", err);
        free(err);
    } else {
        printf("loss %.4f -> %.4f (content %.4f, style %.4f -> %.4f); wrote %s\n", (double)first.total,
               (double)last.total, (double)last.content, (double)first.style, (double)last.style, out);
        printf("style per layer:");
        for (int l = 0; l < ENG_LOSSNET_MAX_LAYERS && (first.style_layer[l] > 0 || last.style_layer[l] > 0); l++)
            printf("  %.4f -> %.4f", (double)first.style_layer[l], (double)last.style_layer[l]);
        printf("\n");
        rc = 0;
    }
    free(png); free(c); free(s); free(y);
    return rc;
}

// ---------------------------------------------------------------- quantize
static int cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    int group = 32;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: inferd quantize --model DIR --out DIR [--group-size 32|64]\n\n"
                   "Writes DIR's language model (GPT-2 / Llama: Hugging Face directory, llama2.c checkpoint,\n"
                   "or trained by inferd) with int8 weight matrices and one fp32 scale per group of\n"
                   "--group-size weights (default 32), tokenizer files copied. Serve --out as any model.\n");
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--model") == 0) model = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--out") == 0) out = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--group-size") == 0) {
            if (flag_int(argv[++i], 1, 1 << 20, &group, "--group-size") != 0) return 2;
        } else { fprintf(stderr, "inferd quantize: unknown option %s (see inferd quantize --help)\n", argv[i]); return 2; }
    }
    if (!model || !out) { fprintf(stderr, "inferd quantize: --model and --out are required\n"); return 2; }
    if (group != 32 && group != 64) { fprintf(stderr, "inferd quantize: --group-size must be 32 or 64\n"); return 2; }
    eng_tf_quant_report r;
    char *err = NULL;
    if (eng_tf_quantize_dir(model, out, group, &r, &err) != 0) {
        fprintf(stderr, "inferd quantize: %s\n", err);
        free(err);
        return 1;
    }
    fprintf(stderr, "%d matrices int8 (%zu weights, groups of %d), %zu values left fp32; written to %s\n",
            r.n_quantized, r.q8_params, r.group, r.fp32_params, out);
    return 0;
}

// ---------------------------------------------------------------- run
static int cmd_run(int argc, char **argv) {
    const char *model_dir = NULL, *input = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) { printf("usage: inferd run --model DIR INPUT (an image file for image models, the text for text classifiers)\n"); return 0; }
        if (i + 1 < argc && strcmp(argv[i], "--model") == 0) model_dir = argv[++i];
        else if (!input && argv[i][0] != '-') input = argv[i];
        else { fprintf(stderr, "inferd run: unknown option %s\n", argv[i]); return 2; }
    }
    if (!model_dir || !input) { fprintf(stderr, "inferd run: --model and an input are required\n"); return 2; }
    char *err = NULL;
    eng_model *m;
    if (eng_model_load(&m, model_dir, &err) != 0) { fprintf(stderr, "inferd run: %s\n", err); free(err); return 1; }
    int rc = 1;
    if (m->task == ENG_TASK_IMAGE_CLASSIFICATION) {
        size_t len;
        char *bytes = eng_read_file(input, &len, &err);
        eng_image img;
        if (!bytes || eng_image_decode(&img, bytes, len, 100000000, &err) != ENG_IMG_OK) {
            fprintf(stderr, "inferd run: %s\n", err);
            free(err);
        } else {
            float *x = eng_xmalloc(eng_model_input_size(m) * sizeof(float)), *p = eng_xmalloc((size_t)m->n_labels * sizeof(float));
            if (eng_model_image_input(m, &img, x) != 0) { fprintf(stderr, "inferd run: out of memory\n"); exit(1); }
            eng_tape tape;
            eng_tape_init(&tape, 0, 0);
            m->arch->classify_images(m, &tape, x, 1, p);
            for (int k = 0; k < 5 && k < m->n_labels; k++) {
                int best = -1;
                for (int c = 0; c < m->n_labels; c++)
                    if (p[c] >= 0 && (best < 0 || p[c] > p[best])) best = c;
                printf("%-16s %.4f\n", m->labels[best], (double)p[best]);
                p[best] = -1;
            }
            eng_tape_free(&tape);
            eng_image_free(&img);
            free(x); free(p);
            rc = 0;
        }
        free(bytes);
    } else if (m->task == ENG_TASK_TEXT_CLASSIFICATION && m->arch->classify_text) {
        int *ids = NULL, n_ids = 0;
        if (eng_model_text_ids(m, input, strlen(input), &ids, &n_ids, &err) != 0) {
            fprintf(stderr, "inferd run: %s\n", err ? err : "the model cannot take this text");
            free(err);
        } else {
            float *p = eng_xmalloc((size_t)m->n_labels * sizeof(float));
            eng_tape tape;
            eng_tape_init(&tape, 0, 0);
            const int *const iv[1] = {ids};
            m->arch->classify_text(m, &tape, iv, &n_ids, 1, p);
            for (int k = 0; k < 5 && k < m->n_labels; k++) {
                int best = -1;
                for (int c = 0; c < m->n_labels; c++)
                    if (p[c] >= 0 && (best < 0 || p[c] > p[best])) best = c;
                printf("%-16s %.4f\n", m->labels[best], (double)p[best]);
                p[best] = -1;
            }
            eng_tape_free(&tape);
            free(p);
            free(ids);
            rc = 0;
        }
    } else {
        fprintf(stderr, "inferd run: task %s is not supported by `run` in this version\n", eng_task_name(m->task));
    }
    eng_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
        printf("inferd %s\n", INFERD_VERSION);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return cmd_serve(argc - 1, argv + 1);   // argv[0] ("serve") is skipped by the parser
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return cmd_train(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) return cmd_eval(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "stylize") == 0) return cmd_stylize(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "quantize") == 0) return cmd_quantize(argc - 2, argv + 2);
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "inferd: unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    return cmd_serve(argc, argv);   // no subcommand: serve
}
