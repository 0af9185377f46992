/*
 * The HTTP framework's test server (http_fixture.h).
 */
#include "http_fixture.h"

#include <event2/buffer.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

/* ---- the server side: test handlers, fake tokens ------------------------------------------ */

atomic_int auth_calls;

/* Answers before it returns (api_auth_done inside the callback); test_http_async.c has the
 * checks that answer later. */
void fake_authenticate(void *ctx, const char *token, struct api_auth *call)
{
    static const struct {
        const char *token;
        enum role role;
        int n_apps; /* -1: all apps */
        uint32_t apps[2];
    } tokens[] = {
        {"t-admin", ROLE_ADMIN, -1, {0}},
        {"t-admin-scoped", ROLE_ADMIN, 1, {APP_A}},
        {"t-km", ROLE_KEY_MANAGER, -1, {0}},
        {"t-km-scoped", ROLE_KEY_MANAGER, 1, {APP_A}},
        {"t-signer", ROLE_SIGNER, 2, {APP_A, APP_B}},
        {"t-auditor", ROLE_AUDITOR, -1, {0}},
    };
    struct principal p;
    (void)ctx;
    atomic_fetch_add(&auth_calls, 1);
    if (strcmp(token, "t-broken") == 0) {
        api_auth_done(call, API_AUTH_ERROR, NULL);
        return;
    }
    if (strcmp(token, "t-bad-role") == 0) {
        memset(&p, 0, sizeof p);
        p.role = ROLE_COUNT;
        api_auth_done(call, API_AUTH_OK, &p);
        return;
    }
    if (strcmp(token, "t-ok-without-principal") == 0) {
        api_auth_done(call, API_AUTH_OK, NULL);
        return;
    }
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        if (strcmp(token, tokens[i].token) != 0)
            continue;
        memset(&p, 0, sizeof p);
        p.token_id = (int64_t)i + 1;
        snprintf(p.name, sizeof p.name, "%s-name", tokens[i].token);
        p.role = tokens[i].role;
        p.all_apps = tokens[i].n_apps < 0;
        p.n_apps = tokens[i].n_apps < 0 ? 0 : (size_t)tokens[i].n_apps;
        memcpy(p.apps, tokens[i].apps, sizeof tokens[i].apps);
        api_auth_done(call, API_AUTH_OK, &p);
        return;
    }
    api_auth_done(call, API_AUTH_NOT_FOUND, NULL);
}

static void h_ok(struct api_request *r)
{
    api_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void h_echo(struct api_request *r)
{
    api_reply_json(r, 200,
                   json_pack("{s:I, s:I, s:I, s:s?, s:s, s:O?}", "sdkappid",
                             (json_int_t)r->sdkappid, "version", (json_int_t)r->key_version, "id",
                             (json_int_t)r->id, "principal",
                             r->principal ? r->principal->name : NULL, "request_id", r->request_id,
                             "body", r->body));
}

static void h_fields(struct api_request *r)
{
    static const struct api_field create[] = {
        {"sdkappid", API_FIELD_INTEGER, API_FIELD_REQUIRED},
        {"name", API_FIELD_STRING, API_FIELD_REQUIRED},
        {"default_expire", API_FIELD_INTEGER, 0},
        {"enabled", API_FIELD_BOOLEAN, 0},
        {"apps", API_FIELD_INT_ARRAY, 0},
        {"tags", API_FIELD_STRING_ARRAY, 0},
        {"meta", API_FIELD_OBJECT, 0},
        {"note", API_FIELD_STRING, API_FIELD_NULLABLE},
        {NULL, 0, 0},
    };
    if (api_require_fields(r, create) != 0)
        return;
    api_reply_json(r, 201, json_incref(r->body));
}

static void h_raw(struct api_request *r)
{
    const char *ct = api_request_header(r, "Content-Type");
    api_reply_json(r, 200,
                   json_pack("{s:I, s:s?}", "bytes",
                             (json_int_t)evbuffer_get_length(api_request_input(r)), "content_type",
                             ct));
}

/* GET /t/query?a=S&n=N: the framework has refused every other name (q_query). */
static void h_query(struct api_request *r)
{
    int64_t n = 0;
    if (api_query_int64(r, "n", 1, 100, &n) == API_QUERY_INVALID) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "n must be 1 to 100");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:s?, s:I}", "a", api_query(r, "a"), "n", (json_int_t)n));
}

static const char *const q_query[] = {"a", "n", NULL};

const struct api_route test_table[] = {
    {EVHTTP_REQ_GET, "/t/public", "pub", PERM_PUBLIC, API_BODY_NONE, 0, h_ok, NULL},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}", "getApp", PERM_APPS_READ, API_BODY_NONE, 0, h_echo,
     NULL},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}", "updateApp", PERM_APPS_WRITE, API_BODY_JSON, 0,
     h_echo, NULL},
    {EVHTTP_REQ_POST, "/v1/apps", "createApp", PERM_APPS_WRITE, API_BODY_JSON, 0, h_fields, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/disable", "disableKey", PERM_KEYS_WRITE,
     API_BODY_JSON_OPTIONAL, 0, h_echo, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/usersigs/batch", "batch", PERM_SIGN, API_BODY_RAW, 0,
     h_raw, NULL},
    {EVHTTP_REQ_DELETE, "/v1/tokens/{id}", "revokeToken", PERM_TOKENS, API_BODY_NONE,
     API_ROUTE_ALL_APPS, h_echo, NULL},
    {EVHTTP_REQ_GET, "/t/query", "query", PERM_PUBLIC, API_BODY_NONE, 0, h_query, q_query},
    {EVHTTP_REQ_GET, "/t/stub", "stub", PERM_PUBLIC, API_BODY_NONE, 0, api_handler_not_implemented,
     NULL},
};
const size_t test_table_len = sizeof test_table / sizeof test_table[0];

struct event_base *base;
int port;
static struct api_server *server;
static pthread_t thread;

void call(struct test_resp *r, const char *method, const char *path, const char *headers,
          const char *body)
{
    CHECK(test_http_request(r, port, method, path, headers, body, body ? (long)strlen(body) : -1) ==
              0,
          "%s %s: no HTTP response", method, path);
}

int http_fixture_base(void)
{
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL) {
        CHECK(0, "event base");
        return -1;
    }
    return 0;
}

int http_fixture_start(void)
{
    char err[256];
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .max_body_large = MAX_BODY_LARGE,
        .request_timeout_ms = 1000,
        .routes = test_table,
        .n_routes = test_table_len,
        .authenticate = fake_authenticate,
        .ctx = base,
    };
    server = api_server_new(base, &cfg, err, sizeof err);
    CHECK(server != NULL, "api_server_new: %s", err);
    if (server == NULL || api_server_start(server, err, sizeof err) != 0) {
        CHECK(0, "api_server_start: %s", err);
        return -1;
    }
    port = api_server_port(server);
    CHECK(port > 0, "bound port %d", port);
    pthread_create(&thread, NULL, test_loop_thread, base);
    return 0;
}

void http_fixture_stop(unsigned long long min_requests)
{
    struct api_server_stats st;
    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_get_stats(server, &st);
    CHECK(st.requests > min_requests && st.replies == st.requests && st.in_flight == 0,
          "one reply per request: %llu requests, %llu replies, %llu in flight",
          (unsigned long long)st.requests, (unsigned long long)st.replies,
          (unsigned long long)st.in_flight);
    CHECK(st.double_replies == 0 && st.missing_replies == 0, "no reply bugs counted");
    api_server_stop(server);
    api_server_free(server);
    event_base_free(base);
    libevent_global_shutdown();
}
