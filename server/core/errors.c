/*
 * The one table from API results to HTTP status, error code, log level and default message.
 * Routine client mistakes log at INFO; unknown paths and wrong methods (mostly scanners) at
 * DEBUG; every 5xx at ERROR, since it means the server, not the client, has to change.
 */
#include "errors.h"
#include "utf8.h"

#include <string.h>

static const struct api_error_info table[API_ERR_COUNT] = {
    [API_OK] = {"ok", 200, LOG_INFO, "ok"},

    [API_ERR_BAD_JSON] = {"bad_json", 400, LOG_INFO, "the request body is not a valid JSON object"},
    [API_ERR_INVALID_FIELD] = {"invalid_field", 400, LOG_INFO,
                               "a field of the request body has the wrong type or value"},
    [API_ERR_UNKNOWN_FIELD] = {"unknown_field", 400, LOG_INFO,
                               "the request body has a field this route does not take"},
    [API_ERR_MISSING_FIELD] = {"missing_field", 400, LOG_INFO,
                               "the request body lacks a required field"},
    [API_ERR_INVALID_PARAM] = {"invalid_param", 400, LOG_INFO,
                               "a path or query parameter is malformed or out of range"},
    [API_ERR_BAD_IDENTIFIER] = {"bad_identifier", 400, LOG_INFO,
                                "the identifier (UserID) must be 1 to 32 bytes of printable "
                                "ASCII, or of A-Z a-z 0-9 _ - under the strict policy"},
    [API_ERR_BAD_EXPIRE] = {"bad_expire", 400, LOG_INFO,
                            "expire must be 1 second or more and at most the app's max_expire"},
    [API_ERR_BAD_ROOM] = {"bad_room", 400, LOG_INFO,
                          "give room_id (1 to 4294967295) or room_str (1 to 64 bytes), not both"},
    [API_ERR_BAD_PRIVILEGE] = {"bad_privilege", 400, LOG_INFO,
                               "privilege_map must be 0 to 255 and needs a room"},
    [API_ERR_BAD_KEY] = {"bad_key", 400, LOG_INFO,
                         "the key is not usable: an HMAC secret of 1 to 1024 bytes, or a PEM EC "
                         "private key on secp256k1 or P-256"},
    [API_ERR_BAD_REQUEST] = {"bad_request", 400, LOG_INFO,
                             "the request is not well-formed HTTP/1.1"},

    [API_ERR_UNAUTHORIZED] = {"unauthorized", 401, LOG_INFO,
                              "send a valid API token as \"Authorization: Bearer <token>\""},
    [API_ERR_FORBIDDEN] = {"forbidden", 403, LOG_INFO,
                           "the token's role or app scope does not allow this"},
    [API_ERR_CORS_FORBIDDEN] = {"cors_forbidden", 403, LOG_INFO,
                                "this origin may not call the API from a browser (CORS)"},
    [API_ERR_ADMIN_IDENTIFIER] = {"admin_identifier", 403, LOG_INFO,
                                  "this identifier is one of the app's administrator accounts: "
                                  "only an admin or admin_signer token may sign for it"},
    [API_ERR_IDENTIFIER_PREFIX] = {"identifier_prefix", 403, LOG_INFO,
                                   "this token may sign only identifiers that start with one of "
                                   "its identifier_prefixes"},
    [API_ERR_REST_NOT_ALLOWED] =
        {"rest_not_allowed", 403, LOG_INFO,
         "this token's rest_allow does not cover this servicename/command"},
    [API_ERR_NOT_FOUND] = {"not_found", 404, LOG_DEBUG, "no such path"},
    [API_ERR_APP_NOT_FOUND] = {"app_not_found", 404, LOG_INFO, "no app with this sdkappid"},
    [API_ERR_REQUEST_TIMEOUT] = {"request_timeout", 408, LOG_INFO,
                                 "the request headers did not arrive in time"},
    [API_ERR_KEY_NOT_FOUND] = {"key_not_found", 404, LOG_INFO,
                               "the app has no key with this version"},
    [API_ERR_TOKEN_NOT_FOUND] = {"token_not_found", 404, LOG_INFO, "no API token with this id"},
    [API_ERR_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405, LOG_DEBUG,
                                    "this path does not take this method: see the Allow header"},
    [API_ERR_APP_EXISTS] = {"app_exists", 409, LOG_INFO, "an app with this sdkappid exists"},
    [API_ERR_KEY_USED_BY_OTHER_APP] = {"key_used_by_other_app", 409, LOG_INFO,
                                       "this key is (or was) registered to another app; every "
                                       "app needs its own key"},
    [API_ERR_CONFLICT] = {"conflict", 409, LOG_INFO, "the change conflicts with the current data"},
    [API_ERR_INVALID_STATE] = {"invalid_state", 409, LOG_INFO,
                               "the resource is not in a state that allows this"},
    [API_ERR_IDEMPOTENCY_IN_PROGRESS] = {"idempotency_in_progress", 409, LOG_INFO,
                                         "a request with this Idempotency-Key is still running; "
                                         "retry later"},
    [API_ERR_IDEMPOTENCY_KEY_REUSED] = {"idempotency_key_reused", 422, LOG_INFO,
                                        "this Idempotency-Key was used with another request; "
                                        "use a new key for a new request"},
    [API_ERR_HEADERS_TOO_LARGE] = {"headers_too_large", 431, LOG_INFO,
                                   "the request headers are too large"},
    [API_ERR_TOKEN_SIGNS_PER_SECOND] = {"token_signs_per_second", 429, LOG_INFO,
                                        "this API token's signs_per_second is reached; retry "
                                        "after Retry-After seconds"},
    [API_ERR_APP_SIGNS_PER_SECOND] = {"app_signs_per_second", 429, LOG_INFO,
                                      "the app's signs_per_second is reached; retry after "
                                      "Retry-After seconds"},
    [API_ERR_TOKEN_BATCH_TOKENS_PER_DAY] = {"token_batch_tokens_per_day", 429, LOG_INFO,
                                            "this API token's batch_tokens_per_day is used up "
                                            "for today (UTC); retry after Retry-After seconds"},
    [API_ERR_APP_BATCH_TOKENS_PER_DAY] = {"app_batch_tokens_per_day", 429, LOG_INFO,
                                          "the app's batch_tokens_per_day is used up for today "
                                          "(UTC); retry after Retry-After seconds"},
    [API_ERR_BODY_TOO_LARGE] = {"body_too_large", 413, LOG_INFO, "the request body is too large"},
    [API_ERR_TOO_MANY_BATCHES] = {"too_many_batches", 429, LOG_INFO,
                                  "as many batches as this server runs at once are running; "
                                  "retry after Retry-After seconds"},
    [API_ERR_TENCENT_RATE_LIMITED] = {"tencent_rate_limited", 429, LOG_INFO,
                                      "the app's calls to Tencent's REST API are at their rate "
                                      "limit; retry after Retry-After seconds"},
    [API_ERR_URI_TOO_LONG] = {"uri_too_long", 414, LOG_INFO, "the request URL is too long"},
    [API_ERR_UNSUPPORTED_MEDIA_TYPE] = {"unsupported_media_type", 415, LOG_INFO,
                                        "send the body as Content-Type: application/json"},

    [API_ERR_INTERNAL] = {"internal", 500, LOG_ERROR,
                          "internal error: the server log has the details under the request id"},
    /* The method is the client's (a route of this server not implemented would be a build's
     * bug, and none is): logged as a client's error, not one any client can fill the error
     * log with. */
    [API_ERR_NOT_IMPLEMENTED] = {"not_implemented", 501, LOG_INFO,
                                 "this route is not implemented yet"},
    [API_ERR_TENCENT_UNREACHABLE] = {"tencent_unreachable", 502, LOG_ERROR,
                                     "Tencent's REST API could not be reached (connection or TLS)"},
    [API_ERR_TENCENT_BAD_REPLY] = {"tencent_bad_reply", 502, LOG_ERROR,
                                   "Tencent's REST API answered with something other than its "
                                   "JSON reply"},
    [API_ERR_TENCENT_TIMEOUT] = {"tencent_timeout", 504, LOG_ERROR,
                                 "Tencent's REST API did not answer in time (tencent_timeout)"},
    [API_ERR_UNAVAILABLE] = {"unavailable", 503, LOG_ERROR,
                             "the service cannot reach its database; retry later"},
    [API_ERR_HTTP_VERSION] = {"http_version_not_supported", 505, LOG_INFO,
                              "only HTTP/1.1 and HTTP/1.0 are served"},
};

const struct api_error_info *api_error_info(enum api_error err)
{
    if ((unsigned)err >= API_ERR_COUNT || table[err].code == NULL)
        return &table[API_ERR_INTERNAL];
    return &table[err];
}

int api_error_status(enum api_error err)
{
    return api_error_info(err)->status;
}

const char *api_error_code(enum api_error err)
{
    return api_error_info(err)->code;
}

enum log_level api_error_level(enum api_error err)
{
    return api_error_info(err)->level;
}

int api_error_parse(const char *code)
{
    if (code == NULL)
        return -1;
    for (int i = 0; i < API_ERR_COUNT; i++)
        if (table[i].code != NULL && strcmp(table[i].code, code) == 0)
            return i;
    return -1;
}

json_t *api_error_body(enum api_error err, const char *message)
{
    const struct api_error_info *info = api_error_info(err);
    json_t *inner = NULL, *outer = NULL;
    char clean[1024];

    /* A message may quote client bytes (an unknown field's name): keep it valid UTF-8, which
     * jansson requires, so that the reply stays the 4xx it is. */
    utf8_clean(message ? message : info->message, clean, sizeof clean);
    inner = json_object();
    if (inner == NULL)
        goto fail;
    if (json_object_set_new(inner, "code", json_string(info->code)) != 0 ||
        json_object_set_new(inner, "message", json_string(clean)) != 0)
        goto fail;
    outer = json_object();
    if (outer == NULL || json_object_set_new(outer, "error", inner) != 0) {
        inner = NULL; /* json_object_set_new consumed it even on failure */
        goto fail;
    }
    return outer;
fail:
    json_decref(inner);
    json_decref(outer);
    return NULL;
}

enum api_error api_error_from_usersig(enum usersig_rc rc)
{
    switch (rc) {
    case USERSIG_OK:
        return API_OK;
    case USERSIG_BAD_IDENTIFIER:
        return API_ERR_BAD_IDENTIFIER;
    case USERSIG_BAD_EXPIRE:
    case USERSIG_BAD_TIME:
        return API_ERR_BAD_EXPIRE;
    case USERSIG_BAD_SDKAPPID:
        return API_ERR_INVALID_FIELD;
    case USERSIG_BAD_ROOM:
        return API_ERR_BAD_ROOM;
    case USERSIG_BAD_PRIVILEGE:
        return API_ERR_BAD_PRIVILEGE;
    case USERSIG_BAD_KEY:
    case USERSIG_KEY_CANNOT_SIGN:
        return API_ERR_BAD_KEY;
    case USERSIG_BAD_LEVEL:
    case USERSIG_NO_MEMORY:
    case USERSIG_CRYPTO_FAILED:
        break;
    }
    return API_ERR_INTERNAL;
}
