/*
 * Strict request framing (admin-api/http_frame.c) without sockets: a battery of requests fed
 * through one connection's framing, each either passed through byte for byte or replaced by the
 * internal error request of the expected kind (and everything after it discarded); the same
 * bytes fed one at a time give the same result.
 */
#include "http_frame.h"
#include "testlib.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE "0123456789abcdef0123456789abcdef"
#define BIG_LIMIT 1000

static uint64_t limit_of(void *arg, const char *m, size_t ml, const char *t, size_t tl)
{
    (void)arg;
    (void)m;
    (void)ml;
    /* a route with a larger limit, as the batch route has */
    if (tl >= 6 && memcmp(t, "/batch", 6) == 0)
        return 100000;
    return BIG_LIMIT;
}

static struct frame_config cfg = {.body_limit = limit_of, .head_timeout_ms = 30000, .nonce = NONCE};

/* Feeds in (len bytes) all at once, or a byte at a time; returns what reached evhttp (a new
 * string: free it). */
static char *feed(const char *in, size_t len, bool bytewise, size_t *out_len)
{
    struct frame_conn *c = frame_conn_new(&cfg);
    struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
    if (c == NULL || src == NULL || dst == NULL)
        abort();
    if (bytewise) {
        for (size_t i = 0; i < len; i++) {
            evbuffer_add(src, in + i, 1);
            CHECK(frame_conn_feed(c, src, dst) >= 0, "feed byte %zu", i);
        }
    } else {
        evbuffer_add(src, in, len);
        CHECK(frame_conn_feed(c, src, dst) >= 0, "feed");
    }
    *out_len = evbuffer_get_length(dst);
    char *out = malloc(*out_len + 1);
    evbuffer_remove(dst, out, *out_len);
    out[*out_len] = '\0';
    evbuffer_free(src);
    evbuffer_free(dst);
    frame_conn_free(c);
    return out;
}

/* The error kind of what reached evhttp when it is one error request at its end (after what
 * passed before it), else FRAME_OK; *passed gets the bytes before it. */
static enum frame_error error_of(const char *out, size_t len, size_t *passed)
{
    const char *e = strstr(out, "GET " FRAME_ERROR_PREFIX NONCE "/");
    *passed = e != NULL ? (size_t)(e - out) : len;
    if (e == NULL)
        return FRAME_OK;
    int k = atoi(e + strlen("GET " FRAME_ERROR_PREFIX NONCE "/"));
    const char *tail = "HTTP/1.1\r\nHost: usersigd\r\nConnection: close\r\n\r\n";
    size_t tl = strlen(tail);
    if (len < tl || strcmp(out + len - tl, tail) != 0)
        return FRAME_ERROR_COUNT; /* something after the error request */
    return (enum frame_error)k;
}

struct tcase {
    const char *name;
    const char *in;
    enum frame_error want;
    size_t passed; /* bytes before the error (or all when FRAME_OK): (size_t)-1 = all of in */
};

#define ALL ((size_t)-1)
#define G "GET /v1/apps HTTP/1.1\r\nHost: h\r\n\r\n"

static const struct tcase cases[] = {
    {"plain GET", G, FRAME_OK, ALL},
    {"two pipelined", G G, FRAME_OK, ALL},
    {"POST with a body", "POST /v1/apps HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", FRAME_OK, ALL},
    {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", FRAME_OK, ALL},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n\r\n", FRAME_OK, ALL},
    {"chunked",
     "POST /v1/apps HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     FRAME_OK, ALL},
    {"chunked with ext and trailer",
     "POST /v1/apps HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: "
     "v\r\n\r\n",
     FRAME_OK, ALL},
    {"two Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     FRAME_DUP_LENGTH, 0},
    {"two equal Content-Length",
     "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", FRAME_DUP_LENGTH, 0},
    {"a Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\na", FRAME_DUP_LENGTH,
     0},
    {"Content-Length and chunked",
     "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     FRAME_LENGTH_AND_TE, 0},
    {"negative Content-Length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", FRAME_BAD_LENGTH,
     0},
    {"Content-Length with a sign", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na",
     FRAME_BAD_LENGTH, 0},
    {"empty Content-Length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", FRAME_BAD_LENGTH, 0},
    {"gzip transfer coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     FRAME_BAD_TE, 0},
    {"two Transfer-Encoding",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     FRAME_BAD_TE, 0},
    {"chunked on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     FRAME_BAD_TE, 0},
    {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", FRAME_DUP_HOST, 0},
    {"HTTP/0.9", "GET /\r\n\r\n", FRAME_NO_VERSION, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", FRAME_BAD_VERSION, 0},
    {"lower-case version", "GET / http/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"unknown method", "BREW / HTTP/1.1\r\n\r\n", FRAME_BAD_METHOD, 0},
    {"lower-case method", "get / HTTP/1.1\r\n\r\n", FRAME_BAD_METHOD, 0},
    {"absolute-form", "GET http://x/ HTTP/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"two spaces", "GET  / HTTP/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a tab for a space", "GET\t/ HTTP/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a bare LF", "GET / HTTP/1.1\nHost: h\n\n", FRAME_BAD_REQUEST, 0},
    {"a bare CR in a header", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"NUL in a header", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a control byte in the URL", "GET /a\x01 HTTP/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a non-ASCII URL", "GET /\xc3\xa9 HTTP/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"the internal path", "GET " FRAME_ERROR_PREFIX NONCE "/1 HTTP/1.1\r\n\r\n", FRAME_BAD_REQUEST,
     0},
    {"a body over the limit", "POST /v1/apps HTTP/1.1\r\nContent-Length: 1001\r\n\r\n",
     FRAME_BODY_TOO_LARGE, 0},
    {"a huge declared body", "POST /v1/apps HTTP/1.1\r\nContent-Length: 2147483648\r\n\r\nxx",
     FRAME_BODY_TOO_LARGE, 0},
    {"an absurd declared body",
     "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", FRAME_BODY_TOO_LARGE,
     0},
    {"the larger route's limit", "POST /batch HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", FRAME_OK,
     0 /* head passed, the body is still to come */},
    {"a bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     FRAME_BAD_REQUEST, 0},
    {"a negative chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
     FRAME_BAD_REQUEST, 0},
    {"a chunk without its CRLF",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", FRAME_BAD_REQUEST, 0},
    {"a huge chunk size",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
     FRAME_BAD_REQUEST, 0},
    {"chunks over the limit", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n",
     FRAME_BODY_TOO_LARGE, 0},
    {"after an error, nothing", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n" G, FRAME_BAD_LENGTH,
     0},
    {"a good one, then a bad one", G "GET / HTTP/2.0\r\n\r\n", FRAME_BAD_VERSION, sizeof G - 1},
};

static void run_case(const struct tcase *t, bool bytewise)
{
    size_t in_len = strlen(t->in), out_len, passed;
    /* "NUL in a header" holds a NUL: its length is that of the literal */
    if (strcmp(t->name, "NUL in a header") == 0)
        in_len = sizeof "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n" - 1;
    char *out = feed(t->in, in_len, bytewise, &out_len);
    enum frame_error got = error_of(out, out_len, &passed);
    size_t want_passed = t->passed == ALL ? in_len : t->passed;
    if (t->want == FRAME_OK && t->passed == 0) { /* the head passed, the body pending */
        const char *eoh = strstr(t->in, "\r\n\r\n");
        want_passed = (size_t)(eoh - t->in) + 4;
    }
    CHECK(got == t->want, "%s%s: kind %d, want %d", t->name, bytewise ? " (bytewise)" : "", got,
          t->want);
    CHECK(passed == want_passed && memcmp(out, t->in, passed) == 0,
          "%s%s: %zu bytes passed unchanged, want %zu", t->name, bytewise ? " (bytewise)" : "",
          passed, want_passed);
    free(out);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], false);
        run_case(&cases[i], true);
    }

    /* Empty lines before a request line are dropped (RFC 9112 section 2.2). */
    {
        size_t ol, pl;
        char *o = feed("\r\n\r\n" G, strlen("\r\n\r\n" G), true, &ol);
        CHECK(error_of(o, ol, &pl) == FRAME_OK && strcmp(o, G) == 0, "empty lines before: dropped");
        free(o);
    }

    /* Sizes: a URL, a header line, the header count, the whole head. */
    size_t n = 20000, out_len, passed;
    char *big = malloc(n + 200);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', n);
    strcpy(big + 5 + n, " HTTP/1.1\r\n\r\n");
    char *out = feed(big, strlen(big), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_TARGET_TOO_LONG, "a 20 KB URL: 414");
    free(out);
    big[5 + n] = '\0'; /* no end of line yet: refused before the line ends */
    out = feed(big, strlen(big), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_TARGET_TOO_LONG, "a 20 KB URL, unfinished");
    free(out);
    snprintf(big, n, "GET / HTTP/1.1\r\nX: ");
    memset(big + strlen(big), 'b', 9000);
    strcpy(big + strlen("GET / HTTP/1.1\r\nX: ") + 9000, "\r\n\r\n");
    out = feed(big, strlen(big), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_HEAD_TOO_LARGE, "a 9 KB header line: 431");
    free(out);
    free(big);

    char *many = malloc(101 * 8 + 64);
    strcpy(many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        strcat(many, "X: 1\r\n");
    strcat(many, "\r\n");
    out = feed(many, strlen(many), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_HEAD_TOO_LARGE, "101 headers: 431");
    free(out);
    free(many);

    size_t huge = 70 * 1024;
    char *head = malloc(huge + 1);
    strcpy(head, "GET / HTTP/1.1\r\n");
    for (size_t i = strlen(head); i + 8 < huge; i += 8)
        memcpy(head + i, "Y: 12\r\n", 8 - 1), head[i + 7] = 'z';
    head[huge] = '\0';
    out = feed(head, strlen(head), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_HEAD_TOO_LARGE, "a 70 KiB head: 431");
    free(out);
    free(head);

    /* The internal path is recognised only with this server's nonce and a known kind. */
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/1", NONCE, NULL) == FRAME_BAD_REQUEST,
          "path 1");
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/12", NONCE, NULL) == 12, "path 12");
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/0", NONCE, NULL) == FRAME_OK, "kind 0");
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/99", NONCE, NULL) == FRAME_OK, "kind 99");
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/1x", NONCE, NULL) == FRAME_OK, "1x");
    CHECK(frame_error_path(FRAME_ERROR_PREFIX "ffffffffffffffffffffffffffffffff/1", NONCE, NULL) ==
              FRAME_OK,
          "another nonce");
    CHECK(frame_error_path("/v1/apps", NONCE, NULL) == FRAME_OK, "an ordinary path");
    uint64_t detail = 0;
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/12/4096", NONCE, &detail) == 12 &&
              detail == 4096,
          "a kind with its limit");
    CHECK(frame_error_path(FRAME_ERROR_PREFIX NONCE "/12/", NONCE, &detail) == FRAME_OK,
          "a slash without a number");
    for (int k = 1; k < FRAME_ERROR_COUNT; k++)
        CHECK(frame_error_status((enum frame_error)k) >= 400 &&
                  strlen(frame_error_message((enum frame_error)k)) > 10,
              "kind %d has a status and a message", k);
    return test_done("http_frame");
}
