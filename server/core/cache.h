/*
 * The process's cache of what every request reads: API tokens (the principal a token stands
 * for) and apps (their settings and every live key version, opened, the active one marked).
 * Shared by the loop thread, the database threads and the listener; one mutex guards the
 * tables, and an entry, once published, never changes: a reader holds a reference, a change
 * replaces the entry.
 *
 * Exact invalidation, in three parts:
 *   - Every change to an app, a key version or a token bumps the app's generation or notifies
 *     (migrations/0003_cache.sql: triggers, NOTIFY usersigd_cache "app:ID" / "token:ID"), in the
 *     transaction of the change. A listener thread of each process evicts on the notification;
 *     the process that made the change evicts at once after its commit (cache_forget_*).
 *   - Signing never trusts the cache alone: the group's transaction reads, after taking the
 *     audit lock that every change also takes, the generations of its apps and the state of its
 *     tokens, and a group whose entries are stale is re-done with fresh ones, never released.
 *   - A miss that races an eviction is not published (an epoch counter), and while the listener
 *     is not connected (it may have missed notifications) nothing is cached: every lookup
 *     misses and reads the database.
 * Decrypted keys are wiped when the last reference to their entry goes.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "principal.h"
#include "store.h"
#include "usersig.h"

#define CACHE_WUR __attribute__((warn_unused_result))

struct cache;

/* One live key version of a cached app, opened. */
struct cache_key {
    uint32_t version;
    enum store_key_state state;
    int64_t verify_until_us; /* retired: verifies up to this time; 0 = no end */
    struct usersig_key *key; /* read-only: shared by threads */
};

/* An app as cached: immutable once published; held by reference. */
struct cache_app {
    struct store_app app;
    struct store_limits limits; /* the app's rate limits (sign.c) */
    int64_t generation;         /* apps.generation when read */
    size_t n_keys;
    struct cache_key *keys;         /* every live version, newest first */
    const struct cache_key *active; /* NULL: no active version */
};

/* A token as cached. */
struct cache_token {
    int64_t id;
    uint8_t hash[KEYRING_FP_BYTES]; /* the secret's keyed hash, compared in constant time */
    int64_t expires_at_us;          /* 0: never */
    struct principal principal;
};

struct cache_stats {
    uint64_t app_hits, app_misses, token_hits, token_misses, evictions, stale_groups;
    size_t apps, tokens;
    bool listening;
};

/* An empty cache (nothing is cached until cache_set_listening(c, true)). NULL when out of
 * memory. */
struct cache *cache_new(void);
/* Drops every entry (their keys wiped once unreferenced) and frees c. Accepts NULL. */
void cache_free(struct cache *c);

/* The epoch: read it before a store read whose result is to be published; cache_put_* refuses
 * (returns false) when an eviction happened since. */
uint64_t cache_epoch(struct cache *c);

/* ---- apps ---- */

/* A reference to app sdkappid's entry, or NULL (not cached). Release with cache_app_release. */
const struct cache_app *cache_app_get(struct cache *c, uint32_t sdkappid);
void cache_app_release(const struct cache_app *a);
/* Another reference to a (which the caller holds); returns a. */
const struct cache_app *cache_app_ref(const struct cache_app *a);
/* Whether the table still holds a: false once it is evicted or replaced, and for one never
 * published. A holder that keeps a reference beyond one use (a thread's signer) drops it when
 * false, so that the keys are wiped without waiting for it. */
bool cache_app_listed(const struct cache_app *a);
/* Publishes a (made by cache_app_alloc; the caller's reference passes to the result) unless an
 * eviction happened since epoch or caching is off. Returns a, a reference the caller releases
 * either way: unpublished, it is still good for the use it was read for. */
const struct cache_app *cache_app_put(struct cache *c, struct cache_app *a, uint64_t epoch);
/* A new entry's memory (zeroed) with room for n_keys keys, or NULL. cache_app_discard frees
 * one never published. */
struct cache_app *cache_app_alloc(size_t n_keys);
void cache_app_discard(struct cache_app *a);

/* ---- every live key of every app, for the 70009 diagnosis (which app's key signed this?) ---- */

struct cache_scan_key {
    uint32_t sdkappid, version;
    struct usersig_key *key;
};
struct cache_scan {
    size_t n;
    struct cache_scan_key *keys; /* in (sdkappid, version) order */
};
/* The current index (a reference: cache_scan_release), or NULL: build one and cache_scan_put
 * it. Any change to any app drops the index. */
const struct cache_scan *cache_scan_get(struct cache *c);
void cache_scan_release(const struct cache_scan *s);
struct cache_scan *cache_scan_alloc(size_t n); /* zeroed, room for n keys; NULL */
/* As cache_app_put: publishes s unless an app was evicted since epoch; returns s, the
 * caller's reference. */
const struct cache_scan *cache_scan_put(struct cache *c, struct cache_scan *s, uint64_t epoch);
/* True when token id may start another scan this second (at most per_second). Counted per
 * process, for tokens in the cache; an uncached token is allowed. */
bool cache_scan_allowed(struct cache *c, int64_t id, int64_t now_us, unsigned per_second);

/* ---- tokens ---- */

/* Copies token id's entry into *out: true when cached. */
bool cache_token_get(struct cache *c, int64_t id, struct cache_token *out);
/* Publishes a copy of t (last used at used_us, as the row says) unless an eviction happened
 * since epoch. */
void cache_token_put(struct cache *c, const struct cache_token *t, int64_t used_us, uint64_t epoch);
/* True at most once a minute per token: its use is to be recorded now (the entry remembers). */
bool cache_token_due(struct cache *c, int64_t id, int64_t now_us);

/* ---- invalidation ---- */

/* Evicts app sdkappid (any thread). */
void cache_forget_app(struct cache *c, uint32_t sdkappid);
/* Evicts token id (any thread). */
void cache_forget_token(struct cache *c, int64_t id);
/* Evicts everything. */
void cache_forget_all(struct cache *c);
/* The listener's state: false flushes and disables caching; true (after LISTEN succeeded)
 * flushes again, since notifications may have been missed, and enables it. */
void cache_set_listening(struct cache *c, bool on);
/* Applies a notification payload ("app:ID", "token:ID", anything else: forget all). */
void cache_notify(struct cache *c, const char *payload);

/* Told of each app eviction (all: every app, a flush), on the thread that evicted (the
 * listener's, a database thread's, the loop's) and outside the table's lock: what keeps state
 * derived from an app (the gateway's admin UserSigs) drops it. fn must not call the cache. */
typedef void (*cache_evict_fn)(void *arg, uint32_t sdkappid, bool all);
/* Sets the one fn (NULL: none). Once it returns, no call of the previous fn is running. */
void cache_on_evict(struct cache *c, cache_evict_fn fn, void *arg);

void cache_count_stale_group(struct cache *c);
void cache_get_stats(struct cache *c, struct cache_stats *out);

#endif
