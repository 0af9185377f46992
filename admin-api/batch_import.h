/*
 * A batch's ?import=1 (batch.c; included by nothing else): each identifier imported into Tencent
 * (im_open_login_svc/multiaccount_import, 100 a call, acct_calls.h) before its line goes to the
 * signing pipeline, so that no UserSig is released for an account Tencent does not have. A line
 * whose import failed goes in refused in place (pipeline_items_refuse: import_failed, with the
 * reason and Tencent's code), and is not signed.
 *
 * The lines are taken from the body as the calls go: at most BATCH_IMPORT_CHUNKS chunks of 100
 * lines are held (read, being imported, or imported and waiting for the pipeline), so memory is
 * bounded and a slow Tencent (its rate limit) slows the reading of the body, not the server.
 * Lines the pipeline refuses anyway (not an identifier, bad JSON, an administrator identifier
 * or a prefix the caller may not sign) are not sent to Tencent: they go through as they are.
 * The loop never waits: the calls are tim's.
 */
#ifndef BATCH_IMPORT_H
#define BATCH_IMPORT_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "pipeline.h"
#include "service.h"

#define BATCH_IMPORT_CHUNKS 8 /* chunks of 100 lines held */

struct batch_import;

struct batch_import_config {
    struct service *svc;         /* its gateway makes the calls */
    const struct cache_app *app; /* taken: released by batch_import_free */
    enum pipeline_input input;   /* PIPELINE_IN_TEXT or PIPELINE_IN_NDJSON */
    enum usersig_id_policy policy;
    struct pipeline_rules rules; /* who may sign what (the pipeline's, copied) */
    /* Lines are ready for the pipeline (an import ended): the owner calls
     * pipeline_job_input(). Never called from inside batch_import_fill(). */
    void (*ready)(void *arg);
    void *arg;
};

/* A new import front, or NULL when out of memory (cfg->app is released then too). */
struct batch_import *batch_import_new(const struct batch_import_config *cfg);

/* The input's state, as the fill sees it. */
enum batch_import_input {
    BATCH_IMPORT_OPEN = 0, /* more may come */
    BATCH_IMPORT_END,      /* in holds the last bytes (a last line may lack its LF) */
    BATCH_IMPORT_CUT,      /* the body was cut short: a partial last line is dropped */
};

/* The pipeline's fill through the import: reads whole lines of in (draining it), starts their
 * calls, and adds to items, in input order, the lines whose imports have ended. MORE when items
 * is full, WAIT until ready is called (or more input comes), END once every line of a body at
 * its end is in, ERROR when out of memory. *taken: whether bytes of in were drained. */
enum pipeline_fill batch_import_fill(struct batch_import *bi, struct evbuffer *in,
                                     enum batch_import_input state, struct pipeline_items *items,
                                     bool *taken);

/* The batch ended early (its client left, its job failed): calls in flight are cancelled,
 * retries dropped; ready is not called any more. */
void batch_import_stop(struct batch_import *bi);

struct batch_import_counts {
    uint64_t imported; /* accounts Tencent took (the lines refused as import_failed are the
                        * pipeline's owner_refused) */
    uint64_t calls;    /* multiaccount_import calls made */
};
void batch_import_counts(const struct batch_import *bi, struct batch_import_counts *out);

/* Stops it first. Accepts NULL. */
void batch_import_free(struct batch_import *bi);

#endif
