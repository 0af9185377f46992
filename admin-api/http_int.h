/*
 * Internals of the admin API's HTTP framework, shared by its files and included by nothing
 * else. The layers, each calling only those below it:
 *   http.c (server, dispatcher) -> http_read.c (token, headers, body), http_fields.c (query,
 *   JSON fields) -> http_reply.c (replies, streams, the end of a request) -> router.c, errors.c.
 * Handlers see only struct api_request (http.h).
 */
#ifndef API_HTTP_INT_H
#define API_HTTP_INT_H

#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "http.h"
#include "http_frame.h"

enum req_state { ST_NEW = 0, ST_REPLIED, ST_STREAMING, ST_ENDED };

/* What a request waits for, off the loop's stack (api_request_wait_begin). */
enum req_wait { WAIT_NONE = 0, WAIT_AUTH, WAIT_REPLY };

enum auth_state { AUTH_IDLE = 0, AUTH_CALLING, AUTH_PENDING, AUTH_DONE };

/* One token check (http.h): inside its struct req. */
struct api_auth {
    enum auth_state state;
    int rc; /* AUTH_DONE: the api_auth_rc given (checked); the principal is in the struct req */
};

struct query_param {
    char *name, *value; /* point into query_buf */
};

/* The message buffer of api_reply_error, direct or captured (the same truncation either way). */
#define API_REPLY_MESSAGE_MAX 512

/* A response header recorded in capture mode: name and value in one allocation. */
struct cap_header {
    struct cap_header *next;
    const char *value; /* points into text, after the name's NUL */
    char text[];       /* name NUL value NUL */
};

enum cap_kind { CAP_NONE = 0, CAP_JSON, CAP_ERROR };

/* What a handler run in capture mode (api_request_capture) answered, for api_request_replay.
 * Written only by the thread that runs the handler, read on the loop thread after it. */
struct capture {
    bool on;
    enum cap_kind kind;
    int status;         /* CAP_JSON */
    json_t *body;       /* CAP_JSON: owned; NULL replays as the direct NULL body does (500) */
    enum api_error err; /* CAP_ERROR, as given (a bad value replays as the direct bug does) */
    bool has_msg;       /* CAP_ERROR: msg holds the formatted message; else the default */
    char msg[API_REPLY_MESSAGE_MAX];
    struct cap_header *headers, *headers_tail;
    unsigned doubles; /* second replies refused (counted at the replay) */
};

/* One request: the public part handed to handlers, and the framework's own state. */
struct req {
    struct api_request pub;
    struct api_server *server; /* NULL once the server is freed under a stream */
    enum req_state state;
    bool in_handler; /* api_reply_end inside the handler leaves the free to the dispatcher */
    bool gone;       /* the client left during a stream or a wait */
    bool deferred;   /* api_request_defer was called */
    bool watching;   /* the connection's events are ours while the request waits */
    bool streamed;   /* its body streams (http_frame.h): every reply closes the connection */
    bool refused;    /* refused by the framing filter: its method is not known here */
    enum req_wait wait;
    struct api_auth auth;
    /* evhttp's own callbacks on the connection and what it had enabled, while watching */
    bufferevent_data_cb saved_readcb, saved_writecb;
    bufferevent_event_cb saved_eventcb;
    void *saved_cbarg;
    short saved_enabled;
    enum api_match_rc match_rc; /* the route match, kept for the steps after the token check */
    struct api_match match;
    int status;
    enum api_error err;
    struct timespec started;
    size_t metric_route;     /* metrics_route() index: the matched route's, or unmatched */
    uint32_t metric_app;     /* API_ROUTE_METRIC_VERIFY: the sdkappid counted */
    char metric_outcome[32]; /* API_ROUTE_METRIC_VERIFY: the reply's verdict; "" for the code */
    char path[API_PATH_MAX + 1];
    struct principal principal;
    char *query_buf;
    struct query_param query[API_QUERY_MAX_PARAMS];
    size_t n_query;
    void (*close_cb)(struct api_request *r, void *arg);
    void *close_arg;
    void (*sent_cb)(struct api_request *r, void *arg);
    void *sent_arg;
    struct capture cap;
    struct req *prev, *next; /* the server's open streams, or its waiting requests */
};

struct api_server {
    struct event_base *base;
    struct api_server_config cfg;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int port;
    struct api_server_stats stats; /* counted by http.c and http_reply.c */
    struct req *streams;           /* open streamed replies (http_reply.c links them) */
    struct req *waiting;           /* requests waiting on a token check or a deferred reply */
    size_t *metric_routes;         /* metrics_route() of each route, in table order */
    size_t *metric_head_routes;    /* of each route asked as HEAD (a GET route's own HEAD pair) */
    size_t metric_unmatched;       /* metrics_route() of requests that matched none */
    struct frame_config frame;     /* every connection's strict framing (http_frame.h) */
    uint64_t rid_key;              /* request ids: a random key and a count (request_id_make) */
    uint64_t rid_count;
};

/* The struct req around a handler's api_request. */
static inline struct req *req_of(const struct api_request *r)
{
    return (struct req *)((char *)r - offsetof(struct req, pub));
}

/* ---- http_reply.c ---- */

/* Frees f (accepts no NULL): its body wiped, its query and principal gone, and whatever a
 * capture still holds. */
void api_request_free(struct req *f);
/* Takes f off its server's list of open streams (nothing when f->server is NULL). */
void api_stream_unlink(struct req *f);
/* Calls f's close callback once, if one is set (it may end the stream and free f). */
void api_stream_notify_close(struct req *f);
/* Sends the fixed 500 body on req, for when not even a struct req could be allocated. */
void api_reply_fallback_500(struct evhttp_request *req);
/* evhttp wrote req's reply out (its request-complete callback): the framing filter is told
 * (frame_reply_done), and whether the connection closes now. */
void api_reply_written(struct evhttp_request *req);
/* f starts waiting for what (counted, linked on its server's list): its connection is watched
 * so that a client that leaves is noticed (then f->pub.req is freed and NULL, f->gone set, and a
 * deferred request's close callback runs). */
void api_request_wait_begin(struct req *f, enum req_wait what);
/* The wait is over (the token check answered, the deferred reply came): unlinked, uncounted,
 * the connection handed back to evhttp. Nothing when f does not wait. */
void api_request_wait_end(struct req *f);
/* The server is going: f (waiting) loses its server and its evhttp request (evhttp_free frees
 * that with its connection); a deferred one hears of it (its callback may free f). */
void api_request_wait_orphan(struct req *f);
/* Logs the end of a request whose client left before its reply, and counts it. */
void api_reply_dropped(struct req *f, const char *when);

/* ---- http_read.c ---- */

/* Copies the b64token of "Authorization: Bearer <token>" into token; false when absent, given
 * twice or malformed. */
bool api_bearer_token(struct evhttp_request *req, char token[API_TOKEN_MAX + 1]);
/* Parses the JSON body (len bytes of in) into f->pub.body for API_BODY_JSON* routes; false
 * after replying (415, 400, 500). */
bool api_read_json_body(struct req *f, struct evbuffer *in, size_t len);

/* ---- http_fields.c ---- */

/* Parses the query string q (NULL or "": none) into f->query, f->query_buf (freed with f).
 * Returns 0; -1 with a message for the client in why (a 400 invalid_param: too long, malformed,
 * a name twice, too many parameters); -2 when out of memory. */
int api_query_parse(struct req *f, const char *q, char *why, size_t whylen);
/* After api_query_parse: 0 when every parameter's name is in allowed (the route's query list,
 * NULL-terminated; NULL: none), else -1 with the 400 invalid_param message in why, naming the
 * first other one and the names the route takes. */
int api_query_check_names(const struct req *f, const char *const *allowed, char *why,
                          size_t whylen);

#endif
