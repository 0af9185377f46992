/*
 * The running service's shared state and the few operations every handler needs: authenticate
 * an API token, append an audit event for the caller, refuse with an audited event, open a
 * stored key version into a codec key. Handlers in admin-api/ receive a struct service as their
 * request context (api_request.ctx).
 */
#ifndef SERVICE_H
#define SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "dbpool.h"
#include "errors.h"
#include "keyring.h"
#include "principal.h"
#include "store.h"
#include "usersig.h"

#define SERVICE_WUR __attribute__((warn_unused_result))

struct ui_assets;
struct sign_chain; /* sign.h */

struct service {
    const struct config *cfg;
    struct store *st;   /* one connection, used from the event-loop thread */
    struct keyring *kr; /* master key and root opened: audit key and fingerprint key ready */
    const char *migrations_dir;
    struct pipeline *pipeline; /* batch signing's worker threads (pipeline.h); NULL: none */
    size_t batches_running;    /* batch requests accepted and not ended (loop thread's only) */
    size_t signs_waiting;      /* single signs submitted and not done (loop thread's only): while
                                * there are, the batches leave a core free (sign_submit) */
    struct dbpool *pool;       /* database threads (dbpool.h); NULL: none */
    struct cache *cache;       /* tokens and apps (cache.h), shared by all threads; NULL: none */
    struct ratelimit *limits;  /* signs' token buckets (ratelimit.h), shared; NULL: no limits */
    struct sign_chain *chain;  /* the audit chain's head as seen here (sign.h), shared; NULL:
                                * every group reads it under the lock (two round trips) */
    struct gateway *gateway;   /* calls to Tencent's REST API (gateway.h), loop thread; NULL */
    /* The dashboard's files (admin-api/ui.h), read by the loop thread's handlers only; NULL:
     * not served. Data for the admin API: the core never reads it. */
    const struct ui_assets *ui;
};

/* The dbpool thread context: a copy of proto (a const struct service *) bound to that
 * thread's connection st, without pipeline or pool. NULL when out of memory. */
void *service_thread_new(struct store *st, void *proto);
void service_thread_free(void *ctx);

/* Runs job on the pool when svc has one (its done on the loop thread later), else at once on
 * svc's own connection, done included (operator commands and tests without a pool). */
void service_run(struct service *svc, struct dbpool_job *job);

/* The outcome of a token check. */
enum service_token_rc {
    SERVICE_TOKEN_OK = 0,  /* the principal is given */
    SERVICE_TOKEN_UNKNOWN, /* malformed, unknown, expired or revoked: 401 */
    SERVICE_TOKEN_ERROR,   /* could not tell (database down): 503 */
    SERVICE_TOKEN_MISS,    /* service_token_cached only: not cached, check it on the store */
};

/* Checks token against the cache alone (any thread, no I/O): OK with *out filled, UNKNOWN
 * (malformed, or cached and refused) or MISS. *touch is set when the token's use is due to be
 * recorded (service_token_touch; at most once a minute per process). */
enum service_token_rc service_token_cached(struct service *svc, const char *token,
                                           struct principal *out, bool *touch);

/* Checks n API tokens (at most SERVICE_TOKENS_MAX) on svc's connection, their rows fetched in
 * one statement: each is parsed, its secret's hash compared in constant time, an expired or
 * revoked one refused, and its use recorded (at most once a minute). The rows read are cached.
 * What a pool thread runs for the checks waiting together. */
#define SERVICE_TOKENS_MAX 16
void service_check_tokens(struct service *svc, const char *const *tokens, size_t n,
                          enum service_token_rc *rc, struct principal *out);

/* Records that token id was used (on svc's connection); failures are logged. */
void service_token_touch(struct service *svc, int64_t id);

/* Appends an audit event for principal (NULL: the server itself) inside the caller's open
 * transaction. details is a JSON object, stolen; NULL (a json_pack that ran out of memory) is
 * STORE_ERROR with nothing appended, so the change it records fails with it. Never put a secret
 * in it. */
enum store_rc service_audit(struct service *svc, const struct principal *principal,
                            const char *action, uint32_t sdkappid, uint32_t key_version,
                            const char *outcome, json_t *details) SERVICE_WUR;

/* Fills ev for principal as service_audit would append it; the details (stolen) become
 * *text, which ev->details points to: free() it after the append. 0, or -1 when out of memory. */
struct audit_event;
int service_audit_event(const struct principal *principal, const char *action, uint32_t sdkappid,
                        uint32_t key_version, const char *outcome, json_t *details,
                        struct audit_event *ev, char **text) SERVICE_WUR;

/* Fills ev for principal as service_audit_event does, with details already as the chain's
 * text (sorted keys, JSON_ENSURE_ASCII; NULL: none); ev->details points to it. */
void service_audit_event_text(const struct principal *principal, const char *action,
                              uint32_t sdkappid, uint32_t key_version, const char *outcome,
                              const char *details, struct audit_event *ev);

/* Records a refused state change in its own transaction (the change itself was rolled back):
 * "a refused request changes nothing but the audit log". details stolen. Failures are logged. */
void service_audit_refusal(struct service *svc, const struct principal *principal,
                           const char *action, uint32_t sdkappid, uint32_t key_version,
                           const char *outcome, json_t *details);

/* Opens a stored key version (sealed bytes, kind) into a codec key; caller usersig_key_free()s.
 * Returns 0, or -1 when it does not open (logged: a wrong master key or a tampered row). */
int service_open_key(struct service *svc, const struct store_key *k,
                     struct usersig_key **out) SERVICE_WUR;

/* The two reads every signing path starts with, inside the caller's transaction. Each returns
 * API_OK, or the error to answer with and a message for the client in msg; *refused is set when
 * the request broke a rule (an unknown app, no active key) and the refusal is to be audited. */
enum api_error service_app_get(struct service *svc, uint32_t sdkappid, struct store_app *app,
                               char *msg, size_t cap, bool *refused) SERVICE_WUR;
/* The app's active key version, read with lock, and opened into *ukey (caller frees). */
enum api_error service_active_key(struct service *svc, uint32_t sdkappid, enum store_lock lock,
                                  struct store_key *key, struct usersig_key **ukey, char *msg,
                                  size_t cap, bool *refused) SERVICE_WUR;

/* App sdkappid as the cache holds it (read from the store and cached on a miss): a reference
 * the caller cache_app_release()s. API_OK, or the error with msg filled; *refused when the
 * app does not exist (a refusal to audit). Without a cache every call reads the store and the
 * entry is the caller's alone (cache_app_release frees it). */
enum api_error service_app_entry(struct service *svc, uint32_t sdkappid,
                                 const struct cache_app **out, char *msg, size_t cap,
                                 bool *refused) SERVICE_WUR;

/* Maps a store result to the API error to answer with (NOT_FOUND -> what, CONFLICT -> conflict,
 * ERROR -> unavailable). */
enum api_error service_store_error(enum store_rc rc, enum api_error not_found);

/* RFC 3339 UTC text of Unix microseconds ("2026-11-26T07:40:59.123456Z"); json null for 0. */
json_t *service_time_json(int64_t us);

#endif
