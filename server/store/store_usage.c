/*
 * The store's verify counts (key_verify_counts, migrations/0008_verify_counts.sql): what the
 * processes counted added in one statement, and an app's sums read for its key listing.
 */
#include "store_int.h"

#include "log.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
static const char SQL_VERIFY_COUNTS_ADD[] =
    "INSERT INTO key_verify_counts AS c (sdkappid, version, verdict, count) "
    "SELECT r.sdkappid, r.version, r.verdict, sum(r.count) "
    "FROM json_to_recordset($1::json) AS r(sdkappid bigint, version integer, verdict text, "
    "count bigint) WHERE EXISTS (SELECT 1 FROM apps a WHERE a.sdkappid = r.sdkappid) "
    "GROUP BY r.sdkappid, r.version, r.verdict "
    "ON CONFLICT (sdkappid, version, verdict) DO UPDATE SET count = c.count + EXCLUDED.count";
static const char SQL_VERIFY_COUNTS_GET[] =
    "SELECT version, verdict, count FROM key_verify_counts WHERE sdkappid = $1 "
    "ORDER BY version, verdict";
/* clang-format on */

enum store_rc store_verify_counts_add(struct store *st, const struct store_verify_count *c,
                                      size_t n)
{
    struct store_params p = {0};
    json_t *a = NULL;
    char *text = NULL;
    enum store_rc rc = STORE_ERROR;

    if (n == 0)
        return STORE_OK;
    a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (c[i].count > INT64_MAX ||
            json_array_append_new(a, json_pack("{s:I, s:I, s:s, s:I}", "sdkappid",
                                               (json_int_t)c[i].sdkappid, "version",
                                               (json_int_t)c[i].version, "verdict", c[i].verdict,
                                               "count", (json_int_t)c[i].count)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    text = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (text == NULL) {
        log_error("store: out of memory (or a count out of range)");
        return STORE_ERROR;
    }
    store_param_text(&p, text);
    rc = RUN(st, SQL_VERIFY_COUNTS_ADD, &p, NULL);
    free(text);
    return rc;
}

enum store_rc store_verify_counts_get(struct store *st, uint32_t sdkappid,
                                      struct store_verify_count **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    struct store_verify_count *rows = NULL;
    enum store_rc rc;
    int count;

    *out = NULL;
    *n = 0;
    store_param_int(&p, sdkappid);
    rc = RUN(st, SQL_VERIFY_COUNTS_GET, &p, &r);
    if (rc != STORE_OK || (count = PQntuples(r)) == 0)
        goto done;
    rows = calloc((size_t)count, sizeof *rows);
    if (rows == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        rows[i].sdkappid = sdkappid;
        rows[i].version = (uint32_t)store_col_int(r, i, 0);
        int64_t v = store_col_int(r, i, 2);
        rows[i].count = v > 0 ? (uint64_t)v : 0;
        if (!store_col_text(r, i, 1, rows[i].verdict, sizeof rows[i].verdict)) {
            log_error("store: a verify count's verdict does not fit its struct");
            rc = STORE_ERROR;
            goto done;
        }
    }
    *out = rows;
    *n = (size_t)count;
    rows = NULL;
done:
    free(rows);
    PQclear(r);
    return rc;
}
