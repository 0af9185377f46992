/*
 * server/tencent/tim.c against the Tencent REST stand-in over real HTTPS (tencent_fixture.h), on
 * a real libevent loop: replies passed through (OK and FAIL), 60007 retried then OK and retried
 * to its bound, the rate limiter's queue and its refusal with a retry time, admin UserSig caching
 * and renewal (an injected clock), short-lived admin UserSigs, cancelled calls (never reported,
 * never retried), calls started from a done callback while the client is freed, the stand-in's
 * own limit ridden out, Tencent's 70050 holding the admin account (nothing sent for it until the
 * hold ends, another account not held), no URL query nor UserSig in the log. outbound alone is
 * test_outbound.c; the pieces that need no server (settings, URLs, replies) are test_tim_pieces.c.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tencent_fixture.h"
#include "testlib.h"
#include "tim.h"
#include "usersig.h"

/* ---- tim against the stand-in -----------------------------------------------------------------
 */

static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

struct signer {
    int calls;
    int fail;  /* 1: the next signing fails */
    int defer; /* 1: signings wait for answer_pending() */
    int64_t expire_seen;
    tim_signed_fn pend_done; /* the signing waiting, with defer */
    void *pend_ctx;
    uint32_t pend_app;
    char pend_id[TIM_MAX_IDENTIFIER + 1];
};

/* The core's part, done here with the codec: always KEY1 (so APP2's stand-in key differs). */
static int make_token(uint32_t sdkappid, const char *identifier, int64_t expire,
                      char tok[USERSIG_TOKEN_BUF])
{
    struct usersig_key *key = NULL;
    struct usersig_signer *sg = NULL;
    size_t len = 0;
    struct usersig_params p = {0};
    p.identifier = identifier;
    p.identifier_len = strlen(identifier);
    p.expire = (uint32_t)expire;
    p.time = fake_now;
    int ok = usersig_key_new_hmac(KEY1, strlen(KEY1), &key) == USERSIG_OK &&
             usersig_signer_new(key, sdkappid, USERSIG_DEFAULT_LEVEL, USERSIG_ID_PRINTABLE, &sg) ==
                 USERSIG_OK &&
             usersig_sign(sg, &p, tok, USERSIG_TOKEN_BUF, &len) == USERSIG_OK;
    usersig_signer_free(sg);
    usersig_key_free(key);
    return ok;
}

static void test_sign(void *signer_arg, uint32_t sdkappid, const char *identifier,
                      uint32_t key_version, int64_t expire, tim_signed_fn done, void *ctx)
{
    (void)key_version;
    struct signer *s = signer_arg;
    s->calls++;
    s->expire_seen = expire;
    if (s->fail) {
        s->fail = 0;
        done(ctx, NULL, 0, 0);
        return;
    }
    if (s->defer) {
        s->pend_done = done;
        s->pend_ctx = ctx;
        s->pend_app = sdkappid;
        snprintf(s->pend_id, sizeof s->pend_id, "%s", identifier);
        return;
    }
    char tok[USERSIG_TOKEN_BUF];
    done(ctx, make_token(sdkappid, identifier, expire, tok) ? tok : NULL, fake_now, expire);
}

/* The deferred signing answers: with tok, or (NULL) a good UserSig. */
static void answer_pending(struct signer *s, const char *tok)
{
    char good[USERSIG_TOKEN_BUF];
    tim_signed_fn done = s->pend_done;
    s->pend_done = NULL;
    CHECK(done != NULL, "a signing is waiting");
    if (done == NULL)
        return;
    if (tok == NULL)
        tok = make_token(s->pend_app, s->pend_id, s->expire_seen, good) ? good : NULL;
    done(s->pend_ctx, tok, fake_now, s->expire_seen);
}

struct tim_wait {
    int done;
    struct tim_result r;
    char info[256];
    char reply[4096];
};

static void tim_done(const struct tim_result *r, void *arg)
{
    struct tim_wait *w = arg;
    w->done = 1;
    w->r = *r;
    snprintf(w->info, sizeof w->info, "%s", r->error_info ? r->error_info : "");
    w->r.error_info = w->info;
    w->reply[0] = '\0';
    if (r->reply != NULL) {
        char *s = json_dumps(r->reply, JSON_COMPACT | JSON_SORT_KEYS);
        if (s != NULL)
            snprintf(w->reply, sizeof w->reply, "%s", s);
        free(s);
    }
    w->r.reply = NULL;
}

static int make_attempts = 3;
static int64_t make_backoff_ms = 60;
static int64_t make_sig_expire = 300;
static int64_t make_hold_ms = 0;

/* The holds tim told of (on_hold). */
static struct {
    int n;
    uint32_t sdkappid;
    char identifier[TIM_MAX_IDENTIFIER + 1];
    int64_t ms;
} told;

static void on_hold(void *arg, uint32_t sdkappid, const char *identifier, int64_t ms)
{
    (void)arg;
    told.n++;
    told.sdkappid = sdkappid;
    snprintf(told.identifier, sizeof told.identifier, "%s", identifier);
    told.ms = ms;
}

static struct tim *tim_make(struct signer *s, double rate, double burst, int64_t max_wait_ms)
{
    struct tim_options o = {0};
    o.outbound.ca_file = ca_file;
    o.outbound.timeout_ms = 5000;
    o.sign = test_sign;
    o.sign_arg = s;
    o.clock = fake_clock;
    o.sig_expire = make_sig_expire;
    o.rate = rate;
    o.burst = burst;
    o.max_wait_ms = max_wait_ms;
    o.max_queue = 10;
    o.max_attempts = make_attempts;
    o.backoff_base_ms = make_backoff_ms;
    o.backoff_max_ms = 8 * make_backoff_ms;
    o.hold_ms = make_hold_ms;
    o.on_hold = on_hold;
    char err[256];
    struct tim *t = tim_new(base, &o, err, sizeof err);
    CHECK(t != NULL, "tim_new: %s", err);
    return t;
}

static enum tim_rc call(struct tim *t, uint32_t app, const char *identifier, const char *cmd,
                        const char *body, struct tim_wait *w, int64_t *retry_after)
{
    memset(w, 0, sizeof *w);
    struct tim_call c = {0};
    c.sdkappid = app;
    c.identifier = identifier;
    c.key_version = 1;
    c.base_url = base_url;
    c.service = "im_open_login_svc";
    c.command = cmd;
    c.body = body;
    c.body_len = strlen(body);
    return tim_call(t, &c, tim_done, w, retry_after);
}

static void call_wait(struct tim *t, uint32_t app, const char *identifier, const char *cmd,
                      const char *body, struct tim_wait *w)
{
    enum tim_rc rc = call(t, app, identifier, cmd, body, w, NULL);
    CHECK(rc == TIM_OK, "%s accepted (%d)", cmd, rc);
    CHECK(!w->done, "%s: not done within tim_call", cmd);
    if (rc == TIM_OK)
        run_until(&w->done);
}

static void test_tim(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 100, 100, 2000);
    struct tim_wait w;

    /* OK, and what the stand-in kept agrees. */
    call_wait(t, APP1, "administrator", "account_import", "{\"UserID\":\"alice\",\"Nick\":\"A\"}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok && w.r.error_code == 0 && w.r.attempts == 1 &&
              w.r.http_status == 200,
          "import: rc %d ok %d code %lld (%s)", w.r.rc, w.r.action_ok, w.r.error_code, w.info);
    CHECK(s.calls == 1 && s.expire_seen == 300, "one signing (%d), 300 s asked", s.calls);
    call_wait(t, APP1, "administrator", "multiaccount_import",
              "{\"AccountList\":[{\"UserID\":\"bob\"},{\"UserID\":\"\"},"
              "{\"UserID\":\"123456789012345678901234567890123\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok &&
              strstr(w.reply, "\"FailAccounts\":[\"\",\"123456789012345678901234567890123\"]"),
          "multiaccount_import: %s", w.reply);
    call_wait(
        t, APP1, "administrator", "account_check",
        "{\"CheckItem\":[{\"UserID\":\"alice\"},{\"UserID\":\"bob\"},{\"UserID\":\"carol\"}]}", &w);
    CHECK(strstr(w.reply, "\"AccountStatus\":\"Imported\",\"ResultCode\":0,\"ResultInfo\":\"\","
                          "\"UserID\":\"alice\"") &&
              strstr(w.reply, "\"AccountStatus\":\"NotImported\",\"ResultCode\":0,"
                              "\"ResultInfo\":\"\",\"UserID\":\"carol\""),
          "account_check: %s", w.reply);
    CHECK(s.calls == 1, "the admin UserSig was cached: %d signings", s.calls);

    /* FAIL passed through, not retried: a bad body, a non-admin, a key Tencent does not hold. */
    call_wait(t, APP1, "administrator", "account_import", "{\"UserID\":\"\"}", &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 70402 && w.r.attempts == 1,
          "70402 passed through: %lld after %d", w.r.error_code, w.r.attempts);
    call_wait(t, APP1, "alice", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 60010 && w.r.attempts == 1,
          "not an admin: %lld", w.r.error_code);
    call_wait(t, APP2, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 70009 && w.r.attempts == 1,
          "another key: %lld", w.r.error_code);
    call_wait(t, APP1, "administrator", "no_such_command", "{}", &w);
    CHECK(w.r.rc == TIM_OK && w.r.error_code == 60009, "unknown command: %lld", w.r.error_code);

    /* 60007 twice, then OK: three attempts, with backoffs between them. */
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60007,\"ErrorInfo\":\"too fast\"},{\"ErrorCode\":60011}]");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok && w.r.attempts == 3, "retried to OK: %d attempts",
          w.r.attempts);
    CHECK(w.r.duration_ms >= 30 + 60, "backed off: %.0f ms", w.r.duration_ms);
    /* 60007 every time: three attempts, then the FAIL with a retry time. */
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60007},{\"ErrorCode\":60007},{\"ErrorCode\":60007}]");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 60007 && w.r.attempts == 3 &&
              w.r.retry_after_ms > 0,
          "retries bounded: %d attempts, code %lld, retry after %lld", w.r.attempts, w.r.error_code,
          (long long)w.r.retry_after_ms);
    /* Not retried: another code, and an HTTP error. */
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60008},{\"http_status\":502,\"ErrorCode\":0}]");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.error_code == 60008 && w.r.attempts == 1, "60008 not retried");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_BAD_REPLY && w.r.http_status == 502 && w.r.attempts == 1,
          "HTTP 502: bad reply (%d)", w.r.rc);

    /* Renewal: with less than a third of its 300 s left the UserSig is renewed in the background
     * (this call goes with the old one); past its end, the next call waits for a new one. */
    int before = s.calls;
    fake_now += 150;
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before, "half its life left: no signing (%d)", s.calls);
    fake_now += 60; /* 210 s of 300: 90 s left, under a third */
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before + 1, "renewed under a third (%d)", s.calls);
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before + 1, "the renewed one is used (%d)", s.calls);
    fake_now += 1000; /* past every UserSig made so far */
    s.fail = 1;
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_SIGN_FAILED && w.r.attempts == 0, "signing failed: %d", w.r.rc);
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before + 3, "signed again after the failure (%d)", s.calls);
    /* Another identifier or key version: an entry of its own. */
    call_wait(t, APP1, "ops", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &w);
    CHECK(w.r.action_ok && s.calls == before + 4, "ops signed for (%d)", s.calls);
    tim_forget_app(t, APP1);
    call_wait(t, APP1, "ops", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &w);
    CHECK(w.r.action_ok && s.calls == before + 5, "forgotten, signed again (%d)", s.calls);

    /* Refused before any call: bad names, a bad base URL. */
    struct tim_call bad = {APP1, "administrator", 1, base_url, "im_open_login_svc", "Bad", "{}", 2};
    CHECK(tim_call(t, &bad, tim_done, &w, NULL) == TIM_INVALID, "bad command refused");
    bad.command = "account_check";
    bad.base_url = "http://127.0.0.1:1";
    CHECK(tim_call(t, &bad, tim_done, &w, NULL) == TIM_INVALID, "http base refused");
    outbound_free(ob);
    tim_free(t);
}

static void test_rate_limiter(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    /* 5 calls a second, a burst of 2, a wait of at most 500 ms: two go at once, the third and
     * fourth wait about 200 and 400 ms, the fifth (600 ms) is refused with that retry time. */
    struct tim *t = tim_make(&s, 5, 2, 500);
    struct tim_wait w[6];
    int64_t retry = -1;
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    for (int i = 0; i < 4; i++)
        CHECK(call(t, APP1, "administrator", "account_check", body, &w[i], &retry) == TIM_OK,
              "call %d accepted", i);
    CHECK(call(t, APP1, "administrator", "account_check", body, &w[4], &retry) ==
                  TIM_RATE_LIMITED &&
              retry >= 500 && retry <= 700,
          "the fifth refused, retry after %lld ms", (long long)retry);
    /* Another app has a bucket of its own. */
    CHECK(call(t, APP2, "administrator", "account_check", body, &w[5], &retry) == TIM_OK,
          "another app not limited");
    for (int i = 0; i < 4; i++)
        run_until(&w[i].done);
    run_until(&w[5].done);
    for (int i = 0; i < 4; i++)
        CHECK(w[i].r.rc == TIM_OK && w[i].r.action_ok, "call %d ok (%d %s)", i, w[i].r.rc,
              w[i].info);
    CHECK(w[2].r.duration_ms >= 150 && w[3].r.duration_ms >= 350,
          "queued calls waited: %.0f ms, %.0f ms", w[2].r.duration_ms, w[3].r.duration_ms);
    CHECK(w[0].r.duration_ms < w[2].r.duration_ms, "the first went first");
    CHECK(!w[4].done, "the refused call never completes");

    /* tim_free with calls queued and in flight: each gets TIM_CANCELLED, once. A full bucket
     * first (two go out at once, two wait). */
    usleep(450 * 1000);
    for (int i = 0; i < 4; i++)
        CHECK(call(t, APP1, "administrator", "account_check", body, &w[i], NULL) == TIM_OK,
              "call %d accepted", i);
    event_base_loop(base, EVLOOP_NONBLOCK);
    tim_free(t);
    int cancelled = 0;
    for (int i = 0; i < 4; i++)
        cancelled += w[i].done && (w[i].r.rc == TIM_CANCELLED || w[i].r.rc == TIM_OK);
    CHECK(cancelled == 4, "every call completed at free (%d)", cancelled);
    CHECK(w[2].r.rc == TIM_CANCELLED && w[3].r.rc == TIM_CANCELLED, "the queued ones cancelled");
}

/* tim_cancel: a queued call and a call in flight end without their done. */
static void test_cancel(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 5, 1, 2000);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    struct tim_wait a, b, c;
    CHECK(call(t, APP1, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    CHECK(call(t, APP1, "administrator", "account_check", body, &b, NULL) == TIM_OK, "b queued");
    tim_cancel(t, &b);
    run_until(&a.done);
    CHECK(a.r.rc == TIM_OK && a.r.action_ok, "a not cancelled");
    /* c goes out once a token is back; cancelled while in flight. */
    usleep(250 * 1000);
    CHECK(call(t, APP1, "administrator", "account_check", body, &c, NULL) == TIM_OK, "c sent");
    /* Handed to libcurl already (no loop turn here: one could finish it on a fast machine). */
    tim_cancel(t, &c);
    run_for(400);
    CHECK(!b.done && !c.done, "the cancelled calls never reported (b %d, c %d rc %d %s)", b.done,
          c.done, c.r.rc, c.info);
    /* The same arg again: reported as usual. */
    call_wait(t, APP1, "administrator", "account_check", body, &b);
    CHECK(b.done && b.r.rc == TIM_OK, "a new call with b's arg reported");
    tim_free(t);
    CHECK(!c.done, "nor at free");
}

/* A call cancelled in flight and answered 60007 is not tried again: the second injected reply
 * is still there for the next call. */
static void test_cancel_no_retry(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 100, 100, 2000);
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60007,\"delay_ms\":300},{\"ErrorCode\":60008}]");
    struct tim_wait a, b;
    CHECK(call(t, APP1, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    tim_cancel(t, &a);
    run_for(300 + 8 * make_backoff_ms + 500);
    CHECK(!a.done, "the cancelled call never reported");
    call_wait(t, APP1, "administrator", "account_check", body, &b);
    CHECK(b.r.rc == TIM_OK && !b.r.action_ok && b.r.error_code == 60008 && b.r.attempts == 1,
          "the cancelled call was not retried: the next one got the second reply (code %lld, %d "
          "attempts)",
          b.r.error_code, b.r.attempts);
    /* A cancelled call's 70001 still drops the admin UserSig Tencent refused: the next call
     * signs a new one. */
    int signed_before = s.calls;
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":70001,\"ErrorInfo\":\"expired\",\"delay_ms\":200}]");
    CHECK(call(t, APP1, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    tim_cancel(t, &a);
    run_for(700);
    CHECK(!a.done, "the cancelled call never reported");
    call_wait(t, APP1, "administrator", "account_check", body, &b);
    CHECK(b.r.rc == TIM_OK && b.r.action_ok && s.calls == signed_before + 1,
          "the refused UserSig was dropped: %d signings, before %d", s.calls, signed_before);
    outbound_free(ob);
    tim_free(t);
}

/* A done callback that calls again while tim_free() cancels: refused, nothing started. */
struct reenter {
    struct tim *t;
    int done;
    enum tim_rc rc, again;
    struct tim_wait sink;
};

static void reenter_done(const struct tim_result *r, void *arg)
{
    struct reenter *e = arg;
    e->done++;
    e->rc = r->rc;
    if (e->done == 1)
        e->again = call(e->t, APP1, "administrator", "account_check",
                        "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &e->sink, NULL);
}

static void test_free_reentry(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 5, 1, 2000);
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    inject(ob, APP1, "im_open_login_svc/account_check", "[{\"ErrorCode\":0,\"delay_ms\":3000}]");
    struct reenter e[2];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 2; i++) {
        e[i].t = t;
        struct tim_call c = {APP1,
                             "administrator",
                             1,
                             base_url,
                             "im_open_login_svc",
                             "account_check",
                             "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
                             0};
        c.body_len = strlen(c.body);
        CHECK(tim_call(t, &c, reenter_done, &e[i], NULL) == TIM_OK, "call %d accepted", i);
    }
    run_for(100); /* the first in flight, the second waiting for a token */
    tim_free(t);
    for (int i = 0; i < 2; i++)
        CHECK(e[i].done == 1 && e[i].rc == TIM_CANCELLED && e[i].again == TIM_CANCELLED &&
                  !e[i].sink.done,
              "call %d: cancelled once (%d, rc %d), its new call refused (rc %d)", i, e[i].done,
              e[i].rc, e[i].again);
    outbound_free(ob);
}

/* An app whose admin UserSigs live less than the 60 s margin (admin_max_expire 30): still
 * called, and the UserSig is reused while a quarter of it is left. */
static void test_short_expire(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    make_sig_expire = 30;
    struct tim *t = tim_make(&s, 100, 100, 2000);
    make_sig_expire = 300;
    struct tim_wait w;
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok && s.calls == 1,
          "a 30 s admin UserSig is used: rc %d (%s), %d signings", w.r.rc, w.info, s.calls);
    fake_now += 15;
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.action_ok && s.calls == 1, "reused with 15 s left (%d signings)", s.calls);
    fake_now += 9; /* 6 s left: under a quarter, a new one first */
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.action_ok && s.calls == 2, "signed again with 6 s left (%d signings)", s.calls);
    tim_free(t);
}

/* The stand-in's own limit (set to 20 account_delete calls a second) answers 60007 past it; the
 * calls over it are retried after backoffs that outlast the second, and all end OK. */
static void test_standin_limit(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    make_attempts = 6;
    make_backoff_ms = 200;
    struct tim *t = tim_make(&s, 1000, 1000, 2000);
    make_attempts = 3;
    make_backoff_ms = 60;
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    struct ob_wait cw;
    ob_post(ob, "/__standin/config", "{\"limits\":{\"im_open_login_svc/account_delete\":20}}", &cw);
    CHECK(cw.rc == OUTBOUND_OK && cw.status == 200, "limit set: %s", cw.body);
    enum { N = 40 };
    static struct tim_wait w[N];
    const char *body = "{\"DeleteItem\":[{\"UserID\":\"nobody\"}]}";
    for (int i = 0; i < N; i++)
        CHECK(call(t, APP1, "administrator", "account_delete", body, &w[i], NULL) == TIM_OK,
              "call %d accepted", i);
    int ok = 0, retried = 0;
    for (int i = 0; i < N; i++) {
        run_until(&w[i].done);
        ok += w[i].r.rc == TIM_OK && w[i].r.action_ok;
        retried += w[i].r.attempts > 1;
    }
    CHECK(retried > 0, "the stand-in's limit was hit and retried: %d", retried);
    CHECK(ok == N, "%d of %d ended OK", ok, N);
    ob_post(ob, "/__standin/config", "{\"limits\":{\"im_open_login_svc/account_delete\":100}}",
            &cw);
    outbound_free(ob);
    tim_free(t);
}

/* Admin UserSigs the stand-in cannot verify (APP2 holds KEY2, the signer signs with KEY1),
 * past the stand-in's limit (2 here, made by another client; the stand-in holds 10 s): Tencent's
 * 70050. The call that met it gets it with retry_after_ms the hold (800 ms here); the account's
 * queued call ends TIM_HELD without being sent, a new one is refused TIM_HELD, another account
 * of the app is not held; once the key matches, the stand-in's hold is reset and ours is over,
 * calls go through again. */
static void test_verify_hold(void)
{
    memset(&told, 0, sizeof told);
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    struct ob_wait cw;
    ob_post(ob, "/__standin/reset", "{}", &cw);
    ob_post(ob, "/__standin/config", "{\"verify_fail_limit\":2,\"verify_hold_ms\":10000}", &cw);
    CHECK(cw.rc == OUTBOUND_OK && cw.status == 200, "hold set: %s", cw.body);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    struct tim_wait a, b, c, d;
    struct tim *other = tim_make(&s, 100, 100, 2000);
    for (int i = 0; i < 2; i++) {
        call_wait(other, APP2, "administrator", "account_check", body, &a);
        CHECK(a.r.rc == TIM_OK && a.r.error_code == 70009, "failure %d: 70009 (%d %lld)", i, a.r.rc,
              a.r.error_code);
    }
    tim_free(other);
    /* One call a second: a goes at once, b and c wait (b a second, c two). */
    make_hold_ms = 800;
    struct tim *t = tim_make(&s, 1, 1, 3000);
    make_hold_ms = 0;
    CHECK(call(t, APP2, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    CHECK(call(t, APP2, "administrator", "account_check", body, &b, NULL) == TIM_OK, "b queued");
    CHECK(call(t, APP2, "ops", "account_check", body, &c, NULL) == TIM_OK, "c queued");
    run_until(&a.done);
    CHECK(a.r.rc == TIM_OK && !a.r.action_ok && a.r.error_code == 70050 &&
              a.r.retry_after_ms == 800,
          "a: Tencent's 70050 with the hold (%d %lld, retry %lld)", a.r.rc, a.r.error_code,
          (long long)a.r.retry_after_ms);
    CHECK(told.n == 1 && told.sdkappid == APP2 && strcmp(told.identifier, "administrator") == 0 &&
              told.ms == 800,
          "the hold told once (%d: %u %s %lld)", told.n, told.sdkappid, told.identifier,
          (long long)told.ms);
    run_until(&b.done);
    CHECK(b.r.rc == TIM_HELD && b.r.attempts == 0 && b.r.retry_after_ms > 0 &&
              b.r.retry_after_ms <= 800 && strstr(b.info, "70050") != NULL,
          "b held, never sent (%d, %d attempts, retry %lld, %s)", b.r.rc, b.r.attempts,
          (long long)b.r.retry_after_ms, b.info);
    int64_t retry = 0;
    CHECK(call(t, APP2, "administrator", "account_check", body, &d, &retry) == TIM_HELD &&
              retry > 0 && retry <= 800,
          "a new call refused while held, retry in %lld ms", (long long)retry);
    run_until(&c.done);
    CHECK(c.r.rc == TIM_OK && c.r.attempts == 1 && c.r.error_code == 70009,
          "another account of the app not held: sent, 70009 (%d %lld)", c.r.rc, c.r.error_code);
    struct tim_stats ts;
    tim_get_stats(t, &ts);
    CHECK(ts.holds_answered == 1 && ts.holds_told == 0 && ts.held_calls == 2 && told.n == 1,
          "counted: %llu answered, %llu told, %llu calls held",
          (unsigned long long)ts.holds_answered, (unsigned long long)ts.holds_told,
          (unsigned long long)ts.held_calls);
    /* Two calls of a client of its own in flight when the stand-in answers 70050: both get it,
     * the hold is told once (the second finds the account held already). */
    memset(&told, 0, sizeof told);
    struct tim *t2 = tim_make(&s, 100, 100, 2000);
    struct tim_wait x, y;
    CHECK(call(t2, APP2, "administrator", "account_check", body, &x, NULL) == TIM_OK &&
              call(t2, APP2, "administrator", "account_check", body, &y, NULL) == TIM_OK,
          "two sent at once");
    run_until(&x.done);
    run_until(&y.done);
    CHECK(x.r.rc == TIM_OK && x.r.error_code == 70050 && y.r.rc == TIM_OK &&
              y.r.error_code == 70050 && told.n == 1,
          "both answered 70050 (%d %lld, %d %lld), told %d time(s)", x.r.rc, x.r.error_code, y.r.rc,
          y.r.error_code, told.n);
    tim_free(t2);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"apps\":{\"%u\":{\"key\":\"%s\",\"admins\":[\"administrator\"]}}}",
             APP2, KEY1);
    ob_post(ob, "/__standin/config", cfg, &cw);
    CHECK(cw.rc == OUTBOUND_OK && cw.status == 200, "key fixed: %s", cw.body);
    ob_post(ob, "/__standin/reset", "{}", &cw);
    run_for(850); /* ours over too (and a token back) */
    call_wait(t, APP2, "administrator", "account_check", body, &a);
    CHECK(a.r.rc == TIM_OK && a.r.action_ok, "after the hold, with the right key: OK (%d %lld %s)",
          a.r.rc, a.r.error_code, a.info);
    CHECK(!d.done, "the refused call never completes");
    snprintf(cfg, sizeof cfg,
             "{\"apps\":{\"%u\":{\"key\":\"%s\",\"admins\":[\"administrator\"]}},"
             "\"verify_fail_limit\":10,\"verify_hold_ms\":60000}",
             APP2, KEY2);
    ob_post(ob, "/__standin/config", cfg, &cw);
    ob_post(ob, "/__standin/reset", "{}", &cw);
    outbound_free(ob);
    tim_free(t);
}

/* A hold another process met, told with tim_hold: the account's queued call ends TIM_HELD
 * unsent, a new one is refused, another account goes; out-of-range holds are refused; on_hold
 * is not called for it (the hold came from elsewhere); once it ends, calls go again. */
static void test_told_hold(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    memset(&told, 0, sizeof told);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    struct tim_wait a, b, c, d;
    struct tim *t = tim_make(&s, 1, 1, 3000);
    CHECK(call(t, APP1, "ops", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    CHECK(call(t, APP1, "administrator", "account_check", body, &b, NULL) == TIM_OK, "b queued");
    CHECK(tim_hold(t, APP1, "administrator", 0) == -1 &&
              tim_hold(t, APP1, "administrator", TIM_MAX_HOLD_MS + 1) == -1 &&
              tim_hold(t, APP1, "", 100) == -1 &&
              tim_hold(t, APP1, "0123456789012345678901234567890123", 100) == -1,
          "holds out of range refused");
    CHECK(tim_hold(t, APP1, "administrator", 600) == 0, "a hold told");
    run_until(&b.done);
    CHECK(b.r.rc == TIM_HELD && b.r.attempts == 0 && b.r.retry_after_ms > 0 &&
              b.r.retry_after_ms <= 600,
          "the queued call held, never sent (%d, %d attempts, retry %lld)", b.r.rc, b.r.attempts,
          (long long)b.r.retry_after_ms);
    int64_t retry = 0;
    CHECK(call(t, APP1, "administrator", "account_check", body, &d, &retry) == TIM_HELD &&
              retry > 0 && retry <= 600,
          "a new call refused, retry in %lld ms", (long long)retry);
    CHECK(tim_hold(t, APP1, "administrator", 100) == 0 &&
              call(t, APP1, "administrator", "account_check", body, &d, &retry) == TIM_HELD &&
              retry > 400,
          "a shorter hold told does not shorten it (retry %lld)", (long long)retry);
    run_until(&a.done);
    CHECK(a.r.rc == TIM_OK && a.r.action_ok, "another account goes (%d %lld %s)", a.r.rc,
          a.r.error_code, a.info);
    struct tim_stats ts;
    tim_get_stats(t, &ts);
    CHECK(ts.holds_answered == 0 && ts.holds_told == 2 && ts.held_calls == 3 && told.n == 0,
          "counted, none told back: %llu answered, %llu told, %llu calls held, %d told",
          (unsigned long long)ts.holds_answered, (unsigned long long)ts.holds_told,
          (unsigned long long)ts.held_calls, told.n);
    run_for(650);
    call_wait(t, APP1, "administrator", "account_check", body, &c);
    CHECK(c.r.rc == TIM_OK && c.r.action_ok && c.r.attempts == 1,
          "after the hold: sent, OK (%d %lld %s)", c.r.rc, c.r.error_code, c.info);
    CHECK(!d.done, "the refused calls never complete");
    tim_free(t);
}

/* tim_forget_app while the entry's UserSig is being signed: that one is not kept (it was made
 * under the old settings; here a bad one, which the stand-in would refuse with 70003), the
 * waiting call gets one signed after the forget, and that one is cached. */
static void test_forget_while_signing(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 100, 100, 2000);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    struct tim_wait w;
    s.defer = 1;
    CHECK(call(t, APP1, "administrator", "account_check", body, &w, NULL) == TIM_OK, "accepted");
    CHECK(s.calls == 1 && s.pend_done != NULL, "its signing under way");
    tim_forget_app(t, APP1);
    answer_pending(&s, "eJyrVg__"); /* made before the change: dropped */
    CHECK(!w.done && s.calls == 2 && s.pend_done != NULL, "signed again for the waiting call (%d)",
          s.calls);
    s.defer = 0;
    answer_pending(&s, NULL);
    run_until(&w.done);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok, "sent with the new one: %d %lld %s", w.r.rc,
          w.r.error_code, w.info);
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.action_ok && s.calls == 2, "the new one cached (%d signings)", s.calls);
    /* tim_forget_all: the next call signs again. */
    tim_forget_all(t);
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.action_ok && s.calls == 3, "forget_all: signed again (%d signings)", s.calls);
    tim_free(t);
}

int main(void)
{
    if (fixture_begin() != 0)
        return 1;
    test_tim();
    test_rate_limiter();
    test_cancel();
    test_cancel_no_retry();
    test_free_reentry();
    test_short_expire();
    test_standin_limit();
    test_verify_hold();
    test_told_hold();
    test_forget_while_signing();
    return fixture_end("tencent");
}
