// jobs.c — training jobs: the table, its files, the training pool and the
// event followers (see jobs.h for the layout on disk and the threads).
//
// Lock order: mu (the table) → a stream's own lock (srv_stream_write). The
// per-job `io` lock orders a job's file writes and is never taken with mu held.
#include "server/jobs.h"
#include <cblas.h>            // openblas_set_num_threads
#include <dirent.h>           // opendir
#include <errno.h>            // errno, EXDEV
#include <fcntl.h>            // open
#include <math.h>             // NAN, isfinite
#include <pthread.h>          // pthread_*
#include <sched.h>            // sched_getaffinity, cpu_set_t
#include <stdio.h>            // snprintf, FILE
#include <stdlib.h>           // malloc, free
#include <string.h>           // strcmp, strerror
#include <sys/random.h>       // getrandom
#include <sys/resource.h>     // setpriority
#include <sys/stat.h>         // mkdir, stat
#include <time.h>             // time
#include <unistd.h>           // write, close, fsync, gettid
#include "engine/arch/model.h"     // eng_task_parse
#include "engine/core/util.h"      // eng_errorf, eng_read_file, eng_write_file_atomic
#include "engine/io/image.h"       // ENG_IMG_BYTES_PER_PIXEL
#include "engine/io/plot.h"        // eng_plot_png
#include "engine/train/train.h"    // eng_train, eng_train_check
#include "server/files.h"          // srv_files_path
#include "server/job_stylize.h"    // srv_job_stylize_*
#include "server/log.h"            // log_*
#include "server/metrics.h"        // srv_metrics_training_jobs
#include "server/registry.h"       // srv_registry_load, srv_registry_get, srv_registry_valid_id
#include "server/stream.h"         // srv_stream_write

// ---------------------------------------------------------------- the table
typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED, JOB__COUNT } job_status;
static const char *const status_names[] = {"queued", "running", "succeeded", "failed", "cancelled"};
_Static_assert(sizeof status_names / sizeof status_names[0] == JOB__COUNT, "one name per job status");

typedef struct {
    float *x, *y;              // [n] step, loss
    int n, cap;
} curve;

typedef struct job {
    char id[32];               // "job-" + 24 hex
    char dir[4096];            // <data_dir>/jobs/<id>
    json_t *req;               // the accepted request: task, arch, files, hyperparameters, ... (owned)
    srv_job_spec spec;         // parsed from req (strings borrowed from it)
    job_status status;
    int step, total_steps, epoch;
    double loss, val_loss, val_accuracy, lr, examples_per_s, eta_s;   // NAN until reported
    long created_at, started_at, finished_at;   // unix seconds; 0 = not yet
    char *error;               // failed: what went wrong (owned)
    volatile int cancel;       // the trainer's flag
    int cancel_by_user;        // 1: POST .../cancel (else a stopping daemon or a limit)
    char *limit_error;         // set with cancel when a limit stopped it (owned)
    json_t *events;            // every event so far, for late followers (owned array)
    curve train, val;          // the loss plot's points
    srv_request **followers;   // SSE clients (each holds a request reference)
    int n_followers, cap_followers;
    pthread_mutex_t io;        // orders this job's file writes
    long seq, seq_written;     // job.json snapshots: taken / last written (under io)
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static job **jobs;             // creation order
static int n_jobs, cap_jobs;
static pthread_t *pool;
static int n_pool;
static int stopping, started;
static char jobs_dir[4000], models_dir[4000];   // shorter than a job's dir (4096)
static int max_queued, max_steps, train_threads;
static long long max_image_pixels;      // image jobs decode at most this many pixels
static long long max_job_image_bytes;   // and optimise at most this much memory

int srv_jobs_valid_id(const char *id) {
    if (!id || strncmp(id, "job-", 4) != 0 || strlen(id) != 28) return 0;
    for (int i = 4; i < 28; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 0;
    return 1;
}

static job *find_locked(const char *id) {
    if (!srv_jobs_valid_id(id)) return NULL;
    for (int i = 0; i < n_jobs; i++)
        if (strcmp(jobs[i]->id, id) == 0) return jobs[i];
    return NULL;
}

static void curve_push(curve *c, float x, float y) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 64;
        float *nx = realloc(c->x, (size_t)cap * sizeof *nx), *ny = nx ? realloc(c->y, (size_t)cap * sizeof *ny) : NULL;
        if (nx) c->x = nx;
        if (!nx || !ny) return;   // out of memory: the plot misses a point
        c->y = ny;
        c->cap = cap;
    }
    c->x[c->n] = x;
    c->y[c->n++] = y;
}

static void job_free(job *j) {
    if (!j) return;
    json_decref(j->req);
    json_decref(j->events);
    free(j->error); free(j->limit_error);
    free(j->train.x); free(j->train.y); free(j->val.x); free(j->val.y);
    free(j->followers);
    pthread_mutex_destroy(&j->io);
    free(j);
}

static job *job_new(void) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->loss = j->val_loss = j->val_accuracy = j->lr = j->examples_per_s = j->eta_s = NAN;
    j->events = json_array();
    pthread_mutex_init(&j->io, NULL);
    if (!j->events) { job_free(j); return NULL; }
    return j;
}

static void update_metrics_locked(void) {
    int count[JOB__COUNT] = {0};
    for (int i = 0; i < n_jobs; i++) count[jobs[i]->status]++;
    for (int s = 0; s < JOB__COUNT; s++) srv_metrics_training_jobs(status_names[s], count[s]);
}

// ---------------------------------------------------------------- hyperparameters
#define HP(key, type, lo, hi, field) {"hyperparameters." key, type, lo, hi, offsetof(srv_job_spec, field)}
typedef struct {
    const char *param;         // "hyperparameters.<key>": the error's param; the key is param + 16
    char type;                 // 'i' int, 'L' long long, 'n' double, 'b' bool (int), 's' string
    double min, max;           // inclusive range; string length for 's'
    size_t off;                // offsetof(srv_job_spec, field)
} hparam;
static const hparam hparams[] = {
    HP("steps", 'i', 1, 100000000, steps),
    HP("epochs", 'i', 1, 100000, epochs),
    HP("batch_size", 'i', 1, 65536, batch_size),
    HP("learning_rate", 'n', 1e-9, 10, learning_rate),
    HP("weight_decay", 'n', 0, 1, weight_decay),
    HP("seed", 'L', 0, 9007199254740991.0, seed),
    HP("log_every", 'i', 1, 100000000, log_every),
    HP("checkpoint_every", 'i', 1, 100000000, checkpoint_every),
    HP("augment", 'b', 0, 1, augment),
    HP("balance", 'b', 0, 1, balance),
    HP("dim", 'i', 1, 8192, dim),
    HP("layers", 'i', 1, 256, layers),
    HP("heads", 'i', 1, 256, heads),
    HP("context_len", 'i', 2, 65536, context_len),
    HP("buckets", 'i', 1, 1 << 26, buckets),
    HP("minn", 'i', 1, 16, minn),
    HP("maxn", 'i', 1, 16, maxn),
    HP("labels", 's', 1, 65536, labels),
    HP("sample_prompt", 's', 1, 4096, sample_prompt),
    HP("style_file", 's', 1, 64, style_file),
    HP("content_file", 's', 1, 64, content_file),
    HP("size", 'i', ENG_LOSSNET_MIN_SIDE, ENG_STYLIZE_MAX_SIDE, size),
    HP("style_weight", 'n', 0, 1e6, style_weight),
    HP("content_weight", 'n', 0, 1e6, content_weight),
    HP("tv_weight", 'n', 0, 1e6, tv_weight),
    HP("width", 'n', 1.0 / 32, 4, width),
    HP("structure_weight", 'n', 0, 1e6, structure_weight),
};
#define N_HPARAMS ((int)(sizeof hparams / sizeof hparams[0]))

void srv_job_spec_init(srv_job_spec *s) {
    memset(s, 0, sizeof *s);
    s->augment = s->balance = -1;
    s->learning_rate = s->weight_decay = -1;
    s->seed = -1;
    s->style_weight = s->content_weight = s->tv_weight = -1;
    s->width = s->structure_weight = -1;
}

int srv_jobs_hparams_parse(const json_t *hp, srv_job_spec *s, char **msg, const char **param) {
    if (!hp || json_is_null(hp)) return 0;
    if (!json_is_object(hp)) { *param = "hyperparameters"; return eng_errorf(msg, "hyperparameters must be an object"); }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)hp, key, v) {
        const hparam *h = NULL;
        for (int i = 0; i < N_HPARAMS && !h; i++)
            if (strcmp(hparams[i].param + 16, key) == 0) h = &hparams[i];
        if (!h) {
            *param = "hyperparameters";
            return eng_errorf(msg, "unknown hyperparameter \"%.64s\" (known: steps, epochs, batch_size, learning_rate, "
                              "weight_decay, seed, log_every, checkpoint_every, augment, balance, dim, layers, heads, context_len, "
                              "buckets, minn, maxn, labels, sample_prompt, style_file, content_file, size, style_weight, "
                              "content_weight, tv_weight, width, structure_weight)", key);
        }
        void *field = (char *)s + h->off;
        *param = h->param;
        const char *name = h->param + 16;
        if (json_is_null(v)) continue;   // null: the default
        switch (h->type) {
        case 'i': case 'L':
            if (!json_is_integer(v) || json_integer_value(v) < h->min || (double)json_integer_value(v) > h->max)
                return eng_errorf(msg, "hyperparameters.%s must be an integer in [%.0f, %.0f]", name, h->min, h->max);
            if (h->type == 'i') *(int *)field = (int)json_integer_value(v);
            else *(long long *)field = json_integer_value(v);
            break;
        case 'n':
            if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < h->min || json_number_value(v) > h->max)
                return eng_errorf(msg, "hyperparameters.%s must be a number in [%g, %g]", name, h->min, h->max);
            *(double *)field = json_number_value(v);
            break;
        case 'b':
            if (!json_is_boolean(v)) return eng_errorf(msg, "hyperparameters.%s must be true or false", name);
            *(int *)field = json_is_true(v);
            break;
        case 's':
            if (!json_is_string(v) || json_string_length(v) < h->min || json_string_length(v) > h->max)
                return eng_errorf(msg, "hyperparameters.%s must be a string of %.0f to %.0f bytes", name, h->min, h->max);
            *(const char **)field = json_string_value(v);
            break;
        }
    }
    *param = NULL;
    return 0;
}

// The trainer's options for a job (paths filled by the caller).
static void fill_opts(const srv_job_spec *s, eng_train_opts *o) {
    eng_train_opts_init(o);
    o->task = s->task;
    o->arch = s->arch;
    if (s->steps) o->steps = s->steps;
    if (s->epochs) o->epochs = s->epochs;
    if (s->batch_size) o->batch_size = s->batch_size;
    if (s->learning_rate > 0) o->lr = (float)s->learning_rate;
    else if (strcmp(s->task, "text-classification") == 0) o->lr = 0.5f;   // SGD, as `inferd train` does
    else if (strcmp(s->task, "image-generation") == 0) o->lr = 2e-4f;     // DCGAN's Adam rate, as `inferd train` does
    if (s->weight_decay >= 0) o->weight_decay = (float)s->weight_decay;
    if (s->seed >= 0) o->seed = (uint64_t)s->seed;
    // a job's events are its progress: by default about 50 of them
    o->log_every = s->log_every ? s->log_every : s->steps ? (s->steps / 50 > 0 ? s->steps / 50 : 1) : 10;
    o->checkpoint_every = s->checkpoint_every;
    if (s->augment >= 0) o->augment = s->augment;
    if (s->balance >= 0) o->balance = s->balance;
    o->dim = s->dim; o->n_layers = s->layers; o->n_heads = s->heads; o->context_len = s->context_len;
    o->buckets = s->buckets; o->minn = s->minn; o->maxn = s->maxn;
    o->labels = s->labels;
    o->sample_prompt = s->sample_prompt;
    if (strcmp(s->task, "image-stylization") == 0) {   // a style network: `inferd train`'s defaults and options
        if (!(s->learning_rate > 0)) o->lr = 1e-3f;
        if (!s->batch_size) o->batch_size = 4;
        o->image_size = s->size;
        if (s->width > 0) o->net_width = (float)s->width;
        if (s->style_weight > 0) o->style_weight = (float)s->style_weight;
        if (s->content_weight > 0) o->content_weight = (float)s->content_weight;
        if (s->structure_weight >= 0) o->structure_weight = (float)s->structure_weight;
    }
}

// The spec of an accepted request (strings borrowed from req). 0 or -1.
static int spec_from_request(const json_t *req, srv_job_spec *s, char **msg) {
    srv_job_spec_init(s);
    const char *param;
    s->task = json_string_value(json_object_get(req, "task"));
    s->arch = json_string_value(json_object_get(req, "arch"));
    s->training_file = json_string_value(json_object_get(req, "training_file"));
    s->validation_file = json_string_value(json_object_get(req, "validation_file"));
    s->base_model = json_string_value(json_object_get(req, "base_model"));
    s->output_model = json_string_value(json_object_get(req, "output_model"));
    s->replace = json_is_true(json_object_get(req, "replace"));
    s->hyperparameters = json_object_get(req, "hyperparameters");
    if (!s->task) return eng_errorf(msg, "job request lacks a task");
    if (!srv_job_is_stylize(s->task) && (!s->training_file || !s->output_model || !srv_registry_valid_id(s->output_model)))
        return eng_errorf(msg, "job request lacks training_file or a valid output_model");
    return srv_jobs_hparams_parse(s->hyperparameters, s, msg, &param);
}

// The request as kept in job.json (new reference).
static json_t *request_json(const srv_job_spec *s) {
    json_t *hp = s->hyperparameters && json_is_object(s->hyperparameters) ? json_deep_copy(s->hyperparameters) : json_object();
    return json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:b, s:o}", "task", s->task, "arch", s->arch,
                     "training_file", s->training_file, "validation_file", s->validation_file,
                     "base_model", s->base_model, "output_model", s->output_model, "replace", s->replace,
                     "hyperparameters", hp);
}

// ---------------------------------------------------------------- the job object and its files
static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static json_t *time_or_null(long t) { return t ? json_integer(t) : json_null(); }

// The job object of API.md (new reference). Under mu.
static json_t *job_json_locked(const job *j) {
    json_t *o = json_object();
    json_t *req = j->req;
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "object", json_string("training.job"));
    json_object_set_new(o, "status", json_string(status_names[j->status]));
    const char *copy[] = {"task", "arch", "base_model", "training_file", "validation_file", "hyperparameters", "output_model"};
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        json_t *v = json_object_get(req, copy[i]);
        json_object_set_new(o, copy[i], v ? json_deep_copy(v) : json_null());
    }
    json_object_set_new(o, "step", json_integer(j->step));
    json_object_set_new(o, "total_steps", j->total_steps ? json_integer(j->total_steps) : j->spec.steps ? json_integer(j->spec.steps) : json_null());
    json_object_set_new(o, "epoch", j->epoch ? json_integer(j->epoch) : json_null());
    json_object_set_new(o, "loss", num_or_null(j->loss));
    json_object_set_new(o, "val_loss", num_or_null(j->val_loss));
    json_t *m = json_object();
    if (isfinite(j->val_accuracy)) json_object_set_new(m, "val_accuracy", json_real(j->val_accuracy));
    if (isfinite(j->lr)) json_object_set_new(m, "learning_rate", json_real(j->lr));
    json_object_set_new(o, "metrics", m);
    json_object_set_new(o, "examples_per_s", num_or_null(j->examples_per_s));
    json_object_set_new(o, "eta_seconds", j->status == JOB_RUNNING ? num_or_null(j->eta_s) : j->status == JOB_QUEUED ? json_null() : json_integer(0));
    json_object_set_new(o, "created_at", time_or_null(j->created_at));
    json_object_set_new(o, "started_at", time_or_null(j->started_at));
    json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
    if (srv_job_is_stylize(j->spec.task)) {   // an image, not a model
        char url[64];
        snprintf(url, sizeof url, "/v1/jobs/%s/result.png", j->id);
        json_object_set_new(o, "result", j->status == JOB_SUCCEEDED ? json_string(url) : json_null());
    }
    json_object_set_new(o, "error", j->error ? json_pack("{s:s,s:s}", "code", j->status == JOB_CANCELLED ? "cancelled" : "training_failed",
                                                          "message", j->error) : json_null());
    return o;
}

// job.json = the job object + the request it came from; a snapshot taken
// under mu, written after it (write_snapshot) in snapshot order.
typedef struct { job *j; long seq; char *text; } snapshot;

static snapshot snapshot_locked(job *j) {
    json_t *o = job_json_locked(j);
    json_object_set(o, "request", j->req);
    snapshot s = {j, ++j->seq, json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER)};
    json_decref(o);
    return s;
}

static void write_snapshot(snapshot s) {
    if (!s.text) { log_error("job %s: out of memory writing job.json", s.j->id); return; }
    pthread_mutex_lock(&s.j->io);
    if (s.seq > s.j->seq_written) {   // a later snapshot may have been written first
        char path[4200], *err = NULL;
        snprintf(path, sizeof path, "%s/job.json", s.j->dir);
        if (eng_write_file_atomic(path, s.text, strlen(s.text), &err) != 0) {
            log_error("job %s: %s", s.j->id, err);
            free(err);
        } else s.j->seq_written = s.seq;
    }
    pthread_mutex_unlock(&s.j->io);
    free(s.text);
}

// Appends one line to events.jsonl (failures are logged: the job goes on).
static void append_event_file(job *j, const char *line) {
    char path[4200];
    snprintf(path, sizeof path, "%s/events.jsonl", j->dir);
    pthread_mutex_lock(&j->io);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    size_t n = strlen(line);
    int ok = fd >= 0 && write(fd, line, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    if (!ok) log_warn("job %s: cannot append to %s: %s", j->id, path, strerror(errno));
    if (fd >= 0) close(fd);
    pthread_mutex_unlock(&j->io);
}

// ---------------------------------------------------------------- events and followers
// SSE frame of event number n: "id: n\ndata: <json>\n\n" (malloc'd).
static char *sse_frame(long n, const char *json) {
    char *s = NULL;
    if (asprintf(&s, "id: %ld\ndata: %s\n\n", n, json) < 0) return NULL;
    return s;
}

static void drop_follower_locked(job *j, int i) {
    srv_request_unref(j->followers[i]);
    j->followers[i] = j->followers[--j->n_followers];
}

static int is_final(job_status s) { return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED; }

// Records an event (history, followers) and returns its JSON line
// (malloc'd, for events.jsonl) or NULL. Under mu. A final status event ends
// every follower's stream.
static char *emit_locked(job *j, json_t *ev) {
    long n = (long)json_array_size(j->events);
    json_object_set_new(ev, "seq", json_integer(n));
    char *line = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_array_append_new(j->events, ev);
    if (!line) return NULL;
    char *frame = sse_frame(n, line);
    int final = is_final(j->status) && strcmp(json_string_value(json_object_get(ev, "type")), "status") == 0;
    for (int i = j->n_followers - 1; i >= 0; i--) {
        srv_request *r = j->followers[i];
        if (!frame || srv_stream_write(r->stream, frame, strlen(frame)) != 0) { drop_follower_locked(j, i); continue; }
        if (final) {
            srv_request_complete(r);   // ends the stream after what was written
            drop_follower_locked(j, i);
        }
    }
    free(frame);
    return line;
}

// A status event: {"type":"status","status":…,"step":…,"error":…}.
static json_t *status_event_locked(const job *j) {
    json_t *ev = json_pack("{s:s,s:s,s:I,s:i}", "type", "status", "status", status_names[j->status],
                           "created_at", (json_int_t)time(NULL), "step", j->step);
    if (j->total_steps) json_object_set_new(ev, "total_steps", json_integer(j->total_steps));
    if (j->error) json_object_set_new(ev, "error", json_string(j->error));
    if (j->status == JOB_SUCCEEDED && srv_job_is_stylize(j->spec.task)) {
        char url[64];
        snprintf(url, sizeof url, "/v1/jobs/%s/result.png", j->id);
        json_object_set_new(ev, "result", json_string(url));
    } else if (j->status == JOB_SUCCEEDED)
        json_object_set_new(ev, "output_model", json_deep_copy(json_object_get(j->req, "output_model")));
    return ev;
}

// Sets j's status and records it: event + job.json. Takes and releases mu.
static void set_status(job *j, job_status st, const char *error) {
    pthread_mutex_lock(&mu);
    j->status = st;
    if (error) { free(j->error); j->error = strdup(error); }
    long now = (long)time(NULL);
    if (st == JOB_RUNNING && !j->started_at) j->started_at = now;
    if (is_final(st)) j->finished_at = now;
    char *line = emit_locked(j, status_event_locked(j));
    snapshot s = snapshot_locked(j);
    update_metrics_locked();
    pthread_mutex_unlock(&mu);
    if (line) append_event_file(j, line);
    free(line);
    write_snapshot(s);
}

// The trainer's progress callback (the pool thread).
static void on_progress(void *ctx, const eng_train_progress *p) {
    job *j = ctx;
    pthread_mutex_lock(&mu);
    j->step = p->step;
    j->total_steps = p->total_steps;
    if (p->epoch > 0) j->epoch = p->epoch;
    json_t *ev = json_pack("{s:s,s:i,s:i,s:I}", "type", "progress", "step", p->step, "total_steps", p->total_steps,
                           "created_at", (json_int_t)time(NULL));
    if (p->loss >= 0) {   // a training report (loss < 0: a final evaluation only)
        j->loss = p->loss;
        j->lr = p->lr;
        j->examples_per_s = p->examples_per_s;
        j->eta_s = p->eta_s;
        curve_push(&j->train, (float)p->step, p->loss);
        json_object_set_new(ev, "epoch", json_integer(p->epoch));
        json_object_set_new(ev, "loss", json_real(p->loss));
        json_object_set_new(ev, "learning_rate", json_real(p->lr));
        json_object_set_new(ev, "examples_per_s", json_real(p->examples_per_s));
        json_object_set_new(ev, "eta_seconds", json_real(p->eta_s));
    }
    if (p->val_loss >= 0) {
        j->val_loss = p->val_loss;
        curve_push(&j->val, (float)p->step, p->val_loss);
        json_object_set_new(ev, "val_loss", json_real(p->val_loss));
    }
    if (p->val_accuracy >= 0) {
        j->val_accuracy = p->val_accuracy;
        json_object_set_new(ev, "val_accuracy", json_real(p->val_accuracy));
    }
    if (p->total_steps > max_steps && !j->cancel) {   // epochs made more steps than the limit
        if (asprintf(&j->limit_error, "the job would take %d steps; max_job_steps is %d (give fewer epochs or steps)",
                     p->total_steps, max_steps) < 0) j->limit_error = NULL;
        j->cancel = 1;
    }
    char *line = emit_locked(j, ev);
    snapshot s = snapshot_locked(j);
    pthread_mutex_unlock(&mu);
    if (line) append_event_file(j, line);
    free(line);
    write_snapshot(s);
}

// The optimiser's progress callback for image-stylization-optimize jobs.
static void on_stylize_progress(void *ctx, const eng_stylize_progress *p) {
    job *j = ctx;
    double eta = p->step > 0 ? p->elapsed_s / p->step * (p->total_steps - p->step) : NAN;
    pthread_mutex_lock(&mu);
    j->step = p->step;
    j->total_steps = p->total_steps;
    j->loss = p->loss;
    j->eta_s = eta;
    j->examples_per_s = p->elapsed_s > 0 ? p->step / p->elapsed_s : NAN;   // steps per second
    curve_push(&j->train, (float)p->step, p->loss);
    json_t *ev = json_pack("{s:s,s:i,s:i,s:I,s:f,s:f,s:f,s:f,s:f}", "type", "progress", "step", p->step,
                           "total_steps", p->total_steps, "created_at", (json_int_t)time(NULL), "loss", (double)p->loss,
                           "content_loss", (double)p->content, "style_loss", (double)p->style,
                           "elapsed_seconds", p->elapsed_s, "eta_seconds", isfinite(eta) ? eta : 0.0);
    char *line = ev ? emit_locked(j, ev) : NULL;
    snapshot s = snapshot_locked(j);
    pthread_mutex_unlock(&mu);
    if (line) append_event_file(j, line);
    free(line);
    write_snapshot(s);
}

srv_err srv_jobs_follow(const char *id, srv_request *r) {
    pthread_mutex_lock(&mu);
    job *j = find_locked(id);
    if (!j) { pthread_mutex_unlock(&mu); return SRV_E_NOT_FOUND; }
    // the history first, then live events (same lock: nothing in between is lost)
    size_t n = json_array_size(j->events);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        char *line = json_dumps(json_array_get(j->events, i), JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *frame = line ? sse_frame((long)i, line) : NULL;
        ok = frame && srv_stream_write(r->stream, frame, strlen(frame)) == 0;
        free(line); free(frame);
    }
    if (!ok || is_final(j->status) || stopping) {
        srv_request_complete(r);   // finished (or the client is gone): the stream ends here
        pthread_mutex_unlock(&mu);
        return SRV_OK;
    }
    if (j->n_followers == j->cap_followers) {
        int cap = j->cap_followers ? j->cap_followers * 2 : 4;
        srv_request **nf = realloc(j->followers, (size_t)cap * sizeof *nf);
        if (!nf) { srv_request_complete(r); pthread_mutex_unlock(&mu); return SRV_OK; }
        j->followers = nf;
        j->cap_followers = cap;
    }
    srv_request_ref(r);
    j->followers[j->n_followers++] = r;
    pthread_mutex_unlock(&mu);
    return SRV_OK;
}

// ---------------------------------------------------------------- installing the model
static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

// rm -r of a flat directory (model directories have no subdirectories).
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4600];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0 && errno == EISDIR) remove_dir(path);
    }
    closedir(d);
    rmdir(dir);
}

// Copies the regular files of src into the new directory dst (a model
// directory across file systems). 0 or -1 with *err.
static int copy_dir(const char *src, const char *dst, char **err) {
    if (mkdir(dst, 0755) != 0) return eng_errorf(err, "mkdir %s: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return eng_errorf(err, "%s: %s", src, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        char from[4600], to[4600];
        struct stat st;
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        if (de->d_name[0] == '.' || stat(from, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        snprintf(to, sizeof to, "%s/%s", dst, de->d_name);
        size_t len;
        char *data = eng_read_file(from, &len, err);
        if (!data) { rc = -1; break; }
        rc = eng_write_file_atomic(to, data, len, err);
        free(data);
    }
    closedir(d);
    return rc;
}

// Appends the job's settings and final metrics to the model's README.md.
static void readme_append(job *j, const char *dir) {
    char path[4400];
    snprintf(path, sizeof path, "%s/README.md", dir);
    pthread_mutex_lock(&mu);
    char *hp = json_dumps(json_object_get(j->req, "hyperparameters"), JSON_COMPACT | JSON_SORT_KEYS);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    fprintf(f, "\n## Training job\n\nTrained by inferd's jobs API: job `%s`, task `%s`, arch `%s`, training file `%s`, "
            "validation file `%s`, base model `%s`.\n\nHyperparameters: `%s`\n\nFinal: step %d of %d",
            j->id, j->spec.task, j->spec.arch ? j->spec.arch : "(default)", j->spec.training_file,
            j->spec.validation_file ? j->spec.validation_file : "(none: held out from the training data)",
            j->spec.base_model ? j->spec.base_model : "(none)", hp ? hp : "{}", j->step, j->total_steps);
    if (isfinite(j->loss)) fprintf(f, ", training loss %.4f", j->loss);
    if (isfinite(j->val_loss)) fprintf(f, ", validation loss %.4f", j->val_loss);
    if (isfinite(j->val_accuracy)) fprintf(f, ", validation accuracy %.2f%%", 100 * j->val_accuracy);
    fprintf(f, ".\n");
    fclose(f);
    pthread_mutex_unlock(&mu);
    free(hp);
    int fd = text ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) log_warn("job %s: cannot write %s: %s", j->id, path, strerror(errno));
    if (fd >= 0) close(fd);
    free(text);
}

// 1 if the model directory's README names job `id`: this job installed it
// before a crash kept it from recording its success, so it may replace it.
static int installed_by(const char *dir, const char *id) {
    char path[4400];
    snprintf(path, sizeof path, "%s/README.md", dir);
    size_t len;
    char *err = NULL, *text = eng_read_file(path, &len, &err);
    free(err);
    int mine = text && strstr(text, id) != NULL;
    free(text);
    return mine;
}

// Moves the trained model from the job's staging directory to
// <models>/<output_model> (replacing an older one when the request allowed
// it) and loads it. 0 or -1 with *err.
static int install_model(job *j, char **err) {
    const char *out = j->spec.output_model;
    char staging[4200], tmp[4300], old[4300], dest[4300];
    snprintf(staging, sizeof staging, "%s/model", j->dir);
    snprintf(tmp, sizeof tmp, "%s/.%s.%s", models_dir, out, j->id);
    snprintf(old, sizeof old, "%s/.%s.%s.old", models_dir, out, j->id);
    snprintf(dest, sizeof dest, "%s/%s", models_dir, out);
    readme_append(j, staging);
    remove_dir(tmp);   // left by a crash during an earlier attempt
    if (rename(staging, tmp) != 0) {
        if (errno != EXDEV) return eng_errorf(err, "moving the model to %s: %s", tmp, strerror(errno));
        if (copy_dir(staging, tmp, err) != 0) { remove_dir(tmp); return -1; }
        remove_dir(staging);   // copied across file systems
    }
    struct stat st;
    int exists = stat(dest, &st) == 0;
    if (exists && !j->spec.replace && !installed_by(dest, j->id)) {
        remove_dir(tmp);
        return eng_errorf(err, "model directory %s appeared while the job ran; the request did not ask to replace it", out);
    }
    if (exists && rename(dest, old) != 0) { remove_dir(tmp); return eng_errorf(err, "replacing %s: %s", dest, strerror(errno)); }
    if (rename(tmp, dest) != 0) {
        int e = errno;
        if (exists) rename(old, dest);
        remove_dir(tmp);
        return eng_errorf(err, "installing the model as %s: %s", dest, strerror(e));
    }
    fsync_dir(models_dir);
    if (exists) remove_dir(old);
    int replaced = 0;
    if (srv_registry_load(out, out, &replaced, err) != 0) return -1;
    log_info("job %s: model %s %s and loaded", j->id, out, replaced ? "replaced" : "installed");
    return 0;
}

// ---------------------------------------------------------------- the pool
// An image-stylization-optimize job: no checkpoint (a restart starts it
// again), no model; the image lands in the job's directory.
static void run_stylize_job(job *j) {
    const srv_job_spec *s = &j->spec;
    eng_stylize_opts o;
    eng_stylize_opts_init(&o);
    if (s->steps > 0) o.steps = s->steps;
    if (s->learning_rate > 0) o.lr = (float)s->learning_rate;
    if (s->seed >= 0) o.seed = (uint64_t)s->seed;
    if (s->style_weight >= 0) o.weights.style_weight = (float)s->style_weight;
    if (s->content_weight >= 0) o.weights.content_weight = (float)s->content_weight;
    if (s->tv_weight >= 0) o.weights.tv_weight = (float)s->tv_weight;
    // a job's events are its progress: by default about 50 of them
    o.log_every = s->log_every ? s->log_every : (o.steps / 50 > 0 ? o.steps / 50 : 1);
    o.cancel = &j->cancel;
    o.progress = on_stylize_progress;
    o.progress_ctx = j;
    char *err = NULL;
    log_info("job %s: stylizing %s in the style of %s", j->id, s->content_file, s->style_file);
    if (srv_job_stylize_run(s->style_file, s->content_file, s->size, &o, j->dir, max_image_pixels, &err) == 0) {
        set_status(j, JOB_SUCCEEDED, NULL);
        log_info("job %s: succeeded; GET /v1/jobs/%s/result.png", j->id, j->id);
        return;
    }
    pthread_mutex_lock(&mu);
    int by_user = j->cancel_by_user, shutdown = stopping && !by_user;
    pthread_mutex_unlock(&mu);
    if (shutdown) log_info("job %s: stopped at step %d for shutdown; it starts again at the next start", j->id, j->step);
    else if (by_user) set_status(j, JOB_CANCELLED, "cancelled by request");
    else {
        log_warn("job %s: failed: %s", j->id, err ? err : "unknown error");
        set_status(j, JOB_FAILED, err ? err : "unknown error");
    }
    free(err);
}

static void run_job(job *j) {
    if (srv_job_is_stylize(j->spec.task)) { run_stylize_job(j); return; }
    char *err = NULL, *data = NULL, *val = NULL, *style = NULL, base[4200] = "";
    char out[4200], ckpt[4200], command[256];
    srv_model *bm = NULL;
    eng_train_opts o;
    fill_opts(&j->spec, &o);
    data = srv_files_path(j->spec.training_file);
    if (!data) { eng_errorf(&err, "training_file %s no longer exists", j->spec.training_file); goto failed; }
    if (j->spec.style_file && !(style = srv_files_path(j->spec.style_file))) {
        eng_errorf(&err, "style_file %s no longer exists", j->spec.style_file);
        goto failed;
    }
    o.style = style;
    if (j->spec.validation_file && !(val = srv_files_path(j->spec.validation_file))) {
        eng_errorf(&err, "validation_file %s no longer exists", j->spec.validation_file);
        goto failed;
    }
    if (j->spec.base_model) {
        if (!(bm = srv_registry_get(j->spec.base_model))) {
            eng_errorf(&err, "base_model %s is not loaded any more", j->spec.base_model);
            goto failed;
        }
        snprintf(base, sizeof base, "%s/%s", models_dir, bm->path);
        o.base_model = base;
    }
    snprintf(out, sizeof out, "%s/model", j->dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", j->dir);
    snprintf(command, sizeof command, "POST /v1/jobs (%s)", j->id);
    o.data = data;
    o.val_data = val;
    o.out = out;
    o.checkpoint_path = ckpt;
    o.resume = 1;   // continues from the checkpoint when there is one (a restart)
    o.cancel = &j->cancel;
    o.progress = on_progress;
    o.progress_ctx = j;
    o.command = command;
    log_info("job %s: training %s (%s) on %s", j->id, j->spec.task, j->spec.arch ? j->spec.arch : "default arch", j->spec.training_file);
    int rc = eng_train(&o, &err);
    srv_model_unref(bm);
    bm = NULL;
    if (rc == 0) {
        free(err);
        err = NULL;
        if (install_model(j, &err) != 0) goto failed;
        set_status(j, JOB_SUCCEEDED, NULL);
        if (unlink(ckpt) != 0 && errno != ENOENT) log_warn("job %s: cannot remove %s: %s", j->id, ckpt, strerror(errno));
        log_info("job %s: succeeded; model %s is served", j->id, j->spec.output_model);
        goto done;
    }
    pthread_mutex_lock(&mu);
    int by_user = j->cancel_by_user, shutdown = stopping && !by_user && !j->limit_error;
    if (j->limit_error) { free(err); err = strdup(j->limit_error); }
    pthread_mutex_unlock(&mu);
    if (shutdown) {   // stays "running" on disk: the next start resumes it
        log_info("job %s: stopped at step %d for shutdown; it resumes at the next start", j->id, j->step);
        goto done;
    }
    if (by_user) {
        set_status(j, JOB_CANCELLED, "cancelled by request");
        log_info("job %s: cancelled at step %d", j->id, j->step);
        goto done;
    }
failed:
    srv_model_unref(bm);
    log_warn("job %s: failed: %s", j->id, err ? err : "unknown error");
    set_status(j, JOB_FAILED, err ? err : "unknown error");
done:
    free(err); free(data); free(val); free(style);
}

// The training threads' share of the machine: nice +10 (serving wins when
// both want a core) and the last train_threads CPUs of the process's set.
static void limit_this_thread(void) {
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10) != 0) log_debug("jobs: setpriority: %s", strerror(errno));
    cpu_set_t all, mine;
    if (sched_getaffinity(0, sizeof all, &all) != 0) return;
    int n = CPU_COUNT(&all);
    if (train_threads >= n) return;
    CPU_ZERO(&mine);
    int want = train_threads;
    for (int c = CPU_SETSIZE - 1; c >= 0 && want > 0; c--)
        if (CPU_ISSET(c, &all)) { CPU_SET(c, &mine); want--; }
    if (sched_setaffinity(0, sizeof mine, &mine) != 0) log_debug("jobs: sched_setaffinity: %s", strerror(errno));
}

static void *pool_main(void *arg) {
    limit_this_thread();
    pthread_mutex_lock(&mu);
    for (;;) {
        job *next = NULL;
        while (!stopping) {
            for (int i = 0; i < n_jobs && !next; i++)
                if (jobs[i]->status == JOB_QUEUED) next = jobs[i];
            if (next) break;
            pthread_cond_wait(&cv, &mu);
        }
        if (stopping) break;
        next->status = JOB_RUNNING;   // claimed; set_status records it
        pthread_mutex_unlock(&mu);
        set_status(next, JOB_RUNNING, NULL);
        run_job(next);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

// ---------------------------------------------------------------- creating jobs
// s with every `from` replaced by `to` (s is consumed; returned as is when
// from is NULL or empty, or memory runs out).
static char *replace_all(char *s, const char *from, const char *to) {
    if (!s || !from || !*from || !to) return s;
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + nf, from)) n++;
    if (!n) return s;
    char *out = malloc(strlen(s) + n * nt + 1), *o = out;
    if (!out) return s;
    const char *p = s;
    for (const char *q; (q = strstr(p, from)); p = q + nf) {
        memcpy(o, p, (size_t)(q - p)); o += q - p;
        memcpy(o, to, nt); o += nt;
    }
    strcpy(o, p);
    free(s);
    return out;
}

static int active(const job *j) { return j->status == JOB_QUEUED || j->status == JOB_RUNNING; }

static void new_id(char id[32]) {
    unsigned char b[12];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {   // no entropy yet: time and counter
        static unsigned long ctr;
        unsigned long long t = (unsigned long long)(eng_now() * 1e9) ^ ((unsigned long long)time(NULL) << 20) ^ ++ctr;
        for (int i = 0; i < 12; i++) b[i] = (unsigned char)(t >> (i % 8 * 8)) ^ (unsigned char)i;
    }
    strcpy(id, "job-");
    for (int i = 0; i < 12; i++) snprintf(id + 4 + 2 * i, 3, "%02x", b[i]);
}

srv_err srv_jobs_create(const srv_job_spec *spec, json_t **out, char **msg, const char **param) {
    *out = NULL;
    *msg = NULL;
    *param = NULL;
    if (!started) { eng_errorf(msg, "training jobs are not running on this server"); return SRV_E_UNAVAILABLE; }
    if (spec->steps > max_steps) {
        *param = "hyperparameters.steps";
        eng_errorf(msg, "hyperparameters.steps is %d; this server's max_job_steps is %d", spec->steps, max_steps);
        return SRV_E_BAD_VALUE;
    }
    // the files
    char *data = NULL, *val = NULL, *style = NULL;
    srv_err e = SRV_OK;
    srv_model *bm = NULL;
    json_t *req = NULL;
    job *j = NULL;
    if (srv_job_is_stylize(spec->task)) {   // two images, no dataset and no model
        if (!spec->steps && ENG_STYLIZE_DEFAULT_STEPS > max_steps) {
            *param = "hyperparameters.steps";
            eng_errorf(msg, "the default of %d steps is over this server's max_job_steps (%d): give fewer steps",
                       ENG_STYLIZE_DEFAULT_STEPS, max_steps);
            e = SRV_E_BAD_VALUE;
            goto done;
        }
        if ((e = srv_job_stylize_check(spec->style_file, spec->content_file, spec->size, max_image_pixels,
                                       max_job_image_bytes, msg, param)) != SRV_OK)
            goto done;
        goto table;
    }
    data = srv_files_path(spec->training_file);
    if (!data) {
        *param = "training_file";
        eng_errorf(msg, "training_file %s is not an uploaded file (GET /v1/files lists them)", spec->training_file);
        e = SRV_E_NOT_FOUND;
        goto done;
    }
    if (spec->validation_file && !(val = srv_files_path(spec->validation_file))) {
        *param = "validation_file";
        eng_errorf(msg, "validation_file %s is not an uploaded file (GET /v1/files lists them)", spec->validation_file);
        e = SRV_E_NOT_FOUND;
        goto done;
    }
    // a style network's style image (the trainer checks that it decodes)
    if (strcmp(spec->task, "image-stylization") == 0) {
        if (!spec->style_file) {
            *param = "hyperparameters.style_file";
            eng_errorf(msg, "an image-stylization job needs hyperparameters.style_file (the file id of the style image)");
            e = SRV_E_BAD_VALUE;
            goto done;
        }
        if (!(style = srv_files_path(spec->style_file))) {
            *param = "hyperparameters.style_file";
            eng_errorf(msg, "style_file %s is not an uploaded file (GET /v1/files lists them)", spec->style_file);
            e = SRV_E_NOT_FOUND;
            goto done;
        }
    }
    // the models
    char base[4200] = "", dest[4200];
    if (spec->base_model) {
        if (!(bm = srv_registry_get(spec->base_model))) {
            *param = "base_model";
            eng_errorf(msg, "base_model %s is not loaded (GET /v1/models lists the loaded ones)", spec->base_model);
            e = SRV_E_MODEL_NOT_FOUND;
            goto done;
        }
        if (strcmp(eng_task_name(bm->m->task), spec->task) != 0) {
            *param = "base_model";
            eng_errorf(msg, "base_model %s is a %s model; this job's task is %s", spec->base_model, eng_task_name(bm->m->task), spec->task);
            e = SRV_E_WRONG_TASK;
            goto done;
        }
        snprintf(base, sizeof base, "%s/%s", models_dir, bm->path);
    }
    snprintf(dest, sizeof dest, "%s/%s", models_dir, spec->output_model);
    struct stat st;
    srv_model *loaded = srv_registry_get(spec->output_model);
    int exists = loaded || stat(dest, &st) == 0;
    srv_model_unref(loaded);
    if (exists && !spec->replace) {
        *param = "output_model";
        eng_errorf(msg, "model %s already exists; send \"replace\": true to replace it when the job succeeds", spec->output_model);
        e = SRV_E_CONFLICT;
        goto done;
    }
    // the dataset's format, read once by the trainer (on this HTTP thread: it is
    // fast next to training, and the client wants the answer now)
    eng_train_opts o;
    fill_opts(spec, &o);
    o.data = data;
    o.val_data = val;
    o.out = dest;
    o.base_model = spec->base_model ? base : NULL;
    o.style = style;
    char *cerr = NULL;
    if (eng_train_check(&o, &cerr) != 0) {
        // the trainer names the file by its path: the client knows it by its id
        int of_style = style && cerr && strstr(cerr, style);
        *msg = cerr ? replace_all(replace_all(replace_all(cerr, data, spec->training_file), val, spec->validation_file),
                                  style, spec->style_file)
                    : strdup("the dataset or the options do not suit this task");
        *param = of_style ? "hyperparameters.style_file" : "training_file";
        e = SRV_E_BAD_VALUE;
        goto done;
    }
table:
    // the table
    if (!(req = request_json(spec)) || !(j = job_new())) { eng_errorf(msg, "out of memory"); e = SRV_E_UNAVAILABLE; goto done; }
    j->req = req;
    req = NULL;
    if (spec_from_request(j->req, &j->spec, msg) != 0) { e = SRV_E_INTERNAL; goto done; }
    pthread_mutex_lock(&mu);
    int queued = 0;
    for (int i = 0; i < n_jobs; i++) {
        if (jobs[i]->status == JOB_QUEUED) queued++;
        if (active(jobs[i]) && spec->output_model && jobs[i]->spec.output_model &&
            strcmp(jobs[i]->spec.output_model, spec->output_model) == 0) {
            pthread_mutex_unlock(&mu);
            *param = "output_model";
            eng_errorf(msg, "job %s is already training model %s", jobs[i]->id, spec->output_model);
            e = SRV_E_CONFLICT;
            goto done;
        }
    }
    if (stopping || queued >= max_queued) {
        pthread_mutex_unlock(&mu);
        eng_errorf(msg, stopping ? "the server is shutting down" : "%d jobs are queued (max_queued_jobs); retry later", queued);
        e = SRV_E_QUEUE_FULL;
        goto done;
    }
    if (n_jobs == cap_jobs) {
        int cap = cap_jobs ? cap_jobs * 2 : 16;
        job **nj = realloc(jobs, (size_t)cap * sizeof *nj);
        if (!nj) { pthread_mutex_unlock(&mu); eng_errorf(msg, "out of memory"); e = SRV_E_UNAVAILABLE; goto done; }
        jobs = nj;
        cap_jobs = cap;
    }
    do new_id(j->id); while (find_locked(j->id));
    snprintf(j->dir, sizeof j->dir, "%s/%s", jobs_dir, j->id);
    pthread_mutex_unlock(&mu);
    // the directory and job.json before the job is visible: a crash now leaves a whole job or none
    if (mkdir(j->dir, 0755) != 0) {
        eng_errorf(msg, "cannot create %s: %s", j->dir, strerror(errno));
        e = SRV_E_INTERNAL;
        goto done;
    }
    j->status = JOB_QUEUED;
    j->created_at = (long)time(NULL);
    pthread_mutex_lock(&mu);
    char *line = emit_locked(j, status_event_locked(j));
    snapshot s = snapshot_locked(j);
    pthread_mutex_unlock(&mu);
    write_snapshot(s);
    if (j->seq_written != s.seq) {
        free(line);
        remove_dir(j->dir);
        eng_errorf(msg, "cannot write the job's state in %s (disk full or not writable?)", j->dir);
        e = SRV_E_INTERNAL;
        goto done;
    }
    if (line) append_event_file(j, line);
    free(line);
    pthread_mutex_lock(&mu);
    jobs[n_jobs++] = j;
    *out = job_json_locked(j);
    update_metrics_locked();
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    log_info("job %s: queued (%s -> %s)", j->id, spec->task, spec->output_model ? spec->output_model : "an image");
    j = NULL;
done:
    job_free(j);
    json_decref(req);
    srv_model_unref(bm);
    free(data);
    free(val);
    free(style);
    return e;
}

// ---------------------------------------------------------------- reading
json_t *srv_jobs_get(const char *id) {
    pthread_mutex_lock(&mu);
    job *j = find_locked(id);
    json_t *o = j ? job_json_locked(j) : NULL;
    pthread_mutex_unlock(&mu);
    return o;
}

json_t *srv_jobs_list(const char *after, int limit, int *has_more) {
    pthread_mutex_lock(&mu);
    int start = n_jobs - 1;   // newest first
    if (after) {
        start = -2;
        for (int i = 0; i < n_jobs; i++)
            if (strcmp(jobs[i]->id, after) == 0) start = i - 1;
        if (start == -2) { pthread_mutex_unlock(&mu); return NULL; }
    }
    json_t *a = json_array();
    int i = start;
    for (; i >= 0 && (int)json_array_size(a) < limit; i--) json_array_append_new(a, job_json_locked(jobs[i]));
    *has_more = i >= 0;
    pthread_mutex_unlock(&mu);
    return a;
}

srv_err srv_jobs_cancel(const char *id, json_t **out) {
    *out = NULL;
    pthread_mutex_lock(&mu);
    job *j = find_locked(id);
    if (!j) { pthread_mutex_unlock(&mu); return SRV_E_NOT_FOUND; }
    if (is_final(j->status)) {
        *out = job_json_locked(j);
        pthread_mutex_unlock(&mu);
        return SRV_E_CONFLICT;
    }
    j->cancel_by_user = 1;
    j->cancel = 1;
    int queued = j->status == JOB_QUEUED;
    if (queued) j->status = JOB_CANCELLED;   // no pool thread takes it now
    pthread_mutex_unlock(&mu);
    if (queued) set_status(j, JOB_CANCELLED, "cancelled by request");
    pthread_mutex_lock(&mu);
    *out = job_json_locked(j);   // a running job: still "running" until its next step
    pthread_mutex_unlock(&mu);
    return SRV_OK;
}

srv_err srv_jobs_result(const char *id, uint8_t **png, size_t *len, char **msg) {
    *png = NULL;
    pthread_mutex_lock(&mu);
    job *j = find_locked(id);
    if (!j) { pthread_mutex_unlock(&mu); return SRV_E_NOT_FOUND; }
    char path[4200];
    snprintf(path, sizeof path, "%s/result.png", j->dir);
    int image = srv_job_is_stylize(j->spec.task);
    job_status st = j->status;
    pthread_mutex_unlock(&mu);
    if (!image) { eng_errorf(msg, "job %s makes a model, not an image (GET /v1/models/...)", id); return SRV_E_NOT_FOUND; }
    if (st != JOB_SUCCEEDED) { eng_errorf(msg, "job %s is %s; its image is ready when it has succeeded", id, status_names[st]); return SRV_E_CONFLICT; }
    char *err = NULL;
    *png = (uint8_t *)eng_read_file(path, len, &err);   // written before the job was marked succeeded
    if (!*png) { eng_errorf(msg, "reading the result: %s", err); free(err); return SRV_E_INTERNAL; }
    return SRV_OK;
}

srv_err srv_jobs_plot(const char *id, int w, int h, uint8_t **png, size_t *len, char **msg) {
    pthread_mutex_lock(&mu);
    job *j = find_locked(id);
    if (!j) { pthread_mutex_unlock(&mu); return SRV_E_NOT_FOUND; }
    eng_plot_series s[2] = {
        {j->train.x, j->train.y, j->train.n, "train", {214, 39, 40}},
        {j->val.x, j->val.y, j->val.n, "validation", {31, 119, 180}},
    };
    eng_plot_opts o = {w, h, "step", "loss"};
    int rc = eng_plot_png(png, len, &o, s, j->val.n ? 2 : 1, msg);
    pthread_mutex_unlock(&mu);
    return rc == 0 ? SRV_OK : SRV_E_INTERNAL;
}

// ---------------------------------------------------------------- start and stop
// Reads a job directory back (job.json + events.jsonl). NULL if unreadable.
static job *load_job(const char *name) {
    char path[4400], *err = NULL;
    job *j = job_new();
    if (!j) return NULL;
    snprintf(j->id, sizeof j->id, "%s", name);
    snprintf(j->dir, sizeof j->dir, "%s/%s", jobs_dir, name);
    snprintf(path, sizeof path, "%s/job.json", j->dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    const char *status = json_string_value(json_object_get(o, "status"));
    int st = -1;
    for (int s = 0; status && s < JOB__COUNT; s++)
        if (strcmp(status, status_names[s]) == 0) st = s;
    json_t *req = json_object_get(o, "request");
    if (!o || st < 0 || !json_is_object(req) || strcmp(json_string_value(json_object_get(o, "id")) ? json_string_value(json_object_get(o, "id")) : "", name) != 0) {
        log_warn("jobs: %s: not a job (%s); skipped", path, o ? "missing fields" : je.text);
        json_decref(o);
        job_free(j);
        return NULL;
    }
    j->req = json_incref(req);
    if (spec_from_request(j->req, &j->spec, &err) != 0) {
        log_warn("jobs: %s: %s; skipped", path, err);
        free(err);
        json_decref(o);
        job_free(j);
        return NULL;
    }
    j->status = (job_status)st;
    j->step = (int)json_integer_value(json_object_get(o, "step"));
    j->total_steps = (int)json_integer_value(json_object_get(o, "total_steps"));
    j->epoch = (int)json_integer_value(json_object_get(o, "epoch"));
    json_t *v;
    if (json_is_number(v = json_object_get(o, "loss"))) j->loss = json_number_value(v);
    if (json_is_number(v = json_object_get(o, "val_loss"))) j->val_loss = json_number_value(v);
    if (json_is_number(v = json_object_get(o, "examples_per_s"))) j->examples_per_s = json_number_value(v);
    json_t *m = json_object_get(o, "metrics");
    if (json_is_number(v = json_object_get(m, "val_accuracy"))) j->val_accuracy = json_number_value(v);
    if (json_is_number(v = json_object_get(m, "learning_rate"))) j->lr = json_number_value(v);
    j->created_at = (long)json_integer_value(json_object_get(o, "created_at"));
    j->started_at = (long)json_integer_value(json_object_get(o, "started_at"));
    j->finished_at = (long)json_integer_value(json_object_get(o, "finished_at"));
    const char *e = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    if (e) j->error = strdup(e);
    json_decref(o);
    // the history: every whole line of events.jsonl (a crash may cut the last one)
    snprintf(path, sizeof path, "%s/events.jsonl", j->dir);
    size_t len;
    char *text = eng_read_file(path, &len, &err);
    free(err);
    for (char *p = text, *nl; p && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = 0;
        json_t *ev = json_loads(p, 0, NULL);
        if (!ev) continue;
        json_t *loss = json_object_get(ev, "loss"), *vl = json_object_get(ev, "val_loss");
        int step = (int)json_integer_value(json_object_get(ev, "step"));
        if (json_is_number(loss)) curve_push(&j->train, (float)step, (float)json_number_value(loss));
        if (json_is_number(vl)) curve_push(&j->val, (float)step, (float)json_number_value(vl));
        json_object_set_new(ev, "seq", json_integer((json_int_t)json_array_size(j->events)));
        json_array_append_new(j->events, ev);
    }
    free(text);
    return j;
}

static int by_created(const void *a, const void *b) {
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    if (x->created_at != y->created_at) return x->created_at < y->created_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int mkdir_p(const char *path, char **err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

int srv_jobs_start(const srv_config *cfg, char **err) {
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", cfg->data_dir);
    snprintf(models_dir, sizeof models_dir, "%s", cfg->models);
    max_queued = cfg->max_queued_jobs;
    max_steps = cfg->max_job_steps;
    train_threads = cfg->train_threads;
    max_image_pixels = cfg->max_image_pixels;
    max_job_image_bytes = cfg->max_job_image_bytes;
    if (max_image_pixels > cfg->max_image_bytes / ENG_IMG_BYTES_PER_PIXEL) max_image_pixels = cfg->max_image_bytes / ENG_IMG_BYTES_PER_PIXEL;
    if (mkdir_p(jobs_dir, err) != 0) return -1;
    // OpenBLAS 0.3.21's thread count is process-wide (a per-thread limit,
    // openblas_set_num_threads_local, came in 0.3.27), and its threaded calls
    // share one server: a training gemm would make serving's calls wait for
    // it. Single-threaded, every call computes in its caller's thread, so the
    // pool threads' nice level and CPU set bound what training takes.
    openblas_set_num_threads(1);
    DIR *d = opendir(jobs_dir);
    if (!d) return eng_errorf(err, "%s: %s", jobs_dir, strerror(errno));
    struct dirent *de;
    int resumed = 0;
    while ((de = readdir(d))) {
        if (!srv_jobs_valid_id(de->d_name)) continue;
        job *j = load_job(de->d_name);
        if (!j) continue;
        if (n_jobs == cap_jobs) {
            int cap = cap_jobs ? cap_jobs * 2 : 16;
            job **nj = realloc(jobs, (size_t)cap * sizeof *nj);
            if (!nj) { job_free(j); break; }
            jobs = nj;
            cap_jobs = cap;
        }
        if (active(j)) {   // unfinished: queued again, resumes from its checkpoint
            j->status = JOB_QUEUED;
            resumed++;
        }
        jobs[n_jobs++] = j;
    }
    closedir(d);
    if (n_jobs > 1) qsort(jobs, (size_t)n_jobs, sizeof *jobs, by_created);
    update_metrics_locked();
    n_pool = cfg->max_running_jobs;
    pool = calloc((size_t)n_pool, sizeof *pool);
    if (!pool) return eng_errorf(err, "out of memory");
    for (int i = 0; i < n_pool; i++)
        if (pthread_create(&pool[i], NULL, pool_main, NULL) != 0) { n_pool = i; return eng_errorf(err, "cannot start the training pool"); }
    started = 1;
    log_info("jobs: %d job(s) in %s, %d to resume; %d training slot(s) of %d CPU(s)", n_jobs, jobs_dir, resumed, n_pool, train_threads);
    return 0;
}

void srv_jobs_keepalive(void) {
    static double last;
    double now = eng_now();
    if (now - last < 15) return;
    last = now;
    static const char ping[] = ": keep-alive\n\n";
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_jobs; i++)
        for (int k = jobs[i]->n_followers - 1; k >= 0; k--)
            if (srv_stream_write(jobs[i]->followers[k]->stream, ping, sizeof ping - 1) != 0) drop_follower_locked(jobs[i], k);
    pthread_mutex_unlock(&mu);
}

void srv_jobs_quiesce(void) {
    pthread_mutex_lock(&mu);
    stopping = 1;   // no new jobs, no new followers
    for (int i = 0; i < n_jobs; i++)
        while (jobs[i]->n_followers > 0) {
            srv_request_complete(jobs[i]->followers[0]);
            drop_follower_locked(jobs[i], 0);
        }
    pthread_mutex_unlock(&mu);
}

void srv_jobs_stop(void) {
    if (!started) return;
    srv_jobs_quiesce();
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i]->status == JOB_RUNNING) jobs[i]->cancel = 1;   // stops at the next step; not marked
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n_pool; i++) pthread_join(pool[i], NULL);
    free(pool);
    pool = NULL;
    n_pool = 0;
    for (int i = 0; i < n_jobs; i++) job_free(jobs[i]);
    free(jobs);
    jobs = NULL;
    n_jobs = cap_jobs = 0;
    stopping = started = 0;
}
