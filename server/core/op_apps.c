/*
 * App operations (op_apps.h): creating an app with its audit event, changing one (only what
 * differs, audited as from/to), reading one and listing the apps a principal's scope covers.
 * The rule on a single field's value is the caller's; the rules that need the row are here.
 */
#include "op_apps.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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

/* The app's active key version into *version (0 when none). */
static enum store_rc active_version(struct service *svc, uint32_t sdkappid, uint32_t *version)
{
    struct store_key k;
    enum store_rc rc = store_key_get_active(svc->st, sdkappid, STORE_LOCK_NONE, &k);
    *version = rc == STORE_OK ? k.version : 0;
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
    if (rc == 0)
        rc = json_object_set(details, "changed", changed);
    json_decref(changed);
    if (rc != 0) {
        json_decref(details);
        return NULL;
    }
    return details;
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
    if (app.default_expire > app.max_expire) {
        store_rollback(svc->st);
        return expire_order(&app, msg, cap);
    }
    details = app_changes(&old, &app, set, &n_changed);
    if (details == NULL) {
        store_rollback(svc->st);
        return fail(msg, cap, API_ERR_INTERNAL, NULL);
    }
    if (n_changed > 0) {
        /* Nothing that differs is not a change: no write and no audit event then. */
        rc = store_app_update(svc->st, &app, set, &app);
        if (rc == STORE_OK) {
            rc = service_audit(svc, p, "app.update", in->sdkappid, 0, "ok", details);
            details = NULL;
        }
    }
    if (rc == STORE_OK)
        rc = active_version(svc, in->sdkappid, &out->active_version);
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
        rc = active_version(svc, sdkappid, &out->active_version);
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
