// fuzz_completions.c — the JSON body of POST /v1/completions.
//
// Each input is a request body. It goes through what the handler runs before
// queueing: srv_api_parse_json (Content-Type absent, as curl -d without -H
// would send it), the model lookup in the registry (fortune-gpt, a
// character-level GPT, is loaded), then srv_api_completions_parse, which
// validates every sampling field and tokenizes the prompt. A body it accepts
// must give a prompt of ids inside the vocabulary that fits the context with
// max_tokens; a body it refuses must leave an error answer. The request and
// its srv_gen_req are freed after each input, so leaks show up.
#include <jansson.h>           // json_t
#include "engine/arch/model.h"      // ENG_TASK_TEXT_GENERATION
#include "fuzz/fuzz.h"         // fuzz_request, FUZZ_CHECK
#include "server/api.h"        // srv_api_parse_json, srv_api_completions_parse
#include "server/registry.h"   // srv_model

int fuzz_completions_init(void) { return fuzz_registry() ? 0 : -1; }

void fuzz_completions_one(const uint8_t *data, size_t size) {
    srv_request *r = fuzz_request(data, size);
    if (!r) return;
    json_t *j = srv_api_parse_json(r);
    if (j) {
        // the handler's own steps: "model" must be a string naming a text model
        const json_t *jm = json_object_get(j, "model");
        srv_model *m = NULL;
        if (jm && !json_is_string(jm)) srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must be a string");
        else m = srv_api_model(r, json_string_value(jm), ENG_TASK_TEXT_GENERATION);
        srv_gen_req *q = m ? calloc(1, sizeof *q) : NULL;
        if (q) {
            r->task = q;
            r->task_free = srv_gen_req_free;
            if (srv_api_completions_parse(r, j, m, q) == 0) {
                eng_lm_info info = m->m->arch->lm->info(m->m->lm);
                FUZZ_CHECK(q->n_prompt >= 1 && q->max_tokens >= 1);
                FUZZ_CHECK(q->n_prompt + q->max_tokens <= info.context_len);
                for (int i = 0; i < q->n_prompt; i++) FUZZ_CHECK(q->prompt[i] >= 0 && q->prompt[i] < info.vocab_size);
                FUZZ_CHECK(q->n >= 1 && q->n <= m->max_batch_size);
                FUZZ_CHECK(q->sampler.top_p > 0 && q->sampler.top_p <= 1 && q->sampler.temperature >= 0);
                FUZZ_CHECK(r->status == 0);
            } else {
                FUZZ_CHECK(r->status >= 400 && r->resp_body);
            }
        }
        json_decref(j);
    }
    if (!j || !r->task) FUZZ_CHECK(r->status >= 400 && r->resp_body);
    srv_request_unref(r);
}

FUZZ_ENTRY(completions)
