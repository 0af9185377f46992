/*
 * The store: all of usersigd's SQL and its only libpq user. Each statement is one named constant
 * beside the function that runs it, its values passed as $n parameters (PQexecParams); times
 * cross the boundary as Unix microseconds. Errors are logged here, naming the statement, never
 * its parameters; unique violations become STORE_CONFLICT with the constraint's field.
 */
#include "store.h"

#include "audit.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    PGconn *conn;
    bool in_tx;
    int session_locks;    /* advisory locks held by the session: no silent reconnect then */
    const char *conflict; /* the field of the last STORE_CONFLICT */
};

/* clang-format off */
/* Microseconds <-> timestamptz, exactly (each product stays far below 2^53). */
#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define TS(param) \
    "('epoch'::timestamptz + (" param "::bigint / 1000000) * interval '1 second'" \
    " + (" param "::bigint % 1000000) * interval '1 microsecond')"
/* clang-format on */

/* The advisory lock space of usersigd: 'USGD', then one number per lock. */
#define LOCK_CLASS "1431521092"

/* ---- parameters and execution ---- */

#define MAX_PARAMS 10

struct params {
    int n;
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS];
    int formats[MAX_PARAMS];
    char num[MAX_PARAMS][24];
};

static void p_int(struct params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, v);
    p->values[p->n] = p->num[p->n];
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

/* NULL for 0: the nullable ids and times. */
static void p_int_or_null(struct params *p, int64_t v)
{
    if (v == 0) {
        p->values[p->n] = NULL;
        p->lengths[p->n] = 0;
        p->formats[p->n++] = 0;
    } else {
        p_int(p, v);
    }
}

static void p_text(struct params *p, const char *s) /* NULL is SQL NULL */
{
    p->values[p->n] = s;
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

static void p_bytes(struct params *p, const uint8_t *b, size_t len) /* binary: no escaping */
{
    p->values[p->n] = (const char *)b;
    p->lengths[p->n] = (int)len;
    p->formats[p->n++] = 1;
}

/* "{1,2,3}": a bigint[] parameter's text. NULL when v is NULL or on allocation failure (*ok
 * says which). Caller free()s it. */
static char *int_array_text(const uint32_t *v, size_t n, bool *ok)
{
    char *s, *w;
    *ok = true;
    if (v == NULL)
        return NULL;
    s = malloc(n * 11 + 3);
    if (s == NULL) {
        *ok = false;
        log_error("store: out of memory");
        return NULL;
    }
    w = s;
    *w++ = '{';
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, i == 0 ? "%" PRIu32 : ",%" PRIu32, v[i]);
    *w++ = '}';
    *w = '\0';
    return s;
}

static const char *conflict_field(const char *constraint)
{
    static const char *const map[][2] = {
        {"apps_pkey", "sdkappid"},
        {"app_keys_pkey", "version"},
        {"app_keys_fingerprint_key", "fingerprint"},
        {"app_keys_one_active", "one_active"},
        {"keyring_pkey", "keyring"},
        {"audit_log_pkey", "seq"},
        {"schema_migrations_pkey", "migration"},
    };
    for (size_t i = 0; constraint != NULL && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(constraint, map[i][0]) == 0)
            return map[i][1];
    return "other";
}

/* Classifies a failed result; logs what is not an expected outcome. */
STORE_WUR static enum store_rc st_fail(struct store *st, const char *name, const PGresult *r)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (state != NULL && strcmp(state, "23505") == 0) {
        st->conflict = conflict_field(PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME));
        log_debug("store: %s: conflict on %s", name, st->conflict);
        return STORE_CONFLICT;
    }
    if (state != NULL && strcmp(state, "23503") == 0) {
        log_debug("store: %s: the row referred to does not exist", name);
        return STORE_NOT_FOUND;
    }
    /* The primary message only: DETAIL would quote the row, parameters included. */
    log_error("store: %s failed: %s%s%s", name, state != NULL ? state : "",
              state != NULL ? " " : "", msg != NULL ? msg : PQerrorMessage(st->conn));
    return STORE_ERROR;
}

static bool st_can_reconnect(const struct store *st)
{
    return !st->in_tx && st->session_locks == 0;
}

static bool st_reconnect(struct store *st)
{
    if (!st_can_reconnect(st)) {
        log_error("store: the database connection was lost %s",
                  st->in_tx ? "inside a transaction" : "while holding the migration lock");
        return false;
    }
    log_warn("store: the database connection was lost; reconnecting");
    PQreset(st->conn);
    if (PQstatus(st->conn) != CONNECTION_OK) {
        log_error("store: reconnect failed: %s", PQerrorMessage(st->conn));
        return false;
    }
    return true;
}

/* Runs one statement. On STORE_OK *out (when not NULL) is the result: the caller PQclear()s it
 * before returning. A dead connection outside a transaction is reconnected and the statement
 * retried, once. */
STORE_WUR static enum store_rc st_run(struct store *st, const char *name, const char *sql,
                                      const struct params *p, PGresult **out)
{
    PGresult *r = NULL;
    enum store_rc rc;

    if (out != NULL)
        *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (PQstatus(st->conn) != CONNECTION_OK && !st_reconnect(st))
            return STORE_ERROR;
        r = PQexecParams(st->conn, sql, p != NULL ? p->n : 0, NULL, p != NULL ? p->values : NULL,
                         p != NULL ? p->lengths : NULL, p != NULL ? p->formats : NULL, 0);
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            if (out != NULL)
                *out = r;
            else
                PQclear(r);
            return STORE_OK;
        }
        if (attempt > 0 || PQstatus(st->conn) == CONNECTION_OK || !st_can_reconnect(st))
            break;
        PQclear(r);
        r = NULL;
    }
    rc = st_fail(st, name, r);
    PQclear(r);
    return rc;
}

#define RUN(st, sql, p, out) st_run((st), #sql, (sql), (p), (out))

/* ---- result columns ---- */

static int64_t col_int(const PGresult *r, int row, int col) /* NULL is 0 */
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool col_text(const PGresult *r, int row, int col, char *buf, size_t cap)
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(buf, v, n + 1);
    return true;
}

/* A bytea column into a new buffer (caller free()s it); *len 0 and NULL for SQL NULL. false on
 * allocation failure. */
static bool col_bytes_alloc(const PGresult *r, int row, int col, uint8_t **out, size_t *len)
{
    unsigned char *raw;
    size_t n;
    *out = NULL;
    *len = 0;
    if (PQgetisnull(r, row, col))
        return true;
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (raw == NULL)
        return false;
    *out = malloc(n > 0 ? n : 1);
    if (*out != NULL) {
        memcpy(*out, raw, n);
        *len = n;
    }
    PQfreemem(raw);
    return *out != NULL;
}

/* A bytea column of exactly cap bytes (want_exact) or at most cap bytes into buf. */
static bool col_bytes(const PGresult *r, int row, int col, uint8_t *buf, size_t cap, size_t *len,
                      bool want_exact)
{
    unsigned char *raw;
    size_t n;
    bool ok;
    if (PQgetisnull(r, row, col))
        return false;
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (raw == NULL)
        return false;
    ok = want_exact ? n == cap : n <= cap;
    if (ok) {
        memcpy(buf, raw, n);
        if (len != NULL)
            *len = n;
    }
    PQfreemem(raw);
    return ok;
}

static int name_index(const char *const *names, int count, const char *name)
{
    for (int i = 0; name != NULL && i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* ---- connection and transactions ---- */

static void st_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("store: server notice: %s", message);
}

enum store_rc store_open(const char *conninfo, struct store **out)
{
    static const char *const keys[] = {"connect_timeout", "dbname", "client_encoding",
                                       "fallback_application_name", NULL};
    const char *values[] = {"10", conninfo, "UTF8", "usersigd", NULL};
    struct store *st = NULL;
    enum store_rc rc = STORE_ERROR;

    *out = NULL;
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        log_error("store: out of memory");
        goto done;
    }
    st->conn = PQconnectdbParams(keys, values, 1);
    if (st->conn == NULL) {
        log_error("store: out of memory");
        goto done;
    }
    if (PQstatus(st->conn) != CONNECTION_OK) {
        log_error("store: cannot connect to the database: %s", PQerrorMessage(st->conn));
        goto done;
    }
    PQsetNoticeProcessor(st->conn, st_notice, NULL);
    *out = st;
    st = NULL;
    rc = STORE_OK;
done:
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    store_rollback(st);
    if (st->conn != NULL)
        PQfinish(st->conn);
    free(st);
}

const char *store_conflict(const struct store *st)
{
    return st->conflict != NULL ? st->conflict : "other";
}

static const char SQL_PING[] = "SELECT 1";

enum store_rc store_ping(struct store *st)
{
    return RUN(st, SQL_PING, NULL, NULL);
}

static const char SQL_BEGIN[] = "BEGIN ISOLATION LEVEL READ COMMITTED";

enum store_rc store_begin(struct store *st)
{
    enum store_rc rc;
    if (st->in_tx) {
        log_error("store: begin inside an open transaction");
        return STORE_ERROR;
    }
    rc = RUN(st, SQL_BEGIN, NULL, NULL);
    if (rc == STORE_OK)
        st->in_tx = true;
    return rc;
}

static const char SQL_COMMIT[] = "COMMIT";

enum store_rc store_commit(struct store *st)
{
    PGresult *r = NULL;
    enum store_rc rc;
    if (!st->in_tx) {
        log_error("store: commit without a transaction");
        return STORE_ERROR;
    }
    rc = RUN(st, SQL_COMMIT, NULL, &r);
    st->in_tx = false; /* committed, rolled back, or gone with the connection */
    if (rc == STORE_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        log_error("store: the transaction was rolled back (a statement in it failed)");
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

static const char SQL_ROLLBACK[] = "ROLLBACK";

void store_rollback(struct store *st)
{
    if (!st->in_tx)
        return;
    if (PQstatus(st->conn) == CONNECTION_OK && RUN(st, SQL_ROLLBACK, NULL, NULL) != STORE_OK)
        log_warn("store: rollback failed; the server ends the transaction with the connection");
    st->in_tx = false;
}

bool store_in_transaction(const struct store *st)
{
    return st->in_tx;
}

/* ---- apps ---- */

static const char *const id_policy_names[] = {"printable", "strict"};

const char *store_id_policy_name(enum store_id_policy p)
{
    return (unsigned)p < 2 ? id_policy_names[p] : "?";
}

int store_id_policy_parse(const char *name)
{
    return name_index(id_policy_names, 2, name);
}

/* clang-format off */
#define APP_COLUMNS \
    "sdkappid, name, default_expire, max_expire, identifier_policy, " \
    US("created_at") ", " US("updated_at")
/* clang-format on */

static bool parse_app(const PGresult *r, int row, struct store_app *a)
{
    int policy = store_id_policy_parse(PQgetvalue(r, row, 4));
    memset(a, 0, sizeof *a);
    a->sdkappid = (uint32_t)col_int(r, row, 0);
    a->default_expire = (uint32_t)col_int(r, row, 2);
    a->max_expire = (uint32_t)col_int(r, row, 3);
    a->identifier_policy = policy == STORE_ID_STRICT ? STORE_ID_STRICT : STORE_ID_PRINTABLE;
    a->created_at_us = col_int(r, row, 5);
    a->updated_at_us = col_int(r, row, 6);
    if (!col_text(r, row, 1, a->name, sizeof a->name) || policy < 0) {
        log_error("store: apps row %" PRIu32 " does not fit its struct", a->sdkappid);
        return false;
    }
    return true;
}

/* clang-format off */
static const char SQL_APP_INSERT[] =
    "INSERT INTO apps (sdkappid, name, default_expire, max_expire, identifier_policy) "
    "VALUES ($1, $2, $3, $4, $5) RETURNING " US("created_at") ", " US("updated_at");
/* clang-format on */

enum store_rc store_app_insert(struct store *st, struct store_app *app)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_int(&p, app->sdkappid);
    p_text(&p, app->name);
    p_int(&p, app->default_expire);
    p_int(&p, app->max_expire);
    p_text(&p, store_id_policy_name(app->identifier_policy));
    rc = RUN(st, SQL_APP_INSERT, &p, &r);
    if (rc == STORE_OK) {
        app->created_at_us = col_int(r, 0, 0);
        app->updated_at_us = col_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

static const char SQL_APP_GET[] = "SELECT " APP_COLUMNS " FROM apps WHERE sdkappid = $1";
static const char SQL_APP_GET_SHARE[] =
    "SELECT " APP_COLUMNS " FROM apps WHERE sdkappid = $1 FOR SHARE";
static const char SQL_APP_GET_UPDATE[] =
    "SELECT " APP_COLUMNS " FROM apps WHERE sdkappid = $1 FOR UPDATE";

enum store_rc store_app_get(struct store *st, uint32_t sdkappid, enum store_lock lock,
                            struct store_app *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_int(&p, sdkappid);
    if (lock == STORE_LOCK_UPDATE)
        rc = RUN(st, SQL_APP_GET_UPDATE, &p, &r);
    else if (lock == STORE_LOCK_SHARE)
        rc = RUN(st, SQL_APP_GET_SHARE, &p, &r);
    else
        rc = RUN(st, SQL_APP_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_app(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_APP_LIST[] =
    "SELECT " APP_COLUMNS
    " FROM apps WHERE ($1::bigint[] IS NULL OR sdkappid = ANY ($1::bigint[])) "
    "AND sdkappid > $2 ORDER BY sdkappid LIMIT $3";

enum store_rc store_app_list(struct store *st, const uint32_t *scope, size_t n_scope,
                             uint32_t after, size_t limit, struct store_app **out, size_t *n)
{
    struct params p = {0};
    PGresult *r = NULL;
    struct store_app *apps = NULL;
    bool ok;
    char *scope_text = int_array_text(scope, n_scope, &ok);
    enum store_rc rc = STORE_ERROR;
    int rows;

    *out = NULL;
    *n = 0;
    if (!ok)
        goto done;
    p_text(&p, scope_text);
    p_int(&p, after);
    if (limit > 0)
        p_int(&p, (int64_t)limit);
    else
        p_text(&p, NULL); /* LIMIT NULL: all */
    rc = RUN(st, SQL_APP_LIST, &p, &r);
    if (rc != STORE_OK)
        goto done;
    rows = PQntuples(r);
    if (rows > 0) {
        apps = calloc((size_t)rows, sizeof *apps);
        if (apps == NULL) {
            log_error("store: out of memory");
            rc = STORE_ERROR;
            goto done;
        }
    }
    for (int i = 0; i < rows; i++) {
        if (!parse_app(r, i, &apps[i])) {
            rc = STORE_ERROR;
            goto done;
        }
    }
    *out = apps;
    *n = (size_t)rows;
    apps = NULL;
done:
    free(apps);
    free(scope_text);
    PQclear(r);
    return rc;
}

static const char SQL_APP_UPDATE[] =
    "UPDATE apps SET name = COALESCE($2, name), "
    "default_expire = COALESCE($3::integer, default_expire), "
    "max_expire = COALESCE($4::integer, max_expire), "
    "identifier_policy = COALESCE($5, identifier_policy), updated_at = now() "
    "WHERE sdkappid = $1 RETURNING " APP_COLUMNS;

enum store_rc store_app_update(struct store *st, const struct store_app *values, unsigned fields,
                               struct store_app *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    struct store_app row;

    p_int(&p, values->sdkappid);
    p_text(&p, fields & STORE_APP_SET_NAME ? values->name : NULL);
    if (fields & STORE_APP_SET_DEFAULT_EXPIRE)
        p_int(&p, values->default_expire);
    else
        p_text(&p, NULL);
    if (fields & STORE_APP_SET_MAX_EXPIRE)
        p_int(&p, values->max_expire);
    else
        p_text(&p, NULL);
    p_text(&p, fields & STORE_APP_SET_ID_POLICY ? store_id_policy_name(values->identifier_policy)
                                                : NULL);
    rc = RUN(st, SQL_APP_UPDATE, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_app(r, 0, &row))
        rc = STORE_ERROR;
    if (rc == STORE_OK && out != NULL)
        *out = row;
    PQclear(r);
    return rc;
}

/* ---- key versions ---- */

static const char *const kind_names[] = {"", "hmac", "ecdsa"};
static const char *const state_names[] = {"pending", "active", "retired", "disabled", "destroyed"};

const char *store_key_kind_name(enum store_key_kind k)
{
    return k == STORE_KEY_HMAC || k == STORE_KEY_ECDSA ? kind_names[k] : "?";
}

int store_key_kind_parse(const char *name)
{
    int i = name_index(kind_names, 3, name);
    return i > 0 ? i : -1;
}

const char *store_key_state_name(enum store_key_state s)
{
    return (unsigned)s < 5 ? state_names[s] : "?";
}

int store_key_state_parse(const char *name)
{
    return name_index(state_names, 5, name);
}

void store_key_clear(struct store_key *k)
{
    if (k == NULL)
        return;
    free(k->sealed);
    k->sealed = NULL;
    k->sealed_len = 0;
}

void store_key_list_free(struct store_key *keys, size_t n)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
}

/* Columns 0..12; KEY_COLUMNS adds sealed as column 13. */
/* clang-format off */
#define KEY_META_COLUMNS \
    "sdkappid, version, kind, state, fingerprint, " \
    US("created_at") ", " US("activated_at") ", " US("retired_at") ", " \
    US("disabled_at") ", " US("destroyed_at") ", " \
    "destroy_reason, sign_count, " US("last_used_at")
#define KEY_COLUMNS KEY_META_COLUMNS ", sealed"
/* clang-format on */

static bool parse_key(const PGresult *r, int row, bool with_sealed, struct store_key *k)
{
    int kind = store_key_kind_parse(PQgetvalue(r, row, 2));
    int state = store_key_state_parse(PQgetvalue(r, row, 3));
    bool ok;

    memset(k, 0, sizeof *k);
    k->sdkappid = (uint32_t)col_int(r, row, 0);
    k->version = (uint32_t)col_int(r, row, 1);
    k->kind = kind == STORE_KEY_ECDSA ? STORE_KEY_ECDSA : STORE_KEY_HMAC;
    k->state = state >= 0 ? (enum store_key_state)state : STORE_KEY_DISABLED;
    k->created_at_us = col_int(r, row, 5);
    k->activated_at_us = col_int(r, row, 6);
    k->retired_at_us = col_int(r, row, 7);
    k->disabled_at_us = col_int(r, row, 8);
    k->destroyed_at_us = col_int(r, row, 9);
    k->sign_count = col_int(r, row, 11);
    k->last_used_at_us = col_int(r, row, 12);
    ok = kind > 0 && state >= 0 &&
         col_bytes(r, row, 4, k->fingerprint, sizeof k->fingerprint, NULL, true) &&
         col_text(r, row, 10, k->destroy_reason, sizeof k->destroy_reason);
    if (ok && with_sealed && !col_bytes_alloc(r, row, 13, &k->sealed, &k->sealed_len)) {
        log_error("store: out of memory");
        return false;
    }
    if (!ok)
        log_error("store: app_keys row %" PRIu32 "/%" PRIu32 " does not fit its struct",
                  k->sdkappid, k->version);
    return ok;
}

/* Parses all rows into a new array. */
STORE_WUR static enum store_rc parse_keys(const PGresult *r, bool with_sealed,
                                          struct store_key **out, size_t *n)
{
    int rows = PQntuples(r);
    struct store_key *keys = NULL;

    *out = NULL;
    *n = 0;
    if (rows == 0)
        return STORE_OK;
    keys = calloc((size_t)rows, sizeof *keys);
    if (keys == NULL) {
        log_error("store: out of memory");
        return STORE_ERROR;
    }
    for (int i = 0; i < rows; i++) {
        if (!parse_key(r, i, with_sealed, &keys[i])) {
            store_key_list_free(keys, (size_t)i + 1);
            return STORE_ERROR;
        }
    }
    *out = keys;
    *n = (size_t)rows;
    return STORE_OK;
}

static const char SQL_KEY_NEXT_VERSION[] =
    "SELECT COALESCE((SELECT max(version) FROM app_keys k WHERE k.sdkappid = a.sdkappid), 0) + 1 "
    "FROM apps a WHERE a.sdkappid = $1 FOR UPDATE OF a";

enum store_rc store_key_next_version(struct store *st, uint32_t sdkappid, uint32_t *version)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_int(&p, sdkappid);
    rc = RUN(st, SQL_KEY_NEXT_VERSION, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        *version = (uint32_t)col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static const char SQL_KEY_INSERT[] =
    "INSERT INTO app_keys (sdkappid, version, kind, state, fingerprint, sealed, activated_at) "
    "VALUES ($1, $2, $3, $4::text, $5, $6, CASE WHEN $4::text = 'active' THEN now() END)";

enum store_rc store_key_insert(struct store *st, const struct store_key *k)
{
    struct params p = {0};
    if (k->state != STORE_KEY_PENDING && k->state != STORE_KEY_ACTIVE) {
        log_error("store: a new key version is pending or active, not %s",
                  store_key_state_name(k->state));
        return STORE_ERROR;
    }
    if (k->sealed == NULL || k->sealed_len < STORE_SEALED_MIN || k->sealed_len > STORE_SEALED_MAX) {
        log_error("store: a new key version needs its sealed key (%d..%d bytes)", STORE_SEALED_MIN,
                  STORE_SEALED_MAX);
        return STORE_ERROR;
    }
    p_int(&p, k->sdkappid);
    p_int(&p, k->version);
    p_text(&p, store_key_kind_name(k->kind));
    p_text(&p, store_key_state_name(k->state));
    p_bytes(&p, k->fingerprint, sizeof k->fingerprint);
    p_bytes(&p, k->sealed, k->sealed_len);
    return RUN(st, SQL_KEY_INSERT, &p, NULL);
}

static const char SQL_KEY_GET[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_get(struct store *st, uint32_t sdkappid, uint32_t version,
                            struct store_key *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    memset(out, 0, sizeof *out);
    p_int(&p, sdkappid);
    p_int(&p, version);
    rc = RUN(st, SQL_KEY_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_key(r, 0, true, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_ACTIVE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND state = 'active'";
static const char SQL_KEY_ACTIVE_SHARE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND state = 'active' FOR SHARE";
static const char SQL_KEY_ACTIVE_UPDATE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND "
    "state = 'active' FOR NO KEY UPDATE";

enum store_rc store_key_get_active(struct store *st, uint32_t sdkappid, enum store_lock lock,
                                   struct store_key *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc = STORE_ERROR;
    memset(out, 0, sizeof *out);
    p_int(&p, sdkappid);
    /* A locked read that waited for a rotation re-checks the row it waited for (now retired) and
     * skips it; the version made active is not in its snapshot. A second read sees it. */
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(r);
        if (lock == STORE_LOCK_UPDATE)
            rc = RUN(st, SQL_KEY_ACTIVE_UPDATE, &p, &r);
        else if (lock == STORE_LOCK_SHARE)
            rc = RUN(st, SQL_KEY_ACTIVE_SHARE, &p, &r);
        else
            rc = RUN(st, SQL_KEY_ACTIVE, &p, &r);
        if (rc != STORE_OK || PQntuples(r) > 0 || lock == STORE_LOCK_NONE)
            break;
    }
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_key(r, 0, true, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_LIST[] =
    "SELECT " KEY_META_COLUMNS " FROM app_keys WHERE sdkappid = $1 ORDER BY version";

enum store_rc store_key_list(struct store *st, uint32_t sdkappid, struct store_key **out, size_t *n)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    *out = NULL;
    *n = 0;
    p_int(&p, sdkappid);
    rc = RUN(st, SQL_KEY_LIST, &p, &r);
    if (rc == STORE_OK)
        rc = parse_keys(r, false, out, n);
    PQclear(r);
    return rc;
}

static const char SQL_KEY_LIST_SEALED[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sealed IS NOT NULL "
    "AND ($1::bigint[] IS NULL OR sdkappid = ANY ($1::bigint[])) ORDER BY sdkappid, version";
static const char SQL_KEY_LIST_SEALED_UPDATE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sealed IS NOT NULL "
    "AND ($1::bigint[] IS NULL OR sdkappid = ANY ($1::bigint[])) ORDER BY sdkappid, version "
    "FOR NO KEY UPDATE";

enum store_rc store_key_list_sealed(struct store *st, const uint32_t *apps, size_t n_apps,
                                    bool for_update, struct store_key **out, size_t *n)
{
    struct params p = {0};
    PGresult *r = NULL;
    bool ok;
    char *apps_text = int_array_text(apps, n_apps, &ok);
    enum store_rc rc = STORE_ERROR;

    *out = NULL;
    *n = 0;
    if (!ok)
        goto done;
    p_text(&p, apps_text);
    rc = for_update ? RUN(st, SQL_KEY_LIST_SEALED_UPDATE, &p, &r)
                    : RUN(st, SQL_KEY_LIST_SEALED, &p, &r);
    if (rc == STORE_OK)
        rc = parse_keys(r, true, out, n);
done:
    free(apps_text);
    PQclear(r);
    return rc;
}

static const char SQL_KEY_SET_STATE[] =
    "UPDATE app_keys SET state = $3::text, "
    "activated_at = CASE WHEN $3::text = 'active' AND state <> 'active' THEN now() "
    "ELSE activated_at END, "
    "retired_at = CASE WHEN $3::text = 'retired' AND state <> 'retired' THEN now() "
    "ELSE retired_at END, "
    "disabled_at = CASE WHEN $3::text = 'disabled' AND state <> 'disabled' THEN now() "
    "ELSE disabled_at END "
    "WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_set_state(struct store *st, uint32_t sdkappid, uint32_t version,
                                  enum store_key_state state)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if ((unsigned)state >= STORE_KEY_DESTROYED) {
        log_error("store: store_key_set_state cannot set %s", store_key_state_name(state));
        return STORE_ERROR;
    }
    p_int(&p, sdkappid);
    p_int(&p, version);
    p_text(&p, store_key_state_name(state));
    rc = RUN(st, SQL_KEY_SET_STATE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_DESTROY[] =
    "UPDATE app_keys SET state = 'destroyed', sealed = NULL, destroyed_at = now(), "
    "destroy_reason = $3 WHERE sdkappid = $1 AND version = $2 "
    "AND state NOT IN ('active', 'destroyed')";
static const char SQL_KEY_EXISTS[] = "SELECT 1 FROM app_keys WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_destroy(struct store *st, uint32_t sdkappid, uint32_t version,
                                const char *reason)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if (reason == NULL || reason[0] == '\0') {
        log_error("store: destroying a key needs a reason");
        return STORE_ERROR;
    }
    p_int(&p, sdkappid);
    p_int(&p, version);
    p_text(&p, reason);
    rc = RUN(st, SQL_KEY_DESTROY, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        PQclear(r);
        r = NULL;
        p.n = 2;
        rc = RUN(st, SQL_KEY_EXISTS, &p, &r);
        if (rc == STORE_OK && PQntuples(r) == 0) {
            rc = STORE_NOT_FOUND;
        } else if (rc == STORE_OK) {
            st->conflict = "state";
            rc = STORE_CONFLICT;
        }
    }
    PQclear(r);
    return rc;
}

static const char SQL_KEY_FIND_FINGERPRINT[] =
    "SELECT sdkappid, version FROM app_keys WHERE fingerprint = $1";

enum store_rc store_key_find_fingerprint(struct store *st,
                                         const uint8_t fingerprint[STORE_FINGERPRINT_LEN],
                                         uint32_t *sdkappid, uint32_t *version)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_bytes(&p, fingerprint, STORE_FINGERPRINT_LEN);
    rc = RUN(st, SQL_KEY_FIND_FINGERPRINT, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK) {
        *sdkappid = (uint32_t)col_int(r, 0, 0);
        *version = (uint32_t)col_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

static const char SQL_KEY_RECORD_USE[] =
    "UPDATE app_keys SET sign_count = sign_count + $3, last_used_at = now() "
    "WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_record_use(struct store *st, uint32_t sdkappid, uint32_t version,
                                   uint64_t count)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if (count > INT64_MAX) {
        log_error("store: sign count out of range");
        return STORE_ERROR;
    }
    p_int(&p, sdkappid);
    p_int(&p, version);
    p_int(&p, (int64_t)count);
    rc = RUN(st, SQL_KEY_RECORD_USE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_UPDATE_SEALED[] = "UPDATE app_keys SET sealed = $3 "
                                            "WHERE sdkappid = $1 AND version = $2 "
                                            "AND sealed IS NOT NULL";

enum store_rc store_key_update_sealed(struct store *st, uint32_t sdkappid, uint32_t version,
                                      const uint8_t *sealed, size_t len)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if (sealed == NULL || len < STORE_SEALED_MIN || len > STORE_SEALED_MAX) {
        log_error("store: a sealed key is %d..%d bytes", STORE_SEALED_MIN, STORE_SEALED_MAX);
        return STORE_ERROR;
    }
    p_int(&p, sdkappid);
    p_int(&p, version);
    p_bytes(&p, sealed, len);
    rc = RUN(st, SQL_KEY_UPDATE_SEALED, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* ---- keyring ---- */

/* clang-format off */
static const char SQL_KEYRING_GET[] =
    "SELECT sealed_root, " US("created_at") " FROM keyring WHERE id = 1";
static const char SQL_KEYRING_GET_UPDATE[] =
    "SELECT sealed_root, " US("created_at") " FROM keyring WHERE id = 1 FOR UPDATE";
/* clang-format on */

enum store_rc store_keyring_get(struct store *st, bool for_update, uint8_t *buf, size_t cap,
                                size_t *len, int64_t *created_at_us)
{
    PGresult *r = NULL;
    enum store_rc rc =
        for_update ? RUN(st, SQL_KEYRING_GET_UPDATE, NULL, &r) : RUN(st, SQL_KEYRING_GET, NULL, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !col_bytes(r, 0, 0, buf, cap, len, false)) {
        log_error("store: the sealed root does not fit the buffer");
        rc = STORE_ERROR;
    }
    if (rc == STORE_OK && created_at_us != NULL)
        *created_at_us = col_int(r, 0, 1);
    PQclear(r);
    return rc;
}

static const char SQL_KEYRING_INSERT[] =
    "INSERT INTO keyring (id, sealed_root) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";

enum store_rc store_keyring_insert(struct store *st, const uint8_t *sealed, size_t len)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_bytes(&p, sealed, len);
    rc = RUN(st, SQL_KEYRING_INSERT, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        st->conflict = "keyring";
        rc = STORE_CONFLICT;
    }
    PQclear(r);
    return rc;
}

static const char SQL_KEYRING_UPDATE[] = "UPDATE keyring SET sealed_root = $1 WHERE id = 1";

enum store_rc store_keyring_update(struct store *st, const uint8_t *sealed, size_t len)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_bytes(&p, sealed, len);
    rc = RUN(st, SQL_KEYRING_UPDATE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* ---- API tokens ---- */

static const char *const role_names[] = {"admin", "key_manager", "signer", "auditor"};

const char *store_role_name(enum store_role r)
{
    return (unsigned)r < 4 ? role_names[r] : "?";
}

int store_role_parse(const char *name)
{
    return name_index(role_names, 4, name);
}

/* clang-format off */
#define TOKEN_COLUMNS \
    "id, name, role, apps, secret_hash, " \
    US("created_at") ", " US("expires_at") ", " US("revoked_at") ", " US("last_used_at")
/* clang-format on */

/* "{1,2,3}" into t->apps. */
static bool parse_apps(const char *s, struct store_token *t)
{
    t->n_apps = 0;
    if (*s++ != '{')
        return false;
    while (*s != '}') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || errno != 0 || v == 0 || v > UINT32_MAX || t->n_apps == STORE_TOKEN_MAX_APPS)
            return false;
        t->apps[t->n_apps++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '}')
            return false;
    }
    return t->n_apps > 0;
}

static bool parse_token(const PGresult *r, int row, struct store_token *t)
{
    int role = store_role_parse(PQgetvalue(r, row, 2));
    bool ok;
    memset(t, 0, sizeof *t);
    t->id = col_int(r, row, 0);
    t->role = role >= 0 ? (enum store_role)role : STORE_ROLE_AUDITOR;
    t->all_apps = PQgetisnull(r, row, 3);
    t->created_at_us = col_int(r, row, 5);
    t->expires_at_us = col_int(r, row, 6);
    t->revoked_at_us = col_int(r, row, 7);
    t->last_used_at_us = col_int(r, row, 8);
    ok = role >= 0 && col_text(r, row, 1, t->name, sizeof t->name) &&
         (t->all_apps || parse_apps(PQgetvalue(r, row, 3), t)) &&
         col_bytes(r, row, 4, t->secret_hash, sizeof t->secret_hash, NULL, true);
    if (!ok)
        log_error("store: api_tokens row %" PRId64 " does not fit its struct", t->id);
    return ok;
}

/* clang-format off */
static const char SQL_TOKEN_INSERT[] =
    "INSERT INTO api_tokens (name, role, apps, secret_hash, expires_at) "
    "VALUES ($1, $2, $3::bigint[], $4, " TS("$5") ") RETURNING id, " US("created_at");
/* clang-format on */

enum store_rc store_token_insert(struct store *st, struct store_token *t)
{
    struct params p = {0};
    PGresult *r = NULL;
    bool ok;
    char *apps_text = NULL;
    enum store_rc rc = STORE_ERROR;

    if (!t->all_apps && (t->n_apps == 0 || t->n_apps > STORE_TOKEN_MAX_APPS)) {
        log_error("store: a token is scoped to 1..%d apps, or to all", STORE_TOKEN_MAX_APPS);
        return STORE_ERROR;
    }
    apps_text = int_array_text(t->all_apps ? NULL : t->apps, t->n_apps, &ok);
    if (!ok)
        goto done;
    p_text(&p, t->name);
    p_text(&p, store_role_name(t->role));
    p_text(&p, apps_text);
    p_bytes(&p, t->secret_hash, sizeof t->secret_hash);
    p_int_or_null(&p, t->expires_at_us);
    rc = RUN(st, SQL_TOKEN_INSERT, &p, &r);
    if (rc == STORE_OK) {
        t->id = col_int(r, 0, 0);
        t->created_at_us = col_int(r, 0, 1);
    }
done:
    free(apps_text);
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_GET[] = "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE id = $1";

enum store_rc store_token_get(struct store *st, int64_t id, struct store_token *out)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_int(&p, id);
    rc = RUN(st, SQL_TOKEN_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_token(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_LIST[] = "SELECT " TOKEN_COLUMNS " FROM api_tokens ORDER BY id";

enum store_rc store_token_list(struct store *st, struct store_token **out, size_t *n)
{
    PGresult *r = NULL;
    struct store_token *tokens = NULL;
    enum store_rc rc;
    int rows;

    *out = NULL;
    *n = 0;
    rc = RUN(st, SQL_TOKEN_LIST, NULL, &r);
    if (rc != STORE_OK)
        goto done;
    rows = PQntuples(r);
    if (rows > 0 && (tokens = calloc((size_t)rows, sizeof *tokens)) == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    for (int i = 0; i < rows; i++) {
        if (!parse_token(r, i, &tokens[i])) {
            rc = STORE_ERROR;
            goto done;
        }
    }
    *out = tokens;
    *n = (size_t)rows;
    tokens = NULL;
done:
    free(tokens);
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_REVOKE[] =
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1";

enum store_rc store_token_revoke(struct store *st, int64_t id)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    p_int(&p, id);
    rc = RUN(st, SQL_TOKEN_REVOKE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_TOUCH[] =
    "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 "
    "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')";

enum store_rc store_token_touch(struct store *st, int64_t id)
{
    struct params p = {0};
    p_int(&p, id);
    return RUN(st, SQL_TOKEN_TOUCH, &p, NULL);
}

/* ---- audit log ---- */

static const char SQL_AUDIT_LOCK[] = "SELECT pg_advisory_xact_lock(" LOCK_CLASS ", 1)";

enum store_rc store_audit_lock(struct store *st)
{
    if (!st->in_tx) {
        log_error("store: the audit lock needs an open transaction");
        return STORE_ERROR;
    }
    return RUN(st, SQL_AUDIT_LOCK, NULL, NULL);
}

/* clang-format off */
static const char SQL_AUDIT_LAST[] =
    "SELECT l.seq, l.mac, " US("l.at") ", " US("clock_timestamp()") " FROM (SELECT 1) AS one "
    "LEFT JOIN LATERAL (SELECT seq, mac, at FROM audit_log ORDER BY seq DESC LIMIT 1) AS l ON true";
/* clang-format on */

enum store_rc store_audit_last(struct store *st, int64_t *seq, uint8_t mac[32], int64_t *at_us,
                               int64_t *now_us)
{
    PGresult *r = NULL;
    enum store_rc rc = RUN(st, SQL_AUDIT_LAST, NULL, &r);
    if (rc != STORE_OK)
        goto done;
    *seq = col_int(r, 0, 0);
    *at_us = col_int(r, 0, 2);
    *now_us = col_int(r, 0, 3);
    if (*seq == 0) {
        memset(mac, 0, 32);
    } else if (!col_bytes(r, 0, 1, mac, 32, NULL, true)) {
        log_error("store: audit event %" PRId64 " has no 32-byte mac", *seq);
        rc = STORE_ERROR;
    }
done:
    PQclear(r);
    return rc;
}

/* clang-format off */
static const char SQL_AUDIT_INSERT[] =
    "INSERT INTO audit_log (seq, at, actor_id, actor_name, action, sdkappid, key_version, "
    "outcome, details, mac) VALUES ($1, " TS("$2") ", $3, $4, $5, $6, $7, $8, $9, $10)";
/* clang-format on */

enum store_rc store_audit_insert(struct store *st, const struct audit_event *ev)
{
    struct params p = {0};
    p_int(&p, ev->seq);
    p_int(&p, ev->at_us);
    p_int_or_null(&p, ev->actor_id);
    p_text(&p, ev->actor_name);
    p_text(&p, ev->action);
    p_int_or_null(&p, ev->sdkappid);
    p_int_or_null(&p, ev->key_version);
    p_text(&p, ev->outcome);
    p_text(&p, ev->details);
    p_bytes(&p, ev->mac, sizeof ev->mac);
    return RUN(st, SQL_AUDIT_INSERT, &p, NULL);
}

/* clang-format off */
static const char SQL_AUDIT_QUERY[] =
    "SELECT seq, " US("at") ", actor_id, actor_name, action, sdkappid, key_version, outcome, "
    "details, mac FROM audit_log WHERE seq > $1 "
    "AND ($2::bigint IS NULL OR sdkappid = $2::bigint) "
    "AND ($3::text IS NULL OR action = $3::text) "
    "AND ($4::text IS NULL OR actor_name = $4::text) "
    "AND ($5::bigint IS NULL OR at >= " TS("$5") ") "
    "AND ($6::bigint IS NULL OR at < " TS("$6") ") ORDER BY seq LIMIT $7";
/* clang-format on */

enum store_rc store_audit_query(struct store *st, const struct store_audit_filter *f,
                                struct audit_event **out, size_t *n)
{
    static const int text_cols[] = {3, 4, 7, 8}; /* actor_name, action, outcome, details */
    struct params p = {0};
    PGresult *r = NULL;
    struct audit_event *events = NULL;
    enum store_rc rc = STORE_ERROR;
    size_t size;
    char *w;
    int rows;

    *out = NULL;
    *n = 0;
    if (f->limit < 1 || f->limit > STORE_AUDIT_PAGE_MAX) {
        log_error("store: an audit page is 1..%d events", STORE_AUDIT_PAGE_MAX);
        return STORE_ERROR;
    }
    p_int(&p, f->after_seq);
    p_int_or_null(&p, f->sdkappid);
    p_text(&p, f->action);
    p_text(&p, f->actor);
    p_int_or_null(&p, f->since_us);
    p_int_or_null(&p, f->until_us);
    p_int(&p, (int64_t)f->limit);
    rc = RUN(st, SQL_AUDIT_QUERY, &p, &r);
    if (rc != STORE_OK || (rows = PQntuples(r)) == 0)
        goto done;

    /* One block: the events, then their strings. */
    size = (size_t)rows * sizeof *events;
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < 4; c++)
            size += (size_t)PQgetlength(r, i, text_cols[c]) + 1;
    events = calloc(1, size);
    if (events == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    w = (char *)(events + rows);
    for (int i = 0; i < rows; i++) {
        struct audit_event *ev = &events[i];
        const char **fields[] = {&ev->actor_name, &ev->action, &ev->outcome, &ev->details};
        ev->seq = col_int(r, i, 0);
        ev->at_us = col_int(r, i, 1);
        ev->actor_id = col_int(r, i, 2);
        ev->sdkappid = (uint32_t)col_int(r, i, 5);
        ev->key_version = (uint32_t)col_int(r, i, 6);
        for (int c = 0; c < 4; c++) {
            size_t len = (size_t)PQgetlength(r, i, text_cols[c]);
            memcpy(w, PQgetvalue(r, i, text_cols[c]), len + 1);
            *fields[c] = w;
            w += len + 1;
        }
        /* A mac of the wrong length stays zero: verification reports the event. */
        if (!col_bytes(r, i, 9, ev->mac, sizeof ev->mac, NULL, true))
            memset(ev->mac, 0, sizeof ev->mac);
    }
    *out = events;
    *n = (size_t)rows;
    events = NULL;
done:
    free(events);
    PQclear(r);
    return rc;
}

/* ---- schema migrations ---- */

static const char SQL_MIGRATION_LOCK[] = "SELECT pg_advisory_lock(" LOCK_CLASS ", 2)";

enum store_rc store_migration_lock(struct store *st)
{
    enum store_rc rc = RUN(st, SQL_MIGRATION_LOCK, NULL, NULL);
    if (rc == STORE_OK)
        st->session_locks++;
    return rc;
}

static const char SQL_MIGRATION_UNLOCK[] = "SELECT pg_advisory_unlock(" LOCK_CLASS ", 2)";

void store_migration_unlock(struct store *st)
{
    if (st->session_locks == 0)
        return;
    if (PQstatus(st->conn) == CONNECTION_OK &&
        RUN(st, SQL_MIGRATION_UNLOCK, NULL, NULL) != STORE_OK)
        log_warn("store: the migration lock goes with the connection");
    st->session_locks--;
}

static const char SQL_MIGRATION_TABLE_CREATE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version integer NOT NULL, name text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now(), "
    "CONSTRAINT schema_migrations_pkey PRIMARY KEY (version), "
    "CONSTRAINT schema_migrations_version_range CHECK (version >= 1))";

enum store_rc store_migration_table_create(struct store *st)
{
    return RUN(st, SQL_MIGRATION_TABLE_CREATE, NULL, NULL);
}

static const char SQL_MIGRATION_TABLE_EXISTS[] =
    "SELECT to_regclass('schema_migrations') IS NOT NULL";
static const char SQL_MIGRATION_VERSIONS[] =
    "SELECT version FROM schema_migrations ORDER BY version";

enum store_rc store_migration_versions(struct store *st, int **out, size_t *n)
{
    PGresult *r = NULL;
    int *versions = NULL;
    enum store_rc rc;
    int rows;

    *out = NULL;
    *n = 0;
    rc = RUN(st, SQL_MIGRATION_TABLE_EXISTS, NULL, &r);
    if (rc != STORE_OK || strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        goto done;
    PQclear(r);
    rc = RUN(st, SQL_MIGRATION_VERSIONS, NULL, &r);
    if (rc != STORE_OK || (rows = PQntuples(r)) == 0)
        goto done;
    versions = malloc((size_t)rows * sizeof *versions);
    if (versions == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    for (int i = 0; i < rows; i++)
        versions[i] = (int)col_int(r, i, 0);
    *out = versions;
    *n = (size_t)rows;
done:
    PQclear(r);
    return rc;
}

enum store_rc store_migration_exec(struct store *st, const char *label, const char *sql)
{
    PGresult *r;
    ExecStatusType s;
    enum store_rc rc = STORE_OK;

    if (!st->in_tx) {
        log_error("store: migration %s runs inside a transaction", label);
        return STORE_ERROR;
    }
    r = PQexec(st->conn, sql);
    s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *pos = r != NULL ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
        log_error("store: migration %s failed%s%s: %s", label, pos != NULL ? " at character " : "",
                  pos != NULL ? pos : "", msg != NULL ? msg : PQerrorMessage(st->conn));
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

static const char SQL_MIGRATION_RECORD[] =
    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";

enum store_rc store_migration_record(struct store *st, int version, const char *name)
{
    struct params p = {0};
    p_int(&p, version);
    p_text(&p, name);
    return RUN(st, SQL_MIGRATION_RECORD, &p, NULL);
}
