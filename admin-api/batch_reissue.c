/*
 * Admin API key re-issue: POST /v1/apps/{sdkappid}/keys/reissue, a batch (batch_int.h) whose
 * identifiers are those still live on an old key version, read from the database a page at a
 * time (one fetch at a time, on a database thread) as the pipeline takes them.
 */
#include "batch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- re-issue: the identifiers still live on an old version, a page at a time ------------- */

/* In the start's transaction: from_version is a version of the app other than the active one. */
enum api_error batch_reissue_check(struct service *svc, struct batch *b, char msg[MSG_BUF],
                                   bool *refused)
{
    struct store_key k;
    enum store_rc rc = store_key_get(svc->st, b->sdkappid, b->from_version, &k);
    store_key_clear(&k);
    if (rc == STORE_NOT_FOUND) {
        *refused = true;
        snprintf(msg, MSG_BUF, "app %u has no key version %u", b->sdkappid, b->from_version);
        return API_ERR_KEY_NOT_FOUND;
    }
    if (rc != STORE_OK) {
        snprintf(msg, MSG_BUF, "%s", api_error_info(API_ERR_UNAVAILABLE)->message);
        return API_ERR_UNAVAILABLE;
    }
    if (b->from_version == b->key_version) {
        *refused = true;
        snprintf(msg, MSG_BUF,
                 "from_version %u is app %u's active version: its UserSigs need no re-issue "
                 "(rotate first, then re-issue from the old version)",
                 b->from_version, b->sdkappid);
        return API_ERR_INVALID_FIELD;
    }
    return API_OK;
}

/* On a database thread, before the first page: the identifiers signed since the upkeep's last
 * catch-up (at most a second of signs) added, so that the re-issue misses none. A catch-up
 * that another process holds is waited for, briefly. */
void batch_reissue_catch_up(struct service *svc, struct batch *b)
{
    for (int i = 0; i < 200; i++) {
        size_t added = 0;
        bool busy = false;
        if (store_live_catch_up(svc->st, 100000, &added, &busy) != STORE_OK) {
            b->fetch_failed = true;
            return;
        }
        if (!busy && added < 100000)
            return;
        if (busy) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    log_msg(LOG_WARN, b->request_id,
            "batch %s: the identifiers to re-issue are still being caught up; going on with those "
            "recorded",
            b->batch_id);
}

/* On a database thread: the next page after b->cursor into b->page (src_done when it is the
 * last); fetch_failed when the database failed. */
void batch_reissue_fetch_page(struct service *svc, struct batch *b)
{
    char last[STORE_ID_MAX + 1] = "";
    b->page_len = b->page_n = 0;
    if (b->page == NULL && (b->page = malloc(STORE_LIVE_PAGE_MAX * (STORE_ID_MAX + 1))) == NULL) {
        b->fetch_failed = true;
        return;
    }
    if (store_live_identifiers_page(svc->st, b->sdkappid, b->from_version, b->after_s, b->cursor,
                                    STORE_LIVE_PAGE_MAX, b->page,
                                    STORE_LIVE_PAGE_MAX * (STORE_ID_MAX + 1), &b->page_len,
                                    &b->page_n, last) != STORE_OK) {
        b->fetch_failed = true;
        return;
    }
    if (b->page_n > 0)
        memcpy(b->cursor, last, sizeof b->cursor);
    b->src_done = b->page_n < STORE_LIVE_PAGE_MAX;
}

/* On the loop: the fetched page into src. */
void batch_reissue_page_take(struct batch *b)
{
    if (b->page_len > 0 && evbuffer_add(b->src, b->page, b->page_len) != 0)
        b->fetch_failed = true;
    b->page_len = 0;
}

static void reissue_fetch_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next)
        batch_reissue_fetch_page(ctx, j->arg);
}

static void reissue_fetch_done(struct dbpool_job *job)
{
    struct batch *b = job->arg;
    b->fetching = false;
    if (job->cancelled)
        b->fetch_failed = true;
    else
        batch_reissue_page_take(b);
    if (b->fetch_failed)
        log_msg(LOG_ERROR, b->request_id,
                "batch %s: the next identifiers to re-issue could not "
                "be read",
                b->batch_id);
    if (b->end_waiting) {
        b->end_waiting = false;
        batch_end(b, b->end_state, b->summary);
        return;
    }
    if (b->job != NULL)
        pipeline_job_input(b->job);
}

/* Loop thread: the next page, unless one is on its way. */
static void reissue_fetch_start(struct batch *b)
{
    if (b->fetching)
        return;
    b->fetching = true;
    memset(&b->fetch, 0, sizeof b->fetch);
    b->fetch.run = reissue_fetch_run;
    b->fetch.done = reissue_fetch_done;
    b->fetch.arg = b;
    service_run(b->svc, &b->fetch);
}

/* A re-issue's identifiers: the page fetched so far, then a wait for the next one. While a
 * fetch is out, its thread writes src_done and fetch_failed: they are read only once its done
 * callback has taken the page (else the last page's src_done would end the batch without it). */
enum pipeline_fill batch_reissue_fill(struct batch *b, struct pipeline_items *it)
{
    enum pipeline_fill rc = batch_fill_lines(b, b->src, it, SIZE_MAX);
    if (rc != PIPELINE_FILL_END)
        return rc;
    if (b->fetching)
        return PIPELINE_FILL_WAIT;
    if (b->fetch_failed)
        return PIPELINE_FILL_ERROR;
    if (b->src_done)
        return PIPELINE_FILL_END;
    reissue_fetch_start(b);
    return b->fetch_failed ? PIPELINE_FILL_ERROR : PIPELINE_FILL_WAIT;
}

/* POST /v1/apps/{sdkappid}/keys/reissue: {from_version, expiring_after?, expire?, level?}. The
 * identifiers whose single-sign UserSigs on from_version expire after max(now, expiring_after)
 * signed again with the active version, as one batch (a batches row, its two audit events). */
void handle_key_reissue(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"from_version", API_FIELD_INTEGER, API_FIELD_REQUIRED},
        {"expiring_after", API_FIELD_INTEGER, 0},
        {"expire", API_FIELD_INTEGER, 0},
        {"level", API_FIELD_INTEGER, 0},
        {NULL, 0, 0},
    };
    struct service *svc = r->ctx;
    struct batch_params p = {.level = USERSIG_DEFAULT_LEVEL};
    struct batch *b = NULL;
    char msg[MSG_BUF] = "";
    enum api_error err = API_OK;
    json_t *v;

    if (api_require_fields(r, fields) != 0)
        return;
    json_int_t from = json_integer_value(json_object_get(r->body, "from_version"));
    if (from < 1 || from > INT32_MAX) {
        api_reply_error(r, API_ERR_INVALID_FIELD,
                        "field \"from_version\" must be an integer from 1 to 2147483647");
        return;
    }
    int64_t now = (int64_t)time(NULL), after = now;
    if ((v = json_object_get(r->body, "expiring_after")) != NULL) {
        json_int_t t = json_integer_value(v);
        if (t < 0 || t > 253402300799LL) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"expiring_after\" must be a time in Unix seconds");
            return;
        }
        after = t > now ? t : now;
    }
    if ((v = json_object_get(r->body, "expire")) != NULL) {
        p.expire = json_integer_value(v);
        p.has_expire = true;
    }
    if ((v = json_object_get(r->body, "level")) != NULL) {
        json_int_t l = json_integer_value(v);
        if (l < 0 || l > 9) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"level\" must be a zlib level from 0 to 9");
            return;
        }
        p.level = l;
    }
    if ((b = batch_new(r, api_request_input(r))) == NULL || (b->src = evbuffer_new()) == NULL)
        err = API_ERR_INTERNAL;
    if (err == API_OK && svc->pipeline == NULL) {
        err = API_ERR_UNAVAILABLE;
        snprintf(msg, sizeof msg, "batch signing is not running in this process");
    }
    if (err == API_OK)
        err = batch_check_slot(r, svc, msg);
    if (err != API_OK) {
        api_reply_error(r, err, "%s", msg[0] != '\0' ? msg : api_error_info(err)->message);
        if (b != NULL)
            batch_free(b);
        return;
    }
    b->counted = true;
    svc->batches_running++;
    b->reissue = true;
    b->from_version = (uint32_t)from;
    b->after_s = after;
    b->input = PIPELINE_IN_TEXT;
    b->output =
        batch_accepts_csv(api_request_header(r, "Accept")) ? PIPELINE_OUT_CSV : PIPELINE_OUT_NDJSON;
    b->p = p;
    b->start.run = batch_start_run;
    b->start.done = batch_start_done;
    b->start.arg = b;
    api_request_defer(r);
    service_run(svc, &b->start);
}
