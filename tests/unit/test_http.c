/*
 * The HTTP framework's dispatcher end to end: the real evhttp server on 127.0.0.1 (any free
 * port) in a thread, a small route table of test handlers and a fake authenticate callback,
 * driven over plain sockets (testlib's client): routes, tokens, parameters, bodies, the server's
 * configuration. Replies and streams are test_http_replies.c; the authorization table of the
 * real routes is test_authz.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include "clock.h"
#include "errors.h"
#include "http.h"
#include "testlib.h"

#define APP_A 1400000000u
#define APP_B 1400000001u
#define MAX_BODY 4096
#define MAX_BODY_LARGE 16384

/* ---- the server side: test handlers, fake tokens ------------------------------------------ */

static atomic_int auth_calls;

/* Answers before it returns (api_auth_done inside the callback); test_http_async.c has the
 * checks that answer later. */
static void fake_authenticate(void *ctx, const char *token, struct api_auth *call)
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

static const struct api_route test_table[] = {
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

/* ---- the HTTP tests ----------------------------------------------------------------------- */

static void test_basics(void)
{
    struct test_resp r, r2;
    char v[256], id1[32] = "", id2[32] = "";
    int before = atomic_load(&auth_calls);

    call(&r, "GET", "/t/public", NULL, NULL);
    test_http_expect("public", &r, 200, NULL);
    CHECK(json_is_true(json_object_get(r.json, "ok")), "public body: %s", r.body);
    test_resp_header(&r, "X-Request-Id", id1, sizeof id1);
    call(&r2, "GET", "/t/public", AUTH("whatever"), NULL);
    test_resp_header(&r2, "X-Request-Id", id2, sizeof id2);
    CHECK(strcmp(id1, id2) != 0, "two requests, two request ids (%s)", id1);
    CHECK(atomic_load(&auth_calls) == before, "public routes do not authenticate");
    test_resp_free(&r);
    test_resp_free(&r2);

    call(&r, "GET", "/nope", NULL, NULL);
    test_http_expect("unknown path", &r, 404, "not_found");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000/", AUTH("t-admin"), NULL);
    test_http_expect("trailing slash", &r, 404, "not_found");
    test_resp_free(&r);

    call(&r, "DELETE", "/v1/apps/1400000000", AUTH("t-admin"), NULL);
    test_http_expect("405", &r, 405, "method_not_allowed");
    CHECK(test_resp_header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, PATCH") == 0, "Allow: %s",
          v);
    test_resp_free(&r);
    call(&r, "PUT", "/t/public", NULL, "{}");
    test_http_expect("405 PUT", &r, 405, "method_not_allowed");
    CHECK(test_resp_header(&r, "Allow", v, sizeof v) && strcmp(v, "GET") == 0, "Allow: %s", v);
    test_resp_free(&r);
    call(&r, "OPTIONS", "/v1/apps/1/keys/1/disable", NULL, NULL);
    test_http_expect("405 OPTIONS", &r, 405, "method_not_allowed");
    CHECK(test_resp_header(&r, "Allow", v, sizeof v) && strcmp(v, "POST") == 0, "Allow: %s", v);
    test_resp_free(&r);

    call(&r, "GET", "/t/stub", NULL, NULL);
    test_http_expect("stub", &r, 501, "not_implemented");
    test_resp_free(&r);
}

static void test_auth(void)
{
    struct test_resp r;
    char v[256];
    int before;

    call(&r, "GET", "/v1/apps/1400000000", NULL, NULL);
    test_http_expect("no token", &r, 401, "unauthorized");
    CHECK(test_resp_header(&r, "WWW-Authenticate", v, sizeof v) && strncmp(v, "Bearer", 6) == 0 &&
              !strstr(v, "error="),
          "WWW-Authenticate without a token: %s", v);
    test_resp_free(&r);

    call(&r, "GET", "/v1/apps/1400000000", AUTH("usg_9_s3cr3t-value-never-echoed"), NULL);
    test_http_expect("bad token", &r, 401, "unauthorized");
    CHECK(test_resp_header(&r, "WWW-Authenticate", v, sizeof v) && strncmp(v, "Bearer", 6) == 0 &&
              strstr(v, "invalid_token"),
          "WWW-Authenticate with a bad token: %s", v);
    CHECK(strstr(r.raw, "s3cr3t") == NULL, "the token is never echoed: %s", r.raw);
    test_resp_free(&r);

    static const char *const malformed[] = {
        "Authorization: Basic dXNlcjpwYXNz\r\n",
        "Authorization: Bearer\r\n",
        "Authorization: Bearer a b\r\n",
        "Authorization: Bearer t-admin\r\nAuthorization: Bearer t-admin\r\n",
        "Authorization: Bearer t-admin\"\r\n",
    };
    before = atomic_load(&auth_calls);
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        call(&r, "GET", "/v1/apps/1400000000", malformed[i], NULL);
        test_http_expect(malformed[i], &r, 401, "unauthorized");
        CHECK(test_resp_header(&r, "WWW-Authenticate", v, sizeof v) != NULL, "WWW-Authenticate");
        test_resp_free(&r);
    }
    CHECK(atomic_load(&auth_calls) == before, "a malformed header is refused before lookup");

    call(&r, "GET", "/v1/apps/1400000000", "Authorization: bearer   t-admin  \r\n", NULL);
    test_http_expect("scheme is case-insensitive", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "principal")), "t-admin-name") == 0,
          "principal handed to the handler");
    test_resp_free(&r);

    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-broken"), NULL);
    test_http_expect("auth backend down", &r, 503, "unavailable");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-bad-role"), NULL);
    test_http_expect("a principal with a role out of range", &r, 500, "internal");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-ok-without-principal"), NULL);
    test_http_expect("OK without a principal", &r, 500, "internal");
    test_resp_free(&r);

    /* Role. */
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-signer"), NULL);
    test_http_expect("signer reads an app", &r, 403, "forbidden");
    CHECK(strstr(test_resp_error_message(&r), "signer") != NULL, "403 names the role: %s",
          test_resp_error_message(&r));
    test_resp_free(&r);
    call(&r, "PATCH", "/v1/apps/1400000000", AUTH("t-auditor") JSON_CT, "{}");
    test_http_expect("auditor changes an app", &r, 403, "forbidden");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-auditor"), NULL);
    test_http_expect("auditor reads an app", &r, 200, NULL);
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps/1400000000/usersigs/batch",
         AUTH("t-km") "Content-Type: text/plain\r\n", "alice\n");
    test_http_expect("key_manager signs", &r, 403, "forbidden");
    test_resp_free(&r);

    /* Scope. */
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-km-scoped"), NULL);
    test_http_expect("in scope", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "sdkappid")) == APP_A, "sdkappid parsed");
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000001", AUTH("t-km-scoped"), NULL);
    test_http_expect("out of scope", &r, 403, "forbidden");
    CHECK(strstr(test_resp_error_message(&r), "1400000001") != NULL, "403 names the app");
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps/1400000001/usersigs/batch",
         AUTH("t-signer") "Content-Type: text/plain\r\n", "alice\n");
    test_http_expect("signer in scope", &r, 200, NULL);
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps/1400000002/usersigs/batch",
         AUTH("t-signer") "Content-Type: text/plain\r\n", "alice\n");
    test_http_expect("signer out of scope", &r, 403, "forbidden");
    test_resp_free(&r);
    call(&r, "DELETE", "/v1/tokens/5", AUTH("t-admin-scoped"), NULL);
    test_http_expect("scoped admin manages tokens", &r, 403, "forbidden");
    test_resp_free(&r);
    call(&r, "DELETE", "/v1/tokens/5", AUTH("t-admin"), NULL);
    test_http_expect("admin manages tokens", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "id")) == 5, "{id} parsed");
    test_resp_free(&r);
    call(&r, "DELETE", "/v1/tokens/5", AUTH("t-km"), NULL);
    test_http_expect("key_manager manages tokens", &r, 403, "forbidden");
    test_resp_free(&r);
}

static void test_params(void)
{
    struct test_resp r;
    static const struct {
        const char *method, *path, *param;
    } bad[] = {
        {"GET", "/v1/apps/0", "sdkappid"},
        {"GET", "/v1/apps/4294967296", "sdkappid"},
        {"GET", "/v1/apps/abc", "sdkappid"},
        {"GET", "/v1/apps/007", "sdkappid"},
        {"GET", "/v1/apps/-5", "sdkappid"},
        {"POST", "/v1/apps/1/keys/0/disable", "version"},
        {"POST", "/v1/apps/1/keys/2147483648/disable", "version"},
        {"DELETE", "/v1/tokens/0", "id"},
        {"DELETE", "/v1/tokens/9223372036854775808", "id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[32];
        call(&r, bad[i].method, bad[i].path, AUTH("t-admin"), NULL);
        test_http_expect(bad[i].path, &r, 400, "invalid_param");
        snprintf(want, sizeof want, "{%s}", bad[i].param);
        CHECK(strstr(test_resp_error_message(&r), want) != NULL, "%s: message names %s: %s",
              bad[i].path, want, test_resp_error_message(&r));
        test_resp_free(&r);
    }
    call(&r, "GET", "/v1/apps/4294967295", AUTH("t-admin"), NULL);
    test_http_expect("sdkappid 4294967295", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "sdkappid")) == 4294967295LL, "max sdkappid");
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps/1/keys/2147483647/disable", AUTH("t-admin"), NULL);
    test_http_expect("version 2147483647, no body", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "version")) == 2147483647LL &&
              json_is_null(json_object_get(r.json, "body")),
          "version parsed, optional body absent: %s", r.body);
    test_resp_free(&r);
    call(&r, "GET", "/v1/apps/abc", NULL, NULL);
    test_http_expect("token checked before params", &r, 401, "unauthorized");
    test_resp_free(&r);

    /* Query strings. */
    call(&r, "GET", "/t/query?a=x%20y+z&n=5", NULL, NULL);
    test_http_expect("query", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "a")), "x y z") == 0 &&
              json_integer_value(json_object_get(r.json, "n")) == 5,
          "query decoded: %s", r.body);
    test_resp_free(&r);
    static const char *const bad_query[] = {
        "/t/query?a=1&a=2", "/t/query?z=1",   "/t/query?n=abc", "/t/query?n=101",
        "/t/query?a=%zz",   "/t/query?a=%00", "/t/query?=1",    "/t/query?a=%0a",
    };
    for (size_t i = 0; i < sizeof bad_query / sizeof bad_query[0]; i++) {
        call(&r, "GET", bad_query[i], NULL, NULL);
        test_http_expect(bad_query[i], &r, 400, "invalid_param");
        test_resp_free(&r);
    }
    /* A name the route does not take: the message names it (cut, printable) and the list. */
    static const struct {
        const char *path, *headers;
        int status;
        const char *message;
    } names[] = {
        {"/t/query?z=1", NULL, 400, "unknown query parameter \"z\" (this route takes: a, n)"},
        {"/t/query?a=1&n=2&Z%20z", NULL, 400,
         "unknown query parameter \"Z z\" (this route takes: a, n)"},
        {"/t/public?x=1", NULL, 400, "query parameter \"x\": this route takes no query parameters"},
        {"/t/public?%C3%A9t%C3%A9=1", NULL, 400,
         "query parameter \"??t??\": this route takes no query parameters"},
        {"/t/public?"
         "n123456789012345678901234567890123456789012345678901234567890123456789=1",
         NULL, 400,
         "query parameter \"n123456789012345678901234567890123456789012345678901234567890123\": "
         "this route takes no query parameters"},
        {"/t/public?n=1&n=2", NULL, 400, "query parameter \"n\" is given twice"},
        /* After the token check: without a valid token, the same 401 as with no query. */
        {"/v1/apps/1400000000?role=admin", NULL, 401, NULL},
        {"/v1/apps/1400000000?role=admin", AUTH("t-nope"), 401, NULL},
        /* Before the role check, as a malformed query is. */
        {"/v1/apps/1400000000?role=admin", AUTH("t-signer"), 400,
         "query parameter \"role\": this route takes no query parameters"},
        {"/v1/apps/1400000000?role=admin", AUTH("t-admin"), 400,
         "query parameter \"role\": this route takes no query parameters"},
        {"/v1/apps/1400000000?", AUTH("t-admin"), 200, NULL},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        call(&r, "GET", names[i].path, names[i].headers, NULL);
        test_http_expect(names[i].path, &r, names[i].status,
                         names[i].status == 400   ? "invalid_param"
                         : names[i].status == 401 ? "unauthorized"
                                                  : NULL);
        if (names[i].message != NULL)
            CHECK(strcmp(test_resp_error_message(&r), names[i].message) == 0,
                  "%s: message \"%s\", want \"%s\"", names[i].path, test_resp_error_message(&r),
                  names[i].message);
        test_resp_free(&r);
    }
    char longq[3000] = "/t/query?a=";
    memset(longq + strlen(longq), 'x', 2100);
    call(&r, "GET", longq, NULL, NULL);
    test_http_expect("query over 2048 bytes", &r, 400, "invalid_param");
    test_resp_free(&r);
}

static void test_bodies(void)
{
    struct test_resp r;
    char *big;

    /* Content-Type. */
    call(&r, "POST", "/v1/apps", AUTH("t-admin") "Content-Type: text/plain\r\n",
         "{\"sdkappid\":1,\"name\":\"a\"}");
    test_http_expect("text/plain", &r, 415, "unsupported_media_type");
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin"), "{\"sdkappid\":1,\"name\":\"a\"}");
    test_http_expect("no Content-Type", &r, 415, "unsupported_media_type");
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps",
         AUTH("t-admin") "Content-Type: application/json; charset=UTF-8\r\n",
         "{\"sdkappid\":1,\"name\":\"a\"}");
    test_http_expect("json with charset", &r, 201, NULL);
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin") "Content-Type: application/json-seq\r\n", "{}");
    test_http_expect("json-seq", &r, 415, "unsupported_media_type");
    test_resp_free(&r);

    /* JSON syntax. */
    static const struct {
        const char *body, *what;
    } bad_json[] = {
        {"{\"sdkappid\":", "truncated"},
        {"{\"name\":\"a\",\"name\":\"b\"}", "duplicate key"},
        {"[1,2]", "an array"},
        {"\"text\"", "a string"},
        {"{\"a\":1} {\"b\":2}", "two documents"},
        {"{\"a\":\"\\u0000\"}", "a NUL"},
        {"{\"a\":\"\xff\"}", "bad UTF-8"},
        {"{\"a\":99999999999999999999999}", "integer overflow"},
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, bad_json[i].body);
        test_http_expect(bad_json[i].what, &r, 400, "bad_json");
        test_resp_free(&r);
    }
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, "{\"secret\":\"SUPERSECRETKEY");
    test_http_expect("unterminated secret", &r, 400, "bad_json");
    CHECK(strstr(r.raw, "SUPERSECRET") == NULL && strstr(test_resp_error_message(&r), "line 1"),
          "the body's text is not echoed: %s", test_resp_error_message(&r));
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, "");
    test_http_expect("empty body on a JSON route", &r, 400, "bad_json");
    test_resp_free(&r);

    /* Depth: 16 levels parse (then fail the field check), 17 do not. */
    char deep[128];
    snprintf(deep, sizeof deep, "{\"meta\":%.*s1%.*s}", 15, "[[[[[[[[[[[[[[[[[[[[", 15,
             "]]]]]]]]]]]]]]]]]]]]");
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, deep);
    test_http_expect("16 levels", &r, 400, "invalid_field");
    test_resp_free(&r);
    snprintf(deep, sizeof deep, "{\"meta\":%.*s1%.*s}", 16, "[[[[[[[[[[[[[[[[[[[[", 16,
             "]]]]]]]]]]]]]]]]]]]]");
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, deep);
    test_http_expect("17 levels", &r, 400, "bad_json");
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT,
         "{\"sdkappid\":1,\"name\":\"[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}");
    test_http_expect("brackets inside strings do not count", &r, 201, NULL);
    test_resp_free(&r);

    /* Fields. */
    static const struct {
        const char *body, *code, *field;
    } fields[] = {
        {"{\"sdkappid\":1,\"name\":\"a\",\"bogus\":1}", "unknown_field", "bogus"},
        {"{\"bogus\":1,\"sdkappid\":\"1\"}", "unknown_field", "bogus"},
        {"{\"sdkappid\":\"1\",\"name\":\"a\"}", "invalid_field", "sdkappid"},
        {"{\"sdkappid\":1.0,\"name\":\"a\"}", "invalid_field", "sdkappid"},
        {"{\"sdkappid\":1,\"name\":null}", "invalid_field", "name"},
        {"{\"sdkappid\":1,\"name\":\"a\",\"enabled\":1}", "invalid_field", "enabled"},
        {"{\"sdkappid\":1,\"name\":\"a\",\"apps\":[1,\"2\"]}", "invalid_field", "apps"},
        {"{\"sdkappid\":1,\"name\":\"a\",\"tags\":[\"x\",2]}", "invalid_field", "tags"},
        {"{\"sdkappid\":1,\"name\":\"a\",\"meta\":[]}", "invalid_field", "meta"},
        {"{\"name\":\"a\"}", "missing_field", "sdkappid"},
        {"{}", "missing_field", "sdkappid"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, fields[i].body);
        test_http_expect(fields[i].body, &r, 400, fields[i].code);
        CHECK(strstr(test_resp_error_message(&r), fields[i].field) != NULL,
              "%s: message names %s: %s", fields[i].body, fields[i].field,
              test_resp_error_message(&r));
        test_resp_free(&r);
    }
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT,
         "{\"sdkappid\":1,\"name\":\"a\",\"default_expire\":60,\"enabled\":true,\"apps\":[1,2],"
         "\"tags\":[\"x\"],\"meta\":{\"k\":1},\"note\":null}");
    test_http_expect("every field type", &r, 201, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "default_expire")) == 60, "body handed over");
    test_resp_free(&r);
    call(&r, "POST", "/v1/apps/1/keys/2/disable", AUTH("t-admin") JSON_CT, "{\"reason\":\"x\"}");
    test_http_expect("optional body given", &r, 200, NULL);
    CHECK(json_is_object(json_object_get(r.json, "body")), "optional body parsed");
    test_resp_free(&r);

    /* Sizes: JSON 413 at the route's limit, with a hint; evhttp's own cut far above it. */
    big = malloc(200 * 1024 + 1);
    memset(big, ' ', 200 * 1024);
    big[0] = '{';
    big[MAX_BODY - 1] = '}'; /* the first MAX_BODY bytes are the object {} */
    r.status = 0;
    CHECK(test_http_request(&r, port, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, big,
                            MAX_BODY + 1) == 0,
          "413 answer");
    test_http_expect("one byte over", &r, 413, "body_too_large");
    CHECK(strstr(test_resp_error_message(&r), "4096") != NULL, "413 gives the limit: %s",
          test_resp_error_message(&r));
    test_resp_free(&r);
    CHECK(test_http_request(&r, port, "POST", "/nope", NULL, big, MAX_BODY + 1) == 0, "413 answer");
    test_http_expect("size is checked before the path", &r, 413, "body_too_large");
    test_resp_free(&r);
    CHECK(test_http_request(&r, port, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, big, MAX_BODY) ==
              0,
          "answer");
    CHECK(r.status == 400 && strcmp(test_resp_error_code(&r), "missing_field") == 0,
          "exactly the limit is read: %d %s", r.status, test_resp_error_code(&r));
    test_resp_free(&r);
    CHECK(test_http_request(&r, port, "POST", "/v1/apps/1400000000/usersigs/batch",
                            AUTH("t-admin") JSON_CT, big, MAX_BODY_LARGE) == 0,
          "answer");
    /* An application/json body is held whole (a text/plain one streams: no limit). */
    test_http_expect("raw route, larger limit", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "bytes")) == MAX_BODY_LARGE &&
              strncmp(json_string_value(json_object_get(r.json, "content_type")),
                      "application/json", 16) == 0,
          "raw body handed over: %s", r.body);
    test_resp_free(&r);
    CHECK(test_http_request(&r, port, "POST", "/v1/apps/1400000000/usersigs/batch",
                            AUTH("t-admin") JSON_CT, big, MAX_BODY_LARGE + 1) == 0,
          "answer");
    test_http_expect("raw route over its limit", &r, 413, "body_too_large");
    CHECK(strstr(test_resp_error_message(&r), "split") != NULL, "batch 413 hint: %s",
          test_resp_error_message(&r));
    test_resp_free(&r);
    CHECK(test_http_request(&r, port, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, big,
                            200 * 1024) == 0,
          "answer to a body far over the limit");
    CHECK(r.status == 413, "far over the limit: %d", r.status);
    test_resp_free(&r);
    free(big);
    call(&r, "GET", "/t/public", NULL, NULL);
    test_http_expect("still serving", &r, 200, NULL);
    test_resp_free(&r);
}

/* Strict framing (admin-api/http_frame.c) in front of the real server: what evhttp accepted or
 * answered in HTML before is refused in JSON with a stable code, and the server goes on. */
static void test_framing(void)
{
    static const struct {
        const char *what, *raw;
        int status;
        const char *code;
    } cases[] = {
        {"two Content-Length",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
         400, "bad_request"},
        {"Content-Length and chunked",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         400, "bad_request"},
        {"a negative Content-Length", "POST /v1/apps HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400,
         "bad_request"},
        {"HTTP/0.9", "GET /healthz\r\n\r\n", 400, "bad_request"},
        {"an unknown method", "BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 501, "not_implemented"},
        {"a bad chunk size",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400,
         "bad_request"},
        {"HTTP/2.0", "GET /healthz HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"},
        {"100 MiB declared: refused before any body byte",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n", 413,
         "body_too_large"},
        {"2 GiB declared", "POST /v1/apps HTTP/1.1\r\nContent-Length: 2147483648\r\n\r\n", 413,
         "body_too_large"},
        /* Chunk extensions and trailers, which evhttp refused in HTML or read as headers: the
         * body reaches the handler de-chunked, the trailers do not. */
        {"chunked with extensions and a trailer: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Transfer-Encoding: chunked\r\n\r\n1;a=b\r\n{\r\n1\t;c\r\n}\r\n0\r\nT: v\r\n\r\n",
         400, "missing_field"},
        {"a token in a trailer is no token",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" JSON_CT
         "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" AUTH("t-admin") "\r\n",
         401, "unauthorized"},
    };
    struct test_resp r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(test_http_raw(&r, port, cases[i].raw, strlen(cases[i].raw)) == 0, "%s: an answer",
              cases[i].what);
        test_http_expect(cases[i].what, &r, cases[i].status, cases[i].code);
        test_resp_free(&r);
    }
    /* Sizes evhttp answered in HTML: a 100 KB URL, 10,000 headers, a 1 MiB header. */
    size_t n = 1100 * 1024;
    char *big = malloc(n + 64);
    strcpy(big, "GET /");
    memset(big + 5, 'a', 100 * 1024);
    strcpy(big + 5 + 100 * 1024, " HTTP/1.1\r\n\r\n");
    CHECK(test_http_raw(&r, port, big, strlen(big)) == 0, "100 KB URL: an answer");
    test_http_expect("a 100 KB URL", &r, 414, "uri_too_long");
    test_resp_free(&r);
    strcpy(big, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 10000; i++)
        strcat(big + strlen(big) - 8, "A: 1\r\n");
    strcat(big, "\r\n");
    CHECK(test_http_raw(&r, port, big, strlen(big)) == 0, "10,000 headers: an answer");
    test_http_expect("10,000 headers", &r, 431, "headers_too_large");
    test_resp_free(&r);
    strcpy(big, "GET /healthz HTTP/1.1\r\nX: ");
    memset(big + strlen(big), 'b', 1024 * 1024);
    strcpy(big + strlen("GET /healthz HTTP/1.1\r\nX: ") + 1024 * 1024, "\r\n\r\n");
    CHECK(test_http_raw(&r, port, big, strlen(big)) == 0, "1 MiB header: an answer");
    test_http_expect("a 1 MiB header", &r, 431, "headers_too_large");
    test_resp_free(&r);
    free(big);
    /* A good request then a bad one on one connection: the first answered, then the error. */
    const char *two = "GET /t/public HTTP/1.1\r\nHost: t\r\n\r\nGET /t/public HTTP/2.0\r\n\r\n";
    CHECK(test_http_raw(&r, port, two, strlen(two)) == 0, "pipelined: an answer");
    CHECK(r.status == 200 && r.raw != NULL &&
              memmem(r.raw, r.raw_len, "http_version_not_supported", 26) != NULL,
          "pipelined: 200, then the 505 in order (%zu bytes)", r.raw_len);
    test_resp_free(&r);
    call(&r, "GET", "/t/public", NULL, NULL);
    test_http_expect("serving after all that", &r, 200, NULL);
    test_resp_free(&r);
}

/* A client that pipelines requests without end while it reads the replies only slowly: evhttp
 * writes a reply most of the time, with reading left on, and the filter stops reading the
 * socket once evhttp's input holds FRAME_INPUT_HIGH bytes. So what the client can send is
 * bounded by the kernel's buffers and what the server answered, not by time. */
static void test_pipelined_input_bounded(void)
{
    static const char req[] = "GET /t/public HTTP/1.1\r\nHost: t\r\n\r\n";
    enum { CHUNK = 64 * 1024, RUN_MS = 3000, READ_EVERY_MS = 100, READ_BYTES = 16 * 1024 };
    const size_t cap = (size_t)256 << 20; /* unbounded would reach it in the run */
    char *chunk = malloc(CHUNK), rd[READ_BYTES];
    int fd = test_http_connect(AF_INET, port);
    size_t sent = 0, got = 0, per = sizeof req - 1;
    bool closed = false;
    CHECK(chunk != NULL && fd >= 0, "pipelined: a connection");
    if (chunk == NULL || fd < 0)
        goto out;
    for (size_t i = 0; i + per <= CHUNK; i += per)
        memcpy(chunk + i, req, per);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int64_t start = clock_monotonic_ms(), next_read = start;
    while (clock_monotonic_ms() - start < RUN_MS && sent < cap && !closed) {
        ssize_t n = send(fd, chunk, CHUNK - CHUNK % per, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            closed = true;
        if (clock_monotonic_ms() >= next_read) {
            ssize_t k = recv(fd, rd, sizeof rd, 0);
            if (k > 0)
                got += (size_t)k;
            else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                closed = true;
            next_read += READ_EVERY_MS;
        }
        if (n <= 0) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            (void)poll(&p, 1, 10);
        }
    }
    CHECK(got > 0, "pipelined: replies came (%zu bytes)", got);
    CHECK(sent < (size_t)64 << 20,
          "pipelined: %zu bytes sent in %d ms while replies were read slowly (%zu bytes): the "
          "server kept reading",
          sent, RUN_MS, got);
out:
    if (fd >= 0)
        close(fd);
    free(chunk);
    struct test_resp r;
    call(&r, "GET", "/t/public", NULL, NULL);
    test_http_expect("serving after a pipelining client", &r, 200, NULL);
    test_resp_free(&r);
}

static void test_server_config(void)
{
    char err[256];
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .routes = test_table,
        .n_routes = sizeof test_table / sizeof test_table[0],
        .authenticate = fake_authenticate,
    };
    struct api_route dup[2] = {test_table[0], test_table[0]};
    struct api_server *s;

    cfg.routes = dup;
    cfg.n_routes = 2;
    err[0] = '\0';
    CHECK(api_server_new(base, &cfg, err, sizeof err) == NULL && strstr(err, "twice"),
          "a bad table is refused: %s", err);
    cfg.routes = test_table;
    cfg.n_routes = sizeof test_table / sizeof test_table[0];
    cfg.authenticate = NULL;
    CHECK(api_server_new(base, &cfg, err, sizeof err) == NULL, "authenticate is required");
    cfg.authenticate = fake_authenticate;

    static const char *const bad_listen[] = {"nonsense",        "127.0.0.1",      "::1:80",
                                             "127.0.0.1:99999", "127.0.0.1:http", "[::1:80"};
    for (size_t i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++) {
        cfg.listen = bad_listen[i];
        s = api_server_new(base, &cfg, err, sizeof err);
        CHECK(s != NULL, "new");
        err[0] = '\0';
        CHECK(s != NULL && api_server_start(s, err, sizeof err) == -1 && err[0] != '\0',
              "listen %s is refused", bad_listen[i]);
        api_server_free(s);
    }
}

int main(void)
{
    char err[256];
    pthread_t thread;
    struct api_server *server;
    struct api_server_stats st;
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .max_body_large = MAX_BODY_LARGE,
        .request_timeout_ms = 1000,
        .routes = test_table,
        .n_routes = sizeof test_table / sizeof test_table[0],
        .authenticate = fake_authenticate,
    };

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);

    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL) {
        CHECK(0, "event base");
        return test_done("http");
    }
    cfg.ctx = base;
    test_server_config();
    server = api_server_new(base, &cfg, err, sizeof err);
    CHECK(server != NULL, "api_server_new: %s", err);
    if (server == NULL || api_server_start(server, err, sizeof err) != 0) {
        CHECK(0, "api_server_start: %s", err);
        return test_done("http");
    }
    port = api_server_port(server);
    CHECK(port > 0, "bound port %d", port);
    pthread_create(&thread, NULL, test_loop_thread, base);

    test_basics();
    test_auth();
    test_params();
    test_bodies();
    test_framing();
    test_pipelined_input_bounded();

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_get_stats(server, &st);
    CHECK(st.requests > 80 && st.replies == st.requests && st.in_flight == 0,
          "one reply per request: %llu requests, %llu replies, %llu in flight",
          (unsigned long long)st.requests, (unsigned long long)st.replies,
          (unsigned long long)st.in_flight);
    CHECK(st.double_replies == 0 && st.missing_replies == 0, "no reply bugs counted");
    api_server_stop(server);
    api_server_free(server);
    event_base_free(base);
    libevent_global_shutdown();
    return test_done("http");
}
