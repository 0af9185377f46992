/*
 * The usersigs handlers over real HTTP: the real route table and api_server on 127.0.0.1 (any free
 * port) in a thread, with a struct service over a fresh migrated database, a keyring from a
 * temporary master key, and apps, sealed keys and API tokens put in through the store directly.
 * Signing, verifying (versions, rotation, disabled keys, another app's key), refusals and audit.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "dbtest.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "routes.h"
#include "authn.h"
#include "service.h"
#include "usersig.h"

#define APP_A 1400000100u
#define APP_B 1400000200u
#define APP_C 1400000300u /* no key */
#define APP_S 1400000400u /* strict identifiers */
#define SECRET_A1 "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define SECRET_A2 "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"
#define SECRET_B1 "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
#define SECRET_S1 "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"

static struct event_base *base;
static int port;
static struct keyring *kr;
static struct store *st; /* the test's own connection; the server has another */
static char tok_admin[KEYRING_TOKEN_BUF], tok_signer_b[KEYRING_TOKEN_BUF];

/* ---- setup through the store ------------------------------------------------------------- */

static void add_app(uint32_t sdkappid, uint32_t default_expire, uint32_t max_expire,
                    enum store_id_policy policy)
{
    CHECK(dbtest_add_app(st, sdkappid, default_expire, max_expire, policy), "insert app %u",
          sdkappid);
}

/* Adds an HMAC key version (sealed as the server keeps it); returns its version. */
static uint32_t add_key(uint32_t sdkappid, const char *secret, enum store_key_state state)
{
    uint32_t version = dbtest_add_key(st, kr, sdkappid, secret, state);
    CHECK(version != 0, "add key to %u", sdkappid);
    return version;
}

static void add_token(const char *name, enum store_role role, const uint32_t *apps, size_t n_apps,
                      char out[KEYRING_TOKEN_BUF])
{
    CHECK(dbtest_add_token(st, name, role, apps, n_apps, 0, out) != 0, "token %s", name);
}

/* ---- HTTP client (testlib's) ------------------------------------------------------------ */

/* POST body (JSON text) to path with the bearer token; *out filled (test_resp_free() it). */
static void post(struct test_resp *out, const char *path, const char *token, const char *body)
{
    char headers[KEYRING_TOKEN_BUF + 96];
    snprintf(headers, sizeof headers,
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n", token);
    if (test_http_request(out, port, "POST", path, headers, body, (long)strlen(body)) != 0)
        CHECK(0, "POST %s: no HTTP response", path);
}

static void sign_path(char *buf, size_t cap, uint32_t sdkappid)
{
    snprintf(buf, cap, "/v1/apps/%u/usersigs", sdkappid);
}

static const char *str(const struct test_resp *r, const char *field)
{
    const char *s = json_string_value(json_object_get(r->json, field));
    return s ? s : "";
}

static long long num(const struct test_resp *r, const char *field)
{
    json_t *v = json_object_get(r->json, field);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Signs through the API; returns a new string (caller free()s) or NULL. */
static char *api_sign(uint32_t sdkappid, const char *body, uint32_t *version)
{
    char path[64];
    struct test_resp r;
    char *token = NULL;
    sign_path(path, sizeof path, sdkappid);
    post(&r, path, tok_admin, body);
    CHECK(r.status == 200, "sign %u %s: %d %s", sdkappid, body, r.status, test_resp_error_code(&r));
    if (r.status == 200) {
        token = strdup(str(&r, "usersig"));
        if (version != NULL)
            *version = (uint32_t)num(&r, "key_version");
    }
    test_resp_free(&r);
    return token;
}

/* POSTs /v1/usersigs/verify; the reply in *r (caller test_resp_free()s it). */
static void api_verify(struct test_resp *r, const char *token, const char *usersig,
                       uint32_t sdkappid, const char *identifier)
{
    json_t *b = json_pack("{s:s}", "usersig", usersig);
    if (sdkappid != 0)
        json_object_set_new(b, "sdkappid", json_integer(sdkappid));
    if (identifier != NULL)
        json_object_set_new(b, "identifier", json_string(identifier));
    char *text = json_dumps(b, JSON_COMPACT);
    post(r, "/v1/usersigs/verify", token, text);
    free(text);
    json_decref(b);
}

static void expect_verdict(const char *what, struct test_resp *r, const char *verdict, int tencent,
                           long long key_version)
{
    CHECK(r->status == 200, "%s: status %d (%s)", what, r->status, test_resp_error_code(r));
    CHECK(strcmp(str(r, "verdict"), verdict) == 0, "%s: verdict %s, want %s (%s)", what,
          str(r, "verdict"), verdict, str(r, "message"));
    CHECK(json_is_boolean(json_object_get(r->json, "valid")) &&
              json_boolean_value(json_object_get(r->json, "valid")) == (strcmp(verdict, "ok") == 0),
          "%s: valid", what);
    CHECK(num(r, "tencent_code") == tencent, "%s: tencent_code %lld, want %d", what,
          num(r, "tencent_code"), tencent);
    CHECK(num(r, "key_version") == key_version, "%s: key_version %lld, want %lld", what,
          num(r, "key_version"), key_version);
    CHECK(strlen(str(r, "message")) > 0, "%s: a message", what);
}

/* A token made by the codec directly with secret, claiming sdkappid. */
static void codec_sign(const char *secret, uint32_t sdkappid, const char *identifier,
                       int64_t time_s, uint32_t expire, char out[USERSIG_TOKEN_BUF])
{
    struct usersig_key *k = NULL;
    struct usersig_signer *s = NULL;
    struct usersig_params p = {identifier, strlen(identifier), expire, time_s, {0}};
    size_t len = 0;
    out[0] = '\0';
    CHECK(usersig_key_new_hmac(secret, strlen(secret), &k) == USERSIG_OK &&
              usersig_signer_new(k, sdkappid, USERSIG_DEFAULT_LEVEL, USERSIG_ID_PRINTABLE, &s) ==
                  USERSIG_OK &&
              usersig_sign(s, &p, out, USERSIG_TOKEN_BUF, &len) == USERSIG_OK,
          "codec sign");
    usersig_signer_free(s);
    usersig_key_free(k);
}

static enum usersig_verdict codec_verify(const char *token, const char *secret, uint32_t sdkappid,
                                         const char *identifier)
{
    struct usersig_key *k = NULL;
    struct usersig_expect e = {
        identifier, strlen(identifier), sdkappid, USERSIG_ROOM_NONE, 0, NULL, 0, 0};
    if (usersig_key_new_hmac(secret, strlen(secret), &k) != USERSIG_OK)
        return USERSIG_VERDICT_COUNT;
    enum usersig_verdict v = usersig_verify(token, strlen(token), &e, k, time(NULL), NULL);
    usersig_key_free(k);
    return v;
}

/* ---- the tests --------------------------------------------------------------------------- */

static void test_sign_and_verify(PGconn *c)
{
    char path[64];
    struct test_resp r;

    sign_path(path, sizeof path, APP_A);
    post(&r, path, tok_admin, "{\"identifier\":\"alice\"}");
    CHECK(r.status == 200, "sign: %d %s", r.status, test_resp_error_code(&r));
    CHECK(num(&r, "sdkappid") == APP_A && strcmp(str(&r, "identifier"), "alice") == 0 &&
              num(&r, "key_version") == 1 && num(&r, "expire") == 86400,
          "sign: fields");
    long long issued = num(&r, "issued_at"), now = (long long)time(NULL);
    CHECK(issued >= now - 5 && issued <= now + 5 && num(&r, "expire_at") == issued + 86400,
          "sign: Unix times %lld %lld (now %lld)", issued, num(&r, "expire_at"), now);
    char *token = strdup(str(&r, "usersig"));
    test_resp_free(&r);
    CHECK(codec_verify(token, SECRET_A1, APP_A, "alice") == USERSIG_VALID,
          "the codec verifies the issued token");

    api_verify(&r, tok_admin, token, 0, NULL);
    expect_verdict("verify own", &r, "ok", 0, 1);
    CHECK(num(&r, "sdkappid") == APP_A && strcmp(str(&r, "identifier"), "alice") == 0 &&
              num(&r, "expire") == 86400 && num(&r, "issued_at") == issued &&
              num(&r, "expire_at") == issued + 86400,
          "verify: decoded fields");
    test_resp_free(&r);

    api_verify(&r, tok_admin, token, APP_A, "alice");
    expect_verdict("verify with sdkappid and identifier", &r, "ok", 0, 1);
    test_resp_free(&r);
    api_verify(&r, tok_admin, token, APP_A, "bob");
    expect_verdict("identifier mismatch", &r, "identifier_mismatch", 70013, 1);
    test_resp_free(&r);

    /* the audit row: one per signature, with the details and never the token */
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND "
                           "outcome = 'ok' AND sdkappid = 1400000100 AND key_version = 1 AND "
                           "details LIKE '%\"identifier\":\"alice\"%' AND details LIKE "
                           "'%\"expire\":86400%'") == 1,
          "one audit row for the signature");
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log WHERE details LIKE '%%%.40s%%'",
             token);
    CHECK(dbtest_scalar(c, sql) == 0, "the token is not in the audit log");
    CHECK(dbtest_scalar(c, "SELECT sign_count FROM app_keys WHERE sdkappid = 1400000100 "
                           "AND version = 1") == 1,
          "the key's use is recorded");
    free(token);

    /* a PrivateMapKey */
    post(&r, path, tok_admin, "{\"identifier\":\"alice\",\"room_id\":1234,\"expire\":600}");
    CHECK(r.status == 200 && num(&r, "expire") == 600, "sign with a room: %d %s", r.status,
          test_resp_error_code(&r));
    if (r.status == 200) {
        struct usersig_decoded d;
        CHECK(usersig_decode(str(&r, "usersig"), strlen(str(&r, "usersig")), &d) == USERSIG_VALID &&
                  d.has_room && d.room.room_id == 1234 && d.room.privilege_map == 255,
              "the room and default privileges are in the token");
    }
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND "
                           "outcome = 'ok' AND details LIKE '%\"room_id\":1234%' AND details "
                           "LIKE '%\"privilege_map\":255%'") == 1,
          "the room is in the audit details");
}

static void test_sign_refusals(PGconn *c)
{
    static const struct {
        uint32_t app;
        const char *body;
        int status;
        const char *code;
        const char *in_message; /* NULL: not checked */
    } cases[] = {
        {APP_A, "{\"identifier\":\"alice\",\"expire\":86401}", 400, "bad_expire", "86400"},
        {APP_A, "{\"identifier\":\"alice\",\"expire\":0}", 400, "bad_expire", NULL},
        {APP_A, "{\"identifier\":\"\"}", 400, "bad_identifier", NULL},
        {APP_A, "{\"identifier\":\"123456789012345678901234567890123\"}", 400, "bad_identifier",
         NULL},
        {APP_S, "{\"identifier\":\"bad id\"}", 400, "bad_identifier", "strict"},
        {APP_A, "{\"identifier\":\"a\",\"room_id\":1,\"room_str\":\"r\"}", 400, "bad_room", NULL},
        {APP_A, "{\"identifier\":\"a\",\"room_id\":0}", 400, "bad_room", NULL},
        {APP_A, "{\"identifier\":\"a\",\"room_id\":4294967296}", 400, "bad_room", NULL},
        {APP_A, "{\"identifier\":\"a\",\"room_str\":\"\"}", 400, "bad_room", NULL},
        {APP_A, "{\"identifier\":\"a\",\"privilege_map\":3}", 400, "bad_privilege", "room"},
        {APP_A, "{\"identifier\":\"a\",\"room_id\":5,\"privilege_map\":256}", 400, "bad_privilege",
         NULL},
        {APP_A, "{\"identifier\":7}", 400, "invalid_field", NULL},
        {APP_A, "{\"identifier\":\"a\",\"extra\":1}", 400, "unknown_field", NULL},
        {APP_A, "{}", 400, "missing_field", NULL},
        {1400009999u, "{\"identifier\":\"a\"}", 404, "app_not_found", NULL},
        {APP_C, "{\"identifier\":\"a\"}", 409, "invalid_state", "import a key first"},
    };
    long long before = dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE outcome = 'ok'");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        struct test_resp r;
        sign_path(path, sizeof path, cases[i].app);
        post(&r, path, tok_admin, cases[i].body);
        const char *m =
            json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
        CHECK(r.status == cases[i].status && strcmp(test_resp_error_code(&r), cases[i].code) == 0,
              "refusal %zu (%s): %d %s, want %d %s", i, cases[i].body, r.status,
              test_resp_error_code(&r), cases[i].status, cases[i].code);
        CHECK(cases[i].in_message == NULL || (m != NULL && strstr(m, cases[i].in_message)),
              "refusal %zu: message %s lacks %s", i, m ? m : "(none)", cases[i].in_message);
        CHECK(json_object_get(r.json, "usersig") == NULL, "refusal %zu: no token", i);
        test_resp_free(&r);
    }
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE outcome = 'ok'") == before,
          "no signature recorded by a refusal");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND "
                           "outcome = 'invalid_state' AND sdkappid = 1400000300") == 1,
          "the refusal for want of a key is audited");

    /* scope: a signer of app B only */
    char path[64];
    struct test_resp r;
    sign_path(path, sizeof path, APP_A);
    post(&r, path, tok_signer_b, "{\"identifier\":\"alice\"}");
    CHECK(r.status == 403, "signer of B signing for A: %d", r.status);
    test_resp_free(&r);
}

static void test_verify_mismatches(PGconn *c)
{
    char forged[USERSIG_TOKEN_BUF], tok[USERSIG_TOKEN_BUF];
    struct test_resp r;

    /* a genuine token of B, checked as A's */
    char *token_b = api_sign(APP_B, "{\"identifier\":\"bob\"}", NULL);
    if (token_b == NULL)
        return;
    long long events = dbtest_scalar(c, "SELECT count(*) FROM audit_log");
    api_verify(&r, tok_admin, token_b, APP_A, NULL);
    expect_verdict("B's token as A's", &r, "sdkappid_mismatch", 70014, -1);
    test_resp_free(&r);
    api_verify(&r, tok_signer_b, token_b, 0, NULL);
    expect_verdict("B's token by B's signer", &r, "ok", 0, 1);
    test_resp_free(&r);

    /* claims A, signed with B's key: the usual 70009 */
    codec_sign(SECRET_B1, APP_A, "mallory", time(NULL), 3600, forged);
    api_verify(&r, tok_admin, forged, 0, NULL);
    expect_verdict("A's token signed with B's key", &r, "signature_mismatch", 70009, -1);
    json_t *by = json_object_get(r.json, "signed_by");
    CHECK(json_integer_value(json_object_get(by, "sdkappid")) == APP_B &&
              json_integer_value(json_object_get(by, "key_version")) == 1,
          "signed_by names B's key version 1");
    CHECK(strstr(str(&r, "message"), "1400000200") != NULL, "the message names B: %s",
          str(&r, "message"));
    test_resp_free(&r);

    /* a signer scoped to B may not ask about A's token */
    api_verify(&r, tok_signer_b, forged, 0, NULL);
    CHECK(r.status == 403, "B's signer verifying A's token: %d", r.status);
    test_resp_free(&r);
    api_verify(&r, tok_signer_b, token_b, APP_A, NULL);
    CHECK(r.status == 403, "B's signer naming app A: %d", r.status);
    test_resp_free(&r);

    /* a key nobody here has */
    codec_sign("zzzzzzzz", APP_A, "mallory", time(NULL), 3600, tok);
    api_verify(&r, tok_admin, tok, 0, NULL);
    expect_verdict("unknown key", &r, "signature_mismatch", 70009, -1);
    CHECK(json_object_get(r.json, "signed_by") == NULL, "no signed_by");
    test_resp_free(&r);

    /* no such app, an app without keys, garbage */
    codec_sign(SECRET_A1, 1400009999u, "x", time(NULL), 3600, tok);
    api_verify(&r, tok_admin, tok, 0, NULL);
    CHECK(r.status == 404 && strcmp(test_resp_error_code(&r), "app_not_found") == 0,
          "the token's app unknown: %d %s", r.status, test_resp_error_code(&r));
    test_resp_free(&r);
    api_verify(&r, tok_admin, token_b, 1400009999u, NULL);
    CHECK(r.status == 404 && strcmp(test_resp_error_code(&r), "app_not_found") == 0,
          "the given app unknown: %d %s", r.status, test_resp_error_code(&r));
    test_resp_free(&r);
    api_verify(&r, tok_signer_b, token_b, 1400009999u, NULL);
    CHECK(r.status == 403, "an unknown app outside the scope: %d", r.status);
    test_resp_free(&r);
    codec_sign(SECRET_A1, APP_C, "x", time(NULL), 3600, tok);
    api_verify(&r, tok_admin, tok, 0, NULL);
    expect_verdict("app without a key", &r, "no_key", 70016, -1);
    test_resp_free(&r);
    api_verify(&r, tok_admin, "not a token", 0, NULL);
    expect_verdict("malformed", &r, "malformed", 70003, -1);
    CHECK(json_is_null(json_object_get(r.json, "sdkappid")), "malformed: sdkappid null");
    test_resp_free(&r);
    api_verify(&r, tok_admin, "", 0, NULL);
    expect_verdict("empty", &r, "empty", 70002, -1);
    test_resp_free(&r);

    /* expired, still naming the version that signed it */
    codec_sign(SECRET_A1, APP_A, "old", time(NULL) - 7200, 3600, tok);
    api_verify(&r, tok_admin, tok, 0, NULL);
    expect_verdict("expired", &r, "expired", 70001, 1);
    test_resp_free(&r);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log") == events,
          "verifying writes nothing to the audit log");
    free(token_b);
}

/* A rotation done in the store (as another process would): the very next signature uses the
 * new version; tokens of the retired one stay valid; a disabled one stops verifying. */
static void test_rotation(void)
{
    struct test_resp r;
    uint32_t v_before = 0, v_after = 0;
    char *old = api_sign(APP_A, "{\"identifier\":\"carol\"}", &v_before);
    CHECK(v_before == 1, "signed with version 1 before the rotation");

    uint32_t v2 = add_key(APP_A, SECRET_A2, STORE_KEY_PENDING);
    char pending[USERSIG_TOKEN_BUF];
    codec_sign(SECRET_A2, APP_A, "dave", time(NULL), 3600, pending);
    api_verify(&r, tok_admin, pending, 0, NULL);
    expect_verdict("a pending version's token", &r, "key_pending", 70009, v2);
    test_resp_free(&r);

    CHECK(store_begin(st) == STORE_OK &&
              store_key_set_state(st, APP_A, 1, STORE_KEY_RETIRED) == STORE_OK &&
              store_key_set_state(st, APP_A, v2, STORE_KEY_ACTIVE) == STORE_OK &&
              store_commit(st) == STORE_OK,
          "rotate in the store");
    store_rollback(st);

    char *fresh = api_sign(APP_A, "{\"identifier\":\"carol\"}", &v_after);
    CHECK(v_after == v2, "the next signature uses version %u (got %u)", v2, v_after);
    if (fresh != NULL)
        CHECK(codec_verify(fresh, SECRET_A2, APP_A, "carol") == USERSIG_VALID,
              "signed with the new secret");
    if (old != NULL) {
        api_verify(&r, tok_admin, old, APP_A, "carol");
        expect_verdict("a retired version's token", &r, "ok", 0, 1);
        test_resp_free(&r);
    }
    if (fresh != NULL) {
        api_verify(&r, tok_admin, fresh, 0, NULL);
        expect_verdict("the new version's token", &r, "ok", 0, v2);
        test_resp_free(&r);
    }

    CHECK(store_key_set_state(st, APP_A, 1, STORE_KEY_DISABLED) == STORE_OK, "disable v1");
    if (old != NULL) {
        api_verify(&r, tok_admin, old, 0, NULL);
        expect_verdict("a disabled version's token", &r, "key_disabled", 70009, 1);
        test_resp_free(&r);
    }
    free(old);
    free(fresh);
}

int main(void)
{
    struct dbtest t;
    struct store *server_st = NULL;
    char dir[] = "/tmp/usersigs_test_XXXXXX", path[128], err[256];
    uint8_t *sealed_root = NULL;
    size_t root_len = 0;
    pthread_t thread;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "handlers_usersigs", true);
    st = dbtest_store(&t);
    server_st = dbtest_store(&t);
    PGconn *c = dbtest_connect(&t);

    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return test_done("db_handlers_usersigs");
    }
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (keyring_master_create(path, err, sizeof err) != KEYRING_OK ||
        keyring_master_load(path, &kr, err, sizeof err) != KEYRING_OK ||
        keyring_root_create(kr, &sealed_root, &root_len) != KEYRING_OK ||
        store_keyring_insert(st, sealed_root, root_len) != STORE_OK ||
        keyring_root_open(kr, sealed_root, root_len) != KEYRING_OK) {
        CHECK(0, "keyring: %s", err);
        return test_done("db_handlers_usersigs");
    }
    free(sealed_root);
    unlink(path);
    rmdir(dir);

    add_app(APP_A, 86400, 86400, STORE_ID_PRINTABLE);
    add_app(APP_B, 3600, 86400, STORE_ID_PRINTABLE);
    add_app(APP_C, 3600, 86400, STORE_ID_PRINTABLE);
    add_app(APP_S, 3600, 86400, STORE_ID_STRICT);
    CHECK(add_key(APP_A, SECRET_A1, STORE_KEY_ACTIVE) == 1, "A's key 1");
    CHECK(add_key(APP_B, SECRET_B1, STORE_KEY_ACTIVE) == 1, "B's key 1");
    CHECK(add_key(APP_S, SECRET_S1, STORE_KEY_ACTIVE) == 1, "S's key 1");
    add_token("admin", STORE_ROLE_ADMIN, NULL, 0, tok_admin);
    static const uint32_t only_b[] = {APP_B};
    add_token("signer-b", STORE_ROLE_SIGNER, only_b, 1, tok_signer_b);

    struct service svc = {.cfg = NULL, .st = server_st, .kr = kr, .migrations_dir = NULL};
    struct api_server_config cfg = {
        .listen = "127.0.0.1:0",
        .max_body = 65536,
        .max_body_large = 1 << 20,
        .request_timeout_ms = 5000,
        .routes = api_routes,
        .n_routes = api_routes_count,
        .authenticate = authn_token,
        .ctx = &svc,
    };
    struct api_server *server = NULL;
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL ||
        (server = api_server_new(base, &cfg, err, sizeof err)) == NULL ||
        api_server_start(server, err, sizeof err) != 0) {
        CHECK(0, "server: %s", err);
        return test_done("db_handlers_usersigs");
    }
    port = api_server_port(server);
    pthread_create(&thread, NULL, test_loop_thread, base);

    test_sign_and_verify(c);
    test_sign_refusals(c);
    test_verify_mismatches(c);
    test_rotation();

    event_base_loopbreak(base);
    pthread_join(thread, NULL);
    api_server_free(server);
    event_base_free(base);
    store_close(server_st);
    store_close(st);
    keyring_free(kr);
    PQfinish(c);
    dbtest_drop(&t);
    return test_done("db_handlers_usersigs");
}
