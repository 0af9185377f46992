/*
 * What is still live on a key version (migrations/0009_key_schedule.sql): single signs from the
 * key_exposure sums and the key_live_identifiers rows that the audit log's trigger keeps in each
 * sign's transaction, batches from their manifests. Each read is one indexed statement whose
 * cost follows the hours and batches of the version, not its signs.
 */
#include "store_int.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

/* Both kinds in one pass, summed by day: the hours still to come (the current one whole) and
 * the batches whose latest expiry is still to come. */
/* clang-format off */
static const char SQL_EXPOSURE_DAYS[] =
    "WITH s AS (SELECT expire_hour / 24 AS day, sum(count) AS n FROM key_exposure "
    "WHERE sdkappid = $1 AND version = $2 AND expire_hour >= $3::bigint / 3600 GROUP BY 1), "
    "b AS (SELECT (e.at + expire) / 86400 AS day, sum(signed) AS n FROM batches, "
    "LATERAL (SELECT extract(epoch FROM COALESCE(finished_at, now()))::bigint AS at) e "
    "WHERE sdkappid = $1 AND key_version = $2 AND expire IS NOT NULL AND signed > 0 "
    "AND e.at + expire > $3::bigint GROUP BY 1) "
    "SELECT COALESCE(s.day, b.day), COALESCE(s.n, 0), COALESCE(b.n, 0) "
    "FROM s FULL JOIN b ON s.day = b.day ORDER BY 1";
/* clang-format on */

enum store_rc store_exposure_days(struct store *st, uint32_t sdkappid, uint32_t version,
                                  int64_t now_s, struct store_exposure_day **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *out = NULL;
    *n = 0;
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_int(&p, now_s);
    rc = RUN(st, SQL_EXPOSURE_DAYS, &p, &r);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if (rows > 0 && (*out = calloc((size_t)rows, sizeof **out)) == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        rows = 0;
    }
    for (int i = 0; i < rows; i++) {
        (*out)[i].day = store_col_int(r, i, 0);
        (*out)[i].single = (uint64_t)store_col_int(r, i, 1);
        (*out)[i].batch = (uint64_t)store_col_int(r, i, 2);
    }
    *n = (size_t)rows;
    PQclear(r);
    return rc;
}

/* clang-format off */
static const char SQL_EXPOSURE_BATCHES[] =
    "SELECT batch_id, state, count, signed, failed, actor_id, actor_name, "
    US("started_at") ", " US("finished_at") ", expire, "
    "CASE WHEN expire IS NOT NULL THEN "
    "extract(epoch FROM COALESCE(finished_at, now()))::bigint + expire END AS expire_at "
    "FROM batches WHERE sdkappid = $1 AND key_version = $2 "
    "AND (expire IS NULL OR extract(epoch FROM COALESCE(finished_at, now()))::bigint + expire "
    "> $3::bigint) "
    "AND (state IN ('running', 'interrupted') OR signed > 0) "
    "ORDER BY expire_at DESC NULLS FIRST, batch_id LIMIT $4";
/* clang-format on */

enum store_rc store_exposure_batches(struct store *st, uint32_t sdkappid, uint32_t version,
                                     int64_t now_s, size_t limit, struct store_exposure_batch **out,
                                     size_t *n, bool *more)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *out = NULL;
    *n = 0;
    *more = false;
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_int(&p, now_s);
    store_param_int(&p, (int64_t)limit + 1);
    rc = RUN(st, SQL_EXPOSURE_BATCHES, &p, &r);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if ((size_t)rows > limit) {
        *more = true;
        rows = (int)limit;
    }
    if (rows > 0 && (*out = calloc((size_t)rows, sizeof **out)) == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        rows = 0;
    }
    for (int i = 0; i < rows && rc == STORE_OK; i++) {
        struct store_batch *b = &(*out)[i].b;
        int state = store_batch_state_parse(PQgetvalue(r, i, 1));
        b->sdkappid = sdkappid;
        b->key_version = version;
        b->state = state < 0 ? STORE_BATCH_RUNNING : (enum store_batch_state)state;
        b->counts_unknown = PQgetisnull(r, i, 2) != 0;
        b->count = (uint64_t)store_col_int(r, i, 2);
        b->signed_count = (uint64_t)store_col_int(r, i, 3);
        b->failed_count = (uint64_t)store_col_int(r, i, 4);
        b->actor_id = store_col_int(r, i, 5);
        b->started_at_us = store_col_int(r, i, 7);
        b->finished_at_us = store_col_int(r, i, 8);
        b->expire = (uint32_t)store_col_int(r, i, 9);
        (*out)[i].expire_at_s = store_col_int(r, i, 10);
        if (state < 0 || !store_col_text(r, i, 0, b->batch_id, sizeof b->batch_id) ||
            !store_col_text(r, i, 6, b->actor_name, sizeof b->actor_name)) {
            log_error("store: a batches row does not fit its struct");
            rc = STORE_ERROR;
        }
    }
    if (rc != STORE_OK) {
        free(*out);
        *out = NULL;
        rows = 0;
        *more = false;
    }
    *n = (size_t)rows;
    PQclear(r);
    return rc;
}

static const char SQL_LIVE_PAGE[] =
    "SELECT identifier FROM key_live_identifiers WHERE sdkappid = $1 AND version = $2 "
    "AND identifier > $3 AND expire_at > $4::bigint ORDER BY identifier LIMIT $5";

enum store_rc store_live_identifiers_page(struct store *st, uint32_t sdkappid, uint32_t version,
                                          int64_t after_s, const char *from, size_t limit,
                                          char *buf, size_t cap, size_t *len, size_t *n,
                                          char last[STORE_ID_MAX + 1])
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *len = 0;
    *n = 0;
    if (limit < 1 || limit > STORE_LIVE_PAGE_MAX || cap < limit * (STORE_ID_MAX + 1))
        return STORE_ERROR;
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_text(&p, from);
    store_param_int(&p, after_s);
    store_param_int(&p, (int64_t)limit);
    rc = RUN(st, SQL_LIVE_PAGE, &p, &r);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    for (int i = 0; i < rows; i++) {
        size_t l = (size_t)PQgetlength(r, i, 0);
        const char *id = PQgetvalue(r, i, 0);
        if (l < 1 || l > STORE_ID_MAX || memchr(id, '\n', l) != NULL) {
            log_error("store: a key_live_identifiers row does not fit its struct");
            rc = STORE_ERROR;
            break;
        }
        memcpy(buf + *len, id, l);
        buf[*len + l] = '\n';
        *len += l + 1;
        memcpy(last, id, l);
        last[l] = '\0';
        ++*n;
    }
    PQclear(r);
    return rc;
}

/* The next events after the watermark, at most $1, in seq order (seqs commit in order: each is
 * taken under the audit lock held to its commit), into key_live_identifiers, and the watermark
 * moved past them, in one statement; a catch-up already running elsewhere is skipped. Each
 * event's details are parsed once, by json_to_record (a jsonb cast in each test parsed them six
 * times, and the reading took twice as long). A row is updated only when its expiry moves
 * later (no new row version for the others), and the table keeps room on its pages for the
 * updates to stay on them (migration 0013): a user who signs in again is an update. The
 * watermark is a scalar subquery, so that it is the index condition of the log's scan (joined
 * as a table it was a filter, and each catch-up read the whole log from its start), and the
 * range is closed above (seqs have no gaps: audit_verify refuses one), so that the planner
 * expects a few rows and takes the index at every size of the log (open above, it expected a
 * third of the log and read a small one whole). */
/* clang-format off */
static const char SQL_LIVE_CATCH_UP[] =
    "WITH w AS (SELECT last_seq FROM key_live_watermark WHERE id = 1 FOR UPDATE SKIP LOCKED), "
    "ev AS (SELECT e.seq, e.sdkappid, e.key_version, e.action, e.outcome, e.details "
    "FROM audit_log e WHERE e.seq > (SELECT last_seq FROM w) "
    "AND e.seq <= (SELECT last_seq FROM w) + $1 ORDER BY e.seq LIMIT $1), "
    "signs AS (SELECT sdkappid, key_version, d.identifier, d.expire_at FROM ev, "
    "LATERAL json_to_record(details::json) AS d(identifier text, expire_at bigint, "
    "room_id json, room_str json) "
    "WHERE action = 'usersig.sign' AND outcome = 'ok' AND sdkappid IS NOT NULL "
    "AND key_version IS NOT NULL AND d.expire_at IS NOT NULL AND d.identifier IS NOT NULL "
    "AND d.room_id IS NULL AND d.room_str IS NULL), "
    "ins AS (INSERT INTO key_live_identifiers (sdkappid, version, identifier, expire_at) "
    "SELECT sdkappid, key_version, identifier, max(expire_at) FROM signs GROUP BY 1, 2, 3 "
    "ON CONFLICT (sdkappid, version, identifier) "
    "DO UPDATE SET expire_at = EXCLUDED.expire_at "
    "WHERE key_live_identifiers.expire_at < EXCLUDED.expire_at), "
    "up AS (UPDATE key_live_watermark SET last_seq = (SELECT max(seq) FROM ev) "
    "WHERE id = 1 AND EXISTS (SELECT 1 FROM ev)) "
    "SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM ev)";
/* clang-format on */

enum store_rc store_live_catch_up(struct store *st, size_t limit, size_t *added, bool *busy)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *added = 0;
    *busy = false;
    store_param_int(&p, (int64_t)limit);
    rc = RUN(st, SQL_LIVE_CATCH_UP, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 1) {
        *busy = store_col_int(r, 0, 0) == 0;
        *added = (size_t)store_col_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}
