/*
 * UserSig signing: keys, input rules, the v2 HMAC-SHA256 and legacy v1 ECDSA signers, the
 * PrivateMapKey userbuf and the token wrapping (JSON, zlib, URL-safe base64). A signer keeps the
 * HMAC's inner and outer SHA-256 states made once; with the small deflate encoder of
 * usersig_deflate.c one token is about a microsecond and no allocation.
 */
/* SHA256_CTX is a plain struct that can be copied: precomputed HMAC pads cost one assignment
 * where EVP_MD_CTX_copy_ex allocates. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "usersig.h"
#include "usersig_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_SECRET 1024

struct usersig_key;
static void hmac_pads_make(struct usersig_key *key);

struct usersig_key {
    enum usersig_key_kind kind;
    unsigned char *secret; /* HMAC */
    size_t secret_len;
    SHA256_CTX pad_inner, pad_outer; /* HMAC: the state after the key's pads (as secret as it) */
    EVP_PKEY *pkey;                  /* ECDSA */
    int is_private;
};

struct usersig_signer {
    const struct usersig_key *key;
    uint32_t sdkappid;
    int level;
    enum usersig_id_policy policy;
    SHA256_CTX inner, outer; /* HMAC state after the key pads */
    EVP_MD_CTX *md;          /* v1 */
};

/* ---- names and messages ------------------------------------------------------------------ */

static const struct {
    const char *name, *message;
} rc_text[] = {
    [USERSIG_OK] = {"ok", "success"},
    [USERSIG_BAD_IDENTIFIER] = {"bad_identifier",
                                "the UserID must be 1 to 32 bytes of printable ASCII (0x20-0x7e); "
                                "under the strict policy only A-Z a-z 0-9 _ -"},
    [USERSIG_BAD_EXPIRE] = {"bad_expire",
                            "expire must be 1 to 315360000 seconds (10 years); 0 is not 'never'"},
    [USERSIG_BAD_TIME] = {"bad_time", "the issue time must be 0 to 4294967295, and for a "
                                      "PrivateMapKey time + expire must not pass 4294967295"},
    [USERSIG_BAD_SDKAPPID] = {"bad_sdkappid", "the SDKAppID must be a non-zero 32-bit number"},
    [USERSIG_BAD_ROOM] = {"bad_room", "a numeric room id must be 1 to 4294967295; a string room "
                                      "id 1 to 64 bytes"},
    [USERSIG_BAD_PRIVILEGE] = {"bad_privilege", "the privilege map must be 0 to 255"},
    [USERSIG_BAD_LEVEL] = {"bad_level", "the zlib level must be 0 to 9"},
    [USERSIG_BAD_KEY] = {"bad_key", "the key is not usable: an HMAC secret must be 1 to 1024 "
                                    "bytes; an ECDSA key must be a PEM EC key on secp256k1 or "
                                    "P-256"},
    [USERSIG_KEY_CANNOT_SIGN] = {"key_cannot_sign",
                                 "this is a public key; signing needs the private key"},
    [USERSIG_NO_MEMORY] = {"no_memory", "out of memory"},
    [USERSIG_CRYPTO_FAILED] = {"crypto_failed", "the cryptographic library failed"},
};

#define USERSIG_STR2(x) #x
#define USERSIG_STR(x) USERSIG_STR2(x)

const char *usersig_version(void)
{
    return USERSIG_STR(USERSIG_VERSION_MAJOR) "." USERSIG_STR(
        USERSIG_VERSION_MINOR) "." USERSIG_STR(USERSIG_VERSION_PATCH);
}

const char *usersig_formats(void)
{
    return "v2 (TLS.ver 2.0, HMAC-SHA256, PrivateMapKey userbuf v0/v1: sign and verify), "
           "v1 (TLS.version 201512300000, ECDSA-SHA256: sign and verify)";
}

const char *usersig_rc_name(enum usersig_rc rc)
{
    if ((unsigned)rc >= sizeof rc_text / sizeof rc_text[0])
        return "unknown";
    return rc_text[rc].name;
}

const char *usersig_rc_message(enum usersig_rc rc)
{
    if ((unsigned)rc >= sizeof rc_text / sizeof rc_text[0])
        return "unknown error";
    return rc_text[rc].message;
}

static const struct {
    const char *name;
    int code;
    const char *message;
} verdict_text[USERSIG_VERDICT_COUNT] = {
    [USERSIG_VALID] = {"ok", 0, "the UserSig is valid"},
    [USERSIG_EMPTY] = {"empty", 70002, "the UserSig is empty: pass the token the server issued"},
    [USERSIG_MALFORMED] = {"malformed", 70003,
                           "the UserSig is malformed or truncated: it does not decode to a "
                           "complete token; copy it again without cutting or re-encoding it"},
    [USERSIG_UNSUPPORTED_VERSION] = {"unsupported_version", 70003,
                                     "the UserSig has a TLS.ver other than 2.0; this format is "
                                     "not one Tencent issues"},
    [USERSIG_KIND_MISMATCH] = {"kind_mismatch", 70009,
                               "the UserSig's format does not match the key: a legacy v1 (ECDSA) "
                               "token was checked with an HMAC secret, or a v2 token with an EC "
                               "key"},
    [USERSIG_IDENTIFIER_MISMATCH] = {"identifier_mismatch", 70013,
                                     "the UserID in the request differs from the one the UserSig "
                                     "was issued for: issue a UserSig for this UserID"},
    [USERSIG_SDKAPPID_MISMATCH] = {"sdkappid_mismatch", 70014,
                                   "the SDKAppID in the request differs from the one in the "
                                   "UserSig: the token belongs to another app"},
    [USERSIG_EXPIRED] = {"expired", 70001,
                         "the UserSig has expired: issue a new one (and check the client's clock "
                         "and the expire you sign with)"},
    [USERSIG_SIGNATURE_MISMATCH] = {"signature_mismatch", 70009,
                                    "the signature does not match this app's key: the token was "
                                    "signed with another SDKAppID's key, an old key, or altered"},
    [USERSIG_ROOM_MISMATCH] = {"room_mismatch", 0,
                               "the PrivateMapKey is for another room (or carries no room): "
                               "TRTC will refuse entry; issue one for this room"},
    [USERSIG_PRIVILEGE_MISSING] = {"privilege_missing", 0,
                                   "the PrivateMapKey lacks a privilege the caller requires: "
                                   "issue one with the needed privilege bits"},
};

const char *usersig_verdict_name(enum usersig_verdict v)
{
    return (unsigned)v < USERSIG_VERDICT_COUNT ? verdict_text[v].name : "unknown";
}

int usersig_verdict_tencent_code(enum usersig_verdict v)
{
    return (unsigned)v < USERSIG_VERDICT_COUNT ? verdict_text[v].code : 0;
}

const char *usersig_verdict_message(enum usersig_verdict v)
{
    return (unsigned)v < USERSIG_VERDICT_COUNT ? verdict_text[v].message : "unknown verdict";
}

/* ---- input rules ------------------------------------------------------------------------- */

enum usersig_rc usersig_identifier_check(const char *id, size_t len, enum usersig_id_policy policy)
{
    if (id == NULL || len == 0 || len > USERSIG_MAX_IDENTIFIER)
        return USERSIG_BAD_IDENTIFIER;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c > 0x7e)
            return USERSIG_BAD_IDENTIFIER;
        if (policy == USERSIG_ID_STRICT && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                             (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return USERSIG_BAD_IDENTIFIER;
    }
    return USERSIG_OK;
}

static enum usersig_rc room_check(const struct usersig_room *room)
{
    switch (room->kind) {
    case USERSIG_ROOM_NONE:
        return USERSIG_OK;
    case USERSIG_ROOM_NUMERIC:
        if (room->room_id == 0)
            return USERSIG_BAD_ROOM;
        break;
    case USERSIG_ROOM_STRING:
        if (room->room_str == NULL || room->room_str_len == 0 ||
            room->room_str_len > USERSIG_MAX_ROOM_STR)
            return USERSIG_BAD_ROOM;
        break;
    default:
        return USERSIG_BAD_ROOM;
    }
    return room->privilege_map > 255 ? USERSIG_BAD_PRIVILEGE : USERSIG_OK;
}

static enum usersig_rc params_check(const struct usersig_signer *s, const struct usersig_params *p)
{
    enum usersig_rc rc = usersig_identifier_check(p->identifier, p->identifier_len, s->policy);
    if (rc != USERSIG_OK)
        return rc;
    if (p->expire == 0 || p->expire > USERSIG_MAX_EXPIRE)
        return USERSIG_BAD_EXPIRE;
    if (p->time < 0 || p->time > (int64_t)UINT32_MAX)
        return USERSIG_BAD_TIME;
    rc = room_check(&p->room);
    if (rc != USERSIG_OK)
        return rc;
    if (p->room.kind != USERSIG_ROOM_NONE && p->time + (int64_t)p->expire > (int64_t)UINT32_MAX)
        return USERSIG_BAD_TIME;
    return USERSIG_OK;
}

/* ---- keys -------------------------------------------------------------------------------- */

enum usersig_rc usersig_key_new_hmac(const char *secret, size_t len, struct usersig_key **out)
{
    *out = NULL;
    if (secret == NULL || len == 0 || len > MAX_SECRET)
        return USERSIG_BAD_KEY;
    struct usersig_key *k = calloc(1, sizeof *k);
    if (k == NULL)
        return USERSIG_NO_MEMORY;
    k->secret = malloc(len);
    if (k->secret == NULL) {
        free(k);
        return USERSIG_NO_MEMORY;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    hmac_pads_make(k);
    k->kind = USERSIG_KEY_HMAC;
    k->is_private = 1;
    *out = k;
    return USERSIG_OK;
}

/* Accepts secp256k1 and prime256v1 only: the curves Tencent's console has issued. */
int usersig_curve_supported(EVP_PKEY *pkey)
{
    char name[64];
    size_t n = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return 0;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &n))
        return 0;
    return strcmp(name, "secp256k1") == 0 || strcmp(name, "prime256v1") == 0;
}

/* An encrypted PEM is refused, never prompted for: OpenSSL's default callback would read a
 * password from the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

enum usersig_rc usersig_key_new_pem(const char *pem, size_t len, struct usersig_key **out)
{
    enum usersig_rc rc = USERSIG_BAD_KEY;
    struct usersig_key *k = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int is_private = 0;

    *out = NULL;
    if (pem == NULL || len == 0 || len > 16384)
        return USERSIG_BAD_KEY;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        rc = USERSIG_NO_MEMORY;
        goto done;
    }
    /* PEM_read_bio_PrivateKey skips an "EC PARAMETERS" block before the key. */
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    if (pkey != NULL) {
        is_private = 1;
    } else {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)len);
        if (bio == NULL) {
            rc = USERSIG_NO_MEMORY;
            goto done;
        }
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
    }
    ERR_clear_error();
    if (pkey == NULL || !usersig_curve_supported(pkey))
        goto done;
    k = calloc(1, sizeof *k);
    if (k == NULL) {
        rc = USERSIG_NO_MEMORY;
        goto done;
    }
    k->kind = USERSIG_KEY_ECDSA;
    k->pkey = pkey;
    k->is_private = is_private;
    pkey = NULL;
    *out = k;
    rc = USERSIG_OK;
done:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

void usersig_key_free(struct usersig_key *key)
{
    if (key == NULL)
        return;
    if (key->secret != NULL) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }
    EVP_PKEY_free(key->pkey);
    OPENSSL_cleanse(key, sizeof *key);
    free(key);
}

enum usersig_key_kind usersig_key_kind(const struct usersig_key *key)
{
    return key->kind;
}

int usersig_key_is_private(const struct usersig_key *key)
{
    return key->is_private;
}

/* ---- HMAC-SHA256 with precomputed pads --------------------------------------------------- */

/* Computes the key's pads once, when the key is made (usersig_key_new_hmac). */
static void hmac_pads_make(struct usersig_key *key)
{
    SHA256_CTX *inner = &key->pad_inner, *outer = &key->pad_outer;
    unsigned char block[SHA256_CBLOCK];
    unsigned char pad[SHA256_CBLOCK];

    memset(block, 0, sizeof block);
    if (key->secret_len > SHA256_CBLOCK)
        SHA256(key->secret, key->secret_len, block);
    else
        memcpy(block, key->secret, key->secret_len);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(inner);
    SHA256_Update(inner, pad, sizeof pad);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(outer);
    SHA256_Update(outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

void usersig_hmac_pads(const struct usersig_key *key, SHA256_CTX *inner, SHA256_CTX *outer)
{
    *inner = key->pad_inner;
    *outer = key->pad_outer;
}

void usersig_key_mac(const struct usersig_key *key, const void *msg, size_t n,
                     unsigned char mac[32])
{
    usersig_hmac_finish(&key->pad_inner, &key->pad_outer, msg, n, mac);
}

void usersig_hmac_finish(const SHA256_CTX *inner, const SHA256_CTX *outer, const void *msg,
                         size_t n, unsigned char mac[32])
{
    SHA256_CTX c = *inner;
    unsigned char ih[32];
    SHA256_Update(&c, msg, n);
    SHA256_Final(ih, &c);
    c = *outer;
    SHA256_Update(&c, ih, sizeof ih);
    SHA256_Final(mac, &c);
    OPENSSL_cleanse(&c, sizeof c);
}

void usersig_sha256(const void *msg, size_t n, unsigned char out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, msg, n);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
}

/* ---- base64 ------------------------------------------------------------------------------ */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-";

static size_t b64_encode_with(const char *alphabet, char padc, const uint8_t *in, size_t n,
                              char *out)
{
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        o[0] = alphabet[v >> 18];
        o[1] = alphabet[(v >> 12) & 63];
        o[2] = alphabet[(v >> 6) & 63];
        o[3] = alphabet[v & 63];
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        o[0] = alphabet[v >> 18];
        o[1] = alphabet[(v >> 12) & 63];
        o[2] = i + 1 < n ? alphabet[(v >> 6) & 63] : padc;
        o[3] = padc;
        o += 4;
    }
    *o = '\0';
    return (size_t)(o - out);
}

size_t usersig_b64_encode(const uint8_t *in, size_t n, char *out)
{
    return b64_encode_with(b64_std, '=', in, n, out);
}

/* Reverse table: 0..63, 64 for '=', 255 for anything else. */
static signed char b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (signed char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (signed char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (signed char)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long usersig_b64_decode(const char *in, size_t n, uint8_t *out, size_t out_cap)
{
    size_t pad = 0, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (n > 0 && in[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if ((n + pad) % 4 != 0 && pad != 0)
        return -1;
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        signed char v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero, as a canonical encoder writes them. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

/* ---- writing helpers --------------------------------------------------------------------- */

static char *put_str(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

#define PUT_LIT(o, lit) put_str((o), (lit), sizeof(lit) - 1)

static char *put_u64(char *o, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *o++ = tmp[--n];
    return o;
}

/* JSON string body: only '"' and '\' need escaping in printable ASCII; anything below 0x20 is
 * written as \u00XX (the input rules exclude it, but the writer stays correct on its own). */
static char *put_json_escaped(char *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o = PUT_LIT(o, "\\u00");
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    return o;
}

static uint8_t *put_be16(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static uint8_t *put_be32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

enum usersig_rc usersig_userbuf_build(const char *identifier, size_t identifier_len,
                                      uint32_t sdkappid, int64_t expire_at,
                                      const struct usersig_room *room, uint8_t *out, size_t out_cap,
                                      size_t *out_len)
{
    size_t need = 1 + 2 + identifier_len + 4 * 5;
    uint8_t *o = out;

    if (room->kind == USERSIG_ROOM_NONE)
        return USERSIG_BAD_ROOM;
    enum usersig_rc rc = room_check(room);
    if (rc != USERSIG_OK)
        return rc;
    if (identifier_len > USERSIG_MAX_IDENTIFIER * 4)
        return USERSIG_BAD_IDENTIFIER;
    if (expire_at < 0 || expire_at > (int64_t)UINT32_MAX)
        return USERSIG_BAD_TIME;
    if (room->kind == USERSIG_ROOM_STRING)
        need += 2 + room->room_str_len;
    if (need > out_cap)
        return USERSIG_BAD_ROOM;
    *o++ = room->kind == USERSIG_ROOM_STRING ? 1 : 0;
    o = put_be16(o, (uint32_t)identifier_len);
    memcpy(o, identifier, identifier_len);
    o += identifier_len;
    o = put_be32(o, sdkappid);
    o = put_be32(o, room->kind == USERSIG_ROOM_NUMERIC ? room->room_id : 0);
    o = put_be32(o, (uint32_t)expire_at);
    o = put_be32(o, room->privilege_map);
    o = put_be32(o, 0); /* account_type */
    if (room->kind == USERSIG_ROOM_STRING) {
        o = put_be16(o, (uint32_t)room->room_str_len);
        memcpy(o, room->room_str, room->room_str_len);
        o += room->room_str_len;
    }
    *out_len = (size_t)(o - out);
    return USERSIG_OK;
}

/* ---- signer ------------------------------------------------------------------------------ */

enum usersig_rc usersig_signer_new(const struct usersig_key *key, uint32_t sdkappid, int level,
                                   enum usersig_id_policy policy, struct usersig_signer **out)
{
    *out = NULL;
    if (sdkappid == 0)
        return USERSIG_BAD_SDKAPPID;
    if (level < 0 || level > 9)
        return USERSIG_BAD_LEVEL;
    if (key == NULL)
        return USERSIG_BAD_KEY;
    if (!key->is_private)
        return USERSIG_KEY_CANNOT_SIGN;
    struct usersig_signer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return USERSIG_NO_MEMORY;
    s->key = key;
    s->sdkappid = sdkappid;
    s->level = level;
    s->policy = policy;
    if (key->kind == USERSIG_KEY_HMAC) {
        usersig_hmac_pads(key, &s->inner, &s->outer);
    } else {
        s->md = EVP_MD_CTX_new();
        if (s->md == NULL) {
            usersig_signer_free(s);
            return USERSIG_NO_MEMORY;
        }
    }
    *out = s;
    return USERSIG_OK;
}

void usersig_signer_free(struct usersig_signer *s)
{
    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->md);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

/* zlib wrapper around doc into out; returns the byte count or 0 on failure. */
static size_t compress_doc(struct usersig_signer *s, const char *doc, size_t n, uint8_t *out,
                           size_t cap)
{
    if (s->level == 0) {
        /* One stored block: header 78 01, BFINAL|stored, LEN, NLEN, data, Adler-32. */
        if (n > 65535 || cap < n + 11)
            return 0;
        uint8_t *o = out;
        uint32_t ad = (uint32_t)adler32(adler32(0L, Z_NULL, 0), (const Bytef *)doc, (uInt)n);
        *o++ = 0x78;
        *o++ = 0x01;
        *o++ = 0x01;
        *o++ = (uint8_t)(n & 0xff);
        *o++ = (uint8_t)(n >> 8);
        *o++ = (uint8_t)(~n & 0xff);
        *o++ = (uint8_t)((~n >> 8) & 0xff);
        memcpy(o, doc, n);
        o += n;
        o = put_be32(o, ad);
        return (size_t)(o - out);
    }
    return usersig_deflate((const uint8_t *)doc, n, s->level, out, cap);
}

/* Signs v1 content with the EC private key into a base64 DER signature. */
static enum usersig_rc ecdsa_sign_b64(struct usersig_signer *s, const char *content, size_t n,
                                      char *sig_b64)
{
    unsigned char der[160];
    size_t der_len = sizeof der;
    if (EVP_DigestSignInit(s->md, NULL, EVP_sha256(), NULL, s->key->pkey) != 1 ||
        EVP_DigestSign(s->md, der, &der_len, (const unsigned char *)content, n) != 1) {
        ERR_clear_error();
        return USERSIG_CRYPTO_FAILED;
    }
    usersig_b64_encode(der, der_len, sig_b64);
    return USERSIG_OK;
}

enum usersig_rc usersig_sign(struct usersig_signer *s, const struct usersig_params *p, char *out,
                             size_t out_cap, size_t *out_len)
{
    char content[512];
    char doc[1024];
    char sig_b64[224];
    char userbuf_b64[USERSIG_MAX_USERBUF * 4 / 3 + 8];
    size_t userbuf_b64_len = 0;
    uint8_t z[1200];
    char *c = content, *d = doc;

    enum usersig_rc rc = params_check(s, p);
    if (rc != USERSIG_OK)
        return rc;
    if (p->room.kind != USERSIG_ROOM_NONE) {
        uint8_t ub[USERSIG_MAX_USERBUF];
        size_t ub_len = 0;
        rc = usersig_userbuf_build(p->identifier, p->identifier_len, s->sdkappid,
                                   p->time + (int64_t)p->expire, &p->room, ub, sizeof ub, &ub_len);
        if (rc != USERSIG_OK)
            return rc;
        userbuf_b64_len = usersig_b64_encode(ub, ub_len, userbuf_b64);
    }

    if (s->key->kind == USERSIG_KEY_HMAC) {
        c = PUT_LIT(c, "TLS.identifier:");
        c = put_str(c, p->identifier, p->identifier_len);
        c = PUT_LIT(c, "\nTLS.sdkappid:");
        c = put_u64(c, s->sdkappid);
        c = PUT_LIT(c, "\nTLS.time:");
        c = put_u64(c, (uint64_t)p->time);
        c = PUT_LIT(c, "\nTLS.expire:");
        c = put_u64(c, p->expire);
        *c++ = '\n';
        if (userbuf_b64_len > 0) {
            c = PUT_LIT(c, "TLS.userbuf:");
            c = put_str(c, userbuf_b64, userbuf_b64_len);
            *c++ = '\n';
        }
        unsigned char mac[32];
        usersig_hmac_finish(&s->inner, &s->outer, content, (size_t)(c - content), mac);
        usersig_b64_encode(mac, sizeof mac, sig_b64);

        d = PUT_LIT(d, "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"");
        d = put_json_escaped(d, p->identifier, p->identifier_len);
        d = PUT_LIT(d, "\",\"TLS.sdkappid\":");
        d = put_u64(d, s->sdkappid);
        d = PUT_LIT(d, ",\"TLS.time\":");
        d = put_u64(d, (uint64_t)p->time);
        d = PUT_LIT(d, ",\"TLS.expire\":");
        d = put_u64(d, p->expire);
        if (userbuf_b64_len > 0) {
            d = PUT_LIT(d, ",\"TLS.userbuf\":\"");
            d = put_str(d, userbuf_b64, userbuf_b64_len);
            *d++ = '"';
        }
        d = PUT_LIT(d, ",\"TLS.sig\":\"");
        d = put_str(d, sig_b64, 44);
        d = PUT_LIT(d, "\"}");
    } else {
        /* Legacy v1: every value a string; appid_at_3rd and account_type "0". */
        c = PUT_LIT(c, "TLS.appid_at_3rd:0\nTLS.account_type:0\nTLS.identifier:");
        c = put_str(c, p->identifier, p->identifier_len);
        c = PUT_LIT(c, "\nTLS.sdk_appid:");
        c = put_u64(c, s->sdkappid);
        c = PUT_LIT(c, "\nTLS.time:");
        c = put_u64(c, (uint64_t)p->time);
        c = PUT_LIT(c, "\nTLS.expire_after:");
        c = put_u64(c, p->expire);
        *c++ = '\n';
        if (userbuf_b64_len > 0) {
            c = PUT_LIT(c, "TLS.userbuf:");
            c = put_str(c, userbuf_b64, userbuf_b64_len);
            *c++ = '\n';
        }
        rc = ecdsa_sign_b64(s, content, (size_t)(c - content), sig_b64);
        if (rc != USERSIG_OK)
            return rc;
        d = PUT_LIT(d, "{\"TLS.account_type\":\"0\",\"TLS.identifier\":\"");
        d = put_json_escaped(d, p->identifier, p->identifier_len);
        d = PUT_LIT(d, "\",\"TLS.appid_at_3rd\":\"0\",\"TLS.sdk_appid\":\"");
        d = put_u64(d, s->sdkappid);
        d = PUT_LIT(d, "\",\"TLS.expire_after\":\"");
        d = put_u64(d, p->expire);
        d = PUT_LIT(d, "\",\"TLS.version\":\"201512300000\",\"TLS.time\":\"");
        d = put_u64(d, (uint64_t)p->time);
        if (userbuf_b64_len > 0) {
            d = PUT_LIT(d, "\",\"TLS.userbuf\":\"");
            d = put_str(d, userbuf_b64, userbuf_b64_len);
        }
        d = PUT_LIT(d, "\",\"TLS.sig\":\"");
        d = put_str(d, sig_b64, strlen(sig_b64));
        d = PUT_LIT(d, "\"}");
    }

    size_t zn = compress_doc(s, doc, (size_t)(d - doc), z, sizeof z);
    if (zn == 0)
        return USERSIG_CRYPTO_FAILED;
    if (out_cap < (zn + 2) / 3 * 4 + 1)
        return USERSIG_NO_MEMORY;
    *out_len = b64_encode_with(b64_url, '_', z, zn, out);
    return USERSIG_OK;
}

/* Key access for the verifier (usersig_verify.c). */
const unsigned char *usersig_key_secret(const struct usersig_key *key, size_t *len)
{
    *len = key->secret_len;
    return key->secret;
}

EVP_PKEY *usersig_key_pkey(const struct usersig_key *key)
{
    return key->pkey;
}
