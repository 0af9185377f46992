/*
 * The store's key versions (app_keys: state changes, sealed keys, fingerprints, use counts) and
 * the keyring's sealed root secret (the one row of keyring). Sealed keys pass through as opaque
 * bytes: sealing and unsealing are the keyring's (keyring.c).
 */
#include "store_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- key versions ---- */

static const char *const kind_names[] = {"", "hmac", "ecdsa"};
static const char *const state_names[] = {"pending", "active", "retired", "disabled", "destroyed"};

const char *store_key_kind_name(enum store_key_kind k)
{
    return k == STORE_KEY_HMAC || k == STORE_KEY_ECDSA ? kind_names[k] : "?";
}

int store_key_kind_parse(const char *name)
{
    int i = store_name_index(kind_names, 3, name);
    return i > 0 ? i : -1;
}

const char *store_key_state_name(enum store_key_state s)
{
    return (unsigned)s < 5 ? state_names[s] : "?";
}

int store_key_state_parse(const char *name)
{
    return store_name_index(state_names, 5, name);
}

void store_key_clear(struct store_key *k)
{
    if (k == NULL)
        return;
    free(k->sealed);
    k->sealed = NULL;
    k->sealed_len = 0;
}

void store_key_list_free(struct store_key *keys, size_t n)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
}

/* Columns 0..13; KEY_COLUMNS adds sealed as column 14. */
/* clang-format off */
#define KEY_META_COLUMNS \
    "sdkappid, version, kind, state, fingerprint, " \
    US("created_at") ", " US("activated_at") ", " US("retired_at") ", " \
    US("disabled_at") ", " US("destroyed_at") ", " \
    "destroy_reason, sign_count, " US("last_used_at") ", " US("verify_until")
#define KEY_COLUMNS KEY_META_COLUMNS ", sealed"
/* clang-format on */

static bool parse_key(const PGresult *r, int row, bool with_sealed, struct store_key *k)
{
    int kind = store_key_kind_parse(PQgetvalue(r, row, 2));
    int state = store_key_state_parse(PQgetvalue(r, row, 3));
    bool ok;

    memset(k, 0, sizeof *k);
    k->sdkappid = (uint32_t)store_col_int(r, row, 0);
    k->version = (uint32_t)store_col_int(r, row, 1);
    k->kind = kind == STORE_KEY_ECDSA ? STORE_KEY_ECDSA : STORE_KEY_HMAC;
    k->state = state >= 0 ? (enum store_key_state)state : STORE_KEY_DISABLED;
    k->created_at_us = store_col_int(r, row, 5);
    k->activated_at_us = store_col_int(r, row, 6);
    k->retired_at_us = store_col_int(r, row, 7);
    k->disabled_at_us = store_col_int(r, row, 8);
    k->destroyed_at_us = store_col_int(r, row, 9);
    k->sign_count = store_col_int(r, row, 11);
    k->last_used_at_us = store_col_int(r, row, 12);
    k->verify_until_us = store_col_int(r, row, 13);
    ok = kind > 0 && state >= 0 &&
         store_col_bytes(r, row, 4, k->fingerprint, sizeof k->fingerprint, NULL, true) &&
         store_col_text(r, row, 10, k->destroy_reason, sizeof k->destroy_reason);
    if (ok && with_sealed && !store_col_bytes_alloc(r, row, 14, &k->sealed, &k->sealed_len)) {
        log_error("store: out of memory");
        return false;
    }
    if (!ok)
        log_error("store: app_keys row %" PRIu32 "/%" PRIu32 " does not fit its struct",
                  k->sdkappid, k->version);
    return ok;
}

/* Parses all rows into a new array. */
STORE_WUR static enum store_rc parse_keys(const PGresult *r, bool with_sealed,
                                          struct store_key **out, size_t *n)
{
    int rows = PQntuples(r);
    struct store_key *keys = NULL;

    *out = NULL;
    *n = 0;
    if (rows == 0)
        return STORE_OK;
    keys = calloc((size_t)rows, sizeof *keys);
    if (keys == NULL) {
        log_error("store: out of memory");
        return STORE_ERROR;
    }
    for (int i = 0; i < rows; i++) {
        if (!parse_key(r, i, with_sealed, &keys[i])) {
            store_key_list_free(keys, (size_t)i + 1);
            return STORE_ERROR;
        }
    }
    *out = keys;
    *n = (size_t)rows;
    return STORE_OK;
}

/* Two statements: under READ COMMITTED a statement that waited for the app's lock still reads
 * app_keys as of its own start, so a max(version) beside the FOR UPDATE missed the version that
 * the transaction it waited for had just added (a duplicate version, a 409). The second
 * statement's snapshot is taken after the lock is held. */
static const char SQL_KEY_LOCK_APP[] = "SELECT 1 FROM apps WHERE sdkappid = $1 FOR UPDATE";
static const char SQL_KEY_NEXT_VERSION[] =
    "SELECT COALESCE(max(version), 0) + 1 FROM app_keys WHERE sdkappid = $1";

enum store_rc store_key_next_version(struct store *st, uint32_t sdkappid, uint32_t *version)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_int(&p, sdkappid);
    rc = RUN(st, SQL_KEY_LOCK_APP, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    r = NULL;
    if (rc == STORE_OK)
        rc = RUN(st, SQL_KEY_NEXT_VERSION, &p, &r);
    if (rc == STORE_OK)
        *version = (uint32_t)store_col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static const char SQL_KEY_INSERT[] =
    "INSERT INTO app_keys (sdkappid, version, kind, state, fingerprint, sealed, activated_at) "
    "VALUES ($1, $2, $3, $4::text, $5, $6, CASE WHEN $4::text = 'active' THEN now() END)";

enum store_rc store_key_insert(struct store *st, const struct store_key *k)
{
    struct store_params p = {0};
    if (k->state != STORE_KEY_PENDING && k->state != STORE_KEY_ACTIVE) {
        log_error("store: a new key version is pending or active, not %s",
                  store_key_state_name(k->state));
        return STORE_ERROR;
    }
    if (k->sealed == NULL || k->sealed_len < STORE_SEALED_MIN || k->sealed_len > STORE_SEALED_MAX) {
        log_error("store: a new key version needs its sealed key (%d..%d bytes)", STORE_SEALED_MIN,
                  STORE_SEALED_MAX);
        return STORE_ERROR;
    }
    store_param_int(&p, k->sdkappid);
    store_param_int(&p, k->version);
    store_param_text(&p, store_key_kind_name(k->kind));
    store_param_text(&p, store_key_state_name(k->state));
    store_param_bytes(&p, k->fingerprint, sizeof k->fingerprint);
    store_param_bytes(&p, k->sealed, k->sealed_len);
    return RUN(st, SQL_KEY_INSERT, &p, NULL);
}

static const char SQL_KEY_GET[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_get(struct store *st, uint32_t sdkappid, uint32_t version,
                            struct store_key *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    memset(out, 0, sizeof *out);
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    rc = RUN(st, SQL_KEY_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_key(r, 0, true, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_ACTIVE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND state = 'active'";
static const char SQL_KEY_ACTIVE_SHARE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND state = 'active' FOR SHARE";
static const char SQL_KEY_ACTIVE_UPDATE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sdkappid = $1 AND "
    "state = 'active' FOR NO KEY UPDATE";

enum store_rc store_key_get_active(struct store *st, uint32_t sdkappid, enum store_lock lock,
                                   struct store_key *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc = STORE_ERROR;
    memset(out, 0, sizeof *out);
    store_param_int(&p, sdkappid);
    /* A locked read that waited for a rotation re-checks the row it waited for (now retired) and
     * skips it; the version made active is not in its snapshot. A new read sees it, unless the
     * next rotation took it meanwhile (rotations back to back): a few reads, then NOT_FOUND. */
    for (int attempt = 0; attempt < 4; attempt++) {
        PQclear(r);
        if (lock == STORE_LOCK_UPDATE)
            rc = RUN(st, SQL_KEY_ACTIVE_UPDATE, &p, &r);
        else if (lock == STORE_LOCK_SHARE)
            rc = RUN(st, SQL_KEY_ACTIVE_SHARE, &p, &r);
        else
            rc = RUN(st, SQL_KEY_ACTIVE, &p, &r);
        if (rc != STORE_OK || PQntuples(r) > 0 || lock == STORE_LOCK_NONE)
            break;
    }
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_key(r, 0, true, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_LIST[] =
    "SELECT " KEY_META_COLUMNS " FROM app_keys WHERE sdkappid = $1 ORDER BY version";

enum store_rc store_key_list(struct store *st, uint32_t sdkappid, struct store_key **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    *out = NULL;
    *n = 0;
    store_param_int(&p, sdkappid);
    rc = RUN(st, SQL_KEY_LIST, &p, &r);
    if (rc == STORE_OK)
        rc = parse_keys(r, false, out, n);
    PQclear(r);
    return rc;
}

static const char SQL_KEY_LIST_SEALED[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sealed IS NOT NULL "
    "AND ($1::bigint[] IS NULL OR sdkappid = ANY ($1::bigint[])) ORDER BY sdkappid, version";
static const char SQL_KEY_LIST_SEALED_UPDATE[] =
    "SELECT " KEY_COLUMNS " FROM app_keys WHERE sealed IS NOT NULL "
    "AND ($1::bigint[] IS NULL OR sdkappid = ANY ($1::bigint[])) ORDER BY sdkappid, version "
    "FOR NO KEY UPDATE";

enum store_rc store_key_list_sealed(struct store *st, const uint32_t *apps, size_t n_apps,
                                    bool for_update, struct store_key **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    bool ok;
    char *apps_text = store_int_array_text(apps, n_apps, &ok);
    enum store_rc rc = STORE_ERROR;

    *out = NULL;
    *n = 0;
    if (!ok)
        goto done;
    store_param_text(&p, apps_text);
    rc = for_update ? RUN(st, SQL_KEY_LIST_SEALED_UPDATE, &p, &r)
                    : RUN(st, SQL_KEY_LIST_SEALED, &p, &r);
    if (rc == STORE_OK)
        rc = parse_keys(r, true, out, n);
done:
    free(apps_text);
    PQclear(r);
    return rc;
}

static const char SQL_KEY_SET_STATE[] =
    "UPDATE app_keys SET state = $3::text, "
    "activated_at = CASE WHEN $3::text = 'active' AND state <> 'active' THEN now() "
    "ELSE activated_at END, "
    "retired_at = CASE WHEN $3::text = 'retired' AND state <> 'retired' THEN now() "
    "ELSE retired_at END, "
    "disabled_at = CASE WHEN $3::text = 'disabled' AND state <> 'disabled' THEN now() "
    "ELSE disabled_at END "
    "WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_set_state(struct store *st, uint32_t sdkappid, uint32_t version,
                                  enum store_key_state state)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if ((unsigned)state >= STORE_KEY_DESTROYED) {
        log_error("store: store_key_set_state cannot set %s", store_key_state_name(state));
        return STORE_ERROR;
    }
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_text(&p, store_key_state_name(state));
    rc = RUN(st, SQL_KEY_SET_STATE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_DESTROY[] =
    "UPDATE app_keys SET state = 'destroyed', sealed = NULL, destroyed_at = now(), "
    "destroy_reason = $3 WHERE sdkappid = $1 AND version = $2 "
    "AND state NOT IN ('active', 'destroyed')";
static const char SQL_KEY_EXISTS[] = "SELECT 1 FROM app_keys WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_destroy(struct store *st, uint32_t sdkappid, uint32_t version,
                                const char *reason)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if (reason == NULL || reason[0] == '\0') {
        log_error("store: destroying a key needs a reason");
        return STORE_ERROR;
    }
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_text(&p, reason);
    rc = RUN(st, SQL_KEY_DESTROY, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        PQclear(r);
        r = NULL;
        p.n = 2;
        rc = RUN(st, SQL_KEY_EXISTS, &p, &r);
        if (rc == STORE_OK && PQntuples(r) == 0) {
            rc = STORE_NOT_FOUND;
        } else if (rc == STORE_OK) {
            st->conflict = "state";
            rc = STORE_CONFLICT;
        }
    }
    PQclear(r);
    return rc;
}

static const char SQL_KEY_FIND_FINGERPRINT[] =
    "SELECT sdkappid, version FROM app_keys WHERE fingerprint = $1";

enum store_rc store_key_find_fingerprint(struct store *st,
                                         const uint8_t fingerprint[STORE_FINGERPRINT_LEN],
                                         uint32_t *sdkappid, uint32_t *version)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_bytes(&p, fingerprint, STORE_FINGERPRINT_LEN);
    rc = RUN(st, SQL_KEY_FIND_FINGERPRINT, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK) {
        *sdkappid = (uint32_t)store_col_int(r, 0, 0);
        *version = (uint32_t)store_col_int(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

static const char SQL_KEY_RECORD_USE[] =
    "UPDATE app_keys SET sign_count = sign_count + $3, last_used_at = now() "
    "WHERE sdkappid = $1 AND version = $2";

enum store_rc store_key_record_use(struct store *st, uint32_t sdkappid, uint32_t version,
                                   uint64_t count)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if (count > INT64_MAX) {
        log_error("store: sign count out of range");
        return STORE_ERROR;
    }
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_int(&p, (int64_t)count);
    rc = RUN(st, SQL_KEY_RECORD_USE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_SET_VERIFY_UNTIL[] = "UPDATE app_keys SET verify_until = " TS(
    "$3") " "
          "WHERE sdkappid = $1 AND version = $2 AND state <> 'destroyed'";

enum store_rc store_key_set_verify_until(struct store *st, uint32_t sdkappid, uint32_t version,
                                         int64_t verify_until_us)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_int_or_null(&p, verify_until_us);
    rc = RUN(st, SQL_KEY_SET_VERIFY_UNTIL, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_SCHEDULES[] = "SELECT k.sdkappid, k.version, " US(
    "k.activated_at") ", a.rotate_every "
                      "FROM app_keys k JOIN apps a ON a.sdkappid = k.sdkappid "
                      "WHERE k.state = 'active' ORDER BY k.sdkappid LIMIT $1";

enum store_rc store_key_schedules(struct store *st, size_t limit, struct store_key_schedule **out,
                                  size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    *out = NULL;
    *n = 0;
    store_param_int(&p, (int64_t)limit);
    rc = RUN(st, SQL_KEY_SCHEDULES, &p, &r);
    int rows = rc == STORE_OK ? PQntuples(r) : 0;
    if (rows > 0) {
        *out = calloc((size_t)rows, sizeof **out);
        if (*out == NULL) {
            log_error("store: out of memory");
            rc = STORE_ERROR;
            rows = 0;
        }
    }
    for (int i = 0; i < rows; i++) {
        (*out)[i].sdkappid = (uint32_t)store_col_int(r, i, 0);
        (*out)[i].version = (uint32_t)store_col_int(r, i, 1);
        (*out)[i].activated_at_us = store_col_int(r, i, 2);
        (*out)[i].rotate_every = (uint32_t)store_col_int(r, i, 3);
    }
    *n = (size_t)rows;
    PQclear(r);
    return rc;
}

static const char SQL_KEY_UPDATE_SEALED[] = "UPDATE app_keys SET sealed = $3 "
                                            "WHERE sdkappid = $1 AND version = $2 "
                                            "AND sealed IS NOT NULL";

enum store_rc store_key_update_sealed(struct store *st, uint32_t sdkappid, uint32_t version,
                                      const uint8_t *sealed, size_t len)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    if (sealed == NULL || len < STORE_SEALED_MIN || len > STORE_SEALED_MAX) {
        log_error("store: a sealed key is %d..%d bytes", STORE_SEALED_MIN, STORE_SEALED_MAX);
        return STORE_ERROR;
    }
    store_param_int(&p, sdkappid);
    store_param_int(&p, version);
    store_param_bytes(&p, sealed, len);
    rc = RUN(st, SQL_KEY_UPDATE_SEALED, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* ---- keyring ---- */

/* clang-format off */
static const char SQL_KEYRING_GET[] =
    "SELECT sealed_root, " US("created_at") " FROM keyring WHERE id = 1";
static const char SQL_KEYRING_GET_UPDATE[] =
    "SELECT sealed_root, " US("created_at") " FROM keyring WHERE id = 1 FOR UPDATE";
/* clang-format on */

enum store_rc store_keyring_get(struct store *st, bool for_update, uint8_t *buf, size_t cap,
                                size_t *len, int64_t *created_at_us)
{
    PGresult *r = NULL;
    enum store_rc rc =
        for_update ? RUN(st, SQL_KEYRING_GET_UPDATE, NULL, &r) : RUN(st, SQL_KEYRING_GET, NULL, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !store_col_bytes(r, 0, 0, buf, cap, len, false)) {
        log_error("store: the sealed root does not fit the buffer");
        rc = STORE_ERROR;
    }
    if (rc == STORE_OK && created_at_us != NULL)
        *created_at_us = store_col_int(r, 0, 1);
    PQclear(r);
    return rc;
}

static const char SQL_KEYRING_INSERT[] =
    "INSERT INTO keyring (id, sealed_root) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";

enum store_rc store_keyring_insert(struct store *st, const uint8_t *sealed, size_t len)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_bytes(&p, sealed, len);
    rc = RUN(st, SQL_KEYRING_INSERT, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        st->conflict = "keyring";
        rc = STORE_CONFLICT;
    }
    PQclear(r);
    return rc;
}

static const char SQL_KEYRING_UPDATE[] = "UPDATE keyring SET sealed_root = $1 WHERE id = 1";

enum store_rc store_keyring_update(struct store *st, const uint8_t *sealed, size_t len)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_bytes(&p, sealed, len);
    rc = RUN(st, SQL_KEYRING_UPDATE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}
