/*
 * UserSig verification: the checks on a decoded token (usersig_decode.c), run in the order
 * Tencent's strictest verifier does: identifier, sdkappid, expiry, signature, room and
 * privileges.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "usersig.h"
#include "usersig_int.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <string.h>

/* ---- checks ------------------------------------------------------------------------------ */

static size_t append(char *buf, size_t at, size_t cap, const char *s, size_t n)
{
    if (at + n > cap)
        return cap + 1;
    memcpy(buf + at, s, n);
    return at + n;
}

#define APPEND_LIT(buf, at, cap, lit) append((buf), (at), (cap), (lit), sizeof(lit) - 1)
#define APPEND_STR(buf, at, cap, s) append((buf), (at), (cap), (s), strlen(s))

static size_t append_u64(char *buf, size_t at, size_t cap, uint64_t v)
{
    char tmp[24];
    int n = 0;
    char out[24];
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return append(buf, at, cap, out, (size_t)n);
}

/* The text a v2 token's MAC covers, into content: its length, or more than cap when it does
 * not fit. */
static size_t v2_content(const struct usersig_decoded *d, char *content, size_t cap)
{
    size_t n = 0;
    n = APPEND_LIT(content, n, cap, "TLS.identifier:");
    n = append(content, n, cap, d->identifier, d->identifier_len);
    n = APPEND_LIT(content, n, cap, "\nTLS.sdkappid:");
    n = append_u64(content, n, cap, d->sdkappid);
    n = APPEND_LIT(content, n, cap, "\nTLS.time:");
    n = append_u64(content, n, cap, (uint64_t)d->time);
    n = APPEND_LIT(content, n, cap, "\nTLS.expire:");
    n = append_u64(content, n, cap, (uint64_t)d->expire);
    n = APPEND_LIT(content, n, cap, "\n");
    if (d->userbuf_b64_len > 0) {
        n = APPEND_LIT(content, n, cap, "TLS.userbuf:");
        n = append(content, n, cap, d->userbuf_b64, d->userbuf_b64_len);
        n = APPEND_LIT(content, n, cap, "\n");
    }
    return n;
}

/* The text a v1 token's signature covers, as v2_content. */
static size_t v1_content(const struct usersig_decoded *d, char *content, size_t cap)
{
    size_t n = 0;
    n = APPEND_LIT(content, n, cap, "TLS.appid_at_3rd:");
    n = APPEND_STR(content, n, cap, d->v1_appid_at_3rd);
    n = APPEND_LIT(content, n, cap, "\nTLS.account_type:");
    n = APPEND_STR(content, n, cap, d->v1_account_type);
    n = APPEND_LIT(content, n, cap, "\nTLS.identifier:");
    n = append(content, n, cap, d->identifier, d->identifier_len);
    n = APPEND_LIT(content, n, cap, "\nTLS.sdk_appid:");
    n = APPEND_STR(content, n, cap, d->v1_sdk_appid);
    n = APPEND_LIT(content, n, cap, "\nTLS.time:");
    n = APPEND_STR(content, n, cap, d->v1_time);
    n = APPEND_LIT(content, n, cap, "\nTLS.expire_after:");
    n = APPEND_STR(content, n, cap, d->v1_expire_after);
    n = APPEND_LIT(content, n, cap, "\n");
    if (d->userbuf_b64_len > 0) {
        n = APPEND_LIT(content, n, cap, "TLS.userbuf:");
        n = append(content, n, cap, d->userbuf_b64, d->userbuf_b64_len);
        n = APPEND_LIT(content, n, cap, "\n");
    }
    return n;
}

/* What one signature check needs from the token, prepared once for any number of keys. */
struct sig_probe {
    int version; /* 2: HMAC over content; 1: ECDSA (DER in sig); 0: no key can match */
    char content[2048];
    size_t content_len;
    uint8_t sig[256];
    size_t sig_len;
};

static void probe_prepare(const struct usersig_decoded *d, struct sig_probe *p)
{
    p->version = 0;
    if (d->version == 2) {
        p->content_len = v2_content(d, p->content, sizeof p->content);
        long n = usersig_b64_decode(d->sig, d->sig_len, p->sig, sizeof p->sig);
        if (p->content_len <= sizeof p->content && n == 32) {
            p->sig_len = 32;
            p->version = 2;
        }
    } else if (d->version == 1) {
        p->content_len = v1_content(d, p->content, sizeof p->content);
        long n = usersig_b64_decode(d->sig, d->sig_len, p->sig, sizeof p->sig);
        if (p->content_len <= sizeof p->content && n > 0) {
            p->sig_len = (size_t)n;
            p->version = 1;
        }
    }
}

/* True when key made the probe's signature (the key is of the probe's kind). Constant time in
 * the MAC comparison. */
static bool probe_matches(const struct sig_probe *p, const struct usersig_key *key)
{
    if (p->version == 2) {
        unsigned char mac[32];
        usersig_key_mac(key, p->content, p->content_len, mac);
        bool ok = CRYPTO_memcmp(mac, p->sig, sizeof mac) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        return ok;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return false;
    bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, usersig_key_pkey(key)) == 1 &&
              EVP_DigestVerify(md, p->sig, p->sig_len, (const unsigned char *)p->content,
                               p->content_len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

static bool probe_kind_fits(const struct sig_probe *p, const struct usersig_key *key)
{
    return key != NULL && ((p->version == 2 && usersig_key_kind(key) == USERSIG_KEY_HMAC) ||
                           (p->version == 1 && usersig_key_kind(key) == USERSIG_KEY_ECDSA));
}

size_t usersig_find_signer(const struct usersig_decoded *d, const struct usersig_key *const *keys,
                           size_t n)
{
    struct sig_probe p;
    size_t found = n;

    probe_prepare(d, &p);
    for (size_t i = 0; i < n && p.version != 0; i++)
        if (probe_kind_fits(&p, keys[i]) && probe_matches(&p, keys[i])) {
            found = i;
            break;
        }
    return found;
}

enum usersig_verdict usersig_check_signature(const struct usersig_decoded *d,
                                             const struct usersig_key *key)
{
    if (key == NULL)
        return USERSIG_SIGNATURE_MISMATCH;
    if ((d->version == 2 && usersig_key_kind(key) == USERSIG_KEY_HMAC) ||
        (d->version == 1 && usersig_key_kind(key) == USERSIG_KEY_ECDSA))
        return usersig_find_signer(d, &key, 1) == 0 ? USERSIG_VALID : USERSIG_SIGNATURE_MISMATCH;
    return USERSIG_KIND_MISMATCH;
}

enum usersig_verdict usersig_check(const struct usersig_decoded *d, const struct usersig_expect *e,
                                   const struct usersig_key *key, int64_t now)
{
    if (e != NULL && e->identifier != NULL &&
        (e->identifier_len != d->identifier_len ||
         memcmp(e->identifier, d->identifier, d->identifier_len) != 0))
        return USERSIG_IDENTIFIER_MISMATCH;
    if (e != NULL && e->sdkappid != 0 && e->sdkappid != d->sdkappid)
        return USERSIG_SDKAPPID_MISMATCH;
    if (now > d->time + d->expire)
        return USERSIG_EXPIRED;
    enum usersig_verdict v = usersig_check_signature(d, key);
    if (v != USERSIG_VALID)
        return v;
    if (e != NULL && e->room_kind != USERSIG_ROOM_NONE) {
        if (!d->has_room)
            return USERSIG_ROOM_MISMATCH;
        if (e->room_kind == USERSIG_ROOM_NUMERIC &&
            (d->room.version != 0 || d->room.room_id != e->room_id))
            return USERSIG_ROOM_MISMATCH;
        if (e->room_kind == USERSIG_ROOM_STRING &&
            (d->room.version != 1 || d->room.room_str_len != e->room_str_len ||
             memcmp(d->room.room_str, e->room_str, e->room_str_len) != 0))
            return USERSIG_ROOM_MISMATCH;
        if ((d->room.privilege_map & e->privileges) != e->privileges)
            return USERSIG_PRIVILEGE_MISSING;
    }
    return USERSIG_VALID;
}

enum usersig_verdict usersig_verify(const char *token, size_t len,
                                    const struct usersig_expect *expect,
                                    const struct usersig_key *key, int64_t now,
                                    struct usersig_decoded *d)
{
    static _Thread_local struct usersig_decoded scratch;
    if (d == NULL)
        d = &scratch;
    enum usersig_verdict v = usersig_decode(token, len, d);
    if (v != USERSIG_VALID)
        return v;
    return usersig_check(d, expect, key, now);
}
