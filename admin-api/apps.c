/*
 * Admin API apps: create, list, read and update SDKAppIDs. Each handler parses and checks the
 * request, calls the store inside a transaction with its audit event, and replies once. The
 * rules on names and expiries are checked here, before the database's CHECKs would refuse them.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "service.h"

#define APP_SDKAPPID_MAX 4294967295LL
#define APP_PAGE_DEFAULT 100
#define APP_PAGE_MAX 1000

/* UTF-8 characters of s (jansson has checked that it is valid UTF-8). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* The App object of openapi.yaml; active_version 0 is null. Returns a new json_t (caller
 * json_decref()s it) or NULL when an allocation fails. */
static json_t *app_json(const struct store_app *a, uint32_t active_version)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    ok = ok && json_object_set_new(o, "sdkappid", json_integer(a->sdkappid)) == 0;
    ok = ok && json_object_set_new(o, "name", json_string(a->name)) == 0;
    ok = ok && json_object_set_new(o, "default_expire", json_integer(a->default_expire)) == 0;
    ok = ok && json_object_set_new(o, "max_expire", json_integer(a->max_expire)) == 0;
    ok = ok && json_object_set_new(o, "identifier_policy",
                                   json_string(store_id_policy_name(a->identifier_policy))) == 0;
    ok =
        ok && json_object_set_new(o, "active_key_version",
                                  active_version ? json_integer(active_version) : json_null()) == 0;
    ok = ok && json_object_set_new(o, "created_at", service_time_json(a->created_at_us)) == 0;
    ok = ok && json_object_set_new(o, "updated_at", service_time_json(a->updated_at_us)) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The app's active key version into *version (0 when none). */
static enum store_rc app_active_version(struct service *svc, uint32_t sdkappid, uint32_t *version)
{
    struct store_key k;
    enum store_rc rc = store_key_get_active(svc->st, sdkappid, STORE_LOCK_NONE, &k);
    *version = rc == STORE_OK ? k.version : 0;
    store_key_clear(&k);
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* The fields an app takes, as given in body (NULL members are absent). */
struct app_input {
    json_t *name, *default_expire, *max_expire, *identifier_policy;
};

/* Checks the optional members each on its own rule and copies those given into a (fields gets
 * their STORE_APP_SET_* bits). On failure replies 400 and returns -1. */
static int app_input_check(struct api_request *r, const struct app_input *in, struct store_app *a,
                           unsigned *fields)
{
    *fields = 0;
    if (in->name != NULL) {
        const char *s = json_string_value(in->name);
        size_t chars = utf8_chars(s);
        if (chars < 1 || chars > STORE_APP_NAME_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"name\" must be 1 to %d characters (it has %zu)",
                            STORE_APP_NAME_MAX, chars);
            return -1;
        }
        snprintf(a->name, sizeof a->name, "%s", s);
        *fields |= STORE_APP_SET_NAME;
    }
    const struct {
        json_t *v;
        const char *name;
        uint32_t *to;
        unsigned bit;
    } expiries[] = {
        {in->default_expire, "default_expire", &a->default_expire, STORE_APP_SET_DEFAULT_EXPIRE},
        {in->max_expire, "max_expire", &a->max_expire, STORE_APP_SET_MAX_EXPIRE},
    };
    for (size_t i = 0; i < sizeof expiries / sizeof expiries[0]; i++) {
        if (expiries[i].v == NULL)
            continue;
        json_int_t x = json_integer_value(expiries[i].v);
        if (x < 1 || x > (json_int_t)USERSIG_MAX_EXPIRE) {
            api_reply_error(r, API_ERR_BAD_EXPIRE,
                            "%s must be from 1 to %u seconds (10 years); got %lld",
                            expiries[i].name, USERSIG_MAX_EXPIRE, (long long)x);
            return -1;
        }
        *expiries[i].to = (uint32_t)x;
        *fields |= expiries[i].bit;
    }
    if (in->identifier_policy != NULL) {
        int p = store_id_policy_parse(json_string_value(in->identifier_policy));
        if (p < 0) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"identifier_policy\" must be \"printable\" or \"strict\"");
            return -1;
        }
        a->identifier_policy = (enum store_id_policy)p;
        *fields |= STORE_APP_SET_ID_POLICY;
    }
    return 0;
}

/* 400 bad_expire when default_expire > max_expire; -1 after replying. */
static int app_expire_order_check(struct api_request *r, const struct store_app *a)
{
    if (a->default_expire <= a->max_expire)
        return 0;
    api_reply_error(r, API_ERR_BAD_EXPIRE,
                    "default_expire (%u) must not exceed max_expire (%u): lower default_expire "
                    "or raise max_expire",
                    a->default_expire, a->max_expire);
    return -1;
}

static void reply_store_error(struct api_request *r, enum store_rc rc)
{
    api_reply_error(r, service_store_error(rc, API_ERR_APP_NOT_FOUND), NULL);
}

void handle_app_create(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"sdkappid", API_FIELD_INTEGER, API_FIELD_REQUIRED},
        {"name", API_FIELD_STRING, API_FIELD_REQUIRED},
        {"default_expire", API_FIELD_INTEGER, 0},
        {"max_expire", API_FIELD_INTEGER, 0},
        {"identifier_policy", API_FIELD_STRING, 0},
        {NULL, 0, 0},
    };
    struct service *svc = r->ctx;
    struct store_app app = {
        .default_expire = USERSIG_DEFAULT_EXPIRE,
        .max_expire = USERSIG_MAX_EXPIRE,
        .identifier_policy = STORE_ID_PRINTABLE,
    };
    unsigned set;
    enum store_rc rc;

    if (api_require_fields(r, fields) != 0)
        return;
    json_int_t id = json_integer_value(json_object_get(r->body, "sdkappid"));
    if (id < 1 || id > APP_SDKAPPID_MAX) {
        api_reply_error(r, API_ERR_INVALID_FIELD,
                        "field \"sdkappid\" must be an integer from 1 to 4294967295");
        return;
    }
    app.sdkappid = (uint32_t)id;
    struct app_input in = {
        .name = json_object_get(r->body, "name"),
        .default_expire = json_object_get(r->body, "default_expire"),
        .max_expire = json_object_get(r->body, "max_expire"),
        .identifier_policy = json_object_get(r->body, "identifier_policy"),
    };
    if (app_input_check(r, &in, &app, &set) != 0)
        return;
    /* Without a default_expire of its own, an app whose max_expire is under the usual default
     * gets max_expire as its default. */
    if (!(set & STORE_APP_SET_DEFAULT_EXPIRE) && app.default_expire > app.max_expire)
        app.default_expire = app.max_expire;
    if (app_expire_order_check(r, &app) != 0)
        return;
    if (!principal_has_app(r->principal, app.sdkappid)) {
        service_audit_refusal(svc, r->principal, "app.create", app.sdkappid, 0, "forbidden", NULL);
        api_reply_error(r, API_ERR_FORBIDDEN,
                        "this token's app scope does not include sdkappid %u, so it cannot "
                        "create that app",
                        app.sdkappid);
        return;
    }

    json_t *details = json_object();
    if (details == NULL || json_object_set_new(details, "name", json_string(app.name)) != 0 ||
        json_object_set_new(details, "default_expire", json_integer(app.default_expire)) != 0 ||
        json_object_set_new(details, "max_expire", json_integer(app.max_expire)) != 0 ||
        json_object_set_new(details, "identifier_policy",
                            json_string(store_id_policy_name(app.identifier_policy))) != 0) {
        json_decref(details);
        api_reply_error(r, API_ERR_INTERNAL, NULL);
        return;
    }
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_app_insert(svc->st, &app);
    if (rc == STORE_CONFLICT && strcmp(store_conflict(svc->st), "sdkappid") == 0) {
        store_rollback(svc->st);
        service_audit_refusal(svc, r->principal, "app.create", app.sdkappid, 0, "app_exists",
                              details);
        api_reply_error(r, API_ERR_APP_EXISTS,
                        "an app with sdkappid %u exists: change it with PATCH /v1/apps/%u",
                        app.sdkappid, app.sdkappid);
        return;
    }
    if (rc == STORE_OK)
        rc = service_audit(svc, r->principal, "app.create", app.sdkappid, 0, "ok", details);
    else
        json_decref(details);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        reply_store_error(r, rc);
        return;
    }
    api_reply_json(r, 201, app_json(&app, 0));
}

void handle_app_list(struct api_request *r)
{
    static const char *const allowed[] = {"after", "limit", NULL};
    struct service *svc = r->ctx;
    const struct principal *p = r->principal;
    struct store_app_listed *apps = NULL;
    size_t n = 0;
    int64_t after = 0;
    size_t limit = APP_PAGE_DEFAULT;
    json_t *body = NULL, *list = NULL;
    enum store_rc rc = STORE_OK;
    enum api_error err = API_ERR_INTERNAL;
    const char *unknown = api_query_unknown(r, allowed);

    if (unknown != NULL) {
        api_reply_error(r, API_ERR_INVALID_PARAM,
                        "unknown query parameter \"%.64s\" (this route takes: after, limit)",
                        unknown);
        return;
    }
    if (api_query_int64(r, "after", 0, APP_SDKAPPID_MAX, &after) == API_QUERY_INVALID) {
        api_reply_error(r, API_ERR_INVALID_PARAM,
                        "query parameter \"after\" must be an integer from 0 to 4294967295");
        return;
    }
    if (api_query_limit(r, APP_PAGE_MAX, &limit) != 0)
        return;
    /* One more than the page tells whether another page follows; each app comes with its active
     * key version, all in one statement. A token scoped to no app at all sees nothing. */
    if (p != NULL && (p->all_apps || p->n_apps > 0))
        rc = store_app_list(svc->st, p->all_apps ? NULL : p->apps, p->all_apps ? 0 : p->n_apps,
                            (uint32_t)after, limit + 1, &apps, &n);
    if (rc != STORE_OK) {
        err = service_store_error(rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    bool more = n > limit;
    if (more)
        n = limit;
    body = json_object();
    list = json_array();
    if (body == NULL || list == NULL || json_object_set(body, "apps", list) != 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, app_json(&apps[i].app, apps[i].active_version)) != 0)
            goto done;
    if (json_object_set_new(body, "next_after",
                            more ? json_integer(apps[n - 1].app.sdkappid) : json_null()) != 0)
        goto done;
    err = API_OK;
    api_reply_json(r, 200, body);
    body = NULL;
done:
    if (err != API_OK)
        api_reply_error(r, err, NULL);
    json_decref(list);
    json_decref(body);
    free(apps);
}

void handle_app_get(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct store_app app;
    uint32_t active = 0;
    enum store_rc rc = store_app_get(svc->st, r->sdkappid, STORE_LOCK_NONE, &app);

    if (rc == STORE_OK)
        rc = app_active_version(svc, r->sdkappid, &active);
    if (rc != STORE_OK) {
        reply_store_error(r, rc);
        return;
    }
    api_reply_json(r, 200, app_json(&app, active));
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

void handle_app_update(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"name", API_FIELD_STRING, 0},
        {"default_expire", API_FIELD_INTEGER, 0},
        {"max_expire", API_FIELD_INTEGER, 0},
        {"identifier_policy", API_FIELD_STRING, 0},
        {NULL, 0, 0},
    };
    struct service *svc = r->ctx;
    struct store_app old, app;
    unsigned set;
    uint32_t active = 0;
    int n_changed = 0;
    json_t *details = NULL;
    enum store_rc rc;

    if (api_require_fields(r, fields) != 0)
        return;
    if (json_object_size(r->body) == 0) {
        api_reply_error(r, API_ERR_MISSING_FIELD,
                        "give at least one of name, default_expire, max_expire, "
                        "identifier_policy");
        return;
    }
    struct app_input in = {
        .name = json_object_get(r->body, "name"),
        .default_expire = json_object_get(r->body, "default_expire"),
        .max_expire = json_object_get(r->body, "max_expire"),
        .identifier_policy = json_object_get(r->body, "identifier_policy"),
    };
    memset(&app, 0, sizeof app);
    if (app_input_check(r, &in, &app, &set) != 0)
        return;

    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_app_get(svc->st, r->sdkappid, STORE_LOCK_UPDATE, &old);
    if (rc != STORE_OK)
        goto fail;
    /* The result: what is given over what is there. */
    struct store_app given = app;
    app = old;
    if (set & STORE_APP_SET_NAME)
        memcpy(app.name, given.name, sizeof app.name);
    if (set & STORE_APP_SET_DEFAULT_EXPIRE)
        app.default_expire = given.default_expire;
    if (set & STORE_APP_SET_MAX_EXPIRE)
        app.max_expire = given.max_expire;
    if (set & STORE_APP_SET_ID_POLICY)
        app.identifier_policy = given.identifier_policy;
    if (app.default_expire > app.max_expire) {
        store_rollback(svc->st);
        (void)app_expire_order_check(r, &app);
        return;
    }
    details = app_changes(&old, &app, set, &n_changed);
    if (details == NULL) {
        store_rollback(svc->st);
        api_reply_error(r, API_ERR_INTERNAL, NULL);
        return;
    }
    if (n_changed > 0) {
        /* Nothing that differs is not a change: no write and no audit event then. */
        rc = store_app_update(svc->st, &app, set, &app);
        if (rc == STORE_OK) {
            rc = service_audit(svc, r->principal, "app.update", r->sdkappid, 0, "ok", details);
            details = NULL;
        }
    }
    if (rc == STORE_OK)
        rc = app_active_version(svc, r->sdkappid, &active);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK)
        goto fail;
    json_decref(details);
    api_reply_json(r, 200, app_json(&app, active));
    return;
fail:
    json_decref(details);
    store_rollback(svc->st);
    reply_store_error(r, rc);
}
