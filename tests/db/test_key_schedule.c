/*
 * Key schedules on a fresh migrated database, through the core's operations: a version's
 * verify_until set, changed, cleared and refused (destroyed, unknown), each change audited once
 * and evicting the app from the cache; the verdict of a token signed with a retired version
 * before and after its verify_until (verify_window_closed), an active version unaffected; an
 * app's rotate_every set and cleared through op_apps_update (audited from/to), the active
 * key's age against it, and store_key_schedules for the metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "cache.h"
#include "dbtest.h"
#include "log.h"
#include "op_apps.h"
#include "op_audit.h"
#include "op_keys.h"
#include "service.h"
#include "usersig.h"
#include "verify.h"

#define APP 1400000300u
#define S1 "1111111111111111111111111111111111111111111111111111111111111111"
#define S2 "2222222222222222222222222222222222222222222222222222222222222222"
#define S3 "3333333333333333333333333333333333333333333333333333333333333333"

static struct service svc;
static PGconn *conn;
static struct principal admin;
static char msg[OP_MSG_BUF];

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

static char *text_of(const char *sql)
{
    static char buf[1024];
    PGresult *r = PQexec(conn, sql);
    snprintf(buf, sizeof buf, "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                       : "(none)");
    PQclear(r);
    return buf;
}

static enum api_error import(const char *secret, bool activate)
{
    struct op_keys_rotation out;
    struct op_keys_import_in in = {
        .sdkappid = APP,
        .material = {.kind = STORE_KEY_HMAC, .bytes = secret, .len = strlen(secret)},
        .activate = activate};
    return op_keys_import(&svc, &admin, &in, &out, msg, sizeof msg);
}

static enum api_error set_until(uint32_t version, int64_t seconds, struct store_key *k)
{
    struct op_keys_update_in in = {
        .sdkappid = APP, .version = version, .verify_until_us = seconds * 1000000};
    return op_keys_update(&svc, &admin, &in, k, msg, sizeof msg);
}

/* A token for "alice" signed with secret now. */
static void sign_with(const char *secret, char out[USERSIG_TOKEN_BUF])
{
    struct usersig_key *k = NULL;
    struct usersig_signer *s = NULL;
    struct usersig_params p = {
        .identifier = "alice", .identifier_len = 5, .expire = 86400, .time = time(NULL)};
    size_t len;
    CHECK(usersig_key_new_hmac(secret, strlen(secret), &k) == USERSIG_OK &&
              usersig_signer_new(k, APP, USERSIG_DEFAULT_LEVEL, USERSIG_ID_PRINTABLE, &s) ==
                  USERSIG_OK &&
              usersig_sign(s, &p, out, USERSIG_TOKEN_BUF, &len) == USERSIG_OK,
          "sign a token");
    usersig_signer_free(s);
    usersig_key_free(k);
}

/* The verdict of token for alice, through the cache when it holds the app (verify_cached),
 * else read from the database (verify_run), as the API does. */
static const char *verdict_of(const char *token, uint32_t *version, int *code)
{
    static char verdict[64];
    struct usersig_decoded d;
    struct usersig_expect e = {.identifier = "alice", .identifier_len = 5, .sdkappid = APP};
    struct verify_result res;
    enum api_error err;
    memset(&res, 0, sizeof res);
    CHECK(usersig_decode(token, strlen(token), &d) == USERSIG_VALID, "decode");
    if (verify_cached(&svc, APP, &d, &e, &res, &err, msg, sizeof msg) == VERIFY_NEEDS_RUN)
        err = verify_run(&svc, &admin, APP, &d, &e, &res, msg, sizeof msg);
    CHECK(err == API_OK, "verify: %s", msg);
    snprintf(verdict, sizeof verdict, "%s", res.verdict != NULL ? res.verdict : "(null)");
    *version = res.key_version;
    *code = res.tencent_code;
    if (strcmp(verdict, VERIFY_WINDOW_CLOSED) == 0)
        CHECK(strstr(res.message, "verify_until") != NULL && strstr(res.message, "retired"),
              "the message says why: %s", res.message);
    return verdict;
}

static bool cache_has_app(void)
{
    const struct cache_app *a = cache_app_get(svc.cache, APP);
    cache_app_release(a);
    return a != NULL;
}

static void test_verify_until(void)
{
    char t1[USERSIG_TOKEN_BUF], t2[USERSIG_TOKEN_BUF];
    struct store_key k;
    uint32_t v;
    int code;
    int64_t now = time(NULL);

    CHECK(import(S1, true) == API_OK, "v1: %s", msg);
    sign_with(S1, t1);
    /* Set on the active version: a plan, no effect while it is active. */
    CHECK(set_until(1, now - 10, &k) == API_OK && k.verify_until_us == (now - 10) * 1000000 &&
              k.state == STORE_KEY_ACTIVE,
          "verify_until on the active version: %s", msg);
    CHECK(strcmp(verdict_of(t1, &v, &code), "ok") == 0 && v == 1, "the active version verifies");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'key.update' AND outcome = 'ok' "
                "AND key_version = 1") == 1,
          "audited");
    CHECK(strcmp(text_of("SELECT details FROM audit_log WHERE action = 'key.update' ORDER BY seq "
                         "DESC LIMIT 1"),
                 "") != 0,
          "details");
    char want[128];
    snprintf(want, sizeof want, "{\"changed\":{\"verify_until\":{\"from\":null,\"to\":%lld}}}",
             (long long)(now - 10));
    CHECK(strcmp(text_of("SELECT details FROM audit_log WHERE action = 'key.update' ORDER BY seq "
                         "DESC LIMIT 1"),
                 want) == 0,
          "details are from/to in Unix seconds: %s",
          text_of("SELECT details FROM audit_log "
                  "ORDER BY seq DESC LIMIT 1"));

    /* Rotated away: v1 retired, past its verify_until. */
    CHECK(import(S2, true) == API_OK, "v2: %s", msg);
    sign_with(S2, t2);
    CHECK(strcmp(verdict_of(t1, &v, &code), VERIFY_WINDOW_CLOSED) == 0 && v == 1 && code == 70009,
          "a retired version past verify_until: verify_window_closed 70009 (got %s)",
          verdict_of(t1, &v, &code));
    CHECK(cache_has_app(), "the app is cached now");
    CHECK(strcmp(verdict_of(t2, &v, &code), "ok") == 0 && v == 2, "v2 verifies");

    /* Later: open again, and the cache follows the change at once. */
    CHECK(set_until(1, now + 3600, &k) == API_OK && k.verify_until_us == (now + 3600) * 1000000,
          "verify_until an hour ahead: %s", msg);
    CHECK(!cache_has_app(), "a change evicts the app");
    CHECK(strcmp(verdict_of(t1, &v, &code), "ok") == 0 && v == 1,
          "within its window a retired version verifies");
    long long events = count("SELECT count(*) FROM audit_log");
    CHECK(set_until(1, now + 3600, &k) == API_OK, "the same value again");
    CHECK(count("SELECT count(*) FROM audit_log") == events, "changes nothing: no event");
    CHECK(cache_has_app(), "and evicts nothing");
    CHECK(set_until(1, 0, &k) == API_OK && k.verify_until_us == 0, "cleared: %s", msg);
    CHECK(count("SELECT count(*) FROM app_keys WHERE sdkappid = %u AND version = 1 AND "
                "verify_until IS NULL",
                APP) == 1,
          "NULL in the row");
    CHECK(strcmp(verdict_of(t1, &v, &code), "ok") == 0, "no end: verifies");

    /* Refusals change nothing but the audit log. */
    CHECK(set_until(9, now, &k) == API_ERR_KEY_NOT_FOUND, "an unknown version: %s", msg);
    CHECK(import(S3, true) == API_OK, "v3: %s", msg);
    struct op_keys_change_in d = {.sdkappid = APP, .version = 1, .reason = "compromised"};
    CHECK(op_keys_destroy(&svc, &admin, &d, &k, msg, sizeof msg) == API_OK, "destroy v1: %s", msg);
    events = count("SELECT count(*) FROM audit_log");
    CHECK(set_until(1, now, &k) == API_ERR_INVALID_STATE && strstr(msg, "destroyed") != NULL,
          "a destroyed version has no window: %s", msg);
    CHECK(count("SELECT count(*) FROM audit_log") == events + 1 &&
              count("SELECT count(*) FROM audit_log WHERE action = 'key.update' AND outcome = "
                    "'invalid_state'") == 1,
          "the refusal audited");
    CHECK(count("SELECT count(*) FROM app_keys WHERE sdkappid = %u AND version = 1 AND "
                "verify_until IS NULL",
                APP) == 1,
          "the row unchanged");

    /* v2 retired by the rotation to v3, with a window that closes in the past. */
    CHECK(set_until(2, now - 1, &k) == API_OK && k.state == STORE_KEY_RETIRED, "v2: %s", msg);
    CHECK(strcmp(verdict_of(t2, &v, &code), VERIFY_WINDOW_CLOSED) == 0 && v == 2,
          "v2 closed (read from the database, not the cache)");
}

static void test_rotate_every(void)
{
    struct op_apps_view v;
    struct op_apps_update_in up = {.sdkappid = APP, .set = STORE_APP_SET_ROTATE_EVERY};
    int64_t age;

    up.values.rotate_every = 7776000; /* 90 days */
    CHECK(op_apps_update(&svc, &admin, &up, &v, msg, sizeof msg) == API_OK &&
              v.app.rotate_every == 7776000 && v.active_version == 3 &&
              v.active_activated_at_us > 0,
          "rotate_every 90 days: %s", msg);
    CHECK(strcmp(text_of("SELECT details FROM audit_log WHERE action = 'app.update' ORDER BY seq "
                         "DESC LIMIT 1"),
                 "{\"changed\":{\"rotate_every\":{\"from\":null,\"to\":7776000}}}") == 0,
          "audited from/to: %s",
          text_of("SELECT details FROM audit_log WHERE action = 'app.update' ORDER BY seq DESC "
                  "LIMIT 1"));
    CHECK(count("SELECT rotate_every FROM apps WHERE sdkappid = %u", APP) == 7776000, "the row");
    int64_t now = (int64_t)time(NULL) * 1000000;
    CHECK(!op_apps_past_rotate_every(7776000, v.active_activated_at_us, now, &age) && age >= 0 &&
              age < 60,
          "a new key is not past 90 days (age %lld)", (long long)age);
    CHECK(op_apps_past_rotate_every(7776000, now - 7776001LL * 1000000, now, &age) &&
              age == 7776001,
          "one second over");
    CHECK(!op_apps_past_rotate_every(0, now - 7776001LL * 1000000, now, &age), "no rotate_every");
    CHECK(!op_apps_past_rotate_every(10, 0, now, &age) && age == -1, "no active key");

    /* The listing of the metrics reads the same. */
    struct store_key_schedule *s = NULL;
    size_t n = 0;
    CHECK(store_key_schedules(svc.st, 1000, &s, &n) == STORE_OK && n == 1 && s[0].sdkappid == APP &&
              s[0].version == 3 && s[0].rotate_every == 7776000 &&
              s[0].activated_at_us == v.active_activated_at_us,
          "store_key_schedules");
    free(s);

    /* The same again: no change, no event; then cleared. */
    long long events = count("SELECT count(*) FROM audit_log");
    CHECK(op_apps_update(&svc, &admin, &up, &v, msg, sizeof msg) == API_OK &&
              count("SELECT count(*) FROM audit_log") == events,
          "the same value writes nothing");
    up.values.rotate_every = 0;
    CHECK(op_apps_update(&svc, &admin, &up, &v, msg, sizeof msg) == API_OK &&
              v.app.rotate_every == 0 &&
              count("SELECT count(*) FROM apps WHERE sdkappid = %u AND rotate_every IS NULL",
                    APP) == 1,
          "cleared: %s", msg);
    CHECK(strcmp(text_of("SELECT details FROM audit_log WHERE action = 'app.update' ORDER BY seq "
                         "DESC LIMIT 1"),
                 "{\"changed\":{\"rotate_every\":{\"from\":7776000,\"to\":null}}}") == 0,
          "audited to null");
    CHECK(dbtest_error(conn, "UPDATE apps SET rotate_every = 0") != NULL,
          "the database refuses a rotate_every of 0");
}

int main(void)
{
    struct dbtest t;
    struct audit_verify_result vr;

    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "db_key_schedule", true);
    conn = dbtest_connect(&t);
    svc.st = dbtest_store(&t);
    svc.kr = dbtest_keyring(svc.st);
    svc.migrations_dir = USERSIGD_MIGRATIONS_DIR;
    svc.cache = cache_new();
    if (svc.cache == NULL)
        return 1;
    cache_set_listening(svc.cache, true);
    memset(&admin, 0, sizeof admin);
    admin.token_id = 1;
    snprintf(admin.name, sizeof admin.name, "admin");
    admin.role = ROLE_ADMIN;
    admin.all_apps = true;
    CHECK(dbtest_add_app(svc.st, APP, 86400, 315360000, STORE_ID_PRINTABLE), "the app");

    test_verify_until();
    test_rotate_every();

    CHECK(op_audit_verify(&svc, &admin, &vr, msg, sizeof msg) == API_OK && vr.ok,
          "the chain verifies");
    cache_free(svc.cache);
    keyring_free(svc.kr);
    store_close(svc.st);
    PQfinish(conn);
    dbtest_drop(&t);
    return test_done("db_key_schedule");
}
