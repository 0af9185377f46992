/*
 * Who may call what in the admin API: the roles' grants (the product's role rules), token
 * scopes, and the authorization decision the dispatcher (http.c) asks for each request. Pure
 * functions (no I/O, no allocation), tested route by route in tests/unit/test_authz.c. Calls
 * only router.c (which {param}s a route has).
 */
#include "http.h"

#include <string.h>

/* ---- roles and what they may do ----------------------------------------------------------- */

static const char *const role_names[API_ROLE_COUNT] = {
    [API_ROLE_ADMIN] = "admin",
    [API_ROLE_KEY_MANAGER] = "key_manager",
    [API_ROLE_SIGNER] = "signer",
    [API_ROLE_AUDITOR] = "auditor",
};

#define PERM(p) (1u << (p))

/* The product's role rules: admin everything; key_manager apps and keys; signer signs and
 * verifies; auditor reads app and key metadata and the audit log (batch manifests included).
 * Token management is admin's alone. Anyone may call a public route. */
static const unsigned role_perms[API_ROLE_COUNT] = {
    [API_ROLE_ADMIN] = PERM(API_PERM_COUNT) - 1u,
    [API_ROLE_KEY_MANAGER] = PERM(API_PERM_PUBLIC) | PERM(API_PERM_APPS_READ) |
                             PERM(API_PERM_APPS_WRITE) | PERM(API_PERM_KEYS_READ) |
                             PERM(API_PERM_KEYS_WRITE),
    [API_ROLE_SIGNER] = PERM(API_PERM_PUBLIC) | PERM(API_PERM_SIGN) | PERM(API_PERM_VERIFY),
    [API_ROLE_AUDITOR] = PERM(API_PERM_PUBLIC) | PERM(API_PERM_APPS_READ) |
                         PERM(API_PERM_KEYS_READ) | PERM(API_PERM_AUDIT_READ),
};

const char *api_role_name(enum api_role role)
{
    return (unsigned)role < API_ROLE_COUNT ? role_names[role] : "unknown";
}

int api_role_parse(const char *name)
{
    for (int i = 0; name != NULL && i < API_ROLE_COUNT; i++)
        if (strcmp(role_names[i], name) == 0)
            return i;
    return -1;
}

bool api_role_has_perm(enum api_role role, enum api_perm perm)
{
    if ((unsigned)role >= API_ROLE_COUNT || (unsigned)perm >= API_PERM_COUNT)
        return false;
    return (role_perms[role] & PERM(perm)) != 0;
}

bool api_principal_has_app(const struct api_principal *p, uint32_t sdkappid)
{
    if (p == NULL || sdkappid == 0)
        return false;
    if (p->all_apps)
        return true;
    for (size_t i = 0; i < p->n_apps && i < API_PRINCIPAL_MAX_APPS; i++)
        if (p->apps[i] == sdkappid)
            return true;
    return false;
}

enum api_authz api_authorize(const struct api_principal *p, const struct api_route *route,
                             uint32_t sdkappid)
{
    if (route == NULL)
        return API_AUTHZ_ROLE;
    if (route->perm == API_PERM_PUBLIC)
        return API_AUTHZ_ALLOW;
    if (p == NULL)
        return API_AUTHZ_UNAUTHENTICATED;
    if (!api_role_has_perm(p->role, route->perm))
        return API_AUTHZ_ROLE;
    /* A token scoped to some apps must not mint or list tokens beyond its own scope. */
    if ((route->flags & API_ROUTE_ALL_APPS) && !p->all_apps)
        return API_AUTHZ_SCOPE;
    if (api_route_has_param(route, "sdkappid") && !api_principal_has_app(p, sdkappid))
        return API_AUTHZ_SCOPE;
    return API_AUTHZ_ALLOW;
}
