/*
 * Rate limits held in memory: token buckets keyed by (kind, id), one table per process shared
 * by its threads under one mutex. A single sign takes one token from its API token's bucket and
 * its app's together, or from neither: a refusal costs nothing and says how long until a token
 * is there. The table is bounded; when a probe window is full, the bucket used least lately is
 * dropped (it starts again full, as an idle bucket would have refilled anyway).
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_SLOTS 8192 /* buckets a process keeps, a power of two */
#define RATELIMIT_PROBE 16   /* slots looked at for a key before one is dropped */
#define RATELIMIT_MAX_KEYS 4 /* buckets one take may span */

struct ratelimit;

enum ratelimit_kind { RATELIMIT_TOKEN = 1, RATELIMIT_APP = 2 };

/* One bucket a take draws from: (kind, id) refilled at rate tokens a second, holding at most
 * max(1, rate) (a second's worth). rate <= 0: no limit (skipped). */
struct ratelimit_key {
    enum ratelimit_kind kind;
    int64_t id;
    double rate;
};

/* A new, empty table; NULL when out of memory. */
struct ratelimit *ratelimit_new(void);
/* Accepts NULL. */
void ratelimit_free(struct ratelimit *rl);

/* Takes one token from each of the n buckets (n <= RATELIMIT_MAX_KEYS) at now_ns
 * (clock_monotonic_ns, clock.h), or from none. -1 when all had one (taken); else the index of the
 * first bucket that had none, with *retry_after_ms the time until it has one (>= 1). Thread-safe.
 * rl NULL: -1. */
int ratelimit_take(struct ratelimit *rl, const struct ratelimit_key *keys, size_t n, int64_t now_ns,
                   int64_t *retry_after_ms);

#endif
