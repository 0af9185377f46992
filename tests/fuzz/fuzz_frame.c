/*
 * The request framing (admin-api/http_frame.c): arbitrary bytes through one connection's
 * framing, split where the input's first byte says. What reaches evhttp is the client's bytes
 * (empty lines between requests aside; a chunked request de-chunked, with a Content-Length line
 * of the filter's; an absolute-form target without its scheme and authority, the "/" of an
 * empty path taken from the scheme's; Expect lines of empty and 100-continue members as one
 * "Expect: 100-continue", or none when no member is; Connection lines with close as one
 * "Connection: close") up to, at
 * most, one error request at the end; split or
 * whole, the same bytes reach it.
 * The first byte also picks (from 17 up) the streamed body path: a target starting "/s" streams
 * its body (as batch signing does), the holder drains the stream every 1, 2 or 5 feeds or only
 * at the end (pauses), and the input may end in a half-close (a cut). Split or whole, the same
 * head reaches evhttp, the same body bytes the stream, and the stream ends in the same state;
 * those bytes are the input's, in order; a stream ended complete or cut is never reopened.
 */
#include "http_frame.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NONCE "0123456789abcdef0123456789abcdef"

static uint64_t limit_of(void *arg, const char *m, size_t ml, const char *t, size_t tl)
{
    (void)arg;
    (void)m;
    (void)t;
    return ml + tl < 8 ? 16 : 4096;
}

static bool streams_of(void *arg, const char *m, size_t ml, const char *t, size_t tl,
                       const char *ct, size_t ctl)
{
    (void)arg;
    (void)m;
    (void)ml;
    (void)ct;
    (void)ctl;
    return tl >= 2 && t[0] == '/' && t[1] == 's';
}

static const struct frame_config cfg = {
    .body_limit = limit_of, .head_timeout_ms = 3600000, .nonce = NONCE};
static const struct frame_config scfg = {
    .body_limit = limit_of, .head_timeout_ms = 3600000, .nonce = NONCE, .streams = streams_of};

struct outcome {
    struct evbuffer *dst, *body; /* what reached evhttp; what the stream's holder got */
    bool streamed;
    enum frame_stream_state state;
    uint64_t received;
};

/* mode: bit 0 streams, bit 1 a half-close at the end, bits 2-3 the drain period (0: at the
 * end only, then 1, 2, 5 feeds). */
static void run(const uint8_t *data, size_t size, size_t step, unsigned mode, struct outcome *o)
{
    static const size_t periods[] = {0, 1, 2, 5};
    size_t period = periods[(mode >> 2) & 3], feeds = 0;
    struct frame_conn *c = frame_conn_new(mode & 1 ? &scfg : &cfg);
    struct evbuffer *src = evbuffer_new();
    memset(o, 0, sizeof *o);
    o->dst = evbuffer_new();
    o->body = evbuffer_new();
    if (c == NULL || src == NULL || o->dst == NULL || o->body == NULL)
        abort();
    enum frame_stream_state last = FRAME_STREAM_OPEN;
    for (size_t at = 0; at < size; at += step) {
        size_t n = size - at < step ? size - at : step;
        evbuffer_add(src, data + at, n);
        if (frame_conn_feed(c, src, o->dst) < 0)
            abort();
        struct frame_stream *st = frame_conn_stream(c);
        if (st == NULL)
            continue;
        enum frame_stream_state now = frame_stream_state(st);
        if (last != FRAME_STREAM_OPEN && now != last)
            abort(); /* ended, then changed */
        last = now;
        if (period > 0 && ++feeds % period == 0) {
            evbuffer_add_buffer(o->body, frame_stream_buffer(st));
            frame_stream_drained(st);
        }
    }
    if (mode & 2)
        frame_conn_eof(c);
    struct frame_stream *st = frame_conn_stream(c);
    if (st != NULL) {
        o->streamed = true;
        o->state = frame_stream_state(st);
        o->received = frame_stream_received(st);
        if (last != FRAME_STREAM_OPEN && o->state != last)
            abort();
        if ((mode & 2) && o->state == FRAME_STREAM_OPEN)
            abort(); /* a half-close leaves no stream open */
        evbuffer_add_buffer(o->body, frame_stream_buffer(st));
        if (o->received != evbuffer_get_length(o->body))
            abort();
    }
    evbuffer_free(src);
    frame_conn_free(c);
}

static bool same(struct evbuffer *x, struct evbuffer *y)
{
    size_t n = evbuffer_get_length(x);
    if (n != evbuffer_get_length(y))
        return false;
    return n == 0 || memcmp(evbuffer_pullup(x, -1), evbuffer_pullup(y, -1), n) == 0;
}

/* Whether a[0..n) is a subsequence of data[0..size). */
static bool subsequence(const char *a, size_t n, const uint8_t *data, size_t size)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        while (at < size && data[at] != (uint8_t)a[i])
            at++;
        if (at == size)
            return false;
        at++;
    }
    return true;
}

/* How many lines of data[0..size) start with the header name name ("expect:", any case) and
 * have word (any case) somewhere after it: at most that many lines of its own can the filter
 * write for them. */
static size_t lines_with(const uint8_t *data, size_t size, const char *name, const char *word)
{
    size_t count = 0, nl = strlen(name), wl = strlen(word);
    for (size_t i = 0; i + 1 + nl <= size; i++) {
        if (data[i] != '\n' || strncasecmp((const char *)data + i + 1, name, nl) != 0)
            continue;
        size_t end = i + 1;
        while (end < size && data[end] != '\n')
            end++;
        for (size_t j = i + 1 + nl; j + wl <= end; j++) {
            if (strncasecmp((const char *)data + j, word, wl) == 0) {
                count++;
                break;
            }
        }
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    unsigned mode = data[0] / 17;
    data++;
    size--;
    struct outcome ow, os;
    run(data, size, size > 0 ? size : 1, mode, &ow);
    run(data, size, step, mode, &os);
    if (!same(ow.dst, os.dst) || !same(ow.body, os.body) || ow.streamed != os.streamed ||
        ow.state != os.state || ow.received != os.received)
        abort();
    struct evbuffer *whole = ow.dst;
    size_t n = evbuffer_get_length(whole);
    const char *a = (const char *)evbuffer_pullup(whole, -1);
    if (ow.streamed) {
        /* evhttp got the head rewritten (checked by test_http_frame); the body is the input's */
        size_t bn = evbuffer_get_length(ow.body);
        if (bn > 0 && !subsequence((const char *)evbuffer_pullup(ow.body, -1), bn, data, size))
            abort();
        static const char marker[] = FRAME_STREAM_HEADER ": " NONCE "\r\n\r\n";
        if (n == 0 || evbuffer_search(whole, marker, sizeof marker - 1, NULL).pos < 0)
            abort();
        evbuffer_free(ow.dst);
        evbuffer_free(os.dst);
        evbuffer_free(ow.body);
        evbuffer_free(os.body);
        return 0;
    }
    /* Nothing invented: the output is the input's bytes, but for at most one error request at
     * the end (found by its exact text: the input may quote the marker), asked as GET, or as
     * HEAD for a refused HEAD. */
    size_t passed = n;
    static const char tail[] = " HTTP/1.1\r\nHost: usersigd\r\nConnection: close\r\n\r\n";
    const char *marker = FRAME_ERROR_PREFIX NONCE "/";
    size_t ml = strlen(marker), tl = sizeof tail - 1;
    for (size_t p = n >= ml ? n - ml + 1 : 0; p-- > 0;) {
        if (memcmp(a + p, marker, ml) != 0)
            continue;
        size_t start = p >= 4 && memcmp(a + p - 4, "GET ", 4) == 0    ? p - 4
                       : p >= 5 && memcmp(a + p - 5, "HEAD ", 5) == 0 ? p - 5
                                                                      : (size_t)-1;
        if (start == (size_t)-1)
            break;
        /* kind, optionally "/limit", then the tail, and nothing after it */
        size_t q = p + ml, digits = 0;
        while (q < n && a[q] >= '0' && a[q] <= '9')
            q++, digits++;
        if (digits > 0 && q < n && a[q] == '/') {
            size_t d = 0;
            q++;
            while (q < n && a[q] >= '0' && a[q] <= '9')
                q++, d++;
            if (d == 0)
                digits = 0;
        }
        if (digits > 0 && n - q == tl && memcmp(a + q, tail, tl) == 0)
            passed = start;
        break;
    }
    /* A subsequence of the input (empty lines between requests are dropped, chunk lines and
     * trailers too), once the Content-Length lines the filter writes for a de-chunked request
     * and the Expect and Connection lines it writes for Expect lines with a 100-continue member
     * and Connection lines with close are taken out: no more of those than the input has such
     * lines. */
    static const char cl[] = "Content-Length: ";
    static const char *const own[] = {"Expect: 100-continue\r\n", "Connection: close\r\n"};
    size_t own_left[] = {lines_with(data, size, "expect:", "100-continue"),
                         lines_with(data, size, "connection:", "close")};
    char *kept = malloc(passed + 1);
    size_t k = 0, cll = sizeof cl - 1;
    if (kept == NULL)
        abort();
    for (size_t i = 0; i < passed;) {
        bool taken = false;
        for (size_t o = 0; o < 2 && !taken; o++) {
            size_t ol = strlen(own[o]);
            if (own_left[o] > 0 && i > 0 && a[i - 1] == '\n' && passed - i >= ol &&
                memcmp(a + i, own[o], ol) == 0) {
                own_left[o]--;
                i += ol; /* a whole line, at a line's start */
                taken = true;
            }
        }
        if (taken)
            continue;
        size_t j = i + cll;
        if (i > 0 && a[i - 1] == '\n' && passed - i > cll && memcmp(a + i, cl, cll) == 0) {
            while (j < passed && a[j] >= '0' && a[j] <= '9')
                j++;
            if (j > i + cll && passed - j >= 2 && a[j] == '\r' && a[j + 1] == '\n') {
                i = j + 2;
                continue;
            }
        }
        kept[k++] = a[i++];
    }
    if (!subsequence(kept, k, data, size))
        abort();
    free(kept);
    evbuffer_free(ow.dst);
    evbuffer_free(os.dst);
    evbuffer_free(ow.body);
    evbuffer_free(os.body);
    return 0;
}
