/*
 * The handlers of the admin API, one file per resource; routes.c maps routes to them. They
 * call down into the framework (http.h) and the daemon's core; nothing of the framework calls
 * them but through the route table.
 */
#ifndef HANDLERS_H
#define HANDLERS_H

#include "http.h"

/* apps.c */
void handle_app_create(struct api_request *r);
void handle_app_list(struct api_request *r);
void handle_app_get(struct api_request *r);
void handle_app_update(struct api_request *r);

/* keys.c */
void handle_key_add(struct api_request *r);
void handle_key_list(struct api_request *r);
void handle_key_rotate(struct api_request *r);
void handle_key_update(struct api_request *r);
void handle_key_exposure(struct api_request *r);
void handle_key_reissue(struct api_request *r);
void handle_key_disable(struct api_request *r);
void handle_key_enable(struct api_request *r);
void handle_key_destroy(struct api_request *r);

/* usersigs.c */
void handle_usersig_sign(struct api_request *r);
void handle_usersig_verify(struct api_request *r);
void handle_usersig_batch(struct api_request *r); /* batch.c */
void handle_batch_list(struct api_request *r);    /* batch_list.c */

/* tencent_api.c: the REST gateway */
void handle_tencent_call(struct api_request *r);
void handle_accounts_import(struct api_request *r); /* accounts_api.c */
void handle_accounts_check(struct api_request *r);

/* audit_api.c */
void handle_audit_list(struct api_request *r);
void handle_audit_verify(struct api_request *r);
void handle_audit_verify_checkpoint(struct api_request *r);
void handle_audit_checkpoint_list(struct api_request *r);
void handle_audit_checkpoint_key(struct api_request *r);

/* tokens.c */
void handle_token_create(struct api_request *r);
void handle_token_list(struct api_request *r);
void handle_token_revoke(struct api_request *r);
void handle_token_self(struct api_request *r);

/* health.c */
void handle_healthz(struct api_request *r);
void handle_readyz(struct api_request *r);

/* metrics_api.c */
void handle_metrics(struct api_request *r);

/* ui.c: the dashboard's files */
void handle_ui_file(struct api_request *r);

/* limits.c: rate limits of apps and tokens */
void handle_app_limits_get(struct api_request *r);
void handle_app_limits_update(struct api_request *r);
void handle_token_update(struct api_request *r);

/* webhooks_api.c: webhook endpoints and their deliveries */
void handle_webhook_create(struct api_request *r);
void handle_webhook_list(struct api_request *r);
void handle_webhook_get(struct api_request *r);
void handle_webhook_delete(struct api_request *r);
void handle_webhook_deliveries(struct api_request *r);
void handle_webhook_delivery(struct api_request *r);
void handle_webhook_resend(struct api_request *r);

#endif
