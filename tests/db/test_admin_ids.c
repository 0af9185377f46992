/*
 * Administrator identifiers, identifier prefixes and the admin_signer and rest_caller roles at
 * the core's level on a fresh migrated database (migrations/0006_admin_ids.sql): PATCH's rules
 * (each refusal changes nothing), the audit of every change, the cache evicted so the very next
 * sign follows, single signs refused or allowed by role, expiry and prefix with the refusal
 * audited, tokens with prefixes and rest patterns stored, read back and carried by the
 * principal of a token check, and the database's own constraints behind the code's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cache.h"
#include "config.h"
#include "dbtest.h"
#include "log.h"
#include "op_apps.h"
#include "op_audit.h"
#include "op_keys.h"
#include "op_tokens.h"
#include "service.h"
#include "sign.h"

#define APP_A 1400000400u
#define APP_S 1400000401u
#define APP_LOW 1400000402u
#define SECRET_A "4444444444444444444444444444444444444444444444444444444444444444"

static struct service svc;
static struct config cfg;
static PGconn *conn;
static struct principal admin, signer, asigner, prefixed;
static char msg[OP_MSG_BUF];

static void principal_make(struct principal *p, int64_t id, const char *name, enum role role)
{
    memset(p, 0, sizeof *p);
    p->token_id = id;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->role = role;
    p->all_apps = true;
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

/* The app's row as text (every column), to show that a refused change left it as it was. */
static char *row_of(uint32_t app)
{
    static char buf[2][2048];
    static int k;
    char sql[160];
    char *out = buf[k++ % 2];
    snprintf(sql, sizeof sql, "SELECT a::text FROM apps a WHERE sdkappid = %u", app);
    PGresult *r = PQexec(conn, sql);
    snprintf(out, sizeof buf[0], "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                       : "(none)");
    PQclear(r);
    return out;
}

static enum api_error patch(uint32_t app, unsigned set, const struct store_app *values,
                            struct op_apps_view *v)
{
    struct op_apps_update_in in = {.sdkappid = app, .values = *values, .set = set};
    return op_apps_update(&svc, &admin, &in, v, msg, sizeof msg);
}

static void ids(struct store_app *a, const char *const *list)
{
    a->n_admin_ids = 0;
    for (; *list != NULL; list++)
        snprintf(a->admin_ids[a->n_admin_ids++], sizeof a->admin_ids[0], "%s", *list);
}

static void test_patch(void)
{
    struct store_app a, v0;
    struct op_apps_view v;
    enum api_error err;

    memset(&a, 0, sizeof a);
    a.sdkappid = APP_A;
    snprintf(a.name, sizeof a.name, "App A");
    a.default_expire = 15552000;
    a.max_expire = 315360000;
    err = op_apps_create(&svc, &admin, &a, &v, msg, sizeof msg);
    CHECK(err == API_OK && v.app.n_admin_ids == 0 && v.app.admin_max_expire == 86400 &&
              v.app.gateway_identifier[0] == '\0' &&
              strcmp(v.app.tencent_base_url, "https://console.tim.qq.com") == 0,
          "a new app: no administrators, a day, the default region: %d %s", err, msg);
    a.sdkappid = APP_S;
    a.identifier_policy = STORE_ID_STRICT;
    CHECK(op_apps_create(&svc, &admin, &a, &v, msg, sizeof msg) == API_OK, "strict app");
    a.sdkappid = APP_LOW;
    a.identifier_policy = STORE_ID_PRINTABLE;
    a.default_expire = 600;
    a.max_expire = 3600;
    CHECK(op_apps_create(&svc, &admin, &a, &v, msg, sizeof msg) == API_OK &&
              v.app.admin_max_expire == 3600,
          "an app whose max_expire is under a day: admin_max_expire %u", v.app.admin_max_expire);

    /* Valid: two administrators, the gateway's one of them, a region. */
    static const char *const two[] = {"administrator", "ops admin", NULL};
    memset(&v0, 0, sizeof v0);
    ids(&v0, two);
    snprintf(v0.gateway_identifier, sizeof v0.gateway_identifier, "administrator");
    snprintf(v0.tencent_base_url, sizeof v0.tencent_base_url, "https://AdminApiSGP.im.qcloud.com/");
    v0.admin_max_expire = 7200;
    err = patch(APP_A,
                STORE_APP_SET_ADMIN_IDS | STORE_APP_SET_GATEWAY_ID | STORE_APP_SET_BASE_URL |
                    STORE_APP_SET_ADMIN_MAX_EXPIRE,
                &v0, &v);
    CHECK(err == API_OK && v.app.n_admin_ids == 2 && strcmp(v.app.admin_ids[1], "ops admin") == 0 &&
              strcmp(v.app.gateway_identifier, "administrator") == 0 &&
              strcmp(v.app.tencent_base_url, "https://adminapisgp.im.qcloud.com") == 0 &&
              v.app.admin_max_expire == 7200,
          "PATCH the administrator fields: %d %s", err, msg);
    CHECK(count("SELECT count(*) FROM apps WHERE sdkappid = %u AND admin_identifiers = "
                "ARRAY['administrator', 'ops admin'] AND gateway_identifier = 'administrator' "
                "AND tencent_base_url = 'https://adminapisgp.im.qcloud.com' AND "
                "admin_max_expire = 7200",
                APP_A) == 1,
          "stored as given (the URL canonical)");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'app.update' AND sdkappid = %u "
                "AND details::jsonb->'changed'->'admin_identifiers'->'to' = "
                "'[\"administrator\", \"ops admin\"]'::jsonb AND "
                "details::jsonb->'changed'->'admin_identifiers'->'from' = '[]'::jsonb AND "
                "details::jsonb->'changed'->'gateway_identifier'->>'to' = 'administrator' AND "
                "details::jsonb->'changed'->'gateway_identifier'->'from' = 'null'::jsonb AND "
                "(details::jsonb->'changed'->'admin_max_expire'->>'to')::int = 7200 AND "
                "details::jsonb->'changed'->'tencent_base_url'->>'to' = "
                "'https://adminapisgp.im.qcloud.com'",
                APP_A) == 1,
          "one app.update event with each change from/to");
    err = patch(APP_A, STORE_APP_SET_ADMIN_IDS | STORE_APP_SET_GATEWAY_ID, &v0, &v);
    CHECK(err == API_OK && count("SELECT count(*) FROM audit_log WHERE action = 'app.update' "
                                 "AND sdkappid = %u",
                                 APP_A) == 1,
          "the same again writes and audits nothing");

    /* Each refusal: its code, a message that says what to do, the row as it was. */
    char *before = row_of(APP_A);
    long long events = count("SELECT count(*) FROM audit_log");
    struct {
        const char *what;
        unsigned set;
        struct store_app values;
        enum api_error want;
        const char *names;
    } bad[8];
    memset(bad, 0, sizeof bad);
    int n = 0;
    static const char *const dup[] = {"ops", "ops", NULL};
    static const char *const ctl[] = {"ok", "tab\there", NULL};
    static const char *const other[] = {"someone", NULL};
    bad[n].what = "an identifier listed twice";
    bad[n].set = STORE_APP_SET_ADMIN_IDS | STORE_APP_SET_GATEWAY_ID;
    ids(&bad[n].values, dup);
    bad[n].want = API_ERR_INVALID_FIELD;
    bad[n++].names = "twice";
    bad[n].what = "a control character";
    bad[n].set = STORE_APP_SET_ADMIN_IDS | STORE_APP_SET_GATEWAY_ID;
    ids(&bad[n].values, ctl);
    bad[n].want = API_ERR_BAD_IDENTIFIER;
    bad[n++].names = "admin_identifiers[1]";
    bad[n].what = "the gateway's identifier dropped from the list";
    bad[n].set = STORE_APP_SET_ADMIN_IDS;
    ids(&bad[n].values, other);
    bad[n].want = API_ERR_INVALID_FIELD;
    bad[n++].names = "gateway_identifier";
    bad[n].what = "a gateway identifier not in the list";
    bad[n].set = STORE_APP_SET_GATEWAY_ID;
    snprintf(bad[n].values.gateway_identifier, sizeof bad[n].values.gateway_identifier, "ghost");
    bad[n].want = API_ERR_INVALID_FIELD;
    bad[n++].names = "admin_identifiers";
    bad[n].what = "admin_max_expire over max_expire";
    bad[n].set = STORE_APP_SET_ADMIN_MAX_EXPIRE | STORE_APP_SET_MAX_EXPIRE;
    bad[n].values.max_expire = 15552000;
    bad[n].values.admin_max_expire = 15552001;
    bad[n].want = API_ERR_BAD_EXPIRE;
    bad[n++].names = "admin_max_expire";
    bad[n].what = "an http URL";
    bad[n].set = STORE_APP_SET_BASE_URL;
    snprintf(bad[n].values.tencent_base_url, sizeof bad[n].values.tencent_base_url,
             "http://console.tim.qq.com");
    bad[n].want = API_ERR_INVALID_FIELD;
    bad[n++].names = "https://";
    bad[n].what = "a loopback URL";
    bad[n].set = STORE_APP_SET_BASE_URL;
    snprintf(bad[n].values.tencent_base_url, sizeof bad[n].values.tencent_base_url,
             "https://127.0.0.1:8443");
    bad[n].want = API_ERR_INVALID_FIELD;
    bad[n++].names = "console.tim.qq.com";
    for (int i = 0; i < n; i++) {
        /* The other fields as they are, so only the one under test can be wrong. */
        struct store_app vals = bad[i].values;
        if (!(bad[i].set & STORE_APP_SET_MAX_EXPIRE))
            vals.max_expire = 315360000;
        if (!(bad[i].set & STORE_APP_SET_GATEWAY_ID))
            snprintf(vals.gateway_identifier, sizeof vals.gateway_identifier, "administrator");
        err = patch(APP_A, bad[i].set, &vals, &v);
        CHECK(err == bad[i].want && strstr(msg, bad[i].names) != NULL, "%s: %d (%s) %s",
              bad[i].what, err, api_error_code(err), msg);
        CHECK(strcmp(row_of(APP_A), before) == 0, "%s: the row unchanged", bad[i].what);
    }
    CHECK(count("SELECT count(*) FROM audit_log") == events, "no refusal wrote an event");

    /* Under the strict policy an identifier with a space is no UserID; nor can the policy turn
     * strict under identifiers it refuses. */
    static const char *const spaced[] = {"ops admin", NULL};
    memset(&v0, 0, sizeof v0);
    ids(&v0, spaced);
    err = patch(APP_S, STORE_APP_SET_ADMIN_IDS, &v0, &v);
    CHECK(err == API_ERR_BAD_IDENTIFIER && strstr(msg, "strict") != NULL, "strict app: %d %s", err,
          msg);
    memset(&v0, 0, sizeof v0);
    v0.identifier_policy = STORE_ID_STRICT;
    err = patch(APP_A, STORE_APP_SET_ID_POLICY, &v0, &v);
    CHECK(err == API_ERR_BAD_IDENTIFIER, "strict over \"ops admin\" refused: %d %s", err, msg);

    /* A lower max_expire takes admin_max_expire down with it, audited. */
    memset(&v0, 0, sizeof v0);
    v0.max_expire = 3600;
    v0.default_expire = 1800;
    err = patch(APP_A, STORE_APP_SET_MAX_EXPIRE | STORE_APP_SET_DEFAULT_EXPIRE, &v0, &v);
    CHECK(err == API_OK && v.app.admin_max_expire == 3600 && v.app.max_expire == 3600,
          "max_expire 3600: admin_max_expire %u (%d %s)", v.app.admin_max_expire, err, msg);
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'app.update' AND sdkappid = %u "
                "AND (details::jsonb->'changed'->'admin_max_expire'->>'from')::int = 7200 AND "
                "(details::jsonb->'changed'->'admin_max_expire'->>'to')::int = 3600",
                APP_A) == 1,
          "the lowering audited");
    memset(&v0, 0, sizeof v0);
    v0.max_expire = 315360000;
    v0.default_expire = 15552000;
    v0.admin_max_expire = 86400;
    err = patch(APP_A,
                STORE_APP_SET_MAX_EXPIRE | STORE_APP_SET_DEFAULT_EXPIRE |
                    STORE_APP_SET_ADMIN_MAX_EXPIRE,
                &v0, &v);
    CHECK(err == API_OK && v.app.admin_max_expire == 86400, "raised again: %d %s", err, msg);

    /* The gateway cleared, then a test stand-in URL with the setting on only. */
    memset(&v0, 0, sizeof v0);
    err = patch(APP_A, STORE_APP_SET_GATEWAY_ID, &v0, &v);
    CHECK(err == API_OK && v.app.gateway_identifier[0] == '\0' &&
              count("SELECT count(*) FROM apps WHERE sdkappid = %u AND gateway_identifier IS "
                    "NULL",
                    APP_A) == 1,
          "gateway_identifier null: %d %s", err, msg);
    snprintf(v0.tencent_base_url, sizeof v0.tencent_base_url, "http://127.0.0.1:18443");
    cfg.tencent_allow_insecure_base_url = 1;
    err = patch(APP_A, STORE_APP_SET_BASE_URL, &v0, &v);
    cfg.tencent_allow_insecure_base_url = 0;
    CHECK(err == API_OK && strcmp(v.app.tencent_base_url, "http://127.0.0.1:18443") == 0,
          "with tencent_allow_insecure_base_url a loopback stand-in: %d %s", err, msg);
    struct op_apps_view got;
    CHECK(op_apps_get(&svc, &admin, APP_A, &got, msg, sizeof msg) == API_OK &&
              strcmp(got.app.tencent_base_url, "http://127.0.0.1:18443") == 0 &&
              got.app.n_admin_ids == 2 && strcmp(got.app.admin_ids[0], "administrator") == 0,
          "read back");
    snprintf(v0.tencent_base_url, sizeof v0.tencent_base_url, "https://console.tim.qq.com");
    CHECK(patch(APP_A, STORE_APP_SET_BASE_URL, &v0, &v) == API_OK, "back to the default");
}

/* ---- signing ---- */

struct call {
    struct sign_request req;
    char id[40];
    int done;
};

static void done_cb(struct sign_request *req)
{
    ((struct call *)req->arg)->done++;
}

/* One sign for id by p, run at once on svc's connection (no pool). */
static enum api_error sign_as(const struct principal *p, uint32_t app, const char *id,
                              json_int_t expire, struct call *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->req.principal = p;
    c->req.sdkappid = app;
    c->req.in.identifier = c->id;
    c->req.in.identifier_len = strlen(c->id);
    c->req.in.has_expire = expire > 0;
    c->req.in.expire = expire;
    c->req.done = done_cb;
    c->req.arg = c;
    sign_submit(&svc, &c->req);
    CHECK(c->done == 1, "done once");
    return c->req.err;
}

static long long refusals(const char *outcome, const char *id)
{
    return count("SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome = "
                 "'%s' AND details::jsonb->>'identifier' = '%s'",
                 outcome, id);
}

static void test_sign(void)
{
    struct op_keys_rotation rot;
    struct op_keys_import_in in = {
        .sdkappid = APP_A,
        .material = {.kind = STORE_KEY_HMAC, .bytes = SECRET_A, .len = strlen(SECRET_A)},
    };
    struct call c;
    enum api_error err;

    CHECK(op_keys_import(&svc, &admin, &in, &rot, msg, sizeof msg) == API_OK, "a key for A");

    err = sign_as(&signer, APP_A, "administrator", 0, &c);
    CHECK(err == API_ERR_ADMIN_IDENTIFIER && c.req.token_len == 0 &&
              strstr(c.req.msg, "admin_signer") != NULL,
          "a signer for the administrator: %d %s", err, c.req.msg);
    CHECK(refusals("admin_identifier", "administrator") == 1, "the refusal audited");
    err = sign_as(&signer, APP_A, "alice", 0, &c);
    CHECK(err == API_OK && c.req.token_len > 0, "the signer for another identifier: %d", err);

    err = sign_as(&asigner, APP_A, "administrator", 0, &c);
    CHECK(err == API_OK && c.req.token_len > 0, "admin_signer for the administrator: %d %s", err,
          c.req.msg);
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome = 'ok' "
                "AND details::jsonb->>'identifier' = 'administrator' AND "
                "(details::jsonb->>'expire')::int = 86400") == 1,
          "its default expire lowered to admin_max_expire, audited");
    err = sign_as(&asigner, APP_A, "ops admin", 86401, &c);
    CHECK(err == API_ERR_BAD_EXPIRE && strstr(c.req.msg, "admin_max_expire") != NULL,
          "admin_signer over admin_max_expire: %d %s", err, c.req.msg);
    CHECK(refusals("bad_expire", "ops admin") == 1, "that refusal audited too");
    err = sign_as(&admin, APP_A, "ops admin", 3600, &c);
    CHECK(err == API_OK, "admin, an hour: %d", err);

    err = sign_as(&prefixed, APP_A, "user_7", 0, &c);
    CHECK(err == API_OK, "a prefix token in its prefix: %d %s", err, c.req.msg);
    err = sign_as(&prefixed, APP_A, "bob", 0, &c);
    CHECK(err == API_ERR_IDENTIFIER_PREFIX && strstr(c.req.msg, "user_") != NULL,
          "a prefix token outside it: %d %s", err, c.req.msg);
    CHECK(refusals("identifier_prefix", "bob") == 1, "audited");

    /* The cache follows a change at once: "alice" becomes an administrator. */
    const struct cache_app *e = cache_app_get(svc.cache, APP_A);
    CHECK(e != NULL && e->app.n_admin_ids == 2, "A is cached, with its administrators");
    cache_app_release(e);
    long long gen = count("SELECT generation FROM apps WHERE sdkappid = %u", APP_A);
    struct store_app v0;
    struct op_apps_view v;
    static const char *const three[] = {"administrator", "ops admin", "alice", NULL};
    memset(&v0, 0, sizeof v0);
    ids(&v0, three);
    CHECK(patch(APP_A, STORE_APP_SET_ADMIN_IDS, &v0, &v) == API_OK, "alice made an administrator");
    CHECK(count("SELECT generation FROM apps WHERE sdkappid = %u", APP_A) > gen,
          "the change bumped the app's generation (the notification trigger)");
    e = cache_app_get(svc.cache, APP_A);
    CHECK(e == NULL, "and evicted it");
    cache_app_release(e);
    err = sign_as(&signer, APP_A, "alice", 0, &c);
    CHECK(err == API_ERR_ADMIN_IDENTIFIER, "the next sign refuses alice: %d", err);

    /* Behind the process's back (no eviction here): the group's generation check re-reads. */
    e = cache_app_get(svc.cache, APP_A);
    CHECK(e != NULL && e->app.n_admin_ids == 3, "cached again with three");
    cache_app_release(e);
    CHECK(dbtest_exec(conn,
                      "UPDATE apps SET admin_identifiers = ARRAY['administrator'] WHERE "
                      "sdkappid = 1400000400",
                      false),
          "alice dropped by hand");
    err = sign_as(&signer, APP_A, "alice", 0, &c);
    CHECK(err == API_OK, "signed again after the stale entry was re-read: %d %s", err, c.req.msg);
}

/* ---- tokens ---- */

static void test_tokens(void)
{
    char token[KEYRING_TOKEN_BUF];
    struct store_token t, got;
    char prefixes[2][STORE_ID_MAX + 1] = {"user_", "bot-"};
    char rest[2][STORE_TOKEN_REST_MAX + 1] = {"openim/*", "im_open_login_svc/account_import"};
    struct op_tokens_create_in in = {
        .name = "prefixed signer",
        .role = STORE_ROLE_SIGNER,
        .all_apps = true,
        .n_prefixes = 2,
        .prefixes = prefixes[0],
    };
    enum api_error err =
        op_tokens_create(&svc, &admin, &in, &t, token, sizeof token, msg, sizeof msg);
    CHECK(err == API_OK && t.n_prefixes == 2, "a signer with prefixes: %d %s", err, msg);
    CHECK(count("SELECT count(*) FROM api_tokens WHERE id = %lld AND identifier_prefixes = "
                "ARRAY['user_', 'bot-'] AND rest_allow IS NULL",
                (long long)t.id) == 1,
          "stored");
    CHECK(count("SELECT count(*) FROM audit_log WHERE action = 'token.create' AND "
                "details::jsonb->'identifier_prefixes' = '[\"user_\", \"bot-\"]'::jsonb") == 1,
          "audited with them");

    /* The token check gives a principal that carries them. */
    const char *const tokens[] = {token};
    enum service_token_rc rc;
    struct principal p;
    service_check_tokens(&svc, tokens, 1, &rc, &p);
    CHECK(rc == SERVICE_TOKEN_OK && p.role == ROLE_SIGNER && p.n_prefixes == 2 &&
              strcmp(p.prefixes[1], "bot-") == 0 && p.n_rest == 0,
          "the principal carries the prefixes");
    struct call c;
    CHECK(sign_as(&p, APP_A, "bot-1", 0, &c) == API_OK &&
              sign_as(&p, APP_A, "carol", 0, &c) == API_ERR_IDENTIFIER_PREFIX,
          "and signing follows them");
    OPENSSL_cleanse(token, sizeof token);

    struct op_tokens_create_in rin = {
        .name = "gateway caller",
        .role = STORE_ROLE_REST_CALLER,
        .all_apps = false,
        .n_apps = 1,
        .apps = (const uint32_t[]){APP_A},
        .n_rest = 2,
        .rest = rest[0],
    };
    err = op_tokens_create(&svc, &admin, &rin, &t, token, sizeof token, msg, sizeof msg);
    CHECK(err == API_OK, "a rest_caller: %d %s", err, msg);
    CHECK(store_token_get(svc.st, t.id, &got) == STORE_OK && got.role == STORE_ROLE_REST_CALLER &&
              got.n_rest == 2 && strcmp(got.rest[1], "im_open_login_svc/account_import") == 0 &&
              got.n_prefixes == 0,
          "read back");
    const char *const rt[] = {token};
    service_check_tokens(&svc, rt, 1, &rc, &p);
    CHECK(rc == SERVICE_TOKEN_OK && p.role == ROLE_REST_CALLER && p.n_rest == 2 &&
              principal_rest_allows(&p, "openim", "sendmsg") &&
              principal_rest_allows(&p, "im_open_login_svc", "account_import") &&
              !principal_rest_allows(&p, "im_open_login_svc", "account_delete") &&
              principal_has_app(&p, APP_A) && !principal_has_app(&p, APP_S) &&
              role_has_perm(p.role, PERM_TENCENT_REST) && !role_has_perm(p.role, PERM_SIGN),
          "the rest_caller's principal");
    OPENSSL_cleanse(token, sizeof token);

    /* The database refuses what the code does: a rest_caller without patterns, patterns or
     * prefixes on the wrong role, bad patterns, too many administrators, a gateway outside. */
    static const char *const refused[] = {
        "INSERT INTO api_tokens (name, role, secret_hash) VALUES ('x', 'rest_caller', "
        "'\\x" SECRET_A "')",
        "INSERT INTO api_tokens (name, role, secret_hash, rest_allow) VALUES ('x', 'auditor', "
        "'\\x" SECRET_A "', ARRAY['openim/*'])",
        "INSERT INTO api_tokens (name, role, secret_hash, rest_allow) VALUES ('x', "
        "'key_manager', '\\x" SECRET_A "', ARRAY['im_open_login_svc/multiaccount_import'])",
        "INSERT INTO api_tokens (name, role, secret_hash, rest_allow) VALUES ('x', 'signer', "
        "'\\x" SECRET_A "', ARRAY['openim/*'])",
        "INSERT INTO api_tokens (name, role, secret_hash, identifier_prefixes) VALUES ('x', "
        "'auditor', '\\x" SECRET_A "', ARRAY['u'])",
        "INSERT INTO api_tokens (name, role, secret_hash, rest_allow) VALUES ('x', "
        "'rest_caller', '\\x" SECRET_A "', ARRAY['openim/send*'])",
        "INSERT INTO api_tokens (name, role, secret_hash, rest_allow) VALUES ('x', "
        "'rest_caller', '\\x" SECRET_A "', ARRAY[]::text[])",
        "INSERT INTO api_tokens (name, role, secret_hash) VALUES ('x', 'root', '\\x" SECRET_A "')",
        "UPDATE apps SET admin_identifiers = ARRAY['a','b','c','d','e','f','g','h','i','j','k'] "
        "WHERE sdkappid = 1400000400",
        "UPDATE apps SET admin_identifiers = ARRAY['a', 'a'] WHERE sdkappid = 1400000400",
        "UPDATE apps SET admin_identifiers = ARRAY['012345678901234567890123456789012'] WHERE "
        "sdkappid = 1400000400",
        "UPDATE apps SET gateway_identifier = 'nobody' WHERE sdkappid = 1400000400",
        "UPDATE apps SET admin_max_expire = max_expire + 1 WHERE sdkappid = 1400000400",
        "UPDATE apps SET tencent_base_url = 'ftp://x' WHERE sdkappid = 1400000400",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CHECK(dbtest_error(conn, refused[i]) != NULL, "refused by the database: %s", refused[i]);
    CHECK(dbtest_error(conn, "INSERT INTO api_tokens (name, role, secret_hash) VALUES ('x', "
                             "'admin_signer', '\\x" SECRET_A "')") == NULL,
          "an admin_signer row is allowed");
    CHECK(dbtest_error(conn, "INSERT INTO api_tokens (name, role, secret_hash, rest_allow) VALUES "
                             "('x', 'signer', '\\x" SECRET_A
                             "', ARRAY['im_open_login_svc/multiaccount_import'])") == NULL,
          "a signer with rest_allow (a batch's import=1) is allowed");
}

int main(void)
{
    struct dbtest t;

    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "db_admin_ids", true);
    conn = dbtest_connect(&t);
    memset(&cfg, 0, sizeof cfg);
    svc.cfg = &cfg;
    svc.st = dbtest_store(&t);
    svc.kr = dbtest_keyring(svc.st);
    svc.migrations_dir = USERSIGD_MIGRATIONS_DIR;
    svc.cache = cache_new();
    if (svc.cache == NULL)
        return 1;
    cache_set_listening(svc.cache, true);
    /* Token id 0, as the operator's commands: a sign's group checks only real tokens' rows. */
    principal_make(&admin, 0, "admin", ROLE_ADMIN);
    principal_make(&signer, 0, "signer", ROLE_SIGNER);
    principal_make(&asigner, 0, "admin signer", ROLE_ADMIN_SIGNER);
    principal_make(&prefixed, 0, "prefixed", ROLE_SIGNER);
    snprintf(prefixed.prefixes[prefixed.n_prefixes++], sizeof prefixed.prefixes[0], "user_");

    test_patch();
    test_sign();
    test_tokens();

    struct audit_verify_result vr;
    CHECK(op_audit_verify(&svc, &admin, &vr, msg, sizeof msg) == API_OK && vr.ok &&
              vr.checked == count("SELECT count(*) FROM audit_log"),
          "every event, refusals included, on one chain that verifies");

    cache_free(svc.cache);
    keyring_free(svc.kr);
    store_close(svc.st);
    PQfinish(conn);
    dbtest_drop(&t);
    return test_done("db_admin_ids");
}
