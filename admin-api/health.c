/*
 * Admin API health: liveness (/healthz: the process and its event loop answer; no database) and
 * readiness (/readyz: the database answers a ping and the schema is current). A load balancer
 * sends traffic only while /readyz is 200; its 503 says which part is not ready, with the
 * reason as an error.
 */
#include <stdarg.h>
#include <stdio.h>

#include "handlers.h"
#include "migrate.h"
#include "service.h"

/* Answered on the loop thread from nothing but memory: a reply proves the process runs and its
 * loop turns. It never touches PostgreSQL, so a database outage does not make the process look
 * dead (that is /readyz's to report) and a restart loop cannot follow from one. */
void handle_healthz(struct api_request *r)
{
    json_t *body = json_object();
    if (body != NULL && json_object_set_new(body, "status", json_string("ok")) != 0) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body);
}

/* 503 {"status":"not_ready","ready":false,"database":..., ["schema":...,
 * "schema_version":...,] "error":{"code":"unavailable","message":...}}: the readiness fields
 * first, then the error object every other 503 has. schema NULL leaves out the schema fields
 * (the database did not answer). */
__attribute__((format(printf, 5, 6))) static void
reply_not_ready(struct api_request *r, const char *database, const char *schema, int schema_version,
                const char *fmt, ...)
{
    char message[256];
    va_list ap;
    json_t *err, *body = json_pack("{s:s, s:b, s:s}", "status", "not_ready", "ready", 0, "database",
                                   database);
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    err = api_error_body(API_ERR_UNAVAILABLE, message);
    bool ok = body != NULL && err != NULL;
    if (ok && schema != NULL)
        ok = json_object_set_new(body, "schema", json_string(schema)) == 0 &&
             json_object_set_new(body, "schema_version", json_integer(schema_version)) == 0;
    ok = ok && json_object_update(body, err) == 0;
    json_decref(err);
    if (!ok) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 503, body); /* NULL: 500 */
}

void handle_readyz(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct migrate_status ms;
    json_t *body;

    /* An offloaded route (routes.c): the ping and the schema read run on a database pool
     * thread's connection (r->ctx is that thread's service), so a database that does not answer
     * holds that thread, never the loop. */
    if (store_ping(svc->st) != STORE_OK) {
        reply_not_ready(r, "unavailable", NULL, 0, "the database does not answer");
        return;
    }
    if (migrate_status(svc->st, svc->migrations_dir, &ms) != MIGRATE_OK) {
        reply_not_ready(r, "ok", "unreadable", 0,
                        "the schema version cannot be read (see the server log)");
        return;
    }
    if (!ms.current) {
        if (ms.unknown > 0)
            reply_not_ready(r, "ok", "newer", ms.latest_applied,
                            "the database schema (version %d) is newer than this usersigd "
                            "(version %d): upgrade usersigd",
                            ms.latest_applied, ms.latest_file);
        else
            reply_not_ready(r, "ok", "pending", ms.latest_applied,
                            "%d schema migration(s) pending: run usersigd migrate", ms.pending);
        return;
    }
    body = json_pack("{s:s, s:b, s:s, s:s, s:i}", "status", "ready", "ready", 1, "database", "ok",
                     "schema", "current", "schema_version", ms.latest_applied);
    api_reply_json(r, 200, body); /* NULL: 500 */
}
