/*
 * Strict request framing in front of evhttp (http_frame.h): what the filter does with each
 * connection's bytes: the head parser (http_frame_head.c) applied to them, the bodies framed (a
 * length, chunks, a streamed body handed to its handler), the error request in place of what is
 * refused. The libevent glue and the output side are http_frame_bev.c.
 */
#include "http_frame_int.h"

#include "clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
        frame_conn_read_again(c);
    }
}

void frame_conn_read_again(struct frame_conn *c)
{
    if (c->under != NULL && !c->paused && !c->full && !c->eof)
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

void frame_conn_drop_rest(struct frame_conn *c)
{
    if (c->stream != NULL)
        evbuffer_drain(c->stream->buf, evbuffer_get_length(c->stream->buf));
    if (c->state == S_STREAM || c->state == S_STREAM_CHUNKED)
        c->state = S_DISCARD;
    stream_flow(c);
}

/* The request line p[0..n) (its CRLF included) as evhttp gets it, in origin-form: an
 * absolute-form target loses its scheme and authority (a, from the head's parse). */
static int request_line(const char *p, size_t n, const struct frame_absolute *a,
                        struct evbuffer *dst)
{
    if (a->len == 0)
        return evbuffer_add(dst, p, n);
    size_t rest = a->at + a->len;
    return evbuffer_add(dst, p, a->at) == 0 && (!a->root || evbuffer_add(dst, "/", 1) == 0) &&
                   evbuffer_add(dst, p + rest, n - rest) == 0
               ? 0
               : -1;
}

/* Moves head into dst when ok, all of it or nothing, and frees head (NULL: out of memory). */
static int head_commit(struct evbuffer *dst, struct evbuffer *head, bool ok)
{
    int rc = head != NULL && ok && evbuffer_add_buffer(dst, head) == 0 ? 0 : -1;
    if (head != NULL)
        evbuffer_free(head);
    return rc;
}

enum { WROTE_EXPECT = 1, WROTE_CLOSE = 2 };

/* The header line l[0..n) (its CRLF included) into evhttp's copy of a head: as it is, or, with
 * expect (frame_head.expect_rewrite), one "Expect: 100-continue" for the Expect lines with that
 * member, and with close (frame_head.connection_close) one "Connection: close" for the
 * Connection lines, each in place of the first such line (*wrote: which went already). 0, or
 * -1 out of memory. */
static int add_field(const char *l, size_t n, bool expect, bool close, unsigned *wrote,
                     struct evbuffer *dst)
{
    const char *name, *value;
    size_t nl, vl;
    if ((expect || close) && n >= 2 &&
        frame_parse_field(l, n - 2, &name, &nl, &value, &vl) == FRAME_OK) {
        if (expect && frame_name_is(name, nl, "Expect")) {
            if (frame_expect_list(value, vl) <= 0 || (*wrote & WROTE_EXPECT))
                return 0;
            *wrote |= WROTE_EXPECT;
            return evbuffer_add(dst, "Expect: 100-continue\r\n", 22);
        }
        if (close && frame_name_is(name, nl, "Connection")) {
            if (*wrote & WROTE_CLOSE)
                return 0;
            *wrote |= WROTE_CLOSE;
            return evbuffer_add(dst, "Connection: close\r\n", 19);
        }
    }
    return evbuffer_add(dst, l, n);
}

/* A head p[0..len) (parsed as h) with an absolute-form target, Expect lines to rewrite or a
 * Connection close, to evhttp as it takes it: in origin-form, those lines as add_field writes
 * them; all of it into dst or nothing. */
static int evhttp_head(const char *p, size_t len, const struct frame_head *h, struct evbuffer *dst)
{
    const char *lf = memchr(p, '\n', len);
    size_t at = (size_t)(lf - p) + 1;
    unsigned wrote = 0;
    struct evbuffer *head = evbuffer_new();
    bool ok = head != NULL && request_line(p, at, &h->abs, head) == 0;
    while (ok && at < len) {
        lf = memchr(p + at, '\n', len - at);
        size_t n = (size_t)(lf - (p + at)) + 1;
        ok = add_field(p + at, n, h->expect_rewrite, h->connection_close, &wrote, head) == 0;
        at += n;
    }
    return head_commit(dst, head, ok);
}

/* evhttp's copy of a head p[0..len) (parsed) without its framing (Content-Length,
 * Transfer-Encoding), its Expect (the filter answers it, for the body it holds or streams) and a
 * client's own marker, up to its blank line; its target in origin-form (a: from its parse), its
 * Connection lines one "Connection: close" when close (frame_head.connection_close). */
static int head_without_framing(const char *p, size_t len, const struct frame_absolute *a,
                                bool close, struct evbuffer *dst)
{
    const char *lf = memchr(p, '\n', len);
    size_t at = (size_t)(lf - p) + 1;
    unsigned wrote = 0;
    if (request_line(p, at, a, dst) != 0)
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
            !frame_name_is(p + at, nl, "Expect") &&
            !frame_name_is(p + at, nl, FRAME_STREAM_HEADER) &&
            add_field(p + at, n, false, close, &wrote, dst) != 0)
            return -1;
        at += n;
    }
    return 0;
}

/* evhttp's copy of a streamed request's head: its framing replaced by "Content-Length: 0" and
 * the marker (a client's own Expect and marker dropped too). */
static int stream_head(struct frame_conn *c, const char *p, size_t len, const struct frame_head *h,
                       struct evbuffer *dst)
{
    struct evbuffer *head = evbuffer_new();
    return head_commit(
        dst, head,
        head != NULL && head_without_framing(p, len, &h->abs, h->connection_close, head) == 0 &&
            evbuffer_add_printf(head, "Content-Length: 0\r\n" FRAME_STREAM_HEADER ": %s\r\n\r\n",
                                c->cfg->nonce) > 0);
}

/* A held chunked request, complete: to evhttp as its head with a Content-Length of the body's
 * data, then that data. The chunk lines and the trailer fields are not passed on (RFC 9112
 * section 7.1.2 lets a recipient that removes the chunked coding discard trailers): evhttp would
 * refuse chunk extensions and merge trailers into the headers. */
static int held_request(struct frame_conn *c, struct evbuffer *dst)
{
    size_t len = evbuffer_get_length(c->hold);
    const char *p = (const char *)evbuffer_pullup(c->hold, (ev_ssize_t)len);
    struct evbuffer *head = evbuffer_new();
    return head_commit(
        dst, head,
        p != NULL && head != NULL &&
            head_without_framing(p, len, &c->hold_abs, c->hold_close, head) == 0 &&
            evbuffer_add_printf(head, "Content-Length: %" PRIu64 "\r\n\r\n", c->body) > 0 &&
            evbuffer_add_buffer(head, c->hold_body) == 0);
}

static void hold_free(struct frame_conn *c)
{
    if (c->hold != NULL)
        evbuffer_free(c->hold);
    if (c->hold_body != NULL)
        evbuffer_free(c->hold_body);
    c->hold = c->hold_body = NULL;
    c->continue_due = false; /* a 100 for the held request, if still due, is not */
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
        frame_conn_drop_rest(s->conn);
    stream_unref(s);
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
    c->passed++;
    /* A refused HEAD is asked as HEAD, so that its reply goes without the body too. */
    const char *method = c->head_method ? "HEAD" : "GET";
    if (e == FRAME_BODY_TOO_LARGE) /* with the limit, for the message */
        evbuffer_add_printf(dst,
                            "%s " FRAME_ERROR_PREFIX "%s/%d/%" PRIu64 " HTTP/1.1\r\nHost: "
                            "usersigd\r\nConnection: close\r\n\r\n",
                            method, c->cfg->nonce, (int)e, c->limit);
    else
        evbuffer_add_printf(dst,
                            "%s " FRAME_ERROR_PREFIX "%s/%d HTTP/1.1\r\nHost: usersigd\r\n"
                            "Connection: close\r\n\r\n",
                            method, c->cfg->nonce, (int)e);
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
        char rooted[FRAME_MAX_TARGET + 2];
        e = frame_parse_head(p, end, &h);
        if (e == FRAME_OK && h.abs.root && h.target_len < sizeof rooted - 1) {
            /* An empty path is sent as "/" (RFC 9112 section 3.2.1): the checks and the
             * route's callbacks see the path evhttp gets. */
            rooted[0] = '/';
            memcpy(rooted + 1, h.target, h.target_len);
            h.target = rooted;
            h.target_len++;
        }
        c->head_method = h.method_len == 4 && memcmp(h.method, "HEAD", 4) == 0;
        if (e == FRAME_OK && h.target_len >= strlen(FRAME_ERROR_PREFIX) &&
            memcmp(h.target, FRAME_ERROR_PREFIX, strlen(FRAME_ERROR_PREFIX)) == 0)
            e = FRAME_BAD_REQUEST;
        bool body = (h.has_length && h.length > 0) || h.chunked;
        /* evhttp reads no body after a HEAD: its bytes would be taken for the next request,
         * one that never met these checks. */
        if (e == FRAME_OK && body && c->head_method)
            e = FRAME_HEAD_BODY;
        if (e == FRAME_OK && body && c->cfg->streams != NULL && c->stream == NULL &&
            c->cfg->streams(c->cfg->arg, h.method, h.method_len, h.target, h.target_len,
                            h.content_type, h.content_type_len)) {
            struct frame_stream *st = calloc(1, sizeof *st);
            if (st == NULL || (st->buf = evbuffer_new()) == NULL ||
                stream_head(c, p, end, &h, dst) != 0) {
                stream_unref(st);
                e = FRAME_BAD_REQUEST; /* out of memory: refused all the same */
            } else {
                evbuffer_drain(src, end);
                c->passed++;
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
                    c->hold_abs = h.abs;
                    c->hold_close = h.connection_close;
                    c->cstate = C_SIZE;
                    c->limit = limit;
                    c->body = 0;
                    c->trailer_bytes = 0;
                    c->head_start_ms = 0;
                    /* The client waits for it before the body: without it, a second or so
                     * (curl's wait), then the body all the same. */
                    c->continue_due = h.expect_continue && h.minor == 1;
                    frame_conn_continue(c);
                    return 1;
                }
            } else {
                if (h.abs.len == 0 && !h.expect_rewrite && !h.connection_close
                        ? evbuffer_remove_buffer(src, dst, end) != (int)end
                        : evhttp_head(p, end, &h, dst) != 0 || evbuffer_drain(src, end) != 0)
                    e = FRAME_BAD_REQUEST;
                else {
                    c->passed++;
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
            c->passed++;
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
    if (c->linger != NULL)
        event_free(c->linger);
    if (c->under != NULL) {
        /* Our reference kept the transport alive until here: its callback can go. */
        if (c->under_cb != NULL)
            evbuffer_remove_cb_entry(bufferevent_get_output(c->under), c->under_cb);
        bufferevent_decref(c->under);
    }
    free(c);
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
