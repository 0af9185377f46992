/*
 * Rate-limit operations (op_limits.h): reading and changing the limits of apps and tokens, and
 * the daily batch allowance. A batch's allowance is taken under one lock (store_batch_quota_lock)
 * from what the day's batches have signed and what the running ones hold, so two batches
 * starting together in two processes cannot both take the same rest of the day.
 */
#include "op_limits.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "log.h"

__attribute__((format(printf, 4, 5))) static enum api_error
fail(char *msg, size_t cap, enum api_error err, const char *fmt, ...)
{
    if (cap > 0)
        msg[0] = '\0';
    if (fmt != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

static json_t *limit_json(int64_t v)
{
    return v > 0 ? json_integer(v) : json_null();
}

int op_limits_json_set(json_t *o, const struct store_limits *l)
{
    if (json_object_set_new(o, "signs_per_second", limit_json(l->signs_per_second)) != 0 ||
        json_object_set_new(o, "batch_tokens_per_day", limit_json(l->batch_tokens_per_day)) != 0)
        return -1;
    return 0;
}

/* {"changed": {field: {from, to}}} of what differs, *n how many; NULL when out of memory. */
static json_t *changes(const struct store_limits *old, const struct store_limits *new_,
                       unsigned set, int *n)
{
    json_t *changed = json_object(), *details = json_object();
    int bad = changed == NULL || details == NULL;
    *n = 0;
    if (!bad && (set & STORE_LIMIT_SET_SIGNS) && old->signs_per_second != new_->signs_per_second) {
        bad |=
            json_object_set_new(changed, "signs_per_second",
                                json_pack("{s:o, s:o}", "from", limit_json(old->signs_per_second),
                                          "to", limit_json(new_->signs_per_second))) != 0;
        ++*n;
    }
    if (!bad && (set & STORE_LIMIT_SET_BATCH) &&
        old->batch_tokens_per_day != new_->batch_tokens_per_day) {
        bad |= json_object_set_new(changed, "batch_tokens_per_day",
                                   json_pack("{s:o, s:o}", "from",
                                             limit_json(old->batch_tokens_per_day), "to",
                                             limit_json(new_->batch_tokens_per_day))) != 0;
        ++*n;
    }
    if (!bad)
        bad |= json_object_set(details, "changed", changed) != 0;
    json_decref(changed);
    if (bad) {
        json_decref(details);
        return NULL;
    }
    return details;
}

static void apply(struct store_limits *l, const struct op_limits_change *in)
{
    if (in->set & STORE_LIMIT_SET_SIGNS)
        l->signs_per_second = in->values.signs_per_second;
    if (in->set & STORE_LIMIT_SET_BATCH)
        l->batch_tokens_per_day = in->values.batch_tokens_per_day;
}

enum api_error op_limits_app_get(struct service *svc, const struct principal *p, uint32_t sdkappid,
                                 struct store_limits *out, char *msg, size_t cap)
{
    (void)p;
    enum store_rc rc = store_app_limits_get(svc->st, sdkappid, out);
    return fail(msg, cap, service_store_error(rc, API_ERR_APP_NOT_FOUND), NULL);
}

enum api_error op_limits_app_set(struct service *svc, const struct principal *p, uint32_t sdkappid,
                                 const struct op_limits_change *in, struct store_limits *out,
                                 char *msg, size_t cap)
{
    struct store_app app;
    struct store_limits old, now;
    json_t *details = NULL;
    int n = 0;
    enum store_rc rc = store_begin(svc->st);

    if (rc == STORE_OK)
        rc = store_app_get(svc->st, sdkappid, STORE_LOCK_UPDATE, &app);
    if (rc == STORE_OK)
        rc = store_app_limits_get(svc->st, sdkappid, &old);
    if (rc == STORE_OK) {
        now = old;
        apply(&now, in);
        details = changes(&old, &now, in->set, &n);
        if (details == NULL)
            rc = STORE_ERROR;
    }
    if (rc == STORE_OK && n > 0) {
        rc = store_app_limits_set(svc->st, sdkappid, in->set, &in->values);
        if (rc == STORE_OK) {
            rc = service_audit(svc, p, "app.limits.update", sdkappid, 0, "ok", details);
            details = NULL;
        }
    }
    json_decref(details);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        return fail(msg, cap, service_store_error(rc, API_ERR_APP_NOT_FOUND), NULL);
    }
    if (n > 0 && svc->cache != NULL)
        cache_forget_app(svc->cache, sdkappid);
    *out = now;
    return fail(msg, cap, API_OK, NULL);
}

enum api_error op_limits_token_set(struct service *svc, const struct principal *p, int64_t id,
                                   const struct op_limits_change *in, struct store_token *out,
                                   char *msg, size_t cap)
{
    struct store_token old;
    struct store_limits now;
    json_t *details = NULL;
    int n = 0;
    enum store_rc rc = store_begin(svc->st);

    memset(out, 0, sizeof *out);
    if (rc == STORE_OK)
        rc = store_token_get_locked(svc->st, id, &old);
    if (rc == STORE_OK) {
        now = old.limits;
        apply(&now, in);
        details = changes(&old.limits, &now, in->set, &n);
        if (details == NULL)
            rc = STORE_ERROR;
        else if (json_object_set_new(details, "token_id", json_integer(id)) != 0)
            rc = STORE_ERROR;
    }
    if (rc == STORE_OK && n > 0) {
        rc = store_token_limits_set(svc->st, id, in->set, &in->values, out);
        if (rc == STORE_OK) {
            rc = service_audit(svc, p, "token.limits.update", 0, 0, "ok", details);
            details = NULL;
        }
    } else if (rc == STORE_OK) {
        *out = old;
    }
    json_decref(details);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    OPENSSL_cleanse(old.secret_hash, sizeof old.secret_hash);
    OPENSSL_cleanse(out->secret_hash, sizeof out->secret_hash);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        memset(out, 0, sizeof *out);
        return fail(msg, cap, service_store_error(rc, API_ERR_TOKEN_NOT_FOUND), NULL);
    }
    if (n > 0 && svc->cache != NULL)
        cache_forget_token(svc->cache, id);
    return fail(msg, cap, API_OK, NULL);
}

/* Seconds from now to the next 00:00 UTC (at least 1). */
static int64_t until_midnight_utc(void)
{
    time_t now = time(NULL);
    int64_t s = 86400 - (int64_t)(now % 86400);
    return s > 0 ? s : 1;
}

#define RETRY_RUNNING_S 5 /* a running batch holds the rest: it may give some back soon */

enum api_error op_limits_batch_reserve(struct service *svc, const struct principal *p,
                                       uint32_t sdkappid, int64_t *allowance,
                                       int64_t *retry_after_s, char *msg, size_t cap)
{
    int64_t tok_limit = p != NULL && p->token_id != 0 ? p->batch_tokens_per_day : 0;
    struct store_limits app_limits;
    int64_t rest = -1;

    *allowance = -1;
    *retry_after_s = 0;
    if (store_app_limits_get(svc->st, sdkappid, &app_limits) != STORE_OK)
        return fail(msg, cap, API_ERR_UNAVAILABLE, NULL);
    int64_t app_limit = app_limits.batch_tokens_per_day;
    if (tok_limit == 0 && app_limit == 0)
        return fail(msg, cap, API_OK, NULL);
    if (store_batch_quota_lock(svc->st) != STORE_OK)
        return fail(msg, cap, API_ERR_UNAVAILABLE, NULL);
    for (int k = 0; k < 2; k++) {
        bool by_token = k == 0;
        int64_t limit = by_token ? tok_limit : app_limit, used, reserved;
        if (limit == 0)
            continue;
        if (store_batch_quota_used(svc->st, by_token, by_token ? p->token_id : sdkappid, &used,
                                   &reserved) != STORE_OK)
            return fail(msg, cap, API_ERR_UNAVAILABLE, NULL);
        int64_t left = limit - used - reserved;
        if (left <= 0) {
            *retry_after_s = reserved > 0 ? RETRY_RUNNING_S : until_midnight_utc();
            if (by_token)
                return fail(msg, cap, API_ERR_TOKEN_BATCH_TOKENS_PER_DAY,
                            "this API token may sign %lld UserSigs a day in batches "
                            "(batch_tokens_per_day): %lld signed today (UTC), %lld held by "
                            "running batches; retry after %lld seconds",
                            (long long)limit, (long long)used, (long long)reserved,
                            (long long)*retry_after_s);
            return fail(msg, cap, API_ERR_APP_BATCH_TOKENS_PER_DAY,
                        "app %u may have %lld UserSigs a day signed in batches "
                        "(batch_tokens_per_day): %lld signed today (UTC), %lld held by running "
                        "batches; retry after %lld seconds",
                        sdkappid, (long long)limit, (long long)used, (long long)reserved,
                        (long long)*retry_after_s);
        }
        if (rest < 0 || left < rest)
            rest = left;
    }
    *allowance = rest;
    return fail(msg, cap, API_OK, NULL);
}
