/*
 * The store's batch manifests (batches, migrations/0002_batches.sql): a row inserted as running
 * with the batch's start audit event, before the first token leaves, and closed once as complete
 * or aborted with its counts and the SHA-256 of its output, and listed per app for the API. The
 * table's trigger refuses any change to a finished row; the UPDATE here also only touches a
 * running one.
 */
#include "store_int.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

static const char *const batch_state_names[] = {"running", "complete", "aborted"};

const char *store_batch_state_name(enum store_batch_state s)
{
    return (unsigned)s <= STORE_BATCH_ABORTED ? batch_state_names[s] : "?";
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
    "INSERT INTO batches (batch_id, sdkappid, key_version, actor_id, actor_name) "
    "VALUES ($1, $2, $3, $4, $5) RETURNING " US("started_at");
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
    rc = RUN(st, SQL_BATCH_INSERT, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 1) {
        b->state = STORE_BATCH_RUNNING;
        b->started_at_us = store_col_int(r, 0, 0);
        b->finished_at_us = 0;
    } else if (rc == STORE_OK) {
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

static const char SQL_BATCH_FINISH[] =
    "UPDATE batches SET state = $2, count = $3, signed = $4, failed = $5, sha256 = $6, "
    "finished_at = now() WHERE batch_id = $1 AND state = 'running'";

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
    rc = RUN(st, SQL_BATCH_FINISH, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* The columns of a batches row, in the order row_batch() reads them. */
#define BATCH_COLUMNS                                                                              \
    "batch_id, sdkappid, key_version, actor_id, actor_name, state, count, signed, failed, "        \
    "sha256, " US("started_at") ", " US("finished_at")

/* Row i of a BATCH_COLUMNS result into out; false (logged) when it does not fit. */
static bool row_batch(const PGresult *r, int i, struct store_batch *out)
{
    int state = store_name_index(batch_state_names, 3, PQgetvalue(r, i, 5));

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
    if (state < 0 || !store_col_text(r, i, 0, out->batch_id, sizeof out->batch_id) ||
        !store_col_text(r, i, 4, out->actor_name, sizeof out->actor_name) ||
        !store_col_text(r, i, 9, out->sha256, sizeof out->sha256)) {
        log_error("store: a batches row does not fit its struct");
        return false;
    }
    return true;
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
    struct store_batch *rows = NULL;
    PGresult *r = NULL;
    enum store_rc rc;
    int count;

    *out = NULL;
    *n = 0;
    if (f->limit < 1 || f->limit > STORE_BATCH_PAGE_MAX || f->state > STORE_BATCH_ABORTED ||
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
    if (rc != STORE_OK)
        goto done;
    count = PQntuples(r);
    if (count == 0)
        goto done;
    rows = calloc((size_t)count, sizeof *rows);
    if (rows == NULL) {
        log_error("store: out of memory listing batches");
        rc = STORE_ERROR;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        if (!row_batch(r, i, &rows[i])) {
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
