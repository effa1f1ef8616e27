// gen.h — text generation: the /v1/completions request state and the
// continuous-batching runner (srv_gen_step) the scheduler calls for
// text-generation models.
#ifndef SRV_GEN_H
#define SRV_GEN_H
#include <stdint.h>            // uint64_t
#include "engine/text/sample.h"     // eng_sampler
#include "server/sched.h"      // srv_worker, srv_model

#define SRV_GEN_MAX_STOP 4

// What a completion request asks for (parsed and validated by api_completions.c).
typedef struct {
    int *prompt;               // prompt token ids (owned)
    int n_prompt;
    char *prompt_text;         // the prompt as text (for echo), owned
    size_t prompt_text_len;
    int max_tokens;            // tokens to generate at most
    eng_sampler sampler;       // temperature / top_k / top_p
    uint64_t seed;             // RNG seed of choice 0 (choice i mixes i into it)
    char *stop[SRV_GEN_MAX_STOP];
    int n_stop;
    int n;                     // choices
    int stream;                // SSE
    int include_usage;         // stream_options.include_usage
    int echo;                  // prepend the prompt to the text
    int logprobs;              // -1 = none, else top-k alternatives per token (0..5)
    char cmpl_id[96];          // "cmpl-<request id>"
    long created;              // unix time
    // ---- runner state (owned by the runner once running)
    struct gen_choice **choices;  // [n]
    int n_done;                // choices finished
    int completion_tokens;     // generated tokens over all choices
    int failed;                // memory ran out mid-generation: answered 503
    int aborting;              // srv_gen_abort has listed it (answers each request once)
} srv_gen_req;

void srv_gen_req_free(void *req);   // task_free for srv_request

// The KV-cache budget is hard: a request whose choices need more than the
// model's kv_cache_mb (default 2048) could never be admitted, so it is
// answered 400 at once. Returns 0, or -1 after answering r.
int srv_gen_check_budget(srv_request *r, const srv_model *m, const srv_gen_req *q);

// The continuous-batching runner (srv_task_stepper).
int srv_gen_step(srv_worker *w, srv_model *m);
// Answers every running or waiting request 503 (daemon stopping).
void srv_gen_abort(srv_model *m);

#endif
