/*
 * The route table of the admin API: every (method, path) the server answers, with the
 * permission it needs, its body kind, its flags and its handler. Data only: the daemon hands it
 * to api_server_new; matching is router.c, the permission check policy.c. openapi.yaml
 * describes the same routes; tests/unit/test_routes.c fails when the two differ.
 */
#include "routes.h"

#include "handlers.h"
#include "http.h"

/* ---- the table ---------------------------------------------------------------------------- */

#define TODO api_handler_not_implemented

/* The query parameters of the routes that take any (http.h: the dispatcher refuses every other
 * name; the handler checks the values). openapi.yaml documents each one as `in: query`. */
static const char *const q_page[] = {"after", "limit", NULL}; /* paging: a cursor, a page size */
static const char *const q_exposure[] = {"limit", NULL};      /* the batches listed */
static const char *const q_batch[] = {"expire", "level", "import", NULL};
static const char *const q_batches[] = {"state", "after", "limit", NULL};
static const char *const q_audit[] = {"sdkappid", "action", "actor", "since",
                                      "until",    "after",  "limit", NULL};

/* Keep in the order of openapi.yaml.
 * API_ROUTE_OFFLOAD: the handler runs on a database thread (the daemon's offload hook), its reply
 * made on the loop thread; every route that reads the database, with a JSON body or none. Not
 * offloaded: /healthz (no database: it answers while the pool is saturated), /v1/tokens/self
 * (the token check already read all it says), the dashboard (files in memory), and signing and
 * verifying (their handlers use the pool themselves; the batch endpoint reads a raw body and
 * streams, and so does the re-issue, a batch whose input the database gives), and /metrics
 * (it reads the loop's own counters; its one database read it makes on the pool itself), and
 * the REST gateway (its calls wait on Tencent from the loop).
 * API_ROUTE_METRIC_SIGN, _VERIFY: counted by app in the metrics.
 * API_ROUTE_IDEMPOTENT: takes an Idempotency-Key (openapi.yaml, "Idempotency"): the POSTs that
 * create or change apps and keys, and no other (a kept reply must hold no secret, and a read
 * such as POST /v1/audit/verify must be answered from the data of now).
 * The last member is the route's query list (NULL: it takes no query parameter). */
const struct api_route api_routes[] = {
    {EVHTTP_REQ_GET, "/healthz", "getHealth", PERM_PUBLIC, API_BODY_NONE, 0, handle_healthz, NULL},
    {EVHTTP_REQ_GET, "/readyz", "getReady", PERM_PUBLIC, API_BODY_NONE, API_ROUTE_OFFLOAD,
     handle_readyz, NULL},

    {EVHTTP_REQ_POST, "/v1/apps", "createApp", PERM_APPS_WRITE, API_BODY_JSON,
     API_ROUTE_OFFLOAD | API_ROUTE_IDEMPOTENT, handle_app_create, NULL},
    {EVHTTP_REQ_GET, "/v1/apps", "listApps", PERM_APPS_READ, API_BODY_NONE, API_ROUTE_OFFLOAD,
     handle_app_list, q_page},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}", "getApp", PERM_APPS_READ, API_BODY_NONE,
     API_ROUTE_OFFLOAD, handle_app_get, NULL},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}", "updateApp", PERM_APPS_WRITE, API_BODY_JSON,
     API_ROUTE_OFFLOAD, handle_app_update, NULL},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/limits", "getAppLimits", PERM_APPS_READ, API_BODY_NONE,
     API_ROUTE_OFFLOAD, handle_app_limits_get, NULL},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}/limits", "updateAppLimits", PERM_APPS_WRITE,
     API_BODY_JSON, API_ROUTE_OFFLOAD, handle_app_limits_update, NULL},

    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys", "addKey", PERM_KEYS_WRITE, API_BODY_JSON,
     API_ROUTE_OFFLOAD | API_ROUTE_IDEMPOTENT, handle_key_add, NULL},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/keys", "listKeys", PERM_KEYS_READ, API_BODY_NONE,
     API_ROUTE_OFFLOAD, handle_key_list, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/rotate", "rotateKey", PERM_KEYS_WRITE,
     API_BODY_JSON, API_ROUTE_OFFLOAD | API_ROUTE_IDEMPOTENT, handle_key_rotate, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/reissue", "reissueKey", PERM_SIGN, API_BODY_JSON, 0,
     handle_key_reissue, NULL},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}/keys/{version}", "updateKey", PERM_KEYS_WRITE,
     API_BODY_JSON, API_ROUTE_OFFLOAD, handle_key_update, NULL},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/keys/{version}/exposure", "getKeyExposure",
     PERM_KEYS_READ, API_BODY_NONE, API_ROUTE_OFFLOAD, handle_key_exposure, q_exposure},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/disable", "disableKey", PERM_KEYS_WRITE,
     API_BODY_JSON_OPTIONAL, API_ROUTE_OFFLOAD | API_ROUTE_IDEMPOTENT, handle_key_disable, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/enable", "enableKey", PERM_KEYS_WRITE,
     API_BODY_JSON_OPTIONAL, API_ROUTE_OFFLOAD | API_ROUTE_IDEMPOTENT, handle_key_enable, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/destroy", "destroyKey", PERM_KEYS_WRITE,
     API_BODY_JSON, API_ROUTE_OFFLOAD | API_ROUTE_IDEMPOTENT, handle_key_destroy, NULL},

    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/usersigs", "signUserSig", PERM_SIGN, API_BODY_JSON,
     API_ROUTE_METRIC_SIGN, handle_usersig_sign, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/usersigs/batch", "signUserSigBatch", PERM_SIGN,
     API_BODY_RAW, 0, handle_usersig_batch, q_batch},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/usersigs/batches", "listBatches", PERM_AUDIT_READ,
     API_BODY_NONE, API_ROUTE_OFFLOAD, handle_batch_list, q_batches},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/tencent/{servicename}/{command}", "callTencent",
     PERM_TENCENT_REST, API_BODY_JSON, 0, handle_tencent_call, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/accounts/import", "importAccounts", PERM_TENCENT_REST,
     API_BODY_RAW, 0, handle_accounts_import, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/accounts/check", "checkAccounts", PERM_TENCENT_REST,
     API_BODY_RAW, 0, handle_accounts_check, NULL},
    {EVHTTP_REQ_POST, "/v1/usersigs/verify", "verifyUserSig", PERM_VERIFY, API_BODY_JSON,
     API_ROUTE_METRIC_VERIFY, handle_usersig_verify, NULL},

    {EVHTTP_REQ_GET, "/v1/audit", "listAuditEvents", PERM_AUDIT_READ, API_BODY_NONE,
     API_ROUTE_OFFLOAD, handle_audit_list, q_audit},
    {EVHTTP_REQ_GET, "/v1/audit/verify", "verifyAuditChain", PERM_AUDIT_READ, API_BODY_NONE,
     API_ROUTE_OFFLOAD, handle_audit_verify, NULL},
    {EVHTTP_REQ_POST, "/v1/audit/verify", "verifyAuditCheckpoint", PERM_AUDIT_READ, API_BODY_JSON,
     API_ROUTE_OFFLOAD, handle_audit_verify_checkpoint, NULL},
    {EVHTTP_REQ_GET, "/v1/audit/checkpoints", "listAuditCheckpoints", PERM_AUDIT_READ,
     API_BODY_NONE, API_ROUTE_OFFLOAD, handle_audit_checkpoint_list, q_page},
    {EVHTTP_REQ_GET, "/v1/audit/checkpoints/key", "getAuditCheckpointKey", PERM_AUDIT_READ,
     API_BODY_NONE, API_ROUTE_OFFLOAD, handle_audit_checkpoint_key, NULL},

    {EVHTTP_REQ_POST, "/v1/tokens", "createToken", PERM_TOKENS, API_BODY_JSON,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_token_create, NULL},
    {EVHTTP_REQ_GET, "/v1/tokens", "listTokens", PERM_TOKENS, API_BODY_NONE,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_token_list, NULL},
    {EVHTTP_REQ_DELETE, "/v1/tokens/{id}", "revokeToken", PERM_TOKENS, API_BODY_NONE,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_token_revoke, NULL},
    {EVHTTP_REQ_PATCH, "/v1/tokens/{id}", "updateToken", PERM_TOKENS, API_BODY_JSON,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_token_update, NULL},
    {EVHTTP_REQ_GET, "/v1/tokens/self", "getTokenSelf", PERM_SELF, API_BODY_NONE, 0,
     handle_token_self, NULL},

    {EVHTTP_REQ_POST, "/v1/webhooks", "createWebhook", PERM_WEBHOOKS, API_BODY_JSON,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_create, NULL},
    {EVHTTP_REQ_GET, "/v1/webhooks", "listWebhooks", PERM_WEBHOOKS, API_BODY_NONE,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_list, NULL},
    {EVHTTP_REQ_GET, "/v1/webhooks/{id}", "getWebhook", PERM_WEBHOOKS, API_BODY_NONE,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_get, NULL},
    {EVHTTP_REQ_DELETE, "/v1/webhooks/{id}", "deleteWebhook", PERM_WEBHOOKS, API_BODY_NONE,
     API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_delete, NULL},
    {EVHTTP_REQ_GET, "/v1/webhooks/{id}/deliveries", "listWebhookDeliveries", PERM_WEBHOOKS,
     API_BODY_NONE, API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_deliveries, q_page},
    {EVHTTP_REQ_GET, "/v1/webhook-deliveries/{id}", "getWebhookDelivery", PERM_WEBHOOKS,
     API_BODY_NONE, API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_delivery, NULL},
    {EVHTTP_REQ_POST, "/v1/webhook-deliveries/{id}/resend", "resendWebhookDelivery", PERM_WEBHOOKS,
     API_BODY_NONE, API_ROUTE_ALL_APPS | API_ROUTE_OFFLOAD, handle_webhook_resend, NULL},

    {EVHTTP_REQ_GET, "/metrics", "getMetrics", PERM_METRICS, API_BODY_NONE, API_ROUTE_ALL_APPS,
     handle_metrics, NULL},

    {EVHTTP_REQ_GET, "/ui/{file}", "getDashboardFile", PERM_PUBLIC, API_BODY_NONE, 0,
     handle_ui_file, NULL},
};

const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
