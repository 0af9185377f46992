/*
 * The end of a batch (batch_int.h): recorded on a database thread (the batches row, the key
 * version's sign count, the "usersig.batch.finish" event; kept by the core for a retry when the
 * database is away), then, on the loop, the stream's last line (the summary, or the error) and
 * its end.
 */
#include "batch_int.h"
#include "batches.h"
#include "log.h"
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The end of b as the core records it. */
static void end_of(const struct batch *b, struct batches_end *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->batch_id, sizeof e->batch_id, "%s", b->batch_id);
    e->sdkappid = b->sdkappid;
    e->key_version = b->key_version;
    e->principal = b->principal;
    e->state = b->end_state;
    e->count = b->res.count;
    e->signed_count = b->res.signed_count;
    e->failed_count = b->res.failed_count;
    snprintf(e->sha256, sizeof e->sha256, "%s", b->res.sha256);
    e->admin_refused = b->res.admin_refused;
    e->prefix_refused = b->res.prefix_refused;
    e->quota_refused = b->res.quota_refused;
    if (b->imp != NULL) {
        struct batch_import_counts c;
        batch_import_counts(b->imp, &c);
        e->import = true;
        e->imported = c.imported;
        e->import_failed = b->res.owner_refused; /* the lines written as import_failed */
        e->import_calls = c.calls;
    }
    for (size_t i = 0; i < b->app.n_admin_ids && i < STORE_APP_MAX_ADMIN_IDS; i++)
        if (b->res.admin_refused_ids & (1u << i))
            memcpy(e->refused_ids[e->n_refused_ids++], b->app.admin_ids[i],
                   sizeof e->refused_ids[0]);
}

/* Closes the batch in svc's database (a database thread's, or at a stop the loop's): the row,
 * the key version's sign count, the finish event, in one transaction (batches_finish). false
 * when it could not (rolled back); a batch closed already counts as recorded. */
static bool record_end(struct service *svc, const struct batch *b)
{
    struct batches_end e;
    enum store_rc rc;

    end_of(b, &e);
    rc = batches_finish(svc, batches_current(), &e);
    explicit_bzero(&e.principal, sizeof e.principal);
    if (rc == STORE_NOT_FOUND)
        log_msg(LOG_WARN, b->request_id, "batch %s: closed already (marked by another process)",
                b->batch_id);
    return rc == STORE_OK || rc == STORE_NOT_FOUND;
}

/* An end that could not be recorded, kept by the core and recorded once the database is back;
 * false when it cannot be kept. */
static bool keep_end(const struct batch *b)
{
    struct batches_end e;
    bool kept;

    end_of(b, &e);
    kept = batches_retry(batches_current(), &e);
    explicit_bzero(&e.principal, sizeof e.principal);
    return kept;
}

/* The last line: the summary, or the error that ended the stream (why, with code). */
static int last_line(const struct batch *b, const struct pipeline_result *res, const char *why,
                     const char *code, char *out, size_t cap)
{
    if (why == NULL && b->output == PIPELINE_OUT_CSV)
        return snprintf(out, cap,
                        "#summary,batch_id=%s,count=%" PRIu64 ",signed=%" PRIu64 ",failed=%" PRIu64
                        ",key_version=%" PRIu32 ",sha256=%s\n",
                        b->batch_id, res->count, res->signed_count, res->failed_count,
                        b->key_version, res->sha256);
    if (why == NULL)
        return snprintf(out, cap,
                        "{\"summary\":{\"batch_id\":\"%s\",\"count\":%" PRIu64
                        ",\"signed\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"key_version\":%" PRIu32
                        ",\"sha256\":\"%s\"}}\n",
                        b->batch_id, res->count, res->signed_count, res->failed_count,
                        b->key_version, res->sha256);
    return snprintf(out, cap,
                    b->output == PIPELINE_OUT_CSV
                        ? "#error,code=%s,message=%s after %" PRIu64
                          " lines (batch_id %s, request id %s)\n"
                        : "{\"error\":{\"code\":\"%s\",\"message\":\"%s after %" PRIu64
                          " lines (batch_id %s, request id %s)\"}}\n",
                    code, why, res->count, b->batch_id, b->request_id);
}

/* On a database thread (ctx: its struct service): the end of each batch, in its own
 * transaction. */
static void batch_end_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct batch *b = j->arg;
        b->end_recorded = record_end(ctx, b);
    }
}

/* On the loop, once the end is recorded (or could not be): the last line when the stream ran
 * to its end, then the end of the stream, and b is freed. */
static void batch_end_done(struct dbpool_job *job)
{
    struct batch *b = job->arg;
    const char *state = store_batch_state_name(b->end_state);
    bool complete = b->end_state == STORE_BATCH_COMPLETE, kept = false;
    char line[MSG_BUF];

    if (job->cancelled) {
        /* The database threads are being stopped, and so is the server: its loop answers no
         * more requests, so the end is recorded on the loop's own connection rather than left
         * running. */
        log_msg(LOG_WARN, b->request_id,
                "batch %s: the server is stopping; recording its end on the main connection",
                b->batch_id);
        b->end_recorded = b->svc->st != NULL && record_end(b->svc, b);
    }
    if (b->end_recorded)
        metrics_batch_end(state, b->res.count);
    if (b->end_recorded)
        log_msg(LOG_INFO, b->request_id,
                "batch %s %s: %" PRIu64 " lines, %" PRIu64 " signed, %" PRIu64 " failed",
                b->batch_id, state, b->res.count, b->res.signed_count, b->res.failed_count);
    else if ((kept = keep_end(b)))
        log_msg(LOG_ERROR, b->request_id,
                "batch %s: cannot record its end yet (%s, %" PRIu64
                " lines): it is kept and recorded when the database is back",
                b->batch_id, state, b->res.count);
    else
        log_msg(LOG_ERROR, b->request_id,
                "batch %s: cannot record its end (%s, %" PRIu64 " lines): it stays running",
                b->batch_id, state, b->res.count);
    if (b->r != NULL && b->summary) {
        const char *why = NULL, *code = "internal";
        if (b->cut) {
            code = api_error_code(API_ERR_BAD_REQUEST);
            why = b->end_recorded ? "the request body was cut short (the client stopped sending "
                                    "mid-way, or sent a malformed chunk): its whole lines were "
                                    "answered, and the batch is recorded as aborted"
                                  : "the request body was cut short (the client stopped sending "
                                    "mid-way, or sent a malformed chunk), and the batch's end "
                                    "could not be recorded";
        } else if (!complete)
            why = b->end_recorded ? "the batch failed and is recorded as aborted"
                  : kept          ? "the batch failed; it stays running until its end is recorded, "
                                    "once the database is back"
                                  : "the batch failed; its end could not be recorded";
        else if (!b->end_recorded)
            why = kept ? "the batch could not be recorded as complete yet: it stays running "
                         "until its end is recorded, once the database is back"
                       : "the batch could not be recorded as complete: it stays running";
        int n = last_line(b, &b->res, why, code, line, sizeof line);
        if (!api_request_gone(b->r) && n > 0 && (size_t)n < sizeof line &&
            evbuffer_add(b->chunk, line, (size_t)n) == 0 &&
            api_reply_chunk(b->r, b->chunk, NULL, NULL) != 0)
            evbuffer_drain(b->chunk, evbuffer_get_length(b->chunk));
    }
    if (b->r != NULL)
        api_reply_end(b->r);
    b->r = NULL;
    batch_free(b);
}

/* Records the end of the batch as state with b->res, on a database thread; batch_end_done
 * then ends the stream (with the last line when summary) and frees b. */
void batch_end(struct batch *b, enum store_batch_state state, bool summary)
{
    b->end_state = state;
    b->summary = summary;
    if (b->fetching) {
        b->end_waiting = true; /* reissue_fetch_done records it */
        return;
    }
    b->end.run = batch_end_run;
    b->end.done = batch_end_done;
    b->end.arg = b;
    service_run(b->svc, &b->end);
}
