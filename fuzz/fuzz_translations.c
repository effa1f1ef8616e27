// fuzz_translations.c — the JSON body of POST /v1/translations.
//
// Each input is a request body. It goes through what the handler runs before
// queueing: srv_api_parse_json, then srv_api_translations_parse (model
// lookup: marian-tiny, a random Marian directory with SentencePiece
// tokenizers, is loaded; search settings; every sentence tokenized). A body
// it accepts must give sentences of ids inside the source vocabulary within
// the model's length limit and settings inside their ranges; a body it
// refuses must leave an error answer. The request is freed after each input,
// so leaks show up.
#include <jansson.h>           // json_t
#include "fuzz/fuzz.h"         // fuzz_request, FUZZ_CHECK
#include "server/api.h"        // srv_api_parse_json, srv_api_translations_parse
#include "server/registry.h"   // srv_model

int fuzz_translations_init(void) { return fuzz_registry() ? 0 : -1; }

void fuzz_translations_one(const uint8_t *data, size_t size) {
    srv_request *r = fuzz_request(data, size);
    if (!r) return;
    json_t *j = srv_api_parse_json(r);
    int rc = j ? srv_api_translations_parse(r, j) : -1;
    if (rc == 0) {
        const srv_translate_req *q = r->task;
        eng_s2s_info info = r->model->m->arch->s2s->info(r->model->m->s2s);
        FUZZ_CHECK(q && q->n >= 1 && q->n <= r->model->max_batch_size && r->n_items == q->n);
        for (int i = 0; i < q->n; i++) {
            FUZZ_CHECK(q->n_src[i] >= 1 && q->n_src[i] <= info.max_src_len);
            for (int k = 0; k < q->n_src[i]; k++) FUZZ_CHECK(q->src[i][k] >= 0 && q->src[i][k] < info.src_vocab);
        }
        FUZZ_CHECK(q->opts.beam_size >= 1 && q->opts.beam_size <= ENG_TRANSLATE_MAX_BEAM);
        FUZZ_CHECK(q->opts.max_tokens >= 1 && q->opts.max_tokens <= info.max_tgt_len - 1);
        FUZZ_CHECK(q->opts.length_penalty >= 0);
        FUZZ_CHECK(r->status == 0);
    } else {
        FUZZ_CHECK(r->status >= 400 && r->resp_body);
    }
    json_decref(j);
    srv_request_unref(r);
}

FUZZ_ENTRY(translations)
