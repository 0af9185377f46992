/*
 * The HTTP framework's request bodies and framing end to end against its test server
 * (http_fixture.h): JSON bodies and their fields, size limits, raw bodies, chunked framing and
 * its errors, a pipelining client's input kept bounded. Routes, tokens and parameters are
 * test_http.c.
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
        {"a negative Content-Length",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"},
        {"HTTP/0.9", "GET /healthz\r\n\r\n", 400, "bad_request"},
        {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"},
        {"HTTP/1.0 without Host: served", "GET /t/public HTTP/1.0\r\n\r\n", 200, NULL},
        {"absolute-form: served", "GET http://t:8080/t/public HTTP/1.1\r\nHost: t\r\n\r\n", 200,
         NULL},
        {"absolute-form, chunked: to the handler",
         "POST HTTPS://t/v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         400, "missing_field"},
        {"absolute-form of another scheme", "GET ftp://t/t/public HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "bad_request"},
        {"a Host with a space", "GET /t/public HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_request"},
        /* evhttp answers an Expect it does not know with an HTML 417: an empty one is none. */
        {"an empty Expect with a body: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Expect:\r\nContent-Length: 2\r\n\r\n{}",
         400, "missing_field"},
        {"an Expect of commas, absolute-form: served",
         "GET http://t/t/public HTTP/1.1\r\nHost: t\r\nExpect: ,\r\n\r\n", 200, NULL},
        {"100-continue and an empty member, with a body: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Expect: 100-continue,\r\nContent-Length: 2\r\n\r\n{}",
         400, "missing_field"},
        /* evhttp keeps a tab before a value; the server reads the value the filter checked. */
        {"a tab before each value: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost:\tt\r\nAuthorization:\t Bearer t-admin\r\n"
         "Content-Type:\t\tapplication/json\r\nContent-Length:\t2\r\n\r\n{}",
         400, "missing_field"},
        {"a tab before 100-continue, with a body: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Expect: \t100-continue\r\nContent-Length: 2\r\n\r\n{}",
         400, "missing_field"},
        {"a tab before 100-continue, absolute-form: to the handler",
         "POST http://t/v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Expect:\t100-continue\r\nContent-Length: 2\r\n\r\n{}",
         400, "missing_field"},
        {"an empty Expect line, then 100-continue, with a body: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Expect: ,\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
         400, "missing_field"},
        {"two lines of 100-continue, with a body: to the handler",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\n" AUTH("t-admin") JSON_CT
         "Expect: 100-continue\r\nexpect: 100-Continue\r\nContent-Length: 2\r\n\r\n{}",
         400, "missing_field"},
        {"an unknown Expect",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: x\r\nContent-Length: "
         "2\r\n\r\n{}",
         400, "bad_request"},
        {"a fragment", "GET /t/public#top HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request"},
        {"an unknown method", "BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 501, "not_implemented"},
        {"a bad chunk size",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400,
         "bad_request"},
        {"HTTP/2.0", "GET /healthz HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"},
        {"100 MiB declared: refused before any body byte",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n", 413,
         "body_too_large"},
        {"2 GiB declared",
         "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2147483648\r\n\r\n", 413,
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
    /* A streamed body on HTTP/1.0 with keep-alive, answered in one piece: the connection closes
     * after it, and the reply says only that (evhttp would add "Connection: keep-alive"). */
    static const char keep10[] = "POST /v1/apps/1400000000/usersigs/batch HTTP/1.0\r\n" AUTH(
        "t-admin") "Connection: keep-alive\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 4\r\n\r\na\nb\n";
    CHECK(test_http_raw(&r, port, keep10, strlen(keep10)) == 0, "HTTP/1.0 streamed: an answer");
    test_http_expect("HTTP/1.0 streamed", &r, 200, NULL);
    CHECK(strcasestr(r.head, "Connection: close") != NULL &&
              strcasestr(r.head, "keep-alive") == NULL,
          "HTTP/1.0 streamed: Connection: close alone: %s", r.head);
    test_resp_free(&r);
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

/* A body refused by its declared length (413) while the client still sends it: after the reply
 * the server reads and drops what comes, rather than closing on it at once (a close with unread
 * bytes sends a reset, which can take the reply with it), and closes once the client is done. */
static void test_refusal_linger(void)
{
    static const char head[] = "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Type: "
                               "application/json\r\nContent-Length: 10000000\r\n\r\n";
    enum { CHUNK = 64 * 1024 };
    char *chunk = calloc(1, CHUNK), rd[4096];
    int fd = test_http_connect(AF_INET, port);
    CHECK(chunk != NULL && fd >= 0, "linger: a connection");
    if (chunk == NULL || fd < 0)
        goto out;
    memset(chunk, ' ', CHUNK);
    CHECK(send(fd, head, sizeof head - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof head - 1),
          "linger: the head sent");
    size_t got = 0;
    ssize_t k;
    while (got < sizeof rd - 1 && !memmem(rd, got, "\r\n\r\n", 4) &&
           (k = recv(fd, rd + got, sizeof rd - 1 - got, 0)) > 0)
        got += (size_t)k;
    rd[got] = '\0';
    CHECK(strncmp(rd, "HTTP/1.1 413 ", 13) == 0, "linger: 413 at the head: %.60s", rd);
    /* The reply is out; the client goes on sending its body, a while later. */
    int sends_ok = 0;
    for (int i = 0; i < 4; i++) {
        usleep(60 * 1000);
        sends_ok += send(fd, chunk, CHUNK, MSG_NOSIGNAL) == CHUNK;
    }
    CHECK(sends_ok == 4, "linger: the server still reads after its reply (%d of 4 sends)",
          sends_ok);
    /* Done sending: the server closes (before its linger's end). */
    shutdown(fd, SHUT_WR);
    int64_t t0 = clock_monotonic_ms();
    while ((k = recv(fd, rd, sizeof rd, 0)) > 0)
        ;
    CHECK(k == 0 && clock_monotonic_ms() - t0 < 900,
          "linger: closed once the client was done "
          "(%lld ms)",
          (long long)(clock_monotonic_ms() - t0));
out:
    if (fd >= 0)
        close(fd);
    free(chunk);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR);
    if (http_fixture_base() != 0 || http_fixture_start() != 0)
        return test_done("http_bodies");
    test_bodies();
    test_framing();
    test_pipelined_input_bounded();
    test_refusal_linger();
    http_fixture_stop(80);
    return test_done("http_bodies");
}
