/*
 * The error table of the admin API: every result a request can end with, as one enum mapped
 * (errors.c) to its HTTP status, the stable code string clients match on, the log level its
 * access line is written at, and a default message. Error bodies are
 * {"error":{"code":"...","message":"..."}}; the codes are part of the API (openapi.yaml lists
 * them under ErrorCode, and tests/unit/test_routes.c checks that list against this table).
 */
#ifndef API_ERRORS_H
#define API_ERRORS_H

#include <jansson.h>

#include "log.h"
#include "usersig.h"

enum api_error {
    API_OK = 0, /* not an error: the row that gives successful replies their log level */

    /* 400: the request is wrong, and the message says which part. */
    API_ERR_BAD_JSON,       /* the body is not a JSON object (syntax, depth, duplicate key) */
    API_ERR_INVALID_FIELD,  /* a body field has the wrong type or value */
    API_ERR_UNKNOWN_FIELD,  /* a body field the route does not take */
    API_ERR_MISSING_FIELD,  /* a required body field is absent */
    API_ERR_INVALID_PARAM,  /* a path or query parameter is malformed or out of range */
    API_ERR_BAD_IDENTIFIER, /* the UserID breaks the app's identifier policy or length */
    API_ERR_BAD_EXPIRE,     /* expire is 0 or beyond the app's max_expire */
    API_ERR_BAD_ROOM,       /* room_id / room_str out of range, or both given */
    API_ERR_BAD_PRIVILEGE,  /* privilege_map outside 0..255, or without a room */
    API_ERR_BAD_KEY,        /* the secret or PEM is not a usable key */
    API_ERR_BAD_REQUEST,    /* the request's framing breaks HTTP/1.1 (admin-api/http_frame.c) */

    API_ERR_UNAUTHORIZED,            /* 401: no bearer token, or not a valid one */
    API_ERR_FORBIDDEN,               /* 403: the token's role or app scope does not cover it */
    API_ERR_CORS_FORBIDDEN,          /* 403: a CORS preflight from an origin not allowed */
    API_ERR_ADMIN_IDENTIFIER,        /* 403: the identifier is an app administrator's */
    API_ERR_IDENTIFIER_PREFIX,       /* 403: the identifier starts with none of the prefixes */
    API_ERR_REST_NOT_ALLOWED,        /* 403: servicename/command outside the token's rest_allow */
    API_ERR_NOT_FOUND,               /* 404: no such path */
    API_ERR_APP_NOT_FOUND,           /* 404 */
    API_ERR_REQUEST_TIMEOUT,         /* 408: the request head did not arrive in time */
    API_ERR_KEY_NOT_FOUND,           /* 404 */
    API_ERR_TOKEN_NOT_FOUND,         /* 404 */
    API_ERR_METHOD_NOT_ALLOWED,      /* 405: the path exists; the Allow header lists methods */
    API_ERR_APP_EXISTS,              /* 409: an app with this sdkappid exists */
    API_ERR_KEY_USED_BY_OTHER_APP,   /* 409: another app holds (or held) this key */
    API_ERR_CONFLICT,                /* 409: another uniqueness refused the change */
    API_ERR_INVALID_STATE,           /* 409: not in this state (destroying the active key) */
    API_ERR_IDEMPOTENCY_IN_PROGRESS, /* 409: the first request with this Idempotency-Key runs */
    API_ERR_BODY_TOO_LARGE,          /* 413 */
    API_ERR_URI_TOO_LONG,            /* 414 */
    API_ERR_UNSUPPORTED_MEDIA_TYPE,  /* 415 */
    API_ERR_IDEMPOTENCY_KEY_REUSED,  /* 422: this Idempotency-Key went with another request */
    API_ERR_HEADERS_TOO_LARGE,       /* 431: a header line, their count or the whole head */
    API_ERR_TOO_MANY_BATCHES,        /* 429: batch_max_running batches run already */
    API_ERR_TOKEN_SIGNS_PER_SECOND,  /* 429: the API token's signs_per_second (Retry-After) */
    API_ERR_APP_SIGNS_PER_SECOND,    /* 429: the app's signs_per_second (Retry-After) */
    API_ERR_TOKEN_BATCH_TOKENS_PER_DAY, /* 429: the API token's batch_tokens_per_day */
    API_ERR_APP_BATCH_TOKENS_PER_DAY,   /* 429: the app's batch_tokens_per_day */
    API_ERR_TENCENT_RATE_LIMITED,       /* 429: the app's calls to Tencent are at their limit */

    API_ERR_INTERNAL,            /* 500: a bug or an allocation failure; logged with the reason */
    API_ERR_NOT_IMPLEMENTED,     /* 501: the route is in the table but its handler is not written */
    API_ERR_TENCENT_UNREACHABLE, /* 502: no connection to Tencent (connect, TLS, ...) */
    API_ERR_TENCENT_BAD_REPLY,   /* 502: Tencent's answer is not its JSON, or not HTTP 200 */
    API_ERR_UNAVAILABLE,         /* 503: the database cannot be reached */
    API_ERR_TENCENT_TIMEOUT,     /* 504: Tencent did not answer within tencent_timeout */
    API_ERR_HTTP_VERSION,        /* 505: not HTTP/1.1 or HTTP/1.0 */

    API_ERR_COUNT
};

struct api_error_info {
    const char *code;     /* "bad_json": stable, never reworded */
    int status;           /* HTTP status */
    enum log_level level; /* access-log level: 4xx INFO or DEBUG, 5xx ERROR */
    const char *message;  /* default message, when the caller gives none */
};

/* The row for err; an out-of-range value gives the API_ERR_INTERNAL row. Never NULL. */
const struct api_error_info *api_error_info(enum api_error err);

int api_error_status(enum api_error err);
const char *api_error_code(enum api_error err);
enum log_level api_error_level(enum api_error err);

/* The enum value of a code string ("app_not_found"); -1 when unknown. */
int api_error_parse(const char *code);

/* Returns a new {"error":{"code":...,"message":...}} (message NULL: the default one), or NULL
 * when an allocation fails; caller json_decref()s it. */
json_t *api_error_body(enum api_error err, const char *message);

/* The codec's signing-side results as API errors (USERSIG_OK gives API_OK; memory and crypto
 * failures API_ERR_INTERNAL). The message to send is usersig_rc_message(rc). */
enum api_error api_error_from_usersig(enum usersig_rc rc);

#endif
