/*
 * The token decoder and verifier on any bytes: usersig_decode, then usersig_check with a fixed
 * HMAC key and a fixed EC key, and usersig_verify, which must agree with decode + check. A token
 * that decodes has NUL-terminated fields of the lengths it reports.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usersig.h"

/* The official vectors' key (tests/vectors/vectors.jsonl): their tokens decode and verify. */
#define SECRET "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"

static struct usersig_key *hmac_key, *ec_key;

static struct usersig_key *make_ec_key(void)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    struct usersig_key *k = NULL;
    char *pem;
    if (pk != NULL && bio != NULL && PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL)) {
        long n = BIO_get_mem_data(bio, &pem);
        if (usersig_key_new_pem(pem, (size_t)n, &k) != USERSIG_OK)
            k = NULL;
    }
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return k;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (usersig_key_new_hmac(SECRET, strlen(SECRET), &hmac_key) != USERSIG_OK ||
        (ec_key = make_ec_key()) == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct usersig_decoded d, d2;
    const char *tok = (const char *)data;
    enum usersig_verdict v = usersig_decode(tok, size, &d);

    if (v >= USERSIG_VERDICT_COUNT)
        abort();
    if (v != USERSIG_VALID) {
        /* What does not decode is refused the same way by the verifier. */
        if (usersig_verify(tok, size, NULL, hmac_key, 0, NULL) != v)
            abort();
        return 0;
    }
    if (d.version != 1 && d.version != 2)
        abort();
    if (strlen(d.identifier) != d.identifier_len || d.sig_len >= sizeof d.sig ||
        strlen(d.sig) != d.sig_len || d.document_len > USERSIG_MAX_DOCUMENT ||
        d.document[d.document_len] != '\0' || d.userbuf_len > sizeof d.userbuf ||
        d.userbuf_b64_len >= sizeof d.userbuf_b64)
        abort();

    struct usersig_key *keys[] = {hmac_key, ec_key};
    for (size_t i = 0; i < 2; i++) {
        struct usersig_expect ex = {
            .identifier = d.identifier,
            .identifier_len = d.identifier_len,
            .sdkappid = d.sdkappid,
        };
        if (d.has_room) {
            ex.room_kind = d.room.version == 1 ? USERSIG_ROOM_STRING : USERSIG_ROOM_NUMERIC;
            ex.room_id = d.room.room_id;
            ex.room_str = d.room.room_str;
            ex.room_str_len = d.room.room_str_len;
            ex.privileges = d.room.privilege_map;
        }
        int64_t nows[] = {0, d.time, d.time + d.expire, INT64_MAX};
        for (size_t j = 0; j < sizeof nows / sizeof nows[0]; j++) {
            enum usersig_verdict c = usersig_check(&d, &ex, keys[i], nows[j]);
            enum usersig_verdict w = usersig_verify(tok, size, &ex, keys[i], nows[j], &d2);
            if (c >= USERSIG_VERDICT_COUNT || c != w)
                abort();
        }
        enum usersig_verdict s = usersig_check_signature(&d, keys[i]);
        if (s != USERSIG_VALID && s != USERSIG_SIGNATURE_MISMATCH && s != USERSIG_KIND_MISMATCH)
            abort();
        (void)usersig_verdict_name(s);
        (void)usersig_verdict_message(s);
    }
    return 0;
}
