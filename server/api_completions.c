// api_completions.c — POST /v1/completions (OpenAI-compatible): validates the
// request, tokenizes the prompt, and hands it to the model's continuous
// batcher (server/gen.c). With "stream": true the SSE response is queued at
// once and filled as tokens are generated.
#include <math.h>              // isfinite
#include <stdio.h>             // snprintf
#include <string.h>            // strcmp
#include <time.h>              // time
#include "engine/text/tokenizer.h"  // eng_tok_encode
#include "engine/core/util.h"       // eng_now
#include "server/log.h"        // log_warn
#include "server/api.h"        // declarations
#include "server/gen.h"        // srv_gen_req
#include "server/sched.h"      // srv_sched_submit
#include "server/stream.h"     // srv_stream_new

#define MAX_TOKENS_LIMIT 4096
#define MAX_N 8

static int oom(srv_request *r) {
    srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory; retry later");
    return -1;
}

// Reads an optional number field within [lo, hi]; returns 0, or -1 after answering 400.
static int opt_number(srv_request *r, const json_t *j, const char *key, double lo, double hi, double *out) {
    const json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < lo || json_number_value(v) > hi) {
        srv_request_fail(r, SRV_E_BAD_VALUE, key, "%s must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int opt_int(srv_request *r, const json_t *j, const char *key, long long lo, long long hi, long long *out) {
    const json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        srv_request_fail(r, SRV_E_BAD_VALUE, key, "%s must be an integer in [%lld, %lld]", key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int opt_bool(srv_request *r, const json_t *j, const char *key, int *out) {
    const json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, key, "%s must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

// Fills q from the JSON body; answers r and returns -1 on invalid input.
int srv_api_completions_parse(srv_request *r, const json_t *j, srv_model *m, srv_gen_req *q) {
    const eng_tokenizer *tok = m->m->tok;
    eng_lm_info info = m->m->arch->lm->info(m->m->lm);
    long long max_tokens = 16, top_k = 0, logprobs = -1, n = 1, seed = -1;
    double temperature = 1.0, top_p = 1.0;
    if (opt_int(r, j, "max_tokens", 1, MAX_TOKENS_LIMIT, &max_tokens) || opt_number(r, j, "temperature", 0, 2, &temperature) ||
        opt_number(r, j, "top_p", 0, 1, &top_p) || opt_int(r, j, "top_k", 0, 1000000, &top_k) ||
        opt_int(r, j, "n", 1, MAX_N, &n) || opt_int(r, j, "seed", -9007199254740991LL, 9007199254740991LL, &seed) ||
        opt_bool(r, j, "stream", &q->stream) || opt_bool(r, j, "echo", &q->echo))
        return -1;
    const json_t *lp = json_object_get(j, "logprobs");
    if (lp && !json_is_null(lp) && opt_int(r, j, "logprobs", 0, 5, &logprobs)) return -1;
    if (top_p <= 0) { srv_request_fail(r, SRV_E_BAD_VALUE, "top_p", "top_p must be in (0, 1]"); return -1; }
    const json_t *so = json_object_get(j, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) { srv_request_fail(r, SRV_E_BAD_VALUE, "stream_options", "stream_options must be an object"); return -1; }
        if (opt_bool(r, so, "include_usage", &q->include_usage)) return -1;
    }
    // stop: a string or an array of up to 4 non-empty strings
    const json_t *stop = json_object_get(j, "stop");
    if (stop && !json_is_null(stop)) {
        size_t ns = json_is_array(stop) ? json_array_size(stop) : 1;
        if ((!json_is_string(stop) && !json_is_array(stop)) || ns > SRV_GEN_MAX_STOP) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "stop", "stop must be a string or an array of up to 4 strings");
            return -1;
        }
        for (size_t i = 0; i < ns; i++) {
            const json_t *s = json_is_array(stop) ? json_array_get(stop, i) : stop;
            if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 256) {
                srv_request_fail(r, SRV_E_BAD_VALUE, "stop", "each stop sequence must be a non-empty string of at most 256 bytes");
                return -1;
            }
            if (!(q->stop[q->n_stop++] = strdup(json_string_value(s)))) return oom(r);
        }
    }
    // prompt: a string, or an array of token ids
    const json_t *p = json_object_get(j, "prompt");
    char *err = NULL;
    if (!p || json_is_null(p)) {
        srv_request_fail(r, SRV_E_MISSING, "prompt", "\"prompt\" (a string or an array of token ids) is required");
        return -1;
    }
    if (json_is_string(p)) {
        // SentencePiece models start from BOS (as llama2.c and HF Llama do); GPT-2 does not
        eng_tok_kind kind = eng_tok_kind_of(tok);
        int add_bos = (kind == ENG_TOK_KIND_LLAMA2C || kind == ENG_TOK_KIND_HF_LLAMA) && eng_tok_bos_id(tok) >= 0
                      ? ENG_TOK_FLAG_ADD_BOS : 0;
        int rc = eng_tok_encode(tok, json_string_value(p), json_string_length(p), add_bos, info.context_len + 1,
                                &q->prompt, &q->n_prompt, &err);
        if (rc == ENG_TOK_E_NOMEM) {   // not the client's fault: 503, retry later
            free(err);
            return oom(r);
        }
        if (rc != 0) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "prompt", "%s", rc == ENG_TOK_E_TOO_LONG
                             ? "prompt is longer than the model's context" : (err ? err : "cannot tokenize the prompt"));
            free(err);
            return -1;
        }
        q->prompt_text = strndup(json_string_value(p), json_string_length(p));
        if (!q->prompt_text) return oom(r);
        q->prompt_text_len = json_string_length(p);
    } else if (json_is_array(p) && json_array_size(p) > 0 && json_is_integer(json_array_get(p, 0))) {
        size_t np = json_array_size(p);
        if (np > (size_t)info.context_len) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "prompt", "prompt has %zu tokens; the model's context is %d", np, info.context_len);
            return -1;
        }
        if (!(q->prompt = malloc(np * sizeof(int)))) return oom(r);
        for (size_t i = 0; i < np; i++) {
            const json_t *v = json_array_get(p, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= info.vocab_size) {
                srv_request_fail(r, SRV_E_BAD_VALUE, "prompt", "prompt[%zu] must be a token id in [0, %d)", i, info.vocab_size);
                return -1;
            }
            q->prompt[i] = (int)json_integer_value(v);
        }
        q->n_prompt = (int)np;
        size_t tl;
        int rc = eng_tok_decode(tok, q->prompt, q->n_prompt, &q->prompt_text, &tl, &err);
        if (rc == ENG_TOK_E_NOMEM) {
            free(err);
            return oom(r);
        }
        if (rc != 0) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "prompt", "%s", err ? err : "bad token id");
            free(err);
            return -1;
        }
        q->prompt_text_len = tl;
    } else {
        srv_request_fail(r, SRV_E_BAD_VALUE, "prompt", "prompt must be a string or a non-empty array of token ids "
                         "(arrays of strings: send one request per prompt)");
        return -1;
    }
    if (q->n_prompt == 0) {   // empty text: start from the end-of-text token, as GPT-2 does
        int start = eng_tok_bos_id(tok) >= 0 ? eng_tok_bos_id(tok) : eng_tok_eos_id(tok);
        if (start < 0) { srv_request_fail(r, SRV_E_BAD_VALUE, "prompt", "prompt must not be empty for this model"); return -1; }
        free(q->prompt);
        if (!(q->prompt = malloc(sizeof(int)))) return oom(r);
        q->prompt[0] = start;
        q->n_prompt = 1;
    }
    if (q->n_prompt + max_tokens > info.context_len) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "max_tokens", "prompt (%d tokens) + max_tokens (%lld) exceeds the model's context of %d tokens",
                         q->n_prompt, max_tokens, info.context_len);
        return -1;
    }
    q->max_tokens = (int)max_tokens;
    q->n = (int)n;
    q->logprobs = (int)logprobs;
    q->sampler.temperature = (float)temperature;
    q->sampler.top_k = (int)top_k;
    q->sampler.top_p = (float)top_p;
    // no seed: a fresh one per request; with a seed: reproducible whatever else runs
    q->seed = seed >= 0 || json_object_get(j, "seed") ? (uint64_t)seed : (uint64_t)(eng_now() * 1e9) ^ (uint64_t)(uintptr_t)r;
    snprintf(q->cmpl_id, sizeof q->cmpl_id, "cmpl-%s", r->id);
    q->created = (long)time(NULL);
    if (n > 1 && q->n > m->max_batch_size) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "n", "n must be at most %d for model '%s'", m->max_batch_size, m->id);
        return -1;
    }
    return srv_gen_check_budget(r, m, q);
}

int srv_api_completions(srv_request *r, const char *arg) {
    json_t *j = srv_api_parse_json(r);
    if (!j) return SRV_HANDLER_DONE;
    const json_t *jm = json_object_get(j, "model");
    if (jm && !json_is_string(jm)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must be a string");
        json_decref(j);
        return SRV_HANDLER_DONE;
    }
    srv_model *m = srv_api_model(r, json_string_value(jm), ENG_TASK_TEXT_GENERATION);
    if (!m) { json_decref(j); return SRV_HANDLER_DONE; }
    srv_gen_req *q = calloc(1, sizeof *q);
    if (!q) {
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory; retry later");
        json_decref(j);
        return SRV_HANDLER_DONE;
    }
    r->task = q;
    r->task_free = srv_gen_req_free;
    int rc = srv_api_completions_parse(r, j, m, q);
    json_decref(j);
    if (rc != 0) return SRV_HANDLER_DONE;
    r->n_items = 1;
    r->deadline = r->t_start + m->timeout_ms / 1000.0;
    if (!q->stream) return srv_api_submit(r);
    // streams: the SSE state exists before a worker can write to it; the
    // response (status 200) is queued only once the request was accepted
    if (!(r->stream = srv_stream_new(r->conn))) {
        srv_request_fail(r, SRV_E_INTERNAL, NULL, "out of memory");
        return SRV_HANDLER_DONE;
    }
    srv_err e = srv_sched_submit(r);
    if (e != SRV_OK) {
        srv_request_fail(r, e, NULL, e == SRV_E_QUEUE_FULL ? "the queue of model %s is full; retry later" : "server is shutting down (%s)", m->id);
        return SRV_HANDLER_DONE;
    }
    if (srv_http_respond_stream(r) != 0) {   // queued already: a runner holds it until it sees the close
        log_warn("request %s: cannot queue the event-stream response; closing the connection", r->id);
        return SRV_HANDLER_CLOSE;
    }
    return SRV_HANDLER_ASYNC;
}
