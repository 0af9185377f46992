/*
 * The admin API's HTTP mechanism: the evhttp server, the dispatcher that takes each request
 * through size, route, token, parameters, permission and body checks to its handler, and the
 * replies. Who may do what is policy and lives in routes.c; status codes live in errors.c.
 * Every request is one struct req (http_int.h) from arrival to its single reply. The query,
 * header and JSON-field helpers handlers call are in http_fields.c.
 */
#include "http.h"
#include "http_int.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

#define ALL_METHODS                                                                                \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)
#define MAX_HEADERS_SIZE (16 * 1024)
#define DEFAULT_TIMEOUT_MS 30000
#define WWW_AUTH_MISSING "Bearer realm=\"usersigd\""
#define WWW_AUTH_INVALID "Bearer realm=\"usersigd\", error=\"invalid_token\""
/* Sent when even the error body cannot be built. */
static const char fallback_500[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"internal error: out of memory\"}}\n";

struct api_server {
    struct event_base *base;
    struct api_server_config cfg;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int port;
    struct api_server_stats stats;
    struct req *streams;
};

/* ---- replies ------------------------------------------------------------------------------ */

static void access_log(struct req *f, const char *message)
{
    struct timespec now;
    const struct api_principal *p = f->pub.principal;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - f->started.tv_sec) * 1e3 +
                (double)(now.tv_nsec - f->started.tv_nsec) / 1e6;
    log_msg(api_error_level(f->err), f->pub.request_id, "%s %s %d %s%s%s (%.1f ms, token %s)",
            api_method_name(f->pub.method), f->path, f->status, api_error_code(f->err),
            message ? ": " : "", message ? message : "", ms, p ? p->name : "-");
}

/* The one place a reply is claimed: false (and a logged bug) for a second one. */
static bool claim_reply(struct req *f, const char *what)
{
    if (f->state == ST_NEW)
        return true;
    if (f->server != NULL)
        f->server->stats.double_replies++;
    log_msg(LOG_ERROR, f->pub.request_id, "bug: a second reply (%s) to %s %s was refused", what,
            api_method_name(f->pub.method), f->path);
    assert(!"a second reply to one request");
    return false;
}

static int add_standard_headers(struct req *f, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(f->pub.req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_remove_header(h, "X-Request-Id");
    if (evhttp_add_header(h, "Content-Type", content_type) ||
        evhttp_add_header(h, "Cache-Control", "no-store") ||
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff") ||
        evhttp_add_header(h, "X-Request-Id", f->pub.request_id))
        return -1;
    return 0;
}

static int dump_to_evbuffer(const char *buffer, size_t size, void *data)
{
    return evbuffer_add(data, buffer, size) == 0 ? 0 : -1;
}

/* Sends status with body (stolen) and logs; on any allocation failure sends the fixed 500. */
static void send_json(struct req *f, int status, enum api_error err, json_t *body,
                      const char *message)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(f->pub.req);
    bool ok = body != NULL && json_dump_callback(body, dump_to_evbuffer, out, JSON_COMPACT) == 0 &&
              evbuffer_add(out, "\n", 1) == 0 && add_standard_headers(f, "application/json") == 0;
    char note[64];
    json_decref(body);
    if (!ok) {
        evbuffer_drain(out, evbuffer_get_length(out));
        (void)evbuffer_add_reference(out, fallback_500, sizeof fallback_500 - 1, NULL, NULL);
        (void)add_standard_headers(f, "application/json");
        snprintf(note, sizeof note, "out of memory building a %d reply", status);
        status = 500;
        err = API_ERR_INTERNAL;
        message = note;
    }
    f->state = ST_REPLIED;
    f->status = status;
    f->err = err;
    if (f->server != NULL) {
        f->server->stats.replies++;
        if (status == 500)
            f->server->stats.internal_errors++;
    }
    evhttp_send_reply(f->pub.req, status, NULL, NULL);
    access_log(f, message);
}

int api_reply_header(struct api_request *r, const char *name, const char *value)
{
    if (r->req == NULL || req_of(r)->state != ST_NEW)
        return -1;
    return evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value) == 0 ? 0 : -1;
}

void api_reply_json(struct api_request *r, int status, json_t *body)
{
    struct req *f = req_of(r);
    if (!claim_reply(f, "json") || r->req == NULL) {
        json_decref(body);
        return;
    }
    if (body == NULL) {
        send_json(f, 500, API_ERR_INTERNAL, api_error_body(API_ERR_INTERNAL, NULL),
                  "out of memory building the reply");
        return;
    }
    send_json(f, status, status >= 500 ? API_ERR_INTERNAL : API_OK, body, NULL);
}

void api_reply_error(struct api_request *r, enum api_error err, const char *fmt, ...)
{
    struct req *f = req_of(r);
    char message[512];
    const char *msg = NULL;
    va_list ap;

    if (!claim_reply(f, api_error_code(err)) || r->req == NULL)
        return;
    if (err == API_OK || (unsigned)err >= API_ERR_COUNT) {
        log_msg(LOG_ERROR, r->request_id, "bug: api_reply_error with result %d", (int)err);
        err = API_ERR_INTERNAL;
        fmt = NULL;
    }
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        msg = message;
    }
    if (err == API_ERR_UNAUTHORIZED) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        if (evhttp_find_header(h, "WWW-Authenticate") == NULL &&
            evhttp_add_header(h, "WWW-Authenticate", WWW_AUTH_MISSING) != 0) {
            send_json(f, 500, API_ERR_INTERNAL, NULL, NULL);
            return;
        }
    }
    send_json(f, api_error_status(err), err, api_error_body(err, msg),
              msg ? msg : api_error_info(err)->message);
}

void api_handler_not_implemented(struct api_request *r)
{
    api_reply_error(r, API_ERR_NOT_IMPLEMENTED, "%s %s is not implemented yet",
                    api_method_name(r->method), r->route ? r->route->pattern : r->path);
}

/* ---- streamed replies --------------------------------------------------------------------- */

static void stream_unlink(struct req *f)
{
    if (f->server == NULL)
        return;
    if (f->prev != NULL)
        f->prev->next = f->next;
    else if (f->server->streams == f)
        f->server->streams = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    f->server->stats.in_flight--;
}

static void notify_close(struct req *f)
{
    void (*cb)(struct api_request *, void *) = f->close_cb;
    f->close_cb = NULL;
    if (cb != NULL)
        cb(&f->pub, f->close_arg);
}

/* The connection under a stream is going away: either libevent detached the request (the
 * client left: it is ours to end) or it is about to free it with the connection. */
static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    struct req *f = arg;
    if (f->pub.req != NULL && evhttp_request_get_connection(f->pub.req) == evcon)
        f->pub.req = NULL;
    f->gone = true;
    notify_close(f);
}

static void on_chunk_sent(struct evhttp_connection *evcon, void *arg)
{
    struct req *f = arg;
    void (*cb)(struct api_request *, void *) = f->sent_cb;
    (void)evcon;
    f->sent_cb = NULL;
    if (cb != NULL)
        cb(&f->pub, f->sent_arg);
}

/* Wipes the string values of a request body before it is freed: a body may carry a key
 * (POST /v1/apps/{sdkappid}/keys). jansson's strings are the object's own buffers. */
static void wipe_json_strings(json_t *v, int depth)
{
    const char *key;
    json_t *item;
    size_t i;

    if (v == NULL || depth > API_JSON_MAX_DEPTH)
        return;
    if (json_is_string(v)) {
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            wipe_json_strings(item, depth + 1);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            wipe_json_strings(item, depth + 1);
        }
    }
}

static void request_free(struct req *f)
{
    wipe_json_strings(f->pub.body, 0);
    json_decref(f->pub.body);
    free(f->query_buf);
    explicit_bzero(&f->principal, sizeof f->principal);
    free(f);
}

int api_reply_start(struct api_request *r, int status, const char *content_type)
{
    struct req *f = req_of(r);
    struct evhttp_connection *evcon;
    if (!claim_reply(f, "stream") || r->req == NULL)
        return -1;
    if (add_standard_headers(f, content_type) != 0) {
        send_json(f, 500, API_ERR_INTERNAL, NULL, NULL);
        return -1;
    }
    f->state = ST_STREAMING;
    f->status = status;
    f->err = status >= 500 ? API_ERR_INTERNAL : API_OK;
    evhttp_send_reply_start(r->req, status, NULL);
    evcon = evhttp_request_get_connection(r->req);
    if (evcon != NULL)
        evhttp_connection_set_closecb(evcon, on_connection_close, f);
    if (f->server != NULL) {
        f->server->stats.replies++;
        f->server->stats.in_flight++;
        f->next = f->server->streams;
        if (f->next != NULL)
            f->next->prev = f;
        f->server->streams = f;
    }
    return 0;
}

int api_reply_chunk(struct api_request *r, struct evbuffer *data,
                    void (*sent)(struct api_request *r, void *arg), void *arg)
{
    struct req *f = req_of(r);
    if (f->state != ST_STREAMING || api_request_gone(r))
        return -1;
    f->sent_cb = sent;
    f->sent_arg = arg;
    evhttp_send_reply_chunk_with_cb(r->req, data, on_chunk_sent, f);
    return 0;
}

/* The end of a stream has been written out (evhttp calls this before it frees the request; not
 * when the client left first: shutdown's grace period bounds that case). */
static void stream_flushed(struct evhttp_request *req, void *arg)
{
    struct api_server *s = arg;
    (void)req;
    if (s->stats.unflushed > 0)
        s->stats.unflushed--;
}

void api_reply_end(struct api_request *r)
{
    struct req *f = req_of(r);
    if (f->state != ST_STREAMING) {
        log_msg(LOG_ERROR, r->request_id, "bug: api_reply_end without a started stream");
        assert(!"api_reply_end without a started stream");
        return;
    }
    if (r->req != NULL) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
        if (evcon != NULL)
            evhttp_connection_set_closecb(evcon, NULL, NULL);
        if (f->server != NULL && evcon != NULL) {
            /* Counted until its last bytes are written, so that a shutdown waits for them. */
            f->server->stats.unflushed++;
            evhttp_request_set_on_complete_cb(r->req, stream_flushed, f->server);
        }
        evhttp_send_reply_end(r->req); /* frees a detached request too */
        r->req = NULL;
    }
    stream_unlink(f);
    access_log(f, f->gone ? "the client left before the end" : NULL);
    f->state = ST_ENDED;
    if (!f->in_handler)
        request_free(f);
}

void api_request_on_close(struct api_request *r, void (*cb)(struct api_request *r, void *arg),
                          void *arg)
{
    struct req *f = req_of(r);
    f->close_cb = cb;
    f->close_arg = arg;
}

bool api_request_gone(const struct api_request *r)
{
    return r->req == NULL || evhttp_request_get_connection(r->req) == NULL || req_of(r)->gone;
}

/* ---- the dispatcher ----------------------------------------------------------------------- */

static bool is_token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* Copies the b64token of "Authorization: Bearer <token>" into token; false when absent, given
 * twice or malformed. */
static bool bearer_token(struct evhttp_request *req, char token[API_TOKEN_MAX + 1])
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *v = NULL;
    size_t n = 0;
    for (struct evkeyval *kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, "Authorization") != 0)
            continue;
        if (v != NULL)
            return false;
        v = kv->value;
    }
    if (v == NULL)
        return false;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return false;
    v += 6;
    while (*v == ' ' || *v == '\t')
        v++;
    while (is_token_char(v[n]) && n < API_TOKEN_MAX)
        n++;
    while (v[n] == '=' && n < API_TOKEN_MAX)
        n++;
    if (n == 0)
        return false;
    memcpy(token, v, n);
    token[n] = '\0';
    for (v += n; *v == ' ' || *v == '\t'; v++)
        ;
    return *v == '\0';
}

static void allow_header(struct req *f, unsigned allow)
{
    static const enum evhttp_cmd_type order[] = {EVHTTP_REQ_GET, EVHTTP_REQ_POST, EVHTTP_REQ_PUT,
                                                 EVHTTP_REQ_PATCH, EVHTTP_REQ_DELETE};
    char buf[64] = "";
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (allow & (unsigned)order[i])
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? ", " : "",
                     api_method_name(order[i]));
    if (api_reply_header(&f->pub, "Allow", buf) != 0) /* the 405 goes without it */
        log_msg(LOG_WARN, f->pub.request_id, "out of memory adding the Allow header");
}

static bool json_content_type(const char *ct)
{
    const char *p;
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    for (p = ct + 16; *p == ' ' || *p == '\t'; p++)
        ;
    if (*p == '\0')
        return true;
    if (*p++ != ';')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    return strcasecmp(p, "charset=utf-8") == 0 || strcasecmp(p, "charset=\"utf-8\"") == 0;
}

/* Nesting of [ and { outside strings, before jansson sees the text (it recurses). */
static bool json_depth_ok(const char *p, size_t n, int max)
{
    int depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

/* Parses the JSON body into r->body; false after replying. */
static bool read_json_body(struct req *f, struct evbuffer *in, size_t len)
{
    struct api_request *r = &f->pub;
    json_error_t jerr;
    const char *data;
    char *near;

    if (len == 0) {
        if (r->route->body == API_BODY_JSON_OPTIONAL)
            return true;
        api_reply_error(r, API_ERR_BAD_JSON, "this route needs a JSON object body");
        return false;
    }
    if (!json_content_type(api_request_header(r, "Content-Type"))) {
        api_reply_error(r, API_ERR_UNSUPPORTED_MEDIA_TYPE,
                        "send the body with Content-Type: application/json");
        return false;
    }
    data = (const char *)evbuffer_pullup(in, -1);
    if (data == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory reading the body");
        return false;
    }
    if (!json_depth_ok(data, len, API_JSON_MAX_DEPTH)) {
        api_reply_error(r, API_ERR_BAD_JSON, "the body nests arrays and objects deeper than %d",
                        API_JSON_MAX_DEPTH);
        return false;
    }
    r->body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    /* The raw text may hold a key; the parsed object is all a handler reads. */
    OPENSSL_cleanse((void *)data, len);
    if (r->body == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            api_reply_error(r, API_ERR_INTERNAL, "out of memory parsing the body");
            return false;
        }
        /* jansson quotes the text around the error ("near '...'"): it may be a secret, so it
         * goes neither to the log nor back. */
        if ((near = strstr(jerr.text, " near ")) != NULL)
            *near = '\0';
        api_reply_error(r, API_ERR_BAD_JSON, "invalid JSON at line %d, column %d: %s", jerr.line,
                        jerr.column, jerr.text);
        return false;
    }
    if (!json_is_object(r->body)) {
        api_reply_error(r, API_ERR_BAD_JSON, "the body must be a JSON object");
        return false;
    }
    return true;
}

static void dispatch(struct api_server *s, struct req *f)
{
    struct api_request *r = &f->pub;
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in), limit = s->cfg.max_body;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    struct api_match m;
    enum api_match_rc rc;
    char why[160];

    rc = api_route_match(s->cfg.routes, s->cfg.n_routes, r->method, r->path, &m);
    r->route = m.route;
    if (m.route != NULL && m.route->body == API_BODY_RAW)
        limit = s->cfg.max_body_large;
    if (len > limit) {
        api_reply_error(r, API_ERR_BODY_TOO_LARGE,
                        "the body is %zu bytes; this route takes at most %zu bytes%s", len, limit,
                        m.route && m.route->body == API_BODY_RAW
                            ? ": split the input into several requests"
                            : "");
        return;
    }
    if (rc == API_MATCH_NO_PATH) {
        api_reply_error(r, API_ERR_NOT_FOUND, "no such path: see openapi.yaml for the routes");
        return;
    }
    if (rc == API_MATCH_NO_METHOD) {
        allow_header(f, m.allow);
        api_reply_error(r, API_ERR_METHOD_NOT_ALLOWED, "%s is not allowed here",
                        api_method_name(r->method));
        return;
    }
    if (m.route->perm != API_PERM_PUBLIC) {
        char token[API_TOKEN_MAX + 1];
        int arc = API_AUTH_NOT_FOUND;
        if (!bearer_token(r->req, token)) {
            api_reply_error(r, API_ERR_UNAUTHORIZED,
                            "send an API token as \"Authorization: Bearer <token>\"");
            return;
        }
        arc = s->cfg.authenticate(s->cfg.ctx, token, &f->principal);
        explicit_bzero(token, sizeof token);
        f->principal.name[API_PRINCIPAL_NAME_BUF - 1] = '\0';
        if (arc == API_AUTH_OK && ((unsigned)f->principal.role >= API_ROLE_COUNT ||
                                   f->principal.n_apps > API_PRINCIPAL_MAX_APPS)) {
            log_msg(LOG_ERROR, r->request_id, "authenticate gave role %d with %zu apps",
                    (int)f->principal.role, f->principal.n_apps);
            arc = -1;
        }
        if (arc == API_AUTH_NOT_FOUND) {
            if (api_reply_header(r, "WWW-Authenticate", WWW_AUTH_INVALID) != 0) {
                api_reply_error(r, API_ERR_INTERNAL, "out of memory");
                return;
            }
            api_reply_error(r, API_ERR_UNAUTHORIZED,
                            "the API token is unknown, expired or revoked");
            return;
        }
        if (arc == API_AUTH_ERROR) {
            api_reply_error(r, API_ERR_UNAVAILABLE, "cannot check the API token now; retry later");
            return;
        }
        if (arc != API_AUTH_OK) {
            api_reply_error(r, API_ERR_INTERNAL, NULL);
            return;
        }
        r->principal = &f->principal;
    }
    if (rc == API_MATCH_BAD_PARAM) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "path parameter {%s} must be %s", m.bad_param,
                        m.bad_param_rule);
        return;
    }
    r->sdkappid = m.sdkappid;
    r->key_version = m.key_version;
    r->id = m.id;
    switch (api_query_parse(f, uri ? evhttp_uri_get_query(uri) : NULL, why, sizeof why)) {
    case 0:
        break;
    case -1:
        api_reply_error(r, API_ERR_INVALID_PARAM, "%s", why);
        return;
    default:
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    switch (api_authorize(r->principal, m.route, m.sdkappid)) {
    case API_AUTHZ_ALLOW:
        break;
    case API_AUTHZ_UNAUTHENTICATED:
        api_reply_error(r, API_ERR_UNAUTHORIZED, NULL);
        return;
    case API_AUTHZ_ROLE:
        api_reply_error(r, API_ERR_FORBIDDEN, "role %s may not %s %s",
                        api_role_name(r->principal->role), api_method_name(r->method),
                        m.route->pattern);
        return;
    case API_AUTHZ_SCOPE:
        if (m.route->flags & API_ROUTE_ALL_APPS)
            api_reply_error(r, API_ERR_FORBIDDEN, "this needs a token that covers every app");
        else
            api_reply_error(r, API_ERR_FORBIDDEN, "the token does not cover app %u", m.sdkappid);
        return;
    }
    if ((m.route->body == API_BODY_JSON || m.route->body == API_BODY_JSON_OPTIONAL) &&
        !read_json_body(f, in, len))
        return;
    m.route->handler(r);
}

static void on_request(struct evhttp_request *evreq, void *arg)
{
    struct api_server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(evreq);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    uint8_t rnd[API_REQUEST_ID_LEN / 2];
    struct req *f;

    s->stats.requests++;
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        struct evbuffer *out = evhttp_request_get_output_buffer(evreq);
        log_error("out of memory for a request; sent 500");
        s->stats.internal_errors++;
        s->stats.replies++;
        (void)evbuffer_add_reference(out, fallback_500, sizeof fallback_500 - 1, NULL, NULL);
        evhttp_send_reply(evreq, 500, NULL, NULL);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &f->started);
    f->server = s;
    f->pub.req = evreq;
    f->pub.method = evhttp_request_get_command(evreq);
    f->pub.ctx = s->cfg.ctx;
    evutil_secure_rng_get_bytes(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(f->pub.request_id + 2 * i, 3, "%02x", rnd[i]);
    /* A longer path keeps only its start here (for the log); matching sees it whole. */
    snprintf(f->path, sizeof f->path, "%s", path ? path : "");
    f->pub.path = f->path;

    f->in_handler = true;
    if (path != NULL && strlen(path) > API_PATH_MAX)
        api_reply_error(&f->pub, API_ERR_NOT_FOUND, "the path is over %d bytes", API_PATH_MAX);
    else
        dispatch(s, f);
    f->in_handler = false;

    if (f->state == ST_NEW) {
        s->stats.missing_replies++;
        log_msg(LOG_ERROR, f->pub.request_id, "bug: %s %s returned without a reply",
                api_method_name(f->pub.method), f->path);
        assert(!"a handler returned without a reply");
        api_reply_error(&f->pub, API_ERR_INTERNAL, NULL);
    }
    if (f->state != ST_STREAMING)
        request_free(f);
}

/* ---- the server --------------------------------------------------------------------------- */

struct api_server *api_server_new(struct event_base *base, const struct api_server_config *cfg,
                                  char *err, size_t errlen)
{
    struct api_server *s = NULL;
    struct timeval tv;
    size_t hard;

    if (base == NULL || cfg == NULL || cfg->listen == NULL || cfg->authenticate == NULL ||
        cfg->routes == NULL || cfg->max_body == 0) {
        snprintf(err, errlen, "api server: listen, max_body, routes and authenticate are needed");
        return NULL;
    }
    if (api_routes_check(cfg->routes, cfg->n_routes, err, errlen) != 0)
        return NULL;
    if (evutil_secure_rng_init() != 0) {
        snprintf(err, errlen, "api server: cannot seed the random generator for request ids");
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    s->base = base;
    s->cfg = *cfg;
    if (s->cfg.max_body_large < s->cfg.max_body)
        s->cfg.max_body_large = s->cfg.max_body;
    if (s->cfg.request_timeout_ms <= 0)
        s->cfg.request_timeout_ms = DEFAULT_TIMEOUT_MS;
    s->http = evhttp_new(base);
    if (s->http == NULL)
        goto oom;
    hard = s->cfg.max_body_large;
    hard = hard > (size_t)INT64_MAX / 2 ? (size_t)INT64_MAX / 2 : hard + API_BODY_SLACK;
    evhttp_set_max_body_size(s->http, (ev_ssize_t)hard);
    evhttp_set_max_headers_size(s->http, MAX_HEADERS_SIZE);
    evhttp_set_allowed_methods(s->http, ALL_METHODS);
    tv.tv_sec = (time_t)(s->cfg.request_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(s->cfg.request_timeout_ms % 1000) * 1000;
    evhttp_set_timeout_tv(s->http, &tv);
    /* Read the rest of an over-long body before the 413, so the client sees it. */
    evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_default_content_type(s->http, "application/json");
    evhttp_set_gencb(s->http, on_request, s);
    return s;
oom:
    snprintf(err, errlen, "api server: out of memory");
    api_server_free(s);
    return NULL;
}

/* "host:port", "[v6]:port"; an empty host or "*" is every address. */
static int split_listen(const char *listen, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(listen, ':'), *h = listen;
    size_t hn;
    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= portlen)
        return -1;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    hn = (size_t)(colon - listen);
    if (hn >= 2 && listen[0] == '[' && listen[hn - 1] == ']') {
        h++;
        hn -= 2;
    } else if (memchr(listen, ':', hn) != NULL) {
        return -1; /* an IPv6 address needs its brackets */
    }
    if (hn >= hostlen || atoi(colon + 1) > 65535)
        return -1;
    memcpy(host, h, hn);
    host[hn] = '\0';
    if (strcmp(host, "*") == 0)
        host[0] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

int api_server_start(struct api_server *s, char *err, size_t errlen)
{
    char host[256], port[8];
    struct addrinfo hints, *res = NULL;
    struct evconnlistener *lis = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int rc;

    if (s->bound != NULL)
        return 0;
    if (split_listen(s->cfg.listen, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, errlen, "listen address %.200s: want host:port, [ipv6]:port or *:port",
                 s->cfg.listen);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen address %.200s: %s", s->cfg.listen, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && lis == NULL; ai = ai->ai_next)
        lis = evconnlistener_new_bind(
            s->base, NULL, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
            -1, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(res);
    if (lis == NULL) {
        snprintf(err, errlen, "cannot listen on %.200s: %s", s->cfg.listen,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    s->bound = evhttp_bind_listener(s->http, lis);
    if (s->bound == NULL) {
        evconnlistener_free(lis);
        snprintf(err, errlen, "cannot listen on %.200s: out of memory", s->cfg.listen);
        return -1;
    }
    if (getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&ss, &sslen) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int api_server_port(const struct api_server *s)
{
    return s->bound ? s->port : 0;
}

void api_server_stop(struct api_server *s)
{
    if (s != NULL && s->bound != NULL) {
        evhttp_del_accept_socket(s->http, s->bound);
        s->bound = NULL;
    }
}

void api_server_free(struct api_server *s)
{
    if (s == NULL)
        return;
    api_server_stop(s);
    /* Open streams hear of it first (they may end at once); those left lose their request
     * with its connection in evhttp_free, unless libevent detached it already. */
    while (s->streams != NULL) {
        struct req *f = s->streams;
        stream_unlink(f);
        f->server = NULL;
        notify_close(f); /* may end the stream and free f: f is not touched after it */
    }
    if (s->http != NULL)
        evhttp_free(s->http);
    free(s);
}

void api_server_get_stats(const struct api_server *s, struct api_server_stats *out)
{
    *out = s->stats;
}
