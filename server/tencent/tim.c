/*
 * Tencent REST calls on the event loop: a call waits for its app's token bucket, then for an
 * admin UserSig (cached per app, identifier and key version; one signing at a time per entry, the
 * calls that need it waiting on it), then goes out through outbound.c; a 60007/60011 answer is
 * tried again after an exponential backoff with jitter, through the bucket again, a bounded
 * number of times; a 70050 answer (too many UserSigs Tencent could not verify) holds the admin
 * account's calls for the minute Tencent asks. Every result reaches its caller from an event,
 * never from within tim_call(). The admin UserSig cache is tim_sigs.c.
 */
#include "tim.h"
#include "tim_int.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define CODE_VERIFY_HOLD 70050 /* Tencent: too many failed UserSigs, verify again in a minute */

/* ceil() of a non-negative x, without libm. */
static int64_t ceil_ms(double x)
{
    int64_t i = (int64_t)x;
    return (double)i < x ? i + 1 : i;
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
    c->result.duration_ms = clock_monotonic_msf() - c->started_ms;
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
void tim_finish(struct tcall *c, enum tim_rc rc, const char *msg)
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
    double now = clock_monotonic_msf();
    b->tokens += (now - b->last_ms) / 1000.0 * b->rate;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_ms = now;
}

/* The time left of identifier's hold in b, in ms (0: none); ended holds go. */
static int64_t hold_left(struct bucket *b, const char *identifier)
{
    double now = clock_monotonic_msf();
    int64_t left = 0;
    for (struct hold **pp = &b->holds; *pp != NULL;) {
        struct hold *h = *pp;
        if (h->until_ms <= now) {
            *pp = h->next;
            free(h);
            continue;
        }
        if (strcmp(h->identifier, identifier) == 0)
            left = ceil_ms(h->until_ms - now);
        pp = &h->next;
    }
    return left;
}

static int hold_start(struct bucket *b, const char *identifier, int64_t ms)
{
    double until = clock_monotonic_msf() + (double)ms;
    struct hold *h = b->holds;
    while (h != NULL && strcmp(h->identifier, identifier) != 0)
        h = h->next;
    if (h == NULL) {
        h = calloc(1, sizeof *h);
        if (h == NULL) {
            log_error("tim: no memory to hold app %u's calls after Tencent's 70050", b->sdkappid);
            return -1;
        }
        snprintf(h->identifier, sizeof h->identifier, "%s", identifier);
        h->next = b->holds;
        b->holds = h;
    }
    if (until > h->until_ms)
        h->until_ms = until;
    return 0;
}

static void holds_free(struct bucket *b)
{
    while (b->holds != NULL) {
        struct hold *h = b->holds;
        b->holds = h->next;
        free(h);
    }
}

static void finish_held(struct tcall *c, int64_t left)
{
    c->t->stats.held_calls++;
    c->result.retry_after_ms = left;
    tim_finish(c, TIM_HELD,
               "Tencent answered 70050 for the app's administrator account (too many UserSigs it "
               "could not verify) and asks for a minute before the next");
}

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
        int64_t held = hold_left(b, c->identifier);
        if (held > 0) {
            finish_held(c, held); /* no token spent on it */
            continue;
        }
        b->tokens -= 1.0;
        tim_get_sig(c);
    }
    bucket_arm(b);
}

/* Tencent answered 70050 for identifier: its calls waiting for a token end now. They are taken
 * out first and ended after, with the queue whole again: an end delivered in place may call
 * tim_call for the app. */
static int bucket_hold(struct bucket *b, const char *identifier, int64_t ms)
{
    if (hold_start(b, identifier, ms) != 0)
        return -1;
    struct tcall **pp = &b->qhead, *last = NULL, *held = NULL, **held_end = &held;
    while (*pp != NULL) {
        struct tcall *c = *pp;
        if (strcmp(c->identifier, identifier) != 0) {
            last = c;
            pp = &c->qnext;
            continue;
        }
        *pp = c->qnext;
        c->qnext = NULL;
        b->queued--;
        *held_end = c;
        held_end = &c->qnext;
    }
    b->qtail = last;
    while (held != NULL) {
        struct tcall *c = held;
        held = c->qnext;
        c->qnext = NULL;
        finish_held(c, ms);
    }
    return 0;
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
    b->last_ms = clock_monotonic_msf();
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

/* ---- sending, replies, retries -------------------------------------------------------------- */

static void on_reply(const struct outbound_result *r, void *arg);

static uint32_t random_u32(int *ok)
{
    unsigned char b[4];
    *ok = RAND_bytes(b, sizeof b) == 1;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

void tim_send(struct tcall *c, const char *usersig)
{
    struct bucket *b = bucket_get(c->t, c->sdkappid);
    int64_t held = b != NULL ? hold_left(b, c->identifier) : 0;
    if (held > 0) { /* held while it waited for its UserSig */
        finish_held(c, held);
        return;
    }
    int ok;
    uint32_t rnd = random_u32(&ok);
    if (!ok) {
        tim_finish(c, TIM_NO_MEMORY, "the random number generator failed");
        return;
    }
    char url[TIM_MAX_URL];
    if (tim_build_url(c->base_url, c->t->opt.outbound.allow_insecure, c->service, c->command,
                      c->sdkappid, c->identifier, usersig, rnd, url, sizeof url) != 0) {
        tim_finish(c, TIM_INVALID, "the request URL could not be built");
        return;
    }
    c->state = ST_IN_FLIGHT;
    enum outbound_rc rc = outbound_post_json(c->t->ob, url, c->body, c->body_len, on_reply, c);
    OPENSSL_cleanse(url, sizeof url);
    if (rc != OUTBOUND_OK) {
        c->result.transport = rc;
        tim_finish(c, TIM_TRANSPORT, outbound_rc_name(rc));
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
        tim_finish(c, TIM_NO_MEMORY, "out of memory");
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
        tim_finish(c, r->rc == OUTBOUND_CANCELLED ? TIM_CANCELLED : TIM_TRANSPORT, r->error);
        return;
    }
    if (r->status != 200) {
        char msg[64];
        snprintf(msg, sizeof msg, "Tencent answered HTTP %ld", r->status);
        tim_finish(c, TIM_BAD_REPLY, msg);
        return;
    }
    int action_ok;
    long long code;
    const char *info;
    json_t *reply;
    if (tim_parse_reply(r->body, r->body_len, &reply, &action_ok, &code, &info) != 0) {
        tim_finish(c, TIM_BAD_REPLY, "the reply is not Tencent's JSON (ActionStatus, ErrorCode)");
        return;
    }
    c->reply = reply;
    free(c->raw);
    c->raw = malloc(r->body_len + 1);
    if (c->raw == NULL) {
        tim_finish(c, TIM_NO_MEMORY, "out of memory");
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
    } else if (!action_ok && code == CODE_VERIFY_HOLD) {
        /* Tencent holds the account for a minute: what waits for it fails now, and nothing is
         * sent for it meanwhile (each call would only meet the hold again). */
        c->result.retry_after_ms = t->opt.hold_ms;
        t->stats.holds_answered++;
        struct bucket *b = bucket_get(t, c->sdkappid);
        bool fresh = b == NULL || hold_left(b, c->identifier) == 0; /* else told already */
        if (b != NULL)
            (void)bucket_hold(b, c->identifier, t->opt.hold_ms);
        if (fresh && t->opt.on_hold != NULL)
            t->opt.on_hold(t->opt.hold_arg, c->sdkappid, c->identifier, t->opt.hold_ms);
        log_warn("tim: app %u: Tencent answered 70050 for its administrator account (too many "
                 "UserSigs it could not verify): no call for it in the next %lld ms",
                 c->sdkappid, (long long)t->opt.hold_ms);
    } else if (!action_ok && (code == 70001 || code == 70003 || code == 70009)) {
        tim_sigs_drop(t, c); /* Tencent refused our admin UserSig: the next call signs anew */
    }
    c->result.error_info = info;
    tim_finish(c, TIM_OK, NULL);
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
    if (o->hold_ms <= 0)
        o->hold_ms = 60000;
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
            tim_sigs_unwait(t, c);
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
    tim_sigs_detach(t);
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
        holds_free(b);
        free(b);
    }
    tim_sigs_free(t);
    free(t);
}

int tim_hold(struct tim *t, uint32_t sdkappid, const char *identifier, int64_t ms)
{
    if (identifier == NULL || !tim_identifier_valid(identifier) || ms <= 0 || ms > TIM_MAX_HOLD_MS)
        return -1;
    struct bucket *b = bucket_get(t, sdkappid);
    if (b == NULL || bucket_hold(b, identifier, ms) != 0)
        return -1;
    t->stats.holds_told++;
    return 0;
}

void tim_get_stats(const struct tim *t, struct tim_stats *out)
{
    *out = t->stats;
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
    int64_t held = hold_left(b, p->identifier);
    if (held > 0) {
        t->stats.held_calls++;
        if (retry_after_ms != NULL)
            *retry_after_ms = held;
        return TIM_HELD;
    }
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
    c->started_ms = clock_monotonic_msf();
    c->next = t->calls;
    if (t->calls != NULL)
        t->calls->prev = c;
    t->calls = c;
    if (now) {
        b->tokens -= 1.0;
        tim_get_sig(c);
    } else {
        bucket_push(b, c);
        bucket_arm(b);
    }
    return TIM_OK;
}
