// api_images.c — POST /v1/images/generations for image-generation models
// (engine/arch/dcgan.h): the HTTP side draws the request's latents from its
// seed (eng_dcgan_latents), so the same seed gives the same images whatever
// else runs; the worker side runs the generator over a batch of requests
// (image by image inside: batch-invariant) and answers each request with its
// images as base64 PNGs, or one grid PNG with `Accept: image/png`.
//   {"model":"fashion-dcgan","n":4,"seed":7,"label":"Sneaker"}
//   -> {"created":…,"model":…,"seed":7,"data":[{"b64_png":"…","label":"Sneaker"},…]}
// A conditional model without "label" draws image i with label i % L.
#include <stdlib.h>              // malloc, free
#include <string.h>              // strcmp, strstr
#include <sys/random.h>          // getrandom (a seed when none is given)
#include <time.h>                // time
#include "engine/arch/dcgan.h"   // eng_dcgan_latents
#include "engine/io/grid.h"      // eng_grid_pixels
#include "engine/io/image.h"     // eng_png_encode
#include "server/api.h"          // declarations
#include "server/base64.h"       // srv_base64_encode

#define MAX_IMAGES 64

static void gen_images_req_free(void *p) {
    srv_gen_images_req *g = p;
    if (!g) return;
    free(g->z);
    free(g->labels);
    free(g);
}

// Parses the body into r->task. 0 = ready to queue, -1 = r answered.
static int parse(srv_request *r, const json_t *j) {
    const json_t *jm = json_object_get(j, "model");
    if (jm && !json_is_string(jm)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must be a string");
        return -1;
    }
    srv_model *m = srv_api_model(r, json_string_value(jm), -1);
    if (!m) return -1;
    const eng_model *em = m->m;
    if (em->task != ENG_TASK_IMAGE_GENERATION || !em->arch->generate_images) {
        srv_request_fail(r, SRV_E_WRONG_TASK, "model", "model '%s' is a %s model; /v1/images/generations serves image-generation models",
                         m->id, eng_task_name(em->task));
        return -1;
    }
    int max_n = m->max_batch_size < MAX_IMAGES ? m->max_batch_size : MAX_IMAGES;
    const json_t *jn = json_object_get(j, "n");
    long n = 1;
    if (jn && !json_is_null(jn)) {
        if (!json_is_integer(jn) || json_integer_value(jn) < 1 || json_integer_value(jn) > max_n) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "n", "n must be an integer in [1, %d]", max_n);
            return -1;
        }
        n = (long)json_integer_value(jn);
    }
    const json_t *js = json_object_get(j, "seed");
    uint64_t seed;
    if (js && !json_is_null(js)) {
        if (!json_is_integer(js) || json_integer_value(js) < 0) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "seed", "seed must be a non-negative integer");
            return -1;
        }
        seed = (uint64_t)json_integer_value(js);
    } else if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        seed = (uint64_t)time(NULL);
    }
    seed &= 0x7fffffffffffffffULL;   // a JSON integer, so the client can repeat it
    const json_t *jl = json_object_get(j, "label");
    int label = -1;
    if (jl && !json_is_null(jl)) {
        if (em->n_labels == 0) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "label", "model '%s' is unconditional: it takes no label", m->id);
            return -1;
        }
        if (!json_is_string(jl)) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "label", "label must be a string (one of the model's labels)");
            return -1;
        }
        for (int k = 0; k < em->n_labels; k++)
            if (strcmp(em->labels[k], json_string_value(jl)) == 0) label = k;
        if (label < 0) {
            char list[1024];
            size_t off = 0;
            list[0] = 0;
            for (int k = 0; k < em->n_labels && off < sizeof list - 1; k++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s\"%s\"", k ? ", " : "", em->labels[k]);
            srv_request_fail(r, SRV_E_BAD_VALUE, "label", "unknown label \"%.64s\" for model '%s'; its labels are %s",
                             json_string_value(jl), m->id, list);
            return -1;
        }
    }
    srv_gen_images_req *g = calloc(1, sizeof *g);
    if (g) {
        g->z = malloc((size_t)n * em->n_latent * sizeof(float));
        g->labels = malloc((size_t)n * sizeof(int));
    }
    if (!g || !g->z || !g->labels) {
        gen_images_req_free(g);
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory; retry later");
        return -1;
    }
    g->n = (int)n;
    g->seed = seed;
    g->label = label;
    const char *accept = srv_http_header(r, "Accept");
    g->grid = accept && strstr(accept, "image/png") != NULL;
    eng_dcgan_latents(seed, g->n, em->n_latent, g->z);
    for (int i = 0; i < g->n; i++) g->labels[i] = em->n_labels ? (label >= 0 ? label : i % em->n_labels) : 0;
    r->task = g;
    r->task_free = gen_images_req_free;
    r->n_items = g->n;
    return 0;
}

int srv_api_images_generations(srv_request *r, const char *arg) {
    json_t *j = srv_api_parse_json(r);
    if (!j) return SRV_HANDLER_DONE;
    int rc = parse(r, j);
    json_decref(j);
    if (rc != 0) return SRV_HANDLER_DONE;
    r->deadline = r->t_start + r->model->timeout_ms / 1000.0;
    return srv_api_submit(r);
}

// ---------------------------------------------------------------- worker side
// PNG of n images y[n, C, H, W] laid out `cols` wide. 0, or -1 (out of memory / libpng).
static int encode(uint8_t **png, size_t *len, const float *y, int n, int cols, int C, int H, int W) {
    int rows = (n + cols - 1) / cols;
    uint8_t *px = malloc((size_t)rows * H * cols * W * C);
    if (!px) return -1;
    eng_grid_pixels(px, y, n, cols, C, H, W);
    char *err = NULL;
    int rc = eng_png_encode(png, len, px, cols * W, rows * H, C, &err);
    free(err);
    free(px);
    return rc;
}

static void respond(srv_request *r, const eng_model *em, const float *y) {
    const srv_gen_images_req *g = r->task;
    int C = em->out_channels, H = em->out_height, W = em->out_width;
    uint8_t *png = NULL;
    size_t len = 0;
    if (g->grid) {
        if (encode(&png, &len, y, g->n, eng_grid_cols(g->n), C, H, W) != 0) goto oom;
        free(r->resp_body);
        r->status = 200;
        r->resp_body = (char *)png;
        r->resp_len = len;
        r->resp_type = "image/png";
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < g->n; i++) {
        if (encode(&png, &len, y + (size_t)i * C * H * W, 1, 1, C, H, W) != 0) { json_decref(data); goto oom; }
        char *b64 = srv_base64_encode(png, len);
        free(png);
        if (!b64) { json_decref(data); goto oom; }
        json_t *item = json_pack("{s:s}", "b64_png", b64);
        if (em->n_labels) json_object_set_new(item, "label", json_string(em->labels[g->labels[i]]));
        json_array_append_new(data, item);
        free(b64);
    }
    json_t *o = json_pack("{s:I,s:s,s:I,s:o}", "created", (json_int_t)time(NULL), "model", r->model->id,
                          "seed", (json_int_t)g->seed, "data", data);
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT));
    json_decref(o);
    return;
oom:
    srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory while encoding images; retry later");
}

void srv_run_generate_images(srv_worker *w, srv_model *m, srv_request **reqs, int n) {
    eng_model *em = m->m;
    size_t img = (size_t)em->out_channels * em->out_height * em->out_width;
    int items = 0;
    for (int i = 0; i < n; i++) items += reqs[i]->n_items;
    float *z = srv_worker_buf(w, (size_t)items * em->n_latent);
    float *y = srv_worker_out(w, (size_t)items * img);
    int *labels = malloc((size_t)items * sizeof(int));
    if (!z || !y || !labels) {
        free(labels);
        for (int i = 0; i < n; i++) srv_request_fail(reqs[i], SRV_E_UNAVAILABLE, NULL, "out of memory for the batch; retry later");
        return;
    }
    int off = 0;
    for (int i = 0; i < n; i++) {
        const srv_gen_images_req *g = reqs[i]->task;
        memcpy(z + (size_t)off * em->n_latent, g->z, (size_t)g->n * em->n_latent * sizeof(float));
        memcpy(labels + off, g->labels, (size_t)g->n * sizeof(int));
        off += g->n;
    }
    em->arch->generate_images(em, &w->tape, z, em->n_labels ? labels : NULL, items, y);
    off = 0;
    for (int i = 0; i < n; i++) {
        respond(reqs[i], em, y + (size_t)off * img);
        off += reqs[i]->n_items;
    }
    free(labels);
}
