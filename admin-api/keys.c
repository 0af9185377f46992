/*
 * Admin API keys: import, list, rotate, disable, enable and destroy key versions of an app.
 * Every change runs in one transaction that first locks the app's row (so the changes of one app
 * are serialized) and ends with its audit event; a refusal is rolled back and audited on its
 * own. Key material is checked with the codec, fingerprinted and sealed by the keyring; only
 * metadata ever goes out.
 */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "service.h"

/* The longest PEM that still fits the sealed column once sealed. */
#define KEY_MATERIAL_MAX (STORE_SEALED_MAX - KEYRING_SEAL_OVERHEAD)

/* What a key operation ended with: API_OK, or the error to answer and its message. */
struct key_result {
    enum api_error err;
    char msg[320];
};

__attribute__((format(printf, 3, 4))) static void key_fail(struct key_result *res,
                                                           enum api_error err, const char *fmt, ...)
{
    res->err = err;
    res->msg[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->msg, sizeof res->msg, fmt, ap);
        va_end(ap);
    }
}

static void key_fail_store(struct key_result *res, enum store_rc rc, enum api_error not_found)
{
    key_fail(res, service_store_error(rc, not_found), NULL);
}

static void reply_result(struct api_request *r, const struct key_result *res)
{
    if (res->msg[0] != '\0')
        api_reply_error(r, res->err, "%s", res->msg);
    else
        api_reply_error(r, res->err, NULL);
}

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

/* Builds a details object from key/value pairs: "s" string, "i" integer (uint32_t, 0 = null),
 * ending with a NULL key. A new json_t or NULL when out of memory. */
static json_t *details_new(const char *key, ...)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    va_list ap;
    va_start(ap, key);
    for (; ok && key != NULL; key = va_arg(ap, const char *)) {
        const char *type = va_arg(ap, const char *);
        json_t *v;
        if (type[0] == 's') {
            const char *s = va_arg(ap, const char *);
            v = s != NULL ? json_string(s) : json_null();
        } else {
            uint32_t x = va_arg(ap, uint32_t);
            v = x != 0 ? json_integer(x) : json_null();
        }
        ok = json_object_set_new(o, key, v) == 0;
    }
    va_end(ap);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- key material -------------------------------------------------------------------------- */

/* A key as given in a request: borrowed from the request body (never copied), and its
 * fingerprint. */
struct key_material {
    enum store_key_kind kind;
    const char *bytes;
    size_t len;
    uint8_t fp[KEYRING_FP_BYTES];
    char fp_short[KEYRING_FP_SHORT_BUF];
};

/* Checks that the material is a key that can sign, and fingerprints it. secret or pem (exactly
 * one non-NULL) are JSON strings of the body. */
static int material_check(struct service *svc, json_t *secret, json_t *pem, struct key_material *m,
                          struct key_result *res)
{
    struct usersig_key *key = NULL;
    enum usersig_rc urc;
    enum keyring_rc krc;

    memset(m, 0, sizeof *m);
    if (secret != NULL) {
        m->kind = STORE_KEY_HMAC;
        m->bytes = json_string_value(secret);
        m->len = json_string_length(secret);
        urc = usersig_key_new_hmac(m->bytes, m->len, &key);
        if (urc == USERSIG_BAD_KEY) {
            key_fail(res, API_ERR_BAD_KEY,
                     "field \"secret\" must be 1 to 1024 bytes (the key the console shows); it "
                     "has %zu",
                     m->len);
            return -1;
        }
    } else {
        m->kind = STORE_KEY_ECDSA;
        m->bytes = json_string_value(pem);
        m->len = json_string_length(pem);
        if (m->len > KEY_MATERIAL_MAX) {
            key_fail(res, API_ERR_BAD_KEY, "field \"private_key_pem\" is over %d bytes",
                     KEY_MATERIAL_MAX);
            return -1;
        }
        urc = usersig_key_new_pem(m->bytes, m->len, &key);
        if (urc == USERSIG_BAD_KEY) {
            key_fail(res, API_ERR_BAD_KEY,
                     "field \"private_key_pem\" is not a PEM EC private key on secp256k1 or "
                     "P-256 (SEC1 \"EC PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\")");
            return -1;
        }
        if (urc == USERSIG_OK && !usersig_key_is_private(key)) {
            usersig_key_free(key);
            key_fail(res, API_ERR_BAD_KEY,
                     "field \"private_key_pem\" holds a public key only, which cannot sign: "
                     "give the private key");
            return -1;
        }
    }
    usersig_key_free(key);
    if (urc != USERSIG_OK) {
        key_fail(res, api_error_from_usersig(urc), "%s", usersig_rc_message(urc));
        return -1;
    }
    if (m->kind == STORE_KEY_HMAC)
        krc = keyring_fingerprint_hmac(svc->kr, (const uint8_t *)m->bytes, m->len, m->fp);
    else
        krc = keyring_fingerprint_ecdsa(m->bytes, m->len, m->fp);
    if (krc != KEYRING_OK) {
        log_error("key import: cannot fingerprint the key: %s", keyring_rc_message(krc));
        key_fail(res, API_ERR_INTERNAL, NULL);
        return -1;
    }
    keyring_fingerprint_short(m->fp, m->fp_short);
    return 0;
}

/* Picks the material out of a body that takes secret and private_key_pem (and, for a rotation,
 * version): exactly one of them. Replies 400 and returns -1 when not. */
static int material_fields(struct api_request *r, bool with_version, json_t **secret, json_t **pem)
{
    json_t *version = with_version ? json_object_get(r->body, "version") : NULL;
    *secret = json_object_get(r->body, "secret");
    *pem = json_object_get(r->body, "private_key_pem");
    int given = (*secret != NULL) + (*pem != NULL) + (version != NULL);
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
    return 0;
}

/* ---- the operations ------------------------------------------------------------------------ */

/* Records the refusal of a key another app holds (or held). The other app is named only to a
 * caller whose scope covers it. */
static void refuse_other_app(struct service *svc, const struct principal *p, uint32_t sdkappid,
                             const struct key_material *m, uint32_t holder, struct key_result *res)
{
    bool visible = principal_has_app(p, holder);
    json_t *details =
        visible ? details_new("fingerprint", "s", m->fp_short, "other_sdkappid", "i", holder, NULL)
                : details_new("fingerprint", "s", m->fp_short, "other_sdkappid", "s",
                              "(outside the caller's scope)", NULL);
    store_rollback(svc->st);
    service_audit_refusal(svc, p, "key.import", sdkappid, 0, "key_used_by_other_app", details);
    if (visible)
        key_fail(res, API_ERR_KEY_USED_BY_OTHER_APP,
                 "this key is (or was) registered to app %u; every app needs its own key", holder);
    else
        key_fail(res, API_ERR_KEY_USED_BY_OTHER_APP,
                 "this key is (or was) registered to another app; every app needs its own key");
}

static void refuse_same_app(struct service *svc, const struct principal *p, uint32_t sdkappid,
                            const struct key_material *m, uint32_t held_version,
                            struct key_result *res)
{
    store_rollback(svc->st);
    service_audit_refusal(svc, p, "key.import", sdkappid, held_version, "conflict",
                          details_new("fingerprint", "s", m->fp_short, NULL));
    key_fail(res, API_ERR_CONFLICT,
             "this app already holds (or held) this key as version %u; to sign with it again, "
             "rotate to that version (unless it is destroyed)",
             held_version);
}

/* Imports m as the app's next version: active when activate or when the app has no active
 * version (the previous active one is then retired), pending otherwise. rotate: the request was
 * a rotation (audited "key.rotate" as well). *added and *retired (version 0 when none) get the
 * rows as committed; caller store_key_clear()s them. */
static void key_import(struct service *svc, const struct principal *p, uint32_t sdkappid,
                       const struct key_material *m, bool activate, bool rotate,
                       struct store_key *added, struct store_key *retired, struct key_result *res)
{
    struct store_key prev = {0}, k = {0};
    uint32_t version = 0, holder = 0, held_version = 0;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    enum store_rc rc;
    enum keyring_rc krc;

    res->err = API_OK;
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_key_next_version(svc->st, sdkappid, &version); /* locks the app */
    if (rc != STORE_OK) {
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    rc = store_key_find_fingerprint(svc->st, m->fp, &holder, &held_version);
    if (rc == STORE_OK && holder != sdkappid) {
        refuse_other_app(svc, p, sdkappid, m, holder, res);
        goto done;
    }
    if (rc == STORE_OK) {
        refuse_same_app(svc, p, sdkappid, m, held_version, res);
        goto done;
    }
    if (rc != STORE_NOT_FOUND) {
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    rc = store_key_get_active(svc->st, sdkappid, STORE_LOCK_UPDATE, &prev);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    bool have_prev = rc == STORE_OK;
    krc = keyring_seal_key(svc->kr, sdkappid, version, (const uint8_t *)m->bytes, m->len, &sealed,
                           &sealed_len);
    if (krc != KEYRING_OK) {
        log_error("key import %u/%u: cannot seal: %s", sdkappid, version, keyring_rc_message(krc));
        key_fail(res, API_ERR_INTERNAL, NULL);
        goto done;
    }
    k.sdkappid = sdkappid;
    k.version = version;
    k.kind = m->kind;
    k.state = activate || !have_prev ? STORE_KEY_ACTIVE : STORE_KEY_PENDING;
    memcpy(k.fingerprint, m->fp, sizeof k.fingerprint);
    k.sealed = sealed;
    k.sealed_len = sealed_len;
    rc = STORE_OK;
    if (have_prev && k.state == STORE_KEY_ACTIVE)
        rc = store_key_set_state(svc->st, sdkappid, prev.version, STORE_KEY_RETIRED);
    if (rc == STORE_OK)
        rc = store_key_insert(svc->st, &k);
    if (rc == STORE_CONFLICT && strcmp(store_conflict(svc->st), "fingerprint") == 0) {
        /* Another transaction stored the same key since we looked: say who holds it now. */
        store_rollback(svc->st);
        rc = store_key_find_fingerprint(svc->st, m->fp, &holder, &held_version);
        if (rc == STORE_OK && holder != sdkappid)
            refuse_other_app(svc, p, sdkappid, m, holder, res);
        else if (rc == STORE_OK)
            refuse_same_app(svc, p, sdkappid, m, held_version, res);
        else
            key_fail_store(res, rc == STORE_NOT_FOUND ? STORE_CONFLICT : rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    if (rc == STORE_OK)
        rc = service_audit(svc, p, "key.import", sdkappid, version, "ok",
                           details_new("kind", "s", store_key_kind_name(k.kind), "fingerprint", "s",
                                       m->fp_short, "state", "s", store_key_state_name(k.state),
                                       NULL));
    if (rc == STORE_OK && (rotate || (have_prev && k.state == STORE_KEY_ACTIVE)))
        rc = service_audit(
            svc, p, "key.rotate", sdkappid, version, "ok",
            details_new("from", "i", have_prev ? prev.version : 0, "to", "i", version, NULL));
    if (rc == STORE_OK)
        rc = store_key_get(svc->st, sdkappid, version, added);
    if (rc == STORE_OK && have_prev && k.state == STORE_KEY_ACTIVE)
        rc = store_key_get(svc->st, sdkappid, prev.version, retired);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK)
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
done:
    if (res->err != API_OK)
        store_rollback(svc->st);
    free(sealed);
    store_key_clear(&prev);
    store_key_clear(added);
    store_key_clear(retired);
}

/* A refusal of a change to version because of its state: rolled back, audited, 409. */
static void refuse_state(struct service *svc, const struct principal *p, const char *action,
                         const struct store_key *k, struct key_result *res, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void refuse_state(struct service *svc, const struct principal *p, const char *action,
                         const struct store_key *k, struct key_result *res, const char *fmt, ...)
{
    va_list ap;
    store_rollback(svc->st);
    service_audit_refusal(svc, p, action, k->sdkappid, k->version, "invalid_state",
                          details_new("state", "s", store_key_state_name(k->state), NULL));
    res->err = API_ERR_INVALID_STATE;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof res->msg, fmt, ap);
    va_end(ap);
}

/* Locks the app and reads version (metadata only) inside the open transaction. */
static enum store_rc lock_and_get(struct service *svc, uint32_t sdkappid, uint32_t version,
                                  struct store_key *k, struct key_result *res)
{
    struct store_app app;
    enum store_rc rc = store_app_get(svc->st, sdkappid, STORE_LOCK_UPDATE, &app);
    if (rc != STORE_OK) {
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
        return rc;
    }
    rc = store_key_get(svc->st, sdkappid, version, k);
    if (rc == STORE_NOT_FOUND)
        key_fail(res, API_ERR_KEY_NOT_FOUND, "app %u has no key version %u", sdkappid, version);
    else if (rc != STORE_OK)
        key_fail_store(res, rc, API_ERR_KEY_NOT_FOUND);
    return rc;
}

/* Makes an existing pending or retired version active, retiring the active one. */
static void key_rotate_to(struct service *svc, const struct principal *p, uint32_t sdkappid,
                          uint32_t version, struct store_key *active, struct store_key *retired,
                          struct key_result *res)
{
    struct store_key k = {0}, prev = {0};
    struct usersig_key *key = NULL;
    enum store_rc rc;

    res->err = API_OK;
    rc = store_begin(svc->st);
    if (rc != STORE_OK) {
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    if (lock_and_get(svc, sdkappid, version, &k, res) != STORE_OK)
        goto done;
    if (k.state == STORE_KEY_ACTIVE) {
        refuse_state(svc, p, "key.rotate", &k, res, "version %u is already the active one",
                     version);
        goto done;
    }
    if (k.state != STORE_KEY_PENDING && k.state != STORE_KEY_RETIRED) {
        refuse_state(svc, p, "key.rotate", &k, res,
                     "version %u is %s: only a pending or retired version can become active%s",
                     version, store_key_state_name(k.state),
                     k.state == STORE_KEY_DISABLED ? " (enable it first)" : "");
        goto done;
    }
    /* Never make active a version that cannot sign. */
    if (service_open_key(svc, &k, &key) != 0) {
        key_fail(res, API_ERR_INTERNAL, "version %u does not open under this server's master key",
                 version);
        goto done;
    }
    usersig_key_free(key);
    rc = store_key_get_active(svc->st, sdkappid, STORE_LOCK_UPDATE, &prev);
    if (rc == STORE_OK)
        rc = store_key_set_state(svc->st, sdkappid, prev.version, STORE_KEY_RETIRED);
    else if (rc == STORE_NOT_FOUND)
        rc = STORE_OK;
    if (rc == STORE_OK)
        rc = store_key_set_state(svc->st, sdkappid, version, STORE_KEY_ACTIVE);
    if (rc == STORE_OK)
        rc = service_audit(svc, p, "key.rotate", sdkappid, version, "ok",
                           details_new("from", "i", prev.version, "to", "i", version, NULL));
    if (rc == STORE_OK)
        rc = store_key_get(svc->st, sdkappid, version, active);
    if (rc == STORE_OK && prev.version != 0)
        rc = store_key_get(svc->st, sdkappid, prev.version, retired);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK)
        key_fail_store(res, rc, API_ERR_KEY_NOT_FOUND);
done:
    if (res->err != API_OK)
        store_rollback(svc->st);
    store_key_clear(&k);
    store_key_clear(&prev);
    store_key_clear(active);
    store_key_clear(retired);
}

enum key_change { KEY_DISABLE, KEY_ENABLE, KEY_DESTROY };

/* Disables, enables or destroys one version. reason may be NULL except for KEY_DESTROY. */
static void key_change_state(struct service *svc, const struct principal *p, uint32_t sdkappid,
                             uint32_t version, enum key_change op, const char *reason,
                             struct store_key *out, struct key_result *res)
{
    static const char *const actions[] = {"key.disable", "key.enable", "key.destroy"};
    const char *action = actions[op];
    struct store_key k = {0};
    enum store_rc rc;

    res->err = API_OK;
    rc = store_begin(svc->st);
    if (rc != STORE_OK) {
        key_fail_store(res, rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    if (lock_and_get(svc, sdkappid, version, &k, res) != STORE_OK)
        goto done;
    if (k.state == STORE_KEY_DESTROYED) {
        refuse_state(svc, p, action, &k, res, "version %u is destroyed; that cannot change",
                     version);
        goto done;
    }
    switch (op) {
    case KEY_DISABLE:
    case KEY_DESTROY:
        if (k.state == STORE_KEY_ACTIVE) {
            refuse_state(svc, p, action, &k, res,
                         "version %u is the active key: rotate to another version first "
                         "(POST /v1/apps/%u/keys/rotate)",
                         version, sdkappid);
            goto done;
        }
        if (op == KEY_DISABLE && k.state == STORE_KEY_DISABLED) {
            refuse_state(svc, p, action, &k, res, "version %u is already disabled", version);
            goto done;
        }
        rc = op == KEY_DISABLE ? store_key_set_state(svc->st, sdkappid, version, STORE_KEY_DISABLED)
                               : store_key_destroy(svc->st, sdkappid, version, reason);
        break;
    case KEY_ENABLE:
        if (k.state != STORE_KEY_DISABLED) {
            refuse_state(svc, p, action, &k, res,
                         "version %u is %s: only a disabled version can be enabled", version,
                         store_key_state_name(k.state));
            goto done;
        }
        rc = store_key_set_state(svc->st, sdkappid, version, STORE_KEY_RETIRED);
        break;
    }
    if (rc == STORE_OK)
        rc = service_audit(
            svc, p, action, sdkappid, version, "ok",
            details_new("from", "s", store_key_state_name(k.state), "reason", "s", reason, NULL));
    if (rc == STORE_OK)
        rc = store_key_get(svc->st, sdkappid, version, out);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK)
        key_fail_store(res, rc, API_ERR_KEY_NOT_FOUND);
done:
    if (res->err != API_OK)
        store_rollback(svc->st);
    store_key_clear(&k);
    store_key_clear(out);
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
    struct service *svc = r->ctx;
    struct key_material m;
    struct key_result res = {0};
    struct store_key added = {0}, retired = {0};
    json_t *secret, *pem;

    if (api_require_fields(r, fields) != 0 || material_fields(r, false, &secret, &pem) != 0)
        return;
    bool activate = json_is_true(json_object_get(r->body, "activate"));
    if (material_check(svc, secret, pem, &m, &res) == 0)
        key_import(svc, r->principal, r->sdkappid, &m, activate, false, &added, &retired, &res);
    OPENSSL_cleanse(&m, sizeof m);
    if (res.err != API_OK)
        reply_result(r, &res);
    else
        api_reply_json(r, 201, key_json(&added));
}

void handle_key_list(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct store_app app;
    struct store_key *keys = NULL;
    size_t n = 0;
    json_t *body = NULL, *list = NULL;
    enum api_error err = API_ERR_INTERNAL;
    enum store_rc rc = store_app_get(svc->st, r->sdkappid, STORE_LOCK_NONE, &app);

    if (rc == STORE_OK)
        rc = store_key_list(svc->st, r->sdkappid, &keys, &n);
    if (rc != STORE_OK) {
        err = service_store_error(rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    body = json_object();
    list = json_array();
    if (body == NULL || list == NULL || json_object_set(body, "keys", list) != 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, key_json(&keys[i])) != 0)
            goto done;
    err = API_OK;
    api_reply_json(r, 200, body);
    body = NULL;
done:
    if (err != API_OK)
        api_reply_error(r, err, NULL);
    json_decref(list);
    json_decref(body);
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
    struct service *svc = r->ctx;
    struct key_material m;
    struct key_result res = {0};
    struct store_key active = {0}, retired = {0};
    json_t *secret, *pem, *version;

    if (api_require_fields(r, fields) != 0 || material_fields(r, true, &secret, &pem) != 0)
        return;
    version = json_object_get(r->body, "version");
    if (version != NULL) {
        json_int_t v = json_integer_value(version);
        if (v < 1 || v > INT32_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"version\" must be an integer from 1 to 2147483647");
            return;
        }
        key_rotate_to(svc, r->principal, r->sdkappid, (uint32_t)v, &active, &retired, &res);
    } else {
        if (material_check(svc, secret, pem, &m, &res) == 0)
            key_import(svc, r->principal, r->sdkappid, &m, true, true, &active, &retired, &res);
        OPENSSL_cleanse(&m, sizeof m);
    }
    if (res.err != API_OK)
        reply_result(r, &res);
    else
        api_reply_json(r, 200, rotation_json(&active, &retired));
}

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
    struct service *svc = r->ctx;
    struct key_result res = {0};
    struct store_key k = {0};
    const char *reason = NULL;

    if (api_require_fields(r, op == KEY_DESTROY ? required : optional) != 0)
        return;
    json_t *v = r->body != NULL ? json_object_get(r->body, "reason") : NULL;
    if (v != NULL) {
        reason = json_string_value(v);
        size_t chars = utf8_chars(reason);
        if (chars < 1 || chars > STORE_REASON_MAX) {
            api_reply_error(r, API_ERR_INVALID_FIELD,
                            "field \"reason\" must be 1 to %d characters (it has %zu)",
                            STORE_REASON_MAX, chars);
            return;
        }
    }
    key_change_state(svc, r->principal, r->sdkappid, r->key_version, op, reason, &k, &res);
    if (res.err != API_OK)
        reply_result(r, &res);
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
