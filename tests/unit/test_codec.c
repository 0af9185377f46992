/*
 * Codec unit tests beyond the vectors: input rules at their bounds, JSON escaping, PrivateMapKey
 * round trips and room checks, legacy v1 keys (secp256k1 and P-256, SEC1 and PKCS#8, public and
 * private), randomized v2 round trips at every level, and the decoder's bounds.
 */
#include "testlib.h"
#include "usersig.h"
#include "usersig_int.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char SECRET[] = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
static const uint32_t APP = 1400000000;

static struct usersig_key *hmac_key(const char *s)
{
    struct usersig_key *k = NULL;
    if (usersig_key_new_hmac(s, strlen(s), &k) != USERSIG_OK)
        abort();
    return k;
}

static struct usersig_signer *signer(struct usersig_key *k, uint32_t app, int level,
                                     enum usersig_id_policy pol)
{
    struct usersig_signer *s = NULL;
    if (usersig_signer_new(k, app, level, pol, &s) != USERSIG_OK)
        abort();
    return s;
}

static enum usersig_rc sign_id(struct usersig_signer *s, const char *id, size_t id_len,
                               uint32_t expire, int64_t t, char *out)
{
    size_t n;
    struct usersig_params p = {
        .identifier = id, .identifier_len = id_len, .expire = expire, .time = t};
    return usersig_sign(s, &p, out, USERSIG_TOKEN_BUF, &n);
}

static void test_input_rules(void)
{
    struct usersig_key *k = hmac_key(SECRET);
    struct usersig_signer *s = signer(k, APP, 6, USERSIG_ID_PRINTABLE);
    struct usersig_signer *strict = signer(k, APP, 6, USERSIG_ID_STRICT);
    char tok[USERSIG_TOKEN_BUF];
    char id32[33], id33[34];
    memset(id32, 'a', 32);
    id32[32] = '\0';
    memset(id33, 'a', 33);
    id33[33] = '\0';

    CHECK(sign_id(s, "", 0, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "empty identifier");
    CHECK(sign_id(s, id32, 32, 100, 1, tok) == USERSIG_OK, "32-byte identifier");
    CHECK(sign_id(s, id33, 33, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "33-byte identifier");
    CHECK(sign_id(s, "a\tb", 3, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "tab");
    CHECK(sign_id(s, "a\x7f", 2, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "DEL");
    CHECK(sign_id(s, "\xc3\xa9", 2, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "UTF-8");
    CHECK(sign_id(s, "a\0b", 3, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "NUL inside");
    CHECK(sign_id(s, " ~", 2, 100, 1, tok) == USERSIG_OK, "printable edges");
    CHECK(sign_id(strict, "a.b", 3, 100, 1, tok) == USERSIG_BAD_IDENTIFIER, "strict dot");
    CHECK(sign_id(strict, "A-b_9", 5, 100, 1, tok) == USERSIG_OK, "strict ok");
    CHECK(sign_id(s, "u", 1, 0, 1, tok) == USERSIG_BAD_EXPIRE, "expire 0");
    CHECK(sign_id(s, "u", 1, USERSIG_MAX_EXPIRE, 1, tok) == USERSIG_OK, "expire max");
    CHECK(sign_id(s, "u", 1, USERSIG_MAX_EXPIRE + 1, 1, tok) == USERSIG_BAD_EXPIRE, "expire max+1");
    CHECK(sign_id(s, "u", 1, 100, -1, tok) == USERSIG_BAD_TIME, "negative time");
    CHECK(sign_id(s, "u", 1, 100, (int64_t)UINT32_MAX + 1, tok) == USERSIG_BAD_TIME, "time > u32");

    struct usersig_signer *bad = NULL;
    CHECK(usersig_signer_new(k, 0, 6, USERSIG_ID_PRINTABLE, &bad) == USERSIG_BAD_SDKAPPID,
          "sdkappid 0");
    CHECK(usersig_signer_new(k, APP, 10, USERSIG_ID_PRINTABLE, &bad) == USERSIG_BAD_LEVEL,
          "level 10");
    CHECK(usersig_signer_new(k, APP, -1, USERSIG_ID_PRINTABLE, &bad) == USERSIG_BAD_LEVEL,
          "level -1");
    CHECK(bad == NULL, "no signer on failure");
    struct usersig_key *k2 = NULL;
    CHECK(usersig_key_new_hmac("", 0, &k2) == USERSIG_BAD_KEY && k2 == NULL, "empty secret");

    /* Rooms and privileges. */
    size_t n;
    struct usersig_params p = {.identifier = "u", .identifier_len = 1, .expire = 100, .time = 1};
    p.room.kind = USERSIG_ROOM_NUMERIC;
    p.room.room_id = 0;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_BAD_ROOM, "room id 0");
    p.room.room_id = 7;
    p.room.privilege_map = 256;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_BAD_PRIVILEGE, "privilege 256");
    p.room.privilege_map = 255;
    p.time = (int64_t)UINT32_MAX - 100;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_OK, "expire_at = 2^32-1");
    p.time = (int64_t)UINT32_MAX - 99;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_BAD_TIME, "expire_at past u32");
    p.time = 1;
    char room65[66];
    memset(room65, 'r', 65);
    p.room.kind = USERSIG_ROOM_STRING;
    p.room.room_str = room65;
    p.room.room_str_len = 65;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_BAD_ROOM, "room str 65");
    p.room.room_str_len = 64;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_OK, "room str 64");
    p.room.room_str_len = 0;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_BAD_ROOM, "room str empty");

    /* Every name and message is present. */
    for (int rc = USERSIG_OK; rc <= USERSIG_CRYPTO_FAILED; rc++)
        CHECK(strcmp(usersig_rc_name(rc), "unknown") != 0 && strlen(usersig_rc_message(rc)) > 5,
              "rc %d text", rc);
    for (int v = 0; v < USERSIG_VERDICT_COUNT; v++)
        CHECK(strcmp(usersig_verdict_name(v), "unknown") != 0 &&
                  strlen(usersig_verdict_message(v)) > 10,
              "verdict %d text", v);

    usersig_signer_free(s);
    usersig_signer_free(strict);
    usersig_key_free(k);
}

/* Identifiers with characters JSON must escape come back byte for byte. */
static void test_escaping(void)
{
    const char *ids[] = {"a\"b", "back\\slash", "sl/ash", "\"\\\"\\", " sp ace ", "{}[],:"};
    struct usersig_key *k = hmac_key(SECRET);
    struct usersig_signer *s = signer(k, APP, 6, USERSIG_ID_PRINTABLE);
    struct usersig_decoded d;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char tok[USERSIG_TOKEN_BUF];
        CHECK(sign_id(s, ids[i], strlen(ids[i]), 600, 1000, tok) == USERSIG_OK, "sign %s", ids[i]);
        json_t *j = test_token_json(tok);
        json_t *idv = json_object_get(j, "TLS.identifier");
        CHECK(json_is_string(idv) && strcmp(json_string_value(idv), ids[i]) == 0,
              "escaped identifier %s decodes by jansson", ids[i]);
        json_decref(j);
        struct usersig_expect e = {
            .identifier = ids[i], .identifier_len = strlen(ids[i]), .sdkappid = APP};
        CHECK(usersig_verify(tok, strlen(tok), &e, k, 1000, &d) == USERSIG_VALID, "verify %s",
              ids[i]);
    }
    usersig_signer_free(s);
    usersig_key_free(k);
}

static void test_privatemapkey(void)
{
    struct usersig_key *k = hmac_key(SECRET);
    struct usersig_signer *s = signer(k, APP, 1, USERSIG_ID_PRINTABLE);
    struct usersig_decoded d;
    char tok[USERSIG_TOKEN_BUF];
    size_t n;
    struct usersig_params p = {
        .identifier = "alice", .identifier_len = 5, .expire = 3600, .time = 1700000000};
    p.room.kind = USERSIG_ROOM_NUMERIC;
    p.room.room_id = 4242;
    p.room.privilege_map = 2 | 4 | 8;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_OK, "sign pmk");
    CHECK(usersig_decode(tok, n, &d) == USERSIG_VALID && d.has_room, "decode pmk");
    CHECK(d.room.version == 0 && d.room.room_id == 4242 && d.room.sdkappid == APP &&
              d.room.expire_at == 1700003600u && d.room.privilege_map == 14 &&
              strcmp(d.room.account, "alice") == 0,
          "pmk fields");
    struct usersig_expect e = {.identifier = "alice",
                               .identifier_len = 5,
                               .sdkappid = APP,
                               .room_kind = USERSIG_ROOM_NUMERIC,
                               .room_id = 4242,
                               .privileges = 2 | 8};
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_VALID, "pmk ok");
    e.room_id = 4243;
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_ROOM_MISMATCH, "other room");
    e.room_id = 4242;
    e.privileges = 16;
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_PRIVILEGE_MISSING, "missing bit");
    e.room_kind = USERSIG_ROOM_STRING;
    e.room_str = "4242";
    e.room_str_len = 4;
    e.privileges = 0;
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_ROOM_MISMATCH, "numeric vs string");

    p.room.kind = USERSIG_ROOM_STRING;
    p.room.room_str = "lobby-1";
    p.room.room_str_len = 7;
    CHECK(usersig_sign(s, &p, tok, sizeof tok, &n) == USERSIG_OK, "sign str pmk");
    CHECK(usersig_decode(tok, n, &d) == USERSIG_VALID && d.has_room && d.room.version == 1 &&
              strcmp(d.room.room_str, "lobby-1") == 0 && d.room.room_id == 0,
          "str pmk fields");
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_ROOM_MISMATCH, "other str room");
    e.room_str = "lobby-1";
    e.room_str_len = 7;
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_VALID, "str room ok");

    /* A plain UserSig carries no room. */
    CHECK(sign_id(s, "alice", 5, 3600, 1700000000, tok) == USERSIG_OK, "plain");
    CHECK(usersig_decode(tok, strlen(tok), &d) == USERSIG_VALID && !d.has_room, "no room");
    CHECK(usersig_check(&d, &e, k, 1700000001) == USERSIG_ROOM_MISMATCH, "plain has no room");
    usersig_signer_free(s);
    usersig_key_free(k);
}

static char *pem_of(EVP_PKEY *pk, int private_pkcs8, int public)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    if (public)
        PEM_write_bio_PUBKEY(b, pk);
    else if (private_pkcs8)
        PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0, NULL, NULL);
    long n = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static void test_v1_curve(const char *curve, int expect_ok)
{
    EVP_PKEY *pk = EVP_EC_gen(curve);
    CHECK(pk != NULL, "generate %s", curve);
    if (pk == NULL)
        return;
    for (int form = 0; form < 2; form++) {
        char *priv = pem_of(pk, form, 0), *pub = pem_of(pk, 0, 1);
        struct usersig_key *kpriv = NULL, *kpub = NULL;
        enum usersig_rc rc = usersig_key_new_pem(priv, strlen(priv), &kpriv);
        CHECK((rc == USERSIG_OK) == expect_ok, "%s form %d private: %s", curve, form,
              usersig_rc_name(rc));
        rc = usersig_key_new_pem(pub, strlen(pub), &kpub);
        CHECK((rc == USERSIG_OK) == expect_ok, "%s public: %s", curve, usersig_rc_name(rc));
        if (expect_ok && kpriv != NULL && kpub != NULL) {
            CHECK(usersig_key_kind(kpriv) == USERSIG_KEY_ECDSA && usersig_key_is_private(kpriv) &&
                      !usersig_key_is_private(kpub),
                  "%s kinds", curve);
            struct usersig_signer *s = NULL, *spub = NULL;
            CHECK(usersig_signer_new(kpub, 1234, 6, USERSIG_ID_PRINTABLE, &spub) ==
                      USERSIG_KEY_CANNOT_SIGN,
                  "public key cannot sign");
            s = signer(kpriv, 1234, form == 0 ? 6 : 0, USERSIG_ID_PRINTABLE);
            char tok[USERSIG_TOKEN_BUF];
            CHECK(sign_id(s, "12345", 5, 180, 1521710196, tok) == USERSIG_OK, "%s v1 sign", curve);
            struct usersig_expect e = {
                .identifier = "12345", .identifier_len = 5, .sdkappid = 1234};
            struct usersig_decoded d;
            CHECK(usersig_verify(tok, strlen(tok), &e, kpub, 1521710200, &d) == USERSIG_VALID,
                  "%s v1 verify with public", curve);
            CHECK(d.version == 1 && d.expire == 180 && d.time == 1521710196, "%s v1 fields", curve);
            CHECK(usersig_verify(tok, strlen(tok), &e, kpriv, 1521710200, NULL) == USERSIG_VALID,
                  "%s v1 verify with private", curve);
            CHECK(usersig_verify(tok, strlen(tok), &e, kpub, 1521710377, NULL) == USERSIG_EXPIRED,
                  "%s v1 expired", curve);
            struct usersig_key *h = hmac_key(SECRET);
            CHECK(usersig_verify(tok, strlen(tok), &e, h, 1521710200, NULL) ==
                      USERSIG_KIND_MISMATCH,
                  "%s v1 token with HMAC key", curve);
            usersig_key_free(h);
            /* Another EC key of the same curve does not verify it. */
            EVP_PKEY *other = EVP_EC_gen(curve);
            char *opub = pem_of(other, 0, 1);
            struct usersig_key *ko = NULL;
            CHECK(usersig_key_new_pem(opub, strlen(opub), &ko) == USERSIG_OK, "other key");
            CHECK(usersig_verify(tok, strlen(tok), &e, ko, 1521710200, NULL) ==
                      USERSIG_SIGNATURE_MISMATCH,
                  "%s v1 other key", curve);
            usersig_key_free(ko);
            free(opub);
            EVP_PKEY_free(other);
            usersig_signer_free(s);
        }
        usersig_key_free(kpriv);
        usersig_key_free(kpub);
        free(priv);
        free(pub);
    }
    EVP_PKEY_free(pk);
}

static void test_v1_keys(void)
{
    test_v1_curve("secp256k1", 1);
    test_v1_curve("prime256v1", 1);
    test_v1_curve("secp384r1", 0);
    struct usersig_key *k = NULL;
    CHECK(usersig_key_new_pem("not a pem", 9, &k) == USERSIG_BAD_KEY && k == NULL, "junk pem");
    /* An encrypted private key is refused without asking for a password. */
    EVP_PKEY *ek = EVP_EC_gen("prime256v1");
    BIO *eb = BIO_new(BIO_s_mem());
    char *edata;
    PEM_write_bio_PrivateKey(eb, ek, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"pass");
    long en = BIO_get_mem_data(eb, &edata);
    CHECK(en > 0 && usersig_key_new_pem(edata, (size_t)en, &k) == USERSIG_BAD_KEY && k == NULL,
          "encrypted pem refused");
    BIO_free(eb);
    EVP_PKEY_free(ek);
    /* A v2 token checked with an EC key is a kind mismatch. */
    EVP_PKEY *pk = EVP_EC_gen("prime256v1");
    char *pub = pem_of(pk, 0, 1);
    CHECK(usersig_key_new_pem(pub, strlen(pub), &k) == USERSIG_OK, "p256 pub");
    struct usersig_key *h = hmac_key(SECRET);
    struct usersig_signer *s = signer(h, APP, 6, USERSIG_ID_PRINTABLE);
    char tok[USERSIG_TOKEN_BUF];
    CHECK(sign_id(s, "u", 1, 100, 10, tok) == USERSIG_OK, "v2 sign");
    CHECK(usersig_verify(tok, strlen(tok), NULL, k, 10, NULL) == USERSIG_KIND_MISMATCH,
          "v2 with EC key");
    usersig_signer_free(s);
    usersig_key_free(h);
    usersig_key_free(k);
    free(pub);
    EVP_PKEY_free(pk);
}

/* Randomized round trips: random identifiers, apps, expiries and levels; the token decodes by
 * jansson to the inputs, verifies, and fails with the right verdict when an expectation differs. */
static void test_random_round_trips(void)
{
    srand(12345);
    for (int i = 0; i < 3000; i++) {
        char secret[65], id[33];
        for (int j = 0; j < 64; j++)
            secret[j] = "0123456789abcdef"[rand() % 16];
        secret[64] = '\0';
        size_t idn = 1 + (size_t)rand() % 32;
        for (size_t j = 0; j < idn; j++)
            id[j] = (char)(0x20 + rand() % 95);
        id[idn] = '\0';
        uint32_t app = 1 + (uint32_t)rand() * 2u;
        uint32_t expire = 1 + (uint32_t)rand() % USERSIG_MAX_EXPIRE;
        int64_t t = rand() % 2000000000;
        int level = rand() % 10;
        struct usersig_key *k = hmac_key(secret);
        struct usersig_signer *s = signer(k, app, level, USERSIG_ID_PRINTABLE);
        char tok[USERSIG_TOKEN_BUF];
        CHECK(sign_id(s, id, idn, expire, t, tok) == USERSIG_OK, "round %d sign", i);
        json_t *j = test_token_json(tok);
        CHECK(j != NULL &&
                  strcmp(json_string_value(json_object_get(j, "TLS.identifier")), id) == 0 &&
                  json_integer_value(json_object_get(j, "TLS.sdkappid")) == app &&
                  json_integer_value(json_object_get(j, "TLS.expire")) == expire &&
                  json_integer_value(json_object_get(j, "TLS.time")) == t,
              "round %d json", i);
        json_decref(j);
        struct usersig_expect e = {.identifier = id, .identifier_len = idn, .sdkappid = app};
        CHECK(usersig_verify(tok, strlen(tok), &e, k, t + expire, NULL) == USERSIG_VALID,
              "round %d valid at the last second", i);
        CHECK(usersig_verify(tok, strlen(tok), &e, k, t + expire + 1, NULL) == USERSIG_EXPIRED,
              "round %d expired", i);
        e.sdkappid = app + 1;
        CHECK(usersig_verify(tok, strlen(tok), &e, k, t, NULL) == USERSIG_SDKAPPID_MISMATCH,
              "round %d sdkappid", i);
        e.sdkappid = app;
        secret[0] = secret[0] == 'a' ? 'b' : 'a';
        struct usersig_key *k2 = hmac_key(secret);
        CHECK(usersig_verify(tok, strlen(tok), &e, k2, t, NULL) == USERSIG_SIGNATURE_MISMATCH,
              "round %d other key", i);
        usersig_key_free(k2);
        usersig_signer_free(s);
        usersig_key_free(k);
    }
}

/* Hand-made documents: what the decoder accepts and refuses. */
static void check_doc(const char *doc, enum usersig_verdict expect, const char *what)
{
    uint8_t z[8192];
    uLongf zn = sizeof z;
    char b64[12000];
    if (compress2(z, &zn, (const Bytef *)doc, strlen(doc), 6) != Z_OK)
        abort();
    size_t n = usersig_b64_encode(z, zn, b64);
    for (size_t i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '*' : b64[i] == '/' ? '-' : b64[i] == '=' ? '_' : b64[i];
    struct usersig_decoded d;
    enum usersig_verdict v = usersig_decode(b64, n, &d);
    CHECK(v == expect, "%s: verdict %s, expected %s", what, usersig_verdict_name(v),
          usersig_verdict_name(expect));
}

static void test_decoder_bounds(void)
{
    const char *sig = "\"TLS.sig\":\"SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc=\"";
    char doc[8192];
#define DOC(fmt) (snprintf(doc, sizeof doc, fmt, sig), doc)
    check_doc(DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"x\",\"TLS.sdkappid\":1,"
                  "\"TLS.time\":1,\"TLS.expire\":1,%s}"),
              USERSIG_VALID, "minimal");
    check_doc(DOC("{\"TLS.ver\":\"3.0\",\"TLS.identifier\":\"x\",\"TLS.sdkappid\":1,"
                  "\"TLS.time\":1,\"TLS.expire\":1,%s}"),
              USERSIG_UNSUPPORTED_VERSION, "ver 3.0");
    check_doc(DOC("{\"TLS.ver\":2.0,\"TLS.identifier\":\"x\",\"TLS.sdkappid\":1,"
                  "\"TLS.time\":1,\"TLS.expire\":1,%s}"),
              USERSIG_MALFORMED, "numeric ver");
    check_doc(DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"x\",\"TLS.sdkappid\":1.5,"
                  "\"TLS.time\":1,\"TLS.expire\":1,%s}"),
              USERSIG_MALFORMED, "fractional sdkappid");
    check_doc(DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"x\",\"TLS.sdkappid\":4294967296,"
                  "\"TLS.time\":1,\"TLS.expire\":1,%s}"),
              USERSIG_MALFORMED, "sdkappid > u32");
    check_doc(DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"x\",\"TLS.sdkappid\":1,"
                  "\"TLS.time\":-1,\"TLS.expire\":1,%s}"),
              USERSIG_MALFORMED, "negative time");
    check_doc(DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"x\",\"TLS.identifier\":\"y\","
                  "\"TLS.sdkappid\":1,\"TLS.time\":1,\"TLS.expire\":1,%s}"),
              USERSIG_MALFORMED, "duplicate field");
    check_doc(DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"x\",\"TLS.sdkappid\":1,"
                  "\"TLS.time\":1,\"TLS.expire\":1,%s} x"),
              USERSIG_MALFORMED, "trailing garbage");
    check_doc(
        DOC("{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"\\u0078\",\"extra\":{\"a\":[1,2,"
            "{\"b\":null}],\"c\":true},\"TLS.sdkappid\":1,\"TLS.time\":1,\"TLS.expire\":1,%s}"),
        USERSIG_VALID, "unknown nested field and \\u escape");
    check_doc(DOC("[%s]"), USERSIG_MALFORMED, "array document");
    /* Nesting past the bound. */
    char deep[600];
    size_t o = 0;
    o += (size_t)sprintf(deep + o, "{\"a\":");
    for (int i = 0; i < 40; i++)
        deep[o++] = '[';
    for (int i = 0; i < 40; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = '\0';
    check_doc(deep, USERSIG_MALFORMED, "deep nesting");
    /* A document that inflates past the bound: a zip bomb in miniature. */
    char *big = malloc(200000);
    memset(big, ' ', 199999);
    big[0] = '{';
    big[199998] = '}';
    big[199999] = '\0';
    check_doc(big, USERSIG_MALFORMED, "inflates past the bound");
    free(big);
    /* Oversized input. */
    char *huge = malloc(USERSIG_MAX_TOKEN_INPUT + 10);
    memset(huge, 'A', USERSIG_MAX_TOKEN_INPUT + 9);
    struct usersig_decoded d;
    CHECK(usersig_decode(huge, USERSIG_MAX_TOKEN_INPUT + 9, &d) == USERSIG_MALFORMED, "huge");
    CHECK(usersig_decode("  \n\t", 4, &d) == USERSIG_EMPTY, "whitespace only");
    CHECK(usersig_decode(NULL, 0, &d) == USERSIG_EMPTY, "NULL");
    free(huge);
#undef DOC
}

static void test_base64(void)
{
    uint8_t buf[16];
    char out[32];
    CHECK(usersig_b64_encode((const uint8_t *)"foob", 4, out) == 8 && strcmp(out, "Zm9vYg==") == 0,
          "encode foob");
    CHECK(usersig_b64_decode("Zm9vYg==", 8, buf, sizeof buf) == 4 && memcmp(buf, "foob", 4) == 0,
          "decode foob");
    CHECK(usersig_b64_decode("Zm9vYg", 6, buf, sizeof buf) == 4, "unpadded");
    CHECK(usersig_b64_decode("Zm9vYh==", 8, buf, sizeof buf) == -1, "non-canonical bits");
    CHECK(usersig_b64_decode("Zm9v!g==", 8, buf, sizeof buf) == -1, "bad char");
    CHECK(usersig_b64_decode("Zm9vYmFy", 8, buf, 5) == -1, "output bound");
}

/* usersig_find_signer: the first key that made the token, skipping NULLs and the other kind;
 * the same answer as usersig_check_signature key by key. */
static void test_find_signer(void)
{
    struct usersig_key *right = hmac_key(SECRET), *wrong = hmac_key("another secret"),
                       *wrong2 = hmac_key("a third secret");
    struct usersig_signer *s = signer(right, APP, 6, USERSIG_ID_PRINTABLE);
    char tok[USERSIG_TOKEN_BUF];
    struct usersig_decoded d;
    CHECK(sign_id(s, "alice", 5, 3600, 1700000000, tok) == USERSIG_OK, "find: sign");
    CHECK(usersig_decode(tok, strlen(tok), &d) == USERSIG_VALID, "find: decode");

    EVP_PKEY *pk = EVP_EC_gen("prime256v1");
    char *pub = pem_of(pk, 0, 1);
    struct usersig_key *ec = NULL;
    CHECK(usersig_key_new_pem(pub, strlen(pub), &ec) == USERSIG_OK, "find: EC key");

    const struct usersig_key *keys[] = {wrong, NULL, ec, wrong2, right, right};
    CHECK(usersig_find_signer(&d, keys, 6) == 4, "find: the first key that signed (index 4)");
    CHECK(usersig_find_signer(&d, keys, 4) == 4, "find: none among the first four (n)");
    CHECK(usersig_find_signer(&d, keys, 0) == 0, "find: no keys (n = 0)");
    for (size_t i = 0; i < 6; i++)
        if (keys[i] != NULL)
            CHECK((usersig_find_signer(&d, &keys[i], 1) == 0) ==
                      (usersig_check_signature(&d, keys[i]) == USERSIG_VALID),
                  "find: key %zu agrees with usersig_check_signature", i);
    /* A changed signature is found by no key. */
    struct usersig_decoded bad = d;
    bad.sig[0] = bad.sig[0] == 'A' ? 'B' : 'A';
    CHECK(usersig_find_signer(&bad, keys, 6) == 6, "find: an altered signature matches none");

    usersig_key_free(ec);
    free(pub);
    EVP_PKEY_free(pk);
    usersig_signer_free(s);
    usersig_key_free(right);
    usersig_key_free(wrong);
    usersig_key_free(wrong2);
}

int main(void)
{
    test_input_rules();
    test_escaping();
    test_privatemapkey();
    test_v1_keys();
    test_find_signer();
    test_random_round_trips();
    test_decoder_bounds();
    test_base64();
    return test_done("codec");
}
