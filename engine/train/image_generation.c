// image_generation.c — training a (class-conditional) DCGAN
// (`inferd train --task image-generation`, engine/arch/dcgan.h) on an IDX
// image set (MNIST layout: train-images-idx3-ubyte[.gz] + labels), and
// measuring a generator with a classifier (eng_eval_generation).
//
// One step (Radford et al.; PyTorch's examples/dcgan): the discriminator
// sees a real batch (target 1) and a generated batch (target 0), then the
// generator is updated with the non-saturating loss -log D(G(z)) on the same
// latents. Both with Adam (lr 2e-4, beta1 0.5). Fake labels are drawn
// uniformly, so every class is trained equally often.
#include "engine/train/train_internal.h"
#include "engine/train/checkpoint.h"   // eng_ckpt
#include <math.h>               // expf, log1pf
#include <stdio.h>              // snprintf, open_memstream
#include <string.h>             // strcmp, memset
#include <sys/stat.h>           // stat
#include "engine/arch/dcgan.h"  // eng_dcgan
#include "engine/arch/model.h"  // eng_model_load (evaluation)
#include "engine/core/optim.h"  // eng_adamw_step
#include "engine/core/rng.h"    // eng_rng
#include "engine/core/util.h"   // eng_errorf, eng_now
#include "engine/io/idx.h"      // eng_idx_load

// ---------------------------------------------------------------- data
typedef struct {
    eng_idx images, labels;   // [N, H, W] and [N] bytes
    int n, h, w, n_classes;
} gan_set;

static void gan_set_free(gan_set *s) { eng_idx_free(&s->images); eng_idx_free(&s->labels); }

static int gan_set_load(gan_set *s, const char *dir, char **err) {
    memset(s, 0, sizeof *s);
    const char *kinds[2] = {"images-idx3", "labels-idx1"};
    eng_idx *dst[2] = {&s->images, &s->labels};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/train-%s-ubyte.gz", dir, kinds[k]);
        if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/train-%s-ubyte", dir, kinds[k]);
        if (eng_idx_load(dst[k], path, err) != 0) { gan_set_free(s); return -1; }
    }
    if (s->images.ndim != 3 || s->labels.ndim != 1 || s->images.dims[0] != s->labels.dims[0]) {
        gan_set_free(s);
        return eng_errorf(err, "%s: train images and labels do not match (need [N,H,W] and [N])", dir);
    }
    s->n = s->images.dims[0]; s->h = s->images.dims[1]; s->w = s->images.dims[2];
    if (s->h % 4 || s->w % 4) { gan_set_free(s); return eng_errorf(err, "%s: images must be a multiple of 4 pixels high and wide", dir); }
    for (int i = 0; i < s->n; i++)
        if (s->labels.data[i] + 1 > s->n_classes) s->n_classes = s->labels.data[i] + 1;
    return 0;
}

static const char *const fashion_labels[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

// Class names: --labels, else <data>/labels.txt, else Fashion-MNIST's when the path says so, else the digits.
static json_t *class_labels(const eng_train_opts *o, int n_classes, char **err) {
    json_t *a = json_array();
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.txt", o->data);
    FILE *f = o->labels ? NULL : fopen(path, "r");
    if (o->labels) {
        char *copy = strdup(o->labels), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            json_array_append_new(a, json_string(tok));
        free(copy);
    } else if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = 0;
            if (line[0]) json_array_append_new(a, json_string(line));
        }
        fclose(f);
    } else {
        for (int i = 0; i < n_classes; i++) {
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            json_array_append_new(a, json_string(strstr(o->data, "fashion") && n_classes == 10 ? fashion_labels[i] : num));
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

// ---------------------------------------------------------------- the loss
// Binary cross-entropy with logits, averaged over each batch and summed over
// the (one or two) batches: sum_k mean_i [softplus(x_ki) - t_k x_ki].
typedef struct { eng_var *x[2]; float target[2]; int n; } bce_ctx;

static float softplus(float x) { return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

static void bce_back(void *vctx, eng_var *out) {
    bce_ctx *c = vctx;
    for (int k = 0; k < c->n; k++) {
        eng_var *x = c->x[k];
        if (!x->grad) continue;
        float g = out->grad[0] / (float)x->n;
        for (size_t i = 0; i < x->n; i++) x->grad[i] += g * (sigm(x->val[i]) - c->target[k]);
    }
}

static eng_var *bce(eng_tape *t, eng_var *a, float ta, eng_var *b, float tb) {
    eng_var *out = eng_tape_var(t, 1, (int[]){1});
    bce_ctx *c = eng_arena_alloc(&t->arena, sizeof *c);
    *c = (bce_ctx){{a, b}, {ta, tb}, b ? 2 : 1};
    double sum = 0;
    for (int k = 0; k < c->n; k++) {
        double s = 0;
        for (size_t i = 0; i < c->x[k]->n; i++) s += softplus(c->x[k]->val[i]) - c->target[k] * c->x[k]->val[i];
        sum += s / (double)c->x[k]->n;
    }
    out->val[0] = (float)sum;
    if (t->grad_enabled) eng__tape_record(t, out, bce_back, c);
    return out;
}

static float mean_sigmoid(const eng_var *x) {
    double s = 0;
    for (size_t i = 0; i < x->n; i++) s += sigm(x->val[i]);
    return (float)(s / (double)x->n);
}

// ---------------------------------------------------------------- one step
// The state a step changes besides the parameters (everything is registered for checkpoints).
typedef struct {
    int *perm, pos;        // data order of this epoch, next index
    eng_rng data_rng;      // shuffling
    eng_rng z_rng;         // latents and fake labels
} gan_sampler;

static void next_real(const gan_set *s, gan_sampler *sm, float *x, int *y, int B) {
    int HW = s->h * s->w;
    for (int b = 0; b < B; b++) {
        if (sm->pos >= s->n) {
            for (int i = s->n - 1; i > 0; i--) {
                int j = (int)eng_rng_below(&sm->data_rng, (uint64_t)i + 1), tmp = sm->perm[i];
                sm->perm[i] = sm->perm[j]; sm->perm[j] = tmp;
            }
            sm->pos = 0;
        }
        int idx = sm->perm[sm->pos++];
        const uint8_t *src = s->images.data + (size_t)idx * HW;
        for (int k = 0; k < HW; k++) x[(size_t)b * HW + k] = src[k] / 127.5f - 1.0f;   // [-1, 1], as tanh
        y[b] = s->labels.data[idx];
    }
}

typedef eng__gan_stats gan_stats;
typedef eng__gan_adam gan_adam;

// One discriminator update then one generator update on real x/y and latents z/yf.
int eng__gan_step(eng_dcgan *m, gan_adam *ad, eng_tape *tape, eng_tape *tape_ng, const float *x, const int *y,
                  const float *z, const int *yf, int B, float lr, int step, gan_stats *st) {
    const int *yl = m->n_classes ? y : NULL, *yfl = m->n_classes ? yf : NULL;
    int C = m->channels, H = m->height, W = m->width;
    size_t ng = m->n_g_params, nd = m->n_params - ng;
    // discriminator: real -> 1, G(z) -> 0 (G runs without a tape record; its running statistics move here)
    eng_tape_reset(tape_ng);
    eng_var *fake = eng_dcgan_generate(m, tape_ng, eng_tape_wrap(tape_ng, (float *)z, 2, (int[]){B, m->n_latent}), yfl, 1);
    eng_tape_reset(tape);
    memset(m->grads, 0, m->n_params * sizeof(float));
    eng_var *lr_ = eng_dcgan_discriminate(m, tape, eng_tape_wrap(tape, (float *)x, 4, (int[]){B, C, H, W}), yl);
    eng_var *lf_ = eng_dcgan_discriminate(m, tape, eng_tape_wrap(tape, fake->val, 4, (int[]){B, C, H, W}), yfl);
    eng_var *dl = bce(tape, lr_, 1.0f, lf_, 0.0f);
    eng_tape_backward(tape, dl);
    eng_adamw_step(m->owned + ng, m->grads + ng, ad->dm, ad->dv, nd, lr, 0.5f, 0.999f, 1e-8f, 0.0f, step);
    st->d_loss = dl->val[0];
    st->d_real = mean_sigmoid(lr_);
    st->d_fake = mean_sigmoid(lf_);
    // generator: -log D(G(z)) through the updated discriminator
    eng_tape_reset(tape);
    memset(m->grads, 0, m->n_params * sizeof(float));
    fake = eng_dcgan_generate(m, tape, eng_tape_wrap(tape, (float *)z, 2, (int[]){B, m->n_latent}), yfl, 0);
    eng_var *gl = bce(tape, eng_dcgan_discriminate(m, tape, fake, yfl), 1.0f, NULL, 0);
    eng_tape_backward(tape, gl);
    eng_adamw_step(m->owned, m->grads, ad->gm, ad->gv, ng, lr, 0.5f, 0.999f, 1e-8f, 0.0f, step);
    st->g_loss = gl->val[0];
    return 0;
}

// ---------------------------------------------------------------- the task
static json_t *model_config(const gan_set *s, json_t *labels, int n_latent, int g_ch, int d_ch) {
    json_t *c = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i}", "task", "image-generation", "arch", "dcgan",
                          "n_latent", n_latent, "channels", 1, "height", s->h, "width", s->w,
                          "g_channels", g_ch, "d_channels", d_ch);
    if (labels) json_object_set(c, "labels", labels);
    json_object_set_new(c, "max_batch_size", json_integer(64));
    json_object_set_new(c, "max_queue_delay_us", json_integer(500));
    json_object_set_new(c, "max_queue_size", json_integer(1024));
    json_object_set_new(c, "timeout_ms", json_integer(10000));
    return c;
}

int eng__train_image_generation(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "dcgan") != 0) return eng_errorf(err, "image-generation trains arch \"dcgan\" only");
    if (o->base_model) return eng_errorf(err, "image-generation: fine-tuning (--base-model) is not supported yet");
    gan_set s;
    if (gan_set_load(&s, o->data, err) != 0) return -1;
    int rc = -1, B = o->batch_size;
    json_t *labels = NULL, *config = NULL;
    eng_dcgan m;
    memset(&m, 0, sizeof m);
    gan_adam ad = {0};
    gan_sampler sm = {0};
    float *x = NULL, *z = NULL;
    int *y = NULL, *yf = NULL;
    eng_tape tape, tape_ng;
    eng_tape_init(&tape, 1, 1);
    eng_tape_init(&tape_ng, 0, 1);
    eng_ckpt ck;
    int ck_init = 0;
    // --labels none: unconditional
    int conditional = !(o->labels && strcmp(o->labels, "none") == 0);
    if (conditional && !(labels = class_labels(o, s.n_classes, err))) goto done;
    int n_latent = 64, width = o->dim > 0 ? o->dim : 32;   // --dim: both networks' base width
    config = model_config(&s, labels, n_latent, width, width);
    if (eng_dcgan_init(&m, config, 1, err) != 0) goto done;
    eng_dcgan_init_params(&m, o->seed);
    int total = o->steps > 0 ? o->steps : o->epochs * (s.n / B > 0 ? s.n / B : 1);
    size_t ng = m.n_g_params, nd = m.n_params - ng;
    ad.gm = eng_xcalloc(ng, sizeof(float)); ad.gv = eng_xcalloc(ng, sizeof(float));
    ad.dm = eng_xcalloc(nd, sizeof(float)); ad.dv = eng_xcalloc(nd, sizeof(float));
    sm.perm = eng_xmalloc((size_t)s.n * sizeof(int));
    for (int i = 0; i < s.n; i++) sm.perm[i] = i;
    sm.pos = s.n;
    eng_rng_seed(&sm.data_rng, o->seed ^ 0x5eed);
    eng_rng_seed(&sm.z_rng, o->seed ^ 0x9a7e);
    x = eng_xmalloc((size_t)B * s.h * s.w * sizeof(float));
    z = eng_xmalloc((size_t)B * n_latent * sizeof(float));
    y = eng_xmalloc((size_t)B * sizeof(int));
    yf = eng_xmalloc((size_t)B * sizeof(int));
    double sums[4] = {0};   // D loss, G loss, D(x), D(G(z)) since the last report
    int n_sum = 0;
    eng_ckpt_init(&ck, o, "dcgan", total);
    ck_init = 1;
    eng_ckpt_floats(&ck, "params", m.owned, m.n_params);   // both networks, batch-norm statistics included
    eng_ckpt_floats(&ck, "adam.g.m", ad.gm, ng);
    eng_ckpt_floats(&ck, "adam.g.v", ad.gv, ng);
    eng_ckpt_floats(&ck, "adam.d.m", ad.dm, nd);
    eng_ckpt_floats(&ck, "adam.d.v", ad.dv, nd);
    eng_ckpt_ints(&ck, "data.order", sm.perm, (size_t)s.n);
    eng_ckpt_ints(&ck, "data.pos", &sm.pos, 1);
    eng_ckpt_rng(&ck, "data.rng", &sm.data_rng);
    eng_ckpt_rng(&ck, "z.rng", &sm.z_rng);
    for (int k = 0; k < 4; k++) {
        char name[16];
        snprintf(name, sizeof name, "sum.%d", k);
        eng_ckpt_double(&ck, name, &sums[k]);
    }
    eng_ckpt_ints(&ck, "sum.n", &n_sum, 1);
    eng_ckpt_check(&ck, "data.n", s.n);
    long start;
    if (eng_ckpt_resume(&ck, &start, err) != 0) goto done;
    double t0 = eng_now(), t_last = t0;
    for (int step = (int)start + 1; step <= total; step++) {
        if (o->cancel && *o->cancel) { eng_errorf(err, "cancelled"); goto done; }
        next_real(&s, &sm, x, y, B);
        for (size_t k = 0; k < (size_t)B * n_latent; k++) z[k] = eng_rng_normal(&sm.z_rng);
        for (int b = 0; b < B; b++) yf[b] = m.n_classes ? (int)eng_rng_below(&sm.z_rng, (uint64_t)m.n_classes) : 0;
        gan_stats st;
        eng__gan_step(&m, &ad, &tape, &tape_ng, x, y, z, yf, B, o->lr, step, &st);
        sums[0] += st.d_loss; sums[1] += st.g_loss; sums[2] += st.d_real; sums[3] += st.d_fake;
        n_sum++;
        if (step % o->log_every == 0 || step == total) {
            double now = eng_now();
            eng_train_progress p = {
                .step = step, .total_steps = total, .epoch = 1 + (int)((long)(step - 1) * B / s.n),
                .loss = (float)(sums[0] / n_sum), .lr = o->lr, .examples_per_s = n_sum * B / (now - t_last),
                .eta_s = (now - t0) / (step - start) * (total - step), .val_loss = -1, .val_accuracy = -1,
                .gan = 1, .g_loss = (float)(sums[1] / n_sum), .d_real = (float)(sums[2] / n_sum),
                .d_fake = (float)(sums[3] / n_sum)};
            eng_ckpt_report(&ck, &p);
            t_last = now;
            memset(sums, 0, sizeof sums);
            n_sum = 0;
        }
        if (eng_ckpt_after_step(&ck, step, err) != 0) goto done;
    }
    double train_s = eng_ckpt_seconds(&ck);
    // the model directory: the generator, its config, a README
    char path[4096];
    if (eng__train_mkdirs(o->out, err) != 0) goto done;
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (eng_dcgan_save_generator(&m, path, err) != 0) goto done;
    json_object_set_new(config, "training", json_pack("{s:i,s:i,s:f,s:I,s:f}", "steps", total, "batch_size", B,
                        "learning_rate", (double)o->lr, "seed", (json_int_t)o->seed, "seconds", train_s));
    if (eng__train_write_json(o->out, "config.json", config, err) != 0) goto done;
    {
        char *readme = NULL;
        size_t rl = 0;
        FILE *mf = open_memstream(&readme, &rl);
        fprintf(mf,
            "# %s\n\n%sDCGAN image generator (%zu generator parameters) trained by inferd's own trainer.\n\n"
            "## Reproduce\n\n```\n%s\n```\n\n"
            "Data: `%s` (%d training images, %dx%d%s). %d steps of batch %d (%.1f epochs), Adam lr %g "
            "(beta1 0.5, beta2 0.999), non-saturating GAN loss, seed %llu, latent size %d, widths %d/%d "
            "(generator/discriminator). Training took %.0f s on this machine.\n",
            strrchr(o->out, '/') ? strrchr(o->out, '/') + 1 : o->out, m.n_classes ? "Class-conditional " : "",
            m.n_g_params, o->command ? o->command : "inferd train --task image-generation ...", o->data, s.n, s.h, s.w,
            m.n_classes ? ", conditioned on the labels" : "", total, B, (double)total * B / s.n, (double)o->lr,
            (unsigned long long)o->seed, n_latent, m.g_ch, m.d_ch, train_s);
        fclose(mf);
        snprintf(path, sizeof path, "%s/README.md", o->out);
        int wrc = eng_write_file_atomic(path, readme, rl, err);
        free(readme);
        if (wrc != 0) goto done;
    }
    rc = 0;
done:
    if (ck_init) eng_ckpt_free(&ck);
    eng_tape_free(&tape);
    eng_tape_free(&tape_ng);
    eng_dcgan_free(&m);
    free(ad.gm); free(ad.gv); free(ad.dm); free(ad.dv);
    free(sm.perm); free(x); free(z); free(y); free(yf);
    json_decref(labels);
    json_decref(config);
    gan_set_free(&s);
    return rc;
}

int eng__check_image_generation(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "dcgan") != 0) return eng_errorf(err, "image-generation trains arch \"dcgan\" only");
    gan_set s;
    if (gan_set_load(&s, o->data, err) != 0) return -1;
    int rc = s.n < o->batch_size ? eng_errorf(err, "%d training images is less than one batch of %d", s.n, o->batch_size) : 0;
    gan_set_free(&s);
    return rc;
}
