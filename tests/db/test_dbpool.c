/*
 * The database pool on a real PostgreSQL and a real event loop: every job runs once on a pool
 * thread and completes once on the loop thread; the loop keeps running while jobs wait on the
 * database; jobs of one kind are taken together up to their batch size, and other kinds are
 * never mixed in; freeing with jobs queued cancels them, each completing once.
 */
#include "dbpool.h"
#include "dbtest.h"

#include <event2/thread.h>
#include <pthread.h>
#include <time.h>

#define N_JOBS 300

struct tjob {
    struct dbpool_job job;
    int ran;          /* written on the pool thread, read after done */
    int done;         /* on the loop thread */
    int ok;           /* the ping's result */
    pthread_t thread; /* which pool thread ran it */
    size_t group;     /* how many jobs were taken with it */
    pthread_t loop;   /* the thread done ran on */
};

static int n_done;
static struct event_base *base;

static void run_ping(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)ctx;
    size_t n = 0;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next)
        n++;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct tjob *t = j->arg;
        t->ran++;
        t->ok = store_ping(st) == STORE_OK;
        t->thread = pthread_self();
        t->group = n;
    }
}

/* Waits on the database for 100 ms (pg_sleep is not in the store: a transaction held open
 * and a sleep give the same picture to the loop). */
static void run_slow(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)ctx;
    struct timespec ts = {0, 100 * 1000 * 1000};
    if (store_begin(st) == STORE_OK) /* left open on purpose: the pool rolls it back */
        nanosleep(&ts, NULL);
    size_t n = 0;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next)
        n++;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct tjob *t = j->arg;
        t->ran++;
        t->ok = store_ping(st) == STORE_OK;
        t->group = n;
    }
}

/* A kind of which at most one batch runs at a time (max_running 1): records how many run at
 * once, waits 20 ms, then takes in up to 2 more of its kind that queued meanwhile. */
static int serial_inside, serial_max_inside;
static pthread_mutex_t serial_mu = PTHREAD_MUTEX_INITIALIZER;

static bool want_any(const struct dbpool_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return true;
}

static void run_serial(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    (void)ctx;
    pthread_mutex_lock(&serial_mu);
    if (++serial_inside > serial_max_inside)
        serial_max_inside = serial_inside;
    pthread_mutex_unlock(&serial_mu);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    size_t more = dbpool_take_more(jobs, 2, want_any, NULL);
    size_t n = 0;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next)
        n++;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct tjob *t = j->arg;
        t->ran++;
        t->group = n;
        t->ok = (int)more;
    }
    pthread_mutex_lock(&serial_mu);
    serial_inside--;
    pthread_mutex_unlock(&serial_mu);
}

static void done_cb(struct dbpool_job *j)
{
    struct tjob *t = j->arg;
    t->done++;
    t->loop = pthread_self();
    n_done++;
}

static int ticks;
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ticks++;
}

static void run_until(int want, int timeout_ms)
{
    for (int waited = 0; n_done < want && waited < timeout_ms; waited++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void setup_job(struct tjob *t, dbpool_run_fn run, size_t batch)
{
    memset(t, 0, sizeof *t);
    t->job.run = run;
    t->job.done = done_cb;
    t->job.arg = t;
    t->job.batch = batch;
}

int main(void)
{
    struct dbtest db;
    static struct tjob jobs[N_JOBS];
    struct dbpool *pool = NULL;

    CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    base = event_base_new();
    dbtest_create(&db, "dbpool", false);

    /* A pool that cannot connect is refused whole. */
    struct dbpool_config bad = {
        .conninfo = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", .size = 2};
    CHECK(dbpool_new(base, &bad, &pool) == -1 && pool == NULL, "a pool that cannot connect");
    struct dbpool_config zero = {.conninfo = db.url, .size = 0};
    CHECK(dbpool_new(base, &zero, &pool) == -1, "size 0 refused");

    /* Many jobs on four connections: each runs once, completes once, on the loop thread. */
    struct dbpool_config cfg = {.conninfo = db.url, .size = 4};
    CHECK(dbpool_new(base, &cfg, &pool) == 0 && pool != NULL, "pool of 4");
    if (pool == NULL)
        return test_done("dbpool");
    for (int i = 0; i < N_JOBS; i++) {
        setup_job(&jobs[i], run_ping, 1);
        dbpool_submit(pool, &jobs[i].job);
    }
    run_until(N_JOBS, 20000);
    int once = 0, ok = 0, on_loop = 0, distinct = 0;
    for (int i = 0; i < N_JOBS; i++) {
        once += jobs[i].ran == 1 && jobs[i].done == 1;
        ok += jobs[i].ok;
        on_loop += pthread_equal(jobs[i].loop, pthread_self()) != 0;
        bool seen = false;
        for (int k = 0; k < i && !seen; k++)
            seen = pthread_equal(jobs[k].thread, jobs[i].thread) != 0;
        distinct += !seen;
    }
    CHECK(n_done == N_JOBS && once == N_JOBS, "every job ran and completed once (%d, %d)", n_done,
          once);
    CHECK(ok == N_JOBS, "every ping answered (%d)", ok);
    CHECK(on_loop == N_JOBS, "every done ran on the loop thread");
    CHECK(distinct >= 2 && distinct <= 4, "jobs spread over the pool's threads (%d)", distinct);
    struct dbpool_stats s;
    dbpool_get_stats(pool, &s);
    CHECK(s.submitted == N_JOBS && s.completed == N_JOBS && s.queued == 0 && s.running == 0 &&
              s.size == 4,
          "stats");
    dbpool_free(pool);

    /* One connection, a slow job first: the loop keeps ticking; what queued behind it is
     * taken in groups of at most the batch size, and kinds are not mixed. */
    cfg.size = 1;
    CHECK(dbpool_new(base, &cfg, &pool) == 0, "pool of 1");
    n_done = 0;
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval ten_ms = {0, 10000};
    event_add(tick, &ten_ms);
    setup_job(&jobs[0], run_slow, 1);
    dbpool_submit(pool, &jobs[0].job);
    for (int i = 1; i <= 40; i++) {
        if (i % 5 == 0)
            setup_job(&jobs[i], run_slow, 1);
        else
            setup_job(&jobs[i], run_ping, 16);
        dbpool_submit(pool, &jobs[i].job);
    }
    run_until(41, 20000);
    event_free(tick);
    size_t max_group = 0, ping_jobs = 0;
    bool mixed = false;
    for (int i = 1; i <= 40; i++) {
        if (jobs[i].job.run == run_ping) {
            ping_jobs++;
            if (jobs[i].group > max_group)
                max_group = jobs[i].group;
        } else if (jobs[i].group != 1) {
            mixed = true;
        }
    }
    CHECK(n_done == 41, "all 41 completed (%d)", n_done);
    CHECK(max_group > 1 && max_group <= 16, "waiting pings taken together, at most 16 (%zu)",
          max_group);
    CHECK(!mixed && ping_jobs == 32, "slow jobs never grouped with pings");
    /* Nine slow jobs of 100 ms each: the loop ran its 10 ms timer meanwhile. */
    CHECK(ticks >= 30, "the loop kept running while the pool waited (%d ticks)", ticks);

    dbpool_free(pool);

    /* A kind limited to one batch at a time on a pool of 4: never two at once, what queues
     * meanwhile waits (and gathers), dbpool_take_more takes in more of it, other kinds run on
     * the other threads meanwhile. */
    cfg.size = 4;
    CHECK(dbpool_new(base, &cfg, &pool) == 0, "pool of 4 again");
    n_done = 0;
    for (int i = 0; i < 40; i++) {
        setup_job(&jobs[i], run_serial, 4);
        jobs[i].job.max_running = 1;
        dbpool_submit(pool, &jobs[i].job);
    }
    for (int i = 40; i < 60; i++) {
        setup_job(&jobs[i], run_ping, 1);
        dbpool_submit(pool, &jobs[i].job);
    }
    run_until(60, 20000);
    int serial_once = 0, took_more = 0, pings_ok = 0;
    size_t biggest = 0;
    for (int i = 0; i < 40; i++) {
        serial_once += jobs[i].ran == 1 && jobs[i].done == 1;
        took_more += jobs[i].ok > 0;
        if (jobs[i].group > biggest)
            biggest = jobs[i].group;
    }
    for (int i = 40; i < 60; i++)
        pings_ok += jobs[i].ok == 1 && jobs[i].done == 1;
    CHECK(n_done == 60 && serial_once == 40, "every limited job ran and completed once (%d)",
          serial_once);
    CHECK(serial_max_inside == 1, "never two limited batches at once (%d)", serial_max_inside);
    CHECK(took_more > 0 && biggest > 4 && biggest <= 6,
          "batches took in more than their batch size (largest %zu)", biggest);
    CHECK(pings_ok == 20, "the other kind ran meanwhile (%d)", pings_ok);
    dbpool_get_stats(pool, &s);
    CHECK(s.queued == 0 && s.running == 0 && s.completed == 60, "stats add up after take_more");
    dbpool_free(pool);
    cfg.size = 1;
    CHECK(dbpool_new(base, &cfg, &pool) == 0, "pool of 1 again");

    /* Freeing with jobs queued behind a slow one: the slow one completes, the rest are
     * cancelled, every done runs exactly once, before dbpool_free returns. */
    n_done = 0;
    setup_job(&jobs[0], run_slow, 1);
    dbpool_submit(pool, &jobs[0].job);
    for (int i = 1; i <= 10; i++) {
        setup_job(&jobs[i], run_ping, 1);
        dbpool_submit(pool, &jobs[i].job);
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the slow job has started */
    dbpool_free(pool);
    int cancelled = 0, done_once = 0;
    for (int i = 0; i <= 10; i++) {
        cancelled += jobs[i].job.cancelled && jobs[i].ran == 0;
        done_once += jobs[i].done == 1;
    }
    CHECK(n_done == 11 && done_once == 11, "every done ran once at free (%d)", n_done);
    CHECK(!jobs[0].job.cancelled && jobs[0].ran == 1, "the running job finished");
    CHECK(cancelled >= 9, "queued jobs cancelled without running (%d)", cancelled);

    event_base_free(base);
    dbtest_drop(&db);
    return test_done("dbpool");
}
