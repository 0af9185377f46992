/*
 * The store's audit log (audit_log): the append lock, the last event, inserts and filtered
 * pages. The hash chain (each event's mac) is computed and verified by audit.c; here events
 * are stored and read as they are.
 */
#include "store_int.h"

#include "audit.h"
#include "log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- audit log ---- */

static const char SQL_AUDIT_LOCK[] = "SELECT pg_advisory_xact_lock(" LOCK_CLASS ", 1)";
const char *const store_sql_audit_lock = SQL_AUDIT_LOCK;

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
const char *const store_sql_audit_last = SQL_AUDIT_LAST;

enum store_rc store_audit_last_read(const PGresult *r, int64_t *seq, uint8_t mac[32],
                                    int64_t *at_us, int64_t *now_us)
{
    if (PQntuples(r) != 1) {
        log_error("store: the last audit event was not read");
        return STORE_ERROR;
    }
    *seq = store_col_int(r, 0, 0);
    *at_us = store_col_int(r, 0, 2);
    *now_us = store_col_int(r, 0, 3);
    if (*seq == 0) {
        memset(mac, 0, 32);
    } else if (!store_col_bytes(r, 0, 1, mac, 32, NULL, true)) {
        log_error("store: audit event %" PRId64 " has no 32-byte mac", *seq);
        return STORE_ERROR;
    }
    return STORE_OK;
}

enum store_rc store_audit_last(struct store *st, int64_t *seq, uint8_t mac[32], int64_t *at_us,
                               int64_t *now_us)
{
    PGresult *r = NULL;
    enum store_rc rc = RUN(st, SQL_AUDIT_LAST, NULL, &r);
    if (rc == STORE_OK)
        rc = store_audit_last_read(r, seq, mac, at_us, now_us);
    PQclear(r);
    return rc;
}

/* clang-format off */
static const char SQL_AUDIT_INSERT[] =
    "INSERT INTO audit_log (seq, at, actor_id, actor_name, action, sdkappid, key_version, "
    "outcome, details, mac) VALUES ($1, " TS("$2") ", $3, $4, $5, $6, $7, $8, $9, $10)";
/* clang-format on */

static void audit_params(struct store_params *p, const struct audit_event *ev)
{
    store_param_int(p, ev->seq);
    store_param_int(p, ev->at_us);
    store_param_int_or_null(p, ev->actor_id);
    store_param_text(p, ev->actor_name);
    store_param_text(p, ev->action);
    store_param_int_or_null(p, ev->sdkappid);
    store_param_int_or_null(p, ev->key_version);
    store_param_text(p, ev->outcome);
    store_param_text(p, ev->details);
    store_param_bytes(p, ev->mac, sizeof ev->mac);
}

enum store_rc store_audit_insert(struct store *st, const struct audit_event *ev)
{
    struct store_params p = {0};
    audit_params(&p, ev);
    return RUN(st, SQL_AUDIT_INSERT, &p, NULL);
}

/* Reads what one pipelined statement gave back: true when it ran. */
static bool pipeline_result_ok(PGconn *c, bool *logged)
{
    bool ok = false;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COMMAND_OK) {
            ok = true;
        } else if (s != PGRES_PIPELINE_ABORTED && !*logged) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            log_error("store: SQL_AUDIT_INSERT (pipelined) failed: %s %s", state ? state : "",
                      msg ? msg : PQerrorMessage(c));
            *logged = true;
        }
        PQclear(r);
    }
    return ok;
}

enum store_rc store_audit_insert_many(struct store *st, struct audit_event *const *evs, size_t n)
{
    PGconn *c = st->conn;
    size_t sent = 0, ran = 0;
    bool logged = false;
    PGresult *r;

    if (n == 1)
        return store_audit_insert(st, evs[0]);
    if (n == 0)
        return STORE_OK;
    if (!st->in_tx) {
        log_error("store: SQL_AUDIT_INSERT (pipelined) needs an open transaction");
        return STORE_ERROR;
    }
    if (PQenterPipelineMode(c) != 1) {
        log_error("store: cannot enter pipeline mode: %s", PQerrorMessage(c));
        return STORE_ERROR;
    }
    for (; sent < n; sent++) {
        struct store_params p = {0};
        audit_params(&p, evs[sent]);
        if (PQsendQueryParams(c, SQL_AUDIT_INSERT, p.n, NULL, p.values, p.lengths, p.formats, 0) !=
            1)
            break;
    }
    bool synced = PQpipelineSync(c) == 1;
    if (!synced)
        log_error("store: SQL_AUDIT_INSERT (pipelined): %s", PQerrorMessage(c));
    else
        for (size_t i = 0; i < sent; i++)
            ran += pipeline_result_ok(c, &logged);
    /* Then the sync point (PGRES_PIPELINE_SYNC), which ends the pipeline; without one, what
     * is left unread until libpq has nothing more. */
    for (int nulls = 0; nulls < 2;) {
        r = PQgetResult(c);
        if (r == NULL) {
            if (synced || PQstatus(c) != CONNECTION_OK)
                break;
            nulls++;
            continue;
        }
        bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    if (PQexitPipelineMode(c) != 1) {
        /* A connection left in pipeline mode would refuse every later statement: start it
         * anew. The caller's transaction is lost either way (this returns an error). */
        log_error("store: cannot leave pipeline mode (%s); resetting the connection",
                  PQerrorMessage(c));
        PQreset(c);
        st->n_prepared = 0;
        return STORE_ERROR;
    }
    if (!synced)
        return STORE_ERROR;
    if (ran != n) {
        if (!logged)
            log_error("store: SQL_AUDIT_INSERT (pipelined): %zu of %zu ran: %s", ran, n,
                      PQerrorMessage(c));
        return STORE_ERROR;
    }
    return STORE_OK;
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
    struct store_params p = {0};
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
    store_param_int(&p, f->after_seq);
    store_param_int_or_null(&p, f->sdkappid);
    store_param_text(&p, f->action);
    store_param_text(&p, f->actor);
    store_param_int_or_null(&p, f->since_us);
    store_param_int_or_null(&p, f->until_us);
    store_param_int(&p, (int64_t)f->limit);
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
        ev->seq = store_col_int(r, i, 0);
        ev->at_us = store_col_int(r, i, 1);
        ev->actor_id = store_col_int(r, i, 2);
        ev->sdkappid = (uint32_t)store_col_int(r, i, 5);
        ev->key_version = (uint32_t)store_col_int(r, i, 6);
        for (int c = 0; c < 4; c++) {
            size_t len = (size_t)PQgetlength(r, i, text_cols[c]);
            memcpy(w, PQgetvalue(r, i, text_cols[c]), len + 1);
            *fields[c] = w;
            w += len + 1;
        }
        /* A mac of the wrong length stays zero: verification reports the event. */
        if (!store_col_bytes(r, i, 9, ev->mac, sizeof ev->mac, NULL, true))
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
