/*
 * The app and key handlers for real: the admin API (the real route table, authn_token)
 * served on 127.0.0.1 from a thread, over a fresh migrated database and a keyring from a
 * temporary master key file, driven with plain HTTP requests. Checks replies, the rows left in
 * the database and the audit events, refusals included.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "audit.h"
#include "dbtest.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "routes.h"
#include "authn.h"
#include "service.h"

#define APP_A 1400000100u
#define APP_B 1400000101u
#define APP_C 1400000102u

/* Test keys: HMAC secrets as the console shows them (64 hex characters). */
#define S1 "1111111111111111111111111111111111111111111111111111111111111111"
#define S2 "2222222222222222222222222222222222222222222222222222222222222222"
#define S3 "3333333333333333333333333333333333333333333333333333333333333333"
#define S4 "4444444444444444444444444444444444444444444444444444444444444444"

static struct event_base *base;
static int port;
static char tok_admin[KEYRING_TOKEN_BUF], tok_km_a[KEYRING_TOKEN_BUF], tok_km_b[KEYRING_TOKEN_BUF];

/* ---- HTTP (testlib's client) ------------------------------------------------------------ */

/* Sends method path with token and body (JSON text or NULL); fills *out (test_resp_free() it). */
static void request(struct test_resp *out, const char *method, const char *path, const char *token,
                    const char *body)
{
    char headers[KEYRING_TOKEN_BUF + 96];
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n%s", token,
             body != NULL ? "Content-Type: application/json\r\n" : "");
    if (test_http_request(out, port, method, path, headers, body,
                          body != NULL ? (long)strlen(body) : -1) != 0)
        CHECK(0, "%s %s: no HTTP response", method, path);
}

static void expect(const char *what, const struct test_resp *r, int status, const char *code)
{
    CHECK(r->status == status, "%s: status %d, want %d (%s)", what, r->status, status,
          r->body ? r->body : "");
    if (code != NULL)
        CHECK(strcmp(test_resp_error_code(r), code) == 0, "%s: code %s, want %s (%s)", what,
              test_resp_error_code(r), code, test_resp_error_message(r));
}

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(none)";
}

/* ---- fixtures ---------------------------------------------------------------------------- */

/* A token row made directly in the store; writes "usg_<id>_<secret>" into out. */
static void make_token(struct store *st, const char *name, enum store_role role, uint32_t app,
                       char out[KEYRING_TOKEN_BUF])
{
    char tmp[KEYRING_TOKEN_BUF];
    struct store_token t = {.role = role, .all_apps = app == 0};
    snprintf(t.name, sizeof t.name, "%s", name);
    if (app != 0) {
        t.n_apps = 1;
        t.apps[0] = app;
    }
    /* The hash covers the secret only, so the id can be put in after the insert. */
    if (keyring_token_new(1, tmp, sizeof tmp, t.secret_hash) != KEYRING_OK ||
        store_token_insert(st, &t) != STORE_OK) {
        fprintf(stderr, "cannot make token %s\n", name);
        exit(1);
    }
    snprintf(out, KEYRING_TOKEN_BUF, "usg_%lld_%s", (long long)t.id, tmp + strlen("usg_1_"));
}

/* A fresh P-256 private key as PEM (PKCS#8), and its public half (SPKI). Caller free()s both. */
static void make_ec_pem(char **priv, char **pub)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *b1 = BIO_new(BIO_s_mem()), *b2 = BIO_new(BIO_s_mem());
    char *p;
    long n;
    *priv = *pub = NULL;
    if (k == NULL || b1 == NULL || b2 == NULL ||
        !PEM_write_bio_PrivateKey(b1, k, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_PUBKEY(b2, k)) {
        CHECK(0, "cannot make an EC key");
    } else {
        n = BIO_get_mem_data(b1, &p);
        *priv = strndup(p, (size_t)n);
        n = BIO_get_mem_data(b2, &p);
        *pub = strndup(p, (size_t)n);
    }
    BIO_free(b1);
    BIO_free(b2);
    EVP_PKEY_free(k);
}

/* {"<field>": value, "activate": true?} as JSON text (value escaped); caller free()s it. */
static char *body_with(const char *field, const char *value, int activate)
{
    json_t *o = json_object();
    json_object_set_new(o, field, json_string(value));
    if (activate >= 0)
        json_object_set_new(o, "activate", json_boolean(activate));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ---- the tests --------------------------------------------------------------------------- */

static void test_apps(PGconn *c)
{
    struct test_resp r;
    char body[256];

    snprintf(body, sizeof body, "{\"sdkappid\":%u,\"name\":\"App A\"}", APP_A);
    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("create A", &r, 201, NULL);
    CHECK(jint(r.json, "sdkappid") == APP_A && strcmp(jstr(r.json, "name"), "App A") == 0 &&
              jint(r.json, "default_expire") == 15552000 &&
              jint(r.json, "max_expire") == 315360000 &&
              strcmp(jstr(r.json, "identifier_policy"), "printable") == 0 &&
              json_is_null(json_object_get(r.json, "active_key_version")) &&
              strlen(jstr(r.json, "created_at")) == 27,
          "create A: the app with its defaults: %s", r.body);
    test_resp_free(&r);

    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("create A again", &r, 409, "app_exists");
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'app.create' "
                           "AND outcome = 'app_exists'") == 1,
          "the duplicate is audited as a refusal");

    snprintf(body, sizeof body,
             "{\"sdkappid\":%u,\"name\":\"B\",\"default_expire\":100,\"max_expire\":99}", APP_B);
    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("default over max", &r, 400, "bad_expire");
    CHECK(strstr(test_resp_error_message(&r), "default_expire") &&
              strstr(test_resp_error_message(&r), "max_expire"),
          "the message names the rule: %s", test_resp_error_message(&r));
    test_resp_free(&r);
    snprintf(body, sizeof body, "{\"sdkappid\":%u,\"name\":\"B\",\"max_expire\":315360001}", APP_B);
    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("max over 10 years", &r, 400, "bad_expire");
    test_resp_free(&r);
    request(&r, "POST", "/v1/apps", tok_admin, "{\"sdkappid\":0,\"name\":\"B\"}");
    expect("sdkappid 0", &r, 400, "invalid_field");
    test_resp_free(&r);
    request(&r, "POST", "/v1/apps", tok_admin, "{\"sdkappid\":4294967296,\"name\":\"B\"}");
    expect("sdkappid 2^32", &r, 400, "invalid_field");
    test_resp_free(&r);
    snprintf(body, sizeof body, "{\"sdkappid\":%u,\"name\":\"\"}", APP_B);
    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("empty name", &r, 400, "invalid_field");
    test_resp_free(&r);
    snprintf(body, sizeof body, "{\"sdkappid\":%u,\"name\":\"B\",\"identifier_policy\":\"x\"}",
             APP_B);
    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("unknown policy", &r, 400, "invalid_field");
    test_resp_free(&r);

    snprintf(body, sizeof body, "{\"sdkappid\":%u,\"name\":\"B\"}", APP_B);
    request(&r, "POST", "/v1/apps", tok_km_a, body);
    expect("a token scoped to A creates B", &r, 403, "forbidden");
    test_resp_free(&r);
    snprintf(body, sizeof body, "{\"sdkappid\":%u,\"name\":\"B\",\"max_expire\":86400}", APP_B);
    request(&r, "POST", "/v1/apps", tok_km_b, body);
    expect("a token scoped to B creates B", &r, 201, NULL);
    CHECK(jint(r.json, "default_expire") == 86400 && jint(r.json, "max_expire") == 86400,
          "without default_expire, a max_expire under 180 days is the default: %s", r.body);
    test_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"sdkappid\":%u,\"name\":\"C\",\"default_expire\":60,\"max_expire\":60,"
             "\"identifier_policy\":\"strict\"}",
             APP_C);
    request(&r, "POST", "/v1/apps", tok_admin, body);
    expect("create C", &r, 201, NULL);
    CHECK(jint(r.json, "default_expire") == 60 &&
              strcmp(jstr(r.json, "identifier_policy"), "strict") == 0,
          "C's settings: %s", r.body);
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM apps") == 3, "three apps");

    request(&r, "GET", "/v1/apps", tok_admin, NULL);
    expect("list", &r, 200, NULL);
    CHECK(json_array_size(json_object_get(r.json, "apps")) == 3 &&
              json_is_null(json_object_get(r.json, "next_after")),
          "admin sees three apps on one page: %s", r.body);
    test_resp_free(&r);
    request(&r, "GET", "/v1/apps?limit=2", tok_admin, NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "apps")) == 2 &&
              jint(r.json, "next_after") == APP_B,
          "page of 2: %s", r.body);
    test_resp_free(&r);
    snprintf(body, sizeof body, "/v1/apps?after=%u&limit=2", APP_B);
    request(&r, "GET", body, tok_admin, NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "apps")) == 1 &&
              json_is_null(json_object_get(r.json, "next_after")),
          "last page: %s", r.body);
    test_resp_free(&r);
    request(&r, "GET", "/v1/apps", tok_km_a, NULL);
    json_t *apps = json_object_get(r.json, "apps");
    CHECK(r.status == 200 && json_array_size(apps) == 1 &&
              jint(json_array_get(apps, 0), "sdkappid") == APP_A,
          "a scoped token sees its app only: %s", r.body);
    test_resp_free(&r);
    request(&r, "GET", "/v1/apps?limit=0", tok_admin, NULL);
    expect("limit 0", &r, 400, "invalid_param");
    test_resp_free(&r);
    request(&r, "GET", "/v1/apps?page=2", tok_admin, NULL);
    expect("unknown parameter", &r, 400, "invalid_param");
    test_resp_free(&r);

    request(&r, "GET", "/v1/apps/999", tok_admin, NULL);
    expect("get unknown", &r, 404, "app_not_found");
    test_resp_free(&r);
    snprintf(body, sizeof body, "/v1/apps/%u", APP_C);
    request(&r, "GET", body, tok_admin, NULL);
    expect("get C", &r, 200, NULL);
    CHECK(jint(r.json, "max_expire") == 60, "get C: %s", r.body);
    test_resp_free(&r);

    /* PATCH */
    char path[64];
    snprintf(path, sizeof path, "/v1/apps/%u", APP_A);
    request(&r, "PATCH", path, tok_admin, "{}");
    expect("patch nothing", &r, 400, "missing_field");
    test_resp_free(&r);
    request(&r, "PATCH", path, tok_admin, "{\"max_expire\":100}");
    expect("patch max under default", &r, 400, "bad_expire");
    test_resp_free(&r);
    request(&r, "PATCH", path, tok_admin, "{\"sdkappid\":5}");
    expect("patch sdkappid", &r, 400, "unknown_field");
    test_resp_free(&r);
    request(&r, "PATCH", path, tok_admin,
            "{\"name\":\"App A2\",\"default_expire\":3600,\"max_expire\":86400}");
    expect("patch A", &r, 200, NULL);
    CHECK(strcmp(jstr(r.json, "name"), "App A2") == 0 && jint(r.json, "default_expire") == 3600 &&
              jint(r.json, "max_expire") == 86400 &&
              strcmp(jstr(r.json, "identifier_policy"), "printable") == 0,
          "patched: %s", r.body);
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'app.update' AND "
                           "outcome = 'ok' AND details::jsonb #>> '{changed,name,to}' = 'App A2' "
                           "AND details::jsonb #>> '{changed,default_expire,from}' = '15552000' "
                           "AND NOT (details::jsonb -> 'changed') ? 'identifier_policy'") == 1,
          "app.update audited with the changed fields");
    request(&r, "PATCH", path, tok_admin, "{\"name\":\"App A2\"}");
    expect("patch with no change", &r, 200, NULL);
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'app.update'") == 1,
          "no change, no event");
    request(&r, "PATCH", "/v1/apps/999", tok_admin, "{\"name\":\"x\"}");
    expect("patch unknown", &r, 404, "app_not_found");
    test_resp_free(&r);
}

/* Keys of A: import, rotate, disable, enable, destroy. */
static void test_keys(PGconn *c)
{
    struct test_resp r;
    char path[128], *b;
    const char *fp1;
    char fp1_copy[32] = "";

    snprintf(path, sizeof path, "/v1/apps/%u/keys", APP_A);
    b = body_with("secret", S1, -1);
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("import first", &r, 201, NULL);
    fp1 = jstr(r.json, "fingerprint");
    snprintf(fp1_copy, sizeof fp1_copy, "%s", fp1);
    CHECK(jint(r.json, "version") == 1 && strcmp(jstr(r.json, "state"), "active") == 0 &&
              strcmp(jstr(r.json, "kind"), "hmac") == 0 && strlen(fp1) == 16 &&
              strspn(fp1, "0123456789abcdef") == 16 && strlen(jstr(r.json, "activated_at")) == 27 &&
              json_is_null(json_object_get(r.json, "retired_at")) &&
              jint(r.json, "sign_count") == 0 && json_object_get(r.json, "secret") == NULL &&
              strstr(r.body, S1) == NULL,
          "the first version is active, metadata only: %s", r.body);
    test_resp_free(&r);

    b = body_with("secret", S2, -1);
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("import second", &r, 201, NULL);
    CHECK(jint(r.json, "version") == 2 && strcmp(jstr(r.json, "state"), "pending") == 0 &&
              json_is_null(json_object_get(r.json, "activated_at")),
          "the second version is pending: %s", r.body);
    test_resp_free(&r);

    b = body_with("secret", S1, -1);
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("import a key A holds", &r, 409, "conflict");
    CHECK(strstr(test_resp_error_message(&r), "version 1") != NULL, "names the version: %s",
          test_resp_error_message(&r));
    test_resp_free(&r);

    request(&r, "POST", path, tok_admin, "{}");
    expect("import nothing", &r, 400, "missing_field");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"secret\":\"" S3 "\",\"private_key_pem\":\"x\"}");
    expect("import both", &r, 400, "invalid_field");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"secret\":\"\"}");
    expect("empty secret", &r, 400, "bad_key");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"private_key_pem\":\"not a pem\"}");
    expect("bad PEM", &r, 400, "bad_key");
    test_resp_free(&r);
    request(&r, "POST", "/v1/apps/999/keys", tok_admin, "{\"secret\":\"" S3 "\"}");
    expect("import to no app", &r, 404, "app_not_found");
    test_resp_free(&r);

    /* EC keys: a private one is taken, a public one cannot sign. */
    char *priv, *pub;
    make_ec_pem(&priv, &pub);
    if (priv != NULL) {
        b = body_with("private_key_pem", pub, -1);
        request(&r, "POST", path, tok_admin, b);
        free(b);
        expect("public PEM", &r, 400, "bad_key");
        CHECK(strstr(test_resp_error_message(&r), "public") != NULL, "says why: %s",
              test_resp_error_message(&r));
        test_resp_free(&r);
        b = body_with("private_key_pem", priv, -1);
        request(&r, "POST", path, tok_admin, b);
        free(b);
        expect("private PEM", &r, 201, NULL);
        CHECK(jint(r.json, "version") == 3 && strcmp(jstr(r.json, "kind"), "ecdsa") == 0 &&
                  strcmp(jstr(r.json, "state"), "pending") == 0 &&
                  strstr(r.body, "PRIVATE") == NULL,
              "an ecdsa version: %s", r.body);
        test_resp_free(&r);
    }
    free(pub);

    /* rotate to version 2 */
    snprintf(path, sizeof path, "/v1/apps/%u/keys/rotate", APP_A);
    request(&r, "POST", path, tok_admin, "{\"version\":2}");
    expect("rotate to 2", &r, 200, NULL);
    json_t *active = json_object_get(r.json, "active"),
           *retired = json_object_get(r.json, "retired");
    CHECK(jint(active, "version") == 2 && strcmp(jstr(active, "state"), "active") == 0 &&
              jint(retired, "version") == 1 && strcmp(jstr(retired, "state"), "retired") == 0 &&
              strlen(jstr(retired, "retired_at")) == 27,
          "2 active, 1 retired: %s", r.body);
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'key.rotate' AND "
                           "details::jsonb = '{\"from\":1,\"to\":2}'::jsonb") == 1,
          "key.rotate audited {from, to}");
    request(&r, "POST", path, tok_admin, "{\"version\":2}");
    expect("rotate to the active one", &r, 409, "invalid_state");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"version\":42}");
    expect("rotate to no version", &r, 404, "key_not_found");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"version\":1,\"secret\":\"" S3 "\"}");
    expect("rotate with two", &r, 400, "invalid_field");
    test_resp_free(&r);

    /* disable the active one: refused */
    snprintf(path, sizeof path, "/v1/apps/%u/keys/2/disable", APP_A);
    request(&r, "POST", path, tok_admin, NULL);
    expect("disable the active key", &r, 409, "invalid_state");
    CHECK(strstr(test_resp_error_message(&r), "rotate") != NULL, "says to rotate first: %s",
          test_resp_error_message(&r));
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'key.disable' AND "
                           "outcome = 'invalid_state' AND key_version = 2") == 1,
          "the refusal is audited");

    /* disable, then enable, the retired one */
    snprintf(path, sizeof path, "/v1/apps/%u/keys/1/disable", APP_A);
    request(&r, "POST", path, tok_admin, "{\"reason\":\"suspected leak\"}");
    expect("disable 1", &r, 200, NULL);
    CHECK(strcmp(jstr(r.json, "state"), "disabled") == 0 &&
              strlen(jstr(r.json, "disabled_at")) == 27,
          "1 disabled: %s", r.body);
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, NULL);
    expect("disable twice", &r, 409, "invalid_state");
    test_resp_free(&r);
    snprintf(path, sizeof path, "/v1/apps/%u/keys/rotate", APP_A);
    request(&r, "POST", path, tok_admin, "{\"version\":1}");
    expect("rotate to a disabled version", &r, 409, "invalid_state");
    test_resp_free(&r);
    snprintf(path, sizeof path, "/v1/apps/%u/keys/1/enable", APP_A);
    request(&r, "POST", path, tok_admin, NULL);
    expect("enable 1", &r, 200, NULL);
    CHECK(strcmp(jstr(r.json, "state"), "retired") == 0, "enabled means retired: %s", r.body);
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, NULL);
    expect("enable a retired version", &r, 409, "invalid_state");
    test_resp_free(&r);

    /* destroy the pending ecdsa version 3 */
    snprintf(path, sizeof path, "/v1/apps/%u/keys/3/destroy", APP_A);
    request(&r, "POST", path, tok_admin, "{}");
    expect("destroy without a reason", &r, 400, "missing_field");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"reason\":\"\"}");
    expect("destroy with an empty reason", &r, 400, "invalid_field");
    test_resp_free(&r);
    request(&r, "POST", path, tok_admin, "{\"reason\":\"never used\"}");
    expect("destroy 3", &r, 200, NULL);
    CHECK(strcmp(jstr(r.json, "state"), "destroyed") == 0 &&
              strcmp(jstr(r.json, "destroy_reason"), "never used") == 0 &&
              strlen(jstr(r.json, "destroyed_at")) == 27,
          "3 destroyed: %s", r.body);
    test_resp_free(&r);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM app_keys WHERE sdkappid = %u AND version = 3 AND sealed IS NULL",
             APP_A);
    CHECK(dbtest_scalar(c, sql) == 1, "the sealed key is gone");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'key.destroy' AND "
                           "outcome = 'ok' AND details::jsonb ->> 'reason' = 'never used'") == 1,
          "key.destroy audited with its reason");
    request(&r, "POST", path, tok_admin, "{\"reason\":\"again\"}");
    expect("destroy twice", &r, 409, "invalid_state");
    test_resp_free(&r);
    if (priv != NULL) {
        /* a destroyed key keeps its fingerprint: no other app may take it */
        snprintf(path, sizeof path, "/v1/apps/%u/keys", APP_C);
        b = body_with("private_key_pem", priv, -1);
        request(&r, "POST", path, tok_admin, b);
        free(b);
        expect("A's destroyed key into C", &r, 409, "key_used_by_other_app");
        test_resp_free(&r);
        free(priv);
    }
    snprintf(path, sizeof path, "/v1/apps/%u/keys/2/destroy", APP_A);
    request(&r, "POST", path, tok_admin, "{\"reason\":\"x\"}");
    expect("destroy the active key", &r, 409, "invalid_state");
    test_resp_free(&r);
    snprintf(path, sizeof path, "/v1/apps/%u/keys/9/disable", APP_A);
    request(&r, "POST", path, tok_admin, NULL);
    expect("disable no version", &r, 404, "key_not_found");
    test_resp_free(&r);

    /* rotate with new material: imported as version 4 and made active at once */
    snprintf(path, sizeof path, "/v1/apps/%u/keys/rotate", APP_A);
    b = body_with("secret", S4, -1);
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("rotate to a new key", &r, 200, NULL);
    active = json_object_get(r.json, "active");
    retired = json_object_get(r.json, "retired");
    CHECK(jint(active, "version") == 4 && strcmp(jstr(active, "state"), "active") == 0 &&
              jint(retired, "version") == 2 && strcmp(jstr(retired, "state"), "retired") == 0,
          "4 active, 2 retired: %s", r.body);
    test_resp_free(&r);

    /* the list: every version, metadata only */
    snprintf(path, sizeof path, "/v1/apps/%u/keys", APP_A);
    request(&r, "GET", path, tok_admin, NULL);
    expect("list keys", &r, 200, NULL);
    json_t *keys = json_object_get(r.json, "keys");
    CHECK(json_array_size(keys) == 4 &&
              strcmp(jstr(json_array_get(keys, 0), "fingerprint"), fp1_copy) == 0 &&
              strcmp(jstr(json_array_get(keys, 2), "state"), "destroyed") == 0 &&
              strstr(r.body, S1) == NULL && strstr(r.body, S2) == NULL &&
              strstr(r.body, S4) == NULL && strstr(r.body, "sealed") == NULL &&
              strstr(r.body, "secret") == NULL,
          "four versions and no key material: %s", r.body);
    test_resp_free(&r);
    request(&r, "GET", "/v1/apps/999/keys", tok_admin, NULL);
    expect("list keys of no app", &r, 404, "app_not_found");
    test_resp_free(&r);
    snprintf(path, sizeof path, "/v1/apps/%u", APP_A);
    request(&r, "GET", path, tok_admin, NULL);
    CHECK(r.status == 200 && jint(r.json, "active_key_version") == 4, "A's active version: %s",
          r.body);
    test_resp_free(&r);

    /* activate: true on import rotates at once */
    snprintf(path, sizeof path, "/v1/apps/%u/keys", APP_C);
    b = body_with("secret", S3, -1);
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("C's first key", &r, 201, NULL);
    test_resp_free(&r);
    b = body_with("secret", "c-second-key", 1);
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("C's second key, activated", &r, 201, NULL);
    CHECK(jint(r.json, "version") == 2 && strcmp(jstr(r.json, "state"), "active") == 0,
          "activated: %s", r.body);
    test_resp_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM app_keys WHERE sdkappid = %u AND version = 1 AND "
             "state = 'retired'",
             APP_C);
    CHECK(dbtest_scalar(c, sql) == 1, "C's first key retired");
}

/* A key that another app holds: refused, audited, nothing else changed, and the other app named
 * only to a caller that can see it. */
static void test_other_app(PGconn *c)
{
    struct test_resp r;
    char path[128], sql[512], *b;
    long long keys_before = dbtest_scalar(c, "SELECT count(*) FROM app_keys");
    long long refusals = dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE outcome = "
                                          "'key_used_by_other_app'");
    char a_text[16];
    snprintf(a_text, sizeof a_text, "%u", APP_A);

    snprintf(path, sizeof path, "/v1/apps/%u/keys", APP_B);
    b = body_with("secret", S2, 1);
    request(&r, "POST", path, tok_km_b, b);
    expect("a token scoped to B imports A's key", &r, 409, "key_used_by_other_app");
    CHECK(strstr(r.body, a_text) == NULL, "A is not named to a caller that cannot see it: %s",
          r.body);
    test_resp_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE action = 'key.import' AND outcome = "
             "'key_used_by_other_app' AND sdkappid = %u AND position('%s' in details) = 0",
             APP_B, a_text);
    CHECK(dbtest_scalar(c, sql) == 1, "audited, without A's id");

    /* an admin sees every app: told which one */
    request(&r, "POST", path, tok_admin, b);
    free(b);
    expect("admin imports A's key into B", &r, 409, "key_used_by_other_app");
    CHECK(strstr(test_resp_error_message(&r), a_text) != NULL, "an admin is told which app: %s",
          test_resp_error_message(&r));
    test_resp_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE action = 'key.import' AND outcome = "
             "'key_used_by_other_app' AND sdkappid = %u AND "
             "details::jsonb ->> 'other_sdkappid' = '%u'",
             APP_B, APP_A);
    CHECK(dbtest_scalar(c, sql) == 1, "audited with A's id for an admin");

    CHECK(dbtest_scalar(c, "SELECT count(*) FROM app_keys") == keys_before, "no key added");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE outcome = "
                           "'key_used_by_other_app'") == refusals + 2,
          "two refusals recorded");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM app_keys WHERE sdkappid = %u", APP_B);
    CHECK(dbtest_scalar(c, sql) == 0, "B has no key");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM app_keys WHERE sdkappid = %u AND version = 2 AND "
             "state = 'retired'",
             APP_A);
    CHECK(dbtest_scalar(c, sql) == 1, "A's version 2 unchanged");

    /* through a rotation as well */
    snprintf(path, sizeof path, "/v1/apps/%u/keys/rotate", APP_B);
    b = body_with("secret", S4, -1);
    request(&r, "POST", path, tok_km_b, b);
    free(b);
    expect("rotate B to A's active key", &r, 409, "key_used_by_other_app");
    test_resp_free(&r);

    /* scope: a token for B cannot touch A's keys */
    snprintf(path, sizeof path, "/v1/apps/%u/keys", APP_A);
    request(&r, "GET", path, tok_km_b, NULL);
    expect("B's token lists A's keys", &r, 403, "forbidden");
    test_resp_free(&r);
}

int main(void)
{
    struct dbtest t;
    struct store *st, *setup, *check;
    struct keyring *kr = NULL;
    struct api_server *server;
    pthread_t thread;
    char dir[] = "/tmp/usersigd-handlers-XXXXXX", keyfile[128], err[256];
    uint8_t *root = NULL;
    size_t root_len = 0;
    PGconn *c;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_HANDLERS_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "db_handlers_keys", true);
    st = dbtest_store(&t);
    setup = dbtest_store(&t);
    c = dbtest_connect(&t);

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(keyfile, sizeof keyfile, "%s/master.key", dir);
    if (keyring_master_create(keyfile, err, sizeof err) != KEYRING_OK ||
        keyring_master_load(keyfile, &kr, err, sizeof err) != KEYRING_OK ||
        keyring_root_create(kr, &root, &root_len) != KEYRING_OK ||
        store_keyring_insert(setup, root, root_len) != STORE_OK ||
        keyring_root_open(kr, root, root_len) != KEYRING_OK) {
        fprintf(stderr, "keyring setup failed: %s\n", err);
        return 1;
    }
    free(root);
    unlink(keyfile);
    rmdir(dir);
    make_token(setup, "admin", STORE_ROLE_ADMIN, 0, tok_admin);
    make_token(setup, "km for A", STORE_ROLE_KEY_MANAGER, APP_A, tok_km_a);
    make_token(setup, "km for B", STORE_ROLE_KEY_MANAGER, APP_B, tok_km_b);
    store_close(setup);

    struct service svc = {.st = st, .kr = kr, .migrations_dir = USERSIGD_MIGRATIONS_DIR};
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

    test_apps(c);
    test_keys(c);
    test_other_app(c);

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_free(server);
    event_base_free(base);

    /* Every event, refusals included, is on one chain that verifies. */
    struct audit_verify_result v;
    check = dbtest_store(&t);
    CHECK(audit_verify(check, keyring_audit_key(kr), &v) == AUDIT_OK && v.ok && v.checked > 20,
          "the audit chain verifies (%lld events, problem %s at %lld)", (long long)v.checked,
          audit_problem_name(v.problem), (long long)v.bad_seq);
    store_close(check);

    keyring_free(kr);
    store_close(st);
    PQfinish(c);
    dbtest_drop(&t);
    libevent_global_shutdown();
    return test_done("db_handlers_keys");
}
