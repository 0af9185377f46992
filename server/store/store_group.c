/*
 * The store's side of group commit (store.h, "signing groups"): a group's transaction in two
 * round trips, each a libpq pipeline. The first opens the transaction, locks the active key
 * versions the group signs with, takes the audit lock, reads the generations of the group's
 * apps and which of its API tokens are still live, and reads the last audit event; the second
 * inserts the group's audit events in one statement, adds the sign counts and commits. Or, when
 * the caller already knows all of that (it appended the last event), the whole transaction in
 * one pipeline, a check under the audit lock in place of the reads (store_group_fast).
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"

#define PIPE_MAX 8 /* statements in one pipeline */

struct pipe_stmt {
    const char *name; /* for the log: the statement's constant name */
    const char *sql;
    struct store_params p;
    PGresult *result; /* kept for the caller when want_result; PQclear()ed by pipe_clear */
    bool want_result;
};

static void pipe_clear(struct pipe_stmt *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PQclear(s[i].result);
        s[i].result = NULL;
    }
}

/* Leaves pipeline mode; a connection that cannot is reset (it would refuse every later
 * statement), and the transaction is lost either way. */
static bool pipe_exit(struct store *st)
{
    if (PQexitPipelineMode(st->conn) == 1)
        return true;
    log_error("store: cannot leave pipeline mode (%s); resetting the connection",
              PQerrorMessage(st->conn));
    PQreset(st->conn);
    st->n_prepared = 0;
    st->in_tx = false;
    return false;
}

/* Sends the n statements in one pipeline and reads every result. STORE_OK when each ran; the
 * first failure is logged under its statement's name (never its parameters), except when its
 * SQLSTATE is expected (not NULL): then STORE_CONFLICT, unlogged. Each statement is prepared on
 * the session the first time (as store_run does), before the pipeline starts. */
static enum store_rc pipe_run(struct store *st, struct pipe_stmt *s, size_t n, const char *expected)
{
    PGconn *c = st->conn;
    size_t sent = 0;
    bool failed = false, conflict = false;

    if (PQstatus(c) != CONNECTION_OK) {
        log_error("store: the database connection is down");
        st->in_tx = false;
        return STORE_ERROR;
    }
    char names[PIPE_MAX][24];
    bool prepared[PIPE_MAX];
    for (size_t i = 0; i < n && i < PIPE_MAX; i++)
        prepared[i] = store_prepared_name(st, s[i].sql, &s[i].p, names[i]);
    if (PQenterPipelineMode(c) != 1) {
        log_error("store: cannot enter pipeline mode: %s", PQerrorMessage(c));
        return STORE_ERROR;
    }
    for (; sent < n && sent < PIPE_MAX; sent++) {
        const struct store_params *p = &s[sent].p;
        int ok = prepared[sent] ? PQsendQueryPrepared(c, names[sent], p->n, p->values, p->lengths,
                                                      p->formats, 0)
                                : PQsendQueryParams(c, s[sent].sql, p->n, NULL, p->values,
                                                    p->lengths, p->formats, 0);
        if (ok != 1)
            break;
    }
    bool synced = PQpipelineSync(c) == 1;
    if (sent < n || !synced) {
        log_error("store: %s (pipelined) not sent: %s", s[sent < n ? sent : 0].name,
                  PQerrorMessage(c));
        failed = true;
    }
    /* Each statement's result then NULL; after an error the rest come as PGRES_PIPELINE_ABORTED;
     * then the sync point. */
    for (size_t i = 0; i < sent && synced; i++) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            ExecStatusType t = PQresultStatus(r);
            if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
                if (s[i].want_result && s[i].result == NULL) {
                    s[i].result = r;
                    continue;
                }
            } else if (!failed) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
                conflict = expected != NULL && state != NULL && strcmp(state, expected) == 0;
                if (!conflict)
                    log_error("store: %s (pipelined) failed: %s %s", s[i].name, state ? state : "",
                              msg ? msg : PQerrorMessage(c));
                failed = true;
            } else {
                failed = true;
            }
            PQclear(r);
        }
        if (PQstatus(c) != CONNECTION_OK) {
            failed = true;
            break;
        }
    }
    for (int guard = 0; synced && guard < 4; guard++) {
        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            if (PQstatus(c) != CONNECTION_OK)
                break;
            continue;
        }
        bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    if (!pipe_exit(st) || failed) {
        pipe_clear(s, n);
        if (PQstatus(c) != CONNECTION_OK) {
            st->in_tx = false;
            PQreset(c); /* the next statement finds it up, or reconnects itself */
            st->n_prepared = 0;
            return STORE_ERROR;
        }
        return conflict ? STORE_CONFLICT : STORE_ERROR;
    }
    return STORE_OK;
}

/* "{1,2,3}" of n int64 values; NULL when out of memory (logged). Caller free()s it. */
static char *int64_array_text(const int64_t *v, size_t n)
{
    char *s = malloc(n * 21 + 3), *w;
    if (s == NULL) {
        log_error("store: out of memory");
        return NULL;
    }
    w = s;
    *w++ = '{';
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, i == 0 ? "%" PRId64 : ",%" PRId64, v[i]);
    *w++ = '}';
    *w = '\0';
    return s;
}

/* clang-format off */
static const char SQL_GROUP_BEGIN[] = "BEGIN";
/* The group's statements take arrays of ids: under plan_cache_mode auto, PostgreSQL keeps
 * choosing a custom plan for them and plans each anew at every bind (0.1 ms for each of the key
 * lock and the check, more than their execution). Their generic plans are the same index scans
 * (checked with 10,000 apps), so the group's transaction uses them; other statements keep auto,
 * where a generic plan of an optional filter ($n IS NULL OR ...) would be a full scan. */
static const char SQL_GROUP_PLANS[] = "SET LOCAL plan_cache_mode = force_generic_plan";
/* The active versions the group signs with, locked as a lone sign locked them: a rotation or a
 * disable waits for the group's commit (the lock order of store.h: key rows, then the audit
 * lock). */
static const char SQL_GROUP_LOCK_KEYS[] =
    "SELECT version FROM app_keys WHERE sdkappid = ANY ($1::bigint[]) AND state = 'active' "
    "ORDER BY sdkappid FOR NO KEY UPDATE";
static const char SQL_GROUP_CHECK[] =
    "SELECT 0, sdkappid, generation FROM apps WHERE sdkappid = ANY ($1::bigint[]) "
    "UNION ALL SELECT 1, id, 0 FROM api_tokens WHERE id = ANY ($2::bigint[]) "
    "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";
/* clang-format on */

/* Appends to s (at *k) the group's opening, the same for both ways: the transaction, its plans
 * setting, the key rows of the apps (an array's text) and the audit lock, in the lock order of
 * store.h. */
static void group_opening(struct pipe_stmt *s, size_t *k, const char *apps)
{
    s[(*k)++] = (struct pipe_stmt){.name = "SQL_GROUP_BEGIN", .sql = SQL_GROUP_BEGIN};
    s[(*k)++] = (struct pipe_stmt){.name = "SQL_GROUP_PLANS", .sql = SQL_GROUP_PLANS};
    s[*k] = (struct pipe_stmt){.name = "SQL_GROUP_LOCK_KEYS", .sql = SQL_GROUP_LOCK_KEYS};
    store_param_text(&s[(*k)++].p, apps);
    s[(*k)++] = (struct pipe_stmt){.name = "SQL_AUDIT_LOCK", .sql = store_sql_audit_lock};
}

enum store_rc store_group_begin(struct store *st, struct store_group *g)
{
    bool ok;
    char *apps = store_int_array_text(g->apps, g->n_apps, &ok);
    char *tokens = int64_array_text(g->tokens, g->n_tokens);
    struct pipe_stmt s[6];
    enum store_rc rc = STORE_ERROR;

    memset(s, 0, sizeof s);
    for (size_t i = 0; i < g->n_apps; i++)
        g->generations[i] = 0;
    for (size_t i = 0; i < g->n_tokens; i++)
        g->token_live[i] = false;
    if (st->in_tx) {
        log_error("store: a signing group needs a connection outside any transaction");
        goto done;
    }
    if (!ok || apps == NULL || tokens == NULL)
        goto done;
    size_t k = 0;
    group_opening(s, &k, apps);
    s[4] =
        (struct pipe_stmt){.name = "SQL_GROUP_CHECK", .sql = SQL_GROUP_CHECK, .want_result = true};
    store_param_text(&s[4].p, apps);
    store_param_text(&s[4].p, tokens);
    s[5] = (struct pipe_stmt){
        .name = "SQL_AUDIT_LAST", .sql = store_sql_audit_last, .want_result = true};
    st->in_tx = true; /* from here a failure leaves it for the caller's store_rollback */
    rc = pipe_run(st, s, 6, NULL);
    if (rc != STORE_OK)
        goto done;
    for (int row = 0; row < PQntuples(s[4].result); row++) {
        int64_t kind = store_col_int(s[4].result, row, 0);
        int64_t id = store_col_int(s[4].result, row, 1);
        for (size_t i = 0; kind == 0 && i < g->n_apps; i++)
            if (g->apps[i] == (uint32_t)id)
                g->generations[i] = store_col_int(s[4].result, row, 2);
        for (size_t i = 0; kind == 1 && i < g->n_tokens; i++)
            if (g->tokens[i] == id)
                g->token_live[i] = true;
    }
    rc = store_audit_last_read(s[5].result, &g->last_seq, g->last_mac, &g->last_at_us, &g->now_us);
done:
    pipe_clear(s, 6);
    free(apps);
    free(tokens);
    return rc;
}

/* clang-format off */
static const char SQL_GROUP_INSERT[] =
    "INSERT INTO audit_log (seq, at, actor_id, actor_name, action, sdkappid, key_version, "
    "outcome, details, mac) SELECT r.seq, " TS("r.at_us") ", r.actor_id, r.actor_name, r.action, "
    "r.sdkappid, r.key_version, r.outcome, r.details, r.mac "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], "
    "$6::bigint[], $7::integer[], $8::text[], $9::text[], $10::bytea[]) "
    "AS r(seq, at_us, actor_id, actor_name, action, sdkappid, key_version, outcome, details, mac) "
    "ORDER BY r.seq";
static const char SQL_GROUP_USES[] =
    "UPDATE app_keys AS k SET sign_count = k.sign_count + u.n, last_used_at = now() "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(sdkappid, version, n) "
    "WHERE k.sdkappid = u.sdkappid AND k.version = u.version";
static const char SQL_GROUP_COMMIT[] = "COMMIT";
/* clang-format on */

/* The insert's ten columns, each one array parameter in PostgreSQL's binary array format (as
 * array_send writes it): one dimension, a NULL flag, the element type's OID, the length and
 * lower bound 1, then each element as a big-endian 4-byte length (-1: NULL) and its bytes. No
 * text is escaped or parsed on either side (a JSON array of rows, before, was most of the
 * statement's time); PostgreSQL still checks each text is valid UTF-8. */
enum {
    COL_SEQ,
    COL_AT,
    COL_ACTOR_ID,
    COL_ACTOR,
    COL_ACTION,
    COL_APP,
    COL_VERSION,
    COL_OUTCOME,
    COL_DETAILS,
    COL_MAC,
    N_COLS
};
#define GROUP_EVENTS_MAX 100000 /* each at most ~9 KiB: a column under 1 GiB */
static const uint32_t col_oid[N_COLS] = {20, 20, 20, 25, 25, 20, 23, 25, 25, 17}; /* pg_type.h */

struct bin_array {
    uint8_t *p; /* where the next byte goes */
};

static void put_be32(struct bin_array *a, uint32_t v)
{
    a->p[0] = (uint8_t)(v >> 24);
    a->p[1] = (uint8_t)(v >> 16);
    a->p[2] = (uint8_t)(v >> 8);
    a->p[3] = (uint8_t)v;
    a->p += 4;
}

static void put_int(struct bin_array *a, uint32_t oid, int64_t v)
{
    if (oid == 23) {
        put_be32(a, 4);
        put_be32(a, (uint32_t)v);
        return;
    }
    put_be32(a, 8);
    put_be32(a, (uint32_t)((uint64_t)v >> 32));
    put_be32(a, (uint32_t)v);
}

static void put_bytes(struct bin_array *a, const void *b, size_t n)
{
    put_be32(a, (uint32_t)n);
    memcpy(a->p, b, n);
    a->p += n;
}

/* Column c of ev when it is a number: false for SQL NULL (the ids that are 0). */
static bool event_int(const struct audit_event *ev, int c, int64_t *v)
{
    switch (c) {
    case COL_SEQ:
        *v = ev->seq;
        return true;
    case COL_AT:
        *v = ev->at_us;
        return true;
    case COL_ACTOR_ID:
        *v = ev->actor_id;
        break;
    case COL_APP:
        *v = ev->sdkappid;
        break;
    default:
        *v = ev->key_version;
        break;
    }
    return *v != 0;
}

/* Column c of ev when it is a text or the MAC, and its length. */
static const void *event_bytes(const struct audit_event *ev, int c, size_t *len)
{
    const char *t = c == COL_ACTOR     ? ev->actor_name
                    : c == COL_ACTION  ? ev->action
                    : c == COL_OUTCOME ? ev->outcome
                    : c == COL_DETAILS ? (ev->details != NULL ? ev->details : "{}")
                                       : NULL;
    if (t == NULL) {
        *len = AUDIT_MAC_LEN;
        return ev->mac;
    }
    *len = strlen(t);
    return t;
}

static bool col_is_int(int c)
{
    return col_oid[c] == 20 || col_oid[c] == 23;
}

/* One block holding the ten arrays; their starts and lengths in cols/lens. NULL when out of
 * memory or when a text is longer than the audit log takes (logged). n is at most
 * GROUP_EVENTS_MAX, so that every length fits an int. Caller free()s it. */
static uint8_t *events_arrays(struct audit_event *const *evs, size_t n, const char *cols[N_COLS],
                              int lens[N_COLS])
{
    size_t texts = 0, len;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < N_COLS; c++) {
            if (col_is_int(c) || c == COL_MAC)
                continue;
            (void)event_bytes(evs[i], c, &len);
            if (len > (c == COL_DETAILS ? AUDIT_DETAILS_MAX : AUDIT_TEXT_MAX)) {
                log_error("store: an audit event's text is longer than the audit log takes");
                return NULL;
            }
            texts += len;
        }
    /* Headers of 20 bytes; per event 4 bytes of length a column, 8 for each of the 5 numbers,
     * the MAC's bytes and the texts. */
    size_t total = N_COLS * 20 + n * (N_COLS * 4 + 5 * 8 + AUDIT_MAC_LEN) + texts;
    uint8_t *block = malloc(total);
    if (block == NULL) {
        log_error("store: out of memory");
        return NULL;
    }
    struct bin_array a = {block};
    for (int c = 0; c < N_COLS; c++) {
        int64_t v;
        bool nulls = false;
        for (size_t i = 0; col_is_int(c) && i < n; i++)
            nulls |= !event_int(evs[i], c, &v);
        uint8_t *start = a.p;
        put_be32(&a, 1);
        put_be32(&a, nulls ? 1 : 0);
        put_be32(&a, col_oid[c]);
        put_be32(&a, (uint32_t)n);
        put_be32(&a, 1);
        for (size_t i = 0; i < n; i++) {
            if (!col_is_int(c)) {
                const void *b = event_bytes(evs[i], c, &len);
                put_bytes(&a, b, len);
            } else if (event_int(evs[i], c, &v)) {
                put_int(&a, col_oid[c], v);
            } else {
                put_be32(&a, 0xffffffffu); /* NULL */
            }
        }
        cols[c] = (const char *)start;
        lens[c] = (int)(a.p - start);
    }
    return block;
}

/* What the group's writing statements point into, freed by group_writes_free. */
struct group_writes {
    uint8_t *events;
    int64_t *cols;
    char *apps, *versions, *counts;
};

static void group_writes_free(struct group_writes *w)
{
    free(w->events);
    free(w->cols);
    free(w->apps);
    free(w->versions);
    free(w->counts);
}

/* Appends to s (at *k) the insert of the n events (none when n is 0) and the update of the sign
 * counts (none without uses). False when out of memory or an event is out of bounds (logged). */
static bool group_writes(struct pipe_stmt *s, size_t *k, struct group_writes *w,
                         struct audit_event *const *evs, size_t n, const struct store_key_use *uses,
                         size_t n_uses)
{
    if (n > 0) {
        const char *arrays[N_COLS];
        int lens[N_COLS];
        if (n > GROUP_EVENTS_MAX || (w->events = events_arrays(evs, n, arrays, lens)) == NULL)
            return false;
        s[*k] = (struct pipe_stmt){.name = "SQL_GROUP_INSERT", .sql = SQL_GROUP_INSERT};
        for (int c = 0; c < N_COLS; c++)
            store_param_bytes(&s[*k].p, (const uint8_t *)arrays[c], (size_t)lens[c]);
        (*k)++;
    }
    if (n_uses > 0) {
        w->cols = malloc(3 * n_uses * sizeof *w->cols);
        if (w->cols == NULL) {
            log_error("store: out of memory");
            return false;
        }
        for (size_t i = 0; i < n_uses; i++) {
            w->cols[i] = uses[i].sdkappid;
            w->cols[n_uses + i] = uses[i].version;
            w->cols[2 * n_uses + i] = (int64_t)uses[i].count;
        }
        w->apps = int64_array_text(w->cols, n_uses);
        w->versions = int64_array_text(w->cols + n_uses, n_uses);
        w->counts = int64_array_text(w->cols + 2 * n_uses, n_uses);
        if (w->apps == NULL || w->versions == NULL || w->counts == NULL)
            return false;
        s[*k] = (struct pipe_stmt){.name = "SQL_GROUP_USES", .sql = SQL_GROUP_USES};
        store_param_text(&s[*k].p, w->apps);
        store_param_text(&s[*k].p, w->versions);
        store_param_text(&s[(*k)++].p, w->counts);
    }
    return true;
}

enum store_rc store_group_commit(struct store *st, struct audit_event *const *evs, size_t n,
                                 const struct store_key_use *uses, size_t n_uses)
{
    struct pipe_stmt s[3];
    struct group_writes w = {0};
    size_t k = 0;
    enum store_rc rc = STORE_ERROR;

    memset(s, 0, sizeof s);
    if (!st->in_tx) {
        log_error("store: a signing group commits inside its transaction");
        return STORE_ERROR;
    }
    if (!group_writes(s, &k, &w, evs, n, uses, n_uses))
        goto done;
    s[k++] = (struct pipe_stmt){.name = "SQL_GROUP_COMMIT", .sql = SQL_GROUP_COMMIT};
    rc = pipe_run(st, s, k, NULL);
    if (rc == STORE_OK)
        st->in_tx = false;
done:
    pipe_clear(s, k);
    group_writes_free(&w);
    return rc;
}

/* clang-format off */
static const char SQL_GROUP_EXPECT[] =
    "SELECT usersigd_group_check($1::bigint, $2::bytea, $3::bigint[], $4::bigint[], "
    "$5::bigint[], $6::bigint)";
/* clang-format on */
#define GROUP_CHECK_STATE "UG001" /* migrations/0014_group_check.sql */

enum store_rc store_group_fast(struct store *st, const struct store_group *g,
                               struct audit_event *const *evs, size_t n,
                               const struct store_key_use *uses, size_t n_uses)
{
    bool ok;
    char *apps = store_int_array_text(g->apps, g->n_apps, &ok);
    char *gens = int64_array_text(g->generations, g->n_apps);
    char *tokens = int64_array_text(g->tokens, g->n_tokens);
    struct pipe_stmt s[PIPE_MAX];
    struct group_writes w = {0};
    size_t k = 0;
    enum store_rc rc = STORE_ERROR;

    memset(s, 0, sizeof s);
    if (st->in_tx) {
        log_error("store: a signing group needs a connection outside any transaction");
        goto done;
    }
    if (!ok || apps == NULL || gens == NULL || tokens == NULL || n == 0)
        goto done;
    group_opening(s, &k, apps);
    s[k] = (struct pipe_stmt){.name = "SQL_GROUP_EXPECT", .sql = SQL_GROUP_EXPECT};
    store_param_int(&s[k].p, g->last_seq);
    store_param_bytes(&s[k].p, g->last_mac, sizeof g->last_mac);
    store_param_text(&s[k].p, apps);
    store_param_text(&s[k].p, gens);
    store_param_text(&s[k].p, tokens);
    store_param_int(&s[k++].p, evs[0]->at_us);
    if (!group_writes(s, &k, &w, evs, n, uses, n_uses))
        goto done;
    s[k++] = (struct pipe_stmt){.name = "SQL_GROUP_COMMIT", .sql = SQL_GROUP_COMMIT};
    st->in_tx = true; /* from here a failure leaves it for the caller's store_rollback */
    rc = pipe_run(st, s, k, GROUP_CHECK_STATE);
    if (rc == STORE_OK)
        st->in_tx = false;
done:
    pipe_clear(s, k);
    group_writes_free(&w);
    free(apps);
    free(gens);
    free(tokens);
    return rc;
}

static const char SQL_APP_GENERATIONS[] =
    "SELECT sdkappid, generation FROM apps WHERE sdkappid = ANY ($1::bigint[])";

enum store_rc store_app_generations(struct store *st, const uint32_t *apps, size_t n,
                                    int64_t *generations)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    bool ok;
    char *text = store_int_array_text(apps, n, &ok);
    enum store_rc rc = STORE_ERROR;

    for (size_t i = 0; i < n; i++)
        generations[i] = 0;
    if (!ok || text == NULL)
        goto done;
    store_param_text(&p, text);
    rc = RUN(st, SQL_APP_GENERATIONS, &p, &r);
    for (int row = 0; rc == STORE_OK && row < PQntuples(r); row++) {
        uint32_t id = (uint32_t)store_col_int(r, row, 0);
        for (size_t i = 0; i < n; i++)
            if (apps[i] == id)
                generations[i] = store_col_int(r, row, 1);
    }
done:
    PQclear(r);
    free(text);
    return rc;
}
