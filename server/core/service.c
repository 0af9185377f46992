/*
 * The service layer shared by the handlers: API token authentication, audit events on behalf of
 * the caller, refusals audited in a transaction of their own, and opening sealed key versions.
 */
#include "service.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "clock.h"
#include "log.h"
#include "sign.h"
#include "webhooks.h"

void *service_thread_new(struct store *st, void *proto)
{
    struct service *svc = malloc(sizeof *svc);
    if (svc == NULL)
        return NULL;
    *svc = *(const struct service *)proto;
    svc->st = st;
    svc->pipeline = NULL;
    svc->pool = NULL;
    sign_thread_start(); /* called on the database thread itself */
    return svc;
}

void service_thread_free(void *ctx)
{
    sign_thread_exit();
    free(ctx);
}

void service_run(struct service *svc, struct dbpool_job *job)
{
    if (svc->pool != NULL) {
        dbpool_submit(svc->pool, job);
        return;
    }
    job->cancelled = false;
    job->next = NULL;
    job->run(svc->st, svc, job);
    if (store_in_transaction(svc->st))
        store_rollback(svc->st);
    job->done(job);
}

/* The verdict on a token for a secret that hashes to hash: SERVICE_TOKEN_OK, or
 * SERVICE_TOKEN_UNKNOWN (another secret, expired). The hashes are compared in constant time. */
static enum service_token_rc cached_verdict(const struct cache_token *t,
                                            const uint8_t hash[KEYRING_FP_BYTES], int64_t now,
                                            struct principal *out)
{
    if (!keyring_token_check(hash, t->hash))
        return SERVICE_TOKEN_UNKNOWN;
    if (t->expires_at_us != 0 && t->expires_at_us <= now)
        return SERVICE_TOKEN_UNKNOWN;
    *out = t->principal;
    return SERVICE_TOKEN_OK;
}

_Static_assert(STORE_TOKEN_MAX_PREFIXES == PRINCIPAL_MAX_PREFIXES &&
                   STORE_ID_MAX == PRINCIPAL_PREFIX_MAX &&
                   STORE_TOKEN_MAX_REST == PRINCIPAL_MAX_REST &&
                   STORE_TOKEN_REST_MAX == PRINCIPAL_REST_MAX,
               "a token's lists fit its principal's");
_Static_assert((int)STORE_ROLE_ADMIN_SIGNER == (int)ROLE_ADMIN_SIGNER &&
                   (int)STORE_ROLE_REST_CALLER == (int)ROLE_REST_CALLER &&
                   STORE_ROLE_COUNT == ROLE_COUNT,
               "the store's roles are the principal's");

/* A fetched row as cached (revoked rows are not cached: they fail every check anyway). */
static void token_entry(const struct store_token *t, struct cache_token *out)
{
    memset(out, 0, sizeof *out);
    out->id = t->id;
    memcpy(out->hash, t->secret_hash, sizeof out->hash);
    out->expires_at_us = t->expires_at_us;
    out->principal.token_id = t->id;
    snprintf(out->principal.name, sizeof out->principal.name, "%s", t->name);
    out->principal.role = (enum role)t->role;
    out->principal.all_apps = t->all_apps;
    out->principal.n_apps = t->n_apps < PRINCIPAL_MAX_APPS ? t->n_apps : PRINCIPAL_MAX_APPS;
    memcpy(out->principal.apps, t->apps, out->principal.n_apps * sizeof out->principal.apps[0]);
    out->principal.n_prefixes =
        t->n_prefixes < PRINCIPAL_MAX_PREFIXES ? t->n_prefixes : PRINCIPAL_MAX_PREFIXES;
    memcpy(out->principal.prefixes, t->prefixes,
           out->principal.n_prefixes * sizeof out->principal.prefixes[0]);
    out->principal.n_rest = t->n_rest < PRINCIPAL_MAX_REST ? t->n_rest : PRINCIPAL_MAX_REST;
    memcpy(out->principal.rest, t->rest, out->principal.n_rest * sizeof out->principal.rest[0]);
    out->principal.signs_per_second = t->limits.signs_per_second;
    out->principal.batch_tokens_per_day = t->limits.batch_tokens_per_day;
}

/* Records a token's use, at most once a minute: the row says when it was last used, so most
 * requests need no round trip for it. */
static void token_touch(struct service *svc, const struct store_token *t, int64_t now)
{
    if ((t->last_used_at_us == 0 || now - t->last_used_at_us >= 60 * 1000000LL) &&
        store_token_touch(svc->st, t->id) != STORE_OK)
        log_warn("token %lld: could not record its use", (long long)t->id);
}

void service_token_touch(struct service *svc, int64_t id)
{
    if (store_token_touch(svc->st, id) != STORE_OK)
        log_warn("token %lld: could not record its use", (long long)id);
}

enum service_token_rc service_token_cached(struct service *svc, const char *token,
                                           struct principal *out, bool *touch)
{
    int64_t id;
    uint8_t hash[KEYRING_FP_BYTES];
    struct cache_token t;
    enum service_token_rc rc = SERVICE_TOKEN_MISS;

    *touch = false;
    if (keyring_token_parse(token, &id, hash) != KEYRING_OK)
        return SERVICE_TOKEN_UNKNOWN;
    if (svc->cache != NULL && cache_token_get(svc->cache, id, &t)) {
        int64_t now = clock_realtime_us();
        rc = cached_verdict(&t, hash, now, out);
        if (rc == SERVICE_TOKEN_OK)
            *touch = cache_token_due(svc->cache, id, now);
        /* The keyed hash is the one secret-derived part; the principal (4 KiB with its lists)
         * holds nothing secret, and wiping it all cost a microsecond a request. */
        OPENSSL_cleanse(t.hash, sizeof t.hash);
    }
    OPENSSL_cleanse(hash, sizeof hash);
    return rc;
}

void service_check_tokens(struct service *svc, const char *const *tokens, size_t n,
                          enum service_token_rc *rc, struct principal *out)
{
    int64_t ids[SERVICE_TOKENS_MAX] = {0};
    uint8_t hashes[SERVICE_TOKENS_MAX][KEYRING_FP_BYTES];
    struct store_token rows[SERVICE_TOKENS_MAX];
    struct cache_token entry;
    int found[SERVICE_TOKENS_MAX];
    size_t n_ids = 0, slot[SERVICE_TOKENS_MAX];
    uint64_t epoch = svc->cache != NULL ? cache_epoch(svc->cache) : 0;

    if (n > SERVICE_TOKENS_MAX)
        n = SERVICE_TOKENS_MAX; /* the caller's batch is bounded by the same number */
    for (size_t i = 0; i < n; i++) {
        rc[i] = SERVICE_TOKEN_UNKNOWN;
        if (keyring_token_parse(tokens[i], &ids[n_ids], hashes[n_ids]) == KEYRING_OK)
            slot[i] = n_ids++;
        else
            slot[i] = SIZE_MAX;
    }
    if (store_token_get_many(svc->st, ids, n_ids, rows, found) != STORE_OK) {
        for (size_t i = 0; i < n; i++)
            if (slot[i] != SIZE_MAX)
                rc[i] = SERVICE_TOKEN_ERROR;
    } else {
        int64_t now = clock_realtime_us();
        for (size_t i = 0; i < n; i++) {
            size_t k = slot[i];
            if (k == SIZE_MAX || found[k] == 0)
                continue;
            if (found[k] < 0) {
                rc[i] = SERVICE_TOKEN_ERROR;
                continue;
            }
            if (rows[k].revoked_at_us != 0)
                continue;
            token_entry(&rows[k], &entry);
            rc[i] = cached_verdict(&entry, hashes[k], now, &out[i]);
            /* Published whatever the secret given: the row is the truth for every caller. */
            if (svc->cache != NULL)
                cache_token_put(svc->cache, &entry, rows[k].last_used_at_us, epoch);
            if (rc[i] == SERVICE_TOKEN_OK)
                token_touch(svc, &rows[k], now);
        }
    }
    OPENSSL_cleanse(entry.hash, sizeof entry.hash);
    OPENSSL_cleanse(hashes, sizeof hashes);
    for (size_t i = 0; i < n_ids; i++)
        OPENSSL_cleanse(rows[i].secret_hash, sizeof rows[i].secret_hash);
}

int service_audit_event(const struct principal *principal, const char *action, uint32_t sdkappid,
                        uint32_t key_version, const char *outcome, json_t *details,
                        struct audit_event *ev, char **text)
{
    *text = NULL;
    if (details != NULL) {
        *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        json_decref(details);
        if (*text == NULL)
            return -1;
    }
    service_audit_event_text(principal, action, sdkappid, key_version, outcome, *text, ev);
    return 0;
}

void service_audit_event_text(const struct principal *principal, const char *action,
                              uint32_t sdkappid, uint32_t key_version, const char *outcome,
                              const char *details, struct audit_event *ev)
{
    *ev = (struct audit_event){
        .actor_id = principal != NULL ? principal->token_id : 0,
        .actor_name = principal != NULL ? principal->name : "usersigd",
        .action = action,
        .sdkappid = sdkappid,
        .key_version = key_version,
        .outcome = outcome,
        .details = details,
    };
}

/* service_audit's append, details NULL allowed (none). */
static enum store_rc audit_details(struct service *svc, const struct principal *principal,
                                   const char *action, uint32_t sdkappid, uint32_t key_version,
                                   const char *outcome, json_t *details)
{
    struct audit_event ev;
    char *text;
    if (service_audit_event(principal, action, sdkappid, key_version, outcome, details, &ev,
                            &text) != 0)
        return STORE_ERROR;
    enum audit_rc rc = audit_append(svc->st, keyring_audit_key(svc->kr), &ev);
    /* The webhook event of the change, if it is one, in the same transaction (webhooks.h). */
    enum store_rc src = rc == AUDIT_OK ? webhooks_from_audit(svc->st, &ev) : STORE_ERROR;
    free(text);
    return src;
}

enum store_rc service_audit(struct service *svc, const struct principal *principal,
                            const char *action, uint32_t sdkappid, uint32_t key_version,
                            const char *outcome, json_t *details)
{
    if (details == NULL) {
        /* A change's event without what it changed is no record of it: the change fails. */
        log_error("audit: out of memory building the details of %s; the change is not made",
                  action);
        return STORE_ERROR;
    }
    return audit_details(svc, principal, action, sdkappid, key_version, outcome, details);
}

void service_audit_refusal(struct service *svc, const struct principal *principal,
                           const char *action, uint32_t sdkappid, uint32_t key_version,
                           const char *outcome, json_t *details)
{
    if (store_in_transaction(svc->st))
        store_rollback(svc->st);
    if (store_begin(svc->st) != STORE_OK) {
        json_decref(details);
        log_error("audit: cannot record the refusal of %s", action);
        return;
    }
    /* Without details (out of memory building them) the refusal is still recorded. */
    if (audit_details(svc, principal, action, sdkappid, key_version, outcome, details) !=
            STORE_OK ||
        store_commit(svc->st) != STORE_OK) {
        store_rollback(svc->st);
        log_error("audit: cannot record the refusal of %s", action);
    }
}

int service_open_key(struct service *svc, const struct store_key *k, struct usersig_key **out)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    enum usersig_rc urc;

    *out = NULL;
    if (k->sealed == NULL)
        return -1;
    if (keyring_open_key(svc->kr, k->sdkappid, k->version, k->sealed, k->sealed_len, &plain,
                         &len) != KEYRING_OK) {
        log_error("key %u/%u does not open under this master key", k->sdkappid, k->version);
        return -1;
    }
    if (k->kind == STORE_KEY_HMAC)
        urc = usersig_key_new_hmac((const char *)plain, len, out);
    else
        urc = usersig_key_new_pem((const char *)plain, len, out);
    keyring_secret_free(plain, len);
    if (urc != USERSIG_OK) {
        log_error("key %u/%u opened but is not a usable %s key", k->sdkappid, k->version,
                  store_key_kind_name(k->kind));
        return -1;
    }
    return 0;
}

enum api_error service_app_get(struct service *svc, uint32_t sdkappid, struct store_app *app,
                               char *msg, size_t cap, bool *refused)
{
    enum store_rc rc = store_app_get(svc->st, sdkappid, STORE_LOCK_NONE, app);
    if (rc == STORE_OK)
        return API_OK;
    *refused = rc == STORE_NOT_FOUND;
    if (*refused)
        snprintf(msg, cap, "no app with sdkappid %u", sdkappid);
    return service_store_error(rc, API_ERR_APP_NOT_FOUND);
}

enum api_error service_active_key(struct service *svc, uint32_t sdkappid, enum store_lock lock,
                                  struct store_key *key, struct usersig_key **ukey, char *msg,
                                  size_t cap, bool *refused)
{
    enum store_rc rc = store_key_get_active(svc->st, sdkappid, lock, key);
    if (rc != STORE_OK) {
        *refused = rc == STORE_NOT_FOUND;
        if (*refused)
            snprintf(msg, cap,
                     "app %u has no active key: import a key first (POST /v1/apps/%u/keys), or "
                     "enable or rotate to one",
                     sdkappid, sdkappid);
        return service_store_error(rc, API_ERR_INVALID_STATE);
    }
    if (service_open_key(svc, key, ukey) != 0) {
        snprintf(msg, cap, "key version %u of app %u does not open under this server's master key",
                 key->version, sdkappid);
        return API_ERR_INTERNAL;
    }
    return API_OK;
}

/* Reads app sdkappid and its live key versions into a new entry. The generation is read
 * first, so an entry is never older than its generation says: a change committed between the
 * reads leaves the entry with a generation already behind, and signing, which compares it
 * under the audit lock, reads the app again. */
static enum api_error app_load(struct service *svc, uint32_t sdkappid, struct cache_app **out,
                               char *msg, size_t cap, bool *refused)
{
    struct store_key *keys = NULL;
    struct store_app app;
    size_t n = 0;
    int64_t gen = 0;
    enum api_error err;
    struct cache_app *a = NULL;

    *out = NULL;
    if (store_app_generations(svc->st, &sdkappid, 1, &gen) != STORE_OK) {
        err = API_ERR_UNAVAILABLE;
        snprintf(msg, cap, "%s", api_error_info(err)->message);
        return err;
    }
    err = service_app_get(svc, sdkappid, &app, msg, cap, refused);
    if (err != API_OK)
        return err;
    struct store_limits limits;
    if (store_app_limits_get(svc->st, sdkappid, &limits) != STORE_OK) {
        err = API_ERR_UNAVAILABLE;
        snprintf(msg, cap, "%s", api_error_info(err)->message);
        return err;
    }
    if (store_key_list_sealed(svc->st, &sdkappid, 1, false, &keys, &n) != STORE_OK) {
        err = API_ERR_UNAVAILABLE;
        snprintf(msg, cap, "%s", api_error_info(err)->message);
        return err;
    }
    a = cache_app_alloc(n);
    if (a == NULL) {
        err = API_ERR_INTERNAL;
        snprintf(msg, cap, "out of memory");
        goto fail;
    }
    a->app = app;
    a->limits = limits;
    a->generation = gen;
    /* Newest first: the order verify tries them in. */
    for (size_t i = n; i-- > 0;) {
        struct cache_key *k = &a->keys[a->n_keys];
        if (service_open_key(svc, &keys[i], &k->key) != 0) {
            err = API_ERR_INTERNAL;
            snprintf(msg, cap,
                     "key version %u of app %u does not open under this server's master key",
                     keys[i].version, sdkappid);
            goto fail;
        }
        k->version = keys[i].version;
        k->state = keys[i].state;
        k->verify_until_us = keys[i].verify_until_us;
        a->n_keys++;
        if (k->state == STORE_KEY_ACTIVE)
            a->active = k;
    }
    store_key_list_free(keys, n);
    *out = a;
    return API_OK;
fail:
    store_key_list_free(keys, n);
    cache_app_discard(a);
    return err;
}

enum api_error service_app_entry(struct service *svc, uint32_t sdkappid,
                                 const struct cache_app **out, char *msg, size_t cap, bool *refused)
{
    struct cache_app *a;
    *refused = false;
    if (svc->cache != NULL && (*out = cache_app_get(svc->cache, sdkappid)) != NULL)
        return API_OK;
    uint64_t epoch = svc->cache != NULL ? cache_epoch(svc->cache) : 0;
    enum api_error err = app_load(svc, sdkappid, &a, msg, cap, refused);
    if (err != API_OK) {
        *out = NULL;
        return err;
    }
    *out = svc->cache != NULL ? cache_app_put(svc->cache, a, epoch) : a;
    return API_OK;
}

enum api_error service_store_error(enum store_rc rc, enum api_error not_found)
{
    switch (rc) {
    case STORE_OK:
        return API_OK;
    case STORE_NOT_FOUND:
        return not_found;
    case STORE_CONFLICT:
        return API_ERR_CONFLICT;
    default:
        return API_ERR_UNAVAILABLE;
    }
}

json_t *service_time_json(int64_t us)
{
    char buf[40];
    struct tm tm;
    if (us == 0)
        return json_null();
    time_t s = (time_t)(us / 1000000);
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06ldZ", (long)(us % 1000000));
    return json_string(buf);
}
