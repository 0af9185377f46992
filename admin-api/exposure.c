/*
 * Admin API key exposure: GET /v1/apps/{sdkappid}/keys/{version}/exposure. Parses the one query
 * parameter, calls the core's exposure_read (server/core/exposure.h) and builds the one reply.
 */
#include <stdio.h>
#include <time.h>

#include "exposure.h"
#include "handlers.h"

/* "2026-12-02" of a Unix day. */
static json_t *date_json(int64_t day)
{
    char buf[16];
    struct tm tm;
    time_t t = (time_t)(day * 86400);
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return json_string(buf);
}

static json_t *batch_json(const struct store_exposure_batch *x)
{
    const struct store_batch *b = &x->b;
    bool unknown = b->counts_unknown || b->state == STORE_BATCH_RUNNING;
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o}", "batch_id", b->batch_id,
                     "state", store_batch_state_name(b->state), "count",
                     unknown ? json_null() : json_integer((json_int_t)b->signed_count), "expire",
                     b->expire ? json_integer(b->expire) : json_null(), "expire_at",
                     x->expire_at_s ? service_time_json(x->expire_at_s * 1000000) : json_null(),
                     "actor_id", b->actor_id ? json_integer(b->actor_id) : json_null(),
                     "actor_name", b->actor_name, "started_at", service_time_json(b->started_at_us),
                     "finished_at", service_time_json(b->finished_at_us));
}

static json_t *exposure_json(const struct exposure *e)
{
    json_t *days = json_array(), *batches = json_array();
    json_t *o = json_pack(
        "{s:I, s:I, s:s, s:o, s:{s:I, s:I, s:I}}", "sdkappid", (json_int_t)e->key.sdkappid,
        "version", (json_int_t)e->key.version, "state", store_key_state_name(e->key.state), "at",
        service_time_json(e->now_s * 1000000), "live", "single", (json_int_t)e->single, "batch",
        (json_int_t)e->batch, "total", (json_int_t)(e->single + e->batch));
    bool ok = o != NULL && days != NULL && batches != NULL;
    for (size_t i = 0; ok && i < e->n_days; i++)
        ok = json_array_append_new(
                 days,
                 json_pack("{s:o, s:I, s:I, s:I}", "date", date_json(e->days[i].day), "single",
                           (json_int_t)e->days[i].single, "batch", (json_int_t)e->days[i].batch,
                           "total", (json_int_t)(e->days[i].single + e->days[i].batch))) == 0;
    for (size_t i = 0; ok && i < e->n_batches; i++)
        ok = json_array_append_new(batches, batch_json(&e->batches[i])) == 0;
    ok = ok && json_object_set(o, "days", days) == 0 &&
         json_object_set(o, "batches", batches) == 0 &&
         json_object_set_new(o, "batches_more", json_boolean(e->more_batches)) == 0;
    json_decref(days);
    json_decref(batches);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void handle_key_exposure(struct api_request *r)
{
    size_t limit = EXPOSURE_BATCHES_DEFAULT;
    struct exposure e;
    char msg[256];

    if (api_query_limit(r, EXPOSURE_BATCHES_MAX, &limit) != 0)
        return;
    enum api_error err =
        exposure_read(r->ctx, r->sdkappid, r->key_version, limit, &e, msg, sizeof msg);
    if (err != API_OK) {
        if (msg[0] != '\0')
            api_reply_error(r, err, "%s", msg);
        else
            api_reply_error(r, err, NULL);
    } else {
        json_t *o = exposure_json(&e);
        if (o == NULL)
            api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        else
            api_reply_json(r, 200, o);
    }
    exposure_free(&e);
}
