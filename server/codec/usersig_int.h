/*
 * Internals shared by the codec's signing (usersig.c), decoding (usersig_decode.c) and verifying
 * (usersig_verify.c) parts, and with the keyring where it must agree with the codec on which EC
 * keys are acceptable.
 */
#ifndef USERSIG_INT_H
#define USERSIG_INT_H

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "usersig.h"

void usersig_hmac_pads(const struct usersig_key *key, SHA256_CTX *inner, SHA256_CTX *outer);
/* HMAC-SHA256 of msg with an HMAC key, from the pads computed when the key was made. */
void usersig_key_mac(const struct usersig_key *key, const void *msg, size_t n,
                     unsigned char mac[32]);
void usersig_hmac_finish(const SHA256_CTX *inner, const SHA256_CTX *outer, const void *msg,
                         size_t n, unsigned char mac[32]);
/* SHA-256 of msg with the low-level functions: no fetch or allocation, as SHA256() makes on
 * each call (the keyring hashes an API token's secret on every request). */
void usersig_sha256(const void *msg, size_t n, unsigned char out[32]);
const unsigned char *usersig_key_secret(const struct usersig_key *key, size_t *len);
EVP_PKEY *usersig_key_pkey(const struct usersig_key *key);
/* 1 for an EC key on secp256k1 or P-256 (prime256v1), the curves accepted for v1 keys. */
int usersig_curve_supported(EVP_PKEY *pkey);

/* Deflates in (at most USERSIG_DEFLATE_MAX bytes) into a zlib stream of one fixed-Huffman block
 * (usersig_deflate.c); level 1..9 sets the match search depth. Returns the size, 0 when cap is
 * too small. */
#define USERSIG_DEFLATE_MAX 4096
size_t usersig_deflate(const uint8_t *in, size_t n, int level, uint8_t *out, size_t cap);

/* Base64 helpers internal to libusersig and its tests. Standard alphabet with padding.
 * encode writes 4*ceil(n/3) chars plus NUL; decode returns the byte count or -1. */
size_t usersig_b64_encode(const uint8_t *in, size_t n, char *out);
long usersig_b64_decode(const char *in, size_t n, uint8_t *out, size_t out_cap);

#endif
