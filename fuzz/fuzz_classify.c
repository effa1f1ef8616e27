// fuzz_classify.c — the JSON body of POST /v1/classifications.
//
// Each input is a request body, parsed as the handler does (srv_api_parse_json)
// and handed to srv_api_classify_parse: model lookup (fashion-cnn and langid
// are loaded), top_k, then every base64 image decoded (engine/io/image.c) and
// preprocessed into the model's input, or every text of "input" turned into
// the text model's ids. A body it accepts must give n_items finite inputs, or
// n_items texts of 1..max_text_ids ids in the model's range (the worker hands
// them blindly to the forward pass); a refused one must leave an error
// answer. Raw image bytes are fuzz_image.c's job.
#include <limits.h>            // INT_MAX
#include <math.h>              // isfinite
#include <string.h>            // strcmp
#include <jansson.h>           // json_t
#include "engine/arch/fasttext.h"   // eng_fasttext (the ids' range)
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
        const eng_model *m = r->model ? r->model->m : NULL;
        FUZZ_CHECK(m && c && r->n_items >= 1 && r->n_items <= r->model->max_batch_size);
        FUZZ_CHECK(c->top_k >= 1 && c->top_k <= m->n_labels);
        if (m->task == ENG_TASK_TEXT_CLASSIFICATION) {
            FUZZ_CHECK(c->ids && c->n_ids && c->n_texts == r->n_items);
            int rows = strcmp(m->arch->name, "fasttext") == 0 ? ((const eng_fasttext *)m->impl)->buckets : INT_MAX;
            for (int i = 0; i < r->n_items; i++) {
                FUZZ_CHECK(c->n_ids[i] >= 1 && (m->max_text_ids == 0 || c->n_ids[i] <= m->max_text_ids));
                for (int k = 0; k < c->n_ids[i]; k++) FUZZ_CHECK(c->ids[i][k] >= 0 && c->ids[i][k] < rows);
            }
        } else {
            FUZZ_CHECK(c->input);
            size_t n = (size_t)r->n_items * eng_model_input_size(m);
            for (size_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(c->input[i]));
        }
    } else {
        FUZZ_CHECK(r->status >= 400 && r->resp_body);
    }
    srv_request_unref(r);
}

FUZZ_ENTRY(classify)
