/*
 * Admin API health: liveness (/healthz, the process answers) and readiness (/readyz, the
 * database answers and the schema is current). A load balancer sends traffic only while
 * /readyz is 200; everything else is 503 unavailable with the reason.
 */
#include "handlers.h"
#include "migrate.h"
#include "service.h"

void handle_healthz(struct api_request *r)
{
    json_t *body = json_object();
    if (body != NULL && json_object_set_new(body, "status", json_string("ok")) != 0) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body);
}

void handle_readyz(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct migrate_status ms;
    json_t *body;

    if (store_ping(svc->st) != STORE_OK) {
        api_reply_error(r, API_ERR_UNAVAILABLE, "the database does not answer");
        return;
    }
    if (migrate_status(svc->st, svc->migrations_dir, &ms) != MIGRATE_OK) {
        api_reply_error(r, API_ERR_UNAVAILABLE,
                        "the schema version cannot be read (see the server log)");
        return;
    }
    if (!ms.current) {
        if (ms.unknown > 0)
            api_reply_error(r, API_ERR_UNAVAILABLE,
                            "the database schema (version %d) is newer than this usersigd "
                            "(version %d): upgrade usersigd",
                            ms.latest_applied, ms.latest_file);
        else
            api_reply_error(r, API_ERR_UNAVAILABLE,
                            "%d schema migration(s) pending: run usersigd migrate", ms.pending);
        return;
    }
    body = json_pack("{s:s, s:b, s:i}", "status", "ready", "ready", 1, "schema_version",
                     ms.latest_applied);
    api_reply_json(r, 200, body); /* NULL: 500 */
}
