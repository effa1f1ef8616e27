// job_stylize.h — the jobs API's image-stylization-optimize task: `inferd
// stylize` (engine/train/stylize.h) as a job. Its hyperparameters name two
// uploaded images (style_file, content_file: ids from POST /v1/files) and
// the optimisation's settings; it makes an image, not a model: result.png in
// the job's directory, served at GET /v1/jobs/{id}/result.png. server/jobs.c
// queues, runs, reports and persists it like any job.
#ifndef SRV_JOB_STYLIZE_H
#define SRV_JOB_STYLIZE_H
#include "engine/train/stylize.h"   // eng_stylize_progress
#include "server/errors.h"          // srv_err

#define SRV_TASK_STYLIZE_OPTIMIZE "image-stylization-optimize"

// 1 if task names this task.
int srv_job_is_stylize(const char *task);
// Checks a request of this task on the HTTP thread: both files uploaded
// (404), both decodable PNG/JPEG images within max_pixels and big enough
// (400/413/415 naming hyperparameters.style_file or .content_file).
// SRV_OK, or an error with *msg (malloc'd) and *param (static).
// size: the longest side the images are shrunk to (0: ENG_STYLIZE_DEFAULT_SIZE).
// max_bytes bounds the optimisation's memory (ENG_STYLIZE_BYTES_PER_PIXEL a
// pixel of the result or the style image): more is 400 naming hyperparameters.size.
srv_err srv_job_stylize_check(const char *style_file, const char *content_file, int size, long long max_pixels,
                              long long max_bytes, char **msg, const char **param);
// Runs the optimisation with o (steps, weights, progress, cancel flag set by
// the caller) and writes <dir>/result.png atomically. 0, or -1 with *err
// ("cancelled" when o->cancel stopped it).
int srv_job_stylize_run(const char *style_file, const char *content_file, int size, const eng_stylize_opts *o,
                        const char *dir, long long max_pixels, char **err);

#endif
