// registry.h — the loaded models, by id. A model is loaded from a directory
// of the model repository (engine/arch/model.h), gets its batching settings from
// its config.json, and is shared by reference: every request and running
// batch holds a reference, so unloading or replacing a model never pulls the
// weights out from under work in flight (the last reference frees it).
// Loading a new version under an existing id swaps the pointer atomically.
#ifndef SRV_REGISTRY_H
#define SRV_REGISTRY_H
#include <jansson.h>          // json_t
#include <stdatomic.h>        // atomic_int, atomic_long
#include "engine/arch/model.h"     // eng_model

typedef struct srv_model {
    char id[65];                 // [A-Za-z0-9._-]{1,64}
    char *path;                  // directory relative to the model repository
    eng_model *m;                // the engine's model (read-only, shared)
    double loaded_at;            // unix time of loading
    // batching (config.json, Triton's names and semantics)
    int max_batch_size;          // items per batch, default 32
    int max_queue_delay_us;      // how long the oldest request may wait for a fuller batch, default 1000
    int max_queue_size;          // queued items before 503, default 256
    int timeout_ms;              // per-request deadline from arrival, default 30000
    size_t kv_cache_bytes;       // text generation: KV caches of running sequences at most (kv_cache_mb, default 2048)
    int prefill_chunk;           // text generation: prompt tokens per step, 0 = no limit (daemon's prefill_chunk)
    atomic_int refs;             // registry + requests + running batches
    // the scheduler's per-model state (its queue, a continuous runner's
    // sequences): opaque here, created by server/sched.c, freed with the model
    struct srv_sched_slot *slot;
    void (*slot_free)(struct srv_sched_slot *slot);
    // counters
    atomic_long n_requests;      // requests answered by a worker
    atomic_long n_items;         // items computed
    atomic_long n_batches;       // batches run
    atomic_int queue_depth;      // items queued now (written by the scheduler)
} srv_model;

// repository: the models directory; expected: ids that must load for /readyz.
void srv_registry_init(const char *repository);
// The daemon's prefill_chunk, for models whose config.json sets none (default 16).
void srv_registry_set_prefill_chunk(int tokens);
void srv_registry_free(void);

// Valid model id: [A-Za-z0-9._-]{1,64}, and not "." or "..".
int srv_registry_valid_id(const char *id);
// A relative path without "..", "." components or a leading '/'.
int srv_registry_safe_path(const char *path);

// Loads <repository>/<path> under `id` (replacing a loaded one atomically).
// *replaced is set to 1 when an older version was swapped out. Returns 0 or
// -1 with *err (the previous version, if any, stays loaded).
int srv_registry_load(const char *id, const char *path, int *replaced, char **err);
// Removes `id`; in-flight work finishes on its reference. 0, or -1 if unknown.
int srv_registry_unload(const char *id);
// Loads every directory of the repository that has a config.json (or only the
// comma-separated `only` ids when non-empty); those become the models /readyz
// waits for. Failures are logged and remembered. Returns the number loaded.
int srv_registry_load_all(const char *only);
// SIGHUP: reloads every expected model from disk and loads new directories.
int srv_registry_reload(void);

// Returns the model with a new reference, or NULL.
srv_model *srv_registry_get(const char *id);
void srv_model_ref(srv_model *m);
void srv_model_unref(srv_model *m);

// {"object":"list","data":[...]} (new reference).
json_t *srv_registry_list_json(void);
// One model's object; detail adds batching settings, counters and queue depth.
json_t *srv_model_json(srv_model *m, int detail);
// readiness: 1 when every expected model is loaded; *missing gets a JSON
// array of {"id","error"} for those that are not (new reference).
int srv_registry_ready(json_t **missing);
int srv_registry_count(void);

#endif
