/*
 * Routing and who may call what: the route table of the admin API, the roles' grants, the
 * authorization decision, and how a request path finds its route (a literal segment beats a
 * {param}; params are typed and range-checked here, before any handler sees them). The
 * decisions are pure functions (no I/O, no allocation), tested route by route. A route whose
 * handler is not written yet points at the 501 stub.
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "http.h"

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

/* ---- matching a path to a route -------------------------------------------------------------- */

struct seg {
    const char *p;
    size_t n;
};

/* "/a/b" -> {a, b}. -1 for no leading '/', an empty segment, or too many. */
static int split_path(const char *path, struct seg *segs)
{
    int n = 0;
    if (path == NULL || path[0] != '/')
        return -1;
    while (*path == '/') {
        const char *s = ++path;
        while (*path != '/' && *path != '\0')
            path++;
        if (path == s || n == API_PATH_MAX_SEGMENTS)
            return -1;
        segs[n].p = s;
        segs[n].n = (size_t)(path - s);
        n++;
    }
    return n;
}

static bool seg_is_param(const struct seg *s)
{
    return s->n >= 3 && s->p[0] == '{' && s->p[s->n - 1] == '}';
}

static const struct param_type {
    const char *name;
    int64_t min, max;
    const char *rule;
} param_types[] = {
    {"sdkappid", 1, 4294967295LL, "an integer from 1 to 4294967295"},
    {"version", 1, 2147483647LL, "an integer from 1 to 2147483647"},
    {"id", 1, INT64_MAX, "an integer from 1 to 9223372036854775807"},
};

static const struct param_type *param_type_of(const struct seg *s)
{
    for (size_t i = 0; i < sizeof param_types / sizeof param_types[0]; i++)
        if (s->n - 2 == strlen(param_types[i].name) &&
            memcmp(s->p + 1, param_types[i].name, s->n - 2) == 0)
            return &param_types[i];
    return NULL;
}

/* Canonical decimal (no sign, no leading zero) within the type's range. */
static bool parse_param(const struct seg *s, const struct param_type *t, int64_t *out)
{
    uint64_t v = 0;
    if (s->n == 0 || s->n > 19 || (s->p[0] == '0'))
        return false;
    for (size_t i = 0; i < s->n; i++) {
        if (s->p[i] < '0' || s->p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s->p[i] - '0'); /* 19 digits cannot overflow 64 bits */
    }
    if (v < (uint64_t)t->min || v > (uint64_t)t->max)
        return false;
    *out = (int64_t)v;
    return true;
}

/* -1 when pattern does not match the path's segments; else a score where a literal segment
 * earlier in the path counts more than any number of later ones. */
static int pattern_score(const char *pattern, const struct seg *path, int n)
{
    struct seg pat[API_PATH_MAX_SEGMENTS];
    int score = 0;
    if (split_path(pattern, pat) != n)
        return -1;
    for (int k = 0; k < n; k++) {
        if (seg_is_param(&pat[k]))
            continue;
        if (pat[k].n != path[k].n || memcmp(pat[k].p, path[k].p, path[k].n) != 0)
            return -1;
        score |= 1 << (API_PATH_MAX_SEGMENTS - 1 - k);
    }
    return score;
}

enum api_match_rc api_route_match(const struct api_route *routes, size_t n,
                                  enum evhttp_cmd_type method, const char *path,
                                  struct api_match *out)
{
    struct seg segs[API_PATH_MAX_SEGMENTS], pat[API_PATH_MAX_SEGMENTS];
    const char *best = NULL;
    int best_score = -1, nsegs;

    memset(out, 0, sizeof *out);
    if (path == NULL || strlen(path) > API_PATH_MAX || (nsegs = split_path(path, segs)) < 0)
        return API_MATCH_NO_PATH;
    for (size_t i = 0; i < n; i++) {
        int score = pattern_score(routes[i].pattern, segs, nsegs);
        if (score > best_score) {
            best_score = score;
            best = routes[i].pattern;
        }
    }
    if (best == NULL)
        return API_MATCH_NO_PATH;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].pattern, best) != 0)
            continue;
        out->allow |= (unsigned)routes[i].method;
        if (routes[i].method == method)
            out->route = &routes[i];
    }
    if (out->route == NULL)
        return API_MATCH_NO_METHOD;
    out->allow = 0;
    split_path(best, pat);
    for (int k = 0; k < nsegs; k++) {
        const struct param_type *t;
        int64_t v;
        if (!seg_is_param(&pat[k]) || (t = param_type_of(&pat[k])) == NULL)
            continue;
        if (!parse_param(&segs[k], t, &v)) {
            out->bad_param = t->name;
            out->bad_param_rule = t->rule;
            return API_MATCH_BAD_PARAM;
        }
        if (t == &param_types[0])
            out->sdkappid = (uint32_t)v;
        else if (t == &param_types[1])
            out->key_version = (uint32_t)v;
        else
            out->id = v;
    }
    return API_MATCH_OK;
}

bool api_route_has_param(const struct api_route *route, const char *name)
{
    char want[40];
    if (route == NULL || route->pattern == NULL)
        return false;
    snprintf(want, sizeof want, "{%s}", name);
    return strstr(route->pattern, want) != NULL;
}

const char *api_method_name(enum evhttp_cmd_type method)
{
    switch (method) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

static bool literal_ok(const struct seg *s)
{
    for (size_t i = 0; i < s->n; i++) {
        char c = s->p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

int api_routes_check(const struct api_route *routes, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct api_route *r = &routes[i];
        struct seg a[API_PATH_MAX_SEGMENTS], b[API_PATH_MAX_SEGMENTS];
        int na = r->pattern ? split_path(r->pattern, a) : -1;
        const char *why = NULL;

        if (na <= 0)
            why = "malformed pattern";
        else if (r->handler == NULL || r->op == NULL || r->op[0] == '\0')
            why = "no handler or no op";
        else if (strcmp(api_method_name(r->method), "?") == 0 || r->method == EVHTTP_REQ_HEAD ||
                 r->method == EVHTTP_REQ_OPTIONS || r->method == EVHTTP_REQ_TRACE ||
                 r->method == EVHTTP_REQ_CONNECT)
            why = "method not GET, POST, PUT, PATCH or DELETE";
        else if ((unsigned)r->perm >= API_PERM_COUNT || (unsigned)r->body > API_BODY_RAW)
            why = "unknown perm or body kind";
        else if ((r->method == EVHTTP_REQ_GET || r->method == EVHTTP_REQ_DELETE) &&
                 r->body != API_BODY_NONE)
            why = "GET and DELETE take no body";
        for (int k = 0; why == NULL && k < na; k++) {
            if (seg_is_param(&a[k])) {
                if (param_type_of(&a[k]) == NULL)
                    why = "unknown {param}";
                for (int j = 0; j < k && why == NULL; j++)
                    if (a[j].n == a[k].n && memcmp(a[j].p, a[k].p, a[k].n) == 0)
                        why = "a {param} twice";
            } else if (!literal_ok(&a[k])) {
                why = "literal segment outside [a-z0-9._-]";
            }
        }
        for (size_t j = 0; why == NULL && j < i; j++) {
            int nb = split_path(routes[j].pattern, b);
            bool same_shape = nb == na;
            for (int k = 0; same_shape && k < na; k++) {
                bool pa = seg_is_param(&a[k]), pb = seg_is_param(&b[k]);
                same_shape =
                    pa == pb && (pa || (a[k].n == b[k].n && memcmp(a[k].p, b[k].p, a[k].n) == 0));
            }
            if (same_shape && strcmp(r->pattern, routes[j].pattern) != 0)
                why = "matches the same paths as an earlier pattern";
            else if (same_shape && r->method == routes[j].method)
                why = "method and pattern listed twice";
            else if (strcmp(r->op, routes[j].op) == 0)
                why = "op listed twice";
        }
        if (why != NULL) {
            snprintf(err, errlen, "route %zu (%s %s): %s", i, api_method_name(r->method),
                     r->pattern ? r->pattern : "(null)", why);
            return -1;
        }
    }
    return 0;
}

/* ---- the table ---------------------------------------------------------------------------- */

static void handle_healthz(struct api_request *r)
{
    json_t *body = json_object();
    if (body != NULL && json_object_set_new(body, "status", json_string("ok")) != 0) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body);
}

#define TODO api_handler_not_implemented

/* Keep in the order of openapi.yaml. */
const struct api_route api_routes[] = {
    {EVHTTP_REQ_GET, "/healthz", "getHealth", API_PERM_PUBLIC, API_BODY_NONE, 0, handle_healthz},
    {EVHTTP_REQ_GET, "/readyz", "getReady", API_PERM_PUBLIC, API_BODY_NONE, 0, handle_readyz},

    {EVHTTP_REQ_POST, "/v1/apps", "createApp", API_PERM_APPS_WRITE, API_BODY_JSON, 0,
     handle_app_create},
    {EVHTTP_REQ_GET, "/v1/apps", "listApps", API_PERM_APPS_READ, API_BODY_NONE, 0, handle_app_list},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}", "getApp", API_PERM_APPS_READ, API_BODY_NONE, 0,
     handle_app_get},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}", "updateApp", API_PERM_APPS_WRITE, API_BODY_JSON, 0,
     handle_app_update},

    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys", "addKey", API_PERM_KEYS_WRITE, API_BODY_JSON, 0,
     handle_key_add},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/keys", "listKeys", API_PERM_KEYS_READ, API_BODY_NONE, 0,
     handle_key_list},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/rotate", "rotateKey", API_PERM_KEYS_WRITE,
     API_BODY_JSON, 0, handle_key_rotate},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/disable", "disableKey",
     API_PERM_KEYS_WRITE, API_BODY_JSON_OPTIONAL, 0, handle_key_disable},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/enable", "enableKey", API_PERM_KEYS_WRITE,
     API_BODY_JSON_OPTIONAL, 0, handle_key_enable},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/keys/{version}/destroy", "destroyKey",
     API_PERM_KEYS_WRITE, API_BODY_JSON, 0, handle_key_destroy},

    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/usersigs", "signUserSig", API_PERM_SIGN, API_BODY_JSON,
     0, handle_usersig_sign},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/usersigs/batch", "signUserSigBatch", API_PERM_SIGN,
     API_BODY_RAW, 0, handle_usersig_batch},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/usersigs/batches", "listBatches", API_PERM_AUDIT_READ,
     API_BODY_NONE, 0, handle_batch_list},
    {EVHTTP_REQ_POST, "/v1/usersigs/verify", "verifyUserSig", API_PERM_VERIFY, API_BODY_JSON, 0,
     handle_usersig_verify},

    {EVHTTP_REQ_GET, "/v1/audit", "listAuditEvents", API_PERM_AUDIT_READ, API_BODY_NONE, 0,
     handle_audit_list},
    {EVHTTP_REQ_GET, "/v1/audit/verify", "verifyAuditChain", API_PERM_AUDIT_READ, API_BODY_NONE, 0,
     handle_audit_verify},

    {EVHTTP_REQ_POST, "/v1/tokens", "createToken", API_PERM_TOKENS, API_BODY_JSON,
     API_ROUTE_ALL_APPS, handle_token_create},
    {EVHTTP_REQ_GET, "/v1/tokens", "listTokens", API_PERM_TOKENS, API_BODY_NONE, API_ROUTE_ALL_APPS,
     handle_token_list},
    {EVHTTP_REQ_DELETE, "/v1/tokens/{id}", "revokeToken", API_PERM_TOKENS, API_BODY_NONE,
     API_ROUTE_ALL_APPS, handle_token_revoke},
};

const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
