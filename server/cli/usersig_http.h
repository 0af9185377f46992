/*
 * usersig_http: the HTTP/1.1 transport of `usersig batch`, over libcurl. One request per
 * connection; http:// or https:// (certificate and host name always verified, TLS 1.2 or
 * later, the system's CA store or a PEM bundle). The answer reaches its user as it arrives:
 * the head once, then the body's bytes (chunks and lengths undone), so nothing here holds a
 * whole answer. libcurl's types stay inside usersig_http.c. Part of the `usersig` executable.
 */
#ifndef USERSIG_HTTP_H
#define USERSIG_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define USERSIG_HTTP_WUR __attribute__((warn_unused_result))

/* A server address, from usersig_http_parse_url. */
struct usersig_http_url {
    int tls;              /* https:// */
    char host[256];       /* a name or an address, IPv6 without its brackets */
    char host_shown[258]; /* host for messages: an IPv6 address in its brackets */
    char port[24];        /* decimal, "80" or "443" when the URL gives none */
    char prefix[1024];    /* the path before the API's, without trailing '/' ("" for none) */
    char authority[300];  /* HOST[:PORT] as written */
};

/* http[s]://HOST[:PORT][/PREFIX]; HOST a name, an IPv4 or an [IPv6] address. Returns 0, or -1
 * with *why set to a static message for the user (naming --server). */
int usersig_http_parse_url(const char *s, struct usersig_http_url *u,
                           const char **why) USERSIG_HTTP_WUR;

/* s (digits only, no sign or space) as a number of at most max into *out. Returns 0 or -1. */
int usersig_http_parse_u64(const char *s, uint64_t max, uint64_t *out) USERSIG_HTTP_WUR;

/* Copies at most cap - 1 bytes of s, printable ASCII kept and others as '?', NUL-terminated:
 * what a server sent, made safe to show on a terminal. */
void usersig_http_clean_copy(char *dst, size_t cap, const char *s, size_t n);

/* Whether path names a readable file holding at least one PEM certificate. Returns 0, or -1
 * with *why set to a static message naming --ca-file (never the path). */
int usersig_http_check_ca_file(const char *path, const char **why) USERSIG_HTTP_WUR;

/* The head of an answer. */
struct usersig_http_answer {
    int status;
    char reason[64], request_id[64]; /* cleaned (usersig_http_clean_copy); "" when absent */
    int retry_after;                 /* Retry-After in seconds (0..86400), -1 when absent */
};

/* What a streamed body's source returns when it has nothing to give yet (see send). */
#define USERSIG_HTTP_SEND_WAIT (-2)

/* What a request asks of its user; copied by usersig_http_new. */
struct usersig_http_hooks {
    /* Reports an error: every -1 below has been reported, here or by a hook. */
    void (*vsay)(void *arg, const char *fmt, va_list ap);
    /* The answer's head (a 1xx answer is skipped: the real one follows), before any of its
     * body. Returns 0, or -1 (having reported why) to give up. */
    int (*head)(void *arg, const struct usersig_http_answer *a);
    /* The next piece of the body, borrowed for the call. Returns 0 to go on, 1 to stop reading
     * (enough has come: the request still ends well), -1 (having reported why) to give up. */
    int (*body)(void *arg, const char *p, size_t n);
    /* Called each time the client is about to wait for the server, fresh == 1 when body bytes
     * arrived since the last wait (NULL: nothing to do). Returns 0, or -1 (having reported
     * why) to give up. */
    int (*waiting)(void *arg, int fresh);
    /* A streamed request's body (usersig_http_post_stream): its next bytes, at most cap, into
     * buf. Returns how many (> 0), 0 at the body's end, USERSIG_HTTP_SEND_WAIT when none can
     * be given now (the sending pauses; send_ready says when to go on), -1 (having reported
     * why) to give up. */
    long (*send)(void *arg, char *buf, size_t cap);
    /* While the sending pauses: 1 when send has bytes again; 0 not yet, *fd then a descriptor
     * whose readability may change that (-1: only the answer's progress can). */
    int (*send_ready)(void *arg, int *fd);
    void *arg;
};

struct usersig_http_conn; /* opaque */

/* A client for url, its TLS trust the PEM bundle ca_file (NULL: the system's store; both
 * borrowed: they must outlive it). Returns NULL when out of memory or when libcurl cannot be
 * set up (said on stderr); caller usersig_http_free()s it. */
struct usersig_http_conn *usersig_http_new(const struct usersig_http_url *url, const char *ca_file,
                                           const struct usersig_http_hooks *hooks);

/* Frees c. Accepts NULL. */
void usersig_http_free(struct usersig_http_conn *c);

/* One request: POST url's prefix + path_query with the header lines headers[0..nheaders)
 * ("Name: value", copied and wiped after the request: they may hold the token) and the body
 * (borrowed). The answer goes to the hooks as it arrives. Returns 0 once the whole answer has
 * come (or the body hook said 1), -1 on an error (reported). */
int usersig_http_post(struct usersig_http_conn *c, const char *path_query,
                      const char *const *headers, size_t nheaders, const char *body,
                      size_t body_len) USERSIG_HTTP_WUR;

/* As usersig_http_post, with a body of unknown length taken from the hooks' send as it goes
 * and sent chunked (Transfer-Encoding: chunked, after the server's 100 Continue), while the
 * answer is read: the two directions at once, each at the other side's pace. */
int usersig_http_post_stream(struct usersig_http_conn *c, const char *path_query,
                             const char *const *headers, size_t nheaders) USERSIG_HTTP_WUR;

#endif
