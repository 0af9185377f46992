/*
 * Internals of the keyring, shared by its files (keyring.c: the master key file, app keys, the
 * root secret, fingerprints and API tokens; keyring_ckpt.c: the audit checkpoint key and webhook
 * secrets) and included by nothing else: keyring.h stays the only interface.
 */
#ifndef KEYRING_INT_H
#define KEYRING_INT_H

#include <stddef.h>
#include <stdint.h>

#include "keyring.h"

struct keyring {
    uint8_t master[KEYRING_KEY_BYTES];
    int has_root;
    uint8_t audit_key[KEYRING_KEY_BYTES];
    uint8_t fingerprint_key[KEYRING_KEY_BYTES];
    uint8_t notice_key[KEYRING_KEY_BYTES]; /* the MAC of what processes tell each other */
};

/* AES-256-GCM under key with associated data aad: *out is a new buffer of nonce, ciphertext and
 * tag (*out_len = len + KEYRING_SEAL_OVERHEAD); the caller free()s it. */
enum keyring_rc keyring_gcm_seal(const uint8_t key[KEYRING_KEY_BYTES], const uint8_t *aad,
                                 size_t aad_len, const uint8_t *pt, size_t len, uint8_t **out,
                                 size_t *out_len);
/* Opens what keyring_gcm_seal() made with the same key and aad: *out is a new buffer of the
 * plaintext and a NUL (*out_len without it); the caller keyring_secret_free()s it. */
enum keyring_rc keyring_gcm_unseal(const uint8_t key[KEYRING_KEY_BYTES], const uint8_t *aad,
                                   size_t aad_len, const uint8_t *sealed, size_t sealed_len,
                                   uint8_t **out, size_t *out_len);

/* The PEM passphrase callback that refuses: an encrypted PEM is refused rather than prompted for
 * on a terminal. */
int keyring_no_passphrase(char *buf, int size, int rwflag, void *u);

#endif
