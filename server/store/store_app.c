/*
 * The store's apps (store.h): an app's row (its settings, administrator identifiers, REST
 * region, cryptoperiod), its insert, read (with a share or update lock), list and update, and
 * the identifier policy names.
 */
#include "store_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- apps ---- */

static const char *const id_policy_names[] = {"printable", "strict"};

const char *store_id_policy_name(enum store_id_policy p)
{
    return (unsigned)p < 2 ? id_policy_names[p] : "?";
}

int store_id_policy_parse(const char *name)
{
    return store_name_index(id_policy_names, 2, name);
}

/* clang-format off */
/* The columns parse_app reads, of the table (alias) t: "" for apps alone, "a." in a join. */
#define APP_COLUMNS_OF(t) \
    t "sdkappid, " t "name, " t "default_expire, " t "max_expire, " t "identifier_policy, " \
    US(t "created_at") ", " US(t "updated_at") ", " \
    "array_to_string(" t "admin_identifiers, chr(10)), " t "admin_max_expire, " \
    t "gateway_identifier, " t "tencent_base_url, " t "rotate_every"
#define APP_N_COLUMNS 12
#define APP_COLUMNS APP_COLUMNS_OF("")
/* clang-format on */

static bool parse_app(const PGresult *r, int row, struct store_app *a)
{
    int policy = store_id_policy_parse(PQgetvalue(r, row, 4));
    memset(a, 0, sizeof *a);
    a->sdkappid = (uint32_t)store_col_int(r, row, 0);
    a->default_expire = (uint32_t)store_col_int(r, row, 2);
    a->max_expire = (uint32_t)store_col_int(r, row, 3);
    a->identifier_policy = policy == STORE_ID_STRICT ? STORE_ID_STRICT : STORE_ID_PRINTABLE;
    a->created_at_us = store_col_int(r, row, 5);
    a->updated_at_us = store_col_int(r, row, 6);
    a->admin_max_expire = (uint32_t)store_col_int(r, row, 8);
    a->rotate_every = (uint32_t)store_col_int(r, row, 11); /* NULL: 0 */
    if (!store_col_text(r, row, 1, a->name, sizeof a->name) || policy < 0 ||
        !store_text_list_split(PQgetvalue(r, row, 7), a->admin_ids[0], sizeof a->admin_ids[0],
                               STORE_APP_MAX_ADMIN_IDS, &a->n_admin_ids) ||
        !store_col_text(r, row, 9, a->gateway_identifier, sizeof a->gateway_identifier) ||
        !store_col_text(r, row, 10, a->tencent_base_url, sizeof a->tencent_base_url)) {
        log_error("store: apps row %" PRIu32 " does not fit its struct", a->sdkappid);
        return false;
    }
    return true;
}

/* clang-format off */
static const char SQL_APP_INSERT[] =
    "INSERT INTO apps (sdkappid, name, default_expire, max_expire, identifier_policy, "
    "admin_identifiers, admin_max_expire, gateway_identifier, tencent_base_url) "
    "VALUES ($1, $2, $3, $4, $5, string_to_array($6, chr(10)), $7, NULLIF($8, ''), $9) "
    "RETURNING " US("created_at") ", " US("updated_at");
/* clang-format on */

enum store_rc store_app_insert(struct store *st, struct store_app *app)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    bool ok;
    char *ids;

    if (app->admin_max_expire == 0)
        app->admin_max_expire = app->max_expire < STORE_ADMIN_MAX_EXPIRE_DEFAULT
                                    ? app->max_expire
                                    : STORE_ADMIN_MAX_EXPIRE_DEFAULT;
    if (app->tencent_base_url[0] == '\0')
        snprintf(app->tencent_base_url, sizeof app->tencent_base_url, "%s",
                 STORE_TENCENT_BASE_URL_DEFAULT);
    ids = store_text_list_join(app->admin_ids[0], sizeof app->admin_ids[0],
                               app->n_admin_ids <= STORE_APP_MAX_ADMIN_IDS ? app->n_admin_ids : 0,
                               false, &ok);
    if (!ok)
        return STORE_ERROR;
    store_param_int(&p, app->sdkappid);
    store_param_text(&p, app->name);
    store_param_int(&p, app->default_expire);
    store_param_int(&p, app->max_expire);
    store_param_text(&p, store_id_policy_name(app->identifier_policy));
    store_param_text(&p, ids);
    store_param_int(&p, app->admin_max_expire);
    store_param_text(&p, app->gateway_identifier);
    store_param_text(&p, app->tencent_base_url);
    rc = RUN(st, SQL_APP_INSERT, &p, &r);
    if (rc == STORE_OK) {
        app->created_at_us = store_col_int(r, 0, 0);
        app->updated_at_us = store_col_int(r, 0, 1);
    }
    PQclear(r);
    free(ids);
    return rc;
}

static const char SQL_APP_GET[] = "SELECT " APP_COLUMNS " FROM apps WHERE sdkappid = $1";
static const char SQL_APP_GET_SHARE[] =
    "SELECT " APP_COLUMNS " FROM apps WHERE sdkappid = $1 FOR SHARE";
static const char SQL_APP_GET_UPDATE[] =
    "SELECT " APP_COLUMNS " FROM apps WHERE sdkappid = $1 FOR UPDATE";

enum store_rc store_app_get(struct store *st, uint32_t sdkappid, enum store_lock lock,
                            struct store_app *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_int(&p, sdkappid);
    if (lock == STORE_LOCK_UPDATE)
        rc = RUN(st, SQL_APP_GET_UPDATE, &p, &r);
    else if (lock == STORE_LOCK_SHARE)
        rc = RUN(st, SQL_APP_GET_SHARE, &p, &r);
    else
        rc = RUN(st, SQL_APP_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_app(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

/* One statement for the whole page: app_keys_one_active (the partial unique index on the active
 * row) gives each app at most one joined row, found by index, so the list costs one round trip
 * however many apps it shows. */
/* clang-format off */
static const char SQL_APP_LIST[] =
    "SELECT " APP_COLUMNS_OF("a.") ", k.version, " US("k.activated_at") " FROM apps a "
    "LEFT JOIN app_keys k ON k.sdkappid = a.sdkappid AND k.state = 'active' "
    "WHERE ($1::bigint[] IS NULL OR a.sdkappid = ANY ($1::bigint[])) "
    "AND a.sdkappid > $2 ORDER BY a.sdkappid LIMIT $3";
/* clang-format on */

enum store_rc store_app_list(struct store *st, const uint32_t *scope, size_t n_scope,
                             uint32_t after, size_t limit, struct store_app_listed **out, size_t *n)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    struct store_app_listed *apps = NULL;
    bool ok;
    char *scope_text = store_int_array_text(scope, n_scope, &ok);
    enum store_rc rc = STORE_ERROR;
    int rows;

    *out = NULL;
    *n = 0;
    if (!ok)
        goto done;
    store_param_text(&p, scope_text);
    store_param_int(&p, after);
    if (limit > 0)
        store_param_int(&p, (int64_t)limit);
    else
        store_param_text(&p, NULL); /* LIMIT NULL: all */
    rc = RUN(st, SQL_APP_LIST, &p, &r);
    if (rc != STORE_OK)
        goto done;
    rows = PQntuples(r);
    if (rows > 0) {
        apps = calloc((size_t)rows, sizeof *apps);
        if (apps == NULL) {
            log_error("store: out of memory");
            rc = STORE_ERROR;
            goto done;
        }
    }
    for (int i = 0; i < rows; i++) {
        if (!parse_app(r, i, &apps[i].app)) {
            rc = STORE_ERROR;
            goto done;
        }
        apps[i].active_version = (uint32_t)store_col_int(r, i, APP_N_COLUMNS); /* NULL: 0 */
        apps[i].active_activated_at_us = store_col_int(r, i, APP_N_COLUMNS + 1);
    }
    *out = apps;
    *n = (size_t)rows;
    apps = NULL;
done:
    free(apps);
    free(scope_text);
    PQclear(r);
    return rc;
}

static const char SQL_APP_UPDATE[] =
    "UPDATE apps SET name = COALESCE($2, name), "
    "default_expire = COALESCE($3::integer, default_expire), "
    "max_expire = COALESCE($4::integer, max_expire), "
    "identifier_policy = COALESCE($5, identifier_policy), "
    "admin_identifiers = COALESCE(string_to_array($6, chr(10)), admin_identifiers), "
    "admin_max_expire = COALESCE($7::integer, admin_max_expire), "
    "gateway_identifier = CASE WHEN $8::boolean THEN NULLIF($9, '') "
    "ELSE gateway_identifier END, "
    "tencent_base_url = COALESCE($10, tencent_base_url), updated_at = now() "
    "WHERE sdkappid = $1 RETURNING " APP_COLUMNS;

enum store_rc store_app_update(struct store *st, const struct store_app *values, unsigned fields,
                               struct store_app *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    struct store_app row;
    bool ok = true;
    char *ids = NULL;

    if (fields & STORE_APP_SET_ADMIN_IDS) {
        ids = store_text_list_join(
            values->admin_ids[0], sizeof values->admin_ids[0],
            values->n_admin_ids <= STORE_APP_MAX_ADMIN_IDS ? values->n_admin_ids : 0, false, &ok);
        if (!ok)
            return STORE_ERROR;
    }
    store_param_int(&p, values->sdkappid);
    store_param_text(&p, fields & STORE_APP_SET_NAME ? values->name : NULL);
    if (fields & STORE_APP_SET_DEFAULT_EXPIRE)
        store_param_int(&p, values->default_expire);
    else
        store_param_text(&p, NULL);
    if (fields & STORE_APP_SET_MAX_EXPIRE)
        store_param_int(&p, values->max_expire);
    else
        store_param_text(&p, NULL);
    store_param_text(&p, fields & STORE_APP_SET_ID_POLICY
                             ? store_id_policy_name(values->identifier_policy)
                             : NULL);
    store_param_text(&p, ids);
    if (fields & STORE_APP_SET_ADMIN_MAX_EXPIRE)
        store_param_int(&p, values->admin_max_expire);
    else
        store_param_text(&p, NULL);
    store_param_text(&p, fields & STORE_APP_SET_GATEWAY_ID ? "true" : "false");
    store_param_text(&p, values->gateway_identifier);
    store_param_text(&p, fields & STORE_APP_SET_BASE_URL ? values->tencent_base_url : NULL);
    rc = RUN(st, SQL_APP_UPDATE, &p, &r);
    free(ids);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_app(r, 0, &row))
        rc = STORE_ERROR;
    if (rc == STORE_OK && out != NULL)
        *out = row;
    PQclear(r);
    return rc;
}

static const char SQL_APP_SET_ROTATE_EVERY[] =
    "UPDATE apps SET rotate_every = $2::integer, updated_at = now() WHERE sdkappid = $1";

enum store_rc store_app_set_rotate_every(struct store *st, uint32_t sdkappid, uint32_t seconds)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_int(&p, sdkappid);
    store_param_int_or_null(&p, seconds);
    rc = RUN(st, SQL_APP_SET_ROTATE_EVERY, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}
