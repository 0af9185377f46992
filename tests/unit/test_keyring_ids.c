/*
 * Keyring unit tests, the part that needs no master key: ECDSA key fingerprints (SHA-256 of the
 * public key's DER, checked against the openssl command over every PEM form it writes, and the
 * keys refused) and API tokens (their form, hash, parsing and every malformed shape). The master
 * key file, sealing, the root and its HMAC fingerprints: test_keyring.c.
 */
#include "keyring.h"
#include "testlib.h"

#include <openssl/sha.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ECDSA fingerprints --------------------------------------------------------------------- */

static int run(const char *cmd)
{
    int rc = system(cmd);
    CHECK(rc == 0, "command failed: %s", cmd);
    return rc;
}

/* sha256 of the command's standard output, as the openssl command prints it. */
static void sha256_of(const char *cmd, char out[65])
{
    char line[256];
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    if (p == NULL)
        return;
    if (fgets(line, sizeof line, p) != NULL && strlen(line) >= 64) {
        memcpy(out, line, 64);
        out[64] = '\0';
    }
    pclose(p);
}

static int fingerprint_file(const char *path, uint8_t fp[32])
{
    char pem[16384];
    long n = test_read_file(path, pem, sizeof pem);
    if (n < 0)
        return -1;
    return keyring_fingerprint_ecdsa(pem, (size_t)n, fp) == KEYRING_OK ? 0 : -1;
}

static void test_fingerprint_ecdsa(void)
{
    static const char *const curves[] = {"prime256v1", "secp256k1"};
    char cmd[1024], want[65], got[65];
    uint8_t fp[32], first[32];
    const char *p256_sec1 = NULL;

    for (size_t c = 0; c < 2; c++) {
        const char *sec1 = test_tmp_path(c ? "k1-sec1.pem" : "p256-sec1.pem");
        const char *pkcs8 = test_tmp_path(c ? "k1-pkcs8.pem" : "p256-pkcs8.pem");
        const char *pub = test_tmp_path(c ? "k1-pub.pem" : "p256-pub.pem");
        const char *pubc = test_tmp_path(c ? "k1-pubc.pem" : "p256-pubc.pem");
        const char *privc = test_tmp_path(c ? "k1-privc.pem" : "p256-privc.pem");
        const char *withparams = test_tmp_path(c ? "k1-params.pem" : "p256-params.pem");
        const char *const forms[] = {sec1, pkcs8, pub, pubc, privc, withparams};
        static const char *const form_names[] = {"SEC1 private",    "PKCS#8 private",
                                                 "public",          "compressed public",
                                                 "compressed SEC1", "EC PARAMETERS + SEC1"};

        snprintf(cmd, sizeof cmd,
                 "openssl ecparam -name %s -genkey -noout -out %s && "
                 "openssl pkey -in %s -out %s && openssl pkey -in %s -pubout -out %s && "
                 "openssl ec -in %s -pubout -conv_form compressed -out %s 2>/dev/null && "
                 "openssl ec -in %s -conv_form compressed -out %s 2>/dev/null && "
                 "openssl ecparam -name %s > %s && cat %s >> %s",
                 curves[c], sec1, sec1, pkcs8, sec1, pub, sec1, pubc, sec1, privc, curves[c],
                 withparams, sec1, withparams);
        if (c == 0)
            p256_sec1 = sec1;
        if (run(cmd) != 0)
            continue;
        snprintf(cmd, sizeof cmd,
                 "openssl pkey -in %s -pubout -outform DER | openssl dgst -sha256 -r", sec1);
        sha256_of(cmd, want);
        CHECK(strlen(want) == 64, "%s: openssl digest", curves[c]);
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            CHECK(fingerprint_file(forms[f], fp) == 0, "%s %s: fingerprint", curves[c],
                  form_names[f]);
            test_hex(fp, 32, got);
            CHECK(strcmp(got, want) == 0, "%s %s: %s, openssl says %s", curves[c], form_names[f],
                  got, want);
        }
        if (c == 0)
            memcpy(first, fp, 32);
        else
            CHECK(memcmp(first, fp, 32) != 0, "two keys, two fingerprints");
    }

    /* Explicit curve parameters: the same key, the same fingerprint. */
    {
        const char *sec1 = p256_sec1;
        const char *explicit_pub = test_tmp_path("p256-explicit-pub.pem");
        uint8_t named[32];
        snprintf(cmd, sizeof cmd,
                 "openssl ec -in %s -pubout -param_enc explicit -out %s 2>/dev/null", sec1,
                 explicit_pub);
        if (run(cmd) == 0 && fingerprint_file(sec1, named) == 0) {
            CHECK(fingerprint_file(explicit_pub, fp) == 0 && memcmp(fp, named, 32) == 0,
                  "explicit parameters: same fingerprint");
        }
    }

    /* What is not a supported EC key. */
    {
        const char *rsa = test_tmp_path("rsa.pem"), *ed = test_tmp_path("ed.pem"),
                   *p384 = test_tmp_path("p384.pem"), *enc = test_tmp_path("enc.pem");
        snprintf(cmd, sizeof cmd,
                 "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s "
                 "2>/dev/null && openssl genpkey -algorithm ED25519 -out %s && "
                 "openssl ecparam -name secp384r1 -genkey -noout -out %s && "
                 "openssl pkey -in %s -aes256 -passout pass:secret -out %s",
                 rsa, ed, p384, p256_sec1, enc);
        run(cmd);
        CHECK(fingerprint_file(rsa, fp) != 0, "RSA refused");
        CHECK(fingerprint_file(ed, fp) != 0, "Ed25519 refused");
        CHECK(fingerprint_file(p384, fp) != 0, "P-384 refused");
        CHECK(fingerprint_file(enc, fp) != 0, "passphrase-protected PEM refused, not prompted");
        CHECK(keyring_fingerprint_ecdsa("", 0, fp) == KEYRING_BAD_INPUT, "empty");
        CHECK(keyring_fingerprint_ecdsa("garbage", 7, fp) == KEYRING_BAD_INPUT, "garbage");
        CHECK(keyring_fingerprint_ecdsa(NULL, 7, fp) == KEYRING_BAD_INPUT, "NULL");
        CHECK(keyring_fingerprint_ecdsa("x", 16385, fp) == KEYRING_BAD_INPUT, "oversized");
    }
}

/* ---- API tokens ----------------------------------------------------------------------------- */

static void test_tokens(void)
{
    char tok[KEYRING_TOKEN_BUF], tok2[KEYRING_TOKEN_BUF], bad[300];
    uint8_t hash[32], hash2[32], parsed[32], want[32];
    int64_t id = 0;
    const char *secret;

    CHECK(keyring_token_new(42, tok, sizeof tok, hash) == KEYRING_OK, "new");
    CHECK(strncmp(tok, "usg_42_", 7) == 0 && strlen(tok) == 7 + 43, "form: %s", tok);
    secret = tok + 7;
    CHECK(strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43,
          "base64url secret");
    SHA256((const unsigned char *)secret, 43, want);
    CHECK(memcmp(hash, want, 32) == 0, "hash = SHA-256 of the 43 characters");
    CHECK(keyring_token_parse(tok, &id, parsed) == KEYRING_OK && id == 42, "parse");
    CHECK(keyring_token_check(parsed, hash) == 1, "check");
    CHECK(keyring_token_new(42, tok2, sizeof tok2, hash2) == KEYRING_OK && strcmp(tok, tok2) != 0 &&
              keyring_token_check(hash, hash2) == 0,
          "two tokens differ");

    /* One character changed: still a token, but not this one. */
    strcpy(bad, tok);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    CHECK(keyring_token_parse(bad, &id, parsed) == KEYRING_OK &&
              keyring_token_check(parsed, hash) == 0,
          "changed secret does not check");

    /* Largest id; ids that cannot be. */
    CHECK(keyring_token_new(INT64_MAX, tok, sizeof tok, hash) == KEYRING_OK &&
              keyring_token_parse(tok, &id, parsed) == KEYRING_OK && id == INT64_MAX &&
              keyring_token_check(parsed, hash) == 1,
          "INT64_MAX round trip: %s", tok);
    CHECK(strlen(tok) + 1 <= KEYRING_TOKEN_BUF, "KEYRING_TOKEN_BUF is enough");
    CHECK(keyring_token_new(0, tok, sizeof tok, hash) == KEYRING_BAD_INPUT, "id 0");
    CHECK(keyring_token_new(-5, tok, sizeof tok, hash) == KEYRING_BAD_INPUT, "id -5");
    CHECK(keyring_token_new(7, tok, 6 + 43, hash) == KEYRING_BAD_INPUT && tok[0] == '\0',
          "buffer one short");
    CHECK(keyring_token_new(7, tok, 6 + 44, hash) == KEYRING_OK, "buffer just enough");

    /* Malformed. S is a valid secret; canonical last characters are A, E, I, ... */
    const char *S = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE";
    static const char *const fmts[] = {
        "",
        "usg_",
        "usg_1_",
        "usg_1",
        "usx_1_%s",
        "USG_1_%s",
        "usg1_%s",
        "usg__%s",
        "usg_0_%s",
        "usg_01_%s",
        "usg_-1_%s",
        "usg_+1_%s",
        "usg_1a_%s",
        "usg_ 1_%s",
        "usg_1 _%s",
        "usg_1%s",
        "usg_1-%s",
        " usg_1_%s",
        "usg_1_%s ",
        "usg_1_%s\n",
        "usg_1_%sA",
        "usg_1_%s_",
        "usg_1_%s=",
        "usg_1_x%s",
        "usg_1__%s",
        "usg_9223372036854775808_%s",
        "usg_99999999999999999999_%s",
        "usg_1_%.42s",
        "usg_1_%.30s",
        "usg_1_%.42s+",
        "usg_1_%.42s/",
        "usg_1_%.42s=",
        "usg_1_%.42s.",
        "usg_1_%.42s\x80",
        "usg_1_%.42sB",
        "usg_1_%.42sZ",
        "usg_1_%.42s_",
    };
    snprintf(bad, sizeof bad, "usg_1_%s", S);
    CHECK(keyring_token_parse(bad, &id, parsed) == KEYRING_OK && id == 1, "reference parses");
    snprintf(bad, sizeof bad, "usg_9223372036854775807_%s", S);
    CHECK(keyring_token_parse(bad, &id, parsed) == KEYRING_OK && id == INT64_MAX, "max id");
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
        snprintf(bad, sizeof bad, fmts[i], S);
#pragma GCC diagnostic pop
        id = -7;
        CHECK(keyring_token_parse(bad, &id, parsed) == KEYRING_BAD_INPUT && id == -7,
              "malformed %zu accepted: \"%s\"", i, bad);
    }
    /* Over 128 bytes: refused before anything else. */
    memset(bad, 'A', sizeof bad - 1);
    bad[sizeof bad - 1] = '\0';
    memcpy(bad, "usg_1_", 6);
    CHECK(keyring_token_parse(bad, &id, parsed) == KEYRING_BAD_INPUT, "299 bytes");
    bad[KEYRING_TOKEN_MAX + 1] = '\0';
    CHECK(keyring_token_parse(bad, &id, parsed) == KEYRING_BAD_INPUT, "129 bytes");
    CHECK(keyring_token_parse(NULL, &id, parsed) == KEYRING_BAD_INPUT, "NULL");
}

int main(void)
{
    test_fingerprint_ecdsa();
    test_tokens();
    test_tmp_remove();
    return test_done("keyring_ids");
}
