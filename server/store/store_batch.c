/*
 * The store's batch manifests (batches, migrations/0002_batches.sql, 0004_batch_owner.sql): a
 * row inserted as running with the batch's start audit event, before the first token leaves,
 * and closed once as complete or aborted with its counts and the SHA-256 of its output, or
 * marked interrupted when its owner (a usersigd process, known by the advisory lock it holds)
 * is gone; listed per app for the API. The table's trigger refuses any other transition.
 */
#include "store_int.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

static const char *const batch_state_names[] = {"running", "complete", "aborted", "interrupted"};
#define N_BATCH_STATES 4

const char *store_batch_state_name(enum store_batch_state s)
{
    return (unsigned)s <= STORE_BATCH_INTERRUPTED ? batch_state_names[s] : "?";
}

int store_batch_state_parse(const char *name)
{
    return store_name_index(batch_state_names, N_BATCH_STATES, name);
}

static bool hex_ok(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* clang-format off */
static const char SQL_BATCH_INSERT[] =
    "INSERT INTO batches (batch_id, sdkappid, key_version, actor_id, actor_name, owner, expire) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING " US("started_at");
/* clang-format on */

enum store_rc store_batch_insert(struct store *st, struct store_batch *b)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    if (!hex_ok(b->batch_id, STORE_BATCH_ID_LEN)) {
        log_error("store: a batch id is %d lowercase hex characters", STORE_BATCH_ID_LEN);
        return STORE_ERROR;
    }
    store_param_text(&p, b->batch_id);
    store_param_int(&p, b->sdkappid);
    store_param_int(&p, b->key_version);
    store_param_int_or_null(&p, b->actor_id);
    store_param_text(&p, b->actor_name);
    store_param_int_or_null(&p, b->owner);
    store_param_int_or_null(&p, b->expire);
    rc = RUN(st, SQL_BATCH_INSERT, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 1) {
        b->state = STORE_BATCH_RUNNING;
        b->started_at_us = store_col_int(r, 0, 0);
        b->finished_at_us = 0;
        b->counts_unknown = false;
    } else if (rc == STORE_OK) {
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

/* A running batch; or an interrupted one of the same owner: marked while that owner was cut off
 * from the database, now closed with what it knows. */
static const char SQL_BATCH_FINISH[] =
    "UPDATE batches SET state = $2, count = $3, signed = $4, failed = $5, sha256 = $6, "
    "finished_at = now() WHERE batch_id = $1 "
    "AND (state = 'running' OR (state = 'interrupted' AND owner = $7::bigint))";

enum store_rc store_batch_finish(struct store *st, const struct store_batch *b)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    if ((b->state != STORE_BATCH_COMPLETE && b->state != STORE_BATCH_ABORTED) ||
        b->count > INT64_MAX || b->signed_count + b->failed_count != b->count ||
        !hex_ok(b->sha256, STORE_SHA256_HEX_LEN)) {
        log_error("store: a finished batch needs its state, counts that add up and a SHA-256");
        return STORE_ERROR;
    }
    store_param_text(&p, b->batch_id);
    store_param_text(&p, store_batch_state_name(b->state));
    store_param_int(&p, (int64_t)b->count);
    store_param_int(&p, (int64_t)b->signed_count);
    store_param_int(&p, (int64_t)b->failed_count);
    store_param_text(&p, b->sha256);
    store_param_int_or_null(&p, b->owner);
    rc = RUN(st, SQL_BATCH_FINISH, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* The columns of a batches row, in the order row_batch() reads them. */
#define BATCH_COLUMNS                                                                              \
    "batch_id, sdkappid, key_version, actor_id, actor_name, state, count, signed, failed, "        \
    "sha256, " US("started_at") ", " US("finished_at") ", owner"

/* Row i of a BATCH_COLUMNS result into out; false (logged) when it does not fit. */
static bool row_batch(const PGresult *r, int i, struct store_batch *out)
{
    int state = store_batch_state_parse(PQgetvalue(r, i, 5));

    memset(out, 0, sizeof *out);
    out->sdkappid = (uint32_t)store_col_int(r, i, 1);
    out->key_version = (uint32_t)store_col_int(r, i, 2);
    out->actor_id = store_col_int(r, i, 3);
    out->state = state < 0 ? STORE_BATCH_RUNNING : (enum store_batch_state)state;
    out->count = (uint64_t)store_col_int(r, i, 6);
    out->signed_count = (uint64_t)store_col_int(r, i, 7);
    out->failed_count = (uint64_t)store_col_int(r, i, 8);
    out->started_at_us = store_col_int(r, i, 10);
    out->finished_at_us = store_col_int(r, i, 11);
    out->owner = store_col_int(r, i, 12);
    out->counts_unknown = PQgetisnull(r, i, 6) != 0;
    if (state < 0 || !store_col_text(r, i, 0, out->batch_id, sizeof out->batch_id) ||
        !store_col_text(r, i, 4, out->actor_name, sizeof out->actor_name) ||
        !store_col_text(r, i, 9, out->sha256, sizeof out->sha256)) {
        log_error("store: a batches row does not fit its struct");
        return false;
    }
    return true;
}

/* Every row of a BATCH_COLUMNS result into a new array (*out NULL when none; caller free()s). */
static enum store_rc rows_batches(const PGresult *r, struct store_batch **out, size_t *n)
{
    int count = PQntuples(r);
    struct store_batch *rows;

    *out = NULL;
    *n = 0;
    if (count == 0)
        return STORE_OK;
    rows = calloc((size_t)count, sizeof *rows);
    if (rows == NULL) {
        log_error("store: out of memory reading batches");
        return STORE_ERROR;
    }
    for (int i = 0; i < count; i++) {
        if (!row_batch(r, i, &rows[i])) {
            free(rows);
            return STORE_ERROR;
        }
    }
    *out = rows;
    *n = (size_t)count;
    return STORE_OK;
}

static const char SQL_BATCH_GET[] = "SELECT " BATCH_COLUMNS " FROM batches WHERE batch_id = $1";

enum store_rc store_batch_get(struct store *st, const char *batch_id, struct store_batch *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    store_param_text(&p, batch_id);
    rc = RUN(st, SQL_BATCH_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !row_batch(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

/* Keyset paging over (started_at, batch_id), which batches_sdkappid_started serves: a row
 * inserted while a client pages never shifts the rows it has not read yet. */
/* clang-format off */
static const char SQL_BATCH_LIST[] =
    "SELECT " BATCH_COLUMNS " FROM batches "
    "WHERE sdkappid = $1 AND ($2::text IS NULL OR state = $2::text) "
    "AND ($4::text IS NULL OR (started_at, batch_id) > (" TS("$3") ", $4::text)) "
    "ORDER BY started_at, batch_id LIMIT $5";
/* clang-format on */

enum store_rc store_batch_list(struct store *st, const struct store_batch_filter *f,
                               struct store_batch **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *out = NULL;
    *n = 0;
    if (f->limit < 1 || f->limit > STORE_BATCH_PAGE_MAX || f->state > STORE_BATCH_INTERRUPTED ||
        (f->after_batch_id != NULL && !hex_ok(f->after_batch_id, STORE_BATCH_ID_LEN))) {
        log_error("store: a batch listing needs a limit of 1..%d, a known state and a batch id",
                  STORE_BATCH_PAGE_MAX);
        return STORE_ERROR;
    }
    store_param_int(&p, f->sdkappid);
    store_param_text(&p, f->state < 0 ? NULL
                                      : store_batch_state_name((enum store_batch_state)f->state));
    store_param_int(&p, f->after_started_us);
    store_param_text(&p, f->after_batch_id);
    store_param_int(&p, (int64_t)f->limit);
    rc = RUN(st, SQL_BATCH_LIST, &p, &r);
    if (rc == STORE_OK)
        rc = rows_batches(r, out, n);
    PQclear(r);
    return rc;
}

/* ---- owners: a usersigd process's lease on its batches ---- */

/* The advisory lock of owner id $1: one bigint key, 'USGD' * 2^32 + owner (the single-key space
 * does not meet the (LOCK_CLASS, n) two-key locks). */
#define OWNER_KEY "(" LOCK_CLASS "::bigint * 4294967296 + $1::bigint)"

static const char SQL_BATCH_OWNER_NEW[] = "SELECT nextval('batch_owners')";
static const char SQL_BATCH_OWNER_LOCK[] = "SELECT pg_advisory_lock" OWNER_KEY;
static const char SQL_BATCH_OWNER_UNLOCK[] = "SELECT pg_advisory_unlock" OWNER_KEY;
static const char SQL_BATCH_OWNER_GONE[] = "SELECT pg_try_advisory_xact_lock" OWNER_KEY;

enum store_rc store_batch_owner_take(struct store *st, int64_t *owner)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc = STORE_OK;

    if (*owner == 0) {
        rc = RUN(st, SQL_BATCH_OWNER_NEW, NULL, &r);
        if (rc == STORE_OK && PQntuples(r) == 1)
            *owner = store_col_int(r, 0, 0);
        else if (rc == STORE_OK)
            rc = STORE_ERROR;
        PQclear(r);
        r = NULL;
    }
    if (rc != STORE_OK)
        return rc;
    if (*owner < 1 || *owner > STORE_BATCH_OWNER_MAX) {
        log_error("store: a batch owner id is 1..%lld", (long long)STORE_BATCH_OWNER_MAX);
        return STORE_ERROR;
    }
    store_param_int(&p, *owner);
    rc = RUN(st, SQL_BATCH_OWNER_LOCK, &p, NULL);
    if (rc == STORE_OK)
        st->session_locks++; /* from here a broken connection is an error, never a reconnect */
    return rc;
}

void store_batch_owner_release(struct store *st, int64_t owner)
{
    struct store_params p = {0};

    if (st == NULL || st->session_locks == 0)
        return;
    store_param_int(&p, owner);
    if (RUN(st, SQL_BATCH_OWNER_UNLOCK, &p, NULL) != STORE_OK)
        log_warn("store: cannot release the batch owner lock; it goes with the connection");
    st->session_locks--;
}

enum store_rc store_batch_owner_gone(struct store *st, int64_t owner, bool *gone)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *gone = false;
    if (!store_in_transaction(st) || owner < 1 || owner > STORE_BATCH_OWNER_MAX) {
        log_error("store: store_batch_owner_gone needs a transaction and an owner id");
        return STORE_ERROR;
    }
    store_param_int(&p, owner);
    rc = RUN(st, SQL_BATCH_OWNER_GONE, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 1)
        *gone = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    else if (rc == STORE_OK)
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

/* clang-format off */
static const char SQL_BATCH_OWNERS_RUNNING[] =
    "SELECT DISTINCT coalesce(owner, 0) FROM batches WHERE state = 'running' "
    "AND (owner IS NULL OR owner <> $1::bigint) ORDER BY 1 LIMIT $2";
/* clang-format on */

enum store_rc store_batch_owners_running(struct store *st, int64_t self, int64_t **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    int64_t *ids = NULL;
    enum store_rc rc;
    int count;

    *out = NULL;
    *n = 0;
    store_param_int(&p, self);
    store_param_int(&p, STORE_BATCH_OWNERS_MAX);
    rc = RUN(st, SQL_BATCH_OWNERS_RUNNING, &p, &r);
    count = rc == STORE_OK ? PQntuples(r) : 0;
    if (count > 0 && (ids = calloc((size_t)count, sizeof *ids)) == NULL) {
        log_error("store: out of memory reading batch owners");
        rc = STORE_ERROR;
    }
    if (ids != NULL) {
        for (int i = 0; i < count; i++)
            ids[i] = store_col_int(r, i, 0);
        *out = ids;
        *n = (size_t)count;
    }
    PQclear(r);
    return rc;
}

/* clang-format off */
static const char SQL_BATCH_INTERRUPT[] =
    "UPDATE batches SET state = 'interrupted', count = NULL, signed = NULL, failed = NULL, "
    "finished_at = now() WHERE state = 'running' AND owner IS NOT DISTINCT FROM $1::bigint "
    "RETURNING " BATCH_COLUMNS;
/* clang-format on */

enum store_rc store_batch_interrupt(struct store *st, int64_t owner, struct store_batch **out,
                                    size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;

    *out = NULL;
    *n = 0;
    store_param_int_or_null(&p, owner);
    rc = RUN(st, SQL_BATCH_INTERRUPT, &p, &r);
    if (rc == STORE_OK)
        rc = rows_batches(r, out, n);
    PQclear(r);
    return rc;
}
