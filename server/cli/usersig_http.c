/*
 * The HTTP/1.1 client of `usersig batch` (usersig_http.h): the server address, a non-blocking
 * connection that sends the request while it waits for the answer, the answer's head, and its
 * body (chunked, Content-Length or up to the close). Errors are reported through the user's
 * hooks, in words for the person running the command.
 */
#include "usersig_http.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define NET_BUF 262144
#define MAX_HEADER_LINE 8192
#define MAX_HEADERS 16384
#define CONNECT_TIMEOUT_MS 10000
#define IO_TIMEOUT_MS 300000

enum body_mode { BODY_CHUNKED, BODY_LENGTH, BODY_CLOSE };

struct body {
    enum body_mode mode;
    uint64_t left;
    int after_data, done;
};

struct usersig_http_conn {
    const struct usersig_http_url *url;
    struct usersig_http_hooks hooks;
    int fd;
    char *buf; /* NET_BUF bytes */
    size_t pos, end;
    struct iovec out[2]; /* what is left to send: the request head, then the body */
    int out_failed;      /* the server stopped reading (an early answer follows, or nothing) */
    struct body body;    /* the answer's body, once its head is read */
};

static void say(struct usersig_http_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct usersig_http_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->hooks.vsay(c->hooks.arg, fmt, ap);
    va_end(ap);
}

void usersig_http_clean_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n && i + 1 < cap; i++)
        dst[i] = (s[i] >= 0x20 && s[i] <= 0x7e) ? s[i] : '?';
    dst[i] = '\0';
}

int usersig_http_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- the URL ------------------------------------------------------------------------------- */

int usersig_http_parse_url(const char *s, struct usersig_http_url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    if (strncasecmp(s, "https://", 8) == 0) {
        *why = "https is not supported: usersig batch speaks plain HTTP (use it on loopback or "
               "through a TLS-terminating proxy, with its http:// address)";
        return -1;
    }
    *why = "--server must be http://HOST[:PORT][/PREFIX]";
    if (strncasecmp(s, "http://", 7) != 0)
        return -1;
    const char *a = s + 7, *path = a + strcspn(a, "/?#");
    size_t alen = (size_t)(path - a);
    if (alen == 0 || alen >= sizeof u->authority || strpbrk(path, "?#") != NULL)
        return -1;
    for (size_t i = 0; i < alen; i++)
        if (a[i] <= 0x20 || a[i] >= 0x7f)
            return -1;
    if (memchr(a, '@', alen) != NULL) {
        *why = "--server takes no user@ part: the token comes from --token-file or "
               "$USERSIGD_TOKEN";
        return -1;
    }
    memcpy(u->authority, a, alen);
    const char *host = u->authority, *port = NULL;
    size_t hlen;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
            return -1;
        host++;
        hlen = (size_t)(rb - host);
        port = rb[1] == ':' ? rb + 2 : NULL;
    } else {
        const char *colon = strchr(host, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            *why = "--server: write an IPv6 address in brackets, as http://[::1]:8080";
            return -1;
        }
        hlen = colon != NULL ? (size_t)(colon - host) : strlen(host);
        port = colon != NULL ? colon + 1 : NULL;
    }
    if (hlen == 0 || hlen >= sizeof u->host)
        return -1;
    memcpy(u->host, host, hlen);
    uint64_t p = 80;
    if (port != NULL &&
        (strlen(port) > 5 || usersig_http_parse_u64(port, 65535, &p) != 0 || p == 0)) {
        *why = "--server: the port must be 1..65535";
        return -1;
    }
    snprintf(u->port, sizeof u->port, "%" PRIu64, p);
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (plen >= sizeof u->prefix)
        return -1;
    for (size_t i = 0; i < plen; i++)
        if (path[i] <= 0x20 || path[i] >= 0x7f)
            return -1;
    memcpy(u->prefix, path, plen);
    return 0;
}

/* ---- the connection ------------------------------------------------------------------------ */

struct usersig_http_conn *usersig_http_new(const struct usersig_http_url *url,
                                           const struct usersig_http_hooks *hooks)
{
    struct usersig_http_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->buf = malloc(NET_BUF);
    if (c->buf == NULL) {
        free(c);
        return NULL;
    }
    c->url = url;
    c->hooks = *hooks;
    c->fd = -1;
    return c;
}

void usersig_http_free(struct usersig_http_conn *c)
{
    if (c == NULL)
        return;
    usersig_http_close(c);
    free(c->buf);
    free(c);
}

int usersig_http_open(struct usersig_http_conn *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(c->url->host, c->url->port, &hints, &res);
    if (rc != 0) {
        say(c, "cannot resolve %s: %s", c->url->host, gai_strerror(rc));
        return -1;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int k;
        while ((k = poll(&pfd, 1, CONNECT_TIMEOUT_MS)) < 0 && errno == EINTR)
            ;
        socklen_t elen = sizeof err;
        if (k <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            if (k == 0)
                err = ETIMEDOUT;
            else if (k < 0 || err == 0)
                err = errno;
            close(fd);
            continue;
        }
        freeaddrinfo(res);
        c->fd = fd;
        c->pos = c->end = 0;
        c->out_failed = 0;
        return 0;
    }
    freeaddrinfo(res);
    say(c, "cannot connect to %s:%s: %s", c->url->host, c->url->port, strerror(err));
    return -1;
}

void usersig_http_send(struct usersig_http_conn *c, const char *head, size_t head_len,
                       const char *body, size_t body_len)
{
    c->out[0] = (struct iovec){.iov_base = (char *)head, .iov_len = head_len};
    c->out[1] = (struct iovec){.iov_base = (char *)body, .iov_len = body_len};
}

void usersig_http_close(struct usersig_http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static size_t out_left(const struct usersig_http_conn *c)
{
    return c->out_failed ? 0 : c->out[0].iov_len + c->out[1].iov_len;
}

/* Sends what the socket takes now of the request. Returns 0, or -1 on an error (reported). */
static int send_some(struct usersig_http_conn *c)
{
    while (out_left(c) > 0) {
        struct msghdr m = {.msg_iov = c->out[0].iov_len > 0 ? &c->out[0] : &c->out[1],
                           .msg_iovlen = c->out[0].iov_len > 0 ? 2 : 1};
        ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EPIPE || errno == ECONNRESET) { /* read what the server said */
                c->out_failed = 1;
                return 0;
            }
            say(c, "sending to %s:%s: %s", c->url->host, c->url->port, strerror(errno));
            return -1;
        }
        for (int i = 0; i < 2 && k > 0; i++) {
            size_t t = (size_t)k < c->out[i].iov_len ? (size_t)k : c->out[i].iov_len;
            c->out[i].iov_base = (char *)c->out[i].iov_base + t;
            c->out[i].iov_len -= t;
            k -= (ssize_t)t;
        }
    }
    return 0;
}

/* Reads more of the answer into the buffer, sending the rest of the request meanwhile; the
 * waiting hook runs before each wait (the batch flushes stdout there, so lines leave as they
 * arrive). Returns the bytes read, 0 at the end of the stream, -1 on an error (reported). */
static int fill(struct usersig_http_conn *c, size_t at)
{
    int waited = 0, first = 1;
    if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->end - c->pos);
        c->end -= c->pos;
        c->pos = 0;
    }
    for (;;) {
        ssize_t k = recv(c->fd, c->buf + c->end, NET_BUF - c->end, 0);
        if (k > 0) {
            c->end += (size_t)k;
            return (int)k;
        }
        if (k == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            if (c->out_failed || out_left(c) > 0)
                say(c,
                    "the server closed the connection while the request was being sent (%s): a "
                    "body over its limit can end that way; try a smaller --max-request-bytes",
                    strerror(errno));
            else
                say(c, "reading from %s:%s: %s", c->url->host, c->url->port, strerror(errno));
            return -1;
        }
        size_t before = out_left(c);
        if (send_some(c) != 0)
            return -1;
        if (out_left(c) != before)
            waited = 0;
        if (c->hooks.waiting != NULL && c->hooks.waiting(c->hooks.arg, at, first) != 0)
            return -1;
        first = 0;
        if (waited >= IO_TIMEOUT_MS) {
            say(c, "no answer from %s:%s for %d seconds; giving up", c->url->host, c->url->port,
                IO_TIMEOUT_MS / 1000);
            return -1;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN | (out_left(c) ? POLLOUT : 0)};
        int r = poll(&pfd, 1, 1000);
        if (r < 0 && errno != EINTR) {
            say(c, "poll: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            waited += 1000;
    }
}

/* One line of the answer's head (CR LF or LF removed) into out. Returns its length, or -1. */
static int read_line(struct usersig_http_conn *c, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (c->end == NET_BUF && c->pos == 0) /* never: every reader empties the buffer */
            return -1;
        if (c->pos == c->end) {
            int k = fill(c, 0);
            if (k < 0)
                return -1;
            if (k == 0 && n == 0 && (c->out_failed || out_left(c) > 0))
                say(c, "the server closed the connection while the request was being sent: a "
                       "body over its limit can end that way; try a smaller --max-request-bytes");
            else if (k == 0)
                say(c, "the server closed the connection in the middle of its answer");
            if (k <= 0)
                return -1;
        }
        char *start = c->buf + c->pos, *nl = memchr(start, '\n', c->end - c->pos);
        size_t take = nl != NULL ? (size_t)(nl - start) + 1 : c->end - c->pos;
        if (n + take > cap - 1) {
            say(c, "the server sent a header line longer than %zu bytes", cap - 1);
            return -1;
        }
        memcpy(out + n, start, take);
        n += take;
        c->pos += take;
        if (nl != NULL)
            break;
    }
    n--;
    if (n > 0 && out[n - 1] == '\r')
        n--;
    out[n] = '\0';
    return (int)n;
}

/* ---- the answer ---------------------------------------------------------------------------- */

static int read_head(struct usersig_http_conn *c, struct usersig_http_answer *a)
{
    char line[MAX_HEADER_LINE];
    size_t total = 0;
    for (;;) {
        memset(a, 0, sizeof *a);
        int n = read_line(c, line, sizeof line);
        if (n < 0)
            return -1;
        if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
            strspn(line + 9, "0123456789") != 3 || (line[12] != ' ' && line[12] != '\0')) {
            char shown[80];
            usersig_http_clean_copy(shown, sizeof shown, line, (size_t)n);
            say(c, "%s:%s did not answer in HTTP/1.1 (\"%s\")", c->url->host, c->url->port, shown);
            return -1;
        }
        a->status = atoi(line + 9);
        usersig_http_clean_copy(a->reason, sizeof a->reason, line + 12 + (line[12] == ' '),
                                strlen(line + 12 + (line[12] == ' ')));
        while ((n = read_line(c, line, sizeof line)) > 0) {
            total += (size_t)n + 2;
            if (total > MAX_HEADERS) {
                say(c, "the server's answer headers exceed %d bytes", MAX_HEADERS);
                return -1;
            }
            char *colon = strchr(line, ':');
            if (colon == NULL)
                continue;
            *colon = '\0';
            char *v = colon + 1 + strspn(colon + 1, " \t");
            if (strcasecmp(line, "transfer-encoding") == 0 && strcasestr(v, "chunked") != NULL) {
                a->chunked = 1;
            } else if (strcasecmp(line, "content-length") == 0) {
                uint64_t len;
                v[strcspn(v, " \t")] = '\0';
                if (usersig_http_parse_u64(v, UINT64_MAX / 2, &len) != 0 ||
                    (a->has_length && len != a->length)) {
                    say(c, "the server sent a bad Content-Length");
                    return -1;
                }
                a->length = len;
                a->has_length = 1;
            } else if (strcasecmp(line, "x-request-id") == 0) {
                usersig_http_clean_copy(a->request_id, sizeof a->request_id, v, strlen(v));
            }
        }
        if (n < 0)
            return -1;
        if (a->status >= 200 || a->status < 100)
            return 0;
        /* 1xx (100 Continue): no body, the real answer follows. */
    }
}

int usersig_http_read_head(struct usersig_http_conn *c, struct usersig_http_answer *a)
{
    if (read_head(c, a) != 0)
        return -1;
    struct body *bd = &c->body;
    memset(bd, 0, sizeof *bd);
    bd->mode = a->chunked ? BODY_CHUNKED : a->has_length ? BODY_LENGTH : BODY_CLOSE;
    bd->left = a->chunked ? 0 : a->length;
    return 0;
}

int usersig_http_body_next(struct usersig_http_conn *c, size_t at, const char **p, size_t *n)
{
    struct body *bd = &c->body;
    char line[1024];
    if (bd->done)
        return 0;
    if (bd->mode == BODY_CHUNKED && bd->left == 0) {
        if (bd->after_data) {
            int k = read_line(c, line, sizeof line);
            if (k != 0) {
                if (k > 0)
                    say(c, "the server's chunked answer is malformed (no CRLF after a chunk)");
                return -1;
            }
        }
        if (read_line(c, line, sizeof line) < 0)
            return -1;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line || errno != 0 || size > (1ULL << 40) ||
            (*end != '\0' && *end != ';' && *end != ' ' && *end != '\t')) {
            say(c, "the server's chunked answer is malformed (chunk size line)");
            return -1;
        }
        if (size == 0) { /* the last chunk: skip the trailer */
            int k;
            while ((k = read_line(c, line, sizeof line)) > 0)
                ;
            if (k < 0)
                return -1;
            bd->done = 1;
            return 0;
        }
        bd->left = size;
        bd->after_data = 1;
    }
    if (bd->mode == BODY_LENGTH && bd->left == 0) {
        bd->done = 1;
        return 0;
    }
    if (c->pos == c->end) {
        int k = fill(c, at);
        if (k < 0)
            return -1;
        if (k == 0) {
            if (bd->mode == BODY_CLOSE) {
                bd->done = 1;
                return 0;
            }
            say(c, "the server closed the connection in the middle of its answer");
            return -1;
        }
    }
    size_t avail = c->end - c->pos;
    if (bd->mode != BODY_CLOSE && avail > bd->left)
        avail = (size_t)bd->left;
    *p = c->buf + c->pos;
    *n = avail;
    c->pos += avail;
    if (bd->mode != BODY_CLOSE)
        bd->left -= avail;
    return 1;
}
