/*
 * The signing pipeline (pipeline.h): worker threads that sign blocks of a batch, and the jobs
 * that cut a batch into blocks, keep at most max_in_flight of them out, and emit them in input
 * order with a running SHA-256. The pool's one mutex guards the queue of blocks and each job's
 * list of returned blocks; everything else of a job belongs to the event-loop thread. A block's
 * items, and the line each becomes, are pipeline_items.c.
 */
#include "pipeline.h"
#include "pipeline_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hex.h"
#include "log.h"

#define OUT_GUESS 320 /* output bytes per item to start a block's buffer with */

/* ---- blocks and their items ---------------------------------------------------------------- */

struct pipeline_block {
    struct pipeline_job *job;
    struct pipeline_block *next; /* in the pool's queue, a job's returned list, or spares */
    uint64_t seq;
    struct pipeline_items items;
    char *out; /* whole output lines */
    size_t out_len, out_cap;
    uint64_t n_signed, n_failed;
    uint64_t n_admin_refused, n_prefix_refused, n_quota_refused, n_owner_refused;
    uint32_t admin_refused_ids;
    uint64_t first_item; /* the job's index of items.v[0] (set when queued) */
    const char *why;     /* set when signing failed where it should not: the job fails */
};

enum job_phase { JOB_RUNNING = 0, JOB_OVER };

struct pipeline_job {
    struct pipeline *p;
    struct pipeline_job_config cfg; /* read by workers: never changes after pipeline_job_new */
    struct event *ev;               /* made active by workers and by the owner's calls */
    struct pipeline_job *prev, *next;
    /* under p->mu */
    struct pipeline_block *returned;
    /* event-loop thread only */
    enum job_phase phase;
    bool started, in_pump, writable, source_done;
    bool cancelled;                 /* by the owner: no callback any more */
    bool owned;                     /* counted in p->n_running: done not called, not cancelled */
    struct pipeline_block *filling; /* items cut before a PIPELINE_FILL_WAIT, not queued yet */
    size_t n_out;                   /* blocks in the queue or with a worker */
    struct pipeline_block **slots;  /* max_in_flight: signed blocks waiting for their turn */
    struct pipeline_block *spare;
    uint64_t next_seq, next_emit;
    uint64_t n_queued_items; /* items in the blocks queued so far */
    struct pipeline_result res;
    EVP_MD_CTX *sha;
};

struct pipeline {
    struct event_base *base;
    int n_workers, n_started;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    bool stopping;
    struct pipeline_block *q_head, *q_tail;
    uint64_t q_len;
    int n_signing;     /* workers with a block in hand, signing it */
    int n_paused;      /* workers with a block in hand, paused by a reserve (worker_yield) */
    int n_allowed;     /* at most this many at once (pipeline_reserve) */
    int n_peak;        /* the most n_signing was since the last pipeline_reserve */
    int n_paused_peak; /* the most n_paused was since the last pipeline_reserve */
    /* n_allowed < n_workers, read by the workers without the mutex every few tokens */
    atomic_bool reserved;
    /* event-loop thread only */
    struct pipeline_job *jobs;
    uint64_t n_jobs, n_blocks;
    size_t n_running; /* jobs still their owner's (pipeline_running) */
};

static const char *const input_names[] = {"text", "ndjson", "json"};
static const char *const output_names[] = {"ndjson", "csv"};
static const char *const state_names[] = {"complete", "failed", "cancelled"};

const char *pipeline_input_name(enum pipeline_input in)
{
    return (unsigned)in <= PIPELINE_IN_JSON_VALUE ? input_names[in] : "unknown";
}

const char *pipeline_output_name(enum pipeline_output out)
{
    return (unsigned)out <= PIPELINE_OUT_CSV ? output_names[out] : "unknown";
}

const char *pipeline_state_name(enum pipeline_state s)
{
    return (unsigned)s <= PIPELINE_CANCELLED ? state_names[s] : "unknown";
}

/* ---- signing a block (worker threads) ------------------------------------------------------ */

/* A worker checks for a reserve every this many tokens of its block. */
#define YIELD_EVERY 64

/* Called by a worker with a block in hand while a reserve is on: when more workers sign than
 * are allowed, this one pauses, its block kept, until it may go on (or the pool stops). So a
 * reserve takes effect within YIELD_EVERY tokens (well under a millisecond) instead of at the
 * end of the blocks in hand (a few milliseconds each), which is about as long as the single
 * sign it makes room for takes. A paused block is resumed before any new block is taken. */
static void worker_yield(struct pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    if (!p->stopping && p->n_signing > p->n_allowed) {
        p->n_signing--;
        if (++p->n_paused > p->n_paused_peak)
            p->n_paused_peak = p->n_paused;
        while (!p->stopping && p->n_signing >= p->n_allowed)
            pthread_cond_wait(&p->cv, &p->mu);
        p->n_paused--;
        if (++p->n_signing > p->n_peak)
            p->n_peak = p->n_signing;
    }
    pthread_mutex_unlock(&p->mu);
}

static void block_sign(struct pipeline_block *b)
{
    struct pipeline *p = b->job->p;
    const struct pipeline_job_config *cfg = &b->job->cfg;
    struct usersig_signer *signer = NULL;
    char *idbuf = malloc(PIPELINE_ITEM_MAX);

    b->out_len = 0;
    b->n_signed = b->n_failed = 0;
    b->n_admin_refused = b->n_prefix_refused = b->n_quota_refused = b->n_owner_refused = 0;
    b->admin_refused_ids = 0;
    b->why = NULL;
    if (idbuf == NULL || usersig_signer_new(cfg->key, cfg->sdkappid, cfg->level, cfg->policy,
                                            &signer) != USERSIG_OK) {
        b->why = "out of memory making a signer";
        goto out;
    }
    if (b->out_cap < b->items.n * OUT_GUESS + PIPELINE_OUT_LINE_MAX &&
        pipeline_grow(&b->out, &b->out_cap, b->items.n * OUT_GUESS + PIPELINE_OUT_LINE_MAX) != 0) {
        b->why = "out of memory for the output";
        goto out;
    }
    int64_t now_s = clock_realtime_us() / 1000000;
    for (size_t i = 0; i < b->items.n; i++) {
        if (i % YIELD_EVERY == YIELD_EVERY - 1 &&
            atomic_load_explicit(&p->reserved, memory_order_relaxed))
            worker_yield(p);
        const struct item *it = &b->items.v[i];
        bool failed = false;
        enum pipeline_refusal why = PIPELINE_REFUSED_NONE;
        size_t admin_index = 0;

        if (b->out_cap - b->out_len < PIPELINE_OUT_LINE_MAX &&
            pipeline_grow(&b->out, &b->out_cap, b->out_len + PIPELINE_OUT_LINE_MAX) != 0) {
            b->why = "out of memory for the output";
            goto out;
        }
        /* An empty item may come before any byte of the block: items.buf is still NULL. */
        const char *s = it->len > 0 ? b->items.buf + it->off : "";
        if (cfg->max_items > 0 && b->first_item + i >= cfg->max_items) {
            char msg[PIPELINE_MSG_BUF];
            snprintf(msg, sizeof msg,
                     "the batch's allowance of %llu lines under batch_tokens_per_day is used up; "
                     "this line was not signed",
                     (unsigned long long)cfg->max_items);
            char *q = pipeline_item_error_line(cfg, s, it->len, it->too_long, idbuf,
                                               b->out + b->out_len, "batch_quota", msg);
            b->n_failed++;
            b->n_quota_refused++;
            b->out_len = (size_t)(q - b->out);
            continue;
        }
        if (it->ref_len > 0) {
            const char *code = b->items.buf + it->ref_off;
            char *q = pipeline_item_error_line(cfg, s, it->len, it->too_long, idbuf,
                                               b->out + b->out_len, code, code + strlen(code) + 1);
            b->n_failed++;
            b->n_owner_refused++;
            b->out_len = (size_t)(q - b->out);
            continue;
        }
        char *o = pipeline_item_line_why(cfg, signer, now_s, s, it->len, it->too_long, idbuf,
                                         b->out + b->out_len, &failed, &why, &admin_index);
        if (o == NULL) {
            b->why = "the codec failed where it should not";
            goto out;
        }
        if (failed)
            b->n_failed++;
        else
            b->n_signed++;
        if (why == PIPELINE_REFUSED_ADMIN) {
            b->n_admin_refused++;
            b->admin_refused_ids |= 1u << (admin_index % 32);
        } else if (why == PIPELINE_REFUSED_PREFIX) {
            b->n_prefix_refused++;
        }
        b->out_len = (size_t)(o - b->out);
    }
out:
    usersig_signer_free(signer);
    free(idbuf);
}

static void *worker_main(void *arg)
{
    struct pipeline *p = arg;
    /* Below the event loop's priority (Linux: nice is per thread): the loop answers every
     * request and hashes and sends the batches, so it must not queue behind the signing. */
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0 && nice_now + PIPELINE_WORKER_NICE <= 19)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice_now + PIPELINE_WORKER_NICE);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* A paused block (worker_yield) goes on before a new one is taken. */
        while (!p->stopping && (p->q_head == NULL || p->n_signing + p->n_paused >= p->n_allowed))
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        struct pipeline_block *b = p->q_head;
        p->q_head = b->next;
        if (p->q_head == NULL)
            p->q_tail = NULL;
        p->q_len--;
        if (++p->n_signing > p->n_peak)
            p->n_peak = p->n_signing;
        pthread_mutex_unlock(&p->mu);

        block_sign(b);

        /* Under the mutex until event_active has returned: the loop thread frees a job only
         * after taking the mutex and finding none of its blocks out. */
        pthread_mutex_lock(&p->mu);
        p->n_signing--;
        if (p->n_paused > 0) /* its turn: a paused worker may go on */
            pthread_cond_broadcast(&p->cv);
        b->next = b->job->returned;
        b->job->returned = b;
        event_active(b->job->ev, EV_READ, 1);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- jobs (event-loop thread) --------------------------------------------------------------- */

static void block_free(struct pipeline *p, struct pipeline_block *b)
{
    if (b == NULL)
        return;
    free(b->items.buf);
    free(b->items.v);
    free(b->out);
    free(b);
    p->n_blocks--;
}

static struct pipeline_block *block_get(struct pipeline_job *j)
{
    struct pipeline_block *b = j->spare;
    if (b != NULL) {
        j->spare = b->next;
    } else {
        b = calloc(1, sizeof *b);
        if (b == NULL)
            return NULL;
        b->job = j;
        j->p->n_blocks++;
    }
    b->next = NULL;
    b->items.len = b->items.n = 0;
    b->items.open = b->items.oom = false;
    b->out_len = 0;
    b->why = NULL;
    return b;
}

/* Keeps one block (and its buffers) for the next one; frees the others (memory a job holds
 * idle counts once per running job). */
static void block_recycle(struct pipeline_job *j, struct pipeline_block *b)
{
    size_t spares = 0;
    for (struct pipeline_block *s = j->spare; s != NULL; s = s->next)
        spares++;
    if (spares >= 1) {
        block_free(j->p, b);
        return;
    }
    b->next = j->spare;
    j->spare = b;
}

/* Drops the job's queued blocks (a worker has not taken them). */
static void job_dequeue(struct pipeline_job *j)
{
    struct pipeline *p = j->p;
    struct pipeline_block *drop = NULL, **pp;
    pthread_mutex_lock(&p->mu);
    p->q_tail = NULL;
    for (pp = &p->q_head; *pp != NULL;) {
        struct pipeline_block *b = *pp;
        if (b->job == j) {
            *pp = b->next;
            b->next = drop;
            drop = b;
            p->q_len--;
        } else {
            p->q_tail = b;
            pp = &b->next;
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (drop != NULL) {
        struct pipeline_block *b = drop;
        drop = b->next;
        j->n_out--;
        block_free(p, b);
    }
}

/* The job is no longer its owner's: it leaves the running count (once). */
static void job_disown(struct pipeline_job *j)
{
    if (!j->owned)
        return;
    j->owned = false;
    j->p->n_running--;
}

/* How many blocks j may have out now: its max_in_flight, or its share of the pool's 4 x workers
 * when several jobs run, at least 2 (one being signed while the next is cut). */
static size_t job_cap(const struct pipeline_job *j)
{
    size_t running = j->p->n_running > 0 ? j->p->n_running : 1;
    size_t share = 4 * (size_t)j->p->n_workers / running;
    if (share < 2)
        share = 2;
    return share < j->cfg.max_in_flight ? share : j->cfg.max_in_flight;
}

static void job_free(struct pipeline_job *j)
{
    struct pipeline *p = j->p;
    job_disown(j);
    block_free(p, j->filling);
    j->filling = NULL;
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        p->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    p->n_jobs--;
    for (size_t i = 0; j->slots != NULL && i < j->cfg.max_in_flight; i++)
        block_free(p, j->slots[i]);
    while (j->spare != NULL) {
        struct pipeline_block *b = j->spare;
        j->spare = b->next;
        block_free(p, b);
    }
    while (j->returned != NULL) { /* pipeline_free, after the workers stopped */
        struct pipeline_block *b = j->returned;
        j->returned = b->next;
        block_free(p, b);
    }
    free(j->slots);
    if (j->ev != NULL)
        event_free(j->ev);
    EVP_MD_CTX_free(j->sha);
    usersig_key_free(j->cfg.key);
    free(j);
}

/* The job's outcome is decided: nothing more is cut, signed or emitted. Frees what it can now;
 * the rest goes when the workers hand it back. */
static void job_over(struct pipeline_job *j, enum pipeline_state state, const char *why)
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (j->phase == JOB_OVER)
        return;
    j->phase = JOB_OVER;
    job_dequeue(j);
    j->res.state = state;
    j->res.why = why;
    if (EVP_DigestFinal_ex(j->sha, md, &mdlen) != 1 || mdlen != sizeof md) {
        memset(md, 0, sizeof md);
        if (state == PIPELINE_COMPLETE) {
            j->res.state = PIPELINE_FAILED;
            j->res.why = "SHA-256 failed";
        }
    }
    hex_encode(md, sizeof md, j->res.sha256); /* PIPELINE_SHA256_HEX: 64 digits and the NUL */
}

/* Emits the signed blocks whose turn it is, when the owner's output has drained. */
static void job_emit(struct pipeline_job *j)
{
    const size_t m = j->cfg.max_in_flight;
    bool any = false;

    while (j->writable && j->phase == JOB_RUNNING) {
        struct pipeline_block *b = j->slots[j->next_emit % m];
        if (b == NULL || b->seq != j->next_emit)
            break;
        j->slots[j->next_emit % m] = NULL;
        j->next_emit++;
        if (b->why != NULL) {
            log_error("batch signing: %s", b->why);
            job_over(j, PIPELINE_FAILED, b->why);
        } else if (b->out_len > 0 && j->cfg.emit(j->cfg.arg, b->out, b->out_len) != 0) {
            job_over(j, PIPELINE_FAILED, "the output could not be sent");
        } else if (EVP_DigestUpdate(j->sha, b->out, b->out_len) != 1) {
            job_over(j, PIPELINE_FAILED, "SHA-256 failed");
        } else {
            j->res.count += b->n_signed + b->n_failed;
            j->res.signed_count += b->n_signed;
            j->res.failed_count += b->n_failed;
            j->res.admin_refused += b->n_admin_refused;
            j->res.prefix_refused += b->n_prefix_refused;
            j->res.quota_refused += b->n_quota_refused;
            j->res.owner_refused += b->n_owner_refused;
            j->res.admin_refused_ids |= b->admin_refused_ids;
            any = any || b->out_len > 0;
        }
        block_recycle(j, b);
    }
    if (any)
        j->writable = false;
}

/* Queues b for the workers. */
static void job_queue(struct pipeline_job *j, struct pipeline_block *b)
{
    struct pipeline *p = j->p;
    b->seq = j->next_seq++;
    b->first_item = j->n_queued_items;
    j->n_queued_items += b->items.n;
    j->n_out++;
    pthread_mutex_lock(&p->mu);
    if (p->q_tail != NULL)
        p->q_tail->next = b;
    else
        p->q_head = b;
    p->q_tail = b;
    p->q_len++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Cuts more blocks while the output is drained and fewer than the job's cap are out. */
static void job_dispatch(struct pipeline_job *j)
{
    while (j->phase == JOB_RUNNING && j->writable && !j->source_done &&
           j->next_seq - j->next_emit < job_cap(j)) {
        struct pipeline_block *b = j->filling != NULL ? j->filling : block_get(j);
        j->filling = NULL;
        if (b == NULL) {
            job_over(j, PIPELINE_FAILED, "out of memory for a block");
            return;
        }
        enum pipeline_fill rc = j->cfg.fill(j->cfg.arg, &b->items);
        if (j->phase != JOB_RUNNING || rc == PIPELINE_FILL_ERROR || b->items.oom || b->items.open) {
            block_recycle(j, b);
            job_over(j, PIPELINE_FAILED, "the input could not be read");
            return;
        }
        if (rc == PIPELINE_FILL_WAIT) {
            /* The input has no more yet: what was cut is signed now if nothing of the job is
             * out (the workers would wait for it), else kept to fill on. */
            if (b->items.n > 0 && j->next_seq == j->next_emit)
                job_queue(j, b);
            else if (b->items.n > 0)
                j->filling = b;
            else
                block_recycle(j, b);
            return;
        }
        if (rc == PIPELINE_FILL_END)
            j->source_done = true;
        if (b->items.n == 0) {
            block_recycle(j, b);
            if (rc == PIPELINE_FILL_MORE) {
                job_over(j, PIPELINE_FAILED, "the input gave a block of no items");
                return;
            }
            continue;
        }
        job_queue(j, b);
    }
}

static void job_pump(struct pipeline_job *j)
{
    struct pipeline *p = j->p;
    struct pipeline_block *back;

    j->in_pump = true;
    pthread_mutex_lock(&p->mu);
    back = j->returned;
    j->returned = NULL;
    pthread_mutex_unlock(&p->mu);
    while (back != NULL) {
        struct pipeline_block *b = back;
        back = b->next;
        b->next = NULL;
        j->n_out--;
        if (j->phase == JOB_RUNNING)
            j->slots[b->seq % j->cfg.max_in_flight] = b;
        else
            block_free(p, b);
    }
    if (j->phase == JOB_RUNNING && j->started) {
        job_emit(j);
        job_dispatch(j);
        if (j->phase == JOB_RUNNING && j->source_done && j->next_emit == j->next_seq)
            job_over(j, PIPELINE_COMPLETE, NULL);
        if (j->phase == JOB_OVER && !j->cancelled) {
            job_disown(j);
            j->cfg.done(j->cfg.arg, &j->res); /* the last callback of this job */
        }
    }
    j->in_pump = false;
    if (j->phase == JOB_OVER && j->n_out == 0)
        job_free(j);
}

static void job_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_pump(arg);
}

enum pipeline_rc pipeline_job_new(struct pipeline *p, const struct pipeline_job_config *cfg,
                                  struct pipeline_job **out)
{
    struct pipeline_job *j = NULL;
    struct usersig_signer *probe = NULL;
    enum usersig_rc urc;

    *out = NULL;
    if (cfg->fill == NULL || cfg->emit == NULL || cfg->done == NULL || cfg->expire < 1 ||
        cfg->expire > cfg->max_expire || cfg->max_expire > USERSIG_MAX_EXPIRE ||
        (unsigned)cfg->input > PIPELINE_IN_JSON_VALUE || (unsigned)cfg->output > PIPELINE_OUT_CSV) {
        usersig_key_free(cfg->key);
        return PIPELINE_BAD_CONFIG;
    }
    /* What every block will do first, once, so that a bad key or level fails here. */
    urc = usersig_signer_new(cfg->key, cfg->sdkappid, cfg->level, cfg->policy, &probe);
    usersig_signer_free(probe);
    if (urc != USERSIG_OK) {
        usersig_key_free(cfg->key);
        if (urc == USERSIG_NO_MEMORY)
            return PIPELINE_NO_MEMORY;
        if (urc == USERSIG_BAD_KEY || urc == USERSIG_KEY_CANNOT_SIGN)
            return PIPELINE_BAD_KEY;
        return PIPELINE_BAD_CONFIG;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        usersig_key_free(cfg->key);
        return PIPELINE_NO_MEMORY;
    }
    j->p = p;
    j->cfg = *cfg;
    if (j->cfg.max_in_flight == 0)
        j->cfg.max_in_flight = 2 * (size_t)p->n_workers;
    if (j->cfg.max_in_flight > PIPELINE_MAX_IN_FLIGHT)
        j->cfg.max_in_flight = PIPELINE_MAX_IN_FLIGHT;
    j->writable = true;
    j->slots = calloc(j->cfg.max_in_flight, sizeof *j->slots);
    j->ev = event_new(p->base, -1, 0, job_event, j);
    j->sha = EVP_MD_CTX_new();
    j->next = p->jobs;
    if (p->jobs != NULL)
        p->jobs->prev = j;
    p->jobs = j;
    p->n_jobs++;
    j->owned = true;
    p->n_running++;
    if (j->slots == NULL || j->ev == NULL || j->sha == NULL ||
        EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL) != 1) {
        j->phase = JOB_OVER;
        job_free(j);
        return PIPELINE_NO_MEMORY;
    }
    *out = j;
    return PIPELINE_OK;
}

void pipeline_job_start(struct pipeline_job *j)
{
    j->started = true;
    event_active(j->ev, EV_READ, 1);
}

void pipeline_job_drained(struct pipeline_job *j)
{
    if (j->phase != JOB_RUNNING)
        return;
    j->writable = true;
    event_active(j->ev, EV_READ, 1);
}

void pipeline_job_input(struct pipeline_job *j)
{
    if (j->phase == JOB_RUNNING && j->started)
        event_active(j->ev, EV_READ, 1);
}

size_t pipeline_running(const struct pipeline *p)
{
    return p->n_running;
}

void pipeline_job_cancel(struct pipeline_job *j, struct pipeline_result *res)
{
    j->cancelled = true;
    job_disown(j);
    job_over(j, PIPELINE_CANCELLED, NULL);
    if (res != NULL)
        *res = j->res;
    if (!j->in_pump && j->n_out == 0)
        job_free(j);
}

/* ---- the pool ------------------------------------------------------------------------------ */

struct pipeline *pipeline_new(struct event_base *base, int workers, char *err, size_t errlen)
{
    struct pipeline *p;
    int rc;

    if (base == NULL || workers < 1 || workers > PIPELINE_MAX_WORKERS) {
        snprintf(err, errlen, "pipeline: 1 to %d workers are needed", PIPELINE_MAX_WORKERS);
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL || (p->threads = calloc((size_t)workers, sizeof *p->threads)) == NULL) {
        free(p);
        snprintf(err, errlen, "pipeline: out of memory");
        return NULL;
    }
    p->base = base;
    p->n_workers = p->n_allowed = workers;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < workers; i++) {
        rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0) {
            snprintf(err, errlen, "pipeline: cannot start worker thread %d of %d: %s", i + 1,
                     workers, strerror(rc));
            pipeline_free(p);
            return NULL;
        }
        p->n_started++;
    }
    return p;
}

void pipeline_free(struct pipeline *p)
{
    if (p == NULL)
        return;
    for (struct pipeline_job *j = p->jobs, *next; j != NULL; j = next) {
        next = j->next;
        if (j->phase == JOB_RUNNING) {
            job_over(j, PIPELINE_CANCELLED, NULL);
            j->cancelled = true;
            job_disown(j);
            j->cfg.done(j->cfg.arg, &j->res);
        }
    }
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->threads[i], NULL);
    while (p->jobs != NULL)
        job_free(p->jobs);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

void pipeline_reserve(struct pipeline *p, int cores)
{
    int allowed = p->n_workers - (cores > 0 ? cores : 0);
    if (allowed < 1)
        allowed = 1;
    pthread_mutex_lock(&p->mu);
    if (allowed > p->n_allowed)
        pthread_cond_broadcast(&p->cv);
    p->n_allowed = allowed;
    p->n_peak = p->n_signing;
    p->n_paused_peak = p->n_paused;
    atomic_store_explicit(&p->reserved, allowed < p->n_workers, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
}

int pipeline_workers(const struct pipeline *p)
{
    return p->n_workers;
}

void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *out)
{
    out->workers = p->n_workers;
    out->jobs = p->n_jobs;
    out->blocks = p->n_blocks;
    pthread_mutex_lock(&p->mu);
    out->blocks_queued = p->q_len;
    out->signing = p->n_signing;
    out->paused = p->n_paused;
    out->paused_peak = p->n_paused_peak;
    out->allowed = p->n_allowed;
    out->signing_peak = p->n_peak;
    pthread_mutex_unlock(&p->mu);
}
