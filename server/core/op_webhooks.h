/*
 * Webhook operations: endpoints created (the URL's rule, the event types, the app; a new
 * HMAC-SHA256 secret sealed under the master key for the endpoint's id and shown once), listed,
 * read and deleted, and their deliveries listed, read with their attempts, and re-sent when
 * failed. Each change is audited (webhook.create, webhook.delete, webhook.resend), the URL in
 * the audit log as host and path only (a query may hold a receiver's credential).
 */
#ifndef OP_WEBHOOKS_H
#define OP_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "keyring.h"
#include "principal.h"
#include "service.h"
#include "store.h"
#include "store_webhook.h"

#ifndef OP_MSG_BUF
#define OP_MSG_BUF 320 /* room for any operation's message */
#endif

#define OP_WEBHOOKS_SECRET_HEX (2 * KEYRING_WEBHOOK_SECRET_BYTES)

struct op_webhooks_create_in {
    const char *url;
    size_t n_events; /* 1..STORE_WEBHOOK_MAX_EVENTS distinct webhooks_types */
    const char *const *events;
    uint32_t sdkappid; /* 0: every app */
};

/* Creates the endpoint; *out the row, secret (OP_WEBHOOKS_SECRET_HEX + 1) its secret in hex,
 * to be shown once and wiped by the caller. INVALID_FIELD (the URL, the events), APP_NOT_FOUND. */
enum api_error op_webhooks_create(struct service *svc, const struct principal *p,
                                  const struct op_webhooks_create_in *in, struct store_webhook *out,
                                  char *secret, char *msg, size_t cap);
/* *out a new array of *n (caller free()s it). */
enum api_error op_webhooks_list(struct service *svc, struct store_webhook **out, size_t *n,
                                char *msg, size_t cap);
enum api_error op_webhooks_get(struct service *svc, int64_t id, struct store_webhook *out,
                               char *msg, size_t cap);
/* *out the endpoint as it was. */
enum api_error op_webhooks_delete(struct service *svc, const struct principal *p, int64_t id,
                                  struct store_webhook *out, char *msg, size_t cap);
/* Endpoint id's deliveries after `after`, at most limit; *more when there are more. */
enum api_error op_webhooks_deliveries(struct service *svc, int64_t id, int64_t after, size_t limit,
                                      struct store_webhook_delivery **out, size_t *n, bool *more,
                                      char *msg, size_t cap);
/* One delivery with its attempts and body (both new: caller free()s them). */
enum api_error op_webhooks_delivery(struct service *svc, int64_t id,
                                    struct store_webhook_delivery *out,
                                    struct store_webhook_attempt **attempts, size_t *n_attempts,
                                    char **body, char *msg, size_t cap);
/* A failed delivery pending again (INVALID_STATE when it is not failed); *out as it now is. */
enum api_error op_webhooks_resend(struct service *svc, const struct principal *p, int64_t id,
                                  struct store_webhook_delivery *out, char *msg, size_t cap);

#endif
