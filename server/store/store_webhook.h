/*
 * The store's webhook statements (store_webhook.c): endpoints with their sealed signing secrets,
 * the outbox written in the caller's transaction, the deliveries and their attempts, and the
 * delivery lease. Included by the code that uses them; the rest of the store is store.h's.
 */
#ifndef STORE_WEBHOOK_H
#define STORE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* ---- webhooks (store_webhook.c, migrations/0010_limits_webhooks.sql) ---- */

#define STORE_WEBHOOK_URL_MAX 2048
#define STORE_WEBHOOK_MAX_EVENTS 32
#define STORE_WEBHOOK_TYPE_MAX 63
#define STORE_WEBHOOK_SEALED_LEN 60 /* nonce(12) || secret(32) || tag(16) */
#define STORE_WEBHOOK_LIST_MAX 1000 /* endpoints a list shows, at most */
#define STORE_WEBHOOK_PAGE_MAX 1000 /* deliveries a page shows, at most */
#define STORE_WEBHOOK_ERROR_MAX 255
#define STORE_WEBHOOK_BODY_MAX 16384

struct store_webhook {
    int64_t id;
    char url[STORE_WEBHOOK_URL_MAX + 1];
    size_t n_events;
    char events[STORE_WEBHOOK_MAX_EVENTS][STORE_WEBHOOK_TYPE_MAX + 1];
    uint32_t sdkappid; /* 0: every app's events, and those of no app */
    uint8_t sealed[STORE_WEBHOOK_SEALED_LEN];
    int64_t created_at_us;
    char created_by[STORE_TEXT_BUF(STORE_TOKEN_NAME_MAX)];
    int64_t n_pending, n_failed; /* read by store_webhook_list and _get */
};

enum store_delivery_state {
    STORE_DELIVERY_PENDING = 0,
    STORE_DELIVERY_DELIVERED,
    STORE_DELIVERY_FAILED
};
const char *store_delivery_state_name(enum store_delivery_state s); /* "pending" ... */

struct store_webhook_delivery {
    int64_t id, webhook_id, event_id;
    char type[STORE_WEBHOOK_TYPE_MAX + 1];
    enum store_delivery_state state;
    int attempts; /* since it was (re)sent */
    int64_t next_at_us, created_at_us, delivered_at_us;
    int last_status; /* of the latest attempt: HTTP status, 0 none */
    char last_error[STORE_WEBHOOK_ERROR_MAX + 1];
};

struct store_webhook_attempt {
    int n;
    int64_t at_us;
    int duration_ms;
    int status; /* 0: no reply */
    char error[STORE_WEBHOOK_ERROR_MAX + 1];
};

/* A delivery due now, with what sending it needs; body is a new string (caller free()s it). */
struct store_webhook_due {
    int64_t delivery_id, webhook_id, event_id;
    int attempts;
    char type[STORE_WEBHOOK_TYPE_MAX + 1];
    char url[STORE_WEBHOOK_URL_MAX + 1];
    uint8_t sealed[STORE_WEBHOOK_SEALED_LEN];
    char *body;
};

/* The id the next endpoint takes (its secret is sealed for it before the insert). */
enum store_rc store_webhook_next_id(struct store *st, int64_t *id) STORE_WUR;
/* Inserts w (id from store_webhook_next_id); writes back created_at. NOT_FOUND: no such app. */
enum store_rc store_webhook_insert(struct store *st, struct store_webhook *w) STORE_WUR;
enum store_rc store_webhook_get(struct store *st, int64_t id, struct store_webhook *out) STORE_WUR;
/* Every endpoint in id order (at most STORE_WEBHOOK_LIST_MAX): *out a new array of *n, caller
 * free()s it (and wipes nothing: sealed secrets only). */
enum store_rc store_webhook_list(struct store *st, struct store_webhook **out, size_t *n) STORE_WUR;
/* Deletes endpoint id with its deliveries and their attempts. NOT_FOUND when none. */
enum store_rc store_webhook_delete(struct store *st, int64_t id) STORE_WUR;

/* The outbox, in the caller's transaction: one event of type for app sdkappid (0: none) with
 * body (the JSON sent), and a pending delivery to each endpoint that takes type and the app;
 * nothing when none does. *n the deliveries made (may be NULL). */
enum store_rc store_webhook_outbox(struct store *st, const char *type, uint32_t sdkappid,
                                   const char *body, int64_t *n) STORE_WUR;

/* Endpoint webhook_id's deliveries with id > after in id order, at most limit. *out a new
 * array of *n; caller free()s it. */
enum store_rc store_webhook_deliveries(struct store *st, int64_t webhook_id, int64_t after,
                                       size_t limit, struct store_webhook_delivery **out,
                                       size_t *n) STORE_WUR;
/* One delivery of endpoint webhook_id (0: of any endpoint), its attempts (a new array of
 * *n_attempts, oldest first, at most 1000; caller free()s it) and its body (a new string; caller
 * free()s it). */
enum store_rc store_webhook_delivery_get(struct store *st, int64_t webhook_id, int64_t id,
                                         struct store_webhook_delivery *out,
                                         struct store_webhook_attempt **attempts,
                                         size_t *n_attempts, char **body) STORE_WUR;
/* A failed delivery pending again, at once, its attempts counted anew. NOT_FOUND: no such
 * delivery of that endpoint (0: of any); CONFLICT "state": it is not failed (nothing changed). */
enum store_rc store_webhook_resend(struct store *st, int64_t webhook_id, int64_t id) STORE_WUR;

/* Takes or renews the delivery lease for owner for ttl_ms (one deliverer of every process at
 * a time): *held true when owner holds it now. */
enum store_rc store_webhook_lease(struct store *st, const char *owner, int64_t ttl_ms,
                                  bool *held) STORE_WUR;
/* The head of each endpoint's pending deliveries (its lowest id), when it is due (next_at
 * passed), leaving out the n_skip endpoints of skip (those with a delivery out), at most limit
 * of them. *out a new array of *n; free with store_webhook_due_free. */
enum store_rc store_webhook_due(struct store *st, const int64_t *skip, size_t n_skip, size_t limit,
                                struct store_webhook_due **out, size_t *n) STORE_WUR;
void store_webhook_due_free(struct store_webhook_due *d, size_t n);
/* Records an attempt of delivery id (took duration_ms; status the HTTP status or 0, error ""
 * or why) and its outcome: delivered; else pending again in retry_ms, or failed when retry_ms
 * is negative. A delivery not pending any more (deleted, re-sent meanwhile) is left alone. */
enum store_rc store_webhook_attempt(struct store *st, int64_t id, int duration_ms, int status,
                                    const char *error, bool delivered, int64_t retry_ms) STORE_WUR;

/* Records that key version (sdkappid, version) was reported past its app's rotate_every, in the
 * caller's transaction: *first when it had not been (report it now), false when it had. */
enum store_rc store_webhook_rotation_notice(struct store *st, uint32_t sdkappid, uint32_t version,
                                            bool *first) STORE_WUR;

/* usersigd rewrap: every endpoint's id and sealed secret, and the update of one. */
enum store_rc store_webhook_sealed_all(struct store *st, struct store_webhook **out,
                                       size_t *n) STORE_WUR;
enum store_rc store_webhook_set_sealed(struct store *st, int64_t id, const uint8_t *sealed,
                                       size_t len) STORE_WUR;

#endif
