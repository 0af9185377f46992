/*
 * Sign, then read back two ways: a token signed from fuzzed inputs (identifier, expire, time,
 * room, zlib level) must decode with the codec to exactly those inputs and verify; and its
 * deflate stream, inflated by zlib's own inflate(), must give the very document the codec
 * decoded. The second half checks the codec's own deflate encoder (usersig_deflate.c) against
 * zlib, independently of the codec's inflating.
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "usersig.h"

#define SECRET "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"

static struct usersig_key *key;
static struct usersig_signer *signers[10][2]; /* level x policy */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (usersig_key_new_hmac(SECRET, strlen(SECRET), &key) != USERSIG_OK)
        abort();
    for (int l = 0; l < 10; l++)
        for (int p = 0; p < 2; p++)
            if (usersig_signer_new(key, 1400000000u + (uint32_t)l, l, (enum usersig_id_policy)p,
                                   &signers[l][p]) != USERSIG_OK)
                abort();
    return 0;
}

/* Bytes taken from the front of the input, zero once it is used up. */
struct take {
    const uint8_t *p;
    size_t n;
};

static uint64_t take_u(struct take *t, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v = v << 8 | (t->n > 0 ? *t->p : 0);
        if (t->n > 0)
            t->p++, t->n--;
    }
    return v;
}

/* The token's characters back to standard base64, decoded with OpenSSL; then zlib's inflate.
 * Returns the inflated length, or -1. */
static long zlib_inflate(const char *tok, size_t len, uint8_t *out, size_t cap)
{
    static char b64[USERSIG_TOKEN_BUF];
    static uint8_t raw[USERSIG_TOKEN_BUF];
    if (len == 0 || len % 4 != 0 || len >= sizeof b64)
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = tok[i];
        b64[i] = c == '*' ? '+' : c == '-' ? '/' : c == '_' ? '=' : c;
        if (c == '+' || c == '/' || c == '=')
            return -1; /* the token alphabet has none of them */
    }
    pad = (b64[len - 1] == '=') + (b64[len - 2] == '=');
    int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -1;
    n -= (int)pad;
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK)
        return -1;
    z.next_in = raw;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    long got = (long)(cap - z.avail_out);
    bool all_in = z.avail_in == 0;
    inflateEnd(&z);
    return rc == Z_STREAM_END && all_in ? got : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tok[USERSIG_TOKEN_BUF];
    static struct usersig_decoded d;
    static uint8_t doc[USERSIG_MAX_DOCUMENT + 64];
    char room_str[USERSIG_MAX_ROOM_STR + 8];
    struct take t = {data, size};

    int level = (int)(take_u(&t, 1) % 10);
    int policy = (int)(take_u(&t, 1) & 1);
    uint32_t expire = (uint32_t)take_u(&t, 4);
    int64_t time = (int64_t)(take_u(&t, 8) & 0x7fffffffffffffffULL);
    if (take_u(&t, 1) & 1)
        time &= 0xffffffffffULL; /* mostly realistic times */
    unsigned room_sel = (unsigned)take_u(&t, 1) % 3;
    uint32_t room_id = (uint32_t)take_u(&t, 4);
    uint32_t priv = (uint32_t)take_u(&t, 2) & 0x1ff;
    size_t room_len = (size_t)take_u(&t, 1) % (sizeof room_str);
    for (size_t i = 0; i < room_len; i++)
        room_str[i] = (char)take_u(&t, 1);
    /* The rest is the identifier. */
    const char *id = (const char *)t.p;
    size_t id_len = t.n;

    struct usersig_params p = {
        .identifier = id, .identifier_len = id_len, .expire = expire, .time = time};
    if (room_sel == 1)
        p.room = (struct usersig_room){
            .kind = USERSIG_ROOM_NUMERIC, .room_id = room_id, .privilege_map = priv};
    else if (room_sel == 2)
        p.room = (struct usersig_room){.kind = USERSIG_ROOM_STRING,
                                       .room_str = room_str,
                                       .room_str_len = room_len,
                                       .privilege_map = priv};
    size_t tlen = 0;
    memset(tok, 0, sizeof tok);
    enum usersig_rc rc = usersig_sign(signers[level][policy], &p, tok, sizeof tok, &tlen);
    if (rc != USERSIG_OK) {
        if (tok[0] != '\0')
            abort(); /* nothing written on failure */
        return 0;
    }
    if (tlen == 0 || tlen >= sizeof tok || strlen(tok) != tlen)
        abort();

    /* The codec reads back exactly what it signed, and it verifies. */
    if (usersig_decode(tok, tlen, &d) != USERSIG_VALID || d.version != 2 ||
        d.identifier_len != id_len || memcmp(d.identifier, id, id_len) != 0 ||
        d.sdkappid != 1400000000u + (uint32_t)level || d.time != time || d.expire != expire)
        abort();
    if ((room_sel != 0) != (d.has_room != 0))
        abort();
    if (room_sel != 0 &&
        (d.room.privilege_map != priv || d.room.sdkappid != d.sdkappid ||
         d.room.expire_at != (uint32_t)(time + expire) ||
         (room_sel == 1 && (d.room.version != 0 || d.room.room_id != room_id)) ||
         (room_sel == 2 && (d.room.version != 1 || d.room.room_str_len != room_len ||
                            memcmp(d.room.room_str, room_str, room_len) != 0))))
        abort();
    struct usersig_expect ex = {.identifier = id, .identifier_len = id_len, .sdkappid = d.sdkappid};
    if (usersig_check(&d, &ex, key, time) != USERSIG_VALID ||
        usersig_check(&d, &ex, key, time + expire) != USERSIG_VALID ||
        usersig_check(&d, &ex, key, time + expire + 1) != USERSIG_EXPIRED)
        abort();

    /* zlib's own inflate reads the codec's deflate stream as the same document. */
    long n = zlib_inflate(tok, tlen, doc, sizeof doc);
    if (n < 0 || (size_t)n != d.document_len || memcmp(doc, d.document, d.document_len) != 0)
        abort();
    return 0;
}
