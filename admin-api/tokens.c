/*
 * Admin API tokens: create, list and revoke API tokens, plus the creation rules and the
 * create-with-audit function that `usersigd token create` shares (tokens.h). The token text is
 * shown once, in the reply that creates it; only the SHA-256 of its secret is stored.
 */
#include "tokens.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "handlers.h"
#include "log.h"

/* ---- rules shared with the command line -------------------------------------------------------
 */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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
    if ((unsigned)spec->role > STORE_ROLE_AUDITOR) {
        snprintf(why, cap, "role: one of admin, key_manager, signer, auditor");
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
    return TOKENS_OK;
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

static json_t *apps_json(const struct store_token *t)
{
    json_t *a;
    if (t->all_apps)
        return json_null();
    a = json_array();
    for (size_t i = 0; a != NULL && i < t->n_apps; i++) {
        if (json_array_append_new(a, json_integer(t->apps[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
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
        json_object_set_new(o, "apps", apps_json(t)) != 0 ||
        json_object_set_new(o, "state", json_string(state)) != 0 ||
        json_object_set_new(o, "created_at", service_time_json(t->created_at_us)) != 0 ||
        json_object_set_new(o, "expires_at", service_time_json(t->expires_at_us)) != 0 ||
        json_object_set_new(o, "revoked_at", service_time_json(t->revoked_at_us)) != 0 ||
        json_object_set_new(o, "last_used_at", service_time_json(t->last_used_at_us)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The audit details of a token: what it is, never its secret. */
static json_t *token_details(const struct store_token *t)
{
    json_t *d = json_object();
    if (d == NULL)
        return NULL;
    if (json_object_set_new(d, "token_id", json_integer(t->id)) != 0 ||
        json_object_set_new(d, "name", json_string(t->name)) != 0 ||
        json_object_set_new(d, "role", json_string(store_role_name(t->role))) != 0 ||
        json_object_set_new(d, "apps", apps_json(t)) != 0 ||
        json_object_set_new(d, "expires_at", service_time_json(t->expires_at_us)) != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
}

enum store_rc tokens_create(struct service *svc, const struct principal *actor,
                            const struct tokens_spec *spec, struct store_token *out, char *token,
                            size_t cap)
{
    char tmp[KEYRING_TOKEN_BUF];
    const char *secret;
    json_t *details = NULL;
    enum store_rc rc = STORE_ERROR;
    enum keyring_rc krc;
    int n;

    memset(out, 0, sizeof *out);
    if (token == NULL || cap < KEYRING_TOKEN_BUF) {
        log_error("tokens: the token buffer is too small");
        return STORE_ERROR;
    }
    token[0] = '\0';
    if ((size_t)snprintf(out->name, sizeof out->name, "%s", spec->name) >= sizeof out->name) {
        log_error("tokens: the name does not fit");
        return STORE_ERROR;
    }
    /* The id is the row's, known only after the insert, while the stored hash covers the secret
     * alone: make the secret under a placeholder id, then write the token with the real one. */
    krc = keyring_token_new(1, tmp, sizeof tmp, out->secret_hash);
    if (krc != KEYRING_OK) {
        log_error("tokens: cannot make a token: %s", keyring_rc_message(krc));
        goto done;
    }
    secret = tmp + strlen(tmp) - KEYRING_TOKEN_SECRET_CHARS;
    out->role = spec->role;
    out->all_apps = spec->all_apps;
    out->n_apps = spec->all_apps ? 0 : spec->n_apps;
    memcpy(out->apps, spec->apps, out->n_apps * sizeof out->apps[0]);
    out->expires_at_us = spec->ttl_s > 0 ? now_us() + spec->ttl_s * 1000000 : 0;
    rc = store_token_insert(svc->st, out);
    if (rc != STORE_OK)
        goto done;
    n = snprintf(token, cap, "usg_%lld_%s", (long long)out->id, secret);
    if (n < 0 || (size_t)n >= cap) {
        log_error("tokens: the token does not fit its buffer");
        rc = STORE_ERROR;
        goto done;
    }
    details = token_details(out);
    if (details == NULL) {
        log_error("tokens: out of memory");
        rc = STORE_ERROR;
        goto done;
    }
    rc = service_audit(svc, actor, "token.create", 0, 0, "ok", details);
done:
    OPENSSL_cleanse(tmp, sizeof tmp);
    OPENSSL_cleanse(out->secret_hash, sizeof out->secret_hash);
    if (rc != STORE_OK)
        OPENSSL_cleanse(token, cap);
    return rc;
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
    {NULL, 0, 0},
};
static const struct api_field create_fields_str_ttl[] = {
    {"name", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"role", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"apps", API_FIELD_INT_ARRAY, 0},
    {"ttl", API_FIELD_STRING, 0},
    {NULL, 0, 0},
};

static json_t *field_details(const char *field)
{
    json_t *d = json_object();
    if (d != NULL && json_object_set_new(d, "field", json_string(field)) != 0) {
        json_decref(d);
        d = NULL;
    }
    return d;
}

/* Fills spec from a body that passed the field check; -1 with why (naming the field) when a
 * value is outside its rule. */
static int spec_from_body(const json_t *body, struct tokens_spec *spec, const char **field,
                          char *why, size_t cap)
{
    const json_t *apps = json_object_get(body, "apps");
    const json_t *ttl = json_object_get(body, "ttl");
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
    }
    return -1;
}

void handle_token_create(struct api_request *r)
{
    struct service *svc = r->ctx;
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
    char why[TOKENS_WHY_BUF];
    const char *field = NULL;
    enum api_fields_rc frc;
    enum store_rc rc;
    json_t *body = NULL;

    frc = api_fields_check(r->body, fields, &field);
    if (frc != API_FIELDS_OK) {
        service_audit_refusal(svc, r->principal, "token.create", 0, 0,
                              (unsigned)frc <= API_FIELDS_MISSING ? outcomes[frc] : "invalid_field",
                              field_details(field != NULL ? field : ""));
        if (frc == API_FIELDS_INVALID && field != NULL && strcmp(field, "ttl") == 0) {
            api_reply_error(r, API_ERR_INVALID_FIELD, "%s", TTL_RULE);
            return;
        }
        if (api_require_fields(r, fields) == 0)
            api_reply_error(r, API_ERR_INTERNAL, NULL); /* cannot happen: the same check */
        return;
    }
    if (spec_from_body(r->body, &spec, &field, why, sizeof why) != 0) {
        service_audit_refusal(svc, r->principal, "token.create", 0, 0, "invalid_field",
                              field_details(field));
        api_reply_error(r, API_ERR_INVALID_FIELD, "%s", why);
        return;
    }
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = tokens_create(svc, r->principal, &spec, &t, token, sizeof token);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        OPENSSL_cleanse(token, sizeof token);
        api_reply_error(r, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
        return;
    }
    body = tokens_json(&t, now_us());
    if (body != NULL && json_object_set_new(body, "token", json_string(token)) != 0) {
        json_decref(body);
        body = NULL;
    }
    OPENSSL_cleanse(token, sizeof token);
    api_reply_json(r, 201, body);
}

void handle_token_list(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct store_token *tokens = NULL;
    size_t n = 0;
    int64_t now = now_us();
    json_t *list = NULL, *body = NULL;
    enum store_rc rc = store_token_list(svc->st, &tokens, &n);

    if (rc != STORE_OK) {
        api_reply_error(r, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
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
    struct service *svc = r->ctx;
    struct store_token before, after;
    json_t *details = NULL;
    enum store_rc rc;

    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_token_get(svc->st, r->id, &before);
    if (rc == STORE_NOT_FOUND) {
        json_t *d = json_object();
        if (d != NULL && json_object_set_new(d, "token_id", json_integer(r->id)) != 0) {
            json_decref(d);
            d = NULL;
        }
        service_audit_refusal(svc, r->principal, "token.revoke", 0, 0, "token_not_found", d);
        api_reply_error(r, API_ERR_TOKEN_NOT_FOUND, "no API token has id %lld", (long long)r->id);
        return;
    }
    if (rc == STORE_OK)
        rc = store_token_revoke(svc->st, r->id);
    if (rc == STORE_OK)
        rc = store_token_get(svc->st, r->id, &after);
    if (rc == STORE_OK) {
        details = token_details(&after);
        if (details == NULL || json_object_set_new(details, "already_revoked",
                                                   json_boolean(before.revoked_at_us != 0)) != 0) {
            json_decref(details);
            log_error("tokens: out of memory");
            store_rollback(svc->st);
            api_reply_error(r, API_ERR_INTERNAL, NULL);
            return;
        }
        rc = service_audit(svc, r->principal, "token.revoke", 0, 0, "ok", details);
    }
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        api_reply_error(r, service_store_error(rc, API_ERR_TOKEN_NOT_FOUND), NULL);
        return;
    }
    api_reply_json(r, 200, tokens_json(&after, now_us()));
}
