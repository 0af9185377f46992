/*
 * The store: every SQL statement of usersigd and the only user of libpq. Plain C structs in and
 * out; times are Unix microseconds (int64_t, 0 = NULL / never). Not thread-safe: one struct store
 * (one connection) per thread. Every state change runs in a transaction (store_begin) together
 * with its audit event; transactions are READ COMMITTED.
 *
 * Lock order, so that concurrent transactions cannot deadlock: the apps row (store_app_get with
 * lock, store_key_next_version), then key rows, then the audit lock (taken by audit_append).
 */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_WUR __attribute__((warn_unused_result))

#define STORE_APP_NAME_MAX 128   /* characters (UTF-8) */
#define STORE_TOKEN_NAME_MAX 128 /* characters (UTF-8) */
#define STORE_REASON_MAX 256     /* characters of a destroy reason (UTF-8) */
#define STORE_TEXT_BUF(chars) ((chars)*4 + 1)
#define STORE_FINGERPRINT_LEN 32 /* HMAC-SHA256 / SHA-256 */
#define STORE_SECRET_HASH_LEN 32 /* SHA-256 of an API token's secret */
#define STORE_SEALED_MIN 29      /* nonce(12) || ciphertext(>= 1) || tag(16) */
#define STORE_SEALED_MAX 16384   /* a sealed key version */
#define STORE_SEALED_ROOT_MAX 1024
#define STORE_TOKEN_MAX_APPS 256
#define STORE_AUDIT_PAGE_MAX 1000   /* events per store_audit_query */
#define STORE_ID_MAX 32             /* bytes of a UserID (USERSIG_MAX_IDENTIFIER) */
#define STORE_APP_MAX_ADMIN_IDS 10  /* an app's administrator identifiers */
#define STORE_BASE_URL_MAX 256      /* bytes of an app's tencent_base_url */
#define STORE_TOKEN_MAX_PREFIXES 16 /* identifier prefixes of a token */
#define STORE_TOKEN_MAX_REST 32     /* rest_allow patterns of a token */
#define STORE_TOKEN_REST_MAX 64     /* bytes of one rest_allow pattern */

enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND, /* no such row (or, on insert, the row it refers to: an unknown app) */
    STORE_CONFLICT,  /* a unique constraint refused the change: store_conflict() says which */
    STORE_ERROR,     /* anything else: connection, SQL, a CHECK; logged where it happened */
};

/* Opaque: one PGconn. */
struct store;
struct audit_event; /* audit.h */

/* Connects (conninfo: a libpq URL or key=value string). On success *out is a new store; caller
 * store_close()s it. Failure is logged (never the password) and returns STORE_ERROR. */
enum store_rc store_open(const char *conninfo, struct store **out) STORE_WUR;
void store_close(struct store *st); /* accepts NULL; rolls back an open transaction */

/* After STORE_CONFLICT: which uniqueness refused it. "sdkappid" (an app exists), "version" (a key
 * version exists), "fingerprint" (the key is held or was held by some app version), "one_active"
 * (the app already has an active key), "keyring" (the root secret exists), "checkpoint_key" (the
 * audit checkpoint key exists), "other". */
const char *store_conflict(const struct store *st);

/* A round trip to the server ("SELECT 1"), for readiness checks. */
enum store_rc store_ping(struct store *st) STORE_WUR;

/* Transactions. A broken connection is reconnected once, between transactions only: a
 * statement outside a transaction that fails on a dead connection is retried once on a new one
 * (so run writes inside transactions). store_rollback accepts a store with no transaction open
 * (cleanup paths call it unconditionally) and leaves none open. store_commit of a transaction in
 * which a statement failed rolls back and returns STORE_ERROR. */
enum store_rc store_begin(struct store *st) STORE_WUR;
enum store_rc store_commit(struct store *st) STORE_WUR;
void store_rollback(struct store *st);
bool store_in_transaction(const struct store *st);

/* Row locks of the get functions. */
enum store_lock {
    STORE_LOCK_NONE = 0,
    STORE_LOCK_SHARE,  /* FOR SHARE: the row cannot change until commit */
    STORE_LOCK_UPDATE, /* FOR UPDATE (apps) / FOR NO KEY UPDATE (keys): the caller will change it */
};

/* ---- apps ---- */

enum store_id_policy { STORE_ID_PRINTABLE = 0, STORE_ID_STRICT = 1 }; /* = usersig_id_policy */

struct store_app {
    uint32_t sdkappid; /* 1..4294967295 */
    char name[STORE_TEXT_BUF(STORE_APP_NAME_MAX)];
    uint32_t default_expire; /* seconds, 1..315360000, <= max_expire */
    uint32_t max_expire;
    enum store_id_policy identifier_policy;
    int64_t created_at_us, updated_at_us; /* set by the store */
    /* The Tencent administrator accounts (migrations/0006_admin_ids.sql): n_admin_ids distinct
     * UserIDs; a UserSig for one is signed only for admin roles and for at most admin_max_expire
     * seconds (1..max_expire; 0 on insert: the smaller of a day and max_expire). */
    size_t n_admin_ids;
    char admin_ids[STORE_APP_MAX_ADMIN_IDS][STORE_ID_MAX + 1];
    uint32_t admin_max_expire;
    char gateway_identifier[STORE_ID_MAX + 1];     /* "" = none (NULL); else one of admin_ids */
    char tencent_base_url[STORE_BASE_URL_MAX + 1]; /* "" on insert: the default */
    /* The cryptoperiod (migrations/0009_key_schedule.sql): seconds after its activation at which
     * the active version is due for rotation, 1..315360000; 0 = none (NULL). Shown, never acted
     * on: keys come from Tencent's console. Written by store_app_set_rotate_every. */
    uint32_t rotate_every;
};

#define STORE_TENCENT_BASE_URL_DEFAULT "https://console.tim.qq.com"
#define STORE_ADMIN_MAX_EXPIRE_DEFAULT 86400u

const char *store_id_policy_name(enum store_id_policy p); /* "printable", "strict" */
int store_id_policy_parse(const char *name);              /* -1 when unknown */

/* Inserts app (created_at/updated_at are set and written back). CONFLICT "sdkappid" when the app
 * exists. */
enum store_rc store_app_insert(struct store *st, struct store_app *app) STORE_WUR;
/* lock: NONE, SHARE or UPDATE (FOR UPDATE: serializes every key change of the app). */
enum store_rc store_app_get(struct store *st, uint32_t sdkappid, enum store_lock lock,
                            struct store_app *out) STORE_WUR;
/* An app as store_app_list gives it: the row and its active key version. */
struct store_app_listed {
    struct store_app app;
    uint32_t active_version;        /* 0 when no version is active */
    int64_t active_activated_at_us; /* its activated_at (0 when none) */
};
/* Apps in sdkappid order, each with its active key version, in one statement: those after
 * `after` (0: from the start), at most limit (0: all). scope: only these sdkappids (n_scope of
 * them), or NULL for every app. On success *out is a new array of *n apps (NULL when none);
 * caller free()s it. */
enum store_rc store_app_list(struct store *st, const uint32_t *scope, size_t n_scope,
                             uint32_t after, size_t limit, struct store_app_listed **out,
                             size_t *n) STORE_WUR;

/* Which fields of store_app_update change. */
enum {
    STORE_APP_SET_NAME = 1,
    STORE_APP_SET_DEFAULT_EXPIRE = 2,
    STORE_APP_SET_MAX_EXPIRE = 4,
    STORE_APP_SET_ID_POLICY = 8,
    STORE_APP_SET_ADMIN_IDS = 16,
    STORE_APP_SET_ADMIN_MAX_EXPIRE = 32,
    STORE_APP_SET_GATEWAY_ID = 64,
    STORE_APP_SET_BASE_URL = 128,
    STORE_APP_SET_ROTATE_EVERY = 256, /* op_apps_update only: store_app_set_rotate_every */
};
/* Updates the fields named by `fields` (STORE_APP_SET_*) from `values` (its sdkappid is the row)
 * and updated_at; *out (may be NULL) receives the row as it now is. NOT_FOUND when no such app;
 * a result outside the CHECKs (default > max) is STORE_ERROR, so callers check first. */
enum store_rc store_app_update(struct store *st, const struct store_app *values, unsigned fields,
                               struct store_app *out) STORE_WUR;

/* Sets (seconds, 1..315360000) or clears (0) the app's rotate_every, and updated_at. NOT_FOUND
 * when no such app. */
enum store_rc store_app_set_rotate_every(struct store *st, uint32_t sdkappid,
                                         uint32_t seconds) STORE_WUR;

/* ---- key versions ---- */

enum store_key_kind { STORE_KEY_HMAC = 1, STORE_KEY_ECDSA = 2 }; /* = usersig_key_kind */
enum store_key_state {
    STORE_KEY_PENDING = 0,
    STORE_KEY_ACTIVE,
    STORE_KEY_RETIRED,
    STORE_KEY_DISABLED,
    STORE_KEY_DESTROYED,
};

const char *store_key_kind_name(enum store_key_kind k);   /* "hmac", "ecdsa" */
int store_key_kind_parse(const char *name);               /* -1 when unknown */
const char *store_key_state_name(enum store_key_state s); /* "pending" ... "destroyed" */
int store_key_state_parse(const char *name);              /* -1 when unknown */

struct store_key {
    uint32_t sdkappid;
    uint32_t version; /* 1, 2, 3 ... per app */
    enum store_key_kind kind;
    enum store_key_state state;
    uint8_t fingerprint[STORE_FINGERPRINT_LEN];
    /* The sealed key (nonce || ciphertext || tag); NULL when destroyed, and NULL from the
     * functions that say "metadata only". Owned by the struct: store_key_clear() frees it. */
    uint8_t *sealed;
    size_t sealed_len;
    int64_t created_at_us, activated_at_us, retired_at_us, disabled_at_us, destroyed_at_us;
    char destroy_reason[STORE_TEXT_BUF(STORE_REASON_MAX)]; /* "" unless destroyed */
    int64_t sign_count;
    int64_t last_used_at_us;
    /* After this time a retired version no longer verifies (0 = no end; NULL). */
    int64_t verify_until_us;
};

/* Frees k->sealed and sets it NULL (accepts NULL). */
void store_key_clear(struct store_key *k);
/* store_key_clear on each element, then free(keys) (accepts NULL). */
void store_key_list_free(struct store_key *keys, size_t n);

/* Locks the app's row FOR UPDATE (until commit) and returns the version a new key gets:
 * 1 + the highest version ever made (destroyed ones count: versions are never reused). Call it
 * inside a transaction. NOT_FOUND when no such app. */
enum store_rc store_key_next_version(struct store *st, uint32_t sdkappid,
                                     uint32_t *version) STORE_WUR;
/* Inserts k (sdkappid, version, kind, state pending or active, fingerprint, sealed); created_at
 * and, when active, activated_at are now. CONFLICT "fingerprint" (held by this or another app,
 * destroyed included), "one_active", "version"; NOT_FOUND when the app does not exist. */
enum store_rc store_key_insert(struct store *st, const struct store_key *k) STORE_WUR;
/* One version, with sealed. Caller store_key_clear()s *out. */
enum store_rc store_key_get(struct store *st, uint32_t sdkappid, uint32_t version,
                            struct store_key *out) STORE_WUR;
/* The app's active version, with sealed (caller store_key_clear()s *out); NOT_FOUND when none.
 * lock SHARE keeps it from being rotated away until commit; a signer that will also
 * store_key_record_use() in the same transaction takes UPDATE instead (two signers that both
 * hold SHARE and then update the row deadlock). A locked read that meets a rotation in progress
 * waits for it and returns the new active version. */
enum store_rc store_key_get_active(struct store *st, uint32_t sdkappid, enum store_lock lock,
                                   struct store_key *out) STORE_WUR;
/* The app's versions in version order, metadata only. On success *out is a new array of *n
 * (NULL when none); caller store_key_list_free()s it. */
enum store_rc store_key_list(struct store *st, uint32_t sdkappid, struct store_key **out,
                             size_t *n) STORE_WUR;
/* Every version that still has its sealed key (all states but destroyed), with sealed, in
 * (sdkappid, version) order: of the n_apps apps in apps, or of every app when apps is NULL.
 * for_update locks the rows (rewrap). Caller store_key_list_free()s *out. */
enum store_rc store_key_list_sealed(struct store *st, const uint32_t *apps, size_t n_apps,
                                    bool for_update, struct store_key **out, size_t *n) STORE_WUR;
/* Moves a version to state (not DESTROYED: see store_key_destroy) and stamps the state's time
 * (activated_at, retired_at, disabled_at) with now. Rotation is two calls in one transaction:
 * the old active to RETIRED first, then the new one to ACTIVE. NOT_FOUND when no such version;
 * CONFLICT "one_active". A destroyed version is refused by the database (STORE_ERROR). */
enum store_rc store_key_set_state(struct store *st, uint32_t sdkappid, uint32_t version,
                                  enum store_key_state state) STORE_WUR;
/* Destroys a version: state destroyed, sealed NULL, destroyed_at now, reason (1..256
 * characters). NOT_FOUND when no such version; CONFLICT "state" when it is the active one or
 * already destroyed. */
enum store_rc store_key_destroy(struct store *st, uint32_t sdkappid, uint32_t version,
                                const char *reason) STORE_WUR;
/* Who holds (or held) a fingerprint. NOT_FOUND when nobody. */
enum store_rc store_key_find_fingerprint(struct store *st,
                                         const uint8_t fingerprint[STORE_FINGERPRINT_LEN],
                                         uint32_t *sdkappid, uint32_t *version) STORE_WUR;
/* sign_count += count, last_used_at = now. NOT_FOUND when no such version. */
enum store_rc store_key_record_use(struct store *st, uint32_t sdkappid, uint32_t version,
                                   uint64_t count) STORE_WUR;
/* Sets verify_until (Unix microseconds; 0 clears it) of a version that is not destroyed.
 * NOT_FOUND otherwise. */
enum store_rc store_key_set_verify_until(struct store *st, uint32_t sdkappid, uint32_t version,
                                         int64_t verify_until_us) STORE_WUR;
/* The active version of each app (in sdkappid order, at most limit of them) with its activation
 * time and the app's rotate_every, for the key-age metrics. On success *out is a new array of
 * *n (NULL when none); caller free()s it. */
struct store_key_schedule {
    uint32_t sdkappid, version;
    int64_t activated_at_us;
    uint32_t rotate_every; /* 0 = none */
};
enum store_rc store_key_schedules(struct store *st, size_t limit, struct store_key_schedule **out,
                                  size_t *n) STORE_WUR;
/* Replaces the sealed key of a live (not destroyed) version: rewrap. NOT_FOUND otherwise. */
enum store_rc store_key_update_sealed(struct store *st, uint32_t sdkappid, uint32_t version,
                                      const uint8_t *sealed, size_t len) STORE_WUR;

/* ---- keyring: the sealed root secret (one row) ---- */

/* Copies the sealed root into buf (cap bytes; STORE_SEALED_ROOT_MAX is always enough).
 * for_update locks the row (rewrap). NOT_FOUND when there is none yet. */
enum store_rc store_keyring_get(struct store *st, bool for_update, uint8_t *buf, size_t cap,
                                size_t *len, int64_t *created_at_us) STORE_WUR;
/* Inserts the root once: CONFLICT "keyring" when a row exists (another process won the race;
 * the transaction stays usable: read that one instead). */
enum store_rc store_keyring_insert(struct store *st, const uint8_t *sealed, size_t len) STORE_WUR;
/* Replaces the sealed root (rewrap). NOT_FOUND when there is none. */
enum store_rc store_keyring_update(struct store *st, const uint8_t *sealed, size_t len) STORE_WUR;

/* ---- API tokens ---- */

enum store_role {
    STORE_ROLE_ADMIN = 0,
    STORE_ROLE_KEY_MANAGER,
    STORE_ROLE_SIGNER,
    STORE_ROLE_AUDITOR,
    STORE_ROLE_ADMIN_SIGNER,
    STORE_ROLE_REST_CALLER,
};
#define STORE_ROLE_COUNT 6
/* "admin", "key_manager", "signer", "auditor", "admin_signer", "rest_caller" */
const char *store_role_name(enum store_role r);
int store_role_parse(const char *name); /* -1 when unknown */

/* Rate limits of an app or an API token (migrations/0010_limits_webhooks.sql); 0: none. */
struct store_limits {
    uint32_t signs_per_second;    /* 1..STORE_SIGNS_PER_SECOND_MAX */
    int64_t batch_tokens_per_day; /* 1..STORE_BATCH_TOKENS_PER_DAY_MAX, per UTC day */
};
#define STORE_SIGNS_PER_SECOND_MAX 1000000
#define STORE_BATCH_TOKENS_PER_DAY_MAX INT64_C(1000000000000)

struct store_token {
    int64_t id; /* set by store_token_insert */
    char name[STORE_TEXT_BUF(STORE_TOKEN_NAME_MAX)];
    enum store_role role;
    bool all_apps; /* true: every app (apps NULL in the table) */
    size_t n_apps; /* otherwise 1..STORE_TOKEN_MAX_APPS sdkappids */
    uint32_t apps[STORE_TOKEN_MAX_APPS];
    uint8_t secret_hash[STORE_SECRET_HASH_LEN];
    int64_t created_at_us; /* set by store_token_insert */
    int64_t expires_at_us; /* 0 = never */
    int64_t revoked_at_us; /* 0 = not revoked */
    int64_t last_used_at_us;
    /* Signing roles: the prefixes an identifier must start with (0: any identifier). */
    size_t n_prefixes;
    char prefixes[STORE_TOKEN_MAX_PREFIXES][STORE_ID_MAX + 1];
    /* rest_caller (and only it): the "svc/cmd" or "svc/<star>" patterns it may call (1 or more). */
    size_t n_rest;
    char rest[STORE_TOKEN_MAX_REST][STORE_TOKEN_REST_MAX + 1];
    struct store_limits limits; /* written by store_token_insert, read with the row */
};

/* Inserts t (name, role, apps, secret_hash, expires_at, prefixes, rest); writes back id and
 * created_at. */
enum store_rc store_token_insert(struct store *st, struct store_token *t) STORE_WUR;
enum store_rc store_token_get(struct store *st, int64_t id, struct store_token *out) STORE_WUR;
/* The same, the row locked FOR UPDATE until the transaction ends (inside one): for a change
 * whose audit event says what the row was before it. */
enum store_rc store_token_get_locked(struct store *st, int64_t id,
                                     struct store_token *out) STORE_WUR;
/* The rows of n ids (at most STORE_TOKEN_GET_MAX; repeats allowed) in one statement: out[i]
 * and found[i] for ids[i] (1: read; 0: no such row; -1: a row that does not fit its struct,
 * logged). STORE_ERROR when the store failed. */
#define STORE_TOKEN_GET_MAX 64
enum store_rc store_token_get_many(struct store *st, const int64_t *ids, size_t n,
                                   struct store_token *out, int *found) STORE_WUR;
/* Every token in id order. On success *out is a new array of *n (NULL when none); caller
 * free()s it. */
enum store_rc store_token_list(struct store *st, struct store_token **out, size_t *n) STORE_WUR;
/* Sets revoked_at (kept when already revoked). NOT_FOUND when no such token. */
enum store_rc store_token_revoke(struct store *st, int64_t id) STORE_WUR;
/* Sets last_used_at to now, at most once a minute per token (it runs on every request). STORE_OK
 * also when there is no such token (the caller has just read it). */
enum store_rc store_token_touch(struct store *st, int64_t id) STORE_WUR;

/* ---- audit log (audit.c builds on these; see audit.h) ---- */

/* Takes the transaction-level advisory lock that serializes appends (inside a transaction). */
enum store_rc store_audit_lock(struct store *st) STORE_WUR;
/* The last event's seq, mac and time, and the database's clock now. An empty log gives
 * *seq = 0, a zero mac and *at_us = 0. */
enum store_rc store_audit_last(struct store *st, int64_t *seq, uint8_t mac[32], int64_t *at_us,
                               int64_t *now_us) STORE_WUR;
/* Inserts ev as it is (seq, at_us, mac and all). CONFLICT "seq" when the seq exists. */
enum store_rc store_audit_insert(struct store *st, const struct audit_event *ev) STORE_WUR;
/* Inserts the n events in order, as store_audit_insert each, in one round trip (libpq's
 * pipeline mode), inside the caller's transaction. STORE_OK only when every one went in. */
enum store_rc store_audit_insert_many(struct store *st, struct audit_event *const *evs,
                                      size_t n) STORE_WUR;

struct store_audit_filter {
    uint32_t sdkappid;  /* 0 = any */
    const char *action; /* NULL = any */
    const char *actor;  /* actor_name; NULL = any */
    int64_t since_us;   /* at >= since; 0 = unbounded */
    int64_t until_us;   /* at < until; 0 = unbounded */
    int64_t after_seq;  /* seq > after_seq (paging; 0 = from the start) */
    size_t limit;       /* 1..STORE_AUDIT_PAGE_MAX */
};
/* Events matching f in seq order. On success *out is one new block holding *n events and their
 * strings (NULL when none); caller free()s it. */
enum store_rc store_audit_query(struct store *st, const struct store_audit_filter *f,
                                struct audit_event **out, size_t *n) STORE_WUR;

/* ---- schema migrations (migrate.c builds on these) ---- */

/* The session-level advisory lock that serializes migrators (waits for it). While it is held a
 * broken connection is an error, not a reconnect (the lock went with the connection). */
enum store_rc store_migration_lock(struct store *st) STORE_WUR;
void store_migration_unlock(struct store *st);
/* Creates schema_migrations when missing (under the migration lock). */
enum store_rc store_migration_table_create(struct store *st) STORE_WUR;
/* The recorded versions in order (none when the table does not exist yet). On success *out is a
 * new array of *n (NULL when none); caller free()s it. */
enum store_rc store_migration_versions(struct store *st, int **out, size_t *n) STORE_WUR;
/* Runs a migration file's text. The one statement that is not a $1-parameter PQexecParams: a
 * migration is many statements, so it goes through PQexec (simple query protocol). Call it
 * inside a transaction; the text must hold no transaction control of its own. */
enum store_rc store_migration_exec(struct store *st, const char *label, const char *sql) STORE_WUR;
/* Records version as applied, in the same transaction. CONFLICT "migration" when it is. */
enum store_rc store_migration_record(struct store *st, int version, const char *name) STORE_WUR;

/* ---- batches: the manifest of a batch signing job (store_batch.c) ---- */

#define STORE_BATCH_ID_LEN 32 /* lowercase hex: 16 random bytes */
#define STORE_SHA256_HEX_LEN 64

/* running, then complete or aborted (by its process, with what it sent), or interrupted (by any
 * process, once the batch's owner is gone: counts unknown); an interrupted batch may still be
 * closed as complete or aborted by its own owner (store_batch_finish). */
enum store_batch_state {
    STORE_BATCH_RUNNING = 0,
    STORE_BATCH_COMPLETE,
    STORE_BATCH_ABORTED,
    STORE_BATCH_INTERRUPTED,
};
const char *store_batch_state_name(enum store_batch_state s); /* "running", "complete", ... */
int store_batch_state_parse(const char *name);                /* -1 when unknown */

#define STORE_BATCH_OWNER_MAX 4294967295LL /* owner ids are 1..this (the batch_owners sequence) */

struct store_batch {
    char batch_id[STORE_BATCH_ID_LEN + 1];
    uint32_t sdkappid;
    uint32_t key_version; /* the version that signed every token of the batch */
    int64_t actor_id;     /* the API token's id; 0 = none */
    char actor_name[STORE_TEXT_BUF(STORE_TOKEN_NAME_MAX)];
    enum store_batch_state state;
    uint64_t count, signed_count, failed_count; /* items out, and of them signed and failed */
    bool counts_unknown; /* interrupted with no counts known: the three are NULL (read as 0) */
    char sha256[STORE_SHA256_HEX_LEN + 1]; /* over the output lines; "" while running or
                                              interrupted */
    int64_t started_at_us, finished_at_us; /* set by the store; finished 0 while running */
    int64_t owner; /* the process that runs it (store_batch_owner_take); 0 = none known */
    /* Lines it may sign under a daily limit (store_batch_set_allowance); -1 or 0: none. */
    int64_t allowance;
    uint32_t expire; /* seconds, the batch's (its lines' unless one gave its own); 0 = unknown */
};

/* Inserts b as running (batch_id, sdkappid, key_version, actor_id, actor_name, owner); writes
 * back started_at. Call it in the transaction of the batch's start audit event. NOT_FOUND when
 * the key version does not exist; CONFLICT "other" when the batch_id does. */
enum store_rc store_batch_insert(struct store *st, struct store_batch *b) STORE_WUR;
/* Closes a batch once: state (COMPLETE or ABORTED), count, signed_count, failed_count, sha256
 * of b, finished_at now; the batch is running, or interrupted with b->owner as its owner (its
 * owner's end, recorded late). NOT_FOUND when no such batch (a finished one never changes). */
enum store_rc store_batch_finish(struct store *st, const struct store_batch *b) STORE_WUR;

/* Owners. A usersigd process takes an owner id and holds its session-level advisory lock on a
 * connection of its own for its life; whoever can take an owner's lock knows it is gone.
 * store_batch_owner_take: *owner 0 takes a new id (the batch_owners sequence) and writes it
 * back; either way the id's lock is taken on st (waiting for a transaction that holds it
 * briefly), held until store_batch_owner_release or the end of the connection (a broken
 * connection is then STORE_ERROR, never a silent reconnect: open a new store and take it
 * again). Outside a transaction. */
enum store_rc store_batch_owner_take(struct store *st, int64_t *owner) STORE_WUR;
void store_batch_owner_release(struct store *st, int64_t owner); /* accepts NULL */
/* Inside a transaction: *gone when owner's lock could be taken, by a transaction-level lock held
 * until commit (so the owner cannot come back while its batches are marked). */
enum store_rc store_batch_owner_gone(struct store *st, int64_t owner, bool *gone) STORE_WUR;
/* The distinct owners of running batches other than self, at most STORE_BATCH_OWNERS_MAX, in
 * order; 0 stands for rows without an owner. On success *out is a new array of *n (NULL when
 * none); caller free()s it. */
#define STORE_BATCH_OWNERS_MAX 256
enum store_rc store_batch_owners_running(struct store *st, int64_t self, int64_t **out,
                                         size_t *n) STORE_WUR;
/* Marks every running batch of owner (0: those without an owner) interrupted: counts NULL,
 * finished_at now. The rows as they now are go to *out (a new array of *n, NULL when none;
 * caller free()s it). Call it in the transaction of their audit events. */
enum store_rc store_batch_interrupt(struct store *st, int64_t owner, struct store_batch **out,
                                    size_t *n) STORE_WUR;
/* One batch. NOT_FOUND when none. */
enum store_rc store_batch_get(struct store *st, const char *batch_id,
                              struct store_batch *out) STORE_WUR;

#define STORE_BATCH_PAGE_MAX 1001 /* rows per store_batch_list: the API's 1000 and one more */

/* What store_batch_list reads: the batches of one app, in (started_at, batch_id) order, after a
 * keyset cursor. */
struct store_batch_filter {
    uint32_t sdkappid;
    int state;                  /* an enum store_batch_state, or -1 for any */
    int64_t after_started_us;   /* with after_batch_id: only rows past (started_at, batch_id) */
    const char *after_batch_id; /* NULL = from the first row (after_started_us is ignored) */
    size_t limit;               /* 1..STORE_BATCH_PAGE_MAX */
};
/* Batches matching f, at most f->limit. On success *out is a new array of *n rows (NULL when
 * none); caller free()s it. */
enum store_rc store_batch_list(struct store *st, const struct store_batch_filter *f,
                               struct store_batch **out, size_t *n) STORE_WUR;

/* ---- signing groups (store_group.c): one transaction for many signs, 1 or 2 round trips ---- */

/* What store_group_begin reads for a group: in, the group's apps (sorted, distinct) and the ids
 * of the API tokens its requests came with; out, each app's generation (0: no such app), each
 * token's liveness (not revoked, not expired) and the audit chain's last event. */
struct store_group {
    const uint32_t *apps;
    size_t n_apps;
    const int64_t *tokens;
    size_t n_tokens;
    int64_t *generations; /* n_apps */
    bool *token_live;     /* n_tokens */
    int64_t last_seq, last_at_us, now_us;
    uint8_t last_mac[32];
};

/* Opens a transaction and, in one round trip: locks the apps' active key versions (FOR NO KEY
 * UPDATE), takes the audit lock, reads the generations and token states (after the lock: what
 * every change commits under it is seen) and the last audit event. On any error the
 * transaction is left for the caller's store_rollback. */
enum store_rc store_group_begin(struct store *st, struct store_group *g) STORE_WUR;

/* A key version's signs in a group. */
struct store_key_use {
    uint32_t sdkappid, version;
    uint64_t count;
};

struct audit_event;
/* In the transaction store_group_begin opened, in one round trip: inserts the n events (their
 * seq, at and mac already set) in one statement, adds the uses to the sign counts (last use
 * now) and commits. On error the caller store_rollback()s. */
enum store_rc store_group_commit(struct store *st, struct audit_event *const *evs, size_t n,
                                 const struct store_key_use *uses, size_t n_uses) STORE_WUR;

/* A whole group in one round trip, for a caller that knows the chain's head (it appended the
 * last event: g->last_seq and g->last_mac) and has chained the n events (n > 0) on it, each at
 * evs[0]->at_us: opens a transaction, takes the locks of store_group_begin, checks under the
 * audit lock that the head is still that event, that each app's generation is
 * g->generations[i], that each of g's tokens is live and that the time is within a second of
 * the database's clock (migrations/0014_group_check.sql), inserts, adds the uses and commits.
 * STORE_CONFLICT when the check found otherwise: nothing written, the transaction aborted; on
 * that and on any error the caller store_rollback()s (and may do the group with
 * store_group_begin). */
enum store_rc store_group_fast(struct store *st, const struct store_group *g,
                               struct audit_event *const *evs, size_t n,
                               const struct store_key_use *uses, size_t n_uses) STORE_WUR;

/* The generation of each of the n apps (0: no such app), migrations/0003_cache.sql. */
enum store_rc store_app_generations(struct store *st, const uint32_t *apps, size_t n,
                                    int64_t *generations) STORE_WUR;

/* ---- notifications (store_notify.c): what the cache's listener waits for ---- */

#define STORE_CHANNEL_CACHE "usersigd_cache" /* changes to evict (migrations/0003_cache.sql) */
#define STORE_CHANNEL_HOLD "usersigd_hold"   /* Tencent's 70050 holds (store_notify_hold) */

/* LISTEN on both channels, on st, outside any transaction: both on one session, or STORE_ERROR
 * (a reconnect between the two would have lost the first). */
enum store_rc store_listen(struct store *st) STORE_WUR;
/* Waits up to timeout_ms (-1: no limit) for input on st or for wake_fd (-1: none) to become
 * readable, then calls fn(arg, channel, payload) for each notification received. STORE_OK, or
 * STORE_ERROR when the connection is lost (reconnect by opening a new store). */
enum store_rc store_notify_wait(struct store *st, int wake_fd, int timeout_ms,
                                void (*fn)(void *arg, const char *channel, const char *payload),
                                void *arg) STORE_WUR;

/* NOTIFY usersigd_hold with payload (the gateway's, gateway.c: printable ASCII, under 8000
 * bytes), sent at once when no transaction is open, else at its commit. */
enum store_rc store_notify_hold(struct store *st, const char *payload) STORE_WUR;

/* ---- the connection string in a log (store_conninfo.c) ---- */

#define STORE_CONNINFO_UNPARSABLE "(unparsable database URL)"
#define STORE_CONNINFO_MORE " ..." /* ends an output cut short */
/* Enough for any conninfo of len bytes: every value quoted and escaped, every key named. */
#define STORE_CONNINFO_REDACTED_BUF(len) (2 * (size_t)(len) + 512)

/* Writes into out (cap bytes; NUL-terminated when cap > 0) what of conninfo may be logged: the
 * string parsed by libpq (PQconninfoParse, as store_open will read it), then only the keys that
 * say where and how to connect (host, hostaddr, port, dbname, user, service, sslmode,
 * target_session_attrs, application_name, timeouts and keepalives) as keyword=value pairs with
 * libpq's quoting, control bytes shown as '?'. Never the password, nor any other key. A string
 * libpq refuses gives STORE_CONNINFO_UNPARSABLE, never its content; one that is not a
 * connection string at all is a bare database name (as store_open takes it). Output that does
 * not fit ends with STORE_CONNINFO_MORE. Returns out. */
const char *store_conninfo_redacted(const char *conninfo, char *out, size_t cap);

/* ---- idempotency keys (store_idem.c, migrations/0005_idempotency.sql) ---- */

#define STORE_IDEM_KEY_MAX 128 /* bytes of an Idempotency-Key */
#define STORE_IDEM_HASH_BYTES 32
#define STORE_IDEM_TTL_HOURS 24 /* older rows are ignored and deleted */

enum store_idem_state {
    STORE_IDEM_CLAIMED =
        0,               /* the key is new (or its row had expired): the caller runs the request */
    STORE_IDEM_RUNNING,  /* another request with this key has not finished */
    STORE_IDEM_DONE,     /* finished: status and body are its reply */
    STORE_IDEM_MISMATCH, /* the key was used with another request (hash) */
};

struct store_idem {
    enum store_idem_state state;
    int status; /* DONE */
    char *body; /* DONE: the reply's JSON text; caller free()s it (store_idem_clear) */
};

void store_idem_clear(struct store_idem *x); /* frees body; accepts a zeroed struct */

/* In one transaction of its own (st outside any): deletes this key's row when older than
 * STORE_IDEM_TTL_HOURS and a few other expired rows, then claims (token_id, key) for a request
 * of hash (INSERT ... ON CONFLICT DO NOTHING), or reads the row that holds it. A concurrent
 * claim of the same key waits for the first one's commit and then sees its row. */
enum store_rc store_idem_claim(struct store *st, int64_t token_id, const char *key,
                               const uint8_t hash[STORE_IDEM_HASH_BYTES],
                               struct store_idem *out) STORE_WUR;
/* The claimed key's reply (status < 500, body a JSON text): its row becomes done.
 * STORE_NOT_FOUND when the row is no longer running (expired and taken over). */
enum store_rc store_idem_finish(struct store *st, int64_t token_id, const char *key, int status,
                                const char *body) STORE_WUR;
/* Releases a claimed key (its request ended in 5xx or could not run): the running row goes, so
 * a retry runs again. */
enum store_rc store_idem_release(struct store *st, int64_t token_id, const char *key) STORE_WUR;

/* ---- audit checkpoints (store_ckpt.c, migrations/0007_audit_checkpoints.sql) ---- */

#define STORE_CKPT_PAGE_MAX 1001 /* rows per store_ckpt_list: the API's 1000 and one more */
#define STORE_CKPT_SEALED_MAX 64 /* the sealed Ed25519 private key (60 bytes) */

/* The one checkpoint key: its Ed25519 public key and its sealed private key (keyring.h). */
struct store_ckpt_key {
    uint8_t public_key[32];
    uint8_t sealed[STORE_CKPT_SEALED_MAX];
    size_t sealed_len;
    int64_t created_at_us; /* set by the store */
};

/* The key; NOT_FOUND when none was made yet. for_update locks the row (rewrap). */
enum store_rc store_ckpt_key_get(struct store *st, bool for_update,
                                 struct store_ckpt_key *out) STORE_WUR;
/* Inserts the key once: CONFLICT "checkpoint_key" when one exists (another process made it
 * first; the transaction stays usable: read that one instead). */
enum store_rc store_ckpt_key_insert(struct store *st, const struct store_ckpt_key *k) STORE_WUR;
/* Replaces the sealed private key of k->public_key (rewrap). NOT_FOUND when that is not the key. */
enum store_rc store_ckpt_key_update_sealed(struct store *st,
                                           const struct store_ckpt_key *k) STORE_WUR;

/* A signed checkpoint: the audit event seq and its mac, the checkpoint's time, the public key
 * that signed it and the Ed25519 signature (audit.h audit_checkpoint_message). */
struct store_ckpt {
    int64_t seq;
    uint8_t mac[32];
    int64_t at_us;
    uint8_t public_key[32];
    uint8_t signature[64];
};

/* Inside a transaction: tries the transaction-level lock that lets one checkpoint writer at a
 * time (of any process) decide and write; *got says whether it was taken (never waits). */
enum store_rc store_ckpt_lock(struct store *st, bool *got) STORE_WUR;
/* Inserts c. CONFLICT "other" when its seq has a checkpoint. */
enum store_rc store_ckpt_insert(struct store *st, const struct store_ckpt *c) STORE_WUR;
/* The checkpoint of the highest seq; NOT_FOUND when none. */
enum store_rc store_ckpt_latest(struct store *st, struct store_ckpt *out) STORE_WUR;
/* Checkpoints with seq > after_seq in seq order, at most limit (1..STORE_CKPT_PAGE_MAX). On
 * success *out is a new array of *n (NULL when none); caller free()s it. */
enum store_rc store_ckpt_list(struct store *st, int64_t after_seq, size_t limit,
                              struct store_ckpt **out, size_t *n) STORE_WUR;

/* ---- verify counts of key versions (store_usage.c, migrations/0008_verify_counts.sql) ---- */

#define STORE_VERDICT_MAX 31 /* bytes of a verdict name */

struct store_verify_count {
    uint32_t sdkappid;
    uint32_t version; /* 0: no version of the app matched */
    char verdict[STORE_VERDICT_MAX + 1];
    uint64_t count;
};

/* Adds the n counts to the stored ones in one statement (rows of apps that do not exist are
 * skipped), outside or inside a transaction. */
enum store_rc store_verify_counts_add(struct store *st, const struct store_verify_count *c,
                                      size_t n) STORE_WUR;
/* The stored counts of app sdkappid in (version, verdict) order. On success *out is a new array
 * of *n (NULL when none); caller free()s it. */
enum store_rc store_verify_counts_get(struct store *st, uint32_t sdkappid,
                                      struct store_verify_count **out, size_t *n) STORE_WUR;

/* ---- rate limits (store_limits.c, migrations/0010_limits_webhooks.sql) ---- */

/* Which limits store_*_limits_set changes (the others stay). */
enum { STORE_LIMIT_SET_SIGNS = 1, STORE_LIMIT_SET_BATCH = 2 };

/* App sdkappid's limits. NOT_FOUND when no such app. */
enum store_rc store_app_limits_get(struct store *st, uint32_t sdkappid,
                                   struct store_limits *out) STORE_WUR;
/* Sets the fields of app sdkappid's limits named by `fields` (0 in values: no limit); the
 * apps trigger bumps its generation (the caches hear of it). NOT_FOUND when no such app. */
enum store_rc store_app_limits_set(struct store *st, uint32_t sdkappid, unsigned fields,
                                   const struct store_limits *values) STORE_WUR;
/* The same for API token id; *out (may be NULL) the row as it now is. NOT_FOUND when none. */
enum store_rc store_token_limits_set(struct store *st, int64_t id, unsigned fields,
                                     const struct store_limits *values,
                                     struct store_token *out) STORE_WUR;

/* Serializes the starts of batches under a daily limit until the transaction ends. */
enum store_rc store_batch_quota_lock(struct store *st) STORE_WUR;
/* The lines of the batches started today (UTC) by API token id (by_token) or of app id: *used
 * what the finished ones signed (an interrupted one at its allowance), *reserved the allowance
 * of those running. */
enum store_rc store_batch_quota_used(struct store *st, bool by_token, int64_t id, int64_t *used,
                                     int64_t *reserved) STORE_WUR;
/* Records the allowance of a running batch (in its start's transaction). */
enum store_rc store_batch_set_allowance(struct store *st, const char *batch_id,
                                        int64_t allowance) STORE_WUR;

/* ---- webhooks: store_webhook.h ---- */

/* ---- exposure: what is still live on a key version (store_exposure.c) ---- */

/* UserSigs still unexpired at now_s by day of expiry (Unix day: expire_at / 86400), in day
 * order: single signs from key_exposure (counted to the end of the hour they expire in), batches
 * from their manifests (signed lines, at (finished_at or now) + expire). */
struct store_exposure_day {
    int64_t day;
    uint64_t single, batch;
};
enum store_rc store_exposure_days(struct store *st, uint32_t sdkappid, uint32_t version,
                                  int64_t now_s, struct store_exposure_day **out,
                                  size_t *n) STORE_WUR;
/* The batches of a version with UserSigs still live at now_s (or whose expiry is unknown), the
 * latest expiry first, at most limit; *more when there are others. expire_at_s is (finished_at
 * or now) + expire (0 when unknown). *out a new array of *n; caller free()s it. */
struct store_exposure_batch {
    struct store_batch b;
    int64_t expire_at_s;
};
enum store_rc store_exposure_batches(struct store *st, uint32_t sdkappid, uint32_t version,
                                     int64_t now_s, size_t limit, struct store_exposure_batch **out,
                                     size_t *n, bool *more) STORE_WUR;
/* A page of the identifiers whose latest single-sign UserSig on version expires after after_s,
 * in identifier order after `from` ("" for the start), at most limit (1..STORE_LIVE_PAGE_MAX):
 * appended to buf (cap bytes) as one identifier and a newline each, *len the bytes written, *n
 * the number; last gets the page's last identifier (the next page's from). */
#define STORE_LIVE_PAGE_MAX 4096
/* Adds the usersig.sign events after key_live_watermark (at most limit) to key_live_identifiers
 * and moves the watermark past them, in one statement (run it outside a transaction: it is one,
 * safe to repeat); *added the events read (fewer than limit: caught up), *busy when another
 * connection holds the watermark (nothing done). */
enum store_rc store_live_catch_up(struct store *st, size_t limit, size_t *added,
                                  bool *busy) STORE_WUR;
enum store_rc store_live_identifiers_page(struct store *st, uint32_t sdkappid, uint32_t version,
                                          int64_t after_s, const char *from, size_t limit,
                                          char *buf, size_t cap, size_t *len, size_t *n,
                                          char last[STORE_ID_MAX + 1]) STORE_WUR;

#endif
