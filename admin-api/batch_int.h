/*
 * Internals of batch signing, shared by batch.c (POST .../usersigs/batch: the request, the
 * stream, the start and the end) and batch_reissue.c (POST .../keys/reissue: its identifiers
 * from the database, a page at a time); included by nothing else.
 */
#ifndef BATCH_INT_H
#define BATCH_INT_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch_import.h"
#include "batch_json.h"
#include "handlers.h"
#include "http_frame.h"
#include "pipeline.h"
#include "service.h"

#define MSG_BUF 512

/* What the request asks for: from the query, the body (application/json) and then the app. */
struct batch_params {
    int64_t level, expire;
    bool has_expire;
    bool import; /* ?import=1 */
};

/* One batch from its request to its end; freed by batch_end_done once its end is recorded, or
 * at once when it ends before its start was recorded. Its two database jobs run one after the
 * other, never together; neither b nor r goes while one is in flight. */
struct batch {
    struct service *svc;   /* the loop thread's */
    struct api_request *r; /* NULL once the stream is ended, or when no stream started */
    struct principal principal;
    char request_id[API_REQUEST_ID_LEN + 1];
    char batch_id[STORE_BATCH_ID_LEN + 1];
    uint32_t sdkappid, key_version;
    enum pipeline_input input;
    enum pipeline_output output;
    struct pipeline_job *job; /* NULL until the stream starts, and once done or cancelled */
    struct evbuffer *chunk;   /* what goes to api_reply_chunk */
    /* cutting the body into items */
    struct frame_stream *stream; /* a streamed body, or NULL: the whole body is api_request_input */
    bool counted;                /* in svc->batches_running */
    bool skip_line; /* a line over PIPELINE_ITEM_MAX: its rest is dropped up to its LF */
    bool cut;       /* the streamed body was cut short: the batch ends aborted */
    bool item_open; /* a line is being added (text/plain, NDJSON) */
    /* ?import=1: the import front (batch_import.h) the lines go through; capp, the app's cache
     * entry for its calls, until the front takes it */
    bool import;
    struct batch_import *imp;
    const struct cache_app *capp;
    struct batch_json_cut json; /* application/json */
    /* a re-issue (POST .../keys/reissue): the identifiers come from the database, a page at a
     * time, into src; one fetch at a time (fetch), the end waits for it (end_waiting) */
    bool reissue;
    uint32_t from_version;
    int64_t after_s;      /* identifiers whose UserSigs on from_version expire after this */
    struct evbuffer *src; /* lines not yet taken by the pipeline */
    char *page;           /* a page fetched on a database thread */
    size_t page_len, page_n;
    char cursor[STORE_ID_MAX + 1]; /* the last identifier fetched */
    bool src_done, fetching, fetch_failed, end_waiting;
    struct dbpool_job fetch;
    /* the start: batch_start_run on a database thread, then batch_start_done */
    struct dbpool_job start;
    struct batch_params p;
    struct store_app app;
    struct usersig_key *ukey; /* the active key, opened; the pipeline job takes it */
    enum api_error err;
    bool refused;          /* err is a refusal (audited) */
    bool started;          /* the start committed: the batch is to be closed */
    int64_t allowance;     /* lines it may sign under batch_tokens_per_day; -1: no limit */
    int64_t retry_after_s; /* err is a batch_tokens_per_day refusal: its Retry-After */
    char msg[MSG_BUF];
    /* the end: batch_end_run on a database thread, then batch_end_done */
    struct dbpool_job end;
    enum store_batch_state end_state;
    struct pipeline_result res; /* a copy: the pipeline's own goes with its job */
    bool end_recorded;
    bool summary; /* the stream ends with the summary (or the error) line */
};

/* ---- batch.c -------------------------------------------------------------------------------- */

/* A new batch for r, or NULL when out of memory (or r has no body buffer). */
struct batch *batch_new(struct api_request *r, struct evbuffer *in);
void batch_free(struct batch *b);
/* Whether an Accept header asks for CSV. */
bool batch_accepts_csv(const char *accept);
/* Whether one more batch may run in this process (batch_max_running): API_OK, or 429
 * too_many_batches with Retry-After set and msg saying so. */
enum api_error batch_check_slot(struct api_request *r, struct service *svc, char msg[MSG_BUF]);
/* The database start (batch_start_run on a database thread, then batch_start_done). */
void batch_start_run(struct store *st, void *ctx, struct dbpool_job *jobs);
void batch_start_done(struct dbpool_job *job);
/* text/plain and NDJSON lines of in into items, at most limit bytes. */
enum pipeline_fill batch_fill_lines(struct batch *b, struct evbuffer *in, struct pipeline_items *it,
                                    size_t limit);
/* The end recorded (a database job), then the stream ended. */
void batch_end(struct batch *b, enum store_batch_state state, bool summary);

/* ---- batch_reissue.c ------------------------------------------------------------------------ */

/* The pipeline's fill for a re-issue: the page fetched so far, then a wait for the next. */
enum pipeline_fill batch_reissue_fill(struct batch *b, struct pipeline_items *it);
/* In the start's transaction: from_version is a version of the app other than the active one. */
enum api_error batch_reissue_check(struct service *svc, struct batch *b, char msg[MSG_BUF],
                                   bool *refused);
/* On a database thread, before the first page: the identifiers signed lately added. */
void batch_reissue_catch_up(struct service *svc, struct batch *b);
/* On a database thread: the next page after b->cursor into b->page. */
void batch_reissue_fetch_page(struct service *svc, struct batch *b);
/* On the loop: the fetched page into src. */
void batch_reissue_page_take(struct batch *b);

#endif
