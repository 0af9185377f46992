/*
 * API token operations (op_tokens.h): a new token's row and its audit event in one transaction,
 * the audited refusal of a bad creation request, revocation (idempotent, audited either way).
 * The token text is made here and handed to the caller once; only the hash of its secret is
 * stored, and every copy of the secret is wiped before returning.
 */
#include "op_tokens.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define FIELD_AUDIT_MAX 64 /* bytes of a refused field name in its audit event: the reply's */

__attribute__((format(printf, 4, 5))) static enum api_error
fail(char *msg, size_t cap, enum api_error err, const char *fmt, ...)
{
    if (cap > 0)
        msg[0] = '\0';
    if (fmt != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

static void forget_token(struct service *svc, int64_t id)
{
    if (svc->cache != NULL)
        cache_forget_token(svc->cache, id);
}

json_t *op_tokens_list_json(const char *base, size_t stride, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, json_string(base + i * stride)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

json_t *op_tokens_apps_json(const struct store_token *t)
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

/* The audit details of a token: what it is, never its secret. */
static json_t *token_details(const struct store_token *t)
{
    json_t *d = json_object();
    if (d == NULL)
        return NULL;
    if (json_object_set_new(d, "token_id", json_integer(t->id)) != 0 ||
        json_object_set_new(d, "name", json_string(t->name)) != 0 ||
        json_object_set_new(d, "role", json_string(store_role_name(t->role))) != 0 ||
        json_object_set_new(d, "apps", op_tokens_apps_json(t)) != 0 ||
        json_object_set_new(d, "expires_at", service_time_json(t->expires_at_us)) != 0) {
        json_decref(d);
        return NULL;
    }
    if ((t->n_prefixes > 0 &&
         json_object_set_new(
             d, "identifier_prefixes",
             op_tokens_list_json(t->prefixes[0], sizeof t->prefixes[0], t->n_prefixes)) != 0) ||
        (t->n_rest > 0 &&
         json_object_set_new(d, "rest_allow",
                             op_tokens_list_json(t->rest[0], sizeof t->rest[0], t->n_rest)) != 0) ||
        (t->limits.signs_per_second > 0 &&
         json_object_set_new(d, "signs_per_second", json_integer(t->limits.signs_per_second)) !=
             0) ||
        (t->limits.batch_tokens_per_day > 0 &&
         json_object_set_new(d, "batch_tokens_per_day",
                             json_integer(t->limits.batch_tokens_per_day)) != 0)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

enum store_rc op_tokens_insert(struct service *svc, const struct principal *actor,
                               const struct op_tokens_create_in *in, struct store_token *out,
                               char *token, size_t cap)
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
    if (in->name == NULL ||
        (size_t)snprintf(out->name, sizeof out->name, "%s", in->name) >= sizeof out->name) {
        log_error("tokens: the name does not fit");
        return STORE_ERROR;
    }
    if (!in->all_apps && (in->n_apps > STORE_TOKEN_MAX_APPS || in->apps == NULL)) {
        log_error("tokens: the scope does not fit");
        return STORE_ERROR;
    }
    if ((in->n_prefixes > 0 &&
         (in->n_prefixes > STORE_TOKEN_MAX_PREFIXES || in->prefixes == NULL)) ||
        (in->n_rest > 0 && (in->n_rest > STORE_TOKEN_MAX_REST || in->rest == NULL))) {
        log_error("tokens: the prefixes or rest patterns do not fit");
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
    out->role = in->role;
    out->all_apps = in->all_apps;
    out->n_apps = in->all_apps ? 0 : in->n_apps;
    if (out->n_apps > 0)
        memcpy(out->apps, in->apps, out->n_apps * sizeof out->apps[0]);
    out->n_prefixes = in->n_prefixes;
    if (out->n_prefixes > 0)
        memcpy(out->prefixes, in->prefixes, out->n_prefixes * sizeof out->prefixes[0]);
    _Static_assert(sizeof out->prefixes[0] == STORE_ID_MAX + 1 &&
                       sizeof out->rest[0] == STORE_TOKEN_REST_MAX + 1,
                   "op_tokens_create_in's strides");
    out->n_rest = in->n_rest;
    if (out->n_rest > 0)
        memcpy(out->rest, in->rest, out->n_rest * sizeof out->rest[0]);
    out->expires_at_us = in->ttl_s > 0 ? clock_realtime_us() + in->ttl_s * 1000000 : 0;
    out->limits = in->limits;
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

enum api_error op_tokens_create(struct service *svc, const struct principal *p,
                                const struct op_tokens_create_in *in, struct store_token *out,
                                char *token, size_t token_cap, char *msg, size_t cap)
{
    enum store_rc rc;

    fail(msg, cap, API_OK, NULL);
    memset(out, 0, sizeof *out);
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = op_tokens_insert(svc, p, in, out, token, token_cap);
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        if (token != NULL)
            OPENSSL_cleanse(token, token_cap);
        return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
    }
    forget_token(svc, out->id);
    return API_OK;
}

void op_tokens_refuse_create(struct service *svc, const struct principal *p, const char *outcome,
                             const char *field)
{
    /* The client's field name, at most FIELD_AUDIT_MAX bytes of it (cut before a UTF-8
     * continuation byte, so that it stays a JSON string), as the reply shows it: a longer one
     * would make the event too long to record. */
    size_t n = field != NULL ? strnlen(field, FIELD_AUDIT_MAX + 1) : 0;
    if (n > FIELD_AUDIT_MAX)
        for (n = FIELD_AUDIT_MAX; n > 0 && ((unsigned char)field[n] & 0xC0) == 0x80; n--)
            ;
    json_t *d = json_object();
    if (d != NULL && json_object_set_new(d, "field", json_stringn(n > 0 ? field : "", n)) != 0) {
        json_decref(d);
        d = NULL;
    }
    service_audit_refusal(svc, p, "token.create", 0, 0, outcome, d);
}

enum api_error op_tokens_revoke(struct service *svc, const struct principal *p, int64_t id,
                                struct store_token *out, char *msg, size_t cap)
{
    struct store_token before;
    json_t *details = NULL;
    enum store_rc rc;

    fail(msg, cap, API_OK, NULL);
    memset(out, 0, sizeof *out);
    rc = store_begin(svc->st);
    if (rc == STORE_OK)
        rc = store_token_get_locked(svc->st, id, &before);
    if (rc == STORE_NOT_FOUND) {
        json_t *d = json_object();
        if (d != NULL && json_object_set_new(d, "token_id", json_integer(id)) != 0) {
            json_decref(d);
            d = NULL;
        }
        store_rollback(svc->st);
        service_audit_refusal(svc, p, "token.revoke", 0, 0, "token_not_found", d);
        return fail(msg, cap, API_ERR_TOKEN_NOT_FOUND, "no API token has id %lld", (long long)id);
    }
    if (rc == STORE_OK)
        rc = store_token_revoke(svc->st, id);
    if (rc == STORE_OK)
        rc = store_token_get(svc->st, id, out);
    if (rc == STORE_OK) {
        details = token_details(out);
        if (details == NULL || json_object_set_new(details, "already_revoked",
                                                   json_boolean(before.revoked_at_us != 0)) != 0) {
            json_decref(details);
            log_error("tokens: out of memory");
            store_rollback(svc->st);
            memset(out, 0, sizeof *out);
            return fail(msg, cap, API_ERR_INTERNAL, NULL);
        }
        rc = service_audit(svc, p, "token.revoke", 0, 0, "ok", details);
    }
    if (rc == STORE_OK)
        rc = store_commit(svc->st);
    if (rc != STORE_OK) {
        store_rollback(svc->st);
        memset(out, 0, sizeof *out);
        return fail(msg, cap, service_store_error(rc, API_ERR_TOKEN_NOT_FOUND), NULL);
    }
    OPENSSL_cleanse(out->secret_hash, sizeof out->secret_hash);
    forget_token(svc, id);
    return API_OK;
}

enum api_error op_tokens_list(struct service *svc, const struct principal *p,
                              struct store_token **tokens, size_t *n, char *msg, size_t cap)
{
    (void)p; /* the route takes an unscoped token management role */
    fail(msg, cap, API_OK, NULL);
    *tokens = NULL;
    *n = 0;
    enum store_rc rc = store_token_list(svc->st, tokens, n);
    if (rc != STORE_OK) {
        *tokens = NULL;
        *n = 0;
        return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
    }
    return API_OK;
}

json_t *op_tokens_self_json(const struct principal *p)
{
    json_t *o = json_object(), *apps = p->all_apps ? json_null() : json_array();

    for (size_t i = 0; apps != NULL && !p->all_apps && i < p->n_apps; i++) {
        if (json_array_append_new(apps, json_integer(p->apps[i])) != 0) {
            json_decref(apps);
            apps = NULL;
        }
    }
    if (o == NULL || apps == NULL || json_object_set_new(o, "apps", apps) != 0 ||
        json_object_set_new(o, "id", json_integer(p->token_id)) != 0 ||
        json_object_set_new(o, "name", json_string(p->name)) != 0 ||
        json_object_set_new(o, "role", json_string(role_name(p->role))) != 0) {
        if (o == NULL)
            json_decref(apps);
        json_decref(o);
        return NULL;
    }
    return o;
}
