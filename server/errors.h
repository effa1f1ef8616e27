// errors.h — request-path errors as values. One X-macro table gives each
// error its HTTP status, its API.md "type" and its "code"; handlers return an
// srv_err and a message, and the HTTP layer turns it into
//   {"error":{"message":…,"type":…,"param":…,"code":…}} with the right status.
#ifndef SRV_ERRORS_H
#define SRV_ERRORS_H

//  name                  status  type                      code
#define SRV_ERRORS(XX)                                                              \
    XX(SRV_OK,                  200, "",                      "")                     \
    XX(SRV_E_BAD_REQUEST,       400, "invalid_request_error", "invalid_request")      \
    XX(SRV_E_BAD_JSON,          400, "invalid_request_error", "invalid_json")         \
    XX(SRV_E_BAD_VALUE,         400, "invalid_request_error", "invalid_value")        \
    XX(SRV_E_MISSING,           400, "invalid_request_error", "missing_required_parameter") \
    XX(SRV_E_WRONG_TASK,        400, "invalid_request_error", "wrong_task")           \
    XX(SRV_E_BAD_IMAGE,         400, "invalid_request_error", "invalid_image")        \
    XX(SRV_E_UNAUTHORIZED,      401, "authentication_error",  "invalid_api_key")      \
    XX(SRV_E_NOT_FOUND,         404, "invalid_request_error", "not_found")            \
    XX(SRV_E_MODEL_NOT_FOUND,   404, "invalid_request_error", "model_not_found")      \
    XX(SRV_E_METHOD,            405, "invalid_request_error", "method_not_allowed")   \
    XX(SRV_E_CONFLICT,          409, "invalid_request_error", "conflict")             \
    XX(SRV_E_TOO_LARGE,         413, "invalid_request_error", "payload_too_large")    \
    XX(SRV_E_MEDIA_TYPE,        415, "invalid_request_error", "unsupported_media_type") \
    XX(SRV_E_UNPROCESSABLE,     422, "invalid_request_error", "unprocessable")        \
    XX(SRV_E_CLIENT_GONE,       499, "invalid_request_error", "client_closed_request") \
    XX(SRV_E_INTERNAL,          500, "server_error",          "internal_error")       \
    XX(SRV_E_NOT_IMPLEMENTED,   501, "invalid_request_error", "not_implemented")      \
    XX(SRV_E_QUEUE_FULL,        503, "rate_limit_error",      "queue_full")           \
    XX(SRV_E_UNAVAILABLE,       503, "server_error",          "unavailable")          \
    XX(SRV_E_TIMEOUT,           504, "timeout_error",         "timeout")

typedef enum {
#define XX(name, status, type, code) name,
    SRV_ERRORS(XX)
#undef XX
    SRV_E__COUNT
} srv_err;

int srv_err_status(srv_err e);
const char *srv_err_type(srv_err e);
const char *srv_err_code(srv_err e);
// Builds the API.md error body (malloc'd JSON text). param may be NULL.
char *srv_err_body(srv_err e, const char *message, const char *param);

#endif
