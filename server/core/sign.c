/*
 * Signing with group commit (sign.h): the pool hands a thread every waiting sign (up to
 * SIGN_GROUP_MAX); that thread reads each app of the group and its active key once, signs, and
 * records every signature and refusal of the group in one transaction.
 */
#include "sign.h"
#include "sign_chain_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "clock.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

#define NO_RECORD_MSG "the signature could not be recorded; no UserSig was issued"

/* One app of a group: its cached entry (or why there is none), shared by the group's signs. */
struct group_app {
    uint32_t sdkappid;
    const struct cache_app *entry; /* a reference; NULL: err says why */
    enum api_error err;            /* API_OK: entry, with an active key, and signer are ready */
    bool refused;                  /* err broke a rule (no app, no active key): audit it */
    char msg[SIGN_MSG_BUF];
    struct usersig_signer *signer; /* the thread's (thread_signer), or the group's own */
    bool owns_signer;              /* the group's own: freed with the group */
    uint64_t n_signed;
};

/* Signers are not thread-safe and cost a zlib stream to make: each database thread keeps a few,
 * one per cache entry it signed with lately (held by reference, so the pointer stays unique). */
#define THREAD_SIGNERS 8
struct thread_signer {
    const struct cache_app *entry;
    struct usersig_signer *signer;
};
static _Thread_local struct thread_signer thread_signers[THREAD_SIGNERS];
static _Thread_local unsigned thread_signer_next;

static void thread_signer_drop(struct thread_signer *t)
{
    usersig_signer_free(t->signer);
    cache_app_release(t->entry);
    t->signer = NULL;
    t->entry = NULL;
}

/* Only database threads keep signers (sign_thread_start); a sign run on another thread (no
 * pool: tests, operator commands) makes one for its group. */
static _Thread_local bool thread_keeps_signers;

void sign_thread_start(void)
{
    thread_keeps_signers = true;
}

/* Drops the signers of entries the cache no longer holds (evicted, replaced, never published):
 * their references would keep a disabled or destroyed version's key in memory, unwiped, until
 * the slot came round again. Only between groups: a group uses the signers it was given. */
static void thread_signers_sweep(void)
{
    for (unsigned i = 0; i < THREAD_SIGNERS; i++)
        if (thread_signers[i].entry != NULL && !cache_app_listed(thread_signers[i].entry))
            thread_signer_drop(&thread_signers[i]);
}

void sign_thread_exit(void)
{
    for (unsigned i = 0; i < THREAD_SIGNERS; i++)
        thread_signer_drop(&thread_signers[i]);
}

/* The thread's signer for entry's active key, made on first use. USERSIG_OK with *out set. */
static enum usersig_rc thread_signer(const struct cache_app *entry, struct usersig_signer **out)
{
    for (unsigned i = 0; i < THREAD_SIGNERS; i++)
        if (thread_signers[i].entry == entry) {
            *out = thread_signers[i].signer;
            return USERSIG_OK;
        }
    struct usersig_signer *signer = NULL;
    enum usersig_rc urc =
        usersig_signer_new(entry->active->key, entry->app.sdkappid, USERSIG_DEFAULT_LEVEL,
                           (enum usersig_id_policy)entry->app.identifier_policy, &signer);
    if (urc != USERSIG_OK)
        return urc;
    struct thread_signer *t = &thread_signers[thread_signer_next++ % THREAD_SIGNERS];
    thread_signer_drop(t);
    t->entry = cache_app_ref(entry);
    t->signer = signer;
    *out = signer;
    return USERSIG_OK;
}

enum api_error sign_check_app(const struct store_app *app, struct sign_input *in, char *msg,
                              size_t cap)
{
    if (usersig_identifier_check(in->identifier, in->identifier_len,
                                 (enum usersig_id_policy)app->identifier_policy) != USERSIG_OK) {
        if (app->identifier_policy == STORE_ID_STRICT)
            snprintf(msg, cap,
                     "identifier must be 1 to %d bytes of A-Z a-z 0-9 _ - (app %u's "
                     "identifier_policy is strict)",
                     USERSIG_MAX_IDENTIFIER, app->sdkappid);
        else
            snprintf(msg, cap,
                     "identifier must be 1 to %d bytes of printable ASCII, 0x20 to 0x7e (app "
                     "%u's identifier_policy is printable)",
                     USERSIG_MAX_IDENTIFIER, app->sdkappid);
        return API_ERR_BAD_IDENTIFIER;
    }
    if (!in->has_expire) {
        in->expire = app->default_expire;
        in->has_expire = true;
        in->expire_defaulted = true;
    }
    if (in->expire_defaulted && in->expire > (json_int_t)app->max_expire)
        in->expire = app->max_expire;
    if (in->expire < 1 || in->expire > (json_int_t)app->max_expire) {
        snprintf(msg, cap,
                 "expire must be 1 to %u seconds: at most app %u's max_expire (%u seconds)",
                 app->max_expire, app->sdkappid, app->max_expire);
        return API_ERR_BAD_EXPIRE;
    }
    return API_OK;
}

enum api_error sign_check_rate(struct ratelimit *rl, int processes, const struct cache_app *entry,
                               const struct principal *p, int64_t *retry_after_ms, char *msg,
                               size_t cap)
{
    uint32_t token_rate = p != NULL ? p->signs_per_second : 0;
    uint32_t app_rate = entry->limits.signs_per_second;
    double div = processes > 1 ? (double)processes : 1.0;

    *retry_after_ms = 0;
    if (rl == NULL || (token_rate == 0 && app_rate == 0))
        return API_OK; /* the common case: no lock, nothing counted */
    struct ratelimit_key keys[2] = {
        {RATELIMIT_TOKEN, p != NULL ? p->token_id : 0, token_rate / div},
        {RATELIMIT_APP, entry->app.sdkappid, app_rate / div},
    };
    if (p == NULL || p->token_id == 0)
        keys[0].rate = 0; /* the server itself, or the command line: no token bucket */
    int which = ratelimit_take(rl, keys, 2, clock_monotonic_ns(), retry_after_ms);
    if (which < 0)
        return API_OK;
    if (which == 0) {
        snprintf(msg, cap,
                 "this API token may sign %u UserSigs a second (signs_per_second); retry after "
                 "%lld ms",
                 token_rate, (long long)*retry_after_ms);
        return API_ERR_TOKEN_SIGNS_PER_SECOND;
    }
    snprintf(msg, cap,
             "app %u may have %u UserSigs signed a second (signs_per_second); retry after %lld ms",
             entry->app.sdkappid, app_rate, (long long)*retry_after_ms);
    return API_ERR_APP_SIGNS_PER_SECOND;
}

bool sign_is_admin_identifier(const struct store_app *app, const char *id, size_t len)
{
    for (size_t i = 0; i < app->n_admin_ids && i < STORE_APP_MAX_ADMIN_IDS; i++)
        if (strnlen(app->admin_ids[i], sizeof app->admin_ids[i]) == len &&
            memcmp(app->admin_ids[i], id, len) == 0)
            return true;
    return false;
}

enum api_error sign_check_principal(const struct store_app *app, const struct principal *p,
                                    struct sign_input *in, char *msg, size_t cap)
{
    if (app->n_admin_ids > 0 && sign_is_admin_identifier(app, in->identifier, in->identifier_len)) {
        if (p != NULL && !role_signs_admin_ids(p->role)) {
            snprintf(msg, cap,
                     "\"%.*s\" is one of app %u's administrator identifiers: only an admin or "
                     "admin_signer token may sign for it (this token's role is %s)",
                     (int)in->identifier_len, in->identifier, app->sdkappid, role_name(p->role));
            return API_ERR_ADMIN_IDENTIFIER;
        }
        if (in->expire > (json_int_t)app->admin_max_expire) {
            if (!in->expire_defaulted) {
                snprintf(msg, cap,
                         "expire must be 1 to %u seconds for an administrator identifier: at "
                         "most app %u's admin_max_expire (%u seconds)",
                         app->admin_max_expire, app->sdkappid, app->admin_max_expire);
                return API_ERR_BAD_EXPIRE;
            }
            in->expire = app->admin_max_expire;
        }
    }
    if (p != NULL && !principal_prefix_allows(p, in->identifier, in->identifier_len)) {
        snprintf(msg, cap,
                 "this token may sign only identifiers that start with one of its %zu "
                 "identifier_prefixes (such as \"%s\")",
                 p->n_prefixes, p->prefixes[0]);
        return API_ERR_IDENTIFIER_PREFIX;
    }
    return API_OK;
}

size_t sign_details_text(const struct sign_input *in, int64_t expire_at, char *buf, size_t cap)
{
    struct jsonw w;
    jsonw_init(&w, buf, cap, JSONW_ASCII);
    jsonw_object_begin(&w);
    /* The keys in sorted order: expire, expire_at, identifier, privilege_map, room_id,
     * room_str. */
    if (in->has_expire) {
        jsonw_key(&w, "expire");
        jsonw_int(&w, in->expire);
    }
    if (expire_at != 0) {
        jsonw_key(&w, "expire_at");
        jsonw_int(&w, expire_at);
    }
    /* A refused identifier may be long: the audit keeps at most what a valid one can be. */
    if (in->identifier != NULL && in->identifier_len <= USERSIG_MAX_IDENTIFIER) {
        jsonw_key(&w, "identifier");
        jsonw_string(&w, in->identifier, in->identifier_len);
    }
    if (in->room.kind != USERSIG_ROOM_NONE) {
        jsonw_key(&w, "privilege_map");
        jsonw_int(&w, in->room.privilege_map);
    }
    if (in->room.kind == USERSIG_ROOM_NUMERIC) {
        jsonw_key(&w, "room_id");
        jsonw_int(&w, in->room.room_id);
    }
    if (in->room.kind == USERSIG_ROOM_STRING) {
        jsonw_key(&w, "room_str");
        jsonw_string(&w, in->room.room_str, in->room.room_str_len);
    }
    jsonw_object_end(&w);
    return jsonw_finish(&w);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static struct group_app *find_app(struct group_app *apps, size_t n, uint32_t sdkappid)
{
    for (size_t i = 0; i < n; i++)
        if (apps[i].sdkappid == sdkappid)
            return &apps[i];
    return NULL;
}

/* The app's entry (cache.h) and the thread's signer for its active key. */
static void open_app(struct service *svc, struct group_app *a)
{
    a->err = service_app_entry(svc, a->sdkappid, &a->entry, a->msg, sizeof a->msg, &a->refused);
    if (a->err != API_OK)
        return;
    if (a->entry->active == NULL) {
        a->err = API_ERR_INVALID_STATE;
        a->refused = true;
        snprintf(a->msg, sizeof a->msg,
                 "app %u has no active key: import a key first (POST /v1/apps/%u/keys), or "
                 "enable or rotate to one",
                 a->sdkappid, a->sdkappid);
        return;
    }
    enum usersig_rc urc;
    if (thread_keeps_signers) {
        urc = thread_signer(a->entry, &a->signer);
    } else {
        urc =
            usersig_signer_new(a->entry->active->key, a->entry->app.sdkappid, USERSIG_DEFAULT_LEVEL,
                               (enum usersig_id_policy)a->entry->app.identifier_policy, &a->signer);
        a->owns_signer = urc == USERSIG_OK;
    }
    if (urc != USERSIG_OK) {
        a->err = api_error_from_usersig(urc);
        a->refused = api_error_status(a->err) < 500;
        snprintf(a->msg, sizeof a->msg, "%s", usersig_rc_message(urc));
    }
}

static void close_apps(struct group_app *apps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cache_app_release(apps[i].entry);
        apps[i].entry = NULL;
        if (apps[i].owns_signer)
            usersig_signer_free(apps[i].signer);
        apps[i].owns_signer = false;
        apps[i].signer = NULL;
        apps[i].n_signed = 0;
        apps[i].err = API_OK;
        apps[i].refused = false;
        apps[i].msg[0] = '\0';
    }
}

/* Signs one request with its app's signer, or decides its refusal. Returns true when the
 * refusal is to be audited. A sign over a rate limit is refused unaudited: a client hammering
 * the limit would otherwise fill the audit log (the access log and metrics count them). */
static bool sign_one(struct service *svc, struct group_app *a, struct sign_request *req,
                     int64_t now)
{
    if (req->refused_err != API_OK) {
        req->err = req->refused_err;
        return true;
    }
    /* The app's rules come before its key, as a person reads the refusal: the identifier and
     * expire are wrong whatever the key. */
    if (a->entry != NULL) {
        req->err = sign_check_app(&a->entry->app, &req->in, req->msg, sizeof req->msg);
        if (req->err == API_OK)
            req->err = sign_check_principal(&a->entry->app, req->principal, &req->in, req->msg,
                                            sizeof req->msg);
        if (req->err != API_OK)
            return true;
    }
    if (a->err != API_OK) {
        req->err = a->err;
        snprintf(req->msg, sizeof req->msg, "%s", a->msg);
        return a->refused;
    }
    if (!req->rate_checked) {
        req->rate_checked = true;
        req->rate_err = sign_check_rate(
            svc->limits, svc->cfg != NULL ? svc->cfg->rate_limit_processes : 1, a->entry,
            req->principal, &req->retry_after_ms, req->msg, sizeof req->msg);
    }
    if (req->rate_err != API_OK) {
        req->err = req->rate_err;
        return false;
    }
    req->key_version = a->entry->active->version;
    struct usersig_params params = {
        .identifier = req->in.identifier,
        .identifier_len = req->in.identifier_len,
        .expire = (uint32_t)req->in.expire,
        .time = now,
        .room = req->in.room,
    };
    enum usersig_rc urc =
        usersig_sign(a->signer, &params, req->token, sizeof req->token, &req->token_len);
    if (urc != USERSIG_OK) {
        req->err = api_error_from_usersig(urc);
        snprintf(req->msg, sizeof req->msg, "%s", usersig_rc_message(urc));
        return api_error_status(req->err) < 500;
    }
    req->issued_at = now;
    return false;
}

/* Ends every request of the group unsigned: a signature that could not be recorded is not
 * issued; a refusal stays a refusal (its audit event is lost, as logged). */
static void group_fail(struct sign_request **reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sign_request *req = reqs[i];
        if (req->err == API_OK || api_error_status(req->err) >= 500) {
            req->err = API_ERR_UNAVAILABLE;
            snprintf(req->msg, sizeof req->msg, "%s", NO_RECORD_MSG);
        }
        OPENSSL_cleanse(req->token, sizeof req->token);
        req->token_len = 0;
    }
}

static void reset_reqs(struct sign_request **reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        OPENSSL_cleanse(reqs[i]->token, sizeof reqs[i]->token);
        reqs[i]->token_len = 0;
        reqs[i]->key_version = 0;
        reqs[i]->err = reqs[i]->refused_err;
        /* A rate limit is drawn once (rate_checked): its message stays for the next try. */
        if (reqs[i]->refused_err == API_OK && reqs[i]->rate_err == API_OK)
            reqs[i]->msg[0] = '\0';
    }
}

/* What a sign that arrived while the group waited for its locks must share with the group to
 * join it: an app whose entry the group checked, and a token the group found live. */
struct late_filter {
    const struct group_app *apps;
    size_t n_apps;
    const int64_t *tokens;
    const bool *live;
    size_t n_tokens;
};

/* The API token a sign came with (0: none, as for the operator's commands). */
static int64_t req_token(const struct sign_request *req)
{
    return req->principal != NULL ? req->principal->token_id : 0;
}

/* True when token id (0: none) was found live by the group's check. */
static bool token_live(const int64_t *tokens, const bool *live, size_t n, int64_t id)
{
    for (size_t k = 0; k < n && id != 0; k++)
        if (tokens[k] == id)
            return live[k];
    return id == 0;
}

static bool late_fits(const struct dbpool_job *job, void *arg)
{
    const struct late_filter *f = arg;
    const struct sign_request *req = job->arg;
    bool app = false;
    for (size_t i = 0; i < f->n_apps && !app; i++)
        app = f->apps[i].sdkappid == req->sdkappid && f->apps[i].entry != NULL &&
              f->apps[i].signer != NULL;
    return app && token_live(f->tokens, f->live, f->n_tokens, req_token(req));
}

/* ---- one attempt at a group ---- */

/* A group's signs and what is recorded of them. */
struct group {
    struct sign_request **reqs;
    size_t n;
    struct group_app *apps;
    size_t n_apps;
    uint32_t ids[SIGN_GROUP_MAX];
    int64_t gens[SIGN_GROUP_MAX], tokens[SIGN_GROUP_MAX];
    bool live[SIGN_GROUP_MAX];
    size_t n_tokens;
    bool audit[SIGN_GROUP_MAX]; /* the request's refusal is audited */
    struct audit_event evs[SIGN_GROUP_MAX], *evp[SIGN_GROUP_MAX];
    char *texts; /* the events' details, SIGN_DETAILS_BUF bytes each */
    size_t n_ev;
    struct store_key_use uses[SIGN_GROUP_MAX];
    size_t n_uses;
    int64_t now;
};

/* The group's audit events (a refused token's sign has none: it answers 401) and sign counts.
 * False when out of memory. */
static bool group_events(struct service *svc, struct group *gr)
{
    gr->n_ev = 0;
    gr->n_uses = 0;
    for (size_t i = 0; i < gr->n; i++) {
        struct sign_request *req = gr->reqs[i];
        int64_t id = req_token(req);
        if (!token_live(gr->tokens, gr->live, gr->n_tokens, id)) {
            /* Revoked or expired since the request was let in: as if it had been refused at
             * the door (not audited, as no unauthenticated request is). */
            OPENSSL_cleanse(req->token, sizeof req->token);
            req->token_len = 0;
            req->err = API_ERR_UNAUTHORIZED;
            snprintf(req->msg, sizeof req->msg,
                     "the API token was revoked or expired; no UserSig was issued");
            if (svc->cache != NULL)
                cache_forget_token(svc->cache, id);
            continue;
        }
        const char *outcome = "ok";
        int64_t expire_at = 0;
        if (req->err == API_OK)
            expire_at = gr->now + req->in.expire;
        else if (gr->audit[i])
            outcome = api_error_code(req->err);
        else
            continue;
        if (gr->texts == NULL && (gr->texts = malloc(gr->n * SIGN_DETAILS_BUF)) == NULL)
            return false; /* out of memory: nothing of the group is issued */
        char *text = gr->texts + gr->n_ev * SIGN_DETAILS_BUF;
        if (sign_details_text(&req->in, expire_at, text, SIGN_DETAILS_BUF) == 0)
            return false;
        service_audit_event_text(req->principal, "usersig.sign", req->sdkappid, req->key_version,
                                 outcome, text, &gr->evs[gr->n_ev]);
        gr->evp[gr->n_ev] = &gr->evs[gr->n_ev];
        gr->n_ev++;
        if (req->err == API_OK)
            find_app(gr->apps, gr->n_apps, req->sdkappid)->n_signed++;
    }
    for (size_t i = 0; i < gr->n_apps; i++)
        if (gr->apps[i].n_signed > 0)
            gr->uses[gr->n_uses++] =
                (struct store_key_use){.sdkappid = gr->apps[i].sdkappid,
                                       .version = gr->apps[i].entry->active->version,
                                       .count = gr->apps[i].n_signed};
    return true;
}

/* The group in one round trip, chained on this process's last event (g): 1 when committed, 2
 * when the check under the lock found a change (nothing written: do it the usual way), -1 when
 * nothing could be recorded. Only for a group whose every app has an entry, with events. */
static int group_fast(struct service *svc, struct group *gr, struct store_group *g)
{
    for (size_t i = 0; i < gr->n_apps; i++)
        gr->gens[i] = gr->apps[i].entry->generation;
    for (size_t i = 0; i < gr->n_tokens; i++)
        gr->live[i] = true; /* as the check requires */
    if (!group_events(svc, gr))
        return -1;
    if (gr->n_ev == 0)
        return 2; /* nothing to append: the usual way checks the tokens */
    if (audit_link(keyring_audit_key(svc->kr), g->last_seq, g->last_mac, g->last_at_us, g->now_us,
                   gr->evp, gr->n_ev) != AUDIT_OK)
        return -1;
    /* A failure's transaction is rolled back by group_try. */
    enum store_rc rc = store_group_fast(svc->st, g, gr->evp, gr->n_ev, gr->uses, gr->n_uses);
    if (rc == STORE_OK) {
        sign_chain_wrote(svc->chain, g, false, 0, gr->evp[gr->n_ev - 1]);
        return 1;
    }
    sign_chain_lost(svc->chain, rc == STORE_CONFLICT);
    if (rc != STORE_CONFLICT)
        return -1;
    metrics_sign_group_head_moved();
    return 2; /* the apps' counts start again at close_apps */
}

/* One attempt at the group: sign with the entries, then, under the audit lock, check that they
 * are current and the tokens live, and record. Returns 1 when done (each request's outcome is
 * set), 0 when an entry was stale (evicted: try again), 2 when a one-round-trip attempt met a
 * change (try again the usual way), -1 when nothing could be recorded. */
static int group_try(struct service *svc, struct dbpool_job *jobs, struct group *gr, bool fast)
{
    size_t n = gr->n;
    struct store_group g = {
        .apps = gr->ids,
        .n_apps = gr->n_apps,
        .tokens = gr->tokens,
        .generations = gr->gens,
        .token_live = gr->live,
    };
    int result = -1;

    gr->n_tokens = 0;
    bool all_entries = true;
    for (size_t i = 0; i < gr->n_apps; i++) {
        open_app(svc, &gr->apps[i]);
        gr->ids[i] = gr->apps[i].sdkappid;
        all_entries &= gr->apps[i].entry != NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t id = req_token(gr->reqs[i]);
        bool seen = id == 0;
        for (size_t k = 0; k < gr->n_tokens && !seen; k++)
            seen = gr->tokens[k] == id;
        if (!seen)
            gr->tokens[gr->n_tokens++] = id;
    }
    g.n_tokens = gr->n_tokens;
    gr->now = clock_realtime_us() / 1000000;
    for (size_t i = 0; i < n; i++) {
        struct group_app *a = find_app(gr->apps, gr->n_apps, gr->reqs[i]->sdkappid);
        gr->audit[i] = a != NULL ? sign_one(svc, a, gr->reqs[i], gr->now) : true;
    }
    if (fast && all_entries && sign_chain_head(svc->chain, &g)) {
        result = group_fast(svc, gr, &g);
        if (result == 1)
            metrics_sign_group(n, 1);
        goto out;
    }

    if (store_group_begin(svc->st, &g) != STORE_OK) {
        sign_chain_lost(svc->chain, false);
        goto out;
    }
    int64_t offset_us = g.now_us - clock_realtime_us();
    for (size_t i = 0; i < gr->n_apps; i++) {
        const struct group_app *a = &gr->apps[i];
        int64_t want = a->entry != NULL ? a->entry->generation : 0;
        /* An app that was missing (refused) and now exists is as stale as one that changed. One
         * that could not be loaded (its key does not open, a read failed) signs nothing and
         * answers its own requests with that error: re-doing the group would only fail again,
         * and every other app's signs in it with it. */
        if (gr->gens[i] != want && (a->entry != NULL || a->refused)) {
            if (svc->cache != NULL) {
                cache_forget_app(svc->cache, a->sdkappid);
                cache_count_stale_group(svc->cache);
            }
            result = 0;
        }
    }
    if (result == 0)
        goto out;

    /* The locks are held: the signs that arrived meanwhile for the same apps and tokens join
     * the group (their apps' entries were just checked), so a wait makes the group larger
     * rather than the next one smaller. */
    if (n < SIGN_GROUP_MAX && jobs != NULL) {
        struct late_filter f = {gr->apps, gr->n_apps, gr->tokens, gr->live, gr->n_tokens};
        size_t more = dbpool_take_more(jobs, SIGN_GROUP_MAX - n, late_fits, &f);
        struct dbpool_job *j = jobs;
        for (size_t k = 0; k < n && j != NULL; k++)
            j = j->next;
        for (; j != NULL && more > 0; j = j->next, more--) {
            struct sign_request *req = j->arg;
            gr->reqs[n] = req;
            reset_reqs(&gr->reqs[n], 1);
            gr->audit[n] =
                sign_one(svc, find_app(gr->apps, gr->n_apps, req->sdkappid), req, gr->now);
            n++;
        }
        gr->n = n;
    }

    if (!group_events(svc, gr) ||
        audit_link(keyring_audit_key(svc->kr), g.last_seq, g.last_mac, g.last_at_us, g.now_us,
                   gr->evp, gr->n_ev) != AUDIT_OK ||
        store_group_commit(svc->st, gr->evp, gr->n_ev, gr->uses, gr->n_uses) != STORE_OK) {
        sign_chain_lost(svc->chain, false);
        goto out;
    }
    sign_chain_wrote(svc->chain, &g, true, offset_us, gr->n_ev > 0 ? gr->evp[gr->n_ev - 1] : NULL);
    result = 1;
    metrics_sign_group(n, 2);
out:
    if (store_in_transaction(svc->st))
        store_rollback(svc->st);
    free(gr->texts);
    gr->texts = NULL;
    close_apps(gr->apps, gr->n_apps);
    return result;
}

#define GROUP_ATTEMPTS 3 /* a group meets a changed app this many times at most, then 503 */

static void group_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    struct sign_request *reqs[SIGN_GROUP_MAX];
    uint32_t ids[SIGN_GROUP_MAX];
    struct group_app apps[SIGN_GROUP_MAX];
    struct group gr = {.reqs = reqs, .apps = apps};
    size_t n_ids = 0;
    int result = 0;
    bool fast = true;

    (void)st;
    if (thread_keeps_signers)
        thread_signers_sweep();
    for (struct dbpool_job *j = jobs; j != NULL && gr.n < SIGN_GROUP_MAX; j = j->next) {
        struct sign_request *req = j->arg;
        reqs[gr.n++] = req;
        ids[n_ids++] = req->sdkappid;
    }
    qsort(ids, n_ids, sizeof ids[0], cmp_u32);
    /* Only the entries used are cleared: a group has few apps, the array room for
     * SIGN_GROUP_MAX. */
    for (size_t i = 0; i < n_ids; i++)
        if (i == 0 || ids[i] != ids[i - 1]) {
            memset(&apps[gr.n_apps], 0, sizeof apps[gr.n_apps]);
            apps[gr.n_apps++].sdkappid = ids[i];
        }

    for (int attempt = 0; attempt < GROUP_ATTEMPTS && (result == 0 || result == 2);) {
        reset_reqs(reqs, gr.n);
        /* Only a first attempt takes in late signs: a retry's list must stay what it was. A
         * one-round-trip attempt takes none, and one that met a change is no attempt. */
        result = group_try(svc, attempt == 0 ? jobs : NULL, &gr, fast);
        if (result == 2)
            fast = false;
        else
            attempt++;
    }
    if (result != 1) {
        if (result == -1)
            log_error("sign: a group of %zu could not be recorded; none of its UserSigs was "
                      "issued",
                      gr.n);
        else
            log_warn("sign: a group of %zu met apps changing %d times; none of its UserSigs "
                     "was issued",
                     gr.n, GROUP_ATTEMPTS);
        group_fail(reqs, gr.n);
    }
}

/* While single signs wait on the database, the batches' workers leave one core free
 * (pipeline_reserve): otherwise, with every core signing a batch, the database's backend waits
 * for a time slice before it commits a group, and a login's sign takes tens of milliseconds
 * instead of a few. The batches slow down only while signs are out. */
#define SIGN_RESERVED_CORES 1

static void waiting_add(struct service *svc, struct sign_request *req)
{
    req->waiting = NULL;
    if (svc->pipeline == NULL)
        return;
    req->waiting = svc;
    if (svc->signs_waiting++ == 0)
        pipeline_reserve(svc->pipeline, SIGN_RESERVED_CORES);
}

static void waiting_drop(struct sign_request *req)
{
    struct service *svc = req->waiting;
    req->waiting = NULL;
    if (svc != NULL && --svc->signs_waiting == 0)
        pipeline_reserve(svc->pipeline, 0);
}

static void on_done(struct dbpool_job *job)
{
    struct sign_request *req = job->arg;
    waiting_drop(req);
    if (job->cancelled) {
        req->err = API_ERR_UNAVAILABLE;
        snprintf(req->msg, sizeof req->msg, "the server is stopping; no UserSig was issued");
    }
    req->done(req);
}

void sign_submit(struct service *svc, struct sign_request *req)
{
    memset(&req->job, 0, sizeof req->job);
    req->job.run = group_run;
    req->job.done = on_done;
    req->job.arg = req;
    req->job.batch = SIGN_GROUP_MAX;
    req->job.max_running = SIGN_GROUPS_AT_ONCE;
    req->rate_checked = false;
    req->rate_err = API_OK;
    req->retry_after_ms = 0;
    /* group_run sets it for every request it takes; one it did not take is never a 200. */
    req->err = API_ERR_UNAVAILABLE;
    if (req->refused_err == API_OK)
        req->msg[0] = '\0';
    waiting_add(svc, req);
    service_run(svc, &req->job);
}
