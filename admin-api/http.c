/*
 * The admin API's HTTP server: the evhttp listener on the caller's event_base, and the
 * dispatcher that takes each request through size, route, token, parameters, permission and
 * body checks to its handler (directly, or through the offload hook for API_ROUTE_OFFLOAD
 * routes), resuming after a token check that answers later. The top of the
 * framework: it calls router.c and policy.c (pure decisions), http_read.c (token, body),
 * http_fields.c (query) and http_reply.c (replies), and none of them calls back here. Every request
 * is one struct req (http_int.h).
 */
#include "http.h"
#include "http_int.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "cors.h"
#include "hex.h"
#include "idempotency.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"

#define ALL_METHODS                                                                                \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)
/* Above the framing filter's own bound (http_frame.h), which answers first, in JSON. */
#define MAX_HEADERS_SIZE (FRAME_MAX_HEAD + 4096)
#define DEFAULT_TIMEOUT_MS 30000
#define WWW_AUTH_INVALID "Bearer realm=\"usersigd\", error=\"invalid_token\""

/* ---- the dispatcher ----------------------------------------------------------------------- */

static void allow_header(struct req *f, unsigned allow)
{
    static const enum evhttp_cmd_type order[] = {EVHTTP_REQ_GET,   EVHTTP_REQ_HEAD,
                                                 EVHTTP_REQ_POST,  EVHTTP_REQ_PUT,
                                                 EVHTTP_REQ_PATCH, EVHTTP_REQ_DELETE};
    char buf[64] = "";
    if (allow & (unsigned)EVHTTP_REQ_GET)
        allow |= (unsigned)EVHTTP_REQ_HEAD; /* served as GET without the body */
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (allow & (unsigned)order[i])
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? ", " : "",
                     api_method_name(order[i]));
    if (api_reply_header(&f->pub, "Allow", buf) != 0) /* the 405 goes without it */
        log_msg(LOG_WARN, f->pub.request_id, "out of memory adding the Allow header");
}

/* The steps after the token check: path parameters, query, permission, body, the handler. */
static void dispatch_checked(struct req *f)
{
    struct api_request *r = &f->pub;
    const struct api_match *m = &f->match;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    char why[320]; /* a 64-byte name and the longest query list fit */

    if (f->match_rc == API_MATCH_BAD_PARAM) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "path parameter {%s} must be %s", m->bad_param,
                        m->bad_param_rule);
        return;
    }
    r->sdkappid = m->sdkappid;
    r->key_version = m->key_version;
    r->id = m->id;
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
    /* Here, with the malformed query: after the token check (a client without a valid token
     * learns nothing of the route's parameters), before the role check (the list is the one
     * openapi.yaml publishes, and a client that sent a wrong name hears of its mistake first). */
    if (api_query_check_names(f, m->route->query, why, sizeof why) != 0) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "%s", why);
        return;
    }
    switch (api_authorize(r->principal, m->route, m->sdkappid)) {
    case API_AUTHZ_ALLOW:
        break;
    case API_AUTHZ_UNAUTHENTICATED:
        api_reply_error(r, API_ERR_UNAUTHORIZED, NULL);
        return;
    case API_AUTHZ_ROLE:
        api_reply_error(r, API_ERR_FORBIDDEN, "role %s may not %s %s",
                        role_name(r->principal->role), api_method_name(r->method),
                        m->route->pattern);
        return;
    case API_AUTHZ_SCOPE:
        if (m->route->flags & API_ROUTE_ALL_APPS)
            api_reply_error(r, API_ERR_FORBIDDEN, "this needs a token that covers every app");
        else
            api_reply_error(r, API_ERR_FORBIDDEN, "the token does not cover app %u", m->sdkappid);
        return;
    }
    /* Idempotency-Key: checked and the raw body hashed before it is parsed (and wiped); it is
     * acted on only through the offload hook, where its claim runs on a database thread. */
    bool idem = idem_route_takes_key(m->route) && f->server->cfg.offload != NULL;
    if (idem && idem_prepare(r, in) != 0)
        return;
    if ((m->route->body == API_BODY_JSON || m->route->body == API_BODY_JSON_OPTIONAL) &&
        !api_read_json_body(f, in, evbuffer_get_length(in)))
        return;
    if ((m->route->flags & API_ROUTE_OFFLOAD) && f->server->cfg.offload != NULL)
        f->server->cfg.offload(f->server->cfg.ctx, r,
                               idem && r->idempotency_key[0] != '\0' ? idem_handler
                                                                     : m->route->handler);
    else
        m->route->handler(r);
}

/* The token check has answered (f->auth.rc, f->principal): its reply, or the steps after it. */
static void dispatch_authenticated(struct req *f)
{
    struct api_request *r = &f->pub;
    int arc = f->auth.rc;

    if (arc == API_AUTH_OK &&
        ((unsigned)f->principal.role >= ROLE_COUNT || f->principal.n_apps > PRINCIPAL_MAX_APPS)) {
        log_msg(LOG_ERROR, r->request_id, "authenticate gave role %d with %zu apps",
                (int)f->principal.role, f->principal.n_apps);
        arc = -1;
    }
    if (arc == API_AUTH_NOT_FOUND) {
        if (api_reply_header(r, "WWW-Authenticate", WWW_AUTH_INVALID) != 0) {
            api_reply_error(r, API_ERR_INTERNAL, "out of memory");
            return;
        }
        api_reply_error(r, API_ERR_UNAUTHORIZED, "the API token is unknown, expired or revoked");
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
    dispatch_checked(f);
}

/* The steps up to the token check; the rest runs now or when the check answers. */
static void dispatch(struct api_server *s, struct req *f)
{
    struct api_request *r = &f->pub;
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in), limit = s->cfg.max_body;
    const struct api_match *m = &f->match;
    char token[API_TOKEN_MAX + 1];

    /* CORS first: a preflight is answered without a token (a browser sends none with it). */
    if (cors_request(r, s->cfg.cors_origins, s->cfg.routes, s->cfg.n_routes) == CORS_REPLIED)
        return;
    f->match_rc = api_route_match(s->cfg.routes, s->cfg.n_routes, r->method, r->path, &f->match);
    r->route = m->route;
    if (m->route != NULL)
        f->metric_route =
            (r->method == EVHTTP_REQ_HEAD ? s->metric_head_routes
                                          : s->metric_routes)[m->route - s->cfg.routes];
    if (m->route != NULL && m->route->body == API_BODY_RAW)
        limit = s->cfg.max_body_large;
    if (len > limit) {
        api_reply_error(r, API_ERR_BODY_TOO_LARGE,
                        "the body is %zu bytes; this route takes at most %zu bytes%s", len, limit,
                        m->route && m->route->body == API_BODY_RAW
                            ? ": split the input into several requests"
                            : "");
        return;
    }
    if (f->match_rc == API_MATCH_NO_PATH) {
        api_reply_error(r, API_ERR_NOT_FOUND, "no such path: see openapi.yaml for the routes");
        return;
    }
    if (f->match_rc == API_MATCH_NO_METHOD) {
        allow_header(f, m->allow);
        api_reply_error(r, API_ERR_METHOD_NOT_ALLOWED, "%s is not allowed here",
                        api_method_name(r->method));
        return;
    }
    if (m->route->perm == PERM_PUBLIC) {
        dispatch_checked(f);
        return;
    }
    if (!api_bearer_token(r->req, token)) {
        api_reply_error(r, API_ERR_UNAUTHORIZED,
                        "send an API token as \"Authorization: Bearer <token>\"");
        return;
    }
    f->auth.state = AUTH_CALLING;
    s->cfg.authenticate(s->cfg.ctx, token, &f->auth);
    explicit_bzero(token, sizeof token);
    if (f->auth.state == AUTH_CALLING) { /* it answers later */
        f->auth.state = AUTH_PENDING;
        api_request_wait_begin(f, WAIT_AUTH);
        return;
    }
    dispatch_authenticated(f);
}

/* After the handler (or a step) returned, with f->in_handler set: a request with neither a
 * reply nor a wait is a bug (500); one replied is freed; a stream or a wait keeps f. */
static void finish(struct req *f)
{
    if (f->state == ST_NEW && f->wait == WAIT_NONE) {
        if (f->server != NULL)
            f->server->stats.missing_replies++;
        log_msg(LOG_ERROR, f->pub.request_id, "bug: %s %s returned without a reply",
                api_method_name(f->pub.method), f->path);
        assert(!"a handler returned without a reply");
        api_reply_error(&f->pub, API_ERR_INTERNAL, NULL);
    }
    f->in_handler = false;
    if (f->state == ST_REPLIED || f->state == ST_ENDED)
        api_request_free(f);
}

void api_auth_done(struct api_auth *call, enum api_auth_rc rc, const struct principal *p)
{
    struct req *f = (struct req *)((char *)call - offsetof(struct req, auth));
    bool later = call->state == AUTH_PENDING;

    if (call->state != AUTH_CALLING && call->state != AUTH_PENDING) {
        log_msg(LOG_ERROR, f->pub.request_id, "bug: api_auth_done on a check not in progress");
        assert(!"api_auth_done on a check not in progress");
        return;
    }
    call->state = AUTH_DONE;
    call->rc = (int)rc;
    if (rc == API_AUTH_OK && p == NULL)
        call->rc = -1;
    else if (rc == API_AUTH_OK) {
        f->principal = *p;
        f->principal.name[PRINCIPAL_NAME_BUF - 1] = '\0';
    }
    if (!later) /* inside the callback: dispatch() goes on when it returns */
        return;
    api_request_wait_end(f);
    if (f->server == NULL || f->pub.req == NULL) {
        api_reply_dropped(f, "while its token was checked");
        api_request_free(f);
        return;
    }
    f->in_handler = true;
    dispatch_authenticated(f);
    finish(f);
}

const char *api_auth_request_id(const struct api_auth *call)
{
    return ((const struct req *)((const char *)call - offsetof(struct req, auth)))->pub.request_id;
}

/* A client's X-Request-Id, when it is one (given once) of 1..API_REQUEST_ID_LEN characters of
 * [A-Za-z0-9._-]: copied into id. Anything else is ignored (a fresh id is made). */
static bool client_request_id(struct evhttp_request *evreq, char id[API_REQUEST_ID_LEN + 1])
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(evreq);
    const char *v = NULL;
    size_t n = 0;

    for (const struct evkeyval *kv = h != NULL ? h->tqh_first : NULL; kv != NULL;
         kv = kv->next.tqe_next) {
        if (evutil_ascii_strcasecmp(kv->key, "X-Request-Id") != 0)
            continue;
        if (v != NULL)
            return false; /* twice: which one would a proxy have logged? */
        v = kv->value;
    }
    if (v == NULL)
        return false;
    for (; v[n] != '\0'; n++) {
        char c = v[n];
        if (n >= API_REQUEST_ID_LEN ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    if (n == 0)
        return false;
    memcpy(id, v, n + 1);
    return true;
}

static enum api_error frame_api_error(enum frame_error e)
{
    switch (e) {
    case FRAME_BAD_VERSION:
        return API_ERR_HTTP_VERSION;
    case FRAME_BAD_METHOD:
        return API_ERR_NOT_IMPLEMENTED;
    case FRAME_TARGET_TOO_LONG:
        return API_ERR_URI_TOO_LONG;
    case FRAME_HEAD_TOO_LARGE:
        return API_ERR_HEADERS_TOO_LARGE;
    case FRAME_BODY_TOO_LARGE:
        return API_ERR_BODY_TOO_LARGE;
    case FRAME_TIMEOUT:
        return API_ERR_REQUEST_TIMEOUT;
    default:
        return API_ERR_BAD_REQUEST;
    }
}

/* A request id of our own: a bijective mix (splitmix64's finalizer) of the server's random key
 * plus a count, so ids never repeat within a process, differ between processes, and cost no
 * system call (a random draw each time was one getrandom() a request). Not a secret. */
static void request_id_make(struct api_server *s, char out[API_REQUEST_ID_GEN + 1])
{
    uint64_t z = s->rid_key + ++s->rid_count * UINT64_C(0x9e3779b97f4a7c15);
    uint8_t b[API_REQUEST_ID_GEN / 2];

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)(z >> (8 * i));
    hex_encode(b, sizeof b, out);
}

/* h has "Connection: close", as evhttp reads it when it decides to close after a reply. */
static bool says_close(struct evkeyvalq *h)
{
    const char *v = evhttp_find_header(h, "Connection");
    return v != NULL && strcasecmp(v, "close") == 0;
}

void api_reply_written(struct evhttp_request *evreq)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(evreq);
    if (evcon != NULL)
        frame_reply_done(evhttp_connection_get_bufferevent(evcon),
                         says_close(evhttp_request_get_input_headers(evreq)) ||
                             says_close(evhttp_request_get_output_headers(evreq)));
}

/* evhttp wrote a reply out (a streamed one's callback, stream_flushed, tells the same). */
static void on_reply_written(struct evhttp_request *evreq, void *arg)
{
    (void)arg;
    api_reply_written(evreq);
}

/* evhttp skips only spaces before a header's value (it trims trailing tabs): the tabs of the
 * rest of a field's leading whitespace (RFC 9112 section 5: OWS) go here, so a reader of any
 * header sees the value the filter checked. */
static void trim_leading_tabs(struct evkeyvalq *h)
{
    for (struct evkeyval *kv = h != NULL ? h->tqh_first : NULL; kv != NULL;
         kv = kv->next.tqe_next) {
        size_t skip = strspn(kv->value, " \t");
        if (skip > 0)
            memmove(kv->value, kv->value + skip, strlen(kv->value + skip) + 1);
    }
}

static void on_request(struct evhttp_request *evreq, void *arg)
{
    struct api_server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(evreq);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct req *f;

    evhttp_request_set_on_complete_cb(evreq, on_reply_written, NULL);
    trim_leading_tabs(evhttp_request_get_input_headers(evreq));
    s->stats.requests++;
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        log_error("out of memory for a request; sent 500");
        s->stats.internal_errors++;
        s->stats.replies++;
        metrics_http_request(s->metric_unmatched, 500, 0);
        api_reply_fallback_500(evreq);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &f->started);
    f->server = s;
    f->pub.req = evreq;
    f->pub.method = evhttp_request_get_command(evreq);
    f->pub.ctx = s->cfg.ctx;
    f->metric_route = s->metric_unmatched;
    if (!client_request_id(evreq, f->pub.request_id))
        request_id_make(s, f->pub.request_id);
    f->streamed = frame_stream_marked(
        evhttp_find_header(evhttp_request_get_input_headers(evreq), FRAME_STREAM_HEADER),
        s->frame.nonce);
    /* A longer path keeps only its start here (for the log); matching sees it whole. */
    snprintf(f->path, sizeof f->path, "%s", path ? path : "");
    f->pub.path = f->path;

    f->in_handler = true;
    uint64_t detail = 0;
    enum frame_error fe = frame_error_path(path, s->frame.nonce, &detail);
    if (fe != FRAME_OK) {
        /* The framing filter refused what the client sent (http_frame.h): its error, then the
         * connection closes. */
        snprintf(f->path, sizeof f->path, "(refused framing)");
        f->refused = true;
        evhttp_add_header(evhttp_request_get_output_headers(evreq), "Connection", "close");
        struct evhttp_connection *evcon = evhttp_request_get_connection(evreq);
        if (evcon != NULL) /* the client may still be sending what was refused */
            frame_linger_after_reply(evhttp_connection_get_bufferevent(evcon));
        if (fe == FRAME_BODY_TOO_LARGE)
            api_reply_error(&f->pub, API_ERR_BODY_TOO_LARGE,
                            "the body is over this route's limit of %" PRIu64 " bytes%s", detail,
                            detail == s->cfg.max_body_large && detail > s->cfg.max_body
                                ? ": split the input into several requests"
                                : "");
        else
            api_reply_error(&f->pub, frame_api_error(fe), "%s", frame_error_message(fe));
    } else if (path != NULL && strlen(path) > API_PATH_MAX)
        api_reply_error(&f->pub, API_ERR_NOT_FOUND, "the path is over %d bytes", API_PATH_MAX);
    else
        dispatch(s, f);
    finish(f);
}

/* ---- what a capture recorded (idempotency.c keeps it) ----------------------------------- */

bool api_request_capturing(const struct api_request *r)
{
    return req_of(r)->cap.on;
}

int api_request_recorded(const struct api_request *r, int *status, json_t **body)
{
    const struct capture *c = &req_of(r)->cap;
    *body = NULL;
    if (!c->on)
        return -1;
    switch (c->kind) {
    case CAP_JSON:
        *status = c->status;
        *body = json_incref(c->body);
        break;
    case CAP_ERROR:
        *status = api_error_status(c->err);
        *body = api_error_body(c->err, c->has_msg ? c->msg : NULL);
        break;
    case CAP_NONE:
        return -1;
    }
    return *body != NULL ? 0 : -1;
}

/* ---- the server --------------------------------------------------------------------------- */

/* evhttp's bufferevent for each accepted connection (it sets the fd): TLS when configured.
 * evhttp would make a plain one if this returned NULL, so a TLS connection that cannot be set
 * up gets a bufferevent that refuses the fd instead (a pair: the accept is undone, the socket
 * closed once by evhttp). Only if that small allocation fails too is NULL returned. */
static struct bufferevent *new_transport_bev(struct event_base *base, struct api_server *s)
{
    struct bufferevent *bev, *pair[2];

    if (s->cfg.tls == NULL)
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bev = api_tls_bufferevent(s->cfg.tls, base);
    if (bev != NULL)
        return bev;
    if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE, pair) != 0)
        return NULL; /* out of memory twice over; logged by api_tls_bufferevent */
    bufferevent_free(pair[1]);
    return pair[0];
}

/* Whether target (the query aside) is the path of a raw-body route. */
static bool raw_route(const struct api_server *s, const char *target, size_t target_len)
{
    char path[API_PATH_MAX + 1];
    size_t n = 0;
    while (n < target_len && target[n] != '?' && n < API_PATH_MAX)
        n++;
    memcpy(path, target, n);
    path[n] = '\0';
    for (size_t i = 0; i < s->cfg.n_routes; i++) {
        struct api_match m;
        const struct api_route *rt = &s->cfg.routes[i];
        if (rt->body == API_BODY_RAW &&
            api_route_match(rt, 1, rt->method, path, &m) != API_MATCH_NO_PATH)
            return true;
    }
    return false;
}

/* The largest body a request for method and target may carry: a raw-body route's larger limit
 * when one matches the path (the query aside), else the JSON limit. For http_frame.c, before
 * any body byte is read. */
static uint64_t frame_body_limit(void *arg, const char *method, size_t method_len,
                                 const char *target, size_t target_len)
{
    struct api_server *s = arg;
    (void)method;
    (void)method_len;
    return raw_route(s, target, target_len) ? s->cfg.max_body_large : s->cfg.max_body;
}

/* Whether a request's body streams (http_frame.h): on a raw-body route (batch signing), unless
 * it is application/json (kept whole, within max_body_large: it is checked whole before any
 * line is signed). */
static bool frame_streams(void *arg, const char *method, size_t method_len, const char *target,
                          size_t target_len, const char *ctype, size_t ctype_len)
{
    static const char json[] = "application/json";
    size_t n = sizeof json - 1;
    (void)method;
    (void)method_len;
    if (ctype != NULL && ctype_len >= n && strncasecmp(ctype, json, n) == 0 &&
        (ctype_len == n || ctype[n] == ';' || ctype[n] == ' ' || ctype[n] == '\t'))
        return false;
    return raw_route(arg, target, target_len);
}

/* A connection's transport (TLS or the socket), under the strict framing filter. */
static struct bufferevent *new_connection_bev(struct event_base *base, void *arg)
{
    struct api_server *s = arg;
    struct bufferevent *bev = new_transport_bev(base, s);
    return bev != NULL ? frame_bufferevent(bev, &s->frame) : NULL;
}

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
    if (api_routes_check(cfg->routes, cfg->n_routes, err, errlen) != 0 ||
        cors_check_list(cfg->cors_origins, err, errlen) != 0)
        return NULL;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if ((cfg->routes[i].flags & API_ROUTE_OFFLOAD) && cfg->routes[i].body == API_BODY_RAW) {
            /* A raw body is read and a stream sent from the loop: neither works in capture. */
            snprintf(err, errlen, "route %s %s: a raw-body route cannot be offloaded",
                     api_method_name(cfg->routes[i].method), cfg->routes[i].pattern);
            return NULL;
        } else if ((cfg->routes[i].flags & API_ROUTE_IDEMPOTENT) &&
                   (!(cfg->routes[i].flags & API_ROUTE_OFFLOAD) ||
                    cfg->routes[i].method != EVHTTP_REQ_POST)) {
            /* The kept reply is captured from an offloaded handler. */
            snprintf(err, errlen, "route %s %s: only an offloaded POST takes an Idempotency-Key",
                     api_method_name(cfg->routes[i].method), cfg->routes[i].pattern);
            return NULL;
        }
    if (evutil_secure_rng_init() != 0) {
        snprintf(err, errlen, "api server: cannot seed the random generator for request ids");
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    s->base = base;
    evutil_secure_rng_get_bytes(&s->rid_key, sizeof s->rid_key);
    s->cfg = *cfg;
    s->metric_routes = calloc(cfg->n_routes > 0 ? cfg->n_routes : 1, sizeof *s->metric_routes);
    s->metric_head_routes =
        calloc(cfg->n_routes > 0 ? cfg->n_routes : 1, sizeof *s->metric_head_routes);
    if (s->metric_routes == NULL || s->metric_head_routes == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        s->metric_routes[i] =
            metrics_route(api_method_name(cfg->routes[i].method), cfg->routes[i].pattern);
        /* HEAD is served by the GET routes, and counted as itself. */
        s->metric_head_routes[i] = cfg->routes[i].method == EVHTTP_REQ_GET
                                       ? metrics_route("HEAD", cfg->routes[i].pattern)
                                       : s->metric_routes[i];
    }
    s->metric_unmatched = metrics_route(NULL, NULL);
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
    s->frame.body_limit = frame_body_limit;
    s->frame.streams = frame_streams;
    s->frame.arg = s;
    s->frame.head_timeout_ms = s->cfg.request_timeout_ms > 0 ? s->cfg.request_timeout_ms : 30000;
    uint8_t nonce[FRAME_NONCE_LEN / 2];
    evutil_secure_rng_get_bytes(nonce, sizeof nonce);
    hex_encode(nonce, sizeof nonce, s->frame.nonce);
    evhttp_set_bevcb(s->http, new_connection_bev, s);
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
    /* No Nagle: a reply written in more than one piece (a head, then its body, when the loop is
     * busy) must not wait for the client's delayed ACK, up to 200 ms on a kept-alive
     * connection. Linux gives the accepted sockets the listener's TCP_NODELAY. */
    int one = 1;
    if (setsockopt(evconnlistener_get_fd(lis), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        log_warn("listen: cannot set TCP_NODELAY: %s", strerror(errno));
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
    /* Waiting requests lose their server and evhttp request (freed below with its connection):
     * a token check answers later into nothing, a deferred handler hears of it and replies
     * into nothing. */
    while (s->waiting != NULL)
        api_request_wait_orphan(s->waiting); /* unlinks it first; may free it */
    /* Open streams hear of it first (they may end at once); those left lose their request
     * with its connection in evhttp_free, unless libevent detached it already. */
    while (s->streams != NULL) {
        struct req *f = s->streams;
        api_stream_unlink(f);
        f->server = NULL;
        api_stream_notify_close(f); /* may end the stream and free f: f is not touched after it */
    }
    if (s->http != NULL)
        evhttp_free(s->http);
    free(s->metric_routes);
    free(s->metric_head_routes);
    free(s);
}

void api_server_get_stats(const struct api_server *s, struct api_server_stats *out)
{
    *out = s->stats;
}

void api_request_server_stats(const struct api_request *r, struct api_server_stats *out)
{
    const struct api_server *s = req_of(r)->server;
    if (s != NULL)
        *out = s->stats;
    else
        memset(out, 0, sizeof *out);
}

/* The process's sockets whose local port is the listener's, the listener itself left out: the
 * connections accepted and not yet closed. Read from the file descriptors at the call (a
 * getsockname each), not counted along the way: evhttp 2.1 tells of no accept nor close. */
int64_t api_request_open_connections(const struct api_request *r)
{
    const struct api_server *s = req_of(r)->server;
    struct dirent *e;
    DIR *dir;
    int64_t n = 0;

    if (s == NULL || s->bound == NULL || s->port == 0)
        return -1;
    dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    while ((e = readdir(dir)) != NULL) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd, listening = 0;
        socklen_t optlen = sizeof listening;
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (e->d_name[0] == '.' || *end != '\0' || v < 0 || v > INT32_MAX || v == dirfd(dir))
            continue;
        fd = (int)v;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            continue;
        if (ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port) != s->port)
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) == 0 && listening)
            continue;
        n++;
    }
    closedir(dir);
    return n;
}
