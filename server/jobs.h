// jobs.h — training jobs (POST /v1/jobs): a table of jobs persisted in the
// data directory, a small pool of training threads that run eng_train on
// them, and the followers of a job's events (SSE).
//
// On disk, one directory per job, named by its id ("job-" + 24 hex digits,
// made here; nothing a client sends names a path):
//   <data_dir>/jobs/<id>/job.json       the job object + its request (atomic rewrite on every change)
//   <data_dir>/jobs/<id>/events.jsonl   one line per progress report and state change (appended)
//   <data_dir>/jobs/<id>/checkpoint.bin the trainer's checkpoint (written atomically by the trainer;
//                                        removed once the job has succeeded)
//   <data_dir>/jobs/<id>/model/         the trainer's output (staging)
// A succeeded job's model is moved (renamed, or copied across file systems)
// to <models>/<output_model> and loaded into the registry at once.
//
// DESIGN — threads. HTTP threads create, read and cancel jobs under the
// table's lock (`mu`); they never train. max_running_jobs pool threads take
// queued jobs in creation order and run eng_train with no lock held; the
// trainer's progress callback takes `mu` briefly to record the report and
// to write it to the followers' streams (srv_stream_write never blocks).
// The pool threads run at a lower priority (nice +10) on a CPU set of
// train_threads CPUs, and OpenBLAS is single-threaded in the daemon while
// jobs are enabled (see srv_jobs_start), so serving keeps the other cores
// and wins any contention on the shared ones.
//
// Restart: jobs found "running" or "queued" in the data directory are queued
// again and resume from their checkpoint (eng_train_opts.resume = 1) with
// the same total steps. A daemon stopping (SIGTERM) stops its running jobs
// at the next step without marking them: they resume at the next start.
#ifndef SRV_JOBS_H
#define SRV_JOBS_H
#include <jansson.h>          // json_t
#include <stddef.h>           // size_t
#include <stdint.h>           // uint8_t
#include "server/config.h"    // srv_config
#include "server/errors.h"    // srv_err
#include "server/request.h"   // srv_request

// Opens <data_dir>/jobs (created), loads every job found there, queues the
// unfinished ones again and starts the pool. 0, or -1 with *err.
int srv_jobs_start(const srv_config *cfg, char **err);
// From the daemon's timer: every 15 s, an SSE comment (": keep-alive") to
// every follower, so proxies keep quiet streams open and followers whose
// client has gone are dropped.
void srv_jobs_keepalive(void);
// SIGTERM: ends every event stream (their clients see the stream end), so
// the HTTP layer can drain. Jobs keep running until srv_jobs_stop.
void srv_jobs_quiesce(void);
// Stops running jobs at their next step (they stay "running" on disk and
// resume at the next start), joins the pool and frees the table.
void srv_jobs_stop(void);

// A validated job request (api_jobs.c builds it; srv_jobs_create takes it).
typedef struct {
    const char *task, *arch;            // arch NULL: the task's default
    const char *training_file;          // file id
    const char *validation_file;        // file id or NULL
    const char *base_model;             // loaded model id or NULL
    const char *output_model;           // valid model id
    int replace;                        // 1: an existing output_model may be replaced
    json_t *hyperparameters;            // the request's object as given (borrowed)
    // the trainer's options from hyperparameters (0 / NULL: the trainer's default)
    int steps, epochs, batch_size, log_every, checkpoint_every, augment, balance;   // augment, balance: -1 default
    double learning_rate, weight_decay;  // < 0: default
    long long seed;                      // < 0: default
    int dim, layers, heads, context_len, buckets, minn, maxn;
    const char *labels, *sample_prompt;
    // image-stylization-optimize (server/job_stylize.h): no training_file, no output_model
    const char *style_file, *content_file;                // file ids
    int size;                                              // longest side of the result (0: default)
    double style_weight, content_weight, tv_weight;        // < 0: default
    // image-stylization (a style network from training_file, a tar of photos,
    // and style_file; size: the training crops' side; style_weight and
    // content_weight as above)
    double width, structure_weight;                        // < 0: default
} srv_job_spec;

// Defaults: nothing set (the trainer's defaults apply).
void srv_job_spec_init(srv_job_spec *s);
// Reads the "hyperparameters" object into s (strings borrowed from hp):
// known keys only, each of its type and range. 0, or -1 with *msg (malloc'd)
// naming the key and *param ("hyperparameters.<key>", static).
int srv_jobs_hparams_parse(const json_t *hp, srv_job_spec *s, char **msg, const char **param);

// Creates a job from spec: resolves the files (404 unknown), checks the
// output model (409 exists without replace), the base model (404 not
// loaded, 400 other task), limits (max_job_steps 400, max_queued_jobs 503),
// the dataset's format (eng_train_check: 400 with the trainer's message),
// then persists and queues it. Returns SRV_OK with *job (new reference: the
// job object), or an error with *msg (malloc'd) and *param (static or NULL).
srv_err srv_jobs_create(const srv_job_spec *spec, json_t **job, char **msg, const char **param);
// The job object, or NULL (unknown id).
json_t *srv_jobs_get(const char *id);
// Jobs newest first: at most `limit` after the job `after` (NULL: from the
// newest). NULL when `after` is unknown. *has_more says whether more follow.
json_t *srv_jobs_list(const char *after, int limit, int *has_more);
// Cancels a queued or running job (a running one stops at its next step).
// SRV_OK with *job, SRV_E_NOT_FOUND, or SRV_E_CONFLICT (409) with *job when
// it has finished already.
srv_err srv_jobs_cancel(const char *id, json_t **job);
// Starts following a job's events on r's stream (opened by the caller,
// response queued): writes the history, then every new event; the final
// state ends the stream (srv_request_complete). Holds a reference on r.
// SRV_OK, or SRV_E_NOT_FOUND.
srv_err srv_jobs_follow(const char *id, srv_request *r);
// The loss plot of a job (train and validation loss by step), PNG w x h.
// SRV_OK with *png (malloc'd), SRV_E_NOT_FOUND, or SRV_E_INTERNAL with *msg.
srv_err srv_jobs_plot(const char *id, int w, int h, uint8_t **png, size_t *len, char **msg);
// The result image of a succeeded image-stylization-optimize job (PNG).
// SRV_OK with *png (malloc'd), SRV_E_NOT_FOUND (no job, or not an image
// job: *msg says which), or SRV_E_CONFLICT (not succeeded yet) with *msg.
srv_err srv_jobs_result(const char *id, uint8_t **png, size_t *len, char **msg);
// 1 if id has the shape of a job id ("job-" + 24 lowercase hex digits).
int srv_jobs_valid_id(const char *id);

#endif
