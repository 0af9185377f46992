/*
 * Strict request framing (RFC 9112) in front of evhttp. libevent 2.1's parser accepts what a
 * proxy may read differently (two Content-Length headers, Content-Length with chunked), reads a
 * body declared far over the limit before refusing it, and answers its own errors in HTML. So
 * every connection's bytes pass first through a filter (a libevent filter bufferevent) that reads
 * each request's head and body boundaries itself, with bounded sizes, and:
 *   - passes a well-formed request through unchanged, except a chunked one: its body is held,
 *     de-chunked, until complete (so that its size is known before evhttp sees it, and only the
 *     data counts against the route's limit and the memory it takes), then passed with a
 *     Content-Length in place of Transfer-Encoding; its chunk extensions and trailer fields are
 *     checked and dropped (evhttp refuses the one in HTML and reads the other as headers);
 *   - replaces anything else by a request of its own to the internal path
 *     /.frame-error/<nonce>/<kind>, which the dispatcher (http.c) answers with the JSON error of
 *     that kind and "Connection: close", in order after the replies still due on the
 *     connection; everything the client sends after it is discarded.
 * The nonce is random per server, so no client can reach the internal path (a request for any
 * /.frame-error/ path is itself refused by the filter).
 *
 * Streamed bodies. For a request the config's streams callback names (batch signing), the body
 * is not passed to evhttp (which reads a whole body before its request callback): evhttp gets
 * the head with its framing replaced by "Content-Length: 0" and the marker header
 * FRAME_STREAM_HEADER carrying the nonce, and the body bytes, de-chunked, go to the
 * connection's struct frame_stream, which the handler takes (frame_stream_take). The stream
 * holds at most about FRAME_STREAM_HIGH bytes: above it the transport is no longer read, and
 * reading resumes once the handler has taken them below FRAME_STREAM_LOW (frame_stream_drained),
 * so the client sends only as fast as the handler consumes. No body limit applies. A body that
 * ends before its Content-Length or its last chunk (the client half-closed the connection) is
 * FRAME_STREAM_CUT: the reply can still be sent. A connection closes after a streamed request:
 * its replies carry "Connection: close" (added by the dispatcher) and what the client sends
 * after the body is discarded, so nothing pipelined behind a stream is ever half-read.
 *
 * frame_parse_head is the pure part (fuzzed: tests/fuzz/fuzz_frame.c); frame_bufferevent the
 * libevent glue.
 */
#ifndef HTTP_FRAME_H
#define HTTP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_TARGET 8192      /* bytes of the request-target (path and query) */
#define FRAME_MAX_HEADER_LINE 8192 /* bytes of one header line */
#define FRAME_MAX_HEADERS 100      /* header lines */
#define FRAME_MAX_HEAD (64 * 1024) /* the whole head */
#define FRAME_MAX_CHUNK_LINE 256   /* a chunk-size line, extensions included */
#define FRAME_ERROR_PREFIX "/.frame-error/"
#define FRAME_NONCE_LEN 32                      /* hex characters */
#define FRAME_STREAM_HEADER "X-Usersigd-Stream" /* on a streamed request's head: the nonce */
#define FRAME_STREAM_HIGH (256 * 1024)          /* body bytes buffered before reading stops */
#define FRAME_STREAM_LOW (128 * 1024)           /* ... and below which it resumes */
/* Bytes in evhttp's input at which the transport is no longer read, and below which it is again
 * (a client that pipelines while a reply is written). */
#define FRAME_INPUT_HIGH (256 * 1024)
#define FRAME_INPUT_LOW (64 * 1024)

/* What a request can be refused for before it reaches evhttp; the dispatcher maps each to its
 * status and JSON error. */
enum frame_error {
    FRAME_OK = 0,
    FRAME_BAD_REQUEST,     /* 400: malformed request line, header or chunk */
    FRAME_DUP_LENGTH,      /* 400: two Content-Length headers, or a list */
    FRAME_LENGTH_AND_TE,   /* 400: Content-Length with Transfer-Encoding */
    FRAME_BAD_TE,          /* 400: a Transfer-Encoding other than chunked (or on HTTP/1.0) */
    FRAME_BAD_LENGTH,      /* 400: Content-Length not a number */
    FRAME_DUP_HOST,        /* 400: two Host headers */
    FRAME_NO_VERSION,      /* 400: no HTTP version (HTTP/0.9) */
    FRAME_BAD_VERSION,     /* 505: an HTTP version other than 1.0 and 1.1 */
    FRAME_BAD_METHOD,      /* 501: not a method this server implements */
    FRAME_TARGET_TOO_LONG, /* 414 */
    FRAME_HEAD_TOO_LARGE,  /* 431: a header line, the count, or the whole head */
    FRAME_BODY_TOO_LARGE,  /* 413: declared or, chunked, received over the route's limit */
    FRAME_TIMEOUT,         /* 408: the head did not arrive in time */
    FRAME_DUP_TYPE,        /* 400: two Content-Type headers */
    FRAME_BAD_EXPECT,      /* 400: an Expect other than 100-continue (HTTP/1.1) */
    FRAME_HEAD_BODY,       /* 400: a HEAD with a body */
    FRAME_NO_HOST,         /* 400: an HTTP/1.1 request without Host (RFC 9112 section 3.2) */
    FRAME_BAD_HOST,        /* 400: a Host (or absolute-form authority) not host[:port] */
    FRAME_ERROR_COUNT
};

/* A human sentence for each kind (for the JSON error's message). */
const char *frame_error_message(enum frame_error e);
/* The HTTP status of each kind. */
int frame_error_status(enum frame_error e);

/* Where an absolute-form target's scheme and authority are in the request line: the len bytes
 * at at are what evhttp's copy leaves out, with a "/" in their place when root (an empty path).
 * len 0 for an origin-form target. */
struct frame_absolute {
    size_t at, len;
    bool root;
};

/* A parsed request head (pointers into the parsed buffer). */
struct frame_head {
    const char *method, *target;
    size_t method_len, target_len;
    int minor; /* HTTP/1.<minor>: 0 or 1 */
    bool has_length, chunked;
    uint64_t length;
    const char *content_type; /* the Content-Type's value (OWS trimmed), NULL when none */
    size_t content_type_len;
    bool expect_continue; /* on HTTP/1.1, an Expect list with a 100-continue member */
    /* On HTTP/1.1, an Expect line (its members 100-continue or empty, RFC 9110 section 5.6.1).
     * evhttp reads only the first line and answers 417 unless it is "100-continue" alone, with
     * no tab before it: so the filter gives evhttp one "Expect: 100-continue" line in place of
     * the first line with that member, and none when there is none ("", ", ,"). */
    bool expect_rewrite;
    /* A Connection line with the close option (RFC 9112 section 9.6). evhttp reads only the
     * first line, and the whole of it as one option: the filter gives it one "Connection:
     * close" line in place of the first Connection line, and no other. */
    bool connection_close;
    /* An absolute-form target ("http://host/path?q", RFC 9112 section 3.2.2): target is then its
     * path and query (empty, or "?q", for an empty path, which evhttp gets, and the filter's
     * checks and route callbacks see, as "/" or "/?q"). */
    struct frame_absolute abs;
};

/* Finds the end of a request head in buf[0..len): returns its length (the blank line included),
 * 0 when more is needed, or (size_t)-1 when a bare LF ends a line (refused: FRAME_BAD_REQUEST). */
size_t frame_head_end(const char *buf, size_t len);

/* Parses the complete head buf[0..len) (as frame_head_end measured it). FRAME_OK with *h set,
 * or why it is refused. */
enum frame_error frame_parse_head(const char *buf, size_t len, struct frame_head *h);

/* For the filter (http_frame.c): whether the n bytes at name are the header name want (ASCII
 * case-insensitive), and one header line p[0..n) (no CRLF) as name and value (OWS trimmed). */
bool frame_name_is(const char *name, size_t n, const char *want);
/* The Expect value v[0..n) as a list (RFC 9110 section 5.6.1: empty members are none): -1 when
 * a member is not 100-continue (case aside), else 1 when one is, 0 when the list is empty. */
int frame_expect_list(const char *v, size_t n);
enum frame_error frame_parse_field(const char *p, size_t n, const char **name, size_t *name_len,
                                   const char **value, size_t *value_len);

struct bufferevent;
struct event_base;

/* The limits and the body limit of a route, asked for each request. */
struct frame_config {
    /* The largest body for method and target (not NUL-terminated); called on the loop. */
    uint64_t (*body_limit)(void *arg, const char *method, size_t method_len, const char *target,
                           size_t target_len);
    void *arg;
    int64_t head_timeout_ms; /* a head must arrive within this of its first byte; 0: 30 s */
    char nonce[FRAME_NONCE_LEN + 1];
    /* Optional (NULL: nothing streams): whether a request with a body streams it (see
     * "Streamed bodies" above), from its method, target and Content-Type (content_type NULL
     * when none; none of them NUL-terminated). Called on the loop. */
    bool (*streams)(void *arg, const char *method, size_t method_len, const char *target,
                    size_t target_len, const char *content_type, size_t content_type_len);
};

/* The framing of one connection without a socket (what the filter runs; for tests and the
 * fuzzer): frame_conn_feed moves what it can from src (the client's bytes) to dst (evhttp's
 * input): 1 when it moved or refused something, 0 when it needs more, -1 on an internal
 * failure. */
struct frame_conn;
struct evbuffer;
struct frame_conn *frame_conn_new(const struct frame_config *cfg);
int frame_conn_feed(struct frame_conn *c, struct evbuffer *src, struct evbuffer *dst);
void frame_conn_free(struct frame_conn *c);

/* ---- a streamed body (one a connection, the last request on it) ------------------------------ */

enum frame_stream_state {
    FRAME_STREAM_OPEN = 0, /* more body may come */
    FRAME_STREAM_END,      /* the body is complete: the buffer holds its last bytes */
    FRAME_STREAM_CUT,      /* the client stopped sending before the body's end */
};
struct frame_stream;

/* The stream of the connection of bev (evhttp's bufferevent of the request, the filter), for
 * the handler of the request whose head carried the marker; NULL when it has none or it was
 * taken already. Sends "100 Continue" when the client asked for it. The caller holds a
 * reference: frame_stream_release() it. */
struct frame_stream *frame_stream_take(struct bufferevent *bev);
/* The body bytes received and not yet consumed: the holder drains what it uses, then calls
 * frame_stream_drained(). */
struct evbuffer *frame_stream_buffer(struct frame_stream *s);
enum frame_stream_state frame_stream_state(const struct frame_stream *s);
/* Body bytes received so far (de-chunked), consumed or not. */
uint64_t frame_stream_received(const struct frame_stream *s);
/* cb(arg) runs on the loop when bytes came or the state changed (from inside the filter: it may
 * only note it and schedule work, e.g. pipeline_job_input). NULL stops it. */
void frame_stream_on_data(struct frame_stream *s, void (*cb)(void *arg), void *arg);
/* The holder drained some of the buffer: the connection is read again below the low mark. */
void frame_stream_drained(struct frame_stream *s);
/* The holder is done (accepts NULL): no callback any more; a body not complete is discarded
 * from here on (the connection closes after the reply). */
void frame_stream_release(struct frame_stream *s);
/* The reply about to be sent on bev's connection (evhttp's bufferevent of the request, the
 * filter) is a refusal that closes it: once the reply is out, what the client still sends is
 * read and dropped until it closes or FRAME_LINGER_MS pass, and only then does the close come,
 * so that it sends no reset that could take the reply with it. */
void frame_linger_after_reply(struct bufferevent *bev);
/* The reply to a request on bev's connection has been written out (evhttp's request-complete
 * callback): a held chunked request's "100 Continue", due once no reply is, can go, unless
 * closing (the connection closes after this reply: the held request will not be served). */
void frame_reply_done(struct bufferevent *bev, bool closing);

/* For a reply to a streamed request that no handler took (an error answered first): the body is
 * discarded from here on, read without being kept. No-op when it was taken or there is none. */
void frame_stream_discard(struct bufferevent *bev);
/* Whether value (a request's FRAME_STREAM_HEADER, may be NULL) marks a streamed request of the
 * server with nonce. */
bool frame_stream_marked(const char *value, const char *nonce);
/* The framing without a socket (tests, fuzzer): the stream of c's current streamed request, or
 * NULL (a borrowed pointer, valid until the next feed or frame_conn_free). */
struct frame_stream *frame_conn_stream(struct frame_conn *c);
/* A half-close seen by the framing without a socket (tests, fuzzer): as when the transport
 * reports the end of its input during a streamed body. */
void frame_conn_eof(struct frame_conn *c);

/* A filter bufferevent over under (which it owns: BEV_OPT_CLOSE_ON_FREE), framing requests as
 * above; cfg must outlive it. NULL when out of memory (under is freed). */
struct bufferevent *frame_bufferevent(struct bufferevent *under, const struct frame_config *cfg);

/* When path (NUL-terminated) is the internal error path of nonce, the kind it names (and in
 * *detail, may be NULL, the number after it: the body limit for FRAME_BODY_TOO_LARGE); else
 * FRAME_OK. */
enum frame_error frame_error_path(const char *path, const char *nonce, uint64_t *detail);

#endif
