/*
 * Who is calling and what they may do: the product's roles, the permissions they grant, and the
 * principal an API token stands for (its role and the apps it is scoped to). Defined in the core
 * because every operation decides on them; the admin API maps routes to permissions
 * (admin-api/policy.c) and fills a principal from a token check. Pure data and functions.
 */
#ifndef PRINCIPAL_H
#define PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRINCIPAL_NAME_BUF 513    /* 128 UTF-8 characters and a NUL */
#define PRINCIPAL_MAX_APPS 256    /* sdkappids a token may be scoped to */
#define PRINCIPAL_MAX_PREFIXES 16 /* identifier prefixes of a signing token */
#define PRINCIPAL_PREFIX_MAX 32   /* bytes of one prefix (a UserID is at most 32) */
#define PRINCIPAL_MAX_REST 32     /* servicename/command patterns of a rest_caller token */
#define PRINCIPAL_REST_MAX 64     /* bytes of one pattern */

enum role {
    ROLE_ADMIN = 0,    /* everything */
    ROLE_KEY_MANAGER,  /* apps and keys */
    ROLE_SIGNER,       /* sign and verify UserSigs of its apps */
    ROLE_AUDITOR,      /* read apps, keys and the audit log */
    ROLE_ADMIN_SIGNER, /* as signer, and also for its apps' administrator identifiers */
    ROLE_REST_CALLER,  /* call Tencent's REST API through the gateway, for its apps */
    ROLE_COUNT
};

/* "admin", "key_manager", "signer", "auditor", "admin_signer", "rest_caller" */
const char *role_name(enum role role);
int role_parse(const char *name); /* -1 when unknown */

/* What an operation (and so a route) needs. */
enum perm {
    PERM_PUBLIC = 0, /* no token at all (health checks) */
    PERM_APPS_READ,
    PERM_APPS_WRITE,
    PERM_KEYS_READ,
    PERM_KEYS_WRITE,
    PERM_SIGN,
    PERM_VERIFY,
    PERM_AUDIT_READ,
    PERM_TOKENS,
    PERM_METRICS,      /* the Prometheus scrape (/metrics) */
    PERM_TENCENT_REST, /* call Tencent's REST API through the gateway (admin, rest_caller) */
    PERM_SELF,     /* any valid token, whatever its role: what the token is (GET /v1/tokens/self) */
    PERM_WEBHOOKS, /* webhook endpoints and their deliveries (admin only) */
    PERM_COUNT
};

bool role_has_perm(enum role role, enum perm perm);

/* True for the roles that may sign a UserSig for an app's administrator identifiers. */
bool role_signs_admin_ids(enum role role);

/* Who is calling: filled by a token check. Plain data, no free needed (bounded arrays). */
struct principal {
    int64_t token_id;
    char name[PRINCIPAL_NAME_BUF]; /* the token's name, for logs and audit (not a secret) */
    enum role role;
    bool all_apps; /* true: every app; otherwise only the n_apps sdkappids of apps */
    size_t n_apps; /* 0..PRINCIPAL_MAX_APPS */
    uint32_t apps[PRINCIPAL_MAX_APPS];
    /* Signing roles: 0 (any identifier) or the prefixes an identifier must start with. */
    size_t n_prefixes; /* 0..PRINCIPAL_MAX_PREFIXES */
    char prefixes[PRINCIPAL_MAX_PREFIXES][PRINCIPAL_PREFIX_MAX + 1];
    /* rest_caller: the "svc/cmd" or "svc/<star>" patterns it may call (1..PRINCIPAL_MAX_REST). */
    size_t n_rest;
    char rest[PRINCIPAL_MAX_REST][PRINCIPAL_REST_MAX + 1];
    /* The token's rate limits (0: none): single signs a second, batch lines a UTC day. */
    uint32_t signs_per_second;
    int64_t batch_tokens_per_day;
};

/* True when p may act on sdkappid (all_apps, or sdkappid in apps). False for NULL or 0. */
bool principal_has_app(const struct principal *p, uint32_t sdkappid);

/* True when p's prefixes allow identifier id (len bytes): p has none, or id starts with one.
 * False for NULL. */
bool principal_prefix_allows(const struct principal *p, const char *id, size_t len);

/* True when p's rest patterns allow calling service/command (an exact "svc/cmd" or "svc/<star>").
 * False for NULL, a principal without patterns, and a service or command that is empty or holds
 * a '/'. For the REST gateway's routes. */
bool principal_rest_allows(const struct principal *p, const char *service, const char *command);

/* The rules of one identifier prefix (1..PRINCIPAL_PREFIX_MAX bytes of printable ASCII) and of
 * one rest pattern (servicename/command or servicename/<star> where <star> is a "*"; each part 1 or
 * more of A-Z a-z 0-9 _ . -, PRINCIPAL_REST_MAX bytes at most), as token creation checks them. */
bool principal_prefix_valid(const char *s, size_t len);
bool principal_rest_pattern_valid(const char *s, size_t len);

#endif
