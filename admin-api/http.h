/*
 * The HTTP framework of the admin API, around libevent's evhttp: one server on the caller's
 * event_base, a route table (method + path pattern -> permission, body kind, handler), request
 * ids, bearer-token authentication through a callback that may answer later, role and app-scope
 * authorization, bounded JSON bodies, and reply helpers that end every request in exactly one
 * reply, made before the handler returns, later (api_request_defer), streamed, or recorded by a
 * handler run on another thread and made on the loop thread (API_ROUTE_OFFLOAD).
 *
 * Each request goes through these steps; the first that fails is the reply:
 *   413 body over the route's limit -> 404 unknown path -> 405 known path, other method (Allow)
 *   -> 401 no or bad token (WWW-Authenticate: Bearer), 503 token not checkable now
 *   -> 400 bad path parameter, malformed query, or a query parameter the route does not take
 *   -> 403 role or app scope -> 415 not application/json -> 400 bad JSON -> the handler.
 * The query checks come after the token check so that a client without a valid token learns
 * nothing of a route but that it exists (the same 401 whatever the query).
 * Two steps may wait without blocking the loop:
 *   - The token check: the authenticate callback gets an api_auth and answers with
 *     api_auth_done(), before it returns (no allocation, no loop round trip) or later from
 *     another loop callback (a database reply). The steps after it run in that call.
 *   - The handler's reply: a handler that calls api_request_defer() may return without a reply
 *     and make it later from another loop callback.
 *   - The handler itself, on an API_ROUTE_OFFLOAD route with an offload hook: it runs on another
 *     thread (a database thread) in capture mode, its reply recorded in the request and replayed
 *     on the loop thread (api_request_capture, api_request_replay), byte for byte as direct.
 * While a request waits, the framework watches its connection: a client that leaves is noticed
 * at once (its evhttp request and connection are freed then, r->req becomes NULL); a pending
 * authentication then completes without a reply, a deferred handler hears of it through
 * api_request_on_close() and its later reply is discarded. A waiting request has no deadline
 * of its own: whatever it waits for (the database layer) bounds it.
 *
 * Threading: everything here runs on the thread of the server's event loop: api_auth_done()
 * and deferred replies too (work done on other threads posts its result back to the loop
 * first). The one exception is a handler in capture mode, which runs elsewhere and may call
 * only what "Offloaded handlers" lists. api_server_new, _start and _free may also be called
 * while that loop is not running.
 * The process must ignore SIGPIPE (a client that leaves mid-reply would otherwise kill it).
 *
 * Layers (each file calls only those below it): http.c (server, dispatcher) -> http_read.c,
 * http_fields.c -> http_reply.c -> router.c, errors.c; http.c also asks policy.c (-> router.c).
 * Handlers call the framework from above; routes.c is the route table (data), the only file
 * that names the handlers.
 */
#ifndef API_HTTP_H
#define API_HTTP_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "principal.h"

#define API_WUR __attribute__((warn_unused_result))

#define API_REQUEST_ID_LEN 64   /* characters of a request id, at most: a client's X-Request-Id */
#define API_REQUEST_ID_GEN 16   /* hex characters of one made here (unique in the process) */
#define API_TOKEN_MAX 256       /* bytes of a bearer token looked at; longer is refused */
#define API_JSON_MAX_DEPTH 16   /* nesting of arrays and objects in a request body */
#define API_QUERY_MAX 2048      /* bytes of a query string */
#define API_QUERY_MAX_PARAMS 32 /* parameters in a query string */
#define API_QUERY_VALUE_MAX 512 /* bytes of one decoded query value */
#define API_PATH_MAX 512        /* bytes of a request path; longer is 404 */
#define API_PATH_MAX_SEGMENTS 8 /* "/v1/apps/1/keys/2/disable" is 6 */
#define API_BODY_SLACK (64 * 1024) /* see api_server_config.max_body */
#define API_IDEM_KEY_MAX 128       /* characters of an Idempotency-Key (idempotency.h) */

/* ---- Principals: roles, permissions and scopes are the core's (principal.h) ---------------- */

/* Results of a token check. */
enum api_auth_rc {
    API_AUTH_OK = 0,    /* the principal is given */
    API_AUTH_NOT_FOUND, /* unknown, expired or revoked: 401 */
    API_AUTH_ERROR,     /* could not tell (database down): 503; the callback logs why */
};

/* One token check in progress, handed to api_server_config.authenticate (opaque; it lives in
 * the request, and stays valid until api_auth_done). */
struct api_auth;

/* Ends the check: rc, and for API_AUTH_OK the principal (copied; p may go right after; NULL or
 * an out-of-range role or n_apps answers 500). Call it exactly once per check, on the loop
 * thread (or, once the loop has stopped, the thread that ran it), either inside the
 * authenticate callback or later. Called later, it runs the rest of the request's steps (the
 * handler included) before it returns; when the client left meanwhile or the server was freed,
 * it only frees the request. Never call it again, nor touch call, after it. */
void api_auth_done(struct api_auth *call, enum api_auth_rc rc, const struct principal *p);
/* The request id of the request being checked, for the callback's log lines. Valid as call. */
const char *api_auth_request_id(const struct api_auth *call);

/* ---- Routes (matching and checking implemented in router.c) ---------------------------------- */

enum api_body {
    API_BODY_NONE = 0,      /* no body is read; one sent is ignored (size limit still applies) */
    API_BODY_JSON,          /* a JSON object, Content-Type application/json: r->body */
    API_BODY_JSON_OPTIONAL, /* the same, or an empty body (r->body NULL) */
    API_BODY_RAW,           /* the handler reads api_request_input() itself (batch signing);
                             * the larger limit max_body_large applies */
};

#define API_ROUTE_ALL_APPS 1u /* the token must cover every app (not scoped): token management */
/* The handler runs through api_server_config.offload (on a database thread), its reply captured
 * and replayed on the loop thread (see "Offloaded handlers" below). Not on API_BODY_RAW routes:
 * api_server_new refuses that. */
#define API_ROUTE_OFFLOAD 2u
/* Counted in the metrics (base/metrics.h) by app: a sign (the path's {sdkappid}, outcome "ok" or
 * the error code), a verify (the reply's sdkappid and verdict, or the body's sdkappid and the
 * error code). */
#define API_ROUTE_METRIC_SIGN 4u
#define API_ROUTE_METRIC_VERIFY 8u
/* Takes an Idempotency-Key (idempotency.h): a POST that creates or changes an app or a key,
 * whose reply holds no secret. Only on API_ROUTE_OFFLOAD routes: api_server_new refuses it
 * elsewhere. */
#define API_ROUTE_IDEMPOTENT 16u

struct api_request;

struct api_route {
    enum evhttp_cmd_type method; /* EVHTTP_REQ_GET, _POST, _PATCH, _DELETE, _PUT */
    const char *pattern;         /* "/v1/apps/{sdkappid}/keys/{version}/disable" */
    const char *op;              /* the operationId in openapi.yaml ("disableKey") */
    enum perm perm;
    enum api_body body;
    unsigned flags; /* API_ROUTE_* */
    void (*handler)(struct api_request *r);
    /* The query parameters the route takes, NULL-terminated; NULL: none. The dispatcher refuses
     * any other name (400 invalid_param, naming it and the list) before the handler runs, so a
     * filter or option the route lacks is never silently ignored; the handler checks values. */
    const char *const *query;
};

/* Path parameters, each with its type and range (a value outside is 400 invalid_param):
 *   {sdkappid}  1..4294967295 -> r->sdkappid
 *   {version}   1..2147483647 -> r->key_version
 *   {id}        1..9223372036854775807 -> r->id
 * Decimal digits only: no sign, no leading zero, no percent-encoding.
 *   {file}      any one segment, empty included ("/ui/"), only as a pattern's last segment;
 *               not decoded and not stored: the handler reads it from r->path and decides. */

/* Checks a table: patterns well formed ("/"-separated literal or {param} segments, known params,
 * at most API_PATH_MAX_SEGMENTS), a handler and op each, no (method, pattern) twice, no two
 * patterns that match the same paths, GET/DELETE without a body, known perms, query lists of
 * 1..API_QUERY_MAX_PARAMS distinct names of [a-z0-9_] (an empty list is spelled NULL).
 * Returns 0, or -1 with err naming the first bad entry. api_server_new() runs it too. */
int api_routes_check(const struct api_route *routes, size_t n, char *err, size_t errlen) API_WUR;

enum api_match_rc {
    API_MATCH_OK = 0,
    API_MATCH_NO_PATH,   /* no pattern matches the path: 404 */
    API_MATCH_NO_METHOD, /* patterns match but none with this method: 405, allow is set */
    API_MATCH_BAD_PARAM, /* route is set, but a parameter is out of its type: bad_param says */
};

struct api_match {
    const struct api_route *route; /* set for OK and BAD_PARAM */
    uint32_t sdkappid;             /* 0 when the pattern has no {sdkappid} */
    uint32_t key_version;          /* 0 when no {version} */
    int64_t id;                    /* 0 when no {id} */
    const char *bad_param;         /* BAD_PARAM: "sdkappid", "version" or "id" */
    const char *bad_param_rule;    /* BAD_PARAM: "an integer from 1 to 4294967295" */
    unsigned allow;                /* NO_METHOD: the EVHTTP_REQ_* bits that the path takes */
};

/* Matches method and path (no query; as received, not percent-decoded) against the table. A
 * literal segment wins over a {param} at the same place; HEAD matches a GET route (its reply
 * goes without the body, RFC 9110 9.3.2). Pure: no allocation. */
enum api_match_rc api_route_match(const struct api_route *routes, size_t n,
                                  enum evhttp_cmd_type method, const char *path,
                                  struct api_match *out);

bool api_route_has_param(const struct api_route *route, const char *name); /* "sdkappid" */
const char *api_method_name(enum evhttp_cmd_type method);                  /* "GET"; "?" */

enum api_authz {
    API_AUTHZ_ALLOW = 0,
    API_AUTHZ_UNAUTHENTICATED, /* a route that needs a token, and p is NULL: 401 */
    API_AUTHZ_ROLE,            /* the role lacks the route's permission: 403 */
    API_AUTHZ_SCOPE, /* the token is scoped and sdkappid (or "all apps") is outside: 403 */
};

/* The authorization decision (policy.c), pure: p NULL = no token. sdkappid is the route's
 * {sdkappid} (ignored for routes without it; 0 there is outside every scope). */
enum api_authz api_authorize(const struct principal *p, const struct api_route *route,
                             uint32_t sdkappid);
/* True when p's role may call route at all and its scope does not rule it out (token routes
 * for a scoped token); a route with {sdkappid} then still needs the app in scope. What a client
 * may offer its user (GET /v1/tokens/self). False for p NULL. */
bool api_route_offered(const struct principal *p, const struct api_route *route);

/* ---- Requests -------------------------------------------------------------------------------- */

/* What a handler gets. Owned by the framework: valid until the handler returns after a plain
 * reply, until the deferred reply (api_request_defer), until api_reply_end() for a streamed
 * one, or until api_request_replay() for one in capture mode. Fields are read-only for handlers;
 * body, principal and query values stay valid as r. */
struct api_request {
    struct evhttp_request *req; /* NULL once the client left (or the server was freed) during a
                                 * deferred or streamed reply; not for handlers in capture mode */
    /* The client's X-Request-Id when it is 1..API_REQUEST_ID_LEN characters of [A-Za-z0-9._-],
     * else API_REQUEST_ID_GEN hex characters made here (never repeated in a process); echoed in
     * X-Request-Id on every reply and in every log line of the request. */
    char request_id[API_REQUEST_ID_LEN + 1];
    enum evhttp_cmd_type method;
    const char *path; /* as received, without the query */
    const struct api_route *route;
    uint32_t sdkappid;    /* {sdkappid}, 0 when the route has none */
    uint32_t key_version; /* {version}, 0 when none */
    int64_t id;           /* {id}, 0 when none */
    json_t *body; /* API_BODY_JSON*: the parsed object (borrowed: the framework decrefs it) */
    const struct principal *principal; /* NULL on public routes */
    void *ctx;                         /* api_server_config.ctx */
    /* The client's Idempotency-Key on a route that takes one (idempotency.h), "" when none,
     * and the SHA-256 of the request it came with. */
    char idempotency_key[API_IDEM_KEY_MAX + 1];
    uint8_t idempotency_hash[32];
};

/* A query parameter's percent-decoded value (NUL-terminated, no NUL inside, at most
 * API_QUERY_VALUE_MAX bytes), or NULL when absent. Valid as long as r. The framework has already
 * refused (400 invalid_param) a malformed query, a name given twice and a name not in the
 * route's query list. */
const char *api_query(const struct api_request *r, const char *name);

enum api_query_rc { API_QUERY_OK = 0, API_QUERY_ABSENT, API_QUERY_INVALID };
/* A decimal integer in min..max (optional '-', no '+', no spaces). */
enum api_query_rc api_query_int64(const struct api_request *r, const char *name, int64_t min,
                                  int64_t max, int64_t *out) API_WUR;
/* The page size of a list route: query parameter "limit", 1..max. Absent leaves *limit as it
 * is; out of range (or not an integer) replies 400 invalid_param and returns -1. 0 otherwise. */
int api_query_limit(struct api_request *r, int64_t max, size_t *limit) API_WUR;
/* Copies the first n bytes of s (at most cap - 1 of them) into dst, NUL-terminated, each byte
 * outside printable ASCII as '?': a name the client sent, shown back in an error message (which
 * must stay valid UTF-8 and one line). Returns the bytes copied. cap > 0. */
size_t api_printable_copy(char *dst, size_t cap, const char *s, size_t n);

/* A request header's value, or NULL. */
const char *api_request_header(const struct api_request *r, const char *name);
/* The raw body (API_BODY_RAW routes); the framework has checked its size. NULL when gone. For a
 * streamed body (below) it is empty. */
struct evbuffer *api_request_input(const struct api_request *r);
/* The body of an API_BODY_RAW request whose body streams (every one but an application/json
 * body, and an empty one): read as it arrives (http_frame.h: frame_stream_buffer, _state,
 * _on_data, _drained), without a size limit; the connection closes after the reply. NULL when
 * the body does not stream (read api_request_input then), or it was taken already. The caller
 * frame_stream_release()s it, whatever happens. Asks the client for the body (100 Continue)
 * when it waits for that: call it once the request is accepted. */
struct frame_stream;
struct frame_stream *api_request_stream(struct api_request *r);

/* ---- Checking a JSON body against the fields a route takes ----------------------------------- */

enum api_field_type {
    API_FIELD_STRING = 0,
    API_FIELD_INTEGER, /* a JSON integer (1, not 1.0) */
    API_FIELD_BOOLEAN,
    API_FIELD_OBJECT,
    API_FIELD_INT_ARRAY,    /* an array of integers */
    API_FIELD_STRING_ARRAY, /* an array of strings */
};

#define API_FIELD_REQUIRED 1u
#define API_FIELD_NULLABLE 2u /* null is accepted (PATCH: "clear this") */

struct api_field {
    const char *name;
    enum api_field_type type;
    unsigned flags; /* API_FIELD_* */
};

enum api_fields_rc {
    API_FIELDS_OK = 0,
    API_FIELDS_UNKNOWN, /* *which = the first body member (document order) not in fields */
    API_FIELDS_INVALID, /* *which = the first member of the wrong type */
    API_FIELDS_MISSING, /* *which = the first required field (table order) absent */
};

/* fields ends with an entry whose name is NULL. body NULL counts as {}. *which points into body
 * or fields. */
enum api_fields_rc api_fields_check(const json_t *body, const struct api_field *fields,
                                    const char **which) API_WUR;

/* api_fields_check on r->body; on failure it replies 400 unknown_field / invalid_field /
 * missing_field naming the field, and returns -1 (the handler just returns). 0 when it passes. */
int api_require_fields(struct api_request *r, const struct api_field *fields) API_WUR;

/* ---- Replies: exactly one per request -------------------------------------------------------- */

/* Adds a response header (before the reply: Location, ...). 0, or -1 when out of memory. */
int api_reply_header(struct api_request *r, const char *name, const char *value) API_WUR;

/* Replies status with body (reference stolen, even on failure). body NULL, as from a failed
 * json_object(), answers 500 internal instead. Content-Type application/json, Cache-Control
 * no-store (unless the handler set a Cache-Control header), X-Content-Type-Options nosniff,
 * X-Request-Id. */
void api_reply_json(struct api_request *r, int status, json_t *body);

/* Replies status with text (len bytes, copied) as content_type (a text/plain; version=0.0.4
 * scrape, a dashboard file), with the headers api_reply_json adds. Not in capture mode (refused:
 * a 500). */
void api_reply_text(struct api_request *r, int status, const char *content_type, const char *text,
                    size_t len);

/* Replies the table's status for err with {"error":{"code","message"}}; fmt NULL gives the
 * table's default message. 401 adds WWW-Authenticate: Bearer. Logs at the table's level. The
 * message goes to the client: never put a secret or a token in it. */
void api_reply_error(struct api_request *r, enum api_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A reply in chunks (batch signing). api_reply_start sends the status and headers (plus
 * Cache-Control no-store and X-Request-Id); each api_reply_chunk drains data into the
 * connection (data stays the caller's) and calls sent(r, arg) (may be NULL) once it is written,
 * for flow control (an empty data is not sent and sent is not called); api_reply_end finishes and
 * releases r (do not touch r after it). The handler may return after api_reply_start and go on from
 * other events; it must end with api_reply_end whatever happens, also after the client left.
 * api_reply_start returns -1 when no stream started (out of memory: a 500 went out instead; the
 * client of a deferred request left; or the request had its reply already): do not call the
 * chunk and end functions then (a deferred request is released then, as by a plain reply).
 * api_reply_chunk returns -1 when the client has left (then call api_reply_end). */
int api_reply_start(struct api_request *r, int status, const char *content_type) API_WUR;
int api_reply_chunk(struct api_request *r, struct evbuffer *data,
                    void (*sent)(struct api_request *r, void *arg), void *arg) API_WUR;
void api_reply_end(struct api_request *r);

/* A reply made later: the handler calls this and returns without a reply; it then replies
 * exactly once from another loop callback with api_reply_json / api_reply_error (or starts a
 * stream), which releases r (do not touch r after it). Until then r, r->body and r->principal
 * stay valid. A reply made after the client left is discarded, and still releases r: the
 * handler must reply whatever happens. Only from inside the handler, before its reply. */
void api_request_defer(struct api_request *r);

/* Called once if the client leaves (or the server is freed) before a deferred reply or
 * api_reply_end: the handler stops what it does and replies (discarded) or calls
 * api_reply_end. It may do so inside the callback. */
void api_request_on_close(struct api_request *r, void (*cb)(struct api_request *r, void *arg),
                          void *arg);
bool api_request_gone(const struct api_request *r);

/* ---- Offloaded handlers: run on another thread, replied on the loop --------------------------
 *
 * For an API_ROUTE_OFFLOAD route the dispatcher calls api_server_config.offload(ctx, r,
 * handler) instead of handler(r), on the loop thread. The hook either calls handler(r) there and
 * then (the ordinary way: no database thread, as in tests), or calls api_request_capture(r) and
 * hands r to another thread, which runs handler(r) (with r->ctx set to what that thread needs)
 * and then has api_request_replay(r) called on the loop thread.
 *
 * In capture mode a handler's api_reply_json, api_reply_error and api_reply_header (and so
 * api_require_fields, api_query_limit ...) touch no libevent object and no shared state: they
 * record the status, body or error and message, and headers, in r. api_query*, r->body,
 * r->principal and the path parameters read as usual; api_request_header and
 * api_request_input give NULL, api_request_gone false, and r->req must not be read (the loop
 * thread clears it when the client leaves). api_reply_start and api_request_defer are refused
 * (a 500 is recorded, and logged); api_request_on_close is ignored (logged). A second reply is
 * refused and counted, a handler that returns without a reply gets a 500 (counted), as
 * directly. The replay makes the real reply with exactly the calls the handler made, so the
 * client sees the same bytes (the access log, counters, X-Request-Id and standard headers
 * included); if the client left meanwhile (the handler still ran to completion) it is
 * discarded; either way it releases r. */

/* Puts r in capture mode and makes it wait (its connection watched, counted in deferred and
 * offloaded). Only inside the offload hook, on the loop thread, before any reply. 0, or -1 (a
 * bug, logged: called elsewhere or twice) when r is not in capture mode. */
int api_request_capture(struct api_request *r) API_WUR;
/* On the loop thread once the handler returned on its thread (or, when it never ran, after an
 * api_reply_error recorded in its place: a 503 when the work was cancelled): ends capture
 * mode, makes the recorded reply and releases r (do not touch r after it). May be called
 * inside the hook too. */
void api_request_replay(struct api_request *r);

/* True while r is in capture mode (between api_request_capture and the replay). */
bool api_request_capturing(const struct api_request *r);
/* In capture mode, after the handler: the reply it recorded, as its status and a new JSON body
 * (an error as its {"error":{"code","message"}} body); caller json_decref()s *body. 0, or -1
 * when r is not in capture mode, recorded no reply, or memory ran out. */
int api_request_recorded(const struct api_request *r, int *status, json_t **body) API_WUR;

/* The 501 not_implemented handler for routes whose handler is not written yet. */
void api_handler_not_implemented(struct api_request *r);

/* ---- The server ------------------------------------------------------------------------------ */

struct api_server_config {
    const char *listen; /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0" (any free port); a
                         * host name is resolved once, at api_server_start */
    /* Bodies over max_body (max_body_large for API_BODY_RAW routes; 0 = max_body) get a JSON 413.
     * evhttp itself cuts a body off at the larger of the two plus API_BODY_SLACK (a plain 413,
     * then the connection closes), so memory stays bounded. */
    size_t max_body;
    size_t max_body_large;
    int64_t request_timeout_ms; /* read/write inactivity timeout of a connection; 0: 30 s */
    const struct api_route *routes;
    size_t n_routes;
    /* Called for each request to a non-public route with the bearer token (NUL-terminated,
     * never logged). It ends the check with api_auth_done(call, ...), before it returns or
     * later. token is wiped when the callback returns: copy what a later answer needs (and wipe
     * the copy). Runs on the loop thread. */
    void (*authenticate)(void *ctx, const char *token, struct api_auth *call);
    /* Optional: how the handler of an API_ROUTE_OFFLOAD route runs (see "Offloaded handlers");
     * NULL runs it at once, on the loop thread, as any other. Called on the loop thread. */
    void (*offload)(void *ctx, struct api_request *r, void (*handler)(struct api_request *r));
    /* CORS (cors.h): the origins allowed, comma-separated ("https://a.example, https://b.example");
     * NULL or "" is off. Checked by api_server_new. */
    const char *cors_origins;
    void *ctx; /* passed to authenticate, offload and, as r->ctx, to handlers */
    /* TLS on every connection (tls.h), or NULL for plain HTTP. Borrowed: it must outlive the
     * server; api_tls_reload() on it applies to the connections accepted after. */
    struct api_tls *tls;
};

struct api_server; /* opaque */

/* Creates the server on base (not listening yet). cfg is copied; the strings, routes and ctx it
 * points to must outlive the server. Returns NULL with err filled (bad config, route table, or
 * out of memory). */
struct api_server *api_server_new(struct event_base *base, const struct api_server_config *cfg,
                                  char *err, size_t errlen) API_WUR;
/* Binds and listens. 0, or -1 with err filled. */
int api_server_start(struct api_server *s, char *err, size_t errlen) API_WUR;
/* The bound port (after api_server_start), 0 before. */
int api_server_port(const struct api_server *s);
/* Stops accepting connections; requests in flight go on. */
void api_server_stop(struct api_server *s);
/* Frees everything (accepts NULL) and closes every connection. Streamed replies still open and
 * deferred replies not made yet get their close callback first; then only api_reply_end, or
 * the (discarded) deferred reply, may be called on them, and it releases the request. A
 * handler still running in capture mode goes on; its api_request_replay() later is discarded
 * and only frees its request (no libevent object touched, as for a late token check). A token
 * check still pending is not cancelled: its api_auth_done() later only frees its request (it
 * touches no libevent object, so it may come after event_base_free too).
 * Order at shutdown: api_server_stop, api_server_free, then free the database layer, which must
 * end every check it still holds with api_auth_done (API_AUTH_ERROR) and let deferred handlers
 * reply; then event_base_free. Freeing the database layer first is safe as well, provided it
 * ends its checks the same way (with the server still there, those requests answer 503). */
void api_server_free(struct api_server *s);

struct api_server_stats {
    uint64_t requests;        /* that reached the dispatcher */
    uint64_t replies;         /* requests that got their one reply (started, for streams) */
    uint64_t in_flight;       /* streamed replies not ended yet */
    uint64_t unflushed;       /* streamed replies ended but not yet written out to the client */
    uint64_t double_replies;  /* bug: a second reply refused (debug builds assert) */
    uint64_t missing_replies; /* bug: a handler returned without replying (answered 500) */
    uint64_t internal_errors; /* 500 replies, allocation failures included */
    uint64_t auth_waiting;    /* requests whose token check has not answered yet */
    uint64_t deferred;        /* requests whose handler deferred its reply (or runs in capture
                               * mode), not made yet */
    uint64_t offloaded;       /* requests put in capture mode, in all */
    uint64_t replies_dropped; /* requests whose client left before their (late) reply */
};
void api_server_get_stats(const struct api_server *s, struct api_server_stats *out);
/* The stats of the server r came through (zeros once it is freed). Loop thread only. */
void api_request_server_stats(const struct api_request *r, struct api_server_stats *out);
/* The client connections open now on the server r came through, or -1 when it cannot tell (no
 * listener, no /proc). A system call per open file descriptor: for a scrape, not a request. */
int64_t api_request_open_connections(const struct api_request *r);

#endif
