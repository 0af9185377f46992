/*
 * The libevent side of the framing filter (http_frame.h): the filter bufferevent in front of
 * each connection's transport, its input callback (the framing of http_frame.c, and reading
 * stopped while evhttp's input is full), the transport's callbacks it stands in front of, and
 * the output side.
 */
#include "http_frame_int.h"

#include <stdlib.h>

static void linger_end(struct frame_conn *c);

/* Whether evhttp still has the filter. Once it has freed it, libevent frees the transport (its
 * callbacks go) and destroys the filter, and with it c, only later: an event of ours that runs in
 * between must not touch the filter. */
static bool filter_alive(struct frame_conn *c)
{
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb = NULL;
    void *cbarg;
    bufferevent_getcb(c->under, &rcb, &wcb, &ecb, &cbarg);
    return ecb != NULL;
}

/* The transport's callbacks, in front of the filter's. */
static void under_read(struct bufferevent *under, void *arg)
{
    struct frame_conn *c = arg;
    if (c->lingering) { /* the reply is out: what still comes is dropped */
        struct evbuffer *in = bufferevent_get_input(under);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
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
    if (c->lingering) { /* the client is done too (or gone): the close goes now */
        linger_end(c);
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

/* "100 Continue", straight to the transport: the caller knows that no reply is due before it. */
static void write_continue(struct frame_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!c->eof && c->under != NULL)
        (void)evbuffer_add(bufferevent_get_output(c->under), cont, sizeof cont - 1);
}

void frame_conn_continue(struct frame_conn *c)
{
    if (!c->continue_due || c->passed != c->done)
        return;
    c->continue_due = false;
    write_continue(c);
}

void frame_reply_done(struct bufferevent *bev, bool closing)
{
    struct frame_conn *c = conn_of(bev);
    if (c == NULL)
        return;
    c->done++;
    if (closing)
        c->continue_due = false;
    frame_conn_continue(c);
}

struct frame_stream *frame_stream_take(struct bufferevent *bev)
{
    struct frame_conn *c = conn_of(bev);
    struct frame_stream *s = c != NULL ? c->stream : NULL;
    if (s == NULL || s->taken)
        return NULL;
    s->taken = true;
    s->refs++;
    /* No reply is due before this one on the connection: evhttp dispatches a request only once
     * the replies before it are written out. */
    if (s->expect_continue && s->state == FRAME_STREAM_OPEN)
        write_continue(c);
    return s;
}

void frame_linger_after_reply(struct bufferevent *bev)
{
    struct frame_conn *c = conn_of(bev);
    if (c != NULL)
        c->refused = true;
}

void frame_stream_discard(struct bufferevent *bev)
{
    struct frame_conn *c = conn_of(bev);
    if (c == NULL || c->stream == NULL || c->stream->taken)
        return;
    c->stream->taken = true;
    frame_conn_drop_rest(c);
}

/* evhttp took from its input: reading resumes once below the low mark. */
static void input_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct frame_conn *c = arg;
    if (!c->full || info->n_deleted == 0 || evbuffer_get_length(buf) >= FRAME_INPUT_LOW)
        return;
    c->full = false;
    frame_conn_read_again(c);
}

/* ---- the close after a refusal ---------------------------------------------------------------
 * A client refused before its body was read (413 on the declared length, a bad header) is
 * often still sending it. Closed with unread bytes, a socket sends a reset, and a reset that
 * reaches the client before it has read the reply can take the reply with it (a client that
 * sees its write fail may give up unread). So once the reply is out, the transport is read and
 * what comes is dropped, until the client closes or FRAME_LINGER_MS pass; only then is evhttp
 * told that the output is done (it frees the connection). */

/* Ends the linger: evhttp's write callback, which frees the connection (and c, later). */
static void linger_end(struct frame_conn *c)
{
    if (c->linger != NULL)
        event_del(c->linger);
    c->lingering = false;
    bufferevent_trigger(c->bev, EV_WRITE, 0);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct frame_conn *c = arg;
    (void)fd;
    (void)what;
    if (filter_alive(c))
        linger_end(c);
}

/* The reply of a refused request is out: linger, or (no timer) close at once. */
static void linger_start(struct frame_conn *c)
{
    struct timeval tv = {FRAME_LINGER_MS / 1000, (FRAME_LINGER_MS % 1000) * 1000};
    if (c->linger == NULL)
        c->linger = evtimer_new(bufferevent_get_base(c->under), on_linger, c);
    if (c->linger == NULL || evtimer_add(c->linger, &tv) != 0) {
        bufferevent_trigger(c->bev, EV_WRITE, 0);
        return;
    }
    c->lingering = true;
    struct evbuffer *in = bufferevent_get_input(c->under);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_setwatermark(c->under, EV_READ, 0, 0);
    bufferevent_enable(c->under, EV_READ);
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
    (void)fd;
    (void)what;
    if (!filter_alive(c))
        return;
    if (c->inflight > 0) {
        if (evbuffer_get_length(bufferevent_get_output(c->under)) > 0)
            return; /* still being written */
        evbuffer_drain(out, c->inflight);
        c->inflight = 0;
        if (evbuffer_get_length(out) == 0) {
            if (c->refused && !c->lingering) {
                linger_start(c); /* evhttp is told once the client is done, or later */
                return;
            }
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

static void frame_free(void *ctx)
{
    frame_conn_free(ctx);
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
