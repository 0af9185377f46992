/*
 * usersig_http: the HTTP/1.1 client of `usersig batch`. One request per connection (the caller
 * sends "Connection: close"): it is sent while the answer is read, so a server that answers
 * before it has read the whole body is heard. Plain HTTP over POSIX sockets, no TLS. Part of the
 * `usersig` executable.
 */
#ifndef USERSIG_HTTP_H
#define USERSIG_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define USERSIG_HTTP_WUR __attribute__((warn_unused_result))

/* A server address, from usersig_http_parse_url. */
struct usersig_http_url {
    char host[256];      /* a name or an address, IPv6 without its brackets */
    char port[24];       /* decimal, "80" when the URL gives none */
    char prefix[1024];   /* the path before the API's, without trailing '/' ("" for none) */
    char authority[300]; /* HOST[:PORT] as written: the Host header */
};

/* http://HOST[:PORT][/PREFIX]; HOST a name, an IPv4 or an [IPv6] address. Returns 0, or -1
 * with *why set to a static message for the user (naming --server). */
int usersig_http_parse_url(const char *s, struct usersig_http_url *u,
                           const char **why) USERSIG_HTTP_WUR;

/* s (digits only, no sign or space) as a number of at most max into *out. Returns 0 or -1. */
int usersig_http_parse_u64(const char *s, uint64_t max, uint64_t *out) USERSIG_HTTP_WUR;

/* Copies at most cap - 1 bytes of s, printable ASCII kept and others as '?', NUL-terminated:
 * what a server sent, made safe to show on a terminal. */
void usersig_http_clean_copy(char *dst, size_t cap, const char *s, size_t n);

/* What a connection asks of its user; copied by usersig_http_new. */
struct usersig_http_hooks {
    /* Reports an error: every -1 below has been reported, here or by waiting. */
    void (*vsay)(void *arg, const char *fmt, va_list ap);
    /* Called each time the client is about to wait for the server, first == 1 on the first
     * wait of a read (NULL: nothing to do). at is the value given to the read. Returns 0, or -1
     * (having reported why) to give up. */
    int (*waiting)(void *arg, size_t at, int first);
    void *arg;
};

struct usersig_http_conn; /* opaque */

/* A connection to url, not open yet, with its read buffer. url must outlive it. Returns NULL
 * when out of memory; caller usersig_http_free()s it. */
struct usersig_http_conn *usersig_http_new(const struct usersig_http_url *url,
                                           const struct usersig_http_hooks *hooks);

/* Closes the connection if open and frees c. Accepts NULL. */
void usersig_http_free(struct usersig_http_conn *c);

/* Resolves the host and connects to the first address that answers. Returns 0, or -1. */
int usersig_http_open(struct usersig_http_conn *c) USERSIG_HTTP_WUR;

/* Queues the request on an open connection: head (the request line and headers, CR LF CR LF
 * included) then body. Both are borrowed until usersig_http_close; they are sent while the
 * answer is read. */
void usersig_http_send(struct usersig_http_conn *c, const char *head, size_t head_len,
                       const char *body, size_t body_len);

/* Closes the connection (a closed one is left as is); c can be opened again. */
void usersig_http_close(struct usersig_http_conn *c);

/* The head of an answer. */
struct usersig_http_answer {
    int status;
    int chunked, has_length;
    uint64_t length;
    char reason[64], request_id[64]; /* cleaned (usersig_http_clean_copy); "" when absent */
};

/* Reads the answer's status line and headers (a 1xx answer is skipped: the real one follows)
 * and readies the reading of its body. Returns 0, or -1. */
int usersig_http_read_head(struct usersig_http_conn *c,
                           struct usersig_http_answer *a) USERSIG_HTTP_WUR;

/* The next piece of the body (chunked, Content-Length, or up to the close), in the
 * connection's buffer: *p is valid until the next call. at is handed to hooks->waiting.
 * Returns 1, 0 at the end of the body, -1 on an error. */
int usersig_http_body_next(struct usersig_http_conn *c, size_t at, const char **p,
                           size_t *n) USERSIG_HTTP_WUR;

#endif
