/*
 * Offloaded handlers end to end, on the real evhttp server with real HTTP clients: the offload
 * hook runs handlers on worker threads (plain pthreads) in capture mode and replays their replies
 * on the loop thread. Each reply (200 with a body and an extra header, 201 with Location, the
 * 400s of api_require_fields and api_query_limit, errors with and without a message, 401 with
 * WWW-Authenticate) must reach the client byte for byte as from the same handler run directly;
 * what capture mode refuses (streams, deferring) answers 500; a client that leaves while its
 * handler runs; a server freed under one; many concurrent requests; the daemon's hook without a
 * pool; the daemon's route table flags.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "offload.h"
#include "routes.h"
#include "service.h"
#include "testlib.h"

#define APP 1400000000u
#define N_WORKERS 4
#define N_CONCURRENT 32
#define AUTH "Authorization: Bearer t-admin\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

static struct event_base *base;
static pthread_t loop_tid;
static int port;
static atomic_int ran_on_loop, ran_off_loop, saw_worker_ctx, slow_started, slow_done, replays;

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

static bool wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms && atomic_load(v) < want; i++)
        sleep_ms(1);
    return atomic_load(v) >= want;
}

static int worker_ctx_tag; /* handlers see &worker_ctx_tag as r->ctx on the workers */

/* Where a handler runs, and with which r->ctx. */
static void note_thread(const struct api_request *r)
{
    if (r->ctx == &worker_ctx_tag)
        atomic_fetch_add(&saw_worker_ctx, 1);
    if (pthread_equal(pthread_self(), loop_tid))
        atomic_fetch_add(&ran_on_loop, 1);
    else
        atomic_fetch_add(&ran_off_loop, 1);
}

/* ---- the offload hook: a queue served by worker threads ----------------------------------- */

struct work {
    struct api_request *r;
    void (*handler)(struct api_request *r);
    struct work *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct work *todo, *done_list;
static bool stopping;
static struct event *done_ev;

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!stopping && todo == NULL)
            pthread_cond_wait(&cv, &mu);
        if (stopping)
            break;
        struct work *w = todo;
        todo = w->next;
        pthread_mutex_unlock(&mu);
        w->r->ctx = &worker_ctx_tag;
        w->handler(w->r);
        pthread_mutex_lock(&mu);
        w->next = done_list;
        done_list = w;
        event_active(done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pthread_mutex_lock(&mu);
    struct work *w = done_list;
    done_list = NULL;
    pthread_mutex_unlock(&mu);
    while (w != NULL) {
        struct work *next = w->next;
        api_request_replay(w->r);
        atomic_fetch_add(&replays, 1);
        free(w);
        w = next;
    }
}

static void thread_offload(void *ctx, struct api_request *r, void (*handler)(struct api_request *r))
{
    struct work *w = calloc(1, sizeof *w);
    (void)ctx;
    if (w == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    if (api_request_capture(r) != 0) {
        free(w);
        CHECK(0, "api_request_capture refused");
        return;
    }
    w->r = r;
    w->handler = handler;
    pthread_mutex_lock(&mu);
    w->next = todo;
    todo = w;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void authenticate(void *ctx, const char *token, struct api_auth *call)
{
    struct principal p = {.token_id = 3, .role = ROLE_ADMIN, .all_apps = true};
    (void)ctx;
    snprintf(p.name, sizeof p.name, "admin-token");
    if (strcmp(token, "t-admin") == 0)
        api_auth_done(call, API_AUTH_OK, &p);
    else
        api_auth_done(call, API_AUTH_NOT_FOUND, NULL);
}

/* ---- handlers (each route twice: /d/... direct, /o/... offloaded) ------------------------- */

/* GET /X/{sdkappid}/thing?limit=N&q=S: 200 with an extra header; a bad limit is 400 (another
 * name the framework refuses: q_thing). */
static void h_thing(struct api_request *r)
{
    size_t limit = 10;
    const char *q = api_query(r, "q");

    note_thread(r);
    if (api_query_limit(r, 50, &limit) != 0)
        return;
    if (api_reply_header(r, "X-Extra", "yes") != 0 ||
        api_reply_header(r, "X-Bad", "a\r\nInjected: 1") == 0) { /* refused either way */
        api_reply_error(r, API_ERR_INTERNAL, "header");
        return;
    }
    api_reply_json(r, 200,
                   json_pack("{s:I, s:I, s:s, s:s}", "sdkappid", (json_int_t)r->sdkappid, "limit",
                             (json_int_t)limit, "q", q ? q : "", "principal",
                             r->principal ? r->principal->name : "-"));
}

/* POST /X/{sdkappid}/items {"name": "...", "n": 1}: 201 with Location; field errors are 400. */
static void h_create(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"name", API_FIELD_STRING, API_FIELD_REQUIRED}, {"n", API_FIELD_INTEGER, 0}, {NULL, 0, 0}};
    char loc[64];

    note_thread(r);
    if (api_require_fields(r, fields) != 0)
        return;
    snprintf(loc, sizeof loc, "/x/%u/items/7", r->sdkappid);
    if (api_reply_header(r, "Location", loc) != 0) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    api_reply_json(r, 201,
                   json_pack("{s:O, s:i}", "name", json_object_get(r->body, "name"), "id", 7));
}

/* GET /X/{sdkappid}/err?kind=...: errors from the table, with and without a message. */
static void h_err(struct api_request *r)
{
    const char *kind = api_query(r, "kind");
    note_thread(r);
    if (kind != NULL && strcmp(kind, "401") == 0)
        api_reply_error(r, API_ERR_UNAUTHORIZED, NULL);
    else if (kind != NULL && strcmp(kind, "conflict") == 0)
        api_reply_error(r, API_ERR_CONFLICT, "app %u changed meanwhile", r->sdkappid);
    else if (kind != NULL && strcmp(kind, "null") == 0)
        api_reply_json(r, 200, NULL); /* as from a failed json_pack: 500 */
    else
        api_reply_error(r, API_ERR_NOT_FOUND, NULL);
}

/* GET /o/slow: 300 ms on its thread, then 200. */
static void h_slow(struct api_request *r)
{
    atomic_fetch_add(&slow_started, 1);
    sleep_ms(300);
    api_reply_json(r, 200, json_pack("{s:b}", "slow", 1));
    atomic_fetch_add(&slow_done, 1);
}

/* GET /o/stream and /o/defer: what capture mode refuses. GET /o/header: headers read none. */
static void h_stream(struct api_request *r)
{
    if (api_reply_start(r, 200, "text/plain") == 0) {
        CHECK(0, "a stream started in capture mode");
        api_reply_end(r);
    }
}

static void h_defer(struct api_request *r)
{
    api_request_defer(r); /* refused: the 500 is recorded */
}

static void h_header(struct api_request *r)
{
    api_reply_json(r, 200,
                   json_pack("{s:b, s:b}", "header", api_request_header(r, "Host") != NULL, "gone",
                             api_request_gone(r)));
}

#define PAIR(M, PATH, PERM, BODY, H, Q)                                                            \
    {M, "/d" PATH, "d" #H, PERM, BODY, 0, H, Q},                                                   \
    {                                                                                              \
        M, "/o" PATH, "o" #H, PERM, BODY, API_ROUTE_OFFLOAD, H, Q                                  \
    }

static const char *const q_thing[] = {"limit", "q", NULL};
static const char *const q_err[] = {"kind", NULL};

static const struct api_route table[] = {
    PAIR(EVHTTP_REQ_GET, "/{sdkappid}/thing", PERM_APPS_READ, API_BODY_NONE, h_thing, q_thing),
    PAIR(EVHTTP_REQ_POST, "/{sdkappid}/items", PERM_APPS_WRITE, API_BODY_JSON, h_create, NULL),
    PAIR(EVHTTP_REQ_GET, "/{sdkappid}/err", PERM_PUBLIC, API_BODY_NONE, h_err, q_err),
    {EVHTTP_REQ_GET, "/o/slow", "slow", PERM_PUBLIC, API_BODY_NONE, API_ROUTE_OFFLOAD, h_slow,
     NULL},
    {EVHTTP_REQ_GET, "/o/stream", "stream", PERM_PUBLIC, API_BODY_NONE, API_ROUTE_OFFLOAD, h_stream,
     NULL},
    {EVHTTP_REQ_GET, "/o/defer", "defer", PERM_PUBLIC, API_BODY_NONE, API_ROUTE_OFFLOAD, h_defer,
     NULL},
    {EVHTTP_REQ_GET, "/o/header", "header", PERM_PUBLIC, API_BODY_NONE, API_ROUTE_OFFLOAD, h_header,
     NULL},
};

/* ---- comparing a direct and an offloaded reply -------------------------------------------- */

/* The response head without its Date and X-Request-Id lines (checked apart). */
static void strip_head(const char *head, char *out, size_t cap)
{
    const char *p = head;
    size_t used = 0;
    out[0] = '\0';
    while (*p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t n = eol ? (size_t)(eol - p) + 2 : strlen(p);
        if (strncasecmp(p, "Date:", 5) != 0 && strncasecmp(p, "X-Request-Id:", 13) != 0 &&
            used + n < cap) {
            memcpy(out + used, p, n);
            used += n;
            out[used] = '\0';
        }
        p += n;
    }
}

static bool request_id_ok(const struct test_resp *r)
{
    char id[64];
    return test_resp_header(r, "X-Request-Id", id, sizeof id) != NULL && strlen(id) == 16;
}

/* The same request to /d<path> and /o<path>: same status, body and headers. */
static void same_reply(const char *what, const char *method, const char *path, const char *headers,
                       const char *body, int want_status, const char *want_header)
{
    struct test_resp d, o;
    char dpath[256], opath[256], dh[8192], oh[8192], v[256];
    int off0 = atomic_load(&ran_off_loop), ctx0 = atomic_load(&saw_worker_ctx);

    snprintf(dpath, sizeof dpath, "/d%s", path);
    snprintf(opath, sizeof opath, "/o%s", path);
    long len = body ? (long)strlen(body) : -1;
    test_http_request(&d, port, method, dpath, headers, body, len);
    test_http_request(&o, port, method, opath, headers, body, len);
    strip_head(d.head, dh, sizeof dh);
    strip_head(o.head, oh, sizeof oh);
    CHECK(d.status == want_status, "%s: direct status %d, want %d (%s)", what, d.status,
          want_status, d.body ? d.body : "");
    CHECK(o.status == d.status, "%s: offloaded status %d, direct %d", what, o.status, d.status);
    CHECK(d.body_len == o.body_len && d.body && o.body && memcmp(d.body, o.body, d.body_len) == 0,
          "%s: bodies differ:\n direct    %s\n offloaded %s", what, d.body, o.body);
    CHECK(strcmp(dh, oh) == 0, "%s: headers differ:\n direct:\n%s offloaded:\n%s", what, dh, oh);
    CHECK(request_id_ok(&d) && request_id_ok(&o), "%s: both carry an X-Request-Id", what);
    if (want_header != NULL)
        CHECK(test_resp_header(&o, want_header, v, sizeof v) != NULL, "%s: %s in the reply", what,
              want_header);
    CHECK(atomic_load(&ran_off_loop) == off0 + 1 && atomic_load(&saw_worker_ctx) == ctx0 + 1,
          "%s: the offloaded handler ran off the loop with the worker's ctx", what);
    test_resp_free(&d);
    test_resp_free(&o);
}

static void test_identical(void)
{
    char path[128];
    snprintf(path, sizeof path, "/%u/thing?limit=20&q=hello%%20world", APP);
    same_reply("200 with a header", "GET", path, AUTH, NULL, 200, "X-Extra");
    snprintf(path, sizeof path, "/%u/thing", APP);
    same_reply("200, default limit", "GET", path, AUTH, NULL, 200, "X-Extra");
    snprintf(path, sizeof path, "/%u/thing?limit=51", APP);
    same_reply("api_query_limit 400", "GET", path, AUTH, NULL, 400, NULL);
    snprintf(path, sizeof path, "/%u/thing?limit=x", APP);
    same_reply("api_query_limit 400, not a number", "GET", path, AUTH, NULL, 400, NULL);
    /* A name the route does not take: the framework answers, before the offload hook, so the
     * handler runs on no thread and both replies are the same. */
    snprintf(path, sizeof path, "/%u/thing?other=1", APP);
    {
        struct test_resp d, o;
        char dpath[160], opath[160];
        int off0 = atomic_load(&ran_off_loop);
        snprintf(dpath, sizeof dpath, "/d%s", path);
        snprintf(opath, sizeof opath, "/o%s", path);
        test_http_request(&d, port, "GET", dpath, AUTH, NULL, -1);
        test_http_request(&o, port, "GET", opath, AUTH, NULL, -1);
        CHECK(d.status == 400 && o.status == 400 && d.body && o.body &&
                  strcmp(d.body, o.body) == 0 &&
                  strstr(d.body, "unknown query parameter \\\"other\\\" (this route takes: limit, "
                                 "q)") != NULL,
              "unknown query parameter: 400 from the framework, got %d %s / %d %s", d.status,
              d.body ? d.body : "", o.status, o.body ? o.body : "");
        CHECK(atomic_load(&ran_off_loop) == off0, "unknown query parameter: no handler ran");
        test_resp_free(&d);
        test_resp_free(&o);
    }

    snprintf(path, sizeof path, "/%u/items", APP);
    same_reply("201 with Location", "POST", path, AUTH JSON_CT, "{\"name\":\"a\",\"n\":2}", 201,
               "Location");
    same_reply("missing field", "POST", path, AUTH JSON_CT, "{\"n\":2}", 400, NULL);
    same_reply("invalid field", "POST", path, AUTH JSON_CT, "{\"name\":5}", 400, NULL);
    same_reply("unknown field", "POST", path, AUTH JSON_CT, "{\"name\":\"a\",\"x\":1}", 400, NULL);

    snprintf(path, sizeof path, "/%u/err", APP);
    same_reply("404, default message", "GET", path, NULL, NULL, 404, NULL);
    snprintf(path, sizeof path, "/%u/err?kind=conflict", APP);
    same_reply("409 with a message", "GET", path, NULL, NULL, 409, NULL);
    snprintf(path, sizeof path, "/%u/err?kind=401", APP);
    same_reply("401 with WWW-Authenticate", "GET", path, NULL, NULL, 401, "WWW-Authenticate");
    snprintf(path, sizeof path, "/%u/err?kind=null", APP);
    same_reply("NULL body: 500", "GET", path, NULL, NULL, 500, NULL);
}

static void test_refused(void)
{
    struct test_resp r;
    test_http_request(&r, port, "GET", "/o/stream", NULL, NULL, -1);
    test_http_expect("a stream in capture mode", &r, 500, "internal");
    test_resp_free(&r);
    test_http_request(&r, port, "GET", "/o/defer", NULL, NULL, -1);
    test_http_expect("deferring in capture mode", &r, 500, "internal");
    test_resp_free(&r);
    test_http_request(&r, port, "GET", "/o/header", NULL, NULL, -1);
    test_http_expect("headers in capture mode", &r, 200, NULL);
    CHECK(json_is_false(json_object_get(r.json, "header")) &&
              json_is_false(json_object_get(r.json, "gone")),
          "capture mode reads no request header and is not gone: %s", r.body);
    test_resp_free(&r);
}

/* ---- the loop thread, from the test thread ------------------------------------------------ */

/* Runs fn(arg) on the loop thread and waits for it. */
static void on_loop(void (*fn)(void *arg), void *arg)
{
    test_on_loop(base, fn, arg);
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

/* A request sent on its own connection, not read: the socket. */
static int send_only(int to_port, const char *path)
{
    char req[512];
    int fd = test_http_connect(AF_INET, to_port);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                     path);
    if (fd < 0 || test_http_send_all(fd, req, (size_t)n) != 0)
        CHECK(0, "send %s", path);
    return fd;
}

static void test_client_leaves(struct api_server *s)
{
    struct api_server_stats st0 = stats_of(s), st;
    int started0 = atomic_load(&slow_started), done0 = atomic_load(&slow_done);
    int replays0 = atomic_load(&replays);
    int fd = send_only(port, "/o/slow");

    CHECK(wait_for(&slow_started, started0 + 1, 5000), "the slow handler started");
    st = stats_of(s);
    CHECK(st.deferred == st0.deferred + 1, "it waits, counted as deferred (%llu)",
          (unsigned long long)st.deferred);
    close(fd);
    CHECK(wait_for(&slow_done, done0 + 1, 5000), "the handler ran to completion");
    CHECK(wait_for(&replays, replays0 + 1, 5000), "its reply was replayed");
    st = stats_of(s);
    CHECK(st.replies_dropped == st0.replies_dropped + 1 && st.deferred == st0.deferred &&
              st.replies == st0.replies,
          "the replay was discarded: %llu dropped, %llu deferred, %llu replies",
          (unsigned long long)st.replies_dropped, (unsigned long long)st.deferred,
          (unsigned long long)st.replies);

    /* One that stays gets its reply. */
    struct test_resp r;
    test_http_request(&r, port, "GET", "/o/slow", NULL, NULL, -1);
    test_http_expect("a slow handler, client waiting", &r, 200, NULL);
    test_resp_free(&r);
}

/* ---- many at once ------------------------------------------------------------------------- */

struct client {
    pthread_t thread;
    int i;
    int ok;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct test_resp r;
    char path[128], body[64], want[32];

    snprintf(want, sizeof want, "c%d", c->i);
    if (c->i % 2 == 0) {
        snprintf(path, sizeof path, "/o/%u/thing?limit=%d&q=%s", APP + (unsigned)c->i,
                 1 + c->i % 50, want);
        test_http_request(&r, port, "GET", path, AUTH, NULL, -1);
        c->ok = r.status == 200 &&
                json_integer_value(json_object_get(r.json, "sdkappid")) == APP + c->i &&
                json_integer_value(json_object_get(r.json, "limit")) == 1 + c->i % 50 &&
                json_is_string(json_object_get(r.json, "q")) &&
                strcmp(json_string_value(json_object_get(r.json, "q")), want) == 0;
    } else {
        char loc[128], wloc[64];
        snprintf(path, sizeof path, "/o/%u/items", APP + (unsigned)c->i);
        snprintf(body, sizeof body, "{\"name\":\"%s\"}", want);
        snprintf(wloc, sizeof wloc, "/x/%u/items/7", APP + (unsigned)c->i);
        test_http_request(&r, port, "POST", path, AUTH JSON_CT, body, (long)strlen(body));
        c->ok = r.status == 201 && test_resp_header(&r, "Location", loc, sizeof loc) &&
                strcmp(loc, wloc) == 0 && json_is_string(json_object_get(r.json, "name")) &&
                strcmp(json_string_value(json_object_get(r.json, "name")), want) == 0;
    }
    test_resp_free(&r);
    return NULL;
}

static void test_concurrent(struct api_server *s)
{
    struct client c[N_CONCURRENT];
    int ok = 0, ctx0 = atomic_load(&saw_worker_ctx);
    for (int i = 0; i < N_CONCURRENT; i++) {
        c[i].i = i;
        c[i].ok = 0;
        pthread_create(&c[i].thread, NULL, client_main, &c[i]);
    }
    for (int i = 0; i < N_CONCURRENT; i++) {
        pthread_join(c[i].thread, NULL);
        ok += c[i].ok;
        if (!c[i].ok)
            CHECK(0, "client %d did not get its own reply", i);
    }
    CHECK(ok == N_CONCURRENT, "%d of %d concurrent clients got their reply", ok, N_CONCURRENT);
    CHECK(atomic_load(&saw_worker_ctx) == ctx0 + N_CONCURRENT, "each ran on a worker");
    struct api_server_stats st = stats_of(s);
    CHECK(st.deferred == 0, "nothing waits afterwards");
}

/* ---- a server freed while a handler runs -------------------------------------------------- */

static struct api_server *doomed;

static void free_doomed_cb(void *arg)
{
    (void)arg;
    api_server_free(doomed);
    doomed = NULL;
}

static void test_free_while_running(const struct api_server_config *cfg)
{
    char err[256];
    int started0 = atomic_load(&slow_started), replays0 = atomic_load(&replays), fd;
    size_t len;

    doomed = api_server_new(base, cfg, err, sizeof err);
    if (doomed == NULL || api_server_start(doomed, err, sizeof err) != 0) {
        CHECK(0, "second server: %s", err);
        return;
    }
    fd = send_only(api_server_port(doomed), "/o/slow");
    CHECK(wait_for(&slow_started, started0 + 1, 5000), "the slow handler started");
    on_loop(free_doomed_cb, NULL);
    char *raw = test_http_read_all(fd, &len);
    CHECK(raw != NULL && len == 0, "the connection closed without a reply (%zu bytes)", len);
    free(raw);
    close(fd);
    CHECK(wait_for(&replays, replays0 + 1, 5000), "the handler's reply was replayed into nothing");
}

/* ---- the daemon's hook without a pool, and its route table -------------------------------- */

static void test_daemon_hook_without_pool(void)
{
    struct service svc = {0}; /* no pool: offload_request runs the handler at once */
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = 4096,
        .routes = table,
        .n_routes = sizeof table / sizeof table[0],
        .authenticate = authenticate,
        .offload = offload_request,
        .ctx = &svc,
    };
    char err[256], path[128];
    struct api_server *s = api_server_new(base, &cfg, err, sizeof err);
    struct test_resp r;
    int main_port = port, on0 = atomic_load(&ran_on_loop), ctx0 = atomic_load(&saw_worker_ctx);

    if (s == NULL || api_server_start(s, err, sizeof err) != 0) {
        CHECK(0, "server with the daemon's hook: %s", err);
        api_server_free(s);
        return;
    }
    port = api_server_port(s);
    snprintf(path, sizeof path, "/o/%u/thing?q=direct", APP);
    test_http_request(&r, port, "GET", path, AUTH, NULL, -1);
    test_http_expect("the daemon's hook without a pool", &r, 200, NULL);
    CHECK(atomic_load(&ran_on_loop) == on0 + 1 && atomic_load(&saw_worker_ctx) == ctx0,
          "it ran on the loop thread with the server's ctx");
    test_resp_free(&r);
    struct api_server_stats st = stats_of(s);
    CHECK(st.offloaded == 0 && st.deferred == 0, "not captured (%llu offloaded)",
          (unsigned long long)st.offloaded);
    port = main_port;
    doomed = s;
    on_loop(free_doomed_cb, NULL);
}

static void test_route_flags(void)
{
    /* On the loop: the cheap ones, those that hand their work to a pool or the pipeline
     * themselves, and the calls to Tencent (libcurl's multi interface runs on the loop). */
    static const char *const not_offloaded[] = {"getHealth",        "getMetrics",    "signUserSig",
                                                "signUserSigBatch", "verifyUserSig", "getTokenSelf",
                                                "getDashboardFile", "reissueKey",    "callTencent",
                                                "importAccounts",   "checkAccounts"};
    for (size_t i = 0; i < api_routes_count; i++) {
        const struct api_route *rt = &api_routes[i];
        bool want = true;
        for (size_t k = 0; k < sizeof not_offloaded / sizeof not_offloaded[0]; k++)
            if (strcmp(rt->op, not_offloaded[k]) == 0)
                want = false;
        CHECK(((rt->flags & API_ROUTE_OFFLOAD) != 0) == want, "route %s %s: offloaded %d, want %d",
              api_method_name(rt->method), rt->pattern, (rt->flags & API_ROUTE_OFFLOAD) != 0, want);
        CHECK(!(rt->flags & API_ROUTE_OFFLOAD) || rt->body != API_BODY_RAW,
              "route %s: raw and offloaded", rt->pattern);
    }
    /* A raw-body route cannot be flagged. */
    static const struct api_route raw[] = {{EVHTTP_REQ_POST, "/raw", "raw", PERM_PUBLIC,
                                            API_BODY_RAW, API_ROUTE_OFFLOAD, h_slow, NULL}};
    struct api_server_config cfg = {.listen = "127.0.0.1:0",
                                    .max_body = 10,
                                    .routes = raw,
                                    .n_routes = 1,
                                    .authenticate = authenticate};
    char err[256] = "";
    struct api_server *s = api_server_new(base, &cfg, err, sizeof err);
    CHECK(s == NULL && strstr(err, "cannot be offloaded") != NULL, "raw route refused: %s", err);
    api_server_free(s);
}

int main(void)
{
    char err[256];
    pthread_t thread, workers[N_WORKERS];
    struct api_server *server;
    struct api_server_stats st;
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = 4096,
        .request_timeout_ms = 5000,
        .routes = table,
        .n_routes = sizeof table / sizeof table[0],
        .authenticate = authenticate,
        .offload = thread_offload,
    };

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL ||
        (done_ev = event_new(base, -1, 0, on_done, NULL)) == NULL) {
        CHECK(0, "event base");
        return test_done("http_offload");
    }
    server = api_server_new(base, &cfg, err, sizeof err);
    if (server == NULL || api_server_start(server, err, sizeof err) != 0) {
        CHECK(0, "api server: %s", err);
        return test_done("http_offload");
    }
    port = api_server_port(server);
    test_route_flags();
    for (int i = 0; i < N_WORKERS; i++)
        pthread_create(&workers[i], NULL, worker_main, NULL);
    pthread_create(&thread, NULL, test_loop_thread, base);
    loop_tid = thread;

    test_identical();
    test_refused();
    test_client_leaves(server);
    test_concurrent(server);
    test_free_while_running(&cfg);
    test_daemon_hook_without_pool();

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < N_WORKERS; i++)
        pthread_join(workers[i], NULL);
    api_server_get_stats(server, &st);
    CHECK(st.offloaded > 0 && st.deferred == 0 && st.in_flight == 0,
          "%llu offloaded, nothing left waiting", (unsigned long long)st.offloaded);
    CHECK(st.replies + st.replies_dropped == st.requests,
          "every request answered or dropped: %llu requests, %llu replies, %llu dropped",
          (unsigned long long)st.requests, (unsigned long long)st.replies,
          (unsigned long long)st.replies_dropped);
    CHECK(st.double_replies == 0 && st.missing_replies == 0, "no reply bugs counted");
    /* 500s: the NULL bodies (direct and offloaded), the refused stream and defer. */
    CHECK(st.internal_errors == 4, "%llu internal errors, want 4",
          (unsigned long long)st.internal_errors);
    api_server_stop(server);
    api_server_free(server);
    event_free(done_ev);
    event_base_free(base);
    libevent_global_shutdown();
    return test_done("http_offload");
}
