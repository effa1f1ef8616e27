// api_stylize.c — POST /v1/stylizations: the HTTP side (decode PNG/JPEG,
// turn it upright per its EXIF orientation, optionally shrink it to
// max_side, check what the network will cost, queue) and the worker side
// (images of one size share one forward pass; PNG out).
//   {"model":"mosaic","image":"<base64 PNG/JPEG>","max_side":1024}
//   or body = the image bytes (Content-Type image/png|image/jpeg), ?model=&max_side=
//   Accept: image/png -> the PNG itself; else {"model":…,"data":[{"b64_png":…,"width":…,"height":…}]}
// The RGB channels are stylized as they are (not composited); an alpha
// channel is carried through to the output unchanged (resized with the image).
#include <math.h>             // lround, sqrt
#include <stdlib.h>           // strtol
#include <string.h>           // strcmp, strstr
#include "engine/io/exif.h"      // eng_jpeg_orientation, eng_image_orient
#include "engine/io/image.h"     // eng_image_decode, eng_png_encode
#include "server/api.h"       // declarations
#include "server/base64.h"    // srv_base64_decode / encode

#define MAX_SIDE_LIMIT 65535
// Bytes per pixel a request holds besides the network's scratch: its input
// (3 floats), alpha (1), the worker's batch input and output copies (3 + 3
// floats), the RGBA pixels to encode (4) and the PNG (about 4 at worst).
#define REQ_BYTES_PER_PIXEL (12 + 1 + 12 + 12 + 4 + 4)

typedef struct {
    int w, h;          // the size the network runs at
    float *x;          // [3][h][w] pixels 0..255
    uint8_t *alpha;    // [h][w], or NULL when the image is opaque
    int want_png;      // Accept: image/png
} stylize_req;

static void stylize_req_free(void *p) {
    stylize_req *s = p;
    if (!s) return;
    free(s->x);
    free(s->alpha);
    free(s);
}

// What one h x w request costs in memory, network scratch included.
static double request_bytes(const eng_model *m, int h, int w) {
    return (double)m->arch->image_to_image_bytes(m, h, w) + (double)h * w * REQ_BYTES_PER_PIXEL;
}

// max_side from JSON or the query: 0 = absent, -1 after answering r.
static int parse_max_side(srv_request *r, const json_t *jv, const char *sv) {
    long v = 0;
    if (jv && !json_is_null(jv)) {
        if (!json_is_integer(jv) || json_integer_value(jv) < 1 || json_integer_value(jv) > MAX_SIDE_LIMIT) goto bad;
        v = (long)json_integer_value(jv);
    } else if (sv) {
        char *end;
        v = strtol(sv, &end, 10);
        if (!*sv || *end || v < 1 || v > MAX_SIDE_LIMIT) goto bad;
    }
    return (int)v;
bad:
    srv_request_fail(r, SRV_E_BAD_VALUE, "max_side", "max_side must be an integer in [1, %d]", MAX_SIDE_LIMIT);
    return -1;
}

// Fills s->x (and s->alpha) at s->w x s->h from the decoded image; the
// pixels of img may be overwritten. 0, or -1 when out of memory.
static int image_to_planes(stylize_req *s, eng_image *img) {
    const size_t n = (size_t)s->w * (size_t)s->h, src_n = (size_t)img->width * (size_t)img->height;
    int has_alpha = 0;
    for (size_t i = 0; i < src_n && !has_alpha; i++) has_alpha = img->rgba[4 * i + 3] != 255;
    if (!(s->x = malloc(3 * n * sizeof(float)))) return -1;
    if (has_alpha && !(s->alpha = malloc(n))) return -1;
    if (s->w == img->width && s->h == img->height) {   // exact: no resampling
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < 3; c++) s->x[c * n + i] = img->rgba[4 * i + c];
            if (has_alpha) s->alpha[i] = img->rgba[4 * i + 3];
        }
        return 0;
    }
    // shrinking: io/image.c's area averaging, scaled to 0..255; alpha as a
    // gray image of its own so it is resampled the same way
    uint8_t *a = has_alpha ? malloc(src_n) : NULL;
    if (has_alpha && !a) return -1;
    for (size_t i = 0; i < src_n; i++) {
        if (a) a[i] = img->rgba[4 * i + 3];
        img->rgba[4 * i + 3] = 255;
    }
    eng_image_prep p = {.channels = 3, .height = s->h, .width = s->w, .std = {1 / 255.0f, 1 / 255.0f, 1 / 255.0f}};
    int rc = eng_image_to_tensor(s->x, img, &p);
    if (rc == 0 && a) {
        for (size_t i = 0; i < src_n; i++) img->rgba[4 * i] = img->rgba[4 * i + 1] = img->rgba[4 * i + 2] = a[i];
        float *af = malloc(n * sizeof(float));
        eng_image_prep pa = {.channels = 1, .height = s->h, .width = s->w, .std = {1 / 255.0f}};
        rc = af ? eng_image_to_tensor(af, img, &pa) : -1;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            long v = lround(af[i]);
            s->alpha[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        free(af);
    }
    free(a);
    return rc;
}

// Decodes the image bytes into r->task (a stylize_req) at the size the
// network will run at. 0 = ready to queue, or -1 after answering r.
static int add_image(srv_request *r, const void *bytes, size_t len, int max_side) {
    const srv_config *c = srv_http_config();
    const eng_model *m = r->model->m;
    size_t max_px = (size_t)c->max_image_bytes / ENG_IMG_BYTES_PER_PIXEL;
    if (max_px > (size_t)c->max_image_pixels) max_px = (size_t)c->max_image_pixels;
    eng_image img;
    char *err = NULL;
    int rc = eng_image_decode(&img, bytes, len, max_px, &err);
    if (rc != ENG_IMG_OK) {
        if (rc == ENG_IMG_ETOOLARGE)
            srv_request_fail(r, SRV_E_TOO_LARGE, "image", "image: %s (max_image_pixels, and max_image_bytes at %d bytes "
                             "per pixel, allow %zu pixels)", err ? err : "image too large", ENG_IMG_BYTES_PER_PIXEL, max_px);
        else
            srv_request_fail(r, rc == ENG_IMG_EFORMAT ? SRV_E_MEDIA_TYPE : SRV_E_BAD_IMAGE, "image", "image: %s",
                             err ? err : "cannot decode image");
        free(err);
        return -1;
    }
    // JPEG cameras store pixels as the sensor saw them and say how to turn them
    if (eng_image_orient(&img, eng_jpeg_orientation(bytes, len)) != 0) {
        eng_image_free(&img);
        srv_request_fail(r, SRV_E_UNAVAILABLE, "image", "out of memory turning the image upright; retry later");
        return -1;
    }
    int w = img.width, h = img.height;
    if (max_side > 0 && (w > max_side || h > max_side)) {   // shrink only, keeping the aspect ratio
        double f = (double)max_side / (w > h ? w : h);
        if (w >= h) h = (int)lround(h * f), w = max_side;
        else w = (int)lround(w * f), h = max_side;
    }
    int min = m->arch->image_min_side;
    if (w < min || h < min) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "image", "image is %dx%d%s; model '%s' needs at least %d pixels on each side",
                         w, h, w != img.width || h != img.height ? " after max_side" : "", r->model->id, min);
        eng_image_free(&img);
        return -1;
    }
    double need = request_bytes(m, h, w);
    if (need > (double)c->max_image_bytes) {
        // the largest side that fits at this aspect ratio, for the message
        double per_px = need / ((double)w * h), long_over_short = (double)(w > h ? w : h) / (w > h ? h : w);
        long side = (long)sqrt((double)c->max_image_bytes / per_px * long_over_short);
        srv_request_fail(r, SRV_E_TOO_LARGE, "image",
                         "stylizing a %dx%d image takes about %.0f MiB, over max_image_bytes (%.0f MiB): send "
                         "max_side (about %ld fits) or raise max_image_bytes", w, h, need / 1048576.0,
                         (double)c->max_image_bytes / 1048576.0, side);
        eng_image_free(&img);
        return -1;
    }
    stylize_req *s = calloc(1, sizeof *s);
    if (s) {
        r->task = s;
        r->task_free = stylize_req_free;
        s->w = w, s->h = h;
        const char *accept = srv_http_header(r, "Accept");
        s->want_png = accept && strstr(accept, "image/png") != NULL;
    }
    rc = s ? image_to_planes(s, &img) : -1;
    eng_image_free(&img);
    if (rc != 0) {
        srv_request_fail(r, SRV_E_UNAVAILABLE, "image", "out of memory for a %dx%d image; retry later", w, h);
        return -1;
    }
    r->n_items = 1;
    return 0;
}

static int is_raw_image_type(const char *ct) {
    return ct && (strncasecmp(ct, "image/", 6) == 0 || strncasecmp(ct, "application/octet-stream", 24) == 0);
}

int srv_api_stylize(srv_request *r, const char *arg) {
    const char *ct = srv_http_header(r, "Content-Type");
    if (is_raw_image_type(ct)) {
        if (!srv_api_model(r, srv_http_query(r, "model"), ENG_TASK_IMAGE_STYLIZATION)) return SRV_HANDLER_DONE;
        int max_side = parse_max_side(r, NULL, srv_http_query(r, "max_side"));
        if (max_side < 0) return SRV_HANDLER_DONE;
        if (r->body_len == 0) {
            srv_request_fail(r, SRV_E_MISSING, "image", "request body is empty; send the image bytes");
            return SRV_HANDLER_DONE;
        }
        if (add_image(r, r->body, r->body_len, max_side) != 0) return SRV_HANDLER_DONE;
    } else {
        json_t *j = srv_api_parse_json(r);
        if (!j) return SRV_HANDLER_DONE;
        const json_t *jm = json_object_get(j, "model"), *img = json_object_get(j, "image");
        int ok = 0, max_side = -1;
        if (jm && !json_is_string(jm))
            srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must be a string");
        else if (!srv_api_model(r, json_string_value(jm), ENG_TASK_IMAGE_STYLIZATION))
            ;
        else if (!img)
            srv_request_fail(r, SRV_E_MISSING, "image", "\"image\" (base64 PNG or JPEG) is required");
        else if (!json_is_string(img))
            srv_request_fail(r, SRV_E_BAD_VALUE, "image", "image must be a base64 string (one image per request)");
        else if ((max_side = parse_max_side(r, json_object_get(j, "max_side"), NULL)) >= 0) {
            size_t len;
            uint8_t *bytes = srv_base64_decode(json_string_value(img), json_string_length(img), &len);
            if (!bytes) srv_request_fail(r, SRV_E_BAD_VALUE, "image", "image is not a valid base64 string");
            else ok = add_image(r, bytes, len, max_side) == 0;
            free(bytes);
        }
        json_decref(j);
        if (!ok) return SRV_HANDLER_DONE;
    }
    r->deadline = r->t_start + r->model->timeout_ms / 1000.0;
    return srv_api_submit(r);
}

// ---------------------------------------------------------------- worker side
// The PNG of one output y[3][h][w] (clamped to 0..255, rounded), with the
// request's alpha; answered as PNG bytes or JSON.
static void respond(srv_request *r, const float *y) {
    const stylize_req *s = r->task;
    const size_t n = (size_t)s->w * (size_t)s->h;
    const int ch = s->alpha ? 4 : 3;
    uint8_t *px = malloc(n * (size_t)ch), *png = NULL;
    size_t png_len = 0;
    char *err = NULL;
    if (!px) {
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory encoding the result; retry later");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) {
            float v = y[c * n + i];
            px[i * ch + c] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)(v + 0.5f));
        }
        if (s->alpha) px[i * ch + 3] = s->alpha[i];
    }
    int rc = eng_png_encode(&png, &png_len, px, s->w, s->h, ch, &err);
    free(px);
    if (rc != 0) {
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "cannot encode the result: %s", err ? err : "out of memory");
        free(err);
        return;
    }
    if (s->want_png) {
        r->status = 200;
        free(r->resp_body);
        r->resp_body = (char *)png;
        r->resp_len = png_len;
        r->resp_type = "image/png";
        return;
    }
    char *b64 = srv_base64_encode(png, png_len);
    free(png);
    json_t *o = b64 ? json_pack("{s:s,s:s,s:[{s:s,s:i,s:i}]}", "object", "list", "model", r->model->id, "data",
                                "b64_png", b64, "width", s->w, "height", s->h)
                    : NULL;
    free(b64);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory encoding the result; retry later");
    else srv_request_json(r, 200, text);
}

// Requests of the same size run as one batch (one image_to_image call);
// each size group of the scheduler's batch in turn.
void srv_run_stylize(srv_worker *w, srv_model *m, srv_request **reqs, int n) {
    eng_model *em = m->m;
    char done[n];
    memset(done, 0, sizeof done);
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        const stylize_req *s = reqs[i]->task;
        int group[n], g = 0;
        for (int j = i; j < n; j++) {
            const stylize_req *t = reqs[j]->task;
            if (!done[j] && t->w == s->w && t->h == s->h) group[g++] = j, done[j] = 1;
        }
        const size_t per = (size_t)3 * (size_t)s->w * (size_t)s->h;
        float *x = srv_worker_buf(w, (size_t)g * per), *y = srv_worker_out(w, (size_t)g * per);
        if (!x || !y) {
            for (int k = 0; k < g; k++)
                srv_request_fail(reqs[group[k]], SRV_E_UNAVAILABLE, NULL, "out of memory for the batch; retry later");
            continue;
        }
        for (int k = 0; k < g; k++) memcpy(x + (size_t)k * per, ((const stylize_req *)reqs[group[k]]->task)->x, per * sizeof(float));
        em->arch->image_to_image(em, &w->tape, x, g, s->h, s->w, y);
        for (int k = 0; k < g; k++) respond(reqs[group[k]], y + (size_t)k * per);
    }
}
