/*
 * The store's rate limits (migrations/0010_limits_webhooks.sql): an app's limits, read when its
 * cache entry is made and set by an app change; and the daily batch allowance, counted from the
 * day's batches under one transaction-level lock, so that the starts of limited batches of every
 * process take turns and the day's total never passes the limit.
 */
#include "store_int.h"

#include <string.h>

static const char SQL_APP_LIMITS_GET[] =
    "SELECT signs_per_second, batch_tokens_per_day FROM apps WHERE sdkappid = $1";

enum store_rc store_app_limits_get(struct store *st, uint32_t sdkappid, struct store_limits *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    store_param_int(&p, sdkappid);
    rc = RUN(st, SQL_APP_LIMITS_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK) {
        out->signs_per_second = (uint32_t)store_col_int(r, 0, 0); /* NULL: 0, none */
        out->batch_tokens_per_day = store_col_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

static const char SQL_APP_LIMITS_SET[] =
    "UPDATE apps SET "
    "signs_per_second = CASE WHEN $2::boolean THEN $3::integer ELSE signs_per_second END, "
    "batch_tokens_per_day = CASE WHEN $4::boolean THEN $5::bigint ELSE batch_tokens_per_day END, "
    "updated_at = now() WHERE sdkappid = $1 RETURNING sdkappid";

enum store_rc store_app_limits_set(struct store *st, uint32_t sdkappid, unsigned fields,
                                   const struct store_limits *values)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    store_param_int(&p, sdkappid);
    store_param_text(&p, fields & STORE_LIMIT_SET_SIGNS ? "true" : "false");
    store_param_int_or_null(&p, values->signs_per_second);
    store_param_text(&p, fields & STORE_LIMIT_SET_BATCH ? "true" : "false");
    store_param_int_or_null(&p, values->batch_tokens_per_day);
    rc = RUN(st, SQL_APP_LIMITS_SET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* Lock 10 of LOCK_CLASS (store_int.h): the daily batch allowance. */
static const char SQL_BATCH_QUOTA_LOCK[] = "SELECT pg_advisory_xact_lock(" LOCK_CLASS ", 10)";

enum store_rc store_batch_quota_lock(struct store *st)
{
    return RUN(st, SQL_BATCH_QUOTA_LOCK, NULL, NULL);
}

/* clang-format off */
#define QUOTA_SUMS \
    "SELECT COALESCE(sum(CASE WHEN state = 'interrupted' THEN COALESCE(allowance, signed, 0) " \
    "WHEN state <> 'running' THEN signed END), 0)::bigint, " \
    "COALESCE(sum(CASE WHEN state = 'running' THEN allowance END), 0)::bigint FROM batches "
#define QUOTA_TODAY "started_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
static const char SQL_BATCH_QUOTA_TOKEN[] = QUOTA_SUMS "WHERE actor_id = $1 AND " QUOTA_TODAY;
static const char SQL_BATCH_QUOTA_APP[] = QUOTA_SUMS "WHERE sdkappid = $1 AND " QUOTA_TODAY;
/* clang-format on */

enum store_rc store_batch_quota_used(struct store *st, bool by_token, int64_t id, int64_t *used,
                                     int64_t *reserved)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *used = *reserved = 0;
    store_param_int(&p, id);
    if (by_token)
        rc = RUN(st, SQL_BATCH_QUOTA_TOKEN, &p, &r);
    else
        rc = RUN(st, SQL_BATCH_QUOTA_APP, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 1) {
        *used = store_col_int(r, 0, 0);
        *reserved = store_col_int(r, 0, 1);
    } else if (rc == STORE_OK) {
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

static const char SQL_BATCH_SET_ALLOWANCE[] =
    "UPDATE batches SET allowance = $2 WHERE batch_id = $1 AND state = 'running'";

enum store_rc store_batch_set_allowance(struct store *st, const char *batch_id, int64_t allowance)
{
    struct store_params p = {0};
    store_param_text(&p, batch_id);
    store_param_int(&p, allowance);
    return RUN(st, SQL_BATCH_SET_ALLOWANCE, &p, NULL);
}
