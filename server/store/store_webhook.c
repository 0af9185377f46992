/*
 * The store's webhooks (migrations/0010_limits_webhooks.sql): endpoints with their sealed
 * signing secrets, the outbox (one event row and a delivery row per endpoint that wants it,
 * written in the caller's transaction), the deliveries' queue as the deliverer reads it (each
 * endpoint's lowest pending delivery, once due), their attempts, and the one lease that lets a
 * single process deliver at a time.
 */
#include "store_int.h"
#include "store_webhook.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const delivery_states[] = {"pending", "delivered", "failed"};

const char *store_delivery_state_name(enum store_delivery_state s)
{
    return (unsigned)s < 3 ? delivery_states[s] : "?";
}

/* clang-format off */
#define WEBHOOK_COLUMNS \
    "w.id, w.url, array_to_string(w.events, chr(10)), w.sdkappid, w.sealed, " \
    US("w.created_at") ", w.created_by, " \
    "(SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending'), " \
    "(SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'failed')"
/* clang-format on */

static bool parse_webhook(const PGresult *r, int row, struct store_webhook *w)
{
    memset(w, 0, sizeof *w);
    w->id = store_col_int(r, row, 0);
    w->sdkappid = (uint32_t)store_col_int(r, row, 3);
    w->created_at_us = store_col_int(r, row, 5);
    w->n_pending = store_col_int(r, row, 7);
    w->n_failed = store_col_int(r, row, 8);
    if (!store_col_text(r, row, 1, w->url, sizeof w->url) ||
        !store_text_list_split(PQgetvalue(r, row, 2), w->events[0], sizeof w->events[0],
                               STORE_WEBHOOK_MAX_EVENTS, &w->n_events) ||
        !store_col_bytes(r, row, 4, w->sealed, sizeof w->sealed, NULL, true) ||
        !store_col_text(r, row, 6, w->created_by, sizeof w->created_by)) {
        log_error("store: webhooks row %" PRId64 " does not fit its struct", w->id);
        return false;
    }
    return true;
}

static const char SQL_WEBHOOK_NEXT_ID[] = "SELECT nextval('webhooks_id_seq')";

enum store_rc store_webhook_next_id(struct store *st, int64_t *id)
{
    PGresult *r = NULL;
    enum store_rc rc = RUN(st, SQL_WEBHOOK_NEXT_ID, NULL, &r);
    if (rc == STORE_OK && PQntuples(r) == 1)
        *id = store_col_int(r, 0, 0);
    else if (rc == STORE_OK)
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_WEBHOOK_INSERT[] =
    "INSERT INTO webhooks (id, url, events, sdkappid, sealed, created_by) "
    "VALUES ($1, $2, string_to_array($3, chr(10)), $4, $5, $6) RETURNING " US("created_at");

enum store_rc store_webhook_insert(struct store *st, struct store_webhook *w)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    bool ok;
    char *events =
        store_text_list_join(w->events[0], sizeof w->events[0],
                             w->n_events <= STORE_WEBHOOK_MAX_EVENTS ? w->n_events : 0, false, &ok);
    if (!ok)
        return STORE_ERROR;
    store_param_int(&p, w->id);
    store_param_text(&p, w->url);
    store_param_text(&p, events);
    store_param_int_or_null(&p, w->sdkappid);
    store_param_bytes(&p, w->sealed, sizeof w->sealed);
    store_param_text(&p, w->created_by);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_INSERT, &p, &r);
    if (rc == STORE_OK)
        w->created_at_us = store_col_int(r, 0, 0);
    PQclear(r);
    free(events);
    return rc;
}

static const char SQL_WEBHOOK_GET[] = "SELECT " WEBHOOK_COLUMNS " FROM webhooks w WHERE w.id = $1";

enum store_rc store_webhook_get(struct store *st, int64_t id, struct store_webhook *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    store_param_int(&p, id);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_webhook(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_WEBHOOK_LIST[] =
    "SELECT " WEBHOOK_COLUMNS " FROM webhooks w ORDER BY w.id LIMIT 1000";

enum store_rc store_webhook_list(struct store *st, struct store_webhook **out, size_t *n)
{
    PGresult *r = NULL;
    struct store_webhook *v = NULL;
    *out = NULL;
    *n = 0;
    enum store_rc rc = RUN(st, SQL_WEBHOOK_LIST, NULL, &r);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if (rc == STORE_OK && rows > 0 && (v = calloc((size_t)rows, sizeof *v)) == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
    }
    for (int i = 0; rc == STORE_OK && i < rows; i++)
        if (!parse_webhook(r, i, &v[i]))
            rc = STORE_ERROR;
    PQclear(r);
    if (rc != STORE_OK) {
        free(v);
        return rc;
    }
    *out = v;
    *n = (size_t)rows;
    return STORE_OK;
}

enum store_rc store_webhook_sealed_all(struct store *st, struct store_webhook **out, size_t *n)
{
    return store_webhook_list(st, out, n);
}

static const char SQL_WEBHOOK_SET_SEALED[] = "UPDATE webhooks SET sealed = $2 WHERE id = $1";

enum store_rc store_webhook_set_sealed(struct store *st, int64_t id, const uint8_t *sealed,
                                       size_t len)
{
    struct store_params p = {0};
    store_param_int(&p, id);
    store_param_bytes(&p, sealed, len);
    return RUN(st, SQL_WEBHOOK_SET_SEALED, &p, NULL);
}

static const char SQL_WEBHOOK_DELETE[] = "DELETE FROM webhooks WHERE id = $1 RETURNING id";

enum store_rc store_webhook_delete(struct store *st, int64_t id)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    store_param_int(&p, id);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_DELETE, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* One round trip: the endpoints that take the event, the event only if any does, a delivery
 * to each. */
static const char SQL_WEBHOOK_OUTBOX[] =
    "WITH w AS (SELECT id FROM webhooks WHERE $1 = ANY (events) "
    "AND (sdkappid IS NULL OR sdkappid = $2::bigint)), "
    "e AS (INSERT INTO webhook_events (type, sdkappid, body) "
    "SELECT $1, $2::bigint, $3 WHERE EXISTS (SELECT 1 FROM w) RETURNING id), "
    "d AS (INSERT INTO webhook_deliveries (webhook_id, event_id) "
    "SELECT w.id, e.id FROM w, e ORDER BY w.id RETURNING 1) "
    "SELECT count(*) FROM d";

enum store_rc store_webhook_outbox(struct store *st, const char *type, uint32_t sdkappid,
                                   const char *body, int64_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    store_param_text(&p, type);
    store_param_int_or_null(&p, sdkappid);
    store_param_text(&p, body);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_OUTBOX, &p, &r);
    if (rc == STORE_OK && n != NULL)
        *n = PQntuples(r) == 1 ? store_col_int(r, 0, 0) : 0;
    PQclear(r);
    return rc;
}

/* clang-format off */
#define DELIVERY_COLUMNS \
    "d.id, d.webhook_id, d.event_id, e.type, d.state, d.attempts, " US("d.next_at") ", " \
    US("d.created_at") ", " US("d.delivered_at") ", " \
    "(SELECT a.status FROM webhook_attempts a WHERE a.delivery_id = d.id ORDER BY a.n DESC LIMIT 1), " \
    "(SELECT a.error FROM webhook_attempts a WHERE a.delivery_id = d.id ORDER BY a.n DESC LIMIT 1)"
/* clang-format on */

static bool parse_delivery(const PGresult *r, int row, struct store_webhook_delivery *d)
{
    memset(d, 0, sizeof *d);
    d->id = store_col_int(r, row, 0);
    d->webhook_id = store_col_int(r, row, 1);
    d->event_id = store_col_int(r, row, 2);
    int state = store_name_index(delivery_states, 3, PQgetvalue(r, row, 4));
    d->state = state >= 0 ? (enum store_delivery_state)state : STORE_DELIVERY_PENDING;
    d->attempts = (int)store_col_int(r, row, 5);
    d->next_at_us = store_col_int(r, row, 6);
    d->created_at_us = store_col_int(r, row, 7);
    d->delivered_at_us = store_col_int(r, row, 8);
    d->last_status = (int)store_col_int(r, row, 9);
    if (state < 0 || !store_col_text(r, row, 3, d->type, sizeof d->type) ||
        !store_col_text(r, row, 10, d->last_error, sizeof d->last_error)) {
        log_error("store: webhook_deliveries row %" PRId64 " does not fit its struct", d->id);
        return false;
    }
    return true;
}

static const char SQL_WEBHOOK_DELIVERIES[] =
    "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries d JOIN webhook_events e ON e.id = "
    "d.event_id WHERE d.webhook_id = $1 AND d.id > $2 ORDER BY d.id LIMIT $3";

enum store_rc store_webhook_deliveries(struct store *st, int64_t webhook_id, int64_t after,
                                       size_t limit, struct store_webhook_delivery **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    struct store_webhook_delivery *v = NULL;
    *out = NULL;
    *n = 0;
    store_param_int(&p, webhook_id);
    store_param_int(&p, after);
    store_param_int(
        &p,
        (int64_t)(limit > 0 && limit <= STORE_WEBHOOK_PAGE_MAX ? limit : STORE_WEBHOOK_PAGE_MAX));
    enum store_rc rc = RUN(st, SQL_WEBHOOK_DELIVERIES, &p, &r);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if (rc == STORE_OK && rows > 0 && (v = calloc((size_t)rows, sizeof *v)) == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
    }
    for (int i = 0; rc == STORE_OK && i < rows; i++)
        if (!parse_delivery(r, i, &v[i]))
            rc = STORE_ERROR;
    PQclear(r);
    if (rc != STORE_OK) {
        free(v);
        return rc;
    }
    *out = v;
    *n = (size_t)rows;
    return STORE_OK;
}

static const char SQL_WEBHOOK_DELIVERY_GET[] =
    "SELECT " DELIVERY_COLUMNS ", e.body FROM webhook_deliveries d JOIN webhook_events e ON "
    "e.id = d.event_id WHERE ($1::bigint = 0 OR d.webhook_id = $1) AND d.id = $2";
static const char SQL_WEBHOOK_ATTEMPTS[] =
    "SELECT n, " US("at") ", duration_ms, status, error FROM webhook_attempts "
                          "WHERE delivery_id = $1 ORDER BY n LIMIT 1000";

enum store_rc store_webhook_delivery_get(struct store *st, int64_t webhook_id, int64_t id,
                                         struct store_webhook_delivery *out,
                                         struct store_webhook_attempt **attempts,
                                         size_t *n_attempts, char **body)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    struct store_webhook_attempt *v = NULL;
    *attempts = NULL;
    *n_attempts = 0;
    *body = NULL;
    store_param_int(&p, webhook_id);
    store_param_int(&p, id);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_DELIVERY_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_delivery(r, 0, out))
        rc = STORE_ERROR;
    if (rc == STORE_OK && (*body = strdup(PQgetvalue(r, 0, 11))) == NULL)
        rc = STORE_ERROR;
    PQclear(r);
    r = NULL;
    if (rc == STORE_OK) {
        struct store_params q = {0};
        store_param_int(&q, id);
        rc = RUN(st, SQL_WEBHOOK_ATTEMPTS, &q, &r);
    }
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if (rc == STORE_OK && rows > 0 && (v = calloc((size_t)rows, sizeof *v)) == NULL)
        rc = STORE_ERROR;
    for (int i = 0; rc == STORE_OK && i < rows; i++) {
        v[i].n = (int)store_col_int(r, i, 0);
        v[i].at_us = store_col_int(r, i, 1);
        v[i].duration_ms = (int)store_col_int(r, i, 2);
        v[i].status = (int)store_col_int(r, i, 3);
        if (!store_col_text(r, i, 4, v[i].error, sizeof v[i].error))
            rc = STORE_ERROR;
    }
    PQclear(r);
    if (rc != STORE_OK) {
        free(v);
        free(*body);
        *body = NULL;
        return rc;
    }
    *attempts = v;
    *n_attempts = (size_t)rows;
    return STORE_OK;
}

static const char SQL_WEBHOOK_RESEND[] =
    "UPDATE webhook_deliveries SET state = CASE WHEN state = 'failed' THEN 'pending' ELSE state "
    "END, attempts = CASE WHEN state = 'failed' THEN 0 ELSE attempts END, "
    "next_at = CASE WHEN state = 'failed' THEN now() ELSE next_at END "
    "WHERE ($1::bigint = 0 OR webhook_id = $1) AND id = $2 RETURNING state, "
    "(SELECT state FROM webhook_deliveries o WHERE o.id = $2)";

enum store_rc store_webhook_resend(struct store *st, int64_t webhook_id, int64_t id)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    store_param_int(&p, webhook_id);
    store_param_int(&p, id);
    /* RETURNING reads the row as updated: a failed one now says pending. A delivered or
     * pending one (unchanged) is a conflict; pending may mean it was re-sent already. */
    enum store_rc rc = RUN(st, SQL_WEBHOOK_RESEND, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    /* The subquery sees the row as it was before the update: only a failed one was re-sent. */
    if (rc == STORE_OK && strcmp(PQgetvalue(r, 0, 1), "failed") != 0) {
        st->conflict = "state";
        rc = STORE_CONFLICT;
    }
    PQclear(r);
    return rc;
}

static const char SQL_WEBHOOK_LEASE[] =
    "INSERT INTO webhook_lease (id, owner, until) VALUES (1, $1, now() + $2 * interval '1 ms') "
    "ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until "
    "WHERE webhook_lease.owner = EXCLUDED.owner OR webhook_lease.until < now() RETURNING owner";

enum store_rc store_webhook_lease(struct store *st, const char *owner, int64_t ttl_ms, bool *held)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    store_param_text(&p, owner);
    store_param_int(&p, ttl_ms);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_LEASE, &p, &r);
    *held = rc == STORE_OK && PQntuples(r) == 1;
    PQclear(r);
    return rc;
}

static const char SQL_WEBHOOK_DUE[] =
    "SELECT h.id, h.webhook_id, h.event_id, h.attempts, e.type, w.url, w.sealed, e.body FROM "
    "(SELECT DISTINCT ON (d.webhook_id) d.id, d.webhook_id, d.event_id, d.attempts, d.next_at "
    "FROM webhook_deliveries d WHERE d.state = 'pending' "
    "AND NOT (d.webhook_id = ANY ($2::bigint[])) ORDER BY d.webhook_id, d.id) h "
    "JOIN webhooks w ON w.id = h.webhook_id JOIN webhook_events e ON e.id = h.event_id "
    "WHERE h.next_at <= now() ORDER BY h.id LIMIT $1";

void store_webhook_due_free(struct store_webhook_due *d, size_t n)
{
    for (size_t i = 0; d != NULL && i < n; i++)
        free(d[i].body);
    free(d);
}

enum store_rc store_webhook_due(struct store *st, const int64_t *skip, size_t n_skip, size_t limit,
                                struct store_webhook_due **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    struct store_webhook_due *v = NULL;
    size_t got = 0;
    *out = NULL;
    *n = 0;
    /* "{1,2,3}": at most WEBHOOKS_DUE_MAX ids of 20 digits */
    char *ids = malloc(n_skip * 21 + 3);
    if (ids == NULL)
        return STORE_ERROR;
    size_t o = 0;
    ids[o++] = '{';
    for (size_t i = 0; i < n_skip; i++)
        o += (size_t)sprintf(ids + o, "%s%" PRId64, i > 0 ? "," : "", skip[i]);
    ids[o++] = '}';
    ids[o] = '\0';
    store_param_int(&p, (int64_t)limit);
    store_param_text(&p, ids);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_DUE, &p, &r);
    free(ids);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if (rc == STORE_OK && rows > 0 && (v = calloc((size_t)rows, sizeof *v)) == NULL)
        rc = STORE_ERROR;
    for (int i = 0; rc == STORE_OK && i < rows; i++, got++) {
        struct store_webhook_due *d = &v[i];
        d->delivery_id = store_col_int(r, i, 0);
        d->webhook_id = store_col_int(r, i, 1);
        d->event_id = store_col_int(r, i, 2);
        d->attempts = (int)store_col_int(r, i, 3);
        if (!store_col_text(r, i, 4, d->type, sizeof d->type) ||
            !store_col_text(r, i, 5, d->url, sizeof d->url) ||
            !store_col_bytes(r, i, 6, d->sealed, sizeof d->sealed, NULL, true) ||
            (d->body = strdup(PQgetvalue(r, i, 7))) == NULL)
            rc = STORE_ERROR;
    }
    PQclear(r);
    if (rc != STORE_OK) {
        store_webhook_due_free(v, got + 1 <= (size_t)rows ? got + 1 : got);
        return rc;
    }
    *out = v;
    *n = (size_t)rows;
    return STORE_OK;
}

static const char SQL_WEBHOOK_ATTEMPT[] =
    "WITH d AS (UPDATE webhook_deliveries SET attempts = attempts + 1, "
    "state = CASE WHEN $5::boolean THEN 'delivered' WHEN $6::bigint < 0 THEN 'failed' "
    "ELSE 'pending' END, "
    "delivered_at = CASE WHEN $5::boolean THEN now() END, "
    "next_at = CASE WHEN $6::bigint >= 0 THEN now() + $6::bigint * interval '1 ms' "
    "ELSE next_at END "
    "WHERE id = $1 AND state = 'pending' RETURNING id) "
    "INSERT INTO webhook_attempts (delivery_id, n, duration_ms, status, error) "
    "SELECT d.id, COALESCE((SELECT max(n) FROM webhook_attempts WHERE delivery_id = $1), 0) + 1, "
    "$2, $3, NULLIF($4, '') FROM d";

enum store_rc store_webhook_attempt(struct store *st, int64_t id, int duration_ms, int status,
                                    const char *error, bool delivered, int64_t retry_ms)
{
    struct store_params p = {0};
    store_param_int(&p, id);
    store_param_int(&p, duration_ms < 0 ? 0 : duration_ms);
    store_param_int_or_null(&p, status);
    store_param_text(&p, error != NULL ? error : "");
    store_param_text(&p, delivered ? "true" : "false");
    store_param_int(&p, delivered ? 0 : retry_ms);
    return RUN(st, SQL_WEBHOOK_ATTEMPT, &p, NULL);
}

static const char SQL_WEBHOOK_ROTATION_NOTICE[] =
    "INSERT INTO webhook_rotation_notices (sdkappid, version) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING RETURNING sdkappid";

enum store_rc store_webhook_rotation_notice(struct store *st, uint32_t sdkappid, uint32_t version,
                                            bool *first)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    enum store_rc rc = RUN(st, SQL_WEBHOOK_ROTATION_NOTICE, &p, &r);
    *first = rc == STORE_OK && PQntuples(r) == 1;
    PQclear(r);
    return rc;
}
