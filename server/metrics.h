// metrics.h — process-wide Prometheus metrics. Thread-safe (one mutex; the
// update functions are cheap and never allocate after a label set is first seen).
// Exposed names:
//   inferd_requests_total{endpoint,model,status}            counter
//   inferd_request_duration_seconds{endpoint}               histogram (buckets 0.001 .. 10 s)
//   inferd_queue_depth{model}                               gauge
//   inferd_batch_size{model}                                histogram (buckets 1,2,4,...,256)
//   inferd_tokens_generated_total{model}                    counter
//   inferd_models_loaded                                    gauge (0 until set)
//   inferd_training_jobs{status}                            gauge
//   process_resident_memory_bytes                           gauge (read from /proc/self/statm at render)
//
// Label sets live in small arrays searched linearly. Each metric family keeps
// at most SRV_METRICS_MAX_SERIES label sets; past that, new label sets are
// counted under one set whose every label is "_other", so a flood of distinct
// endpoints or model names cannot grow memory without bound. If memory runs
// out, the sample is dropped: metrics never fail a request.
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#define SRV_METRICS_MAX_SERIES 512

// Clears every metric (the functions below also work without it).
void srv_metrics_init(void);
// Frees everything; metrics may be used again afterwards (they start empty).
void srv_metrics_free(void);
// model may be NULL or "" (rendered as model=""). endpoint like "/v1/classifications".
// seconds < 0 or NaN counts as 0.
void srv_metrics_request(const char *endpoint, const char *model, int status, double seconds);
// One batch of batch_size requests (ignored if batch_size < 1).
void srv_metrics_batch(const char *model, int batch_size);
void srv_metrics_queue_depth(const char *model, int depth);
// Adds n generated tokens (ignored if n < 0: counters never go down).
void srv_metrics_tokens(const char *model, long n);
void srv_metrics_models_loaded(int n);
// Sets the number of jobs in one status ("queued", "running", ...).
void srv_metrics_training_jobs(const char *status, int n);
// Renders everything in the Prometheus text exposition format (version 0.0.4)
// with # HELP / # TYPE lines, once per family. Returns a malloc'd string
// (NULL only if out of memory).
char *srv_metrics_render(void);

#endif
