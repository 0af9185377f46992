/*
 * TLS on the admin API's listener (tls.h): the server SSL_CTX built from the configured files,
 * swapped on reload for new connections only, and the accepting bufferevent_openssl of each
 * connection. Every SSL takes its own reference on the SSL_CTX it was made from.
 */
#include "tls.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* TLS 1.2's suites: forward secret (ECDHE) AEADs only. TLS 1.3 keeps OpenSSL's defaults
 * (AES-GCM and ChaCha20-Poly1305). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define SESSION_ID_CONTEXT "usersigd admin api"

struct api_tls {
    char *cert_file, *key_file, *client_ca_file; /* client_ca_file NULL: no mTLS */
    SSL_CTX *ctx; /* the context of new connections; one reference held here */
};

/* what: "loading the certificate chain file /etc/x.pem"; OpenSSL's last reason appended (its
 * queue is cleared). */
static void tls_err(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e, last = 0;
    char reason[256] = "";

    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last != 0)
        ERR_error_string_n(last, reason, sizeof reason);
    log_errbuf(err, errlen, "TLS: %s%s%s: %s", what, file != NULL ? " " : "",
               file != NULL ? file : "", reason[0] != '\0' ? reason : "failed");
}

/* A new server context from t's files, or NULL with err filled. */
static SSL_CTX *tls_ctx_new(const struct api_tls *t, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    STACK_OF(X509_NAME) *names = NULL;

    ERR_clear_error(); /* so that the reason reported is this call's */
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_err(err, errlen, "creating a context", NULL);
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        tls_err(err, errlen, "setting the protocol versions and ciphers", NULL);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Sessions resumed only within this server (and the same verify settings). */
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                       sizeof SESSION_ID_CONTEXT - 1) != 1) {
        tls_err(err, errlen, "setting the session id context", NULL);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
        tls_err(err, errlen, "cannot load the certificate chain file", t->cert_file);
        goto fail;
    }
    /* OpenSSL checks the key against the certificate already here (X509_R_KEY_VALUES_MISMATCH),
     * SSL_CTX_check_private_key below in any case. */
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        tls_err(err, errlen, "cannot load the private key file", t->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        log_errbuf(err, errlen,
                   "TLS: the private key in %s does not match the certificate in %s (the first "
                   "certificate of the chain file must be the server's)",
                   t->key_file, t->cert_file);
        goto fail;
    }
    if (t->client_ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, t->client_ca_file, NULL) != 1) {
            tls_err(err, errlen, "cannot load the client CA file", t->client_ca_file);
            goto fail;
        }
        /* The CA names sent in the CertificateRequest, so a client picks the right certificate. */
        names = SSL_load_client_CA_file(t->client_ca_file);
        if (names == NULL) {
            tls_err(err, errlen, "no CA certificate in the client CA file", t->client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void api_tls_free(struct api_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx); /* open connections' SSLs keep their own references */
    free(t->cert_file);
    free(t->key_file);
    free(t->client_ca_file);
    free(t);
}

int api_tls_new(const struct api_tls_config *cfg, struct api_tls **out, char *err, size_t errlen)
{
    struct api_tls *t = NULL;

    *out = NULL;
    if (cfg == NULL || cfg->cert_file == NULL || cfg->cert_file[0] == '\0' ||
        cfg->key_file == NULL || cfg->key_file[0] == '\0') {
        log_errbuf(err, errlen, "TLS: a certificate chain file and a private key file are needed");
        return -1;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        goto oom;
    t->cert_file = strdup(cfg->cert_file);
    t->key_file = strdup(cfg->key_file);
    if (t->cert_file == NULL || t->key_file == NULL)
        goto oom;
    if (cfg->client_ca_file != NULL && cfg->client_ca_file[0] != '\0') {
        t->client_ca_file = strdup(cfg->client_ca_file);
        if (t->client_ca_file == NULL)
            goto oom;
    }
    t->ctx = tls_ctx_new(t, err, errlen);
    if (t->ctx == NULL) {
        api_tls_free(t);
        return -1;
    }
    *out = t;
    return 0;
oom:
    log_errbuf(err, errlen, "TLS: out of memory");
    api_tls_free(t);
    return -1;
}

int api_tls_reload(struct api_tls *t, char *err, size_t errlen)
{
    SSL_CTX *fresh = tls_ctx_new(t, err, errlen);

    if (fresh == NULL)
        return -1;
    SSL_CTX_free(t->ctx); /* the last reference goes with the last connection made from it */
    t->ctx = fresh;
    return 0;
}

struct bufferevent *api_tls_bufferevent(struct api_tls *t, struct event_base *base)
{
    SSL *ssl = SSL_new(t->ctx); /* takes a reference on t->ctx */
    struct bufferevent *bev;

    if (ssl == NULL) {
        ERR_clear_error();
        log_error("TLS: out of memory for a connection");
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        log_error("TLS: out of memory for a connection");
        return NULL;
    }
    /* A client that closes without close_notify (most do, once they have their reply) ends
     * the stream; it is not an error to report. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
