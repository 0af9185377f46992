/*
 * The route table of the admin API: every (method, path) the server answers, with the
 * permission it needs, its body kind and its handler. openapi.yaml describes the same routes;
 * tests/unit/test_routes.c fails when the two differ.
 */
#ifndef API_ROUTES_H
#define API_ROUTES_H

#include <stddef.h>

#include "http.h"

extern const struct api_route api_routes[];
extern const size_t api_routes_count;

#endif
