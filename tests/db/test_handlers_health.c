/*
 * /healthz and /readyz for real: the admin API (the real route table) served on 127.0.0.1 from a
 * thread over a fresh migrated database. /readyz is 200 with the database and schema fields when
 * both are fine, 503 naming the part that is not (schema pending, schema newer, database gone),
 * with the unavailable error; /healthz is 200 throughout, the database gone included.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbtest.h"
#include "http.h"
#include "log.h"
#include "routes.h"
#include "authn.h"
#include "service.h"

static struct event_base *base;
static int port;

/* GET path without a token; fills *out (test_resp_free() it). */
static void get(struct test_resp *out, const char *path)
{
    if (test_http_request(out, port, "GET", path, NULL, NULL, -1) != 0)
        CHECK(0, "GET %s: no HTTP response", path);
}

static const char *jstr(const struct test_resp *r, const char *k)
{
    const char *s = json_string_value(json_object_get(r->json, k));
    return s ? s : "(none)";
}

static void expect_healthz(const char *what)
{
    struct test_resp r;
    get(&r, "/healthz");
    test_http_expect(what, &r, 200, NULL);
    CHECK(r.body != NULL && strcmp(r.body, "{\"status\":\"ok\"}\n") == 0, "%s: body %s", what,
          r.body ? r.body : "");
    test_resp_free(&r);
}

static void expect_ready(const char *what, long long version)
{
    struct test_resp r;
    get(&r, "/readyz");
    test_http_expect(what, &r, 200, NULL);
    CHECK(json_is_true(json_object_get(r.json, "ready")) &&
              strcmp(jstr(&r, "status"), "ready") == 0 && strcmp(jstr(&r, "database"), "ok") == 0 &&
              strcmp(jstr(&r, "schema"), "current") == 0 &&
              json_integer_value(json_object_get(r.json, "schema_version")) == version &&
              json_object_get(r.json, "error") == NULL,
          "%s: body %s (want schema_version %lld)", what, r.body ? r.body : "", version);
    test_resp_free(&r);
}

/* A 503 whose database is `database`, schema `schema` (NULL: absent) at version, and whose
 * error message holds hint. */
static void expect_not_ready(const char *what, const char *database, const char *schema,
                             long long version, const char *hint)
{
    struct test_resp r;
    get(&r, "/readyz");
    test_http_expect(what, &r, 503, "unavailable");
    CHECK(json_is_false(json_object_get(r.json, "ready")) &&
              strcmp(jstr(&r, "status"), "not_ready") == 0 &&
              strcmp(jstr(&r, "database"), database) == 0,
          "%s: body %s", what, r.body ? r.body : "");
    if (schema != NULL)
        CHECK(strcmp(jstr(&r, "schema"), schema) == 0 &&
                  json_integer_value(json_object_get(r.json, "schema_version")) == version,
              "%s: schema %s at %lld, body %s", what, schema, version, r.body ? r.body : "");
    else
        CHECK(json_object_get(r.json, "schema") == NULL &&
                  json_object_get(r.json, "schema_version") == NULL,
              "%s: no schema fields without a database: %s", what, r.body ? r.body : "");
    CHECK(strstr(test_resp_error_message(&r), hint) != NULL, "%s: message \"%s\" names \"%s\"",
          what, test_resp_error_message(&r), hint);
    test_resp_free(&r);
}

int main(void)
{
    struct dbtest t;
    struct store *st;
    struct api_server *server;
    pthread_t thread;
    char err[256], sql[256];
    PGconn *c, *admin;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HANDLERS_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "db_handlers_health", true);
    st = dbtest_store(&t);
    c = dbtest_connect(&t);
    long long latest = dbtest_scalar(c, "SELECT max(version) FROM schema_migrations");
    CHECK(latest >= 1, "migrations applied (%lld)", latest);

    struct service svc = {.st = st, .migrations_dir = USERSIGD_MIGRATIONS_DIR};
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = 65536,
        .max_body_large = 65536,
        .routes = api_routes,
        .n_routes = api_routes_count,
        .authenticate = authn_token,
        .ctx = &svc,
    };
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL ||
        (server = api_server_new(base, &cfg, err, sizeof err)) == NULL ||
        api_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "server: %s\n", err);
        return 1;
    }
    port = api_server_port(server);
    pthread_create(&thread, NULL, test_loop_thread, base);

    expect_healthz("healthz");
    expect_ready("readyz", latest);

    /* The last migration unrecorded: pending. */
    snprintf(sql, sizeof sql,
             "CREATE TABLE saved AS SELECT * FROM schema_migrations WHERE version = %lld; "
             "DELETE FROM schema_migrations WHERE version = %lld",
             latest, latest);
    CHECK(dbtest_exec(c, sql, false), "unrecord the last migration");
    expect_not_ready("readyz, a migration pending", "ok", "pending", latest - 1,
                     "usersigd migrate");
    expect_healthz("healthz, a migration pending");
    CHECK(dbtest_exec(c, "INSERT INTO schema_migrations SELECT * FROM saved; DROP TABLE saved",
                      false),
          "record it again");
    expect_ready("readyz, the migration recorded again", latest);

    /* A migration this binary has no file for: newer. */
    CHECK(dbtest_exec(c, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')",
                      false),
          "record a future migration");
    expect_not_ready("readyz, a newer schema", "ok", "newer", 9999, "upgrade usersigd");
    CHECK(dbtest_exec(c, "DELETE FROM schema_migrations WHERE version = 9999", false),
          "unrecord it");
    expect_ready("readyz, the future migration gone", latest);

    /* The database gone (its connections cut, reconnecting fails): readyz says so, healthz
     * does not care. */
    PQfinish(c);
    admin = dbtest_connect_url(t.admin_url);
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", t.name);
    CHECK(admin != NULL && dbtest_exec(admin, sql, false), "drop the database");
    PQfinish(admin);
    expect_healthz("healthz, the database gone");
    expect_not_ready("readyz, the database gone", "unavailable", NULL, 0, "does not answer");
    expect_healthz("healthz, the database still gone");

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_free(server);
    event_base_free(base);
    store_close(st);
    dbtest_drop(&t);
    libevent_global_shutdown();
    return test_done("db_handlers_health");
}
