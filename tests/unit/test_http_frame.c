/*
 * Strict request framing (admin-api/http_frame.c) without sockets: a battery of requests fed
 * through one connection's framing, each either passed through byte for byte or replaced by the
 * internal error request of the expected kind (and everything after it discarded); the same
 * bytes fed one at a time give the same result. Then streamed bodies (a route that streams, as
 * batch signing does): the head evhttp sees, the body de-chunked into the stream whole, a piece
 * at a time and with the holder draining in between, cut by a half-close or a bad chunk, what
 * follows the body discarded; and over a socket pair, the transport no longer read while the
 * stream holds FRAME_STREAM_HIGH bytes, read again once drained.
 */
#include "http_frame.h"
#include "testlib.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NONCE "0123456789abcdef0123456789abcdef"
#define BIG_LIMIT 1000

static uint64_t limit_of(void *arg, const char *m, size_t ml, const char *t, size_t tl)
{
    (void)arg;
    (void)m;
    (void)ml;
    /* a route with a larger limit, as the batch route has */
    if ((tl >= 6 && memcmp(t, "/batch", 6) == 0) || (tl >= 5 && memcmp(t, "/?big", 5) == 0))
        return 100000;
    return BIG_LIMIT;
}

/* Streams: POST /batch... unless application/json (as admin-api/http.c's frame_streams). */
static bool streams_of(void *arg, const char *m, size_t ml, const char *t, size_t tl,
                       const char *ct, size_t ctl)
{
    (void)arg;
    (void)m;
    (void)ml;
    return tl >= 6 && memcmp(t, "/batch", 6) == 0 &&
           !(ct != NULL && ctl >= 16 && strncasecmp(ct, "application/json", 16) == 0);
}

static struct frame_config cfg = {.body_limit = limit_of, .head_timeout_ms = 30000, .nonce = NONCE};
static struct frame_config scfg = {
    .body_limit = limit_of, .head_timeout_ms = 30000, .nonce = NONCE, .streams = streams_of};

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
    /* A refused HEAD is asked as HEAD (its reply goes without the body), anything else as GET. */
    const char *e = strstr(out, "GET " FRAME_ERROR_PREFIX NONCE "/");
    const char *h = strstr(out, "HEAD " FRAME_ERROR_PREFIX NONCE "/");
    if (e == NULL || (h != NULL && h < e))
        e = h;
    *passed = e != NULL ? (size_t)(e - out) : len;
    if (e == NULL)
        return FRAME_OK;
    bool as_head = e == h;
    if (as_head != (strncmp(out, "HEAD ", 5) == 0 && *passed == 0))
        return FRAME_ERROR_COUNT; /* the refusal's method is not the refused request's */
    int k = atoi(e + strlen(as_head ? "HEAD " : "GET ") + strlen(FRAME_ERROR_PREFIX NONCE "/"));
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
    {"POST with a body", "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
     FRAME_OK, ALL},
    {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", FRAME_OK, ALL},
    {"HTTP/1.1 without Host", "GET /v1/apps HTTP/1.1\r\nAccept: */*\r\n\r\n", FRAME_NO_HOST, 0},
    {"HTTP/1.1 with an empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", FRAME_OK, ALL},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_OK, ALL},
    {"two Content-Length",
     "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     FRAME_DUP_LENGTH, 0},
    {"two equal Content-Length",
     "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
     FRAME_DUP_LENGTH, 0},
    {"a Content-Length list", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\na",
     FRAME_DUP_LENGTH, 0},
    {"Content-Length and chunked",
     "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     FRAME_LENGTH_AND_TE, 0},
    {"negative Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
     FRAME_BAD_LENGTH, 0},
    {"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\na",
     FRAME_BAD_LENGTH, 0},
    {"empty Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
     FRAME_BAD_LENGTH, 0},
    {"gzip transfer coding",
     "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", FRAME_BAD_TE, 0},
    {"two Transfer-Encoding",
     "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     FRAME_BAD_TE, 0},
    {"chunked on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     FRAME_BAD_TE, 0},
    {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", FRAME_DUP_HOST, 0},
    {"two Content-Type",
     "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_DUP_TYPE, 0},
    {"Expect: 100-continue",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na", FRAME_OK,
     ALL},
    {"another Expect", "POST / HTTP/1.1\r\nHost: t\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"an empty Expect on HTTP/1.0 (passed: evhttp ignores Expect there)",
     "POST / HTTP/1.0\r\nExpect:\r\nContent-Length: 2\r\n\r\n{}", FRAME_OK, ALL},
    {"100-continue and another member",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue, x\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"100-continue as part of a member",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue x\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"a member that starts as 100-continue",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continues\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"a quoted 100-continue",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect: \"100-continue\"\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"an empty Expect beside another",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect:\r\nExpect: bogus\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"another Expect on HTTP/1.0 (ignored there)",
     "POST / HTTP/1.0\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{}", FRAME_OK, ALL},
    {"HEAD with a body", "HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nGET /",
     FRAME_HEAD_BODY, 0},
    {"HEAD with a chunked body",
     "HEAD / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n",
     FRAME_HEAD_BODY, 0},
    {"HEAD with Content-Length: 0", "HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
     FRAME_OK, ALL},
    {"a refused HEAD, asked as HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
     FRAME_DUP_HOST, 0},
    {"a bad member on a second Expect line",
     "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nExpect: ,x\r\n"
     "Content-Length: 2\r\n\r\n{}",
     FRAME_BAD_EXPECT, 0},
    {"HTTP/0.9", "GET /\r\n\r\n", FRAME_NO_VERSION, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", FRAME_BAD_VERSION, 0},
    {"lower-case version", "GET / http/1.1\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"unknown method", "BREW / HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_METHOD, 0},
    {"lower-case method", "get / HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_METHOD, 0},
    {"absolute-form, another scheme", "GET ftp://x/ HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST,
     0},
    {"absolute-form, no host", "GET http:///v1 HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_HOST, 0},
    {"absolute-form, nothing after the scheme", "GET http:// HTTP/1.1\r\nHost: t\r\n\r\n",
     FRAME_BAD_REQUEST, 0},
    {"absolute-form, userinfo", "GET http://u:p@x/ HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_HOST, 0},
    {"absolute-form, a port not a number", "GET http://x:8a/ HTTP/1.1\r\nHost: t\r\n\r\n",
     FRAME_BAD_HOST, 0},
    {"absolute-form, the internal path",
     "GET http://x" FRAME_ERROR_PREFIX NONCE "/1 HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST,
     0},
    {"absolute-form, still needs Host", "GET http://x/ HTTP/1.1\r\n\r\n", FRAME_NO_HOST, 0},
    {"a path starting //", "GET //x/ HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"absolute-form, a path starting //", "GET http://h//x/ HTTP/1.1\r\nHost: t\r\n\r\n",
     FRAME_BAD_REQUEST, 0},
    {"absolute-form, an empty host", "GET http://:80/ HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_HOST,
     0},
    {"Host, a port without a host", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", FRAME_BAD_HOST, 0},
    {"a fragment", "GET /v1/apps#x HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a fragment in absolute-form", "GET http://x/#x HTTP/1.1\r\nHost: t\r\n\r\n",
     FRAME_BAD_REQUEST, 0},
    {"Host with a port", "GET / HTTP/1.1\r\nHost: api.example.com:8443\r\n\r\n", FRAME_OK, ALL},
    {"Host IPv6", "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", FRAME_OK, ALL},
    {"Host IPv4, an empty port", "GET / HTTP/1.1\r\nHost: 127.0.0.1:\r\n\r\n", FRAME_OK, ALL},
    {"Host pct-encoded", "GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n", FRAME_OK, ALL},
    {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host with two ports", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6 unclosed", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6 empty", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6 not hex", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6, eight groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8]\r\n\r\n", FRAME_OK, ALL},
    {"Host IPv6 with an IPv4 tail", "GET / HTTP/1.1\r\nHost: [::ffff:10.0.0.1]:80\r\n\r\n",
     FRAME_OK, ALL},
    {"Host IPvFuture", "GET / HTTP/1.1\r\nHost: [v1f.a:b~]\r\n\r\n", FRAME_OK, ALL},
    {"Host IPv6, one group", "GET / HTTP/1.1\r\nHost: [1]\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6, colons only", "GET / HTTP/1.1\r\nHost: [:::::]\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6, two ::", "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6, a group of five digits", "GET / HTTP/1.1\r\nHost: [::12345]\r\n\r\n",
     FRAME_BAD_HOST, 0},
    {"Host IPv6, nine groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n",
     FRAME_BAD_HOST, 0},
    {"Host IPv6, an IPv4 tail with a leading zero",
     "GET / HTTP/1.1\r\nHost: [::ffff:10.0.0.01]\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host IPv6 with a zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", FRAME_BAD_HOST,
     0},
    {"Host IPv6, text after the bracket", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", FRAME_BAD_HOST,
     0},
    {"Host IPvFuture without a version", "GET / HTTP/1.1\r\nHost: [v.a]\r\n\r\n", FRAME_BAD_HOST,
     0},
    {"Host IPvFuture, nothing after the dot", "GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n",
     FRAME_BAD_HOST, 0},
    {"Host IPvFuture with a bracket inside", "GET / HTTP/1.1\r\nHost: [v1.a[]\r\n\r\n",
     FRAME_BAD_HOST, 0},
    {"absolute-form IPv6, one group", "GET http://[1]/ HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_HOST,
     0},
    {"Host a cut pct-encoding", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", FRAME_BAD_HOST, 0},
    {"Host on HTTP/1.0 checked too", "GET / HTTP/1.0\r\nHost: a b\r\n\r\n", FRAME_BAD_HOST, 0},
    {"two spaces", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a tab for a space", "GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a bare LF", "GET / HTTP/1.1\nHost: h\n\n", FRAME_BAD_REQUEST, 0},
    {"a bare CR in a header", "GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"NUL in a header", "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a control byte in the URL", "GET /a\x01 HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"a non-ASCII URL", "GET /\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", FRAME_BAD_REQUEST, 0},
    {"the internal path", "GET " FRAME_ERROR_PREFIX NONCE "/1 HTTP/1.1\r\nHost: t\r\n\r\n",
     FRAME_BAD_REQUEST, 0},
    {"a body over the limit", "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
     FRAME_BODY_TOO_LARGE, 0},
    {"a huge declared body",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2147483648\r\n\r\nxx",
     FRAME_BODY_TOO_LARGE, 0},
    {"an absurd declared body",
     "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
     FRAME_BODY_TOO_LARGE, 0},
    {"the larger route's limit", "POST /batch HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
     FRAME_OK, 0 /* head passed, the body is still to come */},
    {"a bad chunk size", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     FRAME_BAD_REQUEST, 0},
    {"a negative chunk size",
     "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", FRAME_BAD_REQUEST,
     0},
    {"a chunk without its CRLF",
     "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
     FRAME_BAD_REQUEST, 0},
    {"a huge chunk size",
     "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
     FRAME_BAD_REQUEST, 0},
    {"chunks over the limit",
     "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n",
     FRAME_BODY_TOO_LARGE, 0},
    {"after an error, nothing", "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n" G,
     FRAME_BAD_LENGTH, 0},
    {"a good one, then a bad one", G "GET / HTTP/2.0\r\n\r\n", FRAME_BAD_VERSION, sizeof G - 1},
};

static void run_case(const struct tcase *t, bool bytewise)
{
    size_t in_len = strlen(t->in), out_len, passed;
    /* "NUL in a header" holds a NUL: its length is that of the literal */
    if (strcmp(t->name, "NUL in a header") == 0)
        in_len = sizeof "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n" - 1;
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

/* A chunked request reaches evhttp de-chunked, with a Content-Length: its chunk lines,
 * extensions and trailers (which evhttp would refuse in HTML, or read as headers) go. */
struct rewrite {
    const char *name, *in, *out;
};

static const struct rewrite rewrites[] = {
    {"chunked",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
     "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"},
    {"chunked with ext and trailer",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
     "Chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: "
     "v\r\n\r\n",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"},
    {"chunked: pieces, a tab before an extension, an Authorization trailer",
     "POST /v1/apps HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
     "2\t;a\r\nab\r\n1;b=\"c d\"\r\nc\r\n0\r\nAuthorization: Bearer x\r\n\r\n" G,
     "POST /v1/apps HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc" G},
    {"chunked, empty",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"},
    /* An Expect with an empty list is no expectation (RFC 9110 section 5.6.1): dropped, where
     * evhttp would answer it 417. */
    {"an empty Expect",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect:\r\nContent-Length: 2\r\n\r\n{}" G,
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}" G},
    {"an Expect of commas and blanks",
     "GET / HTTP/1.1\r\nHost: t\r\nexpect: , ,\t\r\nX-A: 1\r\n\r\n",
     "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n"},
    {"an empty Expect beside 100-continue",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: \r\nExpect: 100-continue\r\n"
     "Content-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
    {"absolute-form and an empty Expect", "GET http://x/a HTTP/1.1\r\nExpect:\r\nHost: t\r\n\r\n",
     "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"},
    /* Empty members are none (RFC 9110 section 5.6.1); evhttp takes one line of exactly
     * "100-continue" (case aside), so the filter writes that line in place of the first. */
    /* evhttp reads only the first Connection line, as one option: a close anywhere becomes one
     * "Connection: close" in place of the first line. */
    {"close in a Connection list",
     "GET /v1/apps HTTP/1.1\r\nHost: t\r\nConnection: TE, close\r\nTE: trailers\r\n\r\n",
     "GET /v1/apps HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTE: trailers\r\n\r\n"},
    {"close on a second Connection line",
     "GET /v1/apps HTTP/1.1\r\nConnection: keep-alive\r\nHost: t\r\nconnection: , Close\r\n\r\n",
     "GET /v1/apps HTTP/1.1\r\nConnection: close\r\nHost: t\r\n\r\n"},
    {"no close: Connection passed as it is",
     "GET /v1/apps HTTP/1.0\r\nConnection: keep-alive, closed\r\n\r\n",
     "GET /v1/apps HTTP/1.0\r\nConnection: keep-alive, closed\r\n\r\n"},
    {"close on a chunked request",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nConnection: TE,close\r\nTransfer-Encoding: "
     "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"},
    {"100-continue and an empty member",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue,\r\nContent-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
    {"two Expect lines of 100-continue (one list of two members)",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n"
     "Content-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
    {"100-continue with empty members",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nexpect: ,100-CONTINUE , \r\nX-A: 1\r\n"
     "Content-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nX-A: 1\r\n"
     "Content-Length: 2\r\n\r\n{}"},
    {"two 100-continue members, then an empty Expect, then another 100-continue",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue, 100-continue\r\nX-A: 1\r\n"
     "Expect:\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nX-A: 1\r\n"
     "Content-Length: 2\r\n\r\n{}"},
    {"an empty Expect, then two lines of 100-continue",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: ,\r\nExpect: 100-continue\r\n"
     "Expect: 100-Continue\r\nContent-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
    {"one Expect line of 100-continue: written anew all the same",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
    /* evhttp skips spaces only before a value: "\t100-continue" would be a 417. */
    {"a tab before 100-continue",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect:\t100-continue\r\nContent-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
    {"HTTP/1.0: Expect passed as it is (evhttp ignores it there)",
     "POST /v1/apps HTTP/1.0\r\nExpect: 100-continue,\r\nContent-Length: 2\r\n\r\n{}",
     "POST /v1/apps HTTP/1.0\r\nExpect: 100-continue,\r\nContent-Length: 2\r\n\r\n{}"},
    /* Absolute-form (RFC 9112 section 3.2.2): evhttp gets the origin-form. */
    {"absolute-form", "GET http://x/ HTTP/1.1\r\nHost: t\r\n\r\n",
     "GET / HTTP/1.1\r\nHost: t\r\n\r\n"},
    {"absolute-form, scheme in capitals, a port, a query",
     "GET HTTP://Api.Example.com:8443/v1/apps?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n" G,
     "GET /v1/apps?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n" G},
    {"absolute-form, https, IPv6, an empty path",
     "GET https://[::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
     "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"},
    {"absolute-form, an empty path and a query", "GET http://x?a=1 HTTP/1.0\r\n\r\n",
     "GET /?a=1 HTTP/1.0\r\n\r\n"},
    {"absolute-form, an empty path: the route's limit is asked for \"/?big\" (its body pending)",
     "POST http://x?big HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n",
     "POST /?big HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"},
    {"absolute-form with a body",
     "POST http://x/v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}" G,
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}" G},
    {"absolute-form, chunked",
     "POST http://x/v1/apps HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
     "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     "POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"},
};

static void run_rewrite(const struct rewrite *t, bool bytewise)
{
    size_t out_len, passed;
    char *out = feed(t->in, strlen(t->in), bytewise, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_OK && out_len == strlen(t->out) &&
              memcmp(out, t->out, out_len) == 0,
          "%s%s: evhttp gets %.*s", t->name, bytewise ? " (bytewise)" : "", (int)out_len, out);
    free(out);
}

/* ---- streamed bodies ---------------------------------------------------------------------- */

struct sresult {
    char dst[4096]; /* what reached evhttp */
    size_t dst_len;
    char *body; /* the stream's bytes, all the holder drained (a new string: free it) */
    size_t body_len;
    enum frame_stream_state state;
    uint64_t received;
    bool had_stream;
};

/* Feeds in through a streaming connection step bytes at a time (0: all at once), the holder
 * draining the stream after every drain_every feeds (0: only at the end); eof: a half-close
 * after the last byte. */
static void sfeed(const char *in, size_t len, size_t step, size_t drain_every, bool eof,
                  struct sresult *r)
{
    struct frame_conn *c = frame_conn_new(&scfg);
    struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new(), *got = evbuffer_new();
    if (c == NULL || src == NULL || dst == NULL || got == NULL)
        abort();
    memset(r, 0, sizeof *r);
    if (step == 0)
        step = len > 0 ? len : 1;
    size_t feeds = 0;
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        evbuffer_add(src, in + at, n);
        CHECK(frame_conn_feed(c, src, dst) >= 0, "stream feed at %zu", at);
        struct frame_stream *st = frame_conn_stream(c);
        if (st != NULL && drain_every > 0 && ++feeds % drain_every == 0) {
            evbuffer_add_buffer(got, frame_stream_buffer(st));
            frame_stream_drained(st);
        }
    }
    if (eof)
        frame_conn_eof(c);
    struct frame_stream *st = frame_conn_stream(c);
    if (st != NULL) {
        r->had_stream = true;
        evbuffer_add_buffer(got, frame_stream_buffer(st));
        r->state = frame_stream_state(st);
        r->received = frame_stream_received(st);
    }
    r->dst_len = evbuffer_get_length(dst);
    if (r->dst_len >= sizeof r->dst)
        abort();
    evbuffer_remove(dst, r->dst, r->dst_len);
    r->dst[r->dst_len] = '\0';
    r->body_len = evbuffer_get_length(got);
    r->body = malloc(r->body_len + 1);
    evbuffer_remove(got, r->body, r->body_len);
    r->body[r->body_len] = '\0';
    evbuffer_free(src);
    evbuffer_free(dst);
    evbuffer_free(got);
    frame_conn_free(c);
}

#define SHEAD_CHUNKED                                                                              \
    "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nTransfer-Encoding: "           \
    "chunked\r\nExpect: 100-continue\r\n\r\n"
#define SHEAD_EVHTTP                                                                               \
    "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: "              \
    "0\r\n" FRAME_STREAM_HEADER ": " NONCE "\r\n\r\n"

static void test_streams(void)
{
    struct sresult r;
    static const size_t steps[] = {0, 1, 2, 3, 7, 64};
    /* chunked: de-chunked into the stream, the head rewritten, a request after it dropped; the
     * same whole, byte by byte, and with the holder draining between pieces (pauses) */
    static const char chunked[] =
        SHEAD_CHUNKED "6\r\nalice\n\r\n4;ext=1\r\nbob\n\r\n"
                      "1\r\nc\r\n5\r\narol\n\r\n0\r\nTrailer: x\r\n\r\n" G;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        for (size_t d = 0; d <= 3; d += 3) {
            sfeed(chunked, sizeof chunked - 1, steps[i], d, false, &r);
            CHECK(strcmp(r.dst, SHEAD_EVHTTP) == 0, "chunked stream (step %zu): evhttp's head: %s",
                  steps[i], r.dst);
            CHECK(r.had_stream && r.state == FRAME_STREAM_END && r.received == 16 &&
                      strcmp(r.body, "alice\nbob\ncarol\n") == 0,
                  "chunked stream (step %zu, drain %zu): state %d, %llu bytes: %s", steps[i], d,
                  r.state, (unsigned long long)r.received, r.body);
            free(r.body);
        }
    }
    /* Content-Length: the same, the bytes after the body not passed on */
    static const char clen[] = "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 8\r\n\r\nab\ncd\nef" G;
    sfeed(clen, sizeof clen - 1, 3, 1, false, &r);
    CHECK(strcmp(r.dst, SHEAD_EVHTTP) == 0 && r.state == FRAME_STREAM_END &&
              strcmp(r.body, "ab\ncd\nef") == 0,
          "Content-Length stream: %s / %s", r.dst, r.body);
    free(r.body);
    /* cut: a half-close mid-chunk, between chunks, and before the Content-Length's end */
    static const char cut1[] = SHEAD_CHUNKED "6\r\nalice\n\r\n8\r\nbo";
    sfeed(cut1, sizeof cut1 - 1, 1, 2, true, &r);
    CHECK(r.state == FRAME_STREAM_CUT && strcmp(r.body, "alice\nbo") == 0 && r.received == 8,
          "cut mid-chunk: state %d, %s", r.state, r.body);
    free(r.body);
    static const char cut2[] = SHEAD_CHUNKED "6\r\nalice\n\r\n";
    sfeed(cut2, sizeof cut2 - 1, 0, 0, true, &r);
    CHECK(r.state == FRAME_STREAM_CUT && strcmp(r.body, "alice\n") == 0,
          "cut between chunks: state %d", r.state);
    free(r.body);
    sfeed(clen, sizeof clen - 1 - (sizeof G - 1) - 3, 2, 0, true, &r);
    CHECK(r.state == FRAME_STREAM_CUT && strcmp(r.body, "ab\ncd") == 0,
          "cut before Content-Length's end: state %d, %s", r.state, r.body);
    free(r.body);
    /* no half-close yet: still open, nothing invented */
    sfeed(cut1, sizeof cut1 - 1, 5, 1, false, &r);
    CHECK(r.state == FRAME_STREAM_OPEN && strcmp(r.body, "alice\nbo") == 0,
          "paused mid-chunk: open");
    free(r.body);
    /* a bad chunk mid-stream: evhttp has the request; the body reads as cut, no error request */
    static const char bad[] = SHEAD_CHUNKED "6\r\nalice\n\r\nzz\r\nmore\r\n" G;
    sfeed(bad, sizeof bad - 1, 4, 1, false, &r);
    CHECK(r.state == FRAME_STREAM_CUT && strcmp(r.dst, SHEAD_EVHTTP) == 0 &&
              strcmp(r.body, "alice\n") == 0,
          "bad chunk mid-stream: state %d, evhttp got %s", r.state, r.dst);
    free(r.body);
    /* a chunk size over any 64-bit count, mid-stream: cut as well */
    static const char huge[] = SHEAD_CHUNKED "ffffffffffffffffff\r\n";
    sfeed(huge, sizeof huge - 1, 0, 0, false, &r);
    CHECK(r.state == FRAME_STREAM_CUT, "huge chunk size mid-stream: cut");
    free(r.body);
    /* no limit on a streamed body (the route's limit is 100000 held): 300 KB streams */
    size_t big_n = 300000;
    char *big = malloc(big_n + 512);
    int hn = snprintf(big, 512, SHEAD_CHUNKED "%zx\r\n", big_n);
    memset(big + hn, 'x', big_n);
    memcpy(big + hn + big_n, "\r\n0\r\n\r\n", 7);
    sfeed(big, (size_t)hn + big_n + 7, 65536, 1, false, &r);
    CHECK(r.state == FRAME_STREAM_END && r.body_len == big_n && r.received == big_n,
          "300 KB streamed past the route's limit: state %d, %zu bytes", r.state, r.body_len);
    free(r.body);
    free(big);
    /* application/json does not stream: held whole, passed unchanged */
    static const char json[] =
        "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}";
    sfeed(json, sizeof json - 1, 1, 0, false, &r);
    CHECK(!r.had_stream && strcmp(r.dst, json) == 0, "application/json: not streamed");
    free(r.body);
    /* a GET, or a POST without a body, does not stream */
    static const char nobody[] = "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    sfeed(nobody, sizeof nobody - 1, 0, 0, false, &r);
    CHECK(!r.had_stream && strcmp(r.dst, nobody) == 0, "no body: not streamed");
    free(r.body);
    /* a client's own marker is dropped from a streamed head (and refused elsewhere as ours) */
    static const char forged[] =
        "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n" FRAME_STREAM_HEADER
        ": " NONCE "\r\nContent-Length: 1\r\n\r\nx";
    sfeed(forged, sizeof forged - 1, 0, 0, false, &r);
    CHECK(strcmp(r.dst, SHEAD_EVHTTP) == 0, "a client's marker dropped: %s", r.dst);
    free(r.body);
    /* absolute-form: the route is told the path, evhttp gets the origin-form */
    static const char absolute[] =
        "POST http://h:80/batch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
        "Content-Length: 6\r\n\r\nalice\n";
    sfeed(absolute, sizeof absolute - 1, 0, 0, false, &r);
    CHECK(r.had_stream && strcmp(r.dst, SHEAD_EVHTTP) == 0 && strcmp(r.body, "alice\n") == 0,
          "absolute-form streamed: %s", r.dst);
    free(r.body);
    CHECK(frame_stream_marked(NONCE, NONCE) && !frame_stream_marked(NULL, NONCE) &&
              !frame_stream_marked("0123", NONCE) &&
              !frame_stream_marked("ffffffffffffffffffffffffffffffff", NONCE),
          "frame_stream_marked");
}

/* Over a socket pair: a client sending 2 MiB of body as fast as the socket takes it; while no
 * one drains the stream, it holds at most FRAME_STREAM_HIGH plus one read; drained, it fills
 * again; the whole body arrives in order. */
static void test_stream_flow(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    struct event_base *base = event_base_new();
    struct bufferevent *under = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *bev = under != NULL ? frame_bufferevent(under, &scfg) : NULL;
    CHECK(base != NULL && bev != NULL, "filter bufferevent");
    if (bev == NULL)
        return;
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    size_t total = 2 << 20, sent = 0, chunk = 65536, got = 0, max_held = 0;
    char *body = malloc(chunk);
    for (size_t i = 0; i < chunk; i++)
        body[i] = (char)('a' + i % 26);
    static const char head[] = "POST /batch HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    CHECK(write(sv[1], head, sizeof head - 1) == (ssize_t)(sizeof head - 1), "head written");
    static char pend[65536 + 32];
    size_t pend_len = 0, pend_off = 0, in_order = 1;
    struct frame_stream *st = NULL;
    int stalls = 0, drained_rounds = 0;
    for (int round = 0; round < 20000 && got < total; round++) {
        /* the client: as much as the socket takes */
        for (;;) {
            if (pend_off == pend_len) {
                if (sent == total) {
                    if (pend_len != 5 || memcmp(pend, "0\r\n\r\n", 5) != 0) {
                        memcpy(pend, "0\r\n\r\n", 5);
                        pend_len = 5;
                        pend_off = 0;
                    } else {
                        break;
                    }
                } else {
                    int h = snprintf(pend, sizeof pend, "%zx\r\n", chunk);
                    memcpy(pend + h, body, chunk);
                    memcpy(pend + h + chunk, "\r\n", 2);
                    pend_len = (size_t)h + chunk + 2;
                    pend_off = 0;
                    sent += chunk;
                }
            }
            ssize_t w = write(sv[1], pend + pend_off, pend_len - pend_off);
            if (w <= 0)
                break;
            pend_off += (size_t)w;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (st == NULL && (st = frame_stream_take(bev)) != NULL)
            evbuffer_drain(bufferevent_get_input(bev),
                           evbuffer_get_length(bufferevent_get_input(bev)));
        if (st == NULL)
            continue;
        struct evbuffer *b = frame_stream_buffer(st);
        size_t held = evbuffer_get_length(b);
        if (held > max_held)
            max_held = held;
        /* the holder stalls for 50 rounds at a time, then takes everything */
        if (++stalls < 50)
            continue;
        stalls = 0;
        drained_rounds++;
        while (evbuffer_get_length(b) > 0) {
            char tmp[4096];
            int k = evbuffer_remove(b, tmp, sizeof tmp);
            for (int i = 0; i < k; i++)
                in_order &= tmp[i] == (char)('a' + (got + (size_t)i) % chunk % 26);
            got += (size_t)k;
        }
        frame_stream_drained(st);
    }
    CHECK(st != NULL, "the stream was taken");
    CHECK(got == total && in_order, "2 MiB through the stream in order: %zu bytes", got);
    CHECK(st != NULL && frame_stream_state(st) == FRAME_STREAM_END, "the stream ended");
    CHECK(max_held >= FRAME_STREAM_LOW && max_held <= FRAME_STREAM_HIGH + 2 * 65536 + 64,
          "the stream held at most %zu bytes while not drained (high mark %d)", max_held,
          FRAME_STREAM_HIGH);
    CHECK(drained_rounds >= 4, "the client waited for the holder (%d drains)", drained_rounds);
    frame_stream_release(st);
    bufferevent_free(bev);
    close(sv[1]);
    event_base_free(base);
    free(body);
}

int main(void)
{
    test_streams();
    test_stream_flow();

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], false);
        run_case(&cases[i], true);
    }
    for (size_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
        run_rewrite(&rewrites[i], false);
        run_rewrite(&rewrites[i], true);
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
    strcpy(big + 5 + n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    char *out = feed(big, strlen(big), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_TARGET_TOO_LONG, "a 20 KB URL: 414");
    free(out);
    big[5 + n] = '\0'; /* no end of line yet: refused before the line ends */
    out = feed(big, strlen(big), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_TARGET_TOO_LONG, "a 20 KB URL, unfinished");
    free(out);
    snprintf(big, n, "GET / HTTP/1.1\r\nHost: t\r\nX: ");
    memset(big + strlen(big), 'b', 9000);
    strcpy(big + strlen("GET / HTTP/1.1\r\nHost: t\r\nX: ") + 9000, "\r\n\r\n");
    out = feed(big, strlen(big), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_HEAD_TOO_LARGE, "a 9 KB header line: 431");
    free(out);
    free(big);

    char *many = malloc(101 * 8 + 64);
    strcpy(many, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 101; i++)
        strcat(many, "X: 1\r\n");
    strcat(many, "\r\n");
    out = feed(many, strlen(many), false, &out_len);
    CHECK(error_of(out, out_len, &passed) == FRAME_HEAD_TOO_LARGE, "101 headers: 431");
    free(out);
    free(many);

    size_t huge = 70 * 1024;
    char *head = malloc(huge + 1);
    strcpy(head, "GET / HTTP/1.1\r\nHost: t\r\n");
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
