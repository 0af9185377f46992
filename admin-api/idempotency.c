/*
 * Idempotency-Key (idempotency.h). What is kept is a keyed hash of the request (HMAC-SHA256
 * under the keyring's fingerprint key over the SHA-256 of method, path and body), never the body:
 * a key import's body holds a secret. The claim is committed before the handler runs, so a second
 * process sees it at once; the handler's reply is kept after it, in a transaction of its own.
 */
#include "idempotency.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "log.h"
#include "service.h"
#include "store.h"

#define HASH_CONTEXT "usersigd idempotency"

_Static_assert(API_IDEM_KEY_MAX == STORE_IDEM_KEY_MAX, "one bound for the key");

bool idem_route_takes_key(const struct api_route *route)
{
    /* api_server_new has refused the flag on any route that is not an offloaded POST. */
    return route != NULL && (route->flags & API_ROUTE_IDEMPOTENT);
}

/* The Idempotency-Key header: 1 when given once, 0 when absent, -1 when given twice. */
static int header_value(const struct api_request *r, const char **out)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
    *out = NULL;
    for (const struct evkeyval *kv = h != NULL ? h->tqh_first : NULL; kv != NULL;
         kv = kv->next.tqe_next) {
        if (evutil_ascii_strcasecmp(kv->key, "Idempotency-Key") != 0)
            continue;
        if (*out != NULL)
            return -1;
        *out = kv->value;
    }
    return *out != NULL;
}

static bool key_ok(const char *v)
{
    size_t n = 0;
    for (; v[n] != '\0'; n++)
        if (n >= API_IDEM_KEY_MAX || (unsigned char)v[n] < 0x20 || (unsigned char)v[n] > 0x7e)
            return false;
    return n > 0;
}

/* SHA-256(method NUL path NUL body) into out; -1 when out of memory. */
static int request_hash(const struct api_request *r, struct evbuffer *in, uint8_t out[32])
{
    const char *method = api_method_name(r->method);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, method, strlen(method) + 1) == 1 &&
             EVP_DigestUpdate(ctx, r->path, strlen(r->path) + 1) == 1;
    int n = ok && in != NULL ? evbuffer_peek(in, -1, NULL, NULL, 0) : 0;
    unsigned int len = 0;

    if (n > 0) {
        struct evbuffer_iovec *v = calloc((size_t)n, sizeof *v);
        ok = v != NULL && evbuffer_peek(in, -1, NULL, v, n) == n;
        for (int i = 0; ok && i < n; i++)
            ok = EVP_DigestUpdate(ctx, v[i].iov_base, v[i].iov_len) == 1;
        free(v);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int idem_prepare(struct api_request *r, struct evbuffer *in)
{
    const char *v;
    switch (header_value(r, &v)) {
    case 0:
        return 0;
    case 1:
        if (key_ok(v))
            break;
        /* fall through */
    default:
        api_reply_error(r, API_ERR_INVALID_PARAM,
                        "the Idempotency-Key header must be given once, 1 to %d printable ASCII "
                        "characters",
                        API_IDEM_KEY_MAX);
        return -1;
    }
    if (request_hash(r, in, r->idempotency_hash) != 0) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory hashing the request");
        return -1;
    }
    memcpy(r->idempotency_key, v, strlen(v) + 1);
    return 0;
}

/* The stored reply again, marked as replayed. A stored error is replayed as that error (the
 * access line and metrics then name its code). */
static void replay_stored(struct api_request *r, int status, const char *text)
{
    json_error_t je;
    json_t *body = json_loads(text, 0, &je);
    json_t *error = json_object_get(body, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    int e = code != NULL ? api_error_parse(code) : -1;

    if (body == NULL) {
        log_msg(LOG_ERROR, r->request_id, "idempotency: a kept reply does not parse as JSON");
        api_reply_error(r, API_ERR_INTERNAL, NULL);
        return;
    }
    if (api_reply_header(r, "Idempotency-Replayed", "true") != 0) {
        json_decref(body);
        api_reply_error(r, API_ERR_INTERNAL, "out of memory adding a response header");
        return;
    }
    if (e > 0 && message != NULL && api_error_status((enum api_error)e) == status) {
        api_reply_error(r, (enum api_error)e, "%s", message);
        json_decref(body);
        return;
    }
    api_reply_json(r, status, body);
}

/* The claimed key: the handler runs, then its reply is kept (or the key released on a 5xx). */
static void run_and_keep(struct api_request *r, struct service *svc, int64_t token_id)
{
    int status = 0;
    json_t *body = NULL;
    char *text = NULL;
    enum store_rc rc;

    r->route->handler(r);
    if (api_request_recorded(r, &status, &body) != 0 || status >= 500 || status < 100 ||
        (text = json_dumps(body, JSON_COMPACT)) == NULL) {
        json_decref(body);
        if (status < 500)
            log_msg(LOG_WARN, r->request_id, "idempotency: the reply could not be kept");
        if (store_idem_release(svc->st, token_id, r->idempotency_key) == STORE_ERROR)
            log_msg(LOG_WARN, r->request_id,
                    "idempotency: could not release the key; a retry with it gets 409 until "
                    "it expires");
        return;
    }
    json_decref(body);
    rc = store_idem_finish(svc->st, token_id, r->idempotency_key, status, text);
    free(text);
    if (rc != STORE_OK)
        log_msg(LOG_WARN, r->request_id,
                "idempotency: the reply (%d) could not be kept; a retry with its key gets 409 "
                "until the key expires",
                status);
}

static void idem_run(struct api_request *r)
{
    struct service *svc = r->ctx;
    uint8_t in[sizeof HASH_CONTEXT + 32], keyed[KEYRING_FP_BYTES];
    struct store_idem x = {0};
    int64_t token_id = r->principal != NULL ? r->principal->token_id : 0;

    memcpy(in, HASH_CONTEXT, sizeof HASH_CONTEXT); /* its NUL included */
    memcpy(in + sizeof HASH_CONTEXT, r->idempotency_hash, 32);
    if (svc == NULL || svc->st == NULL || token_id <= 0 ||
        keyring_fingerprint_hmac(svc->kr, in, sizeof in, keyed) != KEYRING_OK) {
        api_reply_error(r, API_ERR_INTERNAL, "idempotency: no store, token or keyring");
        return;
    }
    if (store_idem_claim(svc->st, token_id, r->idempotency_key, keyed, &x) != STORE_OK) {
        api_reply_error(r, API_ERR_UNAVAILABLE, "cannot check the Idempotency-Key now; retry");
        return;
    }
    switch (x.state) {
    case STORE_IDEM_CLAIMED:
        run_and_keep(r, svc, token_id);
        break;
    case STORE_IDEM_RUNNING:
        api_reply_error(r, API_ERR_IDEMPOTENCY_IN_PROGRESS, NULL);
        break;
    case STORE_IDEM_MISMATCH:
        api_reply_error(r, API_ERR_IDEMPOTENCY_KEY_REUSED, NULL);
        break;
    case STORE_IDEM_DONE:
        replay_stored(r, x.status, x.body);
        break;
    }
    store_idem_clear(&x);
}

void idem_handler(struct api_request *r)
{
    bool own = !api_request_capturing(r);
    if (own && api_request_capture(r) != 0)
        return; /* a bug, logged; the dispatcher answers 500 */
    idem_run(r);
    if (own)
        api_request_replay(r);
}
