// api_translations.c — POST /v1/translations: the HTTP side (parse,
// tokenize, queue) and the worker side (one search over every sentence of
// the batch, engine/arch/translate.c).
//   {"model":"en-de","input":"the house" | ["…","…"],"max_tokens":128,
//    "beam_size":1..8,"length_penalty":1.0}
//   -> {"object":"list","model":…,"data":[{"index":0,"text":"das Haus",
//       "tokens":[…],"finished":true}],"usage":{…}}
// Sentences of concurrent requests are batched by the scheduler like images;
// requests with different beam_size or length_penalty in one batch are
// searched in groups of equal settings (max_tokens may differ within one).
#include <stdlib.h>              // calloc, free
#include <string.h>              // strlen
#include "engine/arch/translate.h"   // eng_translate
#include "server/api.h"          // declarations

#define DEFAULT_BEAM 1
#define MAX_LENGTH_PENALTY 10.0

static void translate_req_free(void *p) {
    srv_translate_req *q = p;
    if (!q) return;
    for (int i = 0; i < q->n; i++) {
        free(q->src[i]);
        free(q->out[i].ids);
    }
    free(q->src);
    free(q->n_src);
    free(q->out);
    free(q);
}

// An optional integer in [lo, hi]; *out keeps its default when absent or null.
static int opt_int(srv_request *r, const json_t *j, const char *key, int lo, int hi, int *out) {
    const json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        srv_request_fail(r, SRV_E_BAD_VALUE, key, "%s must be an integer in [%d, %d]", key, lo, hi);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

// Tokenizes input item i into q; answers r and returns -1 on bad input.
static int add_sentence(srv_request *r, srv_translate_req *q, const json_t *s, int i, int is_array, int max_src) {
    char what[32];
    snprintf(what, sizeof what, is_array ? "input[%d]" : "input", i);
    if (!json_is_string(s)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s must be a string", what);
        return -1;
    }
    if (json_string_length(s) == 0) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s is empty: nothing to translate", what);
        return -1;
    }
    const eng_model *em = r->model->m;
    char *err = NULL;
    int rc = eng_model_text_ids(em, json_string_value(s), json_string_length(s), &q->src[i], &q->n_src[i], &err);
    if (rc == ENG_TOK_E_TOO_LONG)
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s is longer than model '%s' accepts (%d tokens)", what,
                         r->model->id, em->max_text_ids);
    else if (rc == ENG_TOK_E_NOMEM)
        srv_request_fail(r, SRV_E_UNAVAILABLE, "input", "out of memory tokenizing %s; retry later", what);
    else if (rc != 0)
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s: %s", what, err ? err : "cannot be tokenized");
    free(err);
    if (rc == 0 && q->n_src[i] > max_src) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "%s is longer than model '%s' accepts (%d tokens, got %d)", what,
                         r->model->id, max_src, q->n_src[i]);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

int srv_api_translations_parse(srv_request *r, const json_t *j) {
    const json_t *jm = json_object_get(j, "model");
    if (jm && !json_is_string(jm)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must be a string");
        return -1;
    }
    srv_model *m = srv_api_model(r, json_string_value(jm), ENG_TASK_TRANSLATION);
    if (!m) return -1;
    eng_s2s_info info = m->m->arch->s2s->info(m->m->s2s);
    const json_t *in = json_object_get(j, "input");
    if (!in) {
        srv_request_fail(r, SRV_E_MISSING, "input", "\"input\" (a string or an array of strings) is required");
        return -1;
    }
    if (!json_is_string(in) && !(json_is_array(in) && json_array_size(in) > 0)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "input must be a string or a non-empty array of strings");
        return -1;
    }
    if (json_is_array(in) && (int)json_array_size(in) > m->max_batch_size) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "input", "at most %d sentences per request for model '%s'", m->max_batch_size, m->id);
        return -1;
    }
    int beam = DEFAULT_BEAM, max_tokens = 0;
    if (opt_int(r, j, "beam_size", 1, ENG_TRANSLATE_MAX_BEAM, &beam) != 0 ||
        opt_int(r, j, "max_tokens", 1, info.max_tgt_len - 1, &max_tokens) != 0)
        return -1;
    double lp = 1.0;
    const json_t *jl = json_object_get(j, "length_penalty");
    if (jl && !json_is_null(jl)) {
        if (!json_is_number(jl) || json_number_value(jl) < 0 || json_number_value(jl) > MAX_LENGTH_PENALTY) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "length_penalty", "length_penalty must be a number in [0, %g]", MAX_LENGTH_PENALTY);
            return -1;
        }
        lp = json_number_value(jl);
    }

    int n = json_is_array(in) ? (int)json_array_size(in) : 1;
    srv_translate_req *q = calloc(1, sizeof *q);
    if (q) {
        q->src = calloc((size_t)n, sizeof *q->src);
        q->n_src = calloc((size_t)n, sizeof *q->n_src);
        q->out = calloc((size_t)n, sizeof *q->out);
    }
    if (!q || !q->src || !q->n_src || !q->out) {
        if (q) { free(q->src); free(q->n_src); free(q->out); free(q); }
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory for %d sentences; retry later", n);
        return -1;
    }
    q->n = n;
    r->task = q;
    r->task_free = translate_req_free;
    r->n_items = n;
    int longest = 0;
    for (int i = 0; i < n; i++) {
        const json_t *s = json_is_array(in) ? json_array_get(in, (size_t)i) : in;
        if (add_sentence(r, q, s, i, json_is_array(in), info.max_src_len) != 0) return -1;
        if (q->n_src[i] > longest) longest = q->n_src[i];
    }
    // Default output bound: twice the longest source plus 16 (sources and
    // targets are of similar length in tokens), within what the model holds.
    if (!max_tokens) max_tokens = 2 * longest + 16;
    if (max_tokens > info.max_tgt_len - 1) max_tokens = info.max_tgt_len - 1;
    q->opts = (eng_translate_opts){.beam_size = beam, .max_tokens = max_tokens, .length_penalty = (float)lp};
    return 0;
}

int srv_api_translations(srv_request *r, const char *arg) {
    json_t *j = srv_api_parse_json(r);
    if (!j) return SRV_HANDLER_DONE;
    int rc = srv_api_translations_parse(r, j);
    json_decref(j);
    if (rc != 0) return SRV_HANDLER_DONE;
    r->deadline = r->t_start + r->model->timeout_ms / 1000.0;
    return srv_api_submit(r);
}

// ---------------------------------------------------------------- worker side
static void respond(srv_request *r, const eng_model *em) {
    const srv_translate_req *q = r->task;
    const eng_tokenizer *tok = em->tok_tgt ? em->tok_tgt : em->tok;
    json_t *data = json_array();
    long prompt = 0, completion = 0;
    for (int i = 0; i < q->n; i++) {
        char *text = NULL, *err = NULL;
        size_t len = 0;
        if (eng_tok_decode(tok, q->out[i].ids, q->out[i].n, &text, &len, &err) != 0) {
            free(err);
            json_decref(data);
            srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory decoding the output; retry later");
            return;
        }
        json_t *ids = json_array();
        for (int k = 0; k < q->out[i].n; k++) json_array_append_new(ids, json_integer(q->out[i].ids[k]));
        // decoded text can hold invalid UTF-8 only from byte-level pieces; jansson
        // refuses such strings, so they are replaced rather than lost
        json_t *jt = json_stringn(text, len);
        if (!jt) jt = json_string("\xef\xbf\xbd");
        json_array_append_new(data, json_pack("{s:i,s:o,s:o,s:b}", "index", i, "text", jt, "tokens", ids,
                                              "finished", q->out[i].finished));
        free(text);
        prompt += q->n_src[i];
        completion += q->out[i].n;
    }
    json_t *o = json_pack("{s:s,s:s,s:o,s:{s:I,s:I,s:I}}", "object", "list", "model", r->model->id, "data", data, "usage",
                          "prompt_tokens", (json_int_t)prompt, "completion_tokens", (json_int_t)completion,
                          "total_tokens", (json_int_t)(prompt + completion));
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT));
    json_decref(o);
}

// Requests share a search when beam_size and length_penalty agree; each
// sentence keeps its own max_tokens (eng_translate_opts.max_tokens_each).
static int same_opts(const eng_translate_opts *a, const eng_translate_opts *b) {
    return a->beam_size == b->beam_size && a->length_penalty == b->length_penalty;
}

void srv_run_translate(srv_worker *w, srv_model *m, srv_request **reqs, int n) {
    if (n <= 0) return;
    eng_model *em = m->m;
    int items = 0;
    for (int i = 0; i < n; i++) items += reqs[i]->n_items;
    const int **src = malloc((size_t)items * sizeof *src);
    int *n_src = malloc((size_t)items * sizeof *n_src);
    int *max_tokens = malloc((size_t)items * sizeof *max_tokens);
    eng_translation *out = malloc((size_t)items * sizeof *out);
    char *done = calloc((size_t)n, 1);
    if (!src || !n_src || !max_tokens || !out || !done) {
        for (int i = 0; i < n; i++) srv_request_fail(reqs[i], SRV_E_UNAVAILABLE, NULL, "out of memory for the batch; retry later");
        goto out;
    }
    for (int g = 0; g < n; g++) {   // each group of equal settings: one search
        if (done[g]) continue;
        const eng_translate_opts *o = &((srv_translate_req *)reqs[g]->task)->opts;
        int k = 0;
        for (int i = g; i < n; i++) {
            const srv_translate_req *q = reqs[i]->task;
            if (done[i] || !same_opts(&q->opts, o)) continue;
            for (int s = 0; s < q->n; s++) { src[k] = q->src[s]; n_src[k] = q->n_src[s]; max_tokens[k] = q->opts.max_tokens; k++; }
        }
        eng_translate_opts group = *o;
        group.max_tokens_each = max_tokens;
        int rc = eng_translate(em->arch->s2s, em->s2s, &w->tape, src, n_src, k, &group, out);
        k = 0;
        for (int i = g; i < n; i++) {
            srv_translate_req *q = reqs[i]->task;
            if (done[i] || !same_opts(&q->opts, o)) continue;
            done[i] = 1;
            if (rc != 0) {
                srv_request_fail(reqs[i], SRV_E_UNAVAILABLE, NULL, "out of memory during the search; retry later");
                continue;
            }
            for (int s = 0; s < q->n; s++) q->out[s] = out[k++];
            respond(reqs[i], em);
        }
    }
out:
    free(src); free(n_src); free(max_tokens); free(out); free(done);
}
