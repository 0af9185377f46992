/*
 * The HTTP framework's dispatcher end to end against its test server (http_fixture.h): routes,
 * tokens, path and query parameters, the server's configuration. Bodies, framing and pipelined
 * input are test_http_bodies.c; replies and streams are test_http_replies.c; the authorization
 * table of the real routes is test_authz.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
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
#include "http_fixture.h"
#include "testlib.h"

/* ---- the HTTP tests ----------------------------------------------------------------------- */

/* The length of the response at raw (its head and Content-Length body), or 0; *status and
 * *body_len set. */
static size_t one_response(const char *raw, int *status, long *body_len)
{
    const char *end = strstr(raw, "\r\n\r\n");
    const char *cl = strcasestr(raw, "\r\nContent-Length: ");
    if (end == NULL || sscanf(raw, "HTTP/1.1 %d ", status) != 1)
        return 0;
    *body_len = cl != NULL && cl < end ? strtol(cl + 18, NULL, 10) : -1;
    return (size_t)(end + 4 - raw);
}

/* HEAD is GET without the body (RFC 9110 9.3.2), a refusal too: the next reply on the same
 * connection starts right after the head. */
static void test_head(void)
{
    static const char raw[] = "HEAD /t/public HTTP/1.1\r\nHost: x\r\n\r\n"
                              "HEAD /v1/apps/1/keys/1/disable HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /t/public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct test_resp r;
    int st1 = 0, st2 = 0, st3 = 0;
    long len1 = 0, len2 = 0, len3 = 0;
    CHECK(test_http_raw(&r, port, raw, sizeof raw - 1) == 0, "HEAD: an answer");
    size_t h1 = r.raw != NULL ? one_response(r.raw, &st1, &len1) : 0;
    size_t h2 = h1 > 0 ? one_response(r.raw + h1, &st2, &len2) : 0;
    size_t h3 = h2 > 0 ? one_response(r.raw + h1 + h2, &st3, &len3) : 0;
    CHECK(h1 > 0 && st1 == 200 && len1 > 0,
          "HEAD of a GET route: 200 with the GET's length (%d, %ld)", st1, len1);
    CHECK(h2 > 0 && st2 == 405 && len2 > 0 && strstr(r.raw + h1, "Allow: POST\r\n") != NULL,
          "HEAD of a POST route: 405, Allow POST, no body (%d, %ld)", st2, len2);
    CHECK(h3 > 0 && st3 == 200 && len3 == len1 && strlen(r.raw + h1 + h2 + h3) == (size_t)len3 &&
              strstr(r.raw + h1 + h2 + h3, "\"ok\"") != NULL,
          "then the GET, its body of that length right after the heads: %s", r.raw);
    test_resp_free(&r);

    /* A HEAD with a body: refused, as HEAD (no body), and the body is not read as a request
     * of its own (evhttp reads no body after a HEAD). */
    static const char smuggle[] = "HEAD /t/public HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\n"
                                  "GET /t/public HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(test_http_raw(&r, port, smuggle, sizeof smuggle - 1) == 0, "HEAD with a body: answered");
    h1 = r.raw != NULL ? one_response(r.raw, &st1, &len1) : 0;
    CHECK(h1 > 0 && st1 == 400 && len1 > 0 && r.raw[h1] == '\0' &&
              strstr(r.raw, "Connection: close") != NULL,
          "HEAD with a body: one 400, no body, the connection closed: %s", r.raw);
    test_resp_free(&r);
}

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
    CHECK(test_resp_header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD, PATCH") == 0,
          "Allow: %s", v);
    test_resp_free(&r);
    call(&r, "PUT", "/t/public", NULL, "{}");
    test_http_expect("405 PUT", &r, 405, "method_not_allowed");
    CHECK(test_resp_header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD") == 0, "Allow: %s",
          v);
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

static void test_server_config(void)
{
    char err[256];
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .routes = test_table,
        .n_routes = test_table_len,
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
    cfg.n_routes = test_table_len;
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
    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);
    if (http_fixture_base() != 0)
        return test_done("http");
    test_server_config();
    if (http_fixture_start() != 0)
        return test_done("http");
    test_basics();
    test_head();
    test_auth();
    test_params();
    http_fixture_stop(50);
    return test_done("http");
}
