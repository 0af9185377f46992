/*
 * App operations of the core: create, change, read and list apps. Each takes the calling
 * database thread's struct service, the principal and a plain input, owns its transaction and
 * its audit event ("no audit row, no change": both commit together), evicts the app from the
 * process cache after a change, and answers an enum api_error with a message for the client
 * (msg, "" for the table's default) and a plain output. No JSON reply, no HTTP.
 *
 * These are the admin API's asynchronous boundary: its handlers run on API_ROUTE_OFFLOAD routes,
 * so each operation runs on a database pool thread (svc is that thread's, svc->st its own
 * connection) and may block on PostgreSQL; the reply built from the output leaves on the loop
 * thread. Any other caller (tests, operator commands) runs them on a connection of its own.
 */
#ifndef OP_APPS_H
#define OP_APPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "principal.h"
#include "service.h"
#include "store.h"

#define OP_MSG_BUF 320 /* room for any operation's message */

/* An app as the API shows it. */
struct op_apps_view {
    struct store_app app;
    uint32_t active_version;        /* 0: none */
    int64_t active_activated_at_us; /* when it became active (0: none) */
};

/* Creates in->sdkappid with the values of in (each already within its own rule; default_expire
 * <= max_expire). A principal whose scope does not cover the sdkappid is refused (FORBIDDEN,
 * audited "forbidden"), and so is an existing sdkappid (APP_EXISTS, audited "app_exists"). *out
 * is the app as created. */
enum api_error op_apps_create(struct service *svc, const struct principal *p,
                              const struct store_app *in, struct op_apps_view *out, char *msg,
                              size_t cap) SERVICE_WUR;

/* What PATCH changes: the fields of set (STORE_APP_SET_*) from values, each already within its
 * own rule. */
struct op_apps_update_in {
    uint32_t sdkappid;
    struct store_app values;
    unsigned set;
};

/* Applies in over the app as it is, refusing (not audited: nothing was written) a result whose
 * default_expire exceeds max_expire (BAD_EXPIRE), an admin_max_expire outside 1..max_expire
 * (BAD_EXPIRE; lowering max_expire under it without giving admin_max_expire lowers it too), an
 * administrator identifier that breaks the app's identifier policy (BAD_IDENTIFIER) or is listed
 * twice, a gateway_identifier not among admin_identifiers, or a tencent_base_url outside
 * op_apps_base_url's rule (INVALID_FIELD). values.n_admin_ids is at most
 * STORE_APP_MAX_ADMIN_IDS (the caller refuses more). Only fields that differ are changed and
 * audited ("app.update" with {"changed": {field: {from, to}}}); a change of nothing writes
 * nothing. *out is the app as it now is. */
enum api_error op_apps_update(struct service *svc, const struct principal *p,
                              const struct op_apps_update_in *in, struct op_apps_view *out,
                              char *msg, size_t cap) SERVICE_WUR;

/* The rule of an app's tencent_base_url: "https://" and one of Tencent's REST API region hosts
 * (console.tim.qq.com, adminapisgp.im.qcloud.com, adminapikr.im.qcloud.com,
 * adminapijpn.im.qcloud.com, adminapiger.im.qcloud.com, adminapiusa.im.qcloud.com,
 * adminapiidn.im.qcloud.com), a trailing '/' allowed, the host in any case; with allow_insecure
 * (the tencent_allow_insecure_base_url setting, for tests) any http:// or https:// URL of a host,
 * an optional port and path, loopback included. No user info, query or fragment, at most
 * STORE_BASE_URL_MAX bytes. API_OK with the canonical form in out (cap bytes: lowercase host, no
 * trailing '/'), or INVALID_FIELD with msg saying why. */
enum api_error op_apps_base_url(bool allow_insecure, const char *url, char *out, size_t out_cap,
                                char *msg, size_t cap) SERVICE_WUR;

/* The region name of a base URL's host ("china", "singapore", "korea", "japan", "germany",
 * "usa", "indonesia"), or NULL for another URL (a test stand-in). */
const char *op_apps_tencent_region(const char *base_url);

/* Reads one app and its active version. */
enum api_error op_apps_get(struct service *svc, const struct principal *p, uint32_t sdkappid,
                           struct op_apps_view *out, char *msg, size_t cap) SERVICE_WUR;

struct op_apps_list_in {
    uint32_t after; /* only sdkappids above it; 0: from the first */
    size_t limit;   /* page size, >= 1 */
};
struct op_apps_list_out {
    struct store_app_listed *apps; /* n of them; free() it (also on error: NULL then) */
    size_t n;
    bool more; /* another page follows, after apps[n - 1] */
};

/* A page of the apps p's scope covers (a token scoped to no app sees none). */
enum api_error op_apps_list(struct service *svc, const struct principal *p,
                            const struct op_apps_list_in *in, struct op_apps_list_out *out,
                            char *msg, size_t cap) SERVICE_WUR;

/* The key schedule of an app as the API shows it, set on o: "rotate_every" (seconds or null),
 * "active_key_age" (seconds since the active version's activation, or null without one) and
 * "past_rotate_every" (true once that age is over rotate_every; null without either). 0, or -1
 * when out of memory. */
int op_apps_schedule_json(json_t *o, uint32_t rotate_every, int64_t activated_at_us);
/* The same decision for the metrics: *age_s (-1 without an active version) and the result,
 * true when past rotate_every. */
bool op_apps_past_rotate_every(uint32_t rotate_every, int64_t activated_at_us, int64_t now_us,
                               int64_t *age_s);

#endif
