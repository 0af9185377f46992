/*
 * The database pool (dbpool.h): threads that each own one PostgreSQL connection and run queued
 * jobs on it, and the one libevent event through which finished jobs come back to the loop
 * thread. One mutex guards the queue, the finished list and the counters.
 */
#include "dbpool.h"

#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

struct dbpool_thread {
    struct dbpool *p;
    pthread_t tid;
    bool started;        /* pthread_create succeeded: join it */
    dbpool_run_fn doing; /* the run function of the jobs it runs now; NULL when idle */
};

struct dbpool {
    struct event_base *base;
    struct dbpool_config cfg;
    char *conninfo;
    struct event *done_ev; /* made active by a pool thread when it finishes jobs */

    pthread_mutex_t mu;
    pthread_cond_t work;  /* a job was queued, or stopping */
    pthread_cond_t ready; /* a thread opened its connection, or failed to */
    struct dbpool_job *q_head, *q_tail;
    struct dbpool_job *done_head, *done_tail;
    bool stopping;
    int opened, failed;
    uint64_t submitted, completed;
    size_t queued, running;

    struct dbpool_thread threads[DBPOOL_MAX_SIZE];
};

static void list_append(struct dbpool_job **head, struct dbpool_job **tail, struct dbpool_job *j)
{
    j->next = NULL;
    if (*tail != NULL)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* True when a thread may start j now: fewer than j->max_running threads run its function. */
static bool may_start(const struct dbpool *p, const struct dbpool_job *j)
{
    if (j->max_running == 0)
        return true;
    unsigned n = 0;
    for (int i = 0; i < p->cfg.size; i++)
        n += p->threads[i].doing == j->run;
    return n < j->max_running;
}

/* Moves, in queue order, up to max queued jobs after `from` (NULL: from the head) whose run is
 * run and that want accepts (NULL: every one) to the end of the list ending at *last; returns
 * how many. Called with mu held. */
static size_t move_matching(struct dbpool *p, struct dbpool_job *from, dbpool_run_fn run,
                            size_t max, bool (*want)(const struct dbpool_job *, void *), void *arg,
                            struct dbpool_job **last)
{
    struct dbpool_job *prev = from, *j = from != NULL ? from->next : p->q_head;
    size_t n = 0;
    while (j != NULL && n < max) {
        struct dbpool_job *next = j->next;
        if (j->run == run && (want == NULL || want(j, arg))) {
            if (prev != NULL)
                prev->next = next;
            else
                p->q_head = next;
            if (p->q_tail == j)
                p->q_tail = prev;
            j->next = NULL;
            (*last)->next = j;
            *last = j;
            n++;
        } else {
            prev = j;
        }
        j = next;
    }
    return n;
}

/* Unlinks the first queued job that may start and up to batch-1 later ones with the same run
 * function, in queue order; NULL when none may start. Called with mu held. */
static struct dbpool_job *take_jobs(struct dbpool *p, size_t *n_out)
{
    struct dbpool_job *first = p->q_head, *before = NULL;
    while (first != NULL && !may_start(p, first)) {
        before = first;
        first = first->next;
    }
    *n_out = 0;
    if (first == NULL)
        return NULL;
    size_t limit = first->batch > 0 ? first->batch : 1;
    struct dbpool_job *last = first;

    if (before != NULL)
        before->next = first->next;
    else
        p->q_head = first->next;
    if (p->q_tail == first)
        p->q_tail = before;
    first->next = NULL;
    *n_out = 1 + move_matching(p, before, first->run, limit - 1, NULL, NULL, &last);
    return first;
}

static _Thread_local struct dbpool *thread_pool; /* the pool of the calling pool thread */

size_t dbpool_take_more(struct dbpool_job *jobs, size_t max,
                        bool (*want)(const struct dbpool_job *job, void *arg), void *arg)
{
    struct dbpool *p = thread_pool;
    if (p == NULL || jobs == NULL)
        return 0;
    struct dbpool_job *last = jobs;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&p->mu);
    size_t n = move_matching(p, NULL, jobs->run, max, want, arg, &last);
    p->queued -= n;
    p->running += n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void *thread_main(void *arg)
{
    struct dbpool_thread *t = arg;
    struct dbpool *p = t->p;
    struct store *st = NULL;
    void *ctx = NULL;
    bool ok = store_open(p->conninfo, &st) == STORE_OK;

    thread_pool = p;

    if (ok && p->cfg.thread_ctx_new != NULL) {
        ctx = p->cfg.thread_ctx_new(st, p->cfg.thread_ctx_arg);
        ok = ctx != NULL;
        if (!ok)
            log_error("database pool: a thread could not make its context");
    }
    pthread_mutex_lock(&p->mu);
    if (ok)
        p->opened++;
    else
        p->failed++;
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->mu);
    if (!ok)
        goto out;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t n = 0;
        struct dbpool_job *jobs = NULL;
        while (!p->stopping && (jobs = take_jobs(p, &n)) == NULL)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stopping)
            break; /* jobs is NULL: take_jobs did not run */
        p->queued -= n;
        p->running += n;
        t->doing = jobs->run;
        pthread_mutex_unlock(&p->mu);

        jobs->run(st, ctx, jobs);
        if (store_in_transaction(st))
            store_rollback(st);

        pthread_mutex_lock(&p->mu);
        n = 0; /* dbpool_take_more may have added to the list */
        for (struct dbpool_job *j = jobs, *next; j != NULL; j = next) {
            next = j->next;
            list_append(&p->done_head, &p->done_tail, j);
            n++;
        }
        p->running -= n;
        t->doing = NULL;
        /* A job that had to wait for this function to be free may start now; this thread
         * takes the next job itself, another one may take the one after. */
        if (p->q_head != NULL)
            pthread_cond_signal(&p->work);
        event_active(p->done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&p->mu);
out:
    if (ctx != NULL && p->cfg.thread_ctx_free != NULL)
        p->cfg.thread_ctx_free(ctx);
    store_close(st);
    return NULL;
}

/* Runs the done callbacks of finished jobs; on the loop thread. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct dbpool *p = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&p->mu);
    struct dbpool_job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j != NULL) {
        struct dbpool_job *next = j->next;
        j->next = NULL;
        __atomic_add_fetch(&p->completed, 1, __ATOMIC_RELAXED);
        j->done(j);
        j = next;
    }
}

static void stop_threads(struct dbpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->cfg.size; i++)
        if (p->threads[i].started)
            pthread_join(p->threads[i].tid, NULL);
}

int dbpool_new(struct event_base *base, const struct dbpool_config *cfg, struct dbpool **out)
{
    struct dbpool *p = NULL;

    *out = NULL;
    if (base == NULL || cfg == NULL || cfg->conninfo == NULL || cfg->size < 1 ||
        cfg->size > DBPOOL_MAX_SIZE) {
        log_error("database pool: the size must be 1 to %d connections", DBPOOL_MAX_SIZE);
        return -1;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL)
        goto fail_alloc;
    p->base = base;
    p->cfg = *cfg;
    p->conninfo = strdup(cfg->conninfo);
    p->done_ev = event_new(base, -1, 0, on_done, p);
    if (p->conninfo == NULL || p->done_ev == NULL) {
        free(p->conninfo);
        if (p->done_ev != NULL)
            event_free(p->done_ev);
        free(p);
        goto fail_alloc;
    }
    p->cfg.conninfo = p->conninfo;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->ready, NULL);

    int started = 0;
    for (int i = 0; i < cfg->size; i++) {
        p->threads[i].p = p;
        if (pthread_create(&p->threads[i].tid, NULL, thread_main, &p->threads[i]) != 0) {
            log_error("database pool: cannot start a thread");
            break;
        }
        p->threads[i].started = true;
        started++;
    }
    pthread_mutex_lock(&p->mu);
    while (p->opened + p->failed < started)
        pthread_cond_wait(&p->ready, &p->mu);
    bool ok = started == cfg->size && p->failed == 0;
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        log_error("database pool: %d of %d connections opened", p->opened, cfg->size);
        dbpool_free(p);
        return -1;
    }
    *out = p;
    return 0;

fail_alloc:
    log_error("database pool: out of memory");
    return -1;
}

void dbpool_submit(struct dbpool *p, struct dbpool_job *job)
{
    job->cancelled = false;
    pthread_mutex_lock(&p->mu);
    p->submitted++;
    if (p->stopping) {
        /* Freeing: the job completes as cancelled, from the loop, like any other. */
        job->cancelled = true;
        list_append(&p->done_head, &p->done_tail, job);
        event_active(p->done_ev, EV_READ, 0);
    } else {
        list_append(&p->q_head, &p->q_tail, job);
        p->queued++;
        /* A job that must wait for its function to be free would only wake a thread for
         * nothing: the thread that frees it looks at the queue itself. */
        if (may_start(p, job))
            pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
}

void dbpool_get_stats(struct dbpool *p, struct dbpool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->submitted = p->submitted;
    out->completed = __atomic_load_n(&p->completed, __ATOMIC_RELAXED);
    out->queued = p->queued;
    out->running = p->running;
    out->size = p->cfg.size;
    pthread_mutex_unlock(&p->mu);
}

void dbpool_free(struct dbpool *p)
{
    if (p == NULL)
        return;
    stop_threads(p);
    /* Every thread is gone: what is left is the loop thread's. Queued jobs never ran. */
    for (struct dbpool_job *j = p->q_head; j != NULL; j = j->next)
        j->cancelled = true;
    if (p->q_head != NULL) {
        if (p->done_tail != NULL)
            p->done_tail->next = p->q_head;
        else
            p->done_head = p->q_head;
        p->done_tail = p->q_tail;
        p->q_head = p->q_tail = NULL;
        p->queued = 0;
    }
    /* A done callback may submit a job of its own (a next step): it completes as cancelled,
     * here too, not after the pool is gone. */
    while (p->done_head != NULL)
        on_done(-1, 0, p);
    event_free(p->done_ev);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p);
}
