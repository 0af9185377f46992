/*
 * api_authorize for every route of the real table x role x scope, against expectations written
 * here from the product's role rules (not from policy.c), and the principal and role helpers.
 * Pure: no server, no socket.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "routes.h"
#include "testlib.h"

#define APP_A 1400000000u
#define APP_B 1400000001u

/* The product's rules, written from the spec rather than from routes.c. */
static unsigned expected_roles(const struct api_route *r, bool *public_route)
{
    /* Both signing roles sign and verify; which identifiers each may sign is the core's rule
     * (sign.h), not the route's. rest_caller calls the gateway (its rest_allow is the core's
     * rule, gateway.h), and bulk account import and check. */
    const unsigned A = 1u << ROLE_ADMIN, K = 1u << ROLE_KEY_MANAGER,
                   S = (1u << ROLE_SIGNER) | (1u << ROLE_ADMIN_SIGNER), U = 1u << ROLE_AUDITOR,
                   ALL = (1u << ROLE_COUNT) - 1u;
    /* The dashboard's files hold no data: its API calls carry the token. */
    *public_route = strcmp(r->pattern, "/healthz") == 0 || strcmp(r->pattern, "/readyz") == 0 ||
                    strcmp(r->pattern, "/ui") == 0 || strncmp(r->pattern, "/ui/", 4) == 0;
    if (*public_route)
        return ALL;
    /* Any token may ask what it is, whatever its role, a scoped one included. */
    if (strcmp(r->pattern, "/v1/tokens/self") == 0)
        return (1u << ROLE_COUNT) - 1u;
    if (strcmp(r->pattern, "/metrics") == 0)
        return A | U;
    if (strncmp(r->pattern, "/v1/tokens", 10) == 0)
        return A;
    if (strncmp(r->pattern, "/v1/webhook", 11) == 0) /* admin only, every app */
        return A;
    if (strncmp(r->pattern, "/v1/audit", 9) == 0)
        return A | U;
    /* Batch manifests are read like the audit log, not by the signers who make them. */
    if (r->method == EVHTTP_REQ_GET && strstr(r->pattern, "/usersigs/batches") != NULL)
        return A | U;
    if (strstr(r->pattern, "/usersigs") != NULL) /* sign, batch, verify */
        return A | S;
    /* A re-issue hands out new UserSigs: signing, not key management. */
    if (strstr(r->pattern, "/keys/reissue") != NULL)
        return A | S;
    if (strstr(r->pattern, "/tencent/") != NULL || strstr(r->pattern, "/accounts/") != NULL)
        return A | (1u << ROLE_REST_CALLER);
    if (strncmp(r->pattern, "/v1/apps", 8) == 0)
        return r->method == EVHTTP_REQ_GET ? A | K | U : A | K;
    return 0; /* a route these rules do not know: fails below */
}

static void test_authorize_matrix(void)
{
    static const uint32_t apps[] = {APP_A, APP_B, 0};
    int cells = 0;
    for (size_t i = 0; i < api_routes_count; i++) {
        const struct api_route *rt = &api_routes[i];
        bool public_route;
        unsigned roles = expected_roles(rt, &public_route);
        bool has_app = strstr(rt->pattern, "{sdkappid}") != NULL;
        bool tokens = (strncmp(rt->pattern, "/v1/tokens", 10) == 0 &&
                       strcmp(rt->pattern, "/v1/tokens/self") != 0) ||
                      strncmp(rt->pattern, "/v1/webhook", 11) == 0 ||
                      strcmp(rt->pattern, "/metrics") == 0; /* every app's: unscoped only */

        CHECK(roles != 0, "%s %s: no rule covers it", api_method_name(rt->method), rt->pattern);
        for (size_t a = 0; a < 3; a++) {
            enum api_authz got = api_authorize(NULL, rt, apps[a]);
            CHECK(got == (public_route ? API_AUTHZ_ALLOW : API_AUTHZ_UNAUTHENTICATED),
                  "%s %s without a token: %d", api_method_name(rt->method), rt->pattern, got);
        }
        for (int role = 0; role < ROLE_COUNT; role++) {
            for (int scoped = 0; scoped < 2; scoped++) {
                struct principal p;
                memset(&p, 0, sizeof p);
                p.role = role;
                p.all_apps = !scoped;
                p.n_apps = scoped ? 1 : 0;
                p.apps[0] = APP_A;
                for (size_t a = 0; a < 3; a++) {
                    enum api_authz want = API_AUTHZ_ALLOW, got;
                    if (public_route)
                        want = API_AUTHZ_ALLOW;
                    else if (!(roles & (1u << role)))
                        want = API_AUTHZ_ROLE;
                    else if (tokens && scoped)
                        want = API_AUTHZ_SCOPE;
                    else if (has_app && (apps[a] == 0 || (scoped && apps[a] != APP_A)))
                        want = API_AUTHZ_SCOPE;
                    got = api_authorize(&p, rt, apps[a]);
                    CHECK(got == want, "%s %s, %s %s, app %u: %d, want %d",
                          api_method_name(rt->method), rt->pattern, role_name(role),
                          scoped ? "scoped" : "all apps", apps[a], got, want);
                    cells++;
                }
            }
        }
    }
    CHECK(cells == (int)api_routes_count * ROLE_COUNT * 2 * 3, "cells %d", cells);

    struct principal p;
    memset(&p, 0, sizeof p);
    p.n_apps = 2;
    p.apps[0] = 5;
    p.apps[1] = 7;
    CHECK(principal_has_app(&p, 7) && !principal_has_app(&p, 6) && !principal_has_app(&p, 0) &&
              !principal_has_app(NULL, 7),
          "principal_has_app");
    p.all_apps = true;
    CHECK(principal_has_app(&p, 6) && !principal_has_app(&p, 0), "all apps");
    CHECK(role_parse("key_manager") == ROLE_KEY_MANAGER && role_parse("root") == -1 &&
              strcmp(role_name(ROLE_AUDITOR), "auditor") == 0,
          "role names");
    CHECK(api_authorize(&p, NULL, 1) != API_AUTHZ_ALLOW, "no route, no access");
}

int main(void)
{
    test_authorize_matrix();
    return test_done("authz");
}
