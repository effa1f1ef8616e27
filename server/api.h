// api.h — the route table and its handlers (one file per group:
// api_probes.c, api_models.c, api_classify.c, api_translations.c,
// api_completions.c, api_files.c, api_jobs.c, api_images.c, and
// api_common.c for shared helpers and the 501 answer of unbuilt endpoints),
// plus the batch runners (image and text classification, translation) the scheduler calls. Each
// handler answers through srv_request_* or hands the request to the
// scheduler with srv_api_submit().
#ifndef SRV_API_H
#define SRV_API_H
#include <jansson.h>          // json_t
#include "server/http.h"      // srv_handler
#include "server/gen.h"       // srv_gen_req
#include "server/sched.h"     // srv_worker
#include "engine/arch/translate.h"  // eng_translate_opts, eng_translation

// every endpoint of API.md (api_routes.c), for srv_http_start
extern const srv_route srv_api_routes[];
extern const int srv_api_n_routes;

// probes and metrics
int srv_api_healthz(srv_request *r, const char *arg);
int srv_api_readyz(srv_request *r, const char *arg);
int srv_api_metrics(srv_request *r, const char *arg);
// models
int srv_api_models_list(srv_request *r, const char *arg);
int srv_api_models_get(srv_request *r, const char *arg);
int srv_api_models_load(srv_request *r, const char *arg);
int srv_api_models_unload(srv_request *r, const char *arg);
// The body of POST /v1/models: *id and *path (borrowed from j) once both are
// valid; else answers r and returns -1. The loading itself is the handler's.
int srv_api_models_load_parse(srv_request *r, const json_t *j, const char **id, const char **path);
// classification
int srv_api_classify(srv_request *r, const char *arg);
void srv_run_classify_images(srv_worker *w, srv_model *m, srv_request **reqs, int n);
void srv_run_classify_text(srv_worker *w, srv_model *m, srv_request **reqs, int n);
// The task state of a classification request (srv_request.task).
typedef struct {
    float *input;              // image models: [n_items, C*H*W] preprocessed images
    int **ids;                 // text models: [n_items] the ids of each text (eng_model_text_ids)
    int *n_ids;                // text models: [n_items] their counts
    int n_texts;               // ids[0..n_texts) are allocated (freed with the request)
    int top_k;                 // labels to return per item
} srv_classify_req;
// The JSON form of a classification body: model lookup (r->model), top_k,
// every image decoded (image models) or every text of "input" turned into
// ids (text models) into r->task (srv_classify_req). 0 = ready to queue,
// -1 = r answered.
int srv_api_classify_parse(srv_request *r, const json_t *j);
// translation
// stylization (api_stylize.c): one image per request; the runner batches
// the requests of one size
int srv_api_stylize(srv_request *r, const char *arg);
void srv_run_stylize(srv_worker *w, srv_model *m, srv_request **reqs, int n);
int srv_api_translations(srv_request *r, const char *arg);
void srv_run_translate(srv_worker *w, srv_model *m, srv_request **reqs, int n);
// The task state of a translation request (srv_request.task).
typedef struct {
    int n;                      // sentences
    int **src;                  // [n] source ids (EOS included)
    int *n_src;                 // [n] their counts
    eng_translate_opts opts;    // the search settings
    eng_translation *out;       // [n] results, filled by the runner
} srv_translate_req;
// The JSON body of a translation request: model lookup (r->model), search
// settings, every sentence tokenized into r->task. 0 = ready to queue,
// -1 = r answered.
int srv_api_translations_parse(srv_request *r, const json_t *j);
// image generation (api_images.c)
int srv_api_images_generations(srv_request *r, const char *arg);
void srv_run_generate_images(srv_worker *w, srv_model *m, srv_request **reqs, int n);
// The task state of an image-generation request (srv_request.task): its
// latents, drawn on the HTTP thread from the seed, and each image's label.
typedef struct {
    int n;                      // images
    uint64_t seed;              // the request's seed (given or drawn)
    int label;                  // the requested label's index, or -1 (unconditional, or every label in turn)
    int grid;                   // 1: one grid PNG (Accept: image/png)
    float *z;                   // [n, n_latent]
    int *labels;                // [n] label index of each image (0 for an unconditional model)
} srv_gen_images_req;
// text generation (OpenAI-compatible completions)
int srv_api_completions(srv_request *r, const char *arg);
// Validates a completions body for model m into q (prompt tokenized); 0, or
// -1 after answering r. q is freed by srv_gen_req_free whatever the result.
int srv_api_completions_parse(srv_request *r, const json_t *j, srv_model *m, srv_gen_req *q);
// files (api_files.c): the upload's body streams to srv_api_files_sink;
// srv_api_files_upload runs once all of it has arrived
extern const srv_body_sink srv_api_files_sink;
int srv_api_files_upload(srv_request *r, const char *arg);
int srv_api_files_list(srv_request *r, const char *arg);
int srv_api_files_get(srv_request *r, const char *arg);
int srv_api_files_delete(srv_request *r, const char *arg);
// training jobs (api_jobs.c): /v1/jobs, /v1/jobs/{id}[/events|/loss.png|/cancel]
int srv_api_jobs_create(srv_request *r, const char *arg);
int srv_api_jobs_list(srv_request *r, const char *arg);
int srv_api_jobs_get(srv_request *r, const char *arg);
int srv_api_jobs_post(srv_request *r, const char *arg);
// endpoints of the API that this build does not serve yet: 501 with a message
int srv_api_unbuilt(srv_request *r, const char *arg);

// Suspends r's connection and queues it on r->model; on refusal (queue full,
// shutting down) answers at once. Always returns SRV_HANDLER_ASYNC.
int srv_api_submit(srv_request *r);
// Parses r->body as a JSON object; on failure answers 400 and returns NULL.
json_t *srv_api_parse_json(srv_request *r);
// Looks up the model named by `id` (validating the name, checking the task);
// on failure answers 400/404 and returns NULL. On success r->model holds a reference.
srv_model *srv_api_model(srv_request *r, const char *id, int task);

#endif
