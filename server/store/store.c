/*
 * The store's core: the parameter, execution and result-column helpers every store_*.c uses
 * (store_int.h), the connection and its transactions, and schema migrations. The store is
 * usersigd's only libpq user and holds all of its SQL: apps are in store_app.c, key versions and
 * the keyring root in store_key.c, API tokens in store_token.c, the audit log in store_audit.c.
 */
#include "store_int.h"

#include "log.h"
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters and execution (their contracts are in store_int.h) ---- */

void store_param_int(struct store_params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, v);
    p->values[p->n] = p->num[p->n];
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

void store_param_int_or_null(struct store_params *p, int64_t v)
{
    if (v == 0) {
        p->values[p->n] = NULL;
        p->lengths[p->n] = 0;
        p->formats[p->n++] = 0;
    } else {
        store_param_int(p, v);
    }
}

void store_param_text(struct store_params *p, const char *s)
{
    p->values[p->n] = s;
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

void store_param_bytes(struct store_params *p, const uint8_t *b, size_t len)
{
    p->values[p->n] = (const char *)b;
    p->lengths[p->n] = (int)len;
    p->formats[p->n++] = 1;
}

char *store_int_array_text(const uint32_t *v, size_t n, bool *ok)
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

char *store_text_list_join(const char *base, size_t stride, size_t n, bool null_if_empty, bool *ok)
{
    size_t len = 1;
    char *s, *w;

    *ok = true;
    if (n == 0 && null_if_empty)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *e = base + i * stride;
        size_t l = strnlen(e, stride);
        if (l == stride || memchr(e, '\n', l) != NULL) {
            *ok = false;
            log_error("store: a list element does not fit its column");
            return NULL;
        }
        len += l + 1;
    }
    s = malloc(len);
    if (s == NULL) {
        *ok = false;
        log_error("store: out of memory");
        return NULL;
    }
    w = s;
    for (size_t i = 0; i < n; i++) {
        const char *e = base + i * stride;
        size_t l = strlen(e);
        if (i > 0)
            *w++ = '\n';
        memcpy(w, e, l);
        w += l;
    }
    *w = '\0';
    return s;
}

bool store_text_list_split(const char *s, char *base, size_t stride, size_t max_n, size_t *n)
{
    *n = 0;
    if (*s == '\0')
        return true;
    for (;;) {
        const char *nl = strchr(s, '\n');
        size_t l = nl != NULL ? (size_t)(nl - s) : strlen(s);
        if (*n == max_n || l == 0 || l >= stride)
            return false;
        memcpy(base + *n * stride, s, l);
        base[*n * stride + l] = '\0';
        ++*n;
        if (nl == NULL)
            return true;
        s = nl + 1;
    }
}

/* The schema's unique constraints and the field store_conflict() names for each: a new unique
 * constraint gets its line here (an unlisted one reads "other"). */
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
        {"batches_pkey", "batch_id"},
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
    metrics_db_error();
    /* The primary message only: DETAIL would quote the row, parameters included. */
    log_error("store: %s failed: %s%s%s", name, state != NULL ? state : "",
              state != NULL ? " " : "", msg != NULL ? msg : PQerrorMessage(st->conn));
    return STORE_ERROR;
}

static bool st_can_reconnect(const struct store *st)
{
    return !st->in_tx && st->session_locks == 0;
}

/* PQreset connects again with the connection's own options, host list included: with a
 * multi-host conninfo (host=a,b port=p,q target_session_attrs=read-write) it walks the hosts
 * in order and skips one that is gone or refuses writes (a standby), so after a failover the
 * session lands on the promoted standby without the store knowing the hosts. Until some host
 * accepts writes this fails, the caller answers 503, and the next statement tries again: no
 * thread keeps a dead or read-only session. */
static bool st_reconnect(struct store *st)
{
    if (!st_can_reconnect(st)) {
        log_error("store: the database connection was lost %s",
                  st->in_tx ? "inside a transaction" : "while holding the migration lock");
        return false;
    }
    log_warn("store: the database connection was lost; reconnecting");
    PQreset(st->conn);
    st->n_prepared = 0; /* a new session has none */
    if (PQstatus(st->conn) != CONNECTION_OK) {
        log_error("store: reconnect failed: %s", PQerrorMessage(st->conn));
        return false;
    }
    metrics_db_reconnect();
    return true;
}

/* Only plain statements are prepared: transaction control and DDL run as they are. */
static bool preparable(const char *sql)
{
    static const char *const verbs[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strncmp(sql, verbs[i], strlen(verbs[i])) == 0)
            return true;
    return false;
}

/* The name sql is prepared under on this connection, preparing it first; false when it runs
 * unprepared (not preparable, the table full, or PQprepare failed: PQexecParams then gives the
 * error to report, as before). */
bool store_prepared_name(struct store *st, const char *sql, const struct store_params *p,
                         char name[24])
{
    int i = 0;
    while (i < st->n_prepared && st->prepared[i] != sql)
        i++;
    snprintf(name, 24, "usersigd_%d", i);
    if (i < st->n_prepared)
        return true;
    if (i >= STORE_MAX_PREPARED || !preparable(sql))
        return false;
    PGresult *r = PQprepare(st->conn, name, sql, p != NULL ? p->n : 0, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok)
        st->prepared[st->n_prepared++] = sql;
    return ok;
}

/* See store_int.h: the outcomes and when a dead connection is reconnected. */
enum store_rc store_run(struct store *st, const char *name, const char *sql,
                        const struct store_params *p, PGresult **out)
{
    PGresult *r = NULL;
    enum store_rc rc;

    if (out != NULL)
        *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (PQstatus(st->conn) != CONNECTION_OK && !st_reconnect(st))
            return STORE_ERROR;
        char prep[24];
        if (store_prepared_name(st, sql, p, prep))
            r = PQexecPrepared(st->conn, prep, p != NULL ? p->n : 0, p != NULL ? p->values : NULL,
                               p != NULL ? p->lengths : NULL, p != NULL ? p->formats : NULL, 0);
        else
            r = PQexecParams(st->conn, sql, p != NULL ? p->n : 0, NULL,
                             p != NULL ? p->values : NULL, p != NULL ? p->lengths : NULL,
                             p != NULL ? p->formats : NULL, 0);
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

/* ---- result columns ---- */

int64_t store_col_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool store_col_text(const PGresult *r, int row, int col, char *buf, size_t cap)
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(buf, v, n + 1);
    return true;
}

bool store_col_bytes_alloc(const PGresult *r, int row, int col, uint8_t **out, size_t *len)
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

bool store_col_bytes(const PGresult *r, int row, int col, uint8_t *buf, size_t cap, size_t *len,
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

int store_name_index(const char *const *names, int count, const char *name)
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
        versions[i] = (int)store_col_int(r, i, 0);
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
    struct store_params p = {0};
    store_param_int(&p, version);
    store_param_text(&p, name);
    return RUN(st, SQL_MIGRATION_RECORD, &p, NULL);
}
