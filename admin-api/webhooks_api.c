/*
 * Admin API webhooks (admin only): endpoints (POST, GET, GET one, DELETE /v1/webhooks), an
 * endpoint's deliveries (GET /v1/webhooks/{id}/deliveries), one delivery with its attempts and
 * body (GET /v1/webhook-deliveries/{id}) and the re-send of a failed one (POST
 * .../deliveries/{id}/resend). The core's op_webhooks.h does the work; the deliverer is
 * server/core/webhooks.c.
 */
#include "handlers.h"
#include "op_webhooks.h"
#include "service.h"
#include "store_webhook.h"
#include "webhooks.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIVERIES_DEFAULT_LIMIT 100

static void reply_op_error(struct api_request *r, enum api_error err, const char *msg)
{
    if (msg[0] != '\0')
        api_reply_error(r, err, "%s", msg);
    else
        api_reply_error(r, err, NULL);
}

static json_t *time_or_null(int64_t us)
{
    return us != 0 ? service_time_json(us) : json_null();
}

static json_t *webhook_json(const struct store_webhook *w)
{
    json_t *events = json_array();
    for (size_t i = 0; events != NULL && i < w->n_events; i++)
        if (json_array_append_new(events, json_string(w->events[i])) != 0) {
            json_decref(events);
            events = NULL;
        }
    if (events == NULL)
        return NULL;
    return json_pack("{s:I, s:s, s:o, s:o, s:o, s:s, s:I, s:I}", "id", (json_int_t)w->id, "url",
                     w->url, "events", events, "sdkappid",
                     w->sdkappid ? json_integer(w->sdkappid) : json_null(), "created_at",
                     service_time_json(w->created_at_us), "created_by", w->created_by, "pending",
                     (json_int_t)w->n_pending, "failed", (json_int_t)w->n_failed);
}

static json_t *delivery_json(const struct store_webhook_delivery *d)
{
    return json_pack("{s:I, s:I, s:I, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o}", "id",
                     (json_int_t)d->id, "webhook_id", (json_int_t)d->webhook_id, "event_id",
                     (json_int_t)d->event_id, "type", d->type, "state",
                     store_delivery_state_name(d->state), "attempts", d->attempts, "next_at",
                     d->state == STORE_DELIVERY_PENDING ? time_or_null(d->next_at_us) : json_null(),
                     "created_at", service_time_json(d->created_at_us), "delivered_at",
                     time_or_null(d->delivered_at_us), "last_status",
                     d->last_status ? json_integer(d->last_status) : json_null(), "last_error",
                     d->last_error[0] != '\0' ? json_string(d->last_error) : json_null());
}

void handle_webhook_create(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"url", API_FIELD_STRING, API_FIELD_REQUIRED},
        {"events", API_FIELD_STRING_ARRAY, API_FIELD_REQUIRED},
        {"sdkappid", API_FIELD_INTEGER, API_FIELD_NULLABLE},
        {NULL, 0, 0},
    };
    const char *events[STORE_WEBHOOK_MAX_EVENTS];
    struct op_webhooks_create_in in = {0};
    struct store_webhook w;
    char secret[OP_WEBHOOKS_SECRET_HEX + 1], msg[OP_MSG_BUF];

    if (api_require_fields(r, fields) != 0)
        return;
    const json_t *ev = json_object_get(r->body, "events");
    const json_t *app = json_object_get(r->body, "sdkappid");
    if (json_array_size(ev) < 1 || json_array_size(ev) > STORE_WEBHOOK_MAX_EVENTS) {
        api_reply_error(r, API_ERR_INVALID_FIELD,
                        "events: give 1 to %d event types, such as \"key.rotated\"",
                        STORE_WEBHOOK_MAX_EVENTS);
        return;
    }
    for (size_t i = 0; i < json_array_size(ev); i++)
        events[i] = json_string_value(json_array_get(ev, i));
    if (app != NULL && !json_is_null(app)) {
        json_int_t v = json_integer_value(app);
        if (v < 1 || v > (json_int_t)UINT32_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "sdkappid: an integer from 1 to 4294967295, or null for every app");
            return;
        }
        in.sdkappid = (uint32_t)v;
    }
    in.url = json_string_value(json_object_get(r->body, "url"));
    in.events = events;
    in.n_events = json_array_size(ev);
    enum api_error err = op_webhooks_create(r->ctx, r->principal, &in, &w, secret, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    json_t *body = webhook_json(&w);
    if (body != NULL && json_object_set_new(body, "secret", json_string(secret)) != 0) {
        json_decref(body);
        body = NULL;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    api_reply_json(r, 201, body);
}

void handle_webhook_list(struct api_request *r)
{
    struct store_webhook *v = NULL;
    size_t n = 0;
    char msg[OP_MSG_BUF];
    enum api_error err = op_webhooks_list(r->ctx, &v, &n, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    json_t *list = json_array(), *types = json_array();
    for (size_t i = 0; list != NULL && i < n; i++)
        if (json_array_append_new(list, webhook_json(&v[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    for (size_t i = 0; types != NULL && i < webhooks_n_types; i++)
        if (json_array_append_new(types, json_string(webhooks_types[i])) != 0) {
            json_decref(types);
            types = NULL;
        }
    free(v);
    json_t *body = list != NULL && types != NULL
                       ? json_pack("{s:o, s:o}", "webhooks", list, "event_types", types)
                       : NULL;
    if (body == NULL && (list == NULL || types == NULL)) {
        json_decref(list);
        json_decref(types);
    }
    api_reply_json(r, 200, body);
}

void handle_webhook_get(struct api_request *r)
{
    struct store_webhook w;
    char msg[OP_MSG_BUF];
    enum api_error err = op_webhooks_get(r->ctx, r->id, &w, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, webhook_json(&w));
}

void handle_webhook_delete(struct api_request *r)
{
    struct store_webhook w;
    char msg[OP_MSG_BUF];
    enum api_error err = op_webhooks_delete(r->ctx, r->principal, r->id, &w, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    json_t *body = webhook_json(&w);
    if (body != NULL && json_object_set_new(body, "deleted", json_true()) != 0) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body);
}

void handle_webhook_deliveries(struct api_request *r)
{
    struct store_webhook_delivery *v = NULL;
    size_t n = 0, limit = DELIVERIES_DEFAULT_LIMIT;
    int64_t after = 0;
    bool more = false;
    char msg[OP_MSG_BUF];

    if (api_query_int64(r, "after", 0, INT64_MAX, &after) == API_QUERY_INVALID) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "after: an integer from 0 (a delivery id)");
        return;
    }
    if (api_query_limit(r, STORE_WEBHOOK_PAGE_MAX - 1, &limit) != 0)
        return;
    enum api_error err =
        op_webhooks_deliveries(r->ctx, r->id, after, limit, &v, &n, &more, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++)
        if (json_array_append_new(list, delivery_json(&v[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    json_t *body = list != NULL ? json_pack("{s:o, s:o}", "deliveries", list, "next_after",
                                            more && n > 0 ? json_integer(v[n - 1].id) : json_null())
                                : NULL;
    free(v);
    api_reply_json(r, 200, body);
}

static void reply_delivery(struct api_request *r, const struct store_webhook_delivery *d,
                           const struct store_webhook_attempt *a, size_t n, const char *text)
{
    json_t *body = delivery_json(d), *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++)
        if (json_array_append_new(
                list,
                json_pack("{s:i, s:o, s:i, s:o, s:o}", "n", a[i].n, "at",
                          service_time_json(a[i].at_us), "duration_ms", a[i].duration_ms, "status",
                          a[i].status ? json_integer(a[i].status) : json_null(), "error",
                          a[i].error[0] != '\0' ? json_string(a[i].error) : json_null())) != 0) {
            json_decref(list);
            list = NULL;
        }
    json_t *sent = text != NULL ? json_loads(text, 0, NULL) : json_null();
    if (body == NULL || list == NULL || sent == NULL ||
        json_object_set_new(body, "attempt_list", list) != 0 ||
        json_object_set_new(body, "body", sent) != 0) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body);
}

void handle_webhook_delivery(struct api_request *r)
{
    struct store_webhook_delivery d;
    struct store_webhook_attempt *a = NULL;
    size_t n = 0;
    char *text = NULL, msg[OP_MSG_BUF];
    enum api_error err = op_webhooks_delivery(r->ctx, r->id, &d, &a, &n, &text, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        reply_delivery(r, &d, a, n, text);
    free(a);
    free(text);
}

void handle_webhook_resend(struct api_request *r)
{
    struct store_webhook_delivery d;
    char msg[OP_MSG_BUF];
    enum api_error err = op_webhooks_resend(r->ctx, r->principal, r->id, &d, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, delivery_json(&d));
}
