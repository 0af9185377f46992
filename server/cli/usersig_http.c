/*
 * The HTTP/1.1 transport of `usersig batch` (usersig_http.h): the server address, and one
 * request at a time through libcurl's multi interface, so that the batch hears each wait (it
 * flushes stdout and redraws its progress there). The answer's head and body go to the user's
 * hooks as they arrive; errors are reported through them, in words for the person running the
 * command, TLS failures naming what is wrong with the certificate. No secret is ever printed:
 * libcurl's own messages name hosts and certificates, never headers.
 */
#include "usersig_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NET_BUF 262144            /* libcurl's receive buffer: the most a body hook gets at once */
#define UPLOAD_BUF 262144         /* a streamed body's chunks: at most this much a send call */
#define EXPECT_WAIT_MS 10000L     /* a streamed body waits this long for 100 Continue */
#define CONNECT_TIMEOUT_MS 10000L /* TCP connect and TLS handshake */
#define STALL_TIMEOUT_S 300L      /* no byte either way for this long: give up */
#define MAX_URL 2048

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
    *why = "--server must be http://HOST[:PORT][/PREFIX] or https://HOST[:PORT][/PREFIX]";
    if (strncasecmp(s, "https://", 8) == 0)
        u->tls = 1;
    else if (strncasecmp(s, "http://", 7) != 0)
        return -1;
    const char *a = s + (u->tls ? 8 : 7), *path = a + strcspn(a, "/?#");
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
            *why = "--server: write an IPv6 address in brackets, as https://[::1]:8443";
            return -1;
        }
        hlen = colon != NULL ? (size_t)(colon - host) : strlen(host);
        port = colon != NULL ? colon + 1 : NULL;
    }
    if (hlen == 0 || hlen >= sizeof u->host)
        return -1;
    memcpy(u->host, host, hlen);
    snprintf(u->host_shown, sizeof u->host_shown, strchr(u->host, ':') != NULL ? "[%s]" : "%s",
             u->host);
    uint64_t p = u->tls ? 443 : 80;
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

int usersig_http_check_ca_file(const char *path, const char **why)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *why = "cannot open the file given with --ca-file";
        return -1;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        *why = "the file given with --ca-file holds no PEM certificate";
        return -1;
    }
    X509_free(x);
    return 0;
}

/* ---- the client ---------------------------------------------------------------------------- */

struct usersig_http_conn {
    const struct usersig_http_url *url;
    const char *ca_file;
    struct usersig_http_hooks hooks;
    CURL *easy;
    CURLM *multi;
    char errbuf[CURL_ERROR_SIZE];
    size_t body_len;
    int streaming;                     /* the body comes from hooks.send, chunked */
    int send_paused;                   /* hooks.send had nothing: the sending waits */
    int send_done;                     /* hooks.send said the body ended */
    struct usersig_http_answer answer; /* the head being read */
    int head_done;                     /* the final answer's head went to the hooks */
    int fresh;                         /* body bytes since the last wait */
    int stopped;                       /* the body hook had enough */
    int failed;                        /* a hook gave up (and said why) */
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

static int curl_ready; /* curl_global_init done */

struct usersig_http_conn *usersig_http_new(const struct usersig_http_url *url, const char *ca_file,
                                           const struct usersig_http_hooks *hooks)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "usersig: cannot set up libcurl\n");
            return NULL;
        }
        curl_ready = 1;
    }
    struct usersig_http_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->url = url;
    c->ca_file = ca_file;
    c->hooks = *hooks;
    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (c->easy == NULL || c->multi == NULL) {
        usersig_http_free(c);
        return NULL;
    }
    return c;
}

void usersig_http_free(struct usersig_http_conn *c)
{
    if (c == NULL)
        return;
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    free(c);
    if (curl_ready) {
        curl_global_cleanup();
        curl_ready = 0;
    }
}

/* libcurl's CURLOPT_HEADERFUNCTION: one line of a head (CR LF included), status lines too. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct usersig_http_conn *c = arg;
    struct usersig_http_answer *a = &c->answer;
    size_t len = size * n, end = len;
    while (end > 0 && (p[end - 1] == '\n' || p[end - 1] == '\r'))
        end--;
    if (c->head_done)
        return len;                               /* trailers */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a status line: a new head */
        memset(a, 0, sizeof *a);
        a->retry_after = -1;
        const char *sp = memchr(p, ' ', end);
        if (sp != NULL && (size_t)(p + end - sp) >= 4) {
            a->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
            const char *r = sp + 4 + (sp + 4 < p + end && sp[4] == ' ');
            usersig_http_clean_copy(a->reason, sizeof a->reason, r, (size_t)(p + end - r));
        }
        return len;
    }
    if (end == 0) { /* the head's end */
        if (a->status >= 100 && a->status < 200)
            return len; /* 100 Continue: the real answer follows */
        c->head_done = 1;
        if (c->hooks.head(c->hooks.arg, a) != 0) {
            c->failed = 1;
            return 0;
        }
        return len;
    }
    static const char ra[] = "retry-after:";
    if (end > sizeof ra - 1 && strncasecmp(p, ra, sizeof ra - 1) == 0) {
        const char *v = p + sizeof ra - 1;
        char num[16];
        uint64_t secs;
        while (v < p + end && (*v == ' ' || *v == '\t'))
            v++;
        size_t vn = (size_t)(p + end - v);
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (vn > 0 && vn < sizeof num) { /* delay-seconds; an HTTP date is not read */
            memcpy(num, v, vn);
            num[vn] = '\0';
            if (usersig_http_parse_u64(num, 86400, &secs) == 0)
                a->retry_after = (int)secs;
        }
        return len;
    }
    static const char rid[] = "x-request-id:";
    if (end > sizeof rid - 1 && strncasecmp(p, rid, sizeof rid - 1) == 0) {
        const char *v = p + sizeof rid - 1;
        while (v < p + end && (*v == ' ' || *v == '\t'))
            v++;
        usersig_http_clean_copy(a->request_id, sizeof a->request_id, v, (size_t)(p + end - v));
    }
    return len;
}

/* libcurl's CURLOPT_WRITEFUNCTION: the body, chunked framing undone, as it arrives. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct usersig_http_conn *c = arg;
    size_t len = size * n;
    if (!c->head_done || len == 0)
        return len;
    c->fresh = 1;
    int rc = c->hooks.body(c->hooks.arg, p, len);
    if (rc == 0)
        return len;
    if (rc > 0)
        c->stopped = 1;
    else
        c->failed = 1;
    return 0; /* libcurl stops: CURLE_WRITE_ERROR */
}

/* libcurl's CURLOPT_READFUNCTION for a streamed body: the hooks' send, a pause when it has
 * nothing yet (drive() goes on once send_ready says so). */
static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct usersig_http_conn *c = arg;
    if (c->send_done)
        return 0;
    long k = c->hooks.send(c->hooks.arg, buf, size * n);
    if (k == USERSIG_HTTP_SEND_WAIT) {
        c->send_paused = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (k < 0) {
        c->failed = 1;
        return CURL_READFUNC_ABORT;
    }
    if (k == 0)
        c->send_done = 1;
    return (size_t)k;
}

/* A certificate libcurl refused: what is wrong with it, in words. */
static void say_tls_verify(struct usersig_http_conn *c, const char *detail)
{
    long vr = X509_V_OK;
    if (curl_easy_getinfo(c->easy, CURLINFO_SSL_VERIFYRESULT, &vr) != CURLE_OK)
        vr = X509_V_OK;
    const char *h = c->url->host_shown, *p = c->url->port;
    const char *trust = c->ca_file != NULL ? "the CA of the file given with --ca-file"
                                           : "a CA of the system's store (give the server's CA "
                                             "with --ca-file)";
    /* libcurl checks the name itself, after OpenSSL's chain check: its verdict is then OK or
     * "unspecified", and its message says what did not match. */
    if (vr == X509_V_OK || vr == X509_V_ERR_HOSTNAME_MISMATCH ||
        vr == X509_V_ERR_IP_ADDRESS_MISMATCH ||
        (vr == X509_V_ERR_UNSPECIFIED && strstr(detail, "match") != NULL)) {
        say(c,
            "TLS: the certificate of %s:%s is not for the name %s (name mismatch: %s); "
            "nothing was sent",
            h, p, h, detail);
        return;
    }
    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        say(c,
            "TLS: the certificate of %s:%s has expired (or this machine's clock is wrong); "
            "nothing was sent",
            h, p);
        return;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        say(c,
            "TLS: the certificate of %s:%s is not valid yet (or this machine's clock is "
            "wrong); nothing was sent",
            h, p);
        return;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        say(c,
            "TLS: the certificate of %s:%s is not trusted: it is not signed by %s (%s); "
            "nothing was sent",
            h, p, trust, X509_verify_cert_error_string(vr));
        return;
    default:
        say(c, "TLS: the certificate of %s:%s is refused: %s (%s); nothing was sent", h, p,
            X509_verify_cert_error_string(vr), detail);
    }
}

/* A request smaller than this that the server cut while it was sent was not cut for its
 * size (no server limits a request to less): its message gives no --max-request-bytes hint. */
#define SIZE_HINT_MIN (64 * 1024)

/* A transfer that ended with rc: why, in words (the hooks have not said it). */
static void say_error(struct usersig_http_conn *c, CURLcode rc)
{
    char detail[CURL_ERROR_SIZE];
    const char *d = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
    usersig_http_clean_copy(detail, sizeof detail, d, strlen(d));
    const char *h = c->url->host_shown, *p = c->url->port;
    curl_off_t up = 0, pre = 0;
    long oserr = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_SIZE_UPLOAD_T, &up) != CURLE_OK)
        up = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_PRETRANSFER_TIME_T, &pre) != CURLE_OK)
        pre = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &oserr) != CURLE_OK)
        oserr = 0;
    int sending =
        !c->head_done && (c->streaming ? !c->send_done : (uint64_t)up < (uint64_t)c->body_len);
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        say(c, "cannot resolve %s: %s", h, detail);
        break;
    case CURLE_COULDNT_CONNECT:
        say(c, "cannot connect to %s:%s: %s", h, p, oserr != 0 ? strerror((int)oserr) : detail);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (pre == 0)
            say(c, "cannot connect to %s:%s: no connection%s within %ld seconds", h, p,
                c->url->tls ? " and TLS handshake" : "", CONNECT_TIMEOUT_MS / 1000);
        else
            say(c, "no answer from %s:%s for %ld seconds; giving up", h, p, STALL_TIMEOUT_S);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        say_tls_verify(c, detail);
        break;
    case CURLE_SSL_CACERT_BADFILE:
        say(c, "TLS: cannot use the file given with --ca-file as a CA bundle; nothing was sent");
        break;
    case CURLE_SSL_CONNECT_ERROR:
        say(c, "TLS: the handshake with %s:%s failed (%s); nothing was sent", h, p, detail);
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        if (sending && (c->streaming ? (uint64_t)up : (uint64_t)c->body_len) < SIZE_HINT_MIN)
            say(c, "the server closed the connection while the request was being sent (%s)",
                detail); /* too little for a size limit: no hint that would mislead */
        else if (sending && c->streaming)
            say(c,
                "the server closed the connection while the request was being sent (%s): a "
                "server that limits a request's size can end that way; try "
                "--max-request-bytes 32M",
                detail);
        else if (sending)
            say(c,
                "the server closed the connection while the request was being sent (%s): a "
                "body over its limit can end that way; try a smaller --max-request-bytes",
                detail);
        else
            say(c, "the server closed the connection in the middle of its answer (%s)", detail);
        break;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
        say(c, "%s:%s did not answer in HTTP/1.1 (%s)", h, p, detail);
        break;
    case CURLE_OUT_OF_MEMORY:
        say(c, "out of memory");
        break;
    default:
        say(c, "%s:%s: %s", h, p, detail);
    }
}

/* The options every request has. Returns 0, or -1 (said). */
static int set_options(struct usersig_http_conn *c, const char *url, struct curl_slist *headers,
                       const char *body, size_t body_len)
{
    CURL *e = c->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, ""); /* never a proxy from the environment: the token goes to --server */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
    SET(CURLOPT_BUFFERSIZE, (long)NET_BUF);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file != NULL) { /* that bundle only, not the system's store beside it */
        SET(CURLOPT_CAINFO, c->ca_file);
        SET(CURLOPT_CAPATH, (char *)NULL);
    }
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_POST, 1L);
    if (c->streaming) { /* chunked, from on_read, once the server said 100 Continue */
        SET(CURLOPT_READFUNCTION, on_read);
        SET(CURLOPT_READDATA, c);
        SET(CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUF);
        SET(CURLOPT_EXPECT_100_TIMEOUT_MS, EXPECT_WAIT_MS);
    } else {
        SET(CURLOPT_POSTFIELDS, body);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, c);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, c);
#undef SET
    if (rc != CURLE_OK) {
        say(c, "cannot set up libcurl: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

/* Drives the transfer to its end, the waiting hook before each wait. Returns 0, or -1. */
static int drive(struct usersig_http_conn *c)
{
    int running = 1;
    CURLMcode mc;
    CURLcode rc = CURLE_OK;
    for (;;) {
        mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK)
            break;
        if (c->failed)
            return -1;
        if (running == 0)
            break;
        int fresh = c->fresh;
        c->fresh = 0;
        if (c->hooks.waiting != NULL && c->hooks.waiting(c->hooks.arg, fresh) != 0)
            return -1;
        struct curl_waitfd extra = {.fd = -1, .events = CURL_WAIT_POLLIN};
        if (c->send_paused) {
            int ready = c->hooks.send_ready(c->hooks.arg, &extra.fd);
            if (ready) { /* libcurl may call on_read from here, which may pause again */
                c->send_paused = 0;
                extra.fd = -1;
                if (curl_easy_pause(c->easy, CURLPAUSE_CONT) != CURLE_OK) {
                    say(c, "libcurl: cannot resume the sending");
                    return -1;
                }
                if (c->failed)
                    return -1;
                continue;
            }
        }
        /* Waiting on the input (extra) as well: a short wait, so that the answer's progress,
         * which may also end the pause, is seen soon. */
        mc = curl_multi_poll(c->multi, extra.fd >= 0 ? &extra : NULL, extra.fd >= 0 ? 1 : 0,
                             c->send_paused ? 100 : 1000, NULL);
        if (mc != CURLM_OK)
            break;
    }
    if (mc != CURLM_OK) {
        say(c, "libcurl: %s", curl_multi_strerror(mc));
        return -1;
    }
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE && m->easy_handle == c->easy)
            rc = m->data.result;
    if (c->failed)
        return -1;
    if (rc == CURLE_WRITE_ERROR && c->stopped)
        return 0;
    /* A server that refuses a request may answer before it has read the body and close: the
     * sending then fails, but its answer (or what came of it) is what counts. */
    if (c->head_done && c->answer.status >= 300 &&
        (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_PARTIAL_FILE))
        return 0;
    if (rc != CURLE_OK) {
        say_error(c, rc);
        return -1;
    }
    if (!c->head_done) {
        say(c, "%s:%s sent no answer", c->url->host_shown, c->url->port);
        return -1;
    }
    return 0;
}

static int post(struct usersig_http_conn *c, const char *path_query, const char *const *headers,
                size_t nheaders, const char *body, size_t body_len, int streaming)
{
    char url[MAX_URL];
    struct curl_slist *list = NULL;
    int rc = -1, added = 0;
    int n = snprintf(url, sizeof url, "%s://%s%s%s", c->url->tls ? "https" : "http",
                     c->url->authority, c->url->prefix, path_query);
    if (n < 0 || (size_t)n >= sizeof url) {
        say(c, "the request's URL is longer than %d bytes", MAX_URL);
        return -1;
    }
    /* A whole body follows the head at once ("Expect:", none); a streamed one waits for the
     * server's 100 Continue, so that a refusal (a 429 too_many_batches) comes before any of
     * the input is taken. */
    static const char *const extra[] = {"Expect:", "Transfer-Encoding: chunked",
                                        "Expect: 100-continue"};
    size_t nextra = streaming ? 2 : 1;
    const char *const *ex = streaming ? extra + 1 : extra;
    for (size_t i = 0; i < nheaders + nextra; i++) {
        struct curl_slist *t =
            curl_slist_append(list, i < nheaders ? headers[i] : ex[i - nheaders]);
        if (t == NULL) {
            say(c, "out of memory");
            goto done;
        }
        list = t;
    }
    c->errbuf[0] = '\0';
    c->body_len = body_len;
    c->streaming = streaming;
    c->send_paused = c->send_done = 0;
    memset(&c->answer, 0, sizeof c->answer);
    c->answer.retry_after = -1;
    c->head_done = c->fresh = c->stopped = c->failed = 0;
    curl_easy_reset(c->easy);
    if (set_options(c, url, list, body, body_len) != 0)
        goto done;
    CURLMcode mc = curl_multi_add_handle(c->multi, c->easy);
    if (mc != CURLM_OK) {
        say(c, "libcurl: %s", curl_multi_strerror(mc));
        goto done;
    }
    added = 1;
    rc = drive(c);
done:
    if (added)
        curl_multi_remove_handle(c->multi, c->easy);
    for (struct curl_slist *t = list; t != NULL; t = t->next)
        OPENSSL_cleanse(t->data, strlen(t->data)); /* the token's header */
    curl_slist_free_all(list);
    return rc;
}

int usersig_http_post(struct usersig_http_conn *c, const char *path_query,
                      const char *const *headers, size_t nheaders, const char *body,
                      size_t body_len)
{
    return post(c, path_query, headers, nheaders, body, body_len, 0);
}

int usersig_http_post_stream(struct usersig_http_conn *c, const char *path_query,
                             const char *const *headers, size_t nheaders)
{
    if (c->hooks.send == NULL || c->hooks.send_ready == NULL) {
        say(c, "a streamed request without a body source");
        return -1;
    }
    return post(c, path_query, headers, nheaders, NULL, 0, 1);
}
