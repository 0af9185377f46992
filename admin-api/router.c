/*
 * How a request path finds its route in the admin API: patterns split into segments, a literal
 * segment beating a {param}, params typed and range-checked before any handler sees them, the
 * check of a whole route table, and method names. Pure functions (no I/O, no allocation) at the
 * bottom of the framework: they call nothing else of it.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

/* ---- matching a path to a route -------------------------------------------------------------- */

struct seg {
    const char *p;
    size_t n;
};

/* "/a/b" -> {a, b}. -1 for no leading '/', an empty segment, or too many. With trailing_empty,
 * a request path's last segment may be empty ("/ui/" -> {ui, ""}): only a {file} matches it. */
static int split_path(const char *path, struct seg *segs, bool trailing_empty)
{
    int n = 0;
    if (path == NULL || path[0] != '/')
        return -1;
    while (*path == '/') {
        const char *s = ++path;
        while (*path != '/' && *path != '\0')
            path++;
        if ((path == s && !(trailing_empty && *path == '\0' && n > 0)) ||
            n == API_PATH_MAX_SEGMENTS)
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

/* {file} (the dashboard's files, admin-api/ui.c) is a name, not a number: any one segment, the
 * last of its pattern, empty ("/ui/") or absent ("/ui") included. The handler reads it from the
 * path and serves only a name it loaded, so this rule only bounds it. */
static const struct param_type {
    const char *name;
    int64_t min, max;
    const char *rule;
} param_types[] = {
    {"sdkappid", 1, 4294967295LL, "an integer from 1 to 4294967295"},
    {"version", 1, 2147483647LL, "an integer from 1 to 2147483647"},
    {"id", 1, INT64_MAX, "an integer from 1 to 9223372036854775807"},
    {"file", 0, 0, "one path segment"},
    {"servicename", 0, 0, "1 to 64 of a-z 0-9 _"},
    {"command", 0, 0, "1 to 64 of a-z 0-9 _"},
};
#define PARAM_FILE (&param_types[3])
/* {servicename} and {command} (the REST gateway's Tencent names) are names too: the handler
 * reads them from the path; here they are only checked. */
#define PARAM_IS_NAME(t) ((t) == &param_types[4] || (t) == &param_types[5])

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
    if (t == PARAM_FILE) { /* any segment: see param_types */
        *out = 0;
        return true;
    }
    if (PARAM_IS_NAME(t)) {
        *out = 0;
        if (s->n == 0 || s->n > 64)
            return false;
        for (size_t i = 0; i < s->n; i++)
            if (!((s->p[i] >= 'a' && s->p[i] <= 'z') || (s->p[i] >= '0' && s->p[i] <= '9') ||
                  s->p[i] == '_'))
                return false;
        return true;
    }
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
 * earlier in the path counts more than any number of later ones. The pattern is read segment by
 * segment and left at its first mismatch: every request tries every route. */
static int pattern_score(const char *pattern, const struct seg *path, int n)
{
    int score = 0, k = 0;
    const char *p = pattern;
    if (p == NULL || p[0] != '/')
        return -1;
    while (*p == '/') {
        const char *s = ++p;
        while (*p != '/' && *p != '\0')
            p++;
        struct seg pat = {s, (size_t)(p - s)};
        if (pat.n == 0)
            return -1;
        if (k == n) {
            /* A {file} that ends a pattern may also be absent ("/ui" for "/ui/{file}"): its
             * handler answers the folder without its slash. */
            if (*p == '\0' && n > 0 && seg_is_param(&pat) && param_type_of(&pat) == PARAM_FILE)
                return score;
            return -1;
        }
        if (seg_is_param(&pat)) {
            if (path[k].n == 0 && param_type_of(&pat) != PARAM_FILE)
                return -1; /* "/v1/apps/" is no app */
        } else {
            if (pat.n != path[k].n || memcmp(pat.p, path[k].p, path[k].n) != 0)
                return -1;
            score |= 1 << (API_PATH_MAX_SEGMENTS - 1 - k);
        }
        k++;
    }
    return k == n ? score : -1;
}

enum api_match_rc api_route_match(const struct api_route *routes, size_t n,
                                  enum evhttp_cmd_type method, const char *path,
                                  struct api_match *out)
{
    struct seg segs[API_PATH_MAX_SEGMENTS], pat[API_PATH_MAX_SEGMENTS];
    const char *best = NULL;
    int best_score = -1, nsegs;

    memset(out, 0, sizeof *out);
    if (path == NULL || strlen(path) > API_PATH_MAX || (nsegs = split_path(path, segs, true)) < 0)
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
        if (routes[i].method == method ||
            (method == EVHTTP_REQ_HEAD && routes[i].method == EVHTTP_REQ_GET))
            out->route = &routes[i];
    }
    if (out->route == NULL)
        return API_MATCH_NO_METHOD;
    out->allow = 0;
    split_path(best, pat, false);
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
        else if (t == &param_types[2])
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

/* A route's query list: NULL, or 1..API_QUERY_MAX_PARAMS distinct names of [a-z0-9_] (the
 * names the dispatcher lets through and the 400 message lists). NULL when well formed. */
static const char *query_list_problem(const char *const *q)
{
    size_t k = 0;
    if (q == NULL)
        return NULL;
    if (q[0] == NULL)
        return "an empty query list (a route that takes none has NULL)";
    for (; q[k] != NULL; k++) {
        if (k == API_QUERY_MAX_PARAMS)
            return "more query parameters than a request may send";
        if (q[k][0] == '\0' || strlen(q[k]) > 32 ||
            strspn(q[k], "abcdefghijklmnopqrstuvwxyz"
                         "0123456789_") != strlen(q[k]))
            return "a query parameter name not 1 to 32 of [a-z0-9_]";
        for (size_t j = 0; j < k; j++)
            if (strcmp(q[j], q[k]) == 0)
                return "a query parameter listed twice";
    }
    return NULL;
}

int api_routes_check(const struct api_route *routes, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct api_route *r = &routes[i];
        struct seg a[API_PATH_MAX_SEGMENTS], b[API_PATH_MAX_SEGMENTS];
        int na = r->pattern ? split_path(r->pattern, a, false) : -1;
        const char *why = NULL;

        if (na <= 0)
            why = "malformed pattern";
        else if (r->handler == NULL || r->op == NULL || r->op[0] == '\0')
            why = "no handler or no op";
        else if (strcmp(api_method_name(r->method), "?") == 0 || r->method == EVHTTP_REQ_HEAD ||
                 r->method == EVHTTP_REQ_OPTIONS || r->method == EVHTTP_REQ_TRACE ||
                 r->method == EVHTTP_REQ_CONNECT)
            why = "method not GET, POST, PUT, PATCH or DELETE";
        else if ((unsigned)r->perm >= PERM_COUNT || (unsigned)r->body > API_BODY_RAW)
            why = "unknown perm or body kind";
        else if ((r->method == EVHTTP_REQ_GET || r->method == EVHTTP_REQ_DELETE) &&
                 r->body != API_BODY_NONE)
            why = "GET and DELETE take no body";
        else
            why = query_list_problem(r->query);
        for (int k = 0; why == NULL && k < na; k++) {
            if (seg_is_param(&a[k])) {
                if (param_type_of(&a[k]) == NULL)
                    why = "unknown {param}";
                else if (param_type_of(&a[k]) == PARAM_FILE && k != na - 1)
                    why = "{file} not the last segment";
                for (int j = 0; j < k && why == NULL; j++)
                    if (a[j].n == a[k].n && memcmp(a[j].p, a[k].p, a[k].n) == 0)
                        why = "a {param} twice";
            } else if (!literal_ok(&a[k])) {
                why = "literal segment outside [a-z0-9._-]";
            }
        }
        for (size_t j = 0; why == NULL && j < i; j++) {
            int nb = split_path(routes[j].pattern, b, false);
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
