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
#include "log.h"

void *service_thread_new(struct store *st, void *proto)
{
    struct service *svc = malloc(sizeof *svc);
    if (svc == NULL)
        return NULL;
    *svc = *(const struct service *)proto;
    svc->st = st;
    svc->pipeline = NULL;
    svc->pool = NULL;
    return svc;
}

void service_thread_free(void *ctx)
{
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

static int64_t now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* The verdict on a fetched row for a token whose secret hashes to hash: API_AUTH_OK with *out
 * filled, or API_AUTH_NOT_FOUND (another secret, revoked, expired). The hashes are compared in
 * constant time. */
static int token_verdict(const struct store_token *t, const uint8_t hash[KEYRING_FP_BYTES],
                         int64_t now, struct api_principal *out)
{
    if (!keyring_token_check(hash, t->secret_hash))
        return API_AUTH_NOT_FOUND;
    if (t->revoked_at_us != 0 || (t->expires_at_us != 0 && t->expires_at_us <= now))
        return API_AUTH_NOT_FOUND;
    memset(out, 0, sizeof *out);
    out->token_id = t->id;
    snprintf(out->name, sizeof out->name, "%s", t->name);
    out->role = (enum api_role)t->role;
    out->all_apps = t->all_apps;
    out->n_apps = t->n_apps < API_PRINCIPAL_MAX_APPS ? t->n_apps : API_PRINCIPAL_MAX_APPS;
    memcpy(out->apps, t->apps, out->n_apps * sizeof out->apps[0]);
    return API_AUTH_OK;
}

/* Records a token's use, at most once a minute: the row says when it was last used, so most
 * requests need no round trip for it. */
static void token_touch(struct service *svc, const struct store_token *t, int64_t now)
{
    if ((t->last_used_at_us == 0 || now - t->last_used_at_us >= 60 * 1000000LL) &&
        store_token_touch(svc->st, t->id) != STORE_OK)
        log_warn("token %lld: could not record its use", (long long)t->id);
}

/* One token check in flight. */
struct auth_call {
    struct dbpool_job job;
    struct api_auth *call;
    char token[API_TOKEN_MAX + 1];
    int rc;
    struct api_principal principal;
};

void service_check_tokens(struct service *svc, const char *const *tokens, size_t n, int *rc,
                          struct api_principal *out)
{
    int64_t ids[SERVICE_TOKENS_MAX] = {0};
    uint8_t hashes[SERVICE_TOKENS_MAX][KEYRING_FP_BYTES];
    struct store_token rows[SERVICE_TOKENS_MAX];
    int found[SERVICE_TOKENS_MAX];
    size_t n_ids = 0, slot[SERVICE_TOKENS_MAX];

    if (n > SERVICE_TOKENS_MAX)
        n = SERVICE_TOKENS_MAX; /* the caller's batch is bounded by the same number */
    for (size_t i = 0; i < n; i++) {
        rc[i] = API_AUTH_NOT_FOUND;
        if (keyring_token_parse(tokens[i], &ids[n_ids], hashes[n_ids]) == KEYRING_OK)
            slot[i] = n_ids++;
        else
            slot[i] = SIZE_MAX;
    }
    if (store_token_get_many(svc->st, ids, n_ids, rows, found) != STORE_OK) {
        for (size_t i = 0; i < n; i++)
            if (slot[i] != SIZE_MAX)
                rc[i] = API_AUTH_ERROR;
    } else {
        int64_t now = now_us();
        for (size_t i = 0; i < n; i++) {
            size_t k = slot[i];
            if (k == SIZE_MAX || found[k] == 0)
                continue;
            if (found[k] < 0) {
                rc[i] = API_AUTH_ERROR;
                continue;
            }
            rc[i] = token_verdict(&rows[k], hashes[k], now, &out[i]);
            if (rc[i] == API_AUTH_OK)
                token_touch(svc, &rows[k], now);
        }
    }
    OPENSSL_cleanse(hashes, sizeof hashes);
    OPENSSL_cleanse(rows, sizeof rows);
}

/* The token checks waiting together, their rows fetched in one statement. */
static void auth_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct auth_call *calls[SERVICE_TOKENS_MAX];
    const char *tokens[SERVICE_TOKENS_MAX] = {0};
    struct api_principal principals[SERVICE_TOKENS_MAX];
    int rc[SERVICE_TOKENS_MAX];
    size_t n = 0;

    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL && n < SERVICE_TOKENS_MAX; j = j->next) {
        calls[n] = j->arg;
        tokens[n] = calls[n]->token;
        n++;
    }
    service_check_tokens(ctx, tokens, n, rc, principals);
    for (size_t i = 0; i < n; i++) {
        calls[i]->rc = rc[i];
        if (rc[i] == API_AUTH_OK)
            calls[i]->principal = principals[i];
        OPENSSL_cleanse(calls[i]->token, sizeof calls[i]->token);
    }
    OPENSSL_cleanse(principals, sizeof principals);
}

static void auth_done(struct dbpool_job *job)
{
    struct auth_call *a = job->arg;
    if (job->cancelled)
        a->rc = API_AUTH_ERROR;
    api_auth_done(a->call, (enum api_auth_rc)a->rc, a->rc == API_AUTH_OK ? &a->principal : NULL);
    OPENSSL_cleanse(a, sizeof *a);
    free(a);
}

void service_authenticate(void *ctx, const char *token, struct api_auth *call)
{
    struct service *svc = ctx;
    size_t len = strlen(token);
    struct auth_call *a;

    if (len > API_TOKEN_MAX) { /* the framework refuses longer ones before */
        api_auth_done(call, API_AUTH_NOT_FOUND, NULL);
        return;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        log_msg(LOG_ERROR, api_auth_request_id(call), "out of memory checking a token");
        api_auth_done(call, API_AUTH_ERROR, NULL);
        return;
    }
    a->call = call;
    memcpy(a->token, token, len + 1);
    a->job.run = auth_run;
    a->job.done = auth_done;
    a->job.arg = a;
    a->job.batch = SERVICE_TOKENS_MAX;
    service_run(svc, &a->job);
}

int service_audit_event(const struct api_principal *principal, const char *action,
                        uint32_t sdkappid, uint32_t key_version, const char *outcome,
                        json_t *details, struct audit_event *ev, char **text)
{
    *text = NULL;
    if (details != NULL) {
        *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        json_decref(details);
        if (*text == NULL)
            return -1;
    }
    *ev = (struct audit_event){
        .actor_id = principal != NULL ? principal->token_id : 0,
        .actor_name = principal != NULL ? principal->name : "usersigd",
        .action = action,
        .sdkappid = sdkappid,
        .key_version = key_version,
        .outcome = outcome,
        .details = *text,
    };
    return 0;
}

enum store_rc service_audit(struct service *svc, const struct api_principal *principal,
                            const char *action, uint32_t sdkappid, uint32_t key_version,
                            const char *outcome, json_t *details)
{
    struct audit_event ev;
    char *text;
    if (service_audit_event(principal, action, sdkappid, key_version, outcome, details, &ev,
                            &text) != 0)
        return STORE_ERROR;
    enum audit_rc rc = audit_append(svc->st, keyring_audit_key(svc->kr), &ev);
    free(text);
    return rc == AUDIT_OK ? STORE_OK : STORE_ERROR;
}

void service_audit_refusal(struct service *svc, const struct api_principal *principal,
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
    if (service_audit(svc, principal, action, sdkappid, key_version, outcome, details) !=
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
