/*
 * The admin API's replies: the one place a request's single reply is claimed and sent (JSON,
 * JSON errors from errors.c's table, or a stream of chunks), its access-log line, replies
 * recorded by a handler in capture mode and replayed on the loop thread, and the end of a
 * request (its body wiped, its memory freed). A request that waits is http_wait.c's. The lowest
 * layer of the framework: it calls only errors.c and router.c (method names); http.c, http_read.c,
 * http_fields.c and every handler call it.
 */
#include "http.h"
#include "http_frame.h"
#include "http_int.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define WWW_AUTH_MISSING "Bearer realm=\"usersigd\""
/* Retry-After of every 503 (openapi.yaml's Unavailable): seconds. Small, since the store
 * reconnects between transactions and the first request after the database is back succeeds. */
#define RETRY_AFTER_SECONDS "1"
/* Sent when even the error body cannot be built. */
static const char fallback_500[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"internal error: out of memory\"}}\n";

/* ---- replies ------------------------------------------------------------------------------ */

static double elapsed_ms(const struct req *f)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - f->started.tv_sec) * 1e3 +
           (double)(now.tv_nsec - f->started.tv_nsec) / 1e6;
}

/* The app a verify is counted for when it got no verdict: the body's sdkappid, if it is one. */
static uint32_t body_sdkappid(const struct api_request *r)
{
    json_int_t v = json_integer_value(json_object_get(r->body, "sdkappid"));
    return v >= 1 && v <= (json_int_t)UINT32_MAX ? (uint32_t)v : 0;
}

/* The request's access line and its metrics: route and status, latency, and what a sign or a
 * verify ended with. */
static void access_log(struct req *f, const char *message)
{
    const struct principal *p = f->pub.principal;
    const struct api_route *route = f->pub.route;
    double ms = elapsed_ms(f);
    const char *code = api_error_code(f->err);
    struct log_access a = {
        .method = f->refused ? "-" : api_method_name(f->pub.method),
        .path = f->path,
        .route = route != NULL ? route->pattern : NULL,
        .status = f->status,
        .code = code,
        .duration_ms = ms,
        .actor = p != NULL ? p->name : NULL,
    };

    metrics_http_request(f->metric_route, f->status, ms / 1e3);
    if (route != NULL && (route->flags & API_ROUTE_METRIC_SIGN))
        metrics_sign(f->pub.sdkappid, code);
    if (route != NULL && (route->flags & API_ROUTE_METRIC_VERIFY)) {
        if (f->metric_outcome[0] != '\0')
            metrics_verify(f->metric_app, f->metric_outcome);
        else
            metrics_verify(body_sdkappid(&f->pub), code);
    }
    if (message != NULL)
        log_access(api_error_level(f->err), f->pub.request_id, &a, "%s", message);
    else
        log_access(api_error_level(f->err), f->pub.request_id, &a, NULL);
}

/* A verify's 200 names the verdict and the token's sdkappid (null when it did not decode):
 * kept for its metric. */
static void note_verdict(struct req *f, const json_t *body)
{
    const char *v = json_string_value(json_object_get(body, "verdict"));
    json_int_t app = json_integer_value(json_object_get(body, "sdkappid"));
    if (f->pub.route == NULL || !(f->pub.route->flags & API_ROUTE_METRIC_VERIFY) || v == NULL)
        return;
    snprintf(f->metric_outcome, sizeof f->metric_outcome, "%s", v);
    f->metric_app = app >= 1 && app <= (json_int_t)UINT32_MAX ? (uint32_t)app : 0;
}

/* See http_int.h. */
void api_reply_dropped(struct req *f, const char *when)
{
    if (f->server != NULL)
        f->server->stats.replies_dropped++;
    log_msg(LOG_INFO, f->pub.request_id, "%s %s: the client left %s (%.1f ms)",
            api_method_name(f->pub.method), f->path, when, elapsed_ms(f));
}

/* The one place a reply is claimed: false (and a logged bug) for a second one. A deferred
 * request stops waiting here. */
static bool claim_reply(struct req *f, const char *what)
{
    if (f->state == ST_NEW) {
        api_request_wait_end(f);
        return true;
    }
    if (f->server != NULL)
        f->server->stats.double_replies++;
    log_msg(LOG_ERROR, f->pub.request_id, "bug: a second reply (%s) to %s %s was refused", what,
            api_method_name(f->pub.method), f->path);
    assert(!"a second reply to one request");
    return false;
}

/* The request's keep-alive dropped (evhttp reads it on HTTP/1.0 only, where it would add
 * "Connection: keep-alive" to the reply, and, to a stream, "Content-Length: 0"): for a reply
 * after which the connection closes. */
static void drop_keep_alive(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *conn;
    while ((conn = evhttp_find_header(in, "Connection")) != NULL &&
           evutil_ascii_strncasecmp(conn, "keep-alive", 10) == 0)
        evhttp_remove_header(in, "Connection");
}

static int add_standard_headers(struct req *f, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(f->pub.req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_remove_header(h, "X-Request-Id");
    if (f->streamed) {
        /* The connection closes after a streamed request (http_frame.h); a body no handler
         * took is read and dropped meanwhile. */
        struct evhttp_connection *evcon = evhttp_request_get_connection(f->pub.req);
        if (evcon != NULL)
            frame_stream_discard(evhttp_connection_get_bufferevent(evcon));
        drop_keep_alive(f->pub.req);
        if (evhttp_find_header(h, "Connection") == NULL &&
            evhttp_add_header(h, "Connection", "close"))
            return -1;
    }
    /* A handler's own Cache-Control stands (the dashboard's files: no-cache). */
    if (evhttp_add_header(h, "Content-Type", content_type) ||
        (evhttp_find_header(h, "Cache-Control") == NULL &&
         evhttp_add_header(h, "Cache-Control", "no-store")) ||
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff") ||
        evhttp_add_header(h, "X-Request-Id", f->pub.request_id))
        return -1;
    return 0;
}

static int dump_to_evbuffer(const char *buffer, size_t size, void *data)
{
    return evbuffer_add(data, buffer, size) == 0 ? 0 : -1;
}

/* A reply body up to this size is dumped into a buffer on the stack and added to the output in
 * one piece; a larger one goes through the callback, a piece at a time. */
#define REPLY_STACK_BUF 4096

/* body as compact JSON and a newline, added to out. 0, or -1 when out of memory. */
static int add_json(struct evbuffer *out, const json_t *body)
{
    char buf[REPLY_STACK_BUF];
    size_t n = json_dumpb(body, buf, sizeof buf - 1, JSON_COMPACT);
    if (n > 0 && n < sizeof buf) {
        buf[n++] = '\n';
        return evbuffer_add(out, buf, n) == 0 ? 0 : -1;
    }
    return json_dump_callback(body, dump_to_evbuffer, out, JSON_COMPACT) == 0 &&
                   evbuffer_add(out, "\n", 1) == 0
               ? 0
               : -1;
}

/* evhttp_send_reply, but for HEAD: its reply goes without its body (RFC 9110 9.3.2), the
 * buffer dropped and its length the Content-Length, what GET would have sent (evhttp leaves the
 * header out for HEAD, yet writes a body it is given). */
static void send_reply(struct evhttp_request *req, int status)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_send_reply(req, status, NULL, NULL);
        return;
    }
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char len[24];
    snprintf(len, sizeof len, "%zu", evbuffer_get_length(out));
    evhttp_remove_header(h, "Content-Length");
    (void)evhttp_add_header(h, "Content-Length", len); /* without it: still no body */
    evbuffer_drain(out, evbuffer_get_length(out));
    evhttp_send_reply(req, status, NULL, NULL);
}

/* Sends status with body (stolen) and logs; on any allocation failure sends the fixed 500. */
static void send_json(struct req *f, int status, enum api_error err, json_t *body,
                      const char *message)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(f->pub.req);
    bool ok = body != NULL && add_json(out, body) == 0 &&
              add_standard_headers(f, "application/json") == 0;
    char note[64];
    if (ok && status == 200)
        note_verdict(f, body);
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
    send_reply(f->pub.req, status);
    access_log(f, message);
    if (!f->in_handler) /* a deferred reply: it releases the request */
        api_request_free(f);
}

/* A claimed plain reply to a request whose client has left (a deferred one): nothing is sent;
 * the request is released as after a reply. */
static void discard_reply(struct req *f, int status)
{
    f->state = ST_REPLIED;
    f->status = status;
    api_reply_dropped(f, "before the reply, which was discarded");
    if (!f->in_handler)
        api_request_free(f);
}

/* ---- capture mode (http.h, "Offloaded handlers"): recorded in the request only ------------- */

/* A reply recorded in capture mode: false (logged; counted at the replay, on the loop thread)
 * for a second one. */
static bool capture_claim(struct req *f, const char *what)
{
    if (f->cap.kind == CAP_NONE)
        return true;
    f->cap.doubles++;
    log_msg(LOG_ERROR, f->pub.request_id, "bug: a second reply (%s) to %s %s was refused", what,
            api_method_name(f->pub.method), f->path);
    assert(!"a second reply to one request");
    return false;
}

/* What a handler in capture mode may not do (it needs the loop): refused, a 500 recorded. */
static void capture_refuse(struct req *f, const char *what)
{
    log_msg(LOG_ERROR, f->pub.request_id,
            "bug: %s by the handler of %s %s, which runs off the loop thread: refused (500)", what,
            api_method_name(f->pub.method), f->path);
    if (f->cap.kind != CAP_NONE)
        return;
    f->cap.kind = CAP_ERROR;
    f->cap.err = API_ERR_INTERNAL;
    f->cap.has_msg = false;
}

/* evhttp_add_header's own checks, so that a recorded header is refused exactly when the direct
 * call would refuse it: no CR or LF in the name; in the value only as a folded line. */
static bool header_ok(const char *name, const char *value)
{
    const char *p = value;
    if (strchr(name, '\r') != NULL || strchr(name, '\n') != NULL)
        return false;
    while ((p = strpbrk(p, "\r\n")) != NULL) {
        p += strspn(p, "\r\n");
        if (*p != ' ' && *p != '\t')
            return false;
    }
    return true;
}

static int capture_header(struct req *f, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    struct cap_header *h;

    if (f->cap.kind != CAP_NONE || !header_ok(name, value))
        return -1;
    h = malloc(sizeof *h + nl + vl + 2);
    if (h == NULL)
        return -1;
    memcpy(h->text, name, nl + 1);
    memcpy(h->text + nl + 1, value, vl + 1);
    h->value = h->text + nl + 1;
    h->next = NULL;
    if (f->cap.headers_tail != NULL)
        f->cap.headers_tail->next = h;
    else
        f->cap.headers = h;
    f->cap.headers_tail = h;
    return 0;
}

static void capture_release(struct capture *c)
{
    for (struct cap_header *h = c->headers, *next; h != NULL; h = next) {
        next = h->next;
        free(h);
    }
    c->headers = c->headers_tail = NULL;
    json_decref(c->body);
    c->body = NULL;
}

/* ---- plain replies ------------------------------------------------------------------------ */

/* Retry-After on a 503 (the database unreachable, the server stopping), unless the handler set
 * one; -1 when it cannot be added. */
static int add_retry_after(struct api_request *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (evhttp_find_header(h, "Retry-After") != NULL)
        return 0;
    return evhttp_add_header(h, "Retry-After", RETRY_AFTER_SECONDS) == 0 ? 0 : -1;
}

int api_reply_header(struct api_request *r, const char *name, const char *value)
{
    if (req_of(r)->cap.on)
        return capture_header(req_of(r), name, value);
    if (r->req == NULL || req_of(r)->state != ST_NEW)
        return -1;
    return evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value) == 0 ? 0 : -1;
}

void api_reply_json(struct api_request *r, int status, json_t *body)
{
    struct req *f = req_of(r);
    if (f->cap.on) {
        if (!capture_claim(f, "json")) {
            json_decref(body);
            return;
        }
        f->cap.kind = CAP_JSON;
        f->cap.status = status;
        f->cap.body = body;
        return;
    }
    if (!claim_reply(f, "json")) {
        json_decref(body);
        return;
    }
    if (r->req == NULL) {
        json_decref(body);
        discard_reply(f, status);
        return;
    }
    if (body == NULL || (status == 503 && add_retry_after(r) != 0)) {
        json_decref(body);
        send_json(f, 500, API_ERR_INTERNAL, api_error_body(API_ERR_INTERNAL, NULL),
                  "out of memory building the reply");
        return;
    }
    send_json(f, status, status >= 500 ? API_ERR_INTERNAL : API_OK, body, NULL);
}

void api_reply_error(struct api_request *r, enum api_error err, const char *fmt, ...)
{
    struct req *f = req_of(r);
    char message[API_REPLY_MESSAGE_MAX];
    const char *msg = NULL;
    va_list ap;

    if (f->cap.on) {
        if (!capture_claim(f, api_error_code(err)))
            return;
        f->cap.kind = CAP_ERROR;
        f->cap.err = err;
        f->cap.has_msg = fmt != NULL;
        if (fmt != NULL) {
            va_start(ap, fmt);
            vsnprintf(f->cap.msg, sizeof f->cap.msg, fmt, ap);
            va_end(ap);
        }
        return;
    }
    if (!claim_reply(f, api_error_code(err)))
        return;
    if (r->req == NULL) {
        discard_reply(f, (unsigned)err < API_ERR_COUNT ? api_error_status(err) : 500);
        return;
    }
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
    if (api_error_status(err) == 503 && add_retry_after(r) != 0) {
        send_json(f, 500, API_ERR_INTERNAL, NULL, NULL);
        return;
    }
    send_json(f, api_error_status(err), err, api_error_body(err, msg),
              msg ? msg : api_error_info(err)->message);
}

void api_reply_text(struct api_request *r, int status, const char *content_type, const char *text,
                    size_t len)
{
    struct req *f = req_of(r);
    struct evbuffer *out;
    if (f->cap.on) {
        capture_refuse(f, "api_reply_text");
        return;
    }
    if (!claim_reply(f, "text"))
        return;
    if (r->req == NULL) {
        discard_reply(f, status);
        return;
    }
    out = evhttp_request_get_output_buffer(r->req);
    if (evbuffer_add(out, text, len) != 0 || add_standard_headers(f, content_type) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        send_json(f, 500, API_ERR_INTERNAL, NULL, NULL);
        return;
    }
    f->state = ST_REPLIED;
    f->status = status;
    f->err = status >= 500 ? API_ERR_INTERNAL : API_OK;
    if (f->server != NULL)
        f->server->stats.replies++;
    send_reply(r->req, status);
    access_log(f, NULL);
    if (!f->in_handler)
        api_request_free(f);
}

void api_handler_not_implemented(struct api_request *r)
{
    api_reply_error(r, API_ERR_NOT_IMPLEMENTED, "%s %s is not implemented yet",
                    api_method_name(r->method), r->route ? r->route->pattern : r->path);
}

/* ---- streamed replies --------------------------------------------------------------------- */

void api_stream_unlink(struct req *f)
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

void api_stream_notify_close(struct req *f)
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
    api_stream_notify_close(f);
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

void api_request_free(struct req *f)
{
    capture_release(&f->cap);
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
    if (f->cap.on) {
        capture_refuse(f, "api_reply_start");
        return -1;
    }
    if (!claim_reply(f, "stream"))
        return -1;
    if (r->req == NULL) {
        discard_reply(f, status);
        return -1;
    }
    if (add_standard_headers(f, content_type) != 0) {
        send_json(f, 500, API_ERR_INTERNAL, NULL, NULL);
        return -1;
    }
    /* evhttp frames a stream with chunks on HTTP/1.1 only. On HTTP/1.0 with keep-alive it would
     * write "Content-Length: 0", send the body unframed after it and keep the connection: such a
     * stream ends with the connection instead. */
    drop_keep_alive(r->req);
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

/* An ended stream leaves the count of unflushed replies exactly once: when its last bytes are
 * written out (evhttp calls stream_flushed before it frees the request), or when the connection
 * fails first (the client left while the end was being written: evhttp frees the request with
 * the connection and calls only the connection's close callback). */
static void stream_unflushed_done(struct api_server *s)
{
    if (s->stats.unflushed > 0)
        s->stats.unflushed--;
}

static void stream_flushed(struct evhttp_request *req, void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon != NULL) /* a keep-alive connection closing later is none of this reply's */
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    stream_unflushed_done(arg);
    api_reply_written(req);
}

static void stream_end_connection_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    stream_unflushed_done(arg);
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
            evhttp_connection_set_closecb(evcon, stream_end_connection_close, f->server);
        }
        evhttp_send_reply_end(r->req); /* frees a detached request too */
        r->req = NULL;
    }
    api_stream_unlink(f);
    access_log(f, f->gone ? "the client left before the end" : NULL);
    f->state = ST_ENDED;
    if (!f->in_handler)
        api_request_free(f);
}

void api_request_on_close(struct api_request *r, void (*cb)(struct api_request *r, void *arg),
                          void *arg)
{
    struct req *f = req_of(r);
    if (f->cap.on) { /* the loop thread reads close_cb when the client leaves */
        log_msg(LOG_ERROR, r->request_id,
                "bug: api_request_on_close by a handler that runs off the loop thread: ignored");
        return;
    }
    f->close_cb = cb;
    f->close_arg = arg;
}

bool api_request_gone(const struct api_request *r)
{
    if (req_of(r)->cap.on) /* r->req is the loop thread's: the handler runs to completion */
        return false;
    return r->req == NULL || evhttp_request_get_connection(r->req) == NULL || req_of(r)->gone;
}

void api_request_defer(struct api_request *r)
{
    struct req *f = req_of(r);
    if (f->cap.on) {
        capture_refuse(f, "api_request_defer");
        return;
    }
    if (!f->in_handler || f->state != ST_NEW || f->wait != WAIT_NONE || f->deferred) {
        log_msg(LOG_ERROR, r->request_id,
                "bug: api_request_defer outside a handler, after a "
                "reply or twice");
        assert(!"api_request_defer outside a handler, after a reply or twice");
        return;
    }
    f->deferred = true;
    api_request_wait_begin(f, WAIT_REPLY);
}

int api_request_capture(struct api_request *r)
{
    struct req *f = req_of(r);
    if (!f->in_handler || f->state != ST_NEW || f->wait != WAIT_NONE || f->deferred) {
        log_msg(LOG_ERROR, r->request_id,
                "bug: api_request_capture outside the offload hook, after a reply or twice");
        assert(!"api_request_capture outside the offload hook, after a reply or twice");
        return -1;
    }
    f->deferred = true;
    f->cap.on = true;
    if (f->server != NULL)
        f->server->stats.offloaded++;
    api_request_wait_begin(f, WAIT_REPLY);
    return 0;
}

void api_request_replay(struct api_request *r)
{
    struct req *f = req_of(r);
    struct capture *c = &f->cap;
    bool header_failed = false;

    if (!c->on) {
        log_msg(LOG_ERROR, r->request_id, "bug: api_request_replay without a capture");
        assert(!"api_request_replay without a capture");
        return;
    }
    c->on = false;
    if (f->server != NULL)
        f->server->stats.double_replies += c->doubles;
    /* The handler's calls, in its order, now for real (skipped when the client left). */
    for (struct cap_header *h = c->headers; h != NULL && r->req != NULL && !header_failed;
         h = h->next)
        header_failed = api_reply_header(r, h->text, h->value) != 0;
    if (header_failed) {
        capture_release(c);
        api_reply_error(r, API_ERR_INTERNAL, "out of memory adding a response header");
        return;
    }
    switch (c->kind) {
    case CAP_JSON: {
        json_t *body = c->body;
        c->body = NULL;
        api_reply_json(r, c->status, body); /* releases r */
        return;
    }
    case CAP_ERROR:
        if (c->has_msg)
            api_reply_error(r, c->err, "%s", c->msg); /* copies msg before r goes */
        else
            api_reply_error(r, c->err, NULL);
        return;
    case CAP_NONE:
        break;
    }
    if (f->server != NULL)
        f->server->stats.missing_replies++;
    log_msg(LOG_ERROR, r->request_id, "bug: %s %s returned without a reply",
            api_method_name(r->method), f->path);
    assert(!"a handler returned without a reply");
    api_reply_error(r, API_ERR_INTERNAL, NULL);
}

/* See http_int.h. */
void api_reply_fallback_500(struct evhttp_request *req)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    (void)evbuffer_add_reference(out, fallback_500, sizeof fallback_500 - 1, NULL, NULL);
    send_reply(req, 500);
}
