/*
 * App operations (op_apps.h): creating an app with its audit event, changing one (only what
 * differs, audited as from/to), reading one and listing the apps a principal's scope covers.
 * The rule on a single field's value is the caller's; the rules that need the row are here.
 */
#include "op_apps.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "clock.h"
#include "log.h"
#include "usersig.h"

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

static enum api_error fail_store(char *msg, size_t cap, enum store_rc rc)
{
    return fail(msg, cap, service_store_error(rc, API_ERR_APP_NOT_FOUND), NULL);
}

/* The app's active key version into out (0 when none), and when it became active. */
static enum store_rc active_version(struct service *svc, uint32_t sdkappid,
                                    struct op_apps_view *out)
{
    struct store_key k;
    enum store_rc rc = store_key_get_active(svc->st, sdkappid, STORE_LOCK_NONE, &k);
    out->active_version = rc == STORE_OK ? k.version : 0;
    out->active_activated_at_us = rc == STORE_OK ? k.activated_at_us : 0;
    store_key_clear(&k);
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

static void forget_app(struct service *svc, uint32_t sdkappid)
{
    if (svc->cache != NULL)
        cache_forget_app(svc->cache, sdkappid);
}

static enum api_error expire_order(const struct store_app *a, char *msg, size_t cap)
{
    return fail(msg, cap, API_ERR_BAD_EXPIRE,
                "default_expire (%u) must not exceed max_expire (%u): lower default_expire "
                "or raise max_expire",
                a->default_expire, a->max_expire);
}

/* ---- Tencent's REST API base URL ---- */

static const struct {
    const char *host, *region;
} regions[] = {
    {"console.tim.qq.com", "china"},
    {"adminapisgp.im.qcloud.com", "singapore"},
    {"adminapikr.im.qcloud.com", "korea"},
    {"adminapijpn.im.qcloud.com", "japan"},
    {"adminapiger.im.qcloud.com", "germany"},
    {"adminapiusa.im.qcloud.com", "usa"},
    {"adminapiidn.im.qcloud.com", "indonesia"},
};
#define N_REGIONS (sizeof regions / sizeof regions[0])

#define REGION_HOSTS                                                                               \
    "console.tim.qq.com, adminapisgp.im.qcloud.com, adminapikr.im.qcloud.com, "                    \
    "adminapijpn.im.qcloud.com, adminapiger.im.qcloud.com, adminapiusa.im.qcloud.com, "            \
    "adminapiidn.im.qcloud.com"

const char *op_apps_tencent_region(const char *base_url)
{
    static const char https[] = "https://";
    if (base_url == NULL || strncmp(base_url, https, sizeof https - 1) != 0)
        return NULL;
    for (size_t i = 0; i < N_REGIONS; i++)
        if (strcmp(base_url + sizeof https - 1, regions[i].host) == 0)
            return regions[i].region;
    return NULL;
}

static bool url_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '%' || c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' ||
           c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '=' || c == ':' ||
           c == '/' || c == '[' || c == ']' || (c >= 'A' && c <= 'Z');
}

enum api_error op_apps_base_url(bool allow_insecure, const char *url, char *out, size_t out_cap,
                                char *msg, size_t cap)
{
    char buf[STORE_BASE_URL_MAX + 1];
    size_t len = url != NULL ? strlen(url) : 0;
    bool https = len >= 8 && strncasecmp(url, "https://", 8) == 0;
    bool http = !https && len >= 7 && strncasecmp(url, "http://", 7) == 0;
    const char *rest;

    if (len == 0 || len > STORE_BASE_URL_MAX)
        return fail(msg, cap, API_ERR_INVALID_FIELD,
                    "field \"tencent_base_url\" must be 1 to %d bytes: https:// and one of "
                    "Tencent's REST API hosts (" REGION_HOSTS ")",
                    STORE_BASE_URL_MAX);
    if (!https && !(http && allow_insecure))
        return fail(msg, cap, API_ERR_INVALID_FIELD,
                    "field \"tencent_base_url\" must start with https:// (UserSigs of "
                    "administrator accounts travel to it): use one of https://" REGION_HOSTS);
    memcpy(buf, url, len + 1);
    if (len > 8 && buf[len - 1] == '/')
        buf[--len] = '\0';
    rest = buf + (https ? 8 : 7);
    size_t host_len = strcspn(rest, ":/");
    for (size_t i = 0; rest[i] != '\0'; i++) {
        if (!url_char(rest[i]))
            return fail(msg, cap, API_ERR_INVALID_FIELD,
                        "field \"tencent_base_url\" must be a plain URL: no user info, query, "
                        "fragment, space or control character");
    }
    if (host_len == 0)
        return fail(msg, cap, API_ERR_INVALID_FIELD,
                    "field \"tencent_base_url\" has no host: use one of https://" REGION_HOSTS);
    for (size_t i = 0; i < host_len; i++)
        buf[(size_t)(rest - buf) + i] = (char)tolower((unsigned char)rest[i]);
    buf[0] = 'h', buf[1] = 't', buf[2] = 't', buf[3] = 'p';
    if (https)
        buf[4] = 's';
    if (!allow_insecure && op_apps_tencent_region(buf) == NULL)
        return fail(msg, cap, API_ERR_INVALID_FIELD,
                    "field \"tencent_base_url\" must be https:// and one of Tencent's REST API "
                    "region hosts, without port or path: " REGION_HOSTS);
    if (strlen(buf) >= out_cap)
        return fail(msg, cap, API_ERR_INTERNAL, NULL);
    memcpy(out, buf, strlen(buf) + 1);
    return fail(msg, cap, API_OK, NULL);
}

enum api_error op_apps_create(struct service *svc, const struct principal *p,
                              const struct store_app *in, struct op_apps_view *out, char *msg,
                              size_t cap)
{
    struct store_app app = *in;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    fail(msg, cap, API_OK, NULL);
    if (app.default_expire > app.max_expire)
        return expire_order(&app, msg, cap);
    /* A new app has no administrators yet: PATCH gives them. */
    app.n_admin_ids = 0;
    app.gateway_identifier[0] = '\0';
    if (app.admin_max_expire == 0 || app.admin_max_expire > app.max_expire)
        app.admin_max_expire = app.max_expire < STORE_ADMIN_MAX_EXPIRE_DEFAULT
                                   ? app.max_expire
                                   : STORE_ADMIN_MAX_EXPIRE_DEFAULT;
    snprintf(app.tencent_base_url, sizeof app.tencent_base_url, "%s",
             STORE_TENCENT_BASE_URL_DEFAULT);
    if (!principal_has_app(p, app.sdkappid)) {
        service_audit_refusal(svc, p, "app.create", app.sdkappid, 0, "forbidden", NULL);
        return fail(msg, cap, API_ERR_FORBIDDEN,
                    "this token's app scope does not include sdkappid %u, so it cannot "
                    "create that app",
                    app.sdkappid);
    }
    json_t *details = json_object();
    if (details == NULL || json_object_set_new(details, "name", json_string(app.name)) != 0 ||
        json_object_set_new(details, "default_expire", json_integer(app.default_expire)) != 0 ||
        json_object_set_new(details, "max_expire", json_integer(app.max_expire)) != 0 ||
        json_object_set_new(details, "identifier_policy",
                            json_string(store_id_policy_name(app.identifier_policy))) != 0) {
        json_decref(details);
        return fail(msg, cap, API_ERR_INTERNAL, NULL);
    }
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_app_insert(svc->st, &app);
    if (rc == STORE_CONFLICT && strcmp(store_conflict(svc->st), "sdkappid") == 0) {
        store_rollback(svc->st);
        service_audit_refusal(svc, p, "app.create", app.sdkappid, 0, "app_exists", details);
        return fail(msg, cap, API_ERR_APP_EXISTS,
                    "an app with sdkappid %u exists: change it with PATCH /v1/apps/%u",
                    app.sdkappid, app.sdkappid);
    }
    if (rc == STORE_OK)
        rc = service_audit(svc, p, "app.create", app.sdkappid, 0, "ok", details);
    else
        json_decref(details);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        return fail_store(msg, cap, rc);
    }
    forget_app(svc, app.sdkappid);
    out->app = app;
    out->active_version = 0;
    return API_OK;
}

/* Adds {"from": old, "to": new} under name to changed. 0, or -1 when out of memory. */
static int change_int(json_t *changed, const char *name, uint32_t from, uint32_t to)
{
    json_t *c = json_object();
    bool ok = c != NULL && json_object_set_new(c, "from", json_integer(from)) == 0 &&
              json_object_set_new(c, "to", json_integer(to)) == 0;
    if (!ok) {
        json_decref(c);
        return -1;
    }
    return json_object_set_new(changed, name, c);
}

static int change_str(json_t *changed, const char *name, const char *from, const char *to)
{
    json_t *c = json_object();
    bool ok = c != NULL && json_object_set_new(c, "from", json_string(from)) == 0 &&
              json_object_set_new(c, "to", json_string(to)) == 0;
    if (!ok) {
        json_decref(c);
        return -1;
    }
    return json_object_set_new(changed, name, c);
}

static json_t *ids_json(const struct store_app *a)
{
    json_t *l = json_array();
    for (size_t i = 0; l != NULL && i < a->n_admin_ids; i++)
        if (json_array_append_new(l, json_string(a->admin_ids[i])) != 0) {
            json_decref(l);
            l = NULL;
        }
    return l;
}

static bool ids_equal(const struct store_app *a, const struct store_app *b)
{
    if (a->n_admin_ids != b->n_admin_ids)
        return false;
    for (size_t i = 0; i < a->n_admin_ids; i++)
        if (strcmp(a->admin_ids[i], b->admin_ids[i]) != 0)
            return false;
    return true;
}

/* A string or, when empty, null (gateway_identifier). */
static json_t *str_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

static int change_json(json_t *changed, const char *name, json_t *from, json_t *to)
{
    json_t *c = json_object();
    bool ok = c != NULL && from != NULL && to != NULL &&
              json_object_set_new(c, "from", from) == 0 && json_object_set_new(c, "to", to) == 0;
    if (!ok) {
        if (c == NULL || json_object_get(c, "from") == NULL)
            json_decref(from);
        if (c == NULL || json_object_get(c, "to") == NULL)
            json_decref(to);
        json_decref(c);
        return -1;
    }
    return json_object_set_new(changed, name, c);
}

/* {"changed": {field: {"from", "to"}}} for the fields of set whose value differs; *n_changed
 * says how many. A new json_t, or NULL when out of memory. */
static json_t *app_changes(const struct store_app *old, const struct store_app *new_, unsigned set,
                           int *n_changed)
{
    json_t *details = json_object(), *changed = json_object();
    int rc = details != NULL && changed != NULL ? 0 : -1;
    *n_changed = 0;
    if (rc == 0 && (set & STORE_APP_SET_NAME) && strcmp(old->name, new_->name) != 0) {
        rc = change_str(changed, "name", old->name, new_->name);
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_DEFAULT_EXPIRE) &&
        old->default_expire != new_->default_expire) {
        rc = change_int(changed, "default_expire", old->default_expire, new_->default_expire);
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_MAX_EXPIRE) && old->max_expire != new_->max_expire) {
        rc = change_int(changed, "max_expire", old->max_expire, new_->max_expire);
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_ID_POLICY) &&
        old->identifier_policy != new_->identifier_policy) {
        rc = change_str(changed, "identifier_policy", store_id_policy_name(old->identifier_policy),
                        store_id_policy_name(new_->identifier_policy));
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_ADMIN_IDS) && !ids_equal(old, new_)) {
        rc = change_json(changed, "admin_identifiers", ids_json(old), ids_json(new_));
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_ADMIN_MAX_EXPIRE) &&
        old->admin_max_expire != new_->admin_max_expire) {
        rc = change_int(changed, "admin_max_expire", old->admin_max_expire, new_->admin_max_expire);
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_GATEWAY_ID) &&
        strcmp(old->gateway_identifier, new_->gateway_identifier) != 0) {
        rc = change_json(changed, "gateway_identifier", str_or_null(old->gateway_identifier),
                         str_or_null(new_->gateway_identifier));
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_BASE_URL) &&
        strcmp(old->tencent_base_url, new_->tencent_base_url) != 0) {
        rc = change_str(changed, "tencent_base_url", old->tencent_base_url, new_->tencent_base_url);
        ++*n_changed;
    }
    if (rc == 0 && (set & STORE_APP_SET_ROTATE_EVERY) && old->rotate_every != new_->rotate_every) {
        rc = change_json(changed, "rotate_every",
                         old->rotate_every ? json_integer(old->rotate_every) : json_null(),
                         new_->rotate_every ? json_integer(new_->rotate_every) : json_null());
        ++*n_changed;
    }
    if (rc == 0)
        rc = json_object_set(details, "changed", changed);
    json_decref(changed);
    if (rc != 0) {
        json_decref(details);
        return NULL;
    }
    return details;
}

/* The rules of the administrator fields that need the whole row: each identifier a UserID of
 * the app's policy and listed once, admin_max_expire within 1..max_expire, the gateway's
 * identifier one of them. */
static enum api_error admin_rules(const struct store_app *a, char *msg, size_t cap)
{
    for (size_t i = 0; i < a->n_admin_ids; i++) {
        const char *id = a->admin_ids[i];
        if (usersig_identifier_check(id, strlen(id),
                                     (enum usersig_id_policy)a->identifier_policy) != USERSIG_OK)
            return fail(msg, cap, API_ERR_BAD_IDENTIFIER,
                        "admin_identifiers[%zu] is not a valid UserID: 1 to %d bytes of %s (app "
                        "%u's identifier_policy is %s)",
                        i, USERSIG_MAX_IDENTIFIER,
                        a->identifier_policy == STORE_ID_STRICT ? "A-Z a-z 0-9 _ -"
                                                                : "printable ASCII",
                        a->sdkappid, store_id_policy_name(a->identifier_policy));
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->admin_ids[j], id) == 0)
                return fail(msg, cap, API_ERR_INVALID_FIELD,
                            "admin_identifiers lists \"%s\" twice: give each identifier once", id);
    }
    if (a->admin_max_expire < 1 || a->admin_max_expire > a->max_expire)
        return fail(msg, cap, API_ERR_BAD_EXPIRE,
                    "admin_max_expire (%u) must be 1 to max_expire (%u) seconds: lower "
                    "admin_max_expire or raise max_expire",
                    a->admin_max_expire, a->max_expire);
    if (a->gateway_identifier[0] != '\0') {
        bool listed = false;
        for (size_t i = 0; i < a->n_admin_ids && !listed; i++)
            listed = strcmp(a->admin_ids[i], a->gateway_identifier) == 0;
        if (!listed)
            return fail(msg, cap, API_ERR_INVALID_FIELD,
                        "gateway_identifier \"%s\" is not one of admin_identifiers: add it to "
                        "admin_identifiers, or set gateway_identifier to one of them or null",
                        a->gateway_identifier);
    }
    return API_OK;
}

enum api_error op_apps_update(struct service *svc, const struct principal *p,
                              const struct op_apps_update_in *in, struct op_apps_view *out,
                              char *msg, size_t cap)
{
    struct store_app old, app;
    unsigned set = in->set;
    int n_changed = 0;
    json_t *details = NULL;
    enum api_error err;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    fail(msg, cap, API_OK, NULL);
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_app_get(svc->st, in->sdkappid, STORE_LOCK_UPDATE, &old);
    if (rc != STORE_OK)
        goto fail;
    /* The result: what is given over what is there. */
    app = old;
    if (set & STORE_APP_SET_NAME)
        memcpy(app.name, in->values.name, sizeof app.name);
    if (set & STORE_APP_SET_DEFAULT_EXPIRE)
        app.default_expire = in->values.default_expire;
    if (set & STORE_APP_SET_MAX_EXPIRE)
        app.max_expire = in->values.max_expire;
    if (set & STORE_APP_SET_ID_POLICY)
        app.identifier_policy = in->values.identifier_policy;
    if (set & STORE_APP_SET_ADMIN_IDS) {
        app.n_admin_ids = in->values.n_admin_ids <= STORE_APP_MAX_ADMIN_IDS
                              ? in->values.n_admin_ids
                              : STORE_APP_MAX_ADMIN_IDS;
        memcpy(app.admin_ids, in->values.admin_ids, sizeof app.admin_ids);
    }
    if (set & STORE_APP_SET_ADMIN_MAX_EXPIRE)
        app.admin_max_expire = in->values.admin_max_expire;
    if (set & STORE_APP_SET_GATEWAY_ID)
        memcpy(app.gateway_identifier, in->values.gateway_identifier,
               sizeof app.gateway_identifier);
    if (set & STORE_APP_SET_BASE_URL) {
        bool insecure = svc->cfg != NULL && svc->cfg->tencent_allow_insecure_base_url;
        err = op_apps_base_url(insecure, in->values.tencent_base_url, app.tencent_base_url,
                               sizeof app.tencent_base_url, msg, cap);
        if (err != API_OK) {
            store_rollback(svc->st);
            return err;
        }
    }
    if (set & STORE_APP_SET_ROTATE_EVERY)
        app.rotate_every = in->values.rotate_every;
    if (app.default_expire > app.max_expire) {
        store_rollback(svc->st);
        return expire_order(&app, msg, cap);
    }
    /* A lower max_expire takes the administrators' limit down with it, unless one is given. */
    if (app.admin_max_expire > app.max_expire && !(set & STORE_APP_SET_ADMIN_MAX_EXPIRE)) {
        app.admin_max_expire = app.max_expire;
        set |= STORE_APP_SET_ADMIN_MAX_EXPIRE;
    }
    err = admin_rules(&app, msg, cap);
    if (err != API_OK) {
        store_rollback(svc->st);
        return err;
    }
    details = app_changes(&old, &app, set, &n_changed);
    if (details == NULL) {
        store_rollback(svc->st);
        return fail(msg, cap, API_ERR_INTERNAL, NULL);
    }
    if (n_changed > 0) {
        /* Nothing that differs is not a change: no write and no audit event then. */
        if ((set & STORE_APP_SET_ROTATE_EVERY) && old.rotate_every != app.rotate_every)
            rc = store_app_set_rotate_every(svc->st, in->sdkappid, app.rotate_every);
        if (rc == STORE_OK)
            rc = store_app_update(svc->st, &app, set, &app);
        if (rc == STORE_OK) {
            rc = service_audit(svc, p, "app.update", in->sdkappid, 0, "ok", details);
            details = NULL;
        }
    }
    if (rc == STORE_OK)
        rc = active_version(svc, in->sdkappid, out);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK)
        goto fail;
    json_decref(details);
    if (n_changed > 0)
        forget_app(svc, in->sdkappid);
    out->app = app;
    return API_OK;
fail:
    json_decref(details);
    store_rollback(svc->st);
    err = fail_store(msg, cap, rc);
    memset(out, 0, sizeof *out);
    return err;
}

enum api_error op_apps_get(struct service *svc, const struct principal *p, uint32_t sdkappid,
                           struct op_apps_view *out, char *msg, size_t cap)
{
    (void)p; /* the route's scope check covers the one app read */
    memset(out, 0, sizeof *out);
    fail(msg, cap, API_OK, NULL);
    enum store_rc rc = store_app_get(svc->st, sdkappid, STORE_LOCK_NONE, &out->app);
    if (rc == STORE_OK)
        rc = active_version(svc, sdkappid, out);
    if (rc != STORE_OK) {
        memset(out, 0, sizeof *out);
        return fail_store(msg, cap, rc);
    }
    return API_OK;
}

enum api_error op_apps_list(struct service *svc, const struct principal *p,
                            const struct op_apps_list_in *in, struct op_apps_list_out *out,
                            char *msg, size_t cap)
{
    enum store_rc rc = STORE_OK;

    memset(out, 0, sizeof *out);
    fail(msg, cap, API_OK, NULL);
    /* One more than the page tells whether another page follows; each app comes with its active
     * key version, all in one statement. A token scoped to no app at all sees nothing. */
    if (p != NULL && (p->all_apps || p->n_apps > 0))
        rc = store_app_list(svc->st, p->all_apps ? NULL : p->apps, p->all_apps ? 0 : p->n_apps,
                            in->after, in->limit + 1, &out->apps, &out->n);
    if (rc != STORE_OK) {
        out->apps = NULL;
        out->n = 0;
        return fail_store(msg, cap, rc);
    }
    out->more = out->n > in->limit;
    if (out->more)
        out->n = in->limit;
    return API_OK;
}

bool op_apps_past_rotate_every(uint32_t rotate_every, int64_t activated_at_us, int64_t now_us,
                               int64_t *age_s)
{
    *age_s = -1;
    if (activated_at_us == 0)
        return false;
    *age_s = now_us > activated_at_us ? (now_us - activated_at_us) / 1000000 : 0;
    return rotate_every != 0 && *age_s > (int64_t)rotate_every;
}

int op_apps_schedule_json(json_t *o, uint32_t rotate_every, int64_t activated_at_us)
{
    int64_t age;
    bool past = op_apps_past_rotate_every(rotate_every, activated_at_us, clock_realtime_us(), &age);
    bool ok =
        json_object_set_new(o, "rotate_every",
                            rotate_every ? json_integer(rotate_every) : json_null()) == 0 &&
        json_object_set_new(o, "active_key_age", age >= 0 ? json_integer(age) : json_null()) == 0 &&
        json_object_set_new(o, "past_rotate_every",
                            rotate_every && age >= 0 ? json_boolean(past) : json_null()) == 0;
    return ok ? 0 : -1;
}
