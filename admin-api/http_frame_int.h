/*
 * What the framing filter's two files share (http_frame.c: the framing of each connection's
 * bytes, its streamed body; http_frame_bev.c: the libevent glue, the output side): the
 * connection's state and the streamed body's.
 */
#ifndef HTTP_FRAME_INT_H
#define HTTP_FRAME_INT_H

#include "http_frame.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

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

#define FRAME_LINGER_MS 1000 /* the longest wait after a refusal's reply before the close */

struct frame_conn {
    const struct frame_config *cfg;
    enum conn_state state;
    uint64_t left; /* S_BODY: bytes still to pass */
    /* S_CHUNKED: the head, and the body's data so far (de-chunked: no chunk lines, no
     * trailers), passed once complete as a request with a Content-Length. */
    struct evbuffer *hold, *hold_body;
    struct frame_absolute hold_abs; /* S_CHUNKED: the held head's absolute-form target, if any */
    bool hold_close;                /* ... and its frame_head.connection_close */
    uint64_t limit, body;           /* S_CHUNKED: the route's limit, body bytes so far */
    enum chunk_state cstate;
    uint64_t chunk_left;
    size_t trailer_bytes;
    int64_t head_start_ms; /* when the pending head's first byte came; 0: none pending */
    bool head_method;      /* the last head parsed was a HEAD: its refusal goes as HEAD */
    /* The reply being written closes the connection (frame_linger_after_reply): once it is out,
     * what the client still sends is read and dropped for up to FRAME_LINGER_MS before the close
     * (the linger timer), so that the close sends no reset that could take the reply with it. */
    bool refused, lingering;
    struct event *linger;
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
    /* Requests passed to evhttp, and replies to them written out (frame_reply_done): equal when
     * no reply is due, so that a "100 Continue" written to the transport is next on the wire.
     * continue_due: the held chunked request asked for one and has not had it. */
    uint64_t passed, done;
    bool continue_due;
    /* The transport's callbacks as the filter set them: ours stand in front, to see the end of
     * its input during a streamed body. */
    bufferevent_data_cb under_rcb, under_wcb;
    bufferevent_event_cb under_ecb;
    void *under_arg;
};

/* The rest of a streamed body is read and dropped (no one consumes it). */
void frame_conn_drop_rest(struct frame_conn *c);
/* The transport is read again, unless a full stream (paused), a full evhttp input (full) or the
 * end of its input (eof) holds it. */
void frame_conn_read_again(struct frame_conn *c);
/* Sends the held request's "100 Continue" when it is due and no reply is. */
void frame_conn_continue(struct frame_conn *c);

#endif
