/*
 * Key-version operations (op_keys.h): importing checked, fingerprinted and sealed material,
 * rotating, and the state changes of a version, each in one transaction that locks the app's
 * row first and commits with its audit event; refusals rolled back and audited on their own.
 */
#include "op_keys.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The longest PEM that still fits the sealed column once sealed. */
#define KEY_MATERIAL_MAX (STORE_SEALED_MAX - KEYRING_SEAL_OVERHEAD)

/* What a key operation ended with: API_OK, or the error to answer and its message (the
 * caller's buffer). */
struct key_result {
    enum api_error err;
    char *msg;
    size_t cap;
};

__attribute__((format(printf, 3, 4))) static void key_fail(struct key_result *res,
                                                           enum api_error err, const char *fmt, ...)
{
    res->err = err;
    if (res->cap > 0)
        res->msg[0] = '\0';
    if (fmt != NULL && res->cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->msg, res->cap, fmt, ap);
        va_end(ap);
    }
}

static void key_fail_store(struct key_result *res, enum store_rc rc, enum api_error not_found)
{
    key_fail(res, service_store_error(rc, not_found), NULL);
}

static void forget_app(struct service *svc, uint32_t sdkappid)
{
    if (svc->cache != NULL)
        cache_forget_app(svc->cache, sdkappid);
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

/* Material that passed the checks, and its fingerprint. */
struct key_material {
    enum store_key_kind kind;
    const char *bytes; /* borrowed from the caller's input */
    size_t len;
    uint8_t fp[KEYRING_FP_BYTES];
    char fp_short[KEYRING_FP_SHORT_BUF];
};

/* Checks that the material is a key that can sign, and fingerprints it. The messages name the
 * request field the material came in ("secret", "private_key_pem"). */
static int material_check(struct service *svc, const struct op_keys_material *in,
                          struct key_material *m, struct key_result *res)
{
    struct usersig_key *key = NULL;
    enum usersig_rc urc;
    enum keyring_rc krc;

    memset(m, 0, sizeof *m);
    m->kind = in->kind;
    m->bytes = in->bytes;
    m->len = in->len;
    if (m->bytes == NULL || (m->kind != STORE_KEY_HMAC && m->kind != STORE_KEY_ECDSA)) {
        key_fail(res, API_ERR_INTERNAL, NULL);
        return -1;
    }
    if (m->kind == STORE_KEY_HMAC) {
        urc = usersig_key_new_hmac(m->bytes, m->len, &key);
        if (urc == USERSIG_BAD_KEY) {
            key_fail(res, API_ERR_BAD_KEY,
                     "field \"secret\" must be 1 to 1024 bytes (the key the console shows); it "
                     "has %zu",
                     m->len);
            return -1;
        }
    } else {
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
    else
        forget_app(svc, sdkappid);
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
    if (res->cap > 0) {
        va_start(ap, fmt);
        vsnprintf(res->msg, res->cap, fmt, ap);
        va_end(ap);
    }
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
    else
        forget_app(svc, sdkappid);
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
    else
        forget_app(svc, sdkappid);
done:
    if (res->err != API_OK)
        store_rollback(svc->st);
    store_key_clear(&k);
    store_key_clear(out);
}

/* ---- the entry points ---------------------------------------------------------------------- */

static struct key_result result_init(char *msg, size_t cap)
{
    struct key_result res = {.err = API_OK, .msg = msg, .cap = cap};
    if (cap > 0)
        msg[0] = '\0';
    return res;
}

/* Metadata only: the sealed bytes never leave. */
static void strip(struct store_key *k)
{
    store_key_clear(k);
}

enum api_error op_keys_import(struct service *svc, const struct principal *p,
                              const struct op_keys_import_in *in, struct op_keys_rotation *out,
                              char *msg, size_t cap)
{
    struct key_result res = result_init(msg, cap);
    struct key_material m;

    memset(out, 0, sizeof *out);
    if (material_check(svc, &in->material, &m, &res) == 0)
        key_import(svc, p, in->sdkappid, &m, in->activate, false, &out->active, &out->retired,
                   &res);
    OPENSSL_cleanse(&m, sizeof m);
    strip(&out->active);
    strip(&out->retired);
    return res.err;
}

enum api_error op_keys_rotate(struct service *svc, const struct principal *p,
                              const struct op_keys_rotate_in *in, struct op_keys_rotation *out,
                              char *msg, size_t cap)
{
    struct key_result res = result_init(msg, cap);
    struct key_material m;

    memset(out, 0, sizeof *out);
    if (in->version != 0) {
        key_rotate_to(svc, p, in->sdkappid, in->version, &out->active, &out->retired, &res);
    } else {
        if (material_check(svc, &in->material, &m, &res) == 0)
            key_import(svc, p, in->sdkappid, &m, true, true, &out->active, &out->retired, &res);
        OPENSSL_cleanse(&m, sizeof m);
    }
    strip(&out->active);
    strip(&out->retired);
    return res.err;
}

static enum api_error change(struct service *svc, const struct principal *p,
                             const struct op_keys_change_in *in, enum key_change op,
                             struct store_key *out, char *msg, size_t cap)
{
    struct key_result res = result_init(msg, cap);

    memset(out, 0, sizeof *out);
    if (op == KEY_DESTROY && in->reason == NULL) {
        key_fail(&res, API_ERR_MISSING_FIELD, "a destroy needs a reason");
        return res.err;
    }
    key_change_state(svc, p, in->sdkappid, in->version, op, in->reason, out, &res);
    strip(out);
    return res.err;
}

enum api_error op_keys_disable(struct service *svc, const struct principal *p,
                               const struct op_keys_change_in *in, struct store_key *out, char *msg,
                               size_t cap)
{
    return change(svc, p, in, KEY_DISABLE, out, msg, cap);
}

enum api_error op_keys_enable(struct service *svc, const struct principal *p,
                              const struct op_keys_change_in *in, struct store_key *out, char *msg,
                              size_t cap)
{
    return change(svc, p, in, KEY_ENABLE, out, msg, cap);
}

enum api_error op_keys_destroy(struct service *svc, const struct principal *p,
                               const struct op_keys_change_in *in, struct store_key *out, char *msg,
                               size_t cap)
{
    return change(svc, p, in, KEY_DESTROY, out, msg, cap);
}

/* A time of the audit details: Unix seconds, or null for 0. */
static json_t *seconds_or_null(int64_t us)
{
    return us != 0 ? json_integer(us / 1000000) : json_null();
}

enum api_error op_keys_update(struct service *svc, const struct principal *p,
                              const struct op_keys_update_in *in, struct store_key *out, char *msg,
                              size_t cap)
{
    struct key_result res = result_init(msg, cap);
    struct store_key k = {0};
    json_t *details = NULL;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    rc = store_begin(svc->st);
    if (rc != STORE_OK) {
        key_fail_store(&res, rc, API_ERR_APP_NOT_FOUND);
        goto done;
    }
    if (lock_and_get(svc, in->sdkappid, in->version, &k, &res) != STORE_OK)
        goto done;
    if (k.state == STORE_KEY_DESTROYED) {
        refuse_state(svc, p, "key.update", &k, &res,
                     "version %u is destroyed: it verifies nothing, so it has no verify_until",
                     in->version);
        goto done;
    }
    /* Whole seconds: what the API shows and takes. */
    int64_t want = in->verify_until_us / 1000000 * 1000000;
    if (want != k.verify_until_us) {
        details = json_pack("{s:{s:{s:o,s:o}}}", "changed", "verify_until", "from",
                            seconds_or_null(k.verify_until_us), "to", seconds_or_null(want));
        if (details == NULL) {
            key_fail(&res, API_ERR_INTERNAL, NULL);
            goto done;
        }
        rc = store_key_set_verify_until(svc->st, in->sdkappid, in->version, want);
        if (rc == STORE_OK) {
            rc = service_audit(svc, p, "key.update", in->sdkappid, in->version, "ok", details);
            details = NULL;
        }
    }
    if (rc == STORE_OK)
        rc = store_key_get(svc->st, in->sdkappid, in->version, out);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK)
        key_fail_store(&res, rc, API_ERR_KEY_NOT_FOUND);
    else if (want != k.verify_until_us)
        forget_app(svc, in->sdkappid);
done:
    if (res.err != API_OK) {
        store_rollback(svc->st);
        store_key_clear(out);
        memset(out, 0, sizeof *out);
    }
    json_decref(details);
    store_key_clear(&k);
    strip(out);
    return res.err;
}

enum api_error op_keys_list(struct service *svc, const struct principal *p, uint32_t sdkappid,
                            struct store_key **keys, size_t *n, char *msg, size_t cap)
{
    struct key_result res = result_init(msg, cap);
    struct store_app app;
    enum store_rc rc;

    (void)p; /* the route's scope check covers the one app read */
    *keys = NULL;
    *n = 0;
    rc = store_app_get(svc->st, sdkappid, STORE_LOCK_NONE, &app);
    if (rc == STORE_OK)
        rc = store_key_list(svc->st, sdkappid, keys, n);
    if (rc != STORE_OK) {
        *keys = NULL;
        *n = 0;
        key_fail_store(&res, rc, API_ERR_APP_NOT_FOUND);
    }
    return res.err;
}
