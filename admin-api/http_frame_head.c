/*
 * Strict request framing (http_frame.h): the head parser, pure (fuzzed: tests/fuzz/fuzz_frame.c)
 * and shared with the filter of http_frame.c: the request line, the header fields, the framing
 * headers' rules (RFC 9112), and each refusal's status and message.
 */
#include "http_frame.h"
#include "decimal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the head -------------------------------------------------------------------------------- */

static const struct {
    int status;
    const char *message;
} errors[FRAME_ERROR_COUNT] = {
    [FRAME_OK] = {200, "ok"},
    [FRAME_BAD_REQUEST] = {400, "the request is not well-formed HTTP/1.1 (its request line, a "
                                "header or a chunk): see RFC 9112"},
    [FRAME_DUP_LENGTH] = {400, "the request has more than one Content-Length"},
    [FRAME_LENGTH_AND_TE] = {400, "the request has both Content-Length and Transfer-Encoding"},
    [FRAME_BAD_TE] = {400, "Transfer-Encoding must be chunked, alone, and only on HTTP/1.1"},
    [FRAME_BAD_LENGTH] = {400, "Content-Length must be a decimal number of bytes"},
    [FRAME_DUP_HOST] = {400, "the request has more than one Host header"},
    [FRAME_NO_VERSION] = {400, "the request line has no HTTP version (HTTP/0.9 is not served)"},
    [FRAME_BAD_VERSION] = {505, "only HTTP/1.1 and HTTP/1.0 are served"},
    [FRAME_BAD_METHOD] = {501, "the method is not one this server implements (GET, HEAD, POST, "
                               "PUT, PATCH, DELETE, OPTIONS)"},
    [FRAME_TARGET_TOO_LONG] = {414, "the request URL is longer than 8192 bytes"},
    [FRAME_HEAD_TOO_LARGE] = {431, "the request headers are too large (at most 100 lines of "
                                   "8192 bytes, 64 KiB in all)"},
    [FRAME_BODY_TOO_LARGE] = {413, "the request body is larger than this route takes"},
    [FRAME_TIMEOUT] = {408, "the request headers did not arrive in time"},
    [FRAME_DUP_TYPE] = {400, "the request has more than one Content-Type"},
    [FRAME_BAD_EXPECT] = {400, "Expect takes only 100-continue (or leave it out)"},
    [FRAME_HEAD_BODY] = {400, "a HEAD request takes no body"},
    [FRAME_NO_HOST] = {400, "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)"},
    [FRAME_BAD_HOST] = {400, "the Host header (or the URL's authority) must be a host name or "
                             "address with an optional :port"},
};

const char *frame_error_message(enum frame_error e)
{
    return (unsigned)e < FRAME_ERROR_COUNT ? errors[e].message : errors[FRAME_BAD_REQUEST].message;
}

int frame_error_status(enum frame_error e)
{
    return (unsigned)e < FRAME_ERROR_COUNT ? errors[e].status : 400;
}

size_t frame_head_end(const char *buf, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i == 0 || buf[i - 1] != '\r')
            return (size_t)-1;
        if (i - line == 1) /* "\r\n" alone: the blank line */
            return i + 1;
        line = i + 1;
    }
    return 0;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The inside of an IP-literal's brackets (RFC 3986 section 3.2.2): an IPv6address, whose
 * grammar glibc's inet_pton follows (eight groups of one to four hex digits, one "::", a dotted
 * IPv4 tail without leading zeros; groups of more digits, which older C libraries took, are
 * refused here first), or an IPvFuture: "v", hex digits, ".", then unreserved,
 * sub-delims or ":". The zone of RFC 6874 ("%25eth0") is refused: it means nothing to a
 * server. */
static bool valid_ip_literal(const char *v, size_t n)
{
    if (n >= 2 && (v[0] == 'v' || v[0] == 'V')) {
        size_t i = 1;
        while (i < n && is_hex((unsigned char)v[i]))
            i++;
        if (i == 1 || i + 1 >= n || v[i] != '.')
            return false;
        for (i++; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                (c == '\0' || strchr("-._~!$&'()*+,;=:", c) == NULL))
                return false;
        }
        return true;
    }
    char text[INET6_ADDRSTRLEN];
    struct in6_addr addr;
    if (n == 0 || n >= sizeof text)
        return false;
    for (size_t i = 0, run = 0; i < n; i++)
        if ((run = is_hex((unsigned char)v[i]) ? run + 1 : 0) > 4)
            return false;
    memcpy(text, v, n);
    text[n] = '\0';
    return inet_pton(AF_INET6, text, &addr) == 1;
}

/* uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986 section 3.2.2): an IP-literal in
 * brackets, or a reg-name (an IPv4 address is one too); no userinfo. Empty is valid. */
static bool valid_host(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == ':')
        return false; /* a port without a host */
    if (n > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (close == NULL || !valid_ip_literal(v + 1, (size_t)(close - v) - 1))
            return false;
        i = (size_t)(close - v) + 1;
    } else {
        for (; i < n && v[i] != ':'; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c == '%') {
                if (i + 2 >= n || !is_hex((unsigned char)v[i + 1]) ||
                    !is_hex((unsigned char)v[i + 2]))
                    return false;
                i += 2;
            } else if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
                       !(c >= '0' && c <= '9') &&
                       (c == '\0' || strchr("-._~!$&'()*+,;=", c) == NULL)) {
                return false;
            }
        }
    }
    if (i == n)
        return true;
    return v[i] == ':' && decimal_span(v + i + 1, n - i - 1) == n - i - 1;
}

/* An absolute-form target (RFC 9112 section 3.2.2): "http://" or "https://", an authority,
 * then the path and query, which become the target. Anything else that is not origin-form, or
 * "*" for OPTIONS, is refused: this server is no proxy. */
static enum frame_error absolute_target(const char *line, struct frame_head *h)
{
    const char *t = h->target;
    size_t n = h->target_len, s;
    if (n > 7 && strncasecmp(t, "http://", 7) == 0)
        s = 7;
    else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
        s = 8;
    else
        return FRAME_BAD_REQUEST;
    size_t a = s;
    while (a < n && t[a] != '/' && t[a] != '?')
        a++;
    if (a == s)
        return FRAME_BAD_HOST; /* an http URI has a host */
    if (!valid_host(t + s, a - s))
        return FRAME_BAD_HOST;
    h->abs.at = (size_t)(t - line);
    h->abs.len = a;
    h->abs.root = a == n || t[a] == '?';
    h->target = t + a;
    h->target_len = n - a;
    if (h->target_len >= 2 && h->target[0] == '/' && h->target[1] == '/')
        return FRAME_BAD_REQUEST; /* evhttp would read an authority in it: see below */
    return FRAME_OK;
}

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static bool known_method(const char *m, size_t n)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i]) == n && memcmp(methods[i], m, n) == 0)
            return true;
    return false;
}

static enum frame_error parse_request_line(const char *p, size_t n, struct frame_head *h)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i > 16)
        return FRAME_BAD_REQUEST;
    if (i == n || p[i] != ' ')
        return FRAME_BAD_REQUEST;
    h->method = p;
    h->method_len = i;
    size_t t = ++i;
    while (i < n && p[i] != ' ') {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') /* a fragment is the client's own */
            return FRAME_BAD_REQUEST;
        i++;
    }
    h->target = p + t;
    h->target_len = i - t;
    if (h->target_len > FRAME_MAX_TARGET)
        return FRAME_TARGET_TOO_LONG;
    if (h->target_len == 0)
        return FRAME_BAD_REQUEST;
    if (i == n)
        return FRAME_NO_VERSION;
    const char *v = p + i + 1;
    size_t vn = n - i - 1;
    if (vn == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1'))
        h->minor = v[7] - '0';
    else if (vn == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
             v[7] >= '0' && v[7] <= '9')
        return FRAME_BAD_VERSION;
    else if (vn == 0)
        return FRAME_NO_VERSION;
    else
        return FRAME_BAD_REQUEST;
    if (!known_method(h->method, h->method_len))
        return FRAME_BAD_METHOD;
    /* origin-form, "*" for OPTIONS, or absolute-form. A path that starts with "//" is refused:
     * evhttp's URI parser takes what follows for an authority, so its path would not be the
     * one the filter's checks (the route's body limit, streaming, the internal path) saw. */
    if (h->target_len >= 2 && h->target[0] == '/' && h->target[1] == '/')
        return FRAME_BAD_REQUEST;
    if (h->target[0] == '/' || (h->target_len == 1 && h->target[0] == '*' && h->method_len == 7))
        return FRAME_OK;
    return absolute_target(p, h);
}

bool frame_name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* One header line p[0..n) (no CRLF): name, colon, value (OWS trimmed). */
enum frame_error frame_parse_field(const char *p, size_t n, const char **name, size_t *name_len,
                                   const char **value, size_t *value_len)
{
    size_t i = 0;
    if (n > FRAME_MAX_HEADER_LINE)
        return FRAME_HEAD_TOO_LARGE;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':') /* obs-fold, space before the colon, no colon */
        return FRAME_BAD_REQUEST;
    *name = p;
    *name_len = i;
    i++;
    for (size_t k = i; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return FRAME_BAD_REQUEST;
    }
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t e = n;
    while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
        e--;
    *value = p + i;
    *value_len = e - i;
    return FRAME_OK;
}

/* The next member of the comma list v[0..n) from *at on, OWS trimmed, empty members skipped
 * (RFC 9110 section 5.6.1): false at the list's end. */
static bool list_next(const char *v, size_t n, size_t *at, const char **m, size_t *ml)
{
    size_t i = *at;
    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start) {
            *at = i;
            *m = v + start;
            *ml = end - start;
            return true;
        }
    }
    *at = n;
    return false;
}

int frame_expect_list(const char *v, size_t n)
{
    int has_continue = 0;
    size_t at = 0, ml;
    const char *m;
    while (list_next(v, n, &at, &m, &ml)) {
        if (!(ml == 12 && strncasecmp(m, "100-continue", 12) == 0))
            return -1;
        has_continue = 1;
    }
    return has_continue;
}

/* Whether the Connection value v[0..n) lists the close option (any case). */
static bool connection_close(const char *v, size_t n)
{
    size_t at = 0, ml;
    const char *m;
    while (list_next(v, n, &at, &m, &ml))
        if (ml == 5 && strncasecmp(m, "close", 5) == 0)
            return true;
    return false;
}

enum frame_error frame_parse_head(const char *buf, size_t len, struct frame_head *h)
{
    size_t at = 0, lines = 0;
    int n_length = 0, n_te = 0, n_host = 0, n_type = 0;
    enum frame_error e;

    memset(h, 0, sizeof *h);
    if (len > FRAME_MAX_HEAD)
        return FRAME_HEAD_TOO_LARGE;
    /* The request line. */
    const char *lf = memchr(buf, '\n', len);
    if (lf == NULL || lf == buf || lf[-1] != '\r')
        return FRAME_BAD_REQUEST;
    e = parse_request_line(buf, (size_t)(lf - 1 - buf), h);
    if (e != FRAME_OK)
        return e;
    at = (size_t)(lf - buf) + 1;
    /* The header lines, up to the blank line. */
    while (at < len) {
        lf = memchr(buf + at, '\n', len - at);
        if (lf == NULL || lf == buf + at || lf[-1] != '\r')
            return FRAME_BAD_REQUEST;
        size_t n = (size_t)(lf - 1 - (buf + at));
        if (n == 0)
            break; /* the blank line */
        if (++lines > FRAME_MAX_HEADERS)
            return FRAME_HEAD_TOO_LARGE;
        const char *name, *value;
        size_t nl, vl;
        e = frame_parse_field(buf + at, n, &name, &nl, &value, &vl);
        if (e != FRAME_OK)
            return e;
        if (frame_name_is(name, nl, "Content-Length")) {
            if (++n_length > 1)
                return FRAME_DUP_LENGTH;
            size_t digits = decimal_span(value, vl);
            if (digits < vl && value[digits] == ',')
                return FRAME_DUP_LENGTH;
            if (vl == 0 || digits < vl)
                return FRAME_BAD_LENGTH;
            /* Past 2^64 - 1 it is over every body limit all the same. */
            if (decimal_parse(value, vl, UINT64_MAX, 0, &h->length) != 0)
                h->length = UINT64_MAX;
            h->has_length = true;
        } else if (frame_name_is(name, nl, "Transfer-Encoding")) {
            if (++n_te > 1 || !(vl == 7 && strncasecmp(value, "chunked", 7) == 0))
                return FRAME_BAD_TE;
            h->chunked = true;
        } else if (frame_name_is(name, nl, "Host")) {
            if (++n_host > 1)
                return FRAME_DUP_HOST;
            if (!valid_host(value, vl))
                return FRAME_BAD_HOST;
        } else if (frame_name_is(name, nl, "Content-Type")) {
            if (++n_type > 1)
                return FRAME_DUP_TYPE; /* which one a handler would read is not the client's */
            h->content_type = value;
            h->content_type_len = vl;
        } else if (frame_name_is(name, nl, "Connection")) {
            h->connection_close |= connection_close(value, vl);
        } else if (frame_name_is(name, nl, "Expect") && h->minor == 1) {
            /* evhttp would answer any member but 100-continue with an HTML 417 (on HTTP/1.1; it
             * ignores Expect on HTTP/1.0, as RFC 9110 lets a server do). */
            int k = frame_expect_list(value, vl);
            if (k < 0)
                return FRAME_BAD_EXPECT;
            h->expect_continue |= k > 0;
            /* evhttp takes only the first Expect line, with no tab before its value and no
             * other member: every one is written anew. */
            h->expect_rewrite = true;
        }
        at = (size_t)(lf - buf) + 1;
    }
    if (h->chunked && h->has_length)
        return FRAME_LENGTH_AND_TE;
    if (h->chunked && h->minor == 0)
        return FRAME_BAD_TE;
    if (h->minor == 1 && n_host == 0)
        return FRAME_NO_HOST;
    return FRAME_OK;
}

enum frame_error frame_error_path(const char *path, const char *nonce, uint64_t *detail)
{
    size_t p = strlen(FRAME_ERROR_PREFIX);
    if (path == NULL || strncmp(path, FRAME_ERROR_PREFIX, p) != 0 ||
        strncmp(path + p, nonce, FRAME_NONCE_LEN) != 0 || path[p + FRAME_NONCE_LEN] != '/')
        return FRAME_OK;
    const char *k = path + p + FRAME_NONCE_LEN + 1;
    size_t n = strlen(k), kn = decimal_span(k, n);
    uint64_t v, d = 0;
    if (decimal_parse(k, kn, FRAME_ERROR_COUNT - 1, 0, &v) != 0 || v == 0 ||
        (kn < n && (k[kn] != '/' || decimal_parse(k + kn + 1, n - kn - 1, UINT64_MAX, 0, &d) != 0)))
        return FRAME_OK;
    if (detail != NULL)
        *detail = d;
    return (enum frame_error)v;
}
