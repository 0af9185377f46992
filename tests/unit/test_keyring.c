/*
 * Keyring unit tests, the part that needs a master key: the master key file (creation, mode,
 * refusals), sealing and what must not open, the root secret and its derived keys (checked
 * against an independent AES-GCM and HKDF computed here), the HMAC fingerprint keyed by the root,
 * rewrap, and the status messages. ECDSA fingerprints and API tokens: test_keyring_ids.c.
 */
#include "keyring.h"
#include "testlib.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *path, const char *content, size_t len, mode_t mode)
{
    FILE *f;
    unlink(path);
    f = fopen(path, "w");
    if (f == NULL || fwrite(content, 1, len, f) != len || fclose(f) != 0 || chmod(path, mode) != 0)
        abort();
}

/* Creates and loads a new master key file; *path_out (may be NULL) gets its path. */
static struct keyring *new_master_at(const char *name, const char **path_out)
{
    const char *path = test_tmp_path(name);
    struct keyring *kr = NULL;
    char err[256];
    if (keyring_master_create(path, err, sizeof err) != KEYRING_OK ||
        keyring_master_load(path, &kr, err, sizeof err) != KEYRING_OK) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    if (path_out != NULL)
        *path_out = path;
    return kr;
}

static struct keyring *new_master(const char *name)
{
    return new_master_at(name, NULL);
}

/* The master key as the file holds it, decoded here rather than by the keyring. */
static void master_bytes(const char *path, uint8_t key[32])
{
    char hex[80];
    if (test_read_file(path, hex, sizeof hex) != 65)
        abort();
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            abort();
        key[i] = (uint8_t)v;
    }
}

/* AES-256-GCM open of nonce||ct||tag, done here as README.md describes it. Returns the plaintext
 * length or -1. */
static long gcm_open(const uint8_t key[32], const uint8_t *aad, size_t aad_len,
                     const uint8_t *sealed, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, ok;
    if (ctx == NULL || n < 28)
        abort();
    ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
         EVP_DecryptInit_ex(ctx, NULL, NULL, key, sealed) == 1 &&
         EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len) == 1 &&
         EVP_DecryptUpdate(ctx, out, &len, sealed + 12, (int)(n - 28)) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(sealed + n - 16)) == 1 &&
         EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? len + fin : -1;
}

/* HKDF-SHA256 with an empty salt and a 32-byte output, from RFC 5869 with HMAC alone. */
static void hkdf_by_hand(const uint8_t ikm[32], const char *info, uint8_t out[32])
{
    uint8_t prk[32], msg[128];
    unsigned n;
    size_t info_len = strlen(info);
    HMAC(EVP_sha256(), "", 0, ikm, 32, prk, &n);
    memcpy(msg, info, info_len);
    msg[info_len] = 1;
    HMAC(EVP_sha256(), prk, 32, msg, info_len + 1, out, &n);
}

/* ---- Master key file ------------------------------------------------------------------------ */

static void test_master_create(void)
{
    const char *path = test_tmp_path("created.key");
    char err[256] = "", before[128], after[128];
    struct stat st;
    mode_t old;
    long n;

    /* Exactly 0600 whatever the umask: 0277 would make open() give 0400. */
    old = umask(0277);
    CHECK(keyring_master_create(path, err, sizeof err) == KEYRING_OK, "create: %s", err);
    umask(old);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "mode is %o",
          (unsigned)(st.st_mode & 07777));
    n = test_read_file(path, before, sizeof before);
    CHECK(n == 65 && before[64] == '\n', "64 hex + newline, got %ld bytes", n);
    CHECK(strspn(before, "0123456789abcdef") == 64, "lower-case hex");

    CHECK(keyring_master_create(path, err, sizeof err) == KEYRING_EXISTS, "second create");
    CHECK(strstr(err, path) != NULL && strstr(err, "already exists") != NULL, "message: %s", err);
    test_read_file(path, after, sizeof after);
    CHECK(strcmp(before, after) == 0, "existing file left alone");

    /* A dangling symlink is not followed. */
    const char *link = test_tmp_path("dangling.key"), *target = test_tmp_path("nowhere.key");
    CHECK(symlink(target, link) == 0, "symlink");
    CHECK(keyring_master_create(link, err, sizeof err) == KEYRING_EXISTS, "dangling symlink");
    CHECK(access(target, F_OK) != 0, "symlink target not created");

    const char *nodir = test_tmp_path("no/such/dir.key");
    CHECK(keyring_master_create(nodir, err, sizeof err) == KEYRING_BAD_FILE, "missing dir");
    CHECK(strstr(err, nodir) != NULL, "names the path: %s", err);
    CHECK(keyring_master_create("", err, sizeof err) == KEYRING_BAD_FILE, "empty path");

    /* Two creations give two different keys. */
    const char *other = test_tmp_path("created2.key");
    CHECK(keyring_master_create(other, err, sizeof err) == KEYRING_OK, "create 2");
    test_read_file(other, after, sizeof after);
    CHECK(strcmp(before, after) != 0, "fresh random key");
}

static void test_master_load_modes(void)
{
    static const struct {
        mode_t mode;
        enum keyring_rc want;
    } cases[] = {
        {0600, KEYRING_OK},
        {0400, KEYRING_OK},
        {0644, KEYRING_INSECURE_FILE},
        {0640, KEYRING_INSECURE_FILE},
        {0620, KEYRING_INSECURE_FILE},
        {0604, KEYRING_INSECURE_FILE},
        {0602, KEYRING_INSECURE_FILE},
        {0610, KEYRING_INSECURE_FILE},
        {0666, KEYRING_INSECURE_FILE},
        {0700, KEYRING_OK},
    };
    const char *path = test_tmp_path("modes.key");
    const char *content = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct keyring *kr = (struct keyring *)1;
        char err[256] = "", want_msg[200];
        enum keyring_rc rc;
        write_file(path, content, strlen(content), cases[i].mode);
        rc = keyring_master_load(path, &kr, err, sizeof err);
        CHECK(rc == cases[i].want, "mode %o: rc %d", (unsigned)cases[i].mode, rc);
        if (cases[i].want == KEYRING_OK) {
            CHECK(kr != NULL, "mode %o: keyring", (unsigned)cases[i].mode);
        } else {
            snprintf(want_msg, sizeof want_msg, "chmod 600 %s", path);
            CHECK(kr == NULL, "mode %o: no keyring", (unsigned)cases[i].mode);
            CHECK(strstr(err, want_msg) != NULL, "mode %o: message: %s", (unsigned)cases[i].mode,
                  err);
            CHECK(strstr(err, "00112233") == NULL, "no content in message");
        }
        keyring_free(kr == (struct keyring *)1 ? NULL : kr);
    }
}

static void test_master_load_content(void)
{
    static const char H64[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    static const char U64[] = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
    char buf[300];
    static const struct {
        const char *name;
        const char *content;
        enum keyring_rc want;
    } cases[] = {
        {"64 hex", H64, KEYRING_OK},
        {"upper case", U64, KEYRING_OK},
        {"empty", "", KEYRING_BAD_FILE},
        {"newline only", "\n", KEYRING_BAD_FILE},
        {"63 hex", H64 + 1, KEYRING_BAD_FILE},
        {"short", "deadbeef\n", KEYRING_BAD_FILE},
        {"non-hex", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
         KEYRING_BAD_FILE},
        {"space inside", "0123456789abcdef0123456789abcdef 123456789abcdef0123456789abcdef",
         KEYRING_BAD_FILE},
    };
    const char *path = test_tmp_path("content.key");

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct keyring *kr = NULL;
        char err[256] = "";
        write_file(path, cases[i].content, strlen(cases[i].content), 0600);
        CHECK(keyring_master_load(path, &kr, err, sizeof err) == cases[i].want, "%s",
              cases[i].name);
        CHECK((kr != NULL) == (cases[i].want == KEYRING_OK), "%s: keyring", cases[i].name);
        if (cases[i].want != KEYRING_OK) {
            CHECK(strstr(err, path) != NULL, "%s: names the path: %s", cases[i].name, err);
            CHECK(strstr(err, "0123456789") == NULL && strstr(err, "deadbeef") == NULL,
                  "%s: no content in: %s", cases[i].name, err);
        }
        keyring_free(kr);
    }

    /* Suffixes after 64 good hex characters: only one "\n" is allowed. */
    static const char *const tails[] = {"\n", "\n\n", " ", "\r\n", "0", "\n0", "00"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        struct keyring *kr = NULL;
        char err[256] = "";
        enum keyring_rc want = i == 0 ? KEYRING_OK : KEYRING_BAD_FILE;
        snprintf(buf, sizeof buf, "%s%s", H64, tails[i]);
        write_file(path, buf, strlen(buf), 0600);
        CHECK(keyring_master_load(path, &kr, err, sizeof err) == want, "tail %zu", i);
        keyring_free(kr);
    }
    /* Much longer than a key. */
    {
        struct keyring *kr = NULL;
        char err[256] = "";
        snprintf(buf, sizeof buf, "%s%s%s\n", H64, H64, H64);
        write_file(path, buf, strlen(buf), 0600);
        CHECK(keyring_master_load(path, &kr, err, sizeof err) == KEYRING_BAD_FILE, "192 hex");
        CHECK(strstr(err, "0123456789") == NULL, "no content: %s", err);
    }

    /* Upper and lower case spell the same key: what one seals the other opens. */
    {
        struct keyring *lo = NULL, *up = NULL;
        uint8_t *sealed = NULL, *pt = NULL;
        size_t sealed_len = 0, pt_len = 0;
        char err[256];
        write_file(path, H64, 64, 0600);
        CHECK(keyring_master_load(path, &lo, err, sizeof err) == KEYRING_OK, "lower");
        write_file(path, U64, 64, 0600);
        CHECK(keyring_master_load(path, &up, err, sizeof err) == KEYRING_OK, "upper");
        CHECK(keyring_seal_key(lo, 1, 1, (const uint8_t *)"s", 1, &sealed, &sealed_len) ==
                  KEYRING_OK,
              "seal");
        CHECK(keyring_open_key(up, 1, 1, sealed, sealed_len, &pt, &pt_len) == KEYRING_OK,
              "open with the same key in upper case");
        keyring_secret_free(pt, pt_len);
        free(sealed);
        keyring_free(lo);
        keyring_free(up);
    }

    /* Not there, a directory, no path. */
    {
        struct keyring *kr = NULL;
        char err[256] = "";
        const char *missing = test_tmp_path("missing.key");
        CHECK(keyring_master_load(missing, &kr, err, sizeof err) == KEYRING_BAD_FILE, "missing");
        CHECK(strstr(err, missing) != NULL, "names the path: %s", err);
        CHECK(keyring_master_load(test_tmp_dir(), &kr, err, sizeof err) == KEYRING_BAD_FILE &&
                  kr == NULL,
              "directory refused: %s", err);
        CHECK(keyring_master_load("", &kr, err, sizeof err) == KEYRING_BAD_FILE, "empty path");
        CHECK(keyring_master_load(missing, &kr, NULL, 0) == KEYRING_BAD_FILE, "NULL err");
    }
}

/* ---- Sealing -------------------------------------------------------------------------------- */

static const uint32_t APP = 1400000000, VER = 3;

static void test_seal_round_trip(void)
{
    const char *path;
    struct keyring *kr = new_master_at("seal.key", &path);
    const char *pem = "-----BEGIN EC PRIVATE KEY-----\nMHQCAQEEIK...\n-----END EC PRIVATE "
                      "KEY-----\n";
    static uint8_t big[KEYRING_MAX_SECRET + 1];
    uint8_t master[32], check[KEYRING_MAX_SECRET];
    struct {
        const uint8_t *p;
        size_t len;
    } cases[] = {
        {(const uint8_t *)"x", 1},
        {(const uint8_t *)"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e", 64},
        {(const uint8_t *)pem, strlen(pem)},
        {big, KEYRING_MAX_SECRET},
    };
    /* The associated data as README.md spells it. */
    const uint8_t aad[24] = {'u', 's', 'e', 'r', 's',  'i',  'g',  'd',  '/', 'k', 'e', 'y',
                             '/', 'v', '1', 0,   0x53, 0x72, 0x4e, 0x00, 0,   0,   0,   3};

    master_bytes(path, master);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *sealed = NULL, *sealed2 = NULL, *pt = NULL;
        size_t sealed_len = 0, sealed2_len = 0, pt_len = 0;
        CHECK(keyring_seal_key(kr, APP, VER, cases[i].p, cases[i].len, &sealed, &sealed_len) ==
                  KEYRING_OK,
              "case %zu: seal", i);
        CHECK(sealed_len == cases[i].len + KEYRING_SEAL_OVERHEAD, "case %zu: length", i);
        CHECK(keyring_open_key(kr, APP, VER, sealed, sealed_len, &pt, &pt_len) == KEYRING_OK,
              "case %zu: open", i);
        CHECK(pt_len == cases[i].len && pt != NULL && memcmp(pt, cases[i].p, pt_len) == 0 &&
                  pt[pt_len] == '\0',
              "case %zu: same bytes, NUL after", i);
        /* The format, checked with an AES-GCM of our own. */
        CHECK(gcm_open(master, aad, sizeof aad, sealed, sealed_len, check) == (long)cases[i].len &&
                  memcmp(check, cases[i].p, cases[i].len) == 0,
              "case %zu: nonce||ct||tag under README's associated data", i);
        /* A fresh nonce each time. */
        CHECK(keyring_seal_key(kr, APP, VER, cases[i].p, cases[i].len, &sealed2, &sealed2_len) ==
                      KEYRING_OK &&
                  sealed2_len == sealed_len && memcmp(sealed, sealed2, 12) != 0 &&
                  memcmp(sealed, sealed2, sealed_len) != 0,
              "case %zu: two seals differ", i);
        keyring_secret_free(pt, pt_len);
        free(sealed);
        free(sealed2);
    }

    /* Bounds. */
    {
        uint8_t *sealed = (uint8_t *)1;
        size_t n = 99;
        CHECK(keyring_seal_key(kr, APP, VER, big, 0, &sealed, &n) == KEYRING_BAD_INPUT &&
                  sealed == NULL && n == 0,
              "empty plaintext");
        CHECK(keyring_seal_key(kr, APP, VER, big, sizeof big, &sealed, &n) == KEYRING_BAD_INPUT,
              "oversized plaintext");
        CHECK(keyring_seal_key(kr, APP, VER, NULL, 5, &sealed, &n) == KEYRING_BAD_INPUT, "NULL");
        CHECK(keyring_seal_key(NULL, APP, VER, big, 5, &sealed, &n) == KEYRING_BAD_INPUT,
              "no keyring");
    }
    keyring_secret_free(NULL, 10); /* accepted */
    keyring_free(NULL);
    keyring_free(kr);
}

static void expect_no_open(const struct keyring *kr, uint32_t app, uint32_t ver,
                           const uint8_t *sealed, size_t n, const char *what)
{
    uint8_t *pt = (uint8_t *)1;
    size_t pt_len = 99;
    enum keyring_rc rc = keyring_open_key(kr, app, ver, sealed, n, &pt, &pt_len);
    CHECK(rc == KEYRING_OPEN_FAILED, "%s: rc %d", what, rc);
    CHECK(pt == NULL && pt_len == 0, "%s: nothing returned", what);
    if (rc == KEYRING_OK)
        keyring_secret_free(pt, pt_len);
}

static void test_open_failures(void)
{
    struct keyring *kr = new_master("open.key"), *other = new_master("open-other.key");
    const uint8_t secret[] = "an app secret of some length";
    uint8_t *sealed = NULL, copy[128];
    size_t n = 0;
    char what[64];

    if (keyring_seal_key(kr, APP, VER, secret, sizeof secret - 1, &sealed, &n) != KEYRING_OK)
        abort();

    /* Associated data: another app, version, or the two swapped; another master key. */
    static const struct {
        uint32_t app, ver;
        const char *name;
    } aad[] = {
        {APP + 1, VER, "sdkappid + 1"}, {APP, VER + 1, "version + 1"},
        {APP, 0, "version 0"},          {VER, APP, "swapped"},
        {0, VER, "sdkappid 0"},         {APP ^ 0x80000000u, VER, "high bit of sdkappid"},
    };
    for (size_t i = 0; i < sizeof aad / sizeof aad[0]; i++)
        expect_no_open(kr, aad[i].app, aad[i].ver, sealed, n, aad[i].name);
    expect_no_open(other, APP, VER, sealed, n, "other master key");

    /* Every byte flipped in turn: nonce, ciphertext and tag. */
    for (size_t i = 0; i < n; i++) {
        memcpy(copy, sealed, n);
        copy[i] ^= 0x01;
        snprintf(what, sizeof what, "bit flipped in byte %zu (%s)", i,
                 i < 12       ? "nonce"
                 : i < n - 16 ? "ciphertext"
                              : "tag");
        expect_no_open(kr, APP, VER, copy, n, what);
    }

    /* Truncated and extended. */
    static const size_t cuts[] = {0, 1, 11, 12, 27, 28};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(what, sizeof what, "truncated to %zu bytes", cuts[i]);
        expect_no_open(kr, APP, VER, sealed, cuts[i], what);
    }
    expect_no_open(kr, APP, VER, sealed, n - 1, "last byte cut");
    expect_no_open(kr, APP, VER, sealed + 1, n - 1, "first byte cut");
    memcpy(copy, sealed, n);
    copy[n] = 0;
    expect_no_open(kr, APP, VER, copy, n + 1, "byte appended");
    expect_no_open(kr, APP, VER, NULL, n, "NULL");

    /* The original still opens after all that. */
    {
        uint8_t *pt = NULL;
        size_t pt_len = 0;
        CHECK(keyring_open_key(kr, APP, VER, sealed, n, &pt, &pt_len) == KEYRING_OK &&
                  pt_len == sizeof secret - 1,
              "original opens");
        keyring_secret_free(pt, pt_len);
    }
    free(sealed);
    keyring_free(kr);
    keyring_free(other);
}

/* ---- Root secret ---------------------------------------------------------------------------- */

static uint8_t *make_root(const struct keyring *kr, size_t *n)
{
    uint8_t *sealed = NULL;
    if (keyring_root_create(kr, &sealed, n) != KEYRING_OK)
        abort();
    return sealed;
}

static void test_root(void)
{
    const char *kr_path;
    struct keyring *kr = new_master_at("root.key", &kr_path);
    struct keyring *again = NULL, *other = new_master("root-other.key");
    uint8_t master[32], root[64], want_audit[32], want_fp_key[32], want_fp[32], fp[32];
    uint8_t audit1[32], *sealed1, *sealed2, *pt = NULL;
    size_t n1, n2, pt_len = 0;
    char err[256];
    const uint8_t secret[] = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

    CHECK(!keyring_has_root(kr) && keyring_audit_key(kr) == NULL, "no root yet");
    CHECK(keyring_fingerprint_hmac(kr, secret, 64, fp) == KEYRING_BAD_INPUT,
          "no fingerprint before the root");
    CHECK(keyring_notice_mac(kr, "x", 1, fp) == KEYRING_BAD_INPUT, "no notice MAC before the root");
    sealed1 = make_root(kr, &n1);
    sealed2 = make_root(kr, &n2);
    CHECK(n1 == 32 + KEYRING_SEAL_OVERHEAD && n2 == n1, "sealed root is 60 bytes");
    CHECK(!keyring_has_root(kr), "root_create leaves the keyring alone");

    /* The same sealed root opened twice (two processes) derives the same keys. */
    CHECK(keyring_root_open(kr, sealed1, n1) == KEYRING_OK, "open root");
    CHECK(keyring_has_root(kr) && keyring_audit_key(kr) != NULL, "has root");
    memcpy(audit1, keyring_audit_key(kr), 32);
    CHECK(keyring_master_load(kr_path, &again, err, sizeof err) == KEYRING_OK, "reload");
    CHECK(keyring_root_open(again, sealed1, n1) == KEYRING_OK, "open root again");
    CHECK(memcmp(keyring_audit_key(again), audit1, 32) == 0, "same audit key");

    /* Against an independent computation: AES-GCM under "usersigd/root/v1", then HKDF. */
    master_bytes(kr_path, master);
    CHECK(gcm_open(master, (const uint8_t *)"usersigd/root/v1", 16, sealed1, n1, root) == 32,
          "root opens under README's associated data");
    hkdf_by_hand(root, "usersigd audit chain", want_audit);
    hkdf_by_hand(root, "usersigd key fingerprint", want_fp_key);
    CHECK(memcmp(audit1, want_audit, 32) == 0, "audit key = HKDF(root, \"usersigd audit chain\")");
    HMAC(EVP_sha256(), want_fp_key, 32, secret, 64, want_fp, NULL);
    CHECK(keyring_fingerprint_hmac(kr, secret, 64, fp) == KEYRING_OK &&
              memcmp(fp, want_fp, 32) == 0,
          "fingerprint = HMAC(HKDF(root, \"usersigd key fingerprint\"), secret)");
    CHECK(memcmp(want_audit, want_fp_key, 32) != 0, "two distinct derived keys");
    uint8_t want_notice_key[32], want_notice[32], notice[32];
    hkdf_by_hand(root, "usersigd process notice", want_notice_key);
    HMAC(EVP_sha256(), want_notice_key, 32, secret, 64, want_notice, NULL);
    CHECK(keyring_notice_mac(kr, (const char *)secret, 64, notice) == KEYRING_OK &&
              memcmp(notice, want_notice, 32) == 0,
          "notice MAC = HMAC(HKDF(root, \"usersigd process notice\"), msg)");

    /* A different root, different keys; a failed open keeps the keys in place. */
    CHECK(keyring_root_open(again, sealed2, n2) == KEYRING_OK, "open second root");
    CHECK(memcmp(keyring_audit_key(again), audit1, 32) != 0, "another root, another audit key");
    CHECK(keyring_root_open(other, sealed1, n1) == KEYRING_OPEN_FAILED && !keyring_has_root(other),
          "root under another master");
    sealed1[20] ^= 1;
    CHECK(keyring_root_open(kr, sealed1, n1) == KEYRING_OPEN_FAILED, "altered root");
    sealed1[20] ^= 1;
    CHECK(memcmp(keyring_audit_key(kr), audit1, 32) == 0, "failed open keeps the old keys");
    CHECK(keyring_root_open(kr, sealed1, n1 - 1) == KEYRING_OPEN_FAILED, "truncated root");

    /* Domain separation: a root is not an app key and an app key is not a root. */
    CHECK(keyring_open_key(kr, 0, 0, sealed1, n1, &pt, &pt_len) == KEYRING_OPEN_FAILED,
          "root does not open as a key");
    {
        uint8_t *k = NULL;
        size_t kn = 0;
        uint8_t thirty_two[32] = {1};
        if (keyring_seal_key(kr, APP, VER, thirty_two, 32, &k, &kn) != KEYRING_OK)
            abort();
        CHECK(keyring_root_open(other, k, kn) == KEYRING_OPEN_FAILED &&
                  keyring_root_open(kr, k, kn) == KEYRING_OPEN_FAILED,
              "a 32-byte key does not open as a root");
        free(k);
    }
    free(sealed1);
    free(sealed2);
    keyring_free(kr);
    keyring_free(again);
    keyring_free(other);
}

/* ---- Fingerprints --------------------------------------------------------------------------- */

static void test_fingerprint_hmac(void)
{
    const char *path;
    struct keyring *a = new_master_at("fp.key", &path), *a2 = NULL, *b = NULL;
    uint8_t *root_a, *root_b, fa[32], fa2[32], fb[32], fother[32];
    size_t na, nb;
    char err[256], s1[KEYRING_FP_SHORT_BUF], full[65];
    const uint8_t secret[] = "0123456789abcdef", other[] = "0123456789abcdeF";

    /* a and a2 open one root, b another, all under the same master key. */
    root_a = make_root(a, &na);
    root_b = make_root(a, &nb);
    CHECK(keyring_master_load(path, &a2, err, sizeof err) == KEYRING_OK, "load a2");
    CHECK(keyring_master_load(path, &b, err, sizeof err) == KEYRING_OK, "load b");
    CHECK(keyring_root_open(a, root_a, na) == KEYRING_OK, "open a");
    CHECK(keyring_root_open(a2, root_a, na) == KEYRING_OK, "open a2");
    CHECK(keyring_root_open(b, root_b, nb) == KEYRING_OK, "open b");

    CHECK(keyring_fingerprint_hmac(a, secret, 16, fa) == KEYRING_OK, "fp a");
    CHECK(keyring_fingerprint_hmac(a2, secret, 16, fa2) == KEYRING_OK, "fp a2");
    CHECK(keyring_fingerprint_hmac(b, secret, 16, fb) == KEYRING_OK, "fp b");
    CHECK(keyring_fingerprint_hmac(a, other, 16, fother) == KEYRING_OK, "fp other");
    CHECK(memcmp(fa, fa2, 32) == 0, "stable for the same root");
    CHECK(memcmp(fa, fb, 32) != 0, "differs across roots");
    CHECK(memcmp(fa, fother, 32) != 0, "differs across secrets");
    CHECK(keyring_fingerprint_hmac(a, secret, 0, fa2) == KEYRING_BAD_INPUT, "empty secret");
    CHECK(keyring_fingerprint_hmac(a, NULL, 3, fa2) == KEYRING_BAD_INPUT, "NULL secret");

    /* The notice MAC: the same for one root, another for another root, under a key of its own
     * (not the fingerprint key's HMAC of the same bytes). */
    uint8_t na1[32], na2[32], nb1[32];
    CHECK(keyring_notice_mac(a, (const char *)secret, 16, na1) == KEYRING_OK &&
              keyring_notice_mac(a2, (const char *)secret, 16, na2) == KEYRING_OK &&
              keyring_notice_mac(b, (const char *)secret, 16, nb1) == KEYRING_OK,
          "notice MACs");
    CHECK(memcmp(na1, na2, 32) == 0 && memcmp(na1, nb1, 32) != 0 && memcmp(na1, fa, 32) != 0,
          "notice MAC: stable for a root, differs across roots, not the fingerprint");
    CHECK(keyring_notice_mac(a, "", 0, na2) == KEYRING_OK && memcmp(na1, na2, 32) != 0,
          "notice MAC of another message");
    CHECK(keyring_notice_mac(a, NULL, 0, na2) == KEYRING_BAD_INPUT, "NULL notice");

    test_hex(fa, 32, full);
    CHECK(keyring_fingerprint_short(fa, s1) == s1 && strlen(s1) == 16 && strncmp(s1, full, 16) == 0,
          "short form = first 8 bytes hex: %s", s1);
    free(root_a);
    free(root_b);
    keyring_free(a);
    keyring_free(a2);
    keyring_free(b);
}

/* ---- Rewrap --------------------------------------------------------------------------------- */

static void test_reseal(void)
{
    const char *new_path;
    struct keyring *old_kr = new_master("old.key"), *new_kr = new_master_at("new.key", &new_path);
    struct keyring *new_root_kr = NULL;
    const uint8_t secret[] = "a key to carry over";
    uint8_t *sealed = NULL, *resealed = NULL, *pt = NULL, *root, *root2 = NULL, audit[32];
    size_t n = 0, rn = 0, pn = 0, root_n, root2_n = 0;
    char err[256];

    if (keyring_seal_key(old_kr, APP, VER, secret, sizeof secret, &sealed, &n) != KEYRING_OK)
        abort();
    CHECK(keyring_reseal(old_kr, new_kr, APP, VER, sealed, n, &resealed, &rn) == KEYRING_OK,
          "reseal");
    CHECK(rn == n && memcmp(resealed, sealed, n) != 0, "new bytes, same length");
    CHECK(keyring_open_key(new_kr, APP, VER, resealed, rn, &pt, &pn) == KEYRING_OK &&
              pn == sizeof secret && memcmp(pt, secret, pn) == 0,
          "opens with the new master");
    keyring_secret_free(pt, pn);
    expect_no_open(old_kr, APP, VER, resealed, rn, "resealed, old master");
    expect_no_open(new_kr, APP + 1, VER, resealed, rn, "resealed keeps the app binding");

    {
        uint8_t *out = (uint8_t *)1;
        size_t on = 9;
        CHECK(keyring_reseal(new_kr, old_kr, APP, VER, sealed, n, &out, &on) ==
                      KEYRING_OPEN_FAILED &&
                  out == NULL && on == 0,
              "reseal with the wrong old master");
        CHECK(keyring_reseal(old_kr, new_kr, APP, VER + 1, sealed, n, &out, &on) ==
                  KEYRING_OPEN_FAILED,
              "reseal with the wrong version");
    }

    /* The root: its derived keys survive the rewrap, so the audit chain still verifies. */
    root = make_root(old_kr, &root_n);
    CHECK(keyring_root_open(old_kr, root, root_n) == KEYRING_OK, "open old root");
    memcpy(audit, keyring_audit_key(old_kr), 32);
    CHECK(keyring_reseal_root(old_kr, new_kr, root, root_n, &root2, &root2_n) == KEYRING_OK,
          "reseal root");
    CHECK(keyring_master_load(new_path, &new_root_kr, err, sizeof err) == KEYRING_OK, "load new");
    CHECK(keyring_root_open(new_root_kr, root2, root2_n) == KEYRING_OK &&
              memcmp(keyring_audit_key(new_root_kr), audit, 32) == 0,
          "same audit key after rewrap");
    CHECK(keyring_root_open(old_kr, root2, root2_n) == KEYRING_OPEN_FAILED,
          "resealed root does not open with the old master");
    {
        uint8_t *out = NULL;
        size_t on = 0;
        CHECK(keyring_reseal_root(new_kr, old_kr, root, root_n, &out, &on) == KEYRING_OPEN_FAILED,
              "reseal root with the wrong old master");
    }
    free(sealed);
    free(resealed);
    free(root);
    free(root2);
    keyring_free(old_kr);
    keyring_free(new_kr);
    keyring_free(new_root_kr);
}

static void test_messages(void)
{
    for (int rc = KEYRING_OK; rc <= KEYRING_CRYPTO_FAILED; rc++) {
        const char *m = keyring_rc_message((enum keyring_rc)rc);
        CHECK(m != NULL && strlen(m) > 1 && strcmp(m, "unknown keyring status") != 0,
              "message for %d", rc);
        for (int other = KEYRING_OK; other < rc; other++)
            CHECK(strcmp(m, keyring_rc_message((enum keyring_rc)other)) != 0, "distinct %d %d", rc,
                  other);
    }
}

int main(void)
{
    test_master_create();
    test_master_load_modes();
    test_master_load_content();
    test_seal_round_trip();
    test_open_failures();
    test_root();
    test_fingerprint_hmac();
    test_reseal();
    test_messages();
    test_tmp_remove();
    return test_done("keyring");
}
