/*
 * A pool of PostgreSQL connections, each driven by a thread of its own, so that the event loop
 * never waits on the database. A job runs on a pool thread with that thread's connection (a
 * struct store: the store stays synchronous and single-threaded per connection), and its
 * completion runs on the loop thread. Jobs run in the order they were submitted, as threads
 * free up; a thread may take several waiting jobs at once (dbpool_job.batch), which is how
 * signs share one transaction (group commit).
 *
 * Threading: dbpool_new, dbpool_submit and dbpool_free are called on the loop thread; the
 * process must have called evthread_use_pthreads() before creating the event_base.
 */
#ifndef DBPOOL_H
#define DBPOOL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DBPOOL_WUR __attribute__((warn_unused_result))
#define DBPOOL_MAX_SIZE 64

struct dbpool;
struct store;
struct dbpool_job;

/* run: on a pool thread, with its connection; jobs is a list of one or more jobs of the same
 * kind (same run function), linked by next, taken together: run handles them all. A connection
 * run() leaves inside a transaction is rolled back by the pool. ctx is the pool thread's
 * per-thread context (dbpool_config.thread_ctx_new), NULL if none.
 * done: on the loop thread, once per job, after its run returned (also at dbpool_free for jobs
 * that never ran, with job->cancelled set). */
typedef void (*dbpool_run_fn)(struct store *st, void *ctx, struct dbpool_job *jobs);
typedef void (*dbpool_done_fn)(struct dbpool_job *job);

/* Embedded by the caller in its own request state (no allocation per job). The fields above
 * next are the caller's to set before dbpool_submit; the pool owns the job until done runs. */
struct dbpool_job {
    dbpool_run_fn run;
    dbpool_done_fn done;
    void *arg;    /* the caller's */
    size_t batch; /* take up to this many waiting jobs with the same run together; 0 = 1 */
    /* At most this many threads run jobs with this run function at once (0: no limit): the
     * rest wait and gather, so that a batch taken later is larger (group commit). */
    unsigned max_running;
    bool cancelled;          /* set by the pool: the job never ran (the pool is being freed) */
    struct dbpool_job *next; /* the pool's */
};

struct dbpool_config {
    const char *conninfo; /* libpq connection string, as store_open takes */
    int size;             /* threads and connections, 1..DBPOOL_MAX_SIZE */
    /* Optional: a context made on each pool thread once its connection is open (for example
     * the handlers' service struct bound to that connection), freed on that thread at exit. */
    void *(*thread_ctx_new)(struct store *st, void *arg);
    void (*thread_ctx_free)(void *ctx);
    void *thread_ctx_arg;
};

struct dbpool_stats {
    uint64_t submitted, completed;
    size_t queued;  /* waiting for a thread */
    size_t running; /* jobs being run now */
    int size;
};

/* Opens size connections (each thread opens its own; a failure is logged and fails the whole
 * pool) and starts the threads. Returns 0 with *out set, or -1. */
int dbpool_new(struct event_base *base, const struct dbpool_config *cfg,
               struct dbpool **out) DBPOOL_WUR;

/* Queues job; its done callback will run on the loop thread. Never fails: the job is the
 * caller's memory. After dbpool_free has begun, done runs with cancelled set instead. */
void dbpool_submit(struct dbpool *p, struct dbpool_job *job);

/* On a pool thread, inside a run function: takes up to max more waiting jobs with the same run
 * function as the list jobs (the one run was given) for which want(job, arg) is true (called
 * with the pool's lock held: keep it short, no I/O), and appends them to that list; their done
 * callbacks run like the others'. Returns how many. For a run that has waited (for a lock) and
 * can take in what arrived meanwhile. */
size_t dbpool_take_more(struct dbpool_job *jobs, size_t max,
                        bool (*want)(const struct dbpool_job *job, void *arg), void *arg);

void dbpool_get_stats(struct dbpool *p, struct dbpool_stats *out);

/* Waits for the running jobs, cancels the queued ones, calls every outstanding done callback
 * (on the calling thread: the loop thread), closes the connections and frees the pool.
 * Accepts NULL. */
void dbpool_free(struct dbpool *p);

#endif
