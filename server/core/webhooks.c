/*
 * Webhooks (webhooks.h): the event types and their bodies, the outbox entries made in the
 * changes' transactions, the URL rule, the signature, and the deliverer: one poll at a time (a
 * pool job reads the due deliveries of the endpoints that are not busy and opens their secrets),
 * the loop posts each, and a pool job records each attempt; an endpoint stays busy from its
 * delivery's read to its record, so its next delivery is read only then and it sees its events
 * in order, while the other endpoints go on.
 */
#include "webhooks.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hex.h"
#include "log.h"
#include "outbound.h"
#include "store_webhook.h"

const char *const webhooks_types[] = {
    "key.imported",  "key.rotated",           "key.disabled",        "key.enabled",
    "key.destroyed", "key.used_by_other_app", "key.rotation_due",    "batch.finished",
    "batch.aborted", "batch.interrupted",     "audit.verify_failed", "audit.checkpoint",
    "token.created", "token.revoked",
};
const size_t webhooks_n_types = sizeof webhooks_types / sizeof webhooks_types[0];

bool webhooks_type_valid(const char *type)
{
    for (size_t i = 0; type != NULL && i < webhooks_n_types; i++)
        if (strcmp(type, webhooks_types[i]) == 0)
            return true;
    return false;
}

/* The event type of an audit event, or NULL. */
static const char *type_of(const char *action, const char *outcome)
{
    static const struct {
        const char *action, *outcome, *type;
    } map[] = {
        {"key.import", "ok", "key.imported"},
        {"key.import", "key_used_by_other_app", "key.used_by_other_app"},
        {"key.rotate", "ok", "key.rotated"},
        {"key.disable", "ok", "key.disabled"},
        {"key.enable", "ok", "key.enabled"},
        {"key.destroy", "ok", "key.destroyed"},
        {"usersig.batch.finish", "complete", "batch.finished"},
        {"usersig.batch.finish", "aborted", "batch.aborted"},
        {"usersig.batch.finish", "interrupted", "batch.interrupted"},
        {"token.create", "ok", "token.created"},
        {"token.revoke", "ok", "token.revoked"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].action, action) == 0 && strcmp(map[i].outcome, outcome) == 0)
            return map[i].type;
    return NULL;
}

static json_t *time_json(int64_t us)
{
    char buf[40];
    struct tm tm;
    time_t s = (time_t)(us / 1000000);
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06ldZ", (long)(us % 1000000));
    return json_string(buf);
}

static json_t *id_or_null(uint32_t v)
{
    return v != 0 ? json_integer(v) : json_null();
}

/* The body of an event, compact; a new string (caller free()s it) or NULL. details stolen. */
static char *body_of(const char *type, int64_t seq, int64_t at_us, uint32_t sdkappid,
                     uint32_t key_version, const char *actor, const char *outcome, json_t *details)
{
    json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:o}", "type", type, "audit_seq",
                          seq > 0 ? json_integer(seq) : json_null(), "at", time_json(at_us),
                          "sdkappid", id_or_null(sdkappid), "key_version", id_or_null(key_version),
                          "actor", actor != NULL ? actor : "", "outcome", outcome, "details",
                          details != NULL ? details : json_object());
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

enum store_rc webhooks_from_audit(struct store *st, const struct audit_event *ev)
{
    const char *type = type_of(ev->action, ev->outcome);
    if (type == NULL)
        return STORE_OK;
    json_t *details = json_loads(ev->details != NULL ? ev->details : "{}", 0, NULL);
    char *body = body_of(type, ev->seq, ev->at_us, ev->sdkappid, ev->key_version, ev->actor_name,
                         ev->outcome, details);
    if (body == NULL) {
        log_error("webhooks: out of memory");
        return STORE_ERROR;
    }
    enum store_rc rc = store_webhook_outbox(st, type, ev->sdkappid, body, NULL);
    free(body);
    return rc;
}

enum store_rc webhooks_emit(struct store *st, const char *type, uint32_t sdkappid,
                            uint32_t key_version, const char *actor, json_t *details)
{
    if (!webhooks_type_valid(type)) {
        json_decref(details);
        log_error("webhooks: no event type %s", type != NULL ? type : "(null)");
        return STORE_ERROR;
    }
    char *body = body_of(type, 0, clock_realtime_us(), sdkappid, key_version, actor, "ok", details);
    if (body == NULL) {
        log_error("webhooks: out of memory");
        return STORE_ERROR;
    }
    enum store_rc rc = store_webhook_outbox(st, type, sdkappid, body, NULL);
    free(body);
    return rc;
}

/* ---- URLs and signatures -------------------------------------------------------------------- */

/* True for "localhost" or a name under ".localhost" (a trailing dot already off). */
static bool host_is_localhost(const char *host, size_t n)
{
    return (n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
           (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0);
}

/* The host libcurl will connect to for url, as its URL API reads it (IPv4 in any spelling,
 * 2130706433, 127.1, 0x7f.0.0.1, made a dotted quad; percent-encoding decoded), judged: no zone
 * ID, no IP address with a trailing dot (the resolver would take it as the address), and unless
 * allow_insecure no internal address (outbound_addr_internal) or localhost name. The deliverer
 * checks the address again as it connects (refuse_internal), names included. */
static bool host_ok(const char *url, bool allow_insecure, char *why, size_t cap)
{
    CURLU *u = curl_url();
    char *host = NULL, *zone = NULL;
    bool ok = false;
    if (u == NULL) {
        snprintf(why, cap, "url: out of memory");
        return false;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        snprintf(why, cap, "url: not a URL (a host name or address, a port of 1 to 65535)");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
        snprintf(why, cap, "url: no zone ID (%%25...) in an IPv6 address");
        goto done;
    }
    size_t n = strlen(host);
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        n -= 2;
        memmove(host, host + 1, n);
        host[n] = '\0';
    }
    bool dot = n > 1 && host[n - 1] == '.';
    if (dot)
        host[--n] = '\0';
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    const struct sockaddr *sa = NULL;
    if (inet_aton(host, &a4.sin_addr) != 0) /* every IPv4 spelling the resolver takes */
        sa = (const struct sockaddr *)&a4;
    else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1)
        sa = (const struct sockaddr *)&a6;
    if (sa != NULL && dot) {
        snprintf(why, cap, "url: an IP address without a trailing dot");
        goto done;
    }
    if (!allow_insecure &&
        (host_is_localhost(host, n) || (sa != NULL && outbound_addr_internal(sa)))) {
        snprintf(why, cap,
                 "url: the host is loopback, private or link-local (only on a server with "
                 "webhook_allow_insecure_url, for tests)");
        goto done;
    }
    ok = true;
done:
    curl_free(host);
    curl_free(zone);
    curl_url_cleanup(u);
    return ok;
}

bool webhooks_url_ok(const char *url, bool allow_insecure, char *why, size_t cap)
{
    size_t n = url != NULL ? strlen(url) : 0;
    const char *rest;
    if (n < 8 || n > STORE_WEBHOOK_URL_MAX) {
        snprintf(why, cap, "url: 8 to %d bytes", STORE_WEBHOOK_URL_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (url[i] <= 0x20 || url[i] >= 0x7f) {
            snprintf(why, cap, "url: printable ASCII, no spaces (percent-encode the rest)");
            return false;
        }
    if (strncmp(url, "https://", 8) == 0) {
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0 && allow_insecure) {
        rest = url + 7;
    } else {
        snprintf(why, cap,
                 "url: https:// only (http:// only on a server with "
                 "webhook_allow_insecure_url, for tests)");
        return false;
    }
    size_t hl = strcspn(rest, "/?#");
    if (memchr(rest, '@', hl) != NULL || strchr(url, '#') != NULL) {
        snprintf(why, cap, "url: no user info (user@) and no fragment (#)");
        return false;
    }
    if (hl == 0 || hl > 255) {
        snprintf(why, cap, "url: a host of 1 to 255 bytes after the scheme");
        return false;
    }
    /* The host itself (brackets, port, an empty one) as libcurl reads it. */
    return host_ok(url, allow_insecure, why, cap);
}

int webhooks_sign(const uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES], int64_t ts, const char *body,
                  size_t len, char hex[WEBHOOKS_SIG_HEX + 1])
{
    char prefix[32];
    uint8_t mac[32];
    unsigned mac_len = 0;
    int n = snprintf(prefix, sizeof prefix, "%" PRId64 ".", ts);
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t out = 0;
    int rc = -1;
    if (c != NULL && EVP_MAC_init(c, secret, KEYRING_WEBHOOK_SECRET_BYTES, params) == 1 &&
        EVP_MAC_update(c, (const uint8_t *)prefix, (size_t)n) == 1 &&
        EVP_MAC_update(c, (const uint8_t *)body, len) == 1 &&
        EVP_MAC_final(c, mac, &out, sizeof mac) == 1 && out == sizeof mac) {
        hex_encode(mac, sizeof mac, hex);
        rc = 0;
    }
    (void)mac_len;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int64_t webhooks_retry_ms(int n, int max_attempts, int64_t min_ms, int64_t max_ms)
{
    if (n >= max_attempts)
        return -1;
    int64_t ms = min_ms;
    for (int i = 1; i < n && ms < max_ms; i++)
        ms *= 2;
    return ms < max_ms ? ms : max_ms;
}

/* ---- key versions past rotate_every --------------------------------------------------------- */

/* On the lease holder's pool thread every WEBHOOKS_ROTATION_CHECK_MS: each active version past
 * its app's rotate_every that was not reported yet gets its key.rotation_due event, recorded in
 * the same transaction as its notice, so it is reported once whatever the process. */
static void rotation_check(struct service *svc)
{
    struct store_key_schedule *v = NULL;
    size_t n = 0;
    int64_t now = clock_realtime_us();
    if (store_key_schedules(svc->st, 100000, &v, &n) != STORE_OK) {
        free(v);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].rotate_every == 0 || v[i].activated_at_us == 0)
            continue;
        int64_t due_us = v[i].activated_at_us + (int64_t)v[i].rotate_every * 1000000;
        if (now < due_us)
            continue;
        bool first = false;
        enum store_rc rc = store_begin(svc->st);
        if (rc == STORE_OK)
            rc = store_webhook_rotation_notice(svc->st, v[i].sdkappid, v[i].version, &first);
        if (rc == STORE_OK && first) {
            json_t *d = json_pack("{s:o, s:I, s:o}", "activated_at",
                                  time_json(v[i].activated_at_us), "rotate_every",
                                  (json_int_t)v[i].rotate_every, "due_at", time_json(due_us));
            rc = webhooks_emit(svc->st, "key.rotation_due", v[i].sdkappid, v[i].version, "usersigd",
                               d);
        }
        if (rc == STORE_OK)
            rc = store_commit(svc->st);
        if (rc != STORE_OK) {
            store_rollback(svc->st);
            log_error("webhooks: key %u/%u is past rotate_every but could not be reported; "
                      "tried again later",
                      v[i].sdkappid, v[i].version);
        }
    }
    free(v);
}

/* ---- the deliverer ------------------------------------------------------------------------- */

/* One delivery being sent, then recorded; its endpoint is busy until the record is written. */
struct send {
    struct webhooks *w;
    struct dbpool_job job; /* its record */
    struct store_webhook_due d;
    uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES];
    bool secret_ok;
    /* the attempt */
    int status;
    char error[STORE_WEBHOOK_ERROR_MAX + 1];
    int duration_ms;
    bool delivered;
    int64_t retry_ms;
};

struct webhooks {
    struct service *svc;
    struct event *timer; /* the tick, every WEBHOOKS_POLL_MS */
    struct event *kick;  /* a tick at once (made active: the timer's period stays as it is) */
    struct outbound *ob;
    struct dbpool_job poll;
    bool polling, stopping;
    char owner[48];
    /* endpoints with a delivery out (sent or being recorded): not read again until it ends */
    size_t n_busy;
    int64_t busy[WEBHOOKS_DUE_MAX];
    int64_t next_rotation_check_ms; /* the poll's (one at a time) */
    /* the poll's: what to leave out, and what it read */
    size_t n_skip;
    int64_t skip[WEBHOOKS_DUE_MAX];
    struct send **got;
    size_t n_got;
};

static void send_free(struct send *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s->secret, sizeof s->secret);
    free(s->d.body);
    free(s);
}

static void busy_drop(struct webhooks *w, int64_t id)
{
    for (size_t i = 0; i < w->n_busy; i++)
        if (w->busy[i] == id) {
            w->busy[i] = w->busy[--w->n_busy];
            return;
        }
}

/* Pool: the lease, the due deliveries of the endpoints not busy, their secrets opened. */
static void poll_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    struct webhooks *w = jobs->arg;
    struct store_webhook_due *due = NULL;
    size_t n = 0, room = WEBHOOKS_DUE_MAX - w->n_skip;
    bool held = false;
    (void)st;
    int64_t ttl = (svc->cfg != NULL ? svc->cfg->webhook_timeout_ms : 10000) + 15000;
    if (store_webhook_lease(svc->st, w->owner, ttl, &held) != STORE_OK || !held)
        return;
    int64_t mono_ms = clock_monotonic_ms();
    if (mono_ms >= w->next_rotation_check_ms) {
        rotation_check(svc);
        w->next_rotation_check_ms = mono_ms + WEBHOOKS_ROTATION_CHECK_MS;
    }
    if (room == 0)
        return;
    if (store_webhook_due(svc->st, w->skip, w->n_skip, room, &due, &n) != STORE_OK || n == 0) {
        store_webhook_due_free(due, n);
        return;
    }
    w->got = calloc(n, sizeof *w->got);
    for (size_t i = 0; w->got != NULL && i < n; i++) {
        struct send *s = calloc(1, sizeof *s);
        if (s == NULL)
            break;
        s->w = w;
        s->d = due[i];
        due[i].body = NULL; /* the send's now */
        s->secret_ok = keyring_webhook_secret_open(svc->kr, s->d.webhook_id, s->d.sealed,
                                                   sizeof s->d.sealed, s->secret) == KEYRING_OK;
        w->got[w->n_got++] = s;
    }
    if (w->n_got < n)
        log_error("webhooks: out of memory; %zu deliveries wait for the next tick", n - w->n_got);
    store_webhook_due_free(due, n);
}

static void record_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct send *s = j->arg;
        if (store_webhook_attempt(svc->st, s->d.delivery_id, s->duration_ms, s->status, s->error,
                                  s->delivered, s->retry_ms) != STORE_OK)
            log_error("webhooks: the attempt of delivery %" PRId64 " could not be recorded; it "
                      "is sent again",
                      s->d.delivery_id);
    }
}

static void record_done(struct dbpool_job *job)
{
    struct send *s = job->arg;
    struct webhooks *w = s->w;
    busy_drop(w, s->d.webhook_id);
    send_free(s);
    if (!w->stopping) /* the endpoint's next delivery may be due at once */
        event_active(w->kick, EV_TIMEOUT, 1);
}

/* The attempt of s ended (sent, or could not be): its record goes to the pool. */
static void attempt_ended(struct send *s)
{
    struct webhooks *w = s->w;
    if (w->stopping) { /* not recorded: the next deliverer sends it again */
        busy_drop(w, s->d.webhook_id);
        send_free(s);
        return;
    }
    const struct config *cfg = w->svc->cfg;
    int max = cfg != NULL ? cfg->webhook_max_attempts : 15;
    int64_t min_ms = cfg != NULL ? cfg->webhook_retry_min_ms : 1000;
    int64_t max_ms = cfg != NULL ? cfg->webhook_retry_max_ms : 600000;
    s->delivered = s->status >= 200 && s->status < 300;
    s->retry_ms = s->delivered ? 0 : webhooks_retry_ms(s->d.attempts + 1, max, min_ms, max_ms);
    if (!s->delivered)
        log_warn("webhooks: delivery %" PRId64 " (event %" PRId64 ", %s) to endpoint %" PRId64
                 ": attempt %d failed (%s)%s",
                 s->d.delivery_id, s->d.event_id, s->d.type, s->d.webhook_id, s->d.attempts + 1,
                 s->error, s->retry_ms < 0 ? "; no more attempts: failed" : "");
    s->job = (struct dbpool_job){.run = record_run, .done = record_done, .arg = s, .batch = 16};
    service_run(w->svc, &s->job);
}

static void sent(const struct outbound_result *r, void *arg)
{
    struct send *s = arg;
    s->duration_ms = (int)r->duration_ms;
    if (r->rc == OUTBOUND_OK) {
        s->status = (int)r->status;
        if (s->status < 200 || s->status >= 300)
            snprintf(s->error, sizeof s->error, "HTTP %d", s->status);
    } else {
        snprintf(s->error, sizeof s->error, "%s%s%s", outbound_rc_name(r->rc),
                 r->error[0] != '\0' ? ": " : "", r->error);
    }
    attempt_ended(s);
}

/* Starts the post of s; false when it could not start (s's error says why). */
static bool post(struct webhooks *w, struct send *s)
{
    char sig[WEBHOOKS_SIG_HEX + 1];
    char h_type[96], h_event[64], h_delivery[64], h_ts[64], h_sig[96];
    int64_t ts = (int64_t)time(NULL);
    size_t len = strlen(s->d.body);

    if (!s->secret_ok) {
        snprintf(s->error, sizeof s->error,
                 "the endpoint's secret does not open under this server's master key");
        return false;
    }
    if (webhooks_sign(s->secret, ts, s->d.body, len, sig) != 0) {
        snprintf(s->error, sizeof s->error, "the signature could not be made");
        return false;
    }
    snprintf(h_type, sizeof h_type, "Usersigd-Event: %s", s->d.type);
    snprintf(h_event, sizeof h_event, "Usersigd-Event-Id: %" PRId64, s->d.event_id);
    snprintf(h_delivery, sizeof h_delivery, "Usersigd-Delivery: %" PRId64, s->d.delivery_id);
    snprintf(h_ts, sizeof h_ts, "Usersigd-Timestamp: %" PRId64, ts);
    snprintf(h_sig, sizeof h_sig, "Usersigd-Signature: v1=%s", sig);
    const char *headers[] = {h_type, h_event, h_delivery,
                             h_ts,   h_sig,   "User-Agent: usersigd-webhook/1"};
    enum outbound_rc rc = outbound_post_json_headers(w->ob, s->d.url, s->d.body, len, headers,
                                                     sizeof headers / sizeof headers[0], sent, s);
    if (rc != OUTBOUND_OK) {
        snprintf(s->error, sizeof s->error, "%s", outbound_rc_name(rc));
        return false;
    }
    return true;
}

static void poll_done(struct dbpool_job *job)
{
    struct webhooks *w = job->arg;
    struct send **got = w->got;
    size_t n = w->n_got;
    w->got = NULL;
    w->n_got = 0;
    w->polling = false;
    for (size_t i = 0; i < n; i++) {
        struct send *s = got[i];
        if (job->cancelled || w->stopping || w->n_busy >= WEBHOOKS_DUE_MAX) {
            send_free(s); /* read again by the next poll, or the next deliverer */
            continue;
        }
        w->busy[w->n_busy++] = s->d.webhook_id;
        if (!post(w, s))
            attempt_ended(s);
    }
    free(got);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct webhooks *w = arg;
    (void)fd;
    (void)what;
    if (w->polling || w->stopping)
        return;
    /* Even with every slot busy the poll runs: it renews the lease. */
    w->polling = true;
    w->n_skip = w->n_busy;
    memcpy(w->skip, w->busy, w->n_busy * sizeof w->busy[0]);
    w->poll = (struct dbpool_job){.run = poll_run, .done = poll_done, .arg = w};
    service_run(w->svc, &w->poll);
}

int webhooks_new(struct event_base *base, struct service *svc, struct webhooks **out)
{
    char err[OUTBOUND_ERR_MAX];
    uint8_t rnd[8];
    struct webhooks *w = calloc(1, sizeof *w);
    *out = NULL;
    if (w == NULL || RAND_bytes(rnd, sizeof rnd) != 1) {
        free(w);
        log_error("webhooks: cannot start the deliverer");
        return -1;
    }
    w->svc = svc;
    char hexr[17];
    hex_encode(rnd, sizeof rnd, hexr);
    snprintf(w->owner, sizeof w->owner, "%ld-%s", (long)getpid(), hexr);
    struct outbound_options o;
    outbound_options_from_config(svc->cfg, &o);
    o.timeout_ms = svc->cfg->webhook_timeout_ms;
    if (o.connect_timeout_ms > o.timeout_ms)
        o.connect_timeout_ms = o.timeout_ms;
    o.allow_insecure = svc->cfg->webhook_allow_insecure_url;
    o.max_response = 64 * 1024; /* read and dropped: the status alone decides */
    o.discard_response = 1;
    o.hide_path = 1; /* a receiver's URL path may be its secret (https://hooks.example/T0/B0/XX) */
    o.refuse_internal = !svc->cfg->webhook_allow_insecure_url;
    o.max_transfers = WEBHOOKS_DUE_MAX; /* one endpoint's slow answer must not hold the others */
    w->ob = outbound_new(base, &o, err, sizeof err);
    w->timer = event_new(base, -1, EV_PERSIST, tick, w);
    w->kick = event_new(base, -1, 0, tick, w);
    struct timeval tv = {0, WEBHOOKS_POLL_MS * 1000};
    if (w->ob == NULL || w->timer == NULL || w->kick == NULL || event_add(w->timer, &tv) != 0) {
        log_error("webhooks: cannot start the deliverer: %s",
                  w->ob == NULL ? err : "out of memory");
        webhooks_stop(w);
        webhooks_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void webhooks_stop(struct webhooks *w)
{
    if (w == NULL)
        return;
    w->stopping = true;
    if (w->timer != NULL)
        event_del(w->timer);
    if (w->kick != NULL)
        event_del(w->kick);
    outbound_free(w->ob); /* each post's callback runs, cancelled: nothing is recorded */
    w->ob = NULL;
}

void webhooks_free(struct webhooks *w)
{
    if (w == NULL)
        return;
    if (w->timer != NULL)
        event_free(w->timer);
    if (w->kick != NULL)
        event_free(w->kick);
    for (size_t i = 0; i < w->n_got; i++)
        send_free(w->got[i]);
    free(w->got);
    free(w);
}
