// stylize.c — style transfer by optimising pixels (see stylize.h).
#include "engine/train/stylize.h"

#include <math.h>                 // lroundf, cosf
#include <stdlib.h>               // malloc, free
#include <string.h>               // memcpy
#include "engine/core/optim.h"    // eng_adamw_step
#include "engine/core/util.h"     // eng_errorf, eng_now
#include "engine/io/exif.h"       // eng_jpeg_orientation, eng_image_orient
#include "engine/io/image.h"      // eng_image_decode, eng_png_encode

void eng_stylize_opts_init(eng_stylize_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = ENG_STYLIZE_DEFAULT_STEPS;
    o->lr = 10.0f;
    eng_style_weights_default(&o->weights);
    o->seed = ENG_LOSSNET_DEFAULT_SEED;
    o->log_every = 10;
}

static void report(const eng_stylize_opts *o, int step, const eng_style_loss_parts *p, double t0) {
    if (!o->progress) return;
    eng_stylize_progress pr = {.step = step, .total_steps = o->steps, .loss = p->total, .content = p->content,
                               .style = p->style, .tv = p->tv, .elapsed_s = eng_now() - t0};
    o->progress(o->progress_ctx, &pr);
}

int eng_stylize(const eng_stylize_opts *o, const float *content, int H, int W, const float *style, int SH, int SW,
                float *out, eng_style_loss_parts *first, eng_style_loss_parts *last, char **err) {
    if (H < ENG_LOSSNET_MIN_SIDE || W < ENG_LOSSNET_MIN_SIDE)
        return eng_errorf(err, "content image is %dx%d; stylize needs at least %dx%d", W, H, ENG_LOSSNET_MIN_SIDE,
                          ENG_LOSSNET_MIN_SIDE);
    if (o->steps < 0 || o->steps > ENG_STYLIZE_MAX_STEPS)
        return eng_errorf(err, "steps must be in [0, %d]", ENG_STYLIZE_MAX_STEPS);
    eng_lossnet *net;
    if (eng_lossnet_new(&net, o->seed, err) != 0) return -1;
    eng_style_target st;
    if (eng_style_target_compute(&st, net, style, SH, SW, err) != 0) {
        eng_lossnet_free(net);
        return -1;
    }
    size_t n = (size_t)3 * H * W;
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    if (!m || !v) {
        free(m); free(v);
        eng_style_target_free(&st);
        eng_lossnet_free(net);
        return eng_errorf(err, "out of memory for a %dx%d image", W, H);
    }
    memcpy(out, content, n * sizeof(float));   // start from the photo: its structure is kept from step 0
    eng_tape t;
    eng_tape_init(&t, 1, 1);
    double t0 = eng_now();
    const int shape[4] = {1, 3, H, W};
    int rc = 0;
    eng_style_loss_parts p;
    for (int step = 1; step <= o->steps; step++) {
        if (o->cancel && *o->cancel) { rc = eng_errorf(err, "cancelled"); break; }
        eng_tape_reset(&t);
        eng_var *y = eng_tape_var(&t, 4, shape);
        memcpy(y->val, out, n * sizeof(float));
        eng_var *c = eng_tape_wrap(&t, (float *)content, 4, shape);
        eng_var *loss = eng_style_loss(&t, net, y, c, &st, &o->weights, &p);
        if (step == 1 && first) *first = p;
        eng_tape_backward(&t, loss);
        // cosine decay to a tenth: large steps move colours and shapes, small ones settle the grain
        float lr = o->lr * (0.1f + 0.45f * (1.0f + cosf(3.14159265f * (float)(step - 1) / (float)o->steps)));
        eng_adamw_step(out, y->grad, m, v, n, lr, 0.9f, 0.999f, 1e-8f, 0.0f, step);
        for (size_t i = 0; i < n; i++) out[i] = out[i] < 0 ? 0 : out[i] > 255 ? 255 : out[i];
        if (step == 1 || (o->log_every > 0 && step % o->log_every == 0) || step == o->steps) report(o, step, &p, t0);
    }
    if (rc == 0 && (last || (first && o->steps == 0))) {   // the loss of the final pixels
        eng_tape_reset(&t);
        t.grad_enabled = 0;
        eng_style_loss(&t, net, eng_tape_wrap(&t, out, 4, shape), eng_tape_wrap(&t, (float *)content, 4, shape), &st,
                       &o->weights, &p);
        if (last) *last = p;
        if (first && o->steps == 0) *first = p;
    }
    eng_tape_free(&t);
    free(m); free(v);
    eng_style_target_free(&st);
    eng_lossnet_free(net);
    return rc;
}

int eng_stylize_decode(const void *bytes, size_t len, int max_side, size_t max_pixels, float **planes, int *H, int *W,
                       char **err) {
    *planes = NULL;
    eng_image img;
    int rc = eng_image_decode(&img, bytes, len, max_pixels, err);
    if (rc != ENG_IMG_OK) return rc;
    // JPEG cameras store pixels as the sensor saw them and say how to turn them
    if (eng_image_orient(&img, eng_jpeg_orientation(bytes, len)) != 0) {
        eng_image_free(&img);
        eng_errorf(err, "out of memory turning the image upright");
        return -1;
    }
    int w = img.width, h = img.height;
    if (max_side > 0 && (w > max_side || h > max_side)) {   // shrink only, keeping the aspect ratio
        double f = (double)max_side / (w > h ? w : h);
        if (w >= h) h = (int)lround(h * f), w = max_side;
        else w = (int)lround(w * f), h = max_side;
        if (h < 1) h = 1;
        if (w < 1) w = 1;
    }
    float *x = malloc((size_t)3 * w * h * sizeof(float));
    // 0..255 pixels: scale to [0,1] with std 1/255; transparency composited onto white
    eng_image_prep p = {.channels = 3, .height = h, .width = w, .std = {1 / 255.0f, 1 / 255.0f, 1 / 255.0f},
                        .background = 255};
    if (!x || eng_image_to_tensor(x, &img, &p) != 0) {
        free(x);
        eng_image_free(&img);
        eng_errorf(err, "out of memory for a %dx%d image", w, h);
        return -1;
    }
    eng_image_free(&img);
    *planes = x, *H = h, *W = w;
    return ENG_IMG_OK;
}

int eng_stylize_encode_png(const float *planes, int H, int W, uint8_t **png, size_t *len, char **err) {
    size_t n = (size_t)H * W;
    uint8_t *px = malloc(3 * n);
    if (!px) return eng_errorf(err, "out of memory");
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float f = planes[c * n + i];
            px[3 * i + c] = (uint8_t)(f <= 0 ? 0 : f >= 255 ? 255 : lroundf(f));
        }
    int rc = eng_png_encode(png, len, px, W, H, 3, err);
    free(px);
    return rc;
}
