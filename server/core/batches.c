/*
 * Batch manifests in the core (batches.h): the start and end transactions of a batch, the ends
 * kept for a retry when the database was away, this process's owner lease (an advisory lock on
 * a connection of its own), and the sweep that marks interrupted the batches of gone owners.
 * The retries, the lease's upkeep and the periodic sweep are one job on the database pool,
 * armed by a timer on the loop.
 */
#include "batches.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An end waiting for its retry. */
struct pending {
    struct batches_end end;
    int attempts;
    int64_t due_ms; /* monotonic */
    struct pending *next;
};

struct batches {
    struct event_base *base; /* NULL: no timer */
    struct service *svc;     /* the loop's: its pool runs the job, its connection the last try */
    char *conninfo;
    int sweep_interval_ms, retry_min_ms, retry_max_ms;
    /* The lease: touched by batches_new, the job (one at a time) and batches_free only. */
    struct store *owner_st; /* NULL while its connection is broken */
    int64_t owner;          /* fixed once taken */
    /* The ends to retry, in arrival order. */
    pthread_mutex_t mu;
    struct pending *queue;
    size_t n_pending;  /* in queue */
    size_t n_inflight; /* taken off it by a retry that has not settled yet */
    /* The periodic job (loop thread). */
    struct event *timer;
    struct dbpool_job job;
    bool job_busy, job_sweep, stopping;
    int64_t next_sweep_ms;
};

static _Atomic(struct batches *) current;

struct batches *batches_current(void)
{
    return atomic_load(&current);
}

int64_t batches_owner(const struct batches *bs)
{
    return bs != NULL ? bs->owner : 0;
}

size_t batches_pending(struct batches *bs)
{
    size_t n;
    if (bs == NULL)
        return 0;
    pthread_mutex_lock(&bs->mu);
    n = bs->n_pending + bs->n_inflight;
    pthread_mutex_unlock(&bs->mu);
    return n;
}

/* ---- start and end --------------------------------------------------------------------------- */

enum store_rc batches_start(struct service *svc, const struct batches *bs,
                            const struct principal *principal, struct store_batch *row,
                            json_t *details)
{
    enum store_rc rc;

    row->owner = batches_owner(bs);
    rc = store_batch_insert(svc->st, row);
    if (rc == STORE_OK && row->allowance > 0)
        rc = store_batch_set_allowance(svc->st, row->batch_id, row->allowance);
    if (rc == STORE_OK && details == NULL)
        rc = STORE_ERROR;
    if (rc == STORE_OK) {
        rc = service_audit(svc, principal, "usersig.batch", row->sdkappid, row->key_version,
                           "started", details);
        details = NULL; /* stolen */
    }
    json_decref(details);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    return rc;
}

enum store_rc batches_finish(struct service *svc, const struct batches *bs,
                             const struct batches_end *end)
{
    const char *state = store_batch_state_name(end->state);
    struct store_batch row;
    enum store_rc rc;
    json_t *details;

    memset(&row, 0, sizeof row);
    snprintf(row.batch_id, sizeof row.batch_id, "%s", end->batch_id);
    row.state = end->state;
    row.count = end->count;
    row.signed_count = end->signed_count;
    row.failed_count = end->failed_count;
    row.owner = batches_owner(bs);
    snprintf(row.sha256, sizeof row.sha256, "%s", end->sha256);
    details = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "batch_id", end->batch_id, "count",
                        (json_int_t)end->count, "signed", (json_int_t)end->signed_count, "failed",
                        (json_int_t)end->failed_count, "sha256", end->sha256, "state", state);
    if (details != NULL && (end->admin_refused > 0 || end->prefix_refused > 0)) {
        json_t *ids = json_array(), *refused;
        for (size_t i = 0; ids != NULL && i < end->n_refused_ids && i < STORE_APP_MAX_ADMIN_IDS;
             i++)
            if (json_array_append_new(ids, json_string(end->refused_ids[i])) != 0) {
                json_decref(ids);
                ids = NULL;
            }
        refused = ids == NULL ? NULL
                              : json_pack("{s:I, s:I, s:o}", "admin_identifier",
                                          (json_int_t)end->admin_refused, "identifier_prefix",
                                          (json_int_t)end->prefix_refused, "admin_identifiers",
                                          ids); /* "o" takes ids, even on failure */
        if (refused == NULL || json_object_set_new(details, "refused", refused) != 0) {
            json_decref(details);
            details = NULL;
        }
    }
    if (details != NULL && end->quota_refused > 0 &&
        json_object_set_new(details, "batch_quota", json_integer((json_int_t)end->quota_refused)) !=
            0) {
        json_decref(details);
        details = NULL;
    }
    if (details != NULL && end->import &&
        json_object_set_new(details, "import",
                            json_pack("{s:I, s:I, s:I}", "imported", (json_int_t)end->imported,
                                      "failed", (json_int_t)end->import_failed, "calls",
                                      (json_int_t)end->import_calls)) != 0) {
        json_decref(details);
        details = NULL;
    }
    rc = details != NULL ? store_begin(svc->st) : STORE_ERROR;
    /* The row first: when it is closed already (an earlier attempt committed, its reply lost),
     * nothing else happens, so the sign count grows once. */
    if (rc == STORE_OK)
        rc = store_batch_finish(svc->st, &row);
    if (rc == STORE_OK && end->signed_count > 0)
        rc = store_key_record_use(svc->st, end->sdkappid, end->key_version, end->signed_count);
    if (rc == STORE_OK) {
        rc = service_audit(svc, &end->principal, "usersig.batch.finish", end->sdkappid,
                           end->key_version, state, details);
        details = NULL; /* stolen */
    }
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    json_decref(details);
    if (rc != STORE_OK)
        store_rollback(svc->st);
    return rc;
}

/* ---- the ends kept for a retry ------------------------------------------------------------- */

static int64_t backoff_ms(const struct batches *bs, int attempts)
{
    int64_t d = bs->retry_min_ms;
    for (int i = 1; i < attempts && d < bs->retry_max_ms; i++)
        d *= 2;
    return d < bs->retry_max_ms ? d : bs->retry_max_ms;
}

static void arm(struct batches *bs);

bool batches_retry(struct batches *bs, const struct batches_end *end)
{
    struct pending *p, **tail;

    if (bs == NULL)
        return false;
    pthread_mutex_lock(&bs->mu);
    if (bs->n_pending >= BATCHES_PENDING_MAX || (p = calloc(1, sizeof *p)) == NULL) {
        pthread_mutex_unlock(&bs->mu);
        log_error("batch %s: cannot keep its end for a retry (%zu kept already or out of "
                  "memory): it stays running",
                  end->batch_id, (size_t)BATCHES_PENDING_MAX);
        return false;
    }
    p->end = *end;
    p->attempts = 1;
    p->due_ms = clock_monotonic_ms() + backoff_ms(bs, 1);
    for (tail = &bs->queue; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = p;
    bs->n_pending++;
    pthread_mutex_unlock(&bs->mu);
    log_warn("batch %s: its end (%s, %llu lines) is kept and recorded when the database is back",
             end->batch_id, store_batch_state_name(end->state), (unsigned long long)end->count);
    arm(bs);
    return true;
}

/* The ends due now (all: every one), taken off the queue in order. */
static struct pending *take_due(struct batches *bs, bool all)
{
    struct pending *due = NULL, **due_tail = &due, **pp;
    int64_t now = clock_monotonic_ms();

    pthread_mutex_lock(&bs->mu);
    for (pp = &bs->queue; *pp != NULL;) {
        struct pending *p = *pp;
        if (all || p->due_ms <= now) {
            *pp = p->next;
            p->next = NULL;
            *due_tail = p;
            due_tail = &p->next;
            bs->n_pending--;
            bs->n_inflight++;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&bs->mu);
    return due;
}

/* Settles a retry of taken ends: those that failed again (list) go back at the front, each
 * with its next time. */
static void put_back(struct batches *bs, struct pending *list, size_t taken)
{
    struct pending *last = NULL;
    size_t n = 0;

    for (struct pending *p = list; p != NULL; p = p->next) {
        n++;
        last = p;
    }
    pthread_mutex_lock(&bs->mu);
    if (last != NULL) {
        last->next = bs->queue;
        bs->queue = list;
    }
    bs->n_pending += n;
    bs->n_inflight -= taken;
    pthread_mutex_unlock(&bs->mu);
}

static size_t list_len(const struct pending *p)
{
    size_t n = 0;
    for (; p != NULL; p = p->next)
        n++;
    return n;
}

/* Tries each end of list once on svc's connection; returns those that failed again. */
static struct pending *retry_list(struct service *svc, struct batches *bs, struct pending *list)
{
    struct pending *failed = NULL, **failed_tail = &failed;

    while (list != NULL) {
        struct pending *p = list;
        list = p->next;
        p->next = NULL;
        enum store_rc rc = batches_finish(svc, bs, &p->end);
        if (rc == STORE_OK || rc == STORE_NOT_FOUND) {
            if (rc == STORE_OK)
                log_info("batch %s %s: its end recorded after %d attempts: %llu lines, %llu "
                         "signed, %llu failed",
                         p->end.batch_id, store_batch_state_name(p->end.state), p->attempts + 1,
                         (unsigned long long)p->end.count, (unsigned long long)p->end.signed_count,
                         (unsigned long long)p->end.failed_count);
            else
                log_warn("batch %s: closed already (its end recorded before, or marked by "
                         "another process); its end as this process knows it: %s, %llu lines",
                         p->end.batch_id, store_batch_state_name(p->end.state),
                         (unsigned long long)p->end.count);
            explicit_bzero(&p->end.principal, sizeof p->end.principal);
            free(p);
            continue;
        }
        p->attempts++;
        p->due_ms = clock_monotonic_ms() + backoff_ms(bs, p->attempts);
        *failed_tail = p;
        failed_tail = &p->next;
    }
    return failed;
}

/* ---- the owner lease ------------------------------------------------------------------------ */

/* The owner connection is alive with its lock, or opened again and the lock taken again. */
static void keep_lease(struct batches *bs)
{
    if (bs->owner_st != NULL && store_ping(bs->owner_st) == STORE_OK)
        return;
    if (bs->owner_st != NULL) {
        log_warn("batches: the owner connection broke (owner %lld); taking its lock again",
                 (long long)bs->owner);
        store_close(bs->owner_st);
        bs->owner_st = NULL;
    }
    struct store *st = NULL;
    if (store_open(bs->conninfo, &st) != STORE_OK ||
        store_batch_owner_take(st, &bs->owner) != STORE_OK) {
        store_close(st);
        return; /* the next run tries again */
    }
    bs->owner_st = st;
    log_info("batches: owner %lld holds its lock again", (long long)bs->owner);
}

/* ---- the sweep --------------------------------------------------------------------------------
 */

static json_t *interrupted_details(const struct store_batch *b)
{
    return json_pack("{s:s, s:s, s:n, s:n, s:n, s:n, s:o}", "batch_id", b->batch_id, "state",
                     store_batch_state_name(STORE_BATCH_INTERRUPTED), "count", "signed", "failed",
                     "sha256", "owner", b->owner != 0 ? json_integer(b->owner) : json_null());
}

/* Marks the running batches of owner (0: without one) interrupted, if it is gone, in one
 * transaction. Returns how many, or -1. */
static int sweep_owner(struct service *svc, int64_t owner)
{
    struct store_batch *rows = NULL;
    size_t n = 0;
    bool gone = owner == 0;
    enum store_rc rc = store_begin(svc->st);

    if (rc == STORE_OK && owner != 0)
        rc = store_batch_owner_gone(svc->st, owner, &gone);
    if (rc == STORE_OK && gone)
        rc = store_batch_interrupt(svc->st, owner, &rows, &n);
    for (size_t i = 0; rc == STORE_OK && i < n; i++) {
        json_t *d = interrupted_details(&rows[i]);
        rc = d != NULL ? service_audit(svc, NULL, "usersig.batch.finish", rows[i].sdkappid,
                                       rows[i].key_version, "interrupted", d)
                       : STORE_ERROR;
    }
    if (rc == STORE_OK && n > 0)
        rc = store_commit(svc->st);
    store_rollback(svc->st);
    if (rc != STORE_OK) {
        log_error("batches: cannot mark the batches of owner %lld interrupted", (long long)owner);
        free(rows);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        log_warn("batch %s of app %u: its process (owner %lld) is gone: marked interrupted",
                 rows[i].batch_id, rows[i].sdkappid, (long long)owner);
        metrics_batch_end("interrupted", 0);
    }
    free(rows);
    return (int)n;
}

int batches_sweep(struct service *svc, const struct batches *bs, bool unowned)
{
    int64_t *owners = NULL;
    size_t n = 0;
    int total = 0;

    if (store_batch_owners_running(svc->st, batches_owner(bs), &owners, &n) != STORE_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (owners[i] == 0 && !unowned)
            continue;
        int k = sweep_owner(svc, owners[i]);
        if (k < 0) {
            total = -1;
            break;
        }
        total += k;
    }
    free(owners);
    return total;
}

void batches_maintain(struct service *svc, struct batches *bs, bool all, bool sweep)
{
    struct pending *due;
    size_t taken;

    keep_lease(bs);
    due = take_due(bs, all);
    taken = list_len(due);
    put_back(bs, retry_list(svc, bs, due), taken);
    if (sweep)
        (void)batches_sweep(svc, bs, false);
}

/* ---- the periodic job ---------------------------------------------------------------------- */

static void job_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct batches *bs = j->arg;
        batches_maintain(ctx, bs, false, bs->job_sweep);
    }
}

static void job_done(struct dbpool_job *job)
{
    struct batches *bs = job->arg;
    bs->job_busy = false;
    arm(bs);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct batches *bs = arg;
    (void)fd;
    (void)what;
    if (bs->job_busy || bs->stopping)
        return;
    bs->job_sweep = clock_monotonic_ms() >= bs->next_sweep_ms;
    if (bs->job_sweep)
        bs->next_sweep_ms = clock_monotonic_ms() + bs->sweep_interval_ms;
    bs->job_busy = true;
    bs->job = (struct dbpool_job){.run = job_run, .done = job_done, .arg = bs};
    service_run(bs->svc, &bs->job);
}

/* (Re)arms the timer for the next thing due: the earliest retry or the sweep. Loop thread. */
static void arm(struct batches *bs)
{
    int64_t now = clock_monotonic_ms(), next = bs->next_sweep_ms;

    if (bs->timer == NULL || bs->stopping || bs->job_busy)
        return;
    pthread_mutex_lock(&bs->mu);
    for (struct pending *p = bs->queue; p != NULL; p = p->next)
        if (p->due_ms < next)
            next = p->due_ms;
    pthread_mutex_unlock(&bs->mu);
    int64_t wait = next - now < 10 ? 10 : next - now;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(bs->timer, &tv);
}

/* ---- life ----------------------------------------------------------------------------------- */

int batches_new(struct event_base *base, struct service *svc, const struct batches_config *cfg,
                struct batches **out)
{
    struct batches *bs = calloc(1, sizeof *bs);
    struct batches *none = NULL;
    int k;

    *out = NULL;
    if (bs == NULL || (bs->conninfo = strdup(cfg->conninfo)) == NULL) {
        log_error("batches: out of memory");
        free(bs);
        return -1;
    }
    pthread_mutex_init(&bs->mu, NULL);
    bs->base = base;
    bs->svc = svc;
    bs->sweep_interval_ms =
        cfg->sweep_interval_ms > 0 ? cfg->sweep_interval_ms : BATCHES_SWEEP_INTERVAL_MS;
    bs->retry_min_ms = cfg->retry_min_ms > 0 ? cfg->retry_min_ms : BATCHES_RETRY_MIN_MS;
    bs->retry_max_ms = cfg->retry_max_ms > 0 ? cfg->retry_max_ms : BATCHES_RETRY_MAX_MS;
    if (bs->retry_max_ms < bs->retry_min_ms)
        bs->retry_max_ms = bs->retry_min_ms;
    if (store_open(bs->conninfo, &bs->owner_st) != STORE_OK ||
        store_batch_owner_take(bs->owner_st, &bs->owner) != STORE_OK) {
        log_error("batches: cannot take a batch owner lease on the database");
        goto fail;
    }
    if (base != NULL && (bs->timer = evtimer_new(base, timer_cb, bs)) == NULL) {
        log_error("batches: cannot set up the sweep timer");
        goto fail;
    }
    if (!cfg->no_start_sweep) {
        k = batches_sweep(svc, bs, true);
        if (k < 0)
            log_warn("batches: the start-up sweep failed; the periodic one tries again");
        else if (k > 0)
            log_warn("batches: %d batch(es) of processes that are gone marked interrupted", k);
    }
    log_info("batches: this process is batch owner %lld", (long long)bs->owner);
    bs->next_sweep_ms = clock_monotonic_ms() + bs->sweep_interval_ms;
    arm(bs);
    atomic_compare_exchange_strong(&current, &none, bs);
    *out = bs;
    return 0;
fail:
    bs->stopping = true;
    batches_free(bs);
    return -1;
}

void batches_free(struct batches *bs)
{
    struct pending *left;
    struct batches *self = bs;

    if (bs == NULL)
        return;
    atomic_compare_exchange_strong(&current, &self, NULL);
    bs->stopping = true;
    if (bs->timer != NULL)
        event_free(bs->timer);
    /* One last attempt, on the loop's own connection: the pool is gone. */
    left = take_due(bs, true);
    if (bs->svc != NULL && bs->svc->st != NULL)
        left = retry_list(bs->svc, bs, left);
    while (left != NULL) {
        struct pending *p = left;
        left = p->next;
        log_error("batch %s: its end (%s, %llu lines, %llu signed) could not be recorded: it "
                  "stays running until a process marks it interrupted",
                  p->end.batch_id, store_batch_state_name(p->end.state),
                  (unsigned long long)p->end.count, (unsigned long long)p->end.signed_count);
        explicit_bzero(&p->end.principal, sizeof p->end.principal);
        free(p);
    }
    store_batch_owner_release(bs->owner_st, bs->owner);
    store_close(bs->owner_st);
    pthread_mutex_destroy(&bs->mu);
    free(bs->conninfo);
    free(bs);
}
