/*
 * TLS on the admin API's listener: one server SSL_CTX made from a certificate chain file and a
 * private key file (optionally a CA file for client certificates), and the accepting
 * bufferevent_openssl that evhttp's bufferevent callback hands each new connection.
 *
 * Policy: TLS 1.2 at least; for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305,
 * TLS 1.3 with OpenSSL's default suites; no renegotiation, no compression. With a client CA
 * file every client must present a certificate that chains to it (the handshake fails without
 * one); the bearer token is still required on top of it.
 *
 * Reload: api_tls_reload() builds a new SSL_CTX from the same files; new connections get it,
 * connections already open keep the context they started with (each SSL holds a reference on
 * its SSL_CTX), so a reload never drops a connection. On failure the old context stays.
 *
 * Threading: everything here runs on the event loop's thread (the bufferevent callback and the
 * SIGHUP callback both run there), so the context pointer needs no lock.
 */
#ifndef API_TLS_H
#define API_TLS_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stddef.h>

struct api_tls_config {
    const char *cert_file, *key_file; /* PEM: the chain (leaf first) and its private key */
    const char *client_ca_file;       /* PEM CA certificates; NULL or "" = no client certificates */
};

struct api_tls; /* opaque */

/* Copies the paths, loads the files and checks them (the key matches the certificate, the CA
 * file parses). 0 with *out set (free it with api_tls_free), or -1 with err naming the file and
 * OpenSSL's reason (never key material). */
int api_tls_new(const struct api_tls_config *cfg, struct api_tls **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Reads the same files again into a new SSL_CTX and swaps it in for new connections. 0, or -1
 * with err filled and the old context kept. Open connections keep theirs. */
int api_tls_reload(struct api_tls *t, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A new accepting bufferevent_openssl on base with fd -1 (evhttp sets the fd), an SSL of the
 * current context, BEV_OPT_CLOSE_ON_FREE (freeing it frees the SSL and closes the socket); dirty
 * shutdowns by the client count as an end of stream. NULL on failure (logged). */
struct bufferevent *api_tls_bufferevent(struct api_tls *t, struct event_base *base);

/* Frees t and its reference on the context (accepts NULL); open connections keep theirs. */
void api_tls_free(struct api_tls *t);

#endif
