/*
 * The keyring: loads or creates the master key file, seals and opens app keys and the root secret
 * with AES-256-GCM, derives the audit and fingerprint keys from the root with HKDF-SHA256,
 * fingerprints keys and makes and parses API tokens (the checkpoint key and webhook secrets are
 * keyring_ckpt.c's). Formats and labels are server/README.md's; they are on disk and in the
 * database, so none of them may change.
 */
#include "keyring.h"
#include "keyring_int.h"
#include "usersig_int.h"
#include "hex.h"
#include "log.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Associated data: binds a sealed blob to what it is, so a row copied elsewhere does not open. */
static const char KEY_AAD_LABEL[] = "usersigd/key/v1"; /* then 0x00, be32 sdkappid, be32 version */
static const char ROOT_AAD[] = "usersigd/root/v1";
#define KEY_AAD_BYTES (sizeof KEY_AAD_LABEL + 8) /* the label's NUL is the 0x00 separator */

/* HKDF info strings. */
static const char INFO_AUDIT[] = "usersigd audit chain";
static const char INFO_FINGERPRINT[] = "usersigd key fingerprint";
static const char INFO_NOTICE[] = "usersigd process notice";

static const char TOKEN_PREFIX[] = "usg_";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char HEX[] = "0123456789abcdef";

/* Longest ecdsa PEM looked at (as the codec). */
#define MAX_PEM 16384

const char *keyring_rc_message(enum keyring_rc rc)
{
    switch (rc) {
    case KEYRING_OK:
        return "ok";
    case KEYRING_BAD_FILE:
        return "the master key file is missing, unreadable, or not 64 hex characters";
    case KEYRING_INSECURE_FILE:
        return "the master key file is readable or writable by group or other: chmod 600 it";
    case KEYRING_EXISTS:
        return "the master key file already exists; it was left as it is";
    case KEYRING_OPEN_FAILED:
        return "sealed key material does not open: wrong master key, app or version, or the "
               "bytes were altered or cut";
    case KEYRING_BAD_INPUT:
        return "bad input to the keyring: empty or oversized secret, unsupported PEM, malformed "
               "token, or the root secret is not opened yet";
    case KEYRING_NO_MEMORY:
        return "out of memory";
    case KEYRING_CRYPTO_FAILED:
        return "the cryptographic library failed";
    }
    return "unknown keyring status";
}

void keyring_free(struct keyring *kr)
{
    if (kr == NULL)
        return;
    OPENSSL_cleanse(kr, sizeof *kr);
    free(kr);
}

void keyring_secret_free(void *buf, size_t len)
{
    if (buf == NULL)
        return;
    OPENSSL_cleanse(buf, len);
    free(buf);
}

/* ---- Master key file ------------------------------------------------------------------------ */

enum keyring_rc keyring_master_load(const char *path, struct keyring **out, char *err,
                                    size_t errlen)
{
    enum keyring_rc rc = KEYRING_BAD_FILE;
    struct keyring *kr = NULL;
    char buf[80]; /* 64 hex + "\n", and room to see that a file is longer */
    size_t n = 0;
    struct stat st;
    int fd = -1;

    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        log_errbuf(err, errlen, "no master key file given");
        return KEYRING_BAD_FILE;
    }
    /* O_NONBLOCK so that a FIFO put in its place cannot hang the start; fstat refuses it. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        log_errbuf(err, errlen, "cannot open master key file %s: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) != 0) {
        log_errbuf(err, errlen, "cannot stat master key file %s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        log_errbuf(err, errlen, "master key file %s is not a regular file", path);
        goto done;
    }
    if ((st.st_mode & 077) != 0) {
        log_errbuf(err, errlen,
                   "master key file %s has mode %04o: group or other may read or write it; run "
                   "chmod 600 %s",
                   path, (unsigned)(st.st_mode & 07777), path);
        rc = KEYRING_INSECURE_FILE;
        goto done;
    }
    while (n < sizeof buf) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_errbuf(err, errlen, "cannot read master key file %s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n != 2 * KEYRING_KEY_BYTES && !(n == 2 * KEYRING_KEY_BYTES + 1 && buf[n - 1] == '\n')) {
        log_errbuf(err, errlen,
                   "master key file %s is not 64 hex characters and an optional newline (%s%zu "
                   "bytes)",
                   path, n == sizeof buf ? "over " : "", n == sizeof buf ? n - 1 : n);
        goto done;
    }
    kr = calloc(1, sizeof *kr);
    if (kr == NULL) {
        log_errbuf(err, errlen, "out of memory reading master key file %s", path);
        rc = KEYRING_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < KEYRING_KEY_BYTES; i++) {
        int hi = hex_digit_value(buf[2 * i]), lo = hex_digit_value(buf[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            log_errbuf(err, errlen,
                       "master key file %s is not 64 hex characters: it holds a character other "
                       "than 0-9, a-f, A-F",
                       path);
            goto done;
        }
        kr->master[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = kr;
    kr = NULL;
    rc = KEYRING_OK;
done:
    OPENSSL_cleanse(buf, sizeof buf);
    keyring_free(kr);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsyncs the directory holding path, so the new name survives a crash. */
static int sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    int fd, rc;

    if (slash == NULL) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

enum keyring_rc keyring_master_create(const char *path, char *err, size_t errlen)
{
    enum keyring_rc rc = KEYRING_BAD_FILE;
    uint8_t key[KEYRING_KEY_BYTES];
    char text[2 * KEYRING_KEY_BYTES + 1];
    int fd = -1, created = 0;

    if (path == NULL || path[0] == '\0') {
        log_errbuf(err, errlen, "no master key file given");
        return KEYRING_BAD_FILE;
    }
    /* O_EXCL also refuses a symlink, dangling or not, at path. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            log_errbuf(err, errlen, "master key file %s already exists; it was left as it is",
                       path);
            return KEYRING_EXISTS;
        }
        log_errbuf(err, errlen, "cannot create master key file %s: %s", path, strerror(errno));
        return KEYRING_BAD_FILE;
    }
    created = 1;
    if (RAND_priv_bytes(key, sizeof key) != 1) {
        ERR_clear_error();
        log_errbuf(err, errlen, "no random bytes for the master key");
        rc = KEYRING_CRYPTO_FAILED;
        goto done;
    }
    for (size_t i = 0; i < KEYRING_KEY_BYTES; i++) {
        text[2 * i] = HEX[key[i] >> 4];
        text[2 * i + 1] = HEX[key[i] & 15];
    }
    text[2 * KEYRING_KEY_BYTES] = '\n';
    /* The umask may only have narrowed 0600; make it exactly 0600 all the same. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, sizeof text) != 0 || fsync(fd) != 0) {
        log_errbuf(err, errlen, "cannot write master key file %s: %s", path, strerror(errno));
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        log_errbuf(err, errlen, "cannot write master key file %s: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    if (sync_parent(path) != 0) {
        log_errbuf(err, errlen, "cannot sync the directory of master key file %s: %s", path,
                   strerror(errno));
        goto done;
    }
    rc = KEYRING_OK;
done:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(text, sizeof text);
    if (fd >= 0)
        close(fd);
    if (rc != KEYRING_OK && created)
        unlink(path);
    return rc;
}

/* ---- AES-256-GCM ---------------------------------------------------------------------------- */

enum keyring_rc keyring_gcm_seal(const uint8_t key[KEYRING_KEY_BYTES], const uint8_t *aad,
                                 size_t aad_len, const uint8_t *pt, size_t len, uint8_t **out,
                                 size_t *out_len)
{
    enum keyring_rc rc = KEYRING_CRYPTO_FAILED;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    int n = 0, fin = 0;

    if (pt == NULL || len == 0 || len > KEYRING_MAX_SECRET)
        return KEYRING_BAD_INPUT;
    buf = malloc(len + KEYRING_SEAL_OVERHEAD);
    ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || ctx == NULL) {
        rc = KEYRING_NO_MEMORY;
        goto done;
    }
    /* A random 96-bit nonce per seal: a key is sealed a handful of times in its life, far from
     * the 2^32 seals under one master key where random nonces become a risk. */
    if (RAND_bytes(buf, KEYRING_NONCE_BYTES) != 1)
        goto done;
    if (EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key, buf, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(ctx, buf + KEYRING_NONCE_BYTES, &n, pt, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + KEYRING_NONCE_BYTES + n, &fin) != 1 ||
        (size_t)(n + fin) != len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, KEYRING_TAG_BYTES,
                            buf + KEYRING_NONCE_BYTES + len) != 1)
        goto done;
    *out = buf;
    *out_len = len + KEYRING_SEAL_OVERHEAD;
    buf = NULL;
    rc = KEYRING_OK;
done:
    if (rc != KEYRING_OK)
        ERR_clear_error();
    free(buf);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

enum keyring_rc keyring_gcm_unseal(const uint8_t key[KEYRING_KEY_BYTES], const uint8_t *aad,
                                   size_t aad_len, const uint8_t *sealed, size_t sealed_len,
                                   uint8_t **out, size_t *out_len)
{
    enum keyring_rc rc = KEYRING_OPEN_FAILED;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    size_t len;
    int n = 0, fin = 0;

    if (sealed == NULL || sealed_len <= KEYRING_SEAL_OVERHEAD ||
        sealed_len > KEYRING_MAX_SECRET + KEYRING_SEAL_OVERHEAD)
        return KEYRING_OPEN_FAILED;
    len = sealed_len - KEYRING_SEAL_OVERHEAD;
    buf = malloc(len + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || ctx == NULL) {
        rc = KEYRING_NO_MEMORY;
        goto done;
    }
    if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key, sealed, NULL) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(ctx, buf, &n, sealed + KEYRING_NONCE_BYTES, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, KEYRING_TAG_BYTES,
                            (void *)(sealed + KEYRING_NONCE_BYTES + len)) != 1) {
        rc = KEYRING_CRYPTO_FAILED;
        goto done;
    }
    /* The tag is checked here; until it passes, buf holds unauthenticated bytes. */
    if (EVP_DecryptFinal_ex(ctx, buf + n, &fin) != 1 || (size_t)(n + fin) != len)
        goto done;
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = KEYRING_OK;
done:
    if (rc != KEYRING_OK)
        ERR_clear_error();
    if (buf != NULL)
        keyring_secret_free(buf, len + 1);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

static void key_aad(uint8_t aad[KEY_AAD_BYTES], uint32_t sdkappid, uint32_t version)
{
    uint8_t *p = aad + sizeof KEY_AAD_LABEL;
    memcpy(aad, KEY_AAD_LABEL, sizeof KEY_AAD_LABEL); /* with its NUL: the 0x00 */
    p[0] = (uint8_t)(sdkappid >> 24);
    p[1] = (uint8_t)(sdkappid >> 16);
    p[2] = (uint8_t)(sdkappid >> 8);
    p[3] = (uint8_t)sdkappid;
    p[4] = (uint8_t)(version >> 24);
    p[5] = (uint8_t)(version >> 16);
    p[6] = (uint8_t)(version >> 8);
    p[7] = (uint8_t)version;
}

enum keyring_rc keyring_seal_key(const struct keyring *kr, uint32_t sdkappid, uint32_t version,
                                 const uint8_t *plaintext, size_t len, uint8_t **out,
                                 size_t *out_len)
{
    uint8_t aad[KEY_AAD_BYTES];
    *out = NULL;
    *out_len = 0;
    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    key_aad(aad, sdkappid, version);
    return keyring_gcm_seal(kr->master, aad, sizeof aad, plaintext, len, out, out_len);
}

enum keyring_rc keyring_open_key(const struct keyring *kr, uint32_t sdkappid, uint32_t version,
                                 const uint8_t *sealed, size_t sealed_len, uint8_t **out,
                                 size_t *out_len)
{
    uint8_t aad[KEY_AAD_BYTES];
    *out = NULL;
    *out_len = 0;
    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    key_aad(aad, sdkappid, version);
    return keyring_gcm_unseal(kr->master, aad, sizeof aad, sealed, sealed_len, out, out_len);
}

enum keyring_rc keyring_reseal(const struct keyring *old_kr, const struct keyring *new_kr,
                               uint32_t sdkappid, uint32_t version, const uint8_t *sealed_in,
                               size_t in_len, uint8_t **out, size_t *out_len)
{
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    enum keyring_rc rc;

    *out = NULL;
    *out_len = 0;
    if (new_kr == NULL)
        return KEYRING_BAD_INPUT;
    rc = keyring_open_key(old_kr, sdkappid, version, sealed_in, in_len, &pt, &pt_len);
    if (rc == KEYRING_OK)
        rc = keyring_seal_key(new_kr, sdkappid, version, pt, pt_len, out, out_len);
    keyring_secret_free(pt, pt_len);
    return rc;
}

/* ---- Root secret ---------------------------------------------------------------------------- */

static enum keyring_rc hkdf_sha256(const uint8_t ikm[KEYRING_KEY_BYTES], const char *info,
                                   uint8_t out[KEYRING_KEY_BYTES])
{
    enum keyring_rc rc = KEYRING_CRYPTO_FAILED;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];

    /* No salt parameter: HKDF then salts with HashLen zero bytes, which as an HMAC key is the
     * same as the empty salt (RFC 5869 2.2). */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, KEYRING_KEY_BYTES);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[3] = OSSL_PARAM_construct_end();
    if (ctx != NULL && EVP_KDF_derive(ctx, out, KEYRING_KEY_BYTES, params) == 1)
        rc = KEYRING_OK;
    else
        ERR_clear_error();
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

enum keyring_rc keyring_root_create(const struct keyring *kr, uint8_t **out, size_t *out_len)
{
    uint8_t root[KEYRING_KEY_BYTES];
    enum keyring_rc rc;

    *out = NULL;
    *out_len = 0;
    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    if (RAND_priv_bytes(root, sizeof root) != 1) {
        ERR_clear_error();
        return KEYRING_CRYPTO_FAILED;
    }
    rc = keyring_gcm_seal(kr->master, (const uint8_t *)ROOT_AAD, strlen(ROOT_AAD), root,
                          sizeof root, out, out_len);
    OPENSSL_cleanse(root, sizeof root);
    return rc;
}

static enum keyring_rc root_unseal(const struct keyring *kr, const uint8_t *sealed,
                                   size_t sealed_len, uint8_t **root)
{
    size_t len = 0;
    enum keyring_rc rc = keyring_gcm_unseal(kr->master, (const uint8_t *)ROOT_AAD, strlen(ROOT_AAD),
                                            sealed, sealed_len, root, &len);
    if (rc == KEYRING_OK && len != KEYRING_KEY_BYTES) {
        keyring_secret_free(*root, len);
        *root = NULL;
        rc = KEYRING_OPEN_FAILED;
    }
    return rc;
}

enum keyring_rc keyring_root_open(struct keyring *kr, const uint8_t *sealed, size_t sealed_len)
{
    uint8_t *root = NULL;
    uint8_t audit[KEYRING_KEY_BYTES], fingerprint[KEYRING_KEY_BYTES], notice[KEYRING_KEY_BYTES];
    enum keyring_rc rc;

    if (kr == NULL)
        return KEYRING_BAD_INPUT;
    rc = root_unseal(kr, sealed, sealed_len, &root);
    if (rc != KEYRING_OK)
        return rc;
    rc = hkdf_sha256(root, INFO_AUDIT, audit);
    if (rc == KEYRING_OK)
        rc = hkdf_sha256(root, INFO_FINGERPRINT, fingerprint);
    if (rc == KEYRING_OK)
        rc = hkdf_sha256(root, INFO_NOTICE, notice);
    if (rc == KEYRING_OK) {
        memcpy(kr->audit_key, audit, sizeof audit);
        memcpy(kr->fingerprint_key, fingerprint, sizeof fingerprint);
        memcpy(kr->notice_key, notice, sizeof notice);
        kr->has_root = 1;
    }
    keyring_secret_free(root, KEYRING_KEY_BYTES);
    OPENSSL_cleanse(audit, sizeof audit);
    OPENSSL_cleanse(fingerprint, sizeof fingerprint);
    OPENSSL_cleanse(notice, sizeof notice);
    return rc;
}

enum keyring_rc keyring_reseal_root(const struct keyring *old_kr, const struct keyring *new_kr,
                                    const uint8_t *sealed_in, size_t in_len, uint8_t **out,
                                    size_t *out_len)
{
    uint8_t *root = NULL;
    enum keyring_rc rc;

    *out = NULL;
    *out_len = 0;
    if (old_kr == NULL || new_kr == NULL)
        return KEYRING_BAD_INPUT;
    rc = root_unseal(old_kr, sealed_in, in_len, &root);
    if (rc == KEYRING_OK)
        rc = keyring_gcm_seal(new_kr->master, (const uint8_t *)ROOT_AAD, strlen(ROOT_AAD), root,
                              KEYRING_KEY_BYTES, out, out_len);
    keyring_secret_free(root, KEYRING_KEY_BYTES);
    return rc;
}

int keyring_has_root(const struct keyring *kr)
{
    return kr != NULL && kr->has_root;
}

const uint8_t *keyring_audit_key(const struct keyring *kr)
{
    return keyring_has_root(kr) ? kr->audit_key : NULL;
}

/* ---- Fingerprints --------------------------------------------------------------------------- */

enum keyring_rc keyring_fingerprint_hmac(const struct keyring *kr, const uint8_t *secret,
                                         size_t len, uint8_t out[KEYRING_FP_BYTES])
{
    unsigned int n = 0;
    if (!keyring_has_root(kr) || secret == NULL || len == 0 || len > KEYRING_MAX_SECRET)
        return KEYRING_BAD_INPUT;
    if (HMAC(EVP_sha256(), kr->fingerprint_key, KEYRING_KEY_BYTES, secret, len, out, &n) == NULL ||
        n != KEYRING_FP_BYTES) {
        ERR_clear_error();
        return KEYRING_CRYPTO_FAILED;
    }
    return KEYRING_OK;
}

enum keyring_rc keyring_notice_mac(const struct keyring *kr, const char *msg, size_t len,
                                   uint8_t out[KEYRING_FP_BYTES])
{
    unsigned int n = 0;
    if (!keyring_has_root(kr) || msg == NULL)
        return KEYRING_BAD_INPUT;
    if (HMAC(EVP_sha256(), kr->notice_key, KEYRING_KEY_BYTES, (const uint8_t *)msg, len, out, &n) ==
            NULL ||
        n != KEYRING_FP_BYTES) {
        ERR_clear_error();
        return KEYRING_CRYPTO_FAILED;
    }
    return KEYRING_OK;
}

/* A PEM encrypted with a passphrase is refused rather than prompted for on a terminal. */
int keyring_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

enum keyring_rc keyring_fingerprint_ecdsa(const char *pem, size_t len,
                                          uint8_t out[KEYRING_FP_BYTES])
{
    enum keyring_rc rc = KEYRING_BAD_INPUT;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    unsigned char *der = NULL;
    int der_len;

    if (pem == NULL || len == 0 || len > MAX_PEM)
        return KEYRING_BAD_INPUT;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        rc = KEYRING_NO_MEMORY;
        goto done;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, keyring_no_passphrase, NULL);
    if (pkey == NULL) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)len);
        if (bio == NULL) {
            rc = KEYRING_NO_MEMORY;
            goto done;
        }
        pkey = PEM_read_bio_PUBKEY(bio, NULL, keyring_no_passphrase, NULL);
    }
    if (pkey == NULL || !usersig_curve_supported(pkey))
        goto done;
    /* One key has several SPKI encodings (compressed point, explicit curve parameters); the
     * UNIQUE index on fingerprints must see them as one key. */
    if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1 ||
        EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING,
                                       OSSL_PKEY_EC_ENCODING_GROUP) != 1) {
        rc = KEYRING_CRYPTO_FAILED;
        goto done;
    }
    der_len = i2d_PUBKEY(pkey, &der);
    if (der_len <= 0) {
        rc = KEYRING_CRYPTO_FAILED;
        goto done;
    }
    if (SHA256(der, (size_t)der_len, out) == NULL) {
        rc = KEYRING_CRYPTO_FAILED;
        goto done;
    }
    rc = KEYRING_OK;
done:
    ERR_clear_error();
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

const char *keyring_fingerprint_short(const uint8_t fp[KEYRING_FP_BYTES],
                                      char out[KEYRING_FP_SHORT_BUF])
{
    for (size_t i = 0; i < 8; i++) {
        out[2 * i] = HEX[fp[i] >> 4];
        out[2 * i + 1] = HEX[fp[i] & 15];
    }
    out[16] = '\0';
    return out;
}

/* ---- API tokens ----------------------------------------------------------------------------- */

/* base64url without padding of n bytes into out (4n/3 rounded up characters, no NUL). */
static void b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
        out[o++] = B64URL[v >> 6 & 63];
        out[o++] = B64URL[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
        out[o++] = B64URL[v >> 6 & 63];
    }
}

static int b64url_value(char c)
{
    const char *p = c != '\0' ? strchr(B64URL, c) : NULL;
    return p != NULL ? (int)(p - B64URL) : -1;
}

enum keyring_rc keyring_token_new(int64_t id, char *out, size_t cap,
                                  uint8_t out_hash[KEYRING_FP_BYTES])
{
    uint8_t raw[32];
    int n;

    if (out == NULL || id <= 0)
        return KEYRING_BAD_INPUT;
    n = snprintf(out, cap, "%s%" PRId64 "_", TOKEN_PREFIX, id);
    if (n < 0 || (size_t)n + KEYRING_TOKEN_SECRET_CHARS + 1 > cap) {
        if (cap > 0)
            out[0] = '\0';
        return KEYRING_BAD_INPUT;
    }
    if (RAND_priv_bytes(raw, sizeof raw) != 1) {
        ERR_clear_error();
        out[0] = '\0';
        return KEYRING_CRYPTO_FAILED;
    }
    b64url_encode(raw, sizeof raw, out + n);
    OPENSSL_cleanse(raw, sizeof raw);
    out[n + KEYRING_TOKEN_SECRET_CHARS] = '\0';
    if (SHA256((const unsigned char *)out + n, KEYRING_TOKEN_SECRET_CHARS, out_hash) == NULL) {
        OPENSSL_cleanse(out, (size_t)n + KEYRING_TOKEN_SECRET_CHARS);
        out[0] = '\0';
        return KEYRING_CRYPTO_FAILED;
    }
    return KEYRING_OK;
}

enum keyring_rc keyring_token_parse(const char *token, int64_t *id, uint8_t hash[KEYRING_FP_BYTES])
{
    const size_t prefix = sizeof TOKEN_PREFIX - 1;
    const char *p, *secret;
    int64_t v = 0;
    size_t digits = 0;

    if (token == NULL || strnlen(token, KEYRING_TOKEN_MAX + 1) > KEYRING_TOKEN_MAX ||
        strncmp(token, TOKEN_PREFIX, prefix) != 0)
        return KEYRING_BAD_INPUT;
    p = token + prefix;
    if (*p < '1' || *p > '9') /* no sign, no leading zero, not empty */
        return KEYRING_BAD_INPUT;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        int d = *p - '0';
        if (digits >= 19 || v > (INT64_MAX - d) / 10)
            return KEYRING_BAD_INPUT;
        v = v * 10 + d;
    }
    if (*p != '_')
        return KEYRING_BAD_INPUT;
    secret = p + 1;
    for (size_t i = 0; i < KEYRING_TOKEN_SECRET_CHARS; i++)
        if (b64url_value(secret[i]) < 0)
            return KEYRING_BAD_INPUT;
    /* The last character carries 4 bits of the 32 bytes and 2 zero bits: only the spelling
     * keyring_token_new() makes is a token. */
    if (secret[KEYRING_TOKEN_SECRET_CHARS] != '\0' ||
        (b64url_value(secret[KEYRING_TOKEN_SECRET_CHARS - 1]) & 3) != 0)
        return KEYRING_BAD_INPUT;
    usersig_sha256(secret, KEYRING_TOKEN_SECRET_CHARS, hash);
    *id = v;
    return KEYRING_OK;
}

int keyring_token_check(const uint8_t a[KEYRING_FP_BYTES], const uint8_t b[KEYRING_FP_BYTES])
{
    return CRYPTO_memcmp(a, b, KEYRING_FP_BYTES) == 0;
}
