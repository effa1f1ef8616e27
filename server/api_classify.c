// api_classify.c — POST /v1/classifications for image and text models: the
// HTTP side (parse; decode and preprocess images, or turn texts into the
// model's ids; queue) and the worker side (one forward pass per batch, top-k
// per item).
//   images: {"model":"fashion-cnn","image":"<base64>" | ["<base64>",...],"top_k":3}
//           or body = PNG/JPEG bytes, Content-Type image/png|image/jpeg, ?model=&top_k=
//   texts:  {"model":"langid","input":"Guten Morgen" | ["…",…],"top_k":3}
// Texts are ids (eng_model_text_ids) before they are queued, so a worker
// only runs arch->classify_text over the batch.
#include <stdlib.h>           // strtol
#include <string.h>           // strcmp
#include "engine/io/image.h"     // eng_image_decode
#include "engine/core/util.h"      // eng_now
#include "engine/text/tokenizer.h" // ENG_TOK_E_TOO_LONG, ENG_TOK_E_NOMEM (eng_model_text_ids)
#include "server/api.h"       // declarations
#include "server/base64.h"    // srv_base64_decode

#define DEFAULT_TOP_K 5

// The pixel limit of one image: max_image_pixels, and what max_image_bytes
// leaves for decoding and resizing once the request's inputs are counted.
static size_t pixel_limit(const srv_request *r) {
    const srv_config *c = srv_http_config();
    size_t inputs = (size_t)r->n_items * eng_model_input_size(r->model->m) * sizeof(float);
    size_t budget = (size_t)c->max_image_bytes > inputs ? (size_t)c->max_image_bytes - inputs : 0;
    size_t px = budget / ENG_IMG_BYTES_PER_PIXEL;
    return px < (size_t)c->max_image_pixels ? px : (size_t)c->max_image_pixels;
}

// Decodes one image and writes its preprocessed input; on failure answers r
// with the right status and returns -1. `what` names the field for errors.
static int add_image(srv_request *r, const void *bytes, size_t len, int index, const char *what) {
    eng_image img;
    char *err = NULL;
    size_t max_px = pixel_limit(r);
    int rc = eng_image_decode(&img, bytes, len, max_px, &err);
    if (rc != ENG_IMG_OK) {
        srv_err e = rc == ENG_IMG_EFORMAT ? SRV_E_MEDIA_TYPE : rc == ENG_IMG_ETOOLARGE ? SRV_E_TOO_LARGE : SRV_E_BAD_IMAGE;
        if (rc == ENG_IMG_ETOOLARGE)
            srv_request_fail(r, e, what, "%s: %s (max_image_pixels, and max_image_bytes at %d bytes per pixel, "
                             "allow %zu pixels in this request)", what, err ? err : "image too large", ENG_IMG_BYTES_PER_PIXEL, max_px);
        else
            srv_request_fail(r, e, what, "%s: %s", what, err ? err : "cannot decode image");
        free(err);
        return -1;
    }
    size_t n = eng_model_input_size(r->model->m);
    rc = eng_model_image_input(r->model->m, &img, ((srv_classify_req *)r->task)->input + (size_t)index * n);
    eng_image_free(&img);
    if (rc != 0) {
        srv_request_fail(r, SRV_E_UNAVAILABLE, what, "%s: out of memory while resizing; retry later", what);
        return -1;
    }
    return 0;
}

static void classify_req_free(void *p) {
    srv_classify_req *c = p;
    if (!c) return;
    free(c->input);
    for (int i = 0; c->ids && i < c->n_texts; i++) free(c->ids[i]);
    free(c->ids);
    free(c->n_ids);
    free(c);
}

// Gives r its classification state (r->task): room for r->n_items inputs
// within max_image_bytes, and top_k; answers 413 (too many or too large
// inputs) or 503 (out of memory) and returns -1.
static int alloc_inputs(srv_request *r, int top_k) {
    size_t one = eng_model_input_size(r->model->m) * sizeof(float);
    long long limit = srv_http_config()->max_image_bytes;
    if ((double)r->n_items * (double)one > (double)limit) {
        srv_request_fail(r, SRV_E_TOO_LARGE, "image", "%d inputs of %zu bytes for model '%s' exceed max_image_bytes (%lld)",
                         r->n_items, one, r->model->id, limit);
        return -1;
    }
    srv_classify_req *c = calloc(1, sizeof *c);
    float *input = malloc((size_t)r->n_items * one);
    if (!c || !input) {
        free(c); free(input);
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory for %d inputs; retry later", r->n_items);
        return -1;
    }
    c->input = input;
    c->top_k = top_k;
    r->task = c;
    r->task_free = classify_req_free;
    return 0;
}

// Parses a strictly positive integer query/JSON value for top_k.
static int parse_top_k(srv_request *r, const json_t *jv, const char *sv, int n_labels) {
    long k = DEFAULT_TOP_K < n_labels ? DEFAULT_TOP_K : n_labels;
    if (jv && !json_is_null(jv)) {
        if (!json_is_integer(jv) || json_integer_value(jv) < 1 || json_integer_value(jv) > n_labels) goto bad;
        k = (long)json_integer_value(jv);
    } else if (sv) {
        char *end;
        k = strtol(sv, &end, 10);
        if (!*sv || *end || k < 1 || k > n_labels) goto bad;
    }
    return (int)k;
bad:
    srv_request_fail(r, SRV_E_BAD_VALUE, "top_k", "top_k must be an integer in [1, %d]", n_labels);
    return -1;
}

static int is_raw_image_type(const char *ct) {
    return ct && (strncasecmp(ct, "image/", 6) == 0 || strncasecmp(ct, "application/octet-stream", 24) == 0);
}

// The ids of every text of "input" into r->task. 0, or -1 after answering r.
static int add_texts(srv_request *r, const json_t *in, int top_k) {
    const eng_model *em = r->model->m;
    srv_classify_req *c = calloc(1, sizeof *c);
    int n = json_is_array(in) ? (int)json_array_size(in) : 1;
    if (c) { c->ids = calloc((size_t)n, sizeof *c->ids); c->n_ids = calloc((size_t)n, sizeof *c->n_ids); }
    if (!c || !c->ids || !c->n_ids) {
        classify_req_free(c);
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory for %d texts; retry later", n);
        return -1;
    }
    c->top_k = top_k;
    r->task = c;
    r->task_free = classify_req_free;
    r->n_items = n;
    for (int i = 0; i < n; i++) {
        const json_t *s = json_is_array(in) ? json_array_get(in, (size_t)i) : in;
        char what[32];
        snprintf(what, sizeof what, json_is_array(in) ? "input[%d]" : "input", i);
        if (!json_is_string(s)) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s must be a string", what);
            return -1;
        }
        if (json_string_length(s) == 0) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s is an empty string", what);
            return -1;
        }
        char *err = NULL;
        int rc = eng_model_text_ids(em, json_string_value(s), json_string_length(s), &c->ids[i], &c->n_ids[i], &err);
        c->n_texts = i + 1;
        if (rc == ENG_TOK_E_NOMEM)   // not the client's fault: retry later
            srv_request_fail(r, SRV_E_UNAVAILABLE, "input", "%s: out of memory; retry later", what);
        else if (rc == ENG_TOK_E_TOO_LONG)
            srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s is too long for model '%s' (%s)", what, r->model->id,
                             err ? err : "over its max_text_ids");
        else if (rc != 0)
            srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s: %s", what, err ? err : "the model cannot take this text");
        free(err);
        if (rc != 0) return -1;
    }
    return 0;
}

// The JSON body for a text model: "input" (a string or a non-empty array of
// them, at most max_batch_size), top_k. 0 or -1 after answering r.
static int parse_text(srv_request *r, const json_t *j, srv_model *m) {
    const json_t *in = json_object_get(j, "input");
    if (!m->m->arch->classify_text) {
        srv_request_fail(r, SRV_E_NOT_IMPLEMENTED, "model", "model '%s' (arch %s) cannot classify text in this build",
                         m->id, m->m->arch->name);
        return -1;
    }
    if (!in) {
        srv_request_fail(r, SRV_E_MISSING, "input", json_object_get(j, "image")
                         ? "model '%s' classifies text: send \"input\" (a string or an array of strings), not \"image\""
                         : "\"input\" (a string or an array of strings) is required for model '%s'", m->id);
        return -1;
    }
    if (!json_is_string(in) && !json_is_array(in)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "input must be a string or an array of strings");
        return -1;
    }
    if (json_is_array(in) && json_array_size(in) == 0) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "input is an empty array; send at least one string");
        return -1;
    }
    if (json_is_array(in) && (int)json_array_size(in) > m->max_batch_size) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "at most %d texts per request for model '%s'", m->max_batch_size, m->id);
        return -1;
    }
    int top_k = parse_top_k(r, json_object_get(j, "top_k"), NULL, m->m->n_labels);
    if (top_k < 0) return -1;
    return add_texts(r, in, top_k);
}

// The JSON form: looks the model up; for an image model decodes and
// preprocesses every image, for a text model turns every text into ids,
// into the request's srv_classify_req. Returns 0 (ready to queue) or -1 after answering r.
int srv_api_classify_parse(srv_request *r, const json_t *j) {
    const json_t *jm = json_object_get(j, "model");
    if (jm && !json_is_string(jm)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must be a string");
        return -1;
    }
    srv_model *m = srv_api_model(r, json_string_value(jm), -1);
    if (!m) return -1;
    if (m->m->task == ENG_TASK_TEXT_CLASSIFICATION) return parse_text(r, j, m);
    if (m->m->task != ENG_TASK_IMAGE_CLASSIFICATION) {
        srv_request_fail(r, SRV_E_WRONG_TASK, "model",
                         "model '%s' is a %s model; /v1/classifications serves image- and text-classification models",
                         m->id, eng_task_name(m->m->task));
        return -1;
    }
    const json_t *img = json_object_get(j, "image");
    int ok = 0, top_k;
    if (!img) {
        srv_request_fail(r, SRV_E_MISSING, "image", json_object_get(j, "input")
                         ? "model '%s' classifies images: send \"image\" (base64 PNG or JPEG), not \"input\""
                         : "\"image\" (base64 PNG or JPEG, or an array of them) is required for model '%s'", m->id);
    } else if (!json_is_string(img) && !(json_is_array(img) && json_array_size(img) > 0)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "image", "image must be a base64 string or a non-empty array of them");
    } else if (json_is_array(img) && (int)json_array_size(img) > m->max_batch_size) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "image", "at most %d images per request for model '%s'", m->max_batch_size, m->id);
    } else if ((top_k = parse_top_k(r, json_object_get(j, "top_k"), NULL, m->m->n_labels)) > 0) {
        r->n_items = json_is_array(img) ? (int)json_array_size(img) : 1;
        ok = alloc_inputs(r, top_k) == 0;
        for (int i = 0; ok && i < r->n_items; i++) {
            const json_t *s = json_is_array(img) ? json_array_get(img, (size_t)i) : img;
            char what[32];
            snprintf(what, sizeof what, json_is_array(img) ? "image[%d]" : "image", i);
            size_t len;
            uint8_t *bytes = json_is_string(s) ? srv_base64_decode(json_string_value(s), json_string_length(s), &len) : NULL;
            if (!bytes) {
                srv_request_fail(r, SRV_E_BAD_VALUE, "image", "%s is not a valid base64 string", what);
                ok = 0;
            } else {
                ok = add_image(r, bytes, len, i, what) == 0;
                free(bytes);
            }
        }
    }
    return ok ? 0 : -1;
}

int srv_api_classify(srv_request *r, const char *arg) {
    const char *ct = srv_http_header(r, "Content-Type");
    if (is_raw_image_type(ct)) {
        srv_model *m = srv_api_model(r, srv_http_query(r, "model"), -1);
        if (!m) return SRV_HANDLER_DONE;
        if (m->m->task != ENG_TASK_IMAGE_CLASSIFICATION) {
            srv_request_fail(r, SRV_E_WRONG_TASK, "model", "model '%s' is a %s model; a raw image body needs an image-classification model",
                             m->id, eng_task_name(m->m->task));
            return SRV_HANDLER_DONE;
        }
        int top_k = parse_top_k(r, NULL, srv_http_query(r, "top_k"), m->m->n_labels);
        if (top_k < 0) return SRV_HANDLER_DONE;
        if (r->body_len == 0) {
            srv_request_fail(r, SRV_E_MISSING, "image", "request body is empty; send the image bytes");
            return SRV_HANDLER_DONE;
        }
        r->n_items = 1;
        if (alloc_inputs(r, top_k) != 0 || add_image(r, r->body, r->body_len, 0, "image") != 0) return SRV_HANDLER_DONE;
    } else {
        json_t *j = srv_api_parse_json(r);
        if (!j) return SRV_HANDLER_DONE;
        int rc = srv_api_classify_parse(r, j);
        json_decref(j);
        if (rc != 0) return SRV_HANDLER_DONE;
    }
    r->deadline = r->t_start + r->model->timeout_ms / 1000.0;
    return srv_api_submit(r);
}

// ---------------------------------------------------------------- worker side
// Builds {"model":…,"data":[{"index":i,"labels":[{"label":…,"score":…},…]},…]}.
static void respond(srv_request *r, const eng_model *em, const float *probs) {
    json_t *data = json_array();
    int n = em->n_labels, top_k = ((const srv_classify_req *)r->task)->top_k;
    for (int i = 0; i < r->n_items; i++) {
        const float *p = probs + (size_t)i * n;
        json_t *labels = json_array();
        int taken[64] = {0}, *used = n <= 64 ? taken : calloc((size_t)n, sizeof(int));
        if (!used) {
            json_decref(data);
            json_decref(labels);
            srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory; retry later");
            return;
        }
        for (int k = 0; k < top_k; k++) {   // selection: top_k is small
            int best = -1;
            for (int c = 0; c < n; c++)
                if (!used[c] && (best < 0 || p[c] > p[best])) best = c;
            used[best] = 1;
            json_array_append_new(labels, json_pack("{s:s,s:f}", "label", em->labels[best], "score", (double)p[best]));
        }
        if (used != taken) free(used);
        json_array_append_new(data, json_pack("{s:i,s:o}", "index", i, "labels", labels));
    }
    json_t *o = json_pack("{s:s,s:s,s:o}", "object", "list", "model", r->model->id, "data", data);
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)));
    json_decref(o);
}

// The texts of every request, ids already made on the HTTP threads, in one
// classify_text call; each request answered with its own rows, in order.
void srv_run_classify_text(srv_worker *w, srv_model *m, srv_request **reqs, int n) {
    eng_model *em = m->m;
    int items = 0;
    for (int i = 0; i < n; i++) items += reqs[i]->n_items;
    float *probs = srv_worker_out(w, (size_t)items * (size_t)em->n_labels);
    const int **ids = malloc((size_t)items * sizeof *ids);
    int *n_ids = malloc((size_t)items * sizeof *n_ids);
    if (!probs || !ids || !n_ids) {
        free(ids); free(n_ids);
        for (int i = 0; i < n; i++) srv_request_fail(reqs[i], SRV_E_UNAVAILABLE, NULL, "out of memory for the batch; retry later");
        return;
    }
    int off = 0;
    for (int i = 0; i < n; i++) {
        const srv_classify_req *c = reqs[i]->task;
        for (int k = 0; k < reqs[i]->n_items; k++, off++) {
            ids[off] = c->ids[k];
            n_ids[off] = c->n_ids[k];
        }
    }
    em->arch->classify_text(em, &w->tape, (const int *const *)ids, n_ids, items, probs);
    off = 0;
    for (int i = 0; i < n; i++) {
        respond(reqs[i], em, probs + (size_t)off * em->n_labels);
        off += reqs[i]->n_items;
    }
    free(ids);
    free(n_ids);
}

void srv_run_classify_images(srv_worker *w, srv_model *m, srv_request **reqs, int n) {
    eng_model *em = m->m;
    size_t in_size = eng_model_input_size(em);
    int items = 0;
    for (int i = 0; i < n; i++) items += reqs[i]->n_items;
    float *x = srv_worker_buf(w, (size_t)items * in_size);
    float *probs = srv_worker_out(w, (size_t)items * (size_t)em->n_labels);
    if (!x || !probs) {
        for (int i = 0; i < n; i++) srv_request_fail(reqs[i], SRV_E_UNAVAILABLE, NULL, "out of memory for the batch; retry later");
        return;
    }
    int off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)off * in_size, ((const srv_classify_req *)reqs[i]->task)->input, (size_t)reqs[i]->n_items * in_size * sizeof(float));
        off += reqs[i]->n_items;
    }
    em->arch->classify_images(em, &w->tape, x, items, probs);
    off = 0;
    for (int i = 0; i < n; i++) {
        respond(reqs[i], em, probs + (size_t)off * em->n_labels);
        off += reqs[i]->n_items;
    }
}
