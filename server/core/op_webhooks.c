/*
 * Webhook operations (op_webhooks.h).
 */
#include "op_webhooks.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "log.h"
#include "outbound.h"
#include "webhooks.h"

__attribute__((format(printf, 4, 5))) static enum api_error
fail(char *msg, size_t cap, enum api_error err, const char *fmt, ...)
{
    if (cap > 0)
        msg[0] = '\0';
    if (fmt != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

static json_t *events_json(const struct store_webhook *w)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < w->n_events; i++)
        if (json_array_append_new(a, json_string(w->events[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

enum api_error op_webhooks_create(struct service *svc, const struct principal *p,
                                  const struct op_webhooks_create_in *in, struct store_webhook *out,
                                  char *secret, char *msg, size_t cap)
{
    char why[256];
    uint8_t raw[KEYRING_WEBHOOK_SECRET_BYTES];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    secret[0] = '\0';
    bool insecure = svc->cfg != NULL && svc->cfg->webhook_allow_insecure_url;
    if (!webhooks_url_ok(in->url, insecure, why, sizeof why))
        return fail(msg, cap, API_ERR_INVALID_FIELD, "%s", why);
    if (in->n_events < 1 || in->n_events > STORE_WEBHOOK_MAX_EVENTS)
        return fail(msg, cap, API_ERR_INVALID_FIELD, "events: 1 to %d event types",
                    STORE_WEBHOOK_MAX_EVENTS);
    for (size_t i = 0; i < in->n_events; i++) {
        if (!webhooks_type_valid(in->events[i]))
            return fail(msg, cap, API_ERR_INVALID_FIELD,
                        "events[%zu]: \"%.64s\" is not an event type (see GET /v1/webhooks or the "
                        "API description for the list)",
                        i, in->events[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->events[i], in->events[j]) == 0)
                return fail(msg, cap, API_ERR_INVALID_FIELD, "events: \"%s\" is listed twice",
                            in->events[i]);
        snprintf(out->events[i], sizeof out->events[i], "%s", in->events[i]);
    }
    out->n_events = in->n_events;
    snprintf(out->url, sizeof out->url, "%s", in->url);
    out->sdkappid = in->sdkappid;
    snprintf(out->created_by, sizeof out->created_by, "%s", p != NULL ? p->name : "usersigd");

    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_webhook_next_id(svc->st, &out->id);
    if (rc == STORE_OK) {
        if (keyring_webhook_secret_new(svc->kr, out->id, raw, &sealed, &sealed_len) != KEYRING_OK ||
            sealed_len != sizeof out->sealed) {
            log_error("webhooks: cannot make a secret");
            rc = STORE_ERROR;
        } else {
            memcpy(out->sealed, sealed, sizeof out->sealed);
        }
    }
    free(sealed);
    if (rc == STORE_OK)
        rc = store_webhook_insert(svc->st, out);
    if (rc == STORE_OK) {
        char where[256];
        outbound_url_redacted(out->url, false, where, sizeof where); /* a path may be a secret */
        json_t *d = json_pack("{s:I, s:s, s:o, s:o}", "webhook_id", (json_int_t)out->id, "url",
                              where, "events", events_json(out), "sdkappid",
                              out->sdkappid ? json_integer(out->sdkappid) : json_null());
        rc = d != NULL ? service_audit(svc, p, "webhook.create", out->sdkappid, 0, "ok", d)
                       : STORE_ERROR;
    }
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        OPENSSL_cleanse(raw, sizeof raw);
        return fail(msg, cap, service_store_error(rc, API_ERR_APP_NOT_FOUND),
                    rc == STORE_NOT_FOUND ? "no app %u: create it first, or leave sdkappid out "
                                            "for every app"
                                          : NULL,
                    in->sdkappid);
    }
    hex_encode(raw, sizeof raw, secret);
    OPENSSL_cleanse(raw, sizeof raw);
    return fail(msg, cap, API_OK, NULL);
}

enum api_error op_webhooks_list(struct service *svc, struct store_webhook **out, size_t *n,
                                char *msg, size_t cap)
{
    enum store_rc rc = store_webhook_list(svc->st, out, n);
    return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
}

enum api_error op_webhooks_get(struct service *svc, int64_t id, struct store_webhook *out,
                               char *msg, size_t cap)
{
    enum store_rc rc = store_webhook_get(svc->st, id, out);
    if (rc == STORE_NOT_FOUND)
        return fail(msg, cap, API_ERR_NOT_FOUND, "no webhook endpoint %lld", (long long)id);
    return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
}

enum api_error op_webhooks_delete(struct service *svc, const struct principal *p, int64_t id,
                                  struct store_webhook *out, char *msg, size_t cap)
{
    enum store_rc rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_webhook_get(svc->st, id, out);
    if (rc == STORE_OK)
        rc = store_webhook_delete(svc->st, id);
    if (rc == STORE_OK) {
        json_t *d = json_pack("{s:I, s:I, s:I}", "webhook_id", (json_int_t)id, "pending",
                              (json_int_t)out->n_pending, "failed", (json_int_t)out->n_failed);
        rc = d != NULL ? service_audit(svc, p, "webhook.delete", out->sdkappid, 0, "ok", d)
                       : STORE_ERROR;
    }
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        if (rc == STORE_NOT_FOUND)
            return fail(msg, cap, API_ERR_NOT_FOUND, "no webhook endpoint %lld", (long long)id);
        return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
    }
    return fail(msg, cap, API_OK, NULL);
}

enum api_error op_webhooks_deliveries(struct service *svc, int64_t id, int64_t after, size_t limit,
                                      struct store_webhook_delivery **out, size_t *n, bool *more,
                                      char *msg, size_t cap)
{
    struct store_webhook w;
    *out = NULL;
    *n = 0;
    *more = false;
    enum store_rc rc = store_webhook_get(svc->st, id, &w);
    if (rc == STORE_OK)
        rc = store_webhook_deliveries(svc->st, id, after, limit + 1, out, n);
    if (rc == STORE_NOT_FOUND)
        return fail(msg, cap, API_ERR_NOT_FOUND, "no webhook endpoint %lld", (long long)id);
    if (rc != STORE_OK)
        return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
    if (*n > limit) {
        *more = true;
        *n = limit;
    }
    return fail(msg, cap, API_OK, NULL);
}

enum api_error op_webhooks_delivery(struct service *svc, int64_t id,
                                    struct store_webhook_delivery *out,
                                    struct store_webhook_attempt **attempts, size_t *n_attempts,
                                    char **body, char *msg, size_t cap)
{
    enum store_rc rc = store_webhook_delivery_get(svc->st, 0, id, out, attempts, n_attempts, body);
    if (rc == STORE_NOT_FOUND)
        return fail(msg, cap, API_ERR_NOT_FOUND, "no webhook delivery %lld", (long long)id);
    return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
}

enum api_error op_webhooks_resend(struct service *svc, const struct principal *p, int64_t id,
                                  struct store_webhook_delivery *out, char *msg, size_t cap)
{
    struct store_webhook_attempt *a = NULL;
    size_t na = 0;
    char *body = NULL;
    enum store_rc rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_webhook_resend(svc->st, 0, id);
    if (rc == STORE_OK)
        rc = store_webhook_delivery_get(svc->st, 0, id, out, &a, &na, &body);
    free(a);
    free(body);
    if (rc == STORE_OK) {
        json_t *d = json_pack("{s:I, s:I, s:I, s:s}", "delivery_id", (json_int_t)id, "webhook_id",
                              (json_int_t)out->webhook_id, "event_id", (json_int_t)out->event_id,
                              "type", out->type);
        rc = d != NULL ? service_audit(svc, p, "webhook.resend", 0, 0, "ok", d) : STORE_ERROR;
    }
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        if (rc == STORE_NOT_FOUND)
            return fail(msg, cap, API_ERR_NOT_FOUND, "no webhook delivery %lld", (long long)id);
        if (rc == STORE_CONFLICT)
            return fail(msg, cap, API_ERR_INVALID_STATE,
                        "delivery %lld is not failed: only a failed delivery can be re-sent "
                        "(a pending one is still being tried)",
                        (long long)id);
        return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
    }
    return fail(msg, cap, API_OK, NULL);
}
