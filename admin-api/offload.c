/*
 * The offload hook (offload.h): one dbpool job per offloaded request, run on a pool thread with
 * that thread's service, done on the loop thread, where the captured reply is replayed.
 */
#include "offload.h"

#include <stdlib.h>

#include "dbpool.h"
#include "service.h"

struct offload_job {
    struct dbpool_job job;
    struct api_request *r;
    void (*handler)(struct api_request *r);
    struct service *svc; /* the loop's: r->ctx again before the replay */
};

/* On a pool thread; ctx is its struct service (service_thread_new). One job at a time
 * (batch 0): each handler has the connection, and its transactions, to itself. */
static void offload_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct offload_job *o = j->arg;
        if (ctx == NULL) { /* a pool made without thread contexts: nothing to run with */
            api_reply_error(o->r, API_ERR_INTERNAL, "no service on the database thread");
            continue;
        }
        o->r->ctx = ctx;
        o->handler(o->r);
    }
}

/* On the loop thread. */
static void offload_done(struct dbpool_job *job)
{
    struct offload_job *o = job->arg;
    struct api_request *r = o->r;

    r->ctx = o->svc;
    if (job->cancelled) /* never ran: the pool is being freed */
        api_reply_error(r, API_ERR_UNAVAILABLE, "the server is stopping; retry");
    free(o);
    api_request_replay(r); /* releases r */
}

void offload_request(void *ctx, struct api_request *r, void (*handler)(struct api_request *r))
{
    struct service *svc = ctx;
    struct offload_job *o;

    if (svc->pool == NULL) {
        handler(r);
        return;
    }
    o = calloc(1, sizeof *o);
    if (o == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    if (api_request_capture(r) != 0) { /* a bug, logged: the request had its reply already */
        free(o);
        return;
    }
    o->r = r;
    o->handler = handler;
    o->svc = svc;
    o->job.run = offload_run;
    o->job.done = offload_done;
    o->job.arg = o;
    dbpool_submit(svc->pool, &o->job);
}
