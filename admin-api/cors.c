/*
 * CORS (cors.h): the allow-list of origins is the setting's text itself, scanned at each request
 * with an Origin (at most CONFIG_STRING_MAX bytes, so no parsed copy is kept); a preflight is
 * answered from the route table without a token, since a browser sends none with it.
 */
#include "cors.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define ALLOW_HEADERS "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
#define EXPOSE_HEADERS "X-Request-Id, Retry-After"
#define MAX_AGE "600"

/* The next entry of a comma-separated list from *p, spaces around it skipped: *start, *len.
 * false at the end. */
static bool next_entry(const char **p, const char **start, size_t *len)
{
    const char *s = *p, *e;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (*s == '\0')
        return false;
    e = s;
    while (*e != '\0' && *e != ',')
        e++;
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *start = s;
    *len = (size_t)(e - s);
    return true;
}

/* scheme://host[:port]: http or https, then host characters (an IPv6 address in brackets), no
 * path, no query, no user info. */
static bool origin_ok(const char *s, size_t len)
{
    size_t i;
    if (len >= 8 && strncmp(s, "https://", 8) == 0)
        i = 8;
    else if (len >= 7 && strncmp(s, "http://", 7) == 0)
        i = 7;
    else
        return false;
    if (i == len || len > CORS_ORIGIN_MAX)
        return false;
    for (; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return false;
    }
    return true;
}

int cors_check_list(const char *list, char *err, size_t errlen)
{
    const char *p = list, *s;
    size_t len;
    if (list == NULL)
        return 0;
    while (next_entry(&p, &s, &len))
        if (!origin_ok(s, len)) {
            snprintf(err, errlen,
                     "cors_origins: \"%.*s\" is not an origin (scheme://host[:port], http or "
                     "https, without a path)",
                     (int)(len > 80 ? 80 : len), s);
            return -1;
        }
    return 0;
}

bool cors_origin_listed(const char *list, const char *origin)
{
    const char *p = list, *s;
    size_t len, olen;
    if (list == NULL || origin == NULL)
        return false;
    olen = strlen(origin);
    while (next_entry(&p, &s, &len))
        if (len == olen && memcmp(s, origin, len) == 0)
            return true;
    return false;
}

/* The request's Origin when it is given exactly once, else NULL. */
static const char *request_origin(const struct api_request *r)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
    const char *v = NULL;
    for (const struct evkeyval *kv = h != NULL ? h->tqh_first : NULL; kv != NULL;
         kv = kv->next.tqe_next) {
        if (evutil_ascii_strcasecmp(kv->key, "Origin") != 0)
            continue;
        if (v != NULL)
            return NULL;
        v = kv->value;
    }
    return v;
}

/* "GET, POST": the methods some route takes on this path, in a fixed order. */
static void path_methods(const char *path, const struct api_route *routes, size_t n, char *buf,
                         size_t cap)
{
    static const enum evhttp_cmd_type order[] = {EVHTTP_REQ_GET, EVHTTP_REQ_POST, EVHTTP_REQ_PUT,
                                                 EVHTTP_REQ_PATCH, EVHTTP_REQ_DELETE};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        struct api_match m;
        enum api_match_rc rc = api_route_match(routes, n, order[i], path, &m);
        if (rc == API_MATCH_OK || rc == API_MATCH_BAD_PARAM)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? ", " : "",
                     api_method_name(order[i]));
    }
}

enum cors_rc cors_request(struct api_request *r, const char *list, const struct api_route *routes,
                          size_t n_routes)
{
    bool on = list != NULL && list[0] != '\0';
    const char *origin = request_origin(r);
    bool allowed = on && origin != NULL && strlen(origin) <= CORS_ORIGIN_MAX &&
                   cors_origin_listed(list, origin);
    bool preflight = r->method == EVHTTP_REQ_OPTIONS &&
                     evhttp_find_header(evhttp_request_get_input_headers(r->req),
                                        "Access-Control-Request-Method") != NULL;
    char methods[64];

    if ((on && api_reply_header(r, "Vary", "Origin") != 0) ||
        (allowed && (api_reply_header(r, "Access-Control-Allow-Origin", origin) != 0 ||
                     api_reply_header(r, "Access-Control-Expose-Headers", EXPOSE_HEADERS) != 0))) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory adding the CORS headers");
        return CORS_REPLIED;
    }
    if (!preflight)
        return CORS_CONTINUE;
    if (!allowed) {
        if (!on)
            api_reply_error(r, API_ERR_CORS_FORBIDDEN,
                            "cross-origin requests are not enabled "
                            "(cors_origins is empty)");
        else if (origin == NULL)
            api_reply_error(r, API_ERR_CORS_FORBIDDEN, "a preflight needs one Origin header");
        else
            api_reply_error(r, API_ERR_CORS_FORBIDDEN, "this origin is not in cors_origins");
        return CORS_REPLIED;
    }
    path_methods(r->path, routes, n_routes, methods, sizeof methods);
    if (methods[0] == '\0') {
        api_reply_error(r, API_ERR_NOT_FOUND, "no such path: see openapi.yaml for the routes");
        return CORS_REPLIED;
    }
    if (api_reply_header(r, "Access-Control-Allow-Methods", methods) != 0 ||
        api_reply_header(r, "Access-Control-Allow-Headers", ALLOW_HEADERS) != 0 ||
        api_reply_header(r, "Access-Control-Max-Age", MAX_AGE) != 0) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory adding the CORS headers");
        return CORS_REPLIED;
    }
    api_reply_text(r, 204, "text/plain; charset=utf-8", "", 0);
    return CORS_REPLIED;
}
