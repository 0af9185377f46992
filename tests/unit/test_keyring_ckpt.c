/*
 * The audit checkpoint key of the keyring: an Ed25519 key made and sealed under the master key,
 * signatures that verify with its public key and with OpenSSL's own Ed25519 directly, refused
 * under another key, for another message or altered; the sealed key bound to its public key and
 * master key; rewrap; the public key as PEM and base64 and their parsing; the signed text.
 */
#include "audit.h"
#include "keyring.h"
#include "testlib.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct keyring *new_master(const char *name)
{
    const char *path = test_tmp_path(name);
    struct keyring *kr = NULL;
    char err[256];
    if (keyring_master_create(path, err, sizeof err) != KEYRING_OK ||
        keyring_master_load(path, &kr, err, sizeof err) != KEYRING_OK) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    return kr;
}

static void test_sign_verify(void)
{
    struct keyring *kr = new_master("ckpt-master"), *other = new_master("ckpt-other");
    uint8_t pub[KEYRING_CKPT_KEY_BYTES], pub2[KEYRING_CKPT_KEY_BYTES];
    uint8_t *sealed = NULL, *sealed2 = NULL, *resealed = NULL;
    size_t len = 0, len2 = 0, rlen = 0;
    uint8_t sig[KEYRING_CKPT_SIG_BYTES], sig2[KEYRING_CKPT_SIG_BYTES];
    uint8_t mac[AUDIT_MAC_LEN];
    char text[AUDIT_CKPT_MSG_BUF];

    memset(mac, 0xab, sizeof mac);
    size_t tlen = audit_checkpoint_message(42, mac, 1796168542123456, text);
    CHECK(tlen > 0 &&
              strcmp(text, "usersigd audit checkpoint v1\n42\n"
                           "abababababababababababababababababababababababababababababababab\n"
                           "1796168542123456\n") == 0,
          "signed text: %s", text);

    CHECK(keyring_ckpt_key_create(kr, pub, &sealed, &len) == KEYRING_OK && len == 60,
          "key made and sealed (60 bytes: %zu)", len);
    CHECK(keyring_ckpt_key_create(kr, pub2, &sealed2, &len2) == KEYRING_OK &&
              memcmp(pub, pub2, sizeof pub) != 0,
          "two keys differ");
    CHECK(keyring_ckpt_sign(kr, pub, sealed, len, (const uint8_t *)text, tlen, sig) == KEYRING_OK,
          "signed");
    CHECK(keyring_ckpt_verify(pub, (const uint8_t *)text, tlen, sig) == KEYRING_OK, "verifies");

    /* Independently: OpenSSL's Ed25519 with the raw public key. */
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof pub);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(pk != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
              EVP_DigestVerify(ctx, sig, sizeof sig, (const uint8_t *)text, tlen) == 1,
          "OpenSSL verifies the signature directly");
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);

    CHECK(keyring_ckpt_verify(pub2, (const uint8_t *)text, tlen, sig) == KEYRING_OPEN_FAILED,
          "another key's public key refuses it");
    CHECK(keyring_ckpt_verify(pub, (const uint8_t *)text, tlen - 2, sig) == KEYRING_OPEN_FAILED,
          "another text is refused");
    memcpy(sig2, sig, sizeof sig);
    sig2[10] ^= 1;
    CHECK(keyring_ckpt_verify(pub, (const uint8_t *)text, tlen, sig2) == KEYRING_OPEN_FAILED,
          "an altered signature is refused");

    /* The sealed key opens only for its public key and under its master key. */
    CHECK(keyring_ckpt_sign(kr, pub2, sealed, len, (const uint8_t *)text, tlen, sig2) ==
              KEYRING_OPEN_FAILED,
          "sealed key with another public key: does not open");
    CHECK(keyring_ckpt_sign(other, pub, sealed, len, (const uint8_t *)text, tlen, sig2) ==
              KEYRING_OPEN_FAILED,
          "another master key: does not open");
    CHECK(keyring_ckpt_reseal(kr, other, pub, sealed, len, &resealed, &rlen) == KEYRING_OK &&
              keyring_ckpt_sign(other, pub, resealed, rlen, (const uint8_t *)text, tlen, sig2) ==
                  KEYRING_OK &&
              memcmp(sig, sig2, sizeof sig) == 0,
          "resealed: signs under the new master key, the same signature (Ed25519 is "
          "deterministic)");
    CHECK(keyring_ckpt_sign(kr, pub, resealed, rlen, (const uint8_t *)text, tlen, sig2) ==
              KEYRING_OPEN_FAILED,
          "resealed: no longer under the old one");

    /* The public key's text forms. */
    char pem[KEYRING_CKPT_PEM_BUF];
    uint8_t back[KEYRING_CKPT_KEY_BYTES];
    CHECK(keyring_ckpt_public_pem(pub, pem, sizeof pem) == KEYRING_OK &&
              strncmp(pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0,
          "PEM: %s", pem);
    CHECK(keyring_ckpt_public_parse(pem, strlen(pem), back) == KEYRING_OK &&
              memcmp(back, pub, sizeof pub) == 0,
          "PEM parsed back");
    char b64[48];
    EVP_EncodeBlock((unsigned char *)b64, pub, sizeof pub);
    CHECK(strlen(b64) == 44 && keyring_ckpt_public_parse(b64, 44, back) == KEYRING_OK &&
              memcmp(back, pub, sizeof pub) == 0,
          "base64 parsed back");
    CHECK(keyring_ckpt_public_parse(b64, 43, back) == KEYRING_BAD_INPUT, "short base64 refused");
    b64[5] = '*';
    CHECK(keyring_ckpt_public_parse(b64, 44, back) == KEYRING_BAD_INPUT, "bad base64 refused");
    CHECK(keyring_ckpt_public_parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                    57, back) == KEYRING_BAD_INPUT,
          "bad PEM refused");

    free(sealed);
    free(sealed2);
    free(resealed);
    keyring_free(kr);
    keyring_free(other);
}

int main(void)
{
    test_sign_verify();
    test_tmp_remove();
    return test_done("keyring_ckpt");
}
