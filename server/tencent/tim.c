/*
 * Tencent REST calls on the event loop: a call waits for its app's token bucket, then for an
 * admin UserSig (cached per app, identifier and key version; one signing at a time per entry, the
 * calls that need it waiting on it), then goes out through outbound.c; a 60007/60011 answer is
 * tried again after an exponential backoff with jitter, through the bucket again, a bounded
 * number of times. Every result reaches its caller from an event, never from within tim_call().
 */
#include "tim.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define RENEW_FRACTION 3  /* renew when less than 1/3 of a UserSig's life is left */
#define STALE_MARGIN_S 60 /* a UserSig is used while this much of it is left (at most) */
#define SHORT_EXPIRE_S 60 /* an admin UserSig valid less than this is logged, once per entry */
#define INFO_MAX 256

enum call_state { ST_QUEUED, ST_SIGNING, ST_IN_FLIGHT, ST_RETRY_WAIT, ST_FINISHING };

struct sig_entry;

struct tcall {
    struct tim *t;
    enum call_state state;
    uint32_t sdkappid, key_version;
    char identifier[TIM_MAX_IDENTIFIER + 1];
    char service[TIM_MAX_NAME + 1], command[TIM_MAX_NAME + 1];
    char *base_url;
    char *body;
    size_t body_len;
    tim_done_fn done;
    void *arg;
    double started_ms;
    int attempts;
    struct event *ev; /* retry timer, then the finishing event */
    struct tim_result result;
    json_t *reply;
    char *raw; /* the reply's bytes, with reply */
    size_t raw_len;
    char info[INFO_MAX];
    struct tcall *qnext;       /* in its bucket's queue, or its entry's waiters */
    struct tcall *prev, *next; /* every call of t */
};

struct bucket {
    uint32_t sdkappid;
    double rate, burst, tokens, last_ms;
    int queued;
    struct tcall *qhead, *qtail;
    struct event *timer;
    struct tim *t;
    struct bucket *next;
};

struct sign_req; /* one signing in progress */

struct sig_entry {
    uint32_t sdkappid, key_version;
    char identifier[TIM_MAX_IDENTIFIER + 1];
    char *usersig; /* NULL until signed; wiped when replaced or freed */
    int64_t issued_at, expire;
    struct sign_req *signing;
    struct tcall *waiters;
    int warned_short; /* the short-validity warning was logged */
    struct sig_entry *next;
};

struct sign_req {
    struct tim *t; /* NULL once t is freed: the signer's late answer is dropped */
    struct sig_entry *e;
};

struct tim {
    struct event_base *base;
    struct outbound *ob;
    struct tim_options opt;
    struct tcall *calls;
    struct bucket *buckets;
    struct sig_entry *sigs;
    int n_sigs;
    int closing;
};

/* ceil() of a non-negative x, without libm. */
static int64_t ceil_ms(double x)
{
    int64_t i = (int64_t)x;
    return (double)i < x ? i + 1 : i;
}

static int64_t now_s(struct tim *t)
{
    return t->opt.clock != NULL ? t->opt.clock(t->opt.clock_arg) : (int64_t)time(NULL);
}

/* The life a UserSig of expire seconds must have left to be sent: STALE_MARGIN_S, or a quarter
 * of a shorter validity (an app whose admin_max_expire is under a minute still calls). */
static int64_t use_margin(int64_t expire)
{
    return expire / 4 < STALE_MARGIN_S ? expire / 4 : STALE_MARGIN_S;
}

/* ---- calls: list, finishing ---------------------------------------------------------------- */

static void call_free(struct tcall *c)
{
    if (c == NULL)
        return;
    if (c->ev != NULL)
        event_free(c->ev);
    json_decref(c->reply);
    free(c->raw);
    free(c->base_url);
    free(c->body);
    free(c);
}

static void call_unlink(struct tcall *c)
{
    struct tim *t = c->t;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (t->calls == c)
        t->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void deliver(struct tcall *c)
{
    c->result.attempts = c->attempts;
    c->result.duration_ms = ((double)clock_monotonic_ns() / 1e6) - c->started_ms;
    c->result.reply = c->reply;
    c->result.body = c->reply != NULL ? c->raw : NULL;
    c->result.body_len = c->reply != NULL ? c->raw_len : 0;
    if (c->result.error_info == NULL)
        c->result.error_info = c->info;
    call_unlink(c);
    if (c->done != NULL) /* NULL: cancelled by tim_cancel() while in flight */
        c->done(&c->result, c->arg);
    call_free(c);
}

static void on_finish_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver(arg);
}

/* Ends c with rc (its result's other fields set by the caller) from an event of its own. */
static void finish(struct tcall *c, enum tim_rc rc, const char *msg)
{
    c->result.rc = rc;
    if (msg != NULL) {
        snprintf(c->info, sizeof c->info, "%s", msg);
        c->result.error_info = c->info;
    }
    c->state = ST_FINISHING;
    if (c->t->closing) {
        deliver(c);
        return;
    }
    if (c->ev != NULL)
        event_free(c->ev);
    c->ev = evtimer_new(c->t->base, on_finish_event, c);
    struct timeval zero = {0, 0};
    if (c->ev == NULL || evtimer_add(c->ev, &zero) != 0) {
        /* No event to finish from: finish now (we are on the loop, outside tim_call()). */
        log_error("tim: no memory for a completion event; completing in place");
        deliver(c);
    }
}

/* ---- buckets -------------------------------------------------------------------------------- */

static void bucket_refill(struct bucket *b)
{
    double now = ((double)clock_monotonic_ns() / 1e6);
    b->tokens += (now - b->last_ms) / 1000.0 * b->rate;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_ms = now;
}

static void get_sig(struct tcall *c);

static void bucket_arm(struct bucket *b)
{
    if (b->qhead == NULL)
        return;
    double need = 1.0 - b->tokens;
    int64_t ms = need <= 0 ? 0 : ceil_ms(need / b->rate * 1000.0);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_add(b->timer, &tv) != 0)
        log_error("tim: cannot arm the rate limiter's timer");
}

/* Starts the queued calls there are tokens for. */
static void bucket_run(struct bucket *b)
{
    bucket_refill(b);
    while (b->qhead != NULL && b->tokens >= 1.0) {
        struct tcall *c = b->qhead;
        b->qhead = c->qnext;
        if (b->qhead == NULL)
            b->qtail = NULL;
        c->qnext = NULL;
        b->queued--;
        b->tokens -= 1.0;
        get_sig(c);
    }
    bucket_arm(b);
}

static void on_bucket_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bucket_run(arg);
}

static struct bucket *bucket_get(struct tim *t, uint32_t sdkappid)
{
    for (struct bucket *b = t->buckets; b != NULL; b = b->next)
        if (b->sdkappid == sdkappid)
            return b;
    struct bucket *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->timer = evtimer_new(t->base, on_bucket_timer, b);
    if (b->timer == NULL) {
        free(b);
        return NULL;
    }
    b->t = t;
    b->sdkappid = sdkappid;
    b->rate = t->opt.rate;
    b->burst = t->opt.burst;
    b->tokens = b->burst;
    b->last_ms = ((double)clock_monotonic_ns() / 1e6);
    b->next = t->buckets;
    t->buckets = b;
    return b;
}

static void bucket_push(struct bucket *b, struct tcall *c)
{
    c->state = ST_QUEUED;
    c->qnext = NULL;
    if (b->qtail != NULL)
        b->qtail->qnext = c;
    else
        b->qhead = c;
    b->qtail = c;
    b->queued++;
}

int tim_set_app_rate(struct tim *t, uint32_t sdkappid, double rate, double burst)
{
    if (!(rate > 0) || !(burst >= 1))
        return -1;
    struct bucket *b = bucket_get(t, sdkappid);
    if (b == NULL)
        return -1;
    bucket_refill(b);
    b->rate = rate;
    b->burst = burst;
    if (b->tokens > burst)
        b->tokens = burst;
    bucket_arm(b);
    return 0;
}

/* ---- admin UserSigs ------------------------------------------------------------------------- */

static void entry_wipe_sig(struct sig_entry *e)
{
    if (e->usersig != NULL) {
        OPENSSL_cleanse(e->usersig, strlen(e->usersig));
        free(e->usersig);
        e->usersig = NULL;
    }
}

static void entry_free(struct sig_entry *e)
{
    entry_wipe_sig(e);
    free(e);
}

/* Room for one more entry: expired, idle entries go first, then the oldest idle one. */
static void sigs_make_room(struct tim *t)
{
    int64_t now = now_s(t);
    struct sig_entry **pp = &t->sigs;
    while (*pp != NULL && t->n_sigs >= t->opt.max_cached_sigs) {
        struct sig_entry *e = *pp;
        if (e->signing == NULL && e->waiters == NULL &&
            (e->usersig == NULL || now > e->issued_at + e->expire)) {
            *pp = e->next;
            entry_free(e);
            t->n_sigs--;
        } else {
            pp = &e->next;
        }
    }
    while (t->n_sigs >= t->opt.max_cached_sigs) {
        struct sig_entry **oldest = NULL;
        for (pp = &t->sigs; *pp != NULL; pp = &(*pp)->next)
            if ((*pp)->signing == NULL && (*pp)->waiters == NULL &&
                (oldest == NULL || (*pp)->issued_at < (*oldest)->issued_at))
                oldest = pp;
        if (oldest == NULL)
            return; /* every entry busy: the cache grows past its bound for a while */
        struct sig_entry *e = *oldest;
        *oldest = e->next;
        entry_free(e);
        t->n_sigs--;
    }
}

static struct sig_entry *entry_get(struct tim *t, const struct tcall *c)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next)
        if (e->sdkappid == c->sdkappid && e->key_version == c->key_version &&
            strcmp(e->identifier, c->identifier) == 0)
            return e;
    sigs_make_room(t);
    struct sig_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->sdkappid = c->sdkappid;
    e->key_version = c->key_version;
    memcpy(e->identifier, c->identifier, sizeof e->identifier);
    e->next = t->sigs;
    t->sigs = e;
    t->n_sigs++;
    return e;
}

void tim_forget_app(struct tim *t, uint32_t sdkappid)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next)
        if (e->sdkappid == sdkappid) {
            entry_wipe_sig(e);
            e->issued_at = e->expire = 0;
        }
}

static void send_call(struct tcall *c, const char *usersig);

static void on_signed(void *ctx, const char *usersig, int64_t issued_at, int64_t expire)
{
    struct sign_req *req = ctx;
    struct tim *t = req->t;
    struct sig_entry *e = req->e;
    free(req);
    if (t == NULL)
        return; /* tim_free() came first */
    e->signing = NULL;
    int64_t now = now_s(t);
    size_t len = usersig != NULL ? strnlen(usersig, TIM_MAX_USERSIG + 1) : 0;
    if (usersig != NULL && len > 0 && len <= TIM_MAX_USERSIG && expire > 0 &&
        now <= issued_at + expire) {
        char *copy = malloc(len + 1);
        if (copy != NULL) {
            memcpy(copy, usersig, len + 1);
            entry_wipe_sig(e);
            e->usersig = copy;
            e->issued_at = issued_at;
            e->expire = expire;
            if (expire < SHORT_EXPIRE_S && !e->warned_short) {
                e->warned_short = 1;
                log_warn("tim: app %u's admin UserSigs are valid %lld s (admin_max_expire): "
                         "each is sent while %lld s of it are left, so a clock of this server "
                         "behind Tencent's by more than that fails the calls",
                         e->sdkappid, (long long)expire, (long long)use_margin(expire));
            }
        }
    } else {
        log_warn("tim: the signer gave no admin UserSig for app %u", e->sdkappid);
    }
    /* The new UserSig, or the old one while enough of it is left, or nothing. */
    const char *use = NULL;
    if (e->usersig != NULL && now + use_margin(e->expire) <= e->issued_at + e->expire)
        use = e->usersig;
    struct tcall *w = e->waiters;
    e->waiters = NULL;
    while (w != NULL) {
        struct tcall *nx = w->qnext;
        w->qnext = NULL;
        if (use != NULL)
            send_call(w, use);
        else
            finish(w, TIM_SIGN_FAILED, "no admin UserSig could be made for the app");
        w = nx;
    }
}

static void start_signing(struct tim *t, struct sig_entry *e)
{
    struct sign_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return; /* the waiters stay; on_signed never comes: they fail at tim_free at worst */
    req->t = t;
    req->e = e;
    e->signing = req;
    t->opt.sign(t->opt.sign_arg, e->sdkappid, e->identifier, e->key_version, t->opt.sig_expire,
                on_signed, req);
}

/* c has its token: now its admin UserSig. */
static void get_sig(struct tcall *c)
{
    struct tim *t = c->t;
    struct sig_entry *e = entry_get(t, c);
    if (e == NULL) {
        finish(c, TIM_NO_MEMORY, "out of memory");
        return;
    }
    int64_t now = now_s(t);
    int fresh = e->usersig != NULL && now < e->issued_at + e->expire - e->expire / RENEW_FRACTION;
    int usable = e->usersig != NULL && now + use_margin(e->expire) <= e->issued_at + e->expire;
    if (fresh || (usable && e->signing != NULL)) {
        send_call(c, e->usersig);
        return;
    }
    if (usable) {
        /* Renew in the background; this call goes with the one still valid. */
        send_call(c, e->usersig);
        start_signing(t, e);
        return;
    }
    c->state = ST_SIGNING;
    c->qnext = e->waiters;
    e->waiters = c;
    if (e->signing == NULL) {
        start_signing(t, e);
        if (e->signing == NULL && e->waiters == c) {
            e->waiters = c->qnext;
            c->qnext = NULL;
            finish(c, TIM_NO_MEMORY, "out of memory");
        }
    }
}

/* ---- sending, replies, retries -------------------------------------------------------------- */

static void on_reply(const struct outbound_result *r, void *arg);

static uint32_t random_u32(int *ok)
{
    unsigned char b[4];
    *ok = RAND_bytes(b, sizeof b) == 1;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void send_call(struct tcall *c, const char *usersig)
{
    int ok;
    uint32_t rnd = random_u32(&ok);
    if (!ok) {
        finish(c, TIM_NO_MEMORY, "the random number generator failed");
        return;
    }
    char url[TIM_MAX_URL];
    if (tim_build_url(c->base_url, c->t->opt.outbound.allow_insecure, c->service, c->command,
                      c->sdkappid, c->identifier, usersig, rnd, url, sizeof url) != 0) {
        finish(c, TIM_INVALID, "the request URL could not be built");
        return;
    }
    c->state = ST_IN_FLIGHT;
    enum outbound_rc rc = outbound_post_json(c->t->ob, url, c->body, c->body_len, on_reply, c);
    OPENSSL_cleanse(url, sizeof url);
    if (rc != OUTBOUND_OK) {
        c->result.transport = rc;
        finish(c, TIM_TRANSPORT, outbound_rc_name(rc));
    }
}

static int64_t backoff_ms(const struct tim *t, int attempt)
{
    int64_t d = t->opt.backoff_base_ms;
    for (int i = 1; i < attempt && d < t->opt.backoff_max_ms; i++)
        d *= 2;
    if (d > t->opt.backoff_max_ms)
        d = t->opt.backoff_max_ms;
    int ok;
    uint32_t r = random_u32(&ok);
    /* Jitter: between half and all of it. */
    return d / 2 + (ok ? (int64_t)(r % (uint32_t)(d / 2 + 1)) : d / 2);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct tcall *c = arg;
    json_decref(c->reply);
    c->reply = NULL;
    free(c->raw);
    c->raw = NULL;
    c->raw_len = 0;
    memset(&c->result, 0, sizeof c->result);
    struct bucket *b = bucket_get(c->t, c->sdkappid);
    if (b == NULL) {
        finish(c, TIM_NO_MEMORY, "out of memory");
        return;
    }
    /* A retry was accepted already: it waits its turn whatever the queue's bounds. */
    bucket_push(b, c);
    bucket_run(b);
}

static void on_reply(const struct outbound_result *r, void *arg)
{
    struct tcall *c = arg;
    struct tim *t = c->t;
    c->attempts++;
    c->result.http_status = r->status;
    if (r->rc != OUTBOUND_OK) {
        c->result.transport = r->rc;
        finish(c, r->rc == OUTBOUND_CANCELLED ? TIM_CANCELLED : TIM_TRANSPORT, r->error);
        return;
    }
    if (r->status != 200) {
        char msg[64];
        snprintf(msg, sizeof msg, "Tencent answered HTTP %ld", r->status);
        finish(c, TIM_BAD_REPLY, msg);
        return;
    }
    int action_ok;
    long long code;
    const char *info;
    json_t *reply;
    if (tim_parse_reply(r->body, r->body_len, &reply, &action_ok, &code, &info) != 0) {
        finish(c, TIM_BAD_REPLY, "the reply is not Tencent's JSON (ActionStatus, ErrorCode)");
        return;
    }
    c->reply = reply;
    free(c->raw);
    c->raw = malloc(r->body_len + 1);
    if (c->raw == NULL) {
        finish(c, TIM_NO_MEMORY, "out of memory");
        return;
    }
    memcpy(c->raw, r->body, r->body_len);
    c->raw[r->body_len] = '\0';
    c->raw_len = r->body_len;
    c->result.action_ok = action_ok;
    c->result.error_code = code;
    c->result.error_info = info;
    if (!action_ok && tim_code_is_rate_limit(code)) {
        struct bucket *b = bucket_get(t, c->sdkappid);
        if (b != NULL) {
            bucket_refill(b);
            if (b->tokens > 0)
                b->tokens = 0; /* Tencent says too fast: this app's next calls wait too */
        }
        int64_t wait = backoff_ms(t, c->attempts);
        c->result.retry_after_ms = wait;
        /* Not for a call tim_cancel()ed in flight (done NULL): a retry would act at Tencent for
         * a caller that has already reported the call. Its answer still paces the app. */
        if (c->attempts < t->opt.max_attempts && !t->closing && c->done != NULL) {
            c->state = ST_RETRY_WAIT;
            if (c->ev != NULL)
                event_free(c->ev);
            c->ev = evtimer_new(t->base, on_retry_timer, c);
            struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
            if (c->ev != NULL && evtimer_add(c->ev, &tv) == 0) {
                log_info("tim: app %u %s/%s: Tencent rate-limited (%lld), retry %d in %lld ms",
                         c->sdkappid, c->service, c->command, code, c->attempts, (long long)wait);
                return;
            }
        }
    } else if (!action_ok && (code == 70001 || code == 70003 || code == 70009)) {
        /* Tencent refused our admin UserSig: the next call signs a new one. */
        for (struct sig_entry *e = t->sigs; e != NULL; e = e->next)
            if (e->sdkappid == c->sdkappid && e->key_version == c->key_version &&
                strcmp(e->identifier, c->identifier) == 0 && e->signing == NULL) {
                entry_wipe_sig(e);
                e->issued_at = e->expire = 0;
            }
    }
    c->result.error_info = info;
    finish(c, TIM_OK, NULL);
}

/* ---- the client ----------------------------------------------------------------------------- */

struct tim *tim_new(struct event_base *base, const struct tim_options *opt, char *err,
                    size_t errlen)
{
    if (opt->sign == NULL) {
        log_errbuf(err, errlen, "tim: no signer given");
        return NULL;
    }
    struct tim *t = calloc(1, sizeof *t);
    if (t == NULL) {
        log_errbuf(err, errlen, "out of memory");
        return NULL;
    }
    t->base = base;
    t->opt = *opt;
    struct tim_options *o = &t->opt;
    if (o->sig_expire <= 0)
        o->sig_expire = 86400;
    if (!(o->rate > 0))
        o->rate = 50;
    if (!(o->burst >= 1))
        o->burst = o->rate >= 1 ? o->rate : 1;
    if (o->max_queue <= 0)
        o->max_queue = 100;
    if (o->max_wait_ms <= 0)
        o->max_wait_ms = 2000;
    if (o->max_attempts <= 0)
        o->max_attempts = 4;
    if (o->backoff_base_ms <= 0)
        o->backoff_base_ms = 250;
    if (o->backoff_max_ms <= 0)
        o->backoff_max_ms = 4000;
    if (o->backoff_max_ms < o->backoff_base_ms)
        o->backoff_max_ms = o->backoff_base_ms;
    if (o->max_cached_sigs <= 0)
        o->max_cached_sigs = 1024;
    t->ob = outbound_new(base, &opt->outbound, err, errlen);
    if (t->ob == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void tim_cancel(struct tim *t, void *arg)
{
    struct tcall *c = t->calls;
    while (c != NULL) {
        struct tcall *nx = c->next;
        if (c->arg != arg || c->done == NULL) {
            c = nx;
            continue;
        }
        if (c->state == ST_IN_FLIGHT) {
            c->done = NULL; /* the transfer ends by itself (its timeout bounds it), unreported */
            c = nx;
            continue;
        }
        if (c->state == ST_QUEUED) {
            for (struct bucket *b = t->buckets; b != NULL; b = b->next) {
                struct tcall *prev = NULL;
                for (struct tcall *q = b->qhead; q != NULL; prev = q, q = q->qnext)
                    if (q == c) {
                        if (prev != NULL)
                            prev->qnext = c->qnext;
                        else
                            b->qhead = c->qnext;
                        if (b->qtail == c)
                            b->qtail = prev;
                        b->queued--;
                        break;
                    }
            }
        } else if (c->state == ST_SIGNING) {
            for (struct sig_entry *e = t->sigs; e != NULL; e = e->next) {
                struct tcall **pp = &e->waiters;
                while (*pp != NULL && *pp != c)
                    pp = &(*pp)->qnext;
                if (*pp == c) {
                    *pp = c->qnext;
                    break;
                }
            }
        }
        /* Queued, signing, waiting to retry or finishing: gone now (its event with it). */
        call_unlink(c);
        call_free(c);
        c = nx;
    }
}

void tim_free(struct tim *t)
{
    if (t == NULL)
        return;
    t->closing = 1;
    /* In-flight calls first: their replies come back cancelled and are delivered at once. */
    outbound_free(t->ob);
    t->ob = NULL;
    for (struct bucket *b = t->buckets; b != NULL; b = b->next) {
        b->qhead = b->qtail = NULL;
        b->queued = 0;
    }
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next) {
        e->waiters = NULL;
        if (e->signing != NULL)
            e->signing->t = NULL;
    }
    while (t->calls != NULL) {
        struct tcall *c = t->calls;
        if (c->state != ST_FINISHING) {
            c->result.rc = TIM_CANCELLED;
            snprintf(c->info, sizeof c->info, "cancelled: the client is shutting down");
            c->result.error_info = c->info;
        }
        deliver(c);
    }
    while (t->buckets != NULL) {
        struct bucket *b = t->buckets;
        t->buckets = b->next;
        event_free(b->timer);
        free(b);
    }
    while (t->sigs != NULL) {
        struct sig_entry *e = t->sigs;
        t->sigs = e->next;
        entry_free(e);
    }
    free(t);
}

enum tim_rc tim_call(struct tim *t, const struct tim_call *p, tim_done_fn done, void *arg,
                     int64_t *retry_after_ms)
{
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    if (t->closing)
        return TIM_CANCELLED; /* a done callback of tim_free() calling again */
    if (p->identifier == NULL || !tim_identifier_valid(p->identifier) || p->service == NULL ||
        !tim_name_valid(p->service) || p->command == NULL || !tim_name_valid(p->command) ||
        tim_base_url_valid(p->base_url != NULL ? p->base_url : TIM_DEFAULT_BASE_URL,
                           t->opt.outbound.allow_insecure) == 0)
        return TIM_INVALID;
    struct bucket *b = bucket_get(t, p->sdkappid);
    if (b == NULL)
        return TIM_NO_MEMORY;
    bucket_refill(b);
    int now = b->qhead == NULL && b->tokens >= 1.0;
    if (!now) {
        double wait = ((double)b->queued + 1.0 - b->tokens) / b->rate * 1000.0;
        if (b->queued >= t->opt.max_queue || wait > (double)t->opt.max_wait_ms) {
            if (retry_after_ms != NULL)
                *retry_after_ms = ceil_ms(wait);
            return TIM_RATE_LIMITED;
        }
    }
    struct tcall *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TIM_NO_MEMORY;
    const char *body = p->body != NULL ? p->body : "{}";
    size_t body_len = p->body != NULL ? p->body_len : 2;
    c->body = malloc(body_len + 1);
    c->base_url = strdup(p->base_url != NULL ? p->base_url : TIM_DEFAULT_BASE_URL);
    if (c->body == NULL || c->base_url == NULL) {
        call_free(c);
        return TIM_NO_MEMORY;
    }
    memcpy(c->body, body, body_len);
    c->body[body_len] = '\0';
    c->body_len = body_len;
    c->t = t;
    c->sdkappid = p->sdkappid;
    c->key_version = p->key_version;
    snprintf(c->identifier, sizeof c->identifier, "%s", p->identifier);
    snprintf(c->service, sizeof c->service, "%s", p->service);
    snprintf(c->command, sizeof c->command, "%s", p->command);
    c->done = done;
    c->arg = arg;
    c->started_ms = ((double)clock_monotonic_ns() / 1e6);
    c->next = t->calls;
    if (t->calls != NULL)
        t->calls->prev = c;
    t->calls = c;
    if (now) {
        b->tokens -= 1.0;
        get_sig(c);
    } else {
        bucket_push(b, c);
        bucket_arm(b);
    }
    return TIM_OK;
}
