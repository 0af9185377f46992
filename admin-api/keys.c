/*
 * Admin API keys: import, list, rotate, disable, enable and destroy key versions of an app. Each
 * handler parses the request, calls one operation of the core (op_keys.h: the transaction that
 * locks the app, the checks, sealing and fingerprinting of material, the audit events) and
 * builds the one reply from its output: only metadata ever goes out.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "op_apps.h"
#include "op_keys.h"
#include "usage.h"

/* The one error reply of an operation: its message, or the table's default. */
static void reply_op_error(struct api_request *r, enum api_error err, const char *msg)
{
    if (msg[0] != '\0')
        api_reply_error(r, err, "%s", msg);
    else
        api_reply_error(r, err, NULL);
}

#define KEY_VERIFY_UNTIL_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

/* UTF-8 characters of s (jansson has checked that it is valid UTF-8). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* The Key object of openapi.yaml: metadata only, never the key. A new json_t (caller
 * json_decref()s it), or NULL when an allocation fails. */
static json_t *key_json(const struct store_key *k)
{
    char fp[KEYRING_FP_SHORT_BUF];
    json_t *o = json_object();
    bool ok = o != NULL;
    keyring_fingerprint_short(k->fingerprint, fp);
    ok = ok && json_object_set_new(o, "sdkappid", json_integer(k->sdkappid)) == 0;
    ok = ok && json_object_set_new(o, "version", json_integer(k->version)) == 0;
    ok = ok && json_object_set_new(o, "kind", json_string(store_key_kind_name(k->kind))) == 0;
    ok = ok && json_object_set_new(o, "state", json_string(store_key_state_name(k->state))) == 0;
    ok = ok && json_object_set_new(o, "fingerprint", json_string(fp)) == 0;
    ok = ok && json_object_set_new(o, "created_at", service_time_json(k->created_at_us)) == 0;
    ok = ok && json_object_set_new(o, "activated_at", service_time_json(k->activated_at_us)) == 0;
    ok = ok && json_object_set_new(o, "retired_at", service_time_json(k->retired_at_us)) == 0;
    ok = ok && json_object_set_new(o, "disabled_at", service_time_json(k->disabled_at_us)) == 0;
    ok = ok && json_object_set_new(o, "destroyed_at", service_time_json(k->destroyed_at_us)) == 0;
    ok = ok && json_object_set_new(o, "destroy_reason",
                                   k->destroy_reason[0] != '\0' ? json_string(k->destroy_reason)
                                                                : json_null()) == 0;
    ok = ok && json_object_set_new(o, "sign_count", json_integer(k->sign_count)) == 0;
    ok = ok && json_object_set_new(o, "last_used_at", service_time_json(k->last_used_at_us)) == 0;
    ok = ok && json_object_set_new(o, "verify_until", service_time_json(k->verify_until_us)) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* {"active": key, "retired": key or null}; NULL when an allocation fails. */
static json_t *rotation_json(const struct store_key *active, const struct store_key *retired)
{
    json_t *o = json_object();
    bool ok =
        o != NULL && json_object_set_new(o, "active", key_json(active)) == 0 &&
        json_object_set_new(o, "retired", retired->version ? key_json(retired) : json_null()) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- key material -------------------------------------------------------------------------- */

/* Picks the material out of a body that takes secret and private_key_pem (and, for a rotation,
 * version): exactly one of them, borrowed from the body into *m (kind 0 for a version). Replies 400
 * and returns -1 when not. */
static int material_fields(struct api_request *r, bool with_version, struct op_keys_material *m)
{
    json_t *version = with_version ? json_object_get(r->body, "version") : NULL;
    json_t *secret = json_object_get(r->body, "secret");
    json_t *pem = json_object_get(r->body, "private_key_pem");
    int given = (secret != NULL) + (pem != NULL) + (version != NULL);
    const char *names =
        with_version ? "secret, private_key_pem or version" : "secret or private_key_pem";
    if (given == 0) {
        api_reply_error(r, API_ERR_MISSING_FIELD, "give one of %s", names);
        return -1;
    }
    if (given > 1) {
        api_reply_error(r, API_ERR_INVALID_FIELD, "give only one of %s", names);
        return -1;
    }
    memset(m, 0, sizeof *m);
    if (secret != NULL || pem != NULL) {
        json_t *v = secret != NULL ? secret : pem;
        m->kind = secret != NULL ? STORE_KEY_HMAC : STORE_KEY_ECDSA;
        m->bytes = json_string_value(v);
        m->len = json_string_length(v);
    }
    return 0;
}

/* ---- handlers ------------------------------------------------------------------------------ */

void handle_key_add(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"secret", API_FIELD_STRING, 0},
        {"private_key_pem", API_FIELD_STRING, 0},
        {"activate", API_FIELD_BOOLEAN, 0},
        {NULL, 0, 0},
    };
    struct op_keys_import_in in = {.sdkappid = r->sdkappid};
    struct op_keys_rotation out;
    char msg[OP_MSG_BUF];

    if (api_require_fields(r, fields) != 0 || material_fields(r, false, &in.material) != 0)
        return;
    in.activate = json_is_true(json_object_get(r->body, "activate"));
    enum api_error err = op_keys_import(r->ctx, r->principal, &in, &out, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 201, key_json(&out.active));
}

/* {"verdict": count, ...} of the counts of version (0: none matched); NULL when out of memory. */
static json_t *counts_json(const struct store_verify_count *c, size_t n, uint32_t version)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < n; i++)
        if (c[i].version == version &&
            json_object_set_new(o, c[i].verdict, json_integer((json_int_t)c[i].count)) != 0) {
            json_decref(o);
            o = NULL;
        }
    return o;
}

void handle_key_list(struct api_request *r)
{
    struct store_key *keys = NULL;
    struct store_verify_count *counts = NULL;
    size_t n = 0, n_counts = 0;
    json_t *body = NULL, *list = NULL;
    char msg[OP_MSG_BUF];
    enum api_error err =
        op_keys_list(r->ctx, r->principal, r->sdkappid, &keys, &n, msg, sizeof msg);

    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    struct service *svc = r->ctx;
    if (usage_read(svc->st, r->sdkappid, &counts, &n_counts) != STORE_OK) {
        err = API_ERR_UNAVAILABLE;
        goto done;
    }
    struct store_app app;
    if (store_app_get(svc->st, r->sdkappid, STORE_LOCK_NONE, &app) != STORE_OK) {
        err = API_ERR_UNAVAILABLE;
        goto done;
    }
    int64_t activated_at_us = 0;
    for (size_t i = 0; i < n; i++)
        if (keys[i].state == STORE_KEY_ACTIVE)
            activated_at_us = keys[i].activated_at_us;
    err = API_ERR_INTERNAL;
    body = json_object();
    list = json_array();
    if (body == NULL || list == NULL || json_object_set(body, "keys", list) != 0 ||
        json_object_set_new(body, "unmatched_verify_counts", counts_json(counts, n_counts, 0)) !=
            0 ||
        op_apps_schedule_json(body, app.rotate_every, activated_at_us) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        json_t *k = key_json(&keys[i]);
        if (k != NULL && json_object_set_new(k, "verify_counts",
                                             counts_json(counts, n_counts, keys[i].version)) != 0) {
            json_decref(k);
            k = NULL;
        }
        if (k == NULL || json_array_append_new(list, k) != 0)
            goto done;
    }
    err = API_OK;
    api_reply_json(r, 200, body);
    body = NULL;
done:
    if (err != API_OK)
        api_reply_error(r, err, NULL);
    json_decref(list);
    json_decref(body);
    free(counts);
    store_key_list_free(keys, n);
}

void handle_key_rotate(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"secret", API_FIELD_STRING, 0},
        {"private_key_pem", API_FIELD_STRING, 0},
        {"version", API_FIELD_INTEGER, 0},
        {NULL, 0, 0},
    };
    struct op_keys_rotate_in in = {.sdkappid = r->sdkappid};
    struct op_keys_rotation out;
    char msg[OP_MSG_BUF];
    json_t *version;

    if (api_require_fields(r, fields) != 0 || material_fields(r, true, &in.material) != 0)
        return;
    version = json_object_get(r->body, "version");
    if (version != NULL) {
        json_int_t v = json_integer_value(version);
        if (v < 1 || v > INT32_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"version\" must be an integer from 1 to 2147483647");
            return;
        }
        in.version = (uint32_t)v;
    }
    enum api_error err = op_keys_rotate(r->ctx, r->principal, &in, &out, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, rotation_json(&out.active, &out.retired));
}

/* PATCH of a version: {"verify_until": Unix seconds or null}. */
void handle_key_update(struct api_request *r)
{
    static const struct api_field fields[] = {
        {"verify_until", API_FIELD_INTEGER, API_FIELD_REQUIRED | API_FIELD_NULLABLE},
        {NULL, 0, 0},
    };
    struct op_keys_update_in in = {.sdkappid = r->sdkappid, .version = r->key_version};
    struct store_key k;
    char msg[OP_MSG_BUF];

    if (api_require_fields(r, fields) != 0)
        return;
    json_t *v = json_object_get(r->body, "verify_until");
    if (!json_is_null(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 1 || t > KEY_VERIFY_UNTIL_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"verify_until\" must be a time in Unix seconds from 1 to %lld "
                            "(the year 9999), or null for no end",
                            (long long)KEY_VERIFY_UNTIL_MAX);
            return;
        }
        in.verify_until_us = (int64_t)t * 1000000;
    }
    enum api_error err = op_keys_update(r->ctx, r->principal, &in, &k, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, key_json(&k));
}

enum key_change { KEY_DISABLE, KEY_ENABLE, KEY_DESTROY };

/* The three state changes: reason optional (disable, enable) or required (destroy). */
static void key_state_handler(struct api_request *r, enum key_change op)
{
    static const struct api_field optional[] = {
        {"reason", API_FIELD_STRING, 0},
        {NULL, 0, 0},
    };
    static const struct api_field required[] = {
        {"reason", API_FIELD_STRING, API_FIELD_REQUIRED},
        {NULL, 0, 0},
    };
    struct op_keys_change_in in = {.sdkappid = r->sdkappid, .version = r->key_version};
    struct store_key k;
    char msg[OP_MSG_BUF];
    enum api_error err;

    if (api_require_fields(r, op == KEY_DESTROY ? required : optional) != 0)
        return;
    json_t *v = r->body != NULL ? json_object_get(r->body, "reason") : NULL;
    if (v != NULL) {
        in.reason = json_string_value(v);
        size_t chars = utf8_chars(in.reason);
        if (chars < 1 || chars > STORE_REASON_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"reason\" must be 1 to %d characters (it has %zu)",
                            STORE_REASON_MAX, chars);
            return;
        }
    }
    switch (op) {
    case KEY_DISABLE:
        err = op_keys_disable(r->ctx, r->principal, &in, &k, msg, sizeof msg);
        break;
    case KEY_ENABLE:
        err = op_keys_enable(r->ctx, r->principal, &in, &k, msg, sizeof msg);
        break;
    default:
        err = op_keys_destroy(r->ctx, r->principal, &in, &k, msg, sizeof msg);
        break;
    }
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, key_json(&k));
}

void handle_key_disable(struct api_request *r)
{
    key_state_handler(r, KEY_DISABLE);
}

void handle_key_enable(struct api_request *r)
{
    key_state_handler(r, KEY_ENABLE);
}

void handle_key_destroy(struct api_request *r)
{
    key_state_handler(r, KEY_DESTROY);
}
