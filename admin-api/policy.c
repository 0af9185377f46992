/*
 * Who may call what in the admin API: the authorization decision the dispatcher (http.c) asks
 * for each request, from the route's permission and the caller's role and scope (the rules
 * themselves are the core's, principal.h). Pure functions (no I/O, no allocation), tested
 * route by route in tests/unit/test_authz.c. Calls only router.c (which {param}s a route has).
 */
#include "http.h"

#include <string.h>

enum api_authz api_authorize(const struct principal *p, const struct api_route *route,
                             uint32_t sdkappid)
{
    if (route == NULL)
        return API_AUTHZ_ROLE;
    if (route->perm == PERM_PUBLIC)
        return API_AUTHZ_ALLOW;
    if (p == NULL)
        return API_AUTHZ_UNAUTHENTICATED;
    if (!role_has_perm(p->role, route->perm))
        return API_AUTHZ_ROLE;
    /* A token scoped to some apps must not mint or list tokens beyond its own scope. */
    if ((route->flags & API_ROUTE_ALL_APPS) && !p->all_apps)
        return API_AUTHZ_SCOPE;
    if (api_route_has_param(route, "sdkappid") && !principal_has_app(p, sdkappid))
        return API_AUTHZ_SCOPE;
    return API_AUTHZ_ALLOW;
}

bool api_route_offered(const struct principal *p, const struct api_route *route)
{
    if (p == NULL || route == NULL || !role_has_perm(p->role, route->perm))
        return false;
    return !((route->flags & API_ROUTE_ALL_APPS) && !p->all_apps);
}
