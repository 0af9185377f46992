/*
 * The REST gateway's operation (gateway.h): the tim client of the process, its signer (the core's
 * sign.c, as the server itself), and one call's stages: the app's entry (cache, else a database
 * thread), the call through tim, the audit event on a database thread, then done.
 */
#include "gateway.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "decimal.h"
#include "hex.h"
#include "keyring.h"
#include "log.h"
#include "sign.h"

#define GATEWAY_AUDIT_BATCH 32 /* audit events of calls ended together, one transaction */
#define MAX_WAIT_MS 2000       /* a call waits this long at most for its app's turn */
#define FORGET_MAX 16          /* apps to forget between two turns of the loop; more: all */
#define TOLD_MAX 16            /* holds told between two turns of the loop; more are dropped */

struct gateway {
    struct event_base *base;
    struct service *svc; /* the loop's */
    struct tim *tim;
    /* Apps the cache evicted (any thread), whose admin UserSigs the loop drops (on_forget). */
    pthread_mutex_t forget_mu;
    struct event *forget_ev;
    uint32_t forget[FORGET_MAX];
    int n_forget;
    bool forget_all;
    /* Tencent's 70050 holds other processes told of (the listener's thread), for the loop's tim
     * (on_told), under forget_mu too. */
    struct event *told_ev;
    struct gateway_told told[TOLD_MAX];
    int n_told;
    uint64_t told_dropped;
    atomic_uint_least64_t told_refused; /* notices whose MAC or form was wrong */
    atomic_int_least64_t refused_logged_ms, skew_logged_ms; /* log_due's */
};

/* ---- the signer: admin UserSigs through the core ------------------------------------------ */

struct gw_sign {
    struct sign_request req;
    char identifier[TIM_MAX_IDENTIFIER + 1];
    tim_signed_fn done;
    void *ctx;
};

static void gw_signed(struct sign_request *req)
{
    struct gw_sign *s = req->arg;
    if (req->err == API_OK && req->token_len > 0 && req->token_len < sizeof req->token) {
        req->token[req->token_len] = '\0';
        s->done(s->ctx, req->token, req->issued_at, (int64_t)req->in.expire);
    } else {
        log_warn("gateway: no admin UserSig for app %u as \"%s\": %s", req->sdkappid, s->identifier,
                 req->msg[0] != '\0' ? req->msg : api_error_code(req->err));
        s->done(s->ctx, NULL, 0, 0);
    }
    OPENSSL_cleanse(req->token, sizeof req->token);
    free(s);
}

/* tim's signer: the app's active key signs for identifier (one of its administrator accounts)
 * in a sign group, audited as usersig.sign by the server; valid for what tim asks, at most the
 * app's admin_max_expire and max_expire as the group reads them (expire_defaulted: lowered,
 * not refused, even when another process lowered them since this process cached the app). */
static void gw_sign(void *arg, uint32_t sdkappid, const char *identifier, uint32_t key_version,
                    int64_t expire, tim_signed_fn done, void *ctx)
{
    struct gateway *g = arg;
    struct gw_sign *s = calloc(1, sizeof *s);
    (void)key_version; /* the active one signs; a rotation in between changes nothing here */
    if (s == NULL) {
        done(ctx, NULL, 0, 0);
        return;
    }
    snprintf(s->identifier, sizeof s->identifier, "%s", identifier);
    s->done = done;
    s->ctx = ctx;
    s->req.principal = NULL; /* the server itself */
    s->req.sdkappid = sdkappid;
    s->req.in.identifier = s->identifier;
    s->req.in.identifier_len = strlen(s->identifier);
    s->req.in.has_expire = true;
    s->req.in.expire = expire;
    s->req.in.expire_defaulted = true;
    s->req.refused_err = API_OK;
    s->req.done = gw_signed;
    s->req.arg = s;
    sign_submit(g->svc, &s->req);
}

/* ---- the admin UserSigs of a changed app ---------------------------------------------------- */

/* The cache evicted an app (its keys or settings changed, here or in another process), on any
 * thread: its admin UserSigs go too, on the loop, before the next call signs with the old state
 * (a lowered admin_max_expire, a disabled key). */
static void on_evicted(void *arg, uint32_t sdkappid, bool all)
{
    struct gateway *g = arg;
    pthread_mutex_lock(&g->forget_mu);
    bool listed = false;
    for (int i = 0; i < g->n_forget && !listed; i++)
        listed = g->forget[i] == sdkappid;
    if (all || g->n_forget == FORGET_MAX)
        g->forget_all = true;
    else if (!listed)
        g->forget[g->n_forget++] = sdkappid;
    pthread_mutex_unlock(&g->forget_mu);
    event_active(g->forget_ev, EV_READ, 0);
}

static void on_forget(evutil_socket_t fd, short what, void *arg)
{
    struct gateway *g = arg;
    uint32_t ids[FORGET_MAX];
    (void)fd;
    (void)what;
    pthread_mutex_lock(&g->forget_mu);
    bool all = g->forget_all;
    int n = g->n_forget;
    memcpy(ids, g->forget, sizeof ids);
    g->n_forget = 0;
    g->forget_all = false;
    pthread_mutex_unlock(&g->forget_mu);
    if (g->tim == NULL)
        return;
    if (all)
        tim_forget_all(g->tim);
    for (int i = 0; i < n && !all; i++)
        tim_forget_app(g->tim, ids[i]);
}

/* ---- Tencent's 70050 holds, shared between processes ---------------------------------------- */

/* A hold goes to the other processes as NOTIFY usersigd_hold, a notice (gateway_notice_make):
 * its end, not its length, so a notice received twice, or late, never holds past it; MAC'd,
 * since any role that can connect to the database can NOTIFY. */
#define NOTICE_VERSION "v1:"
#define NOTICE_MAC_HEX (2 * KEYRING_FP_BYTES)

struct gw_hold_job {
    struct dbpool_job job; /* first: hold_done frees the whole */
    uint32_t sdkappid;
    int64_t until_ms;
    char identifier[TIM_MAX_IDENTIFIER + 1];
};

static int64_t wall_ms(void)
{
    return clock_realtime_us() / 1000;
}

/* Whether a warning logged at *last (monotonic ms, 0: never) may be logged again, at most once a
 * minute whichever thread asks; if so, now is the time it was. */
static bool log_due(atomic_int_least64_t *last)
{
    int64_t now = clock_monotonic_ms(), was = atomic_load(last);
    return (was == 0 || now - was >= 60000) && atomic_compare_exchange_strong(last, &was, now);
}

/* The notice's MAC, as the notice writes it: lower-case hex. */
static bool notice_mac(const struct keyring *kr, uint32_t sdkappid, int64_t until_ms,
                       const char *identifier, char hex[NOTICE_MAC_HEX + 1])
{
    char msg[128];
    uint8_t mac[KEYRING_FP_BYTES];
    int n = snprintf(msg, sizeof msg, "usersigd_hold " NOTICE_VERSION "%" PRIu32 ":%" PRId64 ":%s",
                     sdkappid, until_ms, identifier);
    bool ok = n > 0 && (size_t)n < sizeof msg &&
              keyring_notice_mac(kr, msg, (size_t)n, mac) == KEYRING_OK;
    if (ok)
        hex_encode(mac, sizeof mac, hex);
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* A decimal number without sign or leading zeros, at most max, then ':'. */
static bool notice_num(const char **s, uint64_t max, uint64_t *v)
{
    const char *colon = strchr(*s, ':');
    if (colon == NULL || decimal_parse(*s, (size_t)(colon - *s), max, DECIMAL_CANONICAL, v) != 0)
        return false;
    *s = colon + 1;
    return true;
}

bool gateway_notice_parse(const struct keyring *kr, const char *payload, uint32_t *sdkappid,
                          int64_t *until_ms, char identifier[TIM_MAX_IDENTIFIER + 1])
{
    uint64_t app, until;
    char want[NOTICE_MAC_HEX + 1];
    const char *p = payload;
    if (p == NULL || strncmp(p, NOTICE_VERSION, strlen(NOTICE_VERSION)) != 0)
        return false;
    p += strlen(NOTICE_VERSION);
    if (!notice_num(&p, UINT32_MAX, &app) || !notice_num(&p, INT64_MAX, &until))
        return false;
    const char *got = p; /* compared as written: another case or a non-hex byte differs too */
    if (strnlen(got, NOTICE_MAC_HEX + 1) <= NOTICE_MAC_HEX || got[NOTICE_MAC_HEX] != ':')
        return false;
    p = got + NOTICE_MAC_HEX + 1;
    if (!tim_identifier_valid(p)) /* 1..TIM_MAX_IDENTIFIER bytes */
        return false;
    bool ok = notice_mac(kr, (uint32_t)app, (int64_t)until, p, want) &&
              CRYPTO_memcmp(want, got, NOTICE_MAC_HEX) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (!ok)
        return false;
    *sdkappid = (uint32_t)app;
    *until_ms = (int64_t)until;
    snprintf(identifier, TIM_MAX_IDENTIFIER + 1, "%s", p);
    return true;
}

int gateway_notice_make(const struct keyring *kr, uint32_t sdkappid, int64_t until_ms,
                        const char *identifier, char *out, size_t cap)
{
    char hex[NOTICE_MAC_HEX + 1];
    if (until_ms < 0 || identifier == NULL || !tim_identifier_valid(identifier) ||
        !notice_mac(kr, sdkappid, until_ms, identifier, hex))
        return -1;
    int n = snprintf(out, cap, NOTICE_VERSION "%" PRIu32 ":%" PRId64 ":%s:%s", sdkappid, until_ms,
                     hex, identifier);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* On a database thread: the notice, so every process stops calling for the account. */
static void hold_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    const struct service *svc = ctx;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        const struct gw_hold_job *h = j->arg;
        char payload[GATEWAY_NOTICE_MAX];
        bool ok = gateway_notice_make(svc->kr, h->sdkappid, h->until_ms, h->identifier, payload,
                                      sizeof payload) == 0 &&
                  store_notify_hold(st, payload) == STORE_OK;
        if (!ok)
            log_warn("gateway: cannot tell the other processes of app %u's 70050 hold; they "
                     "meet it at Tencent themselves",
                     h->sdkappid);
    }
}

static void hold_done(struct dbpool_job *job)
{
    free(job);
}

/* tim's on_hold: Tencent answered 70050 to this process, for an account not held yet. */
static void on_hold(void *arg, uint32_t sdkappid, const char *identifier, int64_t ms)
{
    struct gateway *g = arg;
    struct gw_hold_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        log_warn("gateway: out of memory telling the other processes of app %u's 70050 hold",
                 sdkappid);
        return;
    }
    j->sdkappid = sdkappid;
    j->until_ms = wall_ms() + ms;
    snprintf(j->identifier, sizeof j->identifier, "%s", identifier);
    j->job.run = hold_run;
    j->job.done = hold_done;
    j->job.arg = j;
    j->job.batch = TOLD_MAX;
    service_run(g->svc, &j->job);
}

void gateway_told_hold(void *arg, const char *payload)
{
    struct gateway *g = arg;
    struct gateway_told h;
    if (!gateway_notice_parse(g->svc->kr, payload, &h.sdkappid, &h.until_ms, h.identifier)) {
        atomic_fetch_add(&g->told_refused, 1);
        if (log_due(&g->refused_logged_ms))
            log_warn("gateway: a notice on " STORE_CHANNEL_HOLD " that no process of this "
                     "keyring made was ignored (sent by a database role that can connect?); "
                     "counted in usersigd_tencent_hold_notices_refused_total");
        return;
    }
    pthread_mutex_lock(&g->forget_mu);
    if (!gateway_told_add(g->told, &g->n_told, TOLD_MAX, &h))
        g->told_dropped++;
    pthread_mutex_unlock(&g->forget_mu);
    event_active(g->told_ev, EV_READ, 0);
}

bool gateway_told_add(struct gateway_told *list, int *n, int cap, const struct gateway_told *h)
{
    for (int i = 0; i < *n; i++) {
        if (list[i].sdkappid == h->sdkappid && strcmp(list[i].identifier, h->identifier) == 0) {
            if (h->until_ms > list[i].until_ms)
                list[i].until_ms = h->until_ms;
            return true;
        }
    }
    if (*n >= cap)
        return false;
    list[(*n)++] = *h;
    return true;
}

int64_t gateway_told_left(int64_t until_ms, int64_t now_ms, bool *ahead)
{
    int64_t left = until_ms > now_ms ? until_ms - now_ms : 0;
    /* Further away than a hold lasts: the sender's clock is ahead of this host's (a hold that
     * has not started cannot be told), by more than the slack. Held as long as a hold lasts. */
    *ahead = left > GATEWAY_HOLD_MS + GATEWAY_HOLD_SLACK_MS;
    return *ahead ? GATEWAY_HOLD_MS : left;
}

uint64_t gateway_hold_notices_refused(struct gateway *g)
{
    return atomic_load(&g->told_refused);
}

static void on_told(evutil_socket_t fd, short what, void *arg)
{
    struct gateway *g = arg;
    struct gateway_told told[TOLD_MAX];
    (void)fd;
    (void)what;
    pthread_mutex_lock(&g->forget_mu);
    int n = g->n_told;
    memcpy(told, g->told, sizeof told);
    g->n_told = 0;
    uint64_t dropped = g->told_dropped;
    g->told_dropped = 0;
    pthread_mutex_unlock(&g->forget_mu);
    if (dropped > 0)
        log_warn("gateway: %llu more hold notices told by other processes came between two "
                 "turns of the loop and were not taken",
                 (unsigned long long)dropped);
    int64_t now = wall_ms();
    for (int i = 0; i < n && g->tim != NULL; i++) {
        bool ahead = false;
        int64_t left = gateway_told_left(told[i].until_ms, now, &ahead);
        if (ahead && log_due(&g->skew_logged_ms))
            log_warn("gateway: a hold notice ends %lld ms from now, more than a hold lasts: the "
                     "clocks of this host and another process's differ; held %d ms",
                     (long long)(told[i].until_ms - now), GATEWAY_HOLD_MS);
        if (left == 0)
            continue; /* over already (or this host's clock is ahead of the sender's) */
        if (tim_hold(g->tim, told[i].sdkappid, told[i].identifier, left) != 0)
            log_warn("gateway: out of memory holding app %u's account told by another process",
                     told[i].sdkappid);
    }
}

/* ---- the client ----------------------------------------------------------------------------- */

int gateway_new(struct event_base *base, struct service *svc, struct gateway **out)
{
    char err[256] = "";
    struct gateway *g = calloc(1, sizeof *g);
    *out = NULL;
    if (g == NULL) {
        log_error("gateway: out of memory");
        return -1;
    }
    g->svc = svc;
    atomic_init(&g->told_refused, 0);
    atomic_init(&g->refused_logged_ms, 0);
    atomic_init(&g->skew_logged_ms, 0);
    g->base = base;
    if (pthread_mutex_init(&g->forget_mu, NULL) != 0) {
        log_error("gateway: cannot make a mutex");
        free(g);
        return -1;
    }
    g->forget_ev = event_new(base, -1, 0, on_forget, g);
    g->told_ev = event_new(base, -1, 0, on_told, g);
    if (g->forget_ev == NULL || g->told_ev == NULL) {
        log_error("gateway: out of memory");
        if (g->forget_ev != NULL)
            event_free(g->forget_ev);
        if (g->told_ev != NULL)
            event_free(g->told_ev);
        pthread_mutex_destroy(&g->forget_mu);
        free(g);
        return -1;
    }
    struct tim_options o;
    memset(&o, 0, sizeof o);
    outbound_options_from_config(svc->cfg, &o.outbound);
    o.sign = gw_sign;
    o.sign_arg = g;
    o.on_hold = on_hold;
    o.hold_arg = g;
    o.hold_ms = GATEWAY_HOLD_MS;
    o.rate = svc->cfg->tencent_rate > 0 ? svc->cfg->tencent_rate : 95;
    /* A twentieth of a second's worth: calls paced, not in bursts that a per-second window at
     * Tencent would refuse. */
    o.burst = o.rate / 20 >= 1 ? o.rate / 20 : 1;
    o.max_wait_ms = MAX_WAIT_MS;
    o.max_queue = (int)(o.rate * MAX_WAIT_MS / 1000) + 1;
    g->tim = tim_new(base, &o, err, sizeof err);
    if (g->tim == NULL) {
        log_error("cannot set up the calls to Tencent's REST API: %s", err);
        event_free(g->forget_ev);
        event_free(g->told_ev);
        pthread_mutex_destroy(&g->forget_mu);
        free(g);
        return -1;
    }
    if (svc->cache != NULL)
        cache_on_evict(svc->cache, on_evicted, g);
    *out = g;
    return 0;
}

void gateway_stop(struct gateway *g)
{
    if (g == NULL || g->tim == NULL)
        return;
    if (g->svc->cache != NULL)
        cache_on_evict(g->svc->cache, NULL, NULL); /* no on_evicted runs once this returns */
    struct tim *t = g->tim;
    g->tim = NULL; /* what the cancelled calls' callbacks start now is refused */
    tim_free(t);
}

void gateway_free(struct gateway *g)
{
    if (g == NULL)
        return;
    gateway_stop(g);
    event_free(g->forget_ev);
    event_free(g->told_ev);
    pthread_mutex_destroy(&g->forget_mu);
    free(g);
}

struct tim *gateway_tim(struct gateway *g)
{
    return g->tim;
}

struct event_base *gateway_base(struct gateway *g)
{
    return g->base;
}

/* ---- one call ------------------------------------------------------------------------------- */

enum api_error gateway_app_call(const struct gateway *g, const struct cache_app *app,
                                struct tim_call *out, char *msg, size_t cap)
{
    if (g->tim == NULL) {
        memset(out, 0, sizeof *out);
        snprintf(msg, cap, "the server is stopping: nothing was sent to Tencent; retry");
        return API_ERR_UNAVAILABLE;
    }
    return gateway_app_check(g->svc->cfg, app, out, msg, cap);
}

enum api_error gateway_app_check(const struct config *cfg, const struct cache_app *app,
                                 struct tim_call *out, char *msg, size_t cap)
{
    const struct store_app *a = &app->app;
    memset(out, 0, sizeof *out);
    if (a->gateway_identifier[0] == '\0') {
        snprintf(msg, cap,
                 "app %u has no gateway_identifier: PATCH /v1/apps/%u with admin_identifiers "
                 "(the app's administrator accounts in Tencent's console) and gateway_identifier "
                 "(one of them)",
                 a->sdkappid, a->sdkappid);
        return API_ERR_INVALID_STATE;
    }
    if (app->active == NULL) {
        snprintf(msg, cap, "app %u has no active key to sign the administrator's UserSig with",
                 a->sdkappid);
        return API_ERR_INVALID_STATE;
    }
    const char *base = a->tencent_base_url[0] != '\0' ? a->tencent_base_url : TIM_DEFAULT_BASE_URL;
    if (tim_base_url_valid(base, cfg != NULL && cfg->tencent_allow_insecure_base_url) == 0) {
        snprintf(msg, cap,
                 "app %u's tencent_base_url is not one this server calls (an http or test URL "
                 "needs tencent_allow_insecure_base_url): PATCH it to one of Tencent's hosts",
                 a->sdkappid);
        return API_ERR_INVALID_STATE;
    }
    out->sdkappid = a->sdkappid;
    out->identifier = a->gateway_identifier;
    out->key_version = app->active->version;
    out->base_url = base;
    return API_OK;
}

enum api_error gateway_tim_error(const struct tim_result *res, char *msg, size_t cap)
{
    switch (res->rc) {
    case TIM_OK:
        return API_OK;
    case TIM_RATE_LIMITED:
        snprintf(msg, cap,
                 "the app's calls to Tencent's REST API are at their limit (tencent_rate); retry "
                 "in %lld ms",
                 (long long)res->retry_after_ms);
        return API_ERR_TENCENT_RATE_LIMITED;
    case TIM_HELD:
        snprintf(msg, cap,
                 "Tencent answered 70050 for the app's administrator account (too many "
                 "UserSigs it could not verify), so no call goes for it until the minute it "
                 "asks for has passed: check that the app's active key is the one in Tencent's "
                 "console, and retry in %lld ms",
                 (long long)res->retry_after_ms);
        return API_ERR_TENCENT_RATE_LIMITED;
    case TIM_TRANSPORT:
        if (res->transport == OUTBOUND_TIMEOUT) {
            snprintf(msg, cap, "Tencent's REST API did not answer in time: %s",
                     res->error_info != NULL ? res->error_info : "timeout");
            return API_ERR_TENCENT_TIMEOUT;
        }
        snprintf(msg, cap, "Tencent's REST API could not be reached (%s): %s",
                 outbound_rc_name(res->transport), res->error_info != NULL ? res->error_info : "");
        return API_ERR_TENCENT_UNREACHABLE;
    case TIM_BAD_REPLY:
        snprintf(msg, cap, "Tencent's REST API answered with something else than its reply: %s",
                 res->error_info != NULL ? res->error_info : "");
        return API_ERR_TENCENT_BAD_REPLY;
    case TIM_SIGN_FAILED:
        snprintf(msg, cap,
                 "no administrator UserSig could be made for the app (its key, or the "
                 "database): the server log says why");
        return API_ERR_UNAVAILABLE;
    case TIM_CANCELLED:
        snprintf(msg, cap, "the server is stopping; the call's outcome is unknown");
        return API_ERR_UNAVAILABLE;
    case TIM_INVALID:
        snprintf(msg, cap, "the call to Tencent could not be made from the app's settings");
        return API_ERR_INVALID_STATE;
    case TIM_NO_MEMORY:
        break;
    }
    snprintf(msg, cap, "out of memory");
    return API_ERR_INTERNAL;
}

static void finish_audit(struct gateway_call *c);

/* On a database thread: the audit events of the calls that ended together, one transaction. */
static void audit_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    (void)st;
    bool ok = store_begin(svc->st) == STORE_OK;
    for (struct dbpool_job *j = jobs; ok && j != NULL; j = j->next) {
        struct gateway_call *c = j->arg;
        json_t *d = json_pack("{s:s, s:s, s:i, s:f}", "servicename", c->service, "command",
                              c->command, "attempts", c->attempts, "duration_ms", c->duration_ms);
        if (d != NULL && c->http_status != 0)
            json_object_set_new(d, "http_status", json_integer(c->http_status));
        if (d != NULL && c->stage == GW_AUDIT && c->reply != NULL) {
            json_object_set_new(d, "action_status", json_string(c->action_ok ? "OK" : "FAIL"));
            json_object_set_new(d, "error_code", json_integer(c->error_code));
        }
        if (d != NULL && c->request_id != NULL)
            json_object_set_new(d, "request_id", json_string(c->request_id));
        ok = d != NULL && service_audit(svc, c->principal, "tencent.call", c->sdkappid,
                                        c->key_version, c->outcome, d) == STORE_OK;
    }
    ok = ok && store_commit(svc->st) == STORE_OK;
    if (!ok)
        store_rollback(svc->st);
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next)
        ((struct gateway_call *)j->arg)->audit_ok = ok;
}

static void audit_done(struct dbpool_job *job)
{
    struct gateway_call *c = job->arg;
    if (job->cancelled || !c->audit_ok)
        log_error("audit: cannot record tencent.call %s/%s of app %u (outcome %s)", c->service,
                  c->command, c->sdkappid, c->outcome);
    if (c->app != NULL)
        cache_app_release(c->app);
    c->app = NULL;
    c->stage = GW_DONE;
    char *buf = c->reply_buf; /* done may free c */
    c->done(c);
    free(buf);
}

/* Ends c: its audit event, then done. outcome: "ok", "fail" (Tencent's ActionStatus), or the
 * error's code. */
static void finish_audit(struct gateway_call *c)
{
    if (c->outcome[0] == '\0')
        snprintf(c->outcome, sizeof c->outcome, "%s",
                 c->err == API_OK ? (c->action_ok ? "ok" : "fail") : api_error_code(c->err));
    c->stage = GW_AUDIT;
    memset(&c->job, 0, sizeof c->job);
    c->job.run = audit_run;
    c->job.done = audit_done;
    c->job.arg = c;
    c->job.batch = GATEWAY_AUDIT_BATCH;
    service_run(c->g->svc, &c->job);
}

static void refuse(struct gateway_call *c, enum api_error err)
{
    c->err = err;
    finish_audit(c);
}

static void on_tim(const struct tim_result *res, void *arg)
{
    struct gateway_call *c = arg;
    c->attempts = res->attempts;
    c->http_status = res->http_status;
    c->duration_ms = res->duration_ms;
    c->err = gateway_tim_error(res, c->msg, sizeof c->msg);
    if (c->err == API_ERR_TENCENT_RATE_LIMITED)
        c->retry_after_ms = res->retry_after_ms;
    if (res->rc == TIM_OK) {
        c->action_ok = res->action_ok;
        c->error_code = res->error_code;
        c->reply_buf = malloc(res->body_len + 1);
        if (c->reply_buf == NULL) {
            c->err = API_ERR_INTERNAL;
            snprintf(c->msg, sizeof c->msg, "out of memory");
        } else {
            memcpy(c->reply_buf, res->body, res->body_len);
            c->reply_buf[res->body_len] = '\0';
            c->reply = c->reply_buf;
            c->reply_len = res->body_len;
        }
        /* Tencent's own rate limit, past our retries: said as Tencent said it, and audited. */
    }
    finish_audit(c);
}

static void start_call(struct gateway_call *c)
{
    struct tim_call tc;
    c->err = gateway_app_call(c->g, c->app, &tc, c->msg, sizeof c->msg);
    if (c->err != API_OK) {
        refuse(c, c->err);
        return;
    }
    c->key_version = tc.key_version;
    tc.service = c->service;
    tc.command = c->command;
    tc.body = c->body;
    tc.body_len = c->body_len;
    c->stage = GW_TENCENT;
    int64_t retry = 0;
    enum tim_rc rc = tim_call(c->g->tim, &tc, on_tim, c, &retry);
    if (rc == TIM_OK)
        return;
    struct tim_result res = {.rc = rc, .retry_after_ms = retry};
    on_tim(&res, c);
}

/* On a database thread: the app read (and cached) on a miss. */
static void app_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct gateway_call *c = j->arg;
        bool refused;
        c->err = service_app_entry(ctx, c->sdkappid, &c->app, c->msg, sizeof c->msg, &refused);
    }
}

static void app_done(struct dbpool_job *job)
{
    struct gateway_call *c = job->arg;
    if (job->cancelled) {
        c->err = API_ERR_UNAVAILABLE;
        snprintf(c->msg, sizeof c->msg, "the server is stopping; retry");
    }
    if (c->err != API_OK) {
        refuse(c, c->err); /* nothing was called: an unknown app is the usual 404 */
        return;
    }
    start_call(c);
}

void gateway_submit(struct gateway *g, struct gateway_call *c)
{
    c->g = g;
    c->err = API_OK;
    c->msg[0] = '\0';
    c->outcome[0] = '\0';
    c->reply = NULL;
    c->reply_buf = NULL;
    c->app = NULL;
    c->retry_after_ms = 0;
    if (c->principal != NULL && c->principal->role == ROLE_REST_CALLER &&
        !principal_rest_allows(c->principal, c->service, c->command)) {
        snprintf(c->msg, sizeof c->msg,
                 "this token's rest_allow does not cover %s/%s: create a token whose rest_allow "
                 "lists it (or %s/*)",
                 c->service, c->command, c->service);
        refuse(c, API_ERR_REST_NOT_ALLOWED);
        return;
    }
    c->stage = GW_APP;
    if (g->svc->cache != NULL && (c->app = cache_app_get(g->svc->cache, c->sdkappid)) != NULL) {
        start_call(c);
        return;
    }
    memset(&c->job, 0, sizeof c->job);
    c->job.run = app_run;
    c->job.done = app_done;
    c->job.arg = c;
    c->job.batch = 1;
    service_run(g->svc, &c->job);
}

void gateway_call_cancel(struct gateway_call *c)
{
    if (c->stage != GW_TENCENT || c->g->tim == NULL) /* stopped: the call ended with it */
        return;
    tim_cancel(c->g->tim, c);
    c->err = API_ERR_UNAVAILABLE;
    snprintf(c->msg, sizeof c->msg, "the client went away");
    snprintf(c->outcome, sizeof c->outcome, "client_gone");
    finish_audit(c);
}
