/*
 * Audit checkpoints (checkpoint.h): the key read or made, the writer's step under its lock, the
 * checks of a checkpoint against the chain, and the JSON form of checkpoints and of the key.
 */
#include "checkpoint.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "hex.h"
#include "log.h"
#include "webhooks.h"

__attribute__((format(printf, 3, 4))) static void say(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

const char *ckpt_problem_name(enum ckpt_problem p)
{
    static const char *const names[] = {"ok",           "bad_signature", "no_key", "missing_event",
                                        "mac_mismatch", "chain_broken"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

void ckpt_fingerprint(const uint8_t pub[KEYRING_CKPT_KEY_BYTES], char out[65])
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256(pub, KEYRING_CKPT_KEY_BYTES, h);
    hex_encode(h, sizeof h, out);
}

/* ---- the key -------------------------------------------------------------------------------- */

static const struct principal *server_principal(void)
{
    return NULL; /* service_audit: the server itself */
}

enum api_error ckpt_key_get_or_create(struct service *svc, struct store_ckpt_key *out, char *msg,
                                      size_t cap)
{
    struct store_ckpt_key k;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    char fp[65];
    enum store_rc rc;
    enum keyring_rc krc;

    say(msg, cap, "%s", "");
    rc = store_ckpt_key_get(svc->st, false, out);
    if (rc == STORE_OK)
        return API_OK;
    if (rc != STORE_NOT_FOUND)
        goto unavailable;
    memset(&k, 0, sizeof k);
    krc = keyring_ckpt_key_create(svc->kr, k.public_key, &sealed, &sealed_len);
    if (krc != KEYRING_OK || sealed_len > sizeof k.sealed) {
        log_error("audit checkpoints: cannot make the checkpoint key: %s", keyring_rc_message(krc));
        free(sealed);
        goto unavailable;
    }
    memcpy(k.sealed, sealed, sealed_len);
    k.sealed_len = sealed_len;
    free(sealed); /* sealed: nothing secret */
    ckpt_fingerprint(k.public_key, fp);
    if (store_begin(svc->st) != STORE_OK)
        goto unavailable;
    rc = store_ckpt_key_insert(svc->st, &k);
    if (rc == STORE_CONFLICT) { /* another process made it first: use that one */
        store_rollback(svc->st);
        rc = store_ckpt_key_get(svc->st, false, out);
        if (rc != STORE_OK)
            goto unavailable;
        return API_OK;
    }
    json_t *details = json_pack("{s:s, s:s}", "algorithm", "ed25519", "fingerprint", fp);
    if (rc != STORE_OK || details == NULL ||
        service_audit(svc, server_principal(), "audit.checkpoint_key.create", 0, 0, "ok",
                      details) != STORE_OK ||
        store_commit(svc->st) != STORE_OK) {
        if (details == NULL)
            log_error("audit checkpoints: out of memory");
        store_rollback(svc->st);
        goto unavailable;
    }
    log_info("audit checkpoints: made the checkpoint key (Ed25519, fingerprint %s)", fp);
    rc = store_ckpt_key_get(svc->st, false, out);
    if (rc != STORE_OK)
        goto unavailable;
    return API_OK;
unavailable:
    say(msg, cap, "the audit checkpoint key cannot be read or made (see the log)");
    return API_ERR_UNAVAILABLE;
}

/* ---- the writer ----------------------------------------------------------------------------- */

enum ckpt_step ckpt_write_step(struct service *svc, const struct ckpt_policy *pol,
                               struct store_ckpt *out, char *msg, size_t cap)
{
    static const uint8_t zero[AUDIT_MAC_LEN];
    struct store_ckpt latest;
    struct store_ckpt_key key;
    struct audit_verify_result v;
    int64_t head_seq = 0, head_at = 0, db_now = 0;
    uint8_t head_mac[AUDIT_MAC_LEN];
    char text[AUDIT_CKPT_MSG_BUF];
    size_t text_len;
    bool got = false, have_latest;
    enum ckpt_step step = CKPT_FAILED;
    enum store_rc rc;

    say(msg, cap, "%s", "");
    if (pol->every_events <= 0 && pol->every_seconds <= 0)
        return CKPT_NOT_DUE;
    if (store_begin(svc->st) != STORE_OK)
        return CKPT_FAILED;
    if (store_ckpt_lock(svc->st, &got) != STORE_OK)
        goto done;
    if (!got) {
        step = CKPT_NOT_DUE;
        goto done;
    }
    rc = store_ckpt_latest(svc->st, &latest);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        goto done;
    have_latest = rc == STORE_OK;
    if (!have_latest)
        memset(&latest, 0, sizeof latest);
    if (store_audit_last(svc->st, &head_seq, head_mac, &head_at, &db_now) != STORE_OK)
        goto done;
    if (head_seq < latest.seq) {
        say(msg, cap,
            "the audit log ends at seq %lld, before the latest checkpoint's seq %lld: events were "
            "removed from its end; no checkpoint is written",
            (long long)head_seq, (long long)latest.seq);
        step = CKPT_REFUSED;
        goto done;
    }
    if (head_seq == latest.seq) {
        step = CKPT_NOT_DUE;
        goto done;
    }
    int64_t since = have_latest ? latest.at_us : pol->started_us;
    bool due = (pol->every_events > 0 && head_seq - latest.seq >= pol->every_events) ||
               (pol->every_seconds > 0 && db_now - since >= pol->every_seconds * 1000000);
    if (!due) {
        step = CKPT_NOT_DUE;
        goto done;
    }
    /* Only a chain that follows from the latest checkpoint is signed. */
    if (audit_verify_range(svc->st, keyring_audit_key(svc->kr), latest.seq,
                           have_latest ? latest.mac : zero, head_seq, &v) != AUDIT_OK)
        goto done;
    if (!v.ok || v.last_seq != head_seq) {
        say(msg, cap,
            "the audit chain does not follow from checkpoint %lld (seq %lld: %s); no checkpoint "
            "is written: run usersigd audit verify",
            (long long)latest.seq, (long long)(v.ok ? v.last_seq + 1 : v.bad_seq),
            v.ok ? "missing" : audit_problem_name(v.problem));
        step = CKPT_REFUSED;
        goto done;
    }
    store_rollback(svc->st); /* the key is read or made in a transaction of its own */
    if (ckpt_key_get_or_create(svc, &key, msg, cap) != API_OK)
        return CKPT_FAILED;
    if (store_begin(svc->st) != STORE_OK || store_ckpt_lock(svc->st, &got) != STORE_OK)
        goto done;
    if (!got) {
        step = CKPT_NOT_DUE;
        goto done;
    }
    memset(out, 0, sizeof *out);
    out->seq = head_seq;
    memcpy(out->mac, head_mac, AUDIT_MAC_LEN);
    /* The database's clock, as the events' (never before the event it names). */
    out->at_us = db_now > head_at ? db_now : head_at;
    if (out->at_us <= 0)
        out->at_us = clock_realtime_us();
    memcpy(out->public_key, key.public_key, sizeof out->public_key);
    text_len = audit_checkpoint_message(out->seq, out->mac, out->at_us, text);
    enum keyring_rc krc =
        text_len == 0 ? KEYRING_BAD_INPUT
                      : keyring_ckpt_sign(svc->kr, key.public_key, key.sealed, key.sealed_len,
                                          (const uint8_t *)text, text_len, out->signature);
    if (krc != KEYRING_OK) {
        log_error("audit checkpoints: cannot sign: %s", keyring_rc_message(krc));
        goto done;
    }
    rc = store_ckpt_insert(svc->st, out);
    if (rc == STORE_CONFLICT) {
        step = CKPT_NOT_DUE;
        goto done;
    }
    if (rc == STORE_OK) /* a copy outside the database, for endpoints that take it */
        rc = webhooks_emit(svc->st, "audit.checkpoint", 0, 0, "usersigd", ckpt_json(out));
    if (rc != STORE_OK || store_commit(svc->st) != STORE_OK)
        goto done;
    step = CKPT_WRITTEN;
done:
    store_rollback(svc->st);
    return step;
}

/* ---- reading and checking ------------------------------------------------------------------- */

enum api_error ckpt_list(struct service *svc, int64_t after_seq, size_t limit,
                         struct store_ckpt **out, size_t *n, bool *more, char *msg, size_t cap)
{
    say(msg, cap, "%s", "");
    *more = false;
    if (limit < 1 || limit + 1 > STORE_CKPT_PAGE_MAX)
        return API_ERR_INTERNAL;
    if (store_ckpt_list(svc->st, after_seq, limit + 1, out, n) != STORE_OK) {
        say(msg, cap, "the audit checkpoints cannot be read (see the log)");
        return API_ERR_UNAVAILABLE;
    }
    if (*n > limit) {
        *n = limit;
        *more = true;
    }
    return API_OK;
}

/* The event at seq: *found, and its mac. */
static int event_mac_at(struct service *svc, int64_t seq, bool *found, uint8_t mac[AUDIT_MAC_LEN])
{
    struct store_audit_filter f = {.after_seq = seq - 1, .limit = 1};
    struct audit_event *ev = NULL;
    size_t n = 0;
    *found = false;
    if (store_audit_query(svc->st, &f, &ev, &n) != STORE_OK)
        return -1;
    if (n == 1 && ev[0].seq == seq) {
        *found = true;
        memcpy(mac, ev[0].mac, AUDIT_MAC_LEN);
    }
    free(ev);
    return 0;
}

/* The signature's verdict with pub, or the stored key's when pub is NULL. -1: store failed. */
static int check_signature(struct service *svc, const struct store_ckpt *c, const uint8_t *pub,
                           struct ckpt_check *out)
{
    struct store_ckpt_key k;
    char text[AUDIT_CKPT_MSG_BUF];
    size_t len;

    if (pub == NULL) {
        enum store_rc rc = store_ckpt_key_get(svc->st, false, &k);
        if (rc == STORE_NOT_FOUND) {
            out->problem = CKPT_NO_KEY;
            return 0;
        }
        if (rc != STORE_OK)
            return -1;
        pub = k.public_key;
    }
    len = audit_checkpoint_message(c->seq, c->mac, c->at_us, text);
    out->signature_ok =
        len > 0 && keyring_ckpt_verify(pub, (const uint8_t *)text, len, c->signature) == KEYRING_OK;
    if (!out->signature_ok)
        out->problem = CKPT_BAD_SIGNATURE;
    return 0;
}

enum api_error ckpt_check(struct service *svc, const struct store_ckpt *c, const uint8_t *pub,
                          struct ckpt_check *out, char *msg, size_t cap)
{
    static const uint8_t zero[AUDIT_MAC_LEN];

    say(msg, cap, "%s", "");
    memset(out, 0, sizeof *out);
    if (check_signature(svc, c, pub, out) != 0 ||
        audit_verify_range(svc->st, keyring_audit_key(svc->kr), 0, zero, c->seq, &out->chain) !=
            AUDIT_OK) {
        say(msg, cap, "the audit log cannot be read (see the log)");
        return API_ERR_UNAVAILABLE;
    }
    if (out->problem != CKPT_OK)
        return API_OK;
    if (!out->chain.ok)
        out->problem = CKPT_CHAIN_BROKEN;
    else if (out->chain.last_seq < c->seq)
        out->problem = CKPT_EVENT_MISSING;
    else if (memcmp(out->chain.last_mac, c->mac, AUDIT_MAC_LEN) != 0)
        out->problem = CKPT_MAC_MISMATCH;
    return API_OK;
}

enum api_error ckpt_status(struct service *svc, struct audit_verify_result *chain,
                           struct store_ckpt *latest, bool *has_latest, struct ckpt_check *check,
                           char *msg, size_t cap)
{
    uint8_t mac[AUDIT_MAC_LEN];
    bool found = false;
    enum store_rc rc;

    say(msg, cap, "%s", "");
    memset(check, 0, sizeof *check);
    *has_latest = false;
    if (audit_verify(svc->st, keyring_audit_key(svc->kr), chain) != AUDIT_OK)
        goto unavailable;
    rc = store_ckpt_latest(svc->st, latest);
    if (rc == STORE_NOT_FOUND)
        return API_OK;
    if (rc != STORE_OK)
        goto unavailable;
    *has_latest = true;
    if (check_signature(svc, latest, NULL, check) != 0 ||
        event_mac_at(svc, latest->seq, &found, mac) != 0)
        goto unavailable;
    check->chain = *chain;
    if (check->problem != CKPT_OK)
        return API_OK;
    if (!found)
        check->problem = CKPT_EVENT_MISSING;
    else if (!chain->ok && chain->bad_seq <= latest->seq)
        check->problem = CKPT_CHAIN_BROKEN;
    else if (memcmp(mac, latest->mac, AUDIT_MAC_LEN) != 0)
        check->problem = CKPT_MAC_MISMATCH;
    return API_OK;
unavailable:
    say(msg, cap, "the audit log cannot be read (see the log)");
    return API_ERR_UNAVAILABLE;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static json_t *b64_json(const uint8_t *b, size_t n)
{
    char buf[4 * 64 / 3 + 8];
    if (4 * ((n + 2) / 3) + 1 > sizeof buf)
        return NULL;
    EVP_EncodeBlock((unsigned char *)buf, b, (int)n);
    return json_string(buf);
}

/* Standard base64 of exactly n bytes (with its padding) into out. */
static int b64_decode_exact(const char *s, size_t len, uint8_t *out, size_t n)
{
    unsigned char buf[128];
    size_t want = 4 * ((n + 2) / 3), pad = want / 4 * 3 - n;
    if (len != want || want > sizeof buf || len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool is_b64 = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (!(is_b64 || (ch == '=' && i >= len - pad)))
            return -1;
        if (ch != '=' && i >= len - pad)
            return -1;
    }
    if (EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len) != (int)(want / 4 * 3))
        return -1;
    memcpy(out, buf, n);
    return 0;
}

json_t *ckpt_json(const struct store_ckpt *c)
{
    char mac[2 * AUDIT_MAC_LEN + 1], fp[65];
    hex_encode(c->mac, sizeof c->mac, mac);
    ckpt_fingerprint(c->public_key, fp);
    return json_pack("{s:I, s:s, s:o, s:I, s:s, s:s, s:o*}", "seq", (json_int_t)c->seq, "mac", mac,
                     "at", service_time_json(c->at_us), "at_us", (json_int_t)c->at_us, "algorithm",
                     "ed25519", "key_fingerprint", fp, "signature",
                     b64_json(c->signature, sizeof c->signature));
}

json_t *ckpt_key_json(const struct store_ckpt_key *k)
{
    char pem[KEYRING_CKPT_PEM_BUF], fp[65];
    if (keyring_ckpt_public_pem(k->public_key, pem, sizeof pem) != KEYRING_OK)
        return NULL;
    ckpt_fingerprint(k->public_key, fp);
    json_t *pub = b64_json(k->public_key, sizeof k->public_key);
    if (pub == NULL)
        return NULL;
    return json_pack("{s:s, s:o, s:s, s:s, s:o}", "algorithm", "ed25519", "public_key", pub,
                     "public_key_pem", pem, "fingerprint", fp, "created_at",
                     service_time_json(k->created_at_us));
}

int ckpt_from_json(const json_t *o, struct store_ckpt *c, char *msg, size_t cap)
{
    const json_t *seq = json_object_get(o, "seq"), *at = json_object_get(o, "at_us");
    const json_t *mac = json_object_get(o, "mac"), *sig = json_object_get(o, "signature");

    memset(c, 0, sizeof *c);
    if (!json_is_object(o)) {
        say(msg, cap, "a checkpoint is a JSON object (as GET /v1/audit/checkpoints gives it)");
        return -1;
    }
    if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
        say(msg, cap, "checkpoint.seq: an integer from 1");
        return -1;
    }
    if (!json_is_integer(at) || json_integer_value(at) < 1) {
        say(msg, cap, "checkpoint.at_us: an integer (Unix microseconds) from 1");
        return -1;
    }
    const char *m = json_string_value(mac);
    bool mac_ok = m != NULL && json_string_length(mac) == 2 * AUDIT_MAC_LEN;
    for (size_t i = 0; mac_ok && i < AUDIT_MAC_LEN; i++) {
        int hi = hex_digit_value(m[2 * i]), lo = hex_digit_value(m[2 * i + 1]);
        mac_ok = hi >= 0 && lo >= 0;
        c->mac[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!mac_ok) {
        say(msg, cap, "checkpoint.mac: 64 hex characters");
        return -1;
    }
    if (!json_is_string(sig) || b64_decode_exact(json_string_value(sig), json_string_length(sig),
                                                 c->signature, sizeof c->signature) != 0) {
        say(msg, cap, "checkpoint.signature: the base64 of a 64-byte Ed25519 signature");
        return -1;
    }
    c->seq = json_integer_value(seq);
    c->at_us = json_integer_value(at);
    return 0;
}
