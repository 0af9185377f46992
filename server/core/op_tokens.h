/*
 * API token operations of the core: create (the token text made here, shown once by the caller,
 * only the hash of its secret stored) and revoke, each with its audit event in the same
 * transaction, the token evicted from the process cache after the commit; the audited refusal
 * of a creation request that breaks a rule; the list. Runs on the caller's thread: a database
 * pool thread for the admin API (op_apps.h says more).
 */
#ifndef OP_TOKENS_H
#define OP_TOKENS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "keyring.h"
#include "principal.h"
#include "service.h"
#include "store.h"

#define OP_MSG_BUF 320 /* room for any operation's message */

/* What to create, already within the creation rules (the admin API's tokens_check). */
struct op_tokens_create_in {
    const char *name;     /* 1..STORE_TOKEN_NAME_MAX UTF-8 characters, no control character */
    enum store_role role; /* STORE_ROLE_* */
    bool all_apps;        /* true: every app (apps ignored) */
    size_t n_apps;        /* otherwise 1..STORE_TOKEN_MAX_APPS distinct sdkappids */
    const uint32_t *apps;
    int64_t ttl_s; /* > 0 seconds, or 0: never expires */
    /* Within the creation rules (signing roles; rest_caller), as strings of the stores' sizes:
     * n_prefixes prefixes at prefixes (each STORE_ID_MAX + 1 bytes apart), n_rest patterns at
     * rest (each STORE_TOKEN_REST_MAX + 1 bytes apart). */
    size_t n_prefixes;
    const char *prefixes;
    size_t n_rest;
    const char *rest;
    struct store_limits limits; /* its rate limits; zero: none */
};

/* A token's app scope as JSON: null for every app, else the array of its sdkappids (NULL when
 * out of memory). For its audit details here and its API replies (admin-api/tokens.c). */
json_t *op_tokens_apps_json(const struct store_token *t);
/* The n strings at base (stride bytes apart) as a JSON array (NULL when out of memory). */
json_t *op_tokens_list_json(const char *base, size_t stride, size_t n);

/* Inserts the token inside the caller's open transaction and appends its "token.create" audit
 * event on behalf of actor (NULL: the server itself; a principal with token_id 0 names the
 * command line). On STORE_OK *out holds the stored row (its secret hash wiped) and token (cap >=
 * KEYRING_TOKEN_BUF) the secret token text "usg_<id>_<secret>": the caller shows it once and
 * wipes it (OPENSSL_cleanse). On failure token is wiped and the caller rolls back. Failures are
 * logged. For the callers that own the transaction (the daemon's start, `token create`). */
enum store_rc op_tokens_insert(struct service *svc, const struct principal *actor,
                               const struct op_tokens_create_in *in, struct store_token *out,
                               char *token, size_t cap) SERVICE_WUR;

/* op_tokens_insert in a transaction of its own, committed. */
enum api_error op_tokens_create(struct service *svc, const struct principal *p,
                                const struct op_tokens_create_in *in, struct store_token *out,
                                char *token, size_t token_cap, char *msg, size_t cap) SERVICE_WUR;

/* Records the refusal of a creation request that breaks a rule: outcome ("invalid_field",
 * "unknown_field", "missing_field") and the field it names, as {"field": field}. */
void op_tokens_refuse_create(struct service *svc, const struct principal *p, const char *outcome,
                             const char *field);

/* Revokes token id; *out is its row as committed. Revoking a revoked token changes nothing, is
 * not an error, and is audited with "already_revoked": true. An unknown id is TOKEN_NOT_FOUND,
 * audited "token_not_found". */
enum api_error op_tokens_revoke(struct service *svc, const struct principal *p, int64_t id,
                                struct store_token *out, char *msg, size_t cap) SERVICE_WUR;

/* What the calling token is, from its principal (no database): {"id", "name", "role", "apps"},
 * apps null for every app. A new object, or NULL when out of memory; caller json_decref()s it. */
json_t *op_tokens_self_json(const struct principal *p);

/* Every token in id order: *tokens a new array of *n (NULL when none); caller free()s it. */
enum api_error op_tokens_list(struct service *svc, const struct principal *p,
                              struct store_token **tokens, size_t *n, char *msg,
                              size_t cap) SERVICE_WUR;

#endif
