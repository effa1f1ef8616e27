// fuzz_classify.c — the JSON body of POST /v1/classifications.
//
// Each input is a request body, parsed as the handler does (srv_api_parse_json)
// and handed to srv_api_classify_parse: model lookup (fashion-cnn is loaded),
// top_k, then every base64 image decoded (engine/io/image.c) and preprocessed
// into the model's input. A body it accepts must give n_items finite inputs
// (the worker copies them blindly into the batch); a refused one must leave
// an error answer. Raw image bytes are fuzz_image.c's job.
#include <math.h>              // isfinite
#include <jansson.h>           // json_t
#include "engine/arch/model.h"      // eng_model_input_size
#include "fuzz/fuzz.h"         // fuzz_request, FUZZ_CHECK
#include "server/api.h"        // srv_api_parse_json, srv_api_classify_parse
#include "server/registry.h"   // srv_model

int fuzz_classify_init(void) { return fuzz_registry() ? 0 : -1; }

void fuzz_classify_one(const uint8_t *data, size_t size) {
    srv_request *r = fuzz_request(data, size);
    if (!r) return;
    json_t *j = srv_api_parse_json(r);
    int rc = j ? srv_api_classify_parse(r, j) : -1;
    json_decref(j);
    if (rc == 0) {
        const srv_classify_req *c = r->task;
        FUZZ_CHECK(r->model && c && c->input && r->n_items >= 1 && r->n_items <= r->model->max_batch_size);
        FUZZ_CHECK(c->top_k >= 1 && c->top_k <= r->model->m->n_labels);
        size_t n = (size_t)r->n_items * eng_model_input_size(r->model->m);
        for (size_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(c->input[i]));
    } else {
        FUZZ_CHECK(r->status >= 400 && r->resp_body);
    }
    srv_request_unref(r);
}

FUZZ_ENTRY(classify)
