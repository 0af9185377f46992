/*
 * The store's audit checkpoints (migrations/0007_audit_checkpoints.sql): the one checkpoint key
 * row (public key and sealed private key, opaque bytes here: sealing is the keyring's), the
 * writers' lock, and the signed checkpoints themselves, inserted and read by seq.
 */
#include "store_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- the checkpoint key ---- */

/* clang-format off */
static const char SQL_CKPT_KEY_GET[] =
    "SELECT public_key, sealed, " US("created_at") " FROM audit_checkpoint_key WHERE id = 1";
static const char SQL_CKPT_KEY_GET_UPDATE[] =
    "SELECT public_key, sealed, " US("created_at") " FROM audit_checkpoint_key WHERE id = 1 "
    "FOR UPDATE";
/* clang-format on */

enum store_rc store_ckpt_key_get(struct store *st, bool for_update, struct store_ckpt_key *out)
{
    PGresult *r = NULL;
    enum store_rc rc = for_update ? RUN(st, SQL_CKPT_KEY_GET_UPDATE, NULL, &r)
                                  : RUN(st, SQL_CKPT_KEY_GET, NULL, &r);
    memset(out, 0, sizeof *out);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK &&
        (!store_col_bytes(r, 0, 0, out->public_key, sizeof out->public_key, NULL, true) ||
         !store_col_bytes(r, 0, 1, out->sealed, sizeof out->sealed, &out->sealed_len, false))) {
        log_error("store: the audit checkpoint key row does not fit its struct");
        rc = STORE_ERROR;
    }
    if (rc == STORE_OK)
        out->created_at_us = store_col_int(r, 0, 2);
    PQclear(r);
    return rc;
}

static const char SQL_CKPT_KEY_INSERT[] =
    "INSERT INTO audit_checkpoint_key (id, public_key, sealed) VALUES (1, $1, $2) "
    "ON CONFLICT (id) DO NOTHING";

enum store_rc store_ckpt_key_insert(struct store *st, const struct store_ckpt_key *k)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_bytes(&p, k->public_key, sizeof k->public_key);
    store_param_bytes(&p, k->sealed, k->sealed_len);
    rc = RUN(st, SQL_CKPT_KEY_INSERT, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        st->conflict = "checkpoint_key";
        rc = STORE_CONFLICT;
    }
    PQclear(r);
    return rc;
}

static const char SQL_CKPT_KEY_UPDATE_SEALED[] =
    "UPDATE audit_checkpoint_key SET sealed = $2 WHERE id = 1 AND public_key = $1";

enum store_rc store_ckpt_key_update_sealed(struct store *st, const struct store_ckpt_key *k)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_bytes(&p, k->public_key, sizeof k->public_key);
    store_param_bytes(&p, k->sealed, k->sealed_len);
    rc = RUN(st, SQL_CKPT_KEY_UPDATE_SEALED, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* ---- checkpoints ---- */

static const char SQL_CKPT_LOCK[] = "SELECT pg_try_advisory_xact_lock(" LOCK_CLASS ", 3)";

enum store_rc store_ckpt_lock(struct store *st, bool *got)
{
    PGresult *r = NULL;
    enum store_rc rc;
    *got = false;
    if (!st->in_tx) {
        log_error("store: the checkpoint lock needs an open transaction");
        return STORE_ERROR;
    }
    rc = RUN(st, SQL_CKPT_LOCK, NULL, &r);
    if (rc == STORE_OK && PQntuples(r) == 1)
        *got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return rc;
}

/* clang-format off */
static const char SQL_CKPT_INSERT[] =
    "INSERT INTO audit_checkpoints (seq, mac, at, public_key, signature) "
    "VALUES ($1, $2, " TS("$3") ", $4, $5)";
#define CKPT_COLUMNS "seq, mac, " US("at") ", public_key, signature"
static const char SQL_CKPT_LATEST[] =
    "SELECT " CKPT_COLUMNS " FROM audit_checkpoints ORDER BY seq DESC LIMIT 1";
static const char SQL_CKPT_LIST[] =
    "SELECT " CKPT_COLUMNS " FROM audit_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2";
/* clang-format on */

enum store_rc store_ckpt_insert(struct store *st, const struct store_ckpt *c)
{
    struct store_params p = {0};
    store_param_int(&p, c->seq);
    store_param_bytes(&p, c->mac, sizeof c->mac);
    store_param_int(&p, c->at_us);
    store_param_bytes(&p, c->public_key, sizeof c->public_key);
    store_param_bytes(&p, c->signature, sizeof c->signature);
    return RUN(st, SQL_CKPT_INSERT, &p, NULL);
}

static bool parse_ckpt(const PGresult *r, int row, struct store_ckpt *c)
{
    memset(c, 0, sizeof *c);
    c->seq = store_col_int(r, row, 0);
    c->at_us = store_col_int(r, row, 2);
    if (!store_col_bytes(r, row, 1, c->mac, sizeof c->mac, NULL, true) ||
        !store_col_bytes(r, row, 3, c->public_key, sizeof c->public_key, NULL, true) ||
        !store_col_bytes(r, row, 4, c->signature, sizeof c->signature, NULL, true)) {
        log_error("store: audit checkpoint %" PRId64 " does not fit its struct", c->seq);
        return false;
    }
    return true;
}

enum store_rc store_ckpt_latest(struct store *st, struct store_ckpt *out)
{
    PGresult *r = NULL;
    enum store_rc rc = RUN(st, SQL_CKPT_LATEST, NULL, &r);
    memset(out, 0, sizeof *out);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_ckpt(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

enum store_rc store_ckpt_list(struct store *st, int64_t after_seq, size_t limit,
                              struct store_ckpt **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    struct store_ckpt *rows = NULL;
    enum store_rc rc;
    int count;

    *out = NULL;
    *n = 0;
    if (limit < 1 || limit > STORE_CKPT_PAGE_MAX) {
        log_error("store: a checkpoint page is 1..%d rows", STORE_CKPT_PAGE_MAX);
        return STORE_ERROR;
    }
    store_param_int(&p, after_seq);
    store_param_int(&p, (int64_t)limit);
    rc = RUN(st, SQL_CKPT_LIST, &p, &r);
    if (rc != STORE_OK || (count = PQntuples(r)) == 0)
        goto done;
    rows = calloc((size_t)count, sizeof *rows);
    if (rows == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    for (int i = 0; i < count; i++) {
        if (!parse_ckpt(r, i, &rows[i])) {
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
