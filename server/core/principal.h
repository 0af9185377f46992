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

#define PRINCIPAL_NAME_BUF 513 /* 128 UTF-8 characters and a NUL */
#define PRINCIPAL_MAX_APPS 256 /* sdkappids a token may be scoped to */

enum role {
    ROLE_ADMIN = 0,   /* everything */
    ROLE_KEY_MANAGER, /* apps and keys */
    ROLE_SIGNER,      /* sign and verify UserSigs of its apps */
    ROLE_AUDITOR,     /* read apps, keys and the audit log */
    ROLE_COUNT
};

const char *role_name(enum role role); /* "admin", "key_manager", "signer", "auditor" */
int role_parse(const char *name);      /* -1 when unknown */

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
    PERM_METRICS, /* the Prometheus scrape (/metrics) */
    PERM_COUNT
};

bool role_has_perm(enum role role, enum perm perm);

/* Who is calling: filled by a token check. Plain data, no free needed. */
struct principal {
    int64_t token_id;
    char name[PRINCIPAL_NAME_BUF]; /* the token's name, for logs and audit (not a secret) */
    enum role role;
    bool all_apps; /* true: every app; otherwise only the n_apps sdkappids of apps */
    size_t n_apps; /* 0..PRINCIPAL_MAX_APPS */
    uint32_t apps[PRINCIPAL_MAX_APPS];
};

/* True when p may act on sdkappid (all_apps, or sdkappid in apps). False for NULL or 0. */
bool principal_has_app(const struct principal *p, uint32_t sdkappid);

#endif
