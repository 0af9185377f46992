/*
 * Idempotency keys (migrations/0005_idempotency.sql): claiming a client's key for one request,
 * keeping its reply, releasing it. Each function runs one short transaction of its own, so a
 * claim is visible to every process as soon as it returns, before the request itself runs.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define TTL "interval '" STR(STORE_IDEM_TTL_HOURS) " hours'"
#define STR(x) STR_(x)
#define STR_(x) #x
#define EXPIRE_BATCH "64" /* other expired rows deleted per claim, at most */

static const char SQL_IDEM_DROP_OLD[] =
    "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND created_at < now() - " TTL;
/* Opportunistic clean-up, oldest first; rows another transaction holds are left for later. */
static const char SQL_IDEM_EXPIRE[] =
    "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY ("
    "SELECT ctid FROM idempotency_keys WHERE created_at < now() - " TTL
    " ORDER BY created_at LIMIT " EXPIRE_BATCH " FOR UPDATE SKIP LOCKED))";
static const char SQL_IDEM_CLAIM[] =
    "INSERT INTO idempotency_keys (token_id, key, request_hash, state) "
    "VALUES ($1, $2, $3, 'running') ON CONFLICT (token_id, key) DO NOTHING";
static const char SQL_IDEM_GET[] = "SELECT request_hash, state, status, body FROM idempotency_keys "
                                   "WHERE token_id = $1 AND key = $2";
static const char SQL_IDEM_FINISH[] =
    "UPDATE idempotency_keys SET state = 'done', status = $3, body = $4 "
    "WHERE token_id = $1 AND key = $2 AND state = 'running'";
static const char SQL_IDEM_RELEASE[] =
    "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND state = 'running'";

void store_idem_clear(struct store_idem *x)
{
    free(x->body);
    x->body = NULL;
}

/* Reads the row holding the key into out. */
static enum store_rc idem_read(struct store *st, const struct store_params *p,
                               const uint8_t hash[STORE_IDEM_HASH_BYTES], struct store_idem *out)
{
    PGresult *r = NULL;
    uint8_t stored[STORE_IDEM_HASH_BYTES];
    char state[16];
    enum store_rc rc = RUN(st, SQL_IDEM_GET, p, &r);

    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND; /* deleted since the insert conflicted: the caller retries */
    if (rc == STORE_OK && (!store_col_bytes(r, 0, 0, stored, sizeof stored, NULL, true) ||
                           !store_col_text(r, 0, 1, state, sizeof state))) {
        log_error("store: SQL_IDEM_GET: a malformed row");
        rc = STORE_ERROR;
    }
    if (rc != STORE_OK)
        goto done;
    if (memcmp(stored, hash, sizeof stored) != 0) {
        out->state = STORE_IDEM_MISMATCH;
    } else if (strcmp(state, "done") != 0) {
        out->state = STORE_IDEM_RUNNING;
    } else {
        out->state = STORE_IDEM_DONE;
        out->status = (int)store_col_int(r, 0, 2);
        out->body = strdup(PQgetvalue(r, 0, 3));
        if (out->body == NULL) {
            log_error("store: SQL_IDEM_GET: out of memory");
            rc = STORE_ERROR;
        }
    }
done:
    PQclear(r);
    return rc;
}

enum store_rc store_idem_claim(struct store *st, int64_t token_id, const char *key,
                               const uint8_t hash[STORE_IDEM_HASH_BYTES], struct store_idem *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc = STORE_ERROR;

    memset(out, 0, sizeof *out);
    store_param_int(&p, token_id);
    store_param_text(&p, key);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct store_params ins = p;
        store_param_bytes(&ins, hash, STORE_IDEM_HASH_BYTES);
        rc = store_begin(st);
        if (rc == STORE_OK)
            rc = RUN(st, SQL_IDEM_DROP_OLD, &p, NULL);
        if (rc == STORE_OK)
            rc = RUN(st, SQL_IDEM_EXPIRE, NULL, NULL);
        if (rc == STORE_OK)
            rc = RUN(st, SQL_IDEM_CLAIM, &ins, &r);
        if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") != 0) {
            out->state = STORE_IDEM_CLAIMED;
        } else if (rc == STORE_OK) {
            rc = idem_read(st, &p, hash, out);
        }
        PQclear(r);
        r = NULL;
        if (rc == STORE_OK)
            rc = store_commit(st);
        else
            store_rollback(st);
        if (rc != STORE_NOT_FOUND)
            break;
        store_idem_clear(out);
    }
    if (rc == STORE_NOT_FOUND) /* taken and released twice in a row: say so as an error */
        rc = STORE_ERROR;
    return rc;
}

/* One write statement in a transaction of its own; STORE_NOT_FOUND when it touched no row. */
static enum store_rc idem_write(struct store *st, const char *name, const char *sql,
                                const struct store_params *p)
{
    PGresult *r = NULL;
    enum store_rc rc = store_begin(st);
    if (rc == STORE_OK)
        rc = store_run(st, name, sql, p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    if (rc == STORE_OK)
        rc = store_commit(st);
    else
        store_rollback(st);
    return rc;
}

enum store_rc store_idem_finish(struct store *st, int64_t token_id, const char *key, int status,
                                const char *body)
{
    struct store_params p = {0};
    store_param_int(&p, token_id);
    store_param_text(&p, key);
    store_param_int(&p, status);
    store_param_text(&p, body);
    return idem_write(st, "SQL_IDEM_FINISH", SQL_IDEM_FINISH, &p);
}

enum store_rc store_idem_release(struct store *st, int64_t token_id, const char *key)
{
    struct store_params p = {0};
    store_param_int(&p, token_id);
    store_param_text(&p, key);
    return idem_write(st, "SQL_IDEM_RELEASE", SQL_IDEM_RELEASE, &p);
}
