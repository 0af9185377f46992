/*
 * Signing with group commit (sign.h): the pool hands a thread every waiting sign (up to
 * SIGN_GROUP_MAX); that thread reads each app of the group and its active key once, signs, and
 * records every signature and refusal of the group in one transaction.
 */
#include "sign.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "log.h"

#define NO_RECORD_MSG "the signature could not be recorded; no UserSig was issued"

/* One app of a group: read once, its signer shared by the group's signs. */
struct group_app {
    uint32_t sdkappid;
    bool app_ok;        /* the app was read: its rules can be checked */
    enum api_error err; /* API_OK: app, key and signer are ready */
    bool refused;       /* err broke a rule (no app, no active key): audit the refusal */
    char msg[SIGN_MSG_BUF];
    struct store_app app;
    struct store_key key;
    struct usersig_key *ukey;
    struct usersig_signer *signer;
    uint64_t n_signed;
};

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
    }
    if (in->expire < 1 || in->expire > (json_int_t)app->max_expire) {
        snprintf(msg, cap,
                 "expire must be 1 to %u seconds: at most app %u's max_expire (%u seconds)",
                 app->max_expire, app->sdkappid, app->max_expire);
        return API_ERR_BAD_EXPIRE;
    }
    return API_OK;
}

json_t *sign_details(const struct sign_input *in, int64_t expire_at)
{
    json_t *d = json_object();
    if (d == NULL)
        return NULL;
    int bad = 0;
    /* A refused identifier may be long: the audit keeps at most what a valid one can be. */
    if (in->identifier != NULL && in->identifier_len <= USERSIG_MAX_IDENTIFIER)
        bad |=
            json_object_set_new(d, "identifier", json_stringn(in->identifier, in->identifier_len));
    if (in->has_expire)
        bad |= json_object_set_new(d, "expire", json_integer(in->expire));
    if (expire_at != 0)
        bad |= json_object_set_new(d, "expire_at", json_integer(expire_at));
    if (in->room.kind == USERSIG_ROOM_NUMERIC)
        bad |= json_object_set_new(d, "room_id", json_integer(in->room.room_id));
    if (in->room.kind == USERSIG_ROOM_STRING)
        bad |= json_object_set_new(d, "room_str",
                                   json_stringn(in->room.room_str, in->room.room_str_len));
    if (in->room.kind != USERSIG_ROOM_NONE)
        bad |= json_object_set_new(d, "privilege_map", json_integer(in->room.privilege_map));
    if (bad != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
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

/* Reads the app and its active key (FOR NO KEY UPDATE: the sign count is updated in this
 * transaction) and makes its signer. */
static void open_app(struct service *svc, struct group_app *a)
{
    a->err = service_app_get(svc, a->sdkappid, &a->app, a->msg, sizeof a->msg, &a->refused);
    if (a->err != API_OK)
        return;
    a->app_ok = true;
    a->err = service_active_key(svc, a->sdkappid, STORE_LOCK_UPDATE, &a->key, &a->ukey, a->msg,
                                sizeof a->msg, &a->refused);
    if (a->err != API_OK)
        return;
    enum usersig_rc urc =
        usersig_signer_new(a->ukey, a->sdkappid, USERSIG_DEFAULT_LEVEL,
                           (enum usersig_id_policy)a->app.identifier_policy, &a->signer);
    if (urc != USERSIG_OK) {
        a->err = api_error_from_usersig(urc);
        a->refused = api_error_status(a->err) < 500;
        snprintf(a->msg, sizeof a->msg, "%s", usersig_rc_message(urc));
    }
}

/* Signs one request with its app's signer, or decides its refusal. Returns true when the
 * refusal is to be audited. */
static bool sign_one(struct group_app *a, struct sign_request *req, int64_t now)
{
    if (req->refused_err != API_OK) {
        req->err = req->refused_err;
        return true;
    }
    /* The app's rules come before its key, as a person reads the refusal: the identifier and
     * expire are wrong whatever the key. */
    if (a->app_ok) {
        req->err = sign_check_app(&a->app, &req->in, req->msg, sizeof req->msg);
        if (req->err != API_OK)
            return true;
    }
    if (a->err != API_OK) {
        req->err = a->err;
        snprintf(req->msg, sizeof req->msg, "%s", a->msg);
        return a->refused;
    }
    req->key_version = a->key.version;
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

static void group_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    struct sign_request *reqs[SIGN_GROUP_MAX];
    uint32_t ids[SIGN_GROUP_MAX];
    struct group_app apps[SIGN_GROUP_MAX];
    struct audit_event evs[SIGN_GROUP_MAX], *evp[SIGN_GROUP_MAX];
    char *texts[SIGN_GROUP_MAX];
    size_t n = 0, n_ids = 0, n_apps = 0, n_ev = 0;
    bool broken = false;
    struct timespec ts;

    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL && n < SIGN_GROUP_MAX; j = j->next) {
        struct sign_request *req = j->arg;
        req->err = req->refused_err;
        req->key_version = 0;
        req->token_len = 0;
        reqs[n++] = req;
        if (req->refused_err == API_OK)
            ids[n_ids++] = req->sdkappid;
    }
    qsort(ids, n_ids, sizeof ids[0], cmp_u32);
    memset(apps, 0, sizeof apps);
    for (size_t i = 0; i < n_ids; i++)
        if (i == 0 || ids[i] != ids[i - 1])
            apps[n_apps++].sdkappid = ids[i];

    if (store_begin(svc->st) != STORE_OK) {
        for (size_t i = 0; i < n; i++) {
            reqs[i]->err =
                reqs[i]->refused_err != API_OK ? reqs[i]->refused_err : API_ERR_UNAVAILABLE;
            if (reqs[i]->refused_err == API_OK)
                snprintf(reqs[i]->msg, sizeof reqs[i]->msg, "%s", NO_RECORD_MSG);
        }
        return;
    }
    for (size_t i = 0; i < n_apps; i++)
        open_app(svc, &apps[i]);

    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec;
    for (size_t i = 0; i < n && !broken; i++) {
        struct sign_request *req = reqs[i];
        struct group_app *a = find_app(apps, n_apps, req->sdkappid);
        bool audit_refusal = sign_one(a, req, now);
        json_t *details;
        const char *outcome = "ok";
        if (req->err == API_OK) {
            details = sign_details(&req->in, now + req->in.expire);
        } else if (audit_refusal) {
            details = sign_details(&req->in, 0);
            outcome = api_error_code(req->err);
        } else {
            continue;
        }
        if (details == NULL ||
            service_audit_event(req->principal, "usersig.sign", req->sdkappid, req->key_version,
                                outcome, details, &evs[n_ev], &texts[n_ev]) != 0) {
            broken = true; /* out of memory: nothing of the group is issued */
            break;
        }
        evp[n_ev] = &evs[n_ev];
        n_ev++;
        if (req->err == API_OK)
            a->n_signed++;
    }
    if (!broken && audit_append_many(svc->st, keyring_audit_key(svc->kr), evp, n_ev) != AUDIT_OK)
        broken = true;
    for (size_t i = 0; i < n_apps && !broken; i++)
        if (apps[i].n_signed > 0 &&
            store_key_record_use(svc->st, apps[i].sdkappid, apps[i].key.version,
                                 apps[i].n_signed) != STORE_OK)
            broken = true;
    if (!broken && store_commit(svc->st) != STORE_OK)
        broken = true;
    if (broken) {
        store_rollback(svc->st);
        log_error("sign: a group of %zu could not be recorded; none of its UserSigs was issued", n);
        for (size_t i = 0; i < n; i++) {
            struct sign_request *req = reqs[i];
            /* A refusal stays a refusal (its audit event is lost, as logged); a signature that
             * was not recorded is not issued. */
            if (req->err == API_OK || api_error_status(req->err) >= 500) {
                req->err = API_ERR_UNAVAILABLE;
                snprintf(req->msg, sizeof req->msg, "%s", NO_RECORD_MSG);
            }
            OPENSSL_cleanse(req->token, sizeof req->token);
            req->token_len = 0;
        }
    }
    for (size_t i = 0; i < n_ev; i++)
        free(texts[i]);
    for (size_t i = 0; i < n_apps; i++) {
        usersig_signer_free(apps[i].signer);
        usersig_key_free(apps[i].ukey);
        store_key_clear(&apps[i].key);
    }
}

static void on_done(struct dbpool_job *job)
{
    struct sign_request *req = job->arg;
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
    /* group_run sets it for every request it takes; one it did not take is never a 200. */
    req->err = API_ERR_UNAVAILABLE;
    if (req->refused_err == API_OK)
        req->msg[0] = '\0';
    service_run(svc, &req->job);
}
