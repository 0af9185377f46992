/*
 * API token creation shared by POST /v1/tokens and `usersigd token create`: one set of rules
 * for names, roles, scopes and lifetimes, and the core's insert of the token together with its
 * "token.create" audit event (op_tokens.h) for callers that own the transaction. The token text
 * is made there and shown once by the caller.
 */
#ifndef API_TOKENS_H
#define API_TOKENS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "keyring.h"
#include "service.h"
#include "store.h"

#define TOKENS_WUR __attribute__((warn_unused_result))

#define TOKENS_TTL_MAX_S INT64_C(315360000) /* ten years, in seconds */
#define TOKENS_WHY_BUF 256                  /* room for any tokens_check() message */

/* What to create. */
struct tokens_spec {
    const char *name;     /* 1..STORE_TOKEN_NAME_MAX UTF-8 characters, no control character */
    enum store_role role; /* STORE_ROLE_* */
    bool all_apps;        /* true: every app (apps ignored) */
    size_t n_apps;        /* otherwise 1..STORE_TOKEN_MAX_APPS distinct sdkappids */
    uint32_t apps[STORE_TOKEN_MAX_APPS];
    int64_t ttl_s; /* 1..TOKENS_TTL_MAX_S seconds, or 0: never expires */
    /* Signing roles only: 0, or 1..STORE_TOKEN_MAX_PREFIXES distinct prefixes of 1..32 bytes
     * of printable ASCII (an identifier signed must start with one). */
    size_t n_prefixes;
    char prefixes[STORE_TOKEN_MAX_PREFIXES][STORE_ID_MAX + 1];
    /* rest_caller only, and required there: 1..STORE_TOKEN_MAX_REST distinct "svc/cmd" or
     * "svc/<star>" patterns. has_rest: the field was given (an empty list is refused). */
    bool has_rest;
    size_t n_rest;
    char rest[STORE_TOKEN_MAX_REST][STORE_TOKEN_REST_MAX + 1];
    struct store_limits limits; /* signs_per_second, batch_tokens_per_day; zero: none */
};

enum tokens_rc {
    TOKENS_OK = 0,
    TOKENS_BAD_NAME, /* why says: empty, too long, not UTF-8, a control character */
    TOKENS_BAD_ROLE,
    TOKENS_BAD_APPS, /* none, too many, 0, over 4294967295 or listed twice */
    TOKENS_BAD_TTL,
    TOKENS_BAD_PREFIXES, /* not a signing role, none, too many, a bad or repeated prefix */
    TOKENS_BAD_REST,     /* not rest_caller, none, too many, a bad or repeated pattern */
    TOKENS_MISSING_REST, /* a rest_caller without rest_allow */
};

/* The limit fields of a JSON body (signs_per_second, batch_tokens_per_day: an integer within
 * its bound, or null for none) into *out, the fields given into *set (may be NULL:
 * STORE_LIMIT_SET_*). -1 with why naming *field when one is outside its bound. */
int tokens_limits_from_body(const json_t *body, struct store_limits *out, unsigned *set,
                            const char **field, char *why, size_t cap) TOKENS_WUR;

/* Checks spec against the rules above. On failure why (TOKENS_WHY_BUF) gets one line naming
 * the field ("name", "role", "apps", "ttl", "identifier_prefixes", "rest_allow") and the rule. */
enum tokens_rc tokens_check(const struct tokens_spec *spec, char *why, size_t cap) TOKENS_WUR;

/* A lifetime: seconds as a bare number ("3600"), or a number followed by s, m, h or d ("30d",
 * "12h"), 1 second to TOKENS_TTL_MAX_S. Returns 0, or -1 when s is not one. */
int tokens_parse_ttl(const char *s, int64_t *out_s) TOKENS_WUR;

/* A comma-separated list of sdkappids ("1400000001,1400000002") into spec->apps/n_apps (and
 * all_apps false). Returns 0, or -1 when an element is not a decimal 1..4294967295 or there are
 * more than STORE_TOKEN_MAX_APPS. Duplicates are left for tokens_check(). */
int tokens_parse_apps(const char *csv, struct tokens_spec *spec) TOKENS_WUR;

/* Creates the token inside the caller's open transaction (op_tokens_insert) and appends its
 * "token.create" audit event on behalf of actor (NULL: the server itself; a principal with token_id
 * 0 names the command line). spec must have passed tokens_check(). On STORE_OK *out holds the
 * stored row and token (cap >= KEYRING_TOKEN_BUF) the secret token text "usg_<id>_<secret>": the
 * caller shows it once and wipes it (OPENSSL_cleanse). On failure token is wiped and the caller
 * rolls back. Failures are logged. */
enum store_rc tokens_create(struct service *svc, const struct principal *actor,
                            const struct tokens_spec *spec, struct store_token *out, char *token,
                            size_t cap) TOKENS_WUR;

/* The API form of a stored token (the Token schema of openapi.yaml), never holding the secret:
 * a new object, or NULL when out of memory; caller json_decref()s it. now_us decides "state"
 * ("active", "expired" or "revoked"). */
json_t *tokens_json(const struct store_token *t, int64_t now_us);

#endif
