/*
 * Internals of the store, shared by its files (store.c: parameters, execution, result columns,
 * connection, transactions, apps and schema migrations; store_key.c, store_token.c,
 * store_audit.c, ...) and included by nothing else: the store stays the only code with
 * <libpq-fe.h> and SQL. A new store_*.c includes this header, keeps each statement as a named
 * constant beside its function, runs it with RUN() and reads the result with store_col_*().
 *
 * The pattern of a store function:
 *
 *     static const char SQL_THING_GET[] = "SELECT a, b FROM things WHERE id = $1";
 *
 *     enum store_rc store_thing_get(struct store *st, int64_t id, struct store_thing *out)
 *     {
 *         struct store_params p = {0};
 *         PGresult *r = NULL;
 *         enum store_rc rc;
 *         store_param_int(&p, id);
 *         rc = RUN(st, SQL_THING_GET, &p, &r);
 *         if (rc == STORE_OK && PQntuples(r) == 0)
 *             rc = STORE_NOT_FOUND;
 *         if (rc == STORE_OK)
 *             out->a = store_col_int(r, 0, 0);
 *         PQclear(r);
 *         return rc;
 *     }
 *
 * No PGresult leaves a store function: whoever gets one from RUN() PQclear()s it before
 * returning (PQclear accepts NULL, so one PQclear at the end covers every path).
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Statements prepared on one connection, at most (the rest run unprepared). */
#define STORE_MAX_PREPARED 128

/* One connection and what the store knows about its session. */
struct store {
    PGconn *conn;
    /* The statements prepared on this session, by their text's address (each statement is one
     * constant): prepared[i] is "usersigd_<i>". Emptied when the connection is reset. */
    const char *prepared[STORE_MAX_PREPARED];
    int n_prepared;
    bool in_tx;           /* between a successful store_begin and store_commit/_rollback */
    int session_locks;    /* advisory locks held by the session: no silent reconnect then */
    const char *conflict; /* the field of the last STORE_CONFLICT (a static string) */
};

/* ---- SQL building blocks ---- */

/* clang-format off */
/* Microseconds <-> timestamptz, exactly (each product stays far below 2^53). US("col") reads a
 * timestamptz column as bigint microseconds (NULL stays NULL: store_col_int gives 0); TS("$n")
 * turns a bigint microseconds parameter into a timestamptz (NULL stays NULL). */
#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define TS(param) \
    "('epoch'::timestamptz + (" param "::bigint / 1000000) * interval '1 second'" \
    " + (" param "::bigint % 1000000) * interval '1 microsecond')"
/* clang-format on */

/* The advisory lock space of usersigd: 'USGD', then one number per lock. Taken so far: 1 the
 * audit append lock (transaction level, store_audit.c), 2 the migration lock (session level,
 * store.c), 3 the audit checkpoint writers' lock (transaction level, tried: store_ckpt.c). A new
 * lock takes the next number. Apart from these two-key locks, the batch owner
 * leases use the single-bigint key 'USGD' * 2^32 + owner (session level, store_batch.c). */
#define LOCK_CLASS "1431521092"

/* ---- parameters ---- */

/* The most $n parameters of one statement; raise it when a statement needs more (nothing checks
 * it at run time). */
#define STORE_MAX_PARAMS 12

/* A statement's parameters, $1 first, in the order the store_param_* calls add them. Start from
 * {0}; the values are borrowed (text and bytes must outlive the RUN), except the numbers, which
 * are formatted into the struct. */
struct store_params {
    int n;
    const char *values[STORE_MAX_PARAMS];
    int lengths[STORE_MAX_PARAMS];
    int formats[STORE_MAX_PARAMS];
    char num[STORE_MAX_PARAMS][24];
};

/* A number, in text format ($n::bigint, integer, ... all take it). */
void store_param_int(struct store_params *p, int64_t v);
/* As store_param_int, but 0 is SQL NULL: the nullable ids and times. */
void store_param_int_or_null(struct store_params *p, int64_t v);
/* A text value; NULL is SQL NULL. */
void store_param_text(struct store_params *p, const char *s);
/* A bytea value, sent in binary format (no escaping); len 0 is the empty bytea. */
void store_param_bytes(struct store_params *p, const uint8_t *b, size_t len);

/* "{1,2,3}": the text of a bigint[] parameter ($n::bigint[]) holding the n values of v. NULL
 * when v is NULL (pass it as SQL NULL: "$1::bigint[] IS NULL OR ...") and on allocation failure
 * (logged); *ok says which. Caller free()s it, after the RUN. */
char *store_int_array_text(const uint32_t *v, size_t n, bool *ok);

/* A text[] column read as array_to_string(col, chr(10)) and written as string_to_array($n,
 * chr(10)): the lists whose elements hold no newline (migrations/0006_admin_ids.sql). join: the
 * n strings at base, stride bytes apart, each NUL-terminated, joined by newlines into a new
 * string (caller free()s it); NULL with *ok true when n is 0 and null_if_empty (SQL NULL), and
 * NULL with *ok false when out of memory or an element holds a newline (logged). split: s into
 * at most max_n elements of stride bytes (NUL included); "" is none. false when one does not
 * fit or there are more. */
char *store_text_list_join(const char *base, size_t stride, size_t n, bool null_if_empty, bool *ok);
bool store_text_list_split(const char *s, char *base, size_t stride, size_t max_n, size_t *n);

/* ---- execution ---- */

/*
 * Runs one statement (text results): prepared on the connection the first time it runs there
 * (PQprepare, then PQexecPrepared: parsed and planned once per connection), or PQexecParams
 * when it cannot be (not a SELECT/INSERT/UPDATE/DELETE/WITH, or the table is full). A
 * statement is known by the address of its text, so sql must be a static constant (as every
 * statement here is): never a buffer. name is the
 * statement's constant name, the one thing a failure logs about it (never the parameters). p may be
 * NULL (no parameters).
 *
 * On STORE_OK (PGRES_COMMAND_OK or PGRES_TUPLES_OK) *out, when out is not NULL, is the result:
 * the caller PQclear()s it. With out NULL the result is dropped. On any other return *out is
 * NULL and nothing is left to clear. The outcomes:
 *   - SQLSTATE 23505 (unique violation): STORE_CONFLICT, and st->conflict (store_conflict())
 *     names the field from the violated constraint's name. The map is conflict_field() in
 *     store.c: a new unique constraint gets its entry there (and a word in store.h's
 *     store_conflict comment); an unmapped one reads "other". Logged at debug level only.
 *   - SQLSTATE 23503 (foreign key violation): STORE_NOT_FOUND (the row referred to, as an
 *     unknown app on an insert). Logged at debug level only.
 *   - anything else: STORE_ERROR, logged as "store: <name> failed: <SQLSTATE> <primary
 *     message>" (never DETAIL, which quotes the row).
 * A conflict the SQL detects itself (ON CONFLICT DO NOTHING touching no row, an UPDATE whose
 * WHERE refused the row's state) is the caller's to report: set st->conflict to the field's
 * name (a string literal) and return STORE_CONFLICT.
 *
 * Reconnecting: a connection found dead (before the statement, or by its failure) is reset with
 * PQreset and the statement run once more, only when no transaction is open and no session
 * advisory lock is held (st->session_locks == 0): those went with the old connection, so the
 * failure is STORE_ERROR instead and the caller's transaction is lost (store_commit and
 * store_rollback then clear st->in_tx). So a statement that writes runs inside a transaction,
 * where it is never silently repeated; a statement that runs outside one must be safe to run
 * twice. Inside a transaction any failure leaves PostgreSQL's transaction aborted: the caller
 * returns its error and lets its caller store_rollback().
 */
enum store_rc store_run(struct store *st, const char *name, const char *sql,
                        const struct store_params *p, PGresult **out) STORE_WUR;

/* store_run naming the statement after its constant: RUN(st, SQL_KEY_GET, &p, &r). */
#define RUN(st, sql, p, out) store_run((st), #sql, (sql), (p), (out))

/* Rows touched by an INSERT/UPDATE/DELETE: strcmp(PQcmdTuples(r), "0") == 0 means none (the
 * NOT_FOUND test of the update functions). Rows returned: PQntuples(r). */

/* ---- result columns (row and col are 0-based; the caller checked row < PQntuples) ---- */

/* An integer column (bigint, integer, US(...)); SQL NULL reads as 0. */
int64_t store_col_int(const PGresult *r, int row, int col);
/* A text column into buf (cap bytes, NUL included); SQL NULL reads as "". false when it does not
 * fit (buf is then unchanged). */
bool store_col_text(const PGresult *r, int row, int col, char *buf, size_t cap);
/* A bytea column into a new buffer (caller free()s it); *out NULL and *len 0 for SQL NULL. false
 * on allocation failure (not logged). */
bool store_col_bytes_alloc(const PGresult *r, int row, int col, uint8_t **out, size_t *len);
/* A bytea column into buf: exactly cap bytes (want_exact) or at most cap bytes; *len (may be
 * NULL) gets its length. false for SQL NULL, a wrong length or an allocation failure. */
bool store_col_bytes(const PGresult *r, int row, int col, uint8_t *buf, size_t cap, size_t *len,
                     bool want_exact);

/* The index of name in names[0..count-1] (the enum <-> text tables), or -1 (also for NULL). */
int store_name_index(const char *const *names, int count, const char *name);

/* ---- shared by the store's files ---- */

/* The name sql is prepared under on st's session (prepared first when it is not yet), or false
 * when it runs unprepared (not a SELECT/INSERT/UPDATE/DELETE/WITH, the table full, or the
 * prepare failed). Outside pipeline mode. sql is a static constant (store_run's rule). */
bool store_prepared_name(struct store *st, const char *sql, const struct store_params *p,
                         char name[24]);

/* The audit lock and the last-event read (store_audit.c), for store_group.c's pipeline. */
extern const char *const store_sql_audit_lock;
extern const char *const store_sql_audit_last;
/* Reads a result of store_sql_audit_last. */
enum store_rc store_audit_last_read(const PGresult *r, int64_t *seq, uint8_t mac[32],
                                    int64_t *at_us, int64_t *now_us) STORE_WUR;

#endif
