/*
 * Admin API batch manifests: list an app's batch signing jobs (the batches table), running and
 * interrupted ones included, so a dashboard sees batches that never finished. Paged by an opaque
 * keyset cursor over (started_at, batch_id): "<started_at in Unix microseconds>.<batch_id>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "service.h"

#define BATCH_LIST_DEFAULT_LIMIT 100
#define BATCH_LIST_LIMIT_MAX (STORE_BATCH_PAGE_MAX - 1) /* one more row is read to see the end */
#define BATCH_CURSOR_US_DIGITS 19                       /* INT64_MAX has 19 digits */
#define BATCH_CURSOR_BUF 64 /* 19 digits, '.', 32 hex, NUL; room for any %lld */

/* "<microseconds>.<batch_id>" into f; -1 when s is not such a cursor. */
static int parse_cursor(const char *s, struct store_batch_filter *f)
{
    const char *dot = strchr(s, '.');
    size_t nd = dot != NULL ? (size_t)(dot - s) : 0;
    uint64_t us = 0;

    if (nd == 0 || nd > BATCH_CURSOR_US_DIGITS || (nd > 1 && s[0] == '0') ||
        strlen(dot + 1) != STORE_BATCH_ID_LEN)
        return -1;
    for (size_t i = 0; i < nd; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        us = us * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit 64 bits */
    }
    if (us > INT64_MAX)
        return -1;
    for (const char *p = dot + 1; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return -1;
    f->after_started_us = (int64_t)us;
    f->after_batch_id = dot + 1;
    return 0;
}

/* Reads the query into f (limit is what the client asked for); replies 400 and returns -1 when
 * a parameter is wrong. */
static int parse_filter(struct api_request *r, struct store_batch_filter *f)
{
    const char *state = api_query(r, "state");
    const char *after = api_query(r, "after");

    memset(f, 0, sizeof *f);
    f->sdkappid = r->sdkappid;
    f->state = -1;
    f->limit = BATCH_LIST_DEFAULT_LIMIT;
    if (state != NULL) {
        f->state = store_batch_state_parse(state);
        if (f->state < 0) {
            api_reply_error(r, API_ERR_INVALID_PARAM,
                            "state: running, complete, aborted or interrupted");
            return -1;
        }
    }
    if (after != NULL && parse_cursor(after, f) != 0) {
        api_reply_error(r, API_ERR_INVALID_PARAM,
                        "after: the next_after of a previous page (digits, '.', a batch_id)");
        return -1;
    }
    return api_query_limit(r, BATCH_LIST_LIMIT_MAX, &f->limit) != 0 ? -1 : 0;
}

static json_t *int_or_null(int64_t v)
{
    return v != 0 ? json_integer(v) : json_null();
}

/* A count: null when the batch was interrupted with none known. */
static json_t *count_json(const struct store_batch *b, uint64_t v)
{
    return b->counts_unknown ? json_null() : json_integer((json_int_t)v);
}

/* The Batch of openapi.yaml; NULL when out of memory. */
static json_t *batch_json(const struct store_batch *b)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "batch_id", json_string(b->batch_id)) != 0 ||
        json_object_set_new(o, "sdkappid", json_integer(b->sdkappid)) != 0 ||
        json_object_set_new(o, "key_version", json_integer(b->key_version)) != 0 ||
        json_object_set_new(o, "actor_id", int_or_null(b->actor_id)) != 0 ||
        json_object_set_new(o, "actor_name", json_string(b->actor_name)) != 0 ||
        json_object_set_new(o, "state", json_string(store_batch_state_name(b->state))) != 0 ||
        json_object_set_new(o, "count", count_json(b, b->count)) != 0 ||
        json_object_set_new(o, "signed", count_json(b, b->signed_count)) != 0 ||
        json_object_set_new(o, "failed", count_json(b, b->failed_count)) != 0 ||
        json_object_set_new(o, "sha256",
                            b->sha256[0] != '\0' ? json_string(b->sha256) : json_null()) != 0 ||
        json_object_set_new(o, "started_at", service_time_json(b->started_at_us)) != 0 ||
        json_object_set_new(o, "finished_at", service_time_json(b->finished_at_us)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void handle_batch_list(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct store_batch_filter f;
    struct store_app app;
    struct store_batch *rows = NULL;
    json_t *body = NULL, *list = NULL, *next = NULL;
    char cursor[BATCH_CURSOR_BUF];
    size_t n = 0, want;
    enum api_error err = API_ERR_INTERNAL;
    enum store_rc rc;

    if (parse_filter(r, &f) != 0)
        return;
    want = f.limit;
    f.limit = want + 1; /* the extra row says whether a next page exists */
    rc = store_app_get(svc->st, r->sdkappid, STORE_LOCK_NONE, &app);
    if (rc == STORE_OK)
        rc = store_batch_list(svc->st, &f, &rows, &n);
    if (rc != STORE_OK) {
        err = service_store_error(rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    body = json_object();
    list = json_array();
    if (body == NULL || list == NULL || json_object_set(body, "batches", list) != 0)
        goto done;
    for (size_t i = 0; i < n && i < want; i++)
        if (json_array_append_new(list, batch_json(&rows[i])) != 0)
            goto done;
    if (n > want) {
        const struct store_batch *last = &rows[want - 1];
        snprintf(cursor, sizeof cursor, "%lld.%s", (long long)last->started_at_us, last->batch_id);
        next = json_string(cursor);
    } else {
        next = json_null();
    }
    if (json_object_set_new(body, "next_after", next) != 0)
        goto done;
    err = API_OK;
    api_reply_json(r, 200, body);
    body = NULL;
done:
    if (err != API_OK)
        api_reply_error(r, err, NULL);
    json_decref(list);
    json_decref(body);
    free(rows);
}
