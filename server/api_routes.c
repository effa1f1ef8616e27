// api_routes.c — every endpoint of ../shared/API.md and its handler; the
// HTTP layer (server/http.c) routes with this table.
#include "server/api.h"       // handlers, srv_route

const srv_route srv_api_routes[] = {
    {"GET", "/healthz", 0, "/healthz", srv_api_healthz, 1, NULL},
    {"GET", "/readyz", 0, "/readyz", srv_api_readyz, 1, NULL},
    {"GET", "/metrics", 0, "/metrics", srv_api_metrics, 1, NULL},
    {"GET", "/v1/models", 0, "/v1/models", srv_api_models_list, 0, NULL},
    {"POST", "/v1/models", 0, "/v1/models", srv_api_models_load, 0, NULL},
    {"GET", "/v1/models/", 1, "/v1/models/{id}", srv_api_models_get, 0, NULL},
    {"DELETE", "/v1/models/", 1, "/v1/models/{id}", srv_api_models_unload, 0, NULL},
    {"POST", "/v1/classifications", 0, "/v1/classifications", srv_api_classify, 0, NULL},
    {"POST", "/v1/completions", 0, "/v1/completions", srv_api_completions, 0, NULL},
    {"POST", "/v1/translations", 0, "/v1/translations", srv_api_translations, 0, NULL},
    {"POST", "/v1/stylizations", 0, "/v1/stylizations", srv_api_stylize, 0, NULL},
    {"POST", "/v1/images/generations", 0, "/v1/images/generations", srv_api_images_generations, 0, NULL},
    {"GET", "/v1/files", 0, "/v1/files", srv_api_files_list, 0, NULL},
    {"POST", "/v1/files", 0, "/v1/files", srv_api_files_upload, 0, &srv_api_files_sink},   // body streamed to disk
    {"GET", "/v1/files/", 1, "/v1/files/{id}", srv_api_files_get, 0, NULL},
    {"DELETE", "/v1/files/", 1, "/v1/files/{id}", srv_api_files_delete, 0, NULL},
    {"GET", "/v1/jobs", 0, "/v1/jobs", srv_api_jobs_list, 0, NULL},
    {"POST", "/v1/jobs", 0, "/v1/jobs", srv_api_jobs_create, 0, NULL},
    {"GET", "/v1/jobs/", 2, "/v1/jobs/{id}", srv_api_jobs_get, 0, NULL},          // {id}, {id}/events, {id}/loss.png
    {"POST", "/v1/jobs/", 2, "/v1/jobs/{id}/cancel", srv_api_jobs_post, 0, NULL},
};
const int srv_api_n_routes = (int)(sizeof srv_api_routes / sizeof srv_api_routes[0]);
