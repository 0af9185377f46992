/*
 * The HTTP framework's replies end to end, on the real evhttp server in a thread: exactly one
 * reply per request (a second refused, a missing one answered 500, allocation failures), two
 * pipelined requests, streamed replies fed inline and by a timer, a client that leaves
 * mid-stream, the inactivity timeout, IPv6, and the server's counters of all this.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "http.h"
#include "testlib.h"

#define MAX_BODY 4096

static atomic_int stream_closed, stream_ended, chunks_sent;

/* Every route here is public: no token is ever looked up. */
static void no_authenticate(void *ctx, const char *token, struct api_auth *call)
{
    (void)ctx;
    (void)token;
    api_auth_done(call, API_AUTH_NOT_FOUND, NULL);
}

static void h_ok(struct api_request *r)
{
    api_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void h_double(struct api_request *r)
{
    api_reply_json(r, 200, json_pack("{s:b}", "first", 1));
#ifdef NDEBUG /* a debug build asserts here, as it should */
    api_reply_error(r, API_ERR_BAD_JSON, "second");
#endif
}

static void h_noreply(struct api_request *r)
{
#ifdef NDEBUG
    (void)r;
#else
    api_reply_json(r, 200, json_pack("{s:b}", "debug-build", 1));
#endif
}

static void h_nullbody(struct api_request *r)
{
    api_reply_json(r, 200, NULL); /* as after a failed json_object() */
}

static void *failing_malloc(size_t n)
{
    (void)n;
    return NULL;
}

static void h_oom(struct api_request *r)
{
    json_set_alloc_funcs(failing_malloc, free);
    api_reply_error(r, API_ERR_BAD_IDENTIFIER, "the body cannot be built");
    json_set_alloc_funcs(malloc, free);
}

static void h_stream(struct api_request *r)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, NULL);
        return;
    }
    if (api_reply_start(r, 200, "application/x-ndjson") != 0) { /* a 500 went out instead */
        evbuffer_free(b);
        return;
    }
    for (int i = 0; i < 3; i++) {
        evbuffer_add_printf(b, "{\"line\":%d}\n", i);
        if (api_reply_chunk(r, b, NULL, NULL) != 0)
            break;
    }
    evbuffer_free(b);
    api_reply_end(r); /* inside the handler: the framework frees r after we return */
}

/* A stream fed by a timer: n lines, one every 5 ms, ended early when the client leaves. */
struct slow {
    struct api_request *r;
    struct event *timer;
    struct evbuffer *buf;
    int64_t i, n;
};

static void slow_finish(struct slow *s)
{
    event_free(s->timer);
    evbuffer_free(s->buf);
    api_reply_end(s->r);
    atomic_fetch_add(&stream_ended, 1);
    free(s);
}

static void slow_on_close(struct api_request *r, void *arg)
{
    (void)r;
    atomic_fetch_add(&stream_closed, 1);
    slow_finish(arg);
}

static void slow_sent(struct api_request *r, void *arg)
{
    (void)r;
    (void)arg;
    atomic_fetch_add(&chunks_sent, 1);
}

static void slow_tick(evutil_socket_t fd, short what, void *arg)
{
    struct slow *s = arg;
    struct timeval tv = {0, 5000};
    (void)fd;
    (void)what;
    evbuffer_add_printf(s->buf, "line %lld\n", (long long)s->i);
    if (api_reply_chunk(s->r, s->buf, slow_sent, s) != 0 || ++s->i == s->n) {
        slow_finish(s);
        return;
    }
    evtimer_add(s->timer, &tv);
}

static void h_slowstream(struct api_request *r)
{
    struct event_base *base = r->ctx;
    struct timeval tv = {0, 5000};
    struct slow *s = calloc(1, sizeof *s);
    if (s == NULL || api_query_int64(r, "n", 1, 100000, &s->n) != API_QUERY_OK ||
        (s->buf = evbuffer_new()) == NULL || (s->timer = evtimer_new(base, slow_tick, s)) == NULL) {
        if (s != NULL)
            evbuffer_free(s->buf);
        free(s);
        api_reply_error(r, API_ERR_INTERNAL, NULL);
        return;
    }
    s->r = r;
    if (api_reply_start(r, 200, "text/plain") != 0) { /* a 500 went out instead */
        event_free(s->timer);
        evbuffer_free(s->buf);
        free(s);
        return;
    }
    api_request_on_close(r, slow_on_close, s);
    evtimer_add(s->timer, &tv);
}

static const char *const q_slowstream[] = {"n", NULL};

static const struct api_route test_table[] = {
    {EVHTTP_REQ_GET, "/t/public", "pub", PERM_PUBLIC, API_BODY_NONE, 0, h_ok, NULL},
    {EVHTTP_REQ_GET, "/t/double", "double", PERM_PUBLIC, API_BODY_NONE, 0, h_double, NULL},
    {EVHTTP_REQ_GET, "/t/noreply", "noreply", PERM_PUBLIC, API_BODY_NONE, 0, h_noreply, NULL},
    {EVHTTP_REQ_GET, "/t/nullbody", "nullbody", PERM_PUBLIC, API_BODY_NONE, 0, h_nullbody, NULL},
    {EVHTTP_REQ_GET, "/t/oom", "oom", PERM_PUBLIC, API_BODY_NONE, 0, h_oom, NULL},
    {EVHTTP_REQ_GET, "/t/stream", "stream", PERM_PUBLIC, API_BODY_NONE, 0, h_stream, NULL},
    {EVHTTP_REQ_GET, "/t/slowstream", "slow", PERM_PUBLIC, API_BODY_NONE, 0, h_slowstream,
     q_slowstream},
};

static struct event_base *base;
static int port;

#define AUTH(t) "Authorization: Bearer " t "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

static void call(struct test_resp *r, const char *method, const char *path, const char *headers,
                 const char *body)
{
    CHECK(test_http_request(r, port, method, path, headers, body, body ? (long)strlen(body) : -1) ==
              0,
          "%s %s: no HTTP response", method, path);
}

/* Sends req[0..n) on a new connection and reads until the server closes it (3 s at most a read):
 * what came (NULL when nothing could be sent), *ms how long the reading took. */
static char *read_to_close(const char *req, size_t n, long *ms)
{
    struct timeval rcv = {.tv_sec = 3};
    struct timespec t0, t1;
    size_t len;
    int fd = test_http_connect(AF_INET, port);
    if (fd < 0)
        return NULL;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv) != 0 ||
        test_http_send_all(fd, req, n) != 0) {
        close(fd);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *raw = test_http_read_all(fd, &len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    *ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    return raw;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_replies(void)
{
    struct test_resp r;
    char v[256];

    call(&r, "GET", "/t/nullbody", NULL, NULL);
    test_http_expect("NULL body", &r, 500, "internal");
    test_resp_free(&r);
    call(&r, "GET", "/t/oom", NULL, NULL);
    test_http_expect("allocation failure", &r, 500, "internal");
    test_resp_free(&r);
#ifdef NDEBUG
    call(&r, "GET", "/t/double", NULL, NULL);
    test_http_expect("double reply", &r, 200, NULL);
    CHECK(count(r.raw, "HTTP/1.1 ") == 1 && json_is_true(json_object_get(r.json, "first")),
          "one reply on the wire, the first: %s", r.raw);
    test_resp_free(&r);
    call(&r, "GET", "/t/noreply", NULL, NULL);
    test_http_expect("no reply", &r, 500, "internal");
    test_resp_free(&r);
#endif

    /* Two pipelined requests on one connection: two replies, in order. */
    int fd = test_http_connect(AF_INET, port);
    const char two[] = "GET /t/public HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    size_t len;
    CHECK(fd >= 0 && test_http_send_all(fd, two, sizeof two - 1) == 0, "pipelined send");
    char *raw = test_http_read_all(fd, &len);
    close(fd);
    CHECK(count(raw, "HTTP/1.1 ") == 2 && count(raw, "X-Request-Id: ") == 2 &&
              strstr(raw, "HTTP/1.1 200") < strstr(raw, "HTTP/1.1 404"),
          "pipelined: %s", raw);
    free(raw);

    /* Streams. */
    call(&r, "GET", "/t/stream", NULL, NULL);
    test_http_expect("stream", &r, 200, NULL);
    CHECK(strcmp(r.body, "{\"line\":0}\n{\"line\":1}\n{\"line\":2}\n") == 0, "stream body: %s",
          r.body);
    CHECK(test_resp_header(&r, "Content-Type", v, sizeof v) &&
              strcmp(v, "application/x-ndjson") == 0,
          "stream Content-Type");
    test_resp_free(&r);
    /* HTTP/1.0 has no chunks: a stream asked for with keep-alive ends with the connection, not
     * a Content-Length of 0 and its lines unframed after it on a connection kept open. */
    const char keep10[] = "GET /t/stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    long ms = 0;
    raw = read_to_close(keep10, sizeof keep10 - 1, &ms);
    const char *body10 = raw != NULL ? strstr(raw, "\r\n\r\n") : NULL;
    CHECK(raw != NULL && strncmp(raw, "HTTP/1.0 200 ", 13) == 0 &&
              strcasestr(raw, "Content-Length") == NULL && strcasestr(raw, "keep-alive") == NULL &&
              body10 != NULL &&
              strcmp(body10 + 4, "{\"line\":0}\n{\"line\":1}\n{\"line\":2}\n") == 0 && ms < 2000,
          "HTTP/1.0 keep-alive stream: the body, ended by the close in %ld ms: %s", ms, raw);
    free(raw);
    /* The close option anywhere in Connection (a list, a second line) closes the connection
     * after the reply, at once (not at the 1 s timeout), and a request pipelined behind it is
     * not served (RFC 9112 section 9.6). */
    static const char *const closes[] = {"Connection: TE, close\r\n",
                                         "Connection: foo\r\nconnection: CLOSE\r\n",
                                         "Connection:\tclose\r\n"};
    for (size_t i = 0; i < sizeof closes / sizeof *closes; i++) {
        char two_reqs[512];
        int tl = snprintf(two_reqs, sizeof two_reqs,
                          "GET /t/public HTTP/1.1\r\nHost: t\r\n%s\r\n"
                          "GET /t/public HTTP/1.1\r\nHost: t\r\n\r\n",
                          closes[i]);
        raw = read_to_close(two_reqs, (size_t)tl, &ms);
        CHECK(raw != NULL && count(raw, "HTTP/1.1 200") == 1 && ms < 500,
              "close %zu: one reply, then the close, in %ld ms: %s", i, ms, raw);
        free(raw);
    }
    call(&r, "GET", "/t/slowstream?n=20", NULL, NULL);
    test_http_expect("timer stream", &r, 200, NULL);
    CHECK(count(r.body, "line ") == 20 && strstr(r.body, "line 19\n"), "timer stream body: %s",
          r.body);
    test_resp_free(&r);
    CHECK(atomic_load(&chunks_sent) > 0, "sent callbacks run");

    /* A client that leaves mid-stream: the handler hears of it and ends. */
    int ended = atomic_load(&stream_ended);
    fd = test_http_connect(AF_INET, port);
    const char slow[] = "GET /t/slowstream?n=100000 HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[4096];
    CHECK(fd >= 0 && test_http_send_all(fd, slow, sizeof slow - 1) == 0, "slow send");
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    CHECK(got > 0, "first chunk");
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&stream_closed) == 0; i++)
        usleep(10000);
    CHECK(atomic_load(&stream_closed) == 1 && atomic_load(&stream_ended) == ended + 1,
          "close callback ran and the stream ended (%d closed)", atomic_load(&stream_closed));
    call(&r, "GET", "/t/public", NULL, NULL);
    test_http_expect("serving after a client left", &r, 200, NULL);
    test_resp_free(&r);
}

static void test_timeout(void)
{
    /* Half a request line, then silence: the server's timeout (1 s) closes the connection. */
    int fd = test_http_connect(AF_INET, port);
    char buf[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(fd >= 0 && test_http_send_all(fd, "GET /t/public HT", 16) == 0, "partial send");
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(n <= 0 && s >= 0.5 && s < 8, "closed after the timeout (%zd bytes, %.1f s)", n, s);
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

static void test_ipv6(struct api_server *v6)
{
    int fd = test_http_connect(AF_INET6, api_server_port(v6));
    const char req[] = "GET /t/public HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    size_t len;
    char *raw;
    CHECK(fd >= 0 && test_http_send_all(fd, req, sizeof req - 1) == 0, "connect over IPv6");
    raw = test_http_read_all(fd, &len);
    close(fd);
    CHECK(strncmp(raw, "HTTP/1.1 200", 12) == 0, "IPv6 reply: %s", raw);
    free(raw);
}

int main(void)
{
    char err[256];
    pthread_t thread;
    struct api_server *server, *v6 = NULL;
    struct api_server_stats st;
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .request_timeout_ms = 1000,
        .routes = test_table,
        .n_routes = sizeof test_table / sizeof test_table[0],
        .authenticate = no_authenticate,
    };

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL) {
        CHECK(0, "event base");
        return test_done("http_replies");
    }
    cfg.ctx = base;
    server = api_server_new(base, &cfg, err, sizeof err);
    if (server == NULL || api_server_start(server, err, sizeof err) != 0) {
        CHECK(0, "api server: %s", err);
        return test_done("http_replies");
    }
    port = api_server_port(server);
    cfg.listen = "[::1]:0";
    v6 = api_server_new(base, &cfg, err, sizeof err);
    if (v6 != NULL && api_server_start(v6, err, sizeof err) != 0) {
        printf("http_replies: no IPv6 loopback here (%s); IPv6 not tested\n", err);
        api_server_free(v6);
        v6 = NULL;
    }
    pthread_create(&thread, NULL, test_loop_thread, base);

    test_replies();
    test_timeout();
    if (v6 != NULL)
        test_ipv6(v6);

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_get_stats(server, &st);
    CHECK(st.requests >= 8 && st.replies == st.requests && st.in_flight == 0,
          "one reply per request: %llu requests, %llu replies, %llu in flight",
          (unsigned long long)st.requests, (unsigned long long)st.replies,
          (unsigned long long)st.in_flight);
#ifdef NDEBUG
    CHECK(st.double_replies == 1 && st.missing_replies == 1,
          "bugs counted: %llu double, %llu missing", (unsigned long long)st.double_replies,
          (unsigned long long)st.missing_replies);
#endif
    CHECK(st.internal_errors >= 2, "500s counted: %llu", (unsigned long long)st.internal_errors);
    api_server_stop(server);
    api_server_free(server);
    api_server_free(v6);
    event_base_free(base);
    libevent_global_shutdown();
    return test_done("http_replies");
}
