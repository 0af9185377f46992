/*
 * The admin UserSig cache of the Tencent REST client (tim.h): one entry per app, identifier and
 * key version, signed through the caller's signer, renewed in the background once a third of its
 * life is left, sent while enough of it is left, one signing at a time with the calls that need
 * it waiting on it, dropped when Tencent refuses it, wiped when replaced or freed.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "tim.h"
#include "tim_int.h"

#define RENEW_FRACTION 3  /* renew when less than 1/3 of a UserSig's life is left */
#define STALE_MARGIN_S 60 /* a UserSig is used while this much of it is left (at most) */
#define SHORT_EXPIRE_S 60 /* an admin UserSig valid less than this is logged, once per entry */

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

/* The entry's UserSig goes; one being signed now (under the old settings) will not be kept. */
static void entry_forget(struct sig_entry *e)
{
    entry_wipe_sig(e);
    e->issued_at = e->expire = 0;
    if (e->signing != NULL)
        e->signing->forgotten = 1;
}

void tim_forget_app(struct tim *t, uint32_t sdkappid)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next)
        if (e->sdkappid == sdkappid)
            entry_forget(e);
}

void tim_forget_all(struct tim *t)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next)
        entry_forget(e);
}

static void start_signing(struct tim *t, struct sig_entry *e);

/* Each call waiting for e's signing goes with use, or fails (use NULL) with rc and msg. */
static void serve_waiters(struct sig_entry *e, const char *use, enum tim_rc rc, const char *msg)
{
    struct tcall *w = e->waiters;
    e->waiters = NULL;
    while (w != NULL) {
        struct tcall *nx = w->qnext;
        w->qnext = NULL;
        if (use != NULL)
            tim_send(w, use);
        else
            tim_finish(w, rc, msg);
        w = nx;
    }
}

static void on_signed(void *ctx, const char *usersig, int64_t issued_at, int64_t expire)
{
    struct sign_req *req = ctx;
    struct tim *t = req->t;
    struct sig_entry *e = req->e;
    int forgotten = req->forgotten;
    free(req);
    if (t == NULL)
        return; /* tim_free() came first */
    e->signing = NULL;
    if (forgotten) {
        /* The app changed while this one was made: not kept; the waiters get one made now. */
        if (e->waiters == NULL)
            return;
        start_signing(t, e);
        if (e->signing == NULL && e->waiters != NULL) /* it could not start */
            serve_waiters(e, NULL, TIM_NO_MEMORY, "out of memory");
        return;
    }
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
    serve_waiters(e, use, TIM_SIGN_FAILED, "no admin UserSig could be made for the app");
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

void tim_get_sig(struct tcall *c)
{
    struct tim *t = c->t;
    struct sig_entry *e = entry_get(t, c);
    if (e == NULL) {
        tim_finish(c, TIM_NO_MEMORY, "out of memory");
        return;
    }
    int64_t now = now_s(t);
    int fresh = e->usersig != NULL && now < e->issued_at + e->expire - e->expire / RENEW_FRACTION;
    int usable = e->usersig != NULL && now + use_margin(e->expire) <= e->issued_at + e->expire;
    if (fresh || (usable && e->signing != NULL)) {
        tim_send(c, e->usersig);
        return;
    }
    if (usable) {
        /* Renew in the background; this call goes with the one still valid. */
        tim_send(c, e->usersig);
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
            tim_finish(c, TIM_NO_MEMORY, "out of memory");
        }
    }
}

void tim_sigs_drop(struct tim *t, const struct tcall *c)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next)
        if (e->sdkappid == c->sdkappid && e->key_version == c->key_version &&
            strcmp(e->identifier, c->identifier) == 0 && e->signing == NULL)
            entry_forget(e);
}

void tim_sigs_unwait(struct tim *t, const struct tcall *c)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next) {
        struct tcall **pp = &e->waiters;
        while (*pp != NULL && *pp != c)
            pp = &(*pp)->qnext;
        if (*pp == c) {
            *pp = c->qnext;
            return;
        }
    }
}

void tim_sigs_detach(struct tim *t)
{
    for (struct sig_entry *e = t->sigs; e != NULL; e = e->next) {
        e->waiters = NULL;
        if (e->signing != NULL)
            e->signing->t = NULL;
    }
}

void tim_sigs_free(struct tim *t)
{
    while (t->sigs != NULL) {
        struct sig_entry *e = t->sigs;
        t->sigs = e->next;
        entry_free(e);
    }
}
