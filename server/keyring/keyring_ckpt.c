/*
 * The keyring's Ed25519 audit checkpoint key (made and sealed under the master key, signing,
 * verifying, its public key as PEM or base64) and the webhook signing secrets (made, sealed,
 * opened, resealed). Formats and labels are server/README.md's; they are on disk and in the
 * database, so none of them may change.
 */
#include "keyring.h"
#include "keyring_int.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <string.h>

/* ---- The audit checkpoint key (Ed25519) ------------------------------------------------------ */

static const char CKPT_AAD_LABEL[] = "usersigd/checkpoint/v1"; /* then 0x00, the public key */
#define CKPT_AAD_BYTES (sizeof CKPT_AAD_LABEL + KEYRING_CKPT_KEY_BYTES)

static void ckpt_aad(uint8_t aad[CKPT_AAD_BYTES], const uint8_t pub[KEYRING_CKPT_KEY_BYTES])
{
    memcpy(aad, CKPT_AAD_LABEL, sizeof CKPT_AAD_LABEL); /* with its NUL: the 0x00 */
    memcpy(aad + sizeof CKPT_AAD_LABEL, pub, KEYRING_CKPT_KEY_BYTES);
}

/* The public key of a raw Ed25519 private key. */
static enum keyring_rc ckpt_public_of(const uint8_t priv[KEYRING_CKPT_KEY_BYTES],
                                      uint8_t pub[KEYRING_CKPT_KEY_BYTES], EVP_PKEY **keep)
{
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, KEYRING_CKPT_KEY_BYTES);
    size_t n = KEYRING_CKPT_KEY_BYTES;
    enum keyring_rc rc = KEYRING_CRYPTO_FAILED;

    if (pkey != NULL && EVP_PKEY_get_raw_public_key(pkey, pub, &n) == 1 &&
        n == KEYRING_CKPT_KEY_BYTES)
        rc = KEYRING_OK;
    if (rc == KEYRING_OK && keep != NULL) {
        *keep = pkey;
        pkey = NULL;
    }
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    return rc;
}

enum keyring_rc keyring_ckpt_key_create(const struct keyring *kr,
                                        uint8_t pub[KEYRING_CKPT_KEY_BYTES], uint8_t **sealed,
                                        size_t *sealed_len)
{
    uint8_t priv[KEYRING_CKPT_KEY_BYTES], aad[CKPT_AAD_BYTES];
    enum keyring_rc rc;

    *sealed = NULL;
    *sealed_len = 0;
    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    /* An Ed25519 private key is 32 random bytes (RFC 8032 5.1.5). */
    if (RAND_priv_bytes(priv, sizeof priv) != 1) {
        ERR_clear_error();
        return KEYRING_CRYPTO_FAILED;
    }
    rc = ckpt_public_of(priv, pub, NULL);
    if (rc == KEYRING_OK) {
        ckpt_aad(aad, pub);
        rc = keyring_gcm_seal(kr->master, aad, sizeof aad, priv, sizeof priv, sealed, sealed_len);
    }
    OPENSSL_cleanse(priv, sizeof priv);
    return rc;
}

/* Opens the sealed private key of pub into an EVP_PKEY, checking that it is pub's. */
static enum keyring_rc ckpt_open(const struct keyring *kr,
                                 const uint8_t pub[KEYRING_CKPT_KEY_BYTES], const uint8_t *sealed,
                                 size_t sealed_len, EVP_PKEY **out)
{
    uint8_t aad[CKPT_AAD_BYTES], derived[KEYRING_CKPT_KEY_BYTES];
    uint8_t *priv = NULL;
    size_t len = 0;
    enum keyring_rc rc;

    *out = NULL;
    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    ckpt_aad(aad, pub);
    rc = keyring_gcm_unseal(kr->master, aad, sizeof aad, sealed, sealed_len, &priv, &len);
    if (rc != KEYRING_OK)
        return rc;
    if (len != KEYRING_CKPT_KEY_BYTES)
        rc = KEYRING_OPEN_FAILED;
    if (rc == KEYRING_OK)
        rc = ckpt_public_of(priv, derived, out);
    if (rc == KEYRING_OK && CRYPTO_memcmp(derived, pub, KEYRING_CKPT_KEY_BYTES) != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
        rc = KEYRING_OPEN_FAILED;
    }
    keyring_secret_free(priv, len);
    return rc;
}

enum keyring_rc keyring_ckpt_sign(const struct keyring *kr,
                                  const uint8_t pub[KEYRING_CKPT_KEY_BYTES], const uint8_t *sealed,
                                  size_t sealed_len, const uint8_t *msg, size_t len,
                                  uint8_t sig[KEYRING_CKPT_SIG_BYTES])
{
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *ctx = NULL;
    size_t n = KEYRING_CKPT_SIG_BYTES;
    enum keyring_rc rc = ckpt_open(kr, pub, sealed, sealed_len, &pkey);

    if (rc != KEYRING_OK)
        return rc;
    rc = KEYRING_CRYPTO_FAILED;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        rc = KEYRING_NO_MEMORY;
        goto done;
    }
    /* Ed25519 is one-shot (no digest: NULL), over the whole message. */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
        EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == KEYRING_CKPT_SIG_BYTES)
        rc = KEYRING_OK;
done:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey); /* OpenSSL wipes the key's bytes when it frees them */
    return rc;
}

enum keyring_rc keyring_ckpt_verify(const uint8_t pub[KEYRING_CKPT_KEY_BYTES], const uint8_t *msg,
                                    size_t len, const uint8_t sig[KEYRING_CKPT_SIG_BYTES])
{
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, KEYRING_CKPT_KEY_BYTES);
    EVP_MD_CTX *ctx = pkey != NULL ? EVP_MD_CTX_new() : NULL;
    enum keyring_rc rc = KEYRING_OPEN_FAILED;

    if (pkey == NULL) {
        rc = KEYRING_BAD_INPUT;
    } else if (ctx == NULL) {
        rc = KEYRING_NO_MEMORY;
    } else if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
               EVP_DigestVerify(ctx, sig, KEYRING_CKPT_SIG_BYTES, msg, len) == 1) {
        rc = KEYRING_OK;
    }
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rc;
}

enum keyring_rc keyring_ckpt_reseal(const struct keyring *old_kr, const struct keyring *new_kr,
                                    const uint8_t pub[KEYRING_CKPT_KEY_BYTES],
                                    const uint8_t *sealed_in, size_t in_len, uint8_t **out,
                                    size_t *out_len)
{
    uint8_t aad[CKPT_AAD_BYTES];
    uint8_t *priv = NULL;
    size_t len = 0;
    enum keyring_rc rc;

    *out = NULL;
    *out_len = 0;
    if (old_kr == NULL || new_kr == NULL)
        return KEYRING_BAD_INPUT;
    ckpt_aad(aad, pub);
    rc = keyring_gcm_unseal(old_kr->master, aad, sizeof aad, sealed_in, in_len, &priv, &len);
    if (rc == KEYRING_OK)
        rc = keyring_gcm_seal(new_kr->master, aad, sizeof aad, priv, len, out, out_len);
    keyring_secret_free(priv, len);
    return rc;
}

enum keyring_rc keyring_ckpt_public_pem(const uint8_t pub[KEYRING_CKPT_KEY_BYTES], char *out,
                                        size_t cap)
{
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, KEYRING_CKPT_KEY_BYTES);
    BIO *bio = pkey != NULL ? BIO_new(BIO_s_mem()) : NULL;
    enum keyring_rc rc = KEYRING_CRYPTO_FAILED;
    char *p = NULL;
    long n;

    if (cap > 0)
        out[0] = '\0';
    if (bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1 &&
        (n = BIO_get_mem_data(bio, &p)) > 0) {
        if ((size_t)n < cap) {
            memcpy(out, p, (size_t)n);
            out[n] = '\0';
            rc = KEYRING_OK;
        } else {
            rc = KEYRING_BAD_INPUT;
        }
    }
    ERR_clear_error();
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return rc;
}

enum keyring_rc keyring_ckpt_public_parse(const char *text, size_t len,
                                          uint8_t pub[KEYRING_CKPT_KEY_BYTES])
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    size_t n = KEYRING_CKPT_KEY_BYTES;
    enum keyring_rc rc = KEYRING_BAD_INPUT;

    if (text == NULL || len == 0 || len > KEYRING_CKPT_TEXT_MAX)
        return KEYRING_BAD_INPUT;
    if (len >= 10 && memcmp(text, "-----BEGIN", 10) == 0) {
        bio = BIO_new_mem_buf(text, (int)len);
        if (bio == NULL)
            return KEYRING_NO_MEMORY;
        pkey = PEM_read_bio_PUBKEY(bio, NULL, keyring_no_passphrase, NULL);
        if (pkey != NULL && EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519 &&
            EVP_PKEY_get_raw_public_key(pkey, pub, &n) == 1 && n == KEYRING_CKPT_KEY_BYTES)
            rc = KEYRING_OK;
    } else {
        /* Base64 of the 32 raw bytes: 44 characters, one '=' of padding. */
        unsigned char raw[48];
        if (len == 44 && EVP_DecodeBlock(raw, (const unsigned char *)text, 44) == 33 &&
            text[43] == '=' && text[42] != '=') {
            memcpy(pub, raw, KEYRING_CKPT_KEY_BYTES);
            rc = KEYRING_OK;
        }
    }
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

/* ---- Webhook signing secrets ---------------------------------------------------------------- */

static const char WEBHOOK_AAD_LABEL[] = "usersigd/webhook/v1"; /* then 0x00, be64 id */
#define WEBHOOK_AAD_BYTES (sizeof WEBHOOK_AAD_LABEL + 8)

static void webhook_aad(uint8_t aad[WEBHOOK_AAD_BYTES], int64_t id)
{
    uint8_t *p = aad + sizeof WEBHOOK_AAD_LABEL;
    memcpy(aad, WEBHOOK_AAD_LABEL, sizeof WEBHOOK_AAD_LABEL);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)id >> (56 - 8 * i));
}

enum keyring_rc keyring_webhook_secret_new(const struct keyring *kr, int64_t id,
                                           uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES],
                                           uint8_t **sealed, size_t *sealed_len)
{
    uint8_t aad[WEBHOOK_AAD_BYTES];
    *sealed = NULL;
    *sealed_len = 0;
    if (kr == NULL || id < 1)
        return KEYRING_BAD_INPUT;
    if (RAND_priv_bytes(secret, KEYRING_WEBHOOK_SECRET_BYTES) != 1)
        return KEYRING_CRYPTO_FAILED;
    webhook_aad(aad, id);
    enum keyring_rc rc = keyring_gcm_seal(kr->master, aad, sizeof aad, secret,
                                          KEYRING_WEBHOOK_SECRET_BYTES, sealed, sealed_len);
    if (rc != KEYRING_OK)
        OPENSSL_cleanse(secret, KEYRING_WEBHOOK_SECRET_BYTES);
    return rc;
}

enum keyring_rc keyring_webhook_secret_open(const struct keyring *kr, int64_t id,
                                            const uint8_t *sealed, size_t sealed_len,
                                            uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES])
{
    uint8_t aad[WEBHOOK_AAD_BYTES];
    uint8_t *pt = NULL;
    size_t len = 0;
    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    webhook_aad(aad, id);
    enum keyring_rc rc =
        keyring_gcm_unseal(kr->master, aad, sizeof aad, sealed, sealed_len, &pt, &len);
    if (rc == KEYRING_OK && len != KEYRING_WEBHOOK_SECRET_BYTES)
        rc = KEYRING_OPEN_FAILED;
    if (rc == KEYRING_OK)
        memcpy(secret, pt, KEYRING_WEBHOOK_SECRET_BYTES);
    keyring_secret_free(pt, len);
    return rc;
}

enum keyring_rc keyring_webhook_reseal(const struct keyring *old_kr, const struct keyring *new_kr,
                                       int64_t id, const uint8_t *sealed_in, size_t in_len,
                                       uint8_t **out, size_t *out_len)
{
    uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES], aad[WEBHOOK_AAD_BYTES];
    *out = NULL;
    *out_len = 0;
    if (new_kr == NULL)
        return KEYRING_BAD_INPUT;
    enum keyring_rc rc = keyring_webhook_secret_open(old_kr, id, sealed_in, in_len, secret);
    if (rc == KEYRING_OK) {
        webhook_aad(aad, id);
        rc = keyring_gcm_seal(new_kr->master, aad, sizeof aad, secret, sizeof secret, out, out_len);
    }
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}
