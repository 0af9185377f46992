/*
 * The keyring: the master key file, AES-256-GCM sealing of app keys and of the root secret, the
 * keys derived from the root (audit chain, fingerprints), key fingerprints and API tokens, as
 * server/README.md describes them. It only computes: the store persists the bytes it returns.
 * No SQL, no HTTP, no logging: functions return codes (and, for files, a message without the
 * file's content); callers decide what to say.
 */
#ifndef KEYRING_H
#define KEYRING_H

#include <stddef.h>
#include <stdint.h>

#define KEYRING_WUR __attribute__((warn_unused_result))

#define KEYRING_KEY_BYTES 32   /* master key, root secret, derived keys */
#define KEYRING_NONCE_BYTES 12 /* AES-GCM nonce at the start of a sealed blob */
#define KEYRING_TAG_BYTES 16   /* AES-GCM tag at its end */
#define KEYRING_SEAL_OVERHEAD (KEYRING_NONCE_BYTES + KEYRING_TAG_BYTES)
#define KEYRING_MAX_SECRET 16384      /* largest plaintext sealed: the codec's longest PEM */
#define KEYRING_FP_BYTES 32           /* a fingerprint */
#define KEYRING_FP_SHORT_BUF 17       /* its short form: 16 hex characters and a NUL */
#define KEYRING_TOKEN_SECRET_CHARS 43 /* base64url of 32 random bytes, no padding */
#define KEYRING_TOKEN_MAX 128         /* longest text keyring_token_parse() looks at */
#define KEYRING_TOKEN_BUF 72          /* "usg_" + 19 digits + "_" + 43 + NUL fits */

enum keyring_rc {
    KEYRING_OK = 0,
    KEYRING_BAD_FILE,      /* master key file missing, unreadable or not 64 hex characters */
    KEYRING_INSECURE_FILE, /* master key file readable or writable by group or other */
    KEYRING_EXISTS,        /* master key file to create is already there */
    KEYRING_OPEN_FAILED,   /* sealed bytes do not open: wrong master key, sdkappid or version,
                            * altered or truncated */
    KEYRING_BAD_INPUT,     /* bad argument: empty or oversized secret, PEM not a supported EC
                            * key, malformed token, root not opened yet */
    KEYRING_NO_MEMORY,
    KEYRING_CRYPTO_FAILED, /* OpenSSL failed where it should not (or the RNG) */
};

/* A one-line explanation a person can act on. */
const char *keyring_rc_message(enum keyring_rc rc);

/* The master key and, once keyring_root_open() succeeded, the audit and fingerprint keys.
 * Opaque; every key byte is wiped with OPENSSL_cleanse when freed. Only keyring_root_open()
 * changes it: after that it may be shared read-only between threads. */
struct keyring;

/* ---- Master key file ------------------------------------------------------------------------ */

/* Reads the master key from path: exactly 64 hex characters and an optional "\n". Refuses a file
 * whose mode lets group or other read or write it (KEYRING_INSECURE_FILE; the message says
 * "chmod 600 <path>"). On failure err (may be NULL) gets a one-line message naming the path,
 * never the file's content. On success *out is a new keyring; caller keyring_free()s it. */
enum keyring_rc keyring_master_load(const char *path, struct keyring **out, char *err,
                                    size_t errlen) KEYRING_WUR;

/* Creates path (O_CREAT|O_EXCL, mode 0600, fsynced with its directory) holding 32 bytes from
 * RAND_priv_bytes as 64 lower-case hex characters and "\n". KEYRING_EXISTS when path exists
 * (it is left alone); on any other failure nothing is left behind. */
enum keyring_rc keyring_master_create(const char *path, char *err, size_t errlen) KEYRING_WUR;

/* Wipes and frees; NULL is accepted. */
void keyring_free(struct keyring *kr);

/* ---- Sealing app keys ----------------------------------------------------------------------- */

/* Seals plaintext (1..KEYRING_MAX_SECRET bytes) under the master key: AES-256-GCM, a random
 * 12-byte nonce, associated data "usersigd/key/v1" 0x00 be32(sdkappid) be32(version).
 * *out = nonce || ciphertext || tag, *out_len = len + KEYRING_SEAL_OVERHEAD; caller free()s it
 * (it holds nothing secret). */
enum keyring_rc keyring_seal_key(const struct keyring *kr, uint32_t sdkappid, uint32_t version,
                                 const uint8_t *plaintext, size_t len, uint8_t **out,
                                 size_t *out_len) KEYRING_WUR;

/* Opens what keyring_seal_key() made for the same sdkappid and version. *out is a new buffer of
 * *out_len bytes followed by a NUL (so a PEM can be used as a string); it is secret: caller
 * keyring_secret_free(*out, *out_len)s it. On failure (KEYRING_OPEN_FAILED for anything that
 * does not authenticate, truncated input included) *out is NULL and nothing decrypted remains
 * in memory. */
enum keyring_rc keyring_open_key(const struct keyring *kr, uint32_t sdkappid, uint32_t version,
                                 const uint8_t *sealed, size_t sealed_len, uint8_t **out,
                                 size_t *out_len) KEYRING_WUR;

/* Wipes len bytes of buf with OPENSSL_cleanse and frees it; NULL is accepted. */
void keyring_secret_free(void *buf, size_t len);

/* Opens sealed_in with old_kr and seals the plaintext again with new_kr for the same sdkappid
 * and version (usersigd rewrap). *out as keyring_seal_key(). */
enum keyring_rc keyring_reseal(const struct keyring *old_kr, const struct keyring *new_kr,
                               uint32_t sdkappid, uint32_t version, const uint8_t *sealed_in,
                               size_t in_len, uint8_t **out, size_t *out_len) KEYRING_WUR;

/* ---- Root secret and derived keys ----------------------------------------------------------- */

/* Makes a new root secret (32 bytes from RAND_priv_bytes) and seals it under the master key with
 * associated data "usersigd/root/v1". *out as keyring_seal_key(). kr is not changed: call
 * keyring_root_open() on the result, as every later start does. */
enum keyring_rc keyring_root_create(const struct keyring *kr, uint8_t **out,
                                    size_t *out_len) KEYRING_WUR;

/* Opens the sealed root and derives, with HKDF-SHA256 (empty salt), the audit chain key
 * (info "usersigd audit chain") and the fingerprint key (info "usersigd key fingerprint") into
 * kr, replacing any earlier ones. The root itself is wiped at once. */
enum keyring_rc keyring_root_open(struct keyring *kr, const uint8_t *sealed,
                                  size_t sealed_len) KEYRING_WUR;

/* keyring_reseal() for the root secret. */
enum keyring_rc keyring_reseal_root(const struct keyring *old_kr, const struct keyring *new_kr,
                                    const uint8_t *sealed_in, size_t in_len, uint8_t **out,
                                    size_t *out_len) KEYRING_WUR;

/* 1 once keyring_root_open() has succeeded. */
int keyring_has_root(const struct keyring *kr);

/* The audit chain key: KEYRING_KEY_BYTES bytes owned by kr, or NULL before keyring_root_open(). */
const uint8_t *keyring_audit_key(const struct keyring *kr);

/* ---- Fingerprints --------------------------------------------------------------------------- */

/* HMAC-SHA256(fingerprint key, secret) of an hmac key's secret (1..KEYRING_MAX_SECRET bytes).
 * KEYRING_BAD_INPUT before keyring_root_open(). */
enum keyring_rc keyring_fingerprint_hmac(const struct keyring *kr, const uint8_t *secret,
                                         size_t len, uint8_t out[KEYRING_FP_BYTES]) KEYRING_WUR;

/* HMAC-SHA256(notice key, msg): the MAC of a notice one process sends the others through the
 * database (a NOTIFY, which any role that can connect could send too), with a key of its own
 * derived from the root. KEYRING_BAD_INPUT before keyring_root_open(). */
enum keyring_rc keyring_notice_mac(const struct keyring *kr, const char *msg, size_t len,
                                   uint8_t out[KEYRING_FP_BYTES]) KEYRING_WUR;

/* SHA-256 of the DER SubjectPublicKeyInfo of an ecdsa key, from its private or public PEM (the
 * forms usersig_key_new_pem() accepts). The SPKI is written in one canonical form (named curve,
 * uncompressed point) so that one key re-encoded another way keeps its fingerprint. */
enum keyring_rc keyring_fingerprint_ecdsa(const char *pem, size_t len,
                                          uint8_t out[KEYRING_FP_BYTES]) KEYRING_WUR;

/* The short form the API shows: the first 8 bytes as lower-case hex. Returns out. */
const char *keyring_fingerprint_short(const uint8_t fp[KEYRING_FP_BYTES],
                                      char out[KEYRING_FP_SHORT_BUF]);

/* ---- API tokens ----------------------------------------------------------------------------- */

/* Makes "usg_<id>_<secret>" into out (cap >= KEYRING_TOKEN_BUF is always enough), where secret is
 * 43 base64url characters of 32 random bytes, and out_hash = SHA-256 of those 43 characters (what
 * the database keeps). id must be > 0. The token is secret: the caller shows it once and wipes
 * it. */
enum keyring_rc keyring_token_new(int64_t id, char *out, size_t cap,
                                  uint8_t out_hash[KEYRING_FP_BYTES]) KEYRING_WUR;

/* Parses a NUL-terminated token: "usg_", a decimal id 1..INT64_MAX without sign or leading zero,
 * "_", exactly 43 base64url characters, nothing else, at most KEYRING_TOKEN_MAX bytes in all.
 * Sets *id and hash (SHA-256 of the 43 characters); KEYRING_BAD_INPUT for anything else. */
enum keyring_rc keyring_token_parse(const char *token, int64_t *id,
                                    uint8_t hash[KEYRING_FP_BYTES]) KEYRING_WUR;

/* 1 when the two hashes are equal, compared in constant time (CRYPTO_memcmp); else 0. */
int keyring_token_check(const uint8_t a[KEYRING_FP_BYTES],
                        const uint8_t b[KEYRING_FP_BYTES]) KEYRING_WUR;

/* ---- The audit checkpoint key (Ed25519) ------------------------------------------------------ */

#define KEYRING_CKPT_KEY_BYTES 32  /* an Ed25519 public key, and a private one */
#define KEYRING_CKPT_SIG_BYTES 64  /* an Ed25519 signature */
#define KEYRING_CKPT_PEM_BUF 256   /* its public key as PEM (SubjectPublicKeyInfo), and a NUL */
#define KEYRING_CKPT_TEXT_MAX 1024 /* longest public key text keyring_ckpt_public_parse reads */

/* Makes a new Ed25519 key (32 bytes from RAND_priv_bytes): pub gets its public key, *sealed its
 * private key sealed like an app key but with associated data "usersigd/checkpoint/v1" 0x00
 * pub, so it opens only as the private key of that public key. *sealed as keyring_seal_key(). */
enum keyring_rc keyring_ckpt_key_create(const struct keyring *kr,
                                        uint8_t pub[KEYRING_CKPT_KEY_BYTES], uint8_t **sealed,
                                        size_t *sealed_len) KEYRING_WUR;

/* Opens sealed (of pub), checks that it is pub's private key and signs msg (Ed25519, the whole
 * message). The private key lives only for the call and is wiped. KEYRING_OPEN_FAILED when the
 * sealed bytes do not open for pub. */
enum keyring_rc keyring_ckpt_sign(const struct keyring *kr,
                                  const uint8_t pub[KEYRING_CKPT_KEY_BYTES], const uint8_t *sealed,
                                  size_t sealed_len, const uint8_t *msg, size_t len,
                                  uint8_t sig[KEYRING_CKPT_SIG_BYTES]) KEYRING_WUR;

/* KEYRING_OK when sig is pub's Ed25519 signature of msg, KEYRING_OPEN_FAILED when it is not,
 * KEYRING_BAD_INPUT when pub is no Ed25519 key. Needs no keyring: a verifier holds only pub. */
enum keyring_rc keyring_ckpt_verify(const uint8_t pub[KEYRING_CKPT_KEY_BYTES], const uint8_t *msg,
                                    size_t len,
                                    const uint8_t sig[KEYRING_CKPT_SIG_BYTES]) KEYRING_WUR;

/* keyring_reseal() for the checkpoint key of pub (usersigd rewrap). */
enum keyring_rc keyring_ckpt_reseal(const struct keyring *old_kr, const struct keyring *new_kr,
                                    const uint8_t pub[KEYRING_CKPT_KEY_BYTES],
                                    const uint8_t *sealed_in, size_t in_len, uint8_t **out,
                                    size_t *out_len) KEYRING_WUR;

/* pub as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) into out (KEYRING_CKPT_PEM_BUF is enough). */
enum keyring_rc keyring_ckpt_public_pem(const uint8_t pub[KEYRING_CKPT_KEY_BYTES], char *out,
                                        size_t cap) KEYRING_WUR;

/* An Ed25519 public key given as PEM (SubjectPublicKeyInfo) or as the standard base64 of its 32
 * raw bytes (44 characters) into pub; KEYRING_BAD_INPUT for anything else. */
enum keyring_rc keyring_ckpt_public_parse(const char *text, size_t len,
                                          uint8_t pub[KEYRING_CKPT_KEY_BYTES]) KEYRING_WUR;

/* ---- Webhook signing secrets ---------------------------------------------------------------- */

#define KEYRING_WEBHOOK_SECRET_BYTES 32 /* the HMAC-SHA256 key of an endpoint's signatures */

/* A new random secret for webhook endpoint id (>= 1), and it sealed under the master key
 * (associated data "usersigd/webhook/v1" 0x00 be64(id)): *sealed as keyring_seal_key(). The
 * caller shows secret once and wipes it. */
enum keyring_rc keyring_webhook_secret_new(const struct keyring *kr, int64_t id,
                                           uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES],
                                           uint8_t **sealed, size_t *sealed_len) KEYRING_WUR;
/* Opens endpoint id's sealed secret into secret (the caller wipes it). */
enum keyring_rc
keyring_webhook_secret_open(const struct keyring *kr, int64_t id, const uint8_t *sealed,
                            size_t sealed_len,
                            uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES]) KEYRING_WUR;
/* Opens with old_kr and seals again with new_kr (usersigd rewrap). */
enum keyring_rc keyring_webhook_reseal(const struct keyring *old_kr, const struct keyring *new_kr,
                                       int64_t id, const uint8_t *sealed_in, size_t in_len,
                                       uint8_t **out, size_t *out_len) KEYRING_WUR;

#endif
