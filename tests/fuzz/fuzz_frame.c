/*
 * The request framing (admin-api/http_frame.c): arbitrary bytes through one connection's
 * framing, split where the input's first byte says. What reaches evhttp is the client's bytes
 * (empty lines between requests aside) up to, at most, one error request at the end; split or
 * whole, the same bytes reach it.
 */
#include "http_frame.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE "0123456789abcdef0123456789abcdef"

static uint64_t limit_of(void *arg, const char *m, size_t ml, const char *t, size_t tl)
{
    (void)arg;
    (void)m;
    (void)t;
    return ml + tl < 8 ? 16 : 4096;
}

static const struct frame_config cfg = {
    .body_limit = limit_of, .head_timeout_ms = 3600000, .nonce = NONCE};

static struct evbuffer *run(const uint8_t *data, size_t size, size_t step)
{
    struct frame_conn *c = frame_conn_new(&cfg);
    struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
    if (c == NULL || src == NULL || dst == NULL)
        abort();
    for (size_t at = 0; at < size; at += step) {
        size_t n = size - at < step ? size - at : step;
        evbuffer_add(src, data + at, n);
        if (frame_conn_feed(c, src, dst) < 0)
            abort();
    }
    evbuffer_free(src);
    frame_conn_free(c);
    return dst;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    struct evbuffer *whole = run(data, size, size > 0 ? size : 1);
    struct evbuffer *split = run(data, size, step);
    size_t n = evbuffer_get_length(whole);
    if (n != evbuffer_get_length(split))
        abort();
    const char *a = (const char *)evbuffer_pullup(whole, -1);
    const char *b = (const char *)evbuffer_pullup(split, -1);
    if (n > 0 && memcmp(a, b, n) != 0)
        abort();
    /* Nothing invented: the output is the input's bytes, but for at most one error request at
     * the end (found by its exact text: the input may quote the marker). */
    size_t passed = n;
    static const char tail[] = " HTTP/1.1\r\nHost: usersigd\r\nConnection: close\r\n\r\n";
    const char *marker = "GET " FRAME_ERROR_PREFIX NONCE "/";
    size_t ml = strlen(marker), tl = sizeof tail - 1;
    for (size_t p = n >= ml ? n - ml + 1 : 0; p-- > 0;) {
        if (memcmp(a + p, marker, ml) != 0)
            continue;
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
            passed = p;
        break;
    }
    /* A subsequence of the input (empty lines between requests are dropped). */
    size_t at = 0;
    for (size_t i = 0; i < passed; i++) {
        while (at < size && data[at] != (uint8_t)a[i])
            at++;
        if (at == size)
            abort();
        at++;
    }
    evbuffer_free(whole);
    evbuffer_free(split);
    return 0;
}
