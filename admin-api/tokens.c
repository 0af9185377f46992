/*
 * Admin API tokens: create, list and revoke API tokens, plus the creation rules that
 * `usersigd token create` shares (tokens.h). The handlers parse and check the request, call one
 * operation of the core (op_tokens.h: the row, the token text, the audit event) and build the
 * one reply; the token text is shown once, in the reply that creates it.
 */
#include "tokens.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "handlers.h"
#include "log.h"
#include "op_limits.h"
#include "op_tokens.h"
#include "routes.h"

/* ---- rules shared with the command line -------------------------------------------------------
 */

/* Characters of a UTF-8 string, or -1 when it is not UTF-8 or holds a control character (a
 * token's name is the actor of its audit events, whose canonical form is newline-separated). */
static long name_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p != '\0') {
        unsigned c = *p;
        int more;
        uint32_t cp;
        if (c < 0x20 || c == 0x7f)
            return -1;
        if (c < 0x80) {
            more = 0;
            cp = c;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (*p & 0x3f);
        }
        /* Overlong forms, surrogates, beyond U+10FFFF, C1 controls. */
        if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp < 0xa0))
            return -1;
        n++;
    }
    return n;
}

/* The identifier prefixes and rest patterns: each allowed only for its roles, bounded, valid and
 * listed once. */
static enum tokens_rc tokens_check_lists(const struct tokens_spec *spec, char *why, size_t cap)
{
    enum role role = (enum role)spec->role;
    if (spec->n_prefixes > 0 && !role_has_perm(role, PERM_SIGN)) {
        snprintf(why, cap,
                 "identifier_prefixes: only for a signing role (signer, admin_signer, admin), "
                 "not %s",
                 store_role_name(spec->role));
        return TOKENS_BAD_PREFIXES;
    }
    if (spec->n_prefixes > STORE_TOKEN_MAX_PREFIXES) {
        snprintf(why, cap, "identifier_prefixes: at most %d prefixes", STORE_TOKEN_MAX_PREFIXES);
        return TOKENS_BAD_PREFIXES;
    }
    for (size_t i = 0; i < spec->n_prefixes; i++) {
        const char *x = spec->prefixes[i];
        if (!principal_prefix_valid(x, strnlen(x, sizeof spec->prefixes[i]))) {
            snprintf(why, cap,
                     "identifier_prefixes[%zu]: 1 to %d bytes of printable ASCII (0x20 to 0x7e)", i,
                     PRINCIPAL_PREFIX_MAX);
            return TOKENS_BAD_PREFIXES;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->prefixes[j], x) == 0) {
                snprintf(why, cap, "identifier_prefixes: \"%s\" is listed twice", x);
                return TOKENS_BAD_PREFIXES;
            }
    }
    if (spec->role == STORE_ROLE_REST_CALLER && !spec->has_rest) {
        snprintf(why, cap,
                 "rest_allow: a rest_caller token needs the servicename/command patterns it may "
                 "call, such as [\"im_open_login_svc/account_import\", \"openim/*\"]");
        return TOKENS_MISSING_REST;
    }
    if (spec->has_rest && spec->role != STORE_ROLE_REST_CALLER && spec->role != STORE_ROLE_SIGNER &&
        spec->role != STORE_ROLE_ADMIN_SIGNER) {
        snprintf(why, cap,
                 "rest_allow: only for the rest_caller role (or signer and admin_signer, for a "
                 "batch's import=1), not %s",
                 store_role_name(spec->role));
        return TOKENS_BAD_REST;
    }
    if (spec->has_rest && (spec->n_rest == 0 || spec->n_rest > STORE_TOKEN_MAX_REST)) {
        snprintf(why, cap, "rest_allow: give 1 to %d servicename/command patterns",
                 STORE_TOKEN_MAX_REST);
        return TOKENS_BAD_REST;
    }
    for (size_t i = 0; i < spec->n_rest; i++) {
        const char *x = spec->rest[i];
        if (!principal_rest_pattern_valid(x, strnlen(x, sizeof spec->rest[i]))) {
            snprintf(why, cap,
                     "rest_allow[%zu]: \"servicename/command\" or \"servicename/*\", each part "
                     "of A-Z a-z 0-9 _ . -, at most %d bytes",
                     i, PRINCIPAL_REST_MAX);
            return TOKENS_BAD_REST;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->rest[j], x) == 0) {
                snprintf(why, cap, "rest_allow: \"%s\" is listed twice", x);
                return TOKENS_BAD_REST;
            }
        /* A signer's only use of it: a batch's import=1. */
        if (spec->role != STORE_ROLE_REST_CALLER &&
            strcmp(x, "im_open_login_svc/multiaccount_import") != 0 &&
            strcmp(x, "im_open_login_svc/*") != 0) {
            snprintf(why, cap,
                     "rest_allow[%zu]: a %s token takes only "
                     "\"im_open_login_svc/multiaccount_import\" (or \"im_open_login_svc/*\"), "
                     "for a batch's import=1",
                     i, store_role_name(spec->role));
            return TOKENS_BAD_REST;
        }
    }
    return TOKENS_OK;
}

enum tokens_rc tokens_check(const struct tokens_spec *spec, char *why, size_t cap)
{
    long chars = spec->name != NULL ? name_chars(spec->name) : -1;

    if (spec->name == NULL || spec->name[0] == '\0') {
        snprintf(why, cap, "name: give 1 to %d characters", STORE_TOKEN_NAME_MAX);
        return TOKENS_BAD_NAME;
    }
    if (chars < 0) {
        snprintf(why, cap, "name: must be UTF-8 text without control characters");
        return TOKENS_BAD_NAME;
    }
    if (chars > STORE_TOKEN_NAME_MAX) {
        snprintf(why, cap, "name: at most %d characters", STORE_TOKEN_NAME_MAX);
        return TOKENS_BAD_NAME;
    }
    if ((unsigned)spec->role >= STORE_ROLE_COUNT) {
        snprintf(why, cap,
                 "role: one of admin, key_manager, signer, auditor, admin_signer, rest_caller");
        return TOKENS_BAD_ROLE;
    }
    if (!spec->all_apps) {
        if (spec->n_apps == 0 || spec->n_apps > STORE_TOKEN_MAX_APPS) {
            snprintf(why, cap, "apps: give 1 to %d sdkappids, or leave it out for every app",
                     STORE_TOKEN_MAX_APPS);
            return TOKENS_BAD_APPS;
        }
        for (size_t i = 0; i < spec->n_apps; i++) {
            if (spec->apps[i] == 0) {
                snprintf(why, cap, "apps: an sdkappid is an integer from 1 to 4294967295");
                return TOKENS_BAD_APPS;
            }
            for (size_t j = 0; j < i; j++)
                if (spec->apps[j] == spec->apps[i]) {
                    snprintf(why, cap, "apps: %u is listed twice", spec->apps[i]);
                    return TOKENS_BAD_APPS;
                }
        }
    }
    if (spec->ttl_s < 0 || spec->ttl_s > TOKENS_TTL_MAX_S) {
        snprintf(why, cap, "ttl: from 1 second to %lld seconds (10 years)",
                 (long long)TOKENS_TTL_MAX_S);
        return TOKENS_BAD_TTL;
    }
    return tokens_check_lists(spec, why, cap);
}

int tokens_parse_ttl(const char *s, int64_t *out_s)
{
    int64_t ms;
    size_t len = s != NULL ? strlen(s) : 0;

    /* config_parse_duration also takes "ms": a token lives whole seconds. */
    if (len == 0 || (len >= 2 && strcmp(s + len - 2, "ms") == 0))
        return -1;
    if (config_parse_duration(s, &ms) != 0 || ms < 1000 || ms % 1000 != 0 ||
        ms / 1000 > TOKENS_TTL_MAX_S)
        return -1;
    *out_s = ms / 1000;
    return 0;
}

int tokens_parse_apps(const char *csv, struct tokens_spec *spec)
{
    const char *p = csv;

    spec->all_apps = false;
    spec->n_apps = 0;
    if (csv == NULL || *csv == '\0')
        return -1;
    for (;;) {
        uint64_t v = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > UINT32_MAX)
                return -1;
            p++;
        }
        if (p == start || *start == '0' || spec->n_apps == STORE_TOKEN_MAX_APPS)
            return -1;
        spec->apps[spec->n_apps++] = (uint32_t)v;
        if (*p == '\0')
            return 0;
        if (*p++ != ',')
            return -1;
    }
}

json_t *tokens_json(const struct store_token *t, int64_t now)
{
    const char *state = t->revoked_at_us != 0                                ? "revoked"
                        : (t->expires_at_us != 0 && t->expires_at_us <= now) ? "expired"
                                                                             : "active";
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "id", json_integer(t->id)) != 0 ||
        json_object_set_new(o, "name", json_string(t->name)) != 0 ||
        json_object_set_new(o, "role", json_string(store_role_name(t->role))) != 0 ||
        json_object_set_new(o, "apps", op_tokens_apps_json(t)) != 0 ||
        json_object_set_new(o, "state", json_string(state)) != 0 ||
        json_object_set_new(o, "created_at", service_time_json(t->created_at_us)) != 0 ||
        json_object_set_new(o, "expires_at", service_time_json(t->expires_at_us)) != 0 ||
        json_object_set_new(o, "revoked_at", service_time_json(t->revoked_at_us)) != 0 ||
        json_object_set_new(o, "last_used_at", service_time_json(t->last_used_at_us)) != 0 ||
        json_object_set_new(
            o, "identifier_prefixes",
            t->n_prefixes > 0
                ? op_tokens_list_json(t->prefixes[0], sizeof t->prefixes[0], t->n_prefixes)
                : json_null()) != 0 ||
        json_object_set_new(o, "rest_allow",
                            t->n_rest > 0
                                ? op_tokens_list_json(t->rest[0], sizeof t->rest[0], t->n_rest)
                                : json_null()) != 0 ||
        op_limits_json_set(o, &t->limits) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

enum store_rc tokens_create(struct service *svc, const struct principal *actor,
                            const struct tokens_spec *spec, struct store_token *out, char *token,
                            size_t cap)
{
    const struct op_tokens_create_in in = {
        .name = spec->name,
        .role = spec->role,
        .all_apps = spec->all_apps,
        .n_apps = spec->n_apps,
        .apps = spec->apps,
        .ttl_s = spec->ttl_s,
        .n_prefixes = spec->n_prefixes,
        .prefixes = spec->prefixes[0],
        .n_rest = spec->n_rest,
        .rest = spec->rest[0],
        .limits = spec->limits,
    };
    return op_tokens_insert(svc, actor, &in, out, token, cap);
}

/* ---- handlers ---------------------------------------------------------------------------------
 */

#define TTL_RULE                                                                                   \
    "ttl: seconds (an integer) or a duration such as \"12h\" or \"30d\", from 1 second to 10 "     \
    "years"

/* ttl is an integer of seconds or a duration string ("30d"): the table follows its JSON type. */
static const struct api_field create_fields_int_ttl[] = {
    {"name", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"role", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"apps", API_FIELD_INT_ARRAY, 0},
    {"ttl", API_FIELD_INTEGER, 0},
    {"identifier_prefixes", API_FIELD_STRING_ARRAY, 0},
    {"rest_allow", API_FIELD_STRING_ARRAY, 0},
    {"signs_per_second", API_FIELD_INTEGER, API_FIELD_NULLABLE},
    {"batch_tokens_per_day", API_FIELD_INTEGER, API_FIELD_NULLABLE},
    {NULL, 0, 0},
};
static const struct api_field create_fields_str_ttl[] = {
    {"name", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"role", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"apps", API_FIELD_INT_ARRAY, 0},
    {"ttl", API_FIELD_STRING, 0},
    {"identifier_prefixes", API_FIELD_STRING_ARRAY, 0},
    {"rest_allow", API_FIELD_STRING_ARRAY, 0},
    {"signs_per_second", API_FIELD_INTEGER, API_FIELD_NULLABLE},
    {"batch_tokens_per_day", API_FIELD_INTEGER, API_FIELD_NULLABLE},
    {NULL, 0, 0},
};

/* A JSON array of strings into n elements of stride bytes at base (at most max of them, each
 * shorter than stride, no NUL inside). -1 with why (naming field) when it does not fit; the
 * rules of the values are tokens_check's. */
static int strings_from_body(const json_t *a, const char *field, char *base, size_t stride,
                             size_t max, size_t *n, char *why, size_t cap)
{
    size_t i;
    const json_t *v;
    *n = 0;
    if (json_array_size(a) > max) {
        snprintf(why, cap, "%s: at most %zu entries (it has %zu)", field, max, json_array_size(a));
        return -1;
    }
    json_array_foreach(a, i, v)
    {
        size_t len = json_string_length(v);
        if (len >= stride || memchr(json_string_value(v), '\0', len) != NULL) {
            snprintf(why, cap, "%s[%zu]: at most %zu bytes", field, i, stride - 1);
            return -1;
        }
        if (len == 0) {
            snprintf(why, cap, "%s[%zu]: must not be empty", field, i);
            return -1;
        }
        memcpy(base + i * stride, json_string_value(v), len + 1);
        ++*n;
    }
    return 0;
}

int tokens_limits_from_body(const json_t *body, struct store_limits *out, unsigned *set,
                            const char **field, char *why, size_t cap)
{
    const json_t *sps = json_object_get(body, "signs_per_second");
    const json_t *btd = json_object_get(body, "batch_tokens_per_day");
    if (set != NULL)
        *set = 0;
    if (sps != NULL) {
        json_int_t v = json_integer_value(sps);
        *field = "signs_per_second";
        if (!json_is_null(sps) && (v < 1 || v > STORE_SIGNS_PER_SECOND_MAX)) {
            snprintf(why, cap,
                     "signs_per_second: an integer from 1 to %d single signs a second, or null "
                     "for no limit",
                     STORE_SIGNS_PER_SECOND_MAX);
            return -1;
        }
        out->signs_per_second = json_is_null(sps) ? 0 : (uint32_t)v;
        if (set != NULL)
            *set |= STORE_LIMIT_SET_SIGNS;
    }
    if (btd != NULL) {
        json_int_t v = json_integer_value(btd);
        *field = "batch_tokens_per_day";
        if (!json_is_null(btd) && (v < 1 || v > STORE_BATCH_TOKENS_PER_DAY_MAX)) {
            snprintf(why, cap,
                     "batch_tokens_per_day: an integer from 1 to %lld batch lines a UTC day, or "
                     "null for no limit",
                     (long long)STORE_BATCH_TOKENS_PER_DAY_MAX);
            return -1;
        }
        out->batch_tokens_per_day = json_is_null(btd) ? 0 : (int64_t)v;
        if (set != NULL)
            *set |= STORE_LIMIT_SET_BATCH;
    }
    return 0;
}

/* Fills spec from a body that passed the field check; -1 with why (naming the field) when a
 * value is outside its rule. */
static int spec_from_body(const json_t *body, struct tokens_spec *spec, const char **field,
                          char *why, size_t cap)
{
    const json_t *apps = json_object_get(body, "apps");
    const json_t *ttl = json_object_get(body, "ttl");
    const json_t *prefixes = json_object_get(body, "identifier_prefixes");
    const json_t *rest = json_object_get(body, "rest_allow");
    int role;

    memset(spec, 0, sizeof *spec);
    spec->name = json_string_value(json_object_get(body, "name"));
    role = role_parse(json_string_value(json_object_get(body, "role")));
    spec->role = role >= 0 ? (enum store_role)role : (enum store_role) - 1;
    spec->all_apps = apps == NULL;
    if (apps != NULL) {
        size_t i;
        const json_t *v;
        *field = "apps";
        if (json_array_size(apps) == 0 || json_array_size(apps) > STORE_TOKEN_MAX_APPS) {
            snprintf(why, cap, "apps: give 1 to %d sdkappids, or leave it out for every app",
                     STORE_TOKEN_MAX_APPS);
            return -1;
        }
        json_array_foreach(apps, i, v)
        {
            json_int_t x = json_integer_value(v);
            if (x < 1 || x > (json_int_t)UINT32_MAX) {
                snprintf(why, cap, "apps: an sdkappid is an integer from 1 to 4294967295");
                return -1;
            }
            spec->apps[spec->n_apps++] = (uint32_t)x;
        }
    }
    if (ttl != NULL) {
        *field = "ttl";
        if (json_is_string(ttl)
                ? tokens_parse_ttl(json_string_value(ttl), &spec->ttl_s) != 0
                : (json_integer_value(ttl) < 1 || json_integer_value(ttl) > TOKENS_TTL_MAX_S)) {
            snprintf(why, cap, "%s", TTL_RULE);
            return -1;
        }
        if (!json_is_string(ttl))
            spec->ttl_s = json_integer_value(ttl);
    }
    if (prefixes != NULL) {
        *field = "identifier_prefixes";
        if (json_array_size(prefixes) == 0) {
            snprintf(why, cap,
                     "identifier_prefixes: give 1 to %d prefixes, or leave it out for any "
                     "identifier",
                     STORE_TOKEN_MAX_PREFIXES);
            return -1;
        }
        if (strings_from_body(prefixes, "identifier_prefixes", spec->prefixes[0],
                              sizeof spec->prefixes[0], STORE_TOKEN_MAX_PREFIXES, &spec->n_prefixes,
                              why, cap) != 0)
            return -1;
    }
    if (tokens_limits_from_body(body, &spec->limits, NULL, field, why, cap) != 0)
        return -1;
    if (rest != NULL) {
        *field = "rest_allow";
        spec->has_rest = true;
        if (strings_from_body(rest, "rest_allow", spec->rest[0], sizeof spec->rest[0],
                              STORE_TOKEN_MAX_REST, &spec->n_rest, why, cap) != 0)
            return -1;
    }
    switch (tokens_check(spec, why, cap)) {
    case TOKENS_OK:
        return 0;
    case TOKENS_BAD_NAME:
        *field = "name";
        return -1;
    case TOKENS_BAD_ROLE:
        *field = "role";
        return -1;
    case TOKENS_BAD_APPS:
        *field = "apps";
        return -1;
    case TOKENS_BAD_TTL:
        *field = "ttl";
        return -1;
    case TOKENS_BAD_PREFIXES:
        *field = "identifier_prefixes";
        return -1;
    case TOKENS_BAD_REST:
    case TOKENS_MISSING_REST:
        *field = "rest_allow";
        return -1;
    }
    return -1;
}

/* The one error reply of an operation: its message, or the table's default. */
static void reply_op_error(struct api_request *r, enum api_error err, const char *msg)
{
    if (msg[0] != '\0')
        api_reply_error(r, err, "%s", msg);
    else
        api_reply_error(r, err, NULL);
}

void handle_token_create(struct api_request *r)
{
    const struct api_field *fields = json_is_string(json_object_get(r->body, "ttl"))
                                         ? create_fields_str_ttl
                                         : create_fields_int_ttl;
    static const char *const outcomes[] = {
        [API_FIELDS_UNKNOWN] = "unknown_field",
        [API_FIELDS_INVALID] = "invalid_field",
        [API_FIELDS_MISSING] = "missing_field",
    };
    struct tokens_spec spec;
    struct store_token t;
    char token[KEYRING_TOKEN_BUF] = "";
    char why[TOKENS_WHY_BUF], msg[OP_MSG_BUF];
    const char *field = NULL;
    enum api_fields_rc frc;
    enum api_error err;
    json_t *body = NULL;

    frc = api_fields_check(r->body, fields, &field);
    if (frc != API_FIELDS_OK) {
        op_tokens_refuse_create(r->ctx, r->principal,
                                (unsigned)frc <= API_FIELDS_MISSING ? outcomes[frc]
                                                                    : "invalid_field",
                                field != NULL ? field : "");
        if (frc == API_FIELDS_INVALID && field != NULL && strcmp(field, "ttl") == 0) {
            api_reply_error(r, API_ERR_INVALID_FIELD, "%s", TTL_RULE);
            return;
        }
        if (api_require_fields(r, fields) == 0)
            api_reply_error(r, API_ERR_INTERNAL, NULL); /* cannot happen: the same check */
        return;
    }
    if (spec_from_body(r->body, &spec, &field, why, sizeof why) != 0) {
        bool missing = field != NULL && strcmp(field, "rest_allow") == 0 && !spec.has_rest;
        op_tokens_refuse_create(r->ctx, r->principal, missing ? "missing_field" : "invalid_field",
                                field);
        api_reply_error(r, missing ? API_ERR_MISSING_FIELD : API_ERR_INVALID_FIELD, "%s", why);
        return;
    }
    const struct op_tokens_create_in in = {
        .name = spec.name,
        .role = spec.role,
        .all_apps = spec.all_apps,
        .n_apps = spec.n_apps,
        .apps = spec.apps,
        .ttl_s = spec.ttl_s,
        .n_prefixes = spec.n_prefixes,
        .prefixes = spec.prefixes[0],
        .n_rest = spec.n_rest,
        .rest = spec.rest[0],
        .limits = spec.limits,
    };
    err = op_tokens_create(r->ctx, r->principal, &in, &t, token, sizeof token, msg, sizeof msg);
    if (err != API_OK) {
        OPENSSL_cleanse(token, sizeof token);
        reply_op_error(r, err, msg);
        return;
    }
    body = tokens_json(&t, clock_realtime_us());
    if (body != NULL && json_object_set_new(body, "token", json_string(token)) != 0) {
        json_decref(body);
        body = NULL;
    }
    OPENSSL_cleanse(token, sizeof token);
    api_reply_json(r, 201, body);
}

void handle_token_list(struct api_request *r)
{
    struct store_token *tokens = NULL;
    size_t n = 0;
    int64_t now = clock_realtime_us();
    json_t *list = NULL, *body = NULL;
    char msg[OP_MSG_BUF];
    enum api_error err = op_tokens_list(r->ctx, r->principal, &tokens, &n, msg, sizeof msg);

    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, tokens_json(&tokens[i], now)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(tokens);
    body = list != NULL ? json_object() : NULL;
    if (body == NULL) {
        json_decref(list);
    } else if (json_object_set_new(body, "tokens", list) != 0) { /* list stolen even so */
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body); /* NULL: 500 */
}

/* Revoking a revoked token changes nothing, is not an error, and is audited with
 * "already_revoked": true (openapi.yaml revokeToken). */
void handle_token_revoke(struct api_request *r)
{
    struct store_token t;
    char msg[OP_MSG_BUF];
    enum api_error err = op_tokens_revoke(r->ctx, r->principal, r->id, &t, msg, sizeof msg);

    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, tokens_json(&t, clock_realtime_us()));
}

/* GET /v1/tokens/self: the token's id, name, role and apps (from the check that let the request
 * in; nothing more is read), and the operationIds of the routes it may call, so that a client
 * (the dashboard) offers only those. The route table is read as data (routes.h). */
void handle_token_self(struct api_request *r)
{
    json_t *body = op_tokens_self_json(r->principal), *ops = json_array();

    for (size_t i = 0; ops != NULL && i < api_routes_count; i++) {
        const struct api_route *rt = &api_routes[i];
        if (rt->perm == PERM_PUBLIC || !api_route_offered(r->principal, rt))
            continue;
        if (json_array_append_new(ops, json_string(rt->op)) != 0) {
            json_decref(ops);
            ops = NULL;
        }
    }
    if (body == NULL || ops == NULL || json_object_set_new(body, "operations", ops) != 0) {
        if (body == NULL)
            json_decref(ops);
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body);
}
