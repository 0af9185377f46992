/*
 * Admin API apps: create, list, read and update SDKAppIDs. Each handler parses the request and
 * checks each field on its own rule (names, expiries, policies), calls one operation of the core
 * (op_apps.h: transaction, audit event, cache eviction) and builds the one reply from its output.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "op_apps.h"

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

/* The App object of openapi.yaml; active_version 0 is null, activated_at_us its activation
 * (for the key's age). Returns a new json_t (caller json_decref()s it) or NULL when an
 * allocation fails. */
static json_t *app_json(const struct store_app *a, uint32_t active_version, int64_t activated_at_us)
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
    json_t *ids = ok ? json_array() : NULL;
    for (size_t i = 0; ids != NULL && i < a->n_admin_ids; i++)
        if (json_array_append_new(ids, json_string(a->admin_ids[i])) != 0) {
            json_decref(ids);
            ids = NULL;
        }
    ok = ok && ids != NULL;
    ok = ok && json_object_set_new(o, "admin_identifiers", ids) == 0; /* takes ids */
    ok = ok && json_object_set_new(o, "admin_max_expire", json_integer(a->admin_max_expire)) == 0;
    ok = ok &&
         json_object_set_new(o, "gateway_identifier",
                             a->gateway_identifier[0] != '\0' ? json_string(a->gateway_identifier)
                                                              : json_null()) == 0;
    ok = ok && json_object_set_new(o, "tencent_base_url", json_string(a->tencent_base_url)) == 0;
    const char *region = op_apps_tencent_region(a->tencent_base_url);
    ok = ok && json_object_set_new(o, "tencent_region",
                                   region != NULL ? json_string(region) : json_null()) == 0;
    ok = ok && json_object_set_new(o, "created_at", service_time_json(a->created_at_us)) == 0;
    ok = ok && json_object_set_new(o, "updated_at", service_time_json(a->updated_at_us)) == 0;
    ok = ok && op_apps_schedule_json(o, a->rotate_every, activated_at_us) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The fields an app takes, as given in body (NULL members are absent). */
struct app_input {
    json_t *name, *default_expire, *max_expire, *identifier_policy;
    json_t *admin_identifiers, *admin_max_expire, *gateway_identifier, *tencent_base_url;
    json_t *rotate_every;
};

/* The administrator fields (PATCH only), each on its own rule; the rules that need the whole row
 * (policy, duplicates, the gateway among the list, the base URL's hosts) are the core's
 * (op_apps_update). On failure replies 400 and returns -1. */
static int admin_input_check(struct api_request *r, const struct app_input *in, struct store_app *a,
                             unsigned *fields)
{
    if (in->admin_identifiers != NULL) {
        size_t i, n = json_array_size(in->admin_identifiers);
        json_t *v;
        if (n > STORE_APP_MAX_ADMIN_IDS) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"admin_identifiers\" takes at most %d identifiers (Tencent "
                            "allows %d administrator accounts an app); it has %zu",
                            STORE_APP_MAX_ADMIN_IDS, STORE_APP_MAX_ADMIN_IDS, n);
            return -1;
        }
        json_array_foreach(in->admin_identifiers, i, v)
        {
            size_t len = json_string_length(v);
            if (len < 1 || len > STORE_ID_MAX || memchr(json_string_value(v), '\0', len)) {
                api_reply_error(r, API_ERR_BAD_IDENTIFIER,
                                "admin_identifiers[%zu] must be a UserID of 1 to %d bytes of "
                                "printable ASCII (it has %zu bytes)",
                                i, STORE_ID_MAX, len);
                return -1;
            }
            memcpy(a->admin_ids[i], json_string_value(v), len + 1);
        }
        a->n_admin_ids = n;
        *fields |= STORE_APP_SET_ADMIN_IDS;
    }
    if (in->admin_max_expire != NULL) {
        json_int_t x = json_integer_value(in->admin_max_expire);
        if (x < 1 || x > (json_int_t)USERSIG_MAX_EXPIRE) {
            api_reply_error(r, API_ERR_BAD_EXPIRE,
                            "admin_max_expire must be from 1 second to the app's max_expire; "
                            "got %lld",
                            (long long)x);
            return -1;
        }
        a->admin_max_expire = (uint32_t)x;
        *fields |= STORE_APP_SET_ADMIN_MAX_EXPIRE;
    }
    if (in->gateway_identifier != NULL) {
        size_t len = json_string_length(in->gateway_identifier);
        a->gateway_identifier[0] = '\0';
        if (!json_is_null(in->gateway_identifier)) {
            if (len < 1 || len > STORE_ID_MAX ||
                memchr(json_string_value(in->gateway_identifier), '\0', len)) {
                api_reply_error(r, API_ERR_INVALID_FIELD,
                                "field \"gateway_identifier\" must be one of admin_identifiers "
                                "(1 to %d bytes), or null",
                                STORE_ID_MAX);
                return -1;
            }
            memcpy(a->gateway_identifier, json_string_value(in->gateway_identifier), len + 1);
        }
        *fields |= STORE_APP_SET_GATEWAY_ID;
    }
    if (in->tencent_base_url != NULL) {
        size_t len = json_string_length(in->tencent_base_url);
        if (len < 1 || len > STORE_BASE_URL_MAX ||
            memchr(json_string_value(in->tencent_base_url), '\0', len)) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"tencent_base_url\" must be 1 to %d bytes: https:// and one "
                            "of Tencent's REST API region hosts",
                            STORE_BASE_URL_MAX);
            return -1;
        }
        memcpy(a->tencent_base_url, json_string_value(in->tencent_base_url), len + 1);
        *fields |= STORE_APP_SET_BASE_URL;
    }
    return 0;
}

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
    if (in->rotate_every != NULL) {
        json_int_t x = json_is_null(in->rotate_every) ? 0 : json_integer_value(in->rotate_every);
        if (!json_is_null(in->rotate_every) && (x < 1 || x > (json_int_t)USERSIG_MAX_EXPIRE)) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"rotate_every\" must be from 1 to %u seconds (10 years), or "
                            "null for none; got %lld",
                            USERSIG_MAX_EXPIRE, (long long)x);
            return -1;
        }
        a->rotate_every = (uint32_t)x;
        *fields |= STORE_APP_SET_ROTATE_EVERY;
    }
    return admin_input_check(r, in, a, fields);
}

/* The one error reply of an operation: its message, or the table's default. */
static void reply_op_error(struct api_request *r, enum api_error err, const char *msg)
{
    if (msg[0] != '\0')
        api_reply_error(r, err, "%s", msg);
    else
        api_reply_error(r, err, NULL);
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
    struct store_app app = {
        .default_expire = USERSIG_DEFAULT_EXPIRE,
        .max_expire = USERSIG_MAX_EXPIRE,
        .identifier_policy = STORE_ID_PRINTABLE,
    };
    struct op_apps_view out;
    char msg[OP_MSG_BUF];
    unsigned set;

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
    enum api_error err = op_apps_create(r->ctx, r->principal, &app, &out, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 201, app_json(&out.app, out.active_version, out.active_activated_at_us));
}

void handle_app_list(struct api_request *r)
{
    struct op_apps_list_in in = {.limit = APP_PAGE_DEFAULT};
    struct op_apps_list_out out;
    char msg[OP_MSG_BUF];
    int64_t after = 0;
    json_t *body = NULL, *list = NULL;
    enum api_error err;

    if (api_query_int64(r, "after", 0, APP_SDKAPPID_MAX, &after) == API_QUERY_INVALID) {
        api_reply_error(r, API_ERR_INVALID_PARAM,
                        "query parameter \"after\" must be an integer from 0 to 4294967295");
        return;
    }
    if (api_query_limit(r, APP_PAGE_MAX, &in.limit) != 0)
        return;
    in.after = (uint32_t)after;
    err = op_apps_list(r->ctx, r->principal, &in, &out, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    err = API_ERR_INTERNAL;
    body = json_object();
    list = json_array();
    if (body == NULL || list == NULL || json_object_set(body, "apps", list) != 0)
        goto done;
    for (size_t i = 0; i < out.n; i++)
        if (json_array_append_new(list, app_json(&out.apps[i].app, out.apps[i].active_version,
                                                 out.apps[i].active_activated_at_us)) != 0)
            goto done;
    if (json_object_set_new(body, "next_after",
                            out.more ? json_integer(out.apps[out.n - 1].app.sdkappid)
                                     : json_null()) != 0)
        goto done;
    err = API_OK;
    api_reply_json(r, 200, body);
    body = NULL;
done:
    if (err != API_OK)
        api_reply_error(r, err, NULL);
    json_decref(list);
    json_decref(body);
    free(out.apps);
}

void handle_app_get(struct api_request *r)
{
    struct op_apps_view out;
    char msg[OP_MSG_BUF];
    enum api_error err = op_apps_get(r->ctx, r->principal, r->sdkappid, &out, msg, sizeof msg);

    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, app_json(&out.app, out.active_version, out.active_activated_at_us));
}

void handle_app_update(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"name", API_FIELD_STRING, 0},
        {"default_expire", API_FIELD_INTEGER, 0},
        {"max_expire", API_FIELD_INTEGER, 0},
        {"identifier_policy", API_FIELD_STRING, 0},
        {"admin_identifiers", API_FIELD_STRING_ARRAY, 0},
        {"admin_max_expire", API_FIELD_INTEGER, 0},
        {"gateway_identifier", API_FIELD_STRING, API_FIELD_NULLABLE},
        {"tencent_base_url", API_FIELD_STRING, 0},
        {"rotate_every", API_FIELD_INTEGER, API_FIELD_NULLABLE},
        {NULL, 0, 0},
    };
    struct op_apps_update_in op = {.sdkappid = r->sdkappid};
    struct op_apps_view out;
    char msg[OP_MSG_BUF];

    if (api_require_fields(r, fields) != 0)
        return;
    if (json_object_size(r->body) == 0) {
        api_reply_error(r, API_ERR_MISSING_FIELD,
                        "give at least one of name, default_expire, max_expire, "
                        "identifier_policy, admin_identifiers, admin_max_expire, "
                        "gateway_identifier, tencent_base_url, rotate_every");
        return;
    }
    struct app_input in = {
        .name = json_object_get(r->body, "name"),
        .default_expire = json_object_get(r->body, "default_expire"),
        .max_expire = json_object_get(r->body, "max_expire"),
        .identifier_policy = json_object_get(r->body, "identifier_policy"),
        .admin_identifiers = json_object_get(r->body, "admin_identifiers"),
        .admin_max_expire = json_object_get(r->body, "admin_max_expire"),
        .gateway_identifier = json_object_get(r->body, "gateway_identifier"),
        .tencent_base_url = json_object_get(r->body, "tencent_base_url"),
        .rotate_every = json_object_get(r->body, "rotate_every"),
    };
    if (app_input_check(r, &in, &op.values, &op.set) != 0)
        return;
    enum api_error err = op_apps_update(r->ctx, r->principal, &op, &out, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, app_json(&out.app, out.active_version, out.active_activated_at_us));
}
