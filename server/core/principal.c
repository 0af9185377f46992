/*
 * The product's role rules and token scopes (principal.h). Pure functions, tested in
 * tests/unit/test_authz.c.
 */
#include "principal.h"

#include <string.h>

static const char *const role_names[ROLE_COUNT] = {
    [ROLE_ADMIN] = "admin",
    [ROLE_KEY_MANAGER] = "key_manager",
    [ROLE_SIGNER] = "signer",
    [ROLE_AUDITOR] = "auditor",
};

#define PERM_BIT(p) (1u << (p))

/* admin everything; key_manager apps and keys; signer signs and verifies; auditor reads app and
 * key metadata and the audit log (batch manifests included), and the metrics. Token management
 * is admin's alone. Anyone may call a public route. */
static const unsigned role_perms[ROLE_COUNT] = {
    [ROLE_ADMIN] = PERM_BIT(PERM_COUNT) - 1u,
    [ROLE_KEY_MANAGER] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_APPS_READ) |
                         PERM_BIT(PERM_APPS_WRITE) | PERM_BIT(PERM_KEYS_READ) |
                         PERM_BIT(PERM_KEYS_WRITE),
    [ROLE_SIGNER] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_SIGN) | PERM_BIT(PERM_VERIFY),
    [ROLE_AUDITOR] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_APPS_READ) | PERM_BIT(PERM_KEYS_READ) |
                     PERM_BIT(PERM_AUDIT_READ) | PERM_BIT(PERM_METRICS),
};

const char *role_name(enum role role)
{
    return (unsigned)role < ROLE_COUNT ? role_names[role] : "unknown";
}

int role_parse(const char *name)
{
    for (int i = 0; name != NULL && i < ROLE_COUNT; i++)
        if (strcmp(role_names[i], name) == 0)
            return i;
    return -1;
}

bool role_has_perm(enum role role, enum perm perm)
{
    if ((unsigned)role >= ROLE_COUNT || (unsigned)perm >= PERM_COUNT)
        return false;
    return (role_perms[role] & PERM_BIT(perm)) != 0;
}

bool principal_has_app(const struct principal *p, uint32_t sdkappid)
{
    if (p == NULL || sdkappid == 0)
        return false;
    if (p->all_apps)
        return true;
    for (size_t i = 0; i < p->n_apps && i < PRINCIPAL_MAX_APPS; i++)
        if (p->apps[i] == sdkappid)
            return true;
    return false;
}
