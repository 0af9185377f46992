/*
 * The official vectors (tests/vectors/vectors.jsonl): every "sign" vector signed here at each
 * zlib level decodes to exactly the expected JSON, the official token verifies, and every
 * "verify" vector gives its verdict and Tencent code.
 */
#include "testlib.h"
#include "usersig.h"

#include <stdio.h>
#include <string.h>

static const int levels[] = {0, 1, 6, 9};

static void sign_vector(json_t *v, const char *name)
{
    const char *key_s = test_str(v, "key");
    const char *id = test_str(v, "identifier");
    uint32_t sdkappid = (uint32_t)test_int(v, "sdkappid");
    struct usersig_key *key = NULL;
    struct usersig_params p = {
        .identifier = id,
        .identifier_len = strlen(id),
        .expire = (uint32_t)test_int(v, "expire"),
        .time = test_int(v, "time"),
    };
    json_t *room_id = json_object_get(v, "room_id"), *room_str = json_object_get(v, "room_str");
    if (room_id != NULL) {
        p.room.kind = USERSIG_ROOM_NUMERIC;
        p.room.room_id = (uint32_t)json_integer_value(room_id);
    } else if (room_str != NULL) {
        p.room.kind = USERSIG_ROOM_STRING;
        p.room.room_str = json_string_value(room_str);
        p.room.room_str_len = strlen(p.room.room_str);
    }
    if (p.room.kind != USERSIG_ROOM_NONE)
        p.room.privilege_map = (uint32_t)test_int(v, "privilege_map");

    CHECK(usersig_key_new_hmac(key_s, strlen(key_s), &key) == USERSIG_OK, "%s: key", name);
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        struct usersig_signer *s = NULL;
        char token[USERSIG_TOKEN_BUF];
        size_t len = 0;
        CHECK(usersig_signer_new(key, sdkappid, levels[i], USERSIG_ID_PRINTABLE, &s) == USERSIG_OK,
              "%s: signer", name);
        enum usersig_rc rc = usersig_sign(s, &p, token, sizeof token, &len);
        CHECK(rc == USERSIG_OK, "%s level %d: sign failed: %s", name, levels[i],
              usersig_rc_name(rc));
        if (rc == USERSIG_OK) {
            CHECK(len == strlen(token), "%s: length", name);
            json_t *got = test_token_json(token);
            CHECK(got != NULL && json_equal(got, json_object_get(v, "expect_json")),
                  "%s level %d: decoded JSON differs from the official", name, levels[i]);
            json_decref(got);
            struct usersig_expect e = {
                .identifier = id, .identifier_len = strlen(id), .sdkappid = sdkappid};
            enum usersig_verdict vd = usersig_verify(token, len, &e, key, p.time, NULL);
            CHECK(vd == USERSIG_VALID, "%s level %d: own token verdict %s", name, levels[i],
                  usersig_verdict_name(vd));
        }
        usersig_signer_free(s);
    }
    /* The official token itself verifies at its issue time. */
    const char *official = test_str(v, "official_usersig");
    struct usersig_expect e = {
        .identifier = id, .identifier_len = strlen(id), .sdkappid = sdkappid};
    enum usersig_verdict vd = usersig_verify(official, strlen(official), &e, key, p.time, NULL);
    CHECK(vd == USERSIG_VALID, "%s: official token verdict %s", name, usersig_verdict_name(vd));
    usersig_key_free(key);
}

static void verify_vector(json_t *v, const char *name)
{
    struct usersig_key *key = NULL;
    const char *id = test_str(v, "identifier");
    const char *token = test_str(v, "usersig");
    const char *expect = test_str(v, "expect");
    json_t *pub = json_object_get(v, "public_key");
    enum usersig_rc rc;
    if (pub != NULL) {
        const char *pem = json_string_value(pub);
        rc = usersig_key_new_pem(pem, strlen(pem), &key);
    } else {
        const char *k = test_str(v, "key");
        rc = usersig_key_new_hmac(k, strlen(k), &key);
    }
    CHECK(rc == USERSIG_OK, "%s: key: %s", name, usersig_rc_name(rc));
    struct usersig_expect e = {
        .identifier = id,
        .identifier_len = strlen(id),
        .sdkappid = (uint32_t)test_int(v, "sdkappid"),
    };
    enum usersig_verdict vd =
        usersig_verify(token, strlen(token), &e, key, test_int(v, "now"), NULL);
    CHECK(strcmp(usersig_verdict_name(vd), expect) == 0, "%s: verdict %s, expected %s", name,
          usersig_verdict_name(vd), expect);
    CHECK(usersig_verdict_tencent_code(vd) == test_int(v, "tencent_code"),
          "%s: tencent code %d, expected %lld", name, usersig_verdict_tencent_code(vd),
          test_int(v, "tencent_code"));
    /* A v1 private key verifies too (it holds the public half). */
    json_t *priv = json_object_get(v, "private_key");
    if (priv != NULL) {
        struct usersig_key *pk = NULL;
        const char *pem = json_string_value(priv);
        CHECK(usersig_key_new_pem(pem, strlen(pem), &pk) == USERSIG_OK, "%s: private key", name);
        CHECK(usersig_verify(token, strlen(token), &e, pk, test_int(v, "now"), NULL) == vd,
              "%s: private key verdict differs", name);
        usersig_key_free(pk);
    }
    usersig_key_free(key);
}

static long n_sign, n_verify;

static void each(json_t *v, void *arg)
{
    (void)arg;
    const char *op = test_str(v, "op");
    const char *name = test_str(v, "name");
    if (strcmp(op, "sign") == 0) {
        n_sign++;
        sign_vector(v, name);
    } else if (strcmp(op, "verify") == 0) {
        n_verify++;
        verify_vector(v, name);
    } else {
        CHECK(0, "%s: unknown op %s", name, op);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_vectors VECTORS.jsonl\n");
        return 2;
    }
    long n = test_each_jsonl(argv[1], each, NULL);
    CHECK(n > 0 && n_sign > 0 && n_verify > 0, "no vectors read from %s", argv[1]);
    printf("vectors: %ld sign, %ld verify\n", n_sign, n_verify);
    return test_done("vectors");
}
