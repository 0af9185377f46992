/*
 * Strict request framing (RFC 9112) in front of evhttp. libevent 2.1's parser accepts what a
 * proxy may read differently (two Content-Length headers, Content-Length with chunked), reads a
 * body declared far over the limit before refusing it, and answers its own errors in HTML. So
 * every connection's bytes pass first through a filter (a libevent filter bufferevent) that reads
 * each request's head and body boundaries itself, with bounded sizes, and:
 *   - passes a well-formed request through unchanged (a chunked body is held until complete, so
 *     that its size is known before evhttp sees it);
 *   - replaces anything else by a request of its own to the internal path
 *     /.frame-error/<nonce>/<kind>, which the dispatcher (http.c) answers with the JSON error of
 *     that kind and "Connection: close", in order after the replies still due on the
 *     connection; everything the client sends after it is discarded.
 * The nonce is random per server, so no client can reach the internal path (a request for any
 * /.frame-error/ path is itself refused by the filter).
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
#define FRAME_NONCE_LEN 32 /* hex characters */

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
    FRAME_ERROR_COUNT
};

/* A human sentence for each kind (for the JSON error's message). */
const char *frame_error_message(enum frame_error e);
/* The HTTP status of each kind. */
int frame_error_status(enum frame_error e);

/* A parsed request head (pointers into the parsed buffer). */
struct frame_head {
    const char *method, *target;
    size_t method_len, target_len;
    int minor; /* HTTP/1.<minor>: 0 or 1 */
    bool has_length, chunked;
    uint64_t length;
};

/* Finds the end of a request head in buf[0..len): returns its length (the blank line included),
 * 0 when more is needed, or (size_t)-1 when a bare LF ends a line (refused: FRAME_BAD_REQUEST). */
size_t frame_head_end(const char *buf, size_t len);

/* Parses the complete head buf[0..len) (as frame_head_end measured it). FRAME_OK with *h set,
 * or why it is refused. */
enum frame_error frame_parse_head(const char *buf, size_t len, struct frame_head *h);

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

/* A filter bufferevent over under (which it owns: BEV_OPT_CLOSE_ON_FREE), framing requests as
 * above; cfg must outlive it. NULL when out of memory (under is freed). */
struct bufferevent *frame_bufferevent(struct bufferevent *under, const struct frame_config *cfg);

/* When path (NUL-terminated) is the internal error path of nonce, the kind it names (and in
 * *detail, may be NULL, the number after it: the body limit for FRAME_BODY_TOO_LARGE); else
 * FRAME_OK. */
enum frame_error frame_error_path(const char *path, const char *nonce, uint64_t *detail);

#endif
