/*
 * Outbound HTTPS on the event loop: libcurl's multi interface with its sockets and its timer
 * handed to libevent (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION, curl_multi_socket_action),
 * as libcurl's hiperfifo example does. Nothing here waits: name resolution runs on libcurl's
 * resolver thread, connections and TLS are events, completions are read after each action.
 */
#include "outbound.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "log.h"

struct outbound_call {
    struct outbound *ob;
    CURL *easy;
    struct curl_slist *headers;
    outbound_cb cb;
    void *arg;
    char *buf; /* the response body, NUL-terminated */
    size_t len, cap;
    size_t read; /* discard_response: the bytes read and dropped */
    int too_large;
    int discarded;                  /* discard_response: the bound was reached, the rest unread */
    char refused[INET6_ADDRSTRLEN]; /* refuse_internal: the last address not connected to */
    char msg[OUTBOUND_ERR_MAX];
    double started_ms;
    char where[256]; /* host and path, for the debug log */
    char errbuf[CURL_ERROR_SIZE];
    struct outbound_call *prev, *next;
};

struct outbound {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct outbound_options opt;
    char *ca_file; /* copies of opt's strings */
    char *proxy;
    int pending;
    struct outbound_call *calls; /* every call in flight */
};

/* The event that watches one socket for libcurl. */
struct outbound_sock {
    struct outbound *ob;
    curl_socket_t fd;
    struct event *ev;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *outbound_rc_name(enum outbound_rc rc)
{
    switch (rc) {
    case OUTBOUND_OK:
        return "ok";
    case OUTBOUND_TIMEOUT:
        return "timeout";
    case OUTBOUND_CONNECT:
        return "connect";
    case OUTBOUND_TLS:
        return "tls";
    case OUTBOUND_TOO_LARGE:
        return "too_large";
    case OUTBOUND_BAD_URL:
        return "bad_url";
    case OUTBOUND_BUSY:
        return "busy";
    case OUTBOUND_CANCELLED:
        return "cancelled";
    case OUTBOUND_NO_MEMORY:
        return "no_memory";
    case OUTBOUND_ERROR:
        break;
    }
    return "error";
}

const char *outbound_url_redacted(const char *url, bool with_path, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    snprintf(out, cap, "(invalid URL)");
    CURLU *u = curl_url();
    if (u == NULL)
        return out;
    char *host = NULL, *port = NULL, *path = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        /* Without the path, "/..." says there was one (it is not shown: it may be a secret). */
        const char *shown = with_path ? path : strcmp(path, "/") == 0 ? "/" : "/...";
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
            snprintf(out, cap, "%s:%s%s", host, port, shown);
        else
            snprintf(out, cap, "%s%s", host, shown);
    }
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return out;
}

/* IPv4 (host order): loopback, private, shared (100.64/10), link-local, "this network" (0/8),
 * IETF protocol assignments (192.0.0/24), benchmarking (198.18/15), multicast and reserved
 * (224/3, the broadcast address among them). */
static bool v4_internal(uint32_t v)
{
    return (v >> 24) == 127 || (v >> 24) == 10 || (v >> 24) == 0 || (v >> 16) == 0xa9fe ||
           (v >> 20) == 0xac1 || (v >> 16) == 0xc0a8 || (v >> 22) == (100u << 2 | 1u) ||
           (v >> 8) == 0xc00000 || (v >> 17) == (0xc612u >> 1) || (v >> 29) == 7;
}

static uint32_t be32_at(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

bool outbound_addr_internal(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_internal(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    static const uint8_t zero[16];
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b}; /* 64:ff9b::/96 */
    /* ::/96 (unspecified, loopback, IPv4-compatible) and ::ffff:0:0/96 (IPv4-mapped), and
     * ::ffff:0:0:0/96 (SIIT): the address is an IPv4 one, or none. */
    if (memcmp(b, zero, 10) == 0 &&
        ((b[10] == 0 && b[11] == 0) || (b[10] == 0xff && b[11] == 0xff)))
        return true;
    if (memcmp(b, zero, 8) == 0 && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0)
        return true;
    /* NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry. */
    if (memcmp(b, nat64, 12) == 0)
        return v4_internal(be32_at(b + 12));
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_internal(be32_at(b + 2));
    return (b[0] & 0xfe) == 0xfc ||                                 /* unique local fc00::/7 */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||               /* link-local fe80::/10 */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||               /* site-local fec0::/10 */
           b[0] == 0xff ||                                          /* multicast ff00::/8 */
           (be32_at(b) == 0x0064ff9bu && b[4] == 0 && b[5] == 1) || /* NAT64 local 64:ff9b:1::/48 */
           be32_at(b) == 0x20010000u ||                             /* Teredo 2001::/32 */
           (be32_at(b) == 0x01000000u && be32_at(b + 4) == 0);      /* discard-only 100::/64 */
}

/* CURLOPT_OPENSOCKETFUNCTION with refuse_internal: the check on the address libcurl is about to
 * connect to, after name resolution, so no spelling of a URL and no name gets past it. A refused
 * address fails as a connect would: libcurl tries the name's next address, if any. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct outbound_call *c = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (outbound_addr_internal(&a->addr)) {
        const void *in = a->family == AF_INET
                             ? (const void *)&((struct sockaddr_in *)(void *)&a->addr)->sin_addr
                             : (const void *)&((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr;
        if (inet_ntop(a->family, in, c->refused, sizeof c->refused) == NULL)
            snprintf(c->refused, sizeof c->refused, "?");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The class of a libcurl failure. */
static enum outbound_rc classify(CURLcode c, int too_large)
{
    if (too_large || c == CURLE_FILESIZE_EXCEEDED)
        return OUTBOUND_TOO_LARGE;
    switch (c) {
    case CURLE_OK:
        return OUTBOUND_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return OUTBOUND_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return OUTBOUND_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return OUTBOUND_TLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return OUTBOUND_BAD_URL;
    case CURLE_OUT_OF_MEMORY:
        return OUTBOUND_NO_MEMORY;
    default:
        return OUTBOUND_ERROR;
    }
}

static void call_unlink(struct outbound_call *c)
{
    struct outbound *ob = c->ob;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        ob->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    ob->pending--;
}

static void call_free(struct outbound_call *c)
{
    if (c == NULL)
        return;
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->buf);
    free(c);
}

/* Completes c (already removed from the multi handle and the list) and frees it. */
static void call_finish(struct outbound_call *c, CURLcode code, enum outbound_rc forced)
{
    struct outbound_result r = {0};
    if (c->discarded && code == CURLE_WRITE_ERROR)
        code = CURLE_OK; /* the body was not wanted: the status is the answer */
    r.rc = forced != OUTBOUND_OK ? forced : classify(code, c->too_large);
    r.duration_ms = clock_monotonic_msf() - c->started_ms;
    r.body = "";
    r.error = "";
    if (r.rc == OUTBOUND_OK) {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = c->buf != NULL ? c->buf : "";
        r.body_len = c->len;
    } else if (r.rc == OUTBOUND_TOO_LARGE) {
        r.error = "the response is larger than the limit";
    } else if (r.rc == OUTBOUND_CANCELLED) {
        r.error = "cancelled: the client is shutting down";
    } else if (c->refused[0] != '\0' && code == CURLE_COULDNT_CONNECT) {
        /* Only when no address was connected to: a failure after a public address of the
         * same name connected is that failure's. */
        snprintf(c->msg, sizeof c->msg,
                 "the address %s is internal (loopback, private or link-local): not connected to",
                 c->refused);
        r.error = c->msg;
    } else {
        /* libcurl's message names the host at most; a message that quotes a query is not used. */
        r.error = curl_easy_strerror(code);
        if (c->errbuf[0] != '\0' && strchr(c->errbuf, '?') == NULL &&
            strstr(c->errbuf, "usersig") == NULL)
            r.error = c->errbuf;
    }
    log_debug("outbound POST %s: %s %ld (%.1f ms)", c->where, outbound_rc_name(r.rc), r.status,
              r.duration_ms);
    c->cb(&r, c->arg);
    call_free(c);
}

/* Reads libcurl's finished transfers and completes them. */
static void check_done(struct outbound *ob)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(ob->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode code = m->data.result;
        struct outbound_call *c = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
        curl_multi_remove_handle(ob->multi, easy);
        call_unlink(c);
        call_finish(c, code, OUTBOUND_OK);
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct outbound *ob = arg;
    int flags = 0, running;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(ob->multi, fd, flags, &running);
    check_done(ob);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct outbound *ob = arg;
    int running;
    curl_multi_socket_action(ob->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(ob);
}

/* CURLMOPT_TIMERFUNCTION: libcurl's one timeout, as a libevent timer (never acted on inline). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct outbound *ob = userp;
    if (timeout_ms < 0) {
        evtimer_del(ob->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(ob->timer, &tv) == 0 ? 0 : -1;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching a socket. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct outbound *ob = userp;
    struct outbound_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(ob->multi, fd, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        s->ob = ob;
        s->fd = fd;
        if (curl_multi_assign(ob->multi, fd, s) != CURLM_OK) {
            free(s);
            return -1;
        }
    } else {
        event_free(s->ev);
        s->ev = NULL;
    }
    s->ev = event_new(ob->base, fd, kind, on_socket_event, ob);
    if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
        if (s->ev != NULL)
            event_free(s->ev);
        curl_multi_assign(ob->multi, fd, NULL);
        free(s);
        return -1;
    }
    return 0;
}

/* CURLOPT_WRITEFUNCTION: the body, bounded; past the bound the transfer stops. With
 * discard_response the bytes are counted, not kept, and the bound ends the transfer as done. */
static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
    struct outbound_call *c = userp;
    size_t add = size * n;
    size_t max = c->ob->opt.max_response;
    if (c->ob->opt.discard_response) {
        if (add > max - c->read) {
            c->discarded = 1;
            return 0;
        }
        c->read += add;
        return add;
    }
    if (add > max - c->len) {
        c->too_large = 1;
        return 0;
    }
    if (c->len + add + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + add + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *b = realloc(c->buf, cap);
        if (b == NULL)
            return 0;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, add);
    c->len += add;
    c->buf[c->len] = '\0';
    return add;
}

void outbound_options_from_config(const struct config *cfg, struct outbound_options *o)
{
    memset(o, 0, sizeof *o);
    o->ca_file = cfg->tencent_ca_file[0] != '\0' ? cfg->tencent_ca_file : NULL;
    o->connect_timeout_ms = cfg->tencent_connect_timeout_ms;
    o->timeout_ms = cfg->tencent_timeout_ms;
    o->allow_insecure = cfg->tencent_allow_insecure_base_url;
}

struct outbound *outbound_new(struct event_base *base, const struct outbound_options *opt,
                              char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        log_errbuf(err, errlen, "libcurl did not initialise: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    /* A libcurl that resolves names synchronously would stop the loop on every lookup. */
    if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS)) {
        log_errbuf(err, errlen,
                   "this libcurl resolves host names synchronously (no threaded resolver or "
                   "c-ares): it would block the event loop");
        return NULL;
    }
    struct outbound *ob = calloc(1, sizeof *ob);
    if (ob == NULL) {
        log_errbuf(err, errlen, "out of memory");
        return NULL;
    }
    ob->base = base;
    ob->opt = *opt;
    ob->opt.ca_file = NULL;
    ob->opt.proxy = NULL;
    if (ob->opt.connect_timeout_ms <= 0)
        ob->opt.connect_timeout_ms = 5000;
    if (ob->opt.timeout_ms <= 0)
        ob->opt.timeout_ms = 10000;
    if (ob->opt.max_transfers <= 0)
        ob->opt.max_transfers = 8;
    if (ob->opt.max_pending <= 0)
        ob->opt.max_pending = 64 * ob->opt.max_transfers;
    if (ob->opt.max_response == 0)
        ob->opt.max_response = OUTBOUND_DEFAULT_MAX_RESPONSE;
    if (ob->opt.max_response > OUTBOUND_MAX_MAX_RESPONSE)
        ob->opt.max_response = OUTBOUND_MAX_MAX_RESPONSE;
    if ((opt->ca_file != NULL && opt->ca_file[0] != '\0' &&
         (ob->ca_file = strdup(opt->ca_file)) == NULL) ||
        (opt->proxy != NULL && (ob->proxy = strdup(opt->proxy)) == NULL)) {
        log_errbuf(err, errlen, "out of memory");
        goto fail;
    }
    ob->multi = curl_multi_init();
    ob->timer = evtimer_new(base, on_timer, ob);
    if (ob->multi == NULL || ob->timer == NULL) {
        log_errbuf(err, errlen, "out of memory (libcurl multi handle or timer)");
        goto fail;
    }
    if (curl_multi_setopt(ob->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(ob->multi, CURLMOPT_SOCKETDATA, ob) != CURLM_OK ||
        curl_multi_setopt(ob->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(ob->multi, CURLMOPT_TIMERDATA, ob) != CURLM_OK ||
        curl_multi_setopt(ob->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)ob->opt.max_transfers) !=
            CURLM_OK) {
        log_errbuf(err, errlen, "libcurl refused the multi handle's options");
        goto fail;
    }
    return ob;
fail:
    outbound_free(ob);
    return NULL;
}

void outbound_free(struct outbound *ob)
{
    if (ob == NULL)
        return;
    while (ob->calls != NULL) {
        struct outbound_call *c = ob->calls;
        curl_multi_remove_handle(ob->multi, c->easy);
        call_unlink(c);
        call_finish(c, CURLE_OK, OUTBOUND_CANCELLED);
    }
    if (ob->multi != NULL)
        curl_multi_cleanup(ob->multi); /* removes the socket events through socket_cb */
    if (ob->timer != NULL)
        event_free(ob->timer);
    free(ob->ca_file);
    free(ob->proxy);
    free(ob);
}

int outbound_pending(const struct outbound *ob)
{
    return ob->pending;
}

/* Sets every option of one call; 0, or -1 when libcurl refuses one. */
static int call_setopts(struct outbound *ob, struct outbound_call *c, const char *url,
                        const char *body, size_t len)
{
    CURL *e = c->easy;
    const char *protocols = ob->opt.allow_insecure ? "http,https" : "https";
    int bad = 0;
#define SET(opt, val) bad |= curl_easy_setopt(e, opt, val) != CURLE_OK
    SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    SET(CURLOPT_PROTOCOLS_STR, protocols);
    SET(CURLOPT_REDIR_PROTOCOLS_STR, protocols);
#else
    long mask = ob->opt.allow_insecure ? (CURLPROTO_HTTP | CURLPROTO_HTTPS) : CURLPROTO_HTTPS;
    SET(CURLOPT_PROTOCOLS, mask);
    SET(CURLOPT_REDIR_PROTOCOLS, mask);
    (void)protocols;
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (ob->ca_file != NULL)
        SET(CURLOPT_CAINFO, ob->ca_file);
    /* "" turns off every proxy, the environment's included. */
    SET(CURLOPT_PROXY, ob->proxy != NULL ? ob->proxy : "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)ob->opt.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)ob->opt.timeout_ms);
    if (!ob->opt.discard_response) /* else a large Content-Length would end it unanswered */
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ob->opt.max_response);
    if (ob->opt.refuse_internal) {
        SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
        SET(CURLOPT_OPENSOCKETDATA, c);
    }
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    SET(CURLOPT_COPYPOSTFIELDS, body);
    SET(CURLOPT_HTTPHEADER, c->headers);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_PRIVATE, (char *)c);
    SET(CURLOPT_USERAGENT, "usersigd");
#undef SET
    return bad ? -1 : 0;
}

enum outbound_rc outbound_post_json(struct outbound *ob, const char *url, const char *body,
                                    size_t len, outbound_cb cb, void *arg)
{
    return outbound_post_json_headers(ob, url, body, len, NULL, 0, cb, arg);
}

enum outbound_rc outbound_post_json_headers(struct outbound *ob, const char *url, const char *body,
                                            size_t len, const char *const *headers,
                                            size_t n_headers, outbound_cb cb, void *arg)
{
    if (ob->pending >= ob->opt.max_pending)
        return OUTBOUND_BUSY;
    size_t ulen = strlen(url);
    int https = ulen > 8 && strncmp(url, "https://", 8) == 0;
    int plain = ulen > 7 && strncmp(url, "http://", 7) == 0;
    if (!https && !(plain && ob->opt.allow_insecure))
        return OUTBOUND_BAD_URL;
    struct outbound_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return OUTBOUND_NO_MEMORY;
    c->ob = ob;
    c->cb = cb;
    c->arg = arg;
    c->started_ms = clock_monotonic_msf();
    outbound_url_redacted(url, !ob->opt.hide_path, c->where, sizeof c->where);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h != NULL)
        c->headers = h;
    if (h == NULL || (h = curl_slist_append(c->headers, "Expect:")) == NULL) {
        call_free(c);
        return OUTBOUND_NO_MEMORY;
    }
    for (size_t i = 0; i < n_headers; i++)
        if (curl_slist_append(c->headers, headers[i]) == NULL) {
            call_free(c);
            return OUTBOUND_NO_MEMORY;
        }
    c->easy = curl_easy_init();
    if (c->easy == NULL || call_setopts(ob, c, url, body != NULL ? body : "", len) != 0) {
        call_free(c);
        return OUTBOUND_NO_MEMORY;
    }
    if (curl_multi_add_handle(ob->multi, c->easy) != CURLM_OK) {
        call_free(c);
        return OUTBOUND_NO_MEMORY;
    }
    c->next = ob->calls;
    if (ob->calls != NULL)
        ob->calls->prev = c;
    ob->calls = c;
    ob->pending++;
    return OUTBOUND_OK;
}
