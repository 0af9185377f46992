/*
 * The HTTP framework end to end: the real evhttp server on 127.0.0.1 (any free port) in a
 * thread, a small route table of test handlers and a fake authenticate callback, driven over
 * plain sockets. Then api_authorize for every route of the real table x role x scope, against
 * expectations written here from the product's role rules (not from routes.c).
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
#include "routes.h"
#include "testlib.h"

#define APP_A 1400000000u
#define APP_B 1400000001u
#define MAX_BODY 4096
#define MAX_BODY_LARGE 16384

/* ---- the server side: test handlers, fake tokens ------------------------------------------ */

static atomic_int auth_calls, stream_closed, stream_ended, chunks_sent;

static int fake_authenticate(void *ctx, const char *token, struct api_principal *out)
{
    static const struct {
        const char *token;
        enum api_role role;
        int n_apps; /* -1: all apps */
        uint32_t apps[2];
    } tokens[] = {
        {"t-admin", API_ROLE_ADMIN, -1, {0}},
        {"t-admin-scoped", API_ROLE_ADMIN, 1, {APP_A}},
        {"t-km", API_ROLE_KEY_MANAGER, -1, {0}},
        {"t-km-scoped", API_ROLE_KEY_MANAGER, 1, {APP_A}},
        {"t-signer", API_ROLE_SIGNER, 2, {APP_A, APP_B}},
        {"t-auditor", API_ROLE_AUDITOR, -1, {0}},
    };
    (void)ctx;
    atomic_fetch_add(&auth_calls, 1);
    if (strcmp(token, "t-broken") == 0)
        return API_AUTH_ERROR;
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        if (strcmp(token, tokens[i].token) != 0)
            continue;
        out->token_id = (int64_t)i + 1;
        snprintf(out->name, sizeof out->name, "%s-name", tokens[i].token);
        out->role = tokens[i].role;
        out->all_apps = tokens[i].n_apps < 0;
        out->n_apps = tokens[i].n_apps < 0 ? 0 : (size_t)tokens[i].n_apps;
        memcpy(out->apps, tokens[i].apps, sizeof tokens[i].apps);
        return API_AUTH_OK;
    }
    return API_AUTH_NOT_FOUND;
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

static void h_query(struct api_request *r)
{
    static const char *const allowed[] = {"a", "n", NULL};
    const char *unknown = api_query_unknown(r, allowed);
    int64_t n = 0;
    if (unknown != NULL) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "unknown query parameter %s", unknown);
        return;
    }
    if (api_query_int64(r, "n", 1, 100, &n) == API_QUERY_INVALID) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "n must be 1 to 100");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:s?, s:I}", "a", api_query(r, "a"), "n", (json_int_t)n));
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

static const struct api_route test_table[] = {
    {EVHTTP_REQ_GET, "/t/public", "pub", API_PERM_PUBLIC, API_BODY_NONE, 0, h_ok},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}", "getApp", API_PERM_APPS_READ, API_BODY_NONE, 0, h_echo},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}", "updateApp", API_PERM_APPS_WRITE, API_BODY_JSON, 0,
     h_echo},
    {EVHTTP_REQ_POST, "/v1/apps", "createApp", API_PERM_APPS_WRITE, API_BODY_JSON, 0, h_fields},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/disable", "disableKey",
     API_PERM_KEYS_WRITE, API_BODY_JSON_OPTIONAL, 0, h_echo},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/usersigs/batch", "batch", API_PERM_SIGN, API_BODY_RAW, 0,
     h_raw},
    {EVHTTP_REQ_DELETE, "/v1/tokens/{id}", "revokeToken", API_PERM_TOKENS, API_BODY_NONE,
     API_ROUTE_ALL_APPS, h_echo},
    {EVHTTP_REQ_GET, "/t/query", "query", API_PERM_PUBLIC, API_BODY_NONE, 0, h_query},
    {EVHTTP_REQ_GET, "/t/double", "double", API_PERM_PUBLIC, API_BODY_NONE, 0, h_double},
    {EVHTTP_REQ_GET, "/t/noreply", "noreply", API_PERM_PUBLIC, API_BODY_NONE, 0, h_noreply},
    {EVHTTP_REQ_GET, "/t/nullbody", "nullbody", API_PERM_PUBLIC, API_BODY_NONE, 0, h_nullbody},
    {EVHTTP_REQ_GET, "/t/oom", "oom", API_PERM_PUBLIC, API_BODY_NONE, 0, h_oom},
    {EVHTTP_REQ_GET, "/t/stream", "stream", API_PERM_PUBLIC, API_BODY_NONE, 0, h_stream},
    {EVHTTP_REQ_GET, "/t/slowstream", "slow", API_PERM_PUBLIC, API_BODY_NONE, 0, h_slowstream},
    {EVHTTP_REQ_GET, "/t/stub", "stub", API_PERM_PUBLIC, API_BODY_NONE, 0,
     api_handler_not_implemented},
};

static struct event_base *base;
static int port;

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- the client side: plain sockets ------------------------------------------------------- */

struct resp {
    int status;
    char *raw; /* everything received */
    size_t raw_len;
    char head[8192];
    char *body; /* de-chunked */
    size_t body_len;
    json_t *json;
};

static void resp_free(struct resp *r)
{
    free(r->raw);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static int connect_to(int family, int to_port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    struct timeval tv = {10, 0};
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)to_port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)to_port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static char *read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        ssize_t m;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        m = recv(fd, buf + n, cap - n, 0);
        if (m <= 0)
            break;
        n += (size_t)m;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *header(const struct resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl, *e;
            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return out;
        }
    }
    return NULL;
}

static void parse_response(struct resp *r)
{
    char *end = strstr(r->raw, "\r\n\r\n"), te[64];
    const char *p;
    if (end == NULL || sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = -1;
        return;
    }
    snprintf(r->head, sizeof r->head, "%.*s", (int)(end - r->raw + 2), r->raw);
    p = end + 4;
    r->body = malloc(r->raw_len + 1);
    if (header(r, "Transfer-Encoding", te, sizeof te) && strcasecmp(te, "chunked") == 0) {
        unsigned long n;
        char *next;
        while ((n = strtoul(p, &next, 16)) > 0 && (next = strstr(next, "\r\n")) != NULL) {
            memcpy(r->body + r->body_len, next + 2, n);
            r->body_len += n;
            p = next + 2 + n + 2;
        }
    } else {
        r->body_len = r->raw_len - (size_t)(p - r->raw);
        memcpy(r->body, p, r->body_len);
    }
    r->body[r->body_len] = '\0';
    r->json = json_loadb(r->body, r->body_len, 0, NULL);
}

/* One request on its own connection (Connection: close). body_len < 0: no body. */
static int request(struct resp *out, const char *method, const char *path, const char *headers,
                   const char *body, long body_len)
{
    char head[8192];
    int fd = connect_to(AF_INET, port), n;
    memset(out, 0, sizeof *out);
    if (fd < 0)
        return -1;
    n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s",
                 method, path, headers ? headers : "");
    if (body_len >= 0)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %ld\r\n", body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (send_all(fd, head, (size_t)n) != 0 ||
        (body_len > 0 && send_all(fd, body, (size_t)body_len) != 0)) {
        /* the server may answer and close before reading everything: read what it sent */
    }
    out->raw = read_all(fd, &out->raw_len);
    close(fd);
    parse_response(out);
    return out->status > 0 ? 0 : -1;
}

static const char *err_code(const struct resp *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "(none)";
}

static const char *err_message(const struct resp *r)
{
    const char *m =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    return m ? m : "";
}

/* Status, JSON error code, and the headers every reply of ours carries. */
static void expect(const char *what, struct resp *r, int status, const char *code)
{
    char id[64] = "", ct[128] = "", cc[64] = "";
    CHECK(r->status == status, "%s: status %d, want %d (%s)", what, r->status, status, r->body);
    if (code != NULL)
        CHECK(strcmp(err_code(r), code) == 0, "%s: code %s, want %s", what, err_code(r), code);
    CHECK(header(r, "X-Request-Id", id, sizeof id) && strlen(id) == 16 &&
              strspn(id, "0123456789abcdef") == 16,
          "%s: X-Request-Id %s", what, id);
    CHECK(header(r, "Content-Type", ct, sizeof ct) &&
              (strcmp(ct, "application/json") == 0 || r->status == 200),
          "%s: Content-Type %s", what, ct);
    CHECK(header(r, "Cache-Control", cc, sizeof cc) && strcmp(cc, "no-store") == 0,
          "%s: Cache-Control %s", what, cc);
    if (strcmp(ct, "application/json") == 0 || code != NULL)
        CHECK(r->json != NULL, "%s: the body is not JSON: %s", what, r->body);
}

#define AUTH(t) "Authorization: Bearer " t "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

static void call(struct resp *r, const char *method, const char *path, const char *headers,
                 const char *body)
{
    CHECK(request(r, method, path, headers, body, body ? (long)strlen(body) : -1) == 0,
          "%s %s: no HTTP response", method, path);
}

/* ---- the HTTP tests ----------------------------------------------------------------------- */

static void test_basics(void)
{
    struct resp r, r2;
    char v[256], id1[32] = "", id2[32] = "";
    int before = atomic_load(&auth_calls);

    call(&r, "GET", "/t/public", NULL, NULL);
    expect("public", &r, 200, NULL);
    CHECK(json_is_true(json_object_get(r.json, "ok")), "public body: %s", r.body);
    header(&r, "X-Request-Id", id1, sizeof id1);
    call(&r2, "GET", "/t/public", AUTH("whatever"), NULL);
    header(&r2, "X-Request-Id", id2, sizeof id2);
    CHECK(strcmp(id1, id2) != 0, "two requests, two request ids (%s)", id1);
    CHECK(atomic_load(&auth_calls) == before, "public routes do not authenticate");
    resp_free(&r);
    resp_free(&r2);

    call(&r, "GET", "/nope", NULL, NULL);
    expect("unknown path", &r, 404, "not_found");
    resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000/", AUTH("t-admin"), NULL);
    expect("trailing slash", &r, 404, "not_found");
    resp_free(&r);

    call(&r, "DELETE", "/v1/apps/1400000000", AUTH("t-admin"), NULL);
    expect("405", &r, 405, "method_not_allowed");
    CHECK(header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, PATCH") == 0, "Allow: %s", v);
    resp_free(&r);
    call(&r, "PUT", "/t/public", NULL, "{}");
    expect("405 PUT", &r, 405, "method_not_allowed");
    CHECK(header(&r, "Allow", v, sizeof v) && strcmp(v, "GET") == 0, "Allow: %s", v);
    resp_free(&r);
    call(&r, "OPTIONS", "/v1/apps/1/keys/1/disable", NULL, NULL);
    expect("405 OPTIONS", &r, 405, "method_not_allowed");
    CHECK(header(&r, "Allow", v, sizeof v) && strcmp(v, "POST") == 0, "Allow: %s", v);
    resp_free(&r);

    call(&r, "GET", "/t/stub", NULL, NULL);
    expect("stub", &r, 501, "not_implemented");
    resp_free(&r);
}

static void test_auth(void)
{
    struct resp r;
    char v[256];
    int before;

    call(&r, "GET", "/v1/apps/1400000000", NULL, NULL);
    expect("no token", &r, 401, "unauthorized");
    CHECK(header(&r, "WWW-Authenticate", v, sizeof v) && strncmp(v, "Bearer", 6) == 0 &&
              !strstr(v, "error="),
          "WWW-Authenticate without a token: %s", v);
    resp_free(&r);

    call(&r, "GET", "/v1/apps/1400000000", AUTH("usg_9_s3cr3t-value-never-echoed"), NULL);
    expect("bad token", &r, 401, "unauthorized");
    CHECK(header(&r, "WWW-Authenticate", v, sizeof v) && strncmp(v, "Bearer", 6) == 0 &&
              strstr(v, "invalid_token"),
          "WWW-Authenticate with a bad token: %s", v);
    CHECK(strstr(r.raw, "s3cr3t") == NULL, "the token is never echoed: %s", r.raw);
    resp_free(&r);

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
        expect(malformed[i], &r, 401, "unauthorized");
        CHECK(header(&r, "WWW-Authenticate", v, sizeof v) != NULL, "WWW-Authenticate");
        resp_free(&r);
    }
    CHECK(atomic_load(&auth_calls) == before, "a malformed header is refused before lookup");

    call(&r, "GET", "/v1/apps/1400000000", "Authorization: bearer   t-admin  \r\n", NULL);
    expect("scheme is case-insensitive", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "principal")), "t-admin-name") == 0,
          "principal handed to the handler");
    resp_free(&r);

    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-broken"), NULL);
    expect("auth backend down", &r, 503, "unavailable");
    resp_free(&r);

    /* Role. */
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-signer"), NULL);
    expect("signer reads an app", &r, 403, "forbidden");
    CHECK(strstr(err_message(&r), "signer") != NULL, "403 names the role: %s", err_message(&r));
    resp_free(&r);
    call(&r, "PATCH", "/v1/apps/1400000000", AUTH("t-auditor") JSON_CT, "{}");
    expect("auditor changes an app", &r, 403, "forbidden");
    resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-auditor"), NULL);
    expect("auditor reads an app", &r, 200, NULL);
    resp_free(&r);
    call(&r, "POST", "/v1/apps/1400000000/usersigs/batch",
         AUTH("t-km") "Content-Type: text/plain\r\n", "alice\n");
    expect("key_manager signs", &r, 403, "forbidden");
    resp_free(&r);

    /* Scope. */
    call(&r, "GET", "/v1/apps/1400000000", AUTH("t-km-scoped"), NULL);
    expect("in scope", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "sdkappid")) == APP_A, "sdkappid parsed");
    resp_free(&r);
    call(&r, "GET", "/v1/apps/1400000001", AUTH("t-km-scoped"), NULL);
    expect("out of scope", &r, 403, "forbidden");
    CHECK(strstr(err_message(&r), "1400000001") != NULL, "403 names the app");
    resp_free(&r);
    call(&r, "POST", "/v1/apps/1400000001/usersigs/batch",
         AUTH("t-signer") "Content-Type: text/plain\r\n", "alice\n");
    expect("signer in scope", &r, 200, NULL);
    resp_free(&r);
    call(&r, "POST", "/v1/apps/1400000002/usersigs/batch",
         AUTH("t-signer") "Content-Type: text/plain\r\n", "alice\n");
    expect("signer out of scope", &r, 403, "forbidden");
    resp_free(&r);
    call(&r, "DELETE", "/v1/tokens/5", AUTH("t-admin-scoped"), NULL);
    expect("scoped admin manages tokens", &r, 403, "forbidden");
    resp_free(&r);
    call(&r, "DELETE", "/v1/tokens/5", AUTH("t-admin"), NULL);
    expect("admin manages tokens", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "id")) == 5, "{id} parsed");
    resp_free(&r);
    call(&r, "DELETE", "/v1/tokens/5", AUTH("t-km"), NULL);
    expect("key_manager manages tokens", &r, 403, "forbidden");
    resp_free(&r);
}

static void test_params(void)
{
    struct resp r;
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
        expect(bad[i].path, &r, 400, "invalid_param");
        snprintf(want, sizeof want, "{%s}", bad[i].param);
        CHECK(strstr(err_message(&r), want) != NULL, "%s: message names %s: %s", bad[i].path, want,
              err_message(&r));
        resp_free(&r);
    }
    call(&r, "GET", "/v1/apps/4294967295", AUTH("t-admin"), NULL);
    expect("sdkappid 4294967295", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "sdkappid")) == 4294967295LL, "max sdkappid");
    resp_free(&r);
    call(&r, "POST", "/v1/apps/1/keys/2147483647/disable", AUTH("t-admin"), NULL);
    expect("version 2147483647, no body", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "version")) == 2147483647LL &&
              json_is_null(json_object_get(r.json, "body")),
          "version parsed, optional body absent: %s", r.body);
    resp_free(&r);
    call(&r, "GET", "/v1/apps/abc", NULL, NULL);
    expect("token checked before params", &r, 401, "unauthorized");
    resp_free(&r);

    /* Query strings. */
    call(&r, "GET", "/t/query?a=x%20y+z&n=5", NULL, NULL);
    expect("query", &r, 200, NULL);
    CHECK(strcmp(json_string_value(json_object_get(r.json, "a")), "x y z") == 0 &&
              json_integer_value(json_object_get(r.json, "n")) == 5,
          "query decoded: %s", r.body);
    resp_free(&r);
    static const char *const bad_query[] = {
        "/t/query?a=1&a=2", "/t/query?z=1",   "/t/query?n=abc", "/t/query?n=101",
        "/t/query?a=%zz",   "/t/query?a=%00", "/t/query?=1",    "/t/query?a=%0a",
    };
    for (size_t i = 0; i < sizeof bad_query / sizeof bad_query[0]; i++) {
        call(&r, "GET", bad_query[i], NULL, NULL);
        expect(bad_query[i], &r, 400, "invalid_param");
        resp_free(&r);
    }
    char longq[3000] = "/t/query?a=";
    memset(longq + strlen(longq), 'x', 2100);
    call(&r, "GET", longq, NULL, NULL);
    expect("query over 2048 bytes", &r, 400, "invalid_param");
    resp_free(&r);
}

static void test_bodies(void)
{
    struct resp r;
    char *big;

    /* Content-Type. */
    call(&r, "POST", "/v1/apps", AUTH("t-admin") "Content-Type: text/plain\r\n",
         "{\"sdkappid\":1,\"name\":\"a\"}");
    expect("text/plain", &r, 415, "unsupported_media_type");
    resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin"), "{\"sdkappid\":1,\"name\":\"a\"}");
    expect("no Content-Type", &r, 415, "unsupported_media_type");
    resp_free(&r);
    call(&r, "POST", "/v1/apps",
         AUTH("t-admin") "Content-Type: application/json; charset=UTF-8\r\n",
         "{\"sdkappid\":1,\"name\":\"a\"}");
    expect("json with charset", &r, 201, NULL);
    resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin") "Content-Type: application/json-seq\r\n", "{}");
    expect("json-seq", &r, 415, "unsupported_media_type");
    resp_free(&r);

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
        expect(bad_json[i].what, &r, 400, "bad_json");
        resp_free(&r);
    }
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, "{\"secret\":\"SUPERSECRETKEY");
    expect("unterminated secret", &r, 400, "bad_json");
    CHECK(strstr(r.raw, "SUPERSECRET") == NULL && strstr(err_message(&r), "line 1"),
          "the body's text is not echoed: %s", err_message(&r));
    resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, "");
    expect("empty body on a JSON route", &r, 400, "bad_json");
    resp_free(&r);

    /* Depth: 16 levels parse (then fail the field check), 17 do not. */
    char deep[128];
    snprintf(deep, sizeof deep, "{\"meta\":%.*s1%.*s}", 15, "[[[[[[[[[[[[[[[[[[[[", 15,
             "]]]]]]]]]]]]]]]]]]]]");
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, deep);
    expect("16 levels", &r, 400, "invalid_field");
    resp_free(&r);
    snprintf(deep, sizeof deep, "{\"meta\":%.*s1%.*s}", 16, "[[[[[[[[[[[[[[[[[[[[", 16,
             "]]]]]]]]]]]]]]]]]]]]");
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, deep);
    expect("17 levels", &r, 400, "bad_json");
    resp_free(&r);
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT,
         "{\"sdkappid\":1,\"name\":\"[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}");
    expect("brackets inside strings do not count", &r, 201, NULL);
    resp_free(&r);

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
        expect(fields[i].body, &r, 400, fields[i].code);
        CHECK(strstr(err_message(&r), fields[i].field) != NULL, "%s: message names %s: %s",
              fields[i].body, fields[i].field, err_message(&r));
        resp_free(&r);
    }
    call(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT,
         "{\"sdkappid\":1,\"name\":\"a\",\"default_expire\":60,\"enabled\":true,\"apps\":[1,2],"
         "\"tags\":[\"x\"],\"meta\":{\"k\":1},\"note\":null}");
    expect("every field type", &r, 201, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "default_expire")) == 60, "body handed over");
    resp_free(&r);
    call(&r, "POST", "/v1/apps/1/keys/2/disable", AUTH("t-admin") JSON_CT, "{\"reason\":\"x\"}");
    expect("optional body given", &r, 200, NULL);
    CHECK(json_is_object(json_object_get(r.json, "body")), "optional body parsed");
    resp_free(&r);

    /* Sizes: JSON 413 at the route's limit, with a hint; evhttp's own cut far above it. */
    big = malloc(200 * 1024 + 1);
    memset(big, ' ', 200 * 1024);
    big[0] = '{';
    big[MAX_BODY - 1] = '}'; /* the first MAX_BODY bytes are the object {} */
    r.status = 0;
    CHECK(request(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, big, MAX_BODY + 1) == 0,
          "413 answer");
    expect("one byte over", &r, 413, "body_too_large");
    CHECK(strstr(err_message(&r), "4096") != NULL, "413 gives the limit: %s", err_message(&r));
    resp_free(&r);
    CHECK(request(&r, "POST", "/nope", NULL, big, MAX_BODY + 1) == 0, "413 answer");
    expect("size is checked before the path", &r, 413, "body_too_large");
    resp_free(&r);
    CHECK(request(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, big, MAX_BODY) == 0, "answer");
    CHECK(r.status == 400 && strcmp(err_code(&r), "missing_field") == 0,
          "exactly the limit is read: %d %s", r.status, err_code(&r));
    resp_free(&r);
    CHECK(request(&r, "POST", "/v1/apps/1400000000/usersigs/batch",
                  AUTH("t-admin") "Content-Type: text/plain\r\n", big, MAX_BODY_LARGE) == 0,
          "answer");
    expect("raw route, larger limit", &r, 200, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "bytes")) == MAX_BODY_LARGE &&
              strcmp(json_string_value(json_object_get(r.json, "content_type")), "text/plain") == 0,
          "raw body handed over: %s", r.body);
    resp_free(&r);
    CHECK(request(&r, "POST", "/v1/apps/1400000000/usersigs/batch",
                  AUTH("t-admin") "Content-Type: text/plain\r\n", big, MAX_BODY_LARGE + 1) == 0,
          "answer");
    expect("raw route over its limit", &r, 413, "body_too_large");
    CHECK(strstr(err_message(&r), "split") != NULL, "batch 413 hint: %s", err_message(&r));
    resp_free(&r);
    CHECK(request(&r, "POST", "/v1/apps", AUTH("t-admin") JSON_CT, big, 200 * 1024) == 0,
          "answer to a body far over the limit");
    CHECK(r.status == 413, "far over the limit: %d", r.status);
    resp_free(&r);
    free(big);
    call(&r, "GET", "/t/public", NULL, NULL);
    expect("still serving", &r, 200, NULL);
    resp_free(&r);
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
    struct resp r;
    char v[256];

    call(&r, "GET", "/t/nullbody", NULL, NULL);
    expect("NULL body", &r, 500, "internal");
    resp_free(&r);
    call(&r, "GET", "/t/oom", NULL, NULL);
    expect("allocation failure", &r, 500, "internal");
    resp_free(&r);
#ifdef NDEBUG
    call(&r, "GET", "/t/double", NULL, NULL);
    expect("double reply", &r, 200, NULL);
    CHECK(count(r.raw, "HTTP/1.1 ") == 1 && json_is_true(json_object_get(r.json, "first")),
          "one reply on the wire, the first: %s", r.raw);
    resp_free(&r);
    call(&r, "GET", "/t/noreply", NULL, NULL);
    expect("no reply", &r, 500, "internal");
    resp_free(&r);
#endif

    /* Two pipelined requests on one connection: two replies, in order. */
    int fd = connect_to(AF_INET, port);
    const char two[] = "GET /t/public HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    size_t len;
    CHECK(fd >= 0 && send_all(fd, two, sizeof two - 1) == 0, "pipelined send");
    char *raw = read_all(fd, &len);
    close(fd);
    CHECK(count(raw, "HTTP/1.1 ") == 2 && count(raw, "X-Request-Id: ") == 2 &&
              strstr(raw, "HTTP/1.1 200") < strstr(raw, "HTTP/1.1 404"),
          "pipelined: %s", raw);
    free(raw);

    /* Streams. */
    call(&r, "GET", "/t/stream", NULL, NULL);
    expect("stream", &r, 200, NULL);
    CHECK(strcmp(r.body, "{\"line\":0}\n{\"line\":1}\n{\"line\":2}\n") == 0, "stream body: %s",
          r.body);
    CHECK(header(&r, "Content-Type", v, sizeof v) && strcmp(v, "application/x-ndjson") == 0,
          "stream Content-Type");
    resp_free(&r);
    call(&r, "GET", "/t/slowstream?n=20", NULL, NULL);
    expect("timer stream", &r, 200, NULL);
    CHECK(count(r.body, "line ") == 20 && strstr(r.body, "line 19\n"), "timer stream body: %s",
          r.body);
    resp_free(&r);
    CHECK(atomic_load(&chunks_sent) > 0, "sent callbacks run");

    /* A client that leaves mid-stream: the handler hears of it and ends. */
    int ended = atomic_load(&stream_ended);
    fd = connect_to(AF_INET, port);
    const char slow[] = "GET /t/slowstream?n=100000 HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[4096];
    CHECK(fd >= 0 && send_all(fd, slow, sizeof slow - 1) == 0, "slow send");
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    CHECK(got > 0, "first chunk");
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&stream_closed) == 0; i++)
        usleep(10000);
    CHECK(atomic_load(&stream_closed) == 1 && atomic_load(&stream_ended) == ended + 1,
          "close callback ran and the stream ended (%d closed)", atomic_load(&stream_closed));
    call(&r, "GET", "/t/public", NULL, NULL);
    expect("serving after a client left", &r, 200, NULL);
    resp_free(&r);
}

static void test_timeout(void)
{
    /* Half a request line, then silence: the server's timeout (1 s) closes the connection. */
    int fd = connect_to(AF_INET, port);
    char buf[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(fd >= 0 && send_all(fd, "GET /t/public HT", 16) == 0, "partial send");
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(n <= 0 && s >= 0.5 && s < 8, "closed after the timeout (%zd bytes, %.1f s)", n, s);
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

/* ---- api_authorize: every route of the real table x role x scope --------------------------- */

/* The product's rules, written from the spec rather than from routes.c. */
static unsigned expected_roles(const struct api_route *r, bool *public_route)
{
    const unsigned A = 1u << API_ROLE_ADMIN, K = 1u << API_ROLE_KEY_MANAGER,
                   S = 1u << API_ROLE_SIGNER, U = 1u << API_ROLE_AUDITOR;
    *public_route = strcmp(r->pattern, "/healthz") == 0 || strcmp(r->pattern, "/readyz") == 0;
    if (*public_route)
        return A | K | S | U;
    if (strncmp(r->pattern, "/v1/tokens", 10) == 0)
        return A;
    if (strncmp(r->pattern, "/v1/audit", 9) == 0)
        return A | U;
    /* Batch manifests are read like the audit log, not by the signers who make them. */
    if (r->method == EVHTTP_REQ_GET && strstr(r->pattern, "/usersigs/batches") != NULL)
        return A | U;
    if (strstr(r->pattern, "/usersigs") != NULL) /* sign, batch, verify */
        return A | S;
    if (strncmp(r->pattern, "/v1/apps", 8) == 0)
        return r->method == EVHTTP_REQ_GET ? A | K | U : A | K;
    return 0; /* a route these rules do not know: fails below */
}

static void test_authorize_matrix(void)
{
    static const uint32_t apps[] = {APP_A, APP_B, 0};
    int cells = 0;
    for (size_t i = 0; i < api_routes_count; i++) {
        const struct api_route *rt = &api_routes[i];
        bool public_route;
        unsigned roles = expected_roles(rt, &public_route);
        bool has_app = strstr(rt->pattern, "{sdkappid}") != NULL;
        bool tokens = strncmp(rt->pattern, "/v1/tokens", 10) == 0;

        CHECK(roles != 0, "%s %s: no rule covers it", api_method_name(rt->method), rt->pattern);
        for (size_t a = 0; a < 3; a++) {
            enum api_authz got = api_authorize(NULL, rt, apps[a]);
            CHECK(got == (public_route ? API_AUTHZ_ALLOW : API_AUTHZ_UNAUTHENTICATED),
                  "%s %s without a token: %d", api_method_name(rt->method), rt->pattern, got);
        }
        for (int role = 0; role < API_ROLE_COUNT; role++) {
            for (int scoped = 0; scoped < 2; scoped++) {
                struct api_principal p;
                memset(&p, 0, sizeof p);
                p.role = role;
                p.all_apps = !scoped;
                p.n_apps = scoped ? 1 : 0;
                p.apps[0] = APP_A;
                for (size_t a = 0; a < 3; a++) {
                    enum api_authz want = API_AUTHZ_ALLOW, got;
                    if (public_route)
                        want = API_AUTHZ_ALLOW;
                    else if (!(roles & (1u << role)))
                        want = API_AUTHZ_ROLE;
                    else if (tokens && scoped)
                        want = API_AUTHZ_SCOPE;
                    else if (has_app && (apps[a] == 0 || (scoped && apps[a] != APP_A)))
                        want = API_AUTHZ_SCOPE;
                    got = api_authorize(&p, rt, apps[a]);
                    CHECK(got == want, "%s %s, %s %s, app %u: %d, want %d",
                          api_method_name(rt->method), rt->pattern, api_role_name(role),
                          scoped ? "scoped" : "all apps", apps[a], got, want);
                    cells++;
                }
            }
        }
    }
    CHECK(cells == (int)api_routes_count * API_ROLE_COUNT * 2 * 3, "cells %d", cells);

    struct api_principal p;
    memset(&p, 0, sizeof p);
    p.n_apps = 2;
    p.apps[0] = 5;
    p.apps[1] = 7;
    CHECK(api_principal_has_app(&p, 7) && !api_principal_has_app(&p, 6) &&
              !api_principal_has_app(&p, 0) && !api_principal_has_app(NULL, 7),
          "api_principal_has_app");
    p.all_apps = true;
    CHECK(api_principal_has_app(&p, 6) && !api_principal_has_app(&p, 0), "all apps");
    CHECK(api_role_parse("key_manager") == API_ROLE_KEY_MANAGER && api_role_parse("root") == -1 &&
              strcmp(api_role_name(API_ROLE_AUDITOR), "auditor") == 0,
          "role names");
    CHECK(api_authorize(&p, NULL, 1) != API_AUTHZ_ALLOW, "no route, no access");
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

static void test_ipv6(struct api_server *v6)
{
    int fd = connect_to(AF_INET6, api_server_port(v6));
    const char req[] = "GET /t/public HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    size_t len;
    char *raw;
    CHECK(fd >= 0 && send_all(fd, req, sizeof req - 1) == 0, "connect over IPv6");
    raw = read_all(fd, &len);
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
        .max_body_large = MAX_BODY_LARGE,
        .request_timeout_ms = 1000,
        .routes = test_table,
        .n_routes = sizeof test_table / sizeof test_table[0],
        .authenticate = fake_authenticate,
    };

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);
    test_authorize_matrix();

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
    cfg.listen = "[::1]:0";
    v6 = api_server_new(base, &cfg, err, sizeof err);
    if (v6 != NULL && api_server_start(v6, err, sizeof err) != 0) {
        printf("http: no IPv6 loopback here (%s); IPv6 not tested\n", err);
        api_server_free(v6);
        v6 = NULL;
    }
    pthread_create(&thread, NULL, loop_main, NULL);

    test_basics();
    test_auth();
    test_params();
    test_bodies();
    test_replies();
    test_timeout();
    if (v6 != NULL)
        test_ipv6(v6);

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_get_stats(server, &st);
    CHECK(st.requests > 80 && st.replies == st.requests && st.in_flight == 0,
          "one reply per request: %llu requests, %llu replies, %llu in flight",
          (unsigned long long)st.requests, (unsigned long long)st.replies,
          (unsigned long long)st.in_flight);
#ifdef NDEBUG
    CHECK(st.double_replies == 1 && st.missing_replies == 1,
          "bugs counted: %llu double, %llu "
          "missing",
          (unsigned long long)st.double_replies, (unsigned long long)st.missing_replies);
#endif
    CHECK(st.internal_errors >= 2, "500s counted: %llu", (unsigned long long)st.internal_errors);
    api_server_stop(server);
    api_server_free(server);
    api_server_free(v6);
    event_base_free(base);
    libevent_global_shutdown();
    return test_done("http");
}
