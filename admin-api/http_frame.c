/*
 * Strict request framing in front of evhttp (http_frame.h): the filter that applies the head
 * parser (http_frame_head.c) to each connection's bytes, the bodies it frames (a length, chunks,
 * a streamed body handed to its handler) and the connection's output.
 */
#include "http_frame.h"

#include "clock.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- the filter ------------------------------------------------------------------------------ */

enum conn_state { S_HEAD, S_BODY, S_CHUNKED, S_DISCARD, S_STREAM, S_STREAM_CHUNKED };

/* A streamed body (http_frame.h): shared by the connection and the handler that took it. */
struct frame_stream {
    int refs;
    struct frame_conn *conn; /* NULL once the connection is freed */
    struct evbuffer *buf;
    enum frame_stream_state state;
    uint64_t received;
    bool taken, expect_continue;
    void (*cb)(void *arg);
    void *cb_arg;
};
enum chunk_state { C_SIZE, C_DATA, C_DATA_END, C_TRAILER };

struct frame_conn {
    const struct frame_config *cfg;
    enum conn_state state;
    uint64_t left; /* S_BODY: bytes still to pass */
    /* S_CHUNKED: the head, and the body's data so far (de-chunked: no chunk lines, no
     * trailers), passed once complete as a request with a Content-Length. */
    struct evbuffer *hold, *hold_body;
    uint64_t limit, body; /* S_CHUNKED: the route's limit, body bytes so far */
    enum chunk_state cstate;
    uint64_t chunk_left;
    size_t trailer_bytes;
    int64_t head_start_ms;     /* when the pending head's first byte came; 0: none pending */
    size_t inflight;           /* output: bytes copied to the transport, not yet written out */
    size_t held;               /* input: bytes left with us after the last feed (a partial head) */
    struct bufferevent *bev;   /* the filter itself */
    struct bufferevent *under; /* its transport (a reference of ours) */
    struct evbuffer_cb_entry *under_cb;
    struct event *output; /* runs on_output */
    /* S_STREAM, S_STREAM_CHUNKED: the body goes to stream (then S_DISCARD: the connection
     * closes after the reply). paused: the transport is not read (the stream is full); eof:
     * the transport's input ended (never read again). */
    struct frame_stream *stream;
    bool paused, eof;
    /* evhttp's input holds FRAME_INPUT_HIGH bytes or more: the transport is not read until it
     * has taken them below FRAME_INPUT_LOW. While evhttp writes a reply it leaves reading on
     * with no callback, so what a client pipelines meanwhile would pile up there unbounded. */
    bool full;
    /* The transport's callbacks as the filter set them: ours stand in front, to see the end of
     * its input during a streamed body. */
    bufferevent_data_cb under_rcb, under_wcb;
    bufferevent_event_cb under_ecb;
    void *under_arg;
};

/* Replaces what is left of the connection by a request for the error path. */
/* ---- streamed bodies ---------------------------------------------------------------------- */

static void stream_unref(struct frame_stream *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    if (s->buf != NULL)
        evbuffer_free(s->buf);
    free(s);
}

static void stream_notify(struct frame_stream *s)
{
    if (s->cb != NULL)
        s->cb(s->cb_arg);
}

/* Reading the transport stops above the high mark and resumes below the low one (or when
 * what comes is discarded), never once its input has ended. */
static void stream_flow(struct frame_conn *c)
{
    size_t n = c->stream != NULL ? evbuffer_get_length(c->stream->buf) : 0;
    bool keeping = c->state == S_STREAM || c->state == S_STREAM_CHUNKED;
    if (!c->paused && keeping && n >= FRAME_STREAM_HIGH) {
        c->paused = true;
        if (c->under != NULL)
            bufferevent_disable(c->under, EV_READ);
    } else if (c->paused && (!keeping || n < FRAME_STREAM_LOW)) {
        c->paused = false;
        if (c->under != NULL && !c->eof && !c->full)
            bufferevent_enable(c->under, EV_READ);
    }
}

/* evhttp took from its input: reading resumes once below the low mark. */
static void input_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct frame_conn *c = arg;
    if (!c->full || info->n_deleted == 0 || evbuffer_get_length(buf) >= FRAME_INPUT_LOW)
        return;
    c->full = false;
    if (c->under != NULL && !c->eof && !c->paused)
        bufferevent_enable(c->under, EV_READ);
}

/* The streamed body ended (complete or cut): nothing after it is kept. */
static void stream_finish(struct frame_conn *c, enum frame_stream_state st)
{
    c->state = S_DISCARD;
    if (c->stream != NULL && c->stream->state == FRAME_STREAM_OPEN) {
        c->stream->state = st;
        stream_notify(c->stream);
    }
    stream_flow(c);
}

/* The rest of a streamed body is read and dropped (no one consumes it). */
static void stream_drop_rest(struct frame_conn *c)
{
    if (c->stream != NULL)
        evbuffer_drain(c->stream->buf, evbuffer_get_length(c->stream->buf));
    if (c->state == S_STREAM || c->state == S_STREAM_CHUNKED)
        c->state = S_DISCARD;
    stream_flow(c);
}

/* evhttp's copy of a head p[0..len) (parsed) without its framing (Content-Length,
 * Transfer-Encoding) and without a client's own marker, up to its blank line; Expect is dropped
 * too when drop_expect. */
static int head_without_framing(const char *p, size_t len, bool drop_expect, struct evbuffer *dst)
{
    const char *lf = memchr(p, '\n', len);
    size_t at = (size_t)(lf - p) + 1;
    if (evbuffer_add(dst, p, at) != 0)
        return -1;
    while (at < len) {
        lf = memchr(p + at, '\n', len - at);
        size_t n = (size_t)(lf - (p + at)) + 1;
        if (n == 2)
            break; /* the blank line */
        const char *colon = memchr(p + at, ':', n);
        size_t nl = colon != NULL ? (size_t)(colon - (p + at)) : 0;
        if (!frame_name_is(p + at, nl, "Content-Length") &&
            !frame_name_is(p + at, nl, "Transfer-Encoding") &&
            !(drop_expect && frame_name_is(p + at, nl, "Expect")) &&
            !frame_name_is(p + at, nl, FRAME_STREAM_HEADER) && evbuffer_add(dst, p + at, n) != 0)
            return -1;
        at += n;
    }
    return 0;
}

/* evhttp's copy of a streamed request's head: its framing replaced by "Content-Length: 0" and
 * the marker (a client's own Expect and marker dropped too). */
static int stream_head(struct frame_conn *c, const char *p, size_t len, struct evbuffer *dst)
{
    if (head_without_framing(p, len, true, dst) != 0)
        return -1;
    return evbuffer_add_printf(dst, "Content-Length: 0\r\n" FRAME_STREAM_HEADER ": %s\r\n\r\n",
                               c->cfg->nonce) < 0
               ? -1
               : 0;
}

/* A held chunked request, complete: to evhttp as its head with a Content-Length of the body's
 * data, then that data. The chunk lines and the trailer fields are not passed on (RFC 9112
 * section 7.1.2 lets a recipient that removes the chunked coding discard trailers): evhttp would
 * refuse chunk extensions and merge trailers into the headers. */
static int held_request(struct frame_conn *c, struct evbuffer *dst)
{
    size_t len = evbuffer_get_length(c->hold);
    const char *p = (const char *)evbuffer_pullup(c->hold, (ev_ssize_t)len);
    struct evbuffer *head = evbuffer_new(); /* dst gets all of it or nothing */
    int rc = -1;
    if (p != NULL && head != NULL && head_without_framing(p, len, false, head) == 0 &&
        evbuffer_add_printf(head, "Content-Length: %" PRIu64 "\r\n\r\n", c->body) > 0 &&
        evbuffer_add_buffer(head, c->hold_body) == 0 && evbuffer_add_buffer(dst, head) == 0)
        rc = 0;
    if (head != NULL)
        evbuffer_free(head);
    return rc;
}

static void hold_free(struct frame_conn *c)
{
    if (c->hold != NULL)
        evbuffer_free(c->hold);
    if (c->hold_body != NULL)
        evbuffer_free(c->hold_body);
    c->hold = c->hold_body = NULL;
}

/* The transport's callbacks, in front of the filter's. */
static void under_read(struct bufferevent *under, void *arg)
{
    struct frame_conn *c = arg;
    if (c->under_rcb != NULL)
        c->under_rcb(under, c->under_arg);
}

static void under_write(struct bufferevent *under, void *arg)
{
    struct frame_conn *c = arg;
    if (c->under_wcb != NULL)
        c->under_wcb(under, c->under_arg);
}

static void under_event(struct bufferevent *under, short what, void *arg)
{
    struct frame_conn *c = arg;
    /* The client half-closed during a streamed body: the body is cut, and the reply still goes
     * out (the connection closes after it); evhttp would drop the connection, reply and all.
     * Once the body is complete, the end of the input is evhttp's, as for any request (the
     * client left). */
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c->stream != NULL &&
        c->stream->state == FRAME_STREAM_OPEN) {
        frame_conn_eof(c);
        return;
    }
    if (c->under_ecb != NULL)
        c->under_ecb(under, what, c->under_arg);
}

/* The connection of a filter made by frame_bufferevent, or NULL. */
static struct frame_conn *conn_of(struct bufferevent *bev)
{
    struct bufferevent *under = bev != NULL ? bufferevent_get_underlying(bev) : NULL;
    bufferevent_data_cb rcb = NULL;
    void *arg = NULL;
    if (under == NULL)
        return NULL;
    bufferevent_getcb(under, &rcb, NULL, NULL, &arg);
    return rcb == under_read ? arg : NULL;
}

void frame_conn_eof(struct frame_conn *c)
{
    c->eof = true;
    stream_finish(c, FRAME_STREAM_CUT);
}

struct frame_stream *frame_conn_stream(struct frame_conn *c)
{
    return c->stream;
}

struct frame_stream *frame_stream_take(struct bufferevent *bev)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct frame_conn *c = conn_of(bev);
    struct frame_stream *s = c != NULL ? c->stream : NULL;
    if (s == NULL || s->taken)
        return NULL;
    s->taken = true;
    s->refs++;
    /* No reply is due before this one on the connection: evhttp dispatches a request only once
     * the replies before it are written out. */
    if (s->expect_continue && s->state == FRAME_STREAM_OPEN && !c->eof && c->under != NULL)
        (void)evbuffer_add(bufferevent_get_output(c->under), cont, sizeof cont - 1);
    return s;
}

struct evbuffer *frame_stream_buffer(struct frame_stream *s)
{
    return s->buf;
}

enum frame_stream_state frame_stream_state(const struct frame_stream *s)
{
    return s->state;
}

uint64_t frame_stream_received(const struct frame_stream *s)
{
    return s->received;
}

void frame_stream_on_data(struct frame_stream *s, void (*cb)(void *arg), void *arg)
{
    s->cb = cb;
    s->cb_arg = arg;
}

void frame_stream_drained(struct frame_stream *s)
{
    if (s->conn != NULL)
        stream_flow(s->conn);
}

void frame_stream_release(struct frame_stream *s)
{
    if (s == NULL)
        return;
    s->cb = NULL;
    if (s->conn != NULL && s->state == FRAME_STREAM_OPEN)
        stream_drop_rest(s->conn);
    stream_unref(s);
}

void frame_stream_discard(struct bufferevent *bev)
{
    struct frame_conn *c = conn_of(bev);
    if (c == NULL || c->stream == NULL || c->stream->taken)
        return;
    c->stream->taken = true;
    stream_drop_rest(c);
}

bool frame_stream_marked(const char *value, const char *nonce)
{
    return value != NULL && strlen(value) == FRAME_NONCE_LEN &&
           memcmp(value, nonce, FRAME_NONCE_LEN) == 0;
}

static enum bufferevent_filter_result refuse(struct frame_conn *c, struct evbuffer *src,
                                             struct evbuffer *dst, enum frame_error e)
{
    evbuffer_drain(src, evbuffer_get_length(src));
    if (c->state == S_STREAM_CHUNKED) {
        /* A malformed chunk of a streamed body: evhttp has the request already (the handler
         * answers it); the body reads as cut, and the connection closes after the reply. */
        stream_finish(c, FRAME_STREAM_CUT);
        return BEV_OK;
    }
    hold_free(c);
    c->state = S_DISCARD;
    if (e == FRAME_BODY_TOO_LARGE) /* with the limit, for the message */
        evbuffer_add_printf(dst,
                            "GET " FRAME_ERROR_PREFIX "%s/%d/%" PRIu64 " HTTP/1.1\r\nHost: "
                            "usersigd\r\nConnection: close\r\n\r\n",
                            c->cfg->nonce, (int)e, c->limit);
    else
        evbuffer_add_printf(dst,
                            "GET " FRAME_ERROR_PREFIX "%s/%d HTTP/1.1\r\nHost: usersigd\r\n"
                            "Connection: close\r\n\r\n",
                            c->cfg->nonce, (int)e);
    return BEV_OK;
}

/* One step on a head: 1 when a complete head was dealt with, 0 when more is needed, -1 when
 * refused (dst then holds the error request). */
static int step_head(struct frame_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    /* An empty line before a request line is ignored (RFC 9112 section 2.2). */
    for (;;) {
        unsigned char two[2];
        if (evbuffer_copyout(src, two, 2) == 2 && two[0] == '\r' && two[1] == '\n')
            evbuffer_drain(src, 2);
        else
            break;
    }
    size_t n = evbuffer_get_length(src);
    if (n == 0)
        return 0;
    if (c->head_start_ms == 0)
        c->head_start_ms = clock_monotonic_ms();
    size_t m = n < FRAME_MAX_HEAD ? n : FRAME_MAX_HEAD;
    const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)m);
    if (p == NULL)
        return 0;
    size_t end = frame_head_end(p, m);
    enum frame_error e = FRAME_OK;
    if (end == (size_t)-1) {
        e = FRAME_BAD_REQUEST;
    } else if (end == 0) {
        const char *lf = memchr(p, '\n', m);
        int64_t limit = c->cfg->head_timeout_ms > 0 ? c->cfg->head_timeout_ms : 30000;
        if (n >= FRAME_MAX_HEAD)
            e = FRAME_HEAD_TOO_LARGE;
        else if (lf == NULL && m > FRAME_MAX_TARGET + 64)
            e = FRAME_TARGET_TOO_LONG;
        else if (clock_monotonic_ms() - c->head_start_ms > limit)
            e = FRAME_TIMEOUT;
        else
            return 0;
    } else {
        struct frame_head h;
        e = frame_parse_head(p, end, &h);
        if (e == FRAME_OK && h.target_len >= strlen(FRAME_ERROR_PREFIX) &&
            memcmp(h.target, FRAME_ERROR_PREFIX, strlen(FRAME_ERROR_PREFIX)) == 0)
            e = FRAME_BAD_REQUEST;
        bool body = (h.has_length && h.length > 0) || h.chunked;
        if (e == FRAME_OK && body && c->cfg->streams != NULL && c->stream == NULL &&
            c->cfg->streams(c->cfg->arg, h.method, h.method_len, h.target, h.target_len,
                            h.content_type, h.content_type_len)) {
            struct frame_stream *st = calloc(1, sizeof *st);
            if (st == NULL || (st->buf = evbuffer_new()) == NULL ||
                stream_head(c, p, end, dst) != 0) {
                stream_unref(st);
                e = FRAME_BAD_REQUEST; /* out of memory: refused all the same */
            } else {
                evbuffer_drain(src, end);
                st->refs = 1;
                st->conn = c;
                st->expect_continue = h.expect_continue && h.minor == 1;
                c->stream = st;
                c->head_start_ms = 0;
                if (h.chunked) {
                    c->state = S_STREAM_CHUNKED;
                    c->cstate = C_SIZE;
                    c->limit = UINT64_MAX; /* no limit: memory is bounded by the flow */
                    c->body = 0;
                    c->trailer_bytes = 0;
                } else {
                    c->state = S_STREAM;
                    c->left = h.length;
                }
                return 1;
            }
        } else if (e == FRAME_OK) {
            uint64_t limit =
                c->cfg->body_limit(c->cfg->arg, h.method, h.method_len, h.target, h.target_len);
            c->limit = limit;
            if (h.has_length && h.length > limit)
                e = FRAME_BODY_TOO_LARGE;
            else if (h.chunked) {
                c->hold = evbuffer_new();
                c->hold_body = evbuffer_new();
                if (c->hold == NULL || c->hold_body == NULL ||
                    evbuffer_remove_buffer(src, c->hold, end) != (int)end) {
                    e = FRAME_BAD_REQUEST; /* out of memory: refused all the same */
                } else {
                    c->state = S_CHUNKED;
                    c->cstate = C_SIZE;
                    c->limit = limit;
                    c->body = 0;
                    c->trailer_bytes = 0;
                    c->head_start_ms = 0;
                    return 1;
                }
            } else {
                if (evbuffer_remove_buffer(src, dst, end) != (int)end)
                    e = FRAME_BAD_REQUEST;
                else {
                    c->left = h.has_length ? h.length : 0;
                    c->state = c->left > 0 ? S_BODY : S_HEAD;
                    c->head_start_ms = 0;
                    return 1;
                }
            }
        }
    }
    refuse(c, src, dst, e);
    return -1;
}

/* A chunk-size line l[0..n) (no CRLF): hex digits, then optional extensions. */
static bool chunk_size(const char *l, size_t n, uint64_t *size)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && i < 16) {
        char ch = l[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        v = v * 16 + (uint64_t)d;
        i++;
    }
    if (i == 0 || (i == 16 && i < n && l[i] != ';'))
        return false;
    if (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t')
        return false;
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)l[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    *size = v;
    return true;
}

/* One step on a chunked body (held, or streamed: S_STREAM_CHUNKED): 1 when progress was made,
 * 0 when more is needed, -1 refused. */
static int step_chunked(struct frame_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    size_t n = evbuffer_get_length(src);
    if (n == 0)
        return 0;
    switch (c->cstate) {
    case C_DATA: {
        size_t k = c->chunk_left < n ? (size_t)c->chunk_left : n;
        struct evbuffer *to = c->hold != NULL ? c->hold_body : c->stream->buf;
        if (evbuffer_remove_buffer(src, to, k) != (int)k)
            break;
        if (c->hold == NULL) {
            c->stream->received += k;
            stream_notify(c->stream);
            stream_flow(c);
        }
        c->chunk_left -= k;
        if (c->chunk_left == 0)
            c->cstate = C_DATA_END;
        return 1;
    }
    case C_DATA_END: {
        unsigned char two[2];
        if (n < 2)
            return 0;
        if (evbuffer_copyout(src, two, 2) != 2 || two[0] != '\r' || two[1] != '\n')
            break;
        evbuffer_drain(src, 2);
        c->cstate = C_SIZE;
        return 1;
    }
    case C_SIZE:
    case C_TRAILER: {
        size_t max = c->cstate == C_SIZE ? FRAME_MAX_CHUNK_LINE : FRAME_MAX_HEADER_LINE;
        size_t m = n < max + 2 ? n : max + 2;
        const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)m);
        if (p == NULL)
            return 0;
        const char *lf = memchr(p, '\n', m);
        if (lf == NULL) {
            if (m >= max + 2) {
                refuse(c, src, dst, c->cstate == C_SIZE ? FRAME_BAD_REQUEST : FRAME_HEAD_TOO_LARGE);
                return -1;
            }
            return 0;
        }
        if (lf == p || lf[-1] != '\r')
            break;
        size_t line = (size_t)(lf - p) - 1;
        if (c->cstate == C_SIZE) {
            uint64_t size;
            if (!chunk_size(p, line, &size))
                break;
            if (size > c->limit - c->body) {
                refuse(c, src, dst, FRAME_BODY_TOO_LARGE);
                return -1;
            }
            c->body += size;
            c->chunk_left = size;
            c->cstate = size == 0 ? C_TRAILER : C_DATA;
        } else if (line > 0) {
            const char *name, *value;
            size_t nl, vl;
            c->trailer_bytes += line + 2;
            if (c->trailer_bytes > FRAME_MAX_HEAD) {
                refuse(c, src, dst, FRAME_HEAD_TOO_LARGE);
                return -1;
            }
            enum frame_error e = frame_parse_field(p, line, &name, &nl, &value, &vl);
            if (e != FRAME_OK) {
                refuse(c, src, dst, e);
                return -1;
            }
        }
        evbuffer_drain(src, line + 2);
        if (c->cstate == C_TRAILER && line == 0 && c->hold == NULL) {
            stream_finish(c, FRAME_STREAM_END);
        } else if (c->cstate == C_TRAILER && line == 0) {
            /* Complete: the whole request goes to evhttp at once. */
            if (held_request(c, dst) != 0) {
                refuse(c, src, dst, FRAME_BAD_REQUEST); /* out of memory: refused all the same */
                return -1;
            }
            hold_free(c);
            c->state = S_HEAD;
        }
        return 1;
    }
    }
    refuse(c, src, dst, FRAME_BAD_REQUEST);
    return -1;
}

int frame_conn_feed(struct frame_conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    bool progress = false;

    for (;;) {
        int r = 0;
        switch (c->state) {
        case S_DISCARD:
            evbuffer_drain(src, evbuffer_get_length(src));
            return progress ? 1 : 0;
        case S_HEAD:
            r = step_head(c, src, dst);
            break;
        case S_BODY: {
            size_t n = evbuffer_get_length(src);
            size_t k = c->left < n ? (size_t)c->left : n;
            if (k == 0)
                return progress ? 1 : 0;
            if (evbuffer_remove_buffer(src, dst, k) != (int)k)
                return -1;
            c->left -= k;
            if (c->left == 0)
                c->state = S_HEAD;
            r = 1;
            break;
        }
        case S_CHUNKED:
        case S_STREAM_CHUNKED:
            r = step_chunked(c, src, dst);
            break;
        case S_STREAM: {
            size_t n = evbuffer_get_length(src);
            size_t k = c->left < n ? (size_t)c->left : n;
            if (k == 0)
                return progress ? 1 : 0;
            if (evbuffer_remove_buffer(src, c->stream->buf, k) != (int)k)
                return -1;
            c->left -= k;
            c->stream->received += k;
            if (c->left == 0) {
                stream_finish(c, FRAME_STREAM_END);
            } else {
                stream_notify(c->stream);
                stream_flow(c);
            }
            r = 1;
            break;
        }
        }
        if (r < 0)
            return 1; /* the error request is in dst */
        if (r == 0)
            return progress ? 1 : 0;
        progress = true;
    }
}

/* The output side. evhttp frees a connection that is to close as soon as this filter's output
 * is empty, and with it the transport: what the transport had not written yet would be lost (a
 * reply with Connection: close cut off). So bytes are copied to the transport, not moved, and
 * leave this filter's output only once the transport has written them. libevent 2.1's filter
 * also starts its output only from its own write events (evhttp adds a reply while writing is
 * disabled, then enables it, which starts nothing), and goes on using the filter after it tells
 * evhttp that the output is done (which may free it). So the output is driven from an event of
 * our own (on_output), woken when evhttp adds to the output and when the transport has written
 * what it was given: it copies the next bytes over, or drains the written ones and tells evhttp
 * once all are out. */
static void on_output(evutil_socket_t fd, short what, void *arg)
{
    struct frame_conn *c = arg;
    struct bufferevent *bev = c->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb = NULL;
    void *cbarg;
    (void)fd;
    (void)what;
    /* Once evhttp has freed the filter, libevent frees the transport (its callbacks go) and
     * destroys the filter, and with it c, only later: an event of ours that runs in between must
     * not touch the filter. */
    bufferevent_getcb(c->under, &rcb, &wcb, &ecb, &cbarg);
    if (ecb == NULL)
        return;
    if (c->inflight > 0) {
        if (evbuffer_get_length(bufferevent_get_output(c->under)) > 0)
            return; /* still being written */
        evbuffer_drain(out, c->inflight);
        c->inflight = 0;
        if (evbuffer_get_length(out) == 0) {
            bufferevent_trigger(bev, EV_WRITE, 0); /* evhttp's write callback: may free c */
            return;
        }
    }
    if (evbuffer_get_length(out) > 0)
        bufferevent_flush(bev, EV_WRITE, BEV_FLUSH); /* frame_out copies the next bytes */
}

/* evhttp added to the output. */
static void output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct frame_conn *c = arg;
    (void)buf;
    if (info->n_added > 0 && c->inflight == 0)
        event_active(c->output, EV_TIMEOUT, 0);
}

/* The transport wrote some of what it was given. */
static void transport_wrote(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct frame_conn *c = arg;
    if (info->n_deleted > 0 && c->inflight > 0 && evbuffer_get_length(buf) == 0)
        event_active(c->output, EV_TIMEOUT, 0);
}

static enum bufferevent_filter_result frame_out(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                void *ctx)
{
    struct frame_conn *c = ctx;
    (void)lim;
    (void)mode;
    size_t n = evbuffer_get_length(src);
    if (c->inflight > 0 || n == 0)
        return BEV_NEED_MORE;
    struct evbuffer_iovec v[16];
    size_t copied = 0;
    int k = evbuffer_peek(src, (ev_ssize_t)n, NULL, v, 16);
    for (int i = 0; i < k && i < 16 && copied < n; i++) {
        size_t len = v[i].iov_len < n - copied ? v[i].iov_len : n - copied;
        if (evbuffer_add(dst, v[i].iov_base, len) != 0)
            return BEV_ERROR;
        copied += len;
    }
    c->inflight = copied;
    return BEV_OK;
}

static enum bufferevent_filter_result frame_in(struct evbuffer *src, struct evbuffer *dst,
                                               ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                               void *ctx)
{
    struct frame_conn *c = ctx;
    (void)lim;
    (void)mode;
    size_t before = evbuffer_get_length(src);
    int r = frame_conn_feed(c, src, dst);
    /* What the transport has read is all taken (so nothing complete waits in it for a read that
     * would not come); only then is reading stopped. */
    if (!c->full && c->under != NULL && evbuffer_get_length(dst) >= FRAME_INPUT_HIGH) {
        c->full = true;
        bufferevent_disable(c->under, EV_READ);
    }
    /* New bytes of a head we hold are activity, though evhttp sees none of them yet: restart
     * the filter's read timeout (evhttp's inactivity timeout, which re-enabling reading resets).
     * Else a client still sending its head would be closed by that timeout without a word,
     * before the head deadline (which runs from the head's first byte) could answer it 408. A
     * client that stops sending is still closed by it; one that trickles gets the 408. */
    if (r == 0 && c->state != S_DISCARD && before > c->held && c->bev != NULL &&
        (bufferevent_get_enabled(c->bev) & EV_READ))
        bufferevent_enable(c->bev, EV_READ);
    c->held = evbuffer_get_length(src);
    return r > 0 ? BEV_OK : r == 0 ? BEV_NEED_MORE : BEV_ERROR;
}

void frame_conn_free(struct frame_conn *c)
{
    if (c == NULL)
        return;
    hold_free(c);
    if (c->stream != NULL) {
        /* The holder may keep it: it reads as cut when the body was not complete. */
        c->stream->conn = NULL;
        if (c->stream->state == FRAME_STREAM_OPEN)
            c->stream->state = FRAME_STREAM_CUT;
        stream_unref(c->stream);
    }
    if (c->output != NULL)
        event_free(c->output);
    if (c->under != NULL) {
        /* Our reference kept the transport alive until here: its callback can go. */
        if (c->under_cb != NULL)
            evbuffer_remove_cb_entry(bufferevent_get_output(c->under), c->under_cb);
        bufferevent_decref(c->under);
    }
    free(c);
}

static void frame_free(void *ctx)
{
    frame_conn_free(ctx);
}

struct frame_conn *frame_conn_new(const struct frame_config *cfg)
{
    struct frame_conn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->cfg = cfg;
        c->state = S_HEAD;
    }
    return c;
}

struct bufferevent *frame_bufferevent(struct bufferevent *under, const struct frame_config *cfg)
{
    struct frame_conn *c = frame_conn_new(cfg);
    if (c == NULL) {
        bufferevent_free(under);
        return NULL;
    }
    struct bufferevent *f =
        bufferevent_filter_new(under, frame_in, frame_out, BEV_OPT_CLOSE_ON_FREE, frame_free, c);
    if (f == NULL) {
        free(c);
        bufferevent_free(under);
        return NULL;
    }
    c->bev = f;
    bufferevent_incref(under);
    c->under = under;
    bufferevent_getcb(under, &c->under_rcb, &c->under_wcb, &c->under_ecb, &c->under_arg);
    bufferevent_setcb(under, under_read, under_write, under_event, c);
    c->output = event_new(bufferevent_get_base(under), -1, 0, on_output, c);
    c->under_cb = evbuffer_add_cb(bufferevent_get_output(under), transport_wrote, c);
    if (c->output == NULL || c->under_cb == NULL ||
        evbuffer_add_cb(bufferevent_get_output(f), output_added, c) == NULL ||
        evbuffer_add_cb(bufferevent_get_input(f), input_drained, c) == NULL) {
        bufferevent_free(f);
        return NULL;
    }
    return f;
}
