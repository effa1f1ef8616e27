// registry.c — loaded models by id, reference counted (see registry.h).
// Lock: `mu` guards the table and the expected list. It is never held while
// a model loads from disk (loading happens outside, the swap inside) and
// never while calling into the scheduler.
#include "server/registry.h"
#include <dirent.h>           // opendir
#include <pthread.h>          // pthread_mutex_t
#include <stdio.h>            // snprintf
#include <string.h>           // strcmp, strlen
#include <sys/stat.h>         // stat
#include <time.h>             // time
#include "engine/core/util.h"      // eng_xcalloc
#include "server/log.h"       // log_info
#include "server/metrics.h"   // srv_metrics_models_loaded

#define MAX_MODELS 256

typedef struct {
    char id[65];
    char *error;   // last load error, NULL when loaded
} expected_model;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static srv_model *table[MAX_MODELS];   // loaded models, NULL slots free
static char *repository;               // model repository directory
static expected_model *expected;       // models /readyz waits for
static int n_expected;
static char *load_only;                // the startup --load list ("" = every directory)

static int prefill_chunk = 16;         // the daemon's default for text-generation models

void srv_registry_set_prefill_chunk(int tokens) { prefill_chunk = tokens; }

void srv_registry_init(const char *repo) {
    repository = strdup(repo);
}

static void model_destroy(srv_model *m) {
    log_info("model %s unloaded", m->id);
    if (m->slot_free) m->slot_free(m->slot);
    eng_model_free(m->m);
    free(m->path);
    free(m);
}

void srv_model_ref(srv_model *m) { atomic_fetch_add(&m->refs, 1); }

void srv_model_unref(srv_model *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_destroy(m);
}

static int count_locked(void) {
    int n = 0;
    for (int i = 0; i < MAX_MODELS; i++) n += table[i] != NULL;
    return n;
}

void srv_registry_free(void) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_MODELS; i++) { srv_model_unref(table[i]); table[i] = NULL; }
    for (int i = 0; i < n_expected; i++) free(expected[i].error);
    free(expected);
    expected = NULL;
    n_expected = 0;
    free(repository);
    repository = NULL;
    free(load_only);
    load_only = NULL;
    pthread_mutex_unlock(&mu);
}

int srv_registry_valid_id(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > 64 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int srv_registry_safe_path(const char *p) {
    if (!p || !*p || p[0] == '/' || strlen(p) > 1024) return 0;
    // every component must be a plain name: no "..", no "." , no empty part
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20) return 0;
        s += n;
        if (*s == '/') s++;
    }
    return 1;
}

// Reads an optional integer batching setting from the model's config.
static int batch_setting(const json_t *cfg, const char *key, int def, int min, int max) {
    const json_t *v = json_object_get(cfg, key);
    if (!json_is_integer(v)) return def;
    json_int_t x = json_integer_value(v);
    return x < min ? min : x > max ? max : (int)x;
}

static expected_model *find_expected(const char *id) {
    for (int i = 0; i < n_expected; i++)
        if (strcmp(expected[i].id, id) == 0) return &expected[i];
    return NULL;
}

static void note_expected(const char *id, const char *error) {
    expected_model *e = find_expected(id);
    if (!e) {
        expected_model *grown = realloc(expected, (size_t)(n_expected + 1) * sizeof *expected);
        if (!grown) return;   // out of memory: the model is just not listed as expected
        expected = grown;
        e = &expected[n_expected++];
        snprintf(e->id, sizeof e->id, "%s", id);
        e->error = NULL;
    }
    free(e->error);
    e->error = error ? strdup(error) : NULL;
}

// The serving settings of a model's config.json, all read here: batching
// (Triton's names and semantics), the KV-cache budget and the prefill chunk
// of text generation.
static void read_settings(srv_model *m) {
    const json_t *cfg = m->m->config;
    m->max_batch_size = batch_setting(cfg, "max_batch_size", 32, 1, 1024);
    m->max_queue_delay_us = batch_setting(cfg, "max_queue_delay_us", 1000, 0, 10000000);
    m->max_queue_size = batch_setting(cfg, "max_queue_size", 256, 1, 1000000);
    m->timeout_ms = batch_setting(cfg, "timeout_ms", 30000, 1, 3600000);
    const json_t *kv = json_object_get(cfg, "kv_cache_mb");
    m->kv_cache_bytes = (size_t)(json_is_integer(kv) && json_integer_value(kv) > 0 ? json_integer_value(kv) : 2048) << 20;
    m->prefill_chunk = batch_setting(cfg, "prefill_chunk", prefill_chunk, 0, 1048576);
}

int srv_registry_load(const char *id, const char *path, int *replaced, char **err) {
    if (replaced) *replaced = 0;
    if (!srv_registry_valid_id(id)) return eng_errorf(err, "model id must match [A-Za-z0-9._-]{1,64}");
    if (!srv_registry_safe_path(path)) return eng_errorf(err, "path must be relative to the model repository, without '..'");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", repository, path);
    eng_model *em;
    double t0 = eng_now();
    if (eng_model_load(&em, dir, err) != 0) return -1;

    srv_model *m = calloc(1, sizeof *m);
    char *path_copy = m ? strdup(path) : NULL;
    if (!path_copy) {
        free(m);
        eng_model_free(em);
        return eng_errorf(err, "out of memory");
    }
    snprintf(m->id, sizeof m->id, "%s", id);
    m->path = path_copy;
    m->m = em;
    m->loaded_at = (double)time(NULL);
    read_settings(m);
    atomic_init(&m->refs, 1);   // the table's reference

    pthread_mutex_lock(&mu);
    int slot = -1, old = -1;
    for (int i = 0; i < MAX_MODELS; i++) {
        if (table[i] && strcmp(table[i]->id, id) == 0) old = i;
        if (!table[i] && slot < 0) slot = i;
    }
    srv_model *prev = NULL;
    if (old >= 0) { prev = table[old]; table[old] = m; }
    else if (slot >= 0) table[slot] = m;
    else {
        pthread_mutex_unlock(&mu);
        srv_model_unref(m);
        return eng_errorf(err, "too many models loaded (at most %d)", MAX_MODELS);
    }
    expected_model *e = find_expected(id);
    if (e) { free(e->error); e->error = NULL; }
    int n = count_locked();
    pthread_mutex_unlock(&mu);
    srv_metrics_models_loaded(n);
    if (replaced) *replaced = prev != NULL;
    log_info("model %s loaded from %s (%s, %s, %zu params) in %.0f ms", id, dir, eng_task_name(em->task),
             em->arch->name, em->n_params, 1000 * (eng_now() - t0));
    srv_model_unref(prev);   // freed when its last request finishes
    return 0;
}

int srv_registry_unload(const char *id) {
    srv_model *m = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_MODELS; i++)
        if (table[i] && strcmp(table[i]->id, id) == 0) { m = table[i]; table[i] = NULL; }
    expected_model *e = m ? find_expected(id) : NULL;
    if (e) {   // unloaded on purpose: /readyz no longer waits for it
        free(e->error);
        *e = expected[--n_expected];
    }
    int n = count_locked();
    pthread_mutex_unlock(&mu);
    if (!m) return -1;
    srv_metrics_models_loaded(n);
    srv_model_unref(m);
    return 0;
}

srv_model *srv_registry_get(const char *id) {
    srv_model *m = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_MODELS && !m; i++)
        if (table[i] && strcmp(table[i]->id, id) == 0) { m = table[i]; srv_model_ref(m); }
    pthread_mutex_unlock(&mu);
    return m;
}

// Loads one id at startup/reload and records the outcome for /readyz.
static int load_expected(const char *id) {
    char *err = NULL;
    int rc = srv_registry_load(id, id, NULL, &err);
    pthread_mutex_lock(&mu);
    note_expected(id, rc == 0 ? NULL : err);
    pthread_mutex_unlock(&mu);
    if (rc != 0) log_error("model %s failed to load: %s", id, err);
    free(err);
    return rc == 0;
}

int srv_registry_load_all(const char *only) {
    int loaded = 0;
    if (only != load_only) {
        free(load_only);
        load_only = strdup(only ? only : "");
    }
    if (only && *only) {
        char *copy = strdup(only), *save = NULL;
        for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
            loaded += load_expected(tok);
        free(copy);
        return loaded;
    }
    DIR *d = opendir(repository);
    if (!d) { log_error("model repository %s: cannot open", repository); return 0; }
    struct dirent *de;
    char **names = NULL;
    int n = 0;
    while ((de = readdir(d))) {
        char cfg[4096];
        struct stat st;
        if (de->d_name[0] == '.' || !srv_registry_valid_id(de->d_name)) continue;
        snprintf(cfg, sizeof cfg, "%s/%s/config.json", repository, de->d_name);
        if (stat(cfg, &st) != 0) continue;
        char **grown = realloc(names, (size_t)(n + 1) * sizeof *names);
        if (!grown) break;
        names = grown;
        if (!(names[n] = strdup(de->d_name))) break;
        n++;
    }
    closedir(d);
    for (int i = 0; i < n; i++) { loaded += load_expected(names[i]); free(names[i]); }
    free(names);
    return loaded;
}

int srv_registry_reload(void) {
    // serving every directory: rescan, so new directories load and changed ones swap in
    if (!load_only || !*load_only) return srv_registry_load_all(load_only);
    // an explicit list: reload the expected ones (new versions swap in)
    pthread_mutex_lock(&mu);
    int n = n_expected;
    char (*ids)[65] = eng_xcalloc((size_t)n + 1, sizeof *ids);
    for (int i = 0; i < n; i++) memcpy(ids[i], expected[i].id, sizeof ids[i]);
    pthread_mutex_unlock(&mu);
    int loaded = 0;
    for (int i = 0; i < n; i++) loaded += load_expected(ids[i]);
    free(ids);
    return loaded;
}

json_t *srv_model_json(srv_model *m, int detail) {
    eng_model *em = m->m;
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:s,s:s}", "id", m->id, "object", "model",
                          "created", (json_int_t)m->loaded_at, "owned_by", "inferd",
                          "task", eng_task_name(em->task), "arch", em->arch->name,
                          "params", (json_int_t)em->n_params, "status", "ready", "path", m->path);
    if (em->n_labels > 0 && detail) {
        json_t *labels = json_array();
        for (int i = 0; i < em->n_labels; i++) json_array_append_new(labels, json_string(em->labels[i]));
        json_object_set_new(o, "labels", labels);
    }
    if (detail) {
        json_object_set_new(o, "batching", json_pack("{s:i,s:i,s:i,s:i}",
            "max_batch_size", m->max_batch_size, "max_queue_delay_us", m->max_queue_delay_us,
            "max_queue_size", m->max_queue_size, "timeout_ms", m->timeout_ms));
        json_object_set_new(o, "stats", json_pack("{s:I,s:I,s:I,s:i}",
            "requests", (json_int_t)atomic_load(&m->n_requests), "items", (json_int_t)atomic_load(&m->n_items),
            "batches", (json_int_t)atomic_load(&m->n_batches), "queue_depth", atomic_load(&m->queue_depth)));
        if (em->task == ENG_TASK_IMAGE_CLASSIFICATION)
            json_object_set_new(o, "input", json_pack("{s:i,s:i,s:i}", "channels", em->prep.channels,
                                "height", em->prep.height, "width", em->prep.width));
    }
    return o;
}

json_t *srv_registry_list_json(void) {
    json_t *data = json_array();
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_MODELS; i++)
        if (table[i]) json_array_append_new(data, srv_model_json(table[i], 0));
    pthread_mutex_unlock(&mu);
    return json_pack("{s:s,s:o}", "object", "list", "data", data);
}

int srv_registry_ready(json_t **missing) {
    json_t *a = json_array();
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_expected; i++) {
        int loaded = 0;
        for (int k = 0; k < MAX_MODELS; k++)
            if (table[k] && strcmp(table[k]->id, expected[i].id) == 0) loaded = 1;
        if (!loaded)
            json_array_append_new(a, json_pack("{s:s,s:s}", "id", expected[i].id, "error",
                                               expected[i].error ? expected[i].error : "unloaded"));
    }
    pthread_mutex_unlock(&mu);
    int ready = json_array_size(a) == 0;
    if (missing) *missing = a; else json_decref(a);
    return ready;
}

int srv_registry_count(void) {
    pthread_mutex_lock(&mu);
    int n = count_locked();
    pthread_mutex_unlock(&mu);
    return n;
}
