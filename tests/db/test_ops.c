/*
 * The core's operations called directly, without HTTP, on a fresh migrated database: apps
 * created and changed, keys imported, rotated, disabled, enabled and destroyed, a key of another
 * app refused, tokens created and revoked, the audit log queried and its chain verified. Checks
 * each result, the rows left in the database and the audit events, refusals included, and that
 * a change evicts what the process cache held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cache.h"
#include "dbtest.h"
#include "log.h"
#include "op_apps.h"
#include "op_audit.h"
#include "op_keys.h"
#include "op_tokens.h"
#include "service.h"

#define APP_A 1400000200u
#define APP_B 1400000201u
#define APP_C 1400000202u

#define S1 "1111111111111111111111111111111111111111111111111111111111111111"
#define S2 "2222222222222222222222222222222222222222222222222222222222222222"
#define S3 "3333333333333333333333333333333333333333333333333333333333333333"

static struct service svc;
static PGconn *conn;
static struct principal admin, km_a, km_b;
static char msg[OP_MSG_BUF];

static void principal_make(struct principal *p, int64_t id, const char *name, enum role role,
                           uint32_t app)
{
    memset(p, 0, sizeof *p);
    p->token_id = id;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->role = role;
    p->all_apps = app == 0;
    p->n_apps = app != 0;
    p->apps[0] = app;
}

static long long count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long count(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return dbtest_scalar(conn, sql);
}

static long long audit_count(const char *action, const char *outcome)
{
    return count("SELECT count(*) FROM audit_log WHERE action = '%s' AND outcome = '%s'", action,
                 outcome);
}

static struct op_keys_material hmac(const char *secret)
{
    struct op_keys_material m = {.kind = STORE_KEY_HMAC, .bytes = secret, .len = strlen(secret)};
    return m;
}

static enum api_error import(const struct principal *p, uint32_t app, const char *secret,
                             bool activate, struct op_keys_rotation *out)
{
    struct op_keys_import_in in = {.sdkappid = app, .material = hmac(secret), .activate = activate};
    return op_keys_import(&svc, p, &in, out, msg, sizeof msg);
}

static const char *state_of(uint32_t app, uint32_t version)
{
    static char buf[32];
    PGresult *r;
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT state FROM app_keys WHERE sdkappid = %u AND version = %u",
             app, version);
    r = PQexec(conn, sql);
    snprintf(buf, sizeof buf, "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                       : "(none)");
    PQclear(r);
    return buf;
}

static void test_apps(void)
{
    struct store_app a = {
        .sdkappid = APP_A,
        .default_expire = 86400,
        .max_expire = 604800,
        .identifier_policy = STORE_ID_PRINTABLE,
    };
    struct op_apps_view v;
    enum api_error err;

    snprintf(a.name, sizeof a.name, "App A");
    err = op_apps_create(&svc, &admin, &a, &v, msg, sizeof msg);
    CHECK(err == API_OK && v.app.sdkappid == APP_A && v.app.created_at_us > 0 &&
              v.active_version == 0,
          "create A: %d %s", err, msg);
    CHECK(audit_count("app.create", "ok") == 1, "create A audited");

    err = op_apps_create(&svc, &admin, &a, &v, msg, sizeof msg);
    CHECK(err == API_ERR_APP_EXISTS && strstr(msg, "PATCH /v1/apps/1400000200") != NULL,
          "create A again: %d %s", err, msg);
    CHECK(audit_count("app.create", "app_exists") == 1, "the existing app refusal audited");

    a.sdkappid = APP_B;
    snprintf(a.name, sizeof a.name, "App B");
    err = op_apps_create(&svc, &km_b, &a, &v, msg, sizeof msg);
    CHECK(err == API_OK, "km for B creates B: %d %s", err, msg);

    a.sdkappid = APP_C;
    err = op_apps_create(&svc, &km_a, &a, &v, msg, sizeof msg);
    CHECK(err == API_ERR_FORBIDDEN && strstr(msg, "1400000202") != NULL,
          "km for A cannot create C: %d %s", err, msg);
    CHECK(audit_count("app.create", "forbidden") == 1, "the scope refusal audited");
    CHECK(count("SELECT count(*) FROM apps WHERE sdkappid = %u", APP_C) == 0, "no app C");

    a.default_expire = a.max_expire + 1;
    err = op_apps_create(&svc, &admin, &a, &v, msg, sizeof msg);
    CHECK(err == API_ERR_BAD_EXPIRE, "default over max refused: %d", err);

    /* PATCH: what differs is changed and audited; the same again changes nothing. */
    struct op_apps_update_in up = {.sdkappid = APP_A, .set = STORE_APP_SET_NAME};
    snprintf(up.values.name, sizeof up.values.name, "App A renamed");
    err = op_apps_update(&svc, &km_a, &up, &v, msg, sizeof msg);
    CHECK(err == API_OK && strcmp(v.app.name, "App A renamed") == 0 &&
              v.app.default_expire == 86400,
          "rename A: %d %s", err, msg);
    err = op_apps_update(&svc, &km_a, &up, &v, msg, sizeof msg);
    CHECK(err == API_OK, "rename A again: %d", err);
    CHECK(audit_count("app.update", "ok") == 1, "one app.update event");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'app.update' AND "
                "details::jsonb->'changed'->'name'->>'to' = 'App A renamed'") == 1,
          "the change audited as from/to");

    up.set = STORE_APP_SET_MAX_EXPIRE;
    up.values.max_expire = 3600;
    err = op_apps_update(&svc, &km_a, &up, &v, msg, sizeof msg);
    CHECK(err == API_ERR_BAD_EXPIRE && strstr(msg, "default_expire (86400)") != NULL,
          "max under default refused: %d %s", err, msg);
    CHECK(count("SELECT max_expire FROM apps WHERE sdkappid = %u", APP_A) == 604800,
          "max_expire unchanged");

    up.sdkappid = APP_C;
    err = op_apps_update(&svc, &admin, &up, &v, msg, sizeof msg);
    CHECK(err == API_ERR_APP_NOT_FOUND, "PATCH of no app: %d", err);

    err = op_apps_get(&svc, &km_a, APP_A, &v, msg, sizeof msg);
    CHECK(err == API_OK && strcmp(v.app.name, "App A renamed") == 0, "get A: %d", err);

    struct op_apps_list_in li = {.after = 0, .limit = 1};
    struct op_apps_list_out lo;
    err = op_apps_list(&svc, &admin, &li, &lo, msg, sizeof msg);
    CHECK(err == API_OK && lo.n == 1 && lo.more && lo.apps[0].app.sdkappid == APP_A,
          "list, page of one: %d %zu", err, lo.n);
    free(lo.apps);
    li.limit = 10;
    err = op_apps_list(&svc, &km_b, &li, &lo, msg, sizeof msg);
    CHECK(err == API_OK && lo.n == 1 && !lo.more && lo.apps[0].app.sdkappid == APP_B,
          "a scoped list sees its app only: %d %zu", err, lo.n);
    free(lo.apps);
}

static void test_import_rotate(void)
{
    struct op_keys_rotation out;
    struct audit_verify_result vr;
    enum api_error err;

    err = import(&km_a, APP_A, S1, false, &out);
    CHECK(err == API_OK && out.active.version == 1 && out.active.state == STORE_KEY_ACTIVE &&
              out.active.sealed == NULL && out.retired.version == 0,
          "first import is active: %d %s", err, msg);
    err = import(&km_a, APP_A, S2, false, &out);
    CHECK(err == API_OK && out.active.version == 2 && out.active.state == STORE_KEY_PENDING,
          "second import is pending: %d %s", err, msg);

    struct op_keys_rotate_in rin = {.sdkappid = APP_A, .material = hmac(S3)};
    err = op_keys_rotate(&svc, &km_a, &rin, &out, msg, sizeof msg);
    CHECK(err == API_OK && out.active.version == 3 && out.active.state == STORE_KEY_ACTIVE &&
              out.retired.version == 1 && out.retired.state == STORE_KEY_RETIRED,
          "rotate to new material: %d %s", err, msg);
    CHECK(strcmp(state_of(APP_A, 1), "retired") == 0 && strcmp(state_of(APP_A, 3), "active") == 0,
          "v1 retired, v3 active in the table");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'key.import' AND sdkappid = %u "
                "AND key_version = 3 AND outcome = 'ok' AND details::jsonb->>'state' = 'active'",
                APP_A) == 1,
          "key.import of v3 audited");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'key.rotate' AND sdkappid = %u "
                "AND key_version = 3 AND (details::jsonb->>'from')::int = 1 AND "
                "(details::jsonb->>'to')::int = 3",
                APP_A) == 1,
          "key.rotate 1 -> 3 audited");

    /* To an existing version: v2 (pending) becomes active, v3 retired. */
    rin.version = 2;
    err = op_keys_rotate(&svc, &km_a, &rin, &out, msg, sizeof msg);
    CHECK(err == API_OK && out.active.version == 2 && out.retired.version == 3,
          "rotate to v2: %d %s", err, msg);
    err = op_keys_rotate(&svc, &km_a, &rin, &out, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE && strstr(msg, "already the active one") != NULL,
          "rotate to the active one refused: %d %s", err, msg);
    CHECK(audit_count("key.rotate", "invalid_state") == 1, "that refusal audited");
    rin.version = 9;
    err = op_keys_rotate(&svc, &km_a, &rin, &out, msg, sizeof msg);
    CHECK(err == API_ERR_KEY_NOT_FOUND, "rotate to no version: %d", err);

    CHECK(op_audit_verify(&svc, &admin, &vr, msg, sizeof msg) == API_OK && vr.ok &&
              vr.checked == count("SELECT count(*) FROM audit_log"),
          "the chain verifies (%lld events, %s)", (long long)vr.checked,
          audit_problem_name(vr.problem));
}

static void test_other_app(void)
{
    struct op_keys_rotation out;
    long long keys = count("SELECT count(*) FROM app_keys");
    long long events = count("SELECT count(*) FROM audit_log");
    enum api_error err;

    err = import(&km_b, APP_B, S1, true, &out);
    CHECK(err == API_ERR_KEY_USED_BY_OTHER_APP && strstr(msg, "another app") != NULL &&
              strstr(msg, "1400000200") == NULL,
          "A's key refused for B, A not named to B's token: %d %s", err, msg);
    CHECK(api_error_status(err) == 409, "a 409");
    CHECK(count("SELECT count(*) FROM app_keys") == keys, "no key added");
    CHECK(count("SELECT count(*) FROM audit_log") == events + 1, "nothing but one audit row");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'key.import' AND sdkappid = %u "
                "AND outcome = 'key_used_by_other_app' AND "
                "details::jsonb->>'other_sdkappid' = '(outside the caller''s scope)'",
                APP_B) == 1,
          "the refusal audited without A's id");

    err = import(&admin, APP_B, S1, true, &out);
    CHECK(err == API_ERR_KEY_USED_BY_OTHER_APP && strstr(msg, "app 1400000200") != NULL,
          "an admin is told which app: %d %s", err, msg);
    err = import(&km_a, APP_A, S1, true, &out);
    CHECK(err == API_ERR_CONFLICT && strstr(msg, "version 1") != NULL,
          "the app's own old key: %d %s", err, msg);
    CHECK(audit_count("key.import", "conflict") == 1, "that refusal audited");
    CHECK(count("SELECT count(*) FROM app_keys WHERE sdkappid = %u", APP_B) == 0, "B has no key");

    struct op_keys_material bad = {.kind = STORE_KEY_HMAC, .bytes = "", .len = 0};
    struct op_keys_import_in in = {.sdkappid = APP_B, .material = bad};
    err = op_keys_import(&svc, &km_b, &in, &out, msg, sizeof msg);
    CHECK(err == API_ERR_BAD_KEY && strstr(msg, "\"secret\"") != NULL, "an empty secret: %d %s",
          err, msg);
}

static void test_state_rules(void)
{
    struct op_keys_change_in in = {.sdkappid = APP_A, .version = 2};
    struct store_key k;
    enum api_error err;

    /* A: v1 retired, v2 active, v3 retired. */
    err = op_keys_disable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE && strstr(msg, "the active key") != NULL,
          "disable the active one: %d %s", err, msg);
    err = op_keys_destroy(&svc, &km_a, &(struct op_keys_change_in){APP_A, 2, "gone"}, &k, msg,
                          sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE, "destroy the active one: %d", err);
    CHECK(strcmp(state_of(APP_A, 2), "active") == 0, "v2 still active");

    in.version = 1;
    err = op_keys_disable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_OK && k.state == STORE_KEY_DISABLED && k.disabled_at_us > 0,
          "disable v1: %d %s", err, msg);
    err = op_keys_disable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE && strstr(msg, "already disabled") != NULL,
          "disable v1 again: %d %s", err, msg);
    struct op_keys_rotation out;
    struct op_keys_rotate_in rin = {.sdkappid = APP_A, .version = 1};
    err = op_keys_rotate(&svc, &km_a, &rin, &out, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE && strstr(msg, "(enable it first)") != NULL,
          "rotate to a disabled version: %d %s", err, msg);

    err = op_keys_enable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_OK && k.state == STORE_KEY_RETIRED, "enable v1: %d %s", err, msg);
    err = op_keys_enable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE && strstr(msg, "only a disabled version") != NULL,
          "enable v1 again: %d %s", err, msg);

    in.reason = "compromised";
    err = op_keys_destroy(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_OK && k.state == STORE_KEY_DESTROYED &&
              strcmp(k.destroy_reason, "compromised") == 0,
          "destroy v1: %d %s", err, msg);
    CHECK(count("SELECT count(*) FROM app_keys WHERE sdkappid = %u AND version = 1 AND "
                "sealed IS NULL",
                APP_A) == 1,
          "the sealed key is gone");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'key.destroy' AND outcome = 'ok' "
                "AND key_version = 1 AND details::jsonb->>'reason' = 'compromised' AND "
                "details::jsonb->>'from' = 'retired'") == 1,
          "the destroy audited");
    err = op_keys_destroy(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE && strstr(msg, "destroyed") != NULL,
          "destroy v1 again: %d %s", err, msg);
    err = op_keys_enable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_INVALID_STATE, "enable a destroyed version: %d", err);
    CHECK(count("SELECT count(*) FROM audit_log WHERE outcome = 'invalid_state' AND "
                "details::jsonb->>'state' = 'destroyed'") == 2,
          "both refusals audited with the state");

    in.version = 7;
    err = op_keys_disable(&svc, &km_a, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_KEY_NOT_FOUND && strstr(msg, "no key version 7") != NULL,
          "no such version: %d %s", err, msg);
    in.sdkappid = APP_C;
    err = op_keys_disable(&svc, &admin, &in, &k, msg, sizeof msg);
    CHECK(err == API_ERR_APP_NOT_FOUND, "no such app: %d", err);

    struct store_key *keys = NULL;
    size_t n = 0;
    err = op_keys_list(&svc, &km_a, APP_A, &keys, &n, msg, sizeof msg);
    CHECK(err == API_OK && n == 3 && keys[0].state == STORE_KEY_DESTROYED &&
              keys[1].state == STORE_KEY_ACTIVE,
          "list A: %d %zu", err, n);
    store_key_list_free(keys, n);
}

/* Reads app sdkappid through the cache, which keeps it. */
static void cache_hold_app(uint32_t sdkappid)
{
    const struct cache_app *a = NULL;
    char m[OP_MSG_BUF];
    bool refused = false;
    CHECK(service_app_entry(&svc, sdkappid, &a, m, sizeof m, &refused) == API_OK && a != NULL,
          "read %u through the cache: %s", sdkappid, m);
    cache_app_release(a);
}

static bool cache_has_app(uint32_t sdkappid)
{
    const struct cache_app *a = cache_app_get(svc.cache, sdkappid);
    cache_app_release(a);
    return a != NULL;
}

static void test_cache(void)
{
    struct op_keys_rotation out;
    struct op_apps_view v;

    cache_hold_app(APP_B);
    CHECK(cache_has_app(APP_B), "B cached");
    CHECK(import(&km_b, APP_B, S1, true, &out) == API_ERR_KEY_USED_BY_OTHER_APP,
          "a refused import");
    CHECK(cache_has_app(APP_B), "a refusal changes nothing: B still cached");
    CHECK(import(&km_b, APP_B, "b-own-secret", true, &out) == API_OK, "B's own key: %s", msg);
    CHECK(!cache_has_app(APP_B), "an import evicts B");

    cache_hold_app(APP_A);
    struct op_apps_update_in up = {.sdkappid = APP_A, .set = STORE_APP_SET_DEFAULT_EXPIRE};
    up.values.default_expire = 7200;
    CHECK(op_apps_update(&svc, &km_a, &up, &v, msg, sizeof msg) == API_OK &&
              v.app.default_expire == 7200,
          "change A's default_expire: %s", msg);
    CHECK(!cache_has_app(APP_A), "a change evicts A");
}

static void test_tokens(void)
{
    const uint32_t apps[] = {APP_A};
    struct op_tokens_create_in in = {
        .name = "ci signer", .role = STORE_ROLE_SIGNER, .n_apps = 1, .apps = apps, .ttl_s = 3600};
    struct store_token t, r;
    struct principal got;
    char token[KEYRING_TOKEN_BUF];
    const char *tokens[1] = {token};
    enum service_token_rc trc;
    enum api_error err;
    bool touch = false;

    err = op_tokens_create(&svc, &admin, &in, &t, token, sizeof token, msg, sizeof msg);
    CHECK(err == API_OK && t.id > 0 && strncmp(token, "usg_", 4) == 0 && t.expires_at_us > 0,
          "create a token: %d %s", err, msg);
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'token.create' AND outcome = 'ok' "
                "AND (details::jsonb->>'token_id')::bigint = %lld AND details::jsonb->>'role' = "
                "'signer'",
                (long long)t.id) == 1,
          "token.create audited");
    service_check_tokens(&svc, tokens, 1, &trc, &got);
    CHECK(trc == SERVICE_TOKEN_OK && got.token_id == t.id && got.role == ROLE_SIGNER &&
              !got.all_apps && got.n_apps == 1 && got.apps[0] == APP_A,
          "the new token checks: %d", trc);
    CHECK(service_token_cached(&svc, token, &got, &touch) == SERVICE_TOKEN_OK, "and is cached now");

    err = op_tokens_revoke(&svc, &admin, t.id, &r, msg, sizeof msg);
    CHECK(err == API_OK && r.revoked_at_us > 0, "revoke: %d %s", err, msg);
    CHECK(service_token_cached(&svc, token, &got, &touch) == SERVICE_TOKEN_MISS,
          "the revocation evicts it from the cache");
    service_check_tokens(&svc, tokens, 1, &trc, &got);
    CHECK(trc == SERVICE_TOKEN_UNKNOWN, "the revoked token fails its check: %d", trc);
    err = op_tokens_revoke(&svc, &admin, t.id, &r, msg, sizeof msg);
    CHECK(err == API_OK, "revoke again is no error: %d", err);
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'token.revoke' AND "
                "details::jsonb->>'already_revoked' = 'true'") == 1 &&
              audit_count("token.revoke", "ok") == 2,
          "both revocations audited, the second as already_revoked");
    err = op_tokens_revoke(&svc, &admin, 999999, &r, msg, sizeof msg);
    CHECK(err == API_ERR_TOKEN_NOT_FOUND && strstr(msg, "999999") != NULL, "revoke no token: %d %s",
          err, msg);
    CHECK(audit_count("token.revoke", "token_not_found") == 1, "that refusal audited");

    op_tokens_refuse_create(&svc, &admin, "invalid_field", "ttl");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'token.create' AND "
                "outcome = 'invalid_field' AND details::jsonb->>'field' = 'ttl'") == 1,
          "a refused creation audited");
    OPENSSL_cleanse(token, sizeof token);
}

static void test_audit_query(void)
{
    struct op_audit_query_in in = {.filter = {.action = "key.rotate", .limit = 100}};
    struct op_audit_query_out out;
    enum api_error err;

    err = op_audit_query(&svc, &admin, &in, &out, msg, sizeof msg);
    CHECK(err == API_OK &&
              (long long)out.n == count("SELECT count(*) FROM audit_log WHERE "
                                        "action = 'key.rotate'") &&
              out.n >= 3 && out.next_after == 0,
          "the key.rotate events: %d %zu", err, out.n);
    for (size_t i = 1; i < out.n; i++)
        CHECK(out.events[i]->seq > out.events[i - 1]->seq, "in seq order");
    op_audit_query_free(&out);

    /* A page of one, then the next. */
    in.filter.limit = 1;
    err = op_audit_query(&svc, &admin, &in, &out, msg, sizeof msg);
    CHECK(err == API_OK && out.n == 1 && out.next_after == out.events[0]->seq, "a page of one");
    int64_t after = out.next_after;
    op_audit_query_free(&out);
    in.filter.after_seq = after;
    err = op_audit_query(&svc, &admin, &in, &out, msg, sizeof msg);
    CHECK(err == API_OK && out.n == 1 && out.events[0]->seq > after, "the next page");
    op_audit_query_free(&out);

    /* A scoped token sees its app's events only, and may not name another app. */
    memset(&in, 0, sizeof in);
    in.filter.limit = 1000;
    err = op_audit_query(&svc, &km_b, &in, &out, msg, sizeof msg);
    bool only_b = err == API_OK && out.n > 0;
    for (size_t i = 0; only_b && i < out.n; i++)
        only_b = out.events[i]->sdkappid == APP_B;
    CHECK(only_b && (long long)out.n ==
                        count("SELECT count(*) FROM audit_log WHERE sdkappid = %u", APP_B),
          "B's token sees B's events only: %d %zu", err, out.n);
    op_audit_query_free(&out);
    in.filter.sdkappid = APP_A;
    err = op_audit_query(&svc, &km_b, &in, &out, msg, sizeof msg);
    CHECK(err == API_ERR_FORBIDDEN && strstr(msg, "1400000200") != NULL,
          "B's token naming A: %d %s", err, msg);
    op_audit_query_free(&out);
}

int main(void)
{
    struct dbtest t;
    struct audit_verify_result vr;

    log_set_level(getenv("TEST_OPS_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "db_ops", true);
    conn = dbtest_connect(&t);
    svc.st = dbtest_store(&t);
    svc.kr = dbtest_keyring(svc.st);
    svc.migrations_dir = USERSIGD_MIGRATIONS_DIR;
    svc.cache = cache_new();
    if (svc.cache == NULL)
        return 1;
    cache_set_listening(svc.cache, true); /* as once the listener is connected */
    principal_make(&admin, 1, "admin", ROLE_ADMIN, 0);
    principal_make(&km_a, 2, "km for A", ROLE_KEY_MANAGER, APP_A);
    principal_make(&km_b, 3, "km for B", ROLE_KEY_MANAGER, APP_B);

    test_apps();
    test_import_rotate();
    test_other_app();
    test_state_rules();
    test_cache();
    test_tokens();
    test_audit_query();

    /* An event whose details could not be built (NULL: out of memory) is not appended: the
     * change it records fails with it. */
    long long before = count("SELECT count(*) FROM audit_log");
    CHECK(store_begin(svc.st) == STORE_OK, "begin");
    CHECK(service_audit(&svc, &admin, "app.update", APP_A, 0, "ok", NULL) == STORE_ERROR,
          "no details, no event");
    store_rollback(svc.st);
    CHECK(count("SELECT count(*) FROM audit_log") == before, "nothing appended");

    CHECK(op_audit_verify(&svc, &admin, &vr, msg, sizeof msg) == API_OK && vr.ok &&
              vr.checked == count("SELECT count(*) FROM audit_log") && vr.checked > 25,
          "every event, refusals included, on one chain that verifies (%lld, %s at %lld)",
          (long long)vr.checked, audit_problem_name(vr.problem), (long long)vr.bad_seq);

    cache_free(svc.cache);
    keyring_free(svc.kr);
    store_close(svc.st);
    PQfinish(conn);
    dbtest_drop(&t);
    return test_done("db_ops");
}
