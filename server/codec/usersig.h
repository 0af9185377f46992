/*
 * The UserSig codec: signs and verifies Tencent Cloud Chat / TRTC UserSig tokens (v2 HMAC-SHA256,
 * TRTC PrivateMapKey userbuf, legacy v1 ECDSA-SHA256). Pure: bytes in, struct or token out; no
 * database, HTTP, JSON library or logging. Functions return codes; callers decide what to say.
 */
#ifndef USERSIG_H
#define USERSIG_H

#include <stddef.h>
#include <stdint.h>

#define USERSIG_WUR __attribute__((warn_unused_result))
/* What libusersig exports: the library is built with -fvisibility=hidden, so every function of
 * this header is marked and nothing else is visible (server/dist/libusersig.map agrees). */
#define USERSIG_API __attribute__((visibility("default")))

/* The release this header belongs to; usersig_version() is the library's, which may differ when
 * a program runs against a newer shared library than the one it was built with. */
#define USERSIG_VERSION_MAJOR 0
#define USERSIG_VERSION_MINOR 1
#define USERSIG_VERSION_PATCH 0

/* Limits (SPEC.md "Limits"). */
#define USERSIG_MAX_IDENTIFIER 32        /* bytes */
#define USERSIG_MAX_ROOM_STR 64          /* bytes */
#define USERSIG_MAX_EXPIRE 315360000u    /* 10 years, seconds */
#define USERSIG_DEFAULT_EXPIRE 15552000u /* 180 days, as the official libraries */
#define USERSIG_MAX_TOKEN_INPUT 8192     /* bytes of token accepted by the decoder */
#define USERSIG_MAX_DOCUMENT 4096        /* bytes of inflated JSON accepted by the decoder */
#define USERSIG_TOKEN_BUF 1536           /* a signed token always fits (with its NUL) */
#define USERSIG_MAX_USERBUF 256          /* raw userbuf bytes */
#define USERSIG_DEFAULT_LEVEL 6          /* zlib level: see usersig_signer_new() */

/* Results of signing-side calls and of key parsing. */
enum usersig_rc {
    USERSIG_OK = 0,
    USERSIG_BAD_IDENTIFIER,  /* empty, longer than 32 bytes, or outside the policy's characters */
    USERSIG_BAD_EXPIRE,      /* 0, or more than 10 years */
    USERSIG_BAD_TIME,        /* negative, or time + expire beyond 2^32-1 for a PrivateMapKey */
    USERSIG_BAD_SDKAPPID,    /* 0 */
    USERSIG_BAD_ROOM,        /* string room id empty or longer than 64 bytes, or room id 0 */
    USERSIG_BAD_PRIVILEGE,   /* privilege map outside 0..255 */
    USERSIG_BAD_LEVEL,       /* zlib level outside 0..9 */
    USERSIG_BAD_KEY,         /* secret empty/too long, or PEM not an EC key of a supported curve */
    USERSIG_KEY_CANNOT_SIGN, /* a public key given where a private key is needed */
    USERSIG_NO_MEMORY,
    USERSIG_CRYPTO_FAILED, /* OpenSSL or zlib failed where it should not */
};

/* The library's release, "0.1.0", and the token formats it reads and writes, as one line:
 * "v2 (TLS.ver 2.0, HMAC-SHA256; userbuf PrivateMapKey v0/v1), v1 (...)". Static strings. */
USERSIG_API const char *usersig_version(void);
USERSIG_API const char *usersig_formats(void);

/* Stable machine name ("bad_identifier") and a one-line explanation a person can act on. */
USERSIG_API const char *usersig_rc_name(enum usersig_rc rc);
USERSIG_API const char *usersig_rc_message(enum usersig_rc rc);

/* Verdicts of verification, in the order the checks run (SPEC.md "Verification"). */
enum usersig_verdict {
    USERSIG_VALID = 0,
    USERSIG_EMPTY,               /* 70002 */
    USERSIG_MALFORMED,           /* 70003 */
    USERSIG_UNSUPPORTED_VERSION, /* 70003: TLS.ver present but not "2.0" */
    USERSIG_KIND_MISMATCH, /* 70009: a v1 token checked with an HMAC key, or v2 with an EC key */
    USERSIG_IDENTIFIER_MISMATCH, /* 70013 */
    USERSIG_SDKAPPID_MISMATCH,   /* 70014 */
    USERSIG_EXPIRED,             /* 70001 */
    USERSIG_SIGNATURE_MISMATCH,  /* 70009 */
    USERSIG_ROOM_MISMATCH,       /* PrivateMapKey for another room, or no PrivateMapKey at all */
    USERSIG_PRIVILEGE_MISSING,   /* PrivateMapKey lacks a privilege bit the caller requires */
    USERSIG_VERDICT_COUNT
};

/* A verdict's stable name ("signature_mismatch"), Tencent's code for it (70009; 0 when Tencent
 * has none), and a message saying what it means and what to do. */
USERSIG_API const char *usersig_verdict_name(enum usersig_verdict v);
USERSIG_API int usersig_verdict_tencent_code(enum usersig_verdict v);
USERSIG_API const char *usersig_verdict_message(enum usersig_verdict v);

/* Identifier rules: printable ASCII 0x20..0x7e (what Tencent accepts) or A-Z a-z 0-9 _ - only. */
enum usersig_id_policy { USERSIG_ID_PRINTABLE = 0, USERSIG_ID_STRICT = 1 };

USERSIG_API enum usersig_rc usersig_identifier_check(const char *id, size_t len,
                                                     enum usersig_id_policy policy) USERSIG_WUR;

/* A key: a v2 HMAC secret, or a v1 EC key (private or public). Opaque; the secret is wiped
 * with OPENSSL_cleanse when freed. */
struct usersig_key;
enum usersig_key_kind { USERSIG_KEY_HMAC = 1, USERSIG_KEY_ECDSA = 2 };

/* The secret is used as its bytes (the console's 64 hex characters are not decoded); 1..1024
 * bytes. On success *out is a new key; caller usersig_key_free()s it. */
USERSIG_API enum usersig_rc usersig_key_new_hmac(const char *secret, size_t len,
                                                 struct usersig_key **out) USERSIG_WUR;
/* PEM: SEC1 "EC PRIVATE KEY" (optionally after "EC PARAMETERS"), PKCS#8 "PRIVATE KEY", or SPKI
 * "PUBLIC KEY"; curves secp256k1 and P-256. */
USERSIG_API enum usersig_rc usersig_key_new_pem(const char *pem, size_t len,
                                                struct usersig_key **out) USERSIG_WUR;
USERSIG_API void usersig_key_free(struct usersig_key *key);
USERSIG_API enum usersig_key_kind usersig_key_kind(const struct usersig_key *key);
/* 1 for HMAC and EC private keys. */
USERSIG_API int usersig_key_is_private(const struct usersig_key *key);

/* TRTC PrivateMapKey: room and privileges carried in TLS.userbuf. */
enum usersig_room_kind { USERSIG_ROOM_NONE = 0, USERSIG_ROOM_NUMERIC = 1, USERSIG_ROOM_STRING = 2 };

struct usersig_room {
    enum usersig_room_kind kind;
    uint32_t room_id;     /* NUMERIC: 1..2^32-1 */
    const char *room_str; /* STRING: 1..64 bytes (not NUL-terminated necessarily) */
    size_t room_str_len;
    uint32_t privilege_map; /* 0..255 */
};

/* What to sign. */
struct usersig_params {
    const char *identifier;
    size_t identifier_len;
    uint32_t expire;          /* seconds of validity, 1..USERSIG_MAX_EXPIRE */
    int64_t time;             /* issue time, Unix seconds, >= 0 */
    struct usersig_room room; /* kind NONE for a plain UserSig */
};

/* A signer holds one key's precomputed state and a reusable zlib stream, so a token costs no
 * allocation. Not thread-safe: use one signer per thread (they may share the key, which is
 * read-only once made). The key must outlive the signer.
 *
 * level is the zlib level, 0..9. 0 writes stored blocks (as the official Go library; the fastest
 * and always valid), 1 is the official C++ library's, 6 (USERSIG_DEFAULT_LEVEL) the Node, Java,
 * Python and PHP libraries': the default, because it gives the token size most deployments
 * already see. Levels 1..9 set the search depth of the codec's own deflate encoder (one fixed-
 * Huffman block, as zlib itself emits for a document this small) and the header's FLEVEL. */
struct usersig_signer;
USERSIG_API enum usersig_rc usersig_signer_new(const struct usersig_key *key, uint32_t sdkappid,
                                               int level, enum usersig_id_policy policy,
                                               struct usersig_signer **out) USERSIG_WUR;
USERSIG_API void usersig_signer_free(struct usersig_signer *signer);

/* Signs one token into out (at least USERSIG_TOKEN_BUF bytes); writes its length to *out_len
 * and a terminating NUL. Inputs are checked first: nothing is written on failure. */
USERSIG_API enum usersig_rc usersig_sign(struct usersig_signer *signer,
                                         const struct usersig_params *params, char *out,
                                         size_t out_cap, size_t *out_len) USERSIG_WUR;

/* Builds the raw PrivateMapKey userbuf (SPEC.md) into out (USERSIG_MAX_USERBUF bytes). */
USERSIG_API enum usersig_rc usersig_userbuf_build(const char *identifier, size_t identifier_len,
                                                  uint32_t sdkappid, int64_t expire_at,
                                                  const struct usersig_room *room, uint8_t *out,
                                                  size_t out_cap, size_t *out_len) USERSIG_WUR;

/* A decoded token: the JSON document's own values. Plain data; no free needed. */
struct usersig_decoded {
    int version;                                     /* 2, or 1 for legacy ECDSA tokens */
    char identifier[USERSIG_MAX_IDENTIFIER * 4 + 1]; /* as in the token, NUL-terminated */
    size_t identifier_len;
    uint32_t sdkappid;
    int64_t time;
    int64_t expire; /* v2 TLS.expire, v1 TLS.expire_after */
    char sig[256];  /* TLS.sig, base64 as in the token */
    size_t sig_len;
    char userbuf_b64[USERSIG_MAX_USERBUF * 4 / 3 + 8]; /* TLS.userbuf verbatim, or empty */
    size_t userbuf_b64_len;
    uint8_t userbuf[USERSIG_MAX_USERBUF]; /* decoded userbuf */
    size_t userbuf_len;
    int has_room; /* the userbuf parsed as a PrivateMapKey */
    struct {
        int version; /* 0 numeric, 1 string */
        uint32_t sdkappid, room_id, expire_at, privilege_map, account_type;
        char account[USERSIG_MAX_IDENTIFIER * 4 + 1];
        char room_str[USERSIG_MAX_ROOM_STR + 1];
        size_t room_str_len;
    } room;
    /* v1 only: the string values the content line needs, verbatim. */
    char v1_appid_at_3rd[24], v1_account_type[24], v1_sdk_appid[24], v1_time[24],
        v1_expire_after[24], v1_version[24];
    char document[USERSIG_MAX_DOCUMENT + 1]; /* the inflated JSON, NUL-terminated */
    size_t document_len;
};

/* Decodes a token (whitespace ignored). Returns USERSIG_VALID, USERSIG_EMPTY or
 * USERSIG_MALFORMED / USERSIG_UNSUPPORTED_VERSION. Bounded: input over USERSIG_MAX_TOKEN_INPUT or
 * a document inflating past USERSIG_MAX_DOCUMENT is malformed. */
USERSIG_API enum usersig_verdict usersig_decode(const char *token, size_t len,
                                                struct usersig_decoded *out);

/* Checks only the signature of a decoded token with one key: VALID, SIGNATURE_MISMATCH or
 * KIND_MISMATCH. Constant time in the MAC comparison. */
USERSIG_API enum usersig_verdict usersig_check_signature(const struct usersig_decoded *d,
                                                         const struct usersig_key *key);

/* Which of keys[0..n) made d's signature: the index of the first that did, or n when none did
 * (NULL entries and keys of the other kind are skipped). The answer of usersig_check_signature
 * on each key in turn, with the signed text and the signature decoded once for all of them: the
 * search for the key that made a token (Tencent's 70009, a token signed with another app's key). */
USERSIG_API size_t usersig_find_signer(const struct usersig_decoded *d,
                                       const struct usersig_key *const *keys, size_t n);

/* What the caller expects; NULL identifier / 0 sdkappid / ROOM_NONE mean "do not check". */
struct usersig_expect {
    const char *identifier;
    size_t identifier_len;
    uint32_t sdkappid;
    enum usersig_room_kind room_kind; /* check the PrivateMapKey's room when not NONE */
    uint32_t room_id;
    const char *room_str;
    size_t room_str_len;
    uint32_t privileges; /* bits that must all be present (with room_kind != NONE) */
};

/* Runs the checks after decoding, in SPEC order: identifier, sdkappid, expiry (at now), then the
 * signature with key, then room and privileges. */
USERSIG_API enum usersig_verdict usersig_check(const struct usersig_decoded *d,
                                               const struct usersig_expect *expect,
                                               const struct usersig_key *key, int64_t now);

/* usersig_decode + usersig_check. d may be NULL when the caller does not need the fields. */
USERSIG_API enum usersig_verdict usersig_verify(const char *token, size_t len,
                                                const struct usersig_expect *expect,
                                                const struct usersig_key *key, int64_t now,
                                                struct usersig_decoded *d);

#endif
