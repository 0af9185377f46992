/*
 * Outbound HTTPS from the event loop: libcurl's multi interface driven by libevent (the
 * sockets libcurl wants watched become events on the caller's event_base, its timer one timer
 * event), so a call to Tencent's REST API never blocks the loop. Certificates and host names
 * are always verified; only https is spoken (http too when allow_insecure is set, for tests);
 * redirects are not followed; no proxy is taken from the environment. A URL may carry a
 * credential in its query (Tencent's admin UserSig): nothing here logs, or returns in a message,
 * more of a URL than its host and path. Every function runs on the thread of the event_base's loop.
 */
#ifndef OUTBOUND_H
#define OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct sockaddr;
struct event_base;
struct outbound;

#define OUTBOUND_WUR __attribute__((warn_unused_result))

#define OUTBOUND_DEFAULT_MAX_RESPONSE (1u << 20) /* bytes */
#define OUTBOUND_MAX_MAX_RESPONSE (16u << 20)
#define OUTBOUND_ERR_MAX 256 /* bytes of outbound_result.error, with its NUL */

enum outbound_rc {
    OUTBOUND_OK = 0,    /* a reply came: see status and body (any HTTP status) */
    OUTBOUND_TIMEOUT,   /* connect or total timeout */
    OUTBOUND_CONNECT,   /* name resolution, TCP connect, or the connection broke */
    OUTBOUND_TLS,       /* handshake, certificate or host name verification */
    OUTBOUND_TOO_LARGE, /* the response body is over max_response */
    OUTBOUND_BAD_URL,   /* not a URL, or a scheme not allowed */
    OUTBOUND_BUSY,      /* max_pending calls already in flight (not started) */
    OUTBOUND_CANCELLED, /* outbound_free() while the call was in flight */
    OUTBOUND_NO_MEMORY,
    OUTBOUND_ERROR, /* anything else libcurl reports */
};

struct outbound_options {
    const char *ca_file;        /* PEM CA bundle; NULL or "": the system's store */
    int64_t connect_timeout_ms; /* 0: 5000 */
    int64_t timeout_ms;         /* the whole call, connect included; 0: 10000 */
    int max_transfers;          /* concurrent connections; 0: 8. Further calls wait their turn */
    int max_pending;            /* calls in flight at once, running or waiting; 0: 64 * 8 */
    size_t max_response;        /* bytes of a response body; 0: OUTBOUND_DEFAULT_MAX_RESPONSE */
    int allow_insecure;         /* 1: http:// URLs too (tests); https is always verified */
    const char *proxy;          /* NULL: no proxy (the environment's are ignored) */
    int refuse_internal;        /* 1: no connection to an address outbound_addr_internal()
                                 * names, whatever the URL's spelling or its name resolves to:
                                 * the call ends OUTBOUND_CONNECT, "the address ... is internal" */
    int hide_path;              /* 1: the debug log shows the URL's host and port, not its path
                                 * (a webhook's may hold the receiver's secret) */
    int discard_response;       /* 1: the body is not kept: up to max_response bytes are read
                                 * and dropped, then the transfer ends; rc is OUTBOUND_OK with
                                 * the status all the same (body empty, never OUTBOUND_TOO_LARGE) */
};

struct outbound_result {
    enum outbound_rc rc;
    long status;        /* HTTP status when rc is OUTBOUND_OK, else 0 */
    const char *body;   /* the response body, NUL-terminated (may hold NULs); valid during the
                         * callback only. Empty (never NULL) when rc is not OUTBOUND_OK */
    size_t body_len;    /* <= max_response */
    double duration_ms; /* from outbound_post_json() to completion */
    const char *error;  /* rc != OUTBOUND_OK: why, never the URL's query; "" otherwise */
};

/* Called on the loop thread exactly once per accepted call; not from within
 * outbound_post_json(). It may start new calls; it must not call outbound_free(). */
typedef void (*outbound_cb)(const struct outbound_result *r, void *arg);

/* o from the daemon's settings: tencent_ca_file, tencent_connect_timeout, tencent_timeout and
 * tencent_allow_insecure_base_url (tests only); the others at their defaults. o->ca_file points
 * into cfg (outbound_new() copies it). */
void outbound_options_from_config(const struct config *cfg, struct outbound_options *o);

/* A new client on base (which must outlive it). NULL on failure, with err saying why. */
struct outbound *outbound_new(struct event_base *base, const struct outbound_options *opt,
                              char *err, size_t errlen) OUTBOUND_WUR;

/* Ends every call in flight (each callback gets OUTBOUND_CANCELLED) and frees ob. NULL: nothing. */
void outbound_free(struct outbound *ob);

/* POSTs body (len bytes, copied) with Content-Type: application/json to url (copied). Returns
 * OUTBOUND_OK when the call was started, and cb(arg) will be called once; any other value
 * (OUTBOUND_BAD_URL, OUTBOUND_BUSY, OUTBOUND_NO_MEMORY) means it was not, and cb is never called.
 */
enum outbound_rc outbound_post_json(struct outbound *ob, const char *url, const char *body,
                                    size_t len, outbound_cb cb, void *arg) OUTBOUND_WUR;

/* As outbound_post_json, with n_headers more request headers ("Name: value", copied; never
 * logged): the webhooks' signature headers. */
enum outbound_rc outbound_post_json_headers(struct outbound *ob, const char *url, const char *body,
                                            size_t len, const char *const *headers,
                                            size_t n_headers, outbound_cb cb,
                                            void *arg) OUTBOUND_WUR;

/* Calls in flight (running or waiting for a connection). */
int outbound_pending(const struct outbound *ob);

/* What may be logged of url: "host[:port]/path" into out (cap bytes, truncated, NUL-terminated),
 * or without with_path "host[:port]/..." ("host[:port]/" for the root); "(invalid URL)" when url
 * does not parse. Never the query, the fragment or any user info. */
const char *outbound_url_redacted(const char *url, bool with_path, char *out, size_t cap);

/* True for an address that is loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10,
 * fc00::/7, fec0::/10), link-local (169.254/16, fe80::/10), unspecified or "this network" (0/8,
 * ::), IETF-reserved (192.0.0/24), benchmarking (198.18/15), multicast or reserved (224/3,
 * ff00::/8), IPv4-compatible, -mapped or SIIT IPv6 (::/96, ::ffff:0:0/96, ::ffff:0:0:0/96),
 * Teredo (2001::/32), local-use NAT64 (64:ff9b:1::/48) or discard-only (100::/64), or NAT64
 * (64:ff9b::/96) or 6to4 (2002::/16) carrying an internal IPv4 address; false for any other, and
 * for a family other than AF_INET and AF_INET6. */
bool outbound_addr_internal(const struct sockaddr *sa);

/* "timeout", "connect", "tls", "too_large", ...: a stable name for logs and error codes. */
const char *outbound_rc_name(enum outbound_rc rc);

#endif
