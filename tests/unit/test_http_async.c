/*
 * The HTTP framework's waiting requests end to end, on the real evhttp server in a thread with
 * real HTTP clients: token checks that answer later (from a timer, or when the test says), and
 * handlers that defer their reply; clients that leave while a request waits; many deferred
 * replies answered in reverse order; a server freed with requests still waiting; the counters.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "http.h"
#include "http_async_fixture.h"
#include "testlib.h"

#define MAX_BODY 4096
#define TIMEOUT_MS 400 /* the connection's inactivity timeout; some waits here are longer */
#define N_CONCURRENT 24

static int port;

/* ---- running code on the loop thread, from the test thread ------------------------------ */

/* Runs fn(arg) on the loop thread and waits for it. */
static void on_loop(void (*fn)(void *arg), void *arg)
{
    test_on_loop(base, fn, arg);
}

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* Polls until *v reaches want (at most ms); true when it did. */
static bool wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms && atomic_load(v) < want; i++)
        sleep_ms(1);
    return atomic_load(v) >= want;
}

struct stats_call {
    struct api_server *s;
    struct api_server_stats st;
};

static void get_stats_cb(void *arg)
{
    struct stats_call *c = arg;
    api_server_get_stats(c->s, &c->st);
}

static struct api_server_stats stats_of(struct api_server *s)
{
    struct stats_call c = {.s = s};
    on_loop(get_stats_cb, &c);
    return c.st;
}

/* ---- the tests --------------------------------------------------------------------------- */

#define AUTH(t) "Authorization: Bearer " t "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void call(struct test_resp *r, const char *method, const char *path, const char *headers,
                 const char *body)
{
    CHECK(test_http_request(r, port, method, path, headers, body, body ? (long)strlen(body) : -1) ==
              0,
          "%s %s: no HTTP response", method, path);
}

static const char *principal_of(struct test_resp *r)
{
    const char *p = json_string_value(json_object_get(r->json, "principal"));
    return p ? p : "(none)";
}

static void test_async_auth(struct api_server *s)
{
    struct test_resp r;
    char v[256];
    double t0;
    int answered = atomic_load(&timed_answered);

    t0 = now_ms();
    call(&r, "GET", "/v1/apps/1400000000", AUTH("a10-admin"), NULL);
    test_http_expect("token checked 10 ms later", &r, 200, NULL);
    CHECK(strcmp(principal_of(&r), "admin-name") == 0, "principal after a late check: %s", r.body);
    CHECK(now_ms() - t0 >= 9.0, "the reply waited for the timer (%.1f ms)", now_ms() - t0);
    CHECK(json_integer_value(json_object_get(r.json, "sdkappid")) == APP_A,
          "path parameters after a late check: %s", r.body);
    test_resp_free(&r);

    call(&r, "GET", "/v1/apps/1400000000", AUTH("a10-unknown"), NULL);
    test_http_expect("unknown token, checked later", &r, 401, "unauthorized");
    CHECK(test_resp_header(&r, "WWW-Authenticate", v, sizeof v) && strstr(v, "invalid_token"),
          "WWW-Authenticate after a late 401: %s", v);
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("a10-broken"), NULL);
    test_http_expect("check failed later", &r, 503, "unavailable");
    test_resp_free(&r);
    call(&r, "PATCH", "/v1/apps/1400000000", AUTH("a10-signer") JSON_CT, "{}");
    test_http_expect("role refused after a late check", &r, 403, "forbidden");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000001", AUTH("a10-signer"), NULL);
    test_http_expect("scope refused after a late check", &r, 403, "forbidden");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/0", AUTH("a10-admin"), NULL);
    test_http_expect("bad path parameter after a late check", &r, 400, "invalid_param");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000?x=%zz", AUTH("a10-admin"), NULL);
    test_http_expect("bad query after a late check", &r, 400, "invalid_param");
    test_resp_free(&r);
    call(&r, "PATCH", "/v1/apps/1400000000", AUTH("a10-admin") JSON_CT, "{\"name\":\"x\"}");
    test_http_expect("body read after a late check", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r.json, "body"), "name")),
                 "x") == 0,
          "body: %s", r.body);
    test_resp_free(&r);
    call(&r, "PATCH", "/v1/apps/1400000000", AUTH("a10-admin") JSON_CT, "{\"name\":");
    test_http_expect("bad JSON after a late check", &r, 400, "bad_json");
    test_resp_free(&r);
    CHECK(atomic_load(&timed_answered) == answered + 9, "every late check came from the timer");

    /* A check slower than the connection's inactivity timeout still gets its reply. */
    call(&r, "GET", "/v1/apps/1400000000", AUTH("a600-admin"), NULL);
    test_http_expect("check slower than the timeout", &r, 200, NULL);
    test_resp_free(&r);

    /* Answered inside the callback: the synchronous path. */
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-admin"), NULL);
    test_http_expect("token checked at once", &r, 200, NULL);
    CHECK(strcmp(principal_of(&r), "admin-name") == 0, "principal: %s", r.body);
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-unknown"), NULL);
    test_http_expect("unknown token at once", &r, 401, "unauthorized");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-broken"), NULL);
    test_http_expect("check failed at once", &r, 503, "unavailable");
    test_resp_free(&r);

    /* A late check and a deferred reply on one request. */
    call(&r, "GET", "/v1/apps/1400000000/defer?ms=10&tag=both", AUTH("a10-admin"), NULL);
    test_http_expect("late check, then deferred reply", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "tag")), "both") == 0 &&
              strcmp(principal_of(&r), "admin-name") == 0,
          "late check + deferred: %s", r.body);
    test_resp_free(&r);

    struct api_server_stats st = stats_of(s);
    CHECK(st.auth_waiting == 0 && st.deferred == 0, "nothing waits: %llu checks, %llu deferred",
          (unsigned long long)st.auth_waiting, (unsigned long long)st.deferred);
}

/* Sends a request on its own connection and returns the socket (the reply not read). */
static int send_only(const char *method, const char *path, const char *headers, const char *body)
{
    char buf[2048];
    int fd = test_http_connect(AF_INET, port);
    int n =
        snprintf(buf, sizeof buf, "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    CHECK(fd >= 0 && test_http_send_all(fd, buf, (size_t)n) == 0, "send %s %s", method, path);
    return fd;
}

static void test_auth_client_leaves(struct api_server *s)
{
    struct api_server_stats before = stats_of(s), st;
    struct test_resp r;
    int fd;

    fd = send_only("GET", "/v1/apps/1400000000", AUTH("hold-admin"), NULL);
    CHECK(wait_for(&n_held_auth, 1, 5000), "the check is held");
    st = stats_of(s);
    CHECK(st.auth_waiting == before.auth_waiting + 1, "one check waits: %llu",
          (unsigned long long)st.auth_waiting);
    close(fd);
    sleep_ms(100); /* the server notices and frees the connection */
    on_loop(release_auth_cb, NULL);
    st = stats_of(s);
    CHECK(st.auth_waiting == 0 && st.replies_dropped == before.replies_dropped + 1 &&
              st.replies == before.replies,
          "the late answer is dropped: %llu waiting, %llu dropped",
          (unsigned long long)st.auth_waiting, (unsigned long long)st.replies_dropped);

    /* The same, answered with an error: nothing is sent either. */
    fd = send_only("GET", "/v1/apps/1400000000", AUTH("hold-admin"), NULL);
    CHECK(wait_for(&n_held_auth, 1, 5000), "the check is held");
    close(fd);
    sleep_ms(100);
    enum api_auth_rc err = API_AUTH_ERROR;
    on_loop(release_auth_cb, &err);

    /* A held check whose client stays gets its reply when released. */
    fd = send_only("GET", "/v1/apps/1400000000", AUTH("hold-admin"), NULL);
    CHECK(wait_for(&n_held_auth, 1, 5000), "the check is held");
    sleep_ms(TIMEOUT_MS + 200); /* longer than the inactivity timeout */
    on_loop(release_auth_cb, NULL);
    size_t len;
    char *raw = test_http_read_all(fd, &len);
    close(fd);
    CHECK(raw != NULL && strncmp(raw, "HTTP/1.1 200", 12) == 0 && strstr(raw, "admin-name"),
          "a held check answered: %.200s", raw ? raw : "");
    free(raw);

    st = stats_of(s);
    CHECK(st.auth_waiting == 0 && st.replies_dropped == before.replies_dropped + 2,
          "two dropped: %llu", (unsigned long long)st.replies_dropped);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("a10-admin"), NULL);
    test_http_expect("serving after clients left", &r, 200, NULL);
    test_resp_free(&r);
}

static void test_defer(struct api_server *s)
{
    struct test_resp r;
    struct api_server_stats before = stats_of(s), st;
    int fd, c0, f0;

    call(&r, "GET", "/t/defer?ms=10&tag=hello", NULL, NULL);
    test_http_expect("deferred reply", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "tag")), "hello") == 0, "tag: %s",
          r.body);
    test_resp_free(&r);
    call(&r, "GET", "/t/defer-now", NULL, NULL);
    test_http_expect("deferred, answered at once", &r, 200, NULL);
    test_resp_free(&r);
    call(&r, "GET", "/t/defer?ms=600&tag=slow", NULL, NULL);
    test_http_expect("deferred longer than the timeout", &r, 200, NULL);
    test_resp_free(&r);

    /* The client leaves: the close callback runs at once, the later reply is discarded. */
    c0 = atomic_load(&closes);
    f0 = atomic_load(&deferred_fired);
    fd = send_only("GET", "/t/defer?ms=1500&tag=gone", NULL, NULL);
    sleep_ms(50);
    st = stats_of(s);
    CHECK(st.deferred == 1, "one deferred reply waits: %llu", (unsigned long long)st.deferred);
    close(fd);
    CHECK(wait_for(&closes, c0 + 1, 1000) && atomic_load(&deferred_fired) == f0,
          "the close callback ran before the reply was made");
    CHECK(wait_for(&deferred_fired, f0 + 1, 5000), "the late reply was made");
    st = stats_of(s);
    CHECK(st.deferred == 0 && st.replies_dropped == before.replies_dropped + 1,
          "discarded: %llu deferred, %llu dropped", (unsigned long long)st.deferred,
          (unsigned long long)st.replies_dropped);

    /* A handler that replies inside its close callback. */
    fd = send_only("GET", "/t/defer?ms=5000&cancel=1", NULL, NULL);
    sleep_ms(50);
    close(fd);
    CHECK(wait_for(&closes, c0 + 2, 1000), "the cancelling close callback ran");
    st = stats_of(s);
    CHECK(st.deferred == 0 && st.replies_dropped == before.replies_dropped + 2,
          "cancelled: %llu deferred, %llu dropped", (unsigned long long)st.deferred,
          (unsigned long long)st.replies_dropped);
    call(&r, "GET", "/t/defer?ms=1&tag=after", NULL, NULL);
    test_http_expect("serving after", &r, 200, NULL);
    test_resp_free(&r);
}

struct client {
    pthread_t thread;
    int i;
    char tag[32], token[32];
    struct test_resp r;
    int rc;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    char headers[128], body[64];
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n" JSON_CT, c->token);
    snprintf(body, sizeof body, "{\"tag\":\"%s\"}", c->tag);
    c->rc = test_http_request(&c->r, port, "POST", "/v1/apps/1400000000/hold", headers, body,
                              (long)strlen(body));
    return NULL;
}

static void test_reverse_order(struct api_server *s)
{
    static struct client cl[N_CONCURRENT];
    char ids[N_CONCURRENT][32];
    int ok = 0, distinct = 1;

    for (int i = 0; i < N_CONCURRENT; i++) {
        cl[i].i = i;
        snprintf(cl[i].tag, sizeof cl[i].tag, "client-%d", i);
        /* alternately checked at once, 10 ms later, and when released */
        snprintf(cl[i].token, sizeof cl[i].token, "%s",
                 i % 3 == 0   ? "t-admin"
                 : i % 3 == 1 ? "a10-admin"
                              : "hold-admin");
        pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
    }
    CHECK(wait_for(&n_held_auth, N_CONCURRENT / 3, 5000), "held checks: %d",
          atomic_load(&n_held_auth));
    struct api_server_stats st = stats_of(s);
    /* the held ones, and those of the timer not answered yet */
    CHECK(st.auth_waiting >= N_CONCURRENT / 3 && st.auth_waiting <= 2 * N_CONCURRENT / 3,
          "checks waiting: %llu", (unsigned long long)st.auth_waiting);
    on_loop(release_auth_cb, NULL);
    CHECK(wait_for(&n_held_req, N_CONCURRENT, 5000), "every request held: %d",
          atomic_load(&n_held_req));
    st = stats_of(s);
    CHECK(st.deferred == N_CONCURRENT && st.auth_waiting == 0, "deferred waiting: %llu",
          (unsigned long long)st.deferred);
    on_loop(release_req_cb, NULL);
    for (int i = 0; i < N_CONCURRENT; i++) {
        struct client *c = &cl[i];
        const char *tag, *rid;
        pthread_join(c->thread, NULL);
        tag = json_string_value(json_object_get(c->r.json, "tag"));
        rid = json_string_value(json_object_get(c->r.json, "request_id"));
        ids[i][0] = '\0';
        if (c->rc == 0 && c->r.status == 200 && tag && strcmp(tag, c->tag) == 0 && rid &&
            test_resp_header(&c->r, "X-Request-Id", ids[i], sizeof ids[i]) &&
            strcmp(ids[i], rid) == 0 && strcmp(principal_of(&c->r), "admin-name") == 0)
            ok++;
        else
            CHECK(0, "client %d: status %d, body %s", i, c->r.status, c->r.body);
        test_resp_free(&c->r);
    }
    for (int i = 0; i < N_CONCURRENT; i++)
        for (int j = i + 1; j < N_CONCURRENT; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                distinct = 0;
    CHECK(ok == N_CONCURRENT && distinct, "each client got its own reply (%d of %d, distinct %d)",
          ok, N_CONCURRENT, distinct);
    st = stats_of(s);
    CHECK(st.deferred == 0 && st.auth_waiting == 0, "nothing waits after the release");
}

/* ---- a server freed with requests waiting -------------------------------------------------- */

static struct api_server *doomed;

static void free_doomed_cb(void *arg)
{
    (void)arg;
    api_server_free(doomed);
    doomed = NULL;
}

/* Reads fd into buf (from have) until what it read holds stop (NULL: any byte), the peer
 * closes, or ms pass. */
static size_t read_until(int fd, char *buf, size_t cap, size_t have, const char *stop, int ms)
{
    double end = now_ms() + ms;
    size_t from = have;
    buf[have] = '\0';
    while (have < cap - 1 && (stop != NULL ? strstr(buf + from, stop) == NULL : have == from)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t k = recv(fd, buf + have, cap - 1 - have, 0);
        if (k <= 0)
            break;
        have += (size_t)k;
        buf[have] = '\0';
    }
    return have;
}

/* A request with a Content-Length whose Expect lists 100-continue with an empty member, or on
 * two lines: evhttp (which takes only one line of exactly "100-continue") gets that line from
 * the filter, so the 100 comes before the body, and the reply after it. */
static void test_listed_continue(void)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char *const expects[] = {"Expect: 100-continue,\r\n",
                                          "Expect: , 100-CONTINUE\r\nExpect: 100-continue\r\n"};
    static const char body[] = "{\"name\":\"y\"}";
    char head[512], buf[8192];
    for (size_t i = 0; i < sizeof expects / sizeof *expects; i++) {
        int hl = snprintf(head, sizeof head,
                          "PATCH /v1/apps/1400000000 HTTP/1.1\r\nHost: t\r\n" AUTH("a10-admin")
                              JSON_CT "%sContent-Length: %zu\r\n\r\n",
                          expects[i], strlen(body));
        int fd = test_http_connect(AF_INET, port);
        CHECK(fd >= 0 && test_http_send_all(fd, head, (size_t)hl) == 0, "listed continue %zu: sent",
              i);
        double t0 = now_ms();
        size_t n = read_until(fd, buf, sizeof buf, 0, cont, 2000);
        CHECK(n == strlen(cont) && strcmp(buf, cont) == 0 && now_ms() - t0 < 500,
              "listed continue %zu: 100 Continue in %.0f ms, before the body: %s", i, now_ms() - t0,
              buf);
        CHECK(test_http_send_all(fd, body, strlen(body)) == 0, "listed continue %zu: body sent", i);
        n = read_until(fd, buf, sizeof buf, n, "1400000000}", 2000);
        CHECK(strncmp(buf + strlen(cont), "HTTP/1.1 200 ", 13) == 0 &&
                  strstr(buf, "\"name\":\"y\"") != NULL,
              "listed continue %zu: the reply follows the body: %s", i, buf);
        close(fd);
    }
}

/* A chunked request that the filter holds until its body is complete (a route that does not
 * stream), with "Expect: 100-continue": the client waits for the 100 before it sends the body,
 * so the filter sends it, at once when no reply is due on the connection, else right after the
 * replies due, never before them. */
static void test_held_continue(void)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char head[] = "PATCH /v1/apps/1400000000 HTTP/1.1\r\nHost: t\r\n" AUTH("a10-admin")
        JSON_CT "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char body[] = "c\r\n{\"name\":\"x\"}\r\n0\r\n\r\n";
    static const char deferred[] = "GET /t/defer?ms=400&tag=first HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[8192];
    size_t n;

    /* Alone on its connection: the 100 comes at once, the reply after the body. */
    int fd = test_http_connect(AF_INET, port);
    CHECK(fd >= 0 && test_http_send_all(fd, head, strlen(head)) == 0, "held continue: sent");
    double t0 = now_ms();
    n = read_until(fd, buf, sizeof buf, 0, cont, 2000);
    CHECK(n == strlen(cont) && strcmp(buf, cont) == 0 && now_ms() - t0 < 500,
          "held continue: 100 Continue in %.0f ms, before the body: %s", now_ms() - t0, buf);
    CHECK(test_http_send_all(fd, body, strlen(body)) == 0, "held continue: body sent");
    n = read_until(fd, buf, sizeof buf, n, "1400000000}", 2000);
    CHECK(strncmp(buf + strlen(cont), "HTTP/1.1 200 ", 13) == 0 &&
              strstr(buf, "\"name\":\"x\"") != NULL &&
              strstr(buf + strlen(cont), "100 Continue") == NULL,
          "held continue: the reply follows, once: %s", buf);
    close(fd);

    /* Behind a reply still due (deferred 400 ms): nothing before that reply, then the 100. */
    fd = test_http_connect(AF_INET, port);
    CHECK(fd >= 0 && test_http_send_all(fd, deferred, strlen(deferred)) == 0 &&
              test_http_send_all(fd, head, strlen(head)) == 0,
          "pipelined continue: sent");
    n = read_until(fd, buf, sizeof buf, 0, NULL, 200);
    CHECK(n == 0, "pipelined continue: nothing while the first reply is due: %s", buf);
    n = read_until(fd, buf, sizeof buf, 0, cont, 2000);
    const char *c = strstr(buf, cont);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0 && strstr(buf, "\"first\"") != NULL && c != NULL &&
              c[strlen(cont)] == '\0' && c > strstr(buf, "\"first\""),
          "pipelined continue: the first reply, then 100 Continue: %s", buf);
    CHECK(test_http_send_all(fd, body, strlen(body)) == 0, "pipelined continue: body sent");
    size_t at = n;
    n = read_until(fd, buf, sizeof buf, n, "1400000000}", 2000);
    CHECK(n > at && strncmp(buf + at, "HTTP/1.1 200 ", 13) == 0 &&
              strstr(buf + at, "\"name\":\"x\"") != NULL,
          "pipelined continue: the second reply follows the body (%zu, %zu): %s", at, n, buf);
    close(fd);

    /* Behind a streamed reply that ends 300 ms later (within the 400 ms inactivity timeout): the
     * 100 after its last chunk. */
    static const char streamed[] = "GET /t/stream?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n";
    fd = test_http_connect(AF_INET, port);
    CHECK(fd >= 0 && test_http_send_all(fd, streamed, strlen(streamed)) == 0 &&
              test_http_send_all(fd, head, strlen(head)) == 0,
          "continue after a stream: sent");
    n = read_until(fd, buf, sizeof buf, 0, "start\n", 2000);
    at = n;
    n = read_until(fd, buf, sizeof buf, n, NULL, 150);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0 && strstr(buf, "start\n") != NULL && n == at &&
              strstr(buf, "100 Continue") == NULL,
          "continue after a stream: its start, nothing more while it runs: %s", buf);
    n = read_until(fd, buf, sizeof buf, n, cont, 2000);
    c = strstr(buf, cont);
    const char *last = strstr(buf, "end\n\r\n0\r\n\r\n");
    CHECK(last != NULL && c != NULL && c == last + strlen("end\n\r\n0\r\n\r\n") &&
              c[strlen(cont)] == '\0',
          "continue after a stream: the stream's end, then 100 Continue: %s", buf);
    CHECK(test_http_send_all(fd, body, strlen(body)) == 0, "continue after a stream: body sent");
    at = n;
    n = read_until(fd, buf, sizeof buf, n, "1400000000}", 2000);
    CHECK(n > at && strncmp(buf + at, "HTTP/1.1 200 ", 13) == 0 &&
              strstr(buf + at, "\"name\":\"x\"") != NULL,
          "continue after a stream: the second reply follows the body: %s", buf + at);
    close(fd);

    /* Behind a request whose reply closes the connection: no 100 for a request never served. */
    static const char closing[] =
        "GET /t/defer?ms=200&tag=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    fd = test_http_connect(AF_INET, port);
    CHECK(fd >= 0 && test_http_send_all(fd, closing, strlen(closing)) == 0 &&
              test_http_send_all(fd, head, strlen(head)) == 0,
          "continue after a close: sent");
    n = read_until(fd, buf, sizeof buf, 0, "no such marker", 2000);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0 && strstr(buf, "\"last\"") != NULL &&
              strstr(buf, "100 Continue") == NULL,
          "continue after a close: the reply, the close, no 100: %s", buf);
    close(fd);
}

static void test_free_with_waiting(const struct api_server_config *cfg, struct api_auth **late)
{
    char err[256];
    int main_port = port, fds[4], held_closed0 = atomic_load(&held_closed);

    doomed = api_server_new(base, cfg, err, sizeof err);
    if (doomed == NULL || api_server_start(doomed, err, sizeof err) != 0) {
        CHECK(0, "second server: %s", err);
        return;
    }
    port = api_server_port(doomed);
    fds[0] = send_only("GET", "/v1/apps/1400000000", AUTH("hold-admin"), NULL);
    fds[1] = send_only("GET", "/v1/apps/1400000000", AUTH("hold-admin"), NULL);
    fds[2] = send_only("POST", "/v1/apps/1400000000/hold", AUTH("t-admin") JSON_CT,
                       "{\"tag\":\"doomed\"}");
    fds[3] = send_only("GET", "/v1/apps/1400000000", AUTH("hold-admin"), NULL);
    CHECK(wait_for(&n_held_auth, 3, 5000) && wait_for(&n_held_req, 1, 5000),
          "three checks and one reply held");
    close(fds[3]); /* one whose client left already */
    sleep_ms(100);
    struct api_server_stats st = stats_of(doomed);
    CHECK(st.auth_waiting == 3 && st.deferred == 1, "waiting before the free: %llu, %llu",
          (unsigned long long)st.auth_waiting, (unsigned long long)st.deferred);

    on_loop(free_doomed_cb, NULL);
    CHECK(atomic_load(&held_closed) == held_closed0 + 1, "the deferred handler heard of the free");
    for (int i = 0; i < 3; i++) {
        size_t len;
        char *raw = test_http_read_all(fds[i], &len);
        CHECK(raw != NULL && len == 0, "connection %d closed without a reply (%zu bytes)", i, len);
        free(raw);
        close(fds[i]);
    }
    /* The deferred reply and two of the checks answer after the free: into nothing. */
    on_loop(release_req_cb, NULL);
    *late = held_auth[2];
    atomic_store(&n_held_auth, 2);
    on_loop(release_auth_cb, NULL);
    port = main_port;
}

int main(void)
{
    char err[256];
    pthread_t thread;
    struct api_server *server;
    struct api_server_stats st;
    struct api_auth *late = NULL;
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .request_timeout_ms = TIMEOUT_MS,
        .routes = async_routes,
        .n_routes = n_async_routes,
        .authenticate = async_authenticate,
    };

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL) {
        CHECK(0, "event base");
        return test_done("http_async");
    }
    server = api_server_new(base, &cfg, err, sizeof err);
    if (server == NULL || api_server_start(server, err, sizeof err) != 0) {
        CHECK(0, "api server: %s", err);
        return test_done("http_async");
    }
    port = api_server_port(server);
    pthread_create(&thread, NULL, test_loop_thread, base);

    test_async_auth(server);
    test_auth_client_leaves(server);
    test_defer(server);
    test_reverse_order(server);
    test_held_continue();
    test_listed_continue();
    test_free_with_waiting(&cfg, &late);

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_get_stats(server, &st);
    CHECK(st.replies + st.replies_dropped == st.requests && st.auth_waiting == 0 &&
              st.deferred == 0 && st.in_flight == 0,
          "every request answered or dropped: %llu requests, %llu replies, %llu dropped",
          (unsigned long long)st.requests, (unsigned long long)st.replies,
          (unsigned long long)st.replies_dropped);
    CHECK(st.double_replies == 0 && st.missing_replies == 0 && st.internal_errors == 0,
          "no reply bugs counted");
    CHECK(atomic_load(&bad_request_ids) == 0, "every check knew its request id");
    CHECK(atomic_load(&stream_faults) == 0, "every streamed reply started and sent its chunks");
    api_server_stop(server);
    api_server_free(server);
    event_base_free(base);
    libevent_global_shutdown();
    /* The last check of the freed server answers after the event loop is gone: harmless. */
    CHECK(late != NULL, "a check still held");
    if (late != NULL)
        answer(late, "admin");
    return test_done("http_async");
}
