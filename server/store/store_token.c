/*
 * The store's API tokens (api_tokens): a name, a role, the apps they cover and the SHA-256 of
 * their secret, never the secret itself. Checking a presented token is the caller's
 * (service.c); what a role may do is the admin API's (admin-api/routes.c).
 */
#include "store_int.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- API tokens ---- */

static const char *const role_names[STORE_ROLE_COUNT] = {
    "admin", "key_manager", "signer", "auditor", "admin_signer", "rest_caller",
};

const char *store_role_name(enum store_role r)
{
    return (unsigned)r < STORE_ROLE_COUNT ? role_names[r] : "?";
}

int store_role_parse(const char *name)
{
    return store_name_index(role_names, STORE_ROLE_COUNT, name);
}

/* clang-format off */
#define TOKEN_COLUMNS \
    "id, name, role, apps, secret_hash, " \
    US("created_at") ", " US("expires_at") ", " US("revoked_at") ", " US("last_used_at") ", " \
    "array_to_string(identifier_prefixes, chr(10)), array_to_string(rest_allow, chr(10)), " \
    "signs_per_second, batch_tokens_per_day"
/* clang-format on */

/* "{1,2,3}" into t->apps. */
static bool parse_apps(const char *s, struct store_token *t)
{
    t->n_apps = 0;
    if (*s++ != '{')
        return false;
    while (*s != '}') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || errno != 0 || v == 0 || v > UINT32_MAX || t->n_apps == STORE_TOKEN_MAX_APPS)
            return false;
        t->apps[t->n_apps++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '}')
            return false;
    }
    return t->n_apps > 0;
}

static bool parse_token(const PGresult *r, int row, struct store_token *t)
{
    int role = store_role_parse(PQgetvalue(r, row, 2));
    bool ok;
    memset(t, 0, sizeof *t);
    t->id = store_col_int(r, row, 0);
    t->role = role >= 0 ? (enum store_role)role : STORE_ROLE_AUDITOR;
    t->all_apps = PQgetisnull(r, row, 3);
    t->created_at_us = store_col_int(r, row, 5);
    t->expires_at_us = store_col_int(r, row, 6);
    t->revoked_at_us = store_col_int(r, row, 7);
    t->last_used_at_us = store_col_int(r, row, 8);
    t->limits.signs_per_second = (uint32_t)store_col_int(r, row, 11); /* NULL: 0, none */
    t->limits.batch_tokens_per_day = store_col_int(r, row, 12);
    ok = role >= 0 && store_col_text(r, row, 1, t->name, sizeof t->name) &&
         (t->all_apps || parse_apps(PQgetvalue(r, row, 3), t)) &&
         store_col_bytes(r, row, 4, t->secret_hash, sizeof t->secret_hash, NULL, true) &&
         store_text_list_split(PQgetvalue(r, row, 9), t->prefixes[0], sizeof t->prefixes[0],
                               STORE_TOKEN_MAX_PREFIXES, &t->n_prefixes) &&
         store_text_list_split(PQgetvalue(r, row, 10), t->rest[0], sizeof t->rest[0],
                               STORE_TOKEN_MAX_REST, &t->n_rest);
    if (!ok)
        log_error("store: api_tokens row %" PRId64 " does not fit its struct", t->id);
    return ok;
}

/* clang-format off */
static const char SQL_TOKEN_INSERT[] =
    "INSERT INTO api_tokens (name, role, apps, secret_hash, expires_at, identifier_prefixes, "
    "rest_allow, signs_per_second, batch_tokens_per_day) VALUES ($1, $2, $3::bigint[], $4, "
    TS("$5") ", string_to_array($6, chr(10)), string_to_array($7, chr(10)), $8, $9) "
    "RETURNING id, " US("created_at");
/* clang-format on */

enum store_rc store_token_insert(struct store *st, struct store_token *t)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    bool ok;
    char *apps_text = NULL, *prefixes = NULL, *rest = NULL;
    enum store_rc rc = STORE_ERROR;

    if (!t->all_apps && (t->n_apps == 0 || t->n_apps > STORE_TOKEN_MAX_APPS)) {
        log_error("store: a token is scoped to 1..%d apps, or to all", STORE_TOKEN_MAX_APPS);
        return STORE_ERROR;
    }
    if (t->n_prefixes > STORE_TOKEN_MAX_PREFIXES || t->n_rest > STORE_TOKEN_MAX_REST) {
        log_error("store: a token has too many prefixes or rest patterns");
        return STORE_ERROR;
    }
    apps_text = store_int_array_text(t->all_apps ? NULL : t->apps, t->n_apps, &ok);
    if (!ok)
        goto done;
    prefixes =
        store_text_list_join(t->prefixes[0], sizeof t->prefixes[0], t->n_prefixes, true, &ok);
    if (!ok)
        goto done;
    rest = store_text_list_join(t->rest[0], sizeof t->rest[0], t->n_rest, true, &ok);
    if (!ok)
        goto done;
    store_param_text(&p, t->name);
    store_param_text(&p, store_role_name(t->role));
    store_param_text(&p, apps_text);
    store_param_bytes(&p, t->secret_hash, sizeof t->secret_hash);
    store_param_int_or_null(&p, t->expires_at_us);
    store_param_text(&p, prefixes);
    store_param_text(&p, rest);
    store_param_int_or_null(&p, t->limits.signs_per_second);
    store_param_int_or_null(&p, t->limits.batch_tokens_per_day);
    rc = RUN(st, SQL_TOKEN_INSERT, &p, &r);
    if (rc == STORE_OK) {
        t->id = store_col_int(r, 0, 0);
        t->created_at_us = store_col_int(r, 0, 1);
    }
done:
    free(apps_text);
    free(prefixes);
    free(rest);
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_GET[] = "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE id = $1";
static const char SQL_TOKEN_GET_LOCKED[] =
    "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE id = $1 FOR UPDATE";

static enum store_rc token_get(struct store *st, int64_t id, bool lock, struct store_token *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_int(&p, id);
    rc = lock ? RUN(st, SQL_TOKEN_GET_LOCKED, &p, &r) : RUN(st, SQL_TOKEN_GET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_token(r, 0, out))
        rc = STORE_ERROR;
    PQclear(r);
    return rc;
}

enum store_rc store_token_get(struct store *st, int64_t id, struct store_token *out)
{
    return token_get(st, id, false, out);
}

enum store_rc store_token_get_locked(struct store *st, int64_t id, struct store_token *out)
{
    return token_get(st, id, true, out);
}

static const char SQL_TOKEN_GET_MANY[] =
    "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE id = ANY($1::bigint[])";

enum store_rc store_token_get_many(struct store *st, const int64_t *ids, size_t n,
                                   struct store_token *out, int *found)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc = STORE_ERROR;
    char *text = NULL;
    size_t cap = 3 + n * 21, len = 0;

    for (size_t i = 0; i < n; i++)
        found[i] = 0;
    if (n == 0)
        return STORE_OK;
    if (n > STORE_TOKEN_GET_MAX) {
        log_error("store: at most %d tokens at once", STORE_TOKEN_GET_MAX);
        return STORE_ERROR;
    }
    text = malloc(cap);
    if (text == NULL) {
        log_error("store: out of memory");
        return STORE_ERROR;
    }
    text[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s%" PRId64, i > 0 ? "," : "", ids[i]);
    text[len++] = '}';
    text[len] = '\0';
    store_param_text(&p, text);
    rc = RUN(st, SQL_TOKEN_GET_MANY, &p, &r);
    for (int row = 0; rc == STORE_OK && row < PQntuples(r); row++) {
        int64_t id = store_col_int(r, row, 0);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] != id || found[i] != 0)
                continue;
            /* A row that does not fit (logged) fails its own check only. */
            found[i] = parse_token(r, row, &out[i]) ? 1 : -1;
        }
    }
    PQclear(r);
    free(text);
    return rc;
}

static const char SQL_TOKEN_LIST[] = "SELECT " TOKEN_COLUMNS " FROM api_tokens ORDER BY id";

enum store_rc store_token_list(struct store *st, struct store_token **out, size_t *n)
{
    PGresult *r = NULL;
    struct store_token *tokens = NULL;
    enum store_rc rc;
    int rows;

    *out = NULL;
    *n = 0;
    rc = RUN(st, SQL_TOKEN_LIST, NULL, &r);
    if (rc != STORE_OK)
        goto done;
    rows = PQntuples(r);
    if (rows > 0 && (tokens = calloc((size_t)rows, sizeof *tokens)) == NULL) {
        log_error("store: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    for (int i = 0; i < rows; i++) {
        if (!parse_token(r, i, &tokens[i])) {
            rc = STORE_ERROR;
            goto done;
        }
    }
    *out = tokens;
    *n = (size_t)rows;
    tokens = NULL;
done:
    free(tokens);
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_REVOKE[] =
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1";

enum store_rc store_token_revoke(struct store *st, int64_t id)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    store_param_int(&p, id);
    rc = RUN(st, SQL_TOKEN_REVOKE, &p, &r);
    if (rc == STORE_OK && strcmp(PQcmdTuples(r), "0") == 0)
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

static const char SQL_TOKEN_TOUCH[] =
    "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 "
    "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')";

enum store_rc store_token_touch(struct store *st, int64_t id)
{
    struct store_params p = {0};
    store_param_int(&p, id);
    return RUN(st, SQL_TOKEN_TOUCH, &p, NULL);
}

static const char SQL_TOKEN_LIMITS_SET[] =
    "UPDATE api_tokens SET "
    "signs_per_second = CASE WHEN $2::boolean THEN $3::integer ELSE signs_per_second END, "
    "batch_tokens_per_day = CASE WHEN $4::boolean THEN $5::bigint ELSE batch_tokens_per_day END "
    "WHERE id = $1 RETURNING " TOKEN_COLUMNS;

enum store_rc store_token_limits_set(struct store *st, int64_t id, unsigned fields,
                                     const struct store_limits *values, struct store_token *out)
{
    struct store_params p = {0};
    PGresult *r = NULL;
    enum store_rc rc;
    struct store_token t;

    store_param_int(&p, id);
    store_param_text(&p, fields & STORE_LIMIT_SET_SIGNS ? "true" : "false");
    store_param_int_or_null(&p, values->signs_per_second);
    store_param_text(&p, fields & STORE_LIMIT_SET_BATCH ? "true" : "false");
    store_param_int_or_null(&p, values->batch_tokens_per_day);
    rc = RUN(st, SQL_TOKEN_LIMITS_SET, &p, &r);
    if (rc == STORE_OK && PQntuples(r) == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK && !parse_token(r, 0, &t))
        rc = STORE_ERROR;
    if (rc == STORE_OK && out != NULL)
        *out = t;
    PQclear(r);
    return rc;
}
