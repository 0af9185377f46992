/*
 * CORS for the admin API: an allow-list of exact origins (api_server_config.cors_origins,
 * comma-separated; empty = off). A request from a listed origin gets Access-Control-Allow-Origin
 * naming it; a preflight (OPTIONS with Access-Control-Request-Method) is answered here, before
 * any token check: 204 with the path's methods for a listed origin, 403 cors_forbidden
 * otherwise. Part of the framework (called by http.c's dispatcher); it calls http_reply.c and
 * router.c only.
 */
#ifndef API_CORS_H
#define API_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* Bytes of one origin on the list, and of an Origin header looked at. */
#define CORS_ORIGIN_MAX 256

/* 0 when list is NULL, empty, or comma-separated origins, each "scheme://host[:port]" (spaces
 * around the commas ignored; no path, no trailing "/", no "*", no "null"); else -1 with err
 * naming the first bad entry. */
int cors_check_list(const char *list, char *err, size_t errlen) API_WUR;

/* True when origin is exactly (byte for byte) one entry of list. */
bool cors_origin_listed(const char *list, const char *origin);

enum cors_rc {
    CORS_CONTINUE = 0, /* not a preflight: the CORS headers (if any) are set, dispatch goes on */
    CORS_REPLIED,      /* a preflight, answered (204, 403 or 404) */
};

/* The dispatcher's first step for a request r (method and path set, no reply yet) to a server
 * with this list and route table. Sets Vary: Origin when CORS is on, and for a listed Origin
 * Access-Control-Allow-Origin and Access-Control-Expose-Headers; answers a preflight. */
enum cors_rc cors_request(struct api_request *r, const char *list, const struct api_route *routes,
                          size_t n_routes);

#endif
