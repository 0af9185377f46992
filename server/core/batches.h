/*
 * Batch manifests as operations of the core: the start and the end of a batch signing job, each
 * in one transaction with its audit event; an end that could not be written (the database went
 * away while the batch streamed) kept in the process and recorded when the database is back;
 * and the batches of processes that are gone marked interrupted.
 *
 * Each usersigd process is a batch owner: a new owner id (the batch_owners sequence) whose
 * session-level advisory lock it holds on a connection of its own for its life, and which every
 * batch it starts records (migrations/0004_batch_owner.sql). Whoever can take an owner's lock
 * has proven that owner gone. The sweep finds running batches of owners other than this one,
 * and for each owner whose lock it can take, marks its running batches interrupted with their
 * usersig.batch.finish events (outcome interrupted), in one transaction under that lock.
 *
 * Threads: batches_new, batches_retry and batches_free on the loop thread; batches_start,
 * batches_finish and batches_sweep on the thread that owns svc's connection (a pool thread's
 * service, or the loop's at start and stop). The retries, the owner lock's upkeep and the
 * periodic sweep run as one job on the database pool, never on the loop.
 */
#ifndef BATCHES_H
#define BATCHES_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "principal.h"
#include "service.h"
#include "store.h"

#define BATCHES_WUR __attribute__((warn_unused_result))

#define BATCHES_SWEEP_INTERVAL_MS 30000 /* the periodic sweep */
#define BATCHES_RETRY_MIN_MS 1000       /* the first retry of an end; doubling ... */
#define BATCHES_RETRY_MAX_MS 30000      /* ... up to this */
#define BATCHES_PENDING_MAX 4096        /* ends kept for a retry, at most */

struct batches;

struct batches_config {
    const char *conninfo;  /* the owner connection's (as store_open takes); copied */
    int sweep_interval_ms; /* 0: BATCHES_SWEEP_INTERVAL_MS */
    int retry_min_ms;      /* 0: BATCHES_RETRY_MIN_MS */
    int retry_max_ms;      /* 0: BATCHES_RETRY_MAX_MS */
    bool no_start_sweep;   /* tests: no sweep in batches_new */
};

/* The end of a batch, as its process knows it. */
struct batches_end {
    char batch_id[STORE_BATCH_ID_LEN + 1];
    uint32_t sdkappid, key_version;
    struct principal principal;   /* who ran it: the actor of the finish event */
    enum store_batch_state state; /* STORE_BATCH_COMPLETE or STORE_BATCH_ABORTED */
    uint64_t count, signed_count, failed_count;
    char sha256[STORE_SHA256_HEX_LEN + 1];
    /* Of failed_count, the lines refused for who signs (sign.h sign_check_principal): an
     * administrator identifier the principal may not sign for, and an identifier outside its
     * prefixes; which administrator identifiers those were. In the finish event's details
     * ("refused") when any. */
    uint64_t admin_refused, prefix_refused;
    uint64_t quota_refused; /* past the allowance of batch_tokens_per_day (batch_quota) */
    /* ?import=1: the accounts imported into Tencent, the lines refused as import_failed and
     * the calls made; in the finish event's details ("import") */
    bool import;
    uint64_t imported, import_failed, import_calls;
    size_t n_refused_ids;
    char refused_ids[STORE_APP_MAX_ADMIN_IDS][STORE_ID_MAX + 1];
};

/* At start, on the loop thread, before it serves: opens the owner connection, takes a new owner
 * id and its lock, sweeps once on svc's own connection (rows without an owner included: every
 * process that could run those started before this one's schema) and, with a base, arms the
 * timer of the periodic job, which runs on svc->pool. The first batches made becomes the
 * process's (batches_current). Returns 0 with *out set, or -1 (logged). */
int batches_new(struct event_base *base, struct service *svc, const struct batches_config *cfg,
                struct batches **out) BATCHES_WUR;

/* At stop, on the loop thread, once the pool is freed (no job of it in flight): one last attempt
 * at every end still kept, on svc's own connection; what still fails is logged and stays
 * running, for the next start to mark interrupted. Then the owner lock is released and its
 * connection closed. Accepts NULL. */
void batches_free(struct batches *bs);

/* The process's batches (the first batches_new'd, until it is freed), or NULL: then batches
 * are recorded without an owner and an end that fails is not retried. */
struct batches *batches_current(void);
int64_t batches_owner(const struct batches *bs); /* 0 for NULL */
size_t batches_pending(struct batches *bs);      /* ends waiting for a retry */

/* In the caller's open transaction on svc's connection (the app and key read in it): inserts row
 * as running (batch_id, sdkappid, key_version, actor; the owner is bs's, none for NULL; its
 * allowance when above 0) with its
 * "usersig.batch" event (outcome started, details stolen) and commits. On failure the caller
 * rolls back; nothing is to be signed. */
enum store_rc batches_start(struct service *svc, const struct batches *bs,
                            const struct principal *principal, struct store_batch *row,
                            json_t *details) BATCHES_WUR;

/* The end of a batch in one transaction on svc's connection: the row closed, the key version's
 * sign count grown by signed_count, the "usersig.batch.finish" event. STORE_OK recorded;
 * STORE_NOT_FOUND nothing to close (closed already: by an earlier attempt whose reply was lost,
 * or marked interrupted by a process that is not the owner); STORE_ERROR not recorded (rolled
 * back): keep it for batches_retry. */
enum store_rc batches_finish(struct service *svc, const struct batches *bs,
                             const struct batches_end *end) BATCHES_WUR;

/* Keeps a copy of end, retried with backoff on the pool until recorded. false (logged) when bs
 * is NULL, holds BATCHES_PENDING_MAX already or memory is short. Loop thread. */
bool batches_retry(struct batches *bs, const struct batches_end *end);

/* Marks interrupted the running batches whose owner is gone (unowned: rows without an owner
 * too), on svc's connection, each owner's in one transaction with their audit events. bs (may
 * be NULL) is this process: its own batches are left alone. Returns the number marked, or -1
 * when the database failed (what was committed stays). */
int batches_sweep(struct service *svc, const struct batches *bs, bool unowned);

/* The periodic job's work, on svc's connection: the owner lock checked (taken again on a new
 * connection when its connection broke), the ends due for a retry (all of them with all), the
 * sweep when sweep. Tests call it directly; the timer's job runs it on the pool. */
void batches_maintain(struct service *svc, struct batches *bs, bool all, bool sweep);

#endif
