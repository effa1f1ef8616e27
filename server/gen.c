// gen.c — continuous batching for text generation (see gen.h).
//
// DESIGN. Each text-generation model has one gen_state (its running
// choices). The scheduler calls srv_gen_step for the model whenever it has
// queued or running work, never from two workers at once. A step:
//   1. drops choices whose client went away (cancelled at the next step);
//   2. admits queued requests while sequence slots (max_batch_size) and the
//      KV-cache budget (kv_cache_mb) allow; a request that does not fit waits
//      (one that could never fit was refused with 400 when it arrived);
//   3. advances the running sequences by one eng_lm_step call: decoding
//      ones feed their last token, and prompts being prefilled share the
//      step's prefill budget (the model's prefill_chunk tokens: chunked
//      prefill, so a long prompt never stalls the streams decoding beside
//      it; see plan_prefill), all stacked into one batch so weights are
//      read once. Kernels are batch-invariant per row, so the chunking
//      changes no bit of any result;
//   4. samples the next token of each choice whose prompt is consumed, with
//      its own RNG (seeded from the
//      request, so batch neighbours never change a choice's random stream),
//      appends the token's text, checks EOS / stop strings / max_tokens,
//      streams the new text (never splitting a UTF-8 character, holding back
//      what could still become a stop string);
//   5. completes finished requests (JSON, or the last SSE events + [DONE]).
#include "server/gen.h"
#include <jansson.h>           // json_pack
#include <setjmp.h>            // the out-of-memory recovery point of a step
#include <stdio.h>             // snprintf
#include <stdlib.h>            // malloc
#include <string.h>            // memcpy, memmem
#include "engine/core/util.h"       // eng_now
#include "engine/text/tokenizer.h"  // eng_tok_piece
#include "engine/text/utf8.h"       // eng_utf8_valid, eng_utf8_decode, eng_utf8_complete_prefix
#include "server/log.h"        // log_debug
#include "server/metrics.h"    // srv_metrics_tokens
#include "server/stream.h"     // srv_stream_*

enum { KEEPALIVE_S = 15 };   // seconds without bytes before a prefilling stream gets an SSE comment

typedef struct gen_choice {
    srv_request *r;            // the request (the runner holds a reference)
    int index;                 // choice index within the request
    eng_lm_seq *seq;           // KV cache / recurrent state
    size_t kv_bytes;           // what seq counts against the budget
    eng_rng rng;               // this choice's random stream
    int prefilled;             // prompt tokens consumed (n_prompt once decoding)
    int feed;                  // tokens this step feeds (0: sits this step out)
    double quiet_since;        // streams: when the client last got bytes (keep-alives during a long prefill)
    int last;                  // last token fed or generated
    int *toks;                 // generated ids [max_tokens]
    int n_toks;
    char *text;                // generated text bytes (not NUL-terminated)
    size_t len, cap;
    size_t sent;               // bytes of text already streamed
    float *lp;                 // logprob of each generated token [max_tokens] (when asked)
    int *top_ids;              // [max_tokens * logprobs]
    float *top_lp;
    size_t *offsets;           // text offset of each token
    const char *finish;        // NULL while running, else "stop" / "length"
} gen_choice;

typedef struct {
    gen_choice **run;          // running choices
    int n_run, cap;
    size_t kv_used, kv_budget; // bytes
    srv_request *waiting;      // taken from the queue, waiting for budget
    float *scratch;            // sampling scratch [2 * vocab]
    eng_lm_seq **seqs;         // step arguments [cap]
    const int **toks;
    int *ntok;
    srv_request **aborting;    // srv_gen_abort's list of distinct requests [cap + 1]
    gen_choice **filling;      // plan_prefill's prompts being prefilled [cap]
    unsigned turn;             // rotates who gets the prefill budget's remainder
} gen_state;

static void choice_free(gen_choice *c) {
    if (!c) return;
    if (c->seq) c->r->model->m->arch->lm->seq_free(c->seq);
    free(c->toks); free(c->text); free(c->lp); free(c->top_ids); free(c->top_lp); free(c->offsets);
    free(c);
}

void srv_gen_req_free(void *p) {
    srv_gen_req *g = p;
    if (!g) return;
    free(g->prompt);
    free(g->prompt_text);
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    free(g->choices);   // the choice objects themselves are freed by the runner
    free(g);
}

static void state_free(void *p) {
    gen_state *g = p;
    if (!g) return;
    free(g->run); free(g->scratch); free(g->seqs); free(g->toks); free(g->ntok); free(g->aborting);
    free(g->filling);
    free(g);
}

static size_t kv_need(const srv_model *m, const srv_gen_req *q) {
    return (size_t)q->n * m->m->arch->lm->seq_bytes(m->m->lm, q->n_prompt + q->max_tokens);
}

int srv_gen_check_budget(srv_request *r, const srv_model *m, const srv_gen_req *q) {
    size_t need = kv_need(m, q), budget = m->kv_cache_bytes;
    if (need <= budget) return 0;
    srv_request_fail(r, SRV_E_BAD_VALUE, "max_tokens", "%d choice(s) of prompt (%d tokens) + max_tokens (%d) need %.1f MB of "
                     "KV cache; model '%s' has kv_cache_mb = %zu", q->n, q->n_prompt, q->max_tokens,
                     (double)need / (1 << 20), m->id, budget >> 20);
    return -1;
}

// The model's runner state, made at its first step; NULL when out of memory.
static gen_state *state_of(srv_model *m) {
    gen_state *g = srv_sched_runner_state(m);
    if (g) return g;
    if (!(g = calloc(1, sizeof *g))) return NULL;
    eng_lm_info info = m->m->arch->lm->info(m->m->lm);
    g->kv_budget = m->kv_cache_bytes;
    g->cap = m->max_batch_size;
    g->run = calloc((size_t)g->cap, sizeof *g->run);
    g->seqs = calloc((size_t)g->cap, sizeof *g->seqs);
    g->toks = calloc((size_t)g->cap, sizeof *g->toks);
    g->ntok = calloc((size_t)g->cap, sizeof *g->ntok);
    g->aborting = calloc((size_t)g->cap + 1, sizeof *g->aborting);
    g->filling = calloc((size_t)g->cap, sizeof *g->filling);
    g->scratch = malloc(2 * (size_t)info.vocab_size * sizeof(float));
    if (!g->run || !g->seqs || !g->toks || !g->ntok || !g->aborting || !g->filling || !g->scratch) { state_free(g); return NULL; }
    srv_sched_set_runner_state(m, g, state_free);
    return g;
}

// ---------------------------------------------------------------- text as JSON
// A JSON string for bytes that may not be valid UTF-8 (a model can emit a
// partial character): invalid sequences become U+FFFD, as OpenAI's decode
// with errors="replace" does.
static json_t *text_json(const char *p, size_t n) {
    if (eng_utf8_valid(p, n)) return json_stringn(p, n);
    char *buf = malloc(3 * n + 1), *o = buf;
    if (!buf) return NULL;   // json_pack fails, and the request is answered 500
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = eng_utf8_decode(p + i, n - i, &cp);
        if (k > 0) { memcpy(o, p + i, (size_t)k); o += k; i += (size_t)k; }
        else { memcpy(o, "\xEF\xBF\xBD", 3); o += 3; i++; }
    }
    json_t *j = json_stringn(buf, (size_t)(o - buf));
    free(buf);
    return j;
}

// A token's text for logprobs: the piece itself when it is valid UTF-8, else
// "bytes:\xNN..." (OpenAI's convention for partial characters).
static char *piece_label(const char *p, size_t n) {
    if (p && eng_utf8_valid(p, n)) return strndup(p, n);
    char *s = malloc(6 + 4 * n + 1), *o = s;
    if (!s) return NULL;   // the label is left out
    o += sprintf(o, "bytes:");
    for (size_t i = 0; i < n; i++) o += sprintf(o, "\\x%02x", (unsigned char)p[i]);
    return s;
}

// ---------------------------------------------------------------- responses
static json_t *logprobs_json(const srv_model *m, const srv_gen_req *q, const gen_choice *c) {
    if (q->logprobs < 0) return json_null();
    const eng_tokenizer *tok = m->m->tok;
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (int i = 0; i < c->n_toks; i++) {
        size_t n;
        int prev = i ? c->toks[i - 1] : q->prompt[q->n_prompt - 1];
        const char *p = eng_tok_piece(tok, prev, c->toks[i], &n);
        char *label = piece_label(p, n);
        json_array_append_new(tokens, json_string(label));
        free(label);
        json_array_append_new(lps, json_real(c->lp[i]));
        json_t *top = json_object();
        for (int k = 0; k < q->logprobs; k++) {   // alternatives, in the same context as the token
            size_t pn;
            const char *pp = eng_tok_piece(tok, prev, c->top_ids[i * q->logprobs + k], &pn);
            char *key = piece_label(pp, pn);
            if (!json_object_get(top, key)) json_object_set_new(top, key, json_real(c->top_lp[i * q->logprobs + k]));
            free(key);
        }
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)c->offsets[i]));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops, "text_offset", offs);
}

static json_t *usage_json(const srv_gen_req *q) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", q->n_prompt, "completion_tokens", q->completion_tokens,
                     "total_tokens", q->n_prompt + q->completion_tokens);
}

static char *dumps(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(o);
    return s;
}

// A streaming chunk for choice c carrying `text` (may be empty) and finish_reason.
static void stream_chunk(srv_request *r, const srv_gen_req *q, int index, const char *text, size_t n, const char *finish) {
    json_t *choice = json_pack("{s:i,s:o,s:n,s:s?}", "index", index, "text", text_json(text, n), "logprobs", "finish_reason", finish);
    char *s = dumps(json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", q->cmpl_id, "object", "text_completion",
                              "created", (json_int_t)q->created, "model", r->model->id, "choices", choice));
    srv_stream_event(r->stream, s);
    free(s);
}

// Every choice of r is done: send the response.
static void finish_request(srv_model *m, srv_request *r) {
    srv_gen_req *q = r->task;
    srv_metrics_tokens(m->id, q->completion_tokens);
    if (q->stream) {
        if (q->include_usage) {
            char *s = dumps(json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", q->cmpl_id, "object", "text_completion",
                                      "created", (json_int_t)q->created, "model", m->id, "choices", "usage", usage_json(q)));
            srv_stream_event(r->stream, s);
            free(s);
        }
        srv_stream_write(r->stream, "data: [DONE]\n\n", 14);
        srv_stream_end(r->stream);
    } else {
        json_t *choices = json_array();
        for (int i = 0; i < q->n; i++) {
            gen_choice *c = q->choices[i];
            size_t n = (q->echo ? q->prompt_text_len : 0) + c->len;
            char *text = malloc(n + 1);
            json_t *jt = NULL;
            if (text) {
                if (q->echo) memcpy(text, q->prompt_text, q->prompt_text_len);
                memcpy(text + n - c->len, c->text, c->len);
                jt = text_json(text, n);
                free(text);
            }
            json_t *ids = json_array();
            for (int k = 0; k < c->n_toks; k++) json_array_append_new(ids, json_integer(c->toks[k]));
            json_array_append_new(choices, json_pack("{s:i,s:o,s:s,s:o,s:o}", "index", i, "text", jt,
                                  "finish_reason", c->finish ? c->finish : "length", "logprobs", logprobs_json(m, q, c), "tokens", ids));
        }
        srv_request_json(r, 200, dumps(json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", q->cmpl_id, "object", "text_completion",
                                                 "created", (json_int_t)q->created, "model", m->id,
                                                 "choices", choices, "usage", usage_json(q))));
        srv_request_complete(r);
    }
    for (int i = 0; i < q->n; i++) { choice_free(q->choices[i]); q->choices[i] = NULL; }
    srv_request_unref(r);
}

// ---------------------------------------------------------------- admission
// Answers a request that cannot run (memory ran out) 503 and lets go of it.
static void fail_unrun(srv_request *r, const char *why) {
    srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "%s; retry later", why);
    if (r->stream || !atomic_load(&r->closed)) srv_request_complete(r);   // a stream gets the error event
    srv_request_unref(r);
}

// A choice with its sequence and per-token arrays; NULL when memory runs out.
static gen_choice *choice_new(srv_model *m, srv_request *r, int i) {
    srv_gen_req *q = r->task;
    int max_len = q->n_prompt + q->max_tokens;
    size_t mt = (size_t)q->max_tokens, alts = (size_t)(q->logprobs + 1);
    gen_choice *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->r = r;
    c->index = i;
    c->seq = m->m->arch->lm->seq_new(m->m->lm, max_len);
    c->kv_bytes = m->m->arch->lm->seq_bytes(m->m->lm, max_len);
    // choices of one request get unrelated streams (seed+i would replay request seed+1's choice 0)
    eng_rng_seed(&c->rng, q->seed ^ ((uint64_t)i * 0xD1B54A32D192ED03ULL));
    c->toks = malloc(mt * sizeof(int));
    c->offsets = malloc(mt * sizeof(size_t));
    int ok = c->seq && c->toks && c->offsets;
    if (ok && q->logprobs >= 0) {
        c->lp = malloc(mt * sizeof(float));
        c->top_ids = malloc(mt * alts * sizeof(int));
        c->top_lp = malloc(mt * alts * sizeof(float));
        ok = c->lp && c->top_ids && c->top_lp;
    }
    if (!ok) { choice_free(c); return NULL; }
    return c;
}

// Starts r's choices; returns -1 (r answered 503) when memory runs out.
static int admit(srv_model *m, gen_state *g, srv_request *r) {
    srv_gen_req *q = r->task;
    q->choices = calloc((size_t)q->n, sizeof *q->choices);
    for (int i = 0; q->choices && i < q->n; i++) {
        if (!(q->choices[i] = choice_new(m, r, i))) {
            for (int k = 0; k < i; k++) { choice_free(q->choices[k]); q->choices[k] = NULL; }
            break;
        }
    }
    if (!q->choices || !q->choices[q->n - 1]) {
        fail_unrun(r, "out of memory for the KV cache");
        return -1;
    }
    for (int i = 0; i < q->n; i++) {
        g->kv_used += q->choices[i]->kv_bytes;
        g->run[g->n_run++] = q->choices[i];
    }
    if (q->stream && q->n_prompt > 256) srv_stream_write(r->stream, ": keep-alive\n\n", 14);   // long prefill ahead
    q->choices[0]->quiet_since = eng_now();
    if (q->stream && q->echo)   // echo: the prompt is the first text of every choice
        for (int i = 0; i < q->n; i++) stream_chunk(r, q, i, q->prompt_text, q->prompt_text_len, NULL);
    return 0;
}

static void admit_waiting(srv_model *m, gen_state *g) {
    for (;;) {
        if (!g->waiting && srv_sched_take(m, &g->waiting, 1) == 0) return;
        srv_gen_req *q = g->waiting->task;
        size_t need = kv_need(m, q);
        int fits = g->n_run + q->n <= g->cap && g->kv_used + need <= g->kv_budget;
        if (!fits && g->n_run > 0) return;   // wait for running sequences to finish
        srv_request *r = g->waiting;
        g->waiting = NULL;
        admit(m, g, r);
    }
}

// ---------------------------------------------------------------- one step
static size_t max_stop_len(const srv_gen_req *q) {
    size_t n = 0;
    for (int i = 0; i < q->n_stop; i++) if (strlen(q->stop[i]) > n) n = strlen(q->stop[i]);
    return n;
}

// Appends token `tok` to choice c and decides whether it is finished.
static void take_token(srv_model *m, gen_choice *c, int tok, const float *logits, int vocab) {
    srv_request *r = c->r;
    srv_gen_req *q = r->task;
    int prev = c->n_toks ? c->toks[c->n_toks - 1] : q->prompt[q->n_prompt - 1];
    if (c->lp) {
        c->lp[c->n_toks] = eng_logprob(logits, vocab, tok);
        if (q->logprobs > 0)
            eng_top_logprobs(logits, vocab, q->logprobs, c->top_ids + c->n_toks * q->logprobs, c->top_lp + c->n_toks * q->logprobs);
    }
    c->offsets[c->n_toks] = (q->echo ? q->prompt_text_len : 0) + c->len;
    c->toks[c->n_toks++] = tok;
    q->completion_tokens++;
    c->last = tok;
    if (tok == eng_tok_eos_id(m->m->tok)) { c->finish = "stop"; return; }
    size_t n;
    const char *p = eng_tok_piece(m->m->tok, prev, tok, &n);
    if (p && n) {
        if (c->len + n > c->cap) {
            size_t cap = (c->len + n) * 2 + 64;
            char *t = realloc(c->text, cap);
            if (!t) { q->failed = 1; c->finish = "error"; return; }
            c->text = t;
            c->cap = cap;
        }
        size_t search_from = c->len;
        memcpy(c->text + c->len, p, n);
        c->len += n;
        // stop strings: the earliest match that ends in the new bytes
        size_t ms = max_stop_len(q), best = (size_t)-1;
        search_from = search_from >= ms ? search_from - ms + 1 : 0;
        for (int i = 0; i < q->n_stop; i++) {
            char *hit = memmem(c->text + search_from, c->len - search_from, q->stop[i], strlen(q->stop[i]));
            if (hit && (size_t)(hit - c->text) < best) best = (size_t)(hit - c->text);
        }
        if (best != (size_t)-1) { c->len = best; c->finish = "stop"; return; }
    }
    if (c->n_toks >= q->max_tokens) c->finish = "length";
}

// Streams what choice c may send now.
static void stream_progress(gen_choice *c) {
    srv_gen_req *q = c->r->task;
    size_t hold = c->finish ? 0 : (max_stop_len(q) ? max_stop_len(q) - 1 : 0);
    size_t end = c->len > hold ? c->len - hold : 0;
    if (end < c->sent) end = c->sent;
    size_t n = end - c->sent;
    if (!c->finish) n = eng_utf8_complete_prefix(c->text + c->sent, n);
    if (n > 0 || c->finish) stream_chunk(c->r, q, c->index, c->text + c->sent, n, c->finish);
    c->sent += n;
}

static void remove_choice(gen_state *g, int i) {
    g->kv_used -= g->run[i]->kv_bytes;
    g->run[i] = g->run[--g->n_run];
}

// One model step with a recovery point for memory running out mid-forward
// (engine/core/arena.h). Returns 0, or -1 when it ran out (sequence states are
// then undefined: their requests fail).
static int step_guarded(eng_model *em, srv_worker *w, gen_state *g, int n, float *logits) {
    jmp_buf jb;
    if (setjmp(jb) != 0) {
        eng_arena_set_oom_jump(NULL);
        eng_tape_reset(&w->tape);
        return -1;
    }
    eng_arena_set_oom_jump(&jb);
    em->arch->lm->step(em->lm, &w->tape, g->seqs, g->toks, g->ntok, n, logits);
    eng_arena_set_oom_jump(NULL);
    return 0;
}

// 1. Marks the running choices whose client went away (or whose request
// failed through a sibling) as finished.
static void mark_cancelled(gen_state *g) {
    for (int i = 0; i < g->n_run; i++) {
        gen_choice *c = g->run[i];
        if (c->finish) continue;
        if (((srv_gen_req *)c->r->task)->failed) c->finish = "error";   // a sibling ran out of memory
        else if (srv_request_check_gone(c->r)) c->finish = "cancelled";
    }
}

// Sets c->feed for every choice still prefilling its prompt: together at most
// `budget` tokens (0 = no limit: whole prompts), shared fairly. Each prompt
// gets an equal share of what is left (at least 1 token), a prompt that needs
// less than its share leaves the rest to the others, and who comes first in
// a round (and so gets the remainder of an uneven split) rotates from step to
// step. Decoding sequences are not counted: they feed one token each, always.
static void plan_prefill(gen_state *g, int budget) {
    int nf = 0;
    for (int i = 0; i < g->n_run; i++) {
        gen_choice *c = g->run[i];
        if (c->finish) continue;
        int need = ((srv_gen_req *)c->r->task)->n_prompt - c->prefilled;
        c->feed = need > 0 ? (budget > 0 ? 0 : need) : 1;
        if (need > 0 && budget > 0) g->filling[nf++] = c;
    }
    if (nf == 0) return;
    int left = budget, start = (int)(g->turn++ % (unsigned)nf);
    for (int wanting = nf; left > 0 && wanting > 0;) {
        int share = left / wanting > 0 ? left / wanting : 1;
        wanting = 0;
        for (int k = 0; k < nf && left > 0; k++) {
            gen_choice *c = g->filling[(start + k) % nf];
            int need = ((srv_gen_req *)c->r->task)->n_prompt - c->prefilled - c->feed;
            int give = need < share ? need : share;
            if (give > left) give = left;
            c->feed += give;
            left -= give;
            if (need > give) wanting++;
        }
    }
}

// Fills the step's arguments with every choice that feeds tokens this step
// (plan_prefill): the next prompt chunk of one being prefilled, the last
// token of one decoding. Returns how many.
static int gather_inputs(gen_state *g) {
    int n = 0;
    for (int i = 0; i < g->n_run; i++) {
        gen_choice *c = g->run[i];
        if (c->finish || c->feed == 0) continue;
        srv_gen_req *q = c->r->task;
        int decoding = c->prefilled == q->n_prompt;
        g->seqs[n] = c->seq;
        g->toks[n] = decoding ? &c->last : q->prompt + c->prefilled;
        g->ntok[n] = c->feed;
        n++;
    }
    return n;
}

// Samples the next token of each choice in the step whose prompt is now all
// consumed, from its row of logits (in gather order), appends it and streams
// what may be sent. A choice that fed only part of its prompt waits for the
// next step (its row's logits are not a prediction anyone asked for).
static void sample_all(srv_model *m, gen_state *g, const float *logits, int vocab) {
    int k = 0;
    for (int i = 0; i < g->n_run; i++) {
        gen_choice *c = g->run[i];
        if (c->finish || c->feed == 0) continue;
        srv_gen_req *q = c->r->task;
        const float *lg = logits + (size_t)k++ * vocab;
        if (c->prefilled < q->n_prompt) {
            c->prefilled += c->feed;
            if (c->prefilled < q->n_prompt) {
                // a prompt prefilled in chunks can take minutes on a busy model: an SSE
                // comment now and then keeps proxies from timing the stream out
                if (q->stream && c->index == 0 && eng_now() - c->quiet_since > KEEPALIVE_S) {
                    srv_stream_write(c->r->stream, ": keep-alive\n\n", 14);
                    c->quiet_since = eng_now();
                }
                continue;
            }
        }
        int tok = eng_sample(&q->sampler, lg, vocab, &c->rng, g->scratch);
        if (tok < 0 || tok >= vocab) {   // never: eng_sample's contract; the step would assert on it
            log_error("model %s: sampler returned token %d of %d; request %s failed", m->id, tok, vocab, c->r->id);
            q->failed = 1;
            c->finish = "error";
            continue;
        }
        take_token(m, c, tok, lg, vocab);
        if (q->stream) stream_progress(c);
    }
}

// 3. One batched language-model step for every running choice, then
// sampling. Returns 0, or -1 when memory ran out (every running request is
// marked failed; the model keeps serving later ones).
static int advance(srv_worker *w, srv_model *m, gen_state *g) {
    eng_model *em = m->m;
    int vocab = em->arch->lm->info(em->lm).vocab_size;
    plan_prefill(g, m->prefill_chunk);
    int n = gather_inputs(g);
    if (n == 0) return 0;
    float *logits = srv_worker_out(w, (size_t)n * (size_t)vocab);
    double t0 = eng_now();
    if (!logits || step_guarded(em, w, g, n, logits) != 0) {
        for (int i = 0; i < g->n_run; i++) ((srv_gen_req *)g->run[i]->r->task)->failed = 1;
        return -1;
    }
    double t1 = eng_now();
    srv_metrics_batch(m->id, n);
    atomic_fetch_add(&m->n_batches, 1);
    sample_all(m, g, logits, vocab);
    if (srv_log_threshold >= SRV_LOG_DEBUG) {
        // Per-step timing on the monotonic clock (eng_now, as a client's
        // time.monotonic / perf_counter on Linux): tests/bench/prefill_http.py
        // --server-log lines it up with the clients' chunk arrivals to tell
        // step-time jitter from delivery jitter. streamed = when the step's
        // chunks had all been handed to their connections.
        int rows = 0;
        for (int i = 0; i < n; i++) rows += g->ntok[i];
        log_debug("step model=%s seqs=%d rows=%d start=%.6f end=%.6f streamed=%.6f", m->id, n, rows, t0, t1, eng_now());
    }
    return 0;
}

// A request whose client went away: nobody to answer, just let go.
static void finish_cancelled(srv_model *m, srv_request *r) {
    srv_gen_req *q = r->task;
    srv_metrics_tokens(m->id, q->completion_tokens);
    if (!q->stream && !atomic_load(&r->closed)) {
        srv_request_fail(r, SRV_E_CLIENT_GONE, NULL, "client closed the connection");
        srv_request_complete(r);
    } else if (q->stream) {
        srv_stream_end(r->stream);
    }
    for (int k = 0; k < q->n; k++) { choice_free(q->choices[k]); q->choices[k] = NULL; }
    srv_request_unref(r);
}

// 4. Retires finished choices; completes requests whose choices are all done.
static void retire_finished(srv_model *m, gen_state *g) {
    for (int i = 0; i < g->n_run;) {
        gen_choice *c = g->run[i];
        if (!c->finish) { i++; continue; }
        srv_request *r = c->r;
        srv_gen_req *q = r->task;
        remove_choice(g, i);
        if (++q->n_done < q->n) continue;
        atomic_fetch_add(&m->n_requests, 1);
        if (q->failed) {   // memory ran out mid-generation (or a broken invariant): 503, no partial text
            srv_metrics_tokens(m->id, q->completion_tokens);
            for (int k = 0; k < q->n; k++) { choice_free(q->choices[k]); q->choices[k] = NULL; }
            fail_unrun(r, "out of memory while generating");
        } else if (strcmp(c->finish, "cancelled") == 0) {
            finish_cancelled(m, r);
        } else {
            finish_request(m, r);
        }
    }
}

int srv_gen_step(srv_worker *w, srv_model *m) {
    gen_state *g = state_of(m);
    if (!g) {   // cannot run anything: answer what is queued, keep serving the rest
        srv_request *r;
        while (srv_sched_take(m, &r, 1) > 0) fail_unrun(r, "out of memory for the generation state");
        return 0;
    }
    mark_cancelled(g);                              // 1. clients that went away
    admit_waiting(m, g);                            // 2. new requests, as the KV budget allows
    if (advance(w, m, g) != 0) return g->n_run;     // 3. one step + sampling (failed: retired next call)
    retire_finished(m, g);                          // 4. answer the finished ones
    return g->n_run + (g->waiting != NULL);         // > 0: call again
}

void srv_gen_abort(srv_model *m) {
    gen_state *g = srv_sched_runner_state(m);
    if (!g) return;
    // Every request once, whichever of its choices still run (choice 0 may
    // have finished before its siblings): at most n_run + 1 requests.
    srv_request **pending = g->aborting;
    int np = 0;
    if (g->waiting) pending[np++] = g->waiting;
    g->waiting = NULL;
    for (int i = 0; i < g->n_run; i++) {
        gen_choice *c = g->run[i];
        srv_gen_req *q = c->r->task;
        if (!q->aborting) { q->aborting = 1; pending[np++] = c->r; }
        g->kv_used -= c->kv_bytes;
    }
    g->n_run = 0;
    for (int i = 0; i < np; i++) {
        srv_request *r = pending[i];
        srv_gen_req *q = r->task;
        for (int k = 0; q->choices && k < q->n; k++) { choice_free(q->choices[k]); q->choices[k] = NULL; }
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "server is shutting down");
        if (!atomic_load(&r->closed)) srv_request_complete(r);
        srv_request_unref(r);
    }
}
